// Package pgtest gives tests a PostgreSQL database of their own on the
// server named by HANGAR_TEST_POSTGRES (scripts/pg-up starts one and
// prints its URL; scripts/test does that before the tests run).
//
// Without HANGAR_TEST_POSTGRES a test that asks for a database skips,
// saying why; with HANGAR_REQUIRE_POSTGRES=1 (set by scripts/test) it
// fails instead, so CI never skips them silently.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// ServerURL returns the URL of the test server, skipping or failing tb
// when there is none.
func ServerURL(tb testing.TB) string {
	tb.Helper()
	u := os.Getenv("HANGAR_TEST_POSTGRES")
	if u == "" {
		const msg = "HANGAR_TEST_POSTGRES is not set: no PostgreSQL to test against " +
			"(url=$(scripts/pg-up) starts one and prints its URL)"
		if os.Getenv("HANGAR_REQUIRE_POSTGRES") == "1" {
			tb.Fatal(msg + ", and HANGAR_REQUIRE_POSTGRES=1")
		}
		tb.Skip(msg)
	}
	return u
}

// NewDatabase creates a database with a random name on the test server,
// dropped when tb ends, and returns its URL with the pool capped at
// maxConns connections (pgxpool's default when maxConns <= 0).
func NewDatabase(tb testing.TB, maxConns int) string {
	tb.Helper()
	base := ServerURL(tb)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		tb.Fatalf("connect to the test server: %v", err)
	}
	defer conn.Close(context.Background())
	b := make([]byte, 8)
	rand.Read(b)
	name := "hangar_test_" + hex.EncodeToString(b)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		tb.Fatalf("create database %s: %v", name, err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			tb.Errorf("drop database %s: %v", name, err)
			return
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(ctx, "DROP DATABASE "+name+" WITH (FORCE)"); err != nil {
			tb.Errorf("drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		tb.Fatalf("HANGAR_TEST_POSTGRES: %v", err)
	}
	u.Path = "/" + name
	if maxConns > 0 {
		q := u.Query()
		q.Set("pool_max_conns", strconv.Itoa(maxConns))
		u.RawQuery = q.Encode()
	}
	return u.String()
}
