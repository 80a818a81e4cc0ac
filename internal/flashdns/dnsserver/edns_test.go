package dnsserver

import (
	"net"
	"testing"

	"github.com/miekg/dns"
)

// TestEDNSCompliance runs the probes of ISC's EDNS compliance tester
// (ednscomp.isc.org, genreport) against the zone apex SOA and checks the
// answer a compliant authoritative server gives to each.
func TestEDNSCompliance(t *testing.T) {
	s := startTest(t, nil)
	soa := func() *dns.Msg { return query("example.com.", dns.TypeSOA) }
	withEDNS := func(m *dns.Msg, version uint8, size uint16, do bool) *dns.Msg {
		m.SetEdns0(size, do)
		m.IsEdns0().SetVersion(version)
		return m
	}
	addOpt := func(m *dns.Msg, opts ...dns.EDNS0) *dns.Msg {
		m.IsEdns0().Option = append(m.IsEdns0().Option, opts...)
		return m
	}
	opt100 := &dns.EDNS0_LOCAL{Code: 100, Data: []byte{}}

	type check func(t *testing.T, r *dns.Msg)
	noerrorSOA := func(t *testing.T, r *dns.Msg) {
		t.Helper()
		if r.Rcode != dns.RcodeSuccess || !r.Authoritative || len(r.Answer) != 1 || r.Answer[0].Header().Rrtype != dns.TypeSOA {
			t.Fatalf("want NOERROR with the SOA: %v", r)
		}
	}
	noOPT := func(t *testing.T, r *dns.Msg) {
		t.Helper()
		if r.IsEdns0() != nil {
			t.Fatalf("OPT in the answer to a query without: %v", r)
		}
	}
	// opt0 checks the OPT a compliant server returns: version 0, our size,
	// no options echoed, no flags but DO when asked.
	opt0 := func(do bool) check {
		return func(t *testing.T, r *dns.Msg) {
			t.Helper()
			o := r.IsEdns0()
			if o == nil || o.Version() != 0 || o.UDPSize() != 1232 || len(o.Option) != 0 || o.Do() != do || o.Hdr.Ttl&0x7FFF != 0 {
				t.Fatalf("OPT: %v", r)
			}
		}
	}
	badvers := func(t *testing.T, r *dns.Msg) {
		t.Helper()
		o := r.IsEdns0()
		if r.Rcode != dns.RcodeBadVers || o == nil || o.Version() != 0 || len(r.Answer) != 0 || len(o.Option) != 0 {
			t.Fatalf("want BADVERS with an OPT of version 0: %v", r)
		}
	}
	headerBits := func(want func(*dns.Msg) bool) check {
		return func(t *testing.T, r *dns.Msg) {
			t.Helper()
			if !want(r) {
				t.Fatalf("header: %+v", r.MsgHdr)
			}
		}
	}
	probes := []struct {
		name   string
		msg    func() *dns.Msg
		proto  string
		checks []check
	}{
		{"dns", soa, "udp", []check{noerrorSOA, noOPT}},
		{"aa", func() *dns.Msg { m := soa(); m.Authoritative = true; return m }, "udp", []check{noerrorSOA}},
		{"ad", func() *dns.Msg { m := soa(); m.AuthenticatedData = true; return m }, "udp",
			[]check{noerrorSOA, headerBits(func(r *dns.Msg) bool { return !r.AuthenticatedData })}},
		{"cd", func() *dns.Msg { m := soa(); m.CheckingDisabled = true; return m }, "udp", []check{noerrorSOA}},
		{"ra", func() *dns.Msg { m := soa(); m.RecursionAvailable = true; return m }, "udp",
			[]check{noerrorSOA, headerBits(func(r *dns.Msg) bool { return !r.RecursionAvailable })}},
		{"rd", func() *dns.Msg { m := soa(); m.RecursionDesired = true; return m }, "udp",
			[]check{noerrorSOA, headerBits(func(r *dns.Msg) bool { return r.RecursionDesired && !r.RecursionAvailable })}},
		{"tc", func() *dns.Msg { m := soa(); m.Truncated = true; return m }, "udp",
			[]check{noerrorSOA, headerBits(func(r *dns.Msg) bool { return !r.Truncated })}},
		{"zflag", func() *dns.Msg { m := soa(); m.Zero = true; return m }, "udp",
			[]check{noerrorSOA, headerBits(func(r *dns.Msg) bool { return !r.Zero })}},
		{"opcode", func() *dns.Msg { m := soa(); m.Opcode = 15; return m }, "udp",
			[]check{headerBits(func(r *dns.Msg) bool {
				return r.Rcode == dns.RcodeNotImplemented && r.Opcode == 15 && len(r.Answer) == 0
			})}},
		{"opcodeflg", func() *dns.Msg {
			m := soa()
			m.Opcode, m.Authoritative, m.AuthenticatedData, m.CheckingDisabled, m.Zero = 15, true, true, true, true
			return m
		}, "udp", []check{headerBits(func(r *dns.Msg) bool {
			return r.Rcode == dns.RcodeNotImplemented && !r.Zero && !r.AuthenticatedData && !r.Authoritative
		})}},
		{"type666", func() *dns.Msg { return query("example.com.", 666) }, "udp", []check{func(t *testing.T, r *dns.Msg) {
			if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 0 || len(r.Ns) != 1 || r.Ns[0].Header().Rrtype != dns.TypeSOA {
				t.Fatalf("type666: %v", r)
			}
		}}},
		{"tcp", soa, "tcp", []check{noerrorSOA, noOPT}},
		{"edns", func() *dns.Msg { return withEDNS(soa(), 0, 4096, false) }, "udp", []check{noerrorSOA, opt0(false)}},
		{"edns1", func() *dns.Msg { return withEDNS(soa(), 1, 4096, false) }, "udp", []check{badvers}},
		{"edns@512", func() *dns.Msg { return withEDNS(query("many.example.com.", dns.TypeA), 0, 512, true) }, "udp",
			[]check{opt0(true), func(t *testing.T, r *dns.Msg) {
				if !r.Truncated || wireLen(r) > 512 {
					t.Fatalf("edns@512: %v", r)
				}
			}}},
		{"edns@100", func() *dns.Msg { return withEDNS(query("mx.example.com.", dns.TypeMX), 0, 100, false) }, "udp",
			[]check{opt0(false), func(t *testing.T, r *dns.Msg) {
				// Below 512 counts as 512 (RFC 6891 6.2.5).
				if !r.Truncated {
					t.Fatalf("edns@100: %v", r)
				}
			}}},
		{"edns@100 small", func() *dns.Msg { return withEDNS(query("www.example.com.", dns.TypeA), 0, 100, false) }, "udp",
			[]check{opt0(false), func(t *testing.T, r *dns.Msg) {
				if r.Truncated || len(r.Answer) != 1 || wireLen(r) <= 100 {
					t.Fatalf("edns@100 with a 150-byte answer: %v", r)
				}
			}}},
		{"ednsopt", func() *dns.Msg { return addOpt(withEDNS(soa(), 0, 4096, false), opt100) }, "udp", []check{noerrorSOA, opt0(false)}},
		{"edns1opt", func() *dns.Msg { return addOpt(withEDNS(soa(), 1, 4096, false), opt100) }, "udp", []check{badvers}},
		{"do", func() *dns.Msg { return withEDNS(soa(), 0, 4096, true) }, "udp", []check{noerrorSOA, opt0(true)}},
		{"docd", func() *dns.Msg { m := withEDNS(soa(), 0, 4096, true); m.CheckingDisabled = true; return m }, "udp",
			[]check{noerrorSOA, opt0(true)}},
		{"ednsflags", func() *dns.Msg { m := withEDNS(soa(), 0, 4096, false); m.IsEdns0().Hdr.Ttl |= 0x80; return m }, "udp",
			[]check{noerrorSOA, opt0(false)}},
		{"ednsflags+do", func() *dns.Msg { m := withEDNS(soa(), 0, 4096, true); m.IsEdns0().Hdr.Ttl |= 0x4000; return m }, "udp",
			[]check{noerrorSOA, opt0(true)}},
		{"edns1flags", func() *dns.Msg { m := withEDNS(soa(), 1, 4096, true); m.IsEdns0().Hdr.Ttl |= 0x80; return m }, "udp",
			[]check{badvers}},
		{"optlist", func() *dns.Msg {
			return addOpt(withEDNS(soa(), 0, 4096, false),
				&dns.EDNS0_NSID{Code: dns.EDNS0NSID},
				&dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 0, Address: net.IPv4zero.To4()},
				&dns.EDNS0_EXPIRE{Code: dns.EDNS0EXPIRE, Empty: true},
				&dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"})
		}, "udp", []check{noerrorSOA, opt0(false)}},
		{"ednstcp", func() *dns.Msg { return withEDNS(soa(), 0, 4096, false) }, "tcp", []check{noerrorSOA, opt0(false)}},
		{"edns1tcp", func() *dns.Msg { return withEDNS(soa(), 1, 4096, false) }, "tcp", []check{badvers}},
		{"edns-ext-rcode-in-query", func() *dns.Msg { m := withEDNS(soa(), 0, 4096, false); m.IsEdns0().SetExtendedRcode(16); return m }, "udp",
			[]check{noerrorSOA, opt0(false)}},
		{"refused-edns", func() *dns.Msg { return withEDNS(query("example.org.", dns.TypeSOA), 0, 4096, true) }, "udp",
			[]check{func(t *testing.T, r *dns.Msg) {
				o := r.IsEdns0()
				if r.Rcode != dns.RcodeRefused || o == nil || !o.Do() || ede(r) != int(dns.ExtendedErrorCodeNotAuthoritative) {
					t.Fatalf("refused: %v", r)
				}
			}}},
	}
	for _, p := range probes {
		t.Run(p.name, func(t *testing.T) {
			m := p.msg()
			c := &dns.Client{Net: p.proto, UDPSize: 65535}
			r, _, err := c.Exchange(m, s.addr(p.proto))
			if err != nil {
				t.Fatal(err)
			}
			if r.Id != m.Id || len(r.Question) != 1 && r.Rcode != dns.RcodeNotImplemented {
				t.Fatalf("id or question: %v", r)
			}
			for _, c := range p.checks {
				c(t, r)
			}
		})
	}
}
