package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hangar-ci/hangar/internal/store/internal/migrations"

	"github.com/hangar-ci/hangar/internal/store/internal/codec"

	"github.com/hangar-ci/hangar/internal/store"
)

func TestEmbeddedMigrations(t *testing.T) {
	if _, err := migrations.Load(migrationFiles, "migrations"); err != nil {
		t.Errorf("embedded migrations: %v", err)
	}
}

// TestMigrate checks that migrations apply in order, once, and that a
// failing one leaves the schema where it was.
func TestMigrate(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "m.db")
	m1 := migration{Version: 1, Name: "0001_a.sql", SQL: "CREATE TABLE a (x INTEGER); INSERT INTO a VALUES (1);"}
	m2 := migration{Version: 2, Name: "0002_b.sql", SQL: "CREATE TABLE b (y INTEGER); INSERT INTO a VALUES (2);"}
	bad := migration{Version: 3, Name: "0003_bad.sql", SQL: "CREATE TABLE c (z INTEGER); INSERT INTO nowhere VALUES (3);"}

	s, err := open(ctx, path, []migration{m1}, options{})
	if err != nil {
		t.Fatalf("open at version 1: %v", err)
	}
	s.Close()
	for range 2 { // the second time applies nothing
		s, err := open(ctx, path, []migration{m1, m2}, options{})
		if err != nil {
			t.Fatalf("open at version 2: %v", err)
		}
		s.Close()
	}
	if _, err := open(ctx, path, []migration{m1, m2, bad}, options{}); err == nil || !strings.Contains(err.Error(), "0003_bad.sql") {
		t.Errorf("open with a bad migration: %v, want an error naming it", err)
	}

	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var version, rows, c int
	if err := db.QueryRow("PRAGMA user_version").Scan(&version); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow("SELECT count(*) FROM a").Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow("SELECT count(*) FROM sqlite_schema WHERE name = 'c'").Scan(&c); err != nil {
		t.Fatal(err)
	}
	if version != 2 || rows != 2 || c != 0 {
		t.Errorf("after migrating: version %d, %d rows in a, table c %d times; want 2, 2, 0", version, rows, c)
	}
	if _, err := open(ctx, path, []migration{m1}, options{}); err == nil {
		t.Errorf("open of a version 2 database with 1 migration succeeded, want an error")
	}
}

// TestMigrateImageSpec: jobs stored when a spec's image was a bare name
// read back, after migration 4, with that name in the image object.
func TestMigrateImageSpec(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "m.db")
	all, err := migrations.Load(migrationFiles, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	s, err := open(ctx, path, all[:3], options{})
	if err != nil {
		t.Fatalf("open at version 3: %v", err)
	}
	var ids []int64
	err = s.Update(ctx, func(tx store.Tx) error {
		p, err := tx.Projects().Ensure(ctx, "p", time.Unix(0, 0))
		if err != nil {
			return err
		}
		pl := &store.Pipeline{ProjectID: p.ID, Status: store.PipelineRunning, Source: "api", Ref: "main"}
		if err := tx.Pipelines().Create(ctx, pl); err != nil {
			return err
		}
		for _, name := range []string{"old", "none"} {
			j := &store.Job{PipelineID: pl.ID, Name: name, Stage: "test", Status: store.JobPending, When: "on_success",
				Spec: store.JobSpec{Script: []string{"make"}}}
			if err := tx.Jobs().Create(ctx, j); err != nil {
				return err
			}
			ids = append(ids, j.ID)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.write.ExecContext(ctx, `UPDATE jobs SET spec = json_set(spec, '$.image', 'golang:1.26') WHERE id = ?`, ids[0]); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s, err = open(ctx, path, all, options{})
	if err != nil {
		t.Fatalf("open with every migration: %v", err)
	}
	defer s.Close()
	err = s.Read(ctx, func(tx store.Tx) error {
		old, err := tx.Jobs().Get(ctx, ids[0])
		if err != nil {
			return err
		}
		if old.Spec.Image == nil || old.Spec.Image.Name != "golang:1.26" || !slices.Equal(old.Spec.Script, []string{"make"}) {
			t.Errorf("old job's spec after migrating: %+v, want image golang:1.26 and its script", old.Spec)
		}
		none, err := tx.Jobs().Get(ctx, ids[1])
		if err != nil {
			return err
		}
		if none.Spec.Image != nil {
			t.Errorf("a job without image has %+v after migrating", none.Spec.Image)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestMigrateFleetEvents: a database at version 5, with a finished job,
// takes migration 6: the job is listed by ListFinished, and fleet events
// can be stored.
func TestMigrateFleetEvents(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "m.db")
	all, err := migrations.Load(migrationFiles, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	s, err := open(ctx, path, all[:5], options{})
	if err != nil {
		t.Fatalf("open at version 5: %v", err)
	}
	finished := time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)
	var job store.Job
	err = s.Update(ctx, func(tx store.Tx) error {
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
	s.Close()
	if err != nil {
		t.Fatal(err)
	}

	s, err = open(ctx, path, all, options{})
	if err != nil {
		t.Fatalf("open with every migration: %v", err)
	}
	defer s.Close()
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

// TestMigrateAttemptSteps: a database at version 6, with a finished job
// whose attempt was stored without steps, takes migration 7: the attempt
// reads back with nil Steps, by every query, and can be given some.
func TestMigrateAttemptSteps(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "m.db")
	all, err := migrations.Load(migrationFiles, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	s, err := open(ctx, path, all[:6], options{})
	if err != nil {
		t.Fatalf("open at version 6: %v", err)
	}
	finished := time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)
	var (
		job   store.Job
		agent = store.Agent{Name: "a", TokenHash: []byte("a"), Labels: []string{"linux"}, Status: store.AgentActive}
	)
	err = s.Update(ctx, func(tx store.Tx) error {
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
	// Attempts as version 6 stored them (CreateAttempt writes steps now).
	// The second one, running, is what ExpiredAttempts and
	// RunningAttempts read.
	for _, a := range []struct {
		number int
		status store.AttemptStatus
	}{{1, store.AttemptSuccess}, {2, store.AttemptRunning}} {
		if _, err := s.write.ExecContext(ctx, `INSERT INTO attempts (job_id, number, agent_id, token_hash, status,
				lease_expires_at, cancel_requested, exit_code, failure_reason, created_at, started_at, finished_at)
			VALUES (?, ?, ?, x'01', ?, 1, 0, 0, '', 1, 1, ?)`, job.ID, a.number, agent.ID, a.status, codec.Micros(finished)); err != nil {
			t.Fatalf("store attempt %d at version 6: %v", a.number, err)
		}
	}
	s.Close()

	s, err = open(ctx, path, all, options{})
	if err != nil {
		t.Fatalf("open with every migration: %v", err)
	}
	defer s.Close()
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
