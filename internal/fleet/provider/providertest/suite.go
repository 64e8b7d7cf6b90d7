package providertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"slices"
	"testing"
	"time"

	"github.com/hangar-ci/hangar/internal/fleet/provider"
)

// Harness is what the suite needs of one provider, for one test.
type Harness struct {
	// Open returns a provider over the test's own state. Called again, it
	// returns a new value over the same state, as a restarted server
	// makes. It closes what it opens when the test ends.
	Open func() provider.Provider
	// Exists reports whether anything of the instance id is left on the
	// platform (a process, a container).
	Exists func(id string) bool
	// Kill ends the instance id abruptly, as a crash does.
	Kill func(id string)
}

// Limits the suite waits within.
const (
	registerWait = 20 * time.Second
	noticeWait   = 15 * time.Second
)

// Run runs the conformance suite: every test calls newHarness for a
// harness of its own, and the tests run in parallel.
func Run(t *testing.T, newHarness func(t *testing.T) Harness) {
	tests := []struct {
		name string
		f    func(t *testing.T, h Harness)
	}{
		{"CreateRegistersAgents", testCreate},
		{"DeleteIsGraceful", testDelete},
		{"AdoptAfterRestart", testAdopt},
		{"Interruptions", testInterruptions},
		{"CreateChecksSpec", testCreateChecksSpec},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.f(t, newHarness(t))
		})
	}
}

// fixture is one test's server, provider and owner.
type fixture struct {
	t     *testing.T
	h     Harness
	srv   *Server
	p     provider.Provider
	owner string
}

func newFixture(t *testing.T, h Harness) *fixture {
	t.Helper()
	f := &fixture{t: t, h: h, srv: StartServer(t), p: h.Open(), owner: NewOwner(t)}
	// Registered after the server, so it runs before the server stops.
	t.Cleanup(func() { f.deleteAll(f.owner) })
	return f
}

// NewOwner returns an owner no other test uses.
func NewOwner(t testing.TB) string {
	t.Helper()
	b := make([]byte, 4)
	rand.Read(b)
	return "test-" + hex.EncodeToString(b)
}

// deleteAll deletes every instance of owner.
func (f *fixture) deleteAll(owner string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	list, err := f.p.List(ctx, owner, "")
	if err != nil {
		f.t.Errorf("cleanup: list: %v", err)
		return
	}
	for _, in := range list {
		if err := f.p.Delete(ctx, in.ID); err != nil {
			f.t.Errorf("cleanup: delete %s: %v", in.ID, err)
		}
	}
}

func (f *fixture) spec(class string) provider.CreateSpec {
	return provider.CreateSpec{Owner: f.owner, Class: class, Server: f.srv.URL, RegistrationToken: AgentToken,
		Labels: []string{"linux", class}, Capacity: 2}
}

func (f *fixture) create(p provider.Provider, spec provider.CreateSpec, n int) []provider.Instance {
	f.t.Helper()
	ins, err := p.Create(context.Background(), spec, n)
	if err != nil {
		f.t.Fatalf("Create(%d): %v", n, err)
	}
	if len(ins) != n {
		f.t.Fatalf("Create(%d) returned %d instances", n, len(ins))
	}
	return ins
}

func (f *fixture) list(p provider.Provider, owner, class string) []provider.Instance {
	f.t.Helper()
	l, err := p.List(context.Background(), owner, class)
	if err != nil {
		f.t.Fatalf("List(%q, %q): %v", owner, class, err)
	}
	return l
}

func (f *fixture) delete(p provider.Provider, id string) {
	f.t.Helper()
	if err := p.Delete(context.Background(), id); err != nil {
		f.t.Fatalf("Delete(%s): %v", id, err)
	}
}

func ids(l []provider.Instance) []string {
	out := make([]string, len(l))
	for i, in := range l {
		out[i] = in.ID
	}
	slices.Sort(out)
	return out
}

// Create(2) starts two agents that register under the instances' names,
// with the spec's labels and capacity; List finds them by owner and class,
// and only them.
func testCreate(t *testing.T, h Harness) {
	f := newFixture(t, h)
	spec := f.spec("small")
	ins := f.create(f.p, spec, 2)
	if ins[0].ID == ins[1].ID || ins[0].Name == ins[1].Name {
		t.Fatalf("two instances share an ID or a name: %+v", ins)
	}
	for _, in := range ins {
		if in.Owner != f.owner || in.Class != "small" || in.Name == "" || in.CreatedAt.IsZero() {
			t.Errorf("created %+v: want owner %s, class small, a name and a creation time", in, f.owner)
		}
		a := f.srv.WaitAgent(t, in.Name, "active", registerWait)
		if !slices.Equal(a.Labels, spec.Labels) || a.Concurrency != spec.Capacity {
			t.Errorf("agent %s registered with labels %v and concurrency %d, want %v and %d",
				in.Name, a.Labels, a.Concurrency, spec.Labels, spec.Capacity)
		}
	}
	got := f.list(f.p, f.owner, "small")
	if !slices.Equal(ids(got), ids(ins)) {
		t.Fatalf("List(owner, small) = %v, want %v", ids(got), ids(ins))
	}
	for _, in := range got {
		i := slices.IndexFunc(ins, func(c provider.Instance) bool { return c.ID == in.ID })
		want := ins[i]
		if in.Name != want.Name || in.Owner != f.owner || in.Class != "small" || !in.CreatedAt.Equal(want.CreatedAt) {
			t.Errorf("List gives %+v, Create gave %+v", in, want)
		}
		if in.State != provider.StateRunning {
			t.Errorf("instance %s is %s once its agent registered, want running", in.ID, in.State)
		}
	}
	if got[1].CreatedAt.Before(got[0].CreatedAt) {
		t.Errorf("List is not ordered by creation: %+v", got)
	}
	if l := f.list(f.p, f.owner, ""); !slices.Equal(ids(l), ids(ins)) {
		t.Errorf("List(owner, \"\") = %v, want %v", ids(l), ids(ins))
	}
	if l := f.list(f.p, f.owner, "large"); len(l) != 0 {
		t.Errorf("List(owner, large) = %v, want none", ids(l))
	}
	if l := f.list(f.p, "other-"+f.owner, ""); len(l) != 0 {
		t.Errorf("List(another owner) = %v, want none", ids(l))
	}
}

// Delete stops the agent gracefully (it deregisters) and leaves nothing;
// deleting again, or deleting an instance that never was, is fine.
func testDelete(t *testing.T, h Harness) {
	f := newFixture(t, h)
	ins := f.create(f.p, f.spec("small"), 2)
	for _, in := range ins {
		f.srv.WaitAgent(t, in.Name, "active", registerWait)
	}
	gone, kept := ins[0], ins[1]
	f.delete(f.p, gone.ID)
	// The agent deregistered before its process ended, so before Delete
	// returned: it was stopped gracefully.
	if a, _ := f.srv.Agent(t, gone.Name); a.Status != "gone" {
		t.Errorf("agent %s is %q once Delete has returned, want gone (deregistered)", gone.Name, a.Status)
	}
	if h.Exists(gone.ID) {
		t.Errorf("instance %s is still there after Delete", gone.ID)
	}
	if l := f.list(f.p, f.owner, ""); !slices.Equal(ids(l), []string{kept.ID}) {
		t.Errorf("List after Delete = %v, want [%s]", ids(l), kept.ID)
	}
	if a, _ := f.srv.Agent(t, kept.Name); a.Status != "active" {
		t.Errorf("the other agent, %s, is %s, want active", kept.Name, a.Status)
	}
	f.delete(f.p, gone.ID)
	f.delete(f.p, "00000000deadbeef")
}

// A new provider value over the same state (a restarted server) lists the
// instances created before, and deletes them.
func testAdopt(t *testing.T, h Harness) {
	f := newFixture(t, h)
	ins := f.create(f.p, f.spec("small"), 2)
	for _, in := range ins {
		f.srv.WaitAgent(t, in.Name, "active", registerWait)
	}
	restarted := h.Open()
	f.p = restarted
	got := f.list(restarted, f.owner, "")
	if !slices.Equal(ids(got), ids(ins)) {
		t.Fatalf("restarted List = %v, want %v", ids(got), ids(ins))
	}
	for i, in := range got {
		if in.Name != ins[i].Name || !in.CreatedAt.Equal(ins[i].CreatedAt) || in.State != provider.StateRunning {
			t.Errorf("restarted List gives %+v, want %+v running", in, ins[i])
		}
	}
	f.delete(restarted, ins[0].ID)
	if a, _ := f.srv.Agent(t, ins[0].Name); a.Status != "gone" {
		t.Errorf("agent %s is %q after Delete by the restarted provider, want gone", ins[0].Name, a.Status)
	}
	if h.Exists(ins[0].ID) {
		t.Errorf("instance %s is still there after Delete", ins[0].ID)
	}
	if l := f.list(restarted, f.owner, ""); !slices.Equal(ids(l), []string{ins[1].ID}) {
		t.Errorf("List after Delete = %v, want [%s]", ids(l), ins[1].ID)
	}
}

// An instance killed from outside is reported, with its owner, class and
// name; one deleted, or another owner's, is not.
func testInterruptions(t *testing.T, h Harness) {
	f := newFixture(t, h)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	notices := f.p.Interruptions(ctx, f.owner)
	if notices == nil {
		t.Skip("the provider has no interruptions")
	}
	ins := f.create(f.p, f.spec("small"), 2)
	other := f.spec("small")
	other.Owner = NewOwner(t)
	t.Cleanup(func() { f.deleteAll(other.Owner) })
	theirs := f.create(f.p, other, 1)[0]
	for _, in := range append(ins, theirs) {
		f.srv.WaitAgent(t, in.Name, "active", registerWait)
	}
	deleted, killed := ins[0], ins[1]
	f.delete(f.p, deleted.ID)
	h.Kill(theirs.ID)
	h.Kill(killed.ID)
	select {
	case n := <-notices:
		if n.ID != killed.ID || n.Owner != f.owner || n.Class != "small" || n.Name != killed.Name ||
			n.Kind != provider.InterruptionGone || n.Reason == "" || n.At.IsZero() {
			t.Errorf("notice %+v, want one of kind gone about %s (%s), with a reason", n, killed.ID, killed.Name)
		}
	case <-time.After(noticeWait):
		t.Fatalf("no notice %v after the instance was killed", noticeWait)
	}
	if l := f.list(f.p, f.owner, ""); len(l) != 1 || l[0].ID != killed.ID || l[0].State != provider.StateStopped {
		t.Errorf("List after the kill = %+v, want %s stopped", l, killed.ID)
	}
	select {
	case n := <-notices:
		t.Errorf("a second notice: %+v", n)
	case <-time.After(500 * time.Millisecond):
	}
	cancel()
	for range notices {
	}
}

// Create refuses a spec that misses what the agent needs, and then leaves
// nothing; creating none is fine.
func testCreateChecksSpec(t *testing.T, h Harness) {
	f := newFixture(t, h)
	bad := f.spec("small")
	bad.Server = ""
	if ins, err := f.p.Create(context.Background(), bad, 1); err == nil || len(ins) != 0 {
		t.Errorf("Create without a server = %v, %v; want an error", ins, err)
	}
	if ins, err := f.p.Create(context.Background(), f.spec("small"), -1); err == nil || len(ins) != 0 {
		t.Errorf("Create(-1) = %v, %v; want an error", ins, err)
	}
	if ins, err := f.p.Create(context.Background(), f.spec("small"), 0); err != nil || len(ins) != 0 {
		t.Errorf("Create(0) = %v, %v; want nothing and no error", ins, err)
	}
	if l := f.list(f.p, f.owner, ""); len(l) != 0 {
		t.Errorf("List = %v, want none", ids(l))
	}
	if _, err := f.p.List(context.Background(), "", ""); err == nil {
		t.Error("List without an owner: no error")
	}
}
