package zone

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// show renders a record compactly: "owner TTL TYPE rdata".
func show(rr dns.RR) string {
	s := strings.Replace(rr.String(), "\tIN\t", "\t", 1)
	return strings.ReplaceAll(s, "\t", " ")
}

func shows(rrs []dns.RR) []string {
	out := make([]string, 0, len(rrs))
	for _, rr := range rrs {
		out = append(out, show(rr))
	}
	return out
}

type want struct {
	rcode  int
	aa     bool
	answer []string
	ns     []string
	extra  []string
}

func check(t *testing.T, got Result, w want) {
	t.Helper()
	if got.Rcode != w.rcode {
		t.Errorf("rcode = %s, want %s", dns.RcodeToString[got.Rcode], dns.RcodeToString[w.rcode])
	}
	if got.Authoritative != w.aa {
		t.Errorf("aa = %v, want %v", got.Authoritative, w.aa)
	}
	// The NS beside a positive answer is optional; referral NS and the
	// negative SOA are not. (sub.example.com. is the only delegation these
	// tests reach through a CNAME, where NS follows an answer.)
	wantOpt := len(w.answer) > 0 && len(w.ns) > 0 && strings.Contains(w.ns[0], " NS ") && !strings.HasPrefix(w.ns[0], "sub.example.com.")
	if got.OptionalNs != wantOpt {
		t.Errorf("OptionalNs = %v, want %v", got.OptionalNs, wantOpt)
	}
	for _, sec := range []struct {
		name      string
		got, want []string
	}{{"answer", shows(got.Answer), w.answer}, {"authority", shows(got.Ns), w.ns}, {"additional", shows(got.Extra), w.extra}} {
		if !slices.Equal(sec.got, sec.want) && !(len(sec.got) == 0 && len(sec.want) == 0) {
			t.Errorf("%s:\n got  %q\n want %q", sec.name, sec.got, sec.want)
		}
	}
}

var (
	apexNS = []string{
		"example.com. 3600 NS ns1.example.com.",
		"example.com. 3600 NS ns2.example.com.",
		"example.com. 3600 NS ns.other.net.",
	}
	nsGlue = []string{
		"ns1.example.com. 3600 A 192.0.2.53",
		"ns2.example.com. 3600 A 192.0.2.54",
		"ns1.example.com. 3600 AAAA 2001:db8::53",
	}
	negSOA  = []string{"example.com. 300 SOA ns1.example.com. hostmaster.example.com. 2024010101 3600 900 604800 300"}
	subRef  = []string{"sub.example.com. 3600 NS ns.sub.example.com.", "sub.example.com. 3600 NS ns.other.net."}
	subGlue = []string{"ns.sub.example.com. 3600 A 192.0.2.200", "ns.sub.example.com. 3600 AAAA 2001:db8::200"}
	webA    = []string{"web.example.com. 3600 A 192.0.2.80", "web.example.com. 3600 A 192.0.2.81"}
)

func cat(parts ...[]string) []string {
	var out []string
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func pos(answer ...string) want {
	return want{rcode: dns.RcodeSuccess, aa: true, answer: answer, ns: apexNS, extra: nsGlue}
}

var (
	nodata = want{rcode: dns.RcodeSuccess, aa: true, ns: negSOA}
	nxdom  = want{rcode: dns.RcodeNameError, aa: true, ns: negSOA}
	subRes = want{rcode: dns.RcodeSuccess, aa: false, ns: subRef, extra: subGlue}
)

// TestLookupRules has one or more cases per answer rule of lookup.go. The
// expectations are what nsd 4.6.1 answers for testdata/example.com.zone
// (TestAgainstNSD checks the same zone against a running nsd).
func TestLookupRules(t *testing.T) {
	tab := loadTable(t)
	cases := []struct {
		rule  string
		qname string
		qtype uint16
		want  want
	}{
		// Exact match, NS in authority and NS addresses in additional.
		{"exact", "web.example.com.", dns.TypeA, pos(webA...)},
		{"exact multi-string TXT", "web.example.com.", dns.TypeTXT, pos(`web.example.com. 3600 TXT "hello" "world"`)},
		{"case-insensitive qname, stored owner", "WEB.Example.COM.", dns.TypeA, pos(webA...)},
		{"apex SOA keeps its own TTL", "example.com.", dns.TypeSOA, pos("example.com. 7200 SOA ns1.example.com. hostmaster.example.com. 2024010101 3600 900 604800 300")},
		{"apex NS: no NS in authority, addresses in additional", "example.com.", dns.TypeNS,
			want{rcode: dns.RcodeSuccess, aa: true, answer: apexNS, extra: nsGlue}},
		{"answer set not repeated in additional", "ns1.example.com.", dns.TypeA,
			want{rcode: dns.RcodeSuccess, aa: true, answer: []string{"ns1.example.com. 3600 A 192.0.2.53"}, ns: apexNS,
				extra: []string{"ns2.example.com. 3600 A 192.0.2.54", "ns1.example.com. 3600 AAAA 2001:db8::53"}}},
		{"MX additional: own targets first, A before AAAA, wildcard-expanded target", "example.com.", dns.TypeMX,
			want{rcode: dns.RcodeSuccess, aa: true,
				answer: []string{"example.com. 3600 MX 10 mail.example.com.", "example.com. 3600 MX 20 mx.wild.example.com."},
				ns:     apexNS,
				extra: []string{"mail.example.com. 3600 A 192.0.2.25", "mx.wild.example.com. 3600 A 192.0.2.99",
					"ns1.example.com. 3600 A 192.0.2.53", "ns2.example.com. 3600 A 192.0.2.54",
					"mail.example.com. 3600 AAAA 2001:db8::25", "mx.wild.example.com. 3600 AAAA 2001:db8::99",
					"ns1.example.com. 3600 AAAA 2001:db8::53"}}},
		{"MX targets below a cut get no additional", "mxsub.example.com.", dns.TypeMX,
			want{rcode: dns.RcodeSuccess, aa: true,
				answer: []string{"mxsub.example.com. 3600 MX 10 host.sub.example.com.", "mxsub.example.com. 3600 MX 20 ns1.example.com."},
				ns:     apexNS, extra: nsGlue}},
		{"SRV additional skips glue, expands wildcards", "_sip._tcp.example.com.", dns.TypeSRV,
			want{rcode: dns.RcodeSuccess, aa: true,
				answer: []string{"_sip._tcp.example.com. 3600 SRV 10 5 5060 sip.example.com.",
					"_sip._tcp.example.com. 3600 SRV 10 5 5060 host.sub.example.com.",
					"_sip._tcp.example.com. 3600 SRV 20 5 5060 sip2.wild.example.com."},
				ns: apexNS,
				extra: []string{"sip.example.com. 3600 A 192.0.2.66", "sip2.wild.example.com. 3600 A 192.0.2.99",
					"ns1.example.com. 3600 A 192.0.2.53", "ns2.example.com. 3600 A 192.0.2.54",
					"sip2.wild.example.com. 3600 AAAA 2001:db8::99", "ns1.example.com. 3600 AAAA 2001:db8::53"}}},
		{"null MX", "only-mx.example.com.", dns.TypeMX, pos("only-mx.example.com. 3600 MX 0 .")},

		// Negative answers.
		{"NODATA with SOA TTL min(TTL, MINIMUM)", "web.example.com.", dns.TypeMX, nodata},
		{"NXDOMAIN below a name without wildcard", "x.web.example.com.", dns.TypeA, nxdom},
		{"empty non-terminal is NODATA", "b.ent.example.com.", dns.TypeA, nodata},
		{"DS at the apex without parent zone: NODATA", "example.com.", dns.TypeDS, nodata},
		{"SOA below the apex: NODATA", "web.example.com.", dns.TypeSOA, nodata},

		// Wildcards (RFC 4592).
		{"wildcard expands with the qname as written", "Foo.WILD.example.com.", dns.TypeA,
			pos("Foo.WILD.example.com. 3600 A 192.0.2.99")},
		{"wildcard matches several labels", "x.y.wild.example.com.", dns.TypeA, pos("x.y.wild.example.com. 3600 A 192.0.2.99")},
		{"wildcard NODATA", "x.wild.example.com.", dns.TypeTXT, nodata},
		{"wildcard owner queried literally", "*.wild.example.com.", dns.TypeA, pos("*.wild.example.com. 3600 A 192.0.2.99")},
		{"wildcard does not cover its parent", "wild.example.com.", dns.TypeA, nodata},
		{"wildcard MX with additional", "a.wild.example.com.", dns.TypeMX,
			want{rcode: dns.RcodeSuccess, aa: true, answer: []string{"a.wild.example.com. 3600 MX 10 mail.example.com."}, ns: apexNS,
				extra: []string{"mail.example.com. 3600 A 192.0.2.25", "ns1.example.com. 3600 A 192.0.2.53", "ns2.example.com. 3600 A 192.0.2.54",
					"mail.example.com. 3600 AAAA 2001:db8::25", "ns1.example.com. 3600 AAAA 2001:db8::53"}}},
		{"empty non-terminal blocks the wildcard above it", "x.b.ent.example.com.", dns.TypeTXT, nxdom},
		{"ENT itself is not wildcard-matched", "b.ent.example.com.", dns.TypeTXT, nodata},
		{"sibling of an ENT matches the wildcard", "zzz.ent.example.com.", dns.TypeTXT, pos(`zzz.ent.example.com. 3600 TXT "wild-ent"`)},
		{"apex wildcard", "nothere.example.com.", dns.TypeTXT, pos(`nothere.example.com. 3600 TXT "apex-wild"`)},
		{"wildcard CNAME is followed", "q.wc.example.com.", dns.TypeA, pos(cat([]string{"q.wc.example.com. 3600 CNAME web.example.com."}, webA)...)},
		{"qtype CNAME at a wildcard CNAME", "q.wc.example.com.", dns.TypeCNAME, pos("q.wc.example.com. 3600 CNAME web.example.com.")},
		{"wildcard CNAME loop: qname and target identities, like NSD", "q.wcl.example.com.", dns.TypeA,
			want{rcode: dns.RcodeSuccess, aa: true, answer: []string{
				"q.wcl.example.com. 3600 CNAME foo.wcl.example.com.", "foo.wcl.example.com. 3600 CNAME foo.wcl.example.com."}}},
		{"wildcard CNAME loop on the target name", "foo.wcl.example.com.", dns.TypeA,
			want{rcode: dns.RcodeSuccess, aa: true, answer: []string{
				"foo.wcl.example.com. 3600 CNAME foo.wcl.example.com.", "foo.wcl.example.com. 3600 CNAME foo.wcl.example.com."}}},

		// CNAME.
		{"CNAME followed in the zone", "www.example.com.", dns.TypeA, pos(cat([]string{"www.example.com. 3600 CNAME web.example.com."}, webA)...)},
		{"CNAME chain", "chain1.example.com.", dns.TypeA, pos(cat([]string{
			"chain1.example.com. 3600 CNAME chain2.example.com.",
			"chain2.example.com. 3600 CNAME chain3.example.com.",
			"chain3.example.com. 3600 CNAME web.example.com."}, webA)...)},
		{"CNAME then NODATA keeps the SOA", "www.example.com.", dns.TypeMX,
			want{rcode: dns.RcodeSuccess, aa: true, answer: []string{"www.example.com. 3600 CNAME web.example.com."}, ns: negSOA}},
		{"CNAME then NXDOMAIN: rcode of the last name", "tonx.example.com.", dns.TypeA,
			want{rcode: dns.RcodeNameError, aa: true, answer: []string{"tonx.example.com. 3600 CNAME x.web.example.com."}, ns: negSOA}},
		{"CNAME to a wildcard: expanded with the target name", "dangling.example.com.", dns.TypeTXT,
			pos("dangling.example.com. 3600 CNAME nothere.example.com.", `nothere.example.com. 3600 TXT "apex-wild"`)},
		{"CNAME loop stops", "loop1.example.com.", dns.TypeA,
			want{rcode: dns.RcodeSuccess, aa: true, answer: []string{
				"loop1.example.com. 3600 CNAME loop2.example.com.", "loop2.example.com. 3600 CNAME loop1.example.com."}}},
		{"CNAME out of the served zones ends the answer", "ext.example.com.", dns.TypeA,
			want{rcode: dns.RcodeSuccess, aa: true, answer: []string{"ext.example.com. 3600 CNAME www.other.net."}}},
		{"CNAME into a delegation: AA on, referral in authority", "todeleg.example.com.", dns.TypeA,
			want{rcode: dns.RcodeSuccess, aa: true, answer: []string{"todeleg.example.com. 3600 CNAME x.sub.example.com."}, ns: subRef, extra: subGlue}},
		{"qtype CNAME is not followed", "www.example.com.", dns.TypeCNAME, pos("www.example.com. 3600 CNAME web.example.com.")},
		{"Table: CNAME into another served zone is followed", "xz.example.com.", dns.TypeA,
			want{rcode: dns.RcodeSuccess, aa: true,
				answer: []string{"xz.example.com. 3600 CNAME www.zone2.test.", "www.zone2.test. 60 A 198.51.100.80"},
				ns:     []string{"zone2.test. 60 NS ns.zone2.test."}, extra: []string{"ns.zone2.test. 60 A 198.51.100.1"}}},
		{"Table: other zone's negative answer", "xz.example.com.", dns.TypeTXT,
			want{rcode: dns.RcodeSuccess, aa: true, answer: []string{"xz.example.com. 3600 CNAME www.zone2.test."},
				ns: []string{"zone2.test. 30 SOA ns.zone2.test. h.zone2.test. 5 3600 900 604800 30"}}},
		{"Table: wildcard CNAME into another zone's NXDOMAIN", "a.wcx.example.com.", dns.TypeA,
			want{rcode: dns.RcodeNameError, aa: true, answer: []string{"a.wcx.example.com. 3600 CNAME nothere.zone2.test."},
				ns: []string{"zone2.test. 30 SOA ns.zone2.test. h.zone2.test. 5 3600 900 604800 30"}}},
		{"Table: CNAME into a child zone answers from the child", "tochild.example.com.", dns.TypeA,
			want{rcode: dns.RcodeSuccess, aa: true,
				answer: []string{"tochild.example.com. 3600 CNAME host.child.example.com.", "host.child.example.com. 300 A 192.0.2.150"},
				ns:     []string{"child.example.com. 300 NS ns1.example.com.", "child.example.com. 300 NS ns2.example.com."}}},

		// Delegations.
		{"referral at the cut", "sub.example.com.", dns.TypeA, subRes},
		{"NS at the cut is a referral too", "sub.example.com.", dns.TypeNS, subRes},
		{"glue name gets the referral", "ns.sub.example.com.", dns.TypeA, subRes},
		{"below the cut", "deep.x.sub.example.com.", dns.TypeANY, subRes},
		{"DS at the cut is answered by the parent (NODATA)", "sub.example.com.", dns.TypeDS, nodata},
		{"DS below the cut is a referral", "x.sub.example.com.", dns.TypeDS, subRes},
		{"glue at the cut itself", "selfdel.example.com.", dns.TypeA,
			want{rcode: dns.RcodeSuccess, ns: []string{"selfdel.example.com. 3600 NS selfdel.example.com."},
				extra: []string{"selfdel.example.com. 3600 A 192.0.2.201"}}},
		{"Table: delegated child served here answers from the child", "host.child.example.com.", dns.TypeA,
			want{rcode: dns.RcodeSuccess, aa: true, answer: []string{"host.child.example.com. 300 A 192.0.2.150"},
				ns: []string{"child.example.com. 300 NS ns1.example.com.", "child.example.com. 300 NS ns2.example.com."}}},
		{"Table: DS at a child apex comes from the parent", "child.example.com.", dns.TypeDS, nodata},

		// ANY (RFC 8482, NSD's choice).
		{"ANY: first preferred type", "multi.example.com.", dns.TypeANY,
			want{rcode: dns.RcodeSuccess, aa: true, answer: []string{"multi.example.com. 3600 A 192.0.2.9"}}},
		{"ANY: last other type", "tc.example.com.", dns.TypeANY,
			want{rcode: dns.RcodeSuccess, aa: true, answer: []string{`tc.example.com. 3600 CAA 0 issue "ca.example"`}}},
		{"ANY at the apex is the SOA", "example.com.", dns.TypeANY,
			want{rcode: dns.RcodeSuccess, aa: true, answer: []string{"example.com. 7200 SOA ns1.example.com. hostmaster.example.com. 2024010101 3600 900 604800 300"}}},
		{"ANY at a CNAME is not followed", "www.example.com.", dns.TypeANY,
			want{rcode: dns.RcodeSuccess, aa: true, answer: []string{"www.example.com. 3600 CNAME web.example.com."}}},
		{"ANY at an ENT is NODATA", "b.ent.example.com.", dns.TypeANY, nodata},
		{"ANY at a wildcard", "q.wild.example.com.", dns.TypeANY,
			want{rcode: dns.RcodeSuccess, aa: true, answer: []string{"q.wild.example.com. 3600 A 192.0.2.99"}}},
		{"ANY MX keeps its additional", "mxsub.example.com.", dns.TypeANY,
			want{rcode: dns.RcodeSuccess, aa: true,
				answer: []string{"mxsub.example.com. 3600 MX 10 host.sub.example.com.", "mxsub.example.com. 3600 MX 20 ns1.example.com."},
				extra:  []string{"ns1.example.com. 3600 A 192.0.2.53", "ns1.example.com. 3600 AAAA 2001:db8::53"}}},

		// Outside.
		{"outside every zone: REFUSED", "www.other.net.", dns.TypeA, want{rcode: dns.RcodeRefused}},
	}
	for _, c := range cases {
		t.Run(c.rule, func(t *testing.T) {
			got, _ := tab.Lookup(c.qname, c.qtype)
			check(t, got, c.want)
		})
	}
}

// TestSnapshotLookupStaysInZone: without a table the CNAME chain ends at the
// zone boundary and a delegated child is a referral.
func TestSnapshotLookupStaysInZone(t *testing.T) {
	s := loadZone(t, "example.com.")
	check(t, s.Lookup("xz.example.com.", dns.TypeA),
		want{rcode: dns.RcodeSuccess, aa: true, answer: []string{"xz.example.com. 3600 CNAME www.zone2.test."}})
	check(t, s.Lookup("host.child.example.com.", dns.TypeA), want{rcode: dns.RcodeSuccess,
		ns: []string{"child.example.com. 3600 NS ns1.example.com.", "child.example.com. 3600 NS ns2.example.com."}, extra: nsGlue})
	check(t, s.Lookup("www.other.net.", dns.TypeA), want{rcode: dns.RcodeRefused})
	check(t, s.Lookup("badexample.com.", dns.TypeA), want{rcode: dns.RcodeRefused})
	// Non-FQDN input is accepted.
	check(t, s.Lookup("web.example.com", dns.TypeA), pos(webA...))
}

// TestResultIsReadOnlySafe: appending to a Result must not write into the
// snapshot's shared slices.
func TestResultIsReadOnlySafe(t *testing.T) {
	s := loadZone(t, "example.com.")
	r := s.Lookup("web.example.com.", dns.TypeA)
	_ = append(r.Answer, mustRR(t, "evil.example.com. 1 IN A 10.0.0.1"))
	_ = append(r.Ns, mustRR(t, "evil.example.com. 1 IN A 10.0.0.1"))
	_ = append(r.Extra, mustRR(t, "evil.example.com. 1 IN A 10.0.0.1"))
	check(t, s.Lookup("web.example.com.", dns.TypeA), pos(webA...))
	check(t, s.Lookup("sip.example.com.", dns.TypeA), pos("sip.example.com. 3600 A 192.0.2.66"))
}

func TestLookupChainLimit(t *testing.T) {
	d := baseData("example.org.")
	const n = maxChain + 10
	for i := range n {
		d.Sets = append(d.Sets, RRSet{Name: cname(i), Type: dns.TypeCNAME, TTL: 60,
			RRs: []dns.RR{&dns.CNAME{Hdr: hdr(cname(i), dns.TypeCNAME), Target: cname(i + 1)}}})
	}
	s, err := Build(d)
	if err != nil {
		t.Fatal(err)
	}
	r := s.Lookup(cname(0), dns.TypeA)
	if len(r.Answer) != maxChain || r.Rcode != dns.RcodeSuccess || !r.Authoritative {
		t.Fatalf("chain: %d records, rcode %d", len(r.Answer), r.Rcode)
	}
}

func cname(i int) string { return "c" + strconv.Itoa(i) + ".example.org." }
