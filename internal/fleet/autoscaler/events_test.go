package autoscaler

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hangar-ci/hangar/internal/fleet"
	"github.com/hangar-ci/hangar/internal/fleet/provider"
	"github.com/hangar-ci/hangar/internal/store"
	"github.com/hangar-ci/hangar/internal/store/sqlite"
)

// now is the tests' clock: microsecond precision, as the store keeps
// times, and not in UTC, to check that the store keeps instants.
var now = time.Date(2025, 3, 14, 15, 9, 26, 535897000, time.FixedZone("UTC+5:30", 5*3600+30*60))

// nopScheduler is a Scheduler that does nothing.
type nopScheduler struct{}

func (nopScheduler) DrainAgent(context.Context, int64) (int, error)    { return 0, nil }
func (nopScheduler) DeregisterTo(context.Context, int64, string) error { return nil }
func (nopScheduler) FailPending(context.Context, int64, string) error  { return nil }

// fakeProvider keeps its instances in memory; they never register.
type fakeProvider struct {
	mu    sync.Mutex
	insts []provider.Instance
}

func (p *fakeProvider) Create(_ context.Context, spec provider.CreateSpec, n int) ([]provider.Instance, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []provider.Instance
	for range n {
		in := provider.Instance{ID: fmt.Sprint("id-", len(p.insts)), Owner: spec.Owner, Class: spec.Class,
			Name: fmt.Sprintf("%s-%d", spec.Class, len(p.insts)), CreatedAt: now, State: provider.StatePending}
		p.insts = append(p.insts, in)
		out = append(out, in)
	}
	return out, nil
}

func (p *fakeProvider) Delete(_ context.Context, id string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.insts = slices.DeleteFunc(p.insts, func(in provider.Instance) bool { return in.ID == id })
	return nil
}

func (p *fakeProvider) List(_ context.Context, owner, class string) ([]provider.Instance, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []provider.Instance
	for _, in := range p.insts {
		if in.Owner == owner && (class == "" || in.Class == class) {
			out = append(out, in)
		}
	}
	return out, nil
}

func (p *fakeProvider) Interruptions(context.Context, string) <-chan provider.Interruption {
	return nil
}

// newTestAutoscaler returns an autoscaler of the fleet in yml (its classes'
// provider is p), on a new sqlite store, logging to log.
func newTestAutoscaler(t *testing.T, yml string, p provider.Provider, log *bytes.Buffer) (*Autoscaler, *sqlite.Store) {
	t.Helper()
	cfg, err := fleet.Load("hangar.yml", []byte(yml))
	if err != nil {
		t.Fatalf("load the fleet: %v", err)
	}
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "hangar.db"))
	if err != nil {
		t.Fatalf("open the store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	providers := map[string]provider.Provider{}
	for _, c := range cfg.Classes {
		providers[c.Name] = p
	}
	a, err := New(Config{Fleet: cfg, Providers: providers, Store: st, Scheduler: nopScheduler{},
		Server: "http://hangar.test", RegistrationToken: "token", Logger: slog.New(slog.NewTextHandler(log, nil)),
		Now: func() time.Time { return now }})
	if err != nil {
		t.Fatalf("new autoscaler: %v", err)
	}
	return a, st
}

// storedEvents returns every fleet event in s.
func storedEvents(t *testing.T, s store.Store) []*store.FleetEvent {
	t.Helper()
	var es []*store.FleetEvent
	err := s.Read(context.Background(), func(tx store.Tx) error {
		var err error
		es, err = tx.FleetEvents().List(context.Background(), time.Time{}, 0)
		return err
	})
	if err != nil {
		t.Fatalf("list the stored events: %v", err)
	}
	return es
}

// checkStored checks that s holds want, in order, as recorded.
func checkStored(t *testing.T, s store.Store, want []Event) {
	t.Helper()
	got := storedEvents(t, s)
	if len(got) != len(want) {
		t.Fatalf("the store holds %d events, want %d: %v", len(got), len(want), got)
	}
	for i, e := range got {
		w := want[i]
		if e.ID == 0 || !e.At.Equal(w.At) || e.Class != w.Class || e.Instance != w.Instance || e.Kind != w.Kind || e.Reason != w.Reason {
			t.Errorf("stored event %d: %+v, want %+v", i, *e, w)
		}
	}
}

func TestRecordStoresEvents(t *testing.T) {
	for _, tc := range []struct {
		name string
		ev   Event
		want Event // as stored
	}{
		{"with a time and a reason",
			Event{At: now.Add(-time.Minute), Class: "small", Instance: "small-1", Kind: "boot_failed",
				Reason: "its agent did not register within 1m0s"},
			Event{At: now.Add(-time.Minute), Class: "small", Instance: "small-1", Kind: "boot_failed",
				Reason: "its agent did not register within 1m0s"}},
		{"at now when it has no time",
			Event{Class: "big", Instance: "big-ünï", Kind: "created"},
			Event{At: now, Class: "big", Instance: "big-ünï", Kind: "created"}},
		{"nanoseconds are dropped",
			Event{At: now.Add(999 * time.Nanosecond), Class: "small", Instance: "small-2", Kind: "lost", Reason: "its instance stopped"},
			Event{At: now, Class: "small", Instance: "small-2", Kind: "lost", Reason: "its instance stopped"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var log bytes.Buffer
			a, st := newTestAutoscaler(t, "", &fakeProvider{}, &log)
			a.record(tc.ev)
			checkStored(t, st, []Event{tc.want})
			if got := a.Events(); len(got) != 1 || got[0].Kind != tc.ev.Kind {
				t.Errorf("Events() = %v, want the event recorded", got)
			}
			if strings.Contains(log.String(), "level=WARN") {
				t.Errorf("record logged a warning:\n%s", log.String())
			}
		})
	}
}

// TestReconcileStoresEvents: the events of a pass (here, a warm instance
// created) land in the store, as the API's list holds them.
func TestReconcileStoresEvents(t *testing.T) {
	const yml = `
fleet:
  installation: test
  classes:
    - name: small
      labels: [linux]
      provider: local
      max_instances: 2
      idle_count: 1
`
	var log bytes.Buffer
	p := &fakeProvider{}
	a, st := newTestAutoscaler(t, yml, p, &log)
	if err := a.Reconcile(context.Background()); err != nil {
		t.Fatalf("reconcile: %v", err)
	}
	events := a.Events()
	if len(events) != 1 || events[0].Kind != "created" || events[0].Class != "small" {
		t.Fatalf("events after a pass: %v, want one instance of small created", events)
	}
	checkStored(t, st, events)
}

// TestRecordStoreFails: an event the store refuses is logged, and kept
// for the API all the same.
func TestRecordStoreFails(t *testing.T) {
	var log bytes.Buffer
	a, st := newTestAutoscaler(t, "", &fakeProvider{}, &log)
	st.Close()
	ev := Event{Class: "small", Instance: "small-1", Kind: "deleted", Reason: "idle"}
	a.record(ev)
	if got := a.Events(); len(got) != 1 || got[0].Instance != ev.Instance {
		t.Errorf("Events() = %v, want the event recorded", got)
	}
	if out := log.String(); !strings.Contains(out, "level=WARN") || !strings.Contains(out, "small-1") {
		t.Errorf("the log holds no warning naming the instance:\n%s", out)
	}
}
