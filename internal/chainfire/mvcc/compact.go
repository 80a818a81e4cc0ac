package mvcc

import (
	"bytes"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// Compact removes history at or before rev: for each key it keeps the latest
// revision <= rev unless that is a tombstone before rev (a tombstone exactly
// at rev is kept until the next compaction, as in etcd, so that a watch from
// rev still sees it). Reads below rev fail with ErrCompacted from now on.
//
// The index is compacted and the compaction revision persisted before Compact
// returns; the Pebble keys are deleted by a background goroutine, and the
// returned channel is closed when that ends (also when Close interrupts it;
// the next New resumes it). Compactions are applied in call order.
func (s *Store) Compact(rev int64) (<-chan struct{}, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.RLock()
	cur, compacted := s.currentRev, s.compactRev
	s.mu.RUnlock()
	if rev <= compacted {
		return nil, ErrCompacted
	}
	if rev > cur {
		return nil, ErrFutureRev
	}
	// Persist first: if we crash before the deletion finishes, New sees the
	// scheduled revision and redoes both the index compaction and deletion.
	b := s.db.NewBatch()
	defer b.Close()
	if err := b.Set(metaScheduledCompact, encodeInt(rev), nil); err != nil {
		return nil, fmt.Errorf("mvcc: stage compaction: %w", err)
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return nil, fmt.Errorf("mvcc: persist compaction: %w", err)
	}
	s.mu.Lock()
	keep := s.compactIndexLocked(rev)
	s.compactRev = rev
	s.mu.Unlock()
	s.lg.Debug("compacted index", "compact-revision", rev, "kept", len(keep))
	return s.schedulePhysical(rev, keep), nil
}

// compactIndexLocked compacts every keyIndex at rev, drops keys left without
// history and returns the revisions <= rev to keep in Pebble. Caller holds mu
// (or has the store to itself).
func (s *Store) compactIndexLocked(rev int64) map[revision]struct{} {
	keep := make(map[revision]struct{})
	var empty []*keyIndex
	s.index.Ascend(func(ki *keyIndex) bool {
		ki.compact(rev, keep)
		if ki.isEmpty() {
			empty = append(empty, ki)
		}
		return true
	})
	for _, ki := range empty {
		s.index.Delete(ki)
	}
	return keep
}

// schedulePhysical starts the goroutine deleting the revision keys <= rev
// that are not in keep, after the previously scheduled one ends.
func (s *Store) schedulePhysical(rev int64, keep map[revision]struct{}) <-chan struct{} {
	done := make(chan struct{})
	s.compMu.Lock()
	prev := s.lastCompaction
	s.lastCompaction = done
	s.compMu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(done)
		if prev != nil {
			<-prev // closes promptly on stop too
		}
		select {
		case <-s.stopc:
			return
		default:
		}
		if err := s.physicalCompact(rev, keep); err != nil {
			if err == errClosed {
				s.lg.Info("compaction interrupted by close; resumes on restart", "compact-revision", rev)
				return
			}
			s.lg.Error("physical compaction failed; resumes on restart", "compact-revision", rev, "error", err)
			return
		}
		s.compMu.Lock()
		s.finishedRev = rev
		s.compMu.Unlock()
		s.lg.Debug("finished compaction", "compact-revision", rev)
	}()
	return done
}

// physicalCompact deletes in batches; the last batch also records the
// compaction as finished.
func (s *Store) physicalCompact(rev int64, keep map[revision]struct{}) error {
	start := bytes.Clone(revSpaceStart)
	end := revBound(rev + 1)
	for batchNo := 0; ; batchNo++ {
		it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: start, UpperBound: end})
		if err != nil {
			return fmt.Errorf("compaction iterator: %w", err)
		}
		b := s.db.NewBatch()
		n := 0
		var last []byte
		valid := it.First()
		for ; valid && n < s.compactBatch; valid = it.Next() {
			r, _, err := parseRevKey(it.Key())
			if err != nil {
				it.Close()
				b.Close()
				return err
			}
			if _, ok := keep[r]; !ok {
				if err := b.Delete(it.Key(), nil); err != nil {
					it.Close()
					b.Close()
					return fmt.Errorf("stage delete: %w", err)
				}
			}
			last = append(last[:0], it.Key()...)
			n++
		}
		more := valid
		if err := it.Error(); err != nil {
			it.Close()
			b.Close()
			return fmt.Errorf("compaction scan: %w", err)
		}
		it.Close()
		if !more {
			if err := b.Set(metaFinishedCompact, encodeInt(rev), nil); err != nil {
				b.Close()
				return fmt.Errorf("stage finished compaction: %w", err)
			}
		}
		err = b.Commit(pebble.NoSync)
		b.Close()
		if err != nil {
			return fmt.Errorf("commit compaction batch: %w", err)
		}
		if s.testHookCompact != nil {
			s.testHookCompact(batchNo)
		}
		if !more {
			return nil
		}
		start = append(last, 0) // the smallest key after last
		select {
		case <-s.stopc:
			return errClosed
		default:
		}
	}
}
