package pipeline

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hangar-ci/hangar/internal/pipeline/duration"
	"github.com/hangar-ci/hangar/internal/suggest"
)

// checkKeys reports every key of mapping m that is not in allowed, with a
// "did you mean" when an allowed key is close.
func checkKeys(d *diags, m *node, where string, allowed []string) {
	for _, k := range m.keys {
		if !slices.Contains(allowed, k.value) {
			d.errorf(k.pos, "%s: unknown keyword %q%s", where, k.value, suggest.DidYouMean(k.value, allowed))
		}
	}
}

// decoder turns checked nodes into typed values. Every method reports what it
// cannot use through d and returns a zero value, so decoding goes on and all
// errors of a file are found in one pass.
type decoder struct {
	d *diags
}

func (x decoder) errorf(n *node, format string, args ...any) {
	x.d.errorf(n.pos, format, args...)
}

// mapping reports whether n is a mapping and its keys are all allowed.
func (x decoder) mapping(n *node, what string, allowed []string) bool {
	if n.kind != mapNode {
		x.errorf(n, "%s must be a mapping, found %s", what, n.describe())
		return false
	}
	checkKeys(x.d, n, what, allowed)
	return true
}

// str reads a scalar as text; numbers and booleans keep their spelling.
func (x decoder) str(n *node, what string) string {
	if n.isNull() {
		return ""
	}
	if n.kind != scalarNode {
		x.errorf(n, "%s must be a string, found %s", what, n.describe())
		return ""
	}
	return n.value
}

// strs reads a string or a list of strings.
func (x decoder) strs(n *node, what string) []string {
	if n.isNull() {
		return nil
	}
	if n.kind == scalarNode {
		return []string{n.value}
	}
	if n.kind != seqNode {
		x.errorf(n, "%s must be a string or a list of strings, found %s", what, n.describe())
		return nil
	}
	out := make([]string, 0, len(n.items))
	for _, it := range n.items {
		if it.kind != scalarNode || it.isNull() {
			x.errorf(it, "%s must be a list of strings, found %s in it", what, it.describe())
			continue
		}
		out = append(out, it.value)
	}
	return out
}

// script reads a script: a string, or a list of strings and nested lists
// (what !reference leaves), flattened.
func (x decoder) script(n *node, what string) []string {
	var out []string
	var walk func(n *node, depth int)
	walk = func(n *node, depth int) {
		switch {
		case n.isNull():
		case n.kind == scalarNode:
			out = append(out, n.value)
		case n.kind == seqNode && depth < 10:
			for _, it := range n.items {
				walk(it, depth+1)
			}
		default:
			x.errorf(n, "%s must be a string or a list of strings, found %s", what, n.describe())
		}
	}
	walk(n, 0)
	if out == nil && n.kind == seqNode {
		out = []string{}
	}
	return out
}

func (x decoder) boolean(n *node, what string) bool {
	if n.kind == scalarNode && n.tag == tagBool {
		return strings.EqualFold(n.value, "true")
	}
	x.errorf(n, "%s must be true or false, found %s", what, n.describe())
	return false
}

func (x decoder) boolPtr(n *node, what string) *bool {
	if n == nil {
		return nil
	}
	b := x.boolean(n, what)
	return &b
}

func (x decoder) integer(n *node, what string, lo, hi int) int {
	if n.kind == scalarNode && n.tag == tagInt {
		if v, err := strconv.Atoi(n.value); err == nil && v >= lo && v <= hi {
			return v
		}
	}
	x.errorf(n, "%s must be a whole number from %d to %d, found %s", what, lo, hi, quoteScalar(n))
	return lo
}

func (x decoder) integers(n *node, what string) []int {
	var items []*node
	switch n.kind {
	case scalarNode:
		items = []*node{n}
	case seqNode:
		items = n.items
	default:
		x.errorf(n, "%s must be a number or a list of numbers, found %s", what, n.describe())
	}
	var out []int
	for _, it := range items {
		out = append(out, x.integer(it, what, 0, 255))
	}
	return out
}

// duration reads a GitLab human duration ("1h 30m", "3 days").
func (x decoder) duration(n *node, what string) time.Duration {
	s := x.str(n, what)
	if s == "" {
		return 0
	}
	d, err := duration.Parse(s)
	if err != nil {
		x.errorf(n, "%s: %q is not a duration such as \"30 minutes\" or \"1h 30m\": %v", what, s, err)
	}
	return d
}

// oneOf reads a string that must be one of allowed.
func (x decoder) oneOf(n *node, what string, allowed ...string) string {
	s := x.str(n, what)
	if n.kind == scalarNode && !slices.Contains(allowed, s) {
		x.errorf(n, "%s must be one of %s, found %q%s", what, strings.Join(allowed, ", "), s, suggest.DidYouMean(s, allowed))
		return ""
	}
	return s
}

func quoteScalar(n *node) string {
	if n.kind == scalarNode && !n.isNull() {
		return strconv.Quote(n.value)
	}
	return n.describe()
}
