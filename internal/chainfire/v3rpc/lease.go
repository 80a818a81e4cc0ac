package v3rpc

import (
	"context"
	"errors"
	"io"
	"log/slog"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"

	"github.com/photoncloud/photoncloud/internal/chainfire/kvserver"
	"github.com/photoncloud/photoncloud/internal/chainfire/lease"
)

type leaseService struct {
	pb.UnimplementedLeaseServer
	s     *kvserver.Server
	h     headerFiller
	lg    *slog.Logger
	drain <-chan struct{}
}

func (l *leaseService) LeaseGrant(ctx context.Context, r *pb.LeaseGrantRequest) (*pb.LeaseGrantResponse, error) {
	if err := requireUser(ctx, l.s); err != nil {
		return nil, err
	}
	resp, err := l.s.LeaseGrant(ctx, r)
	if err != nil {
		return nil, togRPCError(err)
	}
	l.h.fill(&resp.Header)
	return resp, nil
}

func (l *leaseService) LeaseRevoke(ctx context.Context, r *pb.LeaseRevokeRequest) (*pb.LeaseRevokeResponse, error) {
	// Write permission on the attached keys is checked when applied.
	if err := requireUser(ctx, l.s); err != nil {
		return nil, err
	}
	resp, err := l.s.LeaseRevoke(ctx, r)
	if err != nil {
		return nil, togRPCError(err)
	}
	l.h.fill(&resp.Header)
	return resp, nil
}

func (l *leaseService) LeaseTimeToLive(ctx context.Context, r *pb.LeaseTimeToLiveRequest) (*pb.LeaseTimeToLiveResponse, error) {
	if err := requireUser(ctx, l.s); err != nil {
		return nil, err
	}
	if r.Keys {
		if err := checkLeaseKeys(ctx, l.s, []int64{r.ID}, false); err != nil {
			return nil, err
		}
	}
	resp, err := l.s.LeaseTimeToLive(ctx, r)
	if err != nil {
		return nil, togRPCError(err)
	}
	l.h.fill(&resp.Header)
	return resp, nil
}

func (l *leaseService) LeaseLeases(ctx context.Context, r *pb.LeaseLeasesRequest) (*pb.LeaseLeasesResponse, error) {
	resp, err := l.s.LeaseLeases(ctx)
	if err != nil {
		return nil, togRPCError(err)
	}
	// Listing leases needs read permission on every key attached to any.
	ids := make([]int64, len(resp.Leases))
	for i, ls := range resp.Leases {
		ids[i] = ls.ID
	}
	if err := checkLeaseKeys(ctx, l.s, ids, false); err != nil {
		return nil, err
	}
	l.h.fill(&resp.Header)
	return resp, nil
}

// LeaseKeepAlive renews leases as the client asks; an unknown lease is
// answered with TTL 0, as etcd does, which tells the client it is gone.
func (l *leaseService) LeaseKeepAlive(stream grpc.BidiStreamingServer[pb.LeaseKeepAliveRequest, pb.LeaseKeepAliveResponse]) error {
	ctx := stream.Context()
	type recvd struct {
		req *pb.LeaseKeepAliveRequest
		err error
	}
	reqs := make(chan recvd)
	go func() {
		for {
			req, err := stream.Recv()
			select {
			case reqs <- recvd{req, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	for {
		var req *pb.LeaseKeepAliveRequest
		select {
		case r := <-reqs:
			if errors.Is(r.err, io.EOF) {
				return nil
			}
			if r.err != nil {
				return r.err
			}
			req = r.req
		case <-l.drain:
			return rpctypes.ErrGRPCStopped
		case <-ctx.Done():
			return togRPCError(ctx.Err())
		}
		// Renewing keeps the attached keys alive: it needs write permission.
		if err := checkLeaseKeys(ctx, l.s, []int64{req.ID}, true); err != nil {
			return err
		}
		ttl, err := l.s.LeaseRenew(ctx, req.ID)
		if errors.Is(err, lease.ErrNotFound) {
			ttl, err = 0, nil
		}
		if err != nil {
			return togRPCError(err)
		}
		resp := &pb.LeaseKeepAliveResponse{ID: req.ID, TTL: ttl}
		l.h.fill(&resp.Header)
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
}
