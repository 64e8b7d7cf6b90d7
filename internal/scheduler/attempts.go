package scheduler

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"github.com/hangar-ci/hangar/internal/store"
)

// Assignment is a job handed to an agent: the attempt, its secret token,
// and everything the agent needs to run it.
type Assignment struct {
	Attempt  *store.Attempt
	Token    string
	Job      *store.Job
	Pipeline *store.Pipeline
	Project  string
	// Variables are the job's variables with the ones only known now
	// (CI_JOB_ID, CI_PIPELINE_ID, …) added.
	Variables []store.Variable
}

// Claim hands the oldest pending job that agent can take to it, or returns
// nil when there is none.
func (s *Scheduler) Claim(ctx context.Context, agent *store.Agent) (*Assignment, error) {
	now := s.now()
	var as *Assignment
	err := s.store.Update(ctx, func(tx store.Tx) error {
		a, err := tx.Agents().Get(ctx, agent.ID)
		if err != nil {
			return err
		}
		if a.Status != store.AgentActive {
			return nil
		}
		j, err := tx.Jobs().NextPending(ctx, a.Labels, now)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		token, hash := NewToken()
		at := &store.Attempt{
			JobID: j.ID, Number: j.Attempts + 1, AgentID: a.ID, TokenHash: hash,
			Status: store.AttemptRunning, LeaseExpiresAt: now.Add(s.cfg.LeaseTimeout),
			ExitCode: -1, CreatedAt: now, StartedAt: now,
		}
		if err := tx.Jobs().CreateAttempt(ctx, at); err != nil {
			return err
		}
		j.Attempts = at.Number
		j.Status = store.JobRunning
		j.Reason = ""
		if j.StartedAt.IsZero() {
			j.StartedAt = now
		}
		if err := tx.Jobs().Update(ctx, j); err != nil {
			return err
		}
		p, err := tx.Pipelines().Get(ctx, j.PipelineID)
		if err != nil {
			return err
		}
		if p.Status != store.PipelineRunning {
			p.Status = store.PipelineRunning
			if p.StartedAt.IsZero() {
				p.StartedAt = now
			}
			p.FinishedAt = time.Time{}
			if err := tx.Pipelines().Update(ctx, p); err != nil {
				return err
			}
		}
		proj, err := tx.Projects().Get(ctx, p.ProjectID)
		if err != nil {
			return err
		}
		as = &Assignment{Attempt: at, Token: token, Job: j, Pipeline: p, Project: proj.Name, Variables: runtimeVariables(j, p, at, a)}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("claim for agent %d: %w", agent.ID, err)
	}
	if as != nil {
		s.obs.JobStarted(now.Sub(as.Job.PendingAt), agent.Labels, !agent.CreatedAt.After(as.Job.PendingAt))
		s.log.LogAttrs(ctx, slog.LevelInfo, "attempt started", slog.Int64("job_id", as.Job.ID),
			slog.Int("attempt", as.Attempt.Number), slog.Int64("agent_id", agent.ID))
		s.afterCommit(as.Job.PipelineID, false)
	}
	return as, nil
}

// runtimeVariables adds to a job's variables those known only when it
// starts.
func runtimeVariables(j *store.Job, p *store.Pipeline, at *store.Attempt, a *store.Agent) []store.Variable {
	vars := make([]store.Variable, 0, len(j.Spec.Variables)+6)
	vars = append(vars, j.Spec.Variables...)
	for _, kv := range [][2]string{
		{"CI_JOB_ID", strconv.FormatInt(j.ID, 10)},
		{"CI_PIPELINE_ID", strconv.FormatInt(p.ID, 10)},
		{"CI_PIPELINE_IID", strconv.FormatInt(p.ID, 10)},
		{"CI_RUNNER_ID", strconv.FormatInt(a.ID, 10)},
		{"CI_RUNNER_DESCRIPTION", a.Name},
		{"CI_RUNNER_TAGS", fmt.Sprintf("%q", a.Labels)},
		{"HANGAR_ATTEMPT", strconv.Itoa(at.Number)},
	} {
		vars = append(vars, store.Variable{Name: kv[0], Value: kv[1]})
	}
	return vars
}

// WaitClaim is Claim that waits up to wait for a job to become pending.
// It wakes the moment one does.
func (s *Scheduler) WaitClaim(ctx context.Context, agent *store.Agent, wait time.Duration) (*Assignment, error) {
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		woken := s.pending.Wait()
		as, err := s.Claim(ctx, agent)
		if as != nil || err != nil {
			return as, err
		}
		select {
		case <-woken:
		case <-timer.C:
			return nil, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// CurrentAttempt checks, inside tx, that token belongs to attempt id and that the attempt is
// still its job's running attempt: the fence every write of an agent goes
// through.
func CurrentAttempt(ctx context.Context, tx store.Tx, id int64, token string) (*store.Attempt, *store.Job, error) {
	at, err := tx.Jobs().GetAttempt(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	if subtle.ConstantTimeCompare(at.TokenHash, HashToken(token)) != 1 {
		return nil, nil, ErrUnauthorized
	}
	if at.Status != store.AttemptRunning {
		return nil, nil, fmt.Errorf("attempt %d is %s: %w", id, at.Status, ErrStale)
	}
	j, err := tx.Jobs().Get(ctx, at.JobID)
	if err != nil {
		return nil, nil, err
	}
	if j.Attempts != at.Number || j.Status != store.JobRunning {
		return nil, nil, fmt.Errorf("attempt %d is not job %d's current attempt: %w", id, j.ID, ErrStale)
	}
	return at, j, nil
}

// Heartbeat extends the attempt's lease and reports whether the agent must
// cancel it.
func (s *Scheduler) Heartbeat(ctx context.Context, attemptID int64, token string) (cancel bool, err error) {
	now := s.now()
	err = s.store.Update(ctx, func(tx store.Tx) error {
		at, _, err := CurrentAttempt(ctx, tx, attemptID, token)
		if err != nil {
			return err
		}
		at.LeaseExpiresAt = now.Add(s.cfg.LeaseTimeout)
		cancel = at.CancelRequested
		return tx.Jobs().UpdateAttempt(ctx, at)
	})
	if err != nil {
		return false, fmt.Errorf("heartbeat of attempt %d: %w", attemptID, err)
	}
	return cancel, nil
}

// AppendLog writes data at offset of the attempt's log and returns the
// log's size. A retried append is harmless; a gap gets *store.GapError.
func (s *Scheduler) AppendLog(ctx context.Context, attemptID int64, token string, offset int64, data []byte) (int64, error) {
	var size, pipelineID int64
	err := s.store.Update(ctx, func(tx store.Tx) error {
		_, j, err := CurrentAttempt(ctx, tx, attemptID, token)
		if err != nil {
			return err
		}
		pipelineID = j.PipelineID
		size, err = tx.Logs().Append(ctx, attemptID, offset, data)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("append to log of attempt %d: %w", attemptID, err)
	}
	s.afterCommit(pipelineID, false)
	return size, nil
}

// Outcome is how an agent says an attempt ended.
type Outcome struct {
	// Status is success, failed or canceled.
	Status store.AttemptStatus
	// ExitCode is the script's exit code (-1 when it did not run).
	ExitCode int
	// FailureReason is one of the Failure… constants for a failed attempt.
	FailureReason string
	// Log, when not empty, is appended to the attempt's log at LogOffset
	// in the same transaction, as AppendLog would.
	LogOffset int64
	Log       []byte
	// Steps are the attempt's step timings, kept with it.
	Steps []store.StepTiming
}

// Complete records how an attempt ended and moves the pipeline on: the
// job succeeds, fails, or is retried as its retry: allows.
func (s *Scheduler) Complete(ctx context.Context, attemptID int64, token string, o Outcome) error {
	now := s.now()
	var (
		j    *store.Job
		woke bool
	)
	err := s.store.Update(ctx, func(tx store.Tx) error {
		at, job, err := CurrentAttempt(ctx, tx, attemptID, token)
		if err != nil {
			return err
		}
		switch o.Status {
		case store.AttemptSuccess, store.AttemptFailed, store.AttemptCanceled:
		default:
			return fmt.Errorf("status %q is not success, failed or canceled: %w", o.Status, ErrState)
		}
		j = job
		if len(o.Log) > 0 {
			if _, err := tx.Logs().Append(ctx, attemptID, o.LogOffset, o.Log); err != nil {
				return err
			}
		}
		at.Status, at.ExitCode, at.FinishedAt, at.Steps = o.Status, o.ExitCode, now, o.Steps
		if o.Status == store.AttemptFailed {
			at.FailureReason = o.FailureReason
			if at.FailureReason == "" {
				at.FailureReason = FailureScript
			}
		}
		if err := tx.Jobs().UpdateAttempt(ctx, at); err != nil {
			return err
		}
		j.ExitCode = o.ExitCode
		switch {
		case o.Status == store.AttemptSuccess:
			s.finish(j, store.JobSuccess, "", now)
		case o.Status == store.AttemptCanceled || at.CancelRequested:
			s.finish(j, store.JobCanceled, FailureCanceled, now)
		default:
			failures, err := userFailures(ctx, tx, j.ID)
			if err != nil {
				return err
			}
			if retryable(j.Spec.Retry, failures, at.FailureReason, o.ExitCode) {
				j.Status, j.PendingAt, j.Reason = store.JobPending, now, fmt.Sprintf("retrying after %s (attempt %d)", at.FailureReason, at.Number)
			} else {
				j.AllowFailure = allowedFailure(j, o.ExitCode)
				s.finish(j, store.JobFailed, at.FailureReason, now)
			}
		}
		if err := tx.Jobs().Update(ctx, j); err != nil {
			return err
		}
		woke, err = s.settle(ctx, tx, j.PipelineID, now)
		woke = woke || j.Status == store.JobPending
		return err
	})
	if err != nil {
		return fmt.Errorf("complete attempt %d: %w", attemptID, err)
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "attempt finished", slog.Int64("job_id", j.ID), slog.Int64("attempt_id", attemptID),
		slog.String("status", string(o.Status)), slog.Int("exit_code", o.ExitCode), slog.String("job_status", string(j.Status)))
	if j.Status.Final() {
		s.obs.JobFinished(j.Status, j.FinishedAt.Sub(j.StartedAt))
	}
	s.afterCommit(j.PipelineID, woke)
	return nil
}

// userFailures counts a job's attempts that failed for a reason of the
// job's own (not lost runners).
func userFailures(ctx context.Context, tx store.Tx, jobID int64) (int, error) {
	attempts, err := tx.Jobs().ListAttempts(ctx, jobID)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, a := range attempts {
		if a.Status == store.AttemptFailed {
			n++
		}
	}
	return n, nil
}

// finish puts j in a final status.
func (s *Scheduler) finish(j *store.Job, status store.JobStatus, failure string, now time.Time) {
	j.Status, j.FailureReason, j.FinishedAt = status, failure, now
	switch {
	case status == store.JobSuccess:
		j.Reason = ""
	case failure == FailureLost:
		j.Reason = "runner lost"
	case failure == FailureCanceled:
		j.Reason = "canceled"
	case failure != "":
		j.Reason = failure
	}
}

// Release hands an attempt back (its agent shuts down before it finished):
// the job is pending again at once instead of after the lease.
func (s *Scheduler) Release(ctx context.Context, attemptID int64, token string) error {
	return s.loseAttempt(ctx, func(tx store.Tx) (*store.Attempt, error) {
		at, _, err := CurrentAttempt(ctx, tx, attemptID, token)
		return at, err
	}, "handed back by its agent", false, "")
}

// loseAttempt marks the attempt find returns lost and retries or fails its
// job. Only lost runners count against LostRetries; an attempt its agent
// handed back (a clean shutdown) does not.
// loseAttempt ends the attempt find returns as lost and requeues its job
// (counting it against LostRetries when counts), adding tag to the job's
// tags when it is not empty, so that only runners with that label take it.
func (s *Scheduler) loseAttempt(ctx context.Context, find func(store.Tx) (*store.Attempt, error), why string, counts bool, tag string) error {
	now := s.now()
	var (
		j    *store.Job
		woke bool
	)
	err := s.store.Update(ctx, func(tx store.Tx) error {
		at, err := find(tx)
		if err != nil || at == nil || at.Status != store.AttemptRunning {
			return err // it ended meanwhile: its record stays as it ended
		}
		at.Status, at.FinishedAt, at.FailureReason = store.AttemptLost, now, FailureLost
		if err := tx.Jobs().UpdateAttempt(ctx, at); err != nil {
			return err
		}
		if j, err = tx.Jobs().Get(ctx, at.JobID); err != nil {
			return err
		}
		if j.Status != store.JobRunning || j.Attempts != at.Number {
			return nil
		}
		if counts {
			j.LostAttempts++
		}
		switch {
		case at.CancelRequested:
			s.finish(j, store.JobCanceled, FailureCanceled, now)
		case j.LostAttempts <= s.cfg.LostRetries:
			j.Status, j.PendingAt = store.JobPending, now
			j.Reason = fmt.Sprintf("attempt %d %s; retrying", at.Number, why)
			if tag != "" && !slices.Contains(j.Tags, tag) {
				j.Tags = append(slices.Clone(j.Tags), tag)
			}
		default:
			j.AllowFailure = allowedFailure(j, -1)
			s.finish(j, store.JobFailed, FailureLost, now)
		}
		if err := tx.Jobs().Update(ctx, j); err != nil {
			return err
		}
		woke, err = s.settle(ctx, tx, j.PipelineID, now)
		woke = woke || j.Status == store.JobPending
		return err
	})
	if err != nil {
		return fmt.Errorf("mark attempt lost: %w", err)
	}
	if j != nil {
		s.obs.AttemptLost()
		s.log.LogAttrs(ctx, slog.LevelWarn, "attempt lost", slog.Int64("job_id", j.ID), slog.String("why", why),
			slog.String("job_status", string(j.Status)))
		if j.Status.Final() {
			s.obs.JobFinished(j.Status, j.FinishedAt.Sub(j.StartedAt))
		}
		s.afterCommit(j.PipelineID, woke)
	}
	return nil
}

// Archive returns the digest of the source archive an attempt checks out;
// only the attempt's current token may ask.
func (s *Scheduler) Archive(ctx context.Context, attemptID int64, token string) (string, error) {
	var digest string
	err := s.store.Read(ctx, func(tx store.Tx) error {
		_, j, err := CurrentAttempt(ctx, tx, attemptID, token)
		if err != nil {
			return err
		}
		p, err := tx.Pipelines().Get(ctx, j.PipelineID)
		digest = p.Archive
		return err
	})
	if err != nil {
		return "", fmt.Errorf("source of attempt %d: %w", attemptID, err)
	}
	return digest, nil
}
