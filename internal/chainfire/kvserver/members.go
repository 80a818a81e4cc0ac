package kvserver

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/membershippb"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
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
	data, err := json.Marshal(s.membershipRecord())
	if err == nil {
		_ = t.w.Batch().Set(membersKey, data, nil)
	}
}

// Membership errors, mapped to etcd's by the gRPC layer.
var (
	ErrMemberNotFound   = errors.New("kvserver: member not found")
	ErrPeerURLExists    = errors.New("kvserver: peer URLs already exist")
	ErrMemberBadURLs    = errors.New("kvserver: given member URLs are invalid")
	ErrMemberNotLearner = errors.New("kvserver: can only promote a learner member")
	ErrLearnerNotReady  = errors.New("kvserver: learner is not in sync with the leader")
	ErrTooManyLearners  = errors.New("kvserver: too many learner members in cluster")
	ErrIDExists         = errors.New("kvserver: member ID already exists")
	ErrIDRemoved        = errors.New("kvserver: member ID was removed")
	// ErrMemberRemoved answers a peer that was removed from the cluster.
	ErrMemberRemoved = errors.New("kvserver: the member was removed from the cluster")
)

// maxLearners is etcd's limit on learners at once.
const maxLearners = 1

// learnerReadyPercent is how close a learner's log must be to the leader's
// before it may be promoted (etcd's rule).
const learnerReadyPercent = 0.9

// Membership returns the recorded membership.
func (s *Server) Membership() Membership {
	s.membersMu.Lock()
	defer s.membersMu.Unlock()
	rec := s.membershipRecord()
	rec.Members, rec.Removed = slices.Clone(rec.Members), slices.Clone(rec.Removed)
	return rec
}

// membershipRecord is the membership as persisted; membersMu must be held.
func (s *Server) membershipRecord() Membership {
	return Membership{ClusterID: s.clusterID, Members: s.members, Removed: s.removed}
}

// isRemoved tells whether id belongs to a member removed from the cluster.
func (s *Server) isRemoved(id uint64) bool {
	s.membersMu.RLock()
	defer s.membersMu.RUnlock()
	return slices.Contains(s.removed, id)
}

// joinMembership takes the membership of the cluster this new member joins
// and finds itself in it by its peer URLs.
func (s *Server) joinMembership(m *Membership) error {
	s.clusterID = m.ClusterID
	s.members = append([]Member(nil), m.Members...)
	for i := range s.members {
		if slices.Equal(sortedCopy(s.members[i].PeerURLs), sortedCopy(s.opts.PeerURLs)) {
			s.memberID = s.members[i].ID
			s.members[i].Name = s.opts.Name
			s.members[i].ClientURLs = s.opts.ClientURLs
		}
	}
	if s.memberID == 0 {
		return fmt.Errorf("the cluster has no member with peer URLs %v: add it first (etcdctl member add %s --peer-urls=%s)",
			s.opts.PeerURLs, s.opts.Name, strings.Join(s.opts.PeerURLs, ","))
	}
	data, err := json.Marshal(s.membershipRecord())
	if err != nil {
		return err
	}
	return s.db.Set(membersKey, data, pebble.Sync)
}

func sortedCopy(v []string) []string {
	c := append([]string(nil), v...)
	slices.Sort(c)
	return c
}

// MemberAdd adds a member (a voter, or a learner that does not vote until
// promoted) and returns it with the new membership.
func (s *Server) MemberAdd(ctx context.Context, peerURLs []string, learner bool) (Member, []Member, error) {
	if len(peerURLs) == 0 {
		return Member{}, nil, ErrMemberBadURLs
	}
	for _, u := range peerURLs {
		if pu, err := url.Parse(u); err != nil || pu.Host == "" {
			return Member{}, nil, ErrMemberBadURLs
		}
	}
	learners := 0
	for _, m := range s.Members() {
		for _, u := range m.PeerURLs {
			if slices.Contains(peerURLs, u) {
				return Member{}, nil, ErrPeerURLExists
			}
		}
		if m.IsLearner {
			learners++
		}
	}
	if learner && learners >= maxLearners {
		return Member{}, nil, ErrTooManyLearners
	}

	// The time makes the id unique even for a member re-added with the same
	// URLs: raft never accepts a removed id again.
	m := Member{ID: computeMemberID(peerURLs, s.opts.ClusterToken+time.Now().String()), PeerURLs: peerURLs, IsLearner: learner}
	typ := raftpb.ConfChangeAddNode
	if learner {
		typ = raftpb.ConfChangeAddLearnerNode
	}
	members, err := s.proposeConfChange(ctx, typ, m)
	return m, members, err
}

// MemberRemove removes a member; a member that is removed stops.
func (s *Server) MemberRemove(ctx context.Context, id uint64) ([]Member, error) {
	m, ok := s.member(id)
	if !ok {
		return nil, ErrMemberNotFound
	}
	return s.proposeConfChange(ctx, raftpb.ConfChangeRemoveNode, m)
}

// MemberUpdate changes a member's peer URLs.
func (s *Server) MemberUpdate(ctx context.Context, id uint64, peerURLs []string) ([]Member, error) {
	m, ok := s.member(id)
	if !ok {
		return nil, ErrMemberNotFound
	}
	for _, other := range s.Members() {
		for _, u := range other.PeerURLs {
			if other.ID != id && slices.Contains(peerURLs, u) {
				return nil, ErrPeerURLExists
			}
		}
	}
	m.PeerURLs = peerURLs
	return s.proposeConfChange(ctx, raftpb.ConfChangeUpdateNode, m)
}

// MemberPromote makes a learner a voter once its log is close to the
// leader's; the leader decides.
func (s *Server) MemberPromote(ctx context.Context, id uint64) ([]Member, error) {
	m, ok := s.member(id)
	if !ok {
		return nil, ErrMemberNotFound
	}
	if !m.IsLearner {
		return nil, ErrMemberNotLearner
	}
	ready, err := s.LearnerReady(ctx, id)
	if err != nil {
		return nil, err
	}
	if !ready {
		return nil, ErrLearnerNotReady
	}
	m.IsLearner = false
	return s.proposeConfChange(ctx, raftpb.ConfChangeAddNode, m)
}

// LearnerReady reports whether a learner has caught up, asking the leader
// when this member does not lead.
func (s *Server) LearnerReady(ctx context.Context, id uint64) (bool, error) {
	lead := s.leader.Load()
	if lead == 0 {
		return false, ErrNoLeader
	}
	if lead != s.memberID {
		p := s.peerTransport()
		if p == nil {
			return false, ErrNoLeader
		}
		return p.LearnerReady(ctx, lead, id)
	}
	reply := make(chan map[uint64]uint64, 1)
	select {
	case s.progressc <- reply:
	case <-ctx.Done():
		return false, contextErr(ctx.Err())
	case <-s.stopping:
		return false, ErrStopped
	}
	match := <-reply
	leaderMatch, ok := match[s.memberID]
	if !ok {
		return false, ErrNotLeader
	}
	return float64(match[id]) >= float64(leaderMatch)*learnerReadyPercent, nil
}

func (s *Server) member(id uint64) (Member, bool) {
	for _, m := range s.Members() {
		if m.ID == id {
			return m, true
		}
	}
	return Member{}, false
}

// proposeConfChange proposes a membership change and waits until it is
// applied; it returns the membership after it.
func (s *Server) proposeConfChange(ctx context.Context, typ raftpb.ConfChangeType, m Member) ([]Member, error) {
	if s.leader.Load() == 0 {
		return nil, ErrNoLeader
	}
	mctx, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	id := s.ids.Next()
	cc := &raftpb.ConfChange{Id: proto.Uint64(id), Type: typ.Enum(), NodeId: proto.Uint64(m.ID), Context: mctx}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.requestTimeout())
		defer cancel()
	}
	done := s.wait.register(id)
	defer s.wait.cancel(id)
	// raft turns a change proposed while another is still pending into a
	// no-op, silently, so the change is proposed again until it shows up
	// applied. A duplicate that does get in is rejected by the view.
	retry := time.NewTicker(max(5*s.opts.HeartbeatInterval, 100*time.Millisecond))
	defer retry.Stop()
	for {
		select {
		case s.confc <- cc:
		case <-ctx.Done():
			return nil, contextErr(ctx.Err())
		case <-s.stopping:
			return nil, ErrStopped
		}
		select {
		case res := <-done:
			if res.err != nil {
				return nil, res.err
			}
			return s.Members(), nil
		case <-retry.C:
		case <-ctx.Done():
			return nil, contextErr(ctx.Err())
		case <-s.stopping:
			return nil, ErrStopped
		}
	}
}

// applyMembership records a membership change committed by raft (which the
// raft loop has already decided and applied to its configuration) and
// connects to or disconnects from the member. rejected is the raft loop's
// reason for refusing the change, if it did.
func (s *Server) applyMembership(e *raftpb.Entry, rejected error) {
	var cc raftpb.ConfChange
	if e.GetType() != raftpb.EntryConfChange || proto.Unmarshal(e.Data, &cc) != nil {
		s.commitApplied(e.GetIndex())
		return
	}
	var m Member
	_ = json.Unmarshal(cc.Context, &m)
	id := cc.GetNodeId()
	if rejected != nil {
		s.commitApplied(e.GetIndex())
		s.lg.Warn("membership change rejected", "change", cc.GetType().String(), "member", fmt.Sprintf("%x", id), "peer-urls", m.PeerURLs, "reason", rejected)
		s.wait.trigger(cc.GetId(), result{err: rejected})
		return
	}
	s.membersMu.Lock()
	i := slices.IndexFunc(s.members, func(x Member) bool { return x.ID == id })
	switch cc.GetType() {
	case raftpb.ConfChangeAddNode, raftpb.ConfChangeAddLearnerNode:
		learner := cc.GetType() == raftpb.ConfChangeAddLearnerNode
		if i >= 0 {
			s.members[i].IsLearner = learner
		} else if m.ID == id {
			m.IsLearner = learner
			s.members = append(s.members, m)
			slices.SortFunc(s.members, func(a, b Member) int { return cmp.Compare(a.ID, b.ID) })
		}
	case raftpb.ConfChangeRemoveNode:
		if i >= 0 {
			s.members = slices.Delete(s.members, i, i+1)
		}
		if !slices.Contains(s.removed, id) {
			s.removed = append(s.removed, id)
		}
	case raftpb.ConfChangeUpdateNode:
		if i >= 0 {
			s.members[i].PeerURLs = m.PeerURLs
		}
	}
	data, _ := json.Marshal(s.membershipRecord())
	s.membersMu.Unlock()

	w := s.kv.Write()
	_ = w.Batch().Set(membersKey, data, nil)
	setApplied(w.Batch(), e.GetIndex())
	if _, _, err := w.Commit(); err != nil {
		s.lg.Error("persist membership", "index", e.GetIndex(), "err", err)
	}
	if p := s.peerTransport(); p != nil && id != s.memberID {
		switch cc.GetType() {
		case raftpb.ConfChangeRemoveNode:
			p.RemovePeer(id)
		case raftpb.ConfChangeUpdateNode:
			p.RemovePeer(id)
			_ = p.AddPeer(id, m.PeerURLs)
		default:
			_ = p.AddPeer(id, m.PeerURLs)
		}
	}
	s.lg.Info("membership changed", "change", cc.GetType().String(), "member", fmt.Sprintf("%x", id), "peer-urls", m.PeerURLs)
	s.wait.trigger(cc.GetId(), result{})
	if cc.GetType() == raftpb.ConfChangeRemoveNode && id == s.memberID {
		s.lg.Warn("this member was removed from the cluster; stopping")
		s.stop(nil)
	}
}

// reloadMembers reads the membership a snapshot brought and connects to or
// disconnects from members accordingly.
func (s *Server) reloadMembers() error {
	v, closer, err := s.db.Get(membersKey)
	if err != nil {
		return fmt.Errorf("snapshot has no membership: %w", err)
	}
	var rec Membership
	err = json.Unmarshal(v, &rec)
	closer.Close()
	if err != nil {
		return fmt.Errorf("decode membership: %w", err)
	}
	old := s.Members()
	s.membersMu.Lock()
	s.members, s.removed = rec.Members, rec.Removed
	s.membersMu.Unlock()
	p := s.peerTransport()
	if p == nil {
		return nil
	}
	for _, m := range old {
		if !slices.ContainsFunc(rec.Members, func(x Member) bool { return x.ID == m.ID }) {
			p.RemovePeer(m.ID)
		}
	}
	for _, m := range rec.Members {
		if m.ID != s.memberID {
			_ = p.AddPeer(m.ID, m.PeerURLs)
		}
	}
	return nil
}

// promoteReadyLearners promotes every learner that has caught up; the
// leader runs it when --auto-promote-learners is set.
func (s *Server) promoteReadyLearners() {
	for _, m := range s.Members() {
		if !m.IsLearner {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.requestTimeout())
		_, err := s.MemberPromote(ctx, m.ID)
		cancel()
		switch {
		case err == nil:
			s.lg.Info("promoted learner", "member", fmt.Sprintf("%x", m.ID))
		case errors.Is(err, ErrLearnerNotReady):
		default:
			s.lg.Warn("promoting learner failed", "member", fmt.Sprintf("%x", m.ID), "err", err)
		}
	}
}
