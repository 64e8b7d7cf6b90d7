package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hangar-ci/hangar/internal/store"
	"github.com/hangar-ci/hangar/internal/store/postgres"
	"github.com/hangar-ci/hangar/internal/store/storetest"
)

// serverURL returns the URL of the test server, from HANGAR_TEST_POSTGRES
// (scripts/pg-up prints one). Without it the test skips, or fails when
// HANGAR_REQUIRE_POSTGRES=1.
func serverURL(t *testing.T) string {
	t.Helper()
	u := os.Getenv("HANGAR_TEST_POSTGRES")
	if u == "" {
		const msg = "HANGAR_TEST_POSTGRES is not set: no PostgreSQL to test against " +
			"(url=$(scripts/pg-up) prints one)"
		if os.Getenv("HANGAR_REQUIRE_POSTGRES") == "1" {
			t.Fatal(msg + ", and HANGAR_REQUIRE_POSTGRES=1")
		}
		t.Skip(msg)
	}
	return u
}

// newDatabase creates a database with a random name on the test server,
// dropped when t ends, and returns its URL.
func newDatabase(t *testing.T) string {
	t.Helper()
	base := serverURL(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect to the test server: %v", err)
	}
	defer conn.Close(ctx)
	b := make([]byte, 8)
	rand.Read(b)
	name := "hangar_test_" + hex.EncodeToString(b)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("drop database %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("HANGAR_TEST_POSTGRES: %v", err)
	}
	u.Path = "/" + name
	q := u.Query()
	// The suite's subtests run in parallel, each with its own pool.
	q.Set("pool_max_conns", "12")
	u.RawQuery = q.Encode()
	return u.String()
}

func openTemp(t *testing.T) (*postgres.Store, string) {
	t.Helper()
	u := newDatabase(t)
	s, err := postgres.Open(context.Background(), u)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return s, u
}

func TestConformance(t *testing.T) {
	serverURL(t)
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
	u := newDatabase(t)
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
