package store

import (
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	aegisv1 "github.com/photoncloud/photoncloud/api/aegis/v1"
	"github.com/photoncloud/photoncloud/internal/aegis/policy"
	"github.com/photoncloud/photoncloud/internal/chainfire/chainfiretest"
)

const (
	alice   = "orgs/acme/users/alice"
	project = "orgs/acme/projects/web"
	vm      = "orgs/acme/projects/web/vms/vm-1"
)

func TestTwoReplicasEnforceBindingsAndRevocations(t *testing.T) {
	addr := startChainfire(t)
	a := openStore(t, addr, nil)
	b := openStore(t, addr, nil)
	ctx := ctxT(t)
	seed(t, a)

	if allowed(t, a, alice, "plasmavmc:vms:create", project) {
		t.Fatal("allowed before any binding")
	}
	bnd, err := a.CreateBinding(ctx, project, "alice-editor",
		&aegisv1.Binding{Member: alice, Role: "roles/ProjectEditor"}, "orgs/system/users/admin")
	if err != nil {
		t.Fatal(err)
	}
	if bnd.Scope != project || bnd.Effect != aegisv1.Binding_EFFECT_ALLOW || bnd.Creator != "orgs/system/users/admin" {
		t.Fatalf("binding defaults: %v", bnd)
	}
	// The writer enforces its own write at once, the other replica within
	// the watch delay.
	if !allowed(t, a, alice, "plasmavmc:vms:create", vm) {
		t.Fatal("writer does not enforce its own binding")
	}
	start := time.Now()
	eventually(t, time.Second, "binding enforced by the other replica", func() bool {
		return allowed(t, b, alice, "plasmavmc:vms:create", vm)
	})
	t.Logf("binding propagated in %v", time.Since(start))

	// Decisions translate back to API names.
	sub := must[string](t)(b.PolicyPrincipal(alice))
	d, _ := b.Evaluator().Authorize(ctx, policy.Request{Principal: sub, Permission: "plasmavmc:vms:create", Resource: vm})
	if n, _ := b.BindingName(d.BindingID); n != bnd.Name {
		t.Fatalf("decision binding %q → %q, want %q", d.BindingID, n, bnd.Name)
	}
	if n, _ := b.PrincipalName(d.Subject); n != alice {
		t.Fatalf("decision subject %q → %q", d.Subject, n)
	}
	if RoleName(d.Role) != "roles/ProjectEditor" {
		t.Fatalf("decision role %q", d.Role)
	}

	// A deny written through B wins on A.
	must[*aegisv1.Binding](t)(b.CreateBinding(ctx, project, "no-vms", &aegisv1.Binding{
		Member: alice, Role: "roles/plasmavmc.admin", Scope: vm, Effect: aegisv1.Binding_EFFECT_DENY}, ""))
	eventually(t, time.Second, "deny enforced by the other replica", func() bool {
		return !allowed(t, a, alice, "plasmavmc:vms:create", vm)
	})
	if !allowed(t, a, alice, "plasmavmc:vms:create", project+"/vms/vm-2") {
		t.Fatal("deny applied outside its scope")
	}

	// Disabling the user disables it everywhere; so does suspending its org.
	must[*aegisv1.User](t)(b.UpdateUser(ctx, alice, "", func(u *aegisv1.User) error {
		u.State = aegisv1.User_STATE_DISABLED
		return nil
	}))
	eventually(t, time.Second, "disabled user denied", func() bool {
		return !allowed(t, a, alice, "plasmavmc:vms:create", project+"/vms/vm-2")
	})
	must[*aegisv1.User](t)(b.UpdateUser(ctx, alice, "", func(u *aegisv1.User) error {
		u.State = aegisv1.User_STATE_ACTIVE
		return nil
	}))
	eventually(t, time.Second, "re-enabled user allowed", func() bool {
		return allowed(t, a, alice, "plasmavmc:vms:create", project+"/vms/vm-2")
	})
	must[*aegisv1.Org](t)(b.UpdateOrg(ctx, "orgs/acme", "", func(o *aegisv1.Org) error {
		o.State = aegisv1.Org_STATE_SUSPENDED
		return nil
	}))
	eventually(t, time.Second, "suspended org's user denied", func() bool {
		return !allowed(t, a, alice, "plasmavmc:vms:create", project+"/vms/vm-2")
	})
	must[*aegisv1.Org](t)(b.UpdateOrg(ctx, "orgs/acme", "", func(o *aegisv1.Org) error {
		o.State = aegisv1.Org_STATE_ACTIVE
		return nil
	}))

	// Deleting the binding on A revokes the grant on B.
	if err := a.DeleteBinding(ctx, bnd.Name, ""); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, "deleted binding no longer enforced", func() bool {
		return !allowed(t, b, alice, "plasmavmc:vms:create", project+"/vms/vm-2")
	})

	// Revocations travel the same way.
	exp := time.Now().Add(15 * time.Minute)
	if err := a.RevokeToken(ctx, "jti-1", exp); err != nil {
		t.Fatal(err)
	}
	if !a.Revocations().TokenRevoked("jti-1") {
		t.Fatal("writer does not see its own token revocation")
	}
	eventually(t, time.Second, "token revocation on the other replica", func() bool {
		return b.Revocations().TokenRevoked("jti-1")
	})
	at := time.Now().Truncate(time.Second)
	got, err := b.RevokePrincipal(ctx, alice, at)
	if err != nil || !got.Equal(at) {
		t.Fatalf("RevokePrincipal = %v, %v", got, err)
	}
	// A revocation dated no later than the recorded one never shortens
	// it: it moves a second past it, covering tokens issued since (they
	// are dated after the recorded revocation).
	next := at.Add(time.Second)
	if got, _ := a.RevokePrincipal(ctx, alice, at.Add(-time.Hour)); !got.Equal(next) {
		t.Fatalf("older revocation gave %v, want %v", got, next)
	}
	eventually(t, time.Second, "principal revocation on the other replica", func() bool {
		r, ok := b.Revocations().PrincipalRevokedAt(alice)
		return ok && r.Equal(next)
	})
}

func TestBindingValidation(t *testing.T) {
	addr := startChainfire(t)
	s := openStore(t, addr, nil)
	ctx := ctxT(t)
	seed(t, s)
	must[*aegisv1.Org](t)(s.CreateOrg(ctx, "other", nil))
	must[*aegisv1.User](t)(s.CreateUser(ctx, "orgs/other", "bob", nil, ""))
	must[*aegisv1.Role](t)(s.CreateRole(ctx, "orgs/other", "Custom", &aegisv1.Role{Permissions: []string{"plasmavmc:vms:get"}}))

	cases := []struct {
		parent string
		b      *aegisv1.Binding
		want   error
	}{
		{project, &aegisv1.Binding{Member: "orgs/other/users/bob", Role: "roles/ProjectViewer"}, ErrInvalidArgument},
		{project, &aegisv1.Binding{Member: "orgs/acme/users/nobody", Role: "roles/ProjectViewer"}, ErrParentNotFound},
		{project, &aegisv1.Binding{Member: alice, Role: "roles/NoSuchRole"}, ErrParentNotFound},
		{project, &aegisv1.Binding{Member: alice, Role: "orgs/other/roles/Custom"}, ErrInvalidArgument},
		{"orgs/acme", &aegisv1.Binding{Member: alice, Role: "orgs/acme/roles/Missing"}, ErrParentNotFound},
		{project, &aegisv1.Binding{Member: alice, Role: "roles/SystemAdmin"}, ErrInvalidArgument},
		{project, &aegisv1.Binding{Member: alice, Role: "roles/ProjectViewer", Scope: "orgs/acme/projects/api"}, ErrInvalidArgument},
		{"orgs/acme", &aegisv1.Binding{Member: alice, Role: "roles/ProjectViewer", Scope: project}, ErrInvalidArgument},
		{project, &aegisv1.Binding{Member: alice, Role: "roles/ProjectViewer",
			Condition: &aegisv1.Condition{Expression: "request.tme < 3"}}, ErrInvalidArgument},
		{"orgs/acme/projects/missing", &aegisv1.Binding{Member: alice, Role: "roles/ProjectViewer"}, ErrParentNotFound},
		{project, &aegisv1.Binding{Member: project, Role: "roles/ProjectViewer"}, ErrInvalidArgument},
	}
	for i, c := range cases {
		_, err := s.CreateBinding(ctx, c.parent, "", c.b, "")
		if err == nil {
			t.Fatalf("case %d: no error", i)
		}
		wantErr(t, err, c.want)
	}

	// Conditions reach the evaluator.
	must[*aegisv1.Binding](t)(s.CreateBinding(ctx, project, "not-prod", &aegisv1.Binding{Member: alice, Role: "roles/ProjectViewer",
		Condition: &aegisv1.Condition{Expression: `resource.labels["env"] != "prod"`, Title: "not prod"}}, ""))
	sub := must[string](t)(s.PolicyPrincipal(alice))
	for env, want := range map[string]bool{"dev": true, "prod": false} {
		d, err := s.Evaluator().Authorize(ctx, policy.Request{Principal: sub, Permission: "plasmavmc:vms:get", Resource: vm,
			ResourceLabels: map[string]string{"env": env}})
		if err != nil || d.Allowed != want {
			t.Fatalf("env=%s: %v, %v", env, d, err)
		}
	}

	// System bindings may name anyone; ttl becomes expire_time; update
	// keeps immutables.
	sys, err := s.CreateBinding(ctx, "system", "bob-viewer", &aegisv1.Binding{Member: "orgs/other/users/bob",
		Role: "roles/OrgViewer", Scope: "orgs/acme", Expiration: &aegisv1.Binding_Ttl{Ttl: durationpb.New(time.Hour)}}, "")
	if err != nil {
		t.Fatal(err)
	}
	if sys.GetExpireTime() == nil || sys.GetTtl() != nil {
		t.Fatalf("ttl not converted: %v", sys)
	}
	if !allowed(t, s, "orgs/other/users/bob", "plasmavmc:vms:get", vm) {
		t.Fatal("system binding not enforced")
	}
	_, err = s.UpdateBinding(ctx, sys.Name, sys.Etag, func(b *aegisv1.Binding) error {
		b.Role = "roles/OrgAdmin"
		return nil
	})
	wantErr(t, err, ErrInvalidArgument)
	past := time.Now().Add(-time.Minute)
	up, err := s.UpdateBinding(ctx, sys.Name, sys.Etag, func(b *aegisv1.Binding) error {
		b.Expiration = &aegisv1.Binding_ExpireTime{ExpireTime: timestamppb.New(past)}
		b.Description = "expired"
		return nil
	})
	if err != nil || up.Description != "expired" {
		t.Fatalf("update: %v, %v", up, err)
	}
	if allowed(t, s, "orgs/other/users/bob", "plasmavmc:vms:get", vm) {
		t.Fatal("expired binding still enforced")
	}
	// The sweep deletes bindings expired for longer than the grace.
	s.opts.ExpiredBindingGrace = 0
	if n, err := s.SweepExpiredBindings(ctx); err != nil || n != 1 {
		t.Fatalf("sweep: %d, %v", n, err)
	}
	_, err = s.GetBinding(sys.Name)
	wantErr(t, err, ErrNotFound)
}

func TestCascadingDeletes(t *testing.T) {
	addr := startChainfire(t)
	// A small transaction limit makes the cascades span transactions.
	s := openStore(t, addr, func(o *Options) { o.MaxTxnOps = 16 })
	b := openStore(t, addr, nil)
	cli := chainfiretest.Client(t, addr)
	ctx := ctxT(t)
	seed(t, s)
	must[*aegisv1.Org](t)(s.CreateOrg(ctx, "other", nil))
	must[*aegisv1.User](t)(s.CreateUser(ctx, "orgs/other", "bob", nil, ""))
	g := must[*aegisv1.Group](t)(s.CreateGroup(ctx, "orgs/acme", "devs", nil))
	gm, err := s.AddGroupMember(ctx, g.Name, alice, g.Etag)
	if err != nil || gm.MemberKind != aegisv1.PrincipalKind_PRINCIPAL_KIND_USER {
		t.Fatalf("add member: %v, %v", gm, err)
	}
	_, err = s.AddGroupMember(ctx, g.Name, alice, "")
	wantErr(t, err, ErrAlreadyExists)
	_, err = s.AddGroupMember(ctx, g.Name, "orgs/other/users/bob", "")
	wantErr(t, err, ErrInvalidArgument)
	_, err = s.AddGroupMember(ctx, g.Name, "orgs/acme/users/ghost", "")
	wantErr(t, err, ErrParentNotFound)
	_, err = s.AddGroupMember(ctx, g.Name, "orgs/acme/users/alice2", g.Etag)
	wantErr(t, err, ErrEtagMismatch) // the membership change moved the etag
	g2 := must[*aegisv1.Group](t)(s.GetGroup(g.Name))
	if g2.MemberCount != 1 || g2.Etag == g.Etag {
		t.Fatalf("group after add: %v", g2)
	}
	if gs := s.GroupsOf(alice); len(gs) != 1 || gs[0] != g.Name {
		t.Fatalf("GroupsOf = %v", gs)
	}

	// A group binding applies to its members.
	must[*aegisv1.Binding](t)(s.CreateBinding(ctx, project, "devs", &aegisv1.Binding{Member: g.Name, Role: "roles/ProjectViewer"}, ""))
	if !allowed(t, s, alice, "plasmavmc:vms:get", vm) {
		t.Fatal("group binding not enforced")
	}
	// Many bindings naming alice, in several containers.
	for i := range 20 {
		must[*aegisv1.Binding](t)(s.CreateBinding(ctx, project, "", &aegisv1.Binding{Member: alice,
			Role: "roles/ProjectViewer", Scope: vm + string(rune('a'+i))}, ""))
	}
	must[*aegisv1.Binding](t)(s.CreateBinding(ctx, "system", "alice-sys", &aegisv1.Binding{Member: alice, Role: "roles/OrgViewer", Scope: "orgs/acme"}, ""))
	aliceBefore := must[*aegisv1.User](t)(s.GetUser(alice))

	if err := s.DeleteUser(ctx, alice, aliceBefore.Etag); err != nil {
		t.Fatal(err)
	}
	if n := countKeys(t, cli, refsOf(alice)); n != 0 {
		t.Fatalf("%d references to alice left: %v", n, dumpKeys(t, cli, refsOf(alice)))
	}
	bs, _, _ := s.ListBindings(project, ListOptions[*aegisv1.Binding]{})
	if len(bs) != 1 || bs[0].Member != g.Name {
		t.Fatalf("bindings left in project: %v", bs)
	}
	if _, err := s.GetBinding("system/bindings/alice-sys"); err == nil {
		t.Fatal("system binding naming alice survived")
	}
	g3 := must[*aegisv1.Group](t)(s.GetGroup(g.Name))
	if g3.MemberCount != 0 || g3.Etag == g2.Etag {
		t.Fatalf("group after member deleted: %v", g3)
	}
	if countKeys(t, cli, passwordKey(alice)) != 0 {
		t.Fatal("password hash survived the user")
	}
	// The other replica agrees, and a new alice inherits nothing.
	must[*aegisv1.User](t)(s.CreateUser(ctx, "orgs/acme", "alice", nil, ""))
	if err := b.WaitRevision(ctx, s.Revision()); err != nil {
		t.Fatal(err)
	}
	if allowed(t, b, alice, "plasmavmc:vms:get", vm) || len(b.GroupsOf(alice)) != 0 {
		t.Fatal("re-created user inherited grants")
	}

	// Roles: in use → precondition; force deletes the bindings too.
	must[*aegisv1.Role](t)(s.CreateRole(ctx, "orgs/acme", "VMReader", &aegisv1.Role{Permissions: []string{"plasmavmc:vms:get"}}))
	must[*aegisv1.Binding](t)(s.CreateBinding(ctx, project, "custom", &aegisv1.Binding{Member: alice, Role: "orgs/acme/roles/VMReader"}, ""))
	if !allowed(t, b, alice, "plasmavmc:vms:get", vm) {
		eventually(t, time.Second, "custom role binding", func() bool { return allowed(t, b, alice, "plasmavmc:vms:get", vm) })
	}
	must[*aegisv1.Role](t)(s.UpdateRole(ctx, "orgs/acme/roles/VMReader", "", func(r *aegisv1.Role) error {
		r.Permissions = []string{"plasmavmc:vms:list"}
		return nil
	}))
	eventually(t, time.Second, "role change enforced", func() bool { return !allowed(t, b, alice, "plasmavmc:vms:get", vm) })
	wantErr(t, s.DeleteRole(ctx, "orgs/acme/roles/VMReader", "", false), ErrFailedPrecondition)
	if err := s.DeleteRole(ctx, "orgs/acme/roles/VMReader", "", true); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetBinding(project + "/bindings/custom"); err == nil {
		t.Fatal("binding of a force-deleted role survived")
	}
	wantErr(t, s.DeleteRole(ctx, "roles/OrgAdmin", "", true), ErrFailedPrecondition)

	// Service account with keys, memberships and bindings in a project.
	sa := must[*aegisv1.ServiceAccount](t)(s.CreateServiceAccount(ctx, project, "ci", nil))
	for range 3 {
		must[*aegisv1.ServiceAccountKey](t)(s.CreateServiceAccountKey(ctx, sa.Name, &aegisv1.ServiceAccountKey{}, "hash"))
	}
	must[*aegisv1.GroupMember](t)(s.AddGroupMember(ctx, g.Name, sa.Name, ""))
	must[*aegisv1.Binding](t)(s.CreateBinding(ctx, "orgs/acme", "ci-org", &aegisv1.Binding{Member: sa.Name, Role: "roles/OrgViewer"}, ""))
	wantErr(t, s.DeleteProject(ctx, project, "", false), ErrFailedPrecondition)

	// Force-deleting the org removes everything of it, in several
	// transactions, and nothing of the other org.
	wantErr(t, s.DeleteOrg(ctx, "orgs/acme", "", false), ErrFailedPrecondition)
	if err := s.DeleteOrg(ctx, "orgs/acme", "", true); err != nil {
		t.Fatal(err)
	}
	for _, k := range []kind{kindOrg, kindProject, kindUser, kindGroup, kindMember, kindServiceAccount, kindKey, kindRole, kindBinding} {
		if n := countKeys(t, cli, k.key("orgs/acme/")); n != 0 {
			t.Fatalf("%d %s records of orgs/acme left", n, k)
		}
	}
	for _, p := range []string{refPrefix + "orgs/acme/", gverPrefix + "orgs/acme/", secretPasswordPrefix + "orgs/acme/",
		secretKeyPrefix + "orgs/acme/", uniqueClientIDPrefix} {
		if n := countKeys(t, cli, p); n != 0 {
			t.Fatalf("%d keys left under %s: %v", n, p, dumpKeys(t, cli, p))
		}
	}
	if _, err := b.GetUser("orgs/other/users/bob"); err != nil {
		eventually(t, time.Second, "other org intact", func() bool { _, err := b.GetUser("orgs/other/users/bob"); return err == nil })
	}
	if err := b.WaitRevision(ctx, s.Revision()); err != nil {
		t.Fatal(err)
	}
	if st := b.Evaluator().Stats(); st.Bindings != 0 || st.Groups != 0 || st.Memberships != 0 || st.Principals != 1 {
		t.Fatalf("evaluator after org delete: %+v", st)
	}
}

func TestWatchCompactionReload(t *testing.T) {
	addr := startChainfire(t)
	hold := make(chan struct{})
	var held = make(chan struct{}, 1)
	var blocking atomic.Bool
	a := openStore(t, addr, func(o *Options) {
		o.testBeforeWatch = func() {
			if blocking.Load() {
				held <- struct{}{}
				<-hold
			}
		}
	})
	b := openStore(t, addr, nil)
	cli := chainfiretest.Client(t, addr)
	ctx := ctxT(t)
	seed(t, b)
	bnd := must[*aegisv1.Binding](t)(b.CreateBinding(ctx, project, "x", &aegisv1.Binding{Member: alice, Role: "roles/ProjectViewer"}, ""))
	if err := a.WaitRevision(ctx, b.Revision()); err != nil {
		t.Fatal(err)
	}
	if !allowed(t, a, alice, "plasmavmc:vms:get", vm) {
		t.Fatal("binding not enforced before the test")
	}
	must[*aegisv1.Group](t)(b.CreateGroup(ctx, "orgs/acme", "old", nil))
	if err := a.RevokeToken(ctx, "jti-old", time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}

	// Stop A's watch; meanwhile B changes things and Chainfire compacts
	// past A's revision.
	blocking.Store(true)
	a.kickWatch()
	<-held
	from := a.Revision()
	if err := b.DeleteBinding(ctx, bnd.Name, ""); err != nil {
		t.Fatal(err)
	}
	if err := b.DeleteGroup(ctx, "orgs/acme/groups/old", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Delete(ctx, revokedTokenPrefix+"jti-old"); err != nil {
		t.Fatal(err)
	}
	must[*aegisv1.Binding](t)(b.CreateBinding(ctx, project, "y", &aegisv1.Binding{Member: alice, Role: "roles/plasmavmc.admin"}, ""))
	must[*aegisv1.Group](t)(b.CreateGroup(ctx, "orgs/acme", "new", nil))
	if err := b.RevokeToken(ctx, "jti-new", time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	resp, err := cli.Compact(ctx, b.Revision())
	if err != nil {
		t.Fatal(err)
	}
	_ = resp
	if a.Revision() != from {
		t.Fatal("watch was not held")
	}
	blocking.Store(false)
	close(hold)

	if err := a.WaitRevision(ctx, b.Revision()); err != nil {
		t.Fatal(err)
	}
	if allowed(t, a, alice, "plasmavmc:vms:get", project) == false {
		t.Fatal("binding y not loaded")
	}
	if _, err := a.GetBinding(bnd.Name); err == nil {
		t.Fatal("deleted binding still in the index")
	}
	if _, err := a.GetGroup("orgs/acme/groups/old"); err == nil {
		t.Fatal("deleted group still in the index")
	}
	if _, err := a.GetGroup("orgs/acme/groups/new"); err != nil {
		t.Fatal(err)
	}
	if a.Revocations().TokenRevoked("jti-old") || !a.Revocations().TokenRevoked("jti-new") {
		t.Fatal("revocations not reloaded")
	}
	if st := a.Evaluator().Stats(); st.Bindings != 1 || st.Groups != 1 {
		t.Fatalf("evaluator after reload: %+v", st)
	}
	// And the watch goes on after the reload.
	must[*aegisv1.Group](t)(b.CreateGroup(ctx, "orgs/acme", "after", nil))
	eventually(t, time.Second, "watch resumed", func() bool { _, err := a.GetGroup("orgs/acme/groups/after"); return err == nil })
}
