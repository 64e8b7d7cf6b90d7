package executor

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
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

// ScriptDir is a session's private directory of step scripts, outside the
// workspace: each step's script is written as a new file.
type ScriptDir struct {
	// Path is the directory.
	Path string
	perm fs.FileMode // of the scripts

	mu     sync.Mutex
	steps  int
	closed bool
}

// NewScriptDir makes a new script directory in parent (os.TempDir() when
// empty) whose name starts with prefix. Only its owner can read it, unless
// public: a container may run as any user.
func NewScriptDir(parent, prefix string, public bool) (*ScriptDir, error) {
	dir, err := os.MkdirTemp(parent, prefix)
	if err != nil {
		return nil, fmt.Errorf("make script directory: %w", err)
	}
	d := &ScriptDir{Path: dir, perm: 0o600}
	if public {
		d.perm = 0o644
		if err := os.Chmod(dir, 0o755); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("make script directory: %w", err)
		}
	}
	return d, nil
}

// Write writes the Script of step into a new file of the directory and
// returns the file's name there. It fails once the directory is removed.
func (d *ScriptDir) Write(step Step) (string, error) {
	script, err := Script(step.Lines)
	if err != nil {
		return "", err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return "", errors.New("session is cleaned up")
	}
	d.steps++
	name := fmt.Sprintf("step-%d.sh", d.steps)
	if err := os.WriteFile(filepath.Join(d.Path, name), []byte(script), d.perm); err != nil {
		return "", fmt.Errorf("write script: %w", err)
	}
	return name, nil
}

// Remove removes the directory; it is safe to call twice.
func (d *ScriptDir) Remove() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	if err := os.RemoveAll(d.Path); err != nil {
		return fmt.Errorf("remove script directory: %w", err)
	}
	return nil
}

// WorkspaceDir returns the absolute path of job's workspace, once it has
// checked that it is a directory.
func WorkspaceDir(job *Job) (string, error) {
	info, err := os.Stat(job.Dir)
	if err != nil {
		return "", fmt.Errorf("workspace: %w", err)
	}
	if !info.IsDir() {
		return "", fmt.Errorf("workspace %s is not a directory", job.Dir)
	}
	dir, err := filepath.Abs(job.Dir)
	if err != nil {
		return "", fmt.Errorf("workspace: %w", err)
	}
	return dir, nil
}
