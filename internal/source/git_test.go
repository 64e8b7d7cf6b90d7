package source

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// headOf returns the commit ID checked out in dir.
func headOf(t *testing.T, dir string) string {
	t.Helper()
	out, err := exec.Command("git", "-C", dir, "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

func TestFromGit(t *testing.T) {
	requireGit(t)
	t.Parallel()
	repo := plainDir(t)
	git(t, repo, "init", "-q", "-b", "main")
	os.WriteFile(filepath.Join(repo, "a.txt"), []byte("first\n"), 0o644)
	os.WriteFile(filepath.Join(repo, "run.sh"), []byte("echo hi\n"), 0o755)
	git(t, repo, "add", "-A")
	git(t, repo, "commit", "-q", "-m", "one")
	first := headOf(t, repo)
	os.WriteFile(filepath.Join(repo, "a.txt"), []byte("second\n"), 0o644)
	git(t, repo, "commit", "-q", "-am", "two")
	os.WriteFile(filepath.Join(repo, "untracked.txt"), []byte("not committed\n"), 0o644)

	for _, tc := range []struct {
		name, commit string
	}{
		{"full ID", first},
		{"abbreviated ID", first[:10]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := FromGit(t.Context(), "file://"+repo, tc.commit, &buf); err != nil {
				t.Fatal(err)
			}
			checkList(t, list(t, buf.Bytes()), []archived{
				{name: "a.txt", body: "first\n"},
				{name: "run.sh", body: "echo hi\n", exec: true},
			})
		})
	}

	for _, tc := range []struct {
		name, url, commit string
	}{
		{"a branch name is not a commit", "file://" + repo, "main"},
		{"an unknown commit", "file://" + repo, strings.Repeat("ab", 20)},
		{"no repository", "file://" + filepath.Join(repo, "nope"), first},
		{"an option for a URL", "--upload-pack=touch /tmp/x", first},
		{"the ext transport", "ext::sh -c touch% /tmp/pwned", first},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := FromGit(t.Context(), tc.url, tc.commit, &bytes.Buffer{})
			if !errors.Is(err, ErrGit) {
				t.Errorf("FromGit(%q, %q) = %v, want an ErrGit", tc.url, tc.commit, err)
			}
		})
	}
}
