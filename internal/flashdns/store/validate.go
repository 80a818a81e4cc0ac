package store

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/miekg/dns"

	flashdnsv1 "github.com/photoncloud/photoncloud/api/flashdns/v1"
)

// Zone defaults (zones.proto).
const (
	defaultRefresh     = 3600
	defaultRetry       = 600
	defaultExpire      = 1209600
	defaultNegativeTTL = 300
	defaultTTL         = 3600
)

// normalizeZone fills the defaults of a zone's mutable fields (a zero value
// means "the default", on create and on update), canonicalizes names and
// checks every field. dns_name, name and reverse.cidr must already be set
// and valid.
func (s *Store) normalizeZone(z *flashdnsv1.Zone) error {
	id := strings.TrimSuffix(z.GetDnsName(), ".")
	if len(z.Nameservers) == 0 {
		z.Nameservers = slices.Clone(s.opts.DefaultNameservers)
	}
	if len(z.Nameservers) == 0 {
		return invalidf("nameservers: the zone needs at least one name server (and the server has no default)")
	}
	ns, err := checkNameservers(z.Nameservers)
	if err != nil {
		return err
	}
	z.Nameservers = ns
	if z.PrimaryNs == "" {
		z.PrimaryNs = ns[0]
	}
	if z.PrimaryNs, err = hostName("primary_ns", z.PrimaryNs); err != nil {
		return err
	}
	if z.Admin == "" {
		z.Admin = "hostmaster." + id + "."
	}
	if z.Admin, err = mailbox(z.Admin); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		v    *uint32
		def  uint32
	}{
		{"refresh", &z.Refresh, defaultRefresh},
		{"retry", &z.Retry, defaultRetry},
		{"expire", &z.Expire, defaultExpire},
		{"negative_ttl", &z.NegativeTtl, defaultNegativeTTL},
		{"default_ttl", &z.DefaultTtl, defaultTTL},
	} {
		if *f.v == 0 {
			*f.v = f.def
		}
		if *f.v > maxTTL {
			return invalidf("%s %d is larger than %d", f.name, *f.v, maxTTL)
		}
	}
	if z.Enabled == nil {
		t := true
		z.Enabled = &t
	}
	if err := checkLabels(z.Labels); err != nil {
		return err
	}
	z.Kind = flashdnsv1.Zone_KIND_FORWARD
	if r := z.GetReverse(); r != nil {
		z.Kind = flashdnsv1.Zone_KIND_REVERSE
		p, err := netip.ParsePrefix(r.GetCidr())
		if err != nil {
			return invalidf("reverse.cidr %q: %v", clip(r.GetCidr()), err)
		}
		if r.PtrPattern != "" {
			if r.PtrPattern, err = checkPattern(p, r.PtrPattern); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkNameservers canonicalizes a zone's name servers: 1 to 16 host
// names, no duplicates.
func checkNameservers(in []string) ([]string, error) {
	if len(in) == 0 {
		return nil, invalidf("nameservers: at least one name server is required")
	}
	if len(in) > maxNameservers {
		return nil, invalidf("nameservers: %d name servers, more than %d", len(in), maxNameservers)
	}
	out := make([]string, 0, len(in))
	for _, n := range in {
		h, err := hostName("name server", n)
		if err != nil {
			return nil, err
		}
		if slices.Contains(out, h) {
			return nil, invalidf("nameservers: %s is listed twice", h)
		}
		out = append(out, h)
	}
	return out, nil
}

// checkLabels enforces Aegis's label rules: at most 64; keys
// [a-z][a-z0-9_.-]{0,62}; values at most 256 characters.
func checkLabels(m map[string]string) error {
	if len(m) > maxLabels {
		return invalidf("%d labels, more than %d", len(m), maxLabels)
	}
	for k, v := range m {
		ok := len(k) >= 1 && len(k) <= 63 && isLower(k[0])
		for i := 1; ok && i < len(k); i++ {
			c := k[i]
			ok = isLower(c) || isDigit(c) || c == '_' || c == '.' || c == '-'
		}
		if !ok {
			return invalidf("label key %q must match [a-z][a-z0-9_.-]{0,62}", clip(k))
		}
		if !utf8.ValidString(v) || utf8.RuneCountInString(v) > maxLabelValue {
			return invalidf("label %s: the value must be valid UTF-8 of at most %d characters", k, maxLabelValue)
		}
	}
	return nil
}

// checkPattern validates a PTR pattern for network p (see ReverseConfig in
// zones.proto) and returns it fully qualified: only the known
// placeholders, and the expansions for the network's first and last
// addresses must be host names.
func checkPattern(p netip.Prefix, pattern string) (string, error) {
	pat := strings.ToLower(strings.TrimSpace(pattern))
	if !strings.HasSuffix(pat, ".") {
		pat += "."
	}
	first := p.Masked().Addr()
	last := lastAddr(p)
	for _, a := range []netip.Addr{first, last} {
		name, err := expandPattern(pat, a)
		if err != nil {
			return "", invalidf("reverse.ptr_pattern %q: %v", clip(pattern), err)
		}
		if _, err := hostName("reverse.ptr_pattern expansion", name); err != nil {
			return "", invalidf("reverse.ptr_pattern %q gives %q for %s, not a valid host name", clip(pattern), clip(name), a)
		}
	}
	return pat, nil
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// expandPattern expands a PTR pattern for address a (for validation; the
// DNS answers are computed by package zone).
func expandPattern(pat string, a netip.Addr) (string, error) {
	var b strings.Builder
	for {
		i := strings.IndexAny(pat, "{}")
		if i < 0 {
			b.WriteString(pat)
			return b.String(), nil
		}
		if pat[i] == '}' {
			return "", errorString("'}' without '{'")
		}
		b.WriteString(pat[:i])
		j := strings.IndexByte(pat[i:], '}')
		if j < 0 {
			return "", errorString("'{' without '}'")
		}
		ph := pat[i+1 : i+j]
		pat = pat[i+j+1:]
		switch {
		case ph == "ip":
			b.WriteString(ipDashed(a))
		case ph == "hex":
			for _, x := range a.AsSlice() {
				b.WriteString(strconv.FormatUint(uint64(x)>>4, 16))
				b.WriteString(strconv.FormatUint(uint64(x)&0xf, 16))
			}
		default:
			n, err := strconv.Atoi(ph)
			parts := 4
			if a.Is6() {
				parts = 8
			}
			if err != nil || n < 1 || n > parts || strconv.Itoa(n) != ph {
				return "", errorString("unknown placeholder {" + ph + "}")
			}
			s := a.AsSlice()
			if a.Is4() {
				b.WriteString(strconv.Itoa(int(s[n-1])))
			} else {
				b.WriteString(strconv.FormatUint(uint64(s[2*(n-1)])<<8|uint64(s[2*(n-1)+1]), 16))
			}
		}
	}
}

// ipDashed is the {ip} placeholder: '.' or ':' replaced by '-', with a
// leading or trailing "::" written "0::" or "::0".
func ipDashed(a netip.Addr) string {
	s := a.String()
	if a.Is6() {
		if strings.HasPrefix(s, "::") {
			s = "0" + s
		}
		if strings.HasSuffix(s, "::") {
			s += "0"
		}
	}
	return strings.NewReplacer(".", "-", ":", "-").Replace(s)
}

type errorString string

func (e errorString) Error() string { return string(e) }

// parseOwner expands a record set's owner name against zone origin (a
// relative name, "@" or a fully qualified name) and checks it: inside the
// zone, labels of letters, digits, '-', '_' and '/', a wildcard only as the
// first label. strict refuses a relative name that repeats the zone name
// ("www.example.com" without the dot in example.com), which is almost
// certainly a forgotten dot.
func parseOwner(orig, name string, strict bool) (string, error) {
	in := name
	name = strings.ToLower(strings.TrimSpace(name))
	id := strings.TrimSuffix(orig, ".")
	switch {
	case name == "":
		return "", invalidf("record set name is empty")
	case name == "@":
		name = orig
	case strings.HasSuffix(name, "."):
	default:
		if strict && (name == id || strings.HasSuffix(name, "."+id)) {
			return "", invalidf("record set name %q is relative and would become %s; write %s. (with the trailing dot) or %s",
				clip(in), clip(name+"."+orig), clip(name), clip(strings.TrimSuffix(strings.TrimSuffix(name, id), ".")))
		}
		name = name + "." + orig
	}
	if name != orig && !strings.HasSuffix(name, "."+orig) {
		return "", invalidf("record set name %q is not inside zone %s", clip(in), orig)
	}
	if len(name) > 254 {
		return "", invalidf("record set name %q is longer than 253 characters", clip(in))
	}
	labels := strings.Split(strings.TrimSuffix(name, "."), ".")
	for i, l := range labels {
		if l == "*" && i == 0 {
			continue
		}
		ok := len(l) >= 1 && len(l) <= 63
		for j := 0; ok && j < len(l); j++ {
			c := l[j]
			ok = isLower(c) || isDigit(c) || c == '-' || c == '_' || c == '/'
		}
		if !ok {
			return "", invalidf("record set name %q: labels are 1-63 letters, digits, '-', '_' or '/', and '*' only as the whole first label", clip(in))
		}
	}
	return name, nil
}

// parseType parses a record set type for a change: one of the supported
// types (SOA is managed by the zone).
func parseType(s string) (uint16, error) {
	u := strings.ToUpper(strings.TrimSpace(s))
	t, ok := dns.StringToType[u]
	switch {
	case u == "":
		return 0, invalidf("record set type is empty")
	case ok && t == dns.TypeSOA:
		return 0, invalidf("the SOA record is managed by the zone; change its fields with UpdateZone")
	case !ok || !supportedTypes[t]:
		return 0, invalidf("record set type %q is not supported (A, AAAA, CNAME, MX, TXT, SRV, NS, PTR, CAA)", clip(s))
	}
	return t, nil
}
