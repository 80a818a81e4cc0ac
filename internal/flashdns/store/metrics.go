package store

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the store's Prometheus metrics. With no registry they are
// still updated, just never exported.
type metrics struct {
	reg           prometheus.Registerer
	collectors    []prometheus.Collector
	buildSeconds  prometheus.Histogram
	buildFailures prometheus.Counter
	reloads       prometheus.Counter
	conflicts     prometheus.Counter
	staged        prometheus.Counter
	swept         prometheus.Counter
	releases      prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, s *Store) (*metrics, error) {
	m := &metrics{
		reg: reg,
		buildSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "flashdns_store_snapshot_build_seconds",
			Help:    "Time to build one zone snapshot after a change.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
		}),
		buildFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flashdns_store_snapshot_build_failures_total",
			Help: "Zone snapshots that failed to build from stored data (the previous snapshot stays served).",
		}),
		reloads: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flashdns_store_reloads_total",
			Help: "Full loads of the zones from Chainfire (start, and watches that fell behind a compaction).",
		}),
		conflicts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flashdns_store_write_conflicts_total",
			Help: "Writes retried because another replica changed the zone first.",
		}),
		staged: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flashdns_store_staged_writes_total",
			Help: "Changes too large for one transaction, written as a new generation of the zone.",
		}),
		swept: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flashdns_store_swept_generations_total",
			Help: "Abandoned, half-written zone generations deleted.",
		}),
		releases: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flashdns_store_memory_releases_total",
			Help: "Times the store returned free memory to the OS after a large load or change (Options.ReleaseMemoryAfter).",
		}),
	}
	gauges := []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "flashdns_store_zones", Help: "Zones in the store.",
		}, func() float64 {
			s.ix.mu.RLock()
			defer s.ix.mu.RUnlock()
			return float64(len(s.ix.zones))
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "flashdns_store_served_zones", Help: "Zones in the table the DNS server answers from.",
		}, func() float64 { return float64(s.Table().Len()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "flashdns_store_record_sets", Help: "Record sets of all zones (without SOA).",
		}, func() float64 {
			s.ix.mu.RLock()
			defer s.ix.mu.RUnlock()
			n := 0
			for _, zs := range s.ix.zones {
				if t := s.ix.sets(zs); t != nil {
					n += t.Len()
				}
			}
			return float64(n)
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "flashdns_store_applied_revision", Help: "Chainfire revision the store has applied.",
		}, func() float64 { return float64(s.Revision()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "flashdns_store_undecodable_values", Help: "Stored values under /flashdns/ the store ignored because they could not be decoded.",
		}, func() float64 {
			s.ix.mu.RLock()
			defer s.ix.mu.RUnlock()
			return float64(s.ix.bad)
		}),
	}
	m.collectors = append([]prometheus.Collector{m.buildSeconds, m.buildFailures, m.reloads, m.conflicts, m.staged, m.swept, m.releases}, gauges...)
	if reg == nil {
		return m, nil
	}
	for i, c := range m.collectors {
		if err := reg.Register(c); err != nil {
			for _, r := range m.collectors[:i] {
				reg.Unregister(r)
			}
			return nil, fmt.Errorf("register store metrics: %w", err)
		}
	}
	return m, nil
}

// unregister removes the metrics, so that a closed Store is not kept alive
// by its registry and a new one can register.
func (m *metrics) unregister() {
	if m.reg == nil {
		return
	}
	for _, c := range m.collectors {
		m.reg.Unregister(c)
	}
}
