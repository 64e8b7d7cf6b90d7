package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/hangar-ci/hangar/internal/pipeline"
)

// lintResult is what hangar lint prints; with --json, in exactly this shape.
type lintResult struct {
	Valid           bool                  `json:"valid"`
	Errors          []pipeline.Diagnostic `json:"errors"`
	Warnings        []pipeline.Diagnostic `json:"warnings"`
	PipelineCreated bool                  `json:"pipeline_created"`
	Reason          string                `json:"reason,omitempty"`
	Name            string                `json:"name,omitempty"`
	Stages          []string              `json:"stages"`
	Jobs            []lintJob             `json:"jobs"`
}

// lintJob is one planned job in the JSON output.
type lintJob struct {
	Name         string            `json:"name"`
	Stage        string            `json:"stage"`
	When         string            `json:"when"`
	StartIn      string            `json:"start_in,omitempty"`
	AllowFailure bool              `json:"allow_failure"`
	Needs        []lintNeed        `json:"needs"`
	Dependencies []string          `json:"dependencies"`
	Tags         []string          `json:"tags"`
	Variables    map[string]string `json:"variables"`
}

// lintNeed is one need in the JSON output.
type lintNeed struct {
	Job       string `json:"job"`
	Artifacts bool   `json:"artifacts"`
	Optional  bool   `json:"optional"`
}

// lint loads and plans a pipeline file.
func lint(fsys fs.FS, name string, ctx pipeline.Context) lintResult {
	res := lintResult{Errors: []pipeline.Diagnostic{}, Warnings: []pipeline.Diagnostic{}, Stages: []string{}, Jobs: []lintJob{}}
	cfg, err := pipeline.Load(fsys, name, &ctx)
	if cfg != nil && cfg.Warnings != nil {
		res.Warnings = cfg.Warnings
	}
	if err == nil {
		var plan *pipeline.Plan
		plan, err = cfg.Plan(ctx)
		if err == nil {
			res.fill(plan)
		}
	}
	var list pipeline.ErrorList
	switch {
	case errors.As(err, &list):
		res.Errors = list
	case err != nil:
		res.Errors = []pipeline.Diagnostic{{Position: pipeline.Position{File: name}, Message: err.Error()}}
	}
	res.Valid = len(res.Errors) == 0
	return res
}

func (r *lintResult) fill(plan *pipeline.Plan) {
	r.PipelineCreated, r.Reason, r.Name = plan.Created, plan.Reason, plan.Name
	r.Stages = append(r.Stages, plan.Stages...)
	for _, j := range plan.Jobs {
		lj := lintJob{
			Name: j.Name, Stage: j.Stage, When: string(j.When), AllowFailure: j.AllowFailure,
			Dependencies: j.Dependencies, Tags: j.Tags, Variables: map[string]string{},
		}
		if j.When == pipeline.Delayed {
			lj.StartIn = j.StartIn.String()
		}
		if lj.Tags == nil {
			lj.Tags = []string{}
		}
		if j.Needs != nil {
			lj.Needs = make([]lintNeed, len(j.Needs))
			for i, n := range j.Needs {
				lj.Needs[i] = lintNeed{Job: n.Job, Artifacts: n.Artifacts, Optional: n.Optional}
			}
		}
		for _, v := range j.Variables {
			lj.Variables[v.Name] = v.Value
		}
		r.Jobs = append(r.Jobs, lj)
	}
}

// print writes the result for people: errors and warnings as
// file:line:col: message, then the plan as a table by stage.
func (r *lintResult) print(w io.Writer) {
	for _, e := range r.Errors {
		fmt.Fprintln(w, e.String())
	}
	for _, e := range r.Warnings {
		fmt.Fprintf(w, "%s: warning: %s\n", e.Position, e.Message)
	}
	if !r.Valid {
		fmt.Fprintf(w, "invalid: %d error(s)\n", len(r.Errors))
		return
	}
	if !r.PipelineCreated {
		fmt.Fprintf(w, "valid, but no pipeline: %s\n", r.Reason)
		return
	}
	if r.Name != "" {
		fmt.Fprintf(w, "pipeline %q\n", r.Name)
	}
	for _, s := range r.Stages {
		fmt.Fprintf(w, "%s\n", s)
		for _, j := range r.Jobs {
			if j.Stage != s {
				continue
			}
			fmt.Fprintf(w, "  %-40s %s\n", j.Name, j.attributes())
		}
	}
	fmt.Fprintf(w, "valid: %d job(s) in %d stage(s)\n", len(r.Jobs), len(r.Stages))
}

func (j lintJob) attributes() string {
	s := j.When
	if j.StartIn != "" {
		s += " in " + j.StartIn
	}
	if j.AllowFailure {
		s += "  allow_failure"
	}
	if j.Needs != nil {
		s += "  needs ["
		for i, n := range j.Needs {
			if i > 0 {
				s += ", "
			}
			s += n.Job
		}
		s += "]"
	}
	if len(j.Tags) > 0 {
		s += fmt.Sprintf("  tags %v", j.Tags)
	}
	return s
}
