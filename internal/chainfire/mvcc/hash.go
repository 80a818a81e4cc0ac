package mvcc

import (
	"fmt"
	"hash/crc32"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// HashKV returns the CRC32 (Castagnoli) of the revision keys and values with
// main revision <= rev that survive compaction: those in (compactRev, rev]
// plus the ones the last compaction kept. It does not depend on how far the
// physical deletion has progressed, so members and restarts agree. rev 0
// means the current revision.
func (s *Store) HashKV(rev int64) (hash uint32, hashRev int64, compactRev int64, err error) {
	s.mu.RLock()
	cur, compacted := s.currentRev, s.compactRev
	if rev > cur {
		s.mu.RUnlock()
		return 0, 0, compacted, ErrFutureRev
	}
	if rev > 0 && rev < compacted {
		s.mu.RUnlock()
		return 0, 0, compacted, ErrCompacted
	}
	if rev <= 0 {
		rev = cur
	}
	// After compaction at compacted, the index holds exactly the kept
	// revisions <= compacted.
	keep := make(map[revision]struct{})
	var buf []revision
	s.index.Ascend(func(ki *keyIndex) bool {
		buf = ki.appendRevs(buf[:0], compacted)
		for _, r := range buf {
			keep[r] = struct{}{}
		}
		return true
	})
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: revSpaceStart, UpperBound: revBound(rev + 1)})
	s.mu.RUnlock()
	if err != nil {
		return 0, 0, compacted, fmt.Errorf("mvcc: hashkv iterator: %w", err)
	}
	defer it.Close()
	h := crc32.New(castagnoli)
	for it.First(); it.Valid(); it.Next() {
		r, _, err := parseRevKey(it.Key())
		if err != nil {
			return 0, 0, compacted, err
		}
		if r.main <= compacted {
			if _, ok := keep[r]; !ok {
				continue
			}
		}
		h.Write(it.Key())
		h.Write(it.Value())
	}
	if err := it.Error(); err != nil {
		return 0, 0, compacted, fmt.Errorf("mvcc: hashkv scan: %w", err)
	}
	return h.Sum32(), rev, compacted, nil
}

// Hash returns the CRC32 (Castagnoli) of every key and value in the mvcc key
// space (revision and meta keys) and the revision it corresponds to. It waits
// for pending physical compactions so that the result is deterministic, and
// for the running TxnWrite, so it must not be called while holding one.
func (s *Store) Hash() (hash uint32, rev int64, err error) {
	var snap *pebble.Snapshot
	for snap == nil {
		s.compMu.Lock()
		ch := s.lastCompaction
		s.compMu.Unlock()
		if ch != nil {
			select {
			case <-ch:
			case <-s.stopc:
				return 0, 0, errClosed
			}
		}
		s.wmu.Lock()
		s.compMu.Lock()
		settled := s.lastCompaction == ch
		s.compMu.Unlock()
		select {
		case <-s.stopc:
			s.wmu.Unlock()
			return 0, 0, errClosed
		default:
		}
		if settled {
			// Holding wmu: no txn is between its Pebble commit and publish.
			snap = s.db.NewSnapshot()
			rev = s.Rev()
		}
		s.wmu.Unlock()
	}
	defer snap.Close()
	h := crc32.New(castagnoli)
	for _, span := range [][2][]byte{{revSpaceStart, revSpaceEnd}, {metaSpaceStart, metaSpaceEnd}} {
		it, err := snap.NewIter(&pebble.IterOptions{LowerBound: span[0], UpperBound: span[1]})
		if err != nil {
			return 0, 0, fmt.Errorf("mvcc: hash iterator: %w", err)
		}
		for it.First(); it.Valid(); it.Next() {
			h.Write(it.Key())
			h.Write(it.Value())
		}
		err = it.Error()
		it.Close()
		if err != nil {
			return 0, 0, fmt.Errorf("mvcc: hash scan: %w", err)
		}
	}
	return h.Sum32(), rev, nil
}

// Events replays history: it calls fn for every change with startRev <=
// main revision <= endRev, in revision order, until fn returns false. endRev
// <= 0 or beyond the current revision means up to the current revision.
// PUT events carry the stored KV, DELETE events KeyValue{Key, ModRevision};
// PrevKv is nil. startRev < CompactRev() gives ErrCompacted. At exactly the
// compaction revision only what the compaction kept is returned (the last
// change of each key), whether or not its physical deletion has run yet.
func (s *Store) Events(startRev, endRev int64, fn func(ev *mvccpb.Event) bool) error {
	s.mu.RLock()
	cur, compacted := s.currentRev, s.compactRev
	if startRev < compacted {
		s.mu.RUnlock()
		return ErrCompacted
	}
	if endRev <= 0 || endRev > cur {
		endRev = cur
	}
	if startRev > endRev {
		s.mu.RUnlock()
		return nil
	}
	// Created under the lock so that it sees all published revisions up to
	// cur and none of the deletions of a later compaction.
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: revBound(max(startRev, 0)), UpperBound: revBound(endRev + 1)})
	s.mu.RUnlock()
	if err != nil {
		return fmt.Errorf("mvcc: events iterator: %w", err)
	}
	defer it.Close()

	var atCompact []*mvccpb.Event // events at main == compacted, filtered before emitting
	flush := func() bool {
		last := make(map[string]int, len(atCompact))
		for i, ev := range atCompact {
			last[string(ev.Kv.Key)] = i
		}
		for i, ev := range atCompact {
			if last[string(ev.Kv.Key)] == i && !fn(ev) {
				return false
			}
		}
		atCompact = nil
		return true
	}
	for it.First(); it.Valid(); it.Next() {
		r, tomb, err := parseRevKey(it.Key())
		if err != nil {
			return err
		}
		kv := &mvccpb.KeyValue{}
		if err := proto.Unmarshal(it.Value(), kv); err != nil {
			return fmt.Errorf("mvcc: decode revision %v: %w", r, err)
		}
		ev := &mvccpb.Event{Type: mvccpb.Event_PUT, Kv: kv}
		if tomb {
			ev.Type = mvccpb.Event_DELETE
			ev.Kv = &mvccpb.KeyValue{Key: kv.Key, ModRevision: r.main}
		}
		if compacted > 0 && r.main == compacted {
			atCompact = append(atCompact, ev)
			continue
		}
		if len(atCompact) > 0 && !flush() {
			return nil
		}
		if !fn(ev) {
			return nil
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("mvcc: events scan: %w", err)
	}
	if len(atCompact) > 0 {
		flush()
	}
	return nil
}
