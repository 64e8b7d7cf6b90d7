package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hangar-ci/hangar/internal/api"
)

// Ctrl-C while the follower reads a log still cancels the pipeline.
func TestFollowCancelsWhenInterruptedReadingLogs(t *testing.T) {
	ctx, interrupt := context.WithCancel(context.Background())
	defer interrupt()
	var canceled atomic.Bool
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/pipelines/1/watch", func(w http.ResponseWriter, r *http.Request) {
		p := api.Pipeline{ID: 1, Status: "running", Version: "1", Jobs: []api.Job{{ID: 1, Name: "job", Status: "running",
			Attempts: []api.Attempt{{ID: 1, Number: 1, Status: "running", LogSize: 10}}}}}
		if canceled.Load() {
			p.Status, p.Version, p.Jobs = "canceled", "2", nil
		}
		json.NewEncoder(w).Encode(p)
	})
	mux.HandleFunc("POST /api/v1/pipelines/1/logs", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // else the server does not notice the client leave
		interrupt()                 // Ctrl-C now
		<-r.Context().Done()
	})
	mux.HandleFunc("POST /api/v1/pipelines/1/cancel", func(w http.ResponseWriter, r *http.Request) {
		canceled.Store(true)
		json.NewEncoder(w).Encode(api.Pipeline{ID: 1, Status: "canceled"})
	})
	hs := httptest.NewServer(mux)
	defer hs.Close()
	var stdout, stderr bytes.Buffer
	c := &cli{client: api.NewClient(hs.URL), stdout: &stdout, stderr: &stderr}
	done := make(chan int)
	go func() { done <- c.follow(ctx, 1) }()
	select {
	case code := <-done:
		if !canceled.Load() {
			t.Errorf("the pipeline was not canceled (exit %d); stderr:\n%s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("follow did not return")
	}
}
