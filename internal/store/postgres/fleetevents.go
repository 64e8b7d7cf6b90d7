package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/hangar-ci/hangar/internal/store/internal/codec"

	"github.com/jackc/pgx/v5"

	"github.com/hangar-ci/hangar/internal/store"
)

// fleetEvents implements store.FleetEvents: one row per event in
// fleet_events, walked on its (at, id) index.
type fleetEvents tx

const fleetEventCols = `id, at, class, instance, kind, reason`

func scanFleetEvent(r scanner) (*store.FleetEvent, error) {
	var (
		e  store.FleetEvent
		at int64
	)
	if err := r.Scan(&e.ID, &at, &e.Class, &e.Instance, &e.Kind, &e.Reason); err != nil {
		return nil, dbErr(err)
	}
	e.At = codec.FromMicros(at)
	return &e, nil
}

func scanFleetEvents(rows pgx.Rows, err error) ([]*store.FleetEvent, error) {
	return collect(rows, err, scanFleetEvent)
}

func (x fleetEvents) Append(ctx context.Context, e *store.FleetEvent) error {
	err := tx(x).queryRow(ctx, `INSERT INTO fleet_events (at, class, instance, kind, reason)
		VALUES ($1, $2, $3, $4, $5) RETURNING id`,
		codec.Micros(e.At), e.Class, e.Instance, e.Kind, e.Reason).Scan(&e.ID)
	if err != nil {
		return fmt.Errorf("append fleet event %s of %s: %w", e.Kind, e.Instance, dbErr(err))
	}
	return nil
}

// List takes the newest limit events of the range, walking the index
// backwards, and puts them back in order.
func (x fleetEvents) List(ctx context.Context, since time.Time, limit int) ([]*store.FleetEvent, error) {
	var lim *int // LIMIT NULL: no limit
	if limit > 0 {
		lim = &limit
	}
	es, err := scanFleetEvents(tx(x).query(ctx, `SELECT `+fleetEventCols+` FROM (
			SELECT `+fleetEventCols+` FROM fleet_events WHERE at >= $1 ORDER BY at DESC, id DESC LIMIT $2) e
		ORDER BY at, id`, codec.SinceMicros(since), lim))
	if err != nil {
		return nil, fmt.Errorf("list fleet events since %s: %w", since, err)
	}
	return es, nil
}

func (x fleetEvents) DeleteBefore(ctx context.Context, t time.Time) (int, error) {
	if t.IsZero() {
		return 0, nil // nothing is before the zero time
	}
	tag, err := tx(x).q.Exec(ctx, `DELETE FROM fleet_events WHERE at < $1`, codec.Micros(t))
	if err != nil {
		return 0, fmt.Errorf("delete fleet events before %s: %w", t, dbErr(err))
	}
	return int(tag.RowsAffected()), nil
}
