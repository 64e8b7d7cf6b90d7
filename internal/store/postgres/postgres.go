// Package postgres implements store.Store on a PostgreSQL database, with
// github.com/jackc/pgx/v5 and its connection pool. Several servers may
// share one database.
//
// Store.Update runs its function at READ COMMITTED after taking one
// transaction-level advisory lock, the writer lock, that every update of
// every server takes first: updates run one at a time across all servers,
// as they do in the sqlite store, so the function runs exactly once and
// sees every update committed before it. Store.Read runs in a REPEATABLE
// READ, READ ONLY transaction: one snapshot, which never waits for
// writers. Jobs.NextPending matches against a narrow table of the pending
// jobs and locks its row FOR UPDATE SKIP LOCKED.
//
// Times are stored as Unix microseconds in UTC (0 for the zero time, so
// the instant 1970-01-01T00:00:00Z reads back as the zero time); lists and
// structs are stored as JSON text: the encoding of the sqlite store.
//
// Open applies the embedded migrations under an advisory lock, so servers
// that start together on one database do not race. Lead elects one
// server to run what must run once; Bus carries wake-ups between servers.
package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/hangar-ci/hangar/internal/store/internal/migrations"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hangar-ci/hangar/internal/store"
)

// writerLock is the key of the advisory lock every update takes.
const writerLock int64 = 0x68616e6761720001 // "hangar", 1

// Store is a store.Store on one PostgreSQL database. It is safe for
// concurrent use.
type Store struct {
	pool  *pgxpool.Pool
	where string
}

var _ store.Store = (*Store)(nil)

// Open connects to the database at url (postgres://user@host:port/db?…,
// or any connection string pgxpool.ParseConfig takes, pool_max_conns
// included) and brings its schema up to date by applying, in order and
// each in its own transaction, the embedded migrations it has not applied
// yet.
func Open(ctx context.Context, url string) (*Store, error) {
	ms, err := migrations.Load(migrationFiles, "migrations")
	if err != nil {
		return nil, fmt.Errorf("open postgres store: %w", err)
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// The error may quote the URL, password included: say less.
		return nil, errors.New("open postgres store: the database URL does not parse")
	}
	where := fmt.Sprintf("%s:%d/%s", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open postgres store %s: %w", where, err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open postgres store %s: %w", where, err)
	}
	if err := migrate(ctx, pool, ms); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open postgres store %s: %w", where, err)
	}
	return &Store{pool: pool, where: where}, nil
}

// Where names the database as HOST:PORT/NAME, for logs: the URL without
// its user and password.
func (s *Store) Where() string { return s.where }

// Close closes the pool's connections, waiting for those in use to be
// returned; the Store must not be used afterwards.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// Read runs fn in a read-only transaction on one snapshot of the
// database. Writes inside fn fail.
func (s *Store) Read(ctx context.Context, fn func(store.Tx) error) error {
	t, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("begin read: %w", err)
	}
	defer t.Rollback(context.WithoutCancel(ctx))
	if err := fn(tx{t}); err != nil {
		return err
	}
	if err := t.Commit(ctx); err != nil {
		return fmt.Errorf("end read: %w", err)
	}
	return nil
}

// Update runs fn in one transaction, committed when fn returns nil and
// rolled back otherwise (also when fn panics, whose panic goes on). The
// transaction first takes the writer lock, so it waits for the update
// running on any server sharing the database to end.
func (s *Store) Update(ctx context.Context, fn func(store.Tx) error) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("begin update: %w", err)
	}
	// The pool drops a connection returned in a transaction; the rollback
	// is for the connection's next user all the same.
	defer conn.Release()
	// One round trip: BEGIN and the lock as one simple query.
	if _, err := conn.Exec(ctx, beginUpdate); err != nil {
		return fmt.Errorf("begin update: %w", err)
	}
	done := false
	defer func() {
		if !done {
			conn.Exec(context.WithoutCancel(ctx), "ROLLBACK")
		}
	}()
	if err := fn(tx{conn}); err != nil {
		return err
	}
	done = true
	tag, err := conn.Exec(ctx, "COMMIT")
	if err != nil {
		return fmt.Errorf("commit update: %w", err)
	}
	if tag.String() == "ROLLBACK" {
		// A statement failed and fn went on: PostgreSQL rolled it all back.
		return errors.New("commit update: the transaction had failed, and was rolled back")
	}
	return nil
}

// beginUpdate begins an update: READ COMMITTED (the default, said here
// anyway), then the writer lock.
var beginUpdate = fmt.Sprintf("BEGIN ISOLATION LEVEL READ COMMITTED; SELECT pg_advisory_xact_lock(%d)", writerLock)

// querier is what the aggregates run statements with: a pgx.Tx, or a
// pooled connection inside a transaction begun by hand.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// tx is one transaction; every aggregate shares its connection.
type tx struct {
	q querier
}

func (t tx) Projects() store.Projects       { return projects(t) }
func (t tx) Pipelines() store.Pipelines     { return pipelines(t) }
func (t tx) Jobs() store.Jobs               { return jobs(t) }
func (t tx) Agents() store.Agents           { return agents(t) }
func (t tx) Logs() store.Logs               { return logs(t) }
func (t tx) Artifacts() store.Artifacts     { return artifacts(t) }
func (t tx) FleetEvents() store.FleetEvents { return fleetEvents(t) }

func (t tx) query(ctx context.Context, query string, args ...any) (pgx.Rows, error) {
	return t.q.Query(ctx, query, args...)
}

func (t tx) queryRow(ctx context.Context, query string, args ...any) pgx.Row {
	return t.q.QueryRow(ctx, query, args...)
}

// exec runs a statement and returns store.ErrNotFound when it changed no
// row and mustChange is set.
func (t tx) exec(ctx context.Context, mustChange bool, query string, args ...any) error {
	tag, err := t.q.Exec(ctx, query, args...)
	if err != nil {
		return dbErr(err)
	}
	if mustChange && tag.RowsAffected() == 0 {
		return store.ErrNotFound
	}
	return nil
}

// dbErr translates the database's errors into the store's: no row is
// store.ErrNotFound, a unique violation store.ErrConflict and a foreign
// key violation (a reference to a missing record) store.ErrNotFound.
// Other errors are returned as they are. The translated errors still wrap
// the original.
func dbErr(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return store.ErrNotFound
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "23505": // unique_violation
			return fmt.Errorf("%w: %w", store.ErrConflict, err)
		case "23503": // foreign_key_violation
			return fmt.Errorf("%w: %w", store.ErrNotFound, err)
		}
	}
	return err
}
