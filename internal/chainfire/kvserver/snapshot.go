package kvserver

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

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
// The dump is streamed to the peer as it is produced, off the raft loop.
func (s *Server) sendSnapshot(p Peers, m *raftpb.Message) {
	m = proto.Clone(m).(*raftpb.Message)
	// The record keeps the view of the membership at its index; the state
	// itself travels in the stream.
	if rec, err := decodeSnapshotRecord(m.Snapshot.Data); err == nil {
		rec.File = ""
		m.Snapshot.Data = rec.encode()
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			select {
			case <-s.stopping:
				cancel()
			case <-ctx.Done():
			}
		}()
		to := fmt.Sprintf("%x", m.GetTo())
		s.lg.Info("sending snapshot", "to", to, "index", m.Snapshot.Metadata.GetIndex())
		pr, pw := io.Pipe()
		dumped := make(chan int64, 1)
		go func() {
			n, err := s.Snapshot(ctx, pw)
			pw.CloseWithError(err)
			dumped <- n
		}()
		err := p.SendSnapshot(ctx, m, pr)
		// Unblocks the dump if the send ended first.
		pr.CloseWithError(errors.New("snapshot send ended"))
		n := <-dumped
		status := raft.SnapshotFinish
		if err != nil {
			s.lg.Warn("sending snapshot failed", "to", to, "err", err)
			status = raft.SnapshotFailure
		} else {
			s.lg.Info("sent snapshot", "to", to, "index", m.Snapshot.Metadata.GetIndex(), "bytes", n)
		}
		select {
		case s.snapReportc <- snapReport{to: m.GetTo(), status: status}:
		case <-s.stopping:
		}
	}()
}

func snapDir(dataDir string) string { return filepath.Join(dataDir, "member", "snap") }

// ReceiveSnapshot stores the leader's state streamed from body in the
// snapshot directory, fsynced and verified, then hands raft the message with
// a reference to that file in place of the payload. The file is removed once
// installed; files raft never installs (an outdated snapshot) are removed at
// the next start.
func (s *Server) ReceiveSnapshot(ctx context.Context, m *raftpb.Message, body io.Reader) error {
	dir := snapDir(s.opts.DataDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("snapshot directory: %w", err)
	}
	meta := m.GetSnapshot().GetMetadata()
	name := fmt.Sprintf("%016x-%016x.snap", meta.GetTerm(), meta.GetIndex())
	path := filepath.Join(dir, name)
	n, err := writeSnapshotFile(path, body)
	if err != nil {
		_ = os.Remove(path + ".part")
		return fmt.Errorf("receive snapshot at index %d: %w", meta.GetIndex(), err)
	}
	s.lg.Info("received snapshot", "from", fmt.Sprintf("%x", m.GetFrom()), "index", meta.GetIndex(), "bytes", n)
	rec, err := decodeSnapshotRecord(m.Snapshot.Data)
	if err != nil {
		return err
	}
	rec.File = name
	m.Snapshot.Data = rec.encode()
	return s.Step(ctx, m)
}

// writeSnapshotFile writes body to path.part, checks it is a whole snapshot,
// fsyncs it and renames it to path.
func writeSnapshotFile(path string, body io.Reader) (int64, error) {
	f, err := os.OpenFile(path+".part", os.O_CREATE|os.O_TRUNC|os.O_RDWR, 0o600)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n, err := io.Copy(f, body)
	if err != nil {
		return n, err
	}
	if err := snapshot.Read(f, func(_, _ []byte) error { return nil }); err != nil {
		return n, err
	}
	if err := f.Sync(); err != nil {
		return n, err
	}
	return n, os.Rename(path+".part", path)
}

// openSnapshotData opens the state of a snapshot raft hands over: the file
// ReceiveSnapshot stored.
func (s *Server) openSnapshotData(snap *raftpb.Snapshot) (r io.ReadSeeker, done func(), err error) {
	rec, err := decodeSnapshotRecord(snap.Data)
	if err != nil {
		return nil, nil, err
	}
	if rec.File == "" || strings.ContainsAny(rec.File, "/\\") {
		return nil, nil, fmt.Errorf("snapshot record names no valid state file: %q", rec.File)
	}
	path := filepath.Join(snapDir(s.opts.DataDir), rec.File)
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	return f, func() { _ = f.Close(); _ = os.Remove(path) }, nil
}

// removeSnapshotFiles deletes received snapshots left from a previous run.
func removeSnapshotFiles(dataDir string) error {
	if err := os.RemoveAll(snapDir(dataDir)); err != nil {
		return fmt.Errorf("remove stale snapshots: %w", err)
	}
	return nil
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
	data, done, err := s.openSnapshotData(snap)
	if err != nil {
		return fmt.Errorf("open snapshot: %w", err)
	}
	defer done()
	if err := snapshot.Read(data, func(k, v []byte) error {
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
