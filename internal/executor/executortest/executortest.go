// Package executortest is the conformance suite every executor.Executor
// passes: the behaviour of steps (exit codes, errexit and pipefail, echoed
// commands, variables, working directory, streaming, timeouts, cancellation,
// fresh shells) that the agent relies on whichever executor runs them.
//
// The suite runs bash commands and expects the workspace (job.Dir) to be
// shared between the test and the steps, and a /proc in the steps' world.
package executortest

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hangar-ci/hangar/internal/executor"
	"github.com/hangar-ci/hangar/internal/store"
)

// Timing of the suite. Steps that must be killed get stepTimeout; the
// executor's own kill grace comes on top, and everything must be over within
// maxKillTime.
const (
	stepTimeout = time.Second
	maxKillTime = 10 * time.Second
	// runLimit bounds every step the suite runs, so that a broken executor
	// fails the suite instead of hanging it.
	runLimit = 30 * time.Second
)

// Run runs the conformance suite. newExecutor is called once per test, and
// the tests run in parallel.
func Run(t *testing.T, newExecutor func(t *testing.T) executor.Executor) {
	t.Helper()
	tests := []struct {
		name string
		test func(t *testing.T, ex executor.Executor)
	}{
		{"Steps", testSteps},
		{"Variables", testVariables},
		{"WorkingDirectory", testWorkingDirectory},
		{"Streaming", testStreaming},
		{"Timeout", testTimeout},
		{"LeftoversKilled", testLeftoversKilled},
		{"Cancel", testCancel},
		{"CancelledBeforeRun", testCancelledBeforeRun},
		{"FreshShellPerStep", testFreshShellPerStep},
		{"Cleanup", testCleanup},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.test(t, newExecutor(t))
		})
	}
}

// echoed is the line an executor prints before running command.
func echoed(command string) string {
	return "\x1b[32;1m$ " + command + "\x1b[0;m"
}

func testSteps(t *testing.T, ex executor.Executor) {
	tests := []struct {
		name  string
		lines []string
		code  int
		want  []string // lines the output must have, in this order
		never []string // lines the output must not have
	}{
		{name: "no commands", code: 0},
		{name: "success", lines: []string{"true"}, code: 0},
		{name: "false", lines: []string{"false"}, code: 1},
		{name: "exit code", lines: []string{"exit 3"}, code: 3},
		{name: "last command decides", lines: []string{"true", "exit 7"}, code: 7},
		{name: "killed by a signal", lines: []string{"kill -KILL $$"}, code: 137},
		{
			name:  "commands are echoed",
			lines: []string{"echo hello", `echo "it's" 'a"b'`},
			want:  []string{echoed("echo hello"), "hello", echoed(`echo "it's" 'a"b'`), `it's a"b`},
		},
		{
			name:  "set -e stops the step",
			lines: []string{"echo one", "false", "echo two"},
			code:  1,
			want:  []string{"one", echoed("false")},
			never: []string{"two", echoed("echo two")},
		},
		{
			name:  "failure inside a command line",
			lines: []string{"echo one; false; echo two", "echo three"},
			code:  1,
			want:  []string{"one"},
			never: []string{"two", "three"},
		},
		{
			name:  "pipefail",
			lines: []string{"false | cat", "echo after"},
			code:  1,
			never: []string{"after"},
		},
		{
			name:  "handled failure goes on",
			lines: []string{"false || echo handled", "if false; then :; fi", "echo after"},
			want:  []string{"handled", "after"},
		},
		{
			name:  "multi-line commands",
			lines: []string{"if true; then\n  echo in-if\nfi\n", "cat <<EOF\nheredoc $((1+1))\nEOF", "for i in 1 2; do\n  echo loop $i\ndone"},
			want: []string{
				echoed("if true; then # collapsed multi-line command"), "in-if",
				echoed("cat <<EOF # collapsed multi-line command"), "heredoc 2",
				"loop 1", "loop 2",
			},
		},
		{
			name:  "failure inside a multi-line command",
			lines: []string{"echo a\nfalse\necho b", "echo c"},
			code:  1,
			want:  []string{"a"},
			never: []string{"b", "c"},
		},
		{
			name:  "unbalanced quote fails alone",
			lines: []string{"echo before", `echo "oops`, "echo after"},
			code:  2,
			want:  []string{"before"},
			never: []string{"after"},
		},
		{
			name:  "stdout and stderr in order",
			lines: []string{"echo out1; echo err1 >&2; echo out2", "echo err2 >&2"},
			want:  []string{"out1", "err1", "out2", "err2"},
		},
		{
			name:  "stdin is empty",
			lines: []string{"cat", "read -r line || echo no-input"},
			want:  []string{"no-input"},
		},
		{
			name:  "functions and variables last the step",
			lines: []string{"greet() { echo hi $1; }", "X=42", "greet $X"},
			want:  []string{"hi 42"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := prepare(t, ex, newJob(t))
			res, out := run(t, s, executor.Step{Name: "script", Lines: tt.lines})
			if res.ExitCode != tt.code || res.TimedOut {
				t.Errorf("result %+v, want exit code %d; output:\n%s", res, tt.code, out)
			}
			lines := strings.Split(out, "\n")
			if !inOrder(lines, tt.want) {
				t.Errorf("output lacks, in order, %q:\n%s", tt.want, out)
			}
			for _, l := range tt.never {
				if slices.Contains(lines, l) {
					t.Errorf("output has %q, which must not run:\n%s", l, out)
				}
			}
		})
	}
}

func testVariables(t *testing.T, ex executor.Executor) {
	vars := []store.Variable{
		{Name: "SPACES", Value: "with  two  spaces "},
		{Name: "QUOTES", Value: `it's "quoted" \n back\slash`},
		{Name: "DOLLARS", Value: "$HOME ${PATH} $(echo injected) `echo injected` $((1+1))"},
		{Name: "NEWLINES", Value: "line1\nline2\n"},
		{Name: "UNICODE", Value: "héllo ☃"},
		{Name: "EMPTY", Value: ""},
		{Name: "MASKED_ONE", Value: "s3cr3t-value", Masked: true},
		{Name: "DUP", Value: "first"},
		{Name: "DUP", Value: "second"},
		{Name: "HOME", Value: "/job/home"},
	}
	s := prepare(t, ex, newJob(t, vars...))
	var lines []string
	for _, v := range vars {
		lines = append(lines, `printf '%s=<%s>\n' `+v.Name+` "${`+v.Name+`-unset}"`)
	}
	res, out := run(t, s, executor.Step{Name: "script", Lines: lines})
	if res.ExitCode != 0 {
		t.Fatalf("result %+v; output:\n%s", res, out)
	}
	for _, v := range vars {
		if v.Name == "DUP" {
			continue
		}
		if want := v.Name + "=<" + v.Value + ">"; !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(out, "DUP=<second>") {
		t.Errorf("output lacks DUP=<second>, the later variable winning:\n%s", out)
	}
}

func testWorkingDirectory(t *testing.T, ex executor.Executor) {
	job := newJob(t)
	if err := os.WriteFile(filepath.Join(job.Dir, "marker.txt"), []byte("marker-content\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := prepare(t, ex, job)
	res, out := run(t, s, executor.Step{Name: "script", Lines: []string{"cat marker.txt", "echo made > created.txt", "ls -A"}})
	if res.ExitCode != 0 {
		t.Fatalf("result %+v; output:\n%s", res, out)
	}
	lines := strings.Split(out, "\n")
	if !slices.Contains(lines, "marker-content") {
		t.Errorf("the step did not read marker.txt from the workspace:\n%s", out)
	}
	if got, err := os.ReadFile(filepath.Join(job.Dir, "created.txt")); err != nil || string(got) != "made\n" {
		t.Errorf("created.txt in the workspace: %q, %v; want %q", got, err, "made\n")
	}
	// The workspace holds only what the job put there: no scripts.
	if !inOrder(lines, []string{"created.txt", "marker.txt"}) || len(lines) != slices.Index(lines, "marker.txt")+2 {
		t.Errorf("ls -A in the workspace does not show exactly created.txt and marker.txt:\n%s", out)
	}
}

func testStreaming(t *testing.T, ex executor.Executor) {
	job := newJob(t)
	s := prepare(t, ex, job)
	out := newOutput()
	// The step waits for a file the test makes only once it has seen the
	// step's first line: it ends only if output is streamed.
	done := goRun(context.Background(), s, executor.Step{
		Name:    "script",
		Lines:   []string{"echo ready", "while [ ! -e go ]; do sleep 0.02; done", "echo finished"},
		Timeout: 20 * time.Second,
	}, out)
	if !out.waitFor("ready\n", 10*time.Second) {
		t.Errorf("the first line did not arrive while the step ran; output so far: %q", out.String())
	}
	select {
	case r := <-done:
		t.Fatalf("Run returned before the step could end: %+v, %v", r.res, r.err)
	default:
	}
	if err := os.WriteFile(filepath.Join(job.Dir, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	r := wait(t, done, runLimit, out)
	if r.err != nil || r.res.ExitCode != 0 || r.res.TimedOut {
		t.Fatalf("Run = %+v, %v; output:\n%s", r.res, r.err, out.String())
	}
	if !strings.Contains(out.String(), "\nfinished\n") {
		t.Errorf("output lacks the last line:\n%s", out.String())
	}
}

// beat is a command that starts a process writing a line to bg.beat every
// 50 ms, and waitBeat waits until it has. A kill test passes if the file
// stops growing: that works whichever process namespace the step is in.
const (
	beat     = "printf 'while :; do echo . >> bg.beat; sleep 0.05; done\\n' > beat.sh"
	waitBeat = "while [ ! -s bg.beat ]; do sleep 0.01; done"
)

// killTests are steps that run until they are killed, each leaving a
// process behind that must die with it.
var killTests = []struct {
	name  string
	lines []string
}{
	{"foreground", []string{beat, "sh beat.sh > /dev/null &", waitBeat, "echo started", "sleep 1000"}},
	{"background holds the output", []string{beat, "sh beat.sh &", waitBeat, "echo started", "wait"}},
	{"ignores SIGTERM", []string{"trap '' TERM", beat, "sh beat.sh &", waitBeat, "echo started", "sleep 1000"}},
	{"grandchild", []string{beat, "(sh -c 'sh beat.sh & wait') &", waitBeat, "echo started", "wait"}},
}

func testTimeout(t *testing.T, ex executor.Executor) {
	for _, tt := range killTests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			job := newJob(t)
			s := prepare(t, ex, job)
			out := newOutput()
			start := time.Now()
			r := wait(t, goRun(context.Background(), s, executor.Step{Name: "script", Lines: tt.lines, Timeout: stepTimeout}, out), stepTimeout+maxKillTime, out)
			res, err, elapsed := r.res, r.err, time.Since(start)
			if err != nil || !res.TimedOut || res.ExitCode == 0 {
				t.Errorf("Run = %+v, %v; want TimedOut, a non-zero exit code and no error", res, err)
			}
			if elapsed < stepTimeout || elapsed > maxKillTime {
				t.Errorf("Run took %v; want between %v and %v", elapsed, stepTimeout, maxKillTime)
			}
			if !strings.Contains(out.String(), "started\n") {
				t.Errorf("the step did not get going; output:\n%s", out.String())
			}
			checkGone(t, job)
		})
	}
}

func testLeftoversKilled(t *testing.T, ex executor.Executor) {
	job := newJob(t)
	s := prepare(t, ex, job)
	start := time.Now()
	res, out := run(t, s, executor.Step{Name: "script", Lines: []string{beat, "sh beat.sh &", waitBeat, "echo done"}})
	if elapsed := time.Since(start); elapsed > maxKillTime {
		t.Errorf("Run took %v although the step's shell ended at once", elapsed)
	}
	if res.ExitCode != 0 || res.TimedOut {
		t.Errorf("result %+v; output:\n%s", res, out)
	}
	checkGone(t, job)
}

func testCancel(t *testing.T, ex executor.Executor) {
	for _, tt := range killTests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			job := newJob(t)
			s := prepare(t, ex, job)
			out := newOutput()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			cancelled := make(chan time.Time, 1)
			go func() {
				out.waitFor("started\n", maxKillTime)
				cancelled <- time.Now()
				cancel()
			}()
			r := wait(t, goRun(ctx, s, executor.Step{Name: "script", Lines: tt.lines}, out), 2*maxKillTime, out)
			res, err, elapsed := r.res, r.err, time.Since(<-cancelled)
			if !strings.Contains(out.String(), "started\n") {
				t.Errorf("the step did not get going; output:\n%s", out.String())
			}
			if !errors.Is(err, context.Canceled) || res.TimedOut {
				t.Errorf("Run = %+v, %v; want an error wrapping context.Canceled", res, err)
			}
			if elapsed > maxKillTime {
				t.Errorf("Run took %v after cancellation; want at most %v", elapsed, maxKillTime)
			}
			checkGone(t, job)
		})
	}
}

func testCancelledBeforeRun(t *testing.T, ex executor.Executor) {
	job := newJob(t)
	s := prepare(t, ex, job)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	out := newOutput()
	if r := wait(t, goRun(ctx, s, executor.Step{Name: "script", Lines: []string{"echo ran > ran.txt"}}, out), runLimit, out); !errors.Is(r.err, context.Canceled) {
		t.Errorf("Run with a cancelled context = %v, want an error wrapping context.Canceled", r.err)
	}
	if _, err := os.Stat(filepath.Join(job.Dir, "ran.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the step ran although its context was cancelled (ran.txt: %v)", err)
	}
}

func testFreshShellPerStep(t *testing.T, ex executor.Executor) {
	job := newJob(t, store.Variable{Name: "JOB_VAR", Value: "from-job"})
	if err := os.WriteFile(filepath.Join(job.Dir, "marker.txt"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	s := prepare(t, ex, job)
	res, out := run(t, s, executor.Step{Name: "script", Lines: []string{
		"export FROM_SCRIPT=leaked JOB_VAR=changed",
		"set +e",
		"mkdir elsewhere && cd elsewhere",
		"exit 5",
	}})
	if res.ExitCode != 5 {
		t.Fatalf("script result %+v; output:\n%s", res, out)
	}
	res, out = run(t, s, executor.Step{Name: "after_script", Lines: []string{
		`echo "FROM_SCRIPT=${FROM_SCRIPT-unset} JOB_VAR=$JOB_VAR"`,
		"test -e marker.txt && echo in-workspace",
		"false",
		"echo still-errexit",
	}})
	if res.ExitCode != 1 {
		t.Errorf("after_script result %+v, want exit code 1 from set -e; output:\n%s", res, out)
	}
	lines := strings.Split(out, "\n")
	if !inOrder(lines, []string{"FROM_SCRIPT=unset JOB_VAR=from-job", "in-workspace"}) || slices.Contains(lines, "still-errexit") {
		t.Errorf("after_script does not run in a fresh shell in the workspace:\n%s", out)
	}
}

func testCleanup(t *testing.T, ex executor.Executor) {
	s, err := ex.Prepare(context.Background(), newJob(t))
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	if res, out := run(t, s, executor.Step{Name: "script", Lines: []string{"echo hi"}}); res.ExitCode != 0 {
		t.Fatalf("result %+v; output:\n%s", res, out)
	}
	for i := range 2 {
		if err := s.Cleanup(context.Background()); err != nil {
			t.Errorf("Cleanup #%d: %v", i+1, err)
		}
	}
	out := newOutput()
	if r := wait(t, goRun(context.Background(), s, executor.Step{Name: "script", Lines: []string{"true"}}, out), runLimit, out); r.err == nil {
		t.Errorf("Run after Cleanup succeeded, want an error")
	}
}

// checkGone fails the test if the process a kill test left behind still
// writes to the workspace's bg.beat.
func checkGone(t *testing.T, job *executor.Job) {
	t.Helper()
	size := func() int64 {
		info, err := os.Stat(filepath.Join(job.Dir, "bg.beat"))
		if err != nil {
			t.Fatalf("the step left no bg.beat: %v", err)
		}
		return info.Size()
	}
	before := size()
	time.Sleep(400 * time.Millisecond)
	if after := size(); after != before {
		t.Errorf("a process the step started outlived it: bg.beat grew from %d to %d bytes after Run returned", before, after)
	}
}

// newJob returns a job with a fresh workspace and vars.
func newJob(t *testing.T, vars ...store.Variable) *executor.Job {
	t.Helper()
	return &executor.Job{Dir: t.TempDir(), Variables: vars}
}

// prepare prepares a session for job, to be cleaned up with the test.
func prepare(t *testing.T, ex executor.Executor, job *executor.Job) executor.Session {
	t.Helper()
	s, err := ex.Prepare(context.Background(), job)
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Cleanup(context.Background()); err != nil {
			t.Errorf("Cleanup: %v", err)
		}
	})
	return s
}

// run runs step in s and returns its result and output; an error fails the
// test.
func run(t *testing.T, s executor.Session, step executor.Step) (executor.Result, string) {
	t.Helper()
	out := newOutput()
	r := wait(t, goRun(context.Background(), s, step, out), runLimit, out)
	if r.err != nil {
		t.Fatalf("Run step %s: %v; output:\n%s", step.Name, r.err, out.String())
	}
	return r.res, out.String()
}

// ran is what Run returned.
type ran struct {
	res executor.Result
	err error
}

// goRun runs step in s in a goroutine and sends what Run returns.
func goRun(ctx context.Context, s executor.Session, step executor.Step, out *output) <-chan ran {
	c := make(chan ran, 1)
	go func() {
		res, err := s.Run(ctx, step, out)
		c <- ran{res, err}
	}()
	return c
}

// wait waits for what goRun sends, and fails the test if it takes longer
// than limit: a broken executor must fail the suite, not hang it.
func wait(t *testing.T, c <-chan ran, limit time.Duration, out *output) ran {
	t.Helper()
	timer := time.NewTimer(limit)
	defer timer.Stop()
	select {
	case r := <-c:
		return r
	case <-timer.C:
		t.Fatalf("Run did not return within %v; output so far:\n%s", limit, out.String())
		return ran{}
	}
}

// inOrder reports whether want is a subsequence of lines.
func inOrder(lines, want []string) bool {
	for _, l := range lines {
		if len(want) > 0 && l == want[0] {
			want = want[1:]
		}
	}
	return len(want) == 0
}

// output collects a step's output; it can be read while the step runs.
type output struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{} // receives after writes
}

func newOutput() *output {
	return &output{changed: make(chan struct{}, 1)}
}

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	select {
	case o.changed <- struct{}{}:
	default:
	}
	return o.buf.Write(p)
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// waitFor reports whether s appears in the output within d.
func (o *output) waitFor(s string, d time.Duration) bool {
	timeout := time.After(d)
	for !strings.Contains(o.String(), s) {
		select {
		case <-o.changed:
		case <-timeout:
			return false
		}
	}
	return true
}
