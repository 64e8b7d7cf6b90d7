package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// Extract writes the tree in the gzip-compressed tar archive r (as Snapshot
// writes it) into dir, which must be empty or not exist yet; Extract creates
// it. Files get mode 0755 when the archive marks them executable and 0644
// otherwise (less the umask); directories 0755; owners and times are not
// restored.
//
// The archive is not trusted. Extract refuses an entry that is absolute, has
// a ".." component, lies below a symlink, or takes a name the archive already
// used (ErrUnsafePath); a symlink whose target, followed on the extracted
// tree, would leave dir (ErrUnsafePath); devices, fifos, hard links and
// sparse files (ErrUnsupportedEntry); and more than limits allow (ErrTooLarge,
// ErrTooManyFiles). Every write goes through an os.Root on dir, and symlinks
// are created last, once the whole archive has been checked, so no write
// follows a symlink of the archive.
//
// On error dir may hold part of the tree; the caller removes it.
func Extract(ctx context.Context, r io.Reader, dir string, limits Limits) error {
	if err := limits.Validate(); err != nil {
		return fmt.Errorf("extract source: %w", err)
	}
	if err := emptyDir(dir); err != nil {
		return fmt.Errorf("extract source: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("extract source: %w", err)
	}
	defer root.Close()
	t, err := scan(ctx, r, limits, visitor{
		dir: func(name string) error {
			if err := root.Mkdir(name, 0o755); err != nil {
				return fmt.Errorf("create directory %q: %w", name, err)
			}
			return nil
		},
		file: func(name string, exec bool, _ int64, data io.Reader) error {
			return writeFile(root, name, exec, data)
		},
	})
	if err != nil {
		return fmt.Errorf("extract source into %s: %w", dir, err)
	}
	for _, name := range t.linkNames() {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("extract source into %s: %w", dir, err)
		}
		if err := root.Symlink(t.links[name], name); err != nil {
			return fmt.Errorf("extract source into %s: create symlink %q: %w", dir, name, err)
		}
	}
	return nil
}

// writeFile creates the file name in root, which must not exist, with the
// contents of data.
func writeFile(root *os.Root, name string, exec bool, data io.Reader) error {
	perm := fs.FileMode(0o644)
	if exec {
		perm = 0o755
	}
	f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("create file %q: %w", name, err)
	}
	if _, err := io.Copy(f, data); err != nil {
		f.Close()
		return fmt.Errorf("write file %q: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write file %q: %w", name, err)
	}
	return nil
}

// emptyDir creates dir if it does not exist and otherwise checks that it is
// an empty directory, so that nothing already there (a symlink, say) can
// change where the archive's entries land.
func emptyDir(dir string) error {
	f, err := os.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("create directory: %w", err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("open directory: %w", err)
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	if errors.Is(err, io.EOF) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read directory %s: %w", dir, err)
	}
	return fmt.Errorf("directory %s is not empty (it holds %q)", dir, names[0])
}
