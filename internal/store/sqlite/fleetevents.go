package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/hangar-ci/hangar/internal/store/internal/codec"

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

func scanFleetEvents(rows *sql.Rows, err error) ([]*store.FleetEvent, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var es []*store.FleetEvent
	for rows.Next() {
		e, err := scanFleetEvent(rows)
		if err != nil {
			return nil, err
		}
		es = append(es, e)
	}
	return es, rows.Err()
}

func (x fleetEvents) Append(ctx context.Context, e *store.FleetEvent) error {
	err := tx(x).queryRow(ctx, `INSERT INTO fleet_events (at, class, instance, kind, reason)
		VALUES (?, ?, ?, ?, ?) RETURNING id`,
		codec.Micros(e.At), e.Class, e.Instance, e.Kind, e.Reason).Scan(&e.ID)
	if err != nil {
		return fmt.Errorf("append fleet event %s of %s: %w", e.Kind, e.Instance, dbErr(err))
	}
	return nil
}

// List takes the newest limit events of the range, walking the index
// backwards, and puts them back in order.
func (x fleetEvents) List(ctx context.Context, since time.Time, limit int) ([]*store.FleetEvent, error) {
	if limit <= 0 {
		limit = -1 // no limit
	}
	es, err := scanFleetEvents(tx(x).query(ctx, `SELECT `+fleetEventCols+` FROM (
			SELECT `+fleetEventCols+` FROM fleet_events WHERE at >= ? ORDER BY at DESC, id DESC LIMIT ?)
		ORDER BY at, id`, codec.SinceMicros(since), limit))
	if err != nil {
		return nil, fmt.Errorf("list fleet events since %s: %w", since, err)
	}
	return es, nil
}

func (x fleetEvents) DeleteBefore(ctx context.Context, t time.Time) (int, error) {
	if t.IsZero() {
		return 0, nil // nothing is before the zero time
	}
	res, err := tx(x).exec(ctx, `DELETE FROM fleet_events WHERE at < ?`, codec.Micros(t))
	if err != nil {
		return 0, fmt.Errorf("delete fleet events before %s: %w", t, dbErr(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("delete fleet events before %s: %w", t, err)
	}
	return int(n), nil
}
