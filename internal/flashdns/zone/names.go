package zone

import (
	"fmt"
	"strings"

	"github.com/miekg/dns"
)

// Name limits of RFC 1035 §2.3.4, in wire octets.
const (
	maxLabelLen = 63
	maxNameLen  = 255
)

// Canonical returns name lower-cased and fully qualified, in the presentation
// form that github.com/miekg/dns produces when it unpacks a name from the wire.
// Names without backslash escapes (the normal case) are only lower-cased;
// escaped names go through the wire format once so that "\065" and "a" end up
// as the same map key.
func Canonical(name string) string {
	if name == "" {
		return "."
	}
	if strings.IndexByte(name, '\\') >= 0 {
		buf := make([]byte, maxNameLen+1)
		if n, err := dns.PackDomainName(dns.Fqdn(name), buf, 0, nil, false); err == nil {
			if s, _, err := dns.UnpackDomainName(buf[:n], 0); err == nil {
				name = s
			}
		}
	}
	if isLowerFQDN(name) {
		return name
	}
	return dns.CanonicalName(name)
}

// isLowerFQDN reports whether s is already canonical enough to be a map key:
// no upper-case ASCII and a trailing dot. It lets the query path skip the
// allocation of Canonical for the common, already lower-case qname.
func isLowerFQDN(s string) bool {
	if !dns.IsFqdn(s) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			return false
		}
	}
	return true
}

// queryKey canonicalises a qname for the lookup map without allocating when
// the name already is canonical.
func queryKey(qname string) string {
	if strings.IndexByte(qname, '\\') >= 0 {
		return Canonical(qname)
	}
	if isLowerFQDN(qname) {
		return qname
	}
	// Mixed case: lower-case in one allocation.
	var sb strings.Builder
	sb.Grow(len(qname) + 1)
	for i := 0; i < len(qname); i++ {
		c := qname[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		sb.WriteByte(c)
	}
	if !dns.IsFqdn(qname) {
		sb.WriteByte('.')
	}
	return sb.String()
}

// inZone reports whether the canonical name is origin or below it. Both must
// be canonical. The label boundary check keeps "badexample.com." out of
// "example.com.".
func inZone(name, origin string) bool {
	if origin == "." {
		return true
	}
	if len(name) < len(origin) || name[len(name)-len(origin):] != origin {
		return false
	}
	if len(name) == len(origin) {
		return true
	}
	i := len(name) - len(origin) - 1
	if name[i] != '.' {
		return false
	}
	// The dot must not be escaped ("a\.example.com." is one label "a.example").
	bs := 0
	for j := i - 1; j >= 0 && name[j] == '\\'; j-- {
		bs++
	}
	return bs%2 == 0
}

// parentName returns the name with its first label removed ("." for a single
// label name).
func parentName(name string) string {
	i, end := dns.NextLabel(name, 0)
	if end {
		return "."
	}
	return name[i:]
}

// labelKind selects the character rules of checkName.
type labelKind int

const (
	// ownerName: owner names. Letters, digits, '-', '_' (service labels such
	// as _sip._tcp or _dmarc) and '/' (RFC 2317 classless reverse
	// delegation); '*' only as the whole leftmost label (wildcard).
	ownerName labelKind = iota
	// hostName: targets that must be host names (MX, NS, SRV and SOA MNAME):
	// LDH labels of RFC 952/1123, no leading or trailing hyphen.
	hostName
	// aliasName: CNAME and PTR targets. Host name rules plus '_' because
	// aliases legitimately point at service names (_acme-challenge, DKIM,
	// DNS-SD).
	aliasName
)

// checkName validates the syntax and the length limits of a canonical,
// fully qualified name. It deliberately rejects backslash escapes: a tenant
// API has no use for them and they make names ambiguous to read.
func checkName(name string, kind labelKind) error {
	if name == "" || !dns.IsFqdn(name) {
		return fmt.Errorf("name %q is not fully qualified", name)
	}
	if name == "." {
		return fmt.Errorf("the root name is not allowed here")
	}
	wire := 1
	rest := name[:len(name)-1]
	for i := 0; rest != ""; i++ {
		l := rest
		if j := strings.IndexByte(rest, '.'); j >= 0 {
			l, rest = rest[:j], rest[j+1:]
			if rest == "" {
				return fmt.Errorf("name %q has an empty label", name)
			}
		} else {
			rest = ""
		}
		if l == "" {
			return fmt.Errorf("name %q has an empty label", name)
		}
		if len(l) > maxLabelLen {
			return fmt.Errorf("name %q: label %q is longer than %d octets", name, l, maxLabelLen)
		}
		wire += len(l) + 1
		if l == "*" {
			if kind != ownerName || i != 0 {
				return fmt.Errorf("name %q: '*' is only allowed as the leftmost label of an owner name", name)
			}
			continue
		}
		for j := 0; j < len(l); j++ {
			c := l[j]
			switch {
			case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-':
			case c == '_' && kind != hostName:
			case c == '/' && kind == ownerName:
			default:
				return fmt.Errorf("name %q: character %q not allowed in label %q", name, c, l)
			}
		}
		if kind != ownerName && (l[0] == '-' || l[len(l)-1] == '-') {
			return fmt.Errorf("name %q: label %q must not start or end with '-'", name, l)
		}
	}
	if wire > maxNameLen {
		return fmt.Errorf("name %q is longer than %d octets", name, maxNameLen)
	}
	return nil
}

// isWildcard reports whether the canonical name is a wildcard owner.
func isWildcard(name string) bool { return strings.HasPrefix(name, "*.") }
