package postgres

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
)

// leaderLock is the key of the session-level advisory lock the leader
// holds.
const leaderLock int64 = 0x68616e6761720002 // "hangar", 2

// LeadConfig tunes Lead. The zero value of a field means its default.
type LeadConfig struct {
	// Interval is how often a follower tries to take the lead and the
	// leader checks that it still holds it: 1 s by default. A leader that
	// dies is replaced within about Interval + Grace after PostgreSQL ends its
	// session (at once when its process dies, since the socket closes).
	Interval time.Duration
	// Grace is how long a server that took the lock waits before it
	// leads: the time a leader whose session PostgreSQL ended while its
	// process lives (an operator killed it, the network dropped it) has to
	// notice at its next check and stop. 2 × Interval + 1 s by default.
	Grace time.Duration
	// Logger hears of every change of leader.
	Logger *slog.Logger
	// OnChange, when set, is called with true when this server becomes
	// the leader and with false when it stops being one.
	OnChange func(leading bool)
}

// Lead runs lead whenever this server is the leader of the servers sharing
// the database, until ctx ends. The leader is the server whose session
// holds an advisory lock, on a connection of its own outside the pool;
// PostgreSQL releases it when that session ends, so when the leader's
// process dies another server takes the lead within about Interval +
// Grace (3 s by default). The context lead gets is cancelled when this
// server loses its connection (and so perhaps the lock), and Lead waits
// for lead to return before it tries to lead again: one server runs lead
// at a time.
func (s *Store) Lead(ctx context.Context, cfg LeadConfig, lead func(ctx context.Context)) {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.Grace <= 0 {
		cfg.Grace = 2*cfg.Interval + time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	log := cfg.Logger
	for ctx.Err() == nil {
		conn, err := s.tryLead(ctx)
		if err != nil && ctx.Err() == nil {
			log.LogAttrs(ctx, slog.LevelWarn, "leader election", slog.String("error", err.Error()))
		}
		if conn != nil {
			err := s.holdLead(ctx, conn, cfg, lead)
			conn.Close(context.WithoutCancel(ctx)) // ends the session, which releases the lock
			if ctx.Err() != nil {
				return
			}
			log.LogAttrs(ctx, slog.LevelWarn, "lost the lead", slog.String("error", err.Error()))
		}
		if sleep(ctx, cfg.Interval) != nil {
			return
		}
	}
}

// tryLead connects and tries to take the leader lock: it returns the
// connection holding it, or nil when another server holds it.
func (s *Store) tryLead(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig.Copy())
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	var got bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, leaderLock).Scan(&got); err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("try the leader lock: %w", err)
	}
	if !got {
		conn.Close(context.WithoutCancel(ctx))
		return nil, nil
	}
	return conn, nil
}

// holdLead waits cfg.Grace holding the lock, then runs lead while conn
// answers, and returns why it stopped: ctx ended or the connection
// failed. It returns once lead has.
func (s *Store) holdLead(ctx context.Context, conn *pgx.Conn, cfg LeadConfig, lead func(ctx context.Context)) error {
	interval := cfg.Interval
	if err := sleep(ctx, cfg.Grace); err != nil {
		return err
	}
	pctx, pcancel := context.WithTimeout(ctx, max(interval, time.Second))
	err := conn.Ping(pctx)
	pcancel()
	if err != nil {
		return fmt.Errorf("the connection holding the leader lock failed: %w", err)
	}
	cfg.Logger.LogAttrs(ctx, slog.LevelInfo, "leading: this server runs the upkeep that must run once")
	if cfg.OnChange != nil {
		cfg.OnChange(true)
		defer cfg.OnChange(false)
	}
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		lead(lctx)
	}()
	defer func() { <-done }()
	defer cancel()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-done:
			// lead returned on its own: keep the lock until ctx ends, so
			// no other server runs it meanwhile.
			<-ctx.Done()
			return ctx.Err()
		case <-time.After(interval):
		}
		pctx, pcancel := context.WithTimeout(ctx, max(interval, time.Second))
		err := conn.Ping(pctx)
		pcancel()
		if err != nil {
			return fmt.Errorf("the leader's connection failed: %w", err)
		}
	}
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
