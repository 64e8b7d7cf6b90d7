package sim

import (
	"fmt"
	"time"

	"github.com/hangar-ci/hangar/internal/fleet"
)

// Policy is one named class configuration to simulate.
type Policy struct {
	Name  string
	Class fleet.Class
}

// workingHours is a schedule period for weekdays, 07:00–19:59, as GitLab
// Runner's docker+machine off-peak settings are written the other way
// round.
const workingHours = "* * 7-19 * * mon-fri *"

// Baselines returns the policies `hangar sim` compares when given none,
// for a class of at most maxInstances instances of one slot each:
//
//   - static-N: a fixed fleet of N instances;
//   - per-job: an instance created for each job when it arrives and
//     deleted when it ends (webhook-driven runners);
//   - docker-machine: GitLab Runner's docker+machine, IdleCount 10 in
//     working hours and 0 outside, IdleTime 30 minutes, MaxBuilds 20, one
//     machine created at a time;
//   - idle-K: GitLab's autoscaler semantics with IdleCount K and IdleTime
//     10 minutes;
//   - adaptive-T-pP: Hangar's policy with the target that P% of jobs wait
//     at most T.
func Baselines(maxInstances int) []Policy {
	base := fleet.Class{Name: "sim", MaxInstances: maxInstances, CapacityPerInstance: 1}
	with := func(name string, f func(c *fleet.Class)) Policy {
		c := base
		f(&c)
		return Policy{Name: name, Class: c}
	}
	var ps []Policy
	for _, n := range []int{maxInstances / 2, maxInstances} {
		ps = append(ps, with(fmt.Sprintf("static-%d", n), func(c *fleet.Class) {
			c.Policy, c.MaxInstances = fleet.PolicyStatic, n
		}))
	}
	ps = append(ps, with("per-job", func(c *fleet.Class) { c.Policy, c.MaxUseCount = fleet.PolicyPerJob, 1 }))
	ps = append(ps, with("docker-machine", func(c *fleet.Class) {
		c.Policy, c.IdleCount, c.IdleTime, c.MaxUseCount, c.MaxConcurrentCreates = fleet.PolicyIdle, 0, 30*time.Minute, 20, 1
		c.Schedules = []fleet.Schedule{{Periods: []string{workingHours}, IdleCount: 10, IdleTime: 30 * time.Minute}}
	}))
	for _, k := range []int{0, 2, 5, 10, 20, 40} {
		ps = append(ps, with(fmt.Sprintf("idle-%d", k), func(c *fleet.Class) {
			c.Policy, c.IdleCount, c.IdleTime = fleet.PolicyIdle, k, 10*time.Minute
		}))
	}
	for _, a := range []struct {
		wait time.Duration
		pct  float64
	}{{0, 95}, {0, 99}, {0, 99.9}, {15 * time.Second, 99.9}, {45 * time.Second, 99.9}} {
		ps = append(ps, with(fmt.Sprintf("adaptive-%s-p%g", a.wait, a.pct), func(c *fleet.Class) {
			c.Policy, c.TargetWait, c.TargetPercentile = fleet.PolicyAdaptive, a.wait, a.pct
		}))
	}
	return ps
}
