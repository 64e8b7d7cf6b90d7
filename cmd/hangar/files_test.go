package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// A job whose artifacts are larger than the server takes fails, saying so,
// and the server keeps nothing of them.
func TestArtifactsOverTheLimit(t *testing.T) {
	requireBash(t)
	t.Parallel()
	c := newCluster(t, faultLease, "--max-artifact-bytes", "65536")
	c.startAgent("A", c.url)
	p := c.submit(map[string]string{".gitlab-ci.yml": `
big:
  script:
    - head -c 200000 /dev/urandom > big.bin
  artifacts:
    paths: [big.bin]
small:
  script:
    - echo small > small.txt
  artifacts:
    paths: [small.txt]
`})
	p = c.waitPipeline(p.ID, 30*time.Second)
	for _, j := range p.Jobs {
		log := c.jobLog(j.ID)
		switch j.Name {
		case "big":
			want := "ERROR: Job failed: artifacts: too large: the archive of 195.3 KiB of files is larger than the 64.0 KiB the server takes"
			if j.Status != "failed" || !strings.Contains(log, want) {
				t.Errorf("job big is %s; want failed with %q in its log:\n%s", j.Status, want, log)
			}
			var out bytes.Buffer
			code, err := c.client.Do(context.Background(), http.MethodGet, fmt.Sprintf("/jobs/%d/artifacts", j.ID), faultAPIToken, nil, &out)
			if code != http.StatusNotFound {
				t.Errorf("GET the artifacts of job big: %d %v, want 404", code, err)
			}
		case "small":
			if j.Status != "success" {
				t.Errorf("job small is %s, want success:\n%s", j.Status, log)
			}
		}
	}
}

// Cache policies, when: and fallback keys decide what is restored and
// saved, from one run of hangar run to the next.
func TestRunCachePolicies(t *testing.T) {
	requireBash(t)
	t.Parallel()
	dir := writeDir(t, map[string]string{".gitlab-ci.yml": `
stages: [seed, use]
seed:
  stage: seed
  cache:
    key: base
    paths: [c/]
  script:
    - mkdir -p c && echo "base from $RUN_ID" > c/base.txt
pull-only:
  stage: use
  cache:
    key: pulled
    policy: pull
    paths: [c/]
  script:
    - mkdir -p c && echo "pull-only saw ${RUN_ID}" > c/pulled.txt
fallback:
  stage: use
  cache:
    key: branch-$RUN_ID
    fallback_keys: [base]
    paths: [c/]
  script:
    - cat c/base.txt
on-failure:
  stage: use
  cache:
    key: failing
    when: on_failure
    paths: [c/]
  allow_failure: true
  script:
    - mkdir -p c && echo "saved on failure" > c/failed.txt
    - 'test -f c/was-restored && echo "restored: yes" || touch c/was-restored'
    - exit 1
`})
	cacheDir := t.TempDir()
	runOnce := func(id string) string {
		t.Helper()
		code, stdout, stderr := hangar(t, "run", "--cache-dir", cacheDir, "--var", "RUN_ID="+id, dir)
		if code != exitOK {
			t.Fatalf("hangar run #%s: exit %d\nstdout:\n%s\nstderr:\n%s", id, code, stdout, stderr)
		}
		return stdout
	}
	first := runOnce("1")
	for _, want := range []string{
		"WARNING: no cache found for pulled", // pull: never saved, so never found
		"Checking cache for base...",         // the fallback after branch-1
		"base from 1",
		"Created cache failing", // when: on_failure on a failing job
	} {
		if !strings.Contains(first, want) {
			t.Errorf("run 1 output lacks %q:\n%s", want, first)
		}
	}
	if strings.Contains(first, "Created cache pulled") {
		t.Errorf("a cache with policy pull was saved:\n%s", first)
	}
	second := runOnce("2")
	for _, want := range []string{"WARNING: no cache found for pulled", "base from 2", "restored: yes"} {
		if !strings.Contains(second, want) {
			t.Errorf("run 2 output lacks %q:\n%s", want, second)
		}
	}
}

// A job whose dependency's artifacts expired before it started fails,
// saying so, as in GitLab.
func TestRunExpiredDependency(t *testing.T) {
	requireBash(t)
	t.Parallel()
	dir := writeDir(t, map[string]string{".gitlab-ci.yml": `
stages: [build, test]
build:
  stage: build
  script: [mkdir out, echo hi > out/a.txt]
  artifacts:
    paths: [out/]
    expire_in: 1 second
test:
  stage: test
  when: delayed
  start_in: 2 seconds
  script: [cat out/a.txt]
`})
	code, stdout, stderr := hangar(t, "run", "--cache-dir", t.TempDir(), dir)
	if code != exitFailed || !strings.Contains(stdout, "ERROR: Job failed: the artifacts of build expired") {
		t.Errorf("hangar run: exit %d; want %d and the expired artifacts named\nstdout:\n%s\nstderr:\n%s", code, exitFailed, stdout, stderr)
	}
}
