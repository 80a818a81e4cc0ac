package kvserver

import (
	"context"
	"encoding/json"
	"slices"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/membershippb"
)

// publishLoop records this member's name and client URLs in the replicated
// membership once a leader exists, as etcd does at start, so that every
// member's MemberList shows every member's client URLs (clientv3 auto-sync
// and `etcdctl --cluster` use them).
func (s *Server) publishLoop() {
	defer s.wg.Done()
	if len(s.Members()) < 2 {
		return // a single member's list already has its own URLs
	}
	t := time.NewTicker(s.opts.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stopping:
			return
		case <-t.C:
		}
		if s.leader.Load() == 0 {
			continue
		}
		if s.published() {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.requestTimeout())
		_, err := s.proposeResult(ctx, &pb.InternalRaftRequest{ClusterMemberAttrSet: &membershippb.ClusterMemberAttrSetRequest{
			Member_ID:        s.memberID,
			MemberAttributes: &membershippb.Attributes{Name: s.opts.Name, ClientUrls: s.opts.ClientURLs},
		}})
		cancel()
		if err == nil {
			s.lg.Info("published member attributes", "name", s.opts.Name, "client-urls", s.opts.ClientURLs)
			return
		}
		s.lg.Debug("publishing member attributes failed; retrying", "err", err)
	}
}

// published reports whether the replicated membership already has this
// member's current attributes.
func (s *Server) published() bool {
	for _, m := range s.Members() {
		if m.ID == s.memberID {
			return m.Name == s.opts.Name && slices.Equal(m.ClientURLs, s.opts.ClientURLs) && s.attrsApplied.Load()
		}
	}
	return false
}

func (s *Server) applyMemberAttrs(t *txnState, r *membershippb.ClusterMemberAttrSetRequest) {
	s.membersMu.Lock()
	defer s.membersMu.Unlock()
	for i := range s.members {
		if s.members[i].ID == r.Member_ID && r.MemberAttributes != nil {
			s.members[i].Name = r.MemberAttributes.Name
			s.members[i].ClientURLs = append([]string(nil), r.MemberAttributes.ClientUrls...)
		}
	}
	if r.Member_ID == s.memberID {
		s.attrsApplied.Store(true)
	}
	data, err := json.Marshal(membersRecord{ClusterID: s.clusterID, Members: s.members})
	if err == nil {
		_ = t.w.Batch().Set(membersKey, data, nil)
	}
}
