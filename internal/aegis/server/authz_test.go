package server

import (
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	aegisv1 "github.com/photoncloud/photoncloud/api/aegis/v1"
	"github.com/photoncloud/photoncloud/internal/aegis/token"
)

func principalSubject(p string) *aegisv1.Subject {
	return &aegisv1.Subject{Identity: &aegisv1.Subject_Principal{Principal: p}}
}

func tokenSubject(tok string) *aegisv1.Subject {
	return &aegisv1.Subject{Identity: &aegisv1.Subject_AccessToken{AccessToken: tok}}
}

// authzFixture: in project web of acme,
//
//	alice  ProjectEditor at web, denied plasmavmc.admin on vms/secret
//	bob    ProjectViewer at web if request.source_ip == "10.0.0.1"
//	carol  ProjectViewer at web, denied ProjectViewer where resource.labels["env"] == "prod"
//	devs   (group with dave) flashdns.editor at web
type authzFixture struct {
	alice, bob, carol, dave, devs string
	denyAlice, allowAlice         string
	secret                        string
}

func newAuthzFixture(t *testing.T) *authzFixture {
	e := tenv
	f := &authzFixture{alice: e.freshUser(t), bob: e.freshUser(t), carol: e.freshUser(t), dave: e.freshUser(t), devs: e.freshGroup(t)}
	f.secret = web + "/vms/" + e.id("secret")
	must[*aegisv1.GroupMember](t)(e.st.AddGroupMember(ctxT(t), f.devs, f.dave, ""))
	bind := func(member, role, scope string, effect aegisv1.Binding_Effect, cond string) string {
		b := &aegisv1.Binding{Member: member, Role: role, Scope: scope, Effect: effect}
		if cond != "" {
			b.Condition = &aegisv1.Condition{Expression: cond}
		}
		return must[*aegisv1.Binding](t)(e.st.CreateBinding(ctxT(t), web, e.id("b"), b, "test")).GetName()
	}
	f.allowAlice = bind(f.alice, "roles/ProjectEditor", "", aegisv1.Binding_EFFECT_ALLOW, "")
	f.denyAlice = bind(f.alice, "roles/plasmavmc.admin", f.secret, aegisv1.Binding_EFFECT_DENY, "")
	bind(f.bob, "roles/ProjectViewer", "", aegisv1.Binding_EFFECT_ALLOW, `request.source_ip == "10.0.0.1"`)
	bind(f.carol, "roles/ProjectViewer", "", aegisv1.Binding_EFFECT_ALLOW, "")
	bind(f.carol, "roles/ProjectViewer", "", aegisv1.Binding_EFFECT_DENY, `resource.labels["env"] == "prod"`)
	bind(f.devs, "roles/flashdns.editor", "", aegisv1.Binding_EFFECT_ALLOW, "")
	return f
}

func TestAuthorize(t *testing.T) {
	e := tenv
	f := newAuthzFixture(t)
	ctx := e.as(t, "sa") // has aegis:authz:check on system
	ask := func(sub *aegisv1.Subject, perm, res string, labels map[string]string, ip string) *aegisv1.Decision {
		t.Helper()
		return must[*aegisv1.AuthorizeResponse](t)(e.authz.Authorize(ctx, &aegisv1.AuthorizeRequest{
			Subject: sub, Permission: perm, Resource: res, ResourceLabels: labels, SourceIp: ip})).GetDecision()
	}

	d := ask(principalSubject(f.alice), "plasmavmc:vms:get", web+"/vms/other", nil, "")
	if !d.GetAllowed() || d.GetReason() != aegisv1.Decision_REASON_ALLOWED || d.GetBinding() != f.allowAlice ||
		d.GetRole() != "roles/ProjectEditor" || d.GetScope() != web || d.GetMember() != f.alice || d.GetPrincipal() != f.alice {
		t.Fatalf("alice on another vm: %v", d)
	}
	if ttl := d.GetCacheTtl().AsDuration(); ttl <= 0 || ttl > time.Second {
		t.Fatalf("cache_ttl %v", ttl)
	}
	d = ask(principalSubject(f.alice), "plasmavmc:vms:get", f.secret, nil, "")
	if d.GetAllowed() || d.GetReason() != aegisv1.Decision_REASON_DENIED_BY_BINDING || d.GetBinding() != f.denyAlice || d.GetRole() != "roles/plasmavmc.admin" {
		t.Fatalf("alice on the secret vm: %v", d)
	}
	d = ask(principalSubject(f.alice), "aegis:users:create", acme, nil, "")
	if d.GetAllowed() || d.GetReason() != aegisv1.Decision_REASON_NO_ALLOW_BINDING {
		t.Fatalf("alice creating users: %v", d)
	}

	// Conditions: allowed only from the right address, never cached.
	d = ask(principalSubject(f.bob), "plasmavmc:vms:get", web, nil, "10.0.0.1")
	if !d.GetAllowed() || d.GetCacheTtl().AsDuration() != 0 {
		t.Fatalf("bob from the office: %v", d)
	}
	d = ask(principalSubject(f.bob), "plasmavmc:vms:get", web, nil, "10.0.0.2")
	if d.GetAllowed() || d.GetReason() != aegisv1.Decision_REASON_NO_ALLOW_BINDING {
		t.Fatalf("bob from elsewhere: %v", d)
	}
	d = ask(principalSubject(f.bob), "plasmavmc:vms:get", web, nil, "")
	if d.GetAllowed() {
		t.Fatalf("bob from an unknown address: %v", d)
	}
	// A deny whose condition cannot be evaluated applies; an allow
	// whose condition is false does not bear on it.
	d = ask(principalSubject(f.carol), "plasmavmc:vms:get", web+"/vms/x", nil, "")
	if d.GetAllowed() || d.GetReason() != aegisv1.Decision_REASON_DENIED_BY_BINDING || d.GetConditionError() == "" {
		t.Fatalf("carol without labels: %v", d)
	}
	d = ask(principalSubject(f.carol), "plasmavmc:vms:get", web+"/vms/x", map[string]string{"env": "dev"}, "")
	if !d.GetAllowed() {
		t.Fatalf("carol on a dev vm: %v", d)
	}
	d = ask(principalSubject(f.carol), "plasmavmc:vms:get", web+"/vms/x", map[string]string{"env": "prod"}, "")
	if d.GetAllowed() || d.GetReason() != aegisv1.Decision_REASON_DENIED_BY_BINDING {
		t.Fatalf("carol on a prod vm: %v", d)
	}
	// Aegis's own project uses its stored labels (web has env=prod).
	d = ask(principalSubject(f.carol), "plasmavmc:vms:list", web, nil, "")
	if d.GetAllowed() {
		t.Fatalf("carol on the prod project: %v", d)
	}
	// Through a group.
	d = ask(principalSubject(f.dave), "flashdns:records:update", web+"/zones/z/records/r", nil, "")
	if !d.GetAllowed() || d.GetMember() != f.devs {
		t.Fatalf("dave through devs: %v", d)
	}
	// Unknown principal.
	d = ask(principalSubject(acme+"/users/nobody"), "plasmavmc:vms:get", web, nil, "")
	if d.GetReason() != aegisv1.Decision_REASON_PRINCIPAL_INACTIVE {
		t.Fatalf("nobody: %v", d)
	}

	// Subject tokens: verified, restricted, and invalid ones are a denial.
	aliceTok := e.issue(t, token.Grant{Subject: f.alice, Kind: token.KindUser, Org: "acme"})
	d = ask(tokenSubject(aliceTok), "plasmavmc:vms:get", web+"/vms/other", nil, "")
	if !d.GetAllowed() || d.GetPrincipal() != f.alice {
		t.Fatalf("alice's token: %v", d)
	}
	narrow := e.issue(t, token.Grant{Subject: f.alice, Kind: token.KindUser, Org: "acme", Permissions: []string{"plasmavmc:vms:list"}})
	d = ask(tokenSubject(narrow), "plasmavmc:vms:get", web+"/vms/other", nil, "")
	if d.GetAllowed() || d.GetReason() != aegisv1.Decision_REASON_TOKEN_RESTRICTED {
		t.Fatalf("permission-restricted token: %v", d)
	}
	other := e.issue(t, token.Grant{Subject: f.alice, Kind: token.KindUser, Org: "acme", Project: "other"})
	d = ask(tokenSubject(other), "plasmavmc:vms:get", web+"/vms/other", nil, "")
	if d.GetAllowed() || d.GetReason() != aegisv1.Decision_REASON_TOKEN_RESTRICTED {
		t.Fatalf("project-restricted token: %v", d)
	}
	inWeb := e.issue(t, token.Grant{Subject: f.alice, Kind: token.KindUser, Org: "acme", Project: "web"})
	if d = ask(tokenSubject(inWeb), "plasmavmc:vms:get", web+"/vms/other", nil, ""); !d.GetAllowed() {
		t.Fatalf("web-restricted token in web: %v", d)
	}
	for _, bad := range []string{"garbage", aliceTok[:len(aliceTok)-4] + "AAAA"} {
		d = ask(tokenSubject(bad), "plasmavmc:vms:get", web, nil, "")
		if d.GetAllowed() || d.GetReason() != aegisv1.Decision_REASON_UNAUTHENTICATED || d.GetCacheTtl().AsDuration() != 0 {
			t.Fatalf("bad token: %v", d)
		}
	}

	// The caller's own access: no permission needed, restrictions apply.
	self := withToken(t, narrow)
	r := must[*aegisv1.AuthorizeResponse](t)(e.authz.Authorize(self, &aegisv1.AuthorizeRequest{Permission: "plasmavmc:vms:list", Resource: web}))
	if !r.GetDecision().GetAllowed() {
		t.Fatalf("own access: %v", r)
	}
	r = must[*aegisv1.AuthorizeResponse](t)(e.authz.Authorize(self, &aegisv1.AuthorizeRequest{Permission: "plasmavmc:vms:get", Resource: web}))
	if r.GetDecision().GetReason() != aegisv1.Decision_REASON_TOKEN_RESTRICTED {
		t.Fatalf("own restricted access: %v", r)
	}
	// Someone else's, through their token, needs aegis:authz:check.
	_, err := e.authz.Authorize(self, &aegisv1.AuthorizeRequest{Subject: tokenSubject(e.tokens["editor"]), Permission: "plasmavmc:vms:get", Resource: web})
	wantCode(t, err, codes.PermissionDenied)

	// BatchAuthorize answers in order.
	br := must[*aegisv1.BatchAuthorizeResponse](t)(e.authz.BatchAuthorize(ctx, &aegisv1.BatchAuthorizeRequest{Subject: principalSubject(f.alice),
		Checks: []*aegisv1.AccessCheck{
			{Permission: "plasmavmc:vms:get", Resource: f.secret},
			{Permission: "plasmavmc:vms:get", Resource: web + "/vms/a"},
			{Permission: "aegis:orgs:delete", Resource: acme},
		}}))
	var got []bool
	for _, d := range br.GetDecisions() {
		got = append(got, d.GetAllowed())
	}
	if !slices.Equal(got, []bool{false, true, false}) || br.GetDecisions()[0].GetBinding() != f.denyAlice {
		t.Fatalf("batch: %v", br)
	}

	// TestPermissions returns the allowed subset in request order.
	tp := must[*aegisv1.TestPermissionsResponse](t)(e.authz.TestPermissions(ctx, &aegisv1.TestPermissionsRequest{Subject: principalSubject(f.alice),
		Resource: web + "/vms/a", Permissions: []string{"plasmavmc:vms:start", "aegis:users:get", "plasmavmc:vms:get", "plasmavmc:vms:start"}}))
	if !slices.Equal(tp.GetPermissions(), []string{"plasmavmc:vms:start", "plasmavmc:vms:get"}) {
		t.Fatalf("test permissions: %v", tp)
	}
	tp = must[*aegisv1.TestPermissionsResponse](t)(e.authz.TestPermissions(ctx, &aegisv1.TestPermissionsRequest{Subject: principalSubject(f.alice),
		Resource: f.secret, Permissions: []string{"plasmavmc:vms:start", "flashdns:zones:get"}}))
	if !slices.Equal(tp.GetPermissions(), []string{"flashdns:zones:get"}) {
		t.Fatalf("test permissions on the secret vm: %v", tp)
	}
	tp = must[*aegisv1.TestPermissionsResponse](t)(e.authz.TestPermissions(ctx, &aegisv1.TestPermissionsRequest{Subject: tokenSubject(narrow),
		Resource: web, Permissions: []string{"plasmavmc:vms:list", "plasmavmc:vms:get"}}))
	if !slices.Equal(tp.GetPermissions(), []string{"plasmavmc:vms:list"}) {
		t.Fatalf("test permissions of a restricted token: %v", tp)
	}

	// A suspended org's resources are reachable only through system
	// bindings: its own principals are disabled.
	oid := e.id("susp")
	org := "orgs/" + oid
	must[*aegisv1.Org](t)(e.st.CreateOrg(ctxT(t), oid, nil))
	member := e.freshUserIn(t, org)
	must[*aegisv1.Binding](t)(e.st.CreateBinding(ctxT(t), org, e.id("b"), &aegisv1.Binding{Member: member, Role: "roles/OrgViewer"}, "t"))
	op := e.freshUserIn(t, beta)
	must[*aegisv1.Binding](t)(e.st.CreateBinding(ctxT(t), "system", e.id("b"), &aegisv1.Binding{Member: op, Role: "roles/OrgViewer", Scope: org}, "t"))
	if d = ask(principalSubject(member), "aegis:users:list", org, nil, ""); !d.GetAllowed() {
		t.Fatalf("member before suspension: %v", d)
	}
	must[*aegisv1.Org](t)(e.st.UpdateOrg(ctxT(t), org, "", func(o *aegisv1.Org) error { o.State = aegisv1.Org_STATE_SUSPENDED; return nil }))
	if d = ask(principalSubject(member), "aegis:users:list", org, nil, ""); d.GetAllowed() || d.GetReason() != aegisv1.Decision_REASON_PRINCIPAL_INACTIVE {
		t.Fatalf("member after suspension: %v", d)
	}
	if d = ask(principalSubject(op), "aegis:users:list", org, nil, ""); !d.GetAllowed() {
		t.Fatalf("system-scope grant after suspension: %v", d)
	}
}

func TestLookupPrincipals(t *testing.T) {
	e := tenv
	f := newAuthzFixture(t)
	ctx := e.as(t, "orgadmin")
	lookup := func(res, perm string, expand bool) []*aegisv1.PrincipalAccess {
		t.Helper()
		var out []*aegisv1.PrincipalAccess
		tok := ""
		for {
			r := must[*aegisv1.LookupPrincipalsResponse](t)(e.authz.LookupPrincipals(ctx, &aegisv1.LookupPrincipalsRequest{
				Resource: res, Permission: perm, ExpandGroups: expand, PageSize: 2, PageToken: tok}))
			if len(r.GetPrincipals()) > 2 {
				t.Fatalf("page of %d", len(r.GetPrincipals()))
			}
			out = append(out, r.GetPrincipals()...)
			if tok = r.GetNextPageToken(); tok == "" {
				return out
			}
		}
	}
	index := func(es []*aegisv1.PrincipalAccess) map[string]*aegisv1.PrincipalAccess {
		m := map[string]*aegisv1.PrincipalAccess{}
		for _, e := range es {
			m[e.GetPrincipal()] = e
		}
		return m
	}

	got := index(lookup(f.secret, "plasmavmc:vms:get", false))
	for _, p := range []string{"orgs/system/users/admin", "orgs/acme/users/oadmin", "orgs/acme/users/padmin", "orgs/acme/users/editor",
		"orgs/acme/users/viewer", "orgs/acme/projects/web/serviceAccounts/ci", f.bob, f.carol} {
		if got[p] == nil {
			t.Errorf("%s missing from %v", p, got)
		}
	}
	if got[f.alice] != nil {
		t.Errorf("alice is always denied on the secret vm but listed: %v", got[f.alice])
	}
	if !got[f.bob].GetConditional() || !got[f.carol].GetConditional() || got["orgs/acme/users/editor"].GetConditional() {
		t.Errorf("conditional flags: bob %v, carol %v, editor %v", got[f.bob], got[f.carol], got["orgs/acme/users/editor"])
	}
	if e := got["orgs/acme/users/editor"]; e.GetRole() != "roles/ProjectEditor" || e.GetScope() != web ||
		e.GetBinding() != web+"/bindings/editor" || e.GetPrincipalKind() != aegisv1.PrincipalKind_PRINCIPAL_KIND_USER {
		t.Errorf("editor entry: %v", e)
	}
	if e := got["orgs/acme/projects/web/serviceAccounts/ci"]; e.GetPrincipalKind() != aegisv1.PrincipalKind_PRINCIPAL_KIND_SERVICE_ACCOUNT {
		t.Errorf("ci entry: %v", e)
	}
	if got = index(lookup(web+"/vms/other", "plasmavmc:vms:get", false)); got[f.alice] == nil {
		t.Errorf("alice missing on another vm")
	}

	// Groups, as such or expanded.
	got = index(lookup(web+"/zones/z", "flashdns:records:update", false))
	if got[f.devs] == nil || got[f.devs].GetPrincipalKind() != aegisv1.PrincipalKind_PRINCIPAL_KIND_GROUP || got[f.dave] != nil {
		t.Errorf("unexpanded: %v", got)
	}
	got = index(lookup(web+"/zones/z", "flashdns:records:update", true))
	if got[f.dave] == nil || got[f.dave].GetViaGroup() != f.devs || got[f.devs] != nil {
		t.Errorf("expanded: %v", got)
	}

	// Page tokens belong to their query.
	r := must[*aegisv1.LookupPrincipalsResponse](t)(e.authz.LookupPrincipals(ctx, &aegisv1.LookupPrincipalsRequest{
		Resource: web, Permission: "plasmavmc:vms:get", PageSize: 1}))
	_, err := e.authz.LookupPrincipals(ctx, &aegisv1.LookupPrincipalsRequest{
		Resource: web, Permission: "plasmavmc:vms:list", PageSize: 1, PageToken: r.GetNextPageToken()})
	wantCode(t, err, codes.InvalidArgument)
}

// The caller's own aegis:authz:check is remembered between calls, but
// only until the IAM state changes: a service whose binding is deleted is
// refused on its very next call.
func TestCallerGrantCacheFollowsChanges(t *testing.T) {
	e := tenv
	ctx := ctxT(t)
	name := e.id("checker")
	sa := must[*aegisv1.ServiceAccount](t)(e.st.CreateServiceAccount(ctx, "orgs/acme/projects/web", name, &aegisv1.ServiceAccount{}))
	b := must[*aegisv1.Binding](t)(e.st.CreateBinding(ctx, "system", e.id("chk"),
		&aegisv1.Binding{Member: sa.GetName(), Role: "roles/aegis.authzChecker"}, "test"))
	caller := withToken(t, e.issue(t, token.Grant{Subject: sa.GetName(), Kind: token.KindServiceAccount, Org: "acme"}))
	req := &aegisv1.AuthorizeRequest{
		Subject:    &aegisv1.Subject{Identity: &aegisv1.Subject_Principal{Principal: "orgs/acme/users/editor"}},
		Permission: "plasmavmc:vms:get", Resource: "orgs/acme/projects/web",
	}
	for range 3 { // the later calls hit the cache
		if _, err := e.authz.Authorize(caller, req); err != nil {
			t.Fatalf("Authorize by a checker: %v", err)
		}
	}
	if err := e.st.DeleteBinding(ctx, b.GetName(), ""); err != nil {
		t.Fatal(err)
	}
	_, err := e.authz.Authorize(caller, req)
	wantCode(t, err, codes.PermissionDenied)
}
