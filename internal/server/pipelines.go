package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"net/http"
	"strconv"
	"time"

	"github.com/hangar-ci/hangar/internal/api"
	"github.com/hangar-ci/hangar/internal/pipeline"
	"github.com/hangar-ci/hangar/internal/scheduler"
	"github.com/hangar-ci/hangar/internal/source"
	"github.com/hangar-ci/hangar/internal/store"
)

// This file serves the calls people and the CLI make about pipelines and
// jobs.

// minMaskedLen is the shortest value a masked variable may have.
const minMaskedLen = 8

// archiveLimits bound what the server reads out of an uploaded archive.
var archiveLimits = source.Limits{MaxBytes: 1 << 30, MaxFiles: 200_000}

func (s *Server) uploadSource(w http.ResponseWriter, r *http.Request) error {
	digest, size, err := s.cfg.Blobs.Put(r.Context(), r.Body, s.cfg.MaxArchiveBytes)
	if errors.Is(err, source.ErrTooLarge) {
		return &httpError{http.StatusRequestEntityTooLarge, fmt.Sprintf("source archive larger than %d bytes", s.cfg.MaxArchiveBytes)}
	}
	if err != nil {
		return fmt.Errorf("store source archive: %w", err)
	}
	writeJSON(w, http.StatusCreated, api.SourceResponse{Archive: digest, Size: size})
	return nil
}

func (s *Server) createPipeline(w http.ResponseWriter, r *http.Request) error {
	project := r.PathValue("project")
	var req api.CreatePipelineRequest
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	switch {
	case req.Archive != "" && req.Git != nil:
		return badRequest("create pipeline: give an archive or a git commit, not both")
	case req.Git != nil:
		digest, err := s.fetchGit(r.Context(), req.Git)
		if err != nil {
			return err
		}
		req.Archive = digest
		if req.SHA == "" {
			req.SHA = req.Git.Commit
		}
	case req.Archive == "":
		return badRequest("create pipeline: no source: upload an archive first (POST %s/sources) or name a git commit", api.Prefix)
	}
	if req.File == "" {
		req.File = ".gitlab-ci.yml"
	}
	fsys, err := s.archiveFS(req.Archive)
	if err != nil {
		return err
	}
	pctx := pipeline.Context{
		Source: pipeline.Source(req.Source), Branch: req.Branch, Tag: req.Tag, DefaultBranch: req.DefaultBranch,
		ProjectPath: project, CommitSHA: req.SHA, CommitMessage: req.CommitMessage, Changed: req.Changed, Files: fsys,
	}
	if pctx.Source == "" {
		pctx.Source = pipeline.SourcePush
	}
	if pctx.DefaultBranch == "" {
		pctx.DefaultBranch = "main"
	}
	if mr := req.MergeRequest; mr != nil {
		pctx.MergeRequest = &pipeline.MergeRequest{IID: mr.IID, SourceBranch: mr.SourceBranch, TargetBranch: mr.TargetBranch,
			Title: mr.Title, Labels: mr.Labels}
		if req.Source == "" {
			pctx.Source = pipeline.SourceMergeRequest
		}
	}
	if pctx.Branch == "" && pctx.Tag == "" && pctx.MergeRequest == nil {
		pctx.Branch = pctx.DefaultBranch
	}
	vars := make([]store.Variable, 0, len(req.Variables))
	for _, v := range req.Variables {
		if v.Name == "" {
			return badRequest("create pipeline: a variable has no name")
		}
		if v.Masked && len(v.Value) < minMaskedLen {
			// Shorter values would mask ordinary words of the log, and
			// are too weak to be secrets anyway (GitLab's rule too).
			return badRequest("create pipeline: masked variable %s must be at least %d characters", v.Name, minMaskedLen)
		}
		pctx.Variables = append(pctx.Variables, pipeline.Variable{Name: v.Name, Value: v.Value})
		vars = append(vars, store.Variable{Name: v.Name, Value: v.Value, Masked: v.Masked})
	}
	cfg, err := pipeline.Load(fsys, req.File, &pctx)
	if err != nil {
		return err
	}
	plan, err := cfg.Plan(pctx)
	if err != nil {
		return err
	}
	if !plan.Created {
		return &httpError{http.StatusUnprocessableEntity, "no pipeline created: " + plan.Reason}
	}
	ref := pctx.Branch
	switch {
	case pctx.Tag != "":
		ref = pctx.Tag
	case pctx.MergeRequest != nil:
		ref = pctx.MergeRequest.SourceBranch
	}
	p, err := s.sched.Create(r.Context(), scheduler.NewPipeline{
		Project: project, Source: string(pctx.Source), Ref: ref, SHA: req.SHA,
		Archive: req.Archive, File: req.File, Variables: vars, Plan: plan,
	})
	if err != nil {
		return err
	}
	view, err := s.pipeline(r.Context(), p.ID)
	if err != nil {
		return err
	}
	s.wakeFleet()
	writeJSON(w, http.StatusCreated, view)
	return nil
}

// fetchGit snapshots a commit of a git repository into the blob store.
func (s *Server) fetchGit(ctx context.Context, g *api.GitSource) (string, error) {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(source.FromGit(ctx, g.URL, g.Commit, pw)) }()
	digest, _, err := s.cfg.Blobs.Put(ctx, pr, s.cfg.MaxArchiveBytes)
	pr.CloseWithError(err) // stop the snapshot if Put gave up
	switch {
	case errors.Is(err, source.ErrGit):
		return "", &httpError{http.StatusUnprocessableEntity, err.Error()}
	case errors.Is(err, source.ErrTooLarge):
		return "", &httpError{http.StatusRequestEntityTooLarge, fmt.Sprintf("the commit's tree is larger than %d bytes", s.cfg.MaxArchiveBytes)}
	case err != nil:
		return "", fmt.Errorf("snapshot %s at %s: %w", g.URL, g.Commit, err)
	}
	return digest, nil
}

// archiveFS opens an uploaded archive as a file system.
func (s *Server) archiveFS(digest string) (fs.FS, error) {
	f, err := s.cfg.Blobs.Open(digest)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, badRequest("no source archive %q: upload it first", digest)
	}
	if err != nil {
		return nil, badRequest("source archive %q: %v", digest, err)
	}
	defer f.Close()
	fsys, err := source.NewFS(context.Background(), f, archiveLimits)
	if err != nil {
		return nil, badRequest("read source archive %s: %v", digest, err)
	}
	return fsys, nil
}

func (s *Server) listPipelines(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	f := store.PipelineFilter{Status: store.PipelineStatus(q.Get("status")), Ref: q.Get("ref"), Source: q.Get("source")}
	var err error
	if v := q.Get("before"); v != "" {
		if f.BeforeID, err = strconv.ParseInt(v, 10, 64); err != nil {
			return badRequest("before=%q is not a pipeline ID", v)
		}
	}
	if v := q.Get("limit"); v != "" {
		if f.Limit, err = strconv.Atoi(v); err != nil || f.Limit < 1 || f.Limit > 1000 {
			return badRequest("limit=%q is not a number from 1 to 1000", v)
		}
	}
	if name := q.Get("project"); name != "" {
		err = s.store.Read(r.Context(), func(tx store.Tx) error {
			proj, err := tx.Projects().GetByName(r.Context(), name)
			if err == nil {
				f.ProjectID = proj.ID
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("project %q: %w", name, err)
		}
	}
	out, err := s.listPipelineViews(r.Context(), f)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) getPipeline(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	view, err := s.pipeline(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, view)
	return nil
}

// watchPipeline answers as soon as the pipeline's version differs from
// ?version=, or after ?wait= seconds (at most 60) with the same version.
func (s *Server) watchPipeline(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	wait := 30 * time.Second
	if v := r.URL.Query().Get("wait"); v != "" {
		secs, err := strconv.ParseFloat(v, 64)
		if err != nil || secs < 0 {
			return badRequest("wait=%q is not a number of seconds", v)
		}
		wait = min(time.Duration(secs*float64(time.Second)), time.Minute)
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	release := func() {}
	defer func() { release() }()
	for {
		release() // the previous round's wait
		var changed <-chan struct{}
		changed, release = s.sched.Changes(id)
		view, err := s.pipeline(r.Context(), id)
		if err != nil {
			return err
		}
		if view.Version != r.URL.Query().Get("version") {
			writeJSON(w, http.StatusOK, view)
			return nil
		}
		select {
		case <-changed:
		case <-timer.C:
			writeJSON(w, http.StatusOK, view)
			return nil
		case <-r.Context().Done():
			return r.Context().Err()
		}
	}
}

// pipeline reads a pipeline with its jobs, their attempts and log sizes,
// and stamps it with a version.
func (s *Server) pipeline(ctx context.Context, id int64) (api.Pipeline, error) {
	var out api.Pipeline
	err := s.store.Read(ctx, func(tx store.Tx) error {
		p, err := tx.Pipelines().Get(ctx, id)
		if err != nil {
			return err
		}
		proj, err := tx.Projects().Get(ctx, p.ProjectID)
		if err != nil {
			return err
		}
		out = pipelineView(p, proj.Name)
		jobs, err := tx.Jobs().ListStates(ctx, id)
		if err != nil {
			return err
		}
		// Three queries whatever the size of the pipeline: its jobs, their
		// attempts, and the attempts' log sizes.
		attempts, err := tx.Jobs().ListAttemptsOfPipeline(ctx, id)
		if err != nil {
			return err
		}
		ids := make([]int64, len(attempts))
		byJob := map[int64][]*store.Attempt{}
		for i, a := range attempts {
			ids[i] = a.ID
			byJob[a.JobID] = append(byJob[a.JobID], a)
		}
		sizes, err := tx.Logs().Sizes(ctx, ids)
		if err != nil {
			return err
		}
		for _, j := range jobs {
			out.Jobs = append(out.Jobs, jobView(j, byJob[j.ID], sizes))
		}
		return nil
	})
	if err != nil {
		return out, fmt.Errorf("read pipeline %d: %w", id, err)
	}
	h := fnv.New64a()
	json.NewEncoder(h).Encode(out)
	out.Version = strconv.FormatUint(h.Sum64(), 36)
	return out, nil
}

func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func pipelineView(p *store.Pipeline, project string) api.Pipeline {
	return api.Pipeline{
		ID: p.ID, Project: project, Status: string(p.Status), Source: p.Source, Ref: p.Ref, SHA: p.SHA, Name: p.Name,
		CreatedAt: p.CreatedAt, StartedAt: optTime(p.StartedAt), FinishedAt: optTime(p.FinishedAt),
	}
}

// jobView is the API's view of a job with its attempts and their log
// sizes.
func jobView(j *store.Job, attempts []*store.Attempt, sizes map[int64]int64) api.Job {
	out := api.Job{
		ID: j.ID, PipelineID: j.PipelineID, Name: j.Name, Stage: j.Stage, Status: string(j.Status), When: j.When,
		AllowFailure: j.AllowFailure, Tags: j.Tags, Needs: j.Needs, Reason: j.Reason, FailureReason: j.FailureReason,
		CreatedAt: j.CreatedAt, PendingAt: optTime(j.PendingAt), StartedAt: optTime(j.StartedAt), FinishedAt: optTime(j.FinishedAt),
	}
	if j.ExitCode >= 0 {
		out.ExitCode = &j.ExitCode
	}
	for _, a := range attempts {
		av := api.Attempt{ID: a.ID, Number: a.Number, AgentID: a.AgentID, Status: string(a.Status),
			FailureReason: a.FailureReason, StartedAt: a.StartedAt, FinishedAt: optTime(a.FinishedAt), LogSize: sizes[a.ID],
			Steps: a.Steps}
		if a.ExitCode >= 0 {
			code := a.ExitCode
			av.ExitCode = &code
		}
		out.Attempts = append(out.Attempts, av)
	}
	return out
}

// jobViewOf reads a job's attempts and log sizes and returns its view.
func jobViewOf(ctx context.Context, tx store.Tx, j *store.Job) (api.Job, error) {
	attempts, err := tx.Jobs().ListAttempts(ctx, j.ID)
	if err != nil {
		return api.Job{}, err
	}
	ids := make([]int64, len(attempts))
	for i, a := range attempts {
		ids[i] = a.ID
	}
	sizes, err := tx.Logs().Sizes(ctx, ids)
	if err != nil {
		return api.Job{}, err
	}
	return jobView(j, attempts, sizes), nil
}

func (s *Server) cancelPipeline(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	if err := s.sched.CancelPipeline(r.Context(), id); err != nil {
		return err
	}
	return s.getPipeline(w, r)
}

func (s *Server) getJob(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	var out api.Job
	err = s.store.Read(r.Context(), func(tx store.Tx) error {
		j, err := tx.Jobs().Get(r.Context(), id)
		if err != nil {
			return err
		}
		out, err = jobViewOf(r.Context(), tx, j)
		return err
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// jobAction serves a call that changes one job (cancel, retry, play).
func (s *Server) jobAction(act func(context.Context, int64) error) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		id, err := pathID(r, "id")
		if err != nil {
			return err
		}
		if err := act(r.Context(), id); err != nil {
			return err
		}
		return s.getJob(w, r)
	}
}

func (s *Server) listAgents(w http.ResponseWriter, r *http.Request) error {
	out, err := s.agentViews(r.Context(), r.URL.Query().Get("all") == "true")
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// agentViews lists the registered agents, the gone ones too when withGone.
func (s *Server) agentViews(ctx context.Context, withGone bool) ([]api.Agent, error) {
	var out []api.Agent
	err := s.store.Read(ctx, func(tx store.Tx) error {
		list, err := tx.Agents().List(ctx, withGone)
		for _, a := range list {
			out = append(out, api.Agent{ID: a.ID, Name: a.Name, Labels: a.Labels, Status: string(a.Status), Version: a.Version,
				Concurrency: a.Concurrency, Health: api.Health(a.Health), CreatedAt: a.CreatedAt, LastSeenAt: a.LastSeenAt})
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list agents: %w", err)
	}
	return out, nil
}
