package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// Knot is a real Knot DNS (knotd, Debian package knot) serving primary
// zones from files on a loopback port: a second reference next to NSD (it
// adds no NS or glue beside positive answers, NSD does) and a second
// anchor for bench/flashdns.
type Knot struct {
	addr    string
	dir     string
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
}

// KnotConfig describes one knotd instance.
type KnotConfig struct {
	// Dir holds the config, the databases, the control socket and the log;
	// required for LaunchKnot, t.TempDir() by default for StartKnot.
	Dir string
	// Zones maps zone name to zone file; all are primaries.
	Zones map[string]string
	// Port to answer on (127.0.0.1, UDP and TCP); 0 picks a free one.
	Port int
	// UDPWorkers and TCPWorkers are knotd's worker threads; 1 each by
	// default (the test machines have 2 cores).
	UDPWorkers, TCPWorkers int
	// Binary is the knotd executable; FindKnot by default.
	Binary string
}

// StartKnot starts knotd for a test and stops it at cleanup, skipping the
// test when knotd is not installed (failing under CI).
func StartKnot(t testing.TB, cfg KnotConfig) *Knot {
	t.Helper()
	if cfg.Binary == "" {
		cfg.Binary = RequireTool(t, "knotd")
	}
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	k, err := LaunchKnot(cfg)
	if err != nil {
		t.Fatalf("start knotd: %v", err)
	}
	t.Cleanup(func() {
		if err := k.Close(); err != nil {
			t.Errorf("stop knotd: %v", err)
		}
	})
	return k
}

// LaunchKnot starts knotd and waits until every zone answers its SOA.
func LaunchKnot(cfg KnotConfig) (*Knot, error) {
	if cfg.Dir == "" {
		return nil, errors.New("knot config: Dir is required")
	}
	if cfg.Binary == "" {
		var err error
		if cfg.Binary, err = FindKnot(); err != nil {
			return nil, err
		}
	}
	cfg.UDPWorkers = max(cfg.UDPWorkers, 1)
	cfg.TCPWorkers = max(cfg.TCPWorkers, 1)
	return onFreePort(cfg.Port, func(port, attempt int) (*Knot, error) { return launchKnot(cfg, port, attempt) })
}

func launchKnot(cfg KnotConfig, port, attempt int) (*Knot, error) {
	dir, err := filepath.Abs(filepath.Join(cfg.Dir, fmt.Sprintf("knot-%d", attempt)))
	if err != nil {
		return nil, fmt.Errorf("knot dir: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "db"), 0o755); err != nil {
		return nil, fmt.Errorf("knot dir: %w", err)
	}
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("server:")
	w("    rundir: %q", dir)
	w("    pidfile: %q", filepath.Join(dir, "knot.pid"))
	w("    listen: 127.0.0.1@%d", port)
	w("    udp-workers: %d", cfg.UDPWorkers)
	w("    tcp-workers: %d", cfg.TCPWorkers)
	w("    background-workers: 1")
	w("log:")
	w("  - target: stderr")
	w("    any: notice")
	w("database:")
	w("    storage: %q", filepath.Join(dir, "db"))
	// Serve the files as they are: never write them back, keep no journal.
	w("template:")
	w("  - id: default")
	w("    storage: %q", dir)
	w("    zonefile-sync: -1")
	w("    zonefile-load: whole")
	w("    journal-content: none")
	w("zone:")
	var zones []string
	for name, file := range cfg.Zones {
		p, err := filepath.Abs(file)
		if err != nil {
			return nil, fmt.Errorf("zone file: %w", err)
		}
		zones = append(zones, dns.CanonicalName(name))
		w("  - domain: %q", dns.CanonicalName(name))
		w("    file: %q", p)
	}
	conf := filepath.Join(dir, "knot.conf")
	if err := os.WriteFile(conf, []byte(b.String()), 0o644); err != nil {
		return nil, fmt.Errorf("write knot.conf: %w", err)
	}
	logFile, err := os.Create(filepath.Join(dir, "knot.log"))
	if err != nil {
		return nil, fmt.Errorf("knot log: %w", err)
	}
	defer logFile.Close()
	k := &Knot{addr: fmt.Sprintf("127.0.0.1:%d", port), dir: dir, exited: make(chan struct{})}
	sock := filepath.Join(dir, "knot.sock")
	if len(sock) > 100 {
		short, err := os.MkdirTemp("", "knot")
		if err != nil {
			return nil, fmt.Errorf("knot socket dir: %w", err)
		}
		sock = filepath.Join(short, "knot.sock")
	}
	k.cmd = exec.Command(cfg.Binary, "-c", conf, "-s", sock)
	k.cmd.Dir = dir
	k.cmd.Stdout, k.cmd.Stderr = logFile, logFile
	k.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := k.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", cfg.Binary, err)
	}
	go func() {
		k.waitErr = k.cmd.Wait()
		close(k.exited)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = pollReady(ctx, k.exited, func() error {
		for _, z := range zones {
			r, err := query(ctx, k.addr, "udp", z, dns.TypeSOA)
			if err != nil {
				return err
			}
			if r.Rcode != dns.RcodeSuccess || len(r.Answer) == 0 {
				return fmt.Errorf("zone %s not served yet: %s", z, dns.RcodeToString[r.Rcode])
			}
		}
		return nil
	}, func() error { return fmt.Errorf("%w: %v", errExited, k.waitErr) })
	if err != nil {
		_ = k.Close()
		return nil, fmt.Errorf("knotd on %s not ready: %w; log:\n%s", k.addr, err, k.LogTail(20))
	}
	return k, nil
}

// Addr is the address knotd answers on, "127.0.0.1:port".
func (k *Knot) Addr() string { return k.addr }

// Pid is knotd's process id (one process, threads inside).
func (k *Knot) Pid() int { return k.cmd.Process.Pid }

// LogTail returns the last lines of knotd's log.
func (k *Knot) LogTail(lines int) string {
	b, err := os.ReadFile(filepath.Join(k.dir, "knot.log"))
	if err != nil {
		return ""
	}
	l := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

// Close stops knotd (SIGTERM, then SIGKILL after 10 s).
func (k *Knot) Close() error {
	return stopGroup(k.cmd, k.exited, func() error { return k.waitErr })
}
