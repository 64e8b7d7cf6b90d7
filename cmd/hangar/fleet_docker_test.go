package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/hangar-ci/hangar/internal/executor/docker/dockertest"
	"github.com/hangar-ci/hangar/internal/fleet/autoscaler"
	fleetdocker "github.com/hangar-ci/hangar/internal/fleet/provider/docker"
)

// dockerFleet starts a server whose one class, dock, runs its agents in
// containers of an image built from the test's hangar binary, with an 8
// MiB tmpfs as their work dir.
func dockerFleet(t *testing.T, dc *client.Client, extra ...string) *cluster {
	t.Helper()
	return dockerFleetOf(t, dc, `
    - name: dock
      labels: [linux]
      provider: docker
      provider_config: {image: IMAGE, work_dir_tmpfs: 8m, grace: 5s}
      max_instances: 2
      idle_count: 1
      max_disk_used_percent: 50
      boot_timeout: 60s
`, extra...)
}

// dockerFleetOf starts a server whose fleet has classes (YAML list items,
// IMAGE standing for the agent image built from the test's binary).
func dockerFleetOf(t *testing.T, dc *client.Client, classes string, extra ...string) *cluster {
	t.Helper()
	tag := fmt.Sprintf("hangar-agent-test:%d", time.Now().UnixNano())
	if err := fleetdocker.BuildAgentImage(context.Background(), dc, hangarBinary(t), dockertest.DebianImage, tag); err != nil {
		t.Fatalf("build the agent image: %v", err)
	}
	t.Cleanup(func() { dc.ImageRemove(context.Background(), tag, client.ImageRemoveOptions{Force: true}) })
	dir := t.TempDir()
	config := filepath.Join(dir, "hangar.yml")
	err := os.WriteFile(config, fmt.Appendf(nil, "fleet:\n  installation: test-%d\n  classes:%s",
		time.Now().UnixNano(), strings.ReplaceAll(classes, "IMAGE", strconv.Quote(tag))), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	c := newCluster(t, faultLease, append([]string{"--config", config, "--fleet-interval", "300ms"}, extra...)...)
	t.Cleanup(func() {
		// The server is gone: remove what its fleet left.
		res, _ := dc.ContainerList(context.Background(), client.ContainerListOptions{All: true,
			Filters: client.Filters{}.Add("label", "hangar.fleet.owner")})
		for _, it := range res.Items {
			if strings.Contains(it.Labels["hangar.fleet.owner"], "test-") {
				dc.ContainerRemove(context.Background(), it.ID, client.ContainerRemoveOptions{Force: true})
			}
		}
	})
	return c
}

// An instance whose work dir's disk fills up is drained and replaced.
func TestFleetDockerDiskFull(t *testing.T) {
	dc := dockertest.Client(t)
	c := dockerFleet(t, dc)
	var first autoscaler.InstanceStatus
	c.waitFor("an idle instance of dock", 60*time.Second, func() bool {
		cl := c.fleetClasses()["dock"]
		if len(cl.Instances) == 1 && cl.Instances[0].State == "ready" {
			first = cl.Instances[0]
			return true
		}
		return false
	})
	// The job leaves 6 MiB in the agent's work dir, outside its
	// workspace (which goes with the job).
	p := c.submit(map[string]string{".gitlab-ci.yml": "fill:\n  tags: [linux]\n  script:\n    - head -c 6000000 /dev/zero > \"$CI_BUILDS_DIR/../fill.bin\"\n"})
	if p = c.waitPipeline(p.ID, 60*time.Second); p.Status != "success" {
		t.Fatalf("the filling job: %s\n%s", p.Status, c.jobLog(p.Jobs[0].ID))
	}
	c.waitFor("the full instance to be replaced", 60*time.Second, func() bool {
		cl := c.fleetClasses()["dock"]
		for _, in := range cl.Instances {
			if in.Name == first.Name {
				return false
			}
		}
		return len(cl.Instances) == 1 && cl.Instances[0].State == "ready"
	})
	var events struct {
		Events []autoscaler.Event `json:"events"`
	}
	c.do(http.MethodGet, "/fleet/events", nil, &events)
	drained := false
	for _, ev := range events.Events {
		if ev.Instance == first.Name && ev.Kind == "draining" && strings.Contains(ev.Reason, "disk is") {
			drained = true
		}
	}
	if !drained {
		t.Errorf("no draining event for %s because of its disk: %+v", first.Name, events.Events)
	}
}

// An instance that goes away under a job (its container killed) has the
// job requeued at once, not when the attempt's lease runs out.
func TestFleetDockerInterruptionRequeues(t *testing.T) {
	dc := dockertest.Client(t)
	c := dockerFleet(t, dc, "--lease-timeout", "2m")
	c.waitFor("an idle instance of dock", 60*time.Second, func() bool {
		cl := c.fleetClasses()["dock"]
		return len(cl.Instances) == 1 && cl.Instances[0].State == "ready"
	})
	p := c.submit(map[string]string{".gitlab-ci.yml": "long:\n  tags: [linux]\n  script:\n    - echo attempt $CI_JOB_ID started\n    - sleep 4\n"})
	jobID := p.Jobs[0].ID
	c.waitFor("the job to start", 60*time.Second, func() bool { return strings.Contains(c.jobLog(jobID), "started") })
	var runner autoscaler.InstanceStatus
	c.waitFor("the fleet to see the job running", 10*time.Second, func() bool {
		for _, in := range c.fleetClasses()["dock"].Instances {
			if in.Running > 0 {
				runner = in
			}
		}
		return runner.ID != ""
	})
	if _, err := dc.ContainerKill(context.Background(), runner.ID, client.ContainerKillOptions{Signal: "KILL"}); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	c.waitFor("a second attempt", 60*time.Second, func() bool { return len(c.job(jobID).Attempts) >= 2 })
	if took := time.Since(killed); took > 30*time.Second {
		t.Errorf("the second attempt started %v after the kill; the lease is 2m, the requeue should be at once", took)
	}
	if p = c.waitPipeline(p.ID, 90*time.Second); p.Status != "success" {
		t.Errorf("pipeline %s, want success on the second attempt", p.Status)
	}
}

// A spot instance interrupted under a job sends the job to its class's
// fallback class, and only there.
func TestFleetDockerSpotFallback(t *testing.T) {
	dc := dockertest.Client(t)
	c := dockerFleetOf(t, dc, `
    - name: spot
      labels: [linux]
      provider: docker
      provider_config: {image: IMAGE, grace: 5s}
      spot: true
      fallback_class: ondemand
      max_instances: 2
      idle_count: 1
    - name: ondemand
      labels: [linux]
      provider: docker
      provider_config: {image: IMAGE, grace: 5s}
      max_instances: 1
      idle_count: 0
`, "--lease-timeout", "2m")
	c.waitFor("an idle spot instance", 60*time.Second, func() bool {
		cl := c.fleetClasses()["spot"]
		return len(cl.Instances) == 1 && cl.Instances[0].State == "ready"
	})
	p := c.submit(map[string]string{".gitlab-ci.yml": "long:\n  tags: [linux]\n  script:\n    - echo started on $HOSTNAME\n    - sleep 3\n"})
	jobID := p.Jobs[0].ID
	var runner autoscaler.InstanceStatus
	c.waitFor("the spot instance to run the job", 60*time.Second, func() bool {
		for _, in := range c.fleetClasses()["spot"].Instances {
			if in.Running > 0 {
				runner = in
			}
		}
		return runner.ID != ""
	})
	if _, err := dc.ContainerKill(context.Background(), runner.ID, client.ContainerKillOptions{Signal: "KILL"}); err != nil {
		t.Fatal(err)
	}
	p = c.waitPipeline(p.ID, 90*time.Second)
	j := c.job(jobID)
	if p.Status != "success" || len(j.Attempts) != 2 {
		t.Fatalf("pipeline %s with %d attempts, want success on a second attempt", p.Status, len(j.Attempts))
	}
	var agents []struct {
		ID   int64  `json:"id"`
		Name string `json:"name"`
	}
	c.do(http.MethodGet, "/agents?all=true", nil, &agents)
	for _, a := range agents {
		if a.ID == j.Attempts[1].AgentID && !strings.Contains(a.Name, "-ondemand-") {
			t.Errorf("the second attempt ran on %s, want an instance of ondemand", a.Name)
		}
	}
}
