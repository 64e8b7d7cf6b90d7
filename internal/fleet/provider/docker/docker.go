// Package docker is the provider whose instances are containers, each
// running `hangar agent`, through the Docker Engine API (Engine 20.10, API
// 1.41, and later).
//
// An instance's container runs the image of the class (Config.Image),
// which must hold the hangar binary on its PATH (BuildAgentImage makes
// one from a base image and a binary). It is created with
//
//   - the entrypoint `hangar agent`, the agent's flags on its command line
//     and its registration token in HANGAR_AGENT_TOKEN;
//   - the labels hangar.fleet.owner, hangar.fleet.class and
//     hangar.fleet.instance (the instance's name, which is also the
//     container's name and the agent's), by which List finds it;
//   - host networking by default, so that an agent reaches a server that
//     listens on the host's loopback;
//   - the restart policy "no": an instance that dies stays dead, and the
//     fleet replaces it;
//   - Docker's init as PID 1, which passes SIGTERM on to the agent and
//     reaps what its jobs leave;
//   - the agent's work dir at WorkDir, on a size-limited tmpfs when
//     Config.WorkDirTmpfs is set;
//   - the CPU and memory limits of Config, which bound the agent and the
//     jobs it runs together (the instance's size).
//
// The image is never pulled: it must be on the engine's host.
//
// The container's ID is the instance's ID. Delete stops the container
// (SIGTERM, SIGKILL after the grace) and removes it. Interruptions follows
// the engine's event stream and reports the owned containers that die
// without Delete having been asked by this provider value.
package docker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"

	"github.com/hangar-ci/hangar/internal/fleet/provider"
)

// Defaults for Config.
const (
	// DefaultGrace is how long a deleted instance's agent gets after
	// SIGTERM.
	DefaultGrace = 30 * time.Second
	// DefaultNetwork is the containers' network mode.
	DefaultNetwork = "host"
)

// WorkDir is the agent's work dir in an instance's container.
const WorkDir = "/var/lib/hangar/work"

// createdLabel holds an instance's creation time (RFC 3339, to the
// nanosecond): the engine's own keeps whole seconds only in lists.
const createdLabel = "hangar.fleet.created_at"

// createTimeout bounds the engine calls that create and start one
// container. They do not follow the caller's context: a container the
// engine made must be known, so that it is started or removed.
const createTimeout = time.Minute

// Config configures the Docker provider. The fields with a setting name
// are read from a class's provider_config by ParseSettings.
type Config struct {
	// Image (image, required) is the image of the instances; it must be on
	// the engine's host and hold hangar on its PATH.
	Image string
	// Grace (grace) is how long a deleted instance's agent gets after
	// SIGTERM before it is killed, rounded up to whole seconds; the agent
	// is told to hand back the attempts it still runs after three quarters
	// of it. Default DefaultGrace.
	Grace time.Duration
	// WorkDirTmpfs (work_dir_tmpfs, a size such as "64m") mounts a tmpfs
	// of that size at WorkDir, so that an instance's jobs cannot take more
	// disk; 0 leaves the work dir in the container's file system.
	WorkDirTmpfs int64
	// CPUs (cpus) limits the container's CPU time, in CPUs (1.5 is one
	// and a half); 0 means no limit.
	CPUs float64
	// Memory (memory, a size such as "2g") limits the container's memory;
	// 0 means no limit. A container the kernel kills for want of it is
	// reported by Interruptions as out of memory.
	Memory int64
	// Network (network) is the containers' network mode or network name.
	// Default DefaultNetwork: the host's.
	Network string
	// Host (host) is the engine's address, as DOCKER_HOST takes it; empty
	// means DOCKER_HOST or the local socket.
	Host string
	// AgentArgs (agent_args) are more `hangar agent` arguments; the ones
	// the provider sets (--server, --name, --labels...) are not allowed.
	AgentArgs []string

	// Client, when not nil, is the engine client to use instead of one
	// for Host; Close leaves it open.
	Client *client.Client
	// Now is the clock (default time.Now); Rand the source of instance
	// names (default crypto/rand).
	Now    func() time.Time
	Rand   io.Reader
	Logger *slog.Logger
}

// ParseSettings reads a class's provider_config.
func ParseSettings(settings map[string]any) (Config, error) {
	s := provider.NewSettings(settings)
	cfg := Config{
		Image:        s.RequiredString("image"),
		Grace:        s.Duration("grace", 0),
		WorkDirTmpfs: s.Bytes("work_dir_tmpfs", 0),
		CPUs:         s.Float("cpus", 0),
		Memory:       s.Bytes("memory", 0),
		Network:      s.String("network", ""),
		Host:         s.String("host", ""),
		AgentArgs:    s.Strings("agent_args"),
	}
	return cfg, s.Err()
}

// Validate reports the first bad field of c.
func (c *Config) Validate() error {
	switch {
	case c.Image == "":
		return errors.New("provider_config.image: required")
	case c.Grace < 0:
		return fmt.Errorf("provider_config.grace: %v is negative", c.Grace)
	case c.WorkDirTmpfs < 0:
		return fmt.Errorf("provider_config.work_dir_tmpfs: %d is negative", c.WorkDirTmpfs)
	case c.CPUs < 0:
		return fmt.Errorf("provider_config.cpus: %v is negative", c.CPUs)
	case c.Memory < 0:
		return fmt.Errorf("provider_config.memory: %d is negative", c.Memory)
	}
	return provider.CheckAgentArgs(c.AgentArgs)
}

// Provider runs instances as containers. It is safe for concurrent use.
type Provider struct {
	cfg       Config
	client    *client.Client
	ownClient bool
	log       *slog.Logger

	mu       sync.Mutex
	deleting map[string]time.Time // container IDs Delete was asked for, and when
}

var _ provider.Provider = (*Provider)(nil)

// New returns a Docker provider for cfg, with defaults filled in. It does
// not contact the engine.
func New(cfg Config) (*Provider, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Grace == 0 {
		cfg.Grace = DefaultGrace
	}
	if cfg.Network == "" {
		cfg.Network = DefaultNetwork
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	p := &Provider{cfg: cfg, client: cfg.Client, log: cfg.Logger, deleting: map[string]time.Time{}}
	if p.client == nil {
		opts := []client.Opt{client.FromEnv}
		if cfg.Host != "" {
			opts = append(opts, client.WithHost(cfg.Host))
		}
		c, err := client.New(opts...)
		if err != nil {
			return nil, fmt.Errorf("provider_config.host: docker client: %w", err)
		}
		p.client, p.ownClient = c, true
	}
	return p, nil
}

// Close releases the provider's connections to the engine.
func (p *Provider) Close() error {
	if p.ownClient {
		return p.client.Close()
	}
	return nil
}

// graceSeconds is the grace in whole seconds, rounded up, as the engine
// takes it.
func (p *Provider) graceSeconds() int {
	return int(math.Ceil(p.cfg.Grace.Seconds()))
}

// Create creates and starts n containers; see the package documentation.
func (p *Provider) Create(ctx context.Context, spec provider.CreateSpec, n int) ([]provider.Instance, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if n < 0 {
		return nil, fmt.Errorf("create %d instances: want 0 or more", n)
	}
	if n == 0 {
		return nil, nil
	}
	if _, err := p.client.ImageInspect(ctx, p.cfg.Image); err != nil {
		if cerrdefs.IsNotFound(err) {
			return nil, fmt.Errorf("create instances of %s: image %s is not on the engine's host (it is never pulled; build it, e.g. with scripts/agent-image)", spec.Class, p.cfg.Image)
		}
		return nil, fmt.Errorf("create instances of %s: inspect image %s: %w", spec.Class, p.cfg.Image, err)
	}
	var out []provider.Instance
	for range n {
		if err := ctx.Err(); err != nil {
			return out, fmt.Errorf("create instance of %s: %w", spec.Class, err)
		}
		in, err := p.create(ctx, &spec)
		if err != nil {
			return out, fmt.Errorf("create instance of %s: %w", spec.Class, err)
		}
		out = append(out, in)
	}
	return out, nil
}

// create creates and starts one container, or leaves none.
func (p *Provider) create(ctx context.Context, spec *provider.CreateSpec) (provider.Instance, error) {
	b := make([]byte, 6)
	if _, err := io.ReadFull(p.cfg.Rand, b); err != nil {
		return provider.Instance{}, fmt.Errorf("instance name: %w", err)
	}
	name := provider.InstanceName(spec.Owner, spec.Class, hex.EncodeToString(b))
	created := p.cfg.Now()
	grace := p.graceSeconds()
	init := true
	cfg := &container.Config{
		Image:      p.cfg.Image,
		Entrypoint: []string{"hangar"},
		Cmd:        append(append([]string{"agent"}, spec.AgentArgs(name, WorkDir, p.cfg.Grace)...), p.cfg.AgentArgs...),
		Env:        []string{provider.TokenEnv + "=" + spec.RegistrationToken},
		WorkingDir: "/",
		Labels: map[string]string{
			provider.OwnerLabel: spec.Owner, provider.ClassLabel: spec.Class, provider.InstanceLabel: name,
			createdLabel: created.UTC().Format(time.RFC3339Nano),
		},
		StopTimeout: &grace,
	}
	host := &container.HostConfig{
		NetworkMode:   container.NetworkMode(p.cfg.Network),
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyDisabled},
		Init:          &init,
		Resources:     container.Resources{NanoCPUs: int64(p.cfg.CPUs * 1e9), Memory: p.cfg.Memory},
	}
	if p.cfg.WorkDirTmpfs > 0 {
		host.Mounts = []mount.Mount{{Type: mount.TypeTmpfs, Target: WorkDir,
			TmpfsOptions: &mount.TmpfsOptions{SizeBytes: p.cfg.WorkDirTmpfs}}}
	}
	bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), createTimeout)
	defer cancel()
	res, err := p.client.ContainerCreate(bg, client.ContainerCreateOptions{Name: name, Config: cfg, HostConfig: host})
	if err != nil {
		return provider.Instance{}, fmt.Errorf("create container %s: %w", name, err)
	}
	if _, err := p.client.ContainerStart(bg, res.ID, client.ContainerStartOptions{}); err != nil {
		if _, rerr := p.client.ContainerRemove(bg, res.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); rerr != nil && !cerrdefs.IsNotFound(rerr) {
			p.log.Error("removing a container that did not start", slog.String("container", res.ID), slog.String("error", rerr.Error()))
		}
		return provider.Instance{}, fmt.Errorf("start container %s: %w", name, err)
	}
	p.log.Info("instance started", slog.String("instance", res.ID), slog.String("name", name), slog.String("class", spec.Class))
	return provider.Instance{ID: res.ID, Owner: spec.Owner, Class: spec.Class, Name: name, CreatedAt: created,
		State: provider.StateRunning}, nil
}

// List returns owner's instances of class (every class when it is "").
func (p *Provider) List(ctx context.Context, owner, class string) ([]provider.Instance, error) {
	if owner == "" {
		return nil, errors.New("list instances: owner is empty")
	}
	f := client.Filters{}.Add("label", provider.OwnerLabel+"="+owner)
	if class != "" {
		f = f.Add("label", provider.ClassLabel+"="+class)
	}
	res, err := p.client.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return nil, fmt.Errorf("list instances: %w", err)
	}
	out := make([]provider.Instance, 0, len(res.Items))
	for _, c := range res.Items {
		created, err := time.Parse(time.RFC3339Nano, c.Labels[createdLabel])
		if err != nil {
			created = time.Unix(c.Created, 0)
		}
		out = append(out, provider.Instance{ID: c.ID, Owner: c.Labels[provider.OwnerLabel], Class: c.Labels[provider.ClassLabel],
			Name: c.Labels[provider.InstanceLabel], CreatedAt: created, State: state(c.State)})
	}
	slices.SortFunc(out, func(a, b provider.Instance) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// state maps a container's state to an instance's.
func state(s container.ContainerState) provider.State {
	switch s {
	case container.StateCreated:
		return provider.StatePending
	case container.StateRunning, container.StatePaused, container.StateRestarting:
		return provider.StateRunning
	case container.StateRemoving:
		return provider.StateStopping
	}
	return provider.StateStopped
}

// Delete stops the container id, SIGKILL after the grace, and removes it.
// A container that is not an instance (has no hangar.fleet.instance label)
// is refused.
func (p *Provider) Delete(ctx context.Context, id string) error {
	if id == "" {
		return errors.New("delete instance: the ID is empty")
	}
	res, err := p.client.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if cerrdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete instance %s: %w", id, err)
	}
	c := res.Container
	if c.Config == nil || c.Config.Labels[provider.InstanceLabel] == "" {
		return fmt.Errorf("delete instance %s: the container has no %s label: not a fleet instance", id, provider.InstanceLabel)
	}
	p.markDeleting(c.ID)
	log := p.log.With(slog.String("instance", c.ID), slog.String("name", c.Config.Labels[provider.InstanceLabel]))
	grace := p.graceSeconds()
	if _, err := p.client.ContainerStop(ctx, c.ID, client.ContainerStopOptions{Timeout: &grace}); err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("delete instance %s: stop: %w", id, err)
	}
	_, err = p.client.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
	switch {
	case err == nil, cerrdefs.IsNotFound(err):
	case cerrdefs.IsConflict(err):
		// Another Delete is removing it: wait until it is gone.
		if err := p.waitGone(ctx, c.ID); err != nil {
			return fmt.Errorf("delete instance %s: %w", id, err)
		}
	default:
		return fmt.Errorf("delete instance %s: remove: %w", id, err)
	}
	log.Info("instance deleted")
	return nil
}

// waitGone waits until the container id no longer exists.
func (p *Provider) waitGone(ctx context.Context, id string) error {
	for {
		_, err := p.client.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
		if cerrdefs.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// deletingMemory is how long the provider remembers that Delete was
// asked for a container, so that its death, whose event may come late,
// is not taken for an interruption.
const deletingMemory = 10 * time.Minute

func (p *Provider) markDeleting(id string) {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, at := range p.deleting {
		if now.Sub(at) > deletingMemory {
			delete(p.deleting, k)
		}
	}
	p.deleting[id] = now
}

func (p *Provider) isDeleting(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.deleting[id]
	return ok
}
