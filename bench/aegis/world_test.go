package main

import (
	"context"
	"testing"
	"time"

	"github.com/photoncloud/photoncloud/internal/aegis/policy"
)

// The request mix must exercise what it claims to: requests built for an
// allow binding are (nearly all) allowed, those built for a deny binding
// are denied by a binding, and every path of the decision shows up.
func TestWorldExercisesEveryPath(t *testing.T) {
	w := genWorld(3000, 1<<12, 1)
	e, _, err := loadEvaluator(renderPolicy(w))
	if err != nil {
		t.Fatal(err)
	}
	reqs := policyRequests(w)
	var byClass [4][3]int
	for i, r := range reqs {
		d, err := e.Authorize(context.Background(), r)
		if err != nil {
			t.Fatalf("request %d %+v: %v", i, r, err)
		}
		o := outDefault
		switch {
		case d.Allowed:
			o = outAllowed
		case d.Reason == policy.ReasonDenied:
			o = outDenied
		}
		byClass[w.reqs[i].class][o]++
	}
	t.Logf("outcomes by class (allowed, denied, default): allow %v deny %v cond %v random %v",
		byClass[classAllow], byClass[classDeny], byClass[classCond], byClass[classRandom])
	allow := byClass[classAllow]
	// A deny binding on flashdns records may override a targeted allow.
	if allow[outAllowed] < 9*(allow[outAllowed]+allow[outDenied]+allow[outDefault])/10 {
		t.Errorf("targeted allows: %v, want at least 90%% allowed", allow)
	}
	if deny := byClass[classDeny]; deny[outAllowed] != 0 || deny[outDefault] != 0 || deny[outDenied] == 0 {
		t.Errorf("targeted denies: %v, want all denied by a binding", deny)
	}
	if c := byClass[classCond]; c[outAllowed] == 0 || c[outDefault] == 0 {
		t.Errorf("conditional: %v, want both outcomes", c)
	}
	if r := byClass[classRandom]; r[outDefault] <= r[outAllowed] {
		t.Errorf("random: %v, want mostly default deny", r)
	}
}

func TestSummarizeNearestRank(t *testing.T) {
	var l []time.Duration
	for i := 100; i >= 1; i-- {
		l = append(l, time.Duration(i))
	}
	s := summarize(l)
	if s.P50 != 50 || s.P99 != 99 || s.P999 != 100 || s.Max != 100 || s.N != 100 {
		t.Errorf("summarize(1..100) = %+v, want p50 50, p99 99, p99.9 100, max 100", s)
	}
	if s := summarize([]time.Duration{7}); s.P50 != 7 || s.P999 != 7 {
		t.Errorf("summarize([7]) = %+v", s)
	}
}

func TestParseCount(t *testing.T) {
	for in, want := range map[string]int{"1000": 1000, "1k": 1000, "100k": 100_000, "1M": 1_000_000} {
		if got, err := parseCount(in); err != nil || got != want {
			t.Errorf("parseCount(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "k", "-1", "1G"} {
		if _, err := parseCount(bad); err == nil {
			t.Errorf("parseCount(%q) accepted", bad)
		}
	}
}
