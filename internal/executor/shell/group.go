package shell

import (
	"bytes"
	"errors"
	"os"
	"strconv"
	"syscall"
	"time"
)

// stopGroup ends process group pgid: SIGTERM to every member, then, once no
// member is alive or KillGrace has passed, SIGKILL to whatever is left. It
// returns at once if the group is empty.
func (s *session) stopGroup(pgid int) {
	if err := syscall.Kill(-pgid, syscall.SIGTERM); errors.Is(err, syscall.ESRCH) {
		return
	}
	// SIGKILL in any case: it fails harmlessly (ESRCH) if all are gone.
	defer func() { _ = syscall.Kill(-pgid, syscall.SIGKILL) }()
	grace := time.NewTimer(s.ex.cfg.KillGrace)
	defer grace.Stop()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for groupAlive(pgid) {
		select {
		case <-grace.C:
			return
		case <-tick.C:
		}
	}
}

// groupAlive reports whether process group pgid has a member that is not a
// zombie. Zombies count because orphans are reaped by PID 1, and in some
// containers PID 1 never reaps; where /proc cannot tell, any member counts.
func groupAlive(pgid int) bool {
	if err := syscall.Kill(-pgid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	live, ok := liveMember(pgid)
	return live || !ok
}

// liveMember scans /proc for a process of group pgid that is not a zombie.
// ok is false if /proc cannot be read.
func liveMember(pgid int) (live, ok bool) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return false, false
	}
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // exited meanwhile
		}
		// "pid (comm) state ppid pgrp ..."; comm may hold anything, so
		// fields are counted from the last ')'.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := bytes.Fields(stat[i+1:])
		if len(f) < 3 {
			continue
		}
		if g, err := strconv.Atoi(string(f[2])); err != nil || g != pgid {
			continue
		}
		if state := string(f[0]); state != "Z" && state != "X" {
			return true, true
		}
	}
	return false, true
}
