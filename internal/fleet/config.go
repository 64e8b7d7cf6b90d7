package fleet

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	yaml "go.yaml.in/yaml/v4"

	"github.com/hangar-ci/hangar/internal/pipeline/duration"
	"github.com/hangar-ci/hangar/internal/suggest"
)

// Defaults Load gives the keys a file leaves out or sets to null. A key
// the file sets keeps its value, 0 included.
const (
	// DefaultInstallation is the installation name.
	DefaultInstallation = "hangar"
	// DefaultCapacityPerInstance is the attempts one instance runs at once.
	DefaultCapacityPerInstance = 1
	// DefaultPolicy is the pool policy of a class.
	DefaultPolicy = PolicyIdle
	// DefaultIdleTime is the idle_time of a class of policy idle; other
	// knownPolicies have none (0) unless the class sets one.
	DefaultIdleTime = 10 * time.Minute
	// DefaultTargetWait and DefaultTargetPercentile are the adaptive
	// policy's goal: 90% of jobs wait at most 5s.
	DefaultTargetWait       = 5 * time.Second
	DefaultTargetPercentile = 90
	// DefaultBootTimeout is how long a new instance's agent has to register.
	DefaultBootTimeout = 5 * time.Minute
	// DefaultHeartbeatTimeout is how long an instance may stay silent
	// before it is declared lost.
	DefaultHeartbeatTimeout = time.Minute
)

// knownProviders are the knownProviders a class may name.
var knownProviders = []string{"docker", "local"}

// knownPolicies are the pool knownPolicies, in the documentation's order.
var knownPolicies = []string{string(PolicyIdle), string(PolicyAdaptive), string(PolicyStatic), string(PolicyPerJob)}

// The keys of each mapping of the file.
var (
	topKeys      = []string{"fleet"}
	fleetKeys    = []string{"installation", "concurrent", "classes"}
	classKeys    = []string{"name", "labels", "provider", "provider_config", "capacity_per_instance", "max_instances", "policy", "idle_count", "idle_time", "max_use_count", "max_instance_age", "max_concurrent_creates", "target_wait", "target_percentile", "schedules", "boot_timeout", "heartbeat_timeout", "max_disk_used_percent", "spot", "fallback_class", "hooks", "price_per_hour"}
	scheduleKeys = []string{"periods", "timezone", "idle_count", "idle_time"}
	hookKeys     = []string{"webhook", "slack", "command"}
)

// namePattern is what a class or installation name may be: it ends up in
// instance names and provider labels.
var namePattern = regexp.MustCompile(`^[a-z0-9-]+$`)

// Diagnostic is one problem in a configuration: where the file says it,
// the field it concerns and what is wrong there.
type Diagnostic struct {
	// File, Line and Column (1-based) locate the problem: the field's key,
	// the list item, or the mapping that lacks a required key. Line is 0
	// when unknown (Validate of a Config built in code).
	File         string
	Line, Column int
	// Path names the field, such as fleet.classes[1].idle_count; it is
	// empty for a problem with the file as a whole, such as invalid YAML.
	Path    string
	Message string
	// Err is the cause when another package's error explains the problem
	// (the cron parser's, time.LoadLocation's, the duration parser's).
	Err error
}

// Error formats the diagnostic as file:line:col: path: message.
func (d Diagnostic) Error() string {
	var b strings.Builder
	if d.File != "" {
		b.WriteString(d.File)
		if d.Line > 0 {
			fmt.Fprintf(&b, ":%d:%d", d.Line, d.Column)
		}
		b.WriteString(": ")
	}
	if d.Path != "" {
		b.WriteString(d.Path)
		b.WriteString(": ")
	}
	b.WriteString(d.Message)
	return b.String()
}

// Unwrap returns the cause, if any.
func (d Diagnostic) Unwrap() error { return d.Err }

// ErrorList is the error Load and Validate return: every problem found,
// sorted by filePos.
type ErrorList []Diagnostic

// Error joins the diagnostics, one per line.
func (l ErrorList) Error() string {
	lines := make([]string, len(l))
	for i, d := range l {
		lines[i] = d.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns the diagnostics, so that errors.Is and errors.As see
// their causes.
func (l ErrorList) Unwrap() []error {
	errs := make([]error, len(l))
	for i, d := range l {
		errs[i] = d
	}
	return errs
}

// LoadFile reads the configuration file at path; see Load.
func LoadFile(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read configuration: %w", err)
	}
	return Load(path, data)
}

// Load reads a server configuration file: a YAML mapping whose fleet: key
// holds the Config. name is the file's name in messages. Keys the file
// leaves out take their defaults (the Default constants); every key and
// value is checked. On failure Load returns a nil Config and an ErrorList
// holding every problem of the file, each as file:line:col: path: message.
// An empty file, or one without fleet:, is a fleet of no classes.
//
// Durations are Go's ("90s", "1h30m") or GitLab's human ones ("30
// minutes", "1h 30m"; a bare number is seconds). Load compiles every
// schedule's periods and time zone, so PoolAt finds them ready.
func Load(name string, data []byte) (*Config, error) {
	l := &loader{
		file:     name,
		fromFile: true,
		at:       map[string]filePos{},
		set:      map[string]bool{},
		bad:      map[string]bool{},
	}
	root := l.parse(data)
	if len(l.errs) > 0 {
		return nil, l.err()
	}
	cfg := &Config{}
	l.decodeFile(root, cfg)
	l.defaults(cfg)
	l.check(cfg)
	if err := l.err(); err != nil {
		return nil, err
	}
	for i := range cfg.Classes {
		cfg.Classes[i].Compile()
	}
	return cfg, nil
}

// Validate checks a Config built in code as Load checks a file's, and
// returns an ErrorList naming each bad field by its path. It applies no
// defaults: a zero CapacityPerInstance, for one, is an error here.
func (c *Config) Validate() error {
	l := &loader{}
	l.check(c)
	return l.err()
}

// ErrNoClass is the error ClassFor returns, wrapped, when no class serves
// a job's tags.
var ErrNoClass = errors.New("no runner class serves tags")

// ClassFor returns the first class, in the file's order, whose labels
// include all of tags (any class serves a job without tags). When none
// does, the error wraps ErrNoClass and names the tags and every class with
// its labels: `no runner class serves tags [gpu, linux]: classes are small
// [linux, docker], big [linux, docker, large]`.
func (c *Config) ClassFor(tags []string) (*Class, error) {
	for i := range c.Classes {
		if cl := &c.Classes[i]; cl.serves(tags) {
			return cl, nil
		}
	}
	if len(c.Classes) == 0 {
		return nil, fmt.Errorf("%w %s: no classes are configured", ErrNoClass, bracketed(tags))
	}
	classes := make([]string, len(c.Classes))
	for i, cl := range c.Classes {
		classes[i] = cl.Name + " " + bracketed(cl.Labels)
	}
	return nil, fmt.Errorf("%w %s: classes are %s", ErrNoClass, bracketed(tags), strings.Join(classes, ", "))
}

// ClassLabelPrefix starts the label every agent of a class registers with
// besides the class's labels: ClassLabel(name). A job tagged with it runs
// only on that class: the fleet tags the jobs of an interrupted spot
// instance with its fallback class's.
const ClassLabelPrefix = "hangar-class:"

// ClassLabel is the label of the agents of class name.
func ClassLabel(name string) string { return ClassLabelPrefix + name }

// serves reports whether all of tags are among the class's labels, its
// ClassLabel included.
func (c *Class) serves(tags []string) bool {
	for _, t := range tags {
		if !slices.Contains(c.Labels, t) && t != ClassLabel(c.Name) {
			return false
		}
	}
	return true
}

func bracketed(list []string) string {
	return "[" + strings.Join(list, ", ") + "]"
}

// filePos is a place in the file (1-based).
type filePos struct{ line, col int }

func posOf(n *yaml.Node) filePos { return filePos{n.Line, n.Column} }

// loader reads one file into a Config, collecting every problem. The same
// checks serve Validate, with a zero loader: no file, so no positions, and
// every field counts as set.
type loader struct {
	file     string
	fromFile bool
	errs     ErrorList
	at       map[string]filePos // where each field was written (its key) or each list item
	set      map[string]bool    // fields the file gives a value (not null)
	bad      map[string]bool    // fields whose value could not be read: checks skip them
}

// add records a problem with the field at path.
func (l *loader) add(path string, cause error, format string, args ...any) {
	l.addAt(l.where(path), path, cause, format, args...)
}

func (l *loader) addAt(pos filePos, path string, cause error, format string, args ...any) {
	l.errs = append(l.errs, Diagnostic{
		File: l.file, Line: pos.line, Column: pos.col,
		Path: path, Message: fmt.Sprintf(format, args...), Err: cause,
	})
}

// fail records that the value at path cannot be read.
func (l *loader) fail(path, format string, args ...any) {
	l.bad[path] = true
	l.add(path, nil, format, args...)
}

// where returns the filePos of path, or of its closest written parent.
func (l *loader) where(path string) filePos {
	for p := path; ; p = parentPath(p) {
		if pos, ok := l.at[p]; ok {
			return pos
		}
		if p == "" {
			return filePos{}
		}
	}
}

// given reports whether the field at path has a value to check: it was
// set and could be read (for Validate: always).
func (l *loader) given(path string) bool {
	return !l.fromFile || (l.set[path] && !l.bad[path])
}

// missing reports whether a required field is absent from the file.
func (l *loader) missing(path string) bool {
	return l.fromFile && !l.set[path] && !l.bad[path]
}

func (l *loader) err() error {
	if len(l.errs) == 0 {
		return nil
	}
	sort.SliceStable(l.errs, func(i, j int) bool {
		a, b := l.errs[i], l.errs[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
	return l.errs
}

func keyPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func itemPath(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

func parentPath(path string) string {
	return path[:max(strings.LastIndexAny(path, ".["), 0)]
}

// parse reads the file's single YAML document and returns its top node,
// nil when the file is empty.
func (l *loader) parse(data []byte) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if !errors.Is(err, io.EOF) {
			l.yamlError(err)
		}
		return nil
	}
	var next yaml.Node
	if err := dec.Decode(&next); err == nil {
		l.addAt(posOf(&next), "", nil, "the file must hold one YAML document, found a second")
	} else if !errors.Is(err, io.EOF) {
		l.yamlError(err)
	}
	if len(doc.Content) == 0 {
		return nil
	}
	return doc.Content[0]
}

func (l *loader) yamlError(err error) {
	var le *yaml.LoadError
	if errors.As(err, &le) && le.Mark.Line > 0 {
		msg := le.Message
		if le.ContextMsg != "" && le.ContextMark.Line > 0 {
			msg += fmt.Sprintf(" (%s started at line %d, column %d)", le.ContextMsg, le.ContextMark.Line, le.ContextMark.Column)
		}
		l.addAt(filePos{le.Mark.Line, max(le.Mark.Column, 1)}, "", err, "invalid YAML: %s", msg)
		return
	}
	l.addAt(filePos{1, 1}, "", err, "invalid YAML: %s", strings.TrimPrefix(err.Error(), "yaml: "))
}

// resolveAlias follows aliases.
func resolveAlias(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

// describeNode shows a value in a message: a scalar as written, else its kind.
func describeNode(n *yaml.Node) string {
	switch {
	case isNull(n):
		return "null"
	case n.Kind == yaml.MappingNode:
		return "a mapping"
	case n.Kind == yaml.SequenceNode:
		return "a list"
	case n.ShortTag() == "!!str":
		return strconv.Quote(n.Value)
	}
	return n.Value
}

// yamlMapping is a mapping of the file read into its values by key.
type yamlMapping struct {
	path string
	vals map[string]*yaml.Node
}

// mapping reads a mapping at path whose keys must be among known. Merge
// keys (<<) bring in the keys of other mappings that the mapping does not
// set itself. ok is false when v is absent, null or not a mapping.
func (l *loader) mapping(v *yaml.Node, path string, known []string) (f yamlMapping, ok bool) {
	f = yamlMapping{path: path, vals: map[string]*yaml.Node{}}
	n := resolveAlias(v)
	if isNull(n) {
		return f, false
	}
	if n.Kind != yaml.MappingNode {
		l.fail(path, "must be a mapping, got %s", describeNode(n))
		return f, false
	}
	l.collect(n, f, known, false, 0)
	return f, true
}

func (l *loader) collect(n *yaml.Node, f yamlMapping, known []string, merged bool, depth int) {
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			merges = append(merges, v)
			continue
		}
		rk := resolveAlias(k)
		if rk.Kind != yaml.ScalarNode || isNull(rk) {
			l.addAt(posOf(k), f.path, nil, "keys must be strings, got %s", describeNode(rk))
			continue
		}
		name := rk.Value
		p := keyPath(f.path, name)
		if _, dup := f.vals[name]; dup {
			if !merged {
				l.addAt(posOf(k), p, nil, "set twice (first on line %d)", l.at[p].line)
			}
			continue
		}
		if !slices.Contains(known, name) {
			if s := suggest.DidYouMean(name, known); s != "" {
				l.addAt(posOf(k), p, nil, "unknown key%s", s)
			} else {
				l.addAt(posOf(k), p, nil, "unknown key; the keys here are %s", strings.Join(known, ", "))
			}
			continue
		}
		f.vals[name] = v
		l.at[p] = posOf(k)
		l.set[p] = !isNull(resolveAlias(v))
	}
	for _, m := range merges {
		src := resolveAlias(m)
		sources := []*yaml.Node{src}
		if src.Kind == yaml.SequenceNode {
			sources = src.Content
		}
		for _, s := range sources {
			s = resolveAlias(s)
			switch {
			case s.Kind != yaml.MappingNode:
				l.addAt(posOf(m), f.path, nil, "merge key << needs a mapping or a list of mappings, got %s", describeNode(s))
			case depth >= 10:
				l.addAt(posOf(m), f.path, nil, "merge keys nested more than 10 deep")
			default:
				l.collect(s, f, known, true, depth+1)
			}
		}
	}
}

// list reads a list at path and records where each item is. ok is false
// when v is absent, null or not a list.
func (l *loader) list(v *yaml.Node, path string) (items []*yaml.Node, ok bool) {
	n := resolveAlias(v)
	if isNull(n) {
		return nil, false
	}
	if n.Kind != yaml.SequenceNode {
		l.fail(path, "must be a list, got %s", describeNode(n))
		return nil, false
	}
	for i, it := range n.Content {
		l.at[itemPath(path, i)] = posOf(it)
	}
	return n.Content, true
}

// scalar returns the value of key when it is a scalar; what names the
// expected value for the message when it is not.
func (l *loader) scalar(f yamlMapping, key, what string) (*yaml.Node, string, bool) {
	p := keyPath(f.path, key)
	n := resolveAlias(f.vals[key])
	if isNull(n) {
		return nil, p, false
	}
	if n.Kind != yaml.ScalarNode {
		l.fail(p, "must be %s, got %s", what, describeNode(n))
		return nil, p, false
	}
	return n, p, true
}

func (l *loader) str(f yamlMapping, key string, dst *string) {
	if n, _, ok := l.scalar(f, key, "a string"); ok {
		*dst = n.Value
	}
}

func (l *loader) integer(f yamlMapping, key string, dst *int) {
	n, p, ok := l.scalar(f, key, "a whole number")
	if !ok {
		return
	}
	var v int
	if n.ShortTag() != "!!int" || n.Decode(&v) != nil {
		l.fail(p, "must be a whole number, got %s", describeNode(n))
		return
	}
	*dst = v
}

func (l *loader) number(f yamlMapping, key string, dst *float64) {
	n, p, ok := l.scalar(f, key, "a number")
	if !ok {
		return
	}
	var v float64
	if tag := n.ShortTag(); (tag != "!!int" && tag != "!!float") || n.Decode(&v) != nil {
		l.fail(p, "must be a number, got %s", describeNode(n))
		return
	}
	*dst = v
}

func (l *loader) boolean(f yamlMapping, key string, dst *bool) {
	n, p, ok := l.scalar(f, key, "true or false")
	if !ok {
		return
	}
	var v bool
	if n.ShortTag() != "!!bool" || n.Decode(&v) != nil {
		l.fail(p, "must be true or false, got %s", describeNode(n))
		return
	}
	*dst = v
}

func (l *loader) duration(f yamlMapping, key string, dst *time.Duration) {
	n, p, ok := l.scalar(f, key, "a duration")
	if !ok {
		return
	}
	d, err := parseDuration(n.Value)
	if err != nil {
		l.bad[p] = true
		msg := err.Error()
		var de *duration.Error
		if errors.As(err, &de) {
			msg = de.Msg
		}
		l.add(p, err, `must be a duration such as "90s", "1h30m" or "30 minutes", got %s: %s`, describeNode(n), msg)
		return
	}
	*dst = d
}

// parseDuration reads Go's syntax ("90s", "-1m") or GitLab's human one
// ("30 minutes", "1h 30m", "90").
func parseDuration(s string) (time.Duration, error) {
	if d, err := time.ParseDuration(strings.TrimSpace(s)); err == nil {
		return d, nil
	}
	return duration.Parse(s)
}

// strList reads a list of strings; items that are not scalars are errors.
func (l *loader) strList(f yamlMapping, key string, dst *[]string) {
	p := keyPath(f.path, key)
	items, ok := l.list(f.vals[key], p)
	if !ok {
		return
	}
	out := make([]string, 0, len(items))
	for i, it := range items {
		n := resolveAlias(it)
		if n.Kind != yaml.ScalarNode || isNull(n) {
			l.fail(itemPath(p, i), "must be a string, got %s", describeNode(n))
			continue
		}
		out = append(out, n.Value)
	}
	*dst = out
}

// decodeFile reads the top-level mapping into cfg.
func (l *loader) decodeFile(root *yaml.Node, cfg *Config) {
	if root == nil {
		return
	}
	l.at[""] = posOf(root)
	if n := resolveAlias(root); !isNull(n) && n.Kind != yaml.MappingNode {
		l.addAt(posOf(root), "", nil, "the file must be a mapping with a fleet: key, got %s", describeNode(n))
		return
	}
	top, ok := l.mapping(root, "", topKeys)
	if !ok {
		return
	}
	f, ok := l.mapping(top.vals["fleet"], "fleet", fleetKeys)
	if !ok {
		return
	}
	l.str(f, "installation", &cfg.Installation)
	l.integer(f, "concurrent", &cfg.Concurrent)
	items, _ := l.list(f.vals["classes"], "fleet.classes")
	for i, it := range items {
		var c Class
		l.decodeClass(it, itemPath("fleet.classes", i), &c)
		cfg.Classes = append(cfg.Classes, c)
	}
}

func (l *loader) decodeClass(v *yaml.Node, path string, c *Class) {
	f, ok := l.mapping(v, path, classKeys)
	if !ok {
		if isNull(resolveAlias(v)) {
			l.fail(path, "must be a mapping of the class's keys, got null")
		}
		return
	}
	l.str(f, "name", &c.Name)
	l.strList(f, "labels", &c.Labels)
	l.str(f, "provider", &c.Provider)
	if n, p := resolveAlias(f.vals["provider_config"]), keyPath(path, "provider_config"); !isNull(n) {
		if n.Kind != yaml.MappingNode {
			l.fail(p, "must be a mapping, got %s", describeNode(n))
		} else if err := n.Decode(&c.ProviderConfig); err != nil {
			l.bad[p] = true
			l.add(p, err, "cannot be read: %v", err)
		}
	}
	l.integer(f, "capacity_per_instance", &c.CapacityPerInstance)
	l.integer(f, "max_instances", &c.MaxInstances)
	l.str(f, "policy", (*string)(&c.Policy))
	l.integer(f, "idle_count", &c.IdleCount)
	l.duration(f, "idle_time", &c.IdleTime)
	l.integer(f, "max_use_count", &c.MaxUseCount)
	l.duration(f, "max_instance_age", &c.MaxInstanceAge)
	l.integer(f, "max_concurrent_creates", &c.MaxConcurrentCreates)
	l.duration(f, "target_wait", &c.TargetWait)
	l.number(f, "target_percentile", &c.TargetPercentile)
	sp := keyPath(path, "schedules")
	items, _ := l.list(f.vals["schedules"], sp)
	for i, it := range items {
		var s Schedule
		if sf, ok := l.mapping(it, itemPath(sp, i), scheduleKeys); ok {
			l.strList(sf, "periods", &s.Periods)
			l.str(sf, "timezone", &s.Timezone)
			l.integer(sf, "idle_count", &s.IdleCount)
			l.duration(sf, "idle_time", &s.IdleTime)
		} else if isNull(resolveAlias(it)) {
			l.fail(itemPath(sp, i), "must be a mapping with periods:, got null")
		}
		c.Schedules = append(c.Schedules, s)
	}
	l.duration(f, "boot_timeout", &c.BootTimeout)
	l.duration(f, "heartbeat_timeout", &c.HeartbeatTimeout)
	l.number(f, "max_disk_used_percent", &c.MaxDiskUsedPercent)
	l.number(f, "price_per_hour", &c.PricePerHour)
	l.boolean(f, "spot", &c.Spot)
	l.str(f, "fallback_class", &c.FallbackClass)
	if hf, ok := l.mapping(f.vals["hooks"], keyPath(path, "hooks"), hookKeys); ok {
		l.str(hf, "webhook", &c.Hooks.Webhook)
		l.str(hf, "slack", &c.Hooks.Slack)
		l.str(hf, "command", &c.Hooks.Command)
	}
}

// defaults fills in what the file leaves out.
func (l *loader) defaults(cfg *Config) {
	unset := func(path string) bool { return !l.set[path] && !l.bad[path] }
	if unset("fleet.installation") {
		cfg.Installation = DefaultInstallation
	}
	for i := range cfg.Classes {
		c, p := &cfg.Classes[i], itemPath("fleet.classes", i)
		if unset(keyPath(p, "capacity_per_instance")) {
			c.CapacityPerInstance = DefaultCapacityPerInstance
		}
		if unset(keyPath(p, "policy")) {
			c.Policy = DefaultPolicy
		}
		if unset(keyPath(p, "idle_time")) && c.Policy == PolicyIdle {
			c.IdleTime = DefaultIdleTime
		}
		if unset(keyPath(p, "max_use_count")) && c.Policy == PolicyPerJob {
			c.MaxUseCount = 1 // one job per instance: what per_job means
		}
		if unset(keyPath(p, "target_wait")) {
			c.TargetWait = DefaultTargetWait
		}
		if unset(keyPath(p, "target_percentile")) {
			c.TargetPercentile = DefaultTargetPercentile
		}
		if unset(keyPath(p, "boot_timeout")) {
			c.BootTimeout = DefaultBootTimeout
		}
		if unset(keyPath(p, "heartbeat_timeout")) {
			c.HeartbeatTimeout = DefaultHeartbeatTimeout
		}
		for j := range c.Schedules {
			if unset(keyPath(itemPath(keyPath(p, "schedules"), j), "idle_time")) {
				c.Schedules[j].IdleTime = c.IdleTime
			}
		}
	}
}

// check applies the rules a Config must keep, naming each bad field.
func (l *loader) check(cfg *Config) {
	if l.given("fleet.installation") && !namePattern.MatchString(cfg.Installation) {
		l.add("fleet.installation", nil, "must be lowercase letters, digits and hyphens, got %q", cfg.Installation)
	}
	l.atLeast("fleet.concurrent", cfg.Concurrent, 0)
	first := map[string]int{} // class name → index of its first class
	for i := range cfg.Classes {
		c, p := &cfg.Classes[i], itemPath("fleet.classes", i)
		if l.bad[p] {
			continue // not a mapping: said so already
		}
		np := keyPath(p, "name")
		switch {
		case l.missing(np) || (!l.fromFile && c.Name == ""):
			l.add(np, nil, "required: lowercase letters, digits and hyphens")
		case l.given(np) && !namePattern.MatchString(c.Name):
			l.add(np, nil, "must be lowercase letters, digits and hyphens, got %q", c.Name)
		case l.given(np):
			if j, dup := first[c.Name]; dup {
				l.add(np, nil, "%q is already the name of fleet.classes[%d]", c.Name, j)
			} else {
				first[c.Name] = i
			}
		}
		l.checkClass(c, p)
	}
	names := make([]string, len(cfg.Classes))
	for i, c := range cfg.Classes {
		names[i] = c.Name
	}
	for i := range cfg.Classes {
		c, p := &cfg.Classes[i], keyPath(itemPath("fleet.classes", i), "fallback_class")
		if !l.given(p) || c.FallbackClass == "" {
			continue
		}
		_, exists := first[c.FallbackClass]
		switch {
		case !c.Spot:
			l.add(p, nil, "needs spot: true (the fallback class runs again what a spot instance's interruption stopped)")
		case c.FallbackClass == c.Name:
			l.add(p, nil, "must name another class, not the class itself")
		case !exists:
			msg := fmt.Sprintf("no class is named %q; the classes are %s", c.FallbackClass, strings.Join(names, ", "))
			if s := suggest.Closest(c.FallbackClass, names); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			l.add(p, nil, "%s", msg)
		}
	}
}

func (l *loader) checkClass(c *Class, p string) {
	lp := keyPath(p, "labels")
	for i, label := range c.Labels {
		ip := itemPath(lp, i)
		switch {
		case l.bad[ip]:
		case label == "":
			l.add(ip, nil, "must not be empty")
		case strings.Contains(label, ","):
			l.add(ip, nil, "must not contain a comma, got %q (write each label as its own item)", label)
		case strings.TrimSpace(label) != label:
			l.add(ip, nil, "must not start or end with a space, got %q", label)
		case slices.Index(c.Labels, label) < i:
			l.add(ip, nil, "%q is listed twice", label)
		case strings.HasPrefix(label, ClassLabelPrefix):
			l.add(ip, nil, "%q: labels starting with %q are the fleet's own", label, ClassLabelPrefix)
		}
	}

	pp := keyPath(p, "provider")
	switch {
	case l.missing(pp) || (!l.fromFile && c.Provider == ""):
		l.add(pp, nil, "required: one of %s", strings.Join(knownProviders, ", "))
	case l.given(pp) && !slices.Contains(knownProviders, c.Provider):
		l.add(pp, nil, "must be one of %s, got %q%s", strings.Join(knownProviders, ", "), c.Provider, suggest.DidYouMean(c.Provider, knownProviders))
	}

	mp := keyPath(p, "max_instances")
	maxOK := false
	switch {
	case l.missing(mp):
		l.add(mp, nil, "required: the most instances the class may have, more than 0")
	case l.given(mp) && c.MaxInstances <= 0:
		l.add(mp, nil, "must be more than 0, got %d", c.MaxInstances)
	case l.given(mp):
		maxOK = true
	}
	if cp := keyPath(p, "capacity_per_instance"); l.given(cp) && c.CapacityPerInstance < 1 {
		l.add(cp, nil, "must be 1 or more, got %d", c.CapacityPerInstance)
	}
	if pp := keyPath(p, "policy"); l.given(pp) && !slices.Contains(knownPolicies, string(c.Policy)) {
		l.add(pp, nil, "must be one of %s, got %q%s", strings.Join(knownPolicies, ", "), c.Policy, suggest.DidYouMean(string(c.Policy), knownPolicies))
	}
	l.idleCount(keyPath(p, "idle_count"), c.IdleCount, c.MaxInstances, maxOK)
	l.atLeast(keyPath(p, "max_use_count"), c.MaxUseCount, 0)
	l.atLeast(keyPath(p, "max_concurrent_creates"), c.MaxConcurrentCreates, 0)
	for _, d := range []struct {
		key string
		v   time.Duration
	}{
		{"idle_time", c.IdleTime},
		{"max_instance_age", c.MaxInstanceAge},
		{"target_wait", c.TargetWait},
		{"boot_timeout", c.BootTimeout},
		{"heartbeat_timeout", c.HeartbeatTimeout},
	} {
		l.nonNegative(keyPath(p, d.key), d.v)
	}
	// Written so that NaN fails too.
	if tp := keyPath(p, "target_percentile"); l.given(tp) && !(c.TargetPercentile > 0 && c.TargetPercentile < 100) {
		l.add(tp, nil, "must be more than 0 and less than 100, got %v", c.TargetPercentile)
	}
	if dp := keyPath(p, "max_disk_used_percent"); l.given(dp) && !(c.MaxDiskUsedPercent >= 0 && c.MaxDiskUsedPercent <= 100) {
		l.add(dp, nil, "must be from 0 to 100, got %v", c.MaxDiskUsedPercent)
	}
	if pp := keyPath(p, "price_per_hour"); l.given(pp) && !(c.PricePerHour >= 0 && c.PricePerHour < 1e9) {
		l.add(pp, nil, "must be 0 or more, got %v", c.PricePerHour)
	}

	sp := keyPath(p, "schedules")
	for i := range c.Schedules {
		if l.bad[itemPath(sp, i)] {
			continue
		}
		l.checkSchedule(&c.Schedules[i], itemPath(sp, i), c.MaxInstances, maxOK)
	}

	hp := keyPath(p, "hooks")
	l.httpURL(keyPath(hp, "webhook"), c.Hooks.Webhook)
	l.httpURL(keyPath(hp, "slack"), c.Hooks.Slack)
}

func (l *loader) checkSchedule(s *Schedule, p string, maxInstances int, maxOK bool) {
	pp := keyPath(p, "periods")
	if l.missing(pp) || (len(s.Periods) == 0 && !l.bad[pp]) {
		l.add(pp, nil, "required: at least one cron expression, such as \"* * 9-17 * * mon-fri *\"")
	}
	for i, text := range s.Periods {
		ip := itemPath(pp, i)
		if l.bad[ip] {
			continue
		}
		if _, err := compilePeriod(text); errors.Is(err, errNeverMatches) {
			l.add(ip, err, "%q never matches (no second from %d to %d)", text, cronFirstYear, cronLastYear)
		} else if err != nil {
			l.add(ip, err, "%q is not a cron expression: %v", text, err)
		}
	}
	if tp := keyPath(p, "timezone"); l.given(tp) {
		if _, err := loadZone(s.Timezone); err != nil {
			l.add(tp, err, "must be an IANA time zone such as \"Europe/Berlin\": %v", err)
		}
	}
	l.idleCount(keyPath(p, "idle_count"), s.IdleCount, maxInstances, maxOK)
	l.nonNegative(keyPath(p, "idle_time"), s.IdleTime)
}

func (l *loader) idleCount(p string, n, maxInstances int, maxOK bool) {
	switch {
	case !l.given(p):
	case n < 0:
		l.add(p, nil, "must be 0 or more, got %d", n)
	case maxOK && n > maxInstances:
		l.add(p, nil, "must be at most max_instances (%d), got %d", maxInstances, n)
	}
}

func (l *loader) atLeast(p string, n, least int) {
	if l.given(p) && n < least {
		l.add(p, nil, "must be %d or more, got %d", least, n)
	}
}

func (l *loader) nonNegative(p string, d time.Duration) {
	if l.given(p) && d < 0 {
		l.add(p, nil, "must be 0 or more, got %v", d)
	}
}

func (l *loader) httpURL(p, s string) {
	if !l.given(p) || (s == "" && !l.fromFile) {
		return
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		l.add(p, nil, "must be an http or https URL, got %q", s)
	}
}
