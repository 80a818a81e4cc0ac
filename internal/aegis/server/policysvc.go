package server

import (
	"context"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	aegisv1 "github.com/photoncloud/photoncloud/api/aegis/v1"
)

type policyService struct {
	aegisv1.UnimplementedPolicyServiceServer
	s *Server
}

var roleShapes = []string{shapeBuiltinRol, shapeCustomRole}

// builtinRoleErr refuses changes to built-in roles. It is answered before
// any permission check: built-in roles are public, so the answer reveals
// nothing, and no permission could allow the change anyway.
func builtinRoleErr(name string) error {
	return status.Errorf(codes.FailedPrecondition, "built-in role %s cannot be changed", name)
}

// ---- roles ----

func (p *policyService) GetRole(ctx context.Context, req *aegisv1.GetRoleRequest) (*aegisv1.Role, error) {
	name := req.GetName()
	if err := checkName("name", name, roleShapes...); err != nil {
		return nil, err
	}
	s := p.s
	if matchShape(name, shapeBuiltinRol) {
		// Built-in roles are readable by every authenticated caller.
		if _, err := callerOf(ctx); err != nil {
			return nil, err
		}
	} else if _, err := s.authorize(ctx, permRolesGet, name); err != nil {
		return nil, err
	}
	r, err := s.st.GetRole(name)
	return r, s.apiErr(err)
}

func (p *policyService) ListRoles(ctx context.Context, req *aegisv1.ListRolesRequest) (*aegisv1.ListRolesResponse, error) {
	s := p.s
	parent := req.GetParent()
	if parent == "" {
		if _, err := callerOf(ctx); err != nil {
			return nil, err
		}
	} else {
		if err := checkName("parent", parent, shapeOrg); err != nil {
			return nil, err
		}
		if _, err := s.authorize(ctx, permRolesList, parent); err != nil {
			return nil, err
		}
	}
	rs, next, err := listPage(s, parent, req, roleFilter, s.st.ListRoles)
	if err != nil {
		return nil, err
	}
	return &aegisv1.ListRolesResponse{Roles: rs, NextPageToken: next}, nil
}

func (p *policyService) CreateRole(ctx context.Context, req *aegisv1.CreateRoleRequest) (*aegisv1.Role, error) {
	parent := req.GetParent()
	if err := checkName("parent", parent, shapeOrg); err != nil {
		return nil, err
	}
	if err := checkID("role_id", req.GetRoleId()); err != nil {
		return nil, err
	}
	s := p.s
	c, err := s.authorize(ctx, permRolesCreate, parent)
	if err != nil {
		return nil, err
	}
	r, err := s.st.CreateRole(ctx, parent, req.GetRoleId(), req.GetRole())
	s.auditChange(ctx, c, permRolesCreate, parent+"/roles/"+req.GetRoleId(), nil, r.GetEtag(), err)
	return r, s.apiErr(err)
}

func (p *policyService) UpdateRole(ctx context.Context, req *aegisv1.UpdateRoleRequest) (*aegisv1.Role, error) {
	name := req.GetRole().GetName()
	if err := checkName("role.name", name, roleShapes...); err != nil {
		return nil, err
	}
	s := p.s
	if matchShape(name, shapeBuiltinRol) {
		if _, err := callerOf(ctx); err != nil {
			return nil, err
		}
		return nil, builtinRoleErr(name)
	}
	plan, err := planMask(req.GetRole(), req.GetUpdateMask(), roleMask)
	if err != nil {
		return nil, err
	}
	c, err := s.authorize(ctx, permRolesUpdate, name)
	if err != nil {
		return nil, err
	}
	// Added permissions are checked against escalation in the update,
	// against the role as stored, so that a concurrent change cannot
	// slip between check and write (as in UpdateBinding).
	refused := false
	r, err := s.st.UpdateRole(ctx, name, req.GetRole().GetEtag(), func(next *aegisv1.Role) error {
		before := slices.Clone(next.GetPermissions())
		if err := plan.apply(next); err != nil {
			return err
		}
		var err error
		refused, err = s.checkRoleUpdate(ctx, c, name, before, next.GetPermissions())
		return err
	})
	if !refused {
		s.auditChange(ctx, c, permRolesUpdate, name, plan.fieldMask(), r.GetEtag(), err)
	}
	return r, s.apiErr(err)
}

func (p *policyService) DeleteRole(ctx context.Context, req *aegisv1.DeleteRoleRequest) (*emptypb.Empty, error) {
	name := req.GetName()
	if err := checkName("name", name, roleShapes...); err != nil {
		return nil, err
	}
	s := p.s
	if matchShape(name, shapeBuiltinRol) {
		if _, err := callerOf(ctx); err != nil {
			return nil, err
		}
		return nil, builtinRoleErr(name)
	}
	c, err := s.authorize(ctx, permRolesDelete, name)
	if err != nil {
		return nil, err
	}
	err = s.st.DeleteRole(ctx, name, req.GetEtag(), req.GetForce())
	s.auditChange(ctx, c, permRolesDelete, name, nil, "", err)
	return empty(err, s)
}

// ---- bindings ----

func (p *policyService) CreateBinding(ctx context.Context, req *aegisv1.CreateBindingRequest) (*aegisv1.Binding, error) {
	parent := req.GetParent()
	if err := checkName("parent", parent, containerShapes...); err != nil {
		return nil, err
	}
	if req.GetBindingId() != "" {
		if err := checkID("binding_id", req.GetBindingId()); err != nil {
			return nil, err
		}
	}
	if err := checkName("binding.member", req.GetBinding().GetMember(), memberShapes...); err != nil {
		return nil, err
	}
	if err := checkName("binding.role", req.GetBinding().GetRole(), roleShapes...); err != nil {
		return nil, err
	}
	s := p.s
	c, err := s.authorize(ctx, permBindingsCreate, parent)
	if err != nil {
		return nil, err
	}
	if _, err := s.checkBind(ctx, c, parent, req.GetBinding()); err != nil {
		return nil, err
	}
	b, err := s.st.CreateBinding(ctx, parent, req.GetBindingId(), req.GetBinding(), c.Principal)
	resource := parent + "/bindings/" + req.GetBindingId()
	switch {
	case err == nil:
		resource = b.GetName()
	case req.GetBindingId() == "":
		resource = parent
	}
	s.auditChange(ctx, c, permBindingsCreate, resource, nil, b.GetEtag(), err)
	return b, s.apiErr(err)
}

func (p *policyService) GetBinding(ctx context.Context, req *aegisv1.GetBindingRequest) (*aegisv1.Binding, error) {
	return getNamed(ctx, p.s, req.GetName(), permBindingsGet, p.s.st.GetBinding, bindingShapes...)
}

func (p *policyService) ListBindings(ctx context.Context, req *aegisv1.ListBindingsRequest) (*aegisv1.ListBindingsResponse, error) {
	bs, next, err := listUnder(ctx, p.s, "parent", req.GetParent(), permBindingsList, req, bindingFilter, p.s.st.ListBindings, containerShapes...)
	if err != nil {
		return nil, err
	}
	return &aegisv1.ListBindingsResponse{Bindings: bs, NextPageToken: next}, nil
}

func (p *policyService) UpdateBinding(ctx context.Context, req *aegisv1.UpdateBindingRequest) (*aegisv1.Binding, error) {
	name := req.GetBinding().GetName()
	if err := checkName("binding.name", name, bindingShapes...); err != nil {
		return nil, err
	}
	plan, err := planMask(req.GetBinding(), req.GetUpdateMask(), bindingMask)
	if err != nil {
		return nil, err
	}
	s := p.s
	c, err := s.authorize(ctx, permBindingsUpdate, name)
	if err != nil {
		return nil, err
	}
	// The rule against escalation applies to the binding as it will be
	// stored (a condition dropped, an expiry moved), so it is checked in
	// the update, against the current record; a refusal is audited as
	// such, not again as a failed change.
	refused := false
	b, err := s.st.UpdateBinding(ctx, name, req.GetBinding().GetEtag(), func(next *aegisv1.Binding) error {
		if err := plan.apply(next); err != nil {
			return err
		}
		var err error
		refused, err = s.checkBind(ctx, c, containerOf(name), next)
		return err
	})
	if !refused {
		s.auditChange(ctx, c, permBindingsUpdate, name, plan.fieldMask(), b.GetEtag(), err)
	}
	return b, s.apiErr(err)
}

func (p *policyService) DeleteBinding(ctx context.Context, req *aegisv1.DeleteBindingRequest) (*emptypb.Empty, error) {
	name := req.GetName()
	if err := checkName("name", name, bindingShapes...); err != nil {
		return nil, err
	}
	s := p.s
	c, err := s.authorize(ctx, permBindingsDelete, name)
	if err != nil {
		return nil, err
	}
	err = s.st.DeleteBinding(ctx, name, req.GetEtag())
	s.auditChange(ctx, c, permBindingsDelete, name, nil, "", err)
	return empty(err, s)
}

// containerOf is the container ("system", an org or a project) that holds
// a binding.
func containerOf(binding string) string {
	c, _, _ := strings.Cut(binding, "/bindings/")
	return c
}
