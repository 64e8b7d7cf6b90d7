// Package local is the provider whose instances are `hangar agent`
// processes on the server's own host.
//
// Each instance is an agent process started in a session of its own
// (setsid), so that it outlives the server: a restarted server finds it
// again through List. What the provider knows of an instance is in its
// state directory, not in memory:
//
//	STATE_DIR/instances/ID.json      the instance's record (see record)
//	STATE_DIR/instances/ID/agent.log  the agent's stdout and stderr
//	STATE_DIR/instances/ID/work/      the agent's work dir
//
// A record names the process by its pid and its start time (from
// /proc/PID/stat) and the boot it was started in, so that a pid the kernel
// has reused is never taken for the agent. The record is written before
// the process starts and completed after, so that no process is ever
// started without one; should the server die in between, the provider
// finds the process by its unique --work-dir argument.
//
// Delete sends SIGTERM to the agent's process group, waits up to the
// grace for it to exit (the agent stops claiming, finishes or hands back
// its attempts and deregisters), then kills with SIGKILL whatever is left
// in the instance's session (the agent, and what its jobs started), and
// removes the instance's directory and, last, its record.
//
// The agents get a small environment of their own (PATH, HOME, the locale,
// TMPDIR, DOCKER_*), not the server's, which may hold secrets; their
// registration token is in HANGAR_AGENT_TOKEN.
package local

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hangar-ci/hangar/internal/fleet/provider"
)

// Defaults for Config.
const (
	// DefaultGrace is how long a deleted instance's agent gets after
	// SIGTERM.
	DefaultGrace = 30 * time.Second
	// DefaultPollInterval is how often Interruptions looks at the
	// instances' processes.
	DefaultPollInterval = time.Second
	// killWait bounds how long Delete waits for the processes it killed
	// with SIGKILL to be gone.
	killWait = 10 * time.Second
)

// Config configures the local provider. The fields with a setting name
// are read from a class's provider_config by ParseSettings.
type Config struct {
	// StateDir (state_dir, required) holds the instances' records, logs
	// and work dirs. Providers that share it (a server and the same server
	// restarted) share the instances.
	StateDir string
	// Binary (binary) is the hangar binary the agents run. Default: the
	// server's own executable.
	Binary string
	// Grace (grace) is how long a deleted instance's agent gets after
	// SIGTERM before it is killed; the agent is told to hand back the
	// attempts it still runs after three quarters of it. Default
	// DefaultGrace.
	Grace time.Duration
	// AgentArgs (agent_args) are more `hangar agent` arguments, such as
	// ["--executor", "docker"]; the ones the provider sets (--server,
	// --name, --labels...) are not allowed.
	AgentArgs []string

	// PollInterval is how often Interruptions looks at the processes.
	// Default DefaultPollInterval.
	PollInterval time.Duration
	// Now is the clock (default time.Now); Rand the source of instance IDs
	// (default crypto/rand).
	Now    func() time.Time
	Rand   io.Reader
	Logger *slog.Logger
}

// ParseSettings reads a class's provider_config.
func ParseSettings(settings map[string]any) (Config, error) {
	s := provider.NewSettings(settings)
	cfg := Config{
		StateDir:  s.RequiredString("state_dir"),
		Binary:    s.String("binary", ""),
		Grace:     s.Duration("grace", 0),
		AgentArgs: s.Strings("agent_args"),
	}
	// A size limit on the work dir needs a mount the local provider
	// cannot make; the setting is accepted and has no effect.
	s.Bytes("work_dir_size", 0)
	return cfg, s.Err()
}

// Validate reports the first bad field of c.
func (c *Config) Validate() error {
	switch {
	case c.StateDir == "":
		return errors.New("provider_config.state_dir: required")
	case c.Grace < 0:
		return fmt.Errorf("provider_config.grace: %v is negative", c.Grace)
	case c.PollInterval < 0:
		return fmt.Errorf("local provider: PollInterval %v is negative", c.PollInterval)
	}
	if c.Binary != "" {
		fi, err := os.Stat(c.Binary)
		switch {
		case err != nil:
			return fmt.Errorf("provider_config.binary: %w", err)
		case !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0:
			return fmt.Errorf("provider_config.binary: %s is not an executable file", c.Binary)
		}
	}
	return provider.CheckAgentArgs(c.AgentArgs)
}

// Provider runs instances as local processes. It is safe for concurrent
// use.
type Provider struct {
	cfg Config
	dir string // STATE_DIR/instances
	log *slog.Logger

	// recMu orders the changes of existing records made by this value.
	recMu sync.Mutex

	mu       sync.Mutex
	creating map[string]bool   // IDs whose process this value is starting
	exits    map[string]string // how processes this value started ended, by ID
}

var _ provider.Provider = (*Provider)(nil)

// New returns a local provider for cfg, with defaults filled in. It does
// not touch the state directory; Create makes it.
func New(cfg Config) (*Provider, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var err error
	if cfg.StateDir, err = filepath.Abs(cfg.StateDir); err != nil {
		return nil, fmt.Errorf("provider_config.state_dir: %w", err)
	}
	if cfg.Binary == "" {
		if cfg.Binary, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("provider_config.binary: not set, and the server's executable is unknown: %w", err)
		}
	}
	if cfg.Binary, err = filepath.Abs(cfg.Binary); err != nil {
		return nil, fmt.Errorf("provider_config.binary: %w", err)
	}
	if cfg.Grace == 0 {
		cfg.Grace = DefaultGrace
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = DefaultPollInterval
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
	return &Provider{cfg: cfg, dir: filepath.Join(cfg.StateDir, "instances"), log: cfg.Logger,
		creating: map[string]bool{}, exits: map[string]string{}}, nil
}

// record is what the state directory keeps of an instance, in ID.json.
type record struct {
	ID    string `json:"id"`
	Owner string `json:"owner"`
	Class string `json:"class"`
	Name  string `json:"name"`
	// PID is the agent's process, 0 until it has started; StartTime is
	// its start time in clock ticks after the boot BootID.
	PID       int       `json:"pid"`
	StartTime uint64    `json:"start_time"`
	BootID    string    `json:"boot_id"`
	CreatedAt time.Time `json:"created_at"`
	WorkDir   string    `json:"work_dir"`
	Log       string    `json:"log"`
	// Deleting is set once Delete has been asked, so that the agent's
	// end is not taken for an interruption, by this server or another.
	Deleting bool `json:"deleting,omitempty"`
}

func (p *Provider) recordPath(id string) string  { return filepath.Join(p.dir, id+".json") }
func (p *Provider) instanceDir(id string) string { return filepath.Join(p.dir, id) }

// workDirArg is the agent's --work-dir argument, by which findAgent knows
// it.
func workDirArg(r *record) string { return "--work-dir=" + r.WorkDir }

// validID reports whether id can be an instance's ID (and so cannot
// name a path outside the state directory).
func validID(id string) bool {
	if id == "" {
		return false
	}
	for _, r := range id {
		if (r < '0' || r > '9') && (r < 'a' || r > 'f') {
			return false
		}
	}
	return true
}

func (p *Provider) newID() (string, error) {
	b := make([]byte, 6)
	if _, err := io.ReadFull(p.cfg.Rand, b); err != nil {
		return "", fmt.Errorf("instance ID: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// write writes r atomically: a reader sees the old record or the new one.
func (p *Provider) write(r *record) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(p.dir, ".record-*")
	if err != nil {
		return fmt.Errorf("write instance record: %w", err)
	}
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), p.recordPath(r.ID))
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("write instance record %s: %w", r.ID, err)
	}
	return nil
}

// update changes the record of id with change, reading it afresh, so that
// a change made meanwhile (by a List completing the record, by a Delete
// marking it) is kept.
func (p *Provider) update(id string, change func(*record)) error {
	p.recMu.Lock()
	defer p.recMu.Unlock()
	r, err := p.read(id)
	if err != nil {
		return err
	}
	change(r)
	return p.write(r)
}

// read reads the record of id; an error satisfying errors.Is(err,
// fs.ErrNotExist) means there is none.
func (p *Provider) read(id string) (*record, error) {
	b, err := os.ReadFile(p.recordPath(id))
	if err != nil {
		return nil, err
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("instance record %s: %w", id, err)
	}
	if r.ID != id {
		return nil, fmt.Errorf("instance record %s: holds ID %q", id, r.ID)
	}
	return &r, nil
}

// records reads every record; a missing state directory holds none.
func (p *Provider) records() ([]*record, error) {
	entries, err := os.ReadDir(p.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list instances: %w", err)
	}
	var out []*record
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || !validID(id) {
			continue
		}
		r, err := p.read(id)
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted meanwhile
		}
		if err != nil {
			p.log.Warn("skipping an unreadable instance record", slog.String("error", err.Error()))
			continue
		}
		out = append(out, r)
	}
	return out, nil
}

// alive reports whether r's agent process runs. A record without a pid
// (its server died while starting it) gets it from the process list when
// the process is there.
func (p *Provider) alive(r *record) bool {
	if r.PID == 0 {
		pid, start, ok := findAgent(workDirArg(r))
		if !ok {
			return false
		}
		r.PID, r.StartTime, r.BootID = pid, start, bootID()
		return true
	}
	if r.BootID != bootID() {
		return false
	}
	st, err := readStat(r.PID)
	return err == nil && st.start == r.StartTime && !st.dead()
}

// Create starts n agent processes; see the package documentation.
func (p *Provider) Create(ctx context.Context, spec provider.CreateSpec, n int) ([]provider.Instance, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if n < 0 {
		return nil, fmt.Errorf("create %d instances: want 0 or more", n)
	}
	if n > 0 {
		if err := os.MkdirAll(p.dir, 0o700); err != nil {
			return nil, fmt.Errorf("create instances: state dir: %w", err)
		}
	}
	var out []provider.Instance
	for range n {
		if err := ctx.Err(); err != nil {
			return out, fmt.Errorf("create instance of %s: %w", spec.Class, err)
		}
		in, err := p.create(&spec)
		if err != nil {
			return out, fmt.Errorf("create instance of %s: %w", spec.Class, err)
		}
		out = append(out, in)
	}
	return out, nil
}

// create starts one instance, or leaves nothing of it behind.
func (p *Provider) create(spec *provider.CreateSpec) (_ provider.Instance, err error) {
	id, err := p.newID()
	if err != nil {
		return provider.Instance{}, err
	}
	dir := p.instanceDir(id)
	r := &record{ID: id, Owner: spec.Owner, Class: spec.Class, Name: provider.InstanceName(spec.Owner, spec.Class, id),
		CreatedAt: p.cfg.Now(), WorkDir: filepath.Join(dir, "work"), Log: filepath.Join(dir, "agent.log")}
	p.mu.Lock()
	p.creating[id] = true
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.creating, id)
		p.mu.Unlock()
	}()
	var cmd *exec.Cmd
	defer func() {
		if err == nil {
			return
		}
		if cmd != nil && cmd.Process != nil {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			cmd.Wait()
		}
		os.RemoveAll(dir)
		os.Remove(p.recordPath(id))
	}()
	if err := os.MkdirAll(r.WorkDir, 0o755); err != nil {
		return provider.Instance{}, fmt.Errorf("work dir: %w", err)
	}
	// The record first: no process without one.
	if err := p.write(r); err != nil {
		return provider.Instance{}, err
	}
	logFile, err := os.OpenFile(r.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return provider.Instance{}, fmt.Errorf("agent log: %w", err)
	}
	defer logFile.Close()
	args := append([]string{"agent"}, spec.AgentArgs(r.Name, r.WorkDir, p.cfg.Grace)...)
	cmd = exec.Command(p.cfg.Binary, append(args, p.cfg.AgentArgs...)...)
	cmd.Dir = dir
	cmd.Env = agentEnv(spec.RegistrationToken)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		cmd = nil
		return provider.Instance{}, fmt.Errorf("start agent: %w", err)
	}
	st, err := readStat(cmd.Process.Pid)
	if err != nil {
		return provider.Instance{}, fmt.Errorf("agent process %d: %w", cmd.Process.Pid, err)
	}
	r.PID, r.StartTime, r.BootID = cmd.Process.Pid, st.start, bootID()
	if err := p.write(r); err != nil {
		return provider.Instance{}, err
	}
	go p.reap(id, cmd)
	p.log.Info("instance started", slog.String("instance", id), slog.String("name", r.Name),
		slog.String("class", r.Class), slog.Int("pid", r.PID))
	return p.instance(r, provider.StateRunning), nil
}

// reap waits for a process this value started, so that it leaves no
// zombie, and remembers how it ended.
func (p *Provider) reap(id string, cmd *exec.Cmd) {
	how := "the agent process exited with code 0"
	if err := cmd.Wait(); err != nil {
		how = "the agent process ended: " + err.Error()
	}
	p.mu.Lock()
	p.exits[id] = how
	p.mu.Unlock()
}

// agentEnv is the agents' environment: the server's variables an agent
// needs, and the token.
func agentEnv(token string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case slices.Contains([]string{"PATH", "HOME", "USER", "LOGNAME", "LANG", "TZ", "TMPDIR"}, name),
			strings.HasPrefix(name, "LC_"), strings.HasPrefix(name, "DOCKER_"):
			env = append(env, kv)
		}
	}
	return append(env, provider.TokenEnv+"="+token)
}

func (p *Provider) instance(r *record, s provider.State) provider.Instance {
	return provider.Instance{ID: r.ID, Owner: r.Owner, Class: r.Class, Name: r.Name, CreatedAt: r.CreatedAt, State: s}
}

// state returns the state of r's instance. A record of a process found by
// its arguments is completed.
func (p *Provider) state(r *record) provider.State {
	p.mu.Lock()
	creating := p.creating[r.ID]
	p.mu.Unlock()
	if creating {
		return provider.StatePending
	}
	adopt := r.PID == 0
	alive := p.alive(r)
	switch {
	case alive && r.Deleting:
		return provider.StateStopping
	case alive:
		if adopt {
			err := p.update(r.ID, func(cur *record) {
				if cur.PID == 0 {
					cur.PID, cur.StartTime, cur.BootID = r.PID, r.StartTime, r.BootID
				}
			})
			if err != nil {
				p.log.Warn("completing an instance record", slog.String("instance", r.ID), slog.String("error", err.Error()))
			}
		}
		return provider.StateRunning
	}
	return provider.StateStopped
}

// List returns owner's instances of class (every class when it is "").
func (p *Provider) List(_ context.Context, owner, class string) ([]provider.Instance, error) {
	if owner == "" {
		return nil, errors.New("list instances: owner is empty")
	}
	rs, err := p.records()
	if err != nil {
		return nil, err
	}
	out := []provider.Instance{}
	for _, r := range rs {
		if r.Owner != owner || class != "" && r.Class != class {
			continue
		}
		out = append(out, p.instance(r, p.state(r)))
	}
	slices.SortFunc(out, func(a, b provider.Instance) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// Delete stops the instance id and removes it; see the package
// documentation. If ctx ends first, the instance is left marked for
// deletion, and a later Delete finishes the job.
func (p *Provider) Delete(ctx context.Context, id string) error {
	if !validID(id) {
		return fmt.Errorf("delete instance %q: not an ID of the local provider", id)
	}
	r, err := p.read(id)
	if errors.Is(err, fs.ErrNotExist) {
		// Gone; remove what a Delete that was interrupted may have left.
		if err := os.RemoveAll(p.instanceDir(id)); err != nil {
			return fmt.Errorf("delete instance %s: %w", id, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete instance %s: %w", id, err)
	}
	log := p.log.With(slog.String("instance", id), slog.String("name", r.Name))
	if !r.Deleting {
		r.Deleting = true
		err := p.update(id, func(cur *record) { cur.Deleting = true })
		if errors.Is(err, fs.ErrNotExist) {
			return nil // another Delete was quicker
		}
		if err != nil {
			return fmt.Errorf("delete instance %s: %w", id, err)
		}
	}
	if p.alive(r) {
		if err := p.stop(ctx, r, log); err != nil {
			return fmt.Errorf("delete instance %s: %w", id, err)
		}
	} else if r.PID != 0 && r.BootID == bootID() {
		// The agent is gone; what its jobs started may not be.
		if err := p.killRest(ctx, r); err != nil {
			return fmt.Errorf("delete instance %s: %w", id, err)
		}
	}
	if err := os.RemoveAll(p.instanceDir(id)); err != nil {
		return fmt.Errorf("delete instance %s: %w", id, err)
	}
	if err := os.Remove(p.recordPath(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete instance %s: %w", id, err)
	}
	p.mu.Lock()
	delete(p.exits, id)
	p.mu.Unlock()
	log.Info("instance deleted")
	return nil
}

// stop sends SIGTERM to r's agent, waits up to the grace for it to exit,
// then kills what is left of its session.
func (p *Provider) stop(ctx context.Context, r *record, log *slog.Logger) error {
	if err := syscall.Kill(-r.PID, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("SIGTERM to agent %d: %w", r.PID, err)
	}
	deadline := time.NewTimer(p.cfg.Grace)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for p.alive(r) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			log.Warn("the agent did not stop within the grace; killing it", slog.Duration("grace", p.cfg.Grace))
			return p.killRest(ctx, r)
		case <-tick.C:
		}
	}
	return p.killRest(ctx, r)
}

// killRest kills every process left in r's session, and waits until they
// are gone.
func (p *Provider) killRest(ctx context.Context, r *record) error {
	if st, err := readStat(r.PID); err == nil && st.start != r.StartTime {
		// The pid is another process's: the kernel reuses no pid that
		// still names a session, so nothing of r's session is left.
		return nil
	}
	deadline := time.Now().Add(killWait)
	for killSession(r.PID, r.StartTime) > 0 {
		if time.Now().After(deadline) {
			return fmt.Errorf("processes of session %d still there %v after SIGKILL", r.PID, killWait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// Interruptions reports owner's instances whose agent process ended
// without Delete: it looks every PollInterval. An instance that had
// already ended when the stream starts is reported too.
func (p *Provider) Interruptions(ctx context.Context, owner string) <-chan provider.Interruption {
	ch := make(chan provider.Interruption)
	go func() {
		defer close(ch)
		reported := map[string]bool{}
		t := time.NewTicker(p.cfg.PollInterval)
		defer t.Stop()
		for {
			for _, n := range p.ended(owner, reported) {
				select {
				case ch <- n:
				case <-ctx.Done():
					return
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return ch
}

// ended returns notices of owner's instances whose process has ended
// without Delete and that are not among reported, and updates reported.
func (p *Provider) ended(owner string, reported map[string]bool) []provider.Interruption {
	rs, err := p.records()
	if err != nil {
		p.log.Warn("looking for interrupted instances", slog.String("error", err.Error()))
		return nil
	}
	var out []provider.Interruption
	present := map[string]bool{}
	for _, r := range rs {
		present[r.ID] = true
		if r.Owner != owner || r.Deleting || r.PID == 0 || reported[r.ID] || p.state(r) != provider.StateStopped {
			continue
		}
		// Read the record again now that the process is known to be
		// gone: a Delete marks it before it stops the process.
		if again, err := p.read(r.ID); err != nil || again.Deleting {
			continue
		}
		reported[r.ID] = true
		p.mu.Lock()
		how, ok := p.exits[r.ID]
		p.mu.Unlock()
		if !ok {
			how = "the agent process ended"
		}
		n := provider.Interruption{ID: r.ID, Owner: r.Owner, Class: r.Class, Name: r.Name,
			Kind: provider.InterruptionGone, Reason: how, At: p.cfg.Now()}
		out = append(out, n)
	}
	for id := range reported {
		if !present[id] {
			delete(reported, id)
		}
	}
	return out
}
