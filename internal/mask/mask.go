// Package mask hides secrets in a stream of bytes, such as a job's log,
// before they are stored or shown.
//
// Every byte that belongs to an occurrence of a secret is hidden: an
// occurrence becomes Replacement, and occurrences that overlap (the same
// secret repeated into itself, or two secrets sharing bytes, a longer one
// containing a shorter one) become a single Replacement, so the longest
// possible match always wins and no part of any secret shows. Occurrences
// that merely touch are replaced one by one.
//
// Secrets shorter than MinSecretLen bytes are not masked: masking "a" or
// "42" would make a log unreadable and such a value hides nothing anyway.
// Whoever accepts masked variables should demand more (GitLab demands 8
// characters). Secrets are matched as bytes: a secret that the job prints
// transformed (base64, URL-encoded, split across lines) is not recognised.
package mask

import (
	"bytes"
	"io"
	"slices"
	"strings"
)

// Replacement is what each masked occurrence of a secret becomes.
const Replacement = "[MASKED]"

// MinSecretLen is the length in bytes below which a secret is not masked.
const MinSecretLen = 4

// Writer masks secrets in what is written through it before passing it on.
// To catch a secret split across Write calls it holds back, at most, the
// last len(longest secret)-1 bytes written, and only while they could be the
// start of a secret; Flush writes them out at the end of the stream.
//
// A Writer is not safe for concurrent use. Once the underlying writer fails,
// every later call returns that error.
type Writer struct {
	w       io.Writer
	secrets [][]byte  // longest first
	first   [256]bool // bytes a secret begins with
	pending []byte    // bytes held back, not yet decided
	covered int       // bytes from the start of pending inside the current Replacement
	out     []byte    // output of the current call, reused
	err     error     // sticky error from w
}

// NewWriter returns a Writer that writes to w what is written to it, with
// every occurrence of each of secrets replaced by Replacement. Secrets
// shorter than MinSecretLen and duplicates are ignored; with no secret left,
// writes go straight through.
func NewWriter(w io.Writer, secrets []string) *Writer {
	m := &Writer{w: w}
	for _, s := range secrets {
		if len(s) >= MinSecretLen && !slices.ContainsFunc(m.secrets, func(b []byte) bool { return string(b) == s }) {
			m.secrets = append(m.secrets, []byte(s))
			m.first[s[0]] = true
		}
	}
	slices.SortStableFunc(m.secrets, func(a, b []byte) int { return len(b) - len(a) })
	return m
}

// String returns s with secrets masked as a Writer would mask them.
func String(s string, secrets []string) string {
	var b strings.Builder
	m := NewWriter(&b, secrets)
	_, _ = m.Write([]byte(s)) // a strings.Builder does not fail
	_ = m.Flush()
	return b.String()
}

// Write masks p and writes what can be decided of it to the underlying
// writer. It returns len(p) unless the underlying writer fails.
func (m *Writer) Write(p []byte) (int, error) {
	if m.err != nil {
		return 0, m.err
	}
	if len(m.secrets) == 0 {
		return m.w.Write(p)
	}
	buf := p
	if len(m.pending) > 0 {
		m.pending = append(m.pending, p...)
		buf = m.pending
	}
	n := m.scan(buf, false)
	m.pending = append(m.pending[:0], buf[n:]...)
	if err := m.emit(); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Flush writes out the bytes held back, the stream having ended: a partial
// secret at the end is no secret. Writing after Flush starts a new stream.
func (m *Writer) Flush() error {
	if m.err != nil {
		return m.err
	}
	if len(m.secrets) == 0 {
		return nil
	}
	m.scan(m.pending, true)
	m.pending = m.pending[:0]
	m.covered = 0
	return m.emit()
}

// emit writes the output gathered in m.out.
func (m *Writer) emit() error {
	if len(m.out) == 0 {
		return nil
	}
	n, err := m.w.Write(m.out)
	if err == nil && n < len(m.out) {
		err = io.ErrShortWrite
	}
	m.out = m.out[:0]
	m.err = err
	return err
}

// scan masks buf into m.out as far as it can be decided and returns how many
// bytes of buf it consumed; the rest could begin a secret and must wait for
// more bytes, unless eof says there are none.
func (m *Writer) scan(buf []byte, eof bool) int {
	i := 0
	for i < len(buf) {
		if m.covered == 0 {
			j := i
			for j < len(buf) && !m.first[buf[j]] {
				j++
			}
			m.out = append(m.out, buf[i:j]...)
			if i = j; i == len(buf) {
				break
			}
		}
		n, decided := m.matchAt(buf[i:], eof)
		if !decided {
			break
		}
		switch {
		case m.covered > 0:
			m.covered = max(m.covered, n)
		case n > 0:
			m.out = append(m.out, Replacement...)
			m.covered = n
		default:
			m.out = append(m.out, buf[i])
			i++
			continue
		}
		m.covered--
		i++
	}
	return i
}

// matchAt returns the length of the longest secret b begins with, 0 for
// none. decided is false if b is too short to tell: it is the beginning of a
// secret longer than the one found, and more bytes may follow.
func (m *Writer) matchAt(b []byte, eof bool) (n int, decided bool) {
	if !m.first[b[0]] {
		return 0, true
	}
	for _, s := range m.secrets {
		if len(b) >= len(s) {
			if bytes.HasPrefix(b, s) {
				return len(s), true
			}
		} else if !eof && bytes.HasPrefix(s, b) {
			return 0, false
		}
	}
	return 0, true
}
