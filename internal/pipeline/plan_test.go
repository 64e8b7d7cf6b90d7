package pipeline

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

var pushMain = Context{Source: SourcePush, Branch: "main", DefaultBranch: "main"}

func mrContext(iid int, source, target string) Context {
	return Context{Source: SourceMergeRequest, DefaultBranch: "main",
		MergeRequest: &MergeRequest{IID: iid, SourceBranch: source, TargetBranch: target}}
}

// plan loads src and plans it for ctx, failing the test on errors.
func plan(t *testing.T, src string, ctx Context) *Plan {
	t.Helper()
	cfg := load(t, map[string]string{"ci.yml": src})
	p, err := cfg.Plan(ctx)
	if err != nil {
		t.Fatalf("Plan: %v", err)
	}
	return p
}

// summary renders the planned jobs one per line: name stage when [af] [needs].
func summary(p *Plan) string {
	if !p.Created {
		return "no pipeline"
	}
	var lines []string
	for _, j := range p.Jobs {
		s := fmt.Sprintf("%s|%s|%s", j.Name, j.Stage, j.When)
		if j.AllowFailure {
			s += "|af"
		}
		if j.Needs != nil {
			var ns []string
			for _, n := range j.Needs {
				ns = append(ns, n.Job)
			}
			s += "|needs=" + strings.Join(ns, ",")
		}
		lines = append(lines, s)
	}
	return strings.Join(lines, "\n")
}

func job(p *Plan, name string) *PlannedJob {
	for _, j := range p.Jobs {
		if j.Name == name {
			return j
		}
	}
	return nil
}

func TestPlanKeywords(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		src  string
		ctx  Context
		want string
	}{
		{
			name: "default stages and stage test",
			src:  "b:\n  stage: build\n  script: x\nt:\n  script: x\nd:\n  stage: deploy\n  script: x\n",
			ctx:  pushMain,
			want: "b|build|on_success\nt|test|on_success\nd|deploy|on_success",
		},
		{
			name: "jobs ordered by stage then file order",
			src:  "stages: [one, two]\nz:\n  stage: two\n  script: x\na:\n  stage: one\n  script: x\np:\n  stage: .pre\n  script: x\n",
			ctx:  pushMain,
			want: "p|.pre|on_success\na|one|on_success\nz|two|on_success",
		},
		{
			name: "manual without rules may fail, with rules may not",
			src:  "m:\n  script: x\n  when: manual\nr:\n  script: x\n  rules:\n    - when: manual\nf:\n  script: x\n  when: manual\n  allow_failure: false\n",
			ctx:  pushMain,
			want: "m|test|manual|af\nr|test|manual\nf|test|manual",
		},
		{
			name: "rule allow_failure and when",
			src:  "a:\n  script: x\n  rules:\n    - if: $CI_COMMIT_BRANCH == \"dev\"\n      when: never\n    - if: $CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH\n      when: always\n      allow_failure: true\n",
			ctx:  pushMain,
			want: "a|test|always|af",
		},
		{
			name: "no rule matches drops the job",
			src:  "a:\n  script: x\n  rules:\n    - if: $CI_COMMIT_TAG\nb:\n  script: x\n",
			ctx:  pushMain,
			want: "b|test|on_success",
		},
		{
			name: "job when is the default of a matching rule",
			src:  "a:\n  script: x\n  when: on_failure\n  rules:\n    - if: $CI_COMMIT_BRANCH\n",
			ctx:  pushMain,
			want: "a|test|on_failure",
		},
		{
			name: "only/except refs on a branch",
			src: "tags:\n  script: x\n  only: [tags]\nmain:\n  script: x\n  only: [main]\nrx:\n  script: x\n  only: ['/^ma/']\n" +
				"notmain:\n  script: x\n  except: [main]\nmr:\n  script: x\n  only: [merge_requests]\nplain:\n  script: x\n",
			ctx:  pushMain,
			want: "main|test|on_success\nrx|test|on_success\nplain|test|on_success",
		},
		{
			name: "only/except on a tag",
			src:  "tags:\n  script: x\n  only: [tags]\nbranches:\n  script: x\n  only: [branches]\nnotags:\n  script: x\n  except: [tags]\nrel:\n  script: x\n  only: ['/^v\\d+/']\n",
			ctx:  Context{Source: SourcePush, Tag: "v1.2", DefaultBranch: "main"},
			want: "tags|test|on_success\nrel|test|on_success",
		},
		{
			name: "jobs without rules stay out of merge request pipelines",
			src:  "plain:\n  script: x\nmr:\n  script: x\n  only: [merge_requests]\nrules:\n  script: x\n  rules:\n    - if: $CI_PIPELINE_SOURCE == \"merge_request_event\"\n",
			ctx:  mrContext(7, "feature", "main"),
			want: "mr|test|on_success\nrules|test|on_success",
		},
		{
			name: "only variables and except variables",
			src:  "a:\n  script: x\n  only:\n    variables: [$DEPLOY == \"yes\"]\nb:\n  script: x\n  except:\n    variables: [$DEPLOY]\n",
			ctx:  Context{Source: SourcePush, Branch: "main", DefaultBranch: "main", Variables: []Variable{{Name: "DEPLOY", Value: "yes"}}},
			want: "a|test|on_success",
		},
		{
			name: "only refs with a project suffix",
			src:  "a:\n  script: x\n  only: [main@group/proj]\nb:\n  script: x\n  only: [main@other/proj]\n",
			ctx:  Context{Source: SourcePush, Branch: "main", DefaultBranch: "main", ProjectPath: "group/proj"},
			want: "a|test|on_success",
		},
		{
			name: "only keywords and regexes with a project suffix",
			src: "kw:\n  script: x\n  only: [branches@group/proj]\nrx:\n  script: x\n  only: ['/.*/@group/proj']\n" +
				"other:\n  script: x\n  only: ['/.*/@other/proj']\nruby:\n  script: x\n  only: ['/^main\\Z/']\n",
			ctx:  Context{Source: SourcePush, Branch: "main", DefaultBranch: "main", ProjectPath: "group/proj"},
			want: "kw|test|on_success\nrx|test|on_success\nruby|test|on_success",
		},
		{
			name: "ref regexes do not match merge request refs",
			src:  "rx:\n  script: x\n  only: ['/.*/']\nsrc:\n  script: x\n  only: [merge_request_event]\n",
			ctx:  mrContext(3, "feature", "main"),
			want: "src|test|on_success",
		},
		{
			name: "only sources",
			src:  "sched:\n  script: x\n  only: [schedules]\nweb:\n  script: x\n  only: [web]\n",
			ctx:  Context{Source: SourceSchedule, Branch: "main", DefaultBranch: "main"},
			want: "sched|test|on_success",
		},
		{
			name: "parallel count",
			src:  "unit:\n  script: x\n  parallel: 3\n",
			ctx:  pushMain,
			want: "unit 1/3|test|on_success\nunit 2/3|test|on_success\nunit 3/3|test|on_success",
		},
		{
			name: "parallel matrix names",
			src:  "deploy:\n  script: x\n  parallel:\n    matrix:\n      - PROVIDER: aws\n        STACK: [app1, app2]\n      - PROVIDER: [gcp, vultr]\n        STACK: data\n",
			ctx:  pushMain,
			want: "deploy: [aws, app1]|test|on_success\ndeploy: [aws, app2]|test|on_success\ndeploy: [gcp, data]|test|on_success\ndeploy: [vultr, data]|test|on_success",
		},
		{
			name: "needs on a parallel job and on a matrix instance",
			src: "build:\n  stage: build\n  script: x\n  parallel:\n    matrix:\n      - OS: [linux, mac]\n" +
				"all:\n  script: x\n  needs: [build]\none:\n  script: x\n  needs:\n    - job: build\n      parallel:\n        matrix:\n          - OS: mac\nnone:\n  script: x\n  needs: []\n",
			ctx: pushMain,
			want: "build: [linux]|build|on_success\nbuild: [mac]|build|on_success\n" +
				"all|test|on_success|needs=build: [linux],build: [mac]\none|test|on_success|needs=build: [mac]\nnone|test|on_success|needs=",
		},
		{
			name: "rules matrix variables",
			src:  "t:\n  script: x\n  parallel:\n    matrix:\n      - GO: ['1.25', '1.26']\n  rules:\n    - if: $GO == \"1.26\"\n",
			ctx:  pushMain,
			want: "t: [1.26]|test|on_success",
		},
		{
			name: "optional need on an absent job is dropped",
			src:  "a:\n  script: x\n  rules:\n    - if: $CI_COMMIT_TAG\nb:\n  script: x\n  needs:\n    - job: a\n      optional: true\n",
			ctx:  pushMain,
			want: "b|test|on_success|needs=",
		},
		{
			name: "rules needs replace job needs",
			src:  "stages: [build, test]\na:\n  stage: build\n  script: x\nb:\n  stage: build\n  script: x\nc:\n  script: x\n  needs: [a]\n  rules:\n    - if: $CI_COMMIT_BRANCH\n      needs: [b]\n",
			ctx:  pushMain,
			want: "a|build|on_success\nb|build|on_success\nc|test|on_success|needs=b",
		},
		{
			name: "workflow rules never",
			src:  "workflow:\n  rules:\n    - if: $CI_COMMIT_BRANCH == \"main\"\n      when: never\n    - when: always\njob:\n  script: x\n",
			ctx:  pushMain,
			want: "no pipeline",
		},
		{
			name: "workflow rules no match",
			src:  "workflow:\n  rules:\n    - if: $CI_PIPELINE_SOURCE == \"merge_request_event\"\njob:\n  script: x\n",
			ctx:  pushMain,
			want: "no pipeline",
		},
		{
			name: "only .pre jobs make no pipeline",
			src:  "p:\n  stage: .pre\n  script: x\nt:\n  script: x\n  rules:\n    - if: $CI_COMMIT_TAG\n",
			ctx:  pushMain,
			want: "no pipeline",
		},
		{
			name: "changes against changed paths",
			src: "docs:\n  script: x\n  rules:\n    - changes: ['docs/**/*.md']\ngo:\n  script: x\n  rules:\n    - changes:\n        paths: ['**/*.go']\n" +
				"old:\n  script: x\n  only:\n    changes: [web/*]\n",
			ctx:  Context{Source: SourcePush, Branch: "main", DefaultBranch: "main", Changed: []string{"docs/a/b.md", "README"}},
			want: "docs|test|on_success",
		},
		{
			name: "changes match when changes are unknown",
			src:  "go:\n  script: x\n  rules:\n    - changes: ['**/*.go']\n",
			ctx:  pushMain,
			want: "go|test|on_success",
		},
		{
			name: "exists",
			src:  "docker:\n  script: x\n  rules:\n    - exists: [Dockerfile]\ngo:\n  script: x\n  rules:\n    - exists: ['**/go.mod']\n",
			ctx:  Context{Source: SourcePush, Branch: "main", DefaultBranch: "main", Files: fstest.MapFS{"svc/go.mod": {}}},
			want: "go|test|on_success",
		},
		{
			name: "delayed",
			src:  "d:\n  script: x\n  when: delayed\n  start_in: 30 minutes\n",
			ctx:  pushMain,
			want: "d|test|delayed",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := summary(plan(t, tt.src, tt.ctx))
			if got != tt.want {
				t.Errorf("plan:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

func TestPlanNeedErrors(t *testing.T) {
	t.Parallel()
	src := "a:\n  stage: build\n  script: x\n  rules:\n    - if: $CI_COMMIT_TAG\nb:\n  script: x\n  needs: [a]\n"
	cfg := load(t, map[string]string{"ci.yml": src})
	_, err := cfg.Plan(pushMain)
	if err == nil || !strings.Contains(err.Error(), `ci.yml:8:11: b needs "a", which is not in this pipeline`) {
		t.Fatalf("Plan error = %v, want the need at ci.yml:8:11 reported", err)
	}
}

func TestPlanVariables(t *testing.T) {
	t.Parallel()
	src := `
variables:
  GLOBAL: g
  OVERRIDE: global
  REF: "ref=$CI_COMMIT_REF_SLUG"
  RAW:
    value: "$GLOBAL"
    expand: false
workflow:
  name: "build $CI_COMMIT_REF_NAME"
  rules:
    - if: $CI_PIPELINE_SOURCE == "merge_request_event"
      variables:
        WF: mr
job:
  script: x
  variables:
    OVERRIDE: job
    USES: "$GLOBAL-$SHELLVAR"
  rules:
    - if: $OVERRIDE == "job"
      variables:
        OVERRIDE: rule
noinherit:
  script: x
  inherit:
    variables: [GLOBAL]
  rules:
    - when: always
`
	ctx := mrContext(42, "Feature/Big_Thing", "main")
	ctx.Variables = []Variable{{Name: "PIPE", Value: "p"}}
	p := plan(t, src, ctx)
	if p.Name != "build Feature/Big_Thing" {
		t.Errorf("workflow name = %q", p.Name)
	}
	j := job(p, "job")
	if j == nil {
		t.Fatalf("job not planned:\n%s", summary(p))
	}
	want := map[string]string{
		"GLOBAL": "g", "OVERRIDE": "rule", "REF": "ref=feature-big-thing", "RAW": "$GLOBAL",
		"USES": "g-$SHELLVAR", "WF": "mr", "PIPE": "p",
		"CI_PIPELINE_SOURCE": "merge_request_event", "CI_COMMIT_REF_NAME": "Feature/Big_Thing",
		"CI_MERGE_REQUEST_IID": "42", "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": "Feature/Big_Thing",
		"CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main", "CI_JOB_NAME": "job", "CI_JOB_STAGE": "test",
		"CI_DEFAULT_BRANCH": "main", "CI_PIPELINE_NAME": "build Feature/Big_Thing", "CI_NODE_TOTAL": "1",
	}
	for k, v := range want {
		if got, ok := j.Var(k); !ok || got != v {
			t.Errorf("%s = %q (defined %v), want %q", k, got, ok, v)
		}
	}
	if _, ok := j.Var("CI_COMMIT_BRANCH"); ok {
		t.Error("CI_COMMIT_BRANCH is set in a merge request pipeline")
	}
	if _, ok := job(p, "noinherit").Var("OVERRIDE"); ok {
		t.Error("inherit: variables: [GLOBAL] still inherited OVERRIDE")
	}
	seen := map[string]bool{}
	for _, v := range j.Variables {
		if seen[v.Name] {
			t.Errorf("variable %s listed twice", v.Name)
		}
		seen[v.Name] = true
	}
}

func TestPlanPredefinedForTagsAndParallel(t *testing.T) {
	t.Parallel()
	p := plan(t, "t:\n  script: x\n  parallel: 2\n", Context{Source: SourcePush, Tag: "v1.0", DefaultBranch: "main"})
	j := job(p, "t 2/2")
	for k, v := range map[string]string{"CI_COMMIT_TAG": "v1.0", "CI_COMMIT_REF_NAME": "v1.0", "CI_COMMIT_REF_SLUG": "v1-0",
		"CI_NODE_INDEX": "2", "CI_NODE_TOTAL": "2", "CI_JOB_NAME": "t 2/2"} {
		if got, _ := j.Var(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if _, ok := j.Var("CI_COMMIT_BRANCH"); ok {
		t.Error("CI_COMMIT_BRANCH is set in a tag pipeline")
	}
}

func TestDependencies(t *testing.T) {
	t.Parallel()
	src := "stages: [a, b, c]\nx:\n  stage: a\n  script: x\ny:\n  stage: b\n  script: x\nall:\n  stage: c\n  script: x\n" +
		"some:\n  stage: c\n  script: x\n  dependencies: [x]\nneeds:\n  stage: c\n  script: x\n  needs:\n    - job: y\n    - job: x\n      artifacts: false\n"
	p := plan(t, src, pushMain)
	for name, want := range map[string][]string{"all": {"x", "y"}, "some": {"x"}, "needs": {"y"}, "x": {}} {
		if got := job(p, name).Dependencies; !slices.Equal(got, want) {
			t.Errorf("%s dependencies = %v, want %v", name, got, want)
		}
	}
}

func TestExtendsDefaultReferenceAnchors(t *testing.T) {
	t.Parallel()
	src := `
default:
  image: ruby:3
  tags: [docker]
  retry: 1
.base: &base
  variables:
    A: base
    B: base
  script: [base]
  artifacts:
    paths: [a]
    when: always
.mid:
  extends: .base
  variables:
    B: mid
  artifacts:
    paths: [b, c]
.setup:
  before_script:
    - setup1
    - setup2
job:
  extends: [.mid]
  variables:
    C: job
  before_script:
    - !reference [.setup, before_script]
    - own
  after_script: !reference [.setup, before_script]
anchored:
  <<: *base
  script: [own]
  inherit:
    default: [image]
nodefault:
  script: x
  image: alpine
  inherit:
    default: false
`
	cfg := load(t, map[string]string{"ci.yml": src})
	byName := map[string]*Job{}
	for _, j := range cfg.Jobs {
		byName[j.Name] = j
	}
	j := byName["job"]
	var vars []string
	for _, v := range j.Variables {
		vars = append(vars, v.Name+"="+v.Value)
	}
	if got := strings.Join(vars, " "); got != "A=base B=mid C=job" {
		t.Errorf("extends variables = %s, want maps merged deeply, later wins", got)
	}
	if !slices.Equal(j.Artifacts.Paths, []string{"b", "c"}) || j.Artifacts.When != Always {
		t.Errorf("artifacts = %+v, want paths replaced and when kept", j.Artifacts)
	}
	if !slices.Equal(j.BeforeScript, []string{"setup1", "setup2", "own"}) || !slices.Equal(j.AfterScript, []string{"setup1", "setup2"}) {
		t.Errorf("!reference scripts: before %v after %v", j.BeforeScript, j.AfterScript)
	}
	if j.Image == nil || j.Image.Name != "ruby:3" || !slices.Equal(j.Tags, []string{"docker"}) || j.Retry.Max != 1 {
		t.Errorf("default not applied: image %+v tags %v retry %+v", j.Image, j.Tags, j.Retry)
	}
	a := byName["anchored"]
	if !slices.Equal(a.Script, []string{"own"}) || len(a.Variables) != 2 || a.Image.Name != "ruby:3" || a.Tags != nil {
		t.Errorf("anchored: script %v variables %v image %+v tags %v", a.Script, a.Variables, a.Image, a.Tags)
	}
	if n := byName["nodefault"]; n.Image.Name != "alpine" || n.Tags != nil || n.Retry.Max != 0 {
		t.Errorf("inherit: default: false still inherited: %+v", n)
	}
}

func TestIncludeLocal(t *testing.T) {
	t.Parallel()
	cfg := load(t, map[string]string{
		"ci.yml":         "include:\n  - local: /ci/base.yml\n  - 'ci/jobs/*.yml'\nstages: [build, test]\nbuild:\n  script: [main]\n",
		"ci/base.yml":    "variables:\n  FROM: base\nbuild:\n  stage: build\n  script: [base]\n  tags: [x]\n",
		"ci/jobs/a.yml":  "a:\n  script: a\n",
		"ci/jobs/b.yml":  "b:\n  extends: build\n",
		"ci/other/c.yml": "c:\n  script: c\n",
	})
	var names []string
	for _, j := range cfg.Jobs {
		names = append(names, j.Name)
	}
	if !slices.Equal(names, []string{"build", "a", "b"}) {
		t.Errorf("jobs = %v", names)
	}
	b := cfg.Jobs[0]
	if !slices.Equal(b.Script, []string{"main"}) || !slices.Equal(b.Tags, []string{"x"}) || b.Stage != "build" {
		t.Errorf("the main file must win over includes, deep-merged: %+v", b)
	}
	if !slices.Equal(cfg.Files, []string{"ci.yml", "ci/base.yml", "ci/jobs/a.yml", "ci/jobs/b.yml"}) {
		t.Errorf("files = %v", cfg.Files)
	}
	if _, err := loadFS(map[string]string{"ci.yml": "include: missing.yml\njob:\n  script: x\n"}); err == nil ||
		!strings.Contains(err.Error(), "ci.yml:1:10: cannot read missing.yml") {
		t.Errorf("missing include: %v", err)
	}
	if _, err := loadFS(map[string]string{"ci.yml": "include: a.yml\njob:\n  script: x\n", "a.yml": "b:\n  script: [\n"}); err == nil ||
		!strings.HasPrefix(err.Error(), "a.yml:") {
		t.Errorf("an error in an included file must name that file: %v", err)
	}
}

func TestJobKeywords(t *testing.T) {
	t.Parallel()
	src := `
job:
  script: x
  image:
    name: golang:1.26
    entrypoint: [""]
  services:
    - postgres:16
    - name: redis:7
      alias: cache
  retry:
    max: 2
    when: [runner_system_failure, script_failure]
    exit_codes: 137
  timeout: 1h 30m
  allow_failure:
    exit_codes: [3, 4]
  artifacts:
    paths: [out/]
    expire_in: 1 week
    reports:
      junit: report.xml
  cache:
    key:
      files: [go.sum]
    paths: [.cache]
    policy: pull
  environment:
    name: review/$CI_COMMIT_REF_SLUG
    url: https://$CI_COMMIT_REF_SLUG.example.com
    on_stop: stop
    auto_stop_in: 1 day
  interruptible: true
  resource_group: prod
  coverage: '/total: \d+%/'
stop:
  script: x
  when: manual
  environment:
    name: review/$CI_COMMIT_REF_SLUG
    action: stop
`
	cfg := load(t, map[string]string{"ci.yml": src})
	j := cfg.Jobs[0]
	checks := []struct {
		what string
		ok   bool
	}{
		{"image", j.Image.Name == "golang:1.26" && slices.Equal(j.Image.Entrypoint, []string{""})},
		{"services", len(j.Services) == 2 && j.Services[0].Name == "postgres:16" && j.Services[1].Alias == "cache"},
		{"retry", j.Retry.Max == 2 && len(j.Retry.When) == 2 && slices.Equal(j.Retry.ExitCodes, []int{137})},
		{"timeout", j.Timeout == 90*time.Minute},
		{"allow_failure", j.AllowFailure.Value && slices.Equal(j.AllowFailure.ExitCodes, []int{3, 4})},
		{"artifacts", slices.Equal(j.Artifacts.Paths, []string{"out/"}) && j.Artifacts.ExpireIn == 7*24*time.Hour && slices.Equal(j.Artifacts.Reports["junit"], []string{"report.xml"})},
		{"cache", len(j.Cache) == 1 && slices.Equal(j.Cache[0].KeyFiles, []string{"go.sum"}) && j.Cache[0].Policy == "pull"},
		{"environment", j.Environment.OnStop == "stop" && j.Environment.AutoStopIn == 24*time.Hour && j.Environment.Action == "start"},
		{"interruptible", j.Interruptible != nil && *j.Interruptible},
		{"resource_group", j.ResourceGroup == "prod"},
		{"coverage", j.Coverage == `/total: \d+%/`},
		{"stop action", cfg.Jobs[1].Environment.Action == "stop"},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("%s not decoded as written: %+v", c.what, j)
		}
	}
}

func TestSlug(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"main":                         "main",
		"Feature/Big_Thing":            "feature-big-thing",
		"--x--":                        "x",
		"v1.2.3":                       "v1-2-3",
		strings.Repeat("a", 70) + "/b": strings.Repeat("a", 63),
	} {
		if got := slug(in, 63); got != want {
			t.Errorf("slug(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestExpandWith(t *testing.T) {
	t.Parallel()
	vars := map[string]string{"A": "1", "B_2": "two"}
	lookup := func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
	for in, want := range map[string]string{
		"$A":             "1",
		"${B_2}x":        "twox",
		"$A$B_2":         "1two",
		"$UNKNOWN $A":    "$UNKNOWN 1",
		"cost: $":        "cost: $",
		"${unterminated": "${unterminated",
		"$$A":            "$$A",
	} {
		if got := expandWith(in, lookup); got != want {
			t.Errorf("expand(%q) = %q, want %q", in, got, want)
		}
	}
}
