package server_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hangar-ci/hangar/internal/api"
	"github.com/hangar-ci/hangar/internal/pipeline"
	"github.com/hangar-ci/hangar/internal/scheduler"
)

// planOf parses and plans a pipeline file for a push to main.
func planOf(b testing.TB, yaml string) *pipeline.Plan {
	b.Helper()
	cfg, err := pipeline.Parse(".gitlab-ci.yml", []byte(yaml))
	if err != nil {
		b.Fatal(err)
	}
	plan, err := cfg.Plan(pipeline.Context{Source: pipeline.SourcePush, Branch: "main", DefaultBranch: "main"})
	if err != nil {
		b.Fatal(err)
	}
	return plan
}

func register(b testing.TB, e *env, name string) string {
	b.Helper()
	var reg api.RegisterResponse
	if _, err := e.client.Do(e.ctx, "POST", "/agents", agentToken, api.RegisterRequest{Name: name}, &reg); err != nil {
		b.Fatal(err)
	}
	return reg.Token
}

// BenchmarkControlPlane measures the control plane's throughput: many
// agents claim, append a log line and complete, over HTTP on loopback,
// with nothing run in between (a no-op executor). Jobs come in pipelines
// of 20 independent jobs, created before the clock starts.
func BenchmarkControlPlane(b *testing.B) {
	for _, agents := range []int{8, 32} {
		b.Run(fmt.Sprintf("agents=%d", agents), func(b *testing.B) {
			e := newEnv(b, 30*time.Second)
			var sb strings.Builder
			for i := range 20 {
				fmt.Fprintf(&sb, "job%02d: {script: [echo %d]}\n", i, i)
			}
			plan := planOf(b, sb.String())
			for range (b.N + 19) / 20 {
				if _, err := e.sched.Create(e.ctx, scheduler.NewPipeline{Project: "bench", Source: "push", Ref: "main", Plan: plan}); err != nil {
					b.Fatal(err)
				}
			}
			tokens := make([]string, agents)
			for i := range tokens {
				tokens[i] = register(b, e, fmt.Sprint("agent", i))
			}
			b.ResetTimer()
			start := time.Now()
			var (
				wg   sync.WaitGroup
				mu   sync.Mutex
				done int
			)
			for _, tok := range tokens {
				wg.Go(func() {
					for {
						var as api.Assignment
						code, err := e.client.Do(e.ctx, "POST", "/agent/claim", tok, api.ClaimRequest{}, &as)
						if err != nil {
							b.Error(err)
							return
						}
						if code == http.StatusNoContent {
							return
						}
						if _, err := e.client.Do(e.ctx, "PUT", fmt.Sprintf("/attempts/%d/log?offset=0", as.AttemptID), as.Token, []byte("hello\n"), nil); err != nil {
							b.Error(err)
							return
						}
						if _, err := e.client.Do(e.ctx, "POST", fmt.Sprintf("/attempts/%d/complete", as.AttemptID), as.Token, api.CompleteRequest{Status: "success"}, nil); err != nil {
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

// BenchmarkPickup measures how long a pending job waits when an agent is
// already waiting in a long-poll claim: from the moment the pipeline is
// created (its job pending) to the agent holding the assignment.
func BenchmarkPickup(b *testing.B) {
	e := newEnv(b, 30*time.Second)
	plan := planOf(b, "job: {script: [x]}\n")
	tok := register(b, e, "waiting")
	ready := make(chan struct{}, 1)
	got := make(chan time.Time)
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	go func() {
		for {
			ready <- struct{}{}
			var as api.Assignment
			code, err := e.client.Do(ctx, "POST", "/agent/claim", tok, api.ClaimRequest{WaitSeconds: 30}, &as)
			if err != nil {
				return
			}
			if code != http.StatusOK {
				continue
			}
			got <- time.Now()
			e.client.Do(ctx, "POST", fmt.Sprintf("/attempts/%d/complete", as.AttemptID), as.Token, api.CompleteRequest{Status: "success"}, nil)
		}
	}()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		<-ready
		time.Sleep(time.Millisecond) // let the claim reach its wait
		t0 := time.Now()
		if _, err := e.sched.Create(e.ctx, scheduler.NewPipeline{Project: "bench", Source: "push", Ref: "main", Plan: plan}); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, (<-got).Sub(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkLog200k stores a 200,000-line log the way an agent sends it
// (512 KiB appends over HTTP) and streams it back over Server-Sent Events.
func BenchmarkLog200k(b *testing.B) {
	e := newEnv(b, 30*time.Second)
	plan := planOf(b, "job: {script: [x]}\n")
	tok := register(b, e, "writer")
	var log bytes.Buffer
	for i := 1; i <= 200_000; i++ {
		fmt.Fprintf(&log, "%d\n", i)
	}
	data := log.Bytes()
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		if _, err := e.sched.Create(e.ctx, scheduler.NewPipeline{Project: "bench", Source: "push", Ref: "main", Plan: plan}); err != nil {
			b.Fatal(err)
		}
		var as api.Assignment
		if _, err := e.client.Do(e.ctx, "POST", "/agent/claim", tok, api.ClaimRequest{}, &as); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		for off := 0; off < len(data); off += 512 << 10 {
			chunk := data[off:min(off+512<<10, len(data))]
			if _, err := e.client.Do(e.ctx, "PUT", fmt.Sprintf("/attempts/%d/log?offset=%d", as.AttemptID, off), as.Token, chunk, nil); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := e.client.Do(e.ctx, "POST", fmt.Sprintf("/attempts/%d/complete", as.AttemptID), as.Token, api.CompleteRequest{Status: "success"}, nil); err != nil {
			b.Fatal(err)
		}
		req, _ := http.NewRequest("GET", fmt.Sprintf("%s%s/jobs/%d/log/stream", e.url, api.Prefix, as.JobID), nil)
		req.Header.Set("Authorization", "Bearer "+apiToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 4<<20)
		events := 0
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "event: log") {
				events++
			}
			if strings.HasPrefix(sc.Text(), "event: end") {
				break
			}
		}
		resp.Body.Close()
		if events == 0 {
			b.Fatal("no log events streamed")
		}
	}
}
