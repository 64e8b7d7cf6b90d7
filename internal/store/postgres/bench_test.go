package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hangar-ci/hangar/internal/store/internal/codec"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hangar-ci/hangar/internal/store"
	"github.com/hangar-ci/hangar/internal/store/storetest"
)

// claimSeed describes the pending jobs a claim benchmark runs against.
type claimSeed struct {
	// jobs pending, in pipelines of perPipeline.
	jobs, perPipeline int
	// tags returns the tags of the i'th job of n (oldest first), drawing
	// on r, a random source of the seed's own.
	tags func(i, n int, r *rand.Rand) []string
}

// mixTags are the tag sets of the tagged jobs: some fit an agent labelled
// docker and linux, others want arm64, a GPU or Windows.
var mixTags = [][]string{
	{"docker"}, {"linux"}, {"docker", "linux"},
	{"arm64"}, {"gpu"}, {"docker", "gpu"}, {"arm64", "linux"}, {"windows"},
}

// Two sets of 20,000 pending jobs:
//
//   - mix: ~70% untagged, ~30% tagged with one of mixTags, the way a busy
//     installation's queue looks. Untagged jobs fit any agent, so a claim
//     walks a few rows at most.
//   - backlog: the mix with every job tagged, the untagged ones for a
//     Windows fleet no agent here belongs to, and the newest 1% tagged
//     riscv64: an agent labelled riscv64 fits those alone, the worst case
//     for the oldest-first walk short of fitting none.
//
// ~1% of the jobs are delayed past the claims' now in both.
var (
	mixSeed = claimSeed{jobs: 20_000, perPipeline: 100, tags: func(_, _ int, r *rand.Rand) []string {
		if r.IntN(10) < 7 {
			return nil
		}
		return mixTags[r.IntN(len(mixTags))]
	}}
	backlogSeed = claimSeed{jobs: 20_000, perPipeline: 100, tags: func(i, n int, r *rand.Rand) []string {
		if i >= n*99/100 {
			return []string{"riscv64"}
		}
		if r.IntN(10) < 7 {
			return []string{"windows"}
		}
		return mixTags[r.IntN(len(mixTags))]
	}}
)

// BenchmarkClaimQuery measures Jobs.NextPending against 20,000 pending
// jobs: the claim query, inside an Update that rolls back so the pending
// set stays as seeded. It reports the claim's p50 and p99 in milliseconds
// (claim-p50-ms, claim-p99-ms; the goal is p99 under 5 ms) and the whole
// Update's p99 (update-p99-ms: begin, writer lock, claim, rollback), and
// logs the claim's plan (go test -v).
func BenchmarkClaimQuery(b *testing.B) {
	for _, ds := range []struct {
		name     string
		seed     claimSeed
		variants []claimVariant
	}{
		{"mix", mixSeed, []claimVariant{
			{name: "docker-linux", labels: []string{"docker", "linux"}},
		}},
		{"backlog", backlogSeed, []claimVariant{
			{name: "newest-1pct-riscv64", labels: []string{"riscv64"}},
			{name: "none-ppc64le", labels: []string{"ppc64le"}},
		}},
	} {
		s, pool := openPending(b, 4)
		now, names := ds.seed.create(b, s, pool)
		for _, v := range ds.variants {
			v.now, v.want = now, v.expect(names, now)
			v.explain(b, pool)
			b.Run(ds.name+"-"+v.name, v.run(s))
		}
	}
}

// claimVariant is one agent claiming from one seed.
type claimVariant struct {
	name   string
	labels []string
	now    time.Time
	// want is the name of the job the claim returns, "" for none.
	want string
}

// seededJob is what the benchmark remembers of a job it seeded.
type seededJob struct {
	name     string
	tags     []string
	runAfter time.Time
}

// create seeds s with the pending jobs, with COPY through pool (the
// jobs_pending trigger fills pending_jobs as it does for Jobs.Create),
// vacuums and analyzes the tables as autovacuum would, and returns the
// claims' now and the jobs, oldest first.
func (cs claimSeed) create(b *testing.B, s *Store, pool *pgxpool.Pool) (time.Time, []seededJob) {
	b.Helper()
	ctx := context.Background()
	start := time.Now()
	pipelines := newPipelines(b, s, (cs.jobs+cs.perPipeline-1)/cs.perPipeline)
	r := rand.New(rand.NewPCG(1, 2))
	now := pendingEpoch.Add(time.Hour)
	spec, err := json.Marshal(store.JobSpec{Script: []string{"make test"}, Timeout: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	jobs := make([]seededJob, cs.jobs)
	rows := make([][]any, cs.jobs)
	for i := range jobs {
		j := seededJob{name: fmt.Sprint("job ", i), tags: cs.tags(i, cs.jobs, r)}
		if r.IntN(100) == 0 {
			j.runAfter = now.Add(time.Hour)
		}
		tags, err := json.Marshal(j.tags)
		if err != nil {
			b.Fatal(err)
		}
		jobs[i] = j
		rows[i] = []any{pipelines[i/cs.perPipeline], j.name, "test", 1, store.JobPending, "on_success",
			false, "null", string(tags), "null", string(spec), "", "", 0,
			0, -1, codec.Micros(j.runAfter), codec.Micros(pendingEpoch), codec.Micros(pendingEpoch.Add(time.Duration(i) * time.Millisecond)),
			int64(0), int64(0)}
	}
	cols := []string{"pipeline_id", "name", "stage", "stage_index", "status", "run_when",
		"allow_failure", "allow_failure_exit_codes", "tags", "needs", "spec", "reason", "failure_reason", "attempts",
		"lost_attempts", "exit_code", "run_after", "created_at", "pending_at", "started_at", "finished_at"}
	if _, err := pool.CopyFrom(ctx, pgx.Identifier{"jobs"}, cols, pgx.CopyFromRows(rows)); err != nil {
		b.Fatalf("seed jobs: %v", err)
	}
	if _, err := pool.Exec(ctx, `VACUUM (ANALYZE) jobs, pending_jobs`); err != nil {
		b.Fatalf("vacuum: %v", err)
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM pending_jobs`).Scan(&n); err != nil || n != cs.jobs {
		b.Fatalf("pending_jobs holds %d rows (%v), want %d", n, err, cs.jobs)
	}
	b.Logf("seeded %d pending jobs in %v", cs.jobs, time.Since(start).Round(time.Millisecond))
	return now, jobs
}

// expect returns the name of the job v's claim must return: the oldest
// due job whose tags are all among the labels, "" when none is.
func (v claimVariant) expect(jobs []seededJob, now time.Time) string {
	for _, j := range jobs {
		if j.runAfter.After(now) {
			continue
		}
		if !slices.ContainsFunc(j.tags, func(t string) bool { return !slices.Contains(v.labels, t) }) {
			return j.name
		}
	}
	return ""
}

// explain logs the plan of v's claim, run and rolled back, and fails b
// unless it reads pending_jobs through one of its indexes.
func (v claimVariant) explain(b *testing.B, pool *pgxpool.Pool) {
	b.Helper()
	ctx := context.Background()
	var lines []string
	err := pgx.BeginFunc(ctx, pool, func(t pgx.Tx) error {
		rows, err := t.Query(ctx, `EXPLAIN (ANALYZE, BUFFERS) `+nextPendingSQL, codec.Micros(v.now), v.labels)
		if err != nil {
			return err
		}
		lines, err = pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		return errRollback
	})
	if !errors.Is(err, errRollback) {
		b.Fatalf("explain the claim for %v: %v", v.labels, err)
	}
	plan := strings.Join(lines, "\n")
	b.Logf("claim for %v:\n%s", v.labels, plan)
	if !strings.Contains(plan, "pending_jobs_order") && !strings.Contains(plan, "pending_jobs_tags") {
		b.Errorf("the claim for %v reads pending_jobs without its indexes", v.labels)
	}
}

// run returns the benchmark of v's claim on s.
func (v claimVariant) run(s *Store) func(b *testing.B) {
	return func(b *testing.B) {
		ctx := context.Background()
		claims := make([]time.Duration, 0, b.N)
		updates := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		for range b.N {
			var (
				claim time.Duration
				job   *store.Job
				cerr  error
			)
			start := time.Now()
			err := s.Update(ctx, func(tx store.Tx) error {
				t0 := time.Now()
				job, cerr = tx.Jobs().NextPending(ctx, v.labels, v.now)
				claim = time.Since(t0)
				return errRollback
			})
			updates = append(updates, time.Since(start))
			claims = append(claims, claim)
			if !errors.Is(err, errRollback) {
				b.Fatalf("update: %v", err)
			}
			switch {
			case v.want == "":
				if !errors.Is(cerr, store.ErrNotFound) {
					b.Fatalf("claim for %v: %v, %v; want none", v.labels, job, cerr)
				}
			case cerr != nil:
				b.Fatalf("claim for %v: %v", v.labels, cerr)
			case job.Name != v.want:
				b.Fatalf("claim for %v: job %q, want %q", v.labels, job.Name, v.want)
			}
		}
		b.StopTimer()
		b.ReportMetric(percentileMs(claims, 50), "claim-p50-ms")
		b.ReportMetric(percentileMs(claims, 99), "claim-p99-ms")
		b.ReportMetric(percentileMs(updates, 99), "update-p99-ms")
	}
}

// percentileMs returns the p'th percentile of ds in milliseconds,
// nearest rank; it sorts ds.
func percentileMs(ds []time.Duration, p int) float64 {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	i := (len(ds)*p + 99) / 100 // nearest rank, from 1
	return float64(ds[max(i, 1)-1]) / float64(time.Millisecond)
}

// BenchmarkListFinished measures Jobs.ListFinished, what the analytics
// read, over 100,000 jobs finished in its 30-day window (window-30d) and
// over every finished job (all: 110,000), among 120,000 jobs (the last
// attempt of each job that ran reported 4 to 8 steps), after a VACUUM
// ANALYZE as autovacuum would run; it logs the window's plan.
func BenchmarkListFinished(b *testing.B) {
	ctx := context.Background()
	s, pool := openPending(b, 4)
	start := time.Now()
	seed := storetest.SeedFinished(b, s, 100_000, pendingEpoch)
	b.Logf("seeded %d finished jobs in %v", seed.Finished, time.Since(start).Round(time.Millisecond))
	if _, err := pool.Exec(ctx, `VACUUM (ANALYZE) jobs, attempts, agents`); err != nil {
		b.Fatalf("vacuum: %v", err)
	}
	for _, since := range []time.Time{seed.Since, pendingEpoch.Add(-24 * time.Hour)} {
		rows, err := pool.Query(ctx, `EXPLAIN (ANALYZE, BUFFERS) `+listFinishedSQL, codec.SinceMicros(since))
		if err != nil {
			b.Fatalf("explain: %v", err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			b.Fatalf("explain: %v", err)
		}
		b.Logf("ListFinished since %v:\n%s", since, strings.Join(lines, "\n"))
	}
	b.Run("window-30d", func(b *testing.B) { storetest.BenchListFinished(b, s, seed.Since, seed.InWindow) })
	b.Run("all", func(b *testing.B) { storetest.BenchListFinished(b, s, time.Time{}, seed.Finished) })
}
