package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hangar-ci/hangar/internal/store"
)

func testAttempts(t *testing.T, open opener) {
	t.Run("ListAttemptsOfPipeline", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ctx := context.Background()
		f, g := newFixture(t, s, "f"), newFixture(t, s, "g")
		j1, j2, k := f.job("1", epoch), f.job("2", epoch), g.job("k", epoch)
		createJobs(t, s, j1, j2, k)
		a := newAgent(t, s, "a")
		// Created out of order: the list is by job, then number.
		a22, a11, k1, a21 := newAttempt(t, s, j2, a, 2), newAttempt(t, s, j1, a, 1), newAttempt(t, s, k, a, 1), newAttempt(t, s, j2, a, 1)
		_ = k1
		read(t, s, func(tx store.Tx) error {
			got, err := tx.Jobs().ListAttemptsOfPipeline(ctx, f.pipeline.ID)
			if err != nil {
				return err
			}
			equal(t, "ListAttemptsOfPipeline", []*store.Attempt{a11, a21, a22}, got)
			return nil
		})
	})

	t.Run("RoundTrip", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ctx := context.Background()
		f := newFixture(t, s, "p")
		j := f.job("build", epoch)
		createJobs(t, s, j)
		ag := newAgent(t, s, "a1")
		full := &store.Attempt{
			JobID: j.ID, Number: 1, AgentID: ag.ID, TokenHash: []byte{0, 1, 0xfe, 0xff},
			Status: store.AttemptFailed, LeaseExpiresAt: at(time.Minute).In(elsewhere), CancelRequested: true,
			ExitCode: 2, FailureReason: "script_failure", CreatedAt: epoch, StartedAt: at(time.Second),
			FinishedAt: at(30 * time.Second), Steps: someSteps,
		}
		bare := &store.Attempt{JobID: j.ID, Number: 2, AgentID: ag.ID, Status: store.AttemptRunning}
		update(t, s, func(tx store.Tx) error {
			if err := tx.Jobs().CreateAttempt(ctx, full); err != nil {
				return err
			}
			return tx.Jobs().CreateAttempt(ctx, bare)
		})
		if full.ID == 0 || bare.ID <= full.ID {
			t.Fatalf("attempt IDs %d then %d: want non-zero and increasing", full.ID, bare.ID)
		}
		read(t, s, func(tx store.Tx) error {
			for _, want := range []*store.Attempt{full, bare} {
				got, err := tx.Jobs().GetAttempt(ctx, want.ID)
				if err != nil {
					return err
				}
				equal(t, fmt.Sprintf("attempt %d", want.Number), want, got)
			}
			_, err := tx.Jobs().GetAttempt(ctx, bare.ID+100)
			wantErr(t, "GetAttempt of a missing attempt", err, store.ErrNotFound)
			return nil
		})
	})

	t.Run("ListAttempts", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ctx := context.Background()
		f := newFixture(t, s, "p")
		j, k := f.job("j", epoch), f.job("k", epoch)
		createJobs(t, s, j, k)
		ag := newAgent(t, s, "a1")
		// Created out of order: the list follows Number, not ID.
		j3 := newAttempt(t, s, j, ag, 3)
		j1 := newAttempt(t, s, j, ag, 1)
		k1 := newAttempt(t, s, k, ag, 1)
		j2 := newAttempt(t, s, j, ag, 2)
		read(t, s, func(tx store.Tx) error {
			got, err := tx.Jobs().ListAttempts(ctx, j.ID)
			if err != nil {
				return err
			}
			equal(t, "ListAttempts", []*store.Attempt{j1, j2, j3}, got)
			got, err = tx.Jobs().ListAttempts(ctx, k.ID)
			if err != nil {
				return err
			}
			equalIDs(t, "ListAttempts of the other job", []int64{k1.ID}, ids(got, attemptID))
			got, err = tx.Jobs().ListAttempts(ctx, k.ID+100)
			if err != nil || len(got) != 0 {
				t.Errorf("ListAttempts of a missing job: got %d, %v; want none", len(got), err)
			}
			return nil
		})
	})

	t.Run("UpdateAttempt", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ctx := context.Background()
		f := newFixture(t, s, "p")
		j := f.job("build", epoch)
		createJobs(t, s, j)
		a := newAttempt(t, s, j, newAgent(t, s, "a1"), 1)
		want := *a
		want.Status, want.LeaseExpiresAt, want.CancelRequested = store.AttemptCanceled, at(time.Hour), true
		want.StartedAt, want.FinishedAt, want.ExitCode, want.FailureReason = at(time.Second), at(time.Minute), 130, "canceled"
		want.Steps = someSteps
		changed := want
		changed.Number, changed.TokenHash = 9, []byte("other") // not mutable
		update(t, s, func(tx store.Tx) error { return tx.Jobs().UpdateAttempt(ctx, &changed) })
		read(t, s, func(tx store.Tx) error {
			got, err := tx.Jobs().GetAttempt(ctx, a.ID)
			if err != nil {
				return err
			}
			equal(t, "updated attempt", &want, got)
			return nil
		})
		err := s.Update(ctx, func(tx store.Tx) error {
			return tx.Jobs().UpdateAttempt(ctx, &store.Attempt{ID: a.ID + 100, Status: store.AttemptLost})
		})
		wantErr(t, "UpdateAttempt of a missing attempt", err, store.ErrNotFound)
	})

	t.Run("Steps", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ctx := context.Background()
		f := newFixture(t, s, "p")
		j, k := f.job("j", epoch), f.job("k", epoch)
		createJobs(t, s, j, k)
		ag := newAgent(t, s, "a1")
		// Attempts 1 to 5 of j, and k's attempt, end with these steps:
		// given to CreateAttempt (1, 2, 3) or to UpdateAttempt (4, 5, k).
		// An empty list is kept as none.
		created := [][]store.StepTiming{nil, someSteps, {}}
		updated := [][]store.StepTiming{someSteps[2:3], {}}
		as := make([]*store.Attempt, 0, 6)
		for i, steps := range created {
			a := &store.Attempt{JobID: j.ID, Number: i + 1, AgentID: ag.ID, TokenHash: []byte{byte(i)},
				Status: store.AttemptRunning, LeaseExpiresAt: at(-time.Minute), CreatedAt: epoch, Steps: steps}
			update(t, s, func(tx store.Tx) error { return tx.Jobs().CreateAttempt(ctx, a) })
			as = append(as, a)
		}
		for i, steps := range updated {
			a := newAttempt(t, s, j, ag, len(created)+i+1)
			// A completion: the steps come with the final status.
			a.Status, a.FinishedAt, a.ExitCode, a.Steps = store.AttemptSuccess, at(time.Minute), 0, steps
			update(t, s, func(tx store.Tx) error { return tx.Jobs().UpdateAttempt(ctx, a) })
			as = append(as, a)
		}
		ka := newAttempt(t, s, k, ag, 1)
		ka.Steps = someSteps
		update(t, s, func(tx store.Tx) error { return tx.Jobs().UpdateAttempt(ctx, ka) })
		// UpdateAttempt writes the steps it is given: attempt 1 gets some,
		// then none again; attempt 2, given its own again, keeps them.
		as[0].Steps = someSteps[:1]
		update(t, s, func(tx store.Tx) error { return tx.Jobs().UpdateAttempt(ctx, as[0]) })
		as[0].Steps = nil
		update(t, s, func(tx store.Tx) error {
			if err := tx.Jobs().UpdateAttempt(ctx, as[0]); err != nil {
				return err
			}
			return tx.Jobs().UpdateAttempt(ctx, as[1])
		})
		want := map[int64][]store.StepTiming{
			as[0].ID: nil, as[1].ID: someSteps, as[2].ID: nil, as[3].ID: someSteps[2:3], as[4].ID: nil,
			ka.ID: someSteps,
		}
		check := func(what string, got []*store.Attempt, n int) {
			t.Helper()
			if len(got) != n {
				t.Errorf("%s: %d attempts, want %d", what, len(got), n)
			}
			for _, a := range got {
				w, ok := want[a.ID]
				if !ok {
					t.Errorf("%s: unexpected attempt %d", what, a.ID)
					continue
				}
				equal(t, fmt.Sprintf("%s: attempt %d's steps", what, a.ID), w, a.Steps)
				if (a.Steps == nil) != (w == nil) {
					t.Errorf("%s: attempt %d has steps %#v, want %#v (nil when none)", what, a.ID, a.Steps, w)
				}
			}
		}
		read(t, s, func(tx store.Tx) error {
			var got []*store.Attempt
			for _, a := range append(as, ka) {
				g, err := tx.Jobs().GetAttempt(ctx, a.ID)
				if err != nil {
					return err
				}
				got = append(got, g)
			}
			check("GetAttempt", got, 6)
			got, err := tx.Jobs().ListAttempts(ctx, j.ID)
			if err != nil {
				return err
			}
			check("ListAttempts", got, 5)
			if got, err = tx.Jobs().ListAttemptsOfPipeline(ctx, f.pipeline.ID); err != nil {
				return err
			}
			check("ListAttemptsOfPipeline", got, 6)
			if got, err = tx.Jobs().ExpiredAttempts(ctx, epoch); err != nil {
				return err
			}
			check("ExpiredAttempts", got, 3) // 1, 2 and 3: running, lease a minute ago
			if got, err = tx.Jobs().RunningAttempts(ctx, ag.ID); err != nil {
				return err
			}
			check("RunningAttempts", got, 4) // and k's
			return nil
		})
	})

	t.Run("ExpiredAndRunning", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ctx := context.Background()
		f := newFixture(t, s, "p")
		a1, a2 := newAgent(t, s, "a1"), newAgent(t, s, "a2")
		now := at(time.Hour)
		type spec struct {
			agent  *store.Agent
			status store.AttemptStatus
			lease  time.Time
		}
		specs := []spec{
			0: {a1, store.AttemptRunning, now.Add(-time.Second)},      // expired
			1: {a2, store.AttemptRunning, now.Add(time.Second)},       // alive
			2: {a1, store.AttemptRunning, now},                        // ends now: not before now
			3: {a1, store.AttemptSuccess, now.Add(-time.Hour)},        // finished
			4: {a2, store.AttemptRunning, now.Add(-time.Minute)},      // expired
			5: {a1, store.AttemptLost, now.Add(-time.Minute)},         // already lost
			6: {a2, store.AttemptRunning, now.Add(-time.Microsecond)}, // expired
		}
		as := make([]*store.Attempt, len(specs))
		for i, sp := range specs {
			j := f.job(fmt.Sprint(i), epoch)
			createJobs(t, s, j)
			as[i] = newAttempt(t, s, j, sp.agent, 1)
			as[i].Status, as[i].LeaseExpiresAt = sp.status, sp.lease
			update(t, s, func(tx store.Tx) error { return tx.Jobs().UpdateAttempt(ctx, as[i]) })
		}
		id := func(is ...int) []int64 {
			out := []int64{}
			for _, i := range is {
				out = append(out, as[i].ID)
			}
			return out
		}
		read(t, s, func(tx store.Tx) error {
			got, err := tx.Jobs().ExpiredAttempts(ctx, now)
			if err != nil {
				return err
			}
			equalIDs(t, "ExpiredAttempts", id(0, 4, 6), sortedIDs(got, attemptID))
			for _, a := range got {
				if a.ID == as[0].ID {
					equal(t, "expired attempt", as[0], a)
				}
			}
			if got, err = tx.Jobs().ExpiredAttempts(ctx, at(-time.Hour)); err != nil || len(got) != 0 {
				t.Errorf("ExpiredAttempts long ago: got %v, %v; want none", ids(got, attemptID), err)
			}

			for _, tc := range []struct {
				agent *store.Agent
				want  []int64
			}{{a1, id(0, 2)}, {a2, id(1, 4, 6)}} {
				got, err := tx.Jobs().RunningAttempts(ctx, tc.agent.ID)
				if err != nil {
					return err
				}
				equalIDs(t, fmt.Sprintf("RunningAttempts(%s)", tc.agent.Name), tc.want, sortedIDs(got, attemptID))
			}
			got, err = tx.Jobs().RunningAttempts(ctx, a2.ID+100)
			if err != nil || len(got) != 0 {
				t.Errorf("RunningAttempts of a missing agent: got %v, %v; want none", ids(got, attemptID), err)
			}
			for _, tc := range []struct {
				agent int64
				want  int
			}{{a1.ID, 4}, {a2.ID, 3}, {a2.ID + 100, 0}} {
				if n, err := tx.Jobs().CountAgentAttempts(ctx, tc.agent); err != nil || n != tc.want {
					t.Errorf("CountAgentAttempts(%d) = %d, %v; want %d", tc.agent, n, err, tc.want)
				}
			}
			return nil
		})
	})
}

func testAgents(t *testing.T, open opener) {
	t.Run("RoundTrip", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ctx := context.Background()
		full := &store.Agent{
			Name: "builder-1", TokenHash: []byte{0xde, 0xad, 0, 0xbe, 0xef}, Labels: []string{"docker", "linux"},
			Status: store.AgentDraining, Version: "v1.2.3", Concurrency: 4,
			Health: store.Health{DiskTotalBytes: 1 << 40, DiskFreeBytes: 1 << 30, WorkDirBytes: 12345,
				MemTotalBytes: 64 << 30, MemAvailBytes: 3 << 30, RunningJobs: 2},
			CreatedAt: epoch.In(elsewhere), LastSeenAt: at(time.Minute),
		}
		bare := &store.Agent{Name: "bare", TokenHash: []byte("bare"), Status: store.AgentActive}
		update(t, s, func(tx store.Tx) error {
			if err := tx.Agents().Create(ctx, full); err != nil {
				return err
			}
			return tx.Agents().Create(ctx, bare)
		})
		if full.ID == 0 || bare.ID <= full.ID {
			t.Fatalf("agent IDs %d then %d: want non-zero and increasing", full.ID, bare.ID)
		}
		read(t, s, func(tx store.Tx) error {
			for _, want := range []*store.Agent{full, bare} {
				got, err := tx.Agents().Get(ctx, want.ID)
				if err != nil {
					return err
				}
				equal(t, "agent "+want.Name, want, got)
				got, err = tx.Agents().GetByTokenHash(ctx, want.TokenHash)
				if err != nil {
					return err
				}
				equal(t, "agent by token "+want.Name, want, got)
			}
			_, err := tx.Agents().Get(ctx, bare.ID+100)
			wantErr(t, "Get of a missing agent", err, store.ErrNotFound)
			_, err = tx.Agents().GetByTokenHash(ctx, []byte{0xde, 0xad})
			wantErr(t, "GetByTokenHash of a prefix", err, store.ErrNotFound)
			_, err = tx.Agents().GetByTokenHash(ctx, []byte("unknown"))
			wantErr(t, "GetByTokenHash of an unknown hash", err, store.ErrNotFound)
			return nil
		})
	})

	t.Run("Update", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ctx := context.Background()
		a := newAgent(t, s, "a1", "docker")
		want := *a
		want.Status, want.Labels, want.LastSeenAt = store.AgentDraining, []string{"docker", "gpu"}, at(time.Hour)
		want.Health = store.Health{DiskFreeBytes: 42, RunningJobs: 1}
		changed := want
		changed.Name, changed.Version, changed.Concurrency = "renamed", "v9", 9 // not mutable
		update(t, s, func(tx store.Tx) error { return tx.Agents().Update(ctx, &changed) })
		read(t, s, func(tx store.Tx) error {
			got, err := tx.Agents().Get(ctx, a.ID)
			if err != nil {
				return err
			}
			equal(t, "updated agent", &want, got)
			return nil
		})
		err := s.Update(ctx, func(tx store.Tx) error {
			return tx.Agents().Update(ctx, &store.Agent{ID: a.ID + 100, Status: store.AgentGone})
		})
		wantErr(t, "Update of a missing agent", err, store.ErrNotFound)
	})

	t.Run("List", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		ctx := context.Background()
		read(t, s, func(tx store.Tx) error {
			got, err := tx.Agents().List(ctx, true)
			if err != nil || len(got) != 0 {
				t.Errorf("List of an empty store: got %v, %v; want none", ids(got, agentID), err)
			}
			return nil
		})
		a1, a2, a3, a4 := newAgent(t, s, "a1"), newAgent(t, s, "a2"), newAgent(t, s, "a3"), newAgent(t, s, "a4")
		a2.Status, a4.Status = store.AgentGone, store.AgentDraining
		update(t, s, func(tx store.Tx) error {
			if err := tx.Agents().Update(ctx, a2); err != nil {
				return err
			}
			return tx.Agents().Update(ctx, a4)
		})
		read(t, s, func(tx store.Tx) error {
			got, err := tx.Agents().List(ctx, false)
			if err != nil {
				return err
			}
			equal(t, "List without gone", []*store.Agent{a1, a3, a4}, got)
			got, err = tx.Agents().List(ctx, true)
			if err != nil {
				return err
			}
			equal(t, "List with gone", []*store.Agent{a1, a2, a3, a4}, got)
			return nil
		})
	})
}

// someSteps are the steps of a completed attempt, as an agent reports
// them: in the order they ran, with fractions of seconds and names a
// store must escape.
var someSteps = []store.StepTiming{
	{Name: "get_sources", Seconds: 1.25}, {Name: "prepare_executor", Seconds: 0.000123},
	{Name: "script", Seconds: 754.0625}, {Name: "after_script", Seconds: 0},
	{Name: "upload_artifacts", Seconds: 3e-9}, {Name: `custom "step" ünïcode`, Seconds: 86399.999999},
}
