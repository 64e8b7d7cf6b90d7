package main

// This file runs hangar as real child processes on real sockets, for the
// fault tests: a binary built once per test run, processes in process
// groups of their own that a test can kill like a machine dies, a cluster
// of one server and its agents, and a TCP proxy that can cut an agent off.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hangar-ci/hangar/internal/api"
	"github.com/hangar-ci/hangar/internal/source"
)

var (
	buildOnce sync.Once
	buildDir  string // removed by TestMain
	buildBin  string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// hangarBinary builds the hangar binary from this package, once per test
// run, and returns its path.
func hangarBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if buildDir, buildErr = os.MkdirTemp("", "hangar-bin-*"); buildErr != nil {
			return
		}
		buildBin = filepath.Join(buildDir, "hangar")
		out, err := exec.Command("go", "build", "-o", buildBin, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildBin
}

// requireBash skips the test when bash, which agents run steps with, is
// missing.
func requireBash(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash is not on PATH; the shell executor needs it to run jobs")
	}
}

// syncBuffer is a bytes.Buffer safe for one writer and many readers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// proc is a hangar child process in a process group of its own.
type proc struct {
	name           string
	cmd            *exec.Cmd
	stdout, stderr syncBuffer
	done           chan struct{} // closed when it has exited
}

// startProc starts the hangar binary with args. The process is killed, if
// still alive, when the test ends; its output is logged if the test failed.
func startProc(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, done: make(chan struct{})}
	p.cmd = exec.Command(hangarBinary(t), args...)
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p.cmd.WaitDelay = time.Second
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("--- %s (pid %d, %s) stderr:\n%s", name, p.cmd.Process.Pid, p.cmd.ProcessState, p.stderr.String())
			if out := p.stdout.String(); out != "" {
				t.Logf("--- %s stdout:\n%s", name, out)
			}
		}
	})
	return p
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill ends the process the way a machine dies: SIGKILL to its process
// group and to the groups of everything it started (the shell executor
// runs each step in a group of its own), with no chance to clean up. It
// returns once the process has exited.
func (p *proc) kill() {
	if p.exited() {
		return
	}
	pid := p.cmd.Process.Pid
	// Freeze the tree first so that nothing new is started while it is
	// listed.
	syscall.Kill(-pid, syscall.SIGSTOP)
	groups := map[int]bool{pid: true}
	for _, d := range descendants(pid) {
		syscall.Kill(d, syscall.SIGSTOP)
		if g, err := syscall.Getpgid(d); err == nil {
			groups[g] = true
		}
	}
	delete(groups, syscall.Getpgrp())
	for g := range groups {
		syscall.Kill(-g, syscall.SIGKILL)
	}
	<-p.done
}

// killAlone kills the process and nothing it started: what a crash of the
// server does to the fleet's instances, which are machines of their own.
func (p *proc) killAlone() {
	if p.exited() {
		return
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// wait waits up to limit for the process to exit and returns its exit code.
func (p *proc) wait(t *testing.T, limit time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(limit):
		t.Fatalf("%s did not exit within %v", p.name, limit)
		return -1
	}
}

// descendants lists the processes below pid, from /proc (none where
// /proc cannot be read).
func descendants(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	children := map[int][]int{}
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// "pid (comm) state ppid ..."; comm may hold anything.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := bytes.Fields(stat[i+1:])
		if len(f) < 2 {
			continue
		}
		if ppid, err := strconv.Atoi(string(f[1])); err == nil {
			children[ppid] = append(children[ppid], n)
		}
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		c := children[queue[0]]
		queue = append(queue[1:], c...)
		out = append(out, c...)
	}
	return out
}

const (
	faultAgentToken = "fault-agent-token"
	faultAPIToken   = "fault-api-token"
)

// cluster is a hangar server process on a loopback port and the agents
// started for it.
type cluster struct {
	t       *testing.T
	dir     string // the test's temporary directory
	data    string // the server's data directory, kept across restarts
	addr    string // host:port the server listens on, kept across restarts
	url     string
	lease   time.Duration
	client  *api.Client
	server  *proc
	started int // server processes started so far
	// serverFlags are added to every server's command line.
	serverFlags []string
}

// newCluster starts a server process with lease as its lease timeout and
// serverFlags added to its command line.
func newCluster(t *testing.T, lease time.Duration, serverFlags ...string) *cluster {
	t.Helper()
	dir := t.TempDir()
	addr := freeAddr(t)
	c := &cluster{t: t, dir: dir, data: filepath.Join(dir, "data"), addr: addr, url: "http://" + addr,
		lease: lease, client: api.NewClient("http://" + addr), serverFlags: serverFlags}
	c.startServer()
	return c
}

// freeAddr returns a loopback address with a port that was free a moment
// ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startServer starts a server process on the cluster's address and data
// directory and waits until it answers /healthz.
func (c *cluster) startServer() *proc {
	c.t.Helper()
	c.server = c.startServerAt(c.addr)
	return c.server
}

// startServerAt starts a server process listening on addr, with the
// cluster's data directory and flags, and waits until it answers /healthz.
func (c *cluster) startServerAt(addr string) *proc {
	c.t.Helper()
	c.started++
	p := startProc(c.t, fmt.Sprintf("server #%d", c.started), append([]string{"server", "--listen", addr, "--data", c.data,
		"--agent-token", faultAgentToken, "--api-token", faultAPIToken, "--lease-timeout", c.lease.String()}, c.serverFlags...)...)
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if p.exited() {
			c.t.Fatalf("%s exited before it was ready: %s\n%s", p.name, p.cmd.ProcessState, p.stderr.String())
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s not healthy after 15s (last error %v)", p.name, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return p
}

// startAgent starts an agent process that talks to the server at url (the
// server's own or a proxy's), with flags added, and waits until the server
// lists it.
func (c *cluster) startAgent(name, url string, flags ...string) *proc {
	c.t.Helper()
	p := startProc(c.t, "agent "+name, append([]string{"agent", "--server", url, "--token", faultAgentToken,
		"--work-dir", filepath.Join(c.dir, "work-"+name), "--name", name}, flags...)...)
	c.waitFor("agent "+name+" to register", 15*time.Second, func() bool {
		if p.exited() {
			c.t.Fatalf("agent %s exited: %s\n%s", name, p.cmd.ProcessState, p.stderr.String())
		}
		return c.agentID(name) != 0
	})
	return p
}

// agentID returns the ID of the active agent called name, or 0.
func (c *cluster) agentID(name string) int64 {
	c.t.Helper()
	var agents []api.Agent
	c.do(http.MethodGet, "/agents", nil, &agents)
	for _, a := range agents {
		if a.Name == name && a.Status == "active" {
			return a.ID
		}
	}
	return 0
}

// do makes an API call with the API token, retrying through network
// trouble (a server restarting) for up to 20 s.
func (c *cluster) do(method, path string, in, out any) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := api.Retry(ctx, api.Backoff{Min: 20 * time.Millisecond, Max: 200 * time.Millisecond}, func() error {
		if b, ok := out.(*bytes.Buffer); ok {
			b.Reset()
		}
		_, err := c.client.Do(ctx, method, path, faultAPIToken, in, out)
		return err
	})
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
}

// writeDir writes files into a fresh directory and returns its path.
func (c *cluster) writeDir(files map[string]string) string {
	c.t.Helper()
	dir, err := os.MkdirTemp(c.dir, "src-*")
	if err != nil {
		c.t.Fatal(err)
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			c.t.Fatal(err)
		}
	}
	return dir
}

// submit uploads a directory holding files and creates a pipeline from it.
func (c *cluster) submit(files map[string]string) api.Pipeline {
	c.t.Helper()
	var archive bytes.Buffer
	if err := source.Snapshot(context.Background(), c.writeDir(files), &archive); err != nil {
		c.t.Fatal(err)
	}
	var up api.SourceResponse
	c.do(http.MethodPost, "/sources", archive.Bytes(), &up)
	var p api.Pipeline
	c.do(http.MethodPost, "/projects/fault/pipelines", api.CreatePipelineRequest{Archive: up.Archive}, &p)
	return p
}

func (c *cluster) pipeline(id int64) api.Pipeline {
	c.t.Helper()
	var p api.Pipeline
	c.do(http.MethodGet, fmt.Sprintf("/pipelines/%d", id), nil, &p)
	return p
}

func (c *cluster) job(id int64) api.Job {
	c.t.Helper()
	var j api.Job
	c.do(http.MethodGet, fmt.Sprintf("/jobs/%d", id), nil, &j)
	return j
}

// waitPipeline waits until the pipeline is finished and returns it.
func (c *cluster) waitPipeline(id int64, limit time.Duration) api.Pipeline {
	c.t.Helper()
	var p api.Pipeline
	c.waitFor(fmt.Sprintf("pipeline %d to finish", id), limit, func() bool {
		p = c.pipeline(id)
		return final(p.Status)
	})
	return p
}

// jobLog is the stored log of a job: its attempts one after the other.
func (c *cluster) jobLog(id int64) string {
	c.t.Helper()
	var b bytes.Buffer
	c.do(http.MethodGet, fmt.Sprintf("/jobs/%d/log", id), nil, &b)
	return b.String()
}

// attemptLog is the stored log of attempt n of a job.
func (c *cluster) attemptLog(jobID int64, n int) string {
	c.t.Helper()
	var b bytes.Buffer
	c.do(http.MethodGet, fmt.Sprintf("/jobs/%d/attempts/%d/log", jobID, n), nil, &b)
	return b.String()
}

// metrics is the server's /metrics page.
func (c *cluster) metrics() string {
	c.t.Helper()
	resp, err := http.Get(c.url + "/metrics")
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return string(b)
}

// waitFor polls cond until it holds, failing the test after limit.
func (c *cluster) waitFor(what string, limit time.Duration, cond func() bool) {
	c.t.Helper()
	if !poll(limit, cond) {
		c.t.Fatalf("timed out after %v waiting for %s", limit, what)
	}
}

// poll polls cond until it holds or limit has passed, and reports whether
// it held.
func poll(limit time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(25 * time.Millisecond)
	}
	return true
}

// numbered is one line a test job printed: "<label> <n> ...".
type numbered struct {
	label string
	n     int
}

// numberedLines picks the lines of text that match re, whose first group
// is a label and second a number, in order.
func numberedLines(text string, re *regexp.Regexp) []numbered {
	var out []numbered
	for _, m := range re.FindAllStringSubmatch(text, -1) {
		n, _ := strconv.Atoi(m[2])
		out = append(out, numbered{m[1], n})
	}
	return out
}

// proxy forwards TCP connections to its targets until it is cut: then it
// drops every connection it carries and closes new ones as soon as they
// are accepted, as a network that refuses the agent would. With several
// targets it is a load balancer: each connection goes to the next target
// in turn that accepts it.
type proxy struct {
	ln      net.Listener
	targets []string
	url     string

	mu    sync.Mutex
	cut   bool
	next  int
	conns map[net.Conn]bool
}

func newProxy(t *testing.T, targets ...string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, targets: targets, url: "http://" + ln.Addr().String(), conns: map[net.Conn]bool{}}
	var wg sync.WaitGroup
	wg.Go(func() { p.serve(&wg) })
	t.Cleanup(func() {
		ln.Close()
		p.setCut(true)
		wg.Wait()
	})
	return p
}

func (p *proxy) serve(wg *sync.WaitGroup) {
	for {
		down, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(down) {
			down.Close()
			continue
		}
		up := p.dial()
		if up == nil || !p.track(up) {
			if up != nil {
				up.Close()
			}
			p.drop(down)
			continue
		}
		pipe := func(dst, src net.Conn) {
			io.Copy(dst, src)
			p.drop(dst)
			p.drop(src)
		}
		wg.Go(func() { pipe(up, down) })
		wg.Go(func() { pipe(down, up) })
	}
}

// dial connects to the next target that accepts, or returns nil.
func (p *proxy) dial() net.Conn {
	p.mu.Lock()
	first := p.next
	p.next = (p.next + 1) % len(p.targets)
	p.mu.Unlock()
	for i := range p.targets {
		c, err := net.DialTimeout("tcp", p.targets[(first+i)%len(p.targets)], 2*time.Second)
		if err == nil {
			return c
		}
	}
	return nil
}

// track records an open connection, or reports false while cut.
func (p *proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut {
		return false
	}
	p.conns[c] = true
	return true
}

func (p *proxy) drop(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

// setCut cuts the connection (dropping every open one) or restores it.
func (p *proxy) setCut(cut bool) {
	p.mu.Lock()
	p.cut = cut
	var open []net.Conn
	if cut {
		for c := range p.conns {
			open = append(open, c)
		}
		clear(p.conns)
	}
	p.mu.Unlock()
	for _, c := range open {
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0) // reset, as a dropped route would
		}
		c.Close()
	}
}
