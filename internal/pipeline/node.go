package pipeline

import (
	"errors"
	"fmt"
	"io"
	"strings"

	yaml "go.yaml.in/yaml/v4"
)

// nodeKind says what a node holds.
type nodeKind int

const (
	scalarNode nodeKind = iota
	mapNode
	seqNode
)

// Tags the reader cares about. Scalars keep the YAML core schema tag the
// parser resolved, so "42" and 42 stay distinguishable.
const (
	tagNull      = "!!null"
	tagStr       = "!!str"
	tagInt       = "!!int"
	tagBool      = "!!bool"
	tagFloat     = "!!float"
	tagReference = "!reference"
)

// maxNodes bounds the size of a document after aliases are expanded, so an
// alias bomb ("billion laughs") is an error rather than an out-of-memory.
const maxNodes = 2_000_000

// node is a YAML value with the file position of where it was written.
// Aliases and merge keys are already expanded; the tree is never mutated after
// it is built (merging builds new maps), so subtrees may be shared.
type node struct {
	kind   nodeKind
	tag    string // resolved tag of a scalar, or "!reference" on a sequence
	value  string // scalar text
	quoted bool   // the scalar was written in quotes
	pos    Position
	keys   []*node // mapping keys (scalars), in order
	vals   []*node // mapping values, parallel to keys
	items  []*node // sequence items
}

func (n *node) isNull() bool { return n == nil || (n.kind == scalarNode && n.tag == tagNull) }

// get returns the value of key in a mapping, or nil.
func (n *node) get(key string) *node {
	if n == nil || n.kind != mapNode {
		return nil
	}
	for i, k := range n.keys {
		if k.value == key {
			return n.vals[i]
		}
	}
	return nil
}

// keyPos returns the position of key in a mapping, or the mapping's own.
func (n *node) keyPos(key string) Position {
	for i, k := range n.keys {
		if k.value == key {
			return n.keys[i].pos
		}
	}
	return n.pos
}

// describe names the kind of a node for error messages.
func (n *node) describe() string {
	switch {
	case n.isNull():
		return "null"
	case n.kind == mapNode:
		return "a mapping"
	case n.kind == seqNode:
		return "a list"
	case n.tag == tagInt || n.tag == tagFloat:
		return "a number"
	case n.tag == tagBool:
		return "a boolean"
	}
	return "a string"
}

// with returns a copy of mapping n in which key is set to v (appended when new).
func (n *node) with(key *node, v *node) *node {
	out := &node{kind: mapNode, pos: n.pos, keys: make([]*node, 0, len(n.keys)+1), vals: make([]*node, 0, len(n.keys)+1)}
	replaced := false
	for i, k := range n.keys {
		if k.value == key.value {
			out.keys, out.vals = append(out.keys, k), append(out.vals, v)
			replaced = true
			continue
		}
		out.keys, out.vals = append(out.keys, k), append(out.vals, n.vals[i])
	}
	if !replaced {
		out.keys, out.vals = append(out.keys, key), append(out.vals, v)
	}
	return out
}

// without returns a copy of mapping n without key.
func (n *node) without(key string) *node {
	out := &node{kind: mapNode, pos: n.pos}
	for i, k := range n.keys {
		if k.value != key {
			out.keys, out.vals = append(out.keys, k), append(out.vals, n.vals[i])
		}
	}
	return out
}

// deepMerge returns base with over merged on top: mappings merge key by key,
// recursively; any other value in over replaces the one in base. This is
// GitLab's merge for extends and includes.
func deepMerge(base, over *node) *node {
	if base == nil || base.kind != mapNode || over == nil || over.kind != mapNode {
		return over
	}
	out := base
	for i, k := range over.keys {
		v := over.vals[i]
		if b := out.get(k.value); b != nil {
			v = deepMerge(b, v)
		}
		out = out.with(k, v)
	}
	out.pos = over.pos
	return out
}

// parseYAML reads the documents of one file into nodes. It reports syntax
// errors, alias bombs and duplicate keys (a warning: the last one wins, as in
// GitLab) through d, and returns the documents it could read.
func parseYAML(file string, src []byte, d *diags) []*node {
	dec := yaml.NewDecoder(strings.NewReader(string(src)))
	var docs []*node
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			d.errors = append(d.errors, yamlError(file, err))
			return docs
		}
		c := converter{file: file, d: d, budget: maxNodes}
		n, err := c.convert(&doc)
		if err != nil {
			d.errorf(Position{File: file, Line: doc.Line, Column: doc.Column}, "%v", err)
			return docs
		}
		docs = append(docs, n)
	}
}

// yamlError turns a YAML syntax error into a positioned diagnostic.
func yamlError(file string, err error) Diagnostic {
	var le *yaml.LoadError
	if errors.As(err, &le) && le.Mark.Line > 0 {
		msg := le.Message
		if le.ContextMsg != "" && le.ContextMark.Line > 0 {
			msg += fmt.Sprintf(" (%s started at line %d, column %d)", le.ContextMsg, le.ContextMark.Line, le.ContextMark.Column)
		}
		return Diagnostic{Position: Position{File: file, Line: le.Mark.Line, Column: max(le.Mark.Column, 1)}, Message: "invalid YAML: " + msg}
	}
	return Diagnostic{Position: Position{File: file, Line: 1, Column: 1}, Message: "invalid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}
}

// converter turns yaml.v3 nodes into nodes, expanding aliases and merge keys.
type converter struct {
	file   string
	d      *diags
	budget int
	active map[*yaml.Node]bool // anchors being expanded, to catch self-reference
}

var errTooLarge = errors.New("document is too large once its aliases are expanded (more than 2,000,000 values)")

func (c *converter) pos(y *yaml.Node) Position {
	return Position{File: c.file, Line: y.Line, Column: y.Column}
}

func (c *converter) convert(y *yaml.Node) (*node, error) {
	c.budget--
	if c.budget < 0 {
		return nil, errTooLarge
	}
	switch y.Kind {
	case yaml.DocumentNode:
		if len(y.Content) == 0 {
			return &node{kind: scalarNode, tag: tagNull, pos: c.pos(y)}, nil
		}
		return c.convert(y.Content[0])
	case yaml.AliasNode:
		if c.active == nil {
			c.active = map[*yaml.Node]bool{}
		}
		if c.active[y.Alias] {
			return nil, fmt.Errorf("alias *%s refers to itself", y.Value)
		}
		c.active[y.Alias] = true
		defer delete(c.active, y.Alias)
		return c.convert(y.Alias)
	case yaml.ScalarNode:
		tag := y.ShortTag()
		if y.Tag == tagReference {
			c.d.errorf(c.pos(y), "!reference needs a list such as [.job, script], found a scalar")
		}
		quoted := y.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0
		return &node{kind: scalarNode, tag: tag, value: y.Value, quoted: quoted, pos: c.pos(y)}, nil
	case yaml.SequenceNode:
		n := &node{kind: seqNode, pos: c.pos(y)}
		if y.Tag == tagReference {
			n.tag = tagReference
		} else if y.Tag != "" && y.Tag != "!!seq" && y.Tag[0] == '!' && !strings.HasPrefix(y.Tag, "!!") {
			c.d.errorf(c.pos(y), "unknown YAML tag %s (only !reference is supported)", y.Tag)
		}
		for _, item := range y.Content {
			v, err := c.convert(item)
			if err != nil {
				return nil, err
			}
			n.items = append(n.items, v)
		}
		return n, nil
	case yaml.MappingNode:
		return c.mapping(y)
	}
	return nil, fmt.Errorf("unexpected YAML node kind %d", y.Kind)
}

// mapping converts a mapping. Keys written in the mapping win over keys
// brought in by merge keys (<<), and earlier merge sources win over later
// ones, as the YAML merge-key spec says; merged keys take their place where
// the << stands, as in GitLab's YAML reader. A key written twice is a
// warning and the last one wins.
func (c *converter) mapping(y *yaml.Node) (*node, error) {
	n := &node{kind: mapNode, pos: c.pos(y)}
	explicit := map[string]bool{}
	for i := 0; i+1 < len(y.Content); i += 2 {
		if ky := y.Content[i]; ky.Kind == yaml.ScalarNode && ky.ShortTag() != "!!merge" {
			explicit[ky.Value] = true
		}
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(y.Content); i += 2 {
		ky, vy := y.Content[i], y.Content[i+1]
		if ky.Kind == yaml.ScalarNode && ky.ShortTag() == "!!merge" {
			src, err := c.convert(vy)
			if err != nil {
				return nil, err
			}
			for _, m := range c.mergeSources(src) {
				for j, k := range m.keys {
					if !explicit[k.value] && !seen[k.value] {
						seen[k.value] = true
						n.keys, n.vals = append(n.keys, k), append(n.vals, m.vals[j])
					}
				}
			}
			continue
		}
		if ky.Kind != yaml.ScalarNode {
			c.d.errorf(c.pos(ky), "mapping keys must be plain strings")
			continue
		}
		k := &node{kind: scalarNode, tag: tagStr, value: ky.Value, pos: c.pos(ky)}
		v, err := c.convert(vy)
		if err != nil {
			return nil, err
		}
		if seen[k.value] {
			c.d.warnf(k.pos, "duplicate key %q: the last one wins", k.value)
			for j, old := range n.keys {
				if old.value == k.value {
					n.vals[j] = v
					break
				}
			}
			continue
		}
		seen[k.value] = true
		n.keys, n.vals = append(n.keys, k), append(n.vals, v)
	}
	return n, nil
}

// mergeSources returns the mappings a merge key's value names.
func (c *converter) mergeSources(src *node) []*node {
	switch src.kind {
	case mapNode:
		return []*node{src}
	case seqNode:
		var out []*node
		for _, s := range src.items {
			if s.kind != mapNode {
				c.d.errorf(s.pos, "merge key << needs mappings, found %s", s.describe())
				continue
			}
			out = append(out, s)
		}
		return out
	}
	c.d.errorf(src.pos, "merge key << needs a mapping or a list of mappings, found %s", src.describe())
	return nil
}
