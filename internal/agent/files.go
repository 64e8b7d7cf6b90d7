package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/hangar-ci/hangar/internal/api"
	"github.com/hangar-ci/hangar/internal/source"
	"github.com/hangar-ci/hangar/internal/store"
	"github.com/hangar-ci/hangar/internal/workspace"
)

// This file moves what a job's workspace holds besides the source tree: its
// caches (restored before the steps, saved after), the artifacts of the
// jobs it depends on (downloaded before the steps, after the caches) and its
// own artifacts (uploaded after), in GitLab Runner's order and with its
// messages.

// CacheStore keeps caches between jobs: one archive per key. Keys are any
// strings; a store maps them to its own names.
type CacheStore interface {
	// Open returns the archive stored under key, or an error matching
	// fs.ErrNotExist when there is none.
	Open(ctx context.Context, key string) (io.ReadCloser, error)
	// Put stores what r holds under key, replacing what was there only once
	// r is read to its end.
	Put(ctx context.Context, key string, r io.Reader) error
}

// jobFiles is what an attempt needs to move files in and out of its
// workspace.
type jobFiles struct {
	a   *Agent
	at  *attempt
	dir string // the workspace
	// archive is the source archive the workspace was extracted from, ""
	// when the job has no source.
	archive string
	out     io.Writer
	tracked func(string) bool // built on first use
	// cacheKeys are the keys of the job's caches, computed once before the
	// steps (a key from files must not change because the job changed
	// them); "" where the key could not be computed.
	cacheKeys []string
}

// note writes a line to the job's log in GitLab Runner's colours: green
// for progress, yellow for warnings, red for errors.
func (f *jobFiles) note(colour, format string, args ...any) {
	codes := map[string]string{"green": "32;1", "yellow": "33;1", "red": "31;1"}
	fmt.Fprintf(f.out, "\x1b[%sm%s\x1b[0;m\n", codes[colour], fmt.Sprintf(format, args...))
}

// isTracked reports whether name came with the source tree, listing the
// source archive the first time it is asked.
func (f *jobFiles) isTracked(ctx context.Context) (func(string) bool, error) {
	if f.tracked != nil || f.archive == "" {
		return f.tracked, nil
	}
	r, err := os.Open(f.archive)
	if err != nil {
		return nil, fmt.Errorf("list the source tree: %w", err)
	}
	defer r.Close()
	names, err := source.Names(ctx, r, source.Limits{})
	if err != nil {
		return nil, err
	}
	f.tracked = func(name string) bool {
		_, found := slices.BinarySearch(names, name)
		return found
	}
	return f.tracked, nil
}

// selection returns the Selection of paths, exclude and untracked.
func (f *jobFiles) selection(ctx context.Context, paths, exclude []string, untracked bool) (workspace.Selection, error) {
	sel := workspace.Selection{Paths: paths, Exclude: exclude, Untracked: untracked}
	if untracked {
		tracked, err := f.isTracked(ctx)
		if err != nil {
			return sel, err
		}
		sel.Tracked = tracked
	}
	return sel, nil
}

// downloadDependencies downloads the artifacts of the jobs the attempt
// depends on into the workspace, in order, a later one replacing what an
// earlier one wrote.
func (f *jobFiles) downloadDependencies(ctx context.Context) error {
	as := f.at.as
	for _, dep := range as.Dependencies {
		f.note("green", "Downloading artifacts for %s (%d)...", dep.JobName, dep.JobID)
		path, err := f.a.downloadTemp(ctx, dep.Digest, func(w io.Writer) error {
			return f.a.client.DownloadArtifacts(ctx, as.AttemptID, as.Token, dep.JobID, w)
		})
		if err != nil {
			return fmt.Errorf("download the artifacts of %s: %w", dep.JobName, err)
		}
		err = func() error {
			defer os.Remove(path)
			r, err := os.Open(path)
			if err != nil {
				return err
			}
			defer r.Close()
			_, err = workspace.Unpack(ctx, r, f.dir, source.Limits{})
			return err
		}()
		if err != nil {
			return fmt.Errorf("extract the artifacts of %s: %w", dep.JobName, err)
		}
	}
	return nil
}

// cacheKey returns the key cache c is stored under: its key, or the one
// computed from its key files, scoped to the project.
func (f *jobFiles) cacheKey(ctx context.Context, c store.CacheSpec) (string, error) {
	key := c.Key
	if len(c.KeyFiles) > 0 {
		k, err := workspace.CacheKey(ctx, f.dir, c.KeyFiles, c.KeyPrefix)
		if err != nil {
			return "", err
		}
		key = k
	}
	if key == "" {
		key = "default"
	}
	return key, nil
}

// scoped returns the store key of cache key: caches belong to a project.
func (f *jobFiles) scoped(key string) string {
	return f.at.as.Project + "/" + key
}

// restoreCaches computes the keys of the job's caches and restores those
// whose policy pulls: the first of the key, the fallback keys and
// CACHE_FALLBACK_KEY that is stored wins. A cache that cannot be restored
// is a warning, never a failure, as in GitLab.
func (f *jobFiles) restoreCaches(ctx context.Context) {
	f.cacheKeys = make([]string, len(f.at.as.Caches))
	for i, c := range f.at.as.Caches {
		key, err := f.cacheKey(ctx, c)
		if err != nil {
			f.note("yellow", "WARNING: cache: %v", err)
			continue
		}
		f.cacheKeys[i] = key
		if !policyPulls(c.Policy) {
			continue
		}
		keys := append([]string{key}, c.FallbackKeys...)
		if fb := f.variable("CACHE_FALLBACK_KEY"); fb != "" {
			keys = append(keys, fb)
		}
		restored := false
		for _, k := range keys {
			f.note("green", "Checking cache for %s...", k)
			ok, err := f.restoreCache(ctx, k)
			if err != nil {
				// Part of it may be in the workspace: do not pile another
				// cache on top.
				f.note("yellow", "WARNING: cache %s could not be restored, the workspace may hold part of it: %v", k, err)
				restored = true
				break
			}
			if ok {
				f.note("green", "Successfully extracted cache")
				restored = true
				break
			}
		}
		if !restored {
			f.note("yellow", "WARNING: no cache found for %s", strings.Join(keys, ", "))
		}
	}
}

// policyPulls and policyPushes read a cache: policy; anything but pull
// and push means pull-push, as GitLab's default.
func policyPulls(p string) bool  { return p != "push" }
func policyPushes(p string) bool { return p != "pull" }

// restoreCache extracts the cache stored under key, reporting whether
// there was one.
func (f *jobFiles) restoreCache(ctx context.Context, key string) (bool, error) {
	r, err := f.a.cfg.Cache.Open(ctx, f.scoped(key))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer r.Close()
	if _, err := workspace.Unpack(ctx, r, f.dir, source.Limits{}); err != nil {
		return false, err
	}
	return true, nil
}

// saveCaches saves the job's caches whose policy pushes and whose when
// matches how the job went. Failures are warnings.
func (f *jobFiles) saveCaches(ctx context.Context, succeeded bool) {
	for i, c := range f.at.as.Caches {
		key := f.cacheKeys[i]
		if key == "" || !policyPushes(c.Policy) || !whenMatches(c.When, succeeded) {
			continue
		}
		if err := f.saveCache(ctx, key, c); err != nil {
			f.note("yellow", "WARNING: cache: %v", err)
		}
	}
}

// saveCache packs the files of cache c and stores them under key.
func (f *jobFiles) saveCache(ctx context.Context, key string, c store.CacheSpec) error {
	f.note("green", "Creating cache %s...", key)
	sel, err := f.selection(ctx, c.Paths, nil, c.Untracked)
	if err != nil {
		return err
	}
	set, err := workspace.Select(ctx, f.dir, sel)
	if err != nil {
		return err
	}
	f.warn(set.Warnings)
	if len(set.Entries) == 0 {
		f.note("yellow", "WARNING: no files to cache for %s", key)
		return nil
	}
	if err := withinLimits(set); err != nil {
		return fmt.Errorf("cache %s not saved: %w", key, err)
	}
	pr, pw := io.Pipe()
	go func() {
		_, err := workspace.Pack(ctx, pw, f.dir, set, 0)
		pw.CloseWithError(err)
	}()
	err = f.a.cfg.Cache.Put(ctx, f.scoped(key), pr)
	pr.CloseWithError(err) // stops Pack if Put gave up
	if err != nil {
		return err
	}
	f.note("green", "Created cache %s: %d entries, %s", key, len(set.Entries), humanBytes(set.Bytes))
	return nil
}

// errUploadEnded stops a Pack whose upload ended before it was done.
var errUploadEnded = errors.New("upload ended")

// artifactsError is a problem with the job's own artifacts (a path outside
// the workspace, too many bytes): the job fails, and running it elsewhere
// would not help.
type artifactsError struct{ err error }

func (e *artifactsError) Error() string { return e.err.Error() }
func (e *artifactsError) Unwrap() error { return e.err }

// uploadArtifacts packs the job's artifacts and uploads them when the
// job's artifacts:when matches how it went. An *artifactsError is the
// job's fault; another error is the agent's or the network's.
func (f *jobFiles) uploadArtifacts(ctx context.Context, succeeded bool) error {
	as := f.at.as
	spec := as.Artifacts
	if spec == nil || !whenMatches(spec.When, succeeded) {
		return nil
	}
	f.note("green", "Uploading artifacts...")
	sel, err := f.selection(ctx, spec.Paths, spec.Exclude, spec.Untracked)
	if err != nil {
		return err
	}
	set, err := workspace.Select(ctx, f.dir, sel)
	if errors.Is(err, workspace.ErrOutsideWorkspace) || errors.Is(err, workspace.ErrBadPattern) {
		return &artifactsError{err}
	}
	if err != nil {
		return err
	}
	f.warn(set.Warnings)
	if len(set.Entries) == 0 {
		f.note("yellow", "WARNING: no files to upload")
		return nil
	}
	if err := withinLimits(set); err != nil {
		return &artifactsError{err}
	}
	// The archive streams from Pack into the request; a failed upload packs
	// again, a failed Pack is not retried. The server's limit is on the
	// compressed archive: Pack stops as soon as it is passed.
	var res api.JobArtifacts
	err = api.Retry(ctx, f.a.cfg.Backoff, func() error {
		pr, pw := io.Pipe()
		packed := make(chan error, 1)
		go func() {
			_, err := workspace.Pack(ctx, &limitWriter{w: pw, left: as.MaxArtifactBytes}, f.dir, set, 0)
			pw.CloseWithError(err)
			packed <- err
		}()
		var err error
		res, err = f.a.client.UploadArtifacts(ctx, as.AttemptID, as.Token, pr, -1)
		pr.CloseWithError(errUploadEnded) // unblocks Pack if the upload stopped reading
		if perr := <-packed; perr != nil && !errors.Is(perr, errUploadEnded) {
			return api.Permanent(fmt.Errorf("pack artifacts: %w", perr))
		}
		return err
	})
	if errors.Is(err, workspace.ErrTooLarge) {
		return &artifactsError{fmt.Errorf("%w: the archive of %s of files is larger than the %s the server takes",
			workspace.ErrTooLarge, humanBytes(set.Bytes), humanBytes(as.MaxArtifactBytes))}
	}
	var se *api.StatusError
	if errors.As(err, &se) && se.Code == 413 {
		return &artifactsError{fmt.Errorf("the server refused the archive: %s", se.Body.Error)}
	}
	if err != nil {
		return fmt.Errorf("upload artifacts: %w", err)
	}
	f.note("green", "Uploaded artifacts: %d entries, %s (archive %s)", len(set.Entries), humanBytes(set.Bytes), humanBytes(res.Size))
	return nil
}

// warn writes what Select skipped to the log.
func (f *jobFiles) warn(warnings []string) {
	for _, w := range warnings {
		f.note("yellow", "WARNING: %s", w)
	}
}

// variable returns the job's variable name, "" when it has none.
func (f *jobFiles) variable(name string) string {
	vars := f.at.as.Variables
	for i := len(vars) - 1; i >= 0; i-- {
		if vars[i].Name == name {
			return vars[i].Value
		}
	}
	return ""
}

// whenMatches reports whether an artifacts: or cache: when (on_success,
// the default, on_failure or always) covers a job that succeeded or not.
func whenMatches(when string, succeeded bool) bool {
	switch when {
	case "always":
		return true
	case "on_failure":
		return !succeeded
	default:
		return succeeded
	}
}

// downloadTemp writes what get writes into a new file in the agent's work
// dir, retrying with backoff on the network's and the server's errors (not
// on the disk's), checks that it has the sha256 digest ("sha256:hex";
// "" checks nothing), and returns its path; the caller removes it.
func (a *Agent) downloadTemp(ctx context.Context, digest string, get func(w io.Writer) error) (string, error) {
	dir := filepath.Join(a.cfg.WorkDir, "tmp")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	f, err := os.CreateTemp(dir, "download-*")
	if err != nil {
		return "", err
	}
	h := sha256.New()
	err = api.Retry(ctx, a.cfg.Backoff, func() error {
		if err := f.Truncate(0); err != nil {
			return api.Permanent(err)
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return api.Permanent(err)
		}
		h.Reset()
		return get(io.MultiWriter(permanentWriter{f}, h))
	})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); err == nil && digest != "" && got != digest {
		err = fmt.Errorf("the download has the digest %s, not %s", got, digest)
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

// permanentWriter marks its writer's errors (a full disk) as not worth
// retrying the download for.
type permanentWriter struct{ w io.Writer }

func (p permanentWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	return n, api.Permanent(err)
}

// limitWriter passes at most left bytes to w, then fails with
// workspace.ErrTooLarge; left <= 0 means no limit.
type limitWriter struct {
	w    io.Writer
	left int64
}

func (l *limitWriter) Write(b []byte) (int, error) {
	if l.left > 0 {
		if int64(len(b)) > l.left {
			return 0, workspace.ErrTooLarge
		}
		l.left -= int64(len(b))
	}
	return l.w.Write(b)
}

// withinLimits reports whether the files of set can be unpacked again
// (source.DefaultMaxFiles entries, source.DefaultMaxBytes bytes): a set
// that cannot is not worth packing.
func withinLimits(set *workspace.Set) error {
	switch {
	case len(set.Entries) > source.DefaultMaxFiles:
		return fmt.Errorf("%w: %d entries, more than the %d a job unpacks", source.ErrTooManyFiles, len(set.Entries), source.DefaultMaxFiles)
	case set.Bytes > source.DefaultMaxBytes:
		return fmt.Errorf("%w: %s of files, more than the %s a job unpacks", workspace.ErrTooLarge, humanBytes(set.Bytes), humanBytes(source.DefaultMaxBytes))
	}
	return nil
}

// humanBytes formats n bytes for a log line.
func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
