package server

// The web UI: pages rendered by internal/web from the data the API serves,
// behind a sign-in with the API token.

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hangar-ci/hangar/internal/api"
	"github.com/hangar-ci/hangar/internal/store"
	"github.com/hangar-ci/hangar/internal/web"
)

// sessionCookie holds a signed-in browser's session: its expiry and a MAC
// of it keyed by the API token, so any server sharing the token accepts
// it, and a new token signs everyone out.
const (
	sessionCookie = "hangar_session"
	sessionTTL    = 7 * 24 * time.Hour
	// uiPipelinesPage is how many pipelines a page lists.
	uiPipelinesPage = 50
)

// pipelineStatuses and pipelineSources are the pipelines filter's choices.
var (
	pipelineStatuses = []string{"created", "pending", "running", "success", "failed", "canceled", "skipped", "manual"}
	pipelineSources  = []string{"push", "merge_request_event", "schedule", "web", "api", "trigger", "pipeline"}
)

func (s *Server) uiRoutes() {
	ui := s.uiAuth
	s.mux.Handle("GET /static/", web.Static())
	s.mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/pipelines", http.StatusSeeOther)
	})
	s.mux.HandleFunc("GET /login", s.loginPage)
	s.mux.HandleFunc("POST /login", s.login)
	s.mux.Handle("POST /logout", ui(s.logout))
	s.mux.Handle("GET /pipelines", ui(s.pipelinesPage))
	s.mux.Handle("GET /pipelines/{id}", ui(s.pipelinePage))
	s.mux.Handle("GET /pipelines/{id}/live", ui(s.pipelineLive))
	s.mux.Handle("POST /pipelines/{id}/cancel", ui(s.uiCancelPipeline))
	s.mux.Handle("GET /runners", ui(s.runnersPage))
	s.mux.Handle("GET /events", ui(s.eventsPage))
	s.mux.Handle("GET /status", ui(s.statusPage))
	s.mux.Handle("GET /analytics", ui(s.analyticsPage))
	s.mux.Handle("GET /analytics/{chart}", ui(s.chartData))
	s.mux.Handle("GET /jobs/{id}", ui(s.jobPage))
	s.mux.Handle("GET /jobs/{id}/raw", ui(s.jobRaw))
	s.mux.Handle("GET /jobs/{id}/live", ui(s.jobLive))
	s.mux.Handle("POST /jobs/{id}/{action}", ui(s.uiJobAction))
	if s.cfg.Artifacts != nil {
		s.mux.Handle("GET /jobs/{id}/artifacts.tar.gz", ui(s.downloadArtifacts))
	}
}

// sessionKey is the key of the session MACs, derived from the API token.
func (s *Server) sessionKey() []byte {
	k := sha256.Sum256([]byte("hangar ui session\x00" + s.cfg.APIToken))
	return k[:]
}

// mac is the hex MAC of msg under the session key.
func (s *Server) mac(msg string) string {
	h := hmac.New(sha256.New, s.sessionKey())
	h.Write([]byte(msg))
	return hex.EncodeToString(h.Sum(nil))
}

// newSession returns a session cookie's value, valid until expires.
func (s *Server) newSession(expires time.Time) string {
	exp := strconv.FormatInt(expires.Unix(), 10)
	return exp + "." + s.mac("session\x00"+exp)
}

// validSession reports whether v is a session this server signed and
// that has not expired.
func (s *Server) validSession(v string, now time.Time) bool {
	exp, sum, ok := strings.Cut(v, ".")
	if !ok || s.cfg.APIToken == "" {
		return false
	}
	secs, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || now.Unix() >= secs {
		return false
	}
	return hmac.Equal([]byte(sum), []byte(s.mac("session\x00"+exp)))
}

// csrfToken is the form token of a session: forms post it back, and a
// page of another site cannot read it.
func (s *Server) csrfToken(session string) string {
	return s.mac("csrf\x00" + session)[:32]
}

type csrfKey struct{}

// uiAuth admits requests of a signed-in browser (or carrying the API
// token, for scripts); it sends others to sign in. Forms must carry the
// session's form token.
func (s *Server) uiAuth(h func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		csrf, ok := "", false
		if c, err := r.Cookie(sessionCookie); err == nil && s.validSession(c.Value, s.cfg.Now()) {
			csrf, ok = s.csrfToken(c.Value), true
		} else if tokenEqual(bearer(r), s.cfg.APIToken) {
			ok = true
		}
		if !ok {
			if r.Method == http.MethodGet {
				http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			s.uiFail(w, r, "", &httpError{http.StatusUnauthorized, "sign in first"})
			return
		}
		if r.Method == http.MethodPost && (csrf == "" || !hmac.Equal([]byte(r.PostFormValue("csrf")), []byte(csrf))) {
			s.uiFail(w, r, csrf, &httpError{http.StatusForbidden, "the form is stale or not this site's: reload the page and try again"})
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), csrfKey{}, csrf))
		if err := h(w, r); err != nil {
			s.uiFail(w, r, csrf, err)
		}
	})
}

// page is the common part of every page for r.
func (s *Server) page(r *http.Request, title, nav string) web.Page {
	csrf, _ := r.Context().Value(csrfKey{}).(string)
	return web.Page{Title: title, Nav: nav, CSRF: csrf, Now: s.cfg.Now().UTC(), Degraded: s.degraded(r.Context())}
}

// render renders a page.
func (s *Server) render(w http.ResponseWriter, name string, data any) error {
	return s.ui.Render(w, http.StatusOK, name, data)
}

// uiFail shows err as an error page with the status the API would give.
func (s *Server) uiFail(w http.ResponseWriter, r *http.Request, csrf string, err error) {
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		return // the browser went away
	}
	code, body := s.errorStatus(r, err)
	p := web.ErrorPage{Page: web.Page{Title: http.StatusText(code), CSRF: csrf, Now: s.cfg.Now().UTC()},
		Status: code, Message: body.Error}
	if err := s.ui.Render(w, code, "error", p); err != nil {
		http.Error(w, body.Error, code)
	}
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	p := web.LoginPage{Page: web.Page{Title: "Sign in", Now: s.cfg.Now().UTC()}, Next: localPath(r.URL.Query().Get("next"))}
	if err := s.ui.Render(w, http.StatusOK, "login", p); err != nil {
		s.uiFail(w, r, "", err)
	}
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	next := localPath(r.PostFormValue("next"))
	if !tokenEqual(r.PostFormValue("token"), s.cfg.APIToken) {
		p := web.LoginPage{Page: web.Page{Title: "Sign in", Now: s.cfg.Now().UTC()}, Next: next, Failed: true}
		if err := s.ui.Render(w, http.StatusUnauthorized, "login", p); err != nil {
			s.uiFail(w, r, "", err)
		}
		return
	}
	expires := s.cfg.Now().Add(sessionTTL)
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: s.newSession(expires), Path: "/", Expires: expires,
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) error {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
	return nil
}

// localPath returns p when it is a path on this site, else /pipelines: a
// sign-in never sends the browser elsewhere.
func localPath(p string) string {
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.HasPrefix(p, "/\\") {
		return "/pipelines"
	}
	return p
}

func (s *Server) pipelinesPage(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	f := web.PipelineFilter{Status: q.Get("status"), Ref: q.Get("ref"), Source: q.Get("source")}
	sf := store.PipelineFilter{Status: store.PipelineStatus(f.Status), Ref: f.Ref, Source: f.Source, Limit: uiPipelinesPage + 1}
	if v := q.Get("before"); v != "" {
		id, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return badRequest("before=%q is not a pipeline ID", v)
		}
		sf.BeforeID = id
	}
	list, err := s.listPipelineViews(r.Context(), sf)
	if err != nil {
		return err
	}
	p := web.PipelinesPage{Page: s.page(r, "Pipelines", "pipelines"), Filter: f, Statuses: pipelineStatuses, Sources: pipelineSources}
	if len(list) > uiPipelinesPage {
		list = list[:uiPipelinesPage]
		v := url.Values{}
		for k, val := range map[string]string{"status": f.Status, "ref": f.Ref, "source": f.Source} {
			if val != "" {
				v.Set(k, val)
			}
		}
		v.Set("before", strconv.FormatInt(list[len(list)-1].ID, 10))
		p.Older = "/pipelines?" + v.Encode()
	}
	p.Pipelines = list
	return s.render(w, "pipelines", p)
}

func (s *Server) pipelinePage(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	view, err := s.pipeline(r.Context(), id)
	if err != nil {
		return err
	}
	page := s.page(r, fmt.Sprintf("Pipeline #%d", id), "pipelines")
	p := web.PipelinePage{Page: page, Pipeline: view, Final: web.Final(view.Status),
		Graph: web.Layout(view.Jobs, func(j api.Job) string { return jobDuration(j, page.Now) })}
	return s.render(w, "pipeline", p)
}

// jobDuration is how long a job ran, or runs.
func jobDuration(j api.Job, now time.Time) string {
	if j.StartedAt == nil {
		return ""
	}
	end := now
	if j.FinishedAt != nil {
		end = *j.FinishedAt
	}
	return web.Duration(end.Sub(*j.StartedAt))
}

func (s *Server) jobPage(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	var (
		view api.Job
		pipe api.Pipeline
		vars []store.Variable
		arts *store.Artifact
	)
	err = s.store.Read(ctx, func(tx store.Tx) error {
		j, err := tx.Jobs().Get(ctx, id)
		if err != nil {
			return err
		}
		vars = j.Spec.Variables
		if view, err = jobViewOf(ctx, tx, j); err != nil {
			return err
		}
		p, err := tx.Pipelines().Get(ctx, j.PipelineID)
		if err != nil {
			return err
		}
		proj, err := tx.Projects().Get(ctx, p.ProjectID)
		if err != nil {
			return err
		}
		pipe = pipelineView(p, proj.Name)
		if a, err := tx.Artifacts().Get(ctx, id); err == nil {
			arts = a
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read job %d: %w", id, err)
	}
	page := web.JobPage{Page: s.page(r, view.Name, "pipelines"), Job: view, Pipeline: pipe, Query: r.URL.Query().Get("q")}
	for _, v := range vars {
		page.Variables = append(page.Variables, web.Variable{Name: v.Name, Value: v.Value, Masked: v.Masked})
	}
	if arts != nil && !arts.Expired(s.cfg.Now()) && s.cfg.Artifacts != nil {
		av := artifactsView(arts)
		if f, err := s.openArchive(ctx, arts); err == nil {
			av.Files, av.Truncated, err = listArchive(ctx, f, 200)
			f.Close()
			if err != nil {
				av.Problem = err.Error()
			}
		} else {
			av.Problem = err.Error()
		}
		page.Artifacts = &av
	}
	at, err := pickAttempt(view, r.URL.Query().Get("attempt"))
	if err != nil {
		return err
	}
	if at == nil {
		return s.render(w, "job", page) // no attempt, no log yet
	}
	page.Attempt = at.Number
	log, err := s.readWholeLog(ctx, at.ID)
	if err != nil {
		return err
	}
	lr := web.NewLogRenderer()
	page.Rows = lr.Write(log)
	if at.Status == string(store.AttemptRunning) {
		page.Live, page.OpenSections = true, len(lr.Open())
	} else {
		page.Rows = append(page.Rows, lr.Flush()...)
	}
	if q := strings.ToLower(page.Query); q != "" {
		for _, row := range page.Rows {
			if row.Kind != web.RowSectionEnd && strings.Contains(strings.ToLower(row.PlainText()), q) {
				page.Matches = append(page.Matches, row)
			}
		}
	}
	return s.render(w, "job", page)
}

// pickAttempt returns the attempt numbered n (the latest when n is ""),
// or nil when the job has none yet.
func pickAttempt(j api.Job, n string) (*api.Attempt, error) {
	if len(j.Attempts) == 0 {
		return nil, nil
	}
	if n == "" {
		return &j.Attempts[len(j.Attempts)-1], nil
	}
	for i, a := range j.Attempts {
		if strconv.Itoa(a.Number) == n {
			return &j.Attempts[i], nil
		}
	}
	return nil, &httpError{http.StatusNotFound, fmt.Sprintf("job %d has no attempt %q", j.ID, n)}
}

// readWholeLog reads an attempt's whole log.
func (s *Server) readWholeLog(ctx context.Context, attemptID int64) ([]byte, error) {
	var out []byte
	for {
		b, err := s.readLog(ctx, attemptID, int64(len(out)), logPage)
		if err != nil {
			return nil, fmt.Errorf("read log of attempt %d: %w", attemptID, err)
		}
		if len(b) == 0 {
			return out, nil
		}
		out = append(out, b...)
	}
}

// jobRaw serves an attempt's log as a text file.
func (s *Server) jobRaw(w http.ResponseWriter, r *http.Request) error {
	view, at, err := s.jobAttempt(r)
	if err != nil {
		return err
	}
	log, err := s.readWholeLog(r.Context(), at.ID)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="job-%d-attempt-%d.log"`, view.ID, at.Number))
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, err = w.Write(log)
	return err
}

// jobAttempt reads job {id} and the attempt ?attempt= names (the latest
// by default), which must exist.
func (s *Server) jobAttempt(r *http.Request) (api.Job, *api.Attempt, error) {
	ctx := r.Context()
	id, err := pathID(r, "id")
	if err != nil {
		return api.Job{}, nil, err
	}
	var view api.Job
	err = s.store.Read(ctx, func(tx store.Tx) error {
		j, err := tx.Jobs().Get(ctx, id)
		if err != nil {
			return err
		}
		view, err = jobViewOf(ctx, tx, j)
		return err
	})
	if err != nil {
		return view, nil, fmt.Errorf("read job %d: %w", id, err)
	}
	at, err := pickAttempt(view, r.URL.Query().Get("attempt"))
	if err == nil && at == nil {
		err = &httpError{http.StatusNotFound, fmt.Sprintf("job %d has no attempt yet", id)}
	}
	return view, at, err
}

// liveRow is one event of a live log: a row and its HTML.
type liveRow struct {
	Kind      web.RowKind `json:"kind"`
	HTML      string      `json:"html,omitempty"`
	Section   string      `json:"section,omitempty"`
	Collapsed bool        `json:"collapsed,omitempty"`
}

// jobLive streams an attempt's log as rendered rows (Server-Sent Events
// "row"), from row ?rows= on, the rows the page already shows, until the
// attempt has ended ("end").
func (s *Server) jobLive(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	view, at, err := s.jobAttempt(r)
	if err != nil {
		return err
	}
	skip, _ := strconv.Atoi(r.URL.Query().Get("rows"))
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	lr := web.NewLogRenderer()
	var offset int64
	sent := 0
	send := func(rows []web.LogRow) error {
		for _, row := range rows {
			if sent++; sent <= skip {
				continue
			}
			ev := liveRow{Kind: row.Kind, Section: row.Section, Collapsed: row.Collapsed}
			if row.Kind != web.RowSectionEnd {
				ev.HTML = web.RowHTML(row)
			}
			if err := sse(w, "row", ev); err != nil {
				return err
			}
		}
		return nil
	}
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	release := func() {}
	defer func() { release() }()
	for {
		release()
		var changed <-chan struct{}
		changed, release = s.sched.Changes(view.PipelineID)
		// Read the status before the log: an attempt that ended has its
		// whole log stored, so what follows is all of it.
		_, attempts, err := s.jobAttempts(ctx, view.ID)
		if err != nil {
			return nil // the stream has started; end it
		}
		running := false
		for _, a := range attempts {
			if a.ID == at.ID {
				running = a.Status == store.AttemptRunning
			}
		}
		for {
			b, err := s.readLog(ctx, at.ID, offset, logPage)
			if err != nil {
				return nil
			}
			if len(b) == 0 {
				break
			}
			offset += int64(len(b))
			if send(lr.Write(b)) != nil {
				return nil
			}
		}
		if !running {
			if send(lr.Flush()) != nil {
				return nil
			}
			sse(w, "end", map[string]string{})
			rc.Flush()
			return nil
		}
		if rc.Flush() != nil {
			return nil
		}
		select {
		case <-changed:
		case <-keepalive.C:
			if _, err := fmt.Fprint(w, ": keepalive\n\n"); err != nil {
				return nil
			}
			rc.Flush()
		case <-ctx.Done():
			return nil
		}
	}
}

// pipelineLive sends "changed" once the pipeline's version differs from
// ?version=: the page reloads.
func (s *Server) pipelineLive(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	if _, err := s.pipeline(ctx, id); err != nil {
		return err
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	rc.Flush()
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	release := func() {}
	defer func() { release() }()
	for {
		release()
		var changed <-chan struct{}
		changed, release = s.sched.Changes(id)
		view, err := s.pipeline(ctx, id)
		if err != nil {
			return nil
		}
		if view.Version != r.URL.Query().Get("version") {
			sse(w, "changed", map[string]string{"version": view.Version})
			rc.Flush()
			return nil
		}
		select {
		case <-changed:
		case <-keepalive.C:
			if _, err := fmt.Fprint(w, ": keepalive\n\n"); err != nil {
				return nil
			}
			rc.Flush()
		case <-ctx.Done():
			return nil
		}
	}
}

// sse writes one Server-Sent Event with v as its JSON data.
func sse(w http.ResponseWriter, event string, v any) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "event: %s\ndata: ", event)
	if err := json.NewEncoder(&b).Encode(v); err != nil {
		return err
	}
	b.WriteString("\n")
	_, err := w.Write(b.Bytes())
	return err
}

func (s *Server) uiCancelPipeline(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	if err := s.sched.CancelPipeline(r.Context(), id); err != nil {
		return err
	}
	http.Redirect(w, r, fmt.Sprintf("/pipelines/%d", id), http.StatusSeeOther)
	return nil
}

// uiJobAction plays, retries or cancels job {id}, then shows it.
func (s *Server) uiJobAction(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	act := map[string]func(context.Context, int64) error{
		"play": s.sched.PlayJob, "retry": s.sched.RetryJob, "cancel": s.sched.CancelJob,
	}[r.PathValue("action")]
	if act == nil {
		return &httpError{http.StatusNotFound, fmt.Sprintf("no job action %q", r.PathValue("action"))}
	}
	if err := act(r.Context(), id); err != nil {
		return err
	}
	http.Redirect(w, r, fmt.Sprintf("/jobs/%d", id), http.StatusSeeOther)
	return nil
}

// listPipelineViews lists pipelines with their projects' names.
func (s *Server) listPipelineViews(ctx context.Context, f store.PipelineFilter) ([]api.Pipeline, error) {
	var out []api.Pipeline
	err := s.store.Read(ctx, func(tx store.Tx) error {
		list, err := tx.Pipelines().List(ctx, f)
		if err != nil {
			return err
		}
		names := map[int64]string{}
		for _, p := range list {
			if _, ok := names[p.ProjectID]; !ok {
				proj, err := tx.Projects().Get(ctx, p.ProjectID)
				if err != nil {
					return err
				}
				names[p.ProjectID] = proj.Name
			}
			out = append(out, pipelineView(p, names[p.ProjectID]))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list pipelines: %w", err)
	}
	return out, nil
}
