package dnsserver

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestAnswerBothTransports(t *testing.T) {
	s := startTest(t, nil)
	for _, proto := range []string{"udp", "tcp"} {
		m := query("WwW.ExAmple.CoM.", dns.TypeA)
		m.RecursionDesired = true
		r := exchange(t, s.addr(proto), proto, m)
		if r.Rcode != dns.RcodeSuccess || !r.Authoritative || !r.RecursionDesired || r.RecursionAvailable || r.Truncated {
			t.Fatalf("%s: header %+v", proto, r.MsgHdr)
		}
		if len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "192.0.2.10" {
			t.Fatalf("%s: answer %v", proto, r.Answer)
		}
		// The question is echoed verbatim and names compress against it, so
		// the owner keeps the client's case (0x20), as with NSD.
		if r.Question[0].Name != "WwW.ExAmple.CoM." || r.Answer[0].Header().Name != "WwW.ExAmple.CoM." {
			t.Fatalf("%s: case not preserved: %v %v", proto, r.Question, r.Answer)
		}
		if len(r.Ns) != 2 || len(r.Extra) != 2 || r.IsEdns0() != nil {
			t.Fatalf("%s: sections %v %v", proto, r.Ns, r.Extra)
		}
	}
	// Negative answers carry the SOA.
	r := exchange(t, s.udp, "udp", query("nope.example.com.", dns.TypeA))
	if r.Rcode != dns.RcodeNameError || !r.Authoritative || len(r.Ns) != 1 || r.Ns[0].Header().Rrtype != dns.TypeSOA {
		t.Fatalf("nxdomain: %v", r)
	}
	// Wildcards and referrals come from the zone package; check they pass
	// through (AA off on referrals).
	r = exchange(t, s.udp, "udp", query("x.wild.example.com.", dns.TypeA))
	if len(r.Answer) != 1 || r.Answer[0].Header().Name != "x.wild.example.com." {
		t.Fatalf("wildcard: %v", r)
	}
	r = exchange(t, s.udp, "udp", queryEDNS("a.sub.example.com.", dns.TypeA, 4096, false))
	// 4096 asked, our 1232 used: 37 glue RRsets fit, as with NSD.
	if r.Authoritative || len(r.Ns) != 20 || len(r.Extra) != 38 || wireLen(r) > 1232 {
		t.Fatalf("referral: aa=%v ns=%d extra=%d", r.Authoritative, len(r.Ns), len(r.Extra))
	}
}

func TestCDCopied(t *testing.T) {
	// RFC 4035 3.1.6: CD is copied to the response (NSD clears it; BIND and
	// Knot copy it). AD, Z, AA, TC and RA from the query are not.
	s := startTest(t, nil)
	m := query("www.example.com.", dns.TypeA)
	m.CheckingDisabled, m.AuthenticatedData, m.Zero, m.RecursionAvailable, m.Truncated = true, true, true, true, true
	r := exchange(t, s.udp, "udp", m)
	if !r.CheckingDisabled || r.AuthenticatedData || r.Zero || r.RecursionAvailable || r.Truncated || !r.Authoritative {
		t.Fatalf("flags %+v", r.MsgHdr)
	}
}

func TestRefusedOutsideZones(t *testing.T) {
	s := startTest(t, nil)
	m := query("www.example.org.", dns.TypeA)
	m.RecursionDesired = true
	r := exchange(t, s.udp, "udp", m)
	if r.Rcode != dns.RcodeRefused || r.Authoritative || !r.RecursionDesired || len(r.Question) != 1 || r.IsEdns0() != nil {
		t.Fatalf("refused: %v", r)
	}
	r = exchange(t, s.udp, "udp", queryEDNS("www.example.org.", dns.TypeA, 1232, true))
	if r.Rcode != dns.RcodeRefused || ede(r) != int(dns.ExtendedErrorCodeNotAuthoritative) || !r.IsEdns0().Do() {
		t.Fatalf("refused edns: %v", r)
	}
	// No zone table at all behaves the same.
	s.zones.Store(nil)
	r = exchange(t, s.udp, "udp", query("www.example.com.", dns.TypeA))
	if r.Rcode != dns.RcodeRefused {
		t.Fatalf("nil table: %v", r)
	}
}

// headerOnly checks a bare-header error response.
func headerOnly(t *testing.T, name string, resp []byte, id uint16, opcode, rcode int, rd bool) {
	t.Helper()
	if resp == nil {
		t.Fatalf("%s: no response", name)
	}
	m := mustUnpack(t, resp)
	if len(resp) != headerLen || m.Id != id || !m.Response || m.Opcode != opcode || m.Rcode != rcode || m.RecursionDesired != rd || m.Authoritative {
		t.Fatalf("%s: got %d bytes %+v", name, len(resp), m.MsgHdr)
	}
}

func TestMalformedAndOpcodes(t *testing.T) {
	s := startTest(t, nil)
	base := func() *dns.Msg {
		m := query("www.example.com.", dns.TypeA)
		m.RecursionDesired = true
		return m
	}
	cases := []struct {
		name   string
		pkt    func() []byte
		opcode int
		rcode  int
		rd     bool
	}{
		{"qdcount 0", func() []byte { m := base(); m.Question = nil; return mustPack(t, m) }, 0, dns.RcodeFormatError, false},
		{"qdcount 2", func() []byte { m := base(); m.Question = append(m.Question, m.Question[0]); return mustPack(t, m) }, 0, dns.RcodeFormatError, false},
		{"answer record", func() []byte {
			m := base()
			m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: "x.", Rrtype: dns.TypeA, Class: dns.ClassINET}, A: net.IPv4(1, 2, 3, 4)}}
			return mustPack(t, m)
		}, 0, dns.RcodeFormatError, false},
		{"authority record", func() []byte {
			m := base()
			m.Ns = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: "x.", Rrtype: dns.TypeA, Class: dns.ClassINET}, A: net.IPv4(1, 2, 3, 4)}}
			return mustPack(t, m)
		}, 0, dns.RcodeFormatError, false},
		{"two OPT", func() []byte {
			m := base()
			m.SetEdns0(1232, false)
			m.Extra = append(m.Extra, m.Extra[0])
			return mustPack(t, m)
		}, 0, dns.RcodeFormatError, false},
		{"OPT not root", func() []byte {
			m := base()
			m.SetEdns0(1232, false)
			m.Extra[0].Header().Name = "x."
			return mustPack(t, m)
		}, 0, dns.RcodeFormatError, false},
		{"OPT option overruns", func() []byte {
			m := base()
			m.SetEdns0(1232, false)
			b := mustPack(t, m)
			return append(b[:len(b)-2], 0, 4, 0, 1, 0, 9) // rdlen 4: code 1, length 9
		}, 0, dns.RcodeFormatError, false},
		{"truncated question", func() []byte { b := mustPack(t, base()); return b[:len(b)-2] }, 0, dns.RcodeFormatError, false},
		{"header only", func() []byte { return mustPack(t, base())[:headerLen] }, 0, dns.RcodeFormatError, false},
		{"compressed qname", func() []byte {
			b := mustPack(t, base())
			return append(b[:headerLen], 0xC0, 12, 0, 1, 0, 1)
		}, 0, dns.RcodeFormatError, false},
		{"label too long", func() []byte {
			b := mustPack(t, base())[:headerLen]
			b = append(b, 64)
			b = append(b, bytes.Repeat([]byte{'a'}, 64)...)
			return append(b, 0, 0, 1, 0, 1)
		}, 0, dns.RcodeFormatError, false},
		{"name too long", func() []byte {
			b := mustPack(t, base())[:headerLen]
			for range 5 {
				b = append(b, 60)
				b = append(b, bytes.Repeat([]byte{'a'}, 60)...)
			}
			return append(b, 0, 0, 1, 0, 1)
		}, 0, dns.RcodeFormatError, false},
		{"more additional than sent", func() []byte { b := mustPack(t, base()); b[11] = 1; return b }, 0, dns.RcodeFormatError, false},
		{"IXFR without SOA", func() []byte { return mustPack(t, query("example.com.", dns.TypeIXFR)) }, 0, dns.RcodeFormatError, false},
		{"NOTIFY", func() []byte { m := base(); m.Opcode = dns.OpcodeNotify; return mustPack(t, m) }, dns.OpcodeNotify, dns.RcodeRefused, true},
		{"UPDATE", func() []byte { m := base(); m.Opcode = dns.OpcodeUpdate; return mustPack(t, m) }, dns.OpcodeUpdate, dns.RcodeNotImplemented, true},
		{"IQUERY", func() []byte { m := base(); m.Opcode = dns.OpcodeIQuery; return mustPack(t, m) }, dns.OpcodeIQuery, dns.RcodeNotImplemented, true},
		{"STATUS", func() []byte { m := base(); m.Opcode = dns.OpcodeStatus; return mustPack(t, m) }, dns.OpcodeStatus, dns.RcodeNotImplemented, true},
		{"opcode 3 with EDNS", func() []byte { m := base(); m.Opcode = 3; m.SetEdns0(1232, false); return mustPack(t, m) }, 3, dns.RcodeNotImplemented, true},
	}
	for _, c := range cases {
		req := c.pkt()
		id := binary.BigEndian.Uint16(req)
		headerOnly(t, c.name, rawExchange(t, s.udp, req, 2*time.Second), id, c.opcode, c.rcode, c.rd)
	}
	// Trailing bytes after the records are ignored, as NSD does.
	req := append(mustPack(t, base()), 1, 2, 3)
	if r := mustUnpack(t, rawExchange(t, s.udp, req, 2*time.Second)); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		t.Fatalf("trailing garbage: %v", r)
	}
	// Responses and runts get no answer at all.
	resp := mustPack(t, base())
	resp[2] |= 0x80
	if r := rawExchange(t, s.udp, resp, 300*time.Millisecond); r != nil {
		t.Fatalf("answered a response: %x", r)
	}
	if r := rawExchange(t, s.udp, []byte{1, 2, 3}, 300*time.Millisecond); r != nil {
		t.Fatalf("answered a runt: %x", r)
	}
	if got := metricValue(s.h.m.dropped.WithLabelValues("response")); got != 1 {
		t.Fatalf("dropped responses = %v", got)
	}
}

func TestClasses(t *testing.T) {
	s := startTest(t, nil)
	// CH for a zone name: REFUSED with the question.
	m := query("www.example.com.", dns.TypeA)
	m.Question[0].Qclass = dns.ClassCHAOS
	m.SetEdns0(1232, false)
	r := exchange(t, s.udp, "udp", m)
	if r.Rcode != dns.RcodeRefused || len(r.Question) != 1 || ede(r) != int(dns.ExtendedErrorCodeNotSupported) {
		t.Fatalf("CH: %v", r)
	}
	// HS and NONE: a bare header (with OPT), as NSD.
	for _, class := range []uint16{dns.ClassHESIOD, dns.ClassNONE, 2} {
		m = query("www.example.com.", dns.TypeA)
		m.Question[0].Qclass = class
		r = mustUnpack(t, rawExchange(t, s.udp, mustPack(t, m), 2*time.Second))
		if r.Rcode != dns.RcodeRefused || len(r.Question) != 0 {
			t.Fatalf("class %d: %v", class, r)
		}
	}
	// ANY: IN data, AA off, only the answer...
	m = query("www.example.com.", dns.TypeA)
	m.Question[0].Qclass = dns.ClassANY
	r = exchange(t, s.udp, "udp", m)
	if r.Rcode != dns.RcodeSuccess || r.Authoritative || len(r.Answer) != 1 || len(r.Ns) != 0 || len(r.Extra) != 0 {
		t.Fatalf("class ANY: %v", r)
	}
	m.Question[0].Name = "nope.example.com."
	r = exchange(t, s.udp, "udp", m)
	if r.Rcode != dns.RcodeNameError || r.Authoritative || len(r.Ns) != 0 {
		t.Fatalf("class ANY nxdomain: %v", r)
	}
	// ...but a referral stays whole.
	m.Question[0].Name = "a.sub.example.com."
	r = exchange(t, s.udp, "udp", m)
	if r.Authoritative || len(r.Ns) != 20 || len(r.Extra) == 0 {
		t.Fatalf("class ANY referral: %v", r)
	}
}

func TestChaos(t *testing.T) {
	s := startTest(t, nil)
	for name, want := range map[string]string{
		"version.bind.": "FlashDNS test", "VERSION.Server.": "FlashDNS test",
		"id.server.": "test-id", "hostname.bind.": "test-id",
	} {
		for _, qt := range []uint16{dns.TypeTXT, dns.TypeANY} {
			m := query(name, qt)
			m.Question[0].Qclass = dns.ClassCHAOS
			m.SetEdns0(1232, true)
			r := exchange(t, s.udp, "udp", m)
			if r.Rcode != dns.RcodeSuccess || r.Authoritative || len(r.Answer) != 1 {
				t.Fatalf("%s: %v", name, r)
			}
			txt := r.Answer[0].(*dns.TXT)
			if txt.Txt[0] != want || txt.Hdr.Class != dns.ClassCHAOS || txt.Hdr.Ttl != 0 || txt.Hdr.Name != name || !r.IsEdns0().Do() {
				t.Fatalf("%s: %v", name, r)
			}
		}
	}
	for _, c := range []struct {
		name  string
		qtype uint16
	}{{"version.bind.", dns.TypeA}, {"authors.bind.", dns.TypeTXT}} {
		m := query(c.name, c.qtype)
		m.Question[0].Qclass = dns.ClassCHAOS
		if r := exchange(t, s.udp, "udp", m); r.Rcode != dns.RcodeRefused || len(r.Question) != 1 {
			t.Fatalf("%s: %v", c.name, r)
		}
	}
	// Empty strings hide the answers.
	s2 := startTest(t, func(c *Config) { c.ChaosVersion, c.ChaosID = "", "" })
	m := query("version.bind.", dns.TypeTXT)
	m.Question[0].Qclass = dns.ClassCHAOS
	if r := exchange(t, s2.udp, "udp", m); r.Rcode != dns.RcodeRefused {
		t.Fatalf("hidden version: %v", r)
	}
	// IN version.bind is just a name outside our zones.
	if r := exchange(t, s.udp, "udp", query("version.bind.", dns.TypeTXT)); r.Rcode != dns.RcodeRefused {
		t.Fatalf("IN version.bind: %v", r)
	}
}

func TestTruncation(t *testing.T) {
	s := startTest(t, nil)
	// An answer RRset that does not fit: TC, empty answer (NSD).
	for _, q := range []struct {
		name  string
		qtype uint16
	}{{"big.example.com.", dns.TypeTXT}, {"many.example.com.", dns.TypeA}, {"mx.example.com.", dns.TypeMX}, {"bigns.test.", dns.TypeNS}} {
		r := exchange(t, s.udp, "udp", query(q.name, q.qtype))
		if !r.Truncated || len(r.Answer) != 0 || len(r.Ns) != 0 || len(r.Extra) != 0 || !r.Authoritative || len(r.Question) != 1 {
			t.Fatalf("%s: %v", q.name, r)
		}
		// Over TCP the whole answer comes.
		r = exchange(t, s.tcp, "tcp", query(q.name, q.qtype))
		if r.Truncated || len(r.Answer) == 0 {
			t.Fatalf("%s over TCP: %v", q.name, r)
		}
	}
	// A CNAME that fits stays, the target RRset that does not is cut.
	r := exchange(t, s.udp, "udp", query("cn.example.com.", dns.TypeA))
	if !r.Truncated || len(r.Answer) != 1 || r.Answer[0].Header().Rrtype != dns.TypeCNAME {
		t.Fatalf("cname: %v", r)
	}
	// With EDNS and room, no TC; with the OPT of a truncated answer kept.
	r = exchange(t, s.udp, "udp", queryEDNS("many.example.com.", dns.TypeA, 4096, false))
	if r.Truncated || len(r.Answer) != 60 {
		t.Fatalf("many with EDNS: tc=%v answers=%d", r.Truncated, len(r.Answer))
	}
	r = exchange(t, s.udp, "udp", queryEDNS("many.example.com.", dns.TypeA, 512, true))
	if !r.Truncated || r.IsEdns0() == nil || !r.IsEdns0().Do() {
		t.Fatalf("many at 512: %v", r)
	}
	// Our UDP size caps the client's: 4096 asked, 1232 used.
	r = exchange(t, s.udp, "udp", queryEDNS("mx.example.com.", dns.TypeMX, 4096, false))
	if r.Truncated || len(r.Answer) != 40 || wireLen(r) > 1232 || len(r.Extra) != 16 {
		t.Fatalf("mx at 1232: tc=%v len=%d extra=%d", r.Truncated, wireLen(r), len(r.Extra))
	}
	// The answer fits, the NS set beside it does not: left out, no TC.
	r = exchange(t, s.udp, "udp", query("t.bigns.test.", dns.TypeTXT))
	if r.Truncated || len(r.Answer) != 1 || len(r.Ns) != 0 {
		t.Fatalf("optional authority: %v", r)
	}
	// A referral whose NS set does not fit: TC.
	r = exchange(t, s.udp, "udp", query("x.deleg.bigns.test.", dns.TypeA))
	if !r.Truncated || len(r.Ns) != 0 || r.Authoritative {
		t.Fatalf("referral: %v", r)
	}
	// Glue that does not fit is skipped RRset by RRset within its type:
	// the big A set of b.mix goes, the A of a.mix and c.mix stay, the AAAA
	// glue after a miss is not tried (NSD).
	r = exchange(t, s.udp, "udp", query("x.mix.bigns.test.", dns.TypeA))
	if r.Truncated || len(r.Ns) != 3 || countType(r.Extra, dns.TypeA) != 2 || countType(r.Extra, dns.TypeAAAA) != 0 {
		t.Fatalf("glue: %v", r)
	}
	// A referral without room for any A glue: TC (NSD: a delegation
	// should have a usable address).
	r = exchange(t, s.udp, "udp", query("x.tight.bigns.test.", dns.TypeA))
	if !r.Truncated || len(r.Ns) != 10 || len(r.Extra) != 0 {
		t.Fatalf("tight referral: %v", r)
	}
	// No EDNS referral: NS set whole, glue as far as it goes.
	r = exchange(t, s.udp, "udp", query("a.sub.example.com.", dns.TypeA))
	if r.Truncated || len(r.Ns) != 20 || len(r.Extra) != 6 || wireLen(r) > 512 {
		t.Fatalf("sub referral: %v", r)
	}
	if got := metricValue(s.h.m.truncated.WithLabelValues("udp")); got < 7 {
		t.Fatalf("truncated metric = %v", got)
	}
}

func TestReusePortSockets(t *testing.T) {
	s := startTest(t, func(c *Config) {
		c.SocketsPerAddr = 4
		c.Addrs = []string{"127.0.0.1:0", "[::1]:0"}
	})
	if len(s.addrs) != 2 {
		t.Fatalf("addrs %d", len(s.addrs))
	}
	for i, b := range s.addrs {
		if len(b.udp) != 4 || len(b.tcp) != 4 {
			t.Fatalf("sockets: %d udp %d tcp", len(b.udp), len(b.tcp))
		}
		port := b.tcp[0].Addr().(*net.TCPAddr).Port
		for _, c := range b.udp {
			if c.LocalAddr().(*net.UDPAddr).Port != port {
				t.Fatalf("udp %v not on tcp port %d", c.LocalAddr(), port)
			}
		}
		for _, l := range b.tcp {
			if l.Addr().(*net.TCPAddr).Port != port {
				t.Fatalf("tcp %v not on port %d", l.Addr(), port)
			}
		}
		// Many client ports hash to every socket; all get answers.
		for range 40 {
			if r := exchange(t, s.UDPAddrs()[i], "udp", query("www.example.com.", dns.TypeA)); len(r.Answer) != 1 {
				t.Fatal(r)
			}
		}
		for range 10 {
			if r := exchange(t, s.TCPAddrs()[i], "tcp", query("www.example.com.", dns.TypeA)); len(r.Answer) != 1 {
				t.Fatal(r)
			}
		}
	}
	// A host name binds every socket to the one address it resolved to.
	sl := startTest(t, func(c *Config) { c.Addrs = []string{"localhost:0"} })
	if sl.udp != sl.tcp {
		t.Fatalf("localhost: udp %s tcp %s", sl.udp, sl.tcp)
	}
	if r := exchange(t, sl.udp, "udp", query("www.example.com.", dns.TypeA)); len(r.Answer) != 1 {
		t.Fatal(r)
	}
	// Two servers never share a port by accident.
	s2 := startTest(t, nil)
	if s2.udp == s.UDPAddrs()[0] {
		t.Fatal("second server got the same port")
	}
}

func TestPktinfoReplies(t *testing.T) {
	testForcePktinfo = true
	s := startTest(t, nil)
	testForcePktinfo = false
	if !s.addrs[0].pktinfo {
		t.Fatal("pktinfo not enabled")
	}
	// dns.Client's connected UDP socket only accepts replies from the
	// address it sent to, so an answer proves the source is right.
	for range 5 {
		if r := exchange(t, s.udp, "udp", query("www.example.com.", dns.TypeA)); len(r.Answer) != 1 {
			t.Fatal(r)
		}
	}
	testForcePktinfo = true
	s6 := startTest(t, func(c *Config) { c.Addrs = []string{"[::1]:0"} })
	testForcePktinfo = false
	if r := exchange(t, s6.udp, "udp", query("www.example.com.", dns.TypeA)); len(r.Answer) != 1 {
		t.Fatal(r)
	}
}

func TestTCPPipelining(t *testing.T) {
	s := startTest(t, nil)
	c, err := net.Dial("tcp", s.tcp)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// 100 queries in one write, some large answers among them.
	names := []string{"www.example.com.", "mx.example.com.", "nope.example.com.", "many.example.com."}
	var batch []byte
	for i := range 100 {
		m := query(names[i%len(names)], dns.TypeANY)
		if i%4 == 1 {
			m.Question[0].Qtype = dns.TypeMX
		}
		m.Id = uint16(i)
		b := mustPack(t, m)
		batch = binary.BigEndian.AppendUint16(batch, uint16(len(b)))
		batch = append(batch, b...)
	}
	if _, err := c.Write(batch); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for i := range 100 {
		var l [2]byte
		if _, err := io.ReadFull(c, l[:]); err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		b := make([]byte, binary.BigEndian.Uint16(l[:]))
		if _, err := io.ReadFull(c, b); err != nil {
			t.Fatal(err)
		}
		r := mustUnpack(t, b)
		if r.Id != uint16(i) || r.Truncated {
			t.Fatalf("response %d: id %d tc %v", i, r.Id, r.Truncated)
		}
	}
	// A query split across writes is reassembled.
	b := mustPack(t, query("www.example.com.", dns.TypeA))
	frame := binary.BigEndian.AppendUint16(nil, uint16(len(b)))
	frame = append(frame, b...)
	for _, part := range [][]byte{frame[:1], frame[1:10], frame[10:]} {
		c.Write(part)
		time.Sleep(10 * time.Millisecond)
	}
	var l [2]byte
	if _, err := io.ReadFull(c, l[:]); err != nil {
		t.Fatal(err)
	}
	resp := make([]byte, binary.BigEndian.Uint16(l[:]))
	io.ReadFull(c, resp)
	if r := mustUnpack(t, resp); len(r.Answer) != 1 {
		t.Fatal(r)
	}
}

func TestTCPIdleTimeoutAndLimit(t *testing.T) {
	s := startTest(t, func(c *Config) {
		c.TCPIdleTimeout = 300 * time.Millisecond
		c.MaxTCPConns = 2
		c.SocketsPerAddr = 1
	})
	// Idle connections are closed.
	c, err := net.Dial("tcp", s.tcp)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("idle read: %v", err)
	}
	if d := time.Since(start); d < 250*time.Millisecond || d > 3*time.Second {
		t.Fatalf("closed after %v", d)
	}
	c.Close()
	// With both slots taken by open connections a third waits in the
	// listen queue until one closes.
	s2 := startTest(t, func(c *Config) { c.MaxTCPConns = 2; c.SocketsPerAddr = 1 })
	var held []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", s2.tcp)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	// Make sure both were accepted before the third dials.
	for _, c := range held {
		tcpQuery(t, c, query("www.example.com.", dns.TypeA))
	}
	third, err := net.Dial("tcp", s2.tcp)
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	b := mustPack(t, query("www.example.com.", dns.TypeA))
	third.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(b))), b...))
	third.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := third.Read(make([]byte, 2)); err == nil {
		t.Fatal("third connection served while at the limit")
	}
	held[0].Close()
	third.SetReadDeadline(time.Now().Add(5 * time.Second))
	var l [2]byte
	if _, err := io.ReadFull(third, l[:]); err != nil {
		t.Fatalf("third after a slot freed: %v", err)
	}
	held[1].Close()
	if g := metricValue(s2.h.m.tcpConns); g < 1 {
		t.Fatalf("tcp connections gauge %v", g)
	}
}

// tcpQuery sends m on an open connection and reads one response.
func tcpQuery(t testing.TB, c net.Conn, m *dns.Msg) *dns.Msg {
	t.Helper()
	b := mustPack(t, m)
	if _, err := c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(b))), b...)); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var l [2]byte
	if _, err := io.ReadFull(c, l[:]); err != nil {
		t.Fatal(err)
	}
	resp := make([]byte, binary.BigEndian.Uint16(l[:]))
	if _, err := io.ReadFull(c, resp); err != nil {
		t.Fatal(err)
	}
	return mustUnpack(t, resp)
}

func TestZoneSwapAndMetrics(t *testing.T) {
	s := startTest(t, nil)
	if r := exchange(t, s.udp, "udp", query("new.test.", dns.TypeSOA)); r.Rcode != dns.RcodeRefused {
		t.Fatal(r)
	}
	nz := buildZone(t, "new.test.", "@ SOA ns.new.test. h.new.test. 7 1 1 1 1\n@ NS ns.new.test.\nns A 192.0.2.7\n")
	s.zones.Store(s.zones.Load().With(nz))
	if r := exchange(t, s.udp, "udp", query("new.test.", dns.TypeSOA)); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		t.Fatal(r)
	}
	exchange(t, s.tcp, "tcp", query("nope.new.test.", dns.TypeA))
	if v := metricValue(s.h.m.queries.WithLabelValues("new.test.", "NOERROR")); v != 1 {
		t.Fatalf("queries{new.test.,NOERROR} = %v", v)
	}
	if v := metricValue(s.h.m.queries.WithLabelValues("new.test.", "NXDOMAIN")); v != 1 {
		t.Fatalf("queries{new.test.,NXDOMAIN} = %v", v)
	}
	if v := metricValue(s.h.m.queries.WithLabelValues("", "REFUSED")); v != 1 {
		t.Fatalf("queries{,REFUSED} = %v", v)
	}
	if v := metricValue(s.h.m.qtypes.WithLabelValues("SOA", "udp")); v != 2 {
		t.Fatalf("qtypes{SOA,udp} = %v", v)
	}
	if v := metricValue(s.h.m.qtypes.WithLabelValues("A", "tcp")); v != 1 {
		t.Fatalf("qtypes{A,tcp} = %v", v)
	}
	// Deleting the zone drops its series.
	s.zones.Store(s.zones.Load().Without("new.test."))
	s.ZoneChanged(nz, nil)
	if n := collectCount(s.h.m.queries); n != 1 {
		t.Fatalf("%d query series after delete", n)
	}
	if r := exchange(t, s.udp, "udp", query("new.test.", dns.TypeSOA)); r.Rcode != dns.RcodeRefused {
		t.Fatal(r)
	}
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func TestQueryLog(t *testing.T) {
	var buf syncBuffer
	s := startTest(t, func(c *Config) {
		c.LogQueries = true
		c.Logger = slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	exchange(t, s.udp, "udp", query("www.example.com.", dns.TypeAAAA))
	if out := buf.String(); !strings.Contains(out, "qname=www.example.com.") || !strings.Contains(out, "qtype=AAAA") || !strings.Contains(out, "rcode=NOERROR") {
		t.Fatalf("query log: %s", out)
	}
}

func TestConfigErrors(t *testing.T) {
	ctx := context.Background()
	bad := []Config{
		{},
		{Addrs: []string{"127.0.0.1:0"}},
		{Addrs: []string{"127.0.0.1"}, Zones: nilTable},
		{Addrs: []string{"127.0.0.1:0"}, Zones: nilTable, TSIG: []TSIGKey{{Name: "k.", Algorithm: "hmac-md5", Secret: "c2VjcmV0"}}},
		{Addrs: []string{"127.0.0.1:0"}, Zones: nilTable, TSIG: []TSIGKey{{Name: "k.", Secret: "not base64!"}}},
		{Addrs: []string{"127.0.0.1:0"}, Zones: nilTable, TSIG: []TSIGKey{{Name: "k.", Secret: "c2VjcmV0"}, {Name: "K", Secret: "c2VjcmV0"}}},
		{Addrs: []string{"127.0.0.1:0"}, Zones: nilTable, NotifyTargets: []string{"127.0.0.1:53 key nokey."}},
		{Addrs: []string{"127.0.0.1:0"}, Zones: nilTable, NotifyTargets: []string{"127.0.0.1:99999"}},
		{Addrs: []string{"127.0.0.1:0"}, Zones: nilTable, NotifyTargets: []string{"127.0.0.1 keys k."}},
	}
	for i, cfg := range bad {
		if s, err := Start(ctx, cfg); err == nil {
			s.Close()
			t.Fatalf("config %d accepted", i)
		}
	}
	keys, _ := parseTSIGKeys([]TSIGKey{{Name: "K.Example.", Secret: testSecret}})
	for _, c := range []struct{ in, addr string }{
		{"192.0.2.1", "192.0.2.1:53"}, {"[2001:db8::1]", "[2001:db8::1]:53"}, {"2001:db8::1", "[2001:db8::1]:53"},
		{"192.0.2.1:5300 key k.example.", "192.0.2.1:5300"}, {"ns.example.net:53", "ns.example.net:53"},
	} {
		nt, err := parseNotifyTarget(c.in, keys)
		if err != nil || nt.addr != c.addr {
			t.Fatalf("%q: %+v %v", c.in, nt, err)
		}
	}
	// A bound port in use is an error, not a silent share.
	l, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if s, err := Start(ctx, Config{Addrs: []string{l.LocalAddr().String()}, Zones: nilTable}); err == nil {
		s.Close()
		t.Fatal("bound a port held without SO_REUSEPORT")
	}
}

// TestTSIGKeys checks the one parser and check of TSIG keys: canonical
// names and algorithms, clear errors that never show the secret.
func TestTSIGKeys(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want TSIGKey
		err  string
	}{
		{in: "xfr-key:c2VjcmV0", want: TSIGKey{Name: "xfr-key.", Algorithm: dns.HmacSHA256, Secret: "c2VjcmV0"}},
		{in: "HMAC-SHA512:Xfr.Example.:c2VjcmV0", want: TSIGKey{Name: "xfr.example.", Algorithm: dns.HmacSHA512, Secret: "c2VjcmV0"}},
		{in: "hmac-sha1.:k:c2VjcmV0", want: TSIGKey{Name: "k.", Algorithm: dns.HmacSHA1, Secret: "c2VjcmV0"}},
		{in: "hmac-md5:k:c2VjcmV0", err: `TSIG key k.: unsupported algorithm "hmac-md5" (want one of hmac-sha1, hmac-sha224, hmac-sha256, hmac-sha384, hmac-sha512)`},
		{in: "k:not base64!", err: "TSIG key k.: the secret is not base64"},
		{in: "k:", err: "TSIG key k.: the secret is not base64"},
		{in: ":c2VjcmV0", err: `TSIG key: "." is not a domain name`},
		{in: "c2VjcmV0", err: "TSIG key: want [algorithm:]name:secret"},
		{in: "a:b:c:d", err: "TSIG key: want [algorithm:]name:secret"},
	} {
		got, err := ParseTSIGKey(tc.in)
		switch {
		case tc.err != "":
			if err == nil || err.Error() != tc.err {
				t.Errorf("ParseTSIGKey(%q) = %v, %v; want error %q", tc.in, got, err, tc.err)
			}
		case err != nil || got != tc.want:
			t.Errorf("ParseTSIGKey(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	k := TSIGKey{Name: "k.", Secret: testSecret}
	if s := fmt.Sprintf("%v %+v", k, []TSIGKey{k}); strings.Contains(s, testSecret) || !strings.Contains(s, "k. (hmac-sha256)") {
		t.Errorf("a printed key shows its secret or not its name: %s", s)
	}
	// Keys made in code need not be canonical; every problem is reported.
	if err := ValidateTSIGKeys([]TSIGKey{{Name: "K", Algorithm: "HMAC-SHA256.", Secret: testSecret}}); err != nil {
		t.Errorf("non-canonical key: %v", err)
	}
	err := ValidateTSIGKeys([]TSIGKey{k, {Name: "K", Secret: testSecret}, {Name: "j.", Algorithm: "sha1", Secret: testSecret}})
	if err == nil || !strings.Contains(err.Error(), "TSIG key k. given twice") || !strings.Contains(err.Error(), `unsupported algorithm "sha1"`) {
		t.Errorf("duplicate and bad keys: %v", err)
	}
}

// TestPackTypes checks the hand-written packer and the miekg fallback on
// every record type a zone may hold, escapes included: what the client
// unpacks is what the zone holds.
func TestPackTypes(t *testing.T) {
	s := startTest(t, nil)
	text := `$ORIGIN types.test.
$TTL 300
@ SOA ns.types.test. host\.master.types.test. 1 60 60 600 60
@ NS ns.types.test.
ns A 192.0.2.1
ns AAAA 2001:db8::1
a A 192.0.2.2
aaaa AAAA 2001:db8::2
cname CNAME target.example.net.
mx MX 10 mail.types.test.
mx MX 20 mail.example.net.
mail A 192.0.2.3
txt TXT "plain" "with \"quotes\" and \\backslash" "\009tab\255"
srv SRV 1 2 443 srvtarget.types.test.
caa CAA 0 issue "ca.example.net"
ptr PTR host.example.net.
`
	s.zones.Store(s.zones.Load().With(buildZone(t, "types.test.", text)))
	z := s.zones.Load().Get("types.test.")
	for _, q := range []struct {
		name  string
		qtype uint16
	}{
		{"types.test.", dns.TypeSOA}, {"types.test.", dns.TypeNS}, {"ns.types.test.", dns.TypeAAAA},
		{"a.types.test.", dns.TypeA}, {"aaaa.types.test.", dns.TypeAAAA}, {"cname.types.test.", dns.TypeCNAME},
		{"mx.types.test.", dns.TypeMX}, {"txt.types.test.", dns.TypeTXT}, {"srv.types.test.", dns.TypeSRV},
		{"caa.types.test.", dns.TypeCAA}, {"ptr.types.test.", dns.TypePTR},
	} {
		want := z.Lookup(q.name, q.qtype)
		for _, proto := range []string{"udp", "tcp"} {
			r := exchange(t, s.addr(proto), proto, queryEDNS(q.name, q.qtype, 1232, false))
			got := r.Answer
			if len(got) != len(want.Answer) || len(r.Ns) != len(want.Ns) || len(r.Extra)-1 != len(want.Extra) {
				t.Fatalf("%s %s: %v, want %+v", q.name, dns.Type(q.qtype), r, want)
			}
			for i := range got {
				if !dns.IsDuplicate(got[i], want.Answer[i]) {
					t.Fatalf("%s: got %v want %v", q.name, got[i], want.Answer[i])
				}
			}
		}
	}
}
