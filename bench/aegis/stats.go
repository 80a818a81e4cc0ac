package main

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/photoncloud/photoncloud/bench/internal/hoststat"
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
	s := cpuSample{at: time.Now(), self: hoststat.SelfCPU(), machine: hoststat.MachineBusy()}
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
	return time.Duration(ut+st) * time.Second / hoststat.ClockTick, nil
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
