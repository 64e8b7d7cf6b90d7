package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/hangar-ci/hangar/internal/pipeline"
)

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// lintOptions are the flags of hangar lint.
type lintOptions struct {
	source, branch, tag, defaultBranch string
	mrIID                              int
	mrSource, mrTarget, project, root  string
	vars, changed                      stringList
	json                               bool
}

func runLint(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var o lintOptions
	fs := flag.NewFlagSet("lint", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o.register(fs)
	fs.StringVar(&o.root, "root", "", "repository root that include: local and exists: paths start from (default: the git work tree holding FILE, else FILE's directory)")
	fs.BoolVar(&o.json, "json", false, "print the result as JSON")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: hangar lint [flags] [FILE]\n\nCheck a GitLab CI pipeline file (default .gitlab-ci.yml) and show the jobs a\npipeline run would hold. Errors are printed as file:line:col: message.\nExit status: 0 valid, 1 invalid, 2 bad usage.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	file := ".gitlab-ci.yml"
	switch fs.NArg() {
	case 0:
	case 1:
		file = fs.Arg(0)
	default:
		fmt.Fprintf(stderr, "hangar lint: one file at most, got %d\n", fs.NArg())
		return exitUsage
	}
	pctx, err := o.context()
	if err != nil {
		fmt.Fprintf(stderr, "hangar lint: %v\n", err)
		return exitUsage
	}
	root, name, err := repoRoot(file, o.root)
	if err != nil {
		fmt.Fprintf(stderr, "hangar lint: %v\n", err)
		return exitTrouble
	}
	fsys := os.DirFS(root)
	pctx.Files = fsys

	res := lint(fsys, name, pctx)
	display := displayPath(root)
	for i := range res.Errors {
		res.Errors[i].File = display(res.Errors[i].File)
	}
	for i := range res.Warnings {
		res.Warnings[i].File = display(res.Warnings[i].File)
	}
	if o.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			fmt.Fprintf(stderr, "hangar lint: %v\n", err)
			return exitTrouble
		}
	} else {
		res.print(stdout)
	}
	if !res.Valid {
		return exitFailed
	}
	return exitOK
}

// context builds the pipeline context from the flags.
// register defines the flags that describe the pipeline's context: the
// event, the ref, variables and changes. lint and run share them.
func (o *lintOptions) register(fs *flag.FlagSet) {
	fs.StringVar(&o.source, "source", "", "pipeline source: push, merge_request_event, web, api, schedule, trigger, ... (default push, or merge_request_event with --mr-iid)")
	fs.StringVar(&o.branch, "branch", "", "branch the pipeline runs for (default: the default branch, unless --tag or --mr-iid)")
	fs.StringVar(&o.tag, "tag", "", "tag the pipeline runs for")
	fs.StringVar(&o.defaultBranch, "default-branch", "main", "the project's default branch")
	fs.IntVar(&o.mrIID, "mr-iid", 0, "merge request IID: plan a merge request pipeline")
	fs.StringVar(&o.mrSource, "mr-source-branch", "", "merge request source branch (default --branch)")
	fs.StringVar(&o.mrTarget, "mr-target-branch", "", "merge request target branch (default --default-branch)")
	fs.StringVar(&o.project, "project", "", "project path (namespace/name) for only: refs@project and CI_PROJECT_*")
	fs.Var(&o.vars, "var", "pipeline variable KEY=VALUE (repeatable)")
	fs.Var(&o.changed, "changed", "path changed by the push or merge request (repeatable); without it changes: rules match")
}

func (o *lintOptions) context() (pipeline.Context, error) {
	c := pipeline.Context{
		Source: pipeline.Source(o.source), Branch: o.branch, Tag: o.tag,
		DefaultBranch: o.defaultBranch, ProjectPath: o.project,
	}
	if c.Source == "" {
		c.Source = pipeline.SourcePush
		if o.mrIID > 0 {
			c.Source = pipeline.SourceMergeRequest
		}
	}
	if !slices.Contains(pipeline.Sources, c.Source) {
		return c, fmt.Errorf("--source %q is not a pipeline source (one of %s)", o.source, joinSources())
	}
	if c.Tag != "" && c.Branch != "" {
		return c, errors.New("--branch and --tag cannot both be given: a pipeline runs for one ref")
	}
	if c.Source == pipeline.SourceMergeRequest {
		if o.mrIID <= 0 {
			return c, errors.New("--source merge_request_event needs --mr-iid")
		}
		mr := &pipeline.MergeRequest{IID: o.mrIID, SourceBranch: o.mrSource, TargetBranch: o.mrTarget}
		if mr.SourceBranch == "" {
			mr.SourceBranch = o.branch
		}
		if mr.SourceBranch == "" {
			return c, errors.New("a merge request pipeline needs --mr-source-branch (or --branch)")
		}
		if mr.TargetBranch == "" {
			mr.TargetBranch = o.defaultBranch
		}
		c.MergeRequest, c.Branch = mr, ""
	} else if c.Branch == "" && c.Tag == "" {
		c.Branch = o.defaultBranch
	}
	for _, kv := range o.vars {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return c, fmt.Errorf("--var %q must be KEY=VALUE", kv)
		}
		c.Variables = append(c.Variables, pipeline.Variable{Name: k, Value: v, Expand: false})
	}
	if len(o.changed) > 0 {
		c.Changed = o.changed
	}
	return c, nil
}

func joinSources() string {
	s := make([]string, len(pipeline.Sources))
	for i, src := range pipeline.Sources {
		s[i] = string(src)
	}
	return strings.Join(s, ", ")
}

// repoRoot finds the directory include: paths are relative to, and the
// file's path inside it.
func repoRoot(file, root string) (string, string, error) {
	abs, err := filepath.Abs(file)
	if err != nil {
		return "", "", fmt.Errorf("resolve %s: %w", file, err)
	}
	if _, err := os.Stat(abs); err != nil {
		return "", "", fmt.Errorf("read pipeline file: %w", err)
	}
	if root == "" {
		root = filepath.Dir(abs)
		for dir := root; ; dir = filepath.Dir(dir) {
			if _, err := os.Stat(filepath.Join(dir, ".git")); err == nil {
				root = dir
				break
			}
			if filepath.Dir(dir) == dir {
				break
			}
		}
	}
	root, err = filepath.Abs(root)
	if err != nil {
		return "", "", fmt.Errorf("resolve --root: %w", err)
	}
	rel, err := filepath.Rel(root, abs)
	if err != nil || strings.HasPrefix(rel, "..") {
		return "", "", fmt.Errorf("%s is not inside the repository root %s", file, root)
	}
	return root, filepath.ToSlash(rel), nil
}

// displayPath turns a repository path into one relative to the working
// directory, as the user would type it.
func displayPath(root string) func(string) string {
	wd, err := os.Getwd()
	return func(p string) string {
		if err != nil || p == "" {
			return p
		}
		if rel, err := filepath.Rel(wd, filepath.Join(root, filepath.FromSlash(p))); err == nil {
			return rel
		}
		return p
	}
}
