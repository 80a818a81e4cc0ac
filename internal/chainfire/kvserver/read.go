package kvserver

import (
	"bytes"
	"context"
	"encoding/binary"
	"time"
)

// notifier wakes every read waiting on one ReadIndex round.
type notifier struct {
	c   chan struct{}
	err error
}

func newNotifier() *notifier { return &notifier{c: make(chan struct{})} }

func (n *notifier) notify(err error) {
	n.err = err
	close(n.c)
}

// ReadBarrier returns once this member has applied everything that was
// committed when the call started, confirmed by the leader: what it then
// reads of its own state (its members, say) is as new as the cluster's.
func (s *Server) ReadBarrier(ctx context.Context) error { return s.linearizableReadNotify(ctx) }

// linearizableReadNotify returns once this member has applied everything
// that was committed when the call started, confirmed by the leader.
func (s *Server) linearizableReadNotify(ctx context.Context) error {
	s.readMu.Lock()
	n := s.readNotifier
	s.readMu.Unlock()
	select {
	case s.readwaitc <- struct{}{}:
	default:
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.requestTimeout())
		defer cancel()
	}
	select {
	case <-n.c:
		return n.err
	case <-ctx.Done():
		return contextErr(ctx.Err())
	case <-s.stopping:
		return ErrStopped
	}
}

// readLoop batches all reads that arrive while one ReadIndex round is in
// flight into the next round.
func (s *Server) readLoop() {
	defer s.wg.Done()
	for {
		select {
		case <-s.readwaitc:
		case <-s.stopping:
			return
		}
		s.readMu.Lock()
		n := s.readNotifier
		s.readNotifier = newNotifier()
		s.readMu.Unlock()

		index, err := s.requestReadIndex()
		if err != nil {
			n.notify(err)
			continue
		}
		select {
		case <-s.appliedWait.wait(index):
			n.notify(nil)
		case <-s.stopping:
			n.notify(ErrStopped)
			return
		}
	}
}

// requestReadIndex asks raft for the commit index a read must wait for.
func (s *Server) requestReadIndex() (uint64, error) {
	if idx, ok := s.soleVoterReadIndex(); ok {
		return idx, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.requestTimeout())
	err := s.waitLeader(ctx)
	cancel()
	if err != nil {
		return 0, err
	}
	rctx := binary.BigEndian.AppendUint64(nil, s.ids.Next())
	timeout := time.NewTimer(s.requestTimeout())
	defer timeout.Stop()
	retry := time.NewTicker(s.opts.ElectionTimeout / 2)
	defer retry.Stop()
	send := func() error {
		select {
		case s.readIndexc <- rctx:
			return nil
		case <-s.stopping:
			return ErrStopped
		}
	}
	if err := send(); err != nil {
		return 0, err
	}
	for {
		select {
		case rs := <-s.readStatec:
			if bytes.Equal(rs.RequestCtx, rctx) {
				return rs.Index, nil
			}
		case <-retry.C:
			// The request may have been dropped during an election.
			if err := send(); err != nil {
				return 0, err
			}
		case <-timeout.C:
			return 0, ErrTimeout
		case <-s.stopping:
			return 0, ErrStopped
		}
	}
}

// soleVoterReadIndex answers a read index without a raft round when this
// member leads and is the only voter: then nothing can be committed without
// it, so its commit index covers every write acknowledged so far, once an
// entry of its own term is committed. (Raft answers such a ReadIndex at once
// too; this skips the trip through the raft loop.) Leadership and
// configuration are read after the read began; a
// member that must hand leadership to a new voter learns of it, and updates
// both, before it acknowledges anything for the new leader.
func (s *Server) soleVoterReadIndex() (uint64, bool) {
	if s.leader.Load() != s.memberID || s.termCommitted.Load() != s.term.Load() {
		return 0, false
	}
	cs := s.confState.Load()
	if cs == nil || len(cs.Voters) != 1 || cs.Voters[0] != s.memberID || len(cs.VotersOutgoing) != 0 {
		return 0, false
	}
	return s.committed.Load(), true
}
