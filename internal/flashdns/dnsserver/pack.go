package dnsserver

import (
	"encoding/binary"

	"github.com/miekg/dns"
)

// maxMsg is the largest DNS message (the TCP length prefix is 16 bits).
const maxMsg = 65535

// bufSlack leaves room after maxMsg for the OPT and TSIG records, which are
// appended beyond the section budget.
const bufSlack = 1024

// builder packs a response into a reusable buffer with name compression
// (compress.go); RRsets that overflow the budget are cut whole (RFC 2181 9).
type builder struct {
	w      *worker
	msg    []byte // the whole buffer; the response is msg[:off]
	off    int
	limit  int // sections may use msg[:limit]
	counts [3]uint16
	tc     bool
	// done: an optional RRset did not fit; later sections are skipped.
	done bool
}

type section int

const (
	secAnswer section = iota
	secAuthority
	secAdditional
)

// start writes the header (counts are filled by finish) and the question,
// copied verbatim so the client sees its own case (0x20 randomisation
// survives), and seeds the compression map with the question name so owner
// names compress against it, as NSD does.
func (b *builder) start(r *request, flags uint16, withQuestion bool, limit int) {
	b.msg = b.w.out[:cap(b.w.out)]
	b.limit = min(limit, maxMsg)
	b.counts = [3]uint16{}
	b.tc, b.done = false, false
	b.w.comp.reset()
	binary.BigEndian.PutUint16(b.msg[0:], r.id)
	binary.BigEndian.PutUint16(b.msg[2:], flags)
	clear(b.msg[4:headerLen])
	b.off = headerLen
	if withQuestion && r.qEnd > 0 {
		b.off += copy(b.msg[headerLen:], r.raw[headerLen:r.qEnd])
		binary.BigEndian.PutUint16(b.msg[4:], 1)
		for i := 0; i < r.nlabels; i++ {
			l := r.labels[i]
			b.w.comp.insert(r.qname[l.pres:], int(l.wire))
		}
	}
}

func (b *builder) setRcode(rcode int) {
	b.msg[3] = b.msg[3]&0xF0 | byte(rcode&0xF)
}

func (b *builder) setFlag(f uint16) {
	binary.BigEndian.PutUint16(b.msg[2:], binary.BigEndian.Uint16(b.msg[2:])|f)
}

// add packs rrs into the answer or authority section, one RRset at a time.
// An RRset that does not fit is removed whole (RFC 2181 9). If mandatory
// (the answer; the authority of a negative answer or referral) TC is set and
// nothing more is added; otherwise the section goes on without it and the
// sections after it are skipped. This is NSD 4.6's encode_answer.
func (b *builder) add(sec section, rrs []dns.RR, mandatory bool) {
	if b.tc || b.done {
		return
	}
	for i := 0; i < len(rrs); {
		j := b.nextSet(rrs, i)
		if !b.addSet(sec, rrs[i:j]) {
			if mandatory {
				b.tc = true
				b.setFlag(flagTC)
				return
			}
			b.done = true
		}
		i = j
	}
}

// addAdditional packs the additional section the way NSD 4.6 does: its A,
// AAAA and other RRsets are three sections in a row. An RRset that does
// not fit is left out, the rest of its group is still tried, the groups
// after it are not; a referral none of whose A glue fit gets TC.
func (b *builder) addAdditional(rrs []dns.RR, referral bool) {
	if b.tc || b.done {
		return
	}
	failed, aAdded := -1, 0
	for i := 0; i < len(rrs); {
		j := b.nextSet(rrs, i)
		g := addlGroup(rrs[i].Header().Rrtype)
		if failed >= 0 && g != failed {
			break
		}
		if b.addSet(secAdditional, rrs[i:j]) {
			if g == 0 {
				aAdded++
			}
		} else if failed < 0 {
			failed = g
			b.done = true
		}
		i = j
	}
	if referral && failed == 0 && aAdded == 0 {
		b.tc = true
		b.setFlag(flagTC)
	}
}

func addlGroup(t uint16) int {
	switch t {
	case dns.TypeA:
		return 0
	case dns.TypeAAAA:
		return 1
	}
	return 2
}

// nextSet returns the end of the RRset starting at rrs[i].
func (b *builder) nextSet(rrs []dns.RR, i int) int {
	j := i + 1
	for j < len(rrs) && sameRRset(rrs[i], rrs[j]) {
		j++
	}
	return j
}

// addSet packs one RRset whole or not at all.
func (b *builder) addSet(sec section, set []dns.RR) bool {
	mark := b.off
	for _, rr := range set {
		if !b.pack(rr) {
			b.rollback(mark)
			return false
		}
	}
	b.counts[sec] += uint16(len(set))
	return true
}

// pack appends one RR if it fits in the budget; on false the caller rolls
// back.
func (b *builder) pack(rr dns.RR) bool {
	return b.packRR(rr) && b.off <= b.limit
}

// rollback drops everything packed after mark, including the compression
// targets that now point past the end of the message.
func (b *builder) rollback(mark int) {
	b.off = mark
	b.w.comp.rollback(mark)
}

func sameRRset(a, b dns.RR) bool {
	ha, hb := a.Header(), b.Header()
	return ha.Rrtype == hb.Rrtype && ha.Name == hb.Name
}

// optLen is the size of the OPT RR finish appends.
func optLen(ede int) int {
	if ede >= 0 {
		return 11 + 6
	}
	return 11
}

// finish writes the counts and appends the OPT RR (RFC 6891 6.1.2, our UDP
// size, DO echoed per RFC 3225, other flags cleared, version 0) with an
// Extended DNS Error when ede >= 0 (RFC 8914), then signs with TSIG.
func (b *builder) finish(edns bool, udpSize uint16, extRcode uint8, do bool, ede int, ts *tsigState) []byte {
	binary.BigEndian.PutUint16(b.msg[6:], b.counts[0])
	binary.BigEndian.PutUint16(b.msg[8:], b.counts[1])
	binary.BigEndian.PutUint16(b.msg[10:], b.counts[2])
	if edns {
		m := b.msg[b.off:]
		m[0] = 0 // root owner
		binary.BigEndian.PutUint16(m[1:], dns.TypeOPT)
		binary.BigEndian.PutUint16(m[3:], udpSize)
		m[5] = extRcode
		m[6] = 0 // version
		var fl uint16
		if do {
			fl = ednsDO
		}
		binary.BigEndian.PutUint16(m[7:], fl)
		if ede >= 0 {
			binary.BigEndian.PutUint16(m[9:], 6)
			binary.BigEndian.PutUint16(m[11:], dns.EDNS0EDE)
			binary.BigEndian.PutUint16(m[13:], 2)
			binary.BigEndian.PutUint16(m[15:], uint16(ede))
		} else {
			binary.BigEndian.PutUint16(m[9:], 0)
		}
		b.off += optLen(ede)
		binary.BigEndian.PutUint16(b.msg[10:], b.counts[2]+1)
	}
	out := b.msg[:b.off]
	if ts != nil {
		out, _ = appendTSIG(out, ts)
	}
	return out
}
