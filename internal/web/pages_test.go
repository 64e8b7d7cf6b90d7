package web

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hangar-ci/hangar/internal/analytics"
	"github.com/hangar-ci/hangar/internal/api"
	"github.com/hangar-ci/hangar/internal/fleet/autoscaler"
	"github.com/hangar-ci/hangar/internal/store"
)

var update = flag.Bool("update", false, "rewrite the golden files of the pages")

// now is the fixed clock of the fixture.
var now = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

func at(d time.Duration) *time.Time {
	t := now.Add(d)
	return &t
}

func exit(n int) *int { return &n }

// fixturePipeline is a pipeline of every kind of job: done, failed,
// running, manual, waiting, with needs across stages.
func fixturePipeline() api.Pipeline {
	return api.Pipeline{
		ID: 42, Project: "shop", Status: "running", Source: "push", Ref: "main", SHA: "0123456789abcdef0123",
		CreatedAt: now.Add(-5 * time.Minute), StartedAt: at(-4 * time.Minute), Version: "v1",
		Jobs: []api.Job{
			{ID: 1, PipelineID: 42, Name: "lint", Stage: "check", Status: "success", StartedAt: at(-4 * time.Minute), FinishedAt: at(-3*time.Minute - 30*time.Second),
				Attempts: []api.Attempt{{ID: 11, Number: 1, Status: "success", ExitCode: exit(0), StartedAt: now.Add(-4 * time.Minute), FinishedAt: at(-3*time.Minute - 30*time.Second), LogSize: 120}}},
			{ID: 2, PipelineID: 42, Name: "build: [linux, amd64]", Stage: "build", Status: "failed", Needs: []string{"lint"}, FailureReason: "script_failure",
				StartedAt: at(-3 * time.Minute), FinishedAt: at(-2 * time.Minute), ExitCode: exit(2),
				Attempts: []api.Attempt{
					{ID: 21, Number: 1, Status: "lost", FailureReason: "runner_lost", StartedAt: now.Add(-3 * time.Minute), FinishedAt: at(-150 * time.Second)},
					{ID: 22, Number: 2, Status: "failed", ExitCode: exit(2), StartedAt: now.Add(-150 * time.Second), FinishedAt: at(-2 * time.Minute), LogSize: 300,
						Steps: []api.StepTiming{{Name: "get_sources", Seconds: 0.4}, {Name: "script", Seconds: 27.5}, {Name: "upload_artifacts", Seconds: 1.25}}},
				}},
			{ID: 3, PipelineID: 42, Name: "unit tests", Stage: "test", Status: "running", Needs: []string{"lint"}, StartedAt: at(-90 * time.Second),
				Attempts: []api.Attempt{{ID: 31, Number: 1, Status: "running", StartedAt: now.Add(-90 * time.Second), LogSize: 80}}},
			{ID: 4, PipelineID: 42, Name: "integration", Stage: "test", Status: "pending", Needs: []string{"build: [linux, amd64]"}, Reason: `no agent has the labels "gpu"`},
			{ID: 5, PipelineID: 42, Name: "deploy", Stage: "deploy", Status: "manual", When: "manual"},
		},
	}
}

// fixtureLog is a log with colours, a collapsible section and a line
// that looks like markup.
var fixtureLog = "\x1b[0Ksection_start:1700000000:prepare[collapsed=true]\r\x1b[0KPreparing the environment\n" +
	"Using \x1b[1mbash\x1b[0m\n" +
	"\x1b[0Ksection_end:1700000001:prepare\r\x1b[0K\n" +
	"$ go test ./...\n" +
	"\x1b[32mok\x1b[0m  \tshop/cart\t0.12s\n" +
	"\x1b[31;1mFAIL\x1b[0m\tshop/pay <b>not bold</b>\n"

// matching returns the lines of rows holding s.
func matching(rows []LogRow, s string) []LogRow {
	var out []LogRow
	for _, r := range rows {
		if r.Kind == RowLine && strings.Contains(r.PlainText(), s) {
			out = append(out, r)
		}
	}
	return out
}

// pages are the pages rendered with fixed data, by golden file name.
func pages() map[string]struct {
	name string
	data any
} {
	pipe := fixturePipeline()
	page := Page{Nav: "pipelines", CSRF: "csrf-token", Now: now}
	withTitle := func(t string) Page { p := page; p.Title = t; return p }
	hostile := api.Pipeline{ID: 7, Project: "<script>alert('p')</script>", Status: "failed", Source: "push",
		Ref: `"><img src=x onerror=alert(1)>`, Name: "</td><td>oops", CreatedAt: now.Add(-72 * time.Hour),
		StartedAt: at(-72 * time.Hour), FinishedAt: at(-71 * time.Hour)}
	job := pipe.Jobs[1]
	degradedPage := withTitle("Status")
	degradedPage.Nav = "status"
	degradedPage.Degraded = []string{"Dispatch: 12 jobs waiting", "Runner class gpu: instances fail to boot"}
	return map[string]struct {
		name string
		data any
	}{
		"login": {"login", LoginPage{Page: Page{Title: "Sign in", Now: now}, Next: "/pipelines/42", Failed: true}},
		"error": {"error", ErrorPage{Page: withTitle("Not Found"), Status: 404, Message: `job "x<y" not found`}},
		"pipelines": {"pipelines", PipelinesPage{Page: withTitle("Pipelines"), Filter: PipelineFilter{Status: "failed", Source: "push"},
			Statuses: []string{"running", "failed"}, Sources: []string{"push", "schedule"},
			Pipelines: []api.Pipeline{pipe, hostile}, Older: "/pipelines?before=7&status=failed"}},
		"pipeline": {"pipeline", PipelinePage{Page: withTitle("Pipeline #42"), Pipeline: pipe,
			Graph: Layout(pipe.Jobs, func(j api.Job) string { return duration(j.StartedAt, j.FinishedAt, now) })}},
		"job": {"job", JobPage{Page: withTitle(job.Name), Job: job, Pipeline: pipe, Attempt: 2,
			Rows: RenderLog([]byte(fixtureLog)), Query: "fail", Matches: matching(RenderLog([]byte(fixtureLog)), "FAIL"),
			Variables: []Variable{{Name: "GOFLAGS", Value: "-mod=mod"}, {Name: "DEPLOY_KEY", Value: "s3cret", Masked: true}},
			Artifacts: &api.JobArtifacts{JobID: 2, Name: "binaries", Size: 123456, ExpireAt: at(48 * time.Hour),
				Files: []api.ArtifactFile{{Path: "bin/shop", Size: 120000, Mode: "-rwxr-xr-x"}}}}},
		"runners": {"runners", RunnersPage{Page: withTitle("Runners"),
			Classes: []autoscaler.ClassStatus{
				{Name: "small", Provider: "local", Policy: "idle", Labels: []string{"linux"}, Pending: 3, Warm: 2, Instances: []autoscaler.InstanceStatus{
					{ID: "i-1", Name: "test-small-1", State: "ready", Running: 1, JobsRun: 12, CreatedAt: now.Add(-2 * time.Hour), DiskUsedPercent: 41},
					{ID: "i-2", Name: "test-small-2", State: "draining", CreatedAt: now.Add(-30 * time.Minute), Reason: "idle"},
				}},
				{Name: "gpu", Provider: "docker", Policy: "per_job", Labels: []string{"gpu"}, Degraded: true, BreakerUntil: at(5 * time.Minute)},
			},
			Agents: []api.Agent{{ID: 1, Name: "<b>agent</b>", Labels: []string{"linux", "docker"}, Status: "active", Version: "dev", Concurrency: 2,
				Health:     api.Health{DiskTotalBytes: 100 << 30, DiskFreeBytes: 60 << 30, MemTotalBytes: 8 << 30, MemAvailBytes: 2 << 30, RunningJobs: 1},
				LastSeenAt: now.Add(-5 * time.Second)}}}},
		"events": {"events", EventsPage{Page: withTitle("Events"), Events: []autoscaler.Event{
			{At: now.Add(-time.Minute), Class: "small", Instance: "test-small-2", Kind: "draining", Reason: "idle"},
			{At: now.Add(-time.Hour), Class: "gpu", Instance: "test-gpu-1", Kind: "boot_failed", Reason: "no agent registered within 60s"},
		}}},
		"status": {"status", StatusPage{Page: degradedPage, Checks: []Check{
			{Name: "API", OK: true, Detail: "answering; the store answers"},
			{Name: "Dispatch", OK: false, Detail: "12 jobs waiting, the oldest for 14m 02s, more than 10m 00s"},
			{Name: "Runner class gpu", OK: false, Detail: "instances fail to boot; creation is held back"},
		}}},
		"analytics": {"analytics", AnalyticsPage{Page: withTitle("Analytics"), Days: 7, Choices: []int{1, 7, 14},
			Charts: analytics.Compute(analytics.Input{From: now.Add(-72 * time.Hour), To: now, Bucket: 24 * time.Hour,
				Prices: map[string]float64{"small": 0.1},
				Jobs: []*store.JobTiming{
					{Name: "build", Status: "success", PendingAt: now.Add(-50 * time.Hour), StartedAt: now.Add(-50*time.Hour + 2*time.Second), FinishedAt: now.Add(-49 * time.Hour), Attempts: 1, AgentLabels: []string{"hangar-class:small"}},
					{Name: "<b>test</b>", Status: "failed", PendingAt: now.Add(-20 * time.Hour), StartedAt: now.Add(-20*time.Hour + 300*time.Millisecond), FinishedAt: now.Add(-19 * time.Hour), Attempts: 1, AgentLabels: []string{"hangar-class:small"}},
				},
				Events: []*store.FleetEvent{
					{At: now.Add(-60 * time.Hour), Class: "small", Instance: "small-1", Kind: "created"},
					{At: now.Add(-60*time.Hour + 40*time.Second), Class: "small", Instance: "small-1", Kind: "ready"},
				}})}},
		"job-live": {"job", JobPage{Page: withTitle("unit tests"), Job: pipe.Jobs[2], Pipeline: pipe, Attempt: 1,
			Rows:         NewLogRenderer().Write([]byte("\x1b[0Ksection_start:1700000000:tests\r\x1b[0KRunning tests\n=== RUN TestCart\n")),
			OpenSections: 1, Live: true}},
	}
}

// TestPagesGolden renders each page on fixed data and compares it with its
// golden file (go test -run TestPagesGolden -update rewrites them).
func TestPagesGolden(t *testing.T) {
	r, err := NewRenderer()
	if err != nil {
		t.Fatal(err)
	}
	for file, p := range pages() {
		t.Run(file, func(t *testing.T) {
			var buf bytes.Buffer
			if err := r.Execute(&buf, p.name, p.data); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", "golden", file+".html")
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (go test -run TestPagesGolden -update writes it)", err)
			}
			if !bytes.Equal(buf.Bytes(), want) {
				t.Errorf("page %s differs from %s (rerun with -update if the change is meant):\n%s", file, path, firstDiff(string(want), buf.String()))
			}
		})
	}
}

// firstDiff shows where two texts first differ, by line.
func firstDiff(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := range max(len(wl), len(gl)) {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g {
			return "line " + strconv.Itoa(i+1) + ":\n  want: " + w + "\n  got:  " + g
		}
	}
	return ""
}

// TestPagesEscapeUserText renders what users and jobs wrote, hostile: it
// reaches the page as text, never as markup.
func TestPagesEscapeUserText(t *testing.T) {
	r, err := NewRenderer()
	if err != nil {
		t.Fatal(err)
	}
	for file, p := range pages() {
		var buf bytes.Buffer
		if err := r.Execute(&buf, p.name, p.data); err != nil {
			t.Fatal(err)
		}
		html := buf.String()
		for _, bad := range []string{"<script>alert", "<img src=x", "</td><td>oops", "<b>not bold</b>", "x<y", "<b>agent"} {
			if strings.Contains(html, bad) {
				t.Errorf("page %s holds %q unescaped", file, bad)
			}
		}
	}
}
