package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/hangar-ci/hangar/internal/store/internal/codec"

	"github.com/hangar-ci/hangar/internal/store"
)

// projects implements store.Projects.
type projects tx

const projectCols = `id, name, created_at`

func scanProject(r scanner) (*store.Project, error) {
	var (
		p       store.Project
		created int64
	)
	if err := r.Scan(&p.ID, &p.Name, &created); err != nil {
		return nil, dbErr(err)
	}
	p.CreatedAt = codec.FromMicros(created)
	return &p, nil
}

func (x projects) Ensure(ctx context.Context, name string, now time.Time) (*store.Project, error) {
	_, err := tx(x).exec(ctx,
		`INSERT INTO projects (name, created_at) VALUES (?, ?) ON CONFLICT (name) DO NOTHING`,
		name, codec.Micros(now))
	if err != nil {
		return nil, fmt.Errorf("ensure project %q: %w", name, dbErr(err))
	}
	p, err := x.GetByName(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("ensure project: %w", err)
	}
	return p, nil
}

func (x projects) Get(ctx context.Context, id int64) (*store.Project, error) {
	p, err := scanProject(tx(x).queryRow(ctx, `SELECT `+projectCols+` FROM projects WHERE id = ?`, id))
	if err != nil {
		return nil, fmt.Errorf("get project %d: %w", id, err)
	}
	return p, nil
}

func (x projects) GetByName(ctx context.Context, name string) (*store.Project, error) {
	p, err := scanProject(tx(x).queryRow(ctx, `SELECT `+projectCols+` FROM projects WHERE name = ?`, name))
	if err != nil {
		return nil, fmt.Errorf("get project %q: %w", name, err)
	}
	return p, nil
}

// List returns the projects ordered by ID.
func (x projects) List(ctx context.Context) ([]*store.Project, error) {
	rows, err := tx(x).query(ctx, `SELECT `+projectCols+` FROM projects ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list projects: %w", err)
	}
	defer rows.Close()
	var ps []*store.Project
	for rows.Next() {
		p, err := scanProject(rows)
		if err != nil {
			return nil, fmt.Errorf("list projects: %w", err)
		}
		ps = append(ps, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list projects: %w", err)
	}
	return ps, nil
}
