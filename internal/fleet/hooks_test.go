package fleet

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// logBuffer collects a Notifier's JSON log lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// records returns the log lines, decoded.
func (b *logBuffer) records(t *testing.T) []map[string]any {
	t.Helper()
	var recs []map[string]any
	sc := bufio.NewScanner(strings.NewReader(b.String()))
	for sc.Scan() {
		var r map[string]any
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		recs = append(recs, r)
	}
	return recs
}

// failures returns the ERROR lines: a hook's final failure.
func (b *logBuffer) failures(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, r := range b.records(t) {
		if r["level"] == "ERROR" {
			out = append(out, r)
		}
	}
	return out
}

// newTestNotifier returns a Notifier with short backoffs that logs into
// the returned buffer; cfg's non-zero fields win.
func newTestNotifier(t *testing.T, cfg NotifierConfig) (*Notifier, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	cfg.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if cfg.Backoff == 0 {
		cfg.Backoff = time.Millisecond
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = 5 * time.Millisecond
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	n := NewNotifier(cfg)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := n.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return n, logs
}

// wait waits for n's hooks to finish.
func wait(t *testing.T, n *Notifier) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Wait(ctx); err != nil {
		t.Fatal(err)
	}
}

func testRemoval() RemovalEvent {
	cest := time.FixedZone("CEST", 2*3600)
	return RemovalEvent{
		Installation: "hangar",
		Class:        "small",
		Instance:     "i-123",
		Agent:        "small-7f3a",
		Reason:       ReasonIdle,
		JobsRun:      14,
		CreatedAt:    time.Date(2025, 5, 1, 12, 0, 0, 0, cest),
		RemovedAt:    time.Date(2025, 5, 1, 12, 3, 10, 500, time.UTC),
	}
}

const testRemovalJSON = `{"installation":"hangar","class":"small","instance":"i-123","agent":"small-7f3a",` +
	`"reason":"idle above the pool's size","jobs_run":14,"created_at":"2025-05-01T10:00:00Z",` +
	`"removed_at":"2025-05-01T12:03:10Z","lifetime_seconds":7390}`

// request is what a fake server received.
type request struct {
	method, contentType, userAgent, body string
}

// fakeServer answers the statuses in turn (the last one from then on),
// with body, and records the requests.
type fakeServer struct {
	*httptest.Server
	mu       sync.Mutex
	requests []request
}

func newFakeServer(t *testing.T, body string, statuses ...int) *fakeServer {
	t.Helper()
	f := &fakeServer{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.requests = append(f.requests, request{r.Method, r.Header.Get("Content-Type"), r.Header.Get("User-Agent"), string(b)})
		status := statuses[min(len(f.requests), len(statuses))-1]
		f.mu.Unlock()
		if status == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "1")
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeServer) received() []request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]request(nil), f.requests...)
}

func TestHookWebhookJSON(t *testing.T) {
	t.Parallel()
	srv := newFakeServer(t, "", http.StatusNoContent)
	n, logs := newTestNotifier(t, NotifierConfig{UserAgent: "hangar/1.2.3"})
	n.Notify(context.Background(), Hooks{Webhook: srv.URL + "/hooks/removed"}, testRemoval())
	wait(t, n)

	reqs := srv.received()
	if len(reqs) != 1 {
		t.Fatalf("webhook called %d times, want 1", len(reqs))
	}
	want := request{http.MethodPost, "application/json", "hangar/1.2.3", testRemovalJSON}
	if reqs[0] != want {
		t.Errorf("webhook received\n%+v\nwant\n%+v", reqs[0], want)
	}
	if f := logs.failures(t); len(f) > 0 {
		t.Errorf("failures logged: %v", f)
	}
}

func TestHookDefaultUserAgent(t *testing.T) {
	t.Parallel()
	srv := newFakeServer(t, "", http.StatusOK)
	n, _ := newTestNotifier(t, NotifierConfig{})
	n.Notify(context.Background(), Hooks{Webhook: srv.URL}, testRemoval())
	wait(t, n)
	if reqs := srv.received(); len(reqs) != 1 || !strings.Contains(reqs[0].userAgent, "hangar") {
		t.Errorf("requests %+v, want one whose User-Agent names hangar", reqs)
	}
}

func TestHookSlack(t *testing.T) {
	t.Parallel()
	slack := newFakeServer(t, "ok", http.StatusOK) // Slack answers 200 "ok"
	n, logs := newTestNotifier(t, NotifierConfig{})
	n.Notify(context.Background(), Hooks{Slack: slack.URL + "/services/T000/B000/XXXX"}, testRemoval())
	wait(t, n)

	reqs := slack.received()
	if len(reqs) != 1 {
		t.Fatalf("slack called %d times, want 1", len(reqs))
	}
	if reqs[0].method != http.MethodPost || reqs[0].contentType != "application/json" {
		t.Errorf("slack received %s with Content-Type %q, want a POST of application/json", reqs[0].method, reqs[0].contentType)
	}
	var msg map[string]any
	if err := json.Unmarshal([]byte(reqs[0].body), &msg); err != nil {
		t.Fatalf("slack body %q: %v", reqs[0].body, err)
	}
	want := map[string]any{"text": "hangar: instance i-123 of class small removed (idle above the pool's size) after 2h 3m, 14 jobs"}
	if len(msg) != 1 || msg["text"] != want["text"] {
		t.Errorf("slack received %v, want %v", msg, want)
	}
	if f := logs.failures(t); len(f) > 0 {
		t.Errorf("failures logged: %v", f)
	}
}

func TestHookSlackText(t *testing.T) {
	t.Parallel()
	base := testRemoval()
	tests := []struct {
		name string
		edit func(*RemovalEvent)
		want string
	}{
		{"example", func(*RemovalEvent) {},
			"hangar: instance i-123 of class small removed (idle above the pool's size) after 2h 3m, 14 jobs"},
		{"one job", func(e *RemovalEvent) { e.JobsRun = 1 },
			"hangar: instance i-123 of class small removed (idle above the pool's size) after 2h 3m, 1 job"},
		{"no job, seconds", func(e *RemovalEvent) { e.JobsRun, e.CreatedAt = 0, e.RemovedAt.Add(-42*time.Second) },
			"hangar: instance i-123 of class small removed (idle above the pool's size) after 42s, 0 jobs"},
		{"other installation", func(e *RemovalEvent) { e.Installation = "prod" },
			"hangar prod: instance i-123 of class small removed (idle above the pool's size) after 2h 3m, 14 jobs"},
		{"no reason, no creation time", func(e *RemovalEvent) { e.Reason, e.CreatedAt = "", time.Time{} },
			"hangar: instance i-123 of class small removed, 14 jobs"},
		{"escaped", func(e *RemovalEvent) { e.Reason = "disk > 90% & <rising>" },
			"hangar: instance i-123 of class small removed (disk &gt; 90% &amp; &lt;rising&gt;) after 2h 3m, 14 jobs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := base
			tt.edit(&ev)
			if got := slackText(ev); got != tt.want {
				t.Errorf("slackText =\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

func TestHookHumanDuration(t *testing.T) {
	t.Parallel()
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"},
		{999 * time.Millisecond, "0s"},
		{45 * time.Second, "45s"},
		{time.Minute, "1m"},
		{3*time.Minute + 5*time.Second, "3m 5s"},
		{2*time.Hour + 3*time.Minute + 59*time.Second, "2h 3m"},
		{2 * time.Hour, "2h"},
		{2*time.Hour + 30*time.Second, "2h"},
		{4*24*time.Hour + time.Hour + time.Minute, "4d 1h"},
	}
	for _, tt := range tests {
		if got := humanDuration(tt.d); got != tt.want {
			t.Errorf("humanDuration(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

func TestHookRemovalEventJSON(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		edit func(*RemovalEvent)
		want string
	}{
		{"example", func(*RemovalEvent) {}, testRemovalJSON},
		{"unknown creation time", func(e *RemovalEvent) { e.CreatedAt = time.Time{} },
			strings.Replace(strings.Replace(testRemovalJSON, "2025-05-01T10:00:00Z", "0001-01-01T00:00:00Z", 1), `"lifetime_seconds":7390`, `"lifetime_seconds":0`, 1)},
		{"created after removal", func(e *RemovalEvent) { e.CreatedAt = e.RemovedAt.Add(time.Hour) },
			strings.Replace(strings.Replace(testRemovalJSON, "2025-05-01T10:00:00Z", "2025-05-01T13:03:10Z", 1), `"lifetime_seconds":7390`, `"lifetime_seconds":0`, 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := testRemoval()
			tt.edit(&ev)
			got, err := json.Marshal(ev)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("JSON\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestHookRemovedAtDefaultsToNow(t *testing.T) {
	t.Parallel()
	srv := newFakeServer(t, "", http.StatusOK)
	now := time.Date(2025, 5, 1, 11, 0, 0, 0, time.UTC)
	n, _ := newTestNotifier(t, NotifierConfig{Now: func() time.Time { return now }})
	ev := testRemoval()
	ev.RemovedAt = time.Time{}
	n.Notify(context.Background(), Hooks{Webhook: srv.URL}, ev)
	wait(t, n)
	reqs := srv.received()
	if len(reqs) != 1 || !strings.Contains(reqs[0].body, `"removed_at":"2025-05-01T11:00:00Z","lifetime_seconds":3600}`) {
		t.Errorf("requests %+v, want one removed at the clock's now", reqs)
	}
}

func TestHookCommandEnvironment(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "env")
	environ := append(os.Environ(), "OUT="+out, "HANGAR_TEST_MARKER=kept", "HANGAR_CLASS=stale")
	n, logs := newTestNotifier(t, NotifierConfig{Environ: environ})
	n.Notify(context.Background(), Hooks{Command: `env > "$OUT"`}, testRemoval())
	wait(t, n)
	if f := logs.failures(t); len(f) > 0 {
		t.Fatalf("failures logged: %v", f)
	}

	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for line := range strings.Lines(string(data)) {
		k, v, _ := strings.Cut(strings.TrimSuffix(line, "\n"), "=")
		env[k] = v
	}
	want := map[string]string{
		"HANGAR_INSTALLATION":     "hangar",
		"HANGAR_CLASS":            "small",
		"HANGAR_INSTANCE":         "i-123",
		"HANGAR_AGENT":            "small-7f3a",
		"HANGAR_REASON":           "idle above the pool's size",
		"HANGAR_JOBS_RUN":         "14",
		"HANGAR_CREATED_AT":       "2025-05-01T10:00:00Z",
		"HANGAR_REMOVED_AT":       "2025-05-01T12:03:10Z",
		"HANGAR_LIFETIME_SECONDS": "7390",
		"HANGAR_TEST_MARKER":      "kept", // the server's environment
		"PATH":                    os.Getenv("PATH"),
	}
	for k, v := range want {
		if got, ok := env[k]; !ok || got != v {
			t.Errorf("%s = %q (set: %v), want %q", k, got, ok, v)
		}
	}
}

func TestHookRetries(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		slack    bool
		statuses []int
		calls    int
		failed   bool
	}{
		{"webhook 500 twice then 200", false, []int{500, 500, 200}, 3, false},
		{"webhook 400 is final", false, []int{400, 200}, 1, true},
		{"webhook 404 is final", false, []int{404, 200}, 1, true},
		{"webhook 408 is retried", false, []int{408, 202}, 2, false},
		{"webhook 429 is retried", false, []int{429, 200}, 2, false},
		{"webhook 503 until out of tries", false, []int{503}, 3, true},
		{"webhook unfollowed 304 is final", false, []int{304, 200}, 1, true},
		{"slack 503 then ok", true, []int{503, 200}, 2, false},
		{"slack 429 then ok", true, []int{429, 200}, 2, false},
		{"slack 404 no_team is final", true, []int{404, 200}, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newFakeServer(t, "ok", tt.statuses...)
			// Retry-After asks for 1s: the fake Sleep keeps the test fast.
			n, logs := newTestNotifier(t, NotifierConfig{Attempts: 3, Sleep: func(context.Context, time.Duration) error { return nil }})
			h := Hooks{Webhook: srv.URL}
			if tt.slack {
				h = Hooks{Slack: srv.URL}
			}
			n.Notify(context.Background(), h, testRemoval())
			wait(t, n)
			if got := len(srv.received()); got != tt.calls {
				t.Errorf("called %d times, want %d", got, tt.calls)
			}
			if failed := len(logs.failures(t)) > 0; failed != tt.failed {
				t.Errorf("failure logged: %v, want %v; log:\n%s", failed, tt.failed, logs)
			}
		})
	}
}

func TestHookBackoff(t *testing.T) {
	t.Parallel()
	srv := newFakeServer(t, "", 500, 500, 429, 500)
	var (
		mu    sync.Mutex
		waits []time.Duration
	)
	n, _ := newTestNotifier(t, NotifierConfig{
		Attempts: 5, Backoff: 100 * time.Millisecond, MaxBackoff: time.Second,
		Rand: func() float64 { return 0.5 },
		Sleep: func(_ context.Context, d time.Duration) error {
			mu.Lock()
			defer mu.Unlock()
			waits = append(waits, d)
			return nil
		},
	})
	n.Notify(context.Background(), Hooks{Webhook: srv.URL}, testRemoval())
	wait(t, n)
	// Half the backoff plus half of the other half; 429's Retry-After: 1
	// lengthens the third wait to 1s.
	want := []time.Duration{75 * time.Millisecond, 150 * time.Millisecond, time.Second, 600 * time.Millisecond}
	mu.Lock()
	defer mu.Unlock()
	if !equalDurations(waits, want) {
		t.Errorf("waits %v, want %v", waits, want)
	}
	if got := len(srv.received()); got != 5 {
		t.Errorf("called %d times, want 5", got)
	}
}

func equalDurations(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestHookCommandRetries(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	count := filepath.Join(dir, "count")
	environ := append(os.Environ(), "COUNT="+count)
	n, logs := newTestNotifier(t, NotifierConfig{Environ: environ})
	// Fails on its first two runs.
	n.Notify(context.Background(), Hooks{Command: `n=$(cat "$COUNT" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "$COUNT"; [ $n -ge 3 ]`}, testRemoval())
	wait(t, n)
	data, err := os.ReadFile(count)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(data)); got != "3" {
		t.Errorf("command ran %s times, want 3", got)
	}
	if f := logs.failures(t); len(f) > 0 {
		t.Errorf("failures logged: %v", f)
	}
}

func TestHookFailureLogged(t *testing.T) {
	t.Parallel()
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close() // connection refused from now on
	tests := []struct {
		name    string
		hooks   Hooks
		kind    string
		errHas  []string
		secrets []string // must not be logged
	}{
		{"webhook 500", Hooks{Webhook: newFakeServer(t, "database\nis down", 500).URL}, "webhook",
			[]string{"answered 500 Internal Server Error: database is down"}, nil},
		{"slack unreachable", Hooks{Slack: closed.URL + "/services/T000/B000/SECRET"}, "slack",
			[]string{"post:", "refused"}, []string{"SECRET"}},
		{"slack invalid URL", Hooks{Slack: "http://[::1/services/SECRET"}, "slack",
			[]string{"invalid request"}, []string{"SECRET"}},
		{"command exit 3", Hooks{Command: `echo starting; echo boom >&2; exit 3`}, "command",
			[]string{"exit status 3", "starting\nboom"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			n, logs := newTestNotifier(t, NotifierConfig{Attempts: 2})
			n.Notify(context.Background(), tt.hooks, testRemoval())
			wait(t, n)
			f := logs.failures(t)
			if len(f) != 1 {
				t.Fatalf("%d failures logged, want 1; log:\n%s", len(f), logs)
			}
			r := f[0]
			for k, v := range map[string]string{"hook": tt.kind, "class": "small", "instance": "i-123", "agent": "small-7f3a"} {
				if r[k] != v {
					t.Errorf("%s = %v, want %q", k, r[k], v)
				}
			}
			msg, _ := r["error"].(string)
			for _, s := range tt.errHas {
				if !strings.Contains(msg, s) {
					t.Errorf("error %q does not say %q", msg, s)
				}
			}
			for _, s := range tt.secrets {
				if strings.Contains(logs.String(), s) {
					t.Errorf("log shows %q:\n%s", s, logs)
				}
			}
		})
	}
}

func TestHookCommandOutputBounded(t *testing.T) {
	t.Parallel()
	n, logs := newTestNotifier(t, NotifierConfig{Attempts: 1})
	n.Notify(context.Background(), Hooks{Command: `i=0; while [ $i -lt 2000 ]; do echo "line $i"; i=$((i+1)); done; echo last; exit 1`}, testRemoval())
	wait(t, n)
	f := logs.failures(t)
	if len(f) != 1 {
		t.Fatalf("%d failures logged, want 1", len(f))
	}
	msg, _ := f[0]["error"].(string)
	if len(msg) > hookOutputLimit+200 || !strings.HasSuffix(msg, "line 1999\nlast") || !strings.Contains(msg, "…") {
		t.Errorf("error of %d bytes, want the output's tail, marked as cut: %q…", len(msg), msg[:min(len(msg), 200)])
	}
}

func TestHookCommandTimeout(t *testing.T) {
	t.Parallel()
	n, logs := newTestNotifier(t, NotifierConfig{Attempts: 1, Timeout: 200 * time.Millisecond})
	start := time.Now()
	n.Notify(context.Background(), Hooks{Command: `sleep 30 & sleep 30`}, testRemoval())
	wait(t, n)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the hook took %v", d)
	}
	f := logs.failures(t)
	if len(f) != 1 || !strings.Contains(f[0]["error"].(string), "timed out after 200ms") {
		t.Errorf("failures %v, want one that timed out", f)
	}
}

func TestHookIndependent(t *testing.T) {
	t.Parallel()
	webhook := newFakeServer(t, "", 400)
	slack := newFakeServer(t, "ok", 200)
	out := filepath.Join(t.TempDir(), "ran")
	n, logs := newTestNotifier(t, NotifierConfig{Environ: append(os.Environ(), "OUT="+out)})
	n.Notify(context.Background(), Hooks{Webhook: webhook.URL, Slack: slack.URL, Command: `touch "$OUT"`}, testRemoval())
	wait(t, n)
	if len(webhook.received()) != 1 || len(slack.received()) != 1 {
		t.Errorf("webhook called %d times, slack %d, want 1 each", len(webhook.received()), len(slack.received()))
	}
	if _, err := os.Stat(out); err != nil {
		t.Errorf("command did not run: %v", err)
	}
	if f := logs.failures(t); len(f) != 1 || f[0]["hook"] != "webhook" {
		t.Errorf("failures %v, want the webhook's alone", f)
	}
}

func TestHookHangingDoesNotBlock(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		_, _ = io.Copy(io.Discard, r.Body) // so that the server sees the client go
		<-r.Context().Done()               // until the client gives up
	}))
	t.Cleanup(hang.Close)
	n, logs := newTestNotifier(t, NotifierConfig{Timeout: time.Hour})

	returned := make(chan struct{})
	go func() {
		n.Notify(context.Background(), Hooks{Webhook: hang.URL, Slack: hang.URL, Command: "sleep 60"}, testRemoval())
		close(returned)
	}()
	select {
	case <-returned:
	case <-time.After(5 * time.Second):
		t.Fatal("Notify blocks while its hooks hang")
	}

	for deadline := time.Now().Add(5 * time.Second); calls.Load() < 2 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := n.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "3 still running") {
		t.Errorf("Wait = %v, want 3 hooks still running at the deadline", err)
	}

	start := time.Now()
	ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := n.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close = %v, want the deadline's error", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Close took %v after its deadline", d)
	}
	// Close cancelled them: they wind down at once.
	wait(t, n)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the cancelled hooks took %v to end", d)
	}
	f := logs.failures(t)
	if len(f) != 3 {
		t.Errorf("%d failures logged, want 3; log:\n%s", len(f), logs)
	}
	for _, r := range f {
		if !strings.Contains(r["msg"].(string), "cancelled") {
			t.Errorf("failure %v does not say it was cancelled", r)
		}
	}
	if c := calls.Load(); c != 2 {
		t.Errorf("hanging server called %d times, want 2", c)
	}
}

func TestHookNotifyAfterClose(t *testing.T) {
	t.Parallel()
	srv := newFakeServer(t, "", 200)
	n, logs := newTestNotifier(t, NotifierConfig{})
	if err := n.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	n.Notify(context.Background(), Hooks{Webhook: srv.URL}, testRemoval())
	wait(t, n)
	if c := len(srv.received()); c != 0 {
		t.Errorf("webhook called %d times after Close", c)
	}
	if !strings.Contains(logs.String(), "notifier is closed") {
		t.Errorf("dropped notification not logged:\n%s", logs)
	}
}

func TestHookNoHooks(t *testing.T) {
	t.Parallel()
	n, logs := newTestNotifier(t, NotifierConfig{})
	n.Notify(context.Background(), Hooks{}, testRemoval())
	wait(t, n)
	if s := logs.String(); s != "" {
		t.Errorf("log for no hooks:\n%s", s)
	}
}

func TestHookNotifierConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		cfg  NotifierConfig
		want string // in the error; "" for valid
	}{
		{NotifierConfig{}, ""},
		{NotifierConfig{Attempts: 1, Backoff: time.Second, MaxBackoff: time.Second, Timeout: time.Second}, ""},
		{NotifierConfig{Attempts: -1}, "Attempts"},
		{NotifierConfig{Backoff: -time.Second}, "Backoff"},
		{NotifierConfig{MaxBackoff: -time.Second}, "MaxBackoff"},
		{NotifierConfig{Backoff: 2 * time.Second, MaxBackoff: time.Second}, "Backoff (2s) is more than MaxBackoff"},
		{NotifierConfig{Timeout: -1}, "Timeout"},
		{NotifierConfig{UserAgent: "hangar\r\nX-Evil: 1"}, "UserAgent"},
	}
	for _, tt := range tests {
		err := tt.cfg.Validate()
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("Validate(%+v) = %v, want nil", tt.cfg, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("Validate(%+v) = %v, want an error naming %s", tt.cfg, err, tt.want)
		}
	}
}

func TestHookNotifierDefaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		cfg                 NotifierConfig
		backoff, maxBackoff time.Duration
	}{
		{NotifierConfig{}, DefaultHookBackoff, DefaultHookMaxBackoff},
		{NotifierConfig{MaxBackoff: 100 * time.Millisecond}, 100 * time.Millisecond, 100 * time.Millisecond},
		{NotifierConfig{Backoff: time.Minute}, time.Minute, time.Minute},
	}
	for _, tt := range tests {
		n := NewNotifier(tt.cfg)
		if n.cfg.Backoff != tt.backoff || n.cfg.MaxBackoff != tt.maxBackoff || n.cfg.Attempts != DefaultHookAttempts || n.cfg.Timeout != DefaultHookTimeout {
			t.Errorf("NewNotifier(%+v) has %+v", tt.cfg, n.cfg)
		}
	}
}
