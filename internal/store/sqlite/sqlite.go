// Package sqlite implements store.Store on an SQLite database file, with
// the pure-Go driver modernc.org/sqlite.
//
// The database runs in WAL mode: readers never wait for the writer. All
// writes go through one connection whose transactions begin with BEGIN
// IMMEDIATE, so concurrent Store.Update calls queue for that connection
// (and, against another process, on the busy timeout) instead of failing
// with SQLITE_BUSY halfway through; Store.Read uses a pool of read-only
// connections.
//
// Times are stored as Unix microseconds in UTC (0 for the zero time, so
// the instant 1970-01-01T00:00:00Z reads back as the zero time); lists and
// structs are stored as JSON text.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"runtime"
	"strings"
	"sync"

	sqlitedrv "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/hangar-ci/hangar/internal/store"
)

// BusyTimeout is how long, in milliseconds, a connection waits for a lock
// held by another process before it gives up with SQLITE_BUSY.
const BusyTimeout = 10_000

// MinReaders is the least number of read connections a Store keeps; it
// uses GOMAXPROCS when that is larger.
const MinReaders = 4

// Store is a store.Store on one SQLite database file. It is safe for
// concurrent use.
type Store struct {
	write *sql.DB // one connection, BEGIN IMMEDIATE
	read  *sql.DB // several connections, query_only

	// Statements are prepared once per connection and reused: parsing
	// SQL is a good part of a short transaction's cost.
	writeStmts, readStmts *stmtCache
}

var _ store.Store = (*Store)(nil)

// Open opens the database file at path, creating it when it does not
// exist, and brings its schema up to date by applying, in order and each
// in its own transaction, the embedded migrations it has not applied yet.
// path must name a file: an in-memory database cannot be shared by the
// Store's several connections.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file:") || strings.ContainsRune(path, '?') {
		return nil, fmt.Errorf("open sqlite store: path %q must be a plain file path", path)
	}
	ms, err := loadMigrations(migrationFiles, "migrations")
	if err != nil {
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	return open(ctx, path, ms)
}

func open(ctx context.Context, path string, ms []migration) (*Store, error) {
	write, err := openDB(ctx, path, url.Values{
		"_txlock": {"immediate"},
		"_pragma": {
			fmt.Sprintf("busy_timeout(%d)", BusyTimeout),
			"foreign_keys(1)",
			"journal_mode(WAL)",
			"synchronous(NORMAL)",
		},
	}, 1)
	if err != nil {
		return nil, fmt.Errorf("open sqlite store %s for writing: %w", path, err)
	}
	var mode string
	if err := write.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		write.Close()
		return nil, fmt.Errorf("open sqlite store %s: read journal mode: %w", path, err)
	}
	if !strings.EqualFold(mode, "wal") {
		write.Close()
		return nil, fmt.Errorf("open sqlite store %s: journal mode is %q, want wal", path, mode)
	}
	if err := migrate(ctx, write, ms); err != nil {
		write.Close()
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}

	read, err := openDB(ctx, path, url.Values{
		"_pragma": {
			fmt.Sprintf("busy_timeout(%d)", BusyTimeout),
			"foreign_keys(1)",
			"query_only(1)",
		},
	}, max(MinReaders, runtime.GOMAXPROCS(0)))
	if err != nil {
		write.Close()
		return nil, fmt.Errorf("open sqlite store %s for reading: %w", path, err)
	}
	return &Store{write: write, read: read, writeStmts: newStmtCache(write), readStmts: newStmtCache(read)}, nil
}

// openDB opens a pool of at most conns connections to path whose
// connections are set up by params, and checks that one opens.
func openDB(ctx context.Context, path string, params url.Values, conns int) (*sql.DB, error) {
	db, err := sql.Open("sqlite", path+"?"+params.Encode())
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// Close closes the database; the Store must not be used afterwards.
func (s *Store) Close() error {
	return errors.Join(s.read.Close(), s.write.Close())
}

// Read runs fn in a read-only transaction on a snapshot of the database.
// Writes inside fn fail.
func (s *Store) Read(ctx context.Context, fn func(store.Tx) error) error {
	sqlTx, err := s.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("begin read: %w", err)
	}
	defer sqlTx.Rollback()
	err = fn(tx{sqlTx, s.readStmts})
	if err == nil {
		if err = sqlTx.Commit(); err != nil {
			err = fmt.Errorf("end read: %w", err)
		}
	} else {
		sqlTx.Rollback()
	}
	if s.readStmts.hasMisses() {
		s.readStmts.fill(ctx)
	}
	return err
}

// Update runs fn in a read-write transaction that holds the database's
// write lock from its start, so updates run one at a time. It returns
// fn's error unchanged, after rolling back, when fn fails.
func (s *Store) Update(ctx context.Context, fn func(store.Tx) error) error {
	sqlTx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin update: %w", err)
	}
	defer sqlTx.Rollback() // after Commit a no-op; also undoes a panicking fn
	err = fn(tx{sqlTx, s.writeStmts})
	if err == nil {
		if err = sqlTx.Commit(); err != nil {
			err = fmt.Errorf("commit update: %w", err)
		}
	} else {
		sqlTx.Rollback()
	}
	if s.writeStmts.hasMisses() {
		s.writeStmts.fill(ctx)
	}
	return err
}

// tx is one transaction; every aggregate shares its *sql.Tx.
type tx struct {
	q     *sql.Tx
	stmts *stmtCache
}

func (t tx) Projects() store.Projects   { return projects(t) }
func (t tx) Pipelines() store.Pipelines { return pipelines(t) }
func (t tx) Jobs() store.Jobs           { return jobs(t) }
func (t tx) Agents() store.Agents       { return agents(t) }
func (t tx) Logs() store.Logs           { return logs(t) }

func (t tx) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := t.stmts.get(query); st != nil {
		return t.q.StmtContext(ctx, st).QueryContext(ctx, args...)
	}
	return t.q.QueryContext(ctx, query, args...)
}

func (t tx) queryRow(ctx context.Context, query string, args ...any) rowScanner {
	if st := t.stmts.get(query); st != nil {
		return t.q.StmtContext(ctx, st).QueryRowContext(ctx, args...)
	}
	return t.q.QueryRowContext(ctx, query, args...)
}

func (t tx) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := t.stmts.get(query); st != nil {
		return t.q.StmtContext(ctx, st).ExecContext(ctx, args...)
	}
	return t.q.ExecContext(ctx, query, args...)
}

// rowScanner is a *sql.Row, or an errRow when the statement could not be
// prepared.
type rowScanner interface{ Scan(dest ...any) error }

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// stmtCache holds the statements prepared on one *sql.DB, by their SQL.
// database/sql prepares each on a connection the first time a
// transaction of that connection uses it, and reuses it afterwards.
//
// A statement cannot be prepared on the DB while a transaction holds its
// only connection (the write side has one), so a query seen for the first
// time runs unprepared and is prepared by fill, after its transaction.
type stmtCache struct {
	db     *sql.DB
	mu     sync.Mutex
	m      map[string]*sql.Stmt
	missed map[string]bool
}

// maxStmts bounds the cache; queries built from filters vary.
const maxStmts = 256

func newStmtCache(db *sql.DB) *stmtCache {
	return &stmtCache{db: db, m: map[string]*sql.Stmt{}, missed: map[string]bool{}}
}

// get returns the prepared statement for query, or nil (and remembers the
// miss).
func (c *stmtCache) get(query string) *sql.Stmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	st, ok := c.m[query]
	if !ok && len(c.m)+len(c.missed) < maxStmts {
		c.missed[query] = true
	}
	return st
}

// fill prepares the queries that missed; call it with no transaction
// open on the DB's connections (errors only leave a query unprepared).
//
// It prepares without holding mu: PrepareContext waits for a free
// connection, and the transaction holding the write side's only one may
// be waiting for mu in get.
func (c *stmtCache) fill(ctx context.Context) {
	c.mu.Lock()
	queries := make([]string, 0, len(c.missed))
	for q := range c.missed {
		queries = append(queries, q)
	}
	clear(c.missed)
	c.mu.Unlock()
	for _, q := range queries {
		st, err := c.db.PrepareContext(ctx, q)
		if err != nil {
			continue
		}
		c.mu.Lock()
		_, dup := c.m[q] // another fill prepared it meanwhile
		if !dup {
			c.m[q] = st
		}
		c.mu.Unlock()
		if dup {
			st.Close()
		}
	}
}

// hasMisses reports whether fill has work.
func (c *stmtCache) hasMisses() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.missed) > 0
}

// dbErr translates the database's errors into the store's: no row is
// store.ErrNotFound, a unique or primary key violation store.ErrConflict
// and a foreign key violation (a reference to a missing record)
// store.ErrNotFound. Other errors are returned as they are.
func dbErr(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return store.ErrNotFound
	}
	var se *sqlitedrv.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return fmt.Errorf("%w: %w", store.ErrConflict, err)
		case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			return fmt.Errorf("%w: %w", store.ErrNotFound, err)
		}
	}
	return err
}

// affected returns store.ErrNotFound when res changed no row.
func affected(res sql.Result) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return store.ErrNotFound
	}
	return nil
}
