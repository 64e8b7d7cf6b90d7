package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hangar-ci/hangar/internal/store"
)

func fleetEventID(e *store.FleetEvent) int64 { return e.ID }

// appendEvents appends es in one update.
func appendEvents(t *testing.T, s store.Store, es ...*store.FleetEvent) {
	t.Helper()
	update(t, s, func(tx store.Tx) error {
		for _, e := range es {
			if err := tx.FleetEvents().Append(context.Background(), e); err != nil {
				return err
			}
		}
		return nil
	})
}

// listEvents lists the events at or after since, at most limit.
func listEvents(t *testing.T, s store.Store, since time.Time, limit int) []*store.FleetEvent {
	t.Helper()
	var es []*store.FleetEvent
	read(t, s, func(tx store.Tx) error {
		var err error
		es, err = tx.FleetEvents().List(context.Background(), since, limit)
		return err
	})
	return es
}

func testFleetEvents(t *testing.T, open opener) {
	t.Run("RoundTrip", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		full := &store.FleetEvent{At: at(time.Second).In(elsewhere), Class: "small: [linux]", Instance: "hangar-small-ünï-1",
			Kind: "boot_failed", Reason: "its agent did not register within 1m0s"}
		bare := &store.FleetEvent{At: at(2 * time.Second), Class: "small", Instance: "hangar-small-2", Kind: "created"}
		appendEvents(t, s, full, bare)
		if full.ID == 0 || bare.ID <= full.ID {
			t.Fatalf("event IDs %d, %d: want non-zero and increasing", full.ID, bare.ID)
		}
		got := listEvents(t, s, time.Time{}, 0)
		if len(got) != 2 {
			t.Fatalf("List: %d events, want 2", len(got))
		}
		equal(t, "events", []*store.FleetEvent{full, bare}, got)
	})

	t.Run("Empty", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ctx := context.Background()
		read(t, s, func(tx store.Tx) error {
			for _, limit := range []int{0, 10} {
				es, err := tx.FleetEvents().List(ctx, time.Time{}, limit)
				if err != nil {
					return err
				}
				if len(es) != 0 {
					t.Errorf("List(limit %d) of no events: %d events", limit, len(es))
				}
			}
			return nil
		})
		update(t, s, func(tx store.Tx) error {
			n, err := tx.FleetEvents().DeleteBefore(ctx, at(time.Hour))
			if err == nil && n != 0 {
				t.Errorf("DeleteBefore of no events: %d deleted", n)
			}
			return err
		})
	})

	t.Run("List", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		// Appended out of time order; two pairs share their time, so the
		// ID orders them.
		e3 := &store.FleetEvent{At: at(3 * time.Second), Class: "c", Instance: "i3", Kind: "ready"}
		e1 := &store.FleetEvent{At: at(time.Second), Class: "c", Instance: "i1", Kind: "created"}
		e2a := &store.FleetEvent{At: at(2 * time.Second), Class: "c", Instance: "i2a", Kind: "created"}
		e2b := &store.FleetEvent{At: at(2 * time.Second), Class: "c", Instance: "i2b", Kind: "created"}
		e4a := &store.FleetEvent{At: at(4 * time.Second), Class: "c", Instance: "i4a", Kind: "draining"}
		e0 := &store.FleetEvent{At: at(0), Class: "c", Instance: "i0", Kind: "adopted"}
		e4b := &store.FleetEvent{At: at(4 * time.Second), Class: "c", Instance: "i4b", Kind: "deleted"}
		appendEvents(t, s, e3, e1, e2a, e2b, e4a, e0, e4b)
		all := []*store.FleetEvent{e0, e1, e2a, e2b, e3, e4a, e4b}
		for _, tc := range []struct {
			name  string
			since time.Time
			limit int
			want  []*store.FleetEvent
		}{
			{"all", time.Time{}, 0, all},
			{"negative limit", time.Time{}, -1, all},
			{"limit above the count", time.Time{}, 100, all},
			{"limit equal to the count", time.Time{}, 7, all},
			{"limit: the newest", time.Time{}, 3, []*store.FleetEvent{e3, e4a, e4b}},
			{"limit splits a tie", time.Time{}, 4, []*store.FleetEvent{e2b, e3, e4a, e4b}},
			{"limit 1", time.Time{}, 1, []*store.FleetEvent{e4b}},
			{"since is inclusive", at(2 * time.Second), 0, []*store.FleetEvent{e2a, e2b, e3, e4a, e4b}},
			{"since in another zone", at(2 * time.Second).In(elsewhere), 0, []*store.FleetEvent{e2a, e2b, e3, e4a, e4b}},
			{"since between", at(2*time.Second + time.Microsecond), 0, []*store.FleetEvent{e3, e4a, e4b}},
			{"since and limit", at(time.Second), 2, []*store.FleetEvent{e4a, e4b}},
			{"since, limit above the range", at(3 * time.Second), 5, []*store.FleetEvent{e3, e4a, e4b}},
			{"since after all", at(time.Hour), 0, nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				got := listEvents(t, s, tc.since, tc.limit)
				equalIDs(t, fmt.Sprintf("List(%v, %d)", tc.since, tc.limit), ids(tc.want, fleetEventID), ids(got, fleetEventID))
				if len(got) == len(tc.want) {
					equal(t, "events", tc.want, got)
				}
			})
		}
	})

	t.Run("DeleteBefore", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ctx := context.Background()
		var es []*store.FleetEvent
		for i := range 5 {
			es = append(es, &store.FleetEvent{At: at(time.Duration(i) * time.Minute), Class: "c",
				Instance: fmt.Sprint("i", i), Kind: "created"})
		}
		appendEvents(t, s, es...)
		for _, tc := range []struct {
			before time.Time
			n      int
			left   []*store.FleetEvent
		}{
			{time.Time{}, 0, es},             // nothing is before the zero time
			{at(-time.Hour), 0, es},          // nor before the first
			{at(2 * time.Minute), 2, es[2:]}, // an event at t stays
			{at(2 * time.Minute), 0, es[2:]}, // again: nothing more
			{at(4*time.Minute + time.Microsecond).In(elsewhere), 3, nil},
		} {
			var n int
			update(t, s, func(tx store.Tx) error {
				var err error
				n, err = tx.FleetEvents().DeleteBefore(ctx, tc.before)
				return err
			})
			if n != tc.n {
				t.Errorf("DeleteBefore(%v) = %d, want %d", tc.before, n, tc.n)
			}
			got := listEvents(t, s, time.Time{}, 0)
			equalIDs(t, fmt.Sprintf("events after DeleteBefore(%v)", tc.before), ids(tc.left, fleetEventID), ids(got, fleetEventID))
		}
	})
}
