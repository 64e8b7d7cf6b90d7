package workspace

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/hangar-ci/hangar/internal/iox"
)

// DefaultCacheKey is the key CacheKey gives when none of the files exists,
// as GitLab does.
const DefaultCacheKey = "default"

// cacheKeyHexDigits is how many hex digits of the SHA-256 a key made from
// files keeps: 160 bits, as many as a git commit ID.
const cacheKeyHexDigits = 40

// CacheKey computes the key of GitLab's cache:key:files and cache:key:prefix.
// files are patterns as in Selection.Paths (a directory stands for every
// file below it); the key is made of the names and contents of the files
// and symlinks they match, hashed with SHA-256 and shortened to 40 hex
// digits, so it changes when one of them changes, appears or disappears.
// (GitLab uses the files' last commits; a workspace has no history, so
// contents it is.) Files that do not exist are skipped; when none exists the
// hash is "default". A non-empty prefix comes first, with a dash:
// prefix + "-" + hash.
//
// A pattern that leads outside dir is an error matching ErrOutsideWorkspace.
func CacheKey(ctx context.Context, dir string, files []string, prefix string) (string, error) {
	set, err := Select(ctx, dir, Selection{Paths: files})
	if err != nil {
		return "", fmt.Errorf("cache key: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return "", fmt.Errorf("cache key: %w", err)
	}
	defer root.Close()
	// One line per file or symlink: its name and the hash of its contents
	// or target. Names hold no NUL and hashes have a fixed length, so no two
	// sets of files give the same lines.
	key := sha256.New()
	n := 0
	for _, e := range set.Entries {
		if err := ctx.Err(); err != nil {
			return "", fmt.Errorf("cache key: %w", err)
		}
		var sum []byte
		switch {
		case e.Mode.IsDir():
			continue
		case e.Mode&fs.ModeSymlink != 0:
			s := sha256.Sum256([]byte(e.Target))
			sum = append([]byte("l"), s[:]...)
		default:
			s, err := hashFile(ctx, root, e.Name)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return "", fmt.Errorf("cache key: %q: %w", e.Name, err)
			}
			sum = append([]byte("f"), s...)
		}
		fmt.Fprintf(key, "%s\x00%x\n", e.Name, sum)
		n++
	}
	hash := DefaultCacheKey
	if n > 0 {
		hash = hex.EncodeToString(key.Sum(nil))[:cacheKeyHexDigits]
	}
	if prefix != "" {
		return prefix + "-" + hash, nil
	}
	return hash, nil
}

// hashFile returns the SHA-256 of the contents of the regular file name.
func hashFile(ctx context.Context, root *os.Root, name string) ([]byte, error) {
	info, err := root.Lstat(name)
	if err != nil {
		return nil, err
	}
	f, err := root.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	opened, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !os.SameFile(info, opened) || !opened.Mode().IsRegular() {
		return nil, errChanged
	}
	h := sha256.New()
	if _, err := io.Copy(h, iox.ContextReader(ctx, f)); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}

// Limits of the names CacheFileName returns.
const (
	// cacheNameReadable is how many bytes of the key a name keeps.
	cacheNameReadable = 64
	// cacheNameHexDigits is how many hex digits of the key's SHA-256 a
	// name ends with: 128 bits, so distinct keys give distinct names.
	cacheNameHexDigits = 32
)

// CacheFileName returns a file name for the cache key: the key's first 64
// bytes with every byte other than an ASCII letter, digit, '.', '_' or '-'
// (and a leading '.' or '-') replaced by '_', a dash, and 32 hex digits of
// the key's SHA-256. The name is at most 97 bytes, holds no slash, is
// never "." or "..", does not start with a dot or a dash, and distinct
// keys give distinct names (barring a SHA-256 collision on 128 bits), also
// on a file system that ignores case.
func CacheFileName(key string) string {
	sum := sha256.Sum256([]byte(key))
	readable := key
	if len(readable) > cacheNameReadable {
		readable = readable[:cacheNameReadable]
	}
	var b strings.Builder
	b.Grow(len(readable) + 1 + cacheNameHexDigits)
	for i := 0; i < len(readable); i++ {
		c := readable[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_':
		case (c == '.' || c == '-') && i > 0:
		default:
			c = '_'
		}
		b.WriteByte(c)
	}
	if b.Len() > 0 {
		b.WriteByte('-')
	}
	b.WriteString(hex.EncodeToString(sum[:])[:cacheNameHexDigits])
	return b.String()
}
