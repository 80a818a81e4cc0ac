package auth

import (
	"context"
	"errors"
	"slices"
	"testing"

	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/proto"
)

func TestApplyUsers(t *testing.T) {
	f := newFixture(t)
	if f.s.Revision() != 1 || f.s.IsAuthEnabled() {
		t.Fatalf("fresh store: revision %d enabled %v, want 1 false", f.s.Revision(), f.s.IsAuthEnabled())
	}
	f.fails(nil, &pb.InternalRaftRequest{AuthUserAdd: &pb.AuthUserAddRequest{}}, ErrUserEmpty)
	f.addUser("bob", "pw")
	if f.s.Revision() != 2 {
		t.Errorf("revision after a user add = %d, want 2", f.s.Revision())
	}
	f.fails(nil, &pb.InternalRaftRequest{AuthUserAdd: &pb.AuthUserAddRequest{Name: "bob", HashedPassword: f.hashed("x")}}, ErrUserAlreadyExist)
	f.fails(nil, &pb.InternalRaftRequest{AuthUserAdd: &pb.AuthUserAddRequest{Name: "bad", HashedPassword: "not base64!"}}, ErrNoPasswordUser)
	f.must(nil, &pb.InternalRaftRequest{AuthUserAdd: &pb.AuthUserAddRequest{Name: "svc", Options: &authpb.UserAddOptions{NoPassword: true}}})
	f.addUser("amy", "pw")

	list := f.must(nil, &pb.InternalRaftRequest{AuthUserList: &pb.AuthUserListRequest{}}).(*pb.AuthUserListResponse)
	if !slices.Equal(list.Users, []string{"amy", "bob", "svc"}) {
		t.Errorf("user list %q, want sorted amy bob svc", list.Users)
	}
	f.fails(nil, &pb.InternalRaftRequest{AuthUserGet: &pb.AuthUserGetRequest{Name: "nobody"}}, ErrUserNotFound)

	// Roles: a missing role cannot be granted, root always can; a second
	// grant succeeds without a revision bump; roles stay sorted.
	f.fails(nil, &pb.InternalRaftRequest{AuthUserGrantRole: &pb.AuthUserGrantRoleRequest{User: "bob", Role: "nope"}}, ErrRoleNotFound)
	f.fails(nil, &pb.InternalRaftRequest{AuthUserGrantRole: &pb.AuthUserGrantRoleRequest{User: "nobody", Role: "root"}}, ErrUserNotFound)
	f.addRole("zeta")
	f.addRole("alpha")
	for _, r := range []string{"zeta", "root", "alpha"} {
		f.must(nil, &pb.InternalRaftRequest{AuthUserGrantRole: &pb.AuthUserGrantRoleRequest{User: "bob", Role: r}})
	}
	rev := f.s.Revision()
	f.must(nil, &pb.InternalRaftRequest{AuthUserGrantRole: &pb.AuthUserGrantRoleRequest{User: "bob", Role: "zeta"}})
	if f.s.Revision() != rev {
		t.Errorf("a repeated grant bumped the revision %d -> %d", rev, f.s.Revision())
	}
	get := f.must(nil, &pb.InternalRaftRequest{AuthUserGet: &pb.AuthUserGetRequest{Name: "bob"}}).(*pb.AuthUserGetResponse)
	if !slices.Equal(get.Roles, []string{"alpha", "root", "zeta"}) {
		t.Errorf("bob's roles %q, want alpha root zeta", get.Roles)
	}
	f.fails(nil, &pb.InternalRaftRequest{AuthUserRevokeRole: &pb.AuthUserRevokeRoleRequest{Name: "bob", Role: "beta"}}, ErrRoleNotGranted)
	f.fails(nil, &pb.InternalRaftRequest{AuthUserRevokeRole: &pb.AuthUserRevokeRoleRequest{Name: "nobody", Role: "beta"}}, ErrUserNotFound)
	f.must(nil, &pb.InternalRaftRequest{AuthUserRevokeRole: &pb.AuthUserRevokeRoleRequest{Name: "bob", Role: "root"}})
	get = f.must(nil, &pb.InternalRaftRequest{AuthUserGet: &pb.AuthUserGetRequest{Name: "bob"}}).(*pb.AuthUserGetResponse)
	if !slices.Equal(get.Roles, []string{"alpha", "zeta"}) {
		t.Errorf("bob's roles after revoke %q", get.Roles)
	}

	// Passwords: a change replaces the hash and keeps the roles; a
	// no-password user keeps having none.
	f.must(nil, &pb.InternalRaftRequest{AuthUserChangePassword: &pb.AuthUserChangePasswordRequest{Name: "bob", HashedPassword: f.hashed("new")}})
	f.fails(nil, &pb.InternalRaftRequest{AuthUserChangePassword: &pb.AuthUserChangePasswordRequest{Name: "nobody", HashedPassword: f.hashed("new")}}, ErrUserNotFound)
	f.must(nil, &pb.InternalRaftRequest{AuthUserChangePassword: &pb.AuthUserChangePasswordRequest{Name: "svc", HashedPassword: f.hashed("new")}})
	if u := f.s.load().users["svc"]; u.Password != nil || !u.Options.NoPassword {
		t.Errorf("no-password user after a change: %v", u)
	}
	if u := f.s.load().users["bob"]; !slices.Equal(u.Roles, []string{"alpha", "zeta"}) {
		t.Errorf("password change lost roles: %v", u.Roles)
	}

	f.fails(nil, &pb.InternalRaftRequest{AuthUserDelete: &pb.AuthUserDeleteRequest{Name: "nobody"}}, ErrUserNotFound)
	f.must(nil, &pb.InternalRaftRequest{AuthUserDelete: &pb.AuthUserDeleteRequest{Name: "amy"}})
	list = f.must(nil, &pb.InternalRaftRequest{AuthUserList: &pb.AuthUserListRequest{}}).(*pb.AuthUserListResponse)
	if !slices.Equal(list.Users, []string{"bob", "svc"}) {
		t.Errorf("user list after delete %q", list.Users)
	}
}

func TestApplyRoles(t *testing.T) {
	f := newFixture(t)
	f.fails(nil, &pb.InternalRaftRequest{AuthRoleAdd: &pb.AuthRoleAddRequest{}}, ErrRoleEmpty)
	f.addRole("r")
	f.fails(nil, &pb.InternalRaftRequest{AuthRoleAdd: &pb.AuthRoleAddRequest{Name: "r"}}, ErrRoleAlreadyExist)
	grant := func(p *authpb.Permission) *pb.InternalRaftRequest {
		return &pb.InternalRaftRequest{AuthRoleGrantPermission: &pb.AuthRoleGrantPermissionRequest{Name: "r", Perm: p}}
	}
	f.fails(nil, &pb.InternalRaftRequest{AuthRoleGrantPermission: &pb.AuthRoleGrantPermissionRequest{Name: "r"}}, ErrPermissionNotGiven)
	f.fails(nil, grant(perm(authpb.Permission_READ, "", "")), ErrInvalidAuthMgmt)
	f.fails(nil, grant(perm(authpb.Permission_READ, "b", "a")), ErrInvalidAuthMgmt)
	f.fails(nil, grant(perm(authpb.Permission_READ, "b", "b")), ErrInvalidAuthMgmt)
	f.fails(nil, &pb.InternalRaftRequest{AuthRoleGrantPermission: &pb.AuthRoleGrantPermissionRequest{Name: "x", Perm: perm(authpb.Permission_READ, "a", "")}}, ErrRoleNotFound)
	f.must(nil, grant(perm(authpb.Permission_READ, "m", "")))
	f.must(nil, grant(perm(authpb.Permission_WRITE, "c", "d")))
	f.must(nil, grant(perm(authpb.Permission_READ, "p/", "\x00")))
	rev := f.s.Revision()
	// The same key and range end updates the type in place.
	f.must(nil, grant(perm(authpb.Permission_READWRITE, "c", "d")))
	if f.s.Revision() != rev+1 {
		t.Errorf("updating a permission: revision %d, want %d", f.s.Revision(), rev+1)
	}
	got := f.must(nil, &pb.InternalRaftRequest{AuthRoleGet: &pb.AuthRoleGetRequest{Role: "r"}}).(*pb.AuthRoleGetResponse)
	want := []*authpb.Permission{
		perm(authpb.Permission_READWRITE, "c", "d"),
		perm(authpb.Permission_READ, "m", ""),
		perm(authpb.Permission_READ, "p/", "\x00"),
	}
	if !slices.EqualFunc(got.Perm, want, func(a, b *authpb.Permission) bool { return proto.Equal(a, b) }) {
		t.Errorf("role r permissions:\n got %v\nwant %v", got.Perm, want)
	}
	f.fails(nil, &pb.InternalRaftRequest{AuthRoleRevokePermission: &pb.AuthRoleRevokePermissionRequest{Role: "r", Key: []byte("c")}}, ErrPermissionNotGranted)
	f.fails(nil, &pb.InternalRaftRequest{AuthRoleRevokePermission: &pb.AuthRoleRevokePermissionRequest{Role: "x", Key: []byte("c")}}, ErrRoleNotFound)
	f.must(nil, &pb.InternalRaftRequest{AuthRoleRevokePermission: &pb.AuthRoleRevokePermissionRequest{Role: "r", Key: []byte("c"), RangeEnd: []byte("d")}})
	got = f.must(nil, &pb.InternalRaftRequest{AuthRoleGet: &pb.AuthRoleGetRequest{Role: "r"}}).(*pb.AuthRoleGetResponse)
	if len(got.Perm) != 2 {
		t.Errorf("after revoke: %v", got.Perm)
	}

	// The root role reports every key, once it exists as a role.
	f.fails(nil, &pb.InternalRaftRequest{AuthRoleGet: &pb.AuthRoleGetRequest{Role: "root"}}, ErrRoleNotFound)
	f.addRole("root")
	got = f.must(nil, &pb.InternalRaftRequest{AuthRoleGet: &pb.AuthRoleGetRequest{Role: "root"}}).(*pb.AuthRoleGetResponse)
	if len(got.Perm) != 1 || !proto.Equal(got.Perm[0], rootPerm()) {
		t.Errorf("root role permissions %v", got.Perm)
	}
	roles := f.must(nil, &pb.InternalRaftRequest{AuthRoleList: &pb.AuthRoleListRequest{}}).(*pb.AuthRoleListResponse)
	if !slices.Equal(roles.Roles, []string{"r", "root"}) {
		t.Errorf("role list %q", roles.Roles)
	}

	// Deleting a role takes it from its users.
	f.addUser("u", "pw", "r", "root")
	f.fails(nil, &pb.InternalRaftRequest{AuthRoleDelete: &pb.AuthRoleDeleteRequest{Role: "nope"}}, ErrRoleNotFound)
	f.must(nil, &pb.InternalRaftRequest{AuthRoleDelete: &pb.AuthRoleDeleteRequest{Role: "r"}})
	if u := f.s.load().users["u"]; !slices.Equal(u.Roles, []string{"root"}) {
		t.Errorf("roles of u after deleting r: %q", u.Roles)
	}
}

func TestApplyEnableDisable(t *testing.T) {
	f := newFixture(t)
	enable := &pb.InternalRaftRequest{AuthEnable: &pb.AuthEnableRequest{}}
	f.fails(nil, enable, ErrRootUserNotExist)
	f.addUser(RootUser, "pw")
	f.fails(nil, enable, ErrRootRoleNotExist)
	// Granting the root role does not need a role named root.
	f.must(nil, &pb.InternalRaftRequest{AuthUserGrantRole: &pb.AuthUserGrantRoleRequest{User: RootUser, Role: RootRole}})
	rev := f.s.Revision()
	f.must(nil, enable)
	if !f.s.IsAuthEnabled() || f.s.Revision() != rev {
		t.Fatalf("after enable: enabled %v revision %d (want the unchanged %d)", f.s.IsAuthEnabled(), f.s.Revision(), rev)
	}
	// Enabling twice is fine.
	f.must(f.root(), enable)
	st := f.must(nil, &pb.InternalRaftRequest{AuthStatus: &pb.AuthStatusRequest{}}).(*pb.AuthStatusResponse)
	if !st.Enabled || st.AuthRevision != rev {
		t.Errorf("status %v", st)
	}

	// While enabled, root stays root, and only admins manage auth.
	f.fails(f.root(), &pb.InternalRaftRequest{AuthUserDelete: &pb.AuthUserDeleteRequest{Name: RootUser}}, ErrInvalidAuthMgmt)
	f.fails(f.root(), &pb.InternalRaftRequest{AuthUserRevokeRole: &pb.AuthUserRevokeRoleRequest{Name: RootUser, Role: RootRole}}, ErrInvalidAuthMgmt)
	f.addRole(RootRole)
	f.fails(f.root(), &pb.InternalRaftRequest{AuthRoleDelete: &pb.AuthRoleDeleteRequest{Role: RootRole}}, ErrInvalidAuthMgmt)
	f.addUser("bob", "pw")
	for _, r := range []*pb.InternalRaftRequest{
		{AuthDisable: &pb.AuthDisableRequest{}},
		{AuthUserAdd: &pb.AuthUserAddRequest{Name: "x", HashedPassword: f.hashed("x")}},
		{AuthUserList: &pb.AuthUserListRequest{}},
		{AuthRoleList: &pb.AuthRoleListRequest{}},
		{AuthRoleAdd: &pb.AuthRoleAddRequest{Name: "x"}},
		{AuthUserChangePassword: &pb.AuthUserChangePasswordRequest{Name: RootUser, HashedPassword: f.hashed("x")}},
	} {
		f.fails(f.as("bob"), r, ErrPermissionDenied)
		f.fails(nil, r, ErrUserEmpty)
		f.fails(f.as("ghost"), r, ErrUserNotFound)
	}
	// Anyone may read themselves and roles they have.
	f.addRole("mine")
	f.must(f.root(), &pb.InternalRaftRequest{AuthUserGrantRole: &pb.AuthUserGrantRoleRequest{User: "bob", Role: "mine"}})
	f.must(f.as("bob"), &pb.InternalRaftRequest{AuthUserGet: &pb.AuthUserGetRequest{Name: "bob"}})
	f.fails(f.as("bob"), &pb.InternalRaftRequest{AuthUserGet: &pb.AuthUserGetRequest{Name: RootUser}}, ErrPermissionDenied)
	f.must(f.as("bob"), &pb.InternalRaftRequest{AuthRoleGet: &pb.AuthRoleGetRequest{Role: "mine"}})
	f.fails(f.as("bob"), &pb.InternalRaftRequest{AuthRoleGet: &pb.AuthRoleGetRequest{Role: RootRole}}, ErrPermissionDenied)

	rev = f.s.Revision()
	f.must(f.root(), &pb.InternalRaftRequest{AuthDisable: &pb.AuthDisableRequest{}})
	if f.s.IsAuthEnabled() || f.s.Revision() != rev+1 {
		t.Errorf("after disable: enabled %v revision %d, want false %d", f.s.IsAuthEnabled(), f.s.Revision(), rev+1)
	}
	// Disabling again changes nothing.
	f.must(nil, &pb.InternalRaftRequest{AuthDisable: &pb.AuthDisableRequest{}})
	if f.s.Revision() != rev+1 {
		t.Errorf("second disable bumped the revision to %d", f.s.Revision())
	}
	// With auth off, root may go.
	f.must(nil, &pb.InternalRaftRequest{AuthRoleDelete: &pb.AuthRoleDeleteRequest{Role: RootRole}})
	f.must(nil, &pb.InternalRaftRequest{AuthUserDelete: &pb.AuthUserDeleteRequest{Name: RootUser}})
}

func TestApplyAuthenticate(t *testing.T) {
	f := newFixture(t)
	authn := func(name string) *pb.InternalRaftRequest {
		return &pb.InternalRaftRequest{Authenticate: &pb.InternalAuthenticateRequest{Name: name, SimpleToken: "abc"}}
	}
	f.fails(nil, authn("root"), ErrAuthNotEnabled)
	if _, err := f.s.CheckPassword(context.Background(), "root", "x"); !errors.Is(err, ErrAuthNotEnabled) {
		t.Errorf("password check with auth off: %v", err)
	}
	f.enable()
	f.must(f.root(), &pb.InternalRaftRequest{AuthUserAdd: &pb.AuthUserAddRequest{Name: "svc", Options: &authpb.UserAddOptions{NoPassword: true}}})
	f.fails(nil, authn("nobody"), ErrAuthFailed)
	f.fails(nil, authn("svc"), ErrAuthFailed)
	for user, pw := range map[string]string{"nobody": "x", "root": "wrong"} {
		if _, err := f.s.CheckPassword(context.Background(), user, pw); !errors.Is(err, ErrAuthFailed) {
			t.Errorf("password check of %s: %v, want %v", user, err, ErrAuthFailed)
		}
	}
	if _, err := f.s.CheckPassword(context.Background(), "svc", "x"); !errors.Is(err, ErrNoPasswordUser) {
		t.Errorf("password check of a no-password user: %v", err)
	}
	rev, err := f.s.CheckPassword(context.Background(), "root", "rootpw")
	if err != nil || rev != f.s.Revision() {
		t.Fatalf("good password: rev %d err %v", rev, err)
	}
	a := f.must(nil, authn("root")).(*Authenticated)
	if a.User != "root" || a.Revision != f.s.Revision() || a.Index != f.index {
		t.Errorf("authenticated %+v", a)
	}
	resp, err := f.s.Token(a)
	if err != nil || resp.Token != "abc."+itoa(f.index) {
		t.Fatalf("simple token %q (%v), want abc.%d", resp.GetToken(), err, f.index)
	}
	ai, err := f.s.AuthInfo(tokenCtx(resp.Token))
	if err != nil || ai.Username != "root" || ai.Revision != f.s.Revision() {
		t.Errorf("token resolves to %+v, %v", ai, err)
	}
	// A password change invalidates the user's tokens.
	f.must(f.root(), &pb.InternalRaftRequest{AuthUserChangePassword: &pb.AuthUserChangePasswordRequest{Name: "root", HashedPassword: f.hashed("x")}})
	if _, err := f.s.AuthInfo(tokenCtx(resp.Token)); !errors.Is(err, ErrInvalidAuthToken) {
		t.Errorf("token after a password change: %v", err)
	}
}

func itoa(n uint64) string {
	b := []byte{}
	for {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
		if n == 0 {
			return string(b)
		}
	}
}

// TestLoadRestoresState: everything applied survives a reload from Pebble,
// as after a restart or a snapshot install.
func TestLoadRestoresState(t *testing.T) {
	f := newFixture(t)
	f.addRole("ro", perm(authpb.Permission_READ, "a/", "a0"), perm(authpb.Permission_WRITE, "w", ""))
	f.addUser("alice", "alicepw", "ro")
	f.enable()
	f.must(f.root(), &pb.InternalRaftRequest{AuthUserAdd: &pb.AuthUserAddRequest{Name: "svc", Options: &authpb.UserAddOptions{NoPassword: true}}})

	s2 := f.open()
	if !s2.IsAuthEnabled() || s2.Revision() != f.s.Revision() {
		t.Fatalf("reloaded: enabled %v revision %d, want true %d", s2.IsAuthEnabled(), s2.Revision(), f.s.Revision())
	}
	a, b := f.s.load(), s2.load()
	if !slices.Equal(a.userNames(), b.userNames()) || !slices.Equal(a.roleNames(), b.roleNames()) {
		t.Fatalf("reloaded users %q roles %q, want %q %q", b.userNames(), b.roleNames(), a.userNames(), a.roleNames())
	}
	for n, u := range a.users {
		if !proto.Equal(u, b.users[n]) {
			t.Errorf("user %s: %v, want %v", n, b.users[n], u)
		}
	}
	for n, r := range a.roles {
		if !proto.Equal(r, b.roles[n]) {
			t.Errorf("role %s: %v, want %v", n, b.roles[n], r)
		}
	}
	alice := &AuthInfo{Username: "alice", Revision: s2.Revision()}
	if err := s2.IsRangePermitted(alice, []byte("a/x"), nil); err != nil {
		t.Errorf("reloaded permissions: read a/x: %v", err)
	}
	if err := s2.IsPutPermitted(alice, []byte("a/x")); !errors.Is(err, ErrPermissionDenied) {
		t.Errorf("reloaded permissions: write a/x: %v", err)
	}
	if _, err := s2.CheckPassword(context.Background(), "alice", "alicepw"); err != nil {
		t.Errorf("reloaded password: %v", err)
	}
	// A reload after the database lost the auth keys (a snapshot from a
	// cluster without auth) resets the state and forgets tokens.
	tok := f.login("alice", "alicepw")
	if err := f.db.DeleteRange(spaceStart, spaceEnd, nil); err != nil {
		t.Fatal(err)
	}
	if err := f.s.Load(f.db); err != nil {
		t.Fatal(err)
	}
	if f.s.IsAuthEnabled() || f.s.Revision() != 1 || len(f.s.load().users) != 0 {
		t.Errorf("after reload of an empty state: enabled %v revision %d users %d", f.s.IsAuthEnabled(), f.s.Revision(), len(f.s.load().users))
	}
	f.enable()
	if _, err := f.s.AuthInfo(tokenCtx(tok)); !errors.Is(err, ErrInvalidAuthToken) {
		t.Errorf("token from before the reset: %v", err)
	}
}
