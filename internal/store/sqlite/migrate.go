package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"

	"github.com/hangar-ci/hangar/internal/store/internal/migrations"
)

// migrationFiles holds the schema's migrations, named NNNN_what.sql and
// numbered from 0001 without gaps; the database's user_version is the
// number of the last one applied.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// migration is one step of the schema.
type migration = migrations.Migration

// migrate applies the migrations db has not applied yet, each in its own
// transaction together with the new user_version, so a failed migration
// leaves the schema as it was and a concurrent Open applies nothing twice.
// It refuses a database migrated further than ms go.
func migrate(ctx context.Context, db *sql.DB, ms []migration) error {
	for _, m := range ms {
		if err := applyMigration(ctx, db, m, len(ms)); err != nil {
			return err
		}
	}
	return nil
}

func applyMigration(ctx context.Context, db *sql.DB, m migration, latest int) error {
	t, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migration %s: begin: %w", m.Name, err)
	}
	defer t.Rollback()
	var version int
	if err := t.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return fmt.Errorf("migration %s: read schema version: %w", m.Name, err)
	}
	if version > latest {
		return fmt.Errorf("schema version %d is newer than this program's %d", version, latest)
	}
	if version >= m.Version {
		return nil
	}
	if version != m.Version-1 {
		return fmt.Errorf("migration %s: schema version is %d, want %d", m.Name, version, m.Version-1)
	}
	if _, err := t.ExecContext(ctx, m.SQL); err != nil {
		return fmt.Errorf("migration %s: %w", m.Name, err)
	}
	// PRAGMA takes no parameters; version is an int.
	if _, err := t.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", m.Version)); err != nil {
		return fmt.Errorf("migration %s: set schema version: %w", m.Name, err)
	}
	if err := t.Commit(); err != nil {
		return fmt.Errorf("migration %s: commit: %w", m.Name, err)
	}
	return nil
}
