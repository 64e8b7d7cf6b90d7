package expr

import (
	"errors"
	"fmt"
	"regexp"
	"regexp/syntax"
	"strings"
	"unicode/utf8"
)

// tokKind is the kind of a lexical token.
type tokKind uint8

const (
	tEOF tokKind = iota
	tVar
	tStr
	tNull
	tRegex
	tEq      // ==
	tNe      // !=
	tMatch   // =~
	tNoMatch // !~
	tAnd     // &&
	tOr      // ||
	tLParen
	tRParen
)

// token is one lexical token of an expression.
type token struct {
	kind  tokKind
	off   int    // byte offset of the token's first byte
	text  string // variable name, string value or regex body
	flags string // canonical regex flags
	re    *regexp.Regexp
}

// regexFlags are the flags GitLab accepts after a /pattern/, in canonical
// order. GitLab prefixes them to the pattern as (?flags) for RE2, and Go's
// regexp gives them the same meaning.
const regexFlags = "imsU"

// lex splits src into tokens, ending with a tEOF token at len(src).
func lex(src string) ([]token, *SyntaxError) {
	toks := make([]token, 0, 8)
	i := 0
	for {
		for i < len(src) && isSpace(src[i]) {
			i++
		}
		if i >= len(src) {
			return append(toks, token{kind: tEOF, off: len(src)}), nil
		}
		start := i
		c := src[i]
		var next byte
		if i+1 < len(src) {
			next = src[i+1]
		}
		switch {
		case c == '(':
			toks = append(toks, token{kind: tLParen, off: start})
			i++
		case c == ')':
			toks = append(toks, token{kind: tRParen, off: start})
			i++
		case c == '$':
			t, end, err := lexVar(src, start)
			if err != nil {
				return nil, err
			}
			toks = append(toks, t)
			i = end
		case c == '"' || c == '\'':
			j := start + 1
			for j < len(src) && src[j] != c && src[j] != '\n' {
				j++
			}
			if j >= len(src) || src[j] != c {
				where := "end of expression"
				if j < len(src) {
					where = "end of line"
				}
				return nil, errorf(start, "unterminated string: no closing %c before %s", c, where)
			}
			toks = append(toks, token{kind: tStr, off: start, text: src[start+1 : j]})
			i = j + 1
		case c == '/':
			t, end, err := lexRegex(src, start)
			if err != nil {
				return nil, err
			}
			toks = append(toks, t)
			i = end
		case c == '=' && next == '=':
			toks = append(toks, token{kind: tEq, off: start})
			i += 2
		case c == '=' && next == '~':
			toks = append(toks, token{kind: tMatch, off: start})
			i += 2
		case c == '!' && next == '=':
			toks = append(toks, token{kind: tNe, off: start})
			i += 2
		case c == '!' && next == '~':
			toks = append(toks, token{kind: tNoMatch, off: start})
			i += 2
		case c == '&' && next == '&':
			toks = append(toks, token{kind: tAnd, off: start})
			i += 2
		case c == '|' && next == '|':
			toks = append(toks, token{kind: tOr, off: start})
			i += 2
		case c == '=':
			return nil, errorf(start, `unexpected "="; use "==" to compare or "=~" to match`)
		case c == '!':
			return nil, errorf(start, `unexpected "!"; only "!=" and "!~" are supported (there is no negation operator)`)
		case c == '&':
			return nil, errorf(start, `unexpected "&"; use "&&" for "and"`)
		case c == '|':
			return nil, errorf(start, `unexpected "|"; use "||" for "or"`)
		case isWordByte(c):
			j := start
			for j < len(src) && isWordByte(src[j]) {
				j++
			}
			word := src[start:j]
			if word != "null" {
				return nil, unknownWord(start, word)
			}
			toks = append(toks, token{kind: tNull, off: start})
			i = j
		default:
			r, size := utf8.DecodeRuneInString(src[start:])
			if r == utf8.RuneError && size <= 1 {
				return nil, errorf(start, "unexpected byte 0x%02x (not valid UTF-8)", c)
			}
			return nil, errorf(start, "unexpected character %q", r)
		}
	}
}

// lexVar lexes $NAME or ${NAME} starting at src[start] == '$'.
func lexVar(src string, start int) (token, int, *SyntaxError) {
	j := start + 1
	braced := j < len(src) && src[j] == '{'
	if braced {
		j++
	}
	nameStart := j
	for j < len(src) && isWordByte(src[j]) {
		j++
	}
	if j == nameStart {
		if braced {
			return token{}, 0, errorf(start, `expected a variable name after "${"`)
		}
		return token{}, 0, errorf(start, `expected a variable name after "$"`)
	}
	name := src[nameStart:j]
	if braced {
		if j >= len(src) || src[j] != '}' {
			return token{}, 0, errorf(start, `unterminated variable reference: expected "}" after "${%s"`, name)
		}
		j++
	}
	return token{kind: tVar, off: start, text: name}, j, nil
}

// lexRegex lexes /pattern/flags starting at src[start] == '/' and compiles it.
func lexRegex(src string, start int) (token, int, *SyntaxError) {
	j := start + 1
	for j < len(src) && src[j] != '/' {
		if src[j] == '\\' {
			j++ // the escaped byte cannot end the pattern
		}
		j++
	}
	if j >= len(src) {
		return token{}, 0, errorf(start, "unterminated regular expression: no closing /")
	}
	body := src[start+1 : j]
	j++ // past the closing slash
	flagStart := j
	for j < len(src) && isWordByte(src[j]) {
		j++
	}
	flags, bad := canonFlags(src[flagStart:j])
	if bad >= 0 {
		return token{}, 0, errorf(flagStart+bad, "unknown regular expression flag %q (supported flags are i, m, s and U)", src[flagStart+bad:flagStart+bad+1])
	}
	if utf8.RuneCountInString(body) < 2 {
		return token{}, 0, errorf(start, "regular expression %s is too short: GitLab needs at least two characters between the slashes", snippet(src[start:j]))
	}
	re, err := compileRegex(body, flags)
	if err != nil {
		return token{}, 0, errorf(start, "invalid regular expression %s: %s", snippet(src[start:j]), describeRegexError(err))
	}
	return token{kind: tRegex, off: start, text: body, flags: flags, re: re}, j, nil
}

// canonFlags returns the distinct flags of f in canonical order, and the index
// of the first byte of f that is not a flag (-1 when all are).
func canonFlags(f string) (string, int) {
	var seen [len(regexFlags)]bool
	for i := 0; i < len(f); i++ {
		k := strings.IndexByte(regexFlags, f[i])
		if k < 0 {
			return "", i
		}
		seen[k] = true
	}
	var b []byte
	for k, ok := range seen {
		if ok {
			b = append(b, regexFlags[k])
		}
	}
	return string(b), -1
}

// compileRegex compiles a pattern body with canonical flags the way GitLab's
// untrusted-regexp wrapper does: the flags become a (?flags) prefix.
func compileRegex(body, flags string) (*regexp.Regexp, error) {
	if flags != "" {
		body = "(?" + flags + ")" + body
	}
	return regexp.Compile(body)
}

func describeRegexError(err error) string {
	var se *syntax.Error
	if errors.As(err, &se) {
		if se.Expr == "" {
			return se.Code.String()
		}
		return fmt.Sprintf("%s in %s", se.Code, snippet(se.Expr))
	}
	return err.Error()
}

func unknownWord(off int, word string) *SyntaxError {
	switch word {
	case "true", "false":
		return errorf(off, "unknown word %q: boolean literals are not supported; compare with a string such as %q", word, word)
	case "and", "AND":
		return errorf(off, `unknown word %q: use "&&" for "and"`, word)
	case "or", "OR":
		return errorf(off, `unknown word %q: use "||" for "or"`, word)
	case "nil", "NULL", "Null":
		return errorf(off, `unknown word %q: the null value is written "null"`, word)
	}
	return errorf(off, `unknown word %s: variables start with "$" and strings must be quoted`, snippet(word))
}

func isSpace(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\r', '\f', '\v':
		return true
	}
	return false
}

func isWordByte(c byte) bool {
	return c == '_' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

// snippet quotes s for an error message, shortening long text.
func snippet(s string) string {
	const limit = 40
	n := 0
	for i := range s {
		if n == limit {
			s = s[:i] + "..."
			break
		}
		n++
	}
	return fmt.Sprintf("%q", s)
}
