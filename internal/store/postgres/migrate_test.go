package postgres

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/hangar-ci/hangar/internal/store/internal/migrations"

	"github.com/hangar-ci/hangar/internal/store/internal/codec"

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
	all, err := migrations.Load(migrationFiles, "migrations")
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

// TestMigrateAttemptSteps: a database at version 2 (the schema that
// shipped), with a finished job whose attempt was stored without steps,
// takes migration 3: the attempt reads back with nil Steps, by every
// query, and can be given some.
func TestMigrateAttemptSteps(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	u := pgtest.NewDatabase(t, 4)
	all, err := migrations.Load(migrationFiles, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := migrate(ctx, pool, all[:2]); err != nil {
		t.Fatalf("migrate to version 2: %v", err)
	}
	finished := time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)
	old := &Store{pool: pool}
	var (
		job   store.Job
		agent = store.Agent{Name: "a", TokenHash: []byte("a"), Labels: []string{"linux"}, Status: store.AgentActive}
	)
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
			Attempts: 1, FinishedAt: finished}
		if err := tx.Jobs().Create(ctx, &job); err != nil {
			return err
		}
		return tx.Agents().Create(ctx, &agent)
	})
	if err != nil {
		t.Fatal(err)
	}
	// Attempts as version 2 stored them (CreateAttempt writes steps now).
	// The second one, running, is what ExpiredAttempts and
	// RunningAttempts read.
	for _, a := range []struct {
		number int
		status store.AttemptStatus
	}{{1, store.AttemptSuccess}, {2, store.AttemptRunning}} {
		if _, err := pool.Exec(ctx, `INSERT INTO attempts (job_id, number, agent_id, token_hash, status,
				lease_expires_at, cancel_requested, exit_code, failure_reason, created_at, started_at, finished_at)
			VALUES ($1, $2, $3, '\x01', $4, 1, false, 0, '', 1, 1, $5)`,
			job.ID, a.number, agent.ID, a.status, codec.Micros(finished)); err != nil {
			t.Fatalf("store attempt %d at version 2: %v", a.number, err)
		}
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
	var first *store.Attempt
	err = s.Read(ctx, func(tx store.Tx) error {
		as, err := tx.Jobs().ListAttempts(ctx, job.ID)
		if err != nil {
			return err
		}
		if len(as) != 2 {
			t.Fatalf("ListAttempts after migrating: %d attempts, want 2", len(as))
		}
		first = as[0]
		got := map[string][]*store.Attempt{"ListAttempts": as}
		a, err := tx.Jobs().GetAttempt(ctx, as[0].ID)
		if err != nil {
			return err
		}
		got["GetAttempt"] = []*store.Attempt{a}
		if got["ListAttemptsOfPipeline"], err = tx.Jobs().ListAttemptsOfPipeline(ctx, job.PipelineID); err != nil {
			return err
		}
		if got["ExpiredAttempts"], err = tx.Jobs().ExpiredAttempts(ctx, finished); err != nil {
			return err
		}
		if got["RunningAttempts"], err = tx.Jobs().RunningAttempts(ctx, agent.ID); err != nil {
			return err
		}
		for what, as := range got {
			if len(as) == 0 {
				t.Errorf("%s after migrating: no attempts", what)
			}
			for _, a := range as {
				if a.Steps != nil {
					t.Errorf("%s after migrating: attempt %d has steps %v, want nil", what, a.Number, a.Steps)
				}
			}
		}
		jts, err := tx.Jobs().ListFinished(ctx, finished)
		if err != nil {
			return err
		}
		if len(jts) != 1 || jts[0].JobID != job.ID || jts[0].Steps != nil || len(jts[0].AgentLabels) != 1 {
			t.Errorf("ListFinished after migrating: %+v, want job %d, agent a's labels, no steps", jts, job.ID)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	steps := []store.StepTiming{{Name: "script", Seconds: 2.5}}
	first.Steps = steps
	if err := s.Update(ctx, func(tx store.Tx) error { return tx.Jobs().UpdateAttempt(ctx, first) }); err != nil {
		t.Fatalf("give a migrated attempt steps: %v", err)
	}
	err = s.Read(ctx, func(tx store.Tx) error {
		jts, err := tx.Jobs().ListFinished(ctx, finished)
		if err != nil {
			return err
		}
		if len(jts) != 1 || !slices.Equal(jts[0].Steps, steps) {
			t.Errorf("ListFinished after giving the attempt steps: %+v, want steps %v", jts, steps)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
