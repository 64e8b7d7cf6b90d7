package main

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/hangar-ci/hangar/internal/executor"
	"github.com/hangar-ci/hangar/internal/executor/docker"
	"github.com/hangar-ci/hangar/internal/executor/shell"
	"github.com/hangar-ci/hangar/internal/fleet/provider"
)

// executorFlags are the flags that choose and configure the executor of
// `hangar agent` and `hangar run`.
type executorFlags struct {
	kind       string
	docker     docker.Config
	pullPolicy string
	allowed    string
	memory     string
}

// register adds the flags to fs.
func (f *executorFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.kind, "executor", "shell", "where jobs run: shell (bash on this host) or docker (a container of the job's image)")
	fs.StringVar(&f.docker.Image, "docker-image", docker.DefaultImage, "with --executor docker: the image of jobs that name none")
	fs.StringVar(&f.pullPolicy, "docker-pull-policy", string(docker.PullIfNotPresent), "with --executor docker: never, if-not-present or always")
	fs.StringVar(&f.allowed, "docker-allowed-pull-policies", "", "with --executor docker: comma-separated pull policies a job's image:pull_policy may ask for (default: only --docker-pull-policy)")
	fs.Float64Var(&f.docker.CPUs, "docker-cpus", 0, "with --executor docker: CPUs each container may use, e.g. 1.5 (default: no limit)")
	fs.StringVar(&f.memory, "docker-memory", "", "with --executor docker: memory each container may use, e.g. 512m or 2g (default: no limit)")
	fs.BoolVar(&f.docker.Privileged, "docker-privileged", false, "with --executor docker: run containers in privileged mode")
}

// check reports --docker-* flags given with an executor that does not use
// them; fs is the parsed flag set the flags were registered in.
func (f *executorFlags) check(fs *flag.FlagSet) error {
	var err error
	fs.Visit(func(fl *flag.Flag) {
		if err == nil && f.kind != "docker" && strings.HasPrefix(fl.Name, "docker-") {
			err = fmt.Errorf("--%s is for --executor docker, and the executor is %s", fl.Name, f.kind)
		}
	})
	return err
}

// build returns the executor the flags describe. A Docker executor is
// checked against its engine first, so a missing engine is reported at
// start, not at the first job.
func (f *executorFlags) build(ctx context.Context) (executor.Executor, error) {
	switch f.kind {
	case "shell":
		return shell.New(shell.Config{})
	case "docker":
	default:
		return nil, fmt.Errorf("--executor %q: want shell or docker", f.kind)
	}
	cfg := f.docker
	cfg.PullPolicy = docker.PullPolicy(f.pullPolicy)
	for _, p := range splitList(f.allowed) {
		cfg.AllowedPullPolicies = append(cfg.AllowedPullPolicies, docker.PullPolicy(p))
	}
	if f.memory != "" {
		n, err := provider.ParseBytes(f.memory)
		if err != nil {
			return nil, fmt.Errorf("--docker-memory: %w", err)
		}
		cfg.Memory = n
	}
	ex, err := docker.New(cfg)
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := ex.Ping(pctx); err != nil {
		ex.Close()
		return nil, err
	}
	return ex, nil
}
