package pipeline

import (
	"fmt"
	"strings"
	"testing"
)

// generatedPipeline writes a pipeline of exactly jobs jobs: a three-level
// extends chain under every plain job, rules on each, and matrix jobs of
// eight instances (one in five of the file's entries).
func generatedPipeline(jobs int) string {
	var b strings.Builder
	b.WriteString("stages: [s0, s1, s2, s3, s4, s5, s6, s7, s8, s9]\n")
	b.WriteString("variables:\n  GLOBAL: g\ndefault:\n  image: alpine\n  retry: 1\n")
	for i := 0; i < 20; i++ {
		fmt.Fprintf(&b, ".base%d:\n  variables:\n    LEVEL0: \"%d\"\n  before_script: [setup]\n  tags: [linux]\n", i, i)
		fmt.Fprintf(&b, ".mid%d:\n  extends: .base%d\n  variables:\n    LEVEL1: \"%d\"\n  artifacts:\n    paths: [out/]\n", i, i, i)
		fmt.Fprintf(&b, ".top%d:\n  extends: .mid%d\n  variables:\n    LEVEL2: \"%d\"\n  rules:\n    - if: $CI_COMMIT_TAG\n      when: never\n    - if: $CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH\n      when: on_success\n    - when: manual\n", i, i, i)
	}
	made, lastPlain := 0, ""
	for i := 0; made < jobs; i++ {
		stage := i % 10
		if i%5 == 4 && jobs-made >= 8 {
			fmt.Fprintf(&b, "matrix%d:\n  stage: s%d\n  script: [test]\n  parallel:\n    matrix:\n      - OS: [linux, mac]\n        ARCH: [amd64, arm64]\n      - OS: win\n        ARCH: [amd64, arm64, x86, arm]\n", i, stage)
			made += 8
			continue
		}
		fmt.Fprintf(&b, "job%d:\n  extends: .top%d\n  stage: s%d\n  script: [\"make part%d\"]\n", i, i%20, stage, i)
		if stage > 0 && i%3 == 0 && lastPlain != "" {
			fmt.Fprintf(&b, "  needs: [%s]\n", lastPlain)
		}
		lastPlain = fmt.Sprintf("job%d", i)
		made++
	}
	return b.String()
}

func TestGeneratedPipeline(t *testing.T) {
	t.Parallel()
	p := plan(t, generatedPipeline(500), pushMain)
	if len(p.Jobs) != 500 {
		t.Fatalf("generated pipeline has %d jobs, want 500", len(p.Jobs))
	}
}

// BenchmarkPlan5000 loads and plans a generated 5,000-job pipeline.
func BenchmarkPlan5000(b *testing.B) {
	src := []byte(generatedPipeline(5000))
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for b.Loop() {
		cfg, err := Parse("ci.yml", src)
		if err != nil {
			b.Fatal(err)
		}
		p, err := cfg.Plan(pushMain)
		if err != nil || len(p.Jobs) != 5000 {
			b.Fatalf("plan: %d jobs, %v", len(p.Jobs), err)
		}
	}
}
