package analytics

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/hangar-ci/hangar/internal/store"
)

var day0 = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

// at is a time on day d (0 or 1) at hour h.
func at(d, h int, extra time.Duration) time.Time {
	return day0.Add(time.Duration(d)*24*time.Hour + time.Duration(h)*time.Hour + extra)
}

// job is a finished job run once by a class's agent: waited wait, ran run.
func job(name, cls string, status store.JobStatus, pending time.Time, wait, run time.Duration) *store.JobTiming {
	j := &store.JobTiming{Name: name, Status: status, PendingAt: pending, StartedAt: pending.Add(wait),
		FinishedAt: pending.Add(wait + run), Attempts: 1}
	if cls != "" {
		j.AgentLabels = []string{"linux", ClassLabelPrefix + cls}
	} else {
		j.AgentLabels = []string{"linux"}
	}
	return j
}

func input() Input {
	jobs := []*store.JobTiming{
		// Day 0, class small: waits 0.5 s, 2 s, 10 s; class big: 30 s.
		job("build", "small", store.JobSuccess, at(0, 9, 0), 500*time.Millisecond, time.Minute),
		job("build", "small", store.JobSuccess, at(0, 10, 0), 2*time.Second, 3*time.Minute),
		job("test", "small", store.JobFailed, at(0, 11, 0), 10*time.Second, 2*time.Minute),
		job("test", "big", store.JobSuccess, at(0, 12, 0), 30*time.Second, 4*time.Minute),
		// Day 1: one job of an agent outside the fleet; one retried job
		// (its queue time cannot be told); one canceled before it ran.
		job("lint", "", store.JobSuccess, at(1, 9, 0), 100*time.Millisecond, 10*time.Second),
		{Name: "flaky", Status: store.JobSuccess, PendingAt: at(1, 10, 0), StartedAt: at(1, 10, 5*time.Minute), FinishedAt: at(1, 10, 6*time.Minute), Attempts: 2,
			AgentLabels: []string{ClassLabelPrefix + "small"}},
		{Name: "deploy", Status: store.JobCanceled, PendingAt: at(1, 11, 0), FinishedAt: at(1, 11, time.Minute)},
	}
	events := []*store.FleetEvent{
		// small-1 lived from before the range: adopted at day 0 00:00.
		{At: at(0, 0, 0), Class: "small", Instance: "small-1", Kind: "adopted"},
		// small-2: created 08:00, ready after 90 s, draining 20:00, deleted 20:30.
		{At: at(0, 8, 0), Class: "small", Instance: "small-2", Kind: "created"},
		{At: at(0, 8, 90*time.Second), Class: "small", Instance: "small-2", Kind: "ready"},
		{At: at(0, 20, 0), Class: "small", Instance: "small-2", Kind: "draining", Reason: "idle"},
		{At: at(0, 20, 30*time.Minute), Class: "small", Instance: "small-2", Kind: "deleted"},
		// big-1: created day 1 06:00, never boots.
		{At: at(1, 6, 0), Class: "big", Instance: "big-1", Kind: "created"},
		{At: at(1, 6, 10*time.Minute), Class: "big", Instance: "big-1", Kind: "boot_failed"},
	}
	return Input{Jobs: jobs, Events: events, Prices: map[string]float64{"small": 0.10, "big": 1.0},
		From: day0, To: day0.Add(48 * time.Hour), Bucket: 24 * time.Hour}
}

// values returns the values of the series named name of the chart.
func values(t *testing.T, c Chart, name string) []float64 {
	t.Helper()
	for _, s := range c.Series {
		if s.Name == name {
			return s.Values
		}
	}
	var names []string
	for _, s := range c.Series {
		names = append(names, s.Name)
	}
	t.Fatalf("chart %s has no series %q; it has %q", c.Name, name, names)
	return nil
}

func near(a, b float64) bool {
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.IsNaN(a) && math.IsNaN(b)
	}
	return math.Abs(a-b) < 1e-6
}

func TestCompute(t *testing.T) {
	cs := Compute(input())
	nan := math.NaN()
	for _, tc := range []struct {
		chart, series string
		want          []float64
	}{
		{"queue_time", "small p50", []float64{2, nan}},
		{"queue_time", "small p95", []float64{10, nan}},
		{"queue_time", "big p50", []float64{30, nan}},
		{"queue_time", NoClass + " p50", []float64{nan, 0.1}},
		{"pool_hits", "small", []float64{100.0 / 3, nan}},
		{"pool_hits", NoClass, []float64{nan, 100}},
		{"outcomes", "success", []float64{3, 2}},
		{"outcomes", "failed", []float64{1, 0}},
		{"outcomes", "canceled", []float64{0, 1}},
		{"durations", "build", []float64{60, nan}},
		{"durations", "test", []float64{120, nan}},
		{"provisioning", "small p50", []float64{90, nan}},
		// small-1 all 48 h; small-2 booting 90 s, ready 08:01:30–20:00,
		// draining 30 min, on day 0.
		{"instances", "small ready", []float64{1 + (12*3600-90)/86400.0, 1}},
		{"instances", "small booting", []float64{90 / 86400.0, 0}},
		{"instances", "small draining", []float64{0.5 / 24, 0}},
		{"instances", "big booting", []float64{0, 10.0 / 60 / 24}},
		// small: (24 h + 12.5 h) × 0.10 on day 0, 24 h × 0.10 on day 1;
		// big: 10 min × 1.0 on day 1.
		{"cost", "small", []float64{36.5 * 0.10, 2.4}},
		{"cost", "big", []float64{0, 1.0 / 6}},
	} {
		c, ok := cs.Get(tc.chart)
		if !ok {
			t.Fatalf("no chart %s", tc.chart)
		}
		got := values(t, c, tc.series)
		for i := range tc.want {
			if !near(got[i], tc.want[i]) {
				t.Errorf("%s %q: %v, want %v", tc.chart, tc.series, got, tc.want)
				break
			}
		}
	}
	// The retried job is in outcomes and durations, not in queue time.
	if qt, _ := cs.Get("queue_time"); len(qt.Series) != 6 {
		t.Errorf("queue_time has %d series, want p50 and p95 of big, small and %s", len(qt.Series), NoClass)
	}
}

func TestDurationsKeepsTheJobsRunMost(t *testing.T) {
	in := input()
	in.Jobs = nil
	for i, name := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		for range i + 1 { // h runs most, a least
			in.Jobs = append(in.Jobs, job(name, "small", store.JobSuccess, at(0, 9, 0), 0, time.Minute))
		}
	}
	c, _ := Compute(in).Get("durations")
	var names []string
	for _, s := range c.Series {
		names = append(names, s.Name)
	}
	if got := strings.Join(names, ","); got != "c,d,e,f,g,h" {
		t.Errorf("durations follows %s, want the six run most, c to h", got)
	}
}

func TestEncode(t *testing.T) {
	c := Chart{Name: "queue_time", Buckets: []time.Time{day0, day0.Add(24 * time.Hour)},
		Series: []Series{{Name: "small p50", Values: []float64{1.23456789, math.NaN()}}, {Name: `odd, "name"`, Values: []float64{0, 2}}}}
	var csv bytes.Buffer
	if err := c.WriteCSV(&csv); err != nil {
		t.Fatal(err)
	}
	want := "bucket,small p50,\"odd, \"\"name\"\"\"\n2026-11-01T00:00:00Z,1.2346,0\n2026-11-02T00:00:00Z,,2\n"
	if csv.String() != want {
		t.Errorf("CSV:\n%s\nwant:\n%s", csv.String(), want)
	}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"values":[1.2346,null]`) {
		t.Errorf("JSON: %s, want null for the bucket without data", b)
	}
	var back Chart
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !math.IsNaN(back.Series[0].Values[1]) || back.Series[1].Values[1] != 2 {
		t.Errorf("JSON round trip: %+v", back.Series)
	}
}

// BenchmarkCompute100k computes every chart from 100,000 jobs and 2,000
// fleet events over 30 days: the aggregation alone, without the store's
// read.
func BenchmarkCompute100k(b *testing.B) {
	to := day0.Add(30 * 24 * time.Hour)
	in := Input{From: day0, To: to, Bucket: 24 * time.Hour, Prices: map[string]float64{"small": 0.1}}
	names := []string{"build", "test", "lint", "deploy", "e2e", "docs", "package", "scan"}
	for i := range 100_000 {
		p := to.Add(-time.Duration(i) * 30 * 24 * time.Hour / 100_000)
		in.Jobs = append(in.Jobs, job(names[i%len(names)], []string{"small", "big", ""}[i%3], store.JobSuccess, p,
			time.Duration(i%40)*time.Second, time.Duration(60+i%600)*time.Second))
	}
	for i := range 2_000 {
		kind := "created"
		if i%2 == 1 {
			kind = "ready"
		}
		in.Events = append(in.Events, &store.FleetEvent{At: day0.Add(time.Duration(i) * 30 * 24 * time.Hour / 2_000),
			Class: "small", Instance: fmt.Sprint("small-", i/2), Kind: kind})
	}
	b.ResetTimer()
	for range b.N {
		Compute(in)
	}
}

func TestSteps(t *testing.T) {
	in := input()
	in.Jobs = nil
	for i, secs := range []float64{10, 20, 30, 40} {
		j := job("build", "small", store.JobSuccess, at(0, 9+i, 0), time.Second, time.Minute)
		j.Steps = []store.StepTiming{{Name: "script", Seconds: secs}, {Name: "get_sources", Seconds: 1}, {Name: "upload_artifacts", Seconds: 2}}
		in.Jobs = append(in.Jobs, j)
	}
	lint := job("lint", "small", store.JobSuccess, at(1, 9, 0), time.Second, time.Minute)
	lint.Steps = []store.StepTiming{{Name: "script", Seconds: 200}}
	in.Jobs = append(in.Jobs, lint)

	c, _ := Compute(in).Get("steps")
	var names []string
	for _, s := range c.Series {
		names = append(names, s.Name)
	}
	if got := strings.Join(names, ","); got != "get_sources,script,upload_artifacts" {
		t.Errorf("steps chart series %s, want them in the order steps run", got)
	}
	if got := values(t, c, "script"); got[0] != 40 || got[1] != 200 {
		t.Errorf("script p95 by day: %v, want [40 200]", got)
	}
	slow := SlowestSteps(in, 2)
	want := []StepStat{
		{Job: "lint", Step: "script", Runs: 1, P50: 200, P95: 200, Total: 200},
		{Job: "build", Step: "script", Runs: 4, P50: 20, P95: 40, Total: 100},
	}
	if len(slow) != 2 || slow[0] != want[0] || slow[1] != want[1] {
		t.Errorf("SlowestSteps: %+v, want %+v", slow, want)
	}
	var csv bytes.Buffer
	if err := WriteStepsCSV(&csv, slow); err != nil {
		t.Fatal(err)
	}
	if got := csv.String(); got != "job,step,runs,p50_seconds,p95_seconds,total_seconds\nlint,script,1,200,200,200\nbuild,script,4,20,40,100\n" {
		t.Errorf("steps CSV:\n%s", got)
	}
}
