// Package sim is `hangar sim`: a discrete-event simulation of one runner
// class serving a job trace, on a virtual clock, with the autoscaler's real
// decision (fleet.Decide) choosing when to create and remove instances. It
// measures what a pool policy costs (instance-hours, idle hours, money)
// against what it gives (how long jobs wait), so that policies can be
// compared on the same trace before a fleet runs them.
package sim

import (
	"bufio"
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
)

// Job is one job of a trace.
type Job struct {
	// Arrival is when the job becomes pending, in seconds from the
	// trace's start; Duration how long it runs, in seconds.
	Arrival, Duration float64
	// Tags are the job's tags.
	Tags []string
}

// ReadCSV reads a trace: one job per line, "arrival_seconds,tags,
// duration_seconds", tags separated by spaces or semicolons, an optional
// header line. Jobs come back sorted by arrival.
func ReadCSV(r io.Reader) ([]Job, error) {
	cr := csv.NewReader(bufio.NewReader(r))
	cr.FieldsPerRecord = 3
	cr.ReuseRecord = true
	var jobs []Job
	for line := 1; ; line++ {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("trace: %w", err)
		}
		arrival, err1 := strconv.ParseFloat(strings.TrimSpace(rec[0]), 64)
		duration, err2 := strconv.ParseFloat(strings.TrimSpace(rec[2]), 64)
		if err1 != nil || err2 != nil {
			if line == 1 {
				continue // a header
			}
			return nil, fmt.Errorf("trace line %d: want arrival_seconds,tags,duration_seconds, got %q", line, strings.Join(rec, ","))
		}
		if arrival < 0 || duration < 0 || math.IsNaN(arrival+duration) || math.IsInf(arrival+duration, 0) {
			return nil, fmt.Errorf("trace line %d: arrival and duration must be finite and 0 or more", line)
		}
		jobs = append(jobs, Job{Arrival: arrival, Duration: duration,
			Tags: strings.FieldsFunc(rec[1], func(r rune) bool { return r == ' ' || r == ';' })})
	}
	slices.SortStableFunc(jobs, func(a, b Job) int {
		switch {
		case a.Arrival < b.Arrival:
			return -1
		case a.Arrival > b.Arrival:
			return 1
		}
		return 0
	})
	return jobs, nil
}

// WriteCSV writes jobs as ReadCSV reads them, with a header.
func WriteCSV(w io.Writer, jobs []Job) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintln(bw, "arrival_s,tags,duration_s")
	for _, j := range jobs {
		fmt.Fprintf(bw, "%.3f,%s,%.3f\n", j.Arrival, strings.Join(j.Tags, " "), j.Duration)
	}
	return bw.Flush()
}

// GenConfig describes a generated trace.
type GenConfig struct {
	// Days is the trace's length; it starts on a Monday at 00:00.
	Days int
	// JobsPerDay is the mean number of jobs of a weekday; weekends get
	// WeekendShare of it.
	JobsPerDay   float64
	WeekendShare float64
	// NightShare is the arrival rate at night relative to the peak of
	// the working day (09:00–18:00, with ramps from 07:00 and to 20:00).
	NightShare float64
	// BurstsPerDay is the mean number of bursts per weekday (a pipeline
	// that fans out: BurstSize jobs within a minute); they are part of
	// JobsPerDay.
	BurstsPerDay float64
	BurstSize    int
	// MedianDuration and DurationSigma shape the log-normal durations, in
	// seconds and in the log's standard deviation.
	MedianDuration, DurationSigma float64
	// Tags are every job's tags.
	Tags []string
	Seed uint64
}

// DefaultGen returns the configuration of a week of about 50,000 jobs
// around a 4-minute median.
func DefaultGen() GenConfig {
	return GenConfig{
		Days: 7, JobsPerDay: 8500, WeekendShare: 0.15, NightShare: 0.05,
		BurstsPerDay: 6, BurstSize: 60, MedianDuration: 240, DurationSigma: 0.8,
		Tags: []string{"linux"}, Seed: 1,
	}
}

// dayShape is the arrival rate through a weekday, relative to its peak,
// at hour h (0–24): night, a ramp up from 07:00, the working day with a
// lunch dip, a ramp down to 20:00.
func dayShape(h, night float64) float64 {
	var v float64
	switch {
	case h < 7 || h >= 20:
		v = 0
	case h < 9:
		v = (h - 7) / 2
	case h < 18:
		v = 1
		if h >= 12 && h < 13.5 {
			v = 0.75
		}
	default:
		v = (20 - h) / 2
	}
	return night + (1-night)*v
}

// Generate makes a trace: arrivals from a Poisson process whose rate
// follows the working day and the week (by thinning), plus bursts, with
// log-normal durations.
func Generate(cfg GenConfig) []Job {
	rng := rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))
	// The day shape's mean over 24 hours, to turn jobs per day into a
	// peak rate.
	mean := 0.0
	for m := range 24 * 60 {
		mean += dayShape(float64(m)/60, cfg.NightShare)
	}
	mean /= 24 * 60
	burstJobs := cfg.BurstsPerDay * float64(cfg.BurstSize)
	peak := max(cfg.JobsPerDay-burstJobs, 0) / (86400 * mean) // jobs per second at the peak
	duration := func() float64 {
		return cfg.MedianDuration * math.Exp(cfg.DurationSigma*rng.NormFloat64())
	}
	var jobs []Job
	add := func(t float64) {
		jobs = append(jobs, Job{Arrival: t, Duration: math.Round(duration()*1000) / 1000, Tags: cfg.Tags})
	}
	end := float64(cfg.Days) * 86400
	for t := 0.0; peak > 0; {
		t += rng.ExpFloat64() / peak
		if t >= end {
			break
		}
		day := int(t / 86400)
		rate := dayShape(math.Mod(t, 86400)/3600, cfg.NightShare)
		if day%7 >= 5 {
			rate *= cfg.WeekendShare
		}
		if rng.Float64() < rate {
			add(t)
		}
	}
	for day := range cfg.Days {
		n := cfg.BurstsPerDay
		if day%7 >= 5 {
			n *= cfg.WeekendShare
		}
		for range poisson(rng, n) {
			// Bursts come in the working day.
			start := float64(day)*86400 + (9+9*rng.Float64())*3600
			for range cfg.BurstSize {
				add(start + 60*rng.Float64())
			}
		}
	}
	slices.SortFunc(jobs, func(a, b Job) int {
		switch {
		case a.Arrival < b.Arrival:
			return -1
		case a.Arrival > b.Arrival:
			return 1
		}
		return 0
	})
	for i := range jobs {
		jobs[i].Arrival = math.Round(jobs[i].Arrival*1000) / 1000
	}
	return jobs
}

// poisson draws from a Poisson distribution of the given mean (Knuth's
// method: the means here are small).
func poisson(rng *rand.Rand, mean float64) int {
	l, k, p := math.Exp(-mean), 0, 1.0
	for {
		p *= rng.Float64()
		if p <= l {
			return k
		}
		k++
	}
}
