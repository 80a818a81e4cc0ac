package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	aegisv1 "github.com/photoncloud/photoncloud/api/aegis/v1"
	"github.com/photoncloud/photoncloud/internal/aegis/policy"
	"github.com/photoncloud/photoncloud/internal/aegis/store"
	"github.com/photoncloud/photoncloud/internal/aegis/token"
)

// maxCacheTTL bounds Decision.cache_ttl: a binding change must be enforced
// within a second, including by the decision caches of other services.
const maxCacheTTL = time.Second

// Decision sources, for metrics and logs.
const (
	sourceAdmin = "admin"
	sourceAuthz = "authz"
)

// subject is whose access a decision is about, with the restrictions of
// the credential it was presented with.
type subject struct {
	// principal is the API name; "" when no principal could be resolved.
	principal string
	// policy is the evaluator's name; "" if the principal does not exist.
	policy string
	// project and permissions are the token's restrictions.
	project     string
	permissions []string
	// expiresAt is when the credential ends (zero: not bounded).
	expiresAt time.Time
}

func (c *Caller) subject() *subject {
	return &subject{principal: c.Principal, policy: c.PolicyPrincipal, project: c.Project,
		permissions: c.Permissions, expiresAt: c.expiresAt()}
}

// permissionCovers reports whether a permission pattern (segments may be
// "*") allows perm: a concrete permission, or a pattern, which it covers
// when it allows every permission the pattern matches (a "*" of perm only
// under a "*" of pattern; see escalation.go).
func permissionCovers(pattern, perm string) bool {
	ps, cs := strings.Split(pattern, ":"), strings.Split(perm, ":")
	if len(ps) != 3 || len(cs) != 3 {
		return false
	}
	for i := range ps {
		if ps[i] != "*" && ps[i] != cs[i] {
			return false
		}
	}
	return true
}

// restriction returns why the credential's downscoping excludes perm on
// resource, or "".
func (sub *subject) restriction(perm, resource string) string {
	if sub.project != "" && !within(resource, sub.project) {
		return "the token is restricted to " + sub.project
	}
	if len(sub.permissions) > 0 {
		for _, p := range sub.permissions {
			if permissionCovers(p, perm) {
				return ""
			}
		}
		return "the token is restricted to permissions that exclude " + perm
	}
	return ""
}

// decideUnchecked is decide for a permission and resource nobody has
// validated yet. The error is INVALID_ARGUMENT for a malformed one.
func (s *Server) decideUnchecked(ctx context.Context, source string, sub *subject, perm, resource string, labels map[string]string, sourceIP string) (*aegisv1.Decision, error) {
	if err := policy.ValidatePermission(perm); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "permission: %v", err)
	}
	res, err := policy.ParseResource(resource)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "resource: %v", err)
	}
	return s.decide(ctx, source, sub, perm, res, labels, sourceIP)
}

// decide makes one decision for sub about perm on res. perm must be valid
// (policy.ValidatePermission) and res is what the caller parsed: the
// AuthzService methods validate a request before anything else, so
// validating here again was work done twice on every decision. Callers
// with unvalidated input use decideUnchecked. The error is
// INVALID_ARGUMENT for a malformed label or address; a denial is a
// Decision, not an error.
func (s *Server) decide(ctx context.Context, source string, sub *subject, perm string, res policy.Resource, labels map[string]string, sourceIP string) (*aegisv1.Decision, error) {
	resource := res.String()
	now := s.now()
	d := &aegisv1.Decision{Principal: sub.principal}
	var pd policy.Decision
	why := sub.restriction(perm, resource)
	switch {
	case sub.policy == "":
		d.Reason = aegisv1.Decision_REASON_PRINCIPAL_INACTIVE
		d.Message = "principal " + sub.principal + " does not exist"
	case why != "":
		d.Reason = aegisv1.Decision_REASON_TOKEN_RESTRICTED
		d.Message = why
		d.CacheTtl = durationpb.New(s.boundTTL(maxCacheTTL, sub, now))
	default:
		var org store.ScopeFacts
		var err error
		org, labels = s.scopeOf(res, labels)
		pd, err = s.eval.Authorize(ctx, policy.Request{
			Principal: sub.policy, Permission: perm, Resource: resource,
			ResourceLabels: labels, SourceIP: sourceIP, Time: now,
		})
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "%v", err)
		}
		s.fillDecision(d, sub, pd, now)
		if d.Allowed && org.OrgState == aegisv1.Org_STATE_SUSPENDED && !strings.HasPrefix(d.Binding, "system/") {
			// A suspended org's resources are reachable only through
			// bindings at the system level (orgs.proto, Org.State):
			// those stored in the system container, the operators'.
			d.Allowed, d.Reason, d.CacheTtl = false, aegisv1.Decision_REASON_NO_ALLOW_BINDING, nil
			d.Message = "org orgs/" + res.Org() + " is suspended: only bindings of the system container apply"
		}
	}
	s.countDecision(source, d.Allowed)
	if s.lg.Enabled(ctx, slog.LevelDebug) {
		method, _ := methodOf(ctx)
		s.lg.LogAttrs(ctx, slog.LevelDebug, "decision",
			slog.String("source", source), slog.String("method", method),
			slog.String("principal", sub.principal), slog.String("permission", perm),
			slog.String("resource", resource), slog.Bool("allowed", d.Allowed),
			slog.String("reason", d.Reason.String()), slog.String("binding", d.Binding),
			slog.String("detail", pd.Detail), slog.Int64("policy_revision", pd.Revision))
	}
	return d, nil
}

// scopeOf returns what a decision on res needs to know of its org, and
// the labels conditions see: the request's, or when it gives none the
// stored labels of an Aegis org or project resource.
func (s *Server) scopeOf(res policy.Resource, labels map[string]string) (store.ScopeFacts, map[string]string) {
	var org store.ScopeFacts
	if res.Org() != "" {
		org = s.st.OrgFacts("orgs/" + res.Org())
	}
	if len(labels) == 0 {
		switch res.Level() {
		case policy.LevelOrg:
			labels = org.Labels
		case policy.LevelProject:
			labels = s.st.ProjectLabels(res.String())
		}
	}
	return org, labels
}

// fillDecision translates an evaluator decision into API names.
func (s *Server) fillDecision(d *aegisv1.Decision, sub *subject, pd policy.Decision, now time.Time) {
	d.Allowed = pd.Allowed
	switch pd.Reason {
	case policy.ReasonAllowed:
		d.Reason = aegisv1.Decision_REASON_ALLOWED
	case policy.ReasonDenied:
		d.Reason = aegisv1.Decision_REASON_DENIED_BY_BINDING
	case policy.ReasonUnknownPrincipal, policy.ReasonPrincipalDisabled:
		d.Reason = aegisv1.Decision_REASON_PRINCIPAL_INACTIVE
	default:
		d.Reason = aegisv1.Decision_REASON_NO_ALLOW_BINDING
	}
	if pd.BindingID != "" {
		d.Binding = pd.BindingID
		if n, ok := s.st.BindingName(pd.BindingID); ok {
			d.Binding = n
		}
		d.Role = store.RoleName(pd.Role)
		d.Scope = pd.Scope
		d.Member = pd.Subject
		if n, ok := s.st.PrincipalName(pd.Subject); ok {
			d.Member = n
		}
	}
	if strings.Contains(pd.Detail, "failed to evaluate") {
		d.ConditionError = pd.Detail
	}
	switch d.Reason {
	case aegisv1.Decision_REASON_ALLOWED:
		d.Message = "allowed by " + d.Binding + " (" + d.Role + " at " + d.Scope + " for " + d.Member + ")"
	case aegisv1.Decision_REASON_DENIED_BY_BINDING:
		d.Message = "denied by " + d.Binding + " (" + d.Role + " at " + d.Scope + " for " + d.Member + ")"
	case aegisv1.Decision_REASON_PRINCIPAL_INACTIVE:
		d.Message = "principal " + sub.principal + " does not exist or is disabled"
	default:
		d.Message = "no allow binding applies"
	}
	if pd.Detail != "" {
		d.Message += ": " + pd.Detail
	}
	if ttl := s.cacheTTL(sub, pd, now); ttl > 0 {
		d.CacheTtl = durationpb.New(ttl)
	}
}

// cacheTTL is how long a decision stays true: at most a second, zero when
// a condition bore on it (it may depend on the time or the address),
// bounded by the expiry of the deciding binding and of the credential.
func (s *Server) cacheTTL(sub *subject, pd policy.Decision, now time.Time) time.Duration {
	if pd.Detail != "" || pd.Reason == policy.ReasonInvalidRequest {
		return 0
	}
	ttl := maxCacheTTL
	if pd.BindingID != "" {
		b, ok := s.eval.Binding(pd.BindingID)
		if !ok || b.Condition != "" {
			return 0
		}
		if !b.ExpireTime.IsZero() {
			ttl = min(ttl, b.ExpireTime.Sub(now))
		}
	}
	return s.boundTTL(ttl, sub, now)
}

func (s *Server) boundTTL(ttl time.Duration, sub *subject, now time.Time) time.Duration {
	if !sub.expiresAt.IsZero() {
		ttl = min(ttl, sub.expiresAt.Sub(now))
	}
	return max(ttl, 0)
}

func (s *Server) countDecision(source string, allowed bool) {
	a := "false"
	if allowed {
		a = "true"
	}
	s.m.decisions.WithLabelValues(source, a).Inc()
}

// authorize checks that the caller of ctx may use perm on the API name
// (see authzResource), and returns the caller. A denial is audited and
// answered NOT_FOUND or PERMISSION_DENIED (see hidden).
func (s *Server) authorize(ctx context.Context, perm, name string) (*Caller, error) {
	c, err := callerOf(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.check(ctx, c, perm, name); err != nil {
		return nil, err
	}
	return c, nil
}

// check is authorize for a known caller.
func (s *Server) check(ctx context.Context, c *Caller, perm, name string) error {
	ok, d, err := s.allowed(ctx, c, perm, name)
	if err != nil {
		return err
	}
	if ok {
		return nil
	}
	return s.deny(ctx, c, perm, name, d)
}

// allowed decides without auditing or answering a denial, for filters.
func (s *Server) allowed(ctx context.Context, c *Caller, perm, name string) (bool, *aegisv1.Decision, error) {
	key, cacheable := grantKey(c, perm, name)
	rev, now := s.st.Revision(), s.now()
	if cacheable && s.grants.has(key, rev, now) {
		return true, nil, nil
	}
	d, err := s.decideUnchecked(ctx, sourceAdmin, c.subject(), perm, authzResource(name), nil, requestInfoFrom(ctx).sourceIP)
	if err != nil {
		// Names were checked before; an evaluator rejection here is a
		// bug in this package, not the client's fault.
		s.lg.Error("admin check rejected by the evaluator", "permission", perm, "resource", name, "err", err)
		return false, nil, status.Error(codes.Internal, "internal error")
	}
	if cacheable && d.Allowed && d.GetCacheTtl().AsDuration() > 0 {
		s.grants.put(key, rev, now.Add(d.GetCacheTtl().AsDuration()))
	}
	return d.Allowed, d, nil
}

// deny audits a denied check and returns the status the caller gets.
func (s *Server) deny(ctx context.Context, c *Caller, perm, name string, d *aegisv1.Decision) error {
	code, msg := codes.PermissionDenied, fmt.Sprintf("permission %s denied on %s", perm, name)
	if s.hidden(ctx, c, name) {
		code, msg = codes.NotFound, fmt.Sprintf("%s not found", name)
	}
	s.auditDenied(ctx, c, perm, name, d, code, msg)
	return status.Error(code, msg)
}

// hidden reports whether name lies outside what the caller may know
// exists: outside the project its token is restricted to, or in another
// org in which the caller may not even get the org. Names at the system
// level belong to no tenant and are never hidden.
func (s *Server) hidden(ctx context.Context, c *Caller, name string) bool {
	org := policy.OrgOf(name)
	if org == "" {
		return false
	}
	if c.Project != "" && !within(name, c.Project) {
		return true
	}
	if c.Org == org {
		return false
	}
	d, err := s.eval.Authorize(ctx, policy.Request{Principal: c.PolicyPrincipal, Permission: permOrgsGet,
		Resource: "orgs/" + org, Time: s.now()})
	return err != nil || !d.Allowed
}

// Authorize implements authn.Authorizer (for RevokeTokens of someone
// else's tokens): may the holder of the verified token caller use
// permission on resource? Its restrictions apply; a principal that no
// longer exists or is disabled may do nothing.
func (s *Server) Authorize(ctx context.Context, caller *token.Claims, permission, resource string) (bool, error) {
	c, err := s.claimsCaller(caller)
	if err != nil {
		return false, nil
	}
	d, err := s.decideUnchecked(ctx, sourceAdmin, c.subject(), permission, resource, nil, requestInfoFrom(ctx).sourceIP)
	if err != nil {
		return false, err
	}
	return d.Allowed, nil
}

// resolveSubject turns an AuthzService Subject into the subject of a
// decision. other reports whether it names someone other than the caller
// (which needs aegis:authz:check). A token that fails verification is no
// error: it yields a subject whose decisions are REASON_UNAUTHENTICATED
// (unauth set).
func (s *Server) resolveSubject(c *Caller, sj *aegisv1.Subject) (sub *subject, other bool, unauth string, err error) {
	switch id := sj.GetIdentity().(type) {
	case *aegisv1.Subject_AccessToken:
		if id.AccessToken == "" {
			break
		}
		claims, verr := s.ver.Verify(id.AccessToken)
		if verr != nil {
			return &subject{}, true, "subject token rejected: " +
				strings.TrimPrefix(verr.Error(), token.ErrInvalidToken.Error()+": "), nil
		}
		tc, cerr := s.claimsCaller(claims)
		switch {
		case errors.Is(cerr, errPrincipalInactive):
			return &subject{principal: claims.Subject, expiresAt: claims.ExpiresAt}, claims.Subject != c.Principal, "", nil
		case cerr != nil:
			return &subject{principal: claims.Subject}, claims.Subject != c.Principal, cerr.Error(), nil
		}
		return tc.subject(), tc.Principal != c.Principal, "", nil
	case *aegisv1.Subject_Principal:
		if id.Principal == "" {
			break
		}
		if err := checkName("subject.principal", id.Principal, principalShapes...); err != nil {
			return nil, false, "", err
		}
		if id.Principal == c.Principal {
			// Checking oneself by name drops the token's restrictions,
			// as the field promises ("with all its grants"); that is no
			// escalation, only a question.
			return &subject{principal: c.Principal, policy: c.PolicyPrincipal}, false, "", nil
		}
		pol, perr := s.st.PolicyPrincipal(id.Principal)
		if perr != nil {
			pol = ""
		}
		return &subject{principal: id.Principal, policy: pol}, true, "", nil
	}
	return c.subject(), false, "", nil
}

// unauthDecision is the answer for a subject token that failed
// verification.
func unauthDecision(sub *subject, why string) *aegisv1.Decision {
	return &aegisv1.Decision{Principal: sub.principal, Reason: aegisv1.Decision_REASON_UNAUTHENTICATED, Message: why}
}
