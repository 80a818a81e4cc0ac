package zone

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

const smallZone = `$TTL 300
@ IN SOA ns1 hostmaster 5 3600 900 604800 60
@ IN NS ns1
ns1 IN A 192.0.2.1
www 600 IN A 192.0.2.2
www IN A 192.0.2.3
www IN A 192.0.2.2
`

func TestParseZoneFileOrigin(t *testing.T) {
	// From the argument.
	d, err := ParseZoneFile(strings.NewReader(smallZone), "Example.COM", 0)
	if err != nil {
		t.Fatal(err)
	}
	if d.Origin != "example.com." || d.SOA.Serial != 5 || len(d.Sets) != 3 {
		t.Fatalf("origin %q serial %d sets %d", d.Origin, d.SOA.Serial, len(d.Sets))
	}
	// Duplicates merged, smallest TTL wins, file order kept.
	www := d.Sets[2]
	if www.Name != "www.example.com." || www.TTL != 300 || len(www.RRs) != 2 {
		t.Fatalf("www set: %+v", www)
	}
	for _, rr := range www.RRs {
		if rr.Header().Ttl != 300 {
			t.Fatalf("record TTL not normalised: %v", rr)
		}
	}
	// From $ORIGIN.
	d, err = ParseZoneFile(strings.NewReader("$ORIGIN example.org.\n"+smallZone), "", 0)
	if err != nil || d.Origin != "example.org." {
		t.Fatalf("$ORIGIN: %q %v", d.Origin, err)
	}
	// From the SOA owner.
	d, err = ParseZoneFile(strings.NewReader("example.net. 60 IN SOA ns1.example.net. h.example.net. 1 2 3 4 5\nexample.net. 60 IN NS ns1.example.net.\n"), "", 0)
	if err != nil || d.Origin != "example.net." {
		t.Fatalf("SOA owner: %q %v", d.Origin, err)
	}
	// Default TTL for records before any TTL.
	d, err = ParseZoneFile(strings.NewReader("@ IN SOA ns1 h 1 2 3 4 5\n@ IN NS ns1\n"), "example.com.", 1234)
	if err != nil || d.SOA.Hdr.Ttl != 1234 || d.Sets[0].TTL != 1234 {
		t.Fatalf("default TTL: %v %+v", err, d)
	}
	d, err = ParseZoneFile(strings.NewReader("@ IN SOA ns1 h 1 2 3 4 5\n@ NS ns1\n"), "example.com.", 0)
	if err != nil || d.SOA.Hdr.Ttl != DefaultTTL || d.Sets[0].TTL != DefaultTTL {
		t.Fatalf("DefaultTTL: %v %+v", err, d)
	}
}

func TestParseZoneFileErrors(t *testing.T) {
	cases := map[string]struct {
		origin, text string
	}{
		"syntax":              {"example.com.", "@ IN SOA ns1 h 1 2 3 4 5\nwww IN A not-an-ip\n"},
		"no SOA":              {"example.com.", "$TTL 60\n@ IN NS ns1\n"},
		"two SOA":             {"example.com.", "$TTL 60\n@ IN SOA ns1 h 1 2 3 4 5\n@ IN SOA ns1 h 2 2 3 4 5\n"},
		"SOA not at apex":     {"example.com.", "$TTL 60\nwww IN SOA ns1 h 1 2 3 4 5\n"},
		"SOA outside origin":  {"example.com.", "$TTL 60\nexample.net. IN SOA ns1 h 1 2 3 4 5\n"},
		"$INCLUDE disabled":   {"example.com.", "$TTL 60\n@ IN SOA ns1 h 1 2 3 4 5\n$INCLUDE /etc/passwd\n"},
		"class CH":            {"example.com.", "$TTL 60\n@ IN SOA ns1 h 1 2 3 4 5\nwww CH A 192.0.2.1\n"},
		"unsupported type":    {"example.com.", "$TTL 60\n@ IN SOA ns1 h 1 2 3 4 5\nwww IN HINFO a b\n"},
		"validation":          {"example.com.", "$TTL 60\n@ IN SOA ns1 h 1 2 3 4 5\nwww IN CNAME a.example.net.\nwww IN A 192.0.2.1\n"},
		"relative, no origin": {"", "@ IN SOA ns1 h 1 2 3 4 5\n"},
		"too many records":    {"example.com.", "$TTL 60\n@ IN SOA ns1 h 1 2 3 4 5\n" + manyRecords(MaxZoneRecords)},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := ParseZoneFile(strings.NewReader(c.text), c.origin, 0)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			t.Log(err)
		})
	}
}

// TestParseZoneFileErrorLines: an error about one record names its line.
func TestParseZoneFileErrorLines(t *testing.T) {
	const head = "$ORIGIN example.com.\n$TTL 60\n; a comment\n\n@ IN SOA ns1 h (\n 1 2 3\n 4 5 )\n@ NS ns1\nns1 A 192.0.2.1\n" // 9 lines
	cases := map[string]struct {
		text string
		want string
	}{
		"syntax":             {head + "www A 192.0.2.1\nwww A not-an-ip\n", "line 11: bad A A"},
		"class":              {head + "\n; x\nwww CH A 192.0.2.1\n", "line 12: www.example.com. A: class CH"},
		"type":               {head + "www HINFO a b\n", "line 10: www.example.com.: record type HINFO"},
		"two SOA":            {head + "@ SOA ns1 h 2 2 3 4 5\n", "line 10: zone file has more than one SOA"},
		"CNAME and A":        {head + "www A 192.0.2.1\nmail A 192.0.2.2\nwww CNAME mail\n", "line 12: www.example.com.: a CNAME cannot coexist"},
		"two CNAMEs":         {head + "www CNAME a\nx A 192.0.2.3\nwww CNAME b\n", "line 12: www.example.com. CNAME: a CNAME set must hold exactly one record"},
		"bad MX target":      {head + "@ MX 10 mail\n@ MX 20 bad_host\n", "line 11: "},
		"below a delegation": {head + "sub NS ns.sub\nns.sub A 192.0.2.4\nwww.sub TXT x\n", "line 12: "},
		"owner inherited":    {head + "www A 192.0.2.1\n  MX 10 bad_host\n", "line 11: www.example.com. MX"},
		"generate":           {head + "$GENERATE 1-3 h$ MX 10 bad_$\n", "line 10: "},
		"SOA":                {"$TTL 60\n\nwww.example.com. IN SOA ns1 h 1 2 3 4 5\n", "line 3: the SOA owner"},
		"wrapped SOA":        {"$TTL 60\n@ IN SOA ns1 h ( 1 2 3\n 4 x )\n", "line 3: bad SOA zone parameter"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := ParseZoneFile(strings.NewReader(c.text), "example.com.", 0)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want ErrInvalid with %q", err, c.want)
			}
			t.Log(err)
		})
	}
}

// TestParseZoneFileLines: every record's line, across multi-line records,
// comments, directives, inherited owners and $GENERATE.
func TestParseZoneFileLines(t *testing.T) {
	text := "$ORIGIN example.com.\n" + // 1
		"$TTL 60\n" + // 2
		"; comment\n" + // 3
		"\n" + // 4
		"@ IN SOA ns1 h (\n" + // 5
		" 1 2 3\n" + // 6
		" 4 5 )\n" + // 7
		"@ NS ns1\n" + // 8
		"ns1 A 192.0.2.1 ; trailing comment\n" + // 9
		"    A 192.0.2.2\n" + // 10
		"   \t\n" + // 11
		"$TTL 300\n" + // 12
		"$GENERATE 1-2 h$ A 192.0.2.$\n" + // 13
		"www TXT ( \"a\"\n" + // 14
		"  \"b\" )\n" + // 15
		"ns1 A 192.0.2.3" // 16, no final newline
	d, lines, err := ParseZoneFileLines(strings.NewReader(text), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if lines.SOA != 5 {
		t.Errorf("SOA on line %d, want 5", lines.SOA)
	}
	want := map[string][]int{"example.com. NS": {8}, "ns1.example.com. A": {9, 10, 16}, "h1.example.com. A": {13}, "h2.example.com. A": {13}, "www.example.com. TXT": {14}}
	for i, set := range d.Sets {
		k := set.Name + " " + dns.TypeToString[set.Type]
		var got []int
		for j := range set.RRs {
			got = append(got, lines.Line(i, j))
		}
		if !slices.Equal(got, want[k]) {
			t.Errorf("%s on lines %v, want %v", k, got, want[k])
		}
		delete(want, k)
	}
	if len(want) != 0 {
		t.Errorf("sets missing: %v", want)
	}
	if lines.Line(len(d.Sets), 0) != 0 || lines.Line(0, 5) != 0 {
		t.Error("Line out of range is not 0")
	}
}

// manyRecords returns $GENERATE lines for n records (miekg/dns caps one
// range at 65535).
func manyRecords(n int) string {
	var b strings.Builder
	for i := 0; i < n; i += 50000 {
		fmt.Fprintf(&b, "$GENERATE 1-50000 h$.g%d A 192.0.2.1\n", i)
	}
	return b.String()
}

// endless is an unbounded stream of comment lines.
type endless struct{}

func (endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ';'
		if i%64 == 63 {
			p[i] = '\n'
		}
	}
	return len(p), nil
}

func TestParseZoneFileSizeLimit(t *testing.T) {
	_, err := ParseZoneFile(io.MultiReader(strings.NewReader("$TTL 60\n@ IN SOA ns1 h 1 2 3 4 5\n"), endless{}), "example.com.", 0)
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("err = %v", err)
	}
}

func TestWriteZoneFileRoundTrip(t *testing.T) {
	for _, o := range testOrigins {
		s := loadZone(t, o)
		roundTrip(t, s)
	}
}

// roundTrip checks ParseZoneFile(WriteZoneFile(s)) == s, record for record.
func roundTrip(t *testing.T, s *Snapshot) {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteZoneFile(&buf, s, 0); err != nil {
		t.Fatal(err)
	}
	d, err := ParseZoneFile(bytes.NewReader(buf.Bytes()), "", 0)
	if err != nil {
		t.Fatalf("re-parse: %v\n%s", err, buf.String())
	}
	s2, err := Build(d)
	if err != nil {
		t.Fatal(err)
	}
	a, b := rrStrings(s.AXFR(), true), rrStrings(s2.AXFR(), true)
	if !slices.Equal(a, b) {
		t.Fatalf("round trip differs:\n%s\nvs\n%s", strings.Join(a, "\n"), strings.Join(b, "\n"))
	}
	var buf2 bytes.Buffer
	if err := WriteZoneFile(&buf2, s2, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), buf2.Bytes()) {
		t.Fatalf("second write differs")
	}
}

// TestRoundTripProperty generates random valid zones and checks that the
// zone file round trip preserves them.
func TestRoundTripProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	n := 200
	if testing.Short() {
		n = 20
	}
	for i := range n {
		d := randomZone(rng, 1+rng.IntN(40))
		s, err := Build(d)
		if err != nil {
			t.Fatalf("zone %d: %v", i, err)
		}
		roundTrip(t, s)
	}
}

// randomZone builds a valid zone with every supported type, wildcards,
// delegations with glue, and awkward TXT contents.
func randomZone(rng *rand.Rand, owners int) Data {
	const origin = "rand.example."
	d := baseData(origin)
	d.SOA.Serial = rng.Uint32()
	d.SOA.Hdr.Ttl = rng.Uint32N(MaxTTL)
	used := map[string]bool{}
	label := func() string {
		const chars = "abcdefghijklmnopqrstuvwxyz0123456789-_"
		n := 1 + rng.IntN(12)
		b := make([]byte, n)
		for i := range b {
			b[i] = chars[rng.IntN(len(chars))]
		}
		if b[0] == '-' {
			b[0] = 'x'
		}
		return string(b)
	}
	host := func() string {
		s := strings.ReplaceAll(label(), "_", "h") + "." + origin
		s = strings.ReplaceAll(s, "-.", "h.")
		return s
	}
	for range owners {
		name := label() + "." + origin
		if rng.IntN(4) == 0 {
			name = label() + "." + name
		}
		if rng.IntN(10) == 0 {
			name = "*." + name
		}
		if used[name] {
			continue
		}
		used[name] = true
		ttl := rng.Uint32N(100000)
		h := func(t uint16) dns.RR_Header {
			return dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET, Ttl: ttl}
		}
		switch rng.IntN(8) {
		case 0: // CNAME alone
			d.Sets = append(d.Sets, RRSet{Name: name, Type: dns.TypeCNAME, TTL: ttl, RRs: []dns.RR{&dns.CNAME{Hdr: h(dns.TypeCNAME), Target: host()}}})
			continue
		case 1: // delegation with glue, unless a wildcard
			if !isWildcard(name) && checkName("ns."+name, hostName) == nil {
				used["ns."+name] = true
				d.Sets = append(d.Sets,
					RRSet{Name: name, Type: dns.TypeNS, TTL: ttl, RRs: []dns.RR{&dns.NS{Hdr: h(dns.TypeNS), Ns: "ns." + name}}},
					RRSet{Name: "ns." + name, Type: dns.TypeA, TTL: ttl, RRs: []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: "ns." + name, Rrtype: dns.TypeA, Class: dns.ClassINET}, A: net.IPv4(192, 0, 2, byte(rng.IntN(256)))}}})
				continue
			}
		}
		for _, typ := range []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeMX, dns.TypeTXT, dns.TypeSRV, dns.TypePTR, dns.TypeCAA} {
			if rng.IntN(3) != 0 {
				continue
			}
			set := RRSet{Name: name, Type: typ, TTL: ttl}
			for j := range 1 + rng.IntN(3) {
				var rr dns.RR
				switch typ {
				case dns.TypeA:
					rr = &dns.A{Hdr: h(typ), A: net.IPv4(10, byte(j), byte(rng.IntN(256)), byte(rng.IntN(256)))}
				case dns.TypeAAAA:
					ip := make(net.IP, 16)
					for k := range ip {
						ip[k] = byte(rng.IntN(256))
					}
					ip[15] = byte(j)
					rr = &dns.AAAA{Hdr: h(typ), AAAA: ip}
				case dns.TypeMX:
					rr = &dns.MX{Hdr: h(typ), Preference: uint16(j), Mx: host()}
				case dns.TypeTXT:
					var txt []string
					for k := range 1 + rng.IntN(3) {
						b := make([]byte, rng.IntN(80))
						for x := range b {
							b[x] = byte(rng.IntN(256))
						}
						// miekg keeps TXT strings in escaped presentation form.
						txt = append(txt, escapeTXT(b)+fmt.Sprint(j, k))
					}
					rr = &dns.TXT{Hdr: h(typ), Txt: txt}
				case dns.TypeSRV:
					rr = &dns.SRV{Hdr: h(typ), Priority: uint16(j), Weight: uint16(rng.IntN(100)), Port: uint16(rng.IntN(65536)), Target: host()}
				case dns.TypePTR:
					rr = &dns.PTR{Hdr: h(typ), Ptr: host()}
				case dns.TypeCAA:
					rr = &dns.CAA{Hdr: h(typ), Flag: uint8(128 * rng.IntN(2)), Tag: []string{"issue", "issuewild", "iodef"}[j], Value: fmt.Sprintf("ca%d.example; x=%d", j, rng.IntN(9))}
				}
				set.RRs = append(set.RRs, rr)
			}
			if findDuplicate(set.RRs) == nil {
				d.Sets = append(d.Sets, set)
			}
		}
	}
	// Drop what random names put below a delegation (except its glue).
	cuts := map[string]bool{}
	for _, s := range d.Sets {
		if s.Type == dns.TypeNS && s.Name != origin {
			cuts[s.Name] = true
		}
	}
	d.Sets = slices.DeleteFunc(d.Sets, func(s RRSet) bool {
		for p := parentName(s.Name); p != origin && p != "."; p = parentName(p) {
			if cuts[p] {
				return !(s.Type == dns.TypeA && s.Name == "ns."+p)
			}
		}
		return false
	})
	return d
}

func escapeTXT(b []byte) string {
	var sb strings.Builder
	for _, c := range b {
		switch {
		case c == '"' || c == '\\':
			sb.WriteByte('\\')
			sb.WriteByte(c)
		case c < ' ' || c > '~':
			fmt.Fprintf(&sb, "\\%03d", c)
		default:
			sb.WriteByte(c)
		}
	}
	return sb.String()
}

// TestParseZoneFileDropsSignatures imports the export of a signed zone:
// its RRSIG, NSEC, NSEC3 and NSEC3PARAM records are left out, the rest
// is the unsigned zone.
func TestParseZoneFileDropsSignatures(t *testing.T) {
	text := `$ORIGIN example.com.
$TTL 300
@ IN SOA ns1 hostmaster 1 3600 600 1209600 300
@ IN RRSIG SOA 13 2 300 20261201000000 20261101000000 12345 example.com. dGVzdA==
@ IN NS ns1
@ IN NSEC www A NS SOA RRSIG NSEC
@ IN NSEC3PARAM 1 0 0 -
www IN A 192.0.2.1
www IN RRSIG A 13 3 300 20261201000000 20261101000000 12345 example.com. dGVzdA==
2vptu5timamqttgl4luu9kg21e0aor3s.example.com. IN NSEC3 1 0 0 - 2vptu5timamqttgl4luu9kg21e0aor3s A RRSIG
`
	d, err := ParseZoneFile(strings.NewReader(text), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, set := range d.Sets {
		got = append(got, set.Name+" "+typeString(set.Type))
	}
	if want := []string{"example.com. NS", "www.example.com. A"}; !slices.Equal(got, want) {
		t.Fatalf("sets %v, want %v", got, want)
	}
}
