// Package stepjson decodes the steps of many attempts at once, as the
// stores' Jobs.ListFinished reads them: the JSON text the stores keep
// (encoding/json's, of a []store.StepTiming), read without encoding/json
// when it has the form encoding/json writes, and with it otherwise, to the
// same result.
package stepjson

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"

	"github.com/hangar-ci/hangar/internal/store"
)

// slabSize is how many steps Decoder allocates at a time.
const slabSize = 1024

// maxNames bounds the step names a Decoder keeps for reuse.
const maxNames = 256

// Decoder decodes the steps of many attempts into a few allocations: the
// steps are cut from blocks, each list capped at its length so that
// appending to one cannot write over another's, and the step names, which
// are few, are shared. Its zero value is ready to use; it is not safe for
// concurrent use.
type Decoder struct {
	slab  []store.StepTiming // what remains of the current block
	buf   []store.StepTiming // the list being decoded
	names map[string]string
}

// Decode decodes text, encoding/json's encoding of a []store.StepTiming,
// as json.Unmarshal would, except that no steps (null or an empty list)
// are nil. Text in the form json.Marshal writes is decoded here, anything
// else by encoding/json.
func (d *Decoder) Decode(text []byte) ([]store.StepTiming, error) {
	if !d.parse(text) {
		var steps []store.StepTiming
		if err := json.Unmarshal(text, &steps); err != nil {
			return nil, err
		}
		if len(steps) == 0 {
			return nil, nil
		}
		return steps, nil
	}
	n := len(d.buf)
	if n == 0 {
		return nil, nil
	}
	if len(d.slab) < n {
		d.slab = make([]store.StepTiming, max(slabSize, n))
	}
	steps := d.slab[:n:n]
	d.slab = d.slab[n:]
	copy(steps, d.buf)
	clear(d.buf) // let go of the names
	return steps, nil
}

// parse decodes text into d.buf when it has exactly the form json.Marshal
// gives a []store.StepTiming: null, or [{"name":"…","seconds":…},…] with
// no space, names without escapes, in valid UTF-8, and numbers that are
// finite float64s. It reports whether it did; when it did not, text may
// still be valid JSON that encoding/json decodes.
func (d *Decoder) parse(text []byte) bool {
	d.buf = d.buf[:0]
	p := text
	if string(p) == "null" {
		return true
	}
	if len(p) < 2 || p[0] != '[' {
		return false
	}
	p = p[1:]
	if string(p) == "]" {
		return true
	}
	for {
		var ok bool
		var st store.StepTiming
		if p, ok = cut(p, `{"name":"`); !ok {
			return false
		}
		if st.Name, p, ok = d.name(p); !ok {
			return false
		}
		if p, ok = cut(p, `,"seconds":`); !ok {
			return false
		}
		if st.Seconds, p, ok = number(p); !ok {
			return false
		}
		if p, ok = cut(p, `}`); !ok {
			return false
		}
		d.buf = append(d.buf, st)
		if len(p) == 1 && p[0] == ']' {
			return true
		}
		if p, ok = cut(p, `,`); !ok {
			return false
		}
	}
}

// cut returns p without prefix, and whether p began with it.
func cut(p []byte, prefix string) ([]byte, bool) {
	if len(p) < len(prefix) || string(p[:len(prefix)]) != prefix {
		return p, false
	}
	return p[len(prefix):], true
}

// name reads a string's contents up to its closing quote, which it
// consumes: only when they hold no escape or control character and are
// valid UTF-8, so that they are the string as they stand.
func (d *Decoder) name(p []byte) (string, []byte, bool) {
	for i, c := range p {
		switch {
		case c == '"':
			b := p[:i]
			if !utf8.Valid(b) {
				return "", p, false
			}
			return d.intern(b), p[i+1:], true
		case c == '\\' || c < 0x20:
			return "", p, false
		}
	}
	return "", p, false
}

// intern returns b as a string, the same string for the same bytes while
// it keeps fewer than maxNames.
func (d *Decoder) intern(b []byte) string {
	if s, ok := d.names[string(b)]; ok {
		return s
	}
	s := string(b)
	if d.names == nil {
		d.names = make(map[string]string)
	}
	if len(d.names) < maxNames {
		d.names[s] = s
	}
	return s
}

// number reads a JSON number, -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?,
// that is a finite float64.
func number(p []byte) (float64, []byte, bool) {
	i := 0
	digits := func() int {
		n := 0
		for i < len(p) && '0' <= p[i] && p[i] <= '9' {
			i, n = i+1, n+1
		}
		return n
	}
	if i < len(p) && p[i] == '-' {
		i++
	}
	start := i
	if n := digits(); n == 0 || (n > 1 && p[start] == '0') {
		return 0, p, false
	}
	if i < len(p) && p[i] == '.' {
		i++
		if digits() == 0 {
			return 0, p, false
		}
	}
	if i < len(p) && (p[i] == 'e' || p[i] == 'E') {
		i++
		if i < len(p) && (p[i] == '+' || p[i] == '-') {
			i++
		}
		if digits() == 0 {
			return 0, p, false
		}
	}
	f, err := strconv.ParseFloat(string(p[:i]), 64)
	if err != nil { // out of range: encoding/json says how
		return 0, p, false
	}
	return f, p[i:], true
}
