package store

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/google/btree"
	"github.com/miekg/dns"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	flashdnsv1 "github.com/photoncloud/photoncloud/api/flashdns/v1"
	"github.com/photoncloud/photoncloud/internal/flashdns/zone"
)

// zoneOut returns zs as the API shows it (ix.mu held for reading).
func (ix *index) zoneOut(zs *zoneState) *flashdnsv1.Zone {
	z := proto.CloneOf(zs.z)
	z.Etag = etagOf(zs.mod)
	n := 1 // the SOA
	if t := ix.sets(zs); t != nil {
		n += t.Len()
	}
	z.RecordSetCount = int32(n)
	return z
}

// current returns zone id of project parent as the API shows it.
func (s *Store) current(parent, id string) (*flashdnsv1.Zone, error) {
	s.ix.mu.RLock()
	defer s.ix.mu.RUnlock()
	zs := s.ix.zones[id]
	if zs == nil || zs.parent != parent {
		return nil, notFoundf("zone %s", ZoneName(parent, id))
	}
	return s.ix.zoneOut(zs), nil
}

// GetZone returns the zone named name
// (orgs/{org}/projects/{project}/zones/{zone}). A zone of another project
// is ErrNotFound, as is a missing one.
func (s *Store) GetZone(_ context.Context, name string) (*flashdnsv1.Zone, error) {
	parent, id, err := ParseZoneName(name)
	if err != nil {
		return nil, err
	}
	return s.current(parent, id)
}

// ZoneLabels returns the labels of the zone named name, for authorization
// conditions; ok is false when the name is malformed or the project has no
// such zone.
func (s *Store) ZoneLabels(name string) (labels map[string]string, ok bool) {
	parent, id, err := ParseZoneName(name)
	if err != nil {
		return nil, false
	}
	s.ix.mu.RLock()
	defer s.ix.mu.RUnlock()
	zs := s.ix.zones[id]
	if zs == nil || zs.parent != parent {
		return nil, false
	}
	return zs.z.GetLabels(), true
}

// ListZones lists the zones of project parent, ordered by zone id, from
// memory.
func (s *Store) ListZones(_ context.Context, parent string, opts ListOptions[*flashdnsv1.Zone]) ([]*flashdnsv1.Zone, string, error) {
	if _, err := ParseParent(parent); err != nil {
		return nil, "", err
	}
	size, err := opts.size()
	if err != nil {
		return nil, "", err
	}
	now := s.now()
	where := "zones|" + parent
	after, err := decodeToken(opts.PageToken, where, opts.Filter, now)
	if err != nil {
		return nil, "", err
	}
	s.ix.mu.RLock()
	defer s.ix.mu.RUnlock()
	ids := make([]string, 0, len(s.ix.byParent[parent]))
	for id := range s.ix.byParent[parent] {
		if id > after {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	var out []*flashdnsv1.Zone
	for i, id := range ids {
		z := s.ix.zoneOut(s.ix.byParent[parent][id])
		if opts.Match != nil && !opts.Match(z) {
			continue
		}
		if len(out) == size {
			return out, encodeToken(where, ids[i-1], opts.Filter, now), nil
		}
		out = append(out, z)
	}
	return out, "", nil
}

// zoneTemplate checks a new zone's identity: its DNS name (from dns_name
// or reverse.cidr) and reverse configuration. It returns the zone id and
// a copy of in with dns_name, name and reverse canonical and the
// output-only fields cleared.
func zoneTemplate(parent string, in *flashdnsv1.Zone) (string, *flashdnsv1.Zone, error) {
	z := proto.CloneOf(in)
	if z == nil {
		z = &flashdnsv1.Zone{}
	}
	z.Serial, z.Kind, z.RecordSetCount, z.CreateTime, z.UpdateTime, z.Etag = 0, 0, 0, nil, nil, ""
	var id string
	if r := z.GetReverse(); r != nil {
		p, err := checkReverseCIDR(r.GetCidr())
		if err != nil {
			return "", nil, err
		}
		id = reverseName(p)
		r.Cidr = p.String()
		if z.DnsName != "" {
			given, err := ZoneID(z.DnsName)
			if err != nil {
				return "", nil, err
			}
			if given != id {
				return "", nil, invalidf("dns_name %s does not match reverse.cidr %s, whose zone is %s", clip(z.DnsName), p, origin(id))
			}
		}
	} else {
		if z.DnsName == "" {
			return "", nil, invalidf("dns_name is required (or reverse.cidr for a reverse zone)")
		}
		var err error
		if id, err = ZoneID(z.DnsName); err != nil {
			return "", nil, err
		}
		if p, ok := reverseCIDR(id); ok {
			if _, err := checkReverseCIDR(p.String()); err == nil {
				z.Reverse = &flashdnsv1.ReverseConfig{Cidr: p.String()}
			}
		}
	}
	z.DnsName = origin(id)
	z.Name = ZoneName(parent, id)
	return id, z, nil
}

// createChecks checks, against the index, that zone id can be created in
// parent: the name is free, not nested in or above another project's zone,
// and the project's quota allows one more. The returned revision is the
// index revision the checks hold at; the create compares that no zone was
// created since.
func (s *Store) createChecks(parent, id string) (int64, error) {
	s.ix.mu.RLock()
	defer s.ix.mu.RUnlock()
	if zs := s.ix.zones[id]; zs != nil {
		return 0, existsf("a zone named %s already exists", origin(id))
	}
	for _, a := range ancestors(id) {
		if zs := s.ix.zones[a]; zs != nil && zs.parent != parent {
			return 0, preconditionf("%s is inside zone %s of another project; a zone cannot take over names of another project's zone", origin(id), origin(a))
		}
	}
	suffix := "." + id
	for zid, zs := range s.ix.zones {
		if strings.HasSuffix(zid, suffix) && zs.parent != parent {
			return 0, preconditionf("zone %s of another project is inside %s; a zone cannot take over names of another project's zone", origin(zid), origin(id))
		}
	}
	if n := len(s.ix.byParent[parent]); n >= s.opts.MaxZonesPerProject {
		return 0, exhaustedf("project %s has %d zones, the most allowed", parent, n)
	}
	return s.ix.rev, nil
}

// nsSet builds the apex NS set of a zone: ttl as stored (0: the default),
// records with the effective TTL.
func nsSet(id string, nameservers []string, ttl, def uint32) *rrset {
	o := origin(id)
	eff := ttl
	if eff == 0 {
		eff = def
	}
	s := &rrset{setKey: setKey{o, dns.TypeNS}, ttl: ttl}
	for _, n := range nameservers {
		s.rrs = append(s.rrs, &dns.NS{Hdr: dns.RR_Header{Name: o, Rrtype: dns.TypeNS, Class: dns.ClassINET, Ttl: eff}, Ns: n})
	}
	return s
}

// zoneData assembles a zone.Data from a zone record and its sets, for
// validation.
func zoneData(id string, z *flashdnsv1.Zone, sets *btree.BTreeG[*rrset]) zone.Data {
	d := zone.Data{Origin: origin(id), SOA: soaOf(id, z), Reverse: reverseOf(z)}
	sets.Ascend(func(s *rrset) bool {
		d.Sets = append(d.Sets, s.zoneSet())
		return true
	})
	return d
}

// CreateZone creates a zone in project parent with its SOA and apex NS
// set (see CreateZone in zones.proto): name from dns_name or
// reverse.cidr, defaults filled in, serial the current Unix time.
func (s *Store) CreateZone(ctx context.Context, parent string, in *flashdnsv1.Zone) (*flashdnsv1.Zone, error) {
	if _, err := ParseParent(parent); err != nil {
		return nil, err
	}
	id, z, err := zoneTemplate(parent, in)
	if err != nil {
		return nil, err
	}
	if err := s.normalizeZone(z); err != nil {
		return nil, err
	}
	now := s.now()
	z.Serial = uint32(now.Unix())
	z.CreateTime = timestamppb.New(now)
	z.UpdateTime = z.CreateTime
	ns := nsSet(id, z.Nameservers, 0, z.DefaultTtl)
	sets := newTree()
	sets.ReplaceOrInsert(ns)
	if err := zone.ValidateZone(zoneData(id, z, sets)); err != nil {
		return nil, zoneInvalid(err)
	}
	_, err = s.write(ctx, id, func() (*plan, error) {
		rev, err := s.createChecks(parent, id)
		if err != nil {
			return nil, err
		}
		return &plan{id: id, parent: parent, rev: rev, zone: z, sets: sets,
			touched: map[setKey]*touch{ns.setKey: {new: ns}}}, nil
	})
	if err != nil {
		return nil, err
	}
	return s.current(parent, id)
}

// UpdateZone changes the zone named name: update changes a copy of the
// stored zone (the API layer applies its field mask there); the store then
// restores the output-only fields, refuses changes of dns_name and
// reverse.cidr, fills defaults for zeroed fields and validates. The serial
// is bumped when what a zone transfer holds changed; the apex NS set
// follows the name servers. etag "" means unconditionally.
func (s *Store) UpdateZone(ctx context.Context, name, etag string, update func(z *flashdnsv1.Zone) error) (*flashdnsv1.Zone, error) {
	parent, id, err := ParseZoneName(name)
	if err != nil {
		return nil, err
	}
	_, err = s.write(ctx, id, func() (*plan, error) {
		v, err := s.viewFor(ctx, parent, id, etag)
		if err != nil {
			return nil, err
		}
		old := v.z
		z := proto.CloneOf(old)
		if err := update(z); err != nil {
			return nil, err
		}
		if got, err := ZoneID(z.GetDnsName()); err != nil || got != id {
			return nil, invalidf("dns_name is immutable (the zone is %s)", old.GetDnsName())
		}
		switch r, or := z.GetReverse(), old.GetReverse(); {
		case (r == nil) != (or == nil):
			return nil, invalidf("reverse cannot be added to or removed from an existing zone")
		case r != nil && r.GetCidr() != or.GetCidr():
			if p, err := netip.ParsePrefix(r.GetCidr()); err != nil || p.String() != or.GetCidr() {
				return nil, invalidf("reverse.cidr is immutable (the zone's is %s)", or.GetCidr())
			}
			r.Cidr = or.GetCidr()
		}
		z.Name, z.DnsName, z.Serial, z.Kind = old.Name, old.DnsName, old.Serial, old.Kind
		z.CreateTime, z.UpdateTime, z.RecordSetCount, z.Etag = old.CreateTime, old.UpdateTime, 0, ""
		if err := s.normalizeZone(z); err != nil {
			return nil, err
		}
		if proto.Equal(z, old) {
			return nil, nil // nothing changes: no write, no new serial
		}
		now := s.now()
		z.UpdateTime = timestamppb.New(now)
		p := &plan{id: id, parent: parent, v: v, zone: z, sets: v.sets, touched: map[setKey]*touch{}}
		transfer := z.PrimaryNs != old.PrimaryNs || z.Admin != old.Admin || z.Refresh != old.Refresh ||
			z.Retry != old.Retry || z.Expire != old.Expire || z.NegativeTtl != old.NegativeTtl ||
			z.DefaultTtl != old.DefaultTtl || !slices.Equal(z.Nameservers, old.Nameservers)
		if !transfer {
			p.noJournalChange = true
			return p, s.validatePlan(p)
		}
		z.Serial = nextSerial(old.Serial, now)
		var diffs []touch
		nsKey := setKey{origin(id), dns.TypeNS}
		if z.DefaultTtl != old.DefaultTtl {
			// Sets stored with TTL 0 follow the default: for a
			// secondary their records change.
			v.sets.Ascend(func(set *rrset) bool {
				if set.ttl == 0 && set.setKey != nsKey {
					diffs = append(diffs, touch{old: set, new: set.withTTL(z.DefaultTtl)})
				}
				return true
			})
		}
		oldNS, _ := v.sets.Get(&rrset{setKey: nsKey})
		if !slices.Equal(z.Nameservers, old.Nameservers) || z.DefaultTtl != old.DefaultTtl {
			var ttl uint32
			if oldNS != nil {
				ttl = oldNS.ttl
			}
			newNS := nsSet(id, z.Nameservers, ttl, z.DefaultTtl)
			if !sameSet(oldNS, newNS) {
				diffs = append(diffs, touch{old: oldNS, new: newNS})
				v.sets.ReplaceOrInsert(newNS)
				if !slices.Equal(z.Nameservers, old.Nameservers) {
					p.touched[nsKey] = &touch{old: oldNS, new: newNS}
				}
			}
		}
		p.journal = s.journalFor(old.Serial, z.Serial, diffs, z.UpdateTime)
		return p, s.validatePlan(p)
	})
	if err != nil {
		return nil, err
	}
	return s.current(parent, id)
}

// validatePlan checks the zone a plan leaves behind, as a whole.
func (s *Store) validatePlan(p *plan) error {
	if n := p.sets.Len() + 1; n > s.opts.MaxRecordSetsPerZone {
		return exhaustedf("zone %s would have %d record sets, more than %d", p.id, n, s.opts.MaxRecordSetsPerZone)
	}
	return zoneInvalid(zone.ValidateZone(zoneData(p.id, p.zone, p.sets)))
}

// DeleteZone deletes the zone named name with its record sets and
// journal, in one transaction. A zone with record sets besides its SOA and
// apex NS is only deleted with force (ErrFailedPrecondition otherwise).
// etag "" means unconditionally.
func (s *Store) DeleteZone(ctx context.Context, name, etag string, force bool) error {
	parent, id, err := ParseZoneName(name)
	if err != nil {
		return err
	}
	unlock, err := s.lockZone(ctx, id)
	if err != nil {
		return err
	}
	defer unlock()
	for attempt := 0; attempt < maxAttempts; attempt++ {
		v, err := s.viewFor(ctx, parent, id, etag)
		if err != nil {
			return err
		}
		if n := v.sets.Len() + 1; n > 2 && !force {
			return preconditionf("zone %s has %d record sets besides its SOA and apex NS; delete them first or use force", origin(id), n-2)
		}
		sets, jour := zoneSetsPrefix(id), journalZonePrefix(id)
		resp, err := s.txn(ctx,
			[]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(zoneKey(id)), "=", v.mod)},
			[]clientv3.Op{
				clientv3.OpDelete(zoneKey(id)),
				// Every generation, so that an import racing with the
				// delete fails at its switch rather than resurrecting.
				clientv3.OpDelete(sets, clientv3.WithRange(prefixEnd(sets))),
				clientv3.OpDelete(jour, clientv3.WithRange(prefixEnd(jour))),
			}, nil)
		if err != nil {
			return err
		}
		if resp.Succeeded {
			return nil
		}
		s.m.conflicts.Inc()
		if err := s.WaitRevision(ctx, resp.Header.Revision); err != nil {
			return err
		}
	}
	return fmt.Errorf("%w: zone %s", ErrConflict, id)
}
