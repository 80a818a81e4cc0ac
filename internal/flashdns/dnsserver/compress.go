package dnsserver

import (
	"encoding/binary"
	"strings"

	"github.com/miekg/dns"
)

// The response packer. miekg's PackRR is correct but slow on the query path
// (a map lookup with hashing per label suffix, a cleared map per message)
// and it writes Rdlength into the RR it packs, which is shared zone data. So
// the types that carry compressible names (RFC 3597 4: NS, CNAME, PTR, MX,
// SOA) and A/AAAA are packed here; every other type's RDATA comes from
// miekg, packed uncompressed into scratch space from a private copy.

// linearMax is the number of compression targets searched linearly; larger
// messages (big referrals, transfers) switch to a map.
const linearMax = 32

// compressor remembers where name suffixes were written. Keys are suffixes
// of canonical presentation names, like miekg's compression map.
type compressor struct {
	names   []compEntry // in increasing offset order
	index   map[string]uint16
	indexed bool
}

type compEntry struct {
	name string
	off  uint16
}

func (c *compressor) reset() {
	c.names = c.names[:0]
	if c.indexed {
		clear(c.index)
		c.indexed = false
	}
}

func (c *compressor) find(s string) (int, bool) {
	if c.indexed {
		off, ok := c.index[s]
		return int(off), ok
	}
	for i := range c.names {
		if e := &c.names[i]; len(e.name) == len(s) && e.name == s {
			return int(e.off), true
		}
	}
	return 0, false
}

// insert records a target; pointers have 14 bits, later offsets are not
// recorded.
func (c *compressor) insert(s string, off int) {
	if off >= 1<<14 {
		return
	}
	c.names = append(c.names, compEntry{s, uint16(off)})
	if c.indexed {
		c.index[s] = uint16(off)
	} else if len(c.names) > linearMax {
		if c.index == nil {
			c.index = make(map[string]uint16, 4*linearMax)
		}
		for _, e := range c.names {
			c.index[e.name] = e.off
		}
		c.indexed = true
	}
}

// rollback forgets the targets at or after mark.
func (c *compressor) rollback(mark int) {
	n := len(c.names)
	for n > 0 && int(c.names[n-1].off) >= mark {
		n--
	}
	if c.indexed {
		for _, e := range c.names[n:] {
			delete(c.index, e.name)
		}
	}
	c.names = c.names[:n]
}

// packName writes a fully qualified presentation name at b.off, compressed
// against the names written before. It reports false when the buffer is
// full or the name is invalid.
func (b *builder) packName(name string) bool {
	msg := b.msg
	if name == "." {
		if b.off >= len(msg) {
			return false
		}
		msg[b.off] = 0
		b.off++
		return true
	}
	if len(name) == 0 || name[len(name)-1] != '.' {
		return false
	}
	if strings.IndexByte(name, '\\') >= 0 {
		// Escaped bytes: rare; written uncompressed by miekg.
		off, err := dns.PackDomainName(name, msg, b.off, nil, false)
		if err != nil {
			return false
		}
		b.off = off
		return true
	}
	c := &b.w.comp
	for i := 0; i < len(name); {
		if p, ok := c.find(name[i:]); ok {
			if b.off+2 > len(msg) {
				return false
			}
			binary.BigEndian.PutUint16(msg[b.off:], uint16(0xC000|p))
			b.off += 2
			return true
		}
		c.insert(name[i:], b.off)
		l := strings.IndexByte(name[i:], '.')
		if l <= 0 || l > 63 || b.off+1+l >= len(msg) {
			return false
		}
		msg[b.off] = byte(l)
		copy(msg[b.off+1:], name[i:i+l])
		b.off += 1 + l
		i += l + 1
	}
	if b.off >= len(msg) {
		return false
	}
	msg[b.off] = 0
	b.off++
	return true
}

func (b *builder) putUint16(v uint16) bool {
	if b.off+2 > len(b.msg) {
		return false
	}
	binary.BigEndian.PutUint16(b.msg[b.off:], v)
	b.off += 2
	return true
}

// packRR appends rr at b.off. On false the message is left inconsistent
// and the caller rolls back.
func (b *builder) packRR(rr dns.RR) bool {
	h := rr.Header()
	if !b.packName(h.Name) || b.off+10 > len(b.msg) {
		return false
	}
	m := b.msg
	binary.BigEndian.PutUint16(m[b.off:], h.Rrtype)
	binary.BigEndian.PutUint16(m[b.off+2:], h.Class)
	binary.BigEndian.PutUint32(m[b.off+4:], h.Ttl)
	rdlenAt := b.off + 8
	b.off += 10
	ok := false
	switch v := rr.(type) {
	case *dns.A:
		if ip := v.A.To4(); ip != nil && b.off+4 <= len(m) {
			b.off += copy(m[b.off:], ip)
			ok = true
		}
	case *dns.AAAA:
		if ip := v.AAAA.To16(); ip != nil && b.off+16 <= len(m) {
			b.off += copy(m[b.off:], ip)
			ok = true
		}
	case *dns.NS:
		ok = b.packName(v.Ns)
	case *dns.CNAME:
		ok = b.packName(v.Target)
	case *dns.PTR:
		ok = b.packName(v.Ptr)
	case *dns.MX:
		ok = b.putUint16(v.Preference) && b.packName(v.Mx)
	case *dns.SOA:
		ok = b.packName(v.Ns) && b.packName(v.Mbox) && b.off+20 <= len(m)
		if ok {
			binary.BigEndian.PutUint32(m[b.off:], v.Serial)
			binary.BigEndian.PutUint32(m[b.off+4:], v.Refresh)
			binary.BigEndian.PutUint32(m[b.off+8:], v.Retry)
			binary.BigEndian.PutUint32(m[b.off+12:], v.Expire)
			binary.BigEndian.PutUint32(m[b.off+16:], v.Minttl)
			b.off += 20
		}
	default:
		ok = b.packRdata(rr)
	}
	rdlen := b.off - rdlenAt - 2
	if !ok || rdlen > 0xFFFF {
		return false
	}
	binary.BigEndian.PutUint16(m[rdlenAt:], uint16(rdlen))
	return true
}

// packRdata appends the RDATA of any other type, packed by miekg without
// compression (RFC 3597: names in newer types are never compressed).
func (b *builder) packRdata(rr dns.RR) bool {
	w := b.w
	n, err := dns.PackRR(w.scratchCopy(rr), w.tmp, 0, nil, false)
	if err != nil {
		return false
	}
	p, err := skipName(w.tmp[:n], 0)
	if err != nil || p+10 > n {
		return false
	}
	rd := w.tmp[p+10 : n]
	if b.off+len(rd) > len(b.msg) {
		return false
	}
	b.off += copy(b.msg[b.off:], rd)
	return true
}

// scratch holds one value of each common type without a hand-written
// packer: dns.PackRR writes the Rdlength into the RR it packs and zone data
// is shared by every query goroutine, so it packs a private copy (a struct
// copy, no allocation).
type scratch struct {
	txt   dns.TXT
	srv   dns.SRV
	caa   dns.CAA
	ds    dns.DS
	https dns.HTTPS
	svcb  dns.SVCB
	dname dns.DNAME
}

func (w *worker) scratchCopy(rr dns.RR) dns.RR {
	s := &w.scratch
	switch v := rr.(type) {
	case *dns.TXT:
		s.txt = *v
		return &s.txt
	case *dns.SRV:
		s.srv = *v
		return &s.srv
	case *dns.CAA:
		s.caa = *v
		return &s.caa
	case *dns.DS:
		s.ds = *v
		return &s.ds
	case *dns.HTTPS:
		s.https = *v
		return &s.https
	case *dns.SVCB:
		s.svcb = *v
		return &s.svcb
	case *dns.DNAME:
		s.dname = *v
		return &s.dname
	}
	return dns.Copy(rr)
}
