package local

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hangar-ci/hangar/internal/fleet/provider"
	"github.com/hangar-ci/hangar/internal/fleet/provider/providertest"
)

// hangarBin is the hangar binary TestMain builds.
var hangarBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "hangar-local-provider-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	hangarBin, err = providertest.BuildHangar(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// testConfig is a configuration with short waits over stateDir.
func testConfig(stateDir string) Config {
	return Config{StateDir: stateDir, Binary: hangarBin, Grace: 5 * time.Second, PollInterval: 50 * time.Millisecond}
}

func newProvider(t *testing.T, cfg Config) *Provider {
	t.Helper()
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConformance(t *testing.T) {
	providertest.Run(t, func(t *testing.T) providertest.Harness {
		state := t.TempDir()
		p := newProvider(t, testConfig(state))
		return providertest.Harness{
			Open: func() provider.Provider { return newProvider(t, testConfig(state)) },
			Exists: func(id string) bool {
				_, errRecord := os.Stat(p.recordPath(id))
				_, errDir := os.Stat(p.instanceDir(id))
				_, _, running := findAgent("--work-dir=" + filepath.Join(p.instanceDir(id), "work"))
				return errRecord == nil || errDir == nil || running
			},
			Kill: func(id string) {
				r, err := p.read(id)
				if err != nil {
					t.Fatalf("kill %s: %v", id, err)
				}
				if err := syscall.Kill(-r.PID, syscall.SIGKILL); err != nil {
					t.Fatalf("kill %s: %v", id, err)
				}
			},
		}
	})
}

func TestParseSettings(t *testing.T) {
	t.Parallel()
	bin := hangarBin
	plain := filepath.Join(t.TempDir(), "plain")
	if err := os.WriteFile(plain, []byte("not a program"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		settings map[string]any
		err      string // an error New or ParseSettings gives; "" for none
	}{
		{settings: nil, err: "provider_config.state_dir: required"},
		{settings: map[string]any{"state_dir": ""}, err: "provider_config.state_dir: required"},
		{settings: map[string]any{"state_dir": 7}, err: "provider_config.state_dir: want a string, not int"},
		{settings: map[string]any{"state_dir": "/s", "grace": "soon"}, err: `provider_config.grace: "soon" is not a duration`},
		{settings: map[string]any{"state_dir": "/s", "grace": true}, err: `provider_config.grace: want a duration such as "90s"`},
		{settings: map[string]any{"state_dir": "/s", "grace": "-1s"}, err: "provider_config.grace: -1s is negative"},
		{settings: map[string]any{"state_dir": "/s", "colour": "red"}, err: "provider_config.colour: unknown setting (known: agent_args, binary, grace, state_dir, work_dir_size)"},
		{settings: map[string]any{"state_dir": "/s", "binary": "/no/such/hangar"}, err: "provider_config.binary: stat /no/such/hangar: no such file"},
		{settings: map[string]any{"state_dir": "/s", "binary": plain}, err: "provider_config.binary: " + plain + " is not an executable file"},
		{settings: map[string]any{"state_dir": "/s", "agent_args": []any{"--name", "x"}}, err: "provider_config.agent_args[0]: --name is set by the provider"},
		{settings: map[string]any{"state_dir": "/s", "agent_args": []any{1}}, err: "provider_config.agent_args[0]: want a string, not int"},
		{settings: map[string]any{"state_dir": "/s", "work_dir_size": "lots"}, err: "provider_config.work_dir_size: lots is not a size"},
		{settings: map[string]any{"state_dir": "/s", "binary": bin, "grace": 2, "agent_args": []any{"--log-level=debug"}, "work_dir_size": "1g"}},
	} {
		cfg, err := ParseSettings(tc.settings)
		if err == nil {
			_, err = New(cfg)
		}
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%v: %v", tc.settings, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%v: error %v, want one containing %q", tc.settings, err, tc.err)
		case tc.err == "" && (cfg.StateDir != "/s" || cfg.Binary != bin || cfg.Grace != 2*time.Second || len(cfg.AgentArgs) != 1):
			t.Errorf("%v: parsed as %+v", tc.settings, cfg)
		}
	}
}

// A Create that cannot start the agent fails and leaves nothing: no
// record, no directory, no process.
func TestCreateFailureLeavesNothing(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "hangar")
	b, err := os.ReadFile(hangarBin)
	if err == nil {
		err = os.WriteFile(bin, b, 0o755)
	}
	if err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	cfg := testConfig(state)
	cfg.Binary = bin
	p := newProvider(t, cfg)
	os.Remove(bin) // the binary is gone once the configuration was checked
	spec := provider.CreateSpec{Owner: "o", Class: "c", Server: "http://127.0.0.1:1", RegistrationToken: "t"}
	ins, err := p.Create(context.Background(), spec, 2)
	if err == nil || len(ins) != 0 || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Create with the binary gone = %v, %v; want no instance and a not-exist error", ins, err)
	}
	entries, err := os.ReadDir(filepath.Join(state, "instances"))
	if err != nil || len(entries) != 0 {
		t.Errorf("the state dir holds %v (%v), want nothing", entries, err)
	}
}

// The token is not on the agent's command line, and the agent writes its
// log where the record says.
func TestTokenNotOnCommandLine(t *testing.T) {
	t.Parallel()
	srv := providertest.StartServer(t)
	p := newProvider(t, testConfig(t.TempDir()))
	spec := provider.CreateSpec{Owner: providertest.NewOwner(t), Class: "c", Server: srv.URL, RegistrationToken: providertest.AgentToken}
	ins, err := p.Create(context.Background(), spec, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Delete(context.Background(), ins[0].ID) })
	srv.WaitAgent(t, ins[0].Name, "active", 20*time.Second)
	r, err := p.read(ins[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", r.PID))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(cmdline), providertest.AgentToken) {
		t.Errorf("the token is on the agent's command line: %q", cmdline)
	}
	// The agent logs its registration once the server has answered.
	waitFor(t, func() bool {
		b, _ := os.ReadFile(r.Log)
		return strings.Contains(string(b), "agent registered")
	})
}

// startFake starts, in a session of its own as Create does, a stand-in for
// an agent: bash running script, with r's --work-dir argument; it is
// reaped when it ends.
func startFake(t *testing.T, r *record, script string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("bash", "-c", script, "agent", workDirArg(r))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Skipf("cannot start bash: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	})
	return cmd
}

// writeRecord writes a record as Create would, before the process starts.
func writeRecord(t *testing.T, p *Provider, id string) *record {
	t.Helper()
	dir := p.instanceDir(id)
	r := &record{ID: id, Owner: "o", Class: "c", Name: "o-c-" + id, CreatedAt: time.Now(),
		WorkDir: filepath.Join(dir, "work"), Log: filepath.Join(dir, "agent.log")}
	if err := os.MkdirAll(r.WorkDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := p.write(r); err != nil {
		t.Fatal(err)
	}
	return r
}

// A server that died between writing an instance's record and completing
// it with the pid: the next one finds the process by its arguments, lists
// it as running, completes the record and can delete it.
func TestAdoptRecordWithoutPID(t *testing.T) {
	t.Parallel()
	p := newProvider(t, testConfig(t.TempDir()))
	r := writeRecord(t, p, "00000000000a")
	fake := startFake(t, r, "sleep 60; true")
	waitFor(t, func() bool { _, _, ok := findAgent(workDirArg(r)); return ok })
	l, err := p.List(context.Background(), "o", "")
	if err != nil || len(l) != 1 || l[0].State != provider.StateRunning {
		t.Fatalf("List = %+v, %v; want the instance running", l, err)
	}
	if got, err := p.read(r.ID); err != nil || got.PID != fake.Process.Pid {
		t.Fatalf("record after List: %+v, %v; want pid %d", got, err, fake.Process.Pid)
	}
	if err := p.Delete(context.Background(), r.ID); err != nil {
		t.Fatal(err)
	}
	if st, err := readStat(fake.Process.Pid); err == nil && !st.dead() {
		t.Errorf("process %d still runs after Delete", fake.Process.Pid)
	}
}

// An agent that ignores SIGTERM is killed after the grace, with what it
// started.
func TestDeleteKillsAfterGrace(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t.TempDir())
	cfg.Grace = 300 * time.Millisecond
	p := newProvider(t, cfg)
	r := writeRecord(t, p, "00000000000b")
	fake := startFake(t, r, `trap "" TERM; sleep 60 & wait; wait`)
	waitFor(t, func() bool { return len(sessionMembers(fake.Process.Pid, 0)) == 2 })
	if _, err := p.List(context.Background(), "o", ""); err != nil { // completes the record
		t.Fatal(err)
	}
	start := time.Now()
	if err := p.Delete(context.Background(), r.ID); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < cfg.Grace {
		t.Errorf("Delete took %v, less than the grace", d)
	}
	if m := sessionMembers(fake.Process.Pid, 0); len(m) != 0 {
		t.Errorf("processes %v of the instance's session survive Delete", m)
	}
	if _, err := os.Stat(p.instanceDir(r.ID)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("instance dir after Delete: %v, want it gone", err)
	}
}

// A record whose pid now names another process (here the test's own, with
// another start time) is of a stopped instance: List says so, and Delete
// signals nothing.
func TestPIDReuse(t *testing.T) {
	t.Parallel()
	p := newProvider(t, testConfig(t.TempDir()))
	r := writeRecord(t, p, "00000000000c")
	st, err := readStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	r.PID, r.StartTime, r.BootID = os.Getpid(), st.start+1, bootID()
	if err := p.write(r); err != nil {
		t.Fatal(err)
	}
	l, err := p.List(context.Background(), "o", "c")
	if err != nil || len(l) != 1 || l[0].State != provider.StateStopped {
		t.Fatalf("List = %+v, %v; want the instance stopped", l, err)
	}
	if err := p.Delete(context.Background(), r.ID); err != nil { // kills the test if it is wrong
		t.Fatal(err)
	}
	if l, _ := p.List(context.Background(), "o", ""); len(l) != 0 {
		t.Errorf("List after Delete = %+v", l)
	}
}

func TestParseStat(t *testing.T) {
	t.Parallel()
	line := "4242 (a (weird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 100\n"
	st, err := parseStat([]byte(line))
	if err != nil || st.state != 'S' || st.session != 4242 || st.start != 987654 {
		t.Errorf("parseStat = %+v, %v", st, err)
	}
	if _, err := parseStat([]byte("4242 (x) S 1")); err == nil {
		t.Error("a short line parsed")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// shortReader gives n bytes, then fails: a source of randomness that runs
// dry makes the instance after the first fail.
type shortReader struct{ n int }

func (r *shortReader) Read(b []byte) (int, error) {
	if r.n <= 0 {
		return 0, errors.New("no more randomness")
	}
	k := min(len(b), r.n)
	for i := range k {
		b[i] = byte(r.n - i)
	}
	r.n -= k
	return k, nil
}

// Create returns the instances it made along with the error that stopped
// it, and leaves nothing of the one that failed.
func TestPartialCreate(t *testing.T) {
	t.Parallel()
	srv := providertest.StartServer(t)
	state := t.TempDir()
	cfg := testConfig(state)
	cfg.Rand = &shortReader{n: 6}
	p := newProvider(t, cfg)
	spec := provider.CreateSpec{Owner: providertest.NewOwner(t), Class: "c", Server: srv.URL, RegistrationToken: providertest.AgentToken}
	ins, err := p.Create(context.Background(), spec, 3)
	if err == nil || !strings.Contains(err.Error(), "no more randomness") || len(ins) != 1 {
		t.Fatalf("Create(3) = %v, %v; want one instance and the error", ins, err)
	}
	t.Cleanup(func() { p.Delete(context.Background(), ins[0].ID) })
	srv.WaitAgent(t, ins[0].Name, "active", 20*time.Second)
	if l, err := p.List(context.Background(), spec.Owner, ""); err != nil || len(l) != 1 || l[0].ID != ins[0].ID {
		t.Errorf("List = %+v, %v; want the one instance", l, err)
	}
	entries, _ := os.ReadDir(filepath.Join(state, "instances"))
	if len(entries) != 2 { // ID.json and ID/
		t.Errorf("the state dir holds %d entries, want 2 (one instance)", len(entries))
	}
}
