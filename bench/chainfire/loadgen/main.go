// Command loadgen benchmarks Chainfire against etcd on this machine with one
// etcd v3 client load generator (clientv3), so both servers see exactly the
// same requests.
//
// For every row (workload x client shape) it starts each server in turn as a
// fresh single member (data dir under one temp dir, same quota, loopback
// ports), pre-populates the keyspace, runs a warmup and then a measured
// window, samples the server's CPU time, disk writes, RSS and fsync counters
// around that window, and stops the server. The servers never run at once, so
// they do not compete for the cores; the order alternates per row so that
// slow drift in background load does not always favour the same server.
//
// It prints a comparison table and writes it, with per-operation cost
// details, as markdown (default bench/chainfire/results.md).
//
// With -cluster every row runs on a fresh 3-member cluster instead: puts
// to the leader or spread over all members, reads spread over all members,
// a watch fan-out (one writer, 100 watchers, delivery latency) and the time
// to a new leader and to the first acknowledged write after kill -9 of the
// leader (cluster.go, watch.go, failover.go).
package main

import (
	"context"
	"crypto/sha256"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/photoncloud/photoncloud/bench/internal/hoststat"
)

func main() {
	lg := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if err := run(lg, os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "loadgen: %v\n", err)
		os.Exit(1)
	}
}

// config is everything one benchmark run needs; it is filled from flags.
type config struct {
	binDir       string
	servers      []string
	workloads    []string
	shapes       []shape
	duration     time.Duration
	warmup       time.Duration
	keys         int
	valueSize    int
	quota        int64
	workDir      string
	out          string
	jsonOut      string
	attach       string
	attachDir    string
	rounds       int
	countSyncs   bool
	cpuProfile   string
	p99Tolerance float64

	// Cluster mode.
	cluster        bool
	clusterRows    []clusterRow
	members        int
	watchers       int
	watchRate      float64
	failoverTrials int
}

// shape is a number of concurrent clients spread over a number of gRPC
// connections.
type shape struct {
	clients int
	conns   int
}

func (s shape) String() string { return fmt.Sprintf("%d/%d", s.clients, s.conns) }

func run(lg *slog.Logger, args []string) error {
	cfg, err := parseFlags(args)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if cfg.cpuProfile != "" {
		f, err := os.Create(cfg.cpuProfile)
		if err != nil {
			return fmt.Errorf("create cpu profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("start cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}

	workDir := cfg.workDir
	if workDir == "" {
		workDir, err = os.MkdirTemp("", "bench-chainfire-")
		if err != nil {
			return fmt.Errorf("create work dir: %w", err)
		}
		defer os.RemoveAll(workDir)
	}
	env := captureEnv(workDir)
	env.binaries = map[string]string{}
	for _, srv := range cfg.servers {
		id, err := binaryID(filepath.Join(cfg.binDir, serverKinds[srv].binary))
		if err != nil {
			return err
		}
		env.binaries[srv] = id
	}
	lg.Info("benchmark starting", "servers", strings.Join(cfg.servers, ","), "workloads", strings.Join(cfg.workloads, ","),
		"cluster", cfg.cluster, "duration", cfg.duration, "warmup", cfg.warmup, "workdir", workDir, "loadavg", env.loadBefore)

	b := &bench{cfg: cfg, lg: lg, workDir: workDir}
	if cfg.cluster {
		return b.runCluster(ctx, env)
	}
	type rowKey struct {
		server, workload string
		sh               shape
	}
	rounds := map[rowKey][]*rowResult{}
	for round := range cfg.rounds {
		row := 0
		for _, w := range cfg.workloads {
			for _, sh := range cfg.shapes {
				order := append([]string(nil), cfg.servers...)
				if (row+round)%2 == 1 {
					// Alternate which server goes first so drift in the
					// machine's background load does not always hit the
					// same one.
					slices.Reverse(order)
				}
				for _, srv := range order {
					res, err := b.runRow(ctx, srv, w, sh, round*1000+row)
					if err != nil {
						return fmt.Errorf("%s %s %s: %w", srv, w, sh, err)
					}
					lg.Info("row done", "round", round+1, "server", srv, "workload", w, "clients", sh.clients, "conns", sh.conns,
						"ops/s", fmt.Sprintf("%.0f", res.throughput()), "p50", res.P50, "p99", res.P99, "errors", res.Errors,
						"other_cpu", fmt.Sprintf("%.0f%%", res.otherCPUPercent()))
					k := rowKey{srv, w, sh}
					rounds[k] = append(rounds[k], res)
				}
				row++
			}
		}
	}
	var results []*rowResult
	for _, w := range cfg.workloads {
		for _, sh := range cfg.shapes {
			for _, srv := range cfg.servers {
				results = append(results, pool(rounds[rowKey{srv, w, sh}]))
			}
		}
	}
	env.loadAfter = hoststat.LoadAvg()

	rep := buildReport(cfg, env, results)
	fmt.Print(rep.text())
	if cfg.out != "" {
		if err := os.WriteFile(cfg.out, []byte(rep.markdown()), 0o644); err != nil {
			return fmt.Errorf("write report: %w", err)
		}
		lg.Info("markdown written", "file", cfg.out)
	}
	if cfg.jsonOut != "" {
		if err := writeJSON(cfg.jsonOut, results); err != nil {
			return err
		}
	}
	return nil
}

func parseFlags(args []string) (*config, error) {
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	cfg := &config{}
	var servers, workloads, shapes string
	defBin := os.Getenv("PHOTON_BIN_DIR")
	if defBin == "" {
		defBin = "bin"
	}
	fs.StringVar(&cfg.binDir, "bin-dir", defBin, "directory holding the etcd and chainfire binaries (env PHOTON_BIN_DIR)")
	fs.StringVar(&servers, "servers", "etcd,chainfire", "servers to benchmark; the first is the baseline of the ratio")
	fs.StringVar(&workloads, "workloads", "", "workloads to run (default "+strings.Join(allWorkloads, ",")+
		"; with -cluster "+strings.Join(defaultClusterRows, ",")+", where @leader sends every request to the leader and @all spreads requests round robin over all members)")
	fs.StringVar(&shapes, "shapes", "1/1,64/8", "comma-separated clients/connections shapes")
	fs.DurationVar(&cfg.duration, "duration", envDuration("BENCH_DURATION", 10*time.Second), "measured time per row (env BENCH_DURATION)")
	fs.DurationVar(&cfg.warmup, "warmup", envDuration("BENCH_WARMUP", 2*time.Second), "unmeasured load before each row (env BENCH_WARMUP)")
	fs.IntVar(&cfg.keys, "keys", 10000, "size of the keyspace, pre-populated before every row")
	fs.IntVar(&cfg.valueSize, "value-size", 256, "value size in bytes")
	fs.Int64Var(&cfg.quota, "quota-backend-bytes", 4<<30, "--quota-backend-bytes given to both servers")
	fs.StringVar(&cfg.workDir, "workdir", "", "parent of the servers' data dirs and logs (default: a new temp dir, removed at the end)")
	fs.StringVar(&cfg.out, "out", "", "write the markdown report to this file")
	fs.StringVar(&cfg.jsonOut, "json", "", "write the raw per-row results as JSON to this file")
	fs.StringVar(&cfg.attach, "attach", "", "command run on the server during each measured window and stopped with SIGINT; "+
		"{pid} and {out} are substituted, e.g. 'strace -f -c -o {out} -p {pid}' or 'perf record -g -F 499 -o {out} -p {pid}'")
	fs.StringVar(&cfg.attachDir, "attach-dir", ".", "directory of the -attach outputs ({out} = <dir>/<server>-<workload>-<clients>.attach)")
	fs.IntVar(&cfg.rounds, "rounds", envInt("BENCH_ROUNDS", 1), "measure every row this many times, interleaved, and pool the rounds (env BENCH_ROUNDS)")
	fs.StringVar(&cfg.cpuProfile, "cpuprofile", "", "write a CPU profile of the load generator itself to this file")
	fs.Float64Var(&cfg.p99Tolerance, "p99-tolerance", 0.10, "relative p99 difference still reported as on par")
	fs.BoolVar(&cfg.countSyncs, "count-syncs", true, "count the servers' fdatasync/fsync/sync_file_range calls with `perf stat` (skipped if perf is missing or cannot trace)")
	fs.BoolVar(&cfg.cluster, "cluster", false, "cluster mode: every row on a fresh multi-member cluster of each server (see -workloads, -members)")
	fs.IntVar(&cfg.members, "members", 3, "cluster mode: members per cluster")
	fs.IntVar(&cfg.watchers, "watchers", 100, "cluster mode: watchers of the watch fan-out row, spread over the members")
	fs.Float64Var(&cfg.watchRate, "watch-rate", 100, "cluster mode: puts per second of the watch fan-out writer")
	fs.IntVar(&cfg.failoverTrials, "failover-trials", 5, "cluster mode: leader kills per server and round")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	cfg.servers = splitList(servers)
	for _, s := range cfg.servers {
		if _, ok := serverKinds[s]; !ok {
			return nil, fmt.Errorf("unknown server %q", s)
		}
	}
	cfg.workloads = splitList(workloads)
	switch {
	case cfg.cluster:
		if len(cfg.workloads) == 0 {
			cfg.workloads = defaultClusterRows
		}
		for _, w := range cfg.workloads {
			cr, err := parseClusterRow(w)
			if err != nil {
				return nil, err
			}
			cfg.clusterRows = append(cfg.clusterRows, cr)
		}
		if cfg.members < 1 || cfg.watchers < 1 || cfg.watchRate <= 0 || cfg.failoverTrials < 1 {
			return nil, fmt.Errorf("-members, -watchers, -watch-rate and -failover-trials must be positive")
		}
		if cfg.members < 3 && slices.Contains(cfg.workloads, wFailover) {
			return nil, fmt.Errorf("failover needs at least 3 members (a quorum must survive the kill)")
		}
	case len(cfg.workloads) == 0:
		cfg.workloads = allWorkloads
	}
	for _, w := range cfg.workloads {
		if !cfg.cluster && !isWorkload(w) {
			return nil, fmt.Errorf("unknown workload %q (have %s)", w, strings.Join(allWorkloads, ","))
		}
	}
	for _, s := range splitList(shapes) {
		c, n, ok := strings.Cut(s, "/")
		clients, err1 := strconv.Atoi(c)
		conns, err2 := strconv.Atoi(n)
		if !ok || err1 != nil || err2 != nil || clients < 1 || conns < 1 || conns > clients {
			return nil, fmt.Errorf("bad shape %q: want clients/conns with 1 <= conns <= clients", s)
		}
		cfg.shapes = append(cfg.shapes, shape{clients: clients, conns: conns})
	}
	if len(cfg.servers) == 0 || len(cfg.workloads) == 0 || len(cfg.shapes) == 0 {
		return nil, fmt.Errorf("need at least one server, workload and shape")
	}
	if cfg.duration <= 0 || cfg.warmup < 0 || cfg.keys < 1 || cfg.valueSize < 0 || cfg.rounds < 1 {
		return nil, fmt.Errorf("duration, keys, rounds must be positive and warmup, value-size not negative")
	}
	if _, err := exec.LookPath("perf"); err != nil {
		cfg.countSyncs = false
	}
	abs, err := filepath.Abs(cfg.binDir)
	if err != nil {
		return nil, err
	}
	cfg.binDir = abs
	return cfg, nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func envInt(name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		fmt.Fprintf(os.Stderr, "loadgen: ignoring %s=%q: %v\n", name, v, err)
		return def
	}
	return n
}

func envDuration(name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		// A bare number means seconds, the unit people type in a hurry.
		if n, err2 := strconv.Atoi(v); err2 == nil {
			return time.Duration(n) * time.Second
		}
		fmt.Fprintf(os.Stderr, "loadgen: ignoring %s=%q: %v\n", name, v, err)
		return def
	}
	return d
}

// environment describes the machine the numbers come from.
type environment struct {
	date       string
	goVersion  string
	cpu        string
	cores      int
	kernel     string
	fs         string
	loadBefore string
	loadAfter  string
	// binaries maps each server to its version line and content hash, so a
	// table can be traced to the build it measured.
	binaries map[string]string
}

func captureEnv(workDir string) *environment {
	e := &environment{
		date:       time.Now().UTC().Format(time.RFC3339),
		goVersion:  runtime.Version(),
		cores:      runtime.NumCPU(),
		loadBefore: hoststat.LoadAvg(),
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				e.cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		e.kernel = strings.TrimSpace(string(b))
	}
	e.fs = fsOf(workDir)
	return e
}

// binaryID is the first line of `<bin> --version` plus the start of the
// binary's SHA-256.
func binaryID(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read server binary: %w", err)
	}
	sum := sha256.Sum256(b)
	out, err := exec.Command(path, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("%s --version: %w", path, err)
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return fmt.Sprintf("%s (sha256 %x)", line, sum[:6]), nil
}

// fsOf names the filesystem type and device holding dir, from /proc/mounts
// (longest matching mount point wins).
func fsOf(dir string) string {
	b, err := os.ReadFile("/proc/mounts")
	if err != nil {
		return "?"
	}
	best, bestLen := "?", -1
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 3 {
			continue
		}
		mp := f[1]
		if (dir == mp || strings.HasPrefix(dir, strings.TrimSuffix(mp, "/")+"/")) && len(mp) > bestLen {
			best, bestLen = fmt.Sprintf("%s on %s (%s)", mp, f[0], f[2]), len(mp)
		}
	}
	return best
}
