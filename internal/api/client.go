package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"
)

// StatusError is an error response of the server.
type StatusError struct {
	Method, Path string
	Code         int
	Body         Error
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%s %s: %d %s: %s", e.Method, e.Path, e.Code, http.StatusText(e.Code), e.Body.Error)
}

// StatusCode returns the HTTP status of err when it is a *StatusError, and
// 0 otherwise.
func StatusCode(err error) int {
	var se *StatusError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

// Retryable reports whether a call that failed with err may succeed when
// tried again: network errors, 5xx, 429 and 408, unless marked Permanent.
// This is the one place that decides it.
func Retryable(err error) bool {
	var perm permanentError
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.As(err, &perm) {
		return false
	}
	switch c := StatusCode(err); {
	case c == 0:
		return true // no answer: the network or a server restarting
	case c >= 500, c == http.StatusTooManyRequests, c == http.StatusRequestTimeout:
		return true
	}
	return false
}

// Permanent marks err as one that trying again cannot cure (a failure on
// this side of a call, such as a request body that cannot be produced), so
// that Retryable is false for it. It returns nil for nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

type permanentError struct{ err error }

func (p permanentError) Error() string { return p.err.Error() }
func (p permanentError) Unwrap() error { return p.err }

// Client calls the API of one server.
type Client struct {
	// BaseURL is the server's address (http://host:port).
	BaseURL string
	HTTP    *http.Client
}

// NewClient returns a client for the server at baseURL.
func NewClient(baseURL string) *Client {
	return &Client{BaseURL: strings.TrimSuffix(baseURL, "/"), HTTP: &http.Client{}}
}

// Do makes one call: path is below Prefix, token goes in the Authorization
// header, in (when not nil) is sent as JSON, or as is when it is an
// io.Reader, and a 2xx JSON answer is decoded into out (when not nil). It
// returns the status code; an error status gives a *StatusError.
func (c *Client) Do(ctx context.Context, method, path, token string, in, out any) (int, error) {
	var body io.Reader
	ctype := "application/json"
	switch v := in.(type) {
	case nil:
	case io.Reader:
		body, ctype = v, "application/octet-stream"
	case []byte:
		body, ctype = bytes.NewReader(v), "application/octet-stream"
	default:
		b, err := json.Marshal(in)
		if err != nil {
			return 0, fmt.Errorf("encode %s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+Prefix+path, body)
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", ctype)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return resp.StatusCode, statusError(method, path, resp)
	}
	if w, ok := out.(io.Writer); ok {
		if _, err := io.Copy(w, resp.Body); err != nil {
			return resp.StatusCode, fmt.Errorf("read %s %s: %w", method, path, err)
		}
		return resp.StatusCode, nil
	}
	if out != nil && resp.StatusCode != http.StatusNoContent {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return resp.StatusCode, fmt.Errorf("decode %s %s: %w", method, path, err)
		}
	}
	return resp.StatusCode, nil
}

// Backoff spaces out retries: exponential from Min to Max with full
// jitter, so many agents that lost the server together do not come back
// in step.
type Backoff struct {
	Min, Max time.Duration
	// Rand returns a float in [0,1); math/rand/v2's Float64 when nil.
	Rand    func() float64
	attempt int
}

// Next returns how long to wait before the next try.
func (b *Backoff) Next() time.Duration {
	lo, hi := b.Min, b.Max
	if lo <= 0 {
		lo = 100 * time.Millisecond
	}
	if hi <= 0 {
		hi = 10 * time.Second
	}
	d := lo << min(b.attempt, 30)
	if d > hi || d <= 0 {
		d = hi
	}
	b.attempt++
	r := rand.Float64
	if b.Rand != nil {
		r = b.Rand
	}
	return lo/2 + time.Duration(r()*float64(d))
}

// Reset starts over after a success.
func (b *Backoff) Reset() { b.attempt = 0 }

// Retry calls fn until it succeeds, fails with an error that is not
// Retryable, or ctx ends, waiting b between tries.
func Retry(ctx context.Context, b Backoff, fn func() error) error {
	for {
		err := fn()
		if err == nil || !Retryable(err) {
			return err
		}
		t := time.NewTimer(b.Next())
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
		case <-t.C:
		}
	}
}
