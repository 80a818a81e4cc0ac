package v3rpc

import (
	"context"
	"errors"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/photoncloud/photoncloud/internal/chainfire/auth"
	"github.com/photoncloud/photoncloud/internal/chainfire/kvserver"
	"github.com/photoncloud/photoncloud/internal/chainfire/lease"
	"github.com/photoncloud/photoncloud/internal/chainfire/mvcc"
)

// errorTable maps internal errors to the etcd errors clients match on.
var errorTable = []struct {
	err  error
	grpc error
}{
	{mvcc.ErrCompacted, rpctypes.ErrGRPCCompacted},
	{mvcc.ErrFutureRev, rpctypes.ErrGRPCFutureRev},
	{kvserver.ErrKeyNotFound, rpctypes.ErrGRPCKeyNotFound},
	{kvserver.ErrNoSpace, rpctypes.ErrGRPCNoSpace},
	{kvserver.ErrRequestTooLarge, rpctypes.ErrGRPCRequestTooLarge},
	{kvserver.ErrTimeout, rpctypes.ErrGRPCTimeout},
	{kvserver.ErrCanceled, rpctypes.ErrGRPCCanceled},
	{kvserver.ErrStopped, rpctypes.ErrGRPCStopped},
	{kvserver.ErrNoLeader, rpctypes.ErrGRPCNoLeader},
	{kvserver.ErrNotLeader, rpctypes.ErrGRPCNotLeader},
	{kvserver.ErrCorrupt, rpctypes.ErrGRPCCorrupt},
	{kvserver.ErrBadTransferee, rpctypes.ErrGRPCBadLeaderTransferee},
	{kvserver.ErrMemberNotFound, rpctypes.ErrGRPCMemberNotFound},
	{kvserver.ErrIDRemoved, rpctypes.ErrGRPCMemberNotFound},
	{kvserver.ErrIDExists, rpctypes.ErrGRPCMemberExist},
	{kvserver.ErrPeerURLExists, rpctypes.ErrGRPCPeerURLExist},
	{kvserver.ErrMemberBadURLs, rpctypes.ErrGRPCMemberBadURLs},
	{kvserver.ErrMemberNotLearner, rpctypes.ErrGRPCMemberNotLearner},
	{kvserver.ErrLearnerNotReady, rpctypes.ErrGRPCLearnerNotReady},
	{kvserver.ErrTooManyLearners, rpctypes.ErrGRPCTooManyLearners},
	{lease.ErrNotFound, rpctypes.ErrGRPCLeaseNotFound},
	{lease.ErrExists, rpctypes.ErrGRPCLeaseExist},
	{lease.ErrTTLTooLarge, rpctypes.ErrGRPCLeaseTTLTooLarge},
	{lease.ErrNotPrimary, rpctypes.ErrGRPCNotLeader},
	{auth.ErrRootUserNotExist, rpctypes.ErrGRPCRootUserNotExist},
	{auth.ErrRootRoleNotExist, rpctypes.ErrGRPCRootRoleNotExist},
	{auth.ErrUserAlreadyExist, rpctypes.ErrGRPCUserAlreadyExist},
	{auth.ErrUserEmpty, rpctypes.ErrGRPCUserEmpty},
	{auth.ErrUserNotFound, rpctypes.ErrGRPCUserNotFound},
	{auth.ErrRoleAlreadyExist, rpctypes.ErrGRPCRoleAlreadyExist},
	{auth.ErrRoleNotFound, rpctypes.ErrGRPCRoleNotFound},
	{auth.ErrRoleEmpty, rpctypes.ErrGRPCRoleEmpty},
	{auth.ErrAuthFailed, rpctypes.ErrGRPCAuthFailed},
	{auth.ErrPermissionNotGiven, rpctypes.ErrGRPCPermissionNotGiven},
	{auth.ErrPermissionDenied, rpctypes.ErrGRPCPermissionDenied},
	{auth.ErrRoleNotGranted, rpctypes.ErrGRPCRoleNotGranted},
	{auth.ErrPermissionNotGranted, rpctypes.ErrGRPCPermissionNotGranted},
	{auth.ErrAuthNotEnabled, rpctypes.ErrGRPCAuthNotEnabled},
	{auth.ErrInvalidAuthToken, rpctypes.ErrGRPCInvalidAuthToken},
	{auth.ErrInvalidAuthMgmt, rpctypes.ErrGRPCInvalidAuthMgmt},
	{auth.ErrAuthOldRevision, rpctypes.ErrGRPCAuthOldRevision},
	{context.Canceled, rpctypes.ErrGRPCCanceled},
	{context.DeadlineExceeded, rpctypes.ErrGRPCDeadlineExceeded},
}

// togRPCError turns any error into a gRPC status error; errors without an
// etcd equivalent become Internal, never Unknown.
func togRPCError(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	for _, e := range errorTable {
		if errors.Is(err, e.err) {
			return e.grpc
		}
	}
	return status.Error(codes.Internal, err.Error())
}
