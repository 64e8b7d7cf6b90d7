package provider

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/hangar-ci/hangar/internal/pipeline/duration"
)

// Settings reads a class's provider_config (a map as the YAML decoder
// makes it) into typed values. Every error names the setting, as
// "provider_config.state_dir: required". Read each setting once, then call
// Err, which also reports the settings nobody read: an unknown setting is
// a mistake, not something to ignore.
type Settings struct {
	m    map[string]any
	read map[string]bool
	errs []error
}

// NewSettings returns a reader of m (which may be nil).
func NewSettings(m map[string]any) *Settings {
	return &Settings{m: m, read: map[string]bool{}}
}

func (s *Settings) fail(key, format string, args ...any) {
	s.errs = append(s.errs, fmt.Errorf("provider_config.%s: %s", key, fmt.Sprintf(format, args...)))
}

// get returns the value of key, marking it read.
func (s *Settings) get(key string) (any, bool) {
	s.read[key] = true
	v, ok := s.m[key]
	return v, ok && v != nil
}

// String returns the string setting key, or def when it is not set.
func (s *Settings) String(key, def string) string {
	v, ok := s.get(key)
	if !ok {
		return def
	}
	str, isStr := v.(string)
	if !isStr {
		s.fail(key, "want a string, not %T", v)
		return def
	}
	return str
}

// RequiredString returns the string setting key, which must be set and
// not empty.
func (s *Settings) RequiredString(key string) string {
	if v, ok := s.m[key]; !ok || v == nil || v == "" {
		s.read[key] = true
		s.fail(key, "required")
		return ""
	}
	return s.String(key, "")
}

// Strings returns the list of strings key, or nil when it is not set.
func (s *Settings) Strings(key string) []string {
	v, ok := s.get(key)
	if !ok {
		return nil
	}
	switch l := v.(type) {
	case []string:
		return slices.Clone(l)
	case []any:
		out := make([]string, 0, len(l))
		for i, e := range l {
			str, isStr := e.(string)
			if !isStr {
				s.fail(fmt.Sprintf("%s[%d]", key, i), "want a string, not %T", e)
				return nil
			}
			out = append(out, str)
		}
		return out
	}
	s.fail(key, "want a list of strings, not %T", v)
	return nil
}

// Duration returns the duration setting key, or def when it is not set.
// It is read as the fleet configuration's durations are: Go's syntax
// ("90s", "1h30m"), GitLab's human one ("30 minutes", "1h 30m"), or a
// number of seconds. A negative duration is an error.
func (s *Settings) Duration(key string, def time.Duration) time.Duration {
	v, ok := s.get(key)
	if !ok {
		return def
	}
	var d time.Duration
	switch x := v.(type) {
	case time.Duration:
		d = x
	case int:
		d = time.Duration(x) * time.Second
	case string:
		var err error
		if d, err = time.ParseDuration(strings.TrimSpace(x)); err != nil {
			if d, err = duration.Parse(x); err != nil {
				msg := err.Error()
				var de *duration.Error
				if errors.As(err, &de) {
					msg = de.Msg
				}
				s.fail(key, "%q is not a duration such as \"90s\", \"1h30m\" or \"30 minutes\": %s", x, msg)
				return def
			}
		}
	default:
		s.fail(key, "want a duration such as \"90s\", \"1h30m\" or \"30 minutes\", not %T %v", v, v)
		return def
	}
	if d < 0 {
		s.fail(key, "%v is negative", d)
		return def
	}
	return d
}

// Float returns the number setting key, or def when it is not set; it
// must not be negative.
func (s *Settings) Float(key string, def float64) float64 {
	v, ok := s.get(key)
	if !ok {
		return def
	}
	var f float64
	switch x := v.(type) {
	case int:
		f = float64(x)
	case float64:
		f = x
	default:
		s.fail(key, "want a number, not %T %v", v, v)
		return def
	}
	if f < 0 {
		s.fail(key, "%v is negative", f)
		return def
	}
	return f
}

// Bytes returns the size setting key, written as "64m", "2g", "512k" or a
// number of bytes, or def when it is not set. Sizes are binary: 1m is
// 1 MiB.
func (s *Settings) Bytes(key string, def int64) int64 {
	v, ok := s.get(key)
	if !ok {
		return def
	}
	switch x := v.(type) {
	case int:
		if x > 0 {
			return int64(x)
		}
	case int64:
		if x > 0 {
			return x
		}
	case string:
		if n, err := ParseBytes(x); err == nil {
			return n
		}
	}
	s.fail(key, "%v is not a size such as 64m or 2g", v)
	return def
}

// Err returns the errors met so far, and one for each setting that was
// never read, joined; nil when there are none.
func (s *Settings) Err() error {
	errs := slices.Clone(s.errs)
	var unknown []string
	for _, k := range slices.Sorted(maps.Keys(s.m)) {
		if !s.read[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		known := slices.Sorted(maps.Keys(s.read))
		for _, k := range unknown {
			errs = append(errs, fmt.Errorf("provider_config.%s: unknown setting (known: %s)", k, strings.Join(known, ", ")))
		}
	}
	return errors.Join(errs...)
}

// ParseBytes reads a size such as 512m, 2g, 1024k or 1000000 (bytes); the
// units are binary.
func ParseBytes(s string) (int64, error) {
	units := map[string]int64{"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "m": 1 << 20, "mb": 1 << 20, "g": 1 << 30, "gb": 1 << 30}
	t := strings.ToLower(strings.TrimSpace(s))
	i := strings.IndexFunc(t, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if i < 0 {
		i = len(t)
	}
	unit, ok := units[t[i:]]
	var n float64
	if _, err := fmt.Sscanf(t[:i], "%g", &n); err != nil || !ok || n <= 0 {
		return 0, fmt.Errorf("%q is not a size such as 512m or 2g", s)
	}
	return int64(n * float64(unit)), nil
}
