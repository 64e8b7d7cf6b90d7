package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hangar-ci/hangar/internal/store"
	"github.com/hangar-ci/hangar/internal/store/sqlite"
	"github.com/hangar-ci/hangar/internal/store/storetest"
)

// openTemp opens a store on a new file in t's temporary directory.
func openTemp(t testing.TB) (*sqlite.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "hangar.db")
	s, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return s, path
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, _ := openTemp(t)
		return s
	})
}

// TestConformanceEphemeral runs the suite on a store opened Ephemeral:
// it gives up durability against machine crashes, nothing else.
func TestConformanceEphemeral(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "hangar.db"), sqlite.Ephemeral())
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

var epoch = time.Date(2025, 3, 14, 15, 9, 26, 535897000, time.UTC)

func TestReopenKeepsData(t *testing.T) {
	ctx := context.Background()
	s, path := openTemp(t)
	var job store.Job
	err := s.Update(ctx, func(tx store.Tx) error {
		p, err := tx.Projects().Ensure(ctx, "kept", epoch)
		if err != nil {
			return err
		}
		pl := &store.Pipeline{ProjectID: p.ID, Status: store.PipelineRunning}
		if err := tx.Pipelines().Create(ctx, pl); err != nil {
			return err
		}
		job = store.Job{PipelineID: pl.ID, Name: "build", Status: store.JobPending, Tags: []string{"docker"},
			PendingAt: epoch}
		return tx.Jobs().Create(ctx, &job)
	})
	if err != nil {
		t.Fatalf("update: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}

	for range 2 { // the second open finds nothing to migrate
		s, err := sqlite.Open(ctx, path)
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		err = s.Read(ctx, func(tx store.Tx) error {
			got, err := tx.Jobs().Get(ctx, job.ID)
			if err != nil {
				return err
			}
			if got.Name != job.Name || !got.PendingAt.Equal(epoch) || len(got.Tags) != 1 {
				t.Errorf("job after reopening: %+v, want %+v", got, job)
			}
			_, err = tx.Projects().GetByName(ctx, "kept")
			return err
		})
		if err != nil {
			t.Errorf("read after reopening: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}
	}

	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var version int
	var mode string
	if err := db.QueryRow("PRAGMA user_version").Scan(&version); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil {
		t.Fatal(err)
	}
	ms, err := filepath.Glob("migrations/*.sql")
	if err != nil || len(ms) == 0 {
		t.Fatalf("migrations: %v %v", ms, err)
	}
	if version != len(ms) || mode != "wal" {
		t.Errorf("schema version %d, journal mode %q; want %d (the last migration), wal", version, mode, len(ms))
	}
}

func TestOpenRefuses(t *testing.T) {
	ctx := context.Background()
	for _, path := range []string{"", ":memory:", "file:x.db?mode=memory", "x.db?_txlock=deferred"} {
		if s, err := sqlite.Open(ctx, path); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded, want an error", path)
		}
	}
	// A database from a newer program.
	path := filepath.Join(t.TempDir(), "future.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("PRAGMA user_version = 99"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if s, err := sqlite.Open(ctx, path); err == nil {
		s.Close()
		t.Errorf("Open of a database at schema version 99 succeeded, want an error")
	}
}

// TestAttemptNumberUnique checks the schema's fencing: one attempt per
// job and Number.
func TestAttemptNumberUnique(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	defer s.Close()
	var job store.Job
	var agent store.Agent
	err := s.Update(ctx, func(tx store.Tx) error {
		p, err := tx.Projects().Ensure(ctx, "p", epoch)
		if err != nil {
			return err
		}
		pl := &store.Pipeline{ProjectID: p.ID}
		if err := tx.Pipelines().Create(ctx, pl); err != nil {
			return err
		}
		job = store.Job{PipelineID: pl.ID, Name: "j", Status: store.JobPending}
		if err := tx.Jobs().Create(ctx, &job); err != nil {
			return err
		}
		agent = store.Agent{Name: "a", TokenHash: []byte("a")}
		if err := tx.Agents().Create(ctx, &agent); err != nil {
			return err
		}
		return tx.Jobs().CreateAttempt(ctx, &store.Attempt{JobID: job.ID, Number: 1, AgentID: agent.ID})
	})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Update(ctx, func(tx store.Tx) error {
		return tx.Jobs().CreateAttempt(ctx, &store.Attempt{JobID: job.ID, Number: 1, AgentID: agent.ID})
	})
	if !errors.Is(err, store.ErrConflict) {
		t.Errorf("second attempt 1: %v, want ErrConflict", err)
	}
	err = s.Update(ctx, func(tx store.Tx) error {
		return tx.Agents().Create(ctx, &store.Agent{Name: "b", TokenHash: []byte("a")})
	})
	if !errors.Is(err, store.ErrConflict) {
		t.Errorf("agent with a taken token hash: %v, want ErrConflict", err)
	}
	err = s.Update(ctx, func(tx store.Tx) error {
		return tx.Jobs().CreateAttempt(ctx, &store.Attempt{JobID: job.ID + 100, Number: 1, AgentID: agent.ID})
	})
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("attempt of a missing job: %v, want ErrNotFound", err)
	}
	err = s.Update(ctx, func(tx store.Tx) error {
		_, err := tx.Logs().Append(ctx, 4242, 0, []byte("x"))
		return err
	})
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("log of a missing attempt: %v, want ErrNotFound", err)
	}
}

// TestTwoStoresOneFile runs updates from two Stores on one file, as two
// processes would: their write connections must queue on the lock rather
// than fail with SQLITE_BUSY, and no increment may be lost.
func TestTwoStoresOneFile(t *testing.T) {
	ctx := context.Background()
	s1, path := openTemp(t)
	defer s1.Close()
	s2, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	var job store.Job
	err = s1.Update(ctx, func(tx store.Tx) error {
		p, err := tx.Projects().Ensure(ctx, "p", epoch)
		if err != nil {
			return err
		}
		pl := &store.Pipeline{ProjectID: p.ID}
		if err := tx.Pipelines().Create(ctx, pl); err != nil {
			return err
		}
		job = store.Job{PipelineID: pl.ID, Name: "counter", Status: store.JobPending}
		return tx.Jobs().Create(ctx, &job)
	})
	if err != nil {
		t.Fatal(err)
	}
	const workers, rounds = 4, 25
	var wg sync.WaitGroup
	errs := make(chan error, 2*workers*rounds)
	for _, s := range []*sqlite.Store{s1, s2} {
		for range workers {
			wg.Go(func() {
				for range rounds {
					errs <- s.Update(ctx, func(tx store.Tx) error {
						j, err := tx.Jobs().Get(ctx, job.ID) // read first: a deferred transaction would fail to upgrade
						if err != nil {
							return err
						}
						j.Attempts++
						return tx.Jobs().Update(ctx, j)
					})
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("update: %v", err)
		}
	}
	err = s2.Read(ctx, func(tx store.Tx) error {
		j, err := tx.Jobs().Get(ctx, job.ID)
		if err != nil {
			return err
		}
		if j.Attempts != 2*workers*rounds {
			t.Errorf("%d increments counted %d", 2*workers*rounds, j.Attempts)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
