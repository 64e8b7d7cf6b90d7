package pipeline

import (
	"net/url"
	"strconv"
	"strings"
)

// varSet is the variables a job or workflow sees, in order of precedence:
// later layers win (predefined < global < job < rule < pipeline variables).
type varSet struct {
	list   []Variable
	values map[string]string // raw values by name, the winning layer's
	cache  map[string]string // expanded values
}

func newVarSet(layers ...[]Variable) *varSet {
	s := &varSet{values: map[string]string{}, cache: map[string]string{}}
	for _, layer := range layers {
		for _, v := range layer {
			s.list = append(s.list, v)
			s.values[v.Name] = v.Value
		}
	}
	return s
}

// winner returns the variable of name that takes effect.
func (s *varSet) winner(name string) (Variable, bool) {
	for i := len(s.list) - 1; i >= 0; i-- {
		if s.list[i].Name == name {
			return s.list[i], true
		}
	}
	return Variable{}, false
}

// lookup returns the expanded value of a variable, for rules expressions.
func (s *varSet) lookup(name string) (string, bool) {
	if v, ok := s.cache[name]; ok {
		return v, true
	}
	v, ok := s.winner(name)
	if !ok {
		return "", false
	}
	val := v.Value
	if v.Expand && strings.Contains(val, "$") {
		s.cache[name] = val // a self-reference expands to the raw value
		val = expandWith(val, func(ref string) (string, bool) {
			if ref == name {
				return "", false
			}
			return s.lookup(ref)
		})
	}
	s.cache[name] = val
	return val, true
}

// expand replaces $VAR and ${VAR} in text with their values.
func (s *varSet) expand(text string) string {
	return expandWith(text, s.lookup)
}

// resolved lists each variable once, in the order first defined, with the
// winning layer's value expanded.
func (s *varSet) resolved() []Variable {
	out := make([]Variable, 0, len(s.values))
	seen := make(map[string]bool, len(s.values))
	for _, v := range s.list {
		if seen[v.Name] {
			continue
		}
		seen[v.Name] = true
		w, _ := s.winner(v.Name)
		w.Value, _ = s.lookup(v.Name)
		out = append(out, w)
	}
	return out
}

// expandWith replaces $VAR and ${VAR} references that lookup knows; unknown
// references and $$ (an escaped dollar) are left as written, for the job's
// shell to see.
func expandWith(text string, lookup func(string) (string, bool)) string {
	if !strings.Contains(text, "$") {
		return text
	}
	var b strings.Builder
	for i := 0; i < len(text); {
		c := text[i]
		if c != '$' || i+1 >= len(text) {
			b.WriteByte(c)
			i++
			continue
		}
		if text[i+1] == '$' { // $$ escapes a dollar: leave both for the shell
			b.WriteString("$$")
			i += 2
			continue
		}
		name, end := "", i+1
		if text[i+1] == '{' {
			if j := strings.IndexByte(text[i+2:], '}'); j >= 0 {
				name, end = text[i+2:i+2+j], i+3+j
			}
		} else {
			j := i + 1
			for j < len(text) && isNameByte(text[j], j == i+1) {
				j++
			}
			name, end = text[i+1:j], j
		}
		if v, ok := lookup(name); ok && variableName.MatchString(name) {
			b.WriteString(v)
			i = end
			continue
		}
		b.WriteString(text[i:end])
		if end == i+1 {
			i++
		} else {
			i = end
		}
	}
	return b.String()
}

func isNameByte(c byte, first bool) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || (!first && c >= '0' && c <= '9')
}

// pipelineVariables are the predefined CI_* variables of the run.
func (p *planner) pipelineVariables() []Variable {
	ctx := p.ctx
	var vars []Variable
	set := func(name, value string) {
		vars = append(vars, Variable{Name: name, Value: value})
	}
	set("CI", "true")
	set("GITLAB_CI", "true")
	set("CI_SERVER", "yes")
	set("HANGAR", "true")
	set("CI_PIPELINE_SOURCE", string(ctx.Source))
	set("CI_DEFAULT_BRANCH", ctx.DefaultBranch)
	if ctx.ServerURL != "" {
		set("CI_SERVER_URL", strings.TrimSuffix(ctx.ServerURL, "/"))
		if u, err := url.Parse(ctx.ServerURL); err == nil {
			set("CI_SERVER_HOST", u.Hostname())
		}
		if ctx.ProjectPath != "" {
			set("CI_PROJECT_URL", strings.TrimSuffix(ctx.ServerURL, "/")+"/"+ctx.ProjectPath)
		}
	}
	if ctx.ProjectPath != "" {
		set("CI_PROJECT_PATH", ctx.ProjectPath)
		set("CI_PROJECT_PATH_SLUG", slug(ctx.ProjectPath, 63))
		ns, name := "", ctx.ProjectPath
		if i := strings.LastIndex(ctx.ProjectPath, "/"); i >= 0 {
			ns, name = ctx.ProjectPath[:i], ctx.ProjectPath[i+1:]
		}
		set("CI_PROJECT_NAME", name)
		set("CI_PROJECT_NAMESPACE", ns)
	}
	if ctx.CommitSHA != "" {
		set("CI_COMMIT_SHA", ctx.CommitSHA)
		set("CI_COMMIT_SHORT_SHA", ctx.CommitSHA[:min(8, len(ctx.CommitSHA))])
	}
	if ctx.CommitMessage != "" {
		set("CI_COMMIT_MESSAGE", ctx.CommitMessage)
		title, _, _ := strings.Cut(ctx.CommitMessage, "\n")
		set("CI_COMMIT_TITLE", title)
	}
	ref := ctx.Branch
	switch {
	case ctx.Tag != "":
		ref = ctx.Tag
		set("CI_COMMIT_TAG", ctx.Tag)
	case ctx.Source == SourceMergeRequest && ctx.MergeRequest != nil:
		ref = ctx.MergeRequest.SourceBranch
	case ctx.Branch != "":
		set("CI_COMMIT_BRANCH", ctx.Branch)
	}
	set("CI_COMMIT_REF_NAME", ref)
	set("CI_COMMIT_REF_SLUG", slug(ref, 63))
	if ref != "" && (ref == ctx.DefaultBranch || ctx.Tag != "") {
		set("CI_COMMIT_REF_PROTECTED", "true")
	} else {
		set("CI_COMMIT_REF_PROTECTED", "false")
	}
	if mr := ctx.MergeRequest; mr != nil && ctx.Source == SourceMergeRequest {
		set("CI_MERGE_REQUEST_ID", strconv.Itoa(mr.IID))
		set("CI_MERGE_REQUEST_IID", strconv.Itoa(mr.IID))
		set("CI_MERGE_REQUEST_SOURCE_BRANCH_NAME", mr.SourceBranch)
		set("CI_MERGE_REQUEST_TARGET_BRANCH_NAME", mr.TargetBranch)
		set("CI_MERGE_REQUEST_EVENT_TYPE", "detached")
		if mr.Title != "" {
			set("CI_MERGE_REQUEST_TITLE", mr.Title)
		}
		if len(mr.Labels) > 0 {
			set("CI_MERGE_REQUEST_LABELS", strings.Join(mr.Labels, ","))
		}
		if ctx.ProjectPath != "" {
			set("CI_MERGE_REQUEST_PROJECT_PATH", ctx.ProjectPath)
			set("CI_MERGE_REQUEST_SOURCE_PROJECT_PATH", ctx.ProjectPath)
		}
		if ctx.CommitSHA != "" {
			set("CI_MERGE_REQUEST_SOURCE_BRANCH_SHA", ctx.CommitSHA)
		}
	}
	return vars
}
