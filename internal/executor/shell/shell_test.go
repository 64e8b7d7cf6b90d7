package shell_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hangar-ci/hangar/internal/executor"
	"github.com/hangar-ci/hangar/internal/executor/executortest"
	"github.com/hangar-ci/hangar/internal/executor/shell"
	"github.com/hangar-ci/hangar/internal/store"
)

// testConfig is a configuration with short waits, so the suite is quick.
func testConfig(t *testing.T) shell.Config {
	t.Helper()
	return shell.Config{
		TempDir:      t.TempDir(),
		KillGrace:    500 * time.Millisecond,
		DrainTimeout: 500 * time.Millisecond,
	}
}

func newExecutor(t *testing.T, cfg shell.Config) *shell.Executor {
	t.Helper()
	ex, err := shell.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return ex
}

func TestConformance(t *testing.T) {
	t.Parallel()
	executortest.Run(t, func(t *testing.T) executor.Executor {
		return newExecutor(t, testConfig(t))
	})
}

// runStep prepares a session for job and runs lines in it as one step.
func runStep(t *testing.T, ex *shell.Executor, job *executor.Job, lines ...string) (executor.Result, string) {
	t.Helper()
	s, err := ex.Prepare(context.Background(), job)
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	defer s.Cleanup(context.Background())
	var out strings.Builder
	res, err := s.Run(context.Background(), executor.Step{Name: "script", Lines: lines, Timeout: time.Minute}, &out)
	if err != nil {
		t.Fatalf("Run: %v; output:\n%s", err, out.String())
	}
	return res, out.String()
}

func TestEnvironment(t *testing.T) {
	t.Parallel()
	agentEnv := []string{
		"PATH=/agent/bin:/usr/bin:/bin",
		"HOME=/home/agent",
		"LANG=C.UTF-8",
		"AGENT_TOKEN=do-not-leak",
		"SSH_AUTH_SOCK=/tmp/agent.sock",
	}
	tests := []struct {
		name     string
		passEnv  []string
		environ  []string
		vars     []store.Variable
		want     []string // NAME=value lines env must print
		notNames []string // variables that must not be set
	}{
		{
			name:     "defaults",
			environ:  agentEnv,
			want:     []string{"PATH=/agent/bin:/usr/bin:/bin", "HOME=/home/agent", "LANG=C.UTF-8"},
			notNames: []string{"AGENT_TOKEN", "SSH_AUTH_SOCK", "TZ"},
		},
		{
			name:     "own list",
			passEnv:  []string{"PATH", "AGENT_TOKEN"},
			environ:  agentEnv,
			want:     []string{"AGENT_TOKEN=do-not-leak"},
			notNames: []string{"HOME", "LANG"},
		},
		{
			name:    "job variables win",
			environ: agentEnv,
			vars:    []store.Variable{{Name: "HOME", Value: "/job"}, {Name: "CI", Value: "true"}, {Name: "CI", Value: "yes"}},
			want:    []string{"HOME=/job", "CI=yes"},
		},
		{
			name:    "no PATH",
			environ: []string{"HOME=/home/agent"},
			want:    []string{"PATH=" + shell.DefaultPath},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(t)
			cfg.PassEnv, cfg.Environ = tt.passEnv, tt.environ
			ex := newExecutor(t, cfg)
			// env itself is found through PATH, which the test changes.
			res, out := runStep(t, ex, &executor.Job{Dir: t.TempDir(), Variables: tt.vars}, "/usr/bin/env")
			if res.ExitCode != 0 {
				t.Fatalf("result %+v; output:\n%s", res, out)
			}
			lines := strings.Split(out, "\n")
			for _, w := range tt.want {
				if !slices.Contains(lines, w) {
					t.Errorf("environment lacks %s:\n%s", w, out)
				}
			}
			for _, name := range tt.notNames {
				for _, l := range lines {
					if strings.HasPrefix(l, name+"=") {
						t.Errorf("environment has %s", l)
					}
				}
			}
		})
	}
}

// TestScriptsOutsideWorkspace checks that step scripts live in the session's
// private directory, which Cleanup removes.
func TestScriptsOutsideWorkspace(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	ex := newExecutor(t, cfg)
	job := &executor.Job{Dir: t.TempDir()}
	s, err := ex.Prepare(context.Background(), job)
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	if _, err := s.Run(context.Background(), executor.Step{Name: "script", Lines: []string{"true"}}, &strings.Builder{}); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if entries, _ := os.ReadDir(job.Dir); len(entries) != 0 {
		t.Errorf("the workspace holds %v after a step that wrote nothing", entries)
	}
	if scripts, _ := filepath.Glob(filepath.Join(cfg.TempDir, "*", "*.sh")); len(scripts) != 1 {
		t.Errorf("scripts in the temp dir: %v, want one", scripts)
	}
	if err := s.Cleanup(context.Background()); err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	if entries, _ := os.ReadDir(cfg.TempDir); len(entries) != 0 {
		t.Errorf("the temp dir holds %v after Cleanup", entries)
	}
}

// TestEscapedProcessHoldsOutput checks that Run returns, after the drain
// timeout, when a process that left the step's group keeps the output open.
func TestEscapedProcessHoldsOutput(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("setsid"); err != nil {
		t.Skip("no setsid")
	}
	cfg := testConfig(t)
	ex := newExecutor(t, cfg)
	job := &executor.Job{Dir: t.TempDir()}
	t.Cleanup(func() {
		if pid, err := os.ReadFile(filepath.Join(job.Dir, "escaped.pid")); err == nil {
			_ = exec.Command("kill", strings.TrimSpace(string(pid))).Run()
		}
	})
	start := time.Now()
	res, out := runStep(t, ex, job,
		`setsid bash -c 'echo $$ > escaped.pid.tmp; mv escaped.pid.tmp escaped.pid; exec sleep 5' &`,
		"while [ ! -e escaped.pid ]; do sleep 0.01; done",
		"echo done")
	if elapsed := time.Since(start); elapsed < cfg.DrainTimeout || elapsed > 3*time.Second {
		t.Errorf("Run took %v; want about the drain timeout, %v", elapsed, cfg.DrainTimeout)
	}
	if res.ExitCode != 0 || !strings.Contains(out, "\ndone\n") {
		t.Errorf("result %+v; output:\n%s", res, out)
	}
}

// failingWriter fails every write.
type failingWriter struct{ err error }

func (f failingWriter) Write([]byte) (int, error) { return 0, f.err }

func TestOutputWriteFails(t *testing.T) {
	t.Parallel()
	ex := newExecutor(t, testConfig(t))
	job := &executor.Job{Dir: t.TempDir()}
	s, err := ex.Prepare(context.Background(), job)
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	defer s.Cleanup(context.Background())
	boom := errors.New("log store down")
	errc := make(chan error, 1)
	go func() {
		_, err := s.Run(context.Background(), executor.Step{Name: "script", Lines: []string{"echo hi", "sleep 1000 & sleep 1000"}}, failingWriter{boom})
		errc <- err
	}()
	select {
	case err := <-errc:
		if !errors.Is(err, boom) {
			t.Errorf("Run = %v, want an error wrapping %v", err, boom)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("Run did not give up within 5s after its output failed")
	}
}

func TestPrepareErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		job  executor.Job
		want string
	}{
		{"missing workspace", executor.Job{Dir: filepath.Join(dir, "missing")}, "workspace"},
		{"workspace is a file", executor.Job{Dir: file}, "not a directory"},
		{"empty variable name", executor.Job{Dir: dir, Variables: []store.Variable{{Name: "", Value: "x"}}}, "invalid name"},
		{"= in a variable name", executor.Job{Dir: dir, Variables: []store.Variable{{Name: "A=B", Value: "x"}}}, "invalid name"},
		{"NUL in a value", executor.Job{Dir: dir, Variables: []store.Variable{{Name: "A", Value: "x\x00y"}}}, "NUL"},
	}
	ex := newExecutor(t, testConfig(t))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := ex.Prepare(context.Background(), &tt.job)
			if err == nil {
				s.Cleanup(context.Background())
				t.Fatalf("Prepare succeeded, want an error saying %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Prepare = %v, want an error saying %q", err, tt.want)
			}
		})
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  shell.Config
		want string // in the error; "" for none
	}{
		{"zero", shell.Config{}, ""},
		{"negative KillGrace", shell.Config{KillGrace: -time.Second}, "KillGrace"},
		{"negative DrainTimeout", shell.Config{DrainTimeout: -1}, "DrainTimeout"},
		{"bad PassEnv", shell.Config{PassEnv: []string{"OK", "A=B"}}, "PassEnv"},
		{"no bash", shell.Config{Bash: "/nonexistent/bash"}, "find bash"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := shell.New(tt.cfg)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("New = %v, want no error", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("New = %v, want an error naming %s", err, tt.want)
			}
		})
	}
}
