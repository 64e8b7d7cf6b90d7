// Package expr parses and evaluates GitLab CI rules:if expressions.
//
// The same language is used by rules:if, workflow:rules:if and
// only/except:variables. An expression is parsed once with [Parse] and can then
// be evaluated any number of times, concurrently, with [Expr.Eval] against a
// set of CI/CD variables supplied by a [Lookup] function.
//
// # Syntax
//
// Operands:
//
//	$NAME  ${NAME}      a variable; NAME is one or more of A-Z a-z 0-9 _
//	"text"  'text'      a string; there are no escape sequences, and a string
//	                    cannot contain its own quote character or a line break
//	null                the null value (an undefined variable)
//	/pattern/flags      a regular expression (RE2 syntax), only on the right
//	                    of =~ and !~
//
// Operators, from tightest to loosest binding:
//
//	==  !=  =~  !~      compare two operands (they do not chain)
//	&&                  logical and
//	||                  logical or
//
// && and || are left-associative and short-circuit; parentheses group.
// Whitespace between tokens is ignored.
//
// # Semantics
//
// A variable that the Lookup reports as undefined has the value null. An
// operand standing alone (not compared) is true when it is not null and not the
// empty string, so "$VAR" means "defined and non-empty", a lone non-empty
// string is true, and a lone null is false.
//
// == is true when both sides are null, or both are strings with the same bytes:
// $UNDEFINED == null is true, $EMPTY == "" is true, $EMPTY == null and
// $UNDEFINED == "" are false. != is always the negation of ==.
//
// =~ reports whether the left side matches the right side, and !~ is always its
// negation. The right side is used as follows:
//
//   - A /pattern/flags literal is an RE2 regular expression (Go's regexp
//     package). Matching is an unanchored search. The flags are i (case
//     insensitive), m (multi-line: ^ and $ match at line breaks), s (. matches
//     a line break) and U (ungreedy), as in RE2 -- note that m is not Ruby's m.
//     The pattern must have at least two characters between the slashes, as in
//     GitLab; \/ stands for a slash inside the pattern.
//   - A variable or string whose value has the form /pattern/flags (the
//     value's last slash followed only by flags, no line breaks) and compiles
//     is used as a regular expression in the same way (GitLab 15.0+).
//   - Any other string value is not a pattern: the match is true when the
//     right side contains the left side as a substring. GitLab documents this
//     fallback as unexpected behaviour that pipelines should not rely on.
//   - null on the right makes =~ false (and !~ true).
//
// A null left side is matched as the empty string, as GitLab does, so
// $UNDEFINED =~ /^v\d/ is false but $UNDEFINED =~ /^$/ is true.
//
// # Differences from GitLab
//
// The evaluation follows GitLab's documented behaviour, which differs from its
// implementation in a few corner cases:
//
//   - && and || treat every operand by the "defined and non-empty" rule. In
//     GitLab an empty variable is false alone but counts as true on the left of
//     && and || (gitlab-org/gitlab#321371, #358775); here "$EMPTY && $X" is
//     false.
//   - ${NAME} is accepted as well as $NAME.
//   - The grammar is stricter: comparisons do not chain ($A == $B == $C), a
//     parenthesised group cannot be compared, and a regular expression can only
//     be the right operand of =~ or !~. GitLab accepts these and gives them
//     meanings that are rarely intended.
//   - The negation operator, the true and false literals and $[[ inputs.x ]]
//     references of recent GitLab versions are not supported, and GitLab's limit
//     of 100 tokens per expression is not enforced.
//
// # Errors
//
// Parse reports every problem as a [*SyntaxError] holding the byte offset of the
// offending token and a plain message. Parentheses may be nested at most
// [MaxDepth] levels deep, and parsing takes time linear in the input (plus the
// cost of compiling its regular expressions).
package expr
