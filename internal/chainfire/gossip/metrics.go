package gossip

import "github.com/prometheus/client_golang/prometheus"

// collector computes the gossip metrics from the node table at scrape time,
// so no goroutine has to keep gauges current.
type collector struct {
	g       *Gossip
	members *prometheus.Desc
	healthy *prometheus.Desc
	score   *prometheus.Desc
}

func newCollector(g *Gossip) *collector {
	return &collector{
		g: g,
		members: prometheus.NewDesc("chainfire_gossip_members",
			"Nodes this member's gossip knows, by state (alive, suspect, dead, left).", []string{"state"}, nil),
		healthy: prometheus.NewDesc("chainfire_gossip_member_healthy",
			"1 if gossip sees the member alive, 0 if suspect, dead or left.", []string{"member"}, nil),
		score: prometheus.NewDesc("chainfire_gossip_health_score",
			"memberlist's awareness score of this member itself: 0 is healthy, higher means it is slow to answer probes.", nil, nil),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.members
	ch <- c.healthy
	ch <- c.score
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	counts := map[State]int{StateAlive: 0, StateSuspect: 0, StateDead: 0, StateLeft: 0}
	for _, m := range c.g.Members() {
		counts[m.State]++
		up := 0.0
		if m.State == StateAlive {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(c.healthy, prometheus.GaugeValue, up, m.Name)
	}
	for state, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.members, prometheus.GaugeValue, float64(n), state.String())
	}
	ch <- prometheus.MustNewConstMetric(c.score, prometheus.GaugeValue, float64(c.g.ml.GetHealthScore()))
}
