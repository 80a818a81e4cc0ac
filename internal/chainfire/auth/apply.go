package auth

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"maps"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"golang.org/x/crypto/bcrypt"
	"google.golang.org/protobuf/proto"
)

// rootPerm is what RoleGet reports for the root role: everything.
func rootPerm() *authpb.Permission {
	return &authpb.Permission{PermType: authpb.Permission_READWRITE, Key: []byte{}, RangeEnd: []byte{0}}
}

// IsRequest reports whether r is an auth request, which Apply handles.
func IsRequest(r *pb.InternalRaftRequest) bool {
	return r.Authenticate != nil || r.AuthEnable != nil || r.AuthDisable != nil || r.AuthStatus != nil ||
		r.AuthUserAdd != nil || r.AuthUserDelete != nil || r.AuthUserChangePassword != nil ||
		r.AuthUserGrantRole != nil || r.AuthUserGet != nil || r.AuthUserRevokeRole != nil ||
		r.AuthRoleAdd != nil || r.AuthRoleGrantPermission != nil || r.AuthRoleGet != nil ||
		r.AuthRoleRevokePermission != nil || r.AuthRoleDelete != nil || r.AuthUserList != nil ||
		r.AuthRoleList != nil
}

// needsAdmin lists the requests only a root-role user may make.
func needsAdmin(r *pb.InternalRaftRequest) bool {
	return r.AuthEnable != nil || r.AuthDisable != nil || r.AuthUserAdd != nil || r.AuthUserDelete != nil ||
		r.AuthUserChangePassword != nil || r.AuthUserGrantRole != nil || r.AuthUserRevokeRole != nil ||
		r.AuthRoleAdd != nil || r.AuthRoleGrantPermission != nil || r.AuthRoleRevokePermission != nil ||
		r.AuthRoleDelete != nil || r.AuthUserList != nil || r.AuthRoleList != nil
}

// HeaderInfo is the identity the proposing member stamped on a request.
func HeaderInfo(r *pb.InternalRaftRequest) *AuthInfo {
	ai := &AuthInfo{}
	if r.Header != nil {
		ai.Username, ai.Revision = r.Header.Username, r.Header.AuthRevision
	}
	return ai
}

// CheckApply is the permission check of a committed entry, done by every
// member against the same state, as etcd's auth applier: admin requests need
// the root role; writes need write permission (and read permission where
// they return previous values); a lease revoke needs write permission on
// every attached key; users may read themselves and roles they have.
// Credentials checked at an older auth revision fail with
// ErrAuthOldRevision, so a permission revoked meanwhile is never bypassed.
func (s *Store) CheckApply(r *pb.InternalRaftRequest, leases LeaseKeys) error {
	if !s.IsAuthEnabled() {
		return nil // every check passes; skip the lease lookups
	}
	ai := HeaderInfo(r)
	if needsAdmin(r) {
		if err := s.IsAdminPermitted(ai); err != nil {
			return err
		}
	}
	switch {
	case r.Put != nil:
		return s.CheckPut(ai, r.Put, leases)
	case r.DeleteRange != nil:
		return s.CheckDeleteRange(ai, r.DeleteRange)
	case r.Txn != nil:
		return s.CheckTxn(ai, r.Txn, leases)
	case r.Range != nil:
		return s.IsRangePermitted(ai, r.Range.Key, r.Range.RangeEnd)
	case r.LeaseRevoke != nil:
		return s.CheckLeaseWrite(ai, r.LeaseRevoke.ID, leases)
	case r.AuthUserGet != nil:
		if err := s.IsAdminPermitted(ai); err != nil && r.AuthUserGet.Name != ai.Username {
			return err
		}
	case r.AuthRoleGet != nil:
		if err := s.IsAdminPermitted(ai); err != nil && !s.HasRole(ai.Username, r.AuthRoleGet.Role) {
			return err
		}
	}
	return nil
}

// Authenticated is what applying an Authenticate entry yields; the member
// that proposed it turns it into the token with Token.
type Authenticated struct {
	User     string
	Prefix   string
	Index    uint64
	Revision uint64
}

// Token issues the token of an applied Authenticate.
func (s *Store) Token(a *Authenticated) (*pb.AuthenticateResponse, error) {
	tok, err := s.tokens.issue(a.User, a.Prefix, a.Index, a.Revision)
	if err != nil {
		return nil, err
	}
	return &pb.AuthenticateResponse{Token: tok}, nil
}

// change is an auth state being built by one Apply.
type change struct {
	s     *Store
	b     *pebble.Batch
	old   *state
	st    *state
	after []func() // side effects once committed (tokens)
}

func (c *change) bump() {
	c.st.revision++
	_ = c.b.Set(keyRevision, binary.BigEndian.AppendUint64(nil, c.st.revision), nil)
}

func (c *change) putUser(u *authpb.User) {
	data, _ := proto.Marshal(u)
	_ = c.b.Set(userKey(string(u.Name)), data, nil)
	c.st.users[string(u.Name)] = u
}

func (c *change) deleteUser(name string) {
	_ = c.b.Delete(userKey(name), nil)
	delete(c.st.users, name)
}

func (c *change) putRole(r *authpb.Role) {
	data, _ := proto.Marshal(r)
	_ = c.b.Set(roleKey(string(r.Name)), data, nil)
	c.st.roles[string(r.Name)] = r
}

func (c *change) deleteRole(name string) {
	_ = c.b.Delete(roleKey(name), nil)
	delete(c.st.roles, name)
}

func (c *change) setEnabled(on bool) {
	v := byte(0)
	if on {
		v = 1
	}
	_ = c.b.Set(keyEnabled, []byte{v}, nil)
	c.st.enabled = on
}

// Apply executes an auth request of the raft entry at index: it writes the
// change into b and returns the response and a function publishing the new
// state, to run once b is committed (nil when nothing changed). Only the
// apply loop calls it, so the state it starts from is the current one.
func (s *Store) Apply(b *pebble.Batch, r *pb.InternalRaftRequest, index uint64) (any, func(), error) {
	old := s.load()
	c := &change{s: s, b: b, old: old, st: &state{
		enabled: old.enabled, revision: old.revision,
		users: maps.Clone(old.users), roles: maps.Clone(old.roles),
	}}
	resp, err := c.apply(r, index)
	if err != nil {
		return nil, nil, err
	}
	changed := c.st.enabled != old.enabled || c.st.revision != old.revision
	if !changed && len(c.after) == 0 {
		return resp, nil, nil
	}
	if changed {
		c.st.perms = mergePerms(c.st)
	} else {
		c.st = old
	}
	commit := func() {
		s.cur.Store(c.st)
		for _, f := range c.after {
			f()
		}
	}
	return resp, commit, nil
}

func (c *change) apply(r *pb.InternalRaftRequest, index uint64) (any, error) {
	st := c.st
	switch {
	case r.Authenticate != nil:
		return c.authenticate(r.Authenticate, index)
	case r.AuthEnable != nil:
		return c.enable()
	case r.AuthDisable != nil:
		if st.enabled {
			c.setEnabled(false)
			c.bump()
			c.after = append(c.after, c.s.tokens.disable, func() { c.s.lg.Info("disabled authentication") })
		}
		return &pb.AuthDisableResponse{}, nil
	case r.AuthStatus != nil:
		return &pb.AuthStatusResponse{Enabled: st.enabled, AuthRevision: st.revision}, nil
	case r.AuthUserAdd != nil:
		return c.userAdd(r.AuthUserAdd)
	case r.AuthUserDelete != nil:
		return c.userDelete(r.AuthUserDelete)
	case r.AuthUserChangePassword != nil:
		return c.changePassword(r.AuthUserChangePassword)
	case r.AuthUserGrantRole != nil:
		return c.grantRole(r.AuthUserGrantRole)
	case r.AuthUserGet != nil:
		u := st.users[r.AuthUserGet.Name]
		if u == nil {
			return nil, ErrUserNotFound
		}
		return &pb.AuthUserGetResponse{Roles: slices.Clone(u.Roles)}, nil
	case r.AuthUserRevokeRole != nil:
		return c.revokeRole(r.AuthUserRevokeRole)
	case r.AuthUserList != nil:
		return &pb.AuthUserListResponse{Users: st.userNames()}, nil
	case r.AuthRoleAdd != nil:
		return c.roleAdd(r.AuthRoleAdd)
	case r.AuthRoleGrantPermission != nil:
		return c.grantPermission(r.AuthRoleGrantPermission)
	case r.AuthRoleGet != nil:
		role := st.roles[r.AuthRoleGet.Role]
		if role == nil {
			return nil, ErrRoleNotFound
		}
		resp := &pb.AuthRoleGetResponse{}
		if r.AuthRoleGet.Role == RootRole {
			resp.Perm = []*authpb.Permission{rootPerm()}
		} else {
			for _, p := range role.KeyPermission {
				resp.Perm = append(resp.Perm, proto.Clone(p).(*authpb.Permission))
			}
		}
		return resp, nil
	case r.AuthRoleRevokePermission != nil:
		return c.revokePermission(r.AuthRoleRevokePermission)
	case r.AuthRoleDelete != nil:
		return c.roleDelete(r.AuthRoleDelete)
	case r.AuthRoleList != nil:
		return &pb.AuthRoleListResponse{Roles: st.roleNames()}, nil
	}
	return nil, nil
}

func (c *change) authenticate(r *pb.InternalAuthenticateRequest, index uint64) (any, error) {
	st := c.st
	if !st.enabled {
		return nil, ErrAuthNotEnabled
	}
	u := st.users[r.Name]
	if u == nil || (u.Options != nil && u.Options.NoPassword) {
		return nil, ErrAuthFailed
	}
	// The password was checked by the member that proposed this entry.
	a := &Authenticated{User: r.Name, Prefix: r.SimpleToken, Index: index, Revision: st.revision}
	c.after = append(c.after, func() { c.s.tokens.applied(a.User, a.Prefix, a.Index) })
	return a, nil
}

func (c *change) enable() (any, error) {
	st := c.st
	if st.enabled {
		return &pb.AuthEnableResponse{}, nil
	}
	u := st.users[RootUser]
	if u == nil {
		return nil, ErrRootUserNotExist
	}
	if !hasRootRole(u) {
		return nil, ErrRootRoleNotExist
	}
	c.setEnabled(true)
	c.after = append(c.after, func() { c.s.lg.Info("enabled authentication") })
	return &pb.AuthEnableResponse{}, nil
}

// password picks the stored hash of a user add or password change: the
// hash the proposing member made, or (for a request from an old etcd that
// sent the password itself) a hash made now. A hash that does not decode is
// etcd's ErrNoPasswordUser.
func (c *change) password(plain, hashed string) ([]byte, error) {
	if plain != "" && hashed == "" {
		h, err := bcrypt.GenerateFromPassword([]byte(plain), c.s.opts.BcryptCost)
		if err != nil {
			return nil, ErrNoPasswordUser
		}
		return h, nil
	}
	h, err := base64.StdEncoding.DecodeString(hashed)
	if err != nil {
		return nil, ErrNoPasswordUser
	}
	return h, nil
}

func (c *change) userAdd(r *pb.AuthUserAddRequest) (any, error) {
	if r.Name == "" {
		return nil, ErrUserEmpty
	}
	if c.st.users[r.Name] != nil {
		return nil, ErrUserAlreadyExist
	}
	opts := r.Options
	if opts == nil {
		opts = &authpb.UserAddOptions{}
	}
	u := &authpb.User{Name: []byte(r.Name), Options: proto.Clone(opts).(*authpb.UserAddOptions)}
	if !opts.NoPassword {
		pw, err := c.password(r.Password, r.HashedPassword)
		if err != nil {
			return nil, err
		}
		u.Password = pw
	}
	c.putUser(u)
	c.bump()
	c.after = append(c.after, func() { c.s.lg.Info("added a user", "user", r.Name) })
	return &pb.AuthUserAddResponse{}, nil
}

func (c *change) userDelete(r *pb.AuthUserDeleteRequest) (any, error) {
	if c.st.enabled && r.Name == RootUser {
		return nil, ErrInvalidAuthMgmt
	}
	if c.st.users[r.Name] == nil {
		return nil, ErrUserNotFound
	}
	c.deleteUser(r.Name)
	c.bump()
	c.after = append(c.after, func() {
		c.s.tokens.invalidateUser(r.Name)
		c.s.lg.Info("deleted a user", "user", r.Name)
	})
	return &pb.AuthUserDeleteResponse{}, nil
}

func (c *change) changePassword(r *pb.AuthUserChangePasswordRequest) (any, error) {
	old := c.st.users[r.Name]
	if old == nil {
		return nil, ErrUserNotFound
	}
	u := &authpb.User{Name: old.Name, Roles: old.Roles, Options: old.Options}
	if old.Options == nil || !old.Options.NoPassword {
		pw, err := c.password(r.Password, r.HashedPassword)
		if err != nil {
			return nil, err
		}
		u.Password = pw
	}
	c.putUser(u)
	c.bump()
	c.after = append(c.after, func() {
		c.s.tokens.invalidateUser(r.Name)
		c.s.lg.Info("changed a user's password", "user", r.Name)
	})
	return &pb.AuthUserChangePasswordResponse{}, nil
}

func (c *change) grantRole(r *pb.AuthUserGrantRoleRequest) (any, error) {
	old := c.st.users[r.User]
	if old == nil {
		return nil, ErrUserNotFound
	}
	// The root role need not exist as a role to be granted.
	if r.Role != RootRole && c.st.roles[r.Role] == nil {
		return nil, ErrRoleNotFound
	}
	i, found := slices.BinarySearch(old.Roles, r.Role)
	if found {
		// Granting a role twice succeeds without a change, as in etcd.
		return &pb.AuthUserGrantRoleResponse{}, nil
	}
	u := proto.Clone(old).(*authpb.User)
	u.Roles = slices.Insert(u.Roles, i, r.Role)
	c.putUser(u)
	c.bump()
	c.after = append(c.after, func() { c.s.lg.Info("granted a role to a user", "user", r.User, "role", r.Role) })
	return &pb.AuthUserGrantRoleResponse{}, nil
}

func (c *change) revokeRole(r *pb.AuthUserRevokeRoleRequest) (any, error) {
	if c.st.enabled && r.Name == RootUser && r.Role == RootRole {
		return nil, ErrInvalidAuthMgmt
	}
	old := c.st.users[r.Name]
	if old == nil {
		return nil, ErrUserNotFound
	}
	if !slices.Contains(old.Roles, r.Role) {
		return nil, ErrRoleNotGranted
	}
	u := proto.Clone(old).(*authpb.User)
	u.Roles = slices.DeleteFunc(u.Roles, func(x string) bool { return x == r.Role })
	c.putUser(u)
	c.bump()
	c.after = append(c.after, func() { c.s.lg.Info("revoked a role from a user", "user", r.Name, "role", r.Role) })
	return &pb.AuthUserRevokeRoleResponse{}, nil
}

func (c *change) roleAdd(r *pb.AuthRoleAddRequest) (any, error) {
	if r.Name == "" {
		return nil, ErrRoleEmpty
	}
	if c.st.roles[r.Name] != nil {
		return nil, ErrRoleAlreadyExist
	}
	c.putRole(&authpb.Role{Name: []byte(r.Name)})
	c.bump()
	c.after = append(c.after, func() { c.s.lg.Info("added a role", "role", r.Name) })
	return &pb.AuthRoleAddResponse{}, nil
}

func (c *change) roleDelete(r *pb.AuthRoleDeleteRequest) (any, error) {
	if c.st.enabled && r.Role == RootRole {
		return nil, ErrInvalidAuthMgmt
	}
	if c.st.roles[r.Role] == nil {
		return nil, ErrRoleNotFound
	}
	c.deleteRole(r.Role)
	// Users lose the role too, in name order as etcd writes them.
	for _, name := range c.st.userNames() {
		old := c.st.users[name]
		if !slices.Contains(old.Roles, r.Role) {
			continue
		}
		u := proto.Clone(old).(*authpb.User)
		u.Roles = slices.DeleteFunc(u.Roles, func(x string) bool { return x == r.Role })
		c.putUser(u)
	}
	c.bump()
	c.after = append(c.after, func() { c.s.lg.Info("deleted a role", "role", r.Role) })
	return &pb.AuthRoleDeleteResponse{}, nil
}

func (c *change) grantPermission(r *pb.AuthRoleGrantPermissionRequest) (any, error) {
	if r.Perm == nil {
		return nil, ErrPermissionNotGiven
	}
	if !isValidPermissionRange(r.Perm.Key, r.Perm.RangeEnd) {
		return nil, ErrInvalidAuthMgmt
	}
	old := c.st.roles[r.Name]
	if old == nil {
		return nil, ErrRoleNotFound
	}
	role := proto.Clone(old).(*authpb.Role)
	// Permissions stay sorted by key. Like etcd, only the first permission
	// with the same key is a candidate for an update of its type.
	i, _ := slices.BinarySearchFunc(role.KeyPermission, r.Perm.Key, func(p *authpb.Permission, k []byte) int {
		return bytes.Compare(p.Key, k)
	})
	if i < len(role.KeyPermission) && bytes.Equal(role.KeyPermission[i].Key, r.Perm.Key) &&
		bytes.Equal(role.KeyPermission[i].RangeEnd, r.Perm.RangeEnd) {
		role.KeyPermission[i].PermType = r.Perm.PermType
	} else {
		role.KeyPermission = append(role.KeyPermission, &authpb.Permission{
			Key: bytes.Clone(r.Perm.Key), RangeEnd: bytes.Clone(r.Perm.RangeEnd), PermType: r.Perm.PermType,
		})
		slices.SortStableFunc(role.KeyPermission, func(a, b *authpb.Permission) int { return bytes.Compare(a.Key, b.Key) })
	}
	c.putRole(role)
	c.bump()
	c.after = append(c.after, func() {
		c.s.lg.Info("granted a permission to a role", "role", r.Name, "type", r.Perm.PermType.String(),
			"key", string(r.Perm.Key), "range-end", string(r.Perm.RangeEnd))
	})
	return &pb.AuthRoleGrantPermissionResponse{}, nil
}

func (c *change) revokePermission(r *pb.AuthRoleRevokePermissionRequest) (any, error) {
	old := c.st.roles[r.Role]
	if old == nil {
		return nil, ErrRoleNotFound
	}
	role := &authpb.Role{Name: old.Name}
	for _, p := range old.KeyPermission {
		if !bytes.Equal(p.Key, r.Key) || !bytes.Equal(p.RangeEnd, r.RangeEnd) {
			role.KeyPermission = append(role.KeyPermission, p)
		}
	}
	if len(role.KeyPermission) == len(old.KeyPermission) {
		return nil, ErrPermissionNotGranted
	}
	c.putRole(role)
	c.bump()
	c.after = append(c.after, func() {
		c.s.lg.Info("revoked a permission from a role", "role", r.Role, "key", string(r.Key), "range-end", string(r.RangeEnd))
	})
	return &pb.AuthRoleRevokePermissionResponse{}, nil
}
