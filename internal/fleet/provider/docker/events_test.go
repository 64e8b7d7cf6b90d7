package docker

import (
	"testing"
	"time"

	"github.com/moby/moby/api/types/events"

	"github.com/hangar-ci/hangar/internal/fleet/provider"
)

// Which engine events make notices, and what they say.
func TestNotice(t *testing.T) {
	t.Parallel()
	p, err := New(Config{Image: "i", Now: func() time.Time { return time.Unix(100, 0) }})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	w := &watcher{p: p, owner: "o", oom: map[string]bool{}, reported: map[string]time.Time{}}
	event := func(id string, action events.Action, exit string) events.Message {
		return events.Message{Type: events.ContainerEventType, Action: action, Actor: events.Actor{ID: id,
			Attributes: map[string]string{provider.OwnerLabel: "o", provider.ClassLabel: "c", provider.InstanceLabel: "o-c-" + id, "exitCode": exit}}}
	}
	p.markDeleting("deleted")
	for _, tc := range []struct {
		m      events.Message
		reason string // "" for no notice
	}{
		{event("a", events.ActionDie, "1"), "exited with code 1"},
		{event("a", events.ActionDie, "1"), ""}, // replayed after a reopening
		{event("b", events.ActionOOM, ""), ""},
		{event("b", events.ActionDie, "137"), "killed: out of memory"},
		{event("c", events.ActionOOM, ""), ""}, // a job's process, not the agent
		{event("c", events.ActionDie, "0"), "exited with code 0"},
		{event("deleted", events.ActionDie, "0"), ""},
		{event("d", events.ActionStart, ""), ""},
	} {
		n, ok := w.notice(tc.m)
		switch {
		case ok != (tc.reason != ""):
			t.Errorf("%s %s: notice %v, want one: %v", tc.m.Actor.ID, tc.m.Action, ok, tc.reason != "")
		case ok && n != (provider.Interruption{ID: tc.m.Actor.ID, Owner: "o", Class: "c", Name: "o-c-" + tc.m.Actor.ID,
			Kind: provider.InterruptionGone, Reason: tc.reason, At: time.Unix(100, 0)}):
			t.Errorf("%s %s: notice %+v, want reason %q", tc.m.Actor.ID, tc.m.Action, n, tc.reason)
		}
	}
}
