package server

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/hangar-ci/hangar/internal/store"
	"github.com/hangar-ci/hangar/internal/web"
)

// DefaultQueueAlarm is how long a job may wait for an agent before
// dispatch counts as degraded.
const DefaultQueueAlarm = 10 * time.Minute

// healthTTL is how long a health reading is reused: every page's banner
// needs one.
const healthTTL = 5 * time.Second

// health checks what users depend on: the API and its store, dispatch
// (jobs waiting too long, or for agents that are not there), the agents
// (silent ones) and each runner class (held back after boot failures).
func (s *Server) health(ctx context.Context) ([]web.Check, error) {
	now := s.cfg.Now()
	s.healthMu.Lock()
	defer s.healthMu.Unlock()
	if !s.healthAt.IsZero() && now.Sub(s.healthAt) < healthTTL {
		return s.healthChecks, nil
	}
	var (
		pending []*store.Job
		agents  []*store.Agent
	)
	err := s.store.Read(ctx, func(tx store.Tx) error {
		var err error
		if pending, err = tx.Jobs().ListPending(ctx); err != nil {
			return err
		}
		agents, err = tx.Agents().List(ctx, false)
		return err
	})
	if err != nil {
		return []web.Check{{Name: "API", Detail: fmt.Sprintf("the store does not answer: %v", err)}}, nil
	}
	checks := []web.Check{{Name: "API", OK: true, Detail: "answering; the store answers"}}

	active, silent := 0, 0
	fresh := 3 * s.sched.AgentHeartbeatInterval()
	for _, a := range agents {
		if a.Status != store.AgentActive {
			continue
		}
		active++
		if now.Sub(a.LastSeenAt) > fresh {
			silent++
		}
	}
	dispatch := web.Check{Name: "Dispatch", OK: true, Detail: countOf(len(pending), "job") + " waiting"}
	alarm := s.cfg.QueueAlarm
	if len(pending) > 0 {
		oldest := now.Sub(pending[0].PendingAt)
		dispatch.Detail = fmt.Sprintf("%s waiting, the oldest for %s", countOf(len(pending), "job"), web.Duration(oldest))
		switch {
		case active == 0:
			dispatch.OK, dispatch.Detail = false, countOf(len(pending), "job")+" waiting and no agent connected"
		case oldest > alarm:
			dispatch.OK = false
			dispatch.Detail += fmt.Sprintf(", more than %s", web.Duration(alarm))
		}
	}
	checks = append(checks, dispatch)
	ag := web.Check{Name: "Agents", OK: silent == 0, Detail: fmt.Sprintf("%d connected", active)}
	if silent > 0 {
		ag.Detail = fmt.Sprintf("%d of %d connected agents silent for more than %s", silent, active, web.Duration(fresh))
	}
	checks = append(checks, ag)
	if s.cfg.Fleet != nil {
		for _, c := range s.cfg.Fleet.Classes() {
			ch := web.Check{Name: "Runner class " + c.Name, OK: !c.Degraded,
				Detail: fmt.Sprintf("%s, %s waiting", countOf(len(c.Instances), "instance"), countOf(c.Pending, "job"))}
			if c.Degraded {
				ch.Detail = "instances fail to boot; creation is held back"
				if c.BreakerUntil != nil {
					ch.Detail += " until " + c.BreakerUntil.UTC().Format("15:04:05") + " UTC"
				}
			}
			checks = append(checks, ch)
		}
	}
	s.healthAt, s.healthChecks = now, checks
	return checks, nil
}

// degraded names what is unhealthy, for every page's banner.
func (s *Server) degraded(ctx context.Context) []string {
	checks, _ := s.health(ctx)
	var out []string
	for _, c := range checks {
		if !c.OK {
			out = append(out, c.Name+": "+c.Detail)
		}
	}
	return out
}

func (s *Server) statusPage(w http.ResponseWriter, r *http.Request) error {
	checks, err := s.health(r.Context())
	if err != nil {
		return err
	}
	return s.render(w, "status", web.StatusPage{Page: s.page(r, "Status", "status"), Checks: checks})
}

func (s *Server) runnersPage(w http.ResponseWriter, r *http.Request) error {
	agents, err := s.agentViews(r.Context(), false)
	if err != nil {
		return err
	}
	p := web.RunnersPage{Page: s.page(r, "Runners", "runners"), Agents: agents}
	if s.cfg.Fleet != nil {
		p.Classes = s.cfg.Fleet.Classes()
	}
	return s.render(w, "runners", p)
}

func (s *Server) eventsPage(w http.ResponseWriter, r *http.Request) error {
	ev, err := s.recentEvents(r.Context(), maxEvents)
	if err != nil {
		return err
	}
	p := web.EventsPage{Page: s.page(r, "Events", "events")}
	for i := len(ev) - 1; i >= 0; i-- { // newest first
		p.Events = append(p.Events, ev[i])
	}
	return s.render(w, "events", p)
}

// countOf says "1 job", "2 jobs".
func countOf(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
