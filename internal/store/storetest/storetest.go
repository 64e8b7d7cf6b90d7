// Package storetest is the conformance suite of store.Store: every
// implementation runs it from its own tests,
//
//	func TestStore(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { … })
//	}
//
// and so behaves as the store package documents.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hangar-ci/hangar/internal/store"
)

// Run runs the suite. open must return a new, empty store for the test it
// is given; Run closes it when that test ends. Subtests run in parallel,
// each on its own store.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	t.Helper()
	opener := func(t *testing.T) store.Store {
		t.Helper()
		s := open(t)
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("close store: %v", err)
			}
		})
		return s
	}
	t.Run("Projects", func(t *testing.T) { testProjects(t, opener) })
	t.Run("Pipelines", func(t *testing.T) { testPipelines(t, opener) })
	t.Run("Jobs", func(t *testing.T) { testJobs(t, opener) })
	t.Run("Attempts", func(t *testing.T) { testAttempts(t, opener) })
	t.Run("Agents", func(t *testing.T) { testAgents(t, opener) })
	t.Run("Logs", func(t *testing.T) { testLogs(t, opener) })
	t.Run("Artifacts", func(t *testing.T) { testArtifacts(t, opener) })
	t.Run("JobTimings", func(t *testing.T) { testJobTimings(t, opener) })
	t.Run("FleetEvents", func(t *testing.T) { testFleetEvents(t, opener) })
	t.Run("Transactions", func(t *testing.T) { testTransactions(t, opener) })
	t.Run("Concurrency", func(t *testing.T) { testConcurrency(t, opener) })
}

// opener opens a fresh store for one test.
type opener func(t *testing.T) store.Store

// epoch is the suite's "now": microsecond precision, as stores keep it.
var epoch = time.Date(2025, 3, 14, 15, 9, 26, 535897000, time.UTC)

// at returns epoch plus d.
func at(d time.Duration) time.Time { return epoch.Add(d) }

// elsewhere is a zone other than UTC, to check that stores keep instants,
// not wall clocks.
var elsewhere = time.FixedZone("UTC+5:30", 5*3600+30*60)

// update runs fn in s.Update and fails the test on error.
func update(t *testing.T, s store.Store, fn func(tx store.Tx) error) {
	t.Helper()
	if err := s.Update(context.Background(), fn); err != nil {
		t.Fatalf("update: %v", err)
	}
}

// read runs fn in s.Read and fails the test on error.
func read(t *testing.T, s store.Store, fn func(tx store.Tx) error) {
	t.Helper()
	if err := s.Read(context.Background(), fn); err != nil {
		t.Fatalf("read: %v", err)
	}
}

// wantErr checks that err matches target with errors.Is.
func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: got error %v, want %v", what, err, target)
	}
}

// fixture is a project with a pipeline, the parent of the jobs a test
// needs.
type fixture struct {
	project  *store.Project
	pipeline *store.Pipeline
}

// newFixture creates a project named name with one running pipeline.
func newFixture(t *testing.T, s store.Store, name string) fixture {
	t.Helper()
	var f fixture
	update(t, s, func(tx store.Tx) error {
		ctx := context.Background()
		var err error
		if f.project, err = tx.Projects().Ensure(ctx, name, epoch); err != nil {
			return err
		}
		f.pipeline = &store.Pipeline{ProjectID: f.project.ID, Status: store.PipelineRunning, Source: "api",
			Ref: "main", CreatedAt: epoch}
		return tx.Pipelines().Create(ctx, f.pipeline)
	})
	return f
}

// job returns a pending job of the fixture's pipeline; callers adjust it
// before creating it.
func (f fixture) job(name string, pendingAt time.Time) *store.Job {
	return &store.Job{
		PipelineID: f.pipeline.ID, Name: name, Stage: "test", Status: store.JobPending, When: "on_success",
		ExitCode: -1, CreatedAt: epoch, PendingAt: pendingAt,
	}
}

// createJobs creates js in one update.
func createJobs(t *testing.T, s store.Store, js ...*store.Job) {
	t.Helper()
	update(t, s, func(tx store.Tx) error {
		for _, j := range js {
			if err := tx.Jobs().Create(context.Background(), j); err != nil {
				return err
			}
		}
		return nil
	})
}

// newAgent creates an active agent whose token hash is derived from name.
func newAgent(t *testing.T, s store.Store, name string, labels ...string) *store.Agent {
	t.Helper()
	a := &store.Agent{Name: name, TokenHash: []byte("hash of " + name), Labels: labels,
		Status: store.AgentActive, Version: "v0.1.0", Concurrency: 1, CreatedAt: epoch, LastSeenAt: epoch}
	update(t, s, func(tx store.Tx) error { return tx.Agents().Create(context.Background(), a) })
	return a
}

// newAttempt creates attempt number of job j, running on agent a.
func newAttempt(t *testing.T, s store.Store, j *store.Job, a *store.Agent, number int) *store.Attempt {
	t.Helper()
	at := &store.Attempt{JobID: j.ID, Number: number, AgentID: a.ID, TokenHash: []byte{byte(number), 1, 2},
		Status: store.AttemptRunning, LeaseExpiresAt: epoch.Add(time.Minute), ExitCode: -1,
		CreatedAt: epoch, StartedAt: epoch}
	update(t, s, func(tx store.Tx) error { return tx.Jobs().CreateAttempt(context.Background(), at) })
	return at
}

// newLog creates a job with a running attempt, whose log a test can fill.
func newLog(t *testing.T, s store.Store) *store.Attempt {
	t.Helper()
	f := newFixture(t, s, "logs")
	j := f.job("build", epoch)
	createJobs(t, s, j)
	return newAttempt(t, s, j, newAgent(t, s, "logger"), 1)
}

// equal checks that got is want as a store keeps it: times compare as
// instants and must come back in UTC; nil and empty slices are alike,
// except Job.Needs, where nil means "wait for the earlier stages".
func equal(t *testing.T, what string, want, got any) {
	t.Helper()
	var diffs []string
	diffValue(what, reflect.ValueOf(want), reflect.ValueOf(got), &diffs)
	if len(diffs) > 0 {
		t.Errorf("%s", strings.Join(diffs, "\n"))
	}
}

var timeType = reflect.TypeFor[time.Time]()

func diffValue(path string, w, g reflect.Value, out *[]string) {
	if w.Type() == timeType {
		wt, gt := w.Interface().(time.Time), g.Interface().(time.Time)
		switch {
		case !wt.Equal(gt):
			*out = append(*out, fmt.Sprintf("%s: got %v, want %v", path, gt, wt))
		case !gt.IsZero() && gt.Location() != time.UTC:
			*out = append(*out, fmt.Sprintf("%s: got %v in %v, want UTC", path, gt, gt.Location()))
		}
		return
	}
	switch w.Kind() {
	case reflect.Pointer:
		if w.IsNil() || g.IsNil() {
			if w.IsNil() != g.IsNil() {
				*out = append(*out, fmt.Sprintf("%s: got %v, want %v", path, g, w))
			}
			return
		}
		diffValue(path, w.Elem(), g.Elem(), out)
	case reflect.Struct:
		for i := range w.NumField() {
			if f := w.Type().Field(i); f.IsExported() {
				diffValue(path+"."+f.Name, w.Field(i), g.Field(i), out)
			}
		}
	case reflect.Slice:
		if strings.HasSuffix(path, ".Needs") && w.IsNil() != g.IsNil() {
			*out = append(*out, fmt.Sprintf("%s: got %#v, want %#v (nil and empty differ)", path, g, w))
			return
		}
		if w.Type().Elem().Kind() == reflect.Uint8 {
			if !bytes.Equal(w.Bytes(), g.Bytes()) {
				*out = append(*out, fmt.Sprintf("%s: got %x, want %x", path, g.Bytes(), w.Bytes()))
			}
			return
		}
		if w.Len() != g.Len() {
			*out = append(*out, fmt.Sprintf("%s: got %v, want %v", path, g, w))
			return
		}
		for i := range w.Len() {
			diffValue(fmt.Sprintf("%s[%d]", path, i), w.Index(i), g.Index(i), out)
		}
	default:
		if !reflect.DeepEqual(w.Interface(), g.Interface()) {
			*out = append(*out, fmt.Sprintf("%s: got %#v, want %#v", path, g, w))
		}
	}
}

// ids returns the IDs of records.
func ids[T any](records []*T, id func(*T) int64) []int64 {
	out := make([]int64, 0, len(records))
	for _, r := range records {
		out = append(out, id(r))
	}
	return out
}

func jobID(j *store.Job) int64           { return j.ID }
func pipelineID(p *store.Pipeline) int64 { return p.ID }
func attemptID(a *store.Attempt) int64   { return a.ID }
func agentID(a *store.Agent) int64       { return a.ID }

// equalIDs checks a list of IDs, order included.
func equalIDs(t *testing.T, what string, want, got []int64) {
	t.Helper()
	if !slices.Equal(want, got) {
		t.Errorf("%s: got IDs %v, want %v", what, got, want)
	}
}

// sortedIDs returns the IDs of records in increasing order, for lists
// whose order the store does not promise.
func sortedIDs[T any](records []*T, id func(*T) int64) []int64 {
	out := ids(records, id)
	slices.Sort(out)
	return out
}
