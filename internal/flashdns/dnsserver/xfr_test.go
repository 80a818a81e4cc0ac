package dnsserver

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/photoncloud/photoncloud/internal/flashdns/zone"
)

// journalZone builds xfr.test. at serial 3 with a journal from 1 and a few
// thousand records, so an AXFR needs several messages.
func journalZone(t testing.TB) *zone.Snapshot {
	t.Helper()
	var b strings.Builder
	b.WriteString("$ORIGIN xfr.test.\n$TTL 300\n@ SOA ns.xfr.test. h.xfr.test. 3 60 60 600 60\n@ NS ns.xfr.test.\nns A 192.0.2.53\nwww A 192.0.2.3\n")
	for i := range 3000 {
		fmt.Fprintf(&b, "h%d TXT \"host number %d with some padding to make the zone larger\"\n", i, i)
	}
	d, err := zone.ParseZoneFile(strings.NewReader(b.String()), "xfr.test.", 300)
	if err != nil {
		t.Fatal(err)
	}
	rr := func(s string) dns.RR {
		r, err := dns.NewRR(s)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	d.Journal = []zone.Diff{
		{FromSerial: 1, ToSerial: 2, Deleted: []dns.RR{rr("www.xfr.test. 300 IN A 192.0.2.1")}, Added: []dns.RR{rr("www.xfr.test. 300 IN A 192.0.2.2")}},
		{FromSerial: 2, ToSerial: 3, Deleted: []dns.RR{rr("www.xfr.test. 300 IN A 192.0.2.2")}, Added: []dns.RR{rr("www.xfr.test. 300 IN A 192.0.2.3")}},
	}
	s, err := zone.Build(d)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func startXFR(t *testing.T, mod func(*Config)) (*testServer, *zone.Snapshot) {
	s := startTest(t, mod)
	z := journalZone(t)
	s.zones.Store(s.zones.Load().With(z))
	return s, z
}

// transferIn runs a miekg inbound transfer and returns the records and the
// number of envelopes (messages).
func transferIn(t *testing.T, addr string, m *dns.Msg, secrets map[string]string) ([]dns.RR, int, error) {
	t.Helper()
	tr := &dns.Transfer{TsigSecret: secrets, ReadTimeout: 5 * time.Second}
	ch, err := tr.In(m, addr)
	if err != nil {
		return nil, 0, err
	}
	var rrs []dns.RR
	n := 0
	for env := range ch {
		if env.Error != nil {
			return rrs, n, env.Error
		}
		n++
		rrs = append(rrs, env.RR...)
	}
	return rrs, n, nil
}

func TestAXFR(t *testing.T) {
	s, z := startXFR(t, nil)
	m := query("XFR.test.", dns.TypeAXFR)
	rrs, msgs, err := transferIn(t, s.tcp, m, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := z.AXFR()
	if len(rrs) != len(want) || msgs < 5 {
		t.Fatalf("got %d records in %d messages, want %d records in several", len(rrs), msgs, len(want))
	}
	for i := range want {
		// The question was "XFR.test.": names compress against it.
		if !strings.EqualFold(rrs[i].String(), want[i].String()) {
			t.Fatalf("record %d: %v != %v", i, rrs[i], want[i])
		}
	}
	if v := metricValue(s.h.m.transfers.WithLabelValues("xfr.test.", "axfr", "ok")); v != 1 {
		t.Fatalf("transfer metric %v", v)
	}
	// Not over UDP (NSD: NOTIMP).
	if r := exchange(t, s.udp, "udp", query("xfr.test.", dns.TypeAXFR)); r.Rcode != dns.RcodeNotImplemented || len(r.Question) != 1 {
		t.Fatalf("udp axfr: %v", r)
	}
	// Not a zone apex: NOTAUTH (RFC 5936 2.2.1).
	if r := exchange(t, s.tcp, "tcp", query("www.xfr.test.", dns.TypeAXFR)); r.Rcode != dns.RcodeNotAuth {
		t.Fatalf("non-apex axfr: %v", r)
	}
	// Pipelined queries after a transfer on the same connection still work.
	c, err := dnsConn(s.tcp)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tr := &dns.Transfer{Conn: c}
	ch, err := tr.In(query("example.com.", dns.TypeAXFR), "")
	if err != nil {
		t.Fatal(err)
	}
	for env := range ch {
		if env.Error != nil {
			t.Fatal(env.Error)
		}
	}
}

func dnsConn(addr string) (*dns.Conn, error) {
	return dns.DialTimeout("tcp", addr, 3*time.Second)
}

func TestTransferACL(t *testing.T) {
	s, _ := startXFR(t, func(c *Config) { c.TransferACL = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")} })
	m := query("xfr.test.", dns.TypeAXFR)
	m.SetEdns0(1232, false)
	r := exchange(t, s.tcp, "tcp", m)
	if r.Rcode != dns.RcodeRefused || ede(r) != int(dns.ExtendedErrorCodeProhibited) || len(r.Answer) != 0 {
		t.Fatalf("refused: %v", r)
	}
	m = query("xfr.test.", dns.TypeIXFR)
	m.Ns = []dns.RR{&dns.SOA{Hdr: dns.RR_Header{Name: "xfr.test.", Rrtype: dns.TypeSOA, Class: dns.ClassINET}, Ns: "a.", Mbox: "b.", Serial: 1}}
	if r := exchange(t, s.udp, "udp", m); r.Rcode != dns.RcodeRefused {
		t.Fatalf("udp ixfr: %v", r)
	}
	// A TSIG-signed request is allowed from anywhere...
	m = query("xfr.test.", dns.TypeAXFR)
	m.SetTsig("k256.", dns.HmacSHA256, 300, time.Now().Unix())
	if _, _, err := transferIn(t, s.tcp, m, map[string]string{"k256.": testSecret}); err != nil {
		t.Fatalf("signed axfr: %v", err)
	}
	if v := metricValue(s.h.m.transfers.WithLabelValues("xfr.test.", "axfr", "refused")); v != 1 {
		t.Fatalf("refused metric %v", v)
	}
	// ...unless TSIG and address are both required.
	s2, _ := startXFR(t, func(c *Config) {
		c.TransferRequireTSIG = true
		c.TransferACL = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
	})
	m = query("xfr.test.", dns.TypeAXFR)
	m.SetTsig("k256.", dns.HmacSHA256, 300, time.Now().Unix())
	if _, _, err := transferIn(t, s2.tcp, m, map[string]string{"k256.": testSecret}); err == nil {
		t.Fatal("signed axfr from outside the ACL allowed")
	}
	s3, _ := startXFR(t, func(c *Config) { c.TransferRequireTSIG = true })
	if r := exchange(t, s3.tcp, "tcp", query("xfr.test.", dns.TypeAXFR)); r.Rcode != dns.RcodeRefused {
		t.Fatalf("unsigned axfr with RequireTSIG: %v", r)
	}
	m = query("xfr.test.", dns.TypeAXFR)
	m.SetTsig("k512.", dns.HmacSHA512, 300, time.Now().Unix())
	if _, _, err := transferIn(t, s3.tcp, m, map[string]string{"k512.": testSecret}); err != nil {
		t.Fatalf("signed axfr with RequireTSIG: %v", err)
	}
}

func ixfrQuery(serial uint32) *dns.Msg {
	m := query("xfr.test.", dns.TypeIXFR)
	m.Ns = []dns.RR{&dns.SOA{Hdr: dns.RR_Header{Name: "xfr.test.", Rrtype: dns.TypeSOA, Class: dns.ClassINET}, Ns: "a.", Mbox: "b.", Serial: serial}}
	return m
}

func TestIXFR(t *testing.T) {
	s, z := startXFR(t, nil)
	// From serial 1: both diffs, condensed per RFC 1995.
	rrs, _, err := transferIn(t, s.tcp, ixfrQuery(1), nil)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := z.IXFR(1)
	if len(rrs) != len(want) || len(rrs) != 10 {
		t.Fatalf("ixfr from 1: %d records, want %d: %v", len(rrs), len(want), rrs)
	}
	for i := range want {
		if rrs[i].String() != want[i].String() {
			t.Fatalf("record %d: %v != %v", i, rrs[i], want[i])
		}
	}
	// Unknown serial: the whole zone, AXFR style.
	rrs, _, err = transferIn(t, s.tcp, ixfrQuery(0), nil)
	if err != nil || len(rrs) != len(z.AXFR()) {
		t.Fatalf("ixfr fallback: %d records", len(rrs))
	}
	c := &dns.Client{Net: "tcp", Timeout: 5 * time.Second}
	// Up to date, or ahead (serial arithmetic): the SOA alone.
	for _, serial := range []uint32{3, 4, 100, 3 + 1<<30} {
		r, _, err := c.Exchange(ixfrQuery(serial), s.tcp)
		if err != nil {
			t.Fatal(err)
		}
		if r.Rcode != dns.RcodeSuccess || !r.Authoritative || len(r.Answer) != 1 || r.Answer[0].(*dns.SOA).Serial != 3 {
			t.Fatalf("ixfr from %d: %v", serial, r)
		}
	}
	// Over UDP: the SOA when up to date, else the SOA with TC.
	r := exchange(t, s.udp, "udp", ixfrQuery(3))
	if r.Truncated || len(r.Answer) != 1 || r.Answer[0].(*dns.SOA).Serial != 3 {
		t.Fatalf("udp ixfr up to date: %v", r)
	}
	r = exchange(t, s.udp, "udp", ixfrQuery(1))
	if !r.Truncated || len(r.Answer) != 1 || r.Answer[0].(*dns.SOA).Serial != 3 {
		t.Fatalf("udp ixfr behind: %v", r)
	}
	if v := metricValue(s.h.m.transfers.WithLabelValues("xfr.test.", "ixfr", "axfr")); v != 1 {
		t.Fatalf("fallback metric %v", v)
	}
}

func TestTSIG(t *testing.T) {
	s := startTest(t, nil)
	now := time.Now().Unix()
	// Every algorithm: a signed query gets a signed answer the client
	// verifies (dns.Client checks the response TSIG).
	for _, k := range []struct{ name, alg string }{{"k256.", dns.HmacSHA256}, {"K512.", dns.HmacSHA512}, {"k1.", dns.HmacSHA1}} {
		for _, proto := range []string{"udp", "tcp"} {
			m := query("www.example.com.", dns.TypeA)
			m.SetEdns0(1232, false)
			m.SetTsig(k.name, k.alg, 300, now)
			c := &dns.Client{Net: proto, TsigSecret: map[string]string{k.name: testSecret}}
			r, _, err := c.Exchange(m, s.addr(proto))
			if err != nil {
				t.Fatalf("%s %s: %v", k.name, proto, err)
			}
			if r.IsTsig() == nil || r.IsTsig().Error != 0 || len(r.Answer) != 1 || r.IsEdns0() == nil {
				t.Fatalf("%s %s: %v", k.name, proto, r)
			}
		}
	}
	// Failures: NOTAUTH with the TSIG error, unsigned except BADTIME.
	sign := func(key, alg, secret string, at int64) []byte {
		m := query("www.example.com.", dns.TypeA)
		m.SetTsig(key, alg, 300, at)
		b, _, err := dns.TsigGenerate(m, secret, "", false)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	wrong := "d3Jvbmcgc2VjcmV0"
	for _, c := range []struct {
		name    string
		req     []byte
		tsigErr uint16
		signed  bool
	}{
		{"bad mac", sign("k256.", dns.HmacSHA256, wrong, now), dns.RcodeBadSig, false},
		{"unknown key", sign("nokey.", dns.HmacSHA256, testSecret, now), dns.RcodeBadKey, false},
		{"wrong algorithm", sign("k256.", dns.HmacSHA512, testSecret, now), dns.RcodeBadKey, false},
		{"bad time", sign("k256.", dns.HmacSHA256, testSecret, now-1000), dns.RcodeBadTime, true},
		{"bad mac and time", sign("k256.", dns.HmacSHA256, wrong, now-1000), dns.RcodeBadSig, false},
		{"truncated mac", func() []byte {
			b := sign("k256.", dns.HmacSHA256, testSecret, now)
			m := mustUnpack(t, b)
			ts := m.IsTsig()
			ts.MAC, ts.MACSize = ts.MAC[:20], 10
			return mustPack(t, m)
		}(), dns.RcodeBadTrunc, false},
	} {
		resp := rawExchange(t, s.udp, c.req, 2*time.Second)
		if resp == nil {
			t.Fatalf("%s: no response", c.name)
		}
		r := mustUnpack(t, resp)
		ts := r.IsTsig()
		if r.Rcode != dns.RcodeNotAuth || ts == nil || ts.Error != c.tsigErr || (ts.MACSize != 0) != c.signed {
			t.Fatalf("%s: %v", c.name, r)
		}
		if c.signed {
			// dns.TsigVerify refuses every NOTAUTH message, so check the
			// MAC with our verifier: BADTIME (the echoed old time) means
			// the MAC itself was good.
			start, tr, err := findTSIG(resp)
			if err != nil {
				t.Fatal(err)
			}
			_, reqTSIG, _ := findTSIG(c.req)
			if _, terr := verifyTSIG(resp, start, &tr, s.h.cfg.keys, time.Now(), reqTSIG.mac); terr != dns.RcodeBadTime {
				t.Fatalf("%s: response signature: %s", c.name, dns.RcodeToString[int(terr)])
			}
			if ts.OtherLen != 6 {
				t.Fatalf("%s: other data %v", c.name, ts)
			}
		}
	}
	if v := metricValue(s.h.m.tsigErrors.WithLabelValues("BADSIG")); v != 2 {
		t.Fatalf("tsig error metric %v", v)
	}
	// A corrupted TSIG RR is a FORMERR.
	b := sign("k256.", dns.HmacSHA256, testSecret, now)
	b = b[:len(b)-3]
	headerOnly(t, "short tsig", rawExchange(t, s.udp, b, 2*time.Second), uint16At(b), 0, dns.RcodeFormatError, false)
	// TSIG not last: FORMERR.
	m := mustUnpack(t, sign("k256.", dns.HmacSHA256, testSecret, now))
	m.Extra = append(m.Extra, &dns.A{Hdr: dns.RR_Header{Name: "x.", Rrtype: dns.TypeA, Class: dns.ClassINET}, A: []byte{1, 2, 3, 4}})
	b = mustPack(t, m)
	headerOnly(t, "tsig not last", rawExchange(t, s.udp, b, 2*time.Second), uint16At(b), 0, dns.RcodeFormatError, false)
}

func uint16At(b []byte) uint16 { return uint16(b[0])<<8 | uint16(b[1]) }
