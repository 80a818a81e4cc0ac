package kvserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/photoncloud/photoncloud/internal/chainfire/snapshot"
)

// Status describes this member.
func (s *Server) Status(ctx context.Context) (*pb.StatusResponse, error) {
	resp := &pb.StatusResponse{
		Header:           &pb.ResponseHeader{Revision: s.kv.Rev()},
		Version:          Version,
		StorageVersion:   StorageVersion,
		DbSize:           s.dbSize.Load(),
		DbSizeInUse:      s.dbSizeInUse.Load(),
		DbSizeQuota:      s.opts.QuotaBackendBytes,
		Leader:           s.leader.Load(),
		RaftIndex:        s.committed.Load(),
		RaftTerm:         s.term.Load(),
		RaftAppliedIndex: s.applied.Load(),
	}
	for _, a := range s.Alarms() {
		resp.Errors = append(resp.Errors, fmt.Sprintf("memberID:%d alarm:%s", a.MemberID, a.Alarm))
	}
	return resp, nil
}

// Alarm lists, raises or clears alarms. Clearing goes through raft so every
// member agrees; listing is local.
func (s *Server) Alarm(ctx context.Context, r *pb.AlarmRequest) (*pb.AlarmResponse, error) {
	if r.Action == pb.AlarmRequest_GET {
		return &pb.AlarmResponse{Header: &pb.ResponseHeader{Revision: s.kv.Rev()}, Alarms: s.Alarms()}, nil
	}
	return proposeAs[*pb.AlarmResponse](ctx, s, &pb.InternalRaftRequest{Alarm: r})
}

// ErrBadTransferee answers a leader move to a member that cannot lead.
var ErrBadTransferee = errors.New("kvserver: bad leader transferee")

// MoveLeader hands leadership to another voting member and waits until it
// leads. Only the leader can move leadership.
func (s *Server) MoveLeader(ctx context.Context, target uint64) error {
	if s.leader.Load() != s.memberID {
		return ErrNotLeader
	}
	if target == s.memberID {
		return nil
	}
	voter := false
	for _, id := range s.confState.Load().GetVoters() {
		voter = voter || id == target
	}
	if !voter {
		return ErrBadTransferee
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.requestTimeout())
		defer cancel()
	}
	select {
	case s.transferc <- target:
	case <-ctx.Done():
		return contextErr(ctx.Err())
	}
	t := time.NewTicker(s.opts.HeartbeatInterval)
	defer t.Stop()
	for s.leader.Load() != target {
		select {
		case <-t.C:
		case <-ctx.Done():
			return contextErr(ctx.Err())
		case <-s.stopping:
			return ErrStopped
		}
	}
	s.lg.Info("leadership moved", "to", fmt.Sprintf("%x", target))
	return nil
}

// Hash is the CRC of the whole MVCC key space.
func (s *Server) Hash(ctx context.Context) (*pb.HashResponse, error) {
	h, rev, err := s.kv.Hash()
	if err != nil {
		return nil, err
	}
	return &pb.HashResponse{Header: &pb.ResponseHeader{Revision: rev}, Hash: h}, nil
}

// HashKV is the CRC of the history up to rev (0: current).
func (s *Server) HashKV(ctx context.Context, rev int64) (*pb.HashKVResponse, error) {
	h, hashRev, compactRev, err := s.kv.HashKV(rev)
	if err != nil {
		return nil, err
	}
	return &pb.HashKVResponse{Header: &pb.ResponseHeader{Revision: hashRev}, Hash: h, CompactRevision: compactRev, HashRevision: hashRev}, nil
}

// Defragment compacts the whole Pebble keyspace, reclaiming the space of
// deleted revisions.
func (s *Server) Defragment(ctx context.Context) error {
	start := time.Now()
	s.lg.Info("defragmenting", "db-size", s.dbSize.Load())
	if err := s.db.Compact(ctx, []byte{0}, []byte{0xff, 0xff}, true); err != nil {
		return fmt.Errorf("defragment: %w", err)
	}
	total, inUse := s.m.setSizes(s.db)
	s.dbSize.Store(total)
	s.dbSizeInUse.Store(inUse)
	s.lg.Info("defragmented", "db-size", total, "took", time.Since(start))
	return nil
}

// Snapshot writes a consistent copy of the member's applied state (MVCC
// data, leases, alarms, membership; not the raft log) to w in the format of
// package snapshot, and returns its size.
func (s *Server) Snapshot(ctx context.Context, w io.Writer) (int64, error) {
	snap := s.db.NewSnapshot()
	defer snap.Close()
	it, err := snap.NewIter(nil)
	if err != nil {
		return 0, err
	}
	defer it.Close()
	sw := snapshot.NewWriter(w)
	for ok := it.First(); ok; ok = it.Next() {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		k := it.Key()
		if len(k) > 0 && k[0] == 'r' {
			continue // raft log and hard state stay with the member
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return 0, err
		}
		if err := sw.Add(k, v); err != nil {
			return 0, err
		}
	}
	if err := it.Error(); err != nil {
		return 0, err
	}
	return sw.Close()
}

// housekeepingLoop refreshes the store size and runs auto-compaction.
func (s *Server) housekeepingLoop() {
	defer s.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	s.m.quota.Set(float64(s.opts.QuotaBackendBytes))
	ac := newAutoCompactor(s.opts.RetentionPeriod, s.opts.RetentionRevisions)
	for {
		total, inUse := s.m.setSizes(s.db)
		s.dbSize.Store(total)
		s.dbSizeInUse.Store(inUse)
		if s.lessorIsPrimary() && s.opts.AutoPromote {
			s.promoteReadyLearners()
		}
		if s.lessorIsPrimary() {
			if rev := ac.target(time.Now(), s.kv.Rev(), s.kv.CompactRev()); rev > 0 {
				ctx, cancel := context.WithTimeout(context.Background(), s.requestTimeout())
				_, err := s.Compact(ctx, &pb.CompactionRequest{Revision: rev})
				cancel()
				if err != nil {
					s.lg.Warn("auto-compaction failed", "revision", rev, "err", err)
				} else {
					s.lg.Info("auto-compacted", "revision", rev)
				}
			}
		}
		select {
		case <-s.stopping:
			return
		case <-t.C:
		}
	}
}

func (s *Server) lessorIsPrimary() bool {
	return s.leader.Load() == s.memberID
}

// autoCompactor decides when to compact: periodic mode keeps the revisions of
// the last retention period, revision mode the last N revisions.
type autoCompactor struct {
	period  time.Duration
	revs    int64
	samples []revSample
	last    time.Time
}

type revSample struct {
	at  time.Time
	rev int64
}

func newAutoCompactor(period time.Duration, revs int64) *autoCompactor {
	return &autoCompactor{period: period, revs: revs}
}

// target returns the revision to compact to now, or 0.
func (a *autoCompactor) target(now time.Time, rev, compacted int64) int64 {
	switch {
	case a.revs > 0:
		// etcd checks revision retention every 5 minutes.
		if now.Sub(a.last) < 5*time.Minute {
			return 0
		}
		a.last = now
		if t := rev - a.revs; t > compacted {
			return t
		}
	case a.period > 0:
		a.samples = append(a.samples, revSample{now, rev})
		// The newest sample at least one period old is the revision to keep.
		var pick int64
		i := 0
		for ; i < len(a.samples) && now.Sub(a.samples[i].at) >= a.period; i++ {
			pick = a.samples[i].rev
		}
		if i > 1 {
			a.samples = a.samples[i-1:]
		}
		interval := a.period / 10
		if interval < time.Second {
			interval = time.Second
		}
		if pick > compacted && now.Sub(a.last) >= interval {
			a.last = now
			return pick
		}
	}
	return 0
}
