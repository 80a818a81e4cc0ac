package cli

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if code := Run(context.Background(), []string{"version"}, &out, io.Discard); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if !regexp.MustCompile(`^photon \S+ \(.*go1\.\d+.*\)\n$`).MatchString(out.String()) {
		t.Fatalf("version output %q", out.String())
	}
}

func TestUnknownCommand(t *testing.T) {
	var stderr bytes.Buffer
	if code := Run(context.Background(), []string{"nope"}, io.Discard, &stderr); code != 1 ||
		!strings.HasPrefix(stderr.String(), `photon: unknown command "nope" for "photon"`) {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
}

// TestDev runs photon dev, talks to its Chainfire with the etcd client,
// and checks that cancelling stops it cleanly with the data on disk.
func TestDev(t *testing.T) {
	t.Setenv("PHOTON_CONFIG_DIR", t.TempDir()) // dev logs the CLI in
	dataDir := filepath.Join(t.TempDir(), "photon-data")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		defer pw.Close()
		done <- Run(ctx, []string{"dev", "--data-dir", dataDir,
			"--chainfire-client-addr", "127.0.0.1:0", "--chainfire-http-addr", "127.0.0.1:0", "--chainfire-peer-addr", freeAddr(t),
			"--aegis-grpc-addr", "127.0.0.1:0", "--aegis-http-addr", "127.0.0.1:0",
			"--dns-addr", "127.0.0.1:0", "--flashdns-grpc-addr", "127.0.0.1:0", "--flashdns-http-addr", "127.0.0.1:0",
			"--log-level", "warn"}, pw, io.Discard)
	}()
	sc := bufio.NewScanner(pr)
	re := regexp.MustCompile(`^chainfire: etcd API at (\S+) \(etcdctl --endpoints (\S+)\), metrics at http://(\S+)/metrics$`)
	var endpoint string
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			endpoint = m[1]
			if m[2] != endpoint {
				t.Errorf("etcdctl hint %q differs from address %q", m[2], endpoint)
			}
			break
		}
	}
	if endpoint == "" {
		t.Fatalf("no listening line printed (exit %v)", <-done)
	}
	// Aegis comes up with the admin, org dev, project default and a
	// logged-in CLI.
	// FlashDNS comes up after it, with its own identity at Aegis.
	var ready bool
	var dnsAddr, dnsAPI string
	dnsRe := regexp.MustCompile(`^flashdns: DNS at (\S+) .*, API at (\S+),`)
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "photon dev: the photon CLI is logged in as orgs/system/users/admin; org dev with project default is ready") {
			ready = true
		}
		if m := dnsRe.FindStringSubmatch(l); m != nil {
			dnsAddr, dnsAPI = m[1], m[2]
		}
		if strings.HasPrefix(l, "photon dev: data in") {
			break
		}
	}
	if !ready || dnsAddr == "" {
		t.Fatalf("photon dev did not report the CLI logged in with org dev ready (%v) and FlashDNS serving (%q)", ready, dnsAddr)
	}
	lines := make(chan string, 16)
	go func() {
		defer close(lines)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var out, errb bytes.Buffer
	if code := RunIO(ctx, []string{"iam", "projects", "get", "default", "--org", "dev", "-o", "json"}, strings.NewReader(""), &out, &errb); code != 0 ||
		!strings.Contains(out.String(), `"orgs/dev/projects/default"`) {
		t.Fatalf("photon iam projects get after photon dev: exit %d, %s %s", code, out.String(), errb.String())
	}

	// The acceptance flow of FlashDNS: import a zone file with the
	// logged-in CLI, then dig it and transfer it from loopback.
	t.Setenv("PHOTON_FLASHDNS_URL", "http://"+dnsAPI)
	zoneFile := filepath.Join(t.TempDir(), "example.com.zone")
	if err := os.WriteFile(zoneFile, []byte(devZone), 0o600); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	errb.Reset()
	if code := RunIO(ctx, []string{"dns", "zone", "import", "--org", "dev", "--project", "default", "--file", zoneFile},
		strings.NewReader(""), &out, &errb); code != 0 {
		t.Fatalf("photon dns zone import: exit %d, %s %s", code, out.String(), errb.String())
	}
	c := &dns.Client{Timeout: 5 * time.Second}
	q := new(dns.Msg).SetQuestion("www.example.com.", dns.TypeA)
	r, _, err := c.Exchange(q, dnsAddr)
	if err != nil || r.Rcode != dns.RcodeSuccess || !r.Authoritative || len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "192.0.2.10" {
		t.Fatalf("www.example.com A from photon dev: %v %v", r, err)
	}
	tr := &dns.Transfer{}
	axfr := new(dns.Msg).SetAxfr("example.com.")
	envs, err := tr.In(axfr, dnsAddr)
	if err != nil {
		t.Fatal(err)
	}
	var rrs []dns.RR
	for e := range envs {
		if e.Error != nil {
			t.Fatalf("AXFR: %v", e.Error)
		}
		rrs = append(rrs, e.RR...)
	}
	// SOA, NS, www A, mail A, MX, SOA.
	if len(rrs) != 6 || rrs[0].Header().Rrtype != dns.TypeSOA || rrs[len(rrs)-1].Header().Rrtype != dns.TypeSOA {
		t.Fatalf("AXFR from loopback returned %d records: %v", len(rrs), rrs)
	}

	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 10 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	rctx, rcancel := context.WithTimeout(ctx, 20*time.Second)
	defer rcancel()
	if _, err := cli.Put(rctx, "hello", "photon"); err != nil {
		t.Fatalf("put: %v", err)
	}
	resp, err := cli.Get(rctx, "hello")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "photon" {
		t.Fatalf("get: %v, %v", resp, err)
	}
	if fi, err := os.Stat(filepath.Join(dataDir, "chainfire")); err != nil || !fi.IsDir() {
		t.Fatalf("chainfire data dir: %v", err)
	}

	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit code %d after cancel", code)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("photon dev did not stop")
	}
	var rest []string
	for l := range lines {
		rest = append(rest, l)
	}
	if len(rest) == 0 || rest[len(rest)-1] != "photon dev: stopped" {
		t.Fatalf("output after start: %q", rest)
	}
}

// devZone is a small real zone file for the photon dev acceptance flow.
const devZone = `$ORIGIN example.com.
$TTL 300
@	IN SOA ns1.example.com. hostmaster.example.com. 2026112701 3600 600 1209600 300
@	IN NS ns1.photon.internal.
@	IN MX 10 mail
www	IN A 192.0.2.10
mail	IN A 192.0.2.25
`

// freeAddr returns a loopback address with a port that was free a moment
// ago, for listeners that cannot take port 0.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
