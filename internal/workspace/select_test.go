package workspace

import (
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// fixture is the workspace Select's tests read: a source tree (tracked)
// and what a job made.
var fixture = []node{
	file("README.md", "readme"),
	file("src/main.go", "package main"),
	file("src/util.txt", "util"),
	file("docs/a.txt", "a"),
	file("docs/sub/b.txt", "b"),
	execFile("bin/app", "#!/bin/sh\n"),
	execFile("bin/tool", "#!/bin/sh\necho tool\n"),
	file("bin/sub/x", "x"),
	file("build/out.o", "object"),
	file("build/tmp/cache.txt", "cache"),
	file("build/tmp/deep/y.txt", "y"),
	file("notes.txt", "notes"),
	file(".git/config", "[core]"),
	dir("empty"),
	symlink("link-in", "docs/a.txt"),
	symlink("linkdir", "docs"),
	symlink("docs/up", "../src/main.go"),
	symlink("link-out", "../outside"),
	symlink("link-abs", "/etc/passwd"),
	symlink("link-dotdot", "docs/../src"),
	symlink("loop1", "loop2"),
	symlink("loop2", "loop1"),
}

// trackedFixture are the fixture's names that came with the source tree.
var trackedFixture = []string{"README.md", "src/main.go", "src/util.txt", "docs/a.txt", "docs/sub/b.txt"}

func TestSelect(t *testing.T) {
	t.Parallel()
	parent := t.TempDir()
	work := filepath.Join(parent, "work")
	makeTree(t, work, fixture...)
	makeTree(t, parent, file("outside", "secret"))
	tracked := func(name string) bool { return slices.Contains(trackedFixture, name) }

	for _, tc := range []struct {
		name     string
		sel      Selection
		want     []string
		warnings []string // substrings, one per warning, in order
		err      error
	}{
		{name: "nothing", sel: Selection{}, want: nil},
		{name: "plain file", sel: Selection{Paths: []string{"notes.txt"}}, want: []string{"notes.txt"}},
		{name: "file below", sel: Selection{Paths: []string{"docs/sub/b.txt"}}, want: []string{"docs/sub/b.txt"}},
		{name: "cleaned", sel: Selection{Paths: []string{"./src/../notes.txt"}}, want: []string{"notes.txt"}},
		{
			name: "directory",
			sel:  Selection{Paths: []string{"build"}},
			want: []string{"build", "build/out.o", "build/tmp", "build/tmp/cache.txt", "build/tmp/deep", "build/tmp/deep/y.txt"},
		},
		{
			name: "directory with slash",
			sel:  Selection{Paths: []string{"./build/tmp/"}},
			want: []string{"build/tmp", "build/tmp/cache.txt", "build/tmp/deep", "build/tmp/deep/y.txt"},
		},
		{name: "empty directory", sel: Selection{Paths: []string{"empty"}}, want: []string{"empty"}},
		{
			name: "double star",
			sel:  Selection{Paths: []string{"**/*.txt"}},
			want: []string{"build/tmp/cache.txt", "build/tmp/deep/y.txt", "docs/a.txt", "docs/sub/b.txt", "notes.txt", "src/util.txt"},
		},
		{
			name: "star in directory",
			sel:  Selection{Paths: []string{"bin/*"}},
			want: []string{"bin/app", "bin/sub", "bin/sub/x", "bin/tool"},
		},
		{
			name: "star directory",
			sel:  Selection{Paths: []string{"*/tmp"}},
			want: []string{"build/tmp", "build/tmp/cache.txt", "build/tmp/deep", "build/tmp/deep/y.txt"},
		},
		{
			name: "alternatives",
			sel:  Selection{Paths: []string{"{bin/app,build/out.o}"}},
			want: []string{"bin/app", "build/out.o"},
		},
		{
			name: "overlapping",
			sel:  Selection{Paths: []string{"build/tmp", "build/**/*.txt", "build/tmp/cache.txt"}},
			want: []string{"build/tmp", "build/tmp/cache.txt", "build/tmp/deep", "build/tmp/deep/y.txt"},
		},
		{
			name: "exclude file",
			sel:  Selection{Paths: []string{"bin"}, Exclude: []string{"bin/tool"}},
			want: []string{"bin", "bin/app", "bin/sub", "bin/sub/x"},
		},
		{
			name: "exclude directory glob",
			sel:  Selection{Paths: []string{"build"}, Exclude: []string{"build/t*"}},
			want: []string{"build", "build/out.o"},
		},
		{
			name: "exclude double star",
			sel:  Selection{Paths: []string{"build", "docs"}, Exclude: []string{"**/*.txt"}},
			want: []string{"build", "build/out.o", "build/tmp", "build/tmp/deep", "docs", "docs/sub", "docs/up"},
		},
		{
			name: "exclude with slash",
			sel:  Selection{Paths: []string{"build"}, Exclude: []string{"./build/tmp/"}},
			want: []string{"build", "build/out.o"},
		},
		{
			name:     "exclude a parent",
			sel:      Selection{Paths: []string{"build/tmp/cache.txt", "build/tmp/deep/*"}, Exclude: []string{"build/tmp"}},
			want:     nil,
			warnings: []string{"no matching files", "no matching files"},
		},
		{
			name:     "exclude everything matched",
			sel:      Selection{Paths: []string{"notes.txt"}, Exclude: []string{"*.txt"}},
			want:     nil,
			warnings: []string{`"notes.txt": no matching files`},
		},
		{
			name: "untracked",
			sel:  Selection{Untracked: true, Tracked: tracked},
			want: []string{"bin/app", "bin/sub/x", "bin/tool", "build/out.o", "build/tmp/cache.txt", "build/tmp/deep/y.txt",
				"docs/up", "link-in", "linkdir", "notes.txt"},
			warnings: []string{`"link-abs": skipped`, `"link-dotdot": skipped`, `"link-out": skipped`, `"loop`, `"loop`},
		},
		{
			name:     "untracked and excluded",
			sel:      Selection{Untracked: true, Tracked: tracked, Exclude: []string{"build", "bin/**", "link*", "loop*"}},
			want:     []string{"docs/up", "notes.txt"},
			warnings: []string{},
		},
		{
			name: "untracked without tracked files",
			sel:  Selection{Untracked: true, Exclude: []string{"{bin,build,link*,loop*}"}},
			want: []string{"README.md", "docs/a.txt", "docs/sub/b.txt", "docs/up", "notes.txt", "src/main.go", "src/util.txt"},
		},
		{
			name: "untracked and paths",
			sel:  Selection{Paths: []string{"docs"}, Untracked: true, Tracked: tracked, Exclude: []string{"b*", "link*", "loop*"}},
			want: []string{"docs", "docs/a.txt", "docs/sub", "docs/sub/b.txt", "docs/up", "notes.txt"},
		},
		{
			name:     "untracked finding nothing",
			sel:      Selection{Untracked: true, Tracked: func(string) bool { return true }},
			want:     nil,
			warnings: []string{"untracked: no files"},
		},
		{
			name: "whole workspace",
			sel:  Selection{Paths: []string{"."}, Exclude: []string{"b*", "docs", "src", "loop*", "link-*"}},
			want: []string{".git", ".git/config", "README.md", "empty", "linkdir", "notes.txt"},
		},
		{
			name:     "matching nothing",
			sel:      Selection{Paths: []string{"nothing/here", "*.none", "notes.txt"}},
			want:     []string{"notes.txt"},
			warnings: []string{`"nothing/here": no matching files`, `"*.none": no matching files`},
		},
		{name: "symlink", sel: Selection{Paths: []string{"link-in"}}, want: []string{"link-in"}},
		{name: "symlink to a directory is not followed", sel: Selection{Paths: []string{"linkdir"}}, want: []string{"linkdir"}},
		{
			name:     "path through a symlink",
			sel:      Selection{Paths: []string{"linkdir/a.txt", "linkdir/*"}},
			want:     nil,
			warnings: []string{"no matching files", "no matching files"},
		},
		{
			name:     "symlink pointing outside",
			sel:      Selection{Paths: []string{"link-out", "link-abs"}},
			want:     nil,
			warnings: []string{`"link-out": skipped: the symlink's target "../outside" leads outside`, `"link-abs": skipped: the symlink's target "/etc/passwd" is absolute`},
		},
		{
			name:     "symlink loop",
			sel:      Selection{Paths: []string{"loop*"}},
			want:     nil,
			warnings: []string{"symlinks", "symlinks"},
		},
		{name: "outside", sel: Selection{Paths: []string{"../../etc"}}, err: ErrOutsideWorkspace},
		{name: "parent", sel: Selection{Paths: []string{".."}}, err: ErrOutsideWorkspace},
		{name: "absolute", sel: Selection{Paths: []string{"/etc/passwd"}}, err: ErrOutsideWorkspace},
		{name: "out through a name", sel: Selection{Paths: []string{"a/../../b"}}, err: ErrOutsideWorkspace},
		{name: "glob outside", sel: Selection{Paths: []string{"../*"}}, err: ErrOutsideWorkspace},
		{name: "exclude outside", sel: Selection{Paths: []string{"bin"}, Exclude: []string{"../bin"}}, err: ErrOutsideWorkspace},
		{name: "empty pattern", sel: Selection{Paths: []string{""}}, err: ErrBadPattern},
		{name: "bad glob", sel: Selection{Paths: []string{"bin/["}}, err: ErrBadPattern},
		{name: "NUL", sel: Selection{Paths: []string{"bin\x00"}}, err: ErrBadPattern},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			set, err := Select(t.Context(), work, tc.sel)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("Select = %v, want %v", err, tc.err)
				}
				bad := tc.sel.Paths[0]
				if len(tc.sel.Exclude) > 0 {
					bad = tc.sel.Exclude[0]
				}
				if !strings.Contains(err.Error(), strconv.Quote(bad)) {
					t.Errorf("error %q does not name the pattern %q", err, bad)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := names(set); !slices.Equal(got, tc.want) {
				t.Errorf("Select picked\n%q\nwant\n%q", got, tc.want)
			}
			if tc.warnings != nil {
				if len(set.Warnings) != len(tc.warnings) {
					t.Fatalf("warnings %q, want %d like %q", set.Warnings, len(tc.warnings), tc.warnings)
				}
				for i, w := range tc.warnings {
					if !strings.Contains(set.Warnings[i], w) {
						t.Errorf("warning %d is %q, want it to say %q", i, set.Warnings[i], w)
					}
				}
			}
		})
	}
}

func TestSelectEntries(t *testing.T) {
	t.Parallel()
	work := t.TempDir()
	makeTree(t, work, fixture...)
	set, err := Select(t.Context(), work, Selection{Paths: []string{"bin", "docs/up", "notes.txt"}})
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{
		{Name: "bin", Mode: fs.ModeDir | 0o755},
		{Name: "bin/app", Mode: 0o755, Size: 10},
		{Name: "bin/sub", Mode: fs.ModeDir | 0o755},
		{Name: "bin/sub/x", Mode: 0o644, Size: 1},
		{Name: "bin/tool", Mode: 0o755, Size: 20},
		{Name: "docs/up", Mode: fs.ModeSymlink | 0o777, Target: "../src/main.go"},
		{Name: "notes.txt", Mode: 0o644, Size: 5},
	}
	if !slices.Equal(set.Entries, want) {
		t.Errorf("entries\n%+v\nwant\n%+v", set.Entries, want)
	}
	if set.Bytes != 36 {
		t.Errorf("Bytes = %d, want 36", set.Bytes)
	}
	if len(set.Warnings) != 0 {
		t.Errorf("warnings: %q", set.Warnings)
	}
}

func TestSelectErrors(t *testing.T) {
	t.Parallel()
	if _, err := Select(t.Context(), filepath.Join(t.TempDir(), "missing"), Selection{Paths: []string{"."}}); err == nil {
		t.Error("Select in a missing directory succeeded")
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	work := t.TempDir()
	makeTree(t, work, fixture...)
	if _, err := Select(ctx, work, Selection{Paths: []string{"."}}); !errors.Is(err, context.Canceled) {
		t.Errorf("Select with a canceled context = %v, want context.Canceled", err)
	}
}

func TestCheckTarget(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, target string
		ok           bool
	}{
		{"l", "a", true},
		{"l", "a/b/c", true},
		{"l", "./a/./b", true},
		{"d/l", "../a", true},
		{"d/e/l", "../../a/b", true},
		{"d/l", "..", true},
		{"l", "", false},
		{"l", "..", false},
		{"l", "../x", false},
		{"d/l", "../../x", false},
		{"l", "/etc/passwd", false},
		{"l", "a/../b", false},
		{"d/l", "../a/../../x", false},
		{"l", "a\x00", false},
	} {
		if err := checkTarget(tc.name, tc.target); (err == nil) != tc.ok {
			t.Errorf("checkTarget(%q, %q) = %v, want ok %v", tc.name, tc.target, err, tc.ok)
		}
	}
}
