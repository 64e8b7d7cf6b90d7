package local

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// This file reads /proc: who a pid is, and which processes belong to an
// instance's session.

// procStat is what the provider needs of /proc/<pid>/stat.
type procStat struct {
	state   byte   // R, S, D, Z, X...
	session int    // the session ID
	start   uint64 // start time, in clock ticks after boot
}

// readStat reads /proc/<pid>/stat.
func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	return parseStat(b)
}

// parseStat parses the text of /proc/<pid>/stat: "pid (comm) state ppid
// pgrp session ... starttime ...", where comm may hold anything, spaces
// and parentheses included.
func parseStat(b []byte) (procStat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, errors.New("proc stat: no command name")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state), so field n is f[n-3].
	if len(f) < 20 || len(f[0]) != 1 {
		return procStat{}, fmt.Errorf("proc stat: %d fields after the command name, want 20 or more", len(f))
	}
	session, err := strconv.Atoi(f[6-3])
	if err != nil {
		return procStat{}, fmt.Errorf("proc stat: session: %w", err)
	}
	start, err := strconv.ParseUint(f[22-3], 10, 64)
	if err != nil {
		return procStat{}, fmt.Errorf("proc stat: start time: %w", err)
	}
	return procStat{state: f[0][0], session: session, start: start}, nil
}

// dead reports whether a process in state s has ended (a zombie waits only
// for its parent to read its status).
func (s procStat) dead() bool {
	return s.state == 'Z' || s.state == 'X'
}

// bootID returns this boot's ID: start times count from the boot, so a
// record of another boot names no living process.
var bootID = sync.OnceValue(func() string {
	b, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	return strings.TrimSpace(string(b))
})

// pids lists the processes in /proc.
func pids() []int {
	entries, _ := os.ReadDir("/proc")
	out := make([]int, 0, len(entries))
	for _, e := range entries {
		if n, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, n)
		}
	}
	return out
}

// sessionMembers lists the living processes of session sid that started
// at or after notBefore (clock ticks after boot): the processes an
// instance's agent started, and the agent itself, but none that merely
// reuses a pid of an earlier boot-time process.
func sessionMembers(sid int, notBefore uint64) []int {
	var out []int
	for _, pid := range pids() {
		st, err := readStat(pid)
		if err == nil && st.session == sid && st.start >= notBefore && !st.dead() {
			out = append(out, pid)
		}
	}
	return out
}

// killSession sends SIGKILL to every process sessionMembers lists and
// returns how many there were.
func killSession(sid int, notBefore uint64) int {
	members := sessionMembers(sid, notBefore)
	for _, pid := range members {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	return len(members)
}

// findAgent finds the agent process whose command line holds arg (its
// --work-dir argument, which no other instance shares) and returns its
// pid and start time.
func findAgent(arg string) (int, uint64, bool) {
	want := []byte(arg)
	for _, pid := range pids() {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
		if err != nil {
			continue
		}
		for a := range bytes.SplitSeq(b, []byte{0}) {
			if bytes.Equal(a, want) {
				st, err := readStat(pid)
				if err != nil || st.dead() || st.session != pid {
					break // an agent the provider started leads its session
				}
				return pid, st.start, true
			}
		}
	}
	return 0, 0, false
}
