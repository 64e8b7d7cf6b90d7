package expr

import (
	"errors"
	"slices"
	"testing"
)

// fuzzVars is the fixed variable set FuzzParse evaluates with; it includes
// values that are patterns, invalid patterns and plain strings.
var fuzzVars = map[string]string{
	"A":     "abc",
	"B":     "",
	"C":     "/^a.*/i",
	"D":     "/(/",
	"E":     "null",
	"F":     "/",
	"G":     "//U",
	"VAR":   "value",
	"EMPTY": "",
}

func fuzzLookup(name string) (string, bool) {
	v, ok := fuzzVars[name]
	return v, ok
}

func FuzzParse(f *testing.F) {
	for _, tc := range errorTests {
		if len(tc.src) < 1000 {
			f.Add(tc.src)
		}
	}
	for _, src := range []string{
		`$PRESENT`, `${PRESENT} == "x"`, `'a"b' != $A`, `null == $UNDEFINED`,
		`$A || $B && $C`, `($A || $B) && $C`, `$A || ($B || $C)`,
		`$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH`,
		`$CI_PIPELINE_SOURCE == "merge_request_event"`,
		`$CI_COMMIT_TAG =~ /^v\d+\.\d+/`,
		`$CI_COMMIT_MESSAGE !~ /skip ci/i`,
		`$A =~ $C`, `$A =~ $D`, `$A !~ "/^a/"`, `$A =~ /a\/b/msiU`,
		"$S =~ /b\nc|cd/", `"23" =~ "1234"`, `$A =~ null`,
	} {
		f.Add(src)
	}
	f.Fuzz(func(t *testing.T, src string) {
		e, err := Parse(src)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("Parse(%q) error %T is not a *SyntaxError", src, err)
			}
			if se.Offset < 0 || se.Offset > len(src) {
				t.Fatalf("Parse(%q) offset %d outside [0, %d]", src, se.Offset, len(src))
			}
			if se.Msg == "" {
				t.Fatalf("Parse(%q) gave an empty message", src)
			}
			if e != nil {
				t.Fatalf("Parse(%q) returned both an Expr and an error", src)
			}
			return
		}
		want := e.Eval(fuzzLookup)
		e.Eval(nil)

		s := e.String()
		e2, err := Parse(s)
		if err != nil {
			t.Fatalf("Parse(%q) ok, but its String() %q does not parse: %v", src, s, err)
		}
		if s2 := e2.String(); s2 != s {
			t.Fatalf("String() is not stable: %q -> %q -> %q", src, s, s2)
		}
		if got := e2.Eval(fuzzLookup); got != want {
			t.Fatalf("%q evaluates to %v but its String() %q to %v", src, want, s, got)
		}
		if !slices.Equal(e.Variables(), e2.Variables()) {
			t.Fatalf("Variables() differ: %q %v, %q %v", src, e.Variables(), s, e2.Variables())
		}
	})
}
