package server

import (
	"cmp"
	"context"
	"log/slog"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	aegisv1 "github.com/photoncloud/photoncloud/api/aegis/v1"
	"github.com/photoncloud/photoncloud/internal/aegis/policy"
	"github.com/photoncloud/photoncloud/internal/aegis/store"
)

// maxChecks bounds BatchAuthorize checks and TestPermissions permissions
// (authz.proto: at most 100).
const maxChecks = 100

type authzService struct {
	aegisv1.UnimplementedAuthzServiceServer
	s *Server
}

// validCheck returns INVALID_ARGUMENT for a malformed permission or
// resource, before any permission of the caller is checked on it, and
// the parsed resource for decide.
func validCheck(perm, resource string) (policy.Resource, error) {
	if err := validPermission(perm); err != nil {
		return policy.Resource{}, err
	}
	return validResource(resource)
}

func validPermission(perm string) error {
	if err := policy.ValidatePermission(perm); err != nil {
		return status.Errorf(codes.InvalidArgument, "permission %q: %v", clip(perm), err)
	}
	return nil
}

func validResource(resource string) (policy.Resource, error) {
	res, err := policy.ParseResource(resource)
	if err != nil {
		return policy.Resource{}, status.Errorf(codes.InvalidArgument, "resource %q: %v", clip(resource), err)
	}
	return res, nil
}

// subjectFor resolves the request's subject and, when it is someone else,
// checks that the caller may ask (aegis:authz:check on every resource).
func (s *Server) subjectFor(ctx context.Context, sj *aegisv1.Subject, resources ...string) (*Caller, *subject, string, error) {
	c, err := callerOf(ctx)
	if err != nil {
		return nil, nil, "", err
	}
	sub, other, unauth, err := s.resolveSubject(c, sj)
	if err != nil {
		return nil, nil, "", err
	}
	if other {
		seen := map[string]bool{}
		for _, r := range resources {
			if seen[r] {
				continue
			}
			seen[r] = true
			if err := s.check(ctx, c, permAuthzCheck, r); err != nil {
				return nil, nil, "", err
			}
		}
	}
	return c, sub, unauth, nil
}

// authzDecide is decide for AuthzService (perm and res validated by
// validCheck): a subject token that failed verification gives
// REASON_UNAUTHENTICATED; a denial is audited.
func (s *Server) authzDecide(ctx context.Context, c *Caller, sub *subject, unauth, perm string, res policy.Resource, labels map[string]string, sourceIP string) (*aegisv1.Decision, error) {
	resource := res.String()
	var d *aegisv1.Decision
	if unauth != "" {
		d = unauthDecision(sub, unauth)
		s.countDecision(sourceAuthz, false)
		s.lg.LogAttrs(ctx, slog.LevelDebug, "decision", slog.String("source", sourceAuthz),
			slog.String("permission", perm), slog.String("resource", resource), slog.Bool("allowed", false),
			slog.String("reason", d.Reason.String()), slog.String("detail", unauth))
	} else {
		var err error
		if d, err = s.decide(ctx, sourceAuthz, sub, perm, res, labels, sourceIP); err != nil {
			return nil, err
		}
	}
	if !d.Allowed {
		ev := s.newEvent(ctx, c, aegisv1.AuditEvent_KIND_ACCESS_DENIED, perm, resource)
		ev.Decision = d
		ev.StatusCode = codeName(codes.PermissionDenied)
		ev.StatusMessage = d.Message
		if d.Principal != c.Principal {
			// Found by principal queries about the subject, not only
			// about the service that asked.
			ev.AttemptedPrincipal = d.Principal
		}
		s.audit.enqueue(ev)
	}
	return d, nil
}

func (a *authzService) Authorize(ctx context.Context, req *aegisv1.AuthorizeRequest) (*aegisv1.AuthorizeResponse, error) {
	res, err := validCheck(req.GetPermission(), req.GetResource())
	if err != nil {
		return nil, err
	}
	s := a.s
	c, sub, unauth, err := s.subjectFor(ctx, req.GetSubject(), req.GetResource())
	if err != nil {
		return nil, err
	}
	d, err := s.authzDecide(ctx, c, sub, unauth, req.GetPermission(), res, req.GetResourceLabels(), req.GetSourceIp())
	if err != nil {
		return nil, err
	}
	return &aegisv1.AuthorizeResponse{Decision: d}, nil
}

// BatchAuthorize validates every check before it decides any, so that a
// malformed check fails the call without partial audit records.
func (a *authzService) BatchAuthorize(ctx context.Context, req *aegisv1.BatchAuthorizeRequest) (*aegisv1.BatchAuthorizeResponse, error) {
	checks := req.GetChecks()
	if len(checks) > maxChecks {
		return nil, status.Errorf(codes.InvalidArgument, "at most %d checks, got %d", maxChecks, len(checks))
	}
	resources := make([]string, len(checks))
	parsed := make([]policy.Resource, len(checks))
	for i, ch := range checks {
		var err error
		if parsed[i], err = validCheck(ch.GetPermission(), ch.GetResource()); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "checks[%d]: %s", i, status.Convert(err).Message())
		}
		resources[i] = ch.GetResource()
	}
	s := a.s
	c, sub, unauth, err := s.subjectFor(ctx, req.GetSubject(), resources...)
	if err != nil {
		return nil, err
	}
	out := &aegisv1.BatchAuthorizeResponse{Decisions: make([]*aegisv1.Decision, len(checks))}
	for i, ch := range checks {
		d, err := s.authzDecide(ctx, c, sub, unauth, ch.GetPermission(), parsed[i], ch.GetResourceLabels(), req.GetSourceIp())
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "checks[%d]: %s", i, status.Convert(err).Message())
		}
		out.Decisions[i] = d
	}
	return out, nil
}

// TestPermissions answers "which of these may the subject do here". Its
// negative answers are not audited: it is a question asked to draw a user
// interface, not an attempt to do anything.
func (a *authzService) TestPermissions(ctx context.Context, req *aegisv1.TestPermissionsRequest) (*aegisv1.TestPermissionsResponse, error) {
	perms := req.GetPermissions()
	if len(perms) > maxChecks {
		return nil, status.Errorf(codes.InvalidArgument, "at most %d permissions, got %d", maxChecks, len(perms))
	}
	// The resource is parsed once, after the first permission, so that
	// errors come in the order validCheck gives them.
	var res policy.Resource
	for i, p := range perms {
		if err := validPermission(p); err != nil {
			return nil, err
		}
		if i == 0 {
			var err error
			if res, err = validResource(req.GetResource()); err != nil {
				return nil, err
			}
		}
	}
	s := a.s
	_, sub, unauth, err := s.subjectFor(ctx, req.GetSubject(), req.GetResource())
	if err != nil {
		return nil, err
	}
	out := &aegisv1.TestPermissionsResponse{}
	if unauth != "" || sub.policy == "" || len(perms) == 0 {
		return out, nil
	}
	var cand []string
	for _, p := range perms {
		if sub.restriction(p, req.GetResource()) == "" {
			cand = append(cand, p)
		}
	}
	if len(cand) == 0 {
		return out, nil
	}
	org, labels := s.scopeOf(res, req.GetResourceLabels())
	if org.OrgState == aegisv1.Org_STATE_SUSPENDED {
		// Only system-scope bindings count in a suspended org, which
		// TestPermissions cannot tell: decide one by one.
		seen := map[string]bool{}
		for _, p := range cand {
			d, err := s.decide(ctx, sourceAuthz, sub, p, res, labels, req.GetSourceIp())
			if err != nil {
				return nil, err
			}
			if d.Allowed && !seen[p] {
				seen[p] = true
				out.Permissions = append(out.Permissions, p)
			}
		}
		return out, nil
	}
	got, err := s.eval.TestPermissions(ctx, policy.Request{Principal: sub.policy, Resource: req.GetResource(),
		ResourceLabels: labels, SourceIP: req.GetSourceIp(), Time: s.now()}, cand)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "%v", err)
	}
	out.Permissions = got
	return out, nil
}

// LookupPrincipals lists who holds a permission on a resource, from the
// allow and deny bindings at the resource and its ancestors: one entry per
// (principal, granting binding), leaving out members an unconditional
// deny always overrides, and marking grants that depend on a condition.
func (a *authzService) LookupPrincipals(ctx context.Context, req *aegisv1.LookupPrincipalsRequest) (*aegisv1.LookupPrincipalsResponse, error) {
	if _, err := validCheck(req.GetPermission(), req.GetResource()); err != nil {
		return nil, err
	}
	size, err := pageSize(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	s := a.s
	now := s.now()
	where := queryHash("lookup", req.GetResource(), req.GetPermission(), boolStr(req.GetExpandGroups()))
	after, err := decodePageToken(req.GetPageToken(), where, now)
	if err != nil {
		return nil, err
	}
	if _, err := s.authorize(ctx, permBindingsList, req.GetResource()); err != nil {
		return nil, err
	}
	// Limit 1: the evaluated principal list of WhoCan is not used here
	// (conditional grants must be listed too), only its binding lists.
	wc, err := s.eval.WhoCan(ctx, policy.WhoCanRequest{Permission: req.GetPermission(), Resource: req.GetResource(),
		Time: now, Limit: 1})
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "%v", err)
	}
	entries := s.lookupEntries(wc, req.GetExpandGroups())
	key := func(e *aegisv1.PrincipalAccess) string {
		return e.GetPrincipal() + "\x00" + e.GetBinding() + "\x00" + e.GetViaGroup()
	}
	slices.SortFunc(entries, func(x, y *aegisv1.PrincipalAccess) int { return cmp.Compare(key(x), key(y)) })
	start := 0
	if after != "" {
		start, _ = slices.BinarySearchFunc(entries, after, func(e *aegisv1.PrincipalAccess, k string) int {
			return cmp.Compare(key(e), k)
		})
		if start < len(entries) && key(entries[start]) == after {
			start++
		}
	}
	out := &aegisv1.LookupPrincipalsResponse{}
	end := min(start+size, len(entries))
	out.Principals = entries[start:end]
	if end < len(entries) {
		out.NextPageToken = encodePageToken(where, key(entries[end-1]), now)
	}
	return out, nil
}

func boolStr(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// lookupEntries turns WhoCan's grants into API entries.
func (s *Server) lookupEntries(wc policy.WhoCanResult, expand bool) []*aegisv1.PrincipalAccess {
	var out []*aegisv1.PrincipalAccess
	add := func(g policy.Grant, pol, via string) {
		// A deny applies to pol if it names pol or (for a user or service
		// account) a group pol is in.
		subjects := []string{pol}
		if !strings.HasPrefix(pol, "groups/") {
			for _, grp := range s.eval.GroupsOf(pol) {
				if _, ok := s.eval.Group(grp); ok {
					subjects = append(subjects, grp)
				}
			}
		}
		conditional := g.Conditional
		for _, d := range wc.Denies {
			if !slices.Contains(subjects, d.Subject) {
				continue
			}
			if !d.Conditional {
				return // always overridden
			}
			conditional = true
		}
		name, ok := s.st.PrincipalName(pol)
		if !ok {
			return
		}
		e := &aegisv1.PrincipalAccess{
			Principal: name, PrincipalKind: principalKind(pol), ViaGroup: via,
			Binding: g.BindingID, Role: store.RoleName(g.Role), Scope: g.Scope, Conditional: conditional,
		}
		if n, ok := s.st.BindingName(g.BindingID); ok {
			e.Binding = n
		}
		if !g.ExpireTime.IsZero() {
			e.ExpireTime = timestamppb.New(g.ExpireTime)
		}
		out = append(out, e)
	}
	for _, g := range wc.Allows {
		if !strings.HasPrefix(g.Subject, "groups/") {
			if p, ok := s.eval.Principal(g.Subject); ok && !p.Disabled {
				add(g, g.Subject, "")
			}
			continue
		}
		if _, ok := s.eval.Group(g.Subject); !ok {
			continue
		}
		if !expand {
			add(g, g.Subject, "")
			continue
		}
		group, ok := s.st.PrincipalName(g.Subject)
		if !ok {
			continue
		}
		members := listAll(func(o store.ListOptions[*aegisv1.GroupMember]) ([]*aegisv1.GroupMember, string, error) {
			return s.st.ListGroupMembers(group, o)
		})
		for _, m := range members {
			pol, err := s.st.PolicyPrincipal(m.GetMember())
			if err != nil {
				continue
			}
			if p, ok := s.eval.Principal(pol); ok && !p.Disabled {
				add(g, pol, group)
			}
		}
	}
	return out
}

func principalKind(pol string) aegisv1.PrincipalKind {
	switch {
	case strings.HasPrefix(pol, "users/"):
		return aegisv1.PrincipalKind_PRINCIPAL_KIND_USER
	case strings.HasPrefix(pol, "serviceAccounts/"):
		return aegisv1.PrincipalKind_PRINCIPAL_KIND_SERVICE_ACCOUNT
	case strings.HasPrefix(pol, "groups/"):
		return aegisv1.PrincipalKind_PRINCIPAL_KIND_GROUP
	}
	return aegisv1.PrincipalKind_PRINCIPAL_KIND_UNSPECIFIED
}
