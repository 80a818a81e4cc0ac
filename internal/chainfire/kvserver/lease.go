package kvserver

import (
	"context"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/photoncloud/photoncloud/internal/chainfire/lease"
)

const (
	// leaseRevokeBatch bounds the revokes proposed per check, as etcd rate-limits them.
	leaseRevokeBatch = 500
	// leaseRevokeRetry is how long an expired lease waits before its revoke is proposed again.
	leaseRevokeRetry = 3 * time.Second
)

// LeaseGrant creates a lease through raft; ID 0 asks the server to choose one.
func (s *Server) LeaseGrant(ctx context.Context, r *pb.LeaseGrantRequest) (*pb.LeaseGrantResponse, error) {
	if r.ID == 0 {
		r = &pb.LeaseGrantRequest{TTL: r.TTL, ID: int64(s.ids.Next() & (1<<63 - 1))}
	}
	if r.TTL > lease.MaxTTL {
		return nil, lease.ErrTTLTooLarge
	}
	if err := s.checkQuota(r); err != nil {
		return nil, err
	}
	return proposeAs[*pb.LeaseGrantResponse](ctx, s, &pb.InternalRaftRequest{LeaseGrant: r})
}

// LeaseRevoke deletes a lease and its keys through raft.
func (s *Server) LeaseRevoke(ctx context.Context, r *pb.LeaseRevokeRequest) (*pb.LeaseRevokeResponse, error) {
	return proposeAs[*pb.LeaseRevokeResponse](ctx, s, &pb.InternalRaftRequest{LeaseRevoke: r})
}

// LeaseRenew restarts a lease's countdown on the leader and returns its TTL.
func (s *Server) LeaseRenew(ctx context.Context, id int64) (int64, error) {
	// The lease must be known here: wait until this member is current.
	if err := s.linearizableReadNotify(ctx); err != nil {
		return 0, err
	}
	ttl, err := s.lessor.Renew(id)
	if err == lease.ErrExpiring {
		if err = s.waitLeaseGone(ctx, id); err != lease.ErrNotPrimary {
			return 0, err
		}
	}
	if err != lease.ErrNotPrimary {
		return ttl, err
	}
	// Only the leader tracks deadlines: forward the keep-alive to it.
	lead, p := s.leader.Load(), s.peerTransport()
	if lead == 0 || lead == s.memberID || p == nil {
		return 0, ErrNoLeader
	}
	ttl, err = p.LeaseRenew(ctx, lead, id)
	if err != nil && status.Code(err) == codes.NotFound {
		return 0, lease.ErrNotFound
	}
	return ttl, err
}

// waitLeaseGone waits, as etcd does, until an expired lease's revoke has
// been applied, so that a client told the lease is gone finds its keys gone.
// It returns lease.ErrNotPrimary if this member stops leading meanwhile.
func (s *Server) waitLeaseGone(ctx context.Context, id int64) error {
	t := time.NewTicker(s.opts.HeartbeatInterval / 4)
	defer t.Stop()
	for {
		if _, err := s.lessor.Lookup(id, false); err == lease.ErrNotFound {
			return lease.ErrNotFound
		}
		if s.leader.Load() != s.memberID {
			// The next leader revokes it; ask that one.
			return lease.ErrNotPrimary
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return contextErr(ctx.Err())
		case <-s.stopping:
			return ErrStopped
		}
	}
}

// LeaseTimeToLive describes a lease.
func (s *Server) LeaseTimeToLive(ctx context.Context, r *pb.LeaseTimeToLiveRequest) (*pb.LeaseTimeToLiveResponse, error) {
	if err := s.linearizableReadNotify(ctx); err != nil {
		return nil, err
	}
	info, err := s.lessor.Lookup(r.ID, r.Keys)
	if err != nil {
		if err == lease.ErrNotFound {
			// etcd answers a missing lease with TTL -1 rather than an error.
			return &pb.LeaseTimeToLiveResponse{Header: &pb.ResponseHeader{Revision: s.kv.Rev()}, ID: r.ID, TTL: -1}, nil
		}
		return nil, err
	}
	resp := &pb.LeaseTimeToLiveResponse{Header: &pb.ResponseHeader{Revision: s.kv.Rev()}, ID: r.ID, TTL: info.TTL, GrantedTTL: info.GrantedTTL}
	for _, k := range info.Keys {
		resp.Keys = append(resp.Keys, []byte(k))
	}
	return resp, nil
}

// LeaseLeases lists every lease.
func (s *Server) LeaseLeases(ctx context.Context) (*pb.LeaseLeasesResponse, error) {
	if err := s.linearizableReadNotify(ctx); err != nil {
		return nil, err
	}
	resp := &pb.LeaseLeasesResponse{Header: &pb.ResponseHeader{Revision: s.kv.Rev()}}
	for _, id := range s.lessor.IDs() {
		resp.Leases = append(resp.Leases, &pb.LeaseStatus{ID: id})
	}
	return resp, nil
}

// leaseLoop revokes expired leases and checkpoints remaining TTLs while
// this member leads.
func (s *Server) leaseLoop() {
	defer s.wg.Done()
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	lastCheckpoint := time.Now()
	for {
		select {
		case <-s.stopping:
			return
		case <-t.C:
		}
		if time.Since(lastCheckpoint) >= s.opts.LeaseCheckpointInterval {
			lastCheckpoint = time.Now()
			s.checkpointLeases()
		}
		ids := s.lessor.Expired(leaseRevokeBatch, leaseRevokeRetry)
		if len(ids) == 0 {
			continue
		}
		var wg sync.WaitGroup
		for _, id := range ids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(systemContext(context.Background()), s.requestTimeout())
				defer cancel()
				_, err := s.propose(ctx, &pb.InternalRaftRequest{LeaseRevoke: &pb.LeaseRevokeRequest{ID: id}})
				if err != nil && err != lease.ErrNotFound {
					s.lg.Warn("revoking expired lease failed; will retry", "lease", id, "err", err)
				}
			}()
		}
		wg.Wait()
	}
}

// checkpointBatch bounds the leases of one checkpoint proposal.
const checkpointBatch = 1000

// checkpointLeases replicates the remaining TTLs that moved since the last
// checkpoint.
func (s *Server) checkpointLeases() {
	due := s.lessor.CheckpointsDue(checkpointBatch)
	if len(due) == 0 {
		return
	}
	r := &pb.LeaseCheckpointRequest{}
	for id, left := range due {
		r.Checkpoints = append(r.Checkpoints, &pb.LeaseCheckpoint{ID: id, Remaining_TTL: left})
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.requestTimeout())
	defer cancel()
	if _, err := s.propose(ctx, &pb.InternalRaftRequest{LeaseCheckpoint: r}); err != nil {
		s.lg.Warn("lease checkpoint failed", "leases", len(r.Checkpoints), "err", err)
	}
}
