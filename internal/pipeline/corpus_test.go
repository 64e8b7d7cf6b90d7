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

// disagreement is a job where Hangar follows GitLab's documented behaviour
// and gitlab-ci-local does not. Each names the case, the listing (push or
// mr), the job as the oracle names it, what GitLab does instead, and why.
type disagreement struct {
	listing, job string
	// absent: GitLab does not create the job; otherwise want replaces the
	// oracle's entry.
	absent bool
	want   *oracleJob
	why    string
}

// Reasons, from GitLab's CI/CD YAML reference.
const (
	whyOnly     = "gitlab-ci-local ignores only/except; GitLab applies it (CI/CD YAML reference, only/except)"
	whyWorkflow = "gitlab-ci-local never suppresses a pipeline by workflow:rules; GitLab creates none when no rule matches or one says never"
	whyMRDefault = "jobs without rules or only/except get only: [branches, tags] and are not in merge request pipelines"
)

// corpusDisagreements are every known case where the oracle's listing is
// not what GitLab creates. Cases whose whole pipeline GitLab would not
// create are in noPipeline instead.
var corpusDisagreements = map[string][]disagreement{}

// noPipeline lists the case listings for which GitLab creates no pipeline
// although the oracle lists jobs.
var noPipeline = map[string]string{}

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
		if d.absent {
			delete(want, d.job)
		} else {
			want[d.job] = *d.want
		}
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
