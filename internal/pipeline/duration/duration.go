// Package duration parses GitLab CI's human-readable durations ("1h 30m", "3 days", "42").
//
// GitLab reads the values of timeout, start_in, artifacts:expire_in and
// environment:auto_stop_in with its ChronicDuration gem (gitlab_chronic_duration,
// which also runs its input through the Numerizer gem). This package accepts
// the same language and rejects inputs ChronicDuration would reject (GitLab
// runs it with raise_exceptions enabled, so an unknown word is an error, not
// something to skip). Where ChronicDuration quietly does something surprising,
// this package reports an error instead. The Parse documentation lists those cases.
//
// Grammar (ASCII letters are case-insensitive):
//
//	duration   = clock | words
//	clock      = digits ":" digits [":" digits]{0,4} ["." digits]
//	words      = { number | unit | joiner | "," }
//	number     = digits ["." digits] | "." digits | number-word
//	joiner     = "and" | "with" | "plus"
//
// In the word form, spaces, commas and hyphens between two non-digits
// ("twenty-one") separate items, and a number and its unit may be written
// together ("2h20min"). The Parse documentation explains how numbers and units
// combine.
//
// Example clock values: "1:20" is 1m20s, "4:01:01" is 4h1m1s. From the right,
// clock fields are seconds, minutes, hours, days, months and years (clock
// form has no weeks field).
//
// Unit lengths are ChronicDuration's: a day is 24h, a week 7 days, a month
// 30 days and a year 365.25 days (31,557,600s).
package duration

import (
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Unit lengths, as ChronicDuration defines them.
const (
	day   = 24 * time.Hour
	week  = 7 * day
	month = 30 * day
	year  = 31557600 * time.Second // 365.25 days
)

// Error describes why a duration could not be parsed.
type Error struct {
	// Input is the string that was being parsed.
	Input string
	// Offset is the byte offset into Input at which the problem was found.
	Offset int
	// Msg is a plain description of the problem, without the input or offset.
	Msg string
}

// Error returns the message with the input and offset, for example
// `invalid duration "3 fortnights": unknown unit "fortnights" (at offset 2)`.
func (e *Error) Error() string {
	return fmt.Sprintf("invalid duration %q: %s (at offset %d)", e.Input, e.Msg, e.Offset)
}

// Parse parses s. A bare number is seconds. Units (case-insensitive, singular/plural/abbreviated):
// seconds (s, sec, secs, second, seconds), minutes (m, min, mins, minute, minutes),
// hours (h, hr, hrs, hour, hours), days (d, dy, day, days), weeks (w, wk, wks, week, weeks),
// months (mo, mos, month, months; 30 days), years (y, yr, yrs, year, years; 365.25 days).
//
// Components may be separated by spaces, commas or the words "and", "with" and "plus",
// or may be written together: "1 hour and 30 minutes", "1h30m", "2 days, 3 hours".
// Numbers may be decimal ("1.5 hours", ".5h") or English number words, as GitLab's
// Numerizer step allows: "a", "zero" to "nineteen", "twenty" to "ninety", and
// compounds such as "twenty one", "twenty-one" or "twentyone". A unit at the very
// start counts as one of that unit ("day" is 24h, "minute 30s" is 90s). A number
// with no unit after it is seconds, even after other components ("1h 30" is
// 1h0m30s, as in ChronicDuration). The clock forms "MM:SS", "HH:MM:SS" and longer
// ones (see the package documentation) are accepted when the whole value is a
// clock time. Leading and trailing spaces are ignored.
// A result that is not a whole number of nanoseconds is truncated.
//
// Parse returns 0 with no error for zero values such as "0" or "0s". GitLab's
// ChronicDuration treats zero as "no duration", so GitLab rejects these
// values. Callers that need that behaviour, or GitLab's keyword limits, must
// check for it.
//
// Parse returns an error of type *Error (with Offset into s and a plain Msg) for:
// empty input, an unknown unit or word, a negative value, a result too large for
// time.Duration (about 292 years), or a malformed clock time. It also returns
// an error for inputs where ChronicDuration quietly drops part of the value: a
// number directly followed by another number ("5 3"), or a unit with no number
// before it that is not at the start ("1h m").
func Parse(s string) (time.Duration, error) {
	p := parser{input: s}
	return p.parse()
}

// ParseExpiry parses artifacts:expire_in style values: like Parse, but "never" returns (0, true, nil) meaning "never expires".
// The match for "never" ignores case but not surrounding spaces, as in GitLab.
// GitLab also accepts "never" for environment:auto_stop_in, so use ParseExpiry
// for that keyword too.
func ParseExpiry(s string) (d time.Duration, never bool, err error) {
	if strings.EqualFold(s, "never") && isASCII(s) {
		return 0, true, nil
	}
	d, err = Parse(s)
	return d, false, err
}

// Format renders d the short way GitLab shows durations ("1h 30m", "45s", "2d 3h").
//
// Format picks units the way ChronicDuration's :short format does. Whole
// years are used only when that leaves less over than whole months would.
// Otherwise the largest unit is months, and weeks are never used. Units with
// a zero count are left out, zero is "0s", a fraction of a second is written
// as decimal seconds ("1m 0.5s"), and a negative d gets a leading "-". For
// any d >= 0, Parse(Format(d)) returns d.
func Format(d time.Duration) string {
	if d == 0 {
		return "0s"
	}
	var b strings.Builder
	u := uint64(d)
	if d < 0 {
		b.WriteByte('-')
		u = uint64(-(d + 1)) + 1 // avoids overflow for math.MinInt64
	}

	const (
		nsSec   = uint64(time.Second)
		nsMin   = uint64(time.Minute)
		nsHour  = uint64(time.Hour)
		nsDay   = uint64(day)
		nsMonth = uint64(month)
		nsYear  = uint64(year)
	)
	var years, months, days, hours, minutes, rest uint64
	switch {
	case u >= nsYear && u%nsYear < u%nsMonth:
		years, rest = u/nsYear, u%nsYear
		months, rest = rest/nsMonth, rest%nsMonth
		days, rest = rest/nsDay, rest%nsDay
		hours, rest = rest/nsHour, rest%nsHour
		minutes, rest = rest/nsMin, rest%nsMin
	case u >= nsMin:
		minutes, rest = u/nsMin, u%nsMin
		hours, minutes = minutes/60, minutes%60
		days, hours = hours/24, hours%24
		months, days = days/30, days%30
	default:
		rest = u
	}

	parts := []struct {
		n    uint64
		unit string
	}{
		{years, "y"}, {months, "mo"}, {days, "d"}, {hours, "h"}, {minutes, "m"},
	}
	sep := ""
	for _, p := range parts {
		if p.n == 0 {
			continue
		}
		b.WriteString(sep)
		b.WriteString(strconv.FormatUint(p.n, 10))
		b.WriteString(p.unit)
		sep = " "
	}
	if rest != 0 {
		b.WriteString(sep)
		b.WriteString(strconv.FormatUint(rest/nsSec, 10))
		if frac := rest % nsSec; frac != 0 {
			fs := fmt.Sprintf("%09d", frac)
			b.WriteByte('.')
			b.WriteString(strings.TrimRight(fs, "0"))
		}
		b.WriteByte('s')
	}
	return b.String()
}

// units maps every spelling ChronicDuration knows to a unit length.
var units = map[string]time.Duration{
	"s": time.Second, "sec": time.Second, "secs": time.Second, "second": time.Second, "seconds": time.Second,
	"m": time.Minute, "min": time.Minute, "mins": time.Minute, "minute": time.Minute, "minutes": time.Minute,
	"h": time.Hour, "hr": time.Hour, "hrs": time.Hour, "hour": time.Hour, "hours": time.Hour,
	"d": day, "dy": day, "day": day, "days": day,
	"w": week, "wk": week, "wks": week, "week": week, "weeks": week,
	"mo": month, "mos": month, "month": month, "months": month,
	"y": year, "yr": year, "yrs": year, "year": year, "years": year,
}

// joiners are words that may sit between components and mean nothing.
var joiners = map[string]bool{"and": true, "with": true, "plus": true}

// Number words, following what the Numerizer gem turns into digits before
// ChronicDuration sees the text.
var (
	directNumbers = map[string]int{
		"zero": 0, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
		"fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17,
		"eighteen": 18, "nineteen": 19, "ninteen": 19,
	}
	onesNumbers = map[string]int{
		"one": 1, "two": 2, "three": 3, "four": 4, "five": 5,
		"six": 6, "seven": 7, "eight": 8, "nine": 9,
	}
	tensNumbers = map[string]int{
		"twenty": 20, "thirty": 30, "forty": 40, "fourty": 40, "fifty": 50,
		"sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90,
	}
)

// numberWord reports the value of an English number word (already lower
// case), and whether it is a bare tens word or a bare ones word, which may
// be joined with a following or preceding word ("twenty one").
func numberWord(w string) (n int, tens, ones, ok bool) {
	if w == "a" {
		return 1, false, false, true
	}
	if n, ok := directNumbers[w]; ok {
		return n, false, false, true
	}
	if n, ok := onesNumbers[w]; ok {
		return n, false, true, true
	}
	if n, ok := tensNumbers[w]; ok {
		return n, true, false, true
	}
	// "twentyone"; "twenty one" and "twenty-one" are joined by the tokenizer.
	for t, tv := range tensNumbers {
		rest, found := strings.CutPrefix(w, t)
		if !found {
			continue
		}
		if ov, ok := onesNumbers[rest]; ok {
			return tv + ov, false, false, true
		}
	}
	return 0, false, false, false
}

type tokenKind int

const (
	tokNumber tokenKind = iota
	tokUnit
)

type token struct {
	kind tokenKind
	off  int
	text string // as written in the input

	// For numbers: the value is whole.frac (decimal digits, frac may be "").
	whole, frac string
	article     bool // the word "a"
	tensWord    bool // a bare tens word such as "twenty"
	onesWord    bool // a bare ones word such as "one"

	// For units.
	unit time.Duration
}

type parser struct {
	input string
	total big.Rat
}

var maxDuration = new(big.Rat).SetInt64(math.MaxInt64)

func (p *parser) errorf(off int, format string, args ...any) *Error {
	return &Error{Input: p.input, Offset: off, Msg: fmt.Sprintf(format, args...)}
}

func (p *parser) parse() (time.Duration, error) {
	s := p.input
	if strings.TrimLeft(s, " \t\n\v\f\r") == "" {
		return 0, p.errorf(0, "empty duration")
	}
	var err error
	if strings.IndexByte(s, ':') >= 0 {
		err = p.parseClock()
	} else {
		err = p.parseWords()
	}
	if err != nil {
		return 0, err
	}
	// p.total is non-negative and at most math.MaxInt64; truncate to whole nanoseconds.
	q := new(big.Int).Quo(p.total.Num(), p.total.Denom())
	return time.Duration(q.Int64()), nil
}

// add adds whole.frac × unit to the total, failing if the total no longer
// fits in a time.Duration.
func (p *parser) add(off int, whole, frac string, unit time.Duration) error {
	num, ok := new(big.Int).SetString(whole+frac, 10)
	if !ok {
		// Cannot happen: the tokenizer only produces ASCII digits.
		return p.errorf(off, "invalid number %q", whole+"."+frac)
	}
	num.Mul(num, big.NewInt(int64(unit)))
	den := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(len(frac))), nil)
	p.total.Add(&p.total, new(big.Rat).SetFrac(num, den))
	if p.total.Cmp(maxDuration) > 0 {
		return p.errorf(off, "duration is too large (the maximum is about 292 years)")
	}
	return nil
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

// firstRune returns the first character of s, for error messages.
func firstRune(s string) string {
	_, n := utf8.DecodeRuneInString(s)
	return s[:n]
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// startsNumber reports whether a number begins at s[i]: a digit, or a
// '.' followed by a digit.
func startsNumber(s string, i int) bool {
	return i < len(s) && (isDigit(s[i]) || (s[i] == '.' && i+1 < len(s) && isDigit(s[i+1])))
}

// scanNumber reads digits ["." digits] or "." digits at s[i]; startsNumber(s, i)
// must hold. A '.' not followed by a digit is not part of the number.
func scanNumber(s string, i int) (whole, frac string, end int) {
	j := i
	for j < len(s) && isDigit(s[j]) {
		j++
	}
	whole = s[i:j]
	if j+1 < len(s) && s[j] == '.' && isDigit(s[j+1]) {
		k := j + 1
		for k < len(s) && isDigit(s[k]) {
			k++
		}
		frac = s[j+1 : k]
		j = k
	}
	if whole == "" {
		whole = "0"
	}
	return whole, frac, j
}

// isHyphenSeparator reports whether s[i] is a hyphen between two non-digits,
// which Numerizer turns into a space ("twenty-one", "one-hour").
func isHyphenSeparator(s string, i int) bool {
	return s[i] == '-' && i > 0 && i+1 < len(s) && !isDigit(s[i-1]) && !isDigit(s[i+1])
}

// tokenize splits the word form into numbers and units, dropping spaces,
// commas and joiner words.
func (p *parser) tokenize() ([]token, error) {
	s := p.input
	var toks []token
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case isSpace(c) || c == ',' || isHyphenSeparator(s, i):
			i++
		case c == '-' && startsNumber(s, i+1):
			return nil, p.errorf(i, "negative durations are not allowed")
		case startsNumber(s, i):
			whole, frac, end := scanNumber(s, i)
			toks = append(toks, token{kind: tokNumber, off: i, text: s[i:end], whole: whole, frac: frac})
			i = end
		default:
			start := i
			for i < len(s) && !isSpace(s[i]) && s[i] != ',' && !startsNumber(s, i) && !isHyphenSeparator(s, i) {
				if s[i] == '-' && startsNumber(s, i+1) {
					break
				}
				i++
			}
			word := s[start:i]
			lower := asciiLower(word)
			if u, ok := units[lower]; ok {
				toks = append(toks, token{kind: tokUnit, off: start, text: word, unit: u})
				continue
			}
			if joiners[lower] {
				continue
			}
			if n, tens, ones, ok := numberWord(lower); ok {
				toks = append(toks, token{
					kind: tokNumber, off: start, text: word, whole: strconv.Itoa(n),
					article: lower == "a", tensWord: tens, onesWord: ones,
				})
				continue
			}
			return nil, p.errorf(start, "unknown unit %q", word)
		}
	}

	// Join "twenty one" into 21, as Numerizer does.
	out := toks[:0]
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		if t.tensWord && i+1 < len(toks) && toks[i+1].onesWord {
			n, _ := strconv.Atoi(t.whole)
			m, _ := strconv.Atoi(toks[i+1].whole)
			t.whole = strconv.Itoa(n + m)
			t.text = p.input[t.off : toks[i+1].off+len(toks[i+1].text)]
			t.tensWord = false
			i++
		}
		out = append(out, t)
	}
	return out, nil
}

func (p *parser) parseWords() error {
	toks, err := p.tokenize()
	if err != nil {
		return err
	}
	if len(toks) == 0 {
		return p.errorf(0, "no number or unit found")
	}
	i := 0
	if toks[0].kind == tokUnit {
		// A leading unit with no number means one of it ("day", "minute 30s").
		if err := p.add(toks[0].off, "1", "", toks[0].unit); err != nil {
			return err
		}
		i = 1
	}
	for i < len(toks) {
		t := toks[i]
		if t.kind == tokUnit {
			return p.errorf(t.off, "unit %q has no number before it", t.text)
		}
		switch {
		case i+1 < len(toks) && toks[i+1].kind == tokUnit:
			if err := p.add(t.off, t.whole, t.frac, toks[i+1].unit); err != nil {
				return err
			}
			i += 2
		case i+1 == len(toks):
			if t.article {
				return p.errorf(t.off, "%q must be followed by a unit", t.text)
			}
			// A trailing bare number is seconds.
			if err := p.add(t.off, t.whole, t.frac, time.Second); err != nil {
				return err
			}
			i++
		default:
			return p.errorf(t.off, "number %q is not followed by a unit", t.text)
		}
	}
	return nil
}

// clockUnits are the units of clock fields, counted from the right.
var clockUnits = []time.Duration{time.Second, time.Minute, time.Hour, day, month, year}

// parseClock parses "MM:SS", "HH:MM:SS" and so on, up to six fields. Only
// the last field may have a fraction.
func (p *parser) parseClock() error {
	s := p.input
	type field struct {
		off         int
		whole, frac string
	}
	var fields []field
	i := 0
	skip := func() {
		for i < len(s) && isSpace(s[i]) {
			i++
		}
	}
	for {
		skip()
		if i < len(s) && s[i] == '-' && i+1 < len(s) && isDigit(s[i+1]) {
			return p.errorf(i, "negative durations are not allowed")
		}
		if i >= len(s) || !isDigit(s[i]) {
			if i >= len(s) {
				return p.errorf(i, "clock time ends where digits were expected")
			}
			return p.errorf(i, "unexpected %q in clock time", firstRune(s[i:]))
		}
		start := i
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		f := field{off: start, whole: s[start:i]}
		if i < len(s) && s[i] == '.' {
			if i+1 >= len(s) || !isDigit(s[i+1]) {
				return p.errorf(i, "decimal point without digits after it")
			}
			j := i + 1
			for j < len(s) && isDigit(s[j]) {
				j++
			}
			f.frac = s[i+1 : j]
			i = j
		}
		fields = append(fields, f)
		if len(fields) > len(clockUnits) {
			return p.errorf(start, "clock time has more than %d fields", len(clockUnits))
		}
		skip()
		if i >= len(s) {
			break
		}
		if s[i] != ':' {
			return p.errorf(i, "unexpected %q in clock time", firstRune(s[i:]))
		}
		if f.frac != "" {
			return p.errorf(f.off, "only the last field of a clock time may have a fraction")
		}
		i++
	}
	if len(fields) < 2 {
		// Unreachable: parseClock runs only when the input contains ':', and
		// every ':' must be followed by a field. Kept as a safeguard.
		return p.errorf(0, "clock time needs at least two fields")
	}
	for k, f := range fields {
		unit := clockUnits[len(fields)-1-k]
		if err := p.add(f.off, f.whole, f.frac, unit); err != nil {
			return err
		}
	}
	return nil
}
