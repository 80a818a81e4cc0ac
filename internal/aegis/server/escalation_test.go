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
