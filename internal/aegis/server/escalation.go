package server

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	aegisv1 "github.com/photoncloud/photoncloud/api/aegis/v1"
	"github.com/photoncloud/photoncloud/internal/aegis/policy"
	"github.com/photoncloud/photoncloud/internal/aegis/store"
)

// Anti-escalation (policy.proto, CreateBinding): aegis:bindings:create on
// a container says who may manage the bindings there, not which roles they
// may hand out. Without a further rule, anyone who may create bindings in
// a project could bind themselves (or an accomplice) any role there, and
// so gain every permission any role holds. As in Kubernetes RBAC, creating
// or updating a binding of role R at scope S therefore also needs either
// aegis:roles:bind at S, which the built-in admin roles hold, or that the
// caller already holds every permission of R at S.
//
// "Holds" is decided conservatively, from the same evaluator state that
// makes decisions, but not with one decision per permission: a role's
// permissions are patterns ("flashdns:*:*" also covers permissions no
// service checks yet), so each must be subsumed by a pattern of a role the
// caller is bound to. Only allow bindings that need no condition count, and
// only if they last at least as long as the new binding; any deny of the
// caller that could touch the permission counts against it, whatever its
// condition, since a condition true at another time or from another
// address would take the permission away.
//
// The rule covers deny bindings too: taking a role's permissions away from
// someone is as much the business of the permissions' holders as granting
// them.

// checkBind applies the anti-escalation rule to binding b (role, scope,
// expiry as they will be stored) in container, for caller c. A refusal
// is audited (audited is set) and answered PERMISSION_DENIED (NOT_FOUND
// outside the caller's tenant) naming a permission the caller lacks; the
// caller writes nothing then.
func (s *Server) checkBind(ctx context.Context, c *Caller, container string, b *aegisv1.Binding) (audited bool, err error) {
	scope := b.GetScope()
	if scope == "" {
		scope = container
	}
	// The store checks these too, but the checks below need a scope
	// that is a policy resource inside the container: outside it, they
	// would be asked about a place where the binding can never apply.
	res, err := policy.ParseResource(scope)
	if err != nil {
		return false, status.Errorf(codes.InvalidArgument, "binding.scope %q: %v", clip(scope), err)
	}
	if !within(scope, container) {
		return false, status.Errorf(codes.InvalidArgument, "binding.scope %q is not in %q", clip(scope), container)
	}
	ok, d, err := s.allowed(ctx, c, permRolesBind, scope)
	if err != nil || ok {
		return false, err
	}
	role := b.GetRole()
	// Custom roles are looked up only in the container's own org (as the
	// store requires), so that the answer says nothing about another
	// org's roles.
	if org := policy.OrgOf(role); org != "" && org != policy.OrgOf(container) {
		return false, status.Errorf(codes.InvalidArgument, "custom role %q can only be used in bindings of orgs/%s", clip(role), org)
	}
	r, found := s.eval.Role(strings.TrimPrefix(role, "roles/"))
	if !found {
		return false, status.Errorf(codes.NotFound, "role %q not found", clip(role))
	}
	missing := s.missingPermission(c, r.Permissions, res, s.bindingEnd(b))
	if missing == "" {
		return false, nil
	}
	return true, s.refuseEscalation(ctx, c, scope, d, missing,
		fmt.Sprintf("binding %s at %s needs %s there, or every permission of the role", role, scope, permRolesBind))
}

// checkGrant applies the rule to a change that grants perms (role
// permission patterns) at scope until end (zero: forever) to someone:
// aegis:roles:bind at scope, or holding every one of perms there. need
// says what the change needs, for the refusal, which is as checkBind's.
func (s *Server) checkGrant(ctx context.Context, c *Caller, scope string, perms []string, end time.Time, need string) (audited bool, err error) {
	if len(perms) == 0 {
		return false, nil
	}
	res, err := policy.ParseResource(scope)
	if err != nil {
		// Scopes come from the evaluator or from validated names.
		s.lg.Error("escalation check on an invalid scope", "scope", scope, "err", err)
		return false, status.Error(codes.Internal, "internal error")
	}
	ok, d, err := s.allowed(ctx, c, permRolesBind, scope)
	if err != nil || ok {
		return false, err
	}
	missing := s.missingPermission(c, perms, res, end)
	if missing == "" {
		return false, nil
	}
	return true, s.refuseEscalation(ctx, c, scope, d, missing, need)
}

// refuseEscalation audits a refusal of the rule at scope (d: the decision
// on aegis:roles:bind there) and returns the caller's answer:
// PERMISSION_DENIED saying what the change needs and which permission the
// caller lacks, or NOT_FOUND for a scope the caller may not know exists.
func (s *Server) refuseEscalation(ctx context.Context, c *Caller, scope string, d *aegisv1.Decision, missing, need string) error {
	code := codes.PermissionDenied
	msg := fmt.Sprintf("%s: %s does not hold %s (without condition) at %s", need, c.Principal, missing, scope)
	if s.hidden(ctx, c, scope) {
		code, msg = codes.NotFound, fmt.Sprintf("%s not found", scope)
	}
	s.auditDenied(ctx, c, permRolesBind, scope, d, code, msg)
	return status.Error(code, msg)
}

// Widening a role (UpdateRole) widens every binding of it at once, so
// adding permissions to custom role R of org O is held to the same rule,
// once for all of them (Kubernetes' "escalate" verb): aegis:roles:bind at
// orgs/O, or holding every added permission at orgs/O (where R's bindings
// all are, or below) forever, since a role change does not expire.
// Removing permissions needs nothing more than aegis:roles:update, as
// deleting a binding needs nothing more than aegis:bindings:delete.

// checkRoleUpdate applies the rule to custom role name changing from the
// permissions before to after, as they will be stored.
func (s *Server) checkRoleUpdate(ctx context.Context, c *Caller, name string, before, after []string) (audited bool, err error) {
	var added []string
	for _, p := range after {
		// A pattern the role already covers ("plasmavmc:vms:get" under
		// "plasmavmc:*:*") widens nothing. Invalid patterns are left to
		// the store, which rejects the update right after this check.
		if policy.ValidatePermissionPattern(p) != nil ||
			slices.ContainsFunc(before, func(b string) bool { return permissionCovers(b, p) }) {
			continue
		}
		added = append(added, p)
	}
	scope := "orgs/" + policy.OrgOf(name)
	return s.checkGrant(ctx, c, scope, added, time.Time{},
		fmt.Sprintf("adding permissions to role %s needs %s at %s, or every added permission", name, permRolesBind, scope))
}

// A new member of a group gets every allow binding of the group, so adding
// one is held to the rule once per binding, as if the caller created the
// binding for the member: aegis:roles:bind at its scope, or holding every
// permission of its role there for as long as the binding lasts. The
// group's deny bindings only take permissions away from the new member,
// and removing members needs nothing more than aegis:groups:update, as
// deleting a binding needs nothing more than aegis:bindings:delete.
//
// The group's bindings are the evaluator's, like everything the rule
// reads. A binding of the group created after the check is no gap: its
// maker was checked for it, and it applies to every member alike.

// checkGroupMember applies the rule to adding a member to group (an API
// name the caller may update). A refusal is audited.
func (s *Server) checkGroupMember(ctx context.Context, c *Caller, group string) error {
	sub, err := s.st.PolicyPrincipal(group)
	if err != nil {
		return nil // no such group: the store answers NOT_FOUND
	}
	_, err = s.checkBindingsOf(ctx, c, []string{sub}, func(b policy.Binding, name string) string {
		return fmt.Sprintf("adding a member to group %s needs, for its binding %s of %s at %s, %s there, or every permission of the role",
			group, name, store.RoleName(b.Role), b.Scope, permRolesBind)
	})
	return err
}

// Some operations let their caller act as another principal P: setting
// the password of a user other than oneself (and then signing in with
// it), linking a federated identity to a user (and signing in through
// it), creating a key of a service account or binding a client
// certificate to one (and asking for its tokens). Such an operation is
// worth every allow binding P holds, its own and its groups', so it is
// held to the rule once per binding, exactly as adding P to a group of
// those bindings would be: aegis:roles:bind at the binding's scope, or
// holding every permission of its role there for as long as it lasts.
// Without this, aegis:users:setPassword on an org's users would be worth
// OrgAdmin to whoever holds it, as soon as one user of the org is an
// OrgAdmin. The built-in admin roles hold aegis:roles:bind, so they keep
// working on anyone they administer; a user admin without it keeps
// working on users who hold no more than it does.
//
// P's conditions do not lower the bar (a grant of P under a condition is
// P's whenever it holds), and P's deny bindings only take away, as for a
// group. A disabled P is checked too: enabling it again is a plain
// update. P's bindings are the evaluator's, like everything the rule
// reads: a binding of P created after the check was checked for its own
// maker, as for a group.

// checkActAs applies the rule to an operation, described by what ("setting
// the password of orgs/acme/users/bob"), that lets caller c act as
// principal (the API name of a user or service account, which c may
// administer). A refusal is audited (audited is set); the caller writes
// nothing then.
func (s *Server) checkActAs(ctx context.Context, c *Caller, principal, what string) (audited bool, err error) {
	sub, err := s.st.PolicyPrincipal(principal)
	if err != nil {
		return false, nil // no such principal: the store answers NOT_FOUND
	}
	// Every membership record counts, whether or not the group exists:
	// a group that does not exist has no bindings, so this only costs a
	// lookup, and it cannot be wrong in the caller's favour.
	subjects := append([]string{sub}, s.eval.GroupsOf(sub)...)
	return s.checkBindingsOf(ctx, c, subjects, func(b policy.Binding, name string) string {
		which := fmt.Sprintf("its binding %s of %s at %s", name, store.RoleName(b.Role), b.Scope)
		if b.Subject != sub {
			g, ok := s.st.PrincipalName(b.Subject)
			if !ok {
				g = b.Subject
			}
			which = fmt.Sprintf("the binding %s of %s at %s (of its group %s)", name, store.RoleName(b.Role), b.Scope, g)
		}
		return fmt.Sprintf("%s needs, for %s, %s there, or every permission of the role", what, which, permRolesBind)
	})
}

// checkBindingsOf applies the rule (checkGrant) to every unexpired allow
// binding of subjects (evaluator names), as if the caller created it:
// need describes, for a binding and its API name, what the change needs.
// The first refusal ends the check, audited.
func (s *Server) checkBindingsOf(ctx context.Context, c *Caller, subjects []string, need func(b policy.Binding, name string) string) (audited bool, err error) {
	now := s.now()
	for _, sub := range subjects {
		for _, b := range s.eval.BindingsOf(sub) {
			if b.Effect != policy.EffectAllow || (!b.ExpireTime.IsZero() && !now.Before(b.ExpireTime)) {
				continue
			}
			r, found := s.eval.Role(b.Role)
			if !found {
				// An allow binding of a missing role grants nothing, and
				// the store deletes a role's bindings with it.
				continue
			}
			name := b.ID
			if n, ok := s.st.BindingName(b.ID); ok {
				name = n
			}
			if audited, err := s.checkGrant(ctx, c, b.Scope, r.Permissions, b.ExpireTime, need(b, name)); err != nil {
				return audited, err
			}
		}
	}
	return false, nil
}

// bindingEnd is when b stops applying (zero: never). A ttl counts from
// now, as the store will convert it.
func (s *Server) bindingEnd(b *aegisv1.Binding) time.Time {
	switch e := b.GetExpiration().(type) {
	case *aegisv1.Binding_ExpireTime:
		return e.ExpireTime.AsTime()
	case *aegisv1.Binding_Ttl:
		return s.now().Add(e.Ttl.AsDuration())
	}
	return time.Time{}
}

// missingPermission returns the first of perms (role permission patterns)
// that c does not hold at res until end (zero: forever), or "" when it
// holds them all (see the rule above).
func (s *Server) missingPermission(c *Caller, perms []string, res policy.Resource, end time.Time) string {
	if len(perms) == 0 {
		return ""
	}
	// The credential's downscoping applies as in every decision.
	if c.Project != "" && !within(res.String(), c.Project) {
		return perms[0]
	}
	for _, p := range perms {
		if len(c.Permissions) > 0 && !slices.ContainsFunc(c.Permissions, func(t string) bool { return permissionCovers(t, p) }) {
			return p
		}
	}
	allows, denies, denyAll := s.heldPatterns(c, res, end)
	if denyAll {
		return perms[0]
	}
	for _, p := range perms {
		if !slices.ContainsFunc(allows, func(a string) bool { return permissionCovers(a, p) }) ||
			slices.ContainsFunc(denies, func(d string) bool { return patternsOverlap(d, p) }) {
			return p
		}
	}
	return ""
}

// heldPatterns collects, from the caller's bindings (its own and its
// existing groups') at res and its ancestors, the permission patterns of
// the allow bindings that count and those of every deny binding. denyAll
// is set by a deny naming a missing role (which denies everything) and for
// a principal the evaluator does not know or has disabled.
func (s *Server) heldPatterns(c *Caller, res policy.Resource, end time.Time) (allows, denies []string, denyAll bool) {
	p, ok := s.eval.Principal(c.PolicyPrincipal)
	if c.PolicyPrincipal == "" || !ok || p.Disabled {
		return nil, nil, true
	}
	subjects := []string{c.PolicyPrincipal}
	for _, g := range s.eval.GroupsOf(c.PolicyPrincipal) {
		if _, ok := s.eval.Group(g); ok {
			subjects = append(subjects, g)
		}
	}
	// In a suspended org only the bindings of the system container
	// grant anything (see decide).
	suspended := false
	if org := res.Org(); org != "" {
		suspended = s.st.OrgFacts("orgs/"+org).OrgState == aegisv1.Org_STATE_SUSPENDED
	}
	now := s.now()
	for _, scope := range res.Ancestors() {
		for _, b := range s.eval.BindingsAt(scope) {
			if !slices.Contains(subjects, b.Subject) || (!b.ExpireTime.IsZero() && !now.Before(b.ExpireTime)) {
				continue
			}
			r, found := s.eval.Role(b.Role)
			if b.Effect == policy.EffectDeny {
				if !found {
					return nil, nil, true
				}
				denies = append(denies, r.Permissions...)
				continue
			}
			if !found || b.Condition != "" || !outlasts(b.ExpireTime, end) {
				continue
			}
			if suspended {
				if name, ok := s.st.BindingName(b.ID); !ok || !strings.HasPrefix(name, "system/") {
					continue
				}
			}
			allows = append(allows, r.Permissions...)
		}
	}
	return allows, denies, false
}

// outlasts reports whether a grant ending at held (zero: never) lasts at
// least until end (zero: never).
func outlasts(held, end time.Time) bool {
	return held.IsZero() || (!end.IsZero() && !held.Before(end))
}

// patternsOverlap reports whether two permission patterns match some
// permission in common: segment by segment, equal or either one "*".
func patternsOverlap(a, b string) bool {
	as, bs := strings.Split(a, ":"), strings.Split(b, ":")
	if len(as) != 3 || len(bs) != 3 {
		return true // not a pattern: assume the worst
	}
	for i := range as {
		if as[i] != "*" && bs[i] != "*" && as[i] != bs[i] {
			return false
		}
	}
	return true
}
