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
				go s.Close()
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
	if err := s.rn.Propose(data); err != nil {
		// Dropped (no leader, or a leadership transfer in progress): fail the
		// waiter now rather than letting it time out.
		id := requestID(data)
		s.wait.trigger(id, result{err: ErrNoLeader})
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
		s.confState.Store(rd.Snapshot.Metadata.ConfState)
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
		for _, e := range rd.CommittedEntries {
			if err := s.applyConfChange(e); err != nil {
				return err
			}
		}
		ents := append([]*raftpb.Entry(nil), rd.CommittedEntries...)
		select {
		case s.applyc <- applyItem{ents: ents}:
		case <-s.stopping:
			return nil
		}
	}
	synced := len(rd.Entries) > 0 || (rd.HardState != nil && raft.MustSync(rd.HardState, s.raftLog.HardState(), 0))
	start := time.Now()
	if err := s.raftLog.Save(rd.HardState, rd.Entries); err != nil {
		return err
	}
	if synced {
		s.m.walFsync.Observe(time.Since(start).Seconds())
	}
	if len(rd.Messages) > 0 {
		if p := s.peerTransport(); p != nil {
			msgs := rd.Messages[:0:0]
			for _, m := range rd.Messages {
				if m.GetType() == raftpb.MsgSnap {
					s.sendSnapshot(p, m)
					continue
				}
				msgs = append(msgs, m)
			}
			p.Send(msgs)
		}
	}
	s.rn.Advance(rd)
	return nil
}

// applyConfChange applies membership changes to raft in the raft loop; the
// membership record itself is kept by the apply loop.
func (s *Server) applyConfChange(e *raftpb.Entry) error {
	var cc raftpb.ConfChangeI
	switch e.GetType() {
	case raftpb.EntryConfChange:
		var c raftpb.ConfChange
		if err := proto.Unmarshal(e.Data, &c); err != nil {
			return fmt.Errorf("decode conf change at %d: %w", e.GetIndex(), err)
		}
		cc = &c
	case raftpb.EntryConfChangeV2:
		var c raftpb.ConfChangeV2
		if err := proto.Unmarshal(e.Data, &c); err != nil {
			return fmt.Errorf("decode conf change at %d: %w", e.GetIndex(), err)
		}
		cc = &c
	default:
		return nil
	}
	cs := s.rn.ApplyConfChange(cc)
	s.confState.Store(cs)
	return nil
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
