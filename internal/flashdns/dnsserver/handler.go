package dnsserver

import (
	"context"
	"encoding/binary"
	"log/slog"
	"net/netip"
	"time"

	"github.com/miekg/dns"
)

// handler is the immutable state shared by every worker.
type handler struct {
	cfg *settings
	m   *metrics
	log *slog.Logger
	now func() time.Time
}

// transport describes where a request came from.
type transport struct {
	tcp    bool
	remote netip.Addr
	// send writes one framed message of a multi-message transfer; nil on
	// UDP. The slice is only valid during the call.
	send func([]byte) error
}

// worker is the per-goroutine state of the query path. Everything a query
// needs is allocated once here so the steady state allocates nothing.
type worker struct {
	h       *handler
	req     request
	b       builder
	buf     []byte // 2-byte TCP length prefix + out
	out     []byte // the response buffer, cap maxMsg+bufSlack
	tmp     []byte // scratch for packRdata
	comp    compressor
	name    []byte
	intern  map[string]string
	scratch scratch
	tsig    tsigState

	// Outcome of the current request, for metrics and the query log.
	zone  string
	rcode int
}

func newWorker(h *handler) *worker {
	w := &worker{
		h:      h,
		buf:    make([]byte, 2+maxMsg+bufSlack),
		tmp:    make([]byte, maxMsg),
		name:   make([]byte, 0, 4*maxNameWire+1),
		intern: make(map[string]string, 256),
	}
	w.out = w.buf[2:2:len(w.buf)]
	w.comp.names = make([]compEntry, 0, 2*linearMax)
	w.b.w = w
	return w
}

// framed returns msg, which must start at w.out[0], with its TCP length
// prefix.
func (w *worker) framed(msg []byte) []byte {
	binary.BigEndian.PutUint16(w.buf, uint16(len(msg)))
	return w.buf[:2+len(msg)]
}

// serve answers one request. It returns the response (aliasing the worker's
// buffer, valid until the next call) or nil when nothing is to be sent:
// responses are never answered, and a packet too short for a header cannot
// be. On TCP, zone transfers are written through t.send and serve returns nil.
func (w *worker) serve(raw []byte, t *transport) []byte {
	r := &w.req
	if !r.parseHeader(raw) {
		w.h.m.droppedShort.Inc()
		return nil
	}
	if r.flags&flagQR != 0 {
		w.h.m.droppedResponse.Inc()
		return nil
	}
	w.zone, w.rcode = "", 0
	resp := w.dispatch(t)
	w.h.m.observe(w, t, resp)
	if w.h.cfg.LogQueries {
		w.logQuery(t, resp)
	}
	return resp
}

func (w *worker) dispatch(t *transport) []byte {
	r := &w.req
	switch r.opcode {
	case dns.OpcodeQuery:
	case dns.OpcodeNotify:
		// We are a primary: there is nothing to refresh. NSD answers
		// REFUSED to NOTIFY for zones it does not pull.
		return w.headerOnly(dns.RcodeRefused, true)
	default:
		return w.headerOnly(dns.RcodeNotImplemented, true)
	}
	if r.qdcount != 1 {
		return w.headerOnly(dns.RcodeFormatError, false)
	}
	var err error
	if w.name, err = r.parseQuestion(w.name, w.intern); err != nil {
		return w.headerOnly(dns.RcodeFormatError, false)
	}
	if err := r.parseRecords(); err != nil {
		return w.headerOnly(dns.RcodeFormatError, false)
	}
	var ts *tsigState
	if r.tsigStart > 0 {
		var terr uint16
		w.tsig, terr = verifyTSIG(r.raw, r.tsigStart, &r.tsig, w.h.cfg.keys, w.h.now(), nil)
		if terr != 0 {
			w.h.m.tsigErrors.WithLabelValues(dns.RcodeToString[int(terr)]).Inc()
			return w.tsigError()
		}
		ts = &w.tsig
	}
	if r.edns && r.ednsVer != 0 {
		// RFC 6891 6.1.3: BADVERS with our highest version (0), without
		// answering. NSD does not echo DO here; neither do we.
		w.rcode = dns.RcodeBadVers
		w.b.start(r, w.baseFlags(), true, maxMsg)
		return w.b.finish(true, w.h.cfg.UDPSize, dns.RcodeBadVers>>4, false, -1, ts)
	}
	limit := maxMsg
	if !t.tcp {
		limit = 512
		if r.edns {
			limit = int(min(max(r.udpSize, 512), w.h.cfg.UDPSize))
		}
	}
	if r.edns {
		limit -= optLen(-1)
	}
	if ts != nil {
		limit -= tsigLen(ts)
	}
	if r.qtype == dns.TypeAXFR || r.qtype == dns.TypeIXFR {
		return w.transfer(t, limit, ts)
	}
	switch r.qclass {
	case dns.ClassINET:
		return w.query(limit, false, ts)
	case dns.ClassANY:
		return w.query(limit, true, ts)
	case dns.ClassCHAOS:
		return w.chaos(limit, ts)
	}
	// NSD refuses other classes with a bare header.
	return w.refused(false, int(dns.ExtendedErrorCodeNotSupported), ts)
}

// baseFlags are the response flags every answer starts from: QR, and RD and
// CD copied from the query (RFC 1035 4.1.1, RFC 4035 3.1.6). AA is added per
// answer; RA, AD and Z stay clear.
func (w *worker) baseFlags() uint16 {
	return flagQR | w.req.flags&(flagRD|flagCD)
}

// headerOnly answers with a bare header, as NSD does for FORMERR and NOTIMP:
// the question may be what was malformed, so it is not echoed, and neither
// is OPT.
func (w *worker) headerOnly(rcode int, keepFlags bool) []byte {
	r := &w.req
	w.rcode = rcode
	flags := uint16(flagQR) | r.flags&(0xF<<11)
	if keepFlags {
		flags |= r.flags & (flagRD | flagCD)
	}
	w.b.start(r, flags, false, maxMsg)
	w.b.setRcode(rcode)
	return w.b.finish(false, 0, 0, false, -1, nil)
}

// tsigError answers a request whose TSIG failed with NOTAUTH and a TSIG RR
// carrying the error (RFC 8945 5.2), unsigned except for BADTIME.
func (w *worker) tsigError() []byte {
	r := &w.req
	w.rcode = dns.RcodeNotAuth
	w.b.start(r, flagQR|r.flags&(0xF<<11), false, maxMsg)
	w.b.setRcode(dns.RcodeNotAuth)
	return w.b.finish(false, 0, 0, false, -1, &w.tsig)
}

// refused answers REFUSED with an Extended DNS Error when the query has EDNS,
// as NSD 4.6 does.
func (w *worker) refused(withQuestion bool, ede int, ts *tsigState) []byte {
	r := &w.req
	w.rcode = dns.RcodeRefused
	w.b.start(r, w.baseFlags(), withQuestion, maxMsg)
	w.b.setRcode(dns.RcodeRefused)
	return w.b.finish(r.edns, w.h.cfg.UDPSize, 0, r.do, ede, ts)
}

// simple answers rcode with the question and nothing else.
func (w *worker) simple(rcode int, ts *tsigState) []byte {
	r := &w.req
	w.rcode = rcode
	w.b.start(r, w.baseFlags(), true, maxMsg)
	w.b.setRcode(rcode)
	return w.b.finish(r.edns, w.h.cfg.UDPSize, 0, r.do, -1, ts)
}

// query answers from zone data. zone.Table.Lookup picks the zone, follows
// CNAMEs across our zones and answers DS at a child apex from the parent,
// as NSD does.
func (w *worker) query(limit int, classANY bool, ts *tsigState) []byte {
	r := &w.req
	table := w.h.cfg.Zones()
	if table == nil {
		return w.refused(true, int(dns.ExtendedErrorCodeNotAuthoritative), ts)
	}
	res, snap := table.Lookup(r.qname, r.qtype)
	if snap == nil {
		return w.refused(true, int(dns.ExtendedErrorCodeNotAuthoritative), ts)
	}
	w.zone = snap.Origin()
	flags := w.baseFlags()
	if res.Authoritative && !classANY {
		flags |= flagAA
	}
	b := &w.b
	b.start(r, flags, true, limit)
	b.setRcode(res.Rcode)
	w.rcode = res.Rcode
	b.add(secAnswer, res.Answer, true)
	// NSD answers class ANY from the IN data without authority: only the
	// answer, or the referral.
	if !classANY || !res.Authoritative {
		b.add(secAuthority, res.Ns, len(res.Answer) == 0)
		b.addAdditional(res.Extra, !res.Authoritative && len(res.Answer) == 0)
	}
	return b.finish(r.edns, w.h.cfg.UDPSize, 0, r.do, -1, ts)
}

// chaos answers the CHAOS-class server identification queries NSD answers
// (version.bind, version.server, id.server, hostname.bind), without AA and
// with TTL 0. Empty configured strings refuse, like NSD's hide-version.
func (w *worker) chaos(limit int, ts *tsigState) []byte {
	r := &w.req
	var txt string
	switch r.qname {
	case "version.bind.", "version.server.":
		txt = w.h.cfg.ChaosVersion
	case "id.server.", "hostname.bind.":
		txt = w.h.cfg.ChaosID
	}
	if txt == "" || (r.qtype != dns.TypeTXT && r.qtype != dns.TypeANY) {
		return w.refused(true, int(dns.ExtendedErrorCodeNotSupported), ts)
	}
	b := &w.b
	b.start(r, w.baseFlags(), true, limit)
	m := b.msg[b.off:]
	if b.off+12+1+len(txt) <= b.limit {
		binary.BigEndian.PutUint16(m[0:], 0xC000|headerLen) // owner: the question name
		binary.BigEndian.PutUint16(m[2:], dns.TypeTXT)
		binary.BigEndian.PutUint16(m[4:], dns.ClassCHAOS)
		binary.BigEndian.PutUint32(m[6:], 0)
		binary.BigEndian.PutUint16(m[10:], uint16(1+len(txt)))
		m[12] = byte(len(txt))
		copy(m[13:], txt)
		b.off += 13 + len(txt)
		b.counts[secAnswer] = 1
	} else {
		b.setFlag(flagTC)
	}
	return b.finish(r.edns, w.h.cfg.UDPSize, 0, r.do, -1, ts)
}

func (w *worker) logQuery(t *transport, resp []byte) {
	lg := w.h.log
	ctx := context.Background()
	if !lg.Enabled(ctx, slog.LevelDebug) {
		return
	}
	r := &w.req
	proto := "udp"
	if t.tcp {
		proto = "tcp"
	}
	lg.LogAttrs(ctx, slog.LevelDebug, "dns query",
		slog.String("client", t.remote.String()),
		slog.String("proto", proto),
		slog.String("qname", r.qname),
		slog.String("qtype", dns.Type(r.qtype).String()),
		slog.String("qclass", dns.Class(r.qclass).String()),
		slog.String("zone", w.zone),
		slog.String("rcode", dns.RcodeToString[w.rcode]),
		slog.Bool("edns", r.edns),
		slog.Bool("tc", len(resp) > 3 && resp[2]&(flagTC>>8) != 0),
		slog.Int("size", len(resp)))
}
