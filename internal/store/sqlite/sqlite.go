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
	"time"

	"github.com/hangar-ci/hangar/internal/store/internal/migrations"

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

	ckpt *sql.DB // one connection for background checkpoints

	ephemeral bool // see Ephemeral

	stop, stopped chan struct{}
	closeOnce     sync.Once

	updates    chan *update  // to the writer goroutine
	writerDone chan struct{} // closed when the writer has stopped

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
func Open(ctx context.Context, path string, opts ...Option) (*Store, error) {
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file:") || strings.ContainsRune(path, '?') {
		return nil, fmt.Errorf("open sqlite store: path %q must be a plain file path", path)
	}
	ms, err := migrations.Load(migrationFiles, "migrations")
	if err != nil {
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	return open(ctx, path, ms, o)
}

// Option changes how Open opens a store.
type Option func(*options)

type options struct {
	ephemeral bool
}

// Ephemeral is for a database thrown away after use (hangar run's): it is
// never synced to disk and not checkpointed on Close. A crash of the
// machine may corrupt it; a crash of the process loses nothing committed.
func Ephemeral() Option { return func(o *options) { o.ephemeral = true } }

func open(ctx context.Context, path string, ms []migration, o options) (*Store, error) {
	sync := "synchronous(NORMAL)"
	if o.ephemeral {
		sync = "synchronous(OFF)"
	}
	write, err := openDB(ctx, path, url.Values{
		"_txlock": {"immediate"},
		"_pragma": {
			fmt.Sprintf("busy_timeout(%d)", BusyTimeout),
			"foreign_keys(1)",
			"journal_mode(WAL)",
			sync,
			// Checkpoints run in the background (checkpointer), not in
			// the commit that crosses the threshold: that commit would
			// wait for an fsync of the database file.
			"wal_autocheckpoint(0)",
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
	ckpt, err := openDB(ctx, path, url.Values{"_pragma": {fmt.Sprintf("busy_timeout(%d)", BusyTimeout)}}, 1)
	if err != nil {
		write.Close()
		read.Close()
		return nil, fmt.Errorf("open sqlite store %s for checkpoints: %w", path, err)
	}
	s := &Store{write: write, read: read, ckpt: ckpt, ephemeral: o.ephemeral, writeStmts: newStmtCache(write), readStmts: newStmtCache(read),
		stop: make(chan struct{}), stopped: make(chan struct{}), updates: make(chan *update), writerDone: make(chan struct{})}
	go s.checkpointer(CheckpointEvery)
	go s.writer()
	return s, nil
}

// CheckpointEvery is how often the WAL is copied back into the database
// file.
const CheckpointEvery = time.Second

// checkpointer copies the WAL into the database file every interval, on a
// connection of its own, so no commit waits for it. A passive checkpoint
// never blocks readers or the writer; it does what it can.
func (s *Store) checkpointer(every time.Duration) {
	defer close(s.stopped)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.ckpt.Exec("PRAGMA wal_checkpoint(PASSIVE)")
		}
	}
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
	s.closeOnce.Do(func() { close(s.stop) })
	<-s.stopped
	<-s.writerDone
	if !s.ephemeral {
		// A last full checkpoint leaves a small WAL behind.
		s.ckpt.Exec("PRAGMA wal_checkpoint(TRUNCATE)")
	}
	return errors.Join(s.read.Close(), s.write.Close(), s.ckpt.Close())
}

// Read runs fn in a read-only transaction on a snapshot of the database.
// Writes inside fn fail.
func (s *Store) Read(ctx context.Context, fn func(store.Tx) error) error {
	sqlTx, err := s.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("begin read: %w", err)
	}
	defer sqlTx.Rollback()
	err = fn(tx{q: sqlTx, stmts: s.readStmts})
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

// Update runs fn in a read-write transaction. Updates run one at a time,
// in the store's writer goroutine; updates that arrive while one runs are
// committed together (group commit): each runs inside a savepoint of one
// SQLite transaction, so one that fails is rolled back alone, and its
// caller returns only once the shared commit is done. It returns fn's
// error unchanged when fn fails, and re-panics a panicking fn's value.
func (s *Store) Update(ctx context.Context, fn func(store.Tx) error) error {
	u := &update{ctx: ctx, fn: fn, done: make(chan updateResult, 1)}
	select {
	case s.updates <- u:
	case <-ctx.Done():
		return fmt.Errorf("update: %w", ctx.Err())
	case <-s.stop:
		return errClosed
	}
	r := <-u.done
	if r.panicked {
		panic(r.panicValue)
	}
	return r.err
}

var errClosed = errors.New("sqlite store is closed")

// maxBatch bounds how many updates share one commit.
const maxBatch = 64

// update is one call of Update waiting for the writer.
type update struct {
	ctx  context.Context
	fn   func(store.Tx) error
	done chan updateResult
}

type updateResult struct {
	err        error
	panicked   bool
	panicValue any
}

// writer runs updates until the store closes, batching those that queue
// up while a batch runs.
func (s *Store) writer() {
	defer close(s.writerDone)
	for {
		var batch []*update
		select {
		case u := <-s.updates:
			batch = append(batch, u)
		case <-s.stop:
			return
		}
	collect:
		for len(batch) < maxBatch {
			select {
			case u := <-s.updates:
				batch = append(batch, u)
			default:
				break collect
			}
		}
		s.runBatch(batch)
	}
}

// runBatch runs a batch of updates in one transaction, each in a
// savepoint, and answers every caller after the commit.
func (s *Store) runBatch(batch []*update) {
	results := make([]updateResult, len(batch))
	defer func() {
		if s.writeStmts.hasMisses() {
			s.writeStmts.fill(context.Background())
		}
		for i, u := range batch {
			u.done <- results[i]
		}
	}()
	sqlTx, err := s.write.BeginTx(context.Background(), nil)
	if err != nil {
		for i := range results {
			results[i].err = fmt.Errorf("begin update: %w", err)
		}
		return
	}
	t := tx{q: sqlTx, stmts: s.writeStmts, write: true}
	var (
		applied []int // updates whose writes are in the transaction
		broken  error // the transaction cannot go on
	)
	for i, u := range batch {
		if broken != nil {
			results[i].err = broken
			continue
		}
		if err := u.ctx.Err(); err != nil {
			results[i].err = fmt.Errorf("update: %w", err)
			continue
		}
		if len(batch) == 1 {
			// Alone in its transaction: no savepoint needed, a failure
			// rolls the transaction back.
			results[i] = call(u.fn, t)
			if results[i].err != nil || results[i].panicked {
				sqlTx.Rollback()
				return
			}
			applied = append(applied, i)
			continue
		}
		if _, err := sqlTx.Exec("SAVEPOINT upd"); err != nil {
			broken = fmt.Errorf("update: savepoint: %w", err)
			results[i].err = broken
			continue
		}
		results[i] = call(u.fn, t)
		if results[i].err != nil || results[i].panicked {
			if _, err := sqlTx.Exec("ROLLBACK TO upd"); err != nil {
				broken = fmt.Errorf("update: roll back a failed update: %w", err)
			}
		}
		if broken == nil {
			if _, err := sqlTx.Exec("RELEASE upd"); err != nil {
				broken = fmt.Errorf("update: release savepoint: %w", err)
			}
		}
		if broken == nil && results[i].err == nil && !results[i].panicked {
			applied = append(applied, i)
		}
	}
	if broken == nil {
		if err := sqlTx.Commit(); err != nil {
			broken = fmt.Errorf("commit update: %w", err)
		}
	}
	if broken != nil {
		sqlTx.Rollback()
		for _, i := range applied {
			results[i].err = broken
		}
	}
}

// call runs fn, turning a panic into a result.
func call(fn func(store.Tx) error, t tx) (r updateResult) {
	defer func() {
		if v := recover(); v != nil {
			r = updateResult{panicked: true, panicValue: v}
		}
	}()
	return updateResult{err: fn(t)}
}

// tx is one transaction; every aggregate shares its *sql.Tx.
type tx struct {
	q     *sql.Tx
	stmts *stmtCache
	// write marks the writer's transaction, shared by a batch of updates:
	// its statements ignore the callers' cancellation, since interrupting
	// a statement can roll back the whole transaction.
	write bool
}

// stmtCtx is the context a statement of t runs with.
func (t tx) stmtCtx(ctx context.Context) context.Context {
	if t.write {
		return context.WithoutCancel(ctx)
	}
	return ctx
}

func (t tx) Projects() store.Projects       { return projects(t) }
func (t tx) Pipelines() store.Pipelines     { return pipelines(t) }
func (t tx) Jobs() store.Jobs               { return jobs(t) }
func (t tx) Agents() store.Agents           { return agents(t) }
func (t tx) Logs() store.Logs               { return logs(t) }
func (t tx) Artifacts() store.Artifacts     { return artifacts(t) }
func (t tx) FleetEvents() store.FleetEvents { return fleetEvents(t) }

func (t tx) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	ctx = t.stmtCtx(ctx)
	if st := t.stmts.get(query); st != nil {
		return t.q.StmtContext(ctx, st).QueryContext(ctx, args...)
	}
	return t.q.QueryContext(ctx, query, args...)
}

func (t tx) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	ctx = t.stmtCtx(ctx)
	if st := t.stmts.get(query); st != nil {
		return t.q.StmtContext(ctx, st).QueryRowContext(ctx, args...)
	}
	return t.q.QueryRowContext(ctx, query, args...)
}

func (t tx) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	ctx = t.stmtCtx(ctx)
	if st := t.stmts.get(query); st != nil {
		return t.q.StmtContext(ctx, st).ExecContext(ctx, args...)
	}
	return t.q.ExecContext(ctx, query, args...)
}

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
