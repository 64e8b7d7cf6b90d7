package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/hangar-ci/hangar/internal/store/internal/codec"

	"github.com/hangar-ci/hangar/internal/store"
)

// pipelines implements store.Pipelines.
type pipelines tx

const pipelineCols = `id, project_id, status, source, ref, sha, archive, file, name,
	variables, created_at, started_at, finished_at`

// defaultPipelineLimit is PipelineFilter's Limit when it is 0.
const defaultPipelineLimit = 100

func scanPipeline(r scanner) (*store.Pipeline, error) {
	var (
		p                          store.Pipeline
		vars                       string
		created, started, finished int64
	)
	err := r.Scan(&p.ID, &p.ProjectID, &p.Status, &p.Source, &p.Ref, &p.SHA, &p.Archive, &p.File, &p.Name,
		&vars, &created, &started, &finished)
	if err != nil {
		return nil, dbErr(err)
	}
	if err := codec.FromJSON(vars, &p.Variables); err != nil {
		return nil, fmt.Errorf("decode variables: %w", err)
	}
	p.CreatedAt = codec.FromMicros(created)
	p.StartedAt = codec.FromMicros(started)
	p.FinishedAt = codec.FromMicros(finished)
	return &p, nil
}

func (x pipelines) Create(ctx context.Context, p *store.Pipeline) error {
	vars, err := codec.ToJSON(p.Variables)
	if err != nil {
		return fmt.Errorf("create pipeline: encode variables: %w", err)
	}
	err = tx(x).queryRow(ctx, `INSERT INTO pipelines (project_id, status, source, ref, sha, archive, file, name,
			variables, created_at, started_at, finished_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id`,
		p.ProjectID, p.Status, p.Source, p.Ref, p.SHA, p.Archive, p.File, p.Name,
		vars, codec.Micros(p.CreatedAt), codec.Micros(p.StartedAt), codec.Micros(p.FinishedAt)).Scan(&p.ID)
	if err != nil {
		return fmt.Errorf("create pipeline in project %d: %w", p.ProjectID, dbErr(err))
	}
	return nil
}

func (x pipelines) Get(ctx context.Context, id int64) (*store.Pipeline, error) {
	p, err := scanPipeline(tx(x).queryRow(ctx, `SELECT `+pipelineCols+` FROM pipelines WHERE id = $1`, id))
	if err != nil {
		return nil, fmt.Errorf("get pipeline %d: %w", id, err)
	}
	return p, nil
}

func (x pipelines) List(ctx context.Context, f store.PipelineFilter) ([]*store.Pipeline, error) {
	var (
		where []string
		args  []any
	)
	// cond adds a condition on the next parameter, $N in its text.
	cond := func(text string, arg any) {
		args = append(args, arg)
		where = append(where, strings.Replace(text, "$N", fmt.Sprintf("$%d", len(args)), 1))
	}
	if f.ProjectID != 0 {
		cond("project_id = $N", f.ProjectID)
	}
	if f.Status != "" {
		cond("status = $N", f.Status)
	}
	if f.Ref != "" {
		cond("ref = $N", f.Ref)
	}
	if f.Source != "" {
		cond("source = $N", f.Source)
	}
	if f.BeforeID != 0 {
		cond("id < $N", f.BeforeID)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = defaultPipelineLimit
	}
	query := `SELECT ` + pipelineCols + ` FROM pipelines`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, " AND ")
	}
	args = append(args, limit)
	query += fmt.Sprintf(` ORDER BY id DESC LIMIT $%d`, len(args))

	rows, err := tx(x).query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list pipelines: %w", err)
	}
	defer rows.Close()
	var ps []*store.Pipeline
	for rows.Next() {
		p, err := scanPipeline(rows)
		if err != nil {
			return nil, fmt.Errorf("list pipelines: %w", err)
		}
		ps = append(ps, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list pipelines: %w", err)
	}
	return ps, nil
}

func (x pipelines) Update(ctx context.Context, p *store.Pipeline) error {
	err := tx(x).exec(ctx, true,
		`UPDATE pipelines SET status = $1, started_at = $2, finished_at = $3 WHERE id = $4`,
		p.Status, codec.Micros(p.StartedAt), codec.Micros(p.FinishedAt), p.ID)
	if err != nil {
		return fmt.Errorf("update pipeline %d: %w", p.ID, err)
	}
	return nil
}
