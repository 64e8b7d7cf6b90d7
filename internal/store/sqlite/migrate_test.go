package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
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
