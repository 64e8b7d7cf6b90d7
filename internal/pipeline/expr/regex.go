package expr

import (
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
)

// Values used as patterns on the right of =~ and !~ are compiled once and
// kept in a small process-wide cache. The cache stops growing once it is
// full, and long values are never cached, so hostile inputs cannot make it
// hold much memory; they are then compiled on every use.
const (
	maxCachedPatterns    = 512
	maxCachedPatternSize = 1024
)

var (
	patternCache   sync.Map // string -> *regexp.Regexp (nil: not a pattern)
	patternEntries atomic.Int32
)

// valueRegex returns the regular expression a variable or string value
// stands for on the right of =~ or !~, or nil when the value is not in
// /pattern/flags form or does not compile, in which case GitLab falls back to
// a substring test.
func valueRegex(v string) *regexp.Regexp {
	if len(v) < 2 || v[0] != '/' {
		return nil // cheap common case; not worth a cache entry
	}
	cacheable := len(v) <= maxCachedPatternSize
	if cacheable {
		if re, ok := patternCache.Load(v); ok {
			return re.(*regexp.Regexp)
		}
	}
	re := compileValue(v)
	if cacheable && patternEntries.Load() < maxCachedPatterns {
		if _, loaded := patternCache.LoadOrStore(v, re); !loaded {
			patternEntries.Add(1)
		}
	}
	return re
}

// compileValue mirrors GitLab's Ruby-syntax check for values: a leading
// slash, the last slash followed only by flags, and a body that compiles.
// Like GitLab, it turns \/ into / before compiling, and a value with a line
// break is never a pattern.
func compileValue(v string) *regexp.Regexp {
	last := strings.LastIndexByte(v, '/')
	if last <= 0 || strings.IndexByte(v, '\n') >= 0 {
		return nil
	}
	flags, bad := canonFlags(v[last+1:])
	if bad >= 0 {
		return nil
	}
	body := strings.ReplaceAll(v[1:last], `\/`, "/")
	re, err := compileRegex(body, flags)
	if err != nil {
		return nil
	}
	return re
}
