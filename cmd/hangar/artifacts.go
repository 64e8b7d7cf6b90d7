package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/hangar-ci/hangar/internal/api"
	"github.com/hangar-ci/hangar/internal/source"
)

// artifactsLimits bound what --download extracts from an archive.
var artifactsLimits = source.Limits{MaxBytes: source.DefaultMaxBytes, MaxFiles: source.DefaultMaxFiles}

func runArtifacts(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var dir, archive string
	sf, id, code := idCommand("artifacts", "artifacts [--download DIR] [--archive FILE] [flags] JOB",
		fmt.Sprintf(`List the files of a job's artifacts archive; with --download, extract them into
DIR instead (which must be empty or not exist), and with --archive, save the
archive itself (a .tar.gz) as FILE. Extraction refuses entries that would
land outside DIR, devices and hard links, and stops at %d entries or
%d GiB. Exit status 1 means the job has no artifacts (or they expired).`,
			artifactsLimits.MaxFiles, artifactsLimits.MaxBytes>>30),
		"job", args, stderr, func(fs *flag.FlagSet) {
			fs.StringVar(&dir, "download", "", "extract the artifacts into `DIR`")
			fs.StringVar(&archive, "archive", "", "save the archive as `FILE`")
		})
	if code >= 0 {
		return code
	}
	c := sf.cli(stdout, stderr)
	var err error
	if dir == "" && archive == "" {
		err = c.listArtifacts(ctx, id)
	} else {
		err = c.fetchArtifacts(ctx, id, dir, archive)
	}
	switch {
	case api.StatusCode(err) == http.StatusNotFound:
		fmt.Fprintf(stderr, "hangar artifacts: %v\n", err)
		return exitFailed
	case err != nil:
		fmt.Fprintf(stderr, "hangar artifacts: %v\n", err)
		return exitTrouble
	}
	return exitOK
}

// listArtifacts prints what the server says about a job's artifacts: one
// line about the archive, then one per entry as ls -l would.
func (c *cli) listArtifacts(ctx context.Context, jobID int64) error {
	var a api.JobArtifacts
	if _, err := c.client.Do(ctx, http.MethodGet, fmt.Sprintf("/jobs/%d/artifacts", jobID), c.token, nil, &a); err != nil {
		return err
	}
	expiry := "kept for good"
	if a.ExpireAt != nil {
		expiry = "expires " + a.ExpireAt.Local().Format(time.RFC3339)
	}
	fmt.Fprintf(c.stdout, "job %d (%s): artifacts %q, %d bytes, %s, %s\n", a.JobID, a.JobName, a.Name, a.Size, a.Digest, expiry)
	for _, f := range a.Files {
		link := ""
		if f.Link != "" {
			link = " -> " + f.Link
		}
		fmt.Fprintf(c.stdout, "%s %10d  %s%s\n", f.Mode, f.Size, f.Path, link)
	}
	if a.Truncated {
		fmt.Fprintf(c.stdout, "… and more: the server lists the first %d entries\n", len(a.Files))
	}
	if a.Problem != "" {
		return fmt.Errorf("the archive of job %d is damaged: %s", jobID, a.Problem)
	}
	return nil
}

// fetchArtifacts downloads a job's archive, saves it as archive when that
// is not empty, and extracts it into dir when that is not empty.
func (c *cli) fetchArtifacts(ctx context.Context, jobID int64, dir, archive string) error {
	existed := false
	if dir != "" {
		var err error
		if existed, err = checkEmptyDir(dir); err != nil {
			return err
		}
	}
	// The download goes to a temporary file (beside archive, so that it
	// can be renamed into place): a failed one leaves archive as it was.
	tmpDir := ""
	if archive != "" {
		tmpDir = filepath.Dir(archive)
	}
	f, err := os.CreateTemp(tmpDir, ".hangar-artifacts-*.tar.gz")
	if err != nil {
		return fmt.Errorf("download artifacts: %w", err)
	}
	defer func() {
		f.Close()
		os.Remove(f.Name()) // fails once it is renamed
	}()
	_, err = c.client.Do(ctx, http.MethodGet, fmt.Sprintf("/jobs/%d/artifacts/download", jobID), c.token, nil, f)
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
		return err
	}
	if archive != "" {
		info, err := f.Stat()
		if err == nil {
			err = os.Chmod(f.Name(), 0o644)
		}
		if err == nil {
			err = os.Rename(f.Name(), archive)
		}
		if err != nil {
			return fmt.Errorf("save artifacts: %w", err)
		}
		fmt.Fprintf(c.stdout, "saved the artifacts of job %d as %s (%d bytes)\n", jobID, archive, info.Size())
	}
	if dir == "" {
		return nil
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("extract artifacts: %w", err)
	}
	if err := source.Extract(ctx, f, dir, artifactsLimits); err != nil {
		// dir was empty or absent: what is there now is the archive's.
		clearDir(dir, existed)
		return fmt.Errorf("extract the artifacts of job %d: %w", jobID, err)
	}
	fmt.Fprintf(c.stdout, "extracted the artifacts of job %d into %s\n", jobID, dir)
	return nil
}

// checkEmptyDir checks that dir does not exist or is an empty directory,
// and reports whether it exists.
func checkEmptyDir(dir string) (exists bool, err error) {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("--download %s: %w", dir, err)
	case len(entries) > 0:
		return true, fmt.Errorf("--download %s: the directory is not empty", dir)
	}
	return true, nil
}

// clearDir removes what dir holds, and dir itself unless it existed
// before.
func clearDir(dir string, existed bool) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		os.RemoveAll(filepath.Join(dir, e.Name()))
	}
	if !existed {
		os.Remove(dir)
	}
}
