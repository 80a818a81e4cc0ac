package dnsdiff

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// Zone is one zone of the rule set: its origin and zone file.
type Zone struct {
	Origin string // canonical, "example.com."
	File   string // absolute path
}

// RuleZones are the zones in testdata/ under dir (the package directory,
// or test/dnsdiff from the repository root).
func RuleZones(dir string) ([]Zone, error) {
	var zs []Zone
	for _, origin := range []string{"example.com.", "sub.example.com.", "2.0.192.in-addr.arpa.", "8.b.d.0.1.0.0.2.ip6.arpa."} {
		p, err := filepath.Abs(filepath.Join(dir, "testdata", strings.TrimSuffix(origin, ".")+".zone"))
		if err != nil {
			return nil, err
		}
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("rule zone: %w", err)
		}
		zs = append(zs, Zone{Origin: origin, File: p})
	}
	return zs, nil
}

// Records parses a zone file with miekg/dns's parser (the reference
// reading; FlashDNS's own import is under test).
func Records(z Zone) ([]dns.RR, error) {
	f, err := os.Open(z.File)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zp := dns.NewZoneParser(f, z.Origin, z.File)
	var rrs []dns.RR
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		rrs = append(rrs, rr)
	}
	if err := zp.Err(); err != nil {
		return nil, fmt.Errorf("parse %s: %w", z.File, err)
	}
	return rrs, nil
}

// Query is one question of the corpus and how it is sent.
type Query struct {
	Name string // as sent, case preserved
	Type uint16
	EDNS bool // EDNS0, 1232-byte buffer, DO clear unless changed below
	TCP  bool
	Why  string // the rule it exercises, for failure reports

	// EDNS variations (with EDNS set), in the style of ISC's EDNS
	// compliance tester: the answers a compliant server gives.
	EDNSVersion uint8  // 1 asks for BADVERS
	DO          bool   // DNSSEC OK: echoed, though the zones are unsigned
	UDPSize     uint16 // advertised buffer; 0 means 1232
	Option      bool   // an unknown option (code 65001): ignored (RFC 6891 6.1.2)
	ZFlag       bool   // an unknown EDNS flag bit: ignored, not echoed
}

func (q Query) String() string {
	tr := "udp"
	if q.TCP {
		tr = "tcp"
	}
	e := "no-edns"
	if q.EDNS {
		e = "edns"
		if q.EDNSVersion != 0 {
			e += fmt.Sprintf(" version %d", q.EDNSVersion)
		}
		if q.DO {
			e += " do"
		}
		if q.UDPSize != 0 {
			e += fmt.Sprintf(" bufsize %d", q.UDPSize)
		}
		if q.Option {
			e += " unknown-option"
		}
		if q.ZFlag {
			e += " unknown-flag"
		}
	}
	return fmt.Sprintf("%s %s (%s, %s) [%s]", q.Name, dns.TypeToString[q.Type], tr, e, q.Why)
}

// Msg builds the query message (fresh random id, RD clear as a resolver
// asking an authoritative server sends it).
func (q Query) Msg() *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(q.Name, q.Type)
	m.RecursionDesired = false
	if q.EDNS {
		size := q.UDPSize
		if size == 0 {
			size = 1232
		}
		m.SetEdns0(size, q.DO)
		opt := m.IsEdns0()
		opt.SetVersion(q.EDNSVersion)
		if q.Option {
			opt.Option = append(opt.Option, &dns.EDNS0_LOCAL{Code: 65001, Data: []byte{0xab, 0xcd}})
		}
		if q.ZFlag {
			opt.SetZ(0x4000)
		}
	}
	return m
}

// QueryTypes are asked for every name of the corpus: every type FlashDNS
// stores, DS (answered by the parent side of a zone cut), HINFO (a type no
// record has) and ANY.
var QueryTypes = []uint16{
	dns.TypeA, dns.TypeAAAA, dns.TypeCNAME, dns.TypeMX, dns.TypeTXT, dns.TypeSRV, dns.TypeNS,
	dns.TypePTR, dns.TypeCAA, dns.TypeSOA, dns.TypeDS, dns.TypeHINFO, dns.TypeANY,
}

// tcpTypes are also asked over TCP: enough to see TCP answer the same, and
// the sets too large for UDP come back whole.
var tcpTypes = []uint16{dns.TypeA, dns.TypeTXT, dns.TypeMX, dns.TypeANY}

// extraNames are names that are not owners of the rule zones: nonexistent
// names at several depths and places, names outside every zone, and case
// variations of existing names.
var extraNames = []struct{ name, why string }{
	{"nx.example.com.", "nonexistent below the apex"},
	{"a.b.c.nx.example.com.", "nonexistent, four labels below the apex"},
	{"nothere.example.com.", "target of a dangling CNAME"},
	{"nx.ent.example.com.", "nonexistent below an empty non-terminal"},
	{"x.b.ent.example.com.", "nonexistent below an empty non-terminal"},
	{"x.www.example.com.", "nonexistent below a leaf"},
	{"foo.wild.example.com.", "wildcard match"},
	{"a.b.wild.example.com.", "wildcard match over two labels"},
	{"x.explicit.wild.example.com.", "below an explicit name beside a wildcard"},
	{"x.deep.wild.example.com.", "wildcard blocked by an empty non-terminal"},
	{"x.sub.deep.wild.example.com.", "below a name below an empty non-terminal"},
	{"foo.cname-wild.example.com.", "wildcard CNAME"},
	{"a.b.cname-wild.example.com.", "wildcard CNAME over two labels"},
	{"foo.chain-wild.example.com.", "wildcard CNAME into a chain"},
	{"foo.mx-wild.example.com.", "wildcard MX"},
	{"host.deleg.example.com.", "below a delegation with glue"},
	{"a.b.deleg.example.com.", "two labels below a delegation"},
	{"x.glueless.example.com.", "below a delegation without glue"},
	{"x.mixed.example.com.", "below a delegation with an in-zone NS target"},
	{"nx.sub.example.com.", "child zone: apex wildcard"},
	{"a.b.sub.example.com.", "child zone: apex wildcard over two labels"},
	{"x.ns.sub.example.com.", "child zone: below an existing name"},
	{"x.www.sub.example.com.", "child zone: below a leaf"},
	{"99.2.0.192.in-addr.arpa.", "reverse: address without PTR"},
	{"x.1.2.0.192.in-addr.arpa.", "reverse: below a PTR"},
	{"2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.", "reverse v6: address without PTR"},
	{"f.8.b.d.0.1.0.0.2.ip6.arpa.", "reverse v6: nonexistent below the apex"},

	{".", "outside: root"},
	{"com.", "outside: parent TLD"},
	{"example.net.", "outside: other domain"},
	{"www.example.net.", "outside: CNAME target of ext"},
	{"wwwexample.com.", "outside: suffix without a label boundary"},
	{"xample.com.", "outside: shorter suffix"},
	{"example.com.evil.", "outside: zone name as a prefix"},
	{"0.192.in-addr.arpa.", "outside: parent of a reverse zone"},
	{"3.0.192.in-addr.arpa.", "outside: sibling of a reverse zone"},
	{"ip6.arpa.", "outside: ip6.arpa"},

	{"WWW.EXAMPLE.COM.", "case: upper"},
	{"Www.Example.Com.", "case: mixed"},
	{"mixed.example.com.", "case: lower-case query for a mixed-case owner"},
	{"MIXED.example.COM.", "case: upper-case query for a mixed-case owner"},
	{"FoO.WiLd.ExAmPlE.cOm.", "case: wildcard match"},
	{"ALIAS.example.com.", "case: CNAME"},
	{"Chain1.Example.Com.", "case: CNAME chain"},
	{"HOST.Deleg.Example.Com.", "case: referral"},
	{"NX.example.com.", "case: NXDOMAIN"},
	{"Sub.Example.Com.", "case: zone cut and child apex"},
	{"_SIP._TCP.example.com.", "case: SRV"},
	{"80.2.0.192.IN-ADDR.ARPA.", "case: reverse"},
	{"B.Ent.Example.Com.", "case: empty non-terminal"},
}

// ednsProbes are the EDNS variations, each asked for every ednsNames
// entry over UDP.
var ednsProbes = []Query{
	{EDNSVersion: 1, Why: "EDNS version 1: BADVERS"},
	{DO: true, Why: "DO bit"},
	{UDPSize: 512, Why: "EDNS with a 512-byte buffer"},
	{UDPSize: 4096, Why: "EDNS with a 4096-byte buffer (the server's own limit applies)"},
	{Option: true, Why: "unknown EDNS option"},
	{ZFlag: true, Why: "unknown EDNS flag"},
	{EDNSVersion: 1, Option: true, DO: true, Why: "EDNS version 1 with an option and DO"},
}

// ednsNames are the questions the EDNS probes ask: an answer, NXDOMAIN,
// a referral, REFUSED, and sets that fit 1232 but not 512 bytes and fit
// neither.
var ednsNames = []struct {
	name  string
	qtype uint16
}{
	{"www.example.com.", dns.TypeA}, {"nx.example.com.", dns.TypeA}, {"host.deleg.example.com.", dns.TypeA},
	{"www.example.net.", dns.TypeA}, {"big.example.com.", dns.TypeTXT}, {"huge.example.com.", dns.TypeTXT},
	{"example.com.", dns.TypeSOA},
}

// Corpus builds the queries for zones: every owner name and empty
// non-terminal, the extra names above, each asked for every QueryTypes
// type with and without EDNS over UDP, and for tcpTypes over TCP; then
// the EDNS probes.
func Corpus(zones []Zone) ([]Query, error) {
	type named struct{ name, why string }
	var names []named
	seen := map[string]bool{}
	add := func(name, why string) {
		if !seen[name] {
			seen[name] = true
			names = append(names, named{name, why})
		}
	}
	for _, z := range zones {
		rrs, err := Records(z)
		if err != nil {
			return nil, err
		}
		owners := map[string][]uint16{}
		var order []string
		for _, rr := range rrs {
			n := dns.CanonicalName(rr.Header().Name)
			if _, ok := owners[n]; !ok {
				order = append(order, n)
			}
			owners[n] = append(owners[n], rr.Header().Rrtype)
		}
		for _, n := range order {
			var ts []string
			for _, t := range owners[n] {
				if s := dns.TypeToString[t]; !slices.Contains(ts, s) {
					ts = append(ts, s)
				}
			}
			add(n, "owner of "+strings.Join(ts, ","))
		}
		// Every name between an owner and the apex that owns nothing is an
		// empty non-terminal.
		for _, n := range order {
			for p := parent(n); p != "" && dns.IsSubDomain(z.Origin, p) && p != z.Origin; p = parent(p) {
				if _, ok := owners[p]; !ok {
					add(p, "empty non-terminal")
				}
			}
		}
	}
	for _, e := range extraNames {
		add(e.name, e.why)
	}
	var qs []Query
	for _, n := range names {
		for _, edns := range []bool{false, true} {
			for _, t := range QueryTypes {
				qs = append(qs, Query{Name: n.name, Type: t, EDNS: edns, Why: n.why})
			}
		}
		for _, t := range tcpTypes {
			qs = append(qs, Query{Name: n.name, Type: t, TCP: true, Why: n.why})
		}
	}
	for _, p := range ednsProbes {
		for _, n := range ednsNames {
			q := p
			q.Name, q.Type, q.EDNS = n.name, n.qtype, true
			qs = append(qs, q)
		}
	}
	return qs, nil
}

// parent strips the first label; "" above the root.
func parent(name string) string {
	if name == "." {
		return ""
	}
	i, end := dns.NextLabel(name, 0)
	if end {
		return "."
	}
	return name[i:]
}
