package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Defaults for NotifierConfig fields left zero.
const (
	// DefaultHookAttempts is how many times a hook is tried.
	DefaultHookAttempts = 3
	// DefaultHookBackoff is the wait after a hook's first failed try; it
	// doubles after each further one, up to DefaultHookMaxBackoff.
	DefaultHookBackoff = time.Second
	// DefaultHookMaxBackoff caps the wait between two tries of a hook.
	DefaultHookMaxBackoff = 30 * time.Second
	// DefaultHookTimeout bounds one try of a hook: the command's run, or
	// the HTTP request and its answer.
	DefaultHookTimeout = time.Minute
	// DefaultHookUserAgent is the User-Agent of the webhook and Slack
	// requests.
	DefaultHookUserAgent = "hangar"
)

const (
	// hookBodyLimit bounds the part of an HTTP answer's body kept for the
	// log, and hookOutputLimit the tail of a command's output.
	hookBodyLimit   = 512
	hookOutputLimit = 2048
	// hookWaitDelay is how long a command's output is read after its shell
	// exits or is killed, in case a process it started holds it open.
	hookWaitDelay = 2 * time.Second
)

// The hook kinds, as the log names them.
const (
	hookWebhook = "webhook"
	hookSlack   = "slack"
	hookCommand = "command"
)

// RemovalEvent describes an instance's removal, as every hook receives
// it. Its JSON form, the webhook's body, is
//
//	{"installation": "hangar", "class": "small", "instance": "i-123",
//	 "agent": "small-7f3a", "reason": "idle above the pool's size",
//	 "jobs_run": 14, "created_at": "2025-05-01T10:00:00Z",
//	 "removed_at": "2025-05-01T12:03:10Z", "lifetime_seconds": 7390}
//
// with the times in RFC 3339, in UTC, to the second, and the lifetime in
// whole seconds (see Lifetime).
type RemovalEvent struct {
	// Installation is the Hangar installation (Config.Installation).
	Installation string
	// Class is the instance's runner class.
	Class string
	// Instance is the provider's id of the instance.
	Instance string
	// Agent is the name of the agent that ran on it; empty when none
	// registered.
	Agent string
	// Reason says why it was removed, such as ReasonIdle.
	Reason string
	// JobsRun counts the attempts the instance started in its life.
	JobsRun int
	// CreatedAt is when the instance was created, RemovedAt when it was
	// removed (Notify sets the Notifier's clock's now when it is zero).
	CreatedAt, RemovedAt time.Time
}

// Lifetime is RemovedAt - CreatedAt, or 0 when CreatedAt is unknown (zero)
// or after RemovedAt.
func (e RemovalEvent) Lifetime() time.Duration {
	if e.CreatedAt.IsZero() || e.RemovedAt.Before(e.CreatedAt) {
		return 0
	}
	return e.RemovedAt.Sub(e.CreatedAt)
}

// MarshalJSON encodes the event with snake_case keys, as the RemovalEvent
// documentation shows.
func (e RemovalEvent) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Installation    string `json:"installation"`
		Class           string `json:"class"`
		Instance        string `json:"instance"`
		Agent           string `json:"agent"`
		Reason          string `json:"reason"`
		JobsRun         int    `json:"jobs_run"`
		CreatedAt       string `json:"created_at"`
		RemovedAt       string `json:"removed_at"`
		LifetimeSeconds int64  `json:"lifetime_seconds"`
	}{
		e.Installation, e.Class, e.Instance, e.Agent, e.Reason, e.JobsRun,
		hookTime(e.CreatedAt), hookTime(e.RemovedAt), e.lifetimeSeconds(),
	})
}

func (e RemovalEvent) lifetimeSeconds() int64 { return int64(e.Lifetime() / time.Second) }

// hookTime formats t as the hooks see it: RFC 3339 in UTC.
func hookTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// NotifierConfig configures a Notifier. The zero value is valid and means
// every default.
type NotifierConfig struct {
	// Client sends the webhook and Slack requests. Default a new
	// http.Client with the default transport; Timeout bounds each request
	// in any case.
	Client *http.Client
	// Logger receives a warning for each failed try that is tried again,
	// an error for each hook's final failure and a debug line for each
	// success. Default slog.Default().
	Logger *slog.Logger
	// Attempts is how many times a hook is tried before its failure is
	// final. Default DefaultHookAttempts.
	Attempts int
	// Backoff is the wait after the first failed try, doubled after each
	// further one up to MaxBackoff (an HTTP answer's Retry-After, in
	// seconds, lengthens it up to MaxBackoff too). Each wait is jittered
	// down to as little as half. Defaults DefaultHookBackoff and
	// DefaultHookMaxBackoff.
	Backoff, MaxBackoff time.Duration
	// Timeout bounds one try of a hook: the command's run (it is then
	// killed, with the processes it started in its process group) or the
	// HTTP request. Default DefaultHookTimeout.
	Timeout time.Duration
	// UserAgent is the User-Agent header of the HTTP requests, such as
	// "hangar/1.4.0". Default DefaultHookUserAgent.
	UserAgent string
	// Environ is the environment the command hook starts from, as
	// os.Environ returns it; the HANGAR_ variables go on top. Nil means
	// os.Environ() at each run.
	Environ []string
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Sleep waits d, or returns ctx's error once ctx is done first. Nil
	// means a timer.
	Sleep func(ctx context.Context, d time.Duration) error
	// Rand returns a number in [0, 1) that jitters the backoff. Nil means
	// math/rand/v2's Float64.
	Rand func() float64
	// Now, Sleep and Rand are called by several hooks at once.
}

// Validate reports the first field of c that is invalid.
func (c *NotifierConfig) Validate() error {
	switch {
	case c.Attempts < 0:
		return fmt.Errorf("notifier config: Attempts is negative (%d)", c.Attempts)
	case c.Backoff < 0:
		return fmt.Errorf("notifier config: Backoff is negative (%v)", c.Backoff)
	case c.MaxBackoff < 0:
		return fmt.Errorf("notifier config: MaxBackoff is negative (%v)", c.MaxBackoff)
	case c.Backoff > 0 && c.MaxBackoff > 0 && c.Backoff > c.MaxBackoff:
		return fmt.Errorf("notifier config: Backoff (%v) is more than MaxBackoff (%v)", c.Backoff, c.MaxBackoff)
	case c.Timeout < 0:
		return fmt.Errorf("notifier config: Timeout is negative (%v)", c.Timeout)
	case strings.ContainsAny(c.UserAgent, "\r\n"):
		return fmt.Errorf("notifier config: UserAgent holds a line break (%q)", c.UserAgent)
	}
	return nil
}

// Notifier runs the class's hooks when the fleet removes an instance: a
// webhook, a Slack message and a command, each in the background, each
// tried again after a failure worth retrying, each independent of the
// others. It is safe for concurrent use.
type Notifier struct {
	cfg NotifierConfig
	log *slog.Logger

	// base is the context of every hook; Close cancels it once it has
	// waited, which stops the hooks its deadline left running.
	base   context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	closed   bool
	inflight int           // hooks running or waiting to try again
	idle     chan struct{} // closed when inflight drops to 0
}

// NewNotifier returns a Notifier configured by cfg, with defaults filled
// in. It panics if cfg is invalid (see Validate).
func NewNotifier(cfg NotifierConfig) *Notifier {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Attempts == 0 {
		cfg.Attempts = DefaultHookAttempts
	}
	if cfg.Backoff == 0 {
		cfg.Backoff = DefaultHookBackoff
		if cfg.MaxBackoff > 0 {
			cfg.Backoff = min(cfg.Backoff, cfg.MaxBackoff)
		}
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = max(DefaultHookMaxBackoff, cfg.Backoff)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultHookTimeout
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = DefaultHookUserAgent
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Sleep == nil {
		cfg.Sleep = sleepCtx
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Float64
	}
	base, cancel := context.WithCancel(context.Background())
	return &Notifier{cfg: cfg, log: cfg.Logger, base: base, cancel: cancel}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Notify runs the hooks of h for ev in the background and returns at once:
// it never blocks a deletion. ctx's values reach the hooks and their log
// lines, its cancellation does not: a notification outlives the work that
// caused it, until it is done or Close gives up on it. Each hook is tried
// up to Attempts times; a failure is logged with the hook's kind, the
// class, the instance and the error. After Close, Notify logs that it
// drops ev and runs nothing.
func (n *Notifier) Notify(ctx context.Context, h Hooks, ev RemovalEvent) {
	if ev.RemovedAt.IsZero() {
		ev.RemovedAt = n.cfg.Now()
	}
	type hook struct {
		kind string
		send func(context.Context, RemovalEvent) error
	}
	var hooks []hook
	if h.Webhook != "" {
		hooks = append(hooks, hook{hookWebhook, func(ctx context.Context, ev RemovalEvent) error {
			return n.sendWebhook(ctx, h.Webhook, ev)
		}})
	}
	if h.Slack != "" {
		hooks = append(hooks, hook{hookSlack, func(ctx context.Context, ev RemovalEvent) error {
			return n.sendSlack(ctx, h.Slack, ev)
		}})
	}
	if h.Command != "" {
		hooks = append(hooks, hook{hookCommand, func(ctx context.Context, ev RemovalEvent) error {
			return n.runCommand(ctx, h.Command, ev)
		}})
	}
	if len(hooks) == 0 {
		return
	}
	if !n.start(len(hooks)) {
		n.log.LogAttrs(ctx, slog.LevelWarn, "teardown hooks not run: the notifier is closed",
			append(eventAttrs(ev), slog.Int("hooks", len(hooks)))...)
		return
	}
	// Values from ctx, cancellation from n.base.
	hctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	unhook := context.AfterFunc(n.base, stop)
	var wg sync.WaitGroup
	for _, hk := range hooks {
		wg.Go(func() {
			defer n.done()
			n.deliver(hctx, hk.kind, ev, hk.send)
		})
	}
	go func() {
		wg.Wait()
		unhook()
		stop()
	}()
}

// start counts k more hooks in flight, unless n is closed.
func (n *Notifier) start(k int) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return false
	}
	if n.inflight == 0 {
		n.idle = make(chan struct{})
	}
	n.inflight += k
	return true
}

// done counts one hook in flight less.
func (n *Notifier) done() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.inflight--
	if n.inflight == 0 {
		close(n.idle)
	}
}

// Wait returns once no hook is in flight, or when ctx is done, with an
// error that counts the hooks still running and wraps ctx's error. Unlike
// Close it leaves them running and n open.
func (n *Notifier) Wait(ctx context.Context) error {
	n.mu.Lock()
	if n.inflight == 0 {
		n.mu.Unlock()
		return nil
	}
	idle := n.idle
	n.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
	}
	n.mu.Lock()
	left := n.inflight
	n.mu.Unlock()
	if left == 0 {
		return nil
	}
	return fmt.Errorf("wait for teardown hooks: %d still running: %w", left, ctx.Err())
}

// Close stops n taking notifications and waits for those in flight, as
// Wait does. When ctx is done first, Close cancels them (a command is
// killed, a request aborted, no further try is made; each logs its
// failure) and returns Wait's error without waiting for them to wind
// down. Calling Close again waits again.
func (n *Notifier) Close(ctx context.Context) error {
	n.mu.Lock()
	n.closed = true
	n.mu.Unlock()
	err := n.Wait(ctx)
	n.cancel() // nothing is left to cancel when Wait succeeded
	if err != nil {
		return fmt.Errorf("close notifier: %w", err)
	}
	return nil
}

// deliver tries one hook until it succeeds, fails for good, runs out of
// tries or is cancelled, and logs the outcome.
func (n *Notifier) deliver(ctx context.Context, kind string, ev RemovalEvent, send func(context.Context, RemovalEvent) error) {
	attrs := append([]slog.Attr{slog.String("hook", kind)}, eventAttrs(ev)...)
	start := n.cfg.Now()
	backoff := n.cfg.Backoff
	for try := 1; ; try++ {
		tctx, cancel := context.WithTimeout(ctx, n.cfg.Timeout)
		err := send(tctx, ev)
		cancel()
		if err == nil {
			n.log.LogAttrs(ctx, slog.LevelDebug, "teardown hook done", append(attrs,
				slog.Int("tries", try), slog.Duration("duration", n.cfg.Now().Sub(start)))...)
			return
		}
		if ctx.Err() != nil {
			n.log.LogAttrs(ctx, slog.LevelError, "teardown hook failed: cancelled at shutdown", append(attrs,
				slog.Int("tries", try), slog.String("error", err.Error()))...)
			return
		}
		if try >= n.cfg.Attempts || !hookRetryable(err) {
			n.log.LogAttrs(ctx, slog.LevelError, "teardown hook failed", append(attrs,
				slog.Int("tries", try), slog.String("error", err.Error()))...)
			return
		}
		wait := backoff/2 + time.Duration(n.cfg.Rand()*float64(backoff-backoff/2))
		if ra := hookRetryAfter(err); ra > wait {
			wait = min(ra, n.cfg.MaxBackoff)
		}
		n.log.LogAttrs(ctx, slog.LevelWarn, "teardown hook failed, trying again", append(attrs,
			slog.Int("try", try), slog.Duration("retry_in", wait), slog.String("error", err.Error()))...)
		if err := n.cfg.Sleep(ctx, wait); err != nil {
			n.log.LogAttrs(ctx, slog.LevelError, "teardown hook failed: cancelled at shutdown", append(attrs,
				slog.Int("tries", try), slog.String("error", err.Error()))...)
			return
		}
		backoff = min(2*backoff, n.cfg.MaxBackoff)
	}
}

func eventAttrs(ev RemovalEvent) []slog.Attr {
	return []slog.Attr{
		slog.String("class", ev.Class), slog.String("instance", ev.Instance),
		slog.String("agent", ev.Agent), slog.String("reason", ev.Reason),
	}
}

// hookStatusError is an HTTP hook's answer other than success.
type hookStatusError struct {
	status     int
	text       string        // "500 Internal Server Error"
	body       string        // the start of the body, on one line
	retryAfter time.Duration // from Retry-After, when given in seconds
}

func (e *hookStatusError) Error() string {
	if e.body == "" {
		return "answered " + e.text
	}
	return "answered " + e.text + ": " + e.body
}

// errHookRequest marks a request that cannot be made at all (a bad URL):
// trying again cannot help.
var errHookRequest = errors.New("invalid request")

// hookRetryable reports whether a failed try is worth another: a network
// error, a timeout, a command's failure, or an HTTP answer of 408, 429 or
// 5xx. Any other answer (4xx, an unfollowed 3xx) and a request that cannot
// be made are final.
func hookRetryable(err error) bool {
	if errors.Is(err, errHookRequest) {
		return false
	}
	var se *hookStatusError
	if errors.As(err, &se) {
		return se.status == http.StatusRequestTimeout || se.status == http.StatusTooManyRequests || se.status >= 500
	}
	return true
}

// hookRetryAfter returns the wait an HTTP answer asked for, or 0.
func hookRetryAfter(err error) time.Duration {
	var se *hookStatusError
	if errors.As(err, &se) {
		return se.retryAfter
	}
	return 0
}

// sendWebhook POSTs ev as JSON to target.
func (n *Notifier) sendWebhook(ctx context.Context, target string, ev RemovalEvent) error {
	body, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("encode event: %w", err)
	}
	return n.post(ctx, target, body)
}

// slackMessage is an incoming webhook's payload.
type slackMessage struct {
	Text string `json:"text"`
}

// sendSlack posts ev's one-line summary to a Slack incoming webhook.
func (n *Notifier) sendSlack(ctx context.Context, target string, ev RemovalEvent) error {
	body, err := json.Marshal(slackMessage{Text: slackText(ev)})
	if err != nil {
		return fmt.Errorf("encode slack message: %w", err)
	}
	return n.post(ctx, target, body)
}

// post sends one JSON request; any 2xx is success. Errors never show
// target, which may hold a secret (a Slack webhook URL is one).
func (n *Notifier) post(ctx context.Context, target string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("%w: %w", errHookRequest, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", n.cfg.UserAgent)
	resp, err := n.cfg.Client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("post: %w", err)
	}
	defer resp.Body.Close()
	excerpt, _ := io.ReadAll(io.LimitReader(resp.Body, hookBodyLimit))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // so the connection can be reused
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	se := &hookStatusError{status: resp.StatusCode, text: resp.Status, body: strings.Join(strings.Fields(string(excerpt)), " ")}
	if s, err := strconv.Atoi(strings.TrimSpace(resp.Header.Get("Retry-After"))); err == nil && s > 0 {
		se.retryAfter = time.Duration(s) * time.Second
	}
	return se
}

// slackText is the Slack message for ev, such as "hangar: instance i-123
// of class small removed (idle above the pool's size) after 2h 3m, 14
// jobs", escaped as Slack's mrkdwn requires.
func slackText(ev RemovalEvent) string {
	var b strings.Builder
	b.WriteString("hangar")
	if ev.Installation != "" && ev.Installation != DefaultInstallation {
		b.WriteString(" " + ev.Installation)
	}
	fmt.Fprintf(&b, ": instance %s of class %s removed", ev.Instance, ev.Class)
	if ev.Reason != "" {
		fmt.Fprintf(&b, " (%s)", ev.Reason)
	}
	if !ev.CreatedAt.IsZero() {
		fmt.Fprintf(&b, " after %s", humanDuration(ev.Lifetime()))
	}
	if ev.JobsRun == 1 {
		b.WriteString(", 1 job")
	} else {
		fmt.Fprintf(&b, ", %d jobs", ev.JobsRun)
	}
	return slackEscaper.Replace(b.String())
}

// slackEscaper escapes the three characters Slack's mrkdwn gives a meaning.
var slackEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// humanDuration writes d in its two largest units, truncated: "45s",
// "3m 5s", "2h 3m", "4d 1h"; a zero second unit is left out ("2h").
func humanDuration(d time.Duration) string {
	s := int64(d / time.Second)
	units := []struct {
		name string
		size int64
	}{{"d", 86400}, {"h", 3600}, {"m", 60}, {"s", 1}}
	for i, u := range units[:len(units)-1] {
		if s < u.size {
			continue
		}
		out := strconv.FormatInt(s/u.size, 10) + u.name
		if next := units[i+1]; s%u.size/next.size > 0 {
			out += " " + strconv.FormatInt(s%u.size/next.size, 10) + next.name
		}
		return out
	}
	return strconv.FormatInt(s, 10) + "s"
}

// runCommand runs command with sh -c, ev in its environment. ctx's end
// kills its process group.
func (n *Notifier) runCommand(ctx context.Context, command string, ev RemovalEvent) error {
	cmd := exec.CommandContext(ctx, "sh", "-c", command)
	env := n.cfg.Environ
	if env == nil {
		env = os.Environ()
	}
	cmd.Env = append(env[:len(env):len(env)], commandEnv(ev)...)
	var out tailBuffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// sh leads its own group (Setpgid): kill whatever it started too.
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = hookWaitDelay
	err := cmd.Run()
	switch {
	case err == nil, errors.Is(err, exec.ErrWaitDelay):
		// ErrWaitDelay: sh succeeded, but something it left running held
		// its output open.
		return nil
	case ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded):
		err = fmt.Errorf("timed out after %v: %w", n.cfg.Timeout, ctx.Err())
	case ctx.Err() != nil:
		err = fmt.Errorf("stopped: %w", ctx.Err())
	}
	if o := strings.TrimSpace(out.String()); o != "" {
		return fmt.Errorf("run command: %w; output: %s", err, o)
	}
	return fmt.Errorf("run command: %w", err)
}

// commandEnv is ev as the command hook's HANGAR_ variables.
func commandEnv(ev RemovalEvent) []string {
	return []string{
		"HANGAR_INSTALLATION=" + ev.Installation,
		"HANGAR_CLASS=" + ev.Class,
		"HANGAR_INSTANCE=" + ev.Instance,
		"HANGAR_AGENT=" + ev.Agent,
		"HANGAR_REASON=" + ev.Reason,
		"HANGAR_JOBS_RUN=" + strconv.Itoa(ev.JobsRun),
		"HANGAR_CREATED_AT=" + hookTime(ev.CreatedAt),
		"HANGAR_REMOVED_AT=" + hookTime(ev.RemovedAt),
		"HANGAR_LIFETIME_SECONDS=" + strconv.FormatInt(ev.lifetimeSeconds(), 10),
	}
}

// tailBuffer keeps the last hookOutputLimit bytes written to it.
type tailBuffer struct {
	mu        sync.Mutex
	buf       []byte
	truncated bool
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - hookOutputLimit; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
		t.truncated = true
	}
	return len(p), nil
}

// String returns the kept output, marked when its start was dropped.
func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.truncated {
		return "…" + string(t.buf)
	}
	return string(t.buf)
}
