package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/hangar-ci/hangar/internal/fleet"
	"github.com/hangar-ci/hangar/internal/sim"
)

func runSim(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "gen" {
		return runSimGen(args[1:], stdout, stderr)
	}
	var (
		tracePath, fleetPath string
		maxInstances         int
		asJSON               bool
	)
	model := sim.DefaultModel()
	fs := flag.NewFlagSet("sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&tracePath, "trace", "", "job trace, CSV: arrival_seconds,tags,duration_seconds (default: a generated week, as `hangar sim gen` makes it)")
	fs.StringVar(&fleetPath, "fleet", "", "a server configuration file: each class of its fleet is a policy to compare (default: the built-in baselines)")
	fs.IntVar(&maxInstances, "max-instances", 120, "max_instances of the built-in baselines")
	fs.DurationVar(&model.BootMedian, "boot-median", model.BootMedian, "provider model: median time from create to an instance taking jobs")
	fs.DurationVar(&model.BootP90, "boot-p90", model.BootP90, "provider model: its 90th percentile (boot times are log-normal)")
	fs.Float64Var(&model.PricePerHour, "price", model.PricePerHour, "provider model: price of an instance-hour")
	fs.Float64Var(&model.SpotPricePerHour, "spot-price", model.SpotPricePerHour, "provider model: price of a spot instance-hour")
	fs.Float64Var(&model.SpotInterruptionsPerHour, "spot-interruptions", model.SpotInterruptionsPerHour, "provider model: interruptions per spot instance-hour")
	fs.DurationVar(&model.Tick, "tick", model.Tick, "how often the autoscaler's loop runs (it also runs when a job arrives or ends)")
	fs.Uint64Var(&model.Seed, "seed", model.Seed, "seed of the boot times and interruptions")
	fs.BoolVar(&asJSON, "json", false, `print {"policies":[…]} as JSON`)
	fs.Usage = func() {
		fmt.Fprintf(stderr, `Usage: hangar sim [flags]
       hangar sim gen [flags] > trace.csv

Simulate runner classes serving a job trace on a virtual clock, with the
autoscaler's own decision code, and compare what each costs (instance-hours,
idle hours, money) with how long jobs wait (p50, p95, p99 from pending to
started). The policies are the classes of --fleet, each serving the jobs
whose tags its labels cover, or these baselines: static fleets, one
instance per job, GitLab's docker+machine, the idle policy at several
idle_count values and the adaptive policy at several targets.

Flags:
`)
		fs.PrintDefaults()
	}
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "hangar sim: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	if model.BootMedian <= 0 || model.BootP90 < model.BootMedian || model.Tick <= 0 ||
		model.PricePerHour < 0 || model.SpotPricePerHour < 0 || model.SpotInterruptionsPerHour < 0 {
		fmt.Fprintf(stderr, "hangar sim: the provider model wants --boot-median > 0, --boot-p90 >= --boot-median, --tick > 0 and no negative price or rate\n")
		return exitUsage
	}
	trace, err := loadTrace(tracePath)
	if err != nil {
		fmt.Fprintf(stderr, "hangar sim: %v\n", err)
		return exitTrouble
	}
	policies := sim.Baselines(maxInstances)
	if fleetPath != "" {
		cfg, err := fleet.LoadFile(fleetPath)
		if err != nil {
			fmt.Fprintf(stderr, "hangar sim: %v\n", err)
			return exitUsage
		}
		if len(cfg.Classes) == 0 {
			fmt.Fprintf(stderr, "hangar sim: %s: the fleet has no classes\n", fleetPath)
			return exitUsage
		}
		policies = policies[:0]
		for _, c := range cfg.Classes {
			policies = append(policies, sim.Policy{Name: c.Name, Class: c})
		}
	}
	results := simulate(ctx, policies, model, trace)
	if ctx.Err() != nil {
		fmt.Fprintf(stderr, "hangar sim: %v\n", ctx.Err())
		return exitTrouble
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(struct {
			Policies []sim.Result `json:"policies"`
		}{results})
		return exitOK
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "POLICY\tJOBS\tWAIT P50\tP95\tP99\tINSTANCE-H\tIDLE-H\tCOST\tPOOL HITS\tREQUEUED\t")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%d\t%.1fs\t%.1fs\t%.1fs\t%.1f\t%.1f\t%.2f\t%.1f%%\t%d\t\n", r.Name, r.Jobs, r.WaitP50, r.WaitP95, r.WaitP99,
			r.InstanceHours, r.IdleHours, r.Cost, r.PoolHitRate*100, r.Requeued)
	}
	tw.Flush()
	return exitOK
}

// loadTrace reads the trace at path, or generates the default week.
func loadTrace(path string) ([]sim.Job, error) {
	if path == "" {
		return sim.Generate(sim.DefaultGen()), nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	jobs, err := sim.ReadCSV(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return jobs, nil
}

// simulate runs the policies, as many at once as there are cores, each on
// the jobs of trace its class serves, and returns their results in order.
func simulate(ctx context.Context, policies []sim.Policy, model sim.Model, trace []sim.Job) []sim.Result {
	results := make([]sim.Result, len(policies))
	work := make(chan int)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(policies)) {
		wg.Go(func() {
			for i := range work {
				p := policies[i]
				var jobs []sim.Job
				for _, j := range trace {
					if servesTags(p.Class.Labels, j.Tags) {
						jobs = append(jobs, j)
					}
				}
				results[i] = sim.Run(p.Name, p.Class, model, jobs)
			}
		})
	}
	for i := range policies {
		if ctx.Err() != nil {
			break
		}
		work <- i
	}
	close(work)
	wg.Wait()
	return results
}

// servesTags reports whether a class with labels takes a job with tags:
// a class without labels (the baselines) takes every job.
func servesTags(labels, tags []string) bool {
	if len(labels) == 0 {
		return true
	}
	for _, t := range tags {
		if !slices.Contains(labels, t) {
			return false
		}
	}
	return true
}

func runSimGen(args []string, stdout, stderr io.Writer) int {
	cfg := sim.DefaultGen()
	var (
		median time.Duration
		tags   string
	)
	fs := flag.NewFlagSet("sim gen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&cfg.Days, "days", cfg.Days, "days of trace, starting on a Monday")
	fs.Float64Var(&cfg.JobsPerDay, "jobs-per-day", cfg.JobsPerDay, "mean jobs of a weekday, bursts included")
	fs.Float64Var(&cfg.WeekendShare, "weekend-share", cfg.WeekendShare, "a weekend day's jobs, as a share of a weekday's")
	fs.Float64Var(&cfg.NightShare, "night-share", cfg.NightShare, "the arrival rate at night, as a share of the working day's peak")
	fs.Float64Var(&cfg.BurstsPerDay, "bursts-per-day", cfg.BurstsPerDay, "mean bursts per weekday (a pipeline fanning out)")
	fs.IntVar(&cfg.BurstSize, "burst-size", cfg.BurstSize, "jobs of a burst, arriving within a minute")
	fs.DurationVar(&median, "median", time.Duration(cfg.MedianDuration)*time.Second, "median job duration (durations are log-normal)")
	fs.Float64Var(&cfg.DurationSigma, "sigma", cfg.DurationSigma, "standard deviation of the durations' logarithm")
	fs.StringVar(&tags, "tags", "linux", "comma-separated tags of every job")
	fs.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "random seed: the same seed gives the same trace")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: hangar sim gen [flags] > trace.csv\n\nGenerate a job trace: Poisson arrivals that follow the working day and the\nweek, with bursts, and log-normal durations. The default is a week of about\n50,000 jobs around a 4-minute median.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "hangar sim gen: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	cfg.MedianDuration = median.Seconds()
	cfg.Tags = splitList(tags)
	if cfg.Days <= 0 || cfg.JobsPerDay < 0 || cfg.BurstsPerDay < 0 || cfg.BurstSize < 0 || cfg.MedianDuration <= 0 || cfg.DurationSigma < 0 ||
		cfg.WeekendShare < 0 || cfg.NightShare < 0 || cfg.NightShare > 1 {
		fmt.Fprintf(stderr, "hangar sim gen: --days and --median must be more than 0, --night-share between 0 and 1, and nothing negative\n")
		return exitUsage
	}
	if err := sim.WriteCSV(stdout, sim.Generate(cfg)); err != nil {
		fmt.Fprintf(stderr, "hangar sim gen: %v\n", err)
		return exitTrouble
	}
	return exitOK
}
