package cache_test

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/hangar-ci/hangar/internal/cache"
)

func read(t *testing.T, d *cache.Dir, key string) (string, error) {
	t.Helper()
	r, err := d.Open(context.Background(), key)
	if err != nil {
		return "", err
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	return string(b), err
}

func TestDir(t *testing.T) {
	root := t.TempDir()
	d, err := cache.NewDir(filepath.Join(root, "caches"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := read(t, d, "main"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open of a key never saved = %v, want an error matching fs.ErrNotExist", err)
	}
	keys := []string{"main", "../../etc/passwd", "a/b", "main-2", ""}
	for _, k := range keys {
		if err := d.Put(ctx, k, strings.NewReader("archive of "+k)); err != nil {
			t.Fatalf("Put %q: %v", k, err)
		}
	}
	for _, k := range keys {
		if got, err := read(t, d, k); err != nil || got != "archive of "+k {
			t.Errorf("key %q holds %q, %v; want %q", k, got, err, "archive of "+k)
		}
	}
	// A failed Put keeps what was there.
	if err := d.Put(ctx, "main", iotest.ErrReader(errors.New("broken"))); err == nil {
		t.Error("Put from a failing reader succeeded")
	}
	if got, _ := read(t, d, "main"); got != "archive of main" {
		t.Errorf("after a failed Put, main holds %q", got)
	}
	// Every key stays inside the directory, with no temporary file left.
	entries, _ := os.ReadDir(filepath.Join(root, "caches"))
	if len(entries) != len(keys) {
		t.Errorf("the cache directory holds %d files, want %d", len(entries), len(keys))
	}
	if others, _ := os.ReadDir(root); len(others) != 1 {
		t.Errorf("something was written beside the cache directory: %v", others)
	}
}
