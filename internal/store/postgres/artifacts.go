package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hangar-ci/hangar/internal/store/internal/codec"

	"github.com/jackc/pgx/v5"

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

func scanArtifacts(rows pgx.Rows, err error) ([]*store.Artifact, error) {
	return collect(rows, err, scanArtifact)
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
		if err := tx(x).exec(ctx, false, `DELETE FROM artifacts WHERE id = $1`, old.ID); err != nil {
			return nil, fmt.Errorf("put artifacts of job %d: replace %d: %w", a.JobID, old.ID, err)
		}
	}
	err = tx(x).queryRow(ctx, `WITH ins AS (
			INSERT INTO artifacts (job_id, pipeline_id, attempt_id, name, digest, size, created_at, expire_at)
			SELECT j.id, j.pipeline_id, t.id, $1, $2, $3, $4, $5 FROM jobs j JOIN attempts t ON t.job_id = j.id
			WHERE j.id = $6 AND t.id = $7
			RETURNING id, pipeline_id, job_id)
		SELECT ins.id, ins.pipeline_id, j.name FROM ins JOIN jobs j ON j.id = ins.job_id`,
		a.Name, a.Digest, a.Size, codec.Micros(a.CreatedAt), codec.Micros(a.ExpireAt), a.JobID, a.AttemptID,
	).Scan(&a.ID, &a.PipelineID, &a.JobName)
	if err != nil {
		return nil, fmt.Errorf("put artifacts of job %d from attempt %d: %w", a.JobID, a.AttemptID, dbErr(err))
	}
	return old, nil
}

func (x artifacts) Get(ctx context.Context, jobID int64) (*store.Artifact, error) {
	a, err := scanArtifact(tx(x).queryRow(ctx, `SELECT `+artifactCols+artifactFrom+` WHERE a.job_id = $1`, jobID))
	if err != nil {
		return nil, fmt.Errorf("get artifacts of job %d: %w", jobID, err)
	}
	return a, nil
}

func (x artifacts) ListByJobNames(ctx context.Context, pipelineID int64, names []string) ([]*store.Artifact, error) {
	if len(names) == 0 {
		return nil, nil
	}
	// One statement whatever the number of names: they travel as an
	// array. The pipeline's artifacts come from their index; only their
	// jobs are looked at.
	as, err := scanArtifacts(tx(x).query(ctx, `SELECT `+artifactCols+artifactFrom+`
		WHERE a.pipeline_id = $1 AND j.name = ANY($2)`, pipelineID, names))
	if err != nil {
		return nil, fmt.Errorf("list artifacts of pipeline %d: %w", pipelineID, err)
	}
	return as, nil
}

func (x artifacts) ListExpired(ctx context.Context, now time.Time, limit int) ([]*store.Artifact, error) {
	var lim *int // LIMIT NULL: no limit
	if limit > 0 {
		lim = &limit
	}
	as, err := scanArtifacts(tx(x).query(ctx, `SELECT `+artifactCols+artifactFrom+`
		WHERE a.expire_at > 0 AND a.expire_at <= $1 ORDER BY a.expire_at, a.id LIMIT $2`, codec.Micros(now), lim))
	if err != nil {
		return nil, fmt.Errorf("list expired artifacts: %w", err)
	}
	return as, nil
}

func (x artifacts) Delete(ctx context.Context, id int64) error {
	if err := tx(x).exec(ctx, true, `DELETE FROM artifacts WHERE id = $1`, id); err != nil {
		return fmt.Errorf("delete artifacts %d: %w", id, err)
	}
	return nil
}

func (x artifacts) Referenced(ctx context.Context, digest string) (bool, error) {
	var found bool
	if err := tx(x).queryRow(ctx, `SELECT EXISTS (SELECT 1 FROM artifacts WHERE digest = $1)`, digest).Scan(&found); err != nil {
		return false, fmt.Errorf("look up artifacts with digest %s: %w", digest, err)
	}
	return found, nil
}
