package fleet

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/cronexpr"
)

// PoolAt returns the class's idle settings at t: the IdleCount and IdleTime
// of the last schedule one of whose periods matches t, or the class's own
// when none does (GitLab Runner's rule: the last matching period wins).
//
// A period matches during every second its cron expression matches, on the
// wall clock of the schedule's Timezone (UTC when empty). An expression of
// seven fields (seconds, minutes, hours, days of month, months, days of
// week, years) is read second by second, as GitLab Runner writes them:
// "* * 9-17 * * mon-fri *" holds from 09:00:00 to 17:59:59 on weekdays. One
// of five fields (minutes to days of week) or six (the same and years) has
// no seconds field and holds for every second of each minute it matches:
// "* 9-17 * * mon-fri" holds over the same hours. On the day a daylight
// saving change repeats an hour, a period matching that hour holds through
// both; an hour the change skips never happens.
//
// A period or time zone that does not compile never matches; Load reports
// them. Expressions are compiled once, on first use (Load uses them all),
// and kept, so PoolAt is cheap and safe for concurrent use.
func (c *Class) PoolAt(t time.Time) (idleCount int, idleTime time.Duration) {
	for i := len(c.Schedules) - 1; i >= 0; i-- {
		if s := &c.Schedules[i]; s.matches(t) {
			return s.IdleCount, s.IdleTime
		}
	}
	return c.IdleCount, c.IdleTime
}

// matches reports whether one of the schedule's periods matches t.
func (s *Schedule) matches(t time.Time) bool {
	cs := s.compiled
	if cs == nil {
		cs = s.compile()
	}
	if cs.loc == nil {
		return false
	}
	w := wallClockOf(t.In(cs.loc))
	for _, p := range cs.periods {
		if p.matches(w) {
			return true
		}
	}
	return false
}

// wallClock is a time as a clock on the wall shows it, in some zone.
type wallClock struct {
	year, month, day, hour, minute, second int
}

func wallClockOf(t time.Time) wallClock {
	y, mo, d := t.Date()
	h, mi, s := t.Clock()
	return wallClock{y, int(mo), d, h, mi, s}
}

// The years cronexpr knows; no period matches outside them.
const (
	cronFirstYear = 1970
	cronLastYear  = 2099
)

// cronAliases are the shorthands cronexpr expands before it counts fields
// (its own table, which it does not export).
var cronAliases = strings.NewReplacer(
	"@yearly", "0 0 0 1 1 * *",
	"@annually", "0 0 0 1 1 * *",
	"@monthly", "0 0 0 1 * * *",
	"@weekly", "0 0 0 * * 0 *",
	"@daily", "0 0 0 * * * *",
	"@hourly", "0 0 * * * * *")

// errNeverMatches is the error of a period no second of any year matches.
var errNeverMatches = errors.New("it never matches")

// cronPeriod is a compiled period. cronexpr answers "when next?", which
// costs microseconds and allocations and is not safe for concurrent use;
// the question here is "does this second match?", so the expression is
// taken apart once into the sets of seconds, minutes and hours it matches
// (which cronexpr applies alike to every day it matches) and, lazily and
// cached per month, the days it matches (which depend on the month for L,
// W and #). All probing uses cronexpr itself on UTC times, so the answers
// are cronexpr's.
type cronPeriod struct {
	expr        *cronexpr.Expression // guarded by mu once published
	wholeMinute bool                 // no seconds field: a matching minute matches throughout
	seconds     uint64               // bit s: second s matches
	minutes     uint64               // bit m: minute m matches
	hours       uint32               // bit h: hour h matches

	// last caches the month asked for last: (key<<32 | day mask), key 0
	// meaning none; days holds every month computed, by key.
	last atomic.Uint64
	mu   sync.Mutex
	days map[uint64]uint32
}

// compiledSchedule is a schedule's time zone and periods, read once.
type compiledSchedule struct {
	loc     *time.Location
	periods []*cronPeriod
}

// compile reads the schedule's time zone and periods; a bad period is
// left out and a bad zone makes the schedule match nothing (Load reports
// both).
func (s *Schedule) compile() *compiledSchedule {
	loc, err := loadZone(s.Timezone)
	if err != nil {
		return &compiledSchedule{}
	}
	cs := &compiledSchedule{loc: loc}
	for _, text := range s.Periods {
		if p, err := compilePeriod(text); err == nil {
			cs.periods = append(cs.periods, p)
		}
	}
	return cs
}

// Compile reads the time zones and periods of c's schedules once, so
// that PoolAt is cheap. Load does it; a class built in code calls it
// before it is shared between goroutines (without it PoolAt is right, but
// slow).
func (c *Class) Compile() {
	for i := range c.Schedules {
		c.Schedules[i].compiled = c.Schedules[i].compile()
	}
}

// compilePeriod returns the compiled period for a cron expression, or the
// reason it is not one.
func compilePeriod(text string) (*cronPeriod, error) {
	return newCronPeriod(text)
}

// loadZone loads an IANA time zone; "" is UTC.
func loadZone(name string) (*time.Location, error) {
	if name == "" {
		return time.UTC, nil
	}
	return time.LoadLocation(name)
}

func newCronPeriod(text string) (*cronPeriod, error) {
	fields := len(strings.Fields(cronAliases.Replace(text)))
	if fields > 7 {
		return nil, fmt.Errorf("%d fields, at most 7 (seconds, minutes, hours, days of month, months, days of week, years)", fields)
	}
	expr, err := cronexpr.Parse(text)
	if err != nil {
		return nil, err
	}
	p := &cronPeriod{
		expr:        expr,
		wholeMinute: fields < 7,
		days:        map[uint64]uint32{},
	}
	// The first match is on a day the expression matches, at its first
	// hour, minute and second; that day shows which hours, minutes and
	// seconds match.
	first := expr.Next(time.Date(cronFirstYear, 1, 1, 0, 0, 0, 0, time.UTC).Add(-time.Second))
	if first.IsZero() {
		return nil, errNeverMatches
	}
	at := func(h, m, s int) time.Time {
		return time.Date(first.Year(), first.Month(), first.Day(), h, m, s, 0, time.UTC)
	}
	for h := range 24 {
		if t := at(h, 0, 0); expr.Next(t.Add(-time.Second)).Truncate(time.Hour).Equal(t) {
			p.hours |= 1 << h
		}
	}
	for m := range 60 {
		if t := at(first.Hour(), m, 0); expr.Next(t.Add(-time.Second)).Truncate(time.Minute).Equal(t) {
			p.minutes |= 1 << m
		}
	}
	for s := range 60 {
		if t := at(first.Hour(), first.Minute(), s); expr.Next(t.Add(-time.Second)).Equal(t) {
			p.seconds |= 1 << s
		}
	}
	return p, nil
}

// matches reports whether the period matches the second w.
func (p *cronPeriod) matches(w wallClock) bool {
	if p.hours&(1<<w.hour) == 0 || p.minutes&(1<<w.minute) == 0 {
		return false
	}
	if !p.wholeMinute && p.seconds&(1<<w.second) == 0 {
		return false
	}
	return p.dayMask(w.year, w.month)&(1<<w.day) != 0
}

// dayMask returns the days of a month the period matches, as bits.
func (p *cronPeriod) dayMask(year, month int) uint32 {
	if year < cronFirstYear || year > cronLastYear {
		return 0
	}
	key := uint64(year*12 + month) // > 0
	if v := p.last.Load(); v>>32 == key {
		return uint32(v)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	mask, ok := p.days[key]
	if !ok {
		mask = p.computeDays(year, month)
		p.days[key] = mask
	}
	p.last.Store(key<<32 | uint64(mask))
	return mask
}

// computeDays asks cronexpr for the month's matching days, one call per
// day that matches. The caller holds p.mu (Next is not safe for
// concurrent use).
func (p *cronPeriod) computeDays(year, month int) uint32 {
	start := time.Date(year, time.Month(month), 1, 0, 0, 0, 0, time.UTC)
	end := start.AddDate(0, 1, 0)
	var mask uint32
	for from := start.Add(-time.Second); ; {
		n := p.expr.Next(from)
		if n.IsZero() || !n.Before(end) {
			return mask
		}
		mask |= 1 << n.Day()
		from = time.Date(n.Year(), n.Month(), n.Day()+1, 0, 0, 0, 0, time.UTC).Add(-time.Second)
	}
}
