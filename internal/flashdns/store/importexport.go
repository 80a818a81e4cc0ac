package store

import (
	"bufio"
	"context"
	"fmt"
	"strings"

	"github.com/google/btree"
	"github.com/miekg/dns"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	flashdnsv1 "github.com/photoncloud/photoncloud/api/flashdns/v1"
	"github.com/photoncloud/photoncloud/internal/flashdns/zone"
)

// ImportRequest is an ImportZone call (see ImportZoneRequest in
// zones.proto).
type ImportRequest struct {
	// DNSName is the zone's name; "" takes it from the file.
	DNSName string
	// ZoneFile is the RFC 1035 zone file, at most MaxZoneFileBytes.
	ZoneFile string
	// Replace replaces the content of an existing zone of the project
	// instead of failing with ErrAlreadyExists.
	Replace bool
	// Etag, with Replace, must match the existing zone's.
	Etag string
}

// dnssecTypes are left over from a signed zone; FlashDNS does not sign, so
// an import drops them.
var dnssecTypes = map[uint16]bool{dns.TypeRRSIG: true, dns.TypeNSEC: true, dns.TypeNSEC3: true, dns.TypeNSEC3PARAM: true}

// importedZone is a parsed zone file.
type importedZone struct {
	id         string
	soa        *dns.SOA
	defaultTTL uint32 // from the first $TTL; 0 if none
	sets       *btree.BTreeG[*rrset]
	ns         []string // apex NS names
	nsTTL      uint32
}

func (s *Store) parseImport(req ImportRequest) (*importedZone, error) {
	if len(req.ZoneFile) > MaxZoneFileBytes {
		return nil, invalidf("zone_file is %d bytes, more than %d", len(req.ZoneFile), MaxZoneFileBytes)
	}
	orig := ""
	if req.DNSName != "" {
		id, err := ZoneID(req.DNSName)
		if err != nil {
			return nil, err
		}
		orig = origin(id)
	}
	data, lines, err := zone.ParseZoneFileLines(strings.NewReader(req.ZoneFile), orig, defaultTTL)
	if err != nil {
		return nil, zoneInvalid(fmt.Errorf("zone_file: %w", err))
	}
	id, err := ZoneID(data.Origin)
	if err != nil {
		return nil, err
	}
	if orig != "" && origin(id) != orig {
		return nil, invalidf("zone_file: its origin %s is not dns_name %s", data.Origin, orig)
	}
	if data.SOA == nil {
		return nil, invalidf("zone_file: no SOA record at %s", origin(id))
	}
	iz := &importedZone{id: id, soa: data.SOA, sets: newTree(), defaultTTL: firstTTL(req.ZoneFile)}
	var nsLine int
	for si, set := range data.Sets {
		if dnssecTypes[set.Type] {
			continue
		}
		name := zone.Canonical(set.Name)
		k := setKey{name, set.Type}
		// Errors name the file line of the record they are about.
		line := func(i int) int { return lines.Line(si, i) }
		if !supportedTypes[set.Type] {
			return nil, invalidf("zone_file: line %d: record set %s: type %s is not supported", line(0), k, typeString(set.Type))
		}
		if len(set.RRs) == 0 {
			continue
		}
		if k == (setKey{origin(id), dns.TypeNS}) {
			nsLine = line(0)
		}
		ttl := set.TTL
		rrs := make([]dns.RR, len(set.RRs))
		for i, rr := range set.RRs {
			if rr.Header().Ttl == 0 {
				// The parser gave the set the smallest TTL of its records.
				return nil, invalidf("zone_file: line %d: record set %s: TTL 0 is not allowed (0 means \"the default\" in this API)", lines.TTLLine(si), k)
			}
			if ttl == 0 || rr.Header().Ttl < ttl {
				ttl = rr.Header().Ttl // RFC 2181 §5.2: the smallest
			}
			rrs[i] = rr
		}
		if len(rrs) > maxRecordsPerSet {
			return nil, invalidf("zone_file: line %d: record set %s has %d records, more than %d", line(maxRecordsPerSet), k, len(rrs), maxRecordsPerSet)
		}
		wire := 0
		for i, rr := range rrs {
			if rr.Header().Ttl != ttl || rr.Header().Name != name {
				rrs[i] = dns.Copy(rr)
				rrs[i].Header().Ttl = ttl
			}
			rrs[i].Header().Name = name
			// The limits every replica checks when it loads the set
			// (parseRecords): a set beyond them would be stored and
			// then ignored as undecodable.
			if n := len(rdata(rrs[i])); n > maxRecordChars {
				return nil, invalidf("zone_file: line %d: record set %s: the record is %d characters long, more than %d", line(i), k, n, maxRecordChars)
			}
			if wire += dns.Len(rrs[i]); wire > maxSetWireBytes {
				return nil, invalidf("zone_file: line %d: record set %s is more than %d octets in wire format", line(i), k, maxSetWireBytes)
			}
		}
		set := &rrset{setKey: k, ttl: ttl, rrs: rrs}
		if old, ok := iz.sets.ReplaceOrInsert(set); ok {
			// The parser groups records into sets; should it not, merge.
			merged := &rrset{setKey: k, ttl: min(old.ttl, ttl), rrs: append(append([]dns.RR{}, old.rrs...), rrs...)}
			iz.sets.ReplaceOrInsert(merged.withTTL(merged.ttl))
		}
	}
	if ns, ok := iz.sets.Get(&rrset{setKey: setKey{origin(id), dns.TypeNS}}); ok {
		for _, rr := range ns.rrs {
			iz.ns = append(iz.ns, rr.(*dns.NS).Ns)
		}
		if iz.ns, err = checkNameservers(iz.ns); err != nil {
			return nil, fmt.Errorf("zone_file: line %d: apex NS: %w", nsLine, err)
		}
		iz.nsTTL = ns.ttl
	}
	return iz, nil
}

// firstTTL returns the value of the file's first $TTL directive, 0 if it
// has none (or one the zone parser would have refused).
func firstTTL(file string) uint32 {
	sc := bufio.NewScanner(strings.NewReader(file))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || !strings.EqualFold(f[0], "$TTL") || !strings.HasPrefix(sc.Text(), "$") {
			continue
		}
		// Let miekg/dns read the value: it knows BIND's units (1h30m).
		zp := dns.NewZoneParser(strings.NewReader("$TTL "+f[1]+"\n. IN A 192.0.2.1\n"), ".", "")
		if rr, ok := zp.Next(); ok && rr != nil {
			return rr.Header().Ttl
		}
		return 0
	}
	return 0
}

// zoneFields sets the fields an import takes from the file.
func (iz *importedZone) zoneFields(z *flashdnsv1.Zone) {
	z.PrimaryNs, z.Admin = iz.soa.Ns, iz.soa.Mbox
	z.Refresh, z.Retry, z.Expire, z.NegativeTtl = iz.soa.Refresh, iz.soa.Retry, iz.soa.Expire, iz.soa.Minttl
	z.Nameservers = iz.ns
	if iz.defaultTTL != 0 {
		z.DefaultTtl = iz.defaultTTL
	}
}

// content returns the imported sets for a zone with default TTL def: the
// file's, plus an apex NS set for the zone's name servers when the file
// has none.
func (iz *importedZone) content(z *flashdnsv1.Zone) *btree.BTreeG[*rrset] {
	t := iz.sets.Clone()
	if len(iz.ns) == 0 {
		t.ReplaceOrInsert(nsSet(iz.id, z.Nameservers, 0, z.DefaultTtl))
	}
	return t
}

// ImportZone creates a zone in project parent from a zone file, or, with
// Replace, replaces every record set and the SOA fields of the project's
// existing zone of that name in one change (see ImportZone in
// zones.proto). A replacement that does not fit in one transaction is
// written as a new generation and switched to at once.
func (s *Store) ImportZone(ctx context.Context, parent string, req ImportRequest) (*flashdnsv1.Zone, error) {
	if _, err := ParseParent(parent); err != nil {
		return nil, err
	}
	iz, err := s.parseImport(req)
	if err != nil {
		return nil, err
	}
	id := iz.id
	if n := iz.sets.Len() + 2; n > s.opts.MaxRecordSetsPerZone {
		return nil, exhaustedf("zone_file has %d record sets, more than %d", n, s.opts.MaxRecordSetsPerZone)
	}
	caughtUp := false
	_, err = s.write(ctx, id, func() (*plan, error) {
		s.ix.mu.RLock()
		existing := s.ix.zones[id]
		s.ix.mu.RUnlock()
		if existing == nil && req.Replace && !caughtUp {
			// The zone may exist on another replica's write that this
			// one has not seen yet: replace it rather than fail.
			caughtUp = true
			if err := s.catchUp(ctx); err != nil {
				return nil, err
			}
			s.ix.mu.RLock()
			existing = s.ix.zones[id]
			s.ix.mu.RUnlock()
		}
		inParent := existing != nil && existing.parent == parent
		if existing != nil && (!req.Replace || !inParent) {
			return nil, existsf("a zone named %s already exists", origin(id))
		}
		if existing != nil {
			v, err := s.viewFor(ctx, parent, id, req.Etag)
			if err != nil {
				return nil, err
			}
			return s.replacePlan(v, iz)
		}
		return s.importCreatePlan(parent, iz)
	})
	if err != nil {
		return nil, err
	}
	return s.current(parent, id)
}

func (s *Store) importCreatePlan(parent string, iz *importedZone) (*plan, error) {
	id, z, err := zoneTemplate(parent, &flashdnsv1.Zone{DnsName: origin(iz.id)})
	if err != nil {
		return nil, err
	}
	iz.zoneFields(z)
	if err := s.normalizeZone(z); err != nil {
		return nil, fmt.Errorf("zone_file: %w", err)
	}
	now := s.now()
	z.Serial = iz.soa.Serial
	z.CreateTime = timestamppb.New(now)
	z.UpdateTime = z.CreateTime
	rev, err := s.createChecks(parent, id)
	if err != nil {
		return nil, err
	}
	p := &plan{id: id, parent: parent, rev: rev, zone: z, sets: iz.content(z), touched: map[setKey]*touch{}}
	p.sets.Ascend(func(set *rrset) bool {
		p.touched[set.setKey] = &touch{new: set}
		return true
	})
	return p, s.validatePlan(p)
}

func (s *Store) replacePlan(v *view, iz *importedZone) (*plan, error) {
	old := v.z
	z := proto.CloneOf(old)
	z.PrimaryNs, z.Admin, z.Nameservers = "", "", nil
	iz.zoneFields(z)
	if err := s.normalizeZone(z); err != nil {
		return nil, fmt.Errorf("zone_file: %w", err)
	}
	now := s.now()
	z.Serial = importSerial(old.GetSerial(), iz.soa.Serial, now)
	z.UpdateTime = timestamppb.New(now)
	sets := iz.content(z)
	p := &plan{id: v.id, parent: v.parent, v: v, zone: z, sets: sets, touched: map[setKey]*touch{}}
	// The differences, both for an in-place write and for the journal.
	var diffs []touch
	v.sets.Ascend(func(o *rrset) bool {
		n, _ := sets.Get(o)
		switch {
		case n == nil:
			p.touched[o.setKey] = &touch{old: o}
			diffs = append(diffs, touch{old: o})
		case o.ttl != n.ttl || !sameData(o.rrs, n.rrs):
			p.touched[o.setKey] = &touch{old: o, new: n}
			diffs = append(diffs, touch{old: o, new: n})
		case o.effTTL() != n.effTTL():
			// Stored alike, but a TTL-0 set under a new default TTL.
			diffs = append(diffs, touch{old: o, new: n})
		}
		return true
	})
	sets.Ascend(func(n *rrset) bool {
		if !v.sets.Has(n) {
			p.touched[n.setKey] = &touch{new: n}
			diffs = append(diffs, touch{new: n})
		}
		return true
	})
	if err := s.validatePlan(p); err != nil {
		return nil, err
	}
	p.journal = s.journalFor(old.GetSerial(), z.Serial, diffs, z.UpdateTime)
	return p, nil
}

// ExportZone returns the zone named name as an RFC 1035 zone file, and its
// serial. The file is written from the zone's snapshot: one consistent
// version.
func (s *Store) ExportZone(_ context.Context, name string) (string, uint32, error) {
	parent, id, err := ParseZoneName(name)
	if err != nil {
		return "", 0, err
	}
	s.ix.mu.RLock()
	zs := s.ix.zones[id]
	var snap *zone.Snapshot
	var defaultTTL uint32
	if zs != nil && zs.parent == parent {
		snap, defaultTTL = zs.snap, zs.z.GetDefaultTtl()
	}
	s.ix.mu.RUnlock()
	if zs == nil || zs.parent != parent {
		return "", 0, notFoundf("zone %s", ZoneName(parent, id))
	}
	if snap == nil {
		return "", 0, fmt.Errorf("zone %s: its stored data does not build; see the server log", id)
	}
	var b strings.Builder
	if err := zone.WriteZoneFile(&b, snap, defaultTTL); err != nil {
		return "", 0, fmt.Errorf("export zone %s: %w", id, err)
	}
	return b.String(), snap.Serial(), nil
}
