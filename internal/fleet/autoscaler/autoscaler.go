// Package autoscaler runs the fleet: one reconcile loop that, for every
// runner class, observes (the class's pending jobs, the provider's
// instances, the agents they registered, their heartbeats), decides with
// fleet.Decide, acts through the class's provider (create, drain, delete)
// and records what it did (events, metrics, the hooks of a removal).
//
// The provider is the truth about which instances exist and the store the
// truth about their agents: the loop keeps in memory only what makes its
// decisions better (boot times, arrival rates, when an instance became
// idle, why it is draining), so a restarted server adopts the instances it
// finds and carries on.
//
// An instance is matched to its agent by name. It is booting until its
// agent registers (deleted after boot_timeout, a boot failure; three in a
// row open the class's breaker, which backs off before it creates again),
// ready while its agent is active, and draining once the autoscaler took
// it out: the agent's status changes to draining in the transaction that
// counts its running attempts, so no claim can race it, and the instance is
// deleted only when that count is 0. An agent silent for heartbeat_timeout
// is lost (its attempts go back to the queue), one whose disk is fuller than
// max_disk_used_percent is drained, and both are replaced.
package autoscaler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hangar-ci/hangar/internal/fleet"
	"github.com/hangar-ci/hangar/internal/fleet/provider"
	"github.com/hangar-ci/hangar/internal/store"
)

// Defaults for Config fields left zero.
const (
	DefaultTick = 5 * time.Second
	// breakerFailures boot failures in a row open a class's breaker,
	// which then waits breakerBase, doubling up to breakerMax, before the
	// class creates again.
	breakerFailures = 3
	breakerBase     = 30 * time.Second
	breakerMax      = 10 * time.Minute
	// maxEvents events are kept for the API.
	maxEvents = 1000
	// storeEventTimeout bounds the update that stores an event.
	storeEventTimeout = 10 * time.Second
	// unservedGrace is how long a job no class and no agent serves waits
	// before it fails: time for an agent that restarts to register again.
	unservedGrace = 5 * time.Second
	// tombstoneTTL is how long a deleted instance's ID is remembered, so
	// that a list or a notice from before its deletion cannot delete it
	// (and run its hooks) again.
	tombstoneTTL = 10 * time.Minute
)

// Scheduler is what the autoscaler asks of the scheduler.
type Scheduler interface {
	// DrainAgent stops the agent taking jobs and returns how many
	// attempts it still runs.
	DrainAgent(ctx context.Context, id int64) (int, error)
	// DeregisterTo is Deregister, the jobs handed back tagged with tag.
	DeregisterTo(ctx context.Context, id int64, tag string) error
	// FailPending fails a pending job no runner can take.
	FailPending(ctx context.Context, id int64, why string) error
}

// Notifier runs the hooks of a removal.
type Notifier interface {
	Notify(ctx context.Context, h fleet.Hooks, ev fleet.RemovalEvent)
}

// Config is what an Autoscaler needs.
type Config struct {
	Fleet *fleet.Config
	// Providers holds each class's provider, by class name.
	Providers map[string]provider.Provider
	Store     store.Store
	Scheduler Scheduler
	// Server and RegistrationToken are what the instances' agents
	// register with.
	Server, RegistrationToken string
	// Notifier runs the removal hooks; nil runs none.
	Notifier Notifier
	// Tick is how often the loop runs; it also runs when Wake is called.
	Tick time.Duration
	// Registerer takes the autoscaler's metrics; nil registers none.
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	Now        func() time.Time
}

// Autoscaler is the fleet's reconcile loop. Run it once.
type Autoscaler struct {
	cfg     Config
	log     *slog.Logger
	wake    chan struct{}
	metrics *metrics

	// classes is read by every goroutine but only changed by the loop;
	// mu guards events, deleting and each class's status.
	classes  map[string]*classState
	mu       sync.Mutex
	events   []Event
	deleting map[string]bool      // instance IDs being deleted
	deleted  map[string]time.Time // and those deleted, for tombstoneTTL
	born     map[string]time.Time // when each instance seen was created
	wg       sync.WaitGroup       // deletions under way
	// started is when Run began: silence and boot times count from it at
	// the earliest. lastRead is when the last pass read the store.
	started, lastRead time.Time
}

// classState is what the loop remembers of one class between passes.
type classState struct {
	class *fleet.Class
	// created is when each instance was asked for, by name; idleSince
	// when a ready one was last seen running nothing; draining why an
	// instance is being taken out.
	created   map[string]time.Time
	idleSince map[string]time.Time
	draining  map[string]string
	booted    map[string]bool
	// boots are recent boot durations; arrivals and ends recent jobs
	// becoming pending for the class and attempts ending on it.
	boots          []time.Duration
	arrivals, ends []time.Time

	// passes counts the passes; lastUses and lastRunning are the attempts
	// given and running at the last one, for the completion rate.
	passes, lastUses, lastRunning int
	// lastPass is when the last pass ran, for the idle instance-seconds.
	lastPass time.Time
	// Boot failures in a row, the breaker's trips since the last boot, and
	// until when it holds creation.
	failures, trips int
	breakerUntil    time.Time
	// The last pass's view, for the API.
	status ClassStatus
}

// Event is one instance transition, as the API lists it.
type Event struct {
	At       time.Time `json:"at"`
	Class    string    `json:"class"`
	Instance string    `json:"instance"`
	// Kind is created, ready, draining, deleted, boot_failed, lost,
	// interrupted or adopted.
	Kind   string `json:"kind"`
	Reason string `json:"reason,omitempty"`
}

// New returns an autoscaler for cfg.
func New(cfg Config) (*Autoscaler, error) {
	switch {
	case cfg.Fleet == nil:
		return nil, errors.New("autoscaler config: Fleet is nil")
	case cfg.Store == nil || cfg.Scheduler == nil:
		return nil, errors.New("autoscaler config: Store and Scheduler are required")
	case cfg.Server == "" || cfg.RegistrationToken == "":
		return nil, errors.New("autoscaler config: Server and RegistrationToken are required")
	}
	for i := range cfg.Fleet.Classes {
		if cfg.Providers[cfg.Fleet.Classes[i].Name] == nil {
			return nil, fmt.Errorf("autoscaler config: class %s has no provider", cfg.Fleet.Classes[i].Name)
		}
	}
	if cfg.Tick <= 0 {
		cfg.Tick = DefaultTick
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	a := &Autoscaler{cfg: cfg, log: cfg.Logger, wake: make(chan struct{}, 1), classes: map[string]*classState{},
		deleting: map[string]bool{}, deleted: map[string]time.Time{}, born: map[string]time.Time{}}
	for i := range cfg.Fleet.Classes {
		c := &cfg.Fleet.Classes[i]
		a.classes[c.Name] = &classState{class: c, created: map[string]time.Time{}, idleSince: map[string]time.Time{},
			draining: map[string]string{}, booted: map[string]bool{}}
	}
	m, err := newMetrics(cfg.Registerer, a)
	if err != nil {
		return nil, err
	}
	a.metrics = m
	return a, nil
}

// Wake makes the loop run a pass soon, as when a job becomes pending.
func (a *Autoscaler) Wake() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// Run reconciles until ctx ends: a pass at once (adopting what the
// providers list), then one every Tick or after Wake, and it follows the
// providers' interruption notices.
func (a *Autoscaler) Run(ctx context.Context) error {
	a.started = a.cfg.Now()
	a.removeUnknownClasses(ctx)
	// Deletions under way finish, after the notices' followers (which
	// start deletions) have stopped: an instance half deleted is found
	// again by the next server, but its hooks would not run.
	var followers sync.WaitGroup
	defer a.wg.Wait()
	defer followers.Wait()
	for _, p := range a.distinctProviders() {
		if ch := p.Interruptions(ctx, a.owner()); ch != nil {
			followers.Go(func() { a.followInterruptions(ctx, ch) })
		}
	}
	t := time.NewTicker(a.cfg.Tick)
	defer t.Stop()
	for {
		if err := a.Reconcile(ctx); err != nil && ctx.Err() == nil {
			a.log.LogAttrs(ctx, slog.LevelWarn, "fleet reconcile", slog.String("error", err.Error()))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		case <-a.wake:
		}
	}
}

// owner is the installation's name, the instances' ownership label.
func (a *Autoscaler) owner() string {
	if a.cfg.Fleet.Installation != "" {
		return a.cfg.Fleet.Installation
	}
	return "hangar"
}

// removeUnknownClasses deletes the instances the installation owns in
// classes the configuration no longer has: nothing it owns is leaked.
func (a *Autoscaler) removeUnknownClasses(ctx context.Context) {
	for _, p := range a.distinctProviders() {
		insts, err := p.List(ctx, a.owner(), "")
		if err != nil {
			a.log.LogAttrs(ctx, slog.LevelWarn, "list instances", slog.String("error", err.Error()))
			continue
		}
		for _, in := range insts {
			if _, ok := a.classes[in.Class]; ok {
				continue
			}
			if err := p.Delete(ctx, in.ID); err != nil {
				a.log.LogAttrs(ctx, slog.LevelWarn, "delete instance of an unknown class", slog.String("instance", in.Name),
					slog.String("error", err.Error()))
				continue
			}
			a.record(Event{Class: in.Class, Instance: in.Name, Kind: "deleted", Reason: "its class is not configured any more"})
		}
	}
}

// world is what one pass reads from the store.
type world struct {
	at      time.Time
	agents  map[string]*store.Agent // active and draining, by name
	pending []*store.Job
	// arrived are the jobs that became pending since the last pass,
	// claimed since or not.
	arrived []*store.Job
	running map[int64]int // running attempts by agent ID
	uses    map[int64]int // attempts given, by agent ID
}

// read loads the pass's view of the store.
func (a *Autoscaler) read(ctx context.Context) (*world, error) {
	w := &world{at: a.cfg.Now(), agents: map[string]*store.Agent{}, running: map[int64]int{}, uses: map[int64]int{}}
	since := a.lastRead
	if since.IsZero() {
		since = w.at
	}
	err := a.cfg.Store.Read(ctx, func(tx store.Tx) error {
		agents, err := tx.Agents().List(ctx, false)
		if err != nil {
			return err
		}
		for _, ag := range agents {
			w.agents[ag.Name] = ag
			held, err := tx.Jobs().RunningAttempts(ctx, ag.ID)
			if err != nil {
				return err
			}
			w.running[ag.ID] = len(held)
			if w.uses[ag.ID], err = tx.Jobs().CountAgentAttempts(ctx, ag.ID); err != nil {
				return err
			}
		}
		if w.pending, err = tx.Jobs().ListPending(ctx); err != nil {
			return err
		}
		// Delayed jobs are not waiting for a runner yet.
		w.pending = slices.DeleteFunc(w.pending, func(j *store.Job) bool { return j.RunAfter.After(w.at) })
		w.arrived, err = tx.Jobs().ListPendingSince(ctx, since)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read the fleet's state: %w", err)
	}
	a.lastRead = w.at
	return w, nil
}

// served reports whether an active agent's labels cover tags.
func (w *world) served(tags []string) bool {
	for _, ag := range w.agents {
		if ag.Status == store.AgentActive && !slices.ContainsFunc(tags, func(t string) bool { return !slices.Contains(ag.Labels, t) }) {
			return true
		}
	}
	return false
}

// Reconcile runs one pass over every class.
func (a *Autoscaler) Reconcile(ctx context.Context) error {
	w, err := a.read(ctx)
	if err != nil {
		return err
	}
	// Pending jobs go to the first class that serves them; one that no
	// class serves, and no agent either (agents run beside the fleet),
	// fails at once rather than wait for ever.
	pending, arrived := map[string][]*store.Job{}, map[string]int{}
	for _, j := range w.arrived {
		if c, err := a.cfg.Fleet.ClassFor(j.Tags); err == nil {
			arrived[c.Name]++
		}
	}
	var errs []error
	for _, j := range w.pending {
		c, err := a.cfg.Fleet.ClassFor(j.Tags)
		switch {
		case err == nil:
			pending[c.Name] = append(pending[c.Name], j)
		case !w.served(j.Tags) && w.at.Sub(j.PendingAt) >= unservedGrace:
			if err := a.cfg.Scheduler.FailPending(ctx, j.ID, err.Error()); err != nil {
				errs = append(errs, err)
			}
		}
	}
	// The global cap counts the slots of every instance.
	slots := 0
	lists := map[string][]provider.Instance{}
	for i := range a.cfg.Fleet.Classes {
		c := &a.cfg.Fleet.Classes[i]
		insts, err := a.cfg.Providers[c.Name].List(ctx, a.owner(), c.Name)
		if err != nil {
			errs = append(errs, fmt.Errorf("class %s: list instances: %w", c.Name, err))
			continue
		}
		lists[c.Name] = insts
		slots += len(insts) * max(c.CapacityPerInstance, 1)
	}
	for i := range a.cfg.Fleet.Classes {
		c := &a.cfg.Fleet.Classes[i]
		insts, ok := lists[c.Name]
		if !ok {
			continue
		}
		free := -1
		if a.cfg.Fleet.Concurrent > 0 {
			free = max(a.cfg.Fleet.Concurrent-slots, 0) / max(c.CapacityPerInstance, 1)
			if len(lists) < len(a.cfg.Fleet.Classes) {
				free = 0 // a class's instances are unknown: the cap cannot be kept
			}
		}
		created, err := a.reconcileClass(ctx, a.classes[c.Name], insts, w, pending[c.Name], arrived[c.Name], free)
		slots += created * max(c.CapacityPerInstance, 1)
		if err != nil {
			errs = append(errs, fmt.Errorf("class %s: %w", c.Name, err))
		}
	}
	return errors.Join(errs...)
}

// record keeps ev (at now when it has no time) for the API, appends it to
// the store's fleet events and logs it.
func (a *Autoscaler) record(ev Event) {
	if ev.At.IsZero() {
		ev.At = a.cfg.Now()
	}
	a.log.LogAttrs(context.Background(), slog.LevelInfo, "fleet: instance "+ev.Kind, slog.String("class", ev.Class),
		slog.String("instance", ev.Instance), slog.String("reason", ev.Reason))
	a.metrics.events.WithLabelValues(ev.Class, ev.Kind).Inc()
	a.mu.Lock()
	a.events = append(a.events, ev)
	if len(a.events) > maxEvents {
		a.events = slices.Delete(a.events, 0, len(a.events)-maxEvents)
	}
	a.mu.Unlock()
	a.persist(ev) // not under mu: the store may make it wait
}

// persist appends ev to the store's fleet events, in an update of its own
// bounded by storeEventTimeout. A failure is logged and otherwise
// ignored: an event is not worth failing a pass for.
func (a *Autoscaler) persist(ev Event) {
	ctx, cancel := context.WithTimeout(context.Background(), storeEventTimeout)
	defer cancel()
	fe := &store.FleetEvent{At: ev.At, Class: ev.Class, Instance: ev.Instance, Kind: ev.Kind, Reason: ev.Reason}
	err := a.cfg.Store.Update(ctx, func(tx store.Tx) error { return tx.FleetEvents().Append(ctx, fe) })
	if err != nil {
		a.log.LogAttrs(ctx, slog.LevelWarn, "fleet: store an instance event", slog.String("class", ev.Class),
			slog.String("instance", ev.Instance), slog.String("kind", ev.Kind), slog.String("error", err.Error()))
	}
}

// Events returns the recent instance transitions, oldest first.
func (a *Autoscaler) Events() []Event {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.events)
}

// Classes returns every class as the last pass saw it, in the
// configuration's order.
func (a *Autoscaler) Classes() []ClassStatus {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]ClassStatus, 0, len(a.cfg.Fleet.Classes))
	for _, c := range a.cfg.Fleet.Classes {
		st := a.classes[c.Name].status
		if st.Name == "" {
			st = ClassStatus{Name: c.Name, Provider: c.Provider, Policy: string(c.Policy), Labels: c.Labels}
		}
		st.Instances = slices.Clone(st.Instances)
		out = append(out, st)
	}
	return out
}

// followInterruptions handles the notices of p: the instance's agent is
// deregistered at once, so that what it ran goes back to the queue now
// rather than when its lease runs out, and the instance is deleted.
func (a *Autoscaler) followInterruptions(ctx context.Context, notices <-chan provider.Interruption) {
	for n := range notices {
		cs, ok := a.classes[n.Class]
		if !ok || a.isDeleting(n.ID) {
			continue // not ours to handle, or one we deleted ourselves
		}
		a.metrics.interruptions.WithLabelValues(n.Class, string(n.Kind)).Inc()
		var ag *store.Agent
		a.cfg.Store.Read(ctx, func(tx store.Tx) error {
			agents, err := tx.Agents().List(ctx, false)
			for _, x := range agents {
				if x.Name == n.Name {
					ag = x
				}
			}
			return err
		})
		if ag != nil {
			// What the instance ran goes back to the queue now; with a
			// fallback class, to that class only.
			if err := a.cfg.Scheduler.DeregisterTo(ctx, ag.ID, fallbackTag(cs.class)); err != nil {
				a.log.LogAttrs(ctx, slog.LevelWarn, "deregister an interrupted agent", slog.String("agent", n.Name), slog.String("error", err.Error()))
			}
		}
		in := provider.Instance{ID: n.ID, Owner: n.Owner, Class: n.Class, Name: n.Name}
		a.removeInstance(ctx, cs.class, in, ag, "interrupted", n.Reason, time.Time{})
		a.Wake()
	}
}

// distinctProviders returns each provider once: classes with the same
// settings share one.
func (a *Autoscaler) distinctProviders() []provider.Provider {
	var out []provider.Provider
	for _, c := range a.cfg.Fleet.Classes {
		if p := a.cfg.Providers[c.Name]; !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}
