package policy

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

// This file checks the evaluator against a reference model written as the
// rules read (loop over every binding, match patterns segment by segment),
// on random worlds from a fixed seed, and checks the individual properties
// (scope inheritance, wildcards, deny precedence, conditions, expiry) by
// transforming random worlds.

// refCond is a condition the reference can evaluate without CEL.
type refCond struct {
	expr string
	eval func(req *Request, p Principal, groups []string) (bool, error)
}

var refConds = []refCond{
	{"true", func(*Request, Principal, []string) (bool, error) { return true, nil }},
	{"false", func(*Request, Principal, []string) (bool, error) { return false, nil }},
	{`resource.labels["env"] == "prod"`, func(r *Request, _ Principal, _ []string) (bool, error) {
		v, ok := r.ResourceLabels["env"]
		if !ok {
			return false, errors.New("no such key")
		}
		return v == "prod", nil
	}},
	{`inCIDR(request.source_ip, "10.0.0.0/8")`, func(r *Request, _ Principal, _ []string) (bool, error) {
		a, err := netip.ParseAddr(r.SourceIP)
		if err != nil {
			return false, err
		}
		return netip.MustParsePrefix("10.0.0.0/8").Contains(a.Unmap()), nil
	}},
	{`request.time < timestamp("2026-11-27T12:30:00Z")`, func(r *Request, _ Principal, _ []string) (bool, error) {
		return r.Time.Before(time.Date(2026, 11, 27, 12, 30, 0, 0, time.UTC)), nil
	}},
	{`principal.labels["team"] == "dns"`, func(_ *Request, p Principal, _ []string) (bool, error) {
		v, ok := p.Labels["team"]
		if !ok {
			return false, errors.New("no such key")
		}
		return v == "dns", nil
	}},
	{`"groups/g1" in principal.groups`, func(_ *Request, _ Principal, gs []string) (bool, error) {
		return slices.Contains(gs, "groups/g1"), nil
	}},
	{`resource.kind == "vms" || principal.kind == "serviceAccount"`, func(r *Request, p Principal, _ []string) (bool, error) {
		res, _ := ParseResource(r.Resource)
		return res.Kind() == "vms" || strings.HasPrefix(p.Name, "serviceAccounts/"), nil
	}},
}

func refCondByExpr(expr string) refCond {
	for _, c := range refConds {
		if c.expr == expr {
			return c
		}
	}
	panic("unknown condition " + expr)
}

// refWorld is the reference model: plain maps, no indexes.
type refWorld struct {
	principals map[string]Principal
	groups     map[string]Group
	members    map[[2]string]bool // (group, member)
	roles      map[string]Role
	bindings   map[string]Binding
	rev        int64
}

func newRefWorld() *refWorld {
	return &refWorld{
		principals: map[string]Principal{},
		groups:     map[string]Group{},
		members:    map[[2]string]bool{},
		roles:      map[string]Role{},
		bindings:   map[string]Binding{},
	}
}

func (w *refWorld) clone() *refWorld {
	c := newRefWorld()
	for k, v := range w.principals {
		c.principals[k] = v
	}
	for k, v := range w.groups {
		c.groups[k] = v
	}
	for k, v := range w.members {
		c.members[k] = v
	}
	for k, v := range w.roles {
		c.roles[k] = v
	}
	for k, v := range w.bindings {
		c.bindings[k] = v
	}
	c.rev = w.rev
	return c
}

func refRoleMatches(perms []string, perm string) bool {
	p, err := parsePermission(perm)
	if err != nil {
		panic(err)
	}
	for _, s := range perms {
		pat, err := parsePattern(s)
		if err != nil {
			panic(err)
		}
		if pat.matches(p) {
			return true
		}
	}
	return false
}

// decide returns the expected outcome and the sets of bindings that may
// legitimately be reported as deciding.
func (w *refWorld) decide(req Request) (allowed bool, reason Reason, deciders map[string]bool) {
	p, ok := w.principals[req.Principal]
	if !ok {
		return false, ReasonUnknownPrincipal, nil
	}
	if p.Disabled {
		return false, ReasonPrincipalDisabled, nil
	}
	var groups []string
	for g := range w.groups {
		if w.members[[2]string{g, req.Principal}] {
			groups = append(groups, g)
		}
	}
	slices.Sort(groups)
	res, err := ParseResource(req.Resource)
	if err != nil {
		panic(err)
	}
	denies, allows := map[string]bool{}, map[string]bool{}
	for id, b := range w.bindings {
		if b.Subject != req.Principal && !slices.Contains(groups, b.Subject) {
			continue
		}
		scope, _ := ParseResource(b.Scope)
		if !scope.Contains(res) {
			continue
		}
		if !b.ExpireTime.IsZero() && !req.Time.Before(b.ExpireTime) {
			continue
		}
		var perms []string
		var roleOK bool
		if r, ok := builtinRoles[b.Role]; ok {
			perms, roleOK = r.Permissions, true
		} else if r, ok := w.roles[b.Role]; ok {
			perms, roleOK = r.Permissions, true
		}
		if b.Effect == EffectDeny {
			if !roleOK {
				denies[id] = true
				continue
			}
			if !refRoleMatches(perms, req.Permission) {
				continue
			}
			if b.Condition == "" {
				denies[id] = true
				continue
			}
			v, err := refCondByExpr(b.Condition).eval(&req, p, groups)
			if err != nil || v {
				denies[id] = true
			}
			continue
		}
		if !roleOK || !refRoleMatches(perms, req.Permission) {
			continue
		}
		if b.Condition != "" {
			if v, err := refCondByExpr(b.Condition).eval(&req, p, groups); err != nil || !v {
				continue
			}
		}
		allows[id] = true
	}
	switch {
	case len(denies) > 0:
		return false, ReasonDenied, denies
	case len(allows) > 0:
		return true, ReasonAllowed, allows
	}
	return false, ReasonNoMatchingBinding, nil
}

// gen generates random worlds and requests over a small vocabulary, so that
// random bindings and requests actually meet.
type gen struct {
	r *rand.Rand
}

func newGen(seed uint64) *gen { return &gen{r: rand.New(rand.NewPCG(seed, seed^0x5eed))} }

func (g *gen) pick(xs []string) string { return xs[g.r.IntN(len(xs))] }

var (
	genOrgs      = []string{"o1", "o2"}
	genResources = []string{
		"system", "orgs/o1", "orgs/o2", "orgs/o1/projects/p1", "orgs/o1/projects/p2", "orgs/o2/projects/p1",
		"orgs/o1/projects/p1/vms/v1", "orgs/o1/projects/p1/vms/v2", "orgs/o1/projects/p2/vms/v1",
		"orgs/o1/projects/p1/zones/z1", "orgs/o1/projects/p1/zones/z1/records/r1", "orgs/o1/users/u1",
		"orgs/o2/projects/p1/vms/v1",
	}
	genPrincipals = []string{"users/u1", "users/u2", "users/u3", "users/u4", "serviceAccounts/s1", "serviceAccounts/s2"}
	genGroups     = []string{"groups/g1", "groups/g2", "groups/g3"}
	genBuiltins   = []string{"OrgAdmin", "OrgViewer", "ProjectAdmin", "ProjectEditor", "ProjectViewer",
		"flashdns.editor", "flashdns.viewer", "plasmavmc.operator", "flaredb.reader"}
	genPerms = []string{
		"plasmavmc:vms:get", "plasmavmc:vms:start", "plasmavmc:vms:delete", "plasmavmc:images:list",
		"flashdns:records:update", "flashdns:zones:get", "flashdns:zones:delete", "flaredb:data:read",
		"aegis:bindings:create", "aegis:projects:get", "aegis:orgs:create", "foo:bar:baz",
	}
	genSegs = [][]string{
		{"plasmavmc", "flashdns", "flaredb", "aegis", "foo"},
		{"vms", "images", "records", "zones", "data", "bindings", "bar"},
		{"get", "start", "delete", "list", "update", "read", "create", "baz"},
	}
)

func (g *gen) pattern() string {
	var s [3]string
	for i := range s {
		if g.r.IntN(3) == 0 {
			s[i] = "*"
		} else {
			s[i] = g.pick(genSegs[i])
		}
	}
	return s[0] + ":" + s[1] + ":" + s[2]
}

func (g *gen) role(org string) Role {
	r := Role{Name: fmt.Sprintf("orgs/%s/roles/r%d", org, g.r.IntN(3))}
	for range 1 + g.r.IntN(3) {
		r.Permissions = append(r.Permissions, g.pattern())
	}
	return r
}

func (g *gen) principal(name string) Principal {
	p := Principal{Name: name, Org: g.pick(genOrgs)}
	if g.r.IntN(8) == 0 {
		p.Disabled = true
	}
	if g.r.IntN(2) == 0 {
		p.Labels = map[string]string{"team": g.pick([]string{"dns", "vm"})}
	}
	return p
}

// binding draws a valid binding. opts restrict it for targeted properties.
type bindingOpts struct {
	noDeny, noCond, noExpiry bool
}

func (g *gen) binding(id string, o bindingOpts) Binding {
	scope := g.pick(genResources)
	role := g.pick(genBuiltins)
	if res, _ := ParseResource(scope); res.Org() != "" && g.r.IntN(3) == 0 {
		role = fmt.Sprintf("orgs/%s/roles/r%d", res.Org(), g.r.IntN(3))
	}
	if scope == "system" && g.r.IntN(10) == 0 {
		role = "SystemAdmin"
	}
	subjects := append(slices.Clone(genPrincipals), genGroups...)
	b := Binding{ID: id, Subject: g.pick(subjects), Role: role, Scope: scope, Effect: EffectAllow}
	if !o.noDeny && g.r.IntN(4) == 0 {
		b.Effect = EffectDeny
	}
	if !o.noCond && g.r.IntN(3) == 0 {
		b.Condition = refConds[g.r.IntN(len(refConds))].expr
	}
	if !o.noExpiry && g.r.IntN(5) == 0 {
		b.ExpireTime = t0.Add(time.Duration(g.r.IntN(120)-60) * time.Minute)
	}
	return b
}

// world builds a random reference world.
func (g *gen) world(nBindings int, o bindingOpts) *refWorld {
	w := newRefWorld()
	for _, p := range genPrincipals {
		if g.r.IntN(10) != 0 {
			w.principals[p] = g.principal(p)
		}
	}
	for _, gr := range genGroups {
		if g.r.IntN(5) != 0 {
			w.groups[gr] = Group{Name: gr, Org: g.pick(genOrgs)}
		}
		for _, p := range genPrincipals {
			if g.r.IntN(3) == 0 {
				w.members[[2]string{gr, p}] = true
			}
		}
	}
	for _, org := range genOrgs {
		for range 2 {
			r := g.role(org)
			w.roles[r.Name] = r
		}
	}
	for i := range nBindings {
		b := g.binding(fmt.Sprintf("b%d", i), o)
		w.bindings[b.ID] = b
	}
	return w
}

func (g *gen) request() Request {
	req := Request{
		Principal:  g.pick(append(slices.Clone(genPrincipals), "users/ghost")),
		Permission: g.pick(genPerms),
		Resource:   g.pick(genResources),
		Time:       t0.Add(time.Duration(g.r.IntN(120)-60) * time.Minute),
	}
	switch g.r.IntN(3) {
	case 0:
		req.ResourceLabels = map[string]string{"env": "prod"}
	case 1:
		req.ResourceLabels = map[string]string{"env": "dev"}
	}
	switch g.r.IntN(3) {
	case 0:
		req.SourceIP = "10.1.2.3"
	case 1:
		req.SourceIP = "192.168.1.1"
	}
	return req
}

// load builds an evaluator holding w, in one transaction.
func load(t testing.TB, w *refWorld) *Evaluator {
	t.Helper()
	e := newTestEvaluator(t)
	must(t, e.Update(func(tx *Tx) error { return loadTx(tx, w) }))
	return e
}

func loadTx(tx *Tx, w *refWorld) error {
	for _, p := range w.principals {
		if err := tx.PutPrincipal(p); err != nil {
			return err
		}
	}
	for _, g := range w.groups {
		if err := tx.PutGroup(g); err != nil {
			return err
		}
	}
	for m := range w.members {
		if err := tx.AddMember(m[0], m[1]); err != nil {
			return err
		}
	}
	for _, r := range w.roles {
		if err := tx.PutRole(r); err != nil {
			return err
		}
	}
	for _, b := range w.bindings {
		if err := tx.PutBinding(b); err != nil {
			return err
		}
	}
	return tx.SetRevision(w.rev)
}

// agree checks one request against the reference.
func agree(t *testing.T, e *Evaluator, w *refWorld, req Request) {
	t.Helper()
	d, err := e.Authorize(context.Background(), req)
	if err != nil {
		t.Fatalf("%+v: %v", req, err)
	}
	allowed, reason, deciders := w.decide(req)
	if d.Allowed != allowed || d.Reason != reason || (deciders != nil && !deciders[d.BindingID]) {
		t.Fatalf("request %+v\n got  %v\n want allowed=%v reason=%v by one of %v", req, d, allowed, reason, deciders)
	}
	if d.Revision != w.rev {
		t.Fatalf("revision %d, want %d", d.Revision, w.rev)
	}
}

func TestPropertyMatchesReference(t *testing.T) {
	g := newGen(1)
	for i := range 150 {
		n := 5 + g.r.IntN(40)
		if i%5 == 0 {
			// Dense worlds: subjects with more scopes than linearScopes
			// take the binary-search path.
			n = 150 + g.r.IntN(150)
		}
		w := g.world(n, bindingOpts{})
		e := load(t, w)
		for range 150 {
			agree(t, e, w, g.request())
		}
	}
}

// TestPropertyIncrementalUpdates applies a random stream of changes, in
// random transactions of which some abort, and checks after each commit
// that the incrementally maintained evaluator agrees with the reference and
// with an evaluator loaded from scratch.
func TestPropertyIncrementalUpdates(t *testing.T) {
	g := newGen(2)
	for world := range 20 {
		e := newTestEvaluator(t)
		w := newRefWorld()
		nextID := 0
		for step := range 120 {
			next := w.clone()
			abort := g.r.IntN(6) == 0
			err := e.Update(func(tx *Tx) error {
				for range 1 + g.r.IntN(6) {
					applyRandomChange(t, g, tx, next, &nextID)
				}
				next.rev++
				must(t, tx.SetRevision(next.rev))
				if abort {
					return errors.New("abort")
				}
				return nil
			})
			if abort != (err != nil) {
				t.Fatalf("world %d step %d: abort=%v err=%v", world, step, abort, err)
			}
			if !abort {
				w = next
			}
			for range 20 {
				agree(t, e, w, g.request())
			}
			if step%30 == 29 {
				checkIndexes(t, e, w)
				fresh := load(t, w)
				for range 50 {
					req := g.request()
					d1, _ := e.Authorize(context.Background(), req)
					d2, _ := fresh.Authorize(context.Background(), req)
					if d1 != d2 {
						t.Fatalf("incremental %v != fresh %v for %+v", d1, d2, req)
					}
				}
			}
		}
	}
}

func applyRandomChange(t *testing.T, g *gen, tx *Tx, w *refWorld, nextID *int) {
	t.Helper()
	switch k := g.r.IntN(20); {
	case k < 7: // new binding
		b := g.binding(fmt.Sprintf("b%d", *nextID), bindingOpts{})
		*nextID++
		must(t, tx.PutBinding(b))
		w.bindings[b.ID] = b
	case k < 9: // replace a binding (possibly moving it)
		if *nextID == 0 {
			return
		}
		b := g.binding(fmt.Sprintf("b%d", g.r.IntN(*nextID)), bindingOpts{})
		must(t, tx.PutBinding(b))
		w.bindings[b.ID] = b
	case k < 12: // delete a binding (maybe missing)
		if *nextID == 0 {
			return
		}
		id := fmt.Sprintf("b%d", g.r.IntN(*nextID))
		must(t, tx.DeleteBinding(id))
		delete(w.bindings, id)
	case k < 14: // principal put/delete
		name := g.pick(genPrincipals)
		if g.r.IntN(4) == 0 {
			must(t, tx.DeletePrincipal(name))
			delete(w.principals, name)
		} else {
			p := g.principal(name)
			must(t, tx.PutPrincipal(p))
			w.principals[name] = p
		}
	case k < 15: // group put/delete
		name := g.pick(genGroups)
		if g.r.IntN(3) == 0 {
			must(t, tx.DeleteGroup(name))
			delete(w.groups, name)
		} else {
			gr := Group{Name: name, Org: g.pick(genOrgs)}
			must(t, tx.PutGroup(gr))
			w.groups[name] = gr
		}
	case k < 18: // membership
		m := [2]string{g.pick(genGroups), g.pick(genPrincipals)}
		if g.r.IntN(2) == 0 {
			must(t, tx.AddMember(m[0], m[1]))
			w.members[m] = true
		} else {
			must(t, tx.RemoveMember(m[0], m[1]))
			delete(w.members, m)
		}
	default: // custom role put/delete
		r := g.role(g.pick(genOrgs))
		if g.r.IntN(4) == 0 {
			must(t, tx.DeleteRole(r.Name))
			delete(w.roles, r.Name)
		} else {
			must(t, tx.PutRole(r))
			w.roles[r.Name] = r
		}
	}
}

// checkIndexes compares the secondary indexes and counters with the
// reference.
func checkIndexes(t *testing.T, e *Evaluator, w *refWorld) {
	t.Helper()
	st := e.Stats()
	if st.Bindings != len(w.bindings) || st.Principals != len(w.principals) || st.Groups != len(w.groups) ||
		st.Memberships != len(w.members) || st.CustomRoles != len(w.roles) || st.Revision != w.rev {
		t.Fatalf("stats %+v vs reference %d bindings %d principals %d groups %d members %d roles",
			st, len(w.bindings), len(w.principals), len(w.groups), len(w.members), len(w.roles))
	}
	for _, scope := range genResources {
		var want []string
		for id, b := range w.bindings {
			if b.Scope == scope {
				want = append(want, id)
			}
		}
		slices.Sort(want)
		var got []string
		for _, b := range e.BindingsAt(scope) {
			got = append(got, b.ID)
			if w.bindings[b.ID] != b {
				t.Fatalf("binding %s: %+v vs %+v", b.ID, b, w.bindings[b.ID])
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("BindingsAt(%s) = %v, want %v", scope, got, want)
		}
	}
	for _, p := range genPrincipals {
		var want []string
		for m := range w.members {
			if m[1] == p {
				want = append(want, m[0])
			}
		}
		slices.Sort(want)
		if got := e.GroupsOf(p); !slices.Equal(got, want) {
			t.Fatalf("GroupsOf(%s) = %v, want %v", p, got, want)
		}
	}
	// The reverse lookup agrees with asking Authorize about everyone.
	for _, perm := range genPerms[:4] {
		for _, res := range genResources[:8] {
			wc, err := e.WhoCan(context.Background(), WhoCanRequest{Permission: perm, Resource: res, Time: t0})
			must(t, err)
			var got, want []string
			for _, a := range wc.Principals {
				got = append(got, a.Principal)
			}
			for _, p := range genPrincipals {
				if ok, _, _ := w.decide(Request{Principal: p, Permission: perm, Resource: res, Time: t0}); ok {
					want = append(want, p)
				}
			}
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("WhoCan(%s, %s) = %v, want %v", perm, res, got, want)
			}
		}
	}
}

// TestPropertyScopeInheritance: with allow-only, unconditional bindings, a
// permission held on a resource is held on every resource below it.
func TestPropertyScopeInheritance(t *testing.T) {
	g := newGen(3)
	for range 100 {
		w := g.world(5+g.r.IntN(30), bindingOpts{noDeny: true, noCond: true, noExpiry: true})
		e := load(t, w)
		for _, p := range genPrincipals {
			for _, perm := range genPerms {
				for _, a := range genResources {
					da := check(t, e, p, perm, a)
					ra, _ := ParseResource(a)
					for _, b := range genResources {
						rb, _ := ParseResource(b)
						if !da.Allowed || !ra.Contains(rb) {
							continue
						}
						if db := check(t, e, p, perm, b); !db.Allowed {
							t.Fatalf("%s %s allowed on %s (%v) but not on %s (%v)", p, perm, a, da, b, db)
						}
					}
				}
			}
		}
	}
}

// TestPropertyWildcard: a role holding a pattern grants exactly the
// permissions the pattern matches segment-wise, and widening a segment to
// "*" never loses a permission.
func TestPropertyWildcard(t *testing.T) {
	g := newGen(4)
	e := newTestEvaluator(t)
	must(t, e.PutPrincipal(user("u", "o1")))
	must(t, e.PutBinding(allow("b", "users/u", "orgs/o1/roles/r", "orgs/o1")))
	var perms []string
	for _, s := range genSegs[0] {
		for _, r := range genSegs[1] {
			for _, v := range genSegs[2] {
				perms = append(perms, s+":"+r+":"+v)
			}
		}
	}
	for range 300 {
		pat := g.pattern()
		must(t, e.PutRole(Role{Name: "orgs/o1/roles/r", Permissions: []string{pat}}))
		p, _ := parsePattern(pat)
		wider := p
		wider[g.r.IntN(3)] = ""
		for _, perm := range perms {
			pp, _ := parsePermission(perm)
			d := check(t, e, "users/u", perm, "orgs/o1/projects/p1")
			if d.Allowed != p.matches(pp) {
				t.Fatalf("pattern %s perm %s: allowed=%v", pat, perm, d.Allowed)
			}
			if p.matches(pp) && !wider.matches(pp) {
				t.Fatalf("widening %s to %s lost %s", pat, wider, perm)
			}
		}
	}
}

// TestPropertyDenyPrecedence: adding an unconditional deny that covers the
// request (at any ancestor, directly or through an existing group) turns
// any decision into a deny.
func TestPropertyDenyPrecedence(t *testing.T) {
	g := newGen(5)
	for range 300 {
		w := g.world(5+g.r.IntN(30), bindingOpts{})
		req := g.request()
		p, ok := w.principals[req.Principal]
		if !ok || p.Disabled {
			continue
		}
		subjects := []string{req.Principal}
		for gr := range w.groups {
			if w.members[[2]string{gr, req.Principal}] {
				subjects = append(subjects, gr)
			}
		}
		slices.Sort(subjects[1:])
		res, _ := ParseResource(req.Resource)
		scope := res.Ancestors()[g.r.IntN(len(res.Ancestors()))]
		role := "SystemAdmin"
		if scope != "system" {
			role = "OrgAdmin"
			if !refRoleMatches(builtinRoles[role].Permissions, req.Permission) {
				role = "ProjectViewer"
			}
			if !refRoleMatches(builtinRoles[role].Permissions, req.Permission) {
				continue
			}
		}
		w.bindings["zz-deny"] = Binding{ID: "zz-deny", Subject: g.pick(subjects), Role: role, Scope: scope, Effect: EffectDeny}
		e := load(t, w)
		d, err := e.Authorize(context.Background(), req)
		must(t, err)
		if d.Allowed || d.Reason != ReasonDenied {
			t.Fatalf("deny %+v did not win: %v", w.bindings["zz-deny"], d)
		}
		agree(t, e, w, req)
	}
}

// TestPropertyConditions: a "true" condition is the same as none; a "false"
// condition is the same as no binding; a condition that fails to evaluate
// makes a deny apply and an allow not.
func TestPropertyConditions(t *testing.T) {
	g := newGen(6)
	for range 60 {
		w := g.world(5+g.r.IntN(20), bindingOpts{noCond: true})
		ids := make([]string, 0, len(w.bindings))
		for id := range w.bindings {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		id := g.pick(ids)
		b := w.bindings[id]

		without := w.clone()
		delete(without.bindings, id)
		withTrue, withFalse, withErr := w.clone(), w.clone(), w.clone()
		bt, bf, be := b, b, b
		bt.Condition, bf.Condition = "true", "false"
		be.Condition = `resource.labels["absent"] == "x"`
		withTrue.bindings[id], withFalse.bindings[id], withErr.bindings[id] = bt, bf, be
		eW, eWithout, eTrue, eFalse, eErr := load(t, w), load(t, without), load(t, withTrue), load(t, withFalse), load(t, withErr)
		for range 100 {
			req := g.request()
			dW, _ := eW.Authorize(context.Background(), req)
			dWithout, _ := eWithout.Authorize(context.Background(), req)
			dTrue, _ := eTrue.Authorize(context.Background(), req)
			dFalse, _ := eFalse.Authorize(context.Background(), req)
			dErr, _ := eErr.Authorize(context.Background(), req)
			if dTrue.Allowed != dW.Allowed {
				t.Fatalf("condition true changed %v to %v", dW, dTrue)
			}
			if dFalse.Allowed != dWithout.Allowed {
				t.Fatalf("condition false: %v, without binding: %v", dFalse, dWithout)
			}
			want := dWithout.Allowed // erroring allow = absent
			if b.Effect == EffectDeny {
				want = dW.Allowed // erroring deny = unconditional deny
			}
			if dErr.Allowed != want {
				t.Fatalf("erroring %v condition: %v, want allowed=%v", b.Effect, dErr, want)
			}
		}
	}
}

// TestPropertyExpiry: before its expiry a binding behaves as if it had
// none; from its expiry on, as if it did not exist.
func TestPropertyExpiry(t *testing.T) {
	g := newGen(7)
	for range 60 {
		w := g.world(5+g.r.IntN(20), bindingOpts{noExpiry: true})
		ids := make([]string, 0, len(w.bindings))
		for id := range w.bindings {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		id := g.pick(ids)
		exp := t0.Add(time.Duration(g.r.IntN(60)-30) * time.Minute)
		withExp, without := w.clone(), w.clone()
		b := w.bindings[id]
		b.ExpireTime = exp
		withExp.bindings[id] = b
		delete(without.bindings, id)
		eW, eExp, eWithout := load(t, w), load(t, withExp), load(t, without)
		for range 100 {
			req := g.request()
			dExp, _ := eExp.Authorize(context.Background(), req)
			ref := eW
			if !req.Time.Before(exp) {
				ref = eWithout
			}
			dRef, _ := ref.Authorize(context.Background(), req)
			if dExp.Allowed != dRef.Allowed || dExp.Reason != dRef.Reason {
				t.Fatalf("expiry %v at %v: %v, want %v", exp, req.Time, dExp, dRef)
			}
		}
	}
}
