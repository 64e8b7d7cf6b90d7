package source

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func newBlobs(t *testing.T) (*Blobs, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "blobs")
	b, err := NewBlobs(dir)
	if err != nil {
		t.Fatal(err)
	}
	return b, dir
}

// names lists the files in dir.
func names(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestBlobs(t *testing.T) {
	t.Parallel()
	b, dir := newBlobs(t)
	content := []byte("a source archive")
	sum := sha256.Sum256(content)
	want := "sha256:" + hex.EncodeToString(sum[:])

	digest, size, err := b.Put(t.Context(), bytes.NewReader(content), int64(len(content)))
	if err != nil || digest != want || size != int64(len(content)) {
		t.Fatalf("Put = %q, %d, %v; want %q, %d", digest, size, err, want, len(content))
	}
	if got := names(t, dir); len(got) != 1 || got[0] != hex.EncodeToString(sum[:]) {
		t.Errorf("the store holds %v, want one file named by the hex digest", got)
	}
	if has, err := b.Has(digest); !has || err != nil {
		t.Errorf("Has = %v, %v; want true", has, err)
	}
	f, err := b.Open(digest)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(f)
	f.Close()
	if err != nil || !bytes.Equal(got, content) {
		t.Errorf("Open read %q, %v; want %q", got, err, content)
	}
	if err := b.Delete(digest); err != nil {
		t.Fatal(err)
	}
	if has, err := b.Has(digest); has || err != nil {
		t.Errorf("Has after Delete = %v, %v; want false", has, err)
	}
	if _, err := b.Open(digest); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open after Delete = %v, want fs.ErrNotExist", err)
	}
	if err := b.Delete(digest); err != nil {
		t.Errorf("Delete of a missing blob = %v, want nil", err)
	}
	// Empty contents are a blob too.
	if digest, size, err := b.Put(t.Context(), strings.NewReader(""), 1); err != nil || size != 0 ||
		digest != "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" {
		t.Errorf("Put of nothing = %q, %d, %v", digest, size, err)
	}
}

func TestBlobsInvalidDigest(t *testing.T) {
	t.Parallel()
	b, _ := newBlobs(t)
	valid := strings.Repeat("ab", 32)
	for _, digest := range []string{
		"", valid, "sha256:", "sha256:" + valid[:63], "sha256:" + valid + "a", "sha256:" + strings.ToUpper(valid),
		"sha512:" + valid, "sha256:../../../../etc/passwd", "sha256:" + valid[:62] + "/x", "sha256:" + valid[:63] + "g",
	} {
		if _, err := b.Open(digest); !errors.Is(err, ErrInvalidDigest) {
			t.Errorf("Open(%q) = %v, want ErrInvalidDigest", digest, err)
		}
		if _, err := b.Has(digest); !errors.Is(err, ErrInvalidDigest) {
			t.Errorf("Has(%q) = %v, want ErrInvalidDigest", digest, err)
		}
		if err := b.Delete(digest); !errors.Is(err, ErrInvalidDigest) {
			t.Errorf("Delete(%q) = %v, want ErrInvalidDigest", digest, err)
		}
	}
	if _, err := b.Open("sha256:" + valid); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open of a valid, missing digest = %v, want fs.ErrNotExist", err)
	}
}

func TestBlobsTooLarge(t *testing.T) {
	t.Parallel()
	b, dir := newBlobs(t)
	_, _, err := b.Put(t.Context(), strings.NewReader("12345"), 4)
	if !errors.Is(err, ErrTooLarge) {
		t.Errorf("Put of 5 bytes with at most 4 = %v, want ErrTooLarge", err)
	}
	if got := names(t, dir); len(got) != 0 {
		t.Errorf("a refused Put left %v behind", got)
	}
	if _, size, err := b.Put(t.Context(), strings.NewReader("1234"), 4); err != nil || size != 4 {
		t.Errorf("Put of 4 bytes with at most 4 = %d, %v", size, err)
	}
	if _, _, err := b.Put(t.Context(), strings.NewReader("1"), 0); err == nil {
		t.Error("Put with maxBytes 0 succeeded")
	}
}

// failingReader returns some bytes, then an error.
type failingReader struct{ sent bool }

func (r *failingReader) Read(p []byte) (int, error) {
	if !r.sent {
		r.sent = true
		return copy(p, "partial"), nil
	}
	return 0, errors.New("connection reset")
}

func TestBlobsFailedPutLeavesNothing(t *testing.T) {
	t.Parallel()
	b, dir := newBlobs(t)
	if _, _, err := b.Put(t.Context(), &failingReader{}, 100); err == nil || !strings.Contains(err.Error(), "connection reset") {
		t.Errorf("Put from a failing reader = %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, _, err := b.Put(ctx, strings.NewReader("x"), 100); !errors.Is(err, context.Canceled) {
		t.Errorf("Put with a canceled context = %v, want context.Canceled", err)
	}
	if got := names(t, dir); len(got) != 0 {
		t.Errorf("failed Puts left %v behind", got)
	}
}

func TestBlobsConcurrentPut(t *testing.T) {
	t.Parallel()
	b, dir := newBlobs(t)
	content := bytes.Repeat([]byte("same content "), 50_000)
	const n = 16
	digests := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			d, _, err := b.Put(t.Context(), bytes.NewReader(content), 1<<20)
			if err != nil {
				t.Error(err)
			}
			digests[i] = d
		})
	}
	wg.Wait()
	for _, d := range digests {
		if d != digests[0] {
			t.Fatalf("digests differ: %v", digests)
		}
	}
	if got := names(t, dir); len(got) != 1 {
		t.Errorf("the store holds %v, want one blob", got)
	}
	f, err := b.Open(digests[0])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got, err := io.ReadAll(f); err != nil || !bytes.Equal(got, content) {
		t.Errorf("the blob holds %d bytes, %v; want the %d bytes put", len(got), err, len(content))
	}
}

func TestBlobsSweep(t *testing.T) {
	t.Parallel()
	b, dir := newBlobs(t)
	digest, _, err := b.Put(t.Context(), strings.NewReader("kept"), 100)
	if err != nil {
		t.Fatal(err)
	}
	old, recent := filepath.Join(dir, tempPrefix+"old"), filepath.Join(dir, tempPrefix+"recent")
	for _, name := range []string{old, recent} {
		if err := os.WriteFile(name, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	if err := os.Chtimes(old, now.Add(-2*time.Hour), now.Add(-2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := b.Sweep(t.Context(), now.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	got := names(t, dir)
	if len(got) != 2 || got[0] != tempPrefix+"recent" || got[1] != strings.TrimPrefix(digest, "sha256:") {
		t.Errorf("after Sweep the store holds %v, want the recent upload and the blob", got)
	}
}
