package server

import (
	"context"

	"google.golang.org/protobuf/types/known/emptypb"

	aegisv1 "github.com/photoncloud/photoncloud/api/aegis/v1"
	"github.com/photoncloud/photoncloud/internal/aegis/policy"
	"github.com/photoncloud/photoncloud/internal/aegis/store"
)

// The permissions of the admin API (common.proto, "Permissions"): checked
// on the parent for create and list, on the resource otherwise.
const (
	permOrgsCreate       = "aegis:orgs:create"
	permOrgsGet          = "aegis:orgs:get"
	permOrgsUpdate       = "aegis:orgs:update"
	permOrgsDelete       = "aegis:orgs:delete"
	permProjectsCreate   = "aegis:projects:create"
	permProjectsGet      = "aegis:projects:get"
	permProjectsList     = "aegis:projects:list"
	permProjectsUpdate   = "aegis:projects:update"
	permProjectsDelete   = "aegis:projects:delete"
	permUsersCreate      = "aegis:users:create"
	permUsersGet         = "aegis:users:get"
	permUsersList        = "aegis:users:list"
	permUsersUpdate      = "aegis:users:update"
	permUsersDelete      = "aegis:users:delete"
	permUsersSetPassword = "aegis:users:setPassword"
	permGroupsCreate     = "aegis:groups:create"
	permGroupsGet        = "aegis:groups:get"
	permGroupsList       = "aegis:groups:list"
	permGroupsUpdate     = "aegis:groups:update"
	permGroupsDelete     = "aegis:groups:delete"
	permSAsCreate        = "aegis:serviceAccounts:create"
	permSAsGet           = "aegis:serviceAccounts:get"
	permSAsList          = "aegis:serviceAccounts:list"
	permSAsUpdate        = "aegis:serviceAccounts:update"
	permSAsDelete        = "aegis:serviceAccounts:delete"
	permKeysCreate       = "aegis:serviceAccountKeys:create"
	permKeysGet          = "aegis:serviceAccountKeys:get"
	permKeysList         = "aegis:serviceAccountKeys:list"
	permKeysDelete       = "aegis:serviceAccountKeys:delete"
	permRolesCreate      = "aegis:roles:create"
	permRolesGet         = "aegis:roles:get"
	permRolesList        = "aegis:roles:list"
	permRolesUpdate      = "aegis:roles:update"
	permRolesDelete      = "aegis:roles:delete"
	permRolesBind        = "aegis:roles:bind" // see escalation.go
	permBindingsCreate   = "aegis:bindings:create"
	permBindingsGet      = "aegis:bindings:get"
	permBindingsList     = "aegis:bindings:list"
	permBindingsUpdate   = "aegis:bindings:update"
	permBindingsDelete   = "aegis:bindings:delete"
	permAuditList        = "aegis:auditEvents:list"
	permAuthzCheck       = "aegis:authz:check"
)

type orgService struct {
	aegisv1.UnimplementedOrgServiceServer
	s *Server
}

func (o *orgService) CreateOrg(ctx context.Context, req *aegisv1.CreateOrgRequest) (*aegisv1.Org, error) {
	if err := checkID("org_id", req.GetOrgId()); err != nil {
		return nil, err
	}
	s := o.s
	c, err := s.authorize(ctx, permOrgsCreate, policy.SystemScope)
	if err != nil {
		return nil, err
	}
	org, err := s.st.CreateOrg(ctx, req.GetOrgId(), req.GetOrg())
	s.auditChange(ctx, c, permOrgsCreate, "orgs/"+req.GetOrgId(), nil, org.GetEtag(), err)
	return org, s.apiErr(err)
}

func (o *orgService) GetOrg(ctx context.Context, req *aegisv1.GetOrgRequest) (*aegisv1.Org, error) {
	return getNamed(ctx, o.s, req.GetName(), permOrgsGet, o.s.st.GetOrg, shapeOrg)
}

// ListOrgs has no permission of its own: it lists the orgs the caller may
// get, which is every org for a system administrator and usually only the
// caller's own otherwise.
func (o *orgService) ListOrgs(ctx context.Context, req *aegisv1.ListOrgsRequest) (*aegisv1.ListOrgsResponse, error) {
	s := o.s
	c, err := callerOf(ctx)
	if err != nil {
		return nil, err
	}
	match, err := compileFilter[*aegisv1.Org](req.GetFilter(), orgFilter)
	if err != nil {
		return nil, err
	}
	orgs, next, err := s.st.ListOrgs(store.ListOptions[*aegisv1.Org]{
		PageSize: req.GetPageSize(), PageToken: req.GetPageToken(), Filter: req.GetFilter(),
		Match: func(org *aegisv1.Org) bool {
			if match != nil && !match(org) {
				return false
			}
			ok, _, _ := s.allowed(ctx, c, permOrgsGet, org.GetName())
			return ok
		},
	})
	if err != nil {
		return nil, s.apiErr(err)
	}
	return &aegisv1.ListOrgsResponse{Orgs: orgs, NextPageToken: next}, nil
}

func (o *orgService) UpdateOrg(ctx context.Context, req *aegisv1.UpdateOrgRequest) (*aegisv1.Org, error) {
	name := req.GetOrg().GetName()
	if err := checkName("org.name", name, shapeOrg); err != nil {
		return nil, err
	}
	plan, err := planMask(req.GetOrg(), req.GetUpdateMask(), orgMask)
	if err != nil {
		return nil, err
	}
	s := o.s
	c, err := s.authorize(ctx, permOrgsUpdate, name)
	if err != nil {
		return nil, err
	}
	org, err := s.st.UpdateOrg(ctx, name, req.GetOrg().GetEtag(), func(next *aegisv1.Org) error { return plan.apply(next) })
	s.auditChange(ctx, c, permOrgsUpdate, name, plan.fieldMask(), org.GetEtag(), err)
	return org, s.apiErr(err)
}

func (o *orgService) DeleteOrg(ctx context.Context, req *aegisv1.DeleteOrgRequest) (*emptypb.Empty, error) {
	name := req.GetName()
	if err := checkName("name", name, shapeOrg); err != nil {
		return nil, err
	}
	s := o.s
	c, err := s.authorize(ctx, permOrgsDelete, name)
	if err != nil {
		return nil, err
	}
	// The org's principals lose their tokens: listed before the delete,
	// revoked after it (a failed delete revokes nothing).
	var victims []string
	if req.GetForce() {
		victims = s.principalsIn(name)
	}
	err = s.st.DeleteOrg(ctx, name, req.GetEtag(), req.GetForce())
	if err == nil {
		s.revokeAll(ctx, victims)
	}
	s.auditChange(ctx, c, permOrgsDelete, name, nil, "", err)
	return empty(err, s)
}

func (o *orgService) CreateProject(ctx context.Context, req *aegisv1.CreateProjectRequest) (*aegisv1.Project, error) {
	parent := req.GetParent()
	if err := checkName("parent", parent, shapeOrg); err != nil {
		return nil, err
	}
	if err := checkID("project_id", req.GetProjectId()); err != nil {
		return nil, err
	}
	s := o.s
	c, err := s.authorize(ctx, permProjectsCreate, parent)
	if err != nil {
		return nil, err
	}
	p, err := s.st.CreateProject(ctx, parent, req.GetProjectId(), req.GetProject())
	s.auditChange(ctx, c, permProjectsCreate, parent+"/projects/"+req.GetProjectId(), nil, p.GetEtag(), err)
	return p, s.apiErr(err)
}

func (o *orgService) GetProject(ctx context.Context, req *aegisv1.GetProjectRequest) (*aegisv1.Project, error) {
	return getNamed(ctx, o.s, req.GetName(), permProjectsGet, o.s.st.GetProject, shapeProject)
}

// ListProjects lists the projects the caller may get. A caller with
// aegis:projects:list on the org, or anyone inside the org's tenant (e.g.
// a project's viewer, who sees its own project), gets the list; outside
// the tenant the org is NOT_FOUND like any other name there.
func (o *orgService) ListProjects(ctx context.Context, req *aegisv1.ListProjectsRequest) (*aegisv1.ListProjectsResponse, error) {
	parent := req.GetParent()
	if err := checkName("parent", parent, shapeOrg); err != nil {
		return nil, err
	}
	s := o.s
	c, err := callerOf(ctx)
	if err != nil {
		return nil, err
	}
	ok, d, err := s.allowed(ctx, c, permProjectsList, parent)
	if err != nil {
		return nil, err
	}
	if !ok && s.hidden(ctx, c, parent) {
		return nil, s.deny(ctx, c, permProjectsList, parent, d)
	}
	match, err := compileFilter[*aegisv1.Project](req.GetFilter(), projectFilter)
	if err != nil {
		return nil, err
	}
	ps, next, err := s.st.ListProjects(parent, store.ListOptions[*aegisv1.Project]{
		PageSize: req.GetPageSize(), PageToken: req.GetPageToken(), Filter: req.GetFilter(),
		Match: func(p *aegisv1.Project) bool {
			if match != nil && !match(p) {
				return false
			}
			ok, _, _ := s.allowed(ctx, c, permProjectsGet, p.GetName())
			return ok
		},
	})
	if err != nil {
		return nil, s.apiErr(err)
	}
	return &aegisv1.ListProjectsResponse{Projects: ps, NextPageToken: next}, nil
}

func (o *orgService) UpdateProject(ctx context.Context, req *aegisv1.UpdateProjectRequest) (*aegisv1.Project, error) {
	name := req.GetProject().GetName()
	if err := checkName("project.name", name, shapeProject); err != nil {
		return nil, err
	}
	plan, err := planMask(req.GetProject(), req.GetUpdateMask(), projectMask)
	if err != nil {
		return nil, err
	}
	s := o.s
	c, err := s.authorize(ctx, permProjectsUpdate, name)
	if err != nil {
		return nil, err
	}
	p, err := s.st.UpdateProject(ctx, name, req.GetProject().GetEtag(), func(next *aegisv1.Project) error { return plan.apply(next) })
	s.auditChange(ctx, c, permProjectsUpdate, name, plan.fieldMask(), p.GetEtag(), err)
	return p, s.apiErr(err)
}

func (o *orgService) DeleteProject(ctx context.Context, req *aegisv1.DeleteProjectRequest) (*emptypb.Empty, error) {
	name := req.GetName()
	if err := checkName("name", name, shapeProject); err != nil {
		return nil, err
	}
	s := o.s
	c, err := s.authorize(ctx, permProjectsDelete, name)
	if err != nil {
		return nil, err
	}
	var victims []string
	if req.GetForce() {
		victims = s.serviceAccountsIn(name)
	}
	err = s.st.DeleteProject(ctx, name, req.GetEtag(), req.GetForce())
	if err == nil {
		s.revokeAll(ctx, victims)
	}
	s.auditChange(ctx, c, permProjectsDelete, name, nil, "", err)
	return empty(err, s)
}

func empty(err error, s *Server) (*emptypb.Empty, error) {
	if err != nil {
		return nil, s.apiErr(err)
	}
	return &emptypb.Empty{}, nil
}
