package source

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestNames(t *testing.T) {
	t.Parallel()
	src := archive(t,
		dir("./"),
		file("b", "b"),
		execFile("a/run.sh", "#!/bin/sh\n"),
		dir("empty/"),
		symlink("a/link", "run.sh"),
		file("a.txt", "x"),
	)
	got, err := Names(t.Context(), bytes.NewReader(src), Limits{})
	if want := []string{"a.txt", "a/link", "a/run.sh", "b"}; err != nil || !slices.Equal(got, want) {
		t.Errorf("Names = %q, %v; want %q", got, err, want)
	}
	for _, tc := range unsafeArchives {
		if _, err := Names(t.Context(), bytes.NewReader(archive(t, tc.entries...)), Limits{}); !errors.Is(err, tc.want) {
			t.Errorf("%s: Names = %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := Names(t.Context(), bytes.NewReader(src), Limits{MaxFiles: 2}); !errors.Is(err, ErrTooManyFiles) {
		t.Errorf("Names over MaxFiles = %v, want ErrTooManyFiles", err)
	}
}

// workspace returns a sandbox whose work directory holds a source tree.
func workspace(t testing.TB) (parent, work string) {
	t.Helper()
	parent, work = sandbox(t)
	src := archive(t,
		file("keep", "source"),
		file("out/a", "old a"),
		file("target", "target"),
		symlink("out/b", "../target"),
		file("real/y", "y"),
		symlink("lib", "real"),
		dir("was-dir/"),
		file("was-file", "file"),
		file("full/f", "f"),
	)
	if err := Extract(t.Context(), bytes.NewReader(src), work, Limits{}); err != nil {
		t.Fatal(err)
	}
	return parent, work
}

func TestMerge(t *testing.T) {
	t.Parallel()
	parent, work := workspace(t)
	src := archive(t,
		file("out/a", "new a"),
		execFile("out/b", "new b"),
		file("lib/x", "x"),
		file("was-dir", "now a file"),
		dir("was-file/"),
		symlink("new/link", "../keep"),
		symlink("target", "keep"),
		file("new/deep/f", "f"),
	)
	stats, err := Merge(t.Context(), bytes.NewReader(src), work, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if want := (MergeStats{Files: 5, Dirs: 5, Symlinks: 2, Bytes: 5 + 5 + 1 + 10 + 1}); stats != want {
		t.Errorf("stats = %+v, want %+v", stats, want)
	}
	checkSandbox(t, parent)
	for name, want := range map[string]string{
		"keep": "source", "out/a": "new a", "out/b": "new b", "lib/x": "x", "real/y": "y",
		"was-dir": "now a file", "new/link": "source", "target": "source", "new/deep/f": "f", "full/f": "f",
	} {
		if b, err := os.ReadFile(filepath.Join(work, name)); err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", name, b, err, want)
		}
	}
	for name, want := range map[string]fs.FileMode{
		"out/b": 0, "lib": fs.ModeDir, "was-file": fs.ModeDir, "target": fs.ModeSymlink, "new/link": fs.ModeSymlink,
	} {
		info, err := os.Lstat(filepath.Join(work, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := info.Mode().Type(); got != want {
			t.Errorf("%s is %v, want %v", name, got, want)
		}
		if name == "out/b" && info.Mode()&0o100 == 0 {
			t.Errorf("out/b lost its executable bit: %v", info.Mode())
		}
	}
	if _, err := os.Lstat(filepath.Join(work, "real", "x")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Merge wrote through the symlink lib: %v", err)
	}
}

func TestMergeConflicts(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		src  []byte
	}{
		{"file over a full directory", archive(t, file("full", "x"))},
		{"symlink over a full directory", archive(t, symlink("full", "keep"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			parent, work := workspace(t)
			if _, err := Merge(t.Context(), bytes.NewReader(tc.src), work, Limits{}); !errors.Is(err, fs.ErrExist) {
				t.Errorf("Merge = %v, want fs.ErrExist", err)
			}
			checkSandbox(t, parent)
			if b, err := os.ReadFile(filepath.Join(work, "full", "f")); err != nil || string(b) != "f" {
				t.Errorf("full/f = %q, %v", b, err)
			}
		})
	}
}

func TestMergeRefusesUnsafeArchives(t *testing.T) {
	t.Parallel()
	for _, tc := range unsafeArchives {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			parent, work := workspace(t)
			_, err := Merge(t.Context(), bytes.NewReader(archive(t, tc.entries...)), work, Limits{})
			if !errors.Is(err, tc.want) {
				t.Fatalf("Merge = %v, want %v", err, tc.want)
			}
			checkSandbox(t, parent)
		})
	}
}

func TestMergeErrors(t *testing.T) {
	t.Parallel()
	_, work := workspace(t)
	src := archive(t, file("a", "x"))
	if _, err := Merge(t.Context(), bytes.NewReader(src), filepath.Join(work, "missing"), Limits{}); err == nil {
		t.Error("Merge into a missing directory succeeded")
	}
	if _, err := Merge(t.Context(), bytes.NewReader(src), work, Limits{MaxBytes: -1}); err == nil {
		t.Error("Merge with negative limits succeeded")
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := Merge(ctx, bytes.NewReader(src), work, Limits{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Merge = %v, want context.Canceled", err)
	}
}

// FuzzMerge merges tar archives of random bytes into a workspace: Merge must
// not panic nor write anything outside it, nor leave a symlink leading out.
func FuzzMerge(f *testing.F) {
	f.Add(tarball(f, file("out/a", "x"), execFile("lib/c", "y"), symlink("d", "lib/c"), dir("was-file/")))
	f.Add(tarball(f, file("full", "x"), symlink("lib", ".."), file("lib/x", "x")))
	for _, tc := range unsafeArchives {
		f.Add(tarball(f, tc.entries...))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		parent, work := workspace(t)
		Merge(t.Context(), bytes.NewReader(gzipped(t, raw)), work, Limits{MaxBytes: 1 << 20, MaxFiles: 100})
		checkSandbox(t, parent)
	})
}
