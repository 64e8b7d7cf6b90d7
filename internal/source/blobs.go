package source

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/hangar-ci/hangar/internal/iox"
)

// digestPrefix starts every digest.
const digestPrefix = "sha256:"

// tempPrefix starts the name of an upload in progress, which no digest's
// file name does.
const tempPrefix = ".upload-"

// Blobs is a content-addressed store of source archives in a directory:
// each blob is a file named by the hex sha256 of its contents, and is known
// by the digest "sha256:<hex>". A blob appears under its name only once it
// is whole and on disk, so a crash never leaves a partial blob under a
// digest (it may leave a temporary file, which Sweep removes).
//
// Blobs is safe for concurrent use, also by several processes sharing the
// directory.
type Blobs struct {
	dir string
}

// NewBlobs returns the store in dir, creating the directory if needed.
func NewBlobs(dir string) (*Blobs, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("open blob store: %w", err)
	}
	return &Blobs{dir: dir}, nil
}

// Put stores the contents of r, at most maxBytes of them, and returns their
// digest and size. More than maxBytes is an error matching ErrTooLarge, and
// then nothing is stored. Putting contents already stored is harmless, also
// concurrently.
func (b *Blobs) Put(ctx context.Context, r io.Reader, maxBytes int64) (digest string, size int64, err error) {
	if maxBytes <= 0 {
		return "", 0, fmt.Errorf("put blob: maxBytes is %d, want more than 0", maxBytes)
	}
	tmp, err := os.CreateTemp(b.dir, tempPrefix+"*")
	if err != nil {
		return "", 0, fmt.Errorf("put blob: %w", err)
	}
	defer func() {
		if tmp != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	h := sha256.New()
	size, err = io.Copy(io.MultiWriter(tmp, h), io.LimitReader(iox.ContextReader(ctx, r), maxBytes+1))
	if err != nil {
		return "", 0, fmt.Errorf("put blob: %w", err)
	}
	if size > maxBytes {
		return "", 0, fmt.Errorf("put blob: %w: more than %d bytes", ErrTooLarge, maxBytes)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	digest = digestPrefix + sum
	if err := tmp.Chmod(0o644); err != nil {
		return "", 0, fmt.Errorf("put blob %s: %w", digest, err)
	}
	if err := tmp.Sync(); err != nil {
		return "", 0, fmt.Errorf("put blob %s: %w", digest, err)
	}
	if err := tmp.Close(); err != nil {
		return "", 0, fmt.Errorf("put blob %s: %w", digest, err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(b.dir, sum)); err != nil {
		return "", 0, fmt.Errorf("put blob %s: %w", digest, err)
	}
	tmp = nil
	if err := b.syncDir(); err != nil {
		return "", 0, fmt.Errorf("put blob %s: %w", digest, err)
	}
	return digest, size, nil
}

// Open opens the blob with the given digest for reading. A blob that is not
// stored is an error matching fs.ErrNotExist; a malformed digest one
// matching ErrInvalidDigest.
func (b *Blobs) Open(digest string) (*os.File, error) {
	p, err := b.path(digest)
	if err != nil {
		return nil, fmt.Errorf("open blob: %w", err)
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("open blob %s: %w", digest, err)
	}
	return f, nil
}

// Has reports whether the blob with the given digest is stored.
func (b *Blobs) Has(digest string) (bool, error) {
	p, err := b.path(digest)
	if err != nil {
		return false, fmt.Errorf("look up blob: %w", err)
	}
	_, err = os.Stat(p)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	default:
		return false, fmt.Errorf("look up blob %s: %w", digest, err)
	}
}

// Delete removes the blob with the given digest. Deleting a blob that is not
// stored is not an error. A reader that has the blob open keeps reading it.
func (b *Blobs) Delete(digest string) error {
	p, err := b.path(digest)
	if err != nil {
		return fmt.Errorf("delete blob: %w", err)
	}
	if err := os.Remove(p); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("delete blob %s: %w", digest, err)
	}
	if err := b.syncDir(); err != nil {
		return fmt.Errorf("delete blob %s: %w", digest, err)
	}
	return nil
}

// Sweep removes the temporary files of uploads last written before before:
// those a crash or a killed process left behind. Pass a time well before any
// upload still in progress could have last written.
func (b *Blobs) Sweep(ctx context.Context, before time.Time) error {
	entries, err := os.ReadDir(b.dir)
	if err != nil {
		return fmt.Errorf("sweep blob store: %w", err)
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("sweep blob store: %w", err)
		}
		if !strings.HasPrefix(e.Name(), tempPrefix) {
			continue
		}
		info, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("sweep blob store: %w", err)
		}
		if info.ModTime().Before(before) {
			if err := os.Remove(filepath.Join(b.dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("sweep blob store: %w", err)
			}
		}
	}
	return nil
}

// path returns the file of the blob with the given digest.
func (b *Blobs) path(digest string) (string, error) {
	sum, ok := strings.CutPrefix(digest, digestPrefix)
	if !ok || len(sum) != sha256.Size*2 || strings.Trim(sum, "0123456789abcdef") != "" {
		return "", fmt.Errorf("%w: %q (want sha256: and 64 lowercase hex digits)", ErrInvalidDigest, digest)
	}
	return filepath.Join(b.dir, sum), nil
}

// syncDir makes the creation or removal of a file in the store's directory
// durable.
func (b *Blobs) syncDir() error {
	if runtime.GOOS == "windows" {
		return nil // directories cannot be synced there; NTFS journals renames
	}
	d, err := os.Open(b.dir)
	if err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	return nil
}
