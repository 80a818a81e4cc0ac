package policy

import (
	"fmt"
	"hash/maphash"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unique"

	"github.com/google/btree"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
)

// Options configures an Evaluator. The zero value works.
type Options struct {
	// Now returns the current time; it is used when a request has no Time.
	// Default time.Now.
	Now func() time.Time
	// ConditionCostLimit bounds the CEL cost of one condition evaluation;
	// an evaluation that exceeds it fails (a deny then applies, an allow
	// does not). Default 10000, about a thousand simple operations.
	ConditionCostLimit uint64
	// MaxConditionLength bounds the length of a condition in bytes.
	// Default 4096.
	MaxConditionLength int
	// ConditionCacheSize is how many compiled conditions the writer keeps
	// by text, so that many bindings with the same condition compile it
	// once. Default 4096.
	ConditionCacheSize int
}

// EnsureDefaults fills zero fields with their defaults.
func (o *Options) EnsureDefaults() {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.ConditionCostLimit == 0 {
		o.ConditionCostLimit = 10000
	}
	if o.MaxConditionLength == 0 {
		o.MaxConditionLength = 4096
	}
	if o.ConditionCacheSize == 0 {
		o.ConditionCacheSize = 4096
	}
}

// Validate reports whether the options are usable (after EnsureDefaults).
func (o *Options) Validate() error {
	switch {
	case o.Now == nil:
		return fmt.Errorf("policy options: Now must be set")
	case o.MaxConditionLength < 0 || o.MaxConditionLength > 1<<20:
		return fmt.Errorf("policy options: MaxConditionLength %d out of range (1..1048576)", o.MaxConditionLength)
	case o.ConditionCacheSize < 0:
		return fmt.Errorf("policy options: ConditionCacheSize %d must not be negative", o.ConditionCacheSize)
	}
	return nil
}

// Evaluator holds the policy in memory and answers authorization queries.
//
// Concurrency: copy-on-write snapshots behind an atomic pointer. Readers
// (Authorize and friends) load the current snapshot and never lock, so a
// decision never waits for an update and always sees one consistent state
// (an update that moves a deny binding is never half-visible). Updates are
// serialised by a mutex and build the next snapshot by cloning only the
// index shards they touch (see store.go), then publish it with one atomic
// store. Sharded RW locks were rejected: a decision reads several indexes
// (principal, groups, bindings), so it would either take several locks or
// see a half-applied update; and RLock traffic on a shared counter is what
// slows readers on many cores.
type Evaluator struct {
	opts Options
	cenv *condEnv
	cur  atomic.Pointer[snapshot]

	mu        sync.Mutex // serialises Update; guards the fields below
	wByScope  *btree.BTreeG[*binding]
	wMembers  *btree.BTreeG[membership]
	condCache map[string]*condition
}

// New returns an empty Evaluator (built-in roles only).
func New(opts Options) (*Evaluator, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	cenv, err := newCondEnv(opts.ConditionCostLimit, opts.MaxConditionLength)
	if err != nil {
		return nil, fmt.Errorf("new evaluator: %w", err)
	}
	e := &Evaluator{
		opts:      opts,
		cenv:      cenv,
		wByScope:  newBindingTree(),
		wMembers:  newMembershipTree(),
		condCache: map[string]*condition{},
	}
	e.cur.Store(&snapshot{
		seed:    maphash.MakeSeed(),
		byScope: e.wByScope.Clone(),
		members: e.wMembers.Clone(),
	})
	return e, nil
}

// Binding is a grant (or denial) of a role to a principal or group at a
// scope.
type Binding struct {
	// ID identifies the binding: 1-128 of [A-Za-z0-9._-], starting with a
	// letter or digit. Putting a binding with an existing ID replaces it.
	ID string
	// Subject is "users/<id>", "serviceAccounts/<id>" or "groups/<id>".
	Subject string
	// Role is a built-in role name or "orgs/<org>/roles/<id>".
	Role string
	// Scope is a resource name (see Resource); the binding applies to the
	// scope and everything below it.
	Scope string
	// Effect is EffectAllow or EffectDeny; the zero value is invalid.
	Effect Effect
	// Condition is an optional CEL expression (see condition.go for the
	// variables); the binding applies only when it evaluates to true.
	Condition string
	// ExpireTime, if not zero, is when the binding stops applying.
	ExpireTime time.Time
}

// Effect says whether a binding grants or denies its role's permissions.
type Effect uint8

// Effects. The zero value is invalid so that a forgotten field never
// silently turns a deny into an allow.
const (
	EffectAllow Effect = iota + 1
	EffectDeny
)

func (e Effect) String() string {
	switch e {
	case EffectAllow:
		return "allow"
	case EffectDeny:
		return "deny"
	}
	return fmt.Sprintf("Effect(%d)", uint8(e))
}

// binding is a validated binding with its condition compiled.
type binding struct {
	Binding
	deny bool
	cond *condition
}

func (b *binding) expiredAt(now time.Time) bool {
	return !b.ExpireTime.IsZero() && !now.Before(b.ExpireTime)
}

// Principal is a user or a service account.
type Principal struct {
	// Name is "users/<id>" or "serviceAccounts/<id>".
	Name string
	// Org is the owning org. It is empty only for system users (operators).
	Org string
	// Project is the owning project of a service account (in Org), or
	// empty for org-level service accounts and for users.
	Project string
	// Disabled principals are denied everything.
	Disabled bool
	// Labels are free-form attributes visible to conditions as
	// principal.labels.
	Labels map[string]string
	// ResourceName is the principal's API name, e.g.
	// "orgs/acme/users/alice", which conditions see as principal.name;
	// empty means Name. Names inside the evaluator stay short ids so that
	// renames of the API's naming scheme never touch decisions.
	ResourceName string
}

type principal struct {
	Principal
	ref       PrincipalRef
	celLabels ref.Val
}

// Group is an org-level set of users and service accounts. Groups do not
// nest.
type Group struct {
	// Name is "groups/<id>".
	Name string
	// Org is the owning org.
	Org string
	// ResourceName is the group's API name, e.g. "orgs/acme/groups/oncall",
	// which conditions see in principal.groups; empty means Name.
	ResourceName string
}

type group struct{ Group }

// Stats counts what an Evaluator holds.
type Stats struct {
	Revision    int64
	Bindings    int
	Principals  int
	Groups      int
	Memberships int
	CustomRoles int
}

// Stats returns the counts of the current snapshot.
func (e *Evaluator) Stats() Stats {
	s := e.cur.Load()
	return Stats{
		Revision:    s.rev,
		Bindings:    s.bindings.len(),
		Principals:  s.principals,
		Groups:      s.groups,
		Memberships: s.memberships,
		CustomRoles: s.roles.len(),
	}
}

// Binding returns the binding with the given id.
func (e *Evaluator) Binding(id string) (Binding, bool) {
	s := e.cur.Load()
	b, ok := s.bindings.get(s.seed, skey(id))
	if !ok {
		return Binding{}, false
	}
	return b.Binding, true
}

// BindingsAt returns the bindings whose scope is exactly scope, by id.
func (e *Evaluator) BindingsAt(scope string) []Binding {
	s := e.cur.Load()
	var out []Binding
	s.byScope.AscendGreaterOrEqual(&binding{Binding: Binding{Scope: scope}}, func(b *binding) bool {
		if b.Scope != scope {
			return false
		}
		out = append(out, b.Binding)
		return true
	})
	return out
}

// BindingsOf returns the bindings whose subject is subject (a principal or
// a group, by its evaluator name), by scope, then id. It reads the
// subject's own record, which decisions already keep, so it costs what
// the subject has, not what the policy holds.
func (e *Evaluator) BindingsOf(subject string) []Binding {
	r := e.cur.Load().subject(subject)
	if r == nil {
		return nil
	}
	var out []Binding
	for _, sc := range r.scopes {
		for _, b := range sc.bindings {
			out = append(out, b.Binding)
		}
	}
	return out
}

// Role returns a built-in or custom role.
func (e *Evaluator) Role(name string) (Role, bool) {
	r := e.cur.Load().role(name)
	if r == nil {
		return Role{}, false
	}
	return r.clone(), true
}

// Principal returns a user or service account.
func (e *Evaluator) Principal(name string) (Principal, bool) {
	r := e.cur.Load().subject(name)
	if r == nil || r.principal == nil {
		return Principal{}, false
	}
	out := r.principal.Principal
	out.Labels = maps.Clone(out.Labels)
	return out, true
}

// Group returns a group.
func (e *Evaluator) Group(name string) (Group, bool) {
	r := e.cur.Load().subject(name)
	if r == nil || r.group == nil {
		return Group{}, false
	}
	return r.group.Group, true
}

// GroupsOf returns the groups a user or service account is a member of
// (membership records, whether or not the groups exist), sorted.
func (e *Evaluator) GroupsOf(member string) []string {
	r := e.cur.Load().subject(member)
	if r == nil {
		return nil
	}
	return slices.Clone(r.groups)
}

// ValidateBinding checks a binding exactly as Tx.PutBinding would, without
// storing it. The server calls it before writing a binding to the store, so
// that every stored binding is accepted by every replica.
func (e *Evaluator) ValidateBinding(b Binding) error {
	_, err := e.compileBinding(b, nil)
	return err
}

// ValidateRole checks a custom role exactly as Tx.PutRole would.
func (e *Evaluator) ValidateRole(r Role) error {
	_, err := compileRole(r)
	return err
}

// ValidateCondition compiles a condition and reports why it is rejected.
func (e *Evaluator) ValidateCondition(expr string) error {
	_, err := e.cenv.compile(expr)
	return err
}

// compileBinding validates b and compiles its condition, using and filling
// the transaction's condition cache when tx is not nil.
func (e *Evaluator) compileBinding(b Binding, tx *Tx) (*binding, error) {
	if err := checkBindingID(b.ID); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidBinding, err)
	}
	bad := func(err error) (*binding, error) {
		return nil, fmt.Errorf("%w %s: %w", ErrInvalidBinding, quote(b.ID), err)
	}
	if _, err := ParsePrincipalRef(b.Subject); err != nil {
		return bad(fmt.Errorf("subject: %w", err))
	}
	scope, err := ParseResource(b.Scope)
	if err != nil {
		return bad(fmt.Errorf("scope: %w", err))
	}
	roleOrg, err := parseRoleName(b.Role, IsBuiltinRole)
	if err != nil {
		return bad(fmt.Errorf("role: %w", err))
	}
	if roleOrg != "" && scope.Org() != roleOrg {
		return bad(fmt.Errorf("custom role %s of org %q cannot be bound at %s", quote(b.Role), roleOrg, quote(b.Scope)))
	}
	if r := builtinRoles[b.Role]; r != nil && r.systemOnly && scope.Level() != LevelSystem {
		return bad(fmt.Errorf("role %s can only be bound at the system scope", b.Role))
	}
	switch b.Effect {
	case EffectAllow, EffectDeny:
	default:
		return bad(fmt.Errorf("effect must be allow or deny, not %v", b.Effect))
	}
	cb := &binding{Binding: b, deny: b.Effect == EffectDeny}
	if b.Condition != "" {
		if cb.cond, err = e.condition(b.Condition, tx); err != nil {
			return bad(err)
		}
	}
	// Interning makes the many bindings that share a scope, role or
	// condition share one copy of each string (subjects are interned by
	// PutBinding through their record). unique.Make is not free (a weak
	// handle per new string), so built-in role names come from the table.
	cb.Scope = unique.Make(b.Scope).Value()
	if r := builtinRoles[b.Role]; r != nil {
		cb.Role = r.Name
	} else {
		cb.Role = unique.Make(b.Role).Value()
	}
	if cb.cond != nil {
		cb.Condition = cb.cond.expr
	}
	return cb, nil
}

func (e *Evaluator) condition(expr string, tx *Tx) (*condition, error) {
	if tx != nil {
		if c := tx.newConds[expr]; c != nil {
			return c, nil
		}
		if c := e.condCache[expr]; c != nil {
			return c, nil
		}
	}
	c, err := e.cenv.compile(expr)
	if err != nil {
		return nil, err
	}
	if tx != nil {
		if tx.newConds == nil {
			tx.newConds = map[string]*condition{}
		}
		tx.newConds[expr] = c
	}
	return c, nil
}

func compilePrincipal(p Principal) (*principal, error) {
	ref, err := ParsePrincipalRef(p.Name)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidPrincipal, err)
	}
	bad := func(format string, args ...any) (*principal, error) {
		return nil, fmt.Errorf("%w %s: %s", ErrInvalidPrincipal, quote(p.Name), fmt.Sprintf(format, args...))
	}
	switch ref.Kind {
	case KindUser:
		if p.Project != "" {
			return bad("users do not belong to a project")
		}
	case KindServiceAccount:
		if p.Org == "" {
			return bad("a service account belongs to an org")
		}
	default:
		return bad("want a user or a service account (groups are put with PutGroup)")
	}
	if p.Org != "" {
		if why := checkOrgID(p.Org); why != "" {
			return bad("org: %s", why)
		}
	}
	if p.Project != "" {
		if why := checkOrgID(p.Project); why != "" {
			return bad("project: %s", why)
		}
	}
	if why := checkLabels(p.Labels); why != "" {
		return bad("%s", why)
	}
	cp := &principal{Principal: p, ref: ref}
	cp.Labels = maps.Clone(p.Labels)
	cp.celLabels = types.NewStringStringMap(types.DefaultTypeAdapter, cp.Labels)
	return cp, nil
}

// Update runs fn as one transaction: the changes fn makes through tx become
// visible to decisions atomically when fn returns nil, and are discarded if
// it returns an error. Updates are serialised; decisions never wait for
// them. Each Tx method validates its input before changing anything, so fn
// may skip a rejected change (log it) and carry on.
//
// The server applies a Chainfire watch response as one Update (all events
// of the response, then SetRevision), and a full re-list as one Update that
// starts with Reset. fn must not call Update (it would deadlock); it may
// call the read methods, which still see the previous snapshot.
func (e *Evaluator) Update(fn func(tx *Tx) error) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	old := e.cur.Load()
	next := *old
	tx := &Tx{e: e, s: &next}
	tx.initWriters()
	err := fn(tx)
	tx.done = true
	if err != nil {
		return err
	}
	if tx.byScope != nil {
		next.byScope = tx.byScope.Clone()
		e.wByScope = tx.byScope
	}
	if tx.members != nil {
		next.members = tx.members.Clone()
		e.wMembers = tx.members
	}
	if len(e.condCache)+len(tx.newConds) > e.opts.ConditionCacheSize {
		// Crude but bounded: the cache only saves compile time, and
		// bindings keep their own compiled conditions.
		clear(e.condCache)
	}
	for k, c := range tx.newConds {
		if len(e.condCache) < e.opts.ConditionCacheSize {
			e.condCache[k] = c
		}
	}
	e.cur.Store(&next)
	return nil
}

// Tx is an update transaction; see Evaluator.Update. It must not be used
// after Update returns or from other goroutines.
type Tx struct {
	e    *Evaluator
	s    *snapshot
	done bool

	bindings cowWriter[skey, *binding]
	subjects cowWriter[skey, *subject]
	roles    cowWriter[skey, *role]

	byScope *btree.BTreeG[*binding]   // writable, nil until first write
	members *btree.BTreeG[membership] // writable, nil until first write

	newConds map[string]*condition
}

func (tx *Tx) initWriters() {
	s := tx.s
	tx.bindings.begin(&s.bindings, s.seed)
	tx.subjects.begin(&s.subjects, s.seed)
	tx.roles.begin(&s.roles, s.seed)
}

// subject returns a copy of the record of name, to modify and setSubject.
func (tx *Tx) subject(name string) subject {
	if r, ok := tx.subjects.get(skey(name)); ok {
		return *r
	}
	return subject{name: unique.Make(name).Value()}
}

func (tx *Tx) setSubject(r subject) {
	if r.empty() {
		tx.subjects.del(skey(r.name))
		return
	}
	tx.subjects.put(skey(r.name), &r)
}

func (tx *Tx) scopeTree() *btree.BTreeG[*binding] {
	if tx.byScope == nil {
		tx.byScope = tx.e.wByScope.Clone()
	}
	return tx.byScope
}

func (tx *Tx) memberTree() *btree.BTreeG[membership] {
	if tx.members == nil {
		tx.members = tx.e.wMembers.Clone()
	}
	return tx.members
}

func (tx *Tx) check() error {
	if tx.done {
		return ErrTxDone
	}
	return nil
}

// Reset drops everything (except built-in roles). Use it at the start of a
// transaction that reloads the whole policy, e.g. after the watch fell
// behind a compaction; decisions keep seeing the old policy until commit.
func (tx *Tx) Reset() error {
	if err := tx.check(); err != nil {
		return err
	}
	s := tx.s
	*s = snapshot{rev: s.rev, seed: s.seed}
	tx.initWriters()
	tx.byScope = newBindingTree()
	tx.members = newMembershipTree()
	return nil
}

// SetRevision records the store revision the transaction brings the policy
// up to; decisions report it for audit.
func (tx *Tx) SetRevision(rev int64) error {
	if err := tx.check(); err != nil {
		return err
	}
	tx.s.rev = rev
	return nil
}

// PutBinding adds a binding, or replaces the binding with the same ID. The
// condition is compiled here; a binding whose condition does not compile
// (or whose subject, role, scope or effect is invalid) is rejected and the
// transaction is left unchanged. The subject and role need not exist yet
// (watch events arrive in any order): a binding naming a missing principal
// or group never applies; an allow binding naming a missing role grants
// nothing, a deny binding naming a missing role denies everything at its
// scope (fail closed).
func (tx *Tx) PutBinding(b Binding) error {
	if err := tx.check(); err != nil {
		return err
	}
	cb, err := tx.e.compileBinding(b, tx)
	if err != nil {
		return err
	}
	if old, ok := tx.bindings.get(skey(cb.ID)); ok {
		tx.unindex(old)
	}
	r := tx.subject(cb.Subject)
	cb.Subject = r.name
	tx.bindings.put(skey(cb.ID), cb)
	r.scopes = r.withBinding(cb)
	tx.setSubject(r)
	tx.scopeTree().ReplaceOrInsert(cb)
	return nil
}

// DeleteBinding removes a binding; deleting a missing binding is not an
// error (watch events may repeat).
func (tx *Tx) DeleteBinding(id string) error {
	if err := tx.check(); err != nil {
		return err
	}
	old, ok := tx.bindings.get(skey(id))
	if !ok {
		return nil
	}
	tx.unindex(old)
	tx.bindings.del(skey(id))
	return nil
}

func (tx *Tx) unindex(b *binding) {
	r := tx.subject(b.Subject)
	r.scopes = r.withoutBinding(b)
	tx.setSubject(r)
	tx.scopeTree().Delete(b)
}

// PutRole adds or replaces a custom role ("orgs/<org>/roles/<id>").
// Built-in roles cannot be written.
func (tx *Tx) PutRole(r Role) error {
	if err := tx.check(); err != nil {
		return err
	}
	cr, err := compileRole(r)
	if err != nil {
		return err
	}
	tx.roles.put(skey(cr.Name), cr)
	return nil
}

// DeleteRole removes a custom role. Bindings that name it stay: allow
// bindings then grant nothing, deny bindings deny everything at their
// scope until they are removed too.
func (tx *Tx) DeleteRole(name string) error {
	if err := tx.check(); err != nil {
		return err
	}
	if IsBuiltinRole(name) {
		return fmt.Errorf("%w: %s", ErrBuiltinRole, quote(name))
	}
	tx.roles.del(skey(name))
	return nil
}

// PutPrincipal adds or replaces a user or service account.
func (tx *Tx) PutPrincipal(p Principal) error {
	if err := tx.check(); err != nil {
		return err
	}
	cp, err := compilePrincipal(p)
	if err != nil {
		return err
	}
	r := tx.subject(cp.Name)
	if r.principal == nil {
		tx.s.principals++
	}
	r.principal = cp
	tx.setSubject(r)
	return nil
}

// DeletePrincipal removes a user or service account. Its bindings and
// memberships are records of their own in the store and are removed by
// their own events; until then they are inert, since decisions for a
// missing principal are denied.
func (tx *Tx) DeletePrincipal(name string) error {
	if err := tx.check(); err != nil {
		return err
	}
	r := tx.subject(name)
	if r.principal != nil {
		tx.s.principals--
		r.principal = nil
		tx.setSubject(r)
	}
	return nil
}

// PutGroup adds or replaces a group.
func (tx *Tx) PutGroup(g Group) error {
	if err := tx.check(); err != nil {
		return err
	}
	ref, err := ParsePrincipalRef(g.Name)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidPrincipal, err)
	}
	if ref.Kind != KindGroup {
		return fmt.Errorf("%w %s: not a group", ErrInvalidPrincipal, quote(g.Name))
	}
	if why := checkOrgID(g.Org); why != "" {
		return fmt.Errorf("%w %s: org: %s", ErrInvalidPrincipal, quote(g.Name), why)
	}
	r := tx.subject(g.Name)
	if r.group == nil {
		tx.s.groups++
	}
	r.group = &group{Group: g}
	tx.setSubject(r)
	return nil
}

// DeleteGroup removes a group. Memberships and bindings naming it are inert
// until their own delete events arrive (or the group comes back).
func (tx *Tx) DeleteGroup(name string) error {
	if err := tx.check(); err != nil {
		return err
	}
	r := tx.subject(name)
	if r.group != nil {
		tx.s.groups--
		r.group = nil
		tx.setSubject(r)
	}
	return nil
}

func parseMembership(groupName, member string) (string, string, error) {
	g, err := ParsePrincipalRef(groupName)
	if err != nil {
		return "", "", fmt.Errorf("%w: %w", ErrInvalidPrincipal, err)
	}
	if g.Kind != KindGroup {
		return "", "", fmt.Errorf("%w %s: not a group", ErrInvalidPrincipal, quote(groupName))
	}
	m, err := ParsePrincipalRef(member)
	if err != nil {
		return "", "", fmt.Errorf("%w: %w", ErrInvalidPrincipal, err)
	}
	if m.Kind == KindGroup {
		return "", "", fmt.Errorf("%w %s: groups do not nest", ErrInvalidPrincipal, quote(member))
	}
	return unique.Make(groupName).Value(), member, nil
}

// AddMember records that member (a user or service account) is in group.
// Adding an existing membership is not an error.
func (tx *Tx) AddMember(groupName, member string) error {
	if err := tx.check(); err != nil {
		return err
	}
	g, m, err := parseMembership(groupName, member)
	if err != nil {
		return err
	}
	r := tx.subject(m)
	i, found := slices.BinarySearch(r.groups, g)
	if found {
		return nil
	}
	r.groups = slices.Insert(slices.Clip(r.groups), i, g)
	tx.setSubject(r)
	tx.memberTree().ReplaceOrInsert(membership{g, m})
	tx.s.memberships++
	return nil
}

// RemoveMember removes a membership; removing a missing one is not an
// error.
func (tx *Tx) RemoveMember(groupName, member string) error {
	if err := tx.check(); err != nil {
		return err
	}
	g, m, err := parseMembership(groupName, member)
	if err != nil {
		return err
	}
	r := tx.subject(m)
	i, found := slices.BinarySearch(r.groups, g)
	if !found {
		return nil
	}
	r.groups = slices.Delete(slices.Clone(r.groups), i, i+1)
	tx.setSubject(r)
	tx.memberTree().Delete(membership{g, m})
	tx.s.memberships--
	return nil
}

// Shortcuts for one-change transactions.

// PutBinding adds or replaces one binding; see Tx.PutBinding.
func (e *Evaluator) PutBinding(b Binding) error {
	return e.Update(func(tx *Tx) error { return tx.PutBinding(b) })
}

// DeleteBinding removes one binding; see Tx.DeleteBinding.
func (e *Evaluator) DeleteBinding(id string) error {
	return e.Update(func(tx *Tx) error { return tx.DeleteBinding(id) })
}

// PutRole adds or replaces one custom role; see Tx.PutRole.
func (e *Evaluator) PutRole(r Role) error {
	return e.Update(func(tx *Tx) error { return tx.PutRole(r) })
}

// PutPrincipal adds or replaces one principal; see Tx.PutPrincipal.
func (e *Evaluator) PutPrincipal(p Principal) error {
	return e.Update(func(tx *Tx) error { return tx.PutPrincipal(p) })
}

// PutGroup adds or replaces one group; see Tx.PutGroup.
func (e *Evaluator) PutGroup(g Group) error {
	return e.Update(func(tx *Tx) error { return tx.PutGroup(g) })
}

// AddMember adds one membership; see Tx.AddMember.
func (e *Evaluator) AddMember(groupName, member string) error {
	return e.Update(func(tx *Tx) error { return tx.AddMember(groupName, member) })
}
