package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// NSD is a real NSD (NLnet Labs' authoritative server, Debian package nsd)
// running as a child process on a loopback port: the oracle FlashDNS's
// answers are compared against, and a secondary that shows FlashDNS's zone
// transfers work with a third-party implementation.
//
// Everything NSD writes (config, pidfile, xfrd state, zone list, transfer
// temp files, log, control socket) lives in one directory, NSD runs in the
// foreground without chroot or privilege drop, so it needs no setup on the
// machine beyond the installed binary.
type NSD struct {
	cfg     NSDConfig
	addr    string
	confDir string
	conf    string
	log     string
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
}

// NSDConfig describes one NSD instance.
type NSDConfig struct {
	// Dir holds the generated config and NSD's state; required for
	// LaunchNSD, t.TempDir() by default for StartNSD.
	Dir string
	// Zones are the zones NSD serves, primaries and secondaries.
	Zones []NSDZone
	// Port to answer on (UDP and TCP, 127.0.0.1); 0 picks a free one.
	Port int
	// ServerCount is NSD's server-count (answering processes), default 1.
	ServerCount int
	// Verbosity is NSD's log verbosity (0-3); 1 logs notifies and zone
	// transfers, which is what a failing secondary test needs to show.
	Verbosity int
	// XFRDReloadTimeout is NSD's xfrd-reload-timeout in seconds: how long
	// NSD waits after one transfer-triggered reload before the next. NSD's
	// default (1 s) throttles a test that changes a zone several times in
	// a row; -1 keeps the default, the zero value means no wait.
	XFRDReloadTimeout int
	// Extra lines for the server: clause, e.g. "minimal-responses: yes".
	Extra []string
	// Binary is the nsd executable; by default found with FindNSD.
	Binary string
}

// NSDZone is one zone of an NSD instance. With Primary empty NSD serves
// ZoneFile as a primary; with Primary set it is a secondary that transfers
// the zone from there (request-xfr) and accepts NOTIFY from its address.
type NSDZone struct {
	Name string
	// ZoneFile is the zone file of a primary zone (any path; NSD is given
	// the absolute path). A secondary's zone is written to
	// <NSD.Dir()>/<name>.zone on Control("write", name).
	ZoneFile string
	// Primary is the address ("127.0.0.1:5300") a secondary transfers
	// from.
	Primary string
	// AXFROnly makes the secondary request AXFR only (NSD otherwise asks
	// for IXFR first and falls back to AXFR).
	AXFROnly bool
	// NotifyFrom is the ip-spec allowed to send NOTIFY (NSD syntax, e.g.
	// "127.0.0.0/8"); the primary's host, from any port, by default.
	NotifyFrom string
	// TSIG signs the transfers and the notifies of a secondary zone.
	TSIG *TSIGKey
}

// TSIGKey is a TSIG key in the form NSD's and miekg/dns's configs take.
type TSIGKey struct {
	Name      string // "xfr-key." (NSD's config gets it without the dot)
	Algorithm string // "hmac-sha256" by default
	Secret    string // base64
}

func (k *TSIGKey) algorithm() string {
	if k.Algorithm == "" {
		return "hmac-sha256"
	}
	return strings.TrimSuffix(k.Algorithm, ".")
}

// FindNSD returns the path of the nsd binary: from PATH, else /usr/sbin
// (Debian's place, often missing from a non-root PATH).
func FindNSD() (string, error) { return findSbin("nsd") }

// FindKnot returns the path of knotd, like FindNSD.
func FindKnot() (string, error) { return findSbin("knotd") }

func findSbin(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/usr/local/sbin"} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found in PATH, /usr/sbin or /usr/local/sbin", name)
}

// RequireTool returns the path of an external tool, or skips the test when
// it is missing. Under CI (env CI set) a missing tool fails the test
// instead: .ci/run installs the tools, so a skip there would hide a broken
// setup.
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	p, err := findSbin(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%v (CI is set: .ci/run must install it)", err)
	}
	t.Skipf("skipping: %v (Debian: apt-get install nsd knot knot-dnsutils dnsutils dnsperf)", err)
	return ""
}

// StartNSD starts NSD for a test and stops it at cleanup. It skips the test
// when nsd is not installed (fails under CI, see RequireTool).
func StartNSD(t testing.TB, cfg NSDConfig) *NSD {
	t.Helper()
	if cfg.Binary == "" {
		cfg.Binary = RequireTool(t, "nsd")
	}
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	n, err := LaunchNSD(cfg)
	if err != nil {
		t.Fatalf("start nsd: %v", err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Errorf("stop nsd: %v", err)
		}
		if t.Failed() {
			t.Logf("nsd log (%s):\n%s", n.log, n.LogTail(40))
		}
	})
	return n
}

// errExited marks a server that exited while the harness waited for it to
// answer.
var errExited = errors.New("exited")

// LaunchNSD starts NSD and waits until it answers on its port and every
// primary zone is loaded. It retries with another port when the picked
// one turned out taken (ports are picked free but released before NSD
// binds them). Secondaries may still be transferring when it returns; see
// WaitSerial.
func LaunchNSD(cfg NSDConfig) (*NSD, error) {
	if cfg.Dir == "" {
		return nil, errors.New("nsd config: Dir is required")
	}
	if cfg.Binary == "" {
		var err error
		if cfg.Binary, err = FindNSD(); err != nil {
			return nil, err
		}
	}
	if cfg.ServerCount <= 0 {
		cfg.ServerCount = 1
	}
	return onFreePort(cfg.Port, func(port, attempt int) (*NSD, error) { return launchNSD(cfg, port, attempt) })
}

// onFreePort launches a server on port, or, when port is 0, on a port
// picked as free; a server that exited at once (most likely: the port was
// taken meanwhile) is tried again on another, three times at most. One
// that runs but does not load a zone would fail the same way again.
func onFreePort[T any](port int, launch func(port, attempt int) (T, error)) (T, error) {
	var zero T
	var lastErr error
	for attempt := range 3 {
		p := port
		if p == 0 {
			ports, err := FreePorts(1)
			if err != nil {
				return zero, err
			}
			p = ports[0]
		}
		srv, err := launch(p, attempt)
		if err == nil {
			return srv, nil
		}
		lastErr = err
		if port != 0 || !errors.Is(err, errExited) {
			break
		}
	}
	return zero, lastErr
}

func launchNSD(cfg NSDConfig, port, attempt int) (*NSD, error) {
	dir, err := filepath.Abs(filepath.Join(cfg.Dir, fmt.Sprintf("nsd-%d", attempt)))
	if err != nil {
		return nil, fmt.Errorf("nsd dir: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "xfr"), 0o755); err != nil {
		return nil, fmt.Errorf("nsd dir: %w", err)
	}
	n := &NSD{
		cfg:    cfg,
		addr:   fmt.Sprintf("127.0.0.1:%d", port),
		conf:   filepath.Join(dir, "nsd.conf"),
		log:    filepath.Join(dir, "nsd.log"),
		exited: make(chan struct{}),
	}
	n.confDir = dir
	// A unix socket path is limited to 108 bytes; t.TempDir() under a long
	// test name can exceed it, so the socket may need a shorter home.
	sock := filepath.Join(dir, "ctl")
	if len(sock) > 100 {
		short, err := os.MkdirTemp("", "nsd")
		if err != nil {
			return nil, fmt.Errorf("nsd control dir: %w", err)
		}
		sock = filepath.Join(short, "ctl")
	}
	conf, err := nsdConf(cfg, dir, port, sock)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(n.conf, []byte(conf), 0o644); err != nil {
		return nil, fmt.Errorf("write nsd.conf: %w", err)
	}
	logFile, err := os.Create(filepath.Join(dir, "nsd.stderr"))
	if err != nil {
		return nil, fmt.Errorf("nsd stderr: %w", err)
	}
	defer logFile.Close() // the child keeps its own descriptor
	// -d keeps NSD in the foreground, so the process we start is NSD's main
	// process and its exit is ours to see. Its own group lets Close kill
	// the server and xfrd processes it forks if the main one hangs.
	n.cmd = exec.Command(cfg.Binary, "-d", "-c", n.conf)
	n.cmd.Dir = dir
	n.cmd.Stdout, n.cmd.Stderr = logFile, logFile
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := n.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", cfg.Binary, err)
	}
	go func() {
		n.waitErr = n.cmd.Wait()
		close(n.exited)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.waitReady(ctx); err != nil {
		_ = n.Close()
		return nil, fmt.Errorf("nsd on %s not ready: %w; log:\n%s", n.addr, err, n.LogTail(20))
	}
	return n, nil
}

// nsdConf renders nsd.conf. Defaults are NSD's own except where a test
// needs otherwise: no chroot, no user switch, no database (NSD 4.6 serves
// from memory and zone files), all state in dir, and rate limiting off —
// Debian builds NSD with --enable-ratelimit and its default of 200
// answers/s per source would turn a fast test or the benchmark into
// truncated "slip" answers.
func nsdConf(cfg NSDConfig, dir string, port int, sock string) (string, error) {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("server:")
	w("  ip-address: 127.0.0.1@%d", port)
	w("  port: %d", port)
	w("  do-ip6: no")
	w("  username: \"\"")
	w("  chroot: \"\"")
	w("  zonesdir: %q", dir)
	w("  pidfile: %q", filepath.Join(dir, "nsd.pid"))
	w("  database: \"\"")
	w("  zonelistfile: %q", filepath.Join(dir, "zone.list"))
	w("  xfrdfile: %q", filepath.Join(dir, "xfrd.state"))
	w("  xfrdir: %q", filepath.Join(dir, "xfr"))
	w("  logfile: %q", filepath.Join(dir, "nsd.log"))
	w("  verbosity: %d", cfg.Verbosity)
	w("  server-count: %d", cfg.ServerCount)
	w("  rrl-ratelimit: 0")
	w("  rrl-whitelist-ratelimit: 0")
	if cfg.XFRDReloadTimeout >= 0 {
		w("  xfrd-reload-timeout: %d", cfg.XFRDReloadTimeout)
	}
	for _, l := range cfg.Extra {
		w("  %s", l)
	}
	w("remote-control:")
	w("  control-enable: yes")
	w("  control-interface: %q", sock)
	keys := map[string]bool{}
	for _, z := range cfg.Zones {
		if z.TSIG == nil || keys[z.TSIG.Name] {
			continue
		}
		keys[z.TSIG.Name] = true
		w("key:")
		w("  name: %q", strings.TrimSuffix(z.TSIG.Name, "."))
		w("  algorithm: %s", z.TSIG.algorithm())
		w("  secret: %q", z.TSIG.Secret)
	}
	for _, z := range cfg.Zones {
		name := strings.TrimSuffix(dns.CanonicalName(z.Name), ".")
		if name == "" {
			return "", errors.New("nsd config: zone without a name")
		}
		w("zone:")
		w("  name: %q", name)
		// Anyone on loopback may transfer the zone out: that is how a test
		// reads back what a secondary holds (AXFR).
		w("  provide-xfr: 127.0.0.0/8 NOKEY")
		if z.Primary == "" {
			if z.ZoneFile == "" {
				return "", fmt.Errorf("nsd config: zone %s has neither ZoneFile nor Primary", name)
			}
			p, err := filepath.Abs(z.ZoneFile)
			if err != nil {
				return "", fmt.Errorf("zone file: %w", err)
			}
			w("  zonefile: %q", p)
			continue
		}
		host, pport, err := splitHostPort(z.Primary)
		if err != nil {
			return "", fmt.Errorf("nsd config: zone %s primary: %w", name, err)
		}
		key := "NOKEY"
		if z.TSIG != nil {
			key = strings.TrimSuffix(z.TSIG.Name, ".")
		}
		w("  zonefile: %q", filepath.Join(dir, name+".zone"))
		mode := ""
		if z.AXFROnly {
			mode = "AXFR "
		}
		w("  request-xfr: %s%s@%s %s", mode, host, pport, key)
		from := z.NotifyFrom
		if from == "" {
			from = host
		}
		w("  allow-notify: %s %s", from, key)
	}
	return b.String(), nil
}

func splitHostPort(addr string) (string, string, error) {
	i := strings.LastIndex(addr, ":")
	if i < 0 {
		return "", "", fmt.Errorf("%q: want host:port", addr)
	}
	host, port := strings.Trim(addr[:i], "[]"), addr[i+1:]
	if _, err := strconv.Atoi(port); err != nil {
		return "", "", fmt.Errorf("%q: bad port", addr)
	}
	return host, port, nil
}

// waitReady polls until NSD answers on its port and every primary zone
// answers its SOA authoritatively.
func (n *NSD) waitReady(ctx context.Context) error {
	var zones []string
	for _, z := range n.cfg.Zones {
		if z.Primary == "" {
			zones = append(zones, dns.CanonicalName(z.Name))
		}
	}
	return pollReady(ctx, n.exited, func() error {
		if len(zones) == 0 {
			// Any answer, even REFUSED, shows the server is up.
			_, err := query(ctx, n.addr, "udp", ".", dns.TypeSOA)
			return err
		}
		for _, z := range zones {
			r, err := query(ctx, n.addr, "udp", z, dns.TypeSOA)
			if err != nil {
				return err
			}
			if r.Rcode != dns.RcodeSuccess || !r.Authoritative || len(r.Answer) == 0 {
				return fmt.Errorf("zone %s not served yet: %s", z, dns.RcodeToString[r.Rcode])
			}
		}
		return nil
	}, func() error { return fmt.Errorf("%w: %v", errExited, n.waitErr) })
}

// pollReady calls probe every 20 ms until it succeeds, exited closes or ctx
// ends.
func pollReady(ctx context.Context, exited <-chan struct{}, probe func() error, exitErr func() error) error {
	for {
		err := probe()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return exitErr()
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// query sends one question and returns the answer.
func query(ctx context.Context, addr, network, name string, qtype uint16) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.RecursionDesired = false
	c := &dns.Client{Net: network, Timeout: 500 * time.Millisecond}
	r, _, err := c.ExchangeContext(ctx, m, addr)
	return r, err
}

// Addr is the address NSD answers on, "127.0.0.1:port" (UDP and TCP).
func (n *NSD) Addr() string { return n.addr }

// Pid is the process id of NSD's main process; its server and xfrd
// processes are its children (and share its process group).
func (n *NSD) Pid() int { return n.cmd.Process.Pid }

// Dir is the directory holding NSD's config, state and log.
func (n *NSD) Dir() string { return n.confDir }

// ConfigPath is the generated nsd.conf (for nsd-control -c).
func (n *NSD) ConfigPath() string { return n.conf }

// LogTail returns the last lines of NSD's log and stderr.
func (n *NSD) LogTail(lines int) string {
	var out []string
	for _, p := range []string{n.log, filepath.Join(n.confDir, "nsd.stderr")} {
		b, err := os.ReadFile(p)
		if err != nil || len(b) == 0 {
			continue
		}
		l := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		if len(l) > lines {
			l = l[len(l)-lines:]
		}
		out = append(out, l...)
	}
	return strings.Join(out, "\n")
}

// Control runs nsd-control against this NSD (over its unix control
// socket, which needs no keys), e.g. Control("zonestatus", "example.com")
// or Control("write", "example.com") to make it write a secondary zone to
// its zone file.
func (n *NSD) Control(args ...string) (string, error) {
	bin, err := findSbin("nsd-control")
	if err != nil {
		return "", err
	}
	out, err := exec.Command(bin, append([]string{"-c", n.conf}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("nsd-control %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// SOA asks NSD for a zone's SOA. A secondary that has not transferred the
// zone yet answers SERVFAIL, returned as an error.
func (n *NSD) SOA(ctx context.Context, zone string) (*dns.SOA, error) {
	r, err := query(ctx, n.addr, "udp", zone, dns.TypeSOA)
	if err != nil {
		return nil, err
	}
	if r.Rcode != dns.RcodeSuccess {
		return nil, fmt.Errorf("soa %s: %s", zone, dns.RcodeToString[r.Rcode])
	}
	for _, rr := range r.Answer {
		if soa, ok := rr.(*dns.SOA); ok {
			return soa, nil
		}
	}
	return nil, fmt.Errorf("soa %s: no SOA in the answer", zone)
}

// WaitSerial waits until NSD serves zone with a serial at or past serial
// (RFC 1982 arithmetic), e.g. until a secondary has taken a transfer.
func (n *NSD) WaitSerial(ctx context.Context, zone string, serial uint32) (*dns.SOA, error) {
	var soa *dns.SOA
	err := pollReady(ctx, n.exited, func() error {
		var err error
		if soa, err = n.SOA(ctx, zone); err != nil {
			return err
		}
		if d := int32(soa.Serial - serial); d < 0 {
			return fmt.Errorf("serial %d, want %d", soa.Serial, serial)
		}
		return nil
	}, func() error { return fmt.Errorf("nsd exited: %v", n.waitErr) })
	if err != nil {
		return nil, fmt.Errorf("wait for %s serial %d: %w; log:\n%s", zone, serial, err, n.LogTail(15))
	}
	return soa, nil
}

// AXFR transfers zone out of NSD: the records it holds now, SOA first and
// last, as NSD sends them. It is how a test reads back what a secondary
// received.
//
// Right after an update NSD replaces its server processes, and a transfer
// that an outgoing one accepted is cut off; such a transfer is retried.
func (n *NSD) AXFR(ctx context.Context, zone string) ([]dns.RR, error) {
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		var rrs []dns.RR
		if rrs, err = TransferZone(ctx, n.addr, zone, nil); err == nil {
			return rrs, nil
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil, err
}

// TransferZone runs an AXFR of zone from addr (TSIG-signed with key if
// given) and returns every record of the transfer in order.
func TransferZone(ctx context.Context, addr, zone string, key *TSIGKey) ([]dns.RR, error) {
	m := new(dns.Msg)
	m.SetAxfr(dns.Fqdn(zone))
	tr := &dns.Transfer{DialTimeout: 2 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 2 * time.Second}
	if key != nil {
		name := dns.Fqdn(key.Name)
		tr.TsigSecret = map[string]string{name: key.Secret}
		m.SetTsig(name, dns.Fqdn(key.algorithm()), 300, time.Now().Unix())
	}
	if dl, ok := ctx.Deadline(); ok {
		if d := time.Until(dl); d > 0 && d < tr.ReadTimeout {
			tr.ReadTimeout = d
		}
	}
	ch, err := tr.In(m, addr)
	if err != nil {
		return nil, fmt.Errorf("axfr %s from %s: %w", zone, addr, err)
	}
	var rrs []dns.RR
	for env := range ch {
		if env.Error != nil {
			// Drain so the transfer goroutine ends.
			for range ch {
			}
			return nil, fmt.Errorf("axfr %s from %s: %w", zone, addr, env.Error)
		}
		rrs = append(rrs, env.RR...)
	}
	return rrs, nil
}

// Close stops NSD: SIGTERM to the main process, which stops its children;
// after 10 s the whole process group is killed.
func (n *NSD) Close() error {
	return stopGroup(n.cmd, n.exited, func() error { return n.waitErr })
}

// stopGroup ends a server started in its own process group.
func stopGroup(cmd *exec.Cmd, exited <-chan struct{}, waitErr func() error) error {
	select {
	case <-exited:
		// Already gone (crashed or failed to start): report how, unless
		// it was our own signal.
		err := waitErr()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return fmt.Errorf("exited early: %w", err)
		}
		return err
	default:
	}
	pid := cmd.Process.Pid
	_ = syscall.Kill(pid, syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-exited
		return errors.New("did not stop within 10s; killed")
	}
	// NSD's children exit after the main process; make sure none keeps
	// the port (or a secondary's xfrd keeps transferring) past Close.
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	return nil
}

// SendNotify sends a NOTIFY for zone to addr over UDP (TSIG-signed with key
// if given) and waits for the acknowledgement, as a primary does after a
// change.
func SendNotify(ctx context.Context, addr, zone string, key *TSIGKey) error {
	m := new(dns.Msg)
	m.SetNotify(dns.Fqdn(zone))
	c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
	if key != nil {
		name := dns.Fqdn(key.Name)
		c.TsigSecret = map[string]string{name: key.Secret}
		m.SetTsig(name, dns.Fqdn(key.algorithm()), 300, time.Now().Unix())
	}
	r, _, err := c.ExchangeContext(ctx, m, addr)
	if err != nil {
		return fmt.Errorf("notify %s to %s: %w", zone, addr, err)
	}
	if r.Rcode != dns.RcodeSuccess {
		return fmt.Errorf("notify %s to %s: %s", zone, addr, dns.RcodeToString[r.Rcode])
	}
	return nil
}
