package main

import (
	"strings"
	"testing"
)

func TestExecutorFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		err  string
	}{
		{args: []string{"run", "--docker-memory", "1g", "."}, err: "--docker-memory is for --executor docker, and the executor is shell"},
		{args: []string{"agent", "--server", "http://x", "--token", "t", "--docker-privileged"}, err: "--docker-privileged is for --executor docker"},
		{args: []string{"agent", "--server", "http://x", "--token", "t", "--executor", "podman"}, err: `--executor "podman": want shell or docker`},
		{args: []string{"run", "--server", "http://x", "--executor", "docker", "."}, err: "with --server the server's agents decide"},
	} {
		code, _, stderr := hangar(t, tc.args...)
		if code == exitOK || !strings.Contains(stderr, tc.err) {
			t.Errorf("hangar %v: exit %d, stderr %q; want a failure saying %q", tc.args, code, stderr, tc.err)
		}
	}
}
