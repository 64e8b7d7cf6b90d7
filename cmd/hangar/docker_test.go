package main

import (
	"fmt"
	"net/http"
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
