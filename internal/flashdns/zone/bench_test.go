package zone

import (
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"testing"

	"github.com/miekg/dns"
)

// BenchmarkLookup measures the query path per answer kind (ns/op, allocs/op).
// Exact, negative and referral answers are precomputed and allocation free;
// wildcard, CNAME and synthesised PTR answers build new records.
func BenchmarkLookup(b *testing.B) {
	tab := fuzzTable(b)
	cases := []struct {
		name  string
		qname string
		qtype uint16
	}{
		{"exact", "web.example.com.", dns.TypeA},
		{"exact-mixed-case", "Web.Example.com.", dns.TypeA},
		{"mx-additional", "example.com.", dns.TypeMX},
		{"nodata", "web.example.com.", dns.TypeMX},
		{"nxdomain", "x.web.example.com.", dns.TypeA},
		{"referral", "host.sub.example.com.", dns.TypeA},
		{"wildcard", "foo.wild.example.com.", dns.TypeA},
		{"cname", "www.example.com.", dns.TypeA},
		{"cname-chain-3", "chain1.example.com.", dns.TypeA},
		{"cname-cross-zone", "xz.example.com.", dns.TypeA},
		{"any", "multi.example.com.", dns.TypeANY},
		{"reverse-synth", "7.1.0.10.in-addr.arpa.", dns.TypePTR},
		{"refused", "www.other.net.", dns.TypeA},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				tab.Lookup(c.qname, c.qtype)
			}
		})
	}
}

// BenchmarkLookupLargeZone: exact and NXDOMAIN lookups in a 100k-name zone
// (map depth, cache misses).
func BenchmarkLookupLargeZone(b *testing.B) {
	s := largeZone(b, 100_000)
	names := make([]string, 1024)
	for i := range names {
		names[i] = fmt.Sprintf("host%d.big.example.", (i*7919)%100_000)
	}
	b.Run("exact", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			s.Lookup(names[i&1023], dns.TypeA)
			i++
		}
	})
	b.Run("nxdomain", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			s.Lookup("a.b.c.nothere.big.example.", dns.TypeA)
		}
	})
}

// largeZone builds a zone of n owners, each with one A record, plus a few
// of the other types every 10th owner (so about 1.3 records per owner).
func largeZone(tb testing.TB, n int) *Snapshot {
	tb.Helper()
	d := largeData(n)
	s, err := Build(d)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func largeData(n int) Data {
	d := baseData("big.example.")
	for i := range n {
		name := fmt.Sprintf("host%d.big.example.", i)
		d.Sets = append(d.Sets, RRSet{Name: name, Type: dns.TypeA, TTL: 300, RRs: []dns.RR{
			&dns.A{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET}, A: net.IPv4(10, byte(i>>16), byte(i>>8), byte(i))}}})
		if i%10 == 0 {
			d.Sets = append(d.Sets, RRSet{Name: name, Type: dns.TypeTXT, TTL: 300, RRs: []dns.RR{
				&dns.TXT{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeTXT, Class: dns.ClassINET}, Txt: []string{"v=spf1 include:_spf.example.net ~all"}}}})
			d.Sets = append(d.Sets, RRSet{Name: name, Type: dns.TypeMX, TTL: 300, RRs: []dns.RR{
				&dns.MX{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeMX, Class: dns.ClassINET}, Preference: 10, Mx: "mail.big.example."}}})
			d.Sets = append(d.Sets, RRSet{Name: name, Type: dns.TypeAAAA, TTL: 300, RRs: []dns.RR{
				&dns.AAAA{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeAAAA, Class: dns.ClassINET}, AAAA: netip.AddrFrom16([16]byte{0x20, 1, 0xd, 0xb8, 15: byte(i)}).AsSlice()}}})
		}
	}
	return d
}

// BenchmarkMemory100k times Build of a zone of about 100k records (ns/op,
// allocs/op) and reports the heap the resulting snapshot holds, measured
// with runtime.MemStats: for Build after the input Data is gone (the
// snapshot's own copies of the records included), for BuildShared with the
// Data kept (as the store keeps its record sets, whose records are in the
// form the snapshot serves), so only what the snapshot adds to them.
func BenchmarkMemory100k(b *testing.B) {
	const owners = 77_000 // about 100k records with largeData's mix
	for _, shared := range []bool{false, true} {
		name, build := "copy", Build
		if shared {
			name, build = "shared", BuildShared
		}
		b.Run(name, func(b *testing.B) {
			d := memData(owners, shared)
			b.ReportAllocs()
			var s *Snapshot
			for b.Loop() {
				var err error
				if s, err = build(d); err != nil {
					b.Fatal(err)
				}
			}
			records := s.Len()
			s, d = nil, Data{}
			bytes := snapshotHeap(b, owners, shared)
			b.ReportMetric(bytes*100_000/float64(records)/(1<<20), "MiB/100k-records")
			b.ReportMetric(bytes/float64(records), "B/record")
		})
	}
}

// memData is largeData, with the records in served form (the set's TTL,
// 4-byte A addresses) for BuildShared.
func memData(owners int, served bool) Data {
	d := largeData(owners)
	if served {
		for _, set := range d.Sets {
			for _, rr := range set.RRs {
				rr.Header().Ttl = set.TTL
				if a, ok := rr.(*dns.A); ok {
					a.A = a.A.To4()
				}
			}
		}
	}
	return d
}

// snapshotHeap measures the heap a snapshot holds: the heap after building
// it from fresh Data, minus the heap before; Build's input is dropped
// first, BuildShared's kept.
func snapshotHeap(tb testing.TB, owners int, shared bool) float64 {
	var base, after runtime.MemStats
	var keep Data
	if shared {
		keep = memData(owners, true)
	}
	runtime.GC()
	runtime.ReadMemStats(&base)
	var s *Snapshot
	var err error
	if shared {
		s, err = BuildShared(keep)
	} else {
		s, err = Build(largeData(owners))
	}
	if err != nil {
		tb.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(s)
	runtime.KeepAlive(keep)
	return float64(after.HeapAlloc) - float64(base.HeapAlloc)
}
