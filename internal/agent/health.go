package agent

import (
	"bufio"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hangar-ci/hangar/internal/api"
)

// healthProbe measures the disk and memory of the agent's machine. The
// size of the work dir is a walk, so it is refreshed at most every
// dirEvery.
type healthProbe struct {
	dir string

	mu       sync.Mutex
	dirBytes int64
	dirAt    time.Time
}

const dirEvery = 30 * time.Second

func (h *healthProbe) read(running int) api.Health {
	out := api.Health{RunningJobs: running}
	var st syscall.Statfs_t
	if syscall.Statfs(h.dir, &st) == nil {
		out.DiskTotalBytes = int64(st.Blocks) * int64(st.Bsize)
		out.DiskFreeBytes = int64(st.Bavail) * int64(st.Bsize)
	}
	out.MemTotalBytes, out.MemAvailBytes = memInfo()
	h.mu.Lock()
	if time.Since(h.dirAt) > dirEvery {
		h.dirBytes, h.dirAt = dirSize(h.dir), time.Now()
	}
	out.WorkDirBytes = h.dirBytes
	h.mu.Unlock()
	return out
}

// memInfo reads MemTotal and MemAvailable from /proc/meminfo (0 where it
// cannot be read).
func memInfo() (total, avail int64) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		kb, err := strconv.ParseInt(fields[1], 10, 64)
		if err != nil {
			continue
		}
		switch fields[0] {
		case "MemTotal:":
			total = kb << 10
		case "MemAvailable:":
			avail = kb << 10
		}
	}
	return total, avail
}

func dirSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}
