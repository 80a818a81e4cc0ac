package main

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/photoncloud/photoncloud/internal/aegis/policy"
)

// inprocResult is one row of the in-process decision table.
type inprocResult struct {
	Bindings   int           `json:"bindings"`
	Orgs       int           `json:"orgs"`
	Principals int           `json:"principals"`
	Load       time.Duration `json:"load_ns"`        // the one Update that loads everything
	HeapBytes  uint64        `json:"heap_bytes"`     // live heap the loaded evaluator adds, after GC
	Calls      int           `json:"calls"`          // measured sequential calls
	Lat        latencies     `json:"latency"`        // every call
	ByOutcome  [3]latencies  `json:"by_outcome"`     // allowed, denied by a binding, default deny (+ other denials)
	Parallel   float64       `json:"parallel_per_s"` // decisions/s with GOMAXPROCS goroutines
	ParallelG  int           `json:"parallel_goroutines"`
	OtherCPU   float64       `json:"other_cpu_percent"`
	Window     time.Duration `json:"window_ns"`
	TargetP99  time.Duration `json:"target_p99_ns,omitempty"`
}

// Outcome indexes of inprocResult.ByOutcome and window.Outcomes.
const (
	outAllowed = iota
	outDenied
	outDefault
)

// policyName renders a world principal or group for the evaluator, which
// wants installation-wide ids (the server uses uids; any unique id will do).
func policyName(o int, k subjKind, i int) string {
	switch k {
	case subjSA:
		return fmt.Sprintf("serviceAccounts/sa%d-%d", o, i)
	case subjGroup:
		return fmt.Sprintf("groups/g%d-%d", o, i)
	}
	return fmt.Sprintf("users/u%d-%d", o, i)
}

// policyWorld is a world rendered for the evaluator.
type policyWorld struct {
	groups     []policy.Group
	principals []policy.Principal
	members    [][2]string // group, member
	bindings   []policy.Binding
}

func renderPolicy(w *world) *policyWorld {
	pw := &policyWorld{bindings: make([]policy.Binding, 0, len(w.bindings))}
	for o := range w.orgs {
		org := fmt.Sprintf("org-%d", o)
		for g := range groupsPerOrg {
			pw.groups = append(pw.groups, policy.Group{Name: policyName(o, subjGroup, g), Org: org})
		}
		for u := range usersPerOrg {
			p := policy.Principal{Name: policyName(o, subjUser, u), Org: org, Labels: map[string]string{"team": fmt.Sprint(u % 7)}}
			pw.principals = append(pw.principals, p)
			for _, g := range memberships(u) {
				pw.members = append(pw.members, [2]string{policyName(o, subjGroup, g), p.Name})
			}
		}
		for s := range sasPerOrg {
			pw.principals = append(pw.principals, policy.Principal{Name: policyName(o, subjSA, s), Org: org, Project: fmt.Sprintf("p%d", saProject(s))})
		}
	}
	for i := range w.bindings {
		b := &w.bindings[i]
		pb := policy.Binding{ID: fmt.Sprintf("b%d", b.id), Subject: policyName(b.org, b.subj, b.idx), Role: b.role,
			Scope: apiScope(b), Effect: policy.EffectAllow}
		if b.deny {
			pb.Effect = policy.EffectDeny
		}
		if b.cond >= 0 {
			pb.Condition = conditions[b.cond]
		}
		pw.bindings = append(pw.bindings, pb)
	}
	return pw
}

// loadEvaluator loads pw into a new evaluator in one Update, as the server
// does on start (the policy package doc says a load should be one
// transaction), and returns the time that Update took.
func loadEvaluator(pw *policyWorld) (*policy.Evaluator, time.Duration, error) {
	e, err := policy.New(policy.Options{})
	if err != nil {
		return nil, 0, err
	}
	start := time.Now()
	err = e.Update(func(tx *policy.Tx) error {
		for _, g := range pw.groups {
			if err := tx.PutGroup(g); err != nil {
				return err
			}
		}
		for _, p := range pw.principals {
			if err := tx.PutPrincipal(p); err != nil {
				return err
			}
		}
		for _, m := range pw.members {
			if err := tx.AddMember(m[0], m[1]); err != nil {
				return err
			}
		}
		for _, b := range pw.bindings {
			if err := tx.PutBinding(b); err != nil {
				return fmt.Errorf("binding %s: %w", b.ID, err)
			}
		}
		return nil
	})
	return e, time.Since(start), err
}

// policyRequests renders w's requests for the evaluator. Two label maps are
// shared by all requests, as a service would pass the labels it has.
func policyRequests(w *world) []policy.Request {
	prod, dev := map[string]string{"env": "prod"}, map[string]string{"env": "dev"}
	out := make([]policy.Request, len(w.reqs))
	for i, q := range w.reqs {
		labels := dev
		if q.prod {
			labels = prod
		}
		out[i] = policy.Request{Principal: policyName(q.org, q.subj, q.idx), Permission: q.perm,
			Resource: apiResource(q.org, q.project, q.vm), ResourceLabels: labels, SourceIP: "10.1.2.3"}
	}
	return out
}

func heapAlloc() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// runInproc measures Evaluator.Authorize with n bindings: one goroutine
// calling it back to back for d, timing every call, then all cores in
// parallel for a shorter while (throughput only).
func runInproc(ctx context.Context, lg *slog.Logger, n int, d time.Duration) (*inprocResult, error) {
	const seed = 42
	w := genWorld(n, 1<<16, seed)
	reqs := policyRequests(w)
	orgs := w.orgs
	// The heap before loading holds the requests (w is dead from here);
	// the world is generated again (the same, from the seed) and is
	// garbage once loaded, so the difference is what the evaluator keeps.
	base := heapAlloc()
	e, load, err := loadEvaluator(renderPolicy(genWorld(n, 0, seed)))
	if err != nil {
		return nil, fmt.Errorf("load %d bindings: %w", n, err)
	}
	heap := heapAlloc()
	heap -= min(base, heap)
	st := e.Stats()
	res := &inprocResult{Bindings: st.Bindings, Orgs: orgs, Principals: st.Principals, Load: load, HeapBytes: heap}
	lg.Info("in-process evaluator loaded", "bindings", st.Bindings, "principals", st.Principals, "groups", st.Groups,
		"memberships", st.Memberships, "load", load.Round(time.Millisecond), "heap_MiB", heap>>20)

	// Warm up caches and the branch predictor, unmeasured.
	mask := len(reqs) - 1
	for i := range 100_000 {
		_, _ = e.Authorize(ctx, reqs[i&mask])
	}

	lat := make([]time.Duration, 0, 1<<22)
	var by [3][]time.Duration
	before := sampleCPU()
	start := time.Now()
	i := 0
	for ; ; i++ {
		if i&1023 == 0 && (time.Since(start) >= d || ctx.Err() != nil) {
			break
		}
		t0 := time.Now()
		dec, _ := e.Authorize(ctx, reqs[i&mask])
		el := time.Since(t0)
		if len(lat) < cap(lat) {
			lat = append(lat, el)
			o := outDefault
			switch {
			case dec.Allowed:
				o = outAllowed
			case dec.Reason == policy.ReasonDenied:
				o = outDenied
			}
			by[o] = append(by[o], el)
		}
	}
	after := sampleCPU()
	res.Calls = i
	res.Window = after.at.Sub(before.at)
	res.OtherCPU = otherCPUPercent(before, after)
	res.Lat = summarize(lat)
	for o := range by {
		res.ByOutcome[o] = summarize(by[o])
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	// Throughput with every core busy: what one replica's evaluator could
	// answer if nothing else ran.
	g := runtime.GOMAXPROCS(0)
	var calls atomic.Int64
	var wg sync.WaitGroup
	pd := min(d, 2*time.Second)
	pstart := time.Now()
	for k := range g {
		wg.Go(func() {
			j := k * 7919
			for ; time.Since(pstart) < pd; j++ {
				for range 256 {
					_, _ = e.Authorize(ctx, reqs[j&mask])
					j++
				}
				calls.Add(256)
			}
		})
	}
	wg.Wait()
	res.ParallelG = g
	res.Parallel = float64(calls.Load()) / time.Since(pstart).Seconds()
	runtime.KeepAlive(e)
	return res, nil
}
