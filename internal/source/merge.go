package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"

	"github.com/hangar-ci/hangar/internal/iox"
)

// Names returns the names of the files and symlinks in the gzip-compressed
// tar archive r (as Snapshot writes it), sorted, slash-separated and
// relative to the tree, without the directories. It reads the whole
// archive, refusing what Extract refuses, with the same errors; it keeps no
// contents.
//
// An agent uses it to tell the files a job's workspace got from the source
// tree from those the job made (GitLab's untracked files).
func Names(ctx context.Context, r io.Reader, limits Limits) ([]string, error) {
	if err := limits.Validate(); err != nil {
		return nil, fmt.Errorf("list source archive: %w", err)
	}
	var names []string
	t, err := scan(ctx, r, limits, visitor{
		dir: func(string) error { return nil },
		file: func(name string, _ bool, _ int64, _ io.Reader) error {
			names = append(names, name) // the tar reader skips the unread contents
			return nil
		},
	})
	if err != nil {
		return nil, fmt.Errorf("list source archive: %w", err)
	}
	names = append(names, t.linkNames()...)
	slices.Sort(names)
	return names, nil
}

// MergeStats counts what Merge wrote.
type MergeStats struct {
	// Files is the number of regular files written.
	Files int
	// Dirs is the number of directories the archive holds, explicitly or
	// as the parent of an entry, whether dir already had them or not.
	Dirs int
	// Symlinks is the number of symlinks created.
	Symlinks int
	// Bytes is the total size of the files written.
	Bytes int64
}

// Merge writes the tree in the gzip-compressed tar archive r into dir, an
// existing directory that may already hold a tree, such as a job's
// workspace holding the source tree. What the archive names replaces what
// dir holds under that name; what it does not name is left alone. Files
// get mode 0755 when the archive marks them executable and 0644 otherwise
// (less the umask), new directories 0755; owners and times are not restored.
//
// Merge never writes through a symlink, whether the archive or dir holds
// it: a file or symlink of the archive replaces a file, a symlink or an
// empty directory of dir (which is removed first, so that neither a symlink
// nor a file hard-linked elsewhere is written into); a directory of the
// archive replaces a file or a symlink of dir, and is created where dir has
// nothing. A directory of dir that is not empty where the archive holds a
// file or a symlink is an error matching fs.ErrExist.
//
// The archive is not trusted: Merge refuses what Extract refuses, with the
// same errors, checks symlinks against the archive as Extract does, creates
// them last, once the whole archive has been checked, and does every write
// through an os.Root on dir.
//
// On error dir may hold part of the archive.
func Merge(ctx context.Context, r io.Reader, dir string, limits Limits) (MergeStats, error) {
	var stats MergeStats
	if err := limits.Validate(); err != nil {
		return stats, fmt.Errorf("merge archive: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return stats, fmt.Errorf("merge archive: %w", err)
	}
	defer root.Close()
	t, err := scan(ctx, r, limits, visitor{
		dir: func(name string) error {
			stats.Dirs++
			return mergeDir(root, name)
		},
		file: func(name string, exec bool, _ int64, data io.Reader) error {
			n, err := mergeFile(root, name, exec, data)
			stats.Bytes += n
			if err != nil {
				return err
			}
			stats.Files++
			return nil
		},
	})
	if err != nil {
		return stats, fmt.Errorf("merge archive into %s: %w", dir, err)
	}
	for _, name := range t.linkNames() {
		if err := ctx.Err(); err != nil {
			return stats, fmt.Errorf("merge archive into %s: %w", dir, err)
		}
		if err := mergeSymlink(root, name, t.links[name]); err != nil {
			return stats, fmt.Errorf("merge archive into %s: %w", dir, err)
		}
		stats.Symlinks++
	}
	return stats, nil
}

// mergeDir makes name in root a directory: it keeps a directory, replaces
// a file or a symlink, and creates one where there is nothing.
func mergeDir(root *os.Root, name string) error {
	err := root.Mkdir(name, 0o755)
	if err == nil || !errors.Is(err, fs.ErrExist) {
		if err != nil {
			return fmt.Errorf("create directory %q: %w", name, err)
		}
		return nil
	}
	info, err := root.Lstat(name)
	if err != nil {
		return fmt.Errorf("create directory %q: %w", name, err)
	}
	if info.IsDir() {
		return nil
	}
	if err := root.Remove(name); err != nil {
		return fmt.Errorf("replace %s %q with a directory: %w", kindOf(info), name, err)
	}
	if err := root.Mkdir(name, 0o755); err != nil {
		return fmt.Errorf("create directory %q: %w", name, err)
	}
	return nil
}

// mergeFile writes the file name in root with the contents of data,
// replacing what is there, and returns how many bytes it wrote.
func mergeFile(root *os.Root, name string, exec bool, data io.Reader) (int64, error) {
	cr := &iox.CountingReader{R: data}
	err := writeFile(root, name, exec, cr)
	if errors.Is(err, fs.ErrExist) {
		if err := replace(root, name); err != nil {
			return 0, err
		}
		err = writeFile(root, name, exec, cr)
	}
	return cr.N, err
}

// mergeSymlink creates the symlink name in root, replacing what is there.
func mergeSymlink(root *os.Root, name, target string) error {
	err := root.Symlink(target, name)
	if errors.Is(err, fs.ErrExist) {
		if err := replace(root, name); err != nil {
			return err
		}
		err = root.Symlink(target, name)
	}
	if err != nil {
		return fmt.Errorf("create symlink %q: %w", name, err)
	}
	return nil
}

// replace removes name from root, without following it, so that a file or
// a symlink can take its place. A directory that is not empty is an error
// matching fs.ErrExist.
func replace(root *os.Root, name string) error {
	info, err := root.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("replace %q: %w", name, err)
	}
	if err := root.Remove(name); err != nil {
		if info.IsDir() {
			return fmt.Errorf("replace %q: a directory that is not empty is in the way: %w", name, fs.ErrExist)
		}
		return fmt.Errorf("replace %s %q: %w", kindOf(info), name, err)
	}
	return nil
}

// kindOf names the kind of file info describes, for messages.
func kindOf(info fs.FileInfo) string {
	switch mode := info.Mode(); {
	case mode.IsDir():
		return "directory"
	case mode.IsRegular():
		return "file"
	case mode&fs.ModeSymlink != 0:
		return "symlink"
	}
	return "special file"
}
