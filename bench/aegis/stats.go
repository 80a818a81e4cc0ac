package main

import (
	"crypto/sha256"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// latencies summarises every recorded call of a window.
type latencies struct {
	N    int           `json:"n"`
	P50  time.Duration `json:"p50_ns"`
	P90  time.Duration `json:"p90_ns"`
	P99  time.Duration `json:"p99_ns"`
	P999 time.Duration `json:"p999_ns"`
	Max  time.Duration `json:"max_ns"`
}

// summarize sorts l and takes nearest-rank percentiles: the p-th
// percentile is the smallest value with at least p% of the calls at or
// below it (no interpolation, so every number is a latency some call had).
func summarize(l []time.Duration) latencies {
	if len(l) == 0 {
		return latencies{}
	}
	slices.Sort(l)
	q := func(p float64) time.Duration {
		rank := int(p*float64(len(l)) + 0.999999)
		return l[min(max(rank, 1), len(l))-1]
	}
	return latencies{N: len(l), P50: q(0.50), P90: q(0.90), P99: q(0.99), P999: q(0.999), Max: l[len(l)-1]}
}

// cpuSample is the CPU time used so far by this process, by the machine
// and by the server processes, at one instant.
type cpuSample struct {
	at      time.Time
	self    time.Duration
	machine time.Duration
	procs   []time.Duration // in the order of the pids given to sampleCPU
}

func sampleCPU(pids ...int) cpuSample {
	s := cpuSample{at: time.Now(), self: selfCPU(), machine: machineBusy()}
	for _, pid := range pids {
		c, _ := procCPU(pid)
		s.procs = append(s.procs, c)
	}
	return s
}

// procDelta is the CPU process i used between two samples.
func procDelta(a, b cpuSample, i int) time.Duration {
	if i >= len(a.procs) || i >= len(b.procs) {
		return 0
	}
	return b.procs[i] - a.procs[i]
}

// otherCPUPercent is the share of all the machine's cores that processes
// other than this one and the sampled servers used between a and b: the
// outside contention (other builders on a shared machine) of a window.
func otherCPUPercent(a, b cpuSample) float64 {
	used := b.machine - a.machine - (b.self - a.self)
	for i := range a.procs {
		used -= procDelta(a, b, i)
	}
	win := b.at.Sub(a.at)
	if win <= 0 {
		return 0
	}
	return max(0, 100*float64(used)/float64(win)/float64(runtime.NumCPU()))
}

// clockTick is USER_HZ, 100 on every Linux architecture Go supports.
const clockTick = 100

// procCPU is a process's user+system CPU time so far (/proc/<pid>/stat).
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name (which may contain spaces) start at
	// field 3 (state); utime and stime are fields 14 and 15.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / clockTick, nil
}

// procRSS is a process's resident set size in bytes.
func procRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/statm", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}

// machineBusy is the CPU time all processes of the machine have used so
// far (/proc/stat: everything but idle and iowait).
func machineBusy() time.Duration {
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
	return time.Duration(ticks) * time.Second / clockTick
}

// selfCPU is this process's own user+system CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func loadAvg() string {
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

// referenceSpeed is SHA-256 throughput on one core, in MB/s: a fixed piece
// of work timed before and after the run. The build machine is a shared
// virtual machine whose speed drifts with its neighbours' load in ways
// /proc/stat does not show, so runs are comparable only when this is too.
func referenceSpeed() float64 {
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
