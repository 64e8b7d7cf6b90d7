//go:build unix

package workspace

import (
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

func TestSelectSkipsOddFiles(t *testing.T) {
	t.Parallel()
	work := t.TempDir()
	makeTree(t, work, file("ok", "ok"), file("bad\xff/f", "f"), file("bad\xfe", "x"))
	if err := syscall.Mkfifo(filepath.Join(work, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	set, err := Select(t.Context(), work, Selection{Paths: []string{"."}})
	if err != nil {
		t.Fatal(err)
	}
	if got := names(set); !slices.Equal(got, []string{"ok"}) {
		t.Errorf("Select picked %q, want only ok", got)
	}
	if len(set.Warnings) != 3 {
		t.Fatalf("warnings %q, want 3", set.Warnings)
	}
	for i, w := range []string{"not valid UTF-8", "not valid UTF-8", "fifo"} {
		if !strings.Contains(set.Warnings[i], w) {
			t.Errorf("warning %q, want it to say %q", set.Warnings[i], w)
		}
	}
}
