package web_test

import (
	"bytes"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/hangar-ci/hangar/internal/web"
)

// logviewDump writes rows one a line, in a form easy to write in a test:
//
//	3: "plain" [ansi-bold]"bold \u2603"
//	4: start build collapsed: "Building"
//	end build
func logviewDump(rows []web.LogRow) []string {
	out := make([]string, 0, len(rows))
	for _, row := range rows {
		var b strings.Builder
		switch row.Kind {
		case web.RowLine:
			fmt.Fprintf(&b, "%d:", row.N)
		case web.RowSectionStart:
			fmt.Fprintf(&b, "%d: start %s", row.N, row.Section)
			if row.Collapsed {
				b.WriteString(" collapsed")
			}
			b.WriteString(":")
		case web.RowSectionEnd:
			fmt.Fprintf(&b, "end %s", row.Section)
			if row.N != 0 || row.Spans != nil {
				fmt.Fprintf(&b, " N=%d spans=%q", row.N, row.Spans)
			}
		default:
			fmt.Fprintf(&b, "kind %d", row.Kind)
		}
		for _, s := range row.Spans {
			b.WriteByte(' ')
			if s.Class != "" {
				fmt.Fprintf(&b, "[%s]", s.Class)
			}
			fmt.Fprintf(&b, "%+q", s.Text)
		}
		out = append(out, b.String())
	}
	return out
}

type logviewCase struct {
	name string
	log  string
	want []string
}

// logviewRun checks that each case's log renders as want, whole and written
// byte by byte.
func logviewRun(t *testing.T, cases []logviewCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := logviewDump(web.RenderLog([]byte(c.log)))
			if !slices.Equal(got, c.want) {
				t.Errorf("RenderLog(%q):\n got:\n\t%s\nwant:\n\t%s", c.log, strings.Join(got, "\n\t"), strings.Join(c.want, "\n\t"))
			}
			if bytewise := logviewDump(logviewChunked([]byte(c.log), 1)); !slices.Equal(bytewise, got) {
				t.Errorf("byte by byte:\n got:\n\t%s\nwhole:\n\t%s", strings.Join(bytewise, "\n\t"), strings.Join(got, "\n\t"))
			}
		})
	}
}

// logviewChunked renders log written in chunks of n bytes.
func logviewChunked(log []byte, n int) []web.LogRow {
	r := web.NewLogRenderer()
	var rows []web.LogRow
	for len(log) > 0 {
		k := min(n, len(log))
		rows = append(rows, r.Write(log[:k])...)
		log = log[k:]
	}
	return append(rows, r.Flush()...)
}

func TestRenderLogStyles(t *testing.T) {
	logviewRun(t, []logviewCase{
		{"plain", "hello\nworld\n", []string{`1: "hello"`, `2: "world"`}},
		{"empty log", "", []string{}},
		{"empty lines", "\n\na\n\n", []string{`1:`, `2:`, `3: "a"`, `4:`}},
		{"no final newline", "a\nb", []string{`1: "a"`, `2: "b"`}},
		{"bold and reset", "a\x1b[1mb\x1b[0mc\n", []string{`1: "a" [ansi-bold]"b" "c"`}},
		{"empty reset", "\x1b[1mb\x1b[mc\n", []string{`1: [ansi-bold]"b" "c"`}},
		{"empty first param resets", "\x1b[1mb\x1b[;3mc\n", []string{`1: [ansi-bold]"b" [ansi-italic]"c"`}},
		{"italic underline", "\x1b[3mi\x1b[4mu\x1b[23mx\x1b[24my\n", []string{`1: [ansi-italic]"i" [ansi-italic ansi-underline]"u" [ansi-underline]"x" "y"`}},
		{"not bold", "\x1b[1;31ma\x1b[22mb\n", []string{`1: [ansi-bold ansi-fg-1]"a" [ansi-fg-1]"b"`}},
		{"colours", "\x1b[32mgreen\x1b[39m \x1b[44mblue\x1b[49m\n", []string{`1: [ansi-fg-2]"green" " " [ansi-bg-4]"blue"`}},
		{"bright", "\x1b[90ma\x1b[97mb\x1b[100mc\x1b[107md\n", []string{`1: [ansi-fg-8]"a" [ansi-fg-15]"b" [ansi-fg-15 ansi-bg-8]"c" [ansi-fg-15 ansi-bg-15]"d"`}},
		{"all attributes order", "\x1b[41;34;4;3;1mx\n", []string{`1: [ansi-bold ansi-italic ansi-underline ansi-fg-4 ansi-bg-1]"x"`}},
		{"multiple params", "\x1b[1;32;41mok\x1b[0m\n", []string{`1: [ansi-bold ansi-fg-2 ansi-bg-1]"ok"`}},
		{"256 colour low", "\x1b[38;5;9ma\x1b[48;5;2mb\n", []string{`1: [ansi-fg-9]"a" [ansi-fg-9 ansi-bg-2]"b"`}},
		{"256 colour high ignored", "\x1b[31m\x1b[38;5;200ma\x1b[38;5;15;1mb\n", []string{`1: [ansi-fg-1]"a" [ansi-bold ansi-fg-15]"b"`}},
		{"256 colour params consumed", "\x1b[38;5;1;4mx\n", []string{`1: [ansi-underline ansi-fg-1]"x"`}},
		{"truecolour consumed", "\x1b[38;2;1;3;4;1mx\x1b[48;2;255;0;0m\n", []string{`1: [ansi-bold]"x"`}},
		{"truecolour cut short", "\x1b[38;2;1mx\x1b[38mx\x1b[38;5mx\n", []string{`1: "xxx"`}},
		{"colon sub-parameters", "\x1b[38:5:3ma\x1b[48:2::1:2:3;4:3mb\x1b[4:0mc\n", []string{`1: [ansi-fg-3]"a" [ansi-underline ansi-fg-3]"b" [ansi-fg-3]"c"`}},
		{"unknown params ignored", "\x1b[2;5;7;9;1mx\n", []string{`1: [ansi-bold]"x"`}},
		{"huge param", "\x1b[99999999999999999999;1mx\n", []string{`1: [ansi-bold]"x"`}},
		{"private sequence not SGR", "\x1b[?1mx\x1b[>4;1mx\n", []string{`1: "xx"`}},
		{"same class merged", "a\x1b[0mb\x1b[31m\x1b[31mc\x1b[2Kd\x1b[1m\x1b[22me\n", []string{`1: "ab" [ansi-fg-1]"cde"`}},
		{"no empty spans", "\x1b[31m\x1b[1m\x1b[0mx\x1b[32m\n", []string{`1: "x"`}},
		{"style only line is empty", "\x1b[31m\x1b[0m\n", []string{`1:`}},
	})
}

func TestRenderLogStyleAcrossLines(t *testing.T) {
	logviewRun(t, []logviewCase{
		{"carries", "\x1b[31ma\nb\n\x1b[0mc\n", []string{`1: [ansi-fg-1]"a"`, `2: [ansi-fg-1]"b"`, `3: "c"`}},
		{"through empty line", "\x1b[1;32m\n\nx\n", []string{`1:`, `2:`, `3: [ansi-bold ansi-fg-2]"x"`}},
		{"through section", "\x1b[33msection_start:1:s\r\x1b[0Kh\nx\nsection_end:1:s\r\x1b[0Ky\n",
			[]string{`1: start s: [ansi-fg-3]"h"`, `2: [ansi-fg-3]"x"`, `end s`, `3: [ansi-fg-3]"y"`}},
	})
}

func TestRenderLogCarriageReturn(t *testing.T) {
	logviewRun(t, []logviewCase{
		{"progress", "10%\r20%\r100%\ndone\n", []string{`1: "100%"`, `2: "done"`}},
		{"crlf", "a\r\nb\r\n", []string{`1: "a"`, `2: "b"`}},
		{"cr before newline keeps line", "a\r\r\n", []string{`1: "a"`}},
		{"trailing cr at end of log", "a\nb\r", []string{`1: "a"`, `2: "b"`}},
		{"cr wipes longer text", "downloading 10%\rok\n", []string{`1: "ok"`}},
		{"cr wipes styles", "\x1b[31mred\r\x1b[32mgreen\n", []string{`1: [ansi-fg-2]"green"`}},
		{"escape after cr does not wipe", "abc\r\x1b[0K\n", []string{`1: "abc"`}},
		{"cr alone line", "\r\n", []string{`1:`}},
		{"tab counts as text", "abc\r\t\n", []string{`1: "\t"`}},
	})
}

func TestRenderLogSections(t *testing.T) {
	const (
		start = "\x1b[0Ksection_start:1700000000:"
		end   = "\x1b[0Ksection_end:1700000001:"
		cr    = "\r\x1b[0K"
	)
	logviewRun(t, []logviewCase{
		{"start and end", "a\n" + start + "build" + cr + "Building\nx\n" + end + "build" + cr + "\nb\n",
			[]string{`1: "a"`, `2: start build: "Building"`, `3: "x"`, `end build`, `4: "b"`}},
		{"collapsed", start + "s[collapsed=true]" + cr + "H\n" + end + "s" + cr + "\n",
			[]string{`1: start s collapsed: "H"`, `end s`}},
		{"collapsed false", start + "s[collapsed=false]" + cr + "H\n", []string{`1: start s: "H"`, `end s`}},
		{"options", start + "s[hide_duration=true,collapsed=true]" + cr + "H\n" + start + "t[hide_duration=true]" + cr + "I\n",
			[]string{`1: start s collapsed: "H"`, `2: start t: "I"`, `end t`, `end s`}},
		{"options with spaces", start + "s[collapsed = true, x=y]" + cr + "H\n", []string{`1: start s collapsed: "H"`, `end s`}},
		{"empty header", start + "s" + cr + "\nx\n", []string{`1: start s:`, `2: "x"`, `end s`}},
		{"header styled", start + "s" + cr + "\x1b[36;1mStep 1\x1b[0;m\n", []string{`1: start s: [ansi-bold ansi-fg-6]"Step 1"`, `end s`}},
		{"header with cr", start + "s" + cr + "10%\r100%\n", []string{`1: start s: "100%"`, `end s`}},
		{"nesting", start + "a" + cr + "A\n" + start + "b" + cr + "B\nx\n" + end + "b" + cr + "\ny\n" + end + "a" + cr + "\n",
			[]string{`1: start a: "A"`, `2: start b: "B"`, `3: "x"`, `end b`, `4: "y"`, `end a`}},
		{"end closes inner", start + "a" + cr + "A\n" + start + "b" + cr + "B\n" + start + "c" + cr + "C\n" + end + "a" + cr + "\nz\n",
			[]string{`1: start a: "A"`, `2: start b: "B"`, `3: start c: "C"`, `end c`, `end b`, `end a`, `4: "z"`}},
		{"same name nested closes innermost", start + "a" + cr + "1\n" + start + "a" + cr + "2\n" + end + "a" + cr + "\nx\n",
			[]string{`1: start a: "1"`, `2: start a: "2"`, `end a`, `3: "x"`, `end a`}},
		{"unknown end dropped", "x\n" + end + "nope" + cr + "\ny\n", []string{`1: "x"`, `2: "y"`}},
		{"unknown end mid line dropped", "x" + end + "nope" + cr + "y\n", []string{`1: "xy"`}},
		{"end inside open other", start + "a" + cr + "A\n" + end + "b" + cr + "\n" + end + "a" + cr + "\n",
			[]string{`1: start a: "A"`, `end a`}},
		{"flush closes innermost first", start + "a" + cr + "A\n" + start + "b" + cr + "B\nlast",
			[]string{`1: start a: "A"`, `2: start b: "B"`, `3: "last"`, `end b`, `end a`}},
		{"flush emits unfinished header", "x\n" + start + "a" + cr + "A", []string{`1: "x"`, `2: start a: "A"`, `end a`}},
		{"no leading erase", "section_start:1:a\r\x1b[0KA\nsection_end:2:a\r\x1b[0K\n", []string{`1: start a: "A"`, `end a`}},
		{"no erase at all", "section_start:1:a\rA\nsection_end:2:a\r\n", []string{`1: start a: "A"`, `end a`}},
		{"text after end", start + "a" + cr + "A\n" + end + "a" + cr + "after\n", []string{`1: start a: "A"`, `end a`, `2: "after"`}},
		{"start after end on one line", start + "a" + cr + "A\n" + end + "a" + cr + start + "b" + cr + "B\nx\n",
			[]string{`1: start a: "A"`, `end a`, `2: start b: "B"`, `3: "x"`, `end b`}},
		{"text before marker", "before" + start + "a" + cr + "A\nbefore " + end + "a" + cr + "\n",
			[]string{`1: "before"`, `2: start a: "A"`, `3: "before "`, `end a`}},
		{"header ended by marker", start + "a" + cr + "A" + start + "b" + cr + "B\n",
			[]string{`1: start a: "A"`, `2: start b: "B"`, `end b`, `end a`}},
		{"end right after start", start + "a" + cr + end + "a" + cr + "\n", []string{`1: start a:`, `end a`}},
		{"marker line with escapes only", start + "a" + cr + "A\n" + end + "a" + cr + "\x1b[0m\r\n", []string{`1: start a: "A"`, `end a`}},
		{"name characters", start + "a-Z_0.9" + cr + "H\n", []string{`1: start a-Z_0.9: "H"`, `end a-Z_0.9`}},
		{"bad name is text", "section_start:1:a b\rH\n", []string{`1: "H"`}},
		{"no timestamp is text", "section_start::a\r\x1b[0KH\n", []string{`1: "H"`}},
		{"no cr is text", "section_start:1:a\n", []string{`1: "section_start:1:a"`}},
		{"unclosed options is text", "section_start:1:a[collapsed=true\rH\n", []string{`1: "H"`}},
		{"empty options is text", "section_start:1:a[]\rH\n", []string{`1: "H"`}},
		{"other action is text", "section_middle:1:a\rH\nsection_\nsections\n", []string{`1: "H"`, `2: "section_"`, `3: "sections"`}},
		{"marker in failed marker", "section_start:1:section_start:2:b\r\x1b[0KB\n",
			[]string{`1: "section_start:1:"`, `2: start b: "B"`, `end b`}},
		{"long name is text", "section_start:1:" + strings.Repeat("n", 257) + "\rH\n", []string{`1: "H"`}},
		{"longest name", "section_start:1:" + strings.Repeat("n", 256) + "\rH\n",
			[]string{`1: start ` + strings.Repeat("n", 256) + `: "H"`, `end ` + strings.Repeat("n", 256)}},
	})
}

func TestRenderLogSectionDepth(t *testing.T) {
	var b strings.Builder
	for i := range 105 {
		fmt.Fprintf(&b, "section_start:1:s%d\r\x1b[0KH%d\n", i, i)
	}
	rows := web.RenderLog([]byte(b.String()))
	starts, ends, lines := 0, 0, 0
	for _, row := range rows {
		switch row.Kind {
		case web.RowSectionStart:
			starts++
		case web.RowSectionEnd:
			ends++
		case web.RowLine:
			lines++
		}
	}
	if starts != 100 || ends != 100 || lines != 5 {
		t.Errorf("105 nested sections: %d starts, %d ends, %d lines; want 100, 100 and 5", starts, ends, lines)
	}
}

func TestRenderLogEscapes(t *testing.T) {
	logviewRun(t, []logviewCase{
		{"hyperlink BEL", "see \x1b]8;;https://example.com\x07the docs\x1b]8;;\x07.\n", []string{`1: "see the docs."`}},
		{"hyperlink ST", "see \x1b]8;;https://example.com\x1b\\the docs\x1b]8;;\x1b\\.\n", []string{`1: "see the docs."`}},
		{"title", "\x1b]0;title\x07x\n", []string{`1: "x"`}},
		{"osc ended by other escape", "\x1b]0;t\x1b[1mx\n", []string{`1: [ansi-bold]"x"`}},
		{"unterminated osc ends at newline", "a\x1b]8;;http://x\nb\n", []string{`1: "a"`, `2: "b"`}},
		{"osc with utf-8", "\x1b]0;héllo ☃\x07x\n", []string{`1: "x"`}},
		{"dcs apc pm sos", "a\x1bPq#0\x1b\\b\x1b_apc\x07c\x1b^pm\x1b\\d\x1bXsos\x1b\\e\n", []string{`1: "abcde"`}},
		{"erase and cursor", "\x1b[0Ka\x1b[2Kb\x1b[1Ac\x1b[10;20Hd\x1b[?25le\x1b[ qf\n", []string{`1: "abcdef"`}},
		{"charset", "\x1b(Bx\x1b(0y\x1b)Bz\n", []string{`1: "xyz"`}},
		{"tput sgr0", "\x1b[1mx\x1b(B\x1b[my\n", []string{`1: [ansi-bold]"x" "y"`}},
		{"lone esc", "a\x1bcb\x1b=c\x1b>d\x1b7e\n", []string{`1: "abcde"`}},
		{"esc esc", "a\x1b\x1b[1mb\n", []string{`1: "a" [ansi-bold]"b"`}},
		{"esc newline", "a\x1b\nb\x1b", []string{`1: "a"`, `2: "b"`}},
		{"esc before utf-8", "a\x1bé\n", []string{`1: "a\u00e9"`}},
		{"csi cut by newline", "a\x1b[31\nb\n", []string{`1: "a"`, `2: "b"`}},
		{"csi with del", "\x1b[3\x7f1mx\n", []string{`1: [ansi-fg-1]"x"`}},
		{"csi at end", "a\x1b[", []string{`1: "a"`}},
		{"many params", "\x1b[" + strings.Repeat("0;", 100) + "1mx\n", []string{`1: "x"`}},
	})
}

func TestRenderLogControlCharacters(t *testing.T) {
	logviewRun(t, []logviewCase{
		{"dropped", "a\x00b\x01c\x07d\x08e\x0bf\x0cg\x7fh\n", []string{`1: "abcdefgh"`}},
		{"tab kept", "a\tb\n", []string{`1: "a\tb"`}},
		{"c1 dropped", "a\u0085b\u009bc\u00a0d\n", []string{`1: "abc\u00a0d"`}},
		{"only controls", "\x00\x01\n", []string{`1:`}},
	})
}

func TestRenderLogUTF8(t *testing.T) {
	logviewRun(t, []logviewCase{
		{"valid", "héllo ☃ 😀\n", []string{`1: "h\u00e9llo \u2603 \U0001f600"`}},
		{"invalid byte", "a\xffb\n", []string{`1: "a\ufffdb"`}},
		{"truncated sequence", "a\xe2\x82b\n", []string{`1: "a\ufffd\ufffdb"`}},
		{"truncated at end", "a\xe2\x82", []string{`1: "a\ufffd\ufffd"`}},
		{"surrogate", "\xed\xa0\x80\n", []string{`1: "\ufffd\ufffd\ufffd"`}},
		{"overlong", "\xc0\xaf\n", []string{`1: "\ufffd\ufffd"`}},
		{"replacement char itself", "\ufffd\n", []string{`1: "\ufffd"`}},
		{"styled", "\x1b[31m\xff\n", []string{`1: [ansi-fg-1]"\ufffd"`}},
	})
	// A character cut by every possible split is put back together.
	for _, s := range []string{"é", "☃", "😀"} {
		for k := 1; k < len(s); k++ {
			r := web.NewLogRenderer()
			rows := r.Write([]byte("x" + s[:k]))
			rows = append(rows, r.Write([]byte(s[k:]+"\n"))...)
			if got := logviewDump(rows); !slices.Equal(got, []string{fmt.Sprintf("1: %+q", "x"+s)}) {
				t.Errorf("%q split after %d bytes: %s", s, k, got)
			}
		}
	}
}

func TestRenderLogTruncation(t *testing.T) {
	const max = 64 << 10
	marker := ` [log-truncated]" [line truncated]"`
	long := strings.Repeat("x", max)
	logviewRun(t, []logviewCase{
		{"at the limit", long + "\nok\n", []string{fmt.Sprintf("1: %q", long), `2: "ok"`}},
		{"over the limit", long + "yz\nok\n", []string{fmt.Sprintf("1: %q", long) + marker, `2: "ok"`}},
		{"styles after the limit", long + "\x1b[1my\nok\n", []string{fmt.Sprintf("1: %q", long) + marker, `2: [ansi-bold]"ok"`}},
		{"at a character boundary", long[:max-1] + "é\n", []string{fmt.Sprintf("1: %q", long[:max-1]) + marker}},
		{"styled spans", "\x1b[31m" + long[:10] + "\x1b[0m" + long + "\n",
			[]string{fmt.Sprintf("1: [ansi-fg-1]%q %q", long[:10], long[:max-10]) + marker}},
		{"cr starts over", long + "more\rshort\n", []string{`1: "short"`}},
		{"header", "section_start:1:a\r" + long + "more\n",
			[]string{fmt.Sprintf("1: start a: %q", long) + marker, `end a`}},
		{"at end of log", long + "more", []string{fmt.Sprintf("1: %q", long) + marker}},
	})

	// Memory stays bounded however long the line: 10 MiB in 1 KiB writes.
	r := web.NewLogRenderer()
	chunk := bytes.Repeat([]byte("abcdefgh"), 128)
	for range 10 << 10 {
		if rows := r.Write(chunk); len(rows) != 0 {
			t.Fatalf("Write of a line's middle returned %d rows", len(rows))
		}
	}
	rows := r.Flush()
	if len(rows) != 1 || len(rows[0].Spans) != 2 || len(rows[0].Spans[0].Text) != max || rows[0].Spans[1].Class != "log-truncated" {
		t.Errorf("10 MiB line: got %d rows, want one of %d bytes and the marker", len(rows), max)
	}
}

func TestRenderLogLineNumbers(t *testing.T) {
	log := "a\n" +
		"section_start:1:s\r\x1b[0Kh\n" +
		"b\n" +
		"\n" +
		"section_end:1:s\r\x1b[0K\n" +
		"c\r\n" +
		"section_end:1:unknown\r\x1b[0K\n" +
		"d"
	r := web.NewLogRenderer()
	rows := append(r.Write([]byte(log)), r.Flush()...)
	want := []string{`1: "a"`, `2: start s: "h"`, `3: "b"`, `4:`, `end s`, `5: "c"`, `6: "d"`}
	if got := logviewDump(rows); !slices.Equal(got, want) {
		t.Errorf("rows:\n\t%s\nwant:\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
	if n := r.Lines(); n != 6 {
		t.Errorf("Lines() = %d, want 6", n)
	}
	// A Write after Flush starts a new log, numbered on.
	rows = append(r.Write([]byte("e\n")), r.Flush()...)
	if got := logviewDump(rows); !slices.Equal(got, []string{`7: "e"`}) || r.Lines() != 7 {
		t.Errorf("after Flush: %s, Lines() = %d; want [7: \"e\"], 7", got, r.Lines())
	}
}

func TestLogRendererIncremental(t *testing.T) {
	r := web.NewLogRenderer()
	steps := []struct {
		write string
		want  []string
		open  []string
		lines int
	}{
		{"\x1b[31mpartial", []string{}, nil, 0},
		{" line\n", []string{`1: [ansi-fg-1]"partial line"`}, nil, 1},
		{"section_start:1:outer\r\x1b[0KOuter", []string{}, nil, 1},
		{"\n", []string{`2: start outer: [ansi-fg-1]"Outer"`}, []string{"outer"}, 2},
		{"section_start:1:inner[collapsed=true]\r\x1b[0KInner\nx\n", []string{`3: start inner collapsed: [ansi-fg-1]"Inner"`, `4: [ansi-fg-1]"x"`}, []string{"outer", "inner"}, 4},
		{"section_end:1:inner\r", []string{`end inner`}, []string{"outer"}, 4},
		{"\x1b[0K\n", []string{}, []string{"outer"}, 4},
		{"sec", []string{}, []string{"outer"}, 4},
		{"tion_end:1:outer\r\x1b[0K", []string{`end outer`}, nil, 4},
	}
	for i, s := range steps {
		got := logviewDump(r.Write([]byte(s.write)))
		if !slices.Equal(got, s.want) {
			t.Errorf("step %d: Write(%q) = %s, want %s", i, s.write, got, s.want)
		}
		if open := r.Open(); !slices.Equal(open, s.open) {
			t.Errorf("step %d: Open() = %q, want %q", i, open, s.open)
		}
		if n := r.Lines(); n != s.lines {
			t.Errorf("step %d: Lines() = %d, want %d", i, n, s.lines)
		}
	}
	if rows := r.Flush(); len(rows) != 0 {
		t.Errorf("final Flush = %s, want nothing", logviewDump(rows))
	}
}

func TestLogRowPlainText(t *testing.T) {
	for _, c := range []struct {
		row  web.LogRow
		want string
	}{
		{web.LogRow{}, ""},
		{web.LogRow{Spans: []web.LogSpan{{Text: "one"}}}, "one"},
		{web.LogRow{Spans: []web.LogSpan{{Text: "a", Class: "ansi-bold"}, {Text: "b"}, {Text: "c", Class: "ansi-fg-1"}}}, "abc"},
		{web.LogRow{Spans: []web.LogSpan{{Text: "abc"}, {Text: " [line truncated]", Class: "log-truncated"}}}, "abc"},
		{web.LogRow{Spans: []web.LogSpan{{Text: "a"}, {Text: "b"}, {Text: " [line truncated]", Class: "log-truncated"}}}, "ab"},
	} {
		if got := c.row.PlainText(); got != c.want {
			t.Errorf("%+v.PlainText() = %q, want %q", c.row, got, c.want)
		}
	}
	rows := web.RenderLog([]byte("\x1b[1mFAIL\x1b[0m: TestX \x1b]8;;u\x07(link)\x1b]8;;\x07\n"))
	if got := rows[0].PlainText(); got != "FAIL: TestX (link)" {
		t.Errorf("PlainText() = %q", got)
	}
}

func TestRowKindString(t *testing.T) {
	for k, want := range map[web.RowKind]string{web.RowLine: "RowLine", web.RowSectionStart: "RowSectionStart", web.RowSectionEnd: "RowSectionEnd", 7: "RowKind(7)"} {
		if got := k.String(); got != want {
			t.Errorf("RowKind(%d).String() = %q, want %q", int(k), got, want)
		}
	}
}

// logviewSamples are logs with every feature, and features cut short.
var logviewSamples = []string{
	"plain\nlines\r\nand a last one",
	"\x1b[0Ksection_start:1700000000:prepare[collapsed=true]\r\x1b[0K\x1b[36;1mPreparing\x1b[0;m\n" +
		"Using \x1b[1mdocker\x1b[22m \x1b[38;5;9mexecutor\x1b[38;2;1;2;3m\x1b[0m\n" +
		"\x1b[0Ksection_end:1700000001:prepare\r\x1b[0K\x1b[0Ksection_start:1700000001:get_sources\r\x1b[0KGetting source\n" +
		"10%\r50%\r100%\ndone\n" +
		"\x1b[0Ksection_end:1700000002:get_sources\r\x1b[0K\n",
	"héllo ☃ 😀 \xff\xe2\x82 end\n\u0085\u009b\x00\x7f\t\n",
	"see \x1b]8;;https://example.com\x07docs\x1b]8;;\x1b\\ and \x1b]0;title\n\x1b(Bx\x1b[?25l\x1b[2K\x1b\x1b[1my",
	"section_start:1:a\rA\nsection_start:2:b[hide_duration=true]\rB section_end:3:a\rtail\nsection_end:4:nope\r\nsection_\nsection_start:1:section_end:1:b\r\n",
	"\x1b[31mred\nstill red\r\x1b[4;32mgreen\x1b[\x1b[38:5:3my\x1b]8;",
	"section_start:1:a\r",
	"a\xe2",
}

func TestLogRendererSplitInvariance(t *testing.T) {
	for _, s := range logviewSamples {
		log := []byte(s)
		whole := web.RenderLog(log)
		for k := 0; k <= len(log); k++ {
			r := web.NewLogRenderer()
			rows := r.Write(log[:k])
			rows = append(rows, r.Write(log[k:])...)
			rows = append(rows, r.Flush()...)
			if !reflect.DeepEqual(rows, whole) {
				t.Fatalf("%q split at %d:\n got:\n\t%s\nwhole:\n\t%s", s, k, strings.Join(logviewDump(rows), "\n\t"), strings.Join(logviewDump(whole), "\n\t"))
			}
		}
		for _, n := range []int{1, 2, 3, 7} {
			if rows := logviewChunked(log, n); !reflect.DeepEqual(rows, whole) {
				t.Fatalf("%q in chunks of %d:\n got:\n\t%s\nwhole:\n\t%s", s, n, strings.Join(logviewDump(rows), "\n\t"), strings.Join(logviewDump(whole), "\n\t"))
			}
		}
	}
	// A long line, cut near the limit and in a character.
	long := []byte("\x1b[1m" + strings.Repeat("ab", 32<<10) + "é\x1b[0m the rest\nnext\n")
	whole := web.RenderLog(long)
	for _, n := range []int{1 << 10, 4093, 1<<16 + 3, 1<<16 + 4, 1<<16 + 5, 1<<16 + 6} {
		if rows := logviewChunked(long, n); !reflect.DeepEqual(rows, whole) {
			t.Errorf("long line in chunks of %d differs from whole", n)
		}
	}
}

// logviewClasses is every class a span may have.
var logviewClasses = func() map[string]bool {
	m := map[string]bool{"ansi-bold": true, "ansi-italic": true, "ansi-underline": true, "log-truncated": true}
	for n := range 16 {
		m[fmt.Sprintf("ansi-fg-%d", n)] = true
		m[fmt.Sprintf("ansi-bg-%d", n)] = true
	}
	return m
}()

// logviewCheck checks what must hold of any log's rows.
func logviewCheck(t *testing.T, rows []web.LogRow) {
	t.Helper()
	var open []string
	n := 0
	for i, row := range rows {
		switch row.Kind {
		case web.RowLine, web.RowSectionStart:
			if n++; row.N != n {
				t.Fatalf("row %d: N = %d, want %d", i, row.N, n)
			}
			if row.Kind == web.RowSectionStart {
				open = append(open, row.Section)
			}
		case web.RowSectionEnd:
			if len(open) == 0 || open[len(open)-1] != row.Section {
				t.Fatalf("row %d: end of %q, open: %q", i, row.Section, open)
			}
			open = open[:len(open)-1]
			if row.N != 0 || row.Spans != nil {
				t.Fatalf("row %d: end row with N %d, spans %q", i, row.N, row.Spans)
			}
		default:
			t.Fatalf("row %d: kind %d", i, row.Kind)
		}
		length := 0
		for k, s := range row.Spans {
			if s.Text == "" {
				t.Fatalf("row %d: empty span %d", i, k)
			}
			if k > 0 && s.Class == row.Spans[k-1].Class {
				t.Fatalf("row %d: spans %d and %d both of class %q", i, k-1, k, s.Class)
			}
			if !utf8.ValidString(s.Text) {
				t.Fatalf("row %d: invalid UTF-8 %q", i, s.Text)
			}
			for _, c := range []byte(s.Text) {
				if c < 0x20 && c != '\t' || c == 0x7f {
					t.Fatalf("row %d: control character %#x in %q", i, c, s.Text)
				}
			}
			if s.Class != "" {
				for c := range strings.SplitSeq(s.Class, " ") {
					if !logviewClasses[c] {
						t.Fatalf("row %d: class %q not of the set", i, s.Class)
					}
				}
			}
			if s.Class != "log-truncated" {
				length += len(s.Text)
			}
		}
		if length > 64<<10 {
			t.Fatalf("row %d: %d bytes of text", i, length)
		}
	}
	if len(open) != 0 {
		t.Fatalf("sections left open: %q", open)
	}
}

func FuzzLogRenderer(f *testing.F) {
	for _, s := range logviewSamples {
		f.Add([]byte(s), uint16(len(s)/2), uint16(len(s)/3))
	}
	f.Fuzz(func(t *testing.T, log []byte, i, j uint16) {
		whole := web.RenderLog(log)
		logviewCheck(t, whole)
		a, b := int(i)%(len(log)+1), int(j)%(len(log)+1)
		if a > b {
			a, b = b, a
		}
		r := web.NewLogRenderer()
		rows := r.Write(log[:a])
		rows = append(rows, r.Write(log[a:b])...)
		rows = append(rows, r.Write(log[b:])...)
		rows = append(rows, r.Flush()...)
		if !reflect.DeepEqual(rows, whole) {
			t.Fatalf("%q split at %d and %d:\n got:\n\t%s\nwhole:\n\t%s", log, a, b, strings.Join(logviewDump(rows), "\n\t"), strings.Join(logviewDump(whole), "\n\t"))
		}
		if open := r.Open(); open != nil {
			t.Fatalf("Open() after Flush = %q", open)
		}
	})
}

// logviewBenchLog is 100,000 lines of a build's output, about 8 MB: mostly
// plain, some coloured, a section every 1,000 lines, some progress lines.
func logviewBenchLog() []byte {
	var b bytes.Buffer
	for i := range 100_000 {
		switch {
		case i%1000 == 0:
			if i > 0 {
				fmt.Fprintf(&b, "\x1b[0Ksection_end:1700000%03d:step_%d\r\x1b[0K", i/1000, i/1000-1)
			}
			fmt.Fprintf(&b, "\x1b[0Ksection_start:1700000%03d:step_%d[collapsed=true]\r\x1b[0K\x1b[36;1mStep %d: building the packages of stage %d\x1b[0;m\n", i/1000, i/1000, i/1000, i%7)
		case i%100 == 50:
			fmt.Fprintf(&b, "Downloading artifacts   0%%\rDownloading artifacts  25%%\rDownloading artifacts  50%%\rDownloading artifacts 100%% (%d kB)\n", i)
		case i%10 == 3:
			fmt.Fprintf(&b, "\x1b[32;1mok\x1b[0m  \tgithub.com/hangar-ci/hangar/internal/package%04d\t0.%03ds\tcoverage: 81.%d%% of statements\n", i%1000, i%1000, i%10)
		case i%10 == 7:
			fmt.Fprintf(&b, "\x1b[1;31mwarning:\x1b[0m src/module_%d/file_%d.c:%d:%d: unused variable '\x1b[1mtmp_%d\x1b[0m' [-Wunused-variable]\n", i%97, i%13, i%400, i%80, i)
		default:
			fmt.Fprintf(&b, "[%6d/100000] Compiling src/module_%d/file_%d.c to obj/file_%d.o (cc -O2)\n", i, i%97, i%13, i%13)
		}
	}
	b.WriteString("\x1b[0Ksection_end:1700000100:step_99\r\x1b[0K\n")
	return b.Bytes()
}

func BenchmarkRenderLog100k(b *testing.B) {
	log := logviewBenchLog()
	b.SetBytes(int64(len(log)))
	b.ReportAllocs()
	for b.Loop() {
		rows := web.RenderLog(log)
		if len(rows) != 100_100 {
			b.Fatalf("%d rows", len(rows))
		}
	}
}

// BenchmarkRenderLog100kChunked renders the same log as a live view
// would, in writes of 4 KiB.
func BenchmarkRenderLog100kChunked(b *testing.B) {
	log := logviewBenchLog()
	b.SetBytes(int64(len(log)))
	b.ReportAllocs()
	for b.Loop() {
		r := web.NewLogRenderer()
		n := 0
		for p := log; len(p) > 0; p = p[min(len(p), 4<<10):] {
			n += len(r.Write(p[:min(len(p), 4<<10)]))
		}
		if n += len(r.Flush()); n != 100_100 {
			b.Fatalf("%d rows", n)
		}
	}
}

func ExampleRenderLog() {
	log := "\x1b[0Ksection_start:1700000000:build[collapsed=true]\r\x1b[0K\x1b[1mBuilding\x1b[0m\n" +
		"Compiling 10%\rCompiling 100%\n" +
		"\x1b[32mok\x1b[0m  all tests passed\n" +
		"\x1b[0Ksection_end:1700000042:build\r\x1b[0K\n"
	for _, row := range web.RenderLog([]byte(log)) {
		switch row.Kind {
		case web.RowSectionStart:
			fmt.Printf("%d <section %s collapsed=%t> %q\n", row.N, row.Section, row.Collapsed, row.Spans)
		case web.RowSectionEnd:
			fmt.Printf("  </section %s>\n", row.Section)
		default:
			fmt.Printf("%d %q\n", row.N, row.Spans)
		}
	}
	// Output:
	// 1 <section build collapsed=true> [{"Building" "ansi-bold"}]
	// 2 [{"Compiling 100%" ""}]
	// 3 [{"ok" "ansi-fg-2"} {"  all tests passed" ""}]
	//   </section build>
}
