// Package cache keeps the caches of GitLab's cache: keyword between jobs: an
// archive per key, written after one job and read before the next ones.
//
// Dir, the default, keeps them in a directory of the agent's host, as
// GitLab Runner does without a shared cache. A store shared by several
// hosts (S3-compatible, GitLab's Shared = true) implements the same
// interface as the agent sees it.
package cache

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/hangar-ci/hangar/internal/iox"
	"github.com/hangar-ci/hangar/internal/workspace"
)

// Dir keeps cache archives as files of one directory, each replaced
// atomically. It is safe for concurrent use, by several agents too: the
// last of two jobs saving one key wins.
type Dir struct {
	dir string
}

// NewDir returns a store in dir, which it creates if needed.
func NewDir(dir string) (*Dir, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("cache directory: %w", err)
	}
	return &Dir{dir: dir}, nil
}

// path returns the file of key: a safe name for any key, that starts with
// the key's readable part.
func (d *Dir) path(key string) string {
	return filepath.Join(d.dir, workspace.CacheFileName(key)+".tar.gz")
}

// Open returns the archive stored under key, or an error matching
// fs.ErrNotExist when there is none.
func (d *Dir) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := os.Open(d.path(key))
	if err != nil {
		return nil, fmt.Errorf("open cache %q: %w", key, err)
	}
	return f, nil
}

// Put stores what r holds under key, replacing the archive stored before
// only once r is read to its end without error.
func (d *Dir) Put(ctx context.Context, key string, r io.Reader) error {
	tmp, err := os.CreateTemp(d.dir, ".put-*")
	if err != nil {
		return fmt.Errorf("save cache %q: %w", key, err)
	}
	defer os.Remove(tmp.Name())
	_, err = io.Copy(tmp, iox.ContextReader(ctx, r))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), d.path(key))
	}
	if err != nil {
		return fmt.Errorf("save cache %q: %w", key, err)
	}
	return nil
}
