package dnsserver

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/photoncloud/photoncloud/internal/flashdns/zone"
)

// exampleZone exercises sizes as well as answer rules: "big" and "many"
// overflow 512 bytes, "sub" is a referral whose glue overflows 512 bytes,
// "mx" has 40 MX records with glue.
func exampleZone() string {
	var b strings.Builder
	b.WriteString(`$ORIGIN example.com.
$TTL 3600
@ IN SOA ns1.example.com. hostmaster.example.com. 2024010101 7200 3600 1209600 300
@ IN NS ns1.example.com.
@ IN NS ns2.example.com.
ns1 IN A 192.0.2.1
ns2 IN A 192.0.2.2
www IN A 192.0.2.10
www IN AAAA 2001:db8::10
cn IN CNAME many.example.com.
cn2 IN CNAME big.example.com.
*.wild IN A 192.0.2.99
`)
	b.WriteString(`big IN TXT "` + strings.Repeat("a", 250) + `" "` + strings.Repeat("b", 250) + `"` + "\n")
	b.WriteString(`big IN TXT "` + strings.Repeat("c", 200) + `"` + "\n")
	for i := range 60 {
		fmt.Fprintf(&b, "many IN A 10.0.%d.%d\n", i/250, i%250+1)
	}
	for i := range 20 {
		fmt.Fprintf(&b, "sub IN NS ns%d.sub.example.com.\n", i)
		fmt.Fprintf(&b, "ns%d.sub IN A 10.1.0.%d\n", i, i+1)
		fmt.Fprintf(&b, "ns%d.sub IN AAAA 2001:db8::%x\n", i, i+1)
	}
	for i := range 40 {
		fmt.Fprintf(&b, "mx IN MX %d mail%d.example.com.\n", i, i)
		fmt.Fprintf(&b, "mail%d IN A 10.2.0.%d\n", i, i+1)
		fmt.Fprintf(&b, "mail%d IN AAAA 2001:db8:1::%x\n", i, i+1)
	}
	return b.String()
}

// bignsZone has an apex NS set and a delegation too large for 512 bytes and
// a TXT answer that fits only without the apex NS set.
func bignsZone() string {
	var b strings.Builder
	b.WriteString("$ORIGIN bigns.test.\n$TTL 300\n@ SOA ns0.bigns.test. h.bigns.test. 1 2 3 4 5\n")
	for i := range 25 {
		fmt.Fprintf(&b, "@ NS nameserver-number-%d.some-long-provider-name.example.net.\n", i)
		fmt.Fprintf(&b, "deleg NS nameserver-number-%d.some-long-provider-name.example.net.\n", i)
	}
	b.WriteString(`t TXT "` + strings.Repeat("x", 200) + `" "` + strings.Repeat("y", 180) + `"` + "\n")
	b.WriteString("mix NS a.mix\nmix NS b.mix\nmix NS c.mix\na.mix A 10.0.0.1\nc.mix A 10.0.0.3\nc.mix AAAA ::1\n")
	for i := range 40 {
		fmt.Fprintf(&b, "b.mix A 10.0.1.%d\n", i+1)
	}
	// "tight": the NS set fits in 512 bytes, none of its A glue does.
	for i := range 10 {
		fmt.Fprintf(&b, "tight NS ns%02d-%s.tight\nns%02d-%s.tight A 10.0.2.%d\n", i, strings.Repeat("p", 27), i, strings.Repeat("p", 27), i)
	}
	return b.String()
}

func buildZone(t testing.TB, origin, text string) *zone.Snapshot {
	t.Helper()
	d, err := zone.ParseZoneFile(strings.NewReader(text), origin, 3600)
	if err != nil {
		t.Fatalf("parse %s: %v", origin, err)
	}
	s, err := zone.Build(d)
	if err != nil {
		t.Fatalf("build %s: %v", origin, err)
	}
	return s
}

// testKey is a 32-byte base64 secret used by the TSIG tests.
const testSecret = "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI="

type testServer struct {
	*Server
	zones *atomic.Pointer[zone.Table]
	reg   *prometheus.Registry
	udp   string
	tcp   string
}

// startTest starts a server on loopback with the example and bigns zones;
// mod adjusts the config first.
func startTest(t testing.TB, mod func(*Config)) *testServer {
	t.Helper()
	zones := new(atomic.Pointer[zone.Table])
	zones.Store(zone.NewTable(buildZone(t, "example.com.", exampleZone()), buildZone(t, "bigns.test.", bignsZone())))
	reg := prometheus.NewRegistry()
	cfg := Config{
		Addrs:          []string{"127.0.0.1:0"},
		SocketsPerAddr: 2,
		Zones:          zones.Load,
		TransferACL:    []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		TSIG: []TSIGKey{
			{Name: "k256.", Secret: testSecret},
			{Name: "k512.", Algorithm: "hmac-sha512", Secret: testSecret},
			{Name: "k1.", Algorithm: "hmac-sha1", Secret: testSecret},
		},
		ChaosVersion: "FlashDNS test",
		ChaosID:      "test-id",
		Registry:     reg,
	}
	if mod != nil {
		mod(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return &testServer{Server: s, zones: zones, reg: reg, udp: s.UDPAddrs()[0], tcp: s.TCPAddrs()[0]}
}

func (ts *testServer) addr(proto string) string {
	if proto == "tcp" {
		return ts.tcp
	}
	return ts.udp
}

// exchange sends m over proto ("udp" or "tcp") and returns the response.
func exchange(t testing.TB, addr, proto string, m *dns.Msg) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: proto, Timeout: 3 * time.Second, UDPSize: 65535}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("%s %v: %v", proto, m.Question, err)
	}
	return r
}

// rawExchange sends raw bytes over UDP and returns the raw response, or nil
// after wait without one.
func rawExchange(t testing.TB, addr string, req []byte, wait time.Duration) []byte {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(wait))
	if _, err := c.Write(req); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65535)
	n, err := c.Read(buf)
	if err != nil {
		return nil
	}
	return buf[:n]
}

func query(name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.RecursionDesired = false
	return m
}

func queryEDNS(name string, qtype uint16, size uint16, do bool) *dns.Msg {
	m := query(name, qtype)
	m.SetEdns0(size, do)
	return m
}

func mustPack(t testing.TB, m *dns.Msg) []byte {
	t.Helper()
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustUnpack(t testing.TB, b []byte) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	if err := m.Unpack(b); err != nil {
		t.Fatalf("unpack %x: %v", b, err)
	}
	return m
}

// ede returns the Extended DNS Error code of m, or -1.
func ede(m *dns.Msg) int {
	if o := m.IsEdns0(); o != nil {
		for _, opt := range o.Option {
			if e, ok := opt.(*dns.EDNS0_EDE); ok {
				return int(e.InfoCode)
			}
		}
	}
	return -1
}

func countType(rrs []dns.RR, t uint16) int {
	n := 0
	for _, rr := range rrs {
		if rr.Header().Rrtype == t {
			n++
		}
	}
	return n
}

func nilTable() *zone.Table { return nil }

// metricValue reads a counter or gauge.
func metricValue(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		return -1
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}

// collectCount counts the series of a collector.
func collectCount(c prometheus.Collector) int {
	ch := make(chan prometheus.Metric, 1024)
	c.Collect(ch)
	close(ch)
	return len(ch)
}

// wireLen is the compressed size of m.
func wireLen(m *dns.Msg) int {
	m.Compress = true
	b, err := m.Pack()
	if err != nil {
		return -1
	}
	return len(b)
}
