package analytics

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"
)

// MarshalJSON writes the series with its values; a bucket without data is
// null.
func (s Series) MarshalJSON() ([]byte, error) {
	vs := make([]*float64, len(s.Values))
	for i, v := range s.Values {
		if !math.IsNaN(v) {
			r := round(v)
			vs[i] = &r
		}
	}
	return json.Marshal(struct {
		Name   string     `json:"name"`
		Values []*float64 `json:"values"`
	}{s.Name, vs})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (s *Series) UnmarshalJSON(b []byte) error {
	var in struct {
		Name   string     `json:"name"`
		Values []*float64 `json:"values"`
	}
	if err := json.Unmarshal(b, &in); err != nil {
		return err
	}
	s.Name, s.Values = in.Name, make([]float64, len(in.Values))
	for i, v := range in.Values {
		s.Values[i] = math.NaN()
		if v != nil {
			s.Values[i] = *v
		}
	}
	return nil
}

// round keeps four decimals: the charts need no more, and the files stay
// readable.
func round(v float64) float64 { return math.Round(v*1e4) / 1e4 }

// WriteStepsCSV writes step statistics as CSV: job, step, runs, p50,
// p95 and total seconds.
func WriteStepsCSV(w io.Writer, stats []StepStat) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"job", "step", "runs", "p50_seconds", "p95_seconds", "total_seconds"})
	for _, s := range stats {
		f := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
		cw.Write([]string{s.Job, s.Step, strconv.Itoa(s.Runs), f(s.P50), f(s.P95), f(s.Total)})
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("write steps as CSV: %w", err)
	}
	return nil
}

// WriteCSV writes the chart as CSV: a header, then a row per bucket with
// its start (RFC 3339, UTC) and a column per series; a bucket without
// data is an empty cell.
func (c Chart) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	head := []string{"bucket"}
	for _, s := range c.Series {
		head = append(head, s.Name)
	}
	if err := cw.Write(head); err != nil {
		return fmt.Errorf("write %s as CSV: %w", c.Name, err)
	}
	for i, t := range c.Buckets {
		row := []string{t.UTC().Format(time.RFC3339)}
		for _, s := range c.Series {
			if math.IsNaN(s.Values[i]) {
				row = append(row, "")
			} else {
				row = append(row, strconv.FormatFloat(round(s.Values[i]), 'f', -1, 64))
			}
		}
		if err := cw.Write(row); err != nil {
			return fmt.Errorf("write %s as CSV: %w", c.Name, err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("write %s as CSV: %w", c.Name, err)
	}
	return nil
}
