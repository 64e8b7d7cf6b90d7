// Package executor defines how an agent runs the steps of one job attempt:
// an Executor prepares a Session for the attempt, the Session runs its steps
// one after the other and is cleaned up at the end.
//
// Implementations live in subpackages (shell, later docker) and all pass the
// conformance suite in executortest.
package executor

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/hangar-ci/hangar/internal/store"
)

// Job is what an executor needs to run one attempt.
type Job struct {
	// Dir is the attempt's workspace, already holding the checked-out
	// source; steps run in it.
	Dir string
	// Variables are the job's variables, predefined CI_* included, in
	// precedence order (a later one wins). Values reach the steps verbatim:
	// executors do not expand them.
	Variables []store.Variable
	// Image is the container image to run the steps in, nil for the
	// executor's default; the shell executor ignores it.
	Image *store.ImageSpec
	// Services are containers to start beside the job's and reach by name;
	// the shell executor ignores them.
	Services []store.ServiceSpec
	// Labels name the attempt on everything the executor creates outside
	// the workspace (containers, networks), so that what a crashed agent
	// left behind can be found and removed.
	Labels map[string]string
	// Log receives what Prepare has to tell the job's log (images pulled,
	// services started, warnings); nil drops it.
	Log io.Writer
}

// Step is one phase of an attempt. For a GitLab job, before_script and
// script together are one step and after_script is another.
type Step struct {
	// Name says which phase this is: "script", "after_script".
	Name string
	// Lines are the commands, each run in turn in one shell session; a line
	// may hold several lines of shell (a YAML block scalar).
	Lines []string
	// Timeout bounds the step's run time; 0 means no limit.
	Timeout time.Duration
}

// Result is how a step ended.
type Result struct {
	// ExitCode is the shell's exit status; a shell killed by a signal
	// reports 128+signal, as shells do.
	ExitCode int
	// TimedOut reports that the step ran past its Timeout and was killed;
	// ExitCode then only says how it died.
	TimedOut bool
}

// Executor prepares the place where an attempt's steps run.
type Executor interface {
	// Prepare makes a Session for job. The caller must call the Session's
	// Cleanup when the attempt is over, whatever happened.
	Prepare(ctx context.Context, job *Job) (Session, error)
}

// Session runs the steps of one attempt, one at a time; it is not safe for
// concurrent use.
type Session interface {
	// Run runs step, each time in a fresh shell, streaming its combined
	// stdout and stderr to out as it is produced; out is not used after Run
	// returns. A step that fails is reported in Result with a nil error; the
	// error is only for infrastructure failures and for ctx being done, in
	// which case everything the step started is killed and ctx.Err() is
	// returned, wrapped. When Run returns, nothing the step started is left
	// running, whether the step ended, timed out or was cancelled.
	Run(ctx context.Context, step Step, out io.Writer) (Result, error)
	// Cleanup releases what Prepare made; it is safe to call twice. Run
	// fails after Cleanup.
	Cleanup(ctx context.Context) error
}

// Env returns the environment of a step as NAME=value entries: the
// variables of base, then those of vars, a later one winning, each name
// once, in the order it first came. Values are taken verbatim. A name that
// cannot be an environment variable, or a value holding a NUL byte, is an
// error.
func Env(base, vars []store.Variable) ([]string, error) {
	values := map[string]string{}
	var order []string
	for _, v := range slices.Concat(base, vars) {
		if v.Name == "" || strings.ContainsAny(v.Name, "=\x00") {
			return nil, fmt.Errorf("variable %q: invalid name for an environment variable", v.Name)
		}
		if strings.IndexByte(v.Value, 0) >= 0 {
			return nil, fmt.Errorf("variable %s: value holds a NUL byte", v.Name)
		}
		if _, ok := values[v.Name]; !ok {
			order = append(order, v.Name)
		}
		values[v.Name] = v.Value
	}
	env := make([]string, 0, len(order))
	for _, name := range order {
		env = append(env, name+"="+values[name])
	}
	return env, nil
}
