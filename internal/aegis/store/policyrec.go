package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	aegisv1 "github.com/photoncloud/photoncloud/api/aegis/v1"
	"github.com/photoncloud/photoncloud/internal/aegis/policy"
)

// BuiltinRoleEtag is the etag of every built-in role (they never change).
const BuiltinRoleEtag = "0"

// ---- roles ----

func builtinRole(r policy.Role) *aegisv1.Role {
	return &aegisv1.Role{
		Name: "roles/" + r.Name, DisplayName: r.Title, Description: r.Description,
		Permissions: slices.Clone(r.Permissions), BuiltIn: true, Etag: BuiltinRoleEtag,
	}
}

func (s *Store) validateRole(name string, r *aegisv1.Role) error {
	if err := checkCommon(r.GetDisplayName(), r.GetDescription(), nil); err != nil {
		return err
	}
	if n := len(r.GetPermissions()); n > maxPermissions {
		return invalidf("%d permissions, more than %d", n, maxPermissions)
	}
	for _, p := range r.GetPermissions() {
		if err := policy.ValidatePermissionPattern(p); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidArgument, err)
		}
	}
	if err := s.eval.ValidateRole(policyRole(name, r)); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	return nil
}

// CreateRole creates the custom role parent/roles/{roleID} of an org.
func (s *Store) CreateRole(ctx context.Context, parent, roleID string, role *aegisv1.Role) (*aegisv1.Role, error) {
	if _, err := parseKind(parent, kindOrg); err != nil {
		return nil, err
	}
	if err := checkRoleID(roleID); err != nil {
		return nil, err
	}
	name := parent + "/roles/" + roleID
	r := cloneOr(role, &aegisv1.Role{})
	now := s.nowpb()
	r.Name, r.BuiltIn, r.CreateTime, r.UpdateTime = name, false, now, now
	if err := s.validateRole(name, r); err != nil {
		return nil, err
	}
	put, err := putRecord(kindRole, name, r)
	if err != nil {
		return nil, err
	}
	rev, err := s.retry(ctx, "create role", func() (*writeSpec, error) {
		return &writeSpec{
			mustExist:    []keyCheck{existsCheck(kindOrg, parent, fmt.Errorf("%w: org %q", ErrParentNotFound, parent))},
			mustNotExist: []keyCheck{existsCheck(kindRole, name, fmt.Errorf("%w: role %q", ErrAlreadyExists, name))},
			ops:          []clientv3.Op{put},
		}, nil
	})
	if err != nil {
		return nil, err
	}
	setEtag(r, rev)
	return r, nil
}

// GetRole returns a built-in role (roles/{role}) or a custom role.
func (s *Store) GetRole(name string) (*aegisv1.Role, error) {
	n, err := parseKind(name, kindRole)
	if err != nil {
		return nil, err
	}
	if n.builtin {
		for _, r := range policy.BuiltinRoles() {
			if r.Name == n.id {
				return builtinRole(r), nil
			}
		}
		return nil, notFoundf("role %q", clip(name))
	}
	return get[*aegisv1.Role](s, kindRole, name)
}

// ListRoles lists the built-in roles (parent "") or an org's custom roles,
// by name.
func (s *Store) ListRoles(parent string, opts ListOptions[*aegisv1.Role]) ([]*aegisv1.Role, string, error) {
	if parent != "" {
		if _, err := parseKind(parent, kindOrg); err != nil {
			return nil, "", err
		}
		return list(s, kindRole.key(parent+"/roles/"), opts)
	}
	size, err := opts.size()
	if err != nil {
		return nil, "", err
	}
	now := s.now()
	after, err := decodeToken(opts.PageToken, "roles/", opts.Filter, now)
	if err != nil {
		return nil, "", err
	}
	all := policy.BuiltinRoles()
	slices.SortFunc(all, func(a, b policy.Role) int { return strings.Compare(a.Name, b.Name) })
	var out []*aegisv1.Role
	for _, r := range all {
		if r.Name <= after && after != "" {
			continue
		}
		br := builtinRole(r)
		if opts.Match != nil && !opts.Match(br) {
			continue
		}
		if len(out) == size {
			return out, encodeToken("roles/", lastSegment(out[len(out)-1].Name), opts.Filter, now), nil
		}
		out = append(out, br)
	}
	return out, "", nil
}

// UpdateRole changes a custom role through fn (see UpdateOrg). Built-in
// roles are read-only (ErrFailedPrecondition).
func (s *Store) UpdateRole(ctx context.Context, name, etag string, fn func(*aegisv1.Role) error) (*aegisv1.Role, error) {
	n, err := parseKind(name, kindRole)
	if err != nil {
		return nil, err
	}
	if n.builtin {
		return nil, preconditionf("built-in role %q cannot be changed", name)
	}
	return update(ctx, s, kindRole, name, etag, func(cur, next *aegisv1.Role) (*writeSpec, error) {
		if err := fn(next); err != nil {
			return nil, err
		}
		next.Name, next.BuiltIn, next.CreateTime, next.UpdateTime = cur.Name, false, cur.CreateTime, s.nowpb()
		return nil, s.validateRole(name, next)
	})
}

// DeleteRole deletes a custom role. While bindings use it, it fails with
// ErrFailedPrecondition unless force is set, which deletes those bindings
// too.
func (s *Store) DeleteRole(ctx context.Context, name, etag string, force bool) error {
	n, err := parseKind(name, kindRole)
	if err != nil {
		return err
	}
	if n.builtin {
		return preconditionf("built-in role %q cannot be deleted", name)
	}
	return s.delete(ctx, kindRole, name, etag, force)
}

// ---- bindings ----

// checkBinding validates a binding to be stored in container c and fills
// in the defaults (scope, effect, expire_time from ttl). It returns the
// record keys the binding refers to.
func (s *Store) checkBinding(c container, b *aegisv1.Binding, now time.Time) (memberKey, roleKey string, err error) {
	mn, err := parseName(b.GetMember())
	if err != nil {
		return "", "", fmt.Errorf("member: %w", err)
	}
	switch mn.kind {
	case kindUser, kindServiceAccount, kindGroup:
	default:
		return "", "", invalidf("member %q is not a user, service account or group", clip(b.GetMember()))
	}
	if c.org != "" && mn.org != c.org {
		return "", "", invalidf("a binding in %q may only name members of orgs/%s", c.full, c.org)
	}
	rn, err := parseName(b.GetRole())
	if err != nil {
		return "", "", fmt.Errorf("role: %w", err)
	}
	switch {
	case rn.kind != kindRole:
		return "", "", invalidf("%q is not a role", clip(b.GetRole()))
	case rn.builtin && !policy.IsBuiltinRole(rn.id):
		return "", "", fmt.Errorf("%w: role %q", ErrParentNotFound, clip(b.GetRole()))
	case !rn.builtin && rn.org != c.org:
		return "", "", invalidf("custom role %q can only be used in bindings of orgs/%s", b.GetRole(), rn.org)
	}
	if b.Scope == "" {
		b.Scope = c.full
	}
	if _, err := policy.ParseResource(b.Scope); err != nil {
		return "", "", fmt.Errorf("%w: scope: %w", ErrInvalidArgument, err)
	}
	if c.full != "system" && b.Scope != c.full && !strings.HasPrefix(b.Scope, c.full+"/") {
		return "", "", invalidf("scope %q is not in %q", clip(b.Scope), c.full)
	}
	if c.project == "" && c.org != "" && strings.HasPrefix(b.Scope, c.full+"/projects/") {
		return "", "", invalidf("scope %q is in a project: bind it in the project", clip(b.Scope))
	}
	switch b.Effect {
	case aegisv1.Binding_EFFECT_UNSPECIFIED:
		b.Effect = aegisv1.Binding_EFFECT_ALLOW
	case aegisv1.Binding_EFFECT_ALLOW, aegisv1.Binding_EFFECT_DENY:
	default:
		return "", "", invalidf("unknown effect %v", b.Effect)
	}
	if cond := b.GetCondition(); cond != nil {
		if cond.GetExpression() == "" {
			return "", "", invalidf("a condition needs an expression")
		}
		if len(cond.GetExpression()) > maxConditionExpr {
			return "", "", invalidf("condition longer than %d characters", maxConditionExpr)
		}
		if err := checkText("condition title", cond.GetTitle(), maxConditionTitle); err != nil {
			return "", "", err
		}
		if err := checkText("condition description", cond.GetDescription(), maxDescription); err != nil {
			return "", "", err
		}
	}
	if ttl, ok := b.GetExpiration().(*aegisv1.Binding_Ttl); ok {
		d := ttl.Ttl.AsDuration()
		if d <= 0 || !ttl.Ttl.IsValid() {
			return "", "", invalidf("ttl must be positive")
		}
		b.Expiration = &aegisv1.Binding_ExpireTime{ExpireTime: timestamppb.New(now.Add(d))}
	}
	if err := checkText("description", b.GetDescription(), maxDescription); err != nil {
		return "", "", err
	}
	// The evaluator has the last word (condition compiles, role bindable
	// at the scope), so every stored binding is one every replica loads.
	if err := s.eval.ValidateBinding(policyBinding("b1", "users/check", b)); err != nil {
		return "", "", fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	memberKey = mn.kind.key(b.GetMember())
	if !rn.builtin {
		roleKey = kindRole.key(b.GetRole())
	}
	return memberKey, roleKey, nil
}

// CreateBinding creates parent/bindings/{bindingID} in a container
// (system, an org or a project); an empty bindingID is generated. creator
// is the calling principal, recorded as the binding's creator. The member,
// the container and a custom role must exist (ErrParentNotFound); a
// binding in an org or project may only name members of that org, and a
// custom role only in its org's bindings.
func (s *Store) CreateBinding(ctx context.Context, parent, bindingID string, binding *aegisv1.Binding, creator string) (*aegisv1.Binding, error) {
	c, err := parseContainer(parent, true)
	if err != nil {
		return nil, err
	}
	now := s.now()
	if bindingID == "" {
		bindingID = s.sortableID("b", now)
	}
	if err := checkLabel("binding id", bindingID); err != nil {
		return nil, err
	}
	name := parent + "/bindings/" + bindingID
	b := cloneOr(binding, &aegisv1.Binding{})
	b.Name, b.Creator, b.CreateTime, b.UpdateTime = name, creator, timestamppb.New(now), timestamppb.New(now)
	mkey, rkey, err := s.checkBinding(c, b, now)
	if err != nil {
		return nil, err
	}
	put, err := putRecord(kindBinding, name, b)
	if err != nil {
		return nil, err
	}
	spec := &writeSpec{
		mustNotExist: []keyCheck{existsCheck(kindBinding, name, fmt.Errorf("%w: binding %q", ErrAlreadyExists, name))},
		mustExist:    []keyCheck{{key: mkey, err: fmt.Errorf("%w: member %q", ErrParentNotFound, b.GetMember())}},
		ops:          []clientv3.Op{put, clientv3.OpPut(refKey(b.GetMember(), name), "")},
	}
	if k := c.key(); k != "" {
		spec.mustExist = append(spec.mustExist, keyCheck{key: k, err: fmt.Errorf("%w: %q", ErrParentNotFound, parent)})
	}
	if rkey != "" {
		spec.mustExist = append(spec.mustExist, keyCheck{key: rkey, err: fmt.Errorf("%w: role %q", ErrParentNotFound, b.GetRole())})
		spec.ops = append(spec.ops, clientv3.OpPut(refKey(b.GetRole(), name), ""))
	}
	rev, err := s.retry(ctx, "create binding", func() (*writeSpec, error) { return spec, nil })
	if err != nil {
		return nil, err
	}
	setEtag(b, rev)
	return b, nil
}

// GetBinding returns a binding from the index.
func (s *Store) GetBinding(name string) (*aegisv1.Binding, error) {
	return get[*aegisv1.Binding](s, kindBinding, name)
}

// ListBindings lists the bindings stored in a container (not those of its
// projects), by name.
func (s *Store) ListBindings(parent string, opts ListOptions[*aegisv1.Binding]) ([]*aegisv1.Binding, string, error) {
	if _, err := parseContainer(parent, true); err != nil {
		return nil, "", err
	}
	return list(s, kindBinding.key(parent+"/bindings/"), opts)
}

// UpdateBinding changes a binding's condition, expiry (expire_time or ttl)
// or description through fn (see UpdateOrg). Changing member, role, scope
// or effect is ErrInvalidArgument.
func (s *Store) UpdateBinding(ctx context.Context, name, etag string, fn func(*aegisv1.Binding) error) (*aegisv1.Binding, error) {
	n, err := parseKind(name, kindBinding)
	if err != nil {
		return nil, err
	}
	c, err := parseContainer(n.parent, true)
	if err != nil {
		return nil, err
	}
	return update(ctx, s, kindBinding, name, etag, func(cur, next *aegisv1.Binding) (*writeSpec, error) {
		if err := fn(next); err != nil {
			return nil, err
		}
		if next.Scope == "" {
			next.Scope = cur.Scope
		}
		if next.Effect == aegisv1.Binding_EFFECT_UNSPECIFIED {
			next.Effect = cur.Effect
		}
		if next.Member != cur.Member || next.Role != cur.Role || next.Scope != cur.Scope || next.Effect != cur.Effect {
			return nil, invalidf("a binding's member, role, scope and effect are immutable")
		}
		now := s.now()
		next.Name, next.Creator, next.CreateTime, next.UpdateTime = cur.Name, cur.Creator, cur.CreateTime, timestamppb.New(now)
		if proto.Equal(next.GetCondition(), &aegisv1.Condition{}) {
			next.Condition = nil
		}
		if _, _, err := s.checkBinding(c, next, now); err != nil {
			return nil, err
		}
		return nil, nil
	})
}

// DeleteBinding deletes a binding.
func (s *Store) DeleteBinding(ctx context.Context, name, etag string) error {
	if _, err := parseKind(name, kindBinding); err != nil {
		return err
	}
	return s.delete(ctx, kindBinding, name, etag, true)
}

// sweepLoop deletes bindings that expired more than ExpiredBindingGrace
// ago. Every replica runs it; the deletes are conditional on the binding's
// etag, so replicas never delete a binding that was just renewed.
func (s *Store) sweepLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.opts.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		if n, err := s.SweepExpiredBindings(s.ctx); err != nil && s.ctx.Err() == nil {
			s.lg.Warn("sweeping expired bindings failed", "deleted", n, "err", err)
		}
	}
}

// SweepExpiredBindings deletes the bindings that expired more than
// Options.ExpiredBindingGrace ago and returns how many it deleted. The
// Store runs it every SweepInterval on its own.
func (s *Store) SweepExpiredBindings(ctx context.Context) (int, error) {
	cutoff := s.now().Add(-s.opts.ExpiredBindingGrace)
	type victim struct{ name, etag string }
	var victims []victim
	s.ix.mu.RLock()
	s.ix.ascend(kindBinding.prefix(), "", func(e *entry) bool {
		if t := e.msg.(*aegisv1.Binding).GetExpireTime(); t != nil && t.AsTime().Before(cutoff) {
			victims = append(victims, victim{e.name, etagOf(e.mod)})
		}
		return true
	})
	s.ix.mu.RUnlock()
	n := 0
	for _, v := range victims {
		err := s.delete(ctx, kindBinding, v.name, v.etag, true)
		switch {
		case err == nil:
			n++
		case errors.Is(err, ErrNotFound) || errors.Is(err, ErrEtagMismatch):
			// Deleted or renewed meanwhile.
		default:
			return n, err
		}
	}
	return n, nil
}
