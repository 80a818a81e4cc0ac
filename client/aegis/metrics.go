package aegis

import (
	"errors"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the client's Prometheus series. Every method is a no-op on
// a nil *metrics (no Registry configured).
type metrics struct {
	calls     *prometheus.CounterVec // by result
	cache     *prometheus.CounterVec // decision cache, by result
	authorize prometheus.Histogram   // Authorize RPC latency
	fetches   *prometheus.CounterVec // JWKS fetches, by result
	limited   prometheus.Counter     // unknown-kid refreshes refused by the rate limit
}

// Results of an intercepted call, the label of aegis_client_calls_total.
const (
	resultAllowed         = "allowed"
	resultDenied          = "denied"
	resultUnauthenticated = "unauthenticated"
	resultUnavailable     = "unavailable"
	resultPublic          = "public"
	resultInvalid         = "invalid"
)

func newMetrics(reg prometheus.Registerer, lg *slog.Logger) *metrics {
	if reg == nil {
		return nil
	}
	return &metrics{
		calls: register(reg, lg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aegis_client_calls_total",
			Help: "Calls seen by the Aegis interceptors, by result (allowed, denied, unauthenticated, unavailable, public, invalid).",
		}, []string{"result"})),
		cache: register(reg, lg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aegis_client_decision_cache_total",
			Help: "Decision cache lookups, by result (hit, miss).",
		}, []string{"result"})),
		authorize: register(reg, lg, prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "aegis_client_authorize_seconds",
			Help:    "Latency of AuthzService.Authorize calls made on a decision cache miss.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16), // 0.1ms .. ~3s
		})),
		fetches: register(reg, lg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aegis_client_jwks_fetches_total",
			Help: "JWKS fetches from Aegis, by result (ok, error).",
		}, []string{"result"})),
		limited: register(reg, lg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "aegis_client_jwks_refresh_limited_total",
			Help: "JWKS refreshes for an unknown kid that the rate limit refused.",
		})),
	}
}

// register adds c to reg, reusing an identical collector already there so
// that several services in one process (photon dev) share the series.
func register[C prometheus.Collector](reg prometheus.Registerer, lg *slog.Logger, c C) C {
	if err := reg.Register(c); err != nil {
		if are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		lg.Warn("aegis client metrics not registered", "err", err)
	}
	return c
}

func (m *metrics) call(result string) {
	if m != nil {
		m.calls.WithLabelValues(result).Inc()
	}
}

func (m *metrics) cacheLookup(hit bool) {
	if m == nil {
		return
	}
	if hit {
		m.cache.WithLabelValues("hit").Inc()
	} else {
		m.cache.WithLabelValues("miss").Inc()
	}
}

func (m *metrics) authorizeLatency(seconds float64) {
	if m != nil {
		m.authorize.Observe(seconds)
	}
}

func (m *metrics) fetch(err error) {
	if m == nil {
		return
	}
	if err != nil {
		m.fetches.WithLabelValues("error").Inc()
	} else {
		m.fetches.WithLabelValues("ok").Inc()
	}
}

func (m *metrics) refreshLimited() {
	if m != nil {
		m.limited.Inc()
	}
}
