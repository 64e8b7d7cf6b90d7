package pipeline

import (
	"time"

	"github.com/hangar-ci/hangar/internal/pipeline/expr"
)

// defaultStages are the stages of a pipeline that does not declare its own.
var defaultStages = []string{".pre", "build", "test", "deploy", ".post"}

// DefaultStage is the stage of a job that does not name one.
const DefaultStage = "test"

// Config is a pipeline file after includes, anchors, extends, !reference and
// default: are resolved and every value is checked. It is the same for every
// pipeline run; Plan turns it into the jobs of one run.
type Config struct {
	// Stages in order, always starting with .pre and ending with .post.
	Stages []string
	// Variables are the global variables, in file order.
	Variables []Variable
	// Workflow holds workflow: rules and name; nil when the file has none.
	Workflow *Workflow
	// Jobs are the visible jobs in file order (hidden .jobs are not here).
	Jobs []*Job
	// Warnings are problems that do not stop the pipeline (deprecated
	// keywords, duplicate keys, jobs without a script).
	Warnings []Diagnostic
	// Files are the files read: the main file first, then local includes.
	Files []string
}

// Variable is one entry of a variables: block.
type Variable struct {
	Name  string
	Value string
	// Expand is false when the variable is declared with expand: false, so
	// its value is used as written.
	Expand bool
	// Description, Options: documentation for manually run pipelines.
	Description string
	Options     []string
	Pos         Position
}

// Workflow is the workflow: keyword.
type Workflow struct {
	Name  string
	Rules []*Rule
	Pos   Position
}

// When says when a job runs relative to the jobs of earlier stages.
type When string

// The values of when:.
const (
	OnSuccess When = "on_success"
	OnFailure When = "on_failure"
	Always    When = "always"
	Manual    When = "manual"
	Delayed   When = "delayed"
	Never     When = "never"
)

// Rule is one entry of rules: (in a job or in workflow:).
type Rule struct {
	If      *expr.Expr // nil when the rule has no if:
	Changes *PathMatch // nil when the rule has no changes:
	Exists  *PathMatch // nil when the rule has no exists:
	// When is empty when the rule does not set it.
	When         When
	StartIn      time.Duration
	AllowFailure *bool
	Variables    []Variable
	// Needs replaces the job's needs when the rule matches; nil when unset.
	Needs         []Need
	Interruptible *bool
	Pos           Position
}

// PathMatch is the changes: or exists: part of a rule: glob patterns of paths
// in the repository.
type PathMatch struct {
	Paths     []string
	CompareTo string // changes:compare_to
	Project   string // exists:project
	Ref       string // exists:ref
	Pos       Position
}

// RefFilter is an only: or except: block.
type RefFilter struct {
	// Refs are branch or tag names, /regexes/, or the keywords branches,
	// tags, merge_requests, api, pipelines, pushes, schedules, triggers,
	// web, external, external_pull_requests, chat; each may end in @project.
	Refs      []string
	Variables []*expr.Expr
	Changes   []string
	// Kubernetes is "active" when only: kubernetes: active is set.
	Kubernetes string
	Pos        Position
}

// AllowFailure is the allow_failure: keyword.
type AllowFailure struct {
	// Set is true when the job says allow_failure at all.
	Set bool
	// Value is the boolean form; true when ExitCodes is set.
	Value bool
	// ExitCodes limits the allowed failure to these exit codes.
	ExitCodes []int
}

// Need is one entry of needs:.
type Need struct {
	Job       string
	Artifacts bool
	Optional  bool
	// Matrix selects instances of a parallel:matrix job; nil selects all.
	Matrix []MatrixCombo
	// Project and Pipeline are set for cross-project and parent-pipeline needs.
	Project  string
	Ref      string
	Pipeline string
	Pos      Position
}

// Retry is the retry: keyword.
type Retry struct {
	Max       int
	When      []string
	ExitCodes []int
}

// MatrixValue is one variable of a parallel:matrix combination.
type MatrixValue struct {
	Name, Value string
}

// MatrixCombo is one combination of parallel:matrix values, in the order the
// variables were written, which is the order GitLab names the job by.
type MatrixCombo []MatrixValue

// Parallel is the parallel: keyword: either a count or a matrix.
type Parallel struct {
	Count  int
	Matrix []map[string][]string
	// MatrixKeys keeps the order of each matrix entry's variables, which
	// decides how the jobs are named.
	MatrixKeys [][]string
	Pos        Position
}

// Image is an image: keyword.
type Image struct {
	Name       string
	Entrypoint []string
	PullPolicy []string
	Platform   string
	User       string
}

// Service is one entry of services:.
type Service struct {
	Image
	Alias     string
	Command   []string
	Variables []Variable
}

// Artifacts is the artifacts: keyword.
type Artifacts struct {
	Paths     []string
	Exclude   []string
	Name      string
	Untracked bool
	When      When
	// ExpireIn is zero when unset or when Never is true.
	ExpireIn time.Duration
	Never    bool
	ExposeAs string
	Public   *bool
	Access   string
	// Reports maps a report type (junit, dotenv, ...) to its paths.
	Reports        map[string][]string
	CoverageReport *CoverageReport
}

// CoverageReport is artifacts:reports:coverage_report.
type CoverageReport struct {
	Format string
	Path   string
}

// Cache is one entry of cache:.
type Cache struct {
	Key          string
	KeyFiles     []string
	KeyPrefix    string
	Paths        []string
	Untracked    bool
	Unprotect    bool
	When         When
	Policy       string
	FallbackKeys []string
}

// Environment is the environment: keyword.
type Environment struct {
	Name           string
	URL            string
	Action         string
	OnStop         string
	AutoStopIn     time.Duration
	DeploymentTier string
	Namespace      string
}

// Trigger is the trigger: keyword of a job that starts a downstream pipeline.
type Trigger struct {
	Project  string
	Branch   string
	Strategy string
	Include  []string
	// ForwardYAMLVariables and ForwardPipelineVariables are forward:.
	ForwardYAMLVariables     bool
	ForwardPipelineVariables bool
}

// Release is the release: keyword.
type Release struct {
	TagName     string
	TagMessage  string
	Name        string
	Description string
	Ref         string
	Milestones  []string
	ReleasedAt  string
	Links       []ReleaseLink
}

// ReleaseLink is one entry of release:assets:links.
type ReleaseLink struct {
	Name, URL, Filepath, DirectAssetPath, LinkType string
}

// Inherit is the inherit: keyword.
type Inherit struct {
	// Default lists the default: keys the job inherits; nil means all of
	// them, empty (inherit: default: false) none.
	Default []string
	// Variables lists the global variables the job inherits; nil means all
	// of them, empty (inherit: variables: false) none.
	Variables []string
}

// IDToken is one entry of id_tokens:.
type IDToken struct {
	Aud []string
}

// Secret is one entry of secrets:. Provider names the secrets manager
// (vault, gcp_secret_manager, azure_key_vault, aws_secrets_manager), Path
// what to read from it.
type Secret struct {
	Provider string
	Path     string
	Engine   string
	Field    string
	Version  string
	File     bool
	Token    string
}

// Job is one job of the pipeline after extends and default: are applied.
type Job struct {
	Name string
	Pos  Position

	Stage    string
	StagePos Position

	BeforeScript []string
	Script       []string
	AfterScript  []string
	// HooksPreGetSources is hooks:pre_get_sources_script.
	HooksPreGetSources []string

	Image     *Image
	Services  []Service
	Variables []Variable

	// Rules is nil when the job has no rules:.
	Rules []*Rule
	// Only and Except are nil when unset.
	Only, Except *RefFilter

	When         When
	WhenSet      bool
	StartIn      time.Duration
	AllowFailure AllowFailure

	// Needs is nil when the job has no needs: and empty for needs: [].
	Needs        []Need
	Dependencies []string
	// DependenciesSet tells dependencies: [] from no dependencies: at all.
	DependenciesSet bool

	Parallel      *Parallel
	Retry         Retry
	Timeout       time.Duration
	Artifacts     *Artifacts
	Cache         []Cache
	Environment   *Environment
	Tags          []string
	Interruptible *bool
	ResourceGroup string
	Coverage      string
	Trigger       *Trigger
	Release       *Release
	Pages         bool
	PagesPublish  string
	Inherit       Inherit
	IDTokens      map[string]IDToken
	Secrets       map[string]Secret
	Identity      string
	// ManualConfirmation is the message shown before a manual job runs.
	ManualConfirmation string
}
