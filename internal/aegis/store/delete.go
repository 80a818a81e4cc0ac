package store

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	aegisv1 "github.com/photoncloud/photoncloud/api/aegis/v1"
)

// A delete is planned from the index at its revision R and carried out in
// transactions of at most MaxTxnOps operations: first the dependents (each
// guarded by its own mod revision, so that nothing changed since R is
// deleted by mistake), last the record itself, guarded by "nothing that
// depends on it was created after R" (a CreateRevision comparison over each
// dependent prefix). Every transaction also compares the record's own mod
// revision, so an update of the record (or an etag that stopped matching)
// stops the cascade at once. If a guard fails the delete is planned again
// from a newer index.

// unit is the deletion of one record with everything that only exists
// for it (secrets, reference and uniqueness keys).
type unit struct {
	cmps []clientv3.Cmp
	ops  []clientv3.Op
}

type planner struct {
	ix    *index
	now   time.Time
	force bool
	// touch: removing a membership records the change on its group (the
	// group's etag moves). Off when the org or the group itself goes: a
	// transaction may not both write and delete the group's gver key.
	touch bool
	seen  map[string]bool
	units []unit
	// blockers lists dependents that need force.
	blockers []string
}

func (p *planner) add(e *entry, ops ...clientv3.Op) {
	if p.seen[e.key] {
		return
	}
	p.seen[e.key] = true
	p.units = append(p.units, unit{
		cmps: []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(e.key), "=", e.mod)},
		ops:  append([]clientv3.Op{clientv3.OpDelete(e.key)}, ops...),
	})
}

// ownOps are the keys that exist only for e.
func (p *planner) ownOps(e *entry) []clientv3.Op {
	var ops []clientv3.Op
	switch m := e.msg.(type) {
	case *aegisv1.User:
		ops = append(ops, clientv3.OpDelete(passwordKey(e.name)))
		for _, fi := range m.GetFederatedIdentities() {
			ops = append(ops, clientv3.OpDelete(federatedKey(fi.GetIssuer(), fi.GetSubject())))
		}
	case *aegisv1.ServiceAccount:
		for _, ci := range m.GetCertificateIdentities() {
			if k, ok := certKey(ci); ok {
				ops = append(ops, clientv3.OpDelete(k))
			}
		}
	case *aegisv1.ServiceAccountKey:
		ops = append(ops, clientv3.OpDelete(keySecretKey(e.name)), clientv3.OpDelete(clientIDKey(lastSegment(e.name))))
	case *aegisv1.Group:
		ops = append(ops, clientv3.OpDelete(gverKey(e.name)))
	case *aegisv1.Binding:
		ops = append(ops, clientv3.OpDelete(refKey(m.GetMember(), e.name)))
		if !strings.HasPrefix(m.GetRole(), "roles/") {
			ops = append(ops, clientv3.OpDelete(refKey(m.GetRole(), e.name)))
		}
	case *aegisv1.GroupMember:
		g, mem, _ := splitMemberName(e.name)
		ops = append(ops, clientv3.OpDelete(refKey(mem, g)))
	}
	return ops
}

func (p *planner) binding(e *entry) { p.add(e, p.ownOps(e)...) }

// membership deletes a membership.
func (p *planner) membership(e *entry) {
	ops := p.ownOps(e)
	if p.touch {
		g, _, _ := splitMemberName(e.name)
		ops = append(ops, clientv3.OpPut(gverKey(g), p.now.UTC().Format(time.RFC3339Nano)))
	}
	p.add(e, ops...)
}

// referrers deletes the bindings that name target (as member or role) and,
// for a principal, its memberships.
func (p *planner) referrers(target string) {
	refs := make([]string, 0, len(p.ix.refs[target]))
	for r := range p.ix.refs[target] {
		refs = append(refs, r)
	}
	sort.Strings(refs)
	for _, r := range refs {
		if e := p.ix.getName(kindBinding, r); e != nil {
			p.binding(e)
		} else if e := p.ix.get(memberKey(r, target)); e != nil {
			p.membership(e)
		}
	}
}

func (p *planner) principal(e *entry) {
	p.referrers(e.name)
	if e.kind == kindServiceAccount {
		p.ix.ascend(kindKey.key(e.name+"/keys/"), "", func(k *entry) bool {
			p.add(k, p.ownOps(k)...)
			return true
		})
	}
	p.add(e, p.ownOps(e)...)
}

func (p *planner) group(e *entry) {
	p.ix.ascend(kindMember.key(e.name+"/"), "", func(m *entry) bool {
		p.membership(m)
		return true
	})
	p.referrers(e.name)
	p.add(e, p.ownOps(e)...)
}

func (p *planner) role(e *entry) {
	n := 0
	for r := range p.ix.refs[e.name] {
		if p.ix.getName(kindBinding, r) != nil {
			n++
		}
	}
	if n > 0 && !p.force {
		p.blockers = append(p.blockers, fmt.Sprintf("%d bindings", n))
	}
	p.referrers(e.name)
	p.add(e)
}

// children adds every record of kind k directly below prefix with fn, and
// notes it as a blocker when force is not set.
func (p *planner) children(k kind, prefix string, fn func(*entry)) {
	n := 0
	p.ix.ascend(k.key(prefix), "", func(c *entry) bool {
		if k == kindServiceAccount && strings.Contains(c.name[len(prefix):], "/") {
			return true // a project's service account below an org
		}
		n++
		fn(c)
		return true
	})
	if n > 0 && !p.force {
		p.blockers = append(p.blockers, fmt.Sprintf("%d %ss", n, k))
	}
}

func (p *planner) project(e *entry) {
	p.children(kindServiceAccount, e.name+"/serviceAccounts/", p.principal)
	p.children(kindBinding, e.name+"/bindings/", p.binding)
	p.add(e)
}

func (p *planner) org(e *entry) {
	// Bindings first, then what they name: the order only matters for
	// what a concurrent reader of a half-done cascade sees.
	p.children(kindBinding, e.name+"/bindings/", p.binding)
	p.children(kindProject, e.name+"/projects/", p.project)
	p.children(kindServiceAccount, e.name+"/serviceAccounts/", p.principal)
	p.children(kindUser, e.name+"/users/", p.principal)
	p.children(kindGroup, e.name+"/groups/", p.group)
	p.children(kindRole, e.name+"/roles/", p.role)
	p.add(e)
}

// newGuards are the comparisons of the final transaction: nothing that
// depends on the record was created after rev.
func newGuards(k kind, name string, rev int64) []clientv3.Cmp {
	var prefixes []string
	switch k {
	case kindUser:
		prefixes = []string{refsOf(name)}
	case kindServiceAccount:
		prefixes = []string{refsOf(name), kindKey.key(name + "/")}
	case kindGroup:
		prefixes = []string{refsOf(name), kindMember.key(name + "/")}
	case kindRole:
		prefixes = []string{refsOf(name)}
	case kindProject:
		prefixes = []string{
			kindServiceAccount.key(name + "/"), kindKey.key(name + "/"),
			kindBinding.key(name + "/"), refPrefix + name + "/",
		}
	case kindOrg:
		for _, k := range []kind{kindProject, kindUser, kindGroup, kindMember, kindServiceAccount, kindKey, kindRole, kindBinding} {
			prefixes = append(prefixes, k.key(name+"/"))
		}
		prefixes = append(prefixes, refPrefix+name+"/")
	}
	cmps := make([]clientv3.Cmp, 0, len(prefixes))
	for _, p := range prefixes {
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(p), "<", rev+1).WithPrefix())
	}
	return cmps
}

// batch is one transaction of a cascade.
type batch struct {
	cmps []clientv3.Cmp
	ops  []clientv3.Op
	keys map[string]bool
}

func newBatch(base []clientv3.Cmp) *batch {
	return &batch{cmps: append([]clientv3.Cmp(nil), base...), keys: map[string]bool{}}
}

func (b *batch) fits(u unit, limit int) bool {
	return len(b.cmps)+len(u.cmps) <= limit && len(b.ops)+len(u.ops) <= limit
}

// add appends u; an operation on a key the batch already writes is
// dropped (two memberships of one group both touching it), since a
// transaction may not write one key twice.
func (b *batch) add(u unit) {
	b.cmps = append(b.cmps, u.cmps...)
	for _, op := range u.ops {
		k := string(op.KeyBytes())
		if b.keys[k] {
			continue
		}
		b.keys[k] = true
		b.ops = append(b.ops, op)
	}
}

// delete deletes the record name of kind k with its dependents.
func (s *Store) delete(ctx context.Context, k kind, name, etag string, force bool) error {
	for attempt := 0; attempt < maxAttempts; attempt++ {
		sn, err := s.read(ctx, k, name, etag)
		if err != nil {
			return err
		}
		batches, err := s.planDelete(sn, force)
		if err == errRetry {
			continue
		}
		if err != nil {
			return err
		}
		done := true
		for _, b := range batches {
			resp, err := s.txn(ctx, b.cmps, b.ops, nil)
			if err != nil {
				return fmt.Errorf("delete %s %q: %w", k, clip(name), err)
			}
			if !resp.Succeeded {
				if err := s.waitFailed(ctx, resp); err != nil {
					return err
				}
				done = false
				break
			}
		}
		if done {
			return nil
		}
	}
	return fmt.Errorf("%w: delete %s %q", ErrConflict, k, clip(name))
}

// planDelete plans the delete of the record read as sn from the current
// index and packs it into transactions.
func (s *Store) planDelete(sn *snapshot, force bool) ([]*batch, error) {
	s.ix.mu.RLock()
	defer s.ix.mu.RUnlock()
	e := s.ix.get(sn.e.key)
	if e == nil || e.mod != sn.e.mod || s.ix.etagRev(e) != sn.etagRev {
		return nil, errRetry // changed since read: read again
	}
	p := &planner{ix: s.ix, now: s.now(), force: force, seen: map[string]bool{},
		touch: e.kind != kindOrg && e.kind != kindGroup}
	switch e.kind {
	case kindOrg:
		p.org(e)
	case kindProject:
		p.project(e)
	case kindUser, kindServiceAccount:
		p.principal(e)
	case kindGroup:
		p.group(e)
	case kindRole:
		p.role(e)
	default:
		p.add(e, p.ownOps(e)...)
	}
	if len(p.blockers) > 0 {
		return nil, preconditionf("%s %q still has %s; delete them first or use force", e.kind, clip(e.name), strings.Join(p.blockers, ", "))
	}
	// The record's own unit was added last.
	rootUnit := p.units[len(p.units)-1]
	deps := p.units[:len(p.units)-1]
	rootCmps := sn.guards()
	limit := s.opts.MaxTxnOps
	var out []*batch
	cur := newBatch(rootCmps)
	for _, u := range deps {
		if !cur.fits(u, limit) {
			out = append(out, cur)
			cur = newBatch(rootCmps)
		}
		cur.add(u)
	}
	final := unit{ops: rootUnit.ops, cmps: newGuards(e.kind, e.name, s.ix.rev)}
	if !cur.fits(final, limit) {
		out = append(out, cur)
		cur = newBatch(rootCmps)
	}
	cur.add(final)
	return append(out, cur), nil
}
