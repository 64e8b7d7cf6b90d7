package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/hangar-ci/hangar/internal/store/internal/codec"

	"github.com/hangar-ci/hangar/internal/store"
)

// artifacts implements store.Artifacts: one row per job in artifacts, the
// job's name joined in from jobs.
type artifacts tx

const artifactCols = `a.id, a.job_id, a.pipeline_id, j.name, a.attempt_id, a.name, a.digest, a.size,
	a.created_at, a.expire_at`

// artifactFrom joins each artifacts row with its job.
const artifactFrom = ` FROM artifacts a JOIN jobs j ON j.id = a.job_id`

func scanArtifact(r scanner) (*store.Artifact, error) {
	var (
		a               store.Artifact
		created, expire int64
	)
	err := r.Scan(&a.ID, &a.JobID, &a.PipelineID, &a.JobName, &a.AttemptID, &a.Name, &a.Digest, &a.Size,
		&created, &expire)
	if err != nil {
		return nil, dbErr(err)
	}
	a.CreatedAt = codec.FromMicros(created)
	a.ExpireAt = codec.FromMicros(expire)
	return &a, nil
}

func scanArtifacts(rows *sql.Rows, err error) ([]*store.Artifact, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var as []*store.Artifact
	for rows.Next() {
		a, err := scanArtifact(rows)
		if err != nil {
			return nil, err
		}
		as = append(as, a)
	}
	return as, rows.Err()
}

// Put deletes the job's previous row and inserts a new one. The insert
// takes the pipeline and the job's name from the job, joined with the
// attempt, so an attempt of another job inserts nothing (ErrNotFound).
func (x artifacts) Put(ctx context.Context, a *store.Artifact) (*store.Artifact, error) {
	old, err := x.Get(ctx, a.JobID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		old = nil
	case err != nil:
		return nil, fmt.Errorf("put artifacts of job %d: %w", a.JobID, err)
	default:
		if _, err := tx(x).exec(ctx, `DELETE FROM artifacts WHERE id = ?`, old.ID); err != nil {
			return nil, fmt.Errorf("put artifacts of job %d: replace %d: %w", a.JobID, old.ID, dbErr(err))
		}
	}
	err = tx(x).queryRow(ctx, `INSERT INTO artifacts (job_id, pipeline_id, attempt_id, name, digest, size,
			created_at, expire_at)
		SELECT j.id, j.pipeline_id, t.id, ?, ?, ?, ?, ? FROM jobs j JOIN attempts t ON t.job_id = j.id
		WHERE j.id = ? AND t.id = ?
		RETURNING id, pipeline_id, (SELECT name FROM jobs WHERE id = job_id)`,
		a.Name, a.Digest, a.Size, codec.Micros(a.CreatedAt), codec.Micros(a.ExpireAt), a.JobID, a.AttemptID,
	).Scan(&a.ID, &a.PipelineID, &a.JobName)
	if err != nil {
		return nil, fmt.Errorf("put artifacts of job %d from attempt %d: %w", a.JobID, a.AttemptID, dbErr(err))
	}
	return old, nil
}

func (x artifacts) Get(ctx context.Context, jobID int64) (*store.Artifact, error) {
	a, err := scanArtifact(tx(x).queryRow(ctx, `SELECT `+artifactCols+artifactFrom+` WHERE a.job_id = ?`, jobID))
	if err != nil {
		return nil, fmt.Errorf("get artifacts of job %d: %w", jobID, err)
	}
	return a, nil
}

func (x artifacts) ListByJobNames(ctx context.Context, pipelineID int64, names []string) ([]*store.Artifact, error) {
	if len(names) == 0 {
		return nil, nil
	}
	list, err := codec.ToJSON(names)
	if err != nil {
		return nil, fmt.Errorf("list artifacts of pipeline %d: encode names: %w", pipelineID, err)
	}
	// One statement whatever the number of names: they travel as a JSON
	// array. The pipeline's artifacts come from their index; only their
	// jobs are looked at.
	as, err := scanArtifacts(tx(x).query(ctx, `SELECT `+artifactCols+artifactFrom+`
		WHERE a.pipeline_id = ? AND j.name IN (SELECT value FROM json_each(?))`, pipelineID, list))
	if err != nil {
		return nil, fmt.Errorf("list artifacts of pipeline %d: %w", pipelineID, err)
	}
	return as, nil
}

func (x artifacts) ListExpired(ctx context.Context, now time.Time, limit int) ([]*store.Artifact, error) {
	if limit <= 0 {
		limit = -1 // no limit
	}
	as, err := scanArtifacts(tx(x).query(ctx, `SELECT `+artifactCols+artifactFrom+`
		WHERE a.expire_at > 0 AND a.expire_at <= ? ORDER BY a.expire_at, a.id LIMIT ?`, codec.Micros(now), limit))
	if err != nil {
		return nil, fmt.Errorf("list expired artifacts: %w", err)
	}
	return as, nil
}

func (x artifacts) Delete(ctx context.Context, id int64) error {
	res, err := tx(x).exec(ctx, `DELETE FROM artifacts WHERE id = ?`, id)
	if err == nil {
		err = affected(res)
	}
	if err != nil {
		return fmt.Errorf("delete artifacts %d: %w", id, dbErr(err))
	}
	return nil
}

func (x artifacts) Referenced(ctx context.Context, digest string) (bool, error) {
	var n int
	if err := tx(x).queryRow(ctx, `SELECT EXISTS (SELECT 1 FROM artifacts WHERE digest = ?)`, digest).Scan(&n); err != nil {
		return false, fmt.Errorf("look up artifacts with digest %s: %w", digest, err)
	}
	return n == 1, nil
}
