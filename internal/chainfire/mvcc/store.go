package mvcc

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"github.com/google/btree"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"
)

var (
	// ErrCompacted is returned for reads below the compaction revision.
	ErrCompacted = errors.New("mvcc: required revision has been compacted")
	// ErrFutureRev is returned for reads above the current revision.
	ErrFutureRev = errors.New("mvcc: required revision is a future revision")

	errClosed = errors.New("mvcc: store closed")
)

// defaultCompactBatch is how many revision keys one physical compaction batch
// examines; small enough to keep each Pebble batch short.
const defaultCompactBatch = 1000

var marshalOpts = proto.MarshalOptions{Deterministic: true}

// Store is the MVCC key-value store. See the package comment.
type Store struct {
	db *pebble.DB
	lg *slog.Logger

	// wmu serializes writers: TxnWrite holds it from Write to Commit/Abort,
	// Compact and Hash take it briefly.
	wmu sync.Mutex

	// mu protects index, currentRev and compactRev. Writers hold wmu and take
	// mu exclusively only to publish; readers take it shared.
	mu         sync.RWMutex
	index      *btree.BTreeG[*keyIndex]
	currentRev int64
	compactRev int64

	// Physical compaction: at most one goroutine deletes at a time; each new
	// one waits for the previous (lastCompaction) to finish.
	compMu         sync.Mutex
	lastCompaction chan struct{} // closed when the latest physical compaction ended
	finishedRev    int64         // compaction revision whose physical deletion completed

	compactBatch    int
	testHookCompact func(batch int) // called after each physical compaction batch (tests only)

	stopc     chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// RangeOptions select what Range returns.
type RangeOptions struct {
	Limit     int64 // maximum number of KVs; <= 0 means no limit
	Rev       int64 // revision to read at; <= 0 means current
	CountOnly bool  // only fill Count
}

// RangeResult is the answer of Range.
type RangeResult struct {
	KVs []*mvccpb.KeyValue
	// Rev is the store's current revision when the read was served (etcd's
	// response header revision). For ro.Rev == 0 that is the revision read at;
	// for historical reads it is still the current revision, as in etcd.
	Rev   int64
	Count int // all matches, ignoring Limit
}

// New opens the store on db: it rebuilds the in-memory index by scanning the
// revision keys, restores the revision counters and resumes an interrupted
// physical compaction. lg may be nil.
func New(db *pebble.DB, lg *slog.Logger) (*Store, error) {
	return newStore(db, lg, defaultCompactBatch, nil)
}

func newStore(db *pebble.DB, lg *slog.Logger, compactBatch int, hook func(int)) (*Store, error) {
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	s := &Store{
		db:              db,
		lg:              lg,
		index:           newIndex(),
		currentRev:      1,
		compactBatch:    compactBatch,
		testHookCompact: hook,
		stopc:           make(chan struct{}),
	}
	cur, _, err := s.readMeta(metaCurrentRev)
	if err != nil {
		return nil, err
	}
	scheduled, _, err := s.readMeta(metaScheduledCompact)
	if err != nil {
		return nil, err
	}
	finished, _, err := s.readMeta(metaFinishedCompact)
	if err != nil {
		return nil, err
	}
	maxRev, err := s.rebuildIndex()
	if err != nil {
		return nil, err
	}
	s.currentRev = max(s.currentRev, cur, maxRev, scheduled)
	s.finishedRev = finished
	if scheduled > 0 {
		s.compactRev = scheduled
		// The rebuilt index may hold revisions the compaction removed (it
		// reads whatever is left in Pebble); compacting it again is
		// idempotent and yields the keep set if deletion must be resumed.
		keep := s.compactIndexLocked(scheduled)
		if finished != scheduled {
			s.lg.Info("resuming interrupted compaction", "compact-revision", scheduled, "finished-revision", finished)
			s.schedulePhysical(scheduled, keep)
		}
	}
	s.lg.Info("mvcc store opened", "current-revision", s.currentRev, "compact-revision", s.compactRev, "keys", s.index.Len())
	return s, nil
}

func (s *Store) readMeta(key []byte) (int64, bool, error) {
	v, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("read %s: %w", key, err)
	}
	defer closer.Close()
	n, err := decodeInt(v)
	if err != nil {
		return 0, false, fmt.Errorf("read %s: %w", key, err)
	}
	return n, true, nil
}

// rebuildIndex replays every revision key in revision order into the index.
func (s *Store) rebuildIndex() (maxRev int64, err error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: revSpaceStart, UpperBound: revSpaceEnd})
	if err != nil {
		return 0, fmt.Errorf("rebuild index: %w", err)
	}
	defer it.Close()
	byKey := make(map[string]*keyIndex)
	for it.First(); it.Valid(); it.Next() {
		r, tomb, err := parseRevKey(it.Key())
		if err != nil {
			return 0, fmt.Errorf("rebuild index: %w", err)
		}
		kv := &mvccpb.KeyValue{}
		if err := proto.Unmarshal(it.Value(), kv); err != nil {
			return 0, fmt.Errorf("rebuild index: revision %v: %w", r, err)
		}
		maxRev = max(maxRev, r.main)
		ki, ok := byKey[string(kv.Key)]
		switch {
		case ok && tomb:
			if !ki.tombstone(r) {
				// Leftover of an interrupted compaction; the compaction
				// resumed below deletes it.
				s.lg.Debug("ignoring tombstone of a deleted key", "key", kv.Key, "revision", r.String())
			}
		case ok:
			ki.put(r, kv.Lease)
		default:
			ki = &keyIndex{key: kv.Key}
			if tomb {
				ki.restoreTombstone(r)
			} else {
				ki.restore(r, kv.CreateRevision, kv.Version, kv.Lease)
			}
			byKey[string(kv.Key)] = ki
			s.index.ReplaceOrInsert(ki)
		}
	}
	if err := it.Error(); err != nil {
		return 0, fmt.Errorf("rebuild index: %w", err)
	}
	return maxRev, nil
}

// Close stops background work (an unfinished physical compaction is resumed
// by the next New). It does not close the Pebble DB.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.stopc)
		s.wg.Wait()
	})
	return nil
}

// Rev returns the current revision.
func (s *Store) Rev() int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.currentRev
}

// CompactRev returns the latest compaction revision (0 if none).
func (s *Store) CompactRev() int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.compactRev
}

// Range returns the live keys in [key, end) at ro.Rev; see the package
// documentation of etcd's Range for the key/end conventions.
func (s *Store) Range(key, end []byte, ro RangeOptions) (*RangeResult, error) {
	s.mu.RLock()
	cur := s.currentRev
	rev, err := checkReadRev(ro.Rev, cur, s.compactRev)
	if err != nil {
		s.mu.RUnlock()
		return nil, err
	}
	revs, count := collectRevs(s.index, newKeyRange(key, end), rev, ro)
	var it *pebble.Iterator
	if len(revs) > 0 {
		// Created under the lock: the iterator sees every revision the
		// index points to, and no later physical compaction.
		it, err = s.newRevIter()
	}
	s.mu.RUnlock()
	if err != nil {
		return nil, err
	}
	res := &RangeResult{Rev: cur, Count: count}
	if it == nil {
		return res, nil
	}
	defer it.Close()
	res.KVs = make([]*mvccpb.KeyValue, 0, len(revs))
	for _, r := range revs {
		kv, err := readRev(it, r)
		if err != nil {
			return nil, err
		}
		res.KVs = append(res.KVs, kv)
	}
	return res, nil
}

// checkReadRev resolves a requested read revision against the current and
// compaction revisions.
func checkReadRev(req, cur, compact int64) (int64, error) {
	if req > cur {
		return 0, ErrFutureRev
	}
	if req <= 0 {
		return cur, nil
	}
	if req < compact {
		return 0, ErrCompacted
	}
	return req, nil
}

// collectRevs returns the revisions of the keys live at rev in kr (at most
// ro.Limit of them, none for CountOnly) and the number of such keys.
func collectRevs(t *btree.BTreeG[*keyIndex], kr keyRange, rev int64, ro RangeOptions) ([]revision, int) {
	var revs []revision
	count := 0
	visitIndex(t, kr, func(ki *keyIndex) bool {
		r, _, _, ok := ki.get(rev)
		if !ok {
			return true
		}
		count++
		if !ro.CountOnly && (ro.Limit <= 0 || int64(len(revs)) < ro.Limit) {
			revs = append(revs, r)
		}
		return true
	})
	return revs, count
}

func (s *Store) newRevIter() (*pebble.Iterator, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: revSpaceStart, UpperBound: revSpaceEnd})
	if err != nil {
		return nil, fmt.Errorf("mvcc: new iterator: %w", err)
	}
	return it, nil
}

// readRev reads the value stored at revision r (never a tombstone).
func readRev(it *pebble.Iterator, r revision) (*mvccpb.KeyValue, error) {
	k := revKey(r, false)
	if !it.SeekGE(k) || !bytes.Equal(it.Key(), k) {
		if err := it.Error(); err != nil {
			return nil, fmt.Errorf("mvcc: read revision %v: %w", r, err)
		}
		return nil, fmt.Errorf("mvcc: revision %v in index but not in storage", r)
	}
	kv := &mvccpb.KeyValue{}
	if err := proto.Unmarshal(it.Value(), kv); err != nil {
		return nil, fmt.Errorf("mvcc: decode revision %v: %w", r, err)
	}
	return kv, nil
}

// LeasedKeys calls fn for every live key attached to a lease. fn runs without
// store locks held.
func (s *Store) LeasedKeys(fn func(key []byte, lease int64)) {
	type leased struct {
		key   []byte
		lease int64
	}
	var all []leased
	s.mu.RLock()
	s.index.Ascend(func(ki *keyIndex) bool {
		if ki.lease != 0 && ki.live() {
			all = append(all, leased{key: ki.key, lease: ki.lease})
		}
		return true
	})
	s.mu.RUnlock()
	for _, l := range all {
		fn(append([]byte(nil), l.key...), l.lease)
	}
}
