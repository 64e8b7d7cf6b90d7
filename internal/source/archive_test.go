package source

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"testing"
)

// entry is one entry of a test archive.
type entry struct {
	hdr  tar.Header
	body string
}

func file(name, body string) entry {
	return entry{tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(body))}, body}
}

func execFile(name, body string) entry {
	e := file(name, body)
	e.hdr.Mode = 0o755
	return e
}

func dir(name string) entry {
	return entry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755}}
}

func symlink(name, target string) entry {
	return entry{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777}}
}

func special(typ byte, name, link string) entry {
	return entry{hdr: tar.Header{Typeflag: typ, Name: name, Linkname: link, Mode: 0o644}}
}

// tarball returns the entries as a tar archive, uncompressed.
func tarball(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
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
	return buf.Bytes()
}

// gzipped compresses b.
func gzipped(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	if _, err := gz.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// archive returns the entries as a gzip-compressed tar archive.
func archive(t testing.TB, entries ...entry) []byte {
	t.Helper()
	return gzipped(t, tarball(t, entries...))
}

// unsafeArchives are archives Extract and NewFS must refuse, with the error
// each must match.
var unsafeArchives = []struct {
	name    string
	entries []entry
	want    error
}{
	{"absolute file", []entry{file("/etc/evil", "x")}, ErrUnsafePath},
	{"absolute dir", []entry{dir("/tmp/")}, ErrUnsafePath},
	{"dotdot file", []entry{file("../evil", "x")}, ErrUnsafePath},
	{"dotdot inside", []entry{file("a/../../evil", "x")}, ErrUnsafePath},
	{"dotdot staying inside", []entry{file("a/../b", "x")}, ErrUnsafePath},
	{"dotdot dir", []entry{dir("../")}, ErrUnsafePath},
	{"dotdot symlink name", []entry{symlink("../l", "x")}, ErrUnsafePath},
	{"unclean name", []entry{file("a//b", "x")}, ErrUnsafePath},
	{"file as root", []entry{file(".", "x")}, ErrUnsafePath},
	{"file through symlink", []entry{symlink("l", "sub"), dir("sub/"), file("l/evil", "x")}, ErrUnsafePath},
	{"file through symlink to dot", []entry{symlink("l", "."), file("l/evil", "x")}, ErrUnsafePath},
	{"dir through symlink", []entry{symlink("l", "."), dir("l/d/")}, ErrUnsafePath},
	{"symlink below symlink", []entry{symlink("l", "."), symlink("l/m", "x")}, ErrUnsafePath},
	{"file below file", []entry{file("f", "x"), file("f/g", "y")}, ErrUnsafePath},
	{"file twice", []entry{file("f", "x"), file("f", "y")}, ErrUnsafePath},
	{"symlink replacing file", []entry{file("f", "x"), symlink("f", "/etc/passwd")}, ErrUnsafePath},
	{"symlink replacing dir", []entry{file("d/f", "x"), symlink("d", ".")}, ErrUnsafePath},
	{"dir replacing file", []entry{file("f", "x"), dir("f/")}, ErrUnsafePath},
	{"symlink absolute", []entry{symlink("l", "/etc/passwd")}, ErrUnsafePath},
	{"symlink to root", []entry{symlink("l", "/")}, ErrUnsafePath},
	{"symlink parent", []entry{symlink("l", "..")}, ErrUnsafePath},
	{"symlink escaping", []entry{symlink("a/b/l", "../../../x")}, ErrUnsafePath},
	{"symlink out and back in", []entry{symlink("a/l", "../../work/a")}, ErrUnsafePath},
	{"symlink empty target", []entry{symlink("l", "")}, ErrUnsafePath},
	{"symlink chain escaping", []entry{symlink("a", "."), symlink("l", "a/..")}, ErrUnsafePath},
	{"symlink chain escaping reversed", []entry{symlink("l", "a/.."), symlink("a", ".")}, ErrUnsafePath},
	{"symlink to escaping symlink", []entry{symlink("a", "b"), symlink("b", "../x")}, ErrUnsafePath},
	{"symlink dotdot after unknown", []entry{symlink("l", "nothing/../..")}, ErrUnsafePath},
	{"symlink dotdot after file", []entry{file("f", "x"), symlink("l", "f/..")}, ErrUnsafePath},
	{"symlink loop", []entry{symlink("a", "b"), symlink("b", "a")}, ErrUnsafePath},
	{"hard link", []entry{file("f", "x"), special(tar.TypeLink, "h", "f")}, ErrUnsupportedEntry},
	{"hard link outside", []entry{special(tar.TypeLink, "h", "/etc/passwd")}, ErrUnsupportedEntry},
	{"char device", []entry{special(tar.TypeChar, "dev", "")}, ErrUnsupportedEntry},
	{"block device", []entry{special(tar.TypeBlock, "dev", "")}, ErrUnsupportedEntry},
	{"fifo", []entry{special(tar.TypeFifo, "fifo", "")}, ErrUnsupportedEntry},
}

func TestCheckName(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		raw  string
		want string
		root bool
		err  bool
	}{
		{raw: "a", want: "a"},
		{raw: "a/b/", want: "a/b"},
		{raw: "./a/b", want: "a/b"},
		{raw: "././a", want: "a"},
		{raw: ".", root: true},
		{raw: "./", root: true},
		{raw: "a..b", want: "a..b"},
		{raw: "..a", want: "..a"},
		{raw: "", err: true},
		{raw: "/", err: true},
		{raw: "/a", err: true},
		{raw: "..", err: true},
		{raw: "a/..", err: true},
		{raw: "a/../b", err: true},
		{raw: "a/./b", err: true},
		{raw: "a//b", err: true},
		{raw: "a\x00b", err: true},
	} {
		name, root, err := checkName(tc.raw)
		if tc.err {
			if !errors.Is(err, ErrUnsafePath) {
				t.Errorf("checkName(%q) = %q, %v, %v; want ErrUnsafePath", tc.raw, name, root, err)
			}
			continue
		}
		if err != nil || name != tc.want || root != tc.root {
			t.Errorf("checkName(%q) = %q, %v, %v; want %q, %v, nil", tc.raw, name, root, err, tc.want, tc.root)
		}
	}
}
