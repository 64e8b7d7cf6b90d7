// Package server is Hangar's control plane over HTTP: the /api/v1 calls
// agents and people make (docs/protocol.md), /metrics and /healthz. It
// never runs user code; it plans pipelines, stores them and hands their
// jobs to agents through the scheduler.
package server

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hangar-ci/hangar/internal/api"
	"github.com/hangar-ci/hangar/internal/pipeline"
	"github.com/hangar-ci/hangar/internal/scheduler"
	"github.com/hangar-ci/hangar/internal/source"
	"github.com/hangar-ci/hangar/internal/store"
	"github.com/hangar-ci/hangar/internal/web"
)

// Config is what a Server needs.
type Config struct {
	Store     store.Store
	Scheduler *scheduler.Scheduler
	// Blobs keeps the uploaded source archives.
	Blobs *source.Blobs
	// AgentToken registers agents; APIToken authorises everything people
	// and the CLI do.
	AgentToken, APIToken string
	// MaxArchiveBytes caps an uploaded source archive (default 512 MiB).
	MaxArchiveBytes int64
	// Artifacts keeps the jobs' artifacts archives. Without it the
	// artifacts calls do not exist (404) and assignments carry no
	// dependencies.
	Artifacts *source.Blobs
	// MaxArtifactBytes caps one artifacts archive (default
	// DefaultMaxArtifactBytes).
	MaxArtifactBytes int64
	// DefaultArtifactExpiry is how long artifacts are kept when their job
	// sets no expire_in (default DefaultArtifactExpiry); a negative value
	// keeps them for good.
	DefaultArtifactExpiry time.Duration
	// ArtifactExpiryInterval is how often Run deletes expired artifacts
	// (default DefaultArtifactExpiryInterval).
	ArtifactExpiryInterval time.Duration
	// Now is the clock; time.Now when nil.
	Now    func() time.Time
	Logger *slog.Logger
	// Metrics is where the server registers its metrics; they are served
	// at /metrics. The scheduler's Observer should be the server's
	// (Metrics.Observer).
	Metrics *Metrics
	// Fleet is the fleet the server provisions, nil when it has none.
	Fleet Fleet
	// EventRetention is how long fleet events are kept (default
	// DefaultEventRetention): the analytics read them.
	EventRetention time.Duration
	// Prices are each runner class's price of an instance-hour, for the
	// cost chart.
	Prices map[string]float64
	// QueueAlarm is how long a job may wait before the status page and
	// the UI's banner call dispatch degraded (default DefaultQueueAlarm).
	QueueAlarm time.Duration
}

// Defaults for Config.
const (
	// DefaultMaxArtifactBytes is the default cap of one artifacts archive.
	DefaultMaxArtifactBytes = 100 << 20
	// DefaultArtifactExpiry is how long artifacts are kept when their job
	// sets no expire_in, as in GitLab.
	DefaultArtifactExpiry = 30 * 24 * time.Hour
	// DefaultArtifactExpiryInterval is how often expired artifacts are
	// deleted.
	DefaultArtifactExpiryInterval = time.Minute
	// DefaultEventRetention is how long fleet events are kept: longer
	// than the analytics' longest range.
	DefaultEventRetention = 120 * 24 * time.Hour
)

// Server serves the API. It is an http.Handler.
type Server struct {
	cfg   Config
	store store.Store
	sched *scheduler.Scheduler
	log   *slog.Logger
	mux   *http.ServeMux
	// ui renders the web UI's pages.
	ui *web.Renderer
	// healthMu guards the last health reading, taken at healthAt.
	healthMu     sync.Mutex
	healthAt     time.Time
	healthChecks []web.Check

	// blobMu orders the moments an artifacts archive is removed from the
	// blob store after the store no longer references it (collect)
	// against the moments an upload records a reference to an archive it
	// just stored, so neither removes what the other keeps.
	blobMu sync.Mutex
}

// New returns a server for cfg.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxArchiveBytes <= 0 {
		cfg.MaxArchiveBytes = 512 << 20
	}
	if cfg.MaxArtifactBytes <= 0 {
		cfg.MaxArtifactBytes = DefaultMaxArtifactBytes
	}
	if cfg.DefaultArtifactExpiry == 0 {
		cfg.DefaultArtifactExpiry = DefaultArtifactExpiry
	}
	if cfg.ArtifactExpiryInterval <= 0 {
		cfg.ArtifactExpiryInterval = DefaultArtifactExpiryInterval
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.QueueAlarm <= 0 {
		cfg.QueueAlarm = DefaultQueueAlarm
	}
	if cfg.EventRetention <= 0 {
		cfg.EventRetention = DefaultEventRetention
	}
	ui, err := web.NewRenderer()
	if err != nil {
		panic(err) // the templates are compiled in: a test catches this
	}
	s := &Server{cfg: cfg, store: cfg.Store, sched: cfg.Scheduler, log: cfg.Logger, mux: http.NewServeMux(), ui: ui}
	s.routes()
	return s
}

func (s *Server) routes() {
	p := api.Prefix
	agent, attempt, user := s.agentAuth, s.attemptAuth, s.userAuth

	s.mux.HandleFunc("POST "+p+"/agents", s.register)
	s.mux.Handle("POST "+p+"/agent/claim", agent(s.claim))
	s.mux.Handle("POST "+p+"/agent/heartbeat", agent(s.agentHeartbeat))
	s.mux.Handle("DELETE "+p+"/agent", agent(s.deregister))

	s.mux.Handle("POST "+p+"/attempts/{id}/heartbeat", attempt(s.attemptHeartbeat))
	s.mux.Handle("PUT "+p+"/attempts/{id}/log", attempt(s.appendLog))
	s.mux.Handle("POST "+p+"/attempts/{id}/complete", attempt(s.complete))
	s.mux.Handle("POST "+p+"/attempts/{id}/release", attempt(s.release))
	s.mux.Handle("GET "+p+"/attempts/{id}/source", attempt(s.attemptSource))
	if s.cfg.Artifacts != nil {
		s.mux.Handle("PUT "+p+"/attempts/{id}/artifacts", attempt(s.uploadArtifacts))
		s.mux.Handle("GET "+p+"/attempts/{id}/artifacts/{job_id}", attempt(s.dependencyArtifacts))
		s.mux.Handle("GET "+p+"/jobs/{id}/artifacts", user(s.jobArtifacts))
		s.mux.Handle("GET "+p+"/jobs/{id}/artifacts/download", user(s.downloadArtifacts))
	}

	s.mux.Handle("POST "+p+"/sources", user(s.uploadSource))
	s.mux.Handle("POST "+p+"/projects/{project}/pipelines", user(s.createPipeline))
	s.mux.Handle("GET "+p+"/pipelines", user(s.listPipelines))
	s.mux.Handle("GET "+p+"/pipelines/{id}", user(s.getPipeline))
	s.mux.Handle("GET "+p+"/pipelines/{id}/watch", user(s.watchPipeline))
	s.mux.Handle("POST "+p+"/pipelines/{id}/cancel", user(s.cancelPipeline))
	s.mux.Handle("POST "+p+"/pipelines/{id}/logs", user(s.pipelineLogs))
	s.mux.Handle("GET "+p+"/jobs/{id}", user(s.getJob))
	s.mux.Handle("POST "+p+"/jobs/{id}/cancel", user(s.jobAction(s.sched.CancelJob)))
	s.mux.Handle("POST "+p+"/jobs/{id}/retry", user(s.jobAction(s.sched.RetryJob)))
	s.mux.Handle("POST "+p+"/jobs/{id}/play", user(s.jobAction(s.sched.PlayJob)))
	s.mux.Handle("GET "+p+"/jobs/{id}/log", user(s.jobLog))
	s.mux.Handle("GET "+p+"/jobs/{id}/log/stream", user(s.streamLog))
	s.mux.Handle("GET "+p+"/jobs/{id}/attempts/{n}/log", user(s.attemptLog))
	s.mux.Handle("GET "+p+"/agents", user(s.listAgents))
	s.mux.Handle("GET "+p+"/fleet/events", user(s.fleetEvents))
	s.mux.Handle("GET "+p+"/analytics", user(s.allCharts))
	s.mux.Handle("GET "+p+"/analytics/{chart}", user(s.chartData))
	if s.cfg.Fleet != nil {
		s.mux.Handle("GET "+p+"/fleet", user(s.fleetView))
	}

	s.uiRoutes()
	s.mux.HandleFunc("GET /healthz", s.healthz)
	if s.cfg.Metrics != nil {
		s.mux.Handle("GET /metrics", promhttp.HandlerFor(s.cfg.Metrics.registry, promhttp.HandlerOpts{}))
	}
	s.mux.HandleFunc(p+"/", func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, r, &httpError{http.StatusNotFound, fmt.Sprintf("no such API call: %s %s", r.Method, r.URL.Path)})
	})
}

// ServeHTTP serves one request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// httpError is an error with the HTTP status it maps to.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &httpError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

// fail writes err as an error response.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	code, body := s.errorStatus(r, err)
	writeJSON(w, code, body)
}

// errorStatus says which status and body err gets. This is the one place
// where errors become HTTP statuses, for the API and the UI.
func (s *Server) errorStatus(r *http.Request, err error) (int, api.Error) {
	var (
		he   *httpError
		gap  *store.GapError
		list pipeline.ErrorList
		mbe  *http.MaxBytesError
		body = api.Error{Error: err.Error()}
		code int
	)
	switch {
	case errors.As(err, &he):
		code = he.status
	case errors.As(err, &gap):
		code, body.Size = http.StatusRequestedRangeNotSatisfiable, &gap.Size
	case errors.As(err, &list):
		code, body.Problems, body.Error = http.StatusUnprocessableEntity, list, "the pipeline file has errors"
	case errors.As(err, &mbe):
		code, body.Error = http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", mbe.Limit)
	case errors.Is(err, scheduler.ErrUnauthorized):
		code = http.StatusUnauthorized
	case errors.Is(err, scheduler.ErrStale), errors.Is(err, scheduler.ErrState):
		code = http.StatusConflict
	case errors.Is(err, store.ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, context.Canceled):
		// The client went away (it sees nothing), or the server is shutting
		// down: then the client must try again, and a 5xx tells it so.
		code, body.Error = http.StatusServiceUnavailable, "the server is shutting down; try again"
	default:
		code, body.Error = http.StatusInternalServerError, "internal error"
		s.log.LogAttrs(r.Context(), slog.LevelError, "request failed", slog.String("method", r.Method),
			slog.String("path", r.URL.Path), slog.String("error", err.Error()))
	}
	return code, body
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// readJSON decodes a request body of at most api.MaxJSONBody bytes into v.
func readJSON(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, api.MaxJSONBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return badRequest("malformed JSON body: %v", err)
	}
	return nil
}

// bearer returns the token of the request's Authorization header.
func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if t, ok := strings.CutPrefix(h, "Bearer "); ok {
		return strings.TrimSpace(t)
	}
	return ""
}

func tokenEqual(a, b string) bool {
	return b != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

var errNoToken = fmt.Errorf("missing or invalid token: %w", scheduler.ErrUnauthorized)

// userAuth admits requests carrying the API token.
func (s *Server) userAuth(h func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !tokenEqual(bearer(r), s.cfg.APIToken) {
			s.fail(w, r, errNoToken)
			return
		}
		if err := h(w, r); err != nil {
			s.fail(w, r, err)
		}
	})
}

type agentKey struct{}

// agentAuth admits requests carrying a registered agent's token.
func (s *Server) agentAuth(h func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, err := s.sched.Agent(r.Context(), bearer(r))
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if err := h(w, r.WithContext(context.WithValue(r.Context(), agentKey{}, a))); err != nil {
			s.fail(w, r, err)
		}
	})
}

func agentOf(r *http.Request) *store.Agent { return r.Context().Value(agentKey{}).(*store.Agent) }

// attemptAuth passes on requests about one attempt; the scheduler checks
// the attempt's token with every call (the fence).
func (s *Server) attemptAuth(h func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if bearer(r) == "" {
			s.fail(w, r, errNoToken)
			return
		}
		if err := h(w, r); err != nil {
			s.fail(w, r, err)
		}
	})
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	err := s.store.Read(r.Context(), func(tx store.Tx) error {
		_, err := tx.Projects().List(r.Context())
		return err
	})
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "store unavailable", "error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}
