package store

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/miekg/dns"
)

// Key prefixes; see the package comment for the layout.
const (
	rootPrefix    = "/flashdns/"
	zonesPrefix   = rootPrefix + "zones/"
	rrsetsPrefix  = rootPrefix + "rrsets/"
	journalPrefix = rootPrefix + "journal/"
	importsPrefix = rootPrefix + "imports/"
)

func zoneKey(id string) string { return zonesPrefix + id }

// zoneSetsPrefix covers every generation of a zone's record sets.
func zoneSetsPrefix(id string) string { return rrsetsPrefix + id + "/" }

func genPrefix(id, gen string) string { return rrsetsPrefix + id + "/" + gen + "/" }

func rrsetKey(id, gen string, k setKey) string {
	return genPrefix(id, gen) + k.name + "/" + typeString(k.typ)
}

func journalZonePrefix(id string) string { return journalPrefix + id + "/" }

// journalKey names an entry by the serial it leads to; %010d keeps the
// keys of one zone in serial order until the serial wraps, and the store
// orders entries by revision anyway.
func journalKey(id string, serial uint32) string {
	return fmt.Sprintf("%s%s/%010d", journalPrefix, id, serial)
}

func markerKey(id, gen string) string { return importsPrefix + id + "/" + gen }

// prefixEnd returns the end of the key range of every key starting with p.
func prefixEnd(p string) string {
	b := []byte(p)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1])
		}
	}
	return "\x00"
}

// parseSetKey splits /flashdns/rrsets/<id>/<gen>/<owner>/<TYPE>. The owner
// may contain '/' (RFC 2317 names), the zone id and the generation never
// do, so the type is after the last '/'.
func parseSetKey(key string) (id, gen string, k setKey, ok bool) {
	rest, ok := strings.CutPrefix(key, rrsetsPrefix)
	if !ok {
		return "", "", setKey{}, false
	}
	id, rest, ok1 := strings.Cut(rest, "/")
	gen, rest, ok2 := strings.Cut(rest, "/")
	i := strings.LastIndexByte(rest, '/')
	if !ok1 || !ok2 || i <= 0 {
		return "", "", setKey{}, false
	}
	t, ok := dns.StringToType[rest[i+1:]]
	if !ok {
		return "", "", setKey{}, false
	}
	return id, gen, setKey{name: rest[:i], typ: t}, true
}

// parseIDGen splits "<id>/<gen>" (the rest of a marker key).
func parseIDGen(rest string) (id, gen string, ok bool) {
	id, gen, ok = strings.Cut(rest, "/")
	return id, gen, ok && id != "" && gen != "" && !strings.Contains(gen, "/")
}

// newGen returns a fresh generation id: 64 random bits, so that a
// generation is never reused, not even by a zone deleted and created
// again while an abandoned import's keys are still being swept.
func newGen() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func typeString(t uint16) string {
	if s, ok := dns.TypeToString[t]; ok {
		return s
	}
	return "TYPE" + strconv.Itoa(int(t))
}

// Resource names.

// ParseParent validates a project name `orgs/{org}/projects/{project}`.
func ParseParent(s string) (string, error) {
	parts := strings.Split(s, "/")
	if len(parts) != 4 || parts[0] != "orgs" || parts[2] != "projects" {
		return "", invalidf("parent %q: want orgs/{org}/projects/{project}", clip(s))
	}
	if err := checkScopeID("org id", parts[1]); err != nil {
		return "", err
	}
	if err := checkScopeID("project id", parts[3]); err != nil {
		return "", err
	}
	return s, nil
}

// ParseZoneName splits `orgs/{org}/projects/{project}/zones/{zone}` into
// the project and the canonical zone id (lower case, no trailing dot),
// accepting the zone id in any case and with a trailing dot as the API
// promises.
func ParseZoneName(s string) (parent, id string, err error) {
	i := strings.LastIndex(s, "/zones/")
	if i < 0 {
		return "", "", invalidf("zone name %q: want orgs/{org}/projects/{project}/zones/{zone}", clip(s))
	}
	parent, err = ParseParent(s[:i])
	if err != nil {
		return "", "", invalidf("zone name %q: want orgs/{org}/projects/{project}/zones/{zone}", clip(s))
	}
	id, err = ZoneID(s[i+len("/zones/"):])
	if err != nil {
		return "", "", err
	}
	return parent, id, nil
}

// ZoneName returns the resource name of zone id in parent.
func ZoneName(parent, id string) string { return parent + "/zones/" + id }

// ZoneID validates a zone's DNS name (with or without the trailing dot, in
// any case) and returns its zone id: lower case without the trailing dot.
// A zone has at least two labels of letters, digits, '-' and '_'.
func ZoneID(name string) (string, error) {
	id := strings.TrimSuffix(strings.ToLower(name), ".")
	if id == "" {
		return "", invalidf("zone DNS name is empty")
	}
	if len(id) > 253 {
		return "", invalidf("zone DNS name %q is longer than 253 characters", clip(name))
	}
	labels := strings.Split(id, ".")
	if len(labels) < 2 {
		return "", invalidf("zone DNS name %q needs at least two labels", clip(name))
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 {
			return "", invalidf("zone DNS name %q: labels must be 1-63 characters", clip(name))
		}
		for i := 0; i < len(l); i++ {
			if c := l[i]; !isLower(c) && !isDigit(c) && c != '-' && c != '_' {
				return "", invalidf("zone DNS name %q: only letters, digits, '-' and '_' allowed in labels", clip(name))
			}
		}
	}
	return id, nil
}

// origin returns the fully qualified zone name of a zone id.
func origin(id string) string { return id + "." }

// ancestors returns the zone ids that would enclose id (at least two
// labels each), nearest first.
func ancestors(id string) []string {
	var out []string
	for {
		i := strings.IndexByte(id, '.')
		if i < 0 {
			return out
		}
		id = id[i+1:]
		if !strings.Contains(id, ".") {
			return out
		}
		out = append(out, id)
	}
}

func isLower(c byte) bool { return 'a' <= c && c <= 'z' }
func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// checkScopeID validates an org or project id as Aegis does: 1-63 of
// [a-z0-9-], starting with a letter, not ending with '-'.
func checkScopeID(what, s string) error {
	ok := len(s) >= 1 && len(s) <= 63 && isLower(s[0]) && s[len(s)-1] != '-'
	for i := 0; ok && i < len(s); i++ {
		c := s[i]
		ok = isLower(c) || isDigit(c) || c == '-'
	}
	if !ok {
		return invalidf("%s %q must be 1-63 of a-z, 0-9 and '-', starting with a letter", what, clip(s))
	}
	return nil
}

// hostName canonicalizes and checks an RFC 1123 host name (a name server,
// the SOA MNAME): labels of letters, digits and '-', not starting or
// ending with '-'. The trailing dot is optional on input.
func hostName(what, s string) (string, error) {
	n := strings.ToLower(strings.TrimSuffix(s, "."))
	if n == "" || len(n) > 253 {
		return "", invalidf("%s %q must be a host name of 1-253 characters", what, clip(s))
	}
	for l := range strings.SplitSeq(n, ".") {
		ok := len(l) >= 1 && len(l) <= 63 && l[0] != '-' && l[len(l)-1] != '-'
		for i := 0; ok && i < len(l); i++ {
			c := l[i]
			ok = isLower(c) || isDigit(c) || c == '-'
		}
		if !ok {
			return "", invalidf("%s %q is not a valid host name (RFC 1123)", what, clip(s))
		}
	}
	return n + ".", nil
}

// mailbox converts an SOA RNAME given in SOA form or as an e-mail address
// to SOA form, lower case and fully qualified.
func mailbox(s string) (string, error) {
	in := s
	s = strings.ToLower(strings.TrimSuffix(s, "."))
	if local, domain, ok := strings.Cut(s, "@"); ok {
		if local == "" || strings.ContainsAny(local, " \t\\@") || strings.Contains(domain, "@") {
			return "", invalidf("admin %q is not a valid e-mail address", clip(in))
		}
		s = strings.ReplaceAll(local, ".", `\.`) + "." + domain
	}
	if s == "" || len(s) > 253 {
		return "", invalidf("admin %q must be 1-253 characters", clip(in))
	}
	fq := s + "."
	if _, ok := dns.IsDomainName(fq); !ok {
		return "", invalidf("admin %q is not a valid mailbox name", clip(in))
	}
	// The first label is a local part and may hold more than a host name
	// label; the rest is the mail domain.
	first := firstLabelEnd(s)
	if first < 0 {
		return "", invalidf("admin %q needs a mail domain", clip(in))
	}
	if _, err := hostName("admin", s[first+1:]); err != nil {
		return "", err
	}
	return fq, nil
}

// firstLabelEnd returns the index of the first unescaped '.' of s, or -1.
func firstLabelEnd(s string) int {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '.':
			return i
		}
	}
	return -1
}

// Reverse zones.

// checkReverseCIDR parses a reverse zone's network: IPv4 /8, /16 or /24,
// IPv6 on a nibble boundary from /4 to /124, host bits zero, not an
// IPv4-mapped IPv6 prefix.
func checkReverseCIDR(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(strings.TrimSpace(s))
	if err != nil {
		return netip.Prefix{}, invalidf("reverse.cidr %q: %v", clip(s), err)
	}
	if p.Masked() != p {
		return netip.Prefix{}, invalidf("reverse.cidr %q has host bits set (did you mean %s?)", clip(s), p.Masked())
	}
	bits := p.Bits()
	if p.Addr().Is4() {
		if bits != 8 && bits != 16 && bits != 24 {
			return netip.Prefix{}, invalidf("reverse.cidr %q: an IPv4 reverse zone needs a /8, /16 or /24", clip(s))
		}
		return p, nil
	}
	if p.Addr().Is4In6() {
		return netip.Prefix{}, invalidf("reverse.cidr %q: IPv4-mapped IPv6 prefixes are not allowed", clip(s))
	}
	if bits%4 != 0 || bits < 4 || bits > 124 {
		return netip.Prefix{}, invalidf("reverse.cidr %q: an IPv6 reverse zone needs a prefix length that is a multiple of 4 from 4 to 124", clip(s))
	}
	return p, nil
}

// reverseName returns the reverse zone id of an allowed reverse network.
func reverseName(p netip.Prefix) string {
	var labels []string
	if p.Addr().Is4() {
		a := p.Addr().As4()
		for i := p.Bits()/8 - 1; i >= 0; i-- {
			labels = append(labels, strconv.Itoa(int(a[i])))
		}
		return strings.Join(labels, ".") + ".in-addr.arpa"
	}
	a := p.Addr().As16()
	for i := p.Bits()/4 - 1; i >= 0; i-- {
		b := a[i/2]
		if i%2 == 0 {
			b >>= 4
		}
		labels = append(labels, strconv.FormatUint(uint64(b&0xf), 16))
	}
	return strings.Join(labels, ".") + ".ip6.arpa"
}

// reverseCIDR is the inverse of reverseName: the network whose reverse
// zone id is id, ok false when id is not one.
func reverseCIDR(id string) (netip.Prefix, bool) {
	if rest, ok := strings.CutSuffix(id, ".in-addr.arpa"); ok {
		labels := strings.Split(rest, ".")
		if len(labels) > 3 {
			return netip.Prefix{}, false
		}
		var a [4]byte
		for i, l := range labels {
			n, err := strconv.Atoi(l)
			if err != nil || n < 0 || n > 255 || strconv.Itoa(n) != l {
				return netip.Prefix{}, false
			}
			a[len(labels)-1-i] = byte(n)
		}
		p := netip.PrefixFrom(netip.AddrFrom4(a), 8*len(labels))
		return p, p.Masked() == p
	}
	if rest, ok := strings.CutSuffix(id, ".ip6.arpa"); ok {
		labels := strings.Split(rest, ".")
		if len(labels) < 1 || len(labels) > 31 {
			return netip.Prefix{}, false
		}
		var a [16]byte
		for i, l := range labels {
			if len(l) != 1 {
				return netip.Prefix{}, false
			}
			n, err := strconv.ParseUint(l, 16, 8)
			if err != nil || l != strconv.FormatUint(n, 16) {
				return netip.Prefix{}, false
			}
			pos := len(labels) - 1 - i
			if pos%2 == 0 {
				a[pos/2] |= byte(n) << 4
			} else {
				a[pos/2] |= byte(n)
			}
		}
		p := netip.PrefixFrom(netip.AddrFrom16(a), 4*len(labels))
		if p.Addr().Is4In6() {
			return netip.Prefix{}, false
		}
		return p, true
	}
	return netip.Prefix{}, false
}
