package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// hangar runs the CLI in-process and returns its exit code and output.
func hangar(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// writeRepo writes files into a fresh directory and returns its path.
func writeRepo(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, ".git"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLintJSON(t *testing.T) {
	t.Parallel()
	dir := writeRepo(t, map[string]string{
		".gitlab-ci.yml": "include: ci/jobs.yml\nstages: [build, test]\nbuild:\n  stage: build\n  script: make\n",
		"ci/jobs.yml":    "unit:\n  script: go test\n  parallel: 2\n  needs: [build]\n  tags: [linux]\n  variables:\n    FOO: bar\nlone:\n  script: x\n  needs: []\n",
	})
	code, out, errOut := hangar(t, "lint", "--json", filepath.Join(dir, ".gitlab-ci.yml"))
	if code != exitOK {
		t.Fatalf("exit %d, stderr %s, stdout %s", code, errOut, out)
	}
	var res struct {
		Valid           bool              `json:"valid"`
		Errors          []json.RawMessage `json:"errors"`
		PipelineCreated bool              `json:"pipeline_created"`
		Stages          []string          `json:"stages"`
		Jobs            []struct {
			Name         string             `json:"name"`
			Stage        string             `json:"stage"`
			When         string             `json:"when"`
			AllowFailure *bool              `json:"allow_failure"`
			Needs        *[]json.RawMessage `json:"needs"`
			Tags         []string           `json:"tags"`
			Variables    map[string]string  `json:"variables"`
		} `json:"jobs"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	if !res.Valid || res.Errors == nil || len(res.Errors) != 0 || !res.PipelineCreated {
		t.Fatalf("valid=%v errors=%v created=%v", res.Valid, res.Errors, res.PipelineCreated)
	}
	if strings.Join(res.Stages, ",") != "build,test" {
		t.Errorf("stages = %v", res.Stages)
	}
	var names []string
	for _, j := range res.Jobs {
		names = append(names, j.Name)
	}
	if strings.Join(names, ",") != "build,unit 1/2,unit 2/2,lone" {
		t.Fatalf("jobs = %v", names)
	}
	build, unit, lone := res.Jobs[0], res.Jobs[1], res.Jobs[3]
	if build.Needs != nil || unit.Needs == nil || len(*unit.Needs) != 1 || lone.Needs == nil || len(*lone.Needs) != 0 {
		t.Errorf(`needs must be null without needs:, a list otherwise: build %v unit %v lone %v`, build.Needs, unit.Needs, lone.Needs)
	}
	if build.AllowFailure == nil || *build.AllowFailure || build.When != "on_success" || build.Tags == nil {
		t.Errorf("build = %+v", build)
	}
	if unit.Variables["FOO"] != "bar" || unit.Variables["CI_NODE_INDEX"] != "1" || unit.Variables["CI_COMMIT_BRANCH"] != "main" {
		t.Errorf("unit variables = %v", unit.Variables)
	}
}

func TestLintErrors(t *testing.T) {
	t.Parallel()
	dir := writeRepo(t, map[string]string{
		".gitlab-ci.yml": "build:\n  script: make\n  stgae: build\ntest:\n  script: x\n  needs: [biuld]\n",
	})
	file := filepath.Join(dir, ".gitlab-ci.yml")
	code, out, _ := hangar(t, "lint", file)
	if code != exitFailed {
		t.Fatalf("exit %d, want %d", code, exitFailed)
	}
	for _, want := range []string{
		`.gitlab-ci.yml:3:3: build: unknown keyword "stgae" (did you mean "stage"?)`,
		`.gitlab-ci.yml:6:11: test needs "biuld", which is not a job of this pipeline (did you mean "build"?)`,
		"invalid: 2 error(s)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	code, out, _ = hangar(t, "lint", "--json", file)
	var res struct {
		Valid  bool `json:"valid"`
		Errors []struct {
			File    string `json:"file"`
			Line    int    `json:"line"`
			Column  int    `json:"column"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != exitFailed {
		t.Fatalf("exit %d, %v: %s", code, err, out)
	}
	if res.Valid || len(res.Errors) != 2 || res.Errors[0].Line != 3 || res.Errors[0].Column != 3 || !strings.HasSuffix(res.Errors[0].File, ".gitlab-ci.yml") {
		t.Errorf("errors = %+v", res.Errors)
	}
}

func TestLintContextFlags(t *testing.T) {
	t.Parallel()
	dir := writeRepo(t, map[string]string{
		".gitlab-ci.yml": `
mr:
  script: x
  rules:
    - if: $CI_MERGE_REQUEST_TARGET_BRANCH_NAME == "main" && $CI_MERGE_REQUEST_IID == "5"
tag:
  script: x
  rules:
    - if: $CI_COMMIT_TAG
var:
  script: x
  rules:
    - if: $DEPLOY == "yes"
docs:
  script: x
  rules:
    - changes: [docs/**]
`,
	})
	file := filepath.Join(dir, ".gitlab-ci.yml")
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--mr-iid", "5", "--mr-source-branch", "feature"}, "mr,docs"},
		{[]string{"--tag", "v1"}, "tag,docs"},
		{[]string{"--var", "DEPLOY=yes", "--changed", "src/main.go"}, "var"},
		{[]string{"--changed", "docs/index.md"}, "docs"},
	}
	for _, tt := range tests {
		code, out, errOut := hangar(t, append(append([]string{"lint", "--json"}, tt.args...), file)...)
		if code != exitOK {
			t.Fatalf("%v: exit %d: %s", tt.args, code, errOut)
		}
		var res struct {
			Jobs []struct{ Name string } `json:"jobs"`
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, j := range res.Jobs {
			names = append(names, j.Name)
		}
		if got := strings.Join(names, ","); got != tt.want {
			t.Errorf("%v: jobs %q, want %q", tt.args, got, tt.want)
		}
	}
}

func TestLintUsage(t *testing.T) {
	t.Parallel()
	dir := writeRepo(t, map[string]string{".gitlab-ci.yml": "a:\n  script: x\n"})
	file := filepath.Join(dir, ".gitlab-ci.yml")
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"lint", "--source", "pull"}, exitUsage, `--source "pull" is not a pipeline source`},
		{[]string{"lint", "--var", "NOEQUALS", file}, exitUsage, `--var "NOEQUALS" must be KEY=VALUE`},
		{[]string{"lint", "--branch", "a", "--tag", "b", file}, exitUsage, "cannot both be given"},
		{[]string{"lint", "--source", "merge_request_event", file}, exitUsage, "needs --mr-iid"},
		{[]string{"lint", "--bogus"}, exitUsage, "flag provided but not defined"},
		{[]string{"lint", file, file}, exitUsage, "one file at most"},
		{[]string{"lint", filepath.Join(dir, "missing.yml")}, exitTrouble, "no such file"},
		{[]string{"lint", "--help"}, exitOK, "Usage: hangar lint"},
		{[]string{"frobnicate"}, exitUsage, `unknown command "frobnicate"`},
	}
	for _, tt := range tests {
		code, out, errOut := hangar(t, tt.args...)
		if code != tt.code || !strings.Contains(out+errOut, tt.want) {
			t.Errorf("%v: exit %d (want %d), output %q lacks %q", tt.args, code, tt.code, out+errOut, tt.want)
		}
	}
}

func TestLintExample(t *testing.T) {
	t.Parallel()
	code, out, errOut := hangar(t, "lint", "../../examples/quickstart/.gitlab-ci.yml")
	if code != exitOK || !strings.Contains(out, "unit: [linux, amd64]") {
		t.Fatalf("exit %d: %s%s", code, out, errOut)
	}
}
