package policy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestDefaultDenyAndPrincipalState(t *testing.T) {
	e := newTestEvaluator(t)
	must(t, e.PutPrincipal(user("alice", "acme")))
	wantDeny(t, check(t, e, "users/alice", "plasmavmc:vms:get", "orgs/acme"), ReasonNoMatchingBinding, "")
	wantDeny(t, check(t, e, "users/bob", "plasmavmc:vms:get", "orgs/acme"), ReasonUnknownPrincipal, "")

	must(t, e.PutBinding(allow("b1", "users/alice", "OrgAdmin", "orgs/acme")))
	wantAllow(t, check(t, e, "users/alice", "plasmavmc:vms:get", "orgs/acme"), "b1")

	p := user("alice", "acme")
	p.Disabled = true
	must(t, e.PutPrincipal(p))
	wantDeny(t, check(t, e, "users/alice", "plasmavmc:vms:get", "orgs/acme"), ReasonPrincipalDisabled, "")

	must(t, e.Update(func(tx *Tx) error { return tx.DeletePrincipal("users/alice") }))
	wantDeny(t, check(t, e, "users/alice", "plasmavmc:vms:get", "orgs/acme"), ReasonUnknownPrincipal, "")
	// The binding is still there (the store deletes it with its own event)
	// but inert.
	if _, ok := e.Binding("b1"); !ok {
		t.Fatal("binding cascaded")
	}
}

func TestInvalidRequests(t *testing.T) {
	e := newTestEvaluator(t)
	must(t, e.PutPrincipal(user("alice", "acme")))
	must(t, e.PutBinding(allow("b1", "users/alice", "SystemAdmin", "system")))
	base := Request{Principal: "users/alice", Permission: "plasmavmc:vms:get", Resource: "orgs/acme"}
	for _, tc := range []struct {
		name string
		mod  func(*Request)
		err  error
	}{
		{"bad principal", func(r *Request) { r.Principal = "alice" }, ErrInvalidName},
		{"group principal", func(r *Request) { r.Principal = "groups/devs" }, ErrInvalidRequest},
		{"bad resource", func(r *Request) { r.Resource = "orgs/ACME" }, ErrInvalidName},
		{"empty resource", func(r *Request) { r.Resource = "" }, ErrInvalidName},
		{"wildcard permission", func(r *Request) { r.Permission = "plasmavmc:vms:*" }, ErrInvalidPermission},
		{"bad permission", func(r *Request) { r.Permission = "plasmavmc.vms.get" }, ErrInvalidPermission},
		{"bad labels", func(r *Request) { r.ResourceLabels = map[string]string{"a b": "c"} }, ErrInvalidRequest},
		{"bad source ip", func(r *Request) { r.SourceIP = "10.0.0.300" }, ErrInvalidRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := base
			tc.mod(&req)
			d, err := e.Authorize(context.Background(), req)
			if !errors.Is(err, tc.err) || d.Allowed || d.Reason != ReasonInvalidRequest || d.Err != err {
				t.Fatalf("got %v, %v", d, err)
			}
		})
	}
}

func TestScopeInheritance(t *testing.T) {
	scopes := []string{
		"system",
		"orgs/acme",
		"orgs/acme/projects/web",
		"orgs/acme/projects/web/zones/example.com",
		"orgs/acme/projects/web/zones/example.com/records/www",
	}
	others := []string{"orgs/other", "orgs/acme/projects/db", "orgs/acme/projects/web/zones/example.org",
		"orgs/acme/projects/webx", "orgs/acmex", "orgs/acme/projects/db/zones/example.com", "orgs/acme/zones/example.com"}
	for i, at := range scopes {
		e := newTestEvaluator(t)
		must(t, e.PutPrincipal(user("alice", "acme")))
		must(t, e.PutBinding(allow("b", "users/alice", "flashdns.admin", at)))
		for j, res := range scopes {
			d := check(t, e, "users/alice", "flashdns:records:update", res)
			if want := j >= i; d.Allowed != want {
				t.Errorf("grant at %s, request on %s: allowed=%v want %v", at, res, d.Allowed, want)
			}
			if d.Allowed && d.Scope != at {
				t.Errorf("decision scope %s, want %s", d.Scope, at)
			}
		}
		for _, res := range others {
			ra, _ := ParseResource(res)
			want := slices.Contains(ra.Ancestors(), at)
			if d := check(t, e, "users/alice", "flashdns:records:update", res); d.Allowed != want {
				t.Errorf("grant at %s, request on %s: allowed=%v want %v", at, res, d.Allowed, want)
			}
		}
	}
}

func TestDenyPrecedence(t *testing.T) {
	type bnd struct {
		id, effect, role, scope string
	}
	for _, tc := range []struct {
		name     string
		bindings []bnd
		perm     string
		res      string
		allowed  bool
		decider  string
	}{
		{"deny at org beats allow at project", []bnd{{"a", "allow", "ProjectEditor", "orgs/acme/projects/web"}, {"d", "deny", "ProjectEditor", "orgs/acme"}},
			"plasmavmc:vms:create", "orgs/acme/projects/web", false, "d"},
		{"deny at project beats allow at system", []bnd{{"a", "allow", "SystemAdmin", "system"}, {"d", "deny", "plasmavmc.admin", "orgs/acme/projects/web"}},
			"plasmavmc:vms:delete", "orgs/acme/projects/web/vms/v1", false, "d"},
		{"deny on resource only covers that resource", []bnd{{"a", "allow", "ProjectEditor", "orgs/acme"}, {"d", "deny", "ProjectEditor", "orgs/acme/projects/web/vms/v1"}},
			"plasmavmc:vms:delete", "orgs/acme/projects/web/vms/v2", true, "a"},
		{"deny only covers its role's permissions", []bnd{{"a", "allow", "ProjectEditor", "orgs/acme"}, {"d", "deny", "flashdns.admin", "orgs/acme"}},
			"plasmavmc:vms:delete", "orgs/acme/projects/web", true, "a"},
		{"deny of a wildcard role", []bnd{{"a", "allow", "ProjectEditor", "orgs/acme"}, {"d", "deny", "ProjectViewer", "orgs/acme"}},
			"flaredb:databases:get", "orgs/acme/projects/web", false, "d"},
		{"deny without any allow", []bnd{{"d", "deny", "ProjectViewer", "orgs/acme"}},
			"flaredb:databases:get", "orgs/acme/projects/web", false, "d"},
		{"deny in a sibling project does not apply", []bnd{{"a", "allow", "ProjectEditor", "orgs/acme"}, {"d", "deny", "ProjectEditor", "orgs/acme/projects/db"}},
			"plasmavmc:vms:create", "orgs/acme/projects/web", true, "a"},
		{"deny via group", []bnd{{"a", "allow", "ProjectEditor", "orgs/acme"}, {"d", "deny:groups/contractors", "ProjectEditor", "orgs/acme/projects/web"}},
			"plasmavmc:vms:create", "orgs/acme/projects/web", false, "d"},
		{"allow via group", []bnd{{"a", "allow:groups/contractors", "ProjectEditor", "orgs/acme/projects/web"}},
			"plasmavmc:vms:create", "orgs/acme/projects/web/vms/x", true, "a"},
		{"first deny in order decides", []bnd{{"d2", "deny", "ProjectEditor", "orgs/acme"}, {"d1", "deny", "ProjectEditor", "system"}},
			"plasmavmc:vms:create", "orgs/acme/projects/web", false, "d1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEvaluator(t)
			must(t, e.Update(func(tx *Tx) error {
				must(t, tx.PutPrincipal(user("alice", "acme")))
				must(t, tx.PutGroup(Group{Name: "groups/contractors", Org: "acme"}))
				must(t, tx.AddMember("groups/contractors", "users/alice"))
				for _, b := range tc.bindings {
					eff, subj, _ := strings.Cut(b.effect, ":")
					if subj == "" {
						subj = "users/alice"
					}
					bb := allow(b.id, subj, b.role, b.scope)
					if eff == "deny" {
						bb.Effect = EffectDeny
					}
					must(t, tx.PutBinding(bb))
				}
				return nil
			}))
			d := check(t, e, "users/alice", tc.perm, tc.res)
			if d.Allowed != tc.allowed || d.BindingID != tc.decider {
				t.Fatalf("got %v", d)
			}
			if !d.Allowed && d.Reason != ReasonDenied {
				t.Fatalf("reason %v", d.Reason)
			}
		})
	}
}

func TestGroups(t *testing.T) {
	e := newTestEvaluator(t)
	must(t, e.Update(func(tx *Tx) error {
		must(t, tx.PutPrincipal(user("alice", "acme")))
		must(t, tx.PutPrincipal(Principal{Name: "serviceAccounts/ci", Org: "acme", Project: "web"}))
		must(t, tx.PutGroup(Group{Name: "groups/devs", Org: "acme"}))
		must(t, tx.AddMember("groups/devs", "users/alice"))
		must(t, tx.AddMember("groups/devs", "users/alice")) // idempotent
		must(t, tx.AddMember("groups/devs", "serviceAccounts/ci"))
		return tx.PutBinding(allow("g", "groups/devs", "ProjectViewer", "orgs/acme"))
	}))
	d := check(t, e, "users/alice", "plasmavmc:vms:get", "orgs/acme/projects/web")
	wantAllow(t, d, "g")
	if d.Subject != "groups/devs" {
		t.Fatalf("subject %s", d.Subject)
	}
	wantAllow(t, check(t, e, "serviceAccounts/ci", "plasmavmc:vms:get", "orgs/acme/projects/web"), "g")
	if st := e.Stats(); st.Memberships != 2 || st.Groups != 1 || st.Principals != 2 || st.Bindings != 1 {
		t.Fatalf("stats %+v", st)
	}

	// Group deleted: its memberships and bindings are inert.
	must(t, e.Update(func(tx *Tx) error { return tx.DeleteGroup("groups/devs") }))
	wantDeny(t, check(t, e, "users/alice", "plasmavmc:vms:get", "orgs/acme"), ReasonNoMatchingBinding, "")
	// Group back: they apply again.
	must(t, e.PutGroup(Group{Name: "groups/devs", Org: "acme"}))
	wantAllow(t, check(t, e, "users/alice", "plasmavmc:vms:get", "orgs/acme"), "g")
	// Membership removed.
	must(t, e.Update(func(tx *Tx) error {
		must(t, tx.RemoveMember("groups/devs", "users/alice"))
		return tx.RemoveMember("groups/devs", "users/alice") // idempotent
	}))
	wantDeny(t, check(t, e, "users/alice", "plasmavmc:vms:get", "orgs/acme"), ReasonNoMatchingBinding, "")
	wantAllow(t, check(t, e, "serviceAccounts/ci", "plasmavmc:vms:get", "orgs/acme"), "g")
	if gs := e.GroupsOf("users/alice"); len(gs) != 0 {
		t.Fatalf("groups %v", gs)
	}
	if e.Stats().Memberships != 1 {
		t.Fatalf("stats %+v", e.Stats())
	}

	for _, tc := range [][2]string{{"groups/devs", "groups/other"}, {"users/x", "users/alice"}, {"groups/devs", "bad"}, {"bad", "users/alice"}} {
		if err := e.AddMember(tc[0], tc[1]); !errors.Is(err, ErrInvalidPrincipal) {
			t.Errorf("AddMember(%s, %s) = %v", tc[0], tc[1], err)
		}
	}
}

func TestExpiry(t *testing.T) {
	e := newTestEvaluator(t)
	must(t, e.PutPrincipal(user("alice", "acme")))
	a := allow("a", "users/alice", "ProjectEditor", "orgs/acme")
	a.ExpireTime = t0.Add(time.Hour)
	must(t, e.PutBinding(a))
	req := Request{Principal: "users/alice", Permission: "plasmavmc:vms:create", Resource: "orgs/acme/projects/p"}
	at := func(tm time.Time) Decision {
		r := req
		r.Time = tm
		d, err := e.Authorize(context.Background(), r)
		must(t, err)
		return d
	}
	wantAllow(t, at(time.Time{}), "a") // evaluator clock: t0
	wantAllow(t, at(t0.Add(time.Hour-time.Nanosecond)), "a")
	wantDeny(t, at(t0.Add(time.Hour)), ReasonNoMatchingBinding, "")
	wantDeny(t, at(t0.Add(2*time.Hour)), ReasonNoMatchingBinding, "")

	dn := deny("d", "users/alice", "ProjectEditor", "orgs/acme/projects/p")
	dn.ExpireTime = t0.Add(30 * time.Minute)
	must(t, e.PutBinding(dn))
	wantDeny(t, at(t0), ReasonDenied, "d")
	wantAllow(t, at(t0.Add(30*time.Minute)), "a")
}

func TestMissingRole(t *testing.T) {
	e := newTestEvaluator(t)
	must(t, e.PutPrincipal(user("alice", "acme")))
	must(t, e.PutBinding(allow("a", "users/alice", "orgs/acme/roles/dns", "orgs/acme")))
	d := check(t, e, "users/alice", "flashdns:records:update", "orgs/acme")
	wantDeny(t, d, ReasonNoMatchingBinding, "")
	if !strings.Contains(d.Detail, "missing role") {
		t.Fatalf("detail %q", d.Detail)
	}
	must(t, e.PutRole(Role{Name: "orgs/acme/roles/dns", Permissions: []string{"flashdns:records:*"}}))
	wantAllow(t, check(t, e, "users/alice", "flashdns:records:update", "orgs/acme"), "a")
	wantDeny(t, check(t, e, "users/alice", "flashdns:zones:delete", "orgs/acme"), ReasonNoMatchingBinding, "")

	// Role update takes effect.
	must(t, e.PutRole(Role{Name: "orgs/acme/roles/dns", Permissions: []string{"flashdns:*:*"}}))
	wantAllow(t, check(t, e, "users/alice", "flashdns:zones:delete", "orgs/acme"), "a")

	// A deny naming a missing role fails closed, for every permission.
	must(t, e.PutBinding(deny("d", "users/alice", "orgs/acme/roles/gone", "orgs/acme/projects/p")))
	d = check(t, e, "users/alice", "flashdns:records:update", "orgs/acme/projects/p")
	wantDeny(t, d, ReasonDenied, "d")
	if !strings.Contains(d.Detail, "fail closed") {
		t.Fatalf("detail %q", d.Detail)
	}
	// ... but only at its scope.
	wantAllow(t, check(t, e, "users/alice", "flashdns:records:update", "orgs/acme/projects/q"), "a")

	must(t, e.Update(func(tx *Tx) error { return tx.DeleteRole("orgs/acme/roles/dns") }))
	wantDeny(t, check(t, e, "users/alice", "flashdns:records:update", "orgs/acme"), ReasonNoMatchingBinding, "")
}

func TestBindingValidation(t *testing.T) {
	e := newTestEvaluator(t)
	ok := allow("b", "users/alice", "ProjectViewer", "orgs/acme")
	must(t, e.ValidateBinding(ok))
	for _, tc := range []struct {
		name string
		mod  func(*Binding)
		err  error
	}{
		{"bad id", func(b *Binding) { b.ID = "" }, ErrInvalidName},
		{"bad subject", func(b *Binding) { b.Subject = "alice" }, ErrInvalidName},
		{"bad scope", func(b *Binding) { b.Scope = "orgs/" }, ErrInvalidName},
		{"unknown builtin role", func(b *Binding) { b.Role = "Viewer" }, ErrInvalidName},
		{"custom role of other org", func(b *Binding) { b.Role = "orgs/other/roles/x" }, ErrInvalidBinding},
		{"custom role at system", func(b *Binding) { b.Role = "orgs/acme/roles/x"; b.Scope = "system" }, ErrInvalidBinding},
		{"SystemAdmin below system", func(b *Binding) { b.Role = "SystemAdmin" }, ErrInvalidBinding},
		{"aegis.admin below system", func(b *Binding) { b.Role = "aegis.admin"; b.Scope = "orgs/acme/projects/p" }, ErrInvalidBinding},
		{"zero effect", func(b *Binding) { b.Effect = 0 }, ErrInvalidBinding},
		{"bad effect", func(b *Binding) { b.Effect = 7 }, ErrInvalidBinding},
		{"bad condition", func(b *Binding) { b.Condition = "resource.name" }, ErrInvalidCondition},
	} {
		b := ok
		tc.mod(&b)
		err := e.PutBinding(b)
		if !errors.Is(err, tc.err) || !errors.Is(err, ErrInvalidBinding) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	if e.Stats().Bindings != 0 {
		t.Fatal("rejected bindings stored")
	}
	// Custom role inside its org, at a project or resource: fine.
	for _, scope := range []string{"orgs/acme", "orgs/acme/projects/p", "orgs/acme/projects/p/vms/v"} {
		b := ok
		b.Role, b.Scope = "orgs/acme/roles/x", scope
		must(t, e.ValidateBinding(b))
	}
}

func TestPrincipalValidation(t *testing.T) {
	e := newTestEvaluator(t)
	for _, p := range []Principal{
		{Name: "users/root"}, // system user
		{Name: "users/alice", Org: "acme", Labels: map[string]string{"team": "dns"}},
		{Name: "serviceAccounts/ci", Org: "acme"},
		{Name: "serviceAccounts/deploy", Org: "acme", Project: "web"},
	} {
		must(t, e.PutPrincipal(p))
	}
	for _, p := range []Principal{
		{Name: "alice"},
		{Name: "groups/devs", Org: "acme"},
		{Name: "users/alice", Org: "acme", Project: "web"},
		{Name: "serviceAccounts/ci"},
		{Name: "users/alice", Org: "ACME"},
		{Name: "serviceAccounts/ci", Org: "acme", Project: "-x"},
		{Name: "users/alice", Org: "acme", Labels: map[string]string{"": "x"}},
	} {
		if err := e.PutPrincipal(p); !errors.Is(err, ErrInvalidPrincipal) {
			t.Errorf("PutPrincipal(%+v) = %v", p, err)
		}
	}
	for _, g := range []Group{{Name: "groups/x"}, {Name: "users/x", Org: "acme"}, {Name: "groups/X", Org: "acme"}} {
		if err := e.PutGroup(g); !errors.Is(err, ErrInvalidPrincipal) {
			t.Errorf("PutGroup(%+v) = %v", g, err)
		}
	}
	// Labels are copied in and out.
	labels := map[string]string{"team": "dns"}
	must(t, e.PutPrincipal(Principal{Name: "users/bob", Org: "acme", Labels: labels}))
	labels["team"] = "changed"
	p, _ := e.Principal("users/bob")
	if p.Labels["team"] != "dns" {
		t.Fatal("labels aliased on put")
	}
	p.Labels["team"] = "x"
	if p2, _ := e.Principal("users/bob"); p2.Labels["team"] != "dns" {
		t.Fatal("labels aliased on get")
	}
}

func TestBindingReplaceAndDelete(t *testing.T) {
	e := newTestEvaluator(t)
	must(t, e.PutPrincipal(user("alice", "acme")))
	must(t, e.PutPrincipal(user("bob", "acme")))
	must(t, e.PutBinding(allow("b", "users/alice", "ProjectEditor", "orgs/acme/projects/web")))
	wantAllow(t, check(t, e, "users/alice", "plasmavmc:vms:create", "orgs/acme/projects/web"), "b")

	// Same id, new subject and scope: the old index entries go away.
	must(t, e.PutBinding(allow("b", "users/bob", "ProjectEditor", "orgs/acme/projects/db")))
	wantDeny(t, check(t, e, "users/alice", "plasmavmc:vms:create", "orgs/acme/projects/web"), ReasonNoMatchingBinding, "")
	wantDeny(t, check(t, e, "users/bob", "plasmavmc:vms:create", "orgs/acme/projects/web"), ReasonNoMatchingBinding, "")
	wantAllow(t, check(t, e, "users/bob", "plasmavmc:vms:create", "orgs/acme/projects/db"), "b")
	if got := e.BindingsAt("orgs/acme/projects/web"); len(got) != 0 {
		t.Fatalf("stale scope index: %v", got)
	}
	if got := e.BindingsAt("orgs/acme/projects/db"); len(got) != 1 || got[0].Subject != "users/bob" {
		t.Fatalf("scope index: %v", got)
	}
	// Same id, now a deny.
	must(t, e.PutBinding(deny("b", "users/bob", "ProjectEditor", "orgs/acme/projects/db")))
	wantDeny(t, check(t, e, "users/bob", "plasmavmc:vms:create", "orgs/acme/projects/db"), ReasonDenied, "b")
	if e.Stats().Bindings != 1 {
		t.Fatalf("stats %+v", e.Stats())
	}
	must(t, e.DeleteBinding("b"))
	must(t, e.DeleteBinding("b"))
	must(t, e.DeleteBinding("never-existed"))
	if e.Stats().Bindings != 0 || len(e.BindingsAt("orgs/acme/projects/db")) != 0 {
		t.Fatalf("stats %+v", e.Stats())
	}
	wantDeny(t, check(t, e, "users/bob", "plasmavmc:vms:create", "orgs/acme/projects/db"), ReasonNoMatchingBinding, "")

	// Several bindings for one (subject, scope) stay sorted and separately
	// removable.
	must(t, e.Update(func(tx *Tx) error {
		for _, id := range []string{"z", "m", "a"} {
			must(t, tx.PutBinding(allow(id, "users/alice", "ProjectViewer", "orgs/acme")))
		}
		return nil
	}))
	wantAllow(t, check(t, e, "users/alice", "plasmavmc:vms:get", "orgs/acme"), "a")
	must(t, e.DeleteBinding("a"))
	wantAllow(t, check(t, e, "users/alice", "plasmavmc:vms:get", "orgs/acme"), "m")
}

func TestTransactions(t *testing.T) {
	e := newTestEvaluator(t)
	must(t, e.PutPrincipal(user("alice", "acme")))
	must(t, e.PutBinding(allow("keep", "users/alice", "ProjectViewer", "orgs/acme")))
	must(t, e.AddMember("groups/g", "users/alice"))
	before := e.Stats()

	// An aborted transaction leaves nothing behind, in any index.
	boom := errors.New("boom")
	var saved *Tx
	err := e.Update(func(tx *Tx) error {
		saved = tx
		must(t, tx.PutBinding(allow("x", "users/alice", "ProjectEditor", "orgs/acme")))
		must(t, tx.DeleteBinding("keep"))
		must(t, tx.AddMember("groups/h", "users/alice"))
		must(t, tx.PutPrincipal(user("bob", "acme")))
		must(t, tx.SetRevision(99))
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatal(err)
	}
	if e.Stats() != before {
		t.Fatalf("aborted tx leaked: %+v vs %+v", e.Stats(), before)
	}
	wantAllow(t, check(t, e, "users/alice", "plasmavmc:vms:get", "orgs/acme"), "keep")
	if len(e.BindingsAt("orgs/acme")) != 1 || e.BindingsAt("orgs/acme")[0].ID != "keep" {
		t.Fatalf("scope index after abort: %v", e.BindingsAt("orgs/acme"))
	}
	if !slices.Equal(e.GroupsOf("users/alice"), []string{"groups/g"}) {
		t.Fatalf("groups after abort: %v", e.GroupsOf("users/alice"))
	}
	if err := saved.PutBinding(allow("y", "users/alice", "ProjectViewer", "orgs/acme")); !errors.Is(err, ErrTxDone) {
		t.Fatalf("use after done: %v", err)
	}
	// The next transaction after an abort works on the committed state.
	must(t, e.Update(func(tx *Tx) error {
		must(t, tx.PutBinding(allow("x2", "users/alice", "ProjectEditor", "orgs/acme")))
		return tx.SetRevision(7)
	}))
	if got := len(e.BindingsAt("orgs/acme")); got != 2 {
		t.Fatalf("scope index: %d bindings", got)
	}
	if d := check(t, e, "users/alice", "plasmavmc:vms:get", "orgs/acme"); d.Revision != 7 {
		t.Fatalf("revision %d", d.Revision)
	}

	// Reset then reload: decisions see the old policy until commit.
	must(t, e.Update(func(tx *Tx) error {
		must(t, tx.Reset())
		wantAllow(t, check(t, e, "users/alice", "plasmavmc:vms:get", "orgs/acme"), "keep")
		must(t, tx.PutPrincipal(user("alice", "acme")))
		must(t, tx.PutBinding(allow("new", "users/alice", "ProjectViewer", "orgs/acme/projects/p")))
		return tx.SetRevision(8)
	}))
	if st := e.Stats(); st.Bindings != 1 || st.Memberships != 0 || st.Principals != 1 || st.Revision != 8 {
		t.Fatalf("after reset: %+v", st)
	}
	wantDeny(t, check(t, e, "users/alice", "plasmavmc:vms:get", "orgs/acme"), ReasonNoMatchingBinding, "")
	wantAllow(t, check(t, e, "users/alice", "plasmavmc:vms:get", "orgs/acme/projects/p"), "new")
	if len(e.BindingsAt("orgs/acme")) != 0 || len(e.GroupsOf("users/alice")) != 0 {
		t.Fatal("reset left index entries")
	}
}

func TestBatchAuthorize(t *testing.T) {
	e := newTestEvaluator(t)
	must(t, e.PutPrincipal(user("alice", "acme")))
	must(t, e.PutBinding(allow("b", "users/alice", "ProjectViewer", "orgs/acme")))
	ds := e.BatchAuthorize(context.Background(), []Request{
		{Principal: "users/alice", Permission: "plasmavmc:vms:get", Resource: "orgs/acme/projects/p"},
		{Principal: "users/alice", Permission: "plasmavmc:vms:delete", Resource: "orgs/acme/projects/p"},
		{Principal: "users/alice", Permission: "bad", Resource: "orgs/acme/projects/p"},
		{Principal: "users/alice", Permission: "plasmavmc:vms:get", Resource: "orgs/other"},
	})
	if len(ds) != 4 || !ds[0].Allowed || ds[1].Allowed || ds[2].Reason != ReasonInvalidRequest || ds[2].Err == nil || ds[3].Allowed {
		t.Fatalf("got %v", ds)
	}
}

func TestTestPermissions(t *testing.T) {
	e := newTestEvaluator(t)
	must(t, e.PutPrincipal(user("alice", "acme")))
	must(t, e.PutBinding(allow("v", "users/alice", "ProjectViewer", "orgs/acme")))
	must(t, e.PutBinding(allow("o", "users/alice", "plasmavmc.operator", "orgs/acme/projects/p")))
	must(t, e.PutBinding(deny("d", "users/alice", "plasmavmc.operator", "orgs/acme/projects/p/vms/prod")))
	ask := []string{"plasmavmc:vms:get", "plasmavmc:vms:start", "plasmavmc:vms:delete", "flashdns:zones:list", "plasmavmc:vms:get"}
	req := Request{Principal: "users/alice", Resource: "orgs/acme/projects/p/vms/dev"}
	got, err := e.TestPermissions(context.Background(), req, ask)
	must(t, err)
	if want := []string{"plasmavmc:vms:get", "plasmavmc:vms:start", "flashdns:zones:list"}; !slices.Equal(got, want) {
		t.Fatalf("got %v want %v", got, want)
	}
	req.Resource = "orgs/acme/projects/p/vms/prod"
	got, err = e.TestPermissions(context.Background(), req, ask)
	must(t, err)
	if want := []string{"flashdns:zones:list"}; !slices.Equal(got, want) {
		t.Fatalf("got %v want %v", got, want)
	}
	if _, err := e.TestPermissions(context.Background(), req, []string{"x:y:*"}); !errors.Is(err, ErrInvalidPermission) {
		t.Fatalf("err %v", err)
	}
	if _, err := e.TestPermissions(context.Background(), req, slices.Repeat([]string{"a:b:c"}, MaxTestPermissions+1)); !errors.Is(err, ErrInvalidRequest) {
		t.Fatalf("err %v", err)
	}
	req.Principal = "users/nobody"
	got, err = e.TestPermissions(context.Background(), req, ask)
	if err != nil || len(got) != 0 {
		t.Fatalf("unknown principal: %v %v", got, err)
	}
}

func TestWhoCan(t *testing.T) {
	e := newTestEvaluator(t)
	must(t, e.Update(func(tx *Tx) error {
		for _, p := range []Principal{user("root", ""), user("alice", "acme"), user("bob", "acme"), user("carol", "acme"),
			{Name: "serviceAccounts/ci", Org: "acme", Project: "web"}, {Name: "users/dave", Org: "acme", Disabled: true}} {
			must(t, tx.PutPrincipal(p))
		}
		must(t, tx.PutGroup(Group{Name: "groups/devs", Org: "acme"}))
		for _, m := range []string{"users/bob", "users/carol", "serviceAccounts/ci", "users/dave"} {
			must(t, tx.AddMember("groups/devs", m))
		}
		must(t, tx.PutBinding(allow("sys", "users/root", "SystemAdmin", "system")))
		must(t, tx.PutBinding(allow("alice", "users/alice", "ProjectEditor", "orgs/acme")))
		must(t, tx.PutBinding(allow("devs", "groups/devs", "flashdns.editor", "orgs/acme/projects/web")))
		must(t, tx.PutBinding(allow("viewer", "groups/devs", "ProjectViewer", "orgs/acme/projects/web"))) // wrong permission
		must(t, tx.PutBinding(deny("nocarol", "users/carol", "flashdns.admin", "orgs/acme/projects/web/zones/example.com")))
		cond := allow("business", "users/alice", "flashdns.editor", "orgs/acme/projects/web")
		cond.Condition = `inCIDR(request.source_ip, "10.0.0.0/8")`
		must(t, tx.PutBinding(cond))
		exp := allow("old", "users/bob", "flashdns.admin", "orgs/acme")
		exp.ExpireTime = t0.Add(-time.Hour)
		return tx.PutBinding(exp)
	}))
	res, err := e.WhoCan(context.Background(), WhoCanRequest{
		Permission: "flashdns:records:update",
		Resource:   "orgs/acme/projects/web/zones/example.com/records/www",
	})
	must(t, err)
	var allows, denies, principals []string
	for _, g := range res.Allows {
		allows = append(allows, g.BindingID)
	}
	for _, g := range res.Denies {
		denies = append(denies, g.BindingID)
	}
	for _, a := range res.Principals {
		principals = append(principals, a.Principal+"@"+a.Decision.BindingID)
	}
	if want := []string{"sys", "alice", "business", "devs"}; !slices.Equal(allows, want) {
		t.Errorf("allows %v want %v", allows, want)
	}
	if want := []string{"nocarol"}; !slices.Equal(denies, want) {
		t.Errorf("denies %v want %v", denies, want)
	}
	// carol is denied, dave disabled, bob's direct grant expired but the
	// group grant applies.
	if want := []string{"serviceAccounts/ci@devs", "users/alice@alice", "users/bob@devs", "users/root@sys"}; !slices.Equal(principals, want) {
		t.Errorf("principals %v want %v", principals, want)
	}
	if !res.Allows[2].Conditional {
		t.Error("conditional grant not flagged")
	}

	// Limit.
	res, err = e.WhoCan(context.Background(), WhoCanRequest{Permission: "flashdns:records:update", Resource: "orgs/acme/projects/web", Limit: 2})
	must(t, err)
	if !res.Truncated || len(res.Principals) > 2 {
		t.Fatalf("limit: %+v", res)
	}
	if _, err := e.WhoCan(context.Background(), WhoCanRequest{Permission: "x", Resource: "orgs/acme"}); !errors.Is(err, ErrInvalidPermission) {
		t.Fatal(err)
	}
	if _, err := e.WhoCan(context.Background(), WhoCanRequest{Permission: "a:b:c", Resource: "orgs/"}); !errors.Is(err, ErrInvalidName) {
		t.Fatal(err)
	}
}

func TestDecisionString(t *testing.T) {
	d := Decision{Allowed: true, Reason: ReasonAllowed, BindingID: "b", Role: "r", Scope: "s", Subject: "users/a", Revision: 3}
	if got := d.String(); got != "allow reason=allowed binding=b role=r scope=s subject=users/a rev=3" {
		t.Fatal(got)
	}
	for r := ReasonNoMatchingBinding; r <= ReasonInvalidRequest; r++ {
		if strings.HasPrefix(r.String(), "Reason(") {
			t.Fatalf("unnamed reason %d", r)
		}
	}
}

// TestManyScopesPerSubject covers subjects with more scopes than are
// scanned linearly.
func TestManyScopesPerSubject(t *testing.T) {
	e := newTestEvaluator(t)
	must(t, e.Update(func(tx *Tx) error {
		must(t, tx.PutPrincipal(user("alice", "acme")))
		must(t, tx.PutGroup(Group{Name: "groups/ops", Org: "acme"}))
		must(t, tx.AddMember("groups/ops", "users/alice"))
		for i := range 40 {
			must(t, tx.PutBinding(allow(fmt.Sprintf("p%02d", i), "groups/ops", "plasmavmc.operator", fmt.Sprintf("orgs/acme/projects/p%d", i))))
			if i%2 == 0 {
				must(t, tx.PutBinding(deny(fmt.Sprintf("d%02d", i), "groups/ops", "plasmavmc.operator", fmt.Sprintf("orgs/acme/projects/p%d/vms/prod", i))))
			}
		}
		return nil
	}))
	for i := range 45 {
		for _, vm := range []string{"prod", "dev"} {
			res := fmt.Sprintf("orgs/acme/projects/p%d/vms/%s", i, vm)
			d := check(t, e, "users/alice", "plasmavmc:vms:start", res)
			switch {
			case i >= 40:
				wantDeny(t, d, ReasonNoMatchingBinding, "")
			case vm == "prod" && i%2 == 0:
				wantDeny(t, d, ReasonDenied, fmt.Sprintf("d%02d", i))
			default:
				wantAllow(t, d, fmt.Sprintf("p%02d", i))
			}
		}
	}
	// Shrink back below the linear threshold.
	must(t, e.Update(func(tx *Tx) error {
		for i := range 38 {
			must(t, tx.DeleteBinding(fmt.Sprintf("p%02d", i)))
			must(t, tx.DeleteBinding(fmt.Sprintf("d%02d", i)))
		}
		return nil
	}))
	wantAllow(t, check(t, e, "users/alice", "plasmavmc:vms:start", "orgs/acme/projects/p39/vms/x"), "p39")
	wantDeny(t, check(t, e, "users/alice", "plasmavmc:vms:start", "orgs/acme/projects/p38/vms/prod"), ReasonDenied, "d38")
	wantDeny(t, check(t, e, "users/alice", "plasmavmc:vms:start", "orgs/acme/projects/p1/vms/x"), ReasonNoMatchingBinding, "")
}
