package workspace

import (
	"context"
	"fmt"
	"io"

	"github.com/hangar-ci/hangar/internal/iox"
	"github.com/hangar-ci/hangar/internal/source"
)

// Unpack writes the gzip-compressed tar archive r, as Pack writes it, into
// the workspace dir, which must exist and may already hold the source tree
// and other archives: what the archive names replaces what dir holds under
// that name (a file, a symlink or an empty directory; a symlink is replaced,
// never followed), and what it does not name is left alone. Files get mode
// 0755 or 0644 as the archive marks them executable or not; times and
// owners are not restored.
//
// The archive is not trusted. Unpack refuses, before creating any symlink,
// an archive with an absolute name, a ".." component, an entry below one of
// its symlinks or a name given twice, or a symlink that, followed over the
// archive, would leave dir (ErrUnsafePath); devices, fifos, hard links and
// sparse files (ErrUnsupportedEntry); and more than limits allow
// (ErrTooLarge, source.ErrTooManyFiles). A directory of dir that is not
// empty where the archive holds a file is an error matching fs.ErrExist.
// Every write goes through an os.Root on dir. See source.Merge.
//
// On error dir may hold part of the archive.
func Unpack(ctx context.Context, r io.Reader, dir string, limits source.Limits) (Stats, error) {
	cr := &iox.CountingReader{R: r}
	ms, err := source.Merge(ctx, cr, dir, limits)
	stats := Stats{Files: ms.Files, Dirs: ms.Dirs, Symlinks: ms.Symlinks, Bytes: ms.Bytes, ArchiveBytes: cr.N}
	if err != nil {
		return stats, fmt.Errorf("unpack files: %w", err)
	}
	return stats, nil
}
