package v3rpc

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/photoncloud/photoncloud/internal/chainfire/kvserver"
)

type clusterService struct {
	pb.UnimplementedClusterServer
	s *kvserver.Server
	h headerFiller
}

func toPB(ms []kvserver.Member) []*pb.Member {
	out := make([]*pb.Member, 0, len(ms))
	for _, m := range ms {
		out = append(out, &pb.Member{ID: m.ID, Name: m.Name, PeerURLs: m.PeerURLs, ClientURLs: m.ClientURLs, IsLearner: m.IsLearner})
	}
	return out
}

func (c *clusterService) MemberList(ctx context.Context, r *pb.MemberListRequest) (*pb.MemberListResponse, error) {
	if err := requireUser(ctx, c.s); err != nil {
		return nil, err
	}
	// etcd 3.5+ clients ask for a linearizable list (etcdctl member list
	// does by default): a follower must not answer without a member the
	// leader just added.
	if r.GetLinearizable() {
		if err := c.s.ReadBarrier(ctx); err != nil {
			return nil, togRPCError(err)
		}
	}
	resp := &pb.MemberListResponse{Members: toPB(c.s.Members())}
	c.h.fill(&resp.Header)
	return resp, nil
}

func (c *clusterService) MemberAdd(ctx context.Context, r *pb.MemberAddRequest) (*pb.MemberAddResponse, error) {
	if err := requireAdmin(ctx, c.s); err != nil {
		return nil, err
	}
	m, members, err := c.s.MemberAdd(ctx, r.PeerURLs, r.IsLearner)
	if err != nil {
		return nil, togRPCError(err)
	}
	resp := &pb.MemberAddResponse{Member: toPB([]kvserver.Member{m})[0], Members: toPB(members)}
	c.h.fill(&resp.Header)
	return resp, nil
}

func (c *clusterService) MemberRemove(ctx context.Context, r *pb.MemberRemoveRequest) (*pb.MemberRemoveResponse, error) {
	if err := requireAdmin(ctx, c.s); err != nil {
		return nil, err
	}
	members, err := c.s.MemberRemove(ctx, r.ID)
	if err != nil {
		return nil, togRPCError(err)
	}
	resp := &pb.MemberRemoveResponse{Members: toPB(members)}
	c.h.fill(&resp.Header)
	return resp, nil
}

func (c *clusterService) MemberUpdate(ctx context.Context, r *pb.MemberUpdateRequest) (*pb.MemberUpdateResponse, error) {
	if err := requireAdmin(ctx, c.s); err != nil {
		return nil, err
	}
	members, err := c.s.MemberUpdate(ctx, r.ID, r.PeerURLs)
	if err != nil {
		return nil, togRPCError(err)
	}
	resp := &pb.MemberUpdateResponse{Members: toPB(members)}
	c.h.fill(&resp.Header)
	return resp, nil
}

func (c *clusterService) MemberPromote(ctx context.Context, r *pb.MemberPromoteRequest) (*pb.MemberPromoteResponse, error) {
	if err := requireAdmin(ctx, c.s); err != nil {
		return nil, err
	}
	members, err := c.s.MemberPromote(ctx, r.ID)
	if err != nil {
		return nil, togRPCError(err)
	}
	resp := &pb.MemberPromoteResponse{Members: toPB(members)}
	c.h.fill(&resp.Header)
	return resp, nil
}
