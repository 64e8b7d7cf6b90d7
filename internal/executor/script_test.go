package executor_test

import (
	"strings"
	"testing"

	"github.com/hangar-ci/hangar/internal/executor"
)

func TestScript(t *testing.T) {
	t.Parallel()
	got, err := executor.Script([]string{"echo 'hi'", "  if x\nthen y\nfi\n", ""})
	if err != nil {
		t.Fatalf("Script: %v", err)
	}
	want := "set -eo pipefail\nset +o noclobber\n" +
		"printf '%s\\n' '\x1b[32;1m$ echo '\\''hi'\\''\x1b[0;m'\neval 'echo '\\''hi'\\'''\n" +
		"printf '%s\\n' '\x1b[32;1m$ if x # collapsed multi-line command\x1b[0;m'\neval 'if x\nthen y\nfi'\n" +
		"echo\n"
	if got != want {
		t.Errorf("Script =\n%q\nwant\n%q", got, want)
	}
	if _, err := executor.Script([]string{"true", "echo \x00"}); err == nil || !strings.Contains(err.Error(), "command 2") {
		t.Errorf("Script with a NUL byte = %v, want an error naming command 2", err)
	}
}
