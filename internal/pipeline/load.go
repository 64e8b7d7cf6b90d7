package pipeline

import (
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strings"
	"testing/fstest"

	"github.com/bmatcuk/doublestar/v4"
	"github.com/hangar-ci/hangar/internal/suggest"
)

// Limits GitLab applies to a configuration, which Hangar keeps.
const (
	maxIncludes      = 150 // files a pipeline may include
	maxExtendsDepth  = 11  // levels of extends: (GitLab: 10 parents + the job)
	maxReferenceDeep = 10  // levels of nested !reference
)

// reservedKeys are the top-level keys that are not jobs.
var reservedKeys = []string{
	"stages", "types", "variables", "default", "include", "workflow", "spec",
	"image", "services", "cache", "before_script", "after_script",
}

// Load reads the pipeline file at name in fsys (the repository tree) with its
// local includes, resolves anchors, extends, !reference and default:, and
// checks every keyword. ctx is the pipeline the file is read for: include:
// rules are evaluated against it; with a nil ctx an include with rules is an
// error. On failure the error is an ErrorList with every problem found;
// warnings are in Config.Warnings.
func Load(fsys fs.FS, name string, ctx *Context) (*Config, error) {
	l := &loader{fsys: fsys, ctx: ctx, seen: map[string]bool{}}
	top := l.file(strings.TrimPrefix(path.Clean(name), "/"), Position{File: name}, nil)
	var cfg *Config
	if top != nil && len(l.d.errors) == 0 {
		top = l.resolve(top)
		cfg = decodeConfig(top, &l.d)
	}
	if cfg == nil {
		cfg = &Config{}
	}
	cfg.Files = l.files
	cfg.Warnings = sortDiagnostics(l.d.warnings)
	if err := l.d.err(); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// Parse is Load for a single file held in memory, without includes.
func Parse(name string, src []byte) (*Config, error) {
	return Load(fstest.MapFS{strings.TrimPrefix(path.Clean(name), "/"): {Data: src}}, name, nil)
}

// loader reads a pipeline's files and merges them into one mapping.
type loader struct {
	fsys  fs.FS
	ctx   *Context
	d     diags
	seen  map[string]bool
	files []string
}

// file reads one file and the files it includes and returns the merged
// top-level mapping, or nil if the file could not be read as a mapping.
func (l *loader) file(name string, from Position, inputs *node) *node {
	if len(l.files) >= maxIncludes {
		l.d.errorf(from, "too many included files (the limit is %d)", maxIncludes)
		return nil
	}
	l.seen[name] = true
	l.files = append(l.files, name)
	src, err := fs.ReadFile(l.fsys, name)
	if err != nil {
		l.d.errorf(from, "cannot read %s: %v", name, err)
		return nil
	}
	docs := parseYAML(name, src, &l.d)
	if len(docs) == 0 {
		if len(l.d.errors) == 0 {
			l.d.errorf(Position{File: name, Line: 1, Column: 1}, "the file is empty: a pipeline needs at least one job")
		}
		return nil
	}
	doc := docs[0]
	if len(docs) >= 2 && doc.kind == mapNode && doc.get("spec") != nil {
		doc = interpolateInputs(docs[1], doc.get("spec"), inputs, &l.d)
		docs = docs[1:]
	} else if inputs != nil {
		l.d.errorf(inputs.pos, "include: inputs given, but %s has no spec: inputs header", name)
	}
	if len(docs) > 1 {
		l.d.errorf(docs[1].pos, "a pipeline file holds one YAML document (or a spec: header and one document)")
	}
	if doc.kind != mapNode {
		l.d.errorf(doc.pos, "a pipeline file must be a mapping of keywords and jobs, found %s", doc.describe())
		return nil
	}
	inc := doc.get("include")
	if inc == nil {
		return doc
	}
	merged := &node{kind: mapNode, pos: doc.pos}
	for _, target := range l.includes(inc) {
		if l.seen[target.name] {
			continue // GitLab reads a file included twice once
		}
		if sub := l.file(target.name, target.pos, target.inputs); sub != nil {
			merged = deepMerge(merged, sub.without("include"))
		}
	}
	return deepMerge(merged, doc.without("include"))
}

type includeTarget struct {
	name   string
	pos    Position
	inputs *node // include: inputs, nil when none
}

// includeKinds are the include: forms GitLab has; only local is read here.
var includeKinds = []string{"local", "remote", "template", "project", "component"}

// includes lists the local files an include: value names, expanding globs.
func (l *loader) includes(inc *node) []includeTarget {
	var entries []*node
	switch inc.kind {
	case seqNode:
		entries = inc.items
	default:
		entries = []*node{inc}
	}
	var out []includeTarget
	for _, e := range entries {
		var p *node
		switch {
		case e.kind == scalarNode && !e.isNull():
			if strings.HasPrefix(e.value, "https://") || strings.HasPrefix(e.value, "http://") {
				l.d.errorf(e.pos, "include: remote files are not supported yet (only include: local)")
				continue
			}
			p = e
		case e.kind == mapNode:
			checkKeys(&l.d, e, "include", []string{"local", "remote", "template", "project", "component", "file", "ref", "rules", "inputs"})
			for _, k := range includeKinds[1:] {
				if e.get(k) != nil {
					l.d.errorf(e.keyPos(k), "include: %s is not supported yet (only include: local)", k)
				}
			}
			if r := e.get("rules"); r != nil && !l.includeWanted(r) {
				continue
			}
			p = e.get("local")
			if p == nil {
				continue
			}
			if p.kind != scalarNode || p.isNull() {
				l.d.errorf(p.pos, "include: local needs a path, found %s", p.describe())
				continue
			}
		default:
			l.d.errorf(e.pos, "include needs a path or a mapping such as {local: path}, found %s", e.describe())
			continue
		}
		targets := l.expandLocal(p)
		if e.kind == mapNode {
			for i := range targets {
				targets[i].inputs = e.get("inputs")
			}
		}
		out = append(out, targets...)
	}
	return out
}

// includeWanted evaluates include: rules against the pipeline context, with
// the predefined and pipeline variables (the file's own are not known yet).
func (l *loader) includeWanted(rules *node) bool {
	if l.ctx == nil {
		l.d.errorf(rules.pos, "include: rules need a pipeline context to be evaluated")
		return false
	}
	parsed := decodeRules(decoder{d: &l.d}, rules, "include: rules", []string{"if", "exists", "changes", "when"})
	p := &planner{ctx: *l.ctx, globs: map[string]bool{}}
	r := p.firstRule(parsed, newVarSet(p.pipelineVariables(), l.ctx.Variables))
	return r != nil && r.When != Never
}

// expandLocal resolves one include: local path, which is relative to the
// repository root and may be a glob.
func (l *loader) expandLocal(p *node) []includeTarget {
	pattern := strings.TrimPrefix(p.value, "/")
	if ext := path.Ext(pattern); ext != ".yml" && ext != ".yaml" {
		l.d.errorf(p.pos, "include: local %q must be a .yml or .yaml file", p.value)
		return nil
	}
	if !strings.ContainsAny(pattern, "*?[{") {
		return []includeTarget{{name: path.Clean(pattern), pos: p.pos}}
	}
	matches, err := doublestar.Glob(l.fsys, pattern)
	if err != nil {
		l.d.errorf(p.pos, "include: local %q is not a valid glob: %v", p.value, err)
		return nil
	}
	if len(matches) == 0 {
		l.d.errorf(p.pos, "include: local %q matches no file", p.value)
	}
	slices.Sort(matches)
	out := make([]includeTarget, len(matches))
	for i, m := range matches {
		out[i] = includeTarget{name: m, pos: p.pos}
	}
	return out
}

var inputRef = regexp.MustCompile(`\$\[\[\s*inputs\.([A-Za-z0-9_-]+)\s*\]\]`)

var wholeInputRef = regexp.MustCompile(`^\s*\$\[\[\s*inputs\.([A-Za-z0-9_-]+)\s*\]\]\s*$`)

// interpolateInputs replaces $[[ inputs.NAME ]] in doc with the inputs the
// include: gives, or else the defaults the spec: header declares. A value
// that is all one reference takes the input as it is (a list stays a list);
// inside a longer string the input must be a string, number or boolean.
func interpolateInputs(doc, spec, given *node, d *diags) *node {
	values := map[string]*node{}
	if inputs := spec.get("inputs"); inputs != nil && inputs.kind == mapNode {
		for i, k := range inputs.keys {
			if def := inputs.vals[i].get("default"); def != nil {
				values[k.value] = def
			}
		}
	}
	if given != nil && given.kind == mapNode {
		for i, k := range given.keys {
			values[k.value] = given.vals[i]
		}
	}
	lookup := func(name string, at *node) *node {
		v, ok := values[name]
		if !ok {
			d.errorf(at.pos, "input %q has no default and none is given", name)
			return &node{kind: scalarNode, tag: tagStr, pos: at.pos}
		}
		return v
	}
	var walk func(n *node) *node
	walk = func(n *node) *node {
		switch n.kind {
		case scalarNode:
			if !strings.Contains(n.value, "$[[") {
				return n
			}
			if m := wholeInputRef.FindStringSubmatch(n.value); m != nil {
				return lookup(m[1], n)
			}
			c := *n
			c.value = inputRef.ReplaceAllStringFunc(n.value, func(ref string) string {
				v := lookup(inputRef.FindStringSubmatch(ref)[1], n)
				if v.kind != scalarNode {
					d.errorf(n.pos, "input in %q is %s; only a string, number or boolean fits inside a string", n.value, v.describe())
					return ""
				}
				return v.value
			})
			return &c
		case seqNode:
			c := *n
			c.items = make([]*node, len(n.items))
			for i, it := range n.items {
				c.items[i] = walk(it)
			}
			return &c
		}
		c := *n
		c.keys, c.vals = make([]*node, len(n.keys)), make([]*node, len(n.vals))
		for i, v := range n.vals {
			c.keys[i], c.vals[i] = n.keys[i], walk(v)
			if k := walk(n.keys[i]); k.kind == scalarNode {
				c.keys[i] = k
			} else {
				d.errorf(k.pos, "a key cannot be %s", k.describe())
			}
		}
		return &c
	}
	return walk(doc)
}

// resolve applies extends: and !reference to the merged top-level mapping.
func (l *loader) resolve(top *node) *node {
	r := &resolver{top: top, d: &l.d, done: map[string]*node{}, active: map[string]bool{}}
	out := &node{kind: mapNode, pos: top.pos}
	for i, k := range top.keys {
		v := top.vals[i]
		if !slices.Contains(reservedKeys, k.value) && v.kind == mapNode {
			v = r.extend(k.value, 0)
		}
		out.keys, out.vals = append(out.keys, k), append(out.vals, v)
	}
	r.top = out
	for i := range out.vals {
		out.vals[i] = r.references(out.vals[i], 0)
	}
	return out
}

// resolver expands extends: and !reference over the top-level mapping.
type resolver struct {
	top    *node
	d      *diags
	done   map[string]*node
	active map[string]bool
}

// extend returns job name with its extends: chain merged in.
func (r *resolver) extend(name string, depth int) *node {
	if n, ok := r.done[name]; ok {
		return n
	}
	job := r.top.get(name)
	ext := job.get("extends")
	if ext == nil {
		r.done[name] = job
		return job
	}
	var parents []*node
	switch {
	case ext.kind == scalarNode && !ext.isNull():
		parents = []*node{ext}
	case ext.kind == seqNode:
		parents = ext.items
	default:
		r.d.errorf(ext.pos, "extends needs a job name or a list of job names, found %s", ext.describe())
	}
	r.active[name] = true
	defer delete(r.active, name)
	base := &node{kind: mapNode, pos: job.pos}
	for _, p := range parents {
		if p.kind != scalarNode || p.isNull() {
			r.d.errorf(p.pos, "extends needs job names, found %s", p.describe())
			continue
		}
		parent := r.top.get(p.value)
		switch {
		case parent == nil || slices.Contains(reservedKeys, p.value):
			r.d.errorf(p.pos, "%s extends %q, which is not defined%s", name, p.value, suggest.DidYouMean(p.value, r.jobNames()))
			continue
		case parent.kind != mapNode:
			r.d.errorf(p.pos, "%s extends %q, which is not a job (it is %s)", name, p.value, parent.describe())
			continue
		case r.active[p.value]:
			r.d.errorf(p.pos, "extends cycle: %s extends %q, which extends %s again", name, p.value, name)
			continue
		case depth+1 >= maxExtendsDepth:
			r.d.errorf(p.pos, "extends nests too deep at %q (the limit is %d levels)", p.value, maxExtendsDepth-1)
			continue
		}
		base = deepMerge(base, r.extend(p.value, depth+1))
	}
	merged := deepMerge(base, job.without("extends"))
	merged = merged.without("extends")
	r.done[name] = merged
	return merged
}

func (r *resolver) jobNames() []string {
	var names []string
	for _, k := range r.top.keys {
		if !slices.Contains(reservedKeys, k.value) {
			names = append(names, k.value)
		}
	}
	return names
}

// references replaces every !reference [key, ...] in n by the value it names.
func (r *resolver) references(n *node, depth int) *node {
	switch n.kind {
	case scalarNode:
		return n
	case mapNode:
		var out *node
		for i, v := range n.vals {
			nv := r.references(v, depth)
			if nv != v {
				if out == nil {
					out = &node{kind: mapNode, pos: n.pos, keys: n.keys, vals: slices.Clone(n.vals)}
				}
				out.vals[i] = nv
			}
		}
		if out == nil {
			return n
		}
		return out
	}
	if n.tag == tagReference {
		return r.reference(n, depth)
	}
	var out *node
	for i, it := range n.items {
		ni := r.references(it, depth)
		if ni != it {
			if out == nil {
				out = &node{kind: seqNode, pos: n.pos, items: slices.Clone(n.items)}
			}
			out.items[i] = ni
		}
	}
	if out == nil {
		return n
	}
	return out
}

func (r *resolver) reference(ref *node, depth int) *node {
	if depth >= maxReferenceDeep {
		r.d.errorf(ref.pos, "!reference nests too deep (the limit is %d levels)", maxReferenceDeep)
		return &node{kind: scalarNode, tag: tagNull, pos: ref.pos}
	}
	var parts []string
	for _, it := range ref.items {
		if it.kind != scalarNode || it.isNull() {
			r.d.errorf(it.pos, "!reference takes a list of names, found %s", it.describe())
			return &node{kind: scalarNode, tag: tagNull, pos: ref.pos}
		}
		parts = append(parts, it.value)
	}
	if len(parts) == 0 {
		r.d.errorf(ref.pos, "!reference needs at least a job name, as in !reference [.setup, script]")
		return &node{kind: scalarNode, tag: tagNull, pos: ref.pos}
	}
	cur := r.top
	for i, p := range parts {
		next := cur.get(p)
		if next == nil {
			r.d.errorf(ref.items[i].pos, "!reference [%s]: %q is not defined", strings.Join(parts, ", "), p)
			return &node{kind: scalarNode, tag: tagNull, pos: ref.pos}
		}
		cur = next
	}
	return r.references(cur, depth+1)
}
