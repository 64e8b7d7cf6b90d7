package workspace

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// node is one file, directory or symlink of a test tree.
type node struct {
	name   string
	body   string
	exec   bool
	dir    bool
	target string // a symlink's
}

func file(name, body string) node     { return node{name: name, body: body} }
func execFile(name, body string) node { return node{name: name, body: body, exec: true} }
func dir(name string) node            { return node{name: name, dir: true} }
func symlink(name, target string) node {
	return node{name: name, target: target}
}

// makeTree creates the nodes below root, with their parent directories.
func makeTree(t testing.TB, root string, nodes ...node) {
	t.Helper()
	for _, n := range nodes {
		p := filepath.Join(root, filepath.FromSlash(n.name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		switch {
		case n.dir:
			err = os.MkdirAll(p, 0o755)
		case n.target != "":
			err = os.Symlink(n.target, p)
		default:
			perm := fs.FileMode(0o644)
			if n.exec {
				perm = 0o755
			}
			err = os.WriteFile(p, []byte(n.body), perm)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// names returns the names of the set's entries.
func names(set *Set) []string {
	var out []string
	for _, e := range set.Entries {
		out = append(out, e.Name)
	}
	return out
}

// sandbox returns a workspace, work, inside a parent that also holds a
// file outside it; checkSandbox checks that nothing but work appeared or
// changed there.
func sandbox(t testing.TB) (parent, work string) {
	t.Helper()
	parent = t.TempDir()
	work = filepath.Join(parent, "work")
	if err := os.WriteFile(filepath.Join(parent, "outside"), []byte("untouched"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(work, 0o755); err != nil {
		t.Fatal(err)
	}
	return parent, work
}

func checkSandbox(t testing.TB, parent string) {
	t.Helper()
	entries, err := os.ReadDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if !slices.Equal(got, []string{"outside", "work"}) {
		t.Errorf("next to the workspace: %v, want only outside and work", got)
	}
	if b, err := os.ReadFile(filepath.Join(parent, "outside")); err != nil || string(b) != "untouched" {
		t.Errorf("the file outside the workspace changed: %q, %v", b, err)
	}
	// Every symlink in the workspace must lead inside it.
	work := filepath.Join(parent, "work")
	realWork, err := filepath.EvalSymlinks(work)
	if err != nil {
		t.Fatal(err)
	}
	filepath.WalkDir(work, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink == 0 {
			return nil
		}
		to, err := filepath.EvalSymlinks(p)
		if err != nil {
			return nil // dangling, or a loop
		}
		if rel, err := filepath.Rel(realWork, to); err != nil || !filepath.IsLocal(rel) && rel != "." {
			t.Errorf("symlink %s leads outside the workspace, to %s", p, to)
		}
		return nil
	})
}

// entry is one entry of a hand-made archive.
type entry struct {
	hdr  tar.Header
	body string
}

func tarFile(name, body string) entry {
	return entry{tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(body))}, body}
}

func tarDir(name string) entry {
	return entry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755}}
}

func tarSymlink(name, target string) entry {
	return entry{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777}}
}

func tarSpecial(typ byte, name, link string) entry {
	return entry{hdr: tar.Header{Typeflag: typ, Name: name, Linkname: link, Mode: 0o644}}
}

// archive returns the entries as a gzip-compressed tar archive.
func archive(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		hdr := e.hdr
		if err := tw.WriteHeader(&hdr); err != nil {
			t.Fatalf("write header %q: %v", hdr.Name, err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatalf("write %q: %v", hdr.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// readFile returns the contents of name below root, or "<error>".
func readFile(t testing.TB, root, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(name)))
	if err != nil {
		return "<" + strings.TrimPrefix(err.Error(), root) + ">"
	}
	return string(b)
}
