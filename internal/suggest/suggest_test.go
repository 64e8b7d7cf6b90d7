package suggest

import "testing"

func TestClosest(t *testing.T) {
	keys := []string{"script", "stage", "image", "services", "idle_count", "idle_time"}
	for _, tc := range []struct{ word, want string }{
		{"scirpt", "script"}, // a transposition is one edit
		{"Stage", "stage"},   // case is ignored
		{"imag", "image"},    // a missing letter
		{"idle_cont", "idle_count"},
		{"idle_tme", "idle_time"},
		{"zzzzzz", ""}, // nothing close
		{"a", ""},      // too short to guess
	} {
		if got := Closest(tc.word, keys); got != tc.want {
			t.Errorf("Closest(%q) = %q, want %q", tc.word, got, tc.want)
		}
	}
	if got := DidYouMean("scirpt", keys); got != ` (did you mean "script"?)` {
		t.Errorf("DidYouMean = %q", got)
	}
	if got := DidYouMean("zzzzzz", keys); got != "" {
		t.Errorf("DidYouMean with nothing close = %q, want empty", got)
	}
}

func TestEditDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{{"", "", 0}, {"abc", "", 3}, {"kitten", "sitting", 3}, {"ab", "ba", 1}, {"héllo", "hello", 1}} {
		if got := editDistance(tc.a, tc.b); got != tc.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}
