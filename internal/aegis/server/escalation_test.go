package server

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	aegisv1 "github.com/photoncloud/photoncloud/api/aegis/v1"
	"github.com/photoncloud/photoncloud/internal/aegis/token"
)

// escalationFixture: in project web of acme, custom roles
//
//	lim    aegis:bindings:*, aegis:projects:get, plasmavmc:*:*   (a project admin without aegis:roles:bind)
//	small  plasmavmc:vms:get                                      (inside lim)
//	big    plasmavmc:vms:get, flashdns:zones:delete               (beyond lim)
//
// and users bound to lim at web in different ways.
type escalationFixture struct {
	lim, small, big string
	// admin holds lim unconditionally; cond only under a condition that
	// is true; denied holds lim but has a deny of plasmavmc.viewer whose
	// condition is false; temp holds lim for an hour only.
	admin, cond, denied, temp string
	target                    string // a member to bind
}

func newEscalationFixture(t *testing.T) *escalationFixture {
	e := tenv
	role := func(perms ...string) string {
		id := e.id("esc")
		return must[*aegisv1.Role](t)(e.st.CreateRole(ctxT(t), acme, id, &aegisv1.Role{Permissions: perms})).GetName()
	}
	f := &escalationFixture{
		lim:   role("aegis:bindings:*", "aegis:projects:get", "plasmavmc:*:*"),
		small: role("plasmavmc:vms:get"),
		big:   role("plasmavmc:vms:get", "flashdns:zones:delete"),
		admin: e.freshUser(t), cond: e.freshUser(t), denied: e.freshUser(t), temp: e.freshUser(t),
		target: e.freshUser(t),
	}
	bind := func(b *aegisv1.Binding) {
		must[*aegisv1.Binding](t)(e.st.CreateBinding(ctxT(t), web, e.id("b"), b, "test"))
	}
	bind(&aegisv1.Binding{Member: f.admin, Role: f.lim})
	bind(&aegisv1.Binding{Member: f.cond, Role: f.lim,
		Condition: &aegisv1.Condition{Expression: `request.time > timestamp("2000-01-01T00:00:00Z")`}})
	bind(&aegisv1.Binding{Member: f.denied, Role: f.lim})
	bind(&aegisv1.Binding{Member: f.denied, Role: "roles/plasmavmc.viewer", Effect: aegisv1.Binding_EFFECT_DENY,
		Condition: &aegisv1.Condition{Expression: `request.source_ip == "192.0.2.1"`}})
	bind(&aegisv1.Binding{Member: f.temp, Role: f.lim, Expiration: &aegisv1.Binding_Ttl{Ttl: durationpb.New(time.Hour)}})
	return f
}

func (e *env) userCtx(t *testing.T, user string, perms ...string) context.Context {
	return withToken(t, e.issue(t, token.Grant{Subject: user, Kind: token.KindUser, Org: "acme", Permissions: perms}))
}

// TestBindingEscalation: binding a role needs aegis:roles:bind or every
// permission of the role, held without condition.
func TestBindingEscalation(t *testing.T) {
	e := tenv
	f := newEscalationFixture(t)
	create := func(ctx context.Context, role string, mod func(*aegisv1.Binding)) (string, error) {
		t.Helper()
		id := e.id("eb")
		b := &aegisv1.Binding{Member: f.target, Role: role}
		if mod != nil {
			mod(b)
		}
		_, err := e.pol.CreateBinding(ctx, &aegisv1.CreateBindingRequest{Parent: web, BindingId: id, Binding: b})
		return web + "/bindings/" + id, err
	}
	// refused checks a refusal: PERMISSION_DENIED naming the missing
	// permission, and no binding written.
	refused := func(name string, err error, missing string) {
		t.Helper()
		wantCode(t, err, codes.PermissionDenied)
		if msg := status.Convert(err).Message(); !strings.Contains(msg, missing) || !strings.Contains(msg, "aegis:roles:bind") {
			t.Errorf("message %q does not name %s", msg, missing)
		}
		if _, err := e.st.GetBinding(name); status.Code(e.srv.apiErr(err)) != codes.NotFound {
			t.Errorf("refused binding %s was written (%v)", name, err)
		}
	}
	admin := e.userCtx(t, f.admin)

	// Within what the caller holds: a subset, a built-in role inside a
	// wildcard the caller holds, a deny, an expiry.
	for _, role := range []string{f.small, f.lim, "roles/plasmavmc.viewer", "roles/plasmavmc.admin"} {
		if _, err := create(admin, role, nil); err != nil {
			t.Errorf("binding %s: %v", role, err)
		}
	}
	if _, err := create(admin, f.small, func(b *aegisv1.Binding) { b.Effect = aegisv1.Binding_EFFECT_DENY }); err != nil {
		t.Errorf("deny binding: %v", err)
	}

	// Beyond it.
	name, err := create(admin, f.big, nil)
	refused(name, err, "flashdns:zones:delete")
	name, err = create(admin, "roles/ProjectEditor", nil) // aegis:serviceAccounts:get, flashdns:*:*, ...
	refused(name, err, "aegis:serviceAccounts:get")
	name, err = create(admin, "roles/ProjectViewer", nil) // *:*:get is wider than plasmavmc:*:*
	refused(name, err, "*:*:get")
	name, err = create(admin, f.big, func(b *aegisv1.Binding) { b.Effect = aegisv1.Binding_EFFECT_DENY })
	refused(name, err, "flashdns:zones:delete")

	// A custom role of another org is refused as the store would, without
	// saying whether it exists.
	for _, role := range []string{"orgs/beta/roles/nosuch", "orgs/beta/roles/x"} {
		_, err := create(admin, role, nil)
		wantCode(t, err, codes.InvalidArgument)
	}
	_, err = create(admin, acme+"/roles/nosuch", nil)
	wantCode(t, err, codes.NotFound)

	// A downscoped token holds only what it covers.
	name, err = create(e.userCtx(t, f.admin, "aegis:bindings:create", "plasmavmc:vms:list"), f.small, nil)
	refused(name, err, "plasmavmc:vms:get")

	// Conditions: a grant under a condition (true now) does not count, and
	// a deny under a condition (false now) does.
	name, err = create(e.userCtx(t, f.cond), f.small, nil)
	refused(name, err, "plasmavmc:vms:get")
	name, err = create(e.userCtx(t, f.denied), f.small, nil)
	refused(name, err, "plasmavmc:vms:get")

	// An expiring grant covers only bindings that end no later.
	tempCtx := e.userCtx(t, f.temp)
	name, err = create(tempCtx, f.small, nil)
	refused(name, err, "plasmavmc:vms:get")
	if _, err := create(tempCtx, f.small, func(b *aegisv1.Binding) {
		b.Expiration = &aegisv1.Binding_Ttl{Ttl: durationpb.New(30 * time.Minute)}
	}); err != nil {
		t.Errorf("binding for less than the caller's own grant: %v", err)
	}

	// Holders of aegis:roles:bind (the owner's OrgAdmin, the built-in
	// ProjectAdmin) bind any role.
	for _, p := range []string{"orgadmin", "projadmin"} {
		if _, err := create(e.as(t, p), f.big, nil); err != nil {
			t.Errorf("%s binding %s: %v", p, f.big, err)
		}
	}
}

// TestBindingEscalationUpdate: an update is checked against the stored
// binding, and a refusal is one ACCESS_DENIED audit event naming the
// missing permission.
func TestBindingEscalationUpdate(t *testing.T) {
	e := tenv
	f := newEscalationFixture(t)
	start := time.Now()
	admin := e.userCtx(t, f.admin)
	mk := func(role string) *aegisv1.Binding {
		return must[*aegisv1.Binding](t)(e.pol.CreateBinding(e.as(t, "orgadmin"), &aegisv1.CreateBindingRequest{
			Parent: web, BindingId: e.id("eu"),
			Binding: &aegisv1.Binding{Member: f.target, Role: role, Expiration: &aegisv1.Binding_Ttl{Ttl: durationpb.New(time.Hour)}}}))
	}
	small, big := mk(f.small), mk(f.big)

	must[*aegisv1.Binding](t)(e.pol.UpdateBinding(admin, &aegisv1.UpdateBindingRequest{
		Binding: &aegisv1.Binding{Name: small.GetName(), Description: "ok"}, UpdateMask: mask("description")}))
	_, err := e.pol.UpdateBinding(admin, &aegisv1.UpdateBindingRequest{
		Binding: &aegisv1.Binding{Name: big.GetName(), Description: "no"}, UpdateMask: mask("description")})
	wantCode(t, err, codes.PermissionDenied)
	if cur := must[*aegisv1.Binding](t)(e.st.GetBinding(big.GetName())); cur.GetEtag() != big.GetEtag() {
		t.Fatalf("refused update changed the binding: %v", cur)
	}
	// The temporary admin may shorten what it could grant, not make it
	// last longer than its own grant.
	temp := e.userCtx(t, f.temp)
	must[*aegisv1.Binding](t)(e.pol.UpdateBinding(temp, &aegisv1.UpdateBindingRequest{
		Binding:    &aegisv1.Binding{Name: small.GetName(), Expiration: &aegisv1.Binding_Ttl{Ttl: durationpb.New(time.Minute)}},
		UpdateMask: mask("ttl")}))
	_, err = e.pol.UpdateBinding(temp, &aegisv1.UpdateBindingRequest{Binding: &aegisv1.Binding{Name: small.GetName()}, UpdateMask: mask("ttl")})
	wantCode(t, err, codes.PermissionDenied)

	e.flushAudit(t)
	evs := listAudit(t, &aegisv1.ListAuditEventsRequest{Parent: acme, Principal: f.admin, StartTime: tsOf(start)})
	var kinds []string
	for _, ev := range evs {
		kinds = append(kinds, ev.GetKind().String()+" "+ev.GetPermission()+" "+ev.GetStatusCode())
	}
	want := []string{ // newest first
		"KIND_ACCESS_DENIED aegis:roles:bind PERMISSION_DENIED",
		"KIND_ADMIN_CHANGE aegis:bindings:update OK",
	}
	if !slices.Equal(kinds, want) {
		t.Fatalf("audit events %q, want %q", kinds, want)
	}
	if ev := evs[0]; ev.GetResource() != web || !strings.Contains(ev.GetStatusMessage(), "flashdns:zones:delete") ||
		ev.GetDecision() == nil || ev.GetMethod() != aegisv1.PolicyService_UpdateBinding_FullMethodName {
		t.Fatalf("denial event %v", ev)
	}
}

// auditKinds returns principal's audit events since start, newest first,
// as "kind permission status resource".
func auditKinds(t *testing.T, principal string, start time.Time) ([]string, []*aegisv1.AuditEvent) {
	t.Helper()
	tenv.flushAudit(t)
	evs := listAudit(t, &aegisv1.ListAuditEventsRequest{Parent: acme, Principal: principal, StartTime: tsOf(start)})
	var kinds []string
	for _, ev := range evs {
		kinds = append(kinds, ev.GetKind().String()+" "+ev.GetPermission()+" "+ev.GetStatusCode()+" "+ev.GetResource())
	}
	return kinds, evs
}

// refusedEscalation checks a refusal of the rule: PERMISSION_DENIED naming
// aegis:roles:bind, the missing permission and the other words given.
func refusedEscalation(t *testing.T, err error, missing string, words ...string) {
	t.Helper()
	wantCode(t, err, codes.PermissionDenied)
	msg := status.Convert(err).Message()
	for _, w := range append([]string{"aegis:roles:bind", "does not hold " + missing + " "}, words...) {
		if !strings.Contains(msg, w) {
			t.Errorf("message %q does not name %q", msg, w)
		}
	}
}

// TestGroupMemberEscalation: adding a member to a group hands out the
// group's allow bindings, so it needs what creating them would.
func TestGroupMemberEscalation(t *testing.T) {
	e := tenv
	f := newEscalationFixture(t)
	start := time.Now()
	// gadmin manages the org's groups and holds plasmavmc:*:* in the org,
	// but not aegis:roles:bind.
	gadminRole := must[*aegisv1.Role](t)(e.st.CreateRole(ctxT(t), acme, e.id("gadm"), &aegisv1.Role{
		Permissions: []string{"aegis:groups:*", "aegis:orgs:get", "plasmavmc:*:*"}})).GetName()
	gadmin := e.freshUser(t)
	must[*aegisv1.Binding](t)(e.st.CreateBinding(ctxT(t), acme, e.id("b"), &aegisv1.Binding{Member: gadmin, Role: gadminRole}, "test"))
	group := func(binds ...*aegisv1.Binding) string {
		g := e.freshGroup(t)
		for _, b := range binds {
			parent := b.GetScope()
			b.Member = g
			must[*aegisv1.Binding](t)(e.st.CreateBinding(ctxT(t), parent, e.id("gb"), b, "test"))
		}
		return g
	}
	add := func(ctx context.Context, g, member string) error {
		t.Helper()
		_, err := e.identity.AddGroupMember(ctx, &aegisv1.AddGroupMemberRequest{Group: g, Member: member})
		return err
	}
	isMember := func(g, member string) bool { return slices.Contains(e.st.GroupsOf(member), g) }
	ctx := e.userCtx(t, gadmin)

	// A group bound to OrgAdmin: the group admin cannot join it, nor
	// add anyone else.
	admins := group(&aegisv1.Binding{Scope: acme, Role: "roles/OrgAdmin"})
	for _, m := range []string{gadmin, f.target} {
		refusedEscalation(t, add(ctx, admins, m), "aegis:auditEvents:*", admins, "roles/OrgAdmin at "+acme)
		if isMember(admins, m) {
			t.Fatalf("refused member %s was added", m)
		}
	}
	// A group whose roles the group admin holds (a deny binding of the
	// group does not count): it may add members.
	held := group(&aegisv1.Binding{Scope: web, Role: f.small},
		&aegisv1.Binding{Scope: acme, Role: "roles/plasmavmc.viewer"},
		&aegisv1.Binding{Scope: web, Role: f.big, Effect: aegisv1.Binding_EFFECT_DENY})
	if err := add(ctx, held, f.target); err != nil || !isMember(held, f.target) {
		t.Fatalf("adding a member to a group of held roles: %v", err)
	}
	// One binding beyond the group admin is enough to refuse.
	mixed := group(&aegisv1.Binding{Scope: web, Role: f.small}, &aegisv1.Binding{Scope: web, Role: f.big})
	refusedEscalation(t, add(ctx, mixed, f.target), "flashdns:zones:delete", f.big+" at "+web)
	// A group admin holding the roles only through a downscoped token
	// that excludes them does not hold them.
	// (The group's bindings are checked by scope: acme's first.)
	refusedEscalation(t, add(e.userCtx(t, gadmin, "aegis:groups:update"), held, gadmin), "plasmavmc:*:get", "roles/plasmavmc.viewer")
	// Holders of aegis:roles:bind (the org admin) may add anyone.
	if err := add(e.as(t, "orgadmin"), admins, f.target); err != nil || !isMember(admins, f.target) {
		t.Fatalf("org admin adding a member to an OrgAdmin group: %v", err)
	}
	// An org admin holds aegis:roles:bind in its org only: a group of the
	// org bound at the system scope is beyond it, not the system admin.
	sys := group(&aegisv1.Binding{Scope: "system", Role: "roles/aegis.viewer"})
	refusedEscalation(t, add(e.as(t, "orgadmin"), sys, f.target), "aegis:*:get", "roles/aegis.viewer at system")
	if err := add(e.as(t, "sysadmin"), sys, f.target); err != nil {
		t.Fatalf("system admin adding a member to a group bound at system: %v", err)
	}
	// Removing members needs nothing more.
	if _, err := e.identity.RemoveGroupMember(ctx, &aegisv1.RemoveGroupMemberRequest{Group: admins, Member: f.target}); err != nil {
		t.Fatalf("removing a member: %v", err)
	}

	// Refusals are ACCESS_DENIED events for aegis:roles:bind at the
	// binding's scope, and nothing else.
	kinds, evs := auditKinds(t, gadmin, start)
	want := []string{ // newest first
		"KIND_ADMIN_CHANGE aegis:groups:update OK " + admins,
		"KIND_ACCESS_DENIED aegis:roles:bind PERMISSION_DENIED " + acme,
		"KIND_ACCESS_DENIED aegis:roles:bind PERMISSION_DENIED " + web,
		"KIND_ADMIN_CHANGE aegis:groups:update OK " + held,
		"KIND_ACCESS_DENIED aegis:roles:bind PERMISSION_DENIED " + acme,
		"KIND_ACCESS_DENIED aegis:roles:bind PERMISSION_DENIED " + acme,
	}
	if !slices.Equal(kinds, want) {
		t.Fatalf("audit events %q, want %q", kinds, want)
	}
	if ev := evs[len(evs)-1]; !strings.Contains(ev.GetStatusMessage(), "roles/OrgAdmin") || ev.GetDecision() == nil ||
		ev.GetMethod() != aegisv1.IdentityService_AddGroupMember_FullMethodName {
		t.Fatalf("denial event %v", ev)
	}
}

// TestRoleUpdateEscalation: adding permissions to a custom role widens
// its bindings, so it needs aegis:roles:bind in the org or every added
// permission; removing needs nothing more.
func TestRoleUpdateEscalation(t *testing.T) {
	e := tenv
	start := time.Now()
	// rupd updates the org's roles and holds plasmavmc:*:* in the org,
	// but not aegis:roles:bind.
	rupdRole := must[*aegisv1.Role](t)(e.st.CreateRole(ctxT(t), acme, e.id("rupd"), &aegisv1.Role{
		Permissions: []string{"aegis:roles:get", "aegis:roles:update", "aegis:orgs:get", "plasmavmc:*:*"}})).GetName()
	rupd := e.freshUser(t)
	must[*aegisv1.Binding](t)(e.st.CreateBinding(ctxT(t), acme, e.id("b"), &aegisv1.Binding{Member: rupd, Role: rupdRole}, "test"))
	role := must[*aegisv1.Role](t)(e.st.CreateRole(ctxT(t), acme, e.id("tgt"), &aegisv1.Role{
		Permissions: []string{"plasmavmc:vms:get", "plasmavmc:vms:list", "flashdns:zones:*"}}))
	name := role.GetName()
	update := func(ctx context.Context, perms ...string) (*aegisv1.Role, error) {
		t.Helper()
		return e.pol.UpdateRole(ctx, &aegisv1.UpdateRoleRequest{Role: &aegisv1.Role{Name: name, Permissions: perms}, UpdateMask: mask("permissions")})
	}
	perms := func() []string {
		return must[*aegisv1.Role](t)(e.st.GetRole(name)).GetPermissions()
	}
	ctx := e.userCtx(t, rupd)

	// Adding a permission the updater lacks is refused, and changes
	// nothing.
	_, err := update(ctx, "plasmavmc:vms:get", "plasmavmc:vms:list", "flashdns:zones:*", "aegis:users:delete")
	refusedEscalation(t, err, "aegis:users:delete", "role "+name, acme)
	if cur := must[*aegisv1.Role](t)(e.st.GetRole(name)); cur.GetEtag() != role.GetEtag() {
		t.Fatalf("refused update changed the role: %v", cur)
	}
	// Narrowing a permission the role already has adds nothing.
	must[*aegisv1.Role](t)(update(ctx, "plasmavmc:vms:get", "plasmavmc:vms:list", "flashdns:zones:get"))
	// Removing needs nothing more, even of permissions the updater lacks.
	must[*aegisv1.Role](t)(update(ctx, "plasmavmc:vms:get"))
	// Adding one it holds is fine; one it does not is not, even once
	// removed before.
	must[*aegisv1.Role](t)(update(ctx, "plasmavmc:vms:get", "plasmavmc:vms:start"))
	_, err = update(ctx, "plasmavmc:vms:get", "flashdns:zones:get")
	refusedEscalation(t, err, "flashdns:zones:get")
	// Widening a permission the role has is adding.
	_, err = update(ctx, "*:*:get", "plasmavmc:vms:start")
	refusedEscalation(t, err, "*:*:get")
	if got := perms(); !slices.Equal(got, []string{"plasmavmc:vms:get", "plasmavmc:vms:start"}) {
		t.Fatalf("permissions %q after a refused update", got)
	}
	// A change that is not of permissions needs nothing more.
	must[*aegisv1.Role](t)(e.pol.UpdateRole(ctx, &aegisv1.UpdateRoleRequest{
		Role: &aegisv1.Role{Name: name, Description: "d"}, UpdateMask: mask("description")}))
	// The org admin holds aegis:roles:bind.
	must[*aegisv1.Role](t)(update(e.as(t, "orgadmin"), "plasmavmc:vms:get", "aegis:users:delete"))

	kinds, evs := auditKinds(t, rupd, start)
	want := []string{ // newest first
		"KIND_ADMIN_CHANGE aegis:roles:update OK " + name,
		"KIND_ACCESS_DENIED aegis:roles:bind PERMISSION_DENIED " + acme,
		"KIND_ACCESS_DENIED aegis:roles:bind PERMISSION_DENIED " + acme,
		"KIND_ADMIN_CHANGE aegis:roles:update OK " + name,
		"KIND_ADMIN_CHANGE aegis:roles:update OK " + name,
		"KIND_ADMIN_CHANGE aegis:roles:update OK " + name,
		"KIND_ACCESS_DENIED aegis:roles:bind PERMISSION_DENIED " + acme,
	}
	if !slices.Equal(kinds, want) {
		t.Fatalf("audit events %q, want %q", kinds, want)
	}
	if ev := evs[len(evs)-1]; !strings.Contains(ev.GetStatusMessage(), "aegis:users:delete") || ev.GetDecision() == nil ||
		ev.GetMethod() != aegisv1.PolicyService_UpdateRole_FullMethodName {
		t.Fatalf("denial event %v", ev)
	}
}

// TestActAsEscalation: setting another user's password, linking a
// federated identity to a user, creating a key of a service account or
// binding a certificate to one lets the caller act as that principal, so
// it needs what creating the principal's allow bindings (its own and its
// groups') would.
func TestActAsEscalation(t *testing.T) {
	e := tenv
	f := newEscalationFixture(t)
	start := time.Now()
	// uadmin administers the org's users and service accounts and holds
	// plasmavmc:*:* in the org, but not aegis:roles:bind.
	uadminRole := must[*aegisv1.Role](t)(e.st.CreateRole(ctxT(t), acme, e.id("uadm"), &aegisv1.Role{
		Permissions: []string{"aegis:users:*", "aegis:orgs:get", "aegis:serviceAccounts:*", "aegis:serviceAccountKeys:*", "plasmavmc:*:*"}})).GetName()
	uadmin := e.freshUser(t)
	bind := func(parent, member, role string) {
		t.Helper()
		must[*aegisv1.Binding](t)(e.st.CreateBinding(ctxT(t), parent, e.id("b"), &aegisv1.Binding{Member: member, Role: role}, "test"))
	}
	bind(acme, uadmin, uadminRole)
	groupOf := func(member, scope, role string) string {
		t.Helper()
		g := e.freshGroup(t)
		bind(scope, g, role)
		must[*aegisv1.GroupMember](t)(e.st.AddGroupMember(ctxT(t), g, member, ""))
		return g
	}
	// Users: an OrgAdmin of the org; a plain user whose roles (its own
	// and its group's) uadmin holds; a user who is a ProjectEditor through
	// a group.
	oadmin, plain, grouped := e.freshUser(t), e.freshUser(t), e.freshUser(t)
	bind(acme, oadmin, "roles/OrgAdmin")
	bind(web, plain, "roles/plasmavmc.viewer")
	groupOf(plain, acme, "roles/plasmavmc.viewer")
	editors := groupOf(grouped, web, "roles/ProjectEditor")
	// Service accounts: one bound to a role uadmin lacks, one to a role it
	// holds, one bound at the system scope (as platform services are).
	saBig, saHeld, saSys := e.freshSA(t), e.freshSA(t), e.freshSA(t)
	bind(web, saBig, f.big)
	bind(web, saHeld, "roles/plasmavmc.admin")
	bind("system", saSys, "roles/aegis.authzChecker")

	ctx := e.userCtx(t, uadmin)
	setPassword := func(ctx context.Context, user, current string) error {
		t.Helper()
		_, err := e.identity.SetUserPassword(ctx, &aegisv1.SetUserPasswordRequest{Name: user, NewPassword: "a new password", CurrentPassword: current})
		return err
	}
	createKey := func(ctx context.Context, sa string) (*aegisv1.ServiceAccountKey, error) {
		t.Helper()
		return e.identity.CreateServiceAccountKey(ctx, &aegisv1.CreateServiceAccountKeyRequest{Parent: sa})
	}
	keyCount := func(sa string) int {
		t.Helper()
		return len(must[*aegisv1.ListServiceAccountKeysResponse](t)(e.identity.ListServiceAccountKeys(e.as(t, "orgadmin"),
			&aegisv1.ListServiceAccountKeysRequest{Parent: sa})).GetKeys())
	}
	link := func(ctx context.Context, user string, subjects ...string) (*aegisv1.User, error) {
		t.Helper()
		var fis []*aegisv1.FederatedIdentity
		for _, s := range subjects {
			fis = append(fis, &aegisv1.FederatedIdentity{Issuer: "https://idp.test", Subject: s})
		}
		return e.identity.UpdateUser(ctx, &aegisv1.UpdateUserRequest{User: &aegisv1.User{Name: user, FederatedIdentities: fis},
			UpdateMask: mask("federated_identities")})
	}
	getUser := func(user string) *aegisv1.User { return must[*aegisv1.User](t)(e.st.GetUser(user)) }

	// Passwords: not of the OrgAdmin (nothing written), of the plain user
	// yes; the group's bindings count as the user's own.
	before := getUser(oadmin)
	refusedEscalation(t, setPassword(ctx, oadmin, ""), "aegis:auditEvents:*", "setting the password of "+oadmin, "roles/OrgAdmin at "+acme)
	if after := getUser(oadmin); after.GetEtag() != before.GetEtag() || after.GetPasswordUpdateTime() != nil {
		t.Fatalf("refused password change wrote %v", after)
	}
	if err := setPassword(ctx, plain, ""); err != nil {
		t.Fatalf("setting the password of a user whose roles the admin holds: %v", err)
	}
	refusedEscalation(t, setPassword(ctx, grouped, ""), "aegis:projects:get",
		"roles/ProjectEditor at "+web+" (of its group "+editors+")")
	// A downscoped token holds only what it covers.
	refusedEscalation(t, setPassword(e.userCtx(t, uadmin, "aegis:users:setPassword"), plain, ""), "plasmavmc:*:get",
		"its binding", "roles/plasmavmc.viewer at "+web)
	// The org admin holds aegis:roles:bind; a user changes its own
	// password whatever it holds.
	if err := setPassword(e.as(t, "orgadmin"), grouped, ""); err != nil {
		t.Fatalf("org admin setting a password: %v", err)
	}
	if _, err := e.identity.SetUserPassword(e.userCtx(t, grouped), &aegisv1.SetUserPasswordRequest{Name: grouped,
		NewPassword: "my own new password", CurrentPassword: "a new password"}); err != nil {
		t.Fatalf("a user changing its own password: %v", err)
	}

	// Keys: not of a service account bound to a role uadmin lacks.
	_, err := createKey(ctx, saBig)
	refusedEscalation(t, err, "flashdns:zones:delete", "creating a key of "+saBig, f.big+" at "+web)
	if n := keyCount(saBig); n != 0 {
		t.Fatalf("refused key creation wrote %d keys", n)
	}
	key := must[*aegisv1.ServiceAccountKey](t)(createKey(ctx, saHeld))
	// A project admin holds aegis:roles:bind in its project only.
	must[*aegisv1.ServiceAccountKey](t)(createKey(e.as(t, "projadmin"), saBig))
	_, err = createKey(e.as(t, "projadmin"), saSys)
	refusedEscalation(t, err, "aegis:authz:check", "roles/aegis.authzChecker at system")
	must[*aegisv1.ServiceAccountKey](t)(createKey(e.as(t, "sysadmin"), saSys))

	// Federated identities: a new link to the OrgAdmin is refused, and so
	// is changing one; other fields, and dropping a link, are not.
	_, err = link(ctx, oadmin, e.id("fed"))
	refusedEscalation(t, err, "aegis:auditEvents:*", "linking a federated identity to "+oadmin)
	if after := getUser(oadmin); after.GetEtag() != before.GetEtag() {
		t.Fatalf("refused link wrote %v", after)
	}
	must[*aegisv1.User](t)(e.identity.UpdateUser(ctx, &aegisv1.UpdateUserRequest{User: &aegisv1.User{Name: oadmin, Email: "o@example.com"},
		UpdateMask: mask("email")}))
	fed := e.id("fed")
	must[*aegisv1.User](t)(link(e.as(t, "orgadmin"), oadmin, fed))
	_, err = link(ctx, oadmin, fed+"x")
	refusedEscalation(t, err, "aegis:auditEvents:*")
	if fis := getUser(oadmin).GetFederatedIdentities(); len(fis) != 1 || fis[0].GetSubject() != fed {
		t.Fatalf("federated identities %v after a refused change", fis)
	}
	must[*aegisv1.User](t)(link(ctx, oadmin))
	must[*aegisv1.User](t)(link(ctx, plain, e.id("fed")))

	// Certificate identities of a service account: as keys.
	cert := func(ctx context.Context, sa string) error {
		t.Helper()
		_, err := e.identity.UpdateServiceAccount(ctx, &aegisv1.UpdateServiceAccountRequest{
			ServiceAccount: &aegisv1.ServiceAccount{Name: sa, CertificateIdentities: []*aegisv1.CertificateIdentity{
				{Match: &aegisv1.CertificateIdentity_UriSan{UriSan: "spiffe://photon/" + e.id("c")}}}},
			UpdateMask: mask("certificate_identities")})
		return err
	}
	refusedEscalation(t, cert(ctx, saBig), "flashdns:zones:delete", "binding a client certificate identity to "+saBig)
	if cis := must[*aegisv1.ServiceAccount](t)(e.st.GetServiceAccount(saBig)).GetCertificateIdentities(); len(cis) != 0 {
		t.Fatalf("refused certificate identity written: %v", cis)
	}
	must[*aegisv1.ServiceAccount](t)(e.identity.UpdateServiceAccount(ctx, &aegisv1.UpdateServiceAccountRequest{
		ServiceAccount: &aegisv1.ServiceAccount{Name: saBig, Description: "d"}, UpdateMask: mask("description")}))
	if err := cert(ctx, saHeld); err != nil {
		t.Fatalf("certificate identity of a service account whose roles the admin holds: %v", err)
	}

	// Refusals are ACCESS_DENIED events for aegis:roles:bind at the
	// binding's scope, instead of a failed change.
	kinds, evs := auditKinds(t, uadmin, start)
	want := []string{ // newest first
		"KIND_ADMIN_CHANGE aegis:serviceAccounts:update OK " + saHeld,
		"KIND_ADMIN_CHANGE aegis:serviceAccounts:update OK " + saBig,
		"KIND_ACCESS_DENIED aegis:roles:bind PERMISSION_DENIED " + web,
		"KIND_ADMIN_CHANGE aegis:users:update OK " + plain,
		"KIND_ADMIN_CHANGE aegis:users:update OK " + oadmin,
		"KIND_ACCESS_DENIED aegis:roles:bind PERMISSION_DENIED " + acme,
		"KIND_ADMIN_CHANGE aegis:users:update OK " + oadmin,
		"KIND_ACCESS_DENIED aegis:roles:bind PERMISSION_DENIED " + acme,
		"KIND_ADMIN_CHANGE aegis:serviceAccountKeys:create OK " + key.GetName(),
		"KIND_ACCESS_DENIED aegis:roles:bind PERMISSION_DENIED " + web,
		"KIND_ACCESS_DENIED aegis:roles:bind PERMISSION_DENIED " + web,
		"KIND_ACCESS_DENIED aegis:roles:bind PERMISSION_DENIED " + web,
		"KIND_ADMIN_CHANGE aegis:users:setPassword OK " + plain,
		"KIND_ACCESS_DENIED aegis:roles:bind PERMISSION_DENIED " + acme,
	}
	if !slices.Equal(kinds, want) {
		t.Fatalf("audit events %q, want %q", kinds, want)
	}
	methods := map[int]string{
		2:  aegisv1.IdentityService_UpdateServiceAccount_FullMethodName,
		5:  aegisv1.IdentityService_UpdateUser_FullMethodName,
		9:  aegisv1.IdentityService_CreateServiceAccountKey_FullMethodName,
		13: aegisv1.IdentityService_SetUserPassword_FullMethodName,
	}
	for i, m := range methods {
		if ev := evs[i]; ev.GetMethod() != m || ev.GetDecision() == nil || !strings.Contains(ev.GetStatusMessage(), "does not hold") {
			t.Errorf("denial event %d: %v", i, ev)
		}
	}
}
