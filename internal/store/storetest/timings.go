package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hangar-ci/hangar/internal/store"
)

func jobTimingID(j *store.JobTiming) int64 { return j.JobID }

// timing returns what ListFinished returns of j, run last on agent a (nil
// when no attempt ran), which reported steps.
func timing(j *store.Job, a *store.Agent, steps []store.StepTiming) *store.JobTiming {
	jt := &store.JobTiming{JobID: j.ID, PipelineID: j.PipelineID, Name: j.Name, Status: j.Status,
		PendingAt: j.PendingAt, StartedAt: j.StartedAt, FinishedAt: j.FinishedAt, Attempts: j.Attempts,
		Steps: steps}
	if a != nil {
		jt.AgentLabels = a.Labels
		if jt.AgentLabels == nil {
			jt.AgentLabels = []string{}
		}
	}
	return jt
}

func testJobTimings(t *testing.T, open opener) {
	t.Run("ListFinished", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ctx := context.Background()
		f, g := newFixture(t, s, "f"), newFixture(t, s, "g")
		linux := newAgent(t, s, "linux", "docker", "linux")
		arm := newAgent(t, s, "arm", "arm64")
		bare := newAgent(t, s, "bare") // no labels

		// finished returns a job of fixture x in status, that became
		// pending at 0, started at 10s unless it never ran, and finished
		// at done; attempts counts its attempts.
		finished := func(x fixture, name string, status store.JobStatus, attempts int, done time.Time) *store.Job {
			j := x.job(name, at(0))
			j.Status, j.Attempts, j.FinishedAt = status, attempts, done
			if attempts > 0 {
				j.StartedAt = at(10 * time.Second)
			}
			return j
		}
		ok := finished(f, "ok", store.JobSuccess, 1, at(5*time.Minute).In(elsewhere))
		retried := finished(f, "retried", store.JobFailed, 2, at(3*time.Minute))
		skipped := finished(f, "skipped", store.JobSkipped, 0, at(time.Minute))
		skipped.PendingAt = time.Time{}                                                                 // never pending
		canceledEarly := finished(g, "canceled before it ran", store.JobCanceled, 0, at(3*time.Minute)) // ties with retried
		canceled := finished(g, "canceled while running", store.JobCanceled, 1, at(2*time.Minute))
		unlabelled := finished(g, "on a bare agent", store.JobSuccess, 1, at(4*time.Minute))
		old := finished(f, "old", store.JobSuccess, 1, at(-time.Hour))
		// Not finished: left out whatever their FinishedAt.
		running := finished(f, "running", store.JobRunning, 1, time.Time{})
		retrying := finished(f, "retrying", store.JobPending, 1, at(4*time.Minute))
		manual := finished(g, "manual", store.JobManual, 0, at(4*time.Minute))
		created := finished(g, "created", store.JobCreated, 0, time.Time{})
		pending := finished(g, "pending", store.JobPending, 0, time.Time{})
		createJobs(t, s, ok, retried, skipped, canceledEarly, canceled, unlabelled, old, running, retrying, manual,
			created, pending)
		for _, a := range []struct {
			job    *store.Job
			agents []*store.Agent       // attempt 1, 2, …
			steps  [][]store.StepTiming // what attempt 1, 2, … reported
		}{
			{ok, []*store.Agent{linux}, [][]store.StepTiming{someSteps}},
			// The labels and steps are those of attempt 2.
			{retried, []*store.Agent{linux, arm}, [][]store.StepTiming{someSteps[:2], someSteps[2:4]}},
			{canceled, []*store.Agent{arm}, nil},                         // reported none
			{unlabelled, []*store.Agent{bare}, [][]store.StepTiming{{}}}, // an empty list: none
			{old, []*store.Agent{arm}, [][]store.StepTiming{someSteps[:1]}},
			{running, []*store.Agent{linux}, nil},
			{retrying, []*store.Agent{arm}, [][]store.StepTiming{someSteps}},
		} {
			for i, ag := range a.agents {
				att := newAttempt(t, s, a.job, ag, i+1)
				if i < len(a.steps) {
					att.Status, att.Steps = store.AttemptSuccess, a.steps[i]
					update(t, s, func(tx store.Tx) error { return tx.Jobs().UpdateAttempt(ctx, att) })
				}
			}
		}

		all := []*store.JobTiming{
			timing(old, arm, someSteps[:1]),
			timing(skipped, nil, nil),
			timing(canceled, arm, nil),
			timing(retried, arm, someSteps[2:4]),
			timing(canceledEarly, nil, nil), // after retried: same time, larger ID
			timing(unlabelled, bare, nil),
			timing(ok, linux, someSteps),
		}
		for _, tc := range []struct {
			name  string
			since time.Time
			want  []*store.JobTiming
		}{
			{"all", time.Time{}, all},
			{"since excludes the old", at(0), all[1:]},
			{"since is inclusive", at(3 * time.Minute).In(elsewhere), all[3:]},
			{"since between", at(3*time.Minute + time.Microsecond), all[5:]},
			{"since after all", at(time.Hour), nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				var got []*store.JobTiming
				read(t, s, func(tx store.Tx) error {
					var err error
					got, err = tx.Jobs().ListFinished(ctx, tc.since)
					return err
				})
				what := fmt.Sprintf("ListFinished(%v)", tc.since)
				equalIDs(t, what, ids(tc.want, jobTimingID), ids(got, jobTimingID))
				if len(got) != len(tc.want) {
					return
				}
				equal(t, what, tc.want, got)
				for i, jt := range got {
					if (jt.AgentLabels == nil) != (tc.want[i].AgentLabels == nil) {
						t.Errorf("%s: job %q has agent labels %#v, want %#v (nil only when no attempt ran)",
							what, jt.Name, jt.AgentLabels, tc.want[i].AgentLabels)
					}
					if (jt.Steps == nil) != (tc.want[i].Steps == nil) {
						t.Errorf("%s: job %q has steps %#v, want %#v (nil when its last attempt reported none)",
							what, jt.Name, jt.Steps, tc.want[i].Steps)
					}
				}
			})
		}
	})

	t.Run("ListFinishedNotShared", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ctx := context.Background()
		f := newFixture(t, s, "f")
		a := newAgent(t, s, "a", "docker", "linux")
		j1, j2 := f.job("1", at(0)), f.job("2", at(0))
		for _, j := range []*store.Job{j1, j2} {
			j.Status, j.Attempts, j.FinishedAt = store.JobSuccess, 1, at(time.Minute)
		}
		createJobs(t, s, j1, j2)
		for _, j := range []*store.Job{j1, j2} {
			att := newAttempt(t, s, j, a, 1)
			att.Steps = someSteps[:2]
			update(t, s, func(tx store.Tx) error { return tx.Jobs().UpdateAttempt(ctx, att) })
		}
		read(t, s, func(tx store.Tx) error {
			got, err := tx.Jobs().ListFinished(ctx, time.Time{})
			if err != nil {
				return err
			}
			if len(got) != 2 {
				t.Fatalf("ListFinished: %d jobs, want 2", len(got))
			}
			got[0].AgentLabels[0] = "changed"
			if got[1].AgentLabels[0] != "docker" {
				t.Errorf("changing one job's agent labels changed another's: %v", got[1].AgentLabels)
			}
			// Appending to one job's steps, or changing them, leaves the
			// other's (read after them) as they were.
			got[0].Steps = append(got[0].Steps, store.StepTiming{Name: "appended", Seconds: 1})
			got[0].Steps[0].Name = "changed"
			equal(t, "the other job's steps", someSteps[:2], got[1].Steps)
			return nil
		})
	})
}
