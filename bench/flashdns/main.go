// Command flashdns-bench compares FlashDNS with NSD (and Knot DNS) on this
// machine under the same dnsperf load, and prints a markdown report with
// the FlashDNS/NSD ratio. FlashDNS is the product as deployed: bin/flashdns
// on a bin/chainfire, its zones imported through the flashdns.v1 API.
// `make bench-flashdns` (bench/flashdns/run.sh) builds it, flashdns and
// chainfire from this tree into a temp dir and writes
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
//  3. Starts every server of -servers, each its own process group on
//     loopback ports, with the same zones: NSD 4.6 with Debian's build and
//     NSD's defaults (server-count -nsd-servers, one per core by default,
//     rate limiting off: Debian builds NSD with RRL, whose 200 answers/s
//     per source would turn the benchmark into "slip" truncations), Knot
//     with -knot-workers UDP workers, both from the zone files; FlashDNS
//     as deployed: a single-member chainfire (data under the work dir)
//     and flashdns --auth none on it (--dns-sockets -flashdns-sockets, by
//     default one per core), both from -bin-dir, each its own process
//     group; every zone file is imported through the flashdns.v1 API
//     (ImportZone, all into one project, as the rule zones nest
//     sub.example.com in example.com) and the run waits until DNS answers
//     each zone's SOA with the serial the import acknowledged. All servers
//     run at once, idle but for the one measured.
//  4. For each of -rounds rounds, for each server (the order rotates per
//     round, so no server always goes first): dnsperf for -warmup
//     (unmeasured), then the throughput window: dnsperf -c -clients -q
//     -outstanding -T -threads [-e] for -duration, as fast as the server
//     answers (closed loop: -outstanding queries in flight; -duration 0
//     skips it); then the latency window: dnsperf -Q -latency-rate -v for
//     -latency-duration, every answer's latency recorded, for
//     p50/p99/p99.9 at a moderate load (dnsperf's own statistics give only
//     average, min and max).
//  5. Memory (-mem-records, 0 skips): NSD and Knot are started alone with
//     a three-record zone, then with a zone of -mem-records records (the
//     generated shape, every 10th host with two addresses: 100k records
//     in single-record sets would exceed FlashDNS's limit of 100,000
//     record sets per zone), and
//     the difference of the process group's PSS (NSD forks, and its
//     children share the zone pages) is scaled to 100k records. FlashDNS
//     gets a fresh chainfire and flashdns: the three-record zone is
//     imported through the API, then replaced by the large one (ImportZone
//     with replace_existing); the flashdns process and, apart, chainfire
//     (which holds the zone too) are measured after each, and flashdns
//     once more after a restart on the loaded chainfire (a replica that
//     did not write the zone). Their Go heap comes from /metrics: in use
//     (go_memstats_heap_inuse_bytes) and live at the last GC (the heap
//     goal over 1 + GOGC/100).
//
// For every window the report gives queries/s, dnsperf's average/min/max
// latency, lost queries, the server's CPU per query (its process group,
// from /proc; for FlashDNS the flashdns process), Chainfire's CPU per
// query for FlashDNS (it idles under the read-only load), dnsperf's CPU
// per query, and the share of the machine's CPU other processes used
// during the window ("other procs CPU %"): the machine is shared, so read
// that column before trusting a row, and prefer server CPU per query when
// raw throughput is noisy. dnsperf and the server share the cores (2 on
// the build machine), so throughput is the whole system's; CPU per query
// is the server's own cost.
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
//	go run ./bench/flashdns -bin-dir bin -servers nsd,flashdns        # measure bin/ as it is
//	go run ./bench/flashdns -bin-dir bin -memory-only                 # step 5 alone
//	go run ./bench/flashdns -bin-dir bin -duration 0 -mem-records 0   # the paced latency window alone
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

	"github.com/photoncloud/photoncloud/bench/internal/hoststat"
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
	binDir          string
	fdSockets       int
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
	memoryOnly      bool
	nsdServers      int
	knotWorkers     int
	dnsperf         string
	workDir         string
	out             string
	jsonOut         string
	targetRatio     float64
	targetAvg       time.Duration
	targetP99       time.Duration
	lg              *slog.Logger
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
	fs.StringVar(&c.binDir, "bin-dir", "bin", "directory holding the flashdns and chainfire binaries to measure")
	fs.IntVar(&c.fdSockets, "flashdns-sockets", 0, "flashdns --dns-sockets: SO_REUSEPORT sockets per protocol (0: FlashDNS's default, one per core)")
	fs.StringVar(&c.ruleDir, "rule-zones", "test/dnsdiff", "directory of the dnsdiff package (its testdata/ holds the rule zones)")
	fs.IntVar(&c.names, "names", 10_000, "host names in the generated zone")
	fs.IntVar(&c.queries, "queries", 100_000, "lines of the dnsperf query file")
	fs.DurationVar(&c.duration, "duration", envDuration("BENCH_DURATION", 10*time.Second), "measured throughput window per server and round; 0 skips it, leaving the latency window alone (env BENCH_DURATION)")
	fs.DurationVar(&c.warmup, "warmup", envDuration("BENCH_WARMUP", 2*time.Second), "unmeasured load before each server's windows (env BENCH_WARMUP)")
	fs.IntVar(&c.rounds, "rounds", envInt("BENCH_ROUNDS", 1), "rounds, interleaved; a server's windows are pooled over them (env BENCH_ROUNDS)")
	fs.IntVar(&c.clients, "clients", 8, "dnsperf -c: client sockets")
	fs.IntVar(&c.outstanding, "outstanding", 100, "dnsperf -q: queries in flight")
	fs.IntVar(&c.threads, "threads", 1, "dnsperf -T: threads")
	fs.BoolVar(&c.edns, "edns", true, "dnsperf -e: send EDNS0 (as resolvers do)")
	fs.IntVar(&c.latencyRate, "latency-rate", 20_000, "latency window: dnsperf -Q queries/s (0 skips the window)")
	fs.DurationVar(&c.latencyDuration, "latency-duration", 5*time.Second, "latency window length")
	fs.IntVar(&c.memRecords, "mem-records", 100_000, "records of the memory measurement's zone (0 skips it)")
	fs.BoolVar(&c.memoryOnly, "memory-only", false, "measure memory only (skip the query windows)")
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
	if c.duration < 0 || c.warmup < 0 || c.rounds < 1 || c.names < 10 || c.queries < 100 || c.clients < 1 || c.outstanding < 1 || c.threads < 1 {
		return nil, fmt.Errorf("-rounds, -clients, -outstanding, -threads must be positive, -duration and -warmup not negative, -names >= 10, -queries >= 100")
	}
	if c.duration == 0 && c.latencyRate <= 0 {
		return nil, fmt.Errorf("-duration 0 and -latency-rate 0 leave nothing to measure")
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
	// StoreCPU is the CPU of the server's store over the window
	// (FlashDNS's Chainfire), -1 for servers without one.
	StoreCPU time.Duration `json:"store_cpu_ns"`
	OtherCPU float64       `json:"other_cpu_percent"`
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
	BaseHeap int64  `json:"base_heap"` // Go heap in use; -1: not reported
	LoadHeap int64  `json:"load_heap"`
	BaseLive int64  `json:"base_heap_live"` // Go live heap at the last GC (estimate); -1: not reported
	LoadLive int64  `json:"load_heap_live"`
}

// Rows of the memory table besides the -servers names.
const (
	memFlashDNSRestarted = "flashdns, restarted"
	memTotal             = "flashdns + chainfire"
)

func run(lg *slog.Logger, args []string) error {
	c, err := parseFlags(args)
	if err != nil {
		return err
	}
	c.lg = lg
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
		if s == srvFlashDNS {
			res.Versions[srvChainfire] = versionOf(srvChainfire, c)
		}
	}

	ruleZones, rules, err := ruleQueries(c.ruleDir)
	if err != nil {
		return fmt.Errorf("rule zones: %w", err)
	}
	zonePath := filepath.Join(workDir, "bench.test.zone")
	records, err := genZone(zonePath, c.names, 0)
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

	if c.memoryOnly && c.memRecords <= 0 {
		return fmt.Errorf("-memory-only needs -mem-records > 0")
	}
	if !c.memoryOnly {
		if err := runWindows(ctx, lg, c, zones, queryPath, workDir, res); err != nil {
			return err
		}
	}
	if c.memRecords > 0 {
		if res.Memory, err = measureMemory(ctx, lg, c, workDir); err != nil {
			return err
		}
	}
	res.Env.LoadAfter = hoststat.LoadAvg()
	res.Env.SpeedAfter = hoststat.ReferenceSpeed()

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
		lg.Info("server ready", "server", name, "addr", s.addr, "pid", s.pgid, "store_pid", s.storePgid)
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
			if c.duration > 0 {
				a.seconds = c.duration.Seconds()
				w, err := measure(ctx, c, s, a, round, kindThroughput)
				if err != nil {
					return err
				}
				lg.Info("throughput", "server", s.name, "round", round+1, "qps", int(w.Perf.QPS), "avg", w.Perf.AvgLat,
					"lost", w.Perf.Lost, "other_cpu", fmt.Sprintf("%.0f%%", w.OtherCPU))
				res.Windows = append(res.Windows, w)
			}
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
	before := sampleWindow(s.pgid, s.storePgid)
	p, err := runDnsperf(ctx, c.dnsperf, a)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", s.name, kind, err)
	}
	after := sampleWindow(s.pgid, s.storePgid)
	w := &window{Server: s.name, Round: round + 1, Kind: kind, Perf: p, ServerCPU: after.server - before.server,
		OtherCPU: otherPercent(before, after, p.CPU)}
	w.StoreCPU = -1
	if s.storePgid != 0 {
		w.StoreCPU = after.store - before.store
	}
	return w, nil
}

// measureMemory measures each server's memory alone, first with a
// minimal zone and then with a zone of -mem-records records. NSD and Knot
// are started afresh with each zone file and measured once they have
// settled. FlashDNS is one fresh stack: the minimal zone is imported
// through the API, then replaced by the large one (ImportZone with
// replace_existing), and FlashDNS and its Chainfire are measured after
// each.
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
	minZone, bigZone := zoneFile{benchOrigin, minPath}, zoneFile{benchOrigin, bigPath}
	var out []*memResult
	for _, name := range c.servers {
		if name == srvFlashDNS {
			ms, err := measureFlashDNSMemory(ctx, lg, c, minZone, bigZone, records-minimalRecords, filepath.Join(workDir, "mem-flashdns"))
			if err != nil {
				return nil, fmt.Errorf("memory: %w", err)
			}
			out = append(out, ms...)
			continue
		}
		start, _ := c.starter(name)
		m := &memResult{Server: name, Records: records - minimalRecords, BaseHeap: -1, LoadHeap: -1, BaseLive: -1, LoadLive: -1}
		for i, z := range []zoneFile{minZone, bigZone} {
			s, err := start(ctx, []zoneFile{z}, filepath.Join(workDir, fmt.Sprintf("mem-%s-%d", name, i)))
			if err != nil {
				return nil, fmt.Errorf("memory: start %s: %w", name, err)
			}
			// Let the server finish what it does after it first answers
			// (NSD forks its servers).
			settle(ctx)
			pss, rss := groupMemory(s.pgid)
			if err := s.stop(); err != nil {
				lg.Warn("stop server", "server", name, "err", err)
			}
			if i == 0 {
				m.BasePSS, m.BaseRSS = pss, rss
			} else {
				m.LoadPSS, m.LoadRSS = pss, rss
			}
		}
		lg.Info("memory", "server", name, "records", m.Records, "pss_delta_mib", float64(m.LoadPSS-m.BasePSS)/(1<<20))
		out = append(out, m)
	}
	return out, ctx.Err()
}

// measureFlashDNSMemory returns FlashDNS's and its Chainfire's memory
// with the minimal zone and with the large one, both imported through the
// API into one stack, and FlashDNS's once more after a restart on the
// loaded Chainfire (against the same base).
func measureFlashDNSMemory(ctx context.Context, lg *slog.Logger, c *config, minZone, bigZone zoneFile, records int, dir string) ([]*memResult, error) {
	st, err := c.startStack(ctx, lg, dir)
	if err != nil {
		return nil, err
	}
	defer st.stop(lg)
	fd := &memResult{Server: srvFlashDNS, Records: records}
	cf := &memResult{Server: srvChainfire, Records: records}
	var serials map[string]uint32
	for i, z := range []zoneFile{minZone, bigZone} {
		start := time.Now()
		if serials, err = st.importZones(ctx, []zoneFile{z}, i > 0); err != nil {
			return nil, fmt.Errorf("%w; flashdns log tail:\n%s", err, st.fd.logTail())
		}
		lg.Info("zone imported", "file", filepath.Base(z.file), "took", time.Since(start).Round(time.Millisecond))
		// Let the import's garbage and Chainfire's flushes settle as the
		// other servers' start-up does.
		settle(ctx)
		f, s := sampleMemory(ctx, st.fd, st.fdHTTP), sampleMemory(ctx, st.cf, st.cfHTTP)
		if i == 0 {
			fd.BasePSS, fd.BaseRSS, fd.BaseHeap, fd.BaseLive = f.pss, f.rss, f.heap, f.live
			cf.BasePSS, cf.BaseRSS, cf.BaseHeap, cf.BaseLive = s.pss, s.rss, s.heap, s.live
		} else {
			fd.LoadPSS, fd.LoadRSS, fd.LoadHeap, fd.LoadLive = f.pss, f.rss, f.heap, f.live
			cf.LoadPSS, cf.LoadRSS, cf.LoadHeap, cf.LoadLive = s.pss, s.rss, s.heap, s.live
		}
	}
	// The replica that imported a zone holds on to memory the import
	// used; one that loads it from Chainfire (every other replica, and
	// this one after a restart) is what a zone costs in steady state.
	start := time.Now()
	if err := st.restartFlashDNS(ctx, lg, c); err != nil {
		return nil, fmt.Errorf("restart flashdns: %w", err)
	}
	wctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	if err := waitSerials(wctx, st.dnsAddr, serials, st.fd.exited); err != nil {
		return nil, fmt.Errorf("restarted flashdns: %w", err)
	}
	lg.Info("flashdns restarted on the loaded store", "took", time.Since(start).Round(time.Millisecond))
	settle(ctx)
	f := sampleMemory(ctx, st.fd, st.fdHTTP)
	re := *fd
	re.Server = memFlashDNSRestarted
	re.LoadPSS, re.LoadRSS, re.LoadHeap, re.LoadLive = f.pss, f.rss, f.heap, f.live
	out := []*memResult{fd, &re, cf}
	for _, m := range out {
		lg.Info("memory", "server", m.Server, "records", m.Records, "pss_delta_mib", float64(m.LoadPSS-m.BasePSS)/(1<<20),
			"heap_live_delta_mib", float64(m.LoadLive-m.BaseLive)/(1<<20))
	}
	return out, ctx.Err()
}

// settle waits a second (or until ctx ends).
func settle(ctx context.Context) {
	select {
	case <-time.After(time.Second):
	case <-ctx.Done():
	}
}
