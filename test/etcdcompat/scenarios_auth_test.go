package etcdcompat

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
)

// Auth scenarios change the auth state, which the per-scenario reset does
// not undo, so they run in their own test on their own pair of servers and
// each ends by disabling auth and removing its users and roles.

// Error messages of etcd's auth store (rpctypes).
const (
	errRootUserNotExist   = "etcdserver: root user does not exist"
	errRootRoleNotExist   = "etcdserver: root user does not have root role"
	errUserAlreadyExist   = "etcdserver: user name already exists"
	errUserEmpty          = "etcdserver: user name is empty"
	errUserNotFound       = "etcdserver: user name not found"
	errRoleAlreadyExist   = "etcdserver: role name already exists"
	errRoleNotFound       = "etcdserver: role name not found"
	errRoleEmpty          = "etcdserver: role name is empty"
	errAuthFailed         = "etcdserver: authentication failed, invalid user ID or password"
	errPermissionNotGiven = "etcdserver: permission not given"
	errPermissionDenied   = "etcdserver: permission denied"
	errRoleNotGranted     = "etcdserver: role is not granted to the user"
	errPermNotGranted     = "etcdserver: permission is not granted to the role"
	errAuthNotEnabled     = "etcdserver: authentication is not enabled"
	errInvalidAuthToken   = "etcdserver: invalid auth token"
	errInvalidAuthMgmt    = "etcdserver: invalid auth management"
)

// authOp sends one Auth service request, as user ("name:password", ""
// for anonymous).
type authOp struct {
	user string
	req  proto.Message
}

func (o authOp) String() string { return asPrefix(o.user) + "Auth " + textOf(o.req) }

func asPrefix(user string) string {
	if user == "" {
		return ""
	}
	name, _, _ := strings.Cut(user, ":")
	return "as " + name + ": "
}

// login authenticates user on one side and returns a context carrying the
// token, as clientv3 sends it.
func login(ctx context.Context, e *env, user string) (context.Context, error) {
	if user == "" {
		return ctx, nil
	}
	name, pw, _ := strings.Cut(user, ":")
	resp, err := pb.NewAuthClient(e.b.cli.ActiveConnection()).Authenticate(ctx, &pb.AuthenticateRequest{Name: name, Password: pw})
	if err != nil {
		return nil, fmt.Errorf("log in as %s: %w", name, err)
	}
	return metadata.AppendToOutgoingContext(ctx, rpctypes.TokenFieldNameGRPC, resp.Token), nil
}

func (o authOp) do(ctx context.Context, e *env) (any, error) {
	ctx, err := login(ctx, e, o.user)
	if err != nil {
		return nil, err
	}
	c := pb.NewAuthClient(e.b.cli.ActiveConnection())
	var resp proto.Message
	switch r := e.prepare(o.req).(type) {
	case *pb.AuthEnableRequest:
		resp, err = c.AuthEnable(ctx, r)
	case *pb.AuthDisableRequest:
		resp, err = c.AuthDisable(ctx, r)
	case *pb.AuthStatusRequest:
		resp, err = c.AuthStatus(ctx, r)
	case *pb.AuthenticateRequest:
		var ar *pb.AuthenticateResponse
		ar, err = c.Authenticate(ctx, r)
		if err == nil && ar.Token != "" {
			ar.Token = "<token>" // random: only its presence compares
		}
		resp = ar
	case *pb.AuthUserAddRequest:
		resp, err = c.UserAdd(ctx, r)
	case *pb.AuthUserGetRequest:
		resp, err = c.UserGet(ctx, r)
	case *pb.AuthUserListRequest:
		resp, err = c.UserList(ctx, r)
	case *pb.AuthUserDeleteRequest:
		resp, err = c.UserDelete(ctx, r)
	case *pb.AuthUserChangePasswordRequest:
		resp, err = c.UserChangePassword(ctx, r)
	case *pb.AuthUserGrantRoleRequest:
		resp, err = c.UserGrantRole(ctx, r)
	case *pb.AuthUserRevokeRoleRequest:
		resp, err = c.UserRevokeRole(ctx, r)
	case *pb.AuthRoleAddRequest:
		resp, err = c.RoleAdd(ctx, r)
	case *pb.AuthRoleGetRequest:
		resp, err = c.RoleGet(ctx, r)
	case *pb.AuthRoleListRequest:
		resp, err = c.RoleList(ctx, r)
	case *pb.AuthRoleDeleteRequest:
		resp, err = c.RoleDelete(ctx, r)
	case *pb.AuthRoleGrantPermissionRequest:
		resp, err = c.RoleGrantPermission(ctx, r)
	case *pb.AuthRoleRevokePermissionRequest:
		resp, err = c.RoleRevokePermission(ctx, r)
	default:
		return nil, fmt.Errorf("scenario bug: %T is not an auth request", r)
	}
	if err != nil {
		return nil, err
	}
	return e.normalize(resp), nil
}

// asOp runs another op with user's token.
type asOp struct {
	user string
	op   op
}

func (o asOp) String() string { return asPrefix(o.user) + o.op.String() }
func (o asOp) do(ctx context.Context, e *env) (any, error) {
	ctx, err := login(ctx, e, o.user)
	if err != nil {
		return nil, err
	}
	return o.op.do(ctx, e)
}

// watchOnceOp opens a Watch stream as user, sends one create request and
// returns the first answer.
type watchOnceOp struct {
	user string
	req  *pb.WatchCreateRequest
}

func (o watchOnceOp) String() string { return asPrefix(o.user) + "Watch(once) " + textOf(o.req) }
func (o watchOnceOp) do(ctx context.Context, e *env) (any, error) {
	ctx, err := login(ctx, e, o.user)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := e.b.watch.Watch(ctx)
	if err != nil {
		return nil, err
	}
	if err := st.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: e.prepare(o.req).(*pb.WatchCreateRequest)}}); err != nil {
		return nil, err
	}
	resp, err := st.Recv()
	if err != nil {
		return nil, err
	}
	return e.normalize(resp), nil
}

func authReq(user string, r proto.Message) step { return step{op: authOp{user: user, req: r}} }
func as(user string, s step) step               { s.op = asOp{user: user, op: s.op}; return s }
func watchOnce(user string, r *pb.WatchCreateRequest) step {
	return step{op: watchOnceOp{user: user, req: r}}
}

func userAdd(user, name, pw string) step {
	return authReq(user, &pb.AuthUserAddRequest{Name: name, Password: pw})
}
func grantRole(user, name, role string) step {
	return authReq(user, &pb.AuthUserGrantRoleRequest{User: name, Role: role})
}
func roleAdd(user, name string) step { return authReq(user, &pb.AuthRoleAddRequest{Name: name}) }
func grantPerm(user, role string, t authpb.Permission_Type, key, end string) step {
	p := &authpb.Permission{PermType: t, Key: b(key)}
	if end != "" {
		p.RangeEnd = b(end)
	}
	return authReq(user, &pb.AuthRoleGrantPermissionRequest{Name: role, Perm: p})
}
func authStatus(user string) step  { return authReq(user, &pb.AuthStatusRequest{}) }
func authEnable(user string) step  { return authReq(user, &pb.AuthEnableRequest{}) }
func authDisable(user string) step { return authReq(user, &pb.AuthDisableRequest{}) }

const (
	asRoot  = "root:rootpw"
	asAlice = "alice:alicepw"
)

func authScenarios() []scenario {
	read, write, rw := authpb.Permission_READ, authpb.Permission_WRITE, authpb.Permission_READWRITE
	return []scenario{
		{name: "auth-management-errors", steps: []step{
			authStatus(""),
			authEnable("").expect(errRootUserNotExist),
			userAdd("", "root", "rootpw"),
			authEnable("").expect(errRootRoleNotExist),
			grantRole("", "root", "root"), // the root role need not exist as a role
			grantRole("", "root", "root"), // granted twice: no change
			userAdd("", "", "x").expect(errUserEmpty),
			userAdd("", "root", "x").expect(errUserAlreadyExist),
			roleAdd("", "").expect(errRoleEmpty),
			roleAdd("", "ro"),
			roleAdd("", "ro").expect(errRoleAlreadyExist),
			authReq("", &pb.AuthRoleGrantPermissionRequest{Name: "ro"}).expect(errPermissionNotGiven),
			grantPerm("", "ro", read, "b", "a").expect(errInvalidAuthMgmt),
			grantPerm("", "ro", read, "", "").expect(errInvalidAuthMgmt),
			grantPerm("", "nope", read, "a", "").expect(errRoleNotFound),
			grantPerm("", "ro", read, "a/", "a0"),
			grantPerm("", "ro", write, "w/", "\x00"),
			grantPerm("", "ro", read, "k", ""),
			grantPerm("", "ro", rw, "k", ""), // same key and end: updated in place
			authReq("", &pb.AuthRoleGetRequest{Role: "ro"}),
			authReq("", &pb.AuthRoleGetRequest{Role: "root"}).expect(errRoleNotFound),
			userAdd("", "alice", "alicepw"),
			grantRole("", "alice", "nope").expect(errRoleNotFound),
			grantRole("", "bob", "ro").expect(errUserNotFound),
			grantRole("", "alice", "ro"),
			authReq("", &pb.AuthUserGetRequest{Name: "alice"}),
			authReq("", &pb.AuthUserGetRequest{Name: "bob"}).expect(errUserNotFound),
			authReq("", &pb.AuthUserListRequest{}),
			authReq("", &pb.AuthRoleListRequest{}),
			authReq("", &pb.AuthUserRevokeRoleRequest{Name: "alice", Role: "nope"}).expect(errRoleNotGranted),
			authReq("", &pb.AuthRoleRevokePermissionRequest{Role: "ro", Key: b("zz")}).expect(errPermNotGranted),
			authReq("", &pb.AuthenticateRequest{Name: "alice", Password: "alicepw"}).expect(errAuthNotEnabled),
			authStatus(""), // the auth revision counts every change
			authEnable(""),
			authEnable(asRoot), // enabling twice is fine
			authStatus(asRoot),
			authReq(asRoot, &pb.AuthUserDeleteRequest{Name: "root"}).expect(errInvalidAuthMgmt),
			authReq(asRoot, &pb.AuthUserRevokeRoleRequest{Name: "root", Role: "root"}).expect(errInvalidAuthMgmt),
			authReq("", &pb.AuthenticateRequest{Name: "alice", Password: "wrong"}).expect(errAuthFailed),
			authReq("", &pb.AuthenticateRequest{Name: "nobody", Password: "x"}).expect(errAuthFailed),
			authReq("", &pb.AuthenticateRequest{Name: "alice", Password: "alicepw"}),
			authStatus(""), // allowed without credentials, as in etcd
			authReq(asAlice, &pb.AuthUserListRequest{}).expect(errPermissionDenied),
			authReq(asAlice, &pb.AuthUserGetRequest{Name: "alice"}), // herself
			authReq(asAlice, &pb.AuthUserGetRequest{Name: "root"}).expect(errPermissionDenied),
			authReq(asAlice, &pb.AuthRoleGetRequest{Role: "ro"}), // her role
			authReq(asAlice, &pb.AuthRoleAddRequest{Name: "x"}).expect(errPermissionDenied),
			authReq(asAlice, &pb.AuthDisableRequest{}).expect(errPermissionDenied),
			authDisable(asRoot),
			authDisable(""), // already disabled: a no-op
			authStatus(""),
			authReq("", &pb.AuthRoleDeleteRequest{Role: "nope"}).expect(errRoleNotFound),
			authReq("", &pb.AuthRoleDeleteRequest{Role: "ro"}),
			authReq("", &pb.AuthUserGetRequest{Name: "alice"}), // lost the deleted role
			authReq("", &pb.AuthUserDeleteRequest{Name: "alice"}),
			authReq("", &pb.AuthUserDeleteRequest{Name: "alice"}).expect(errUserNotFound),
			authReq("", &pb.AuthUserDeleteRequest{Name: "root"}),
			authReq("", &pb.AuthUserListRequest{}),
			authStatus(""),
		}},
		{name: "auth-key-permissions", steps: []step{
			userAdd("", "root", "rootpw"),
			grantRole("", "root", "root"),
			roleAdd("", "ro"),
			grantPerm("", "ro", read, "a/", "a0"),
			grantPerm("", "ro", rw, "a/rw/", "a/rw0"),
			grantPerm("", "ro", write, "w/", "\x00"),
			userAdd("", "alice", "alicepw"),
			grantRole("", "alice", "ro"),
			put("a/x", "1"),
			put("a/rw/x", "1"),
			authEnable(""),
			put("a/x", "2").expect(errUserEmpty),
			get("a/x").expect(errUserEmpty),
			watchOnce("", &pb.WatchCreateRequest{Key: b("a/x")}),
			as(asAlice, get("a/x")),
			as(asAlice, rng(&pb.RangeRequest{Key: b("a/"), RangeEnd: b("a0")})),
			as(asAlice, rng(&pb.RangeRequest{Key: b("a/"), RangeEnd: b("a1")})).expect(errPermissionDenied),
			as(asAlice, rng(&pb.RangeRequest{Key: b("a/"), RangeEnd: fromKey})).expect(errPermissionDenied),
			as(asAlice, get("b")).expect(errPermissionDenied),
			as(asAlice, put("a/x", "2")).expect(errPermissionDenied),
			as(asAlice, put("a/rw/x", "2")),
			as(asAlice, putReq(&pb.PutRequest{Key: b("w/x"), Value: b("1"), PrevKv: true})).expect(errPermissionDenied),
			as(asAlice, put("w/x", "1")),
			as(asAlice, put("w/y/z", "1")), // open-ended grant
			as(asAlice, delReq(&pb.DeleteRangeRequest{Key: b("w/"), RangeEnd: fromKey})),
			as(asAlice, del("a/x")).expect(errPermissionDenied),
			as(asAlice, txn(&pb.TxnRequest{Compare: []*pb.Compare{cmpValue("a/x", eq, "1")},
				Success: []*pb.RequestOp{opGet(&pb.RangeRequest{Key: b("a/x")})}})),
			as(asAlice, txn(&pb.TxnRequest{Compare: []*pb.Compare{cmpValue("a/x", eq, "1")},
				Success: []*pb.RequestOp{opPut("a/rw/y", "1")}, Failure: []*pb.RequestOp{opPut("a/x", "3")}})).expect(errPermissionDenied),
			as(asAlice, txn(&pb.TxnRequest{Compare: []*pb.Compare{cmpValue("w/x", eq, "1")},
				Success: []*pb.RequestOp{opPut("w/y", "1")}})).expect(errPermissionDenied),
			as(asAlice, txn(&pb.TxnRequest{Success: []*pb.RequestOp{opTxn(&pb.TxnRequest{
				Failure: []*pb.RequestOp{opGet(&pb.RangeRequest{Key: b("zzz")})}})}})).expect(errPermissionDenied),
			as(asAlice, compact(1, false)).expect(errPermissionDenied),
			watchOnce(asAlice, &pb.WatchCreateRequest{Key: b("a/"), RangeEnd: b("a0")}),
			watchOnce(asAlice, &pb.WatchCreateRequest{Key: b("b")}),
			// Leases: alice may read the keys of a lease, not revoke it.
			as(asRoot, grant(7001, 60)),
			as(asRoot, putReq(&pb.PutRequest{Key: b("a/l"), Value: b("1"), Lease: 7001})),
			as(asAlice, timeToLive(7001, true)),
			as(asAlice, leases()),
			as(asAlice, revoke(7001)).expect(errPermissionDenied),
			as(asAlice, putReq(&pb.PutRequest{Key: b("a/rw/l"), Value: b("1"), Lease: 7001})).expect(errPermissionDenied),
			timeToLive(7001, false).expect(errUserEmpty),
			as(asRoot, revoke(7001)),
			as(asRoot, get("a/l")),
			// Revoking her role takes effect at once.
			authReq(asRoot, &pb.AuthUserRevokeRoleRequest{Name: "alice", Role: "ro"}),
			as(asAlice, get("a/x")).expect(errPermissionDenied),
			as(asRoot, rng(&pb.RangeRequest{Key: b("\x00"), RangeEnd: fromKey})),
			authDisable(asRoot),
			authReq("", &pb.AuthUserDeleteRequest{Name: "alice"}),
			authReq("", &pb.AuthUserDeleteRequest{Name: "root"}),
			authReq("", &pb.AuthRoleDeleteRequest{Role: "ro"}),
		}},
	}
}

// TestDifferentialAuth runs the auth scenarios against etcd and the candidate.
func TestDifferentialAuth(t *testing.T) {
	log := &mismatchLog{}
	defer log.flush(t)
	p := startPair(t)
	for _, sc := range authScenarios() {
		clean := true
		t.Run(sc.name, func(t *testing.T) {
			clean = runScenario(t, p, sc, log)
		})
		if !clean {
			_ = p.Close()
			p = startPair(t)
		}
	}
}
