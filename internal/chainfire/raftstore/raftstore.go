// Package raftstore persists a member's raft log, hard state and snapshot
// metadata in the member's Pebble database and serves them to raft through a
// raft.MemoryStorage that mirrors the durable state.
//
// Every Save is fsynced before it returns: raft must not send or apply
// anything that a crash could take back.
package raftstore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// Key layout, all under the 'r' prefix of the member's database.
var (
	hardStateKey = []byte("rh")
	snapMetaKey  = []byte("rs")
	snapDataKey  = []byte("rd")
	entryPrefix  = []byte("rl")
)

func entryKey(index uint64) []byte {
	k := make([]byte, len(entryPrefix)+8)
	copy(k, entryPrefix)
	binary.BigEndian.PutUint64(k[len(entryPrefix):], index)
	return k
}

// Store is the durable raft log. It is used by the single goroutine that
// drives the raft node, except for Storage, which raft itself reads.
type Store struct {
	db  *pebble.DB
	mem *raft.MemoryStorage
	// fresh is true when the database held no raft state at Open.
	fresh bool
	// hs is the last saved hard state. MemoryStorage.InitialState does not
	// lock, so Save keeps its own copy rather than racing with Compact.
	hs *raftpb.HardState
	// hsUnsaved is set while hs is newer than the stored hard state (only
	// its commit index can be).
	hsUnsaved bool
}

// Open loads the raft state found in db.
func Open(db *pebble.DB) (*Store, error) {
	s := &Store{db: db, mem: raft.NewMemoryStorage()}
	hs := &raftpb.HardState{}
	found, err := s.get(hardStateKey, hs)
	if err != nil {
		return nil, fmt.Errorf("load hard state: %w", err)
	}
	s.fresh = !found
	snap := &raftpb.SnapshotMetadata{}
	if ok, err := s.get(snapMetaKey, snap); err != nil {
		return nil, fmt.Errorf("load snapshot metadata: %w", err)
	} else if ok {
		var data []byte
		if v, closer, err := db.Get(snapDataKey); err == nil {
			data = bytes.Clone(v)
			closer.Close()
		} else if !errors.Is(err, pebble.ErrNotFound) {
			return nil, fmt.Errorf("load snapshot data: %w", err)
		}
		if err := s.mem.ApplySnapshot(&raftpb.Snapshot{Metadata: snap, Data: data}); err != nil {
			return nil, fmt.Errorf("restore snapshot metadata: %w", err)
		}
	}
	first := snap.GetIndex() + 1
	iter, err := db.NewIter(&pebble.IterOptions{LowerBound: entryKey(first), UpperBound: entryKey(^uint64(0))})
	if err != nil {
		return nil, err
	}
	var ents []*raftpb.Entry
	for ok := iter.First(); ok; ok = iter.Next() {
		e := &raftpb.Entry{}
		if err := proto.Unmarshal(iter.Value(), e); err != nil {
			_ = iter.Close()
			return nil, fmt.Errorf("decode raft entry %x: %w", iter.Key(), err)
		}
		ents = append(ents, e)
	}
	if err := iter.Close(); err != nil {
		return nil, err
	}
	if err := s.mem.Append(ents); err != nil {
		return nil, fmt.Errorf("restore raft log: %w", err)
	}
	s.hs = hs
	if found {
		if err := s.mem.SetHardState(hs); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (s *Store) get(key []byte, m proto.Message) (bool, error) {
	v, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer closer.Close()
	return true, proto.Unmarshal(v, m)
}

// Fresh reports whether the database held no raft state when it was opened.
func (s *Store) Fresh() bool { return s.fresh }

// Storage is what raft reads the log through.
func (s *Store) Storage() *raft.MemoryStorage { return s.mem }

// Save appends entries (replacing any conflicting tail) and records the hard
// state, then makes them visible to raft. It fsyncs once. A hard state in
// which only the commit index moved is not written on its own: it rides along
// with the next write. A commit index lost that way is harmless — raft starts
// from the last durable one and learns the rest again (from the leader, or by
// committing a new entry) — and it spares one write per Ready on the
// single-client path, where every other Ready carries only a commit.
func (s *Store) Save(hs *raftpb.HardState, ents []*raftpb.Entry) error {
	sync := raft.MustSync(hs, s.hs, len(ents))
	if hs == nil || raft.IsEmptyHardState(hs) {
		if len(ents) == 0 {
			return nil
		}
		hs = nil
	}
	if !sync && hs != nil {
		s.hs, s.hsUnsaved = hs, true
		return s.mem.SetHardState(hs)
	}
	if hs == nil && s.hsUnsaved {
		hs = s.hs
	}
	b := s.db.NewBatch()
	defer b.Close()
	if len(ents) > 0 {
		for _, e := range ents {
			data, err := proto.Marshal(e)
			if err != nil {
				return err
			}
			if err := b.Set(entryKey(e.GetIndex()), data, nil); err != nil {
				return err
			}
		}
		// A new leader may have truncated our tail: drop what lies beyond.
		last, _ := s.mem.LastIndex()
		if next := ents[len(ents)-1].GetIndex() + 1; next <= last {
			if err := b.DeleteRange(entryKey(next), entryKey(last+1), nil); err != nil {
				return err
			}
		}
	}
	if hs != nil {
		data, err := proto.Marshal(hs)
		if err != nil {
			return err
		}
		if err := b.Set(hardStateKey, data, nil); err != nil {
			return err
		}
	}
	opts := pebble.NoSync
	if sync {
		opts = pebble.Sync
	}
	if err := b.Commit(opts); err != nil {
		return fmt.Errorf("persist raft log: %w", err)
	}
	if len(ents) > 0 {
		if err := s.mem.Append(ents); err != nil {
			return err
		}
	}
	if hs != nil {
		s.hs, s.hsUnsaved = hs, false
		return s.mem.SetHardState(hs)
	}
	return nil
}

// HardState is the last saved hard state. Only the raft goroutine calls it.
func (s *Store) HardState() *raftpb.HardState { return s.hs }

// Compact discards log entries up to and including index, which must have
// been applied durably, keeping a snapshot record (index, term, cs) in their
// place. The configuration at index, cs, travels with the snapshot record
// because raft cannot replay the conf changes it summarizes.
func (s *Store) Compact(index uint64, cs *raftpb.ConfState, data []byte) error {
	snap, err := s.mem.CreateSnapshot(index, cs, data)
	if errors.Is(err, raft.ErrSnapOutOfDate) {
		return nil
	}
	if err != nil {
		return err
	}
	// The applied state this snapshot stands for was written NoSync; the
	// sync makes it durable before the entries that could rebuild it vanish.
	if err := s.persistSnapshot(snap.Metadata, data, index+1); err != nil {
		return err
	}
	if err := s.mem.Compact(index); err != nil && !errors.Is(err, raft.ErrCompacted) {
		return err
	}
	return nil
}

// ApplySnapshot replaces the log with a snapshot received from the leader:
// its record is persisted (fsynced) and every older entry dropped. The
// snapshot's payload is not kept: the state it carries goes to the store.
func (s *Store) ApplySnapshot(snap *raftpb.Snapshot) error {
	if err := s.persistSnapshot(snap.Metadata, snap.Data, ^uint64(0)); err != nil {
		return err
	}
	err := s.mem.ApplySnapshot(&raftpb.Snapshot{Metadata: snap.Metadata, Data: snap.Data})
	if errors.Is(err, raft.ErrSnapOutOfDate) {
		return nil
	}
	return err
}

// persistSnapshot records a snapshot (its metadata and the application's
// small Data, not a state) and deletes the log entries below end in one
// fsynced batch.
func (s *Store) persistSnapshot(meta *raftpb.SnapshotMetadata, appData []byte, end uint64) error {
	data, err := proto.Marshal(meta)
	if err != nil {
		return err
	}
	b := s.db.NewBatch()
	defer b.Close()
	if err := b.Set(snapMetaKey, data, nil); err != nil {
		return err
	}
	if err := b.Set(snapDataKey, appData, nil); err != nil {
		return err
	}
	if err := b.DeleteRange(entryKey(0), entryKey(end), nil); err != nil {
		return err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("persist raft snapshot: %w", err)
	}
	return nil
}
