package web

import (
	"bytes"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Limits of the log renderer.
const (
	// logMaxLine is the most text, in bytes, that one line keeps.
	logMaxLine = 64 << 10
	// logMaxDepth is how deeply sections nest: a section_start beyond it is
	// dropped, so a log cannot make a page nest without end.
	logMaxDepth = 100
	// logMaxName, logMaxOptions and logMaxTimestamp bound a section
	// marker's parts: longer ones make it plain text. They keep the bytes
	// held back between writes, at most the length of a marker, small.
	logMaxName      = 256
	logMaxOptions   = 256
	logMaxTimestamp = 20
	// logHoldMax is more than the longest section marker.
	logHoldMax = 1024
	// logCSIParams is how many parameters of a CSI sequence count.
	logCSIParams = 32
	// logKeepScratch is the size above which a scratch buffer is let go
	// after a call rather than kept for the next.
	logKeepScratch = 1 << 20
)

// logTruncated is the text of the span that ends a truncated line.
const logTruncated = " [line truncated]"

// logMarkerPrefix begins every section marker.
const logMarkerPrefix = "section_"

// logReplacement stands for each byte of invalid UTF-8.
var logReplacement = []byte(string(utf8.RuneError))

// logPlain tells the ASCII bytes that are text as they are: the printable
// ones and tab.
var logPlain = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = true
	}
	t['\t'] = true
	return t
}()

// RowKind says what a LogRow is.
type RowKind int

// The kinds of rows.
const (
	// RowLine is a line of the log.
	RowLine RowKind = iota
	// RowSectionStart opens a collapsible section; its text is the
	// section's header, a line of the log.
	RowSectionStart
	// RowSectionEnd closes the innermost open section.
	RowSectionEnd
)

// String returns the kind's name, such as "RowLine".
func (k RowKind) String() string {
	switch k {
	case RowLine:
		return "RowLine"
	case RowSectionStart:
		return "RowSectionStart"
	case RowSectionEnd:
		return "RowSectionEnd"
	}
	return "RowKind(" + strconv.Itoa(int(k)) + ")"
}

// LogRow is one line of a log, or the start or end of a collapsible section.
type LogRow struct {
	// Kind says which of the three the row is.
	Kind RowKind
	// N is the line's number, from 1 (RowLine and RowSectionStart: the
	// section's header line is a line too); 0 for RowSectionEnd.
	N int
	// Spans is the line's text in runs of one style (RowLine,
	// RowSectionStart: the header); nil for an empty line and for
	// RowSectionEnd. No span is empty, and neighbours differ in Class.
	Spans []LogSpan
	// Section is the section's name (RowSectionStart, RowSectionEnd), of
	// the bytes A-Z, a-z, 0-9, '_', '.' and '-'.
	Section string
	// Collapsed is section_start's [collapsed=true] option
	// (RowSectionStart).
	Collapsed bool
}

// LogSpan is a run of text in one style.
type LogSpan struct {
	// Text is valid UTF-8 without control characters, except tab.
	Text string
	// Class is the style as space-separated CSS classes, always from a
	// fixed set, never taken from the log: "ansi-bold", "ansi-italic",
	// "ansi-underline", "ansi-fg-N" and "ansi-bg-N" (N 0–15: 0–7 the normal
	// colours, 8–15 the bright ones), in that order; "" for the default
	// style; "log-truncated" for the marker ending a truncated line.
	Class string
}

// PlainText returns a row's text without styles (for search). The marker of
// a truncated line is not part of it.
func (r LogRow) PlainText() string {
	n, only := 0, -1
	for i, s := range r.Spans {
		if s.Class != logTruncatedClass {
			n += len(s.Text)
			only = i
		}
	}
	if only < 0 {
		return ""
	}
	if n == len(r.Spans[only].Text) {
		return r.Spans[only].Text
	}
	var b strings.Builder
	b.Grow(n)
	for _, s := range r.Spans {
		if s.Class != logTruncatedClass {
			b.WriteString(s.Text)
		}
	}
	return b.String()
}

// RenderLog renders a whole log: NewLogRenderer, Write, Flush.
func RenderLog(log []byte) []LogRow {
	r := NewLogRenderer()
	rows := r.Write(log)
	return append(rows, r.Flush()...)
}

// LogRenderer turns a job's log into rows, incrementally: Write takes bytes
// as they arrive and returns the rows of the lines they completed; Flush ends
// the log and returns the rows of a last line without a newline and closes
// open sections. State (colours, open sections, line numbers, a partial line,
// a partial escape sequence or UTF-8 character cut at a chunk boundary)
// carries across calls, so Write(a)+Write(b) gives the same rows as
// Write(a+b) for any split.
//
// It reads a log as a terminal would, simplified:
//
//   - A line ends at "\n". A "\r" returns to the start of the line, and
//     text written after it replaces the whole line: a line shows what
//     follows the last "\r" that text follows. This simplifies a terminal,
//     which overwrites only as many characters as are written again; in
//     progress output the difference rarely shows. A "\r" that no text
//     follows changes nothing, so "\r\n" ends a line like "\n", and
//     "50%\r\n" shows "50%".
//   - SGR sequences (ESC [ … m) set the style: bold, italic, underline and
//     the 16 colours, foreground and background. Colours 0–15 of the 256
//     (38;5;N, 48;5;N) map to the 16; other 256 colours and 24-bit ones leave
//     the colour as it was. The style carries across lines until reset.
//   - Every other escape sequence is dropped: other CSI sequences (cursor
//     moves, erasing), other ESC sequences (such as "ESC ( B"), and the
//     strings of OSC (hyperlinks, titles), DCS, SOS, PM and APC up to BEL or
//     ST. A newline, CAN or SUB ends such a string early, so a broken one
//     cannot swallow the rest of the log. Other control characters, except
//     tab, and DEL are dropped, C1 ones too.
//   - Invalid UTF-8 becomes U+FFFD, one per byte.
//   - GitLab's section markers, "section_start:TIME:NAME[OPTIONS]\r" and
//     "section_end:TIME:NAME\r", usually between "ESC [ 0 K" sequences, open
//     and close collapsible sections wherever they appear. The text before a
//     marker in its line, if any, is a line of its own. The rest of the line
//     after a section_start is the section's header; after a section_end it
//     is a line of its own, unless nothing shows in it. A section_end closes
//     the innermost open section of its name and every section opened in it;
//     one whose name is not open is dropped. Sections nest up to 100 deep: a
//     section_start deeper than that is dropped.
//   - A line keeps at most 64 KiB of text; the rest of it is dropped, and a
//     span " [line truncated]" of class "log-truncated" ends it.
//
// Section markers and UTF-8 characters cut short at the end of a Write are
// held back until the next, at most a few hundred bytes; Write keeps no
// other part of what it is given. The rows of one call share their text's
// memory. The zero LogRenderer is ready to use; it is not safe for
// concurrent use.
type LogRenderer struct {
	// Escape sequences.
	esc   logEscState
	csi   logCSI
	style logStyle

	// Bytes of the last Write not yet decided: a section marker or a UTF-8
	// character that the Write cut short. joined is scratch for them
	// followed by the next Write's first bytes.
	pending []byte
	joined  []byte

	// text holds the text of this call's finished lines, then the
	// current line's from lineStart on; spans divide it into runs of one
	// style, the current line's from lineSpans on.
	text      []byte
	spans     []logSpanMark
	lineStart int
	lineSpans int
	cr        bool // a "\r" waits for text to wipe the line
	truncated bool // the line reached logMaxLine
	marked    bool // the line held a section marker: it is no row if empty
	header    bool // the line is the header of the innermost section, not out yet

	sections []logSection // open, outermost first
	lines    int          // lines numbered so far

	// This call's rows, and for each the spans it takes.
	rows     []LogRow
	rowSpans []logRowSpans

	classes map[logStyle]string
}

// logSpanMark ends a span at text[end], which begins where the last ended.
type logSpanMark struct {
	end   int
	style logStyle
}

// logRowSpans are the spans of a row: spans[lo:hi].
type logRowSpans struct{ lo, hi int }

// logSection is an open section.
type logSection struct {
	name      string
	collapsed bool
}

// NewLogRenderer returns a renderer at the start of a log.
func NewLogRenderer() *LogRenderer {
	return &LogRenderer{}
}

// Write renders p, the next bytes of the log, and returns the rows of the
// lines that p completed, and of the sections whose end markers it held.
func (r *LogRenderer) Write(p []byte) []LogRow {
	// Room for what p likely makes, so that a large p does not grow the
	// buffers again and again.
	if n := bytes.Count(p, []byte{'\n'}); n > 0 {
		r.rows = make([]LogRow, 0, n+n/16+1)
		r.rowSpans = slices.Grow(r.rowSpans, n+n/16+1)
		r.spans = slices.Grow(r.spans, n+n/2)
	}
	r.text = slices.Grow(r.text, len(p))
	// Bytes held back: decide them with the first bytes of p, without
	// copying all of p.
	for len(r.pending) > 0 && len(p) > 0 {
		head := p[:min(len(p), logHoldMax)]
		r.joined = append(append(r.joined[:0], r.pending...), head...)
		if k := r.process(r.joined, false); k >= len(r.pending) {
			p = p[k-len(r.pending):]
			r.pending = r.pending[:0]
		} else {
			r.pending = append(r.pending[:0], r.joined[k:]...)
			p = p[len(head):]
		}
	}
	if len(r.pending) == 0 {
		k := r.process(p, false)
		r.pending = append(r.pending, p[k:]...)
	}
	return r.takeRows()
}

// Flush ends the log and returns the rows of its last line, if it did not
// end with a newline, and the ends of the sections still open, innermost
// first. A Write after Flush starts a new log, whose lines are numbered on
// from the last one's.
func (r *LogRenderer) Flush() []LogRow {
	r.process(r.pending, true)
	r.pending = r.pending[:0]
	r.esc = logEscNone
	r.finishLine(false)
	for len(r.sections) > 0 {
		r.endSection()
	}
	r.style = 0
	return r.takeRows()
}

// Open returns the sections open now, outermost first (what a live view
// appends into): those whose start row is out and end row is not; nil if
// none.
func (r *LogRenderer) Open() []string {
	n := len(r.sections)
	if r.header {
		n-- // its start row waits for the end of its header line
	}
	if n <= 0 {
		return nil
	}
	names := make([]string, n)
	for i := range names {
		names[i] = r.sections[i].name
	}
	return names
}

// Lines is how many lines were emitted so far.
func (r *LogRenderer) Lines() int {
	return r.lines
}

// process renders data, which follows whatever was processed before, and
// returns how many bytes of it it consumed: all, if final says the log ends
// there, and otherwise all but a section marker or UTF-8 character cut short
// at the end, which must wait for more bytes.
func (r *LogRenderer) process(data []byte, final bool) int {
	i := 0
	for i < len(data) {
		if r.esc != logEscNone {
			if r.escape(data[i]) {
				i++
			}
			continue
		}
		// Text as it is: printable ASCII (but a possible section marker)
		// and valid UTF-8 (but C1 controls).
		j := i
		for j < len(data) {
			if c := data[j]; c < utf8.RuneSelf {
				if !logPlain[c] || c == 's' && logMaybeMarker(data[j:]) {
					break
				}
				j++
				continue
			}
			rn, size := utf8.DecodeRune(data[j:])
			if rn < 0xa0 || rn == utf8.RuneError && size == 1 {
				break
			}
			j += size
		}
		if j > i {
			r.addText(data[i:j])
			if i = j; i == len(data) {
				break
			}
		}
		switch c := data[i]; {
		case c == '\n':
			r.finishLine(true)
			i++
		case c == '\r':
			r.cr = true
			i++
		case c == 0x1b:
			r.esc = logEsc
			i++
		case c == 's':
			m, n := logParseMarker(data[i:])
			if n < 0 && !final {
				return i
			}
			if n <= 0 {
				r.addText(data[i : i+1])
				i++
				break
			}
			r.marker(m)
			i += n
		case c >= utf8.RuneSelf:
			rn, size := utf8.DecodeRune(data[i:])
			if rn == utf8.RuneError && size == 1 {
				if !final && !utf8.FullRune(data[i:]) {
					return i
				}
				r.addText(logReplacement)
			} // else a C1 control, dropped
			i += size
		default: // other control characters and DEL are dropped
			i++
		}
	}
	return len(data)
}

// addText adds b, valid UTF-8 without control characters but tab, to the
// current line in the current style.
func (r *LogRenderer) addText(b []byte) {
	if r.cr {
		r.cr = false
		r.text = r.text[:r.lineStart]
		r.spans = r.spans[:r.lineSpans]
		r.truncated = false
	}
	if r.truncated {
		return
	}
	if room := logMaxLine - (len(r.text) - r.lineStart); len(b) > room {
		for room > 0 && !utf8.RuneStart(b[room]) {
			room--
		}
		b = b[:room]
		r.truncated = true
	}
	if len(b) > 0 {
		r.text = append(r.text, b...)
		r.endSpan(r.style)
	}
}

// endSpan ends the current line's last span at the end of text, in style s:
// it grows the last span if that has style s, or else adds a span.
func (r *LogRenderer) endSpan(s logStyle) {
	if n := len(r.spans); n > r.lineSpans && r.spans[n-1].style == s {
		r.spans[n-1].end = len(r.text)
		return
	}
	r.spans = append(r.spans, logSpanMark{end: len(r.text), style: s})
}

// finishLine ends the current line, making it a row unless it is empty and
// either keepEmpty is false or the line held a section marker. The header of
// a section is always a row.
func (r *LogRenderer) finishLine(keepEmpty bool) {
	if r.header || len(r.spans) > r.lineSpans || keepEmpty && !r.marked {
		if r.truncated {
			r.text = append(r.text, logTruncated...)
			r.endSpan(logTruncatedStyle)
		}
		r.lines++
		row := LogRow{Kind: RowLine, N: r.lines}
		if r.header {
			s := r.sections[len(r.sections)-1]
			row.Kind, row.Section, row.Collapsed = RowSectionStart, s.name, s.collapsed
		}
		r.rows = append(r.rows, row)
		r.rowSpans = append(r.rowSpans, logRowSpans{r.lineSpans, len(r.spans)})
	}
	r.lineStart, r.lineSpans = len(r.text), len(r.spans)
	r.cr, r.truncated, r.marked, r.header = false, false, false, false
}

// marker acts on a section marker found in the current line.
func (r *LogRenderer) marker(m logMarker) {
	if m.start {
		if len(r.sections) < logMaxDepth {
			r.finishLine(false)
			r.sections = append(r.sections, logSection{name: string(m.name), collapsed: m.collapsed})
			r.header = true
		}
		r.marked = true
		return
	}
	for k := len(r.sections) - 1; k >= 0; k-- {
		if r.sections[k].name == string(m.name) {
			r.finishLine(false)
			for len(r.sections) > k {
				r.endSection()
			}
			break
		}
	}
	r.marked = true
}

// endSection closes the innermost open section. The current line must be
// empty.
func (r *LogRenderer) endSection() {
	top := len(r.sections) - 1
	r.rows = append(r.rows, LogRow{Kind: RowSectionEnd, Section: r.sections[top].name})
	r.rowSpans = append(r.rowSpans, logRowSpans{len(r.spans), len(r.spans)})
	r.sections[top] = logSection{}
	r.sections = r.sections[:top]
}

// takeRows returns this call's rows, with their text in one string, and
// keeps of the scratch buffers only the current line.
func (r *LogRenderer) takeRows() []LogRow {
	rows, done := r.rows, r.lineStart
	if len(rows) > 0 {
		text := string(r.text[:done])
		spans := make([]LogSpan, r.lineSpans)
		start, last, class := 0, logStyle(0), ""
		for k, m := range r.spans[:r.lineSpans] {
			if m.style != last {
				last, class = m.style, r.class(m.style)
			}
			spans[k] = LogSpan{Text: text[start:m.end], Class: class}
			start = m.end
		}
		for k, rs := range r.rowSpans {
			if rs.hi > rs.lo {
				rows[k].Spans = spans[rs.lo:rs.hi:rs.hi]
			}
		}
	} else {
		rows = nil
	}
	r.text = logCompact(r.text, done, logKeepScratch)
	r.spans = logCompact(r.spans, r.lineSpans, logKeepScratch/16)
	if done > 0 {
		for k := range r.spans {
			r.spans[k].end -= done
		}
	}
	r.lineStart, r.lineSpans = 0, 0
	r.rows = nil
	r.rowSpans = logCompact(r.rowSpans, len(r.rowSpans), logKeepScratch/16)
	return rows
}

// logCompact moves s[from:] to the front of s, or to a new array if s's is
// larger than keep elements.
func logCompact[S ~[]E, E any](s S, from, keep int) S {
	switch {
	case cap(s) <= keep && from == 0:
		return s
	case cap(s) > keep:
		return append(S(nil), s[from:]...)
	}
	return s[:copy(s, s[from:])]
}

// class returns the CSS classes of style s.
func (r *LogRenderer) class(s logStyle) string {
	if s == 0 {
		return ""
	}
	c, ok := r.classes[s]
	if !ok {
		if r.classes == nil {
			r.classes = make(map[logStyle]string)
		}
		c = s.class()
		r.classes[s] = c
	}
	return c
}

// logMaybeMarker reports whether b could begin a section marker.
func logMaybeMarker(b []byte) bool {
	if len(b) >= len(logMarkerPrefix) {
		return string(b[:len(logMarkerPrefix)]) == logMarkerPrefix
	}
	return string(b) == logMarkerPrefix[:len(b)]
}

// logMarker is a section marker.
type logMarker struct {
	start     bool   // section_start, or else section_end
	name      []byte // the section's name
	collapsed bool   // [collapsed=true]
}

// logParseMarker parses the section marker b begins with,
// "section_start:TIME:NAME[OPTIONS]\r" or "section_end:TIME:NAME[OPTIONS]\r".
// It returns the marker and its length; 0 if b does not begin with a marker;
// -1 if b ends too soon to tell.
func logParseMarker(b []byte) (m logMarker, n int) {
	// lit returns the index after s at b[i:].
	lit := func(i int, s string) int {
		k := min(len(b)-i, len(s))
		switch {
		case string(b[i:i+k]) != s[:k]:
			return 0
		case k < len(s):
			return -1
		}
		return i + len(s)
	}
	// run returns the index after the 1 to limit bytes at b[i:] that are
	// in set.
	run := func(i, limit int, in func(byte) bool) int {
		j := i
		for j < len(b) && in(b[j]) {
			if j++; j-i > limit {
				return 0
			}
		}
		switch {
		case j == len(b):
			return -1
		case j == i:
			return 0
		}
		return j
	}
	i := lit(0, logMarkerPrefix)
	if i <= 0 {
		return m, i
	}
	if i == len(b) {
		return m, -1
	}
	switch b[i] {
	case 's':
		m.start = true
		i = lit(i, "start:")
	case 'e':
		i = lit(i, "end:")
	default:
		return m, 0
	}
	if i <= 0 {
		return m, i
	}
	if i = run(i, logMaxTimestamp, logIsDigit); i <= 0 {
		return m, i
	}
	if i = lit(i, ":"); i <= 0 {
		return m, i
	}
	name := i
	if i = run(i, logMaxName, logIsNameByte); i <= 0 {
		return m, i
	}
	m.name = b[name:i]
	if b[i] == '[' {
		opts := i + 1
		if i = run(opts, logMaxOptions, logIsOptionByte); i <= 0 {
			return m, i
		}
		for opt := range bytes.SplitSeq(b[opts:i], []byte{','}) {
			k, v, _ := bytes.Cut(opt, []byte{'='})
			if string(bytes.TrimSpace(k)) == "collapsed" {
				m.collapsed = string(bytes.TrimSpace(v)) == "true"
			}
		}
		if i = lit(i, "]"); i <= 0 {
			return m, i
		}
	}
	if i = lit(i, "\r"); i <= 0 {
		return m, i
	}
	return m, i
}

func logIsDigit(c byte) bool { return '0' <= c && c <= '9' }

func logIsNameByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-'
}

func logIsOptionByte(c byte) bool { return 0x20 <= c && c < 0x7f && c != ']' }

// logEscState is where the renderer is in an escape sequence.
type logEscState uint8

const (
	logEscNone         logEscState = iota // not in one
	logEsc                                // after ESC
	logEscIntermediate                    // after ESC and intermediate bytes
	logEscCSI                             // after ESC [
	logEscString                          // in an OSC, DCS, SOS, PM or APC string
	logEscStringEsc                       // after ESC in such a string
)

// logCSI gathers the parameters of a CSI sequence.
type logCSI struct {
	vals    [logCSIParams]int
	sub     [logCSIParams]bool // vals[i] is a sub-parameter, after ':'
	n       int                // parameters in vals
	cur     int                // the parameter being read
	nextSub bool               // the parameter being read follows ':'
	ignore  bool               // private or with intermediate bytes: no SGR
}

// next ends the parameter being read; sub says the next one follows ':'.
func (c *logCSI) next(sub bool) {
	if c.n < len(c.vals) {
		c.vals[c.n], c.sub[c.n] = c.cur, c.nextSub
		c.n++
	}
	c.cur, c.nextSub = 0, sub
}

// escape takes byte c of an escape sequence. It returns false if c is not
// part of it but ends it, to be read as if outside.
func (r *LogRenderer) escape(c byte) bool {
	switch r.esc {
	case logEsc, logEscIntermediate:
		switch {
		case c == '[' && r.esc == logEsc:
			r.esc = logEscCSI
			r.csi.n, r.csi.cur, r.csi.nextSub, r.csi.ignore = 0, 0, false, false
		case (c == ']' || c == 'P' || c == 'X' || c == '^' || c == '_') && r.esc == logEsc:
			r.esc = logEscString
		case 0x20 <= c && c <= 0x2f:
			r.esc = logEscIntermediate
		case 0x30 <= c && c <= 0x7e:
			r.esc = logEscNone
		case c == 0x1b:
			r.esc = logEsc
		case c == 0x7f: // ignored
		default:
			r.esc = logEscNone
			return false
		}
	case logEscCSI:
		switch {
		case '0' <= c && c <= '9':
			if r.csi.cur < 100000 {
				r.csi.cur = r.csi.cur*10 + int(c-'0')
			}
		case c == ';' || c == ':':
			r.csi.next(c == ':')
		case 0x20 <= c && c <= 0x3f: // intermediate or private
			r.csi.ignore = true
		case 0x40 <= c && c <= 0x7e:
			r.esc = logEscNone
			if c == 'm' && !r.csi.ignore {
				r.csi.next(false)
				r.sgr()
			}
		case c == 0x1b:
			r.esc = logEsc
		case c == 0x7f: // ignored
		default:
			r.esc = logEscNone
			return false
		}
	case logEscString:
		switch c {
		case 0x07:
			r.esc = logEscNone
		case 0x1b:
			r.esc = logEscStringEsc
		case '\n', 0x18, 0x1a:
			r.esc = logEscNone
			return false
		}
	case logEscStringEsc:
		if c == '\\' {
			r.esc = logEscNone
			break
		}
		r.esc = logEsc // the ESC ended the string and begins a sequence
		return r.escape(c)
	}
	return true
}

// sgr applies the SGR sequence in r.csi to the style.
func (r *LogRenderer) sgr() {
	vals, sub := r.csi.vals[:r.csi.n], r.csi.sub[:r.csi.n]
	s := r.style
	for i := 0; i < len(vals); {
		v := vals[i]
		i++
		j := i
		for j < len(sub) && sub[j] {
			j++
		}
		subs := vals[i:j]
		i = j
		switch {
		case v == 0:
			s = 0
		case v == 1:
			s |= logBold
		case v == 3:
			s |= logItalic
		case v == 4: // 4:0 is no underline, 4:N a kind of underline
			if len(subs) > 0 && subs[0] == 0 {
				s &^= logUnderline
			} else {
				s |= logUnderline
			}
		case v == 22:
			s &^= logBold
		case v == 23:
			s &^= logItalic
		case v == 24:
			s &^= logUnderline
		case 30 <= v && v <= 37:
			s = s.withFg(v - 30)
		case v == 39:
			s = s.withFg(-1)
		case 40 <= v && v <= 47:
			s = s.withBg(v - 40)
		case v == 49:
			s = s.withBg(-1)
		case 90 <= v && v <= 97:
			s = s.withFg(v - 90 + 8)
		case 100 <= v && v <= 107:
			s = s.withBg(v - 100 + 8)
		case v == 38 || v == 48:
			// 5;N is colour N of 256, 2;R;G;B a 24-bit colour, either
			// in the following parameters or in sub-parameters.
			ext := subs
			if len(ext) == 0 && i < len(vals) {
				n := 1
				switch vals[i] {
				case 5:
					n = 2
				case 2:
					n = 4
				}
				ext = vals[i:min(i+n, len(vals))]
				i += len(ext)
			}
			if len(ext) >= 2 && ext[0] == 5 && ext[1] < 16 {
				if v == 38 {
					s = s.withFg(ext[1])
				} else {
					s = s.withBg(ext[1])
				}
			}
		}
	}
	r.style = s
}

// logStyle is a text style: attribute bits, then the foreground and the
// background colour, each plus one, 0 being the default colour.
type logStyle uint16

const (
	logBold logStyle = 1 << iota
	logItalic
	logUnderline
)

const (
	logFgShift        = 3
	logBgShift        = 8
	logColorMask      = 0x1f
	logTruncatedStyle = logStyle(1 << 15) // the marker of a truncated line
	logTruncatedClass = "log-truncated"
)

// withFg returns s with foreground colour c, -1 for the default.
func (s logStyle) withFg(c int) logStyle {
	return s&^(logColorMask<<logFgShift) | logStyle(c+1)<<logFgShift
}

// withBg returns s with background colour c, -1 for the default.
func (s logStyle) withBg(c int) logStyle {
	return s&^(logColorMask<<logBgShift) | logStyle(c+1)<<logBgShift
}

var (
	logFgClasses = [16]string{
		"ansi-fg-0", "ansi-fg-1", "ansi-fg-2", "ansi-fg-3", "ansi-fg-4", "ansi-fg-5", "ansi-fg-6", "ansi-fg-7",
		"ansi-fg-8", "ansi-fg-9", "ansi-fg-10", "ansi-fg-11", "ansi-fg-12", "ansi-fg-13", "ansi-fg-14", "ansi-fg-15",
	}
	logBgClasses = [16]string{
		"ansi-bg-0", "ansi-bg-1", "ansi-bg-2", "ansi-bg-3", "ansi-bg-4", "ansi-bg-5", "ansi-bg-6", "ansi-bg-7",
		"ansi-bg-8", "ansi-bg-9", "ansi-bg-10", "ansi-bg-11", "ansi-bg-12", "ansi-bg-13", "ansi-bg-14", "ansi-bg-15",
	}
)

// class returns the CSS classes of s.
func (s logStyle) class() string {
	if s == logTruncatedStyle {
		return logTruncatedClass
	}
	var b strings.Builder
	add := func(c string) {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(c)
	}
	if s&logBold != 0 {
		add("ansi-bold")
	}
	if s&logItalic != 0 {
		add("ansi-italic")
	}
	if s&logUnderline != 0 {
		add("ansi-underline")
	}
	if fg := s >> logFgShift & logColorMask; fg != 0 {
		add(logFgClasses[fg-1])
	}
	if bg := s >> logBgShift & logColorMask; bg != 0 {
		add(logBgClasses[bg-1])
	}
	return b.String()
}
