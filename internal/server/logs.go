package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hangar-ci/hangar/internal/api"
	"github.com/hangar-ci/hangar/internal/store"
)

// logPage is how much of a log one read takes.
const logPage = 256 << 10

// jobAttempts reads a job and its attempts.
func (s *Server) jobAttempts(ctx context.Context, id int64) (*store.Job, []*store.Attempt, error) {
	var (
		j        *store.Job
		attempts []*store.Attempt
	)
	err := s.store.Read(ctx, func(tx store.Tx) error {
		var err error
		if j, err = tx.Jobs().Get(ctx, id); err != nil {
			return err
		}
		attempts, err = tx.Jobs().ListAttempts(ctx, id)
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("read job %d: %w", id, err)
	}
	return j, attempts, nil
}

func (s *Server) readLog(ctx context.Context, attemptID, offset int64, limit int) ([]byte, error) {
	var b []byte
	err := s.store.Read(ctx, func(tx store.Tx) error {
		var err error
		b, err = tx.Logs().Read(ctx, attemptID, offset, limit)
		return err
	})
	return b, err
}

func (s *Server) logSize(ctx context.Context, attemptID int64) (int64, error) {
	var n int64
	err := s.store.Read(ctx, func(tx store.Tx) error {
		var err error
		n, err = tx.Logs().Size(ctx, attemptID)
		return err
	})
	return n, err
}

// jobLog serves the whole log of a job: its attempts one after the other.
func (s *Server) jobLog(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	_, attempts, err := s.jobAttempts(r.Context(), id)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	for _, a := range attempts {
		for off := int64(0); ; {
			b, err := s.readLog(r.Context(), a.ID, off, logPage)
			if err != nil {
				return err
			}
			if len(b) == 0 {
				break
			}
			if _, err := w.Write(b); err != nil {
				return nil // the client went away
			}
			off += int64(len(b))
		}
	}
	return nil
}

// attemptLog serves bytes of one attempt's log from ?offset= (up to
// ?limit=, default and most 1 MiB); X-Log-Size holds the log's length and
// X-Attempt-Status the attempt's status.
func (s *Server) attemptLog(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(r.PathValue("n"))
	if err != nil {
		return &httpError{http.StatusNotFound, fmt.Sprintf("attempt %q is not a number", r.PathValue("n"))}
	}
	q := r.URL.Query()
	offset, limit := int64(0), 1<<20
	if v := q.Get("offset"); v != "" {
		if offset, err = strconv.ParseInt(v, 10, 64); err != nil || offset < 0 {
			return badRequest("offset=%q is not a byte offset", v)
		}
	}
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 {
			return badRequest("limit=%q is not a positive number", v)
		}
		limit = min(limit, 1<<20)
	}
	_, attempts, err := s.jobAttempts(r.Context(), id)
	if err != nil {
		return err
	}
	if n < 1 || n > len(attempts) {
		return &httpError{http.StatusNotFound, fmt.Sprintf("job %d has no attempt %d", id, n)}
	}
	a := attempts[n-1]
	size, err := s.logSize(r.Context(), a.ID)
	if err != nil {
		return err
	}
	b, err := s.readLog(r.Context(), a.ID, offset, limit)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("X-Log-Size", strconv.FormatInt(size, 10))
	w.Header().Set("X-Attempt-Status", string(a.Status))
	w.Write(b)
	return nil
}

// pipelineLogs serves the log bytes of several of a pipeline's attempts at
// once, from the offsets asked: one call for what a whole pipeline wrote
// since the caller last looked.
func (s *Server) pipelineLogs(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	var req api.LogsRequest
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	out := api.LogsResponse{Pieces: []api.LogPiece{}}
	err = s.store.Read(r.Context(), func(tx store.Tx) error {
		if _, err := tx.Pipelines().Get(r.Context(), id); err != nil {
			return err
		}
		attempts, err := tx.Jobs().ListAttemptsOfPipeline(r.Context(), id)
		if err != nil {
			return err
		}
		mine := make(map[int64]bool, len(attempts))
		for _, a := range attempts {
			mine[a.ID] = true
		}
		budget := api.MaxLogsResponse
		for _, c := range req.From {
			if !mine[c.AttemptID] {
				return badRequest("attempt %d is not one of pipeline %d's", c.AttemptID, id)
			}
			if c.Offset < 0 {
				return badRequest("offset %d of attempt %d is negative", c.Offset, c.AttemptID)
			}
			if budget == 0 {
				break
			}
			b, err := tx.Logs().Read(r.Context(), c.AttemptID, c.Offset, budget)
			if err != nil {
				return err
			}
			if len(b) > 0 {
				budget -= len(b)
				out.Pieces = append(out.Pieces, api.LogPiece{AttemptID: c.AttemptID, Offset: c.Offset, Data: b})
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// logCursor is where a log stream stands: attempt number and byte offset.
type logCursor struct {
	attempt int
	offset  int64
}

func parseCursor(s string) (logCursor, bool) {
	a, o, ok := strings.Cut(s, ":")
	if !ok {
		return logCursor{}, false
	}
	an, err1 := strconv.Atoi(a)
	on, err2 := strconv.ParseInt(o, 10, 64)
	if err1 != nil || err2 != nil || an < 1 || on < 0 {
		return logCursor{}, false
	}
	return logCursor{an, on}, true
}

// streamLog follows a job's log as Server-Sent Events: "log" events carry
// api.LogEvent with the id ATTEMPT:OFFSET after it, so a client that
// reconnects with Last-Event-ID (or ?from=) resumes without loss or
// repetition; "end" comes when the job has finished and everything was
// sent.
func (s *Server) streamLog(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	cur := logCursor{1, 0}
	for _, v := range []string{r.Header.Get("Last-Event-ID"), r.URL.Query().Get("from")} {
		if c, ok := parseCursor(v); ok {
			cur = c
		}
	}
	j, _, err := s.jobAttempts(r.Context(), id)
	if err != nil {
		return err
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	release := func() {}
	defer func() { release() }()
	for {
		release() // the previous round's wait
		var changed <-chan struct{}
		changed, release = s.sched.Changes(j.PipelineID)
		job, attempts, err := s.jobAttempts(r.Context(), id)
		if err != nil {
			return nil // the stream has started; end it
		}
		for cur.attempt <= len(attempts) {
			a := attempts[cur.attempt-1]
			b, err := s.readLog(r.Context(), a.ID, cur.offset, logPage)
			if err != nil {
				return nil
			}
			// A piece never ends inside a character, not even at a page
			// boundary of a finished log; only a log that itself ends with
			// a cut character sends those last bytes as they are.
			attemptDone := a.Status != store.AttemptRunning
			if n := completeUTF8(b); n > 0 || !attemptDone {
				b = b[:n]
			}
			if len(b) > 0 {
				ev := api.LogEvent{Attempt: cur.attempt, Offset: cur.offset, Text: string(b)}
				cur.offset += int64(len(b))
				if err := writeEvent(w, "log", fmt.Sprintf("%d:%d", cur.attempt, cur.offset), ev); err != nil {
					return nil
				}
				continue
			}
			if !attemptDone || cur.attempt == len(attempts) {
				break
			}
			cur = logCursor{cur.attempt + 1, 0}
		}
		if job.Status.Final() || job.Status == store.JobManual {
			// Agents complete an attempt only after its log is stored, so
			// the loop above has sent every byte.
			writeEvent(w, "end", "", map[string]string{"status": string(job.Status)})
			rc.Flush()
			return nil
		}
		if err := rc.Flush(); err != nil {
			return nil
		}
		select {
		case <-changed:
		case <-keepalive.C:
			if _, err := fmt.Fprint(w, ": keepalive\n\n"); err != nil {
				return nil
			}
		case <-r.Context().Done():
			return nil
		}
	}
}

func writeEvent(w http.ResponseWriter, event, id string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if id != "" {
		_, err = fmt.Fprintf(w, "event: %s\nid: %s\ndata: %s\n\n", event, id, data)
	} else {
		_, err = fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, data)
	}
	return err
}

// completeUTF8 returns the length of b without a UTF-8 sequence cut at its
// end, so a chunk boundary never splits a character.
func completeUTF8(b []byte) int {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				return i
			}
			break
		}
	}
	return len(b)
}
