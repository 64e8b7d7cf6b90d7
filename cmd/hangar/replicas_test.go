package main

// Several servers on one PostgreSQL database, behind a load balancer (the
// test's proxy): one of them dies as machines die, and nothing is lost.

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hangar-ci/hangar/internal/api"
	"github.com/hangar-ci/hangar/internal/fleet/autoscaler"
	"github.com/hangar-ci/hangar/internal/store/postgres/pgtest"
)

// replicaCluster starts n servers sharing a new PostgreSQL database and a
// data directory, behind a balancer whose URL is the cluster's: the API
// calls of the test and the agents' go through it. flags, given the
// balancer's URL, are added to every server's command line.
func replicaCluster(t *testing.T, n int, lease time.Duration, flags func(url string) []string) (*cluster, []*proc, []string) {
	t.Helper()
	db := pgtest.NewDatabase(t, 0)
	dir := t.TempDir()
	addrs := make([]string, n)
	for i := range addrs {
		addrs[i] = freeAddr(t)
	}
	lb := newProxy(t, addrs...)
	c := &cluster{t: t, dir: dir, data: filepath.Join(dir, "data"), addr: addrs[0], url: lb.url, lease: lease,
		client: api.NewClient(lb.url), serverFlags: []string{"--database", db}}
	if flags != nil {
		c.serverFlags = append(c.serverFlags, flags(lb.url)...)
	}
	servers := make([]*proc, n)
	for i, addr := range addrs {
		servers[i] = c.startServerAt(addr)
	}
	return c, servers, addrs
}

// leaderMetric reads hangar_leader from the server at addr: 1 when it
// leads, 0 when it does not, -1 when it does not answer.
func leaderMetric(addr string) int {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		switch sc.Text() {
		case "hangar_leader 1":
			return 1
		case "hangar_leader 0":
			return 0
		}
	}
	return -1
}

// waitLeader waits up to limit for exactly one of addrs to lead and
// returns its index.
func waitLeader(t *testing.T, addrs []string, limit time.Duration) int {
	t.Helper()
	leader := -1
	ok := poll(limit, func() bool {
		leader = -1
		n := 0
		for i, a := range addrs {
			if leaderMetric(a) == 1 {
				leader, n = i, n+1
			}
		}
		return n == 1
	})
	if !ok {
		t.Fatalf("no single leader among %v after %v", addrs, limit)
	}
	return leader
}

// failoverFleet is four local agents that the leader keeps, whichever
// server that is.
const failoverFleet = `
fleet:
  installation: failover
  classes:
    - name: pool
      labels: [linux]
      provider: local
      idle_count: 4
      max_instances: 4
      boot_timeout: 60s
      heartbeat_timeout: 30s
`

// failoverJob prints failoverLines numbered lines, with a pause in the
// middle so that jobs are running when the leader dies.
const failoverLines = 20

func failoverPipeline(jobs int) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, ".job:\n  tags: [linux]\n  script:\n    - for i in $(seq 1 10); do echo \"line $i of $CI_JOB_NAME\"; done\n    - sleep 0.1\n    - for i in $(seq 11 %d); do echo \"line $i of $CI_JOB_NAME\"; done\n", failoverLines)
	for i := range jobs {
		fmt.Fprintf(&sb, "j%03d: {extends: .job}\n", i)
	}
	return sb.String()
}

// TestFailover runs 500 jobs on two servers and four agents and kills the
// leading server with SIGKILL while they run: every job succeeds exactly
// once, the other server takes over the fleet within 10 s, and every log
// holds every line its job printed.
func TestFailover(t *testing.T) {
	requireBash(t)
	if testing.Short() {
		t.Skip("runs 500 jobs")
	}
	config := filepath.Join(t.TempDir(), "hangar.yml")
	if err := os.WriteFile(config, []byte(failoverFleet), 0o644); err != nil {
		t.Fatal(err)
	}
	// The instances register through the balancer, as agents would
	// behind a load balancer.
	c, servers, addrs := replicaCluster(t, 2, 10*time.Second, func(url string) []string {
		return []string{"--config", config, "--fleet-interval", "300ms", "--advertise-url", url}
	})
	t.Cleanup(func() { stopInstances(t, "failover") })

	leader := waitLeader(t, addrs, 15*time.Second)
	c.waitFor("four ready instances", 60*time.Second, func() bool {
		return states(fleetAt(t, addrs[leader])["pool"])["ready"] == 4
	})

	const pipelines, perPipeline = 10, 50
	files := map[string]string{".gitlab-ci.yml": failoverPipeline(perPipeline)}
	ids := make([]int64, pipelines)
	for i := range ids {
		ids[i] = c.submit(files).ID
	}
	countDone := func() int {
		n := 0
		for _, id := range ids {
			for _, j := range c.pipeline(id).Jobs {
				if j.Status == "success" {
					n++
				}
			}
		}
		return n
	}
	c.waitFor("100 jobs to succeed", 120*time.Second, func() bool { return countDone() >= 100 })

	killed := time.Now()
	servers[leader].killAlone() // the instances are machines of their own
	t.Logf("killed the leader, server %d, with %d jobs done", leader, countDone())
	survivor := addrs[1-leader]
	c.waitFor("the survivor to lead", 10*time.Second, func() bool { return leaderMetric(survivor) == 1 })
	// The fleet resumed: the survivor's autoscaler adopted the four
	// instances.
	c.waitFor("the survivor's fleet to hold the four instances", 10*time.Second-time.Since(killed), func() bool {
		return len(fleetAt(t, survivor)["pool"].Instances) == 4
	})
	t.Logf("the survivor led after %v", time.Since(killed).Round(time.Millisecond))

	attempts := 0
	lineRE := regexp.MustCompile(`line (\d+) of (j\d+)`)
	for _, id := range ids {
		p := c.waitPipeline(id, 3*time.Minute)
		if p.Status != "success" {
			t.Errorf("pipeline %d: %s", id, p.Status)
		}
		for _, j := range p.Jobs {
			wins := 0
			for _, a := range j.Attempts {
				attempts++
				if a.Status == "success" {
					wins++
				}
			}
			if j.Status != "success" || wins != 1 {
				t.Errorf("job %d (%s): %s with %d successful attempts of %d", j.ID, j.Name, j.Status, wins, len(j.Attempts))
				continue
			}
			// The log of the successful attempt holds every line, in order.
			var n int
			for _, a := range j.Attempts {
				if a.Status == "success" {
					n = a.Number
				}
			}
			want := 1
			for _, m := range lineRE.FindAllStringSubmatch(c.attemptLog(j.ID, n), -1) {
				if m[2] != j.Name || m[1] != fmt.Sprint(want) {
					t.Errorf("job %d (%s): log line %q where line %d of %s was due", j.ID, j.Name, m[0], want, j.Name)
					break
				}
				want++
			}
			if want != failoverLines+1 {
				t.Errorf("job %d (%s): its log holds %d of %d lines", j.ID, j.Name, want-1, failoverLines)
			}
		}
	}
	t.Logf("%d jobs, %d attempts", pipelines*perPipeline, attempts)
}

// TestLogFollowAcrossServers follows a job's log on one server while its
// agent appends through the other: the follower sees each line as it is
// appended, woken over the bus (without it, only its 15 s keepalive would
// make it look again).
func TestLogFollowAcrossServers(t *testing.T) {
	requireBash(t)
	c, _, addrs := replicaCluster(t, 2, faultLease, nil)
	c.startAgent("a", "http://"+addrs[0])
	gate := filepath.Join(t.TempDir(), "go")
	p := c.submit(map[string]string{".gitlab-ci.yml": fmt.Sprintf(
		"job:\n  script:\n    - echo first\n    - while [ ! -e %s ]; do sleep 0.05; done\n    - echo second\n", gate)})
	jobID := p.Jobs[0].ID

	req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("http://%s%s/jobs/%d/log/stream", addrs[1], api.Prefix, jobID), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+faultAPIToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET log stream: %s", resp.Status)
	}
	type event struct {
		name, data string
		at         time.Time
	}
	events := make(chan event, 100)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(resp.Body)
		var name string
		for sc.Scan() {
			line := sc.Text()
			if v, ok := strings.CutPrefix(line, "event: "); ok {
				name = v
			} else if v, ok := strings.CutPrefix(line, "data: "); ok {
				events <- event{name, v, time.Now()}
			}
		}
	}()
	var text strings.Builder
	var opened time.Time
	timeout := time.After(30 * time.Second)
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatalf("the stream ended early; it sent %q", text.String())
			}
			if ev.name == "end" {
				if !strings.Contains(text.String(), "second") {
					t.Fatalf("the stream ended with %q, want both lines", text.String())
				}
				return
			}
			text.WriteString(ev.data)
			if opened.IsZero() && strings.Contains(text.String(), "first") {
				opened = time.Now()
				if err := os.WriteFile(gate, nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if strings.Contains(text.String(), "second") {
				if d := ev.at.Sub(opened); d > 5*time.Second {
					t.Errorf("the second line reached the other server's follower %v after the gate opened; want it woken at once", d)
				}
			}
		case <-timeout:
			t.Fatalf("after 30 s the stream on the other server sent %q", text.String())
		}
	}
}

// TestClaimWokenAcrossServers creates a pipeline on one server while the
// only agent waits in a long-poll claim on the other: the claim is woken
// over the bus and the job starts at once, not when the 30 s poll ends.
func TestClaimWokenAcrossServers(t *testing.T) {
	requireBash(t)
	c, _, addrs := replicaCluster(t, 2, faultLease, nil)
	c.startAgent("a", "http://"+addrs[0])
	time.Sleep(500 * time.Millisecond) // into its long-poll
	c.client = api.NewClient("http://" + addrs[1])
	p := c.submit(map[string]string{".gitlab-ci.yml": "job: {script: [echo hi]}\n"})
	p = c.waitPipeline(p.ID, 60*time.Second)
	if p.Status != "success" {
		t.Fatalf("pipeline: %s", p.Status)
	}
	if d := p.Jobs[0].StartedAt.Sub(p.CreatedAt); d > 5*time.Second {
		t.Errorf("the job started %v after the pipeline was created on the other server; want the waiting claim woken at once", d)
	}
}

// A database the server cannot use stops it at start, saying why, and
// never with the password of the URL.
func TestServerBadDatabase(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		url  string
		code int
		want string
	}{
		{"mysql://root@localhost/hangar", exitUsage, "--database must be a PostgreSQL URL"},
		{"postgres://u:hunter22@127.0.0.1:1/x?sslmode=disable", exitTrouble, "open postgres store 127.0.0.1:1/x"},
		{"postgres://u:hunter22@127.0.0.1:1/x?pool_max_conns=many", exitTrouble, "the database URL does not parse"},
	} {
		code, _, stderr := hangar(t, "server", "--database", tc.url, "--data", filepath.Join(dir, "data"), "--listen", "127.0.0.1:0")
		if code != tc.code || !strings.Contains(stderr, tc.want) || strings.Contains(stderr, "hunter22") {
			t.Errorf("hangar server --database %q: exit %d, stderr %q; want exit %d saying %q, without the password", tc.url, code, stderr, tc.code, tc.want)
		}
	}
}

// fleetAt returns the classes as GET /fleet on the server at addr shows
// them (the balancer would keep a connection to one server: a follower's
// view is empty).
func fleetAt(t *testing.T, addr string) map[string]autoscaler.ClassStatus {
	t.Helper()
	var out struct {
		Classes []autoscaler.ClassStatus `json:"classes"`
	}
	if _, err := api.NewClient("http://"+addr).Do(context.Background(), http.MethodGet, "/fleet", faultAPIToken, nil, &out); err != nil {
		t.Logf("GET /fleet on %s: %v", addr, err)
	}
	m := map[string]autoscaler.ClassStatus{}
	for _, cl := range out.Classes {
		m[cl.Name] = cl
	}
	return m
}
