package dnsserver

import (
	"encoding/binary"
	"errors"

	"github.com/miekg/dns"
)

// Header bits (RFC 1035 4.1.1, RFC 4035 for AD/CD).
const (
	flagQR = 1 << 15
	flagAA = 1 << 10
	flagTC = 1 << 9
	flagRD = 1 << 8
	flagCD = 1 << 4

	headerLen = 12
	// maxNameWire is the longest name on the wire, root label included.
	maxNameWire = 255
	// ednsDO is the DNSSEC OK bit in the OPT TTL's flags half (RFC 3225).
	ednsDO = 1 << 15
)

var errFormat = errors.New("malformed message")

// labelPos locates one label of the question name both in the presentation
// string (to key the compression map) and on the wire (the pointer target).
type labelPos struct {
	pres, wire uint16
}

// request is a query parsed in place: slices alias the received packet, which
// is only valid until the handler returns. Parsing by hand instead of
// dns.Msg.Unpack keeps the query path free of allocations.
type request struct {
	raw     []byte
	id      uint16
	flags   uint16
	opcode  int
	qdcount uint16
	ancount uint16
	nscount uint16
	arcount uint16

	qname   string // canonical presentation form, e.g. "www.example.com."
	qtype   uint16
	qclass  uint16
	qEnd    int // end of the question section in raw
	labels  [maxNameWire / 2]labelPos
	nlabels int

	edns    bool
	ednsVer uint8
	do      bool
	udpSize uint16

	// tsigStart is the offset of the TSIG RR, or 0 without one.
	tsigStart int
	tsig      tsigRecord

	// ixfrSerial is the client's serial from the IXFR authority SOA.
	ixfrSerial uint32
}

// parseHeader reads the fixed header. It reports false for packets too short
// to answer at all.
func (r *request) parseHeader(raw []byte) bool {
	if len(raw) < headerLen {
		return false
	}
	r.raw = raw
	r.id = binary.BigEndian.Uint16(raw)
	r.flags = binary.BigEndian.Uint16(raw[2:])
	r.opcode = int(r.flags>>11) & 0xF
	r.qdcount = binary.BigEndian.Uint16(raw[4:])
	r.ancount = binary.BigEndian.Uint16(raw[6:])
	r.nscount = binary.BigEndian.Uint16(raw[8:])
	r.arcount = binary.BigEndian.Uint16(raw[10:])
	r.qname, r.nlabels, r.qEnd, r.qtype, r.qclass = "", 0, 0, 0, 0
	r.edns, r.ednsVer, r.do, r.udpSize = false, 0, false, 0
	r.tsigStart, r.ixfrSerial = 0, 0
	return true
}

// parseQuestion reads the single question. The name is converted to the
// canonical presentation form miekg/dns uses (lower case, special bytes
// escaped) so it compares equal to zone data names; nameBuf is scratch space
// and intern deduplicates the resulting strings across queries.
func (r *request) parseQuestion(nameBuf []byte, intern map[string]string) ([]byte, error) {
	msg := r.raw
	off := headerLen
	buf := nameBuf[:0]
	for {
		if off >= len(msg) {
			return buf, errFormat
		}
		c := int(msg[off])
		if c == 0 {
			off++
			break
		}
		// A query's question has nothing before it to point at, so
		// compression pointers (and the reserved label types) are malformed.
		if c&0xC0 != 0 || off+1+c > len(msg) || off+1+c >= headerLen+maxNameWire {
			return buf, errFormat
		}
		r.labels[r.nlabels] = labelPos{pres: uint16(len(buf)), wire: uint16(off)}
		r.nlabels++
		for _, b := range msg[off+1 : off+1+c] {
			switch {
			case 'A' <= b && b <= 'Z':
				buf = append(buf, b+('a'-'A'))
			case b == '.' || b == ' ' || b == '\'' || b == '@' || b == ';' || b == '(' || b == ')' || b == '"' || b == '\\':
				buf = append(buf, '\\', b)
			case b < ' ' || b > '~':
				buf = append(buf, '\\', '0'+b/100, '0'+b/10%10, '0'+b%10)
			default:
				buf = append(buf, b)
			}
		}
		buf = append(buf, '.')
		off += 1 + c
	}
	if len(buf) == 0 {
		buf = append(buf, '.')
	}
	if off+4 > len(msg) {
		return buf, errFormat
	}
	if s, ok := intern[string(buf)]; ok {
		r.qname = s
	} else {
		if len(intern) >= maxIntern {
			clear(intern)
		}
		r.qname = string(buf)
		intern[r.qname] = r.qname
	}
	r.qtype = binary.BigEndian.Uint16(msg[off:])
	r.qclass = binary.BigEndian.Uint16(msg[off+2:])
	r.qEnd = off + 4
	return buf, nil
}

// maxIntern bounds the per-worker table of recently seen query names.
const maxIntern = 4096

// skipName returns the offset after the (possibly compressed) name at off.
func skipName(msg []byte, off int) (int, error) {
	for n := 0; ; n++ {
		if off >= len(msg) || n > 127 {
			return 0, errFormat
		}
		c := int(msg[off])
		switch c & 0xC0 {
		case 0x00:
			if c == 0 {
				return off + 1, nil
			}
			off += 1 + c
		case 0xC0:
			if off+2 > len(msg) {
				return 0, errFormat
			}
			return off + 2, nil
		default:
			return 0, errFormat
		}
	}
}

// readName decodes the (possibly compressed) name at off into canonical
// presentation form and returns the offset after it. Used for TSIG names;
// allocation is fine there.
func readName(msg []byte, off int) (string, int, error) {
	name, end, err := dns.UnpackDomainName(msg, off)
	if err != nil {
		return "", 0, errFormat
	}
	return dns.CanonicalName(name), end, nil
}

// rrHeader is a resource record header read from the wire.
type rrHeader struct {
	start    int // offset of the owner name
	nameEnd  int
	rrtype   uint16
	class    uint16
	ttl      uint32
	rdata    int // offset of the RDATA
	rdlength int
}

func readRRHeader(msg []byte, off int) (rrHeader, error) {
	h := rrHeader{start: off}
	end, err := skipName(msg, off)
	if err != nil || end+10 > len(msg) {
		return h, errFormat
	}
	h.nameEnd = end
	h.rrtype = binary.BigEndian.Uint16(msg[end:])
	h.class = binary.BigEndian.Uint16(msg[end+2:])
	h.ttl = binary.BigEndian.Uint32(msg[end+4:])
	h.rdlength = int(binary.BigEndian.Uint16(msg[end+8:]))
	h.rdata = end + 10
	if h.rdata+h.rdlength > len(msg) {
		return h, errFormat
	}
	return h, nil
}

// parseRecords checks the answer/authority counts and reads the additional
// section for OPT (RFC 6891) and TSIG (RFC 8945). Anything malformed is a
// FORMERR, as NSD does.
func (r *request) parseRecords() error {
	msg := r.raw
	if r.ancount != 0 {
		return errFormat
	}
	off := r.qEnd
	if r.qtype == dns.TypeIXFR {
		// RFC 1995: the authority section carries the client's SOA.
		if r.nscount != 1 {
			return errFormat
		}
		h, err := readRRHeader(msg, off)
		if err != nil || h.rrtype != dns.TypeSOA {
			return errFormat
		}
		// Skip MNAME and RNAME to reach the serial.
		p, err := skipName(msg, h.rdata)
		if err != nil {
			return errFormat
		}
		if p, err = skipName(msg, p); err != nil || p+20 > h.rdata+h.rdlength {
			return errFormat
		}
		r.ixfrSerial = binary.BigEndian.Uint32(msg[p:])
		off = h.rdata + h.rdlength
	} else if r.nscount != 0 {
		return errFormat
	}
	for i := 0; i < int(r.arcount); i++ {
		h, err := readRRHeader(msg, off)
		if err != nil {
			return err
		}
		switch h.rrtype {
		case dns.TypeOPT:
			// One OPT, owned by the root (RFC 6891 6.1.1).
			if r.edns || h.nameEnd != h.start+1 || msg[h.start] != 0 {
				return errFormat
			}
			r.edns = true
			r.udpSize = h.class
			r.ednsVer = uint8(h.ttl >> 16)
			r.do = h.ttl&ednsDO != 0
			// Options are ignored (RFC 6891 6.1.2) but must be well formed.
			p, end := h.rdata, h.rdata+h.rdlength
			for p < end {
				if p+4 > end {
					return errFormat
				}
				p += 4 + int(binary.BigEndian.Uint16(msg[p+2:]))
				if p > end {
					return errFormat
				}
			}
		case dns.TypeTSIG:
			// TSIG must be the last record (RFC 8945 5.1).
			if i != int(r.arcount)-1 || h.class != dns.ClassANY {
				return errFormat
			}
			if err := r.tsig.parse(msg, h); err != nil {
				return err
			}
			r.tsigStart = h.start
		}
		off = h.rdata + h.rdlength
	}
	return nil
}
