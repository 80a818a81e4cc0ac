package v3rpc

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/photoncloud/photoncloud/internal/chainfire/auth"
	"github.com/photoncloud/photoncloud/internal/chainfire/kvserver"
)

// authService is etcd's Auth service: users, roles, permissions, enabling
// auth and handing out tokens.
type authService struct {
	pb.UnimplementedAuthServer
	s *kvserver.Server
	h headerFiller
}

// authCall proposes one auth request and returns its typed response with
// the header filled.
func authCall[T any](ctx context.Context, a *authService, r *pb.InternalRaftRequest, header func(T) **pb.ResponseHeader) (T, error) {
	resp, err := a.s.AuthRequest(ctx, r)
	if err != nil {
		var zero T
		return zero, togRPCError(err)
	}
	return finish(a, resp.(T), nil, header)
}

// finish maps err to etcd's error or fills resp's header.
func finish[T any](a *authService, resp T, err error, header func(T) **pb.ResponseHeader) (T, error) {
	if err != nil {
		var zero T
		return zero, togRPCError(err)
	}
	a.h.fill(header(resp))
	return resp, nil
}

func (a *authService) AuthEnable(ctx context.Context, r *pb.AuthEnableRequest) (*pb.AuthEnableResponse, error) {
	return authCall(ctx, a, &pb.InternalRaftRequest{AuthEnable: r}, func(x *pb.AuthEnableResponse) **pb.ResponseHeader { return &x.Header })
}

func (a *authService) AuthDisable(ctx context.Context, r *pb.AuthDisableRequest) (*pb.AuthDisableResponse, error) {
	return authCall(ctx, a, &pb.InternalRaftRequest{AuthDisable: r}, func(x *pb.AuthDisableResponse) **pb.ResponseHeader { return &x.Header })
}

func (a *authService) AuthStatus(ctx context.Context, r *pb.AuthStatusRequest) (*pb.AuthStatusResponse, error) {
	return authCall(ctx, a, &pb.InternalRaftRequest{AuthStatus: r}, func(x *pb.AuthStatusResponse) **pb.ResponseHeader { return &x.Header })
}

func (a *authService) Authenticate(ctx context.Context, r *pb.AuthenticateRequest) (*pb.AuthenticateResponse, error) {
	resp, err := a.s.Authenticate(ctx, r)
	return finish(a, resp, err, func(x *pb.AuthenticateResponse) **pb.ResponseHeader { return &x.Header })
}

func (a *authService) UserAdd(ctx context.Context, r *pb.AuthUserAddRequest) (*pb.AuthUserAddResponse, error) {
	resp, err := a.s.UserAdd(ctx, r)
	return finish(a, resp, err, func(x *pb.AuthUserAddResponse) **pb.ResponseHeader { return &x.Header })
}

func (a *authService) UserGet(ctx context.Context, r *pb.AuthUserGetRequest) (*pb.AuthUserGetResponse, error) {
	return authCall(ctx, a, &pb.InternalRaftRequest{AuthUserGet: r}, func(x *pb.AuthUserGetResponse) **pb.ResponseHeader { return &x.Header })
}

func (a *authService) UserList(ctx context.Context, r *pb.AuthUserListRequest) (*pb.AuthUserListResponse, error) {
	return authCall(ctx, a, &pb.InternalRaftRequest{AuthUserList: r}, func(x *pb.AuthUserListResponse) **pb.ResponseHeader { return &x.Header })
}

func (a *authService) UserDelete(ctx context.Context, r *pb.AuthUserDeleteRequest) (*pb.AuthUserDeleteResponse, error) {
	return authCall(ctx, a, &pb.InternalRaftRequest{AuthUserDelete: r}, func(x *pb.AuthUserDeleteResponse) **pb.ResponseHeader { return &x.Header })
}

func (a *authService) UserChangePassword(ctx context.Context, r *pb.AuthUserChangePasswordRequest) (*pb.AuthUserChangePasswordResponse, error) {
	resp, err := a.s.UserChangePassword(ctx, r)
	return finish(a, resp, err, func(x *pb.AuthUserChangePasswordResponse) **pb.ResponseHeader { return &x.Header })
}

func (a *authService) UserGrantRole(ctx context.Context, r *pb.AuthUserGrantRoleRequest) (*pb.AuthUserGrantRoleResponse, error) {
	return authCall(ctx, a, &pb.InternalRaftRequest{AuthUserGrantRole: r}, func(x *pb.AuthUserGrantRoleResponse) **pb.ResponseHeader { return &x.Header })
}

func (a *authService) UserRevokeRole(ctx context.Context, r *pb.AuthUserRevokeRoleRequest) (*pb.AuthUserRevokeRoleResponse, error) {
	return authCall(ctx, a, &pb.InternalRaftRequest{AuthUserRevokeRole: r}, func(x *pb.AuthUserRevokeRoleResponse) **pb.ResponseHeader { return &x.Header })
}

func (a *authService) RoleAdd(ctx context.Context, r *pb.AuthRoleAddRequest) (*pb.AuthRoleAddResponse, error) {
	return authCall(ctx, a, &pb.InternalRaftRequest{AuthRoleAdd: r}, func(x *pb.AuthRoleAddResponse) **pb.ResponseHeader { return &x.Header })
}

func (a *authService) RoleGet(ctx context.Context, r *pb.AuthRoleGetRequest) (*pb.AuthRoleGetResponse, error) {
	return authCall(ctx, a, &pb.InternalRaftRequest{AuthRoleGet: r}, func(x *pb.AuthRoleGetResponse) **pb.ResponseHeader { return &x.Header })
}

func (a *authService) RoleList(ctx context.Context, r *pb.AuthRoleListRequest) (*pb.AuthRoleListResponse, error) {
	return authCall(ctx, a, &pb.InternalRaftRequest{AuthRoleList: r}, func(x *pb.AuthRoleListResponse) **pb.ResponseHeader { return &x.Header })
}

func (a *authService) RoleDelete(ctx context.Context, r *pb.AuthRoleDeleteRequest) (*pb.AuthRoleDeleteResponse, error) {
	return authCall(ctx, a, &pb.InternalRaftRequest{AuthRoleDelete: r}, func(x *pb.AuthRoleDeleteResponse) **pb.ResponseHeader { return &x.Header })
}

func (a *authService) RoleGrantPermission(ctx context.Context, r *pb.AuthRoleGrantPermissionRequest) (*pb.AuthRoleGrantPermissionResponse, error) {
	return authCall(ctx, a, &pb.InternalRaftRequest{AuthRoleGrantPermission: r}, func(x *pb.AuthRoleGrantPermissionResponse) **pb.ResponseHeader { return &x.Header })
}

func (a *authService) RoleRevokePermission(ctx context.Context, r *pb.AuthRoleRevokePermissionRequest) (*pb.AuthRoleRevokePermissionResponse, error) {
	return authCall(ctx, a, &pb.InternalRaftRequest{AuthRoleRevokePermission: r}, func(x *pb.AuthRoleRevokePermissionResponse) **pb.ResponseHeader { return &x.Header })
}

// requireUser refuses anonymous callers while auth is enabled (etcd's
// requireAuthInfo), for requests any user may make.
func requireUser(ctx context.Context, s *kvserver.Server) error {
	if !s.Auth().IsAuthEnabled() {
		return nil
	}
	ai, err := s.AuthInfo(ctx)
	if err != nil {
		return togRPCError(err)
	}
	if ai == nil {
		return togRPCError(auth.ErrUserEmpty)
	}
	return nil
}

// requireAdmin refuses callers without the root role while auth is enabled.
func requireAdmin(ctx context.Context, s *kvserver.Server) error {
	ai, err := s.AuthInfo(ctx)
	if err != nil {
		return togRPCError(err)
	}
	return togRPCError(s.Auth().IsAdminPermitted(ai))
}

// checkLeaseKeys is etcd's check of lease requests that expose or renew
// the keys of leases: a user needs read (or, to renew, write) permission on
// every attached key, unless an admin; the check is repeated if the auth
// state moved meanwhile.
func checkLeaseKeys(ctx context.Context, s *kvserver.Server, ids []int64, write bool) error {
	a := s.Auth()
	rev := a.Revision()
	if !a.IsAuthEnabled() {
		return nil
	}
	ai, err := s.AuthInfo(ctx)
	if err != nil {
		return togRPCError(err)
	}
	if ai == nil {
		return togRPCError(auth.ErrUserEmpty)
	}
	if a.IsAdminPermitted(ai) == nil {
		return nil
	}
	for _, id := range ids {
		keys, ok := s.LeaseKeys(id)
		if !ok {
			continue
		}
		if err := a.CheckLeaseKeys(ai, keys, write); err != nil {
			return togRPCError(err)
		}
	}
	if rev != a.Revision() {
		return togRPCError(auth.ErrAuthOldRevision)
	}
	return nil
}
