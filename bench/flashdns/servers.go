package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/miekg/dns"

	"github.com/photoncloud/photoncloud/test/testenv"
)

// Server names (the -servers flag).
const (
	srvNSD      = "nsd"
	srvKnot     = "knot"
	srvFlashDNS = "flashdns"
)

// zoneFile is one zone a server is started with.
type zoneFile struct {
	origin, file string
}

// server is one DNS server under test, running as its own process group.
type server struct {
	name string
	addr string
	pgid int
	stop func() error
	// heapLive is the Go heap after GC that fdserve reports once loaded
	// (-1 when the server is not Go or does not say).
	heapLive int64
}

// starter starts a server on the zones, with its files under dir.
type starter func(ctx context.Context, zones []zoneFile, dir string) (*server, error)

func (c *config) starter(name string) (starter, error) {
	switch name {
	case srvNSD:
		return c.startNSD, nil
	case srvKnot:
		return c.startKnot, nil
	case srvFlashDNS:
		return c.startCommand, nil
	}
	return nil, fmt.Errorf("unknown server %q (have nsd, knot, flashdns)", name)
}

// startNSD runs NSD with its defaults (testenv's config: no chroot, state
// in dir, rate limiting off) and server-count -nsd-servers.
func (c *config) startNSD(_ context.Context, zones []zoneFile, dir string) (*server, error) {
	var nz []testenv.NSDZone
	for _, z := range zones {
		nz = append(nz, testenv.NSDZone{Name: z.origin, ZoneFile: z.file})
	}
	n, err := testenv.LaunchNSD(testenv.NSDConfig{Dir: dir, Zones: nz, ServerCount: c.nsdServers, XFRDReloadTimeout: -1})
	if err != nil {
		return nil, err
	}
	return &server{name: srvNSD, addr: n.Addr(), pgid: n.Pid(), stop: n.Close, heapLive: -1}, nil
}

// startKnot runs knotd with -knot-workers UDP workers.
func (c *config) startKnot(_ context.Context, zones []zoneFile, dir string) (*server, error) {
	files := map[string]string{}
	for _, z := range zones {
		files[z.origin] = z.file
	}
	k, err := testenv.LaunchKnot(testenv.KnotConfig{Dir: dir, Zones: files, UDPWorkers: c.knotWorkers, TCPWorkers: 1})
	if err != nil {
		return nil, err
	}
	return &server{name: srvKnot, addr: k.Addr(), pgid: k.Pid(), stop: k.Close, heapLive: -1}, nil
}

// loadedLine is what fdserve prints once its zones are loaded, before it
// answers; a command that prints no such line reports no heap.
var loadedLine = regexp.MustCompile(`heap_live_bytes=(\d+)`)

// startCommand runs FlashDNS as -flashdns-cmd says: the template is split
// on spaces, {addr} becomes the loopback address to answer on, {zones}
// becomes "-zone origin=file" per zone (fdserve's form) and {zonelist}
// "origin=file,origin=file". It is ready when every zone answers its SOA.
func (c *config) startCommand(ctx context.Context, zones []zoneFile, dir string) (*server, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	ports, err := testenv.FreePorts(1)
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	var zoneArgs, list []string
	for _, z := range zones {
		zoneArgs = append(zoneArgs, "-zone", z.origin+"="+z.file)
		list = append(list, z.origin+"="+z.file)
	}
	var args []string
	for _, f := range strings.Fields(c.flashdnsCmd) {
		switch f {
		case "{zones}":
			args = append(args, zoneArgs...)
			continue
		case "{zonelist}":
			f = strings.Join(list, ",")
		}
		args = append(args, strings.ReplaceAll(strings.ReplaceAll(f, "{addr}", addr), "{fdserve}", c.fdserve))
	}
	if len(args) == 0 {
		return nil, errors.New("empty -flashdns-cmd")
	}
	logPath := filepath.Join(dir, "flashdns.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Run with the Go runtime's defaults, as a deployment would: no GC or
	// core tuning inherited from whoever runs the benchmark.
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k == "GOGC" || k == "GOMAXPROCS" || k == "GOMEMLIMIT" || k == "GODEBUG" || strings.HasPrefix(k, "PHOTON_") {
			continue
		}
		cmd.Env = append(cmd.Env, kv)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", args[0], err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	s := &server{name: srvFlashDNS, addr: addr, pgid: cmd.Process.Pid, heapLive: -1}
	s.stop = func() error {
		select {
		case <-exited:
			return fmt.Errorf("flashdns exited early: %v", waitErr)
		default:
		}
		_ = syscall.Kill(s.pgid, syscall.SIGTERM)
		select {
		case <-exited:
			return nil
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-s.pgid, syscall.SIGKILL)
			<-exited
			return errors.New("flashdns did not stop within 10s; killed")
		}
	}
	if err := waitZones(ctx, addr, zones, exited); err != nil {
		_ = s.stop()
		b, _ := os.ReadFile(logPath)
		return nil, fmt.Errorf("flashdns (%s) not ready: %w; log:\n%s", strings.Join(args, " "), err, tailLines(string(b), 20))
	}
	// fdserve prints its loaded line before it serves, so it is in the
	// log by now.
	if b, err := os.ReadFile(logPath); err == nil {
		if m := loadedLine.FindSubmatch(b); m != nil {
			s.heapLive, _ = strconv.ParseInt(string(m[1]), 10, 64)
		}
	}
	return s, nil
}

// waitZones polls until every zone answers its SOA authoritatively.
func waitZones(ctx context.Context, addr string, zones []zoneFile, exited <-chan struct{}) error {
	deadline := time.Now().Add(2 * time.Minute)
	c := &dns.Client{Timeout: 300 * time.Millisecond}
	for {
		var err error
		for _, z := range zones {
			m := new(dns.Msg)
			m.SetQuestion(z.origin, dns.TypeSOA)
			var r *dns.Msg
			if r, _, err = c.ExchangeContext(ctx, m, addr); err == nil && (r.Rcode != dns.RcodeSuccess || !r.Authoritative) {
				err = fmt.Errorf("%s SOA: %s", z.origin, dns.RcodeToString[r.Rcode])
			}
			if err != nil {
				break
			}
		}
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out: %w", err)
		}
		select {
		case <-exited:
			return errors.New("exited")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// versionOf is the first line of a server's version output plus the start
// of its binary's SHA-256, so a report can be traced to what it measured.
func versionOf(name string, c *config) string {
	var bin string
	var args []string
	switch name {
	case srvNSD:
		bin, _ = testenv.FindNSD()
		args = []string{"-v"}
	case srvKnot:
		bin, _ = testenv.FindKnot()
		args = []string{"-V"}
	case srvFlashDNS:
		f := strings.Fields(c.flashdnsCmd)
		if len(f) == 0 {
			return "?"
		}
		bin = strings.ReplaceAll(f[0], "{fdserve}", c.fdserve)
	}
	if bin == "" {
		return "not found"
	}
	var line string
	if args != nil {
		out, _ := exec.Command(bin, args...).CombinedOutput()
		line, _, _ = strings.Cut(strings.TrimSpace(string(out)), "\n")
	} else {
		line = filepath.Base(bin)
	}
	if b, err := os.ReadFile(bin); err == nil {
		sum := sha256.Sum256(b)
		line += fmt.Sprintf(" (%s, sha256 %x)", bin, sum[:6])
	}
	return line
}
