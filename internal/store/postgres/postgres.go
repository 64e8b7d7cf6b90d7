// Package postgres implements store.Store on a PostgreSQL database, with
// github.com/jackc/pgx/v5 and its connection pool.
//
// Store.Update runs its function in a SERIALIZABLE transaction and runs it
// again when PostgreSQL reports a serialization failure or a deadlock, so
// concurrent updates behave as if they ran one at a time, as they do in
// the sqlite store (one writer at a time). Unlike there, the function may
// run more than once. Jobs.NextPending also locks the job it returns with
// FOR UPDATE SKIP LOCKED, so concurrent claims pass over each other's job
// instead of colliding on it. Store.Read runs in a REPEATABLE READ, READ
// ONLY transaction: one snapshot, which never waits for writers.
//
// Times are stored as Unix microseconds in UTC (0 for the zero time, so
// the instant 1970-01-01T00:00:00Z reads back as the zero time); lists and
// structs are stored as JSON text: the encoding of the sqlite store.
//
// Open applies the embedded migrations under an advisory lock, so servers
// that start together on one database do not race.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hangar-ci/hangar/internal/store"
)

// MaxRetries is how many times Update runs its function again after a
// serialization failure or a deadlock before it gives up.
const MaxRetries = 100

// Store is a store.Store on one PostgreSQL database. It is safe for
// concurrent use.
type Store struct {
	pool *pgxpool.Pool
}

var _ store.Store = (*Store)(nil)

// Open connects to the database at url (postgres://user@host:port/db?…,
// or any connection string pgxpool.ParseConfig takes, pool_max_conns
// included) and brings its schema up to date by applying, in order and
// each in its own transaction, the embedded migrations it has not applied
// yet.
func Open(ctx context.Context, url string) (*Store, error) {
	ms, err := loadMigrations(migrationFiles, "migrations")
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
	return &Store{pool: pool}, nil
}

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

// Update runs fn in a serializable transaction, committed when fn returns
// nil. When the transaction fails with a serialization failure or a
// deadlock, in fn or at the commit, it is rolled back and fn runs again,
// up to MaxRetries times: fn must leave nothing behind but its writes
// through the store, and whatever it keeps for its caller must be set
// anew by each run. It returns fn's error unchanged when fn fails
// otherwise, and lets a panicking fn's panic through after the rollback.
func (s *Store) Update(ctx context.Context, fn func(store.Tx) error) error {
	for retry := 0; ; retry++ {
		err := s.update(ctx, fn)
		if err == nil || !retryable(err) {
			return err
		}
		if retry == MaxRetries {
			return fmt.Errorf("update: gave up after %d retries: %w", retry, err)
		}
		if err := sleep(ctx, backoff(retry)); err != nil {
			return fmt.Errorf("update: %w", err)
		}
	}
}

// update runs fn once in a transaction of its own.
func (s *Store) update(ctx context.Context, fn func(store.Tx) error) error {
	t, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.Serializable})
	if err != nil {
		return fmt.Errorf("begin update: %w", err)
	}
	defer t.Rollback(context.WithoutCancel(ctx)) // also when fn panics
	if err := fn(tx{t}); err != nil {
		return err
	}
	if err := t.Commit(ctx); err != nil {
		return fmt.Errorf("commit update: %w", err)
	}
	return nil
}

// retryable reports whether err is a serialization failure or a deadlock:
// the transaction may succeed when run again.
func retryable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "40001", // serialization_failure
			"40P01": // deadlock_detected
			return true
		}
	}
	return false
}

// backoff is how long Update waits before its retry'th retry: a random
// share of a window that doubles from 1ms up to 64ms, so transactions
// that collided do not collide again in step.
func backoff(retry int) time.Duration {
	window := time.Millisecond << min(retry, 6)
	return rand.N(window) + time.Millisecond/10
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// tx is one transaction; every aggregate shares its pgx.Tx.
type tx struct {
	q pgx.Tx
}

func (t tx) Projects() store.Projects   { return projects(t) }
func (t tx) Pipelines() store.Pipelines { return pipelines(t) }
func (t tx) Jobs() store.Jobs           { return jobs(t) }
func (t tx) Agents() store.Agents       { return agents(t) }
func (t tx) Logs() store.Logs           { return logs(t) }
func (t tx) Artifacts() store.Artifacts { return artifacts(t) }

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
// the original, so retryable sees through them.
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
