// Command flashdns-bench compares FlashDNS's DNS data plane with NSD (and
// Knot DNS) on this machine under the same dnsperf load, and prints a
// markdown report with the FlashDNS/NSD ratio. `make bench-flashdns`
// (bench/flashdns/run.sh) builds it and fdserve from this tree and writes
// bench/flashdns/results.md. It measures the targets of issue 5
// (../shared/design/flashdns.md, "Targets"): throughput at least half of
// NSD's with average latency under 1 ms, p99 under 1 ms at moderate load,
// and memory per 100k records.
//
// # What one run does
//
//  1. Generates a zone (bench.test., -names host names, about 1.9 records
//     per name: A, every 2nd an AAAA, every 5th a TXT, every 10th an MX,
//     -names/10 CNAME aliases, a wildcard) and serves it together with the
//     rule zones of test/dnsdiff (example.com and its child, two reverse
//     zones).
//  2. Generates one dnsperf query file (-queries lines, fixed seed, random
//     order): 55% names that exist (A, some AAAA/TXT/MX), 15% NXDOMAIN,
//     10% CNAMEs (answered with the target's A), 10% wildcard matches, 5%
//     NODATA, 5% the dnsdiff corpus (every answer rule, REFUSED and
//     truncation included).
//  3. Starts every server of -servers, each its own process group on a
//     loopback port, from the same zone files: NSD 4.6 with Debian's build
//     and NSD's defaults (server-count -nsd-servers, one per core by
//     default, rate limiting off: Debian builds NSD with RRL, whose 200
//     answers/s per source would turn the benchmark into "slip"
//     truncations), Knot with -knot-workers UDP workers, FlashDNS as
//     -flashdns-cmd (by default fdserve, this directory's small wrapper of
//     internal/flashdns/zone + dnsserver; switch to bin/flashdns once it
//     serves zone files). All run at once, idle but for the one measured.
//  4. For each of -rounds rounds, for each server (the order rotates per
//     round, so no server always goes first): dnsperf for -warmup
//     (unmeasured), then the throughput window: dnsperf -c -clients -q
//     -outstanding -T -threads [-e] for -duration, as fast as the server
//     answers (closed loop: -outstanding queries in flight); then the
//     latency window: dnsperf -Q -latency-rate -v for -latency-duration,
//     every answer's latency recorded, for p50/p99/p99.9 at a moderate
//     load (dnsperf's own statistics give only average, min and max).
//  5. Memory (-mem-records, 0 skips): each server is started alone with a
//     three-record zone, then with a zone of -mem-records records, and
//     the difference of the process group's PSS (NSD forks, and its
//     children share the zone pages) is scaled to 100k records. FlashDNS
//     under fdserve also reports its live Go heap (after GC), which is
//     what the zone really occupies; RSS adds the GC's headroom.
//
// For every window the report gives queries/s, dnsperf's average/min/max
// latency, lost queries, the server's CPU per query (its process group,
// from /proc), dnsperf's CPU per query, and the share of the machine's CPU
// other processes used during the window ("other procs CPU %"): the
// machine is shared, so read that column before trusting a row, and
// prefer server CPU per query when raw throughput is noisy. dnsperf and
// the server share the cores (2 on the build machine), so throughput is
// the whole system's; CPU per query is the server's own cost.
//
// # Knobs
//
// Environment of run.sh: BENCH_DURATION (-duration), BENCH_WARMUP
// (-warmup), BENCH_ROUNDS (-rounds), BENCH_OUT (the markdown report,
// default bench/flashdns/results.md), BENCH_JSON (-json), BENCH_FLAGS
// (more flags). Flags: `go run ./bench/flashdns -h`. Examples:
//
//	BENCH_DURATION=3s BENCH_WARMUP=1s make bench-flashdns            # smoke run, under a minute
//	BENCH_ROUNDS=3 make bench-flashdns                               # a real measurement
//	BENCH_FLAGS="-servers nsd,flashdns -clients 16 -outstanding 200" make bench-flashdns
//	go run ./bench/flashdns -flashdns-cmd 'bin/flashdns --dns-addr {addr} ...' -servers nsd,flashdns
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

func main() {
	lg := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if err := run(lg, os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "flashdns-bench: %v\n", err)
		os.Exit(1)
	}
}

// config is everything one run needs; it is filled from flags.
type config struct {
	servers         []string
	flashdnsCmd     string
	fdserve         string
	ruleDir         string
	names           int
	queries         int
	duration        time.Duration
	warmup          time.Duration
	rounds          int
	clients         int
	outstanding     int
	threads         int
	edns            bool
	latencyRate     int
	latencyDuration time.Duration
	memRecords      int
	nsdServers      int
	knotWorkers     int
	dnsperf         string
	workDir         string
	out             string
	jsonOut         string
	targetRatio     float64
	targetAvg       time.Duration
	targetP99       time.Duration
}

func envDuration(name string, def time.Duration) time.Duration {
	if v := os.Getenv(name); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
	}
	return def
}

func envInt(name string, def int) int {
	if v := os.Getenv(name); v != "" {
		var n int
		if _, err := fmt.Sscan(v, &n); err == nil {
			return n
		}
	}
	return def
}

func parseFlags(args []string) (*config, error) {
	fs := flag.NewFlagSet("flashdns-bench", flag.ContinueOnError)
	c := &config{}
	var servers string
	fs.StringVar(&servers, "servers", "nsd,knot,flashdns", "servers to measure, in order (nsd, knot, flashdns); the ratio needs nsd and flashdns")
	fs.StringVar(&c.flashdnsCmd, "flashdns-cmd", "{fdserve} -addr {addr} {zones}",
		"command that serves the zones with FlashDNS; {addr} = loopback address to answer on, {zones} = '-zone origin=file' per zone, {zonelist} = origin=file,...; {fdserve} = -fdserve")
	fs.StringVar(&c.fdserve, "fdserve", "fdserve", "the fdserve binary (go build ./bench/flashdns/fdserve)")
	fs.StringVar(&c.ruleDir, "rule-zones", "test/dnsdiff", "directory of the dnsdiff package (its testdata/ holds the rule zones)")
	fs.IntVar(&c.names, "names", 10_000, "host names in the generated zone")
	fs.IntVar(&c.queries, "queries", 100_000, "lines of the dnsperf query file")
	fs.DurationVar(&c.duration, "duration", envDuration("BENCH_DURATION", 10*time.Second), "measured throughput window per server and round (env BENCH_DURATION)")
	fs.DurationVar(&c.warmup, "warmup", envDuration("BENCH_WARMUP", 2*time.Second), "unmeasured load before each server's windows (env BENCH_WARMUP)")
	fs.IntVar(&c.rounds, "rounds", envInt("BENCH_ROUNDS", 1), "rounds, interleaved; a server's windows are pooled over them (env BENCH_ROUNDS)")
	fs.IntVar(&c.clients, "clients", 8, "dnsperf -c: client sockets")
	fs.IntVar(&c.outstanding, "outstanding", 100, "dnsperf -q: queries in flight")
	fs.IntVar(&c.threads, "threads", 1, "dnsperf -T: threads")
	fs.BoolVar(&c.edns, "edns", true, "dnsperf -e: send EDNS0 (as resolvers do)")
	fs.IntVar(&c.latencyRate, "latency-rate", 20_000, "latency window: dnsperf -Q queries/s (0 skips the window)")
	fs.DurationVar(&c.latencyDuration, "latency-duration", 5*time.Second, "latency window length")
	fs.IntVar(&c.memRecords, "mem-records", 100_000, "records of the memory measurement's zone (0 skips it)")
	fs.IntVar(&c.nsdServers, "nsd-servers", runtime.NumCPU(), "NSD server-count (NSD's advice: one per core)")
	fs.IntVar(&c.knotWorkers, "knot-workers", runtime.NumCPU(), "knotd udp-workers (Knot's default: one per core)")
	fs.StringVar(&c.dnsperf, "dnsperf", "dnsperf", "the dnsperf binary")
	fs.StringVar(&c.workDir, "workdir", "", "zones, query file and server state (default: a new temp dir, removed at the end)")
	fs.StringVar(&c.out, "out", "", "write the markdown report to this file")
	fs.StringVar(&c.jsonOut, "json", "", "write the raw results as JSON to this file")
	fs.Float64Var(&c.targetRatio, "target-ratio", 0.5, "target: FlashDNS/NSD queries/s")
	fs.DurationVar(&c.targetAvg, "target-avg", time.Millisecond, "target: FlashDNS average latency in the throughput window")
	fs.DurationVar(&c.targetP99, "target-p99", time.Millisecond, "target: FlashDNS p99 latency in the latency window")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	for s := range strings.SplitSeq(servers, ",") {
		if s = strings.TrimSpace(s); s != "" {
			if _, err := c.starter(s); err != nil {
				return nil, err
			}
			c.servers = append(c.servers, s)
		}
	}
	if len(c.servers) == 0 {
		return nil, fmt.Errorf("no -servers")
	}
	if c.duration <= 0 || c.warmup < 0 || c.rounds < 1 || c.names < 10 || c.queries < 100 || c.clients < 1 || c.outstanding < 1 || c.threads < 1 {
		return nil, fmt.Errorf("-duration, -rounds, -clients, -outstanding, -threads must be positive, -names >= 10, -queries >= 100")
	}
	return c, nil
}

// results is everything a run measured, for the report and -json.
type results struct {
	Env      *environment      `json:"environment"`
	Zone     zoneInfo          `json:"zone"`
	Windows  []*window         `json:"windows"`
	Memory   []*memResult      `json:"memory,omitempty"`
	Versions map[string]string `json:"versions"`
}

type zoneInfo struct {
	Names      int            `json:"names"`
	Records    int            `json:"records"`
	RuleZones  []string       `json:"rule_zones"`
	Queries    int            `json:"queries"`
	QueryKinds map[string]int `json:"query_kinds"`
}

// window is one measured dnsperf run against one server.
type window struct {
	Server    string        `json:"server"`
	Round     int           `json:"round"`
	Kind      string        `json:"kind"` // "throughput" or "latency"
	Perf      *perfRun      `json:"dnsperf"`
	ServerCPU time.Duration `json:"server_cpu_ns"`
	OtherCPU  float64       `json:"other_cpu_percent"`
}

const (
	kindThroughput = "throughput"
	kindLatency    = "latency"
)

// memResult is one server's memory with the baseline and the large zone.
type memResult struct {
	Server   string `json:"server"`
	Records  int    `json:"records"`
	BasePSS  int64  `json:"base_pss"`
	LoadPSS  int64  `json:"load_pss"`
	BaseRSS  int64  `json:"base_rss"`
	LoadRSS  int64  `json:"load_rss"`
	BaseHeap int64  `json:"base_heap"` // -1: not reported
	LoadHeap int64  `json:"load_heap"`
}

func run(lg *slog.Logger, args []string) error {
	c, err := parseFlags(args)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if c.dnsperf, err = exec.LookPath(c.dnsperf); err != nil {
		return fmt.Errorf("dnsperf not found (Debian: apt-get install dnsperf): %w", err)
	}
	workDir := c.workDir
	if workDir == "" {
		if workDir, err = os.MkdirTemp("", "bench-flashdns-"); err != nil {
			return fmt.Errorf("create work dir: %w", err)
		}
		defer os.RemoveAll(workDir)
	}
	res := &results{Env: captureEnv(), Versions: map[string]string{}}
	for _, s := range c.servers {
		res.Versions[s] = versionOf(s, c)
	}

	ruleZones, rules, err := ruleQueries(c.ruleDir)
	if err != nil {
		return fmt.Errorf("rule zones: %w", err)
	}
	zonePath := filepath.Join(workDir, "bench.test.zone")
	records, err := genZone(zonePath, c.names)
	if err != nil {
		return err
	}
	zones := []zoneFile{{benchOrigin, zonePath}}
	for _, z := range ruleZones {
		zones = append(zones, zoneFile{z.Origin, z.File})
		res.Zone.RuleZones = append(res.Zone.RuleZones, z.Origin)
	}
	queryPath := filepath.Join(workDir, "queries.txt")
	kinds, err := genQueries(queryPath, c.queries, c.names, rules)
	if err != nil {
		return err
	}
	res.Zone = zoneInfo{Names: c.names, Records: records, RuleZones: res.Zone.RuleZones, Queries: c.queries, QueryKinds: kinds}
	lg.Info("zone and queries generated", "records", records, "queries", c.queries)

	if err := runWindows(ctx, lg, c, zones, queryPath, workDir, res); err != nil {
		return err
	}
	if c.memRecords > 0 {
		if res.Memory, err = measureMemory(ctx, lg, c, workDir); err != nil {
			return err
		}
	}
	res.Env.LoadAfter = loadAvg()
	res.Env.SpeedAfter = referenceSpeed()

	md := (&report{cfg: c, res: res}).markdown()
	fmt.Print(md)
	if c.out != "" {
		if err := os.WriteFile(c.out, []byte(md), 0o644); err != nil {
			return fmt.Errorf("write report: %w", err)
		}
		lg.Info("markdown written", "file", c.out)
	}
	if c.jsonOut != "" {
		b, err := json.MarshalIndent(res, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(c.jsonOut, b, 0o644); err != nil {
			return fmt.Errorf("write json: %w", err)
		}
	}
	return nil
}

// runWindows starts every server and runs the interleaved rounds.
func runWindows(ctx context.Context, lg *slog.Logger, c *config, zones []zoneFile, queryPath, workDir string, res *results) error {
	var srvs []*server
	defer func() {
		for _, s := range srvs {
			if err := s.stop(); err != nil {
				lg.Warn("stop server", "server", s.name, "err", err)
			}
		}
	}()
	for _, name := range c.servers {
		start, _ := c.starter(name)
		s, err := start(ctx, zones, filepath.Join(workDir, "run-"+name))
		if err != nil {
			return fmt.Errorf("start %s: %w", name, err)
		}
		lg.Info("server ready", "server", name, "addr", s.addr, "pid", s.pgid)
		srvs = append(srvs, s)
	}
	base := perfArgs{file: queryPath, clients: c.clients, outstanding: c.outstanding, threads: c.threads, edns: c.edns}
	for round := range c.rounds {
		for i := range srvs {
			s := srvs[(i+round)%len(srvs)]
			a := base
			a.addr = s.addr
			if c.warmup > 0 {
				a.seconds = c.warmup.Seconds()
				if _, err := runDnsperf(ctx, c.dnsperf, a); err != nil {
					return fmt.Errorf("%s warmup: %w", s.name, err)
				}
			}
			a.seconds = c.duration.Seconds()
			w, err := measure(ctx, c, s, a, round, kindThroughput)
			if err != nil {
				return err
			}
			lg.Info("throughput", "server", s.name, "round", round+1, "qps", int(w.Perf.QPS), "avg", w.Perf.AvgLat,
				"lost", w.Perf.Lost, "other_cpu", fmt.Sprintf("%.0f%%", w.OtherCPU))
			res.Windows = append(res.Windows, w)
			if c.latencyRate > 0 {
				a.seconds, a.rate, a.verbose = c.latencyDuration.Seconds(), c.latencyRate, true
				w, err := measure(ctx, c, s, a, round, kindLatency)
				if err != nil {
					return err
				}
				lg.Info("latency", "server", s.name, "round", round+1, "qps", int(w.Perf.QPS), "p50", w.Perf.Lat.P50,
					"p99", w.Perf.Lat.P99, "other_cpu", fmt.Sprintf("%.0f%%", w.OtherCPU))
				res.Windows = append(res.Windows, w)
			}
		}
	}
	return nil
}

func measure(ctx context.Context, c *config, s *server, a perfArgs, round int, kind string) (*window, error) {
	before := sampleWindow(s.pgid)
	p, err := runDnsperf(ctx, c.dnsperf, a)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", s.name, kind, err)
	}
	after := sampleWindow(s.pgid)
	return &window{Server: s.name, Round: round + 1, Kind: kind, Perf: p, ServerCPU: after.server - before.server,
		OtherCPU: otherPercent(before, after, p.CPU)}, nil
}

// measureMemory starts each server alone, first with a minimal zone and
// then with a zone of -mem-records records, and records the memory of its
// process group once it has settled.
func measureMemory(ctx context.Context, lg *slog.Logger, c *config, workDir string) ([]*memResult, error) {
	minPath := filepath.Join(workDir, "mem-min.zone")
	if err := os.WriteFile(minPath, []byte(minimalZone), 0o644); err != nil {
		return nil, err
	}
	bigPath := filepath.Join(workDir, "mem-big.zone")
	records, err := genRecordsZone(bigPath, c.memRecords)
	if err != nil {
		return nil, err
	}
	var out []*memResult
	for _, name := range c.servers {
		start, _ := c.starter(name)
		m := &memResult{Server: name, Records: records - 3}
		for i, path := range []string{minPath, bigPath} {
			s, err := start(ctx, []zoneFile{{benchOrigin, path}}, filepath.Join(workDir, fmt.Sprintf("mem-%s-%d", name, i)))
			if err != nil {
				return nil, fmt.Errorf("memory: start %s: %w", name, err)
			}
			// Let the server finish what it does after it first answers
			// (NSD forks its servers, Go returns scavenged memory).
			select {
			case <-time.After(time.Second):
			case <-ctx.Done():
			}
			pss, rss := groupMemory(s.pgid)
			if err := s.stop(); err != nil {
				lg.Warn("stop server", "server", name, "err", err)
			}
			if i == 0 {
				m.BasePSS, m.BaseRSS, m.BaseHeap = pss, rss, s.heapLive
			} else {
				m.LoadPSS, m.LoadRSS, m.LoadHeap = pss, rss, s.heapLive
			}
		}
		lg.Info("memory", "server", name, "records", m.Records, "pss_delta_mib", float64(m.LoadPSS-m.BasePSS)/(1<<20))
		out = append(out, m)
	}
	return out, ctx.Err()
}
