package storetest

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hangar-ci/hangar/internal/store"
)

func testProjects(t *testing.T, open opener) {
	t.Run("EnsureCreatesOnce", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ctx := context.Background()
		var first, again, other *store.Project
		update(t, s, func(tx store.Tx) error {
			var err error
			if first, err = tx.Projects().Ensure(ctx, "acme/web", epoch.In(elsewhere)); err != nil {
				return err
			}
			if other, err = tx.Projects().Ensure(ctx, "acme/api", at(time.Second)); err != nil {
				return err
			}
			return nil
		})
		update(t, s, func(tx store.Tx) error {
			var err error
			again, err = tx.Projects().Ensure(ctx, "acme/web", at(time.Hour))
			return err
		})
		if first.ID == 0 || other.ID == 0 || first.ID == other.ID {
			t.Fatalf("project IDs %d and %d: want distinct and non-zero", first.ID, other.ID)
		}
		equal(t, "first Ensure", &store.Project{ID: first.ID, Name: "acme/web", CreatedAt: epoch}, first)
		equal(t, "second Ensure", first, again)

		read(t, s, func(tx store.Tx) error {
			got, err := tx.Projects().Get(ctx, first.ID)
			if err != nil {
				return err
			}
			equal(t, "Get", first, got)
			if got, err = tx.Projects().GetByName(ctx, "acme/api"); err != nil {
				return err
			}
			equal(t, "GetByName", other, got)
			all, err := tx.Projects().List(ctx)
			if err != nil {
				return err
			}
			slices.SortFunc(all, func(a, b *store.Project) int { return cmp.Compare(a.ID, b.ID) })
			want := []*store.Project{first, other}
			slices.SortFunc(want, func(a, b *store.Project) int { return cmp.Compare(a.ID, b.ID) })
			equal(t, "List", want, all)
			return nil
		})
	})

	t.Run("Missing", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ctx := context.Background()
		read(t, s, func(tx store.Tx) error {
			_, err := tx.Projects().Get(ctx, 4242)
			wantErr(t, "Get", err, store.ErrNotFound)
			_, err = tx.Projects().GetByName(ctx, "nope")
			wantErr(t, "GetByName", err, store.ErrNotFound)
			ps, err := tx.Projects().List(ctx)
			if err != nil || len(ps) != 0 {
				t.Errorf("List of an empty store: got %v, %v; want none", ps, err)
			}
			return nil
		})
	})

	t.Run("EnsureConcurrently", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		const n = 8
		var (
			wg   sync.WaitGroup
			got  [n]int64
			errs [n]error
		)
		for i := range n {
			wg.Go(func() {
				errs[i] = s.Update(context.Background(), func(tx store.Tx) error {
					p, err := tx.Projects().Ensure(context.Background(), "shared", epoch)
					if err == nil {
						got[i] = p.ID
					}
					return err
				})
			})
		}
		wg.Wait()
		for i := range n {
			if errs[i] != nil {
				t.Errorf("Ensure %d: %v", i, errs[i])
			} else if got[i] != got[0] {
				t.Errorf("Ensure %d: project %d, want %d", i, got[i], got[0])
			}
		}
	})
}

func testPipelines(t *testing.T, open opener) {
	t.Run("RoundTrip", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ctx := context.Background()
		var proj *store.Project
		update(t, s, func(tx store.Tx) (err error) {
			proj, err = tx.Projects().Ensure(ctx, "p", epoch)
			return err
		})
		full := &store.Pipeline{
			ProjectID: proj.ID, Status: store.PipelineRunning, Source: "push", Ref: "refs/heads/main",
			SHA: "0123456789abcdef", Archive: "sha256:feed", File: ".hangar.yml", Name: "nightly",
			Variables: []store.Variable{
				{Name: "DEPLOY", Value: "yes"},
				{Name: "TOKEN", Value: "s3cr3t\n\"quoted\"", Masked: true},
			},
			CreatedAt: epoch.In(elsewhere), StartedAt: at(time.Second), FinishedAt: at(time.Minute),
		}
		bare := &store.Pipeline{ProjectID: proj.ID, Status: store.PipelineCreated}
		update(t, s, func(tx store.Tx) error {
			if err := tx.Pipelines().Create(ctx, full); err != nil {
				return err
			}
			return tx.Pipelines().Create(ctx, bare)
		})
		if full.ID == 0 || bare.ID <= full.ID {
			t.Fatalf("pipeline IDs %d then %d: want non-zero and increasing", full.ID, bare.ID)
		}
		read(t, s, func(tx store.Tx) error {
			for _, want := range []*store.Pipeline{full, bare} {
				got, err := tx.Pipelines().Get(ctx, want.ID)
				if err != nil {
					return err
				}
				equal(t, fmt.Sprintf("pipeline %d", want.ID), want, got)
			}
			_, err := tx.Pipelines().Get(ctx, bare.ID+100)
			wantErr(t, "Get of a missing pipeline", err, store.ErrNotFound)
			return nil
		})
	})

	t.Run("Update", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ctx := context.Background()
		f := newFixture(t, s, "p")
		want := *f.pipeline
		want.Status, want.StartedAt, want.FinishedAt = store.PipelineFailed, at(time.Second), at(time.Hour)
		changed := want
		changed.Ref, changed.Name, changed.SHA = "other", "renamed", "beef" // not mutable
		update(t, s, func(tx store.Tx) error { return tx.Pipelines().Update(ctx, &changed) })
		read(t, s, func(tx store.Tx) error {
			got, err := tx.Pipelines().Get(ctx, want.ID)
			if err != nil {
				return err
			}
			equal(t, "updated pipeline", &want, got)
			return nil
		})
		err := s.Update(ctx, func(tx store.Tx) error {
			return tx.Pipelines().Update(ctx, &store.Pipeline{ID: want.ID + 100, Status: store.PipelineFailed})
		})
		wantErr(t, "Update of a missing pipeline", err, store.ErrNotFound)
	})

	t.Run("List", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ctx := context.Background()
		var a, b *store.Project
		update(t, s, func(tx store.Tx) (err error) {
			if a, err = tx.Projects().Ensure(ctx, "a", epoch); err != nil {
				return err
			}
			b, err = tx.Projects().Ensure(ctx, "b", epoch)
			return err
		})
		// p[i] is created i-th; IDs grow with it.
		specs := []struct {
			project *store.Project
			status  store.PipelineStatus
			ref     string
			source  string
		}{
			{a, store.PipelineSuccess, "main", "push"},
			{a, store.PipelineFailed, "main", "schedule"},
			{b, store.PipelineSuccess, "main", "push"},
			{a, store.PipelineSuccess, "dev", "merge_request_event"},
			{b, store.PipelineRunning, "dev", "push"},
			{a, store.PipelineRunning, "main", "schedule"},
		}
		p := make([]*store.Pipeline, len(specs))
		update(t, s, func(tx store.Tx) error {
			for i, sp := range specs {
				p[i] = &store.Pipeline{ProjectID: sp.project.ID, Status: sp.status, Ref: sp.ref, Source: sp.source, CreatedAt: at(time.Duration(i) * time.Second)}
				if err := tx.Pipelines().Create(ctx, p[i]); err != nil {
					return err
				}
			}
			return nil
		})
		id := func(is ...int) []int64 {
			out := []int64{}
			for _, i := range is {
				out = append(out, p[i].ID)
			}
			return out
		}
		for _, tc := range []struct {
			name   string
			filter store.PipelineFilter
			want   []int64
		}{
			{"all", store.PipelineFilter{}, id(5, 4, 3, 2, 1, 0)},
			{"project", store.PipelineFilter{ProjectID: b.ID}, id(4, 2)},
			{"status", store.PipelineFilter{Status: store.PipelineSuccess}, id(3, 2, 0)},
			{"ref", store.PipelineFilter{Ref: "dev"}, id(4, 3)},
			{"source", store.PipelineFilter{Source: "schedule"}, id(5, 1)},
			{"source and status", store.PipelineFilter{Source: "push", Status: store.PipelineSuccess}, id(2, 0)},
			{"project status ref", store.PipelineFilter{ProjectID: a.ID, Status: store.PipelineSuccess, Ref: "main"}, id(0)},
			{"before", store.PipelineFilter{BeforeID: p[3].ID}, id(2, 1, 0)},
			{"before and project", store.PipelineFilter{ProjectID: a.ID, BeforeID: p[5].ID}, id(3, 1, 0)},
			{"limit", store.PipelineFilter{Limit: 2}, id(5, 4)},
			{"limit and before", store.PipelineFilter{Limit: 2, BeforeID: p[4].ID}, id(3, 2)},
			{"nothing matches", store.PipelineFilter{Ref: "gone"}, id()},
			{"missing project", store.PipelineFilter{ProjectID: b.ID + 100}, id()},
		} {
			t.Run(tc.name, func(t *testing.T) {
				read(t, s, func(tx store.Tx) error {
					got, err := tx.Pipelines().List(ctx, tc.filter)
					if err != nil {
						return err
					}
					equalIDs(t, fmt.Sprintf("List(%+v)", tc.filter), tc.want, ids(got, pipelineID))
					return nil
				})
			})
		}
		read(t, s, func(tx store.Tx) error {
			got, err := tx.Pipelines().List(ctx, store.PipelineFilter{ProjectID: a.ID, Ref: "dev"})
			if err != nil {
				return err
			}
			equal(t, "listed pipeline", []*store.Pipeline{p[3]}, got)
			return nil
		})
	})

	t.Run("ListPages", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ctx := context.Background()
		f := newFixture(t, s, "p") // pipeline 1 of 105
		all := []int64{f.pipeline.ID}
		update(t, s, func(tx store.Tx) error {
			for range 104 {
				p := &store.Pipeline{ProjectID: f.project.ID, Status: store.PipelineSuccess, CreatedAt: epoch}
				if err := tx.Pipelines().Create(ctx, p); err != nil {
					return err
				}
				all = append(all, p.ID)
			}
			return nil
		})
		slices.Reverse(all)
		read(t, s, func(tx store.Tx) error {
			got, err := tx.Pipelines().List(ctx, store.PipelineFilter{})
			if err != nil {
				return err
			}
			equalIDs(t, "List with Limit 0 (100)", all[:100], ids(got, pipelineID))

			var paged []int64
			f := store.PipelineFilter{Limit: 7}
			for range 100 {
				page, err := tx.Pipelines().List(ctx, f)
				if err != nil {
					return err
				}
				if len(page) == 0 {
					break
				}
				if len(page) > f.Limit {
					t.Fatalf("page of %d pipelines, limit %d", len(page), f.Limit)
				}
				paged = append(paged, ids(page, pipelineID)...)
				f.BeforeID = page[len(page)-1].ID
			}
			equalIDs(t, "paging with BeforeID", all, paged)
			return nil
		})
	})
}
