package sqlite

import (
	"context"
	"errors"
	"fmt"

	"github.com/hangar-ci/hangar/internal/store/internal/codec"

	"github.com/hangar-ci/hangar/internal/store"
)

// logs implements store.Logs: each append that adds bytes becomes one row
// of log_chunks at the offset where its new bytes start, and log_sizes
// keeps the total.
type logs tx

func (x logs) size(ctx context.Context, attemptID int64) (int64, error) {
	var size int64
	err := tx(x).queryRow(ctx, `SELECT size FROM log_sizes WHERE attempt_id = ?`, attemptID).Scan(&size)
	if err != nil {
		if err = dbErr(err); errors.Is(err, store.ErrNotFound) {
			return 0, nil
		}
		return 0, err
	}
	return size, nil
}

// Append writes the part of data that lies past the log's end. Appending
// to an attempt that does not exist fails with store.ErrNotFound.
func (x logs) Append(ctx context.Context, attemptID, offset int64, data []byte) (int64, error) {
	if offset < 0 {
		return 0, fmt.Errorf("append log of attempt %d: negative offset %d", attemptID, offset)
	}
	size, err := x.size(ctx, attemptID)
	if err != nil {
		return 0, fmt.Errorf("append log of attempt %d: %w", attemptID, err)
	}
	if offset > size {
		return size, &store.GapError{Size: size}
	}
	end := offset + int64(len(data))
	if end <= size {
		return size, nil
	}
	if _, err := tx(x).exec(ctx, `INSERT INTO log_sizes (attempt_id, size) VALUES (?, ?)
			ON CONFLICT (attempt_id) DO UPDATE SET size = excluded.size`, attemptID, end); err != nil {
		return 0, fmt.Errorf("append log of attempt %d: %w", attemptID, dbErr(err))
	}
	if _, err := tx(x).exec(ctx, `INSERT INTO log_chunks (attempt_id, offset, data) VALUES (?, ?, ?)`,
		attemptID, size, data[size-offset:]); err != nil {
		return 0, fmt.Errorf("append log of attempt %d at %d: %w", attemptID, size, dbErr(err))
	}
	return end, nil
}

func (x logs) Size(ctx context.Context, attemptID int64) (int64, error) {
	size, err := x.size(ctx, attemptID)
	if err != nil {
		return 0, fmt.Errorf("log size of attempt %d: %w", attemptID, err)
	}
	return size, nil
}

func (x logs) Sizes(ctx context.Context, attemptIDs []int64) (map[int64]int64, error) {
	sizes := make(map[int64]int64, len(attemptIDs))
	if len(attemptIDs) == 0 {
		return sizes, nil
	}
	ids, err := codec.ToJSON(attemptIDs)
	if err != nil {
		return nil, err
	}
	// One statement whatever the number of IDs: they travel as a JSON array.
	rows, err := tx(x).query(ctx, `SELECT attempt_id, size FROM log_sizes
		WHERE attempt_id IN (SELECT value FROM json_each(?))`, ids)
	if err != nil {
		return nil, fmt.Errorf("log sizes: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, size int64
		if err := rows.Scan(&id, &size); err != nil {
			return nil, fmt.Errorf("log sizes: %w", err)
		}
		sizes[id] = size
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("log sizes: %w", err)
	}
	return sizes, nil
}

// Read returns up to limit bytes from offset: fewer at the end of the log,
// none past it or when limit is not positive.
func (x logs) Read(ctx context.Context, attemptID, offset int64, limit int) ([]byte, error) {
	if offset < 0 {
		return nil, fmt.Errorf("read log of attempt %d: negative offset %d", attemptID, offset)
	}
	if limit <= 0 {
		return nil, nil
	}
	end := offset + int64(limit)
	// The chunks overlapping [offset, end): from the last one starting at
	// or before offset to the last one starting before end.
	rows, err := tx(x).query(ctx, `SELECT offset, data FROM log_chunks
		WHERE attempt_id = ?1 AND offset < ?3 AND offset >= coalesce(
			(SELECT max(offset) FROM log_chunks WHERE attempt_id = ?1 AND offset <= ?2), 0)
		ORDER BY offset`, attemptID, offset, end)
	if err != nil {
		return nil, fmt.Errorf("read log of attempt %d: %w", attemptID, err)
	}
	defer rows.Close()
	var out []byte
	for rows.Next() {
		var (
			at   int64
			data []byte
		)
		if err := rows.Scan(&at, &data); err != nil {
			return nil, fmt.Errorf("read log of attempt %d: %w", attemptID, err)
		}
		lo := max(offset-at, 0)
		hi := min(end-at, int64(len(data)))
		if lo < hi {
			out = append(out, data[lo:hi]...)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read log of attempt %d: %w", attemptID, err)
	}
	return out, nil
}
