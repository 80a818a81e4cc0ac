package e2e

import (
	"bufio"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/photoncloud/photoncloud/test/testenv"
)

// flashDNSReadyTimeout bounds a FlashDNS start: it loads every zone from
// Chainfire before it serves.
const flashDNSReadyTimeout = 30 * time.Second

// FindFlashDNSBinary locates bin/flashdns the way FindBinaries locates the
// server. A missing binary is a test failure, not a skip.
func FindFlashDNSBinary(t testing.TB) string {
	t.Helper()
	dir := os.Getenv(EnvBinDir)
	if dir == "" {
		root, err := testenv.RepoRoot()
		if err != nil {
			t.Fatalf("cannot find the repository root to locate bin/ (set %s): %v", EnvBinDir, err)
		}
		dir = filepath.Join(root, "bin")
	}
	p := filepath.Join(dir, "flashdns")
	fi, err := os.Stat(p)
	if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		t.Fatalf("%s is missing or not executable: run `make build` in the repository root first (or point %s at a directory holding flashdns)",
			p, EnvBinDir)
	}
	return p
}

// FlashDNSOptions configure one bin/flashdns process.
type FlashDNSOptions struct {
	// Name tells replicas apart in logs. Default "flashdns".
	Name string
	// ChainfireEndpoints are the Chainfire client addresses (required).
	ChainfireEndpoints []string
	// Aegis authorizes the API (--aegis-endpoint, --aegis-issuer) with the
	// service account key ClientID and ClientSecret, the secret passed in
	// PHOTON_FLASHDNS_AEGIS_CLIENT_SECRET as an operator would. Nil runs
	// the API with --auth none.
	Aegis        *Aegis
	ClientID     string
	ClientSecret string
	// TransferAllow are --transfer-allow networks.
	TransferAllow []string
	// TSIGKeys are --tsig-key values, [algorithm:]name:secret.
	TSIGKeys []string
	// Notify are --notify targets, "host:port[ key NAME]".
	Notify []string
	// ExtraArgs are appended to the flags.
	ExtraArgs []string
}

// FlashDNS is one bin/flashdns process on loopback ports (DNS over UDP and
// TCP, the gRPC API, the HTTP listener) that stay fixed across restarts,
// as a replica's would.
type FlashDNS struct {
	daemon // Name, LogPath (stdout and stderr), Kill, Log
	bin    string
	opts   FlashDNSOptions

	DNSPort  int
	GRPCPort int
	HTTPPort int
}

// NewFlashDNS prepares a FlashDNS replica with fresh ports without starting
// it. The process is killed (if still running) when the test ends, and its
// log is printed if the test failed.
func NewFlashDNS(t testing.TB, opts FlashDNSOptions) *FlashDNS {
	t.Helper()
	if len(opts.ChainfireEndpoints) == 0 {
		t.Fatal("NewFlashDNS: ChainfireEndpoints is required")
	}
	if opts.Name == "" {
		opts.Name = "flashdns"
	}
	dir := t.TempDir()
	ports, err := testenv.FreePorts(3)
	if err != nil {
		t.Fatalf("pick free ports: %v", err)
	}
	f := &FlashDNS{
		bin: FindFlashDNSBinary(t), opts: opts,
		DNSPort: ports[0], GRPCPort: ports[1], HTTPPort: ports[2],
	}
	f.init(t, opts.Name, dir)
	// Registered after t.TempDir, so it runs before the directory is removed.
	t.Cleanup(f.finish)
	return f
}

// StartFlashDNS is NewFlashDNS followed by Start and WaitReady.
func StartFlashDNS(t testing.TB, opts FlashDNSOptions) *FlashDNS {
	t.Helper()
	f := NewFlashDNS(t, opts)
	f.Start()
	f.WaitReady()
	return f
}

// DNSAddr is where the replica answers DNS, over UDP and TCP.
func (f *FlashDNS) DNSAddr() string { return "127.0.0.1:" + strconv.Itoa(f.DNSPort) }

// GRPCAddr is the address of the flashdns.v1 gRPC API.
func (f *FlashDNS) GRPCAddr() string { return "127.0.0.1:" + strconv.Itoa(f.GRPCPort) }

// APIURL is the API as photon's --flashdns-url takes it.
func (f *FlashDNS) APIURL() string { return "http://" + f.GRPCAddr() }

// HTTPURL is the URL of the HTTP listener (/v1/, /metrics, /readyz).
func (f *FlashDNS) HTTPURL() string { return "http://127.0.0.1:" + strconv.Itoa(f.HTTPPort) }

// Args are the flags of this replica on its current ports.
func (f *FlashDNS) Args() []string {
	o := f.opts
	args := []string{
		"--chainfire-endpoints", strings.Join(o.ChainfireEndpoints, ","),
		"--listen-grpc-urls", f.APIURL(),
		"--listen-http-urls", f.HTTPURL(),
		"--dns-addrs", f.DNSAddr(),
		// One socket per protocol: the machine has two cores shared by
		// every process of the test.
		"--dns-sockets", "1",
		"--chaos-id", f.Name,
	}
	if o.Aegis != nil {
		args = append(args, "--aegis-endpoint", o.Aegis.GRPCAddr(), "--aegis-issuer", o.Aegis.Issuer(),
			"--aegis-client-id", o.ClientID)
	} else {
		args = append(args, "--auth", "none")
	}
	if len(o.TransferAllow) > 0 {
		args = append(args, "--transfer-allow", strings.Join(o.TransferAllow, ","))
	}
	for _, k := range o.TSIGKeys {
		args = append(args, "--tsig-key", k)
	}
	for _, n := range o.Notify {
		args = append(args, "--notify", n)
	}
	return append(args, o.ExtraArgs...)
}

// Start launches bin/flashdns; it does not wait for readiness.
func (f *FlashDNS) Start() {
	f.t.Helper()
	var env []string
	if f.opts.Aegis != nil {
		env = append(env, "PHOTON_FLASHDNS_AEGIS_CLIENT_SECRET="+f.opts.ClientSecret)
	}
	// The TSIG secrets are on the command line; this log is the test's own.
	f.start(f.bin, f.Args(), env, nil)
}

// WaitReady waits until /readyz answers 200. FlashDNS serves HTTP only
// once it has loaded every zone from Chainfire and its DNS listeners
// answer, so from then on DNS answers reflect every acknowledged change.
func (f *FlashDNS) WaitReady() {
	f.t.Helper()
	f.waitReady(f.HTTPURL, flashDNSReadyTimeout, f.retryPortConflict)
}

// retryPortConflict moves a replica that lost the race for its free ports
// on its very first start to new ones. The DNS port is only known free for
// TCP, so UDP may clash too.
func (f *FlashDNS) retryPortConflict() bool {
	if !f.lostPortRace() {
		return false
	}
	ports, err := testenv.FreePorts(3)
	if err != nil {
		return false
	}
	f.DNSPort, f.GRPCPort, f.HTTPPort = ports[0], ports[1], ports[2]
	f.Start()
	return true
}

// Dial opens a plaintext gRPC connection to the replica's API, closed at
// the end of the test. With Aegis, calls carry a token through Bearer.
func (f *FlashDNS) Dial(t testing.TB) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(f.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("dial %s: %v", f.Name, err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// DNS runs `photon dns args...` against this replica (--flashdns-url) and
// fails the test unless it exits 0; it returns stdout.
func (f *FlashDNS) DNS(p *Photon, args ...string) string {
	f.t.Helper()
	return p.OK("", f.dnsArgs(args)...)
}

// DNSRun runs `photon dns args...` against this replica, whatever the
// outcome.
func (f *FlashDNS) DNSRun(p *Photon, args ...string) PhotonResult {
	return p.Run("", f.dnsArgs(args)...)
}

func (f *FlashDNS) dnsArgs(args []string) []string {
	return append(append([]string{"dns"}, args...), "--flashdns-url", f.APIURL())
}

// Query asks the replica one question over UDP without recursion desired,
// as a resolver asks an authoritative server, trying three times as a
// resolver would (the machine is shared; an answer may come late).
func (f *FlashDNS) Query(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	return f.QueryClass(ctx, name, qtype, dns.ClassINET)
}

// QueryClass is Query in class qclass (e.g. dns.ClassCHAOS).
func (f *FlashDNS) QueryClass(ctx context.Context, name string, qtype, qclass uint16) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.Question[0].Qclass = qclass
	m.RecursionDesired = false
	c := &dns.Client{Net: "udp", Timeout: time.Second}
	var err error
	for range 3 {
		var r *dns.Msg
		if r, _, err = c.ExchangeContext(ctx, m, f.DNSAddr()); err == nil || ctx.Err() != nil {
			return r, err
		}
	}
	return nil, err
}

// Metric returns the sum of the samples of a counter or gauge in the
// replica's /metrics whose labels include every label="value" pair of
// labels (0 when there is none).
func (f *FlashDNS) Metric(t testing.TB, name string, labels ...string) float64 {
	t.Helper()
	hc := &http.Client{Timeout: 5 * time.Second}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get(f.HTTPURL() + "/metrics")
	if err != nil {
		t.Fatalf("GET %s/metrics: %v", f.HTTPURL(), err)
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		matches := true
		for _, l := range labels {
			if !strings.Contains(line, l) {
				matches = false
			}
		}
		if !matches {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		sum += v
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read %s/metrics: %v", f.HTTPURL(), err)
	}
	return sum
}

// DigResult is dig's answer to one query: the header's status and flags
// and the records it printed (answer section, or a transfer's records).
type DigResult struct {
	Output  string
	Status  string   // NOERROR, NXDOMAIN, ...; "" for a transfer
	Flags   []string // qr aa ...
	Records []dns.RR
}

// HasFlag reports whether the header had flag (e.g. "aa").
func (r DigResult) HasFlag(flag string) bool {
	for _, f := range r.Flags {
		if f == flag {
			return true
		}
	}
	return false
}

// Dig runs the real dig at server:port with args and parses its output
// (+nocmd +noall +comments +answer, so the header and the answer section,
// or every record of a zone transfer). A missing dig skips the test,
// except under CI (see testenv.RequireTool).
func Dig(t testing.TB, addr string, args ...string) DigResult {
	t.Helper()
	bin := testenv.RequireTool(t, "dig")
	host, port, ok := strings.Cut(addr, ":")
	if !ok {
		t.Fatalf("dig: address %q: want host:port", addr)
	}
	all := append([]string{"@" + host, "-p", port, "+nocmd", "+noall", "+comments", "+answer", "+tries=1", "+time=5"}, args...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, all...).CombinedOutput()
	res := DigResult{Output: string(out)}
	if err != nil {
		t.Fatalf("dig %s: %v\n%s", strings.Join(all, " "), err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		switch {
		case strings.HasPrefix(line, ";; ->>HEADER<<-"):
			if _, rest, ok := strings.Cut(line, "status: "); ok {
				res.Status, _, _ = strings.Cut(rest, ",")
			}
		case strings.HasPrefix(line, ";; flags:"):
			flags, _, _ := strings.Cut(strings.TrimPrefix(line, ";; flags:"), ";")
			res.Flags = strings.Fields(flags)
		case strings.TrimSpace(line) == "" || strings.HasPrefix(line, ";"):
		default:
			rr, err := dns.NewRR(line)
			if err != nil {
				t.Fatalf("dig printed a record that does not parse: %q: %v\n%s", line, err, out)
			}
			if rr != nil {
				res.Records = append(res.Records, rr)
			}
		}
	}
	return res
}
