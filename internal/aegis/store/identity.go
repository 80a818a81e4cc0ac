package store

import (
	"context"
	"fmt"
	"slices"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/types/known/timestamppb"

	aegisv1 "github.com/photoncloud/photoncloud/api/aegis/v1"
	"github.com/photoncloud/photoncloud/internal/aegis/password"
)

// ---- users ----

func checkPasswordHash(h string) error {
	if h == "" {
		return nil
	}
	if _, err := password.ParsePHC(h); err != nil {
		return invalidf("password hash: %v", err)
	}
	return nil
}

func fedChecks(name string, fis []*aegisv1.FederatedIdentity) ([]keyCheck, []clientv3.Op) {
	var checks []keyCheck
	var ops []clientv3.Op
	for _, fi := range fis {
		k := federatedKey(fi.GetIssuer(), fi.GetSubject())
		checks = append(checks, keyCheck{key: k, err: fmt.Errorf("%w: federated identity (%q, %q) belongs to another user",
			ErrAlreadyExists, clip(fi.GetIssuer()), clip(fi.GetSubject()))})
		ops = append(ops, clientv3.OpPut(k, name))
	}
	return checks, ops
}

// CreateUser creates parent/users/{userID}. passwordHash is the user's
// argon2id PHC string (from password.Hasher), or "" for a user without
// password; it is stored apart from the record and never returned by Get
// or List. Each federated identity must be unused in the installation.
func (s *Store) CreateUser(ctx context.Context, parent, userID string, user *aegisv1.User, passwordHash string) (*aegisv1.User, error) {
	if _, err := parseKind(parent, kindOrg); err != nil {
		return nil, err
	}
	if err := checkLabel("user id", userID); err != nil {
		return nil, err
	}
	if err := checkPasswordHash(passwordHash); err != nil {
		return nil, err
	}
	name := parent + "/users/" + userID
	u := cloneOr(user, &aegisv1.User{})
	now := s.nowpb()
	u.Name, u.Uid, u.CreateTime, u.UpdateTime, u.LastLoginTime, u.PasswordUpdateTime = name, newUID(), now, now, nil, nil
	if u.State == aegisv1.User_STATE_UNSPECIFIED {
		u.State = aegisv1.User_STATE_ACTIVE
	}
	if passwordHash != "" {
		u.PasswordUpdateTime = now
	}
	if err := validateUser(u); err != nil {
		return nil, err
	}
	put, err := putRecord(kindUser, name, u)
	if err != nil {
		return nil, err
	}
	fedCheck, fedOps := fedChecks(name, u.GetFederatedIdentities())
	ops := append([]clientv3.Op{put}, fedOps...)
	if passwordHash != "" {
		ops = append(ops, clientv3.OpPut(passwordKey(name), passwordHash))
	}
	rev, err := s.retry(ctx, "create user", func() (*writeSpec, error) {
		return &writeSpec{
			mustExist: []keyCheck{existsCheck(kindOrg, parent, fmt.Errorf("%w: org %q", ErrParentNotFound, parent))},
			mustNotExist: append([]keyCheck{existsCheck(kindUser, name, fmt.Errorf("%w: user %q", ErrAlreadyExists, name))},
				fedCheck...),
			ops: ops,
		}, nil
	})
	if err != nil {
		return nil, err
	}
	setEtag(u, rev)
	return u, nil
}

// GetUser returns a user (without password hash) from the index.
func (s *Store) GetUser(name string) (*aegisv1.User, error) {
	return get[*aegisv1.User](s, kindUser, name)
}

// ListUsers lists the users of an org by name.
func (s *Store) ListUsers(parent string, opts ListOptions[*aegisv1.User]) ([]*aegisv1.User, string, error) {
	if _, err := parseKind(parent, kindOrg); err != nil {
		return nil, "", err
	}
	return list(s, kindUser.key(parent+"/users/"), opts)
}

// UpdateUser changes a user through fn (see UpdateOrg). name, uid,
// create_time, last_login_time and password_update_time are kept. Changed
// federated identities are claimed and released in the same transaction
// (ErrAlreadyExists if another user has one).
func (s *Store) UpdateUser(ctx context.Context, name, etag string, fn func(*aegisv1.User) error) (*aegisv1.User, error) {
	return update(ctx, s, kindUser, name, etag, func(cur, next *aegisv1.User) (*writeSpec, error) {
		if err := fn(next); err != nil {
			return nil, err
		}
		next.Name, next.Uid, next.CreateTime, next.UpdateTime = cur.Name, cur.Uid, cur.CreateTime, s.nowpb()
		next.LastLoginTime, next.PasswordUpdateTime = cur.LastLoginTime, cur.PasswordUpdateTime
		if next.State == aegisv1.User_STATE_UNSPECIFIED {
			next.State = aegisv1.User_STATE_ACTIVE
		}
		if err := validateUser(next); err != nil {
			return nil, err
		}
		old := map[fedID]bool{}
		for _, fi := range cur.GetFederatedIdentities() {
			old[fedID{fi.GetIssuer(), fi.GetSubject()}] = true
		}
		spec := &writeSpec{}
		var added []*aegisv1.FederatedIdentity
		for _, fi := range next.GetFederatedIdentities() {
			k := fedID{fi.GetIssuer(), fi.GetSubject()}
			if old[k] {
				delete(old, k)
				continue
			}
			added = append(added, fi)
		}
		spec.mustNotExist, spec.ops = fedChecks(name, added)
		for k := range old {
			spec.ops = append(spec.ops, clientv3.OpDelete(federatedKey(k.issuer, k.subject)))
		}
		return spec, nil
	})
}

// SetUserPassword replaces the user's password hash ("" removes the
// password) and sets password_update_time. It returns the updated user.
// Revoking the user's refresh tokens is the caller's business.
func (s *Store) SetUserPassword(ctx context.Context, name, etag, passwordHash string) (*aegisv1.User, error) {
	if err := checkPasswordHash(passwordHash); err != nil {
		return nil, err
	}
	return update(ctx, s, kindUser, name, etag, func(_, next *aegisv1.User) (*writeSpec, error) {
		now := s.nowpb()
		next.UpdateTime = now
		if passwordHash == "" {
			next.PasswordUpdateTime = nil
			return &writeSpec{ops: []clientv3.Op{clientv3.OpDelete(passwordKey(name))}}, nil
		}
		next.PasswordUpdateTime = now
		return &writeSpec{ops: []clientv3.Op{clientv3.OpPut(passwordKey(name), passwordHash)}}, nil
	})
}

// RecordUserLogin sets the user's last_login_time to at (the etag moves;
// update_time does not). Writes closer than a minute apart are skipped so
// that a burst of logins costs one write.
func (s *Store) RecordUserLogin(ctx context.Context, name string, at time.Time) error {
	if u, err := s.GetUser(name); err == nil && u.GetLastLoginTime() != nil &&
		at.Sub(u.GetLastLoginTime().AsTime()) < time.Minute {
		return nil
	}
	_, err := update(ctx, s, kindUser, name, "", func(_, next *aegisv1.User) (*writeSpec, error) {
		next.LastLoginTime = timestamppb.New(at)
		return nil, nil
	})
	return err
}

// DeleteUser deletes a user with its password, federated identities,
// group memberships and the bindings that name it.
func (s *Store) DeleteUser(ctx context.Context, name, etag string) error {
	if _, err := parseKind(name, kindUser); err != nil {
		return err
	}
	return s.delete(ctx, kindUser, name, etag, true)
}

// ---- groups ----

// CreateGroup creates parent/groups/{groupID}.
func (s *Store) CreateGroup(ctx context.Context, parent, groupID string, group *aegisv1.Group) (*aegisv1.Group, error) {
	if _, err := parseKind(parent, kindOrg); err != nil {
		return nil, err
	}
	if err := checkLabel("group id", groupID); err != nil {
		return nil, err
	}
	name := parent + "/groups/" + groupID
	g := cloneOr(group, &aegisv1.Group{})
	now := s.nowpb()
	g.Name, g.Uid, g.CreateTime, g.UpdateTime = name, newUID(), now, now
	if err := validateGroup(g); err != nil {
		return nil, err
	}
	put, err := putRecord(kindGroup, name, g)
	if err != nil {
		return nil, err
	}
	rev, err := s.retry(ctx, "create group", func() (*writeSpec, error) {
		return &writeSpec{
			mustExist:    []keyCheck{existsCheck(kindOrg, parent, fmt.Errorf("%w: org %q", ErrParentNotFound, parent))},
			mustNotExist: []keyCheck{existsCheck(kindGroup, name, fmt.Errorf("%w: group %q", ErrAlreadyExists, name))},
			// A stale membership-change key of an earlier group of the
			// same name would make the new group's etag jump; drop it.
			ops: []clientv3.Op{put, clientv3.OpDelete(gverKey(name))},
		}, nil
	})
	if err != nil {
		return nil, err
	}
	setEtag(g, rev)
	return g, nil
}

// GetGroup returns a group with its member count from the index.
func (s *Store) GetGroup(name string) (*aegisv1.Group, error) {
	return get[*aegisv1.Group](s, kindGroup, name)
}

// ListGroups lists the groups of an org by name.
func (s *Store) ListGroups(parent string, opts ListOptions[*aegisv1.Group]) ([]*aegisv1.Group, string, error) {
	if _, err := parseKind(parent, kindOrg); err != nil {
		return nil, "", err
	}
	return list(s, kindGroup.key(parent+"/groups/"), opts)
}

// UpdateGroup changes a group through fn (see UpdateOrg).
func (s *Store) UpdateGroup(ctx context.Context, name, etag string, fn func(*aegisv1.Group) error) (*aegisv1.Group, error) {
	g, err := update(ctx, s, kindGroup, name, etag, func(cur, next *aegisv1.Group) (*writeSpec, error) {
		if err := fn(next); err != nil {
			return nil, err
		}
		next.Name, next.Uid, next.CreateTime, next.UpdateTime = cur.Name, cur.Uid, cur.CreateTime, s.nowpb()
		next.MemberCount = 0
		return nil, validateGroup(next)
	})
	if err != nil {
		return nil, err
	}
	s.ix.mu.RLock()
	g.MemberCount = int32(s.ix.memberCount[name])
	s.ix.mu.RUnlock()
	return g, nil
}

// DeleteGroup deletes a group, its memberships and the bindings that name
// it; the members themselves stay.
func (s *Store) DeleteGroup(ctx context.Context, name, etag string) error {
	if _, err := parseKind(name, kindGroup); err != nil {
		return err
	}
	return s.delete(ctx, kindGroup, name, etag, true)
}

// memberRecordKey returns the record key of a group member (a user or
// service account of org) and its kind.
func memberRecordKey(member, org string) (string, aegisv1.PrincipalKind, error) {
	n, err := parseName(member)
	if err != nil {
		return "", 0, err
	}
	var pk aegisv1.PrincipalKind
	switch n.kind {
	case kindUser:
		pk = aegisv1.PrincipalKind_PRINCIPAL_KIND_USER
	case kindServiceAccount:
		pk = aegisv1.PrincipalKind_PRINCIPAL_KIND_SERVICE_ACCOUNT
	default:
		return "", 0, invalidf("a group member is a user or a service account, not %q", clip(member))
	}
	if n.org != org {
		return "", 0, invalidf("%q is not in the group's org %q", clip(member), org)
	}
	return n.kind.key(member), pk, nil
}

// AddGroupMember adds a user or service account of the group's org
// (including its projects' service accounts) to a group. It fails with
// ErrAlreadyExists if it is a member, ErrParentNotFound if the member does
// not exist. The group's etag changes.
func (s *Store) AddGroupMember(ctx context.Context, group, member, etag string) (*aegisv1.GroupMember, error) {
	gn, err := parseKind(group, kindGroup)
	if err != nil {
		return nil, err
	}
	mkey, mkind, err := memberRecordKey(member, gn.org)
	if err != nil {
		return nil, err
	}
	gm := &aegisv1.GroupMember{Member: member, MemberKind: mkind}
	_, err = s.retry(ctx, "add group member", func() (*writeSpec, error) {
		sn, err := s.read(ctx, kindGroup, group, etag)
		if err != nil {
			return nil, err
		}
		now := s.now()
		gm.AddTime = timestamppb.New(now)
		put, err := putRecord(kindMember, group+"/"+member, gm)
		if err != nil {
			return nil, err
		}
		spec := &writeSpec{
			mustExist: []keyCheck{
				existsCheck(kindGroup, group, notFoundf("group %q", group)),
				{key: mkey, err: fmt.Errorf("%w: member %q", ErrParentNotFound, member)},
			},
			mustNotExist: []keyCheck{{key: memberKey(group, member), err: fmt.Errorf("%w: %q is a member of %q", ErrAlreadyExists, member, group)}},
			ops: []clientv3.Op{put, clientv3.OpPut(refKey(member, group), ""),
				clientv3.OpPut(gverKey(group), now.UTC().Format(time.RFC3339Nano))},
		}
		if etag != "" {
			spec.guards = sn.guards()
		}
		return spec, nil
	})
	if err != nil {
		return nil, err
	}
	return gm, nil
}

// RemoveGroupMember removes a member from a group (ErrNotFound if it is
// not one). The group's etag changes.
func (s *Store) RemoveGroupMember(ctx context.Context, group, member, etag string) error {
	if _, err := parseKind(group, kindGroup); err != nil {
		return err
	}
	if _, err := parseName(member); err != nil {
		return err
	}
	_, err := s.retry(ctx, "remove group member", func() (*writeSpec, error) {
		sn, err := s.read(ctx, kindGroup, group, etag)
		if err != nil {
			return nil, err
		}
		spec := &writeSpec{
			mustExist: []keyCheck{{key: memberKey(group, member), err: notFoundf("%q is not a member of %q", clip(member), group)}},
			ops: []clientv3.Op{clientv3.OpDelete(memberKey(group, member)), clientv3.OpDelete(refKey(member, group)),
				clientv3.OpPut(gverKey(group), s.now().UTC().Format(time.RFC3339Nano))},
		}
		if etag != "" {
			spec.guards = sn.guards()
		}
		return spec, nil
	})
	return err
}

// ListGroupMembers lists a group's members by member name.
func (s *Store) ListGroupMembers(group string, opts ListOptions[*aegisv1.GroupMember]) ([]*aegisv1.GroupMember, string, error) {
	if _, err := s.GetGroup(group); err != nil {
		return nil, "", err
	}
	return list(s, memberKey(group, ""), opts)
}

// GroupsOf returns the names of the groups member belongs to, sorted.
func (s *Store) GroupsOf(member string) []string {
	s.ix.mu.RLock()
	defer s.ix.mu.RUnlock()
	out := make([]string, 0, len(s.ix.groupsOf[member]))
	for g := range s.ix.groupsOf[member] {
		out = append(out, g)
	}
	slices.Sort(out)
	return out
}

// ---- service accounts ----

func certChecks(name string, cis []*aegisv1.CertificateIdentity) ([]keyCheck, []clientv3.Op) {
	var checks []keyCheck
	var ops []clientv3.Op
	for _, ci := range cis {
		k, _ := certKey(ci)
		checks = append(checks, keyCheck{key: k, err: fmt.Errorf("%w: certificate identity %v belongs to another service account", ErrAlreadyExists, ci.GetMatch())})
		ops = append(ops, clientv3.OpPut(k, name))
	}
	return checks, ops
}

// CreateServiceAccount creates parent/serviceAccounts/{saID}, where parent
// is an org or a project. Each certificate identity must be unused.
func (s *Store) CreateServiceAccount(ctx context.Context, parent, saID string, sa *aegisv1.ServiceAccount) (*aegisv1.ServiceAccount, error) {
	c, err := parseContainer(parent, false)
	if err != nil {
		return nil, err
	}
	if err := checkLabel("service account id", saID); err != nil {
		return nil, err
	}
	name := parent + "/serviceAccounts/" + saID
	a := cloneOr(sa, &aegisv1.ServiceAccount{})
	now := s.nowpb()
	a.Name, a.Uid, a.CreateTime, a.UpdateTime = name, newUID(), now, now
	if a.State == aegisv1.ServiceAccount_STATE_UNSPECIFIED {
		a.State = aegisv1.ServiceAccount_STATE_ACTIVE
	}
	if err := validateServiceAccount(a); err != nil {
		return nil, err
	}
	put, err := putRecord(kindServiceAccount, name, a)
	if err != nil {
		return nil, err
	}
	checks, ops := certChecks(name, a.GetCertificateIdentities())
	rev, err := s.retry(ctx, "create service account", func() (*writeSpec, error) {
		return &writeSpec{
			mustExist: []keyCheck{{key: c.key(), err: fmt.Errorf("%w: %q", ErrParentNotFound, parent)}},
			mustNotExist: append([]keyCheck{existsCheck(kindServiceAccount, name,
				fmt.Errorf("%w: service account %q", ErrAlreadyExists, name))}, checks...),
			ops: append([]clientv3.Op{put}, ops...),
		}, nil
	})
	if err != nil {
		return nil, err
	}
	setEtag(a, rev)
	return a, nil
}

// GetServiceAccount returns a service account from the index.
func (s *Store) GetServiceAccount(name string) (*aegisv1.ServiceAccount, error) {
	return get[*aegisv1.ServiceAccount](s, kindServiceAccount, name)
}

// ListServiceAccounts lists the service accounts directly in an org or a
// project, by name.
func (s *Store) ListServiceAccounts(parent string, opts ListOptions[*aegisv1.ServiceAccount]) ([]*aegisv1.ServiceAccount, string, error) {
	if _, err := parseContainer(parent, false); err != nil {
		return nil, "", err
	}
	return list(s, kindServiceAccount.key(parent+"/serviceAccounts/"), opts)
}

// UpdateServiceAccount changes a service account through fn (see
// UpdateOrg); changed certificate identities are claimed and released in
// the same transaction.
func (s *Store) UpdateServiceAccount(ctx context.Context, name, etag string, fn func(*aegisv1.ServiceAccount) error) (*aegisv1.ServiceAccount, error) {
	return update(ctx, s, kindServiceAccount, name, etag, func(cur, next *aegisv1.ServiceAccount) (*writeSpec, error) {
		if err := fn(next); err != nil {
			return nil, err
		}
		next.Name, next.Uid, next.CreateTime, next.UpdateTime = cur.Name, cur.Uid, cur.CreateTime, s.nowpb()
		if next.State == aegisv1.ServiceAccount_STATE_UNSPECIFIED {
			next.State = aegisv1.ServiceAccount_STATE_ACTIVE
		}
		if err := validateServiceAccount(next); err != nil {
			return nil, err
		}
		old := map[string]bool{}
		for _, ci := range cur.GetCertificateIdentities() {
			k, _ := certKey(ci)
			old[k] = true
		}
		var added []*aegisv1.CertificateIdentity
		for _, ci := range next.GetCertificateIdentities() {
			k, _ := certKey(ci)
			if old[k] {
				delete(old, k)
				continue
			}
			added = append(added, ci)
		}
		spec := &writeSpec{}
		spec.mustNotExist, spec.ops = certChecks(name, added)
		for k := range old {
			spec.ops = append(spec.ops, clientv3.OpDelete(k))
		}
		return spec, nil
	})
}

// DeleteServiceAccount deletes a service account with its keys, its
// certificate identities, its group memberships and the bindings that name
// it.
func (s *Store) DeleteServiceAccount(ctx context.Context, name, etag string) error {
	if _, err := parseKind(name, kindServiceAccount); err != nil {
		return err
	}
	return s.delete(ctx, kindServiceAccount, name, etag, true)
}

// ---- service account keys ----

// CreateServiceAccountKey creates a key of the service account parent,
// with a generated id that is also its client_id and sorts by creation
// time. key supplies description and expire_time. secretHash is what the
// authentication layer will compare the client secret against; it is
// stored apart from the record and never returned by Get or List (nor is
// client_secret: the caller fills it into its response). A service account
// has at most 10 keys (ErrFailedPrecondition).
func (s *Store) CreateServiceAccountKey(ctx context.Context, parent string, key *aegisv1.ServiceAccountKey, secretHash string) (*aegisv1.ServiceAccountKey, error) {
	if _, err := parseKind(parent, kindServiceAccount); err != nil {
		return nil, err
	}
	if secretHash == "" {
		return nil, invalidf("a key needs a secret hash")
	}
	if err := checkText("description", key.GetDescription(), maxDescription); err != nil {
		return nil, err
	}
	now := s.now()
	id := s.sortableID("k", now)
	name := parent + "/keys/" + id
	k := &aegisv1.ServiceAccountKey{
		Name: name, ClientId: id, Description: key.GetDescription(),
		ExpireTime: key.GetExpireTime(), CreateTime: timestamppb.New(now),
	}
	put, err := putRecord(kindKey, name, k)
	if err != nil {
		return nil, err
	}
	keysPrefix := kindKey.key(parent + "/keys/")
	rev, err := s.retry(ctx, "create service account key", func() (*writeSpec, error) {
		s.ix.mu.RLock()
		n, rev := 0, s.ix.rev
		s.ix.ascend(keysPrefix, "", func(*entry) bool { n++; return true })
		s.ix.mu.RUnlock()
		if n >= maxKeysPerAccount {
			return nil, preconditionf("service account %q already has %d keys", parent, n)
		}
		return &writeSpec{
			mustExist: []keyCheck{existsCheck(kindServiceAccount, parent, fmt.Errorf("%w: service account %q", ErrParentNotFound, parent))},
			mustNotExist: []keyCheck{
				existsCheck(kindKey, name, fmt.Errorf("%w: key %q", ErrAlreadyExists, name)),
				{key: clientIDKey(id), err: fmt.Errorf("%w: client id %q", ErrAlreadyExists, id)},
			},
			// The count above is only right if no key was added since.
			guards: []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(keysPrefix), "<", rev+1).WithPrefix()},
			ops:    []clientv3.Op{put, clientv3.OpPut(keySecretKey(name), secretHash), clientv3.OpPut(clientIDKey(id), name)},
		}, nil
	})
	if err != nil {
		return nil, err
	}
	setEtag(k, rev)
	return k, nil
}

// GetServiceAccountKey returns a key, without secret, from the index.
func (s *Store) GetServiceAccountKey(name string) (*aegisv1.ServiceAccountKey, error) {
	return get[*aegisv1.ServiceAccountKey](s, kindKey, name)
}

// ListServiceAccountKeys lists a service account's keys, without secrets,
// in creation order.
func (s *Store) ListServiceAccountKeys(parent string, opts ListOptions[*aegisv1.ServiceAccountKey]) ([]*aegisv1.ServiceAccountKey, string, error) {
	if _, err := parseKind(parent, kindServiceAccount); err != nil {
		return nil, "", err
	}
	return list(s, kindKey.key(parent+"/keys/"), opts)
}

// DeleteServiceAccountKey deletes a key with its secret.
func (s *Store) DeleteServiceAccountKey(ctx context.Context, name, etag string) error {
	if _, err := parseKind(name, kindKey); err != nil {
		return err
	}
	return s.delete(ctx, kindKey, name, etag, true)
}

// RecordKeyUse sets a key's last_use_time to at, with a precision of an
// hour (as the API promises): a key used every second costs one write an
// hour. The key's etag moves when it is written.
func (s *Store) RecordKeyUse(ctx context.Context, name string, at time.Time) error {
	if k, err := s.GetServiceAccountKey(name); err == nil && k.GetLastUseTime() != nil &&
		at.Sub(k.GetLastUseTime().AsTime()) < time.Hour {
		return nil
	}
	_, err := update(ctx, s, kindKey, name, "", func(_, next *aegisv1.ServiceAccountKey) (*writeSpec, error) {
		next.LastUseTime = timestamppb.New(at)
		return nil, nil
	})
	return err
}
