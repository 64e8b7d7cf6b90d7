package autoscaler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/hangar-ci/hangar/internal/fleet"
	"github.com/hangar-ci/hangar/internal/fleet/provider"
	"github.com/hangar-ci/hangar/internal/store"
)

// rateWindow is how far back arrival and completion rates look; boots how
// many recent boots give the provisioning time.
const (
	rateWindow = 10 * time.Minute
	shortRate  = 2 * time.Minute
	bootWindow = 20
)

// ClassStatus is a class as the last pass saw it.
type ClassStatus struct {
	Name     string   `json:"name"`
	Provider string   `json:"provider"`
	Policy   string   `json:"policy"`
	Labels   []string `json:"labels"`
	// Pending counts the jobs waiting for the class, Warm the idle
	// instances its policy wants now.
	Pending int `json:"pending"`
	Warm    int `json:"warm"`
	// Degraded is set while the breaker holds creation back, after boot
	// failures in a row, until BreakerUntil.
	Degraded     bool             `json:"degraded"`
	BreakerUntil *time.Time       `json:"breaker_until,omitempty"`
	Instances    []InstanceStatus `json:"instances"`
}

// InstanceStatus is one instance as the last pass saw it.
type InstanceStatus struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	State string `json:"state"`
	// Running and JobsRun count its agent's attempts, now and in all.
	Running   int       `json:"running"`
	JobsRun   int       `json:"jobs_run"`
	CreatedAt time.Time `json:"created_at"`
	// DiskUsedPercent is its work dir's disk, from its last heartbeat.
	DiskUsedPercent float64 `json:"disk_used_percent"`
	// Reason says why it drains.
	Reason string `json:"reason,omitempty"`
}

// reconcileClass observes, decides and acts for one class; maxCreate
// bounds what it may create (negative: no bound). It returns how many
// instances it created.
func (a *Autoscaler) reconcileClass(ctx context.Context, cs *classState, insts []provider.Instance, w *world, pending []*store.Job, arrived, maxCreate int) (int, error) {
	c := cs.class
	now := a.cfg.Now()
	a.observeRates(cs, w, arrived, insts, now)
	status := ClassStatus{Name: c.Name, Provider: c.Provider, Policy: string(c.Policy), Labels: c.Labels, Pending: len(pending)}
	var obs []fleet.Instance
	var errs []error
	listed := map[string]bool{}
	for _, in := range insts {
		listed[in.Name] = true
		if a.isDeleting(in.ID) {
			continue
		}
		ag := w.agents[in.Name]
		created := in.CreatedAt
		if t, ok := cs.created[in.Name]; ok {
			created = t
		}
		st := InstanceStatus{ID: in.ID, Name: in.Name, CreatedAt: created}
		a.noteBirth(in.ID, created)
		switch {
		case in.State == provider.StateStopped && ag == nil && !cs.booted[in.Name] && cs.ours(in.Name):
			a.bootFailed(ctx, cs, in, now, "its instance stopped before its agent registered")
			continue
		case in.State == provider.StateStopped:
			a.remove(ctx, cs, in, ag, "lost", "its instance stopped")
			continue
		case ag == nil && cs.booted[in.Name]:
			a.remove(ctx, cs, in, nil, "deleted", "its agent deregistered")
			continue
		case ag == nil:
			if c.BootTimeout > 0 && now.Sub(later(created, a.started)) > c.BootTimeout && !a.registered(ctx, in.Name) {
				reason := fmt.Sprintf("its agent did not register within %s", c.BootTimeout)
				if cs.ours(in.Name) {
					a.bootFailed(ctx, cs, in, now, reason)
				} else {
					a.remove(ctx, cs, in, nil, "lost", reason)
				}
				continue
			}
			obs = append(obs, fleet.Instance{ID: in.ID, State: fleet.Booting, CreatedAt: created})
			st.State = string(fleet.Booting)
			status.Instances = append(status.Instances, st)
			continue
		}
		if !cs.booted[in.Name] {
			cs.booted[in.Name] = true
			cs.failures, cs.trips = 0, 0
			if _, ours := cs.created[in.Name]; ours {
				boot := ag.CreatedAt.Sub(created)
				cs.boots = append(cs.boots, boot)
				if len(cs.boots) > bootWindow {
					cs.boots = cs.boots[1:]
				}
				a.metrics.provisioning.WithLabelValues(c.Name).Observe(boot.Seconds())
				a.record(Event{Class: c.Name, Instance: in.Name, Kind: "ready", Reason: fmt.Sprintf("its agent registered after %s", boot.Round(time.Second))})
			} else {
				a.record(Event{Class: c.Name, Instance: in.Name, Kind: "adopted", Reason: "found running at start"})
			}
		}
		running := w.running[ag.ID]
		st.Running, st.JobsRun, st.DiskUsedPercent = running, w.uses[ag.ID], diskUsed(ag)
		// Silence counts from the autoscaler's start at the earliest: a
		// server that was down heard nobody.
		if silent := now.Sub(later(ag.LastSeenAt, a.started)); c.HeartbeatTimeout > 0 && silent > c.HeartbeatTimeout {
			a.remove(ctx, cs, in, ag, "lost", fmt.Sprintf("its agent was silent for %s", silent.Round(time.Second)))
			continue
		}
		if c.MaxDiskUsedPercent > 0 && st.DiskUsedPercent > c.MaxDiskUsedPercent && ag.Status == store.AgentActive {
			reason := fmt.Sprintf("its disk is %.0f%% full, above %.0f%%", st.DiskUsedPercent, c.MaxDiskUsedPercent)
			if n, err := a.drain(ctx, cs, in, ag, reason); err != nil {
				errs = append(errs, err)
			} else {
				ag.Status, running = store.AgentDraining, n
			}
		}
		if running == 0 {
			if _, ok := cs.idleSince[in.Name]; !ok {
				cs.idleSince[in.Name] = now
			}
		} else {
			delete(cs.idleSince, in.Name)
		}
		state := fleet.Ready
		if ag.Status == store.AgentDraining {
			state = fleet.Draining
			n, err := a.cfg.Scheduler.DrainAgent(ctx, ag.ID)
			if err != nil {
				errs = append(errs, err)
			} else if n == 0 {
				a.remove(ctx, cs, in, ag, "deleted", a.drainReason(cs, in.Name))
				continue
			}
			st.Reason = a.drainReason(cs, in.Name)
		}
		st.State = string(state)
		status.Instances = append(status.Instances, st)
		obs = append(obs, fleet.Instance{ID: in.ID, State: state, Running: running, Uses: w.uses[ag.ID],
			CreatedAt: created, IdleSince: cs.idleSince[in.Name]})
	}
	cs.forget(listed)
	idle := 0
	for _, in := range obs {
		if in.State == fleet.Ready && in.Running == 0 {
			idle++
		}
	}
	if !cs.lastPass.IsZero() {
		a.metrics.idleSeconds.WithLabelValues(c.Name).Add(float64(idle) * now.Sub(cs.lastPass).Seconds())
	}
	cs.lastPass = now

	o := fleet.Observation{Now: now, Pending: len(pending), Instances: obs, MaxCreate: maxCreate,
		ArrivalRate: rate(cs.arrivals, now), CompletionRate: float64(len(cs.ends)) / rateWindow.Seconds(),
		ProvisionTime: cs.provisionTime(c)}
	if now.Before(cs.breakerUntil) {
		o.MaxCreate = 0
		status.Degraded = true
		until := cs.breakerUntil
		status.BreakerUntil = &until
	}
	d := fleet.Decide(c, o)
	status.Warm = d.Warm
	for _, r := range d.Remove {
		i := slices.IndexFunc(insts, func(in provider.Instance) bool { return in.ID == r.ID })
		if i < 0 {
			continue
		}
		in := insts[i]
		ag := w.agents[in.Name]
		if ag == nil { // still booting, unless it registered since the pass began
			if !a.registered(ctx, in.Name) {
				a.remove(ctx, cs, in, nil, "deleted", r.Reason)
			}
			continue
		}
		n, err := a.drain(ctx, cs, in, ag, r.Reason)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if n == 0 {
			a.remove(ctx, cs, in, ag, "deleted", r.Reason)
		}
	}
	created := 0
	if d.Create > 0 {
		n, err := a.create(ctx, cs, d.Create, now)
		created = n
		if err != nil {
			errs = append(errs, err)
		}
	}
	a.mu.Lock()
	cs.status = status
	a.mu.Unlock()
	return created, errors.Join(errs...)
}

// observeRates records the class's jobs that became pending since the
// last pass, and estimates the attempts that ended on its instances from
// how many started and how many run now.
func (a *Autoscaler) observeRates(cs *classState, w *world, arrived int, insts []provider.Instance, now time.Time) {
	for range arrived {
		cs.arrivals = append(cs.arrivals, now)
	}
	uses, running := 0, 0
	for _, in := range insts {
		if ag := w.agents[in.Name]; ag != nil {
			uses += w.uses[ag.ID]
			running += w.running[ag.ID]
		}
	}
	if cs.passes > 0 {
		for range max((uses-cs.lastUses)-(running-cs.lastRunning), 0) {
			cs.ends = append(cs.ends, now)
		}
	}
	cs.passes++
	cs.lastUses, cs.lastRunning = uses, running
	cs.arrivals = trim(cs.arrivals, now.Add(-rateWindow))
	cs.ends = trim(cs.ends, now.Add(-rateWindow))
}

// trim drops the times before cut from ts, which is sorted.
func trim(ts []time.Time, cut time.Time) []time.Time {
	i := 0
	for i < len(ts) && ts[i].Before(cut) {
		i++
	}
	return ts[i:]
}

// rate is the recent rate of the events at times ts: over the long window,
// or the short one when that is higher, so that a rise is seen at once and
// a fall slowly.
func rate(ts []time.Time, now time.Time) float64 {
	short := len(trim(ts, now.Add(-shortRate)))
	return max(float64(len(ts))/rateWindow.Seconds(), float64(short)/shortRate.Seconds())
}

// provisionTime is the 90th percentile of the class's recent boots, or
// its boot timeout's half until there are some.
func (cs *classState) provisionTime(c *fleet.Class) time.Duration {
	if len(cs.boots) == 0 {
		return max(c.BootTimeout/2, 30*time.Second)
	}
	b := slices.Clone(cs.boots)
	slices.Sort(b)
	return b[len(b)*9/10]
}

// forget drops what the class state remembers of instances no longer
// listed.
func (cs *classState) forget(listed map[string]bool) {
	for _, m := range []map[string]time.Time{cs.created, cs.idleSince} {
		for name := range m {
			if !listed[name] {
				delete(m, name)
			}
		}
	}
	for name := range cs.booted {
		if !listed[name] {
			delete(cs.booted, name)
		}
	}
	for name := range cs.draining {
		if !listed[name] {
			delete(cs.draining, name)
		}
	}
}

// diskUsed is the agent's work dir's disk use in percent, 0 when unknown.
func diskUsed(ag *store.Agent) float64 {
	h := ag.Health
	if h.DiskTotalBytes <= 0 {
		return 0
	}
	return 100 * float64(h.DiskTotalBytes-h.DiskFreeBytes) / float64(h.DiskTotalBytes)
}

// drain takes the instance's agent out of the claims and returns how many
// attempts it still runs.
func (a *Autoscaler) drain(ctx context.Context, cs *classState, in provider.Instance, ag *store.Agent, reason string) (int, error) {
	n, err := a.cfg.Scheduler.DrainAgent(ctx, ag.ID)
	if err != nil {
		return 0, fmt.Errorf("drain %s: %w", in.Name, err)
	}
	if _, ok := cs.draining[in.Name]; !ok {
		cs.draining[in.Name] = reason
		a.record(Event{Class: cs.class.Name, Instance: in.Name, Kind: "draining", Reason: reason})
	}
	return n, nil
}

func (a *Autoscaler) drainReason(cs *classState, name string) string {
	if r, ok := cs.draining[name]; ok {
		return r
	}
	return "drained"
}

// bootFailed deletes an instance whose agent did not register (in time,
// or at all), and opens the class's breaker after too many in a row.
func (a *Autoscaler) bootFailed(ctx context.Context, cs *classState, in provider.Instance, now time.Time, reason string) {
	c := cs.class
	a.metrics.bootFailures.WithLabelValues(c.Name).Inc()
	a.remove(ctx, cs, in, nil, "boot_failed", reason)
	cs.failures++
	if cs.failures >= breakerFailures && !now.Before(cs.breakerUntil) {
		// Each trip doubles the wait; between trips one instance probes.
		cs.trips++
		backoff := breakerBase << min(cs.trips-1, 5)
		cs.breakerUntil = now.Add(min(backoff, breakerMax))
		cs.failures = breakerFailures - 1
		a.log.LogAttrs(ctx, slog.LevelWarn, "runner class degraded: instances fail to boot", slog.String("class", c.Name),
			slog.Int("failures_in_a_row", cs.failures), slog.Time("retry_at", cs.breakerUntil))
	}
}

// create asks the class's provider for n instances.
func (a *Autoscaler) create(ctx context.Context, cs *classState, n int, now time.Time) (int, error) {
	c := cs.class
	spec := provider.CreateSpec{Owner: a.owner(), Class: c.Name, Server: a.cfg.Server,
		RegistrationToken: a.cfg.RegistrationToken, Labels: append(slices.Clone(c.Labels), fleet.ClassLabel(c.Name)),
		Capacity: max(c.CapacityPerInstance, 1),
		MaxJobs:  c.MaxUseCount}
	insts, err := a.cfg.Providers[c.Name].Create(ctx, spec, n)
	for _, in := range insts {
		cs.created[in.Name] = now
		a.record(Event{Class: c.Name, Instance: in.Name, Kind: "created"})
	}
	if err != nil {
		return len(insts), fmt.Errorf("create %d instances (%d created): %w", n, len(insts), err)
	}
	return len(insts), nil
}

// remove deletes the instance in the background: the provider deletes it
// (its agent, told to stop, deregisters), the agent is deregistered if it
// did not, and the class's hooks hear of it. A slow deletion never holds
// the loop up.
func (a *Autoscaler) remove(ctx context.Context, cs *classState, in provider.Instance, ag *store.Agent, kind, reason string) {
	created := in.CreatedAt
	if t, ok := cs.created[in.Name]; ok {
		created = t
	}
	a.removeInstance(ctx, cs.class, in, ag, kind, reason, created)
}

// removeInstance is remove for a goroutine other than the loop's: it
// touches no class state.
func (a *Autoscaler) removeInstance(ctx context.Context, c *fleet.Class, in provider.Instance, ag *store.Agent, kind, reason string, created time.Time) {
	if !a.startDeleting(in.ID) {
		return
	}
	a.record(Event{Class: c.Name, Instance: in.Name, Kind: kind, Reason: reason})
	p := a.cfg.Providers[c.Name]
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		bg := context.WithoutCancel(ctx)
		if err := p.Delete(bg, in.ID); err != nil {
			a.doneDeleting(in.ID, false)
			a.log.LogAttrs(bg, slog.LevelWarn, "delete instance", slog.String("class", c.Name), slog.String("instance", in.Name),
				slog.String("error", err.Error()))
			return
		}
		a.doneDeleting(in.ID, true)
		jobs := 0
		if ag != nil {
			// The agent deregistered when it was told to stop, unless it
			// could not: make sure, handing back what it held.
			if err := a.cfg.Scheduler.DeregisterTo(bg, ag.ID, fallbackTag(c)); err != nil && !errors.Is(err, store.ErrNotFound) {
				a.log.LogAttrs(bg, slog.LevelWarn, "deregister agent", slog.String("agent", ag.Name), slog.String("error", err.Error()))
			}
			a.cfg.Store.Read(bg, func(tx store.Tx) error {
				jobs, _ = tx.Jobs().CountAgentAttempts(bg, ag.ID)
				return nil
			})
		}
		if a.cfg.Notifier != nil {
			agent := ""
			if ag != nil {
				agent = ag.Name
			}
			if created.IsZero() {
				created = a.bornAt(in.ID)
			}
			a.cfg.Notifier.Notify(bg, c.Hooks, fleet.RemovalEvent{
				Installation: a.owner(), Class: c.Name, Instance: in.ID, Agent: agent, Reason: reason,
				JobsRun: jobs, CreatedAt: created, RemovedAt: a.cfg.Now(),
			})
		}
	}()
}

// startDeleting marks id as being deleted; false if it is, or was: an
// instance is deleted once, whatever a stale list or a late notice says.
func (a *Autoscaler) startDeleting(id string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.deleting[id] || !a.deleted[id].IsZero() {
		return false
	}
	a.deleting[id] = true
	return true
}

// doneDeleting records that id is gone, or that its deletion failed and
// may be tried again.
func (a *Autoscaler) doneDeleting(id string, gone bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.deleting, id)
	if !gone {
		return
	}
	now := a.cfg.Now()
	a.deleted[id] = now
	delete(a.born, id)
	for old, at := range a.deleted {
		if now.Sub(at) > tombstoneTTL {
			delete(a.deleted, old)
		}
	}
}

// isDeleting reports whether id is being deleted or was.
func (a *Autoscaler) isDeleting(id string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.deleting[id] || !a.deleted[id].IsZero()
}

// registered reports whether an agent called name is registered now: a
// last look before an instance that seemed to be booting is deleted.
func (a *Autoscaler) registered(ctx context.Context, name string) bool {
	found := false
	a.cfg.Store.Read(ctx, func(tx store.Tx) error {
		agents, err := tx.Agents().List(ctx, false)
		for _, ag := range agents {
			found = found || ag.Name == name
		}
		return err
	})
	return found
}

// ours reports whether this server created the instance called name
// (rather than adopting it).
func (cs *classState) ours(name string) bool {
	_, ok := cs.created[name]
	return ok
}

// later returns the later of a and b.
func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// fallbackTag is the tag the jobs handed back by an instance of c get: its
// fallback class's label for a spot class that has one, so that they run
// again there.
func fallbackTag(c *fleet.Class) string {
	if c.Spot && c.FallbackClass != "" {
		return fleet.ClassLabel(c.FallbackClass)
	}
	return ""
}

// noteBirth remembers when instance id was created, for the hooks of a
// removal that a notice, not the loop, starts.
func (a *Autoscaler) noteBirth(id string, at time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.born[id]; !ok {
		a.born[id] = at
	}
}

// bornAt returns when instance id was created, zero when unknown.
func (a *Autoscaler) bornAt(id string) time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.born[id]
}
