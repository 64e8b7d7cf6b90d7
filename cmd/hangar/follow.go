package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hangar-ci/hangar/internal/api"
)

// cli calls a server's API for the commands people type.
type cli struct {
	client         *api.Client
	token          string
	stdout, stderr io.Writer
}

// call makes an idempotent call, retrying through network trouble and
// server restarts until ctx ends.
func (c *cli) call(ctx context.Context, method, path string, in, out any) error {
	return api.Retry(ctx, api.Backoff{Min: 100 * time.Millisecond, Max: 3 * time.Second}, func() error {
		if b, ok := out.(*bytes.Buffer); ok {
			b.Reset()
		}
		_, err := c.client.Do(ctx, method, path, c.token, in, out)
		return err
	})
}

// attemptCursor is how much of one attempt's log was printed.
type attemptCursor struct {
	offset  int64
	partial []byte // the start of a line not yet ended
}

// follower prints a pipeline's progress and logs as they come.
type follower struct {
	out      *bufio.Writer
	tty      bool
	width    int
	status   map[int64]string
	cursors  map[int64]*attemptCursor // by attempt ID
	shownBar bool
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// follow prints the pipeline's job logs, line by line with the job's name
// in front, until the pipeline finishes; then a summary. It survives server
// restarts: what was printed is tracked here, by byte offset, so every line
// is printed once. On ctx's end it cancels the pipeline.
func (c *cli) follow(ctx context.Context, id int64) int {
	f := &follower{out: bufio.NewWriterSize(c.stdout, 64<<10), tty: isTerminal(c.stdout),
		status: map[int64]string{}, cursors: map[int64]*attemptCursor{}}
	defer f.out.Flush()
	watchCtx := ctx
	canceled := false
	version := ""
	for {
		var p api.Pipeline
		err := c.call(watchCtx, http.MethodGet, fmt.Sprintf("/pipelines/%d/watch?version=%s&wait=25", id, version), nil, &p)
		if err != nil && ctx.Err() != nil && !canceled {
			// Ctrl-C: cancel the pipeline, then watch it wind down.
			canceled = true
			fmt.Fprintf(c.stderr, "\nhangar: canceling pipeline %d\n", id)
			var cancel context.CancelFunc
			watchCtx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := c.call(watchCtx, http.MethodPost, fmt.Sprintf("/pipelines/%d/cancel", id), nil, nil); err != nil {
				fmt.Fprintf(c.stderr, "hangar: cancel pipeline %d: %v\n", id, err)
				return exitFailed
			}
			continue
		}
		if err != nil {
			f.out.Flush()
			fmt.Fprintf(c.stderr, "hangar: follow pipeline %d: %v\n", id, err)
			return exitTrouble
		}
		version = p.Version
		if f.width == 0 {
			for _, j := range p.Jobs {
				f.width = max(f.width, len(j.Name))
			}
			f.width = min(f.width, 40)
		}
		f.clearBar()
		fresh, err := c.fetchLogs(watchCtx, f, p)
		for _, j := range p.Jobs {
			f.printLogs(j, fresh) // what was read is printed, even on an error
			if err == nil && f.status[j.ID] != j.Status {
				f.status[j.ID] = j.Status
				f.statusLine(j)
			}
		}
		if err != nil {
			if ctx.Err() != nil && !canceled {
				continue // Ctrl-C while reading logs: the next watch cancels the pipeline
			}
			f.out.Flush()
			fmt.Fprintf(c.stderr, "hangar: logs of pipeline %d: %v\n", id, err)
			return exitTrouble
		}
		if final(p.Status) {
			f.out.Flush()
			summary(c.stdout, p)
			if p.Status == "success" {
				return exitOK
			}
			return exitFailed
		}
		f.bar(p)
		f.out.Flush()
		// Let changes gather: one watch answer then covers many, which
		// keeps a big pipeline's watching cheap for the server.
		select {
		case <-watchCtx.Done():
		case <-time.After(followPace):
		}
	}
}

// followPace is the least time between two watch calls.
const followPace = 5 * time.Millisecond

func final(status string) bool {
	switch status {
	case "success", "failed", "canceled", "skipped":
		return true
	}
	return false
}

// fetchLogs reads every log byte the pipeline's attempts hold beyond what
// was printed, and returns it by attempt: the small amounts of many
// attempts in one call, a big one raw (no base64) on its own.
func (c *cli) fetchLogs(ctx context.Context, f *follower, p api.Pipeline) (map[int64][]byte, error) {
	got := map[int64][]byte{}
	for {
		var req api.LogsRequest
		for _, j := range p.Jobs {
			for _, a := range j.Attempts {
				cur := f.cursor(a.ID)
				switch behind := a.LogSize - cur.offset; {
				case behind > bigLog:
					if err := c.fetchRaw(ctx, f, j, a, got); err != nil {
						return got, err
					}
				case behind > 0:
					req.From = append(req.From, api.LogCursor{AttemptID: a.ID, Offset: cur.offset})
				}
			}
		}
		if len(req.From) == 0 {
			return got, nil
		}
		var resp api.LogsResponse
		if err := c.call(ctx, http.MethodPost, fmt.Sprintf("/pipelines/%d/logs", p.ID), req, &resp); err != nil {
			return got, err
		}
		if len(resp.Pieces) == 0 {
			return got, nil
		}
		for _, piece := range resp.Pieces {
			cur := f.cursor(piece.AttemptID)
			if piece.Offset != cur.offset {
				continue // not what was asked: ask again
			}
			got[piece.AttemptID] = append(got[piece.AttemptID], piece.Data...)
			cur.offset += int64(len(piece.Data))
		}
	}
}

// bigLog is how far behind an attempt's log must be to be read on its own.
const bigLog = 64 << 10

// fetchRaw reads one attempt's log up to its size as the watch saw it.
func (c *cli) fetchRaw(ctx context.Context, f *follower, j api.Job, a api.Attempt, got map[int64][]byte) error {
	cur := f.cursor(a.ID)
	var buf bytes.Buffer
	for cur.offset < a.LogSize {
		path := fmt.Sprintf("/jobs/%d/attempts/%d/log?offset=%d", j.ID, a.Number, cur.offset)
		if err := c.call(ctx, http.MethodGet, path, nil, &buf); err != nil {
			return err
		}
		if buf.Len() == 0 {
			return nil
		}
		got[a.ID] = append(got[a.ID], buf.Bytes()...)
		cur.offset += int64(buf.Len())
	}
	return nil
}

// cursor returns the attempt's cursor, making it on first use.
func (f *follower) cursor(attemptID int64) *attemptCursor {
	cur := f.cursors[attemptID]
	if cur == nil {
		cur = &attemptCursor{}
		f.cursors[attemptID] = cur
	}
	return cur
}

// printLogs prints the job's new log bytes, line by line.
func (f *follower) printLogs(j api.Job, fresh map[int64][]byte) {
	for _, a := range j.Attempts {
		cur := f.cursor(a.ID)
		if b := fresh[a.ID]; len(b) > 0 {
			f.lines(j.Name, cur, b)
		}
		if a.Status != "running" && len(cur.partial) > 0 && cur.offset >= a.LogSize {
			f.line(j.Name, cur.partial)
			cur.partial = nil
		}
	}
}

// lines prints the complete lines of b, keeping an unfinished last line.
func (f *follower) lines(job string, cur *attemptCursor, b []byte) {
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			cur.partial = append(cur.partial, b...)
			return
		}
		line := b[:i]
		if len(cur.partial) > 0 {
			line = append(cur.partial, line...)
			cur.partial = nil
		}
		f.line(job, line)
		b = b[i+1:]
	}
}

func (f *follower) line(job string, line []byte) {
	line = bytes.TrimSuffix(line, []byte("\r"))
	if f.tty {
		fmt.Fprintf(f.out, "\x1b[36m%-*s\x1b[0m │ %s\x1b[0m\n", f.width, job, line)
		return
	}
	fmt.Fprintf(f.out, "%-*s | %s\n", f.width, job, stripANSI(line))
}

// statusLine reports a job's new status.
func (f *follower) statusLine(j api.Job) {
	if j.Status == "created" {
		return
	}
	detail := ""
	switch {
	case j.Reason != "" && j.Status != "success":
		detail = " (" + j.Reason + ")"
	case j.Status == "running" && len(j.Attempts) > 1:
		detail = fmt.Sprintf(" (attempt %d)", len(j.Attempts))
	}
	if j.Status == "success" || j.Status == "failed" || j.Status == "canceled" {
		detail += " in " + jobDuration(j)
	}
	if f.tty {
		fmt.Fprintf(f.out, "\x1b[1m%-*s\x1b[0m ● %s%s\n", f.width, j.Name, colorStatus(j.Status), detail)
		return
	}
	fmt.Fprintf(f.out, "%-*s = %s%s\n", f.width, j.Name, j.Status, detail)
}

// bar shows a one-line count of jobs by status on a terminal, erased
// before the next output.
func (f *follower) bar(p api.Pipeline) {
	if !f.tty {
		return
	}
	counts := map[string]int{}
	for _, j := range p.Jobs {
		counts[j.Status]++
	}
	var parts []string
	for _, s := range []string{"running", "pending", "created", "manual", "success", "failed", "canceled", "skipped"} {
		if counts[s] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[s], s))
		}
	}
	fmt.Fprintf(f.out, "\x1b[2mpipeline %d: %s\x1b[0m", p.ID, strings.Join(parts, " · "))
	f.shownBar = true
}

func (f *follower) clearBar() {
	if f.shownBar {
		fmt.Fprint(f.out, "\r\x1b[K")
		f.shownBar = false
	}
}

func colorStatus(s string) string {
	switch s {
	case "success":
		return "\x1b[32m" + s + "\x1b[0m"
	case "failed":
		return "\x1b[31m" + s + "\x1b[0m"
	case "running", "pending":
		return "\x1b[34m" + s + "\x1b[0m"
	}
	return "\x1b[33m" + s + "\x1b[0m"
}

func jobDuration(j api.Job) string {
	if j.StartedAt == nil || j.FinishedAt == nil {
		return "-"
	}
	return fmtDuration(j.FinishedAt.Sub(*j.StartedAt))
}

func fmtDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%.2fs", d.Seconds())
	}
	return d.Round(time.Second).String()
}

// summary prints a table of the pipeline's jobs.
func summary(w io.Writer, p api.Pipeline) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nJOB\tSTAGE\tSTATUS\tDURATION\tNOTE")
	for _, j := range p.Jobs {
		note := j.Reason
		if j.Status == "failed" && j.AllowFailure {
			note = strings.TrimSpace("allowed to fail; " + note)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", j.Name, j.Stage, j.Status, jobDuration(j), note)
	}
	tw.Flush()
	took := "-"
	if p.StartedAt != nil && p.FinishedAt != nil {
		took = fmtDuration(p.FinishedAt.Sub(*p.StartedAt))
	}
	fmt.Fprintf(w, "\npipeline %d %s in %s\n", p.ID, p.Status, took)
}

// stripANSI removes colour and cursor escape sequences, for output that is
// not a terminal.
func stripANSI(b []byte) []byte {
	if bytes.IndexByte(b, 0x1b) < 0 {
		return b
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] == 0x1b && i+1 < len(b) && b[i+1] == '[' {
			j := i + 2
			for j < len(b) && (b[j] < 0x40 || b[j] > 0x7e) {
				j++
			}
			i = j
			continue
		}
		out = append(out, b[i])
	}
	return out
}
