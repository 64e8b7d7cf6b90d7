// Package codec holds the column encodings the sqlite and postgres stores
// share: times as Unix microseconds, lists and structs as JSON text.
package codec

import (
	"encoding/json"
	"math"
	"time"

	"github.com/hangar-ci/hangar/internal/store"
)

// Micros encodes t as Unix microseconds, the zero time as 0.
func Micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

// FromMicros decodes what Micros encoded, as a UTC time.
func FromMicros(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(us).UTC()
}

// SinceMicros encodes the lower bound of a range of times: Micros of t,
// and for the zero time the least value, so that the range holds every
// time.
func SinceMicros(t time.Time) int64 {
	if t.IsZero() {
		return math.MinInt64
	}
	return t.UnixMicro()
}

// ToJSON encodes a list or struct column.
func ToJSON(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// StepsJSON encodes an attempt's steps: an empty list as none ("null",
// what nil encodes to), so that every attempt without steps holds the
// null value, which readers need not decode.
func StepsJSON(steps []store.StepTiming) (string, error) {
	if len(steps) == 0 {
		return "null", nil
	}
	return ToJSON(steps)
}

// FromJSON decodes a column that ToJSON encoded into v.
func FromJSON(s string, v any) error {
	if s == "null" {
		return nil // what nil slices encode to: v keeps its zero value
	}
	return json.Unmarshal([]byte(s), v)
}

// NonNil returns b, or an empty slice for nil, for NOT NULL binary
// columns.
func NonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
