package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/hangar-ci/hangar/internal/store"
)

func TestLoadMigrations(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files []string
		err   string // "" for success
	}{
		{"in order", []string{"0001_a.sql", "0002_b.sql", "0003_c.sql"}, ""},
		{"other files ignored", []string{"0001_a.sql", "README.md"}, ""},
		{"gap", []string{"0001_a.sql", "0003_c.sql"}, "number 3, want 2"},
		{"duplicate", []string{"0001_a.sql", "0001_b.sql"}, "number 1, want 2"},
		{"no number", []string{"init.sql"}, "NNNN_what.sql"},
		{"zero", []string{"0000_a.sql"}, "NNNN_what.sql"},
		{"none", nil, "no migrations"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fsys := fstest.MapFS{"m/.keep": {}}
			for _, f := range tc.files {
				fsys["m/"+f] = &fstest.MapFile{Data: []byte("SELECT 1;")}
			}
			ms, err := loadMigrations(fsys, "m")
			switch {
			case tc.err == "" && err != nil:
				t.Errorf("loadMigrations: %v", err)
			case tc.err == "" && len(ms) != len(tc.files)-strings.Count(strings.Join(tc.files, " "), ".md"):
				t.Errorf("loadMigrations: %d migrations", len(ms))
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Errorf("loadMigrations: %v, want an error saying %q", err, tc.err)
			}
		})
	}
	if _, err := loadMigrations(migrationFiles, "migrations"); err != nil {
		t.Errorf("embedded migrations: %v", err)
	}
}

// TestMigrate checks that migrations apply in order, once, and that a
// failing one leaves the schema where it was.
func TestMigrate(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "m.db")
	m1 := migration{1, "0001_a.sql", "CREATE TABLE a (x INTEGER); INSERT INTO a VALUES (1);"}
	m2 := migration{2, "0002_b.sql", "CREATE TABLE b (y INTEGER); INSERT INTO a VALUES (2);"}
	bad := migration{3, "0003_bad.sql", "CREATE TABLE c (z INTEGER); INSERT INTO nowhere VALUES (3);"}

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
	all, err := loadMigrations(migrationFiles, "migrations")
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
	all, err := loadMigrations(migrationFiles, "migrations")
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
