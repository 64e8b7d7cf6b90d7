package server_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hangar-ci/hangar/internal/api"
	"github.com/hangar-ci/hangar/internal/scheduler"
	"github.com/hangar-ci/hangar/internal/server"
	"github.com/hangar-ci/hangar/internal/source"
	"github.com/hangar-ci/hangar/internal/store/postgres"
	"github.com/hangar-ci/hangar/internal/store/postgres/pgtest"
)

// replica is one server of several sharing a PostgreSQL database.
type replica struct {
	url   string
	sched *scheduler.Scheduler
}

// newReplicas starts n servers on loopback sockets, each with its own
// store (connection pool) on one new database and a bus between them, as
// n hangar server processes would run. The first runs the upkeep.
func newReplicas(b *testing.B, n int, lease time.Duration) []replica {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	u := pgtest.NewDatabase(b, 0)
	dir := b.TempDir()
	blobs, err := source.NewBlobs(filepath.Join(dir, "sources"))
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	var closers []func()
	b.Cleanup(func() {
		cancel()
		wg.Wait()
		for _, c := range closers {
			c()
		}
	})
	out := make([]replica, n)
	for i := range out {
		st, err := postgres.Open(ctx, u)
		if err != nil {
			b.Fatal(err)
		}
		bus := st.NewBus(nil)
		sched := scheduler.New(st, scheduler.Config{LeaseTimeout: lease, Peers: bus})
		srv := server.New(server.Config{Store: st, Scheduler: sched, Blobs: blobs, AgentToken: agentToken, APIToken: apiToken})
		hs := httptest.NewServer(srv)
		closers = append(closers, func() { hs.CloseClientConnections(); hs.Close(); st.Close() })
		wg.Go(func() { bus.Run(ctx, func(c postgres.Change) { deliver(sched, c) }, sched.WakeAll) })
		if i == 0 {
			wg.Go(func() { sched.Run(ctx) })
		}
		out[i] = replica{url: hs.URL, sched: sched}
	}
	return out
}

// deliver wakes a scheduler's waiters for a change made on another
// server, as hangar server does.
func deliver(s *scheduler.Scheduler, c postgres.Change) {
	for _, id := range c.Pipelines {
		s.Wake(id, false)
	}
	s.Wake(0, c.Pending)
}

// BenchmarkControlPlanePostgres is BenchmarkControlPlane on PostgreSQL,
// with one server and with two sharing the database (the agents split
// between them, as behind a load balancer).
func BenchmarkControlPlanePostgres(b *testing.B) {
	for _, replicas := range []int{1, 2} {
		for _, agents := range []int{8, 32} {
			b.Run(fmt.Sprintf("replicas=%d/agents=%d", replicas, agents), func(b *testing.B) {
				rs := newReplicas(b, replicas, 30*time.Second)
				ctx := context.Background()
				var sb strings.Builder
				for i := range 20 {
					fmt.Fprintf(&sb, "job%02d: {script: [echo %d]}\n", i, i)
				}
				plan := planOf(b, sb.String())
				for range (b.N + 19) / 20 {
					if _, err := rs[0].sched.Create(ctx, scheduler.NewPipeline{Project: "bench", Source: "push", Ref: "main", Plan: plan}); err != nil {
						b.Fatal(err)
					}
				}
				clients := make([]*api.Client, agents)
				tokens := make([]string, agents)
				for i := range tokens {
					clients[i] = api.NewClient(rs[i%replicas].url)
					var reg api.RegisterResponse
					if _, err := clients[i].Do(ctx, "POST", "/agents", agentToken, api.RegisterRequest{Name: fmt.Sprint("agent", i)}, &reg); err != nil {
						b.Fatal(err)
					}
					tokens[i] = reg.Token
				}
				b.ResetTimer()
				start := time.Now()
				var (
					wg   sync.WaitGroup
					mu   sync.Mutex
					done int
				)
				for i, tok := range tokens {
					c := clients[i]
					wg.Go(func() {
						for {
							var as api.Assignment
							code, err := c.Do(ctx, "POST", "/agent/claim", tok, api.ClaimRequest{}, &as)
							if err != nil {
								b.Error(err)
								return
							}
							if code == http.StatusNoContent {
								return
							}
							if _, err := c.Do(ctx, "PUT", fmt.Sprintf("/attempts/%d/log?offset=0", as.AttemptID), as.Token, []byte("hello\n"), nil); err != nil {
								b.Error(err)
								return
							}
							if _, err := c.Do(ctx, "POST", fmt.Sprintf("/attempts/%d/complete", as.AttemptID), as.Token, api.CompleteRequest{Status: "success"}, nil); err != nil {
								b.Error(err)
								return
							}
							mu.Lock()
							done++
							mu.Unlock()
						}
					})
				}
				wg.Wait()
				b.StopTimer()
				b.ReportMetric(float64(done)/time.Since(start).Seconds(), "jobs/s")
			})
		}
	}
}
