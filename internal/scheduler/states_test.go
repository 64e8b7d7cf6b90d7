package scheduler

import (
	"strings"
	"testing"
	"time"

	"github.com/hangar-ci/hangar/internal/store"
)

// jobsOf builds jobs from a compact description: "name stage status when
// [allow] [needs=a,b]".
func jobsOf(t *testing.T, specs ...string) []*store.Job {
	t.Helper()
	var jobs []*store.Job
	for _, s := range specs {
		f := strings.Fields(s)
		if len(f) < 4 {
			t.Fatalf("bad spec %q", s)
		}
		j := &store.Job{Name: f[0], Status: store.JobStatus(f[2]), When: f[3]}
		j.StageIndex = int(f[1][0] - '0')
		for _, extra := range f[4:] {
			switch {
			case extra == "allow":
				j.AllowFailure = true
			case strings.HasPrefix(extra, "needs="):
				j.Needs = []string{}
				if v := strings.TrimPrefix(extra, "needs="); v != "" {
					j.Needs = strings.Split(v, ",")
				}
			default:
				t.Fatalf("bad spec %q", s)
			}
		}
		jobs = append(jobs, j)
	}
	return jobs
}

func statuses(jobs []*store.Job) string {
	var b strings.Builder
	for i, j := range jobs {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(j.Name + "=" + string(j.Status))
	}
	return b.String()
}

func TestAdvance(t *testing.T) {
	tests := []struct {
		name string
		jobs []string
		want string
	}{
		{"first stage starts",
			[]string{"a 0 created on_success", "b 1 created on_success"},
			"a=pending b=created"},
		{"next stage waits for the running one",
			[]string{"a 0 running on_success", "b 1 created on_success"},
			"a=running b=created"},
		{"next stage starts after success",
			[]string{"a 0 success on_success", "b 1 created on_success", "c 2 created on_success"},
			"a=success b=pending c=created"},
		{"failure skips on_success and starts on_failure",
			[]string{"a 0 failed on_success", "b 1 created on_success", "c 1 created on_failure", "d 1 created always"},
			"a=failed b=skipped c=pending d=pending"},
		{"on_failure is skipped when all succeed",
			[]string{"a 0 success on_success", "c 1 created on_failure"},
			"a=success c=skipped"},
		{"allowed failure counts as success",
			[]string{"a 0 failed on_success allow", "b 1 created on_success", "c 1 created on_failure"},
			"a=failed b=pending c=skipped"},
		{"needs start ahead of their stage",
			[]string{"a 0 running on_success", "b 0 success on_success", "c 1 created on_success needs=b"},
			"a=running b=success c=pending"},
		{"needs: [] starts at once",
			[]string{"a 0 running on_success", "c 2 created on_success needs="},
			"a=running c=pending"},
		{"a skipped need skips",
			[]string{"a 0 skipped on_success", "c 1 created on_success needs=a"},
			"a=skipped c=skipped"},
		{"a skipped job of an earlier stage does not",
			[]string{"a 0 skipped on_success", "c 1 created on_success"},
			"a=skipped c=pending"},
		{"manual becomes manual and does not block when it may fail",
			[]string{"a 0 success on_success", "m 1 created manual allow", "b 2 created on_success"},
			"a=success m=manual b=pending"},
		{"a blocking manual job holds later stages",
			[]string{"m 0 created manual", "b 1 created on_success"},
			"m=manual b=created"},
		{"skips cascade in one pass",
			[]string{"a 0 failed on_success", "b 1 created on_success", "c 2 created on_success needs=b"},
			"a=failed b=skipped c=skipped"},
		{"canceled skips what follows",
			[]string{"a 0 canceled on_success", "b 1 created on_success", "c 1 created always"},
			"a=canceled b=skipped c=pending"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			jobs := jobsOf(t, tt.jobs...)
			advance(jobs, time.Unix(100, 0))
			if got := statuses(jobs); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestAdvanceDelayed(t *testing.T) {
	jobs := jobsOf(t, "d 0 created delayed")
	jobs[0].Spec.StartIn = 5 * time.Second
	now := time.Unix(100, 0)
	advance(jobs, now)
	if jobs[0].Status != store.JobPending || !jobs[0].RunAfter.Equal(now.Add(5*time.Second)) {
		t.Errorf("delayed job: status %s, run after %v; want pending after %v", jobs[0].Status, jobs[0].RunAfter, now.Add(5*time.Second))
	}
}

func TestPipelineStatus(t *testing.T) {
	tests := []struct {
		jobs []string
		want store.PipelineStatus
	}{
		{nil, store.PipelineSkipped},
		{[]string{"a 0 success on_success", "b 1 pending on_success"}, store.PipelineRunning},
		{[]string{"a 0 success on_success", "b 1 success on_success"}, store.PipelineSuccess},
		{[]string{"a 0 success on_success", "b 1 failed on_success"}, store.PipelineFailed},
		{[]string{"a 0 success on_success", "b 1 failed on_success allow"}, store.PipelineSuccess},
		{[]string{"a 0 canceled on_success", "b 1 skipped on_success"}, store.PipelineCanceled},
		{[]string{"a 0 failed on_success", "b 1 canceled on_success"}, store.PipelineFailed},
		{[]string{"a 0 skipped on_success", "b 1 skipped on_success"}, store.PipelineSkipped},
		{[]string{"a 0 success on_success", "m 1 manual manual"}, store.PipelineSuccess},
	}
	for _, tt := range tests {
		jobs := jobsOf(t, tt.jobs...)
		if got := pipelineStatus(jobs); got != tt.want {
			t.Errorf("%v: got %s, want %s", tt.jobs, got, tt.want)
		}
	}
}

func TestRetryable(t *testing.T) {
	tests := []struct {
		name     string
		policy   store.RetryPolicy
		failures int
		reason   string
		code     int
		want     bool
	}{
		{"no retry", store.RetryPolicy{}, 1, FailureScript, 1, false},
		{"max 2, first failure", store.RetryPolicy{Max: 2}, 1, FailureScript, 1, true},
		{"max 2, third failure", store.RetryPolicy{Max: 2}, 3, FailureScript, 1, false},
		{"when script_failure matches", store.RetryPolicy{Max: 1, When: []string{"script_failure"}}, 1, FailureScript, 1, true},
		{"when runner_system_failure does not match a script failure", store.RetryPolicy{Max: 1, When: []string{"runner_system_failure"}}, 1, FailureScript, 1, false},
		{"timeouts are stuck_or_timeout_failure", store.RetryPolicy{Max: 1, When: []string{"stuck_or_timeout_failure"}}, 1, FailureTimeout, 1, true},
		{"exit code listed", store.RetryPolicy{Max: 1, ExitCodes: []int{137}}, 1, FailureScript, 137, true},
		{"exit code not listed", store.RetryPolicy{Max: 1, ExitCodes: []int{137}}, 1, FailureScript, 1, false},
		{"exit codes or when: the code matches", store.RetryPolicy{Max: 1, ExitCodes: []int{1}, When: []string{"runner_system_failure"}}, 1, FailureScript, 1, true},
		{"exit codes or when: neither matches", store.RetryPolicy{Max: 1, ExitCodes: []int{2}, When: []string{"runner_system_failure"}}, 1, FailureScript, 1, false},
	}
	for _, tt := range tests {
		if got := retryable(tt.policy, tt.failures, tt.reason, tt.code); got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestAllowedFailure(t *testing.T) {
	j := &store.Job{AllowFailure: true, AllowFailureExitCodes: []int{2, 3}}
	for code, want := range map[int]bool{2: true, 3: true, 1: false} {
		if got := allowedFailure(j, code); got != want {
			t.Errorf("exit %d: got %v, want %v", code, got, want)
		}
	}
}

// TestCountedStatusAgrees checks that the status computed from counts is
// the one computed from the jobs, for every mix of final, manual, pending
// and running jobs (two jobs each of up to the statuses below).
func TestCountedStatusAgrees(t *testing.T) {
	statuses := []store.JobStatus{store.JobPending, store.JobRunning, store.JobSuccess, store.JobFailed,
		store.JobCanceled, store.JobSkipped, store.JobManual}
	type kind struct {
		status store.JobStatus
		allow  bool
	}
	var kinds []kind
	for _, s := range statuses {
		kinds = append(kinds, kind{s, false}, kind{s, true})
	}
	for i := -1; i < len(kinds); i++ {
		for k := -1; k < len(kinds); k++ {
			var jobs []*store.Job
			c := store.JobCounts{ByStatus: map[store.JobStatus]int{}}
			for _, n := range []int{i, k} {
				if n < 0 {
					continue
				}
				jobs = append(jobs, &store.Job{Status: kinds[n].status, AllowFailure: kinds[n].allow})
				c.ByStatus[kinds[n].status]++
				if kinds[n].status == store.JobFailed && !kinds[n].allow {
					c.FailedBlocking++
				}
			}
			if got, want := countedStatus(c), pipelineStatus(jobs); got != want {
				t.Errorf("jobs %v: counted %s, from jobs %s", kinds[max(i, 0)], got, want)
			}
		}
	}
}

func TestSignalsForgetKeysNobodyWaitsOn(t *testing.T) {
	s := NewSignals()
	c1, r1 := s.Wait(1)
	_, r2 := s.Wait(1)
	_, r3 := s.Wait(2)
	r1()
	if s.Len() != 2 {
		t.Fatalf("%d keys after one of two waiters left, want 2", s.Len())
	}
	r2()
	r3()
	if s.Len() != 0 {
		t.Fatalf("%d keys after every waiter left, want 0", s.Len())
	}
	c4, r4 := s.Wait(1)
	s.Notify(1)
	select {
	case <-c4:
	default:
		t.Fatal("Notify did not wake the waiter")
	}
	r4() // after Notify: harmless
	select {
	case <-c1:
		t.Fatal("a released wait from before was woken by a later Notify")
	default:
	}
	if s.Len() != 0 {
		t.Fatalf("%d keys at the end, want 0", s.Len())
	}
}
