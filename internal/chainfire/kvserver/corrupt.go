package kvserver

import (
	"context"
	"fmt"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// corruptCheckLoop has the leader compare its HashKV with every other
// member's at the same revision, once shortly after start and then
// periodically; a member whose history differs gets the CORRUPT alarm, which
// stops writes to the cluster until an operator disarms it.
func (s *Server) corruptCheckLoop() {
	defer s.wg.Done()
	if s.opts.CorruptCheckInterval < 0 {
		return
	}
	first := time.NewTimer(min(s.opts.CorruptCheckInterval, 5*time.Second))
	defer first.Stop()
	select {
	case <-first.C:
	case <-s.stopping:
		return
	}
	t := time.NewTicker(s.opts.CorruptCheckInterval)
	defer t.Stop()
	for {
		if s.leader.Load() == s.memberID {
			s.checkHashes()
		}
		select {
		case <-t.C:
		case <-s.stopping:
			return
		}
	}
}

// checkHashes compares the members' HashKV at the leader's revision.
// Members that have not applied that revision yet, or have compacted
// differently, are skipped this round.
func (s *Server) checkHashes() {
	p := s.peerTransport()
	if p == nil || len(s.Members()) < 2 || s.hasAlarm(pb.AlarmType_CORRUPT) {
		return // alone, there is nothing to compare with
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.requestTimeout())
	defer cancel()
	hash, rev, compactRev, err := s.kv.HashKV(0)
	if err != nil {
		return
	}
	for _, m := range s.Members() {
		if m.ID == s.memberID {
			continue
		}
		resp, err := p.HashKV(ctx, m.ID, rev)
		if err != nil {
			s.lg.Debug("corruption check skipped a member", "member", fmt.Sprintf("%x", m.ID), "err", err)
			continue
		}
		if resp.CompactRevision != compactRev || resp.Hash == hash {
			continue
		}
		s.lg.Error("member's history differs from the leader's: raising CORRUPT alarm",
			"member", fmt.Sprintf("%x", m.ID), "revision", rev, "leader-hash", hash, "member-hash", resp.Hash)
		_, err = s.propose(ctx, &pb.InternalRaftRequest{Alarm: &pb.AlarmRequest{Action: pb.AlarmRequest_ACTIVATE, MemberID: m.ID, Alarm: pb.AlarmType_CORRUPT}})
		if err != nil {
			s.lg.Warn("raising CORRUPT alarm failed", "err", err)
		}
		return
	}
}

// checkWritable refuses writes while the CORRUPT alarm is raised.
func (s *Server) checkWritable() error {
	if s.hasAlarm(pb.AlarmType_CORRUPT) {
		return ErrCorrupt
	}
	return nil
}
