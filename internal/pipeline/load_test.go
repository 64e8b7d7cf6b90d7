package pipeline

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

// load parses files (the first key "ci.yml" is the main file) and fails the
// test on errors.
func load(t *testing.T, files map[string]string) *Config {
	t.Helper()
	cfg, err := loadFS(files)
	if err != nil {
		t.Fatalf("Load: unexpected errors:\n%v", err)
	}
	return cfg
}

func loadFS(files map[string]string) (*Config, error) {
	fsys := fstest.MapFS{}
	for name, src := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(src)}
	}
	return Load(fsys, "ci.yml", &pushMain)
}

// loadErrors parses src and returns its errors as file:line:col: message.
func loadErrors(t *testing.T, src string) []string {
	t.Helper()
	_, err := Parse("ci.yml", []byte(src))
	var list ErrorList
	if err == nil {
		return nil
	}
	if !errors.As(err, &list) {
		t.Fatalf("Load returned %T, want ErrorList: %v", err, err)
	}
	out := make([]string, len(list))
	for i, d := range list {
		out[i] = d.String()
	}
	return out
}

func TestLoadErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		src  string
		want []string // each a prefix "file:line:col: " plus a substring of the message
	}{
		{
			name: "yaml syntax",
			src:  "job:\n  script: [a\n",
			want: []string{"ci.yml:3:1: invalid YAML: did not find expected ',' or ']' (while parsing a flow sequence started at line 2, column 11)"},
		},
		{
			name: "yaml syntax with a column",
			src:  "job:\n  script: a: b\n",
			want: []string{"ci.yml:2:12: invalid YAML: mapping values are not allowed in this context"},
		},
		{
			name: "unknown job keyword with suggestion",
			src:  "job:\n  script: x\n  stgae: build\n",
			want: []string{`ci.yml:3:3: job: unknown keyword "stgae" (did you mean "stage"?)`},
		},
		{
			name: "unknown keyword far from any",
			src:  "job:\n  script: x\n  frobnicate: 1\n",
			want: []string{`ci.yml:3:3: job: unknown keyword "frobnicate"`},
		},
		{
			name: "every error of the file",
			src:  "a:\n  script: x\n  when: sometimes\nb:\n  script: y\n  retry: 7\n",
			want: []string{`ci.yml:3:9: a: when must be one of`, `ci.yml:6:10: b: retry must be a whole number from 0 to 2`},
		},
		{
			name: "undeclared stage",
			src:  "stages: [build, test]\njob:\n  stage: tset\n  script: x\n",
			want: []string{`ci.yml:3:10: job: stage "tset" is not declared in stages (.pre, build, test, .post) (did you mean "test"?)`},
		},
		{
			name: "need of an unknown job",
			src:  "a:\n  script: x\n  needs: [bulid]\nbuild:\n  script: y\n",
			want: []string{`ci.yml:3:11: a needs "bulid", which is not a job of this pipeline (did you mean "build"?)`},
		},
		{
			name: "need of a later stage",
			src:  "a:\n  stage: build\n  script: x\n  needs:\n    - job: b\nb:\n  stage: deploy\n  script: y\n",
			want: []string{`ci.yml:5:7: a (stage build) needs "b", which is in the later stage deploy`},
		},
		{
			name: "needs cycle",
			src:  "a:\n  script: x\n  needs: [b]\nb:\n  script: y\n  needs: [a]\n",
			want: []string{`needs form a cycle: a → b → a`},
		},
		{
			name: "extends cycle",
			src:  ".a:\n  extends: .b\n.b:\n  extends: .a\njob:\n  extends: .a\n  script: x\n",
			want: []string{`extends cycle`},
		},
		{
			name: "extends unknown",
			src:  "job:\n  extends: .tmpl\n  script: x\n.tpml:\n  image: x\n",
			want: []string{`ci.yml:2:12: job extends ".tmpl", which is not defined (did you mean ".tpml"?)`},
		},
		{
			name: "malformed rule expression points into it",
			src:  "job:\n  script: x\n  rules:\n    - if: '$A == \"x\" &&'\n",
			want: []string{`ci.yml:4:24: job: rules: if: invalid expression: expected a value or "(" after "&&"`},
		},
		{
			name: "include remote is not supported yet",
			src:  "include:\n  - remote: https://example.com/ci.yml\njob:\n  script: x\n",
			want: []string{`ci.yml:2:5: include: remote is not supported yet`},
		},
		{
			name: "unknown reference",
			src:  ".setup:\n  script: [a]\njob:\n  script: !reference [.setpu, script]\n",
			want: []string{`ci.yml:4:23: !reference [.setpu, script]: ".setpu" is not defined`},
		},
		{
			name: "top-level typo is not a job",
			src:  "stage: [a]\njob:\n  script: x\n",
			want: []string{`ci.yml:1:1: "stage" is neither a keyword nor a job`},
		},
		{
			name: "rules with only",
			src:  "job:\n  script: x\n  only: [main]\n  rules:\n    - when: always\n",
			want: []string{`ci.yml:3:3: job: only cannot be used with rules`},
		},
		{
			name: "delayed without start_in",
			src:  "job:\n  script: x\n  when: delayed\n",
			want: []string{`job: when: delayed needs start_in`},
		},
		{
			name: "bad duration",
			src:  "job:\n  script: x\n  timeout: 3 fortnights\n",
			want: []string{`ci.yml:3:12: job: timeout: "3 fortnights" is not a duration`},
		},
		{
			name: "no visible job",
			src:  ".hidden:\n  script: x\n",
			want: []string{`the pipeline has no visible job`},
		},
		{
			name: "alias bomb",
			src:  aliasBomb(),
			want: []string{`too large once its aliases are expanded`},
		},
		{
			name: "matrix too large",
			src:  "job:\n  script: x\n  parallel:\n    matrix:\n      - A: [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15]\n        B: [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15]\n",
			want: []string{`job: parallel makes 225 jobs; the most is 200`},
		},
		{
			name: "bad variable name",
			src:  "variables:\n  BAD-NAME: x\njob:\n  script: x\n",
			want: []string{`ci.yml:2:3: variables: "BAD-NAME" is not a valid variable name`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := loadErrors(t, tt.src)
			if len(got) != len(tt.want) {
				t.Fatalf("got %d errors, want %d:\n%s", len(got), len(tt.want), strings.Join(got, "\n"))
			}
			for i, w := range tt.want {
				prefix, rest, hasPos := strings.Cut(w, ": ")
				if hasPos && strings.HasPrefix(prefix, "ci.yml:") {
					if !strings.HasPrefix(got[i], prefix+": ") || !strings.Contains(got[i], rest) {
						t.Errorf("error %d = %q, want %q", i, got[i], w)
					}
				} else if !strings.Contains(got[i], w) {
					t.Errorf("error %d = %q, want it to contain %q", i, got[i], w)
				}
			}
		})
	}
}

func aliasBomb() string {
	var b strings.Builder
	b.WriteString("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 10; i++ {
		b.WriteString("a" + string(rune('0'+i)) + ": &a" + string(rune('0'+i)) + " [")
		for j := 0; j < 10; j++ {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString("*a" + string(rune('0'+i-1)))
		}
		b.WriteString("]\n")
	}
	b.WriteString("job:\n  script: x\n")
	return b.String()
}

func TestLoadWarnings(t *testing.T) {
	t.Parallel()
	cfg := load(t, map[string]string{"ci.yml": "image: alpine\nvariables:\n  A: 1\n  A: 2\nnoscript:\n  stage: test\n"})
	var got []string
	for _, w := range cfg.Warnings {
		got = append(got, w.String())
	}
	want := []string{
		"ci.yml:1:1: image at the top level is deprecated: put it under default:",
		`ci.yml:4:3: duplicate key "A": the last one wins`,
		"ci.yml:5:1: noscript has no script: it will run nothing",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if v := cfg.Variables; len(v) != 1 || v[0].Value != "2" {
		t.Errorf("duplicate variable: got %+v, want the last value 2", v)
	}
}

func TestIncludeInputs(t *testing.T) {
	t.Parallel()
	cfg := load(t, map[string]string{
		"ci.yml": "include:\n  - local: tmpl.yml\n    inputs:\n      stage: build\nstages: [build, test]\n",
		"tmpl.yml": "spec:\n  inputs:\n    stage:\n    tags:\n      type: array\n      default: [linux, docker]\n    name:\n      default: app\n---\n" +
			"build-$[[ inputs.name ]]:\n  stage: $[[ inputs.stage ]]\n  tags: $[[ inputs.tags ]]\n  script: make $[[ inputs.name ]]\n",
	})
	j := cfg.Jobs[0]
	if j.Name != "build-app" || j.Stage != "build" || !slices.Equal(j.Tags, []string{"linux", "docker"}) || j.Script[0] != "make app" {
		t.Errorf("inputs not interpolated: %+v", j)
	}
	_, err := loadFS(map[string]string{
		"ci.yml":   "include: tmpl.yml\n",
		"tmpl.yml": "spec:\n  inputs:\n    stage:\n---\njob:\n  stage: $[[ inputs.stage ]]\n  script: x\n",
	})
	if err == nil || !strings.Contains(err.Error(), `tmpl.yml:6:10: input "stage" has no default and none is given`) {
		t.Errorf("missing input: %v", err)
	}
}
