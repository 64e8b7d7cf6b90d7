package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/hangar-ci/hangar/internal/api"
	"github.com/hangar-ci/hangar/internal/scheduler"
	"github.com/hangar-ci/hangar/internal/store"
)

// This file serves the calls agents make: register, claim, heartbeats,
// log appends, completion.

func (s *Server) register(w http.ResponseWriter, r *http.Request) {
	if !tokenEqual(bearer(r), s.cfg.AgentToken) {
		s.fail(w, r, errNoToken)
		return
	}
	var req api.RegisterRequest
	if err := readJSON(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	if req.Name == "" {
		s.fail(w, r, badRequest("register: name is empty"))
		return
	}
	a, token, err := s.sched.RegisterAgent(r.Context(), req.Name, req.Labels, req.Version, max(req.Concurrency, 1))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, api.RegisterResponse{ID: a.ID, Token: token,
		HeartbeatSeconds: s.sched.AgentHeartbeatInterval().Seconds()})
}

func (s *Server) claim(w http.ResponseWriter, r *http.Request) error {
	var req api.ClaimRequest
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	wait := min(time.Duration(req.WaitSeconds*float64(time.Second)), api.MaxClaimWait)
	a := agentOf(r)
	as, err := s.sched.WaitClaim(r.Context(), a, wait)
	if err != nil {
		return err
	}
	if as == nil {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	resp, err := s.assignment(r.Context(), as)
	if err != nil {
		s.handBack(r.Context(), as, "claim answer incomplete", err)
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	if err := jsonTo(w, resp); err != nil {
		s.handBack(r.Context(), as, "claim answer lost", err)
	}
	return nil
}

// handBack releases a claimed attempt whose agent never heard of it, now
// rather than after its lease.
func (s *Server) handBack(ctx context.Context, as *scheduler.Assignment, why string, cause error) {
	s.log.LogAttrs(ctx, slog.LevelWarn, why+"; releasing", slog.Int64("job_id", as.Job.ID),
		slog.Int64("attempt_id", as.Attempt.ID), slog.String("error", cause.Error()))
	if err := s.sched.Release(context.WithoutCancel(ctx), as.Attempt.ID, as.Token); err != nil {
		s.log.LogAttrs(ctx, slog.LevelError, "release", slog.String("error", err.Error()))
	}
}

// assignment is what the agent gets for a claim. Only a job with
// dependencies costs a store query (one), for their artifacts.
func (s *Server) assignment(ctx context.Context, as *scheduler.Assignment) (api.Assignment, error) {
	j := as.Job
	out := api.Assignment{
		AttemptID: as.Attempt.ID, Attempt: as.Attempt.Number, Token: as.Token,
		JobID: j.ID, JobName: j.Name, Stage: j.Stage, PipelineID: as.Pipeline.ID, Project: as.Project,
		Archive: as.Pipeline.Archive, BeforeScript: j.Spec.BeforeScript, Script: j.Spec.Script, AfterScript: j.Spec.AfterScript,
		Image: j.Spec.Image, Services: j.Spec.Services, Artifacts: j.Spec.Artifacts, Caches: j.Spec.Caches,
		TimeoutSeconds: j.Spec.Timeout.Seconds(), LeaseSeconds: s.sched.LeaseTimeout().Seconds(),
	}
	for _, v := range as.Variables {
		out.Variables = append(out.Variables, api.Variable{Name: v.Name, Value: v.Value, Masked: v.Masked})
	}
	if j.Spec.Artifacts != nil && s.cfg.Artifacts != nil {
		out.MaxArtifactBytes = s.cfg.MaxArtifactBytes
	}
	deps, expired, err := s.dependencies(ctx, j)
	if err != nil {
		return out, err
	}
	out.Dependencies, out.ExpiredDependencies = deps, expired
	if as.Attempt.Number > 1 {
		// The job's artifacts are the latest attempt's: a retry that keeps
		// none must not leave dependents an earlier attempt's files.
		s.dropArtifacts(ctx, j.ID)
	}
	return out, nil
}

func (s *Server) agentHeartbeat(w http.ResponseWriter, r *http.Request) error {
	var h api.Health
	if err := readJSON(w, r, &h); err != nil {
		return err
	}
	err := s.sched.AgentHeartbeat(r.Context(), agentOf(r).ID, store.Health(h))
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) deregister(w http.ResponseWriter, r *http.Request) error {
	if err := s.sched.Deregister(r.Context(), agentOf(r).ID); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func pathID(r *http.Request, name string) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue(name), 10, 64)
	if err != nil || id <= 0 {
		return 0, &httpError{http.StatusNotFound, fmt.Sprintf("%s %q is not an ID", name, r.PathValue(name))}
	}
	return id, nil
}

func (s *Server) attemptHeartbeat(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	cancel, err := s.sched.Heartbeat(r.Context(), id, bearer(r))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.HeartbeatResponse{Cancel: cancel, LeaseSeconds: s.sched.LeaseTimeout().Seconds()})
	return nil
}

func (s *Server) appendLog(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	offset, err := strconv.ParseInt(r.URL.Query().Get("offset"), 10, 64)
	if err != nil || offset < 0 {
		return badRequest("log append: offset %q is not a byte offset", r.URL.Query().Get("offset"))
	}
	if r.ContentLength > api.MaxLogAppend {
		return &httpError{http.StatusRequestEntityTooLarge, fmt.Sprintf("log append of %d bytes: at most %d per call", r.ContentLength, api.MaxLogAppend)}
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, api.MaxLogAppend))
	if err != nil {
		return fmt.Errorf("read log append: %w", err)
	}
	size, err := s.sched.AppendLog(r.Context(), id, bearer(r), offset, data)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.AppendResponse{Size: size})
	return nil
}

func (s *Server) complete(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	var req api.CompleteRequest
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	if len(req.Log) > api.MaxCompleteLog || req.LogOffset < 0 {
		return badRequest("complete: the log tail must be at most %d bytes at a byte offset", api.MaxCompleteLog)
	}
	if len(req.Steps) > api.MaxSteps {
		return badRequest("complete: %d steps, at most %d", len(req.Steps), api.MaxSteps)
	}
	for _, st := range req.Steps {
		if st.Name == "" || len(st.Name) > 64 || !(st.Seconds >= 0 && st.Seconds < 1e8) {
			return badRequest("complete: step %q took %v s: want a name of 1 to 64 bytes and 0 or more seconds", st.Name, st.Seconds)
		}
	}
	err = s.sched.Complete(r.Context(), id, bearer(r), scheduler.Outcome{
		Status: store.AttemptStatus(req.Status), ExitCode: req.ExitCode, FailureReason: req.FailureReason,
		LogOffset: req.LogOffset, Log: req.Log, Steps: req.Steps})
	if errors.Is(err, scheduler.ErrState) {
		return badRequest("%v", err)
	}
	if err != nil {
		return err
	}
	s.wakeFleet() // the next stage's jobs may be pending now
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) release(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	if err := s.sched.Release(r.Context(), id, bearer(r)); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) attemptSource(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	digest, err := s.sched.Archive(r.Context(), id, bearer(r))
	if err != nil {
		return err
	}
	f, err := s.cfg.Blobs.Open(digest)
	if err != nil {
		return fmt.Errorf("open archive %s: %w", digest, err)
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/gzip")
	w.Header().Set("ETag", strconv.Quote(digest))
	http.ServeContent(w, r, "", time.Time{}, f)
	return nil
}

// jsonTo writes v as JSON and reports whether it reached the client.
func jsonTo(w http.ResponseWriter, v any) error {
	if err := json.NewEncoder(w).Encode(v); err != nil {
		return err
	}
	return http.NewResponseController(w).Flush()
}
