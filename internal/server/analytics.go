package server

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hangar-ci/hangar/internal/analytics"
	"github.com/hangar-ci/hangar/internal/store"
	"github.com/hangar-ci/hangar/internal/web"
)

// analyticsRanges are the ranges the analytics offer, in days; the first
// is the default.
var analyticsRanges = []int{14, 1, 7, 30, 90}

// eventsLookback is how far before a range's start fleet events are read,
// to know which instances were alive at its start.
const eventsLookback = 30 * 24 * time.Hour

// analyticsDays reads ?days=, one of analyticsRanges.
func analyticsDays(r *http.Request) (int, error) {
	v := r.URL.Query().Get("days")
	if v == "" {
		return analyticsRanges[0], nil
	}
	d, err := strconv.Atoi(v)
	if err == nil {
		for _, ok := range analyticsRanges {
			if d == ok {
				return d, nil
			}
		}
	}
	return 0, badRequest("days=%q: want one of %v", v, analyticsRanges)
}

// slowestSteps is how many steps the slowest-steps table lists.
const slowestSteps = 15

// analyticsInput reads what the charts of the last days days are
// computed from: by hour for a day, by day otherwise, in UTC.
func (s *Server) analyticsInput(ctx context.Context, days int) (analytics.Input, error) {
	bucket := 24 * time.Hour
	if days <= 1 {
		bucket = time.Hour
	}
	to := s.cfg.Now().UTC()
	from := to.Add(-time.Duration(days) * 24 * time.Hour).Truncate(bucket)
	if bucket == 24*time.Hour {
		from = from.Add(bucket) // whole days, the last one today
	}
	in := analytics.Input{From: from, To: to, Bucket: bucket, Prices: s.cfg.Prices}
	err := s.store.Read(ctx, func(tx store.Tx) error {
		var err error
		if in.Jobs, err = tx.Jobs().ListFinished(ctx, from); err != nil {
			return err
		}
		in.Events, err = tx.FleetEvents().List(ctx, from.Add(-eventsLookback), 0)
		return err
	})
	if err != nil {
		return in, fmt.Errorf("read analytics: %w", err)
	}
	return in, nil
}

// charts computes the charts of the last days days.
func (s *Server) charts(ctx context.Context, days int) (analytics.Charts, error) {
	in, err := s.analyticsInput(ctx, days)
	if err != nil {
		return nil, err
	}
	return analytics.Compute(in), nil
}

func (s *Server) analyticsPage(w http.ResponseWriter, r *http.Request) error {
	days, err := analyticsDays(r)
	if err != nil {
		return err
	}
	in, err := s.analyticsInput(r.Context(), days)
	if err != nil {
		return err
	}
	choices := append([]int(nil), analyticsRanges...)
	slices.Sort(choices)
	return s.render(w, "analytics", web.AnalyticsPage{Page: s.page(r, "Analytics", "analytics"), Days: days, Choices: choices,
		Charts: analytics.Compute(in), SlowestSteps: analytics.SlowestSteps(in, slowestSteps)})
}

// chartData answers one chart's numbers: GET /analytics/{chart} (API,
// ?format=csv or json) and /analytics/{chart}.csv or .json (UI).
func (s *Server) chartData(w http.ResponseWriter, r *http.Request) error {
	name, format := r.PathValue("chart"), r.URL.Query().Get("format")
	if base, ext, ok := strings.Cut(name, "."); ok {
		name, format = base, ext
	}
	days, err := analyticsDays(r)
	if err != nil {
		return err
	}
	if name == "slowest_steps" {
		return s.slowestSteps(r.Context(), w, days, format)
	}
	cs, err := s.charts(r.Context(), days)
	if err != nil {
		return err
	}
	c, ok := cs.Get(name)
	if !ok {
		return &httpError{http.StatusNotFound, fmt.Sprintf("no chart %q", name)}
	}
	switch format {
	case "", "json":
		writeJSON(w, http.StatusOK, c)
		return nil
	case "csv":
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s-%dd.csv"`, c.Name, days))
		return c.WriteCSV(w)
	}
	return badRequest("format=%q: want csv or json", format)
}

// allCharts answers GET /analytics: every chart's numbers.
func (s *Server) allCharts(w http.ResponseWriter, r *http.Request) error {
	days, err := analyticsDays(r)
	if err != nil {
		return err
	}
	cs, err := s.charts(r.Context(), days)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct {
		Days   int              `json:"days"`
		Charts analytics.Charts `json:"charts"`
	}{days, cs})
	return nil
}

// slowestSteps answers the slowest-steps table as JSON or CSV.
func (s *Server) slowestSteps(ctx context.Context, w http.ResponseWriter, days int, format string) error {
	in, err := s.analyticsInput(ctx, days)
	if err != nil {
		return err
	}
	stats := analytics.SlowestSteps(in, slowestSteps)
	switch format {
	case "", "json":
		writeJSON(w, http.StatusOK, struct {
			Steps []analytics.StepStat `json:"steps"`
		}{stats})
		return nil
	case "csv":
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="slowest_steps-%dd.csv"`, days))
		return analytics.WriteStepsCSV(w, stats)
	}
	return badRequest("format=%q: want csv or json", format)
}
