package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/hangar-ci/hangar/internal/store"
)

// CancelPipeline cancels every job of the pipeline that has not finished.
// Running jobs are told to stop at their agent's next heartbeat.
func (s *Scheduler) CancelPipeline(ctx context.Context, id int64) error {
	return s.cancel(ctx, func(tx store.Tx) (int64, []*store.Job, error) {
		if _, err := tx.Pipelines().Get(ctx, id); err != nil {
			return 0, nil, err
		}
		jobs, err := tx.Jobs().ListByPipeline(ctx, id)
		return id, jobs, err
	})
}

// CancelJob cancels one job.
func (s *Scheduler) CancelJob(ctx context.Context, id int64) error {
	return s.cancel(ctx, func(tx store.Tx) (int64, []*store.Job, error) {
		j, err := tx.Jobs().Get(ctx, id)
		if err != nil {
			return 0, nil, err
		}
		if j.Status.Final() {
			return 0, nil, fmt.Errorf("cancel job %d: it is %s: %w", id, j.Status, ErrState)
		}
		return j.PipelineID, []*store.Job{j}, nil
	})
}

// cancel cancels the jobs that pick selects in the pipeline it names.
func (s *Scheduler) cancel(ctx context.Context, pick func(store.Tx) (int64, []*store.Job, error)) error {
	now := s.now()
	var pipelineID int64
	err := s.store.Update(ctx, func(tx store.Tx) error {
		var (
			list []*store.Job
			err  error
		)
		if pipelineID, list, err = pick(tx); err != nil {
			return err
		}
		for _, j := range list {
			switch j.Status {
			case store.JobCreated, store.JobPending, store.JobManual:
				s.finish(j, store.JobCanceled, FailureCanceled, now)
			case store.JobRunning:
				attempts, err := tx.Jobs().ListAttempts(ctx, j.ID)
				if err != nil {
					return err
				}
				at := attempts[len(attempts)-1]
				at.CancelRequested = true
				if err := tx.Jobs().UpdateAttempt(ctx, at); err != nil {
					return err
				}
				j.Reason = "canceling"
			default:
				continue
			}
			if err := tx.Jobs().Update(ctx, j); err != nil {
				return err
			}
		}
		_, err = s.settle(ctx, tx, pipelineID, now)
		return err
	})
	if err != nil {
		return fmt.Errorf("cancel: %w", err)
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "canceled", slog.Int64("pipeline_id", pipelineID))
	s.afterCommit(pipelineID, false)
	return nil
}

// FailPending fails a pending job no runner can take: why says why. A job
// that is no longer pending, or that an active agent's labels cover (one
// registered since the caller looked), is left alone.
func (s *Scheduler) FailPending(ctx context.Context, id int64, why string) error {
	now := s.now()
	var pipelineID int64
	failed := false
	err := s.store.Update(ctx, func(tx store.Tx) error {
		j, err := tx.Jobs().Get(ctx, id)
		if err != nil || j.Status != store.JobPending {
			return err
		}
		agents, err := tx.Agents().List(ctx, false)
		if err != nil {
			return err
		}
		for _, a := range agents {
			if a.Status == store.AgentActive && covers(a.Labels, j.Tags) {
				return nil
			}
		}
		s.finish(j, store.JobFailed, FailureStuck, now)
		j.Reason = why
		if err := tx.Jobs().Update(ctx, j); err != nil {
			return err
		}
		pipelineID, failed = j.PipelineID, true
		_, err = s.settle(ctx, tx, pipelineID, now)
		return err
	})
	if err != nil {
		return fmt.Errorf("fail job %d: %w", id, err)
	}
	if failed {
		s.log.LogAttrs(ctx, slog.LevelInfo, "job failed: no runner can take it", slog.Int64("job_id", id), slog.String("why", why))
		s.afterCommit(pipelineID, false)
	}
	return nil
}

// RetryJob runs a finished job again; the jobs skipped after it are
// reconsidered.
func (s *Scheduler) RetryJob(ctx context.Context, id int64) error {
	return s.restart(ctx, id, func(j *store.Job) error {
		if !j.Status.Final() || j.Status == store.JobSkipped {
			return fmt.Errorf("retry job %d: it is %s: %w", id, j.Status, ErrState)
		}
		return nil
	})
}

// PlayJob starts a manual job.
func (s *Scheduler) PlayJob(ctx context.Context, id int64) error {
	return s.restart(ctx, id, func(j *store.Job) error {
		if j.Status != store.JobManual {
			return fmt.Errorf("play job %d: it is %s, not manual: %w", id, j.Status, ErrState)
		}
		return nil
	})
}

func (s *Scheduler) restart(ctx context.Context, id int64, check func(*store.Job) error) error {
	now := s.now()
	var pipelineID int64
	err := s.store.Update(ctx, func(tx store.Tx) error {
		j, err := tx.Jobs().Get(ctx, id)
		if err != nil {
			return err
		}
		if err := check(j); err != nil {
			return err
		}
		pipelineID = j.PipelineID
		j.Status, j.PendingAt, j.FinishedAt = store.JobPending, now, time.Time{}
		j.Reason, j.FailureReason, j.LostAttempts = "", "", 0
		if j.Reason, err = s.waitingReason(ctx, tx, j.Tags); err != nil {
			return err
		}
		if err := tx.Jobs().Update(ctx, j); err != nil {
			return err
		}
		// What was skipped or canceled because of this job gets another
		// chance.
		jobs, err := tx.Jobs().ListByPipeline(ctx, pipelineID)
		if err != nil {
			return err
		}
		for _, o := range jobs {
			if o.ID != j.ID && (o.Status == store.JobSkipped && o.Reason == "" || o.Status == store.JobCanceled) && o.StageIndex >= j.StageIndex {
				o.Status, o.FinishedAt, o.Reason, o.FailureReason = store.JobCreated, time.Time{}, "", ""
				if err := tx.Jobs().Update(ctx, o); err != nil {
					return err
				}
			}
		}
		p, err := tx.Pipelines().Get(ctx, pipelineID)
		if err != nil {
			return err
		}
		p.Status, p.FinishedAt = store.PipelineRunning, time.Time{}
		if err := tx.Pipelines().Update(ctx, p); err != nil {
			return err
		}
		_, err = s.settle(ctx, tx, pipelineID, now)
		return err
	})
	if err != nil {
		return err
	}
	s.afterCommit(pipelineID, true)
	return nil
}

// RegisterAgent records a new agent and returns it with its secret token.
func (s *Scheduler) RegisterAgent(ctx context.Context, name string, labels []string, version string, concurrency int) (*store.Agent, string, error) {
	now := s.now()
	token, hash := NewToken()
	a := &store.Agent{Name: name, TokenHash: hash, Labels: labels, Status: store.AgentActive, Version: version,
		Concurrency: concurrency, CreatedAt: now, LastSeenAt: now}
	err := s.store.Update(ctx, func(tx store.Tx) error {
		if err := tx.Agents().Create(ctx, a); err != nil {
			return err
		}
		return s.refreshReasons(ctx, tx)
	})
	if err != nil {
		return nil, "", fmt.Errorf("register agent %q: %w", name, err)
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "agent registered", slog.Int64("agent_id", a.ID), slog.String("name", name),
		slog.Any("labels", labels))
	return a, token, nil
}

// Agent returns the agent a token belongs to; gone agents are refused.
func (s *Scheduler) Agent(ctx context.Context, token string) (*store.Agent, error) {
	var a *store.Agent
	err := s.store.Read(ctx, func(tx store.Tx) error {
		var err error
		a, err = tx.Agents().GetByTokenHash(ctx, HashToken(token))
		return err
	})
	if errors.Is(err, store.ErrNotFound) || err == nil && a.Status == store.AgentGone {
		return nil, ErrUnauthorized
	}
	return a, err
}

// AgentHeartbeat records that the agent is alive and what it reports about
// its machine.
func (s *Scheduler) AgentHeartbeat(ctx context.Context, id int64, h store.Health) error {
	now := s.now()
	return s.store.Update(ctx, func(tx store.Tx) error {
		a, err := tx.Agents().Get(ctx, id)
		if err != nil {
			return err
		}
		a.LastSeenAt, a.Health = now, h
		return tx.Agents().Update(ctx, a)
	})
}

// DrainAgent stops the agent from taking jobs and returns how many
// attempts it still runs. The status changes in the transaction that
// counts, and claims check it in theirs: once DrainAgent has returned 0,
// the agent runs nothing and never will, and its instance can go.
func (s *Scheduler) DrainAgent(ctx context.Context, id int64) (running int, err error) {
	err = s.store.Update(ctx, func(tx store.Tx) error {
		a, err := tx.Agents().Get(ctx, id)
		if err != nil {
			return err
		}
		if a.Status == store.AgentActive {
			a.Status = store.AgentDraining
			if err := tx.Agents().Update(ctx, a); err != nil {
				return err
			}
		}
		held, err := tx.Jobs().RunningAttempts(ctx, id)
		running = len(held)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("drain agent %d: %w", id, err)
	}
	return running, nil
}

// Deregister marks the agent gone; attempts it still holds are handed
// back.
func (s *Scheduler) Deregister(ctx context.Context, id int64) error {
	return s.DeregisterTo(ctx, id, "")
}

// DeregisterTo is Deregister, and the jobs handed back get tag among their
// tags (when it is not empty), so that they run again only where runners
// carry that label: the fleet sends the jobs of an interrupted spot
// instance to its fallback class that way.
func (s *Scheduler) DeregisterTo(ctx context.Context, id int64, tag string) error {
	var held []*store.Attempt
	err := s.store.Update(ctx, func(tx store.Tx) error {
		a, err := tx.Agents().Get(ctx, id)
		if err != nil {
			return err
		}
		a.Status = store.AgentGone
		if err := tx.Agents().Update(ctx, a); err != nil {
			return err
		}
		held, err = tx.Jobs().RunningAttempts(ctx, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("deregister agent %d: %w", id, err)
	}
	for _, at := range held {
		err := s.loseAttempt(ctx, func(tx store.Tx) (*store.Attempt, error) {
			return tx.Jobs().GetAttempt(ctx, at.ID)
		}, "was running on an agent that deregistered", false, tag)
		if err != nil {
			return err
		}
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "agent deregistered", slog.Int64("agent_id", id))
	return nil
}

// refreshReasons updates the waiting reason of pending jobs after the set
// of agents changed.
func (s *Scheduler) refreshReasons(ctx context.Context, tx store.Tx) error {
	pending, err := tx.Jobs().ListPendingTagged(ctx)
	if err != nil || len(pending) == 0 {
		return err
	}
	agents, err := tx.Agents().List(ctx, false)
	if err != nil {
		return err
	}
	for _, j := range pending {
		if reason := labelReason(agents, j.Tags); reason != j.Reason {
			j.Reason = reason
			if err := tx.Jobs().Update(ctx, j); err != nil {
				return err
			}
		}
	}
	return nil
}

// Run does the scheduler's upkeep until ctx ends: it expires the leases of
// silent agents, marks agents gone that stopped calling, and wakes
// claimers when delayed jobs come due. Exactly one Run should be active per
// store.
func (s *Scheduler) Run(ctx context.Context) error {
	if err := s.renewLeases(ctx); err != nil {
		return err
	}
	if err := s.wakeDelayed(ctx); err != nil {
		return err
	}
	tick := min(time.Second, s.cfg.LeaseTimeout/4)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		if err := s.Tick(ctx); err != nil && ctx.Err() == nil {
			s.log.LogAttrs(ctx, slog.LevelError, "scheduler upkeep", slog.String("error", err.Error()))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// renewLeases gives every running attempt a fresh lease, and every agent a
// fresh "last seen". It runs when the scheduler starts: while no server was
// up, no agent could heartbeat, and that is no reason to give up on them.
func (s *Scheduler) renewLeases(ctx context.Context) error {
	now := s.now()
	err := s.store.Update(ctx, func(tx store.Tx) error {
		running, err := tx.Jobs().ListByStatus(ctx, store.JobRunning, 0)
		if err != nil {
			return err
		}
		for _, j := range running {
			attempts, err := tx.Jobs().ListAttempts(ctx, j.ID)
			if err != nil {
				return err
			}
			for _, at := range attempts {
				if at.Status == store.AttemptRunning && at.LeaseExpiresAt.Before(now.Add(s.cfg.LeaseTimeout)) {
					at.LeaseExpiresAt = now.Add(s.cfg.LeaseTimeout)
					if err := tx.Jobs().UpdateAttempt(ctx, at); err != nil {
						return err
					}
				}
			}
		}
		// Agents could not report while no server was up either.
		agents, err := tx.Agents().List(ctx, false)
		if err != nil {
			return err
		}
		for _, a := range agents {
			a.LastSeenAt = now
			if err := tx.Agents().Update(ctx, a); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("renew leases at start: %w", err)
	}
	return nil
}

// wakeDelayed sets the wake-ups of the delayed jobs that are not due yet
// (settle sets them as jobs get delayed; this is for a restarted server).
func (s *Scheduler) wakeDelayed(ctx context.Context) error {
	return s.store.Read(ctx, func(tx store.Tx) error {
		pending, err := tx.Jobs().ListByStatus(ctx, store.JobPending, 0)
		for _, j := range pending {
			s.wakeAt(j.RunAfter)
		}
		return err
	})
}

// Tick does one round of upkeep.
func (s *Scheduler) Tick(ctx context.Context) error {
	now := s.now()
	var (
		expired []*store.Attempt
		silent  []*store.Agent
	)
	err := s.store.Read(ctx, func(tx store.Tx) error {
		var err error
		if expired, err = tx.Jobs().ExpiredAttempts(ctx, now); err != nil {
			return err
		}
		agents, err := tx.Agents().List(ctx, false)
		if err != nil {
			return err
		}
		for _, a := range agents {
			if now.Sub(a.LastSeenAt) > 3*s.cfg.LeaseTimeout {
				silent = append(silent, a)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("scheduler upkeep: %w", err)
	}
	for _, at := range expired {
		err := s.loseAttempt(ctx, func(tx store.Tx) (*store.Attempt, error) {
			cur, err := tx.Jobs().GetAttempt(ctx, at.ID)
			if err != nil || cur.Status != store.AttemptRunning || !cur.LeaseExpiresAt.Before(now) {
				return nil, err // it finished or was extended meanwhile
			}
			return cur, nil
		}, "lost its lease", true, "")
		if err != nil {
			return err
		}
	}
	for _, a := range silent {
		err := s.store.Update(ctx, func(tx store.Tx) error {
			cur, err := tx.Agents().Get(ctx, a.ID)
			if err != nil || !cur.LastSeenAt.Equal(a.LastSeenAt) {
				return err
			}
			cur.Status = store.AgentGone
			if err := tx.Agents().Update(ctx, cur); err != nil {
				return err
			}
			return s.refreshReasons(ctx, tx)
		})
		if err != nil {
			return fmt.Errorf("mark agent %d gone: %w", a.ID, err)
		}
		s.log.LogAttrs(ctx, slog.LevelWarn, "agent silent, marked gone", slog.Int64("agent_id", a.ID))
	}
	return nil
}

// covers reports whether labels include every one of tags.
func covers(labels, tags []string) bool {
	for _, t := range tags {
		if !slices.Contains(labels, t) {
			return false
		}
	}
	return true
}
