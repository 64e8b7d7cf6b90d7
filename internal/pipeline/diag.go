package pipeline

import (
	"fmt"
	"sort"
	"strings"
)

// Position is a place in a pipeline file. Line and Column are 1-based; a zero
// Line means the position is unknown (for example a default the file did not
// write).
type Position struct {
	File   string `json:"file"`
	Line   int    `json:"line"`
	Column int    `json:"column"`
}

// String formats the position as file:line:col.
func (p Position) String() string {
	if p.Line == 0 {
		return p.File
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Column)
}

// Diagnostic is one error or warning about a pipeline, tied to a position.
type Diagnostic struct {
	Position
	Message string `json:"message"`
}

// String formats the diagnostic as file:line:col: message.
func (d Diagnostic) String() string {
	return d.Position.String() + ": " + d.Message
}

// ErrorList is the error returned when a pipeline is invalid. It holds every
// error found, sorted by file and position.
type ErrorList []Diagnostic

// Error joins all diagnostics, one per line.
func (l ErrorList) Error() string {
	lines := make([]string, len(l))
	for i, d := range l {
		lines[i] = d.String()
	}
	return strings.Join(lines, "\n")
}

// diags collects errors and warnings while a pipeline is read.
type diags struct {
	errors   []Diagnostic
	warnings []Diagnostic
}

func (d *diags) errorf(pos Position, format string, args ...any) {
	d.errors = append(d.errors, Diagnostic{Position: pos, Message: fmt.Sprintf(format, args...)})
}

func (d *diags) warnf(pos Position, format string, args ...any) {
	d.warnings = append(d.warnings, Diagnostic{Position: pos, Message: fmt.Sprintf(format, args...)})
}

// err returns the collected errors as an ErrorList, or nil when there are none.
func (d *diags) err() error {
	if len(d.errors) == 0 {
		return nil
	}
	return ErrorList(sortDiagnostics(d.errors))
}

// sortDiagnostics orders diagnostics by file, line and column, dropping exact
// duplicates (an error in an anchor reached through several aliases).
func sortDiagnostics(list []Diagnostic) []Diagnostic {
	sort.SliceStable(list, func(i, j int) bool {
		a, b := list[i], list[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
	out := list[:0]
	for i, d := range list {
		if i > 0 && d == list[i-1] {
			continue
		}
		out = append(out, d)
	}
	return out
}
