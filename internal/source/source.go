// Package source carries a pipeline's source tree from the developer's
// machine to the control plane and on to the agents.
//
// The tree travels as a gzip-compressed tar archive: [Snapshot] writes it
// from a working directory (the files git would commit, or every file when
// the directory is not in a git work tree), [Blobs] keeps it on the server
// under its sha256 digest, [NewFS] reads it in memory so the server can load
// the pipeline file, and [Extract] writes it into an agent's workspace.
//
// An archive is untrusted wherever it is read. [Extract] and [NewFS] refuse
// entries that would land outside the tree, pass through a symlink, or leave
// a symlink pointing outside the tree, and they stop at [Limits].
package source

import (
	"errors"
	"fmt"
)

// Errors that Extract, NewFS, Snapshot and Blobs wrap, for errors.Is.
var (
	// ErrUnsafePath means an archive entry is named or placed so that it
	// could reach outside the tree: an absolute name, a ".." component, an
	// entry below a symlink, a symlink pointing outside the tree, or a name
	// the archive holds twice.
	ErrUnsafePath = errors.New("unsafe path in archive")
	// ErrUnsupportedEntry means an archive entry is of a kind a source
	// tree does not hold: a device, a fifo, a hard link or a sparse file.
	ErrUnsupportedEntry = errors.New("unsupported archive entry")
	// ErrTooLarge means an archive or a blob holds more bytes than allowed.
	ErrTooLarge = errors.New("too large")
	// ErrTooManyFiles means an archive holds more entries than allowed.
	ErrTooManyFiles = errors.New("too many files")
	// ErrInvalidDigest means a string is not a digest of the form
	// "sha256:" followed by 64 lowercase hexadecimal digits.
	ErrInvalidDigest = errors.New("invalid digest")
)

// Defaults for the zero fields of Limits.
const (
	// DefaultMaxBytes is the default for Limits.MaxBytes: 1 GiB.
	DefaultMaxBytes int64 = 1 << 30
	// DefaultMaxFiles is the default for Limits.MaxFiles.
	DefaultMaxFiles = 100_000
)

// Limits bounds what reading an archive may cost. A zero field takes its
// default.
type Limits struct {
	// MaxBytes bounds the total uncompressed size of the archive's entries:
	// the contents of its files plus the names and symlink targets of all
	// its entries. Default DefaultMaxBytes.
	MaxBytes int64
	// MaxFiles bounds the number of entries: files, directories, symlinks.
	// Default DefaultMaxFiles.
	MaxFiles int
}

// Validate reports a negative field.
func (l Limits) Validate() error {
	if l.MaxBytes < 0 {
		return fmt.Errorf("limits: MaxBytes is %d, want 0 (the default) or more", l.MaxBytes)
	}
	if l.MaxFiles < 0 {
		return fmt.Errorf("limits: MaxFiles is %d, want 0 (the default) or more", l.MaxFiles)
	}
	return nil
}

// withDefaults validates l and fills in its zero fields.
func (l Limits) withDefaults() (Limits, error) {
	if err := l.Validate(); err != nil {
		return l, err
	}
	if l.MaxBytes == 0 {
		l.MaxBytes = DefaultMaxBytes
	}
	if l.MaxFiles == 0 {
		l.MaxFiles = DefaultMaxFiles
	}
	return l, nil
}
