package dnsserver

import (
	"crypto/hmac"
	"encoding/binary"
	"hash"
	"time"

	"github.com/miekg/dns"
)

// TSIG (RFC 8945) is implemented on wire bytes rather than through
// dns.TsigGenerate/TsigVerify so that responses packed by our own packer can
// be signed in place and every error case (BADKEY, BADSIG, BADTIME,
// BADTRUNC) gets the response the RFC asks for.

const tsigFudge = 300

// tsigRecord is a TSIG RR read from a request. mac and other alias the
// request buffer.
type tsigRecord struct {
	key        string // canonical key name
	keyAsSent  string // echoed in the response TSIG
	alg        string // canonical algorithm name
	timeSigned uint64
	fudge      uint16
	mac        []byte
	origID     uint16
	err        uint16
	other      []byte
}

func (t *tsigRecord) parse(msg []byte, h rrHeader) error {
	name, _, err := dns.UnpackDomainName(msg, h.start)
	if err != nil {
		return errFormat
	}
	t.keyAsSent, t.key = name, dns.CanonicalName(name)
	end := h.rdata + h.rdlength
	var p int
	if t.alg, p, err = readName(msg, h.rdata); err != nil {
		return err
	}
	if p+10 > end {
		return errFormat
	}
	t.timeSigned = uint64(binary.BigEndian.Uint16(msg[p:]))<<32 | uint64(binary.BigEndian.Uint32(msg[p+2:]))
	t.fudge = binary.BigEndian.Uint16(msg[p+6:])
	macLen := int(binary.BigEndian.Uint16(msg[p+8:]))
	p += 10
	if p+macLen+6 > end {
		return errFormat
	}
	t.mac = msg[p : p+macLen]
	p += macLen
	t.origID = binary.BigEndian.Uint16(msg[p:])
	t.err = binary.BigEndian.Uint16(msg[p+2:])
	otherLen := int(binary.BigEndian.Uint16(msg[p+4:]))
	p += 6
	if p+otherLen != end {
		return errFormat
	}
	t.other = msg[p:end]
	return nil
}

// tsigState carries what a signed response needs: the key, the MAC it
// answers (request MAC, or the previous message's MAC in a multi-message
// transfer) and whether only the timers are covered (RFC 8945 5.3.1).
type tsigState struct {
	// name and alg are echoed from the request, key is nil when unknown.
	name, alg  string
	key        *tsigKey
	origID     uint16
	prevMAC    []byte
	timersOnly bool
	// err is the TSIG error to report (0, BADTIME); BADKEY/BADSIG/BADTRUNC
	// responses are unsigned and built by tsigErrorResponse.
	err uint16
	// timeSigned is the time put in the response; for BADTIME it is the
	// request's, with our clock in Other Data (RFC 8945 5.2.3).
	timeSigned uint64
	other      [6]byte
	otherLen   int
	fudge      uint16
}

// verifyTSIG checks the TSIG of raw, which starts at start. requestMAC is
// empty for requests and the MAC of our request when checking a response.
// It returns the signing state for an answer and the TSIG error (0 on
// success).
func verifyTSIG(raw []byte, start int, t *tsigRecord, keys map[string]*tsigKey, now time.Time, requestMAC []byte) (tsigState, uint16) {
	st := tsigState{name: t.keyAsSent, alg: t.alg, origID: t.origID, fudge: tsigFudge, timeSigned: uint64(now.Unix())}
	k := keys[t.key]
	if k == nil || k.alg != t.alg {
		// A key is identified by name and algorithm (RFC 8945 5.2.1); NSD
		// accepts any algorithm for a known name, we do not.
		st.err = dns.RcodeBadKey
		return st, st.err
	}
	st.key = k
	if len(t.mac) > k.size || len(t.mac) == 0 {
		st.err = dns.RcodeBadSig
		return st, st.err
	}
	if len(t.mac) < k.size {
		// Local policy: full-length MACs only (RFC 8945 5.2.2.1).
		st.err = dns.RcodeBadTrunc
		return st, st.err
	}
	h := k.mac()
	if len(requestMAC) > 0 {
		var l [2]byte
		binary.BigEndian.PutUint16(l[:], uint16(len(requestMAC)))
		h.Write(l[:])
		h.Write(requestMAC)
	}
	var hdr [headerLen]byte
	copy(hdr[:], raw[:headerLen])
	binary.BigEndian.PutUint16(hdr[0:], t.origID)
	binary.BigEndian.PutUint16(hdr[10:], binary.BigEndian.Uint16(raw[10:])-1)
	h.Write(hdr[:])
	h.Write(raw[headerLen:start])
	writeTSIGVars(h, k.name, k.alg, t.timeSigned, t.fudge, t.err, t.other, false)
	var sum [64]byte
	if !hmac.Equal(h.Sum(sum[:0]), t.mac) {
		st.err = dns.RcodeBadSig
		return st, st.err
	}
	// The time is checked only after the MAC (RFC 8945 5.2.3, CVE-2017-3142).
	st.prevMAC = t.mac
	nowSec := uint64(now.Unix())
	skew := max(nowSec, t.timeSigned) - min(nowSec, t.timeSigned)
	if skew > uint64(t.fudge) {
		st.err = dns.RcodeBadTime
		st.timeSigned = t.timeSigned
		putUint48(st.other[:], nowSec)
		st.otherLen = 6
		return st, dns.RcodeBadTime
	}
	return st, 0
}

func putUint48(b []byte, v uint64) {
	binary.BigEndian.PutUint16(b, uint16(v>>32))
	binary.BigEndian.PutUint32(b[2:], uint32(v))
}

// writeTSIGVars feeds the TSIG variables of RFC 8945 4.3.3 to h.
func writeTSIGVars(h hash.Hash, name, alg string, timeSigned uint64, fudge, tsigErr uint16, other []byte, timersOnly bool) {
	var b [8]byte
	if !timersOnly {
		writeCanonicalName(h, name)
		binary.BigEndian.PutUint16(b[0:], dns.ClassANY)
		binary.BigEndian.PutUint32(b[2:], 0) // TTL
		h.Write(b[:6])
		writeCanonicalName(h, alg)
	}
	putUint48(b[:], timeSigned)
	binary.BigEndian.PutUint16(b[6:], fudge)
	h.Write(b[:8])
	if !timersOnly {
		binary.BigEndian.PutUint16(b[0:], tsigErr)
		binary.BigEndian.PutUint16(b[2:], uint16(len(other)))
		h.Write(b[:4])
		h.Write(other)
	}
}

func writeCanonicalName(h hash.Hash, name string) {
	var b [maxNameWire + 1]byte
	n, err := dns.PackDomainName(name, b[:], 0, nil, false)
	if err == nil {
		h.Write(b[:n])
	}
}

// unsigned reports whether the response carries an empty MAC: a key or MAC
// failure cannot be signed (RFC 8945 5.3.2).
func (st *tsigState) unsigned() bool {
	return st.err == dns.RcodeBadKey || st.err == dns.RcodeBadSig || st.err == dns.RcodeBadTrunc
}

// tsigLen is an upper bound of the size of the TSIG RR appendTSIG adds.
func tsigLen(st *tsigState) int {
	mac := 0
	if !st.unsigned() {
		mac = st.key.size
	}
	return nameLen(st.name) + 10 + nameLen(st.alg) + 16 + mac + st.otherLen
}

func nameLen(name string) int {
	if name == "." {
		return 1
	}
	return len(name) + 1 // exact for names without escapes, an upper bound otherwise
}

// appendTSIG signs msg (a complete response whose ARCOUNT does not count the
// TSIG yet) and appends the TSIG RR; msg must have tsigLen spare capacity.
// It returns the extended message and the MAC, which the next message of a
// transfer chains to.
func appendTSIG(msg []byte, st *tsigState) ([]byte, []byte) {
	var mac []byte
	if !st.unsigned() {
		h := st.key.mac()
		if len(st.prevMAC) > 0 {
			var l [2]byte
			binary.BigEndian.PutUint16(l[:], uint16(len(st.prevMAC)))
			h.Write(l[:])
			h.Write(st.prevMAC)
		}
		// The MAC covers the message with its original ID (RFC 8945 4.3.2).
		var id [2]byte
		binary.BigEndian.PutUint16(id[:], st.origID)
		h.Write(id[:])
		h.Write(msg[2:])
		writeTSIGVars(h, st.key.name, st.key.alg, st.timeSigned, st.fudge, st.err, st.other[:st.otherLen], st.timersOnly)
		mac = h.Sum(nil)
	}
	start := len(msg)
	msg = msg[:start+tsigLen(st)]
	off, err := dns.PackDomainName(st.name, msg, start, nil, false)
	if err != nil {
		return msg[:start], nil
	}
	binary.BigEndian.PutUint16(msg[off:], dns.TypeTSIG)
	binary.BigEndian.PutUint16(msg[off+2:], dns.ClassANY)
	binary.BigEndian.PutUint32(msg[off+4:], 0)
	rdlenAt := off + 8
	off += 10
	rdStart := off
	if off, err = dns.PackDomainName(st.alg, msg, off, nil, false); err != nil {
		return msg[:start], nil
	}
	putUint48(msg[off:], st.timeSigned)
	binary.BigEndian.PutUint16(msg[off+6:], st.fudge)
	binary.BigEndian.PutUint16(msg[off+8:], uint16(len(mac)))
	off += 10
	off += copy(msg[off:], mac)
	binary.BigEndian.PutUint16(msg[off:], st.origID)
	binary.BigEndian.PutUint16(msg[off+2:], st.err)
	binary.BigEndian.PutUint16(msg[off+4:], uint16(st.otherLen))
	off += 6
	off += copy(msg[off:], st.other[:st.otherLen])
	binary.BigEndian.PutUint16(msg[rdlenAt:], uint16(off-rdStart))
	binary.BigEndian.PutUint16(msg[10:], binary.BigEndian.Uint16(msg[10:])+1)
	return msg[:off], mac
}

// findTSIG locates the TSIG RR of a whole message, if any.
func findTSIG(msg []byte) (int, tsigRecord, error) {
	var t tsigRecord
	if len(msg) < headerLen {
		return 0, t, errFormat
	}
	off := headerLen
	for i := 0; i < int(binary.BigEndian.Uint16(msg[4:])); i++ {
		end, err := skipName(msg, off)
		if err != nil || end+4 > len(msg) {
			return 0, t, errFormat
		}
		off = end + 4
	}
	n := int(binary.BigEndian.Uint16(msg[6:])) + int(binary.BigEndian.Uint16(msg[8:])) + int(binary.BigEndian.Uint16(msg[10:]))
	for i := 0; i < n; i++ {
		h, err := readRRHeader(msg, off)
		if err != nil {
			return 0, t, err
		}
		if h.rrtype == dns.TypeTSIG {
			if i != n-1 {
				return 0, t, errFormat
			}
			err := t.parse(msg, h)
			return h.start, t, err
		}
		off = h.rdata + h.rdlength
	}
	return 0, t, nil
}
