package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/miekg/dns"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	flashdnsv1 "github.com/photoncloud/photoncloud/api/flashdns/v1"
	"github.com/photoncloud/photoncloud/internal/flashdns/zone"
)

// parsedChange is a Change checked and parsed before the write, so that
// retries against newer state do not parse again.
type parsedChange struct {
	n      int // 1-based position, for errors
	action flashdnsv1.Change_Action
	key    setKey
	ttl    uint32
	rrs    []dns.RR // with TTL ttl (0 until the zone's default is known)
}

func (c *parsedChange) set(def uint32) *rrset {
	s := &rrset{setKey: c.key, ttl: c.ttl, rrs: c.rrs}
	if c.ttl == 0 {
		s = s.withTTL(def)
	}
	return s
}

func parseChange(orig string, n int, c *flashdnsv1.Change) (*parsedChange, error) {
	rs := c.GetRecordSet()
	if rs == nil {
		return nil, invalidf("change %d: record_set is required", n)
	}
	name, err := parseOwner(orig, rs.GetName(), true)
	if err != nil {
		return nil, fmt.Errorf("change %d: %w", n, err)
	}
	t, err := parseType(rs.GetType())
	if err != nil {
		return nil, fmt.Errorf("change %d: %w", n, err)
	}
	p := &parsedChange{n: n, action: c.GetAction(), key: setKey{name, t}, ttl: rs.GetTtl()}
	if p.ttl > maxTTL {
		return nil, invalidf("change %d: record set %s: ttl %d is larger than %d", n, p.key, p.ttl, maxTTL)
	}
	switch p.action {
	case flashdnsv1.Change_ACTION_CREATE, flashdnsv1.Change_ACTION_UPSERT:
		if len(rs.GetRecords()) == 0 {
			return nil, invalidf("change %d: record set %s needs at least one record", n, p.key)
		}
	case flashdnsv1.Change_ACTION_DELETE:
	default:
		return nil, invalidf("change %d: action is required (CREATE, UPSERT or DELETE)", n)
	}
	if p.rrs, err = parseRecords(orig, p.key, p.ttl, rs.GetRecords()); err != nil {
		return nil, fmt.Errorf("change %d: %w", n, err)
	}
	doubled := strings.TrimSuffix(orig, ".") + "." + orig
	for i, rr := range p.rrs {
		if t := target(rr); t != "" {
			if l := strings.ToLower(t); l == doubled || strings.HasSuffix(l, "."+doubled) {
				return nil, invalidf("change %d: record set %s: record %d names %s, which repeats the zone name: a relative name written with the zone name but without the trailing dot?",
					n, p.key, i+1, clip(t))
			}
		}
	}
	return p, nil
}

// target returns the domain name a record points to, "" for types
// without one.
func target(rr dns.RR) string {
	switch r := rr.(type) {
	case *dns.CNAME:
		return r.Target
	case *dns.MX:
		return r.Mx
	case *dns.NS:
		return r.Ns
	case *dns.SRV:
		return r.Target
	case *dns.PTR:
		return r.Ptr
	}
	return ""
}

// ChangeRecordSets applies a batch of changes to the zone named zoneName,
// all or nothing, with Route 53 semantics (see ChangeRecordSets in
// records.proto): the changes apply in order, the result is validated as a
// whole zone, the serial is bumped once and the difference journaled, all
// in one Chainfire transaction (or, for a batch too large for one, one
// switch to a new generation). etag "" means unconditionally: a batch that
// races with another replica's change is then recomputed against the new
// state; with an etag it fails with ErrEtagMismatch.
func (s *Store) ChangeRecordSets(ctx context.Context, zoneName string, changes []*flashdnsv1.Change, etag string) (*flashdnsv1.Zone, error) {
	parent, id, err := ParseZoneName(zoneName)
	if err != nil {
		return nil, err
	}
	switch {
	case len(changes) == 0:
		return nil, invalidf("changes: at least one change is required")
	case len(changes) > MaxChanges:
		return nil, invalidf("changes: %d changes, more than %d", len(changes), MaxChanges)
	}
	orig := origin(id)
	parsed := make([]*parsedChange, len(changes))
	for i, c := range changes {
		if parsed[i], err = parseChange(orig, i+1, c); err != nil {
			return nil, err
		}
	}
	_, err = s.write(ctx, id, func() (*plan, error) {
		v, err := s.viewFor(ctx, parent, id, etag)
		if err != nil {
			return nil, err
		}
		return s.changePlan(v, parsed)
	})
	if err != nil {
		return nil, err
	}
	return s.current(parent, id)
}

// changePlan applies parsed changes to view v.
func (s *Store) changePlan(v *view, parsed []*parsedChange) (*plan, error) {
	orig := v.origin()
	def := v.z.GetDefaultTtl()
	nsKey := setKey{orig, dns.TypeNS}
	z := proto.CloneOf(v.z)
	touched := map[setKey]*touch{}
	for _, c := range parsed {
		cur, _ := v.sets.Get(&rrset{setKey: c.key})
		var next *rrset
		switch c.action {
		case flashdnsv1.Change_ACTION_CREATE:
			if cur != nil {
				return nil, existsf("change %d: record set %s exists", c.n, c.key)
			}
			next = c.set(def)
		case flashdnsv1.Change_ACTION_UPSERT:
			next = c.set(def)
		case flashdnsv1.Change_ACTION_DELETE:
			if cur == nil {
				return nil, notFoundf("change %d: record set %s does not exist", c.n, c.key)
			}
			if c.key == nsKey {
				return nil, invalidf("change %d: the apex NS set cannot be deleted; UPSERT it or update the zone's nameservers", c.n)
			}
			if len(c.rrs) > 0 && (c.ttl != cur.ttl && c.ttl != cur.effTTL() || !sameData(c.rrs, cur.rrs)) {
				return nil, preconditionf("change %d: record set %s does not match the DELETE (TTL %d, %d records); read it and delete exactly what it holds",
					c.n, c.key, cur.ttl, len(cur.rrs))
			}
		}
		if next != nil {
			if err := zone.ValidateSet(orig, next.zoneSet()); err != nil {
				return nil, fmt.Errorf("change %d: %w", c.n, zoneInvalid(err))
			}
			if c.key == nsKey {
				ns := make([]string, len(next.rrs))
				for i, rr := range next.rrs {
					ns[i] = rr.(*dns.NS).Ns
				}
				checked, err := checkNameservers(ns)
				if err != nil {
					return nil, fmt.Errorf("change %d: apex NS: %w", c.n, err)
				}
				z.Nameservers = checked
			}
			v.sets.ReplaceOrInsert(next)
		} else {
			v.sets.Delete(&rrset{setKey: c.key})
		}
		if t := touched[c.key]; t != nil {
			t.new = next
		} else {
			touched[c.key] = &touch{old: cur, new: next}
		}
	}
	now := s.now()
	z.Serial = nextSerial(v.z.GetSerial(), now)
	z.UpdateTime = timestamppb.New(now)
	p := &plan{id: v.id, parent: v.parent, v: v, zone: z, sets: v.sets, touched: map[setKey]*touch{}}
	var diffs []touch
	for k, t := range touched {
		if sameSet(t.old, t.new) {
			continue // e.g. an UPSERT of what is there: nothing to write
		}
		p.touched[k] = t
		diffs = append(diffs, *t)
	}
	if err := s.validatePlan(p); err != nil {
		return nil, err
	}
	p.journal = s.journalFor(v.z.GetSerial(), z.Serial, diffs, z.UpdateTime)
	return p, nil
}

// RecordListOptions selects and pages the record sets ListRecordSets
// returns.
type RecordListOptions struct {
	// NamePrefix keeps the sets whose fully qualified owner name starts
	// with it (case-insensitive, not expanded).
	NamePrefix string
	// Type keeps the sets of this type (case-insensitive); "" keeps all.
	Type string
	// PageSize and PageToken as in ListOptions.
	PageSize  int32
	PageToken string
}

// soaSet returns the read-only SOA record set of a zone.
func soaSet(id string, z *flashdnsv1.Zone) *rrset {
	soa := soaOf(id, z)
	return &rrset{setKey: setKey{origin(id), dns.TypeSOA}, ttl: z.GetDefaultTtl(), rrs: []dns.RR{soa}}
}

// ListRecordSets lists the record sets of the zone named zoneName, the SOA
// included, ordered by owner name (bytes) and type (number), from memory.
func (s *Store) ListRecordSets(_ context.Context, zoneName string, opts RecordListOptions) ([]*flashdnsv1.RecordSet, string, error) {
	parent, id, err := ParseZoneName(zoneName)
	if err != nil {
		return nil, "", err
	}
	lo := ListOptions[*flashdnsv1.RecordSet]{PageSize: opts.PageSize}
	size, err := lo.size()
	if err != nil {
		return nil, "", err
	}
	var typ uint16
	if opts.Type != "" {
		t, ok := dns.StringToType[strings.ToUpper(strings.TrimSpace(opts.Type))]
		if !ok {
			return nil, "", invalidf("type %q is not a record type", clip(opts.Type))
		}
		typ = t
	}
	prefix := strings.ToLower(opts.NamePrefix)
	now := s.now()
	where := "rrsets|" + ZoneName(parent, id) + "|" + prefix + "|" + strconv.Itoa(int(typ))
	afterTok, err := decodeToken(opts.PageToken, where, "", now)
	if err != nil {
		return nil, "", err
	}
	var after *setKey
	if afterTok != "" {
		name, t, ok := strings.Cut(afterTok, "\x00")
		n, err := strconv.ParseUint(t, 10, 16)
		if !ok || err != nil {
			return nil, "", invalidf("malformed page_token")
		}
		after = &setKey{name, uint16(n)}
	}

	s.ix.mu.RLock()
	defer s.ix.mu.RUnlock()
	zs := s.ix.zones[id]
	if zs == nil || zs.parent != parent {
		return nil, "", notFoundf("zone %s", ZoneName(parent, id))
	}
	var out []*flashdnsv1.RecordSet
	var last setKey
	more := false
	// emit adds a set to the page; false once the page is full and one
	// more matching set exists.
	emit := func(set *rrset) bool {
		if after != nil && !after.less(set.setKey) {
			return true
		}
		if !strings.HasPrefix(set.name, prefix) || (typ != 0 && set.typ != typ) {
			return true
		}
		if len(out) == size {
			more = true
			return false
		}
		out = append(out, set.api())
		last = set.setKey
		return true
	}
	soa := soaSet(id, zs.z)
	soaDone := false
	visit := func(set *rrset) bool {
		if !soaDone && soa.setKey.less(set.setKey) {
			soaDone = true
			if !emit(soa) {
				return false
			}
		}
		if len(prefix) > 0 && set.name > prefix && !strings.HasPrefix(set.name, prefix) {
			return false // sorted by name: no later name has the prefix
		}
		return emit(set)
	}
	start := &rrset{setKey: setKey{prefix, 0}}
	if after != nil && prefix < after.name {
		start = &rrset{setKey: *after}
	}
	cont := true
	if t := s.ix.sets(zs); t != nil {
		t.AscendGreaterOrEqual(start, func(set *rrset) bool {
			cont = visit(set)
			return cont
		})
	}
	if cont && !soaDone {
		emit(soa)
	}
	if !more {
		return out, "", nil
	}
	return out, encodeToken(where, last.name+"\x00"+strconv.Itoa(int(last.typ)), "", now), nil
}

// GetRecordSet returns the record set of owner name (relative names and
// "@" accepted) and type typ in the zone named zoneName; the SOA set
// included.
func (s *Store) GetRecordSet(_ context.Context, zoneName, name, typ string) (*flashdnsv1.RecordSet, error) {
	parent, id, err := ParseZoneName(zoneName)
	if err != nil {
		return nil, err
	}
	owner, err := parseOwner(origin(id), name, false)
	if err != nil {
		return nil, err
	}
	t, ok := dns.StringToType[strings.ToUpper(strings.TrimSpace(typ))]
	if !ok {
		return nil, invalidf("type %q is not a record type", clip(typ))
	}
	s.ix.mu.RLock()
	defer s.ix.mu.RUnlock()
	zs := s.ix.zones[id]
	if zs == nil || zs.parent != parent {
		return nil, notFoundf("zone %s", ZoneName(parent, id))
	}
	k := setKey{owner, t}
	if t == dns.TypeSOA && owner == origin(id) {
		return soaSet(id, zs.z).api(), nil
	}
	if tr := s.ix.sets(zs); tr != nil {
		if set, ok := tr.Get(&rrset{setKey: k}); ok {
			return set.api(), nil
		}
	}
	return nil, notFoundf("record set %s in zone %s", k, origin(id))
}
