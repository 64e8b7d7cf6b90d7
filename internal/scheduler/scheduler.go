// Package scheduler turns planned pipelines into jobs and moves them through
// their states: it creates pipelines, hands pending jobs to agents as
// attempts with leases, records their results, retries what may be retried,
// expires the leases of silent agents and cancels on request.
//
// Every state change is one store transaction. What the scheduler keeps in
// memory (who waits for a job, who follows a log) only speeds things up:
// after a restart it is rebuilt from the store.
package scheduler

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hangar-ci/hangar/internal/store"
)

// Defaults for Config.
const (
	DefaultLeaseTimeout = 30 * time.Second
	DefaultLostRetries  = 2
	DefaultJobTimeout   = time.Hour
)

// Failure reasons recorded on failed jobs and attempts, named as GitLab
// names them where GitLab has a name.
const (
	FailureScript   = "script_failure"
	FailureTimeout  = "job_execution_timeout"
	FailureSystem   = "runner_system_failure"
	FailureLost     = "runner_lost"
	FailureCanceled = "canceled"
	// FailureStuck: no runner can ever take the job (GitLab's name).
	FailureStuck = "stuck_or_timeout_failure"
)

// Errors the scheduler returns besides the store's.
var (
	// ErrStale: the attempt named is no longer the job's running attempt
	// (its lease expired and the job moved on, or it finished): the caller
	// must abandon it.
	ErrStale = errors.New("attempt is no longer current")
	// ErrUnauthorized: a token does not match.
	ErrUnauthorized = errors.New("invalid token")
	// ErrState: the request does not fit the record's state (playing a job
	// that is not manual, retrying one that runs).
	ErrState = errors.New("not possible in this state")
)

// Config tunes the scheduler. The zero value of a field means its default.
type Config struct {
	// LeaseTimeout is how long an attempt lives without a heartbeat.
	LeaseTimeout time.Duration
	// LostRetries is how many times a job whose runner was lost is run
	// again before it fails with "runner lost". A negative value means 0.
	LostRetries int
	// JobTimeout bounds a job whose pipeline sets no timeout:.
	JobTimeout time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Logger receives the scheduler's structured logs.
	Logger *slog.Logger
	// Observer is told of starts, finishes and lost attempts (metrics).
	Observer Observer
	// Peers, when set, hears of every change the scheduler commits, to
	// pass it on to the other servers sharing the store: their waiters
	// must wake too. Wake is the receiving end.
	Peers Peers
}

// Peers passes changes on to the other servers sharing the store.
type Peers interface {
	// Publish says that the pipeline's jobs or logs changed (when
	// pipelineID > 0) and whether jobs may have become pending. It must
	// not block.
	Publish(pipelineID int64, pending bool)
}

// Observer is told what the scheduler did, for metrics.
type Observer interface {
	// JobStarted is called when an attempt starts, with the time its job
	// waited since it became pending, the labels of the agent that took
	// it, and whether that agent was there before the job became pending
	// (the job found a warm runner) or came after.
	JobStarted(queued time.Duration, agentLabels []string, warm bool)
	// JobFinished is called when a job reaches a final status.
	JobFinished(status store.JobStatus, took time.Duration)
	// AttemptLost is called when an attempt's lease expires.
	AttemptLost()
}

type nopObserver struct{}

func (nopObserver) JobStarted(time.Duration, []string, bool)   {}
func (nopObserver) JobFinished(store.JobStatus, time.Duration) {}
func (nopObserver) AttemptLost()                               {}

// Scheduler is the control plane's state machine over a store.
type Scheduler struct {
	store store.Store
	cfg   Config
	log   *slog.Logger
	obs   Observer

	// pending is signalled whenever a job may have become claimable.
	pending *Signal
	// changes is signalled, keyed by pipeline ID, when a pipeline's jobs
	// or logs change.
	changes *Signals
}

// New returns a scheduler over s.
func New(s store.Store, cfg Config) *Scheduler {
	if cfg.LeaseTimeout <= 0 {
		cfg.LeaseTimeout = DefaultLeaseTimeout
	}
	if cfg.LostRetries == 0 {
		cfg.LostRetries = DefaultLostRetries
	}
	if cfg.LostRetries < 0 {
		cfg.LostRetries = 0
	}
	if cfg.JobTimeout <= 0 {
		cfg.JobTimeout = DefaultJobTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	obs := cfg.Observer
	if obs == nil {
		obs = nopObserver{}
	}
	return &Scheduler{store: s, cfg: cfg, log: cfg.Logger, obs: obs, pending: NewSignal(), changes: NewSignals()}
}

// LeaseTimeout is the lease an attempt gets at each claim and heartbeat.
func (s *Scheduler) LeaseTimeout() time.Duration { return s.cfg.LeaseTimeout }

// AgentHeartbeatInterval is how often agents must report their health:
// every 10 s, or every third of a lease when leases are shorter. An agent
// silent for three leases is marked gone.
func (s *Scheduler) AgentHeartbeatInterval() time.Duration {
	return HeartbeatInterval(s.cfg.LeaseTimeout)
}

// HeartbeatInterval is how often agents report to a server whose lease
// timeout is lease.
func HeartbeatInterval(lease time.Duration) time.Duration {
	return min(10*time.Second, lease/3)
}

func (s *Scheduler) now() time.Time { return s.cfg.Now().UTC() }

// Changes returns a channel closed at the next change of the pipeline's
// jobs or logs.
// The caller must call release when it stops waiting.
func (s *Scheduler) Changes(pipelineID int64) (changed <-chan struct{}, release func()) {
	return s.changes.Wait(pipelineID)
}

// NewToken returns a fresh secret token and its SHA-256, which is what the
// store keeps.
func NewToken() (token string, hash []byte) {
	b := make([]byte, 24)
	rand.Read(b)
	token = hex.EncodeToString(b)
	return token, HashToken(token)
}

// HashToken is the SHA-256 of a token.
func HashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// settle advances the pipeline's created jobs, writes the jobs that moved
// and the pipeline's status, and reports whether a job became pending.
// It runs inside the caller's transaction.
func (s *Scheduler) settle(ctx context.Context, tx store.Tx, pipelineID int64, now time.Time) (bool, error) {
	counts, err := tx.Jobs().CountPipeline(ctx, pipelineID)
	if err != nil {
		return false, err
	}
	if counts.ByStatus[store.JobCreated] == 0 {
		// Nothing can move: the counts alone give the status.
		return false, s.setPipelineStatus(ctx, tx, pipelineID, countedStatus(counts), now)
	}
	jobs, err := tx.Jobs().ListStates(ctx, pipelineID)
	if err != nil {
		return false, err
	}
	woke := false
	for _, j := range advance(jobs, now) {
		if j.Status == store.JobPending && j.When == "delayed" {
			// The delay lives in the spec, which ListStates leaves out.
			full, err := tx.Jobs().Get(ctx, j.ID)
			if err != nil {
				return false, err
			}
			j.RunAfter = now.Add(full.Spec.StartIn)
			s.wakeAt(j.RunAfter)
		}
		if j.Status == store.JobPending {
			woke = true
			if j.Reason, err = s.waitingReason(ctx, tx, j.Tags); err != nil {
				return false, err
			}
		}
		if err := tx.Jobs().Update(ctx, j); err != nil {
			return false, err
		}
	}
	return woke, s.setPipelineStatus(ctx, tx, pipelineID, pipelineStatus(jobs), now)
}

// setPipelineStatus records the status the pipeline's jobs give it.
func (s *Scheduler) setPipelineStatus(ctx context.Context, tx store.Tx, pipelineID int64, status store.PipelineStatus, now time.Time) error {
	p, err := tx.Pipelines().Get(ctx, pipelineID)
	if err != nil {
		return err
	}
	if status == store.PipelineRunning && p.StartedAt.IsZero() && p.Status == store.PipelineCreated {
		status = store.PipelineCreated // running begins with the first attempt
	}
	if status == p.Status {
		return nil
	}
	p.Status = status
	if status.Final() {
		p.FinishedAt = now
	} else {
		p.FinishedAt = time.Time{}
	}
	if err := tx.Pipelines().Update(ctx, p); err != nil {
		return err
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "pipeline status", slog.Int64("pipeline_id", p.ID), slog.String("status", string(status)))
	return nil
}

// waitingReason says why no agent can take a job with tags, or "" when
// one can.
func (s *Scheduler) waitingReason(ctx context.Context, tx store.Tx, tags []string) (string, error) {
	if len(tags) == 0 {
		return "", nil
	}
	agents, err := tx.Agents().List(ctx, false)
	if err != nil {
		return "", err
	}
	return labelReason(agents, tags), nil
}

// labelReason says why none of agents can take a job with tags, or "".
func labelReason(agents []*store.Agent, tags []string) string {
	if len(tags) == 0 {
		return ""
	}
	for _, a := range agents {
		if a.Status == store.AgentActive && subset(tags, a.Labels) {
			return ""
		}
	}
	return fmt.Sprintf("no agent has the labels %s", quoteList(tags))
}

func subset(tags, labels []string) bool {
	for _, t := range tags {
		found := false
		for _, l := range labels {
			if l == t {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func quoteList(s []string) string {
	out := ""
	for i, v := range s {
		if i > 0 {
			out += ", "
		}
		out += fmt.Sprintf("%q", v)
	}
	return out
}

// wakeAt wakes waiting claimers at t, when a delayed job comes due. (A
// wake-up for a transaction that then rolls back only makes claimers look
// once more.)
func (s *Scheduler) wakeAt(t time.Time) {
	if d := t.Sub(s.now()); d > 0 {
		time.AfterFunc(d, func() { s.afterCommit(0, true) })
	}
}

// afterCommit signals what a committed transaction changed: the pipeline
// (when pipelineID > 0) and whether jobs became pending, here and, through
// Peers, on the other servers.
func (s *Scheduler) afterCommit(pipelineID int64, woke bool) {
	s.Wake(pipelineID, woke)
	if s.cfg.Peers != nil {
		s.cfg.Peers.Publish(pipelineID, woke)
	}
}

// Wake wakes the waiters of this server for a change committed elsewhere:
// those following the pipeline (when pipelineID > 0) and, when pending,
// the claims waiting for a job.
func (s *Scheduler) Wake(pipelineID int64, pending bool) {
	if pending {
		s.pending.Notify()
	}
	if pipelineID > 0 {
		s.changes.Notify(pipelineID)
	}
}

// WakeAll wakes every waiter of this server: after changes made elsewhere
// may have gone unheard, everyone looks at the store again.
func (s *Scheduler) WakeAll() {
	s.pending.Notify()
	s.changes.NotifyAll()
}
