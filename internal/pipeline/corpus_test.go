package pipeline

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// corpusDir holds real .gitlab-ci.yml files with what gitlab-ci-local
// listed for them (../shared beside the repository).
const corpusDir = "../../../shared/corpus/gitlab-ci/cases"

// oracleJob is one entry of gitlab-ci-local's --list-json.
type oracleJob struct {
	Name         string `json:"name"`
	Stage        string `json:"stage"`
	When         string `json:"when"`
	AllowFailure bool   `json:"-"`
	// RawAllowFailure is true, false or {exit_codes: ...}, which is true.
	RawAllowFailure json.RawMessage `json:"allow_failure"`
}

func (j oracleJob) String() string {
	return fmt.Sprintf("%s|%s|%s|af=%v", j.Name, j.Stage, j.When, j.AllowFailure)
}

// disagreement is a job the oracle lists that GitLab, following its
// documented behaviour, does not create. Each names the listing (push or
// mr), the job as the oracle names it, and why.
type disagreement struct {
	listing, job string
	why          string
}

// Reasons, from GitLab's CI/CD YAML reference.
const (
	whyWorkflow  = "gitlab-ci-local never suppresses a pipeline by workflow:rules; GitLab creates none when no rule matches or one says never"
	whyMRDefault = "jobs without rules or only/except get only: [branches, tags] and are not in merge request pipelines"
)

// corpusDisagreements are every known case where the oracle's listing is
// not what GitLab creates. Cases whose whole pipeline GitLab would not
// create are in noPipeline instead. All of them so far are jobs that
// only:/except: keep out of the pipeline, which gitlab-ci-local ignores
// (CI/CD YAML reference, only/except): each why names the
// clause and what in the context decides it. The push is to branch main of
// the project oracle-context.json names, with no pipeline variables set.
var corpusDisagreements = map[string][]disagreement{
	"001": {
		{listing: "push", job: "pmbootstrap-qemu-tests", why: "only: variables: [$CI_RUN_QEMU]: the variable is not set"},
	},
	"003": {
		{listing: "push", job: "MacOS", why: "except: [branches]: the push is to the branch main"},
	},
	"010": {
		{listing: "push", job: "pages", why: "only: [master]: the push is to main"},
	},
	"012": {
		{listing: "push", job: "Stable Release", why: "only: [tags]: the push is to a branch"},
	},
	"016": {
		{listing: "push", job: "cmake:linux:clang:shared", why: "only: [schedules]: the pipeline is a push"},
		{listing: "push", job: "cmake:linux:clang:static", why: "only: [schedules]: the pipeline is a push"},
		{listing: "push", job: "cmake:linux:gcc:static", why: "only: [schedules]: the pipeline is a push"},
		{listing: "push", job: "cmake:mingw:w64-i686:shared", why: "only: [schedules]: the pipeline is a push"},
		{listing: "push", job: "cmake:mingw:w64-x86_64:static", why: "only: [schedules]: the pipeline is a push"},
		{listing: "push", job: "cmake:msvc:v141:x64:static", why: "only: [schedules]: the pipeline is a push"},
		{listing: "push", job: "cmake:msvc:v141:x86:shared", why: "only: [schedules]: the pipeline is a push"},
		{listing: "push", job: "cmake:msvc:v141:x86:static", why: "only: [schedules], inherited by extends: .cmake:msvc:v141:x86: the pipeline is a push"},
		{listing: "push", job: "gcc:legacy", why: "only: [schedules]: the pipeline is a push"},
		{listing: "push", job: "mingw:w64-i686:shared", why: "only: [schedules]: the pipeline is a push"},
		{listing: "push", job: "pages", why: "only: [master@GNOME/libxml2]: the push is to main"},
	},
	"022": {
		{listing: "push", job: "build-master", why: "only: [master]: the push is to main"},
	},
	"027": {
		// Not recorded, Hangar bugs: development S3, development
		// servercore1803/1809 helper docker image (only:
		// [branches@gitlab-org/gitlab-runner]) and windows 1803/1809
		// tests 1/3..3/3 (only: [/.*/@gitlab-org/gitlab-runner]), which
		// GitLab creates on a push to main of gitlab-org/gitlab-runner.
		{listing: "push", job: "bleeding edge S3", why: "only: [master@gitlab-org/gitlab-runner, /\\Av...-rc...\\Z/@gitlab-org/gitlab-runner]: the push is to main"},
		{listing: "push", job: "bleeding edge docker images", why: "only: [master@gitlab-org/gitlab-runner, /\\Av...-rc...\\Z/@gitlab-org/gitlab-runner]: the push is to main"},
		{listing: "push", job: "bleeding edge packagecloud", why: "only: [master@gitlab-org/gitlab-runner, /\\Av...-rc...\\Z/@gitlab-org/gitlab-runner]: the push is to main"},
		{listing: "push", job: "bleeding edge servercore1803 docker images", why: "only: [master@gitlab-org/gitlab-runner, /\\Av...-rc...\\Z/@gitlab-org/gitlab-runner]: the push is to main"},
		{listing: "push", job: "bleeding edge servercore1809 docker images", why: "only: [master@gitlab-org/gitlab-runner, /\\Av...-rc...\\Z/@gitlab-org/gitlab-runner]: the push is to main"},
		{listing: "push", job: "dep status", why: "only: variables: [$CI_DEP_STATUS_ENABLED]: the variable is not set"},
		{listing: "push", job: "prepare alpine-no-root image", why: "only: [/\\Adocker-alpine-no-root-image\\/.*/]: main does not match"},
		{listing: "push", job: "prepare ci image", why: "only: [/\\Adocker-ci-image\\/.*/]: main does not match"},
		{listing: "push", job: "stable S3", why: "only: [/\\Av[0-9]+\\.[0-9]+\\.[0-9]+\\Z/@gitlab-org/gitlab-runner]: the push is to main, not a version tag"},
		{listing: "push", job: "stable docker images", why: "only: [/\\Av[0-9]+\\.[0-9]+\\.[0-9]+\\Z/@gitlab-org/gitlab-runner]: the push is to main, not a version tag"},
		{listing: "push", job: "stable packagecloud", why: "only: [/\\Av[0-9]+\\.[0-9]+\\.[0-9]+\\Z/@gitlab-org/gitlab-runner]: the push is to main, not a version tag"},
		{listing: "push", job: "stable servercore1803 docker images", why: "only: [/\\Av[0-9]+\\.[0-9]+\\.[0-9]+\\Z/@gitlab-org/gitlab-runner]: the push is to main, not a version tag"},
		{listing: "push", job: "stable servercore1809 docker images", why: "only: [/\\Av[0-9]+\\.[0-9]+\\.[0-9]+\\Z/@gitlab-org/gitlab-runner]: the push is to main, not a version tag"},
	},
	"029": {
		{listing: "push", job: "image:base-devel:publish:secure", why: "only: [tags]: the push is to a branch"},
		{listing: "push", job: "image:base-devel:secure", why: "only: [master, add-base-devel-tags, schedules]: the push is to main"},
		{listing: "push", job: "image:base:publish:secure", why: "only: [tags]: the push is to a branch"},
		{listing: "push", job: "image:base:secure", why: "only: [master, add-base-devel-tags, schedules]: the push is to main"},
		{listing: "push", job: "publish", why: "only: [tags]: the push is to a branch"},
		{listing: "push", job: "release", why: "only: refs: [schedules] and variables: [$SCHEDULED_PUBLISH == \"TRUE\"]: the pipeline is a push"},
		{listing: "push", job: "rootfs:base-devel:secure", why: "only: [master, add-base-devel-tags, schedules]: the push is to main"},
		{listing: "push", job: "rootfs:base:secure", why: "only: [master, add-base-devel-tags, schedules]: the push is to main"},
	},
	"037": {
		{listing: "push", job: "prod deploy", why: "only: [master]: the push is to main"},
	},
	"038": {
		{listing: "push", job: "deploy live", why: "only: [master]: the push is to main"},
		{listing: "push", job: "e2e tests staging", why: "only: [master]: the push is to main"},
		{listing: "push", job: "staging", why: "only: [master]: the push is to main"},
	},
	"039": {
		{listing: "push", job: "release", why: "only: [master]: the push is to main"},
	},
	"043": {
		{listing: "push", job: "build-frontend", why: "only: [/^feature-.*$/]: main does not match"},
		{listing: "push", job: "build_backend", why: "only: [/^feature-.*$/]: main does not match"},
		{listing: "push", job: "lint-frontend", why: "only: [/^feature-.*$/]: main does not match"},
		{listing: "push", job: "lint-test-backend", why: "only: [/^feature-.*$/]: main does not match"},
		{listing: "push", job: "pytest-backend", why: "only: [/^feature-.*$/]: main does not match"},
		{listing: "push", job: "run-dast-job", why: "only: [/^feature-.*$/]: main does not match"},
		{listing: "push", job: "run-sast-job", why: "only: [/^feature-.*$/]: main does not match"},
		{listing: "push", job: "snyk_scan", why: "only: [/^feature-.*$/]: main does not match"},
		{listing: "push", job: "unit-test-frontend", why: "only: [/^feature-.*$/]: main does not match"},
	},
	"045": {
		{listing: "push", job: "build_binary", why: "only: [tags]: the push is to a branch"},
		{listing: "push", job: "build_image", why: "only: [tags]: the push is to a branch"},
	},
	"047": {
		{listing: "push", job: "android_play_store_internal_and_alpha_deployment", why: "only: [master], inherited from .android_key_store by extends: .setup_fastlane_android: the push is to main"},
		{listing: "push", job: "android_play_store_productive_deployment", why: "only: [master], inherited from .android_key_store by extends: .setup_fastlane_android: the push is to main"},
		{listing: "push", job: "app_store_submit_to_review", why: "only: [master], inherited by extends: .setup_fastlane_ios: the push is to main"},
		{listing: "push", job: "build_android", why: "only: [master], inherited by extends: .android_key_store: the push is to main"},
		{listing: "push", job: "build_ios", why: "only: [master]: the push is to main"},
		{listing: "push", job: "ios_testflight_beta_deployment", why: "only: [master], inherited by extends: .setup_fastlane_ios: the push is to main"},
		{listing: "push", job: "tweet_about_android_updates", why: "only: [master], inherited from .android_key_store by extends: .setup_fastlane_android: the push is to main"},
		{listing: "push", job: "tweet_about_ios_updates", why: "only: [master], inherited by extends: .setup_fastlane_ios: the push is to main"},
	},
	"048": {
		{listing: "push", job: "deploy_staging", why: "only: [develop]: the push is to main"},
	},
	"051": {
		{listing: "push", job: "build", why: "only: [master, merge_requests]: a push to main is neither"},
	},
	"057": {
		{listing: "push", job: "cleanup_registry", why: "only: [schedules]: the pipeline is a push"},
		{listing: "push", job: "cleanup_runner", why: "only: [schedules]: the pipeline is a push"},
	},
	"058": {
		{listing: "push", job: "release", why: "only: [tags]: the push is to a branch"},
	},
}

// noPipeline lists the case listings for which GitLab creates no pipeline
// although the oracle lists jobs: every job is kept out by only/except,
// rules or the default only: [branches, tags], or workflow: rules match
// nothing. Keys are "case/listing".
var noPipeline = map[string]string{
	"006/mr":   whyMRDefault + "; debian-tracing and debian-disable-relay have rules: if: $CI_PIPELINE_SOURCE == \"push\"",
	"019/push": "every job but pages extends .test-basic, only: refs: [schedules, api, web, merge_requests]; pages has only: variables: [$PETSC_CI_SCHEDULED == \"yes\"], not set: a push matches none",
	"023/mr":   whyMRDefault + ": assume-role, the only job, has none (the jobs with rules: are commented out)",
	"024/push": "every job has only: [merge_requests] (lint itself, the build-* jobs by extends: .build): a push matches none",
	"025/mr":   whyMRDefault + "; upload-release has rules: if: $CI_COMMIT_TAG, not set in a merge request pipeline",
	"030/mr":   whyMRDefault + " (test); deploy has rules: if: $CI_COMMIT_BRANCH == \"pu\", and CI_COMMIT_BRANCH is not set in a merge request pipeline",
	"032/push": "build-one-* have only: [merge_requests]; build-all-* have rules: if: $CI_COMMIT_TAG and if: $CI_MERGE_REQUEST_ID, neither set on a push to a branch",
	"034/mr":   whyMRDefault + " (build_mr); the other jobs have rules: if: $CI_COMMIT_BRANCH == 'develop' or 'staging', not set in a merge request pipeline",
	"040/push": "both jobs have only: [/^master$/]: the push is to main",
	"044/push": whyWorkflow + ": the only rule is if: $CI_COMMIT_BRANCH == \"master\"; the push is to main",
	"044/mr":   whyWorkflow + ": the only rule is if: $CI_COMMIT_BRANCH == \"master\", and CI_COMMIT_BRANCH is not set in a merge request pipeline",
	"054/mr":   whyMRDefault + "; the jobs with rules take them from .main-or-manual (if: $CI_COMMIT_BRANCH == \"main\", release-*, a tag, or a schedule), none of which a merge request pipeline matches",
	"056/push": "job-test, the only job, has only: [test]: the push is to main",
}

// oracleFailures lists the cases the oracle could not read, with why GitLab
// rejects the file too.
var oracleFailures = map[string]string{
	"018": "a legacy (GitLab 7) file: top-level jobs: is a list, not a job",
	"021": "include: remote with an empty address",
	"046": "invalid YAML: a plain scalar runs over a line with a colon",
}

var (
	oracleMatrixName   = regexp.MustCompile(`^(.*): \[(.*)\]$`)
	oracleParallelName = regexp.MustCompile(`^(.*): \[(\d+)/(\d+)\]$`)
)

// normaliseOracleName turns gitlab-ci-local's parallel job names into
// GitLab's: "job: [1/3]" is "job 1/3", "job: [a,b]" is "job: [a, b]".
func normaliseOracleName(name string) string {
	if m := oracleParallelName.FindStringSubmatch(name); m != nil {
		return fmt.Sprintf("%s %s/%s", m[1], m[2], m[3])
	}
	if m := oracleMatrixName.FindStringSubmatch(name); m != nil {
		return m[1] + ": [" + strings.ReplaceAll(m[2], ",", ", ") + "]"
	}
	return name
}

func TestCorpus(t *testing.T) {
	entries, err := os.ReadDir(corpusDir)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("corpus not found at %s: CI must run with ../shared beside the repository: %v", corpusDir, err)
		}
		t.Skipf("corpus not found at %s (../shared beside the repository): %v", corpusDir, err)
	}
	for _, e := range entries {
		c := e.Name()
		t.Run(c, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(corpusDir, c)
			fsys := os.DirFS(dir)
			project, server := oracleProject(t, dir)
			contexts := map[string]Context{
				"push": {Source: SourcePush, Branch: "main", DefaultBranch: "main", Changed: []string{}, Files: fsys,
					ProjectPath: project, ServerURL: server},
				"mr": {Source: SourceMergeRequest, DefaultBranch: "main", Changed: []string{}, Files: fsys,
					ProjectPath: project, ServerURL: server,
					MergeRequest: &MergeRequest{IID: 1, SourceBranch: "feature", TargetBranch: "main"}},
			}
			for _, listing := range []string{"push", "mr"} {
				ctx := contexts[listing]
				cfg, err := Load(fsys, ".gitlab-ci.yml", &ctx)
				if listing == "push" && fileExists(filepath.Join(dir, "expected-error.txt")) && !fileExists(filepath.Join(dir, "expected-noschema.json")) {
					why, known := oracleFailures[c]
					if !known {
						t.Fatalf("the oracle failed on this case; Hangar: %v (record it in oracleFailures)", err)
					}
					if err == nil {
						t.Fatalf("GitLab rejects this file (%s); Hangar accepted it", why)
					}
					return
				}
				expected := loadOracle(t, dir, listing)
				if expected == nil {
					continue
				}
				if err != nil {
					t.Fatalf("%s: Load: %v", listing, err)
				}
				compareWithOracle(t, c, listing, cfg, ctx, expected)
			}
		})
	}
}

func compareWithOracle(t *testing.T, c, listing string, cfg *Config, ctx Context, expected []oracleJob) {
	t.Helper()
	plan, err := cfg.Plan(ctx)
	if err != nil {
		t.Fatalf("%s: Plan: %v", listing, err)
	}
	key := c + "/" + listing
	if len(expected) == 0 {
		if plan.Created {
			t.Errorf("%s: the oracle lists no job that runs, got %d jobs", listing, len(plan.Jobs))
		}
		return
	}
	if why, ok := noPipeline[key]; ok {
		if plan.Created {
			t.Errorf("%s: want no pipeline (%s), got %d jobs", listing, why, len(plan.Jobs))
		}
		return
	}
	if !plan.Created {
		t.Fatalf("%s: no pipeline: %s", listing, plan.Reason)
	}
	hasRules, hasOnly := map[string]bool{}, map[string]bool{}
	for _, j := range cfg.Jobs {
		hasRules[j.Name] = j.Rules != nil
		hasOnly[j.Name] = j.Only != nil
	}
	want := map[string]oracleJob{}
	for _, j := range expected {
		j.Name = normaliseOracleName(j.Name)
		base := j.Name
		if m := oracleMatrixName.FindStringSubmatch(j.Name); m != nil {
			base = m[1]
		} else if i := strings.LastIndex(j.Name, " "); i > 0 && regexp.MustCompile(`^\d+/\d+$`).MatchString(j.Name[i+1:]) {
			base = j.Name[:i]
		}
		// GitLab: a manual job outside rules may fail (allow_failure
		// defaults to true); the oracle says false.
		if j.When == "manual" && !hasRules[base] && !j.AllowFailure && !explicitAllowFailure(cfg, base) {
			j.AllowFailure = true
		}
		// GitLab: a job without rules or only: has only: [branches,
		// tags] and is not in a merge request pipeline; the oracle
		// lists it.
		if listing == "mr" && !hasRules[base] && !hasOnly[base] {
			continue
		}
		want[j.Name] = j
	}
	for _, d := range corpusDisagreements[c] {
		if d.listing != listing {
			continue
		}
		if _, ok := want[d.job]; !ok {
			t.Errorf("%s: recorded disagreement on %q, but the oracle does not list it", listing, d.job)
		}
		delete(want, d.job)
	}
	for name, w := range want {
		w.RawAllowFailure = nil
		want[name] = w
	}
	got := map[string]oracleJob{}
	for _, j := range plan.Jobs {
		got[j.Name] = oracleJob{Name: j.Name, Stage: j.Stage, When: string(j.When), AllowFailure: j.AllowFailure}
	}
	var diffs []string
	for name, w := range want {
		if g, ok := got[name]; !ok {
			diffs = append(diffs, "missing:  "+w.String())
		} else if g.String() != w.String() {
			diffs = append(diffs, "differs:  "+g.String()+"  want "+w.String())
		}
	}
	for name, g := range got {
		if _, ok := want[name]; !ok {
			diffs = append(diffs, "extra:    "+g.String())
		}
	}
	slices.Sort(diffs)
	if len(diffs) > 0 {
		t.Errorf("%s: %d differences from the oracle:\n%s", listing, len(diffs), strings.Join(diffs, "\n"))
	}
}

// explicitAllowFailure reports whether job name sets allow_failure itself.
func explicitAllowFailure(cfg *Config, name string) bool {
	for _, j := range cfg.Jobs {
		if j.Name == name {
			return j.AllowFailure.Set
		}
	}
	return false
}

// oracleProject reads the project path and server the oracle ran with.
func oracleProject(t *testing.T, dir string) (project, server string) {
	data, ok := readIfExists(filepath.Join(dir, "oracle-context.json"))
	if !ok {
		return "", ""
	}
	var oc struct {
		Push struct {
			Variables map[string]string `json:"variables"`
		} `json:"push"`
	}
	if err := json.Unmarshal(data, &oc); err != nil {
		t.Fatalf("read oracle-context.json: %v", err)
	}
	return oc.Push.Variables["CI_PROJECT_PATH"], oc.Push.Variables["CI_SERVER_URL"]
}

// loadOracle reads a listing (push: expected*.json, mr: expected-mr*.json),
// without the when: never jobs it includes.
func loadOracle(t *testing.T, dir, listing string) []oracleJob {
	t.Helper()
	prefix := "expected"
	if listing == "mr" {
		prefix = "expected-mr"
	}
	data, ok := readIfExists(filepath.Join(dir, prefix+".json"))
	if !ok {
		if data, ok = readIfExists(filepath.Join(dir, prefix+"-noschema.json")); !ok {
			return nil
		}
	}
	if i := strings.IndexByte(string(data), '['); i > 0 {
		data = data[i:] // the oracle may print a warning before the JSON
	}
	var jobs []oracleJob
	if err := json.Unmarshal(data, &jobs); err != nil {
		t.Fatalf("read %s listing: %v", listing, err)
	}
	out := jobs[:0]
	for _, j := range jobs {
		j.AllowFailure = string(j.RawAllowFailure) != "false" && len(j.RawAllowFailure) > 0
		j.RawAllowFailure = nil
		if j.When != "never" {
			out = append(out, j)
		}
	}
	return out
}

func readIfExists(path string) ([]byte, bool) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false
	}
	return data, err == nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
