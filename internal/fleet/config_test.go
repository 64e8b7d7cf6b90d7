package fleet

import (
	"errors"
	"io/fs"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hangar-ci/hangar/internal/pipeline/duration"
)

// mustLoad reads src as hangar.yml and fails the test on errors.
func mustLoad(t *testing.T, src string) *Config {
	t.Helper()
	cfg, err := Load("hangar.yml", []byte(src))
	if err != nil {
		t.Fatalf("Load: unexpected errors:\n%v", err)
	}
	return cfg
}

func TestLoadExample(t *testing.T) {
	t.Parallel()
	cfg, err := LoadFile("testdata/hangar.yml")
	if err != nil {
		t.Fatalf("LoadFile: %v", err)
	}
	big := Class{
		Name:                "big",
		Labels:              []string{"linux", "docker", "large"},
		Provider:            "docker",
		CapacityPerInstance: 1,
		MaxInstances:        4,
		Policy:              PolicyAdaptive,
		TargetWait:          10 * time.Second,
		TargetPercentile:    95,
		BootTimeout:         3 * time.Minute,
		HeartbeatTimeout:    time.Minute,
		Spot:                true,
		FallbackClass:       "big-on-demand",
	}
	onDemand := big
	onDemand.Name, onDemand.Policy, onDemand.Spot, onDemand.FallbackClass = "big-on-demand", PolicyStatic, false, ""
	want := &Config{
		Installation: "acme-ci",
		Concurrent:   40,
		Classes: []Class{
			{
				Name:                 "small",
				Labels:               []string{"linux", "docker"},
				Provider:             "docker",
				ProviderConfig:       map[string]any{"image": "hangar/agent:latest", "cpus": 2},
				CapacityPerInstance:  2,
				MaxInstances:         10,
				Policy:               PolicyIdle,
				IdleCount:            1,
				IdleTime:             20 * time.Minute,
				MaxUseCount:          50,
				MaxInstanceAge:       90 * time.Minute,
				MaxConcurrentCreates: 3,
				TargetWait:           DefaultTargetWait,
				TargetPercentile:     DefaultTargetPercentile,
				Schedules: []Schedule{
					{Periods: []string{"* * 8-18 * * mon-fri *"}, Timezone: "Europe/Berlin", IdleCount: 4, IdleTime: 30 * time.Minute},
					// idle_time left out: the class's.
					{Periods: []string{"* 12 * * mon-fri"}, Timezone: "Europe/Berlin", IdleCount: 6, IdleTime: 20 * time.Minute},
				},
				BootTimeout:        DefaultBootTimeout,
				HeartbeatTimeout:   DefaultHeartbeatTimeout,
				MaxDiskUsedPercent: 85,
				Hooks: Hooks{
					Webhook: "https://ops.example.com/hangar/removed",
					Command: `logger "instance $HANGAR_INSTANCE removed"`,
				},
			},
			big,
			onDemand, // merged from big's anchor, fallback_class cleared by null
		},
	}
	if !reflect.DeepEqual(uncompiled(cfg), want) {
		t.Errorf("LoadFile:\n got %+v\nwant %+v", cfg, want)
	}
}

func TestLoadDefaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		src  string
		want *Config
	}{
		{"empty file", "", &Config{Installation: "hangar"}},
		{"comments only", "# nothing yet\n", &Config{Installation: "hangar"}},
		{"no classes", "fleet:\n  concurrent: 3\n", &Config{Installation: "hangar", Concurrent: 3}},
		{
			name: "policy idle",
			src:  "fleet:\n  classes:\n    - {name: a, provider: local, max_instances: 2}\n",
			want: &Config{Installation: "hangar", Classes: []Class{{
				Name: "a", Provider: "local", MaxInstances: 2,
				CapacityPerInstance: 1, Policy: PolicyIdle, IdleTime: 10 * time.Minute,
				TargetWait: 5 * time.Second, TargetPercentile: 90,
				BootTimeout: 5 * time.Minute, HeartbeatTimeout: time.Minute,
			}}},
		},
		{
			name: "other policies have no idle_time",
			src:  "fleet:\n  classes:\n    - {name: a, provider: local, max_instances: 2, policy: adaptive}\n",
			want: &Config{Installation: "hangar", Classes: []Class{{
				Name: "a", Provider: "local", MaxInstances: 2,
				CapacityPerInstance: 1, Policy: PolicyAdaptive,
				TargetWait: 5 * time.Second, TargetPercentile: 90,
				BootTimeout: 5 * time.Minute, HeartbeatTimeout: time.Minute,
			}}},
		},
		{
			name: "null is left out, 0 is kept",
			src: "fleet:\n  installation: ~\n  classes:\n    - name: a\n      provider: local\n      max_instances: 2\n" +
				"      idle_time: 0\n      boot_timeout:\n      target_wait: 0s\n",
			want: &Config{Installation: "hangar", Classes: []Class{{
				Name: "a", Provider: "local", MaxInstances: 2,
				CapacityPerInstance: 1, Policy: PolicyIdle,
				TargetPercentile: 90,
				BootTimeout:      5 * time.Minute, HeartbeatTimeout: time.Minute,
			}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := mustLoad(t, tt.src); !reflect.DeepEqual(uncompiled(got), tt.want) {
				t.Errorf("Load:\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestLoadDurations(t *testing.T) {
	t.Parallel()
	tests := []struct {
		value string
		want  time.Duration
	}{
		{"90s", 90 * time.Second},
		{"1h30m", 90 * time.Minute},
		{"1.5h", 90 * time.Minute},
		{"30 minutes", 30 * time.Minute},
		{"1h 30m", 90 * time.Minute},
		{"2 days", 48 * time.Hour},
		{"600", 10 * time.Minute}, // a bare number is seconds, as in GitLab
		{"0", 0},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			t.Parallel()
			cfg := mustLoad(t, "fleet:\n  classes:\n    - {name: a, provider: local, max_instances: 1, idle_time: "+tt.value+"}\n")
			if got := cfg.Classes[0].IdleTime; got != tt.want {
				t.Errorf("idle_time: %s = %v, want %v", tt.value, got, tt.want)
			}
		})
	}
}

// oneClass is a valid class at line 3 of a file, its keys at column 7, to
// which a test appends its lines.
const oneClass = "fleet:\n  classes:\n    - name: a\n      provider: local\n      max_instances: 4\n"

func TestLoadErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		src  string
		want string // the whole error
	}{
		// The file.
		{"yaml syntax", "fleet:\n  classes: [a\n", "hangar.yml:3:1: invalid YAML: did not find expected ',' or ']' (while parsing a flow sequence started at line 2, column 12)"},
		{"two documents", "fleet: {}\n---\nfleet: {}\n", "hangar.yml:2:1: the file must hold one YAML document, found a second"},
		{"top level not a mapping", "- fleet\n", "hangar.yml:1:1: the file must be a mapping with a fleet: key, got a list"},
		{"unknown top-level key", "flet:\n  classes: []\n", `hangar.yml:1:1: flet: unknown key (did you mean "fleet"?)`},
		{"fleet not a mapping", "fleet: [a]\n", "hangar.yml:1:1: fleet: must be a mapping, got a list"},
		{"classes not a list", "fleet:\n  classes: {a: 1}\n", "hangar.yml:2:3: fleet.classes: must be a list, got a mapping"},
		{"class not a mapping", "fleet:\n  classes: [small]\n", `hangar.yml:2:13: fleet.classes[0]: must be a mapping, got "small"`},
		{"class null", "fleet:\n  classes:\n    -\n", "hangar.yml:3:6: fleet.classes[0]: must be a mapping of the class's keys, got null"},
		{"key twice", oneClass + "      max_instances: 5\n", "hangar.yml:6:7: fleet.classes[0].max_instances: set twice (first on line 5)"},
		{"unknown key with a suggestion", oneClass + "      idle_cout: 1\n", `hangar.yml:6:7: fleet.classes[0].idle_cout: unknown key (did you mean "idle_count"?)`},
		{"unknown key without one", "fleet:\n  flavour: x\n", "hangar.yml:2:3: fleet.flavour: unknown key; the keys here are installation, concurrent, classes"},
		{"merge of a scalar", oneClass + "      <<: 3\n", "hangar.yml:6:11: fleet.classes[0]: merge key << needs a mapping or a list of mappings, got 3"},

		// The fleet.
		{"installation", "fleet:\n  installation: ACME\n", `hangar.yml:2:3: fleet.installation: must be lowercase letters, digits and hyphens, got "ACME"`},
		{"concurrent negative", "fleet:\n  concurrent: -1\n", "hangar.yml:2:3: fleet.concurrent: must be 0 or more, got -1"},
		{"concurrent not a number", "fleet:\n  concurrent: many\n", `hangar.yml:2:3: fleet.concurrent: must be a whole number, got "many"`},
		{"concurrent fraction", "fleet:\n  concurrent: 1.5\n", `hangar.yml:2:3: fleet.concurrent: must be a whole number, got 1.5`},

		// A class's name, labels, provider.
		{"name missing", "fleet:\n  classes:\n    - provider: local\n      max_instances: 1\n", "hangar.yml:3:7: fleet.classes[0].name: required: lowercase letters, digits and hyphens"},
		{"name bad", "fleet:\n  classes:\n    - name: Big_1\n      provider: local\n      max_instances: 1\n", `hangar.yml:3:7: fleet.classes[0].name: must be lowercase letters, digits and hyphens, got "Big_1"`},
		{"name twice", oneClass + "    - name: a\n      provider: local\n      max_instances: 1\n", `hangar.yml:6:7: fleet.classes[1].name: "a" is already the name of fleet.classes[0]`},
		{"labels not a list", oneClass + "      labels: linux\n", `hangar.yml:6:7: fleet.classes[0].labels: must be a list, got "linux"`},
		{"label empty", oneClass + "      labels: [linux, '']\n", "hangar.yml:6:23: fleet.classes[0].labels[1]: must not be empty"},
		{"label with a comma", oneClass + "      labels: [\"linux,docker\"]\n", `hangar.yml:6:16: fleet.classes[0].labels[0]: must not contain a comma, got "linux,docker" (write each label as its own item)`},
		{"label with a space", oneClass + "      labels: [' linux']\n", `hangar.yml:6:16: fleet.classes[0].labels[0]: must not start or end with a space, got " linux"`},
		{"label twice", oneClass + "      labels:\n        - linux\n        - linux\n", `hangar.yml:8:11: fleet.classes[0].labels[1]: "linux" is listed twice`},
		{"label a list", oneClass + "      labels: [[linux]]\n", "hangar.yml:6:16: fleet.classes[0].labels[0]: must be a string, got a list"},
		{"provider missing", "fleet:\n  classes:\n    - name: a\n      max_instances: 1\n", "hangar.yml:3:7: fleet.classes[0].provider: required: one of docker, local"},
		{"provider unknown", "fleet:\n  classes:\n    - name: a\n      provider: ec2\n      max_instances: 1\n", `hangar.yml:4:7: fleet.classes[0].provider: must be one of docker, local, got "ec2"`},
		{"provider misspelt", "fleet:\n  classes:\n    - name: a\n      provider: dokcer\n      max_instances: 1\n", `hangar.yml:4:7: fleet.classes[0].provider: must be one of docker, local, got "dokcer" (did you mean "docker"?)`},
		{"provider_config not a mapping", oneClass + "      provider_config: [x]\n", "hangar.yml:6:7: fleet.classes[0].provider_config: must be a mapping, got a list"},

		// Sizes.
		{"max_instances missing", "fleet:\n  classes:\n    - name: a\n      provider: local\n", "hangar.yml:3:7: fleet.classes[0].max_instances: required: the most instances the class may have, more than 0"},
		{"max_instances zero", "fleet:\n  classes:\n    - name: a\n      provider: local\n      max_instances: 0\n", "hangar.yml:5:7: fleet.classes[0].max_instances: must be more than 0, got 0"},
		{"capacity_per_instance", oneClass + "      capacity_per_instance: 0\n", "hangar.yml:6:7: fleet.classes[0].capacity_per_instance: must be 1 or more, got 0"},
		{"idle_count negative", oneClass + "      idle_count: -2\n", "hangar.yml:6:7: fleet.classes[0].idle_count: must be 0 or more, got -2"},
		{"idle_count above max_instances", oneClass + "      idle_count: 5\n", "hangar.yml:6:7: fleet.classes[0].idle_count: must be at most max_instances (4), got 5"},
		{"max_use_count", oneClass + "      max_use_count: -1\n", "hangar.yml:6:7: fleet.classes[0].max_use_count: must be 0 or more, got -1"},
		{"max_concurrent_creates", oneClass + "      max_concurrent_creates: -1\n", "hangar.yml:6:7: fleet.classes[0].max_concurrent_creates: must be 0 or more, got -1"},
		{"max_disk_used_percent", oneClass + "      max_disk_used_percent: 101\n", "hangar.yml:6:7: fleet.classes[0].max_disk_used_percent: must be from 0 to 100, got 101"},
		{"max_disk_used_percent nan", oneClass + "      max_disk_used_percent: .nan\n", "hangar.yml:6:7: fleet.classes[0].max_disk_used_percent: must be from 0 to 100, got NaN"},
		{"target_percentile 0", oneClass + "      target_percentile: 0\n", "hangar.yml:6:7: fleet.classes[0].target_percentile: must be more than 0 and less than 100, got 0"},
		{"target_percentile 100", oneClass + "      target_percentile: 100\n", "hangar.yml:6:7: fleet.classes[0].target_percentile: must be more than 0 and less than 100, got 100"},
		{"target_percentile text", oneClass + "      target_percentile: high\n", `hangar.yml:6:7: fleet.classes[0].target_percentile: must be a number, got "high"`},
		{"policy", oneClass + "      policy: idel\n", `hangar.yml:6:7: fleet.classes[0].policy: must be one of idle, adaptive, static, per_job, got "idel" (did you mean "idle"?)`},
		{"spot not a boolean", oneClass + "      spot: yes\n", `hangar.yml:6:7: fleet.classes[0].spot: must be true or false, got "yes"`},

		// Durations.
		{"duration negative", oneClass + "      idle_time: -5s\n", "hangar.yml:6:7: fleet.classes[0].idle_time: must be 0 or more, got -5s"},
		{"duration unknown unit", oneClass + "      boot_timeout: 5 minuts\n", `hangar.yml:6:7: fleet.classes[0].boot_timeout: must be a duration such as "90s", "1h30m" or "30 minutes", got "5 minuts": unknown unit "minuts"`},
		{"duration a list", oneClass + "      heartbeat_timeout: [1m]\n", "hangar.yml:6:7: fleet.classes[0].heartbeat_timeout: must be a duration, got a list"},
		{"max_instance_age negative", oneClass + "      max_instance_age: -1h\n", "hangar.yml:6:7: fleet.classes[0].max_instance_age: must be 0 or more, got -1h0m0s"},
		{"target_wait negative", oneClass + "      target_wait: -1s\n", "hangar.yml:6:7: fleet.classes[0].target_wait: must be 0 or more, got -1s"},

		// Fallback.
		{"fallback without spot", oneClass + "      fallback_class: b\n    - {name: b, provider: local, max_instances: 1}\n", "hangar.yml:6:7: fleet.classes[0].fallback_class: needs spot: true (the fallback class runs again what a spot instance's interruption stopped)"},
		{"fallback to itself", oneClass + "      spot: true\n      fallback_class: a\n", "hangar.yml:7:7: fleet.classes[0].fallback_class: must name another class, not the class itself"},
		{"fallback unknown", oneClass + "      spot: true\n      fallback_class: c\n    - {name: b, provider: local, max_instances: 1}\n", `hangar.yml:7:7: fleet.classes[0].fallback_class: no class is named "c"; the classes are a, b`},
		{"fallback misspelt", oneClass + "      spot: true\n      fallback_class: big-od\n    - {name: big-ondemand, provider: local, max_instances: 1}\n", `hangar.yml:7:7: fleet.classes[0].fallback_class: no class is named "big-od"; the classes are a, big-ondemand`},
		{"fallback near miss", oneClass + "      spot: true\n      fallback_class: bug\n    - {name: big, provider: local, max_instances: 1}\n", `hangar.yml:7:7: fleet.classes[0].fallback_class: no class is named "bug"; the classes are a, big (did you mean "big"?)`},

		// Hooks.
		{"hooks not a mapping", oneClass + "      hooks: https://x\n", `hangar.yml:6:7: fleet.classes[0].hooks: must be a mapping, got "https://x"`},
		{"webhook not http", oneClass + "      hooks:\n        webhook: ftp://example.com/x\n", `hangar.yml:7:9: fleet.classes[0].hooks.webhook: must be an http or https URL, got "ftp://example.com/x"`},
		{"slack without scheme", oneClass + "      hooks:\n        slack: hooks.slack.com/services/T0\n", `hangar.yml:7:9: fleet.classes[0].hooks.slack: must be an http or https URL, got "hooks.slack.com/services/T0"`},
		{"hook unknown key", oneClass + "      hooks:\n        email: ops@example.com\n", "hangar.yml:7:9: fleet.classes[0].hooks.email: unknown key; the keys here are webhook, slack, command"},

		// Schedules.
		{"schedules not a list", oneClass + "      schedules: {periods: []}\n", "hangar.yml:6:7: fleet.classes[0].schedules: must be a list, got a mapping"},
		{"schedule null", oneClass + "      schedules:\n        -\n", "hangar.yml:7:10: fleet.classes[0].schedules[0]: must be a mapping with periods:, got null"},
		{"periods missing", oneClass + "      schedules:\n        - idle_count: 1\n", `hangar.yml:7:11: fleet.classes[0].schedules[0].periods: required: at least one cron expression, such as "* * 9-17 * * mon-fri *"`},
		{"periods empty", oneClass + "      schedules:\n        - periods: []\n", `hangar.yml:7:11: fleet.classes[0].schedules[0].periods: required: at least one cron expression, such as "* * 9-17 * * mon-fri *"`},
		{"period syntax", oneClass + "      schedules:\n        - periods: [\"* 25 * * *\"]\n", `hangar.yml:7:21: fleet.classes[0].schedules[0].periods[0]: "* 25 * * *" is not a cron expression: syntax error in hour field: '25'`},
		{"period too short", oneClass + "      schedules:\n        - periods: [\"* *\"]\n", `hangar.yml:7:21: fleet.classes[0].schedules[0].periods[0]: "* *" is not a cron expression: missing field(s)`},
		{"period too long", oneClass + "      schedules:\n        - periods: [\"* * * * * * * *\"]\n", `hangar.yml:7:21: fleet.classes[0].schedules[0].periods[0]: "* * * * * * * *" is not a cron expression: 8 fields, at most 7 (seconds, minutes, hours, days of month, months, days of week, years)`},
		{"period never", oneClass + "      schedules:\n        - periods: [\"0 0 30 2 *\"]\n", `hangar.yml:7:21: fleet.classes[0].schedules[0].periods[0]: "0 0 30 2 *" never matches (no second from 1970 to 2099)`},
		{"timezone", oneClass + "      schedules:\n        - periods: [\"* * * * *\"]\n          timezone: Europe/Berln\n", `hangar.yml:8:11: fleet.classes[0].schedules[0].timezone: must be an IANA time zone such as "Europe/Berlin": unknown time zone Europe/Berln`},
		{"schedule idle_count", oneClass + "      schedules:\n        - periods: [\"* * * * *\"]\n          idle_count: 9\n", "hangar.yml:8:11: fleet.classes[0].schedules[0].idle_count: must be at most max_instances (4), got 9"},
		{"schedule idle_count negative", oneClass + "      schedules:\n        - periods: [\"* * * * *\"]\n          idle_count: -1\n", "hangar.yml:8:11: fleet.classes[0].schedules[0].idle_count: must be 0 or more, got -1"},
		{"schedule idle_time", oneClass + "      schedules:\n        - periods: [\"* * * * *\"]\n          idle_time: -1m\n", "hangar.yml:8:11: fleet.classes[0].schedules[0].idle_time: must be 0 or more, got -1m0s"},
		{"schedule unknown key", oneClass + "      schedules:\n        - periods: [\"* * * * *\"]\n          timezon: UTC\n", `hangar.yml:8:11: fleet.classes[0].schedules[0].timezon: unknown key (did you mean "timezone"?)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := Load("hangar.yml", []byte(tt.src))
			if err == nil {
				t.Fatalf("Load: no error, want %s", tt.want)
			}
			if cfg != nil {
				t.Errorf("Load: a Config with the error")
			}
			var list ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("Load returned %T, want ErrorList: %v", err, err)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("Load:\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestLoadEveryError(t *testing.T) {
	t.Parallel()
	_, err := LoadFile("testdata/errors.yml")
	want := []string{
		"testdata/errors.yml:2:3: fleet.concurrent: must be 0 or more, got -1",
		`testdata/errors.yml:4:7: fleet.classes[0].name: must be lowercase letters, digits and hyphens, got "Small"`,
		`testdata/errors.yml:5:23: fleet.classes[0].labels[1]: must not contain a comma, got "a,b" (write each label as its own item)`,
		`testdata/errors.yml:6:7: fleet.classes[0].provider: must be one of docker, local, got "dokcer" (did you mean "docker"?)`,
		"testdata/errors.yml:7:7: fleet.classes[0].max_instances: must be more than 0, got 0",
		`testdata/errors.yml:8:7: fleet.classes[0].idle_tiem: unknown key (did you mean "idle_time"?)`,
		"testdata/errors.yml:12:7: fleet.classes[1].idle_count: must be 0 or more, got -2",
		"testdata/errors.yml:13:7: fleet.classes[1].target_percentile: must be more than 0 and less than 100, got 100",
		`testdata/errors.yml:15:21: fleet.classes[1].schedules[0].periods[0]: "* * 25 * * * *" is not a cron expression: syntax error in hour field: '25'`,
		`testdata/errors.yml:16:11: fleet.classes[1].schedules[0].timezone: must be an IANA time zone such as "Europe/Berlin": unknown time zone Mars/Olympus`,
		`testdata/errors.yml:18:9: fleet.classes[1].hooks.slack: must be an http or https URL, got "slack.example.com/hook"`,
	}
	if err == nil {
		t.Fatal("LoadFile: no error")
	}
	if got := strings.Split(err.Error(), "\n"); !reflect.DeepEqual(got, want) {
		t.Errorf("LoadFile:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(want, "\n     "))
	}
}

func TestLoadErrorsWrap(t *testing.T) {
	t.Parallel()
	_, err := LoadFile("testdata/missing.yml")
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("LoadFile of a missing file: %v, want fs.ErrNotExist", err)
	}

	_, err = Load("hangar.yml", []byte(oneClass+"      idle_time: 3 fortnights\n"))
	var de *duration.Error
	if !errors.As(err, &de) || de.Input != "3 fortnights" {
		t.Errorf("Load: %v, want a *duration.Error", err)
	}
	var d Diagnostic
	if !errors.As(err, &d) || d.Path != "fleet.classes[0].idle_time" || d.Line != 6 || d.Column != 7 || d.File != "hangar.yml" {
		t.Errorf("Load: %#v, want the Diagnostic of fleet.classes[0].idle_time at 6:7", d)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	good := Class{Name: "a", Provider: "local", MaxInstances: 2, CapacityPerInstance: 1, Policy: PolicyIdle, TargetPercentile: 90}
	tests := []struct {
		name   string
		change func(c *Config)
		want   string
	}{
		{"valid", func(*Config) {}, ""},
		{"zero values", func(c *Config) { c.Classes[0] = Class{} }, "fleet.classes[0].name: required: lowercase letters, digits and hyphens\n" +
			"fleet.classes[0].provider: required: one of docker, local\n" +
			"fleet.classes[0].max_instances: must be more than 0, got 0\n" +
			"fleet.classes[0].capacity_per_instance: must be 1 or more, got 0\n" +
			`fleet.classes[0].policy: must be one of idle, adaptive, static, per_job, got ""` + "\n" +
			"fleet.classes[0].target_percentile: must be more than 0 and less than 100, got 0"},
		{"schedule", func(c *Config) {
			c.Classes[0].Schedules = []Schedule{{Periods: []string{"nope"}, Timezone: "Nowhere/Town", IdleCount: 3}}
		}, `fleet.classes[0].schedules[0].periods[0]: "nope" is not a cron expression: missing field(s)` + "\n" +
			`fleet.classes[0].schedules[0].timezone: must be an IANA time zone such as "Europe/Berlin": unknown time zone Nowhere/Town` + "\n" +
			"fleet.classes[0].schedules[0].idle_count: must be at most max_instances (2), got 3"},
		{"duplicate and fallback", func(c *Config) {
			c.Classes = append(c.Classes, c.Classes[0])
			c.Classes[0].FallbackClass = "a"
		}, `fleet.classes[1].name: "a" is already the name of fleet.classes[0]` + "\n" +
			"fleet.classes[0].fallback_class: needs spot: true (the fallback class runs again what a spot instance's interruption stopped)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := &Config{Installation: "hangar", Classes: []Class{good}}
			tt.change(cfg)
			err := cfg.Validate()
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("Validate:\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestClassFor(t *testing.T) {
	t.Parallel()
	cfg := mustLoad(t, `
fleet:
  classes:
    - {name: small, labels: [linux, docker], provider: docker, max_instances: 1}
    - {name: big, labels: [linux, docker, large], provider: docker, max_instances: 1}
    - {name: mac, labels: [macos], provider: local, max_instances: 1}
`)
	tests := []struct {
		tags    []string
		want    string // the class's name, or the error
		wantErr bool
	}{
		{nil, "small", false},
		{[]string{"linux"}, "small", false},
		{[]string{"docker", "linux"}, "small", false},
		{[]string{"large"}, "big", false},
		{[]string{"linux", "large", "docker"}, "big", false},
		{[]string{"macos"}, "mac", false},
		{[]string{"gpu", "linux"}, "no runner class serves tags [gpu, linux]: classes are small [linux, docker], big [linux, docker, large], mac [macos]", true},
		{[]string{"macos", "linux"}, "no runner class serves tags [macos, linux]: classes are small [linux, docker], big [linux, docker, large], mac [macos]", true},
		{[]string{"Linux"}, "no runner class serves tags [Linux]: classes are small [linux, docker], big [linux, docker, large], mac [macos]", true},
	}
	for _, tt := range tests {
		c, err := cfg.ClassFor(tt.tags)
		switch {
		case tt.wantErr && err == nil:
			t.Errorf("ClassFor(%q) = %s, want error %s", tt.tags, c.Name, tt.want)
		case tt.wantErr && (err.Error() != tt.want || !errors.Is(err, ErrNoClass) || c != nil):
			t.Errorf("ClassFor(%q) = %v, %v\nwant error %s (ErrNoClass)", tt.tags, c, err, tt.want)
		case !tt.wantErr && err != nil:
			t.Errorf("ClassFor(%q): %v", tt.tags, err)
		case !tt.wantErr && c != &cfg.Classes[indexOf(cfg, tt.want)]:
			t.Errorf("ClassFor(%q) = %s, want %s", tt.tags, c.Name, tt.want)
		}
	}

	_, err := (&Config{}).ClassFor([]string{"linux"})
	if want := "no runner class serves tags [linux]: no classes are configured"; err == nil || err.Error() != want {
		t.Errorf("ClassFor with no classes: %v, want %s", err, want)
	}
}

func indexOf(cfg *Config, name string) int {
	for i, c := range cfg.Classes {
		if c.Name == name {
			return i
		}
	}
	return -1
}

// TestDocsExample loads the example of docs/configuration.md, so that the
// reference shows a file that works.
func TestDocsExample(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "```yaml\n")
	example, _, closed := strings.Cut(rest, "```")
	if !ok || !closed {
		t.Fatal("docs/configuration.md has no yaml example")
	}
	cfg := mustLoad(t, example)
	if len(cfg.Classes) != 2 || len(cfg.Classes[0].Schedules) != 1 {
		t.Errorf("the example has %d classes, want 2 and a schedule", len(cfg.Classes))
	}
	for _, tt := range []struct {
		tags []string
		want string
	}{{[]string{"linux"}, "small"}, {[]string{"docker", "linux"}, "small"}, {[]string{"large"}, "big"}} {
		if c, err := cfg.ClassFor(tt.tags); err != nil || c.Name != tt.want {
			t.Errorf("ClassFor(%q) = %v, %v; the text says %s", tt.tags, c, err, tt.want)
		}
	}
	// "On weekdays from 08:00:00 to 18:59:59, Berlin time, small keeps four
	// instances idle [...] At other times it keeps one".
	small := &cfg.Classes[0]
	for _, tt := range []struct {
		at    string
		count int
		idle  time.Duration
	}{
		{"2025-03-03T07:00:00+01:00", 1, 20 * time.Minute},
		{"2025-03-03T08:00:00+01:00", 4, 30 * time.Minute},
		{"2025-03-03T18:59:59+01:00", 4, 30 * time.Minute},
		{"2025-03-03T19:00:00+01:00", 1, 20 * time.Minute},
	} {
		if n, d := small.PoolAt(mustUTC(tt.at)); n != tt.count || d != tt.idle {
			t.Errorf("PoolAt(%s) = %d, %v; the text says %d, %v", tt.at, n, d, tt.count, tt.idle)
		}
	}
}

// uncompiled returns cfg without what Load compiled, for comparing with a
// Config written out.
func uncompiled(cfg *Config) *Config {
	for i := range cfg.Classes {
		for j := range cfg.Classes[i].Schedules {
			if cfg.Classes[i].Schedules[j].compiled == nil {
				panic("Load left a schedule uncompiled")
			}
			cfg.Classes[i].Schedules[j].compiled = nil
		}
	}
	return cfg
}
