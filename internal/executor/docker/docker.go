// Package docker is the executor that runs each step of a job in a fresh
// container of the job's image, through the Docker Engine API.
//
// A session is one attempt. Prepare makes sure the job's image is on the
// host (following the pull policy), and when the job has services it
// creates a bridge network of the attempt's own, starts each service on it
// under its aliases and waits until their exposed TCP ports accept
// connections. Each Run then creates a container of the job's image with
//
//   - the workspace (Job.Dir) bind-mounted at Config.ProjectDir, which is
//     the working directory, and CI_PROJECT_DIR and CI_BUILDS_DIR set to
//     match;
//   - the step's script (see executor.Script) bind-mounted read-only from a
//     directory private to the session, run by bash when the image has one
//     and by sh otherwise (see bootstrap for how an image's entrypoint is
//     kept);
//   - Docker's init as PID 1, so that the step's shell can be killed by a
//     signal and orphans are reaped;
//   - the job's variables, verbatim, as its environment;
//   - the CPU and memory limits of Config, and privileged mode only when
//     Config allows it;
//   - the labels of Job.Labels and "hangar.managed".
//
// Run attaches to the container before starting it, so no output is lost,
// streams the output (stderr joined to stdout, in order) as it comes, and
// removes the container when
// the step ends. A step that times out or is cancelled has its container
// stopped (SIGTERM, then SIGKILL after Config.KillGrace) and removed: every
// process the step started dies with it. Cleanup removes the services and
// the network. Everything the executor creates carries the job's labels, so
// RemoveLeftovers can find what a crashed agent left behind.
package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"path"
	"slices"
	"sync"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"

	"github.com/hangar-ci/hangar/internal/executor"
	"github.com/hangar-ci/hangar/internal/store"
)

// Defaults for Config fields left zero.
const (
	DefaultImage       = "busybox:latest"
	DefaultProjectDir  = "/builds/project"
	DefaultKillGrace   = 2 * time.Second
	DefaultServiceWait = 30 * time.Second
	// DefaultDrainTimeout is how long Run waits for the end of a step's
	// output once its container has exited.
	DefaultDrainTimeout = 2 * time.Second
)

// ManagedLabel is set to "true" on every container and network the
// executor creates.
const ManagedLabel = "hangar.managed"

// scriptDir is where a step container sees the session's scripts.
const scriptDir = "/.hangar-steps"

// Config configures the Docker executor. The zero value is valid and means
// every default.
type Config struct {
	// Host is the engine's address, as DOCKER_HOST takes it; empty means
	// DOCKER_HOST or the local socket.
	Host string
	// Image is the image of jobs that name none. Default DefaultImage.
	Image string
	// PullPolicy is what the executor does about images: PullNever,
	// PullIfNotPresent (the default) or PullAlways.
	PullPolicy PullPolicy
	// AllowedPullPolicies are the policies a job's image: pull_policy may
	// ask for; empty means only PullPolicy.
	AllowedPullPolicies []PullPolicy
	// CPUs limits each container's CPU time, in CPUs (1.5 is one and a
	// half); 0 means no limit.
	CPUs float64
	// Memory limits each container's memory, in bytes; 0 means no limit.
	Memory int64
	// Privileged runs the containers in privileged mode; only an agent's
	// operator can turn it on.
	Privileged bool
	// ProjectDir is where the workspace is mounted in the job's
	// containers. Default DefaultProjectDir.
	ProjectDir string
	// KillGrace is how long a stopped step's processes get after SIGTERM
	// before SIGKILL, rounded up to whole seconds. Default DefaultKillGrace.
	KillGrace time.Duration
	// ServiceWait bounds how long Prepare waits for the services' exposed
	// ports to accept connections. Default DefaultServiceWait.
	ServiceWait time.Duration
	// TempDir is where each session keeps its step scripts; it must be a
	// directory the engine can bind-mount. Default os.TempDir().
	TempDir string
}

// Validate reports the first field of c that is invalid.
func (c *Config) Validate() error {
	switch {
	case c.CPUs < 0:
		return fmt.Errorf("docker config: CPUs is negative (%v)", c.CPUs)
	case c.Memory < 0:
		return fmt.Errorf("docker config: Memory is negative (%d)", c.Memory)
	case c.KillGrace < 0:
		return fmt.Errorf("docker config: KillGrace is negative (%v)", c.KillGrace)
	case c.ServiceWait < 0:
		return fmt.Errorf("docker config: ServiceWait is negative (%v)", c.ServiceWait)
	case c.ProjectDir != "" && (!path.IsAbs(c.ProjectDir) || path.Clean(c.ProjectDir) == "/"):
		return fmt.Errorf("docker config: ProjectDir %q must be an absolute path below /", c.ProjectDir)
	}
	for _, p := range append([]PullPolicy{c.PullPolicy}, c.AllowedPullPolicies...) {
		if p != "" && !p.valid() {
			return fmt.Errorf("docker config: unknown pull policy %q (want never, if-not-present or always)", p)
		}
	}
	return nil
}

// Executor runs steps in containers. It is safe for concurrent use; each
// Prepare makes an independent session.
type Executor struct {
	cfg    Config
	client *client.Client
}

var _ executor.Executor = (*Executor)(nil)

// New returns a Docker executor for cfg, with defaults filled in, talking to
// the engine cfg names (the API version is negotiated: Engine 20.10, API
// 1.41, and later work). It does not contact the engine; Ping does.
func New(cfg Config) (*Executor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Image == "" {
		cfg.Image = DefaultImage
	}
	if cfg.PullPolicy == "" {
		cfg.PullPolicy = PullIfNotPresent
	}
	if len(cfg.AllowedPullPolicies) == 0 {
		cfg.AllowedPullPolicies = []PullPolicy{cfg.PullPolicy}
	}
	if cfg.ProjectDir == "" {
		cfg.ProjectDir = DefaultProjectDir
	}
	cfg.ProjectDir = path.Clean(cfg.ProjectDir)
	if cfg.KillGrace == 0 {
		cfg.KillGrace = DefaultKillGrace
	}
	if cfg.ServiceWait == 0 {
		cfg.ServiceWait = DefaultServiceWait
	}
	opts := []client.Opt{client.FromEnv}
	if cfg.Host != "" {
		opts = append(opts, client.WithHost(cfg.Host))
	}
	c, err := client.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	return &Executor{cfg: cfg, client: c}, nil
}

// Ping checks that the engine answers and returns its API version.
func (e *Executor) Ping(ctx context.Context) (string, error) {
	res, err := e.client.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true})
	if err != nil {
		return "", fmt.Errorf("docker engine does not answer: %w", err)
	}
	return res.APIVersion, nil
}

// Close releases the executor's connections to the engine.
func (e *Executor) Close() error {
	return e.client.Close()
}

// Prepare pulls the job's image as the pull policy says, starts its
// services, and makes the session's script directory.
func (e *Executor) Prepare(ctx context.Context, job *executor.Job) (_ executor.Session, err error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("prepare docker session: %w", err)
	}
	dir, err := executor.WorkspaceDir(job)
	if err != nil {
		return nil, fmt.Errorf("prepare docker session: %w", err)
	}
	s := &session{ex: e, dir: dir, image: e.cfg.Image, labels: map[string]string{ManagedLabel: "true"}}
	maps.Copy(s.labels, job.Labels)
	if s.env, err = e.environment(job); err != nil {
		return nil, fmt.Errorf("prepare docker session: %w", err)
	}
	var policies []string
	if job.Image != nil {
		s.image, s.entrypoint, s.user, policies = job.Image.Name, job.Image.Entrypoint, job.Image.User, job.Image.PullPolicy
	}
	fmt.Fprintf(logWriter(job.Log), "Using Docker executor with image %s\n", s.image)
	if err := e.ensureImage(ctx, s.image, policies); err != nil {
		return nil, fmt.Errorf("prepare docker session: %w", err)
	}
	// The containers run as whatever user the image says: they must be
	// able to read the scripts.
	if s.scripts, err = executor.NewScriptDir(e.cfg.TempDir, "hangar-docker-", true); err != nil {
		return nil, fmt.Errorf("prepare docker session: %w", err)
	}
	defer func() {
		if err != nil {
			s.Cleanup(context.WithoutCancel(ctx))
		}
	}()
	if len(job.Services) > 0 {
		if err := s.startServices(ctx, job); err != nil {
			return nil, fmt.Errorf("prepare docker session: %w", err)
		}
	}
	return s, nil
}

// environment returns the containers' environment: the job's variables,
// with CI_PROJECT_DIR and CI_BUILDS_DIR pointing where the workspace is
// mounted.
func (e *Executor) environment(job *executor.Job) ([]string, error) {
	vars := slices.Clone(job.Variables)
	for name, value := range map[string]string{"CI_PROJECT_DIR": e.cfg.ProjectDir, "CI_BUILDS_DIR": path.Dir(e.cfg.ProjectDir)} {
		if slices.ContainsFunc(vars, func(v store.Variable) bool { return v.Name == name }) {
			vars = append(vars, store.Variable{Name: name, Value: value})
		}
	}
	return executor.Env(nil, vars)
}

// session is one attempt's containers.
type session struct {
	ex         *Executor
	dir        string // the workspace on the host, absolute
	scripts    *executor.ScriptDir
	image      string
	entrypoint []string // nil keeps the image's
	user       string
	env        []string
	labels     map[string]string

	mu       sync.Mutex
	network  string   // the attempt's network, when it has services
	services []string // service container IDs
}

// bootstrap returns the one line of shell that runs script with the first
// bash the image has, or sh, the way GitLab Runner picks a shell in a
// container. It sends stderr into stdout, so that the engine sees one
// stream and the lines keep their order, and stdin from /dev/null.
//
// A step container gets the line twice: as the command, sh -c LINE, and on
// its standard input. An image whose entrypoint runs its command ignores
// the input; one whose entrypoint is a shell taking a command string, such
// as ["/bin/sh", "-c"], runs a bare "sh" that reads the line from its
// input, as GitLab Runner's scripts do. The line must stay one line: a
// shell reading it from stdin parses it whole before it moves stdin away.
func bootstrap(script string) string {
	p := scriptDir + "/" + script
	return `exec 2>&1 </dev/null; for b in /usr/local/bin/bash /usr/bin/bash /bin/bash; do if [ -x "$b" ]; then exec "$b" --noprofile --norc ` +
		p + `; fi; done; exec sh ` + p
}

// entrypoint returns the container entrypoint for an image's entrypoint:
// override: nil keeps the image's, [""] clears it.
func entrypoint(override []string) []string {
	if len(override) == 1 && override[0] == "" {
		return []string{}
	}
	return override
}

// Run runs step in a new container; see the package documentation.
func (s *session) Run(ctx context.Context, step executor.Step, out io.Writer) (executor.Result, error) {
	if err := ctx.Err(); err != nil {
		return executor.Result{}, fmt.Errorf("run step %s: %w", step.Name, err)
	}
	script, err := s.scripts.Write(step)
	if err != nil {
		return executor.Result{}, fmt.Errorf("run step %s: %w", step.Name, err)
	}
	line := bootstrap(script)
	// Created even if ctx ends meanwhile, so that its ID is known and the
	// container removed whatever happens.
	bg := context.WithoutCancel(ctx)
	id, err := s.create(bg, step.Name, []string{"sh", "-c", line})
	if err != nil {
		return executor.Result{}, fmt.Errorf("run step %s: %w", step.Name, err)
	}
	defer s.ex.remove(bg, id)
	res, err := s.ex.runContainer(ctx, id, line+"\n", step.Timeout, out)
	if err != nil {
		return res, fmt.Errorf("run step %s: %w", step.Name, err)
	}
	return res, nil
}

// create creates the container of one step.
func (s *session) create(ctx context.Context, step string, cmd []string) (string, error) {
	s.mu.Lock()
	network := s.network
	s.mu.Unlock()
	init := true
	cfg := &container.Config{
		Image: s.image, Cmd: cmd, Env: s.env, WorkingDir: s.ex.cfg.ProjectDir,
		User: s.user, Labels: withLabel(s.labels, "hangar.step", step),
		Entrypoint:  entrypoint(s.entrypoint),
		AttachStdin: true, OpenStdin: true, StdinOnce: true,
	}
	host := &container.HostConfig{
		Mounts: []mount.Mount{
			{Type: mount.TypeBind, Source: s.dir, Target: s.ex.cfg.ProjectDir},
			{Type: mount.TypeBind, Source: s.scripts.Path, Target: scriptDir, ReadOnly: true},
		},
		Init:       &init,
		Privileged: s.ex.cfg.Privileged,
		Resources:  s.ex.resources(),
	}
	if network != "" {
		host.NetworkMode = container.NetworkMode(network)
	}
	res, err := s.ex.client.ContainerCreate(ctx, client.ContainerCreateOptions{Config: cfg, HostConfig: host})
	if err != nil {
		return "", fmt.Errorf("create container of image %s: %w", s.image, err)
	}
	return res.ID, nil
}

// resources returns the containers' limits.
func (e *Executor) resources() container.Resources {
	return container.Resources{NanoCPUs: int64(e.cfg.CPUs * 1e9), Memory: e.cfg.Memory}
}

// runContainer starts the created container id, writes input to its
// stdin, streams its output to out until it exits, and returns how it
// ended. A timeout or ctx being done stops it; the caller removes it. out
// is not used once runContainer has returned.
func (e *Executor) runContainer(ctx context.Context, id, input string, timeout time.Duration, out io.Writer) (executor.Result, error) {
	bg := context.WithoutCancel(ctx)
	attach, err := e.client.ContainerAttach(ctx, id, client.ContainerAttachOptions{Stream: true, Stdin: true, Stdout: true, Stderr: true})
	if err != nil {
		return executor.Result{}, fmt.Errorf("attach to container: %w", err)
	}
	copyc := make(chan error, 1)
	go func() {
		_, err := stdcopy.StdCopy(out, out, attach.Reader)
		copyc <- err
	}()
	copied := false
	defer func() {
		attach.Close()
		if !copied {
			<-copyc
		}
	}()
	// Wait from before the start, so that no exit can be missed.
	waitCtx, stopWait := context.WithCancel(bg)
	defer stopWait()
	wait := e.client.ContainerWait(waitCtx, id, client.ContainerWaitOptions{Condition: container.WaitConditionNextExit})
	if _, err := e.client.ContainerStart(ctx, id, client.ContainerStartOptions{}); err != nil {
		return executor.Result{}, fmt.Errorf("start container: %w", err)
	}
	if _, err := io.WriteString(attach.Conn, input); err == nil {
		attach.CloseWrite()
	}
	var timer <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		timer = t.C
	}
	var (
		res    executor.Result
		runErr error
		exit   container.WaitResponse
	)
	select {
	case exit = <-wait.Result:
	case err := <-wait.Error:
		return res, fmt.Errorf("wait for container: %w", err)
	case <-timer:
		res.TimedOut = true
		exit, runErr = e.stop(bg, id, wait)
	case <-ctx.Done():
		exit, runErr = e.stop(bg, id, wait)
		if runErr == nil {
			runErr = ctx.Err()
		}
	}
	if exit.Error != nil && exit.Error.Message != "" && runErr == nil {
		runErr = fmt.Errorf("wait for container: %s", exit.Error.Message)
	}
	res.ExitCode = int(exit.StatusCode)
	// The output ends when the container has exited; give the stream a
	// moment to deliver its last bytes.
	drain := time.NewTimer(DefaultDrainTimeout)
	defer drain.Stop()
	select {
	case err := <-copyc:
		copied = true
		if err != nil && runErr == nil && ctx.Err() == nil {
			runErr = fmt.Errorf("read output: %w", err)
		}
	case <-drain.C:
	}
	return res, runErr
}

// stop stops the running container id, SIGTERM first, and waits for its
// exit.
func (e *Executor) stop(ctx context.Context, id string, wait client.ContainerWaitResult) (container.WaitResponse, error) {
	grace := int((e.cfg.KillGrace + time.Second - 1) / time.Second) // the API counts whole seconds
	if _, err := e.client.ContainerStop(ctx, id, client.ContainerStopOptions{Timeout: &grace}); err != nil {
		// Stopping failed: make sure it dies.
		e.client.ContainerKill(ctx, id, client.ContainerKillOptions{Signal: "KILL"})
	}
	select {
	case exit := <-wait.Result:
		return exit, nil
	case err := <-wait.Error:
		return container.WaitResponse{StatusCode: 137}, fmt.Errorf("wait for stopped container: %w", err)
	}
}

// remove removes container id and its anonymous volumes, whatever state it
// is in.
func (e *Executor) remove(ctx context.Context, id string) error {
	_, err := e.client.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("remove container %.12s: %w", id, err)
	}
	return nil
}

// Cleanup removes the session's services, network and scripts. It is safe
// to call twice.
func (s *session) Cleanup(ctx context.Context) error {
	s.mu.Lock()
	services, network := s.services, s.network
	s.services, s.network = nil, ""
	s.mu.Unlock()
	var errs []error
	for _, id := range services {
		errs = append(errs, s.ex.remove(ctx, id))
	}
	if network != "" {
		if err := s.ex.removeNetwork(ctx, network, nil); err != nil {
			errs = append(errs, fmt.Errorf("remove network %s: %w", network, err))
		}
	}
	errs = append(errs, s.scripts.Remove())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("clean up docker session: %w", err)
	}
	return nil
}

// withLabel returns a copy of labels with name set to value.
func withLabel(labels map[string]string, name, value string) map[string]string {
	out := maps.Clone(labels)
	out[name] = value
	return out
}
