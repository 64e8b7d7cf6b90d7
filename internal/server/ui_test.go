package server_test

import (
	"bufio"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hangar-ci/hangar/internal/api"
	"github.com/hangar-ci/hangar/internal/scheduler"
	"github.com/hangar-ci/hangar/internal/server"
	"github.com/hangar-ci/hangar/internal/store"
)

// browser is an HTTP client with cookies that does not follow redirects,
// so tests see where they lead.
func browser(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// get fetches path and returns the status, the Location header and the
// body.
func get(t *testing.T, c *http.Client, base, path string) (int, string, string) {
	t.Helper()
	resp, err := c.Get(base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Location"), string(b)
}

func post(t *testing.T, c *http.Client, base, path string, form url.Values) (int, string, string) {
	t.Helper()
	resp, err := c.PostForm(base+path, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Location"), string(b)
}

// signIn signs c in with the API token.
func signIn(t *testing.T, c *http.Client, e *env) {
	t.Helper()
	code, loc, body := post(t, c, e.url, "/login", url.Values{"token": {apiToken}, "next": {"/pipelines"}})
	if code != http.StatusSeeOther || loc != "/pipelines" {
		t.Fatalf("sign in: %d to %q: %s", code, loc, body)
	}
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

// csrfOf returns the form token in a page.
func csrfOf(t *testing.T, page string) string {
	t.Helper()
	m := csrfRE.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no form token in the page:\n%s", page)
	}
	return m[1]
}

// TestUISignIn: every page wants a session; the sign-in takes the API
// token alone, never sends the browser off the site, and a forged or
// expired session is refused.
func TestUISignIn(t *testing.T) {
	e := newEnv(t, 30*time.Second)
	c := browser(t)
	for _, path := range []string{"/pipelines", "/pipelines/1", "/jobs/1", "/jobs/1/raw", "/jobs/1/live"} {
		code, loc, _ := get(t, c, e.url, path)
		if code != http.StatusSeeOther || loc != "/login?next="+url.QueryEscape(path) {
			t.Errorf("GET %s signed out: %d to %q, want the sign-in page", path, code, loc)
		}
	}
	if code, _, _ := post(t, c, e.url, "/pipelines/1/cancel", nil); code != http.StatusUnauthorized {
		t.Errorf("POST cancel signed out: %d, want 401", code)
	}
	if code, _, body := get(t, c, e.url, "/static/hangar.css"); code != http.StatusOK || !strings.Contains(body, ".status") {
		t.Errorf("GET /static/hangar.css: %d", code)
	}

	code, _, body := post(t, c, e.url, "/login", url.Values{"token": {"wrong"}, "next": {"/jobs/3"}})
	if code != http.StatusUnauthorized || !strings.Contains(body, "not the server") {
		t.Errorf("sign in with a wrong token: %d", code)
	}
	if len(c.Jar.Cookies(mustURL(t, e.url))) != 0 {
		t.Errorf("a wrong token got a session")
	}
	code, loc, _ := post(t, c, e.url, "/login", url.Values{"token": {apiToken}, "next": {"//evil.example/x"}})
	if code != http.StatusSeeOther || loc != "/pipelines" {
		t.Errorf("sign in with next=//evil.example: %d to %q, want /pipelines", code, loc)
	}
	if code, _, body := get(t, c, e.url, "/pipelines"); code != http.StatusOK || !strings.Contains(body, "<h1>Pipelines</h1>") {
		t.Errorf("GET /pipelines signed in: %d", code)
	}

	// A forged session: the right shape, a MAC of another key.
	cookies := c.Jar.Cookies(mustURL(t, e.url))
	if len(cookies) != 1 {
		t.Fatalf("cookies after sign-in: %v", cookies)
	}
	exp, _, _ := strings.Cut(cookies[0].Value, ".")
	for name, v := range map[string]string{
		"forged":  exp + "." + strings.Repeat("ab", 32),
		"expired": "1000." + strings.Split(cookies[0].Value, ".")[1],
		"garbage": "not-a-session",
	} {
		other := browser(t)
		other.Jar.SetCookies(mustURL(t, e.url), []*http.Cookie{{Name: "hangar_session", Value: v, Path: "/"}})
		if code, _, _ := get(t, other, e.url, "/pipelines"); code != http.StatusSeeOther {
			t.Errorf("a %s session: %d, want the sign-in page", name, code)
		}
	}

	// Signing out ends the session in this browser.
	_, _, page := get(t, c, e.url, "/pipelines")
	if code, loc, _ := post(t, c, e.url, "/logout", url.Values{"csrf": {csrfOf(t, page)}}); code != http.StatusSeeOther || loc != "/login" {
		t.Errorf("sign out: %d to %q", code, loc)
	}
	if code, _, _ := get(t, c, e.url, "/pipelines"); code != http.StatusSeeOther {
		t.Errorf("GET /pipelines after signing out: %d", code)
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestUIActions cancels a pipeline and plays a manual job from their
// pages; a form without the session's token is refused.
func TestUIActions(t *testing.T) {
	e := newEnv(t, 30*time.Second)
	p, err := e.sched.Create(e.ctx, scheduler.NewPipeline{Project: "p", Source: "push", Ref: "main",
		Plan: planOf(t, "build: {script: [make]}\nship: {script: [ship], when: manual}\n")})
	if err != nil {
		t.Fatal(err)
	}
	c := browser(t)
	signIn(t, c, e)
	_, _, page := get(t, c, e.url, fmt.Sprintf("/pipelines/%d", p.ID))
	for _, want := range []string{"Cancel pipeline", `href="/jobs/`, "build", "ship", "<svg"} {
		if !strings.Contains(page, want) {
			t.Errorf("the pipeline page lacks %q", want)
		}
	}
	// ship is manual: play it from its page, with the token.
	view := e.pipelineView(p.ID)
	ship := jobNamed(t, view, "ship")
	_, _, jobPage := get(t, c, e.url, fmt.Sprintf("/jobs/%d", ship.ID))
	if !strings.Contains(jobPage, `data-action="play"`) {
		t.Errorf("the manual job's page has no Play button")
	}
	if code, _, _ := post(t, c, e.url, fmt.Sprintf("/jobs/%d/play", ship.ID), url.Values{"csrf": {"0000"}}); code != http.StatusForbidden {
		t.Errorf("play with a wrong form token: %d, want 403", code)
	}
	if got := jobNamed(t, e.pipelineView(p.ID), "ship").Status; got != "manual" {
		t.Errorf("after a refused play the job is %s", got)
	}
	if code, loc, _ := post(t, c, e.url, fmt.Sprintf("/jobs/%d/play", ship.ID), url.Values{"csrf": {csrfOf(t, jobPage)}}); code != http.StatusSeeOther || loc != fmt.Sprintf("/jobs/%d", ship.ID) {
		t.Errorf("play: %d to %q", code, loc)
	}
	if got := jobNamed(t, e.pipelineView(p.ID), "ship").Status; got != "pending" && got != "created" {
		t.Errorf("after play the job is %s, want it on its way", got)
	}
	if code, _, _ := post(t, c, e.url, fmt.Sprintf("/pipelines/%d/cancel", p.ID), url.Values{"csrf": {csrfOf(t, page)}}); code != http.StatusSeeOther {
		t.Errorf("cancel: %d", code)
	}
	if got := e.pipelineView(p.ID).Status; got != "canceled" {
		t.Errorf("after cancel the pipeline is %s", got)
	}
	// A retry of a job that cannot be retried says so on an error page.
	build := jobNamed(t, e.pipelineView(p.ID), "build")
	code, _, body := post(t, c, e.url, fmt.Sprintf("/jobs/%d/nonsense", build.ID), url.Values{"csrf": {csrfOf(t, page)}})
	if code != http.StatusNotFound || !strings.Contains(body, "no job action") {
		t.Errorf("an unknown action: %d", code)
	}
}

// pipelineView reads a pipeline through the API.
func (e *env) pipelineView(id int64) api.Pipeline {
	var p api.Pipeline
	if _, err := e.client.Do(e.ctx, http.MethodGet, fmt.Sprintf("/pipelines/%d", id), apiToken, nil, &p); err != nil {
		e.t.Fatal(err)
	}
	return p
}

// runJob claims the next job as an agent would, appends log to it, and
// completes it when complete is set; it returns the assignment.
func (e *env) runJob(log string, complete bool) api.Assignment {
	e.t.Helper()
	tok := register(e.t, e, "ui-agent")
	var as api.Assignment
	if code, err := e.client.Do(e.ctx, http.MethodPost, "/agent/claim", tok, api.ClaimRequest{}, &as); err != nil || code != http.StatusOK {
		e.t.Fatalf("claim: %d %v", code, err)
	}
	e.appendLog(as, 0, log)
	if complete {
		if _, err := e.client.Do(e.ctx, http.MethodPost, fmt.Sprintf("/attempts/%d/complete", as.AttemptID), as.Token, api.CompleteRequest{Status: "success"}, nil); err != nil {
			e.t.Fatal(err)
		}
	}
	return as
}

func (e *env) appendLog(as api.Assignment, offset int, text string) {
	e.t.Helper()
	if _, err := e.client.Do(e.ctx, http.MethodPut, fmt.Sprintf("/attempts/%d/log?offset=%d", as.AttemptID, offset), as.Token, []byte(text), nil); err != nil {
		e.t.Fatal(err)
	}
}

// TestUIEscapesUserText runs a pipeline whose branch, job names, variables
// and log are hostile: every page shows them as text.
func TestUIEscapesUserText(t *testing.T) {
	e := newEnv(t, 30*time.Second)
	const (
		name   = `<script>alert("job")</script>`
		ref    = `"><img src=x onerror=alert(1)>`
		logTxt = "<iframe src=javascript:alert(2)></iframe>\n\x1b[31m<b>red</b>\x1b[0m\n"
	)
	p, err := e.sched.Create(e.ctx, scheduler.NewPipeline{Project: "<svg onload=alert(3)>", Source: "push", Ref: ref,
		Variables: []store.Variable{{Name: "TOKEN", Value: "hunter2-secret", Masked: true}, {Name: "NOTE", Value: "<u>x</u>"}},
		Plan:      planOf(t, fmt.Sprintf("variables: {TOKEN: hunter2-secret, NOTE: <u>x</u>}\n%q: {script: [x]}\n", name))})
	if err != nil {
		t.Fatal(err)
	}
	as := e.runJob(logTxt, true)
	c := browser(t)
	signIn(t, c, e)
	for _, path := range []string{"/pipelines", fmt.Sprintf("/pipelines/%d", p.ID), fmt.Sprintf("/jobs/%d", as.JobID), fmt.Sprintf("/jobs/%d?q=iframe", as.JobID), "/pipelines?ref=" + url.QueryEscape(ref)} {
		code, _, body := get(t, c, e.url, path)
		if code != http.StatusOK {
			t.Fatalf("GET %s: %d\n%s", path, code, body)
		}
		for _, bad := range []string{"<script>alert", "<img src=x", "<iframe", "<b>red", "<svg onload", "<u>x", "hunter2-secret"} {
			if strings.Contains(body, bad) {
				t.Errorf("GET %s: the page holds %q", path, bad)
			}
		}
	}
	_, _, jobPage := get(t, c, e.url, fmt.Sprintf("/jobs/%d", as.JobID))
	for _, want := range []string{html.EscapeString(name), "&lt;iframe", `<span class="ansi-fg-1">&lt;b&gt;red&lt;/b&gt;</span>`, "[MASKED]"} {
		if !strings.Contains(jobPage, want) {
			t.Errorf("the job page lacks %q", want)
		}
	}
	// The raw log is the bytes as written, as a file, never as HTML.
	resp, err := c.Get(e.url + fmt.Sprintf("/jobs/%d/raw", as.JobID))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(raw) != logTxt || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") || !strings.Contains(resp.Header.Get("Content-Disposition"), "attachment") {
		t.Errorf("raw log: %q as %q (%q)", raw, resp.Header.Get("Content-Type"), resp.Header.Get("Content-Disposition"))
	}
}

// TestUILiveLog follows a running job's log as its page does: rows come
// as they are appended, rendered, from the row the page stopped at, and
// the stream ends when the job does.
func TestUILiveLog(t *testing.T) {
	e := newEnv(t, 30*time.Second)
	if _, err := e.sched.Create(e.ctx, scheduler.NewPipeline{Project: "p", Source: "push", Ref: "main",
		Plan: planOf(t, "job: {script: [x]}\n")}); err != nil {
		t.Fatal(err)
	}
	first := "one\n\x1b[0Ksection_start:1:build\r\x1b[0Kbuilding\ntw"
	as := e.runJob(first, false)
	c := browser(t)
	signIn(t, c, e)
	_, _, page := get(t, c, e.url, fmt.Sprintf("/jobs/%d", as.JobID))
	m := regexp.MustCompile(`data-live-log="([^"]+)" data-open-sections="1"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("the running job's page does not follow its log with one section open:\n%s", page)
	}
	live := html.UnescapeString(m[1])
	if !strings.Contains(live, "rows=2") {
		t.Errorf("live URL %q: the page shows 2 rows (a line and a section's header); the partial line waits", live)
	}
	resp, err := c.Get(e.url + live)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	events := make(chan string, 100)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(resp.Body)
		var ev string
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "event: "); ok {
				ev = v
			} else if v, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				events <- ev + " " + v
			}
		}
	}()
	next := func() string {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatal("the stream ended early")
			}
			return ev
		case <-time.After(10 * time.Second):
			t.Fatal("no event within 10 s")
		}
		return ""
	}
	e.appendLog(as, len(first), "o\n\x1b[0Ksection_end:2:build\r\x1b[0K\n<three>\n")
	for _, want := range []string{`"kind":0,"html":"\u003cspan class=\"line\" id=\"L3\"`, `"kind":2`, `\u0026lt;three\u0026gt;`} {
		ev := next()
		if !strings.HasPrefix(ev, "row ") || !strings.Contains(ev, want) {
			t.Errorf("event %q, want a row with %q", ev, want)
		}
	}
	if _, err := e.client.Do(e.ctx, http.MethodPost, fmt.Sprintf("/attempts/%d/complete", as.AttemptID), as.Token, api.CompleteRequest{Status: "success"}, nil); err != nil {
		t.Fatal(err)
	}
	if ev := next(); !strings.HasPrefix(ev, "end ") {
		t.Errorf("after the job ended: %q, want the end", ev)
	}
}

// TestUIStatus: a job waiting with no agent connected makes dispatch
// degraded on the status page and in every page's banner; the runners
// page lists the agents.
func TestUIStatus(t *testing.T) {
	e := newEnv(t, 30*time.Second)
	c := browser(t)
	signIn(t, c, e)
	if _, body := getOK(t, c, e.url, "/pipelines"); strings.Contains(body, `class="banner"`) {
		t.Errorf("a banner with nothing wrong:\n%s", body)
	}
	e2 := newEnv(t, 30*time.Second) // a fresh server: its health is read anew
	if _, err := e2.sched.Create(e2.ctx, scheduler.NewPipeline{Project: "p", Source: "push", Ref: "main",
		Plan: planOf(t, "job: {script: [x]}\n")}); err != nil {
		t.Fatal(err)
	}
	c2 := browser(t)
	signIn(t, c2, e2)
	_, status := getOK(t, c2, e2.url, "/status")
	if !strings.Contains(status, "1 job waiting and no agent connected") || !strings.Contains(status, "degraded") {
		t.Errorf("the status page with a job and no agent:\n%s", status)
	}
	if _, body := getOK(t, c2, e2.url, "/pipelines"); !strings.Contains(body, `class="banner"`) || !strings.Contains(body, "no agent connected") {
		t.Errorf("no banner on the pipelines page while dispatch is degraded")
	}
	register(t, e2, "builder-1")
	if _, body := getOK(t, c2, e2.url, "/runners"); !strings.Contains(body, "builder-1") {
		t.Errorf("the runners page does not list the agent:\n%s", body)
	}
}

func getOK(t *testing.T, c *http.Client, base, path string) (int, string) {
	t.Helper()
	code, _, body := get(t, c, base, path)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d\n%s", path, code, body)
	}
	return code, body
}

// TestUIAnalytics runs jobs and reads them back as charts: on the page as
// SVG, and as CSV and JSON through the API and the page's links; fleet
// events come from the store.
func TestUIAnalytics(t *testing.T) {
	e := newEnv(t, 30*time.Second)
	if _, err := e.sched.Create(e.ctx, scheduler.NewPipeline{Project: "p", Source: "push", Ref: "main",
		Plan: planOf(t, "a: {script: [x]}\nb: {script: [x]}\nc: {script: [x]}\n")}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		e.runJob("ok\n", true)
	}
	err := e.store.Update(e.ctx, func(tx store.Tx) error {
		for _, ev := range []*store.FleetEvent{
			{At: time.Now().Add(-time.Hour), Class: "small", Instance: "small-1", Kind: "created"},
			{At: time.Now().Add(-time.Hour + 45*time.Second), Class: "small", Instance: "small-1", Kind: "ready"},
		} {
			if err := tx.FleetEvents().Append(e.ctx, ev); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	c := browser(t)
	signIn(t, c, e)
	_, page := getOK(t, c, e.url, "/analytics?days=1")
	for _, want := range []string{`<section class="chart-box" id="queue_time">`, `id="outcomes"`, `id="provisioning"`, `<svg class="chart"`, `href="/analytics/outcomes.csv?days=1"`} {
		if !strings.Contains(page, want) {
			t.Errorf("the analytics page lacks %q", want)
		}
	}
	_, csv := getOK(t, c, e.url, "/analytics/outcomes.csv?days=1")
	lines := strings.Split(strings.TrimSpace(csv), "\n")
	// 24 hours by hour, and the hour under way unless it just began.
	if lines[0] != "bucket,success,failed,canceled" || len(lines) < 25 || len(lines) > 26 {
		t.Fatalf("outcomes CSV for a day by hour: %d lines, header %q", len(lines), lines[0])
	}
	succeeded := 0
	for _, l := range lines[1:] {
		var n int
		fmt.Sscanf(strings.Split(l, ",")[1], "%d", &n)
		succeeded += n
	}
	if succeeded != 3 {
		t.Errorf("the CSV counts %d successful jobs, want 3:\n%s", succeeded, csv)
	}
	var chart struct {
		Name   string `json:"name"`
		Series []struct {
			Name   string     `json:"name"`
			Values []*float64 `json:"values"`
		} `json:"series"`
	}
	if _, err := e.client.Do(e.ctx, http.MethodGet, "/analytics/provisioning?days=1", apiToken, nil, &chart); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, s := range chart.Series {
		for _, v := range s.Values {
			if s.Name == "small p50" && v != nil && *v == 45 {
				found = true
			}
		}
	}
	if !found {
		t.Errorf("the provisioning chart does not show small's 45 s: %+v", chart)
	}
	if code, _ := e.client.Do(e.ctx, http.MethodGet, "/analytics/nope", apiToken, nil, nil); code != http.StatusNotFound {
		t.Errorf("an unknown chart: %d, want 404", code)
	}
	if code, _ := e.client.Do(e.ctx, http.MethodGet, "/analytics?days=5", apiToken, nil, nil); code != http.StatusBadRequest {
		t.Errorf("days=5: %d, want 400", code)
	}
	var evs struct {
		Events []struct{ Instance, Kind string } `json:"events"`
	}
	if _, err := e.client.Do(e.ctx, http.MethodGet, "/fleet/events", apiToken, nil, &evs); err != nil || len(evs.Events) != 2 || evs.Events[1].Kind != "ready" {
		t.Errorf("GET /fleet/events: %+v (%v), want the two stored events, oldest first", evs, err)
	}
	if _, body := getOK(t, c, e.url, "/events"); !strings.Contains(body, "small-1") {
		t.Errorf("the events page does not show the stored events")
	}
}

// TestAgentReportsSteps runs a job on a real agent: its attempt carries
// the timings of its steps, in the order they ran, and the job page shows
// them.
func TestAgentReportsSteps(t *testing.T) {
	e := newEnv(t, 30*time.Second)
	e.startAgent("stepper", nil)
	p := e.wait(e.submit(map[string]string{".gitlab-ci.yml": "job:\n  script: [sleep 0.2]\n  after_script: [echo done]\n"}).ID, time.Minute)
	at := p.Jobs[0].Attempts[0]
	var names []string
	script := 0.0
	for _, s := range at.Steps {
		names = append(names, s.Name)
		if s.Name == "script" {
			script = s.Seconds
		}
	}
	if got := strings.Join(names, ","); got != "get_sources,restore_cache,download_artifacts,prepare_executor,script,after_script,save_cache,upload_artifacts" {
		t.Errorf("steps %s", got)
	}
	if script < 0.2 || script > 30 {
		t.Errorf("the script step took %v s; it sleeps 0.2 s", script)
	}
	c := browser(t)
	signIn(t, c, e)
	if _, page := getOK(t, c, e.url, fmt.Sprintf("/jobs/%d", p.Jobs[0].ID)); !strings.Contains(page, "<code>after_script</code>") {
		t.Errorf("the job page does not show the steps")
	}
}

// TestPruneEvents deletes the fleet events older than the retention and
// keeps the rest.
func TestPruneEvents(t *testing.T) {
	e := newEnv(t, 30*time.Second)
	clk := newClock()
	srv := server.New(server.Config{Store: e.store, Scheduler: e.sched, Now: clk.Now, EventRetention: 24 * time.Hour})
	err := e.store.Update(e.ctx, func(tx store.Tx) error {
		for _, age := range []time.Duration{72 * time.Hour, 25 * time.Hour, 23 * time.Hour, time.Minute} {
			if err := tx.FleetEvents().Append(e.ctx, &store.FleetEvent{At: clk.Now().Add(-age), Class: "c", Instance: age.String(), Kind: "created"}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	n, err := srv.PruneEvents(e.ctx)
	if err != nil || n != 2 {
		t.Fatalf("PruneEvents: %d, %v; want the 2 events older than a day", n, err)
	}
	var left []*store.FleetEvent
	e.store.Read(e.ctx, func(tx store.Tx) error {
		left, err = tx.FleetEvents().List(e.ctx, time.Time{}, 0)
		return err
	})
	if len(left) != 2 || left[0].Instance != "23h0m0s" || left[1].Instance != "1m0s" {
		t.Errorf("left: %+v", left)
	}
}
