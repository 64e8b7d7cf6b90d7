package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hangar-ci/hangar/internal/store"
)

// FinishedSeed is what SeedFinished created: the analytics' window and
// how many jobs finished in it and in all.
type FinishedSeed struct {
	// Since is the start of the window, 30 days before the seed's end.
	Since time.Time
	// InWindow jobs finished at or after Since; Finished jobs in all
	// (the others finished earlier).
	InWindow, Finished int
}

// seedAgents are the label sets of the agents the seed's jobs ran on.
var seedAgents = [][]string{
	{"docker", "linux"}, {"docker", "linux", "amd64"}, {"arm64", "linux"}, {"gpu", "docker"},
	{"windows"}, {"macos", "arm64"}, nil, {"docker", "linux", "hangar-class:small"},
}

// SeedFinished fills s, in one update, with n jobs finished in the 30 days
// before end, n/10 finished in the 10 days before those and n/10 not
// finished (pending, running, created, manual), in pipelines of 100 jobs,
// for benchmarks of Jobs.ListFinished. Every job that ran has an attempt
// on one of 8 agents, 1 in 20 of them two (a retry, on another agent);
// 1 in 10 finished jobs never ran (skipped, or canceled before it did).
// Every attempt reported 4 to 8 steps (seedSteps).
func SeedFinished(tb testing.TB, s store.Store, n int, end time.Time) FinishedSeed {
	tb.Helper()
	ctx := context.Background()
	const window, before = 30 * 24 * time.Hour, 10 * 24 * time.Hour
	seed := FinishedSeed{Since: end.Add(-window), InWindow: n, Finished: n + n/10}
	total := seed.Finished + n/10
	err := s.Update(ctx, func(tx store.Tx) error {
		p, err := tx.Projects().Ensure(ctx, "bench", end)
		if err != nil {
			return err
		}
		var agents []*store.Agent
		for i, labels := range seedAgents {
			a := &store.Agent{Name: fmt.Sprint("agent-", i), TokenHash: fmt.Appendf(nil, "bench token %d", i),
				Labels: labels, Status: store.AgentActive, Concurrency: 4, CreatedAt: end, LastSeenAt: end}
			if err := tx.Agents().Create(ctx, a); err != nil {
				return err
			}
			agents = append(agents, a)
		}
		var pl *store.Pipeline
		for i := range total {
			if i%100 == 0 {
				pl = &store.Pipeline{ProjectID: p.ID, Status: store.PipelineSuccess, Source: "push", Ref: "main",
					CreatedAt: end}
				if err := tx.Pipelines().Create(ctx, pl); err != nil {
					return err
				}
			}
			// The in-window jobs finish oldest first, the older ones
			// after them in ID order, the unfinished ones last.
			var done time.Time
			switch {
			case i < n:
				done = seed.Since.Add(time.Duration(i) * (window / time.Duration(n)))
			case i < seed.Finished:
				done = seed.Since.Add(-before + time.Duration(i-n)*(before/time.Duration(n/10+1)))
			}
			j := &store.Job{PipelineID: pl.ID, Name: fmt.Sprint("test ", i%100), Stage: "test", When: "on_success",
				Spec: store.JobSpec{Script: []string{"make test"}, Timeout: time.Hour}, ExitCode: -1,
				CreatedAt: done.Add(-10 * time.Minute), PendingAt: done.Add(-9 * time.Minute),
				StartedAt: done.Add(-8 * time.Minute), FinishedAt: done, Attempts: 1}
			switch {
			case done.IsZero():
				j.Status = []store.JobStatus{store.JobPending, store.JobRunning, store.JobCreated, store.JobManual}[i%4]
				j.CreatedAt, j.PendingAt, j.StartedAt = end, end, end
				if j.Status != store.JobRunning {
					j.Attempts, j.StartedAt = 0, time.Time{}
				}
			case i%10 == 9:
				j.Status = []store.JobStatus{store.JobSkipped, store.JobCanceled}[i/10%2]
				j.Attempts, j.StartedAt = 0, time.Time{}
			case i%20 == 3:
				j.Status, j.Attempts = store.JobSuccess, 2
			case i%7 == 0:
				j.Status, j.ExitCode, j.FailureReason = store.JobFailed, 1, "script_failure"
			default:
				j.Status, j.ExitCode = store.JobSuccess, 0
			}
			if err := tx.Jobs().Create(ctx, j); err != nil {
				return err
			}
			for k := range j.Attempts {
				a := &store.Attempt{JobID: j.ID, Number: k + 1, AgentID: agents[(i+k)%len(agents)].ID,
					TokenHash: fmt.Appendf(nil, "attempt %d.%d", i, k), Status: store.AttemptSuccess,
					CreatedAt: j.StartedAt, StartedAt: j.StartedAt, FinishedAt: j.FinishedAt, Steps: seedSteps(i + k)}
				if err := tx.Jobs().CreateAttempt(ctx, a); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatalf("seed %d jobs: %v", total, err)
	}
	return seed
}

// seedSteps returns the steps the i'th attempt of a seed reported: 4 to
// 8 of them, in the order they run, each taking seconds to the full
// precision of a measured duration, as an agent reports them.
func seedSteps(i int) []store.StepTiming {
	var steps []store.StepTiming
	for k, name := range []string{"get_sources", "restore_cache", "download_artifacts", "prepare_executor",
		"script", "after_script", "save_cache", "upload_artifacts"} {
		switch name {
		case "restore_cache", "save_cache":
			if i%2 == 0 {
				continue
			}
		case "download_artifacts", "upload_artifacts":
			if i%3 != 0 {
				continue
			}
		}
		steps = append(steps, store.StepTiming{Name: name, Seconds: float64((i*31+k*17)%6000) / 7})
	}
	return steps
}

// BenchListFinished measures Jobs.ListFinished(since), in a Read of its
// own, which must return want jobs; it reports the milliseconds per call
// (ms/op) and the jobs returned (jobs/op).
func BenchListFinished(b *testing.B, s store.Store, since time.Time, want int) {
	b.Helper()
	ctx := context.Background()
	var got int
	for b.Loop() {
		err := s.Read(ctx, func(tx store.Tx) error {
			jts, err := tx.Jobs().ListFinished(ctx, since)
			got = len(jts)
			return err
		})
		if err != nil {
			b.Fatalf("ListFinished: %v", err)
		}
		if got != want {
			b.Fatalf("ListFinished(%v): %d jobs, want %d", since, got, want)
		}
	}
	b.ReportMetric(float64(b.Elapsed())/float64(b.N)/float64(time.Millisecond), "ms/op")
	b.ReportMetric(float64(got), "jobs/op")
}
