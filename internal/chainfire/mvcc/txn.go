package mvcc

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/google/btree"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"
)

// TxnWrite is the single write transaction. Changes are staged in a Pebble
// batch and an overlay of the touched keys; nothing is visible to other
// goroutines before Commit.
type TxnWrite struct {
	s        *Store
	batch    *pebble.Batch
	beginRev int64
	changes  []change
	pending  *btree.BTreeG[*pendingKey] // latest state of each key changed by this txn
	err      error                      // first storage error; returned by Commit
	done     bool
}

type change struct {
	rev  revision
	key  []byte
	kv   *mvccpb.KeyValue // new value; nil for a delete
	prev *mvccpb.KeyValue // value before the change
}

type pendingKey struct {
	key []byte
	kv  *mvccpb.KeyValue // nil: deleted by this txn
}

func lessPending(a, b *pendingKey) bool { return bytes.Compare(a.key, b.key) < 0 }

// Write starts the write transaction, waiting for the previous one to end.
// The caller must end it with Commit or Abort. Compact and Hash must not be
// called by the goroutine holding an open TxnWrite (they wait for it).
func (s *Store) Write() *TxnWrite {
	s.wmu.Lock()
	s.mu.RLock()
	cur := s.currentRev
	s.mu.RUnlock()
	return &TxnWrite{
		s:        s,
		batch:    s.db.NewBatch(),
		beginRev: cur,
		pending:  btree.NewG(8, lessPending),
	}
}

func (w *TxnWrite) checkOpen() {
	if w.done {
		panic("mvcc: use of a finished TxnWrite")
	}
}

// Batch returns the Pebble batch committed by Commit, so that the caller can
// add its own keys atomically with this txn. The caller must not commit or
// close it. Abort discards whatever was added.
func (w *TxnWrite) Batch() *pebble.Batch {
	w.checkOpen()
	return w.batch
}

// nextRev is the revision of the next change.
func (w *TxnWrite) nextRev() revision {
	return revision{main: w.beginRev + 1, sub: int64(len(w.changes))}
}

// latest returns the current value of key as seen by this txn (nil if absent).
// The result is shared; callers clone before handing it out.
func (w *TxnWrite) latest(key []byte) (*mvccpb.KeyValue, error) {
	if p, ok := w.pending.Get(&pendingKey{key: key}); ok {
		return p.kv, nil
	}
	w.s.mu.RLock()
	var (
		r  revision
		ok bool
	)
	if ki, found := w.s.index.Get(&keyIndex{key: key}); found {
		r, _, _, ok = ki.get(w.beginRev)
	}
	w.s.mu.RUnlock()
	if !ok {
		return nil, nil
	}
	// No iterator needed: we hold the writer lock, so the index cannot move,
	// and physical compaction never deletes a live key's latest revision.
	return w.s.getRev(r)
}

func (s *Store) getRev(r revision) (*mvccpb.KeyValue, error) {
	v, closer, err := s.db.Get(revKey(r, false))
	if err != nil {
		if errors.Is(err, pebble.ErrNotFound) {
			return nil, fmt.Errorf("mvcc: revision %v in index but not in storage", r)
		}
		return nil, fmt.Errorf("mvcc: read revision %v: %w", r, err)
	}
	defer closer.Close()
	kv := &mvccpb.KeyValue{}
	if err := proto.Unmarshal(v, kv); err != nil {
		return nil, fmt.Errorf("mvcc: decode revision %v: %w", r, err)
	}
	return kv, nil
}

func (w *TxnWrite) fail(err error) {
	if w.err == nil {
		w.err = err
	}
}

// Put sets key to value with the given lease (0 for none) and returns the
// previous value (nil if the key did not exist). A storage error is reported
// by Commit.
func (w *TxnWrite) Put(key, value []byte, lease int64) (prev *mvccpb.KeyValue) {
	w.checkOpen()
	old, err := w.latest(key)
	if err != nil {
		w.fail(err)
		return nil
	}
	var created, ver int64
	if old != nil {
		created, ver = old.CreateRevision, old.Version
	}
	w.put(key, value, lease, created, ver, old)
	return cloneKV(old)
}

// put stages a new revision of key. created and ver describe the live key
// (0 if absent); prev is its old value when known, for the event.
func (w *TxnWrite) put(key, value []byte, lease, created, ver int64, prev *mvccpb.KeyValue) {
	r := w.nextRev()
	if created == 0 {
		created = r.main
	}
	kv := &mvccpb.KeyValue{
		Key:            bytes.Clone(key),
		Value:          bytes.Clone(value),
		CreateRevision: created,
		ModRevision:    r.main,
		Version:        ver + 1,
		Lease:          lease,
	}
	if err := w.stage(r, false, kv); err != nil {
		w.fail(err)
		return
	}
	w.changes = append(w.changes, change{rev: r, key: kv.Key, kv: kv, prev: prev})
	w.pending.ReplaceOrInsert(&pendingKey{key: kv.Key, kv: kv})
}

// PutNoPrev is Put for callers that do not need the previous value: it takes
// the create revision and version from the index instead of reading the old
// value from Pebble. Its event's PrevKv is nil unless this txn itself wrote
// the key before.
func (w *TxnWrite) PutNoPrev(key, value []byte, lease int64) {
	w.checkOpen()
	var created, ver int64
	var old *mvccpb.KeyValue
	if p, ok := w.pending.Get(&pendingKey{key: key}); ok {
		if old = p.kv; old != nil {
			created, ver = old.CreateRevision, old.Version
		}
	} else {
		w.s.mu.RLock()
		if ki, found := w.s.index.Get(&keyIndex{key: key}); found {
			if _, c, v, ok := ki.get(w.beginRev); ok {
				created, ver = c, v
			}
		}
		w.s.mu.RUnlock()
	}
	w.put(key, value, lease, created, ver, old)
}

func (w *TxnWrite) stage(r revision, tombstone bool, kv *mvccpb.KeyValue) error {
	data, err := marshalOpts.Marshal(kv)
	if err != nil {
		return fmt.Errorf("mvcc: encode revision %v: %w", r, err)
	}
	if err := w.batch.Set(revKey(r, tombstone), data, nil); err != nil {
		return fmt.Errorf("mvcc: stage revision %v: %w", r, err)
	}
	return nil
}

// DeleteRange deletes the live keys in [key, end) (etcd conventions for end)
// and returns their previous values in key order. Deleting nothing changes
// nothing.
func (w *TxnWrite) DeleteRange(key, end []byte) (deleted []*mvccpb.KeyValue) {
	w.checkOpen()
	entries, err := w.view(newKeyRange(key, end), w.beginRev+1)
	if err != nil {
		w.fail(err)
		return nil
	}
	for _, e := range entries {
		old := e.kv
		if old == nil {
			if old, err = w.s.getRev(e.rev); err != nil {
				w.fail(err)
				return deleted
			}
		}
		r := w.nextRev()
		tomb := &mvccpb.KeyValue{Key: bytes.Clone(e.key), ModRevision: r.main}
		if err := w.stage(r, true, tomb); err != nil {
			w.fail(err)
			return deleted
		}
		w.changes = append(w.changes, change{rev: r, key: tomb.Key, prev: old})
		w.pending.ReplaceOrInsert(&pendingKey{key: tomb.Key})
		deleted = append(deleted, cloneKV(old))
	}
	return deleted
}

// viewEntry is one live key of the txn's view: either a value staged by the
// txn (kv) or a committed revision to read (rev).
type viewEntry struct {
	key []byte
	kv  *mvccpb.KeyValue
	rev revision
}

// view lists the live keys of kr at rev in key order. At rev == beginRev+1 it
// merges the committed state with this txn's pending changes; below that it
// is the committed history.
func (w *TxnWrite) view(kr keyRange, rev int64) ([]viewEntry, error) {
	var committed []viewEntry
	w.s.mu.RLock()
	visitIndex(w.s.index, kr, func(ki *keyIndex) bool {
		if r, _, _, ok := ki.get(min(rev, w.beginRev)); ok {
			committed = append(committed, viewEntry{key: ki.key, rev: r})
		}
		return true
	})
	w.s.mu.RUnlock()
	if rev <= w.beginRev || w.pending.Len() == 0 {
		return committed, nil
	}
	var pend []*pendingKey
	visitPending(w.pending, kr, func(p *pendingKey) { pend = append(pend, p) })
	out := make([]viewEntry, 0, len(committed)+len(pend))
	i, j := 0, 0
	for i < len(committed) || j < len(pend) {
		var c int
		switch {
		case i == len(committed):
			c = 1
		case j == len(pend):
			c = -1
		default:
			c = bytes.Compare(committed[i].key, pend[j].key)
		}
		if c < 0 {
			out = append(out, committed[i])
			i++
			continue
		}
		// The txn's own state of the key wins over the committed one.
		if pend[j].kv != nil {
			out = append(out, viewEntry{key: pend[j].key, kv: pend[j].kv})
		}
		if c == 0 {
			i++
		}
		j++
	}
	return out, nil
}

func visitPending(t *btree.BTreeG[*pendingKey], kr keyRange, fn func(p *pendingKey)) {
	if kr.single {
		if p, ok := t.Get(&pendingKey{key: kr.key}); ok {
			fn(p)
		}
		return
	}
	if !kr.open && bytes.Compare(kr.key, kr.end) >= 0 {
		return
	}
	t.AscendGreaterOrEqual(&pendingKey{key: kr.key}, func(p *pendingKey) bool {
		if !kr.open && bytes.Compare(p.key, kr.end) >= 0 {
			return false
		}
		fn(p)
		return true
	})
}

// Range reads inside the txn: at the default revision it sees the txn's own
// earlier changes. Result Rev is the current revision, plus one if the txn
// has already changed something (etcd semantics).
func (w *TxnWrite) Range(key, end []byte, ro RangeOptions) (*RangeResult, error) {
	w.checkOpen()
	cur := w.beginRev
	if len(w.changes) > 0 {
		cur++
	}
	w.s.mu.RLock()
	compact := w.s.compactRev
	w.s.mu.RUnlock()
	rev, err := checkReadRev(ro.Rev, cur, compact)
	if err != nil {
		return nil, err
	}
	entries, err := w.view(newKeyRange(key, end), rev)
	if err != nil {
		return nil, err
	}
	res := &RangeResult{Rev: cur, Count: len(entries)}
	if ro.CountOnly {
		return res, nil
	}
	if ro.Limit > 0 && int64(len(entries)) > ro.Limit {
		entries = entries[:ro.Limit]
	}
	res.KVs = make([]*mvccpb.KeyValue, 0, len(entries))
	for _, e := range entries {
		if e.kv != nil {
			res.KVs = append(res.KVs, cloneKV(e.kv))
			continue
		}
		kv, err := w.s.getRev(e.rev)
		if err != nil {
			return nil, err
		}
		res.KVs = append(res.KVs, kv)
	}
	return res, nil
}

// Commit commits the batch (NoSync: the raft log is the durable record),
// publishes the changes to readers and releases the writer lock. rev is the
// new current revision (unchanged if nothing changed); events has one entry
// per change in op order, each with PrevKv set to the value before it.
// On error nothing is published.
func (w *TxnWrite) Commit() (rev int64, events []*mvccpb.Event, err error) {
	w.checkOpen()
	defer w.finish()
	s := w.s
	if w.err != nil {
		return w.beginRev, nil, w.err
	}
	newRev := w.beginRev
	if len(w.changes) > 0 {
		newRev++
		if err := w.batch.Set(metaCurrentRev, encodeInt(newRev), nil); err != nil {
			return w.beginRev, nil, fmt.Errorf("mvcc: stage current revision: %w", err)
		}
	}
	if !w.batch.Empty() {
		if err := w.batch.Commit(pebble.NoSync); err != nil {
			return w.beginRev, nil, fmt.Errorf("mvcc: commit: %w", err)
		}
	}
	if len(w.changes) == 0 {
		return newRev, nil, nil
	}

	s.mu.Lock()
	for _, c := range w.changes {
		ki, ok := s.index.Get(&keyIndex{key: c.key})
		if !ok {
			ki = &keyIndex{key: c.key}
			s.index.ReplaceOrInsert(ki)
		}
		if c.kv != nil {
			ki.put(c.rev, c.kv.Lease)
		} else {
			ki.tombstone(c.rev)
		}
	}
	s.currentRev = newRev
	s.mu.Unlock()

	events = make([]*mvccpb.Event, len(w.changes))
	for i, c := range w.changes {
		ev := &mvccpb.Event{PrevKv: cloneKV(c.prev)}
		if c.kv != nil {
			ev.Type = mvccpb.Event_PUT
			ev.Kv = cloneKV(c.kv)
		} else {
			ev.Type = mvccpb.Event_DELETE
			ev.Kv = &mvccpb.KeyValue{Key: bytes.Clone(c.key), ModRevision: c.rev.main}
		}
		events[i] = ev
	}
	return newRev, events, nil
}

// Abort discards the txn (including keys the caller added to Batch) and
// releases the writer lock. Calling it after Commit is a no-op, so it can be
// deferred.
func (w *TxnWrite) Abort() {
	if w.done {
		return
	}
	w.finish()
}

func (w *TxnWrite) finish() {
	w.done = true
	_ = w.batch.Close() // a Close error only concerns the discarded batch
	w.batch = nil
	w.s.wmu.Unlock()
}

func cloneKV(kv *mvccpb.KeyValue) *mvccpb.KeyValue {
	if kv == nil {
		return nil
	}
	return proto.CloneOf(kv)
}
