package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hangar-ci/hangar/internal/store"
)

func testTransactions(t *testing.T, open opener) {
	t.Run("UpdateRollsBack", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ctx := context.Background()
		a := newLog(t, s)
		failed := errors.New("fn failed")
		var pipeline *store.Pipeline
		err := s.Update(ctx, func(tx store.Tx) error {
			p, err := tx.Projects().Ensure(ctx, "doomed", epoch)
			if err != nil {
				return err
			}
			pipeline = &store.Pipeline{ProjectID: p.ID, Status: store.PipelineCreated}
			if err := tx.Pipelines().Create(ctx, pipeline); err != nil {
				return err
			}
			if _, err := tx.Logs().Append(ctx, a.ID, 0, []byte("lost")); err != nil {
				return err
			}
			a.Status = store.AttemptLost
			if err := tx.Jobs().UpdateAttempt(ctx, a); err != nil {
				return err
			}
			return failed
		})
		if !errors.Is(err, failed) {
			t.Fatalf("Update: %v, want fn's error %v", err, failed)
		}
		read(t, s, func(tx store.Tx) error {
			_, err := tx.Projects().GetByName(ctx, "doomed")
			wantErr(t, "project of a failed update", err, store.ErrNotFound)
			_, err = tx.Pipelines().Get(ctx, pipeline.ID)
			wantErr(t, "pipeline of a failed update", err, store.ErrNotFound)
			if size, err := tx.Logs().Size(ctx, a.ID); err != nil || size != 0 {
				t.Errorf("log of a failed update: size %d, %v; want 0", size, err)
			}
			got, err := tx.Jobs().GetAttempt(ctx, a.ID)
			if err != nil {
				return err
			}
			if got.Status != store.AttemptRunning {
				t.Errorf("attempt of a failed update: status %s, want %s", got.Status, store.AttemptRunning)
			}
			return nil
		})
	})

	t.Run("ReadReturnsFnError", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		failed := errors.New("fn failed")
		if err := s.Read(context.Background(), func(store.Tx) error { return failed }); !errors.Is(err, failed) {
			t.Errorf("Read: %v, want fn's error %v", err, failed)
		}
	})

	t.Run("ReadIsReadOnly", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ctx := context.Background()
		err := s.Read(ctx, func(tx store.Tx) error {
			_, err := tx.Projects().Ensure(ctx, "sneaky", epoch)
			return err
		})
		if err == nil {
			t.Errorf("Ensure in Read succeeded, want an error")
		}
		read(t, s, func(tx store.Tx) error {
			_, err := tx.Projects().GetByName(ctx, "sneaky")
			wantErr(t, "project written in Read", err, store.ErrNotFound)
			return nil
		})
	})

	t.Run("ReadSeesOneState", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ctx := context.Background()
		f := newFixture(t, s, "p")
		createJobs(t, s, f.job("before", epoch))
		count := func(tx store.Tx) int {
			t.Helper()
			js, err := tx.Jobs().ListByPipeline(ctx, f.pipeline.ID)
			if err != nil {
				t.Fatalf("ListByPipeline: %v", err)
			}
			return len(js)
		}
		read(t, s, func(tx store.Tx) error {
			before := count(tx)
			// A concurrent update commits while this read is open.
			done := make(chan error, 1)
			go func() {
				done <- s.Update(ctx, func(tx store.Tx) error {
					return tx.Jobs().Create(ctx, f.job("during", epoch))
				})
			}()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("concurrent update: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("an update waited 10s for an open read")
			}
			if after := count(tx); after != before {
				t.Errorf("within one read the pipeline had %d jobs, then %d", before, after)
			}
			return nil
		})
		read(t, s, func(tx store.Tx) error {
			if n := count(tx); n != 2 {
				t.Errorf("after the update: %d jobs, want 2", n)
			}
			return nil
		})
	})

	t.Run("PanicRollsBack", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ctx := context.Background()
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Update swallowed fn's panic")
				}
			}()
			_ = s.Update(ctx, func(tx store.Tx) error {
				if _, err := tx.Projects().Ensure(ctx, "panicked", epoch); err != nil {
					return err
				}
				panic("fn panics")
			})
		}()
		// The store must still take updates, and the panicking one is gone.
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := s.Update(ctx, func(tx store.Tx) error {
			_, err := tx.Projects().Ensure(ctx, "after", epoch)
			return err
		}); err != nil {
			t.Fatalf("update after a panic: %v", err)
		}
		read(t, s, func(tx store.Tx) error {
			_, err := tx.Projects().GetByName(ctx, "panicked")
			wantErr(t, "project of a panicking update", err, store.ErrNotFound)
			return nil
		})
	})

	t.Run("CanceledContext", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := s.Update(ctx, func(tx store.Tx) error {
			_, err := tx.Projects().Ensure(ctx, "canceled", epoch)
			return err
		})
		if err == nil {
			t.Errorf("Update with a canceled context succeeded")
		}
		read(t, s, func(tx store.Tx) error {
			_, err := tx.Projects().GetByName(context.Background(), "canceled")
			wantErr(t, "project of a canceled update", err, store.ErrNotFound)
			return nil
		})
	})
}

func testConcurrency(t *testing.T, open opener) {
	const workers, rounds = 8, 50

	t.Run("Appends", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ctx := context.Background()
		a := newLog(t, s)
		const chunkLen = len("[w0:000]")
		var wg sync.WaitGroup
		errs := make(chan error, workers*rounds)
		for w := range workers {
			wg.Go(func() {
				for i := range rounds {
					errs <- s.Update(ctx, func(tx store.Tx) error {
						size, err := tx.Logs().Size(ctx, a.ID)
						if err != nil {
							return err
						}
						_, err = tx.Logs().Append(ctx, a.ID, size, fmt.Appendf(nil, "[w%d:%03d]", w, i))
						return err
					})
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("concurrent append: %v", err)
			}
		}
		read(t, s, func(tx store.Tx) error {
			log, err := tx.Logs().Read(ctx, a.ID, 0, 1<<20)
			if err != nil {
				return err
			}
			if len(log) != workers*rounds*chunkLen {
				t.Fatalf("log of %d bytes, want %d", len(log), workers*rounds*chunkLen)
			}
			next := make([]int, workers) // each worker's chunks in its order
			for off := 0; off < len(log); off += chunkLen {
				var w, i int
				if _, err := fmt.Sscanf(string(log[off:off+chunkLen]), "[w%d:%03d]", &w, &i); err != nil || w >= workers || i != next[w] {
					t.Fatalf("at %d: chunk %q, want the next of some worker (%v)", off, log[off:off+chunkLen], next)
				}
				next[w]++
			}
			return nil
		})
	})

	t.Run("Counters", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ctx := context.Background()
		f := newFixture(t, s, "p")
		j := f.job("counted", epoch)
		createJobs(t, s, j)
		var wg sync.WaitGroup
		errs := make(chan error, workers*rounds)
		for range workers {
			wg.Go(func() {
				for range rounds {
					errs <- s.Update(ctx, func(tx store.Tx) error {
						j, err := tx.Jobs().Get(ctx, j.ID)
						if err != nil {
							return err
						}
						j.Attempts++
						return tx.Jobs().Update(ctx, j)
					})
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("concurrent increment: %v", err)
			}
		}
		read(t, s, func(tx store.Tx) error {
			got, err := tx.Jobs().Get(ctx, j.ID)
			if err != nil {
				return err
			}
			if got.Attempts != workers*rounds {
				t.Errorf("%d increments counted %d", workers*rounds, got.Attempts)
			}
			return nil
		})
	})

	t.Run("Claims", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ctx := context.Background()
		f := newFixture(t, s, "p")
		const jobs = 100
		js := make([]*store.Job, jobs)
		for i := range js {
			js[i] = f.job(fmt.Sprint(i), at(time.Duration(i%7)*time.Second))
		}
		createJobs(t, s, js...)
		agents := make([]*store.Agent, workers)
		for w := range agents {
			agents[w] = newAgent(t, s, fmt.Sprint("claimer ", w))
		}

		var (
			claimers, readers sync.WaitGroup
			mu                sync.Mutex
			claimedBy         = map[int64]int{}
			failures          []error
		)
		fail := func(err error) {
			mu.Lock()
			defer mu.Unlock()
			failures = append(failures, err)
		}
		for w := range workers {
			claimers.Go(func() {
				for {
					var claimed *store.Job
					err := s.Update(ctx, func(tx store.Tx) error {
						j, err := tx.Jobs().NextPending(ctx, agents[w].Labels, at(time.Hour))
						if err != nil {
							return err
						}
						j.Status, j.Attempts, j.StartedAt = store.JobRunning, j.Attempts+1, at(time.Hour)
						if err := tx.Jobs().Update(ctx, j); err != nil {
							return err
						}
						claimed = j
						return tx.Jobs().CreateAttempt(ctx, &store.Attempt{JobID: j.ID, Number: j.Attempts,
							AgentID: agents[w].ID, Status: store.AttemptRunning, LeaseExpiresAt: at(2 * time.Hour)})
					})
					if errors.Is(err, store.ErrNotFound) {
						return
					}
					if err != nil {
						fail(fmt.Errorf("claimer %d: %w", w, err))
						return
					}
					if claimed == nil {
						fail(fmt.Errorf("claimer %d: Update returned nil, but fn failed", w))
						return
					}
					mu.Lock()
					if other, ok := claimedBy[claimed.ID]; ok {
						failures = append(failures, fmt.Errorf("job %d claimed by %d and %d", claimed.ID, other, w))
					}
					claimedBy[claimed.ID] = w
					mu.Unlock()
				}
			})
		}
		stop := make(chan struct{})
		for r := range 2 {
			readers.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					err := s.Read(ctx, func(tx store.Tx) error {
						counts, err := tx.Jobs().CountByStatus(ctx)
						if err != nil {
							return err
						}
						if n := counts[store.JobPending] + counts[store.JobRunning]; n != jobs {
							return fmt.Errorf("pending + running = %d, want %d", n, jobs)
						}
						return nil
					})
					if err != nil {
						fail(fmt.Errorf("reader %d: %w", r, err))
						return
					}
				}
			})
		}
		claimers.Wait()
		close(stop)
		readers.Wait()
		for _, err := range failures {
			t.Error(err)
		}
		if len(claimedBy) != jobs {
			t.Errorf("%d of %d jobs claimed", len(claimedBy), jobs)
		}
		read(t, s, func(tx store.Tx) error {
			counts, err := tx.Jobs().CountByStatus(ctx)
			if err != nil {
				return err
			}
			if counts[store.JobRunning] != jobs || counts[store.JobPending] != 0 {
				t.Errorf("after the claims: %v, want %d running", counts, jobs)
			}
			for _, j := range js {
				as, err := tx.Jobs().ListAttempts(ctx, j.ID)
				if err != nil {
					return err
				}
				if len(as) != 1 || as[0].AgentID != agents[claimedBy[j.ID]].ID {
					t.Errorf("job %d: %d attempts, want 1 by claimer %d", j.ID, len(as), claimedBy[j.ID])
				}
			}
			return nil
		})
	})
}
