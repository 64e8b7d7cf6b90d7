package sqlite

import (
	"context"
	"fmt"

	"github.com/hangar-ci/hangar/internal/store/internal/codec"

	"github.com/hangar-ci/hangar/internal/store"
)

// agents implements store.Agents.
type agents tx

const agentCols = `id, name, token_hash, labels, status, version, concurrency, health, created_at, last_seen_at`

func scanAgent(r scanner) (*store.Agent, error) {
	var (
		a              store.Agent
		labels, health string
		created, seen  int64
	)
	err := r.Scan(&a.ID, &a.Name, &a.TokenHash, &labels, &a.Status, &a.Version, &a.Concurrency, &health,
		&created, &seen)
	if err != nil {
		return nil, dbErr(err)
	}
	if err := codec.FromJSON(labels, &a.Labels); err != nil {
		return nil, fmt.Errorf("decode agent %d labels: %w", a.ID, err)
	}
	if err := codec.FromJSON(health, &a.Health); err != nil {
		return nil, fmt.Errorf("decode agent %d health: %w", a.ID, err)
	}
	a.CreatedAt = codec.FromMicros(created)
	a.LastSeenAt = codec.FromMicros(seen)
	return &a, nil
}

// Create inserts a; when another agent has the same TokenHash it is
// refused with store.ErrConflict.
func (x agents) Create(ctx context.Context, a *store.Agent) error {
	labels, err := codec.ToJSON(a.Labels)
	if err != nil {
		return fmt.Errorf("create agent %q: encode labels: %w", a.Name, err)
	}
	health, err := codec.ToJSON(a.Health)
	if err != nil {
		return fmt.Errorf("create agent %q: encode health: %w", a.Name, err)
	}
	err = tx(x).queryRow(ctx, `INSERT INTO agents (name, token_hash, labels, status, version, concurrency,
			health, created_at, last_seen_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		a.Name, codec.NonNil(a.TokenHash), labels, a.Status, a.Version, a.Concurrency, health,
		codec.Micros(a.CreatedAt), codec.Micros(a.LastSeenAt)).Scan(&a.ID)
	if err != nil {
		return fmt.Errorf("create agent %q: %w", a.Name, dbErr(err))
	}
	return nil
}

func (x agents) Get(ctx context.Context, id int64) (*store.Agent, error) {
	a, err := scanAgent(tx(x).queryRow(ctx, `SELECT `+agentCols+` FROM agents WHERE id = ?`, id))
	if err != nil {
		return nil, fmt.Errorf("get agent %d: %w", id, err)
	}
	return a, nil
}

func (x agents) GetByTokenHash(ctx context.Context, h []byte) (*store.Agent, error) {
	a, err := scanAgent(tx(x).queryRow(ctx, `SELECT `+agentCols+` FROM agents WHERE token_hash = ?`, codec.NonNil(h)))
	if err != nil {
		return nil, fmt.Errorf("get agent by token: %w", err)
	}
	return a, nil
}

func (x agents) List(ctx context.Context, withGone bool) ([]*store.Agent, error) {
	rows, err := tx(x).query(ctx, `SELECT `+agentCols+` FROM agents WHERE ? OR status <> ? ORDER BY id`,
		withGone, store.AgentGone)
	if err != nil {
		return nil, fmt.Errorf("list agents: %w", err)
	}
	defer rows.Close()
	var as []*store.Agent
	for rows.Next() {
		a, err := scanAgent(rows)
		if err != nil {
			return nil, fmt.Errorf("list agents: %w", err)
		}
		as = append(as, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list agents: %w", err)
	}
	return as, nil
}

func (x agents) Update(ctx context.Context, a *store.Agent) error {
	labels, err := codec.ToJSON(a.Labels)
	if err != nil {
		return fmt.Errorf("update agent %d: encode labels: %w", a.ID, err)
	}
	health, err := codec.ToJSON(a.Health)
	if err != nil {
		return fmt.Errorf("update agent %d: encode health: %w", a.ID, err)
	}
	res, err := tx(x).exec(ctx,
		`UPDATE agents SET status = ?, labels = ?, last_seen_at = ?, health = ? WHERE id = ?`,
		a.Status, labels, codec.Micros(a.LastSeenAt), health, a.ID)
	if err == nil {
		err = affected(res)
	}
	if err != nil {
		return fmt.Errorf("update agent %d: %w", a.ID, dbErr(err))
	}
	return nil
}
