package kvserver

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/photoncloud/photoncloud/internal/chainfire/snapshot"
)

type snapReport struct {
	to     uint64
	status raft.SnapshotStatus
}

// sendSnapshot sends a follower that lags behind the log the whole applied
// state. raft's snapshot record only names an index; the payload is a dump
// of the database at the current applied index, which is at or past it, and
// carries that applied index so the follower skips the entries it covers.
// Dumping happens off the raft loop.
func (s *Server) sendSnapshot(p Peers, m *raftpb.Message) {
	m = proto.Clone(m).(*raftpb.Message)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		status := raft.SnapshotFinish
		var buf bytes.Buffer
		if _, err := s.Snapshot(context.Background(), &buf); err != nil {
			s.lg.Warn("dumping snapshot for a follower failed", "to", fmt.Sprintf("%x", m.GetTo()), "err", err)
			status = raft.SnapshotFailure
		} else {
			m.Snapshot.Data = buf.Bytes()
			s.lg.Info("sending snapshot", "to", fmt.Sprintf("%x", m.GetTo()), "index", m.Snapshot.Metadata.GetIndex(), "bytes", buf.Len())
			p.Send([]*raftpb.Message{m})
		}
		select {
		case s.snapReportc <- snapReport{to: m.GetTo(), status: status}:
		case <-s.stopping:
		}
	}()
}

// installSnapshot replaces this member's state with a snapshot's: the MVCC
// store, leases, alarms, membership and applied index, in one batch.
func (s *Server) installSnapshot(snap *raftpb.Snapshot) error {
	b := s.db.NewBatch()
	defer b.Close()
	// Everything but the raft log ('r' keys), which raft already replaced.
	if err := b.DeleteRange([]byte{0}, []byte("r"), nil); err != nil {
		return err
	}
	if err := b.DeleteRange([]byte("s"), []byte{0xff, 0xff, 0xff, 0xff}, nil); err != nil {
		return err
	}
	if err := snapshot.Read(bytes.NewReader(snap.Data), func(k, v []byte) error {
		if k[0] == 'r' {
			return nil
		}
		return b.Set(k, v, nil)
	}); err != nil {
		return fmt.Errorf("read snapshot: %w", err)
	}
	if err := s.kv.Replace(func() error { return b.Commit(pebble.Sync) }); err != nil {
		return fmt.Errorf("replace store: %w", err)
	}
	v, closer, err := s.db.Get(appliedKey)
	if err != nil {
		return fmt.Errorf("snapshot has no applied index: %w", err)
	}
	applied := binary.BigEndian.Uint64(v)
	closer.Close()
	if applied < snap.Metadata.GetIndex() {
		return fmt.Errorf("snapshot state at index %d is older than its record %d", applied, snap.Metadata.GetIndex())
	}
	s.lessor.Reset()
	if err := s.loadLeasesAndAlarms(); err != nil {
		return err
	}
	if err := s.reloadMembers(); err != nil {
		return err
	}
	s.applied.Store(applied)
	s.appliedWait.trigger(applied)
	s.snapIndex = snap.Metadata.GetIndex()
	s.hub.Resync(s.kv.Rev())
	s.lg.Info("installed snapshot", "applied-index", applied, "revision", s.kv.Rev())
	return nil
}
