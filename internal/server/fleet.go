package server

import (
	"context"
	"fmt"
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
