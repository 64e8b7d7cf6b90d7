// Package api holds the wire types of Hangar's HTTP/JSON API (/api/v1),
// shared by the server, the agent and the CLI. docs/protocol.md describes
// the calls; this package is their vocabulary.
package api

import (
	"time"

	"github.com/hangar-ci/hangar/internal/pipeline"
	"github.com/hangar-ci/hangar/internal/store"
)

// Prefix is the path every call of this version of the API starts with.
const Prefix = "/api/v1"

// Limits the server enforces.
const (
	// MaxLogAppend is the largest body of one log append.
	MaxLogAppend = 1 << 20
	// MaxCompleteLog is the largest log tail a completion carries (base64
	// in JSON, it must fit MaxJSONBody).
	MaxCompleteLog = 512 << 10
	// MaxJSONBody is the largest JSON request body.
	MaxJSONBody = 1 << 20
	// MaxClaimWait is the longest a claim waits for a job.
	MaxClaimWait = 60 * time.Second
)

// Error is the body of every error response.
type Error struct {
	// Error says what is wrong, for a person.
	Error string `json:"error"`
	// Size is the log's current length, sent with 416 for a log append
	// that would leave a gap.
	Size *int64 `json:"size,omitempty"`
	// Problems are the pipeline file's errors, sent with 422 when a
	// pipeline cannot be created.
	Problems []pipeline.Diagnostic `json:"problems,omitempty"`
}

// Variable is a variable given to a pipeline or seen by a job.
type Variable struct {
	Name   string `json:"name"`
	Value  string `json:"value"`
	Masked bool   `json:"masked,omitempty"`
}

// RegisterRequest registers an agent (with the registration token).
type RegisterRequest struct {
	Name        string   `json:"name"`
	Labels      []string `json:"labels"`
	Version     string   `json:"version"`
	Concurrency int      `json:"concurrency"`
}

// RegisterResponse gives a registered agent its ID and token.
type RegisterResponse struct {
	ID    int64  `json:"id"`
	Token string `json:"token"`
	// HeartbeatSeconds is how often the agent must report its health; an
	// agent silent for a few of these is marked gone.
	HeartbeatSeconds float64 `json:"heartbeat_seconds"`
}

// ClaimRequest asks for a job, waiting up to WaitSeconds for one.
type ClaimRequest struct {
	WaitSeconds float64 `json:"wait_seconds"`
}

// Assignment is a claimed job: one attempt and what it takes to run it.
type Assignment struct {
	AttemptID int64 `json:"attempt_id"`
	// Attempt numbers the job's attempts from 1.
	Attempt int `json:"attempt"`
	// Token authorises the calls about this attempt.
	Token      string `json:"token"`
	JobID      int64  `json:"job_id"`
	JobName    string `json:"job_name"`
	Stage      string `json:"stage"`
	PipelineID int64  `json:"pipeline_id"`
	Project    string `json:"project"`
	// Archive is the digest of the source snapshot, fetched with
	// GET /attempts/{id}/source.
	Archive      string     `json:"archive"`
	BeforeScript []string   `json:"before_script,omitempty"`
	Script       []string   `json:"script"`
	AfterScript  []string   `json:"after_script,omitempty"`
	Variables    []Variable `json:"variables"`
	// Image is the image to run the job in; nil means the executor's
	// default.
	Image    *Image    `json:"image,omitempty"`
	Services []Service `json:"services,omitempty"`
	// Artifacts says which files to upload after the job; nil means none.
	Artifacts *Artifacts `json:"artifacts,omitempty"`
	// MaxArtifactBytes is the largest artifacts archive the server takes;
	// 0 means it did not say.
	MaxArtifactBytes int64   `json:"max_artifact_bytes,omitempty"`
	Caches           []Cache `json:"caches,omitempty"`
	// Dependencies are the artifacts of earlier jobs to download into the
	// workspace before the job runs, in order (a later one wins).
	Dependencies []ArtifactRef `json:"dependencies,omitempty"`
	// ExpiredDependencies names the jobs whose artifacts the job depends
	// on but which expired: the agent fails the job.
	ExpiredDependencies []string `json:"expired_dependencies,omitempty"`
	// TimeoutSeconds bounds before_script + script.
	TimeoutSeconds float64 `json:"timeout_seconds"`
	// LeaseSeconds is how long the attempt lives without a heartbeat.
	LeaseSeconds float64 `json:"lease_seconds"`
}

// The parts of a job's specification travel as the store holds them:
// one definition, so that the wire and the database cannot drift apart
// (a change to either is a change to both, and wants a migration).
type (
	// Image is a job's or a service's image: store.ImageSpec.
	Image = store.ImageSpec
	// Service is one of a job's services: store.ServiceSpec.
	Service = store.ServiceSpec
	// Artifacts says which files a job keeps: store.ArtifactsSpec.
	Artifacts = store.ArtifactsSpec
	// Cache is one of a job's caches: store.CacheSpec.
	Cache = store.CacheSpec
)

// ArtifactRef names the artifacts archive of one job, as an attempt that
// depends on the job downloads it: GET /attempts/{id}/artifacts/{job_id}.
type ArtifactRef struct {
	JobID   int64  `json:"job_id"`
	JobName string `json:"job_name"`
	// Size is the archive's size in bytes and Digest its sha256.
	Size   int64  `json:"size"`
	Digest string `json:"digest"`
}

// Health is what an agent reports about its machine.
type Health struct {
	DiskTotalBytes int64 `json:"disk_total_bytes"`
	DiskFreeBytes  int64 `json:"disk_free_bytes"`
	WorkDirBytes   int64 `json:"work_dir_bytes"`
	MemTotalBytes  int64 `json:"mem_total_bytes"`
	MemAvailBytes  int64 `json:"mem_available_bytes"`
	RunningJobs    int   `json:"running_jobs"`
}

// HeartbeatResponse answers an attempt's heartbeat.
type HeartbeatResponse struct {
	// Cancel tells the agent to stop the attempt and complete it as
	// canceled.
	Cancel       bool    `json:"cancel"`
	LeaseSeconds float64 `json:"lease_seconds"`
}

// AppendResponse answers a log append with the log's size.
type AppendResponse struct {
	Size int64 `json:"size"`
}

// CompleteRequest says how an attempt ended.
type CompleteRequest struct {
	// Status is success, failed or canceled.
	Status   string `json:"status"`
	ExitCode int    `json:"exit_code"`
	// FailureReason: script_failure, job_execution_timeout,
	// runner_system_failure.
	FailureReason string `json:"failure_reason,omitempty"`
	// Log, when not empty, is the end of the attempt's log, appended at
	// LogOffset in the same transaction as the completion (as PUT …/log
	// would: idempotent, a gap is refused with 416). It spares a short
	// job a separate append.
	LogOffset int64  `json:"log_offset,omitempty"`
	Log       []byte `json:"log,omitempty"`
	// Steps are how long each step of the attempt took, in the order they
	// ran (at most MaxSteps): get_sources, restore_cache,
	// download_artifacts, prepare_executor, script, after_script,
	// save_cache, upload_artifacts. The analytics chart the slowest.
	Steps []StepTiming `json:"steps,omitempty"`
}

// StepTiming is how long one step of an attempt took.
type StepTiming = store.StepTiming

// MaxSteps bounds the steps a completion reports.
const MaxSteps = 32

// SourceResponse answers a source upload.
type SourceResponse struct {
	Archive string `json:"archive"`
	Size    int64  `json:"size"`
}

// CreatePipelineRequest creates a pipeline in a project from an uploaded
// source archive.
type CreatePipelineRequest struct {
	// Archive is an uploaded source snapshot; or Git names a commit of a
	// repository the server fetches. One of the two.
	Archive string     `json:"archive,omitempty"`
	Git     *GitSource `json:"git,omitempty"`
	// File is the pipeline file's path in the archive (.gitlab-ci.yml).
	File string `json:"file,omitempty"`
	// Source is the event: push (default), web, api, schedule, …
	Source        string     `json:"source,omitempty"`
	Branch        string     `json:"branch,omitempty"`
	Tag           string     `json:"tag,omitempty"`
	DefaultBranch string     `json:"default_branch,omitempty"`
	SHA           string     `json:"sha,omitempty"`
	CommitMessage string     `json:"commit_message,omitempty"`
	Variables     []Variable `json:"variables,omitempty"`
	// Changed lists the changed paths; nil means unknown.
	Changed []string `json:"changed,omitempty"`
	// MergeRequest is set for a merge request pipeline.
	MergeRequest *MergeRequest `json:"merge_request,omitempty"`
}

// GitSource is a commit of a git repository.
type GitSource struct {
	// URL is what git fetches from: https://…, ssh://…, file://…
	URL string `json:"url"`
	// Commit is the commit's ID (full, or abbreviated).
	Commit string `json:"commit"`
}

// MergeRequest describes the merge request a pipeline runs for.
type MergeRequest struct {
	IID          int      `json:"iid"`
	SourceBranch string   `json:"source_branch"`
	TargetBranch string   `json:"target_branch"`
	Title        string   `json:"title,omitempty"`
	Labels       []string `json:"labels,omitempty"`
}

// Pipeline is a pipeline with its jobs.
type Pipeline struct {
	ID         int64      `json:"id"`
	Project    string     `json:"project"`
	Status     string     `json:"status"`
	Source     string     `json:"source"`
	Ref        string     `json:"ref"`
	SHA        string     `json:"sha,omitempty"`
	Name       string     `json:"name,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	StartedAt  *time.Time `json:"started_at,omitempty"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	Jobs       []Job      `json:"jobs,omitempty"`
	// Version changes whenever the pipeline, its jobs or their logs
	// change; a watch returns when it differs from the one given.
	Version string `json:"version,omitempty"`
}

// Job is one job of a pipeline.
type Job struct {
	ID            int64      `json:"id"`
	PipelineID    int64      `json:"pipeline_id"`
	Name          string     `json:"name"`
	Stage         string     `json:"stage"`
	Status        string     `json:"status"`
	When          string     `json:"when"`
	AllowFailure  bool       `json:"allow_failure"`
	Tags          []string   `json:"tags,omitempty"`
	Needs         []string   `json:"needs"`
	Reason        string     `json:"reason,omitempty"`
	FailureReason string     `json:"failure_reason,omitempty"`
	ExitCode      *int       `json:"exit_code,omitempty"`
	CreatedAt     time.Time  `json:"created_at"`
	PendingAt     *time.Time `json:"pending_at,omitempty"`
	StartedAt     *time.Time `json:"started_at,omitempty"`
	FinishedAt    *time.Time `json:"finished_at,omitempty"`
	Attempts      []Attempt  `json:"attempts,omitempty"`
}

// Attempt is one execution of a job.
type Attempt struct {
	ID            int64      `json:"id"`
	Number        int        `json:"number"`
	AgentID       int64      `json:"agent_id"`
	Status        string     `json:"status"`
	ExitCode      *int       `json:"exit_code,omitempty"`
	FailureReason string     `json:"failure_reason,omitempty"`
	StartedAt     time.Time  `json:"started_at"`
	FinishedAt    *time.Time `json:"finished_at,omitempty"`
	LogSize       int64      `json:"log_size"`
	// Steps are how long each step took, as the agent reported them at
	// the end.
	Steps []StepTiming `json:"steps,omitempty"`
}

// Agent is a registered agent.
type Agent struct {
	ID          int64     `json:"id"`
	Name        string    `json:"name"`
	Labels      []string  `json:"labels"`
	Status      string    `json:"status"`
	Version     string    `json:"version"`
	Concurrency int       `json:"concurrency"`
	Health      Health    `json:"health"`
	CreatedAt   time.Time `json:"created_at"`
	LastSeenAt  time.Time `json:"last_seen_at"`
}

// LogsRequest asks for the log bytes of a pipeline's attempts from the
// offsets given (POST /pipelines/{id}/logs).
type LogsRequest struct {
	From []LogCursor `json:"from"`
}

// LogCursor is a place in an attempt's log.
type LogCursor struct {
	AttemptID int64 `json:"attempt_id"`
	Offset    int64 `json:"offset"`
}

// LogsResponse holds log pieces, in the order asked, at most MaxLogsResponse
// bytes in all: ask again from where they end for the rest.
type LogsResponse struct {
	Pieces []LogPiece `json:"pieces"`
}

// LogPiece is bytes of one attempt's log from Offset.
type LogPiece struct {
	AttemptID int64  `json:"attempt_id"`
	Offset    int64  `json:"offset"`
	Data      []byte `json:"data"`
}

// MaxLogsResponse bounds the log bytes of one LogsResponse.
const MaxLogsResponse = 1 << 20

// LogEvent is the data of one "log" event of a log stream.
type LogEvent struct {
	Attempt int    `json:"attempt"`
	Offset  int64  `json:"offset"`
	Text    string `json:"text"`
}
