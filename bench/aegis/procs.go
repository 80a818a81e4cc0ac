package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
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
)

// process is one server the benchmark started.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
	waitErr error
}

// startProcess runs bin with args, its output going to logPath. Variables
// that would reconfigure the servers behind the benchmark's back (flags by
// environment, GC tuning) are not passed on: both run with their shipped
// defaults except for the flags given here.
func startProcess(name, bin string, args, env []string, logPath string) (*process, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("create %s log: %w", name, err)
	}
	defer logFile.Close() // the child keeps its own descriptor
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "PHOTON_") || strings.HasPrefix(k, "ETCD_") || k == "GOGC" || k == "GOMAXPROCS" || k == "GOMEMLIMIT" {
			continue
		}
		cmd.Env = append(cmd.Env, kv)
	}
	cmd.Env = append(cmd.Env, env...)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

func (p *process) pid() int { return p.cmd.Process.Pid }

// stop terminates the process gracefully, killing it if it does not exit
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
		return fmt.Errorf("%s did not stop within 15s; killed", p.name)
	}
}

// stack is a Chainfire member and an Aegis replica on it, each its own
// process, so that /proc accounts their CPU apart from the load
// generator's.
type stack struct {
	cf, aegis     *process
	cfAddr        string
	grpcAddr      string
	httpAddr      string
	adminPassword string
}

// startStack starts a fresh single-member Chainfire and an Aegis replica
// on it, with data under dir, and waits until Aegis is ready.
func startStack(ctx context.Context, lg *slog.Logger, cfg *config, dir string) (*stack, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("server dir: %w", err)
	}
	ports, err := freePorts(5)
	if err != nil {
		return nil, err
	}
	s := &stack{cfAddr: fmt.Sprintf("127.0.0.1:%d", ports[0]),
		grpcAddr: fmt.Sprintf("127.0.0.1:%d", ports[3]), httpAddr: fmt.Sprintf("127.0.0.1:%d", ports[4])}
	peer := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	client := "http://" + s.cfAddr
	s.cf, err = startProcess("chainfire", filepath.Join(cfg.binDir, "chainfire"), []string{
		"--name", "bench", "--data-dir", filepath.Join(dir, "chainfire"),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "bench=" + peer, "--initial-cluster-state", "new",
		"--listen-http-urls", fmt.Sprintf("http://127.0.0.1:%d", ports[2]),
		"--log-level", "warn",
	}, nil, filepath.Join(dir, "chainfire.log"))
	if err != nil {
		return nil, err
	}
	if err := waitChainfire(ctx, s.cf, s.cfAddr); err != nil {
		_ = s.cf.stop()
		return nil, fmt.Errorf("chainfire not ready: %w; log tail:\n%s", err, tail(s.cf.logPath, 20))
	}

	b := make([]byte, 18)
	rand.Read(b)
	s.adminPassword = hex.EncodeToString(b)
	s.aegis, err = startProcess("aegis", filepath.Join(cfg.binDir, "aegis"), []string{
		"--data-dir", filepath.Join(dir, "aegis"),
		"--listen-grpc-urls", "http://" + s.grpcAddr,
		"--listen-http-urls", "http://" + s.httpAddr,
		"--chainfire-endpoints", s.cfAddr,
		// The run must not outlive the caller's token; the lifetime
		// does not change what issuing or verifying a token costs.
		"--access-token-ttl", "2h",
		"--log-level", cfg.aegisLogLevel,
	}, []string{"PHOTON_BOOTSTRAP_ADMIN_PASSWORD=" + s.adminPassword}, filepath.Join(dir, "aegis.log"))
	if err != nil {
		_ = s.cf.stop()
		return nil, err
	}
	if err := waitHTTP(ctx, s.aegis, "http://"+s.httpAddr+"/readyz"); err != nil {
		s.stop(lg)
		return nil, fmt.Errorf("aegis not ready: %w; log tail:\n%s", err, tail(s.aegis.logPath, 20))
	}
	lg.Info("servers ready", "chainfire_pid", s.cf.pid(), "aegis_pid", s.aegis.pid(), "grpc", s.grpcAddr, "http", s.httpAddr)
	return s, nil
}

// stop stops Aegis, then Chainfire.
func (s *stack) stop(lg *slog.Logger) {
	for _, p := range []*process{s.aegis, s.cf} {
		if p == nil {
			continue
		}
		if err := p.stop(); err != nil {
			lg.Warn("stop server", "server", p.name, "err", err)
		}
	}
}

// waitChainfire polls a linearizable Get until it succeeds: that needs a
// leader and an applied log, so the member is fully up.
func waitChainfire(ctx context.Context, p *process, addr string) error {
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{addr}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer c.Close()
	return poll(ctx, p, func(ctx context.Context) error {
		_, err := c.Get(ctx, "bench-ready-probe")
		return err
	})
}

// waitHTTP polls url until it answers 200.
func waitHTTP(ctx context.Context, p *process, url string) error {
	return poll(ctx, p, func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s", url, resp.Status)
		}
		return nil
	})
}

// poll calls probe every 50 ms until it succeeds, the process exits or 60 s
// pass.
func poll(ctx context.Context, p *process, probe func(context.Context) error) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		err := probe(pctx)
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

// scrapedMetrics are the Aegis counters the report uses.
var scrapedMetrics = []string{
	"aegis_audit_events_written_total",
	"aegis_audit_events_dropped_total",
	"aegis_audit_events_failed_total",
	"aegis_audit_queue_length",
}

// scrape reads the unlabelled samples of scrapedMetrics from url.
func scrape(ctx context.Context, url string) (map[string]float64, error) {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape metrics: %w", err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		for _, m := range scrapedMetrics {
			if name == m {
				if v, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil {
					out[name] = v
				}
			}
		}
	}
	return out, sc.Err()
}

// waitAuditDrained waits (up to a minute) until Aegis has written every
// queued audit event: loading the world queues one per admin change, and
// writing that backlog would otherwise cost the first measured rows.
func waitAuditDrained(ctx context.Context, s *stack) error {
	url := "http://" + s.httpAddr + "/metrics"
	deadline := time.Now().Add(time.Minute)
	for {
		m, err := scrape(ctx, url)
		if err != nil {
			return err
		}
		q, ok := m["aegis_audit_queue_length"]
		if !ok {
			return errors.New("aegis_audit_queue_length not in /metrics")
		}
		if q == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%.0f audit events still queued after a minute", q)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// freePorts reserves n distinct loopback ports by binding them together,
// then releases them for the servers to take.
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

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// binaryID is the first line of `<bin> --version` plus the start of the
// binary's SHA-256, so a table can be traced to the build it measured.
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

// attached is a diagnostic command (perf record, strace) watching Aegis
// during a measured window.
type attached struct {
	cmd    *exec.Cmd
	exited chan struct{}
}

// startAttached runs template with {pid} and {out} substituted. It is
// split on spaces; quoting is not supported.
func startAttached(template string, pid int, out string) (*attached, error) {
	var args []string
	for _, f := range strings.Fields(template) {
		f = strings.ReplaceAll(f, "{pid}", strconv.Itoa(pid))
		args = append(args, strings.ReplaceAll(f, "{out}", out))
	}
	if len(args) == 0 {
		return nil, errors.New("empty -attach command")
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", args[0], err)
	}
	a := &attached{cmd: cmd, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(a.exited)
	}()
	// perf and strace need a moment to attach; without it the start of
	// the window goes unobserved.
	time.Sleep(200 * time.Millisecond)
	return a, nil
}

// stop ends the command with SIGINT, on which perf record and strace -c
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
