package main

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/photoncloud/photoncloud/bench/internal/hoststat"
)

// groupPids lists the processes in process group pgid: a server and the
// workers it forked (NSD's server and xfrd processes). Every server is
// started as the leader of its own group.
func groupPids(pgid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return []int{pgid}
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if f := procStat(pid); len(f) > 2 {
			if g, _ := strconv.Atoi(f[2]); g == pgid {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// procStat returns the fields of /proc/<pid>/stat after the command name
// (state is field 0), nil if the process is gone.
func procStat(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(s[i+1:])
}

// groupCPU is the user+system CPU time the processes of group pgid have
// used so far.
func groupCPU(pgid int) time.Duration {
	var ticks int64
	for _, pid := range groupPids(pgid) {
		f := procStat(pid)
		if len(f) < 13 {
			continue
		}
		// utime and stime are fields 14 and 15 of stat, 11 and 12 here.
		u, _ := strconv.ParseInt(f[11], 10, 64)
		s, _ := strconv.ParseInt(f[12], 10, 64)
		ticks += u + s
	}
	return time.Duration(ticks) * time.Second / hoststat.ClockTick
}

// groupMemory is the memory of group pgid: the sum of the processes'
// proportional set size (PSS: pages shared between NSD's forked processes
// are split between them, not counted once per process), and of their
// RSS. Both in bytes.
func groupMemory(pgid int) (pss, rss int64) {
	for _, pid := range groupPids(pgid) {
		pss += smapsField(pid, "Pss:")
		rss += smapsField(pid, "Rss:")
	}
	return pss, rss
}

// smapsField reads a kB line of /proc/<pid>/smaps_rollup.
func smapsField(pid int, key string) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) >= 2 && fs[0] == key {
			kb, _ := strconv.ParseInt(fs[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// cpuWindow measures the CPU used during one dnsperf run: by the server's
// process group, by its store's (FlashDNS's Chainfire), by the machine and
// by this program.
type cpuWindow struct {
	at                           time.Time
	server, store, machine, self time.Duration
}

// sampleWindow samples the CPU so far; storePgid 0 means no store.
func sampleWindow(pgid, storePgid int) cpuWindow {
	w := cpuWindow{at: time.Now(), server: groupCPU(pgid), machine: hoststat.MachineBusy(), self: hoststat.SelfCPU()}
	if storePgid != 0 {
		w.store = groupCPU(storePgid)
	}
	return w
}

// otherPercent is the share of all cores that processes other than the
// server and its store, dnsperf (loadgen, measured by its rusage) and this
// program used between a and b: outside contention on a shared machine.
func otherPercent(a, b cpuWindow, loadgen time.Duration) float64 {
	used := b.machine - a.machine - (b.server - a.server) - (b.store - a.store) - (b.self - a.self) - loadgen
	win := b.at.Sub(a.at)
	if win <= 0 {
		return 0
	}
	return max(0, 100*float64(used)/float64(win)/float64(runtime.NumCPU()))
}
