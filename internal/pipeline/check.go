package pipeline

import (
	"slices"
	"strings"

	"github.com/hangar-ci/hangar/internal/suggest"
)

// checkStages reports jobs whose stage is not declared.
func checkStages(cfg *Config, d *diags) {
	for _, j := range cfg.Jobs {
		if !slices.Contains(cfg.Stages, j.Stage) {
			d.errorf(j.StagePos, "%s: stage %q is not declared in stages (%s)%s",
				j.Name, j.Stage, strings.Join(cfg.Stages, ", "), suggest.DidYouMean(j.Stage, cfg.Stages))
		}
	}
}

// checkNeeds checks needs: and dependencies: against the jobs of the file:
// each names a job (unless optional), never one of a later stage, and needs
// form no cycle. Whether the needed jobs are in a given run is checked when
// it is planned.
func checkNeeds(cfg *Config, d *diags) {
	stageOf := map[string]int{}
	var names []string
	for _, j := range cfg.Jobs {
		stageOf[j.Name] = slices.Index(cfg.Stages, j.Stage)
		names = append(names, j.Name)
	}
	edges := map[string][]Need{}
	checkList := func(j *Job, needs []Need) {
		for _, n := range needs {
			if n.Project != "" || n.Pipeline != "" {
				continue
			}
			st, ok := stageOf[n.Job]
			switch {
			case !ok && !n.Optional:
				d.errorf(n.Pos, "%s needs %q, which is not a job of this pipeline%s", j.Name, n.Job, suggest.DidYouMean(n.Job, names))
			case ok && st > stageOf[j.Name]:
				d.errorf(n.Pos, "%s (stage %s) needs %q, which is in the later stage %s", j.Name, j.Stage, n.Job, cfg.Stages[st])
			case ok:
				edges[j.Name] = append(edges[j.Name], n)
			}
		}
	}
	for _, j := range cfg.Jobs {
		checkList(j, j.Needs)
		for _, r := range j.Rules {
			checkList(j, r.Needs)
		}
		for _, dep := range j.Dependencies {
			st, ok := stageOf[dep]
			switch {
			case !ok:
				d.errorf(j.Pos, "%s: dependencies names %q, which is not a job of this pipeline%s", j.Name, dep, suggest.DidYouMean(dep, names))
			case st > stageOf[j.Name]:
				d.errorf(j.Pos, "%s: dependencies names %q, which is in the later stage %s", j.Name, dep, cfg.Stages[st])
			}
		}
		if j.Environment != nil && j.Environment.OnStop != "" {
			if _, ok := stageOf[j.Environment.OnStop]; !ok {
				d.errorf(j.Pos, "%s: environment: on_stop names %q, which is not a job of this pipeline", j.Name, j.Environment.OnStop)
			}
		}
	}
	if cyc := findCycle(names, edges); cyc != nil {
		d.errorf(cyc.pos, "needs form a cycle: %s", strings.Join(cyc.path, " → "))
	}
}
