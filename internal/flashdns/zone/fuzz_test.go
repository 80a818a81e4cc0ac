package zone

import (
	"bytes"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// fuzzTable is the rich test table plus a synthesising reverse zone.
func fuzzTable(t testing.TB) *Table {
	tab := loadTable(t)
	p := netip.MustParsePrefix("10.0.0.0/16")
	d := baseData("0.10.in-addr.arpa.")
	d.SOA.Ns, d.SOA.Mbox = "ns1.example.com.", "h.example.com."
	d.Sets[0] = set(t, 60, "0.10.in-addr.arpa. NS ns1.example.com.")
	d.Sets = append(d.Sets, set(t, 60, "1.1.0.10.in-addr.arpa. PTR one.example.com."),
		set(t, 60, `*.0.10.in-addr.arpa. TXT "w"`), set(t, 60, "9.0.10.in-addr.arpa. NS ns.other.net."))
	d.Reverse = &Reverse{Prefix: p, Pattern: "h-{ip}.example.com."}
	s, err := Build(d)
	if err != nil {
		t.Fatal(err)
	}
	p6 := netip.MustParsePrefix("2001:db8::/32")
	o6, _ := ReverseOrigin(p6)
	d6 := baseData(o6)
	d6.SOA.Ns, d6.SOA.Mbox = "ns1.example.com.", "h.example.com."
	d6.Sets[0] = set(t, 60, o6+" NS ns1.example.com.")
	d6.Reverse = &Reverse{Prefix: p6, Pattern: "v6-{ip}.example.com."}
	s6, err := Build(d6)
	if err != nil {
		t.Fatal(err)
	}
	return tab.With(s).With(s6)
}

// FuzzLookup sends arbitrary names and types to a table with every kind of
// data. A name without a trailing dot is put below one of the zones so the
// fuzzer spends its time inside them. Checked: no panic, and the answer does
// not depend on the case of the qname (apart from echoed owner names).
func FuzzLookup(f *testing.F) {
	tab := fuzzTable(f)
	origins := make([]string, 0, tab.Len())
	for _, s := range tab.Snapshots() {
		origins = append(origins, s.Origin())
	}
	slices.Sort(origins)
	for _, q := range corpus(tab) {
		f.Add(q.name, q.qtype, uint8(0))
	}
	f.Add("x.y", uint16(dns.TypeA), uint8(1))
	f.Add("1.2", uint16(dns.TypePTR), uint8(4))
	f.Add(`a\.b`, uint16(dns.TypeANY), uint8(2))
	f.Fuzz(func(t *testing.T, name string, qtype uint16, zone uint8) {
		if !strings.HasSuffix(name, ".") {
			if name != "" {
				name += "."
			}
			name += origins[int(zone)%len(origins)]
		}
		r1, _ := tab.Lookup(name, qtype)
		r2, _ := tab.Lookup(strings.ToUpper(name), qtype)
		if r1.Rcode != r2.Rcode || r1.Authoritative != r2.Authoritative ||
			len(r1.Answer) != len(r2.Answer) || len(r1.Ns) != len(r2.Ns) || len(r1.Extra) != len(r2.Extra) {
			t.Fatalf("case changes the answer for %q %d: %+v vs %+v", name, qtype, r1, r2)
		}
		for _, sec := range [][]dns.RR{r1.Answer, r1.Ns, r1.Extra} {
			for _, rr := range sec {
				if rr == nil || rr.Header().Class != dns.ClassINET {
					t.Fatalf("bad record in answer for %q: %v", name, rr)
				}
			}
		}
		if (r1.Rcode == dns.RcodeNameError || r1.Rcode == dns.RcodeSuccess && len(r1.Answer) == 0 && r1.Authoritative) &&
			(len(r1.Ns) != 1 || r1.Ns[0].Header().Rrtype != dns.TypeSOA) {
			t.Fatalf("negative answer without SOA for %q %d: %+v", name, qtype, r1)
		}
		// Snapshot.Lookup must not panic either.
		if s := tab.Find(name); s != nil {
			s.Lookup(name, qtype)
		}
	})
}

// FuzzParseZoneFile feeds arbitrary zone files to the parser. Checked: no
// panic, no hang, errors wrap ErrInvalid, every record's line is a line of
// the file, and anything accepted builds (with Build and BuildShared alike)
// and survives a WriteZoneFile/ParseZoneFile round trip unchanged.
func FuzzParseZoneFile(f *testing.F) {
	for _, o := range testOrigins {
		var buf bytes.Buffer
		if err := WriteZoneFile(&buf, loadZone(f, o), 0); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.String(), "")
	}
	f.Add(smallZone, "example.com.")
	f.Add("$TTL 60\n@ IN SOA ns1 h 1 2 3 4 5\n$GENERATE 1-10 h$ A 192.0.2.$\n", "example.com.")
	f.Add("$ORIGIN x.\n@ 1 IN SOA a. b. 1 2 3 4 5\n* TXT \"a\\\"b\" c\n", "")
	f.Fuzz(func(t *testing.T, text, origin string) {
		if len(text) > 1<<16 {
			return
		}
		if origin != "" && !dns.IsFqdn(origin) {
			origin += "."
		}
		d, lines, err := ParseZoneFileLines(strings.NewReader(text), origin, 0)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		last := strings.Count(text, "\n") + 1
		for i, set := range d.Sets {
			for j := range set.RRs {
				if l := lines.Line(i, j); l < 1 || l > last {
					t.Fatalf("%v on line %d of %d", set.RRs[j], l, last)
				}
			}
		}
		s, err := Build(d)
		if err != nil {
			t.Fatalf("parsed zone does not build: %v", err)
		}
		shared, err := BuildShared(d)
		if err != nil {
			t.Fatalf("parsed zone does not build shared: %v", err)
		}
		if a, b := rrStrings(s.AXFR(), true), rrStrings(shared.AXFR(), true); !slices.Equal(a, b) {
			t.Fatalf("BuildShared differs:\n%s\nvs\n%s", strings.Join(a, "\n"), strings.Join(b, "\n"))
		}
		var buf bytes.Buffer
		if err := WriteZoneFile(&buf, s, 0); err != nil {
			t.Fatal(err)
		}
		d2, err := ParseZoneFile(bytes.NewReader(buf.Bytes()), "", 0)
		if err != nil {
			t.Fatalf("written zone does not parse: %v\n%s", err, buf.String())
		}
		s2, err := Build(d2)
		if err != nil {
			t.Fatal(err)
		}
		if a, b := rrStrings(s.AXFR(), true), rrStrings(s2.AXFR(), true); !slices.Equal(a, b) {
			t.Fatalf("round trip differs:\n%s\nvs\n%s", strings.Join(a, "\n"), strings.Join(b, "\n"))
		}
	})
}
