package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hangar-ci/hangar/internal/store"
	"github.com/hangar-ci/hangar/internal/store/postgres/pgtest"
)

// TestMigrateFleetEvents: a database at version 1 (the schema that
// shipped), with a finished job, takes migration 2: the job is listed by
// ListFinished, and fleet events can be stored.
func TestMigrateFleetEvents(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	u := pgtest.NewDatabase(t, 4)
	all, err := loadMigrations(migrationFiles, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := migrate(ctx, pool, all[:1]); err != nil {
		t.Fatalf("migrate to version 1: %v", err)
	}
	finished := time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)
	old := &Store{pool: pool}
	var job store.Job
	err = old.Update(ctx, func(tx store.Tx) error {
		p, err := tx.Projects().Ensure(ctx, "p", finished)
		if err != nil {
			return err
		}
		pl := &store.Pipeline{ProjectID: p.ID, Status: store.PipelineSuccess, Source: "api", Ref: "main"}
		if err := tx.Pipelines().Create(ctx, pl); err != nil {
			return err
		}
		job = store.Job{PipelineID: pl.ID, Name: "build", Stage: "test", Status: store.JobSuccess, When: "on_success",
			FinishedAt: finished}
		return tx.Jobs().Create(ctx, &job)
	})
	if err != nil {
		t.Fatal(err)
	}

	s, err := Open(ctx, u)
	if err != nil {
		t.Fatalf("open with every migration: %v", err)
	}
	defer s.Close()
	var version int
	if err := pool.QueryRow(ctx, `SELECT max(version) FROM hangar_schema`).Scan(&version); err != nil || version != len(all) {
		t.Errorf("schema version %d (%v), want %d", version, err, len(all))
	}
	ev := &store.FleetEvent{At: finished, Class: "small", Instance: "small-1", Kind: "created"}
	if err := s.Update(ctx, func(tx store.Tx) error { return tx.FleetEvents().Append(ctx, ev) }); err != nil {
		t.Fatalf("append a fleet event after migrating: %v", err)
	}
	err = s.Read(ctx, func(tx store.Tx) error {
		jts, err := tx.Jobs().ListFinished(ctx, finished)
		if err != nil {
			return err
		}
		if len(jts) != 1 || jts[0].JobID != job.ID || jts[0].AgentLabels != nil {
			t.Errorf("ListFinished after migrating: %v, want job %d, no agent", jts, job.ID)
		}
		es, err := tx.FleetEvents().List(ctx, time.Time{}, 0)
		if err != nil {
			return err
		}
		if len(es) != 1 || es[0].ID != ev.ID {
			t.Errorf("fleet events after migrating: %v, want %v", es, ev)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
