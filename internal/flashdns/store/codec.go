package store

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/miekg/dns"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	flashdnsv1 "github.com/photoncloud/photoncloud/api/flashdns/v1"
	"github.com/photoncloud/photoncloud/internal/flashdns/zone"
)

// Limits of the flashdns.v1 API (zones.proto) that the store enforces on
// every write, so that every replica can load every stored record.
const (
	maxRecordsPerSet = 100
	maxRecordChars   = 4096
	maxSetWireBytes  = 16384
	maxNameservers   = 16
	maxLabels        = 64
	maxLabelValue    = 256
	maxTTL           = 2147483647
	// MaxZoneFileBytes bounds ImportZone's zone file.
	MaxZoneFileBytes = 16 << 20
	// MaxChanges bounds the changes of one ChangeRecordSets batch.
	MaxChanges = 1000
)

// supportedTypes are the record types a record set may have (SOA is
// managed by the zone).
var supportedTypes = map[uint16]bool{
	dns.TypeA: true, dns.TypeAAAA: true, dns.TypeCNAME: true, dns.TypeMX: true, dns.TypeTXT: true,
	dns.TypeSRV: true, dns.TypeNS: true, dns.TypePTR: true, dns.TypeCAA: true,
}

// setKey identifies a record set within a zone: canonical owner name and
// type.
type setKey struct {
	name string
	typ  uint16
}

func (k setKey) String() string { return k.name + " " + typeString(k.typ) }

func (k setKey) less(o setKey) bool {
	return k.name < o.name || (k.name == o.name && k.typ < o.typ)
}

// rrset is a record set as the index holds it. It is immutable once it is
// in an index tree: trees are cloned (copy on write) by writers, and
// snapshots share the records.
type rrset struct {
	setKey
	// ttl is the stored TTL; 0 means the zone's default TTL.
	ttl uint32
	// rrs carry complete headers with the effective TTL (ttl, or the
	// zone's default when ttl is 0), as zone.RRSet wants them.
	rrs []dns.RR
	// mod is the Chainfire mod revision of the set's key; 0 for a set a
	// writer planned but has not written.
	mod int64
}

func lessSet(a, b *rrset) bool { return a.setKey.less(b.setKey) }

// effTTL returns the TTL the set's records carry.
func (s *rrset) effTTL() uint32 {
	if len(s.rrs) == 0 {
		return s.ttl
	}
	return s.rrs[0].Header().Ttl
}

// withTTL returns a copy of s whose records carry ttl. The records are
// copied, never changed: snapshots may share the old ones.
func (s *rrset) withTTL(ttl uint32) *rrset {
	c := *s
	c.rrs = make([]dns.RR, len(s.rrs))
	for i, rr := range s.rrs {
		c.rrs[i] = dns.Copy(rr)
		c.rrs[i].Header().Ttl = ttl
	}
	return &c
}

// zoneSet converts s for package zone.
func (s *rrset) zoneSet() zone.RRSet {
	return zone.RRSet{Name: s.name, Type: s.typ, TTL: s.effTTL(), RRs: s.rrs}
}

// rdata returns the presentation format of a record without its header.
func rdata(rr dns.RR) string {
	return strings.TrimPrefix(rr.String(), rr.Header().String())
}

// api converts s to the API message (records normalized as a zone file
// prints them, in stored order).
func (s *rrset) api() *flashdnsv1.RecordSet {
	out := &flashdnsv1.RecordSet{Name: s.name, Type: typeString(s.typ), Ttl: s.ttl, Records: make([]string, len(s.rrs))}
	for i, rr := range s.rrs {
		out.Records[i] = rdata(rr)
	}
	return out
}

// sameData reports whether two record lists hold the same records as data
// (any order, TTLs ignored; sets have no duplicates, RFC 2181 §5).
func sameData(a, b []dns.RR) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.ContainsFunc(b, func(y dns.RR) bool { return dns.IsDuplicate(x, y) }) {
			return false
		}
	}
	return true
}

// sameSet reports whether two sets would serve the same records.
func sameSet(a, b *rrset) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.effTTL() == b.effTTL() && a.ttl == b.ttl && sameData(a.rrs, b.rrs)
}

// parseRecords parses the presentation-format data of a set's records
// (relative names expanded against origin) into records with complete
// headers. It enforces the API's size limits; the record rules are
// zone.ValidateSet's.
func parseRecords(origin string, k setKey, ttl uint32, records []string) ([]dns.RR, error) {
	if len(records) > maxRecordsPerSet {
		return nil, invalidf("record set %s has %d records, more than %d", k, len(records), maxRecordsPerSet)
	}
	ts := typeString(k.typ)
	rrs := make([]dns.RR, 0, len(records))
	wire := 0
	for i, rec := range records {
		if len(rec) > maxRecordChars {
			return nil, invalidf("record set %s: record %d is longer than %d characters", k, i+1, maxRecordChars)
		}
		if strings.ContainsAny(rec, "\n\r") {
			return nil, invalidf("record set %s: record %d contains a line break", k, i+1)
		}
		if strings.TrimSpace(rec) == "" {
			return nil, invalidf("record set %s: record %d is empty", k, i+1)
		}
		if k.typ == dns.TypeTXT {
			if err := checkTXTStrings(rec); err != nil {
				return nil, invalidf("record set %s: record %d: %v", k, i+1, err)
			}
		}
		if ip, ok := parseAddr(k.typ, rec); ok {
			rr := addrRecord(k, ttl, ip)
			wire += dns.Len(rr)
			rrs = append(rrs, rr)
			continue
		}
		line := k.name + " " + strconv.FormatUint(uint64(ttl), 10) + " IN " + ts + " " + rec + "\n"
		zp := dns.NewZoneParser(strings.NewReader(line), origin, "")
		rr, ok := zp.Next()
		if err := zp.Err(); err != nil {
			return nil, invalidf("record set %s: record %d %q: %v", k, i+1, clip(rec), parseErr(err))
		}
		if !ok || rr == nil {
			return nil, invalidf("record set %s: record %d %q has no data", k, i+1, clip(rec))
		}
		if _, more := zp.Next(); more {
			return nil, invalidf("record set %s: record %d %q holds more than one record", k, i+1, clip(rec))
		}
		if rr.Header().Rrtype != k.typ {
			return nil, invalidf("record set %s: record %d %q is not of type %s", k, i+1, clip(rec), ts)
		}
		// One owner string for the whole set: the index holds many sets.
		rr.Header().Name = k.name
		if a, ok := rr.(*dns.A); ok {
			a.A = ip4(a.A) // as the snapshots serve it, which then share it
		}
		wire += dns.Len(rr)
		rrs = append(rrs, rr)
	}
	if wire > maxSetWireBytes {
		return nil, invalidf("record set %s is %d octets in wire format, more than %d", k, wire, maxSetWireBytes)
	}
	return rrs, nil
}

// parseAddr is the fast path of parseRecords for the most common records:
// an A or AAAA whose data is a plain address (blanks around it allowed)
// gets the address without a zone parser per record, which costs far more
// time and garbage than the record itself when a replica loads a large
// zone. It accepts exactly what the zone parser accepts as such a record,
// with the same result: net.ParseIP, which the parser uses, is
// netip.ParseAddr without zones, and a plain address holds none of the
// characters the parser's lexer treats specially. Anything else (ok
// false) goes to the parser.
func parseAddr(typ uint16, rec string) (net.IP, bool) {
	if typ != dns.TypeA && typ != dns.TypeAAAA {
		return nil, false
	}
	a, err := netip.ParseAddr(strings.Trim(rec, " \t"))
	switch {
	case err != nil || a.Zone() != "":
		return nil, false
	case typ == dns.TypeA && a.Is4():
		b := a.As4()
		return net.IP(b[:]), true
	case typ == dns.TypeAAAA && a.Is6():
		b := a.As16()
		return net.IP(b[:]), true
	}
	return nil, false
}

// addrRecord builds the A or AAAA record of set k with address ip, as the
// zone parser builds it from "<owner> <ttl> IN <type> <address>".
func addrRecord(k setKey, ttl uint32, ip net.IP) dns.RR {
	h := dns.RR_Header{Name: k.name, Rrtype: k.typ, Class: dns.ClassINET, Ttl: ttl}
	if k.typ == dns.TypeA {
		return &dns.A{Hdr: h, A: ip}
	}
	return &dns.AAAA{Hdr: h, AAAA: ip}
}

// ip4 returns an IPv4 address in its 4-byte form (the parser gives 16).
func ip4(ip net.IP) net.IP {
	if len(ip) == net.IPv4len {
		return ip
	}
	if v4 := ip.To4(); v4 != nil {
		return slices.Clone(v4)
	}
	return ip
}

// checkTXTStrings checks that every character-string of a TXT record's
// presentation data is at most 255 octets after unescaping. miekg/dns
// would silently split a longer one into several, which is not what the
// writer meant (zones.proto: split it yourself).
func checkTXTStrings(rec string) error {
	i := 0
	for i < len(rec) {
		switch c := rec[i]; {
		case c == ' ' || c == '\t':
			i++
			continue
		case c == ';':
			return nil // a comment ends the data
		}
		quoted := rec[i] == '"'
		if quoted {
			i++
		}
		n := 0
		for i < len(rec) {
			c := rec[i]
			if quoted && c == '"' {
				i++
				break
			}
			if !quoted && (c == ' ' || c == '\t' || c == ';') {
				break
			}
			if c == '\\' && i+1 < len(rec) {
				if i+3 < len(rec) && isDigit(rec[i+1]) && isDigit(rec[i+2]) && isDigit(rec[i+3]) {
					i += 4
				} else {
					i += 2
				}
			} else {
				i++
			}
			n++
		}
		if n > 255 {
			return fmt.Errorf("a TXT character-string of %d octets, more than 255; split it into several quoted strings", n)
		}
	}
	return nil
}

// parseErr drops miekg/dns's file and line context, which is always our
// own one-line buffer.
func parseErr(err error) string {
	if pe, ok := err.(*dns.ParseError); ok && pe != nil {
		s := pe.Error()
		if i := strings.Index(s, ": "); i >= 0 && strings.HasPrefix(s, "dns: ") {
			return s[len("dns: "):]
		}
		return s
	}
	return err.Error()
}

// decodeSet decodes a stored RecordSet. defTTL is the zone's default TTL,
// given to records of a set stored with TTL 0.
func decodeSet(origin string, k setKey, b []byte, mod int64, defTTL uint32) (*rrset, error) {
	var m flashdnsv1.RecordSet
	if err := proto.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("decode record set %s: %w", k, err)
	}
	eff := m.GetTtl()
	if eff == 0 {
		eff = defTTL
	}
	rrs, err := parseRecords(origin, k, eff, m.GetRecords())
	if err != nil {
		return nil, fmt.Errorf("decode record set %s: %w", k, err)
	}
	return &rrset{setKey: k, ttl: m.GetTtl(), rrs: rrs, mod: mod}, nil
}

// encodeSet encodes a set for storage.
func encodeSet(s *rrset) ([]byte, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(s.api())
	if err != nil {
		return nil, fmt.Errorf("encode record set %s: %w", s.setKey, err)
	}
	return b, nil
}

// A zone key's value is, in protobuf wire format,
//
//	message StoredZone {
//	  flashdns.v1.Zone zone = 1;   // etag and record_set_count cleared
//	  string generation = 2;       // the generation of its record-set keys
//	}
//
// encoded by hand here because the generation is the store's business and
// not part of the API's Zone.
const (
	storedZoneField = 1
	storedGenField  = 2
)

func encodeZone(z *flashdnsv1.Zone, gen string) ([]byte, error) {
	z = proto.CloneOf(z)
	z.Etag, z.RecordSetCount = "", 0
	zb, err := proto.MarshalOptions{Deterministic: true}.Marshal(z)
	if err != nil {
		return nil, fmt.Errorf("encode zone: %w", err)
	}
	b := make([]byte, 0, len(zb)+len(gen)+8)
	b = protowire.AppendTag(b, storedZoneField, protowire.BytesType)
	b = protowire.AppendBytes(b, zb)
	b = protowire.AppendTag(b, storedGenField, protowire.BytesType)
	b = protowire.AppendString(b, gen)
	return b, nil
}

func decodeZone(b []byte) (*flashdnsv1.Zone, string, error) {
	var z *flashdnsv1.Zone
	var gen string
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, "", fmt.Errorf("decode zone: %w", protowire.ParseError(n))
		}
		b = b[n:]
		switch {
		case num == storedZoneField && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil, "", fmt.Errorf("decode zone: %w", protowire.ParseError(n))
			}
			z = &flashdnsv1.Zone{}
			if err := proto.Unmarshal(v, z); err != nil {
				return nil, "", fmt.Errorf("decode zone: %w", err)
			}
			b = b[n:]
		case num == storedGenField && typ == protowire.BytesType:
			v, n := protowire.ConsumeString(b)
			if n < 0 {
				return nil, "", fmt.Errorf("decode zone: %w", protowire.ParseError(n))
			}
			gen = v
			b = b[n:]
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return nil, "", fmt.Errorf("decode zone: %w", protowire.ParseError(n))
			}
			b = b[n:]
		}
	}
	if z == nil || gen == "" {
		return nil, "", fmt.Errorf("decode zone: zone or generation missing")
	}
	return z, gen, nil
}

// journalEntry is one stored IXFR journal entry.
type journalEntry struct {
	key  string
	mod  int64
	diff zone.Diff
}

func decodeJournal(key string, b []byte, mod int64) (*journalEntry, error) {
	var m flashdnsv1.JournalEntry
	if err := proto.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("decode journal entry %s: %w", key, err)
	}
	e := &journalEntry{key: key, mod: mod, diff: zone.Diff{FromSerial: m.GetFromSerial(), ToSerial: m.GetToSerial()}}
	var err error
	if e.diff.Deleted, err = parseRRs(m.GetDeleted()); err != nil {
		return nil, fmt.Errorf("decode journal entry %s: %w", key, err)
	}
	if e.diff.Added, err = parseRRs(m.GetAdded()); err != nil {
		return nil, fmt.Errorf("decode journal entry %s: %w", key, err)
	}
	return e, nil
}

func parseRRs(ss []string) ([]dns.RR, error) {
	out := make([]dns.RR, 0, len(ss))
	for _, s := range ss {
		rr, err := dns.NewRR(s)
		if err != nil {
			return nil, err
		}
		if rr == nil {
			return nil, fmt.Errorf("empty record %q", clip(s))
		}
		out = append(out, rr)
	}
	return out, nil
}

// journalMessage builds the stored form of a diff.
func journalMessage(from, to uint32, deleted, added []dns.RR, at *timestamppb.Timestamp) *flashdnsv1.JournalEntry {
	m := &flashdnsv1.JournalEntry{FromSerial: from, ToSerial: to, CommitTime: at,
		Deleted: make([]string, len(deleted)), Added: make([]string, len(added))}
	for i, rr := range deleted {
		m.Deleted[i] = rr.String()
	}
	for i, rr := range added {
		m.Added[i] = rr.String()
	}
	return m
}
