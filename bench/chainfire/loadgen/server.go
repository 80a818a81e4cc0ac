package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/photoncloud/photoncloud/bench/internal/hoststat"
)

// serverKind is how to start one of the benchmarked servers. Both take
// etcd's flags; they differ only in the flag naming the metrics listener.
type serverKind struct {
	binary      string
	metricsFlag string
}

var serverKinds = map[string]serverKind{
	"etcd":      {binary: "etcd", metricsFlag: "--listen-metrics-urls"},
	"chainfire": {binary: "chainfire", metricsFlag: "--listen-http-urls"},
}

// process is one running server member.
type process struct {
	name       string // server kind: etcd or chainfire
	member     string // --name within its cluster
	id         uint64 // raft member ID, known once ready (cluster mode)
	cmd        *exec.Cmd
	clientAddr string
	metricsURL string
	dataDir    string
	logPath    string
	exited     chan struct{}
	waitErr    error
}

// memberSpec is one member's identity and loopback URLs within its cluster.
type memberSpec struct {
	name                  string
	client, peer, metrics string
	initialCluster, token string
	dataDir, logPath      string
}

// startServer starts a fresh single member of kind name with its data dir
// under dir and waits until it serves linearizable reads.
func startServer(ctx context.Context, lg *slog.Logger, cfg *config, name, dir string) (*process, error) {
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	peer := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	p, err := spawn(cfg, name, memberSpec{
		name:           "bench",
		client:         fmt.Sprintf("http://127.0.0.1:%d", ports[0]),
		peer:           peer,
		metrics:        fmt.Sprintf("http://127.0.0.1:%d", ports[2]),
		initialCluster: "bench=" + peer,
		token:          "bench",
		dataDir:        filepath.Join(dir, "data"),
		logPath:        filepath.Join(dir, "server.log"),
	})
	if err != nil {
		return nil, err
	}
	if err := p.waitReady(ctx); err != nil {
		_ = p.stop()
		return nil, fmt.Errorf("%s not ready: %w; log tail:\n%s", name, err, tail(p.logPath, 20))
	}
	lg.Debug("server ready", "server", name, "pid", p.cmd.Process.Pid, "client", p.clientAddr)
	return p, nil
}

// spawn starts one member of kind name without waiting for it: a member of
// a new cluster cannot serve until a quorum of its peers runs too.
func spawn(cfg *config, name string, m memberSpec) (*process, error) {
	kind := serverKinds[name]
	p := &process{
		name:       name,
		member:     m.name,
		clientAddr: strings.TrimPrefix(m.client, "http://"),
		metricsURL: m.metrics + "/metrics",
		dataDir:    m.dataDir,
		logPath:    m.logPath,
		exited:     make(chan struct{}),
	}
	// Identical settings for both: same quota, snapshot count, raft timings
	// and no auto compaction (etcd's and Chainfire's defaults differ on
	// nothing here, but spelling them out keeps it so).
	args := []string{
		"--name", m.name,
		"--data-dir", p.dataDir,
		"--listen-client-urls", m.client,
		"--advertise-client-urls", m.client,
		"--listen-peer-urls", m.peer,
		"--initial-advertise-peer-urls", m.peer,
		"--initial-cluster", m.initialCluster,
		"--initial-cluster-state", "new",
		"--initial-cluster-token", m.token,
		"--quota-backend-bytes", strconv.FormatInt(cfg.quota, 10),
		"--snapshot-count", "10000",
		"--heartbeat-interval", strconv.Itoa(heartbeatMs),
		"--election-timeout", strconv.Itoa(electionMs),
		"--auto-compaction-retention", "0",
		"--max-txn-ops", "128",
		"--log-level", "warn",
		kind.metricsFlag, m.metrics,
	}
	if err := os.MkdirAll(filepath.Dir(p.logPath), 0o755); err != nil {
		return nil, err
	}
	logFile, err := os.Create(p.logPath)
	if err != nil {
		return nil, fmt.Errorf("create server log: %w", err)
	}
	defer logFile.Close() // the child keeps its own descriptor
	p.cmd = exec.Command(filepath.Join(cfg.binDir, kind.binary), args...)
	p.cmd.Stdout = logFile
	p.cmd.Stderr = logFile
	// Inherit nothing that could redirect either server (ETCD_* or
	// PHOTON_CHAINFIRE_* variables in the caller's shell).
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ETCD_") && !strings.HasPrefix(kv, "PHOTON_CHAINFIRE_") {
			p.cmd.Env = append(p.cmd.Env, kv)
		}
	}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// Raft timings of every member, single or clustered: etcd's defaults, given
// explicitly so that both servers run with the same ones.
const (
	heartbeatMs = 100
	electionMs  = 1000
)

func (p *process) pid() int { return p.cmd.Process.Pid }

// waitReady polls a linearizable Get until it succeeds: that needs a leader
// and an applied log, so the server is fully up.
func (p *process) waitReady(ctx context.Context) error {
	c, err := newClient(p.clientAddr)
	if err != nil {
		return err
	}
	defer c.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := c.Get(rctx, "bench-ready-probe")
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("exited: %v", p.waitErr)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out: %w", err)
		}
	}
}

// stop terminates the server gracefully, killing it if it does not exit
// within 15 s.
func (p *process) stop() error {
	select {
	case <-p.exited:
		return p.waitErr
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return nil
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
		return errors.New("did not stop within 15s; killed")
	}
}

// procStats are cumulative resource counters of a process.
type procStats struct {
	cpu        time.Duration // user + system
	writeBytes int64         // bytes the process caused to be written to storage
	rss        int64
}

func readProcStats(pid int) (procStats, error) {
	var st procStats
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return st, err
	}
	// Fields after the command name (which may contain spaces) start at
	// field 3 (state); utime and stime are fields 14 and 15.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 22 {
		return st, fmt.Errorf("short /proc/%d/stat", pid)
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	stt, _ := strconv.ParseInt(f[12], 10, 64)
	st.cpu = time.Duration(ut+stt) * time.Second / hoststat.ClockTick
	rssPages, _ := strconv.ParseInt(f[21], 10, 64)
	st.rss = rssPages * int64(os.Getpagesize())
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid)); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "write_bytes: "); ok {
				st.writeBytes, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			}
		}
	}
	return st, nil
}

// scrapedMetrics are the Prometheus counters the report uses, by name.
var scrapedMetrics = []string{
	"etcd_disk_wal_fsync_duration_seconds_count",
	"etcd_disk_wal_fsync_duration_seconds_sum",
	"etcd_disk_backend_commit_duration_seconds_count",
	"etcd_server_proposals_applied_total",
}

// scrape reads the unlabelled samples of scrapedMetrics from /metrics.
func (p *process) scrape(ctx context.Context) (map[string]float64, error) {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, p.metricsURL, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape metrics: %w", err)
	}
	defer resp.Body.Close()
	want := map[string]bool{}
	for _, n := range scrapedMetrics {
		want[n] = true
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok || !want[name] {
			continue
		}
		if v, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil {
			out[name] = v
		}
	}
	return out, sc.Err()
}

// freePorts reserves n distinct loopback ports by binding them together,
// then releases them for the server to take.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("reserve port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// newClient opens one clientv3 client: one gRPC connection per endpoint,
// requests spread round robin over the endpoints that are up.
func newClient(addrs ...string) (*clientv3.Client, error) {
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   addrs,
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", strings.Join(addrs, ","), err)
	}
	return c, nil
}

func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	b, _ := io.ReadAll(f)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// attached is a diagnostic command (strace, perf) watching a server during
// the measured window.
type attached struct {
	cmd    *exec.Cmd
	exited chan struct{}
}

// startAttached runs the -attach template with {pid} and {out} substituted;
// pids is one pid, or a comma-separated list for a cluster (the form perf's
// -p takes). It is split on spaces; quoting is not supported.
func startAttached(template string, pids string, out string) (*attached, error) {
	var args []string
	for _, f := range strings.Fields(template) {
		f = strings.ReplaceAll(f, "{pid}", pids)
		args = append(args, strings.ReplaceAll(f, "{out}", out))
	}
	if len(args) == 0 {
		return nil, errors.New("empty -attach command")
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout = io.Discard
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", args[0], err)
	}
	a := &attached{cmd: cmd, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(a.exited)
	}()
	// strace and perf need a moment to attach; without it the first
	// operations of the window go unobserved.
	time.Sleep(200 * time.Millisecond)
	return a, nil
}

// stop ends the command with SIGINT, on which strace -c and perf record
// write their output.
func (a *attached) stop() {
	_ = a.cmd.Process.Signal(os.Interrupt)
	select {
	case <-a.exited:
	case <-time.After(30 * time.Second):
		_ = a.cmd.Process.Kill()
		<-a.exited
	}
}

// syncEvents are the syscalls that force data to disk, counted per server
// with perf's syscall tracepoints (the servers' own metrics do not count
// them the same way).
var syncEvents = []string{"fdatasync", "fsync", "sync_file_range"}

// syncCounter counts syncEvents of a process with `perf stat`.
type syncCounter struct {
	a   *attached
	out string
}

func startSyncCounter(pids string, out string) (*syncCounter, error) {
	var ev []string
	for _, e := range syncEvents {
		ev = append(ev, "syscalls:sys_enter_"+e)
	}
	a, err := startAttached("perf stat -x , -e "+strings.Join(ev, ",")+" -p {pid} -o {out}", pids, out)
	if err != nil {
		return nil, err
	}
	return &syncCounter{a: a, out: out}, nil
}

// stop ends the count and returns the number of each syscall.
func (c *syncCounter) stop() (map[string]int64, error) {
	c.a.stop()
	b, err := os.ReadFile(c.out)
	if err != nil {
		return nil, fmt.Errorf("read perf stat output: %w", err)
	}
	counts := map[string]int64{}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Split(l, ",")
		if len(f) < 3 {
			continue
		}
		name, ok := strings.CutPrefix(f[2], "syscalls:sys_enter_")
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("perf stat could not count %s: %q", name, f[0])
		}
		counts[name] = n
	}
	if len(counts) != len(syncEvents) {
		return nil, fmt.Errorf("perf stat counted %d of %d sync syscalls", len(counts), len(syncEvents))
	}
	return counts, nil
}
