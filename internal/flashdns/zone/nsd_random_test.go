package zone

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestAgainstNSDRandom compares Table.Lookup with nsd on random tables: a
// few zones (one a delegated child of another) over a tiny label alphabet,
// so that wildcards, empty non-terminals, CNAME chains across zones,
// delegations and additional-section targets collide as often as possible.
func TestAgainstNSDRandom(t *testing.T) {
	if testing.Short() {
		t.Skip("starts nsd")
	}
	if _, err := os.Stat(nsdBinary); err != nil {
		t.Skip("nsd not installed")
	}
	seeds := 6
	if s := os.Getenv("ZONE_NSD_SEEDS"); s != "" {
		fmt.Sscan(s, &seeds)
	}
	for seed := range seeds {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			tab := randomTable(t, uint64(seed))
			addr := startNSD(t, tab)
			c := &dns.Client{Net: "tcp", Timeout: 5 * time.Second}
			diffs := 0
			for _, q := range corpus(tab) {
				m := new(dns.Msg)
				m.SetQuestion(q.name, q.qtype)
				resp, _, err := c.Exchange(m, addr)
				if err != nil {
					t.Fatal(err)
				}
				got, _ := tab.Lookup(q.name, q.qtype)
				if d := compareNSD(resp, got); d != "" {
					diffs++
					if diffs <= 10 {
						t.Errorf("%s %s:\n%s", q.name, dns.TypeToString[q.qtype], d)
					}
				}
			}
			if diffs > 0 {
				for _, s := range tab.zones {
					var b strings.Builder
					_ = WriteZoneFile(&b, s, 0)
					t.Log(b.String())
				}
			}
		})
	}
}

func randomTable(t *testing.T, seed uint64) *Table {
	rng := rand.New(rand.NewPCG(seed, 99))
	origins := []string{"r0.test.", "r1.test.", "sub.r0.test."}
	labels := []string{"a", "b", "c"}
	randName := func(origin string, wild bool) string {
		n := origin
		for range 1 + rng.IntN(3) {
			n = labels[rng.IntN(len(labels))] + "." + n
		}
		if wild && rng.IntN(4) == 0 {
			n = "*." + n[strings.IndexByte(n, '.')+1:]
		}
		return n
	}
	target := func() string {
		switch rng.IntN(6) {
		case 0:
			return "x.example.net."
		case 1:
			return origins[rng.IntN(len(origins))]
		}
		return randName(origins[rng.IntN(len(origins))], false)
	}
	var snaps []*Snapshot
	for zi, origin := range origins {
		d := baseData(origin)
		d.SOA.Minttl = uint32(100 + zi)
		d.Sets[0] = set(t, 3600, origin+" NS ns."+origin, origin+" NS a."+origins[0])
		if origin == "r0.test." {
			// Delegate the child zone (also served) with glue.
			d.Sets = append(d.Sets, set(t, 60, "sub.r0.test. NS ns.sub.r0.test."), set(t, 60, "ns.sub.r0.test. A 192.0.2.250"))
		}
		try := func(s RRSet) {
			d.Sets = append(d.Sets, s)
			if ValidateZone(d) != nil {
				d.Sets = d.Sets[:len(d.Sets)-1]
			}
		}
		try(set(t, 60, "ns."+origin+" A 192.0.2.53"))
		for range 10 + rng.IntN(15) {
			name := randName(origin, true)
			ttl := uint32(60 + rng.IntN(3))
			h := func(typ uint16) dns.RR_Header {
				return dns.RR_Header{Name: name, Rrtype: typ, Class: dns.ClassINET, Ttl: ttl}
			}
			switch typ := []uint16{dns.TypeCNAME, dns.TypeCNAME, dns.TypeA, dns.TypeAAAA, dns.TypeMX, dns.TypeTXT,
				dns.TypeSRV, dns.TypeNS, dns.TypePTR, dns.TypeCAA}[rng.IntN(10)]; typ {
			case dns.TypeCNAME:
				try(RRSet{Name: name, Type: typ, TTL: ttl, RRs: []dns.RR{&dns.CNAME{Hdr: h(typ), Target: target()}}})
			case dns.TypeA:
				try(RRSet{Name: name, Type: typ, TTL: ttl, RRs: []dns.RR{&dns.A{Hdr: h(typ), A: net.IPv4(192, 0, 2, byte(rng.IntN(250)))}}})
			case dns.TypeAAAA:
				try(RRSet{Name: name, Type: typ, TTL: ttl, RRs: []dns.RR{&dns.AAAA{Hdr: h(typ), AAAA: net.ParseIP(fmt.Sprintf("2001:db8::%x", rng.IntN(999)))}}})
			case dns.TypeMX:
				try(RRSet{Name: name, Type: typ, TTL: ttl, RRs: []dns.RR{&dns.MX{Hdr: h(typ), Preference: 10, Mx: target()},
					&dns.MX{Hdr: h(typ), Preference: 20, Mx: target()}}})
			case dns.TypeTXT:
				try(RRSet{Name: name, Type: typ, TTL: ttl, RRs: []dns.RR{&dns.TXT{Hdr: h(typ), Txt: []string{name}}}})
			case dns.TypeSRV:
				try(RRSet{Name: name, Type: typ, TTL: ttl, RRs: []dns.RR{&dns.SRV{Hdr: h(typ), Port: 1, Target: target()}}})
			case dns.TypeNS:
				try(RRSet{Name: name, Type: typ, TTL: ttl, RRs: []dns.RR{&dns.NS{Hdr: h(typ), Ns: target()}}})
				if rng.IntN(2) == 0 {
					try(RRSet{Name: "a." + name, Type: dns.TypeA, TTL: ttl, RRs: []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: "a." + name, Rrtype: dns.TypeA, Class: dns.ClassINET}, A: net.IPv4(192, 0, 2, 7)}}})
				}
			case dns.TypePTR:
				try(RRSet{Name: name, Type: typ, TTL: ttl, RRs: []dns.RR{&dns.PTR{Hdr: h(typ), Ptr: target()}}})
			case dns.TypeCAA:
				try(RRSet{Name: name, Type: typ, TTL: ttl, RRs: []dns.RR{&dns.CAA{Hdr: h(typ), Tag: "issue", Value: "ca"}}})
			}
		}
		// Duplicates across tries are possible in MX; drop invalid sets.
		d.Sets = slices.DeleteFunc(d.Sets, func(s RRSet) bool { return ValidateSet(origin, s) != nil })
		s, err := Build(d)
		if err != nil {
			t.Fatal(err)
		}
		snaps = append(snaps, s)
	}
	return NewTable(snaps...)
}
