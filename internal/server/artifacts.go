package server

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hangar-ci/hangar/internal/api"
	"github.com/hangar-ci/hangar/internal/scheduler"
	"github.com/hangar-ci/hangar/internal/source"
	"github.com/hangar-ci/hangar/internal/store"
)

// This file serves artifacts: the archive an attempt uploads after its
// steps, the downloads of the attempts that depend on it, the people's
// calls about a job's artifacts, and their expiry.

// defaultArtifactsName is the name of artifacts whose job sets no
// artifacts:name, as in GitLab.
const defaultArtifactsName = "artifacts"

// expireBatch is how many expired artifacts one transaction deletes.
const expireBatch = 100

// uploadArtifacts stores the body, a gzip-compressed tar, as the artifacts
// of the attempt's job, replacing earlier ones. The body goes straight to
// the blob store (hashed as it is written); the record is written only
// once the archive is whole, in a transaction that checks the fence
// again, so a stale attempt's upload leaves nothing behind.
func (s *Server) uploadArtifacts(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	token := bearer(r)
	limit := s.cfg.MaxArtifactBytes
	if r.ContentLength > limit {
		return s.tooLarge(r.ContentLength)
	}
	// Refuse a stale attempt before reading what may be a large body.
	err = s.store.Read(ctx, func(tx store.Tx) error {
		_, _, err := scheduler.CurrentAttempt(ctx, tx, id, token)
		return err
	})
	if err != nil {
		return fmt.Errorf("upload artifacts of attempt %d: %w", id, err)
	}
	digest, size, err := s.cfg.Artifacts.Put(ctx, &gzipCheck{r: r.Body}, limit)
	switch {
	case errors.Is(err, source.ErrTooLarge):
		return s.tooLarge(-1)
	case errors.Is(err, errNotGzip):
		return badRequest("upload artifacts of attempt %d: the body is not a gzip-compressed archive", id)
	case err != nil:
		return fmt.Errorf("store artifacts of attempt %d: %w", id, err)
	}
	now := s.cfg.Now().UTC()
	var a, replaced *store.Artifact
	err = s.withBlob(digest, func() error {
		return s.store.Update(ctx, func(tx store.Tx) error {
			at, j, err := scheduler.CurrentAttempt(ctx, tx, id, token)
			if err != nil {
				return err
			}
			a = &store.Artifact{JobID: j.ID, AttemptID: at.ID, Name: defaultArtifactsName, Digest: digest, Size: size,
				CreatedAt: now, ExpireAt: s.expireAt(j.Spec.Artifacts, now)}
			if spec := j.Spec.Artifacts; spec != nil && spec.Name != "" {
				a.Name = spec.Name
			}
			replaced, err = tx.Artifacts().Put(ctx, a)
			return err
		})
	})
	if err != nil {
		// The archive may be nobody's now.
		s.collect(context.WithoutCancel(ctx), digest)
		return fmt.Errorf("record artifacts of attempt %d: %w", id, err)
	}
	if replaced != nil && replaced.Digest != digest {
		s.collect(context.WithoutCancel(ctx), replaced.Digest)
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "artifacts stored", slog.Int64("job_id", a.JobID), slog.Int64("attempt_id", id),
		slog.String("digest", digest), slog.Int64("size", size))
	writeJSON(w, http.StatusCreated, artifactsView(a))
	return nil
}

// tooLarge is the answer to an archive over the limit; size is its length
// when known, -1 otherwise.
func (s *Server) tooLarge(size int64) error {
	limit := s.cfg.MaxArtifactBytes
	msg := fmt.Sprintf("artifacts archive larger than the server's limit of %s (%d bytes)", byteSize(limit), limit)
	if size >= 0 {
		msg = fmt.Sprintf("artifacts archive of %d bytes is larger than the server's limit of %s (%d bytes)", size, byteSize(limit), limit)
	}
	return &httpError{http.StatusRequestEntityTooLarge, msg}
}

// byteSize says n in the largest binary unit that divides it.
func byteSize(n int64) string {
	for _, u := range []struct {
		name string
		size int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.size && n%u.size == 0 {
			return fmt.Sprintf("%d %s", n/u.size, u.name)
		}
	}
	return fmt.Sprintf("%d bytes", n)
}

// expireAt is when artifacts uploaded at now expire (zero: never).
func (s *Server) expireAt(spec *store.ArtifactsSpec, now time.Time) time.Time {
	switch {
	case spec != nil && spec.Never:
		return time.Time{}
	case spec != nil && spec.ExpireIn > 0:
		return now.Add(spec.ExpireIn)
	case s.cfg.DefaultArtifactExpiry < 0:
		return time.Time{}
	default:
		return now.Add(s.cfg.DefaultArtifactExpiry)
	}
}

// errNotGzip: an upload is not gzip-compressed.
var errNotGzip = errors.New("not gzip-compressed")

// gzipMagic starts every gzip stream.
var gzipMagic = [2]byte{0x1f, 0x8b}

// gzipCheck passes a body on, failing with errNotGzip when it does not
// start as a gzip stream does. It looks at two bytes and then only counts.
type gzipCheck struct {
	r    io.Reader
	seen int
}

func (g *gzipCheck) Read(p []byte) (int, error) {
	n, err := g.r.Read(p)
	for i := 0; i < n && g.seen < len(gzipMagic); i++ {
		if p[i] != gzipMagic[g.seen] {
			return i, errNotGzip
		}
		g.seen++
	}
	if errors.Is(err, io.EOF) && g.seen < len(gzipMagic) {
		return n, errNotGzip
	}
	return n, err
}

// withBlob runs record, which references the blob digest that was just
// stored, unless the blob was removed meanwhile by a collect that found it
// unreferenced: then nothing is recorded and the uploader must try again.
func (s *Server) withBlob(digest string, record func() error) error {
	s.blobMu.Lock()
	defer s.blobMu.Unlock()
	ok, err := s.cfg.Artifacts.Has(digest)
	if err != nil {
		return err
	}
	if !ok {
		return &httpError{http.StatusServiceUnavailable, "the archive was removed while it was stored; upload it again"}
	}
	return record()
}

// collect removes the blob digest when no artifacts record references it.
// Failures are logged: they leave a blob behind, nothing worse.
func (s *Server) collect(ctx context.Context, digest string) {
	s.blobMu.Lock()
	defer s.blobMu.Unlock()
	var used bool
	err := s.store.Read(ctx, func(tx store.Tx) error {
		var err error
		used, err = tx.Artifacts().Referenced(ctx, digest)
		return err
	})
	if err == nil && !used {
		err = s.cfg.Artifacts.Delete(digest)
	}
	if err != nil {
		s.log.LogAttrs(ctx, slog.LevelWarn, "remove artifacts archive", slog.String("digest", digest),
			slog.String("error", err.Error()))
	}
}

// dependencies returns the artifacts a job downloads before it runs: the
// current, unexpired artifacts of the jobs its spec names, in the spec's
// order, and the names of those whose artifacts expired (the agent fails
// the job, as GitLab does). Jobs without artifacts are left out.
func (s *Server) dependencies(ctx context.Context, j *store.Job) (_ []api.ArtifactRef, expired []string, err error) {
	names := j.Spec.Dependencies
	if len(names) == 0 || s.cfg.Artifacts == nil {
		return nil, nil, nil
	}
	var found []*store.Artifact
	err = s.store.Read(ctx, func(tx store.Tx) error {
		var err error
		found, err = tx.Artifacts().ListByJobNames(ctx, j.PipelineID, names)
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("dependencies of job %d: %w", j.ID, err)
	}
	if len(found) == 0 {
		return nil, nil, nil
	}
	byName := make(map[string]*store.Artifact, len(found))
	for _, a := range found {
		byName[a.JobName] = a
	}
	now := s.cfg.Now()
	out := make([]api.ArtifactRef, 0, len(found))
	for _, name := range names {
		a := byName[name]
		if a == nil {
			continue
		}
		delete(byName, name) // a name given twice is downloaded once
		if a.Expired(now) {
			expired = append(expired, name)
			continue
		}
		out = append(out, api.ArtifactRef{JobID: a.JobID, JobName: a.JobName, Size: a.Size, Digest: a.Digest})
	}
	return out, expired, nil
}

// dropArtifacts deletes the job's artifacts, if it has any. Failures are
// logged: the job's next upload replaces them anyway.
func (s *Server) dropArtifacts(ctx context.Context, jobID int64) {
	var gone *store.Artifact
	err := s.store.Update(ctx, func(tx store.Tx) error {
		a, err := tx.Artifacts().Get(ctx, jobID)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		gone = a
		return tx.Artifacts().Delete(ctx, a.ID)
	})
	if err != nil {
		s.log.LogAttrs(ctx, slog.LevelWarn, "drop artifacts of a retried job", slog.Int64("job_id", jobID), slog.String("error", err.Error()))
		return
	}
	if gone != nil {
		s.collect(ctx, gone.Digest)
	}
}

// dependencyArtifacts serves the artifacts archive of job {job_id} to an
// attempt of the same pipeline.
func (s *Server) dependencyArtifacts(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	jobID, err := pathID(r, "job_id")
	if err != nil {
		return err
	}
	var a *store.Artifact
	err = s.store.Read(ctx, func(tx store.Tx) error {
		_, j, err := scheduler.CurrentAttempt(ctx, tx, id, bearer(r))
		if err != nil {
			return err
		}
		dep, err := tx.Jobs().Get(ctx, jobID)
		if errors.Is(err, store.ErrNotFound) {
			return &httpError{http.StatusNotFound, fmt.Sprintf("no job %d", jobID)}
		}
		if err != nil {
			return err
		}
		if dep.PipelineID != j.PipelineID {
			return &httpError{http.StatusForbidden, fmt.Sprintf("job %d is not in pipeline %d, attempt %d's", jobID, j.PipelineID, id)}
		}
		a, err = s.currentArtifacts(ctx, tx, jobID)
		return err
	})
	if err != nil {
		return fmt.Errorf("artifacts of job %d for attempt %d: %w", jobID, id, err)
	}
	return s.serveArchive(w, r, a, "")
}

// currentArtifacts returns a job's artifacts, or a 404 saying why there
// are none. Expired artifacts are gone, even before the expiry loop
// deletes them.
func (s *Server) currentArtifacts(ctx context.Context, tx store.Tx, jobID int64) (*store.Artifact, error) {
	a, err := tx.Artifacts().Get(ctx, jobID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, &httpError{http.StatusNotFound, fmt.Sprintf("job %d has no artifacts", jobID)}
	}
	if err != nil {
		return nil, err
	}
	if a.Expired(s.cfg.Now()) {
		return nil, &httpError{http.StatusNotFound, fmt.Sprintf("the artifacts of job %d expired at %s",
			jobID, a.ExpireAt.Format(time.RFC3339))}
	}
	return a, nil
}

// serveArchive sends the archive of a, as an attachment named filename
// when filename is not empty. Range requests are served, so a download
// can resume.
func (s *Server) serveArchive(w http.ResponseWriter, r *http.Request, a *store.Artifact, filename string) error {
	f, err := s.openArchive(r.Context(), a)
	if err != nil {
		return err
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/gzip")
	w.Header().Set("ETag", strconv.Quote(a.Digest))
	if filename != "" {
		w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": filename}))
	}
	http.ServeContent(w, r, "", a.CreatedAt, f)
	return nil
}

// openArchive opens the archive of a; a missing blob is a 404.
func (s *Server) openArchive(ctx context.Context, a *store.Artifact) (io.ReadSeekCloser, error) {
	f, err := s.cfg.Artifacts.Open(a.Digest)
	if errors.Is(err, fs.ErrNotExist) {
		s.log.LogAttrs(ctx, slog.LevelError, "artifacts archive missing", slog.Int64("job_id", a.JobID),
			slog.String("digest", a.Digest))
		return nil, &httpError{http.StatusNotFound, fmt.Sprintf("the artifacts archive of job %d is missing", a.JobID)}
	}
	if err != nil {
		return nil, fmt.Errorf("open artifacts of job %d: %w", a.JobID, err)
	}
	return f, nil
}

// jobArtifacts serves a job's artifacts: what the record holds and the
// archive's entries, read from it now.
func (s *Server) jobArtifacts(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	a, err := s.userArtifacts(r)
	if err != nil {
		return err
	}
	f, err := s.openArchive(ctx, a)
	if err != nil {
		return err
	}
	defer f.Close()
	view := artifactsView(a)
	view.Files, view.Truncated, err = listArchive(ctx, f, api.MaxArtifactFiles)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		view.Problem = err.Error()
	}
	writeJSON(w, http.StatusOK, view)
	return nil
}

// downloadArtifacts serves a job's artifacts archive as a file to save.
func (s *Server) downloadArtifacts(w http.ResponseWriter, r *http.Request) error {
	a, err := s.userArtifacts(r)
	if err != nil {
		return err
	}
	return s.serveArchive(w, r, a, archiveFilename(a.Name))
}

// userArtifacts reads the artifacts of job {id}.
func (s *Server) userArtifacts(r *http.Request) (*store.Artifact, error) {
	ctx := r.Context()
	id, err := pathID(r, "id")
	if err != nil {
		return nil, err
	}
	var a *store.Artifact
	err = s.store.Read(ctx, func(tx store.Tx) error {
		if _, err := tx.Jobs().Get(ctx, id); err != nil {
			return err
		}
		a, err = s.currentArtifacts(ctx, tx, id)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("artifacts of job %d: %w", id, err)
	}
	return a, nil
}

// artifactsView is the wire form of a, without its files.
func artifactsView(a *store.Artifact) api.JobArtifacts {
	v := api.JobArtifacts{JobID: a.JobID, JobName: a.JobName, Name: a.Name, Size: a.Size, Digest: a.Digest,
		CreatedAt: a.CreatedAt}
	if !a.ExpireAt.IsZero() {
		v.ExpireAt = &a.ExpireAt
	}
	return v
}

// listArchive lists the entries of a gzip-compressed tar, up to limit of
// them; truncated reports that there are more. On error it returns the
// entries read so far.
func listArchive(ctx context.Context, r io.Reader, limit int) (files []api.ArtifactFile, truncated bool, err error) {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return nil, false, fmt.Errorf("read archive: %w", err)
	}
	defer gz.Close()
	tr := tar.NewReader(gz)
	files = []api.ArtifactFile{}
	for {
		if err := ctx.Err(); err != nil {
			return files, false, err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files, false, nil
		}
		if err != nil {
			return files, false, fmt.Errorf("read archive after %d entries: %w", len(files), err)
		}
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		if len(files) == limit {
			return files, true, nil
		}
		f := api.ArtifactFile{Path: strings.TrimPrefix(hdr.Name, "./"), Mode: hdr.FileInfo().Mode().String()}
		switch hdr.Typeflag {
		case tar.TypeReg:
			f.Size = hdr.Size
		case tar.TypeSymlink:
			f.Link = hdr.Linkname
		}
		files = append(files, f)
	}
}

// archiveFilename is the file name a download of artifacts named name is
// saved as: the name with every character but letters, digits, '.', '-'
// and '_' replaced by '_', no leading dots, at most 100 bytes, and
// ".tar.gz" after it.
func archiveFilename(name string) string {
	b := []byte(name)
	for i, c := range b {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == '_') {
			b[i] = '_'
		}
	}
	safe := strings.TrimLeft(string(b), ".")
	if len(safe) > 100 {
		safe = safe[:100]
	}
	if strings.Trim(safe, "_") == "" {
		safe = defaultArtifactsName
	}
	return safe + ".tar.gz"
}

// Run does the server's upkeep until ctx ends: it deletes expired
// artifacts at once and then every Config.ArtifactExpiryInterval, and
// fleet events older than Config.EventRetention. Errors are logged; the
// next round tries again. Of servers sharing a database, only the leader
// runs it.
func (s *Server) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { s.pruneEventsLoop(ctx) })
	if s.cfg.Artifacts == nil {
		<-ctx.Done()
		return nil
	}
	// Uploads that a crash cut off left temporary files. (File times are
	// the file system's: the real clock, not Config.Now.)
	if err := s.cfg.Artifacts.Sweep(ctx, time.Now().Add(-time.Hour)); err != nil && ctx.Err() == nil {
		s.log.LogAttrs(ctx, slog.LevelWarn, "sweep artifacts store", slog.String("error", err.Error()))
	}
	t := time.NewTicker(s.cfg.ArtifactExpiryInterval)
	defer t.Stop()
	for {
		if n, err := s.ExpireArtifacts(ctx); err != nil && ctx.Err() == nil {
			s.log.LogAttrs(ctx, slog.LevelError, "expire artifacts", slog.Int("deleted", n), slog.String("error", err.Error()))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// ExpireArtifacts deletes the artifacts that expired by now: their records,
// and each archive no record references any more. It returns how many
// records it deleted.
func (s *Server) ExpireArtifacts(ctx context.Context) (int, error) {
	if s.cfg.Artifacts == nil {
		return 0, nil
	}
	now := s.cfg.Now().UTC()
	deleted := 0
	for {
		var expired []*store.Artifact
		err := s.store.Update(ctx, func(tx store.Tx) error {
			var err error
			if expired, err = tx.Artifacts().ListExpired(ctx, now, expireBatch); err != nil {
				return err
			}
			for _, a := range expired {
				if err := tx.Artifacts().Delete(ctx, a.ID); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return deleted, fmt.Errorf("expire artifacts: %w", err)
		}
		deleted += len(expired)
		seen := make(map[string]bool, len(expired))
		for _, a := range expired {
			if !seen[a.Digest] {
				seen[a.Digest] = true
				s.collect(ctx, a.Digest)
			}
			s.log.LogAttrs(ctx, slog.LevelDebug, "artifacts expired", slog.Int64("job_id", a.JobID),
				slog.String("digest", a.Digest), slog.Time("expire_at", a.ExpireAt))
		}
		if len(expired) > 0 {
			s.log.LogAttrs(ctx, slog.LevelInfo, "expired artifacts deleted", slog.Int("count", len(expired)))
		}
		if len(expired) < expireBatch {
			return deleted, nil
		}
	}
}
