package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hangar-ci/hangar/internal/store/internal/codec"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hangar-ci/hangar/internal/store"
	"github.com/hangar-ci/hangar/internal/store/postgres/pgtest"
)

// pendingEpoch is the tests' zero hour.
var pendingEpoch = time.Date(2025, 3, 14, 15, 9, 26, 535897000, time.UTC)

// openPending opens a store on a new database, and a pool of its own on
// the same database for what the tests do behind the store's back.
func openPending(tb testing.TB, maxConns int) (*Store, *pgxpool.Pool) {
	tb.Helper()
	ctx := context.Background()
	u := pgtest.NewDatabase(tb, maxConns)
	s, err := Open(ctx, u)
	if err != nil {
		tb.Fatalf("open store: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	pool, err := pgxpool.New(ctx, u)
	if err != nil {
		tb.Fatalf("open pool: %v", err)
	}
	tb.Cleanup(pool.Close)
	return s, pool
}

// newPipelines creates a project and n pipelines in it and returns their
// IDs.
func newPipelines(tb testing.TB, s *Store, n int) []int64 {
	tb.Helper()
	ctx := context.Background()
	var ids []int64
	err := s.Update(ctx, func(tx store.Tx) error {
		ids = ids[:0]
		p, err := tx.Projects().Ensure(ctx, "pending", pendingEpoch)
		if err != nil {
			return err
		}
		for range n {
			pl := &store.Pipeline{ProjectID: p.ID, Status: store.PipelineRunning, Source: "push", Ref: "main",
				CreatedAt: pendingEpoch}
			if err := tx.Pipelines().Create(ctx, pl); err != nil {
				return err
			}
			ids = append(ids, pl.ID)
		}
		return nil
	})
	if err != nil {
		tb.Fatalf("create pipelines: %v", err)
	}
	return ids
}

// pendingRow is one row of pending_jobs.
type pendingRow struct {
	JobID     int64
	PendingAt int64
	RunAfter  int64
	Tags      []string
}

// pendingRows reads pending_jobs by job ID.
func pendingRows(ctx context.Context, pool *pgxpool.Pool) ([]pendingRow, error) {
	rows, err := pool.Query(ctx, `SELECT job_id, pending_at, run_after, tags FROM pending_jobs ORDER BY job_id`)
	if err != nil {
		return nil, fmt.Errorf("read pending_jobs: %w", err)
	}
	rs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[pendingRow])
	if err != nil {
		return nil, fmt.Errorf("read pending_jobs: %w", err)
	}
	return rs, nil
}

// strayPending counts the jobs that break pending_jobs' invariant: pending
// without a row, or a row without being pending.
func strayPending(ctx context.Context, pool *pgxpool.Pool) (int, error) {
	var n int
	err := pool.QueryRow(ctx, `SELECT count(*) FROM jobs j FULL JOIN pending_jobs p ON p.job_id = j.id
		WHERE (j.status = 'pending') IS DISTINCT FROM (p.job_id IS NOT NULL)`).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("check pending_jobs against jobs: %w", err)
	}
	return n, nil
}

// errRollback makes Store.Update roll back.
var errRollback = errors.New("roll back")

// TestPendingJobsFollowStatus takes jobs through their life and reads
// pending_jobs directly after each step: it holds a row for each pending
// job, with its pending_at, run_after and tags, and nothing else.
func TestPendingJobsFollowStatus(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, pool := openPending(t, 4)
	pipeline := newPipelines(t, s, 1)[0]
	us := func(d time.Duration) int64 { return codec.Micros(pendingEpoch.Add(d)) }
	a := &store.Job{PipelineID: pipeline, Name: "a", Status: store.JobPending, Tags: []string{"docker"},
		CreatedAt: pendingEpoch, PendingAt: pendingEpoch.Add(time.Second), ExitCode: -1}
	b := &store.Job{PipelineID: pipeline, Name: "b", Status: store.JobCreated, CreatedAt: pendingEpoch, ExitCode: -1}

	steps := []struct {
		name string
		fn   func(tx store.Tx) error
		// rollback makes the step's Update fail, so it changes nothing.
		rollback bool
		// want is pending_jobs after the step, by job ID; a's and b's IDs
		// are set when the step runs, so want is a function.
		want func() []pendingRow
	}{
		{
			name: "create a pending",
			fn:   func(tx store.Tx) error { return tx.Jobs().Create(ctx, a) },
			want: func() []pendingRow { return []pendingRow{{a.ID, us(time.Second), 0, []string{"docker"}}} },
		},
		{
			name: "create b created",
			fn:   func(tx store.Tx) error { return tx.Jobs().Create(ctx, b) },
			want: func() []pendingRow { return []pendingRow{{a.ID, us(time.Second), 0, []string{"docker"}}} },
		},
		{
			name: "a's reason changes, nothing else",
			fn: func(tx store.Tx) error {
				a.Reason = "no agent has the label docker"
				return tx.Jobs().Update(ctx, a)
			},
			want: func() []pendingRow { return []pendingRow{{a.ID, us(time.Second), 0, []string{"docker"}}} },
		},
		{
			name: "a runs",
			fn: func(tx store.Tx) error {
				a.Status, a.Reason, a.Attempts, a.StartedAt = store.JobRunning, "", 1, pendingEpoch.Add(2*time.Second)
				return tx.Jobs().Update(ctx, a)
			},
			want: func() []pendingRow { return nil },
		},
		{
			name: "a pending again, with new tags and delayed",
			fn: func(tx store.Tx) error {
				a.Status, a.Tags = store.JobPending, []string{"linux", "gpu"}
				a.PendingAt, a.RunAfter = pendingEpoch.Add(3*time.Second), pendingEpoch.Add(time.Minute)
				return tx.Jobs().Update(ctx, a)
			},
			want: func() []pendingRow {
				return []pendingRow{{a.ID, us(3 * time.Second), us(time.Minute), []string{"linux", "gpu"}}}
			},
		},
		{
			name: "b pending, without tags",
			fn: func(tx store.Tx) error {
				b.Status, b.PendingAt = store.JobPending, pendingEpoch.Add(4*time.Second)
				return tx.Jobs().Update(ctx, b)
			},
			want: func() []pendingRow {
				return []pendingRow{
					{a.ID, us(3 * time.Second), us(time.Minute), []string{"linux", "gpu"}},
					{b.ID, us(4 * time.Second), 0, []string{}},
				}
			},
		},
		{
			name: "b's fallback tag while pending",
			fn: func(tx store.Tx) error {
				b.Tags = []string{"hangar-class:big"}
				return tx.Jobs().Update(ctx, b)
			},
			want: func() []pendingRow {
				return []pendingRow{
					{a.ID, us(3 * time.Second), us(time.Minute), []string{"linux", "gpu"}},
					{b.ID, us(4 * time.Second), 0, []string{"hangar-class:big"}},
				}
			},
		},
		{
			name: "a succeeds, rolled back",
			fn: func(tx store.Tx) error {
				c := *a
				c.Status = store.JobSuccess
				if err := tx.Jobs().Update(ctx, &c); err != nil {
					return err
				}
				return errRollback
			},
			rollback: true,
			want: func() []pendingRow {
				return []pendingRow{
					{a.ID, us(3 * time.Second), us(time.Minute), []string{"linux", "gpu"}},
					{b.ID, us(4 * time.Second), 0, []string{"hangar-class:big"}},
				}
			},
		},
		{
			name: "a succeeds",
			fn: func(tx store.Tx) error {
				a.Status, a.FinishedAt = store.JobSuccess, pendingEpoch.Add(5*time.Second)
				return tx.Jobs().Update(ctx, a)
			},
			want: func() []pendingRow {
				return []pendingRow{{b.ID, us(4 * time.Second), 0, []string{"hangar-class:big"}}}
			},
		},
		{
			name: "b's tags emptied, then b canceled",
			fn: func(tx store.Tx) error {
				b.Tags = []string{}
				if err := tx.Jobs().Update(ctx, b); err != nil {
					return err
				}
				b.Status = store.JobCanceled
				return tx.Jobs().Update(ctx, b)
			},
			want: func() []pendingRow { return nil },
		},
	}
	for _, st := range steps {
		err := s.Update(ctx, st.fn)
		if st.rollback && !errors.Is(err, errRollback) || !st.rollback && err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		got, err := pendingRows(ctx, pool)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if want := st.want(); !slices.EqualFunc(got, want, func(g, w pendingRow) bool {
			return g.JobID == w.JobID && g.PendingAt == w.PendingAt && g.RunAfter == w.RunAfter && slices.Equal(g.Tags, w.Tags)
		}) {
			t.Errorf("%s: pending_jobs holds\n\t%+v\nwant\n\t%+v", st.name, got, want)
		}
		if n, err := strayPending(ctx, pool); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		} else if n != 0 {
			t.Errorf("%s: %d jobs pending without a row in pending_jobs, or the other way round", st.name, n)
		}
	}
}

// TestNextPendingSkipsLocked claims jobs in concurrent transactions of
// pgx's own, outside Store.Update and its writer lock: each claim passes
// over the jobs the open transactions hold, instead of waiting for them
// or taking them too.
func TestNextPendingSkipsLocked(t *testing.T) {
	t.Parallel()
	const n = 4
	ctx := context.Background()
	s, pool := openPending(t, 2*n+2)
	pipeline := newPipelines(t, s, 1)[0]
	jobs := make([]*store.Job, n)
	if err := s.Update(ctx, func(tx store.Tx) error {
		for i := range jobs {
			jobs[i] = &store.Job{PipelineID: pipeline, Name: fmt.Sprint("job ", i), Status: store.JobPending,
				CreatedAt: pendingEpoch, PendingAt: pendingEpoch.Add(time.Duration(i) * time.Second), ExitCode: -1}
			if i%2 == 1 {
				jobs[i].Tags = []string{"docker"}
			}
			if err := tx.Jobs().Create(ctx, jobs[i]); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatalf("create jobs: %v", err)
	}
	labels := []string{"docker", "linux"}
	now := pendingEpoch.Add(time.Hour)

	// claim begins a transaction and claims a job in it. A claim that
	// waits for a lock instead of skipping it runs out of time.
	claim := func() (pgx.Tx, *store.Job, error) {
		t2, err := pool.Begin(ctx) // READ COMMITTED, like Store.Update
		if err != nil {
			return nil, nil, fmt.Errorf("begin: %w", err)
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		j, err := tx{t2}.Jobs().NextPending(cctx, labels, now)
		return t2, j, err
	}

	t.Run("in turn", func(t *testing.T) {
		// Each transaction stays open while the next claims: the
		// oldest job nobody holds, then none once all are held.
		var held []pgx.Tx
		defer func() {
			for _, h := range held {
				h.Rollback(ctx)
			}
		}()
		for i := range n + 1 {
			h, j, err := claim()
			if h != nil {
				held = append(held, h)
			}
			switch {
			case i == n:
				if !errors.Is(err, store.ErrNotFound) {
					t.Fatalf("claim with every job held: %v, %v; want ErrNotFound", j, err)
				}
			case err != nil:
				t.Fatalf("claim %d: %v", i, err)
			case j.ID != jobs[i].ID:
				t.Fatalf("claim %d: job %q, want %q", i, j.Name, jobs[i].Name)
			}
		}
		// A claim rolled back lets its job go.
		if err := held[0].Rollback(ctx); err != nil {
			t.Fatalf("rollback: %v", err)
		}
		h, j, err := claim()
		if h != nil {
			held = append(held, h)
		}
		if err != nil || j.ID != jobs[0].ID {
			t.Fatalf("claim after a rollback: %v, %v; want job %q", j, err, jobs[0].Name)
		}
	})

	t.Run("at once", func(t *testing.T) {
		// n goroutines claim together, and none ends its transaction
		// before all have claimed: they must have n different jobs.
		var (
			claimed, done sync.WaitGroup
			ids           [n]int64
			errs          [n]error
		)
		claimed.Add(n)
		for g := range n {
			done.Go(func() {
				h, j, err := claim()
				claimed.Done()
				claimed.Wait() // every claim is made while all are held
				if h != nil {
					defer h.Rollback(ctx)
				}
				if err != nil {
					errs[g] = err
					return
				}
				ids[g] = j.ID
			})
		}
		done.Wait()
		if err := errors.Join(errs[:]...); err != nil {
			t.Fatalf("claims: %v", err)
		}
		got := slices.Sorted(slices.Values(ids[:]))
		want := make([]int64, n)
		for i, j := range jobs {
			want[i] = j.ID
		}
		if !slices.Equal(got, want) {
			t.Errorf("concurrent claims took jobs %v, want each of %v once", got, want)
		}
	})
}
