// Command aegis-bench measures Aegis on this machine against the
// performance targets of issue 4 and prints a markdown report:
//
//   - in-process decision latency of policy.Evaluator.Authorize with 1k,
//     100k and 1M bindings (p50/p99/p99.9 over every call, load time,
//     live heap);
//   - gRPC AuthzService.Authorize throughput and latency on loopback
//     against a real Aegis (bin/aegis on bin/chainfire, each its own
//     process, loaded with 10k bindings through the admin API) with 1, 16
//     and 64 concurrent callers;
//   - token issuance per second at /oauth2/token: client_credentials
//     grants (the target) and password grants (argon2id, for
//     information).
//
// Every row gives its target and whether it is met, the CPU the servers
// and this load generator spent per call (from /proc), and the CPU other
// processes used during the window, since the build machine is shared.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	aegisv1 "github.com/photoncloud/photoncloud/api/aegis/v1"
	"github.com/photoncloud/photoncloud/bench/internal/hoststat"
)

func main() {
	lg := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if err := run(lg, os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "aegis-bench: %v\n", err)
		os.Exit(1)
	}
}

// Parts of a run, in order.
const (
	partInproc = "inproc"
	partAuthz  = "authz"
	partTokens = "tokens"
)

// config is everything one run needs; it is filled from flags.
type config struct {
	binDir           string
	parts            []string
	sizes            []int
	inprocDuration   time.Duration
	duration         time.Duration
	warmup           time.Duration
	authzBindings    int
	shapes           []shape
	tokenShapes      []shape
	rates            []float64
	allowPathShape   *shape
	rateShape        shape
	ccClients        []int
	passwordClients  []int
	workDir          string
	out              string
	jsonOut          string
	attach           string
	attachDir        string
	aegisLogLevel    string
	cpuProfile       string
	inprocTargetP99  time.Duration
	authzTargetRate  float64
	authzTargetP99   time.Duration
	tokenTargetRate  float64
	inprocTargetSize int
}

// shape is a number of concurrent clients spread over a number of
// connections.
type shape struct {
	clients int
	conns   int
}

func (s shape) String() string { return fmt.Sprintf("%d/%d", s.clients, s.conns) }

// bench is one run.
type bench struct {
	cfg *config
	lg  *slog.Logger
	st  *stack
	fx  *fixture
}

// results is everything a run measured, for the report and -json.
type results struct {
	Env      *environment    `json:"environment"`
	Inproc   []*inprocResult `json:"inproc,omitempty"`
	Populate *populateInfo   `json:"populate,omitempty"`
	Authz    []*window       `json:"authorize,omitempty"`
	Tokens   []*window       `json:"tokens,omitempty"`
}

type populateInfo struct {
	Bindings int           `json:"bindings"`
	Writes   int           `json:"writes"`
	Took     time.Duration `json:"took_ns"`
}

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
		if workDir, err = os.MkdirTemp("", "bench-aegis-"); err != nil {
			return fmt.Errorf("create work dir: %w", err)
		}
		defer os.RemoveAll(workDir)
	}
	res := &results{Env: captureEnv(workDir)}
	lg.Info("benchmark starting", "parts", strings.Join(cfg.parts, ","), "duration", cfg.duration, "warmup", cfg.warmup,
		"loadavg", res.Env.LoadBefore)

	if slices.Contains(cfg.parts, partInproc) {
		for _, n := range cfg.sizes {
			r, err := runInproc(ctx, lg, n, cfg.inprocDuration)
			if err != nil {
				return err
			}
			if n == cfg.inprocTargetSize {
				r.TargetP99 = cfg.inprocTargetP99
			}
			lg.Info("in-process done", "bindings", n, "p50", r.Lat.P50, "p99", r.Lat.P99, "p99.9", r.Lat.P999,
				"other_cpu", fmt.Sprintf("%.0f%%", r.OtherCPU))
			res.Inproc = append(res.Inproc, r)
			// Give the next size (and the servers) the memory back.
			runtime.GC()
		}
	}
	if slices.Contains(cfg.parts, partAuthz) || slices.Contains(cfg.parts, partTokens) {
		if err := runServers(ctx, lg, cfg, workDir, res); err != nil {
			return err
		}
	}
	res.Env.LoadAfter = hoststat.LoadAvg()
	res.Env.SpeedAfter = hoststat.ReferenceSpeed()

	rep := &report{cfg: cfg, res: res}
	fmt.Print(rep.markdown())
	if cfg.out != "" {
		if err := os.WriteFile(cfg.out, []byte(rep.markdown()), 0o644); err != nil {
			return fmt.Errorf("write report: %w", err)
		}
		lg.Info("markdown written", "file", cfg.out)
	}
	if cfg.jsonOut != "" {
		if err := writeJSON(cfg.jsonOut, res); err != nil {
			return err
		}
	}
	return nil
}

// runServers starts Chainfire and Aegis, loads the world and runs the
// Authorize and token rows.
func runServers(ctx context.Context, lg *slog.Logger, cfg *config, workDir string, res *results) error {
	for _, b := range []string{"aegis", "chainfire"} {
		id, err := binaryID(filepath.Join(cfg.binDir, b))
		if err != nil {
			return err
		}
		res.Env.Binaries = append(res.Env.Binaries, b+": "+id)
	}
	st, err := startStack(ctx, lg, cfg, filepath.Join(workDir, "servers"))
	if err != nil {
		return err
	}
	defer st.stop(lg)
	w := genWorld(cfg.authzBindings, 1<<16, 42)
	fx, err := populate(ctx, lg, st, w)
	if err != nil {
		return fmt.Errorf("populate: %w; aegis log tail:\n%s", err, tail(st.aegis.logPath, 20))
	}
	res.Populate = &populateInfo{Bindings: len(w.bindings), Writes: fx.writes, Took: fx.took}
	lg.Info("populated", "bindings", len(w.bindings), "writes", fx.writes, "took", fx.took.Round(time.Millisecond))
	t0 := time.Now()
	if err := waitAuditDrained(ctx, st); err != nil {
		return fmt.Errorf("wait for the audit backlog: %w", err)
	}
	lg.Info("audit backlog written", "waited", time.Since(t0).Round(time.Millisecond))
	b := &bench{cfg: cfg, lg: lg, st: st, fx: fx}

	if slices.Contains(cfg.parts, partAuthz) {
		reqs := principalRequests(w)
		for _, sh := range cfg.shapes {
			r, err := b.runAuthorize(ctx, subjectPrincipal, reqs, sh, 0)
			if err != nil {
				return err
			}
			res.Authz = append(res.Authz, r)
		}
		if cfg.allowPathShape != nil {
			r, err := b.runAuthorize(ctx, subjectAllowPath, principalRequests(allowPathOnly(w)), *cfg.allowPathShape, 0)
			if err != nil {
				return err
			}
			res.Authz = append(res.Authz, r)
		}
		for _, rate := range cfg.rates {
			r, err := b.runAuthorize(ctx, subjectPrincipal, reqs, cfg.rateShape, rate)
			if err != nil {
				return err
			}
			res.Authz = append(res.Authz, r)
		}
		if len(cfg.tokenShapes) > 0 {
			var treqs []*aegisv1.AuthorizeRequest
			if treqs, err = tokenRequests(ctx, "http://"+st.httpAddr, fx.subjectKeys, 1<<14); err != nil {
				return err
			}
			for _, sh := range cfg.tokenShapes {
				r, err := b.runAuthorize(ctx, subjectToken, treqs, sh, 0)
				if err != nil {
					return err
				}
				res.Authz = append(res.Authz, r)
			}
		}
	}
	if slices.Contains(cfg.parts, partTokens) {
		for _, grant := range []string{grantClientCredentials, grantPassword} {
			clients := cfg.ccClients
			if grant == grantPassword {
				clients = cfg.passwordClients
			}
			for _, c := range clients {
				r, err := b.runTokens(ctx, grant, c)
				if err != nil {
					return err
				}
				res.Tokens = append(res.Tokens, r)
			}
		}
	}
	return nil
}

func parseFlags(args []string) (*config, error) {
	fs := flag.NewFlagSet("aegis-bench", flag.ContinueOnError)
	cfg := &config{}
	var parts, sizes, shapes, tokenShapes, cc, pw, rates, rateShape, allowShape string
	defBin := os.Getenv("PHOTON_BIN_DIR")
	if defBin == "" {
		defBin = "bin"
	}
	fs.StringVar(&cfg.binDir, "bin-dir", defBin, "directory holding the aegis and chainfire binaries (env PHOTON_BIN_DIR)")
	fs.StringVar(&parts, "parts", "inproc,authz,tokens", "what to measure: inproc (evaluator in this process), authz (gRPC Authorize), tokens (/oauth2/token)")
	fs.StringVar(&sizes, "sizes", "1k,100k,1M", "in-process: numbers of bindings (k and M suffixes)")
	fs.DurationVar(&cfg.inprocDuration, "inproc-duration", envDuration("BENCH_INPROC_DURATION", 5*time.Second), "in-process: measured time per size (env BENCH_INPROC_DURATION)")
	fs.DurationVar(&cfg.duration, "duration", envDuration("BENCH_DURATION", 10*time.Second), "measured time per server row (env BENCH_DURATION)")
	fs.DurationVar(&cfg.warmup, "warmup", envDuration("BENCH_WARMUP", 2*time.Second), "unmeasured load before each server row (env BENCH_WARMUP)")
	fs.IntVar(&cfg.authzBindings, "authz-bindings", 10_000, "bindings loaded into the running Aegis through the API")
	fs.StringVar(&shapes, "shapes", "1/1,16/4,64/8", "Authorize about a principal: comma-separated clients/connections")
	fs.StringVar(&rates, "rates", "10000,20000", "Authorize about a principal, open loop: comma-separated offered calls/s (empty: skip)")
	fs.StringVar(&rateShape, "rate-shape", "64/8", "open-loop Authorize rows: most calls in flight / connections")
	fs.StringVar(&allowShape, "allow-path-shape", "64/8", "Authorize about a principal with only the allow-path requests (no denials, so no audit): clients/connections (empty: skip)")
	fs.StringVar(&tokenShapes, "token-subject-shapes", "64/8", "Authorize about an access token: clients/connections (empty: skip)")
	fs.StringVar(&cc, "cc-clients", "1,16,64", "client_credentials grants: comma-separated numbers of concurrent clients")
	fs.StringVar(&pw, "password-clients", "1,4", "password grants: comma-separated numbers of concurrent clients (empty: skip)")
	fs.StringVar(&cfg.workDir, "workdir", "", "parent of the servers' data dirs and logs (default: a new temp dir, removed at the end)")
	fs.StringVar(&cfg.out, "out", "", "write the markdown report to this file")
	fs.StringVar(&cfg.jsonOut, "json", "", "write the raw results as JSON to this file")
	fs.StringVar(&cfg.attach, "attach", "", "command run on the Aegis process during each measured server window and stopped with SIGINT; "+
		"{pid} and {out} are substituted, e.g. 'perf record -g -F 499 -o {out} -p {pid}'")
	fs.StringVar(&cfg.attachDir, "attach-dir", ".", "directory of the -attach outputs ({out} = <dir>/<row>.attach)")
	fs.StringVar(&cfg.aegisLogLevel, "aegis-log-level", "info", "--log-level of the Aegis under test (info is its default)")
	fs.StringVar(&cfg.cpuProfile, "cpuprofile", "", "write a CPU profile of the load generator itself to this file")
	fs.DurationVar(&cfg.inprocTargetP99, "target-inproc-p99", 50*time.Microsecond, "target: in-process decision p99")
	fs.IntVar(&cfg.inprocTargetSize, "target-inproc-bindings", 100_000, "target: the size the in-process p99 target applies to")
	fs.Float64Var(&cfg.authzTargetRate, "target-authz-rate", 20_000, "target: gRPC Authorize calls/s")
	fs.DurationVar(&cfg.authzTargetP99, "target-authz-p99", time.Millisecond, "target: gRPC Authorize p99")
	fs.Float64Var(&cfg.tokenTargetRate, "target-token-rate", 2_000, "target: client_credentials tokens/s")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	cfg.parts = splitList(parts)
	for _, p := range cfg.parts {
		if p != partInproc && p != partAuthz && p != partTokens {
			return nil, fmt.Errorf("unknown part %q (have inproc, authz, tokens)", p)
		}
	}
	for _, s := range splitList(sizes) {
		n, err := parseCount(s)
		if err != nil {
			return nil, err
		}
		cfg.sizes = append(cfg.sizes, n)
	}
	var err error
	if cfg.shapes, err = parseShapes(shapes); err != nil {
		return nil, err
	}
	rs, err := parseShapes(rateShape)
	if err != nil || len(rs) != 1 {
		return nil, fmt.Errorf("bad -rate-shape %q: want one clients/conns", rateShape)
	}
	cfg.rateShape = rs[0]
	switch as, err := parseShapes(allowShape); {
	case err != nil || len(as) > 1:
		return nil, fmt.Errorf("bad -allow-path-shape %q: want one clients/conns or nothing", allowShape)
	case len(as) == 1:
		cfg.allowPathShape = &as[0]
	}
	for _, f := range splitList(rates) {
		v, err := strconv.ParseFloat(f, 64)
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("bad rate %q", f)
		}
		cfg.rates = append(cfg.rates, v)
	}
	if cfg.tokenShapes, err = parseShapes(tokenShapes); err != nil {
		return nil, err
	}
	if cfg.ccClients, err = parseInts(cc); err != nil {
		return nil, err
	}
	if cfg.passwordClients, err = parseInts(pw); err != nil {
		return nil, err
	}
	if cfg.duration <= 0 || cfg.inprocDuration <= 0 || cfg.warmup < 0 || cfg.authzBindings < 1 {
		return nil, fmt.Errorf("durations and -authz-bindings must be positive, -warmup not negative")
	}
	if cfg.binDir, err = filepath.Abs(cfg.binDir); err != nil {
		return nil, err
	}
	return cfg, nil
}

// parseCount reads 1000, 1k or 1M.
func parseCount(s string) (int, error) {
	mult := 1
	switch {
	case strings.HasSuffix(s, "k"):
		mult, s = 1_000, strings.TrimSuffix(s, "k")
	case strings.HasSuffix(s, "M"):
		mult, s = 1_000_000, strings.TrimSuffix(s, "M")
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("bad size %q: want a positive count, e.g. 1000, 100k or 1M", s)
	}
	return n * mult, nil
}

func parseShapes(s string) ([]shape, error) {
	var out []shape
	for _, f := range splitList(s) {
		c, n, ok := strings.Cut(f, "/")
		clients, err1 := strconv.Atoi(c)
		conns, err2 := strconv.Atoi(n)
		if !ok || err1 != nil || err2 != nil || clients < 1 || conns < 1 || conns > clients {
			return nil, fmt.Errorf("bad shape %q: want clients/conns with 1 <= conns <= clients", f)
		}
		out = append(out, shape{clients: clients, conns: conns})
	}
	return out, nil
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range splitList(s) {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("bad client count %q", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func splitList(s string) []string {
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
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
		fmt.Fprintf(os.Stderr, "aegis-bench: ignoring %s=%q: %v\n", name, v, err)
		return def
	}
	return d
}
