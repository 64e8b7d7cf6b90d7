package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hangar-ci/hangar/internal/agent"
	"github.com/hangar-ci/hangar/internal/api"
	"github.com/hangar-ci/hangar/internal/executor/shell"
	"github.com/hangar-ci/hangar/internal/scheduler"
	"github.com/hangar-ci/hangar/internal/server"
	"github.com/hangar-ci/hangar/internal/source"
	"github.com/hangar-ci/hangar/internal/store/sqlite"
)

const (
	agentToken = "agent-secret"
	apiToken   = "api-secret"
)

// env is a real server on a loopback socket over a real SQLite file.
type env struct {
	t      testing.TB
	ctx    context.Context
	url    string
	client *api.Client
	sched  *scheduler.Scheduler
	store  *sqlite.Store
	// artifacts is the directory of the server's artifacts archives.
	artifacts string
}

func newEnv(t testing.TB, lease time.Duration) *env {
	t.Helper()
	return newEnvWith(t, lease, nil)
}

// newEnvWith is newEnv with the server's configuration changed by mod
// (when not nil) before the server starts; the server's upkeep (Run)
// runs too.
func newEnvWith(t testing.TB, lease time.Duration, mod func(*server.Config)) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "hangar.db"))
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := source.NewBlobs(filepath.Join(dir, "sources"))
	if err != nil {
		t.Fatal(err)
	}
	artifacts, err := source.NewBlobs(filepath.Join(dir, "artifacts"))
	if err != nil {
		t.Fatal(err)
	}
	metrics := server.NewMetrics(st, lease)
	cfg := server.Config{Blobs: blobs, Artifacts: artifacts, AgentToken: agentToken, APIToken: apiToken, Metrics: metrics}
	if mod != nil {
		mod(&cfg)
	}
	cfg.Store = st
	cfg.Scheduler = scheduler.New(st, scheduler.Config{LeaseTimeout: lease, Observer: metrics})
	srv := server.New(cfg)
	hs := httptest.NewServer(srv)
	var wg sync.WaitGroup
	wg.Go(func() { cfg.Scheduler.Run(ctx) })
	wg.Go(func() { srv.Run(ctx) })
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		hs.CloseClientConnections()
		hs.Close()
		st.Close()
	})
	return &env{t: t, ctx: ctx, url: hs.URL, client: api.NewClient(hs.URL), sched: cfg.Scheduler, store: st,
		artifacts: filepath.Join(dir, "artifacts")}
}

// startAgent runs an agent until the test ends (or stop is called).
func (e *env) startAgent(name string, mod func(*agent.Config)) (stop func()) {
	e.t.Helper()
	ex, err := shell.New(shell.Config{KillGrace: 200 * time.Millisecond})
	if err != nil {
		e.t.Fatal(err)
	}
	cfg := agent.Config{Server: e.url, RegistrationToken: agentToken, Name: name, WorkDir: e.t.TempDir(), Executor: ex,
		ClaimWait: 2 * time.Second, Backoff: api.Backoff{Min: 10 * time.Millisecond, Max: 200 * time.Millisecond}}
	if mod != nil {
		mod(&cfg)
	}
	a, err := agent.New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := a.Run(ctx); err != nil {
			e.t.Errorf("agent %s: %v", name, err)
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	e.t.Cleanup(stop)
	return stop
}

// submit uploads files as the source and creates a pipeline from them.
func (e *env) submit(files map[string]string, vars ...api.Variable) api.Pipeline {
	e.t.Helper()
	dir := e.t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			e.t.Fatal(err)
		}
	}
	var archive bytes.Buffer
	if err := source.Snapshot(e.ctx, dir, &archive); err != nil {
		e.t.Fatal(err)
	}
	var up api.SourceResponse
	if _, err := e.client.Do(e.ctx, "POST", "/sources", apiToken, archive.Bytes(), &up); err != nil {
		e.t.Fatal(err)
	}
	var p api.Pipeline
	req := api.CreatePipelineRequest{Archive: up.Archive, Variables: vars}
	if _, err := e.client.Do(e.ctx, "POST", "/projects/group%2Fdemo/pipelines", apiToken, req, &p); err != nil {
		e.t.Fatal(err)
	}
	return p
}

// wait follows the pipeline until it finishes.
func (e *env) wait(id int64, limit time.Duration) api.Pipeline {
	e.t.Helper()
	deadline := time.Now().Add(limit)
	version := ""
	for time.Now().Before(deadline) {
		var p api.Pipeline
		if _, err := e.client.Do(e.ctx, "GET", fmt.Sprintf("/pipelines/%d/watch?version=%s&wait=1", id, version), apiToken, nil, &p); err != nil {
			e.t.Fatal(err)
		}
		switch p.Status {
		case "success", "failed", "canceled", "skipped":
			return p
		}
		version = p.Version
	}
	e.t.Fatalf("pipeline %d did not finish within %v", id, limit)
	return api.Pipeline{}
}

func (e *env) jobLog(id int64) string {
	e.t.Helper()
	var b bytes.Buffer
	if _, err := e.client.Do(e.ctx, "GET", fmt.Sprintf("/jobs/%d/log", id), apiToken, nil, &b); err != nil {
		e.t.Fatal(err)
	}
	return b.String()
}

func jobNamed(t *testing.T, p api.Pipeline, name string) api.Job {
	t.Helper()
	for _, j := range p.Jobs {
		if j.Name == name {
			return j
		}
	}
	t.Fatalf("pipeline %d has no job %q", p.ID, name)
	return api.Job{}
}

func TestPipelineEndToEnd(t *testing.T) {
	e := newEnv(t, 5*time.Second)
	e.startAgent("one", nil)
	e.startAgent("two", nil)
	p := e.submit(map[string]string{
		".gitlab-ci.yml": `
stages: [build, test, deploy]
build:
  stage: build
  script:
    - cat input.txt
    - echo "token=$TOKEN project=$CI_PROJECT_PATH job=$CI_JOB_ID"
test:
  stage: test
  parallel: 2
  script: [echo "node $CI_NODE_INDEX", false, echo unreachable]
  after_script: [echo "after $CI_JOB_NAME"]
deploy:
  stage: deploy
  script: [echo deploy]
`,
		"input.txt": "from the source tree\n",
	}, api.Variable{Name: "TOKEN", Value: "s3cr3t-value", Masked: true})
	p = e.wait(p.ID, 30*time.Second)
	if p.Status != "failed" || p.Project != "group/demo" {
		t.Fatalf("pipeline %s in project %q, want failed in group/demo", p.Status, p.Project)
	}
	build := jobNamed(t, p, "build")
	log := e.jobLog(build.ID)
	for _, want := range []string{"from the source tree", "token=[MASKED] project=group/demo job=" + fmt.Sprint(build.ID), "Job succeeded"} {
		if !strings.Contains(log, want) {
			t.Errorf("build log lacks %q:\n%s", want, log)
		}
	}
	if strings.Contains(log, "s3cr3t-value") {
		t.Errorf("build log shows the masked value:\n%s", log)
	}
	for _, name := range []string{"test 1/2", "test 2/2"} {
		j := jobNamed(t, p, name)
		log := e.jobLog(j.ID)
		if j.Status != "failed" || j.ExitCode == nil || *j.ExitCode != 1 {
			t.Errorf("%s: %s exit %v, want failed with exit 1", name, j.Status, j.ExitCode)
		}
		if strings.Contains(log, "unreachable") || !strings.Contains(log, "after "+name) {
			t.Errorf("%s log: want set -e to stop before 'unreachable' and after_script to run:\n%s", name, log)
		}
	}
	// All of a pipeline's new log bytes in one call, from given offsets.
	var logs api.LogsResponse
	from := []api.LogCursor{{AttemptID: build.Attempts[0].ID, Offset: 5}}
	if _, err := e.client.Do(e.ctx, "POST", fmt.Sprintf("/pipelines/%d/logs", p.ID), apiToken, api.LogsRequest{From: from}, &logs); err != nil {
		t.Fatal(err)
	}
	if len(logs.Pieces) != 1 || string(logs.Pieces[0].Data) != log[5:] {
		t.Errorf("pipeline logs from offset 5: %+v, want the build log from byte 5", logs.Pieces)
	}
	_, err := e.client.Do(e.ctx, "POST", fmt.Sprintf("/pipelines/%d/logs", p.ID+1), apiToken, api.LogsRequest{From: from}, &logs)
	if api.StatusCode(err) != http.StatusNotFound {
		t.Errorf("logs of a missing pipeline: %v, want 404", err)
	}
	if d := jobNamed(t, p, "deploy"); d.Status != "skipped" {
		t.Errorf("deploy is %s, want skipped", d.Status)
	}
	resp, err := http.Get(e.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"hangar_job_queue_seconds_count 3", `hangar_job_duration_seconds_count{status="failed"} 2`, "hangar_agents_connected 2", `hangar_jobs{status="pending"} 0`} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestBadRequests(t *testing.T) {
	e := newEnv(t, 5*time.Second)
	do := func(method, path, token string, body string) (int, api.Error) {
		t.Helper()
		req, _ := http.NewRequest(method, e.url+api.Prefix+path, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var e api.Error
		json.NewDecoder(resp.Body).Decode(&e)
		return resp.StatusCode, e
	}
	for _, c := range []struct{ method, path, token string }{
		{"GET", "/pipelines", ""},
		{"GET", "/pipelines", "wrong"},
		{"GET", "/pipelines", agentToken},
		{"POST", "/agents", apiToken},
		{"POST", "/agent/claim", apiToken},
		{"PUT", "/attempts/1/log?offset=0", ""},
		{"POST", "/attempts/1/complete", "guess"},
		{"GET", "/jobs/1/log", ""},
	} {
		if code, _ := do(c.method, c.path, c.token, "{}"); code != http.StatusUnauthorized && !(code == http.StatusNotFound && strings.HasPrefix(c.path, "/attempts")) {
			t.Errorf("%s %s with token %q: %d, want 401", c.method, c.path, c.token, code)
		}
	}
	if code, _ := do("POST", "/agents", agentToken, "{not json"); code != http.StatusBadRequest {
		t.Errorf("malformed JSON: %d, want 400", code)
	}
	if code, _ := do("POST", "/agents", agentToken, `{"name":"x","surprise":1}`); code != http.StatusBadRequest {
		t.Errorf("unknown field: %d, want 400", code)
	}
	if code, _ := do("POST", "/projects/p/pipelines", apiToken, `{"archive":"sha256:`+strings.Repeat("0", 64)+`"}`); code != http.StatusBadRequest {
		t.Errorf("unknown archive: %d, want 400", code)
	}
	if code, _ := do("GET", "/pipelines/abc", apiToken, ""); code != http.StatusNotFound {
		t.Errorf("bad ID: %d, want 404", code)
	}
	if code, _ := do("GET", "/pipelines/99", apiToken, ""); code != http.StatusNotFound {
		t.Errorf("missing pipeline: %d, want 404", code)
	}

	// A pipeline file with errors is refused with its positions.
	var archive bytes.Buffer
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, ".gitlab-ci.yml"), []byte("job:\n  script: [x]\n  stage: nope\n"), 0o644)
	source.Snapshot(e.ctx, dir, &archive)
	var up api.SourceResponse
	if _, err := e.client.Do(e.ctx, "POST", "/sources", apiToken, archive.Bytes(), &up); err != nil {
		t.Fatal(err)
	}
	_, err := e.client.Do(e.ctx, "POST", "/projects/p/pipelines", apiToken, api.CreatePipelineRequest{Archive: up.Archive}, nil)
	se, ok := err.(*api.StatusError)
	if !ok || se.Code != http.StatusUnprocessableEntity || len(se.Body.Problems) == 0 {
		t.Fatalf("pipeline with errors: %v, want 422 with problems", err)
	}
	if pr := se.Body.Problems[0]; pr.File != ".gitlab-ci.yml" || pr.Line != 3 || pr.Column == 0 {
		t.Errorf("problem at %s, want .gitlab-ci.yml:3:col", pr.Position)
	}

	// An agent's log appends: idempotent, gaps and oversized bodies refused.
	var reg api.RegisterResponse
	if _, err := e.client.Do(e.ctx, "POST", "/agents", agentToken, api.RegisterRequest{Name: "raw"}, &reg); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, ".gitlab-ci.yml"), []byte("job: {script: [x]}\n"), 0o644)
	archive.Reset()
	source.Snapshot(e.ctx, dir, &archive)
	e.client.Do(e.ctx, "POST", "/sources", apiToken, archive.Bytes(), &up)
	if _, err := e.client.Do(e.ctx, "POST", "/projects/p/pipelines", apiToken, api.CreatePipelineRequest{Archive: up.Archive}, nil); err != nil {
		t.Fatal(err)
	}
	var as api.Assignment
	if _, err := e.client.Do(e.ctx, "POST", "/agent/claim", reg.Token, api.ClaimRequest{WaitSeconds: 1}, &as); err != nil || as.AttemptID == 0 {
		t.Fatalf("claim: %v %+v", err, as)
	}
	logPath := fmt.Sprintf("/attempts/%d/log", as.AttemptID)
	for i, c := range []struct {
		offset   int
		body     string
		wantCode int
		wantSize int64
	}{
		{0, "hello ", 200, 6},
		{0, "hello ", 200, 6},      // retried: harmless
		{3, "lo world\n", 200, 12}, // overlaps the end: only the tail is new
		{20, "later\n", 416, 12},   // gap: refused with the size
		{12, "", 200, 12},          // empty append at the end
		{12, "more\n", 200, 17},    // and on
	} {
		code, body := do("PUT", fmt.Sprintf("%s?offset=%d", logPath, c.offset), as.Token, c.body)
		if code != c.wantCode {
			t.Errorf("append %d: %d, want %d (%s)", i, code, c.wantCode, body.Error)
		}
		if code == 416 && (body.Size == nil || *body.Size != c.wantSize) {
			t.Errorf("append %d: gap answer size %v, want %d", i, body.Size, c.wantSize)
		}
	}
	if code, _ := do("PUT", logPath+"?offset=17", as.Token, strings.Repeat("x", api.MaxLogAppend+1)); code != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized append: %d, want 413", code)
	}
	if code, _ := do("PUT", logPath+"?offset=-1", as.Token, "x"); code != http.StatusBadRequest {
		t.Errorf("negative offset: %d, want 400", code)
	}
	if code, _ := do("POST", fmt.Sprintf("/attempts/%d/complete", as.AttemptID), as.Token, `{"status":"bogus"}`); code != http.StatusBadRequest {
		t.Errorf("complete with a bogus status: %d, want 400", code)
	}
	if code, _ := do("POST", fmt.Sprintf("/attempts/%d/complete", as.AttemptID), as.Token, `{"status":"success","log_offset":99,"log":"eA=="}`); code != http.StatusRequestedRangeNotSatisfiable {
		t.Errorf("complete with a log tail past the end: %d, want 416", code)
	}
	// The completion carries the log's last bytes ("done\n"), overlapping
	// what is stored.
	if code, _ := do("POST", fmt.Sprintf("/attempts/%d/complete", as.AttemptID), as.Token, `{"status":"success","log_offset":15,"log":"ZQpkb25lCg=="}`); code != http.StatusNoContent {
		t.Errorf("complete: %d, want 204", code)
	}
	if code, _ := do("PUT", logPath+"?offset=22", as.Token, "late\n"); code != http.StatusConflict {
		t.Errorf("append after complete: %d, want 409", code)
	}
	if got, want := e.jobLog(as.JobID), "hello world\nmore\ndone\n"; got != want {
		t.Errorf("log = %q, want %q", got, want)
	}
}

func TestLogStreamResumes(t *testing.T) {
	e := newEnv(t, 5*time.Second)
	e.startAgent("one", nil)
	p := e.submit(map[string]string{".gitlab-ci.yml": `
job:
  script:
    - for i in $(seq 1 20); do echo "line $i"; sleep 0.02; done
`})
	var job api.Job
	for _, j := range p.Jobs {
		job = j
	}
	read := func(lastID string, stopAfter int) (text, last, end string) {
		req, _ := http.NewRequest("GET", fmt.Sprintf("%s%s/jobs/%d/log/stream", e.url, api.Prefix, job.ID), nil)
		req.Header.Set("Authorization", "Bearer "+apiToken)
		if lastID != "" {
			req.Header.Set("Last-Event-ID", lastID)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
			t.Fatalf("content type %q", ct)
		}
		sc := bufio.NewScanner(resp.Body)
		var event, id string
		n := 0
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				event = line[7:]
			case strings.HasPrefix(line, "id: "):
				id = line[4:]
			case strings.HasPrefix(line, "data: ") && event == "log":
				var ev api.LogEvent
				json.Unmarshal([]byte(line[6:]), &ev)
				text += ev.Text
				last = id
				n++
				if stopAfter > 0 && n >= stopAfter {
					return text, last, ""
				}
			case strings.HasPrefix(line, "data: ") && event == "end":
				return text, last, line[6:]
			}
		}
		return text, last, ""
	}
	first, last, _ := read("", 2)
	rest, _, end := read(last, 0)
	if !strings.Contains(end, "success") {
		t.Fatalf("stream ended with %q, want success", end)
	}
	full := e.jobLog(job.ID)
	if first+rest != full {
		t.Errorf("two streams joined differ from the log:\nstreams: %q\nlog:     %q", first+rest, full)
	}
	if strings.Count(full, "line 20\n") != 1 {
		t.Errorf("log lacks its last line once:\n%s", full)
	}
}

func TestAgentDrainsOnStop(t *testing.T) {
	e := newEnv(t, 5*time.Second)
	stopA := e.startAgent("leaving", func(c *agent.Config) { c.ShutdownTimeout = 300 * time.Millisecond })
	p := e.submit(map[string]string{".gitlab-ci.yml": `
job:
  script: ["echo attempt $HANGAR_ATTEMPT", "sleep 2", "echo done"]
`})
	// Wait until the job's script runs on the first agent (its first line
	// is in the log), then stop it: the job is handed back at once and a
	// second agent finishes it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var cur api.Pipeline
		e.client.Do(e.ctx, "GET", fmt.Sprintf("/pipelines/%d", p.ID), apiToken, nil, &cur)
		if cur.Jobs[0].Status == "running" && strings.Contains(e.jobLog(cur.Jobs[0].ID), "\nattempt 1\n") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("job never started")
		}
		time.Sleep(20 * time.Millisecond)
	}
	stopA()
	e.startAgent("staying", nil)
	p = e.wait(p.ID, 30*time.Second)
	j := p.Jobs[0]
	if p.Status != "success" || len(j.Attempts) != 2 || j.Attempts[0].Status != "lost" {
		t.Fatalf("pipeline %s, attempts %+v; want success after a handed-back attempt", p.Status, j.Attempts)
	}
	log := e.jobLog(j.ID)
	if !strings.Contains(log, "attempt 1") || !strings.Contains(log, "attempt 2") || strings.Count(log, "\ndone\n") != 1 {
		t.Errorf("log should show both attempts and one finish:\n%s", log)
	}
	var agents []api.Agent
	e.client.Do(e.ctx, "GET", "/agents", apiToken, nil, &agents)
	for _, a := range agents {
		if a.Name == "leaving" {
			t.Errorf("the stopped agent is still listed as %s", a.Status)
		}
	}
}

func TestPipelineFromGitCommit(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not on PATH")
	}
	e := newEnv(t, 5*time.Second)
	e.startAgent("one", nil)
	repo := t.TempDir()
	gitIn := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", repo}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL="+os.DevNull, "GIT_CONFIG_NOSYSTEM=1",
			"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	gitIn("init", "-q", "-b", "main")
	os.WriteFile(filepath.Join(repo, ".gitlab-ci.yml"), []byte("show: {script: [cat version.txt]}\n"), 0o644)
	os.WriteFile(filepath.Join(repo, "version.txt"), []byte("version one\n"), 0o644)
	gitIn("add", "-A")
	gitIn("commit", "-q", "-m", "one")
	commit := gitIn("rev-parse", "HEAD")
	os.WriteFile(filepath.Join(repo, "version.txt"), []byte("version two\n"), 0o644)
	gitIn("commit", "-q", "-am", "two")

	var p api.Pipeline
	req := api.CreatePipelineRequest{Git: &api.GitSource{URL: "file://" + repo, Commit: commit}}
	if _, err := e.client.Do(e.ctx, "POST", "/projects/demo/pipelines", apiToken, req, &p); err != nil {
		t.Fatal(err)
	}
	if p.SHA != commit {
		t.Errorf("pipeline SHA %q, want the commit %q", p.SHA, commit)
	}
	p = e.wait(p.ID, 30*time.Second)
	if log := e.jobLog(p.Jobs[0].ID); p.Status != "success" || !strings.Contains(log, "version one") {
		t.Errorf("pipeline %s; log:\n%s\nwant success with the first commit's file", p.Status, log)
	}

	req.Git.Commit = strings.Repeat("0", 40)
	_, err := e.client.Do(e.ctx, "POST", "/projects/demo/pipelines", apiToken, req, nil)
	if api.StatusCode(err) != http.StatusUnprocessableEntity {
		t.Errorf("an unknown commit: %v, want 422", err)
	}
}
