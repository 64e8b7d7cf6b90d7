package workspace

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hangar-ci/hangar/internal/source"
)

// pack selects sel in dir and packs it.
func pack(t testing.TB, dir string, sel Selection) ([]byte, *Set, Stats) {
	t.Helper()
	set, err := Select(t.Context(), dir, sel)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	stats, err := Pack(t.Context(), &buf, dir, set, 0)
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), set, stats
}

// isExec reports whether the owner may run the file name below root.
func isExec(t testing.TB, root, name string) bool {
	t.Helper()
	info, err := os.Lstat(filepath.Join(root, filepath.FromSlash(name)))
	if err != nil {
		t.Fatal(err)
	}
	return info.Mode()&0o100 != 0
}

func TestPackUnpack(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	makeTree(t, src,
		file("out/a.txt", "new a"),
		file("out/b.txt", "new b"),
		execFile("out/run.sh", "#!/bin/sh\necho hi\n"),
		file("out/deep/er/c.txt", "c"),
		dir("out/empty"),
		symlink("out/link", "a.txt"),
		symlink("out/up", "../out/deep"),
		file("lib/x.so", "elf"),
		file("was-dir", "now a file"),
		dir("was-file"),
		file("big", strings.Repeat("0123456789", 100_000)),
	)
	data, set, packed := pack(t, src, Selection{Paths: []string{"out", "lib", "was-dir", "was-file", "big"}})
	if want := (Stats{Files: 7, Dirs: 6, Symlinks: 2, Bytes: set.Bytes, ArchiveBytes: int64(len(data))}); packed != want {
		t.Errorf("Pack stats = %+v, want %+v", packed, want)
	}

	parent, work := sandbox(t)
	makeTree(t, work,
		file("keep.txt", "source"),
		file("out/a.txt", "old a, longer than the new one"),
		file("target.txt", "the target of a symlink"),
		symlink("out/b.txt", "../target.txt"),
		execFile("out/run.sh", "old"),
		file("real/y", "y"),
		symlink("lib", "real"),
		dir("was-dir"),
		file("was-file", "a file"),
	)
	unpacked, err := Unpack(t.Context(), bytes.NewReader(data), work, source.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if want := (Stats{Files: 7, Dirs: 6, Symlinks: 2, Bytes: set.Bytes, ArchiveBytes: int64(len(data))}); unpacked != want {
		t.Errorf("Unpack stats = %+v, want %+v", unpacked, want)
	}
	checkSandbox(t, parent)
	for name, want := range map[string]string{
		"keep.txt":          "source",
		"out/a.txt":         "new a",
		"out/b.txt":         "new b",
		"target.txt":        "the target of a symlink",
		"out/run.sh":        "#!/bin/sh\necho hi\n",
		"out/deep/er/c.txt": "c",
		"out/link":          "new a",
		"out/up/er/c.txt":   "c",
		"lib/x.so":          "elf",
		"real/y":            "y",
		"was-dir":           "now a file",
		"big":               strings.Repeat("0123456789", 100_000),
	} {
		if got := readFile(t, work, name); got != want {
			t.Errorf("%s = %.40q, want %.40q", name, got, want)
		}
	}
	for name, want := range map[string]bool{"out/run.sh": true, "out/a.txt": false, "out/b.txt": false} {
		if got := isExec(t, work, name); got != want {
			t.Errorf("%s executable = %v, want %v", name, got, want)
		}
	}
	for name, want := range map[string]fs.FileMode{
		"out/b.txt": 0, "lib": fs.ModeDir, "was-file": fs.ModeDir, "out/empty": fs.ModeDir, "out/link": fs.ModeSymlink,
	} {
		info, err := os.Lstat(filepath.Join(work, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := info.Mode().Type(); got != want {
			t.Errorf("%s is %v, want %v", name, got, want)
		}
	}
	if _, err := os.Lstat(filepath.Join(work, "real", "x.so")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Unpack wrote through the symlink lib: %v", err)
	}

	// Unpacking again changes nothing.
	if _, err := Unpack(t.Context(), bytes.NewReader(data), work, source.Limits{}); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, work, "out/a.txt"); got != "new a" {
		t.Errorf("out/a.txt = %q after a second Unpack", got)
	}
}

func TestPackIsATarGz(t *testing.T) {
	t.Parallel()
	tarPath, err := exec.LookPath("tar")
	if err != nil {
		t.Skip("no tar on PATH")
	}
	src := t.TempDir()
	makeTree(t, src,
		execFile("bin/app", "app"),
		file("a/"+strings.Repeat("long-name/", 20)+"f", "long"),
		symlink("bin/link", "app"),
	)
	data, _, _ := pack(t, src, Selection{Paths: []string{"."}})
	dst := t.TempDir()
	cmd := exec.Command(tarPath, "xzf", "-", "-C", dst)
	cmd.Stdin = bytes.NewReader(data)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tar xzf: %v: %s", err, out)
	}
	if got := readFile(t, dst, "bin/link"); got != "app" {
		t.Errorf("bin/link = %q", got)
	}
	if got := readFile(t, dst, "a/"+strings.Repeat("long-name/", 20)+"f"); got != "long" {
		t.Errorf("the long name = %q", got)
	}
	if !isExec(t, dst, "bin/app") {
		t.Error("bin/app lost its executable bit")
	}
}

func TestPackTooLarge(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	makeTree(t, src, file("a", "12345"), file("b", "67890"))
	set, err := Select(t.Context(), src, Selection{Paths: []string{"."}})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := Pack(t.Context(), &buf, src, set, 9); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Pack of 10 bytes with at most 9 = %v, want ErrTooLarge", err)
	}
	if buf.Len() != 0 {
		t.Errorf("Pack over the limit wrote %d bytes", buf.Len())
	}
	if _, err := Pack(t.Context(), &buf, src, set, 10); err != nil {
		t.Errorf("Pack of 10 bytes with at most 10 = %v", err)
	}

	// A file that grew since Select cannot make the archive exceed the limit.
	if err := os.WriteFile(filepath.Join(src, "b"), []byte("678901"), 0o644); err != nil {
		t.Fatal(err)
	}
	buf.Reset()
	if _, err := Pack(t.Context(), &buf, src, set, 10); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Pack of a file that grew past the limit = %v, want ErrTooLarge", err)
	}
	if _, err := Pack(t.Context(), &buf, src, set, -1); err == nil {
		t.Error("Pack with maxBytes -1 succeeded")
	}
}

func TestPackChanged(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		change func(dir string) error
	}{
		{"file removed", func(dir string) error { return os.Remove(filepath.Join(dir, "f")) }},
		{"file replaced by a symlink", func(dir string) error {
			if err := os.Remove(filepath.Join(dir, "f")); err != nil {
				return err
			}
			return os.Symlink("g", filepath.Join(dir, "f"))
		}},
		{"symlink retargeted", func(dir string) error {
			if err := os.Remove(filepath.Join(dir, "l")); err != nil {
				return err
			}
			return os.Symlink("../../etc/passwd", filepath.Join(dir, "l"))
		}},
		{"directory replaced by a symlink", func(dir string) error {
			if err := os.RemoveAll(filepath.Join(dir, "d")); err != nil {
				return err
			}
			return os.Symlink("..", filepath.Join(dir, "d"))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			src := t.TempDir()
			makeTree(t, src, file("f", "f"), file("g", "g"), symlink("l", "f"), file("d/x", "x"))
			set, err := Select(t.Context(), src, Selection{Paths: []string{"."}})
			if err != nil {
				t.Fatal(err)
			}
			if err := tc.change(src); err != nil {
				t.Fatal(err)
			}
			if _, err := Pack(t.Context(), io.Discard, src, set, 0); err == nil {
				t.Error("Pack succeeded")
			}
		})
	}
}

func TestPackRefusesHandMadeSets(t *testing.T) {
	t.Parallel()
	parent, work := sandbox(t)
	makeTree(t, work, file("f", "f"), symlink("out", "../outside"))
	for _, e := range []Entry{
		{Name: "../outside", Mode: 0o644, Size: 9},
		{Name: "/etc/passwd", Mode: 0o644},
		{Name: "out", Mode: fs.ModeSymlink | 0o777, Target: "../outside"},
		{Name: "out", Mode: 0o644, Size: 9},
	} {
		var buf bytes.Buffer
		if _, err := Pack(t.Context(), &buf, work, &Set{Entries: []Entry{e}}, 0); err == nil {
			t.Errorf("Pack of %+v succeeded", e)
		}
		if buf.Len() != 0 {
			t.Errorf("Pack of %+v wrote %d bytes", e, buf.Len())
		}
	}
	if got := readFile(t, parent, "outside"); got != "untouched" {
		t.Errorf("outside = %q", got)
	}
}

func TestPackCanceled(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	makeTree(t, src, file("f", "f"))
	set, err := Select(t.Context(), src, Selection{Paths: []string{"."}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := Pack(ctx, io.Discard, src, set, 0); !errors.Is(err, context.Canceled) {
		t.Errorf("Pack with a canceled context = %v", err)
	}
}

// TestSelectedSymlinksUnpack checks that whatever symlinks Select keeps,
// Unpack accepts, and the ones it skips Unpack would refuse.
func TestSelectedSymlinksUnpack(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	makeTree(t, src,
		file("d/e/f", "f"),
		symlink("a", "b"),
		symlink("b", "d/e/f"),
		symlink("d/e/up", "../../a"),
		symlink("d/e/self", "."),
		symlink("chain", "d/e/self/self/up"),
		symlink("through", "d/e/up"),
		symlink("dangling", "nothing/there"),
		symlink("l1", "d/e/l2/x"),
		symlink("d/e/l2", "../../l1"),
		symlink("out", "d/../.."),
	)
	data, set, _ := pack(t, src, Selection{Paths: []string{"."}})
	if got, want := names(set), []string{"a", "b", "chain", "d", "d/e", "d/e/f", "d/e/self", "d/e/up", "dangling", "through"}; !slices.Equal(got, want) {
		t.Errorf("Select picked %q, want %q", got, want)
	}
	if len(set.Warnings) != 3 {
		t.Errorf("warnings %q, want three (l1, l2, out)", set.Warnings)
	}
	if _, err := source.Names(t.Context(), bytes.NewReader(data), source.Limits{}); err != nil {
		t.Errorf("the archive is refused: %v", err)
	}
	parent, work := sandbox(t)
	if _, err := Unpack(t.Context(), bytes.NewReader(data), work, source.Limits{}); err != nil {
		t.Fatal(err)
	}
	checkSandbox(t, parent)
	if got := readFile(t, work, "chain"); got != "f" {
		t.Errorf("chain = %q", got)
	}

	// What Select skipped, Unpack refuses.
	for _, links := range [][]entry{
		{tarSymlink("l1", "d/e/l2/x"), tarSymlink("d/e/l2", "../../l1")},
		{tarSymlink("out", "d/../..")},
	} {
		if _, err := source.Names(t.Context(), bytes.NewReader(archive(t, links...)), source.Limits{}); !errors.Is(err, ErrUnsafePath) {
			t.Errorf("Names(%v) = %v, want ErrUnsafePath", links, err)
		}
	}
}

func TestUnpackRefusesHostileArchives(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		entries []entry
		want    error
	}{
		{"absolute", []entry{tarFile("/tmp/evil", "x")}, ErrUnsafePath},
		{"dotdot", []entry{tarFile("../outside", "x")}, ErrUnsafePath},
		{"dotdot inside", []entry{tarFile("a/../../outside", "x")}, ErrUnsafePath},
		{"dotdot directory", []entry{tarDir("../d/")}, ErrUnsafePath},
		{"absolute directory", []entry{tarDir("/tmp/d/")}, ErrUnsafePath},
		{"below a symlink", []entry{tarSymlink("l", "."), tarFile("l/evil", "x")}, ErrUnsafePath},
		{"below a symlink to outside", []entry{tarSymlink("l", ".."), tarFile("l/outside", "x")}, ErrUnsafePath},
		{"symlink to outside", []entry{tarSymlink("l", "../outside")}, ErrUnsafePath},
		{"symlink absolute", []entry{tarSymlink("l", "/etc/passwd")}, ErrUnsafePath},
		{"symlink chain to outside", []entry{tarSymlink("a", "."), tarSymlink("l", "a/..")}, ErrUnsafePath},
		{"symlink then file", []entry{tarSymlink("keep.txt", "../outside"), tarFile("keep.txt", "x")}, ErrUnsafePath},
		{"hard link", []entry{tarSpecial(tar.TypeLink, "h", "../outside")}, ErrUnsupportedEntry},
		{"device", []entry{tarSpecial(tar.TypeChar, "dev", "")}, ErrUnsupportedEntry},
		{"fifo", []entry{tarSpecial(tar.TypeFifo, "fifo", "")}, ErrUnsupportedEntry},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			parent, work := sandbox(t)
			makeTree(t, work, file("keep.txt", "source"))
			_, err := Unpack(t.Context(), bytes.NewReader(archive(t, tc.entries...)), work, source.Limits{})
			if !errors.Is(err, tc.want) {
				t.Fatalf("Unpack = %v, want %v", err, tc.want)
			}
			checkSandbox(t, parent)
			if got := readFile(t, work, "keep.txt"); got != "source" {
				t.Errorf("keep.txt = %q", got)
			}
		})
	}
}

func TestUnpackDoesNotFollowWorkspaceSymlinks(t *testing.T) {
	t.Parallel()
	parent, work := sandbox(t)
	// Symlinks a workspace should not have, but might.
	makeTree(t, work, symlink("esc", ".."), symlink("f", "../outside"))
	data := archive(t, tarFile("esc/outside", "evil"), tarFile("f", "evil"))
	if _, err := Unpack(t.Context(), bytes.NewReader(data), work, source.Limits{}); err != nil {
		t.Fatal(err)
	}
	checkSandbox(t, parent)
	if got := readFile(t, work, "esc/outside"); got != "evil" {
		t.Errorf("esc/outside = %q", got)
	}
}

func TestUnpackLimits(t *testing.T) {
	t.Parallel()
	_, work := sandbox(t)
	data := archive(t, tarFile("a", "12345"), tarFile("b", "67890"))
	if _, err := Unpack(t.Context(), bytes.NewReader(data), work, source.Limits{MaxBytes: 8}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Unpack over MaxBytes = %v, want ErrTooLarge", err)
	}
	if _, err := Unpack(t.Context(), bytes.NewReader(data), work, source.Limits{MaxFiles: 1}); !errors.Is(err, source.ErrTooManyFiles) {
		t.Errorf("Unpack over MaxFiles = %v, want ErrTooManyFiles", err)
	}
	if _, err := Unpack(t.Context(), strings.NewReader("not gzip"), work, source.Limits{}); err == nil {
		t.Error("Unpack of garbage succeeded")
	}
	if _, err := Unpack(t.Context(), bytes.NewReader(data), filepath.Join(work, "missing"), source.Limits{}); err == nil {
		t.Error("Unpack into a missing directory succeeded")
	}
}

func TestUnpackNonEmptyDirectoryInTheWay(t *testing.T) {
	t.Parallel()
	_, work := sandbox(t)
	makeTree(t, work, file("out/keep", "keep"))
	_, err := Unpack(t.Context(), bytes.NewReader(archive(t, tarFile("out", "x"))), work, source.Limits{})
	if !errors.Is(err, fs.ErrExist) || !strings.Contains(err.Error(), `"out"`) {
		t.Errorf("Unpack over a directory = %v, want fs.ErrExist naming out", err)
	}
	if got := readFile(t, work, "out/keep"); got != "keep" {
		t.Errorf("out/keep = %q", got)
	}
}
