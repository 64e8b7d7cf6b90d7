package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// busChannel is the LISTEN/NOTIFY channel of the Bus.
const busChannel = "hangar_changes"

// maxPayload bounds a notification's payload, below PostgreSQL's 8,000
// bytes.
const maxPayload = 7000

// Bus carries wake-ups between the servers sharing a database, over one
// LISTEN/NOTIFY channel: what changed (a pipeline's jobs or logs, jobs
// became pending) so that long-polls and log followers waiting on any
// server wake at once, whichever server made the change.
//
// Publish never blocks: changes published while a notification is being
// sent are merged into the next one. A notification names the server
// that sent it, so a server does not hear its own. A wake-up is only a
// hint to look at the store again, so one lost with a connection costs
// nothing but time: after reconnecting, the listener reports that it may
// have missed some, and the receiver wakes everyone.
type Bus struct {
	store *Store
	id    string
	log   *slog.Logger

	mu        sync.Mutex
	pending   bool
	pipelines map[int64]struct{}
	kick      chan struct{}
}

// Change is what a notification says changed.
type Change struct {
	// Pending: jobs may have become claimable.
	Pending bool
	// Pipelines whose jobs or logs changed.
	Pipelines []int64
}

// NewBus returns a Bus over the store's database; Run makes it work.
func (s *Store) NewBus(log *slog.Logger) *Bus {
	b := make([]byte, 6)
	rand.Read(b)
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Bus{store: s, id: hex.EncodeToString(b), log: log, pipelines: map[int64]struct{}{},
		kick: make(chan struct{}, 1)}
}

// Publish tells the other servers that jobs became pending (pending) or
// that the pipeline's jobs or logs changed (pipelineID > 0). It returns
// at once.
func (b *Bus) Publish(pipelineID int64, pending bool) {
	b.mu.Lock()
	b.pending = b.pending || pending
	if pipelineID > 0 {
		b.pipelines[pipelineID] = struct{}{}
	}
	b.mu.Unlock()
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// Run sends what is published and delivers what other servers send until
// ctx ends. deliver is called for every change heard, one call at a
// time; missed is called when the listening connection was lost and
// made again, since changes may have gone unheard in between.
func (b *Bus) Run(ctx context.Context, deliver func(Change), missed func()) {
	var wg sync.WaitGroup
	wg.Go(func() { b.send(ctx) })
	wg.Go(func() { b.listen(ctx, deliver, missed) })
	wg.Wait()
}

// send turns what is published into notifications.
func (b *Bus) send(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-b.kick:
		}
		b.mu.Lock()
		c := Change{Pending: b.pending}
		for id := range b.pipelines {
			c.Pipelines = append(c.Pipelines, id)
		}
		b.pending = false
		clear(b.pipelines)
		b.mu.Unlock()
		if !c.Pending && len(c.Pipelines) == 0 {
			continue
		}
		for _, p := range encodeChange(b.id, c) {
			if _, err := b.store.pool.Exec(ctx, `SELECT pg_notify($1, $2)`, busChannel, p); err != nil && ctx.Err() == nil {
				// The others will notice later (their long-polls time out
				// and look again); nothing is lost but time.
				b.log.LogAttrs(ctx, slog.LevelWarn, "notify the other servers", slog.String("error", err.Error()))
			}
		}
	}
}

// listen delivers the notifications of other servers, reconnecting when
// its connection fails.
func (b *Bus) listen(ctx context.Context, deliver func(Change), missed func()) {
	for attempt := 0; ctx.Err() == nil; attempt++ {
		err := b.listenOnce(ctx, deliver, func() {
			if attempt > 0 {
				missed()
			}
		})
		if ctx.Err() != nil {
			return
		}
		b.log.LogAttrs(ctx, slog.LevelWarn, "listen for the other servers' changes", slog.String("error", err.Error()))
		if sleep(ctx, time.Second) != nil {
			return
		}
	}
}

// listenOnce listens on one connection until it fails; listening is
// called once the connection listens.
func (b *Bus) listenOnce(ctx context.Context, deliver func(Change), listening func()) error {
	conn, err := pgx.ConnectConfig(ctx, b.store.pool.Config().ConnConfig.Copy())
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+busChannel); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	listening()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return fmt.Errorf("wait for a notification: %w", err)
		}
		from, c, err := decodeChange(n.Payload)
		if err != nil {
			b.log.LogAttrs(ctx, slog.LevelWarn, "a notification that does not parse", slog.String("payload", n.Payload), slog.String("error", err.Error()))
			continue
		}
		if from != b.id {
			deliver(c)
		}
	}
}

// encodeChange writes c as notification payloads of at most maxPayload
// bytes: "SENDER P|- ID,ID,…".
func encodeChange(sender string, c Change) []string {
	flag := "-"
	if c.Pending {
		flag = "P"
	}
	head := sender + " " + flag + " "
	var out []string
	var sb strings.Builder
	sb.WriteString(head)
	n := 0
	for _, id := range c.Pipelines {
		s := strconv.FormatInt(id, 10)
		if sb.Len()+len(s)+1 > maxPayload {
			out = append(out, sb.String())
			sb.Reset()
			sb.WriteString(head)
			n = 0
		}
		if n > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(s)
		n++
	}
	return append(out, sb.String())
}

// decodeChange parses a payload of encodeChange.
func decodeChange(p string) (sender string, c Change, err error) {
	parts := strings.SplitN(p, " ", 3)
	if len(parts) != 3 || (parts[1] != "P" && parts[1] != "-") {
		return "", c, fmt.Errorf("want SENDER P|- IDS, got %q", p)
	}
	c.Pending = parts[1] == "P"
	if parts[2] != "" {
		for f := range strings.SplitSeq(parts[2], ",") {
			id, err := strconv.ParseInt(f, 10, 64)
			if err != nil {
				return "", c, fmt.Errorf("pipeline ID %q: %w", f, err)
			}
			c.Pipelines = append(c.Pipelines, id)
		}
	}
	slices.Sort(c.Pipelines)
	return parts[0], c, nil
}
