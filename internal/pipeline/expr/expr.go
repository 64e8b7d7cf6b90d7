package expr

import (
	"fmt"
	"regexp"
	"strings"
)

// MaxDepth is how deeply parentheses may be nested in an expression.
const MaxDepth = 256

// Expr is a parsed expression. It is immutable, so Eval, String and Variables
// are safe for concurrent use.
type Expr struct {
	root node
	vars []string
}

// SyntaxError reports a malformed expression.
type SyntaxError struct {
	// Offset is the 0-based byte offset into the source of the offending
	// token (len(src) when the expression ended too early).
	Offset int
	// Msg says what was expected or found, without position information.
	Msg string
}

// Error returns the message prefixed with the offset.
func (e *SyntaxError) Error() string {
	return fmt.Sprintf("at offset %d: %s", e.Offset, e.Msg)
}

func errorf(off int, format string, args ...any) *SyntaxError {
	return &SyntaxError{Offset: off, Msg: fmt.Sprintf(format, args...)}
}

// Lookup returns a variable's value and whether it is defined.
type Lookup func(name string) (value string, ok bool)

// Parse parses src. On failure the error is a *SyntaxError.
func Parse(src string) (*Expr, error) {
	toks, lerr := lex(src)
	if lerr != nil {
		return nil, lerr
	}
	p := &parser{toks: toks}
	if p.peek().kind == tEOF {
		return nil, errorf(0, "empty expression")
	}
	root, err := p.parseOr(0, nil)
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tEOF {
		if t.kind == tRParen {
			return nil, errorf(t.off, `unexpected ")" without a matching "("`)
		}
		return nil, errorf(t.off, "expected an operator or end of expression, found %s", describe(t))
	}
	return &Expr{root: root, vars: p.vars}, nil
}

// Eval reports whether the expression is true with the given variables. A nil
// lookup treats every variable as undefined.
func (e *Expr) Eval(lookup Lookup) bool {
	if e == nil || e.root == nil {
		return false
	}
	if lookup == nil {
		lookup = undefined
	}
	return e.root.eval(lookup)
}

func undefined(string) (string, bool) { return "", false }

// String returns a canonical form of the expression: variables as $NAME,
// single spaces around operators, and only the parentheses the structure
// needs. Parsing the result gives an equal expression.
func (e *Expr) String() string {
	if e == nil || e.root == nil {
		return ""
	}
	var b strings.Builder
	e.root.write(&b)
	return b.String()
}

// Variables returns the names of the variables the expression reads,
// deduplicated, in order of first appearance. The caller may modify the slice.
func (e *Expr) Variables() []string {
	if e == nil || len(e.vars) == 0 {
		return nil
	}
	return append([]string(nil), e.vars...)
}

// node is a boolean-valued part of the tree.
type node interface {
	eval(Lookup) bool
	write(*strings.Builder)
}

// orNode is a chain of ||; it is true when any part is.
type orNode struct{ parts []node }

// andNode is a chain of &&; it is true when every part is.
type andNode struct{ parts []node }

// truthNode is an operand used on its own.
type truthNode struct{ v operand }

// cmpNode is a comparison or match.
type cmpNode struct {
	op   tokKind // tEq, tNe, tMatch or tNoMatch
	l, r operand
}

type operandKind uint8

const (
	opVar operandKind = iota
	opStr
	opNull
	opRegex
)

// operand is a value: a variable, a string, null or (only on the right of a
// match) a regular expression.
type operand struct {
	kind  operandKind
	text  string         // name, string value or regex body
	flags string         // opRegex: canonical flags
	re    *regexp.Regexp // opRegex; opStr on the right of a match when the string is a /pattern/
}

func (o *operand) value(lookup Lookup) (string, bool) {
	switch o.kind {
	case opVar:
		return lookup(o.text)
	case opStr:
		return o.text, true
	}
	return "", false
}

func (n *orNode) eval(lookup Lookup) bool {
	for _, p := range n.parts {
		if p.eval(lookup) {
			return true
		}
	}
	return false
}

func (n *andNode) eval(lookup Lookup) bool {
	for _, p := range n.parts {
		if !p.eval(lookup) {
			return false
		}
	}
	return true
}

func (n *truthNode) eval(lookup Lookup) bool {
	v, ok := n.v.value(lookup)
	return ok && v != ""
}

func (n *cmpNode) eval(lookup Lookup) bool {
	switch n.op {
	case tEq:
		return n.equal(lookup)
	case tNe:
		return !n.equal(lookup)
	case tMatch:
		return n.match(lookup)
	default: // tNoMatch
		return !n.match(lookup)
	}
}

func (n *cmpNode) equal(lookup Lookup) bool {
	lv, lok := n.l.value(lookup)
	rv, rok := n.r.value(lookup)
	if !lok || !rok {
		return lok == rok
	}
	return lv == rv
}

func (n *cmpNode) match(lookup Lookup) bool {
	text, _ := n.l.value(lookup) // null matches as ""
	var re *regexp.Regexp
	switch n.r.kind {
	case opRegex:
		return n.r.re.MatchString(text)
	case opStr:
		re = n.r.re
	case opVar:
		v, ok := lookup(n.r.text)
		if !ok {
			return false
		}
		if re = valueRegex(v); re == nil {
			return strings.Contains(v, text)
		}
	default: // null
		return false
	}
	if re == nil {
		return strings.Contains(n.r.text, text)
	}
	return re.MatchString(text)
}

func (n *orNode) write(b *strings.Builder) {
	for i, p := range n.parts {
		if i > 0 {
			b.WriteString(" || ")
		}
		_, group := p.(*orNode)
		writeGroup(b, p, group)
	}
}

func (n *andNode) write(b *strings.Builder) {
	for i, p := range n.parts {
		if i > 0 {
			b.WriteString(" && ")
		}
		switch p.(type) {
		case *orNode, *andNode:
			writeGroup(b, p, true)
		default:
			p.write(b)
		}
	}
}

func writeGroup(b *strings.Builder, n node, paren bool) {
	if paren {
		b.WriteByte('(')
	}
	n.write(b)
	if paren {
		b.WriteByte(')')
	}
}

func (n *truthNode) write(b *strings.Builder) { n.v.write(b) }

func (n *cmpNode) write(b *strings.Builder) {
	n.l.write(b)
	b.WriteString(opText[n.op])
	n.r.write(b)
}

var opText = map[tokKind]string{tEq: " == ", tNe: " != ", tMatch: " =~ ", tNoMatch: " !~ "}

func (o *operand) write(b *strings.Builder) {
	switch o.kind {
	case opVar:
		b.WriteByte('$')
		b.WriteString(o.text)
	case opStr:
		// A string never holds both quote characters: it ends at its own.
		q := byte('"')
		if strings.IndexByte(o.text, '"') >= 0 {
			q = '\''
		}
		b.WriteByte(q)
		b.WriteString(o.text)
		b.WriteByte(q)
	case opNull:
		b.WriteString("null")
	case opRegex:
		b.WriteByte('/')
		b.WriteString(o.text)
		b.WriteByte('/')
		b.WriteString(o.flags)
	}
}
