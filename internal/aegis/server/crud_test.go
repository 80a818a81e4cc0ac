package server

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	aegisv1 "github.com/photoncloud/photoncloud/api/aegis/v1"
	"github.com/photoncloud/photoncloud/internal/aegis/token"
)

func mask(paths ...string) *fieldmaskpb.FieldMask { return &fieldmaskpb.FieldMask{Paths: paths} }

func TestOrgRoundTrip(t *testing.T) {
	e := tenv
	ctx := e.as(t, "sysadmin")
	id := e.id("rt")
	name := "orgs/" + id
	org := must[*aegisv1.Org](t)(e.org.CreateOrg(ctx, &aegisv1.CreateOrgRequest{OrgId: id,
		Org: &aegisv1.Org{Name: "orgs/ignored", Uid: "ignored", DisplayName: "RT", Description: "first", Labels: map[string]string{"env": "dev"}}}))
	if org.GetName() != name || org.GetUid() == "ignored" || org.GetEtag() == "" || org.GetState() != aegisv1.Org_STATE_ACTIVE {
		t.Fatalf("created %v", org)
	}
	_, err := e.org.CreateOrg(ctx, &aegisv1.CreateOrgRequest{OrgId: id})
	wantCode(t, err, codes.AlreadyExists)

	got := must[*aegisv1.Org](t)(e.org.GetOrg(ctx, &aegisv1.GetOrgRequest{Name: name}))
	if !proto.Equal(got, org) {
		t.Fatalf("get %v, created %v", got, org)
	}

	// A stale etag changes nothing.
	stale := org.GetEtag()
	upd := must[*aegisv1.Org](t)(e.org.UpdateOrg(ctx, &aegisv1.UpdateOrgRequest{
		Org: &aegisv1.Org{Name: name, Etag: stale, DisplayName: "RT2", Description: "not this"}, UpdateMask: mask("display_name")}))
	if upd.GetDisplayName() != "RT2" || upd.GetDescription() != "first" || upd.GetLabels()["env"] != "dev" || upd.GetEtag() == stale {
		t.Fatalf("masked update: %v", upd)
	}
	_, err = e.org.UpdateOrg(ctx, &aegisv1.UpdateOrgRequest{Org: &aegisv1.Org{Name: name, Etag: stale, DisplayName: "lost"}})
	wantCode(t, err, codes.Aborted)
	_, err = e.org.DeleteOrg(ctx, &aegisv1.DeleteOrgRequest{Name: name, Etag: stale})
	wantCode(t, err, codes.Aborted)

	// Without a mask, the fields set in the request are replaced; the
	// resource read back can be sent whole (output-only fields ignored).
	got = must[*aegisv1.Org](t)(e.org.GetOrg(ctx, &aegisv1.GetOrgRequest{Name: name}))
	got.Description = "second"
	got.Uid = "attempt"
	upd = must[*aegisv1.Org](t)(e.org.UpdateOrg(ctx, &aegisv1.UpdateOrgRequest{Org: got}))
	if upd.GetDescription() != "second" || upd.GetUid() != org.GetUid() || upd.GetDisplayName() != "RT2" {
		t.Fatalf("unmasked update: %v", upd)
	}
	// "*" replaces every mutable field, clearing the unset ones.
	upd = must[*aegisv1.Org](t)(e.org.UpdateOrg(ctx, &aegisv1.UpdateOrgRequest{
		Org: &aegisv1.Org{Name: name, DisplayName: "Only"}, UpdateMask: mask("*")}))
	if upd.GetDescription() != "" || len(upd.GetLabels()) != 0 || upd.GetDisplayName() != "Only" || upd.GetState() != aegisv1.Org_STATE_ACTIVE {
		t.Fatalf("* update: %v", upd)
	}
	// Output-only paths in the mask are ignored; unknown ones rejected.
	upd2 := must[*aegisv1.Org](t)(e.org.UpdateOrg(ctx, &aegisv1.UpdateOrgRequest{
		Org: &aegisv1.Org{Name: name, Uid: "x", DisplayName: "Only"}, UpdateMask: mask("uid", "create_time", "displayName")}))
	if upd2.GetUid() != org.GetUid() {
		t.Fatalf("uid changed: %v", upd2)
	}
	for _, m := range []*fieldmaskpb.FieldMask{mask("nope"), mask("labels.env"), mask("*", "labels")} {
		_, err = e.org.UpdateOrg(ctx, &aegisv1.UpdateOrgRequest{Org: &aegisv1.Org{Name: name}, UpdateMask: m})
		wantCode(t, err, codes.InvalidArgument)
	}
	// Bad values are INVALID_ARGUMENT and change nothing.
	_, err = e.org.UpdateOrg(ctx, &aegisv1.UpdateOrgRequest{Org: &aegisv1.Org{Name: name, Labels: map[string]string{"Bad Key": "v"}}})
	wantCode(t, err, codes.InvalidArgument)
	if now := must[*aegisv1.Org](t)(e.org.GetOrg(ctx, &aegisv1.GetOrgRequest{Name: name})); now.GetEtag() != upd2.GetEtag() {
		t.Fatalf("a rejected update changed the org: %v", now)
	}

	// Suspending the org disables its principals.
	must[*aegisv1.User](t)(e.st.CreateUser(ctxT(t), name, "u", nil, ""))
	utok := e.issue(t, token.Grant{Subject: name + "/users/u", Kind: token.KindUser, Org: id})
	_, err = e.org.ListOrgs(withToken(t, utok), &aegisv1.ListOrgsRequest{})
	wantCode(t, err, codes.OK)
	must[*aegisv1.Org](t)(e.org.UpdateOrg(ctx, &aegisv1.UpdateOrgRequest{Org: &aegisv1.Org{Name: name, State: aegisv1.Org_STATE_SUSPENDED}}))
	_, err = e.org.ListOrgs(withToken(t, utok), &aegisv1.ListOrgsRequest{})
	wantCode(t, err, codes.Unauthenticated)

	// Deleting a non-empty org needs force; force takes everything.
	must[*aegisv1.Project](t)(e.org.CreateProject(ctx, &aegisv1.CreateProjectRequest{Parent: name, ProjectId: "p1"}))
	_, err = e.org.DeleteOrg(ctx, &aegisv1.DeleteOrgRequest{Name: name})
	wantCode(t, err, codes.FailedPrecondition)
	must[*emptyT](t)(e.org.DeleteOrg(ctx, &aegisv1.DeleteOrgRequest{Name: name, Force: true}))
	_, err = e.org.GetOrg(ctx, &aegisv1.GetOrgRequest{Name: name})
	wantCode(t, err, codes.NotFound)
	_, err = e.org.GetProject(ctx, &aegisv1.GetProjectRequest{Name: name + "/projects/p1"})
	wantCode(t, err, codes.NotFound)
	_, err = e.org.DeleteOrg(ctx, &aegisv1.DeleteOrgRequest{Name: "orgs/system"})
	wantCode(t, err, codes.FailedPrecondition)
}

func TestProjectRoundTrip(t *testing.T) {
	e := tenv
	ctx := e.as(t, "orgadmin")
	id := e.id("p")
	name := acme + "/projects/" + id
	p := must[*aegisv1.Project](t)(e.org.CreateProject(ctx, &aegisv1.CreateProjectRequest{Parent: acme, ProjectId: id,
		Project: &aegisv1.Project{DisplayName: "P", Labels: map[string]string{"team": "a"}}}))
	upd := must[*aegisv1.Project](t)(e.org.UpdateProject(ctx, &aegisv1.UpdateProjectRequest{
		Project: &aegisv1.Project{Name: name, Etag: p.GetEtag(), Labels: map[string]string{"team": "b"}}, UpdateMask: mask("labels")}))
	if upd.GetLabels()["team"] != "b" || upd.GetDisplayName() != "P" {
		t.Fatalf("update: %v", upd)
	}
	_, err := e.org.UpdateProject(ctx, &aegisv1.UpdateProjectRequest{Project: &aegisv1.Project{Name: name, Etag: p.GetEtag(), DisplayName: "x"}})
	wantCode(t, err, codes.Aborted)
	// A project service account blocks a delete without force.
	must[*aegisv1.ServiceAccount](t)(e.identity.CreateServiceAccount(ctx, &aegisv1.CreateServiceAccountRequest{Parent: name, ServiceAccountId: "bot"}))
	satok := e.issue(t, token.Grant{Subject: name + "/serviceAccounts/bot", Kind: token.KindServiceAccount, Org: "acme"})
	_, err = e.org.DeleteProject(ctx, &aegisv1.DeleteProjectRequest{Name: name, Etag: upd.GetEtag()})
	wantCode(t, err, codes.FailedPrecondition)
	must[*emptyT](t)(e.org.DeleteProject(ctx, &aegisv1.DeleteProjectRequest{Name: name, Etag: upd.GetEtag(), Force: true}))
	_, err = e.identity.GetServiceAccount(ctx, &aegisv1.GetServiceAccountRequest{Name: name + "/serviceAccounts/bot"})
	wantCode(t, err, codes.NotFound)
	// Its tokens stop working, and stay revoked for a namesake.
	must[*aegisv1.Project](t)(e.st.CreateProject(ctxT(t), acme, id, nil))
	must[*aegisv1.ServiceAccount](t)(e.st.CreateServiceAccount(ctxT(t), name, "bot", nil))
	_, err = e.pol.ListRoles(withToken(t, satok), &aegisv1.ListRolesRequest{})
	wantCode(t, err, codes.Unauthenticated)
}

func TestUserRoundTrip(t *testing.T) {
	e := tenv
	ctx := e.as(t, "orgadmin")
	id := e.id("user")
	name := acme + "/users/" + id
	_, err := e.identity.CreateUser(ctx, &aegisv1.CreateUserRequest{Parent: acme, UserId: id, Password: "short"})
	wantCode(t, err, codes.InvalidArgument)
	_, err = e.identity.GetUser(ctx, &aegisv1.GetUserRequest{Name: name})
	wantCode(t, err, codes.NotFound)

	u := must[*aegisv1.User](t)(e.identity.CreateUser(ctx, &aegisv1.CreateUserRequest{Parent: acme, UserId: id, Password: "long enough",
		User: &aegisv1.User{DisplayName: "U", Email: "u@example.com", FederatedIdentities: []*aegisv1.FederatedIdentity{{Issuer: "https://idp", Subject: id}}}}))
	if u.GetPasswordUpdateTime() == nil || u.GetState() != aegisv1.User_STATE_ACTIVE {
		t.Fatalf("created %v", u)
	}
	// A federated identity belongs to one user.
	_, err = e.identity.CreateUser(ctx, &aegisv1.CreateUserRequest{Parent: acme, UserId: id + "b",
		User: &aegisv1.User{FederatedIdentities: []*aegisv1.FederatedIdentity{{Issuer: "https://idp", Subject: id}}}})
	wantCode(t, err, codes.AlreadyExists)

	// SetUserPassword by an administrator: etag checked, tokens revoked.
	utok := e.issue(t, token.Grant{Subject: name, Kind: token.KindUser, Org: "acme"})
	_, err = e.pol.ListRoles(withToken(t, utok), &aegisv1.ListRolesRequest{})
	wantCode(t, err, codes.OK)
	_, err = e.identity.SetUserPassword(ctx, &aegisv1.SetUserPasswordRequest{Name: name, NewPassword: "another one", Etag: "1"})
	wantCode(t, err, codes.Aborted)
	_, err = e.identity.SetUserPassword(ctx, &aegisv1.SetUserPasswordRequest{Name: name, NewPassword: "tiny"})
	wantCode(t, err, codes.InvalidArgument)
	sp := must[*aegisv1.SetUserPasswordResponse](t)(e.identity.SetUserPassword(ctx, &aegisv1.SetUserPasswordRequest{Name: name, NewPassword: "another one", Etag: u.GetEtag()}))
	if sp.GetEtag() == "" || sp.GetEtag() == u.GetEtag() {
		t.Fatalf("etag after set password: %q", sp.GetEtag())
	}
	_, err = e.pol.ListRoles(withToken(t, utok), &aegisv1.ListRolesRequest{})
	wantCode(t, err, codes.Unauthenticated)

	// Users change their own password with the current one.
	time.Sleep(1100 * time.Millisecond) // tokens carry whole seconds; be after the revocation
	self := withToken(t, e.issue(t, token.Grant{Subject: name, Kind: token.KindUser, Org: "acme"}))
	_, err = e.identity.SetUserPassword(self, &aegisv1.SetUserPasswordRequest{Name: name, NewPassword: "third password"})
	wantCode(t, err, codes.InvalidArgument)
	_, err = e.identity.SetUserPassword(self, &aegisv1.SetUserPasswordRequest{Name: name, NewPassword: "third password", CurrentPassword: "wrong one!"})
	wantCode(t, err, codes.PermissionDenied)
	must[*aegisv1.SetUserPasswordResponse](t)(e.identity.SetUserPassword(self, &aegisv1.SetUserPasswordRequest{Name: name, NewPassword: "third password", CurrentPassword: "another one"}))
	cred := must[*storeCreds](t)(e.st.UserForLogin(acme, id))
	if ok, _, _ := e.srv.hasher.Verify(ctxT(t), "third password", cred.PasswordHash); !ok {
		t.Fatal("new password not stored")
	}
	// Downscoped tokens cannot change the password.
	time.Sleep(1100 * time.Millisecond)
	narrow := withToken(t, e.issue(t, token.Grant{Subject: name, Kind: token.KindUser, Org: "acme", Permissions: []string{"plasmavmc:*:*"}}))
	_, err = e.identity.SetUserPassword(narrow, &aegisv1.SetUserPasswordRequest{Name: name, NewPassword: "fourth password", CurrentPassword: "third password"})
	wantCode(t, err, codes.PermissionDenied)

	// Update with a mask; disabling revokes tokens.
	cur := must[*aegisv1.User](t)(e.identity.GetUser(ctx, &aegisv1.GetUserRequest{Name: name}))
	upd := must[*aegisv1.User](t)(e.identity.UpdateUser(ctx, &aegisv1.UpdateUserRequest{
		User: &aegisv1.User{Name: name, Etag: cur.GetEtag(), State: aegisv1.User_STATE_DISABLED, Email: "ignored"}, UpdateMask: mask("state")}))
	if upd.GetState() != aegisv1.User_STATE_DISABLED || upd.GetEmail() != "u@example.com" {
		t.Fatalf("update: %v", upd)
	}
	if at, ok := e.st.Revocations().PrincipalRevokedAt(name); !ok || at.IsZero() {
		t.Fatal("disabling did not revoke the user's tokens")
	}
	_, err = e.identity.DeleteUser(ctx, &aegisv1.DeleteUserRequest{Name: name, Etag: cur.GetEtag()})
	wantCode(t, err, codes.Aborted)
	must[*emptyT](t)(e.identity.DeleteUser(ctx, &aegisv1.DeleteUserRequest{Name: name, Etag: upd.GetEtag()}))
	_, err = e.identity.GetUser(ctx, &aegisv1.GetUserRequest{Name: name})
	wantCode(t, err, codes.NotFound)
	_, err = e.identity.DeleteUser(ctx, &aegisv1.DeleteUserRequest{Name: name})
	wantCode(t, err, codes.NotFound)
}

func TestGroupMembership(t *testing.T) {
	e := tenv
	ctx := e.as(t, "orgadmin")
	gid := e.id("grp")
	g := must[*aegisv1.Group](t)(e.identity.CreateGroup(ctx, &aegisv1.CreateGroupRequest{Parent: acme, GroupId: gid}))
	name := g.GetName()
	u := e.freshUser(t)
	m := must[*aegisv1.GroupMember](t)(e.identity.AddGroupMember(ctx, &aegisv1.AddGroupMemberRequest{Group: name, Member: u, Etag: g.GetEtag()}))
	if m.GetMemberKind() != aegisv1.PrincipalKind_PRINCIPAL_KIND_USER || m.GetAddTime() == nil {
		t.Fatalf("member %v", m)
	}
	g2 := must[*aegisv1.Group](t)(e.identity.GetGroup(ctx, &aegisv1.GetGroupRequest{Name: name}))
	if g2.GetEtag() == g.GetEtag() || g2.GetMemberCount() != 1 {
		t.Fatalf("group after add: %v", g2)
	}
	_, err := e.identity.AddGroupMember(ctx, &aegisv1.AddGroupMemberRequest{Group: name, Member: u})
	wantCode(t, err, codes.AlreadyExists)
	_, err = e.identity.AddGroupMember(ctx, &aegisv1.AddGroupMemberRequest{Group: name, Member: e.freshUser(t), Etag: g.GetEtag()})
	wantCode(t, err, codes.Aborted)
	_, err = e.identity.AddGroupMember(ctx, &aegisv1.AddGroupMemberRequest{Group: name, Member: "orgs/beta/users/eve"})
	wantCode(t, err, codes.InvalidArgument)
	_, err = e.identity.AddGroupMember(ctx, &aegisv1.AddGroupMemberRequest{Group: name, Member: acme + "/groups/x"})
	wantCode(t, err, codes.InvalidArgument)
	_, err = e.identity.AddGroupMember(ctx, &aegisv1.AddGroupMemberRequest{Group: name, Member: acme + "/users/nobody"})
	wantCode(t, err, codes.NotFound)
	must[*aegisv1.GroupMember](t)(e.identity.AddGroupMember(ctx, &aegisv1.AddGroupMemberRequest{Group: name, Member: targetSA}))

	ms := must[*aegisv1.ListGroupMembersResponse](t)(e.identity.ListGroupMembers(ctx, &aegisv1.ListGroupMembersRequest{Group: name}))
	if len(ms.GetMembers()) != 2 {
		t.Fatalf("members %v", ms)
	}
	ms = must[*aegisv1.ListGroupMembersResponse](t)(e.identity.ListGroupMembers(ctx, &aegisv1.ListGroupMembersRequest{Group: name,
		Filter: "member_kind = PRINCIPAL_KIND_SERVICE_ACCOUNT"}))
	if len(ms.GetMembers()) != 1 || ms.GetMembers()[0].GetMember() != targetSA {
		t.Fatalf("filtered members %v", ms)
	}
	gs := must[*aegisv1.ListGroupsResponse](t)(e.identity.ListGroups(ctx, &aegisv1.ListGroupsRequest{Parent: acme, Filter: fmt.Sprintf("members:%q", u)}))
	if len(gs.GetGroups()) != 1 || gs.GetGroups()[0].GetName() != name {
		t.Fatalf("groups of %s: %v", u, gs)
	}
	must[*emptyT](t)(e.identity.RemoveGroupMember(ctx, &aegisv1.RemoveGroupMemberRequest{Group: name, Member: u}))
	_, err = e.identity.RemoveGroupMember(ctx, &aegisv1.RemoveGroupMemberRequest{Group: name, Member: u})
	wantCode(t, err, codes.NotFound)
	upd := must[*aegisv1.Group](t)(e.identity.UpdateGroup(ctx, &aegisv1.UpdateGroupRequest{Group: &aegisv1.Group{Name: name, DisplayName: "G", MemberCount: 99}}))
	if upd.GetDisplayName() != "G" || upd.GetMemberCount() != 1 {
		t.Fatalf("update: %v", upd)
	}
	must[*emptyT](t)(e.identity.DeleteGroup(ctx, &aegisv1.DeleteGroupRequest{Name: name, Etag: upd.GetEtag()}))
	_, err = e.identity.GetUser(ctx, &aegisv1.GetUserRequest{Name: u})
	wantCode(t, err, codes.OK) // members stay
}

func TestServiceAccountKeys(t *testing.T) {
	e := tenv
	ctx := e.as(t, "projadmin")
	sa := must[*aegisv1.ServiceAccount](t)(e.identity.CreateServiceAccount(ctx, &aegisv1.CreateServiceAccountRequest{Parent: web,
		ServiceAccountId: e.id("bot"), ServiceAccount: &aegisv1.ServiceAccount{DisplayName: "Bot"}}))
	_, err := e.identity.CreateServiceAccountKey(ctx, &aegisv1.CreateServiceAccountKeyRequest{Parent: sa.GetName(),
		Key: &aegisv1.ServiceAccountKey{ExpireTime: tsOf(time.Now().Add(-time.Hour))}})
	wantCode(t, err, codes.InvalidArgument)
	k := must[*aegisv1.ServiceAccountKey](t)(e.identity.CreateServiceAccountKey(ctx, &aegisv1.CreateServiceAccountKeyRequest{Parent: sa.GetName(),
		Key: &aegisv1.ServiceAccountKey{Description: "ci", ClientSecret: "ignored"}}))
	if k.GetClientSecret() == "" || k.GetClientSecret() == "ignored" || k.GetClientId() == "" || !strings.HasSuffix(k.GetName(), "/keys/"+k.GetClientId()) {
		t.Fatalf("key %v", k)
	}
	creds := must[*saCreds](t)(e.st.ServiceAccountKeyByClientID(k.GetClientId()))
	if creds.SecretHash != hashSecret(k.GetClientSecret()) {
		t.Fatal("stored hash does not match the returned secret")
	}
	got := must[*aegisv1.ServiceAccountKey](t)(e.identity.GetServiceAccountKey(ctx, &aegisv1.GetServiceAccountKeyRequest{Name: k.GetName()}))
	if got.GetClientSecret() != "" {
		t.Fatal("Get returned the secret")
	}
	ks := must[*aegisv1.ListServiceAccountKeysResponse](t)(e.identity.ListServiceAccountKeys(ctx, &aegisv1.ListServiceAccountKeysRequest{Parent: sa.GetName()}))
	if len(ks.GetKeys()) != 1 || ks.GetKeys()[0].GetClientSecret() != "" {
		t.Fatalf("list %v", ks)
	}

	// A token issued for the key works until the key is deleted; a token of
	// the same account from another key keeps working.
	keyTok := e.issue(t, token.Grant{Subject: sa.GetName(), Kind: token.KindServiceAccount, Org: "acme", ClientID: k.GetClientId()})
	k2 := must[*aegisv1.ServiceAccountKey](t)(e.identity.CreateServiceAccountKey(ctx, &aegisv1.CreateServiceAccountKeyRequest{Parent: sa.GetName()}))
	otherTok := e.issue(t, token.Grant{Subject: sa.GetName(), Kind: token.KindServiceAccount, Org: "acme", ClientID: k2.GetClientId()})
	_, err = e.pol.ListRoles(withToken(t, keyTok), &aegisv1.ListRolesRequest{})
	wantCode(t, err, codes.OK)
	must[*emptyT](t)(e.identity.DeleteServiceAccountKey(ctx, &aegisv1.DeleteServiceAccountKeyRequest{Name: k.GetName(), Etag: k.GetEtag()}))
	_, err = e.pol.ListRoles(withToken(t, keyTok), &aegisv1.ListRolesRequest{})
	wantCode(t, err, codes.Unauthenticated)
	_, err = e.pol.ListRoles(withToken(t, otherTok), &aegisv1.ListRolesRequest{})
	wantCode(t, err, codes.OK)
	// Subject tokens of AuthzService see the same.
	d := must[*aegisv1.AuthorizeResponse](t)(e.authz.Authorize(e.as(t, "sysadmin"), &aegisv1.AuthorizeRequest{
		Subject: &aegisv1.Subject{Identity: &aegisv1.Subject_AccessToken{AccessToken: keyTok}}, Permission: "plasmavmc:vms:get", Resource: web}))
	if d.GetDecision().GetReason() != aegisv1.Decision_REASON_UNAUTHENTICATED {
		t.Fatalf("decision for a deleted key's token: %v", d)
	}

	// At most 10 keys.
	for i := 0; i < 9; i++ {
		must[*aegisv1.ServiceAccountKey](t)(e.identity.CreateServiceAccountKey(ctx, &aegisv1.CreateServiceAccountKeyRequest{Parent: sa.GetName()}))
	}
	_, err = e.identity.CreateServiceAccountKey(ctx, &aegisv1.CreateServiceAccountKeyRequest{Parent: sa.GetName()})
	wantCode(t, err, codes.FailedPrecondition)

	// Disabling the account revokes its tokens.
	upd := must[*aegisv1.ServiceAccount](t)(e.identity.UpdateServiceAccount(ctx, &aegisv1.UpdateServiceAccountRequest{
		ServiceAccount: &aegisv1.ServiceAccount{Name: sa.GetName(), State: aegisv1.ServiceAccount_STATE_DISABLED}, UpdateMask: mask("state")}))
	if upd.GetDisplayName() != "Bot" {
		t.Fatalf("update: %v", upd)
	}
	_, err = e.pol.ListRoles(withToken(t, otherTok), &aegisv1.ListRolesRequest{})
	wantCode(t, err, codes.Unauthenticated)
	must[*emptyT](t)(e.identity.DeleteServiceAccount(ctx, &aegisv1.DeleteServiceAccountRequest{Name: sa.GetName(), Etag: upd.GetEtag()}))
	_, err = e.identity.GetServiceAccountKey(ctx, &aegisv1.GetServiceAccountKeyRequest{Name: k2.GetName()})
	wantCode(t, err, codes.NotFound)
}

func TestRolesAndBindings(t *testing.T) {
	e := tenv
	ctx := e.as(t, "orgadmin")
	rid := e.id("Role")
	_, err := e.pol.CreateRole(ctx, &aegisv1.CreateRoleRequest{Parent: acme, RoleId: rid, Role: &aegisv1.Role{Permissions: []string{"not a permission"}}})
	wantCode(t, err, codes.InvalidArgument)
	r := must[*aegisv1.Role](t)(e.pol.CreateRole(ctx, &aegisv1.CreateRoleRequest{Parent: acme, RoleId: rid,
		Role: &aegisv1.Role{DisplayName: "R", Permissions: []string{"plasmavmc:vms:start"}, BuiltIn: true}}))
	if r.GetBuiltIn() || r.GetName() != acme+"/roles/"+rid {
		t.Fatalf("role %v", r)
	}
	r = must[*aegisv1.Role](t)(e.pol.UpdateRole(ctx, &aegisv1.UpdateRoleRequest{Role: &aegisv1.Role{Name: r.GetName(), Etag: r.GetEtag(),
		Permissions: []string{"plasmavmc:vms:start", "plasmavmc:vms:stop"}}, UpdateMask: mask("permissions")}))
	if len(r.GetPermissions()) != 2 || r.GetDisplayName() != "R" {
		t.Fatalf("update: %v", r)
	}
	rs := must[*aegisv1.ListRolesResponse](t)(e.pol.ListRoles(ctx, &aegisv1.ListRolesRequest{Parent: acme, Filter: `permissions:"plasmavmc:vms:stop"`}))
	if len(rs.GetRoles()) != 1 || rs.GetRoles()[0].GetName() != r.GetName() {
		t.Fatalf("filtered roles: %v", rs)
	}
	br := must[*aegisv1.ListRolesResponse](t)(e.pol.ListRoles(ctx, &aegisv1.ListRolesRequest{PageSize: 5}))
	if len(br.GetRoles()) != 5 || br.GetNextPageToken() == "" || !br.GetRoles()[0].GetBuiltIn() {
		t.Fatalf("built-in roles: %v", br)
	}

	u := e.freshUser(t)
	before := iamKeys(t)
	bad := []*aegisv1.CreateBindingRequest{
		{Parent: web, Binding: &aegisv1.Binding{Member: u, Role: r.GetName(), Condition: &aegisv1.Condition{Expression: "request.time <"}}},
		{Parent: web, Binding: &aegisv1.Binding{Member: u, Role: r.GetName(), Condition: &aegisv1.Condition{Expression: "1 + 1"}}},
		{Parent: web, Binding: &aegisv1.Binding{Member: u, Role: "roles/SystemAdmin"}},
		{Parent: web, Binding: &aegisv1.Binding{Member: "orgs/beta/users/eve", Role: "roles/ProjectViewer"}},
		{Parent: web, Binding: &aegisv1.Binding{Member: u, Role: "roles/ProjectViewer", Scope: acme + "/projects/other"}},
		{Parent: web, Binding: &aegisv1.Binding{Member: u, Role: "roles/ProjectViewer", Expiration: &aegisv1.Binding_Ttl{Ttl: durationpb.New(-time.Second)}}},
		{Parent: web, BindingId: "Bad_Id", Binding: &aegisv1.Binding{Member: u, Role: "roles/ProjectViewer"}},
		{Parent: "org/acme", Binding: &aegisv1.Binding{Member: u, Role: "roles/ProjectViewer"}},
	}
	for i, req := range bad {
		_, err := e.pol.CreateBinding(ctx, req)
		wantCode(t, err, codes.InvalidArgument)
		_ = i
	}
	if after := iamKeys(t); !slices.Equal(before, after) {
		t.Fatalf("rejected bindings changed the store:\n%v\n%v", before, after)
	}
	b := must[*aegisv1.Binding](t)(e.pol.CreateBinding(ctx, &aegisv1.CreateBindingRequest{Parent: web, BindingId: e.id("b"),
		Binding: &aegisv1.Binding{Member: u, Role: r.GetName(), Expiration: &aegisv1.Binding_Ttl{Ttl: durationpb.New(time.Hour)}, Creator: "forged"}}))
	if b.GetCreator() != "orgs/acme/users/oadmin" || b.GetExpireTime() == nil || b.GetScope() != web || b.GetEffect() != aegisv1.Binding_EFFECT_ALLOW {
		t.Fatalf("binding %v", b)
	}
	// Member, role, scope and effect are immutable.
	_, err = e.pol.UpdateBinding(ctx, &aegisv1.UpdateBindingRequest{Binding: &aegisv1.Binding{Name: b.GetName(), Member: targetUser}})
	wantCode(t, err, codes.InvalidArgument)
	_, err = e.pol.UpdateBinding(ctx, &aegisv1.UpdateBindingRequest{Binding: &aegisv1.Binding{Name: b.GetName()}, UpdateMask: mask("effect")})
	wantCode(t, err, codes.InvalidArgument)
	// A binding read back can be sent whole; ttl in the mask clears the
	// expiry when the request sets none.
	cur := must[*aegisv1.Binding](t)(e.pol.GetBinding(ctx, &aegisv1.GetBindingRequest{Name: b.GetName()}))
	cur.Condition = &aegisv1.Condition{Expression: `request.source_ip == "10.0.0.1"`, Title: "office"}
	b2 := must[*aegisv1.Binding](t)(e.pol.UpdateBinding(ctx, &aegisv1.UpdateBindingRequest{Binding: cur}))
	if b2.GetCondition().GetTitle() != "office" || b2.GetExpireTime() == nil {
		t.Fatalf("update: %v", b2)
	}
	b3 := must[*aegisv1.Binding](t)(e.pol.UpdateBinding(ctx, &aegisv1.UpdateBindingRequest{Binding: &aegisv1.Binding{Name: b.GetName()}, UpdateMask: mask("ttl")}))
	if b3.GetExpireTime() != nil || b3.GetCondition() == nil {
		t.Fatalf("clearing expiry: %v", b3)
	}
	bs := must[*aegisv1.ListBindingsResponse](t)(e.pol.ListBindings(ctx, &aegisv1.ListBindingsRequest{Parent: web, Filter: fmt.Sprintf("member = %q AND condition:*", u)}))
	if len(bs.GetBindings()) != 1 || bs.GetBindings()[0].GetName() != b.GetName() {
		t.Fatalf("filtered bindings: %v", bs)
	}
	// A role in use needs force, which takes its bindings along.
	_, err = e.pol.DeleteRole(ctx, &aegisv1.DeleteRoleRequest{Name: r.GetName()})
	wantCode(t, err, codes.FailedPrecondition)
	_, err = e.pol.DeleteRole(ctx, &aegisv1.DeleteRoleRequest{Name: "roles/OrgAdmin"})
	wantCode(t, err, codes.FailedPrecondition)
	must[*emptyT](t)(e.pol.DeleteRole(ctx, &aegisv1.DeleteRoleRequest{Name: r.GetName(), Force: true}))
	_, err = e.pol.GetBinding(ctx, &aegisv1.GetBindingRequest{Name: b.GetName()})
	wantCode(t, err, codes.NotFound)
}

// iamKeys lists every key under /aegis/iam/ with its mod revision.
func iamKeys(t *testing.T) []string {
	t.Helper()
	resp, err := tenv.cli.Get(ctxT(t), "/aegis/iam/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, kv := range resp.Kvs {
		out = append(out, fmt.Sprintf("%s@%d", kv.Key, kv.ModRevision))
	}
	return out
}

// TestInvalidInputChangesNothing sends malformed requests of every kind
// and checks that each is INVALID_ARGUMENT and that nothing in the store
// changed.
func TestInvalidInputChangesNothing(t *testing.T) {
	e := tenv
	ctx := e.as(t, "sysadmin")
	before := iamKeys(t)
	checks := make([]*aegisv1.AccessCheck, 101)
	for i := range checks {
		checks[i] = &aegisv1.AccessCheck{Permission: "plasmavmc:vms:get", Resource: web}
	}
	badFP := []*aegisv1.CertificateIdentity{{Match: &aegisv1.CertificateIdentity_Sha256Fingerprint{Sha256Fingerprint: "zz"}}}
	now := time.Now()
	// Each call runs as the map is built, after the snapshot above.
	results := map[string]error{
		"org id":          second(e.org.CreateOrg(ctx, &aegisv1.CreateOrgRequest{OrgId: "Bad_Org"})),
		"empty org id":    second(e.org.CreateOrg(ctx, &aegisv1.CreateOrgRequest{})),
		"singular name":   second(e.org.GetOrg(ctx, &aegisv1.GetOrgRequest{Name: "org/acme"})),
		"project parent":  second(e.org.CreateProject(ctx, &aegisv1.CreateProjectRequest{Parent: web, ProjectId: "x"})),
		"org labels":      second(e.org.CreateOrg(ctx, &aegisv1.CreateOrgRequest{OrgId: e.id("o"), Org: &aegisv1.Org{Labels: map[string]string{"": "x"}}})),
		"long name":       second(e.org.UpdateOrg(ctx, &aegisv1.UpdateOrgRequest{Org: &aegisv1.Org{Name: acme, DisplayName: strings.Repeat("x", 129)}})),
		"org state":       second(e.org.UpdateOrg(ctx, &aegisv1.UpdateOrgRequest{Org: &aegisv1.Org{Name: acme, State: 9}})),
		"update no name":  second(e.org.UpdateOrg(ctx, &aegisv1.UpdateOrgRequest{})),
		"user id":         second(e.identity.CreateUser(ctx, &aegisv1.CreateUserRequest{Parent: acme, UserId: "-x"})),
		"user in project": second(e.identity.GetUser(ctx, &aegisv1.GetUserRequest{Name: web + "/users/x"})),
		"fed identity": second(e.identity.UpdateUser(ctx, &aegisv1.UpdateUserRequest{
			User: &aegisv1.User{Name: targetUser, FederatedIdentities: []*aegisv1.FederatedIdentity{{Issuer: "x"}}}})),
		"member shape": second(e.identity.AddGroupMember(ctx, &aegisv1.AddGroupMemberRequest{Group: targetGrp, Member: "users/x"})),
		"sa parent":    second(e.identity.CreateServiceAccount(ctx, &aegisv1.CreateServiceAccountRequest{Parent: targetUser, ServiceAccountId: "x"})),
		"cert identity": second(e.identity.UpdateServiceAccount(ctx, &aegisv1.UpdateServiceAccountRequest{
			ServiceAccount: &aegisv1.ServiceAccount{Name: targetSA, CertificateIdentities: badFP}})),
		"key parent":     second(e.identity.CreateServiceAccountKey(ctx, &aegisv1.CreateServiceAccountKeyRequest{Parent: web})),
		"role id":        second(e.pol.CreateRole(ctx, &aegisv1.CreateRoleRequest{Parent: acme, RoleId: "1x"})),
		"role perm":      second(e.pol.UpdateRole(ctx, &aegisv1.UpdateRoleRequest{Role: &aegisv1.Role{Name: customRole, Permissions: []string{"a:b"}}})),
		"binding member": second(e.pol.CreateBinding(ctx, &aegisv1.CreateBindingRequest{Parent: web, Binding: &aegisv1.Binding{Role: "roles/ProjectViewer"}})),
		"binding effect": second(e.pol.CreateBinding(ctx, &aegisv1.CreateBindingRequest{Parent: web,
			Binding: &aegisv1.Binding{Member: targetUser, Role: "roles/ProjectViewer", Effect: 7}})),
		"page size":     second(e.identity.ListUsers(ctx, &aegisv1.ListUsersRequest{Parent: acme, PageSize: -1})),
		"page token":    second(e.identity.ListUsers(ctx, &aegisv1.ListUsersRequest{Parent: acme, PageToken: "garbage"})),
		"filter field":  second(e.identity.ListUsers(ctx, &aegisv1.ListUsersRequest{Parent: acme, Filter: "uid = x"})),
		"filter syntax": second(e.identity.ListUsers(ctx, &aegisv1.ListUsersRequest{Parent: acme, Filter: `email = "x`})),
		"filter or":     second(e.identity.ListUsers(ctx, &aegisv1.ListUsersRequest{Parent: acme, Filter: `email = x OR email = y`})),
		"filter enum":   second(e.identity.ListUsers(ctx, &aegisv1.ListUsersRequest{Parent: acme, Filter: `state = SLEEPING`})),
		"filter time":   second(e.identity.ListUsers(ctx, &aegisv1.ListUsersRequest{Parent: acme, Filter: `create_time > yesterday`})),
		"audit times": second(e.audit.ListAuditEvents(ctx, &aegisv1.ListAuditEventsRequest{Parent: acme,
			StartTime: tsOf(now), EndTime: tsOf(now.Add(-time.Hour))})),
		"audit principal": second(e.audit.ListAuditEvents(ctx, &aegisv1.ListAuditEventsRequest{Parent: acme, Principal: acme})),
		"authz perm":      second(e.authz.Authorize(ctx, &aegisv1.AuthorizeRequest{Permission: "plasmavmc:*:get", Resource: web})),
		"authz resource":  second(e.authz.Authorize(ctx, &aegisv1.AuthorizeRequest{Permission: "plasmavmc:vms:get", Resource: "org/acme"})),
		"authz ip":        second(e.authz.Authorize(ctx, &aegisv1.AuthorizeRequest{Permission: "plasmavmc:vms:get", Resource: web, SourceIp: "nope"})),
		"batch size":      second(e.authz.BatchAuthorize(ctx, &aegisv1.BatchAuthorizeRequest{Checks: checks})),
		"lookup perm":     second(e.authz.LookupPrincipals(ctx, &aegisv1.LookupPrincipalsRequest{Resource: web, Permission: "x"})),
		"subject name": second(e.authz.Authorize(ctx, &aegisv1.AuthorizeRequest{Subject: principalSubject("alice"),
			Permission: "plasmavmc:vms:get", Resource: web})),
	}
	for name, err := range results {
		if codeOf(err) != codes.InvalidArgument {
			t.Errorf("%s: got %v, want InvalidArgument", name, err)
		}
	}
	if after := iamKeys(t); !slices.Equal(before, after) {
		t.Fatalf("invalid requests changed the store:\n%v\n%v", before, after)
	}
}

func TestPaginationAndVisibility(t *testing.T) {
	e := tenv
	ctx := e.as(t, "sysadmin")
	oid := e.id("pg")
	org := "orgs/" + oid
	must[*aegisv1.Org](t)(e.org.CreateOrg(ctx, &aegisv1.CreateOrgRequest{OrgId: oid}))
	for i := 0; i < 7; i++ {
		st := aegisv1.User_STATE_ACTIVE
		if i%2 == 1 {
			st = aegisv1.User_STATE_DISABLED
		}
		must[*aegisv1.User](t)(e.identity.CreateUser(ctx, &aegisv1.CreateUserRequest{Parent: org, UserId: fmt.Sprintf("user%d", i),
			User: &aegisv1.User{State: st, DisplayName: fmt.Sprintf("User %d", i), Labels: map[string]string{"n": fmt.Sprint(i)}}}))
	}
	var names []string
	tok := ""
	for page := 0; ; page++ {
		resp := must[*aegisv1.ListUsersResponse](t)(e.identity.ListUsers(ctx, &aegisv1.ListUsersRequest{Parent: org, PageSize: 3, PageToken: tok}))
		for _, u := range resp.GetUsers() {
			names = append(names, u.GetName())
		}
		if tok = resp.GetNextPageToken(); tok == "" {
			break
		}
		if page > 5 {
			t.Fatal("pagination does not end")
		}
	}
	if len(names) != 7 || !slices.IsSorted(names) {
		t.Fatalf("paged users: %v", names)
	}
	first := must[*aegisv1.ListUsersResponse](t)(e.identity.ListUsers(ctx, &aegisv1.ListUsersRequest{Parent: org, PageSize: 2, Filter: "state = DISABLED"}))
	if len(first.GetUsers()) != 2 || first.GetNextPageToken() == "" {
		t.Fatalf("filtered page: %v", first)
	}
	_, err := e.identity.ListUsers(ctx, &aegisv1.ListUsersRequest{Parent: org, PageSize: 2, PageToken: first.GetNextPageToken(), Filter: "state = ACTIVE"})
	wantCode(t, err, codes.InvalidArgument)
	second := must[*aegisv1.ListUsersResponse](t)(e.identity.ListUsers(ctx, &aegisv1.ListUsersRequest{Parent: org, PageSize: 2, PageToken: first.GetNextPageToken(), Filter: "state = DISABLED"}))
	if len(second.GetUsers()) != 1 || second.GetNextPageToken() != "" {
		t.Fatalf("filtered page 2: %v", second)
	}
	for filter, want := range map[string]int{
		`display_name = "User 1*"`:                   1,
		`labels.n = "3"`:                             1,
		`labels:n AND state != STATE_DISABLED`:       4,
		`create_time > 2020-01-01T00:00:00Z`:         7,
		`create_time < 2020-01-01T00:00:00Z`:         0,
		`last_login_time:*`:                          0,
		`display_name = "User*" AND labels.n != "0"`: 6,
	} {
		resp := must[*aegisv1.ListUsersResponse](t)(e.identity.ListUsers(ctx, &aegisv1.ListUsersRequest{Parent: org, Filter: filter}))
		if len(resp.GetUsers()) != want {
			t.Errorf("filter %s: %d users, want %d", filter, len(resp.GetUsers()), want)
		}
	}

	// ListOrgs shows what the caller may get.
	orgsOf := func(key string) []string {
		var out []string
		tok := ""
		for {
			resp := must[*aegisv1.ListOrgsResponse](t)(e.org.ListOrgs(e.as(t, key), &aegisv1.ListOrgsRequest{PageSize: 2, PageToken: tok}))
			for _, o := range resp.GetOrgs() {
				out = append(out, o.GetName())
			}
			if tok = resp.GetNextPageToken(); tok == "" {
				return out
			}
		}
	}
	if got := orgsOf("orgadmin"); !slices.Equal(got, []string{acme}) {
		t.Errorf("orgadmin sees %v", got)
	}
	if got := orgsOf("outsider"); !slices.Equal(got, []string{beta}) {
		t.Errorf("outsider sees %v", got)
	}
	if got := orgsOf("viewer"); len(got) != 0 {
		t.Errorf("project viewer sees %v", got)
	}
	if got := orgsOf("sysadmin"); !slices.Contains(got, acme) || !slices.Contains(got, beta) || !slices.Contains(got, org) {
		t.Errorf("sysadmin sees %v", got)
	}
	// ListProjects shows a project viewer its own project only.
	must[*aegisv1.Project](t)(e.st.CreateProject(ctxT(t), acme, e.id("hidden"), nil))
	ps := must[*aegisv1.ListProjectsResponse](t)(e.org.ListProjects(e.as(t, "viewer"), &aegisv1.ListProjectsRequest{Parent: acme}))
	if len(ps.GetProjects()) != 1 || ps.GetProjects()[0].GetName() != web {
		t.Errorf("viewer's projects: %v", ps)
	}
	all := must[*aegisv1.ListProjectsResponse](t)(e.org.ListProjects(e.as(t, "orgadmin"), &aegisv1.ListProjectsRequest{Parent: acme, Filter: `labels.env = prod`}))
	if len(all.GetProjects()) != 1 {
		t.Errorf("orgadmin's prod projects: %v", all)
	}
}

// TestTenantProbing: outside its tenant a caller cannot tell existing
// names from missing ones; inside, a denial says so.
func TestTenantProbing(t *testing.T) {
	e := tenv
	out, in := e.as(t, "outsider"), e.as(t, "viewer")
	for _, name := range []string{targetUser, acme + "/users/nobody"} {
		_, err := e.identity.GetUser(out, &aegisv1.GetUserRequest{Name: name})
		wantCode(t, err, codes.NotFound)
		_, err = e.identity.DeleteUser(out, &aegisv1.DeleteUserRequest{Name: name})
		wantCode(t, err, codes.NotFound)
		_, err = e.identity.GetUser(in, &aegisv1.GetUserRequest{Name: name})
		wantCode(t, err, codes.PermissionDenied)
	}
	for _, name := range []string{acme, "orgs/nosuchorg"} {
		_, err := e.identity.ListUsers(out, &aegisv1.ListUsersRequest{Parent: name})
		wantCode(t, err, codes.NotFound)
		_, err = e.org.ListProjects(out, &aegisv1.ListProjectsRequest{Parent: name})
		wantCode(t, err, codes.NotFound)
	}
	// An operator of another org with a grant in acme is inside it.
	op := e.freshUserIn(t, beta)
	must[*aegisv1.Binding](t)(e.st.CreateBinding(ctxT(t), "system", e.id("op"), &aegisv1.Binding{Member: op, Role: "roles/OrgViewer", Scope: acme}, "test"))
	opCtx := withToken(t, e.issue(t, token.Grant{Subject: op, Kind: token.KindUser, Org: "beta"}))
	must[*aegisv1.User](t)(e.identity.GetUser(opCtx, &aegisv1.GetUserRequest{Name: targetUser}))
	_, err := e.identity.DeleteUser(opCtx, &aegisv1.DeleteUserRequest{Name: targetUser})
	wantCode(t, err, codes.PermissionDenied)
}

func (e *env) freshUserIn(t *testing.T, org string) string {
	id := e.id("u")
	must[*aegisv1.User](t)(e.st.CreateUser(ctxT(t), org, id, nil, ""))
	return org + "/users/" + id
}

func TestFederatedIssuers(t *testing.T) {
	s := &Server{opts: Options{FederatedIssuers: []string{"https://idp"}}}
	ok := []*aegisv1.FederatedIdentity{{Issuer: "https://idp", Subject: "1"}}
	bad := []*aegisv1.FederatedIdentity{{Issuer: "https://evil", Subject: "1"}}
	if err := s.checkIssuers(ok); err != nil {
		t.Fatal(err)
	}
	if err := s.checkIssuers(bad); codeOf(toStatus(tenv.srv.lg, err).Err()) != codes.InvalidArgument {
		t.Fatalf("untrusted issuer: %v", err)
	}
	if err := (&Server{}).checkIssuers(bad); err != nil {
		t.Fatalf("unconfigured: %v", err)
	}
}
