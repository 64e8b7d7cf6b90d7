package workspace

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"unicode/utf8"

	"github.com/bmatcuk/doublestar/v4"
)

// maxLinkHops bounds the symlinks followed while checking one symlink, as
// the kernel does (Linux allows 40) and as Unpack does.
const maxLinkHops = 40

// Selection says which files of a workspace to take, the way GitLab reads
// artifacts:paths, artifacts:exclude and artifacts:untracked, or cache:paths
// and cache:untracked.
type Selection struct {
	// Paths are patterns relative to the workspace: plain paths, or globs
	// with *, ?, [...], {a,b} and ** (any number of directories), as
	// github.com/bmatcuk/doublestar reads them. A directory matched means
	// it and everything below it. "." is the whole workspace.
	Paths []string
	// Exclude are globs matched against the path of every file, directory
	// and symlink the other fields select; what matches is left out, and a
	// directory left out leaves out everything below it.
	Exclude []string
	// Untracked also selects every file and symlink that the source tree
	// did not hold (GitLab: git's untracked files), except inside ".git"
	// directories.
	Untracked bool
	// Tracked reports whether the file or symlink name (slash-separated,
	// relative to the workspace) came with the source tree; see
	// source.Names. Nil means nothing did, so every file is untracked.
	Tracked func(name string) bool
}

// Entry is one file, directory or symlink of a Set.
type Entry struct {
	// Name is the entry's path, slash-separated and relative to the
	// workspace.
	Name string
	// Mode is fs.ModeDir|0o755 for a directory, fs.ModeSymlink|0o777 for a
	// symlink, and 0o755 or 0o644 for a regular file, executable or not.
	Mode fs.FileMode
	// Size is a file's size when it was selected.
	Size int64
	// Target is a symlink's target.
	Target string
}

// Set is what Select picked.
type Set struct {
	// Entries are sorted by name, so a directory comes before what is in
	// it.
	Entries []Entry
	// Bytes is the total size of the files.
	Bytes int64
	// Warnings say what was skipped and which patterns matched nothing,
	// as GitLab logs them without failing the job: "dist/": no matching
	// files.
	Warnings []string
}

// Select picks the files, directories and symlinks of the workspace dir that
// sel selects. It walks without following symlinks: a symlink is selected
// as a symlink, a pattern that goes through one (such as "link/file")
// matches nothing, and a symlink whose target is absolute or leads outside
// the workspace, or that loops, is skipped with a warning, so that Unpack
// accepts whatever Pack writes. Sockets, fifos and devices are skipped with
// a warning.
//
// A pattern that is absolute or leads outside the workspace is an error
// matching ErrOutsideWorkspace, an invalid one an error matching
// ErrBadPattern; nothing is read then. A pattern that matches nothing is
// only a warning.
func Select(ctx context.Context, dir string, sel Selection) (*Set, error) {
	paths, err := cleanPatterns("paths", sel.Paths)
	if err != nil {
		return nil, fmt.Errorf("select files: %w", err)
	}
	exclude, err := cleanPatterns("exclude", sel.Exclude)
	if err != nil {
		return nil, fmt.Errorf("select files: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("select files: %w", err)
	}
	defer root.Close()
	s := &selector{ctx: ctx, root: root, exclude: exclude, picked: map[string]Entry{}, skipped: map[string]bool{}}
	for i, p := range paths {
		n, err := s.addPattern(p)
		if err != nil {
			return nil, fmt.Errorf("select files in %s: paths: %q: %w", dir, sel.Paths[i], err)
		}
		if n == 0 {
			s.warnf("%q: no matching files", sel.Paths[i])
		}
	}
	if sel.Untracked {
		n, err := s.addUntracked(sel.Tracked)
		if err != nil {
			return nil, fmt.Errorf("select files in %s: untracked: %w", dir, err)
		}
		if n == 0 {
			s.warnf("untracked: no files")
		}
	}
	return s.set(), nil
}

// cleanPatterns checks patterns and returns them cleaned, slash-separated
// and relative to the workspace. field names them in errors.
func cleanPatterns(field string, patterns []string) ([]string, error) {
	clean := make([]string, len(patterns))
	for i, raw := range patterns {
		p, err := cleanPattern(raw)
		if err != nil {
			return nil, fmt.Errorf("%s: %q: %w", field, raw, err)
		}
		clean[i] = p
	}
	return clean, nil
}

// cleanPattern checks one pattern and returns it cleaned.
func cleanPattern(raw string) (string, error) {
	switch {
	case raw == "":
		return "", fmt.Errorf("%w: empty", ErrBadPattern)
	case strings.IndexByte(raw, 0) >= 0:
		return "", fmt.Errorf("%w: it holds a NUL byte", ErrBadPattern)
	case strings.HasPrefix(raw, "/") || filepath.IsAbs(raw) || filepath.VolumeName(raw) != "":
		return "", fmt.Errorf("%w: the path is absolute; give it relative to the workspace", ErrOutsideWorkspace)
	}
	p := path.Clean(filepath.ToSlash(raw))
	if p == ".." || strings.HasPrefix(p, "../") {
		if p != raw {
			return "", fmt.Errorf("%w: it leads to %q", ErrOutsideWorkspace, p)
		}
		return "", ErrOutsideWorkspace
	}
	if !doublestar.ValidatePattern(p) {
		return "", fmt.Errorf("%w: not a valid glob", ErrBadPattern)
	}
	return p, nil
}

// hasMeta reports whether a cleaned pattern is more than a plain path.
func hasMeta(p string) bool {
	return strings.ContainsAny(p, `*?[{\`)
}

// selector is the state of one Select.
type selector struct {
	ctx      context.Context
	root     *os.Root
	exclude  []string
	picked   map[string]Entry
	skipped  map[string]bool // symlinks and special files warned about
	warnings []string
}

func (s *selector) warnf(format string, args ...any) {
	s.warnings = append(s.warnings, fmt.Sprintf(format, args...))
}

// excluded reports whether an Exclude pattern matches name.
func (s *selector) excluded(name string) bool {
	for _, p := range s.exclude {
		if p == "." || doublestar.MatchUnvalidated(p, name) {
			return true
		}
	}
	return false
}

// addPattern selects what the cleaned pattern p matches and returns how
// many paths matched (a directory counting once).
func (s *selector) addPattern(p string) (int, error) {
	if p == "." {
		return s.walk(".", func(name string, _ fs.DirEntry) bool { return true }, 0)
	}
	if !hasMeta(p) {
		// A plain path: it alone, or everything below it for a directory.
		ok, err := s.realDirs(p, false)
		if !ok || err != nil {
			return 0, err
		}
		return s.walk(p, func(name string, _ fs.DirEntry) bool { return name == p }, 0)
	}
	base, _ := doublestar.SplitPattern(p)
	ok, err := s.realDirs(base, true)
	if !ok || err != nil {
		return 0, err
	}
	// Without ** (and alternatives, which may hold slashes), a pattern
	// matches nothing deeper than it has components.
	depth := 0
	if !strings.Contains(p, "**") && !strings.Contains(p, "{") {
		depth = strings.Count(p, "/") + 1
	}
	return s.walk(base, func(name string, _ fs.DirEntry) bool {
		return doublestar.MatchUnvalidated(p, name)
	}, depth)
}

// addUntracked selects every file and symlink tracked does not report, and
// returns how many.
func (s *selector) addUntracked(tracked func(string) bool) (int, error) {
	return s.walk(".", func(name string, d fs.DirEntry) bool {
		return !d.IsDir() && (tracked == nil || !tracked(name))
	}, -1)
}

// realDirs reports whether every directory above name is a directory, not
// a symlink to one or missing; with isDir name must be a real directory
// too. "." is one.
func (s *selector) realDirs(name string, isDir bool) (bool, error) {
	if name == "." {
		return true, nil
	}
	parts := strings.Split(name, "/")
	if !isDir {
		parts = parts[:len(parts)-1]
	}
	for i := range parts {
		info, err := s.root.Lstat(strings.Join(parts[:i+1], "/"))
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if !info.IsDir() {
			return false, nil
		}
	}
	return true, nil
}

// walk walks the tree at start, without following symlinks and skipping
// excluded paths, and selects every path match reports, with everything
// below it for a directory. It returns how many paths match reported. When
// depth > 0, a directory depth or more components deep that match does not
// report is not entered; depth < 0 skips ".git" directories (for untracked
// files). A directory that cannot be read is skipped with a warning.
func (s *selector) walk(start string, match func(name string, d fs.DirEntry) bool, depth int) (int, error) {
	matched := 0
	under := "" // the selected directory being walked, with a slash
	visit := func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrPermission) && name != start {
				s.warnf("%q: skipped: %v", name, err)
				return fs.SkipDir
			}
			return err
		}
		if err := s.ctx.Err(); err != nil {
			return err
		}
		if name == "." {
			return nil
		}
		if !utf8.ValidString(name) {
			// Neither os.Root's file system nor Unpack takes such a name.
			s.warnf("%q: skipped: the name is not valid UTF-8", name)
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if s.excluded(name) {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if under != "" && !strings.HasPrefix(name, under) {
			under = ""
		}
		if under == "" {
			if depth < 0 && d.IsDir() && d.Name() == ".git" {
				return fs.SkipDir
			}
			if !match(name, d) {
				if d.IsDir() && depth > 0 && strings.Count(name, "/")+1 >= depth {
					return fs.SkipDir
				}
				return nil
			}
			matched++
			if d.IsDir() {
				under = name + "/"
			}
		}
		return s.add(name, d)
	}
	// A directory excluded leaves out everything below it.
	for i := range len(start) {
		if start[i] == '/' && s.excluded(start[:i]) {
			return 0, nil
		}
	}
	// fs.WalkDir follows start when it is a symlink: look at it first.
	info, err := s.root.Lstat(start)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err == nil && !info.IsDir() {
		err = visit(start, fs.FileInfoToDirEntry(info), nil)
	} else if err == nil {
		err = fs.WalkDir(s.root.FS(), start, visit)
	}
	if errors.Is(err, fs.SkipDir) {
		err = nil
	}
	if err != nil {
		return matched, fmt.Errorf("walk %s: %w", start, err)
	}
	return matched, nil
}

// add selects the path name.
func (s *selector) add(name string, d fs.DirEntry) error {
	if _, ok := s.picked[name]; ok || s.skipped[name] {
		return nil
	}
	switch typ := d.Type(); {
	case typ.IsDir():
		s.picked[name] = Entry{Name: name, Mode: fs.ModeDir | 0o755}
	case typ.IsRegular():
		info, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed meanwhile
		}
		if err != nil {
			return err
		}
		if !info.Mode().IsRegular() {
			return nil // replaced meanwhile
		}
		s.picked[name] = Entry{Name: name, Mode: fileMode(info.Mode()), Size: info.Size()}
	case typ&fs.ModeSymlink != 0:
		target, err := s.root.Readlink(name)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := checkTarget(name, target); err != nil {
			s.skipped[name] = true
			s.warnf("%q: skipped: %v", name, err)
			return nil
		}
		s.picked[name] = Entry{Name: name, Mode: fs.ModeSymlink | 0o777, Target: target}
	default:
		s.skipped[name] = true
		s.warnf("%q: skipped: a %s is neither a file, a directory nor a symlink", name, typeName(typ))
	}
	return nil
}

// fileMode returns the mode an archive gives a file of mode m: 0755 when
// its owner may run it, 0644 otherwise.
func fileMode(m fs.FileMode) fs.FileMode {
	if m&0o100 != 0 {
		return 0o755
	}
	return 0o644
}

func typeName(typ fs.FileMode) string {
	switch {
	case typ&fs.ModeSocket != 0:
		return "socket"
	case typ&fs.ModeNamedPipe != 0:
		return "fifo"
	case typ&fs.ModeDevice != 0:
		return "device"
	}
	return "special file"
}

// checkTarget checks the target of the symlink name by its shape alone: it
// must be relative, and may start with ".." components that climb no higher
// than the workspace, but have none after a name (whose meaning would
// depend on what that name is when the archive is unpacked).
func checkTarget(name, target string) error {
	switch {
	case target == "":
		return errors.New("the symlink has an empty target")
	case strings.IndexByte(target, 0) >= 0:
		return errors.New("the symlink's target holds a NUL byte")
	case strings.HasPrefix(target, "/") || filepath.IsAbs(target) || filepath.VolumeName(target) != "":
		return fmt.Errorf("the symlink's target %q is absolute", target)
	}
	up, descending := 0, false
	for c := range strings.SplitSeq(target, "/") {
		switch {
		case c == "" || c == ".":
		case c == ".." && descending:
			return fmt.Errorf(`the symlink's target %q has ".." after a name`, target)
		case c == "..":
			up++
		default:
			descending = true
		}
	}
	if up > strings.Count(name, "/") {
		return fmt.Errorf("the symlink's target %q leads outside the workspace", target)
	}
	return nil
}

// set returns what was picked as a Set, leaving out the symlinks that loop
// through the picked symlinks.
func (s *selector) set() *Set {
	links := map[string]string{}
	for name, e := range s.picked {
		if e.Mode&fs.ModeSymlink != 0 {
			links[name] = e.Target
		}
	}
	for _, name := range slices.Sorted(maps.Keys(links)) {
		hops := 0
		if _, ok := resolve(links, parentOf(name), links[name], &hops); !ok {
			delete(s.picked, name)
			s.warnf("%q: skipped: the symlink goes through more than %d symlinks", name, maxLinkHops)
		}
	}
	set := &Set{Entries: make([]Entry, 0, len(s.picked)), Warnings: s.warnings}
	for _, e := range s.picked {
		set.Entries = append(set.Entries, e)
		set.Bytes += e.Size
	}
	slices.SortFunc(set.Entries, func(a, b Entry) int { return strings.Compare(a.Name, b.Name) })
	return set
}

// resolve follows the target of a symlink in the directory pos, which
// checkTarget accepted, through the symlinks links (all accepted too), and
// returns where it leads; false means it goes through more than
// maxLinkHops symlinks.
func resolve(links map[string]string, pos []string, target string, hops *int) ([]string, bool) {
	pos = slices.Clone(pos)
	for c := range strings.SplitSeq(target, "/") {
		switch c {
		case "", ".":
		case "..":
			pos = pos[:len(pos)-1] // checkTarget bounds the climb
		default:
			next := append(pos, c)
			to, isLink := links[strings.Join(next, "/")]
			if !isLink {
				pos = next
				continue
			}
			*hops++
			if *hops > maxLinkHops {
				return nil, false
			}
			var ok bool
			if pos, ok = resolve(links, pos, to, hops); !ok {
				return nil, false
			}
		}
	}
	return pos, true
}

// parentOf returns the components of name's parent directory.
func parentOf(name string) []string {
	parts := strings.Split(name, "/")
	return parts[:len(parts)-1]
}
