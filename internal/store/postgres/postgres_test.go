package postgres_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hangar-ci/hangar/internal/store"
	"github.com/hangar-ci/hangar/internal/store/postgres"
	"github.com/hangar-ci/hangar/internal/store/postgres/pgtest"
	"github.com/hangar-ci/hangar/internal/store/storetest"
)

func openTemp(t *testing.T) (*postgres.Store, string) {
	t.Helper()
	u := pgtest.NewDatabase(t, 12) // the suite's subtests run in parallel, each with its own pool
	s, err := postgres.Open(context.Background(), u)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return s, u
}

func TestConformance(t *testing.T) {
	pgtest.ServerURL(t)
	storetest.Run(t, func(t *testing.T) store.Store {
		s, _ := openTemp(t)
		return s
	})
}

var epoch = time.Date(2025, 3, 14, 15, 9, 26, 535897000, time.UTC)

// TestOpenConcurrently opens one new database from several goroutines at
// once: the migration lock lets one migrate and the others find the
// schema in place.
func TestOpenConcurrently(t *testing.T) {
	t.Parallel()
	u := pgtest.NewDatabase(t, 12) // the suite's subtests run in parallel, each with its own pool
	ctx := context.Background()
	const n = 4
	var (
		wg     sync.WaitGroup
		stores [n]*postgres.Store
		errs   [n]error
	)
	for i := range n {
		wg.Go(func() { stores[i], errs[i] = postgres.Open(ctx, u) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Errorf("open %d: %v", i, errs[i])
			continue
		}
		defer stores[i].Close()
	}
	if t.Failed() {
		return
	}
	if err := stores[0].Update(ctx, func(tx store.Tx) error {
		_, err := tx.Projects().Ensure(ctx, "p", epoch)
		return err
	}); err != nil {
		t.Fatalf("update: %v", err)
	}
	if err := stores[n-1].Read(ctx, func(tx store.Tx) error {
		_, err := tx.Projects().GetByName(ctx, "p")
		return err
	}); err != nil {
		t.Fatalf("read through another store: %v", err)
	}
}

// TestReopenKeepsData closes a store and opens its database again: the
// data is there, and the second open migrates nothing.
func TestReopenKeepsData(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, u := openTemp(t)
	var id int64
	if err := s.Update(ctx, func(tx store.Tx) error {
		p, err := tx.Projects().Ensure(ctx, "kept", epoch)
		if err == nil {
			id = p.ID
		}
		return err
	}); err != nil {
		t.Fatalf("update: %v", err)
	}
	s.Close()
	for range 2 {
		s, err := postgres.Open(ctx, u)
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		err = s.Read(ctx, func(tx store.Tx) error {
			p, err := tx.Projects().Get(ctx, id)
			if err == nil && (p.Name != "kept" || !p.CreatedAt.Equal(epoch)) {
				t.Errorf("after reopening: %+v", p)
			}
			return err
		})
		s.Close()
		if err != nil {
			t.Fatalf("read: %v", err)
		}
	}
}

// TestRefusesNewerSchema opens a database a later program migrated
// further: Open refuses it rather than run on a schema it does not know.
func TestRefusesNewerSchema(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, u := openTemp(t)
	s.Close()
	pool, err := pgxpool.New(ctx, u) // u sets pool_max_conns, which pgx.Connect refuses
	if err != nil {
		t.Fatal(err)
	}
	_, err = pool.Exec(ctx, `INSERT INTO hangar_schema (version, name) VALUES (9999, '9999_future.sql')`)
	pool.Close()
	if err != nil {
		t.Fatal(err)
	}
	if s, err := postgres.Open(ctx, u); err == nil {
		s.Close()
		t.Fatalf("Open of a newer schema succeeded")
	} else if !strings.Contains(err.Error(), "newer") {
		t.Errorf("Open of a newer schema: %v, want it to say the schema is newer", err)
	}
}
