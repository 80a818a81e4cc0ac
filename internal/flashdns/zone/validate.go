package zone

import (
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// Validation limits. They are exported so that the API layer can document
// them; changing them changes what the API accepts.
const (
	// MaxTTL is the largest TTL accepted: RFC 2181 §8 makes TTLs 31-bit
	// values. 0 is allowed (answers are not cached).
	MaxTTL = 1<<31 - 1
	// MaxRecordsPerSet bounds one RRset; it keeps a single set from
	// producing answers that do not fit even a TCP message.
	MaxRecordsPerSet = 1000
	// maxTXTString is the length limit of one TXT character-string.
	maxTXTString = 255
	// maxRdata is the RDLENGTH limit of one record.
	maxRdata = 65535
)

// supportedTypes are the record types a zone may hold. SOA is managed: it
// lives in Data.SOA, never in Data.Sets.
var supportedTypes = map[uint16]bool{
	dns.TypeA: true, dns.TypeAAAA: true, dns.TypeCNAME: true, dns.TypeMX: true,
	dns.TypeTXT: true, dns.TypeSRV: true, dns.TypeNS: true, dns.TypePTR: true,
	dns.TypeCAA: true,
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// ValidateSet checks one record set of the zone origin on its own: owner
// syntax and zone membership, type, TTL bounds, record contents (target host
// names, TXT string lengths, ...) and duplicates. Rules that involve several
// sets (CNAME exclusivity, delegations) are checked by ValidateZone. The
// error wraps ErrInvalid.
func ValidateSet(origin string, set RRSet) error {
	origin = Canonical(origin)
	name := Canonical(set.Name)
	tname := dns.TypeToString[set.Type]
	if tname == "" {
		tname = fmt.Sprintf("TYPE%d", set.Type)
	}
	if err := checkName(name, ownerName); err != nil {
		return invalid("%s %s: %v", set.Name, tname, err)
	}
	if !inZone(name, origin) {
		return invalid("%s %s: owner is outside the zone %s", name, tname, origin)
	}
	if set.Type == dns.TypeSOA {
		return invalid("%s SOA: the SOA record is managed with the zone, not as a record set", name)
	}
	if !supportedTypes[set.Type] {
		return invalid("%s %s: record type not supported (supported: A AAAA CNAME MX TXT SRV NS PTR CAA)", name, tname)
	}
	if set.TTL > MaxTTL {
		return invalid("%s %s: TTL %d is above the maximum %d", name, tname, set.TTL, MaxTTL)
	}
	if len(set.RRs) == 0 {
		return invalid("%s %s: record set has no records", name, tname)
	}
	if len(set.RRs) > MaxRecordsPerSet {
		return invalid("%s %s: %d records, at most %d per set", name, tname, len(set.RRs), MaxRecordsPerSet)
	}
	if set.Type == dns.TypeCNAME {
		if name == origin {
			return invalid("%s CNAME: a CNAME is not allowed at the zone apex", name)
		}
		if len(set.RRs) != 1 {
			return invalid("%s CNAME: a CNAME set must hold exactly one record", name)
		}
	}
	if set.Type == dns.TypeNS && isWildcard(name) {
		return invalid("%s NS: NS records are not allowed at a wildcard owner", name)
	}
	for i, rr := range set.RRs {
		if rr == nil {
			return invalid("%s %s: record %d is nil", name, tname, i)
		}
		h := rr.Header()
		if h.Rrtype != set.Type {
			return invalid("%s %s: record %d has type %s", name, tname, i, typeString(h.Rrtype))
		}
		if !typeMatches(rr, set.Type) {
			return invalid("%s %s: record %d is a %T, not a %s record", name, tname, i, rr, tname)
		}
		if Canonical(h.Name) != name {
			return invalid("%s %s: record %d has owner %s", name, tname, i, h.Name)
		}
		if h.Class != dns.ClassINET && h.Class != 0 {
			return invalid("%s %s: record %d has class %s, only IN is served", name, tname, i, dns.ClassToString[h.Class])
		}
		if err := checkRdata(rr); err != nil {
			return invalid("%s %s: %v", name, tname, err)
		}
		if l := dns.Len(rr) - headerLen(rr); l > maxRdata {
			return invalid("%s %s: record data is %d octets, the limit is %d", name, tname, l, maxRdata)
		}
	}
	if set.Type == dns.TypeMX || set.Type == dns.TypeSRV {
		// RFC 7505 null MX (and the SRV "service not available" target)
		// must be the only record of the set.
		for _, rr := range set.RRs {
			if rdataTarget(rr) != "." {
				continue
			}
			if len(set.RRs) > 1 {
				return invalid("%s %s: the target \".\" must be the only record of the set", name, tname)
			}
			if mx, ok := rr.(*dns.MX); ok && mx.Preference != 0 {
				return invalid("%s %s: a null MX (target \".\") has preference 0 (RFC 7505), got %d", name, tname, mx.Preference)
			}
		}
	}
	if dup := findDuplicate(set.RRs); dup != nil {
		return invalid("%s %s: duplicate record %q", name, tname, rdataString(dup))
	}
	return nil
}

// typeMatches guards against a record whose header says one type while the Go
// type is another (a hand-built RR with a wrong Rrtype).
func typeMatches(rr dns.RR, t uint16) bool {
	switch rr.(type) {
	case *dns.A:
		return t == dns.TypeA
	case *dns.AAAA:
		return t == dns.TypeAAAA
	case *dns.CNAME:
		return t == dns.TypeCNAME
	case *dns.MX:
		return t == dns.TypeMX
	case *dns.TXT:
		return t == dns.TypeTXT
	case *dns.SRV:
		return t == dns.TypeSRV
	case *dns.NS:
		return t == dns.TypeNS
	case *dns.PTR:
		return t == dns.TypePTR
	case *dns.CAA:
		return t == dns.TypeCAA
	case *dns.SOA:
		return t == dns.TypeSOA
	}
	return false
}

func headerLen(rr dns.RR) int {
	h := rr.Header()
	return len(h.Name) + 1 + 10
}

// rdataTarget returns the domain name in the record data of the types that
// have one ("" for the others).
func rdataTarget(rr dns.RR) string {
	switch v := rr.(type) {
	case *dns.CNAME:
		return v.Target
	case *dns.MX:
		return v.Mx
	case *dns.NS:
		return v.Ns
	case *dns.PTR:
		return v.Ptr
	case *dns.SRV:
		return v.Target
	}
	return ""
}

// checkTarget validates a record's target name. Targets must be written fully
// qualified: a relative name in an API call is almost always a mistake.
func checkTarget(what, target string, kind labelKind, rootOK bool) error {
	if !dns.IsFqdn(target) {
		return fmt.Errorf("%s %q is not fully qualified (add the trailing dot)", what, target)
	}
	t := Canonical(target)
	if t == "." {
		if rootOK {
			return nil
		}
		return fmt.Errorf("%s must not be the root name", what)
	}
	if err := checkName(t, kind); err != nil {
		return fmt.Errorf("%s: %v", what, err)
	}
	return nil
}

func checkRdata(rr dns.RR) error {
	switch v := rr.(type) {
	case *dns.A:
		if v.A.To4() == nil {
			return fmt.Errorf("an A record needs an IPv4 address, got %v", v.A)
		}
	case *dns.AAAA:
		if len(v.AAAA) != net.IPv6len {
			return fmt.Errorf("AAAA record needs an IPv6 address, got %v", v.AAAA)
		}
	case *dns.CNAME:
		if err := checkTarget("CNAME target", v.Target, aliasName, false); err != nil {
			return err
		}
		if Canonical(v.Target) == Canonical(v.Hdr.Name) {
			return fmt.Errorf("CNAME points to itself")
		}
	case *dns.MX:
		return checkTarget("MX exchange", v.Mx, hostName, true)
	case *dns.NS:
		return checkTarget("NS target", v.Ns, hostName, false)
	case *dns.PTR:
		return checkTarget("PTR target", v.Ptr, aliasName, false)
	case *dns.SRV:
		return checkTarget("SRV target", v.Target, hostName, true)
	case *dns.TXT:
		if len(v.Txt) == 0 {
			return fmt.Errorf("TXT record has no strings")
		}
		for _, s := range v.Txt {
			if n := txtLen(s); n > maxTXTString {
				return fmt.Errorf("TXT string of %d octets, the limit is %d", n, maxTXTString)
			}
		}
	case *dns.CAA:
		// Flags is one octet (RFC 8659 §4.1): only bit 128 (critical)
		// has a meaning today, the others are reserved but valid data.
		if v.Tag == "" || len(v.Tag) > 15 {
			return fmt.Errorf("CAA tag must be 1 to 15 characters, got %q", v.Tag)
		}
		for i := 0; i < len(v.Tag); i++ {
			c := v.Tag[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
				return fmt.Errorf("CAA tag %q must be letters and digits", v.Tag)
			}
		}
	default:
		return fmt.Errorf("record type %s not supported", dns.TypeToString[rr.Header().Rrtype])
	}
	return nil
}

// txtLen returns the wire length of one TXT string as miekg/dns stores it:
// presentation escapes ("\"", "\\", "\DDD") count as one octet.
func txtLen(s string) int {
	n := 0
	for i := 0; i < len(s); {
		if s[i] == '\\' && i+1 < len(s) {
			if i+3 < len(s) && isDigit(s[i+1]) && isDigit(s[i+2]) && isDigit(s[i+3]) {
				i += 4
			} else {
				i += 2
			}
		} else {
			i++
		}
		n++
	}
	return n
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// rdataString is the presentation form of the record data, the header
// stripped. With canonical (lower-case) target names it is a duplicate key:
// two records of one set are the same exactly when these strings match.
func rdataString(rr dns.RR) string {
	return strings.TrimPrefix(rr.String(), rr.Header().String())
}

// findDuplicate returns a record that occurs twice in rrs (domain names in
// the data compared case-insensitively), nil if none.
func findDuplicate(rrs []dns.RR) dns.RR {
	if len(rrs) < 2 {
		return nil
	}
	if len(rrs) <= 16 {
		for i := 1; i < len(rrs); i++ {
			for j := 0; j < i; j++ {
				if dns.IsDuplicate(rrs[i], rrs[j]) {
					return rrs[i]
				}
			}
		}
		return nil
	}
	// Large sets: a map on the canonical data avoids the quadratic scan.
	seen := make(map[string]struct{}, len(rrs))
	for _, rr := range rrs {
		k := dupKey(rr)
		if _, ok := seen[k]; ok {
			return rr
		}
		seen[k] = struct{}{}
	}
	return nil
}

func dupKey(rr dns.RR) string {
	k := rdataString(rr)
	if t := rdataTarget(rr); t != "" {
		// Only the target is a domain name; lower-case just that part.
		k = strings.Replace(k, t, Canonical(t), 1)
	}
	return k
}

// ValidateZone checks a whole zone: the origin, the SOA, every set
// (ValidateSet), and the rules between sets:
//
//   - one set per owner and type;
//   - CNAME exclusivity: an owner with a CNAME has no other set (and, with
//     the SOA and NS there, never the apex);
//   - delegations: an NS set below the apex is a zone cut. At the cut only NS
//     and glue (A/AAAA, for "sub NS sub." style delegations) may exist;
//     below it only glue A/AAAA. A second cut below a cut, wildcards at or
//     below a cut and any other type there are errors, because the data
//     would be occluded: it is never answered (referrals are) and it only
//     hides mistakes;
//   - Reverse: the prefix is a reverse zone boundary and names this origin,
//     the pattern is valid.
//
// The apex NS set is not required: the store creates it with the zone, and a
// zone without one still answers (without NS in authority sections).
func ValidateZone(d Data) error {
	if d.Origin == "" {
		return invalid("zone origin is empty")
	}
	origin := Canonical(d.Origin)
	if err := checkName(origin, ownerName); err != nil {
		return invalid("zone origin: %v", err)
	}
	if isWildcard(origin) {
		return invalid("zone origin %s must not be a wildcard", origin)
	}
	if err := validateSOA(origin, d.SOA); err != nil {
		return err
	}
	// types maps each owner to the set of its types (a bit per supported
	// type): one small value per name instead of a slice keeps this cheap
	// for zones of 100k names.
	types := make(map[string]typeSet, len(d.Sets))
	for _, set := range d.Sets {
		if err := ValidateSet(origin, set); err != nil {
			return err
		}
		name := Canonical(set.Name)
		ts := types[name]
		if ts.has(set.Type) {
			return invalid("%s %s: more than one record set with this owner and type", name, dns.TypeToString[set.Type])
		}
		ts = ts.with(set.Type)
		if ts.has(dns.TypeCNAME) && ts != typeSet(0).with(dns.TypeCNAME) {
			return invalid("%s: a CNAME cannot coexist with other records at the same name", name)
		}
		types[name] = ts
	}
	if err := checkCuts(origin, types); err != nil {
		return err
	}
	if d.Reverse != nil {
		if err := validateReverse(origin, d.Reverse); err != nil {
			return err
		}
	}
	for i, diff := range d.Journal {
		for _, rr := range diff.Deleted {
			if rr == nil {
				return invalid("journal entry %d: nil record", i)
			}
		}
		for _, rr := range diff.Added {
			if rr == nil {
				return invalid("journal entry %d: nil record", i)
			}
		}
	}
	return nil
}

func validateSOA(origin string, soa *dns.SOA) error {
	if soa == nil {
		return invalid("zone %s has no SOA", origin)
	}
	if Canonical(soa.Hdr.Name) != origin {
		return invalid("SOA owner %s is not the zone apex %s", soa.Hdr.Name, origin)
	}
	if soa.Hdr.Class != dns.ClassINET && soa.Hdr.Class != 0 {
		return invalid("SOA class %s, only IN is served", dns.ClassToString[soa.Hdr.Class])
	}
	if soa.Hdr.Ttl > MaxTTL {
		return invalid("SOA TTL %d is above the maximum %d", soa.Hdr.Ttl, MaxTTL)
	}
	if err := checkTarget("SOA MNAME", soa.Ns, hostName, false); err != nil {
		return invalid("%v", err)
	}
	// RNAME is a mailbox: its first label may hold any character (escaped
	// dots included), so only general domain-name syntax is required.
	if !dns.IsFqdn(soa.Mbox) {
		return invalid("SOA RNAME %q is not fully qualified", soa.Mbox)
	}
	if _, ok := dns.IsDomainName(soa.Mbox); !ok || soa.Mbox == "." {
		return invalid("SOA RNAME %q is not a valid mailbox name", soa.Mbox)
	}
	if soa.Minttl > MaxTTL {
		return invalid("SOA minimum %d is above the maximum TTL %d", soa.Minttl, MaxTTL)
	}
	return nil
}

// typeSet is a bit set of the supported types.
type typeSet uint16

// typeBit returns the bit of a supported type (0 for others).
func typeBit(t uint16) typeSet {
	switch t {
	case dns.TypeA:
		return 1 << 0
	case dns.TypeAAAA:
		return 1 << 1
	case dns.TypeCNAME:
		return 1 << 2
	case dns.TypeMX:
		return 1 << 3
	case dns.TypeTXT:
		return 1 << 4
	case dns.TypeSRV:
		return 1 << 5
	case dns.TypeNS:
		return 1 << 6
	case dns.TypePTR:
		return 1 << 7
	case dns.TypeCAA:
		return 1 << 8
	}
	return 0
}

func (s typeSet) has(t uint16) bool     { return s&typeBit(t) != 0 }
func (s typeSet) with(t uint16) typeSet { return s | typeBit(t) }
func (s typeSet) only(ts ...uint16) bool {
	var allowed typeSet
	for _, t := range ts {
		allowed = allowed.with(t)
	}
	return s&^allowed == 0
}

// first returns one type of s outside allowed, for error messages.
func (s typeSet) firstOutside(allowed ...uint16) uint16 {
	for t := range supportedTypes {
		if s.has(t) && !slices.Contains(allowed, t) {
			return t
		}
	}
	return 0
}

// checkCuts enforces the delegation rule documented on ValidateZone.
func checkCuts(origin string, types map[string]typeSet) error {
	isCut := func(name string) bool {
		return name != origin && types[name].has(dns.TypeNS)
	}
	for name, ts := range types {
		// Find the highest cut strictly above name.
		var above string
		for p := parentName(name); p != origin && inZone(p, origin); p = parentName(p) {
			if isCut(p) {
				above = p
			}
		}
		if above != "" {
			if isWildcard(name) {
				return invalid("%s: wildcard below the delegation %s", name, above)
			}
			if !ts.only(dns.TypeA, dns.TypeAAAA) {
				return invalid("%s %s: only glue (A/AAAA) is allowed below the delegation %s", name,
					dns.TypeToString[ts.firstOutside(dns.TypeA, dns.TypeAAAA)], above)
			}
			continue
		}
		if isCut(name) && !ts.only(dns.TypeNS, dns.TypeA, dns.TypeAAAA) {
			return invalid("%s %s: only NS and glue (A/AAAA) are allowed at a delegation point", name,
				dns.TypeToString[ts.firstOutside(dns.TypeNS, dns.TypeA, dns.TypeAAAA)])
		}
	}
	return nil
}
