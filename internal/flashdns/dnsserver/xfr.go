package dnsserver

import (
	"errors"
	"log/slog"
	"net/netip"

	"github.com/miekg/dns"
)

// serialLess reports a < b in RFC 1982 serial number arithmetic.
func serialLess(a, b uint32) bool {
	return a != b && int32(b-a) > 0
}

// transferAllowed applies TransferACL and TSIG: by default either an address
// in the ACL or a valid TSIG allows a transfer; with TransferRequireTSIG both
// are needed (the ACL only when it is not empty).
func (h *handler) transferAllowed(remote netip.Addr, signed bool) bool {
	inACL := false
	for _, p := range h.cfg.TransferACL {
		if p.Contains(remote) {
			inACL = true
			break
		}
	}
	if h.cfg.TransferRequireTSIG {
		return signed && (inACL || len(h.cfg.TransferACL) == 0)
	}
	return signed || inACL
}

// transfer answers AXFR and IXFR (RFC 5936, RFC 1995).
func (w *worker) transfer(t *transport, limit int, ts *tsigState) []byte {
	r := &w.req
	kind := "axfr"
	if r.qtype == dns.TypeIXFR {
		kind = "ixfr"
	}
	if r.qclass != dns.ClassINET {
		return w.refused(true, int(dns.ExtendedErrorCodeNotSupported), ts)
	}
	if !t.tcp && r.qtype == dns.TypeAXFR {
		// AXFR needs TCP (RFC 5936 4.2); NSD answers NOTIMP.
		return w.simple(dns.RcodeNotImplemented, ts)
	}
	table := w.h.cfg.Zones()
	if table == nil {
		return w.simple(dns.RcodeNotAuth, ts)
	}
	snap := table.Get(r.qname)
	if snap == nil {
		// Not a zone we serve (RFC 5936 2.2.1).
		return w.simple(dns.RcodeNotAuth, ts)
	}
	w.zone = snap.Origin()
	if !w.h.transferAllowed(t.remote, ts != nil) {
		w.h.m.transfer(w.zone, kind, "refused")
		w.h.log.Info("zone transfer refused", "zone", w.zone, "type", kind, "client", t.remote.String())
		return w.refused(true, int(dns.ExtendedErrorCodeProhibited), ts)
	}
	soa := snap.SOA()
	if r.qtype == dns.TypeIXFR && !serialLess(r.ixfrSerial, snap.Serial()) {
		// Up to date (or ahead): the current SOA alone (RFC 1995 2).
		w.h.m.transfer(w.zone, kind, "uptodate")
		return w.soaOnly(soa, limit, false, ts)
	}
	if !t.tcp {
		// IXFR over UDP: the delta would rarely fit, so answer the SOA with
		// TC and let the client come back over TCP (RFC 1995 2, as BIND).
		w.h.m.transfer(w.zone, kind, "tcp")
		return w.soaOnly(soa, limit, true, ts)
	}
	rrs, ok := []dns.RR(nil), false
	if r.qtype == dns.TypeIXFR {
		rrs, ok = snap.IXFR(r.ixfrSerial)
	}
	result := "ok"
	if !ok {
		if r.qtype == dns.TypeIXFR {
			result = "axfr" // no journal from that serial: whole zone (RFC 1995 4)
		}
		rrs = snap.AXFR()
	}
	msgs, err := w.stream(t, rrs, ts)
	if err != nil {
		w.h.m.transfer(w.zone, kind, "error")
		w.h.log.Warn("zone transfer failed", "zone", w.zone, "type", kind, "client", t.remote.String(), "err", err)
		return nil
	}
	w.h.m.transfer(w.zone, kind, result)
	w.h.log.Info("zone transfer", "zone", w.zone, "type", kind, "serial", snap.Serial(),
		slog.Uint64("from", uint64(r.ixfrSerial)), "records", len(rrs), "messages", msgs,
		"client", t.remote.String(), "result", result)
	return nil
}

func (w *worker) soaOnly(soa *dns.SOA, limit int, tc bool, ts *tsigState) []byte {
	r := &w.req
	flags := w.baseFlags() | flagAA
	if tc {
		flags |= flagTC
	}
	w.b.start(r, flags, true, limit)
	w.b.add(secAnswer, []dns.RR{soa}, true)
	return w.b.finish(r.edns, w.h.cfg.UDPSize, 0, r.do, -1, ts)
}

var errRRTooLarge = errors.New("record does not fit in a message")

// stream sends rrs in as many messages as needed, each at most
// XFRMessageSize (one oversized record gets a message of its own), the
// question and OPT in the first only (RFC 5936 2.2), every message signed
// when the request was, chaining MACs (RFC 8945 5.3.1).
func (w *worker) stream(t *transport, rrs []dns.RR, ts *tsigState) (int, error) {
	r := &w.req
	b := &w.b
	reserve := 0
	if ts != nil {
		reserve = tsigLen(ts)
	}
	size := w.h.cfg.XFRMessageSize - reserve
	first := true
	msgs := 0
	flush := func() error {
		out := b.finish(first && r.edns, w.h.cfg.UDPSize, 0, r.do, -1, nil)
		if ts != nil {
			var mac []byte
			out, mac = appendTSIG(out, ts)
			ts.prevMAC, ts.timersOnly = mac, true
		}
		first = false
		msgs++
		return t.send(w.framed(out))
	}
	begin := func() {
		b.start(r, w.baseFlags()|flagAA, first, size)
		if first && r.edns {
			b.limit -= optLen(-1)
		}
	}
	begin()
	for i := 0; i < len(rrs); {
		mark := b.off
		if b.pack(rrs[i]) {
			b.counts[secAnswer]++
			i++
			continue
		}
		b.rollback(mark)
		if b.counts[secAnswer] == 0 {
			if b.limit >= maxMsg-reserve-optLen(-1) {
				return msgs, errRRTooLarge
			}
			b.limit = maxMsg - reserve - optLen(-1)
			continue
		}
		if err := flush(); err != nil {
			return msgs, err
		}
		begin()
	}
	return msgs, flush()
}
