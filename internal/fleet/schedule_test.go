package fleet

import (
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/cronexpr"
)

// scheduled is a class whose pool changes over the week: more idle
// instances during Berlin's working hours, more still over Berlin's lunch
// hour (a later schedule wins), and a few in two UTC windows given to the
// second.
const scheduled = `
fleet:
  classes:
    - name: small
      provider: docker
      max_instances: 10
      idle_count: 1
      idle_time: 10m
      schedules:
        - periods: ["* * 8-18 * * mon-fri *"]
          timezone: Europe/Berlin
          idle_count: 4
          idle_time: 30m
        - periods: ["* 12 * * mon-fri"]
          timezone: Europe/Berlin
          idle_count: 6
        - periods: ["0-29 * 22 * * * *", "* 0 23 * * sat *"]
          idle_count: 2
          idle_time: 5m
`

func mustUTC(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestPoolAt(t *testing.T) {
	t.Parallel()
	c := &mustLoad(t, scheduled).Classes[0]
	newYork, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	type pool struct {
		count int
		time  time.Duration
	}
	var (
		base    = pool{1, 10 * time.Minute}
		working = pool{4, 30 * time.Minute}
		lunch   = pool{6, 10 * time.Minute} // idle_time: the class's
		night   = pool{2, 5 * time.Minute}
	)
	tests := []struct {
		name string
		at   time.Time
		want pool
	}{
		// 2025-03-03 is a Monday; Berlin is UTC+1 in winter.
		{"before work, Berlin", mustUTC("2025-03-03T06:59:59Z"), base},
		{"work starts, Berlin", mustUTC("2025-03-03T07:00:00Z"), working},
		{"lunch: the later schedule wins", mustUTC("2025-03-03T11:00:00Z"), lunch},
		{"5 fields hold the whole minute", mustUTC("2025-03-03T11:59:59.999Z"), lunch},
		{"after lunch", mustUTC("2025-03-03T12:00:00Z"), working},
		{"last second of work", mustUTC("2025-03-03T17:59:59Z"), working},
		{"after work", mustUTC("2025-03-03T18:00:00Z"), base},
		{"weekend", mustUTC("2025-03-08T10:00:00Z"), base},
		// Berlin is UTC+2 in summer: 06:00 UTC is 08:00 there.
		{"summer: work starts at 06:00 UTC", mustUTC("2025-07-07T06:00:00Z"), working},
		{"summer: not at 05:59:59 UTC", mustUTC("2025-07-07T05:59:59Z"), base},
		{"winter: not at 06:00 UTC", mustUTC("2025-03-03T06:00:00Z"), base},
		// A time in another zone is the same instant.
		{"the caller's zone does not matter", mustUTC("2025-03-03T07:00:00Z").In(newYork), working},
		// 7 fields are read second by second.
		{"seconds 0-29 of 22h UTC", mustUTC("2025-03-04T22:05:29.5Z"), night},
		{"second 30 of 22h UTC", mustUTC("2025-03-04T22:05:30Z"), base},
		{"second period of a schedule", mustUTC("2025-03-08T23:00:59Z"), night},
		{"second period, a minute on", mustUTC("2025-03-08T23:01:00Z"), base},
		{"second period, not on a Friday", mustUTC("2025-03-07T23:00:00Z"), base},
	}
	for _, tt := range tests {
		if n, d := c.PoolAt(tt.at); n != tt.want.count || d != tt.want.time {
			t.Errorf("%s: PoolAt(%v) = %d, %v; want %d, %v", tt.name, tt.at, n, d, tt.want.count, tt.want.time)
		}
	}
}

func TestPoolAtDaylightSaving(t *testing.T) {
	t.Parallel()
	c := &Class{IdleCount: 0, Schedules: []Schedule{{Periods: []string{"* * 2 * * * *"}, Timezone: "Europe/Berlin", IdleCount: 1}}}
	tests := []struct {
		at   string
		want int
	}{
		// 2025-10-26: 03:00 CEST becomes 02:00 CET; 02:xx happens twice.
		{"2025-10-25T23:59:59Z", 0},
		{"2025-10-26T00:00:00Z", 1}, // 02:00 CEST
		{"2025-10-26T00:59:59Z", 1},
		{"2025-10-26T01:00:00Z", 1}, // 02:00 CET
		{"2025-10-26T01:59:59Z", 1},
		{"2025-10-26T02:00:00Z", 0},
		// 2025-03-30: 02:00 CET becomes 03:00 CEST; 02:xx never happens.
		{"2025-03-30T00:59:59Z", 0}, // 01:59:59 CET
		{"2025-03-30T01:00:00Z", 0}, // 03:00 CEST
	}
	for _, tt := range tests {
		if n, _ := c.PoolAt(mustUTC(tt.at)); n != tt.want {
			t.Errorf("PoolAt(%s) = %d, want %d", tt.at, n, tt.want)
		}
	}
}

func TestPoolAtBuiltInCode(t *testing.T) {
	t.Parallel()
	at := mustUTC("2025-03-03T10:00:00Z")
	tests := []struct {
		name string
		c    Class
		want int
	}{
		{"no schedules", Class{IdleCount: 3}, 3},
		{"timezone empty is UTC", Class{Schedules: []Schedule{{Periods: []string{"* 10 * * *"}, IdleCount: 5}}}, 5},
		{"one period of several", Class{Schedules: []Schedule{{Periods: []string{"* 9 * * *", "* 10 * * *"}, IdleCount: 5}}}, 5},
		{"no periods never match", Class{Schedules: []Schedule{{IdleCount: 5}}}, 0},
		{"a bad period never matches", Class{Schedules: []Schedule{{Periods: []string{"nope", "* * 99 * *"}, IdleCount: 5}}}, 0},
		{"a bad timezone never matches", Class{Schedules: []Schedule{{Periods: []string{"* * * * *"}, Timezone: "Nowhere/Town", IdleCount: 5}}}, 0},
		{"an earlier schedule when the last does not match", Class{Schedules: []Schedule{
			{Periods: []string{"* 10 * * *"}, IdleCount: 5},
			{Periods: []string{"* 11 * * *"}, IdleCount: 7},
		}}, 5},
		{"years", Class{Schedules: []Schedule{
			{Periods: []string{"* * * * * 2025"}, IdleCount: 5},
			{Periods: []string{"* * * * * * 2024"}, IdleCount: 7},
		}}, 5},
	}
	for _, tt := range tests {
		if n, _ := tt.c.PoolAt(at); n != tt.want {
			t.Errorf("%s: PoolAt = %d, want %d", tt.name, n, tt.want)
		}
	}
}

// TestCronPeriodAgreesWithCronexpr checks the compiled form against
// cronexpr itself: a second matches when cronexpr's next match after the
// second before is that second (the minute, for expressions without
// seconds).
func TestCronPeriodAgreesWithCronexpr(t *testing.T) {
	t.Parallel()
	exprs := []string{
		"* * 9-17 * * mon-fri *",
		"*/15 30 */2 1-7 * * *",
		"0-29 * 22 * * * *",
		"* 9-17 * * mon-fri",
		"0 0 L * *",
		"0 0 * * 5L",
		"0 0 * * 1#2",
		"0 12 15W * *",
		"0 12 LW * *",
		"30 6 1,15 jan-mar *",
		"0 9 13 * fri",
		"* * * 2 * 2028",
		"@daily",
		"@hourly",
		"@weekly",
		"10-20/5 3 4 * * ? 2030-2040",
		"0 0 * * 7",
		"? 5/10 * * *",
	}
	rng := rand.New(rand.NewPCG(1, 2))
	lo, hi := mustUTC("1970-01-01T00:00:00Z").Unix(), mustUTC("2100-01-01T00:00:00Z").Unix()
	for _, text := range exprs {
		p, err := compilePeriod(text)
		if err != nil {
			t.Errorf("%q: %v", text, err)
			continue
		}
		oracle := cronexpr.MustParse(text)
		seven := len(strings.Fields(cronAliases.Replace(text))) == 7
		// Random seconds, and runs of seconds around a match so that the
		// edges of matching stretches are seen.
		var times []time.Time
		for range 2000 {
			times = append(times, time.Unix(lo+rng.Int64N(hi-lo), 0).UTC())
		}
		for range 20 {
			next := oracle.Next(time.Unix(lo+rng.Int64N(hi-lo), 0).UTC())
			if next.IsZero() {
				continue
			}
			for d := -90; d <= 90; d++ {
				times = append(times, next.Add(time.Duration(d)*time.Second))
			}
		}
		for _, at := range times {
			probe := at
			if !seven {
				probe = at.Truncate(time.Minute)
			}
			want := oracle.Next(probe.Add(-time.Second)).Equal(probe)
			if got := p.matches(wallClockOf(at)); got != want {
				t.Errorf("%q at %v: matches %v, cronexpr says %v", text, at, got, want)
				break
			}
		}
	}
}

// TestPoolAtConcurrent runs PoolAt from many goroutines over many months,
// for the race detector.
func TestPoolAtConcurrent(t *testing.T) {
	t.Parallel()
	c := &Class{Schedules: []Schedule{{Periods: []string{"0 0 * * 1#3"}, Timezone: "Asia/Tokyo", IdleCount: 1}}}
	start := mustUTC("2031-01-01T00:00:00Z")
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				c.PoolAt(start.Add(time.Duration(i*(g+1)) * 37 * time.Hour))
			}
		})
	}
	wg.Wait()
}

// BenchmarkPoolAt is a simulated week at 10s ticks: 60,480 calls, over the
// three schedules of the scheduled class (the worst case, when none
// matches, asks each of them).
func BenchmarkPoolAt(b *testing.B) {
	cfg, err := Load("hangar.yml", []byte(scheduled))
	if err != nil {
		b.Fatal(err)
	}
	c := &cfg.Classes[0]
	start := mustUTC("2025-03-03T00:00:00Z")
	const ticks = 7 * 24 * 360
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		c.PoolAt(start.Add(time.Duration(i%ticks) * 10 * time.Second))
	}
}
