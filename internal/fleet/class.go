// Package fleet is the part of the control plane that provisions its own
// runners: runner classes (what kind of instance serves which jobs, and the
// pool policy that sizes it), the autoscaler's decision (a pure function of
// an Observation and the clock, so that `hangar sim` can run it on a
// trace), and the providers that create and delete instances.
package fleet

import (
	"time"
)

// Config is the fleet part of the server's configuration file.
type Config struct {
	// Installation names this Hangar installation; instances carry it in
	// their ownership label, so that two installations sharing a provider
	// account never touch each other's instances. Default "hangar".
	Installation string `yaml:"installation"`
	// Concurrent caps the attempts running at once across all classes;
	// 0 means no cap.
	Concurrent int `yaml:"concurrent"`
	// Classes are the runner classes, in the file's order.
	Classes []Class `yaml:"classes"`
}

// Policy names how a class sizes its pool of warm instances.
type Policy string

// The pool policies.
const (
	// PolicyIdle keeps IdleCount idle instances and removes idle ones
	// above that floor after IdleTime: GitLab Runner's docker+machine and
	// autoscaler semantics.
	PolicyIdle Policy = "idle"
	// PolicyAdaptive sizes the warm pool from the recent arrival rate and
	// the measured provisioning time, so that TargetWait is met at the
	// TargetPercentile with the least idle time, down to zero.
	PolicyAdaptive Policy = "adaptive"
	// PolicyStatic keeps MaxInstances instances, whatever the queue: a
	// fixed fleet.
	PolicyStatic Policy = "static"
	// PolicyPerJob creates one instance for each pending job and removes
	// it once the job is done: how webhook-driven runners work.
	PolicyPerJob Policy = "per_job"
)

// Class is one runner class: the instances of one provider setting that
// serve the jobs whose tags are all among Labels.
type Class struct {
	// Name identifies the class: lowercase letters, digits and hyphens,
	// unique among the classes.
	Name string `yaml:"name"`
	// Labels are the labels the class's agents register with; a job runs
	// on the class when all its tags are among them.
	Labels []string `yaml:"labels"`
	// Provider names the provider (local, docker) and ProviderConfig holds
	// its settings, read by the provider.
	Provider       string         `yaml:"provider"`
	ProviderConfig map[string]any `yaml:"provider_config"`
	// CapacityPerInstance is how many attempts one instance runs at once
	// (default 1); MaxInstances caps the class's instances (required).
	CapacityPerInstance int `yaml:"capacity_per_instance"`
	MaxInstances        int `yaml:"max_instances"`
	// Policy is the pool policy; default PolicyIdle.
	Policy Policy `yaml:"policy"`
	// IdleCount is the idle instances kept warm and IdleTime how long an
	// idle instance above that floor lives (policy idle; schedules
	// override both).
	IdleCount int           `yaml:"idle_count"`
	IdleTime  time.Duration `yaml:"idle_time"`
	// MaxUseCount recycles an instance after that many attempts, and
	// MaxInstanceAge after that long; 0 means never.
	MaxUseCount    int           `yaml:"max_use_count"`
	MaxInstanceAge time.Duration `yaml:"max_instance_age"`
	// MaxConcurrentCreates bounds the instances being created at once; 0
	// means no bound (docker+machine creates one at a time: 1).
	MaxConcurrentCreates int `yaml:"max_concurrent_creates"`
	// TargetWait and TargetPercentile are the adaptive policy's goal: that
	// share of jobs (in percent, default 90) waits at most TargetWait
	// (default 5s) from pending to started.
	TargetWait       time.Duration `yaml:"target_wait"`
	TargetPercentile float64       `yaml:"target_percentile"`
	// Schedules override IdleCount and IdleTime while one of their periods
	// matches; the last matching schedule wins, as in GitLab.
	Schedules []Schedule `yaml:"schedules"`
	// BootTimeout deletes an instance whose agent has not registered by
	// then; HeartbeatTimeout declares lost one silent for that long.
	BootTimeout      time.Duration `yaml:"boot_timeout"`
	HeartbeatTimeout time.Duration `yaml:"heartbeat_timeout"`
	// MaxDiskUsedPercent drains and replaces an instance whose work dir's
	// disk is fuller than that; 0 means no check.
	MaxDiskUsedPercent float64 `yaml:"max_disk_used_percent"`
	// PricePerHour is what an instance-hour of the class costs, in any
	// currency: the analytics' cost chart multiplies instance-hours by it.
	PricePerHour float64 `yaml:"price_per_hour"`
	// Spot asks the provider for spot (preemptible) instances; an
	// interrupted attempt runs again on FallbackClass when it is set.
	Spot          bool   `yaml:"spot"`
	FallbackClass string `yaml:"fallback_class"`
	// Hooks run when an instance is removed.
	Hooks Hooks `yaml:"hooks"`
}

// Schedule is a pool setting that holds while one of its periods matches.
type Schedule struct {
	// Periods are cron expressions, as GitLab Runner reads them (with
	// seconds and years: "* * 9-17 * * mon-fri *"; five fields are minutes
	// to weekdays); the schedule holds at any second one of them matches.
	Periods []string `yaml:"periods"`
	// Timezone is an IANA name (default UTC).
	Timezone string `yaml:"timezone"`
	// IdleCount and IdleTime replace the class's while the schedule
	// holds; Load gives a schedule without idle_time the class's.
	IdleCount int           `yaml:"idle_count"`
	IdleTime  time.Duration `yaml:"idle_time"`
	// compiled is Periods and Timezone read once; see Class.Compile.
	compiled *compiledSchedule
}

// Hooks say who hears of an instance's removal.
type Hooks struct {
	// Webhook receives a JSON POST describing the removal.
	Webhook string `yaml:"webhook"`
	// Slack is a Slack incoming-webhook URL.
	Slack string `yaml:"slack"`
	// Command is run by sh -c with the facts in its environment.
	Command string `yaml:"command"`
}
