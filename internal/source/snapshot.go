package source

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hangar-ci/hangar/internal/iox"
)

// snapshotEntry is one file or symlink Snapshot writes.
type snapshotEntry struct {
	name   string // slash-separated, relative to the snapshot's directory
	kind   entryKind
	exec   bool
	size   int64
	target string
}

// Snapshot writes the tree at dir to w as a gzip-compressed tar archive.
//
// When dir is in a git work tree (a ".git" is in dir or above it), the
// archive holds the files git would see: tracked files that still exist and
// untracked files that are not ignored, below dir ("git ls-files --cached
// --others --exclude-standard"); git must then be on PATH. Otherwise it holds
// every file below dir except ".git" directories and files. Either way it
// holds regular files, with only their executable bit, and symlinks, as
// symlinks; it skips directories (empty ones are lost), submodules, nested
// repositories, sockets and devices.
//
// The output depends only on the tree: entries are sorted by name, and
// times, owners and the gzip header are fixed, so the same tree gives the
// same bytes (and digest) with the same Go version.
//
// Snapshot refuses, with ErrUnsafePath, a symlink that Extract would refuse
// (absolute, or leading outside dir), so the mistake shows where it is made.
func Snapshot(ctx context.Context, dir string, w io.Writer) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	defer root.Close()
	entries, err := snapshotEntries(ctx, dir, root)
	if err != nil {
		return fmt.Errorf("snapshot %s: %w", dir, err)
	}
	if err := writeSnapshot(ctx, root, entries, w); err != nil {
		return fmt.Errorf("snapshot %s: %w", dir, err)
	}
	return nil
}

// snapshotEntries lists, sorted, the files and symlinks to snapshot, and
// checks the symlinks.
func snapshotEntries(ctx context.Context, dir string, root *os.Root) ([]snapshotEntry, error) {
	inGit, err := inGitWorkTree(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	if inGit {
		names, err = gitFiles(ctx, dir)
	} else {
		names, err = walkFiles(ctx, root)
	}
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	names = slices.Compact(names) // git lists an unmerged path once per stage

	t := newTree()
	isDir := map[string]bool{}
	var entries []snapshotEntry
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if _, _, err := checkName(name); err != nil {
			return nil, err
		}
		ok, err := underRealDirs(root, name, isDir)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue // a parent was deleted or replaced since git last saw it
		}
		info, err := root.Lstat(name)
		if errors.Is(err, fs.ErrNotExist) {
			continue // tracked but deleted
		}
		if err != nil {
			return nil, err
		}
		e := snapshotEntry{name: name}
		switch mode := info.Mode(); {
		case mode.IsRegular():
			e.kind, e.exec, e.size = kindFile, mode&0o111 != 0, info.Size()
		case mode&fs.ModeSymlink != 0:
			e.kind = kindSymlink
			if e.target, err = root.Readlink(name); err != nil {
				return nil, err
			}
		default:
			continue // a submodule, a nested repository, a socket...
		}
		if _, err := t.add(name, e.kind, e.target); err != nil {
			return nil, err
		}
		entries = append(entries, e)
	}
	if err := t.checkLinks(); err != nil {
		return nil, err
	}
	return entries, nil
}

// underRealDirs reports whether every parent of name in root is a real
// directory, not a symlink, a file or nothing. isDir caches the answers.
func underRealDirs(root *os.Root, name string, isDir map[string]bool) (bool, error) {
	for i := range len(name) {
		if name[i] != '/' {
			continue
		}
		parent := name[:i]
		ok, seen := isDir[parent]
		if !seen {
			info, err := root.Lstat(parent)
			switch {
			case errors.Is(err, fs.ErrNotExist):
				ok = false
			case err != nil:
				return false, err
			default:
				ok = info.IsDir()
			}
			isDir[parent] = ok
		}
		if !ok {
			return false, nil
		}
	}
	return true, nil
}

// inGitWorkTree reports whether dir or a directory above it holds ".git".
func inGitWorkTree(dir string) (bool, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return false, err
	}
	for d := abs; ; {
		if _, err := os.Lstat(filepath.Join(d, ".git")); err == nil {
			return true, nil
		} else if !errors.Is(err, fs.ErrNotExist) {
			return false, err
		}
		up := filepath.Dir(d)
		if up == d {
			return false, nil
		}
		d = up
	}
}

// gitFiles lists the files below dir that git tracks or would add, relative
// to dir.
func gitFiles(ctx context.Context, dir string) ([]string, error) {
	if _, err := exec.LookPath("git"); err != nil {
		return nil, fmt.Errorf("the directory is in a git work tree, but git cannot be run to list its files: %w", err)
	}
	cmd := exec.CommandContext(ctx, "git", "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return nil, fmt.Errorf("git ls-files: %w: %s", err, msg)
		}
		return nil, fmt.Errorf("git ls-files: %w", err)
	}
	var names []string
	for name := range strings.SplitSeq(stdout.String(), "\x00") {
		// An untracked nested repository is listed as "dir/": skip it.
		if name != "" && !strings.HasSuffix(name, "/") {
			names = append(names, name)
		}
	}
	return names, nil
}

// walkFiles lists the files and symlinks below root, skipping .git.
func walkFiles(ctx context.Context, root *os.Root) ([]string, error) {
	var names []string
	err := fs.WalkDir(root.FS(), ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		switch {
		case d.Name() == ".git" && d.IsDir():
			return fs.SkipDir
		case d.Name() == ".git", d.IsDir():
		default:
			names = append(names, name)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("walk: %w", err)
	}
	return names, nil
}

// epoch is the modification time of every entry Snapshot writes.
var epoch = time.Unix(0, 0)

// writeSnapshot writes the entries as a gzip-compressed tar archive.
func writeSnapshot(ctx context.Context, root *os.Root, entries []snapshotEntry, w io.Writer) error {
	gz := gzip.NewWriter(w) // the header's name and time are left empty
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr := &tar.Header{Name: e.name, ModTime: epoch}
		switch e.kind {
		case kindFile:
			hdr.Typeflag, hdr.Size, hdr.Mode = tar.TypeReg, e.size, 0o644
			if e.exec {
				hdr.Mode = 0o755
			}
		case kindSymlink:
			hdr.Typeflag, hdr.Linkname, hdr.Mode = tar.TypeSymlink, e.target, 0o777
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("write %q: %w", e.name, err)
		}
		if e.kind == kindFile {
			if err := copyFile(ctx, root, e, tw); err != nil {
				return err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("write archive: %w", err)
	}
	if err := gz.Close(); err != nil {
		return fmt.Errorf("write archive: %w", err)
	}
	return nil
}

// copyFile copies the file e, which must still be e.size bytes long, to w.
func copyFile(ctx context.Context, root *os.Root, e snapshotEntry, w io.Writer) error {
	f, err := root.Open(e.name)
	if err != nil {
		return fmt.Errorf("read %q: %w", e.name, err)
	}
	defer f.Close()
	n, err := io.Copy(w, io.LimitReader(iox.ContextReader(ctx, f), e.size))
	if err != nil {
		return fmt.Errorf("read %q: %w", e.name, err)
	}
	if n != e.size {
		return fmt.Errorf("read %q: the file shrank from %d to %d bytes while it was read", e.name, e.size, n)
	}
	return nil
}
