package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/hangar-ci/hangar/internal/api"
)

// maxAppend is the most one log append carries.
const maxAppend = 512 << 10

// errAbandoned: the server fenced the attempt off (409); its work is no
// longer wanted.
var errAbandoned = errors.New("attempt abandoned: the server no longer accepts it")

// logStreamer uploads an attempt's log as it is written. Writes never block
// on the network: bytes wait in memory until the server acknowledges them,
// for as long as the server is unreachable, and are sent at explicit
// offsets so a retried append is harmless.
type logStreamer struct {
	client  *api.Client
	path    string // /attempts/{id}/log
	token   string
	backoff api.Backoff

	mu      sync.Mutex
	pending []byte // written, not yet acknowledged
	acked   int64  // bytes the server holds
	closed  bool
	err     error         // set when the server fenced the attempt off
	wake    chan struct{} // signalled on write and close
	done    chan struct{} // closed when the uploader stops
	closing chan struct{} // closed by Close
}

func newLogStreamer(c *api.Client, attemptID int64, token string, b api.Backoff) *logStreamer {
	return &logStreamer{
		client: c, path: fmt.Sprintf("/attempts/%d/log", attemptID), token: token, backoff: b,
		wake: make(chan struct{}, 1), done: make(chan struct{}), closing: make(chan struct{}),
	}
}

// gatherDelay is how long output waits to be sent once the first bytes
// arrive: short enough to look live, long enough to batch.
const gatherDelay = 20 * time.Millisecond

// Write queues p for upload.
func (l *logStreamer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, errors.New("write to closed log")
	}
	if l.err != nil {
		// The uploader gave up: nothing will send these bytes, and they
		// would no longer follow the log's end on the server.
		return len(p), nil
	}
	l.pending = append(l.pending, p...)
	select {
	case l.wake <- struct{}{}:
	default:
	}
	return len(p), nil
}

// run uploads until the log is closed and everything is acknowledged, or
// ctx ends, or the attempt is fenced off.
func (l *logStreamer) run(ctx context.Context) {
	defer close(l.done)
	for {
		l.mu.Lock()
		chunk := l.pending[:min(len(l.pending), maxAppend)]
		offset, closed := l.acked, l.closed
		l.mu.Unlock()
		if closed && len(chunk) <= maxTail {
			return // what is left goes with the completion
		}
		if len(chunk) == 0 {
			select {
			case <-l.wake:
				// Let output gather a moment: fewer, larger appends, and a
				// job that ends meanwhile sends its whole log with its
				// completion.
				select {
				case <-time.After(gatherDelay):
				case <-l.closing:
				case <-ctx.Done():
				}
				continue
			case <-ctx.Done():
				return
			}
		}
		var resp api.AppendResponse
		err := api.Retry(ctx, l.backoff, func() error {
			_, err := l.client.Do(ctx, http.MethodPut, fmt.Sprintf("%s?offset=%d", l.path, offset), l.token, chunk, &resp)
			return err
		})
		var se *api.StatusError
		switch {
		case err == nil:
		case errors.As(err, &se) && se.Code == http.StatusRequestedRangeNotSatisfiable:
			// We only send from what the server acknowledged, so a gap
			// means it lost acknowledged bytes: nothing to resend them from.
			l.fail(fmt.Errorf("append log at %d: the server reports a gap (%s)", offset, se.Body.Error))
			return
		case isConflict(err):
			l.fail(errAbandoned)
			return
		default:
			if ctx.Err() == nil {
				l.fail(fmt.Errorf("append log: %w", err))
			}
			return
		}
		l.mu.Lock()
		if n := resp.Size - l.acked; n > 0 {
			l.pending = l.pending[min(int(n), len(l.pending)):]
			l.acked = resp.Size
		}
		if len(l.pending) == 0 {
			l.pending = nil // let a big buffer go
		}
		l.mu.Unlock()
		l.backoff.Reset()
	}
}

func (l *logStreamer) fail(err error) {
	l.mu.Lock()
	l.err = err
	l.pending = nil
	l.mu.Unlock()
}

// maxTail is the most log a completion carries (api.CompleteRequest.Log):
// a short job's whole log goes with it, in one call and one transaction.
const maxTail = 256 << 10

// Close stops accepting writes and waits until everything written is
// acknowledged but for a tail of at most maxTail bytes (or ctx ends),
// which Tail returns for the completion to carry. It returns errAbandoned
// when the server fenced the attempt off.
func (l *logStreamer) Close(ctx context.Context) error {
	l.mu.Lock()
	if !l.closed {
		l.closed = true
		close(l.closing)
	}
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
	select {
	case <-l.done:
	case <-ctx.Done():
		return fmt.Errorf("flush log: %w", ctx.Err())
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return l.err
	}
	if len(l.pending) > maxTail {
		return fmt.Errorf("flush log: %d bytes not acknowledged", len(l.pending))
	}
	return nil
}

// Tail returns, after Close, the bytes not yet sent and their offset;
// none when the upload failed.
func (l *logStreamer) Tail() (offset int64, data []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return l.acked, nil
	}
	return l.acked, l.pending
}

// Size is how many bytes were written so far.
func (l *logStreamer) Size() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.acked + int64(len(l.pending))
}

// StatusConflict reports whether err is the server's 409: the attempt was
// fenced off.
func isConflict(err error) bool { return api.StatusCode(err) == http.StatusConflict }
