package scheduler

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/hangar-ci/hangar/internal/pipeline"
	"github.com/hangar-ci/hangar/internal/store"
)

// NewPipeline is a planned pipeline to create.
type NewPipeline struct {
	// Project names the project; it is created on first use.
	Project string
	// Source is the event (push, web, api, …); Ref and SHA what it ran for.
	Source, Ref, SHA string
	// Archive is the digest of the source snapshot; File the pipeline
	// file's path in it.
	Archive, File string
	// Variables are the pipeline variables given at creation; masked ones
	// stay masked in every job that sees them.
	Variables []store.Variable
	// Plan is what the pipeline file gives for this run.
	Plan *pipeline.Plan
}

// Create stores a pipeline and its jobs in one transaction and makes the
// jobs that can start pending.
func (s *Scheduler) Create(ctx context.Context, np NewPipeline) (*store.Pipeline, error) {
	now := s.now()
	masked := map[string]bool{}
	for _, v := range np.Variables {
		if v.Masked {
			masked[v.Name] = true
		}
	}
	p := &store.Pipeline{
		Status: store.PipelineCreated, Source: np.Source, Ref: np.Ref, SHA: np.SHA,
		Archive: np.Archive, File: np.File, Name: np.Plan.Name, Variables: np.Variables, CreatedAt: now,
	}
	var woke bool
	err := s.store.Update(ctx, func(tx store.Tx) error {
		proj, err := tx.Projects().Ensure(ctx, np.Project, now)
		if err != nil {
			return err
		}
		p.ProjectID = proj.ID
		if err := tx.Pipelines().Create(ctx, p); err != nil {
			return err
		}
		for _, pj := range np.Plan.Jobs {
			j := s.job(p.ID, np.Plan.Stages, pj, masked, now)
			if err := tx.Jobs().Create(ctx, j); err != nil {
				return fmt.Errorf("create job %q: %w", pj.Name, err)
			}
		}
		woke, err = s.settle(ctx, tx, p.ID, now)
		if err != nil {
			return err
		}
		p, err = tx.Pipelines().Get(ctx, p.ID)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("create pipeline: %w", err)
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "pipeline created", slog.Int64("pipeline_id", p.ID),
		slog.String("project", np.Project), slog.Int("jobs", len(np.Plan.Jobs)))
	s.afterCommit(p.ID, woke)
	return p, nil
}

// job turns a planned job into a created job record.
func (s *Scheduler) job(pipelineID int64, stages []string, pj *pipeline.PlannedJob, masked map[string]bool, now time.Time) *store.Job {
	def := pj.Job
	j := &store.Job{
		PipelineID: pipelineID, Name: pj.Name, Stage: pj.Stage, StageIndex: slices.Index(stages, pj.Stage),
		Status: store.JobCreated, When: string(pj.When), AllowFailure: pj.AllowFailure,
		AllowFailureExitCodes: pj.AllowFailureExitCodes, Tags: pj.Tags, ExitCode: -1, CreatedAt: now,
	}
	if pj.Needs != nil {
		j.Needs = make([]string, 0, len(pj.Needs))
		for _, n := range pj.Needs {
			j.Needs = append(j.Needs, n.Job)
		}
	}
	spec := store.JobSpec{
		BeforeScript: def.BeforeScript, Script: def.Script, AfterScript: def.AfterScript,
		Timeout: def.Timeout, StartIn: pj.StartIn,
		Retry: store.RetryPolicy{Max: def.Retry.Max, When: def.Retry.When, ExitCodes: def.Retry.ExitCodes},
	}
	if spec.Timeout <= 0 {
		spec.Timeout = s.cfg.JobTimeout
	}
	spec.Image, spec.Services = containerSpecs(pj)
	spec.Artifacts = artifactsSpec(pj)
	spec.Caches = cacheSpecs(pj)
	spec.Dependencies = pj.Dependencies
	for _, v := range pj.Variables {
		spec.Variables = append(spec.Variables, store.Variable{Name: v.Name, Value: v.Value, Masked: masked[v.Name]})
	}
	j.Spec = spec
	if def.Trigger != nil {
		// Child and multi-project pipelines are not run yet: say so rather
		// than run an empty script.
		j.Status = store.JobSkipped
		j.Reason = "trigger jobs (child pipelines) are not supported yet"
		j.FinishedAt = now
	}
	return j
}

// imageSpec returns img with variables expanded, or nil when img is nil or
// names no image.
func imageSpec(pj *pipeline.PlannedJob, img *pipeline.Image) *store.ImageSpec {
	if img == nil || pj.Expand(img.Name) == "" {
		return nil
	}
	return &store.ImageSpec{
		Name: pj.Expand(img.Name), Entrypoint: img.Entrypoint,
		PullPolicy: img.PullPolicy, User: pj.Expand(img.User),
	}
}

// containerSpecs returns the job's image and services.
func containerSpecs(pj *pipeline.PlannedJob) (*store.ImageSpec, []store.ServiceSpec) {
	def := pj.Job
	var services []store.ServiceSpec
	for _, sv := range def.Services {
		img := imageSpec(pj, &sv.Image)
		if img == nil {
			continue
		}
		s := store.ServiceSpec{ImageSpec: *img, Alias: pj.Expand(sv.Alias), Command: sv.Command}
		for _, v := range sv.Variables {
			s.Variables = append(s.Variables, store.Variable{Name: v.Name, Value: pj.Expand(v.Value)})
		}
		services = append(services, s)
	}
	return imageSpec(pj, def.Image), services
}

// expandAll returns list with variables expanded in each entry.
func expandAll(pj *pipeline.PlannedJob, list []string) []string {
	if list == nil {
		return nil
	}
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = pj.Expand(s)
	}
	return out
}

// artifactsSpec returns the job's artifacts:, or nil when it keeps no
// files (reports are not kept yet).
func artifactsSpec(pj *pipeline.PlannedJob) *store.ArtifactsSpec {
	a := pj.Job.Artifacts
	if a == nil || (len(a.Paths) == 0 && !a.Untracked) {
		return nil
	}
	return &store.ArtifactsSpec{
		Paths: expandAll(pj, a.Paths), Exclude: expandAll(pj, a.Exclude), Name: pj.Expand(a.Name),
		Untracked: a.Untracked, When: string(a.When), ExpireIn: a.ExpireIn, Never: a.Never,
	}
}

// cacheSpecs returns the job's caches.
func cacheSpecs(pj *pipeline.PlannedJob) []store.CacheSpec {
	var out []store.CacheSpec
	for _, c := range pj.Job.Cache {
		if len(c.Paths) == 0 && !c.Untracked {
			continue
		}
		out = append(out, store.CacheSpec{
			Key: pj.Expand(c.Key), KeyFiles: expandAll(pj, c.KeyFiles), KeyPrefix: pj.Expand(c.KeyPrefix),
			Paths: expandAll(pj, c.Paths), Untracked: c.Untracked, When: string(c.When), Policy: pj.Expand(c.Policy),
			FallbackKeys: expandAll(pj, c.FallbackKeys),
		})
	}
	return out
}
