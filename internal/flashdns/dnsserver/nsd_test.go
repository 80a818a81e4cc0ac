package dnsserver

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

const nsdBinary = "/usr/sbin/nsd"

// startNSD runs nsd 4.6 on a loopback port with the test zones (primary,
// transfers allowed to loopback) plus extra configuration and returns its
// address and the zone directory. The test is skipped when nsd is not
// installed.
func startNSD(t *testing.T, zones map[string]string, extra string) (string, string) {
	t.Helper()
	if _, err := os.Stat(nsdBinary); err != nil {
		t.Skip("nsd not installed")
	}
	dir := t.TempDir()
	// A port free for TCP; NSD binds UDP and TCP on it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	var conf strings.Builder
	fmt.Fprintf(&conf, `server:
  ip-address: 127.0.0.1@%d
  port: %d
  username: ""
  chroot: ""
  zonesdir: %q
  pidfile: %q
  xfrdfile: %q
  xfrdir: %q
  zonelistfile: %q
  database: ""
  server-count: 1
  verbosity: 2
  hide-version: no
  version: "FlashDNS test"
  identity: "test-id"
  logfile: %q
remote-control:
  control-enable: no
key:
  name: k256.
  algorithm: hmac-sha256
  secret: %q
`, port, port, dir, filepath.Join(dir, "nsd.pid"), filepath.Join(dir, "xfrd.state"), dir,
		filepath.Join(dir, "zone.list"), filepath.Join(dir, "nsd.log"), testSecret)
	for origin, text := range zones {
		file := strings.TrimSuffix(origin, ".") + ".zone"
		if err := os.WriteFile(filepath.Join(dir, file), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&conf, "zone:\n  name: %s\n  zonefile: %s\n  provide-xfr: 127.0.0.1 NOKEY\n", origin, file)
	}
	conf.WriteString(extra)
	confPath := filepath.Join(dir, "nsd.conf")
	if err := os.WriteFile(confPath, []byte(conf.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(nsdBinary, "-d", "-c", confPath)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// SIGTERM: the main process stops its children before exiting.
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	c := &dns.Client{Timeout: 200 * time.Millisecond}
	for deadline := time.Now().Add(10 * time.Second); ; {
		if _, _, err := c.Exchange(query("example.com.", dns.TypeSOA), addr); err == nil {
			return addr, dir
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "nsd.log"))
			t.Fatalf("nsd did not start: %s", log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// summary is what must match between NSD and us: rcode, flags, sections
// (order-insensitive, names lower-cased because both compress against the
// question), EDNS and the Extended DNS Error, TSIG error.
type summary struct {
	Rcode, Opcode          int
	AA, TC, RD, RA, AD, Z  bool
	Question               []string
	Answer, Ns, Extra      []string
	EDNS                   bool
	Version                uint8
	DO                     bool
	UDPSize                uint16
	EDE                    int
	TSIGError              int
	HeaderOnly, NoResponse bool
}

func summarize(t *testing.T, resp []byte) summary {
	t.Helper()
	if resp == nil {
		return summary{NoResponse: true}
	}
	m := mustUnpack(t, resp)
	s := summary{
		Rcode: m.Rcode, Opcode: m.Opcode, AA: m.Authoritative, TC: m.Truncated, RD: m.RecursionDesired,
		RA: m.RecursionAvailable, AD: m.AuthenticatedData, Z: m.Zero, EDE: ede(m), TSIGError: -1,
		HeaderOnly: len(resp) == headerLen,
	}
	for _, q := range m.Question {
		s.Question = append(s.Question, strings.ToLower(q.String()))
	}
	s.Answer, s.Ns = rrStrings(m.Answer), rrStrings(m.Ns)
	s.Extra = rrStrings(m.Extra)
	if o := m.IsEdns0(); o != nil {
		s.EDNS, s.Version, s.DO, s.UDPSize = true, o.Version(), o.Do(), o.UDPSize()
	}
	if ts := m.IsTsig(); ts != nil {
		s.TSIGError = int(ts.Error)
	}
	return s
}

func rrStrings(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		switch rr.Header().Rrtype {
		case dns.TypeOPT, dns.TypeTSIG:
			continue
		case dns.TypeTXT:
			h := rr.Header().String()
			out = append(out, strings.ToLower(h)+strings.TrimPrefix(rr.String(), h))
		default:
			out = append(out, strings.ToLower(rr.String()))
		}
	}
	slices.Sort(out)
	return out
}

// sendRaw sends req over UDP or TCP and returns the response or nil.
func sendRaw(t *testing.T, addr, proto string, req []byte) []byte {
	t.Helper()
	if proto == "udp" {
		return rawExchange(t, addr, req, 500*time.Millisecond)
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	c.Write(append([]byte{byte(len(req) >> 8), byte(len(req))}, req...))
	var l [2]byte
	if _, err := readFull(c, l[:]); err != nil {
		return nil
	}
	resp := make([]byte, int(l[0])<<8|int(l[1]))
	if _, err := readFull(c, resp); err != nil {
		return nil
	}
	return resp
}

func readFull(c net.Conn, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		k, err := c.Read(b[n:])
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// TestNSDParity sends the same requests to nsd 4.6 and to us and compares
// the answers. The corpus covers the protocol rules (header flags, EDNS,
// truncation, classes, CHAOS, malformed requests, TSIG); the answer rules
// themselves are the zone package's and fdns-nsd's differential test's.
//
// Deliberate differences, not in the corpus: we copy CD (RFC 4035 3.1.6,
// NSD clears it); NOTIMP/REFUSED bare headers keep only RD and CD (NSD keeps
// most query flags); NOTIFY is always REFUSED (NSD says NXDOMAIN for
// non-zone names); a TSIG key only verifies with its configured algorithm
// (NSD accepts any); a bad MAC wins over a bad time (RFC 8945 order, NSD
// checks time first) and BADTIME answers are signed; IXFR over UDP for an
// outdated serial answers SOA+TC (NSD starts an AXFR over UDP).
func TestNSDParity(t *testing.T) {
	zones := map[string]string{"example.com.": exampleZone(), "bigns.test.": bignsZone()}
	nsd, _ := startNSD(t, zones, "")
	s := startTest(t, func(c *Config) {
		c.TSIG = []TSIGKey{{Name: "k256.", Secret: testSecret}}
		c.TransferACL = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	})

	type probe struct {
		name  string
		proto string
		req   []byte
	}
	var probes []probe
	add := func(name, proto string, m *dns.Msg) {
		probes = append(probes, probe{name, proto, mustPack(t, m)})
	}
	addRaw := func(name string, b []byte) { probes = append(probes, probe{name, "udp", b}) }

	names := []struct {
		name  string
		qtype uint16
	}{
		{"www.example.com.", dns.TypeA}, {"WwW.ExAmple.CoM.", dns.TypeAAAA}, {"nope.example.com.", dns.TypeA},
		{"www.example.com.", dns.TypeMX}, {"big.example.com.", dns.TypeTXT}, {"many.example.com.", dns.TypeA},
		{"cn.example.com.", dns.TypeA}, {"cn2.example.com.", dns.TypeTXT}, {"mx.example.com.", dns.TypeMX},
		{"a.sub.example.com.", dns.TypeA}, {"x.deleg.bigns.test.", dns.TypeA}, {"x.mix.bigns.test.", dns.TypeA},
		{"x.tight.bigns.test.", dns.TypeA}, {"t.bigns.test.", dns.TypeTXT}, {"bigns.test.", dns.TypeNS}, {"bigns.test.", dns.TypeSOA},
		{"example.com.", dns.TypeSOA}, {"example.com.", dns.TypeNS}, {"x.wild.example.com.", dns.TypeA},
		{"www.example.org.", dns.TypeA}, {"example.com.", 666}, {"www.example.com.", dns.TypeANY},
	}
	type variant struct {
		name string
		f    func(*dns.Msg)
	}
	variants := []variant{
		{"plain", func(m *dns.Msg) {}},
		{"rd", func(m *dns.Msg) { m.RecursionDesired = true }},
		{"edns512", func(m *dns.Msg) { m.SetEdns0(512, false) }},
		{"edns1232", func(m *dns.Msg) { m.SetEdns0(1232, false) }},
		{"edns4096do", func(m *dns.Msg) { m.SetEdns0(4096, true) }},
		{"edns100", func(m *dns.Msg) { m.SetEdns0(100, false) }},
		{"edns1", func(m *dns.Msg) { m.SetEdns0(4096, true); m.IsEdns0().SetVersion(1); m.RecursionDesired = true }},
		{"ednsflags+opt", func(m *dns.Msg) {
			m.SetEdns0(1232, true)
			m.IsEdns0().Hdr.Ttl |= 0x4080
			m.IsEdns0().Option = []dns.EDNS0{&dns.EDNS0_LOCAL{Code: 100, Data: []byte{1}}, &dns.EDNS0_NSID{Code: dns.EDNS0NSID}}
		}},
		{"flags", func(m *dns.Msg) {
			m.Zero, m.AuthenticatedData, m.Authoritative, m.RecursionAvailable, m.Truncated = true, true, true, true, true
		}},
	}
	for _, n := range names {
		for _, v := range variants {
			m := query(n.name, n.qtype)
			v.f(m)
			add(fmt.Sprintf("%s/%s/%s", n.name, dns.Type(n.qtype), v.name), "udp", m)
		}
		m := query(n.name, n.qtype)
		add(fmt.Sprintf("%s/%s/tcp", n.name, dns.Type(n.qtype)), "tcp", m)
		m = query(n.name, n.qtype)
		m.SetEdns0(1232, true)
		add(fmt.Sprintf("%s/%s/tcp-edns", n.name, dns.Type(n.qtype)), "tcp", m)
	}
	for _, c := range []struct {
		name  string
		qtype uint16
		class uint16
	}{
		{"www.example.com.", dns.TypeA, dns.ClassCHAOS}, {"version.bind.", dns.TypeTXT, dns.ClassCHAOS},
		{"VERSION.bind.", dns.TypeANY, dns.ClassCHAOS}, {"version.bind.", dns.TypeA, dns.ClassCHAOS},
		{"version.server.", dns.TypeTXT, dns.ClassCHAOS}, {"id.server.", dns.TypeTXT, dns.ClassCHAOS},
		{"hostname.bind.", dns.TypeTXT, dns.ClassCHAOS}, {"authors.bind.", dns.TypeTXT, dns.ClassCHAOS},
		{"version.bind.", dns.TypeTXT, dns.ClassINET}, {"www.example.com.", dns.TypeA, dns.ClassHESIOD},
		{"www.example.com.", dns.TypeA, dns.ClassNONE}, {"www.example.com.", dns.TypeA, dns.ClassANY},
		{"nope.example.com.", dns.TypeA, dns.ClassANY}, {"www.example.com.", dns.TypeMX, dns.ClassANY},
		{"a.sub.example.com.", dns.TypeA, dns.ClassANY},
	} {
		for _, edns := range []bool{false, true} {
			m := query(c.name, c.qtype)
			m.Question[0].Qclass = c.class
			if edns {
				m.SetEdns0(1232, true)
			}
			add(fmt.Sprintf("%s/%s/class%d/edns=%v", c.name, dns.Type(c.qtype), c.class, edns), "udp", m)
		}
	}
	base := func() *dns.Msg { return query("www.example.com.", dns.TypeA) }
	{
		m := base()
		m.Question = append(m.Question, m.Question[0])
		add("qdcount 2", "udp", m)
		m = base()
		m.Question = nil
		add("qdcount 0", "udp", m)
		m = base()
		m.SetEdns0(1232, false)
		m.Extra = append(m.Extra, m.Extra[0])
		add("two OPT", "udp", m)
		m = base()
		m.SetEdns0(1232, false)
		m.Extra[0].Header().Name = "x."
		add("OPT not root", "udp", m)
		m = base()
		m.Ns = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: "x.", Rrtype: dns.TypeA, Class: dns.ClassINET}, A: net.IPv4(1, 2, 3, 4)}}
		add("authority record", "udp", m)
		b := mustPack(t, base())
		addRaw("truncated question", b[:len(b)-2])
		addRaw("header only", b[:headerLen])
		addRaw("trailing garbage", append(slices.Clone(b), 1, 2, 3))
		r := slices.Clone(b)
		r[2] |= 0x80
		addRaw("response", r)
		m = query("example.com.", dns.TypeAXFR)
		add("axfr over udp", "udp", m)
		m = query("example.com.", dns.TypeAXFR)
		m.SetEdns0(1232, true)
		add("axfr over udp edns", "udp", m)
		m = query("example.com.", dns.TypeIXFR)
		m.Ns = []dns.RR{&dns.SOA{Hdr: dns.RR_Header{Name: "example.com.", Rrtype: dns.TypeSOA, Class: dns.ClassINET}, Ns: "a.", Mbox: "b.", Serial: 2024010101}}
		add("ixfr over udp up to date", "udp", m)
	}
	now := time.Now().Unix()
	for _, c := range []struct {
		name, key, secret string
	}{{"tsig ok", "k256.", testSecret}, {"tsig bad mac", "k256.", "d3Jvbmcgc2VjcmV0"}, {"tsig unknown key", "nokey.", testSecret}} {
		for _, q := range []string{"www.example.com.", "www.example.org."} {
			m := query(q, dns.TypeA)
			m.SetTsig(c.key, dns.HmacSHA256, 300, now)
			b, _, err := dns.TsigGenerate(m, c.secret, "", false)
			if err != nil {
				t.Fatal(err)
			}
			addRaw(c.name+" "+q, b)
		}
	}
	// Opcodes: rcode and bare header match; flags deliberately differ.
	opcodes := map[string]bool{}
	for _, op := range []int{dns.OpcodeIQuery, dns.OpcodeStatus, 3, dns.OpcodeUpdate, 15} {
		m := base()
		m.Opcode = op
		add(fmt.Sprintf("opcode %d", op), "udp", m)
		opcodes[fmt.Sprintf("opcode %d", op)] = true
	}
	m := query("example.com.", dns.TypeSOA)
	m.Opcode = dns.OpcodeNotify
	add("notify apex", "udp", m)
	opcodes["notify apex"] = true

	failures := 0
	for _, p := range probes {
		want := summarize(t, sendRaw(t, nsd, p.proto, p.req))
		got := summarize(t, sendRaw(t, s.addr(p.proto), p.proto, p.req))
		if opcodes[p.name] {
			want.AA, want.RD, want.RA, want.TC, want.Z, want.AD = false, false, false, false, false, false
			got.AA, got.RD, got.RA, got.TC, got.Z, got.AD = false, false, false, false, false, false
		}
		if !reflect.DeepEqual(want, got) {
			failures++
			t.Errorf("%s (%s):\n nsd: %+v\n us:  %+v", p.name, p.proto, want, got)
			if failures > 10 {
				t.FailNow()
			}
		}
	}
	t.Logf("%d probes compared", len(probes))
}
