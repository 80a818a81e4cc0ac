package kvserver

import (
	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the member's Prometheus metrics, named as etcd's where they
// mean the same, so existing dashboards and alerts apply.
type Metrics struct {
	hasLeader        prometheus.Gauge
	isLeader         prometheus.Gauge
	leaderChanges    prometheus.Counter
	proposalsApplied prometheus.Counter
	proposalsPending prometheus.Gauge
	proposalsFailed  prometheus.Counter
	walFsync         prometheus.Histogram
	dbSize           prometheus.Gauge
	dbSizeInUse      prometheus.Gauge
	alarms           prometheus.Gauge
	fatalErrors      prometheus.Counter
	quota            prometheus.Gauge
}

// NewMetrics creates the metrics and registers them on reg (nil: unregistered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		hasLeader: prometheus.NewGauge(prometheus.GaugeOpts{Name: "etcd_server_has_leader",
			Help: "Whether or not a leader exists. 1 is existence, 0 is not."}),
		isLeader: prometheus.NewGauge(prometheus.GaugeOpts{Name: "etcd_server_is_leader",
			Help: "Whether or not this member is a leader. 1 if is, 0 otherwise."}),
		leaderChanges: prometheus.NewCounter(prometheus.CounterOpts{Name: "etcd_server_leader_changes_seen_total",
			Help: "The number of leader changes seen."}),
		proposalsApplied: prometheus.NewCounter(prometheus.CounterOpts{Name: "etcd_server_proposals_applied_total",
			Help: "The total number of consensus proposals applied."}),
		proposalsPending: prometheus.NewGauge(prometheus.GaugeOpts{Name: "etcd_server_proposals_pending",
			Help: "The current number of pending proposals to commit."}),
		proposalsFailed: prometheus.NewCounter(prometheus.CounterOpts{Name: "etcd_server_proposals_failed_total",
			Help: "The total number of failed proposals seen."}),
		walFsync: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "etcd_disk_wal_fsync_duration_seconds",
			Help:    "The latency distributions of fsync of the raft log.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
		dbSize: prometheus.NewGauge(prometheus.GaugeOpts{Name: "etcd_mvcc_db_total_size_in_bytes",
			Help: "Total size of the underlying database physically allocated in bytes."}),
		dbSizeInUse: prometheus.NewGauge(prometheus.GaugeOpts{Name: "etcd_mvcc_db_total_size_in_use_in_bytes",
			Help: "Total size of the underlying database logically in use in bytes."}),
		alarms: prometheus.NewGauge(prometheus.GaugeOpts{Name: "chainfire_server_active_alarms",
			Help: "The number of active alarms."}),
		fatalErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "chainfire_server_fatal_errors_total",
			Help: "Storage failures that stopped the member."}),
		quota: prometheus.NewGauge(prometheus.GaugeOpts{Name: "etcd_server_quota_backend_bytes",
			Help: "Current backend storage quota size in bytes."}),
	}
	if reg != nil {
		reg.MustRegister(m.hasLeader, m.isLeader, m.leaderChanges, m.proposalsApplied, m.proposalsPending,
			m.proposalsFailed, m.walFsync, m.dbSize, m.dbSizeInUse, m.alarms, m.fatalErrors, m.quota)
	}
	return m
}

// setSizes reads the store's size from Pebble.
func (m *Metrics) setSizes(db *pebble.DB) (total, inUse int64) {
	mt := db.Metrics()
	// Logs count by what they hold, not by their preallocated length.
	total = int64(mt.DiskSpaceUsage()-mt.WAL.PhysicalSize-mt.WAL.ObsoletePhysicalSize) + int64(mt.WAL.Size)
	levels := mt.Total()
	// Live tables plus the log not yet flushed into them; Pebble's disk
	// usage also counts obsolete files awaiting deletion, so clamp.
	inUse = min(levels.AggregateSize()+int64(mt.WAL.Size), total)
	m.dbSize.Set(float64(total))
	m.dbSizeInUse.Set(float64(inUse))
	return total, inUse
}
