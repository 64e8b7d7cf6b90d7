package expr

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// testVars are the variables the evaluation table runs with.
var testVars = map[string]string{
	"PRESENT":             "my variable",
	"EMPTY":               "",
	"YES":                 "yes",
	"NO":                  "",
	"CI_COMMIT_BRANCH":    "main",
	"CI_DEFAULT_BRANCH":   "main",
	"OTHER_BRANCH":        "develop",
	"CI_PIPELINE_SOURCE":  "merge_request_event",
	"CI_COMMIT_TAG":       "v1.2.3",
	"CI_COMMIT_REF_NAME":  "release-1.0",
	"CI_COMMIT_MESSAGE":   "Fix the build [SKIP CI]\n\nLonger description.",
	"MULTI":               "line1\nline2",
	"S":                   "abcde",
	"T":                   "fghij",
	"NUM":                 "1234",
	"N23":                 "23",
	"PAREN":               "(",
	"PATH":                "a/b/c",
	"PATTERN":             "/^ab.*/",
	"PATTERN_I":           "/^AB/i",
	"PATTERN_SLASH":       `/^a\/b/`,
	"PATTERN_EMPTY":       "//",
	"PATTERN_BAD":         "/(/",
	"PATTERN_BAD_FLAG":    "/^ab/x",
	"PATTERN_NEWLINE":     "/^ab\n/",
	"PATTERN_NOT_LEADING": "x/^ab/",
	"MY_VARIABLE":         "set",
	"VARIABLE1":           "thing",
	"VARIABLE3":           "",
}

func testLookup(name string) (string, bool) {
	v, ok := testVars[name]
	return v, ok
}

func TestEval(t *testing.T) {
	t.Parallel()
	tests := []struct {
		src  string
		want bool
	}{
		// Lone operands.
		{`$PRESENT`, true},
		{`$EMPTY`, false},
		{`$UNDEFINED`, false},
		{`${PRESENT}`, true},
		{`${EMPTY}`, false},
		{`"text"`, true},
		{`'text'`, true},
		{`""`, false},
		{`null`, false},
		{`($PRESENT)`, true},
		{`((($PRESENT)))`, true},

		// == and != with strings, null, empty and undefined.
		{`$PRESENT == "my variable"`, true},
		{`$PRESENT == 'my variable'`, true},
		{`"my variable" == $PRESENT`, true},
		{`$PRESENT == "My Variable"`, false},
		{`$PRESENT == null`, false},
		{`$PRESENT != null`, true},
		{`$EMPTY == null`, false},
		{`$EMPTY != null`, true},
		{`$EMPTY == ""`, true},
		{`$EMPTY == ''`, true},
		{`"" == $EMPTY`, true},
		{`$EMPTY != ""`, false},
		{`$UNDEFINED == null`, true},
		{`null == $UNDEFINED`, true},
		{`$UNDEFINED != null`, false},
		{`$UNDEFINED == ""`, false},
		{`$UNDEFINED != ""`, true},
		{`null == null`, true},
		{`null != null`, false},
		{`"a" == "a"`, true},
		{`"a" != "b"`, true},
		{`'say "hi"' == 'say "hi"'`, true},
		{`"it's" == "it's"`, true},

		// Variable against variable.
		{`$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH`, true},
		{`${CI_COMMIT_BRANCH} == $CI_DEFAULT_BRANCH`, true},
		{`$OTHER_BRANCH == $CI_DEFAULT_BRANCH`, false},
		{`$OTHER_BRANCH != $CI_DEFAULT_BRANCH`, true},
		{`$UNDEFINED == $ALSO_UNDEFINED`, true},
		{`$EMPTY == $UNDEFINED`, false},
		{`$EMPTY != $UNDEFINED`, true},

		// GitLab reference examples.
		{`$CI_PIPELINE_SOURCE == "merge_request_event"`, true},
		{`$CI_PIPELINE_SOURCE == "schedule"`, false},
		{`$CI_COMMIT_TAG =~ /^v\d+\.\d+/`, true},
		{`$CI_COMMIT_BRANCH =~ /^v\d+\.\d+/`, false},
		{`$CI_COMMIT_MESSAGE !~ /skip ci/i`, false},
		{`$CI_COMMIT_MESSAGE =~ /skip ci/i`, true},
		{`$CI_COMMIT_MESSAGE !~ /skip ci/`, true},
		{`$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH && $CI_COMMIT_MESSAGE =~ /Fix.*/`, true},
		{`($CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH || $CI_COMMIT_BRANCH == "develop") && $MY_VARIABLE`, true},
		{`($OTHER_BRANCH == $CI_DEFAULT_BRANCH || $OTHER_BRANCH == "develop") && $MY_VARIABLE`, true},
		{`($OTHER_BRANCH == $CI_DEFAULT_BRANCH || $OTHER_BRANCH == "develop") && $UNDEFINED`, false},
		{`$CI_COMMIT_BRANCH == "my-branch" || (($VARIABLE1 == "thing" || $VARIABLE2 == "thing") && $VARIABLE3)`, false},
		{`$CI_COMMIT_BRANCH == "main" || (($VARIABLE1 == "thing" || $VARIABLE2 == "thing") && $VARIABLE3)`, true},
		{`"23" =~ "1234"`, true}, // documented substring fallback
		{`"23" =~ /1234/`, false},

		// Regex matching: unanchored search, flags.
		{`$S =~ /cd/`, true},
		{`$S =~ /^cd/`, false},
		{`$S !~ /^cd/`, true},
		{`$S =~ /ABC/`, false},
		{`$S =~ /ABC/i`, true},
		{`$MULTI =~ /^line2$/`, false},
		{`$MULTI =~ /^line2$/m`, true},
		{`$MULTI =~ /^LINE2$/mi`, true},
		{`$MULTI =~ /1.line/`, false},
		{`$MULTI =~ /1.line/s`, true},
		{`$S =~ /a.+/U`, true},
		{`$S =~ /a.+/iiUm`, true},
		{`$PATH =~ /^a\/b/`, true},
		{`$PATH =~ /^a\/c/`, false},
		{`$S =~ /[[:alpha:]]+/`, true},
		{`$S =~ /\Aabcde\z/`, true},
		{"$S =~ /b\nc|cd/", true}, // a pattern may span lines

		// Null and empty on the left: null matches as "".
		{`$UNDEFINED =~ /^v/`, false},
		{`$UNDEFINED !~ /^v/`, true},
		{`$UNDEFINED =~ /^$/`, true},
		{`null =~ /ab/`, false},
		{`$EMPTY =~ /^$/`, true},
		{`$EMPTY =~ /ab/`, false},

		// Right side from a variable or string.
		{`$S =~ $PATTERN`, true},
		{`$T =~ $PATTERN`, false},
		{`$S !~ $PATTERN`, false},
		{`$T !~ $PATTERN`, true},
		{`$S =~ $PATTERN_I`, true},
		{`$PATH =~ $PATTERN_SLASH`, true},
		{`$S =~ $PATTERN_EMPTY`, true},
		{`$S =~ ${PATTERN}`, true},
		{`$CI_COMMIT_REF_NAME =~ "/^release/"`, true},
		{`$CI_COMMIT_REF_NAME =~ '/^RELEASE/i'`, true},
		{`$CI_COMMIT_REF_NAME !~ "/^release/"`, false},
		// Not a pattern: the right side must contain the left side.
		{`$N23 =~ $NUM`, true},
		{`$NUM =~ $N23`, false},
		{`$N23 !~ $NUM`, false},
		{`$PAREN =~ $PATTERN_BAD`, true},
		{`$S =~ $PATTERN_BAD`, false},
		{`"/^ab/x" =~ $PATTERN_BAD_FLAG`, true},
		{`$S =~ $PATTERN_BAD_FLAG`, false},
		{`$S =~ $PATTERN_NEWLINE`, false},
		{`$S =~ $PATTERN_NOT_LEADING`, false},
		{`$UNDEFINED =~ $NUM`, true}, // "" is a substring of anything
		{`$S =~ "xxabcdexx"`, true},
		{`$S =~ "/(/"`, false},
		// Null on the right: =~ is false and !~ true.
		{`$S =~ $UNDEFINED`, false},
		{`$S !~ $UNDEFINED`, true},
		{`$S =~ null`, false},
		{`$S !~ null`, true},
		{`$UNDEFINED =~ $UNDEFINED`, false},

		// && binds tighter than ||; both are left-associative.
		{`$YES || $NO && $NO`, true},
		{`($YES || $NO) && $NO`, false},
		{`$NO && $NO || $YES`, true},
		{`$NO && ($NO || $YES)`, false},
		{`$YES && $YES`, true},
		{`$YES && $NO`, false},
		{`$NO || $NO`, false},
		{`$NO || $YES`, true},
		{`$NO || $NO || $YES`, true},
		{`$YES && $YES && $NO`, false},
		{`$YES && $YES && $YES`, true},
		{`$NO || $YES && $YES || $NO`, true},
		{`$NO || $YES && $NO || $NO`, false},
		{`$YES || ($NO || $NO)`, true},
		// An empty variable is false on either side of && and ||.
		{`$EMPTY && $YES`, false},
		{`$EMPTY || $NO`, false},
		{`$YES && $EMPTY`, false},

		// Whitespace is insignificant.
		{"$PRESENT==\"my variable\"", true},
		{" \t$YES\n&&\r\n$PRESENT  ", true},
		{"(\n$NO\n||\n$YES\n)", true},
	}
	for _, tc := range tests {
		t.Run(tc.src, func(t *testing.T) {
			t.Parallel()
			e, err := Parse(tc.src)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.src, err)
			}
			if got := e.Eval(testLookup); got != tc.want {
				t.Errorf("Parse(%q).Eval() = %v, want %v (canonical %s)", tc.src, got, tc.want, e)
			}
			// The canonical form means the same thing.
			e2, err := Parse(e.String())
			if err != nil {
				t.Fatalf("Parse(String() = %q): %v", e.String(), err)
			}
			if got := e2.Eval(testLookup); got != tc.want {
				t.Errorf("canonical %q evaluates to %v, want %v", e.String(), got, tc.want)
			}
		})
	}
}

func TestString(t *testing.T) {
	t.Parallel()
	tests := []struct{ src, want string }{
		{`$A`, `$A`},
		{`${A}`, `$A`},
		{`  $A==  "x"  `, `$A == "x"`},
		{`'x' != $A`, `"x" != $A`},
		{`$A == 'say "hi"'`, `$A == 'say "hi"'`},
		{`$A == "it's"`, `$A == "it's"`},
		{`$A == null`, `$A == null`},
		{`$A =~ /ab/Ui`, `$A =~ /ab/iU`},
		{`$A !~ /ab/iiii`, `$A !~ /ab/i`},
		{`$A =~ /a\/b/sm`, `$A =~ /a\/b/ms`},
		{`$A || $B && $C`, `$A || $B && $C`},
		{`($A || $B) && $C`, `($A || $B) && $C`},
		{`$A && ($B || $C)`, `$A && ($B || $C)`},
		{`$A || ($B && $C)`, `$A || $B && $C`},
		{`($A && $B) || $C`, `$A && $B || $C`},
		{`$A || ($B || $C)`, `$A || ($B || $C)`},
		{`($A || $B) || $C`, `($A || $B) || $C`},
		{`$A && ($B && $C)`, `$A && ($B && $C)`},
		{`((($A)))`, `$A`},
		{`(($A == "x"))`, `$A == "x"`},
		{`(($A || $B)) && $C`, `($A || $B) && $C`},
	}
	for _, tc := range tests {
		t.Run(tc.src, func(t *testing.T) {
			t.Parallel()
			e, err := Parse(tc.src)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.src, err)
			}
			if got := e.String(); got != tc.want {
				t.Errorf("Parse(%q).String() = %q, want %q", tc.src, got, tc.want)
			}
			e2, err := Parse(tc.want)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.want, err)
			}
			if got := e2.String(); got != tc.want {
				t.Errorf("String() is not a fixed point: %q -> %q", tc.want, got)
			}
		})
	}
}

// errorTests are malformed expressions with the offset and a part of the
// message Parse must report.
var errorTests = []struct {
	src    string
	offset int
	msg    string
}{
	{``, 0, "empty expression"},
	{"  \t\n", 0, "empty expression"},

	// Dangling or misplaced operators.
	{`$A ==`, 5, `expected a value after "==", found end of expression`},
	{`$A == `, 6, `expected a value after "==", found end of expression`},
	{`$A !=`, 5, `expected a value after "!="`},
	{`$A =~`, 5, `expected a value after "=~"`},
	{`$A !~ `, 6, `expected a value after "!~"`},
	{`== "x"`, 0, `expected a value or "(", found "=="`},
	{`&& $A`, 0, `expected a value or "(", found "&&"`},
	{`$A &&`, 5, `expected a value or "(" after "&&", found end of expression`},
	{`$A ||`, 5, `expected a value or "(" after "||", found end of expression`},
	{`$A || && $B`, 6, `after "||", found "&&"`},
	{`$A == == $B`, 6, `expected a value after "==", found "=="`},
	{`$A == ("x")`, 6, `expected a value after "==", found "("`},
	{`$A == $B == $C`, 9, `comparisons cannot be chained`},
	{`$A =~ /ab/ =~ /cd/`, 11, `comparisons cannot be chained`},
	{`($A) == "x"`, 5, `parenthesized expression`},

	// Unbalanced parentheses.
	{`($A`, 0, `unclosed "(": expected ")"`},
	{`(($A)`, 0, `unclosed "("`},
	{`$A && ($B || ($C)`, 6, `unclosed "("`},
	{`$A)`, 2, `unexpected ")" without a matching "("`},
	{`($A))`, 4, `unexpected ")" without a matching "("`},
	{`)`, 0, `expected a value or "(", found ")"`},
	{`()`, 1, `expected a value or "(" after "(", found ")"`},
	{`$A && ()`, 7, `after "(", found ")"`},

	// Two operands without an operator.
	{`$A "x"`, 3, `expected an operator or end of expression, found string "x"`},
	{`$A $B`, 3, `found variable $B`},
	{`$A == "x" $B`, 10, `found variable $B`},
	{`"x" null`, 4, `found null`},
	{`$A ($B)`, 3, `found "("`},
	{`($A $B)`, 4, `expected an operator or ")", found variable $B`},
	{`$A /ab/`, 3, `found regular expression "/ab/"`},

	// Strings.
	{`"abc`, 0, `unterminated string: no closing " before end of expression`},
	{`'abc`, 0, `unterminated string: no closing ' before end of expression`},
	{`$A == "abc'`, 6, `no closing "`},
	{"$A == \"a\nb\"", 6, `before end of line`},

	// Regular expressions.
	{`$A =~ /abc`, 6, `unterminated regular expression`},
	{`$A =~ /ab\/`, 6, `unterminated regular expression`},
	{`$A =~ /ab\`, 6, `unterminated regular expression`},
	{`$A =~ /`, 6, `unterminated regular expression`},
	{`$A =~ /./`, 6, `too short`},
	{`$A =~ /a/i`, 6, `too short`},
	{`$A =~ //`, 6, `too short`},
	{`$A =~ /(ab/`, 6, `invalid regular expression "/(ab/": missing closing )`},
	{`$A =~ /a**/`, 6, `invalid regular expression`},
	{`$A =~ /(?!ab)/`, 6, `invalid regular expression`}, // no lookahead in RE2
	{`$A =~ /a{2000}/`, 6, `invalid regular expression`},
	{`$A =~ /ab/x`, 10, `unknown regular expression flag "x"`},
	{`$A =~ /ab/ix`, 11, `unknown regular expression flag "x"`},
	{`$A =~ /ab/g`, 10, `unknown regular expression flag "g"`},
	{`$A =~ /ab/u`, 10, `unknown regular expression flag "u"`},
	{`$A == /ab/`, 6, `cannot be compared with "=="`},
	{`$A != /ab/`, 6, `cannot be compared with "!="`},
	{`/ab/ =~ $A`, 0, `right operand of =~ or !~`},
	{`/ab/`, 0, `right operand of =~ or !~`},
	{`$A && /ab/`, 6, `right operand of =~ or !~`},

	// Unknown characters and words.
	{`$A = "x"`, 3, `use "==" to compare`},
	{`!$A`, 0, `there is no negation operator`},
	{`$A & $B`, 3, `use "&&"`},
	{`$A | $B`, 3, `use "||"`},
	{`$A # comment`, 3, `unexpected character '#'`},
	{`$A == "x" é`, 10, `unexpected character 'é'`},
	{"$A == \xff", 6, `unexpected byte 0xff`},
	{`$`, 0, `expected a variable name after "$"`},
	{`$-A`, 0, `expected a variable name after "$"`},
	{`$A == $`, 6, `expected a variable name after "$"`},
	{`${}`, 0, `expected a variable name after "${"`},
	{`${A`, 0, `expected "}" after "${A"`},
	{`${A B}`, 0, `expected "}"`},
	{`main`, 0, `unknown word "main": variables start with "$" and strings must be quoted`},
	{`$A == main`, 6, `unknown word "main"`},
	{`12345`, 0, `unknown word "12345"`},
	{`true`, 0, `boolean literals are not supported`},
	{`$A == false`, 6, `boolean literals are not supported`},
	{`nullx`, 0, `unknown word "nullx"`},
	{`$A == nil`, 6, `written "null"`},
	{`$A and $B`, 3, `use "&&"`},

	// Nesting limit.
	{strings.Repeat("(", MaxDepth+1) + "$A" + strings.Repeat(")", MaxDepth+1), MaxDepth, "nested more than 256 levels"},
	{"$A && " + strings.Repeat("(", 100000), 6 + MaxDepth, "nested more than 256 levels"},
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range errorTests {
		name := tc.src
		if len(name) > 60 {
			name = name[:60]
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e, err := Parse(tc.src)
			if err == nil {
				t.Fatalf("Parse(%q) = %s, want an error", tc.src, e)
			}
			if e != nil {
				t.Errorf("Parse(%q) returned a non-nil *Expr with an error", tc.src)
			}
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("Parse(%q) error %T is not a *SyntaxError", tc.src, err)
			}
			if se.Offset != tc.offset {
				t.Errorf("Parse(%q) offset = %d, want %d (%v)", tc.src, se.Offset, tc.offset, err)
			}
			if !strings.Contains(se.Msg, tc.msg) {
				t.Errorf("Parse(%q) message = %q, want it to contain %q", tc.src, se.Msg, tc.msg)
			}
			if want := fmt.Sprintf("at offset %d: %s", se.Offset, se.Msg); err.Error() != want {
				t.Errorf("Error() = %q, want %q", err.Error(), want)
			}
		})
	}
}

func TestMaxDepthAccepted(t *testing.T) {
	t.Parallel()
	src := strings.Repeat("(", MaxDepth) + "$A" + strings.Repeat(")", MaxDepth)
	e, err := Parse(src)
	if err != nil {
		t.Fatalf("Parse at the nesting limit: %v", err)
	}
	if got := e.String(); got != "$A" {
		t.Errorf("String() = %q, want $A", got)
	}
	// Nested groups that survive into the canonical form.
	src = strings.Repeat("$A && ($B || ", MaxDepth) + "$C" + strings.Repeat(")", MaxDepth)
	e, err = Parse(src)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if e.String() != src {
		t.Errorf("String() changed a canonical expression")
	}
	if !e.Eval(func(n string) (string, bool) { return "x", n == "A" || n == "C" }) {
		t.Errorf("Eval = false, want true")
	}
}

func TestLongChains(t *testing.T) {
	t.Parallel()
	const n = 200000
	for _, op := range []string{" && ", " || "} {
		src := "$A" + strings.Repeat(op+"$A", n)
		e, err := Parse(src)
		if err != nil {
			t.Fatalf("Parse(long %q chain): %v", op, err)
		}
		if e.String() != src {
			t.Errorf("long %q chain does not round-trip", op)
		}
		if !e.Eval(func(string) (string, bool) { return "x", true }) {
			t.Errorf("long %q chain evaluates to false", op)
		}
		if got := e.Variables(); len(got) != 1 || got[0] != "A" {
			t.Errorf("Variables() = %v, want [A]", got)
		}
	}
}

func TestVariables(t *testing.T) {
	t.Parallel()
	tests := []struct {
		src  string
		want []string
	}{
		{`"x"`, nil},
		{`null == "x"`, nil},
		{`$A`, []string{"A"}},
		{`$B == $A || ${B} =~ $C && ($A != $D)`, []string{"B", "A", "C", "D"}},
		{`$A =~ /$NOT_A_VARIABLE/`, []string{"A"}},
		{`"$NOT_A_VARIABLE" == $X`, []string{"X"}},
		{`$a == $A`, []string{"a", "A"}},
		{`$1 == $_`, []string{"1", "_"}},
	}
	for _, tc := range tests {
		e, err := Parse(tc.src)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tc.src, err)
		}
		got := e.Variables()
		if fmt.Sprint(got) != fmt.Sprint(tc.want) || len(got) != len(tc.want) {
			t.Errorf("Parse(%q).Variables() = %q, want %q", tc.src, got, tc.want)
		}
		if len(got) > 0 {
			got[0] = "CHANGED"
			if e.Variables()[0] == "CHANGED" {
				t.Errorf("Variables() returned the Expr's own slice")
			}
		}
	}
}

func TestShortCircuit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		src  string
		want []string // variables looked up, in order
	}{
		{`$YES || $X`, []string{"YES"}},
		{`$NO && $X`, []string{"NO"}},
		{`$NO || $X`, []string{"NO", "X"}},
		{`$NO && $X || $YES`, []string{"NO", "YES"}},
		{`$YES || $X && $Y`, []string{"YES"}},
	}
	for _, tc := range tests {
		e, err := Parse(tc.src)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tc.src, err)
		}
		var seen []string
		e.Eval(func(name string) (string, bool) {
			seen = append(seen, name)
			return testLookup(name)
		})
		if fmt.Sprint(seen) != fmt.Sprint(tc.want) {
			t.Errorf("%s looked up %v, want %v", tc.src, seen, tc.want)
		}
	}
}

func TestNilLookupAndZeroExpr(t *testing.T) {
	t.Parallel()
	e, err := Parse(`$A == null && $B != "x" && $C =~ /^$/ && $D !~ $E`)
	if err != nil {
		t.Fatal(err)
	}
	if !e.Eval(nil) {
		t.Errorf("Eval(nil) = false, want true (all variables undefined)")
	}
	var zero Expr
	if zero.Eval(testLookup) || zero.String() != "" || zero.Variables() != nil {
		t.Errorf("zero Expr is not false, empty and without variables")
	}
	var nilExpr *Expr
	if nilExpr.Eval(testLookup) || nilExpr.String() != "" || nilExpr.Variables() != nil {
		t.Errorf("nil *Expr is not false, empty and without variables")
	}
}

// TestConcurrentEval runs one Expr from many goroutines with different
// variables, including patterns taken from variables; run it with -race.
func TestConcurrentEval(t *testing.T) {
	t.Parallel()
	e, err := Parse(`$REF =~ $PAT && $REF !~ /^tmp-/i || $REF == $DEFAULT`)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var failures atomic.Int32
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				n := (g*500 + i) % 50
				vars := map[string]string{
					"REF":     fmt.Sprintf("release-%d", n),
					"PAT":     fmt.Sprintf("/^release-%d$/", n%7),
					"DEFAULT": "main",
				}
				want := n == n%7
				got := e.Eval(func(name string) (string, bool) { v, ok := vars[name]; return v, ok })
				if got != want {
					failures.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if f := failures.Load(); f > 0 {
		t.Errorf("%d concurrent evaluations gave the wrong answer", f)
	}
}

func TestPatternCacheBounded(t *testing.T) {
	t.Parallel()
	e, err := Parse(`$S =~ $P`)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3*maxCachedPatterns; i++ {
		p := fmt.Sprintf("/^cache-test-%d$/", i)
		s := fmt.Sprintf("cache-test-%d", i)
		if !e.Eval(func(n string) (string, bool) {
			if n == "S" {
				return s, true
			}
			return p, true
		}) {
			t.Fatalf("%s does not match %s", s, p)
		}
	}
	long := "/" + strings.Repeat("a", 2*maxCachedPatternSize) + "/"
	if !e.Eval(func(n string) (string, bool) {
		if n == "S" {
			return strings.Repeat("a", 2*maxCachedPatternSize), true
		}
		return long, true
	}) {
		t.Errorf("long pattern from a variable does not match")
	}
	if got := patternEntries.Load(); got > maxCachedPatterns {
		t.Errorf("pattern cache holds %d entries, limit %d", got, maxCachedPatterns)
	}
}

func TestSyntaxErrorIsError(t *testing.T) {
	t.Parallel()
	_, err := Parse(`$A ==`)
	se, ok := err.(*SyntaxError) // callers assert the concrete type directly
	if !ok {
		t.Fatalf("error is %T, want *SyntaxError", err)
	}
	if se.Error() != `at offset 5: expected a value after "==", found end of expression` {
		t.Errorf("Error() = %q", se.Error())
	}
}

func BenchmarkParseEval(b *testing.B) {
	const src = `($CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH || $CI_COMMIT_TAG =~ /^v\d+\.\d+/) && $CI_PIPELINE_SOURCE != "schedule" && $CI_COMMIT_MESSAGE !~ /\[no deploy\]/i`
	b.Run("Parse", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Parse(src); err != nil {
				b.Fatal(err)
			}
		}
	})
	e, err := Parse(src)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("Eval", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if !e.Eval(testLookup) {
				b.Fatal("want true")
			}
		}
	})
	re, err := Parse(`$S =~ $PATTERN && $S !~ $PATTERN_I`)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("EvalPatternVariable", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			re.Eval(testLookup)
		}
	})
}
