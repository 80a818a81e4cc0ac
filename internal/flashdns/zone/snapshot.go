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
//
// Memory layout: a zone of 100k records has about as many RRsets and
// names, so per-name and per-set overhead dominates what a snapshot costs.
// Nodes come from slabs; the sets of all nodes are one array (each node's
// adjacent), the records of all sets another (each set's adjacent), and
// sets refer to them and to their additional data by index instead of by
// slice headers and pointers.
type Snapshot struct {
	origin string
	soa    *dns.SOA
	nodes  map[string]*node
	apex   *node

	sets   []rrset    // node n's sets: sets[n.first : n.first+n.nsets]
	recs   []dns.RR   // set rs's records: recs[rs.off : rs.off+rs.n]
	extras []setExtra // additional data of the sets (rrset.xi)

	// apexNS is the apex NS set, nil when the zone has none. Positive
	// answers carry it in the authority section (as NSD does); nsExtra is
	// the in-zone addresses of its targets, the additional section of most
	// positive answers.
	apexNS  *rrset
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
	name string
	// cut is the highest zone cut (NS set below the apex) at or above this
	// node, nil if none. NSD refers from the highest cut, and validation
	// keeps everything below a cut to glue anyway.
	cut  *node
	wild *node // the "*.<name>" child, if any
	// first and nsets locate the node's sets in Snapshot.sets. They are
	// ordered SOA first (apex), then by type number. The order is fixed so
	// that ANY answers do not depend on how the store lists sets;
	// WriteZoneFile writes the same order, so NSD loading that file answers
	// ANY identically (NSD keeps zone-file order).
	first uint32
	nsets uint16
	flags uint8
}

const (
	flagCutDone uint8 = 1 << iota
)

// rrset is one owner/type set: its records are Snapshot.recs[off:off+n],
// its precomputed additional data Snapshot.extras[xi].
type rrset struct {
	off, n uint32
	xi     uint32
	typ    uint16
}

// Fixed indexes of Snapshot.extras.
const (
	xiNone   = 0 // no additional data
	xiApexNS = 1 // the addresses of the apex NS targets (most sets)
)

// setExtra is the additional data of a set.
type setExtra struct {
	// extra is the additional section when the set is the answer (its own
	// additional plus that of the apex NS in authority, de-duplicated in
	// NSD's order). For a zone cut's NS set it is the referral glue.
	extra []dns.RR
	// anyExtra is the additional section when the set is answered for
	// qtype ANY: for NS, MX and SRV the addresses of their targets.
	anyExtra []dns.RR
}

// slab hands out elements of large arrays: Build creates one node per name,
// and a few big allocations instead of 100k small ones make Build faster
// and the snapshot more compact in memory.
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
	// share: keep the input records that are already in served form
	// instead of copying them (BuildShared).
	share bool
	// own holds the in-zone addresses of the targets of NS, MX and SRV
	// sets; nsA and nsAAAA are the apex NS set's.
	own         map[*rrset]*ownAddl
	nsA, nsAAAA []addl
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

// setsOf returns the sets of n.
func (s *Snapshot) setsOf(n *node) []rrset {
	return s.sets[n.first : n.first+uint32(n.nsets) : n.first+uint32(n.nsets)]
}

// get returns the set of type t at n, nil if none.
func (s *Snapshot) get(n *node, t uint16) *rrset {
	sets := s.setsOf(n)
	for i := range sets {
		if sets[i].typ == t {
			return &sets[i]
		}
	}
	return nil
}

// rrs returns the records of rs (len == cap).
func (s *Snapshot) rrs(rs *rrset) []dns.RR {
	return s.recs[rs.off : rs.off+rs.n : rs.off+rs.n]
}

// Build validates d (ValidateZone) and builds the immutable lookup
// structure. It copies every record, so later changes to d do not reach the
// snapshot. Owner and target names are stored canonical (lower case); each
// RRset's records get the set's TTL.
func Build(d Data) (*Snapshot, error) { return build(d, false) }

// BuildShared is Build without the copies where they are not needed: a
// record of d that already is in the form the snapshot serves (owner the
// set's canonical name, class IN, the set's TTL, canonical target names,
// a 4-byte A address) is kept as it is, and so are the journal's records.
// The caller must never modify those records afterwards. The store, whose
// record sets are immutable, builds with it so that it and its snapshots
// hold each record once.
func BuildShared(d Data) (*Snapshot, error) { return build(d, true) }

func build(d Data, share bool) (*Snapshot, error) {
	if err := ValidateZone(d); err != nil {
		return nil, err
	}
	origin := Canonical(d.Origin)
	b := &builder{Snapshot: &Snapshot{
		origin: origin,
		nodes:  make(map[string]*node, ownerCount(d.Sets)+1),
	}, share: share}
	s := b.Snapshot
	s.apex = b.nodes.alloc()
	s.apex.name = origin
	s.nodes[origin] = s.apex

	soa := dns.Copy(d.SOA).(*dns.SOA)
	soa.Hdr = dns.RR_Header{Name: origin, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: d.SOA.Hdr.Ttl}
	soa.Ns = Canonical(soa.Ns)
	soa.Mbox = Canonical(soa.Mbox)
	s.soa = soa
	neg := *soa
	neg.Hdr.Ttl = min(soa.Hdr.Ttl, soa.Minttl)
	s.negSOA = []dns.RR{&neg}

	// First the nodes and how many sets each has, so that each node's
	// sets can be adjacent in s.sets; then the sets and records.
	owners := make([]*node, len(d.Sets))
	records := 1
	s.apex.nsets = 1 // the SOA
	for i, set := range d.Sets {
		n := b.ensure(Canonical(set.Name))
		n.nsets++
		owners[i] = n
		records += len(set.RRs)
	}
	s.sets = make([]rrset, len(d.Sets)+1)
	next := uint32(0)
	for _, n := range s.nodes {
		n.first, next = next, next+uint32(n.nsets)
		n.nsets = 0 // counts the sets placed below
	}
	s.recs = make([]dns.RR, 0, records)
	s.recs = append(s.recs, soa)
	b.place(s.apex, rrset{off: 0, n: 1, typ: dns.TypeSOA})
	for i, set := range d.Sets {
		n := owners[i]
		off := len(s.recs)
		for _, rr := range set.RRs {
			s.recs = append(s.recs, b.record(rr, n.name, set.TTL))
		}
		b.place(n, rrset{off: uint32(off), n: uint32(len(set.RRs)), typ: set.Type})
	}
	s.records = len(s.recs)
	owners = nil

	for _, n := range s.nodes {
		slices.SortFunc(s.setsOf(n), func(a, b rrset) int {
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
			s.nodes[parentName(n.name)].wild = n
		}
		b.cutOf(n)
	}
	s.apexNS = s.get(s.apex, dns.TypeNS)
	if d.Reverse != nil {
		s.rev = newReverseSynth(origin, d.Reverse, soa.Hdr.Ttl)
	}

	// Additional data needs the whole tree (targets, cuts, wildcards).
	b.own = map[*rrset]*ownAddl{}
	for i := range s.sets {
		b.buildOwn(&s.sets[i])
	}
	if s.apexNS != nil {
		own := b.own[s.apexNS]
		b.nsA, b.nsAAAA = own.a, own.aaaa
		s.nsExtra = compose("", 0, [][]addl{b.nsA}, [][]addl{b.nsAAAA})
	}
	s.extras = []setExtra{xiNone: {}, xiApexNS: {extra: s.nsExtra}}
	for _, n := range s.nodes {
		sets := s.setsOf(n)
		for i := range sets {
			b.buildExtra(n, &sets[i])
		}
	}
	s.extras = slices.Clip(s.extras)

	s.journal = usableJournal(d.Journal, soa.Serial, share)
	return s, nil
}

// ownerCount counts the owner names of sets, assuming the sets of a name
// are adjacent (as the store lists them); otherwise it overestimates. It
// sizes the node map: sized by the number of sets, the map of a typical
// zone (two sets per name) would be twice as large as needed.
func ownerCount(sets []RRSet) int {
	n := 0
	for i := range sets {
		if i == 0 || sets[i].Name != sets[i-1].Name {
			n++
		}
	}
	return n
}

// place puts rs among the sets of n (counted beforehand).
func (b *builder) place(n *node, rs rrset) {
	b.sets[n.first+uint32(n.nsets)] = rs
	n.nsets++
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
	b.ensure(parentName(name))
	return n
}

// record returns rr as the snapshot serves it.
func (b *builder) record(rr dns.RR, owner string, ttl uint32) dns.RR {
	if b.share && served(rr, owner, ttl) {
		return rr
	}
	return cloneRR(rr, owner, ttl)
}

// cutOf computes n.cut (memoised through flagCutDone).
func (b *builder) cutOf(n *node) *node {
	if n == b.apex || n.flags&flagCutDone != 0 {
		return n.cut
	}
	if c := b.cutOf(b.Snapshot.nodes[parentName(n.name)]); c != nil {
		n.cut = c
	} else if b.get(n, dns.TypeNS) != nil {
		n.cut = n
	}
	n.flags |= flagCutDone
	return n.cut
}

// selectAny picks the single RRset answered for qtype ANY (RFC 8482 §4.1),
// with NSD's preference: the first of A, AAAA, SOA, MX, PTR in set order;
// otherwise the last other set. It returns nil for a node without sets.
func selectAny(sets []rrset) *rrset {
	var normal *rrset
	for i := range sets {
		if anyPreferred(sets[i].typ) {
			return &sets[i]
		}
		normal = &sets[i]
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

// served reports whether rr already is exactly what cloneRR would make of
// it: BuildShared then keeps it instead of a copy.
func served(rr dns.RR, owner string, ttl uint32) bool {
	h := rr.Header()
	if h.Name != owner || h.Class != dns.ClassINET || h.Ttl != ttl {
		return false
	}
	switch v := rr.(type) {
	case *dns.A:
		return len(v.A) == net.IPv4len
	case *dns.CNAME:
		return Canonical(v.Target) == v.Target
	case *dns.MX:
		return Canonical(v.Mx) == v.Mx
	case *dns.NS:
		return Canonical(v.Ns) == v.Ns
	case *dns.PTR:
		return Canonical(v.Ptr) == v.Ptr
	case *dns.SRV:
		return Canonical(v.Target) == v.Target
	}
	return true
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
func (b *builder) buildOwn(rs *rrset) {
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
	for _, rr := range b.rrs(rs) {
		a, aaaa := b.targetAddrs(rdataTarget(rr), allowGlue)
		if a != nil {
			own.a = append(own.a, *a)
		}
		if aaaa != nil {
			own.aaaa = append(own.aaaa, *aaaa)
		}
	}
	own.anyExtra = compose("", 0, [][]addl{own.a}, [][]addl{own.aaaa})
	b.own[rs] = own
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
		if rs := s.get(n, dns.TypeA); rs != nil {
			a = &addl{key: n.name, typ: dns.TypeA, rrs: s.rrs(rs)}
		}
		if rs := s.get(n, dns.TypeAAAA); rs != nil {
			aaaa = &addl{key: n.name, typ: dns.TypeAAAA, rrs: s.rrs(rs)}
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
	if rs := s.get(n.wild, dns.TypeA); rs != nil {
		a = &addl{key: target, typ: dns.TypeA, rrs: expand(s.rrs(rs), target)}
	}
	if rs := s.get(n.wild, dns.TypeAAAA); rs != nil {
		aaaa = &addl{key: target, typ: dns.TypeAAAA, rrs: expand(s.rrs(rs), target)}
	}
	return a, aaaa
}

// buildExtra precomputes the additional section of a positive answer with
// rs (or, for a cut's NS set, of the referral), and with it for qtype ANY.
func (b *builder) buildExtra(n *node, rs *rrset) {
	own := b.own[rs]
	if n.cut != nil {
		// Glue and occluded data is never an answer.
		switch {
		case n.cut == n && rs.typ == dns.TypeNS:
			// Referral glue: own addresses only.
			rs.xi = b.addExtra(setExtra{extra: own.anyExtra, anyExtra: own.anyExtra})
		case own != nil:
			rs.xi = b.addExtra(setExtra{anyExtra: own.anyExtra})
		}
		return
	}
	var ownA, ownAAAA []addl
	if own != nil {
		ownA, ownAAAA = own.a, own.aaaa
	}
	withNS := b.apexNS != nil && !(n == b.apex && rs.typ == dns.TypeNS)
	if own == nil && withNS && !hasAddl(b.nsA, n.name, rs.typ) && !hasAddl(b.nsAAAA, n.name, rs.typ) {
		rs.xi = xiApexNS // the common case shares one slice
		return
	}
	aLists, aaaaLists := [][]addl{ownA}, [][]addl{ownAAAA}
	if withNS {
		aLists = append(aLists, b.nsA)
		aaaaLists = append(aaaaLists, b.nsAAAA)
	}
	x := setExtra{extra: compose(n.name, rs.typ, aLists, aaaaLists)}
	if own != nil {
		x.anyExtra = own.anyExtra
	}
	rs.xi = b.addExtra(x)
}

// addExtra stores x and returns its index; an empty x needs none.
func (b *builder) addExtra(x setExtra) uint32 {
	if len(x.extra) == 0 && len(x.anyExtra) == 0 {
		return xiNone
	}
	b.extras = append(b.extras, x)
	return uint32(len(b.extras) - 1)
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
// only part IXFR can serve). It copies the records unless share is set.
func usableJournal(j []Diff, serial uint32, share bool) []Diff {
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
		if share {
			c.Deleted, c.Added = d.Deleted, d.Added
		} else {
			for _, rr := range d.Deleted {
				c.Deleted = append(c.Deleted, dns.Copy(rr))
			}
			for _, rr := range d.Added {
				c.Added = append(c.Added, dns.Copy(rr))
			}
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
