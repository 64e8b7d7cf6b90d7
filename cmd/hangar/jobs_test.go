package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hangar-ci/hangar/internal/api"
)

func TestJobCommands(t *testing.T) {
	var calls []string
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/jobs/{id}/{action}", func(w http.ResponseWriter, r *http.Request) {
		calls = append(calls, r.PathValue("action")+" "+r.PathValue("id")+" "+r.Header.Get("Authorization"))
		if r.PathValue("id") == "9" {
			w.WriteHeader(http.StatusConflict)
			json.NewEncoder(w).Encode(api.Error{Error: "job 9 is running"})
			return
		}
		json.NewEncoder(w).Encode(api.Job{ID: 7, Name: "deploy", Status: "pending"})
	})
	hs := httptest.NewServer(mux)
	defer hs.Close()
	for _, tc := range []struct {
		args     []string
		code     int
		out, err string
	}{
		{[]string{"play", "--server", hs.URL, "--token", "T", "7"}, exitOK, "job 7 (deploy): pending", ""},
		{[]string{"retry", "--server", hs.URL, "--token", "T", "7"}, exitOK, "job 7 (deploy): pending", ""},
		{[]string{"retry", "--server", hs.URL, "--token", "T", "9"}, exitFailed, "", "job 9 is running"},
		{[]string{"play", "--server", hs.URL, "seven"}, exitUsage, "", `"seven" is not a job ID`},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), tc.args, &stdout, &stderr)
		if code != tc.code || !strings.Contains(stdout.String(), tc.out) || !strings.Contains(stderr.String(), tc.err) {
			t.Errorf("hangar %v: exit %d, stdout %q, stderr %q; want exit %d, %q, %q",
				tc.args, code, stdout.String(), stderr.String(), tc.code, tc.out, tc.err)
		}
	}
	want := []string{"play 7 Bearer T", "retry 7 Bearer T", "retry 9 Bearer T"}
	if strings.Join(calls, "|") != strings.Join(want, "|") {
		t.Errorf("calls %q, want %q", calls, want)
	}
}
