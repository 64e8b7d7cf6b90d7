package fleet

import (
	"math"
	"slices"
	"time"
)

// InstanceState is where an instance is in its life, as the autoscaler
// sees it.
type InstanceState string

// The instance states.
const (
	// Booting: created, its agent not registered yet.
	Booting InstanceState = "booting"
	// Ready: registered and taking jobs (idle or busy, by Running).
	Ready InstanceState = "ready"
	// Draining: taking no new jobs; deleted once it runs none.
	Draining InstanceState = "draining"
)

// Instance is one instance of a class as the autoscaler sees it.
type Instance struct {
	ID    string
	State InstanceState
	// Running counts the attempts it runs now, Uses those it has started
	// in its life.
	Running, Uses int
	CreatedAt     time.Time
	// IdleSince is when it last ran nothing (its registration, or its last
	// attempt's end); meaningful while Running is 0.
	IdleSince time.Time
}

// idle reports whether the instance takes jobs and runs none.
func (i *Instance) idle() bool {
	return i.State != Draining && i.Running == 0
}

// Observation is what the autoscaler knows of one class at one moment:
// the observe step's output and the decide step's only input.
type Observation struct {
	Now time.Time
	// Pending counts the jobs waiting for this class.
	Pending int
	// Instances are the class's instances, draining ones included.
	Instances []Instance
	// ArrivalRate is the recent rate of jobs arriving for the class and
	// CompletionRate of jobs ending on its instances, in jobs per second;
	// ProvisionTime the recent time from create to ready (a high
	// percentile of it). The adaptive policy sizes the warm pool from them.
	ArrivalRate, CompletionRate float64
	ProvisionTime               time.Duration
	// MaxCreate bounds the instances the decision may create (what the
	// global concurrent cap leaves); negative means no bound.
	MaxCreate int
}

// Removal is an instance to take out, and why. An idle one is deleted at
// once; a busy one drains first.
type Removal struct {
	ID     string
	Reason string
}

// Decision is what the autoscaler does for one class now.
type Decision struct {
	// Create is how many instances to create.
	Create int
	// Remove are the instances to take out, in order.
	Remove []Removal
	// Warm is the idle instances the policy wants kept now.
	Warm int
}

// Removal reasons.
const (
	ReasonMaxUseCount    = "max_use_count reached"
	ReasonMaxInstanceAge = "max_instance_age reached"
	ReasonIdle           = "idle above the pool's size"
	ReasonPerJob         = "its job is done"
)

// adaptiveIdleGrace is how long the adaptive policy keeps an idle instance
// above its warm target, at least, when the class sets no idle_time.
const adaptiveIdleGrace = 5 * time.Minute

// Decide is the autoscaler's decision for class c given obs: a pure
// function, so that the simulator runs the same code on a virtual clock.
//
// Every policy first recycles instances past max_use_count or
// max_instance_age. Then it wants enough free slots for the pending jobs
// plus Warm idle instances' worth, creating what is missing (within
// max_instances, max_concurrent_creates and obs.MaxCreate), and removes
// idle instances beyond that once they have been idle long enough, the
// longest idle first:
//
//   - idle: Warm is idle_count and the grace idle_time (a matching
//     schedule overrides both), as GitLab Runner's autoscalers do;
//   - adaptive: Warm is sized so that the jobs arriving while a new
//     instance boots find a warm slot at target_percentile (Poisson
//     arrivals at obs.ArrivalRate over obs.ProvisionTime), 0 when an
//     instance boots within target_wait or nothing arrives; idle_count
//     (or a matching schedule's) is a floor;
//   - static: max_instances, always;
//   - per_job: one instance per pending job, removed as soon as it is
//     idle.
func Decide(c *Class, obs Observation) Decision {
	capacity := max(c.CapacityPerInstance, 1)
	var d Decision
	active := make([]*Instance, 0, len(obs.Instances))
	booting := 0
	for i := range obs.Instances {
		in := &obs.Instances[i]
		if in.State == Draining {
			continue
		}
		switch {
		case c.MaxUseCount > 0 && in.Uses >= c.MaxUseCount:
			d.Remove = append(d.Remove, Removal{in.ID, ReasonMaxUseCount})
			continue
		case c.MaxInstanceAge > 0 && obs.Now.Sub(in.CreatedAt) >= c.MaxInstanceAge:
			d.Remove = append(d.Remove, Removal{in.ID, ReasonMaxInstanceAge})
			continue
		}
		if in.State == Booting {
			booting++
		}
		active = append(active, in)
	}

	warm, grace := warmTarget(c, obs, capacity)
	d.Warm = warm
	free := 0
	for _, in := range active {
		free += capacity - min(in.Running, capacity)
	}
	want := obs.Pending + warm*capacity
	if c.Policy == PolicyStatic {
		want = max(want, (c.MaxInstances-len(active))*capacity+free)
	}

	switch {
	case free < want:
		// max_instances caps every instance, draining and recycled ones
		// included: they still exist.
		n := ceilDiv(want-free, capacity)
		n = min(n, c.MaxInstances-len(obs.Instances))
		if c.MaxConcurrentCreates > 0 {
			n = min(n, c.MaxConcurrentCreates-booting)
		}
		if obs.MaxCreate >= 0 {
			n = min(n, obs.MaxCreate)
		}
		d.Create = max(n, 0)
	case free > want && c.Policy != PolicyStatic:
		// Idle instances beyond the want go, longest idle first, once
		// their grace is over; each takes capacity free slots with it.
		var idle []*Instance
		for _, in := range active {
			if in.State == Ready && in.idle() && obs.Now.Sub(in.IdleSince) >= grace {
				idle = append(idle, in)
			}
		}
		slices.SortFunc(idle, func(a, b *Instance) int { return a.IdleSince.Compare(b.IdleSince) })
		reason := ReasonIdle
		if c.Policy == PolicyPerJob {
			reason = ReasonPerJob
		}
		for _, in := range idle {
			if free-capacity < want {
				break
			}
			free -= capacity
			d.Remove = append(d.Remove, Removal{in.ID, reason})
		}
	}
	return d
}

// warmTarget returns the idle instances the class's policy wants kept
// now, and how long an idle instance beyond that may stay.
func warmTarget(c *Class, obs Observation, capacity int) (warm int, grace time.Duration) {
	idleCount, idleTime := c.PoolAt(obs.Now)
	switch c.Policy {
	case PolicyStatic:
		return 0, 0
	case PolicyPerJob:
		return 0, 0
	case PolicyAdaptive:
		grace = idleTime
		if grace == 0 {
			grace = max(obs.ProvisionTime, adaptiveIdleGrace)
		}
		// idle_count, or a matching schedule's, is a floor.
		warm = max(adaptiveWarm(c, obs, capacity), idleCount)
		return min(warm, c.MaxInstances), grace
	default: // PolicyIdle
		return min(idleCount, c.MaxInstances), idleTime
	}
}

// adaptiveWarm returns the idle instances that make target_percentile of
// the jobs arriving start within target_wait.
//
// A job that finds no free slot waits for a new instance, at most a boot
// (obs.ProvisionTime); it meets the target if that instance was asked for
// TargetWait before. So what matters is the demand over the last
// W = ProvisionTime-TargetWait before a replacement is up: the jobs
// arriving then, less the slots that jobs ending free meanwhile. Arrivals
// and completions are taken as Poisson at their recent rates and their
// difference X as normal; with k warm slots, E[(X-k)+] jobs of the
// ArrivalRate*W arriving miss one, and k is the least that keeps that
// share within 1-target_percentile. When an instance boots within
// target_wait, or nothing arrives, no warm pool is needed.
func adaptiveWarm(c *Class, obs Observation, capacity int) int {
	target := max(c.TargetWait, 0) // Load makes an unset one 5s
	pct := c.TargetPercentile
	if pct <= 0 || pct >= 100 {
		pct = 90
	}
	if obs.ArrivalRate <= 0 || obs.ProvisionTime <= target {
		return 0
	}
	window := (obs.ProvisionTime - target).Seconds()
	arriving := obs.ArrivalRate * window
	mean := (obs.ArrivalRate - max(obs.CompletionRate, 0)) * window
	sd := math.Sqrt((obs.ArrivalRate + max(obs.CompletionRate, 0)) * window)
	allowed := (1 - pct/100) * arriving
	k := max(int(math.Floor(mean)), 0)
	for k < int(math.Ceil(mean+8*sd)) && expectedExcess(mean, sd, float64(k)) > allowed {
		k++
	}
	return ceilDiv(k, capacity)
}

// expectedExcess is E[(X-k)+] for X normal with the given mean and
// standard deviation.
func expectedExcess(mean, sd, k float64) float64 {
	if sd <= 0 {
		return max(mean-k, 0)
	}
	z := (k - mean) / sd
	pdf := math.Exp(-z*z/2) / math.Sqrt(2*math.Pi)
	tail := 0.5 * math.Erfc(z/math.Sqrt2)
	return sd*pdf + (mean-k)*tail
}

func ceilDiv(a, b int) int {
	return (a + b - 1) / b
}
