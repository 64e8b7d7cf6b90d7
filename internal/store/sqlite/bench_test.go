package sqlite_test

import (
	"context"
	"testing"
	"time"

	"github.com/hangar-ci/hangar/internal/store"
	"github.com/hangar-ci/hangar/internal/store/storetest"
)

// BenchmarkLogAppend measures one Update appending 100 bytes to a log.
func BenchmarkLogAppend(b *testing.B) {
	ctx := context.Background()
	s, _ := openTemp(b)
	defer s.Close()
	attempt := benchJobs(b, s, 1, true)[0]
	line := []byte("0123456789 the quick brown fox jumps over the lazy dog 0123456789 the quick brown fox jumps ov\n")
	var size int64
	b.SetBytes(int64(len(line)))
	b.ResetTimer()
	for range b.N {
		err := s.Update(ctx, func(tx store.Tx) error {
			var err error
			size, err = tx.Logs().Append(ctx, attempt, size, line)
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkClaimComplete measures a job's life on an agent: one Update
// claiming it (NextPending, CreateAttempt, Jobs.Update) and one
// completing it (UpdateAttempt, Jobs.Update).
func BenchmarkClaimComplete(b *testing.B) {
	ctx := context.Background()
	s, _ := openTemp(b)
	defer s.Close()
	benchJobs(b, s, b.N, false)
	var agent store.Agent
	if err := s.Update(ctx, func(tx store.Tx) error {
		agent = store.Agent{Name: "bench", TokenHash: []byte("bench"), Labels: []string{"docker", "linux"},
			Status: store.AgentActive}
		return tx.Agents().Create(ctx, &agent)
	}); err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	b.ResetTimer()
	for range b.N {
		var (
			job     *store.Job
			attempt store.Attempt
		)
		err := s.Update(ctx, func(tx store.Tx) error {
			var err error
			job, err = tx.Jobs().NextPending(ctx, agent.Labels, now)
			if err != nil {
				return err
			}
			job.Status, job.Attempts, job.StartedAt = store.JobRunning, job.Attempts+1, now
			attempt = store.Attempt{JobID: job.ID, Number: job.Attempts, AgentID: agent.ID,
				TokenHash: []byte("0123456789abcdef0123456789abcdef"), Status: store.AttemptRunning,
				LeaseExpiresAt: now.Add(time.Minute), CreatedAt: now, StartedAt: now}
			if err := tx.Jobs().CreateAttempt(ctx, &attempt); err != nil {
				return err
			}
			return tx.Jobs().Update(ctx, job)
		})
		if err != nil {
			b.Fatalf("claim: %v", err)
		}
		err = s.Update(ctx, func(tx store.Tx) error {
			attempt.Status, attempt.ExitCode, attempt.FinishedAt = store.AttemptSuccess, 0, now
			if err := tx.Jobs().UpdateAttempt(ctx, &attempt); err != nil {
				return err
			}
			job.Status, job.ExitCode, job.FinishedAt = store.JobSuccess, 0, now
			return tx.Jobs().Update(ctx, job)
		})
		if err != nil {
			b.Fatalf("complete: %v", err)
		}
	}
}

// benchJobs creates n pending jobs, tagged half of them, and when
// withAttempts an agent and an attempt for each; it returns the attempts'
// IDs.
func benchJobs(b *testing.B, s store.Store, n int, withAttempts bool) []int64 {
	b.Helper()
	ctx := context.Background()
	var attempts []int64
	err := s.Update(ctx, func(tx store.Tx) error {
		p, err := tx.Projects().Ensure(ctx, "bench", time.Now())
		if err != nil {
			return err
		}
		pl := &store.Pipeline{ProjectID: p.ID, Status: store.PipelineRunning}
		if err := tx.Pipelines().Create(ctx, pl); err != nil {
			return err
		}
		agent := &store.Agent{Name: "bench-setup", TokenHash: []byte("setup"), Status: store.AgentActive}
		if withAttempts {
			if err := tx.Agents().Create(ctx, agent); err != nil {
				return err
			}
		}
		now := time.Now()
		for i := range n {
			j := &store.Job{PipelineID: pl.ID, Name: "job", Stage: "test", Status: store.JobPending,
				Spec:      store.JobSpec{Script: []string{"make test"}, Timeout: time.Hour},
				CreatedAt: now, PendingAt: now.Add(time.Duration(i) * time.Microsecond), ExitCode: -1}
			if i%2 == 1 {
				j.Tags = []string{"docker"}
			}
			if err := tx.Jobs().Create(ctx, j); err != nil {
				return err
			}
			if withAttempts {
				a := &store.Attempt{JobID: j.ID, Number: 1, AgentID: agent.ID, Status: store.AttemptRunning}
				if err := tx.Jobs().CreateAttempt(ctx, a); err != nil {
					return err
				}
				attempts = append(attempts, a.ID)
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return attempts
}

// BenchmarkListFinished measures Jobs.ListFinished, what the analytics
// read, over 100,000 jobs finished in its 30-day window (window-30d) and
// over every finished job (all: 110,000), among 120,000 jobs; the last
// attempt of each job that ran reported 4 to 8 steps.
func BenchmarkListFinished(b *testing.B) {
	s, _ := openTemp(b)
	defer s.Close()
	start := time.Now()
	seed := storetest.SeedFinished(b, s, 100_000, time.Date(2025, 3, 14, 0, 0, 0, 0, time.UTC))
	b.Logf("seeded %d finished jobs in %v", seed.Finished, time.Since(start).Round(time.Millisecond))
	b.Run("window-30d", func(b *testing.B) { storetest.BenchListFinished(b, s, seed.Since, seed.InWindow) })
	b.Run("all", func(b *testing.B) { storetest.BenchListFinished(b, s, time.Time{}, seed.Finished) })
}
