package provider_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hangar-ci/hangar/internal/fleet/provider"
)

func TestInstanceName(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ owner, class, suffix, want string }{
		{"hangar", "small", "0a1b", "hangar-small-0a1b"},
		{"ci.example.com", "linux/arm64 big", "x", "ci.example.com-linux-arm64-big-x"},
		{"é", "c", "1", "--c-1"},
	} {
		if got := provider.InstanceName(tc.owner, tc.class, tc.suffix); got != tc.want {
			t.Errorf("InstanceName(%q, %q, %q) = %q, want %q", tc.owner, tc.class, tc.suffix, got, tc.want)
		}
	}
}

func TestCreateSpec(t *testing.T) {
	t.Parallel()
	good := provider.CreateSpec{Owner: "o", Class: "c", Server: "http://s", RegistrationToken: "t", Labels: []string{"a", "b"}, Capacity: 3}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		mod func(*provider.CreateSpec)
		err string
	}{
		{func(s *provider.CreateSpec) { s.Owner = "" }, "Owner is empty"},
		{func(s *provider.CreateSpec) { s.Class = "" }, "Class is empty"},
		{func(s *provider.CreateSpec) { s.Server = "" }, "Server is empty"},
		{func(s *provider.CreateSpec) { s.RegistrationToken = "" }, "RegistrationToken is empty"},
		{func(s *provider.CreateSpec) { s.Capacity = -1 }, "Capacity is -1"},
		{func(s *provider.CreateSpec) { s.Labels = []string{"a,b"} }, `label "a,b"`},
	} {
		s := good
		tc.mod(&s)
		if err := s.Validate(); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("error %v, want one containing %q", err, tc.err)
		}
	}
	got := good.AgentArgs("o-c-1", "/w", 8*time.Second)
	want := []string{"--server=http://s", "--name=o-c-1", "--concurrency=3", "--work-dir=/w", "--labels=a,b", "--shutdown-timeout=6s"}
	if !slices.Equal(got, want) {
		t.Errorf("AgentArgs = %q, want %q", got, want)
	}
	bare := provider.CreateSpec{Server: "http://s"}
	if got := bare.AgentArgs("n", "/w", 0); !slices.Equal(got, []string{"--server=http://s", "--name=n", "--concurrency=1", "--work-dir=/w"}) {
		t.Errorf("AgentArgs of a bare spec = %q", got)
	}
}

func TestCheckAgentArgs(t *testing.T) {
	t.Parallel()
	if err := provider.CheckAgentArgs([]string{"--executor", "docker", "--log-level=debug", "-docker-image=x"}); err != nil {
		t.Error(err)
	}
	for _, args := range [][]string{{"--token", "x"}, {"-name=x"}, {"--log-level", "debug", "--work-dir=/x"}} {
		if err := provider.CheckAgentArgs(args); err == nil || !strings.Contains(err.Error(), "is set by the provider") {
			t.Errorf("%q: %v", args, err)
		}
	}
}

func TestSettings(t *testing.T) {
	t.Parallel()
	s := provider.NewSettings(map[string]any{
		"dir": "/d", "grace": "1m30s", "size": "1.5g", "n": 4096, "args": []any{"a", "b"}, "typed": []string{"c"},
		"human": "1h 30 minutes", "secs": 90, "cpus": 1.5, "one": 1,
		"bad_duration": true, "bad_human": "soon", "bad_float": "2", "bad_size": "0", "bad_list": "a", "extra": true, "null": nil,
	})
	if got := s.RequiredString("dir"); got != "/d" {
		t.Errorf("dir = %q", got)
	}
	if got := s.String("absent", "def"); got != "def" {
		t.Errorf("absent = %q", got)
	}
	if got := s.String("null", "def"); got != "def" {
		t.Errorf("null = %q", got)
	}
	if got := s.Duration("grace", time.Second); got != 90*time.Second {
		t.Errorf("grace = %v", got)
	}
	if got := s.Bytes("size", 0); got != 3<<29 {
		t.Errorf("size = %d", got)
	}
	if got := s.Bytes("n", 0); got != 4096 {
		t.Errorf("n = %d", got)
	}
	if got := s.Strings("args"); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("args = %q", got)
	}
	if got := s.Strings("typed"); !slices.Equal(got, []string{"c"}) {
		t.Errorf("typed = %q", got)
	}
	if got := s.Duration("human", 0); got != 90*time.Minute {
		t.Errorf("human = %v", got)
	}
	if got := s.Duration("secs", 0); got != 90*time.Second {
		t.Errorf("secs = %v", got)
	}
	if got := s.Float("cpus", 0); got != 1.5 {
		t.Errorf("cpus = %v", got)
	}
	if got := s.Float("one", 0); got != 1 {
		t.Errorf("one = %v", got)
	}
	s.Duration("bad_duration", 0)
	s.Duration("bad_human", 0)
	s.Float("bad_float", 0)
	s.Bytes("bad_size", 0)
	s.Strings("bad_list")
	s.RequiredString("missing")
	want := []string{
		`provider_config.bad_duration: want a duration such as "90s", "1h30m" or "30 minutes", not bool true`,
		`provider_config.bad_human: "soon" is not a duration such as "90s", "1h30m" or "30 minutes": unknown unit "soon"`,
		`provider_config.bad_float: want a number, not string 2`,
		`provider_config.bad_size: 0 is not a size such as 64m or 2g`,
		`provider_config.bad_list: want a list of strings, not string`,
		`provider_config.missing: required`,
		`provider_config.extra: unknown setting (known: absent, args, bad_duration, bad_float, bad_human, bad_list, bad_size, cpus, dir, grace, human, missing, n, null, one, secs, size, typed)`,
	}
	err := s.Err()
	if err == nil {
		t.Fatal("no error")
	}
	if got := strings.Split(err.Error(), "\n"); !slices.Equal(got, want) {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if err := provider.NewSettings(nil).Err(); err != nil {
		t.Errorf("no settings: %v", err)
	}
}

func TestParseBytes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		err  bool
	}{
		{in: "512m", want: 512 << 20},
		{in: "2g", want: 2 << 30},
		{in: "2GB", want: 2 << 30},
		{in: "1.5g", want: 3 << 29},
		{in: "1024k", want: 1 << 20},
		{in: "1000000", want: 1000000},
		{in: " 64M ", want: 64 << 20},
		{in: "", err: true},
		{in: "m", err: true},
		{in: "-1g", err: true},
		{in: "0", err: true},
		{in: "12q", err: true},
		{in: "1e3", err: true},
	} {
		got, err := provider.ParseBytes(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}
