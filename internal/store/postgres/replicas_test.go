package postgres_test

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hangar-ci/hangar/internal/store/postgres"
	"github.com/hangar-ci/hangar/internal/store/postgres/pgtest"
)

// openN opens n stores on one new database: n servers sharing it.
func openN(t *testing.T, n int) ([]*postgres.Store, string) {
	t.Helper()
	u := pgtest.NewDatabase(t, 4)
	stores := make([]*postgres.Store, n)
	for i := range stores {
		s, err := postgres.Open(context.Background(), u)
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
		t.Cleanup(func() { s.Close() })
		stores[i] = s
	}
	return stores, u
}

// leaders runs Lead on every store and records which of them lead.
type leaders struct {
	mu      sync.Mutex
	leading map[int]bool
	// overlap is set when two ran lead at once.
	overlap atomic.Bool
}

func (l *leaders) current() []int {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []int
	for i, ok := range l.leading {
		if ok {
			out = append(out, i)
		}
	}
	slices.Sort(out)
	return out
}

func (l *leaders) lead(i int) func(context.Context) {
	return func(ctx context.Context) {
		l.mu.Lock()
		for j, ok := range l.leading {
			if ok && j != i {
				l.overlap.Store(true)
			}
		}
		l.leading[i] = true
		l.mu.Unlock()
		<-ctx.Done()
		l.mu.Lock()
		l.leading[i] = false
		l.mu.Unlock()
	}
}

// waitFor polls cond for up to limit.
func waitFor(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestLead runs three servers' elections on one database: one leads;
// when it stops, another takes over; when the leader's session is killed
// on the database, as when its process dies, it stops leading and another
// takes over. Never do two lead at once.
func TestLead(t *testing.T) {
	t.Parallel()
	stores, u := openN(t, 3)
	l := &leaders{leading: map[int]bool{}}
	cfg := postgres.LeadConfig{Interval: 50 * time.Millisecond}
	cancels := make([]context.CancelFunc, len(stores))
	var wg sync.WaitGroup
	for i, s := range stores {
		ctx, cancel := context.WithCancel(context.Background())
		cancels[i] = cancel
		wg.Go(func() { s.Lead(ctx, cfg, l.lead(i)) })
	}
	t.Cleanup(func() {
		for _, c := range cancels {
			c()
		}
		wg.Wait()
	})
	one := func() bool { return len(l.current()) == 1 }
	waitFor(t, "a leader", 5*time.Second, one)
	first := l.current()[0]

	// The leader shuts down: another leads.
	cancels[first]()
	waitFor(t, "a second leader", 5*time.Second, func() bool { return one() && l.current()[0] != first })
	second := l.current()[0]

	// The database ends the leader's session (its process died, its
	// connection broke): the lock goes with it, and so does the lead.
	admin, err := pgxpool.New(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	var killed int
	if err := admin.QueryRow(context.Background(), `SELECT count(pg_terminate_backend(pid)) FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&killed); err != nil {
		t.Fatal(err)
	}
	if killed != 1 {
		t.Fatalf("terminated %d sessions holding advisory locks, want the leader's", killed)
	}
	waitFor(t, "a third leader", 5*time.Second, func() bool {
		c := l.current()
		return len(c) == 1 && c[0] != second && c[0] != first
	})
	if l.overlap.Load() {
		t.Errorf("two servers led at once")
	}
}

// TestBus sends changes from one server to two others over LISTEN/NOTIFY:
// they hear them, merged; the sender does not hear its own.
func TestBus(t *testing.T) {
	t.Parallel()
	stores, _ := openN(t, 3)
	type heard struct {
		mu      sync.Mutex
		pending bool
		ids     map[int64]bool
	}
	hs := make([]*heard, len(stores))
	buses := make([]*postgres.Bus, len(stores))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	for i, s := range stores {
		h := &heard{ids: map[int64]bool{}}
		hs[i] = h
		buses[i] = s.NewBus(nil)
		wg.Go(func() {
			buses[i].Run(ctx, func(c postgres.Change) {
				h.mu.Lock()
				defer h.mu.Unlock()
				h.pending = h.pending || c.Pending
				for _, id := range c.Pipelines {
					h.ids[id] = true
				}
			}, func() {})
		})
	}
	has := func(h *heard, pending bool, ids ...int64) bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.pending != pending || len(h.ids) != len(ids) {
			return false
		}
		for _, id := range ids {
			if !h.ids[id] {
				return false
			}
		}
		return true
	}
	// LISTEN takes a moment; publish until the listeners hear.
	want := []int64{7, 8}
	waitFor(t, "the other servers to hear the changes", 10*time.Second, func() bool {
		buses[0].Publish(7, false)
		buses[0].Publish(8, true)
		return has(hs[1], true, want...) && has(hs[2], true, want...)
	})
	// Many pipelines at once span several notifications.
	var many []int64
	for id := int64(1000); id < 3000; id++ {
		buses[2].Publish(id, false)
		many = append(many, id)
	}
	waitFor(t, "2,000 pipelines to be heard", 10*time.Second, func() bool {
		return has(hs[1], true, append(slices.Clone(want), many...)...)
	})
	if !has(hs[0], false, many...) {
		hs[0].mu.Lock()
		t.Errorf("server 0 heard pending=%v and %d pipelines, want only server 2's 2,000 (not its own)", hs[0].pending, len(hs[0].ids))
		hs[0].mu.Unlock()
	}
}
