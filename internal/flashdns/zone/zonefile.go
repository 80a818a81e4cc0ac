package zone

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/miekg/dns"
)

// Zone file limits: imports come from tenants, so size and record count are
// bounded to keep one import from exhausting the server.
const (
	// MaxZoneFileSize is the largest zone file ParseZoneFile reads.
	MaxZoneFileSize = 32 << 20
	// MaxZoneRecords is the most records (SOA included) a zone file may hold.
	MaxZoneRecords = 500_000
	// DefaultTTL is the TTL ParseZoneFile gives records without one when the
	// caller passes 0 and the file has no $TTL.
	DefaultTTL = 3600
)

var errTooLarge = fmt.Errorf("zone file is larger than %d bytes", MaxZoneFileSize)

// limitReader fails with errTooLarge instead of reporting EOF, so that a
// truncated file is an error rather than a silently shorter zone.
type limitReader struct {
	r io.Reader
	n int64
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		// Probe one byte: exactly MaxZoneFileSize bytes is fine.
		var b [1]byte
		if n, _ := l.r.Read(b[:]); n > 0 {
			return 0, errTooLarge
		}
		return 0, io.EOF
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

// ParseZoneFile reads an RFC 1035 zone file with miekg/dns's ZoneParser.
//
//   - origin: the zone name; if empty, the file's $ORIGIN or else its SOA
//     owner decides. Relative names need an origin or an $ORIGIN line.
//   - defaultTTL: the TTL of records without one before any $TTL line or
//     explicit TTL; 0 means 3600, NSD's default (miekg alone would give some
//     such records TTL 0 and reject others).
//   - $INCLUDE is disabled (it would read server files); $GENERATE works,
//     within MaxZoneRecords.
//   - Exactly one SOA, at the apex; class IN only; only the supported types,
//     except that RRSIG, NSEC, NSEC3 and NSEC3PARAM records (a signed zone's)
//     are dropped.
//   - Identical records are merged (as NSD and BIND do); records of one set
//     with different TTLs get the smallest (RFC 2181 §5.2).
//
// Sets keep the order of their first record in the file. The result is
// checked with ValidateZone; every error wraps ErrInvalid.
func ParseZoneFile(r io.Reader, origin string, defaultTTL uint32) (Data, error) {
	if origin != "" {
		origin = Canonical(origin)
	}
	zp := dns.NewZoneParser(bufio.NewReader(&limitReader{r: r, n: MaxZoneFileSize}), origin, "")
	zp.SetIncludeAllowed(false)
	if defaultTTL == 0 {
		defaultTTL = DefaultTTL
	}
	zp.SetDefaultTTL(defaultTTL)

	var d Data
	type key struct {
		name string
		t    uint16
	}
	index := map[key]int{}
	count := 0
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		count++
		if count > MaxZoneRecords {
			return Data{}, invalid("zone file has more than %d records", MaxZoneRecords)
		}
		h := rr.Header()
		h.Name = Canonical(h.Name)
		if h.Class != dns.ClassINET {
			return Data{}, invalid("%s %s: class %s, only IN is served", h.Name, dns.TypeToString[h.Rrtype], dns.ClassToString[h.Class])
		}
		if soa, ok := rr.(*dns.SOA); ok {
			if d.SOA != nil {
				return Data{}, invalid("zone file has more than one SOA (%s and %s)", d.SOA.Hdr.Name, h.Name)
			}
			d.SOA = soa
			continue
		}
		if signatureTypes[h.Rrtype] {
			// Left over from a signed zone; FlashDNS does not sign.
			continue
		}
		if !supportedTypes[h.Rrtype] {
			return Data{}, invalid("%s: record type %s not supported (supported: A AAAA CNAME MX TXT SRV NS PTR CAA)", h.Name, typeString(h.Rrtype))
		}
		k := key{h.Name, h.Rrtype}
		i, ok := index[k]
		if !ok {
			i = len(d.Sets)
			index[k] = i
			d.Sets = append(d.Sets, RRSet{Name: h.Name, Type: h.Rrtype, TTL: h.Ttl})
		}
		set := &d.Sets[i]
		if h.Ttl < set.TTL {
			set.TTL = h.Ttl
		}
		if !containsDuplicate(set.RRs, rr) {
			set.RRs = append(set.RRs, rr)
		}
	}
	if err := zp.Err(); err != nil {
		if errors.Is(err, errTooLarge) {
			return Data{}, fmt.Errorf("%w: %v", ErrInvalid, errTooLarge)
		}
		return Data{}, invalid("zone file: %v", err)
	}
	if d.SOA == nil {
		return Data{}, invalid("zone file has no SOA record")
	}
	soaOwner := Canonical(d.SOA.Hdr.Name)
	if origin == "" {
		origin = soaOwner
	} else if soaOwner != origin {
		return Data{}, invalid("the SOA owner %s is not the zone apex %s", soaOwner, origin)
	}
	d.Origin = origin
	for _, set := range d.Sets {
		for _, rr := range set.RRs {
			rr.Header().Ttl = set.TTL
		}
	}
	if err := ValidateZone(d); err != nil {
		return Data{}, err
	}
	return d, nil
}

func containsDuplicate(rrs []dns.RR, rr dns.RR) bool {
	for _, x := range rrs {
		if dns.IsDuplicate(x, rr) {
			return true
		}
	}
	return false
}

// signatureTypes are DNSSEC records that ParseZoneFile drops, so that the
// export of a signed zone from another server imports as the unsigned zone
// FlashDNS serves.
var signatureTypes = map[uint16]bool{
	dns.TypeRRSIG: true, dns.TypeNSEC: true, dns.TypeNSEC3: true, dns.TypeNSEC3PARAM: true,
}

func typeString(t uint16) string {
	if s, ok := dns.TypeToString[t]; ok {
		return s
	}
	return fmt.Sprintf("TYPE%d", t)
}

// WriteZoneFile writes s as an RFC 1035 zone file that ParseZoneFile and NSD
// read back: $ORIGIN and (when defaultTTL is not 0) $TTL lines, the SOA,
// the apex NS records, then every other record with absolute names in
// canonical name order (each name's sets in node order, which NSD keeps,
// so NSD answers ANY like FlashDNS: moving the apex NS set ahead changes
// no ANY answer, since the SOA precedes both). A reverse zone's PTR
// pattern is noted in a comment only; it is not zone-file data.
func WriteZoneFile(w io.Writer, s *Snapshot, defaultTTL uint32) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "; zone %s serial %d, %d records\n", s.origin, s.soa.Serial, s.records)
	if s.rev != nil {
		fmt.Fprintf(bw, "; reverse zone: PTR records are synthesised from %q for addresses without one\n", s.rev.pattern)
	}
	fmt.Fprintf(bw, "$ORIGIN %s\n", s.origin)
	if defaultTTL != 0 {
		fmt.Fprintf(bw, "$TTL %d\n", defaultTTL)
	}
	axfr := s.AXFR()
	body := axfr[1 : len(axfr)-1] // the closing SOA is for transfers only
	isApexNS := func(rr dns.RR) bool {
		return rr.Header().Rrtype == dns.TypeNS && strings.EqualFold(rr.Header().Name, s.origin)
	}
	write := func(rr dns.RR) error {
		if _, err := bw.WriteString(rr.String()); err != nil {
			return fmt.Errorf("write zone file: %w", err)
		}
		if err := bw.WriteByte('\n'); err != nil {
			return fmt.Errorf("write zone file: %w", err)
		}
		return nil
	}
	if err := write(axfr[0]); err != nil {
		return err
	}
	for _, rr := range body {
		if isApexNS(rr) {
			if err := write(rr); err != nil {
				return err
			}
		}
	}
	for _, rr := range body {
		if !isApexNS(rr) {
			if err := write(rr); err != nil {
				return err
			}
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write zone file: %w", err)
	}
	return nil
}
