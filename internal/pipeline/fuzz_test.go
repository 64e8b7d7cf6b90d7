package pipeline

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoad feeds arbitrary bytes to the YAML front end and the planner:
// neither may panic or hang, whatever the input.
func FuzzLoad(f *testing.F) {
	f.Add([]byte("job:\n  script: x\n"))
	f.Add([]byte(generatedPipeline(40)))
	f.Add([]byte(aliasBomb()))
	f.Add([]byte("a: &a {<<: *a}\n"))
	f.Add([]byte(".t: &t\n  script: [x]\nj:\n  <<: [*t]\n  extends: .t\n  script: !reference [.t, script]\n"))
	if cases, err := filepath.Glob(filepath.Join(corpusDir, "*", ".gitlab-ci.yml")); err == nil {
		for _, c := range cases {
			if data, err := os.ReadFile(c); err == nil {
				f.Add(data)
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("ci.yml", data)
		if err != nil {
			return
		}
		for _, ctx := range []Context{pushMain, mrContext(1, "feature", "main"), {Source: SourcePush, Tag: "v1", DefaultBranch: "main"}} {
			if _, err := cfg.Plan(ctx); err != nil {
				return
			}
		}
	})
}
