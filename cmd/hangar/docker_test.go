package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hangar-ci/hangar/internal/executor/docker/dockertest"
)

// dockerAgent are the flags of an agent that runs jobs in the test image.
var dockerAgent = []string{"--executor", "docker", "--docker-image", dockertest.Image, "--docker-pull-policy", "never"}

// sleepingJob runs in a container until it is stopped, with a service
// beside it.
const sleepingJob = `
job:
  services:
    - name: ` + dockertest.Image + `
      alias: echo
      command: ["/bin/echo-server"]
  script:
    - echo started
    - sleep 1000
`

// A job cancelled while it runs in a container has its containers and
// network removed within 5 s.
func TestDockerCancelRemovesContainers(t *testing.T) {
	dc := dockertest.Client(t)
	t.Parallel()
	c := newCluster(t, faultLease)
	dockertest.RemoveOnCleanup(t, dc, "hangar.work_dir="+filepath.Join(c.dir, "work-D"))
	c.startAgent("D", c.url, dockerAgent...)
	p := c.submit(map[string]string{".gitlab-ci.yml": sleepingJob})
	jobID := p.Jobs[0].ID
	label := "hangar.work_dir=" + filepath.Join(c.dir, "work-D")
	c.waitFor("the job to start", 30*time.Second, func() bool { return strings.Contains(c.jobLog(jobID), "\nstarted\n") })
	if n := len(dockertest.Containers(t, dc, label)); n != 2 {
		t.Fatalf("%d containers carry %s while the job runs, want 2 (the job's and its service's)", n, label)
	}

	c.do(http.MethodPost, fmt.Sprintf("/jobs/%d/cancel", jobID), nil, nil)
	cancelled := time.Now()
	gone := poll(10*time.Second, func() bool {
		return len(dockertest.Containers(t, dc, label)) == 0 && len(dockertest.Networks(t, dc, label)) == 0
	})
	if took := time.Since(cancelled); !gone || took > 5*time.Second {
		t.Errorf("containers and network of the cancelled job gone: %v, after %v; want gone within 5s", gone, took)
	}
	if p := c.waitPipeline(p.ID, 15*time.Second); p.Jobs[0].Status != "canceled" {
		t.Errorf("job %s, want canceled", p.Jobs[0].Status)
	}
}

// An agent killed with -9 mid-job leaves its containers behind; restarted,
// it removes them before it takes work.
func TestDockerAgentKilledLeftoversRemoved(t *testing.T) {
	dc := dockertest.Client(t)
	t.Parallel()
	c := newCluster(t, faultLease)
	dockertest.RemoveOnCleanup(t, dc, "hangar.work_dir="+filepath.Join(c.dir, "work-K"))
	a := c.startAgent("K", c.url, dockerAgent...)
	p := c.submit(map[string]string{".gitlab-ci.yml": sleepingJob})
	jobID := p.Jobs[0].ID
	label := "hangar.work_dir=" + filepath.Join(c.dir, "work-K")
	c.waitFor("the job to start", 30*time.Second, func() bool { return strings.Contains(c.jobLog(jobID), "\nstarted\n") })

	a.kill()
	time.Sleep(time.Second)
	if n := len(dockertest.Containers(t, dc, label)); n != 2 {
		t.Fatalf("%d containers carry %s after the agent was killed, want 2 left behind", n, label)
	}
	// The server still lists the killed run, so startAgent does not wait:
	// wait for the agent to say it cleaned up.
	restarted := c.startAgent("K", c.url, dockerAgent...)
	if !poll(15*time.Second, func() bool {
		return strings.Contains(restarted.stderr.String(), "removed containers and networks left by an earlier run")
	}) {
		t.Fatalf("the restarted agent does not say it removed leftovers:\n%s", restarted.stderr.String())
	}
	if ids := dockertest.Containers(t, dc, label); len(ids) != 0 {
		t.Errorf("the restarted agent left the containers of its killed run: %v", ids)
	}
	if ids := dockertest.Networks(t, dc, label); len(ids) != 0 {
		t.Errorf("the restarted agent left the network of its killed run: %v", ids)
	}
}

// filesPipeline hands files from job to job: build makes an artifact and
// a cache, test reads the artifact and talks to a service by its alias.
const filesPipeline = `
stages: [build, test]
build:
  stage: build
  image: ` + dockertest.Image + `
  cache:
    key: deps-$CI_COMMIT_REF_SLUG
    paths: [deps/]
  script:
    - mkdir -p out deps
    - 'if [ -f deps/stamp ]; then echo "cache hit: $(cat deps/stamp)"; else echo "cache miss"; fi'
    - echo "run $RUN_ID" > deps/stamp
    - echo "built by $CI_JOB_NAME" > out/app.txt
    - echo scratch > out/app.tmp
    - echo "token is $DEPLOY_TOKEN"
  artifacts:
    paths: [out/]
    exclude: [out/*.tmp]
test:
  stage: test
  services:
    - name: ` + dockertest.Image + `
      alias: echo
      command: ["/bin/echo-server"]
  script:
    - cat out/app.txt
    - test ! -e out/app.tmp && echo "excluded file absent"
    - echo "ping from $CI_JOB_NAME" | nc echo 7777
`

// writeDir writes files into a fresh directory and returns its path.
func writeDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// hangar run --executor docker: an artifact travels from one stage to the
// next, a service answers by its alias, and a cache written by one run is
// read by the next.
func TestDockerRunPipelineFiles(t *testing.T) {
	dockertest.Client(t)
	t.Parallel()
	dir := writeDir(t, map[string]string{".gitlab-ci.yml": filesPipeline})
	cacheDir := t.TempDir()
	runOnce := func(id string) string {
		t.Helper()
		code, stdout, stderr := hangar(t, append([]string{"run", "--cache-dir", cacheDir, "--var", "RUN_ID=" + id, "--secret", "DEPLOY_TOKEN=s3cr3t-value-123"}, append(dockerAgent, dir)...)...)
		if code != exitOK {
			t.Fatalf("hangar run #%s: exit %d\nstdout:\n%s\nstderr:\n%s", id, code, stdout, stderr)
		}
		return stdout
	}
	first := runOnce("1")
	if strings.Contains(first, "s3cr3t-value-123") {
		t.Errorf("the secret shows in the output:\n%s", first)
	}
	for _, want := range []string{"token is [MASKED]", "cache miss", "built by build", "excluded file absent", "ping from test", "Uploaded artifacts", "Downloading artifacts for build"} {
		if !strings.Contains(first, want) {
			t.Errorf("run 1 output lacks %q:\n%s", want, first)
		}
	}
	if second := runOnce("2"); !strings.Contains(second, "cache hit: run 1") {
		t.Errorf("run 2 did not read the cache run 1 wrote:\n%s", second)
	}
}

// Jobs with bad files fail, each with a message that says what is wrong,
// and nothing is read or written outside their workspace.
func TestDockerBadFiles(t *testing.T) {
	dockertest.Client(t)
	t.Parallel()
	outside := t.TempDir()
	pipeline := `
escape:
  script: [echo hi > inside.txt]
  artifacts:
    paths: ["../../etc"]
missing-image:
  image: hangar-test/no-such-image:1
  script: [echo never runs]
`
	dir := writeDir(t, map[string]string{".gitlab-ci.yml": pipeline})
	code, stdout, stderr := hangar(t, append([]string{"run", "--cache-dir", outside}, append(dockerAgent, dir)...)...)
	if code != exitFailed {
		t.Fatalf("hangar run: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, exitFailed, stdout, stderr)
	}
	for _, want := range []string{
		`ERROR: Job failed: artifacts: select files: paths: "../../etc": outside the workspace`,
		`image hangar-test/no-such-image:1: the image is not on this host and the pull policy is "never"`,
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout, "never runs") {
		t.Errorf("the job whose image is missing ran:\n%s", stdout)
	}
}
