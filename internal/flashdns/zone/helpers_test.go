package zone

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// loadZone parses and builds testdata/<origin>zone.
func loadZone(t testing.TB, origin string) *Snapshot {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", strings.TrimSuffix(origin, ".")+".zone"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d, err := ParseZoneFile(f, origin, 0)
	if err != nil {
		t.Fatalf("parse %s: %v", origin, err)
	}
	s, err := Build(d)
	if err != nil {
		t.Fatalf("build %s: %v", origin, err)
	}
	return s
}

var testOrigins = []string{"example.com.", "child.example.com.", "zone2.test.", "2.0.192.in-addr.arpa."}

func loadTable(t testing.TB) *Table {
	t.Helper()
	var snaps []*Snapshot
	for _, o := range testOrigins {
		snaps = append(snaps, loadZone(t, o))
	}
	return NewTable(snaps...)
}

// rrStrings renders a section for comparison: owner names lower-cased (NSD
// echoes the question's case through compression), sorted unless ordered.
func rrStrings(rrs []dns.RR, ordered bool) []string {
	out := make([]string, 0, len(rrs))
	for _, rr := range rrs {
		if rr.Header().Rrtype == dns.TypeOPT {
			continue
		}
		s := rr.String()
		switch rr.Header().Rrtype {
		case dns.TypeTXT, dns.TypeCAA:
			// Only the owner is a name; the data is case-sensitive.
			h := rr.Header().String()
			s = strings.ToLower(h) + strings.TrimPrefix(s, h)
		default:
			s = strings.ToLower(s)
		}
		out = append(out, s)
	}
	if !ordered {
		slices.Sort(out)
	}
	return out
}

func mustRR(t testing.TB, s string) dns.RR {
	t.Helper()
	rr, err := dns.NewRR(s)
	if err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return rr
}

func hdr(name string, t uint16) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET, Ttl: 60}
}

// baseData is a minimal valid zone: SOA and two apex NS.
func baseData(origin string) Data {
	return Data{
		Origin: origin,
		SOA: &dns.SOA{Hdr: hdr(origin, dns.TypeSOA), Ns: "ns1." + origin, Mbox: "hostmaster." + origin,
			Serial: 1, Refresh: 3600, Retry: 900, Expire: 604800, Minttl: 300},
		Sets: []RRSet{{Name: origin, Type: dns.TypeNS, TTL: 3600, RRs: []dns.RR{
			&dns.NS{Hdr: hdr(origin, dns.TypeNS), Ns: "ns1." + origin},
			&dns.NS{Hdr: hdr(origin, dns.TypeNS), Ns: "ns2.other.net."},
		}}},
	}
}

// set builds an RRSet from presentation-format records of one owner/type.
func set(t testing.TB, ttl uint32, records ...string) RRSet {
	t.Helper()
	var s RRSet
	for _, r := range records {
		rr := mustRR(t, r)
		s.Name, s.Type, s.TTL = rr.Header().Name, rr.Header().Rrtype, ttl
		s.RRs = append(s.RRs, rr)
	}
	return s
}
