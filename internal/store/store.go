// Package store defines Hangar's persistent state: the records (projects,
// pipelines, jobs and their attempts, agents, logs, artifacts) and the
// interface every store implementation offers, split by aggregate.
//
// The store is the single source of truth. Every state change the scheduler
// makes is one call to Store.Update, which runs its function in one
// transaction; implementations live in subpackages (sqlite, postgres)
// and all pass the conformance suite in storetest.
package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Errors every implementation returns, so callers can tell them apart with
// errors.Is.
var (
	// ErrNotFound: the record asked for does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the record exists already (a unique name) or changed under
	// the caller.
	ErrConflict = errors.New("conflict")
)

// GapError is returned by Logs.Append when the offset lies beyond the end of
// the log; Size is the log's current length, where the writer must resume.
type GapError struct {
	Size int64
}

func (e *GapError) Error() string {
	return fmt.Sprintf("log append leaves a gap: the log holds %d bytes", e.Size)
}

// Store is a handle on the whole persistent state.
type Store interface {
	// Read runs fn in a read-only transaction: fn sees one consistent state.
	Read(ctx context.Context, fn func(Tx) error) error
	// Update runs fn exactly once in one read-write transaction,
	// committed when fn returns nil and rolled back otherwise.
	// Implementations run updates one at a time (SQLite: one writer;
	// PostgreSQL: a lock every update takes, on every server sharing the
	// database), so fn sees every update committed before it and must not
	// block on anything but the store.
	Update(ctx context.Context, fn func(Tx) error) error
	// Close releases the store's resources.
	Close() error
}

// Tx is one transaction, seen through the aggregates it may touch. Its
// values are valid only inside the function given to Read or Update.
type Tx interface {
	Projects() Projects
	Pipelines() Pipelines
	Jobs() Jobs
	Agents() Agents
	Logs() Logs
	Artifacts() Artifacts
	FleetEvents() FleetEvents
}

// Projects stores projects: every pipeline belongs to one.
type Projects interface {
	// Ensure returns the project named name, creating it when it does not
	// exist yet.
	Ensure(ctx context.Context, name string, now time.Time) (*Project, error)
	Get(ctx context.Context, id int64) (*Project, error)
	GetByName(ctx context.Context, name string) (*Project, error)
	List(ctx context.Context) ([]*Project, error)
}

// Pipelines stores pipelines.
type Pipelines interface {
	// Create inserts p and sets p.ID.
	Create(ctx context.Context, p *Pipeline) error
	Get(ctx context.Context, id int64) (*Pipeline, error)
	// List returns pipelines matching f, newest first.
	List(ctx context.Context, f PipelineFilter) ([]*Pipeline, error)
	// Update writes p's mutable fields: Status, StartedAt, FinishedAt.
	Update(ctx context.Context, p *Pipeline) error
}

// PipelineFilter selects pipelines; zero fields match everything.
type PipelineFilter struct {
	ProjectID int64
	Status    PipelineStatus
	Ref       string
	// Source is what created the pipeline: push, schedule, web, …
	Source string
	// BeforeID pages backwards: only pipelines with ID < BeforeID.
	BeforeID int64
	// Limit caps the result; 0 means 100.
	Limit int
}

// Jobs stores jobs and their attempts: one aggregate, since an attempt
// never changes without its job.
type Jobs interface {
	// Create inserts j and sets j.ID.
	Create(ctx context.Context, j *Job) error
	Get(ctx context.Context, id int64) (*Job, error)
	// ListByPipeline returns the pipeline's jobs ordered by ID.
	ListByPipeline(ctx context.Context, pipelineID int64) ([]*Job, error)
	// ListStates is ListByPipeline without the jobs' Spec (left zero): what
	// the state machine needs, at a fraction of the cost.
	ListStates(ctx context.Context, pipelineID int64) ([]*Job, error)
	// ListPendingTagged returns the pending jobs that have tags, oldest
	// first, without their Spec (left zero).
	ListPendingTagged(ctx context.Context) ([]*Job, error)
	// ListPending returns every pending job, oldest first, without its
	// Spec (left zero).
	ListPending(ctx context.Context) ([]*Job, error)
	// ListPendingSince returns the jobs that became pending after since,
	// whatever their status now, in the order they did, without their
	// Spec: the jobs that arrived.
	ListPendingSince(ctx context.Context, since time.Time) ([]*Job, error)
	// ListByStatus returns up to limit jobs in status (all when limit <= 0),
	// oldest first (by PendingAt for pending jobs, by ID otherwise).
	ListByStatus(ctx context.Context, status JobStatus, limit int) ([]*Job, error)
	// Update writes j's mutable fields: Status, AllowFailure (which a
	// failure's exit code decides when AllowFailureExitCodes is set),
	// Reason, FailureReason, Attempts, LostAttempts, RunAfter, the
	// timestamps, and Tags (the fleet sends a job to a fallback class by a
	// tag).
	Update(ctx context.Context, j *Job) error
	// NextPending returns the oldest pending job (by PendingAt, then ID)
	// whose RunAfter is not after now and whose Tags are all among labels,
	// locking it for this transaction where the database can (PostgreSQL:
	// FOR UPDATE SKIP LOCKED). ErrNotFound when there is none.
	NextPending(ctx context.Context, labels []string, now time.Time) (*Job, error)
	// CountPipeline counts a pipeline's jobs by status.
	CountPipeline(ctx context.Context, pipelineID int64) (JobCounts, error)
	// CountByStatus returns how many jobs are in each status.
	CountByStatus(ctx context.Context) (map[JobStatus]int, error)
	// ListFinished returns the timings of the jobs in a final status
	// (success, failed, canceled, skipped) whose FinishedAt is at or after
	// since (all of them when since is zero), ordered by FinishedAt, then
	// ID, in one query.
	ListFinished(ctx context.Context, since time.Time) ([]*JobTiming, error)

	// CreateAttempt inserts a and sets a.ID. A job has one attempt per
	// Number: a second one is ErrConflict, which is what makes Number a
	// fencing token.
	CreateAttempt(ctx context.Context, a *Attempt) error
	GetAttempt(ctx context.Context, id int64) (*Attempt, error)
	// ListAttempts returns a job's attempts by Number.
	ListAttempts(ctx context.Context, jobID int64) ([]*Attempt, error)
	// ListAttemptsOfPipeline returns the attempts of all of a pipeline's
	// jobs, by job ID and then Number.
	ListAttemptsOfPipeline(ctx context.Context, pipelineID int64) ([]*Attempt, error)
	// UpdateAttempt writes a's mutable fields: Status, LeaseExpiresAt,
	// StartedAt, FinishedAt, ExitCode, FailureReason, CancelRequested,
	// Steps.
	UpdateAttempt(ctx context.Context, a *Attempt) error
	// ExpiredAttempts returns running attempts whose lease ended before now.
	ExpiredAttempts(ctx context.Context, now time.Time) ([]*Attempt, error)
	// RunningAttempts returns the running attempts held by an agent.
	RunningAttempts(ctx context.Context, agentID int64) ([]*Attempt, error)
	// CountAgentAttempts counts the attempts an agent has been given, in
	// whatever state.
	CountAgentAttempts(ctx context.Context, agentID int64) (int, error)
}

// Agents stores registered agents.
type Agents interface {
	// Create inserts a and sets a.ID.
	Create(ctx context.Context, a *Agent) error
	Get(ctx context.Context, id int64) (*Agent, error)
	// GetByTokenHash finds the agent whose token hashes to h. Token hashes
	// are unique: a second agent with the same hash is ErrConflict.
	GetByTokenHash(ctx context.Context, h []byte) (*Agent, error)
	// List returns agents ordered by ID; gone agents only when withGone.
	List(ctx context.Context, withGone bool) ([]*Agent, error)
	// Update writes a's mutable fields: Status, Labels, LastSeenAt, Health.
	Update(ctx context.Context, a *Agent) error
}

// Logs stores the output of attempts as byte streams appended at explicit
// offsets.
type Logs interface {
	// Append writes data at offset of the attempt's log and returns the
	// log's new size. Bytes the log already holds are not written again, so
	// a retried append is harmless: an append that lies wholly within the
	// log changes nothing. An offset beyond the end is refused with a
	// *GapError holding the current size.
	Append(ctx context.Context, attemptID, offset int64, data []byte) (int64, error)
	// Size returns the length of the attempt's log (0 when it has none).
	Size(ctx context.Context, attemptID int64) (int64, error)
	// Sizes returns the lengths of several attempts' logs; attempts without
	// a log are left out.
	Sizes(ctx context.Context, attemptIDs []int64) (map[int64]int64, error)
	// Read returns up to limit bytes of the attempt's log from offset;
	// nothing when offset is at or past the end.
	Read(ctx context.Context, attemptID, offset int64, limit int) ([]byte, error)
}

// Artifacts stores the artifacts archives jobs upload (the archive's bytes
// live elsewhere, under Digest). A job has at most one current archive: a
// later attempt's upload replaces the earlier one.
type Artifacts interface {
	// Put records a as its job's artifacts, replacing the job's previous
	// record, and returns the record it replaced (nil when there was
	// none). It sets a.ID, and a.PipelineID and a.JobName from the job.
	// A job or attempt that does not exist, or an attempt that is not the
	// job's, is ErrNotFound.
	Put(ctx context.Context, a *Artifact) (replaced *Artifact, err error)
	// Get returns the job's current artifacts; ErrNotFound when it has
	// none.
	Get(ctx context.Context, jobID int64) (*Artifact, error)
	// ListByJobNames returns the current artifacts of the pipeline's jobs
	// named names, in one query, expired ones included, in no particular
	// order; jobs without artifacts are left out.
	ListByJobNames(ctx context.Context, pipelineID int64, names []string) ([]*Artifact, error)
	// ListExpired returns up to limit artifacts (all when limit <= 0)
	// whose ExpireAt is set and not after now, soonest expired first.
	ListExpired(ctx context.Context, now time.Time, limit int) ([]*Artifact, error)
	// Delete removes the artifacts record id; ErrNotFound when there is
	// none.
	Delete(ctx context.Context, id int64) error
	// Referenced reports whether some artifacts record holds digest: an
	// archive may be removed only once none does.
	Referenced(ctx context.Context, digest string) (bool, error)
}

// FleetEvents stores the fleet's instance transitions, so that they
// survive restarts and every server sharing the database sees the same.
type FleetEvents interface {
	// Append inserts e and sets e.ID.
	Append(ctx context.Context, e *FleetEvent) error
	// List returns the events at or after since (all when since is zero),
	// oldest first (by At, then ID), at most limit of them (all when
	// limit <= 0): when limited, the newest limit events of that range,
	// still oldest first.
	List(ctx context.Context, since time.Time, limit int) ([]*FleetEvent, error)
	// DeleteBefore deletes the events before t and returns how many.
	DeleteBefore(ctx context.Context, t time.Time) (int, error)
}

// Project is a home for pipelines: for now a name given at submission;
// later a repository with its settings and secret variables.
type Project struct {
	ID        int64
	Name      string
	CreatedAt time.Time
}

// PipelineStatus is where a pipeline is in its life.
type PipelineStatus string

// Pipeline statuses: created → running → success | failed | canceled, and
// skipped when no job was created.
const (
	PipelineCreated  PipelineStatus = "created"
	PipelineRunning  PipelineStatus = "running"
	PipelineSuccess  PipelineStatus = "success"
	PipelineFailed   PipelineStatus = "failed"
	PipelineCanceled PipelineStatus = "canceled"
	PipelineSkipped  PipelineStatus = "skipped"
)

// Final reports whether the pipeline has finished.
func (s PipelineStatus) Final() bool {
	switch s {
	case PipelineSuccess, PipelineFailed, PipelineCanceled, PipelineSkipped:
		return true
	}
	return false
}

// Pipeline is one run of a pipeline file for one event.
type Pipeline struct {
	ID        int64
	ProjectID int64
	Status    PipelineStatus
	// Source is the event: push, web, api, merge_request_event, …
	Source string
	// Ref is the branch or tag; SHA the commit when known.
	Ref string
	SHA string
	// Archive is the digest of the source snapshot the jobs check out.
	Archive string
	// File is the pipeline file's path in the source.
	File string
	// Name is the pipeline's name (workflow: name).
	Name string
	// Variables are the pipeline variables given at creation.
	Variables  []Variable
	CreatedAt  time.Time
	StartedAt  time.Time
	FinishedAt time.Time
}

// JobStatus is where a job is in its life.
type JobStatus string

// Job statuses: created → pending → running → success | failed | canceled |
// skipped | manual.
const (
	JobCreated  JobStatus = "created"
	JobPending  JobStatus = "pending"
	JobRunning  JobStatus = "running"
	JobSuccess  JobStatus = "success"
	JobFailed   JobStatus = "failed"
	JobCanceled JobStatus = "canceled"
	JobSkipped  JobStatus = "skipped"
	JobManual   JobStatus = "manual"
)

// Final reports whether the job has finished (manual jobs have not: they
// wait to be played).
func (s JobStatus) Final() bool {
	switch s {
	case JobSuccess, JobFailed, JobCanceled, JobSkipped:
		return true
	}
	return false
}

// Job is one node of a pipeline's plan.
type Job struct {
	ID         int64
	PipelineID int64
	Name       string
	Stage      string
	// StageIndex orders the stages of the pipeline.
	StageIndex int
	Status     JobStatus
	// When is the job's when: on_success, on_failure, always, manual,
	// delayed.
	When         string
	AllowFailure bool
	// AllowFailureExitCodes allows failure only for these exit codes.
	AllowFailureExitCodes []int
	Tags                  []string
	// Needs is nil when the job waits for its earlier stages; otherwise
	// the names of the jobs it waits for.
	Needs []string
	// Spec is what an agent needs to run the job.
	Spec JobSpec
	// Reason says why the job is where it is: why it waits ("no agent has
	// the labels docker, gpu"), or why it failed ("runner lost").
	Reason string
	// FailureReason classifies a failure: script_failure,
	// job_execution_timeout, runner_system_failure, runner_lost, canceled.
	FailureReason string
	// Attempts counts the attempts made; LostAttempts those that lost their
	// runner.
	Attempts     int
	LostAttempts int
	// ExitCode is the script's exit code of the last attempt, -1 when none.
	ExitCode int
	// RunAfter delays a pending job (when: delayed).
	RunAfter   time.Time
	CreatedAt  time.Time
	PendingAt  time.Time
	StartedAt  time.Time
	FinishedAt time.Time
}

// JobTiming is what analytics need of a finished job.
type JobTiming struct {
	JobID, PipelineID int64
	Name              string
	Status            JobStatus
	PendingAt         time.Time
	StartedAt         time.Time
	FinishedAt        time.Time
	Attempts          int
	// AgentLabels are the labels of the agent that ran the job's last
	// attempt (empty, not nil, when that agent has none); nil when no
	// attempt ran.
	AgentLabels []string
	// Steps are the steps of the job's last attempt (the one AgentLabels
	// come from), in the order they ran; nil when no attempt ran or it
	// reported none.
	Steps []StepTiming
}

// JobCounts counts a pipeline's jobs.
type JobCounts struct {
	ByStatus map[JobStatus]int
	// FailedBlocking counts the failed jobs that may not fail.
	FailedBlocking int
}

// JobSpec is what an agent needs to run a job.
type JobSpec struct {
	BeforeScript []string   `json:"before_script,omitempty"`
	Script       []string   `json:"script,omitempty"`
	AfterScript  []string   `json:"after_script,omitempty"`
	Variables    []Variable `json:"variables,omitempty"`
	// Timeout bounds before_script + script.
	Timeout time.Duration `json:"timeout,omitempty"`
	// StartIn delays a when: delayed job once it is ready.
	StartIn time.Duration `json:"start_in,omitempty"`
	Retry   RetryPolicy   `json:"retry,omitzero"`
	// Image is the container image the job runs in; nil means the
	// executor's default.
	Image *ImageSpec `json:"image,omitempty"`
	// Services are containers started beside the job's.
	Services []ServiceSpec `json:"services,omitempty"`
	// Artifacts are the files the job keeps after it ends; nil means none.
	Artifacts *ArtifactsSpec `json:"artifacts,omitempty"`
	// Caches are the job's caches, restored before it and saved after.
	Caches []CacheSpec `json:"caches,omitempty"`
	// Dependencies names the jobs of the pipeline whose artifacts the job
	// downloads before it runs.
	Dependencies []string `json:"dependencies,omitempty"`
}

// ImageSpec is the image: of a job or a service, variables expanded.
type ImageSpec struct {
	// Name is the image reference, as docker pull takes it.
	Name string `json:"name"`
	// Entrypoint overrides the image's entrypoint when not nil; [""]
	// clears it.
	Entrypoint []string `json:"entrypoint,omitempty"`
	// PullPolicy lists the pull policies the job accepts, best first.
	PullPolicy []string `json:"pull_policy,omitempty"`
	// User is the user the container runs as, when not the image's.
	User string `json:"user,omitempty"`
}

// ServiceSpec is one entry of a job's services:.
type ServiceSpec struct {
	ImageSpec
	// Alias is the extra host name the job reaches the service by, beside
	// the ones derived from the image name.
	Alias string `json:"alias,omitempty"`
	// Command overrides the image's command when not nil.
	Command []string `json:"command,omitempty"`
	// Variables are the service's own, on top of the job's.
	Variables []Variable `json:"variables,omitempty"`
}

// ArtifactsSpec is a job's artifacts:, variables expanded.
type ArtifactsSpec struct {
	// Paths and Exclude are globs relative to the workspace: what to keep,
	// and what of it to leave out.
	Paths   []string `json:"paths,omitempty"`
	Exclude []string `json:"exclude,omitempty"`
	// Name names the archive when it is downloaded.
	Name string `json:"name,omitempty"`
	// Untracked also keeps the files the source tree did not hold.
	Untracked bool `json:"untracked,omitempty"`
	// When is on_success, on_failure or always.
	When string `json:"when,omitempty"`
	// ExpireIn is how long the artifacts are kept; 0 means the server's
	// default, and Never keeps them for good.
	ExpireIn time.Duration `json:"expire_in,omitempty"`
	Never    bool          `json:"never,omitempty"`
}

// CacheSpec is one entry of a job's cache:, variables expanded.
type CacheSpec struct {
	// Key names the cache; with KeyFiles set it is computed from those
	// files instead, prefixed by KeyPrefix.
	Key       string   `json:"key,omitempty"`
	KeyFiles  []string `json:"key_files,omitempty"`
	KeyPrefix string   `json:"key_prefix,omitempty"`
	// Paths are globs of what the cache holds; Untracked adds the files
	// the source tree did not hold.
	Paths     []string `json:"paths,omitempty"`
	Untracked bool     `json:"untracked,omitempty"`
	// When (on_success, on_failure, always) says after which jobs the
	// cache is saved; Policy (pull-push, pull, push) whether it is
	// restored, saved or both.
	When   string `json:"when,omitempty"`
	Policy string `json:"policy,omitempty"`
	// FallbackKeys are tried in order when Key holds no cache.
	FallbackKeys []string `json:"fallback_keys,omitempty"`
}

// RetryPolicy is the pipeline's retry: for one job.
type RetryPolicy struct {
	Max       int      `json:"max,omitempty"`
	When      []string `json:"when,omitempty"`
	ExitCodes []int    `json:"exit_codes,omitempty"`
}

// Variable is one variable a job sees.
type Variable struct {
	Name  string `json:"name"`
	Value string `json:"value"`
	// Masked values are replaced by [MASKED] in the log.
	Masked bool `json:"masked,omitempty"`
}

// AttemptStatus is where an attempt is in its life.
type AttemptStatus string

// Attempt statuses. An attempt starts running when claimed; lost means its
// lease expired before it finished.
const (
	AttemptRunning  AttemptStatus = "running"
	AttemptSuccess  AttemptStatus = "success"
	AttemptFailed   AttemptStatus = "failed"
	AttemptCanceled AttemptStatus = "canceled"
	AttemptLost     AttemptStatus = "lost"
)

// Attempt is one execution of a job on one agent.
type Attempt struct {
	ID    int64
	JobID int64
	// Number counts the job's attempts from 1; it is the fencing token:
	// only the job's latest attempt may write.
	Number  int
	AgentID int64
	// TokenHash is the SHA-256 of the attempt's secret token.
	TokenHash      []byte
	Status         AttemptStatus
	LeaseExpiresAt time.Time
	// CancelRequested tells the agent, at its next heartbeat, to stop.
	CancelRequested bool
	ExitCode        int
	FailureReason   string
	CreatedAt       time.Time
	StartedAt       time.Time
	FinishedAt      time.Time
	// Steps are the steps the agent reported when the attempt completed,
	// in the order they ran; nil before. Stores keep an empty list as
	// none: it reads back nil.
	Steps []StepTiming
}

// StepTiming is how long one step of an attempt took: get_sources,
// restore_cache, download_artifacts, prepare_executor, script,
// after_script, save_cache, upload_artifacts.
type StepTiming struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
}

// AgentStatus is where an agent is in its life.
type AgentStatus string

// Agent statuses.
const (
	AgentActive   AgentStatus = "active"
	AgentDraining AgentStatus = "draining"
	AgentGone     AgentStatus = "gone"
)

// Agent is one registered `hangar agent`.
type Agent struct {
	ID   int64
	Name string
	// TokenHash is the SHA-256 of the agent's token.
	TokenHash   []byte
	Labels      []string
	Status      AgentStatus
	Version     string
	Concurrency int
	Health      Health
	CreatedAt   time.Time
	LastSeenAt  time.Time
}

// Health is what an agent reports about its machine in each heartbeat.
type Health struct {
	// Disk figures are for the file system holding the work dir.
	DiskTotalBytes int64 `json:"disk_total_bytes"`
	DiskFreeBytes  int64 `json:"disk_free_bytes"`
	// WorkDirBytes is the space the agent's work dir takes.
	WorkDirBytes  int64 `json:"work_dir_bytes"`
	MemTotalBytes int64 `json:"mem_total_bytes"`
	MemAvailBytes int64 `json:"mem_available_bytes"`
	RunningJobs   int   `json:"running_jobs"`
}

// Artifact is the artifacts archive of one job: a gzip-compressed tar of
// the files its artifacts: selected, uploaded by one of its attempts.
type Artifact struct {
	ID         int64
	JobID      int64
	PipelineID int64
	// JobName is the job's name, read with the record.
	JobName   string
	AttemptID int64
	// Name is the job's artifacts:name, "artifacts" when it sets none.
	Name string
	// Digest names the archive in the blob store (sha256:…); Size is its
	// length in bytes.
	Digest    string
	Size      int64
	CreatedAt time.Time
	// ExpireAt is when the archive is deleted; the zero time means never.
	ExpireAt time.Time
}

// Expired reports whether the artifacts have expired at now.
func (a *Artifact) Expired(now time.Time) bool {
	return !a.ExpireAt.IsZero() && !a.ExpireAt.After(now)
}

// FleetEvent is one transition of a fleet instance: created, ready,
// draining, deleted, boot_failed, lost, interrupted, adopted.
type FleetEvent struct {
	ID int64
	At time.Time
	// Class is the instance's runner class; Instance its name.
	Class    string
	Instance string
	// Kind is the transition: created, ready, draining, deleted,
	// boot_failed, lost, interrupted or adopted.
	Kind string
	// Reason says why, when the kind does not.
	Reason string
}
