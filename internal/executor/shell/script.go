package shell

import (
	"fmt"
	"strings"
)

// scriptHeader gives a step GitLab Runner's bash semantics: the first failing
// command ends the step with its exit code, a pipeline fails if any part of
// it fails, and > may overwrite files.
const scriptHeader = "set -eo pipefail\nset +o noclobber\n"

// Script returns the bash script that runs lines as one step, the way GitLab
// Runner's bash shell does: each command is trimmed, echoed as a bold green
// "$ command" line (only the first line and "# collapsed multi-line command"
// for a command of several lines), then run. A failing command ends the
// script with its exit code.
//
// Each command runs through eval of a single-quoted copy of itself, so a
// command with unbalanced quotes fails on its own instead of swallowing the
// commands after it. The script holds no variable values; they come through
// the environment. A command holding a NUL byte, which bash cannot read, is
// an error.
func Script(lines []string) (string, error) {
	var b strings.Builder
	b.WriteString(scriptHeader)
	for i, line := range lines {
		if strings.IndexByte(line, 0) >= 0 {
			return "", fmt.Errorf("command %d holds a NUL byte", i+1)
		}
		line = strings.TrimSpace(line)
		if line == "" {
			b.WriteString("echo\n")
			continue
		}
		shown, _, multi := strings.Cut(line, "\n")
		if multi {
			shown += " # collapsed multi-line command"
		}
		b.WriteString("printf '%s\\n' ")
		b.WriteString(quote("\x1b[32;1m$ " + shown + "\x1b[0;m"))
		b.WriteString("\neval ")
		b.WriteString(quote(line))
		b.WriteString("\n")
	}
	return b.String(), nil
}

// quote returns s as one single-quoted bash word, which bash takes verbatim.
func quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
