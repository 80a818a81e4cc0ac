// Package hoststat reads what the benchmarks report about the machine
// they ran on, beside their own numbers: the CPU time of all processes
// (to show how quiet the machine was), the load generator's own CPU, the
// load average, and a reference speed to compare runs on a shared VM.
package hoststat

import (
	"crypto/sha256"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ClockTick is USER_HZ, the unit of the times in /proc/stat and
// /proc/<pid>/stat: 100 on every Linux architecture Go supports.
const ClockTick = 100

// MachineBusy is the CPU time all processes of the machine have used so
// far (/proc/stat: everything but idle and iowait); 0 when unreadable.
func MachineBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0
	}
	var ticks int64
	// user nice system idle iowait irq softirq steal
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		v, _ := strconv.ParseInt(f[i], 10, 64)
		ticks += v
	}
	return time.Duration(ticks) * time.Second / ClockTick
}

// SelfCPU is this process's own user+system CPU time so far.
func SelfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// LoadAvg is the 1, 5 and 15 minute load averages, "?" when unreadable.
func LoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// ReferenceSpeed is SHA-256 throughput on one core, in MB/s: a fixed piece
// of work timed before and after a run. The build machine is a shared
// virtual machine whose speed drifts with its neighbours' load in ways
// /proc/stat does not show, so runs are comparable only when this is too.
func ReferenceSpeed() float64 {
	buf := make([]byte, 1<<20)
	// The best of five short runs: the first pays for page faults and
	// frequency ramp-up, and a preempted run says nothing about speed.
	best := 0.0
	for range 5 {
		start := time.Now()
		n := 0
		for time.Since(start) < 50*time.Millisecond {
			sha256.Sum256(buf)
			n++
		}
		best = max(best, float64(n)*float64(len(buf))/1e6/time.Since(start).Seconds())
	}
	return best
}
