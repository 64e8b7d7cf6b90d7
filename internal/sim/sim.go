package sim

import (
	"container/heap"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/hangar-ci/hangar/internal/fleet"
)

// Model is what the simulation assumes of the provider.
type Model struct {
	// BootMedian and BootP90 shape the log-normal time from create to an
	// instance taking jobs.
	BootMedian, BootP90 time.Duration
	// PricePerHour is an instance-hour's price; SpotPricePerHour a spot
	// one's (classes with spot: true).
	PricePerHour, SpotPricePerHour float64
	// SpotInterruptionsPerHour is the rate at which a spot instance is
	// taken away.
	SpotInterruptionsPerHour float64
	// Tick is how often the autoscaler's loop runs (it also runs when a
	// job arrives or ends). Default 10 s.
	Tick time.Duration
	// Seed makes boot times and interruptions repeatable.
	Seed uint64
}

// DefaultModel returns a provider that boots in about a minute (90 s at
// the 90th percentile), at 0.10 an hour, spot at 0.03 with one
// interruption per 20 instance-hours.
func DefaultModel() Model {
	return Model{BootMedian: 60 * time.Second, BootP90: 90 * time.Second, PricePerHour: 0.10,
		SpotPricePerHour: 0.03, SpotInterruptionsPerHour: 0.05, Tick: 10 * time.Second, Seed: 1}
}

// Result is what one policy gave on a trace: the JSON `hangar sim --json`
// prints for it.
type Result struct {
	Name string `json:"name"`
	Jobs int    `json:"jobs"`
	// Waits are from pending to started, in seconds, by percentile.
	WaitP50 float64 `json:"wait_p50_s"`
	WaitP95 float64 `json:"wait_p95_s"`
	WaitP99 float64 `json:"wait_p99_s"`
	// InstanceHours are paid from create to delete; IdleHours are the
	// part of them an instance was up and ran nothing.
	InstanceHours float64 `json:"instance_hours"`
	IdleHours     float64 `json:"idle_hours"`
	Cost          float64 `json:"cost"`
	// PoolHitRate is the share of jobs that started the moment they
	// arrived, on a warm instance.
	PoolHitRate float64 `json:"pool_hit_rate"`
	// Requeued counts the jobs whose instance was interrupted under them.
	Requeued int `json:"requeued"`
	// Created counts the instances created.
	Created int `json:"instances_created"`
}

// event kinds, in the order they are handled at one instant.
const (
	evBooted = iota
	evJobDone
	evInterrupt
	evArrival
	evTick
)

type event struct {
	at   float64 // seconds
	kind int
	inst *simInstance
	job  int // index in the trace
	gen  int // the instance's generation the event belongs to
}

type eventQueue []event

func (q eventQueue) Len() int { return len(q) }
func (q eventQueue) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].kind < q[j].kind
}
func (q eventQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *eventQueue) Push(x any)   { *q = append(*q, x.(event)) }
func (q *eventQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

type simInstance struct {
	fleet.Instance
	created, readyAt float64
	idleFrom         float64 // when it last became idle while up
	gen              int     // bumped on delete, so stale events are dropped
	deleted          bool
	jobs             []int // running jobs
}

// simulation is one policy's run.
type simulation struct {
	class  *fleet.Class
	model  Model
	trace  []Job
	rng    *rand.Rand
	events eventQueue
	now    float64

	queue     []int // pending jobs, oldest first
	instances []*simInstance
	nextID    int
	arrivals  []float64 // recent arrival times, for the rate
	ends      []float64 // recent job ends, for the rate
	boots     []float64 // recent boot durations
	waits     []float64
	started   []bool // by job: a requeued job's wait counts once
	res       Result
	paidFrom  map[*simInstance]float64
}

// rateWindow is how far back the arrival rate looks; bootWindow how many
// recent boots the provisioning time is taken from.
const (
	rateWindow = 10 * 60.0
	bootWindow = 20
)

// epoch is the virtual clock's zero: a Monday, so that schedules written
// for weekdays apply as the generated traces expect.
var epoch = time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)

// Run simulates class serving trace on the provider model and returns
// what it gave. The class's policy decides through fleet.Decide on every
// tick and whenever a job arrives or ends; jobs go to free slots first
// come, first served.
func Run(name string, class fleet.Class, model Model, trace []Job) Result {
	if model.Tick <= 0 {
		model.Tick = 10 * time.Second
	}
	class.Schedules = slices.Clone(class.Schedules) // compiled below, not the caller's
	class.Compile()
	s := &simulation{class: &class, model: model, trace: trace, paidFrom: map[*simInstance]float64{},
		started: make([]bool, len(trace)),
		rng:     rand.New(rand.NewPCG(model.Seed, model.Seed^0x5851f42d4c957f2d))}
	s.res.Name, s.res.Jobs = name, len(trace)
	for i, j := range trace {
		heap.Push(&s.events, event{at: j.Arrival, kind: evArrival, job: i})
	}
	if len(trace) > 0 {
		heap.Push(&s.events, event{at: 0, kind: evTick})
	}
	done := 0
	for s.events.Len() > 0 {
		e := heap.Pop(&s.events).(event)
		s.now = e.at
		switch e.kind {
		case evArrival:
			s.queue = append(s.queue, e.job)
			s.arrivals = append(s.arrivals, s.now)
			s.dispatch()
			s.decide()
		case evBooted:
			if e.inst.deleted || e.gen != e.inst.gen {
				continue
			}
			e.inst.State = fleet.Ready
			e.inst.readyAt, e.inst.idleFrom = s.now, s.now
			e.inst.IdleSince = s.clock(s.now)
			s.boots = append(s.boots, s.now-e.inst.created)
			if len(s.boots) > bootWindow {
				s.boots = s.boots[1:]
			}
			s.dispatch()
		case evJobDone:
			if e.inst.deleted || e.gen != e.inst.gen {
				continue
			}
			e.inst.jobs = slices.DeleteFunc(e.inst.jobs, func(j int) bool { return j == e.job })
			e.inst.Running--
			s.ends = append(s.ends, s.now)
			done++
			if e.inst.Running == 0 {
				e.inst.idleFrom, e.inst.IdleSince = s.now, s.clock(s.now)
				if e.inst.State == fleet.Draining {
					s.delete(e.inst)
				}
			}
			s.dispatch()
			s.decide()
		case evInterrupt:
			if e.inst.deleted || e.gen != e.inst.gen {
				continue
			}
			// The running jobs go back to the front of the queue, as
			// the server requeues them at once.
			s.res.Requeued += len(e.inst.jobs)
			s.queue = append(slices.Clone(e.inst.jobs), s.queue...)
			busy := e.inst.Running > 0
			e.inst.jobs, e.inst.Running = nil, 0
			if busy {
				e.inst.idleFrom = s.now // its busy time is not idle time
			}
			s.delete(e.inst)
			s.dispatch()
			s.decide()
		case evTick:
			s.decide()
			heap.Push(&s.events, event{at: s.now + model.Tick.Seconds(), kind: evTick})
		}
		if done == len(s.trace) {
			break // the measurement ends with the last job
		}
	}
	// What is still up is paid until then.
	for _, in := range s.instances {
		if !in.deleted {
			s.delete(in)
		}
	}
	s.finish()
	return s.res
}

// clock turns virtual seconds into a time for the decision.
func (s *simulation) clock(t float64) time.Time {
	return epoch.Add(time.Duration(t * float64(time.Second)))
}

// dispatch starts pending jobs on free slots of ready instances: the
// busiest instance first, then the one idle for the shortest time, so that
// the instances idle for long stay idle and the autoscaler can remove them.
func (s *simulation) dispatch() {
	capacity := max(s.class.CapacityPerInstance, 1)
	for len(s.queue) > 0 {
		var best *simInstance
		for _, in := range s.instances {
			if in.deleted || in.State != fleet.Ready || in.Running >= capacity {
				continue
			}
			if best == nil || in.Running > best.Running || in.Running == best.Running && in.idleFrom > best.idleFrom {
				best = in
			}
		}
		if best == nil {
			return
		}
		j := s.queue[0]
		s.queue = s.queue[1:]
		if !s.started[j] {
			s.started[j] = true
			wait := s.now - s.trace[j].Arrival
			s.waits = append(s.waits, wait)
			if wait == 0 {
				s.res.PoolHitRate++
			}
		}
		if best.Running == 0 {
			s.res.IdleHours += s.now - best.idleFrom
		}
		best.Running++
		best.Uses++
		best.jobs = append(best.jobs, j)
		heap.Push(&s.events, event{at: s.now + s.trace[j].Duration, kind: evJobDone, inst: best, job: j, gen: best.gen})
	}
}

// decide runs the autoscaler's decision and applies it.
func (s *simulation) decide() {
	// The arrival rate of the last rateWindow seconds.
	cut := 0
	for cut < len(s.arrivals) && s.arrivals[cut] < s.now-rateWindow {
		cut++
	}
	s.arrivals = s.arrivals[cut:]
	cut = 0
	for cut < len(s.ends) && s.ends[cut] < s.now-rateWindow {
		cut++
	}
	s.ends = s.ends[cut:]
	short := 0
	for i := len(s.arrivals) - 1; i >= 0 && s.arrivals[i] >= s.now-120; i-- {
		short++
	}
	obs := fleet.Observation{
		Now: s.clock(s.now), Pending: len(s.queue), MaxCreate: -1,
		ArrivalRate:    max(float64(len(s.arrivals))/rateWindow, float64(short)/120),
		CompletionRate: float64(len(s.ends)) / rateWindow,
		ProvisionTime:  s.provisionTime(),
	}
	for _, in := range s.instances {
		if !in.deleted {
			obs.Instances = append(obs.Instances, in.Instance)
		}
	}
	d := fleet.Decide(s.class, obs)
	for range d.Create {
		s.create()
	}
	for _, r := range d.Remove {
		in := s.byID(r.ID)
		switch {
		case in == nil || in.deleted:
		case in.Running == 0:
			s.delete(in)
		default:
			in.State = fleet.Draining
		}
	}
	if len(d.Remove) > 0 {
		s.compact()
	}
}

// provisionTime is the 90th percentile of the recent boots, or the
// model's until there are some.
func (s *simulation) provisionTime() time.Duration {
	if len(s.boots) == 0 {
		return s.model.BootP90
	}
	b := slices.Clone(s.boots)
	slices.Sort(b)
	return time.Duration(b[(len(b)*9)/10] * float64(time.Second))
}

func (s *simulation) byID(id string) *simInstance {
	for _, in := range s.instances {
		if in.ID == id {
			return in
		}
	}
	return nil
}

// compact drops deleted instances from the list.
func (s *simulation) compact() {
	s.instances = slices.DeleteFunc(s.instances, func(in *simInstance) bool { return in.deleted })
}

// create starts an instance that boots after a log-normal time, and is
// interrupted after an exponential one when the class is spot.
func (s *simulation) create() {
	s.nextID++
	in := &simInstance{Instance: fleet.Instance{ID: fmt.Sprint(s.nextID), State: fleet.Booting, CreatedAt: s.clock(s.now)},
		created: s.now}
	s.instances = append(s.instances, in)
	s.paidFrom[in] = s.now
	s.res.Created++
	heap.Push(&s.events, event{at: s.now + s.bootTime(), kind: evBooted, inst: in, gen: in.gen})
	if s.class.Spot && s.model.SpotInterruptionsPerHour > 0 {
		after := s.rng.ExpFloat64() / s.model.SpotInterruptionsPerHour * 3600
		heap.Push(&s.events, event{at: s.now + after, kind: evInterrupt, inst: in, gen: in.gen})
	}
}

// bootTime draws a boot time from the model's log-normal.
func (s *simulation) bootTime() float64 {
	median := s.model.BootMedian.Seconds()
	sigma := 0.0
	if p90 := s.model.BootP90.Seconds(); p90 > median && median > 0 {
		sigma = math.Log(p90/median) / 1.2816 // z of the 90th percentile
	}
	return median * math.Exp(sigma*s.rng.NormFloat64())
}

// delete removes in and pays for its life.
func (s *simulation) delete(in *simInstance) {
	if in.State == fleet.Ready && in.Running == 0 {
		s.res.IdleHours += s.now - in.idleFrom
	}
	in.deleted = true
	in.gen++
	paid := s.now - s.paidFrom[in]
	delete(s.paidFrom, in)
	s.res.InstanceHours += paid
	price := s.model.PricePerHour
	if s.class.Spot {
		price = s.model.SpotPricePerHour
	}
	s.res.Cost += paid / 3600 * price
}

// finish turns the sums into the result's units.
func (s *simulation) finish() {
	s.res.InstanceHours /= 3600
	s.res.IdleHours /= 3600
	if len(s.waits) > 0 {
		slices.Sort(s.waits)
		q := func(p float64) float64 {
			return math.Round(s.waits[min(int(p*float64(len(s.waits))), len(s.waits)-1)]*10) / 10
		}
		s.res.WaitP50, s.res.WaitP95, s.res.WaitP99 = q(0.50), q(0.95), q(0.99)
		s.res.PoolHitRate /= float64(len(s.waits))
	}
	s.res.InstanceHours = math.Round(s.res.InstanceHours*100) / 100
	s.res.IdleHours = math.Round(s.res.IdleHours*100) / 100
	s.res.Cost = math.Round(s.res.Cost*100) / 100
	s.res.PoolHitRate = math.Round(s.res.PoolHitRate*1000) / 1000
}
