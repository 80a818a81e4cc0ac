package zone

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/miekg/dns"
)

func TestReverseOrigin(t *testing.T) {
	good := map[string]string{
		"10.0.0.0/8":        "10.in-addr.arpa.",
		"172.16.0.0/16":     "16.172.in-addr.arpa.",
		"192.0.2.0/24":      "2.0.192.in-addr.arpa.",
		"2001:db8::/32":     "8.b.d.0.1.0.0.2.ip6.arpa.",
		"2001:db8:1::/48":   "1.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.",
		"2001:db8:1:2::/64": "2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.",
		"2001:db8::/36":     "0.8.b.d.0.1.0.0.2.ip6.arpa.",
	}
	for p, want := range good {
		got, err := ReverseOrigin(netip.MustParsePrefix(p))
		if err != nil || got != want {
			t.Errorf("ReverseOrigin(%s) = %q, %v; want %q", p, got, err, want)
		}
	}
	for _, p := range []string{"192.0.2.0/25", "192.0.2.1/32", "10.0.0.0/12", "0.0.0.0/0", "192.0.2.1/24",
		"2001:db8::/33", "2001:db8::1/128", "::/0", "::ffff:192.0.2.0/120"} {
		if _, err := ReverseOrigin(netip.MustParsePrefix(p)); !errors.Is(err, ErrInvalid) {
			t.Errorf("ReverseOrigin(%s) = %v, want ErrInvalid", p, err)
		}
	}
	if _, err := ReverseOrigin(netip.Prefix{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("zero prefix: %v", err)
	}
}

func reverseZone(t *testing.T, prefix, pattern string, ttl uint32, sets ...RRSet) *Snapshot {
	t.Helper()
	p := netip.MustParsePrefix(prefix)
	origin, err := ReverseOrigin(p)
	if err != nil {
		t.Fatal(err)
	}
	d := baseData(origin)
	d.SOA.Ns, d.SOA.Mbox = "ns1.example.com.", "hostmaster.example.com."
	d.SOA.Hdr.Ttl = 900
	d.Sets[0] = set(t, 3600, origin+" NS ns1.example.com.")
	d.Sets = append(d.Sets, sets...)
	d.Reverse = &Reverse{Prefix: p, Pattern: pattern, TTL: ttl}
	s, err := Build(d)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestReverseSynthesis(t *testing.T) {
	ns := []string{"2.0.192.in-addr.arpa. 3600 NS ns1.example.com."}
	neg := []string{"2.0.192.in-addr.arpa. 300 SOA ns1.example.com. hostmaster.example.com. 1 3600 900 604800 300"}
	s := reverseZone(t, "192.0.2.0/24", "{4}-{3}-{2}-{1}.hosts.example.com.", 0,
		set(t, 60, "80.2.0.192.in-addr.arpa. PTR web.example.com."),
		set(t, 60, `81.2.0.192.in-addr.arpa. TXT "explicit"`),
		set(t, 60, "82.2.0.192.in-addr.arpa. A 192.0.2.82"),
		set(t, 60, "99.2.0.192.in-addr.arpa. CNAME 80.2.0.192.in-addr.arpa."),
		set(t, 60, "98.2.0.192.in-addr.arpa. CNAME 7.2.0.192.in-addr.arpa."),
		set(t, 60, "5.2.0.192.in-addr.arpa. NS ns.other.net."),
		set(t, 60, `*.2.0.192.in-addr.arpa. TXT "wild"`),
		set(t, 60, `x.1.2.0.192.in-addr.arpa. TXT "below an address"`),
	)
	nodataR := want{rcode: dns.RcodeSuccess, aa: true, ns: neg}
	nxR := want{rcode: dns.RcodeNameError, aa: true, ns: neg}
	cases := []struct {
		rule  string
		qname string
		qtype uint16
		want  want
	}{
		{"synthesised PTR, SOA TTL", "7.2.0.192.in-addr.arpa.", dns.TypePTR,
			want{rcode: dns.RcodeSuccess, aa: true, answer: []string{"7.2.0.192.in-addr.arpa. 900 PTR 7-2-0-192.hosts.example.com."}, ns: ns}},
		{"owner as the client wrote it", "7.2.0.192.IN-ADDR.ARPA.", dns.TypePTR,
			want{rcode: dns.RcodeSuccess, aa: true, answer: []string{"7.2.0.192.IN-ADDR.ARPA. 900 PTR 7-2-0-192.hosts.example.com."}, ns: ns}},
		{"other type at a synthesised name: NODATA", "7.2.0.192.in-addr.arpa.", dns.TypeA, nodataR},
		{"ANY at a synthesised name", "7.2.0.192.in-addr.arpa.", dns.TypeANY,
			want{rcode: dns.RcodeSuccess, aa: true, answer: []string{"7.2.0.192.in-addr.arpa. 900 PTR 7-2-0-192.hosts.example.com."}}},
		{"explicit PTR wins", "80.2.0.192.in-addr.arpa.", dns.TypePTR,
			want{rcode: dns.RcodeSuccess, aa: true, answer: []string{"80.2.0.192.in-addr.arpa. 60 PTR web.example.com."}, ns: ns}},
		{"explicit data without PTR still gets one", "81.2.0.192.in-addr.arpa.", dns.TypePTR,
			want{rcode: dns.RcodeSuccess, aa: true, answer: []string{"81.2.0.192.in-addr.arpa. 900 PTR 81-2-0-192.hosts.example.com."}, ns: ns}},
		{"explicit data answered", "81.2.0.192.in-addr.arpa.", dns.TypeTXT,
			want{rcode: dns.RcodeSuccess, aa: true, answer: []string{`81.2.0.192.in-addr.arpa. 60 TXT "explicit"`}, ns: ns}},
		{"ANY prefers the synthesised PTR over TXT", "81.2.0.192.in-addr.arpa.", dns.TypeANY,
			want{rcode: dns.RcodeSuccess, aa: true, answer: []string{"81.2.0.192.in-addr.arpa. 900 PTR 81-2-0-192.hosts.example.com."}}},
		{"ANY prefers an explicit A (ordered before PTR)", "82.2.0.192.in-addr.arpa.", dns.TypeANY,
			want{rcode: dns.RcodeSuccess, aa: true, answer: []string{"82.2.0.192.in-addr.arpa. 60 A 192.0.2.82"}}},
		{"CNAME at an address is followed", "99.2.0.192.in-addr.arpa.", dns.TypePTR,
			want{rcode: dns.RcodeSuccess, aa: true, answer: []string{"99.2.0.192.in-addr.arpa. 60 CNAME 80.2.0.192.in-addr.arpa.",
				"80.2.0.192.in-addr.arpa. 60 PTR web.example.com."}, ns: ns}},
		{"CNAME to a synthesised name", "98.2.0.192.in-addr.arpa.", dns.TypePTR,
			want{rcode: dns.RcodeSuccess, aa: true, answer: []string{"98.2.0.192.in-addr.arpa. 60 CNAME 7.2.0.192.in-addr.arpa.",
				"7.2.0.192.in-addr.arpa. 900 PTR 7-2-0-192.hosts.example.com."}, ns: ns}},
		{"delegated address: referral", "5.2.0.192.in-addr.arpa.", dns.TypePTR,
			want{rcode: dns.RcodeSuccess, ns: []string{"5.2.0.192.in-addr.arpa. 60 NS ns.other.net."}}},
		{"ENT at a full address (data below it) still synthesises", "1.2.0.192.in-addr.arpa.", dns.TypePTR,
			want{rcode: dns.RcodeSuccess, aa: true, answer: []string{"1.2.0.192.in-addr.arpa. 900 PTR 1-2-0-192.hosts.example.com."}, ns: ns}},
		{"leading zero is not an address: wildcard", "07.2.0.192.in-addr.arpa.", dns.TypeTXT,
			want{rcode: dns.RcodeSuccess, aa: true, answer: []string{`07.2.0.192.in-addr.arpa. 60 TXT "wild"`}, ns: ns}},
		{"wildcard never covers an address", "7.2.0.192.in-addr.arpa.", dns.TypeTXT, nodataR},
		{"octet > 255 is not an address", "256.2.0.192.in-addr.arpa.", dns.TypePTR, nodataR}, // wildcard TXT exists: NODATA
		{"more labels than an address: the synthesised name blocks the wildcard", "3.7.2.0.192.in-addr.arpa.", dns.TypeTXT, nxR},
		{"below a non-address label the wildcard applies", "3.256.2.0.192.in-addr.arpa.", dns.TypeTXT,
			want{rcode: dns.RcodeSuccess, aa: true, answer: []string{`3.256.2.0.192.in-addr.arpa. 60 TXT "wild"`}, ns: ns}},
		{"apex", "2.0.192.in-addr.arpa.", dns.TypePTR, nodataR},
	}
	for _, c := range cases {
		t.Run(c.rule, func(t *testing.T) { check(t, s.Lookup(c.qname, c.qtype), c.want) })
	}
}

func TestReverseSynthesisPartialAndIPv6(t *testing.T) {
	s := reverseZone(t, "10.0.0.0/16", "ip-{ip}.example.com.", 120)
	neg := []string{"0.10.in-addr.arpa. 300 SOA ns1.example.com. hostmaster.example.com. 1 3600 900 604800 300"}
	check(t, s.Lookup("5.0.10.in-addr.arpa.", dns.TypePTR), want{rcode: dns.RcodeSuccess, aa: true, ns: neg})
	check(t, s.Lookup("x.0.10.in-addr.arpa.", dns.TypePTR), want{rcode: dns.RcodeNameError, aa: true, ns: neg})
	check(t, s.Lookup("9.5.0.10.in-addr.arpa.", dns.TypePTR), want{rcode: dns.RcodeSuccess, aa: true,
		answer: []string{"9.5.0.10.in-addr.arpa. 120 PTR ip-10-0-5-9.example.com."},
		ns:     []string{"0.10.in-addr.arpa. 3600 NS ns1.example.com."}})

	s6 := reverseZone(t, "2001:db8:1:2::/64", "ip-{ip}.v6.example.com.", 0)
	origin := "2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa."
	full := "5.0.0.0.0.0.0.0.0.0.0.0.0.0.A.0." + origin
	check(t, s6.Lookup(full, dns.TypePTR), want{rcode: dns.RcodeSuccess, aa: true,
		answer: []string{full + " 900 PTR ip-2001-db8-1-2-a00--5.v6.example.com."},
		ns:     []string{origin + " 3600 NS ns1.example.com."}})
	neg6 := []string{origin + " 300 SOA ns1.example.com. hostmaster.example.com. 1 3600 900 604800 300"}
	check(t, s6.Lookup("a.0."+origin, dns.TypePTR), want{rcode: dns.RcodeSuccess, aa: true, ns: neg6})
	check(t, s6.Lookup("g.0."+origin, dns.TypePTR), want{rcode: dns.RcodeNameError, aa: true, ns: neg6})
	check(t, s6.Lookup("10.0."+origin, dns.TypePTR), want{rcode: dns.RcodeNameError, aa: true, ns: neg6})
}

// TestReversePatternExpansion checks every placeholder of the
// flashdns.v1 ReverseConfig pattern syntax, including the IPv6 {ip} forms
// whose compressed "::" would otherwise start or end the name with '-'.
func TestReversePatternExpansion(t *testing.T) {
	for _, tc := range []struct{ addr, pattern, want string }{
		{"192.0.2.1", "{4}-{3}-{2}-{1}.hosts.example.com.", "1-2-0-192.hosts.example.com."},
		{"192.0.2.1", "ip-{ip}.example.com.", "ip-192-0-2-1.example.com."},
		{"192.0.2.1", "h{hex}.example.com.", "hc0000201.example.com."},
		{"2001:db8::1", "{ip}.v6.example.com.", "2001-db8--1.v6.example.com."},
		{"2001:db8:1::", "{ip}.v6.example.com.", "2001-db8-1--0.v6.example.com."},
		{"::1", "{ip}.v6.example.com.", "0--1.v6.example.com."},
		{"2001:db8:0:1:2:3:4:5", "{5}-{6}-{7}-{8}.v6.example.com.", "2-3-4-5.v6.example.com."},
		{"2001:db8::abcd", "{1}.{2}.{8}.example.com.", "2001.db8.abcd.example.com."},
		{"2001:db8::1", "{hex}.example.com.", "20010db8000000000000000000000001.example.com."},
	} {
		got, err := expandPattern(tc.pattern, netip.MustParseAddr(tc.addr))
		if err != nil || got != tc.want {
			t.Errorf("expand %q for %s = %q, %v; want %q", tc.pattern, tc.addr, got, err, tc.want)
		}
	}
}

func TestReversePatternValidation(t *testing.T) {
	v4 := netip.MustParsePrefix("192.0.2.0/24")
	v6 := netip.MustParsePrefix("2001:db8::/32")
	bad := []struct {
		p       netip.Prefix
		pattern string
	}{
		{v4, ""},
		{v4, "{4}.hosts.example.com"}, // not FQDN
		{v4, "{5}.hosts.example.com."},
		{v4, "{4.hosts.example.com."},
		{v4, "{4}_x.hosts.example.com."}, // '_' not in host names
		{v6, "{9}.hosts.example.com."},   // IPv6 has 8 groups
		{v6, "{x}.hosts.example.com."},
		{v4, "{ip}{ip}{ip}{ip}{ip}.example.com."},
		{v4, "-{4}.example.com."},
	}
	for _, b := range bad {
		origin, _ := ReverseOrigin(b.p)
		d := baseData(origin)
		d.Reverse = &Reverse{Prefix: b.p, Pattern: b.pattern}
		if err := ValidateZone(d); !errors.Is(err, ErrInvalid) {
			t.Errorf("pattern %q for %s: %v, want ErrInvalid", b.pattern, b.p, err)
		}
	}
	// The prefix must be the zone's own.
	d := baseData("3.0.192.in-addr.arpa.")
	d.Reverse = &Reverse{Prefix: v4, Pattern: "{4}.example.com."}
	if err := ValidateZone(d); !errors.Is(err, ErrInvalid) {
		t.Errorf("foreign prefix: %v", err)
	}
	d = baseData("2.0.192.in-addr.arpa.")
	d.Reverse = &Reverse{Prefix: v4, Pattern: "{4}-{3}-{2}-{1}.HOSTS.example.com.", TTL: 60}
	if err := ValidateZone(d); err != nil {
		t.Errorf("good pattern: %v", err)
	}
}
