// Package v3rpc is Chainfire's face on the wire: the etcd v3 gRPC services
// (KV, Watch, Lease, Maintenance, Cluster, Auth) implemented on top of
// kvserver, with etcd's request validation, permission checks, response
// headers and error values.
package v3rpc

import (
	"context"
	"log/slog"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/photoncloud/photoncloud/internal/chainfire/auth"
	"github.com/photoncloud/photoncloud/internal/chainfire/kvserver"
)

// Options configure the services.
type Options struct {
	MaxTxnOps       int
	MaxRequestBytes int
	Logger          *slog.Logger
	// Drain closes when the member shuts down; streams then end with
	// etcd's "server stopped" so clients reconnect elsewhere.
	Drain <-chan struct{}
	// LeaderLoss is how long a watch stream opened with etcd's "hasleader"
	// metadata survives without a leader before it is canceled (etcd: three
	// election timeouts).
	LeaderLoss time.Duration
	// StatusErrors, when set, adds member health problems (seen through
	// gossip) to the Errors of Status.
	StatusErrors func() []string
}

// Register adds every etcd v3 service to gs.
func Register(gs *grpc.Server, s *kvserver.Server, o Options) {
	h := headerFiller{s}
	pb.RegisterKVServer(gs, &kvService{s: s, h: h, maxTxnOps: o.MaxTxnOps})
	pb.RegisterWatchServer(gs, &watchService{s: s, h: h, maxBytes: o.MaxRequestBytes, lg: o.Logger, drain: o.Drain, leaderLoss: o.LeaderLoss})
	pb.RegisterLeaseServer(gs, &leaseService{s: s, h: h, lg: o.Logger, drain: o.Drain})
	pb.RegisterMaintenanceServer(gs, &maintenanceService{s: s, h: h, lg: o.Logger, statusErrors: o.StatusErrors})
	pb.RegisterClusterServer(gs, &clusterService{s: s, h: h})
	pb.RegisterAuthServer(gs, &authService{s: s, h: h})
}

// headerFiller completes response headers with the member's identity.
type headerFiller struct{ s *kvserver.Server }

func (f headerFiller) fill(h **pb.ResponseHeader) {
	if *h == nil {
		*h = &pb.ResponseHeader{Revision: f.s.Rev()}
	}
	(*h).ClusterId = f.s.ClusterID()
	(*h).MemberId = f.s.ID()
	(*h).RaftTerm = f.s.Term()
}

// RequireLeader refuses requests carrying etcd's "hasleader" metadata while
// the member has no leader, as clientv3.WithRequireLeader expects.
func RequireLeader(s *kvserver.Server) (grpc.UnaryServerInterceptor, grpc.StreamServerInterceptor) {
	noLeader := func(ctx context.Context) bool {
		return requiresLeader(ctx) && s.Leader() == 0
	}
	unary := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if noLeader(ctx) {
			return nil, rpctypes.ErrGRPCNoLeader
		}
		return handler(ctx, req)
	}
	stream := func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if noLeader(ss.Context()) {
			return rpctypes.ErrGRPCNoLeader
		}
		return handler(srv, ss)
	}
	return unary, stream
}

type kvService struct {
	pb.UnimplementedKVServer
	s         *kvserver.Server
	h         headerFiller
	maxTxnOps int
}

func (k *kvService) Range(ctx context.Context, r *pb.RangeRequest) (*pb.RangeResponse, error) {
	if err := checkRangeRequest(r); err != nil {
		return nil, err
	}
	var resp *pb.RangeResponse
	err := k.s.CheckedRead(ctx, func(ai *auth.AuthInfo) error {
		return k.s.Auth().IsRangePermitted(ai, r.Key, r.RangeEnd)
	}, func() (err error) {
		resp, err = k.s.Range(ctx, r)
		return err
	})
	if err != nil {
		return nil, togRPCError(err)
	}
	k.h.fill(&resp.Header)
	return resp, nil
}

func (k *kvService) RangeStream(r *pb.RangeRequest, stream grpc.ServerStreamingServer[pb.RangeStreamResponse]) error {
	if err := checkRangeRequest(r); err != nil {
		return err
	}
	if r.SortTarget != pb.RangeRequest_KEY || (r.SortOrder != pb.RangeRequest_NONE && r.SortOrder != pb.RangeRequest_ASCEND) {
		return status.Error(codes.Unimplemented, "RangeStream does not support custom sort orders")
	}
	if r.MinModRevision != 0 || r.MaxModRevision != 0 || r.MinCreateRevision != 0 || r.MaxCreateRevision != 0 {
		return status.Error(codes.Unimplemented, "RangeStream does not support revision filters")
	}
	ctx := stream.Context()
	err := k.s.CheckedRead(ctx, func(ai *auth.AuthInfo) error {
		return k.s.Auth().IsRangePermitted(ai, r.Key, r.RangeEnd)
	}, func() error {
		return k.s.RangeStream(ctx, r, func(resp *pb.RangeResponse) error {
			if resp.Header != nil {
				k.h.fill(&resp.Header)
			}
			return stream.Send(&pb.RangeStreamResponse{RangeResponse: resp})
		})
	})
	return togRPCError(err)
}

func (k *kvService) Put(ctx context.Context, r *pb.PutRequest) (*pb.PutResponse, error) {
	if err := checkPutRequest(r); err != nil {
		return nil, err
	}
	resp, err := k.s.Put(ctx, r)
	if err != nil {
		return nil, togRPCError(err)
	}
	k.h.fill(&resp.Header)
	return resp, nil
}

func (k *kvService) DeleteRange(ctx context.Context, r *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	if err := checkDeleteRequest(r); err != nil {
		return nil, err
	}
	resp, err := k.s.DeleteRange(ctx, r)
	if err != nil {
		return nil, togRPCError(err)
	}
	k.h.fill(&resp.Header)
	return resp, nil
}

func (k *kvService) Txn(ctx context.Context, r *pb.TxnRequest) (*pb.TxnResponse, error) {
	if err := checkTxnRequest(r, k.maxTxnOps); err != nil {
		return nil, err
	}
	// Overlap checks come after the op count bound, which keeps them cheap.
	if _, _, err := checkIntervals(r.Success); err != nil {
		return nil, err
	}
	if _, _, err := checkIntervals(r.Failure); err != nil {
		return nil, err
	}
	var resp *pb.TxnResponse
	var err error
	if kvserver.IsTxnReadOnly(r) {
		// Served locally: checked here. Writes are checked when applied.
		err = k.s.CheckedRead(ctx, func(ai *auth.AuthInfo) error {
			return k.s.Auth().CheckTxn(ai, r, k.s.LeaseKeys)
		}, func() (err error) {
			resp, err = k.s.Txn(ctx, r)
			return err
		})
	} else {
		resp, err = k.s.Txn(ctx, r)
	}
	if err != nil {
		return nil, togRPCError(err)
	}
	k.h.fill(&resp.Header)
	return resp, nil
}

func (k *kvService) Compact(ctx context.Context, r *pb.CompactionRequest) (*pb.CompactionResponse, error) {
	if err := requireAdmin(ctx, k.s); err != nil {
		return nil, err
	}
	resp, err := k.s.Compact(ctx, r)
	if err != nil {
		return nil, togRPCError(err)
	}
	k.h.fill(&resp.Header)
	return resp, nil
}

// requiresLeader reports whether the caller sent etcd's "hasleader" metadata
// (clientv3.WithRequireLeader).
func requiresLeader(ctx context.Context) bool {
	md, ok := metadata.FromIncomingContext(ctx)
	if !ok {
		return false
	}
	v := md.Get(rpctypes.MetadataRequireLeaderKey)
	return len(v) > 0 && v[0] == rpctypes.MetadataHasLeader
}
