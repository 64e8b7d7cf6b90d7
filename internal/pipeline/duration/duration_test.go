package duration

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

const (
	sec = time.Second
	mn  = time.Minute
	hr  = time.Hour
	dy  = 24 * time.Hour
	wk  = 7 * dy
	mo  = 30 * dy
	yr  = 31557600 * time.Second
)

func TestParseUnits(t *testing.T) {
	spellings := map[time.Duration][]string{
		sec: {"s", "sec", "secs", "second", "seconds"},
		mn:  {"m", "min", "mins", "minute", "minutes"},
		hr:  {"h", "hr", "hrs", "hour", "hours"},
		dy:  {"d", "dy", "day", "days"},
		wk:  {"w", "wk", "wks", "week", "weeks"},
		mo:  {"mo", "mos", "month", "months"},
		yr:  {"y", "yr", "yrs", "year", "years"},
	}
	for unit, words := range spellings {
		for _, w := range words {
			for _, spelling := range []string{w, strings.ToUpper(w), strings.ToUpper(w[:1]) + w[1:]} {
				for _, in := range []string{"2" + spelling, "2 " + spelling, "  2\t" + spelling + "  "} {
					got, err := Parse(in)
					if err != nil {
						t.Errorf("Parse(%q): unexpected error %v", in, err)
						continue
					}
					if want := 2 * unit; got != want {
						t.Errorf("Parse(%q) = %v, want %v", in, got, want)
					}
				}
			}
		}
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
	}{
		// Bare numbers are seconds.
		{"42", 42 * sec},
		{"0", 0},
		{"007", 7 * sec},
		{"12.4", 12*sec + 400*time.Millisecond},
		{".5", 500 * time.Millisecond},

		// GitLab's documented examples: timeout.
		{"3h 30m", 3*hr + 30*mn},
		{"3 hours 30 minutes", 3*hr + 30*mn},
		{"3600 seconds", hr},
		{"60 minutes", hr},
		{"one hour", hr},

		// start_in.
		{"5", 5 * sec},
		{"5 seconds", 5 * sec},
		{"10 seconds", 10 * sec},
		{"30 minutes", 30 * mn},
		{"1 hour", hr},
		{"1 day", dy},
		{"1 week", wk},

		// artifacts:expire_in.
		{"42 seconds", 42 * sec},
		{"3 mins 4 sec", 3*mn + 4*sec},
		{"2 hrs 20 min", 2*hr + 20*mn},
		{"2h20min", 2*hr + 20*mn},
		{"6 mos 1 day", 6*mo + dy},
		{"47 yrs 6 mos and 4d", 47*yr + 6*mo + 4*dy},
		{"3 weeks and 2 days", 3*wk + 2*dy},
		{"1 Day", dy},
		{"30 seconds", 30 * sec},
		{"2 hours", 2 * hr},
		{"7d", 7 * dy},
		{"42 weeks", 42 * wk},
		{"42 mins 42 secs", 42*mn + 42*sec},
		{"2 mos 1 day", 2*mo + dy},
		{"42 years 6 mos 6 hrs", 42*yr + 6*mo + 6*hr},
		{"1 week and 2 days", wk + 2*dy},

		// environment:auto_stop_in.
		{"168 hours", 168 * hr},
		{"7 days", 7 * dy},
		{"one week", wk},
		{"2 days", 2 * dy},
		{"1 minutes", mn},

		// ChronicDuration's own examples.
		{"3 Mins 4 Sec", 3*mn + 4*sec},
		{"1 year 6 mos 1 day", yr + 6*mo + dy},
		{"2.5 hrs", 2*hr + 30*mn},
		{"47 yrs 6 mos and 4.5d", 47*yr + 6*mo + 4*dy + 12*hr},
		{"3 weeks and, 2 days", 3*wk + 2*dy},
		{"3 weeks, plus 2 days", 3*wk + 2*dy},
		{"3 weeks with 2 days", 3*wk + 2*dy},
		{"1 month", mo},
		{"2 months", 2 * mo},
		{"18 months", 18 * mo},
		{"1 year 6 months", yr + 6*mo},
		{"day", dy},
		{"minute 30s", 90 * sec},
		{"4m11.5s", 4*mn + 11*sec + 500*time.Millisecond},
		{"  4 days and 11     hours", 4*dy + 11*hr},
		{"12 mins 3.141 seconds", 12*mn + 3141*time.Millisecond},

		// Separators and combinations.
		{"1 hour and 30 minutes", hr + 30*mn},
		{"1h30m", hr + 30*mn},
		{"1h 30m 15s", hr + 30*mn + 15*sec},
		{"2 days, 3 hours", 2*dy + 3*hr},
		{"2 days,3 hours", 2*dy + 3*hr},
		{"1h,30m", hr + 30*mn},
		{",1h,", hr},
		{"1.5 hours", 90 * mn},
		{"0.25h", 15 * mn},
		{".5h", 30 * mn},
		{"1 HOUR AND 30 MINUTES", hr + 30*mn},
		{"1 hour\tand\n30 minutes", hr + 30*mn},
		{"1h30", hr + 30*sec}, // a trailing bare number is seconds, as in ChronicDuration
		{"30m 1h", hr + 30*mn},
		{"1h 1h", 2 * hr},
		{"1mo1m", mo + mn},
		{"1 w 1 d", 8 * dy},
		{"0s", 0},
		{"0.0000000001s", 0}, // truncated to whole nanoseconds
		{"1.0000000019s", sec + 1},
		{"0.000000001 s", 1},
		{"and 5 minutes", 5 * mn},

		// Number words (Numerizer).
		{"two hours and twenty minutes", 2*hr + 20*mn},
		{"a day", dy},
		{"a week and a day", 8 * dy},
		{"zero seconds", 0},
		{"ten minutes", 10 * mn},
		{"fifteen mins", 15 * mn},
		{"ninety seconds", 90 * sec},
		{"twenty one days", 21 * dy},
		{"twenty-one days", 21 * dy},
		{"twentyone days", 21 * dy},
		{"forty-two minutes", 42 * mn},
		{"twenty and five minutes", 25 * mn},
		{"Five Hours", 5 * hr},
		{"one-hour", hr},
		{"three", 3 * sec},

		// Clock forms.
		{"1:20", 80 * sec},
		{"1:20.51", 80*sec + 510*time.Millisecond},
		{"4:01:01", 4*hr + mn + sec},
		{"12:10:14", 12*hr + 10*mn + 14*sec},
		{"3:14", 3*mn + 14*sec},
		{"00:00", 0},
		{"1:75", 2*mn + 15*sec},
		{" 1 : 20 ", 80 * sec},
		{"2:03:04:05", 2*dy + 3*hr + 4*mn + 5*sec},
		{"6:01:00:00:00", 6*mo + dy},
		{"1:00:01:00:00:00", yr + dy},

		// Limits.
		{"292 years", 292 * yr},
		{"9223372036.854775807 s", math.MaxInt64},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in)
		if err != nil {
			t.Errorf("Parse(%q): unexpected error %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("Parse(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		in     string
		offset int
		msg    string
	}{
		{"", 0, "empty duration"},
		{"   ", 0, "empty duration"},
		{"and", 0, "no number or unit found"},
		{" , ", 0, "no number or unit found"},

		{"3 fortnights", 2, `unknown unit "fortnights"`},
		{"gobblygoo", 0, `unknown unit "gobblygoo"`},
		{"23 gobblygoos", 3, `unknown unit "gobblygoos"`},
		{"never", 0, `unknown unit "never"`},
		{"1 hr 30 mns", 8, `unknown unit "mns"`},
		{"1hr.", 1, `unknown unit "hr."`},
		{"5ms", 1, `unknown unit "ms"`},
		{"1 mon", 2, `unknown unit "mon"`},
		{"1 hour; 30 minutes", 2, `unknown unit "hour;"`},
		{"half an hour", 0, `unknown unit "half"`},
		{"an hour", 0, `unknown unit "an"`},
		{"1e5", 1, `unknown unit "e"`},
		{"+5", 0, `unknown unit "+"`},
		{"1 h\u00a0", 2, `unknown unit "h\u00a0"`},
		{"5 ſ", 2, `unknown unit "ſ"`},
		{"1 hundred", 2, `unknown unit "hundred"`},

		{"-5", 0, "negative durations are not allowed"},
		{"-1h", 0, "negative durations are not allowed"},
		{"1h -30m", 3, "negative durations are not allowed"},
		{"1h-30m", 2, "negative durations are not allowed"},
		{"-.5h", 0, "negative durations are not allowed"},
		{"-1:20", 0, "negative durations are not allowed"},
		{"1:-20", 2, "negative durations are not allowed"},

		{"293 years", 0, "duration is too large (the maximum is about 292 years)"},
		{"1h 99999999999999999999999s", 3, "duration is too large (the maximum is about 292 years)"},
		{"9223372036.854775808 s", 0, "duration is too large (the maximum is about 292 years)"},
		{"200y 200y", 5, "duration is too large (the maximum is about 292 years)"},
		{"9223372036854775807", 0, "duration is too large (the maximum is about 292 years)"},
		{"300:00:00:00:00:00", 0, "duration is too large (the maximum is about 292 years)"},

		{"5 3", 0, `number "5" is not followed by a unit`},
		{"1.2.3", 0, `number "1.2" is not followed by a unit`},
		{"1h 5 and 3", 3, `number "5" is not followed by a unit`},
		{"twenty thirty minutes", 0, `number "twenty" is not followed by a unit`},
		{"1h m", 3, `unit "m" has no number before it`},
		{"hour minute", 5, `unit "minute" has no number before it`},
		{"a", 0, `"a" must be followed by a unit`},
		{"1 day a", 6, `"a" must be followed by a unit`},

		{"1:20 min", 5, `unexpected "m" in clock time`},
		{"1::20", 2, `unexpected ":" in clock time`},
		{":20", 0, `unexpected ":" in clock time`},
		{"1:", 2, "clock time ends where digits were expected"},
		{"1:20.", 4, "decimal point without digits after it"},
		{"1.5:20", 0, "only the last field of a clock time may have a fraction"},
		{"1:2:3:4:5:6:7", 12, "clock time has more than 6 fields"},
		{"1 2:30", 2, `unexpected "2" in clock time`},
		{"1:2é", 3, `unexpected "é" in clock time`},
	}
	for _, tt := range tests {
		d, err := Parse(tt.in)
		if err == nil {
			t.Errorf("Parse(%q) = %v, want error %q", tt.in, d, tt.msg)
			continue
		}
		var perr *Error
		if !errors.As(err, &perr) {
			t.Errorf("Parse(%q): error %T is not *Error", tt.in, err)
			continue
		}
		if perr.Input != tt.in || perr.Offset != tt.offset || perr.Msg != tt.msg {
			t.Errorf("Parse(%q) error = {Input: %q, Offset: %d, Msg: %q}, want {Offset: %d, Msg: %q}",
				tt.in, perr.Input, perr.Offset, perr.Msg, tt.offset, tt.msg)
		}
		if d != 0 {
			t.Errorf("Parse(%q) returned %v with an error, want 0", tt.in, d)
		}
	}
}

func TestErrorString(t *testing.T) {
	_, err := Parse("3 fortnights")
	want := `invalid duration "3 fortnights": unknown unit "fortnights" (at offset 2)`
	if err == nil || err.Error() != want {
		t.Errorf("Parse error = %v, want %s", err, want)
	}
}

func TestParseExpiry(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		never   bool
		wantErr bool
	}{
		{"never", 0, true, false},
		{"Never", 0, true, false},
		{"NEVER", 0, true, false},
		{"1 week", wk, false, false},
		{"42", 42 * sec, false, false},
		{"3 weeks and 2 days", 3*wk + 2*dy, false, false},
		{"47 yrs 6 mos and 4d", 47*yr + 6*mo + 4*dy, false, false},
		{" never", 0, false, true}, // GitLab compares the whole string
		{"never never", 0, false, true},
		{"nevers", 0, false, true},
		{"", 0, false, true},
		{"-1 day", 0, false, true},
	}
	for _, tt := range tests {
		d, never, err := ParseExpiry(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseExpiry(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			continue
		}
		if d != tt.want || never != tt.never {
			t.Errorf("ParseExpiry(%q) = (%v, %v), want (%v, %v)", tt.in, d, never, tt.want, tt.never)
		}
	}
}

func TestFormat(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want string
	}{
		{0, "0s"},
		{45 * sec, "45s"},
		{80 * sec, "1m 20s"},
		{80*sec + 510*time.Millisecond, "1m 20.51s"},
		{500 * time.Millisecond, "0.5s"},
		{1, "0.000000001s"},
		{hr, "1h"},
		{hr + 30*mn, "1h 30m"},
		{4*hr + mn + sec, "4h 1m 1s"},
		{2*hr + 20*mn, "2h 20m"},
		{2*dy + 3*hr, "2d 3h"},
		{8*dy + 3*hr + 30*mn, "8d 3h 30m"},
		{wk, "7d"},
		{mo, "1mo"},
		{6*mo + dy, "6mo 1d"},
		{18 * mo, "18mo"},
		{yr, "1y"},
		{yr + dy, "1y 1d"},
		{3*yr + dy, "3y 1d"},
		{6*yr + 3*hr, "6y 3h"},
		{365 * dy, "12mo 5d"},  // less than a year of 365.25 days
		{400 * dy, "13mo 10d"}, // whole years would leave more over than whole months
		// ChronicDuration uses years only when the remainder after whole years is
		// smaller than the remainder after whole 30-day months.
		{yr + 6*mo, "18mo 5d 6h"},
		{47*yr + 6*mo + 4*dy, "578mo 10d 18h"},
		{2*yr + 3*hr, "2y 3h"},
		{-90 * mn, "-1h 30m"},
		{math.MaxInt64, "3558mo 11d 23h 47m 16.854775807s"},
		{math.MinInt64, "-3558mo 11d 23h 47m 16.854775808s"},
	}
	for _, tt := range tests {
		if got := Format(tt.in); got != tt.want {
			t.Errorf("Format(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestFormatRoundTrip(t *testing.T) {
	values := []time.Duration{
		0, 1, sec, 59 * sec, mn, hr, dy, wk, mo, yr, yr - 1, yr + 1, 365 * dy, 400 * dy,
		47*yr + 6*mo + 4*dy + 12*hr, 80*sec + 510*time.Millisecond, math.MaxInt64,
	}
	for _, d := range values {
		s := Format(d)
		got, err := Parse(s)
		if err != nil || got != d {
			t.Errorf("Parse(Format(%d)) = Parse(%q) = %v, %v; want %d", int64(d), s, got, err, int64(d))
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"42", "3h 30m", "30 minutes", "1 week", "3 mins 4 sec", "2 hrs 20 min", "2h20min",
		"6 mos 1 day", "47 yrs 6 mos and 4d", "3 weeks and, 2 days", "1:20.51", "4:01:01",
		"never", "twenty-one days", "a day", "-5", "1.2.3", "1h-30m", "293 years", ".5h",
		"minute 30s", "1:2:3:4:5:6", "1 h\u00a0", "\xff", "1,,h",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := Parse(s)
		if err != nil {
			var perr *Error
			if !errors.As(err, &perr) {
				t.Fatalf("Parse(%q): error %T is not *Error", s, err)
			}
			if perr.Offset < 0 || perr.Offset > len(s) || perr.Msg == "" || perr.Input != s {
				t.Fatalf("Parse(%q): bad error %+v", s, perr)
			}
			if d != 0 {
				t.Fatalf("Parse(%q) = %v with error", s, d)
			}
		} else {
			if d < 0 {
				t.Fatalf("Parse(%q) = %v, negative", s, d)
			}
			// Every success round-trips (the brief requires it for whole
			// seconds; Format writes fractions exactly, so it holds for all).
			f := Format(d)
			back, err := Parse(f)
			if err != nil || back != d {
				t.Fatalf("Parse(%q) = %v; Parse(Format) = Parse(%q) = %v, %v", s, d, f, back, err)
			}
		}
		ed, never, eerr := ParseExpiry(s)
		if never && (ed != 0 || eerr != nil) {
			t.Fatalf("ParseExpiry(%q) = %v, %v, %v", s, ed, never, eerr)
		}
		if !never && (ed != d || (eerr == nil) != (err == nil)) {
			t.Fatalf("ParseExpiry(%q) = %v, %v, %v; Parse = %v, %v", s, ed, never, eerr, d, err)
		}
	})
}
