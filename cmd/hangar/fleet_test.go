package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hangar-ci/hangar/internal/fleet/autoscaler"
)

// fleetConfig is a fleet of local instances: small keeps two warm and
// grows to four; night keeps two warm too, but its schedule, which holds
// at every minute, sets its floor to 0.
const fleetConfig = `
fleet:
  installation: test
  classes:
    - name: small
      labels: [linux]
      provider: local
      provider_config: {grace: 10s}
      max_instances: 4
      idle_count: 2
      idle_time: 3s
      boot_timeout: 60s
      heartbeat_timeout: 20s
      hooks:
        webhook: %s
    - name: night
      labels: [night]
      provider: local
      max_instances: 2
      idle_count: 2
      schedules:
        - periods: ["* * * * *"]
          idle_count: 0
`

// hookLog collects the removals a webhook receives.
type hookLog struct {
	mu     sync.Mutex
	events []map[string]any
}

func (h *hookLog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var ev map[string]any
	json.NewDecoder(r.Body).Decode(&ev)
	h.mu.Lock()
	h.events = append(h.events, ev)
	h.mu.Unlock()
}

func (h *hookLog) count(reason string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, ev := range h.events {
		if ev["reason"] == reason {
			n++
		}
	}
	return n
}

// fleetCluster starts a server with the fleet of fleetConfig.
func fleetCluster(t *testing.T) (*cluster, *hookLog) {
	t.Helper()
	hooks := &hookLog{}
	hs := httptest.NewServer(hooks)
	t.Cleanup(hs.Close)
	dir := t.TempDir()
	config := filepath.Join(dir, "hangar.yml")
	if err := os.WriteFile(config, fmt.Appendf(nil, fleetConfig, hs.URL), 0o644); err != nil {
		t.Fatal(err)
	}
	c := newCluster(t, faultLease, "--config", config, "--fleet-interval", "300ms")
	// The instances outlive the server process: stop them with the test.
	t.Cleanup(func() { stopInstances(t, "test") })
	return c, hooks
}

// fleetClasses returns the classes as GET /fleet shows them.
func (c *cluster) fleetClasses() map[string]autoscaler.ClassStatus {
	c.t.Helper()
	var out struct {
		Classes []autoscaler.ClassStatus `json:"classes"`
	}
	c.do(http.MethodGet, "/fleet", nil, &out)
	m := map[string]autoscaler.ClassStatus{}
	for _, cl := range out.Classes {
		m[cl.Name] = cl
	}
	return m
}

// states counts a class's instances by state.
func states(cl autoscaler.ClassStatus) map[string]int {
	m := map[string]int{}
	for _, in := range cl.Instances {
		m[in.State]++
		if in.State == "ready" && in.Running == 0 {
			m["idle"]++
		}
	}
	return m
}

// instancePIDs returns the pids of the agents of the local instances of
// installation, by agent name, from the processes' command lines.
func instancePIDs(t *testing.T, installation string) map[string]int {
	t.Helper()
	out := map[string]int{}
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", p.Name(), "cmdline"))
		if err != nil {
			continue
		}
		for _, arg := range strings.Split(string(cmdline), "\x00") {
			if name, ok := strings.CutPrefix(arg, "--name="+installation+"-"); ok {
				out[installation+"-"+name] = pid
			}
		}
	}
	return out
}

// stopInstances kills what the fleet of installation started and the
// servers left running.
func stopInstances(t *testing.T, installation string) {
	for _, pid := range instancePIDs(t, installation) {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

func TestFleetLocal(t *testing.T) {
	requireBash(t)
	c, hooks := fleetCluster(t)

	// Warm pool: two idle instances soon after start; none for night,
	// whose schedule sets the floor to 0.
	c.waitFor("two idle instances of small", 30*time.Second, func() bool { return states(c.fleetClasses()["small"])["idle"] == 2 })
	if n := len(c.fleetClasses()["night"].Instances); n != 0 {
		t.Errorf("night has %d instances, want 0: its schedule sets idle_count 0", n)
	}
	// A job no class serves fails at once, saying why.
	gpu := c.submit(map[string]string{".gitlab-ci.yml": "train:\n  tags: [gpu]\n  script: [true]\n"})
	gpu = c.waitPipeline(gpu.ID, 15*time.Second)
	want := "no runner class serves tags [gpu]: classes are small [linux], night [night]"
	if j := gpu.Jobs[0]; j.Status != "failed" || !strings.Contains(j.Reason, want) {
		t.Errorf("a job tagged gpu: %s (%s); want failed, saying %q", j.Status, j.Reason, want)
	}

	code, out, stderr := hangar(t, "runners", "--server", c.url, "--token", faultAPIToken)
	if code != exitOK || !strings.Contains(out, "small  local     idle    linux") || !strings.Contains(out, "night") {
		t.Errorf("hangar runners: exit %d, stderr %q, output:\n%s", code, stderr, out)
	}
	code, out, _ = hangar(t, "instances", "--server", c.url, "--token", faultAPIToken)
	if code != exitOK || strings.Count(out, "test-small-") != 2 || !strings.Contains(out, "ready") {
		t.Errorf("hangar instances: exit %d, want two ready instances of small:\n%s", code, out)
	}

	// A burst scales up to max_instances, never beyond, and every job
	// succeeds: scale-in waits for running jobs.
	var jobs strings.Builder
	for i := range 8 {
		fmt.Fprintf(&jobs, "j%d:\n  tags: [linux]\n  script: [sleep 2]\n", i)
	}
	p := c.submit(map[string]string{".gitlab-ci.yml": jobs.String()})
	most := 0
	c.waitFor("the burst to scale small up to 4", 30*time.Second, func() bool {
		n := len(c.fleetClasses()["small"].Instances)
		most = max(most, n)
		return n == 4
	})
	p = c.waitPipeline(p.ID, 60*time.Second)
	if p.Status != "success" {
		t.Fatalf("pipeline %s after the burst, want success", p.Status)
	}
	for range 20 {
		most = max(most, len(c.fleetClasses()["small"].Instances))
		time.Sleep(100 * time.Millisecond)
	}
	if most > 4 {
		t.Errorf("small reached %d instances, max_instances is 4", most)
	}

	// Of the burst's 8 jobs, the first found the two warm instances; the
	// rest waited for new ones, or for one of those to be free.
	if m := c.metrics(); !strings.Contains(m, `hangar_fleet_pool_jobs_total{class="small",warm="true"}`) ||
		!strings.Contains(m, `hangar_fleet_pickup_seconds_count{class="small"} 8`) {
		t.Errorf("/metrics lacks the pool hits and pickup times of small's 8 jobs:\n%s", m)
	}
	if m := c.metrics(); !strings.Contains(m, `hangar_fleet_instances{class="small",state="ready"}`) ||
		!strings.Contains(m, `hangar_fleet_idle_instance_seconds_total{class="small"}`) ||
		!strings.Contains(m, `hangar_fleet_provisioning_seconds_count{class="small"}`) {
		t.Errorf("/metrics lacks the fleet's metrics:\n%s", m)
	}

	// Back down to the floor once idle_time has passed, the hooks told.
	c.waitFor("small to scale back to 2", 30*time.Second, func() bool { return len(c.fleetClasses()["small"].Instances) == 2 })
	if !poll(10*time.Second, func() bool { return hooks.count("idle above the pool's size") >= 2 }) {
		t.Errorf("the webhook heard of %d idle removals, want at least 2", hooks.count("idle above the pool's size"))
	}

	// An instance whose agent dies is replaced, and its job runs again.
	p = c.submit(map[string]string{".gitlab-ci.yml": "long:\n  tags: [linux]\n  script:\n    - echo started\n    - sleep 3\n"})
	jobID := p.Jobs[0].ID
	c.waitFor("the long job to start", 30*time.Second, func() bool { return strings.Contains(c.jobLog(jobID), "started") })
	var runner string
	c.waitFor("the fleet to see the long job running", 10*time.Second, func() bool {
		for _, in := range c.fleetClasses()["small"].Instances {
			if in.Running > 0 {
				runner = in.Name
			}
		}
		return runner != ""
	})
	pid := instancePIDs(t, "test")[runner]
	if runner == "" || pid == 0 {
		t.Fatalf("no process runs the long job (instance %q, pid %d)", runner, pid)
	}
	syscall.Kill(pid, syscall.SIGKILL)
	j := c.waitPipeline(p.ID, 60*time.Second).Jobs[0]
	if j.Status != "success" || len(j.Attempts) != 2 {
		t.Errorf("the killed instance's job: %s after %d attempts, want success on a second attempt", j.Status, len(j.Attempts))
	}
	c.waitFor("the dead instance to be replaced", 30*time.Second, func() bool {
		cl := c.fleetClasses()["small"]
		for _, in := range cl.Instances {
			if in.Name == runner {
				return false
			}
		}
		return states(cl)["idle"] == 2
	})

	// A restarted server adopts the instances it finds.
	before := map[string]bool{}
	for _, in := range c.fleetClasses()["small"].Instances {
		before[in.Name] = true
	}
	c.server.killAlone()
	c.startServer()
	c.waitFor("the restarted server to see small's instances", 30*time.Second, func() bool {
		return states(c.fleetClasses()["small"])["idle"] == 2
	})
	time.Sleep(time.Second) // a few passes
	for _, in := range c.fleetClasses()["small"].Instances {
		if !before[in.Name] {
			t.Errorf("after the restart small has a new instance %s; want the two it had, adopted", in.Name)
		}
	}
	var events struct {
		Events []autoscaler.Event `json:"events"`
	}
	c.do(http.MethodGet, "/fleet/events", nil, &events)
	adopted := 0
	for _, ev := range events.Events {
		if ev.Kind == "adopted" {
			adopted++
		}
	}
	if adopted != 2 {
		t.Errorf("%d instances adopted after the restart, want 2; events %+v", adopted, events.Events)
	}
}

// Bad configuration stops the server at start, naming the file, the line
// and the field.
func TestFleetBadConfig(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		config, want string
	}{
		{"fleet:\n  classes:\n    - name: a\n      provider: cloud9\n      max_instances: 1\n", `fleet.classes[0].provider: must be one of docker, local, got "cloud9"`},
		{"fleet:\n  classes:\n    - name: a\n      provider: local\n      max_instances: -1\n", "fleet.classes[0].max_instances"},
		{"fleet:\n  classes:\n    - name: a\n      provider: local\n      max_instances: 1\n      schedules:\n        - periods: [\"every day\"]\n", "fleet.classes[0].schedules[0].periods[0]"},
		{"fleet:\n  classes:\n    - name: a\n      provider: local\n      max_instances: 1\n      heartbeat_timeout: 5s\n", "fleet.classes[0].heartbeat_timeout: 5s is less than three of the agents' heartbeats"},
	} {
		path := filepath.Join(dir, "hangar.yml")
		if err := os.WriteFile(path, []byte(tc.config), 0o644); err != nil {
			t.Fatal(err)
		}
		code, _, stderr := hangar(t, "server", "--config", path, "--data", filepath.Join(dir, "data"), "--listen", "127.0.0.1:0")
		if code != exitUsage || !strings.Contains(stderr, path+":") || !strings.Contains(stderr, tc.want) {
			t.Errorf("hangar server with %q: exit %d, stderr %q; want exit %d naming the file and %q", tc.config, code, stderr, exitUsage, tc.want)
		}
	}
}

// Instances that never boot open the class's breaker: the class shows
// degraded and stops creating, instead of a create-delete storm.
func TestFleetBootFailuresOpenBreaker(t *testing.T) {
	requireBash(t)
	dir := t.TempDir()
	config := filepath.Join(dir, "hangar.yml")
	// The agents exit at once: --executor podman is no executor.
	err := os.WriteFile(config, []byte(`
fleet:
  installation: test
  classes:
    - name: broken
      labels: [linux]
      provider: local
      provider_config: {agent_args: ["--executor=podman"], grace: 2s}
      max_instances: 2
      idle_count: 2
      boot_timeout: 20s
`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	c := newCluster(t, faultLease, "--config", config, "--fleet-interval", "200ms")
	t.Cleanup(func() { stopInstances(t, "test") })
	c.waitFor("the class to be degraded", 30*time.Second, func() bool { return c.fleetClasses()["broken"].Degraded })
	count := func(kind string) int {
		var events struct {
			Events []autoscaler.Event `json:"events"`
		}
		c.do(http.MethodGet, "/fleet/events", nil, &events)
		n := 0
		for _, ev := range events.Events {
			if ev.Kind == kind {
				n++
			}
		}
		return n
	}
	failed, created := count("boot_failed"), count("created")
	if failed < 3 {
		t.Errorf("%d boot failures before the breaker opened, want 3", failed)
	}
	time.Sleep(3 * time.Second) // 15 passes
	if now := count("created"); now != created {
		t.Errorf("the class created %d more instances while its breaker was open", now-created)
	}
	code, out, _ := hangar(t, "runners", "--server", c.url, "--token", faultAPIToken)
	if code != exitOK || !strings.Contains(out, "degraded: instances fail to boot") {
		t.Errorf("hangar runners does not show the class degraded:\n%s", out)
	}
}

// An agent with --max-jobs takes that many jobs and no more: the fleet
// gives max_use_count that way, so that a recycled instance never runs one
// job too many.
func TestAgentMaxJobs(t *testing.T) {
	requireBash(t)
	t.Parallel()
	c := newCluster(t, faultLease)
	a := c.startAgent("M", c.url, "--max-jobs", "1")
	p := c.submit(map[string]string{".gitlab-ci.yml": "one: {script: [true]}\ntwo: {script: [true]}\n"})
	c.waitFor("one job to finish", 15*time.Second, func() bool {
		done := 0
		for _, j := range c.pipeline(p.ID).Jobs {
			if j.Status == "success" {
				done++
			}
		}
		return done == 1
	})
	time.Sleep(time.Second) // time enough to claim another, were it allowed
	done := 0
	for _, j := range c.pipeline(p.ID).Jobs {
		if j.Status == "success" {
			done++
		}
	}
	if done != 1 || !strings.Contains(a.stderr.String(), "claiming no more") {
		t.Errorf("%d jobs done by an agent with --max-jobs 1, want 1 and the agent saying it claims no more:\n%s", done, a.stderr.String())
	}
}
