package builtin_test

import (
	"io"
	"strings"
	"testing"

	"github.com/hangar-ci/hangar/internal/fleet/provider/builtin"
	"github.com/hangar-ci/hangar/internal/fleet/provider/docker"
	"github.com/hangar-ci/hangar/internal/fleet/provider/local"
)

func TestNew(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		settings map[string]any
		err      string
	}{
		{name: "gce", err: `provider "gce": unknown (want docker or local)`},
		{name: "", err: `provider "": unknown`},
		{name: "local", settings: map[string]any{"state_dir": t.TempDir()}},
		{name: "local", settings: map[string]any{"image": "x"}, err: "provider_config.state_dir: required\nprovider_config.image: unknown setting"},
		{name: "docker", settings: map[string]any{"image": "hangar-agent:dev", "work_dir_tmpfs": "64m"}},
		{name: "docker", settings: map[string]any{}, err: "provider_config.image: required"},
	} {
		p, err := builtin.New(tc.name, tc.settings, builtin.Options{})
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%s %v: %v", tc.name, tc.settings, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s %v: error %v, want one containing %q", tc.name, tc.settings, err, tc.err)
		}
		if err != nil {
			continue
		}
		switch tc.name {
		case "local":
			if _, ok := p.(*local.Provider); !ok {
				t.Errorf("local: got %T", p)
			}
		case "docker":
			if _, ok := p.(*docker.Provider); !ok {
				t.Errorf("docker: got %T", p)
			}
		}
		if c, ok := p.(io.Closer); ok {
			c.Close()
		}
	}
}
