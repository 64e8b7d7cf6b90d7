package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hangar-ci/hangar/internal/api"
	"github.com/hangar-ci/hangar/internal/scheduler"
	"github.com/hangar-ci/hangar/internal/server"
	"github.com/hangar-ci/hangar/internal/source"
	"github.com/hangar-ci/hangar/internal/store"
	"github.com/hangar-ci/hangar/internal/store/sqlite"
)

// A finished log longer than a page is streamed without a character cut
// in two at the page boundary (which JSON would turn into U+FFFD).
func TestLogStreamKeepsCharactersWhole(t *testing.T) {
	e := newEnv(t, 5*time.Second)
	p := e.submit(map[string]string{".gitlab-ci.yml": "job: {script: [x]}\n"})
	a, _, err := e.sched.RegisterAgent(e.ctx, "manual", nil, "test", 1)
	if err != nil {
		t.Fatal(err)
	}
	as, err := e.sched.Claim(e.ctx, a)
	if err != nil || as == nil {
		t.Fatalf("claim = %v, %v", as, err)
	}
	// "é" is two bytes; the first sits at the end of the server's first
	// page of 256 KiB.
	log := strings.Repeat("a", 256<<10-1) + "é and more\n"
	err = e.sched.Complete(e.ctx, as.Attempt.ID, as.Token, scheduler.Outcome{Status: store.AttemptSuccess, Log: []byte(log)})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", fmt.Sprintf("%s%s/jobs/%d/log/stream", e.url, api.Prefix, p.Jobs[0].ID), nil)
	req.Header.Set("Authorization", "Bearer "+apiToken)
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var text string
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 4<<20)
	for sc.Scan() {
		if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			var ev api.LogEvent
			if json.Unmarshal([]byte(data), &ev) == nil {
				text += ev.Text
			}
		}
	}
	if text != log {
		t.Errorf("streamed log differs from the log: %d bytes, %d U+FFFD", len(text), strings.Count(text, "\uFFFD"))
	}
}

// A request the server cannot finish because its context ended (the server
// shuts down) gets a 5xx, which clients retry, not a final 4xx.
func TestCanceledRequestIsRetryable(t *testing.T) {
	dir := t.TempDir()
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "hangar.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	blobs, err := source.NewBlobs(filepath.Join(dir, "sources"))
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(server.Config{Store: st, Scheduler: scheduler.New(st, scheduler.Config{}), Blobs: blobs,
		AgentToken: agentToken, APIToken: apiToken})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req := httptest.NewRequestWithContext(ctx, "POST", api.Prefix+"/attempts/1/complete", strings.NewReader(`{"status":"success"}`))
	req.Header.Set("Authorization", "Bearer attempt-token")
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, req)
	err = &api.StatusError{Code: rec.Code}
	if !api.Retryable(err) {
		t.Errorf("status %d for a request cut by the server's shutdown: clients would not retry it", rec.Code)
	}
}
