package kvserver

import (
	"fmt"
	"log/slog"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// maxProposalsPerRound bounds how many queued proposals one loop iteration
// hands to raft before persisting, so one Ready stays a reasonable size.
const maxProposalsPerRound = 1024

// raftLoop is the only goroutine that touches the RawNode.
func (s *Server) raftLoop() {
	defer s.wg.Done()
	defer close(s.applyc)
	ticker := time.NewTicker(s.opts.HeartbeatInterval)
	defer ticker.Stop()
	s.confState.Store(s.currentConfState())
	// A single voter cannot lose an election: campaign at once instead of
	// waiting an election timeout, as soon as raft has applied the
	// configuration it bootstrapped with.
	campaigned := !s.isSingleVoter()
	for {
		if !campaigned {
			if st := s.rn.BasicStatus(); st.Applied >= st.GetCommit() {
				_ = s.rn.Campaign()
				campaigned = true
			}
		}
		for s.rn.HasReady() {
			if err := s.handleReady(); err != nil {
				// Persisting the log failed: acknowledging anything now could
				// lose it, so this member stops (etcd panics in this case).
				s.lg.Error("raft log write failed; stopping the member", "err", err)
				s.m.fatalErrors.Inc()
				s.stop(fmt.Errorf("write raft log: %w", err))
				return
			}
		}
		select {
		case <-s.stopping:
			return
		case <-ticker.C:
			s.rn.Tick()
		case data := <-s.propc:
			s.proposeBatch(data)
		case rctx := <-s.readIndexc:
			s.rn.ReadIndex(rctx)
		case m := <-s.recvc:
			s.stepPeer(m)
			for i := 1; i < maxProposalsPerRound; i++ {
				select {
				case m := <-s.recvc:
					s.stepPeer(m)
					continue
				default:
				}
				break
			}
		case id := <-s.unreachc:
			s.rn.ReportUnreachable(id)
		case cc := <-s.confc:
			if err := s.rn.ProposeConfChange(cc); err != nil {
				s.wait.trigger(cc.GetId(), result{err: ErrNoLeader})
			}
		case r := <-s.snapReportc:
			s.rn.ReportSnapshot(r.to, r.status)
		case id := <-s.transferc:
			s.rn.TransferLeader(id)
		case reply := <-s.progressc:
			match := map[uint64]uint64{}
			if st := s.rn.Status(); st.RaftState == raft.StateLeader {
				for id, pr := range st.Progress {
					match[id] = pr.Match
				}
			}
			reply <- match
		}
	}
}

func (s *Server) isSingleVoter() bool {
	voters := s.rn.Status().Config.Voters.IDs()
	_, self := voters[s.memberID]
	return len(voters) == 1 && self
}

// currentConfState describes raft's configuration as a ConfState.
func (s *Server) currentConfState() *raftpb.ConfState {
	cfg := s.rn.Status().Config
	cs := &raftpb.ConfState{Voters: cfg.Voters[0].Slice(), VotersOutgoing: cfg.Voters[1].Slice(), AutoLeave: proto.Bool(cfg.AutoLeave)}
	for id := range cfg.Learners {
		cs.Learners = append(cs.Learners, id)
	}
	return cs
}

func (s *Server) proposeBatch(first []byte) {
	s.proposeOne(first)
	for i := 1; i < maxProposalsPerRound; i++ {
		select {
		case data := <-s.propc:
			s.proposeOne(data)
		default:
			return
		}
	}
}

func (s *Server) proposeOne(data []byte) {
	lead := s.rn.BasicStatus().Lead
	_, member := s.view.Members[lead]
	if lead != s.memberID && !member {
		s.wait.trigger(requestID(data), result{err: errNotProposed})
		return
	}
	if err := s.rn.Propose(data); err != nil {
		// Dropped (a leadership transfer in progress): the proposer waits
		// for the next leader and tries again.
		s.wait.trigger(requestID(data), result{err: errNotProposed})
		s.m.proposalsFailed.Inc()
	}
}

func (s *Server) handleReady() error {
	rd := s.rn.Ready()
	if rd.SoftState != nil {
		s.updateLeader(rd.SoftState.Lead, rd.SoftState.RaftState)
	}
	if rd.HardState != nil && !raft.IsEmptyHardState(rd.HardState) {
		s.term.Store(rd.HardState.GetTerm())
		s.committed.Store(rd.HardState.GetCommit())
		// Like raft's own ReadIndex, reads served from the commit index
		// wait until the leader has committed an entry of its term: only
		// then is that index known to cover everything committed before.
		if t, err := s.raftLog.Storage().Term(rd.HardState.GetCommit()); err == nil && t == rd.HardState.GetTerm() {
			s.termCommitted.Store(t)
		}
	}
	if len(rd.ReadStates) > 0 {
		rs := rd.ReadStates[len(rd.ReadStates)-1]
		select {
		case s.readStatec <- rs:
		default:
			// The read loop gave up on an older request; it retries.
			select {
			case <-s.readStatec:
			default:
			}
			s.readStatec <- rs
		}
	}
	if !raft.IsEmptySnap(rd.Snapshot) {
		// A snapshot from the leader replaces the log, then the state.
		if err := s.raftLog.ApplySnapshot(rd.Snapshot); err != nil {
			return err
		}
		if err := s.resetConfView(rd.Snapshot); err != nil {
			return err
		}
		s.lg.Info("installing snapshot from the leader", "index", rd.Snapshot.Metadata.GetIndex())
		select {
		case s.applyc <- applyItem{snap: rd.Snapshot}:
		case <-s.stopping:
			return nil
		}
	}
	// Committed entries are already durable: hand them to the apply loop
	// first so applying overlaps this Ready's fsync, as etcd does.
	if len(rd.CommittedEntries) > 0 {
		var rejected map[uint64]error
		for _, e := range rd.CommittedEntries {
			reason, err := s.decideConfChange(e)
			if err != nil {
				return err
			}
			if reason != nil {
				if rejected == nil {
					rejected = map[uint64]error{}
				}
				rejected[e.GetIndex()] = reason
			}
		}
		ents := append([]*raftpb.Entry(nil), rd.CommittedEntries...)
		select {
		case s.applyc <- applyItem{ents: ents, rejected: rejected}:
		case <-s.stopping:
			return nil
		}
	}
	// Messages that do not answer for this Ready's writes go out before the
	// fsync, so a leader's appends reach the followers while it persists
	// them itself (raft thesis 10.2.1, as etcd does). raft allows it once
	// earlier Readies are durable, unless term or vote changed.
	early, late := rd.Messages, []*raftpb.Message(nil)
	if hs := rd.HardState; hs != nil && (hs.GetTerm() != s.raftLog.HardState().GetTerm() || hs.GetVote() != s.raftLog.HardState().GetVote()) {
		early, late = nil, rd.Messages
	} else if len(rd.Entries) > 0 {
		early, late = splitAfterAppend(rd.Messages)
	}
	s.send(early)
	synced := len(rd.Entries) > 0 || (rd.HardState != nil && raft.MustSync(rd.HardState, s.raftLog.HardState(), 0))
	start := time.Now()
	if err := s.raftLog.Save(rd.HardState, rd.Entries); err != nil {
		return err
	}
	if synced {
		s.m.walFsync.Observe(time.Since(start).Seconds())
	}
	s.send(late)
	s.rn.Advance(rd)
	return nil
}

// splitAfterAppend separates the responses that vouch for this Ready's
// entries (raft's msgsAfterAppend) from the messages that may leave first.
func splitAfterAppend(msgs []*raftpb.Message) (early, late []*raftpb.Message) {
	for _, m := range msgs {
		switch m.GetType() {
		case raftpb.MsgAppResp, raftpb.MsgVoteResp, raftpb.MsgPreVoteResp:
			late = append(late, m)
		default:
			early = append(early, m)
		}
	}
	return early, late
}

// send hands messages to the peer transport; snapshots go their own way.
func (s *Server) send(msgs []*raftpb.Message) {
	if len(msgs) == 0 {
		return
	}
	p := s.peerTransport()
	if p == nil {
		return
	}
	out := msgs[:0:0]
	for _, m := range msgs {
		if m.GetType() == raftpb.MsgSnap {
			s.sendSnapshot(p, m)
			continue
		}
		out = append(out, m)
	}
	p.Send(out)
}

func (s *Server) updateLeader(lead uint64, state raft.StateType) {
	old := s.leader.Swap(lead)
	if old != lead {
		if lead != 0 {
			s.m.leaderChanges.Inc()
		}
		s.lg.Info("raft leader changed", "leader", fmt.Sprintf("%x", lead), "term", s.rn.BasicStatus().GetTerm(), "state", state.String())
	}
	if lead == 0 {
		s.m.hasLeader.Set(0)
	} else {
		s.m.hasLeader.Set(1)
	}
	if state == raft.StateLeader {
		s.m.isLeader.Set(1)
		s.lessor.Promote()
	} else {
		s.m.isLeader.Set(0)
		s.lessor.Demote()
	}
}

// requestID reads the request id of an encoded proposal.
func requestID(data []byte) uint64 {
	r, err := decodeRequest(data)
	if err != nil || r.Header == nil {
		return 0
	}
	return r.Header.ID
}

// raftLogger adapts slog to raft's logger interface.
type raftLogger struct{ lg *slog.Logger }

func (l raftLogger) Debug(v ...any)                 { l.lg.Debug(fmt.Sprint(v...)) }
func (l raftLogger) Debugf(format string, v ...any) { l.lg.Debug(fmt.Sprintf(format, v...)) }
func (l raftLogger) Info(v ...any)                  { l.lg.Debug(fmt.Sprint(v...)) }
func (l raftLogger) Infof(format string, v ...any)  { l.lg.Debug(fmt.Sprintf(format, v...)) }
func (l raftLogger) Warning(v ...any)               { l.lg.Warn(fmt.Sprint(v...)) }
func (l raftLogger) Warningf(format string, v ...any) {
	l.lg.Warn(fmt.Sprintf(format, v...))
}
func (l raftLogger) Error(v ...any)                 { l.lg.Error(fmt.Sprint(v...)) }
func (l raftLogger) Errorf(format string, v ...any) { l.lg.Error(fmt.Sprintf(format, v...)) }
func (l raftLogger) Fatal(v ...any)                 { l.lg.Error(fmt.Sprint(v...)); panic(fmt.Sprint(v...)) }
func (l raftLogger) Fatalf(format string, v ...any) {
	l.lg.Error(fmt.Sprintf(format, v...))
	panic(fmt.Sprintf(format, v...))
}
func (l raftLogger) Panic(v ...any) { panic(fmt.Sprint(v...)) }
func (l raftLogger) Panicf(format string, v ...any) {
	panic(fmt.Sprintf(format, v...))
}

func (s *Server) stepPeer(m *raftpb.Message) {
	if err := s.rn.Step(m); err != nil {
		s.lg.Debug("dropping raft message", "from", fmt.Sprintf("%x", m.GetFrom()), "type", m.GetType().String(), "err", err)
	}
}
