package workspace

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestCacheKey(t *testing.T) {
	t.Parallel()
	nodes := []node{
		file("package-lock.json", `{"lockfileVersion": 3}`),
		file("go.sum", "example.com/m v1.0.0 h1:abc="),
		file("web/package-lock.json", `{"web": true}`),
		symlink("lock-link", "go.sum"),
	}
	a, b := t.TempDir(), t.TempDir()
	makeTree(t, a, nodes...)
	makeTree(t, b, nodes...)

	key := func(dir string, files []string, prefix string) string {
		t.Helper()
		k, err := CacheKey(t.Context(), dir, files, prefix)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	hexKey := regexp.MustCompile(`^[0-9a-f]{40}$`)
	k1 := key(a, []string{"package-lock.json", "go.sum"}, "")
	if !hexKey.MatchString(k1) {
		t.Errorf("key %q is not 40 hex digits", k1)
	}
	for _, tc := range []struct {
		name   string
		got    string
		wantEq bool
	}{
		{"again", key(a, []string{"package-lock.json", "go.sum"}, ""), true},
		{"in another workspace", key(b, []string{"package-lock.json", "go.sum"}, ""), true},
		{"in another order", key(a, []string{"go.sum", "package-lock.json"}, ""), true},
		{"with a missing file", key(a, []string{"go.sum", "missing", "package-lock.json"}, ""), true},
		{"one file", key(a, []string{"go.sum"}, ""), false},
		{"a glob", key(a, []string{"**/package-lock.json", "go.sum"}, ""), false},
		{"a symlink", key(a, []string{"lock-link", "package-lock.json"}, ""), false},
	} {
		if (tc.got == k1) != tc.wantEq {
			t.Errorf("%s: key %q, first key %q, want equal %v", tc.name, tc.got, k1, tc.wantEq)
		}
	}

	// A change of contents changes the key; so does a change of name.
	if err := os.WriteFile(filepath.Join(b, "go.sum"), []byte("example.com/m v1.0.1 h1:def="), 0o644); err != nil {
		t.Fatal(err)
	}
	if k := key(b, []string{"package-lock.json", "go.sum"}, ""); k == k1 {
		t.Error("the key did not change with go.sum")
	}
	if err := os.Rename(filepath.Join(a, "go.sum"), filepath.Join(a, "go.sum2")); err != nil {
		t.Fatal(err)
	}
	if k := key(a, []string{"package-lock.json", "go.sum*"}, ""); k == k1 {
		t.Error("the key did not change with go.sum's name")
	}

	if got := key(a, []string{"missing", "also/missing"}, ""); got != "default" {
		t.Errorf("key of missing files = %q, want default", got)
	}
	if got := key(a, nil, "deps"); got != "deps-default" {
		t.Errorf("key of no files with a prefix = %q, want deps-default", got)
	}
	if got, want := key(a, []string{"package-lock.json"}, "deps"), "deps-"+key(a, []string{"package-lock.json"}, ""); got != want {
		t.Errorf("key with a prefix = %q, want %q", got, want)
	}
	for _, outside := range []string{"../package-lock.json", "/etc/passwd", "a/../../b"} {
		if _, err := CacheKey(t.Context(), a, []string{outside}, ""); !errors.Is(err, ErrOutsideWorkspace) {
			t.Errorf("CacheKey(%q) = %v, want ErrOutsideWorkspace", outside, err)
		}
	}
}

// safeCacheName matches what CacheFileName may return.
var safeCacheName = regexp.MustCompile(`^([A-Za-z0-9_][A-Za-z0-9._-]{0,63}-)?[0-9a-f]{32}$`)

func checkCacheFileName(t *testing.T, key, name string) {
	t.Helper()
	if !safeCacheName.MatchString(name) || name == "." || name == ".." || strings.ContainsAny(name, `/\`) {
		t.Errorf("CacheFileName(%q) = %q, not a safe name", key, name)
	}
}

func TestCacheFileName(t *testing.T) {
	t.Parallel()
	keys := []string{
		"", "default", "Default", "deps-0123abcd", "a/b", "a_b", "a\\b", ".", "..", "../../etc/passwd", "-rf", ".hidden",
		"a b", "ключ", "con", strings.Repeat("x", 64), strings.Repeat("x", 65), strings.Repeat("/", 1000), "\x00", "a\nb",
	}
	seen := map[string]string{}
	for _, key := range keys {
		name := CacheFileName(key)
		checkCacheFileName(t, key, name)
		// Distinct keys, distinct names, also where case is ignored.
		folded := strings.ToLower(name)
		if other, ok := seen[folded]; ok {
			t.Errorf("CacheFileName(%q) = CacheFileName(%q) = %q", key, other, name)
		}
		seen[folded] = key
		if CacheFileName(key) != name {
			t.Errorf("CacheFileName(%q) is not stable", key)
		}
	}
	if got := CacheFileName("deps-0123abcd"); !strings.HasPrefix(got, "deps-0123abcd-") {
		t.Errorf("CacheFileName(%q) = %q, want the key readable in front", "deps-0123abcd", got)
	}
}

func FuzzCacheFileName(f *testing.F) {
	f.Add("default", "Default")
	f.Add("a/b", "a_b")
	f.Add("..", ".")
	f.Add(strings.Repeat("x", 100), strings.Repeat("x", 101))
	f.Fuzz(func(t *testing.T, a, b string) {
		na, nb := CacheFileName(a), CacheFileName(b)
		checkCacheFileName(t, a, na)
		checkCacheFileName(t, b, nb)
		if a != b && strings.EqualFold(na, nb) {
			t.Errorf("CacheFileName(%q) and CacheFileName(%q) are both %q", a, b, na)
		}
		if a == b && na != nb {
			t.Errorf("CacheFileName(%q) is not stable", a)
		}
	})
}
