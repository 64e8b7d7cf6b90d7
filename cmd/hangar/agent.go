package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/hangar-ci/hangar/internal/agent"
	"github.com/hangar-ci/hangar/internal/cache"
)

// version is the version Hangar reports; set at build time with
// -ldflags "-X main.version=…".
var version = "dev"

func runAgent(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var (
		cfg              agent.Config
		labels, logLevel string
		cacheDir         string
		exFlags          executorFlags
	)
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.Server, "server", "", "the server's URL, e.g. http://127.0.0.1:8420 (required)")
	fs.StringVar(&cfg.RegistrationToken, "token", os.Getenv("HANGAR_AGENT_TOKEN"), "the server's agent token (default $HANGAR_AGENT_TOKEN)")
	fs.StringVar(&labels, "labels", "", "comma-separated labels; a job runs here only if all its tags are among them")
	fs.IntVar(&cfg.Concurrency, "concurrency", 1, "how many jobs run at once")
	fs.IntVar(&cfg.MaxJobs, "max-jobs", 0, "take no more than this many jobs, then wait to be stopped (0: no limit; the fleet sets it from max_use_count)")
	fs.StringVar(&cfg.WorkDir, "work-dir", "hangar-work", "directory for the jobs' workspaces")
	fs.StringVar(&cfg.Name, "name", "", "the agent's name in the server's lists (default: the host name)")
	fs.StringVar(&cacheDir, "cache-dir", "", "directory for the jobs' caches (default: WORK_DIR/cache)")
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", agent.DefaultShutdownTimeout, "on SIGTERM, how long running jobs may finish before they are handed back")
	fs.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	exFlags.register(fs)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: hangar agent --server URL --token T [flags]\n\nRun jobs for a Hangar server: claim, run each in a fresh workspace with bash\n(or, with --executor docker, in containers of the job's image), stream the\nlog, report. On SIGTERM or Ctrl-C it stops claiming, lets running\njobs finish (up to --shutdown-timeout), hands back the rest and deregisters.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "hangar agent: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	if err := exFlags.check(fs); err != nil {
		fmt.Fprintf(stderr, "hangar agent: %v\n", err)
		return exitUsage
	}
	if cfg.Server == "" || cfg.RegistrationToken == "" {
		fmt.Fprintf(stderr, "hangar agent: --server and --token are required\n")
		return exitUsage
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		fmt.Fprintf(stderr, "hangar agent: --log-level: %v\n", err)
		return exitUsage
	}
	cfg.Labels = splitList(labels)
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	cfg.Version = version
	ex, err := exFlags.build(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "hangar agent: %v\n", err)
		return exitTrouble
	}
	cfg.Executor = ex
	if c, ok := ex.(io.Closer); ok {
		defer c.Close()
	}
	if cacheDir != "" {
		if cfg.Cache, err = cache.NewDir(cacheDir); err != nil {
			fmt.Fprintf(stderr, "hangar agent: %v\n", err)
			return exitTrouble
		}
	}
	a, err := agent.New(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "hangar agent: %v\n", err)
		return exitUsage
	}
	if err := a.Run(ctx); err != nil {
		fmt.Fprintf(stderr, "hangar agent: %v\n", err)
		return exitTrouble
	}
	return exitOK
}

// splitList splits a comma-separated list, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}
