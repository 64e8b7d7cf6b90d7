package codec

import (
	"math"
	"testing"
	"time"

	"github.com/hangar-ci/hangar/internal/store"
)

func TestTimes(t *testing.T) {
	at := time.Date(2026, 11, 24, 3, 4, 5, 123456789, time.FixedZone("CET", 3600))
	for _, tc := range []struct {
		in   time.Time
		want time.Time
	}{
		{time.Time{}, time.Time{}},
		{at, at.Truncate(time.Microsecond).UTC()},
	} {
		if got := FromMicros(Micros(tc.in)); !got.Equal(tc.want) || got.Location() != tc.want.Location() {
			t.Errorf("FromMicros(Micros(%v)) = %v, want %v", tc.in, got, tc.want)
		}
	}
	if SinceMicros(time.Time{}) != math.MinInt64 || SinceMicros(at) != Micros(at) {
		t.Errorf("SinceMicros: the zero time must be the least bound, others their micros")
	}
}

func TestJSON(t *testing.T) {
	for _, tc := range []struct {
		steps []store.StepTiming
		want  string
	}{
		{nil, "null"},
		{[]store.StepTiming{}, "null"},
		{[]store.StepTiming{{Name: "script", Seconds: 1.5}}, `[{"name":"script","seconds":1.5}]`},
	} {
		got, err := StepsJSON(tc.steps)
		if err != nil || got != tc.want {
			t.Errorf("StepsJSON(%v) = %q, %v; want %q", tc.steps, got, err, tc.want)
		}
		var back []store.StepTiming
		if err := FromJSON(got, &back); err != nil || len(back) != len(tc.steps) || (len(tc.steps) == 0) != (back == nil) {
			t.Errorf("FromJSON(%q) = %v, %v", got, back, err)
		}
	}
	if b := NonNil(nil); b == nil || len(b) != 0 {
		t.Errorf("NonNil(nil) = %v, want an empty slice", b)
	}
}
