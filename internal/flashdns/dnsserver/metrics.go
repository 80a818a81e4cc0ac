package dnsserver

import (
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are registered on Config.Registry. Label values are bounded: zones
// are the zones we serve (series are deleted with the zone), query types are
// folded into a fixed list and rcodes into the defined ones.
type metrics struct {
	queries    *prometheus.CounterVec // zone, rcode
	qtypes     *prometheus.CounterVec // qtype, proto
	truncated  *prometheus.CounterVec // proto
	dropped    *prometheus.CounterVec // reason
	transfers  *prometheus.CounterVec // zone, type, result
	notifies   *prometheus.CounterVec // target, result
	tsigErrors *prometheus.CounterVec // error
	tcpConns   prometheus.Gauge

	// The query path resolves its counters without the CounterVec's
	// hashing and locking: per-zone counters in a sync.Map (lock-free
	// reads), created on first use; type and truncation counters up front.
	zones     sync.Map // zone label -> *zoneCounters
	typeCtr   [len(typeLabels) + 1][2]prometheus.Counter
	truncCtr  [2]prometheus.Counter
	typeIndex map[uint16]int
	// Floods of junk should not contend on the CounterVec lock.
	droppedShort, droppedResponse prometheus.Counter
}

type zoneCounters struct {
	byRcode [len(rcodeLabels)]atomic.Pointer[counterRef]
}

type counterRef struct{ c prometheus.Counter }

var protoLabels = [2]string{"udp", "tcp"}

// typeLabels are the query types counted by name; others count as "other".
var typeLabels = [...]uint16{
	dns.TypeA, dns.TypeAAAA, dns.TypeCNAME, dns.TypeMX, dns.TypeTXT, dns.TypeSRV,
	dns.TypeNS, dns.TypePTR, dns.TypeCAA, dns.TypeSOA, dns.TypeANY, dns.TypeDS,
	dns.TypeDNSKEY, dns.TypeHTTPS, dns.TypeSVCB, dns.TypeAXFR, dns.TypeIXFR,
}

// rcodeLabels are the rcodes with their own series; the last is "other".
var rcodeLabels = [...]string{"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED",
	"YXDOMAIN", "YXRRSET", "NXRRSET", "NOTAUTH", "NOTZONE", "BADVERS", "OTHER"}

func rcodeSlot(rcode int) int {
	switch {
	case rcode >= 0 && rcode <= dns.RcodeNotZone:
		return rcode
	case rcode == dns.RcodeBadVers:
		return len(rcodeLabels) - 2
	}
	return len(rcodeLabels) - 1
}

func newMetrics(reg *prometheus.Registry, lg *slog.Logger) *metrics {
	m := &metrics{
		queries: register(reg, lg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flashdns_dns_queries_total",
			Help: "DNS queries answered, by zone (empty outside our zones) and response code.",
		}, []string{"zone", "rcode"})),
		qtypes: register(reg, lg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flashdns_dns_query_types_total",
			Help: "DNS queries by query type (uncommon types as OTHER) and transport.",
		}, []string{"qtype", "proto"})),
		truncated: register(reg, lg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flashdns_dns_truncated_total",
			Help: "Responses sent with the TC bit because the answer did not fit.",
		}, []string{"proto"})),
		dropped: register(reg, lg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flashdns_dns_dropped_total",
			Help: "Packets dropped without an answer, by reason.",
		}, []string{"reason"})),
		transfers: register(reg, lg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flashdns_dns_transfers_total",
			Help: "Outgoing zone transfers by zone, type (axfr, ixfr) and result.",
		}, []string{"zone", "type", "result"})),
		notifies: register(reg, lg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flashdns_dns_notifies_total",
			Help: "NOTIFY messages sent, by target and result.",
		}, []string{"target", "result"})),
		tsigErrors: register(reg, lg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flashdns_dns_tsig_errors_total",
			Help: "Requests whose TSIG failed verification, by TSIG error.",
		}, []string{"error"})),
		tcpConns: register(reg, lg, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "flashdns_dns_tcp_connections",
			Help: "Open DNS TCP connections.",
		})),
		typeIndex: make(map[uint16]int, len(typeLabels)),
	}
	for i, t := range typeLabels {
		m.typeIndex[t] = i
		for p, proto := range protoLabels {
			m.typeCtr[i][p] = m.qtypes.WithLabelValues(dns.TypeToString[t], proto)
		}
	}
	m.droppedShort = m.dropped.WithLabelValues("short")
	m.droppedResponse = m.dropped.WithLabelValues("response")
	for p, proto := range protoLabels {
		m.typeCtr[len(typeLabels)][p] = m.qtypes.WithLabelValues("OTHER", proto)
		m.truncCtr[p] = m.truncated.WithLabelValues(proto)
	}
	return m
}

// register adds c to reg, reusing an identical collector already there so
// that several servers on one registry (tests, photon dev) share series.
func register[C prometheus.Collector](reg *prometheus.Registry, lg *slog.Logger, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		lg.Warn("dns metrics not registered", "err", err)
	}
	return c
}

// observe counts one answered request.
func (m *metrics) observe(w *worker, t *transport, resp []byte) {
	if resp == nil && !(t.tcp && (w.req.qtype == dns.TypeAXFR || w.req.qtype == dns.TypeIXFR)) {
		return
	}
	p := 0
	if t.tcp {
		p = 1
	}
	ti := len(typeLabels)
	if i, ok := m.typeIndex[w.req.qtype]; ok {
		ti = i
	}
	m.typeCtr[ti][p].Inc()
	if len(resp) > 3 && resp[2]&(flagTC>>8) != 0 {
		m.truncCtr[p].Inc()
	}
	m.zoneCounter(w.zone, w.rcode).Inc()
}

func (m *metrics) zoneCounter(zone string, rcode int) prometheus.Counter {
	v, ok := m.zones.Load(zone)
	if !ok {
		v, _ = m.zones.LoadOrStore(zone, new(zoneCounters))
	}
	zc := v.(*zoneCounters)
	slot := rcodeSlot(rcode)
	if ref := zc.byRcode[slot].Load(); ref != nil {
		return ref.c
	}
	ref := &counterRef{c: m.queries.WithLabelValues(zone, rcodeLabels[slot])}
	zc.byRcode[slot].CompareAndSwap(nil, ref)
	return zc.byRcode[slot].Load().c
}

// forgetZone drops the series of a zone we no longer serve.
func (m *metrics) forgetZone(zone string) {
	m.zones.Delete(zone)
	m.queries.DeletePartialMatch(prometheus.Labels{"zone": zone})
	m.transfers.DeletePartialMatch(prometheus.Labels{"zone": zone})
}

func (m *metrics) transfer(zone, kind, result string) {
	m.transfers.WithLabelValues(zone, kind, result).Inc()
}
