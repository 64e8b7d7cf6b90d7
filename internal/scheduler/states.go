package scheduler

import (
	"time"

	"github.com/hangar-ci/hangar/internal/store"
)

// This file holds the pipeline and job state machines as pure functions
// over a pipeline's jobs, so they can be tested without a store.

// readiness is what a created job's predecessors allow.
type readiness int

const (
	waiting   readiness = iota // a predecessor has not finished
	succeeded                  // every predecessor succeeded (or may fail)
	broken                     // a predecessor failed, was canceled, or (with needs) skipped
)

// judge looks at the predecessors of j: the jobs it needs, or every job of
// an earlier stage. failed reports whether one of them failed for real
// (what when: on_failure waits for).
func judge(j *store.Job, jobs []*store.Job, byName map[string]*store.Job) (r readiness, failed bool) {
	r = succeeded
	consider := func(p *store.Job, viaNeeds bool) {
		switch p.Status {
		case store.JobCreated, store.JobPending, store.JobRunning:
			r = waiting
		case store.JobManual:
			// A manual job that may not fail blocks what follows it until
			// someone plays it; one that may fail is stepped over.
			if !p.AllowFailure {
				r = waiting
			}
		case store.JobFailed:
			if !p.AllowFailure {
				failed = true
				if r != waiting {
					r = broken
				}
			}
		case store.JobCanceled:
			if r != waiting {
				r = broken
			}
		case store.JobSkipped:
			if viaNeeds && r != waiting {
				r = broken
			}
		}
	}
	if j.Needs != nil {
		for _, n := range j.Needs {
			if p, ok := byName[n]; ok {
				consider(p, true)
			}
		}
	} else {
		for _, p := range jobs {
			if p.StageIndex < j.StageIndex {
				consider(p, false)
			}
		}
	}
	return r, failed
}

// advance moves every created job of a pipeline whose predecessors allow it
// to its next status: pending, manual or skipped. It repeats until nothing
// moves (a skipped job can release the next) and returns the jobs it
// changed.
func advance(jobs []*store.Job, now time.Time) []*store.Job {
	byName := make(map[string]*store.Job, len(jobs))
	for _, j := range jobs {
		byName[j.Name] = j
	}
	var changed []*store.Job
	for moved := true; moved; {
		moved = false
		for _, j := range jobs {
			if j.Status != store.JobCreated {
				continue
			}
			r, failed := judge(j, jobs, byName)
			if r == waiting {
				continue
			}
			next := store.JobSkipped
			switch j.When {
			case "on_failure":
				if failed {
					next = store.JobPending
				}
			case "always":
				next = store.JobPending
			case "manual":
				if r == succeeded {
					next = store.JobManual
				}
			default: // on_success, delayed
				if r == succeeded {
					next = store.JobPending
				}
			}
			j.Status = next
			switch next {
			case store.JobPending:
				j.PendingAt = now
				if j.When == "delayed" {
					j.RunAfter = now.Add(j.Spec.StartIn)
				}
			case store.JobSkipped:
				j.FinishedAt = now
			}
			changed = append(changed, j)
			moved = true
		}
	}
	return changed
}

// pipelineStatus is the status a pipeline's jobs give it. A pipeline runs
// while a job is pending or running, or could still become so; jobs held
// back only by manual jobs that may not fail leave it finished, as do
// manual jobs nobody played.
func pipelineStatus(jobs []*store.Job) store.PipelineStatus {
	c := store.JobCounts{ByStatus: map[store.JobStatus]int{}}
	for _, j := range jobs {
		c.ByStatus[j.Status]++
		if j.Status == store.JobFailed && !j.AllowFailure {
			c.FailedBlocking++
		}
	}
	return countedStatus(c)
}

// countedStatus is the status a pipeline's job counts give it; settle
// uses it alone when no job is created (nothing can move), without
// reading every job.
func countedStatus(c store.JobCounts) store.PipelineStatus {
	n := 0
	for _, k := range c.ByStatus {
		n += k
	}
	switch {
	case n == 0:
		return store.PipelineSkipped
	case c.ByStatus[store.JobPending]+c.ByStatus[store.JobRunning] > 0:
		return store.PipelineRunning
	case c.FailedBlocking > 0:
		return store.PipelineFailed
	case c.ByStatus[store.JobCanceled] > 0:
		return store.PipelineCanceled
	case c.ByStatus[store.JobSkipped] == n:
		return store.PipelineSkipped
	}
	return store.PipelineSuccess
}

// retryable reports whether the pipeline's retry: lets a failed attempt be
// run again. userFailures counts the attempts that failed so far for a
// reason retry: covers (lost runners are not counted: they are Hangar's).
func retryable(p store.RetryPolicy, userFailures int, reason string, exitCode int) bool {
	if userFailures > p.Max {
		return false
	}
	if len(p.When) == 0 && len(p.ExitCodes) == 0 {
		return true // GitLab's default: when: always
	}
	// With both when: and exit_codes:, either one matching retries, as in
	// GitLab.
	for _, c := range p.ExitCodes {
		if c == exitCode {
			return true
		}
	}
	for _, w := range p.When {
		switch {
		case w == "always", w == reason,
			w == "unknown_failure" && reason == "",
			w == "stuck_or_timeout_failure" && reason == FailureTimeout:
			return true
		}
	}
	return false
}

// allowedFailure reports whether a failure with exitCode may fail without
// failing the pipeline.
func allowedFailure(j *store.Job, exitCode int) bool {
	if len(j.AllowFailureExitCodes) == 0 {
		return j.AllowFailure
	}
	for _, c := range j.AllowFailureExitCodes {
		if c == exitCode {
			return true
		}
	}
	return false
}
