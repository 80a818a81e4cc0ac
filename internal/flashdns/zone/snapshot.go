package zone

import (
	"net"
	"slices"
	"sync"

	"github.com/miekg/dns"
)

// Snapshot is an immutable, query-ready zone built by Build. All methods are
// safe for concurrent use; nothing in it changes after Build returns (the
// transfer order is computed once, lazily, under a sync.Once).
//
// The records returned by its methods (Lookup results, SOA, AXFR, IXFR) are
// shared with the snapshot: callers must treat them as read-only. The slices
// in a Result have len == cap, so appending to them copies instead of
// writing into the snapshot.
type Snapshot struct {
	origin string
	soa    *dns.SOA
	nodes  map[string]*node
	apex   *node

	// apexNS is the apex NS set, nil when the zone has none. Positive
	// answers carry it in the authority section (as NSD does); nsA/nsAAAA
	// are the in-zone addresses of its targets and nsExtra their flattened
	// form, the additional section of most positive answers.
	apexNS  *rrset
	nsA     []addl
	nsAAAA  []addl
	nsExtra []dns.RR

	// negSOA is the authority section of negative answers: the SOA with
	// TTL min(SOA TTL, SOA MINIMUM) (RFC 2308 §3; NSD does the same).
	negSOA []dns.RR

	rev     *reverseSynth
	records int
	journal []Diff

	orderOnce sync.Once
	order     []*node
}

// node is one existing name of the zone: an owner with data or an empty
// non-terminal (an ancestor of an owner, with no sets).
type node struct {
	name   string
	parent *node // nil at the apex
	// sets are ordered SOA first (apex), then by type number. The order is
	// fixed so that ANY answers do not depend on how the store lists sets;
	// WriteZoneFile writes the same order, so NSD loading that file answers
	// ANY identically (NSD keeps zone-file order).
	sets []*rrset
	wild *node // the "*.<name>" child, if any
	// cut is the highest zone cut (NS set below the apex) at or above this
	// node, nil if none. NSD refers from the highest cut, and validation
	// keeps everything below a cut to glue anyway.
	cut    *node
	anySel *rrset // the set answered for qtype ANY, nil: NODATA
	flags  uint8
	one    [1]*rrset // backing of sets for the common single-set node
}

const (
	flagCutDone uint8 = 1 << iota
)

// rrset is one owner/type set with its precomputed answer parts.
type rrset struct {
	typ uint16
	rrs []dns.RR // len == cap: shared with Results
	// extra is the additional section when this set is the answer (its own
	// additional plus that of the apex NS in authority, de-duplicated in
	// NSD's order). For a zone cut's NS set it is the referral glue.
	extra []dns.RR
	own   *ownAddl  // NS, MX and SRV: addresses of the targets
	one   [1]dns.RR // backing of rrs for the common single-record set
}

// slab hands out elements of large arrays: Build creates one node and one
// rrset per name, and a few big allocations instead of 100k small ones make
// Build faster and the snapshot more compact in memory.
type slab[T any] struct{ buf []T }

func (s *slab[T]) alloc() *T {
	if len(s.buf) == 0 {
		s.buf = make([]T, 256)
	}
	p := &s.buf[0]
	s.buf = s.buf[1:]
	return p
}

// builder holds what Build needs only while building.
type builder struct {
	*Snapshot
	nodes slab[node]
	sets  slab[rrset]
}

// ownAddl holds the in-zone A/AAAA of an NS, MX or SRV set's targets.
type ownAddl struct {
	a, aaaa  []addl
	anyExtra []dns.RR // additional section when answered for qtype ANY
}

// addl is one additional-section RRset: key is the owner name (it decides
// de-duplication, as NSD's domain identity does), rrs the records.
type addl struct {
	key string
	typ uint16
	rrs []dns.RR
}

func (n *node) get(t uint16) *rrset {
	for _, s := range n.sets {
		if s.typ == t {
			return s
		}
	}
	return nil
}

// Build validates d (ValidateZone) and builds the immutable lookup
// structure. It copies every record, so later changes to d do not reach the
// snapshot. Owner and target names are stored canonical (lower case); each
// RRset's records get the set's TTL.
func Build(d Data) (*Snapshot, error) {
	if err := ValidateZone(d); err != nil {
		return nil, err
	}
	origin := Canonical(d.Origin)
	b := &builder{Snapshot: &Snapshot{
		origin: origin,
		nodes:  make(map[string]*node, len(d.Sets)+1),
	}}
	s := b.Snapshot
	s.apex = b.nodes.alloc()
	s.apex.name = origin
	s.nodes[origin] = s.apex

	soa := dns.Copy(d.SOA).(*dns.SOA)
	soa.Hdr = dns.RR_Header{Name: origin, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: d.SOA.Hdr.Ttl}
	soa.Ns = Canonical(soa.Ns)
	soa.Mbox = Canonical(soa.Mbox)
	s.soa = soa
	soaSet := b.sets.alloc()
	soaSet.typ, soaSet.one[0] = dns.TypeSOA, soa
	soaSet.rrs = soaSet.one[:]
	s.apex.addSet(soaSet)
	s.records = 1
	neg := *soa
	neg.Hdr.Ttl = min(soa.Hdr.Ttl, soa.Minttl)
	s.negSOA = []dns.RR{&neg}

	for _, set := range d.Sets {
		n := b.ensure(Canonical(set.Name))
		rs := b.sets.alloc()
		rs.typ = set.Type
		if len(set.RRs) == 1 {
			rs.rrs = rs.one[:]
		} else {
			rs.rrs = make([]dns.RR, len(set.RRs))
		}
		for i, rr := range set.RRs {
			rs.rrs[i] = cloneRR(rr, n.name, set.TTL)
		}
		n.addSet(rs)
		s.records += len(rs.rrs)
	}

	for _, n := range s.nodes {
		slices.SortFunc(n.sets, func(a, b *rrset) int {
			// SOA first, then by type number.
			if a.typ == dns.TypeSOA {
				return -1
			}
			if b.typ == dns.TypeSOA {
				return 1
			}
			return int(a.typ) - int(b.typ)
		})
		if isWildcard(n.name) {
			n.parent.wild = n
		}
		s.cutOf(n)
		n.anySel = selectAny(n.sets)
	}
	s.apexNS = s.apex.get(dns.TypeNS)
	if d.Reverse != nil {
		s.rev = newReverseSynth(origin, d.Reverse, soa.Hdr.Ttl)
	}

	// Additional data needs the whole tree (targets, cuts, wildcards).
	for _, n := range s.nodes {
		for _, rs := range n.sets {
			s.buildOwn(rs)
		}
	}
	if s.apexNS != nil {
		s.nsA, s.nsAAAA = s.apexNS.own.a, s.apexNS.own.aaaa
		s.nsExtra = compose("", 0, [][]addl{s.nsA}, [][]addl{s.nsAAAA})
	}
	for _, n := range s.nodes {
		for _, rs := range n.sets {
			s.buildExtra(n, rs)
		}
	}

	s.journal = usableJournal(d.Journal, soa.Serial)
	return s, nil
}

// ensure returns the node for the canonical name, creating it and any missing
// ancestors up to the apex (those become empty non-terminals).
func (b *builder) ensure(name string) *node {
	if n := b.Snapshot.nodes[name]; n != nil {
		return n
	}
	n := b.nodes.alloc()
	n.name = name
	b.Snapshot.nodes[name] = n
	n.parent = b.ensure(parentName(name))
	return n
}

func (n *node) addSet(rs *rrset) {
	if n.sets == nil {
		n.one[0] = rs
		n.sets = n.one[:1:1]
		return
	}
	n.sets = append(n.sets, rs)
}

// cutOf computes n.cut (memoised through flagCutDone).
func (s *Snapshot) cutOf(n *node) *node {
	if n == s.apex || n.flags&flagCutDone != 0 {
		return n.cut
	}
	if c := s.cutOf(n.parent); c != nil {
		n.cut = c
	} else if n.get(dns.TypeNS) != nil {
		n.cut = n
	}
	n.flags |= flagCutDone
	return n.cut
}

// selectAny picks the single RRset answered for qtype ANY (RFC 8482 §4.1),
// with NSD's preference: the first of A, AAAA, SOA, MX, PTR in set order;
// otherwise the last other set.
func selectAny(sets []*rrset) *rrset {
	var normal *rrset
	for _, rs := range sets {
		if anyPreferred(rs.typ) {
			return rs
		}
		normal = rs
	}
	return normal
}

func anyPreferred(t uint16) bool {
	switch t {
	case dns.TypeA, dns.TypeAAAA, dns.TypeSOA, dns.TypeMX, dns.TypePTR:
		return true
	}
	return false
}

// cloneRR deep-copies rr with a normalised header and canonical target
// names. owner is the node's name string, shared by all its records.
func cloneRR(rr dns.RR, owner string, ttl uint32) dns.RR {
	var c dns.RR
	switch v := rr.(type) {
	case *dns.A:
		// Direct copies of the most common types: a 4-byte address instead
		// of dns.Copy's 16, and one allocation less.
		ip := make(net.IP, net.IPv4len)
		copy(ip, v.A.To4())
		c = &dns.A{Hdr: v.Hdr, A: ip}
	case *dns.AAAA:
		c = &dns.AAAA{Hdr: v.Hdr, AAAA: slices.Clone(v.AAAA)}
	default:
		c = dns.Copy(rr)
	}
	h := c.Header()
	h.Name, h.Class, h.Ttl = owner, dns.ClassINET, ttl
	switch v := c.(type) {
	case *dns.CNAME:
		v.Target = Canonical(v.Target)
	case *dns.MX:
		v.Mx = Canonical(v.Mx)
	case *dns.NS:
		v.Ns = Canonical(v.Ns)
	case *dns.PTR:
		v.Ptr = Canonical(v.Ptr)
	case *dns.SRV:
		v.Target = Canonical(v.Target)
	}
	return c
}

// buildOwn computes the target addresses of NS, MX and SRV sets.
func (s *Snapshot) buildOwn(rs *rrset) {
	// NS may use glue (addresses at or below a cut); MX and SRV may not,
	// exactly as NSD's add_rrset/add_additional_rrsets.
	allowGlue := false
	switch rs.typ {
	case dns.TypeNS:
		allowGlue = true
	case dns.TypeMX, dns.TypeSRV:
	default:
		return
	}
	own := &ownAddl{}
	for _, rr := range rs.rrs {
		a, aaaa := s.targetAddrs(rdataTarget(rr), allowGlue)
		if a != nil {
			own.a = append(own.a, *a)
		}
		if aaaa != nil {
			own.aaaa = append(own.aaaa, *aaaa)
		}
	}
	own.anyExtra = compose("", 0, [][]addl{own.a}, [][]addl{own.aaaa})
	rs.own = own
}

// targetAddrs returns the A and AAAA sets of target inside this zone, with
// wildcard expansion when the target does not exist (NSD does the same).
func (s *Snapshot) targetAddrs(target string, allowGlue bool) (a, aaaa *addl) {
	if !inZone(target, s.origin) {
		return nil, nil
	}
	n, exact := s.find(target)
	if !allowGlue && n.cut != nil {
		return nil, nil
	}
	if exact {
		if rs := n.get(dns.TypeA); rs != nil {
			a = &addl{key: n.name, typ: dns.TypeA, rrs: rs.rrs}
		}
		if rs := n.get(dns.TypeAAAA); rs != nil {
			aaaa = &addl{key: n.name, typ: dns.TypeAAAA, rrs: rs.rrs}
		}
		return a, aaaa
	}
	if s.rev != nil {
		if k, _, depth := s.rev.classify(target); k != revNone || s.rev.blocksWildcard(depth, n) {
			return nil, nil // synthesised names exist and have no addresses
		}
	}
	if n.wild == nil {
		return nil, nil
	}
	if rs := n.wild.get(dns.TypeA); rs != nil {
		a = &addl{key: target, typ: dns.TypeA, rrs: expand(rs.rrs, target)}
	}
	if rs := n.wild.get(dns.TypeAAAA); rs != nil {
		aaaa = &addl{key: target, typ: dns.TypeAAAA, rrs: expand(rs.rrs, target)}
	}
	return a, aaaa
}

// buildExtra precomputes the additional section of a positive answer with
// rs (or, for a cut's NS set, of the referral).
func (s *Snapshot) buildExtra(n *node, rs *rrset) {
	if n.cut != nil {
		if n.cut == n && rs.typ == dns.TypeNS {
			rs.extra = rs.own.anyExtra // referral glue: own addresses only
		}
		return // glue and occluded data is never an answer
	}
	var ownA, ownAAAA []addl
	if rs.own != nil {
		ownA, ownAAAA = rs.own.a, rs.own.aaaa
	}
	withNS := s.apexNS != nil && !(n == s.apex && rs.typ == dns.TypeNS)
	if rs.own == nil && withNS && !hasAddl(s.nsA, n.name, rs.typ) && !hasAddl(s.nsAAAA, n.name, rs.typ) {
		rs.extra = s.nsExtra // the common case shares one slice
		return
	}
	aLists, aaaaLists := [][]addl{ownA}, [][]addl{ownAAAA}
	if withNS {
		aLists = append(aLists, s.nsA)
		aaaaLists = append(aaaaLists, s.nsAAAA)
	}
	rs.extra = compose(n.name, rs.typ, aLists, aaaaLists)
}

func hasAddl(l []addl, key string, t uint16) bool {
	for _, e := range l {
		if e.key == key && e.typ == t {
			return true
		}
	}
	return false
}

// compose flattens additional RRsets in NSD's section order: every A set,
// then every AAAA set, each in insertion order; a set is added once, and not
// at all when it is the answer itself (skipKey/skipType).
func compose(skipKey string, skipType uint16, aLists, aaaaLists [][]addl) []dns.RR {
	var out []dns.RR
	var seen []addl
	add := func(lists [][]addl) {
		for _, l := range lists {
			for _, e := range l {
				if e.key == skipKey && e.typ == skipType || hasAddl(seen, e.key, e.typ) {
					continue
				}
				seen = append(seen, addl{key: e.key, typ: e.typ})
				out = append(out, e.rrs...)
			}
		}
	}
	add(aLists)
	add(aaaaLists)
	return out[:len(out):len(out)]
}

// expand returns shallow copies of rrs with the owner name replaced: the
// wildcard expansion of RFC 4592. Record data is shared (it is read-only).
func expand(rrs []dns.RR, owner string) []dns.RR {
	out := make([]dns.RR, len(rrs))
	for i, rr := range rrs {
		out[i] = withOwner(rr, owner)
	}
	return out
}

func withOwner(rr dns.RR, owner string) dns.RR {
	var c dns.RR
	switch v := rr.(type) {
	case *dns.A:
		x := *v
		c = &x
	case *dns.AAAA:
		x := *v
		c = &x
	case *dns.CNAME:
		x := *v
		c = &x
	case *dns.MX:
		x := *v
		c = &x
	case *dns.TXT:
		x := *v
		c = &x
	case *dns.SRV:
		x := *v
		c = &x
	case *dns.NS:
		x := *v
		c = &x
	case *dns.PTR:
		x := *v
		c = &x
	case *dns.CAA:
		x := *v
		c = &x
	default:
		c = dns.Copy(rr)
	}
	c.Header().Name = owner
	return c
}

// usableJournal keeps the contiguous run of diffs that ends at serial (the
// only part IXFR can serve) and copies it.
func usableJournal(j []Diff, serial uint32) []Diff {
	i := len(j) - 1
	if i < 0 || j[i].ToSerial != serial {
		return nil
	}
	for i > 0 && j[i-1].ToSerial == j[i].FromSerial {
		i--
	}
	out := make([]Diff, 0, len(j)-i)
	for _, d := range j[i:] {
		c := Diff{FromSerial: d.FromSerial, ToSerial: d.ToSerial}
		for _, rr := range d.Deleted {
			c.Deleted = append(c.Deleted, dns.Copy(rr))
		}
		for _, rr := range d.Added {
			c.Added = append(c.Added, dns.Copy(rr))
		}
		out = append(out, c)
	}
	return out
}

// Origin returns the canonical zone name.
func (s *Snapshot) Origin() string { return s.origin }

// Serial returns the SOA serial.
func (s *Snapshot) Serial() uint32 { return s.soa.Serial }

// SOA returns the zone's SOA record. Callers must not modify it.
func (s *Snapshot) SOA() *dns.SOA { return s.soa }

// Len returns the number of records in the zone, SOA included (synthesised
// reverse PTRs are not records).
func (s *Snapshot) Len() int { return s.records }

// HasReverse reports whether the zone synthesises PTR records.
func (s *Snapshot) HasReverse() bool { return s.rev != nil }
