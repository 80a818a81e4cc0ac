package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// perfRun is one dnsperf invocation and what it reported.
type perfRun struct {
	Sent      int64            `json:"sent"`
	Completed int64            `json:"completed"`
	Lost      int64            `json:"lost"`
	RunTime   float64          `json:"run_time_s"`
	QPS       float64          `json:"qps"`
	AvgLat    time.Duration    `json:"avg_latency_ns"`
	MinLat    time.Duration    `json:"min_latency_ns"`
	MaxLat    time.Duration    `json:"max_latency_ns"`
	StdDevLat time.Duration    `json:"stddev_latency_ns"`
	Rcodes    map[string]int64 `json:"rcodes"`
	// Lat summarizes the per-query latencies of a verbose (-v) run.
	Lat *latencies `json:"latencies,omitempty"`
	// CPU is dnsperf's own user+system time.
	CPU time.Duration `json:"cpu_ns"`
}

// perfArgs are dnsperf's options for one run.
type perfArgs struct {
	addr        string // host:port
	file        string
	clients     int
	outstanding int
	threads     int
	seconds     float64
	edns        bool
	rate        int  // -Q; 0 = as fast as it can
	verbose     bool // -v: one line per answer with its latency
}

func (a perfArgs) list() ([]string, error) {
	host, port, ok := strings.Cut(a.addr, ":")
	if !ok {
		return nil, fmt.Errorf("dnsperf target %q: want host:port", a.addr)
	}
	args := []string{"-s", host, "-p", port, "-d", a.file,
		"-c", strconv.Itoa(a.clients), "-q", strconv.Itoa(a.outstanding), "-T", strconv.Itoa(a.threads),
		"-l", strconv.FormatFloat(a.seconds, 'f', -1, 64),
		// A query unanswered for a second is lost, not slow: on loopback
		// nothing legitimate takes that long, and a short timeout keeps
		// a stalled server from hiding behind dnsperf's 5 s default.
		"-t", "1"}
	if a.edns {
		args = append(args, "-e")
	}
	if a.rate > 0 {
		args = append(args, "-Q", strconv.Itoa(a.rate))
	}
	if a.verbose {
		args = append(args, "-v")
	}
	return args, nil
}

// runDnsperf runs dnsperf and parses its statistics (and, verbose, every
// answer's latency).
func runDnsperf(ctx context.Context, bin string, a perfArgs) (*perfRun, error) {
	args, err := a.list()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start dnsperf: %w", err)
	}
	// Verbose output is one line per answer (hundreds of thousands): the
	// latencies are parsed as they stream, the rest is kept for the
	// statistics block.
	var rest bytes.Buffer
	lats, perr := scanOutput(stdout, &rest)
	werr := cmd.Wait()
	if werr != nil {
		return nil, fmt.Errorf("dnsperf %s: %w\n%s%s", strings.Join(args, " "), werr, tailLines(rest.String(), 20), stderr.String())
	}
	if perr != nil {
		return nil, perr
	}
	r, err := parseStats(rest.String())
	if err != nil {
		return nil, fmt.Errorf("%w\n%s", err, stderr.String())
	}
	if a.verbose {
		l := summarize(lats)
		r.Lat = &l
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.CPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	return r, nil
}

// scanOutput splits dnsperf's stdout: "> RCODE name type latency" lines
// (verbose mode) become latencies, everything else goes to rest.
func scanOutput(r io.Reader, rest *bytes.Buffer) ([]time.Duration, error) {
	var lats []time.Duration
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if d, ok := parseVerboseLine(line); ok {
			lats = append(lats, d)
			continue
		}
		rest.WriteString(line)
		rest.WriteByte('\n')
	}
	return lats, sc.Err()
}

// parseVerboseLine reads one answer line of dnsperf -v, e.g.
// "> NOERROR www.example.com A 0.000189": the last field is the latency in
// seconds.
func parseVerboseLine(line string) (time.Duration, bool) {
	if !strings.HasPrefix(line, "> ") {
		return 0, false
	}
	f := strings.Fields(line)
	if len(f) < 3 {
		return 0, false
	}
	s, err := strconv.ParseFloat(f[len(f)-1], 64)
	if err != nil {
		return 0, false
	}
	return time.Duration(s * float64(time.Second)), true
}

// parseStats reads the "Statistics:" block dnsperf prints at the end.
func parseStats(out string) (*perfRun, error) {
	i := strings.Index(out, "Statistics:")
	if i < 0 {
		return nil, errors.New("dnsperf printed no statistics")
	}
	r := &perfRun{Rcodes: map[string]int64{}}
	seen := 0
	for line := range strings.SplitSeq(out[i:], "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		first := func() string { f, _, _ := strings.Cut(v, " "); return f }
		var err error
		switch k {
		case "Queries sent":
			r.Sent, err = strconv.ParseInt(first(), 10, 64)
			seen++
		case "Queries completed":
			r.Completed, err = strconv.ParseInt(first(), 10, 64)
			seen++
		case "Queries lost":
			r.Lost, err = strconv.ParseInt(first(), 10, 64)
		case "Run time (s)":
			r.RunTime, err = strconv.ParseFloat(first(), 64)
		case "Queries per second":
			r.QPS, err = strconv.ParseFloat(first(), 64)
			seen++
		case "Average Latency (s)":
			// "0.000191 (min 0.000006, max 0.002156)"
			r.AvgLat, err = seconds(first())
			if err == nil {
				r.MinLat, r.MaxLat, err = minMax(v)
			}
		case "Latency StdDev (s)":
			r.StdDevLat, err = seconds(first())
		case "Response codes":
			// "NOERROR 287377 (75.00%), NXDOMAIN 95792 (25.00%)"
			for part := range strings.SplitSeq(v, ",") {
				f := strings.Fields(part)
				if len(f) >= 2 {
					n, perr := strconv.ParseInt(f[1], 10, 64)
					if perr != nil {
						err = perr
						break
					}
					r.Rcodes[f[0]] = n
				}
			}
		}
		if err != nil {
			return nil, fmt.Errorf("dnsperf statistics line %q: %w", line, err)
		}
	}
	if seen < 3 {
		return nil, fmt.Errorf("dnsperf statistics incomplete:\n%s", out[i:])
	}
	return r, nil
}

func seconds(s string) (time.Duration, error) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, err
	}
	return time.Duration(f * float64(time.Second)), nil
}

// minMax reads "(min 0.000006, max 0.002156)" out of the average latency
// line.
func minMax(v string) (time.Duration, time.Duration, error) {
	i, j := strings.Index(v, "("), strings.Index(v, ")")
	if i < 0 || j < i {
		return 0, 0, nil // older dnsperf: no min/max
	}
	var lo, hi time.Duration
	for part := range strings.SplitSeq(v[i+1:j], ",") {
		f := strings.Fields(part)
		if len(f) != 2 {
			continue
		}
		d, err := seconds(f[1])
		if err != nil {
			return 0, 0, err
		}
		switch f[0] {
		case "min":
			lo = d
		case "max":
			hi = d
		}
	}
	return lo, hi, nil
}

// latencies summarises the per-answer latencies of a verbose run.
type latencies struct {
	N    int           `json:"n"`
	P50  time.Duration `json:"p50_ns"`
	P90  time.Duration `json:"p90_ns"`
	P99  time.Duration `json:"p99_ns"`
	P999 time.Duration `json:"p999_ns"`
	Max  time.Duration `json:"max_ns"`
}

// summarize takes nearest-rank percentiles (no interpolation: every
// number is a latency some answer had), as bench/aegis does.
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

func tailLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n") + "\n"
}
