package server_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/hangar-ci/hangar/internal/api"
	"github.com/hangar-ci/hangar/internal/scheduler"
	"github.com/hangar-ci/hangar/internal/store"
)

// fetchPage GETs a UI page with the API token and checks it rendered.
func fetchPage(b *testing.B, url, want string) int {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+apiToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(want)) {
		b.Fatalf("GET %s: %d (%v), %d bytes without %q", url, resp.StatusCode, err, len(body), want)
	}
	return len(body)
}

// BenchmarkUIPipelinesPage renders the pipelines page over HTTP with
// 10,000 pipelines in the store: the newest 50, and the newest 50 failed
// ones on the main branch (a filter that skips most rows).
func BenchmarkUIPipelinesPage(b *testing.B) {
	e := newEnv(b, 30*time.Second)
	err := e.store.Update(e.ctx, func(tx store.Tx) error {
		proj, err := tx.Projects().Ensure(e.ctx, "shop", time.Now())
		if err != nil {
			return err
		}
		statuses := []store.PipelineStatus{store.PipelineSuccess, store.PipelineSuccess, store.PipelineFailed, store.PipelineRunning}
		start := time.Now().Add(-10_000 * time.Minute)
		for i := range 10_000 {
			at := start.Add(time.Duration(i) * time.Minute)
			p := &store.Pipeline{ProjectID: proj.ID, Status: statuses[i%len(statuses)], Source: "push",
				Ref: fmt.Sprintf("feature-%d", i%40), SHA: fmt.Sprintf("%040x", i), CreatedAt: at, StartedAt: at.Add(time.Second), FinishedAt: at.Add(3 * time.Minute)}
			if i%10 == 0 {
				p.Ref = "main"
			}
			if err := tx.Pipelines().Create(e.ctx, p); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct{ name, query string }{
		{"newest", ""},
		{"failed-on-main", "?status=failed&ref=main"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var n int
			for range b.N {
				n = fetchPage(b, e.url+"/pipelines"+bc.query, "Older pipelines")
			}
			b.ReportMetric(float64(n), "page-bytes")
		})
	}
}

// BenchmarkUIJobPage renders a finished job's page over HTTP whose log is
// 100,000 lines (8 MB: build output with colours, a section every 1,000
// lines).
func BenchmarkUIJobPage(b *testing.B) {
	e := newEnv(b, 30*time.Second)
	if _, err := e.sched.Create(e.ctx, scheduler.NewPipeline{Project: "bench", Source: "push", Ref: "main",
		Plan: planOf(b, "job: {script: [x]}\n")}); err != nil {
		b.Fatal(err)
	}
	tok := register(b, e, "writer")
	var as api.Assignment
	if _, err := e.client.Do(e.ctx, "POST", "/agent/claim", tok, api.ClaimRequest{}, &as); err != nil {
		b.Fatal(err)
	}
	var log bytes.Buffer
	for i := 1; i <= 100_000; i++ {
		switch {
		case i%1000 == 1:
			fmt.Fprintf(&log, "\x1b[0Ksection_start:%d:step_%d\r\x1b[0K\x1b[36;1mStep %d\x1b[0m\n", 1700000000+i, i, i/1000)
		case i%1000 == 0:
			fmt.Fprintf(&log, "\x1b[0Ksection_end:%d:step_%d\r\x1b[0K\n", 1700000000+i, i-999)
		case i%7 == 0:
			fmt.Fprintf(&log, "\x1b[32mok\x1b[0m  \tgithub.com/example/shop/pkg%d\t0.%03ds\n", i, i%1000)
		default:
			fmt.Fprintf(&log, "compiling github.com/example/shop/internal/module%d/file%d.go (%d of 100000)\n", i%97, i, i)
		}
	}
	data := log.Bytes()
	for off := 0; off < len(data); off += 512 << 10 {
		chunk := data[off:min(off+512<<10, len(data))]
		if _, err := e.client.Do(e.ctx, "PUT", fmt.Sprintf("/attempts/%d/log?offset=%d", as.AttemptID, off), as.Token, chunk, nil); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := e.client.Do(e.ctx, "POST", fmt.Sprintf("/attempts/%d/complete", as.AttemptID), as.Token, api.CompleteRequest{Status: "success"}, nil); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	var n int
	for range b.N {
		n = fetchPage(b, fmt.Sprintf("%s/jobs/%d", e.url, as.JobID), `id="L99900"` /* 100,000 lines less the 100 section ends */)
	}
	b.ReportMetric(float64(n), "page-bytes")
}

// BenchmarkAnalytics computes every chart over 30 days holding 100,000
// finished jobs (and a fleet's events), aggregated on read: GET
// /api/v1/analytics?days=30 and the analytics page.
func BenchmarkAnalytics(b *testing.B) {
	e := newEnv(b, 30*time.Second)
	now := time.Now()
	err := e.store.Update(e.ctx, func(tx store.Tx) error {
		proj, err := tx.Projects().Ensure(e.ctx, "shop", now)
		if err != nil {
			return err
		}
		var p *store.Pipeline
		names := []string{"build", "test", "lint", "deploy", "e2e", "docs", "package", "scan"}
		for i := range 100_000 {
			if i%20 == 0 {
				p = &store.Pipeline{ProjectID: proj.ID, Status: store.PipelineSuccess, Source: "push", Ref: "main", CreatedAt: now}
				if err := tx.Pipelines().Create(e.ctx, p); err != nil {
					return err
				}
			}
			pending := now.Add(-time.Duration(i) * 30 * 24 * time.Hour / 100_000)
			status := store.JobSuccess
			if i%9 == 0 {
				status = store.JobFailed
			}
			j := &store.Job{PipelineID: p.ID, Name: names[i%len(names)], Stage: "test", Status: status, When: "on_success",
				Attempts: 1, ExitCode: 0, CreatedAt: pending, PendingAt: pending,
				StartedAt: pending.Add(time.Duration(i%40) * time.Second), FinishedAt: pending.Add(time.Duration(60+i%600) * time.Second)}
			if err := tx.Jobs().Create(e.ctx, j); err != nil {
				return err
			}
		}
		for i := range 2_000 {
			at := now.Add(-time.Duration(i) * 30 * 24 * time.Hour / 2_000)
			inst := fmt.Sprintf("small-%d", i/2)
			kind := "created"
			if i%2 == 0 {
				kind = "ready"
			}
			if err := tx.FleetEvents().Append(e.ctx, &store.FleetEvent{At: at, Class: "small", Instance: inst, Kind: kind}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("api", func(b *testing.B) {
		for range b.N {
			fetchPage(b, e.url+api.Prefix+"/analytics?days=30", `"queue_time"`)
		}
	})
	b.Run("page", func(b *testing.B) {
		for range b.N {
			fetchPage(b, e.url+"/analytics?days=30", `<svg class="chart"`)
		}
	})
}
