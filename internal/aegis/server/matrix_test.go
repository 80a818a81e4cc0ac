package server

import (
	"context"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	aegisv1 "github.com/photoncloud/photoncloud/api/aegis/v1"
)

const (
	ok = codes.OK
	pd = codes.PermissionDenied
	nf = codes.NotFound
	fp = codes.FailedPrecondition
)

// matrixCase is one admin call, with the code each persona must get, in
// the order of personas: sysadmin, orgadmin, projadmin, editor, viewer,
// outsider (OrgAdmin of another org), sa (ProjectEditor of web plus
// aegis.authzChecker at system). run prepares what the call needs (fresh
// objects for changes, through the store) and makes the call.
type matrixCase struct {
	name string
	want [7]codes.Code
	run  func(t *testing.T, e *env, ctx context.Context) error
}

// Fresh objects, made through the store (no authorization).
func (e *env) freshUser(t *testing.T) string {
	id := e.id("u")
	must[*aegisv1.User](t)(e.st.CreateUser(ctxT(t), acme, id, nil, ""))
	return acme + "/users/" + id
}

func (e *env) freshGroup(t *testing.T) string {
	id := e.id("g")
	must[*aegisv1.Group](t)(e.st.CreateGroup(ctxT(t), acme, id, nil))
	return acme + "/groups/" + id
}

func (e *env) freshSA(t *testing.T) string {
	id := e.id("sa")
	must[*aegisv1.ServiceAccount](t)(e.st.CreateServiceAccount(ctxT(t), web, id, nil))
	return web + "/serviceAccounts/" + id
}

func (e *env) freshBinding(t *testing.T) string {
	b := must[*aegisv1.Binding](t)(e.st.CreateBinding(ctxT(t), web, e.id("b"),
		&aegisv1.Binding{Member: targetUser, Role: "roles/ProjectViewer"}, "test"))
	return b.GetName()
}

func matrixCases() []matrixCase {
	return []matrixCase{
		// ---- OrgService ----
		{"CreateOrg", [7]codes.Code{ok, pd, pd, pd, pd, pd, pd}, func(t *testing.T, e *env, ctx context.Context) error {
			_, err := e.org.CreateOrg(ctx, &aegisv1.CreateOrgRequest{OrgId: e.id("o")})
			return err
		}},
		{"GetOrg", [7]codes.Code{ok, ok, pd, pd, pd, nf, pd}, func(t *testing.T, e *env, ctx context.Context) error {
			_, err := e.org.GetOrg(ctx, &aegisv1.GetOrgRequest{Name: acme})
			return err
		}},
		{"GetOrg/beta", [7]codes.Code{ok, nf, nf, nf, nf, ok, nf}, func(t *testing.T, e *env, ctx context.Context) error {
			_, err := e.org.GetOrg(ctx, &aegisv1.GetOrgRequest{Name: beta})
			return err
		}},
		{"ListOrgs", [7]codes.Code{ok, ok, ok, ok, ok, ok, ok}, func(t *testing.T, e *env, ctx context.Context) error {
			_, err := e.org.ListOrgs(ctx, &aegisv1.ListOrgsRequest{})
			return err
		}},
		{"UpdateOrg", [7]codes.Code{ok, ok, pd, pd, pd, nf, pd}, func(t *testing.T, e *env, ctx context.Context) error {
			_, err := e.org.UpdateOrg(ctx, &aegisv1.UpdateOrgRequest{Org: &aegisv1.Org{Name: acme, DisplayName: "Acme " + e.id("")},
				UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"display_name"}}})
			return err
		}},
		// acme has projects: the allowed caller gets FAILED_PRECONDITION
		// (nothing is deleted), everyone else is stopped before.
		{"DeleteOrg/acme", [7]codes.Code{fp, pd, pd, pd, pd, nf, pd}, func(t *testing.T, e *env, ctx context.Context) error {
			_, err := e.org.DeleteOrg(ctx, &aegisv1.DeleteOrgRequest{Name: acme})
			return err
		}},
		{"DeleteOrg/fresh", [7]codes.Code{ok, nf, nf, nf, nf, nf, nf}, func(t *testing.T, e *env, ctx context.Context) error {
			id := e.id("o")
			must[*aegisv1.Org](t)(e.st.CreateOrg(ctxT(t), id, nil))
			_, err := e.org.DeleteOrg(ctx, &aegisv1.DeleteOrgRequest{Name: "orgs/" + id})
			return err
		}},
		{"CreateProject", [7]codes.Code{ok, ok, pd, pd, pd, nf, pd}, func(t *testing.T, e *env, ctx context.Context) error {
			_, err := e.org.CreateProject(ctx, &aegisv1.CreateProjectRequest{Parent: acme, ProjectId: e.id("p")})
			return err
		}},
		{"GetProject", [7]codes.Code{ok, ok, ok, ok, ok, nf, ok}, func(t *testing.T, e *env, ctx context.Context) error {
			_, err := e.org.GetProject(ctx, &aegisv1.GetProjectRequest{Name: web})
			return err
		}},
		{"ListProjects", [7]codes.Code{ok, ok, ok, ok, ok, nf, ok}, func(t *testing.T, e *env, ctx context.Context) error {
			_, err := e.org.ListProjects(ctx, &aegisv1.ListProjectsRequest{Parent: acme})
			return err
		}},
		{"UpdateProject", [7]codes.Code{ok, ok, ok, pd, pd, nf, pd}, func(t *testing.T, e *env, ctx context.Context) error {
			_, err := e.org.UpdateProject(ctx, &aegisv1.UpdateProjectRequest{Project: &aegisv1.Project{Name: web, Description: e.id("d")}})
			return err
		}},
		{"DeleteProject", [7]codes.Code{ok, ok, pd, pd, pd, nf, pd}, func(t *testing.T, e *env, ctx context.Context) error {
			id := e.id("p")
			must[*aegisv1.Project](t)(e.st.CreateProject(ctxT(t), acme, id, nil))
			_, err := e.org.DeleteProject(ctx, &aegisv1.DeleteProjectRequest{Name: acme + "/projects/" + id})
			return err
		}},

		// ---- IdentityService: users ----
		{"CreateUser", [7]codes.Code{ok, ok, pd, pd, pd, nf, pd}, func(t *testing.T, e *env, ctx context.Context) error {
			_, err := e.identity.CreateUser(ctx, &aegisv1.CreateUserRequest{Parent: acme, UserId: e.id("u"), Password: "correct horse"})
			return err
		}},
		{"GetUser", [7]codes.Code{ok, ok, pd, pd, pd, nf, pd}, func(t *testing.T, e *env, ctx context.Context) error {
			_, err := e.identity.GetUser(ctx, &aegisv1.GetUserRequest{Name: targetUser})
			return err
		}},
		{"GetUser/beta", [7]codes.Code{ok, nf, nf, nf, nf, ok, nf}, func(t *testing.T, e *env, ctx context.Context) error {
			_, err := e.identity.GetUser(ctx, &aegisv1.GetUserRequest{Name: "orgs/beta/users/eve"})
			return err
		}},
		{"ListUsers", [7]codes.Code{ok, ok, pd, pd, pd, nf, pd}, func(t *testing.T, e *env, ctx context.Context) error {
			_, err := e.identity.ListUsers(ctx, &aegisv1.ListUsersRequest{Parent: acme})
			return err
		}},
		{"UpdateUser", [7]codes.Code{ok, ok, pd, pd, pd, nf, pd}, func(t *testing.T, e *env, ctx context.Context) error {
			_, err := e.identity.UpdateUser(ctx, &aegisv1.UpdateUserRequest{User: &aegisv1.User{Name: targetUser, Email: e.id("m") + "@x"}})
			return err
		}},
		{"DeleteUser", [7]codes.Code{ok, ok, pd, pd, pd, nf, pd}, func(t *testing.T, e *env, ctx context.Context) error {
			_, err := e.identity.DeleteUser(ctx, &aegisv1.DeleteUserRequest{Name: e.freshUser(t)})
			return err
		}},
		{"SetUserPassword", [7]codes.Code{ok, ok, pd, pd, pd, nf, pd}, func(t *testing.T, e *env, ctx context.Context) error {
			_, err := e.identity.SetUserPassword(ctx, &aegisv1.SetUserPasswordRequest{Name: e.freshUser(t), NewPassword: "new password"})
			return err
		}},

		// ---- groups ----
		{"CreateGroup", [7]codes.Code{ok, ok, pd, pd, pd, nf, pd}, func(t *testing.T, e *env, ctx context.Context) error {
			_, err := e.identity.CreateGroup(ctx, &aegisv1.CreateGroupRequest{Parent: acme, GroupId: e.id("g")})
			return err
		}},
		{"GetGroup", [7]codes.Code{ok, ok, pd, pd, pd, nf, pd}, func(t *testing.T, e *env, ctx context.Context) error {
			_, err := e.identity.GetGroup(ctx, &aegisv1.GetGroupRequest{Name: targetGrp})
			return err
		}},
		{"ListGroups", [7]codes.Code{ok, ok, pd, pd, pd, nf, pd}, func(t *testing.T, e *env, ctx context.Context) error {
			_, err := e.identity.ListGroups(ctx, &aegisv1.ListGroupsRequest{Parent: acme})
			return err
		}},
		{"UpdateGroup", [7]codes.Code{ok, ok, pd, pd, pd, nf, pd}, func(t *testing.T, e *env, ctx context.Context) error {
			_, err := e.identity.UpdateGroup(ctx, &aegisv1.UpdateGroupRequest{Group: &aegisv1.Group{Name: targetGrp, Description: e.id("d")}})
			return err
		}},
		{"DeleteGroup", [7]codes.Code{ok, ok, pd, pd, pd, nf, pd}, func(t *testing.T, e *env, ctx context.Context) error {
			_, err := e.identity.DeleteGroup(ctx, &aegisv1.DeleteGroupRequest{Name: e.freshGroup(t)})
			return err
		}},
		{"AddGroupMember", [7]codes.Code{ok, ok, pd, pd, pd, nf, pd}, func(t *testing.T, e *env, ctx context.Context) error {
			_, err := e.identity.AddGroupMember(ctx, &aegisv1.AddGroupMemberRequest{Group: e.freshGroup(t), Member: targetUser})
			return err
		}},
		{"RemoveGroupMember", [7]codes.Code{ok, ok, pd, pd, pd, nf, pd}, func(t *testing.T, e *env, ctx context.Context) error {
			g := e.freshGroup(t)
			must[*aegisv1.GroupMember](t)(e.st.AddGroupMember(ctxT(t), g, targetUser, ""))
			_, err := e.identity.RemoveGroupMember(ctx, &aegisv1.RemoveGroupMemberRequest{Group: g, Member: targetUser})
			return err
		}},
		{"ListGroupMembers", [7]codes.Code{ok, ok, pd, pd, pd, nf, pd}, func(t *testing.T, e *env, ctx context.Context) error {
			_, err := e.identity.ListGroupMembers(ctx, &aegisv1.ListGroupMembersRequest{Group: targetGrp})
			return err
		}},

		// ---- service accounts and keys ----
		{"CreateServiceAccount/project", [7]codes.Code{ok, ok, ok, pd, pd, nf, pd}, func(t *testing.T, e *env, ctx context.Context) error {
			_, err := e.identity.CreateServiceAccount(ctx, &aegisv1.CreateServiceAccountRequest{Parent: web, ServiceAccountId: e.id("sa")})
			return err
		}},
		{"CreateServiceAccount/org", [7]codes.Code{ok, ok, pd, pd, pd, nf, pd}, func(t *testing.T, e *env, ctx context.Context) error {
			_, err := e.identity.CreateServiceAccount(ctx, &aegisv1.CreateServiceAccountRequest{Parent: acme, ServiceAccountId: e.id("sa")})
			return err
		}},
		{"GetServiceAccount", [7]codes.Code{ok, ok, ok, ok, ok, nf, ok}, func(t *testing.T, e *env, ctx context.Context) error {
			_, err := e.identity.GetServiceAccount(ctx, &aegisv1.GetServiceAccountRequest{Name: targetSA})
			return err
		}},
		{"ListServiceAccounts", [7]codes.Code{ok, ok, ok, ok, ok, nf, ok}, func(t *testing.T, e *env, ctx context.Context) error {
			_, err := e.identity.ListServiceAccounts(ctx, &aegisv1.ListServiceAccountsRequest{Parent: web})
			return err
		}},
		{"UpdateServiceAccount", [7]codes.Code{ok, ok, ok, pd, pd, nf, pd}, func(t *testing.T, e *env, ctx context.Context) error {
			_, err := e.identity.UpdateServiceAccount(ctx, &aegisv1.UpdateServiceAccountRequest{
				ServiceAccount: &aegisv1.ServiceAccount{Name: targetSA, Description: e.id("d")}})
			return err
		}},
		{"DeleteServiceAccount", [7]codes.Code{ok, ok, ok, pd, pd, nf, pd}, func(t *testing.T, e *env, ctx context.Context) error {
			_, err := e.identity.DeleteServiceAccount(ctx, &aegisv1.DeleteServiceAccountRequest{Name: e.freshSA(t)})
			return err
		}},
		{"CreateServiceAccountKey", [7]codes.Code{ok, ok, ok, pd, pd, nf, pd}, func(t *testing.T, e *env, ctx context.Context) error {
			_, err := e.identity.CreateServiceAccountKey(ctx, &aegisv1.CreateServiceAccountKeyRequest{Parent: e.freshSA(t)})
			return err
		}},
		{"GetServiceAccountKey", [7]codes.Code{ok, ok, ok, pd, ok, nf, pd}, func(t *testing.T, e *env, ctx context.Context) error {
			_, err := e.identity.GetServiceAccountKey(ctx, &aegisv1.GetServiceAccountKeyRequest{Name: targetKey})
			return err
		}},
		{"ListServiceAccountKeys", [7]codes.Code{ok, ok, ok, pd, ok, nf, pd}, func(t *testing.T, e *env, ctx context.Context) error {
			_, err := e.identity.ListServiceAccountKeys(ctx, &aegisv1.ListServiceAccountKeysRequest{Parent: targetSA})
			return err
		}},
		{"DeleteServiceAccountKey", [7]codes.Code{ok, ok, ok, pd, pd, nf, pd}, func(t *testing.T, e *env, ctx context.Context) error {
			k := must[*aegisv1.ServiceAccountKey](t)(e.st.CreateServiceAccountKey(ctxT(t), e.freshSA(t), nil, "sha256:00"))
			_, err := e.identity.DeleteServiceAccountKey(ctx, &aegisv1.DeleteServiceAccountKeyRequest{Name: k.GetName()})
			return err
		}},

		// ---- PolicyService ----
		{"GetRole/builtin", [7]codes.Code{ok, ok, ok, ok, ok, ok, ok}, func(t *testing.T, e *env, ctx context.Context) error {
			_, err := e.pol.GetRole(ctx, &aegisv1.GetRoleRequest{Name: "roles/ProjectViewer"})
			return err
		}},
		{"GetRole/custom", [7]codes.Code{ok, ok, pd, pd, pd, nf, pd}, func(t *testing.T, e *env, ctx context.Context) error {
			_, err := e.pol.GetRole(ctx, &aegisv1.GetRoleRequest{Name: customRole})
			return err
		}},
		{"ListRoles/builtin", [7]codes.Code{ok, ok, ok, ok, ok, ok, ok}, func(t *testing.T, e *env, ctx context.Context) error {
			_, err := e.pol.ListRoles(ctx, &aegisv1.ListRolesRequest{})
			return err
		}},
		{"ListRoles/org", [7]codes.Code{ok, ok, pd, pd, pd, nf, pd}, func(t *testing.T, e *env, ctx context.Context) error {
			_, err := e.pol.ListRoles(ctx, &aegisv1.ListRolesRequest{Parent: acme})
			return err
		}},
		{"CreateRole", [7]codes.Code{ok, ok, pd, pd, pd, nf, pd}, func(t *testing.T, e *env, ctx context.Context) error {
			_, err := e.pol.CreateRole(ctx, &aegisv1.CreateRoleRequest{Parent: acme, RoleId: e.id("Role"),
				Role: &aegisv1.Role{Permissions: []string{"flashdns:records:get"}}})
			return err
		}},
		{"UpdateRole", [7]codes.Code{ok, ok, pd, pd, pd, nf, pd}, func(t *testing.T, e *env, ctx context.Context) error {
			_, err := e.pol.UpdateRole(ctx, &aegisv1.UpdateRoleRequest{Role: &aegisv1.Role{Name: customRole, Description: e.id("d")}})
			return err
		}},
		{"UpdateRole/builtin", [7]codes.Code{fp, fp, fp, fp, fp, fp, fp}, func(t *testing.T, e *env, ctx context.Context) error {
			_, err := e.pol.UpdateRole(ctx, &aegisv1.UpdateRoleRequest{Role: &aegisv1.Role{Name: "roles/OrgAdmin", Description: "x"}})
			return err
		}},
		{"DeleteRole", [7]codes.Code{ok, ok, pd, pd, pd, nf, pd}, func(t *testing.T, e *env, ctx context.Context) error {
			id := e.id("Role")
			must[*aegisv1.Role](t)(e.st.CreateRole(ctxT(t), acme, id, &aegisv1.Role{Permissions: []string{"flashdns:records:get"}}))
			_, err := e.pol.DeleteRole(ctx, &aegisv1.DeleteRoleRequest{Name: acme + "/roles/" + id})
			return err
		}},
		{"CreateBinding/project", [7]codes.Code{ok, ok, ok, pd, pd, nf, pd}, func(t *testing.T, e *env, ctx context.Context) error {
			_, err := e.pol.CreateBinding(ctx, &aegisv1.CreateBindingRequest{Parent: web,
				Binding: &aegisv1.Binding{Member: targetUser, Role: "roles/ProjectViewer"}})
			return err
		}},
		{"CreateBinding/org", [7]codes.Code{ok, ok, pd, pd, pd, nf, pd}, func(t *testing.T, e *env, ctx context.Context) error {
			_, err := e.pol.CreateBinding(ctx, &aegisv1.CreateBindingRequest{Parent: acme,
				Binding: &aegisv1.Binding{Member: targetUser, Role: "roles/OrgViewer"}})
			return err
		}},
		{"CreateBinding/system", [7]codes.Code{ok, pd, pd, pd, pd, pd, pd}, func(t *testing.T, e *env, ctx context.Context) error {
			_, err := e.pol.CreateBinding(ctx, &aegisv1.CreateBindingRequest{Parent: "system",
				Binding: &aegisv1.Binding{Member: targetUser, Role: "roles/aegis.viewer"}})
			return err
		}},
		{"GetBinding", [7]codes.Code{ok, ok, ok, pd, ok, nf, pd}, func(t *testing.T, e *env, ctx context.Context) error {
			_, err := e.pol.GetBinding(ctx, &aegisv1.GetBindingRequest{Name: targetBind})
			return err
		}},
		{"GetBinding/system", [7]codes.Code{ok, pd, pd, pd, pd, pd, pd}, func(t *testing.T, e *env, ctx context.Context) error {
			_, err := e.pol.GetBinding(ctx, &aegisv1.GetBindingRequest{Name: sysBind})
			return err
		}},
		{"ListBindings", [7]codes.Code{ok, ok, ok, pd, ok, nf, ok}, func(t *testing.T, e *env, ctx context.Context) error {
			_, err := e.pol.ListBindings(ctx, &aegisv1.ListBindingsRequest{Parent: web})
			return err
		}},
		{"UpdateBinding", [7]codes.Code{ok, ok, ok, pd, pd, nf, pd}, func(t *testing.T, e *env, ctx context.Context) error {
			_, err := e.pol.UpdateBinding(ctx, &aegisv1.UpdateBindingRequest{Binding: &aegisv1.Binding{Name: e.freshBinding(t), Description: "d"}})
			return err
		}},
		{"DeleteBinding", [7]codes.Code{ok, ok, ok, pd, pd, nf, pd}, func(t *testing.T, e *env, ctx context.Context) error {
			_, err := e.pol.DeleteBinding(ctx, &aegisv1.DeleteBindingRequest{Name: e.freshBinding(t)})
			return err
		}},

		// ---- AuthzService ----
		{"Authorize/self", [7]codes.Code{ok, ok, ok, ok, ok, ok, ok}, func(t *testing.T, e *env, ctx context.Context) error {
			_, err := e.authz.Authorize(ctx, &aegisv1.AuthorizeRequest{Permission: "plasmavmc:vms:get", Resource: web + "/vms/vm1"})
			return err
		}},
		{"Authorize/other", [7]codes.Code{ok, ok, ok, pd, pd, nf, ok}, func(t *testing.T, e *env, ctx context.Context) error {
			_, err := e.authz.Authorize(ctx, &aegisv1.AuthorizeRequest{Subject: &aegisv1.Subject{Identity: &aegisv1.Subject_Principal{Principal: targetUser}},
				Permission: "plasmavmc:vms:get", Resource: web + "/vms/vm1"})
			return err
		}},
		{"BatchAuthorize/other", [7]codes.Code{ok, ok, ok, pd, pd, nf, ok}, func(t *testing.T, e *env, ctx context.Context) error {
			_, err := e.authz.BatchAuthorize(ctx, &aegisv1.BatchAuthorizeRequest{Subject: &aegisv1.Subject{Identity: &aegisv1.Subject_Principal{Principal: targetUser}},
				Checks: []*aegisv1.AccessCheck{{Permission: "plasmavmc:vms:get", Resource: web + "/vms/vm1"}, {Permission: "plasmavmc:vms:delete", Resource: web}}})
			return err
		}},
		{"TestPermissions/other", [7]codes.Code{ok, ok, ok, pd, pd, nf, ok}, func(t *testing.T, e *env, ctx context.Context) error {
			_, err := e.authz.TestPermissions(ctx, &aegisv1.TestPermissionsRequest{Subject: &aegisv1.Subject{Identity: &aegisv1.Subject_Principal{Principal: targetUser}},
				Resource: web, Permissions: []string{"plasmavmc:vms:get", "plasmavmc:vms:delete"}})
			return err
		}},
		{"LookupPrincipals", [7]codes.Code{ok, ok, ok, pd, ok, nf, ok}, func(t *testing.T, e *env, ctx context.Context) error {
			_, err := e.authz.LookupPrincipals(ctx, &aegisv1.LookupPrincipalsRequest{Resource: web, Permission: "plasmavmc:vms:get"})
			return err
		}},

		// ---- AuditService ----
		{"ListAuditEvents/org", [7]codes.Code{ok, ok, pd, pd, pd, nf, pd}, func(t *testing.T, e *env, ctx context.Context) error {
			_, err := e.audit.ListAuditEvents(ctx, &aegisv1.ListAuditEventsRequest{Parent: acme, PageSize: 1})
			return err
		}},
		{"ListAuditEvents/project", [7]codes.Code{ok, ok, pd, pd, ok, nf, pd}, func(t *testing.T, e *env, ctx context.Context) error {
			_, err := e.audit.ListAuditEvents(ctx, &aegisv1.ListAuditEventsRequest{Parent: web, PageSize: 1})
			return err
		}},
		{"ListAuditEvents/system", [7]codes.Code{ok, pd, pd, pd, pd, pd, pd}, func(t *testing.T, e *env, ctx context.Context) error {
			_, err := e.audit.ListAuditEvents(ctx, &aegisv1.ListAuditEventsRequest{Parent: "system", PageSize: 1})
			return err
		}},
	}
}

// TestPersonaMatrix runs every admin call as every persona. Besides the
// codes, it checks that a denied call changed nothing visible: every
// allowed change above targets a fresh object or is idempotent.
func TestPersonaMatrix(t *testing.T) {
	e := tenv
	for _, mc := range matrixCases() {
		t.Run(mc.name, func(t *testing.T) {
			for i, p := range personas {
				err := mc.run(t, e, e.as(t, p.key))
				if got := codeOf(err); got != mc.want[i] {
					t.Errorf("%s: got %v (%v), want %v", p.key, got, err, mc.want[i])
				}
			}
		})
	}
}

// TestEveryRPCInMatrix makes sure a new RPC cannot be added to a service
// without a row in the matrix.
func TestEveryRPCInMatrix(t *testing.T) {
	covered := map[string]bool{}
	for _, mc := range matrixCases() {
		name := mc.name
		if i := indexByte(name, '/'); i >= 0 {
			name = name[:i]
		}
		covered[name] = true
	}
	for _, sd := range []string{"aegis.v1.OrgService", "aegis.v1.IdentityService", "aegis.v1.PolicyService",
		"aegis.v1.AuthzService", "aegis.v1.AuditService"} {
		for _, m := range serviceMethods(t, sd) {
			if !covered[m] {
				t.Errorf("%s.%s has no row in the persona matrix", sd, m)
			}
		}
	}
}
