package source

import (
	"bytes"
	"errors"
	"io/fs"
	"testing"
	"testing/fstest"
)

// treeArchive is a tree with files, directories, an empty directory and
// symlinks to a file, a directory and through another symlink.
func treeArchive(t *testing.T) []byte {
	t.Helper()
	return archive(t,
		file(".gitlab-ci.yml", "include: ci/build.yml\n"),
		file("ci/build.yml", "build:\n  script: make\n"),
		execFile("ci/bin/run.sh", "#!/bin/sh\n"),
		dir("empty/"),
		symlink("ci/current", "bin"),
		symlink("ci/run", "current/run.sh"),
		symlink("root.yml", "ci/../.gitlab-ci.yml"),
		symlink("top", "."),
	)
}

func TestFSPassesTestFS(t *testing.T) {
	t.Parallel()
	fsys, err := NewFS(t.Context(), bytes.NewReader(treeArchive(t)), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if err := fstest.TestFS(fsys, ".gitlab-ci.yml", "ci/build.yml", "ci/bin/run.sh", "empty", "ci/current", "ci/run", "root.yml", "top"); err != nil {
		t.Fatal(err)
	}
}

func TestFSOfSnapshotPassesTestFS(t *testing.T) {
	t.Parallel()
	dir := plainDir(t)
	writeTestFile(t, dir+"/a/b/c.txt", "c", 0o644)
	writeTestFile(t, dir+"/x", "x", 0o755)
	fsys, err := NewFS(t.Context(), bytes.NewReader(snapshot(t, dir)), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if err := fstest.TestFS(fsys, "a/b/c.txt", "x"); err != nil {
		t.Fatal(err)
	}
}

func TestFSSymlinks(t *testing.T) {
	t.Parallel()
	fsys, err := NewFS(t.Context(), bytes.NewReader(treeArchive(t)), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"ci/run":               "#!/bin/sh\n",
		"ci/current/run.sh":    "#!/bin/sh\n",
		"root.yml":             "include: ci/build.yml\n",
		"top/top/ci/build.yml": "build:\n  script: make\n",
	} {
		if b, err := fs.ReadFile(fsys, name); err != nil || string(b) != want {
			t.Errorf("ReadFile(%s) = %q, %v; want %q", name, b, err, want)
		}
	}
	if target, err := fsys.ReadLink("ci/run"); err != nil || target != "current/run.sh" {
		t.Errorf("ReadLink(ci/run) = %q, %v", target, err)
	}
	if info, err := fsys.Lstat("ci/current"); err != nil || info.Mode()&fs.ModeSymlink == 0 {
		t.Errorf("Lstat(ci/current) = %v, %v; want a symlink", info, err)
	}
	if info, err := fsys.Stat("ci/current"); err != nil || !info.IsDir() || info.Name() != "current" {
		t.Errorf("Stat(ci/current) = %v, %v; want a directory named current", info, err)
	}
	if info, err := fsys.Stat("ci/bin/run.sh"); err != nil || info.Mode() != 0o755 {
		t.Errorf("Stat(ci/bin/run.sh) = %v, %v; want mode 0755", info, err)
	}
	for _, name := range []string{"missing", "ci/build.yml/x", "../x", "/ci", "ci/"} {
		if _, err := fsys.Open(name); err == nil {
			t.Errorf("Open(%q) succeeded", name)
		}
	}
	if _, err := fsys.Open("ci/nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open(ci/nope) = %v, want fs.ErrNotExist", err)
	}
	if _, err := fsys.ReadLink("ci/build.yml"); err == nil {
		t.Error("ReadLink of a file succeeded")
	}
	// ReadFile returns a copy.
	b, _ := fsys.ReadFile("ci/build.yml")
	b[0] = 'X'
	if b2, _ := fsys.ReadFile("ci/build.yml"); b2[0] != 'b' {
		t.Error("changing what ReadFile returned changed the file")
	}
}

func TestFSRefusesUnsafeArchives(t *testing.T) {
	t.Parallel()
	for _, tc := range unsafeArchives {
		_, err := NewFS(t.Context(), bytes.NewReader(archive(t, tc.entries...)), Limits{})
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: NewFS = %v, want %v", tc.name, err, tc.want)
		}
	}
}
