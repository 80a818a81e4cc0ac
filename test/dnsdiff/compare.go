package dnsdiff

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Target is a DNS server under comparison.
type Target struct {
	Name string // "nsd", "flashdns", ...
	UDP  string // "127.0.0.1:port"
	TCP  string // often the same as UDP
}

// Exchange sends q to t and returns the answer. It retries a UDP query
// once on timeout (a lost datagram says nothing about the answer) and
// never falls back to TCP on TC: the truncated answer is what is compared.
func (t Target) Exchange(ctx context.Context, q Query) (*dns.Msg, error) {
	c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
	addr := t.UDP
	if q.TCP {
		c.Net, addr = "tcp", t.TCP
	}
	var err error
	for range 2 {
		var r *dns.Msg
		r, _, err = c.ExchangeContext(ctx, q.Msg(), addr)
		if err == nil {
			return r, nil
		}
		if q.TCP || ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("%s: %w", t.Name, err)
}

// Diff is one query on which the two servers disagree.
type Diff struct {
	Query    Query
	Problems []string
	Ref, Got *dns.Msg // may be nil when the exchange failed
	RefName  string
	GotName  string
}

func (d *Diff) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "query %s\n", d.Query)
	for _, p := range d.Problems {
		fmt.Fprintf(&b, "    %s\n", p)
	}
	return b.String()
}

// Full is String plus both answers in dig-like text.
func (d *Diff) Full() string {
	var b strings.Builder
	b.WriteString(d.String())
	for _, x := range []struct {
		name string
		m    *dns.Msg
	}{{d.RefName, d.Ref}, {d.GotName, d.Got}} {
		fmt.Fprintf(&b, "  --- %s answer:\n", x.name)
		if x.m == nil {
			b.WriteString("    (none)\n")
			continue
		}
		for _, l := range strings.Split(strings.TrimRight(x.m.String(), "\n"), "\n") {
			if l != "" {
				fmt.Fprintf(&b, "    %s\n", l)
			}
		}
	}
	return b.String()
}

// RRsetLookup fetches the reference answer records for name and type; the
// ANY comparison uses it to check that every RRset of a minimal ANY
// answer is complete and correct.
type RRsetLookup func(ctx context.Context, name string, qtype uint16) ([]dns.RR, error)

// Compare checks got against the reference answer ref for query q under
// the rules of the package comment and returns the problems found (none
// when they agree). refNames/gotNames label the sections in the report.
func Compare(ctx context.Context, q Query, refName string, ref *dns.Msg, gotName string, got *dns.Msg, lookup RRsetLookup) []string {
	var p []string
	problem := func(format string, args ...any) { p = append(p, fmt.Sprintf(format, args...)) }
	if ref.Rcode != got.Rcode {
		problem("rcode: %s %s, %s %s", refName, rcodeString(ref.Rcode), gotName, rcodeString(got.Rcode))
	}
	flag := func(name string, a, b bool) {
		if a != b {
			problem("%s flag: %s %v, %s %v", name, refName, a, gotName, b)
		}
	}
	flag("QR", ref.Response, got.Response)
	flag("AA", ref.Authoritative, got.Authoritative)
	flag("TC", ref.Truncated, got.Truncated)
	flag("RD", ref.RecursionDesired, got.RecursionDesired)
	flag("RA", ref.RecursionAvailable, got.RecursionAvailable)
	flag("OPT present", ref.IsEdns0() != nil, got.IsEdns0() != nil)
	if ro, gotOpt := ref.IsEdns0(), got.IsEdns0(); ro != nil && gotOpt != nil {
		if ro.Version() != gotOpt.Version() {
			problem("EDNS version: %s %d, %s %d", refName, ro.Version(), gotName, gotOpt.Version())
		}
		// Whether a BADVERS answer echoes DO is left open (RFC 3225 asks
		// for the echo in answers; NSD does not echo it in BADVERS, Knot
		// does).
		if ref.Rcode != dns.RcodeBadVers {
			flag("EDNS DO", ro.Do(), gotOpt.Do())
		}
		if ro.Z() != gotOpt.Z() {
			problem("EDNS unknown flags: %s %#x, %s %#x", refName, ro.Z(), gotName, gotOpt.Z())
		}
		if ro.UDPSize() != gotOpt.UDPSize() {
			problem("EDNS UDP size: %s %d, %s %d", refName, ro.UDPSize(), gotName, gotOpt.UDPSize())
		}
	}
	if len(got.Question) != 1 || got.Question[0].Name != q.Name || got.Question[0].Qtype != q.Type {
		problem("question: %s echoed %v, want %s %s as sent", gotName, got.Question, q.Name, dns.TypeToString[q.Type])
	}
	if ref.Truncated && got.Truncated {
		return p
	}
	if q.Type == dns.TypeANY && positive(q, ref) {
		return append(p, compareANY(ctx, q, refName, gotName, got, lookup)...)
	}
	p = append(p, compareSection("answer", refName, ref.Answer, gotName, got.Answer)...)
	if !positive(q, ref) {
		p = append(p, compareSection("authority", refName, ref.Ns, gotName, got.Ns)...)
		p = append(p, compareSection("additional", refName, ref.Extra, gotName, got.Extra)...)
	}
	return p
}

// positive reports whether m (the reference answer to q) answers the
// question itself: then only the answer section is compared.
func positive(q Query, m *dns.Msg) bool {
	if m.Rcode != dns.RcodeSuccess || len(m.Answer) == 0 {
		return false
	}
	if q.Type == dns.TypeANY || q.Type == dns.TypeCNAME {
		return true
	}
	for _, rr := range m.Answer {
		if rr.Header().Rrtype == q.Type {
			return true
		}
	}
	return false
}

// compareANY checks a minimal ANY answer (see the package comment).
func compareANY(ctx context.Context, q Query, refName, gotName string, got *dns.Msg, lookup RRsetLookup) []string {
	var p []string
	if len(got.Answer) == 0 {
		return []string{fmt.Sprintf("ANY: %s answered no records, %s answered some", gotName, refName)}
	}
	if len(got.Answer) == 1 {
		if h, ok := got.Answer[0].(*dns.HINFO); ok && h.Cpu == "RFC8482" && strings.EqualFold(h.Hdr.Name, q.Name) {
			return nil
		}
	}
	byType := map[uint16][]dns.RR{}
	var types []uint16
	for _, rr := range got.Answer {
		h := rr.Header()
		if !strings.EqualFold(h.Name, q.Name) {
			p = append(p, fmt.Sprintf("ANY: %s answered a record of another name: %s", gotName, rr))
			continue
		}
		if _, ok := byType[h.Rrtype]; !ok {
			types = append(types, h.Rrtype)
		}
		byType[h.Rrtype] = append(byType[h.Rrtype], rr)
	}
	for _, t := range types {
		want, err := lookup(ctx, q.Name, t)
		if err != nil {
			p = append(p, fmt.Sprintf("ANY: %s %s from %s: %v", q.Name, dns.TypeToString[t], refName, err))
			continue
		}
		var own []dns.RR
		for _, rr := range want {
			if strings.EqualFold(rr.Header().Name, q.Name) && rr.Header().Rrtype == t {
				own = append(own, rr)
			}
		}
		p = append(p, compareSection("ANY "+dns.TypeToString[t]+" RRset", refName+" (asked for "+dns.TypeToString[t]+")", own, gotName, byType[t])...)
	}
	return p
}

// compareSection compares two sections as multisets of normalized
// records and lists the records only one side has.
func compareSection(section, refName string, ref []dns.RR, gotName string, got []dns.RR) []string {
	a, b := normalize(ref), normalize(got)
	var onlyA, onlyB []string
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j == len(b) || (i < len(a) && a[i] < b[j]):
			onlyA = append(onlyA, a[i])
			i++
		case i == len(a) || b[j] < a[i]:
			onlyB = append(onlyB, b[j])
			j++
		default:
			i++
			j++
		}
	}
	var p []string
	for _, r := range onlyA {
		p = append(p, fmt.Sprintf("%s: only %s: %s", section, refName, r))
	}
	for _, r := range onlyB {
		p = append(p, fmt.Sprintf("%s: only %s: %s", section, gotName, r))
	}
	return p
}

// normalize renders records for comparison, sorted: owner and domain-name
// rdata lower-cased (names compare case-insensitively; a server may echo
// the query's case in owner names through compression), OPT left out
// (EDNS is compared by presence), TTL kept.
func normalize(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		if rr.Header().Rrtype == dns.TypeOPT {
			continue
		}
		rr = dns.Copy(rr)
		h := rr.Header()
		h.Name = strings.ToLower(h.Name)
		switch r := rr.(type) {
		case *dns.CNAME:
			r.Target = strings.ToLower(r.Target)
		case *dns.NS:
			r.Ns = strings.ToLower(r.Ns)
		case *dns.MX:
			r.Mx = strings.ToLower(r.Mx)
		case *dns.SRV:
			r.Target = strings.ToLower(r.Target)
		case *dns.PTR:
			r.Ptr = strings.ToLower(r.Ptr)
		case *dns.SOA:
			r.Ns, r.Mbox = strings.ToLower(r.Ns), strings.ToLower(r.Mbox)
		}
		out = append(out, strings.ReplaceAll(rr.String(), "\t", " "))
	}
	slices.Sort(out)
	return out
}

func rcodeString(rc int) string {
	if rc == dns.RcodeBadVers {
		return "BADVERS" // shares 16 with TSIG's BADSIG, which miekg/dns prints
	}
	if s, ok := dns.RcodeToString[rc]; ok {
		return s
	}
	return fmt.Sprintf("RCODE%d", rc)
}

// Result is the outcome of running a corpus against two servers.
type Result struct {
	Queries int
	Diffs   []*Diff
}

// Run sends every query of the corpus to ref and got (workers at a time)
// and compares the answers. ANY answers are checked with follow-up
// queries to ref.
func Run(ctx context.Context, corpus []Query, ref, got Target, workers int) *Result {
	workers = max(workers, 1)
	res := &Result{Queries: len(corpus)}
	var mu sync.Mutex
	var wg sync.WaitGroup
	next := make(chan Query)
	for range workers {
		wg.Go(func() {
			for q := range next {
				if d := runOne(ctx, q, ref, got); d != nil {
					mu.Lock()
					res.Diffs = append(res.Diffs, d)
					mu.Unlock()
				}
			}
		})
	}
	for _, q := range corpus {
		select {
		case next <- q:
		case <-ctx.Done():
		}
	}
	close(next)
	wg.Wait()
	// Report in corpus order, whatever order the workers finished in.
	index := map[Query]int{}
	for i, q := range corpus {
		index[q] = i
	}
	slices.SortFunc(res.Diffs, func(a, b *Diff) int { return index[a.Query] - index[b.Query] })
	return res
}

func runOne(ctx context.Context, q Query, ref, got Target) *Diff {
	d := &Diff{Query: q, RefName: ref.Name, GotName: got.Name}
	var refErr, gotErr error
	d.Ref, refErr = ref.Exchange(ctx, q)
	d.Got, gotErr = got.Exchange(ctx, q)
	switch {
	case refErr != nil && gotErr != nil:
		d.Problems = []string{"both failed: " + refErr.Error() + "; " + gotErr.Error()}
		return d
	case refErr != nil:
		d.Problems = []string{"reference failed: " + refErr.Error()}
		return d
	case gotErr != nil:
		d.Problems = []string{"no answer: " + gotErr.Error()}
		return d
	}
	lookup := func(ctx context.Context, name string, qtype uint16) ([]dns.RR, error) {
		r, err := ref.Exchange(ctx, Query{Name: name, Type: qtype, EDNS: q.EDNS, TCP: true})
		if err != nil {
			return nil, err
		}
		return r.Answer, nil
	}
	d.Problems = Compare(ctx, q, ref.Name, d.Ref, got.Name, d.Got, lookup)
	if len(d.Problems) == 0 {
		return nil
	}
	return d
}
