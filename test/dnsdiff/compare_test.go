package dnsdiff

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func rrs(t *testing.T, lines ...string) []dns.RR {
	t.Helper()
	var out []dns.RR
	for _, l := range lines {
		rr, err := dns.NewRR(l)
		if err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		out = append(out, rr)
	}
	return out
}

func reply(q Query, rcode int, aa bool, answer, ns, extra []dns.RR) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(q.Msg())
	m.Rcode, m.Authoritative = rcode, aa
	m.Answer, m.Ns, m.Extra = answer, ns, extra
	return m
}

// The comparison rules of the package comment, one case each.
func TestCompare(t *testing.T) {
	soa := "example.com. 300 IN SOA ns1.example.com. hostmaster.example.com. 1 7200 900 1209600 300"
	ns := "example.com. 3600 IN NS ns1.example.com."
	qA := Query{Name: "WWW.example.com.", Type: dns.TypeA}
	qANY := Query{Name: "www.example.com.", Type: dns.TypeANY}
	qNX := Query{Name: "nx.example.com.", Type: dns.TypeA}
	www := []string{"www.example.com. 3600 IN A 192.0.2.80", "www.example.com. 3600 IN A 192.0.2.81"}
	wwwAAAA := "www.example.com. 3600 IN AAAA 2001:db8::80"
	lookup := func(_ context.Context, name string, qtype uint16) ([]dns.RR, error) {
		switch qtype {
		case dns.TypeA:
			return rrs(t, www...), nil
		case dns.TypeAAAA:
			return rrs(t, wwwAAAA), nil
		}
		return nil, nil
	}
	cases := []struct {
		name     string
		q        Query
		ref, got *dns.Msg
		want     []string // substrings of the problems, in order; none = agree
	}{
		{"positive: order and case of names ignored, NS beside the answer free", qA,
			reply(qA, 0, true, rrs(t, www...), rrs(t, ns), nil),
			reply(qA, 0, true, rrs(t, www[1], strings.ToUpper(www[0][:15])+www[0][15:]), nil, nil), nil},
		{"positive: TTL differs", qA,
			reply(qA, 0, true, rrs(t, www...), nil, nil),
			reply(qA, 0, true, rrs(t, www[0], strings.Replace(www[1], "3600", "300", 1)), nil, nil),
			[]string{"answer: only nsd: www.example.com. 3600", "answer: only flashdns: www.example.com. 300"}},
		{"positive: missing record", qA,
			reply(qA, 0, true, rrs(t, www...), nil, nil),
			reply(qA, 0, true, rrs(t, www[0]), nil, nil),
			[]string{"answer: only nsd: www.example.com. 3600 IN A 192.0.2.81"}},
		{"negative: authority compared", qNX,
			reply(qNX, dns.RcodeNameError, true, nil, rrs(t, soa), nil),
			reply(qNX, dns.RcodeNameError, true, nil, rrs(t, strings.Replace(soa, " 300 IN", " 3600 IN", 1)), nil),
			[]string{"authority: only nsd", "authority: only flashdns"}},
		{"rcode and AA", qNX,
			reply(qNX, dns.RcodeNameError, true, nil, rrs(t, soa), nil),
			reply(qNX, dns.RcodeSuccess, false, nil, rrs(t, soa), nil),
			[]string{"rcode: nsd NXDOMAIN, flashdns NOERROR", "AA flag"}},
		{"question echoed with the query's case", qA,
			reply(qA, 0, true, rrs(t, www...), nil, nil),
			func() *dns.Msg {
				m := reply(qA, 0, true, rrs(t, www...), nil, nil)
				m.Question[0].Name = "www.example.com."
				return m
			}(), []string{"question"}},
		{"truncated by both: contents free", qA,
			func() *dns.Msg { m := reply(qA, 0, true, nil, nil, nil); m.Truncated = true; return m }(),
			func() *dns.Msg { m := reply(qA, 0, true, rrs(t, www[0]), nil, nil); m.Truncated = true; return m }(), nil},
		{"OPT presence", qA,
			reply(qA, 0, true, rrs(t, www...), nil, nil),
			func() *dns.Msg { m := reply(qA, 0, true, rrs(t, www...), nil, nil); m.SetEdns0(1232, false); return m }(),
			[]string{"OPT present"}},
		{"ANY: another complete RRset than NSD's", qANY,
			reply(qANY, 0, true, rrs(t, www...), nil, nil),
			reply(qANY, 0, true, rrs(t, wwwAAAA), nil, nil), nil},
		{"ANY: every RRset", qANY,
			reply(qANY, 0, true, rrs(t, www...), nil, nil),
			reply(qANY, 0, true, rrs(t, append(www, wwwAAAA)...), nil, nil), nil},
		{"ANY: RFC 8482 HINFO", qANY,
			reply(qANY, 0, true, rrs(t, www...), nil, nil),
			reply(qANY, 0, true, rrs(t, `www.example.com. 3600 IN HINFO "RFC8482" ""`), nil, nil), nil},
		{"ANY: incomplete RRset", qANY,
			reply(qANY, 0, true, rrs(t, www...), nil, nil),
			reply(qANY, 0, true, rrs(t, www[0]), nil, nil),
			[]string{"ANY A RRset: only nsd (asked for A): www.example.com. 3600 IN A 192.0.2.81"}},
		{"ANY: empty", qANY,
			reply(qANY, 0, true, rrs(t, www...), nil, nil),
			reply(qANY, 0, true, nil, rrs(t, soa), nil),
			[]string{"ANY: flashdns answered no records"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := Compare(context.Background(), c.q, "nsd", c.ref, "flashdns", c.got, lookup)
			if len(got) != len(c.want) {
				t.Fatalf("problems %q, want %d matching %q", got, len(c.want), c.want)
			}
			for i := range got {
				if !strings.Contains(got[i], c.want[i]) {
					t.Errorf("problem %d = %q, want it to contain %q", i, got[i], c.want[i])
				}
			}
		})
	}
}

// TestCorpusHitsEveryRule classifies NSD's answers to the corpus and
// checks every kind of answer the design names occurs, so that an edit of
// the zones or the corpus cannot silently drop a rule from the
// differential test.
func TestCorpusHitsEveryRule(t *testing.T) {
	zones, corpus := ruleSetup(t)
	owners := map[string]bool{}
	for _, z := range zones {
		rs, err := Records(z)
		if err != nil {
			t.Fatal(err)
		}
		for _, rr := range rs {
			owners[dns.CanonicalName(rr.Header().Name)] = true
		}
	}
	nsd := startNSD(t, zones)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	seen := map[string]int{}
	for _, q := range corpus {
		m, err := nsd.Exchange(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range classify(q, m, owners) {
			seen[k]++
		}
	}
	want := []string{"refused", "nxdomain", "nodata", "referral", "positive", "cname", "cname chain",
		"cname to nxdomain", "cname to nodata", "cname out of zone", "cname to referral", "wildcard",
		"wildcard cname", "additional for MX/SRV", "ptr", "glue", "truncated", "any", "case echoed"}
	for _, k := range want {
		if seen[k] == 0 {
			t.Errorf("no query of the corpus gets a %q answer from NSD", k)
		}
	}
	var got []string
	for k, n := range seen {
		got = append(got, k+"="+strconv.Itoa(n))
	}
	slices.Sort(got)
	t.Logf("answer kinds: %s", strings.Join(got, " "))
}

// classify names the kinds of answer m is (one answer can be several).
func classify(q Query, m *dns.Msg, owners map[string]bool) []string {
	var k []string
	var cnames, ofType int
	for _, rr := range m.Answer {
		if rr.Header().Rrtype == dns.TypeCNAME {
			cnames++
		}
		if rr.Header().Rrtype == q.Type {
			ofType++
		}
	}
	var soa, nsAuth bool
	for _, rr := range m.Ns {
		switch rr.Header().Rrtype {
		case dns.TypeSOA:
			soa = true
		case dns.TypeNS:
			nsAuth = true
		}
	}
	extra := 0
	for _, rr := range m.Extra {
		if rr.Header().Rrtype != dns.TypeOPT {
			extra++
		}
	}
	if m.Truncated {
		k = append(k, "truncated")
	}
	if len(m.Question) == 1 && m.Question[0].Name == q.Name && q.Name != strings.ToLower(q.Name) {
		k = append(k, "case echoed")
	}
	synthesized := len(m.Answer) > 0 && !owners[dns.CanonicalName(m.Answer[0].Header().Name)]
	switch {
	case m.Rcode == dns.RcodeRefused:
		k = append(k, "refused")
	case m.Rcode == dns.RcodeNameError && cnames > 0:
		k = append(k, "cname to nxdomain")
	case m.Rcode == dns.RcodeNameError:
		k = append(k, "nxdomain")
	case !m.Authoritative && nsAuth:
		k = append(k, "referral")
		if extra > 0 {
			k = append(k, "glue")
		}
	case q.Type == dns.TypeANY && len(m.Answer) > 0:
		k = append(k, "any")
	case cnames > 0 && ofType == 0 && q.Type != dns.TypeCNAME:
		switch {
		case soa:
			k = append(k, "cname to nodata")
		case nsAuth:
			k = append(k, "cname to referral")
		case len(m.Ns) == 0:
			k = append(k, "cname out of zone")
		}
	case len(m.Answer) == 0 && soa:
		k = append(k, "nodata")
	case ofType > 0:
		k = append(k, "positive")
		if cnames > 0 {
			k = append(k, "cname")
		}
		if cnames > 1 {
			k = append(k, "cname chain")
		}
		if synthesized {
			k = append(k, "wildcard")
			if cnames > 0 {
				k = append(k, "wildcard cname")
			}
		}
		if q.Type == dns.TypePTR {
			k = append(k, "ptr")
		}
		if (q.Type == dns.TypeMX || q.Type == dns.TypeSRV) && extra > 0 {
			k = append(k, "additional for MX/SRV")
		}
	}
	return k
}
