package main

import (
	"strings"
	"testing"
)

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
		got, err := parseBytes(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestExecutorFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		err  string
	}{
		{args: []string{"run", "--docker-memory", "1g", "."}, err: "--docker-memory is for --executor docker, and the executor is shell"},
		{args: []string{"agent", "--server", "http://x", "--token", "t", "--docker-privileged"}, err: "--docker-privileged is for --executor docker"},
		{args: []string{"agent", "--server", "http://x", "--token", "t", "--executor", "podman"}, err: `--executor "podman": want shell or docker`},
		{args: []string{"run", "--server", "http://x", "--executor", "docker", "."}, err: "with --server the server's agents decide"},
	} {
		code, _, stderr := hangar(t, tc.args...)
		if code == exitOK || !strings.Contains(stderr, tc.err) {
			t.Errorf("hangar %v: exit %d, stderr %q; want a failure saying %q", tc.args, code, stderr, tc.err)
		}
	}
}
