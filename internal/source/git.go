package source

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
)

// ErrGit: git could not fetch the commit asked for.
var ErrGit = errors.New("git")

// commitRE matches a full or abbreviated commit ID.
var commitRE = regexp.MustCompile(`^[0-9a-f]{4,64}$`)

// FromGit writes to w the snapshot (as Snapshot writes it) of the tree of
// commit in the repository at url: every file git tracks at that commit.
// The commit must be given by its ID, so that the same request always gives
// the same tree. Nothing of the repository runs: no hooks, no filters
// beyond git's own, and the ext:: transport is refused.
func FromGit(ctx context.Context, url, commit string, w io.Writer) error {
	if !commitRE.MatchString(commit) {
		return fmt.Errorf("fetch %s: %q is not a commit ID: %w", url, commit, ErrGit)
	}
	if url == "" || strings.HasPrefix(url, "-") {
		return fmt.Errorf("fetch: %q is not a repository URL: %w", url, ErrGit)
	}
	dir, err := os.MkdirTemp("", "hangar-git-*")
	if err != nil {
		return fmt.Errorf("fetch %s: %w", url, err)
	}
	defer os.RemoveAll(dir)
	git := func(args ...string) error {
		cmd := exec.CommandContext(ctx, "git", append([]string{
			"-c", "protocol.ext.allow=never", "-c", "core.hooksPath=/dev/null",
			"-c", "advice.detachedHead=false", "-C", dir}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("git %s: %w: %s: %w", args[0], err, strings.TrimSpace(stderr.String()), ErrGit)
		}
		return nil
	}
	// Fetch just the commit asked for; servers that refuse fetching by ID
	// get a full clone instead.
	if err := git("init", "--quiet"); err != nil {
		return fmt.Errorf("fetch %s: %w", url, err)
	}
	if err := git("fetch", "--quiet", "--depth=1", "--", url, commit); err != nil {
		if err := git("fetch", "--quiet", "--", url, "+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*"); err != nil {
			return fmt.Errorf("fetch %s: %w", url, err)
		}
	}
	if err := git("checkout", "--quiet", "--detach", commit); err != nil {
		return fmt.Errorf("fetch %s at %s: %w", url, commit, err)
	}
	// Only what the commit tracks: nothing else is in the fresh work tree.
	return Snapshot(ctx, dir, w)
}
