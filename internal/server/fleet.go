package server

import (
	"net/http"

	"github.com/hangar-ci/hangar/internal/fleet/autoscaler"
)

// Fleet is what the API shows of the fleet and how it tells the fleet
// that jobs are waiting.
type Fleet interface {
	Classes() []autoscaler.ClassStatus
	Events() []autoscaler.Event
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
	writeJSON(w, http.StatusOK, struct {
		Events []autoscaler.Event `json:"events"`
	}{s.cfg.Fleet.Events()})
	return nil
}

// wakeFleet tells the fleet that jobs may be waiting.
func (s *Server) wakeFleet() {
	if s.cfg.Fleet != nil {
		s.cfg.Fleet.Wake()
	}
}
