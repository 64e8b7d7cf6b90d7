package pipeline

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/hangar-ci/hangar/internal/pipeline/duration"
	"github.com/hangar-ci/hangar/internal/pipeline/expr"
	"github.com/hangar-ci/hangar/internal/suggest"
)

// Keywords allowed in each place of a pipeline file.
var (
	defaultKeys = []string{"after_script", "artifacts", "before_script", "cache", "hooks", "id_tokens",
		"image", "interruptible", "retry", "services", "tags", "timeout"}
	jobKeys = []string{"after_script", "allow_failure", "artifacts", "before_script", "cache", "coverage",
		"dast_configuration", "dependencies", "environment", "except", "extends", "hooks", "id_tokens",
		"identity", "image", "inherit", "interruptible", "manual_confirmation", "needs", "only", "pages",
		"parallel", "publish", "release", "resource_group", "retry", "rules", "script", "secrets",
		"services", "stage", "start_in", "tags", "timeout", "trigger", "type", "variables", "when"}
	ruleKeys         = []string{"if", "changes", "exists", "when", "allow_failure", "variables", "needs", "start_in", "interruptible"}
	workflowRuleKeys = []string{"if", "changes", "exists", "when", "variables", "auto_cancel"}
	jobWhens         = []string{"on_success", "on_failure", "always", "manual", "delayed"}
	ruleWhens        = []string{"on_success", "on_failure", "always", "manual", "delayed", "never"}
	retryReasons     = []string{"always", "unknown_failure", "script_failure", "api_failure",
		"stuck_or_timeout_failure", "runner_system_failure", "runner_unsupported", "stale_schedule",
		"job_execution_timeout", "archived_failure", "unmet_prerequisites", "scheduler_failure",
		"data_integrity_failure"}
)

// maxNeeds is the most needs: a job may have, as on GitLab.
const maxNeeds = 50

var variableName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// decodeConfig checks the resolved top-level mapping and builds the Config.
func decodeConfig(top *node, d *diags) *Config {
	x := decoder{d: d}
	cfg := &Config{}

	stages := top.get("stages")
	if t := top.get("types"); t != nil {
		d.warnf(top.keyPos("types"), "types is deprecated: use stages")
		if stages == nil {
			stages = t
		}
	}
	cfg.Stages = decodeStages(x, stages)
	if v := top.get("variables"); v != nil {
		cfg.Variables = x.variables(v, "variables", true)
	}

	// default:, with the deprecated top-level forms of its keys beneath it.
	def := &node{kind: mapNode, pos: top.pos}
	for _, k := range []string{"image", "services", "cache", "before_script", "after_script"} {
		if v := top.get(k); v != nil {
			d.warnf(top.keyPos(k), "%s at the top level is deprecated: put it under default:", k)
			def = def.with(&node{kind: scalarNode, tag: tagStr, value: k, pos: top.keyPos(k)}, v)
		}
	}
	if dn := top.get("default"); dn != nil && !dn.isNull() && x.mapping(dn, "default", defaultKeys) {
		for i, k := range dn.keys {
			def = def.with(k, dn.vals[i])
		}
	}

	if w := top.get("workflow"); w != nil && !w.isNull() {
		cfg.Workflow = decodeWorkflow(x, w)
	}

	for i, k := range top.keys {
		name, v := k.value, top.vals[i]
		if slices.Contains(reservedKeys, name) {
			continue
		}
		if strings.HasPrefix(name, ".") {
			continue // hidden keys are templates; what uses them is checked
		}
		if v.kind != mapNode {
			d.errorf(k.pos, "%q is neither a keyword nor a job (a job is a mapping with a script)%s", name, suggest.DidYouMean(name, reservedKeys))
			continue
		}
		job := decodeJob(x, name, k.pos, applyDefault(x, v, def))
		cfg.Jobs = append(cfg.Jobs, job)
	}
	if len(cfg.Jobs) == 0 && len(d.errors) == 0 {
		d.errorf(top.pos, "the pipeline has no visible job (jobs whose names start with a dot are hidden)")
	}
	checkStages(cfg, d)
	checkNeeds(cfg, d)
	return cfg
}

func decodeStages(x decoder, n *node) []string {
	stages := []string{".pre"}
	if n == nil || n.isNull() {
		return slices.Clone(defaultStages)
	}
	for _, s := range x.strs(n, "stages") {
		if s != ".pre" && s != ".post" && !slices.Contains(stages, s) {
			stages = append(stages, s)
		}
	}
	return append(stages, ".post")
}

// applyDefault returns job with the default: keys it does not set itself and
// is allowed to inherit (inherit: default).
func applyDefault(x decoder, job, def *node) *node {
	allowed := defaultKeys
	if in := job.get("inherit"); in != nil && in.kind == mapNode {
		if dn := in.get("default"); dn != nil {
			allowed = inheritList(x, dn, "inherit: default", defaultKeys)
		}
	}
	for i, k := range def.keys {
		if job.get(k.value) == nil && (allowed == nil || slices.Contains(allowed, k.value)) {
			job = job.with(k, def.vals[i])
		}
	}
	return job
}

// inheritList reads inherit: default or inherit: variables: true (nil: all),
// false (empty: none) or a list of names.
func inheritList(x decoder, n *node, what string, known []string) []string {
	if n.kind == scalarNode && n.tag == tagBool {
		if x.boolean(n, what) {
			return nil
		}
		return []string{}
	}
	list := x.strs(n, what)
	if known != nil {
		for i, s := range list {
			if !slices.Contains(known, s) {
				x.errorf(n.items[i], "%s: unknown keyword %q%s", what, s, suggest.DidYouMean(s, known))
			}
		}
	}
	if list == nil {
		list = []string{}
	}
	return list
}

func decodeWorkflow(x decoder, w *node) *Workflow {
	if !x.mapping(w, "workflow", []string{"rules", "name", "auto_cancel"}) {
		return nil
	}
	wf := &Workflow{Pos: w.pos}
	if n := w.get("name"); n != nil {
		wf.Name = x.str(n, "workflow: name")
	}
	if r := w.get("rules"); r != nil {
		wf.Rules = decodeRules(x, r, "workflow: rules", workflowRuleKeys)
	}
	return wf
}

// variables reads a variables: block. Values are strings or numbers, or,
// where full is true (global variables), mappings with value, description,
// options and expand.
func (x decoder) variables(n *node, what string, full bool) []Variable {
	if n.isNull() {
		return nil
	}
	if n.kind != mapNode {
		x.errorf(n, "%s must be a mapping of names to values, found %s", what, n.describe())
		return nil
	}
	out := make([]Variable, 0, len(n.keys))
	for i, k := range n.keys {
		v := n.vals[i]
		if !variableName.MatchString(k.value) {
			x.d.errorf(k.pos, "%s: %q is not a valid variable name (letters, digits and _)", what, k.value)
			continue
		}
		vr := Variable{Name: k.value, Expand: true, Pos: k.pos}
		switch {
		case v.kind == scalarNode:
			vr.Value = v.value
		case v.kind == mapNode:
			allowed := []string{"value", "expand"}
			if full {
				allowed = []string{"value", "description", "options", "expand"}
			}
			x.mapping(v, what+": "+k.value, allowed)
			if val := v.get("value"); val != nil {
				vr.Value = x.str(val, what+": "+k.value+": value")
			}
			if e := v.get("expand"); e != nil {
				vr.Expand = x.boolean(e, what+": "+k.value+": expand")
			}
			if desc := v.get("description"); desc != nil {
				vr.Description = x.str(desc, what+": "+k.value+": description")
			}
			if o := v.get("options"); o != nil {
				vr.Options = x.strs(o, what+": "+k.value+": options")
				if len(vr.Options) > 0 && !slices.Contains(vr.Options, vr.Value) {
					x.errorf(o, "%s: %s: value %q must be one of its options", what, k.value, vr.Value)
				}
			}
		default:
			x.errorf(v, "%s: %s must be a string or a mapping with value:, found %s", what, k.value, v.describe())
			continue
		}
		out = append(out, vr)
	}
	return out
}

func decodeRules(x decoder, n *node, what string, keys []string) []*Rule {
	if n.isNull() {
		return []*Rule{}
	}
	if n.kind != seqNode {
		x.errorf(n, "%s must be a list of rules, found %s", what, n.describe())
		return []*Rule{}
	}
	rules := make([]*Rule, 0, len(n.items))
	for _, it := range flatten(n.items, 10) {
		if !x.mapping(it, what, keys) {
			continue
		}
		r := &Rule{Pos: it.pos}
		if c := it.get("if"); c != nil {
			r.If = x.expression(c, what+": if")
		}
		if c := it.get("changes"); c != nil {
			r.Changes = x.pathMatch(c, what+": changes", []string{"paths", "compare_to"})
		}
		if c := it.get("exists"); c != nil {
			r.Exists = x.pathMatch(c, what+": exists", []string{"paths", "project", "ref"})
		}
		if c := it.get("when"); c != nil {
			allowed := ruleWhens
			if slices.Contains(keys, "auto_cancel") { // workflow rules
				allowed = []string{"always", "never"}
			}
			r.When = When(x.oneOf(c, what+": when", allowed...))
		}
		if c := it.get("start_in"); c != nil {
			r.StartIn = x.duration(c, what+": start_in")
			if r.When != Delayed {
				x.errorf(c, "%s: start_in needs when: delayed", what)
			}
		} else if r.When == Delayed {
			x.errorf(it, "%s: when: delayed needs start_in", what)
		}
		if c := it.get("allow_failure"); c != nil {
			r.AllowFailure = x.boolPtr(c, what+": allow_failure")
		}
		if c := it.get("interruptible"); c != nil {
			r.Interruptible = x.boolPtr(c, what+": interruptible")
		}
		if c := it.get("variables"); c != nil {
			r.Variables = x.variables(c, what+": variables", false)
		}
		if c := it.get("needs"); c != nil {
			r.Needs = x.needs(c, what+": needs")
		}
		rules = append(rules, r)
	}
	return rules
}

// flatten splices nested lists (what !reference leaves inside a list) into
// one list, down to depth levels.
func flatten(items []*node, depth int) []*node {
	var out []*node
	for _, it := range items {
		if it.kind == seqNode && depth > 0 {
			out = append(out, flatten(it.items, depth-1)...)
			continue
		}
		out = append(out, it)
	}
	return out
}

// expression parses a rules:if or only:variables expression; its errors
// point at the column inside the expression when the string is on one line.
func (x decoder) expression(n *node, what string) *expr.Expr {
	src := x.str(n, what)
	if n.kind != scalarNode {
		return nil
	}
	e, err := expr.Parse(src)
	if err != nil {
		pos := n.pos
		var se *expr.SyntaxError
		if errors.As(err, &se) {
			if off := sourceOffset(n, src, se.Offset); off >= 0 {
				pos.Column += off
			}
			x.d.errorf(pos, "%s: invalid expression: %s", what, se.Msg)
		} else {
			x.d.errorf(pos, "%s: invalid expression: %v", what, err)
		}
		return nil
	}
	return e
}

// sourceOffset maps a byte offset in an expression to a column offset from
// the scalar's position (which, for a quoted scalar, is its opening quote).
// It returns -1 when the scalar spans lines or holds escapes, where no exact
// column can be given.
func sourceOffset(n *node, src string, off int) int {
	if strings.ContainsAny(src, "\n\\") || off > len(src) {
		return -1
	}
	col := len([]rune(src[:off]))
	if n.quoted {
		col++
	}
	return col
}

func (x decoder) pathMatch(n *node, what string, keys []string) *PathMatch {
	pm := &PathMatch{Pos: n.pos}
	if n.kind == mapNode {
		x.mapping(n, what, keys)
		if p := n.get("paths"); p != nil {
			pm.Paths = x.strs(p, what+": paths")
		} else {
			x.errorf(n, "%s needs paths:", what)
		}
		if c := n.get("compare_to"); c != nil {
			pm.CompareTo = x.str(c, what+": compare_to")
		}
		if c := n.get("project"); c != nil {
			pm.Project = x.str(c, what+": project")
		}
		if c := n.get("ref"); c != nil {
			pm.Ref = x.str(c, what+": ref")
		}
		return pm
	}
	pm.Paths = x.strs(n, what)
	return pm
}

// needs reads needs:. Plain names need the job's artifacts; mappings may say
// otherwise, make the need optional, or pick parallel:matrix instances.
func (x decoder) needs(n *node, what string) []Need {
	if n.isNull() {
		return []Need{}
	}
	var items []*node
	switch n.kind {
	case seqNode:
		items = n.items
	case scalarNode:
		items = []*node{n}
	default:
		x.errorf(n, "%s must be a list of job names, found %s", what, n.describe())
		return []Need{}
	}
	if len(items) > maxNeeds {
		x.errorf(n, "%s lists %d jobs; a job may need at most %d", what, len(items), maxNeeds)
	}
	out := make([]Need, 0, len(items))
	for _, it := range items {
		need := Need{Artifacts: true, Pos: it.pos}
		switch {
		case it.kind == scalarNode && !it.isNull():
			need.Job = it.value
		case it.kind == mapNode:
			x.mapping(it, what, []string{"job", "artifacts", "optional", "parallel", "project", "ref", "pipeline"})
			if j := it.get("job"); j != nil {
				need.Job = x.str(j, what+": job")
			} else if it.get("pipeline") == nil {
				x.errorf(it, "%s: a need written as a mapping needs job:", what)
			}
			if a := it.get("artifacts"); a != nil {
				need.Artifacts = x.boolean(a, what+": artifacts")
			}
			if o := it.get("optional"); o != nil {
				need.Optional = x.boolean(o, what+": optional")
			}
			if p := it.get("project"); p != nil {
				need.Project = x.str(p, what+": project")
			}
			if r := it.get("ref"); r != nil {
				need.Ref = x.str(r, what+": ref")
			}
			if p := it.get("pipeline"); p != nil {
				need.Pipeline = x.str(p, what+": pipeline")
			}
			if p := it.get("parallel"); p != nil {
				if x.mapping(p, what+": parallel", []string{"matrix"}) {
					if m := p.get("matrix"); m != nil {
						par := x.matrix(m, what+": parallel: matrix")
						for i, row := range par.Matrix {
							need.Matrix = append(need.Matrix, expandMatrixRow(row, par.MatrixKeys[i])...)
						}
					}
				}
			}
		default:
			x.errorf(it, "%s must list job names, found %s", what, it.describe())
			continue
		}
		out = append(out, need)
	}
	return out
}

func decodeJob(x decoder, name string, pos Position, n *node) *Job {
	job := &Job{Name: name, Pos: pos, Stage: DefaultStage, StagePos: pos, When: OnSuccess}
	checkKeys(x.d, n, name, jobKeys)
	at := func(k string) string { return name + ": " + k }
	get := n.get

	if s := get("stage"); s != nil {
		job.Stage, job.StagePos = x.str(s, at("stage")), s.pos
	} else if s := get("type"); s != nil {
		x.d.warnf(n.keyPos("type"), "%s: type is deprecated: use stage", name)
		job.Stage, job.StagePos = x.str(s, at("type")), s.pos
	}
	if v := get("script"); v != nil {
		job.Script = x.script(v, at("script"))
	}
	if v := get("before_script"); v != nil {
		job.BeforeScript = x.script(v, at("before_script"))
	}
	if v := get("after_script"); v != nil {
		job.AfterScript = x.script(v, at("after_script"))
	}
	if v := get("hooks"); v != nil && x.mapping(v, at("hooks"), []string{"pre_get_sources_script"}) {
		if s := v.get("pre_get_sources_script"); s != nil {
			job.HooksPreGetSources = x.script(s, at("hooks: pre_get_sources_script"))
		}
	}
	if v := get("image"); v != nil {
		job.Image = x.image(v, at("image"), false)
	}
	if v := get("services"); v != nil {
		job.Services = x.services(v, at("services"))
	}
	if v := get("variables"); v != nil {
		job.Variables = x.variables(v, at("variables"), false)
	}
	if v := get("inherit"); v != nil && x.mapping(v, at("inherit"), []string{"default", "variables"}) {
		if dn := v.get("default"); dn != nil {
			job.Inherit.Default = inheritList(x, dn, at("inherit: default"), defaultKeys)
		}
		if vn := v.get("variables"); vn != nil {
			job.Inherit.Variables = inheritList(x, vn, at("inherit: variables"), nil)
		}
	}
	if v := get("rules"); v != nil {
		job.Rules = decodeRules(x, v, at("rules"), ruleKeys)
		for _, k := range []string{"only", "except"} {
			if get(k) != nil {
				x.d.errorf(n.keyPos(k), "%s: %s cannot be used with rules", name, k)
			}
		}
	}
	if v := get("only"); v != nil {
		job.Only = x.refFilter(v, at("only"))
	}
	if v := get("except"); v != nil {
		job.Except = x.refFilter(v, at("except"))
	}
	if v := get("when"); v != nil {
		job.When, job.WhenSet = When(x.oneOf(v, at("when"), jobWhens...)), true
		if job.When == "" {
			job.When = OnSuccess
		}
	}
	if v := get("start_in"); v != nil {
		job.StartIn = x.duration(v, at("start_in"))
		if job.Rules != nil {
			x.d.errorf(n.keyPos("start_in"), "%s: start_in cannot be used with rules (use rules: start_in)", name)
		} else if job.When != Delayed {
			x.d.errorf(n.keyPos("start_in"), "%s: start_in needs when: delayed", name)
		}
	} else if job.When == Delayed {
		x.d.errorf(n.keyPos("when"), "%s: when: delayed needs start_in", name)
	}
	if v := get("allow_failure"); v != nil {
		job.AllowFailure = x.allowFailure(v, at("allow_failure"))
	}
	if v := get("needs"); v != nil {
		job.Needs = x.needs(v, at("needs"))
	}
	if v := get("dependencies"); v != nil {
		job.Dependencies, job.DependenciesSet = x.strs(v, at("dependencies")), true
	}
	if v := get("parallel"); v != nil {
		job.Parallel = x.parallel(v, at("parallel"))
	}
	if v := get("retry"); v != nil {
		job.Retry = x.retry(v, at("retry"))
	}
	if v := get("timeout"); v != nil {
		job.Timeout = x.duration(v, at("timeout"))
	}
	if v := get("artifacts"); v != nil {
		job.Artifacts = x.artifacts(v, at("artifacts"))
	}
	if v := get("cache"); v != nil {
		job.Cache = x.caches(v, at("cache"))
	}
	if v := get("environment"); v != nil {
		job.Environment = x.environment(v, at("environment"))
	}
	if v := get("tags"); v != nil {
		job.Tags = x.strs(v, at("tags"))
	}
	if v := get("interruptible"); v != nil {
		job.Interruptible = x.boolPtr(v, at("interruptible"))
	}
	if v := get("resource_group"); v != nil {
		job.ResourceGroup = x.str(v, at("resource_group"))
	}
	if v := get("coverage"); v != nil {
		job.Coverage = x.coverage(v, at("coverage"))
	}
	if v := get("trigger"); v != nil {
		job.Trigger = x.trigger(v, at("trigger"))
	}
	if v := get("release"); v != nil {
		job.Release = x.release(v, at("release"))
	}
	if v := get("pages"); v != nil {
		job.Pages = x.pages(v, at("pages"), job)
	}
	if v := get("publish"); v != nil {
		job.PagesPublish = x.str(v, at("publish"))
	}
	if v := get("id_tokens"); v != nil {
		job.IDTokens = x.idTokens(v, at("id_tokens"))
	}
	if v := get("secrets"); v != nil {
		job.Secrets = x.secrets(v, at("secrets"))
	}
	if v := get("identity"); v != nil {
		job.Identity = x.oneOf(v, at("identity"), "google_cloud")
	}
	if v := get("manual_confirmation"); v != nil {
		job.ManualConfirmation = x.str(v, at("manual_confirmation"))
	}
	if v := get("dast_configuration"); v != nil {
		x.mapping(v, at("dast_configuration"), []string{"site_profile", "scanner_profile"})
	}
	if job.Trigger == nil && job.Script == nil {
		x.d.warnf(pos, "%s has no script: it will run nothing", name)
	}
	if job.Trigger != nil && job.Script != nil {
		x.d.errorf(n.keyPos("trigger"), "%s: a trigger job cannot have a script", name)
	}
	return job
}

func (x decoder) image(n *node, what string, service bool) *Image {
	img := &Image{}
	if n.kind == scalarNode {
		img.Name = x.str(n, what)
		return img
	}
	keys := []string{"name", "entrypoint", "pull_policy", "docker", "kubernetes"}
	if service {
		keys = append(keys, "alias", "command", "variables")
	}
	if !x.mapping(n, what, keys) {
		return img
	}
	if v := n.get("name"); v != nil {
		img.Name = x.str(v, what+": name")
	} else {
		x.errorf(n, "%s needs name:", what)
	}
	if v := n.get("entrypoint"); v != nil {
		img.Entrypoint = x.strs(v, what+": entrypoint")
	}
	if v := n.get("pull_policy"); v != nil {
		img.PullPolicy = x.strs(v, what+": pull_policy")
		for _, p := range img.PullPolicy {
			if !slices.Contains([]string{"always", "if-not-present", "never"}, p) {
				x.errorf(v, "%s: pull_policy must be always, if-not-present or never, found %q", what, p)
			}
		}
	}
	if v := n.get("docker"); v != nil && x.mapping(v, what+": docker", []string{"platform", "user"}) {
		if p := v.get("platform"); p != nil {
			img.Platform = x.str(p, what+": docker: platform")
		}
		if u := v.get("user"); u != nil {
			img.User = x.str(u, what+": docker: user")
		}
	}
	if v := n.get("kubernetes"); v != nil && x.mapping(v, what+": kubernetes", []string{"user"}) {
		if u := v.get("user"); u != nil {
			img.User = x.str(u, what+": kubernetes: user")
		}
	}
	return img
}

func (x decoder) services(n *node, what string) []Service {
	if n.isNull() {
		return nil
	}
	if n.kind != seqNode {
		x.errorf(n, "%s must be a list, found %s", what, n.describe())
		return nil
	}
	var out []Service
	for _, it := range n.items {
		s := Service{Image: *x.image(it, what, true)}
		if it.kind == mapNode {
			if v := it.get("alias"); v != nil {
				s.Alias = x.str(v, what+": alias")
			}
			if v := it.get("command"); v != nil {
				s.Command = x.strs(v, what+": command")
			}
			if v := it.get("variables"); v != nil {
				s.Variables = x.variables(v, what+": variables", false)
			}
		}
		out = append(out, s)
	}
	return out
}

func (x decoder) refFilter(n *node, what string) *RefFilter {
	f := &RefFilter{Pos: n.pos}
	if n.kind == mapNode {
		x.refFilterMap(f, n, what)
	} else {
		f.Refs = x.strs(n, what)
	}
	for _, r := range f.Refs {
		if pattern, _, _ := strings.Cut(r, "@"); strings.HasPrefix(pattern, "/") {
			if _, err := compileSlashRegexp(pattern); err != nil {
				x.errorf(n, "%s: %q is not a valid regular expression: %v", what, r, err)
			}
		}
	}
	return f
}

// refFilterMap reads the mapping form of only:/except:.
func (x decoder) refFilterMap(f *RefFilter, n *node, what string) {
	x.mapping(n, what, []string{"refs", "variables", "changes", "kubernetes"})
	if v := n.get("refs"); v != nil {
		f.Refs = x.strs(v, what+": refs")
	}
	if v := n.get("variables"); v != nil {
		var items []*node
		if v.kind == seqNode {
			items = v.items
		} else {
			items = []*node{v}
		}
		for _, it := range items {
			if e := x.expression(it, what+": variables"); e != nil {
				f.Variables = append(f.Variables, e)
			}
		}
	}
	if v := n.get("changes"); v != nil {
		if v.kind == mapNode {
			f.Changes = x.pathMatch(v, what+": changes", []string{"paths", "compare_to"}).Paths
		} else {
			f.Changes = x.strs(v, what+": changes")
		}
	}
	if v := n.get("kubernetes"); v != nil {
		f.Kubernetes = x.oneOf(v, what+": kubernetes", "active")
	}
}

func (x decoder) allowFailure(n *node, what string) AllowFailure {
	af := AllowFailure{Set: true}
	if n.kind == mapNode {
		x.mapping(n, what, []string{"exit_codes"})
		if c := n.get("exit_codes"); c != nil {
			af.ExitCodes = x.integers(c, what+": exit_codes")
			af.Value = true
		}
		return af
	}
	af.Value = x.boolean(n, what)
	return af
}

func (x decoder) parallel(n *node, what string) *Parallel {
	if n.kind == scalarNode {
		return &Parallel{Count: x.integer(n, what, 1, 200), Pos: n.pos}
	}
	if !x.mapping(n, what, []string{"matrix"}) {
		return nil
	}
	m := n.get("matrix")
	if m == nil {
		x.errorf(n, "%s needs matrix:", what)
		return nil
	}
	p := x.matrix(m, what+": matrix")
	p.Pos = n.pos
	total := 0
	for i, row := range p.Matrix {
		total += len(expandMatrixRow(row, p.MatrixKeys[i]))
	}
	if total > 200 {
		x.errorf(m, "%s makes %d jobs; the most is 200", what, total)
	}
	return p
}

// matrix reads a list of mappings from variable names to a value or a list
// of values.
func (x decoder) matrix(n *node, what string) *Parallel {
	p := &Parallel{}
	if n.kind != seqNode {
		x.errorf(n, "%s must be a list of mappings, found %s", what, n.describe())
		return p
	}
	for _, it := range n.items {
		if it.kind != mapNode {
			x.errorf(it, "%s must be a list of mappings, found %s in it", what, it.describe())
			continue
		}
		row := map[string][]string{}
		var keys []string
		for i, k := range it.keys {
			if !variableName.MatchString(k.value) {
				x.d.errorf(k.pos, "%s: %q is not a valid variable name", what, k.value)
				continue
			}
			row[k.value] = x.strs(it.vals[i], what+": "+k.value)
			keys = append(keys, k.value)
		}
		p.Matrix = append(p.Matrix, row)
		p.MatrixKeys = append(p.MatrixKeys, keys)
	}
	return p
}

func (x decoder) retry(n *node, what string) Retry {
	if n.kind == scalarNode {
		return Retry{Max: x.integer(n, what, 0, 2)}
	}
	var r Retry
	if !x.mapping(n, what, []string{"max", "when", "exit_codes"}) {
		return r
	}
	if v := n.get("max"); v != nil {
		r.Max = x.integer(v, what+": max", 0, 2)
	}
	if v := n.get("when"); v != nil {
		r.When = x.strs(v, what+": when")
		for _, w := range r.When {
			if !slices.Contains(retryReasons, w) {
				x.errorf(v, "%s: when: unknown failure reason %q%s", what, w, suggest.DidYouMean(w, retryReasons))
			}
		}
	}
	if v := n.get("exit_codes"); v != nil {
		r.ExitCodes = x.integers(v, what+": exit_codes")
	}
	return r
}

func (x decoder) artifacts(n *node, what string) *Artifacts {
	a := &Artifacts{When: OnSuccess}
	if n.isNull() || !x.mapping(n, what, []string{"paths", "exclude", "expire_in", "expose_as", "name",
		"public", "access", "reports", "untracked", "when"}) {
		return a
	}
	if v := n.get("paths"); v != nil {
		a.Paths = x.strs(v, what+": paths")
	}
	if v := n.get("exclude"); v != nil {
		a.Exclude = x.strs(v, what+": exclude")
	}
	if v := n.get("name"); v != nil {
		a.Name = x.str(v, what+": name")
	}
	if v := n.get("expose_as"); v != nil {
		a.ExposeAs = x.str(v, what+": expose_as")
	}
	if v := n.get("untracked"); v != nil {
		a.Untracked = x.boolean(v, what+": untracked")
	}
	if v := n.get("public"); v != nil {
		a.Public = x.boolPtr(v, what+": public")
	}
	if v := n.get("access"); v != nil {
		a.Access = x.oneOf(v, what+": access", "all", "developer", "maintainer", "none")
	}
	if v := n.get("when"); v != nil {
		a.When = When(x.oneOf(v, what+": when", "on_success", "on_failure", "always"))
	}
	if v := n.get("expire_in"); v != nil {
		s := x.str(v, what+": expire_in")
		if s != "" {
			d, never, err := duration.ParseExpiry(s)
			if err != nil {
				x.errorf(v, "%s: expire_in: %q is not a duration such as \"1 week\" or never: %v", what, s, err)
			}
			a.ExpireIn, a.Never = d, never
		}
	}
	if v := n.get("reports"); v != nil && !v.isNull() && x.mapping(v, what+": reports", reportKinds) {
		a.Reports = map[string][]string{}
		for i, k := range v.keys {
			rv := v.vals[i]
			if k.value == "coverage_report" {
				if x.mapping(rv, what+": reports: coverage_report", []string{"coverage_format", "path"}) {
					cr := &CoverageReport{}
					if f := rv.get("coverage_format"); f != nil {
						cr.Format = x.oneOf(f, what+": reports: coverage_report: coverage_format", "cobertura", "jacoco")
					}
					if p := rv.get("path"); p != nil {
						cr.Path = x.str(p, what+": reports: coverage_report: path")
					}
					a.CoverageReport = cr
				}
				continue
			}
			a.Reports[k.value] = x.strs(rv, what+": reports: "+k.value)
		}
	}
	return a
}

// reportKinds are the artifacts:reports types GitLab knows.
var reportKinds = []string{"accessibility", "annotations", "api_fuzzing", "browser_performance", "coverage_report",
	"codequality", "container_scanning", "coverage_fuzzing", "cyclonedx", "dast", "dependency_scanning",
	"dotenv", "junit", "license_scanning", "load_performance", "metrics", "requirements",
	"repository_xray", "sast", "secret_detection", "terraform", "performance", "cobertura"}

func (x decoder) caches(n *node, what string) []Cache {
	if n.isNull() {
		return nil
	}
	items := []*node{n}
	if n.kind == seqNode {
		items = n.items
		if len(items) > 4 {
			x.errorf(n, "%s lists %d caches; a job may have at most 4", what, len(items))
		}
	}
	var out []Cache
	for _, it := range items {
		if !x.mapping(it, what, []string{"key", "paths", "untracked", "unprotect", "when", "policy", "fallback_keys"}) {
			continue
		}
		c := Cache{Key: "default", When: OnSuccess, Policy: "pull-push"}
		if v := it.get("key"); v != nil {
			if v.kind == mapNode {
				x.mapping(v, what+": key", []string{"files", "prefix"})
				c.Key = ""
				if f := v.get("files"); f != nil {
					c.KeyFiles = x.strs(f, what+": key: files")
					if len(c.KeyFiles) > 2 {
						x.errorf(f, "%s: key: files lists %d files; the most is 2", what, len(c.KeyFiles))
					}
				} else {
					x.errorf(v, "%s: key needs files:", what)
				}
				if p := v.get("prefix"); p != nil {
					c.KeyPrefix = x.str(p, what+": key: prefix")
				}
			} else {
				c.Key = x.str(v, what+": key")
				if strings.Contains(c.Key, "/") || c.Key == "." || c.Key == ".." {
					x.errorf(v, "%s: key %q cannot contain / or be . or ..", what, c.Key)
				}
			}
		}
		if v := it.get("paths"); v != nil {
			c.Paths = x.strs(v, what+": paths")
		}
		if v := it.get("untracked"); v != nil {
			c.Untracked = x.boolean(v, what+": untracked")
		}
		if v := it.get("unprotect"); v != nil {
			c.Unprotect = x.boolean(v, what+": unprotect")
		}
		if v := it.get("when"); v != nil {
			c.When = When(x.oneOf(v, what+": when", "on_success", "on_failure", "always"))
		}
		if v := it.get("policy"); v != nil {
			c.Policy = x.str(v, what+": policy")
			if !strings.Contains(c.Policy, "$") && !slices.Contains([]string{"pull", "push", "pull-push"}, c.Policy) {
				x.errorf(v, "%s: policy must be pull, push or pull-push, found %q", what, c.Policy)
			}
		}
		if v := it.get("fallback_keys"); v != nil {
			c.FallbackKeys = x.strs(v, what+": fallback_keys")
		}
		out = append(out, c)
	}
	return out
}

func (x decoder) environment(n *node, what string) *Environment {
	env := &Environment{Action: "start"}
	if n.kind == scalarNode {
		env.Name = x.str(n, what)
		return env
	}
	if !x.mapping(n, what, []string{"name", "url", "action", "on_stop", "auto_stop_in", "deployment_tier", "kubernetes"}) {
		return env
	}
	if v := n.get("name"); v != nil {
		env.Name = x.str(v, what+": name")
	} else {
		x.errorf(n, "%s needs name:", what)
	}
	if v := n.get("url"); v != nil {
		env.URL = x.str(v, what+": url")
	}
	if v := n.get("action"); v != nil {
		env.Action = x.oneOf(v, what+": action", "start", "prepare", "stop", "verify", "access")
	}
	if v := n.get("on_stop"); v != nil {
		env.OnStop = x.str(v, what+": on_stop")
	}
	if v := n.get("auto_stop_in"); v != nil {
		if s := x.str(v, what+": auto_stop_in"); s != "" {
			d, never, err := duration.ParseExpiry(s)
			if err != nil {
				x.errorf(v, "%s: auto_stop_in: %q is not a duration such as \"1 day\" or never: %v", what, s, err)
			}
			if !never {
				env.AutoStopIn = d
			}
		}
	}
	if v := n.get("deployment_tier"); v != nil {
		env.DeploymentTier = x.oneOf(v, what+": deployment_tier", "production", "staging", "testing", "development", "other")
	}
	if v := n.get("kubernetes"); v != nil && x.mapping(v, what+": kubernetes", []string{"namespace", "agent", "flux_resource_path", "dashboard"}) {
		if ns := v.get("namespace"); ns != nil {
			env.Namespace = x.str(ns, what+": kubernetes: namespace")
		}
	}
	return env
}

func (x decoder) coverage(n *node, what string) string {
	s := x.str(n, what)
	if len(s) < 2 || s[0] != '/' || s[len(s)-1] != '/' {
		x.errorf(n, "%s must be a regular expression written as /pattern/, found %q", what, s)
		return s
	}
	if _, err := compileSlashRegexp(s); err != nil {
		x.errorf(n, "%s: %q is not a valid regular expression: %v", what, s, err)
	}
	return s
}

func (x decoder) trigger(n *node, what string) *Trigger {
	t := &Trigger{}
	if n.kind == scalarNode {
		t.Project = x.str(n, what)
		return t
	}
	if !x.mapping(n, what, []string{"project", "branch", "strategy", "include", "forward", "inputs"}) {
		return t
	}
	if v := n.get("project"); v != nil {
		t.Project = x.str(v, what+": project")
	}
	if v := n.get("branch"); v != nil {
		t.Branch = x.str(v, what+": branch")
	}
	if v := n.get("strategy"); v != nil {
		t.Strategy = x.oneOf(v, what+": strategy", "depend", "mirror")
	}
	if v := n.get("include"); v != nil {
		items := []*node{v}
		if v.kind == seqNode {
			items = v.items
		}
		for _, it := range items {
			switch {
			case it.kind == scalarNode:
				t.Include = append(t.Include, x.str(it, what+": include"))
			case it.kind == mapNode:
				x.mapping(it, what+": include", []string{"local", "template", "artifact", "job", "project", "file", "ref", "inputs", "remote", "component"})
				if l := it.get("local"); l != nil {
					t.Include = append(t.Include, x.str(l, what+": include: local"))
				}
			default:
				x.errorf(it, "%s: include must list files, found %s", what, it.describe())
			}
		}
	}
	if v := n.get("forward"); v != nil && x.mapping(v, what+": forward", []string{"yaml_variables", "pipeline_variables"}) {
		t.ForwardYAMLVariables = true
		if f := v.get("yaml_variables"); f != nil {
			t.ForwardYAMLVariables = x.boolean(f, what+": forward: yaml_variables")
		}
		if f := v.get("pipeline_variables"); f != nil {
			t.ForwardPipelineVariables = x.boolean(f, what+": forward: pipeline_variables")
		}
	}
	if t.Project == "" && t.Include == nil {
		x.errorf(n, "%s needs project: or include:", what)
	}
	return t
}

func (x decoder) release(n *node, what string) *Release {
	r := &Release{}
	if !x.mapping(n, what, []string{"tag_name", "tag_message", "name", "description", "ref", "milestones", "released_at", "assets"}) {
		return r
	}
	fields := map[string]*string{"tag_name": &r.TagName, "tag_message": &r.TagMessage, "name": &r.Name,
		"description": &r.Description, "ref": &r.Ref, "released_at": &r.ReleasedAt}
	for k, dst := range fields {
		if v := n.get(k); v != nil {
			*dst = x.str(v, what+": "+k)
		}
	}
	if r.TagName == "" {
		x.errorf(n, "%s needs tag_name:", what)
	}
	if v := n.get("milestones"); v != nil {
		r.Milestones = x.strs(v, what+": milestones")
	}
	if v := n.get("assets"); v != nil && x.mapping(v, what+": assets", []string{"links"}) {
		if links := v.get("links"); links != nil && links.kind == seqNode {
			for _, l := range links.items {
				if !x.mapping(l, what+": assets: links", []string{"name", "url", "filepath", "direct_asset_path", "link_type"}) {
					continue
				}
				var link ReleaseLink
				for k, dst := range map[string]*string{"name": &link.Name, "url": &link.URL, "filepath": &link.Filepath,
					"direct_asset_path": &link.DirectAssetPath, "link_type": &link.LinkType} {
					if v := l.get(k); v != nil {
						*dst = x.str(v, what+": assets: links: "+k)
					}
				}
				r.Links = append(r.Links, link)
			}
		}
	}
	return r
}

func (x decoder) pages(n *node, what string, job *Job) bool {
	if n.kind == scalarNode {
		return x.boolean(n, what)
	}
	if x.mapping(n, what, []string{"publish", "path_prefix", "expire_in"}) {
		if p := n.get("publish"); p != nil {
			job.PagesPublish = x.str(p, what+": publish")
		}
	}
	return true
}

func (x decoder) idTokens(n *node, what string) map[string]IDToken {
	if n.kind != mapNode {
		x.errorf(n, "%s must be a mapping, found %s", what, n.describe())
		return nil
	}
	out := map[string]IDToken{}
	for i, k := range n.keys {
		v := n.vals[i]
		if !x.mapping(v, what+": "+k.value, []string{"aud"}) {
			continue
		}
		var tok IDToken
		if a := v.get("aud"); a != nil {
			tok.Aud = x.strs(a, what+": "+k.value+": aud")
		} else {
			x.errorf(v, "%s: %s needs aud:", what, k.value)
		}
		out[k.value] = tok
	}
	return out
}

func (x decoder) secrets(n *node, what string) map[string]Secret {
	if n.kind != mapNode {
		x.errorf(n, "%s must be a mapping, found %s", what, n.describe())
		return nil
	}
	providers := []string{"vault", "gcp_secret_manager", "azure_key_vault", "aws_secrets_manager", "akeyless", "gitlab_secrets_manager"}
	out := map[string]Secret{}
	for i, k := range n.keys {
		v := n.vals[i]
		at := what + ": " + k.value
		if !x.mapping(v, at, append([]string{"file", "token"}, providers...)) {
			continue
		}
		s := Secret{File: true}
		for _, p := range providers {
			pv := v.get(p)
			if pv == nil {
				continue
			}
			s.Provider = p
			if pv.kind == scalarNode {
				s.Path = x.str(pv, at+": "+p)
				continue
			}
			x.mapping(pv, at+": "+p, []string{"engine", "path", "field", "name", "version", "secret_id", "region", "role_arn", "role_session_name"})
			if e := pv.get("engine"); e != nil && x.mapping(e, at+": "+p+": engine", []string{"name", "path"}) {
				if en := e.get("name"); en != nil {
					s.Engine = x.str(en, at+": "+p+": engine: name")
				}
			}
			for key, dst := range map[string]*string{"path": &s.Path, "name": &s.Path, "secret_id": &s.Path, "field": &s.Field, "version": &s.Version} {
				if f := pv.get(key); f != nil {
					*dst = x.str(f, at+": "+p+": "+key)
				}
			}
		}
		if s.Provider == "" {
			x.errorf(v, "%s needs a secrets provider (%s)", at, strings.Join(providers, ", "))
		}
		if f := v.get("file"); f != nil {
			s.File = x.boolean(f, at+": file")
		}
		if t := v.get("token"); t != nil {
			s.Token = x.str(t, at+": token")
		}
		out[k.value] = s
	}
	return out
}

// compileSlashRegexp compiles a /pattern/flags regular expression.
func compileSlashRegexp(s string) (*regexp.Regexp, error) {
	end := strings.LastIndex(s, "/")
	if len(s) < 2 || s[0] != '/' || end == 0 {
		return nil, fmt.Errorf("%q is not written as /pattern/", s)
	}
	pattern, flags := s[1:end], s[end+1:]
	prefix := ""
	for _, f := range flags {
		switch f {
		case 'i':
			prefix += "i"
		case 'm':
			prefix += "s"
		case 'x':
		default:
			return nil, fmt.Errorf("unknown flag %q", f)
		}
	}
	if prefix != "" {
		pattern = "(?" + prefix + ")" + pattern
	}
	return regexp.Compile(rubyAnchors(pattern))
}

// rubyAnchors rewrites Ruby's \Z (end of text, or before a final newline),
// which GitLab accepts in only/except refs and RE2 lacks, as (?:\n?\z).
func rubyAnchors(pattern string) string {
	if !strings.Contains(pattern, `\Z`) {
		return pattern
	}
	var b strings.Builder
	for i := 0; i < len(pattern); i++ {
		if pattern[i] == '\\' && i+1 < len(pattern) {
			if pattern[i+1] == 'Z' {
				b.WriteString(`(?:\n?\z)`)
			} else {
				b.WriteString(pattern[i : i+2])
			}
			i++
			continue
		}
		b.WriteByte(pattern[i])
	}
	return b.String()
}
