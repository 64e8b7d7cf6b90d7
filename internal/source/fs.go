package source

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"
)

// FS is a read-only file system over a source archive, held in memory. It
// lets the server read the pipeline file and its local includes and
// evaluate exists: rules without writing the tree to disk.
//
// Open and Stat follow symlinks, ReadDir lists them as symlinks, and
// ReadLink and Lstat do not follow them, as os.DirFS does. A symlink whose
// target is missing is listed, but opening it fails with fs.ErrNotExist.
// Every file has mode 0644 or 0755, every directory 0755, and no time.
//
// FS implements fs.FS, fs.ReadFileFS, fs.ReadDirFS, fs.StatFS and
// fs.ReadLinkFS, and is safe for concurrent use.
type FS struct {
	tree  *tree
	nodes map[string]*fsNode // by path; "." is the root
}

// fsNode is one file, directory or symlink of an FS.
type fsNode struct {
	name     string // base name, "." for the root
	mode     fs.FileMode
	data     []byte    // a file's contents
	target   string    // a symlink's target
	children []*fsNode // a directory's entries, sorted by name
}

// NewFS reads the gzip-compressed tar archive r (as Snapshot writes it) into
// memory. It refuses what Extract refuses, with the same errors, and holds
// at most limits.MaxBytes of contents.
func NewFS(ctx context.Context, r io.Reader, limits Limits) (*FS, error) {
	f := &FS{nodes: map[string]*fsNode{".": {name: ".", mode: fs.ModeDir | 0o755}}}
	t, err := scan(ctx, r, limits, visitor{
		dir: func(name string) error {
			f.nodes[name] = &fsNode{name: path.Base(name), mode: fs.ModeDir | 0o755}
			return nil
		},
		file: func(name string, exec bool, size int64, data io.Reader) error {
			// Grow as the data comes, not by the size the header claims.
			var buf bytes.Buffer
			buf.Grow(int(min(size, 64<<10)))
			if _, err := buf.ReadFrom(data); err != nil {
				return fmt.Errorf("read %q: %w", name, err)
			}
			mode := fs.FileMode(0o644)
			if exec {
				mode = 0o755
			}
			f.nodes[name] = &fsNode{name: path.Base(name), mode: mode, data: buf.Bytes()}
			return nil
		},
	})
	if err != nil {
		return nil, fmt.Errorf("read source archive: %w", err)
	}
	f.tree = t
	for name, target := range t.links {
		f.nodes[name] = &fsNode{name: path.Base(name), mode: fs.ModeSymlink | 0o777, target: target}
	}
	for name, n := range f.nodes {
		if name != "." {
			parent := f.nodes[path.Dir(name)]
			parent.children = append(parent.children, n)
		}
	}
	for _, n := range f.nodes {
		slices.SortFunc(n.children, func(a, b *fsNode) int { return strings.Compare(a.name, b.name) })
	}
	return f, nil
}

// lookup finds name, following symlinks in its directories and, when
// followLast is set, in its last component.
func (f *FS) lookup(op, name string, followLast bool) (*fsNode, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	if name == "." {
		return f.nodes["."], nil
	}
	dir, last := path.Split(name)
	hops := 0
	pos, err := f.tree.resolve(nil, dir, &hops)
	if err != nil {
		return nil, &fs.PathError{Op: op, Path: name, Err: err}
	}
	pos = append(pos, last)
	if followLast {
		if pos, err = f.tree.resolve(pos[:len(pos)-1], last, &hops); err != nil {
			return nil, &fs.PathError{Op: op, Path: name, Err: err}
		}
	}
	key := strings.Join(pos, "/")
	if key == "" {
		key = "."
	}
	n := f.nodes[key]
	if n == nil {
		return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
	}
	return n, nil
}

// Open opens the named file, following symlinks.
func (f *FS) Open(name string) (fs.File, error) {
	n, err := f.lookup("open", name, true)
	if err != nil {
		return nil, err
	}
	info := fsInfo{name: path.Base(name), n: n}
	if n.mode.IsDir() {
		return &fsDir{info: info}, nil
	}
	return &fsFile{info: info, Reader: bytes.NewReader(n.data)}, nil
}

// ReadFile returns a copy of the contents of the named file.
func (f *FS) ReadFile(name string) ([]byte, error) {
	n, err := f.lookup("readfile", name, true)
	if err != nil {
		return nil, err
	}
	if n.mode.IsDir() {
		return nil, &fs.PathError{Op: "readfile", Path: name, Err: fmt.Errorf("is a directory: %w", fs.ErrInvalid)}
	}
	return slices.Clone(n.data), nil
}

// ReadDir lists the named directory, sorted by name.
func (f *FS) ReadDir(name string) ([]fs.DirEntry, error) {
	n, err := f.lookup("readdir", name, true)
	if err != nil {
		return nil, err
	}
	if !n.mode.IsDir() {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fmt.Errorf("not a directory: %w", fs.ErrInvalid)}
	}
	return dirEntries(n.children), nil
}

// Stat describes the named file, following symlinks.
func (f *FS) Stat(name string) (fs.FileInfo, error) {
	n, err := f.lookup("stat", name, true)
	if err != nil {
		return nil, err
	}
	return fsInfo{name: path.Base(name), n: n}, nil
}

// Lstat describes the named file without following a symlink it names.
func (f *FS) Lstat(name string) (fs.FileInfo, error) {
	n, err := f.lookup("lstat", name, false)
	if err != nil {
		return nil, err
	}
	return fsInfo{name: path.Base(name), n: n}, nil
}

// ReadLink returns the target of the named symlink.
func (f *FS) ReadLink(name string) (string, error) {
	n, err := f.lookup("readlink", name, false)
	if err != nil {
		return "", err
	}
	if n.mode&fs.ModeSymlink == 0 {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: fmt.Errorf("not a symlink: %w", fs.ErrInvalid)}
	}
	return n.target, nil
}

func dirEntries(nodes []*fsNode) []fs.DirEntry {
	entries := make([]fs.DirEntry, len(nodes))
	for i, n := range nodes {
		entries[i] = fsInfo{name: n.name, n: n}
	}
	return entries
}

// fsInfo describes an fsNode under a name; it is both its fs.FileInfo and
// its fs.DirEntry.
type fsInfo struct {
	name string
	n    *fsNode
}

func (i fsInfo) Name() string               { return i.name }
func (i fsInfo) Mode() fs.FileMode          { return i.n.mode }
func (i fsInfo) Type() fs.FileMode          { return i.n.mode.Type() }
func (i fsInfo) IsDir() bool                { return i.n.mode.IsDir() }
func (i fsInfo) ModTime() time.Time         { return time.Time{} }
func (i fsInfo) Sys() any                   { return nil }
func (i fsInfo) Info() (fs.FileInfo, error) { return i, nil }
func (i fsInfo) String() string             { return fs.FormatFileInfo(i) }

func (i fsInfo) Size() int64 {
	if i.n.mode&fs.ModeSymlink != 0 {
		return int64(len(i.n.target))
	}
	return int64(len(i.n.data))
}

// fsFile is an open regular file of an FS.
type fsFile struct {
	info fsInfo
	*bytes.Reader
}

func (f *fsFile) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *fsFile) Close() error               { return nil }

// fsDir is an open directory of an FS.
type fsDir struct {
	info fsInfo
	next int // index of the next entry ReadDir returns
}

func (d *fsDir) Stat() (fs.FileInfo, error) { return d.info, nil }
func (d *fsDir) Close() error               { return nil }

func (d *fsDir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.info.name, Err: fmt.Errorf("is a directory: %w", fs.ErrInvalid)}
}

// ReadDir returns the next n entries, or all the rest when n <= 0.
func (d *fsDir) ReadDir(n int) ([]fs.DirEntry, error) {
	rest := d.info.n.children[d.next:]
	if n > 0 {
		if len(rest) == 0 {
			return nil, io.EOF
		}
		rest = rest[:min(n, len(rest))]
	}
	d.next += len(rest)
	return dirEntries(rest), nil
}
