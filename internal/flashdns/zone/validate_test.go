package zone

import (
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

func TestValidateSet(t *testing.T) {
	const o = "example.com."
	long63 := strings.Repeat("a", 63)
	bad := []struct {
		rule string
		set  func(t *testing.T) RRSet
	}{
		{"empty label", func(t *testing.T) RRSet {
			return RRSet{Name: "a..example.com.", Type: dns.TypeA, TTL: 60, RRs: []dns.RR{&dns.A{Hdr: hdr("a..example.com.", dns.TypeA), A: net.IPv4(192, 0, 2, 1)}}}
		}},
		{"label longer than 63", func(t *testing.T) RRSet {
			n := long63 + "a.example.com."
			return RRSet{Name: n, Type: dns.TypeA, TTL: 60, RRs: []dns.RR{&dns.A{Hdr: hdr(n, dns.TypeA), A: net.IPv4(192, 0, 2, 1)}}}
		}},
		{"name longer than 255", func(t *testing.T) RRSet {
			return set(t, 60, strings.Repeat(long63+".", 3)+strings.Repeat("b", 50)+".example.com. A 192.0.2.1")
		}},
		{"bad character", func(t *testing.T) RRSet { return set(t, 60, `a\ b.example.com. A 192.0.2.1`) }},
		{"wildcard not leftmost", func(t *testing.T) RRSet { return set(t, 60, "a.*.example.com. A 192.0.2.1") }},
		{"wildcard inside a label", func(t *testing.T) RRSet { return set(t, 60, "a*.example.com. A 192.0.2.1") }},
		{"owner outside the zone", func(t *testing.T) RRSet { return set(t, 60, "www.example.net. A 192.0.2.1") }},
		{"owner shares only a suffix", func(t *testing.T) RRSet { return set(t, 60, "badexample.com. A 192.0.2.1") }},
		{"SOA as a set", func(t *testing.T) RRSet { return set(t, 60, "example.com. SOA ns. h. 1 2 3 4 5") }},
		{"unsupported type", func(t *testing.T) RRSet { return set(t, 60, `x.example.com. HINFO "cpu" "os"`) }},
		{"DS is not served", func(t *testing.T) RRSet { return set(t, 60, "x.example.com. DS 1 8 2 AABBCCDD") }},
		{"TTL above 2^31-1", func(t *testing.T) RRSet {
			s := set(t, 60, "x.example.com. A 192.0.2.1")
			s.TTL = MaxTTL + 1
			return s
		}},
		{"no records", func(t *testing.T) RRSet { return RRSet{Name: "x.example.com.", Type: dns.TypeA, TTL: 60} }},
		{"too many records", func(t *testing.T) RRSet {
			s := RRSet{Name: "x.example.com.", Type: dns.TypeTXT, TTL: 60}
			for i := 0; i <= MaxRecordsPerSet; i++ {
				s.RRs = append(s.RRs, &dns.TXT{Hdr: hdr("x.example.com.", dns.TypeTXT), Txt: []string{strings.Repeat("x", i%200) + "y" + string(rune('a'+i%26))}})
			}
			return s
		}},
		{"CNAME at the apex", func(t *testing.T) RRSet { return set(t, 60, "example.com. CNAME www.example.net.") }},
		{"CNAME with two records", func(t *testing.T) RRSet {
			return set(t, 60, "x.example.com. CNAME a.example.net.", "x.example.com. CNAME b.example.net.")
		}},
		{"CNAME to itself", func(t *testing.T) RRSet { return set(t, 60, "x.example.com. CNAME X.example.com.") }},
		{"NS at a wildcard", func(t *testing.T) RRSet { return set(t, 60, "*.example.com. NS ns.example.net.") }},
		{"nil record", func(t *testing.T) RRSet {
			return RRSet{Name: "x.example.com.", Type: dns.TypeA, TTL: 60, RRs: []dns.RR{nil}}
		}},
		{"record type differs from the set", func(t *testing.T) RRSet {
			s := set(t, 60, "x.example.com. AAAA 2001:db8::1")
			s.Type = dns.TypeA
			return s
		}},
		{"header type lies about the Go type", func(t *testing.T) RRSet {
			s := set(t, 60, "x.example.com. AAAA 2001:db8::1")
			s.Type = dns.TypeA
			s.RRs[0].Header().Rrtype = dns.TypeA
			return s
		}},
		{"record owner differs from the set", func(t *testing.T) RRSet {
			s := set(t, 60, "x.example.com. A 192.0.2.1")
			s.Name = "y.example.com."
			return s
		}},
		{"class CH", func(t *testing.T) RRSet { return set(t, 60, "x.example.com. CH A 192.0.2.1") }},
		{"A with an IPv6 address", func(t *testing.T) RRSet {
			return RRSet{Name: "x.example.com.", Type: dns.TypeA, TTL: 60, RRs: []dns.RR{&dns.A{Hdr: hdr("x.example.com.", dns.TypeA), A: net.ParseIP("2001:db8::1")}}}
		}},
		{"AAAA with a 4-byte address", func(t *testing.T) RRSet {
			return RRSet{Name: "x.example.com.", Type: dns.TypeAAAA, TTL: 60, RRs: []dns.RR{&dns.AAAA{Hdr: hdr("x.example.com.", dns.TypeAAAA), AAAA: net.IPv4(1, 2, 3, 4).To4()}}}
		}},
		{"relative target", func(t *testing.T) RRSet {
			return RRSet{Name: "x.example.com.", Type: dns.TypeCNAME, TTL: 60, RRs: []dns.RR{&dns.CNAME{Hdr: hdr("x.example.com.", dns.TypeCNAME), Target: "www"}}}
		}},
		{"MX target with underscore", func(t *testing.T) RRSet { return set(t, 60, "x.example.com. MX 10 _mail.example.com.") }},
		{"NS target with underscore", func(t *testing.T) RRSet { return set(t, 60, "x.example.com. NS ns_1.example.com.") }},
		{"SRV target with leading hyphen", func(t *testing.T) RRSet { return set(t, 60, "_s._tcp.example.com. SRV 0 0 1 -bad.example.com.") }},
		{"NS target root", func(t *testing.T) RRSet { return set(t, 60, "x.example.com. NS .") }},
		{"PTR target with bad character", func(t *testing.T) RRSet { return set(t, 60, `x.example.com. PTR a\@b.example.com.`) }},
		{"null MX not alone", func(t *testing.T) RRSet {
			return set(t, 60, "x.example.com. MX 0 .", "x.example.com. MX 10 mail.example.com.")
		}},
		// (The zone-file parser splits long strings itself; the API does not.)
		{"TXT string of 256 bytes", func(t *testing.T) RRSet {
			return RRSet{Name: "x.example.com.", Type: dns.TypeTXT, TTL: 60, RRs: []dns.RR{
				&dns.TXT{Hdr: hdr("x.example.com.", dns.TypeTXT), Txt: []string{strings.Repeat("a", 256)}}}}
		}},
		{"TXT string of 256 bytes with escapes", func(t *testing.T) RRSet {
			return RRSet{Name: "x.example.com.", Type: dns.TypeTXT, TTL: 60, RRs: []dns.RR{
				&dns.TXT{Hdr: hdr("x.example.com.", dns.TypeTXT), Txt: []string{"ok", strings.Repeat(`\200`, 255) + `\"`}}}}
		}},
		{"TXT without strings", func(t *testing.T) RRSet {
			return RRSet{Name: "x.example.com.", Type: dns.TypeTXT, TTL: 60, RRs: []dns.RR{&dns.TXT{Hdr: hdr("x.example.com.", dns.TypeTXT)}}}
		}},
		{"null MX with a preference", func(t *testing.T) RRSet { return set(t, 60, "x.example.com. MX 10 .") }},
		{"CAA bad tag", func(t *testing.T) RRSet { return set(t, 60, `x.example.com. CAA 0 is-sue "ca.example"`) }},
		{"duplicate record", func(t *testing.T) RRSet {
			return set(t, 60, "x.example.com. A 192.0.2.1", "x.example.com. A 192.0.2.1")
		}},
		{"duplicate differing only in name case", func(t *testing.T) RRSet {
			return set(t, 60, "x.example.com. MX 10 Mail.example.com.", "x.example.com. MX 10 mail.EXAMPLE.com.")
		}},
		{"duplicate in a large set", func(t *testing.T) RRSet {
			var recs []string
			for i := range 40 {
				recs = append(recs, "x.example.com. NS ns"+string(rune('a'+i%26))+string(rune('a'+i/26))+".example.net.")
			}
			recs = append(recs, "x.example.com. NS NSAA.example.net.")
			return set(t, 60, recs...)
		}},
	}
	for _, b := range bad {
		t.Run(b.rule, func(t *testing.T) {
			err := ValidateSet(o, b.set(t))
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("ValidateSet = %v, want ErrInvalid", err)
			}
			t.Log(err)
		})
	}

	good := []RRSet{
		set(t, 0, "x.example.com. A 192.0.2.1", "x.example.com. A 192.0.2.2"),
		set(t, MaxTTL, "X.Example.COM. AAAA 2001:db8::1"),
		set(t, 60, "*.example.com. A 192.0.2.1"),
		set(t, 60, "*.x.example.com. CNAME www.example.net."),
		set(t, 60, "_acme-challenge.example.com. CNAME _acme-challenge.auth.example.net."),
		set(t, 60, "_sip._tcp.example.com. SRV 10 5 5060 sip.example.com."),
		set(t, 60, "_sip._udp.example.com. SRV 0 0 0 ."),
		set(t, 60, "example.com. MX 0 ."),
		set(t, 60, "example.com. MX 10 MAIL.example.net."),
		set(t, 60, "0/26.example.com. NS ns.example.net."),
		set(t, 60, `x.example.com. TXT "`+strings.Repeat("a", 255)+`" "second"`),
		{Name: "x.example.com.", Type: dns.TypeTXT, TTL: 60, RRs: []dns.RR{
			&dns.TXT{Hdr: hdr("x.example.com.", dns.TypeTXT), Txt: []string{strings.Repeat(`\"`, 254) + `\255`}}}},
		set(t, 60, `example.com. CAA 128 issuewild ";"`),
		set(t, 60, `x.example.com. CAA 1 issue "ca.example"`), // reserved flag bits are data (RFC 8659)
		set(t, 60, "x.example.com. PTR _http._tcp.example.com."),
		set(t, 60, "example.com. NS ns1.example.com."),
	}
	for _, g := range good {
		if err := ValidateSet(o, g); err != nil {
			t.Errorf("%s %s: %v", g.Name, dns.TypeToString[g.Type], err)
		}
	}
	// Large sets without duplicates pass the map-based check.
	var recs []string
	for i := range 40 {
		recs = append(recs, "x.example.com. NS ns"+string(rune('a'+i%26))+string(rune('a'+i/26))+".example.net.")
	}
	if err := ValidateSet(o, set(t, 60, recs...)); err != nil {
		t.Errorf("large set: %v", err)
	}
}

func TestValidateZone(t *testing.T) {
	bad := []struct {
		rule   string
		mutate func(t *testing.T, d *Data)
	}{
		{"empty origin", func(t *testing.T, d *Data) { d.Origin = "" }},
		{"root origin", func(t *testing.T, d *Data) { d.Origin = "." }},
		{"wildcard origin", func(t *testing.T, d *Data) { d.Origin = "*.example.com." }},
		{"no SOA", func(t *testing.T, d *Data) { d.SOA = nil }},
		{"SOA owner not the apex", func(t *testing.T, d *Data) { d.SOA.Hdr.Name = "www.example.com." }},
		{"SOA class", func(t *testing.T, d *Data) { d.SOA.Hdr.Class = dns.ClassCHAOS }},
		{"SOA TTL", func(t *testing.T, d *Data) { d.SOA.Hdr.Ttl = MaxTTL + 1 }},
		{"SOA MNAME relative", func(t *testing.T, d *Data) { d.SOA.Ns = "ns1" }},
		{"SOA RNAME relative", func(t *testing.T, d *Data) { d.SOA.Mbox = "hostmaster" }},
		{"SOA minimum", func(t *testing.T, d *Data) { d.SOA.Minttl = MaxTTL + 1 }},
		{"invalid set", func(t *testing.T, d *Data) { d.Sets = append(d.Sets, set(t, 60, "www.example.net. A 192.0.2.1")) }},
		{"two sets with one owner and type", func(t *testing.T, d *Data) {
			d.Sets = append(d.Sets, set(t, 60, "x.example.com. A 192.0.2.1"), set(t, 60, "X.example.com. A 192.0.2.2"))
		}},
		{"CNAME and other data", func(t *testing.T, d *Data) {
			d.Sets = append(d.Sets, set(t, 60, "x.example.com. CNAME www.example.net."), set(t, 60, `x.example.com. TXT "a"`))
		}},
		{"data below a delegation", func(t *testing.T, d *Data) {
			d.Sets = append(d.Sets, set(t, 60, "sub.example.com. NS ns.sub.example.com."), set(t, 60, `x.sub.example.com. TXT "a"`))
		}},
		{"delegation below a delegation", func(t *testing.T, d *Data) {
			d.Sets = append(d.Sets, set(t, 60, "sub.example.com. NS ns.sub.example.com."), set(t, 60, "deeper.sub.example.com. NS ns.example.net."))
		}},
		{"wildcard below a delegation", func(t *testing.T, d *Data) {
			d.Sets = append(d.Sets, set(t, 60, "sub.example.com. NS ns.sub.example.com."), set(t, 60, "*.sub.example.com. A 192.0.2.1"))
		}},
		{"non-glue at a delegation point", func(t *testing.T, d *Data) {
			d.Sets = append(d.Sets, set(t, 60, "sub.example.com. NS ns.sub.example.com."), set(t, 60, "sub.example.com. MX 10 mail.example.com."))
		}},
		{"nil journal record", func(t *testing.T, d *Data) {
			d.Journal = []Diff{{FromSerial: 0, ToSerial: 1, Added: []dns.RR{nil}}}
		}},
	}
	for _, b := range bad {
		t.Run(b.rule, func(t *testing.T) {
			d := baseData("example.com.")
			b.mutate(t, &d)
			err := ValidateZone(d)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("ValidateZone = %v, want ErrInvalid", err)
			}
			if _, err := Build(d); !errors.Is(err, ErrInvalid) {
				t.Fatalf("Build = %v, want ErrInvalid", err)
			}
			t.Log(err)
		})
	}

	d := baseData("Example.COM.")
	d.Sets = append(d.Sets,
		set(t, 60, "sub.example.com. NS ns.sub.example.com.", "sub.example.com. NS sub.example.com."),
		set(t, 60, "sub.example.com. A 192.0.2.10"),
		set(t, 60, "ns.sub.example.com. A 192.0.2.11"),
		set(t, 60, "ns.sub.example.com. AAAA 2001:db8::11"),
		set(t, 60, "x.example.com. CNAME www.example.net."),
		set(t, 60, "*.example.com. A 192.0.2.1"),
		set(t, 60, `*.example.com. TXT "w"`),
	)
	if err := ValidateZone(d); err != nil {
		t.Fatalf("valid zone: %v", err)
	}
	d.Sets = nil // a zone without apex NS is served too
	if err := ValidateZone(d); err != nil {
		t.Fatalf("zone without NS: %v", err)
	}
}
