// Package web renders Hangar's web UI: server-side HTML from html/template,
// with its templates, stylesheet and the little JavaScript for live
// updates embedded in the binary. It only renders: the server (package
// server) reads the store, authenticates, and hands each page its data
// as the view types below. Everything a user or a job wrote (names,
// branches, log lines) reaches the page through html/template, which
// escapes it for where it lands.
package web

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/hangar-ci/hangar/internal/analytics"
	"github.com/hangar-ci/hangar/internal/api"
	"github.com/hangar-ci/hangar/internal/fleet/autoscaler"
)

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static
var staticFiles embed.FS

// Static serves the stylesheet and scripts, under /static/.
func Static() http.Handler {
	sub, err := fs.Sub(staticFiles, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return http.StripPrefix("/static/", http.FileServerFS(sub))
}

// Renderer renders the pages. It is safe for concurrent use.
type Renderer struct {
	pages map[string]*template.Template
}

// pageNames are the templates with a page of their own; each is parsed
// with layout.html.
var pageNames = []string{"login", "pipelines", "pipeline", "job", "runners", "events", "status", "analytics", "error"}

// NewRenderer parses the embedded templates.
func NewRenderer() (*Renderer, error) {
	r := &Renderer{pages: map[string]*template.Template{}}
	for _, name := range pageNames {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFiles, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("parse template %s: %w", name, err)
		}
		r.pages[name] = t
	}
	return r, nil
}

// Render writes the page named name with data: the whole page is rendered
// before anything is written, so a template error gives a clean 500.
func (r *Renderer) Render(w http.ResponseWriter, status int, name string, data any) error {
	var buf bytes.Buffer
	if err := r.Execute(&buf, name, data); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, err := w.Write(buf.Bytes())
	return err
}

// Execute renders the page named name with data to w.
func (r *Renderer) Execute(w io.Writer, name string, data any) error {
	t, ok := r.pages[name]
	if !ok {
		return fmt.Errorf("render: no page %q", name)
	}
	if err := t.Execute(w, data); err != nil {
		return fmt.Errorf("render %s: %w", name, err)
	}
	return nil
}

// RowHTML renders one log row's line (a line, or a section's header
// line) as the job page does: what a live log appends.
func RowHTML(row LogRow) string {
	var b strings.Builder
	writeLine(&b, row, true)
	return b.String()
}

// Page is what every page has: its title, the signed-in user's form token
// and what is degraded.
type Page struct {
	Title string
	// Nav is the menu entry to show as current: "pipelines", "runners", …
	Nav string
	// CSRF is the token every form posts back; empty when signed out.
	CSRF string
	// Degraded lists what is unhealthy, for the banner; empty when all is
	// well.
	Degraded []string
	// Now is when the page was rendered: ages and running durations count
	// to it.
	Now time.Time
}

// LoginPage asks for the API token.
type LoginPage struct {
	Page
	// Next is the local path to go to once signed in.
	Next string
	// Failed: the token given was wrong.
	Failed bool
}

// ErrorPage says what went wrong.
type ErrorPage struct {
	Page
	Status  int
	Message string
}

// PipelineFilter is the pipelines page's filter; empty fields match all.
type PipelineFilter struct {
	Status, Ref, Source string
}

// PipelinesPage lists pipelines, newest first.
type PipelinesPage struct {
	Page
	Filter    PipelineFilter
	Pipelines []api.Pipeline
	// Statuses and Sources are the filter's choices.
	Statuses, Sources []string
	// Older is the URL of the next page of older pipelines, "" when there
	// is none.
	Older string
}

// PipelinePage shows one pipeline as a graph of its stages and needs.
type PipelinePage struct {
	Page
	Pipeline api.Pipeline
	Graph    Graph
	// Final: the pipeline has finished (nothing to cancel).
	Final bool
}

// JobPage shows a job: its attempts, one attempt's log, variables and
// artifacts.
type JobPage struct {
	Page
	Job      api.Job
	Pipeline api.Pipeline
	// Attempt is the number of the attempt shown (0: none yet).
	Attempt int
	// Rows are the attempt's log, rendered: when Live, only its complete
	// lines, with the sections still open left open.
	Rows []LogRow
	// OpenSections is how many sections are open after Rows.
	OpenSections int
	// Live: the attempt runs, and the page follows its log.
	Live bool
	// Query is the search; Matches the rows whose text contains it.
	Query   string
	Matches []LogRow
	// Variables are the job's variables, masked values hidden.
	Variables []Variable
	// Artifacts is the job's archive with its files, nil when it has
	// none.
	Artifacts *api.JobArtifacts
}

// RunnersPage shows the fleet's classes with their instances, and the
// agents registered.
type RunnersPage struct {
	Page
	// Classes is empty when the server runs no fleet.
	Classes []autoscaler.ClassStatus
	Agents  []api.Agent
}

// EventsPage lists the fleet's instance transitions, newest first.
type EventsPage struct {
	Page
	Events []autoscaler.Event
}

// AnalyticsPage shows the charts of the last Days days.
type AnalyticsPage struct {
	Page
	Days int
	// Choices are the ranges offered, in days.
	Choices []int
	Charts  []analytics.Chart
	// SlowestSteps are the steps of jobs that took the most time.
	SlowestSteps []analytics.StepStat
}

// StatusPage says whether each part users depend on is healthy.
type StatusPage struct {
	Page
	Checks []Check
}

// Check is one part's health.
type Check struct {
	Name   string
	OK     bool
	Detail string
}

// Variable is a job variable as the page shows it.
type Variable struct {
	Name, Value string
	Masked      bool
}

// Final reports whether a job or pipeline status is final.
func Final(status string) bool {
	switch status {
	case "success", "failed", "canceled", "skipped":
		return true
	}
	return false
}

// funcs are the templates' helpers.
var funcs = template.FuncMap{
	"final":       Final,
	"duration":    duration,
	"ago":         ago,
	"bytes":       humanBytes,
	"query":       query,
	"short":       short,
	"jobActions":  jobActions,
	"loghtml":     LogHTML,
	"chartsvg":    ChartSVG,
	"sub":         func(a, b int) int { return a - b },
	"seconds":     func(s float64) string { return Duration(time.Duration(s * float64(time.Second))) },
	"matcheshtml": MatchesHTML,
	"percent":     percent,
	"minus":       func(a, b int64) int64 { return a - b },
	"states":      instanceStates,
}

// percent formats used/total as a percentage, "" when total is 0.
func percent(used, total int64) string {
	if total <= 0 {
		return ""
	}
	return fmt.Sprintf("%.0f%%", 100*float64(used)/float64(total))
}

// instanceStates counts a class's instances by state, in a fixed order:
// "2 ready, 1 booting".
func instanceStates(c autoscaler.ClassStatus) string {
	counts := map[string]int{}
	for _, in := range c.Instances {
		counts[in.State]++
	}
	var parts []string
	for _, st := range []string{"ready", "booting", "draining", "deleting"} {
		if counts[st] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[st], st))
			delete(counts, st)
		}
	}
	for st, n := range counts {
		parts = append(parts, fmt.Sprintf("%d %s", n, st))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// duration formats how long from start to end (to now when end is nil),
// or "" when it has not started.
func duration(start, end *time.Time, now time.Time) string {
	if start == nil || start.IsZero() {
		return ""
	}
	to := now
	if end != nil {
		to = *end
	}
	return Duration(to.Sub(*start))
}

// Duration formats d the way people read durations in a list.
func Duration(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%.1fs", d.Seconds())
	case d < time.Hour:
		return fmt.Sprintf("%dm %02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%dh %02dm", int(d.Hours()), int(d.Minutes())%60)
}

// ago formats how long before now t was.
func ago(t time.Time, now time.Time) string {
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h ago", int(d.Hours()))
	}
	return t.UTC().Format("2006-01-02")
}

// humanBytes formats a size in bytes.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// query builds a query string from name, value pairs, leaving out empty
// values: (query "status" "failed" "ref" "") is "?status=failed".
func query(kv ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			v.Set(kv[i], kv[i+1])
		}
	}
	if len(v) == 0 {
		return ""
	}
	return "?" + v.Encode()
}

// short shortens s to n characters, with an ellipsis.
func short(n int, s string) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return strings.TrimSpace(string(r[:n-1])) + "…"
}
