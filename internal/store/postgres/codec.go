package postgres

import (
	"encoding/json"
	"math"
	"time"

	"github.com/hangar-ci/hangar/internal/store"
)

// scanner is a pgx.Row or pgx.Rows.
type scanner interface {
	Scan(dest ...any) error
}

// micros encodes t as Unix microseconds, the zero time as 0.
func micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

// fromMicros decodes what micros encoded, as a UTC time.
func fromMicros(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(us).UTC()
}

// toJSON encodes a list or struct column.
func toJSON(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// stepsJSON encodes an attempt's steps: an empty list as none ("null",
// what nil encodes to), so that every attempt without steps holds the
// null value, which readers need not decode.
func stepsJSON(steps []store.StepTiming) (string, error) {
	if len(steps) == 0 {
		return "null", nil
	}
	return toJSON(steps)
}

// fromJSON decodes a column that toJSON encoded into v.
func fromJSON(s string, v any) error {
	if s == "null" {
		return nil // what nil slices encode to: v keeps its zero value
	}
	return json.Unmarshal([]byte(s), v)
}

// nonNil returns b, or an empty slice for nil, for NOT NULL bytea columns.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// collect scans every row of rows with scan; it closes rows.
func collect[T any](rows scannerRows, err error, scan func(scanner) (*T, error)) ([]*T, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// scannerRows is what collect needs of pgx.Rows.
type scannerRows interface {
	scanner
	Next() bool
	Err() error
	Close()
}

// sinceMicros encodes the lower bound of a range of times: micros of t,
// and for the zero time the least value, so that the range holds every
// time.
func sinceMicros(t time.Time) int64 {
	if t.IsZero() {
		return math.MinInt64
	}
	return t.UnixMicro()
}
