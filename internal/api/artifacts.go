package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// This file holds the wire types and client calls of artifacts: the
// archives jobs upload after their steps (artifacts:) and later jobs of the
// pipeline download before theirs (Assignment.Dependencies).

// MaxArtifactFiles caps the file list of GET /jobs/{id}/artifacts; a longer
// archive's list is cut and marked Truncated.
const MaxArtifactFiles = 10_000

// JobArtifacts describes a job's artifacts archive. It answers an upload
// (PUT /attempts/{id}/artifacts, without Files) and GET /jobs/{id}/artifacts
// (with them). Its job_id, job_name, size and digest are an ArtifactRef's.
type JobArtifacts struct {
	JobID   int64  `json:"job_id"`
	JobName string `json:"job_name"`
	// Name is the job's artifacts:name, "artifacts" when it sets none.
	Name string `json:"name"`
	// Size is the archive's size in bytes and Digest its sha256.
	Size      int64     `json:"size"`
	Digest    string    `json:"digest"`
	CreatedAt time.Time `json:"created_at"`
	// ExpireAt is when the server deletes the archive; nil means never.
	ExpireAt *time.Time `json:"expire_at,omitempty"`
	// Files are the archive's entries, in archive order, at most
	// MaxArtifactFiles of them.
	Files []ArtifactFile `json:"files,omitempty"`
	// Truncated says the archive holds more entries than Files lists.
	Truncated bool `json:"truncated,omitempty"`
	// Problem, when not empty, says why the archive could not be read to
	// its end: Files lists the entries before the problem.
	Problem string `json:"problem,omitempty"`
}

// Ref returns the reference a dependent job's assignment carries.
func (a JobArtifacts) Ref() ArtifactRef {
	return ArtifactRef{JobID: a.JobID, JobName: a.JobName, Size: a.Size, Digest: a.Digest}
}

// ArtifactFile is one entry of an artifacts archive.
type ArtifactFile struct {
	// Path is the entry's slash-separated path in the archive.
	Path string `json:"path"`
	// Size is a file's length in bytes (0 for directories and symlinks).
	Size int64 `json:"size"`
	// Mode is the entry's type and permissions as ls -l shows them:
	// "-rw-r--r--", "drwxr-xr-x", "Lrwxrwxrwx".
	Mode string `json:"mode"`
	// Link is a symlink's target.
	Link string `json:"link,omitempty"`
}

// UploadArtifacts sends the artifacts archive (a gzip-compressed tar) of an
// attempt: PUT /attempts/{id}/artifacts with the attempt's token. size is
// the archive's length when known, and -1 otherwise: a known size lets the
// server refuse an archive over its limit before it is sent. The call is
// not retried (body is read once); an error status is a *StatusError.
func (c *Client) UploadArtifacts(ctx context.Context, attemptID int64, token string, body io.Reader, size int64) (JobArtifacts, error) {
	path := fmt.Sprintf("/attempts/%d/artifacts", attemptID)
	var out JobArtifacts
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, c.BaseURL+Prefix+path, body)
	if err != nil {
		return out, fmt.Errorf("PUT %s: %w", path, err)
	}
	req.ContentLength = size
	if size == 0 {
		req.Body = http.NoBody
	}
	req.Header.Set("Content-Type", "application/gzip")
	req.Header.Set("Authorization", "Bearer "+token)
	if _, err := c.send(req, path, &out); err != nil {
		return out, err
	}
	return out, nil
}

// DownloadArtifacts writes the artifacts archive of job jobID, a job the
// attempt depends on, to w: GET /attempts/{id}/artifacts/{job_id} with the
// attempt's token.
func (c *Client) DownloadArtifacts(ctx context.Context, attemptID int64, token string, jobID int64, w io.Writer) error {
	_, err := c.Do(ctx, http.MethodGet, fmt.Sprintf("/attempts/%d/artifacts/%d", attemptID, jobID), token, nil, w)
	return err
}

// send makes the call req (to path below Prefix) and decodes a 2xx JSON
// answer into out, an error status into a *StatusError, as Do does.
func (c *Client) send(req *http.Request, path string, out any) (int, error) {
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", req.Method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return resp.StatusCode, statusError(req.Method, path, resp)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return resp.StatusCode, fmt.Errorf("decode %s %s: %w", req.Method, path, err)
	}
	return resp.StatusCode, nil
}

// statusError reads an error response into a *StatusError.
func statusError(method, path string, resp *http.Response) error {
	se := &StatusError{Method: method, Path: path, Code: resp.StatusCode}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if json.Unmarshal(b, &se.Body) != nil || se.Body.Error == "" {
		se.Body.Error = strings.TrimSpace(string(b))
	}
	return se
}
