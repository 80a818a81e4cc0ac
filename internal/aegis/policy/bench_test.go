package policy

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"
)

// benchWorld is a synthetic installation shaped like a multi-tenant cloud:
// ~1000 bindings per org, 200 users and 20 service accounts per org, 20
// projects per org, 10 groups per org with every user in 2 of them. Of the
// bindings, about 55% are user grants on projects, 15% on single VMs, 10%
// group grants, 5% org-wide viewers, 5% denies, 5% conditional grants and
// 5% service-account grants.
type benchWorld struct {
	e      *Evaluator
	reqs   []Request
	build  time.Duration
	orgs   int
	heapMB uint64 // live heap after loading, whole test binary
}

const (
	benchBindingsPerOrg = 1000
	benchUsersPerOrg    = 200
	benchSAsPerOrg      = 20
	benchProjects       = 20
	benchGroups         = 10
)

var (
	benchMu     sync.Mutex
	benchWorlds = map[int]*benchWorld{}
)

func getBenchWorld(b *testing.B, n int) *benchWorld {
	benchMu.Lock()
	defer benchMu.Unlock()
	if w := benchWorlds[n]; w != nil {
		return w
	}
	// Keep one big world at a time.
	clear(benchWorlds)
	runtime.GC()
	w := buildBenchWorld(b, n)
	benchWorlds[n] = w
	return w
}

func buildBenchWorld(tb testing.TB, n int) *benchWorld {
	r := rand.New(rand.NewPCG(42, uint64(n)))
	e := newTestEvaluator(tb)
	orgs := max(1, n/benchBindingsPerOrg)
	conds := []string{
		`request.time.getHours() >= 6 && request.time.getHours() < 22`,
		`inCIDR(request.source_ip, "10.0.0.0/8")`,
		`resource.labels[?"env"].orValue("dev") != "prod"`,
	}
	userRoles := []string{"ProjectViewer", "ProjectEditor", "flashdns.editor", "plasmavmc.operator", "flaredb.reader"}
	org := func(o int) string { return fmt.Sprintf("org-%d", o) }
	uname := func(o, u int) string { return fmt.Sprintf("users/u%d-%d", o, u) }
	project := func(o, p int) string { return fmt.Sprintf("orgs/org-%d/projects/p%d", o, p) }
	start := time.Now()
	// Load everything in one transaction, as the server's initial list
	// should (see the package doc).
	type op func(tx *Tx) error
	var ops []op
	add := func(o op) { ops = append(ops, o) }
	for o := range orgs {
		for u := range benchUsersPerOrg {
			p := Principal{Name: uname(o, u), Org: org(o), Labels: map[string]string{"team": fmt.Sprint(u % 7)}}
			add(func(tx *Tx) error { return tx.PutPrincipal(p) })
			g1, g2 := fmt.Sprintf("groups/g%d-%d", o, u%benchGroups), fmt.Sprintf("groups/g%d-%d", o, (u+3)%benchGroups)
			add(func(tx *Tx) error { return tx.AddMember(g1, p.Name) })
			add(func(tx *Tx) error { return tx.AddMember(g2, p.Name) })
		}
		for s := range benchSAsPerOrg {
			p := Principal{Name: fmt.Sprintf("serviceAccounts/sa%d-%d", o, s), Org: org(o), Project: fmt.Sprintf("p%d", s%benchProjects)}
			add(func(tx *Tx) error { return tx.PutPrincipal(p) })
		}
		for g := range benchGroups {
			gr := Group{Name: fmt.Sprintf("groups/g%d-%d", o, g), Org: org(o)}
			add(func(tx *Tx) error { return tx.PutGroup(gr) })
		}
	}
	for i := range n {
		o := (i / benchBindingsPerOrg) % orgs
		b := Binding{ID: fmt.Sprintf("b%d", i), Effect: EffectAllow}
		u := r.IntN(benchUsersPerOrg)
		b.Subject = uname(o, u)
		b.Scope = project(o, r.IntN(benchProjects))
		b.Role = userRoles[r.IntN(len(userRoles))]
		switch x := r.IntN(100); {
		case x < 55:
		case x < 70:
			b.Scope = fmt.Sprintf("%s/vms/vm%d", b.Scope, r.IntN(50))
			b.Role = "plasmavmc.operator"
		case x < 80:
			b.Subject = fmt.Sprintf("groups/g%d-%d", o, r.IntN(benchGroups))
		case x < 85:
			b.Scope, b.Role = "orgs/"+org(o), "OrgViewer"
		case x < 90:
			b.Effect, b.Role = EffectDeny, "flashdns.editor"
		case x < 95:
			b.Condition = conds[r.IntN(len(conds))]
		default:
			b.Subject = fmt.Sprintf("serviceAccounts/sa%d-%d", o, r.IntN(benchSAsPerOrg))
			b.Role = "ProjectEditor"
		}
		if i < 5 {
			b.Subject, b.Scope, b.Role, b.Effect, b.Condition = uname(0, i), "system", "SystemAdmin", EffectAllow, ""
		}
		add(func(tx *Tx) error { return tx.PutBinding(b) })
	}
	must(tb, e.Update(func(tx *Tx) error {
		for _, o := range ops {
			if err := o(tx); err != nil {
				return err
			}
		}
		return nil
	}))
	build := time.Since(start)
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)

	perms := []string{"plasmavmc:vms:get", "plasmavmc:vms:start", "plasmavmc:vms:delete", "flashdns:records:update",
		"flaredb:data:read", "aegis:bindings:create", "plasmavmc:vms:list"}
	reqs := make([]Request, 1<<14)
	for i := range reqs {
		o := r.IntN(orgs)
		res := project(o, r.IntN(benchProjects))
		if r.IntN(2) == 0 {
			res = fmt.Sprintf("%s/vms/vm%d", res, r.IntN(50))
		}
		p := uname(o, r.IntN(benchUsersPerOrg))
		if r.IntN(10) == 0 {
			p = fmt.Sprintf("serviceAccounts/sa%d-%d", o, r.IntN(benchSAsPerOrg))
		}
		reqs[i] = Request{Principal: p, Permission: perms[r.IntN(len(perms))], Resource: res,
			SourceIP: "10.1.2.3", ResourceLabels: map[string]string{"env": "prod"}}
	}
	return &benchWorld{e: e, reqs: reqs, build: build, orgs: orgs, heapMB: ms.HeapAlloc >> 20}
}

var benchSizes = []struct {
	name string
	n    int
}{{"1k", 1_000}, {"100k", 100_000}, {"1M", 1_000_000}}

func reportLatency(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	q := func(f float64) float64 { return float64(lat[min(len(lat)-1, int(f*float64(len(lat))))].Nanoseconds()) }
	b.ReportMetric(q(0.50), "p50-ns")
	b.ReportMetric(q(0.99), "p99-ns")
	b.ReportMetric(q(0.999), "p99.9-ns")
}

// BenchmarkAuthorize measures single decisions, one at a time, and reports
// the latency distribution (p50/p99/p99.9 in ns) and the share of allowed
// decisions.
func BenchmarkAuthorize(b *testing.B) {
	for _, sz := range benchSizes {
		b.Run("bindings="+sz.name, func(b *testing.B) {
			if sz.n >= 1_000_000 && testing.Short() {
				b.Skip("1M bindings skipped in -short mode")
			}
			w := getBenchWorld(b, sz.n)
			b.Logf("loaded %d bindings (%d orgs) in %v, heap %d MiB: %+v", sz.n, w.orgs, w.build, w.heapMB, w.e.Stats())
			ctx := context.Background()
			lat := make([]time.Duration, 0, 1<<20)
			allowedN := 0
			mask := len(w.reqs) - 1
			b.ReportAllocs()
			b.ResetTimer()
			i := 0
			for b.Loop() {
				req := w.reqs[i&mask]
				st := time.Now()
				d, _ := w.e.Authorize(ctx, req)
				el := time.Since(st)
				if len(lat) < cap(lat) {
					lat = append(lat, el)
				}
				if d.Allowed {
					allowedN++
				}
				i++
			}
			b.StopTimer()
			reportLatency(b, lat)
			b.ReportMetric(float64(allowedN)/float64(max(i, 1)), "allowed/op")
		})
	}
}

// BenchmarkAuthorizeParallel measures decision throughput with all cores.
func BenchmarkAuthorizeParallel(b *testing.B) {
	for _, sz := range benchSizes[:2] {
		b.Run("bindings="+sz.name, func(b *testing.B) {
			w := getBenchWorld(b, sz.n)
			ctx := context.Background()
			mask := len(w.reqs) - 1
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := rand.IntN(len(w.reqs))
				for pb.Next() {
					_, _ = w.e.Authorize(ctx, w.reqs[i&mask])
					i++
				}
			})
		})
	}
}

// BenchmarkUpdateBinding measures applying one watch event (a binding put
// or delete, each its own transaction) to a loaded evaluator.
func BenchmarkUpdateBinding(b *testing.B) {
	for _, sz := range benchSizes {
		b.Run("bindings="+sz.name, func(b *testing.B) {
			if sz.n >= 1_000_000 && testing.Short() {
				b.Skip("1M bindings skipped in -short mode")
			}
			w := getBenchWorld(b, sz.n)
			lat := make([]time.Duration, 0, 1<<16)
			i := 0
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				id := fmt.Sprintf("bench-upd-%d", i%1000)
				o := i % w.orgs
				st := time.Now()
				if i%2 == 0 {
					must(b, w.e.PutBinding(allow(id, fmt.Sprintf("users/u%d-%d", o, i%benchUsersPerOrg), "ProjectViewer",
						fmt.Sprintf("orgs/org-%d/projects/p%d", o, i%benchProjects))))
				} else {
					must(b, w.e.DeleteBinding(fmt.Sprintf("bench-upd-%d", (i-1)%1000)))
				}
				if len(lat) < cap(lat) {
					lat = append(lat, time.Since(st))
				}
				i++
			}
			b.StopTimer()
			reportLatency(b, lat)
		})
	}
}

// BenchmarkWhoCan measures the reverse lookup on a project.
func BenchmarkWhoCan(b *testing.B) {
	w := getBenchWorld(b, 100_000)
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		res, err := w.e.WhoCan(ctx, WhoCanRequest{Permission: "plasmavmc:vms:start", Resource: "orgs/org-3/projects/p7/vms/vm1"})
		if err != nil || len(res.Principals) == 0 {
			b.Fatal(err, res)
		}
	}
}
