package sim

import (
	"bytes"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hangar-ci/hangar/internal/fleet"
)

// steady returns n jobs of duration seconds, one every gap seconds from
// start.
func steady(n int, start, gap, duration float64) []Job {
	jobs := make([]Job, n)
	for i := range jobs {
		jobs[i] = Job{Arrival: start + float64(i)*gap, Duration: duration}
	}
	return jobs
}

func TestRunPolicies(t *testing.T) {
	model := DefaultModel()
	trace := steady(200, 3600, 30, 120) // 4 jobs running at a time
	busyHours := 200 * 120.0 / 3600
	tests := []struct {
		name  string
		class fleet.Class
		check func(t *testing.T, r Result)
	}{
		{"static fleet big enough: nobody waits", fleet.Class{Policy: fleet.PolicyStatic, MaxInstances: 6}, func(t *testing.T, r Result) {
			if r.WaitP99 != 0 || r.PoolHitRate != 1 || r.Created != 6 {
				t.Errorf("p99 %v, hits %v, created %d; want no wait, every job a hit, 6 instances", r.WaitP99, r.PoolHitRate, r.Created)
			}
		}},
		{"static fleet too small: the queue grows", fleet.Class{Policy: fleet.PolicyStatic, MaxInstances: 2}, func(t *testing.T, r Result) {
			if r.WaitP95 < 3600 {
				t.Errorf("p95 %vs; want hours, with half the capacity the jobs need", r.WaitP95)
			}
		}},
		{"per job: every job waits for a boot", fleet.Class{Policy: fleet.PolicyPerJob, MaxInstances: 100, MaxUseCount: 1}, func(t *testing.T, r Result) {
			if r.Created != 200 || r.PoolHitRate != 0 || r.WaitP50 < 30 || r.WaitP50 > 120 {
				t.Errorf("created %d, hits %v, p50 %vs; want 200 instances, no hit, about a minute's wait", r.Created, r.PoolHitRate, r.WaitP50)
			}
		}},
		{"idle pool: warm instances serve at once", fleet.Class{Policy: fleet.PolicyIdle, MaxInstances: 20, IdleCount: 3, IdleTime: 10 * time.Minute}, func(t *testing.T, r Result) {
			if r.PoolHitRate < 0.99 || r.WaitP99 != 0 {
				t.Errorf("hits %v, p99 %vs; want every job to find a warm instance", r.PoolHitRate, r.WaitP99)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.class.Name = "c"
			r := Run(tt.name, tt.class, model, trace)
			if r.Jobs != 200 {
				t.Errorf("jobs %d, want 200", r.Jobs)
			}
			// Instances are paid for the jobs they run, and more.
			if r.InstanceHours < busyHours || r.IdleHours < 0 || r.IdleHours > r.InstanceHours {
				t.Errorf("instance-hours %v, idle %v; want at least the %v hours the jobs ran, idle within them", r.InstanceHours, r.IdleHours, busyHours)
			}
			if want := math.Round(r.InstanceHours*model.PricePerHour*100) / 100; math.Abs(r.Cost-want) > 0.02 {
				t.Errorf("cost %v, want %v for %v instance-hours", r.Cost, want, r.InstanceHours)
			}
			tt.check(t, r)
		})
	}
}

func TestRunSpotRequeues(t *testing.T) {
	model := DefaultModel()
	model.SpotInterruptionsPerHour = 6 // one every 10 minutes per instance
	r := Run("spot", fleet.Class{Policy: fleet.PolicyIdle, MaxInstances: 20, IdleCount: 2, IdleTime: time.Minute, Spot: true}, model, steady(100, 0, 60, 600))
	if r.Requeued == 0 {
		t.Errorf("no job requeued with an interruption every 10 minutes and 10-minute jobs")
	}
	if r.Jobs != 100 {
		t.Errorf("jobs %d, want 100", r.Jobs)
	}
	// Busy for most of their life: an interruption does not turn the busy
	// time into idle time.
	if r.IdleHours > r.InstanceHours/2 {
		t.Errorf("idle %v of %v instance-hours; the instances were mostly busy", r.IdleHours, r.InstanceHours)
	}
	if want := math.Round(r.InstanceHours*model.SpotPricePerHour*100) / 100; math.Abs(r.Cost-want) > 0.02 {
		t.Errorf("cost %v, want spot's %v", r.Cost, want)
	}
}

func TestRunIsRepeatable(t *testing.T) {
	trace := Generate(GenConfig{Days: 1, JobsPerDay: 2000, NightShare: 0.1, BurstsPerDay: 2, BurstSize: 20,
		MedianDuration: 240, DurationSigma: 0.8, Seed: 7})
	class := fleet.Class{Policy: fleet.PolicyAdaptive, MaxInstances: 60, TargetWait: 5 * time.Second, TargetPercentile: 95}
	a, b := Run("a", class, DefaultModel(), trace), Run("a", class, DefaultModel(), trace)
	if a != b {
		t.Errorf("two runs differ:\n%+v\n%+v", a, b)
	}
}

func TestGenerate(t *testing.T) {
	cfg := DefaultGen()
	jobs := Generate(cfg)
	if n := len(jobs); n < 40000 || n > 55000 {
		t.Errorf("a default week holds %d jobs, want about 50,000", n)
	}
	if !slices.IsSortedFunc(jobs, func(a, b Job) int { return int(math.Copysign(1, a.Arrival-b.Arrival)) }) {
		t.Error("jobs are not sorted by arrival")
	}
	var perDay [7]int
	durations := make([]float64, len(jobs))
	for i, j := range jobs {
		perDay[int(j.Arrival/86400)]++
		durations[i] = j.Duration
	}
	if perDay[5] > perDay[0]/3 || perDay[6] > perDay[0]/3 {
		t.Errorf("jobs per day %v: want weekends much quieter than Monday", perDay)
	}
	slices.Sort(durations)
	if m := durations[len(durations)/2]; m < 200 || m > 280 {
		t.Errorf("median duration %vs, want about 240", m)
	}
	if again := Generate(cfg); !slices.EqualFunc(jobs, again, func(a, b Job) bool { return a.Arrival == b.Arrival && a.Duration == b.Duration }) {
		t.Error("the same seed gave another trace")
	}
}

func TestCSV(t *testing.T) {
	jobs := []Job{{Arrival: 1.5, Duration: 60, Tags: []string{"linux", "docker"}}, {Arrival: 0.25, Duration: 2, Tags: nil}}
	var b bytes.Buffer
	if err := WriteCSV(&b, jobs); err != nil {
		t.Fatal(err)
	}
	got, err := ReadCSV(&b)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Arrival != 0.25 || got[1].Duration != 60 || !slices.Equal(got[1].Tags, []string{"linux", "docker"}) {
		t.Errorf("round trip gave %+v", got)
	}
	for _, bad := range []string{"1,linux,2\nx,linux,3\n", "1,linux,-2\n", "1,linux\n", "1,linux,NaN\n"} {
		if _, err := ReadCSV(strings.NewReader(bad)); err == nil {
			t.Errorf("ReadCSV(%q) succeeded, want an error", bad)
		}
	}
}

// BenchmarkRunWeek simulates the default week (about 50,000 jobs) with
// one adaptive class.
func BenchmarkRunWeek(b *testing.B) {
	trace := Generate(DefaultGen())
	class := fleet.Class{Policy: fleet.PolicyAdaptive, MaxInstances: 120, TargetWait: 5 * time.Second, TargetPercentile: 95}
	for b.Loop() {
		Run("week", class, DefaultModel(), trace)
	}
}
