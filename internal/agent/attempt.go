package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hangar-ci/hangar/internal/api"
	"github.com/hangar-ci/hangar/internal/executor"
	"github.com/hangar-ci/hangar/internal/mask"
	"github.com/hangar-ci/hangar/internal/source"
	"github.com/hangar-ci/hangar/internal/store"
)

// stopReason says why an attempt was stopped before it finished.
type stopReason int

const (
	stopNone     stopReason = iota
	stopCancel              // the server asked (pipeline or job canceled)
	stopAbandon             // the server fenced the attempt off (409)
	stopHandBack            // the agent shuts down
)

// attempt is one running attempt.
type attempt struct {
	as     *api.Assignment
	lease  time.Duration
	client *api.Client
	log    *slog.Logger

	mu     sync.Mutex
	reason stopReason
	cancel context.CancelFunc
	// steps are the timings of the steps run so far.
	steps []api.StepTiming
}

// step times one step of the attempt: call the function it returns when
// the step ends.
func (at *attempt) step(name string) (end func()) {
	start := time.Now()
	return func() {
		at.mu.Lock()
		at.steps = append(at.steps, api.StepTiming{Name: name, Seconds: time.Since(start).Seconds()})
		at.mu.Unlock()
	}
}

// stepTimings returns the steps timed so far.
func (at *attempt) stepTimings() []api.StepTiming {
	at.mu.Lock()
	defer at.mu.Unlock()
	return slices.Clone(at.steps)
}

// stop ends the attempt's steps; the first reason given wins.
func (at *attempt) stop(r stopReason) {
	at.mu.Lock()
	if at.reason == stopNone {
		at.reason = r
	}
	at.mu.Unlock()
	at.cancel()
}

func (at *attempt) stopReason() stopReason {
	at.mu.Lock()
	defer at.mu.Unlock()
	return at.reason
}

// heartbeatLoop extends the lease every third of it until ctx ends, and
// stops the attempt when the server says cancel or fences it off.
func (at *attempt) heartbeatLoop(ctx context.Context) {
	path := fmt.Sprintf("/attempts/%d/heartbeat", at.as.AttemptID)
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(jitter(at.lease / 3)):
		}
		var resp api.HeartbeatResponse
		_, err := at.client.Do(ctx, http.MethodPost, path, at.as.Token, nil, &resp)
		switch {
		case err == nil && resp.Cancel:
			at.log.Info("attempt canceled by the server")
			at.stop(stopCancel)
		case isConflict(err):
			at.log.Warn("attempt fenced off by the server; abandoning it")
			at.stop(stopAbandon)
			return
		case err != nil && ctx.Err() == nil:
			at.log.Warn("heartbeat failed", slog.String("error", err.Error()))
		}
	}
}

// runAttempt runs one claimed attempt to its end and reports it.
func (a *Agent) runAttempt(work context.Context, as *api.Assignment) {
	runCtx, cancel := context.WithCancel(work)
	defer cancel()
	at := &attempt{
		as: as, lease: time.Duration(as.LeaseSeconds * float64(time.Second)), client: a.client, cancel: cancel,
		log: a.log.With(slog.Int64("job_id", as.JobID), slog.Int64("attempt_id", as.AttemptID), slog.Int("attempt", as.Attempt)),
	}
	if at.lease <= 0 {
		at.lease = 30 * time.Second
	}
	a.mu.Lock()
	a.running[as.AttemptID] = at
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		delete(a.running, as.AttemptID)
		a.mu.Unlock()
	}()
	at.log.Info("attempt started", slog.String("job", as.JobName))

	hbCtx, stopHB := context.WithCancel(work)
	defer stopHB()
	go at.heartbeatLoop(hbCtx)

	stream := newLogStreamer(a.client, as.AttemptID, as.Token, a.cfg.Backoff)
	go stream.run(work)
	var secrets []string
	for _, v := range as.Variables {
		if v.Masked {
			secrets = append(secrets, v.Value)
		}
	}
	out := mask.NewWriter(stream, secrets)
	result := a.execute(runCtx, at, out)
	out.Flush()

	reason := at.stopReason()
	if reason == stopCancel {
		result = api.CompleteRequest{Status: string(store.AttemptCanceled), ExitCode: result.ExitCode}
	}
	if err := stream.Close(work); err != nil {
		if errors.Is(err, errAbandoned) || reason == stopAbandon {
			at.log.Warn("attempt abandoned: the server fenced it off")
			return
		}
		at.log.Error("log upload failed", slog.String("error", err.Error()))
		if work.Err() != nil {
			return
		}
	}
	if reason == stopAbandon {
		at.log.Warn("attempt abandoned: the server fenced it off")
		return
	}
	result.LogOffset, result.Log = stream.Tail()
	result.Steps = at.stepTimings()
	call, body := "/complete", any(result)
	if reason == stopHandBack {
		call, body = "/release", nil
		if off, tail := stream.Tail(); len(tail) > 0 {
			// A release carries no log: send the tail first.
			_, err := a.client.Do(work, http.MethodPut, fmt.Sprintf("/attempts/%d/log?offset=%d", as.AttemptID, off), as.Token, tail, nil)
			if err != nil {
				at.log.Warn("log tail of a handed-back attempt", slog.String("error", err.Error()))
			}
		}
	}
	err := api.Retry(work, a.cfg.Backoff, func() error {
		_, err := a.client.Do(work, http.MethodPost, fmt.Sprintf("/attempts/%d%s", as.AttemptID, call), as.Token, body, nil)
		return err
	})
	switch {
	case isConflict(err):
		at.log.Warn("attempt abandoned: the server fenced it off before it completed")
	case err != nil:
		at.log.Error("report attempt", slog.String("error", err.Error()))
	default:
		at.log.Info("attempt finished", slog.String("status", result.Status), slog.Int("exit_code", result.ExitCode),
			slog.Bool("handed_back", reason == stopHandBack))
	}
}

// execute prepares the workspace and runs the attempt's steps, writing the
// log to out; it returns how the attempt ended.
func (a *Agent) execute(ctx context.Context, at *attempt, out io.Writer) api.CompleteRequest {
	as := at.as
	fmt.Fprintf(out, "\x1b[1mRunning with hangar agent %s on %s (agent %d), attempt %d of job %q\x1b[0m\n",
		a.cfg.Version, a.cfg.Name, a.ID(), as.Attempt, as.JobName)
	systemFailure := func(format string, args ...any) api.CompleteRequest {
		msg := fmt.Sprintf(format, args...)
		fmt.Fprintf(out, "\x1b[31;1mERROR: Job failed (system failure): %s\x1b[0m\n", msg)
		at.log.Error("attempt system failure", slog.String("error", msg))
		return api.CompleteRequest{Status: string(store.AttemptFailed), ExitCode: -1, FailureReason: "runner_system_failure"}
	}
	if len(as.ExpiredDependencies) > 0 {
		fmt.Fprintf(out, "\x1b[31;1mERROR: Job failed: the artifacts of %s expired\x1b[0;m\n", strings.Join(as.ExpiredDependencies, ", "))
		return api.CompleteRequest{Status: string(store.AttemptFailed), ExitCode: -1, FailureReason: "missing_dependency_failure"}
	}
	dir := filepath.Join(a.cfg.WorkDir, "builds", fmt.Sprint(as.AttemptID))
	defer os.RemoveAll(dir)
	canceled := api.CompleteRequest{Status: string(store.AttemptCanceled), ExitCode: -1}
	end := at.step("get_sources")
	archive, err := a.fetchSource(ctx, as, dir)
	end()
	if err != nil {
		if ctx.Err() != nil {
			return canceled
		}
		return systemFailure("fetch source: %v", err)
	}
	// GitLab Runner's order: caches first, so that the artifacts of this
	// pipeline win over what a cache holds.
	files := &jobFiles{a: a, at: at, dir: dir, archive: archive, out: out}
	end = at.step("restore_cache")
	files.restoreCaches(ctx)
	end()
	end = at.step("download_artifacts")
	err = files.downloadDependencies(ctx)
	end()
	if err != nil {
		if ctx.Err() != nil {
			return canceled
		}
		return systemFailure("%v", err)
	}
	// The agent's own variables come first, so the job's win (later ones
	// do), as in GitLab.
	vars := []store.Variable{
		{Name: "CI_PROJECT_DIR", Value: dir},
		{Name: "CI_BUILDS_DIR", Value: filepath.Dir(dir)},
		{Name: "CI_JOB_TIMEOUT", Value: fmt.Sprint(int(as.TimeoutSeconds))},
	}
	for _, v := range as.Variables {
		vars = append(vars, store.Variable{Name: v.Name, Value: v.Value, Masked: v.Masked})
	}
	end = at.step("prepare_executor")
	sess, err := a.cfg.Executor.Prepare(ctx, &executor.Job{
		Dir: dir, Variables: vars, Image: as.Image, Services: as.Services, Log: out,
		Labels: a.labels(map[string]string{
			"hangar.attempt": fmt.Sprint(as.AttemptID), "hangar.job": fmt.Sprint(as.JobID),
			"hangar.pipeline": fmt.Sprint(as.PipelineID),
		}),
	})
	end()
	if err != nil {
		if ctx.Err() != nil {
			return canceled
		}
		return systemFailure("prepare executor: %v", err)
	}
	defer sess.Cleanup(context.WithoutCancel(ctx))

	timeout := time.Duration(as.TimeoutSeconds * float64(time.Second))
	lines := append(append([]string{}, as.BeforeScript...), as.Script...)
	end = at.step("script")
	res, err := sess.Run(ctx, executor.Step{Name: "script", Lines: lines, Timeout: timeout}, out)
	end()
	if err != nil && ctx.Err() == nil {
		return systemFailure("run script: %v", err)
	}
	if len(as.AfterScript) > 0 && at.stopReason() != stopAbandon && at.stopReason() != stopHandBack {
		fmt.Fprintf(out, "\x1b[32;1mRunning after_script\x1b[0;m\n")
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), DefaultAfterScriptTime)
		end := at.step("after_script")
		ares, err := sess.Run(actx, executor.Step{Name: "after_script", Lines: as.AfterScript, Timeout: DefaultAfterScriptTime}, out)
		end()
		cancel()
		switch {
		case err != nil:
			fmt.Fprintf(out, "\x1b[33;1mWARNING: after_script failed: %v\x1b[0;m\n", err)
		case ares.ExitCode != 0:
			fmt.Fprintf(out, "\x1b[33;1mWARNING: after_script failed with exit code %d\x1b[0;m\n", ares.ExitCode)
		}
	}
	if ctx.Err() == nil {
		succeeded := res.ExitCode == 0 && !res.TimedOut
		end := at.step("save_cache")
		files.saveCaches(ctx, succeeded)
		end()
		end = at.step("upload_artifacts")
		err := files.uploadArtifacts(ctx, succeeded)
		end()
		var artErr *artifactsError
		switch {
		case err != nil && !succeeded:
			// The job failed already: that is what it failed of.
			fmt.Fprintf(out, "\x1b[33;1mWARNING: artifacts: %v\x1b[0;m\n", err)
		case errors.As(err, &artErr):
			fmt.Fprintf(out, "\x1b[31;1mERROR: Job failed: artifacts: %v\x1b[0;m\n", err)
			return api.CompleteRequest{Status: string(store.AttemptFailed), ExitCode: res.ExitCode, FailureReason: "script_failure"}
		case err != nil && ctx.Err() == nil:
			return systemFailure("%v", err)
		}
	}
	switch {
	case ctx.Err() != nil:
		fmt.Fprintf(out, "\x1b[31;1mERROR: Job stopped: %s\x1b[0;m\n", map[stopReason]string{
			stopCancel: "canceled", stopHandBack: "the agent is shutting down; the job will run again",
			stopAbandon: "the server no longer accepts this attempt"}[at.stopReason()])
		return canceled
	case res.TimedOut:
		fmt.Fprintf(out, "\x1b[31;1mERROR: Job failed: execution took longer than %s\x1b[0;m\n", timeout)
		return api.CompleteRequest{Status: string(store.AttemptFailed), ExitCode: res.ExitCode, FailureReason: "job_execution_timeout"}
	case res.ExitCode != 0:
		fmt.Fprintf(out, "\x1b[31;1mERROR: Job failed: exit code %d\x1b[0;m\n", res.ExitCode)
		return api.CompleteRequest{Status: string(store.AttemptFailed), ExitCode: res.ExitCode, FailureReason: "script_failure"}
	}
	fmt.Fprintf(out, "\x1b[32;1mJob succeeded\x1b[0;m\n")
	return api.CompleteRequest{Status: string(store.AttemptSuccess), ExitCode: 0}
}

// fetchSource extracts the attempt's source archive into dir and returns
// the archive's path ("" when the job has no source). Archives are
// content-addressed, so each is downloaded once per agent and kept in
// WorkDir/archives for the other jobs of its pipeline.
func (a *Agent) fetchSource(ctx context.Context, as *api.Assignment, dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if as.Archive == "" {
		return "", nil
	}
	hex, ok := strings.CutPrefix(as.Archive, "sha256:")
	if !ok || len(hex) != 64 || strings.ContainsAny(hex, "/.") {
		return "", fmt.Errorf("archive digest %q is not sha256:<hex>", as.Archive)
	}
	cached := filepath.Join(a.cfg.WorkDir, "archives", hex+".tar.gz")
	f, err := os.Open(cached)
	if errors.Is(err, os.ErrNotExist) {
		if err := a.download(ctx, as, cached); err != nil {
			return "", err
		}
		f, err = os.Open(cached)
	}
	if err != nil {
		return "", err
	}
	defer f.Close()
	if err := source.Extract(ctx, f, dir, source.Limits{}); err != nil {
		return "", fmt.Errorf("extract %s: %w", hex[:12], err)
	}
	return cached, nil
}

// download fetches the attempt's archive to path, atomically.
func (a *Agent) download(ctx context.Context, as *api.Assignment, path string) error {
	tmp, err := a.downloadTemp(ctx, as.Archive, func(w io.Writer) error {
		_, err := a.client.Do(ctx, http.MethodGet, fmt.Sprintf("/attempts/%d/source", as.AttemptID), as.Token, nil, w)
		return err
	})
	if err != nil {
		return fmt.Errorf("download source: %w", err)
	}
	defer os.Remove(tmp)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	pruneArchives(filepath.Dir(path), time.Now().Add(-archiveTTL))
	return os.Rename(tmp, path)
}

// archiveTTL is how long a cached archive is kept after its last download.
const archiveTTL = time.Hour

// pruneArchives removes cached archives last written before cutoff. A job
// that still needs one downloads it again.
func pruneArchives(dir string, cutoff time.Time) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if info, err := e.Info(); err == nil && strings.HasSuffix(e.Name(), ".tar.gz") && info.ModTime().Before(cutoff) {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}
