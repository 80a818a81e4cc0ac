package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// process is one server binary the benchmark started, the leader of its
// own process group (so /proc accounts its CPU and memory apart from the
// load generator's and from the other servers').
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
	waitErr error
}

// startProcess runs bin with args, its output going to logPath. Variables
// that would reconfigure the server behind the benchmark's back (flags by
// environment, GC and core tuning) are not passed on: it runs with its
// shipped defaults except for the flags given here, as a deployment
// would.
func startProcess(name, bin string, args []string, logPath string) (*process, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("create %s log: %w", name, err)
	}
	defer logFile.Close() // the child keeps its own descriptor
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "PHOTON_") || strings.HasPrefix(k, "ETCD_") ||
			k == "GOGC" || k == "GOMAXPROCS" || k == "GOMEMLIMIT" || k == "GODEBUG" {
			continue
		}
		cmd.Env = append(cmd.Env, kv)
	}
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

// pid is the process's id, which is also its process group's.
func (p *process) pid() int { return p.cmd.Process.Pid }

// stop terminates the process gracefully, killing its group if it does
// not exit within 15 s. A process that had already exited is an error:
// it died during the run.
func (p *process) stop() error {
	select {
	case <-p.exited:
		return fmt.Errorf("%s exited early: %v", p.name, p.waitErr)
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return nil
	case <-time.After(15 * time.Second):
		_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
		<-p.exited
		return fmt.Errorf("%s did not stop within 15s; killed", p.name)
	}
}

// logTail is the end of the process's log, for error messages.
func (p *process) logTail() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return ""
	}
	return tailLines(string(b), 20)
}

// poll calls probe every 50 ms until it succeeds, the process exits or
// timeout passes.
func poll(ctx context.Context, p *process, timeout time.Duration, probe func(context.Context) error) error {
	deadline := time.Now().Add(timeout)
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		err := probe(pctx)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %v: %w", timeout, err)
		}
		select {
		case <-p.exited:
			return fmt.Errorf("exited: %v", p.waitErr)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// httpGet fetches url and fails unless it answers 200.
func httpGet(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	return b, nil
}

// waitHTTP polls url until it answers 200.
func waitHTTP(ctx context.Context, p *process, url string, timeout time.Duration) error {
	return poll(ctx, p, timeout, func(ctx context.Context) error {
		_, err := httpGet(ctx, url)
		return err
	})
}

// scrapeGauges reads the unlabelled samples of names from a Prometheus
// text page; names it does not find are missing from the map.
func scrapeGauges(ctx context.Context, url string, names ...string) (map[string]float64, error) {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	b, err := httpGet(rctx, url)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	out := map[string]float64{}
	for line := range strings.SplitSeq(string(b), "\n") {
		n, v, ok := strings.Cut(line, " ")
		if !ok || !slices.Contains(names, n) {
			continue
		}
		if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
			out[n] = f
		}
	}
	return out, nil
}

// binaryID is the first line of `<bin> --version` plus the start of the
// binary's SHA-256, so a report can be traced to the build it measured.
func binaryID(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "not found"
	}
	sum := sha256.Sum256(b)
	line := filepath.Base(path)
	if out, err := exec.Command(path, "--version").Output(); err == nil {
		line, _, _ = strings.Cut(strings.TrimSpace(string(out)), "\n")
	}
	return fmt.Sprintf("%s (%s, sha256 %x)", line, path, sum[:6])
}
