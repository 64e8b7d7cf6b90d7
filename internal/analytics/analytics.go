// Package analytics turns what the store keeps (finished jobs with their
// timings, the fleet's instance transitions) into the charts an operator
// reads: where time goes (queue time, provisioning time, job durations),
// how often a warm runner was there, what ran and failed, how many
// instances there were and what they cost.
//
// It aggregates on read: Compute is a pure function of the records in a
// time range. BENCHMARKS.md has the figures that chose this over rollups.
package analytics

import (
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/hangar-ci/hangar/internal/store"
)

// ClassLabelPrefix starts the label by which a fleet agent names its
// class (fleet.ClassLabel).
const ClassLabelPrefix = "hangar-class:"

// NoClass is the class of jobs run by agents outside the fleet.
const NoClass = "(no class)"

// WarmWait is the longest wait of a job that found a warm runner: the
// pool hit rate is the share of jobs that waited less.
const WarmWait = time.Second

// Input is what the charts are computed from.
type Input struct {
	// Jobs finished in [From, To).
	Jobs []*store.JobTiming
	// Events of the fleet from before From (to know what was alive at
	// From) to To, oldest first.
	Events []*store.FleetEvent
	// Prices are each class's price of an instance-hour.
	Prices   map[string]float64
	From, To time.Time
	// Bucket is the width of a point: an hour, a day.
	Bucket time.Duration
}

// Chart is one chart's numbers: a value per series per time bucket.
type Chart struct {
	// Name identifies the chart in the API: queue_time, pool_hits, …
	Name  string `json:"name"`
	Title string `json:"title"`
	// Unit of the values: "s", "%", "jobs", "instances", "cost".
	Unit string `json:"unit"`
	// Stacked charts are bars whose series add up.
	Stacked bool `json:"stacked,omitempty"`
	// Buckets are the starts of the time buckets.
	Buckets []time.Time `json:"buckets"`
	Series  []Series    `json:"series"`
}

// Series is one line (or one layer of bars) of a chart. A bucket without
// data is NaN in Values and null in JSON.
type Series struct {
	Name   string    `json:"name"`
	Values []float64 `json:"-"`
}

// Charts are every chart, in the order the page shows them.
type Charts []Chart

// Compute computes every chart of in.
func Compute(in Input) Charts {
	if in.Bucket <= 0 {
		in.Bucket = 24 * time.Hour
	}
	in.From = in.From.Truncate(in.Bucket)
	b := newBuckets(in.From, in.To, in.Bucket)
	return Charts{
		queueTime(in, b),
		poolHits(in, b),
		outcomes(in, b),
		durations(in, b),
		steps(in, b),
		provisioning(in, b),
		instances(in, b),
		cost(in, b),
	}
}

// Get returns the chart named name.
func (cs Charts) Get(name string) (Chart, bool) {
	for _, c := range cs {
		if c.Name == name {
			return c, true
		}
	}
	return Chart{}, false
}

// buckets maps times to bucket indexes.
type buckets struct {
	from  time.Time
	width time.Duration
	n     int
}

func newBuckets(from, to time.Time, width time.Duration) buckets {
	n := int(math.Ceil(float64(to.Sub(from)) / float64(width)))
	return buckets{from: from, width: width, n: max(n, 1)}
}

// index is t's bucket, or -1 outside the range.
func (b buckets) index(t time.Time) int {
	if t.Before(b.from) {
		return -1
	}
	i := int(t.Sub(b.from) / b.width)
	if i >= b.n {
		return -1
	}
	return i
}

func (b buckets) starts() []time.Time {
	out := make([]time.Time, b.n)
	for i := range out {
		out[i] = b.from.Add(time.Duration(i) * b.width)
	}
	return out
}

// class names the fleet class of the agent labelled labels.
func class(labels []string) string {
	for _, l := range labels {
		if c, ok := strings.CutPrefix(l, ClassLabelPrefix); ok {
			return c
		}
	}
	return NoClass
}

// queued is how long a job waited for its first attempt; ok is false
// when that cannot be told (it never ran, or it was retried, which moves
// its pending time).
func queued(j *store.JobTiming) (time.Duration, bool) {
	if j.Attempts != 1 || j.PendingAt.IsZero() || j.StartedAt.IsZero() || j.StartedAt.Before(j.PendingAt) {
		return 0, false
	}
	return j.StartedAt.Sub(j.PendingAt), true
}

// samples collects values per key per bucket.
type samples map[string][][]float64

func (s samples) add(b buckets, key string, i int, v float64) {
	if i < 0 {
		return
	}
	if s[key] == nil {
		s[key] = make([][]float64, b.n)
	}
	s[key][i] = append(s[key][i], v)
}

// keys are the keys of s, sorted.
func (s samples) keys() []string {
	out := make([]string, 0, len(s))
	for k := range s {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// percentile is the nearest-rank p-th percentile of vs (NaN when empty).
func percentile(vs []float64, p float64) float64 {
	if len(vs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// per applies f to each bucket's values.
func per(vs [][]float64, f func([]float64) float64) []float64 {
	out := make([]float64, len(vs))
	for i, v := range vs {
		out[i] = f(v)
	}
	return out
}

func queueTime(in Input, b buckets) Chart {
	s := samples{}
	for _, j := range in.Jobs {
		if q, ok := queued(j); ok {
			s.add(b, class(j.AgentLabels), b.index(j.StartedAt), q.Seconds())
		}
	}
	c := Chart{Name: "queue_time", Title: "Queue time (pending to started), p50 and p95 by class", Unit: "s", Buckets: b.starts()}
	for _, k := range s.keys() {
		c.Series = append(c.Series,
			Series{Name: k + " p50", Values: per(s[k], func(v []float64) float64 { return percentile(v, 50) })},
			Series{Name: k + " p95", Values: per(s[k], func(v []float64) float64 { return percentile(v, 95) })})
	}
	return c
}

func poolHits(in Input, b buckets) Chart {
	s := samples{}
	for _, j := range in.Jobs {
		if q, ok := queued(j); ok {
			hit := 0.0
			if q < WarmWait {
				hit = 100
			}
			s.add(b, class(j.AgentLabels), b.index(j.StartedAt), hit)
		}
	}
	c := Chart{Name: "pool_hits", Title: "Pool hit rate (jobs that waited under a second), by class", Unit: "%", Buckets: b.starts()}
	for _, k := range s.keys() {
		c.Series = append(c.Series, Series{Name: k, Values: per(s[k], mean)})
	}
	return c
}

func mean(vs []float64) float64 {
	if len(vs) == 0 {
		return math.NaN()
	}
	sum := 0.0
	for _, v := range vs {
		sum += v
	}
	return sum / float64(len(vs))
}

func outcomes(in Input, b buckets) Chart {
	c := Chart{Name: "outcomes", Title: "Jobs finished per bucket, by outcome", Unit: "jobs", Stacked: true, Buckets: b.starts()}
	statuses := []store.JobStatus{store.JobSuccess, store.JobFailed, store.JobCanceled}
	counts := make([][]float64, len(statuses))
	for i := range counts {
		counts[i] = make([]float64, b.n)
	}
	for _, j := range in.Jobs {
		i := b.index(j.FinishedAt)
		if i < 0 {
			continue
		}
		for k, st := range statuses {
			if j.Status == st {
				counts[k][i]++
			}
		}
	}
	for k, st := range statuses {
		c.Series = append(c.Series, Series{Name: string(st), Values: counts[k]})
	}
	return c
}

// topJobs is how many job names the durations chart follows.
const topJobs = 6

func durations(in Input, b buckets) Chart {
	s := samples{}
	runs := map[string]int{}
	for _, j := range in.Jobs {
		if j.StartedAt.IsZero() || j.FinishedAt.Before(j.StartedAt) || j.Status == store.JobSkipped {
			continue
		}
		s.add(b, j.Name, b.index(j.FinishedAt), j.FinishedAt.Sub(j.StartedAt).Seconds())
		runs[j.Name]++
	}
	names := s.keys()
	sort.SliceStable(names, func(x, y int) bool { return runs[names[x]] > runs[names[y]] })
	if len(names) > topJobs {
		names = names[:topJobs]
	}
	sort.Strings(names)
	c := Chart{Name: "durations", Title: "Job duration, p50, for the jobs run most", Unit: "s", Buckets: b.starts()}
	for _, k := range names {
		c.Series = append(c.Series, Series{Name: k, Values: per(s[k], func(v []float64) float64 { return percentile(v, 50) })})
	}
	return c
}

func steps(in Input, b buckets) Chart {
	s := samples{}
	for _, j := range in.Jobs {
		for _, st := range j.Steps {
			s.add(b, st.Name, b.index(j.FinishedAt), st.Seconds)
		}
	}
	c := Chart{Name: "steps", Title: "Step duration, p95, by step (from the agents' reports)", Unit: "s", Buckets: b.starts()}
	for _, k := range stepOrder(s.keys()) {
		c.Series = append(c.Series, Series{Name: k, Values: per(s[k], func(v []float64) float64 { return percentile(v, 95) })})
	}
	return c
}

// knownSteps are the steps an agent reports, in the order they run.
var knownSteps = []string{"get_sources", "restore_cache", "download_artifacts", "prepare_executor", "script", "after_script", "save_cache", "upload_artifacts"}

// stepOrder sorts step names in the order they run, unknown ones last.
func stepOrder(names []string) []string {
	rank := func(n string) int {
		if i := slices.Index(knownSteps, n); i >= 0 {
			return i
		}
		return len(knownSteps)
	}
	sort.SliceStable(names, func(x, y int) bool { return rank(names[x]) < rank(names[y]) })
	return names
}

// StepStat is how long one step of one job takes over a range.
type StepStat struct {
	Job  string  `json:"job"`
	Step string  `json:"step"`
	Runs int     `json:"runs"`
	P50  float64 `json:"p50_seconds"`
	P95  float64 `json:"p95_seconds"`
	// Total is the time the step took over all its runs.
	Total float64 `json:"total_seconds"`
}

// SlowestSteps returns the steps of jobs that took the most time in all
// over the jobs of in (at most n), slowest first.
func SlowestSteps(in Input, n int) []StepStat {
	type key struct{ job, step string }
	vals := map[key][]float64{}
	for _, j := range in.Jobs {
		for _, st := range j.Steps {
			k := key{j.Name, st.Name}
			vals[k] = append(vals[k], st.Seconds)
		}
	}
	out := make([]StepStat, 0, len(vals))
	for k, vs := range vals {
		total := 0.0
		for _, v := range vs {
			total += v
		}
		out = append(out, StepStat{Job: k.job, Step: k.step, Runs: len(vs), P50: round(percentile(vs, 50)),
			P95: round(percentile(vs, 95)), Total: round(total)})
	}
	sort.Slice(out, func(x, y int) bool {
		if out[x].Total != out[y].Total {
			return out[x].Total > out[y].Total
		}
		return out[x].Job+"\x00"+out[x].Step < out[y].Job+"\x00"+out[y].Step
	})
	if len(out) > n {
		out = out[:n]
	}
	return out
}

// lifetime is an instance's life as its events tell it.
type lifetime struct {
	class                         string
	created, ready, drain, closed time.Time
}

// lifetimes reads the instances' lives from the events. An instance
// adopted after a restart counts from its adoption; one still alive at to
// counts to to.
func lifetimes(events []*store.FleetEvent, to time.Time) []*lifetime {
	byID := map[string]*lifetime{}
	var order []*lifetime
	for _, e := range events {
		l := byID[e.Instance]
		if l == nil {
			l = &lifetime{class: e.Class}
			byID[e.Instance] = l
			order = append(order, l)
		}
		switch e.Kind {
		case "created":
			l.created = e.At
		case "adopted":
			if l.created.IsZero() {
				l.created, l.ready = e.At, e.At
			}
		case "ready":
			l.ready = e.At
		case "draining":
			if l.drain.IsZero() {
				l.drain = e.At
			}
		case "deleted", "boot_failed", "lost", "interrupted":
			if l.closed.IsZero() {
				l.closed = e.At
			}
		}
	}
	for _, l := range order {
		if l.closed.IsZero() {
			l.closed = to
		}
		if l.created.IsZero() { // only its end is in range: it lived from before
			l.created = l.closed
		}
	}
	return order
}

func provisioning(in Input, b buckets) Chart {
	s := samples{}
	for _, l := range lifetimes(in.Events, in.To) {
		if !l.ready.IsZero() && l.ready.After(l.created) {
			s.add(b, l.class, b.index(l.ready), l.ready.Sub(l.created).Seconds())
		}
	}
	c := Chart{Name: "provisioning", Title: "Provisioning time (created to ready), p50 and p95 by class", Unit: "s", Buckets: b.starts()}
	for _, k := range s.keys() {
		c.Series = append(c.Series,
			Series{Name: k + " p50", Values: per(s[k], func(v []float64) float64 { return percentile(v, 50) })},
			Series{Name: k + " p95", Values: per(s[k], func(v []float64) float64 { return percentile(v, 95) })})
	}
	return c
}

// overlap is how long [a0, a1) and [b0, b1) share.
func overlap(a0, a1, b0, b1 time.Time) time.Duration {
	lo, hi := a0, a1
	if b0.After(lo) {
		lo = b0
	}
	if b1.Before(hi) {
		hi = b1
	}
	if !hi.After(lo) {
		return 0
	}
	return hi.Sub(lo)
}

func instances(in Input, b buckets) Chart {
	c := Chart{Name: "instances", Title: "Instances by state (average over the bucket), by class", Unit: "instances", Stacked: true, Buckets: b.starts()}
	series := map[string][]float64{}
	for _, l := range lifetimes(in.Events, in.To) {
		ready, drain := l.ready, l.drain
		if ready.IsZero() || ready.After(l.closed) {
			ready = l.closed
		}
		if drain.IsZero() || drain.After(l.closed) {
			drain = l.closed
		}
		for _, st := range []struct {
			name     string
			from, to time.Time
		}{{"booting", l.created, ready}, {"ready", ready, drain}, {"draining", drain, l.closed}} {
			key := l.class + " " + st.name
			for i, start := range c.Buckets {
				d := overlap(st.from, st.to, start, start.Add(b.width))
				if d <= 0 {
					continue
				}
				if series[key] == nil {
					series[key] = make([]float64, b.n)
				}
				series[key][i] += d.Seconds() / b.width.Seconds()
			}
		}
	}
	keys := make([]string, 0, len(series))
	for k := range series {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		c.Series = append(c.Series, Series{Name: k, Values: series[k]})
	}
	return c
}

func cost(in Input, b buckets) Chart {
	c := Chart{Name: "cost", Title: "Estimated cost (instance-hours × the class's price_per_hour), by class", Unit: "cost", Stacked: true, Buckets: b.starts()}
	series := map[string][]float64{}
	for _, l := range lifetimes(in.Events, in.To) {
		price := in.Prices[l.class]
		if series[l.class] == nil {
			series[l.class] = make([]float64, b.n)
		}
		for i, start := range c.Buckets {
			series[l.class][i] += overlap(l.created, l.closed, start, start.Add(b.width)).Hours() * price
		}
	}
	keys := make([]string, 0, len(series))
	for k := range series {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		c.Series = append(c.Series, Series{Name: k, Values: series[k]})
	}
	return c
}
