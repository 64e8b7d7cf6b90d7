package main

// Fault tests: the hangar binary as real processes on real sockets, with
// agents killed, the server killed and restarted, and an agent cut off from
// the server for longer than its lease. process_test.go has the harness.

import (
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hangar-ci/hangar/internal/api"
)

// faultLease is the servers' lease: short, so a lost agent costs little
// test time.
const faultLease = 2 * time.Second

// attemptLine matches what countingJob prints: "attempt A line N".
var attemptLine = regexp.MustCompile(`(?m)^attempt (\d+) line (\d+)$`)

// countingJob is a pipeline of one job that prints 30 numbered lines over
// about 3 s, each with the number of the attempt printing it.
const countingJob = `
job:
  script:
    - for i in $(seq 1 30); do echo "attempt $HANGAR_ATTEMPT line $i"; sleep 0.1; done
`

// wantLines checks that got is label's lines 1 to n, each once, in order.
func wantLines(t *testing.T, what string, got []numbered, label string, n int) {
	t.Helper()
	ok := len(got) == n
	for i := 0; ok && i < n; i++ {
		ok = got[i] == numbered{label, i + 1}
	}
	if !ok {
		t.Errorf("%s: got lines %v, want %s's lines 1 to %d, each once, in order", what, got, label, n)
	}
}

// splitAttempts splits a job's numbered lines into the first attempt's and
// the rest.
func splitAttempts(lines []numbered) (first, rest []numbered) {
	k := 0
	for k < len(lines) && lines[k].label == "1" {
		k++
	}
	return lines[:k], lines[k:]
}

// wantPartialFirst checks that the first attempt's lines are a prefix of
// its 30 lines that was cut short after at least least lines.
func wantPartialFirst(t *testing.T, what string, first []numbered, least int) {
	t.Helper()
	if len(first) < least || len(first) >= 30 {
		t.Errorf("%s: attempt 1 has %d lines, want at least %d and fewer than 30 (it was cut short)", what, len(first), least)
		return
	}
	wantLines(t, what+", attempt 1", first, "1", len(first))
}

// attemptLogged reports whether the job's only attempt is running and has
// logged at least n numbered lines.
func (c *cluster) attemptLogged(jobID int64, n int) bool {
	c.t.Helper()
	j := c.job(jobID)
	return len(j.Attempts) == 1 && j.Attempts[0].Status == "running" &&
		len(numberedLines(c.attemptLog(jobID, 1), attemptLine)) >= n
}

// A killed agent costs its attempt one lease; another agent runs the job
// again from the start, and the job's log keeps the first attempt's part
// before the second's whole.
func TestKillAgentMidJob(t *testing.T) {
	requireBash(t)
	t.Parallel()
	c := newCluster(t, faultLease)
	a := c.startAgent("A", c.url)
	idA := c.agentID("A")
	p := c.submit(map[string]string{".gitlab-ci.yml": countingJob})
	jobID := p.Jobs[0].ID
	c.waitFor("attempt 1 to log 3 lines", 15*time.Second, func() bool { return c.attemptLogged(jobID, 3) })

	a.kill()
	killed := time.Now()
	c.startAgent("B", c.url)
	idB := c.agentID("B")

	p = c.waitPipeline(p.ID, 30*time.Second)
	j := p.Jobs[0]
	if p.Status != "success" || j.Status != "success" {
		t.Fatalf("pipeline %s, job %s (%s); want both success", p.Status, j.Status, j.Reason)
	}
	if len(j.Attempts) != 2 {
		t.Fatalf("job has %d attempts %+v, want 2", len(j.Attempts), j.Attempts)
	}
	a1, a2 := j.Attempts[0], j.Attempts[1]
	if a1.Status != "lost" || a1.AgentID != idA {
		t.Errorf("attempt 1 is %s on agent %d, want lost on A (%d)", a1.Status, a1.AgentID, idA)
	}
	if a2.Status != "success" || a2.AgentID != idB {
		t.Errorf("attempt 2 is %s on agent %d, want success on B (%d)", a2.Status, a2.AgentID, idB)
	}
	// A dead agent costs one lease (plus a scheduler tick), not more.
	if a1.FinishedAt == nil || a1.FinishedAt.Sub(killed) > faultLease+time.Second {
		t.Errorf("attempt 1 declared lost at %v, %v after the kill; want within the lease (%v) and a tick",
			a1.FinishedAt, a1.FinishedAt.Sub(killed), faultLease)
	}

	first, rest := splitAttempts(numberedLines(c.jobLog(j.ID), attemptLine))
	wantPartialFirst(t, "job log", first, 3)
	wantLines(t, "job log, attempt 2", rest, "2", 30)
}

// A server killed mid-pipeline and restarted on its data loses nothing:
// agents keep their attempts (leases are renewed at start), buffer their
// logs and resend them, and the clients following the pipeline print
// every line once.
func TestKillServerMidPipeline(t *testing.T) {
	requireBash(t)
	t.Parallel()
	c := newCluster(t, faultLease)
	c.startAgent("A", c.url)
	c.startAgent("B", c.url)

	const n = 25 // lines per job, 0.1 s apart
	job := func(name, stage string) string {
		return fmt.Sprintf("%s:\n  stage: %s\n  script:\n    - for i in $(seq 1 %d); do echo \"%s line $i\"; sleep 0.1; done\n",
			name, stage, n, name)
	}
	dir := c.writeDir(map[string]string{".gitlab-ci.yml": "stages: [first, second]\n" +
		job("alpha", "first") + job("beta", "first") + job("gamma", "second")})
	run := startProc(t, "hangar run", "run", "--server", c.url, "--token", faultAPIToken, dir)

	var p api.Pipeline
	c.waitFor("hangar run to create the pipeline", 15*time.Second, func() bool {
		var list []api.Pipeline
		c.do(http.MethodGet, "/pipelines", nil, &list)
		if len(list) == 0 {
			return false
		}
		p = c.pipeline(list[0].ID)
		return true
	})
	jobID := map[string]int64{}
	for _, j := range p.Jobs {
		jobID[j.Name] = j.ID
	}
	logs := startProc(t, "hangar logs -f", "logs", "-f", "--server", c.url, "--token", faultAPIToken,
		strconv.FormatInt(jobID["alpha"], 10))

	jobLine := regexp.MustCompile(`(?m)^(\w+) line (\d+)$`)
	c.waitFor("the first stage's jobs to be a fifth done", 15*time.Second, func() bool {
		for _, name := range []string{"alpha", "beta"} {
			j := c.job(jobID[name])
			if j.Status != "running" || len(numberedLines(c.attemptLog(j.ID, 1), jobLine)) < n/5 {
				return false
			}
		}
		return true
	})
	// Down for longer than a lease: no attempt could heartbeat meanwhile,
	// so only the renewal at start keeps their leases.
	c.server.kill()
	time.Sleep(faultLease)
	c.startServer()

	p = c.waitPipeline(p.ID, 40*time.Second)
	if p.Status != "success" {
		t.Errorf("pipeline %s, want success", p.Status)
	}
	for _, j := range p.Jobs {
		if j.Status != "success" || len(j.Attempts) != 1 {
			t.Errorf("job %s is %s (%s) after %d attempts, want success at the first", j.Name, j.Status, j.Reason, len(j.Attempts))
		}
		wantLines(t, j.Name+"'s stored log", numberedLines(c.jobLog(j.ID), jobLine), j.Name, n)
	}

	if code := run.wait(t, 20*time.Second); code != exitOK {
		t.Errorf("hangar run exited %d, want 0", code)
	}
	// hangar run prints "NAME  | LINE"; every line under its own job's name.
	printed := map[string][]numbered{}
	for _, m := range regexp.MustCompile(`(?m)^(\w+) *\| (\w+) line (\d+)$`).FindAllStringSubmatch(run.stdout.String(), -1) {
		if m[1] != m[2] {
			t.Errorf("hangar run printed %q under job %s", m[0], m[1])
		}
		i, _ := strconv.Atoi(m[3])
		printed[m[1]] = append(printed[m[1]], numbered{m[2], i})
	}
	for name := range jobID {
		wantLines(t, "hangar run's output for "+name, printed[name], name, n)
	}
	if !regexp.MustCompile(`(?m)^pipeline \d+ success in `).MatchString(run.stdout.String()) {
		t.Errorf("hangar run's summary does not report success:\n%s", run.stdout.String())
	}

	if code := logs.wait(t, 20*time.Second); code != exitOK {
		t.Errorf("hangar logs -f exited %d, want 0", code)
	}
	wantLines(t, "hangar logs -f alpha", numberedLines(logs.stdout.String(), jobLine), "alpha", n)
}

// An agent cut off from the server for longer than its lease loses its
// attempt to another agent; when it is back in touch, the server refuses
// its late log, it records no result, and the agent abandons the attempt.
func TestAgentCutOffLongerThanLease(t *testing.T) {
	requireBash(t)
	t.Parallel()
	c := newCluster(t, faultLease)
	px := newProxy(t, c.addr)
	a := c.startAgent("A", px.url)
	idA := c.agentID("A")
	p := c.submit(map[string]string{".gitlab-ci.yml": countingJob})
	jobID := p.Jobs[0].ID
	c.waitFor("attempt 1 to log 3 lines", 15*time.Second, func() bool { return c.attemptLogged(jobID, 3) })

	const cut = 5 * time.Second // longer than the lease
	px.setCut(true)
	cutAt := time.Now()
	c.startAgent("B", c.url)
	idB := c.agentID("B")
	c.waitFor("attempt 1 to be declared lost", 2*faultLease+2*time.Second, func() bool {
		j := c.job(jobID)
		return len(j.Attempts) > 0 && j.Attempts[0].Status == "lost"
	})
	if time.Since(cutAt) >= cut {
		t.Fatalf("attempt 1 was declared lost only %v after the cut; the test wants it before the agent is back", time.Since(cutAt))
	}
	// What A got acknowledged before the cut; nothing may be added later.
	acked := c.attemptLog(jobID, 1)

	time.Sleep(time.Until(cutAt.Add(cut)))
	px.setCut(false)
	// A hears from the server again: it must give the attempt up.
	if !poll(20*time.Second, func() bool {
		return strings.Contains(a.stderr.String(), "attempt abandoned") || strings.Contains(a.stderr.String(), "attempt finished")
	}) || !strings.Contains(a.stderr.String(), "attempt abandoned") {
		t.Errorf("agent A did not report abandoning attempt 1 once back in touch")
	}
	p = c.waitPipeline(p.ID, 30*time.Second)

	j := p.Jobs[0]
	if p.Status != "success" || j.Status != "success" {
		t.Fatalf("pipeline %s, job %s (%s); want both success", p.Status, j.Status, j.Reason)
	}
	if len(j.Attempts) != 2 {
		t.Fatalf("job has %d attempts %+v, want 2", len(j.Attempts), j.Attempts)
	}
	if a1 := j.Attempts[0]; a1.Status != "lost" || a1.AgentID != idA {
		t.Errorf("attempt 1 is %s on agent %d, want lost on A (%d): A's late completion must be refused", a1.Status, a1.AgentID, idA)
	}
	if a2 := j.Attempts[1]; a2.Status != "success" || a2.AgentID != idB {
		t.Errorf("attempt 2 is %s on agent %d, want success on B (%d)", a2.Status, a2.AgentID, idB)
	}
	if got := c.attemptLog(jobID, 1); got != acked {
		t.Errorf("attempt 1's log grew after it was lost (A's late writes were accepted):\nwhen lost: %q\nnow:       %q", acked, got)
	}
	first, rest := splitAttempts(numberedLines(c.jobLog(j.ID), attemptLine))
	wantPartialFirst(t, "job log", first, 3)
	wantLines(t, "job log, attempt 2", rest, "2", 30)

	if strings.Contains(a.stderr.String(), "attempt finished") {
		t.Errorf("agent A reports finishing the attempt it lost:\n%s", a.stderr.String())
	}
	// The job's result was recorded once, and one attempt was lost.
	m := c.metrics()
	for _, want := range []string{`hangar_job_duration_seconds_count{status="success"} 1` + "\n", "hangar_attempts_lost_total 1\n"} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %q", strings.TrimSpace(want))
		}
	}
}
