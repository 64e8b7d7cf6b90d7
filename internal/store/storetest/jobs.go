package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hangar-ci/hangar/internal/store"
)

func testJobs(t *testing.T, open opener) {
	t.Run("RoundTrip", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ctx := context.Background()
		f := newFixture(t, s, "p")
		full := &store.Job{
			PipelineID: f.pipeline.ID, Name: "test: [linux, 1.26]", Stage: "test", StageIndex: 2,
			Status: store.JobFailed, When: "delayed", AllowFailure: true, AllowFailureExitCodes: []int{3, 137},
			Tags: []string{"docker", "gpu"}, Needs: []string{"build", "lint"},
			Spec: store.JobSpec{
				BeforeScript: []string{"cd app"},
				Script:       []string{"make test", "echo 'done' \"quoted\" ünïcode"},
				AfterScript:  []string{"rm -rf tmp"},
				Variables:    []store.Variable{{Name: "GOFLAGS", Value: "-mod=mod"}, {Name: "KEY", Value: "k", Masked: true}},
				Timeout:      90 * time.Minute,
				Retry:        store.RetryPolicy{Max: 2, When: []string{"runner_system_failure"}, ExitCodes: []int{1}},
				Image:        &store.ImageSpec{Name: "golang:1.26", Entrypoint: []string{""}, User: "1000"},
				Services: []store.ServiceSpec{{
					ImageSpec: store.ImageSpec{Name: "postgres:17"}, Alias: "db",
					Command: []string{"postgres", "-c", "fsync=off"}, Variables: []store.Variable{{Name: "POSTGRES_PASSWORD", Value: "pw"}},
				}},
				Artifacts:    &store.ArtifactsSpec{Paths: []string{"bin/"}, Exclude: []string{"bin/*.tmp"}, When: "always", ExpireIn: time.Hour},
				Caches:       []store.CacheSpec{{KeyFiles: []string{"go.sum"}, KeyPrefix: "go", Paths: []string{".cache/"}, Policy: "pull", When: "on_success", FallbackKeys: []string{"main"}}},
				Dependencies: []string{"build"},
			},
			Reason: "script exited 3", FailureReason: "script_failure", Attempts: 3, LostAttempts: 1, ExitCode: 3,
			RunAfter: at(-time.Hour).In(elsewhere), CreatedAt: at(-2 * time.Hour), PendingAt: at(-time.Hour),
			StartedAt: at(time.Second), FinishedAt: at(time.Minute),
		}
		bare := &store.Job{PipelineID: f.pipeline.ID, Name: "bare", Status: store.JobCreated}
		noNeeds := &store.Job{PipelineID: f.pipeline.ID, Name: "no needs", Status: store.JobCreated, Needs: []string{}}
		createJobs(t, s, full, bare, noNeeds)
		if full.ID == 0 || bare.ID <= full.ID || noNeeds.ID <= bare.ID {
			t.Fatalf("job IDs %d, %d, %d: want non-zero and increasing", full.ID, bare.ID, noNeeds.ID)
		}
		read(t, s, func(tx store.Tx) error {
			for _, want := range []*store.Job{full, bare, noNeeds} {
				got, err := tx.Jobs().Get(ctx, want.ID)
				if err != nil {
					return err
				}
				equal(t, fmt.Sprintf("job %q", want.Name), want, got)
			}
			_, err := tx.Jobs().Get(ctx, noNeeds.ID+100)
			wantErr(t, "Get of a missing job", err, store.ErrNotFound)
			return nil
		})
	})

	t.Run("Update", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ctx := context.Background()
		f := newFixture(t, s, "p")
		j := f.job("build", epoch)
		j.Tags, j.Needs = []string{"docker"}, []string{"lint"}
		createJobs(t, s, j)

		want := *j
		want.Status, want.Reason, want.FailureReason = store.JobFailed, "runner lost", "runner_lost"
		want.AllowFailure = !j.AllowFailure
		want.Attempts, want.LostAttempts, want.ExitCode = 2, 1, 137
		want.RunAfter, want.PendingAt = at(time.Minute), at(2*time.Minute)
		want.StartedAt, want.FinishedAt = at(3*time.Minute), at(4*time.Minute)
		want.Tags = []string{"docker", "hangar-class:big"}
		changed := want
		changed.Name, changed.Stage, changed.StageIndex = "renamed", "deploy", 7 // not mutable
		changed.Needs, changed.Spec = nil, store.JobSpec{Image: &store.ImageSpec{Name: "x"}}
		update(t, s, func(tx store.Tx) error { return tx.Jobs().Update(ctx, &changed) })
		read(t, s, func(tx store.Tx) error {
			got, err := tx.Jobs().Get(ctx, j.ID)
			if err != nil {
				return err
			}
			equal(t, "updated job", &want, got)
			return nil
		})

		back := want // times back to zero
		back.RunAfter, back.StartedAt, back.FinishedAt = time.Time{}, time.Time{}, time.Time{}
		update(t, s, func(tx store.Tx) error { return tx.Jobs().Update(ctx, &back) })
		read(t, s, func(tx store.Tx) error {
			got, err := tx.Jobs().Get(ctx, j.ID)
			if err != nil {
				return err
			}
			equal(t, "job with times cleared", &back, got)
			return nil
		})

		err := s.Update(ctx, func(tx store.Tx) error {
			return tx.Jobs().Update(ctx, &store.Job{ID: j.ID + 100, Status: store.JobFailed})
		})
		wantErr(t, "Update of a missing job", err, store.ErrNotFound)
	})

	t.Run("ListByPipeline", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ctx := context.Background()
		f, g := newFixture(t, s, "f"), newFixture(t, s, "g")
		// Interleave the two pipelines' jobs, with PendingAt against ID order.
		j1, k1, j2, j3 := f.job("1", at(3*time.Second)), g.job("k", at(2*time.Second)),
			f.job("2", at(time.Second)), f.job("3", at(0))
		createJobs(t, s, j1, k1, j2, j3)
		read(t, s, func(tx store.Tx) error {
			got, err := tx.Jobs().ListByPipeline(ctx, f.pipeline.ID)
			if err != nil {
				return err
			}
			equal(t, "ListByPipeline", []*store.Job{j1, j2, j3}, got)
			got, err = tx.Jobs().ListByPipeline(ctx, g.pipeline.ID+100)
			if err != nil || len(got) != 0 {
				t.Errorf("ListByPipeline of a missing pipeline: got %d jobs, %v; want none", len(got), err)
			}
			return nil
		})
	})

	t.Run("ListStates", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ctx := context.Background()
		f := newFixture(t, s, "f")
		j1, j2 := f.job("1", at(time.Second)), f.job("2", at(0))
		j2.Status, j2.Reason, j2.Attempts = store.JobRunning, "why", 2
		j1.Spec = store.JobSpec{Script: []string{"make"}, Variables: []store.Variable{{Name: "A", Value: "b"}}}
		j1.Tags, j2.Needs = []string{"linux"}, []string{}
		createJobs(t, s, j1, j2)
		read(t, s, func(tx store.Tx) error {
			got, err := tx.Jobs().ListStates(ctx, f.pipeline.ID)
			if err != nil {
				return err
			}
			// Everything but the spec, which is left zero.
			want := []*store.Job{}
			for _, j := range []*store.Job{j1, j2} {
				c := *j
				c.Spec = store.JobSpec{}
				want = append(want, &c)
			}
			equal(t, "ListStates", want, got)
			return nil
		})
	})

	t.Run("ListPendingTagged", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ctx := context.Background()
		f := newFixture(t, s, "f")
		later, plain, empty, running, sooner := f.job("later", at(2*time.Second)), f.job("plain", at(0)),
			f.job("empty", at(0)), f.job("running", at(0)), f.job("sooner", at(time.Second))
		later.Tags, empty.Tags, running.Tags, sooner.Tags = []string{"a"}, []string{}, []string{"a"}, []string{"b", "c"}
		running.Status = store.JobRunning
		sooner.Spec.Script = []string{"x"}
		createJobs(t, s, later, plain, empty, running, sooner)
		read(t, s, func(tx store.Tx) error {
			got, err := tx.Jobs().ListPendingTagged(ctx)
			if err != nil {
				return err
			}
			c := *sooner
			c.Spec = store.JobSpec{}
			equal(t, "ListPendingTagged", []*store.Job{&c, later}, got)
			all, err := tx.Jobs().ListPending(ctx)
			if err != nil {
				return err
			}
			p, e := *plain, *empty
			equal(t, "ListPending", []*store.Job{&p, &e, &c, later}, all)
			since, err := tx.Jobs().ListPendingSince(ctx, at(0))
			if err != nil {
				return err
			}
			equal(t, "ListPendingSince", []*store.Job{&c, later}, since)
			return nil
		})
	})

	t.Run("CountPipeline", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ctx := context.Background()
		f, g := newFixture(t, s, "f"), newFixture(t, s, "g")
		a, b, c, d, other := f.job("a", at(0)), f.job("b", at(0)), f.job("c", at(0)), f.job("d", at(0)), g.job("x", at(0))
		a.Status, b.Status, c.Status, d.Status = store.JobFailed, store.JobFailed, store.JobFailed, store.JobSuccess
		b.AllowFailure = true
		other.Status = store.JobFailed
		createJobs(t, s, a, b, c, d, other)
		read(t, s, func(tx store.Tx) error {
			got, err := tx.Jobs().CountPipeline(ctx, f.pipeline.ID)
			if err != nil {
				return err
			}
			want := store.JobCounts{ByStatus: map[store.JobStatus]int{store.JobFailed: 3, store.JobSuccess: 1}, FailedBlocking: 2}
			equal(t, "CountPipeline", want, got)
			return nil
		})
	})

	t.Run("ListByStatus", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ctx := context.Background()
		f := newFixture(t, s, "p")
		p1 := f.job("p1", at(3*time.Second))
		p2 := f.job("p2", at(1*time.Second))
		p3 := f.job("p3", at(2*time.Second))
		p4 := f.job("p4", at(1*time.Second)) // ties p2: ID decides
		r1 := f.job("r1", at(9*time.Second))
		r2 := f.job("r2", at(0))
		r3 := f.job("r3", at(5*time.Second))
		for _, j := range []*store.Job{r1, r2, r3} {
			j.Status = store.JobRunning
		}
		m := f.job("m", time.Time{})
		m.Status = store.JobManual
		createJobs(t, s, p1, p2, p3, r1, p4, r2, r3, m)
		for _, tc := range []struct {
			status store.JobStatus
			limit  int
			want   []*store.Job
		}{
			{store.JobPending, 10, []*store.Job{p2, p4, p3, p1}},
			{store.JobPending, 2, []*store.Job{p2, p4}},
			{store.JobRunning, 10, []*store.Job{r1, r2, r3}},
			{store.JobRunning, 1, []*store.Job{r1}},
			{store.JobManual, 10, []*store.Job{m}},
			{store.JobSuccess, 10, nil},
		} {
			t.Run(fmt.Sprintf("%s limit %d", tc.status, tc.limit), func(t *testing.T) {
				read(t, s, func(tx store.Tx) error {
					got, err := tx.Jobs().ListByStatus(ctx, tc.status, tc.limit)
					if err != nil {
						return err
					}
					equalIDs(t, "ListByStatus", ids(tc.want, jobID), ids(got, jobID))
					return nil
				})
			})
		}
	})

	t.Run("NextPending", testNextPending(open))

	t.Run("NextPendingAfterClaim", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ctx := context.Background()
		f := newFixture(t, s, "p")
		first, second := f.job("first", at(0)), f.job("second", at(time.Second))
		createJobs(t, s, first, second)
		for _, want := range []*store.Job{first, second, nil} {
			err := s.Update(ctx, func(tx store.Tx) error {
				j, err := tx.Jobs().NextPending(ctx, nil, at(time.Hour))
				if err != nil {
					return err
				}
				if want == nil {
					t.Errorf("NextPending: job %q, want none", j.Name)
					return nil
				}
				if j.ID != want.ID {
					t.Errorf("NextPending: job %q, want %q", j.Name, want.Name)
				}
				j.Status = store.JobRunning
				return tx.Jobs().Update(ctx, j)
			})
			if want == nil {
				wantErr(t, "NextPending with every job claimed", err, store.ErrNotFound)
			} else if err != nil {
				t.Fatalf("claim %q: %v", want.Name, err)
			}
		}
	})

	t.Run("CountByStatus", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ctx := context.Background()
		read(t, s, func(tx store.Tx) error {
			counts, err := tx.Jobs().CountByStatus(ctx)
			if err != nil {
				return err
			}
			for st, n := range counts {
				if n != 0 {
					t.Errorf("empty store: %d jobs %s", n, st)
				}
			}
			return nil
		})
		f := newFixture(t, s, "p")
		want := map[store.JobStatus]int{store.JobPending: 3, store.JobRunning: 1, store.JobSuccess: 2}
		for st, n := range want {
			for i := range n {
				j := f.job(fmt.Sprintf("%s %d", st, i), epoch)
				j.Status = st
				createJobs(t, s, j)
			}
		}
		read(t, s, func(tx store.Tx) error {
			got, err := tx.Jobs().CountByStatus(ctx)
			if err != nil {
				return err
			}
			for _, st := range []store.JobStatus{store.JobCreated, store.JobPending, store.JobRunning,
				store.JobSuccess, store.JobFailed, store.JobCanceled, store.JobSkipped, store.JobManual} {
				if got[st] != want[st] {
					t.Errorf("CountByStatus()[%s] = %d, want %d", st, got[st], want[st])
				}
			}
			return nil
		})
	})
}

// testNextPending checks which job NextPending picks among a set of jobs.
func testNextPending(open opener) func(t *testing.T) {
	type job struct {
		name      string
		status    store.JobStatus // pending when empty
		pendingAt time.Duration   // after epoch
		runAfter  time.Duration   // after epoch; 0: not delayed
		tags      []string
	}
	now := at(time.Hour)
	tests := []struct {
		name   string
		jobs   []job // created in this order, so IDs grow along it
		labels []string
		now    time.Time
		want   string // "" for ErrNotFound
	}{
		{name: "no jobs", want: ""},
		{
			name: "oldest PendingAt",
			jobs: []job{{name: "young", pendingAt: 2 * time.Second}, {name: "old", pendingAt: time.Second}},
			want: "old",
		},
		{
			name: "same PendingAt: lower ID",
			jobs: []job{{name: "a", pendingAt: time.Second}, {name: "b", pendingAt: time.Second}},
			want: "a",
		},
		{
			name: "only pending",
			jobs: []job{
				{name: "created", status: store.JobCreated}, {name: "running", status: store.JobRunning},
				{name: "manual", status: store.JobManual}, {name: "failed", status: store.JobFailed},
				{name: "pending", pendingAt: time.Minute},
			},
			want: "pending",
		},
		{
			name: "none pending",
			jobs: []job{{name: "running", status: store.JobRunning}, {name: "success", status: store.JobSuccess}},
			want: "",
		},
		{
			name: "RunAfter in the future is skipped",
			jobs: []job{{name: "delayed", runAfter: time.Hour + time.Microsecond}, {name: "ready", pendingAt: time.Second}},
			want: "ready",
		},
		{
			name: "RunAfter now is due",
			jobs: []job{{name: "delayed", runAfter: time.Hour}, {name: "ready", pendingAt: time.Second}},
			want: "delayed",
		},
		{
			name: "RunAfter past is due",
			jobs: []job{{name: "delayed", runAfter: time.Minute}},
			want: "delayed",
		},
		{
			name: "only delayed",
			jobs: []job{{name: "delayed", runAfter: 2 * time.Hour}},
			want: "",
		},
		{
			name:   "untagged job fits any agent",
			jobs:   []job{{name: "any"}},
			labels: []string{"docker"},
			want:   "any",
		},
		{
			name: "untagged job fits an agent without labels",
			jobs: []job{{name: "any"}},
			want: "any",
		},
		{
			name: "tagged job needs labels",
			jobs: []job{{name: "docker", tags: []string{"docker"}}},
			want: "",
		},
		{
			name:   "every tag among labels",
			jobs:   []job{{name: "gpu", tags: []string{"docker", "gpu"}}},
			labels: []string{"arm64", "gpu", "docker"},
			want:   "gpu",
		},
		{
			name:   "one tag missing",
			jobs:   []job{{name: "gpu", tags: []string{"docker", "gpu"}}, {name: "plain", pendingAt: time.Second}},
			labels: []string{"docker"},
			want:   "plain",
		},
		{
			name:   "tags compare exactly",
			jobs:   []job{{name: "gpu", tags: []string{"GPU"}}, {name: "gp", tags: []string{"gp"}}},
			labels: []string{"gpu"},
			want:   "",
		},
		{
			name: "skips unfit older jobs",
			jobs: []job{
				{name: "windows", tags: []string{"windows"}},
				{name: "late", runAfter: 3 * time.Hour},
				{name: "linux", tags: []string{"linux"}, pendingAt: time.Second},
			},
			labels: []string{"linux"},
			want:   "linux",
		},
	}
	return func(t *testing.T) {
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				s := open(t)
				ctx := context.Background()
				f := newFixture(t, s, "p")
				for _, j := range tc.jobs {
					sj := f.job(j.name, epoch.Add(j.pendingAt))
					if j.status != "" {
						sj.Status = j.status
					}
					if j.runAfter != 0 {
						sj.RunAfter = epoch.Add(j.runAfter)
					}
					sj.Tags = j.tags
					createJobs(t, s, sj)
				}
				update(t, s, func(tx store.Tx) error {
					got, err := tx.Jobs().NextPending(ctx, tc.labels, now)
					switch {
					case tc.want == "":
						wantErr(t, "NextPending", err, store.ErrNotFound)
					case err != nil:
						t.Errorf("NextPending: %v, want job %q", err, tc.want)
					case got.Name != tc.want:
						t.Errorf("NextPending: job %q, want %q", got.Name, tc.want)
					}
					return nil
				})
			})
		}
	}
}
