package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hangar-ci/hangar/internal/fleet"
	"github.com/hangar-ci/hangar/internal/fleet/autoscaler"
	"github.com/hangar-ci/hangar/internal/fleet/provider"
	"github.com/hangar-ci/hangar/internal/fleet/provider/builtin"
	"github.com/hangar-ci/hangar/internal/scheduler"
	"github.com/hangar-ci/hangar/internal/server"
	"github.com/hangar-ci/hangar/internal/source"
	"github.com/hangar-ci/hangar/internal/store"
	"github.com/hangar-ci/hangar/internal/store/postgres"
	"github.com/hangar-ci/hangar/internal/store/sqlite"
	"github.com/prometheus/client_golang/prometheus"
)

// serverOptions are the flags of hangar server.
type serverOptions struct {
	listen, data          string
	agentToken, apiToken  string
	leaseTimeout          time.Duration
	lostRetries           int
	maxArtifactBytes      int64
	artifactExpiry        time.Duration
	logLevel              string
	configPath, advertise string
	fleetInterval         time.Duration
	database              string
	queueAlarm            time.Duration
}

func runServer(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var o serverOptions
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.listen, "listen", "127.0.0.1:8420", "address to serve the API on")
	fs.StringVar(&o.data, "data", "hangar-data", "directory for the SQLite database, source and artifacts archives, and tokens; servers sharing a PostgreSQL database share it too")
	fs.StringVar(&o.database, "database", os.Getenv("HANGAR_DATABASE"), "PostgreSQL database to keep the state in, postgres://USER:PASSWORD@HOST:PORT/DB, shared by every server of a group (default: $HANGAR_DATABASE, else SQLite in DATA/hangar.db)")
	fs.StringVar(&o.agentToken, "agent-token", "", "token agents register with (default: generated on first start and kept in DATA/tokens.json)")
	fs.StringVar(&o.apiToken, "api-token", "", "token for the API and the CLI (default: generated on first start and kept in DATA/tokens.json)")
	fs.DurationVar(&o.leaseTimeout, "lease-timeout", scheduler.DefaultLeaseTimeout, "how long an attempt lives without a heartbeat before its job is retried")
	fs.IntVar(&o.lostRetries, "lost-retries", scheduler.DefaultLostRetries, "how often a job whose agent was lost runs again before it fails")
	fs.Int64Var(&o.maxArtifactBytes, "max-artifact-bytes", server.DefaultMaxArtifactBytes, "largest artifacts archive a job may upload, in bytes")
	fs.DurationVar(&o.artifactExpiry, "artifact-expiry", server.DefaultArtifactExpiry, "how long artifacts are kept when their job sets no expire_in (negative: for good)")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.DurationVar(&o.queueAlarm, "queue-alarm", server.DefaultQueueAlarm, "a job waiting longer than this makes dispatch degraded on the status page and the UI's banner")
	fs.StringVar(&o.configPath, "config", "", "configuration file with the fleet's runner classes (docs/configuration.md); without it the server provisions nothing")
	fs.DurationVar(&o.fleetInterval, "fleet-interval", autoscaler.DefaultTick, "how often the fleet's reconcile loop runs (it also runs when jobs become pending)")
	fs.StringVar(&o.advertise, "advertise-url", "", "the URL the fleet's agents register with (default: http:// and --listen, on 127.0.0.1 when it listens on every address)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: hangar server [flags]\n\nRun the control plane: the API agents and the CLI talk to, backed by SQLite in\nDATA or by the PostgreSQL database --database names. It never runs user code:\nstart agents (hangar agent) to run jobs, or give --config a fleet of runner\nclasses, whose instances it creates, scales and removes itself.\n\nOn PostgreSQL, several servers may share the database (and DATA, on a shared\nvolume, and their tokens) behind a load balancer: any of them serves any\nrequest, and one, elected, runs lease expiry, artifact expiry and the fleet.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "hangar server: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	if o.maxArtifactBytes <= 0 {
		fmt.Fprintf(stderr, "hangar server: --max-artifact-bytes is %d, want more than 0\n", o.maxArtifactBytes)
		return exitUsage
	}
	if o.artifactExpiry == 0 {
		fmt.Fprintf(stderr, "hangar server: --artifact-expiry is 0; give a duration, or a negative one to keep artifacts for good\n")
		return exitUsage
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		fmt.Fprintf(stderr, "hangar server: --log-level: %v\n", err)
		return exitUsage
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	cpc := controlPlaneConfig{
		dataDir: o.data, agentToken: o.agentToken, apiToken: o.apiToken,
		leaseTimeout: o.leaseTimeout, lostRetries: o.lostRetries, logger: logger,
		maxArtifactBytes: o.maxArtifactBytes, artifactExpiry: o.artifactExpiry,
		database: o.database, queueAlarm: o.queueAlarm,
	}
	if o.database != "" && !isPostgresURL(o.database) {
		fmt.Fprintf(stderr, "hangar server: --database must be a PostgreSQL URL, postgres://USER@HOST:PORT/DB (SQLite, the default, needs no flag)\n")
		return exitUsage
	}
	if o.configPath != "" {
		f, err := loadFleet(o.configPath, o.data, o.leaseTimeout, logger)
		if err != nil {
			fmt.Fprintf(stderr, "hangar server: %v\n", err)
			return exitUsage
		}
		f.advertise, f.interval = o.advertise, o.fleetInterval
		if f.advertise == "" {
			f.advertise = advertiseURL(o.listen)
		}
		cpc.fleet = f
	}
	cp, err := openControlPlane(ctx, cpc)
	if err != nil {
		fmt.Fprintf(stderr, "hangar server: %v\n", err)
		return exitTrouble
	}
	defer cp.Close()
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		fmt.Fprintf(stderr, "hangar server: %v\n", err)
		return exitTrouble
	}
	logger.Info("hangar server listening", slog.String("addr", "http://"+ln.Addr().String()),
		slog.String("ui", "http://"+ln.Addr().String()+"/ (sign in with the API token)"),
		slog.String("data", o.data), slog.String("database", cp.where), slog.String("tokens", filepath.Join(o.data, tokensFile)))
	if err := cp.Serve(ctx, ln); err != nil {
		fmt.Fprintf(stderr, "hangar server: %v\n", err)
		return exitTrouble
	}
	return exitOK
}

// controlPlaneConfig is what openControlPlane needs.
type controlPlaneConfig struct {
	dataDir              string
	agentToken, apiToken string
	leaseTimeout         time.Duration
	lostRetries          int
	// maxArtifactBytes caps an artifacts archive and artifactExpiry is how
	// long artifacts without expire_in are kept; zero means the server's
	// defaults.
	maxArtifactBytes int64
	artifactExpiry   time.Duration
	logger           *slog.Logger
	// ephemeral: the data is thrown away after use (hangar run).
	ephemeral bool
	// fleet is the fleet to provision, nil for none.
	fleet *fleetSetup
	// database is a PostgreSQL URL; empty means SQLite in dataDir.
	database string
	// queueAlarm is the server's Config.QueueAlarm (0: its default).
	queueAlarm time.Duration
}

// controlPlane is a server with its store, as `hangar server` runs it and
// `hangar run` embeds it.
type controlPlane struct {
	store store.Store
	// where names the database, for the logs (no password).
	where string
	// pg is the store when it is PostgreSQL, which several servers may
	// share: then the upkeep runs on the elected leader only, and changes
	// are passed on to the other servers through bus.
	pg      *postgres.Store
	bus     *postgres.Bus
	leading prometheus.Gauge
	sched   *scheduler.Scheduler
	handler *server.Server
	tokens  tokens
	log     *slog.Logger
	// fleet, hooks and providers run the fleet, when there is one.
	fleet     *autoscaler.Autoscaler
	hooks     *fleet.Notifier
	providers map[string]provider.Provider
}

// tokens are the server's secrets, kept in DATA/tokens.json.
type tokens struct {
	Agent string `json:"agent_token"`
	API   string `json:"api_token"`
}

const tokensFile = "tokens.json"

func openControlPlane(ctx context.Context, c controlPlaneConfig) (*controlPlane, error) {
	if err := os.MkdirAll(c.dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	tok, err := loadTokens(filepath.Join(c.dataDir, tokensFile), c.agentToken, c.apiToken)
	if err != nil {
		return nil, err
	}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	cp := &controlPlane{tokens: tok, log: c.logger}
	if c.database != "" {
		pg, err := postgres.Open(ctx, c.database)
		if err != nil {
			return nil, err
		}
		cp.store, cp.pg, cp.where = pg, pg, pg.Where()
		cp.bus = pg.NewBus(c.logger)
	} else {
		var opts []sqlite.Option
		if c.ephemeral {
			opts = append(opts, sqlite.Ephemeral())
		}
		path := filepath.Join(c.dataDir, "hangar.db")
		st, err := sqlite.Open(ctx, path, opts...)
		if err != nil {
			return nil, err
		}
		cp.store, cp.where = st, path
	}
	st := cp.store
	blobs, err := source.NewBlobs(filepath.Join(c.dataDir, "sources"))
	if err != nil {
		st.Close()
		return nil, err
	}
	artifacts, err := source.NewBlobs(filepath.Join(c.dataDir, "artifacts"))
	if err != nil {
		st.Close()
		return nil, err
	}
	lease := c.leaseTimeout
	if lease <= 0 {
		lease = scheduler.DefaultLeaseTimeout
	}
	metrics := server.NewMetrics(st, lease)
	cp.leading = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "hangar_leader",
		Help: "1 while this server is the leader of the servers sharing its database: the one that runs lease expiry, artifact expiry and the fleet.",
	})
	if err := metrics.Registerer().Register(cp.leading); err != nil {
		st.Close()
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	scfg := scheduler.Config{LeaseTimeout: lease, LostRetries: c.lostRetries, Logger: c.logger, Observer: metrics}
	if cp.bus != nil {
		scfg.Peers = cp.bus
	}
	sched := scheduler.New(st, scfg)
	cp.sched = sched
	srvcfg := server.Config{Store: st, Scheduler: sched, Blobs: blobs, AgentToken: tok.Agent, APIToken: tok.API,
		Artifacts: artifacts, MaxArtifactBytes: c.maxArtifactBytes, DefaultArtifactExpiry: c.artifactExpiry,
		Logger: c.logger, Metrics: metrics, QueueAlarm: c.queueAlarm}
	if f := c.fleet; f != nil {
		srvcfg.Prices = map[string]float64{}
		for _, cl := range f.config.Classes {
			srvcfg.Prices[cl.Name] = cl.PricePerHour
		}
		logger := c.logger
		cp.hooks = fleet.NewNotifier(fleet.NotifierConfig{Logger: logger, UserAgent: "hangar/" + version})
		as, err := autoscaler.New(autoscaler.Config{Fleet: f.config, Providers: f.providers, Store: st, Scheduler: sched,
			Server: f.advertise, RegistrationToken: tok.Agent, Notifier: cp.hooks, Registerer: metrics.Registerer(), Logger: logger,
			Tick: f.interval})
		if err != nil {
			st.Close()
			return nil, err
		}
		cp.fleet, srvcfg.Fleet, cp.providers = as, as, f.providers
	}
	cp.handler = server.New(srvcfg)
	return cp, nil
}

// Serve serves the API on ln and runs the upkeep (leases, artifacts
// expiry, the fleet) until ctx ends, then shuts down gracefully. On
// PostgreSQL the upkeep runs only while this server is the elected leader,
// and changes are passed on to and heard from the other servers.
func (cp *controlPlane) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{Handler: cp.handler, ReadHeaderTimeout: 10 * time.Second, BaseContext: func(net.Listener) context.Context { return ctx }}
	var upkeep sync.WaitGroup
	if cp.pg != nil {
		upkeep.Go(func() { cp.bus.Run(ctx, cp.deliver, cp.sched.WakeAll) })
		upkeep.Go(func() {
			cp.pg.Lead(ctx, postgres.LeadConfig{Logger: cp.log, OnChange: func(leading bool) {
				cp.leading.Set(map[bool]float64{true: 1}[leading])
			}}, cp.lead)
		})
	} else {
		cp.leading.Set(1)
		upkeep.Go(func() { cp.lead(ctx) })
	}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := hs.Shutdown(sctx)
	upkeep.Wait()
	cp.closeFleet(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		hs.Close()
		err = nil
	}
	return err
}

// lead runs, until ctx ends, the upkeep that must run on one server of
// those sharing the database: lease expiry, artifacts expiry and the
// fleet.
func (cp *controlPlane) lead(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { cp.sched.Run(ctx) })
	wg.Go(func() { cp.handler.Run(ctx) })
	if cp.fleet != nil {
		wg.Go(func() { cp.fleet.Run(ctx) })
	}
	wg.Wait()
}

// deliver wakes what waits here for a change another server made.
func (cp *controlPlane) deliver(c postgres.Change) {
	for _, id := range c.Pipelines {
		cp.sched.Wake(id, false)
	}
	if c.Pending {
		cp.sched.Wake(0, true)
		if cp.fleet != nil {
			cp.fleet.Wake()
		}
	}
}

// closeFleet gives the hooks of removals under way a moment to be
// delivered and closes the providers.
func (cp *controlPlane) closeFleet(ctx context.Context) {
	if cp.fleet == nil {
		return
	}
	hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := cp.hooks.Close(hctx); err != nil {
		cp.log.Warn("fleet hooks cut short at shutdown", slog.String("error", err.Error()))
	}
	closed := map[provider.Provider]bool{}
	for _, p := range cp.providers {
		if c, ok := p.(io.Closer); ok && !closed[p] {
			closed[p] = true
			c.Close()
		}
	}
}

// Close closes the store.
func (cp *controlPlane) Close() error { return cp.store.Close() }

// isPostgresURL reports whether s names a PostgreSQL database.
func isPostgresURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// loadTokens reads the tokens file, fills in what is missing (from the
// flags, else freshly generated) and writes it back.
func loadTokens(path, agent, apiTok string) (tokens, error) {
	var t tokens
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &t); err != nil {
			return t, fmt.Errorf("read %s: %w", path, err)
		}
	case !errors.Is(err, os.ErrNotExist):
		return t, fmt.Errorf("read tokens: %w", err)
	}
	if agent != "" {
		t.Agent = agent
	}
	if apiTok != "" {
		t.API = apiTok
	}
	if t.Agent == "" {
		t.Agent, _ = scheduler.NewToken()
	}
	if t.API == "" {
		t.API, _ = scheduler.NewToken()
	}
	out, _ := json.MarshalIndent(t, "", "  ")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(out, '\n'), 0o600); err != nil {
		return t, fmt.Errorf("write tokens: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return t, fmt.Errorf("write tokens: %w", err)
	}
	return t, nil
}

// fleetSetup is a loaded fleet configuration with its providers.
type fleetSetup struct {
	config    *fleet.Config
	providers map[string]provider.Provider
	advertise string
	interval  time.Duration
}

// loadFleet reads the configuration file at path and makes each class's
// provider. A local provider's state dir defaults to DATA/fleet, shared by
// the classes (each instance's record names its class), so that instances
// of a class no longer configured are found and removed.
func loadFleet(path, dataDir string, lease time.Duration, logger *slog.Logger) (*fleetSetup, error) {
	cfg, err := fleet.LoadFile(path)
	if err != nil {
		return nil, err
	}
	// Agents report every AgentHeartbeatInterval: a class must allow a few
	// of them to be missed before it calls an instance lost.
	if lease <= 0 {
		lease = scheduler.DefaultLeaseTimeout
	}
	beat := scheduler.HeartbeatInterval(lease)
	for i, c := range cfg.Classes {
		if c.HeartbeatTimeout > 0 && c.HeartbeatTimeout < 3*beat {
			return nil, fmt.Errorf("%s: fleet.classes[%d].heartbeat_timeout: %s is less than three of the agents' heartbeats (every %s with --lease-timeout %s)",
				path, i, c.HeartbeatTimeout, beat, lease)
		}
	}
	f := &fleetSetup{config: cfg, providers: map[string]provider.Provider{}}
	shared := map[string]provider.Provider{}
	for i, c := range cfg.Classes {
		settings := maps.Clone(c.ProviderConfig)
		if settings == nil {
			settings = map[string]any{}
		}
		if _, ok := settings["state_dir"]; !ok && c.Provider == "local" {
			abs, err := filepath.Abs(filepath.Join(dataDir, "fleet"))
			if err != nil {
				return nil, err
			}
			settings["state_dir"] = abs
		}
		// Classes with the same provider settings share one provider: a
		// provider watches every instance of the installation, and one
		// that did not delete an instance would take its deletion for an
		// interruption.
		key, err := json.Marshal(struct {
			Kind     string
			Settings map[string]any
		}{c.Provider, settings})
		if err != nil {
			return nil, fmt.Errorf("%s: fleet.classes[%d] (%s): provider_config: %w", path, i, c.Name, err)
		}
		p, ok := shared[string(key)]
		if !ok {
			if p, err = builtin.New(c.Provider, settings, builtin.Options{Logger: logger}); err != nil {
				return nil, fmt.Errorf("%s: fleet.classes[%d] (%s): %w", path, i, c.Name, err)
			}
			shared[string(key)] = p
		}
		f.providers[c.Name] = p
	}
	return f, nil
}

// advertiseURL is the URL agents reach a server listening on listen by.
func advertiseURL(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "http://" + listen
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}
