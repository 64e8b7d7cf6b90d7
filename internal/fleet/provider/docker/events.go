package docker

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"

	"github.com/hangar-ci/hangar/internal/fleet/provider"
)

// Interruptions follows the engine's events about owner's containers and
// reports each one that dies without Delete having been asked of this
// provider value (another provider value's Delete, say another server's,
// looks like an interruption here). A container killed for want of
// memory is reported as such. When the stream breaks (the engine
// restarted), it is opened again from the last event seen, so nothing is
// missed in between. The stream is open when Interruptions returns.
func (p *Provider) Interruptions(ctx context.Context, owner string) <-chan provider.Interruption {
	ch := make(chan provider.Interruption)
	w := &watcher{p: p, owner: owner, ch: ch, oom: map[string]bool{}, reported: map[string]time.Time{},
		since: time.Now()}
	first := w.open(ctx)
	go w.run(ctx, first)
	return ch
}

// watcher is one Interruptions stream.
type watcher struct {
	p     *Provider
	owner string
	ch    chan<- provider.Interruption
	// since is the time of the last event seen (or of the start): where a
	// reopened stream starts.
	since    time.Time
	oom      map[string]bool      // containers the kernel OOM-killed, until they die
	reported map[string]time.Time // containers reported, lest an event replayed after a reopening be reported twice
}

func (w *watcher) open(ctx context.Context) client.EventsResult {
	f := client.Filters{}.Add("type", string(events.ContainerEventType)).
		Add("event", string(events.ActionDie), string(events.ActionOOM)).
		Add("label", provider.OwnerLabel+"="+w.owner)
	return w.p.client.Events(ctx, client.EventsListOptions{Filters: f,
		Since: fmt.Sprintf("%d.%09d", w.since.Unix(), w.since.Nanosecond())})
}

func (w *watcher) run(ctx context.Context, stream client.EventsResult) {
	defer close(w.ch)
	wait := 100 * time.Millisecond
	for {
		err := w.follow(ctx, stream)
		if ctx.Err() != nil {
			return
		}
		w.p.log.Warn("engine event stream lost; opening it again", slog.String("error", err.Error()), slog.Duration("in", wait))
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, 10*time.Second)
		stream = w.open(ctx)
	}
}

// follow handles the events of stream until it ends, and returns why.
func (w *watcher) follow(ctx context.Context, stream client.EventsResult) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-stream.Err:
			if err == nil {
				err = fmt.Errorf("the stream ended")
			}
			return err
		case m := <-stream.Messages:
			if m.TimeNano > 0 {
				w.since = time.Unix(0, m.TimeNano)
			}
			n, ok := w.notice(m)
			if !ok {
				continue
			}
			select {
			case w.ch <- n:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
}

// notice returns the interruption an event means, if any.
func (w *watcher) notice(m events.Message) (provider.Interruption, bool) {
	id := m.Actor.ID
	switch m.Action {
	case events.ActionOOM:
		w.oom[id] = true
		return provider.Interruption{}, false
	case events.ActionDie:
	default:
		return provider.Interruption{}, false
	}
	oom := w.oom[id]
	delete(w.oom, id)
	if w.p.isDeleting(id) {
		return provider.Interruption{}, false
	}
	now := time.Now()
	for k, at := range w.reported {
		if now.Sub(at) > deletingMemory {
			delete(w.reported, k)
		}
	}
	if _, ok := w.reported[id]; ok {
		return provider.Interruption{}, false
	}
	w.reported[id] = now
	a := m.Actor.Attributes
	reason := "exited with code " + a["exitCode"]
	if oom && a["exitCode"] == "137" { // the agent was killed, not only a process of a job
		reason = "killed: out of memory"
	}
	return provider.Interruption{ID: id, Owner: a[provider.OwnerLabel], Class: a[provider.ClassLabel], Name: a[provider.InstanceLabel],
		Kind: provider.InterruptionGone, Reason: reason, At: w.p.cfg.Now()}, true
}
