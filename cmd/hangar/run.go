package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/hangar-ci/hangar/internal/agent"
	"github.com/hangar-ci/hangar/internal/api"
	"github.com/hangar-ci/hangar/internal/cache"
	"github.com/hangar-ci/hangar/internal/source"
)

// runOptions are the flags of hangar run.
type runOptions struct {
	lintOptions
	file, server, token string
	concurrency         int
	secrets             stringList
	keep                bool
	cacheDir            string
	executor            executorFlags
}

func runRun(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var o runOptions
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o.register(fs)
	fs.StringVar(&o.file, "file", ".gitlab-ci.yml", "the pipeline file, relative to DIR")
	fs.StringVar(&o.server, "server", "", "run on this Hangar server instead of an embedded one")
	fs.StringVar(&o.token, "token", os.Getenv("HANGAR_TOKEN"), "the server's API token, with --server (default $HANGAR_TOKEN)")
	fs.IntVar(&o.concurrency, "concurrency", runtime.NumCPU(), "embedded agents, one job each")
	fs.Var(&o.secrets, "secret", "masked pipeline variable KEY=VALUE: shown as [MASKED] in logs (repeatable)")
	fs.BoolVar(&o.keep, "keep", false, "keep the embedded server's data directory and print where it is")
	fs.StringVar(&o.cacheDir, "cache-dir", defaultCacheDir(), "where the embedded agents keep the jobs' caches (cache:) from one run to the next")
	o.executor.register(fs)
	fs.Usage = func() {
		fmt.Fprintf(stderr, `Usage: hangar run [flags] [DIR]

Run the pipeline of DIR (default .) now: plan DIR/.gitlab-ci.yml, start an
embedded server and agents (or use --server), run every job with bash (or,
with --executor docker, in a container of its image) in a fresh copy of DIR's files (tracked and untracked, not ignored), print each
job's log lines prefixed with its name, and end with a summary. The run is
a push of the checked-out branch unless the flags say otherwise.

Exit status: 0 the pipeline succeeded, 1 it failed or was canceled, 2 bad
usage or a pipeline file with errors, 3 trouble (the server cannot be
reached).

Flags:
`)
		fs.PrintDefaults()
	}
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	if err := o.executor.check(fs); err != nil {
		fmt.Fprintf(stderr, "hangar run: %v\n", err)
		return exitUsage
	}
	if o.server != "" && o.executor.kind != "shell" {
		fmt.Fprintf(stderr, "hangar run: --executor chooses how the embedded agents run jobs; with --server the server's agents decide\n")
		return exitUsage
	}
	dir := "."
	switch fs.NArg() {
	case 0:
	case 1:
		dir = fs.Arg(0)
	default:
		fmt.Fprintf(stderr, "hangar run: one directory at most, got %d\n", fs.NArg())
		return exitUsage
	}
	if o.server != "" && o.token == "" {
		fmt.Fprintf(stderr, "hangar run: --server needs --token (or $HANGAR_TOKEN)\n")
		return exitUsage
	}
	if o.concurrency < 1 {
		fmt.Fprintf(stderr, "hangar run: --concurrency must be at least 1\n")
		return exitUsage
	}
	if _, err := os.Stat(filepath.Join(dir, o.file)); err != nil {
		fmt.Fprintf(stderr, "hangar run: %v\n", err)
		return exitUsage
	}
	req, err := o.request(dir)
	if err != nil {
		fmt.Fprintf(stderr, "hangar run: %v\n", err)
		return exitUsage
	}
	project := o.project
	if project == "" {
		abs, _ := filepath.Abs(dir)
		project = filepath.Base(abs)
	}

	server, token := o.server, o.token
	if server == "" {
		emb, err := startEmbedded(ctx, o.concurrency, o.keep, o.cacheDir, &o.executor, stderr)
		if err != nil {
			fmt.Fprintf(stderr, "hangar run: %v\n", err)
			return exitTrouble
		}
		defer emb.stop()
		server, token = emb.url, emb.tokens.API
	}
	c := &cli{client: api.NewClient(server), token: token, stdout: stdout, stderr: stderr}

	var archive bytes.Buffer
	if err := source.Snapshot(ctx, dir, &archive); err != nil {
		fmt.Fprintf(stderr, "hangar run: snapshot %s: %v\n", dir, err)
		return exitTrouble
	}
	var up api.SourceResponse
	if err := c.call(ctx, http.MethodPost, "/sources", archive.Bytes(), &up); err != nil {
		fmt.Fprintf(stderr, "hangar run: upload source: %v\n", err)
		return exitTrouble
	}
	req.Archive = up.Archive
	var p api.Pipeline
	// Not retried: creating a pipeline is not idempotent, and a retry after
	// a lost answer would run it twice.
	_, err = c.client.Do(ctx, http.MethodPost, "/projects/"+url.PathEscape(project)+"/pipelines", c.token, req, &p)
	var se *api.StatusError
	if errors.As(err, &se) && se.Code == http.StatusUnprocessableEntity {
		for _, d := range se.Body.Problems {
			d.File = filepath.Join(dir, d.File)
			fmt.Fprintln(stderr, d.String())
		}
		if len(se.Body.Problems) == 0 {
			fmt.Fprintf(stderr, "hangar run: %s\n", se.Body.Error)
		}
		return exitUsage
	}
	if err != nil {
		fmt.Fprintf(stderr, "hangar run: create pipeline: %v\n", err)
		return exitTrouble
	}
	return c.follow(ctx, p.ID)
}

// request turns the flags into a pipeline request (without its archive).
func (o *runOptions) request(dir string) (api.CreatePipelineRequest, error) {
	head := gitHead(dir)
	if o.branch == "" && o.tag == "" && o.mrIID == 0 {
		o.branch = head.branch
	}
	pctx, err := o.context()
	if err != nil {
		return api.CreatePipelineRequest{}, err
	}
	req := api.CreatePipelineRequest{
		File: o.file, Source: string(pctx.Source), Branch: pctx.Branch, Tag: pctx.Tag, DefaultBranch: pctx.DefaultBranch,
		SHA: head.sha, CommitMessage: head.message, Changed: pctx.Changed,
	}
	if mr := pctx.MergeRequest; mr != nil {
		req.MergeRequest = &api.MergeRequest{IID: mr.IID, SourceBranch: mr.SourceBranch, TargetBranch: mr.TargetBranch}
	}
	for _, v := range pctx.Variables {
		req.Variables = append(req.Variables, api.Variable{Name: v.Name, Value: v.Value})
	}
	for _, kv := range o.secrets {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return req, fmt.Errorf("--secret %q must be KEY=VALUE", kv)
		}
		req.Variables = append(req.Variables, api.Variable{Name: k, Value: v, Masked: true})
	}
	return req, nil
}

// commit is what git says about the checked-out commit.
type commit struct {
	sha, branch, message string
}

// gitHead reads the checked-out commit of the work tree holding dir, with
// one git call; it is empty when dir is not in a work tree with commits
// (or git is missing). branch is empty for a detached HEAD.
func gitHead(dir string) commit {
	out, err := exec.Command("git", "-C", dir, "log", "-1", "--format=%H%x00%D%x00%B").Output()
	if err != nil {
		return commit{}
	}
	parts := strings.SplitN(string(out), "\x00", 3)
	if len(parts) != 3 {
		return commit{}
	}
	c := commit{sha: parts[0], message: strings.TrimSpace(parts[2])}
	// %D lists the refs: "HEAD -> main, origin/main, tag: v1".
	for _, ref := range strings.Split(parts[1], ", ") {
		if b, ok := strings.CutPrefix(ref, "HEAD -> "); ok {
			c.branch = b
		}
	}
	return c
}

// embedded is a server and its agents inside this process.
type embedded struct {
	url    string
	tokens tokens
	stop   func()
}

// startEmbedded starts a control plane on a temporary SQLite file and n
// agents, all talking over a loopback socket.
func startEmbedded(ctx context.Context, n int, keep bool, cacheDir string, exFlags *executorFlags, stderr io.Writer) (*embedded, error) {
	ex, err := exFlags.build(ctx)
	if err != nil {
		return nil, err
	}
	caches, err := cache.NewDir(cacheDir)
	if err != nil {
		return nil, err
	}
	data, err := os.MkdirTemp("", "hangar-run-*")
	if err != nil {
		return nil, err
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cp, err := openControlPlane(ctx, controlPlaneConfig{dataDir: filepath.Join(data, "server"), logger: logger, ephemeral: !keep})
	if err != nil {
		os.RemoveAll(data)
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		cp.Close()
		os.RemoveAll(data)
		return nil, err
	}
	url := "http://" + ln.Addr().String()
	agents := make([]*agent.Agent, n)
	for i := range agents {
		name := fmt.Sprintf("local-%d", i+1)
		agents[i], err = agent.New(agent.Config{
			Server: url, RegistrationToken: cp.tokens.Agent, Name: name, Concurrency: 1,
			WorkDir: filepath.Join(data, "work", name), Executor: ex, Cache: caches,
			Version: version, Logger: logger, ShutdownTimeout: 5 * time.Second,
		})
		if err != nil {
			ln.Close()
			cp.Close()
			os.RemoveAll(data)
			return nil, err
		}
	}
	// The embedded parts outlive ctx a little: on Ctrl-C the pipeline is
	// canceled first, then they stop.
	life, stopAll := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Go(func() { cp.Serve(life, ln) })
	for _, a := range agents {
		wg.Go(func() { a.Run(life) })
	}
	return &embedded{url: url, tokens: cp.tokens, stop: func() {
		stopAll()
		wg.Wait()
		cp.Close()
		if c, ok := ex.(io.Closer); ok {
			c.Close()
		}
		if keep {
			fmt.Fprintf(stderr, "hangar run: data kept in %s\n", data)
		} else {
			os.RemoveAll(data)
		}
	}}, nil
}

// defaultCacheDir is where hangar run keeps caches: the user's cache
// directory, or the system's temporary one.
func defaultCacheDir() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "hangar", "cache")
}
