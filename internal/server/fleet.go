package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/hangar-ci/hangar/internal/fleet/autoscaler"
	"github.com/hangar-ci/hangar/internal/store"
)

// Fleet is what the API shows of the fleet and how it tells the fleet
// that jobs are waiting. (Its events are read from the store.)
type Fleet interface {
	Classes() []autoscaler.ClassStatus
	// Wake makes the fleet look at the queue soon.
	Wake()
}

// fleetView answers GET /fleet: every runner class with its instances.
func (s *Server) fleetView(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, struct {
		Classes []autoscaler.ClassStatus `json:"classes"`
	}{s.cfg.Fleet.Classes()})
	return nil
}

// fleetEvents answers GET /fleet/events: the recent instance transitions,
// oldest first.
func (s *Server) fleetEvents(w http.ResponseWriter, r *http.Request) error {
	evs, err := s.recentEvents(r.Context(), maxEvents)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct {
		Events []autoscaler.Event `json:"events"`
	}{evs})
	return nil
}

// PruneEvents deletes the fleet events older than Config.EventRetention
// and returns how many.
func (s *Server) PruneEvents(ctx context.Context) (int, error) {
	var n int
	err := s.store.Update(ctx, func(tx store.Tx) error {
		var err error
		n, err = tx.FleetEvents().DeleteBefore(ctx, s.cfg.Now().Add(-s.cfg.EventRetention))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("prune fleet events: %w", err)
	}
	return n, nil
}

// pruneEventsLoop prunes the fleet events at once and then every hour
// until ctx ends.
func (s *Server) pruneEventsLoop(ctx context.Context) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if n, err := s.PruneEvents(ctx); err != nil && ctx.Err() == nil {
			s.log.LogAttrs(ctx, slog.LevelWarn, "prune fleet events", slog.String("error", err.Error()))
		} else if n > 0 {
			s.log.LogAttrs(ctx, slog.LevelInfo, "pruned fleet events", slog.Int("deleted", n))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// maxEvents is how many events GET /fleet/events and the events page show.
const maxEvents = 1000

// recentEvents reads the newest limit fleet events, oldest first.
func (s *Server) recentEvents(ctx context.Context, limit int) ([]autoscaler.Event, error) {
	var out []autoscaler.Event
	err := s.store.Read(ctx, func(tx store.Tx) error {
		evs, err := tx.FleetEvents().List(ctx, time.Time{}, limit)
		for _, e := range evs {
			out = append(out, autoscaler.Event{At: e.At, Class: e.Class, Instance: e.Instance, Kind: e.Kind, Reason: e.Reason})
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read fleet events: %w", err)
	}
	return out, nil
}

// wakeFleet tells the fleet that jobs may be waiting.
func (s *Server) wakeFleet() {
	if s.cfg.Fleet != nil {
		s.cfg.Fleet.Wake()
	}
}
