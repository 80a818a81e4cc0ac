package policy

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Request asks whether Principal may use Permission on Resource.
type Request struct {
	// Principal is "users/<id>" or "serviceAccounts/<id>".
	Principal string
	// Permission is a concrete "service:resource:verb".
	Permission string
	// Resource is the resource name the permission is used on; a
	// collection operation (create, list) names the parent scope, e.g.
	// plasmavmc:vms:create on orgs/acme/projects/web.
	Resource string
	// ResourceLabels are the resource's labels as known to the calling
	// service, for conditions (resource.labels). At most 64.
	ResourceLabels map[string]string
	// SourceIP is the caller's address, "" if unknown. It is
	// canonicalised for conditions (IPv4-mapped IPv6 becomes IPv4).
	SourceIP string
	// Time is the time of the request; zero means now. It decides expiry
	// and is request.time in conditions. The server sets it from its own
	// clock (never from client input).
	Time time.Time
}

// Reason says why a decision came out as it did.
type Reason uint8

// Reasons. The zero value is the default deny.
const (
	// ReasonNoMatchingBinding: no applicable allow binding (default deny).
	ReasonNoMatchingBinding Reason = iota
	// ReasonAllowed: an allow binding applied and no deny did.
	ReasonAllowed
	// ReasonDenied: a deny binding applied.
	ReasonDenied
	// ReasonUnknownPrincipal: the principal does not exist.
	ReasonUnknownPrincipal
	// ReasonPrincipalDisabled: the principal is disabled.
	ReasonPrincipalDisabled
	// ReasonInvalidRequest: the request is malformed (see Decision.Err).
	ReasonInvalidRequest
)

func (r Reason) String() string {
	switch r {
	case ReasonNoMatchingBinding:
		return "no_matching_binding"
	case ReasonAllowed:
		return "allowed"
	case ReasonDenied:
		return "denied_by_binding"
	case ReasonUnknownPrincipal:
		return "unknown_principal"
	case ReasonPrincipalDisabled:
		return "principal_disabled"
	case ReasonInvalidRequest:
		return "invalid_request"
	}
	return fmt.Sprintf("Reason(%d)", uint8(r))
}

// Decision is the answer to a Request, with what the audit log needs.
type Decision struct {
	Allowed bool
	Reason  Reason
	// BindingID, Role, Scope and Subject describe the deciding binding
	// (the allow that granted, or the deny that denied); empty otherwise.
	// Subject is the principal itself or the group through which the
	// binding applied.
	BindingID string
	Role      string
	Scope     string
	Subject   string
	// Detail explains conditions: a deny applied because its condition
	// failed to evaluate, an allow was skipped because its condition was
	// false or failed, a binding names a missing role.
	Detail string
	// Revision is the store revision of the policy snapshot that decided.
	Revision int64
	// Err is set, wrapping ErrInvalidRequest, ErrInvalidName or
	// ErrInvalidPermission, when Reason is ReasonInvalidRequest.
	Err error
}

// String renders the decision for logs.
func (d Decision) String() string {
	var b strings.Builder
	if d.Allowed {
		b.WriteString("allow")
	} else {
		b.WriteString("deny")
	}
	fmt.Fprintf(&b, " reason=%s", d.Reason)
	if d.BindingID != "" {
		fmt.Fprintf(&b, " binding=%s role=%s scope=%s subject=%s", d.BindingID, d.Role, d.Scope, d.Subject)
	}
	if d.Detail != "" {
		fmt.Fprintf(&b, " detail=%q", d.Detail)
	}
	if d.Err != nil {
		fmt.Fprintf(&b, " err=%q", d.Err.Error())
	}
	fmt.Fprintf(&b, " rev=%d", d.Revision)
	return b.String()
}

// query is the per-request state shared by every permission checked for
// one (principal, resource) pair.
type query struct {
	s        *snapshot
	now      time.Time
	res      Resource
	rec      *subject
	p        *principal
	labels   map[string]string
	sourceIP string
	act      *activation
}

// The existing groups of the principal (sorted) and the candidate bindings
// (of the principal and its groups along the resource's ancestors) are
// kept out of query: escape analysis is not field-sensitive, and query's
// strings leak into the CEL activation, which would drag the callers' stack
// buffers onto the heap.

// Callers give gather stack buffers of these sizes, so that a typical
// decision allocates nothing; larger sets spill to the heap.
const (
	groupsBuf = 8
	candsBuf  = 32
)

// prepare validates everything but the permission and resolves the
// principal. When final is true, d is the answer.
func (e *Evaluator) prepare(s *snapshot, req *Request, q *query) (d Decision, final bool) {
	q.s = s
	invalid := func(err error) (Decision, bool) {
		return Decision{Reason: ReasonInvalidRequest, Revision: s.rev, Err: err}, true
	}
	ref, err := ParsePrincipalRef(req.Principal)
	if err != nil {
		return invalid(fmt.Errorf("principal: %w", err))
	}
	if ref.Kind == KindGroup {
		return invalid(fmt.Errorf("%w: principal %s: a group cannot make requests", ErrInvalidRequest, quote(req.Principal)))
	}
	if q.res, err = ParseResource(req.Resource); err != nil {
		return invalid(fmt.Errorf("resource: %w", err))
	}
	if why := checkLabels(req.ResourceLabels); why != "" {
		return invalid(fmt.Errorf("%w: resource labels: %s", ErrInvalidRequest, why))
	}
	q.labels = req.ResourceLabels
	if req.SourceIP != "" {
		addr, err := netip.ParseAddr(req.SourceIP)
		if err != nil {
			return invalid(fmt.Errorf("%w: source address %s: %v", ErrInvalidRequest, quote(req.SourceIP), err))
		}
		// IPv4-mapped IPv6 (dual-stack listeners) is shown as IPv4 and
		// zones are dropped, so conditions compare one canonical form.
		q.sourceIP = addr.Unmap().WithZone("").String()
	}
	q.now = req.Time
	if q.now.IsZero() {
		q.now = e.opts.Now()
	}
	r := s.subject(req.Principal)
	if r == nil || r.principal == nil {
		return Decision{Reason: ReasonUnknownPrincipal, Revision: s.rev, Detail: "no principal " + req.Principal}, true
	}
	if r.principal.Disabled {
		return Decision{Reason: ReasonPrincipalDisabled, Revision: s.rev}, true
	}
	q.rec, q.p = r, r.principal
	return Decision{}, false
}

// gather appends to groups the existing groups of the principal (sorted),
// and to cands the bindings of the principal and then of each of those
// groups, at the resource and its ancestors from system down.
func gather(groups []string, cands []*binding, q *query) ([]string, []*binding) {
	cands = q.rec.appendBindings(cands, q.res)
	for _, g := range q.rec.groups {
		if gr := q.s.subject(g); gr != nil && gr.group != nil {
			groups = append(groups, g)
			cands = gr.appendBindings(cands, q.res)
		}
	}
	return groups, cands
}

// groupNames are the names conditions see for the principal's groups.
func (q *query) groupNames(groups []string) []string {
	out := make([]string, len(groups))
	for i, g := range groups {
		out[i] = g
		if gr := q.s.subject(g); gr != nil && gr.group != nil && gr.group.ResourceName != "" {
			out[i] = gr.group.ResourceName
		}
	}
	return out
}

// activation returns the condition variables, built on first use.
func (q *query) activation(perm *permission, groups []string) *activation {
	if q.act == nil {
		q.act = &activation{
			now:       q.now,
			sourceIP:  q.sourceIP,
			res:       q.res,
			resLabels: q.labels,
			p:         q.p,
			groups:    q.groupNames(groups),
		}
	}
	q.act.perm = perm.full
	return q.act
}

// decide applies the rules to the collected candidates: expired bindings
// are ignored; any applicable deny wins (a deny whose condition fails to
// evaluate, or whose role is missing, applies); otherwise any applicable
// allow (an allow whose condition fails to evaluate does not apply);
// otherwise deny. Conditions are evaluated lazily: allow conditions only if
// no unconditional allow exists, and only after every deny was checked.
func (e *Evaluator) decide(ctx context.Context, q *query, groups []string, cands []*binding, perm *permission) Decision {
	rev := q.s.rev
	var allow *binding
	var condB [8]*binding
	condAllows := condB[:0]
	detail := ""
	for _, b := range cands {
		if b.expiredAt(q.now) {
			continue
		}
		r := q.s.role(b.Role)
		if b.deny {
			if r == nil {
				return denied(b, rev, "role "+b.Role+" not found: deny applies (fail closed)")
			}
			if !r.m.match(perm) {
				continue
			}
			if b.cond == nil {
				return denied(b, rev, "")
			}
			ok, err := b.cond.eval(ctx, q.activation(perm, groups))
			if err != nil {
				return denied(b, rev, "condition failed to evaluate, deny applies (fail closed): "+err.Error())
			}
			if ok {
				return denied(b, rev, "condition true")
			}
			continue
		}
		if allow != nil {
			continue
		}
		if r == nil {
			if detail == "" {
				detail = "allow binding " + b.ID + " names missing role " + b.Role
			}
			continue
		}
		if !r.m.match(perm) {
			continue
		}
		if b.cond == nil {
			allow = b
			continue
		}
		condAllows = append(condAllows, b)
	}
	if allow != nil {
		return allowed(allow, rev, "")
	}
	for _, b := range condAllows {
		ok, err := b.cond.eval(ctx, q.activation(perm, groups))
		switch {
		case err != nil:
			if detail == "" {
				detail = "allow binding " + b.ID + " skipped: condition failed to evaluate: " + err.Error()
			}
		case ok:
			return allowed(b, rev, "condition true")
		default:
			if detail == "" {
				detail = "allow binding " + b.ID + " skipped: condition false"
			}
		}
	}
	return Decision{Reason: ReasonNoMatchingBinding, Revision: rev, Detail: detail}
}

func denied(b *binding, rev int64, detail string) Decision {
	return Decision{Reason: ReasonDenied, BindingID: b.ID, Role: b.Role, Scope: b.Scope,
		Subject: b.Subject, Detail: detail, Revision: rev}
}

func allowed(b *binding, rev int64, detail string) Decision {
	return Decision{Allowed: true, Reason: ReasonAllowed, BindingID: b.ID, Role: b.Role,
		Scope: b.Scope, Subject: b.Subject, Detail: detail, Revision: rev}
}

// Authorize decides one request. The error is Decision.Err: non-nil only
// for malformed requests, which are denied.
//
// ctx bounds condition evaluation together with the CEL cost limit; a
// cancelled ctx makes conditions fail (denies apply, allows do not).
func (e *Evaluator) Authorize(ctx context.Context, req Request) (Decision, error) {
	d := e.authorize(ctx, e.cur.Load(), &req)
	return d, d.Err
}

func (e *Evaluator) authorize(ctx context.Context, s *snapshot, req *Request) Decision {
	perm, err := parsePermission(req.Permission)
	if err != nil {
		return Decision{Reason: ReasonInvalidRequest, Revision: s.rev, Err: err}
	}
	var q query
	if d, final := e.prepare(s, req, &q); final {
		return d
	}
	var gb [groupsBuf]string
	var cb [candsBuf]*binding
	groups, cands := gather(gb[:0], cb[:0], &q)
	return e.decide(ctx, &q, groups, cands, &perm)
}

// BatchAuthorize decides several requests against one snapshot of the
// policy, so the answers are mutually consistent. Malformed requests get a
// ReasonInvalidRequest decision with Err set; the others are unaffected.
func (e *Evaluator) BatchAuthorize(ctx context.Context, reqs []Request) []Decision {
	s := e.cur.Load()
	out := make([]Decision, len(reqs))
	for i := range reqs {
		out[i] = e.authorize(ctx, s, &reqs[i])
	}
	return out
}

// MaxTestPermissions bounds the permissions one TestPermissions call may
// ask about.
const MaxTestPermissions = 256

// TestPermissions returns the subset of permissions (in their given order,
// without duplicates) that req.Principal has on req.Resource;
// req.Permission is ignored. It fails if the request or any permission is
// malformed. An unknown or disabled principal has no permissions.
func (e *Evaluator) TestPermissions(ctx context.Context, req Request, permissions []string) ([]string, error) {
	if len(permissions) > MaxTestPermissions {
		return nil, fmt.Errorf("%w: more than %d permissions to test", ErrInvalidRequest, MaxTestPermissions)
	}
	perms := make([]permission, len(permissions))
	for i, p := range permissions {
		var err error
		if perms[i], err = parsePermission(p); err != nil {
			return nil, err
		}
	}
	s := e.cur.Load()
	var q query
	if d, final := e.prepare(s, &req, &q); final {
		return nil, d.Err
	}
	var gb [groupsBuf]string
	var cb [candsBuf]*binding
	groups, cands := gather(gb[:0], cb[:0], &q)
	var out []string
	for i := range perms {
		if slices.Contains(out, perms[i].full) {
			continue
		}
		if d := e.decide(ctx, &q, groups, cands, &perms[i]); d.Allowed {
			out = append(out, perms[i].full)
		}
	}
	return out, nil
}

// WhoCanRequest asks who may use Permission on Resource. ResourceLabels,
// SourceIP and Time feed conditions and expiry as in Request.
type WhoCanRequest struct {
	Permission     string
	Resource       string
	ResourceLabels map[string]string
	SourceIP       string
	Time           time.Time
	// Limit caps the number of principals evaluated (default 10000);
	// Truncated reports when it was reached.
	Limit int
}

// Grant is a binding that bears on a permission at a resource.
type Grant struct {
	BindingID   string
	Subject     string // "users/…", "serviceAccounts/…" or "groups/…"
	Role        string
	Scope       string
	Effect      Effect
	Conditional bool
	ExpireTime  time.Time
}

// Access is a principal that may use the permission, and the decision that
// says so (deciding binding, and group through which it applies).
type Access struct {
	Principal string
	Decision  Decision
}

// WhoCanResult answers a WhoCanRequest.
type WhoCanResult struct {
	// Allows are the unexpired allow bindings at the resource or above
	// whose role includes the permission, whatever their subject and
	// condition, ordered from system down, then by id.
	Allows []Grant
	// Denies are the unexpired deny bindings that may deny the permission
	// there (including denies naming a missing role), in the same order.
	Denies []Grant
	// Principals are the users and service accounts that, named directly
	// or through a group by one of Allows, are allowed by the full
	// decision procedure with the request's time, address and labels;
	// sorted by name.
	Principals []Access
	// Truncated is set when Limit principals were evaluated and more
	// candidates remained.
	Truncated bool
	Revision  int64
}

// WhoCan is the reverse lookup: who may use a permission on a resource.
// It walks the scope index rather than the per-principal one, so its cost
// grows with the number of bindings at the resource's ancestors (and the
// size of the groups they name); it is an admin query, not a hot path.
func (e *Evaluator) WhoCan(ctx context.Context, wr WhoCanRequest) (WhoCanResult, error) {
	perm, err := parsePermission(wr.Permission)
	if err != nil {
		return WhoCanResult{}, err
	}
	res, err := ParseResource(wr.Resource)
	if err != nil {
		return WhoCanResult{}, err
	}
	limit := wr.Limit
	if limit <= 0 {
		limit = 10000
	}
	now := wr.Time
	if now.IsZero() {
		now = e.opts.Now()
	}
	s := e.cur.Load()
	out := WhoCanResult{Revision: s.rev}
	var subjects []string
	seenSubj := map[string]bool{}
	for i := range res.depth() {
		scope := res.ancestor(i)
		s.byScope.AscendGreaterOrEqual(&binding{Binding: Binding{Scope: scope}}, func(b *binding) bool {
			if b.Scope != scope {
				return false
			}
			if b.expiredAt(now) {
				return true
			}
			r := s.role(b.Role)
			g := Grant{BindingID: b.ID, Subject: b.Subject, Role: b.Role, Scope: b.Scope,
				Effect: b.Effect, Conditional: b.cond != nil, ExpireTime: b.ExpireTime}
			switch {
			case b.deny && (r == nil || r.m.match(&perm)):
				out.Denies = append(out.Denies, g)
			case !b.deny && r != nil && r.m.match(&perm):
				out.Allows = append(out.Allows, g)
				if !seenSubj[b.Subject] {
					seenSubj[b.Subject] = true
					subjects = append(subjects, b.Subject)
				}
			}
			return true
		})
	}

	// Expand groups, then run every candidate through the real decision
	// procedure: denies, conditions, disabled principals and group
	// existence all count exactly as they would for Authorize.
	cands := map[string]bool{}
	for _, subj := range subjects {
		if !strings.HasPrefix(subj, "groups/") {
			cands[subj] = true
			continue
		}
		if gr := s.subject(subj); gr == nil || gr.group == nil {
			continue
		}
		s.members.AscendGreaterOrEqual(membership{group: subj}, func(m membership) bool {
			if m.group != subj {
				return false
			}
			cands[m.member] = true
			return true
		})
	}
	names := make([]string, 0, len(cands))
	for n := range cands {
		names = append(names, n)
	}
	slices.Sort(names)
	if len(names) > limit {
		names, out.Truncated = names[:limit], true
	}
	req := Request{Permission: wr.Permission, Resource: wr.Resource,
		ResourceLabels: wr.ResourceLabels, SourceIP: wr.SourceIP, Time: now}
	for _, n := range names {
		req.Principal = n
		d := e.authorize(ctx, s, &req)
		if d.Err != nil {
			return WhoCanResult{}, d.Err
		}
		if d.Allowed {
			out.Principals = append(out.Principals, Access{Principal: n, Decision: d})
		}
	}
	return out, nil
}
