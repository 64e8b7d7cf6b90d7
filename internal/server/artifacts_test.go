package server_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hangar-ci/hangar/internal/api"
	"github.com/hangar-ci/hangar/internal/server"
	"github.com/hangar-ci/hangar/internal/source"
	"github.com/hangar-ci/hangar/internal/store"
)

// targz returns a gzip-compressed tar holding files (name → contents,
// mode 0644; a name ending in "*" is executable, the star dropped).
func targz(t testing.TB, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	keys := make([]string, 0, len(files))
	for key := range files {
		keys = append(keys, key)
	}
	slices.Sort(keys)
	for _, key := range keys {
		name, exec := strings.CutSuffix(key, "*")
		mode := int64(0o644)
		if exec {
			mode = 0o755
		}
		body := files[key]
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// claimer is a hand-driven agent: it claims, uploads and completes
// through the protocol, so tests decide what happens when.
type claimer struct {
	e     *env
	token string
}

func (e *env) claimer(name string) *claimer {
	e.t.Helper()
	return &claimer{e: e, token: register(e.t, e, name)}
}

// claim returns the next assignment, failing the test when none comes.
func (c *claimer) claim() api.Assignment {
	c.e.t.Helper()
	var as api.Assignment
	code, err := c.e.client.Do(c.e.ctx, "POST", "/agent/claim", c.token, api.ClaimRequest{WaitSeconds: 5}, &as)
	if err != nil || code != http.StatusOK {
		c.e.t.Fatalf("claim: %d, %v", code, err)
	}
	return as
}

// claimAll claims n jobs and returns their assignments by job name.
func (c *claimer) claimAll(n int) map[string]api.Assignment {
	c.e.t.Helper()
	out := map[string]api.Assignment{}
	for range n {
		as := c.claim()
		out[as.JobName] = as
	}
	return out
}

func (c *claimer) complete(as api.Assignment) {
	c.e.t.Helper()
	if _, err := c.e.client.Do(c.e.ctx, "POST", fmt.Sprintf("/attempts/%d/complete", as.AttemptID), as.Token,
		api.CompleteRequest{Status: "success"}, nil); err != nil {
		c.e.t.Fatal(err)
	}
}

func (e *env) upload(as api.Assignment, body []byte) (api.JobArtifacts, error) {
	return e.client.UploadArtifacts(e.ctx, as.AttemptID, as.Token, bytes.NewReader(body), int64(len(body)))
}

func (e *env) mustUpload(as api.Assignment, body []byte) api.JobArtifacts {
	e.t.Helper()
	a, err := e.upload(as, body)
	if err != nil {
		e.t.Fatalf("upload artifacts of %s: %v", as.JobName, err)
	}
	return a
}

// blobFiles lists the files of the artifacts store, temporary ones
// included.
func (e *env) blobFiles() []string {
	e.t.Helper()
	entries, err := os.ReadDir(e.artifacts)
	if err != nil {
		e.t.Fatal(err)
	}
	var names []string
	for _, en := range entries {
		names = append(names, en.Name())
	}
	return names
}

// hasBlob reports whether the artifacts store holds the archive digest.
func (e *env) hasBlob(digest string) bool {
	return slices.Contains(e.blobFiles(), strings.TrimPrefix(digest, "sha256:"))
}

// storedArtifacts reads a job's artifacts record straight from the store.
func (e *env) storedArtifacts(jobID int64) (*store.Artifact, error) {
	var a *store.Artifact
	err := e.store.Read(e.ctx, func(tx store.Tx) error {
		var err error
		a, err = tx.Artifacts().Get(e.ctx, jobID)
		return err
	})
	return a, err
}

// clock is a settable clock for the server.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Now().UTC().Truncate(time.Microsecond)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// TestArtifactsFlow follows one archive from the job that makes it to
// the job that depends on it and to a person who looks at it.
func TestArtifactsFlow(t *testing.T) {
	clk := newClock()
	e := newEnvWith(t, 30*time.Second, func(c *server.Config) { c.Now = clk.Now })
	e.submit(map[string]string{".gitlab-ci.yml": `
stages: [build, test]
build:
  stage: build
  script: [make]
  artifacts:
    name: "bin of $CI_JOB_NAME/../x"
    paths: [bin/]
    expire_in: 1 week
lint:
  stage: build
  script: [lint]
test:
  stage: test
  script: [test]
`})
	agent := e.claimer("hand")
	first := agent.claimAll(2)
	build, lint := first["build"], first["lint"]
	if build.Artifacts == nil || build.MaxArtifactBytes != server.DefaultMaxArtifactBytes || len(build.Dependencies) != 0 {
		t.Fatalf("build's assignment: artifacts %+v (at most %d bytes), dependencies %+v; want artifacts of at most %d bytes, no dependencies",
			build.Artifacts, build.MaxArtifactBytes, build.Dependencies, server.DefaultMaxArtifactBytes)
	}
	if lint.MaxArtifactBytes != 0 {
		t.Errorf("lint's assignment: at most %d artifact bytes; want 0, as it keeps none", lint.MaxArtifactBytes)
	}
	archive := targz(t, map[string]string{"bin/app*": "#!/bin/sh\necho app\n", "bin/README": "read me\n"})
	up := e.mustUpload(build, archive)
	week := clk.Now().Add(7 * 24 * time.Hour)
	if up.JobID != build.JobID || up.JobName != "build" || up.Name != "bin of build/../x" || up.Size != int64(len(archive)) ||
		up.Digest != digest(archive) || up.ExpireAt == nil || !up.ExpireAt.Equal(week) {
		t.Errorf("upload answered %+v; want job %d (build), name %q, %d bytes, %s, expiring %v", up, build.JobID,
			"bin of build/../x", len(archive), digest(archive), week)
	}
	agent.complete(build)
	agent.complete(lint)

	// The dependent job gets build's archive (lint has none) and downloads it.
	test := agent.claim()
	want := []api.ArtifactRef{{JobID: build.JobID, JobName: "build", Size: int64(len(archive)), Digest: digest(archive)}}
	if test.JobName != "test" || !slices.Equal(test.Dependencies, want) {
		t.Fatalf("assignment of %s: dependencies %+v, want %+v", test.JobName, test.Dependencies, want)
	}
	var got bytes.Buffer
	if err := e.client.DownloadArtifacts(e.ctx, test.AttemptID, test.Token, build.JobID, &got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), archive) {
		t.Errorf("download by the dependent attempt: %d bytes, not the %d uploaded", got.Len(), len(archive))
	}
	err := e.client.DownloadArtifacts(e.ctx, test.AttemptID, test.Token, lint.JobID, io.Discard)
	if api.StatusCode(err) != http.StatusNotFound || !strings.Contains(err.Error(), "has no artifacts") {
		t.Errorf("download of a job without artifacts: %v, want 404 saying it has none", err)
	}

	// build's attempt has finished: it may not upload again.
	_, err = e.upload(build, targz(t, map[string]string{"late": "x"}))
	if api.StatusCode(err) != http.StatusConflict {
		t.Errorf("upload of a finished attempt: %v, want 409", err)
	}

	// What people see.
	var meta api.JobArtifacts
	if _, err := e.client.Do(e.ctx, "GET", fmt.Sprintf("/jobs/%d/artifacts", build.JobID), apiToken, nil, &meta); err != nil {
		t.Fatal(err)
	}
	wantFiles := []api.ArtifactFile{{Path: "bin/README", Size: 8, Mode: "-rw-r--r--"}, {Path: "bin/app", Size: 19, Mode: "-rwxr-xr-x"}}
	if meta.Digest != digest(archive) || meta.Name != up.Name || !slices.Equal(meta.Files, wantFiles) || meta.Truncated || meta.Problem != "" {
		t.Errorf("GET /jobs/%d/artifacts = %+v, want digest %s and files %+v", build.JobID, meta, digest(archive), wantFiles)
	}
	resp, err := e.get(fmt.Sprintf("/jobs/%d/artifacts/download", build.JobID), apiToken)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, archive) ||
		resp.Header.Get("Content-Type") != "application/gzip" ||
		resp.Header.Get("Content-Disposition") != `attachment; filename=bin_of_build_.._x.tar.gz` {
		t.Errorf("download: %d, %d bytes, headers %v; want 200, the archive, application/gzip as bin_of_build_.._x.tar.gz",
			resp.StatusCode, len(body), resp.Header)
	}
	for _, path := range []string{fmt.Sprintf("/jobs/%d/artifacts", lint.JobID), fmt.Sprintf("/jobs/%d/artifacts/download", lint.JobID),
		"/jobs/999/artifacts", "/jobs/999/artifacts/download"} {
		if _, err := e.client.Do(e.ctx, "GET", path, apiToken, nil, io.Discard); api.StatusCode(err) != http.StatusNotFound {
			t.Errorf("GET %s: %v, want 404", path, err)
		}
	}
	if _, err := e.client.Do(e.ctx, "GET", fmt.Sprintf("/jobs/%d/artifacts", build.JobID), test.Token, nil, nil); api.StatusCode(err) != http.StatusUnauthorized {
		t.Errorf("GET /jobs/%d/artifacts with an attempt's token: %v, want 401", build.JobID, err)
	}
}

// TestArtifactsEndToEnd: with a real agent, a job's files reach the job
// that depends on it.
func TestArtifactsEndToEnd(t *testing.T) {
	e := newEnvWith(t, 5*time.Second, nil)
	e.startAgent("one", nil)
	p := e.submit(map[string]string{".gitlab-ci.yml": `
stages: [build, test]
build:
  stage: build
  script: [mkdir -p bin, echo "built by $CI_JOB_NAME" > bin/app]
  artifacts: {paths: [bin/]}
test:
  stage: test
  script: [cat bin/app]
`})
	p = e.wait(p.ID, 30*time.Second)
	if p.Status != "success" {
		t.Fatalf("pipeline %s, want success; test's log:\n%s", p.Status, e.jobLog(jobNamed(t, p, "test").ID))
	}
	if log := e.jobLog(jobNamed(t, p, "test").ID); !strings.Contains(log, "built by build") {
		t.Errorf("test's log lacks the file build made:\n%s", log)
	}
}

// get makes a GET with token and returns the response as it is.
func (e *env) get(path, token string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(e.ctx, "GET", e.url+api.Prefix+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	return http.DefaultClient.Do(req)
}

// TestAssignmentDependencies: an assignment lists the current, unexpired
// artifacts of the jobs its job depends on, in the order the pipeline
// names them, and the names of those that expired.
func TestAssignmentDependencies(t *testing.T) {
	clk := newClock()
	e := newEnvWith(t, 30*time.Second, func(c *server.Config) { c.Now = clk.Now })
	e.submit(map[string]string{".gitlab-ci.yml": `
stages: [build, test]
a: {stage: build, script: [x], artifacts: {paths: [out/]}}
b: {stage: build, script: [x], artifacts: {paths: [out/]}}
c: {stage: build, script: [x], artifacts: {paths: [out/]}}
none: {stage: build, script: [x]}
short: {stage: build, script: [x], artifacts: {paths: [out/], expire_in: 1 hour}}
test:
  stage: test
  script: [x]
  dependencies: [c, a, short, none, b]
everything:
  stage: test
  script: [x]
`})
	agent := e.claimer("hand")
	builds := agent.claimAll(5)
	archives := map[string][]byte{}
	for name, as := range builds {
		if name != "none" {
			archives[name] = targz(t, map[string]string{"out/" + name: name})
			e.mustUpload(as, archives[name])
		}
	}
	// A retry's upload replaces the job's archive: the dependents get the
	// second one, and the first is removed.
	agent.complete(builds["b"])
	if _, err := e.client.Do(e.ctx, "POST", fmt.Sprintf("/jobs/%d/retry", builds["b"].JobID), apiToken, nil, nil); err != nil {
		t.Fatal(err)
	}
	retry := agent.claim()
	if retry.JobName != "b" || retry.Attempt != 2 {
		t.Fatalf("claimed %s attempt %d, want b attempt 2", retry.JobName, retry.Attempt)
	}
	// The retry holds the job now: the first attempt's archive is gone, so
	// that a retry keeping no files leaves dependents none.
	old := archives["b"]
	if _, err := e.client.Do(e.ctx, "GET", fmt.Sprintf("/jobs/%d/artifacts", retry.JobID), apiToken, nil, nil); api.StatusCode(err) != http.StatusNotFound {
		t.Errorf("artifacts of b once its retry started: %v, want 404", err)
	}
	if e.hasBlob(digest(old)) {
		t.Errorf("once b's retry started, the store still holds its first archive: %v", e.blobFiles())
	}
	archives["b"] = targz(t, map[string]string{"out/b": "b, second attempt"})
	e.mustUpload(retry, archives["b"])
	if !e.hasBlob(digest(archives["b"])) {
		t.Errorf("after b's retry uploaded: store holds %v; want the new archive", e.blobFiles())
	}
	builds["b"] = retry
	for _, as := range builds {
		agent.complete(as)
	}

	clk.Add(2 * time.Hour) // short's artifacts expire
	ref := func(name string) api.ArtifactRef {
		return api.ArtifactRef{JobID: builds[name].JobID, JobName: name, Size: int64(len(archives[name])), Digest: digest(archives[name])}
	}
	got := agent.claimAll(2)
	for _, tc := range []struct {
		job  string
		want []api.ArtifactRef
	}{
		{"test", []api.ArtifactRef{ref("c"), ref("a"), ref("b")}},
		// Without dependencies: every job of the earlier stages, in
		// their order.
		{"everything", []api.ArtifactRef{ref("a"), ref("b"), ref("c")}},
	} {
		if deps := got[tc.job].Dependencies; !slices.Equal(deps, tc.want) {
			t.Errorf("dependencies of %s:\n got %+v\nwant %+v", tc.job, deps, tc.want)
		}
		if exp := got[tc.job].ExpiredDependencies; !slices.Equal(exp, []string{"short"}) {
			t.Errorf("expired dependencies of %s: %q, want [short]", tc.job, exp)
		}
	}
	// The expired archive is not served, even before the expiry loop
	// deletes it.
	err := e.client.DownloadArtifacts(e.ctx, got["test"].AttemptID, got["test"].Token, builds["short"].JobID, io.Discard)
	if api.StatusCode(err) != http.StatusNotFound || !strings.Contains(err.Error(), "expired") {
		t.Errorf("download of expired artifacts: %v, want 404 saying they expired", err)
	}
}

// An archive over the server's limit, or one that is not gzip, is refused
// and leaves nothing behind.
func TestArtifactsRefused(t *testing.T) {
	const limit = 4 << 10
	e := newEnvWith(t, 30*time.Second, func(c *server.Config) { c.MaxArtifactBytes = limit })
	e.submit(map[string]string{".gitlab-ci.yml": "build: {script: [x], artifacts: {paths: [out/]}}\n"})
	as := e.claimer("hand").claim()
	gz := func(n int) []byte { // n bytes that start as gzip does
		b := bytes.Repeat([]byte{'x'}, n)
		b[0], b[1] = 0x1f, 0x8b
		return b
	}
	for _, tc := range []struct {
		name    string
		body    []byte
		chunked bool // send without a Content-Length
		code    int
		msg     string
	}{
		{"over the limit", gz(limit + 1), false, http.StatusRequestEntityTooLarge, "artifacts archive of 4097 bytes is larger than the server's limit of 4 KiB (4096 bytes)"},
		{"over the limit, chunked", gz(limit + 1), true, http.StatusRequestEntityTooLarge, "larger than the server's limit of 4 KiB (4096 bytes)"},
		// The server answers before the body is sent: the client must
		// still get the answer, not a broken connection it would retry.
		{"far over the limit", gz(8 << 20), false, http.StatusRequestEntityTooLarge, "limit of 4 KiB"},
		{"far over the limit, chunked", gz(8 << 20), true, http.StatusRequestEntityTooLarge, "limit of 4 KiB"},
		{"not gzip", []byte("PK\x03\x04 a zip file"), false, http.StatusBadRequest, "not a gzip-compressed archive"},
		{"not gzip, chunked", []byte("\x1f not quite"), true, http.StatusBadRequest, "not a gzip-compressed archive"},
		{"empty", nil, false, http.StatusBadRequest, "not a gzip-compressed archive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader = bytes.NewReader(tc.body)
			size := int64(len(tc.body))
			if tc.chunked {
				body, size = struct{ io.Reader }{body}, -1
			}
			_, err := e.client.UploadArtifacts(e.ctx, as.AttemptID, as.Token, body, size)
			var se *api.StatusError
			if !errors.As(err, &se) || se.Code != tc.code || !strings.Contains(se.Body.Error, tc.msg) {
				t.Fatalf("upload: %v; want %d saying %q", err, tc.code, tc.msg)
			}
			if files := e.blobFiles(); len(files) != 0 {
				t.Errorf("artifacts store after a refused upload: %v, want empty", files)
			}
			if a, err := e.storedArtifacts(as.JobID); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("artifacts record after a refused upload: %+v, %v; want none", a, err)
			}
		})
	}
	// Exactly at the limit is fine.
	if _, err := e.upload(as, gz(limit)); err != nil {
		t.Errorf("upload of %d bytes, the limit: %v", limit, err)
	}
}

// Only the attempt that holds its job may upload; a fenced-off attempt's
// upload is refused (409) and leaves nothing behind.
func TestArtifactsFenced(t *testing.T) {
	e := newEnvWith(t, 30*time.Second, nil)
	e.submit(map[string]string{".gitlab-ci.yml": "build: {script: [x], artifacts: {paths: [out/]}}\n"})
	agent := e.claimer("hand")
	first := agent.claim()
	if _, err := e.client.Do(e.ctx, "POST", fmt.Sprintf("/attempts/%d/release", first.AttemptID), first.Token, nil, nil); err != nil {
		t.Fatal(err)
	}
	second := agent.claim() // the same job, attempt 2
	if second.JobID != first.JobID || second.Attempt != 2 {
		t.Fatalf("claimed job %d attempt %d, want job %d attempt 2", second.JobID, second.Attempt, first.JobID)
	}
	archive := targz(t, map[string]string{"out/x": "from attempt 1"})
	for _, tc := range []struct {
		name  string
		id    int64
		token string
		code  int
	}{
		{"released attempt", first.AttemptID, first.Token, http.StatusConflict},
		{"wrong token", second.AttemptID, first.Token, http.StatusUnauthorized},
		{"unknown attempt", second.AttemptID + 100, second.Token, http.StatusNotFound},
	} {
		_, err := e.client.UploadArtifacts(e.ctx, tc.id, tc.token, bytes.NewReader(archive), int64(len(archive)))
		if api.StatusCode(err) != tc.code {
			t.Errorf("upload by %s: %v, want %d", tc.name, err, tc.code)
		}
	}
	if files := e.blobFiles(); len(files) != 0 {
		t.Errorf("artifacts store after fenced uploads: %v, want empty", files)
	}
	if a, err := e.storedArtifacts(first.JobID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("artifacts record after fenced uploads: %+v, %v; want none", a, err)
	}
	mine := targz(t, map[string]string{"out/x": "from attempt 2"})
	if a := e.mustUpload(second, mine); a.Digest != digest(mine) {
		t.Errorf("upload by the current attempt recorded %s, want %s", a.Digest, digest(mine))
	}
	// The released attempt may not download either.
	err := e.client.DownloadArtifacts(e.ctx, first.AttemptID, first.Token, first.JobID, io.Discard)
	if api.StatusCode(err) != http.StatusConflict {
		t.Errorf("download by a released attempt: %v, want 409", err)
	}
}

// An attempt may download the artifacts of its own pipeline's jobs only.
func TestArtifactsOtherPipeline(t *testing.T) {
	e := newEnvWith(t, 30*time.Second, nil)
	file := map[string]string{".gitlab-ci.yml": "build: {script: [x], artifacts: {paths: [out/]}}\n"}
	e.submit(file)
	agent := e.claimer("hand")
	mine := agent.claim()
	e.mustUpload(mine, targz(t, map[string]string{"out/x": "x"}))
	agent.complete(mine)
	e.submit(file)
	other := agent.claim()
	if other.PipelineID == mine.PipelineID {
		t.Fatalf("both attempts in pipeline %d", mine.PipelineID)
	}
	for _, tc := range []struct {
		name  string
		jobID int64
		code  int
	}{
		{"job of another pipeline", mine.JobID, http.StatusForbidden},
		{"no such job", other.JobID + 100, http.StatusNotFound},
		{"own job, no artifacts", other.JobID, http.StatusNotFound},
	} {
		err := e.client.DownloadArtifacts(e.ctx, other.AttemptID, other.Token, tc.jobID, io.Discard)
		if api.StatusCode(err) != tc.code {
			t.Errorf("download of %s: %v, want %d", tc.name, err, tc.code)
		}
	}
}

// The server deletes expired artifacts: their records, and their archives
// once no record references them.
func TestArtifactsExpire(t *testing.T) {
	clk := newClock()
	e := newEnvWith(t, 30*time.Second, func(c *server.Config) {
		c.Now = clk.Now
		c.ArtifactExpiryInterval = 10 * time.Millisecond
	})
	e.submit(map[string]string{".gitlab-ci.yml": `
default-expiry: {script: [x], artifacts: {paths: [out/]}}
same-bytes-kept: {script: [x], artifacts: {paths: [out/], expire_in: never}}
own-bytes: {script: [x], artifacts: {paths: [out/], expire_in: 60 days}}
short: {script: [x], artifacts: {paths: [out/], expire_in: 1 day}}
`})
	agent := e.claimer("hand")
	jobs := agent.claimAll(4)
	shared := targz(t, map[string]string{"out/x": "shared"})
	e.mustUpload(jobs["default-expiry"], shared)
	e.mustUpload(jobs["same-bytes-kept"], shared)
	own := targz(t, map[string]string{"out/x": "own"})
	e.mustUpload(jobs["own-bytes"], own)
	short := targz(t, map[string]string{"out/x": "short"})
	e.mustUpload(jobs["short"], short)
	for _, as := range jobs {
		agent.complete(as)
	}
	for _, step := range []struct {
		advance time.Duration
		gone    []string // jobs whose artifacts are deleted by now
		blobs   [][]byte // archives still stored
	}{
		{0, nil, [][]byte{shared, own, short}},
		{25 * time.Hour, []string{"short"}, [][]byte{shared, own}},
		{30 * 24 * time.Hour, []string{"short", "default-expiry"}, [][]byte{shared, own}},
		{60 * 24 * time.Hour, []string{"short", "default-expiry", "own-bytes"}, [][]byte{shared}},
	} {
		clk.Add(step.advance)
		deadline := time.Now().Add(10 * time.Second)
		for {
			var missing []string
			for name, as := range jobs {
				_, err := e.storedArtifacts(as.JobID)
				switch {
				case errors.Is(err, store.ErrNotFound):
					missing = append(missing, name)
				case err != nil:
					t.Fatal(err)
				}
			}
			slices.Sort(missing)
			want := slices.Sorted(slices.Values(step.gone))
			var wantFiles []string
			for _, b := range step.blobs {
				wantFiles = append(wantFiles, strings.TrimPrefix(digest(b), "sha256:"))
			}
			slices.Sort(wantFiles)
			files := e.blobFiles()
			if slices.Equal(missing, want) && slices.Equal(files, wantFiles) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%v later: artifacts of %q deleted and archives %v stored; want %q deleted and %v stored",
					step.advance, missing, files, want, wantFiles)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	// What is left is still served.
	var got bytes.Buffer
	if _, err := e.client.Do(e.ctx, "GET", fmt.Sprintf("/jobs/%d/artifacts/download", jobs["same-bytes-kept"].JobID), apiToken, nil, &got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), shared) {
		t.Errorf("the kept archive: %d bytes, not the %d uploaded", got.Len(), len(shared))
	}
}

// TestExpireArtifactsBatches: one pass deletes more expired artifacts than
// one transaction does.
func TestExpireArtifactsBatches(t *testing.T) {
	e := newEnvWith(t, 30*time.Second, nil)
	e.submit(map[string]string{".gitlab-ci.yml": "build: {script: [x], artifacts: {paths: [out/]}}\n"})
	as := e.claimer("hand").claim()
	clk := newClock()
	blobs, err := source.NewBlobs(e.artifacts)
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(server.Config{Store: e.store, Scheduler: e.sched, Artifacts: blobs, Now: clk.Now})
	const n = 250
	err = e.store.Update(e.ctx, func(tx store.Tx) error {
		for i := range n {
			j, err := tx.Jobs().Get(e.ctx, as.JobID)
			if err != nil {
				return err
			}
			j.ID, j.Name = 0, fmt.Sprint("copy ", i)
			if err := tx.Jobs().Create(e.ctx, j); err != nil {
				return err
			}
			at := &store.Attempt{JobID: j.ID, Number: 1, AgentID: 1, TokenHash: []byte{1}, Status: store.AttemptSuccess}
			if err := tx.Jobs().CreateAttempt(e.ctx, at); err != nil {
				return err
			}
			if _, err := tx.Artifacts().Put(e.ctx, &store.Artifact{JobID: j.ID, AttemptID: at.ID, Name: "a",
				Digest: digest([]byte{byte(i)}), Size: 1, CreatedAt: clk.Now(), ExpireAt: clk.Now().Add(time.Minute)}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if deleted, err := srv.ExpireArtifacts(e.ctx); err != nil || deleted != 0 {
		t.Errorf("ExpireArtifacts before they expire: %d deleted, %v; want 0", deleted, err)
	}
	clk.Add(time.Minute)
	if deleted, err := srv.ExpireArtifacts(e.ctx); err != nil || deleted != n {
		t.Errorf("ExpireArtifacts: %d deleted, %v; want %d", deleted, err, n)
	}
	if deleted, err := srv.ExpireArtifacts(e.ctx); err != nil || deleted != 0 {
		t.Errorf("ExpireArtifacts again: %d deleted, %v; want 0", deleted, err)
	}
}

// BenchmarkArtifactUpload measures the upload of a 64 MiB artifacts archive
// over HTTP on loopback: streamed into the blob store (hashed, written,
// synced), recorded, and the archive it replaces removed. Every upload is
// new bytes.
func BenchmarkArtifactUpload(b *testing.B) {
	e := newEnvWith(b, time.Hour, nil)
	e.submit(map[string]string{".gitlab-ci.yml": "build: {script: [x], artifacts: {paths: [out/]}}\n"})
	as := e.claimer("bench").claim()
	body := make([]byte, 64<<20)
	for i := range body {
		body[i] = byte(i*7 + i>>9)
	}
	body[0], body[1] = 0x1f, 0x8b
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	for i := range b.N {
		body[2], body[3], body[4], body[5] = byte(i), byte(i>>8), byte(i>>16), byte(i>>24)
		if _, err := e.upload(as, body); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if files := e.blobFiles(); len(files) != 1 {
		b.Errorf("after %d uploads the store holds %d archives, want 1", b.N, len(files))
	}
}
