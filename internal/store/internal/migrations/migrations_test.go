package migrations

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestLoadMigrations(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files []string
		err   string // "" for success
	}{
		{"in order", []string{"0001_a.sql", "0002_b.sql", "0003_c.sql"}, ""},
		{"other files ignored", []string{"0001_a.sql", "README.md"}, ""},
		{"gap", []string{"0001_a.sql", "0003_c.sql"}, "number 3, want 2"},
		{"duplicate", []string{"0001_a.sql", "0001_b.sql"}, "number 1, want 2"},
		{"no number", []string{"init.sql"}, "NNNN_what.sql"},
		{"zero", []string{"0000_a.sql"}, "NNNN_what.sql"},
		{"none", nil, "no migrations"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fsys := fstest.MapFS{"m/.keep": {}}
			for _, f := range tc.files {
				fsys["m/"+f] = &fstest.MapFile{Data: []byte("SELECT 1;")}
			}
			ms, err := Load(fsys, "m")
			switch {
			case tc.err == "" && err != nil:
				t.Errorf("Load: %v", err)
			case tc.err == "" && len(ms) != len(tc.files)-strings.Count(strings.Join(tc.files, " "), ".md"):
				t.Errorf("Load: %d migrations", len(ms))
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Errorf("Load: %v, want an error saying %q", err, tc.err)
			}
		})
	}
}
