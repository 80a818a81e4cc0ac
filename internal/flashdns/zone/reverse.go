package zone

import (
	"encoding/hex"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/miekg/dns"
)

// Reverse zones.
//
// A reverse zone covers a CIDR on a label boundary (IPv4 /8 /16 /24, IPv6 any
// multiple of 4 bits from /4 to /124). Every full address name in it, such as
// "5.2.0.192.in-addr.arpa.", exists: when the zone has no explicit PTR (and no
// CNAME) there, Lookup synthesises one from Reverse.Pattern. Consequences,
// chosen to behave like a zone that really holds every PTR:
//
//   - a full address name answers PTR (qtype PTR or ANY) and NODATA for other
//     types;
//   - a partial address name ("2.0.10.in-addr.arpa." in a /8 zone) is an
//     empty non-terminal: NODATA;
//   - anything else (label not a canonical octet/nibble such as "05" or
//     "x", too many labels) does not exist unless the zone has data for it:
//     NXDOMAIN or a wildcard answer. Wildcards never override synthesised
//     names, because those exist;
//   - names at or below a delegation in the zone get the referral, never a
//     synthesised PTR;
//   - AXFR/IXFR and WriteZoneFile carry only the explicit records: secondaries
//     (NSD, Knot) do not synthesise.
//
// Pattern placeholders (flashdns.v1 ReverseConfig documents them for users):
// {1}..{4} are the IPv4 octets in address order (192.0.2.5: {1}=192 ...
// {4}=5), {1}..{8} the IPv6 16-bit groups in lower-case hex without leading
// zeros; {ip} is the address with '.' or ':' replaced by '-', IPv6 in RFC
// 5952 form with a leading or trailing "::" first written "0::" or "::0"
// so that the name never starts or ends with '-' (2001:db8::1 ->
// 2001-db8--1); {hex} is the whole address in lower-case hex (8 or 32
// digits).
//
// The synthesised PTR has TTL Reverse.TTL, or the SOA record's TTL when
// Reverse.TTL is 0.

// ReverseOrigin returns the reverse zone name for p: "2.0.192.in-addr.arpa."
// for 192.0.2.0/24, nibble labels under "ip6.arpa." for IPv6. p must be
// masked and on a label boundary (see the reverse zone rules above).
func ReverseOrigin(p netip.Prefix) (string, error) {
	if !p.IsValid() {
		return "", invalid("invalid prefix")
	}
	if p.Masked() != p {
		return "", invalid("prefix %s has host bits set (use %s)", p, p.Masked())
	}
	bits := p.Bits()
	a := p.Addr()
	if a.Is4() {
		if bits != 8 && bits != 16 && bits != 24 {
			return "", invalid("IPv4 reverse zones must be /8, /16 or /24, not /%d", bits)
		}
		b := a.As4()
		var sb strings.Builder
		for i := bits/8 - 1; i >= 0; i-- {
			sb.WriteString(strconv.Itoa(int(b[i])))
			sb.WriteByte('.')
		}
		sb.WriteString("in-addr.arpa.")
		return sb.String(), nil
	}
	if a.Is4In6() || a.Zone() != "" {
		return "", invalid("prefix %s: use a plain IPv4 or IPv6 prefix", p)
	}
	if bits%4 != 0 || bits < 4 || bits > 124 {
		return "", invalid("IPv6 reverse zones must be on a nibble boundary between /4 and /124, not /%d", bits)
	}
	b := a.As16()
	var sb strings.Builder
	for i := bits/4 - 1; i >= 0; i-- {
		sb.WriteByte(nibble(b, i))
		sb.WriteByte('.')
	}
	sb.WriteString("ip6.arpa.")
	return sb.String(), nil
}

const hexDigits = "0123456789abcdef"

// nibble returns the i-th hex digit (0 = most significant) of b.
func nibble(b [16]byte, i int) byte {
	v := b[i/2]
	if i%2 == 0 {
		v >>= 4
	}
	return hexDigits[v&0xf]
}

func validateReverse(origin string, r *Reverse) error {
	want, err := ReverseOrigin(r.Prefix)
	if err != nil {
		return err
	}
	if want != origin {
		return invalid("reverse prefix %s belongs to zone %s, not %s", r.Prefix, want, origin)
	}
	if r.TTL > MaxTTL {
		return invalid("reverse TTL %d is above the maximum %d", r.TTL, MaxTTL)
	}
	return validatePattern(r.Prefix.Addr().Is4(), r.Pattern)
}

// validatePattern checks the placeholders and that the longest possible
// expansion is a valid host name.
func validatePattern(v4 bool, pattern string) error {
	if pattern == "" {
		return invalid("reverse pattern is empty")
	}
	if !dns.IsFqdn(pattern) {
		return invalid("reverse pattern %q is not fully qualified (add the trailing dot)", pattern)
	}
	var probe netip.Addr
	if v4 {
		probe = netip.MustParseAddr("255.255.255.255")
	} else {
		probe = netip.MustParseAddr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")
	}
	name, err := expandPattern(strings.ToLower(pattern), probe)
	if err != nil {
		return err
	}
	if err := checkName(name, hostName); err != nil {
		return invalid("reverse pattern %q: %v", pattern, err)
	}
	return nil
}

// expandPattern substitutes the placeholders of pattern for address a.
func expandPattern(pattern string, a netip.Addr) (string, error) {
	var sb strings.Builder
	sb.Grow(len(pattern) + 32)
	for i := 0; i < len(pattern); {
		c := pattern[i]
		if c != '{' {
			sb.WriteByte(c)
			i++
			continue
		}
		j := strings.IndexByte(pattern[i:], '}')
		if j < 0 {
			return "", invalid("reverse pattern %q: unterminated '{'", pattern)
		}
		ph := pattern[i+1 : i+j]
		i += j + 1
		switch ph {
		case "ip":
			if a.Is4() {
				b := a.As4()
				for k := 0; k < 4; k++ {
					if k > 0 {
						sb.WriteByte('-')
					}
					sb.WriteString(strconv.Itoa(int(b[k])))
				}
				break
			}
			v6 := a.String()
			if strings.HasPrefix(v6, "::") {
				v6 = "0" + v6
			}
			if strings.HasSuffix(v6, "::") {
				v6 += "0"
			}
			sb.WriteString(strings.ReplaceAll(v6, ":", "-"))
		case "hex":
			sb.WriteString(hex.EncodeToString(a.AsSlice()))
		case "1", "2", "3", "4", "5", "6", "7", "8":
			k := int(ph[0] - '1')
			if a.Is4() {
				if k > 3 {
					return "", invalid("reverse pattern %q: {%s} is only defined for IPv6 (IPv4 has {1} to {4})", pattern, ph)
				}
				sb.WriteString(strconv.Itoa(int(a.As4()[k])))
				break
			}
			b := a.As16()
			sb.WriteString(strconv.FormatUint(uint64(b[2*k])<<8|uint64(b[2*k+1]), 16))
		default:
			return "", invalid("reverse pattern %q: unknown placeholder {%s} (known: {1} to {4} for IPv4, {1} to {8} for IPv6, {ip}, {hex})", pattern, ph)
		}
	}
	return sb.String(), nil
}

// reverseSynth is the precomputed form of Reverse used by Lookup.
type reverseSynth struct {
	v4      bool
	prefix  [16]byte // network address (first 4 bytes for IPv4)
	fixed   int      // labels fixed by the origin (octets or nibbles)
	total   int      // labels of a full address (4 or 32)
	pattern string   // lower-cased
	ttl     uint32
	origin  string
	labels  int // labels of origin
}

// revKind classifies a name inside a reverse zone.
type revKind int

const (
	revNone    revKind = iota // not an address name
	revPartial                // proper prefix of address names: an empty non-terminal
	revFull                   // a full address: has a (synthesised) PTR
)

func newReverseSynth(origin string, r *Reverse, soaTTL uint32) *reverseSynth {
	rs := &reverseSynth{
		v4:      r.Prefix.Addr().Is4(),
		pattern: strings.ToLower(r.Pattern),
		ttl:     r.TTL,
		origin:  origin,
		labels:  dns.CountLabel(origin),
	}
	if rs.ttl == 0 {
		rs.ttl = soaTTL
	}
	if rs.v4 {
		b := r.Prefix.Addr().As4()
		copy(rs.prefix[:], b[:])
		rs.fixed, rs.total = r.Prefix.Bits()/8, 4
	} else {
		rs.prefix = r.Prefix.Addr().As16()
		rs.fixed, rs.total = r.Prefix.Bits()/4, 32
	}
	return rs
}

// classify looks at the labels left of the origin in the canonical name and
// returns what the name is, the address for revFull, and depth: how many
// labels next to the origin are valid address labels. Those names exist
// (synthesised), so for a revNone name the deepest of them is a closest
// encloser candidate: a wildcard above it must not apply.
func (rs *reverseSynth) classify(name string) (kind revKind, a netip.Addr, depth int) {
	if len(name) <= len(rs.origin) {
		return revNone, netip.Addr{}, 0
	}
	rel := name[:len(name)-len(rs.origin)-1] // without ".origin"
	addr := rs.prefix
	// Labels are read right to left: the one next to the origin is the most
	// significant remaining octet or nibble.
	pos := rs.fixed
	end := len(rel)
	for end > 0 {
		start := strings.LastIndexByte(rel[:end], '.') + 1
		label := rel[start:end]
		if pos >= rs.total {
			return revNone, netip.Addr{}, depth
		}
		if rs.v4 {
			v, ok := parseOctet(label)
			if !ok {
				return revNone, netip.Addr{}, depth
			}
			addr[pos] = v
		} else {
			if len(label) != 1 {
				return revNone, netip.Addr{}, depth
			}
			v := strings.IndexByte(hexDigits, label[0])
			if v < 0 {
				return revNone, netip.Addr{}, depth
			}
			if pos%2 == 0 {
				addr[pos/2] = addr[pos/2]&0x0f | byte(v)<<4
			} else {
				addr[pos/2] = addr[pos/2]&0xf0 | byte(v)
			}
		}
		pos++
		depth++
		if start == 0 {
			break
		}
		end = start - 1
	}
	if pos < rs.total {
		return revPartial, netip.Addr{}, depth
	}
	if rs.v4 {
		return revFull, netip.AddrFrom4([4]byte{addr[0], addr[1], addr[2], addr[3]}), depth
	}
	return revFull, netip.AddrFrom16(addr), depth
}

// parseOctet accepts the canonical decimal spelling of 0..255 only ("05" is
// not an address label, so it does not exist).
func parseOctet(s string) (byte, bool) {
	if len(s) == 0 || len(s) > 3 || len(s) > 1 && s[0] == '0' {
		return 0, false
	}
	v := 0
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return 0, false
		}
		v = v*10 + int(s[i]-'0')
	}
	if v > 255 {
		return 0, false
	}
	return byte(v), true
}

// blocksWildcard reports whether a synthesised ancestor of a non-address
// name is a closer encloser than the existing node ce.
func (rs *reverseSynth) blocksWildcard(depth int, ce *node) bool {
	return depth > dns.CountLabel(ce.name)-rs.labels
}

// ptr builds the synthesised PTR record for owner.
func (rs *reverseSynth) ptr(owner string, a netip.Addr) dns.RR {
	target, err := expandPattern(rs.pattern, a)
	if err != nil {
		// The pattern was validated by Build; this cannot happen.
		panic(fmt.Sprintf("zone: reverse pattern %q: %v", rs.pattern, err))
	}
	return &dns.PTR{
		Hdr: dns.RR_Header{Name: owner, Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: rs.ttl},
		Ptr: target,
	}
}
