package source

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sandbox returns a directory to extract into, work, inside a parent that
// also holds a file outside work; checkSandbox checks that nothing but work
// appeared or changed there.
func sandbox(t testing.TB) (parent, work string) {
	t.Helper()
	parent = t.TempDir()
	if err := os.WriteFile(filepath.Join(parent, "outside"), []byte("untouched"), 0o644); err != nil {
		t.Fatal(err)
	}
	return parent, filepath.Join(parent, "work")
}

func checkSandbox(t testing.TB, parent string) {
	t.Helper()
	entries, err := os.ReadDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != "outside" && e.Name() != "work" {
			t.Errorf("%s appeared next to the workspace", e.Name())
		}
	}
	b, err := os.ReadFile(filepath.Join(parent, "outside"))
	if err != nil || string(b) != "untouched" {
		t.Errorf("the file outside the workspace changed: %q, %v", b, err)
	}
	// Every symlink in the workspace must lead inside it.
	work := filepath.Join(parent, "work")
	realWork, err := filepath.EvalSymlinks(work)
	if err != nil {
		return // nothing extracted
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

func TestExtractRefusesUnsafeArchives(t *testing.T) {
	t.Parallel()
	for _, tc := range unsafeArchives {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			parent, work := sandbox(t)
			err := Extract(t.Context(), bytes.NewReader(archive(t, tc.entries...)), work, Limits{})
			if !errors.Is(err, tc.want) {
				t.Fatalf("Extract = %v, want %v", err, tc.want)
			}
			// The error names the entry it refuses.
			if !strings.Contains(err.Error(), `"`) {
				t.Errorf("error %q names no entry", err)
			}
			checkSandbox(t, parent)
		})
	}
}

func TestExtract(t *testing.T) {
	t.Parallel()
	parent, work := sandbox(t)
	src := archive(t,
		dir("./"),
		file("./README", "hello"),
		execFile("bin/run.sh", "#!/bin/sh\n"),
		dir("empty/"),
		dir("bin/"), // again, after it was implied
		symlink("docs/readme", "../README"),
		symlink("node_modules/.bin/tool", "../tool/bin/tool.js"),
		file("node_modules/tool/bin/tool.js", "js"),
		symlink("bin/self", "."),
		symlink("chain", "bin/self/self/run.sh"),
		symlink("dangling", "not/there"),
		entry{hdr: tar.Header{Typeflag: tar.TypeXGlobalHeader, Name: "pax_global_header", PAXRecords: map[string]string{"comment": "abc"}}},
	)
	if err := Extract(t.Context(), bytes.NewReader(src), work, Limits{}); err != nil {
		t.Fatal(err)
	}
	checkSandbox(t, parent)
	for name, want := range map[string]string{
		"README":                        "hello",
		"docs/readme":                   "hello",
		"bin/run.sh":                    "#!/bin/sh\n",
		"chain":                         "#!/bin/sh\n",
		"node_modules/.bin/tool":        "js",
		"node_modules/tool/bin/tool.js": "js",
	} {
		if b, err := os.ReadFile(filepath.Join(work, name)); err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", name, b, err, want)
		}
	}
	for name, exec := range map[string]bool{"README": false, "bin/run.sh": true} {
		info, err := os.Stat(filepath.Join(work, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := info.Mode()&0o100 != 0; got != exec {
			t.Errorf("%s: mode %v, want executable %v", name, info.Mode(), exec)
		}
	}
	if info, err := os.Lstat(filepath.Join(work, "empty")); err != nil || !info.IsDir() {
		t.Errorf("empty: %v, %v; want a directory", info, err)
	}
	if target, err := os.Readlink(filepath.Join(work, "dangling")); err != nil || target != "not/there" {
		t.Errorf("dangling -> %q, %v", target, err)
	}
}

func TestExtractDirectory(t *testing.T) {
	t.Parallel()
	src := archive(t, file("a", "x"))
	for _, tc := range []struct {
		name    string
		prepare func(t *testing.T, dir string)
		ok      bool
	}{
		{"missing", func(*testing.T, string) {}, true},
		{"empty", func(t *testing.T, dir string) { mkdir(t, dir) }, true},
		{"not empty", func(t *testing.T, dir string) { writeTestFile(t, filepath.Join(dir, "old"), "old", 0o644) }, false},
		{"a file", func(t *testing.T, dir string) { writeTestFile(t, dir, "x", 0o644) }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "a", "work")
			tc.prepare(t, dir)
			err := Extract(t.Context(), bytes.NewReader(src), dir, Limits{})
			if (err == nil) != tc.ok {
				t.Fatalf("Extract = %v, want ok %v", err, tc.ok)
			}
		})
	}
}

func TestLimits(t *testing.T) {
	t.Parallel()
	// 10 MiB of zeros compress to about 10 KiB.
	bomb := archive(t, file("zeros", strings.Repeat("\x00", 10<<20)))
	trailing := func(n int) []byte {
		return gzipped(t, append(tarball(t, file("a", "x")), make([]byte, n)...))
	}
	three := archive(t, file("a", "1234"), file("b/c", "1234"), symlink("d", "a"))
	// names and targets count: a, b/c, d, and the target a.
	const threeBytes = 4 + 4 + 1 + 3 + 1 + 1
	for _, tc := range []struct {
		name   string
		src    []byte
		limits Limits
		want   error
	}{
		{"bomb", bomb, Limits{MaxBytes: 1 << 20}, ErrTooLarge},
		{"bomb default", bomb, Limits{}, nil},
		{"padding after the end", trailing(9 << 10), Limits{}, nil},
		{"bomb after the end", trailing(10 << 20), Limits{MaxBytes: 1 << 20}, ErrTooLarge},
		{"bytes at limit", three, Limits{MaxBytes: threeBytes}, nil},
		{"bytes over limit", three, Limits{MaxBytes: threeBytes - 1}, ErrTooLarge},
		{"files at limit", three, Limits{MaxFiles: 3}, nil},
		{"files over limit", three, Limits{MaxFiles: 2}, ErrTooManyFiles},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			parent, work := sandbox(t)
			err := Extract(t.Context(), bytes.NewReader(tc.src), work, tc.limits)
			if !errors.Is(err, tc.want) || (err == nil) != (tc.want == nil) {
				t.Errorf("Extract = %v, want %v", err, tc.want)
			}
			checkSandbox(t, parent)
			_, err = NewFS(t.Context(), bytes.NewReader(tc.src), tc.limits)
			if !errors.Is(err, tc.want) || (err == nil) != (tc.want == nil) {
				t.Errorf("NewFS = %v, want %v", err, tc.want)
			}
		})
	}
	if err := (Limits{MaxFiles: -1}).Validate(); err == nil || !strings.Contains(err.Error(), "MaxFiles") {
		t.Errorf("Validate of a negative MaxFiles = %v", err)
	}
}

func TestExtractRefusesGarbage(t *testing.T) {
	t.Parallel()
	for name, src := range map[string][]byte{
		"empty":             nil,
		"not gzip":          []byte("hello"),
		"not tar":           gzipped(t, bytes.Repeat([]byte("hello"), 200)),
		"truncated":         archive(t, file("a", strings.Repeat("x", 4096)))[:100],
		"truncated trailer": gzipped(t, tarball(t, file("a", "x")))[:60],
	} {
		parent, work := sandbox(t)
		if err := Extract(t.Context(), bytes.NewReader(src), work, Limits{}); err == nil {
			t.Errorf("%s: Extract succeeded", name)
		}
		checkSandbox(t, parent)
	}
}

func TestExtractCanceled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, work := sandbox(t)
	err := Extract(ctx, bytes.NewReader(archive(t, file("a", "x"))), work, Limits{})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Extract = %v, want context.Canceled", err)
	}
}

// FuzzExtract extracts tar archives of random bytes: Extract must not panic
// nor write anything outside its directory, nor leave a symlink leading out.
func FuzzExtract(f *testing.F) {
	f.Add(tarball(f, file("a", "x"), execFile("b/c", "y"), symlink("d", "b/c"), dir("e/")))
	f.Add(tarball(f, symlink("a", "."), symlink("l", "a/..")))
	for _, tc := range unsafeArchives {
		f.Add(tarball(f, tc.entries...))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		parent, work := sandbox(t)
		src, limits := gzipped(t, raw), Limits{MaxBytes: 1 << 20, MaxFiles: 100}
		extractErr := Extract(t.Context(), bytes.NewReader(src), work, limits)
		checkSandbox(t, parent)
		fsys, fsErr := NewFS(t.Context(), bytes.NewReader(src), limits)
		if fsErr != nil {
			if extractErr == nil {
				t.Fatalf("Extract accepted an archive NewFS refuses: %v", fsErr)
			}
			return
		}
		// Everything NewFS holds can be walked and read.
		err := fs.WalkDir(fsys, ".", func(name string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.Type().IsRegular() {
				_, err = fs.ReadFile(fsys, name)
			}
			return err
		})
		if err != nil {
			t.Fatalf("walk the FS: %v", err)
		}
	})
}

func mkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}

func writeTestFile(t *testing.T, name, body string, perm fs.FileMode) {
	t.Helper()
	mkdir(t, filepath.Dir(name))
	if err := os.WriteFile(name, []byte(body), perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(name, perm); err != nil { // whatever the umask
		t.Fatal(err)
	}
}
