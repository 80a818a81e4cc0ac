package kvserver

import (
	"encoding/json"
	"fmt"
	"slices"
	"sync"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// confView is the membership as raft's configuration changes define it:
// member ids with their peer URLs and learner flag, and the ids removed for
// good. The raft loop decides every committed membership change against it
// before applying it to raft, so every member accepts or rejects the same
// changes — a check at propose time alone lets two concurrent adds of the
// same peer URL, or of two learners, both in.
//
// It is a pure function of the raft log: the view carried by the log's
// snapshot record plus the changes after it. The apply loop does not decide
// anything; it follows the raft loop's decisions.
type confView struct {
	Members map[uint64]viewMember `json:"members"`
	Removed map[uint64]bool       `json:"removed,omitempty"`
}

type viewMember struct {
	PeerURLs []string `json:"peerURLs"`
	Learner  bool     `json:"learner,omitempty"`
}

func newConfView() *confView {
	return &confView{Members: map[uint64]viewMember{}, Removed: map[uint64]bool{}}
}

func (v *confView) clone() *confView {
	c := newConfView()
	for id, m := range v.Members {
		c.Members[id] = viewMember{PeerURLs: slices.Clone(m.PeerURLs), Learner: m.Learner}
	}
	for id := range v.Removed {
		c.Removed[id] = true
	}
	return c
}

// check reports why a committed change must be rejected, or nil.
func (v *confView) check(cc *raftpb.ConfChange) error {
	id := cc.GetNodeId()
	var m Member
	_ = json.Unmarshal(cc.Context, &m)
	cur, exists := v.Members[id]
	switch cc.GetType() {
	case raftpb.ConfChangeAddNode, raftpb.ConfChangeAddLearnerNode:
		if v.Removed[id] {
			return ErrIDRemoved
		}
		if exists {
			// Adding an existing learner as a voter is a promotion.
			if cc.GetType() == raftpb.ConfChangeAddNode && cur.Learner {
				return nil
			}
			return ErrIDExists
		}
		if cc.GetType() == raftpb.ConfChangeAddLearnerNode {
			learners := 0
			for _, x := range v.Members {
				if x.Learner {
					learners++
				}
			}
			if learners >= maxLearners {
				return ErrTooManyLearners
			}
		}
		return v.checkURLs(id, m.PeerURLs)
	case raftpb.ConfChangeRemoveNode:
		if !exists {
			return ErrMemberNotFound
		}
	case raftpb.ConfChangeUpdateNode:
		if !exists {
			return ErrMemberNotFound
		}
		return v.checkURLs(id, m.PeerURLs)
	}
	return nil
}

func (v *confView) checkURLs(id uint64, urls []string) error {
	for other, x := range v.Members {
		if other == id {
			continue
		}
		for _, u := range x.PeerURLs {
			if slices.Contains(urls, u) {
				return ErrPeerURLExists
			}
		}
	}
	return nil
}

// apply records an accepted change.
func (v *confView) apply(cc *raftpb.ConfChange) {
	id := cc.GetNodeId()
	var m Member
	_ = json.Unmarshal(cc.Context, &m)
	switch cc.GetType() {
	case raftpb.ConfChangeAddNode:
		cur, ok := v.Members[id]
		if !ok {
			cur.PeerURLs = slices.Clone(m.PeerURLs)
		}
		cur.Learner = false
		v.Members[id] = cur
	case raftpb.ConfChangeAddLearnerNode:
		v.Members[id] = viewMember{PeerURLs: slices.Clone(m.PeerURLs), Learner: true}
	case raftpb.ConfChangeRemoveNode:
		delete(v.Members, id)
		v.Removed[id] = true
	case raftpb.ConfChangeUpdateNode:
		cur := v.Members[id]
		cur.PeerURLs = slices.Clone(m.PeerURLs)
		v.Members[id] = cur
	}
}

// viewFromMembership builds a view from an applied membership record: the
// fallback for a raft log whose snapshot record carries no view.
func viewFromMembership(ms []Member, removed []uint64) *confView {
	v := newConfView()
	for _, m := range ms {
		v.Members[m.ID] = viewMember{PeerURLs: slices.Clone(m.PeerURLs), Learner: m.IsLearner}
	}
	for _, id := range removed {
		v.Removed[id] = true
	}
	return v
}

// snapshotRecord is the Data of raft snapshots: the view at the snapshot's
// index and, on a member that received one, the file holding the state.
type snapshotRecord struct {
	View *confView `json:"view,omitempty"`
	File string    `json:"file,omitempty"`
}

func decodeSnapshotRecord(data []byte) (snapshotRecord, error) {
	var r snapshotRecord
	if len(data) == 0 {
		return r, nil
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return r, fmt.Errorf("decode raft snapshot record: %w", err)
	}
	return r, nil
}

func (r snapshotRecord) encode() []byte {
	b, _ := json.Marshal(r)
	return b
}

// confPoint is the configuration from a raft index on.
type confPoint struct {
	index uint64
	view  *confView
	cs    *raftpb.ConfState
}

// confHistory keeps the configurations since the last log compaction, so
// that the apply loop can record the one in force at the index it compacts
// at, which lags the raft loop's. The raft loop appends, the apply loop
// reads and prunes.
type confHistory struct {
	mu     sync.Mutex
	points []confPoint
}

func (h *confHistory) reset(p confPoint) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.points = []confPoint{p}
}

func (h *confHistory) add(p confPoint) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.points = append(h.points, p)
}

// at returns the configuration in force at index and forgets the ones
// before it, which no later compaction needs.
func (h *confHistory) at(index uint64) (confPoint, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	i := -1
	for j, p := range h.points {
		if p.index <= index {
			i = j
		}
	}
	if i < 0 {
		return confPoint{}, false
	}
	h.points = h.points[i:]
	return h.points[0], true
}

// decideConfChange decides a committed membership change in the raft loop,
// applies it to raft (as a no-op when rejected) and returns the decision.
func (s *Server) decideConfChange(e *raftpb.Entry) (rejected, err error) {
	var cci raftpb.ConfChangeI
	switch e.GetType() {
	case raftpb.EntryConfChange:
		var c raftpb.ConfChange
		if err := proto.Unmarshal(e.Data, &c); err != nil {
			return nil, fmt.Errorf("decode conf change at %d: %w", e.GetIndex(), err)
		}
		if e.GetIndex() <= s.legacyReplayUntil {
			s.view.apply(&c)
		} else if rejected = s.view.check(&c); rejected != nil {
			// raft skips a change to node 0: etcd's way to cancel one.
			c.NodeId = proto.Uint64(0)
		} else {
			s.view.apply(&c)
		}
		cci = &c
	case raftpb.EntryConfChangeV2:
		var c raftpb.ConfChangeV2
		if err := proto.Unmarshal(e.Data, &c); err != nil {
			return nil, fmt.Errorf("decode conf change at %d: %w", e.GetIndex(), err)
		}
		cci = &c
	default:
		return nil, nil
	}
	cs := s.rn.ApplyConfChange(cci)
	s.confState.Store(cs)
	s.confs.add(confPoint{index: e.GetIndex(), view: s.view.clone(), cs: cs})
	return rejected, nil
}

// initConfView sets up the raft loop's view from the log's snapshot record
// at start. A record written before views existed falls back on the applied
// membership, and the changes raft replays up to the applied index are then
// taken as they were at the time: undecided.
func (s *Server) initConfView() error {
	snap, err := s.raftLog.Storage().Snapshot()
	if err != nil {
		return fmt.Errorf("read raft snapshot record: %w", err)
	}
	rec, err := decodeSnapshotRecord(snap.Data)
	if err != nil {
		return err
	}
	switch {
	case rec.View != nil:
		s.view = rec.View
	case snap.GetMetadata().GetIndex() > 0:
		s.membersMu.RLock()
		s.view = viewFromMembership(s.members, s.removed)
		s.membersMu.RUnlock()
		s.legacyReplayUntil = s.applied.Load()
	default:
		s.view = newConfView()
	}
	s.fillView()
	s.confs.reset(confPoint{index: snap.GetMetadata().GetIndex(), view: s.view.clone(), cs: snap.GetMetadata().GetConfState()})
	return nil
}

// resetConfView takes the view of a snapshot raft installs.
func (s *Server) resetConfView(snap *raftpb.Snapshot) error {
	rec, err := decodeSnapshotRecord(snap.Data)
	if err != nil {
		return err
	}
	if rec.View != nil {
		s.view = rec.View
	} else {
		// A leader that predates views: its snapshot's configuration is
		// all there is.
		cs := snap.GetMetadata().GetConfState()
		s.view = newConfView()
		for _, id := range cs.GetVoters() {
			s.view.Members[id] = viewMember{}
		}
		for _, id := range cs.GetLearners() {
			s.view.Members[id] = viewMember{Learner: true}
		}
	}
	s.fillView()
	s.confState.Store(snap.GetMetadata().GetConfState())
	s.confs.reset(confPoint{index: snap.GetMetadata().GetIndex(), view: s.view.clone(), cs: snap.GetMetadata().GetConfState()})
	return nil
}

// fillView makes a decoded view's maps usable.
func (s *Server) fillView() {
	if s.view.Members == nil {
		s.view.Members = map[uint64]viewMember{}
	}
	if s.view.Removed == nil {
		s.view.Removed = map[uint64]bool{}
	}
}
