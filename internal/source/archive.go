package source

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"github.com/hangar-ci/hangar/internal/iox"
)

// maxLinkHops bounds the symlinks followed while resolving one path, as
// the kernel does (Linux allows 40).
const maxLinkHops = 40

// unsafePath returns an ErrUnsafePath error naming the entry.
func unsafePath(name, format string, args ...any) error {
	return fmt.Errorf("%w: %q: %s", ErrUnsafePath, name, fmt.Sprintf(format, args...))
}

// checkName checks an archive entry's name and returns it cleaned: slash
// separated, relative, with no trailing slash and no leading "./". root
// reports a name that is the tree itself ("." or "./").
func checkName(raw string) (name string, root bool, err error) {
	switch {
	case raw == "":
		return "", false, unsafePath(raw, "empty name")
	case strings.IndexByte(raw, 0) >= 0:
		return "", false, unsafePath(raw, "name holds a NUL byte")
	case strings.HasPrefix(raw, "/") || filepath.IsAbs(raw) || filepath.VolumeName(raw) != "":
		return "", false, unsafePath(raw, "absolute name")
	}
	name = strings.TrimSuffix(raw, "/")
	if slices.Contains(splitPath(name), "..") {
		return "", false, unsafePath(raw, `name has a ".." component`)
	}
	for strings.HasPrefix(name, "./") {
		name = name[2:]
	}
	if name == "." || name == "" {
		return "", true, nil
	}
	if !fs.ValidPath(name) {
		return "", false, unsafePath(raw, "name is not a clean relative path")
	}
	if !filepath.IsLocal(filepath.FromSlash(name)) {
		return "", false, unsafePath(raw, "name is not a local path on %s", runtime.GOOS)
	}
	return name, false, nil
}

// splitPath splits a slash-separated path, or on Windows a path separated
// by either slash, into its components.
func splitPath(p string) []string {
	if runtime.GOOS == "windows" {
		return strings.FieldsFunc(p, func(r rune) bool { return r == '/' || r == '\\' })
	}
	return strings.Split(p, "/")
}

// entryKind is what a path in a tree is.
type entryKind uint8

const (
	kindNone entryKind = iota
	kindDir
	kindFile
	kindSymlink
)

func (k entryKind) String() string {
	switch k {
	case kindDir:
		return "directory"
	case kindFile:
		return "file"
	case kindSymlink:
		return "symlink"
	}
	return "nothing"
}

// tree is the shape of an archive: every path in it, including the
// directories its entries imply, and the target of every symlink. It is
// what symlinks are checked against, so that a symlink that is harmless
// alone cannot escape through another one, whatever their order.
type tree struct {
	kinds map[string]entryKind
	links map[string]string
}

func newTree() *tree {
	return &tree{kinds: map[string]entryKind{}, links: map[string]string{}}
}

// add records an entry and the directories above it, and returns the
// directories it created, the outermost first (name itself included when it
// is a new directory). It refuses an entry below a file or a symlink and a
// name already taken, except a directory given twice.
func (t *tree) add(name string, kind entryKind, target string) ([]string, error) {
	var created []string
	for i := range len(name) {
		if name[i] != '/' {
			continue
		}
		parent := name[:i]
		switch t.kinds[parent] {
		case kindNone:
			t.kinds[parent] = kindDir
			created = append(created, parent)
		case kindSymlink:
			return nil, unsafePath(name, "entry is below the symlink %q", parent)
		case kindFile:
			return nil, unsafePath(name, "entry is below the file %q", parent)
		}
	}
	switch old := t.kinds[name]; {
	case old == kindNone:
		t.kinds[name] = kind
		if kind == kindSymlink {
			t.links[name] = target
		}
		if kind == kindDir {
			created = append(created, name)
		}
	case old == kindDir && kind == kindDir:
	default:
		return nil, unsafePath(name, "a %s is already in the archive under this name", old)
	}
	return created, nil
}

// linkNames returns the symlinks' names, sorted.
func (t *tree) linkNames() []string {
	names := make([]string, 0, len(t.links))
	for name := range t.links {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// checkLinks checks every symlink, in name order.
func (t *tree) checkLinks() error {
	for _, name := range t.linkNames() {
		if err := t.checkLink(name); err != nil {
			return err
		}
	}
	return nil
}

// checkLink checks that the symlink name, followed as the kernel would on
// the extracted tree, stays inside the tree at every step.
func (t *tree) checkLink(name string) error {
	target := t.links[name]
	switch {
	case target == "":
		return unsafePath(name, "symlink has an empty target")
	case strings.IndexByte(target, 0) >= 0:
		return unsafePath(name, "symlink target holds a NUL byte")
	case strings.HasPrefix(target, "/") || filepath.IsAbs(target) || filepath.VolumeName(target) != "" ||
		runtime.GOOS == "windows" && strings.HasPrefix(target, `\`):
		return unsafePath(name, "symlink target %q is absolute", target)
	}
	hops := 0
	if _, err := t.resolve(parentOf(name), target, &hops); err != nil {
		return unsafePath(name, "symlink target %q %v", target, err)
	}
	return nil
}

// parentOf returns the components of name's parent directory.
func parentOf(name string) []string {
	parts := strings.Split(name, "/")
	return parts[:len(parts)-1]
}

// Reasons resolve gives up.
var (
	errEscapes    = errors.New("leads outside the tree")
	errDotDotLeap = errors.New(`has ".." after something that is not a directory of the archive`)
	errLinkLoop   = errors.New("goes through too many symlinks")
)

// resolve follows the path p from the directory at pos, following the
// symlinks of the tree, and returns where it leads. It never leaves the
// tree: a ".." at the top is errEscapes. A ".." is allowed only after a
// directory the tree holds, because after a name it does not know (which
// may differ from a known one only in case, or be created later) the
// kernel's answer cannot be predicted.
func (t *tree) resolve(pos []string, p string, hops *int) ([]string, error) {
	pos = slices.Clone(pos)
	for _, c := range splitPath(p) {
		switch c {
		case "", ".":
		case "..":
			if len(pos) == 0 {
				return nil, errEscapes
			}
			if t.kinds[strings.Join(pos, "/")] != kindDir {
				return nil, errDotDotLeap
			}
			pos = pos[:len(pos)-1]
		default:
			next := append(pos, c)
			key := strings.Join(next, "/")
			if t.kinds[key] != kindSymlink {
				pos = next
				continue
			}
			*hops++
			if *hops > maxLinkHops {
				return nil, errLinkLoop
			}
			to, err := t.resolve(pos, t.links[key], hops)
			if err != nil {
				return nil, err
			}
			pos = to
		}
	}
	return pos, nil
}

// visitor receives the entries of an archive as scan reads them.
type visitor struct {
	// dir is called for every directory, explicit or implied, once, before
	// anything inside it.
	dir func(name string) error
	// file is called for every regular file with its contents; it need not
	// read them all.
	file func(name string, exec bool, size int64, data io.Reader) error
}

// scan reads a gzip-compressed tar archive, checks every entry and passes
// directories and files to v in archive order. Symlinks are only recorded:
// they are checked once the whole tree is known, and the caller finds them in
// the returned tree.
func scan(ctx context.Context, r io.Reader, limits Limits, v visitor) (*tree, error) {
	limits, err := limits.withDefaults()
	if err != nil {
		return nil, err
	}
	gz, err := gzip.NewReader(iox.ContextReader(ctx, r))
	if err != nil {
		return nil, fmt.Errorf("read archive: %w", err)
	}
	defer gz.Close()
	tr := tar.NewReader(gz)
	t := newTree()
	var entries int
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read archive: %w", err)
		}
		entries++
		if entries > limits.MaxFiles {
			return nil, fmt.Errorf("%w: the archive holds more than %d entries (%q is one too many)", ErrTooManyFiles, limits.MaxFiles, hdr.Name)
		}
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			continue // metadata for the archive, such as git archive's commit id
		}
		total += int64(len(hdr.Name))
		switch hdr.Typeflag {
		case tar.TypeReg:
			total += hdr.Size
		case tar.TypeSymlink:
			total += int64(len(hdr.Linkname))
		}
		if total > limits.MaxBytes {
			return nil, fmt.Errorf("%w: the archive holds more than %d bytes (at %q)", ErrTooLarge, limits.MaxBytes, hdr.Name)
		}
		name, isRoot, err := checkName(hdr.Name)
		if err != nil {
			return nil, err
		}
		var kind entryKind
		switch hdr.Typeflag {
		case tar.TypeDir:
			if isRoot {
				continue
			}
			kind = kindDir
		case tar.TypeReg:
			kind = kindFile
		case tar.TypeSymlink:
			kind = kindSymlink
		case tar.TypeLink:
			return nil, fmt.Errorf("%w: %q: hard link to %q", ErrUnsupportedEntry, hdr.Name, hdr.Linkname)
		case tar.TypeChar, tar.TypeBlock:
			return nil, fmt.Errorf("%w: %q: device", ErrUnsupportedEntry, hdr.Name)
		case tar.TypeFifo:
			return nil, fmt.Errorf("%w: %q: fifo", ErrUnsupportedEntry, hdr.Name)
		case tar.TypeGNUSparse:
			return nil, fmt.Errorf("%w: %q: sparse file", ErrUnsupportedEntry, hdr.Name)
		default:
			return nil, fmt.Errorf("%w: %q: entry type %q", ErrUnsupportedEntry, hdr.Name, hdr.Typeflag)
		}
		if isRoot {
			return nil, unsafePath(hdr.Name, "a %s cannot take the place of the tree itself", kind)
		}
		dirs, err := t.add(name, kind, hdr.Linkname)
		if err != nil {
			return nil, err
		}
		for _, d := range dirs {
			if err := v.dir(d); err != nil {
				return nil, err
			}
		}
		if kind == kindFile {
			if err := v.file(name, hdr.Mode&0o111 != 0, hdr.Size, tr); err != nil {
				return nil, err
			}
		}
	}
	// Read what follows the end of the tar archive (padding, usually) to
	// the end of the gzip stream, so that its checksum is verified and a
	// truncated archive is noticed.
	rest, err := io.Copy(io.Discard, io.LimitReader(gz, limits.MaxBytes-total+1))
	if err != nil {
		return nil, fmt.Errorf("read archive: %w", err)
	}
	if total+rest > limits.MaxBytes {
		return nil, fmt.Errorf("%w: the archive holds more than %d bytes (after its end)", ErrTooLarge, limits.MaxBytes)
	}
	if err := t.checkLinks(); err != nil {
		return nil, err
	}
	return t, nil
}
