package source

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// requireGit skips the test when git cannot be run.
func requireGit(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not on PATH; Snapshot of a git work tree needs it")
	}
}

// git runs git in dir, isolated from the user's configuration.
func git(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL="+os.DevNull, "GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// plainDir returns a temporary directory that is not in a git work tree.
func plainDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if in, err := inGitWorkTree(dir); err != nil || in {
		t.Skipf("the temporary directory %s is in a git work tree (%v)", dir, err)
	}
	return dir
}

// archived describes one entry of a snapshot.
type archived struct {
	name, body, target string
	exec               bool
}

func (a archived) String() string {
	if a.target != "" {
		return fmt.Sprintf("%s -> %s", a.name, a.target)
	}
	return fmt.Sprintf("%s (exec %v) %q", a.name, a.exec, a.body)
}

// snapshot snapshots dir and returns the archive.
func snapshot(t *testing.T, dir string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Snapshot(t.Context(), dir, &buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// list reads back a snapshot, checking the fixed metadata.
func list(t *testing.T, src []byte) []archived {
	t.Helper()
	gz, err := gzip.NewReader(bytes.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	var got []archived
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !hdr.ModTime.Equal(time.Unix(0, 0)) || hdr.Uid != 0 || hdr.Gid != 0 || hdr.Uname != "" || hdr.Gname != "" {
			t.Errorf("%s: metadata %v %d %d %q %q not fixed", hdr.Name, hdr.ModTime, hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, archived{name: hdr.Name, body: string(body), target: hdr.Linkname, exec: hdr.Mode&0o111 != 0})
	}
	return got
}

func checkList(t *testing.T, got, want []archived) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("snapshot holds\n\t%v\nwant\n\t%v", got, want)
	}
}

func TestSnapshotGit(t *testing.T) {
	t.Parallel()
	requireGit(t)
	repo := plainDir(t)
	git(t, repo, "init", "-q")
	writeTestFile(t, filepath.Join(repo, ".gitignore"), "*.log\nbuild/\n", 0o644)
	writeTestFile(t, filepath.Join(repo, "a.txt"), "a", 0o644)
	writeTestFile(t, filepath.Join(repo, "run.sh"), "#!/bin/sh\n", 0o755)
	writeTestFile(t, filepath.Join(repo, "sub", "b.txt"), "b", 0o644)
	writeTestFile(t, filepath.Join(repo, "deleted.txt"), "gone", 0o644)
	writeTestFile(t, filepath.Join(repo, "sub", "gone", "c.txt"), "gone", 0o644)
	writeTestFile(t, filepath.Join(repo, "forced.log"), "kept", 0o644)
	writeTestFile(t, filepath.Join(repo, "moved", "x.txt"), "x", 0o644)
	if err := os.Symlink("a.txt", filepath.Join(repo, "link")); err != nil {
		t.Fatal(err)
	}
	git(t, repo, "add", ".")
	git(t, repo, "add", "-f", "forced.log")
	git(t, repo, "commit", "-q", "-m", "initial")
	// After the commit: delete, ignore, add untracked.
	if err := os.Remove(filepath.Join(repo, "deleted.txt")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(repo, "sub", "gone")); err != nil {
		t.Fatal(err)
	}
	// A tracked directory replaced by a symlink: its tracked files are not
	// read through the symlink.
	if err := os.RemoveAll(filepath.Join(repo, "moved")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("sub", filepath.Join(repo, "moved")); err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, filepath.Join(repo, "app.log"), "ignored", 0o644)
	writeTestFile(t, filepath.Join(repo, "build", "out.bin"), "ignored", 0o644)
	writeTestFile(t, filepath.Join(repo, "new.txt"), "new", 0o644)
	writeTestFile(t, filepath.Join(repo, "sub", "new.txt"), "sub new", 0o755)

	checkList(t, list(t, snapshot(t, repo)), []archived{
		{name: ".gitignore", body: "*.log\nbuild/\n"},
		{name: "a.txt", body: "a"},
		{name: "forced.log", body: "kept"},
		{name: "link", target: "a.txt", exec: true},
		{name: "moved", target: "sub", exec: true},
		{name: "new.txt", body: "new"},
		{name: "run.sh", body: "#!/bin/sh\n", exec: true},
		{name: "sub/b.txt", body: "b"},
		{name: "sub/new.txt", body: "sub new", exec: true},
	})
	// A subdirectory holds only its files, named relative to it.
	checkList(t, list(t, snapshot(t, filepath.Join(repo, "sub"))), []archived{
		{name: "b.txt", body: "b"},
		{name: "new.txt", body: "sub new", exec: true},
	})
}

func TestSnapshotPlainDirectory(t *testing.T) {
	t.Parallel()
	dir := plainDir(t)
	writeTestFile(t, filepath.Join(dir, "a.txt"), "a", 0o600)
	writeTestFile(t, filepath.Join(dir, "bin", "run"), "run", 0o700)
	writeTestFile(t, filepath.Join(dir, "vendor", "x", ".git", "HEAD"), "ref", 0o644)
	writeTestFile(t, filepath.Join(dir, "vendor", "x", "x.go"), "package x", 0o644)
	writeTestFile(t, filepath.Join(dir, "wt", ".git"), "gitdir: elsewhere", 0o644)
	mkdir(t, filepath.Join(dir, "empty"))
	if err := os.Symlink("../a.txt", filepath.Join(dir, "bin", "a")); err != nil {
		t.Fatal(err)
	}
	checkList(t, list(t, snapshot(t, dir)), []archived{
		{name: "a.txt", body: "a"},
		{name: "bin/a", target: "../a.txt", exec: true},
		{name: "bin/run", body: "run", exec: true},
		{name: "vendor/x/x.go", body: "package x"},
	})
}

func TestSnapshotIsDeterministic(t *testing.T) {
	t.Parallel()
	build := func(perm os.FileMode, mtime time.Time) string {
		dir := plainDir(t)
		for _, name := range []string{"z", "a-b", "a/b", "a/c/d", "ünïcode", strings.Repeat("long/", 30) + "name"} {
			writeTestFile(t, filepath.Join(dir, name), "contents of "+name, perm)
			if err := os.Chtimes(filepath.Join(dir, name), mtime, mtime); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	digest := func(dir string) [sha256.Size]byte { return sha256.Sum256(snapshot(t, dir)) }
	one := build(0o644, time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC))
	two := build(0o600, time.Now())
	if d1, d2 := digest(one), digest(one); d1 != d2 {
		t.Errorf("two snapshots of one tree differ")
	}
	if d1, d2 := digest(one), digest(two); d1 != d2 {
		t.Errorf("snapshots of equal trees with other times and permissions differ")
	}
	got := list(t, snapshot(t, one))
	if !slices.IsSortedFunc(got, func(a, b archived) int { return strings.Compare(a.name, b.name) }) {
		t.Errorf("entries are not sorted: %v", got)
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	t.Parallel()
	dir := plainDir(t)
	writeTestFile(t, filepath.Join(dir, "tool.sh"), "#!/bin/sh\necho hi\n", 0o755)
	writeTestFile(t, filepath.Join(dir, "lib", "data.txt"), "data", 0o644)
	for link, target := range map[string]string{"lib/tool": "../tool.sh", "current": "lib", "dangling": "nowhere"} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	src := snapshot(t, dir)
	work := filepath.Join(t.TempDir(), "work")
	if err := Extract(t.Context(), bytes.NewReader(src), work, Limits{}); err != nil {
		t.Fatal(err)
	}
	for name, exec := range map[string]bool{"tool.sh": true, "lib/data.txt": false} {
		info, err := os.Lstat(filepath.Join(work, name))
		if err != nil {
			t.Fatal(err)
		}
		if !info.Mode().IsRegular() || (info.Mode()&0o100 != 0) != exec {
			t.Errorf("%s: mode %v, want a regular file with executable %v", name, info.Mode(), exec)
		}
	}
	for link, want := range map[string]string{"lib/tool": "../tool.sh", "current": "lib", "dangling": "nowhere"} {
		if got, err := os.Readlink(filepath.Join(work, link)); err != nil || got != want {
			t.Errorf("%s -> %q, %v; want %q", link, got, err, want)
		}
	}
	if b, err := os.ReadFile(filepath.Join(work, "current", "tool")); err != nil || string(b) != "#!/bin/sh\necho hi\n" {
		t.Errorf("current/tool = %q, %v", b, err)
	}
	// The extracted tree snapshots to the same archive.
	if again := snapshot(t, work); !bytes.Equal(again, src) {
		t.Errorf("snapshot of the extracted tree differs from the original")
	}
}

func TestSnapshotRefusesEscapingSymlinks(t *testing.T) {
	t.Parallel()
	for _, target := range []string{"/etc/passwd", "../outside", "sub/../../outside"} {
		dir := plainDir(t)
		mkdir(t, filepath.Join(dir, "sub"))
		if err := os.Symlink(target, filepath.Join(dir, "link")); err != nil {
			t.Fatal(err)
		}
		err := Snapshot(t.Context(), dir, io.Discard)
		if !errors.Is(err, ErrUnsafePath) || !strings.Contains(err.Error(), `"link"`) {
			t.Errorf("Snapshot with link -> %s = %v, want ErrUnsafePath naming it", target, err)
		}
	}
}

func TestSnapshotMissingDirectory(t *testing.T) {
	t.Parallel()
	if err := Snapshot(t.Context(), filepath.Join(t.TempDir(), "missing"), io.Discard); err == nil {
		t.Error("Snapshot of a missing directory succeeded")
	}
}
