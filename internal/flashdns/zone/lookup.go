package zone

import (
	"net/netip"

	"github.com/miekg/dns"
)

// Answer rules (Lookup), modelled on NSD 4.6 (query.c) and checked against a
// running nsd 4.6.1:
//
//   - Names outside the zone: REFUSED, AA off (Table.Lookup: no zone).
//   - Zone cut: if the closest existing name at or above qname is at or below
//     a delegation (NS set below the apex), the answer is a referral: AA off,
//     the cut's NS set in authority, in-zone A/AAAA of its targets (glue) in
//     additional, for every qtype, NS included. Exception (RFC 4035 §3.1.4.1,
//     NSD): qtype DS exactly at the cut is answered authoritatively from
//     this zone (NODATA, since DS records are not served).
//   - Exact match (also for empty non-terminals): the set of qtype; else the
//     CNAME, followed; else NODATA.
//   - Not existing: reverse synthesis (reverse.go), then the wildcard child
//     of the closest encloser (RFC 4592: an existing name, empty
//     non-terminals included, blocks the wildcard; only the closest
//     encloser's "*" applies), else NXDOMAIN. The expanded owner is the qname
//     as the client wrote it (NSD compresses it to the question).
//   - Positive answers: AA on; the apex NS set in authority and the in-zone
//     A/AAAA of the NS targets in additional, like NSD without
//     minimal-responses (NSD leaves the NS out for qtype ANY, DS and DNSKEY,
//     and when the answer is that NS set). MX, SRV and NS answers add the
//     in-zone A/AAAA of their targets (MX/SRV targets at or below a cut are
//     skipped; targets that do not exist expand wildcards). Additional order
//     is all A sets, then all AAAA sets; a set appears once and never beside
//     itself in the answer.
//   - Negative answers: NXDOMAIN or NODATA (NOERROR, empty answer), AA on,
//     the SOA in authority with TTL min(SOA TTL, MINIMUM).
//   - CNAME: the chain is followed within the zone (Snapshot.Lookup) or
//     through every zone of the table (Table.Lookup, which NSD does too: a
//     CNAME into another zone it serves is followed). Each step is answered
//     by the rules above for the target, the rcode is that of the last name
//     (RFC 6604), AA stays on (also when the chain ends in a referral). A
//     CNAME whose owner was already answered stops the chain (loop); a
//     wildcard CNAME may therefore appear twice: once for the qname, once
//     for the target name, exactly as NSD does. A target outside the served
//     zones ends the answer (NOERROR, no authority). At most maxChain
//     CNAMEs are followed.
//   - qtype CNAME returns the CNAME itself, never followed.
//   - ANY (RFC 8482 minimal): one RRset, chosen like NSD: the first of
//     A, AAAA, SOA, MX, PTR in the node's set order (SOA first, then by type
//     number), else the last other set; CNAMEs are not followed; no NS in
//     authority; NODATA for empty non-terminals.
//
// Lookup assumes class IN; the server handles other classes.

// maxChain bounds CNAME following. NSD stops only at loops (or when its
// answer table is full); in-zone chains longer than this do not occur in
// sane zones and the bound keeps a pathological one cheap.
const maxChain = 64

// stepOut is the outcome of answering one name in one zone: either a final
// Result, or a CNAME to add to the answer and follow.
type stepOut struct {
	Result
	cname  []dns.RR // the CNAME as it goes into the answer
	cset   *rrset   // its set, with cid the owner identity, for loop checks
	cid    string
	target string
}

// Lookup answers qname/qtype from this zone alone. qname may be in any case.
// CNAME chains stop at the zone boundary; servers with several zones should
// use Table.Lookup, which follows them like NSD.
func (s *Snapshot) Lookup(qname string, qtype uint16) Result {
	return lookup(nil, s, qname, queryKey(qname), qtype)
}

func refused() Result { return Result{Rcode: dns.RcodeRefused} }

// lookup drives the CNAME chain for qname (name is its canonical form).
// With t != nil it changes zones along the chain; otherwise it stays in s.
func lookup(t *Table, s *Snapshot, qname, name string, qtype uint16) Result {
	if !inZone(name, s.origin) {
		return refused()
	}
	owner := qname
	if owner != name && !isPlainFQDN(owner) {
		owner = name
	}
	out := s.stepFor(t, name, owner, false, qtype)
	if out.cset == nil {
		return out.Result // the allocation-free common case
	}
	answer := make([]dns.RR, 0, 4)
	type seenKey struct {
		id  string
		set *rrset
	}
	var seenBuf [4]seenKey
	seen := seenBuf[:0]
	for hops := 0; ; hops++ {
		k := seenKey{out.cid, out.cset}
		if hops >= maxChain || contains(seen, k) {
			break // loop: NSD neither adds nor follows the CNAME again
		}
		seen = append(seen, k)
		answer = append(answer, out.cname...)
		next := out.target
		if t != nil {
			if s = t.find(next); s == nil {
				break
			}
		} else if !inZone(next, s.origin) {
			break
		}
		out = s.stepFor(t, next, next, true, qtype)
		if out.cset == nil {
			r := out.Result
			r.Answer = append(answer, r.Answer...)
			r.Authoritative = true
			return r
		}
	}
	return Result{Rcode: dns.RcodeSuccess, Authoritative: true, Answer: answer[:len(answer):len(answer)]}
}

func contains[T comparable](l []T, v T) bool {
	for _, x := range l {
		if x == v {
			return true
		}
	}
	return false
}

// isPlainFQDN reports whether a client-supplied qname can be used as an
// owner name as is: fully qualified and without escapes.
func isPlainFQDN(s string) bool {
	if !dns.IsFqdn(s) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' {
			return false
		}
	}
	return true
}

// stepFor answers one name; with a table, DS at a zone apex goes to the
// parent zone when the table serves it (RFC 4035 §3.1.4.1, as NSD).
func (s *Snapshot) stepFor(t *Table, name, owner string, chained bool, qtype uint16) stepOut {
	if t != nil && qtype == dns.TypeDS && name == s.origin && name != "." {
		if p := t.find(parentName(name)); p != nil {
			return p.stepDSChildApex(name, chained)
		}
	}
	return s.step(name, owner, chained, qtype)
}

// find returns the node of the canonical in-zone name and true, or its
// closest existing ancestor and false.
func (s *Snapshot) find(name string) (*node, bool) {
	if n := s.nodes[name]; n != nil {
		return n, true
	}
	off := 0
	for {
		i, end := dns.NextLabel(name, off)
		if end {
			return s.apex, false
		}
		if n := s.nodes[name[i:]]; n != nil {
			return n, false
		}
		off = i
	}
}

// step answers the canonical in-zone name. owner is the owner name for
// synthesised answers (wildcard, reverse PTR); chained is set for CNAME
// targets.
func (s *Snapshot) step(name, owner string, chained bool, qtype uint16) stepOut {
	n, exact := s.find(name)
	if c := n.cut; c != nil && !(exact && qtype == dns.TypeDS && n == c) {
		return s.referral(c, chained)
	}
	if exact {
		var virt netip.Addr
		if s.rev != nil {
			if k, a, _ := s.rev.classify(name); k == revFull {
				virt = a
			}
		}
		return s.answerNode(n, n.name, false, n.name, qtype, virt)
	}
	if s.rev != nil {
		switch k, a, depth := s.rev.classify(name); {
		case k == revFull:
			return s.answerSynthPTR(owner, a, qtype)
		case k == revPartial:
			return s.nodata()
		case s.rev.blocksWildcard(depth, n):
			return s.nxdomain()
		}
	}
	if w := n.wild; w != nil {
		// Loop identity: the qname itself for the original question, the
		// target name for a chased CNAME (NSD's domain numbers).
		id := ""
		if chained {
			id = name
		}
		return s.answerNode(w, owner, true, id, qtype, netip.Addr{})
	}
	return s.nxdomain()
}

func (s *Snapshot) nodata() stepOut {
	return stepOut{Result: Result{Rcode: dns.RcodeSuccess, Authoritative: true, Ns: s.negSOA}}
}

func (s *Snapshot) nxdomain() stepOut {
	return stepOut{Result: Result{Rcode: dns.RcodeNameError, Authoritative: true, Ns: s.negSOA}}
}

func (s *Snapshot) referral(cut *node, chained bool) stepOut {
	ns := s.get(cut, dns.TypeNS)
	return stepOut{Result: Result{Rcode: dns.RcodeSuccess, Authoritative: chained, Ns: s.rrs(ns), Extra: s.extras[ns.xi].extra}}
}

// answerNode answers from the sets of n. For a wildcard n, wildcard is set,
// owner is the name to put in the records and id the loop identity. virt is
// valid when the name is a reverse address that gets a synthesised PTR if n
// has none.
func (s *Snapshot) answerNode(n *node, owner string, wildcard bool, id string, qtype uint16, virt netip.Addr) stepOut {
	materialise := func(rs *rrset) []dns.RR {
		if wildcard {
			return expand(s.rrs(rs), owner)
		}
		return s.rrs(rs)
	}
	if virt.IsValid() && (s.get(n, dns.TypePTR) != nil || s.get(n, dns.TypeCNAME) != nil) {
		virt = netip.Addr{} // explicit data wins
	}
	if qtype == dns.TypeANY {
		sel := selectAny(s.setsOf(n))
		if virt.IsValid() && (sel == nil || sel.typ != dns.TypeA) {
			// The synthesised PTR is a preferred type; only an A set
			// (ordered before PTR) is chosen over it.
			return stepOut{Result: Result{Authoritative: true, Answer: []dns.RR{s.rev.ptr(owner, virt)}}}
		}
		if sel == nil {
			return s.nodata()
		}
		return stepOut{Result: Result{Authoritative: true, Answer: materialise(sel), Extra: s.extras[sel.xi].anyExtra}}
	}
	if rs := s.get(n, qtype); rs != nil {
		r := Result{Authoritative: true, Answer: materialise(rs), Extra: s.extras[rs.xi].extra}
		if s.apexNS != nil && !(n == s.apex && qtype == dns.TypeNS) && qtype != dns.TypeDS {
			r.Ns, r.OptionalNs = s.rrs(s.apexNS), true
		}
		if wildcard && id != "" && hasRR(r.Extra, id, qtype) {
			// A chased wildcard answer has the target's identity, so the
			// additional section must not repeat it (NSD de-duplicates).
			r.Extra = without(r.Extra, id, qtype)
		}
		return stepOut{Result: r}
	}
	if virt.IsValid() && qtype == dns.TypePTR {
		return s.answerSynthPTR(owner, virt, qtype)
	}
	if rs := s.get(n, dns.TypeCNAME); rs != nil {
		return stepOut{
			Result: Result{Authoritative: true},
			cname:  materialise(rs),
			cset:   rs,
			cid:    id,
			target: s.recs[rs.off].(*dns.CNAME).Target,
		}
	}
	return s.nodata()
}

// answerSynthPTR answers a full reverse address name without explicit data.
func (s *Snapshot) answerSynthPTR(owner string, a netip.Addr, qtype uint16) stepOut {
	if qtype != dns.TypePTR && qtype != dns.TypeANY {
		return s.nodata()
	}
	r := Result{Authoritative: true, Answer: []dns.RR{s.rev.ptr(owner, a)}}
	if qtype == dns.TypePTR && s.apexNS != nil {
		r.Ns, r.Extra, r.OptionalNs = s.rrs(s.apexNS), s.nsExtra, true
	}
	return stepOut{Result: r}
}

// stepDSChildApex answers qtype DS for name, the apex of a child zone this
// server also serves, from this (parent) zone. NSD's shared name tree makes
// the child apex an existing name in the parent even without a delegation,
// so the answer is a referral from a cut above it or NODATA, never NXDOMAIN.
func (s *Snapshot) stepDSChildApex(name string, chained bool) stepOut {
	n, exact := s.find(name)
	if exact {
		return s.step(name, name, chained, dns.TypeDS)
	}
	if n.cut != nil {
		return s.referral(n.cut, chained)
	}
	return s.nodata()
}

func hasRR(rrs []dns.RR, owner string, t uint16) bool {
	for _, rr := range rrs {
		if h := rr.Header(); h.Rrtype == t && h.Name == owner {
			return true
		}
	}
	return false
}

func without(rrs []dns.RR, owner string, t uint16) []dns.RR {
	out := make([]dns.RR, 0, len(rrs))
	for _, rr := range rrs {
		if h := rr.Header(); h.Rrtype == t && h.Name == owner {
			continue
		}
		out = append(out, rr)
	}
	return out[:len(out):len(out)]
}
