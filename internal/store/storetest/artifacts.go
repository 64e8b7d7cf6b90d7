package storetest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hangar-ci/hangar/internal/store"
)

// digestOf returns a well-formed digest made from s, so that tests can
// tell archives apart.
func digestOf(s string) string {
	return "sha256:" + strings.Repeat(fmt.Sprintf("%x", s[0]), 32)
}

// artifactsFixture is a pipeline with jobs that each have a running
// attempt, whose artifacts a test puts.
type artifactsFixture struct {
	fixture
	jobs     map[string]*store.Job
	attempts map[string]*store.Attempt
	agent    *store.Agent
}

// newArtifactsFixture creates a pipeline in project with the named jobs
// and attempt 1 of each.
func newArtifactsFixture(t *testing.T, s store.Store, project string, names ...string) artifactsFixture {
	t.Helper()
	f := artifactsFixture{fixture: newFixture(t, s, project), jobs: map[string]*store.Job{},
		attempts: map[string]*store.Attempt{}, agent: newAgent(t, s, "runner of "+project)}
	for _, name := range names {
		j := f.job(name, epoch)
		createJobs(t, s, j)
		f.jobs[name] = j
		f.attempts[name] = newAttempt(t, s, j, f.agent, 1)
	}
	return f
}

// artifact returns the record of an archive of job name, uploaded by its
// attempt 1.
func (f artifactsFixture) artifact(name, digest string, expireAt time.Time) *store.Artifact {
	return &store.Artifact{JobID: f.jobs[name].ID, AttemptID: f.attempts[name].ID, Name: "artifacts",
		Digest: digest, Size: int64(len(name)) * 1000, CreatedAt: epoch, ExpireAt: expireAt}
}

// putArtifacts puts each record in its own update and fails the test on
// error.
func putArtifacts(t *testing.T, s store.Store, as ...*store.Artifact) {
	t.Helper()
	for _, a := range as {
		update(t, s, func(tx store.Tx) error {
			_, err := tx.Artifacts().Put(context.Background(), a)
			return err
		})
	}
}

func artifactID(a *store.Artifact) int64 { return a.ID }

func testArtifacts(t *testing.T, open opener) {
	t.Run("RoundTrip", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ctx := context.Background()
		f := newArtifactsFixture(t, s, "p", "build: [linux]", "bare")
		full := &store.Artifact{JobID: f.jobs["build: [linux]"].ID, AttemptID: f.attempts["build: [linux]"].ID,
			Name: "bin-ünïcode 1.0", Digest: digestOf("a"), Size: 123456789, CreatedAt: at(time.Second).In(elsewhere),
			ExpireAt: at(30 * 24 * time.Hour)}
		never := f.artifact("bare", digestOf("b"), time.Time{})
		var replaced []*store.Artifact
		update(t, s, func(tx store.Tx) error {
			for _, a := range []*store.Artifact{full, never} {
				old, err := tx.Artifacts().Put(ctx, a)
				if err != nil {
					return err
				}
				replaced = append(replaced, old)
			}
			return nil
		})
		if full.ID == 0 || never.ID == full.ID {
			t.Fatalf("artifact IDs %d, %d: want non-zero and different", full.ID, never.ID)
		}
		if replaced[0] != nil || replaced[1] != nil {
			t.Errorf("Put of a job's first artifacts replaced %v, want nil", replaced)
		}
		for name, a := range map[string]*store.Artifact{"build: [linux]": full, "bare": never} {
			if a.PipelineID != f.pipeline.ID || a.JobName != name {
				t.Errorf("Put set pipeline %d, job name %q; want %d, %q", a.PipelineID, a.JobName, f.pipeline.ID, name)
			}
		}
		read(t, s, func(tx store.Tx) error {
			for _, want := range []*store.Artifact{full, never} {
				got, err := tx.Artifacts().Get(ctx, want.JobID)
				if err != nil {
					return err
				}
				equal(t, fmt.Sprintf("artifacts of job %q", want.JobName), want, got)
			}
			_, err := tx.Artifacts().Get(ctx, never.JobID+100)
			wantErr(t, "Get of a job without artifacts", err, store.ErrNotFound)
			return nil
		})
	})

	t.Run("PutReplaces", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ctx := context.Background()
		f := newArtifactsFixture(t, s, "p", "build")
		first := f.artifact("build", digestOf("1"), at(time.Hour))
		putArtifacts(t, s, first)
		retry := newAttempt(t, s, f.jobs["build"], f.agent, 2)
		second := &store.Artifact{JobID: f.jobs["build"].ID, AttemptID: retry.ID, Name: "second", Digest: digestOf("2"),
			Size: 7, CreatedAt: at(time.Minute)}
		var replaced *store.Artifact
		update(t, s, func(tx store.Tx) error {
			var err error
			replaced, err = tx.Artifacts().Put(ctx, second)
			return err
		})
		if replaced == nil {
			t.Fatalf("Put of a job's second artifacts replaced nothing, want the first")
		}
		equal(t, "replaced", first, replaced)
		read(t, s, func(tx store.Tx) error {
			got, err := tx.Artifacts().Get(ctx, f.jobs["build"].ID)
			if err != nil {
				return err
			}
			equal(t, "current artifacts", second, got)
			for digest, want := range map[string]bool{first.Digest: false, second.Digest: true} {
				ref, err := tx.Artifacts().Referenced(ctx, digest)
				if err != nil {
					return err
				}
				if ref != want {
					t.Errorf("Referenced(%s) = %v, want %v", digest, ref, want)
				}
			}
			return nil
		})
	})

	t.Run("PutRefused", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ctx := context.Background()
		f := newArtifactsFixture(t, s, "p", "build", "test")
		kept := f.artifact("build", digestOf("k"), time.Time{})
		putArtifacts(t, s, kept)
		for _, tc := range []struct {
			name string
			a    *store.Artifact
		}{
			{"unknown job", &store.Artifact{JobID: f.jobs["test"].ID + 100, AttemptID: f.attempts["test"].ID, Digest: digestOf("x")}},
			{"unknown attempt", &store.Artifact{JobID: f.jobs["build"].ID, AttemptID: f.attempts["test"].ID + 100, Digest: digestOf("x")}},
			{"attempt of another job", &store.Artifact{JobID: f.jobs["build"].ID, AttemptID: f.attempts["test"].ID, Digest: digestOf("x")}},
		} {
			err := s.Update(ctx, func(tx store.Tx) error {
				_, err := tx.Artifacts().Put(ctx, tc.a)
				return err
			})
			wantErr(t, "Put with an "+tc.name, err, store.ErrNotFound)
		}
		read(t, s, func(tx store.Tx) error {
			got, err := tx.Artifacts().Get(ctx, f.jobs["build"].ID)
			if err != nil {
				return fmt.Errorf("the artifacts a refused Put would have replaced: %w", err)
			}
			equal(t, "artifacts after refused Puts", kept, got)
			_, err = tx.Artifacts().Get(ctx, f.jobs["test"].ID)
			wantErr(t, "artifacts of a refused Put", err, store.ErrNotFound)
			return nil
		})
	})

	t.Run("ListByJobNames", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ctx := context.Background()
		f := newArtifactsFixture(t, s, "p", "build", "test 1/2", "test 2/2", "lint")
		other := newArtifactsFixture(t, s, "other", "build")
		expired := f.artifact("test 2/2", digestOf("e"), at(-time.Hour))
		putArtifacts(t, s, f.artifact("build", digestOf("b"), time.Time{}), f.artifact("test 1/2", digestOf("t"), at(time.Hour)),
			expired, other.artifact("build", digestOf("o"), time.Time{}))
		for _, tc := range []struct {
			names []string
			want  []string // job names, sorted
		}{
			{[]string{"build"}, []string{"build"}},
			{[]string{"test 2/2", "build", "lint", "missing"}, []string{"build", "test 2/2"}},
			{[]string{"test 1/2", "test 2/2", "test 1/2"}, []string{"test 1/2", "test 2/2"}},
			{[]string{"lint"}, nil},
			{[]string{"Build", "test"}, nil},
			{nil, nil},
		} {
			read(t, s, func(tx store.Tx) error {
				got, err := tx.Artifacts().ListByJobNames(ctx, f.pipeline.ID, tc.names)
				if err != nil {
					return err
				}
				var names []string
				for _, a := range got {
					if a.PipelineID != f.pipeline.ID {
						t.Errorf("ListByJobNames(%q) returned artifacts of pipeline %d", tc.names, a.PipelineID)
					}
					if a.JobID != f.jobs[a.JobName].ID {
						t.Errorf("ListByJobNames(%q): job %q has ID %d, want %d", tc.names, a.JobName, a.JobID, f.jobs[a.JobName].ID)
					}
					if a.JobName == "test 2/2" {
						equal(t, "expired artifacts", expired, a)
					}
					names = append(names, a.JobName)
				}
				slices.Sort(names)
				if !slices.Equal(names, tc.want) {
					t.Errorf("ListByJobNames(%q) = jobs %q, want %q", tc.names, names, tc.want)
				}
				return nil
			})
		}
	})

	t.Run("ListExpired", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ctx := context.Background()
		now := at(time.Hour)
		f := newArtifactsFixture(t, s, "p", "a", "b", "c", "d", "e", "f")
		as := map[string]*store.Artifact{
			"a": f.artifact("a", digestOf("a"), now.Add(-time.Minute)),
			"b": f.artifact("b", digestOf("b"), now.Add(-time.Hour).In(elsewhere)),
			"c": f.artifact("c", digestOf("c"), time.Time{}), // never
			"d": f.artifact("d", digestOf("d"), now.Add(time.Microsecond)),
			"e": f.artifact("e", digestOf("e"), now), // expires at now: expired
			"f": f.artifact("f", digestOf("f"), now.Add(24*time.Hour)),
		}
		for _, name := range []string{"a", "b", "c", "d", "e", "f"} {
			putArtifacts(t, s, as[name])
		}
		for _, tc := range []struct {
			limit int
			want  []string
		}{
			{0, []string{"b", "a", "e"}},
			{-1, []string{"b", "a", "e"}},
			{10, []string{"b", "a", "e"}},
			{2, []string{"b", "a"}},
			{1, []string{"b"}},
		} {
			read(t, s, func(tx store.Tx) error {
				got, err := tx.Artifacts().ListExpired(ctx, now, tc.limit)
				if err != nil {
					return err
				}
				var want []int64
				for _, name := range tc.want {
					want = append(want, as[name].ID)
				}
				equalIDs(t, fmt.Sprintf("ListExpired(limit %d)", tc.limit), want, ids(got, artifactID))
				return nil
			})
		}
		// Artifact.Expired agrees with the store.
		for name, a := range as {
			if want := slices.Contains([]string{"a", "b", "e"}, name); a.Expired(now) != want {
				t.Errorf("artifacts %q expiring at %v: Expired(%v) = %v, want %v", name, a.ExpireAt, now, a.Expired(now), want)
			}
		}
		read(t, s, func(tx store.Tx) error {
			got, err := tx.Artifacts().ListExpired(ctx, at(-48*time.Hour), 0)
			if err != nil || len(got) != 0 {
				t.Errorf("ListExpired before anything expires: %d artifacts, %v; want none", len(got), err)
			}
			return nil
		})
	})

	t.Run("DeleteAndReferenced", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ctx := context.Background()
		f := newArtifactsFixture(t, s, "p", "one", "two", "three")
		shared, alone := digestOf("s"), digestOf("a")
		one, two, three := f.artifact("one", shared, time.Time{}), f.artifact("two", shared, time.Time{}), f.artifact("three", alone, time.Time{})
		putArtifacts(t, s, one, two, three)
		referenced := func(want map[string]bool) {
			t.Helper()
			read(t, s, func(tx store.Tx) error {
				for digest, w := range want {
					got, err := tx.Artifacts().Referenced(ctx, digest)
					if err != nil {
						return err
					}
					if got != w {
						t.Errorf("Referenced(%s) = %v, want %v", digest, got, w)
					}
				}
				return nil
			})
		}
		referenced(map[string]bool{shared: true, alone: true, digestOf("n"): false})
		for _, step := range []struct {
			a    *store.Artifact
			want map[string]bool
		}{
			{one, map[string]bool{shared: true, alone: true}},
			{three, map[string]bool{shared: true, alone: false}},
			{two, map[string]bool{shared: false, alone: false}},
		} {
			update(t, s, func(tx store.Tx) error { return tx.Artifacts().Delete(ctx, step.a.ID) })
			referenced(step.want)
			read(t, s, func(tx store.Tx) error {
				_, err := tx.Artifacts().Get(ctx, step.a.JobID)
				wantErr(t, "Get of deleted artifacts", err, store.ErrNotFound)
				return nil
			})
		}
		err := s.Update(ctx, func(tx store.Tx) error { return tx.Artifacts().Delete(ctx, one.ID) })
		wantErr(t, "Delete of deleted artifacts", err, store.ErrNotFound)
	})
}
