package store

import (
	"log/slog"
	"strings"
	"time"

	aegisv1 "github.com/photoncloud/photoncloud/api/aegis/v1"
	"github.com/photoncloud/photoncloud/internal/aegis/policy"
	"github.com/photoncloud/photoncloud/internal/aegis/token"
)

// The evaluator speaks its own names: principals and groups are
// "users/<uid>", "serviceAccounts/<uid>" and "groups/<uid>" (the policy
// package wants installation-wide ids that are never reused, which is what
// uids are), built-in roles are bare ("SystemAdmin" for roles/SystemAdmin),
// custom roles keep their API name, and a binding's id is "b<create
// revision>" (see bindingPolicyID). PolicyPrincipal and the *Name methods
// translate.

// feed collects, while the index applies one watch response under its
// lock, what the evaluator, the revocation list and the signing-key
// listeners must learn; the Store hands it over after the lock is
// released. A nil *feed ignores everything (used by full loads).
type feed struct {
	lg   *slog.Logger
	ops  []func(tx *policy.Tx) error
	revs []func(l *token.RevocationList)
	keys bool
}

func (f *feed) op(fn func(tx *policy.Tx) error) {
	if f != nil {
		f.ops = append(f.ops, fn)
	}
}

func (f *feed) revokeToken(jti string, exp time.Time) {
	if f != nil {
		f.revs = append(f.revs, func(l *token.RevocationList) { l.RevokeToken(jti, exp) })
	}
}

func (f *feed) forgetToken(jti string) {
	if f != nil {
		f.revs = append(f.revs, func(l *token.RevocationList) { l.ForgetToken(jti) })
	}
}

func (f *feed) revokeSubject(sub string, at time.Time) {
	if f != nil {
		f.revs = append(f.revs, func(l *token.RevocationList) { l.RevokePrincipal(sub, at) })
	}
}

func (f *feed) forgetSubject(sub string) {
	if f != nil {
		f.revs = append(f.revs, func(l *token.RevocationList) { l.ForgetPrincipal(sub) })
	}
}

func (f *feed) keysChanged() {
	if f != nil {
		f.keys = true
	}
}

// run applies the collected evaluator changes as one transaction, so that
// decisions see a watch response all at once or not at all.
func (f *feed) run(ev *policy.Evaluator, rev int64, reset bool) {
	err := ev.Update(func(tx *policy.Tx) error {
		if reset {
			if err := tx.Reset(); err != nil {
				return err
			}
		}
		for _, op := range f.ops {
			if err := op(tx); err != nil {
				// The Tx left its state unchanged; one bad record must
				// not hold back every other change.
				f.lg.Warn("evaluator rejected a stored record", "err", err)
			}
		}
		return tx.SetRevision(rev)
	})
	if err != nil {
		f.lg.Error("evaluator update failed", "revision", rev, "err", err)
	}
}

// recordPut tells the evaluator about a new or changed record.
func (f *feed) recordPut(ix *index, old, e *entry) {
	if f == nil {
		return
	}
	switch m := e.msg.(type) {
	case *aegisv1.Org:
		wasSuspended := old != nil && old.msg.(*aegisv1.Org).GetState() == aegisv1.Org_STATE_SUSPENDED
		if wasSuspended != (m.GetState() == aegisv1.Org_STATE_SUSPENDED) {
			// Suspension disables every principal of the org.
			for _, k := range []kind{kindUser, kindServiceAccount} {
				ix.ascend(k.prefix()+e.name+"/", "", func(pe *entry) bool {
					f.putPrincipal(ix, nil, pe)
					return true
				})
			}
		}
	case *aegisv1.User, *aegisv1.ServiceAccount:
		f.putPrincipal(ix, old, e)
	case *aegisv1.Group:
		sub := "groups/" + m.GetUid()
		if old != nil && old.pol != "" && old.pol != sub {
			oldSub := old.pol
			f.op(func(tx *policy.Tx) error { return tx.DeleteGroup(oldSub) })
		}
		e.pol = sub
		g := policy.Group{Name: sub, Org: policy.OrgOf(e.name), ResourceName: e.name}
		f.op(func(tx *policy.Tx) error { return tx.PutGroup(g) })
	case *aegisv1.GroupMember:
		if old != nil && old.pol != "" {
			g, mem := old.pol, old.pol2
			f.op(func(tx *policy.Tx) error { return tx.RemoveMember(g, mem) })
		}
		group, member, _ := splitMemberName(e.name)
		gsub, msub := ix.subjectOf(group), ix.subjectOf(member)
		if gsub == "" || msub == "" {
			f.lg.Warn("membership refers to a missing group or member", "group", group, "member", member)
			return
		}
		e.pol, e.pol2 = gsub, msub
		f.op(func(tx *policy.Tx) error { return tx.AddMember(gsub, msub) })
	case *aegisv1.Role:
		r := policyRole(e.name, m)
		f.op(func(tx *policy.Tx) error { return tx.PutRole(r) })
	case *aegisv1.Binding:
		id := bindingPolicyID(e)
		sub := ix.subjectOf(m.GetMember())
		if sub == "" {
			f.lg.Warn("binding names a missing member; it cannot apply", "binding", e.name, "member", m.GetMember())
			if old != nil && old.pol != "" {
				f.op(func(tx *policy.Tx) error { return tx.DeleteBinding(id) })
			}
			return
		}
		e.pol, e.pol2 = id, sub
		b := policyBinding(id, sub, m)
		f.op(func(tx *policy.Tx) error { return tx.PutBinding(b) })
	}
}

func (f *feed) putPrincipal(ix *index, old, e *entry) {
	p := ix.principalOf(e)
	if old != nil && old.pol != "" && old.pol != p.Name {
		oldSub := old.pol
		f.op(func(tx *policy.Tx) error { return tx.DeletePrincipal(oldSub) })
	}
	e.pol = p.Name
	f.op(func(tx *policy.Tx) error { return tx.PutPrincipal(p) })
}

// recordDeleted undoes what recordPut fed for old.
func (f *feed) recordDeleted(_ *index, old *entry) {
	if f == nil {
		return
	}
	switch old.kind {
	case kindUser, kindServiceAccount:
		if sub := old.pol; sub != "" {
			f.op(func(tx *policy.Tx) error { return tx.DeletePrincipal(sub) })
		}
	case kindGroup:
		if sub := old.pol; sub != "" {
			f.op(func(tx *policy.Tx) error { return tx.DeleteGroup(sub) })
		}
	case kindMember:
		if g, mem := old.pol, old.pol2; g != "" {
			f.op(func(tx *policy.Tx) error { return tx.RemoveMember(g, mem) })
		}
	case kindRole:
		name := old.name
		f.op(func(tx *policy.Tx) error { return tx.DeleteRole(name) })
	case kindBinding:
		if id := old.pol; id != "" {
			f.op(func(tx *policy.Tx) error { return tx.DeleteBinding(id) })
		}
	}
}

// fullFeed feeds everything in ix, in an order in which every reference
// resolves: principals and groups, roles, memberships, bindings.
func fullFeed(ix *index, f *feed) {
	for _, k := range []kind{kindUser, kindServiceAccount, kindGroup, kindRole, kindMember, kindBinding} {
		ix.ascend(k.prefix(), "", func(e *entry) bool {
			f.recordPut(ix, nil, e)
			return true
		})
	}
	for jti, exp := range ix.revokedTokens {
		f.revokeToken(jti, exp)
	}
	for sub, at := range ix.revokedSubjects {
		f.revokeSubject(sub, at)
	}
}

// subjectOf returns the policy subject of a user, service account or
// group name, or "" if it is not in the index.
func (ix *index) subjectOf(name string) string {
	return ix.subjectOfName[name]
}

func (ix *index) orgSuspended(org string) bool {
	e := ix.getName(kindOrg, org)
	return e != nil && e.msg.(*aegisv1.Org).GetState() == aegisv1.Org_STATE_SUSPENDED
}

// principalOf converts a user or service-account entry.
func (ix *index) principalOf(e *entry) policy.Principal {
	n, _ := parseName(e.name)
	suspended := ix.orgSuspended(n.orgName())
	switch m := e.msg.(type) {
	case *aegisv1.User:
		return policy.Principal{
			Name:         "users/" + m.GetUid(),
			ResourceName: e.name,
			Org:          n.org,
			Disabled:     m.GetState() == aegisv1.User_STATE_DISABLED || suspended,
			Labels:       m.GetLabels(),
		}
	case *aegisv1.ServiceAccount:
		return policy.Principal{
			Name:         "serviceAccounts/" + m.GetUid(),
			ResourceName: e.name,
			Org:          n.org,
			Project:      n.project,
			Disabled:     m.GetState() == aegisv1.ServiceAccount_STATE_DISABLED || suspended,
			Labels:       m.GetLabels(),
		}
	}
	return policy.Principal{}
}

func policyRole(name string, r *aegisv1.Role) policy.Role {
	return policy.Role{
		Name:        name,
		Title:       r.GetDisplayName(),
		Description: r.GetDescription(),
		Permissions: r.GetPermissions(),
	}
}

// policyRoleName maps an API role name to the evaluator's.
func policyRoleName(role string) string {
	if r, ok := strings.CutPrefix(role, "roles/"); ok {
		return r
	}
	return role
}

func policyBinding(id, subject string, b *aegisv1.Binding) policy.Binding {
	pb := policy.Binding{
		ID:        id,
		Subject:   subject,
		Role:      policyRoleName(b.GetRole()),
		Scope:     b.GetScope(),
		Effect:    policy.EffectAllow,
		Condition: b.GetCondition().GetExpression(),
	}
	if b.GetEffect() == aegisv1.Binding_EFFECT_DENY {
		pb.Effect = policy.EffectDeny
	}
	if t := b.GetExpireTime(); t != nil {
		pb.ExpireTime = t.AsTime()
	}
	return pb
}
