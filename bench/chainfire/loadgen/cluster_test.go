package main

import (
	"strings"
	"testing"
	"time"
)

func TestParseClusterRow(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want clusterRow
		ok   bool
	}{
		{"put@leader", clusterRow{workload: wPut, target: targetLeader}, true},
		{"get-serializable@all", clusterRow{workload: wGetSer, target: targetAll}, true},
		{"watch-fanout", clusterRow{workload: wWatch}, true},
		{"failover", clusterRow{workload: wFailover}, true},
		{"put", clusterRow{}, false},
		{"put@follower", clusterRow{}, false},
		{"scan@all", clusterRow{}, false},
	} {
		got, err := parseClusterRow(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseClusterRow(%q) = %v, %v; want %v, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
		if tc.ok && got.String() != tc.in {
			t.Errorf("%q round-trips as %q", tc.in, got.String())
		}
	}
}

func TestStamp(t *testing.T) {
	sent := time.Unix(1700000000, 123456789)
	pad := newKeyspace(1, 256).value
	for _, measured := range []bool{true, false} {
		v := stampValue(sent, measured, pad, 256)
		if len(v) != 256 {
			t.Errorf("value is %d bytes, want 256", len(v))
		}
		ns, m, ok := parseStamp([]byte(v))
		if !ok || ns != sent.UnixNano() || m != measured {
			t.Errorf("parseStamp(stampValue(measured=%v)) = %d, %v, %v", measured, ns, m, ok)
		}
	}
	if _, _, ok := parseStamp([]byte("garbage")); ok {
		t.Error("parseStamp accepted a value without a stamp")
	}
}

func TestClusterMarkdown(t *testing.T) {
	sh := shape{clients: 1, conns: 1}
	cfg := &config{servers: []string{"etcd", "chainfire"}, shapes: []shape{sh}, duration: time.Second, p99Tolerance: 0.1,
		members: 3, watchers: 100, watchRate: 100,
		clusterRows: []clusterRow{{workload: wPut, target: targetAll}, {workload: wWatch}, {workload: wFailover}}}
	mk := func(server, workload, target string, sh shape, ops int64, p99 time.Duration) *rowResult {
		return &rowResult{Server: server, Workload: workload, Target: target, Clients: sh.clients, Conns: sh.conns, Ops: ops,
			Elapsed: time.Second, P50: time.Millisecond, P99: p99, Metrics: map[string]float64{}}
	}
	ws := cfg.watchShape()
	trial := func(server string, leader time.Duration) *failoverTrial {
		return &failoverTrial{Server: server, Leader: leader, FirstWrite: leader + time.Millisecond}
	}
	rep := &clusterReport{cfg: cfg, env: &environment{}, results: []*rowResult{
		mk("etcd", wPut, targetAll, sh, 1000, 2*time.Millisecond), mk("chainfire", wPut, targetAll, sh, 1100, 2*time.Millisecond),
		mk("etcd", wWatch, "", ws, 10000, 10*time.Millisecond), mk("chainfire", wWatch, "", ws, 10000, 5*time.Millisecond),
	}, trials: map[string][]*failoverTrial{
		"etcd":      {trial("etcd", 1000*time.Millisecond), trial("etcd", 1200*time.Millisecond), trial("etcd", 1900*time.Millisecond)},
		"chainfire": {trial("chainfire", 1100*time.Millisecond), trial("chainfire", 1300*time.Millisecond), trial("chainfire", 1500*time.Millisecond)},
	}}
	md := rep.markdown()
	for _, want := range []string{
		"| put | all members | 1 (1) | 1000 | 1.00 | 2.00 | 1100 | 1.00 | 2.00 | 1.10 | on par (x1.00) |",
		"| 100 (12) | 100 | 10000 | 1.00 | 10.0 | 10000 | 1.00 | 5.00 | 1.00 | better (x0.50) |",
		"| a survivor reports itself leader | 3 | 1200 | 1900 | 1300 | 1500 | 1.08 | on par (x1.08) |",
		"| first write acknowledged | 3 | 1201 | 1901 | 1301 | 1501 | 1.08 | on par (x1.08) |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks row %q:\n%s", want, md)
		}
	}
}
