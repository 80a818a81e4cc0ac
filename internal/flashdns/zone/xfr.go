package zone

import (
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// AXFR returns the zone for a full transfer: the SOA, every other record
// (names in canonical DNS order, each name's sets in node order), the SOA
// again. Synthesised reverse PTRs are not records and are not included. The
// records are shared with the snapshot; do not modify them.
func (s *Snapshot) AXFR() []dns.RR {
	out := make([]dns.RR, 0, s.records+1)
	out = append(out, s.soa)
	for _, n := range s.ordered() {
		sets := s.setsOf(n)
		for i := range sets {
			if sets[i].typ == dns.TypeSOA {
				continue
			}
			out = append(out, s.rrs(&sets[i])...)
		}
	}
	return append(out, s.soa)
}

// IXFR returns the RFC 1995 incremental transfer from serial from to the
// current serial, one difference sequence per journal entry:
//
//	SOA(current), [SOA(from_i) deleted... SOA(to_i) added...]..., SOA(current)
//
// The intermediate SOA records are the current SOA with the serial replaced
// (the journal does not keep old SOA timers; secondaries only use the
// serials). When from is the current serial the answer is the single SOA
// (RFC 1995 §2: the client is up to date). ok is false when the journal
// does not reach back to from; the caller then sends an AXFR.
func (s *Snapshot) IXFR(from uint32) (rrs []dns.RR, ok bool) {
	if from == s.soa.Serial {
		return []dns.RR{s.soa}, true
	}
	i := slices.IndexFunc(s.journal, func(d Diff) bool { return d.FromSerial == from })
	if i < 0 {
		return nil, false
	}
	n := 2
	for _, d := range s.journal[i:] {
		n += 2 + len(d.Deleted) + len(d.Added)
	}
	out := make([]dns.RR, 0, n)
	out = append(out, s.soa)
	for _, d := range s.journal[i:] {
		out = append(out, s.soaWithSerial(d.FromSerial))
		out = append(out, d.Deleted...)
		out = append(out, s.soaWithSerial(d.ToSerial))
		out = append(out, d.Added...)
	}
	return append(out, s.soa), true
}

func (s *Snapshot) soaWithSerial(serial uint32) dns.RR {
	c := *s.soa
	c.Serial = serial
	return &c
}

// ordered returns the nodes in canonical DNS name order (RFC 4034 §6.1),
// computed once: only transfers and zone-file export need it, and sorting
// on every Build would slow down each change of a large zone.
func (s *Snapshot) ordered() []*node {
	s.orderOnce.Do(func() {
		type keyed struct {
			key string
			n   *node
		}
		ks := make([]keyed, 0, len(s.nodes))
		for _, n := range s.nodes {
			if n.nsets == 0 {
				continue // empty non-terminals have no records
			}
			ks = append(ks, keyed{orderKey(n.name), n})
		}
		slices.SortFunc(ks, func(a, b keyed) int { return strings.Compare(a.key, b.key) })
		s.order = make([]*node, len(ks))
		for i, k := range ks {
			s.order[i] = k.n
		}
	})
	return s.order
}

// orderKey turns "www.example.com." into "com\x00example\x00www": comparing
// these byte strings is the canonical order of lower-case names without
// escapes (labels right to left, a shorter label before its extensions).
func orderKey(name string) string {
	labels := dns.SplitDomainName(name)
	slices.Reverse(labels)
	return strings.Join(labels, "\x00")
}
