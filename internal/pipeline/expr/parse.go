package expr

// parser is a recursive-descent parser over the token slice:
//
//	or   = and { "||" and }
//	and  = term { "&&" term }
//	term = "(" or ")" | value [ cmpop value ]
//
// Recursion happens only through parentheses, whose depth is capped.
type parser struct {
	toks []token
	pos  int
	vars []string
	seen map[string]struct{}
}

func (p *parser) peek() *token { return &p.toks[p.pos] }

func (p *parser) next() *token {
	t := &p.toks[p.pos]
	if t.kind != tEOF {
		p.pos++
	}
	return t
}

// parseOr parses an || chain; after is the token before it (nil at the start).
func (p *parser) parseOr(depth int, after *token) (node, *SyntaxError) {
	first, err := p.parseAnd(depth, after)
	if err != nil || p.peek().kind != tOr {
		return first, err
	}
	parts := []node{first}
	for p.peek().kind == tOr {
		op := p.next()
		n, err := p.parseAnd(depth, op)
		if err != nil {
			return nil, err
		}
		parts = append(parts, n)
	}
	return &orNode{parts: parts}, nil
}

func (p *parser) parseAnd(depth int, after *token) (node, *SyntaxError) {
	first, err := p.parseTerm(depth, after)
	if err != nil || p.peek().kind != tAnd {
		return first, err
	}
	parts := []node{first}
	for p.peek().kind == tAnd {
		op := p.next()
		n, err := p.parseTerm(depth, op)
		if err != nil {
			return nil, err
		}
		parts = append(parts, n)
	}
	return &andNode{parts: parts}, nil
}

func (p *parser) parseTerm(depth int, after *token) (node, *SyntaxError) {
	t := p.peek()
	switch t.kind {
	case tLParen:
		if depth >= MaxDepth {
			return nil, errorf(t.off, "parentheses nested more than %d levels deep", MaxDepth)
		}
		p.next()
		inner, err := p.parseOr(depth+1, t)
		if err != nil {
			return nil, err
		}
		switch c := p.peek(); c.kind {
		case tRParen:
			p.next()
		case tEOF:
			return nil, errorf(t.off, `unclosed "(": expected ")" before end of expression`)
		default:
			return nil, errorf(c.off, `expected an operator or ")", found %s`, describe(c))
		}
		if c := p.peek(); isCmp(c.kind) {
			return nil, errorf(c.off, "%s cannot be applied to a parenthesized expression; only variables, strings and null can be compared", opName(c.kind))
		}
		return inner, nil
	case tVar, tStr, tNull, tRegex:
		p.next()
		left := p.operand(t)
		op := p.peek()
		if !isCmp(op.kind) {
			if t.kind == tRegex {
				return nil, regexPlacement(t)
			}
			return &truthNode{v: left}, nil
		}
		if t.kind == tRegex {
			return nil, regexPlacement(t)
		}
		p.next()
		rt := p.peek()
		if !isValue(rt.kind) {
			return nil, errorf(rt.off, "expected a value after %s, found %s", opName(op.kind), describe(rt))
		}
		p.next()
		if rt.kind == tRegex && (op.kind == tEq || op.kind == tNe) {
			return nil, errorf(rt.off, "a regular expression cannot be compared with %s; use =~ or !~ to match it", opName(op.kind))
		}
		right := p.operand(rt)
		if right.kind == opStr && (op.kind == tMatch || op.kind == tNoMatch) {
			// GitLab treats a string in /pattern/ form as a pattern.
			right.re = valueRegex(right.text)
		}
		if c := p.peek(); isCmp(c.kind) {
			return nil, errorf(c.off, `comparisons cannot be chained; join them with "&&" or "||"`)
		}
		return &cmpNode{op: op.kind, l: left, r: right}, nil
	}
	if after == nil {
		return nil, errorf(t.off, `expected a value or "(", found %s`, describe(t))
	}
	return nil, errorf(t.off, `expected a value or "(" after %s, found %s`, describe(after), describe(t))
}

func regexPlacement(t *token) *SyntaxError {
	return errorf(t.off, "a regular expression can only be the right operand of =~ or !~")
}

// operand converts a value token, recording variable names.
func (p *parser) operand(t *token) operand {
	switch t.kind {
	case tVar:
		if p.seen == nil {
			p.seen = make(map[string]struct{})
		}
		if _, ok := p.seen[t.text]; !ok {
			p.seen[t.text] = struct{}{}
			p.vars = append(p.vars, t.text)
		}
		return operand{kind: opVar, text: t.text}
	case tStr:
		return operand{kind: opStr, text: t.text}
	case tRegex:
		return operand{kind: opRegex, text: t.text, flags: t.flags, re: t.re}
	}
	return operand{kind: opNull}
}

func isCmp(k tokKind) bool { return k == tEq || k == tNe || k == tMatch || k == tNoMatch }

func isValue(k tokKind) bool { return k == tVar || k == tStr || k == tNull || k == tRegex }

func opName(k tokKind) string {
	switch k {
	case tEq:
		return `"=="`
	case tNe:
		return `"!="`
	case tMatch:
		return `"=~"`
	case tNoMatch:
		return `"!~"`
	case tAnd:
		return `"&&"`
	case tOr:
		return `"||"`
	case tLParen:
		return `"("`
	case tRParen:
		return `")"`
	}
	return "?"
}

// describe names a token for an error message.
func describe(t *token) string {
	switch t.kind {
	case tEOF:
		return "end of expression"
	case tVar:
		return "variable $" + t.text
	case tStr:
		return "string " + snippet(t.text)
	case tNull:
		return "null"
	case tRegex:
		return "regular expression " + snippet("/"+t.text+"/"+t.flags)
	}
	return opName(t.kind)
}
