package pipeline

import (
	"fmt"
	"io/fs"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bmatcuk/doublestar/v4"
)

// Source is what started a pipeline: the value of CI_PIPELINE_SOURCE.
type Source string

// The pipeline sources Hangar plans for.
const (
	SourcePush                Source = "push"
	SourceMergeRequest        Source = "merge_request_event"
	SourceWeb                 Source = "web"
	SourceAPI                 Source = "api"
	SourceSchedule            Source = "schedule"
	SourceTrigger             Source = "trigger"
	SourcePipeline            Source = "pipeline"
	SourceParentPipeline      Source = "parent_pipeline"
	SourceExternalPullRequest Source = "external_pull_request_event"
	SourceChat                Source = "chat"
)

// Sources lists the valid pipeline sources.
var Sources = []Source{SourcePush, SourceMergeRequest, SourceWeb, SourceAPI, SourceSchedule,
	SourceTrigger, SourcePipeline, SourceParentPipeline, SourceExternalPullRequest, SourceChat}

// MergeRequest describes the merge request of a merge_request_event pipeline.
type MergeRequest struct {
	IID          int
	SourceBranch string
	TargetBranch string
	Title        string
	Labels       []string
}

// Context is what a pipeline run is for: the event, the ref, the changes.
type Context struct {
	Source Source
	// Branch or Tag names the ref of the pipeline; for a merge request
	// pipeline both are empty and MergeRequest is set.
	Branch        string
	Tag           string
	DefaultBranch string
	MergeRequest  *MergeRequest
	// ProjectPath is the project's namespace/name, used by only: refs@path
	// and for CI_PROJECT_* variables.
	ProjectPath string
	// ServerURL is the address of the forge (https://gitlab.example.com),
	// for CI_SERVER_* and CI_PROJECT_URL.
	ServerURL     string
	CommitSHA     string
	CommitMessage string
	// Changed lists the paths the push or merge request changed. nil means
	// unknown, and then changes: rules match, as GitLab does for new
	// branches, tags and sources other than push and merge requests.
	Changed []string
	// Files is the repository tree that exists: rules look in; nil means
	// no file exists.
	Files fs.FS
	// Variables are pipeline variables (given at run time, by a trigger or
	// the API); they win over every variable the file defines.
	Variables []Variable
}

// Plan is what one pipeline run holds: the jobs GitLab would create.
type Plan struct {
	// Created is false when workflow: rules or the job rules leave no
	// pipeline to run; Reason then says why.
	Created bool
	Reason  string
	// Name is workflow: name with variables expanded.
	Name string
	// Stages are the stages that hold at least one job, in order.
	Stages []string
	// Jobs are the created jobs, by stage and then in file order.
	Jobs []*PlannedJob
}

// PlannedJob is one job of a pipeline run: a Job of the file with rules
// applied, or one instance of a parallel job.
type PlannedJob struct {
	// Name is the job's name in the pipeline ("unit 1/2", "deploy: [eu]").
	Name string
	// Job is the definition this job comes from.
	Job   *Job
	Stage string
	When  When
	// StartIn is the delay of a when: delayed job.
	StartIn               time.Duration
	AllowFailure          bool
	AllowFailureExitCodes []int
	// Needs is nil when the job waits for its earlier stages, and lists the
	// jobs (by planned name) it waits for otherwise.
	Needs []Need
	// Dependencies are the jobs whose artifacts the job downloads.
	Dependencies []string
	Tags         []string
	// Variables are every variable the job sees, predefined ones included,
	// each name once, values expanded.
	Variables     []Variable
	Interruptible bool
	// NodeIndex and NodeTotal number the instances of a parallel job.
	NodeIndex, NodeTotal int
}

// Var returns the value of variable name as the job sees it.
func (j *PlannedJob) Var(name string) (string, bool) {
	for i := len(j.Variables) - 1; i >= 0; i-- {
		if j.Variables[i].Name == name {
			return j.Variables[i].Value, true
		}
	}
	return "", false
}

// Expand replaces $VAR and ${VAR} in text with the values of the job's
// variables, as GitLab does for image names, artifact paths and cache keys;
// unknown references are left as written.
func (j *PlannedJob) Expand(text string) string {
	return expandWith(text, j.Var)
}

// Plan decides which jobs a pipeline run for ctx holds. The error, an
// ErrorList, reports needs that cannot be met in this run.
func (c *Config) Plan(ctx Context) (*Plan, error) {
	p := &planner{cfg: c, ctx: ctx, globs: map[string]bool{}}
	return p.plan()
}

type planner struct {
	cfg   *Config
	ctx   Context
	d     diags
	globs map[string]bool // exists: results by pattern
}

func (p *planner) plan() (*Plan, error) {
	plan := &Plan{}
	base := p.pipelineVariables()
	global := slices.Clone(p.cfg.Variables)

	if wf := p.cfg.Workflow; wf != nil {
		if wf.Rules != nil {
			vars := newVarSet(base, global, p.ctx.Variables)
			rule := p.firstRule(wf.Rules, vars)
			switch {
			case rule == nil:
				plan.Reason = "no workflow: rules entry matches, so no pipeline is created"
				return plan, nil
			case rule.When == Never:
				plan.Reason = fmt.Sprintf("the workflow: rules entry at %s says when: never", rule.Pos)
				return plan, nil
			}
			global = append(global, rule.Variables...)
		}
		if wf.Name != "" {
			plan.Name = newVarSet(base, global, p.ctx.Variables).expand(wf.Name)
			base = append(base, Variable{Name: "CI_PIPELINE_NAME", Value: plan.Name})
		}
	}

	for _, job := range p.cfg.Jobs {
		for _, inst := range instances(job) {
			if pj := p.planJob(job, inst, base, global); pj != nil {
				plan.Jobs = append(plan.Jobs, pj)
			}
		}
	}
	stageIndex := map[string]int{}
	for i, s := range p.cfg.Stages {
		stageIndex[s] = i
	}
	slices.SortStableFunc(plan.Jobs, func(a, b *PlannedJob) int { return stageIndex[a.Stage] - stageIndex[b.Stage] })
	p.resolveNeeds(plan.Jobs, stageIndex)

	onlyEdges := true
	for _, s := range p.cfg.Stages {
		for _, j := range plan.Jobs {
			if j.Stage == s {
				plan.Stages = append(plan.Stages, s)
				onlyEdges = onlyEdges && (s == ".pre" || s == ".post")
				break
			}
		}
	}
	switch {
	case len(plan.Jobs) == 0:
		plan.Reason = "every job is excluded by its rules or only/except, so no pipeline is created"
	case onlyEdges:
		plan.Reason = "only .pre and .post jobs would run, so no pipeline is created"
	default:
		plan.Created = true
	}
	if !plan.Created {
		plan.Jobs, plan.Stages = nil, nil
	}
	if err := p.d.err(); err != nil {
		return plan, err
	}
	return plan, nil
}

// instance is one copy of a job: the only one, or one of a parallel job.
type instance struct {
	name         string
	index, total int
	matrix       MatrixCombo
}

// instances expands parallel: into the jobs GitLab creates and names.
func instances(job *Job) []instance {
	par := job.Parallel
	if par == nil {
		return []instance{{name: job.Name}}
	}
	if par.Count > 0 {
		out := make([]instance, par.Count)
		for i := range out {
			out[i] = instance{name: fmt.Sprintf("%s %d/%d", job.Name, i+1, par.Count), index: i + 1, total: par.Count}
		}
		return out
	}
	var combos []MatrixCombo
	for i, row := range par.Matrix {
		combos = append(combos, expandMatrixRow(row, par.MatrixKeys[i])...)
	}
	out := make([]instance, len(combos))
	for i, c := range combos {
		out[i] = instance{name: matrixJobName(job.Name, c), index: i + 1, total: len(combos), matrix: c}
	}
	return out
}

// expandMatrixRow returns every combination of one matrix entry; the first
// variable changes slowest, as in GitLab.
func expandMatrixRow(row map[string][]string, keys []string) []MatrixCombo {
	combos := []MatrixCombo{{}}
	for _, k := range keys {
		var next []MatrixCombo
		for _, c := range combos {
			for _, v := range row[k] {
				next = append(next, append(slices.Clone(c), MatrixValue{Name: k, Value: v}))
			}
		}
		combos = next
	}
	return combos
}

// matrixJobName names a matrix job as GitLab does: "name: [v1, v2]".
func matrixJobName(name string, c MatrixCombo) string {
	vals := make([]string, len(c))
	for i, v := range c {
		vals[i] = v.Value
	}
	return name + ": [" + strings.Join(vals, ", ") + "]"
}

// planJob applies rules (or only/except) to one instance of a job and
// returns it, or nil when the job is not part of this run.
func (p *planner) planJob(job *Job, inst instance, base, global []Variable) *PlannedJob {
	predefined := append(slices.Clone(base),
		Variable{Name: "CI_JOB_NAME", Value: inst.name},
		Variable{Name: "CI_JOB_NAME_SLUG", Value: slug(inst.name, 63)},
		Variable{Name: "CI_JOB_STAGE", Value: job.Stage},
		Variable{Name: "CI_NODE_TOTAL", Value: strconv.Itoa(max(inst.total, 1))},
	)
	if inst.index > 0 {
		predefined = append(predefined, Variable{Name: "CI_NODE_INDEX", Value: strconv.Itoa(inst.index)})
	}
	jobVars := slices.Clone(job.Variables)
	for _, m := range inst.matrix {
		jobVars = append(jobVars, Variable{Name: m.Name, Value: m.Value, Expand: true})
	}
	vars := newVarSet(predefined, inherited(global, job.Inherit.Variables), jobVars, p.ctx.Variables)

	pj := &PlannedJob{
		Name: inst.name, Job: job, Stage: job.Stage, When: job.When, StartIn: job.StartIn,
		Needs: job.Needs, Tags: job.Tags, NodeIndex: inst.index, NodeTotal: inst.total,
		Interruptible: job.Interruptible != nil && *job.Interruptible,
		AllowFailure:  job.AllowFailure.Value, AllowFailureExitCodes: job.AllowFailure.ExitCodes,
	}
	if job.Rules != nil {
		rule := p.firstRule(job.Rules, vars)
		if rule == nil || rule.When == Never {
			return nil
		}
		if rule.When != "" {
			pj.When = rule.When
			pj.StartIn = rule.StartIn
		}
		if rule.AllowFailure != nil {
			pj.AllowFailure, pj.AllowFailureExitCodes = *rule.AllowFailure, nil
		}
		if rule.Needs != nil {
			pj.Needs = rule.Needs
		}
		if rule.Interruptible != nil {
			pj.Interruptible = *rule.Interruptible
		}
		if len(rule.Variables) > 0 {
			vars = newVarSet(predefined, inherited(global, job.Inherit.Variables), jobVars, rule.Variables, p.ctx.Variables)
		}
	} else {
		if !p.onlyExcept(job, vars) {
			return nil
		}
		// Outside rules, a manual job may fail without failing the
		// pipeline unless it says otherwise (GitLab's default).
		if pj.When == Manual && !job.AllowFailure.Set {
			pj.AllowFailure = true
		}
	}
	pj.Variables = vars.resolved()
	return pj
}

// inherited filters global variables by inherit: variables.
func inherited(global []Variable, names []string) []Variable {
	if names == nil {
		return global
	}
	var out []Variable
	for _, v := range global {
		if slices.Contains(names, v.Name) {
			out = append(out, v)
		}
	}
	return out
}

// firstRule returns the first rule whose if, changes and exists all match.
func (p *planner) firstRule(rules []*Rule, vars *varSet) *Rule {
	for _, r := range rules {
		if r.If != nil && !r.If.Eval(vars.lookup) {
			continue
		}
		if r.Changes != nil && !p.changed(r.Changes.Paths, vars) {
			continue
		}
		if r.Exists != nil && !p.exists(r.Exists.Paths, vars) {
			continue
		}
		return r
	}
	return nil
}

// onlyExcept applies only: and except: (only: [branches, tags] by default).
func (p *planner) onlyExcept(job *Job, vars *varSet) bool {
	only := job.Only
	if only == nil {
		only = &RefFilter{Refs: []string{"branches", "tags"}}
	}
	if only.Refs != nil && !p.anyRef(only.Refs) {
		return false
	}
	if only.Variables != nil && !anyTrue(only, vars) {
		return false
	}
	if only.Changes != nil && !p.changed(only.Changes, vars) {
		return false
	}
	if only.Kubernetes != "" {
		return false // Hangar has no Kubernetes integration to be active
	}
	if ex := job.Except; ex != nil {
		if len(ex.Refs) > 0 && p.anyRef(ex.Refs) {
			return false
		}
		if len(ex.Variables) > 0 && anyTrue(ex, vars) {
			return false
		}
		if len(ex.Changes) > 0 && p.changed(ex.Changes, vars) {
			return false
		}
	}
	return true
}

func anyTrue(f *RefFilter, vars *varSet) bool {
	for _, e := range f.Variables {
		if e.Eval(vars.lookup) {
			return true
		}
	}
	return false
}

// refKeywords maps the special only/except refs to pipeline sources.
var refKeywords = map[string]Source{
	"api": SourceAPI, "external": "external", "pipelines": SourcePipeline, "pushes": SourcePush,
	"schedules": SourceSchedule, "triggers": SourceTrigger, "web": SourceWeb,
	"merge_requests": SourceMergeRequest, "external_pull_requests": SourceExternalPullRequest, "chat": SourceChat,
}

// anyRef reports whether one of the only/except refs matches the pipeline.
func (p *planner) anyRef(refs []string) bool {
	for _, r := range refs {
		if p.refMatches(r) {
			return true
		}
	}
	return false
}

func (p *planner) refMatches(ref string) bool {
	pattern, project, hasProject := strings.Cut(ref, "@")
	if hasProject && p.ctx.ProjectPath != "" && project != p.ctx.ProjectPath {
		return false
	}
	isBranch := p.ctx.Branch != "" && p.ctx.Tag == "" && p.ctx.Source != SourceMergeRequest
	isTag := p.ctx.Tag != ""
	switch {
	case pattern == "branches":
		return isBranch
	case pattern == "tags":
		return isTag
	case pattern == string(p.ctx.Source):
		return true
	}
	if src, ok := refKeywords[pattern]; ok {
		return p.ctx.Source == src
	}
	name := p.refName()
	if pattern == name {
		return true
	}
	// Regular expressions match branch and tag names only, as on GitLab.
	if strings.HasPrefix(pattern, "/") && (isBranch || isTag) {
		re, err := compileSlashRegexp(pattern)
		return err == nil && re.MatchString(name)
	}
	return false
}

// refName is the ref the pipeline runs for, as only/except see it.
func (p *planner) refName() string {
	switch {
	case p.ctx.Tag != "":
		return p.ctx.Tag
	case p.ctx.MergeRequest != nil && p.ctx.Source == SourceMergeRequest:
		return fmt.Sprintf("refs/merge-requests/%d/head", p.ctx.MergeRequest.IID)
	}
	return p.ctx.Branch
}

// changed reports whether a changes: pattern matches a changed path. As on
// GitLab it is always true where changes are not known or do not apply.
func (p *planner) changed(patterns []string, vars *varSet) bool {
	ctx := p.ctx
	if ctx.Changed == nil || ctx.Tag != "" ||
		(ctx.Source != SourcePush && ctx.Source != SourceMergeRequest && ctx.Source != SourceExternalPullRequest) {
		return true
	}
	for _, pat := range patterns {
		pat = strings.TrimPrefix(vars.expand(pat), "/")
		for _, path := range ctx.Changed {
			if ok, _ := doublestar.Match(pat, strings.TrimPrefix(path, "/")); ok {
				return true
			}
		}
	}
	return false
}

// exists reports whether a file in the repository matches a pattern.
func (p *planner) exists(patterns []string, vars *varSet) bool {
	if p.ctx.Files == nil {
		return false
	}
	for _, pat := range patterns {
		pat = strings.TrimPrefix(vars.expand(pat), "/")
		found, ok := p.globs[pat]
		if !ok {
			matches, err := doublestar.Glob(p.ctx.Files, pat, doublestar.WithFilesOnly(), doublestar.WithFailOnIOErrors())
			found = err == nil && len(matches) > 0
			p.globs[pat] = found
		}
		if found {
			return true
		}
	}
	return false
}

// resolveNeeds turns needs on job names into needs on the planned jobs
// (every instance of a parallel job, or those a matrix selects), drops
// optional needs on absent jobs, reports the others, and works out each
// job's dependencies.
func (p *planner) resolveNeeds(jobs []*PlannedJob, stageIndex map[string]int) {
	byBase := map[string][]*PlannedJob{}
	byName := map[string]*PlannedJob{}
	names := make([]string, len(jobs))
	stageStart := map[string]int{}
	for i, j := range jobs {
		byBase[j.Job.Name] = append(byBase[j.Job.Name], j)
		byName[j.Name] = j
		names[i] = j.Name
		if _, ok := stageStart[j.Stage]; !ok {
			stageStart[j.Stage] = i
		}
	}
	for _, j := range jobs {
		if j.Needs != nil {
			var needs []Need
			for _, n := range j.Needs {
				if n.Project != "" || n.Pipeline != "" {
					needs = append(needs, n)
					continue
				}
				targets := needTargets(n, byBase, byName)
				if len(targets) == 0 {
					if !n.Optional {
						p.d.errorf(n.Pos, "%s needs %q, which is not in this pipeline (rules or only/except exclude it); add optional: true if that is expected", j.Name, n.Job)
					}
					continue
				}
				for _, t := range targets {
					if stageIndex[t.Stage] > stageIndex[j.Stage] {
						p.d.errorf(n.Pos, "%s (stage %s) needs %q, which is in the later stage %s", j.Name, j.Stage, t.Name, t.Stage)
					}
					tn := n
					tn.Job = t.Name
					needs = append(needs, tn)
				}
			}
			if needs == nil {
				needs = []Need{}
			}
			j.Needs = needs
		}
		j.Dependencies = dependencies(j, names, stageStart, byBase)
	}
	edges := make(map[string][]Need, len(jobs))
	for _, j := range jobs {
		edges[j.Name] = j.Needs
	}
	if cyc := findCycle(names, edges); cyc != nil {
		p.d.errorf(cyc.pos, "needs form a cycle: %s", strings.Join(cyc.path, " → "))
	}
}

// needTargets lists the planned jobs a need refers to.
func needTargets(n Need, byBase map[string][]*PlannedJob, byName map[string]*PlannedJob) []*PlannedJob {
	if n.Matrix != nil {
		var out []*PlannedJob
		for _, c := range n.Matrix {
			if t := byName[matrixJobName(n.Job, c)]; t != nil {
				out = append(out, t)
			}
		}
		return out
	}
	if t := byBase[n.Job]; t != nil {
		return t
	}
	if t := byName[n.Job]; t != nil {
		return []*PlannedJob{t}
	}
	return nil
}

// dependencies lists the jobs whose artifacts j downloads: those named in
// dependencies:, else its needs with artifacts, else every job of the
// earlier stages. That last list is a prefix of names (the planned jobs in
// stage order) that jobs of the same stage share, capped so that an append
// copies.
func dependencies(j *PlannedJob, names []string, stageStart map[string]int, byBase map[string][]*PlannedJob) []string {
	switch {
	case j.Job.DependenciesSet:
		out := []string{}
		for _, d := range j.Job.Dependencies {
			for _, t := range byBase[d] {
				out = append(out, t.Name)
			}
		}
		return out
	case j.Needs != nil:
		out := []string{}
		for _, n := range j.Needs {
			if n.Artifacts && n.Project == "" && n.Pipeline == "" {
				out = append(out, n.Job)
			}
		}
		return out
	}
	start := stageStart[j.Stage]
	return names[:start:start]
}

type cycle struct {
	path []string
	pos  Position
}

// findCycle returns a cycle in the needs graph, or nil. The position is the
// need that closes the cycle.
func findCycle(names []string, edges map[string][]Need) *cycle {
	const (
		unvisited = iota
		visiting
		visited
	)
	state := map[string]int{}
	var stack []string
	var found *cycle
	var visit func(name string)
	visit = func(name string) {
		state[name] = visiting
		stack = append(stack, name)
		for _, n := range edges[name] {
			if found != nil {
				return
			}
			switch state[n.Job] {
			case visiting:
				start := slices.Index(stack, n.Job)
				found = &cycle{path: append(slices.Clone(stack[start:]), n.Job), pos: n.Pos}
				return
			case unvisited:
				if _, ok := edges[n.Job]; ok {
					visit(n.Job)
				}
			}
		}
		stack = stack[:len(stack)-1]
		state[name] = visited
	}
	for _, n := range names {
		if state[n] == unvisited && found == nil {
			visit(n)
		}
	}
	return found
}

var slugInvalid = regexp.MustCompile(`[^a-z0-9]+`)

// slug lowercases s, replaces everything but a-z and 0-9 by -, cuts it to
// limit characters and trims - from both ends (CI_COMMIT_REF_SLUG).
func slug(s string, limit int) string {
	s = slugInvalid.ReplaceAllString(strings.ToLower(s), "-")
	if len(s) > limit {
		s = s[:limit]
	}
	return strings.Trim(s, "-")
}
