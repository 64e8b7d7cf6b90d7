package scheduler_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hangar-ci/hangar/internal/pipeline"
	"github.com/hangar-ci/hangar/internal/scheduler"
	"github.com/hangar-ci/hangar/internal/store"
	"github.com/hangar-ci/hangar/internal/store/sqlite"
)

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type fixture struct {
	t     *testing.T
	ctx   context.Context
	store store.Store
	sched *scheduler.Scheduler
	clock *clock
}

func newFixture(t *testing.T, cfg scheduler.Config) *fixture {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "hangar.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c := &clock{t: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)}
	cfg.Now = c.Now
	return &fixture{t: t, ctx: ctx, store: st, sched: scheduler.New(st, cfg), clock: c}
}

// create plans yaml for a push to main and creates the pipeline.
func (f *fixture) create(yaml string) *store.Pipeline {
	f.t.Helper()
	cfg, err := pipeline.Parse(".gitlab-ci.yml", []byte(yaml))
	if err != nil {
		f.t.Fatal(err)
	}
	plan, err := cfg.Plan(pipeline.Context{Source: pipeline.SourcePush, Branch: "main", DefaultBranch: "main",
		Variables: []pipeline.Variable{{Name: "SECRET", Value: "hunter22"}}})
	if err != nil {
		f.t.Fatal(err)
	}
	p, err := f.sched.Create(f.ctx, scheduler.NewPipeline{Project: "demo", Source: "push", Ref: "main", Plan: plan,
		Variables: []store.Variable{{Name: "SECRET", Value: "hunter22", Masked: true}}})
	if err != nil {
		f.t.Fatal(err)
	}
	return p
}

func (f *fixture) agent(labels ...string) *store.Agent {
	f.t.Helper()
	a, _, err := f.sched.RegisterAgent(f.ctx, "a", labels, "test", 1)
	if err != nil {
		f.t.Fatal(err)
	}
	return a
}

func (f *fixture) claim(a *store.Agent) *scheduler.Assignment {
	f.t.Helper()
	as, err := f.sched.Claim(f.ctx, a)
	if err != nil {
		f.t.Fatal(err)
	}
	return as
}

func (f *fixture) complete(as *scheduler.Assignment, status store.AttemptStatus, code int) {
	f.t.Helper()
	reason := ""
	if status == store.AttemptFailed {
		reason = scheduler.FailureScript
	}
	if err := f.sched.Complete(f.ctx, as.Attempt.ID, as.Token, scheduler.Outcome{Status: status, ExitCode: code, FailureReason: reason}); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) job(id int64) *store.Job {
	f.t.Helper()
	var j *store.Job
	err := f.store.Read(f.ctx, func(tx store.Tx) error {
		var err error
		j, err = tx.Jobs().Get(f.ctx, id)
		return err
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return j
}

func (f *fixture) pipeline(id int64) *store.Pipeline {
	f.t.Helper()
	var p *store.Pipeline
	err := f.store.Read(f.ctx, func(tx store.Tx) error {
		var err error
		p, err = tx.Pipelines().Get(f.ctx, id)
		return err
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return p
}

func TestPipelineRunsStageByStage(t *testing.T) {
	f := newFixture(t, scheduler.Config{})
	p := f.create(`
stages: [build, test]
build: {stage: build, script: [make]}
test: {stage: test, script: [make test]}
`)
	if p.Status != store.PipelineCreated {
		t.Fatalf("new pipeline is %s, want created", p.Status)
	}
	a := f.agent()
	as := f.claim(a)
	if as == nil || as.Job.Name != "build" {
		t.Fatalf("first claim = %+v, want build", as)
	}
	if f.claim(a) != nil {
		t.Fatal("test was claimable before build finished")
	}
	if got := f.pipeline(p.ID).Status; got != store.PipelineRunning {
		t.Fatalf("pipeline is %s after the first claim, want running", got)
	}
	vars := map[string]store.Variable{}
	for _, v := range as.Variables {
		vars[v.Name] = v
	}
	if !vars["SECRET"].Masked || vars["CI_JOB_NAME"].Value != "build" || vars["CI_PIPELINE_ID"].Value == "" {
		t.Errorf("assignment variables: SECRET=%+v CI_JOB_NAME=%+v CI_PIPELINE_ID=%+v", vars["SECRET"], vars["CI_JOB_NAME"], vars["CI_PIPELINE_ID"])
	}
	f.complete(as, store.AttemptSuccess, 0)
	as = f.claim(a)
	if as == nil || as.Job.Name != "test" {
		t.Fatalf("second claim = %+v, want test", as)
	}
	f.complete(as, store.AttemptSuccess, 0)
	if got := f.pipeline(p.ID); got.Status != store.PipelineSuccess || got.FinishedAt.IsZero() {
		t.Fatalf("pipeline is %s (finished %v), want success with a finish time", got.Status, got.FinishedAt)
	}
}

func TestTagsMatchLabels(t *testing.T) {
	f := newFixture(t, scheduler.Config{})
	p := f.create(`gpu: {script: [train], tags: [gpu, linux]}`)
	plain := f.agent("linux")
	var jobs []*store.Job
	f.store.Read(f.ctx, func(tx store.Tx) error {
		var err error
		jobs, err = tx.Jobs().ListByPipeline(f.ctx, p.ID)
		return err
	})
	if want := `no agent has the labels "gpu", "linux"`; jobs[0].Reason != want {
		t.Errorf("waiting reason = %q, want %q", jobs[0].Reason, want)
	}
	if f.claim(plain) != nil {
		t.Fatal("an agent without the gpu label claimed a gpu job")
	}
	gpu := f.agent("linux", "gpu", "big")
	if got := f.job(jobs[0].ID).Reason; got != "" {
		t.Errorf("reason after a matching agent registered = %q, want none", got)
	}
	if as := f.claim(gpu); as == nil {
		t.Fatal("the gpu agent could not claim the gpu job")
	}
}

func TestFencing(t *testing.T) {
	f := newFixture(t, scheduler.Config{LeaseTimeout: 10 * time.Second})
	f.create(`job: {script: [run]}`)
	a := f.agent()
	as := f.claim(a)
	if _, err := f.sched.AppendLog(f.ctx, as.Attempt.ID, "wrong", 0, []byte("x")); !errors.Is(err, scheduler.ErrUnauthorized) {
		t.Errorf("append with a wrong token: %v, want ErrUnauthorized", err)
	}
	if _, err := f.sched.AppendLog(f.ctx, as.Attempt.ID, as.Token, 0, []byte("line 1\n")); err != nil {
		t.Fatal(err)
	}
	// The agent goes silent past its lease: the attempt is lost and the
	// job pending again.
	f.clock.Add(11 * time.Second)
	if err := f.sched.Tick(f.ctx); err != nil {
		t.Fatal(err)
	}
	j := f.job(as.Job.ID)
	if j.Status != store.JobPending || j.LostAttempts != 1 {
		t.Fatalf("after the lease: job %s with %d lost attempts, want pending with 1", j.Status, j.LostAttempts)
	}
	// Everything the old attempt says now is refused with ErrStale.
	if _, err := f.sched.Heartbeat(f.ctx, as.Attempt.ID, as.Token); !errors.Is(err, scheduler.ErrStale) {
		t.Errorf("heartbeat of a lost attempt: %v, want ErrStale", err)
	}
	if _, err := f.sched.AppendLog(f.ctx, as.Attempt.ID, as.Token, 7, []byte("line 2\n")); !errors.Is(err, scheduler.ErrStale) {
		t.Errorf("append of a lost attempt: %v, want ErrStale", err)
	}
	err := f.sched.Complete(f.ctx, as.Attempt.ID, as.Token, scheduler.Outcome{Status: store.AttemptSuccess})
	if !errors.Is(err, scheduler.ErrStale) {
		t.Errorf("complete of a lost attempt: %v, want ErrStale", err)
	}
	// A second attempt runs and is the one recorded.
	as2 := f.claim(a)
	if as2 == nil || as2.Attempt.Number != 2 {
		t.Fatalf("retry claim = %+v, want attempt 2", as2)
	}
	f.complete(as2, store.AttemptSuccess, 0)
	if j := f.job(as.Job.ID); j.Status != store.JobSuccess || j.Attempts != 2 {
		t.Errorf("job %s after %d attempts, want success after 2", j.Status, j.Attempts)
	}
}

func TestLostRetriesRunOut(t *testing.T) {
	f := newFixture(t, scheduler.Config{LeaseTimeout: time.Second, LostRetries: 1})
	p := f.create(`job: {script: [run]}`)
	a := f.agent()
	for range 2 {
		if f.claim(a) == nil {
			t.Fatal("nothing to claim")
		}
		f.clock.Add(2 * time.Second)
		if err := f.sched.Tick(f.ctx); err != nil {
			t.Fatal(err)
		}
	}
	var j *store.Job
	f.store.Read(f.ctx, func(tx store.Tx) error {
		jobs, err := tx.Jobs().ListByPipeline(f.ctx, p.ID)
		j = jobs[0]
		return err
	})
	if j.Status != store.JobFailed || j.FailureReason != scheduler.FailureLost || j.Reason != "runner lost" {
		t.Errorf("job %s (%s, %q), want failed with runner_lost and reason \"runner lost\"", j.Status, j.FailureReason, j.Reason)
	}
	if got := f.pipeline(p.ID).Status; got != store.PipelineFailed {
		t.Errorf("pipeline %s, want failed", got)
	}
}

func TestRetryPolicyAndAllowFailure(t *testing.T) {
	f := newFixture(t, scheduler.Config{})
	p := f.create(`
stages: [a, b]
flaky: {stage: a, script: [x], retry: 1}
lenient: {stage: a, script: [x], allow_failure: {exit_codes: [3]}}
after: {stage: b, script: [x]}
`)
	a := f.agent()
	byName := map[string]*scheduler.Assignment{}
	for range 2 {
		as := f.claim(a)
		byName[as.Job.Name] = as
	}
	f.complete(byName["flaky"], store.AttemptFailed, 1)
	if j := f.job(byName["flaky"].Job.ID); j.Status != store.JobPending {
		t.Fatalf("flaky after one failure is %s, want pending (retry: 1)", j.Status)
	}
	f.complete(byName["lenient"], store.AttemptFailed, 3)
	as := f.claim(a)
	if as == nil || as.Job.Name != "flaky" || as.Attempt.Number != 2 {
		t.Fatalf("claim = %+v, want flaky attempt 2", as)
	}
	f.complete(as, store.AttemptFailed, 1)
	if j := f.job(as.Job.ID); j.Status != store.JobFailed {
		t.Fatalf("flaky after two failures is %s, want failed", j.Status)
	}
	// after is skipped: flaky failed for real, lenient only as allowed.
	if got := f.pipeline(p.ID).Status; got != store.PipelineFailed {
		t.Errorf("pipeline %s, want failed", got)
	}
}

func TestCancelReachesRunningAttempt(t *testing.T) {
	f := newFixture(t, scheduler.Config{})
	p := f.create(`
stages: [a, b]
run: {stage: a, script: [x]}
later: {stage: b, script: [x]}
`)
	a := f.agent()
	as := f.claim(a)
	if err := f.sched.CancelPipeline(f.ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	cancel, err := f.sched.Heartbeat(f.ctx, as.Attempt.ID, as.Token)
	if err != nil || !cancel {
		t.Fatalf("heartbeat after cancel = %v, %v; want cancel", cancel, err)
	}
	if got := f.pipeline(p.ID).Status; got.Final() {
		t.Fatalf("pipeline %s while its job still runs", got)
	}
	f.complete(as, store.AttemptCanceled, -1)
	if got := f.pipeline(p.ID).Status; got != store.PipelineCanceled {
		t.Errorf("pipeline %s, want canceled", got)
	}
}

func TestRetryAndPlay(t *testing.T) {
	f := newFixture(t, scheduler.Config{})
	p := f.create(`
stages: [a, b, c]
build: {stage: a, script: [x]}
test: {stage: b, script: [x]}
deploy: {stage: c, script: [x], when: manual}
`)
	a := f.agent()
	as := f.claim(a)
	f.complete(as, store.AttemptFailed, 1)
	if got := f.pipeline(p.ID).Status; got != store.PipelineFailed {
		t.Fatalf("pipeline %s, want failed", got)
	}
	if err := f.sched.RetryJob(f.ctx, as.Job.ID); err != nil {
		t.Fatal(err)
	}
	if got := f.pipeline(p.ID).Status; got != store.PipelineRunning {
		t.Fatalf("pipeline %s after retry, want running", got)
	}
	f.complete(f.claim(a), store.AttemptSuccess, 0) // build
	test := f.claim(a)
	if test == nil || test.Job.Name != "test" {
		t.Fatalf("claim = %+v, want test (it was skipped, then reconsidered)", test)
	}
	f.complete(test, store.AttemptSuccess, 0)
	if got := f.pipeline(p.ID).Status; got != store.PipelineSuccess {
		t.Fatalf("pipeline %s with only a manual job left, want success", got)
	}
	var deploy *store.Job
	f.store.Read(f.ctx, func(tx store.Tx) error {
		jobs, err := tx.Jobs().ListByPipeline(f.ctx, p.ID)
		deploy = jobs[2]
		return err
	})
	if deploy.Status != store.JobManual {
		t.Fatalf("deploy is %s, want manual", deploy.Status)
	}
	if err := f.sched.RetryJob(f.ctx, deploy.ID); !errors.Is(err, scheduler.ErrState) {
		t.Errorf("retry of a manual job: %v, want ErrState", err)
	}
	if err := f.sched.PlayJob(f.ctx, deploy.ID); err != nil {
		t.Fatal(err)
	}
	if as := f.claim(a); as == nil || as.Job.Name != "deploy" {
		t.Fatalf("claim after play = %+v, want deploy", as)
	}
}

func TestWaitClaimWakesAtOnce(t *testing.T) {
	f := newFixture(t, scheduler.Config{})
	a := f.agent()
	got := make(chan *scheduler.Assignment)
	go func() {
		as, err := f.sched.WaitClaim(f.ctx, a, time.Minute)
		if err != nil {
			t.Error(err)
		}
		got <- as
	}()
	time.Sleep(50 * time.Millisecond) // let it wait
	f.create(`job: {script: [x]}`)
	select {
	case as := <-got:
		if as == nil {
			t.Fatal("WaitClaim returned nothing")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("WaitClaim was not woken by a new pending job")
	}
}

func TestConcurrentClaimsNeverShareAJob(t *testing.T) {
	f := newFixture(t, scheduler.Config{})
	for range 10 {
		f.create(`job: {script: [x]}`)
	}
	var (
		mu   sync.Mutex
		seen = map[int64]int{}
		wg   sync.WaitGroup
	)
	for range 4 {
		a := f.agent()
		wg.Go(func() {
			for {
				as, err := f.sched.Claim(f.ctx, a)
				if err != nil {
					t.Error(err)
					return
				}
				if as == nil {
					return
				}
				mu.Lock()
				seen[as.Job.ID]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != 10 {
		t.Errorf("%d jobs claimed, want 10", len(seen))
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("job %d claimed %d times", id, n)
		}
	}
}

// A job allowed to fail only with some exit codes fails the pipeline, and
// skips what follows it, when it fails with another code.
func TestAllowFailureExitCodesOtherCode(t *testing.T) {
	f := newFixture(t, scheduler.Config{})
	p := f.create(`
stages: [a, b]
lenient: {stage: a, script: [x], allow_failure: {exit_codes: [3]}}
after: {stage: b, script: [x]}
`)
	a := f.agent()
	as := f.claim(a)
	f.complete(as, store.AttemptFailed, 1)
	if j := f.job(as.Job.ID); j.Status != store.JobFailed || j.AllowFailure {
		t.Errorf("lenient after exit code 1: %s, allow_failure %v; want failed, not allowed", j.Status, j.AllowFailure)
	}
	if as := f.claim(a); as != nil {
		t.Errorf("claim = %s, want nothing: lenient failed with a code it may not fail with", as.Job.Name)
	}
	if got := f.pipeline(p.ID).Status; got != store.PipelineFailed {
		t.Errorf("pipeline %s, want failed", got)
	}
}

// hookStore runs a function once, after its next Update.
type hookStore struct {
	store.Store
	after func()
}

func (h *hookStore) Update(ctx context.Context, fn func(store.Tx) error) error {
	err := h.Store.Update(ctx, fn)
	if after := h.after; after != nil {
		h.after = nil
		after()
	}
	return err
}

// Deregistering an agent hands back only the attempts still running: one
// that completed between the deregistration's two transactions keeps its
// result.
func TestDeregisterKeepsFinishedAttempts(t *testing.T) {
	f := newFixture(t, scheduler.Config{})
	f.create(`job: {script: [x]}`)
	a := f.agent()
	as := f.claim(a)
	hs := &hookStore{Store: f.store, after: func() { f.complete(as, store.AttemptSuccess, 0) }}
	if err := scheduler.New(hs, scheduler.Config{Now: f.clock.Now}).Deregister(f.ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	var got *store.Attempt
	f.store.Read(f.ctx, func(tx store.Tx) error {
		var err error
		got, err = tx.Jobs().GetAttempt(f.ctx, as.Attempt.ID)
		return err
	})
	if got.Status != store.AttemptSuccess {
		t.Errorf("attempt is %s after its agent deregistered, want success as it completed", got.Status)
	}
	if j := f.job(as.Job.ID); j.Status != store.JobSuccess {
		t.Errorf("job is %s, want success", j.Status)
	}
}

func TestReleaseDoesNotCountAsLost(t *testing.T) {
	f := newFixture(t, scheduler.Config{LostRetries: 1})
	p := f.create(`job: {script: [x]}`)
	a := f.agent()
	for range 3 {
		as := f.claim(a)
		if as == nil {
			t.Fatal("nothing to claim after a hand-back")
		}
		if err := f.sched.Release(f.ctx, as.Attempt.ID, as.Token); err != nil {
			t.Fatal(err)
		}
	}
	if got := f.pipeline(p.ID).Status; got.Final() {
		t.Fatalf("pipeline %s after three hand-backs, want it still running", got)
	}
	as := f.claim(a)
	f.complete(as, store.AttemptSuccess, 0)
	if j := f.job(as.Job.ID); j.Status != store.JobSuccess || j.LostAttempts != 0 || j.Attempts != 4 {
		t.Errorf("job %s, %d lost of %d attempts; want success, 0 lost of 4", j.Status, j.LostAttempts, j.Attempts)
	}
}

func TestDelayedJobWakesAWaitingClaim(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "hangar.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s := scheduler.New(st, scheduler.Config{}) // the real clock: the wake-up is a real timer
	cfg, err := pipeline.Parse(".gitlab-ci.yml", []byte("later: {script: [x], when: delayed, start_in: 1 second}\n"))
	if err != nil {
		t.Fatal(err)
	}
	plan, err := cfg.Plan(pipeline.Context{Source: pipeline.SourcePush, Branch: "main", DefaultBranch: "main"})
	if err != nil {
		t.Fatal(err)
	}
	a, _, err := s.RegisterAgent(context.Background(), "a", nil, "test", 1)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := s.Create(context.Background(), scheduler.NewPipeline{Project: "p", Plan: plan}); err != nil {
		t.Fatal(err)
	}
	if as, _ := s.Claim(context.Background(), a); as != nil {
		t.Fatal("a delayed job was claimed before its time")
	}
	as, err := s.WaitClaim(context.Background(), a, 30*time.Second)
	took := time.Since(start)
	if err != nil || as == nil {
		t.Fatalf("WaitClaim = %v, %v; want the delayed job", as, err)
	}
	if took < time.Second || took > 10*time.Second {
		t.Errorf("the delayed job was claimed after %v, want about 1 s", took)
	}
}

// A drained agent takes no job, even one pending before the drain, and
// DrainAgent says what it still runs.
func TestDrainAgent(t *testing.T) {
	f := newFixture(t, scheduler.Config{LeaseTimeout: time.Minute})
	f.create("a: {script: [x]}\nb: {script: [x]}\nc: {script: [x]}\n")
	a := f.agent()
	as := f.claim(a)
	if as == nil {
		t.Fatal("no claim before the drain")
	}
	running, err := f.sched.DrainAgent(f.ctx, a.ID)
	if err != nil || running != 1 {
		t.Fatalf("DrainAgent = %d, %v; want 1 running", running, err)
	}
	if got, err := f.sched.Claim(f.ctx, a); err != nil || got != nil {
		t.Fatalf("a drained agent claimed %v, %v; want nothing", got, err)
	}
	f.complete(as, store.AttemptSuccess, 0)
	if running, err = f.sched.DrainAgent(f.ctx, a.ID); err != nil || running != 0 {
		t.Errorf("DrainAgent after its attempt ended = %d, %v; want 0", running, err)
	}
	if other := f.agent(); f.claim(other) == nil {
		t.Error("another agent could not claim the jobs the drained one left")
	}
}

// FailPending fails a pending job with the reason given and settles its
// pipeline; a job that is not pending is left alone.
func TestFailPending(t *testing.T) {
	f := newFixture(t, scheduler.Config{LeaseTimeout: time.Minute})
	p := f.create("a: {script: [x], tags: [gpu]}\nb: {script: [x]}\n")
	a := f.agent()
	as := f.claim(a) // b: a has no gpu label
	var gpuJob int64
	err := f.store.Read(f.ctx, func(tx store.Tx) error {
		js, err := tx.Jobs().ListByPipeline(f.ctx, p.ID)
		for _, j := range js {
			if j.Name == "a" {
				gpuJob = j.ID
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// An agent with the gpu label, registered since the caller looked:
	// the job waits for it.
	gpuAgent := f.agent("gpu")
	if err := f.sched.FailPending(f.ctx, gpuJob, "x"); err != nil {
		t.Fatal(err)
	}
	if j := f.job(gpuJob); j.Status != store.JobPending {
		t.Fatalf("FailPending failed a job an active agent serves: %s", j.Status)
	}
	if err := f.sched.Deregister(f.ctx, gpuAgent.ID); err != nil {
		t.Fatal(err)
	}
	if err := f.sched.FailPending(f.ctx, gpuJob, "no runner class serves tags [gpu]"); err != nil {
		t.Fatal(err)
	}
	if j := f.job(gpuJob); j.Status != store.JobFailed || j.Reason != "no runner class serves tags [gpu]" || j.FailureReason != scheduler.FailureStuck {
		t.Errorf("job a is %s (%q, %s), want failed as stuck with the reason given", j.Status, j.Reason, j.FailureReason)
	}
	if err := f.sched.FailPending(f.ctx, as.Job.ID, "x"); err != nil {
		t.Fatal(err)
	}
	if j := f.job(as.Job.ID); j.Status != store.JobRunning {
		t.Errorf("FailPending changed a running job to %s", j.Status)
	}
	f.complete(as, store.AttemptSuccess, 0)
	if st := f.pipeline(p.ID).Status; st != store.PipelineFailed {
		t.Errorf("pipeline %s, want failed", st)
	}
}
