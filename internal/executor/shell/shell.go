// Package shell is the executor that runs a job's steps with bash directly on
// the agent's host, in the job's workspace.
//
// Each step is written to a script file in a directory private to the
// session (outside the workspace) and run as
//
//	bash --noprofile --norc STEP.sh
//
// with stdin from /dev/null, stdout and stderr into one pipe streamed to the
// caller, and the step in a process group of its own. When the step's shell
// exits, times out or is cancelled, the whole group is sent SIGTERM and,
// after Config.KillGrace, SIGKILL: nothing a step starts outlives it, unless
// it leaves the group on purpose with setsid (nohup does not leave it). If
// such a process keeps the output open, Run stops reading it after
// Config.DrainTimeout. See Script for how the commands run.
//
// The executor needs a Unix system; on Linux it reads /proc to tell live
// processes from zombies, which PID 1 in some containers never reaps.
//
// Steps see a small clean environment, not the agent's: the variables named
// in Config.PassEnv (DefaultPassEnv: PATH, HOME, USER, LOGNAME, locale, TZ,
// TMPDIR and the proxy settings) taken from the agent's environment, then the
// job's variables on top, verbatim, a later one winning over an earlier one.
// If the agent has no PATH, steps get DefaultPath.
package shell

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/hangar-ci/hangar/internal/executor"
	"github.com/hangar-ci/hangar/internal/store"
)

// Defaults for Config fields left zero.
const (
	// DefaultBash is the bash binary, looked up in the agent's PATH.
	DefaultBash = "bash"
	// DefaultKillGrace is how long a step's processes get to exit after
	// SIGTERM before they are sent SIGKILL.
	DefaultKillGrace = 2 * time.Second
	// DefaultDrainTimeout is how long Run waits for the end of a step's
	// output once the step's process group is gone.
	DefaultDrainTimeout = time.Second
	// DefaultPath is the PATH steps get when the agent has none.
	DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// DefaultPassEnv names the variables of the agent's environment that steps
// see when Config.PassEnv is nil. Credentials the agent may hold (cloud keys,
// SSH_AUTH_SOCK, its own token) are deliberately not among them.
var DefaultPassEnv = []string{
	"PATH", "HOME", "USER", "LOGNAME",
	"LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR",
	"http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY",
}

// pollInterval is how often a process group is checked while it is given
// time to exit.
const pollInterval = 25 * time.Millisecond

// Config configures the shell executor. The zero value is valid and means
// every default.
type Config struct {
	// Bash is the bash binary, a path or a name looked up in the agent's
	// PATH when New runs. Default DefaultBash.
	Bash string
	// TempDir is where each session makes its private directory for step
	// scripts. Default os.TempDir().
	TempDir string
	// KillGrace is how long a step's processes get to exit after SIGTERM
	// before they are sent SIGKILL. Default DefaultKillGrace.
	KillGrace time.Duration
	// DrainTimeout is how long Run keeps reading a step's output after the
	// step's process group is gone, in case a process that left the group
	// still holds the output open; Run then stops reading. Default
	// DefaultDrainTimeout.
	DrainTimeout time.Duration
	// PassEnv names the variables of Environ that steps see. Nil means
	// DefaultPassEnv; an empty, non-nil slice passes none.
	PassEnv []string
	// Environ is the agent's environment, as os.Environ returns it, that
	// PassEnv picks from. Nil means os.Environ() when a session is prepared.
	Environ []string
}

// Validate reports the first field of c that is invalid.
func (c *Config) Validate() error {
	switch {
	case c.KillGrace < 0:
		return fmt.Errorf("shell config: KillGrace is negative (%v)", c.KillGrace)
	case c.DrainTimeout < 0:
		return fmt.Errorf("shell config: DrainTimeout is negative (%v)", c.DrainTimeout)
	}
	for _, name := range c.PassEnv {
		if name == "" || strings.ContainsAny(name, "=\x00") {
			return fmt.Errorf("shell config: PassEnv holds an invalid variable name %q", name)
		}
	}
	return nil
}

// Executor runs steps with bash on the agent's host. It is safe for
// concurrent use; each Prepare makes an independent session.
type Executor struct {
	cfg  Config
	bash string // absolute path
}

var _ executor.Executor = (*Executor)(nil)

// New returns a shell executor configured by cfg, with defaults filled in.
// It fails if cfg is invalid or bash cannot be found.
func New(cfg Config) (*Executor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Bash == "" {
		cfg.Bash = DefaultBash
	}
	if cfg.KillGrace == 0 {
		cfg.KillGrace = DefaultKillGrace
	}
	if cfg.DrainTimeout == 0 {
		cfg.DrainTimeout = DefaultDrainTimeout
	}
	if cfg.PassEnv == nil {
		cfg.PassEnv = DefaultPassEnv
	}
	bash, err := exec.LookPath(cfg.Bash)
	if err != nil {
		return nil, fmt.Errorf("find bash: %w", err)
	}
	if bash, err = filepath.Abs(bash); err != nil {
		return nil, fmt.Errorf("find bash: %w", err)
	}
	return &Executor{cfg: cfg, bash: bash}, nil
}

// Prepare checks that job's workspace is a directory and its variables can
// be put in an environment, and makes the session's private directory.
func (e *Executor) Prepare(ctx context.Context, job *executor.Job) (executor.Session, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("prepare shell session: %w", err)
	}
	dir, err := executor.WorkspaceDir(job)
	if err != nil {
		return nil, fmt.Errorf("prepare shell session: %w", err)
	}
	env, err := e.environment(job)
	if err != nil {
		return nil, fmt.Errorf("prepare shell session: %w", err)
	}
	if job.Log != nil && (job.Image != nil || len(job.Services) > 0) {
		fmt.Fprintf(job.Log, "The shell executor runs the job on this host: its image and services are not used.\n")
	}
	scripts, err := executor.NewScriptDir(e.cfg.TempDir, "hangar-shell-", false)
	if err != nil {
		return nil, fmt.Errorf("prepare shell session: %w", err)
	}
	return &session{ex: e, dir: dir, scripts: scripts, env: env}, nil
}

// environment returns the environment job's steps run with: the agent's
// variables that PassEnv names (and PATH), then the job's.
func (e *Executor) environment(job *executor.Job) ([]string, error) {
	environ := e.cfg.Environ
	if environ == nil {
		environ = os.Environ()
	}
	agent := map[string]string{}
	for _, kv := range environ {
		if name, value, ok := strings.Cut(kv, "="); ok {
			agent[name] = value
		}
	}
	var base []store.Variable
	for _, name := range e.cfg.PassEnv {
		if value, ok := agent[name]; ok {
			base = append(base, store.Variable{Name: name, Value: value})
		}
	}
	if _, ok := agent["PATH"]; !ok || !slices.Contains(e.cfg.PassEnv, "PATH") {
		base = append([]store.Variable{{Name: "PATH", Value: DefaultPath}}, base...)
	}
	return executor.Env(base, job.Variables)
}

// session is one attempt's shell session.
type session struct {
	ex      *Executor
	dir     string              // the workspace, absolute
	scripts *executor.ScriptDir // the step scripts
	env     []string            // the steps' environment
}

// Cleanup removes the session's script directory. The workspace is the
// caller's and is left alone.
func (s *session) Cleanup(ctx context.Context) error {
	if err := s.scripts.Remove(); err != nil {
		return fmt.Errorf("clean up shell session: %w", err)
	}
	return nil
}

// Run runs step in a fresh bash; see the package documentation.
func (s *session) Run(ctx context.Context, step executor.Step, out io.Writer) (executor.Result, error) {
	if err := ctx.Err(); err != nil {
		return executor.Result{}, fmt.Errorf("run step %s: %w", step.Name, err)
	}
	name, err := s.scripts.Write(step)
	if err != nil {
		return executor.Result{}, fmt.Errorf("run step %s: %w", step.Name, err)
	}
	path := filepath.Join(s.scripts.Path, name)
	pr, pw, err := os.Pipe()
	if err != nil {
		return executor.Result{}, fmt.Errorf("run step %s: make output pipe: %w", step.Name, err)
	}
	defer pr.Close()

	cmd := exec.Command(s.ex.bash, "--noprofile", "--norc", path)
	cmd.Dir = s.dir
	cmd.Env = s.env
	cmd.Stdout = pw
	cmd.Stderr = pw
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Start()
	pw.Close() // the step's processes hold the write end now
	if err != nil {
		return executor.Result{}, fmt.Errorf("run step %s: start bash: %w", step.Name, err)
	}
	pgid := cmd.Process.Pid // Setpgid makes bash the leader of a new group

	waitc := make(chan error, 1)
	go func() { waitc <- cmd.Wait() }()
	copyc := make(chan error, 1)
	go func() { copyc <- copyOutput(out, pr) }()

	var timeout <-chan time.Time
	if step.Timeout > 0 {
		t := time.NewTimer(step.Timeout)
		defer t.Stop()
		timeout = t.C
	}

	var (
		res     executor.Result
		runErr  error // what Run returns
		waitErr error // from cmd.Wait
	)
	for done := false; !done; {
		select {
		case waitErr = <-waitc:
			done = true
		case err := <-copyc:
			copyc = nil // the output has ended
			if err != nil {
				runErr = fmt.Errorf("run step %s: write output: %w", step.Name, err)
				s.stopGroup(pgid)
				waitErr, done = <-waitc, true
			}
		case <-timeout:
			res.TimedOut = true
			s.stopGroup(pgid)
			waitErr, done = <-waitc, true
		case <-ctx.Done():
			runErr = fmt.Errorf("run step %s: %w", step.Name, ctx.Err())
			s.stopGroup(pgid)
			waitErr, done = <-waitc, true
		}
	}
	// bash has exited; whatever it left running goes with it.
	s.stopGroup(pgid)

	if copyc != nil {
		drain := time.NewTimer(s.ex.cfg.DrainTimeout)
		select {
		case err := <-copyc:
			if err != nil && runErr == nil {
				runErr = fmt.Errorf("run step %s: write output: %w", step.Name, err)
			}
		case <-drain.C:
			// Someone outside the group holds the pipe open: stop reading,
			// and wait for the copy so that out is not used after Run.
			pr.Close()
			<-copyc
		}
		drain.Stop()
	}

	if cmd.ProcessState == nil {
		return res, fmt.Errorf("run step %s: wait for bash: %w", step.Name, waitErr)
	}
	var exitErr *exec.ExitError
	if waitErr != nil && !errors.As(waitErr, &exitErr) && runErr == nil {
		runErr = fmt.Errorf("run step %s: wait for bash: %w", step.Name, waitErr)
	}
	res.ExitCode = exitCode(cmd.ProcessState)
	return res, runErr
}

// copyOutput copies r to w until r ends or is closed, writing each chunk as
// soon as it is read. It returns only w's errors.
func copyOutput(w io.Writer, r io.Reader) error {
	buf := make([]byte, 32*1024)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			m, werr := w.Write(buf[:n])
			if werr == nil && m < n {
				werr = io.ErrShortWrite
			}
			if werr != nil {
				return werr
			}
		}
		if err != nil {
			return nil
		}
	}
}

// exitCode returns the exit status of a process as a shell reports it:
// 128+signal for a process killed by a signal.
func exitCode(state *os.ProcessState) int {
	if ws, ok := state.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return state.ExitCode()
}
