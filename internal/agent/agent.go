// Package agent is `hangar agent`: it registers with a server, claims jobs
// by long-polling, runs each attempt through an executor in a fresh
// workspace, streams the log, heartbeats, and reports how the attempt
// ended. It survives a flaky network: every call is retried with backoff
// and jitter, and log output waits in memory until the server has it.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hangar-ci/hangar/internal/api"
	"github.com/hangar-ci/hangar/internal/cache"
	"github.com/hangar-ci/hangar/internal/executor"
)

// Defaults for Config.
const (
	DefaultClaimWait       = 30 * time.Second
	DefaultShutdownTimeout = 10 * time.Minute
	DefaultAfterScriptTime = 5 * time.Minute
	DefaultHealthInterval  = 10 * time.Second
	// reportTimeout bounds how long a stopping agent tries to report the
	// attempts it handed back.
	reportTimeout = 30 * time.Second
)

// Config is what an Agent needs. Server, RegistrationToken, WorkDir and
// Executor are required.
type Config struct {
	// Server is the server's base URL.
	Server string
	// RegistrationToken is the server's agent token, exchanged at start
	// for a token of this agent's own.
	RegistrationToken string
	// Name identifies the agent in the server's lists (default: hostname).
	Name string
	// Labels are matched against jobs' tags.
	Labels []string
	// Concurrency is how many attempts run at once (default 1).
	Concurrency int
	// MaxJobs is how many attempts the agent takes in its life; it then
	// takes no more (and waits to be stopped). 0 means no limit: the
	// fleet sets it from a class's max_use_count, so that an instance is
	// recycled before it runs one job too many.
	MaxJobs int
	// WorkDir holds the attempts' workspaces.
	WorkDir  string
	Executor executor.Executor
	// Cache keeps the jobs' caches (default: a directory in WorkDir).
	Cache CacheStore
	// ClaimWait is how long one claim call waits for a job.
	ClaimWait time.Duration
	// ShutdownTimeout is how long a stopping agent lets running attempts
	// finish before it hands them back.
	ShutdownTimeout time.Duration
	// HealthInterval is how often the agent reports its health.
	HealthInterval time.Duration
	// Backoff spaces out retried calls (default 100ms to 10s).
	Backoff api.Backoff
	Version string
	Logger  *slog.Logger
	// HTTPClient makes the calls (default: a client without timeout; claims
	// long-poll).
	HTTPClient *http.Client
}

// Validate reports the first missing or bad field.
func (c *Config) Validate() error {
	switch {
	case c.Server == "":
		return errors.New("agent config: Server is empty")
	case c.RegistrationToken == "":
		return errors.New("agent config: RegistrationToken is empty")
	case c.WorkDir == "":
		return errors.New("agent config: WorkDir is empty")
	case c.Executor == nil:
		return errors.New("agent config: Executor is nil")
	case c.Concurrency < 0:
		return fmt.Errorf("agent config: Concurrency is %d, want 1 or more", c.Concurrency)
	case c.MaxJobs < 0:
		return fmt.Errorf("agent config: MaxJobs is %d, want 0 (no limit) or more", c.MaxJobs)
	}
	return nil
}

// Agent is one `hangar agent`.
type Agent struct {
	cfg    Config
	client *api.Client
	log    *slog.Logger

	regMu sync.Mutex // one registration at a time
	// credMu guards the agent's identity, which changes when it has to
	// register again.
	credMu sync.Mutex
	id     int64
	token  string
	// healthEvery is how often the agent reports its health: HealthInterval,
	// or more often when the server asks.
	healthEvery time.Duration

	mu      sync.Mutex
	running map[int64]*attempt // by attempt ID
	taken   int                // attempts taken or being claimed, against MaxJobs
	health  healthProbe
}

// New returns an agent for cfg.
func New(cfg Config) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Name == "" {
		cfg.Name, _ = os.Hostname()
	}
	cfg.Concurrency = max(cfg.Concurrency, 1)
	if cfg.ClaimWait <= 0 {
		cfg.ClaimWait = DefaultClaimWait
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = DefaultShutdownTimeout
	}
	if cfg.HealthInterval <= 0 {
		cfg.HealthInterval = DefaultHealthInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	c := api.NewClient(cfg.Server)
	if cfg.HTTPClient != nil {
		c.HTTP = cfg.HTTPClient
	}
	abs, err := filepath.Abs(cfg.WorkDir)
	if err != nil {
		return nil, fmt.Errorf("agent work dir: %w", err)
	}
	cfg.WorkDir = abs
	if cfg.Cache == nil {
		if cfg.Cache, err = cache.NewDir(filepath.Join(abs, "cache")); err != nil {
			return nil, err
		}
	}
	return &Agent{cfg: cfg, client: c, log: cfg.Logger, running: map[int64]*attempt{}, health: healthProbe{dir: abs},
		healthEvery: cfg.HealthInterval}, nil
}

// ID is the agent's ID once registered.
func (a *Agent) ID() int64 {
	a.credMu.Lock()
	defer a.credMu.Unlock()
	return a.id
}

// creds returns the agent's token and health interval.
func (a *Agent) creds() (string, time.Duration) {
	a.credMu.Lock()
	defer a.credMu.Unlock()
	return a.token, a.healthEvery
}

// Run registers the agent and runs jobs until ctx ends. Then it stops
// claiming, lets running attempts finish for up to ShutdownTimeout, hands
// back the ones still running, and deregisters.
func (a *Agent) Run(ctx context.Context) error {
	if err := os.MkdirAll(a.cfg.WorkDir, 0o755); err != nil {
		return fmt.Errorf("agent work dir: %w", err)
	}
	a.removeLeftovers(ctx)
	if err := a.register(ctx); err != nil {
		return err
	}
	a.log = a.log.With(slog.Int64("agent_id", a.ID()))
	a.log.Info("agent registered", slog.String("server", a.cfg.Server), slog.Any("labels", a.cfg.Labels),
		slog.Int("concurrency", a.cfg.Concurrency))

	// work lives past ctx: attempts keep running while the agent drains.
	work, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWork()
	var wg sync.WaitGroup
	for range a.cfg.Concurrency {
		wg.Go(func() { a.worker(ctx, work) })
	}
	hbDone := make(chan struct{})
	go func() {
		defer close(hbDone)
		a.heartbeatLoop(work)
	}()

	<-ctx.Done()
	a.log.Info("agent stopping: no new jobs", slog.Int("running", a.runningCount()))
	drained := make(chan struct{})
	go func() { wg.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(a.cfg.ShutdownTimeout):
		a.log.Warn("shutdown timeout: handing back running attempts", slog.Int("running", a.runningCount()))
		a.handBack()
		select {
		case <-drained:
		case <-time.After(reportTimeout):
			// The server does not answer: stop trying to report. The
			// attempts' leases will run out and their jobs run again.
			a.log.Error("could not report the handed-back attempts; leaving them to their leases")
			stopWork()
			<-drained
		}
	}
	stopWork()
	<-hbDone
	dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	token, _ := a.creds()
	if _, err := a.client.Do(dctx, http.MethodDelete, "/agent", token, nil, nil); err != nil {
		return fmt.Errorf("deregister: %w", err)
	}
	a.log.Info("agent deregistered")
	return nil
}

// leftoverRemover is an executor that can find what the attempts of an
// earlier run of this agent left behind (containers, networks) by the
// labels the agent gave them, and remove it.
type leftoverRemover interface {
	RemoveLeftovers(ctx context.Context, labels map[string]string) (int, error)
}

// labels returns the labels of an attempt's executor objects: extra, plus
// the ones that name this agent across restarts, its name and work dir.
func (a *Agent) labels(extra map[string]string) map[string]string {
	l := map[string]string{"hangar.agent": a.cfg.Name, "hangar.work_dir": a.cfg.WorkDir}
	maps.Copy(l, extra)
	return l
}

// removeLeftovers removes what an earlier run of this agent, which may
// have crashed, left behind: workspaces, and the containers and networks of
// an executor that makes them. Their attempts are long lost or will be: the
// server runs them again.
func (a *Agent) removeLeftovers(ctx context.Context) {
	builds := filepath.Join(a.cfg.WorkDir, "builds")
	if entries, err := os.ReadDir(builds); err == nil && len(entries) > 0 {
		a.log.Info("removing workspaces left by an earlier run", slog.Int("workspaces", len(entries)))
		for _, e := range entries {
			os.RemoveAll(filepath.Join(builds, e.Name()))
		}
	}
	r, ok := a.cfg.Executor.(leftoverRemover)
	if !ok {
		return
	}
	n, err := r.RemoveLeftovers(ctx, a.labels(nil))
	if err != nil && ctx.Err() == nil {
		a.log.Warn("removing what an earlier run left behind", slog.String("error", err.Error()))
	}
	if n > 0 {
		a.log.Info("removed containers and networks left by an earlier run", slog.Int("removed", n))
	}
}

// reregister registers again when the agent's token is still stale, once
// for all workers that found it so.
func (a *Agent) reregister(ctx context.Context, stale string) error {
	a.regMu.Lock()
	defer a.regMu.Unlock()
	if cur, _ := a.creds(); cur != stale {
		return nil // another worker did it
	}
	a.log.Warn("the server no longer knows this agent; registering again")
	return a.register(ctx)
}

func (a *Agent) register(ctx context.Context) error {
	req := api.RegisterRequest{Name: a.cfg.Name, Labels: a.cfg.Labels, Version: a.cfg.Version, Concurrency: a.cfg.Concurrency}
	var resp api.RegisterResponse
	err := api.Retry(ctx, a.cfg.Backoff, func() error {
		_, err := a.client.Do(ctx, http.MethodPost, "/agents", a.cfg.RegistrationToken, req, &resp)
		if err != nil && api.Retryable(err) {
			a.log.Warn("register: server unreachable, retrying", slog.String("error", err.Error()))
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("register with %s: %w", a.cfg.Server, err)
	}
	a.credMu.Lock()
	defer a.credMu.Unlock()
	a.id, a.token = resp.ID, resp.Token
	if hb := time.Duration(resp.HeartbeatSeconds * float64(time.Second)); hb > 0 {
		a.healthEvery = min(a.cfg.HealthInterval, hb)
	}
	return nil
}

// worker claims and runs attempts one at a time until claimCtx ends.
func (a *Agent) worker(claimCtx, work context.Context) {
	b := a.cfg.Backoff
	for claimCtx.Err() == nil {
		if !a.reserve() {
			a.log.Info("taken its last job (MaxJobs); claiming no more", slog.Int("max_jobs", a.cfg.MaxJobs))
			return
		}
		var as api.Assignment
		token, _ := a.creds()
		code, err := a.client.Do(claimCtx, http.MethodPost, "/agent/claim", token,
			api.ClaimRequest{WaitSeconds: a.cfg.ClaimWait.Seconds()}, &as)
		if err != nil || code == http.StatusNoContent {
			a.unreserve()
		}
		switch {
		case claimCtx.Err() != nil:
			return
		case err != nil:
			a.log.Warn("claim failed", slog.String("error", err.Error()))
			if api.StatusCode(err) == http.StatusUnauthorized {
				// The server forgot us (it was reset, or marked us gone):
				// register again, unless another worker already did.
				if err := a.reregister(claimCtx, token); err != nil {
					return
				}
				continue
			}
			sleep(claimCtx, b.Next())
			continue
		case code == http.StatusNoContent:
			b.Reset()
			continue
		}
		b.Reset()
		a.runAttempt(work, &as)
	}
}

// reserve counts a job about to be claimed against MaxJobs, and reports
// whether it may be.
func (a *Agent) reserve() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cfg.MaxJobs > 0 && a.taken >= a.cfg.MaxJobs {
		return false
	}
	a.taken++
	return true
}

// unreserve gives back a reservation whose claim brought no job.
func (a *Agent) unreserve() {
	a.mu.Lock()
	a.taken--
	a.mu.Unlock()
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func (a *Agent) runningCount() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.running)
}

// handBack stops every running attempt and gives it back to the server.
func (a *Agent) handBack() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, at := range a.running {
		at.stop(stopHandBack)
	}
}

// heartbeatLoop reports the agent's health every HealthInterval (or what
// the server asked for at registration, if shorter), with jitter. (Attempts heartbeat on their own, at a third of their lease.)
func (a *Agent) heartbeatLoop(ctx context.Context) {
	for {
		h := a.health.read(a.runningCount())
		token, every := a.creds()
		if _, err := a.client.Do(ctx, http.MethodPost, "/agent/heartbeat", token, h, nil); err != nil && ctx.Err() == nil {
			a.log.Warn("agent heartbeat failed", slog.String("error", err.Error()))
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(jitter(every)):
		}
	}
}

// jitter returns d ± 10%, so agents started together do not call in step.
func jitter(d time.Duration) time.Duration {
	return d + time.Duration(float64(d)*0.2*(rand.Float64()-0.5))
}
