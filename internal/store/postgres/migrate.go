package postgres

import (
	"context"
	"embed"
	"fmt"

	"github.com/hangar-ci/hangar/internal/store/internal/migrations"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// migrationFiles holds the schema's migrations, named NNNN_what.sql and
// numbered from 0001 without gaps; the table hangar_schema records the
// ones applied.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrationLock is the key of the advisory lock that Open holds while it
// migrates, so servers starting together apply each migration once.
const migrationLock int64 = 0x68616e676172 // "hangar"

// migration is one step of the schema.
type migration = migrations.Migration

// migrate applies the migrations the database has not applied yet, each
// in its own transaction together with its row in hangar_schema, while
// holding the advisory lock migrationLock. It refuses a database migrated
// further than ms go.
func migrate(ctx context.Context, pool *pgxpool.Pool, ms []migration) (err error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrationLock); err != nil {
		return fmt.Errorf("migrate: take the migration lock: %w", err)
	}
	defer func() {
		// A lock left behind (the unlock failed) would block every later
		// Open: drop the connection rather than return it to the pool.
		if _, uerr := conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, migrationLock); uerr != nil {
			conn.Conn().Close(context.WithoutCancel(ctx))
			if err == nil {
				err = fmt.Errorf("migrate: release the migration lock: %w", uerr)
			}
		}
	}()
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS hangar_schema (
			version    INTEGER PRIMARY KEY,
			name       TEXT    NOT NULL,
			applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
		)`); err != nil {
		return fmt.Errorf("migrate: create hangar_schema: %w", err)
	}
	var version int
	if err := conn.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM hangar_schema`).Scan(&version); err != nil {
		return fmt.Errorf("migrate: read schema version: %w", err)
	}
	if version > len(ms) {
		return fmt.Errorf("schema version %d is newer than this program's %d", version, len(ms))
	}
	for _, m := range ms[version:] {
		if err := pgx.BeginFunc(ctx, conn, func(t pgx.Tx) error {
			if _, err := t.Exec(ctx, m.SQL); err != nil {
				return err
			}
			_, err := t.Exec(ctx, `INSERT INTO hangar_schema (version, name) VALUES ($1, $2)`, m.Version, m.Name)
			return err
		}); err != nil {
			return fmt.Errorf("migration %s: %w", m.Name, err)
		}
	}
	return nil
}
