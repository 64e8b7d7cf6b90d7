// Package workspace picks, packs and unpacks the files of a job's
// workspace: the directory where a job runs, which holds the source tree
// and whatever the job made. An agent uses it for GitLab's artifacts: and
// cache: keywords.
//
// [Select] picks files the way GitLab reads artifacts:paths, exclude and
// untracked (and cache:paths and untracked); [Pack] writes them as a
// gzip-compressed tar archive, readable by tar xzf, to a writer such as an
// HTTP request body; [Unpack] writes such an archive into a workspace that
// already holds the source tree, replacing what it names. [CacheKey] and
// [CacheFileName] turn GitLab's cache:key:files into a key and a key into a
// file name.
//
// Nothing is read or written outside the workspace: patterns that leave it
// are refused, symlinks are never followed while walking (they are packed
// as symlinks), and every file operation goes through an os.Root.
package workspace

import (
	"errors"

	"github.com/hangar-ci/hangar/internal/source"
)

// Errors that Select, Pack, Unpack and CacheKey wrap, for errors.Is.
var (
	// ErrOutsideWorkspace means a pattern is absolute or leads outside
	// the workspace once cleaned, such as "/etc/passwd" or "a/../../b".
	ErrOutsideWorkspace = errors.New("outside the workspace")
	// ErrBadPattern means a pattern is empty, holds a NUL byte or is not
	// a valid glob.
	ErrBadPattern = errors.New("bad pattern")
	// ErrTooLarge means the files to pack, or an archive to unpack, hold
	// more bytes than allowed. It is source.ErrTooLarge, so that an
	// archive Unpack refuses matches it too.
	ErrTooLarge = source.ErrTooLarge
	// ErrUnsafePath means an archive to unpack has an entry that could
	// reach outside the workspace; it is source.ErrUnsafePath.
	ErrUnsafePath = source.ErrUnsafePath
	// ErrUnsupportedEntry means an archive to unpack has a device, a fifo,
	// a hard link or a sparse file; it is source.ErrUnsupportedEntry.
	ErrUnsupportedEntry = source.ErrUnsupportedEntry
)

// Stats counts what Pack or Unpack did.
type Stats struct {
	// Files, Dirs and Symlinks count the entries packed or unpacked;
	// Unpack counts the directories an archive implies (as the parents of
	// its entries) too.
	Files, Dirs, Symlinks int
	// Bytes is the total size of the files' contents.
	Bytes int64
	// ArchiveBytes is the size of the compressed archive written or read.
	ArchiveBytes int64
}
