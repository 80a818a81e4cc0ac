package auth

import (
	"errors"
	"testing"

	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// permFixture has auth enabled and a user "u" with the given permissions.
func permFixture(t *testing.T, perms ...*authpb.Permission) *fixture {
	t.Helper()
	f := newFixture(t)
	f.addRole("r", perms...)
	f.addUser("u", "pw", "r")
	f.enable()
	return f
}

type check struct {
	key, end string
	write    bool
	want     error
}

func runChecks(t *testing.T, f *fixture, checks []check) {
	t.Helper()
	u := f.as("u")
	for _, c := range checks {
		var end []byte
		if c.end != "" {
			end = []byte(c.end)
		}
		var err error
		if c.write {
			err = f.s.IsDeleteRangePermitted(u, []byte(c.key), end)
		} else {
			err = f.s.IsRangePermitted(u, []byte(c.key), end)
		}
		if !errors.Is(err, c.want) {
			t.Errorf("write=%v [%q, %q): %v, want %v", c.write, c.key, c.end, err, c.want)
		}
	}
}

func TestRangePermissions(t *testing.T) {
	f := permFixture(t,
		perm(authpb.Permission_READ, "single", ""),          // one key
		perm(authpb.Permission_READWRITE, "app/", "app0"),   // prefix app/
		perm(authpb.Permission_READ, "b", "d"),              // [b, d)
		perm(authpb.Permission_READ, "d", "f"),              // [d, f): contiguous with [b, d)
		perm(authpb.Permission_READ, "h", "j"),              // a gap [f, h)
		perm(authpb.Permission_WRITE, "z/", "\x00"),         // open-ended from z/
		perm(authpb.Permission_READ, "\x00single", "\x00t"), // odd bytes
	)
	runChecks(t, f, []check{
		{"single", "", false, nil},
		{"single", "single\x00", false, nil}, // the range holding just that key
		{"singlex", "", false, ErrPermissionDenied},
		{"single", "singlf", false, ErrPermissionDenied},
		{"single", "", true, ErrPermissionDenied},
		{"app/x", "", false, nil},
		{"app/x", "", true, nil},
		{"app/", "app0", false, nil}, // the whole prefix
		{"app/", "app0", true, nil},
		{"app/a", "app/b", true, nil},
		{"app", "app0", false, ErrPermissionDenied}, // starts before the prefix
		{"app/", "app1", false, ErrPermissionDenied},
		{"app/", "\x00", false, ErrPermissionDenied}, // open-ended reaches past it
		{"c", "", false, nil},
		{"b", "f", false, nil}, // union of two adjacent grants
		{"c", "e", false, nil},
		{"b", "g", false, ErrPermissionDenied},
		{"e", "i", false, ErrPermissionDenied}, // spans the gap
		{"h", "i", false, nil},
		{"g", "", false, ErrPermissionDenied},
		{"z/", "\x00", true, nil}, // open-ended within open-ended
		{"z/a", "\x00", true, nil},
		{"z/a", "zz", true, nil},
		{"z/a", "", true, nil},
		{"z", "\x00", true, ErrPermissionDenied},
		{"z/a", "", false, ErrPermissionDenied},
		{"\x00single", "", false, nil},
		{"\x00", "\x00", false, ErrPermissionDenied}, // every key
	})
}

func TestEveryKeyPermission(t *testing.T) {
	f := permFixture(t, perm(authpb.Permission_READ, "\x00", "\x00"))
	runChecks(t, f, []check{
		{"\x00", "\x00", false, nil},
		{"a", "", false, nil},
		{"a", "\x00", false, nil},
		{"\xff\xff", "", false, nil},
		{"a", "", true, ErrPermissionDenied},
	})
}

func TestPermissionIdentity(t *testing.T) {
	f := permFixture(t, perm(authpb.Permission_READWRITE, "k", ""))
	key := []byte("k")
	if err := f.s.IsRangePermitted(nil, key, nil); !errors.Is(err, ErrUserEmpty) {
		t.Errorf("no identity: %v", err)
	}
	if err := f.s.IsRangePermitted(&AuthInfo{Username: "u"}, key, nil); !errors.Is(err, ErrUserEmpty) {
		t.Errorf("revision 0: %v", err)
	}
	if err := f.s.IsRangePermitted(&AuthInfo{Username: "ghost", Revision: f.s.Revision()}, key, nil); !errors.Is(err, ErrPermissionDenied) {
		t.Errorf("unknown user: %v", err)
	}
	old := f.as("u")
	f.addRole("other")
	if err := f.s.IsPutPermitted(old, key); !errors.Is(err, ErrAuthOldRevision) {
		t.Errorf("credentials from before an auth change: %v", err)
	}
	if err := f.s.IsPutPermitted(f.as("u"), key); err != nil {
		t.Errorf("fresh credentials: %v", err)
	}
	// Root bypasses key permissions but not the revision check.
	if err := f.s.IsPutPermitted(f.root(), []byte("anything")); err != nil {
		t.Errorf("root: %v", err)
	}
	if err := f.s.IsAdminPermitted(f.as("u")); !errors.Is(err, ErrPermissionDenied) {
		t.Errorf("admin check of u: %v", err)
	}
	if err := f.s.IsAdminPermitted(&AuthInfo{Username: RootUser}); err != nil {
		t.Errorf("admin check ignores the revision, as etcd: %v", err)
	}
	// Revoking the role takes effect at once.
	f.must(f.root(), &pb.InternalRaftRequest{AuthUserRevokeRole: &pb.AuthUserRevokeRoleRequest{Name: "u", Role: "r"}})
	if err := f.s.IsRangePermitted(f.as("u"), key, nil); !errors.Is(err, ErrPermissionDenied) {
		t.Errorf("after revoking the role: %v", err)
	}
	// With auth off, everything passes, even without identity.
	f.must(f.root(), &pb.InternalRaftRequest{AuthDisable: &pb.AuthDisableRequest{}})
	if err := f.s.IsPutPermitted(nil, key); err != nil {
		t.Errorf("auth off: %v", err)
	}
	if err := f.s.IsAdminPermitted(nil); err != nil {
		t.Errorf("auth off, admin: %v", err)
	}
}

func TestTxnPermissions(t *testing.T) {
	f := permFixture(t,
		perm(authpb.Permission_READ, "r/", "r0"),
		perm(authpb.Permission_READWRITE, "rw/", "rw0"),
		perm(authpb.Permission_WRITE, "w/", "w0"),
	)
	u := f.as("u")
	rng := func(k string) *pb.RequestOp {
		return &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte(k)}}}
	}
	put := func(k string, prev bool, lease int64) *pb.RequestOp {
		return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte(k), PrevKv: prev, Lease: lease}}}
	}
	del := func(k string, prev bool) *pb.RequestOp {
		return &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: []byte(k), PrevKv: prev}}}
	}
	nested := func(t *pb.TxnRequest) *pb.RequestOp {
		return &pb.RequestOp{Request: &pb.RequestOp_RequestTxn{RequestTxn: t}}
	}
	cmp := func(k string) *pb.Compare {
		return &pb.Compare{Key: []byte(k), Target: pb.Compare_VERSION, Result: pb.Compare_EQUAL}
	}
	leases := func(id int64) ([]string, bool) {
		switch id {
		case 1:
			return []string{"w/a", "rw/b"}, true
		case 2:
			return []string{"r/a"}, true
		}
		return nil, false
	}
	for _, c := range []struct {
		name string
		txn  *pb.TxnRequest
		want error
	}{
		{"compare needs read", &pb.TxnRequest{Compare: []*pb.Compare{cmp("w/x")}}, ErrPermissionDenied},
		{"readable compare", &pb.TxnRequest{Compare: []*pb.Compare{cmp("r/x")}, Success: []*pb.RequestOp{put("w/x", false, 0)}}, nil},
		{"failure branch checked too", &pb.TxnRequest{Success: []*pb.RequestOp{rng("r/x")}, Failure: []*pb.RequestOp{put("r/x", false, 0)}}, ErrPermissionDenied},
		{"put with prev kv needs read", &pb.TxnRequest{Success: []*pb.RequestOp{put("w/x", true, 0)}}, ErrPermissionDenied},
		{"put with prev kv on rw", &pb.TxnRequest{Success: []*pb.RequestOp{put("rw/x", true, 0)}}, nil},
		{"delete with prev kv needs read", &pb.TxnRequest{Failure: []*pb.RequestOp{del("w/x", true)}}, ErrPermissionDenied},
		{"delete", &pb.TxnRequest{Failure: []*pb.RequestOp{del("w/x", false)}}, nil},
		{"nested denied", &pb.TxnRequest{Success: []*pb.RequestOp{nested(&pb.TxnRequest{Failure: []*pb.RequestOp{nested(&pb.TxnRequest{Compare: []*pb.Compare{cmp("x")}})}})}}, ErrPermissionDenied},
		{"nested allowed", &pb.TxnRequest{Success: []*pb.RequestOp{nested(&pb.TxnRequest{Success: []*pb.RequestOp{rng("rw/a"), put("w/b", false, 0)}})}}, nil},
		{"lease with writable keys", &pb.TxnRequest{Success: []*pb.RequestOp{put("w/x", false, 1)}}, nil},
		{"lease with a read-only key", &pb.TxnRequest{Success: []*pb.RequestOp{put("w/x", false, 2)}}, ErrPermissionDenied},
		{"missing lease", &pb.TxnRequest{Success: []*pb.RequestOp{put("w/x", false, 3)}}, nil},
	} {
		if err := f.s.CheckTxn(u, c.txn, leases); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	// The apply-time check covers the same, plus lease revoke.
	check := func(r *pb.InternalRaftRequest, want error) {
		t.Helper()
		r.Header = &pb.RequestHeader{Username: "u", AuthRevision: f.s.Revision()}
		if err := f.s.CheckApply(r, leases); !errors.Is(err, want) {
			t.Errorf("apply check of %v: %v, want %v", r, err, want)
		}
	}
	check(&pb.InternalRaftRequest{LeaseRevoke: &pb.LeaseRevokeRequest{ID: 1}}, nil)
	check(&pb.InternalRaftRequest{LeaseRevoke: &pb.LeaseRevokeRequest{ID: 2}}, ErrPermissionDenied)
	check(&pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("r/x")}}, ErrPermissionDenied)
	check(&pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("w/x"), Lease: 2}}, ErrPermissionDenied)
	check(&pb.InternalRaftRequest{DeleteRange: &pb.DeleteRangeRequest{Key: []byte("w/"), RangeEnd: []byte("w0")}}, nil)
	check(&pb.InternalRaftRequest{DeleteRange: &pb.DeleteRangeRequest{Key: []byte("w/"), RangeEnd: []byte("x")}}, ErrPermissionDenied)
	check(&pb.InternalRaftRequest{Txn: &pb.TxnRequest{Success: []*pb.RequestOp{put("r/x", false, 0)}}}, ErrPermissionDenied)
	check(&pb.InternalRaftRequest{Compaction: &pb.CompactionRequest{Revision: 1}}, nil)
	// Root may revoke any lease.
	r := &pb.InternalRaftRequest{LeaseRevoke: &pb.LeaseRevokeRequest{ID: 2}, Header: &pb.RequestHeader{Username: RootUser, AuthRevision: f.s.Revision()}}
	if err := f.s.CheckApply(r, leases); err != nil {
		t.Errorf("root revoking a lease: %v", err)
	}
}

func TestOverlapsMatchesIntervalTree(t *testing.T) {
	// Inverted or empty query ranges never come from valid requests, but
	// must not panic and must not grant more than the covering grants.
	rs := rangeSet{{begin: []byte("a"), end: []byte("c")}}
	for _, q := range []interval{
		{begin: []byte("c"), end: []byte("a")},
		{begin: []byte("b"), end: []byte("b")},
		{begin: []byte("x"), end: nil},
	} {
		_ = rs.contains(q)
		_ = rs.intersects(q)
	}
	if rs.contains(interval{begin: []byte("a"), end: nil}) {
		t.Error("a bounded grant covers an open-ended range")
	}
	if !rs.contains(interval{begin: []byte("a"), end: []byte("c")}) || !rs.contains(interval{begin: []byte("b"), end: []byte("b\x00")}) {
		t.Error("a grant does not cover its own range")
	}
}
