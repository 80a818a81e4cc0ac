package main

import (
	"strings"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 50 * time.Millisecond}, {0.99, 99 * time.Millisecond}, {0.999, 100 * time.Millisecond}, {0, time.Millisecond}} {
		if got := percentile(d, tc.q); got != tc.want {
			t.Errorf("percentile(%v) = %v, want %v", tc.q, got, tc.want)
		}
	}
	if got := percentile(nil, 0.5); got != 0 {
		t.Errorf("percentile(nil) = %v, want 0", got)
	}
}

func TestVerdict(t *testing.T) {
	for _, tc := range []struct {
		base, cand time.Duration
		want       string
	}{
		{10, 5, "better (x0.50)"},
		{10, 11, "on par (x1.10)"},
		{10, 9, "on par (x0.90)"},
		{10, 20, "worse (x2.00)"},
		{0, 20, "-"},
	} {
		if got := verdict(tc.base, tc.cand, 0.10); got != tc.want {
			t.Errorf("verdict(%v, %v) = %q, want %q", tc.base, tc.cand, got, tc.want)
		}
	}
}

func TestMarkdownTable(t *testing.T) {
	sh := shape{clients: 64, conns: 8}
	cfg := &config{servers: []string{"etcd", "chainfire"}, workloads: []string{wPut}, shapes: []shape{sh},
		duration: time.Second, p99Tolerance: 0.1}
	mk := func(server string, ops int64, p99 time.Duration) *rowResult {
		return &rowResult{Server: server, Workload: wPut, Clients: 64, Conns: 8, Ops: ops, Elapsed: time.Second,
			P50: time.Millisecond, P99: p99, Metrics: map[string]float64{}}
	}
	rep := buildReport(cfg, &environment{}, []*rowResult{mk("etcd", 1000, 10*time.Millisecond), mk("chainfire", 1500, 30*time.Millisecond)})
	md := rep.markdown()
	want := "| put | 64 (8) | 1000 | 1.00 | 10.0 | 1500 | 1.00 | 30.0 | 1.50 | worse (x3.00) |"
	if !strings.Contains(md, want) {
		t.Errorf("markdown lacks row %q:\n%s", want, md)
	}
}
