package mvcc

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"strconv"
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"
)

// model is the obviously-correct reference: the full history of every key.
type model struct {
	hist    map[string][]modelRev
	cur     int64
	compact int64
}

type modelRev struct {
	rev revision
	kv  *mvccpb.KeyValue // nil: tombstone
}

func newModel() *model { return &model{hist: map[string][]modelRev{}, cur: 1} }

// at returns the value of key at rev (nil if absent). Revisions with main ==
// rev are included, so at(key, cur+1) sees a txn's pending changes.
func (m *model) at(key string, rev int64) *mvccpb.KeyValue {
	h := m.hist[key]
	for i := len(h) - 1; i >= 0; i-- {
		if h[i].rev.main <= rev {
			return h[i].kv
		}
	}
	return nil
}

func (m *model) rangeAt(kr keyRange, rev int64) []*mvccpb.KeyValue {
	var keys []string
	for k := range m.hist {
		if kr.contains([]byte(k)) && m.at(k, rev) != nil {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	out := make([]*mvccpb.KeyValue, len(keys))
	for i, k := range keys {
		out[i] = m.at(k, rev)
	}
	return out
}

// modelTxn mirrors a TxnWrite on the model.
type modelTxn struct {
	m       *model
	changes int64
}

func (t *modelTxn) put(key, val string, lease int64) *mvccpb.KeyValue {
	m := t.m
	r := revision{main: m.cur + 1, sub: t.changes}
	prev := m.at(key, r.main)
	kv := &mvccpb.KeyValue{Key: []byte(key), Value: []byte(val), CreateRevision: r.main, ModRevision: r.main, Version: 1, Lease: lease}
	if prev != nil {
		kv.CreateRevision = prev.CreateRevision
		kv.Version = prev.Version + 1
	}
	m.hist[key] = append(m.hist[key], modelRev{rev: r, kv: kv})
	t.changes++
	return prev
}

func (t *modelTxn) deleteRange(kr keyRange) []*mvccpb.KeyValue {
	m := t.m
	live := m.rangeAt(kr, m.cur+1)
	for _, kv := range live {
		k := string(kv.Key)
		m.hist[k] = append(m.hist[k], modelRev{rev: revision{main: m.cur + 1, sub: t.changes}})
		t.changes++
	}
	return live
}

func (t *modelTxn) commit() {
	if t.changes > 0 {
		t.m.cur++
	}
}

func (t *modelTxn) abort() {
	m := t.m
	for k, h := range m.hist {
		for len(h) > 0 && h[len(h)-1].rev.main == m.cur+1 {
			h = h[:len(h)-1]
		}
		if len(h) == 0 {
			delete(m.hist, k)
		} else {
			m.hist[k] = h
		}
	}
}

// events is what Events(start, end) must return.
func (m *model) events(start, end int64) []*mvccpb.Event {
	type item struct {
		rev revision
		ev  *mvccpb.Event
	}
	var items []item
	for k, h := range m.hist {
		for i, e := range h {
			if e.rev.main < start || e.rev.main > end {
				continue
			}
			// At the compaction revision only the last change of each key survives.
			if m.compact > 0 && e.rev.main == m.compact && i+1 < len(h) && h[i+1].rev.main == m.compact {
				continue
			}
			ev := &mvccpb.Event{Type: mvccpb.Event_PUT, Kv: e.kv}
			if e.kv == nil {
				ev = &mvccpb.Event{Type: mvccpb.Event_DELETE, Kv: &mvccpb.KeyValue{Key: []byte(k), ModRevision: e.rev.main}}
			}
			items = append(items, item{e.rev, ev})
		}
	}
	sort.Slice(items, func(i, j int) bool { return items[j].rev.greaterThan(items[i].rev) })
	out := make([]*mvccpb.Event, len(items))
	for i, it := range items {
		out[i] = it.ev
	}
	return out
}

var modelKeys = []string{"a", "a/1", "a/2", "ab", "b", "b\x00", "c", "cc", "d", "foo", "foo/bar", "z"}

func randomKeyRange(rng *rand.Rand) ([]byte, []byte) {
	key := []byte(modelKeys[rng.IntN(len(modelKeys))])
	switch rng.IntN(6) {
	case 0:
		return key, nil
	case 1:
		return key, []byte{0}
	case 2: // prefix
		end := bytes.Clone(key)
		end[len(end)-1]++
		return key, end
	case 3:
		return []byte{}, []byte{0}
	default:
		return key, []byte(modelKeys[rng.IntN(len(modelKeys))])
	}
}

type opLog struct {
	// replay applies the logged operation to another store.
	replay []func(t testing.TB, s *Store)
}

func TestRandomizedAgainstModel(t *testing.T) {
	seeds := []uint64{1, 2, 3, 4}
	if n := os.Getenv("MVCC_MODEL_SEEDS"); n != "" {
		seeds = nil
		count, _ := strconv.Atoi(n)
		for i := range count {
			seeds = append(seeds, uint64(100+i))
		}
	}
	steps := 700
	if testing.Short() {
		steps = 200
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { runModel(t, seed, steps) })
	}
}

func runModel(t *testing.T, seed uint64, steps int) {
	rng := rand.New(rand.NewPCG(seed, seed*7919))
	db, _ := newTestDB(t)
	s, err := newStore(db, nil, 1+rng.IntN(8), nil) // tiny deletion batches
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s.Close() }()
	m := newModel()
	var log opLog

	check := func(step int) {
		t.Helper()
		if s.Rev() != m.cur || s.CompactRev() != m.compact {
			t.Fatalf("step %d: rev %d compact %d, model %d %d", step, s.Rev(), s.CompactRev(), m.cur, m.compact)
		}
		for range 4 {
			key, end := randomKeyRange(rng)
			rev := m.compact - 1 + rng.Int64N(m.cur-m.compact+3) // includes compacted and future
			ro := RangeOptions{Rev: rev, Limit: int64(rng.IntN(4)), CountOnly: rng.IntN(8) == 0}
			res, err := s.Range(key, end, ro)
			switch {
			case rev > m.cur:
				wantErr(t, err, ErrFutureRev)
				continue
			case rev > 0 && rev < m.compact:
				wantErr(t, err, ErrCompacted)
				continue
			case err != nil:
				t.Fatalf("step %d: range: %v", step, err)
			}
			at := rev
			if at <= 0 {
				at = m.cur
			}
			want := m.rangeAt(newKeyRange(key, end), at)
			if res.Count != len(want) || res.Rev != m.cur {
				t.Fatalf("step %d: range [%q,%q)@%d: count %d rev %d, want %d %d", step, key, end, rev, res.Count, res.Rev, len(want), m.cur)
			}
			if ro.CountOnly {
				if len(res.KVs) != 0 {
					t.Fatalf("step %d: count only returned kvs", step)
				}
				continue
			}
			if ro.Limit > 0 && int64(len(want)) > ro.Limit {
				want = want[:ro.Limit]
			}
			if !slices.EqualFunc(res.KVs, want, kvEqual) {
				t.Fatalf("step %d: range [%q,%q)@%d:\n got %v\nwant %v", step, key, end, rev, res.KVs, want)
			}
		}
		start := m.compact + rng.Int64N(m.cur-m.compact+1)
		end := start + rng.Int64N(m.cur-start+2)
		if rng.IntN(4) == 0 {
			end = 0
		}
		var got []*mvccpb.Event
		if err := s.Events(start, end, func(ev *mvccpb.Event) bool { got = append(got, ev); return true }); err != nil {
			t.Fatalf("step %d: events: %v", step, err)
		}
		if end <= 0 || end > m.cur {
			end = m.cur
		}
		want := m.events(start, end)
		if !slices.EqualFunc(got, want, eventEqual) {
			t.Fatalf("step %d: events [%d,%d]:\n got %v\nwant %v", step, start, end, got, want)
		}
		if m.compact > 1 {
			err := s.Events(m.compact-1, 0, func(*mvccpb.Event) bool { return true })
			wantErr(t, err, ErrCompacted)
		}
	}

	for step := range steps {
		switch n := rng.IntN(100); {
		case n < 80:
			runModelTxn(t, rng, s, m, &log, step)
		case n < 88:
			if m.cur == m.compact {
				continue
			}
			rev := m.compact + 1 + rng.Int64N(m.cur-m.compact)
			done, err := s.Compact(rev)
			if err != nil {
				t.Fatalf("step %d: compact %d: %v", step, rev, err)
			}
			m.compact = rev
			log.replay = append(log.replay, func(t testing.TB, s *Store) {
				if _, err := s.Compact(rev); err != nil {
					t.Fatal(err)
				}
			})
			if rng.IntN(2) == 0 {
				<-done
				checkIndexMatchesPebble(t, s)
			}
			_, err = s.Compact(rev - rng.Int64N(rev+1))
			wantErr(t, err, ErrCompacted)
			_, err = s.Compact(m.cur + 1)
			wantErr(t, err, ErrFutureRev)
		case n < 92:
			// Restart, possibly in the middle of a physical compaction.
			s.Close()
			s, err = newStore(db, nil, 1+rng.IntN(8), nil)
			if err != nil {
				t.Fatal(err)
			}
		default:
			h1, r1, c1, err := s.HashKV(0)
			if err != nil {
				t.Fatal(err)
			}
			if r1 != m.cur || c1 != m.compact {
				t.Fatalf("hashkv revs %d %d", r1, c1)
			}
			h2, _, _, _ := s.HashKV(0)
			if h1 != h2 {
				t.Fatal("hashkv not stable")
			}
		}
		check(step)
		if step%50 == 49 {
			checkIndexMatchesPebble(t, s)
		}
	}
	checkIndexMatchesPebble(t, s)

	// Replaying the same operations on a fresh store gives the same hashes.
	db2, _ := newTestDB(t)
	s2 := newTestStore(t, db2)
	for _, f := range log.replay {
		f(t, s2)
	}
	waitCompaction(s2)
	for rev := m.compact; rev <= m.cur; rev++ {
		h1, _, _, err1 := s.HashKV(rev)
		h2, _, _, err2 := s2.HashKV(rev)
		if err1 != nil || err2 != nil || h1 != h2 {
			t.Fatalf("HashKV(%d): %x %v vs %x %v", rev, h1, err1, h2, err2)
		}
	}
	ha, ra, err1 := s.Hash()
	hb, rb, err2 := s2.Hash()
	if err1 != nil || err2 != nil || ha != hb || ra != rb {
		t.Fatalf("Hash: %x@%d %v vs %x@%d %v", ha, ra, err1, hb, rb, err2)
	}
	// The lease view agrees with the model.
	var want, got []string
	for _, kv := range m.rangeAt(newKeyRange([]byte{}, []byte{0}), m.cur) {
		if kv.Lease != 0 {
			want = append(want, fmt.Sprintf("%s:%d", kv.Key, kv.Lease))
		}
	}
	s.LeasedKeys(func(k []byte, l int64) { got = append(got, fmt.Sprintf("%s:%d", k, l)) })
	if !slices.Equal(got, want) {
		t.Fatalf("leased keys %v, want %v", got, want)
	}
}

func runModelTxn(t *testing.T, rng *rand.Rand, s *Store, m *model, log *opLog, step int) {
	w := s.Write()
	mt := &modelTxn{m: m}
	type op struct {
		put      bool
		key, end []byte
		val      string
		lease    int64
	}
	var ops []op
	for range 1 + rng.IntN(4) {
		switch rng.IntN(10) {
		case 0, 1, 2, 3, 4, 5:
			o := op{put: true, key: []byte(modelKeys[rng.IntN(len(modelKeys))]), val: fmt.Sprint(rng.IntN(1000)), lease: int64(rng.IntN(3))}
			got := w.Put(o.key, []byte(o.val), o.lease)
			want := mt.put(string(o.key), o.val, o.lease)
			if !kvEqual(got, want) {
				t.Fatalf("step %d: put %q prev %v, want %v", step, o.key, got, want)
			}
			ops = append(ops, o)
		case 6, 7:
			var o op
			if rng.IntN(2) == 0 {
				o.key = []byte(modelKeys[rng.IntN(len(modelKeys))])
			} else {
				o.key, o.end = randomKeyRange(rng)
			}
			got := w.DeleteRange(o.key, o.end)
			want := mt.deleteRange(newKeyRange(o.key, o.end))
			if !slices.EqualFunc(got, want, kvEqual) {
				t.Fatalf("step %d: delete [%q,%q): %v, want %v", step, o.key, o.end, got, want)
			}
			ops = append(ops, o)
		default:
			key, end := randomKeyRange(rng)
			cur := m.cur
			if mt.changes > 0 {
				cur++
			}
			rev := int64(0)
			if rng.IntN(2) == 0 {
				rev = max(m.compact, 1) + rng.Int64N(cur-max(m.compact, 1)+1)
			}
			limit := int64(rng.IntN(3))
			res, err := w.Range(key, end, RangeOptions{Rev: rev, Limit: limit})
			if err != nil {
				t.Fatalf("step %d: txn range: %v", step, err)
			}
			at := rev
			if at == 0 {
				at = cur
			}
			want := m.rangeAt(newKeyRange(key, end), at)
			if res.Count != len(want) || res.Rev != cur {
				t.Fatalf("step %d: txn range count %d rev %d, want %d %d", step, res.Count, res.Rev, len(want), cur)
			}
			if limit > 0 && int64(len(want)) > limit {
				want = want[:limit]
			}
			if !slices.EqualFunc(res.KVs, want, kvEqual) {
				t.Fatalf("step %d: txn range [%q,%q)@%d:\n got %v\nwant %v", step, key, end, rev, res.KVs, want)
			}
		}
	}
	if rng.IntN(10) == 0 {
		w.Abort()
		mt.abort()
		return
	}
	rev, evs, err := w.Commit()
	if err != nil {
		t.Fatal(err)
	}
	mt.commit()
	if rev != m.cur {
		t.Fatalf("step %d: commit rev %d, want %d", step, rev, m.cur)
	}
	if int64(len(evs)) != mt.changes {
		t.Fatalf("step %d: %d events for %d changes", step, len(evs), mt.changes)
	}
	if mt.changes > 0 {
		// Events are the changes of this revision with their previous values.
		for i, ev := range evs {
			k := string(ev.Kv.Key)
			h := m.hist[k]
			var idx int
			for idx = range h {
				if h[idx].rev == (revision{main: rev, sub: int64(i)}) {
					break
				}
			}
			e := h[idx]
			if e.rev != (revision{main: rev, sub: int64(i)}) {
				t.Fatalf("step %d: event %d for %q not in model", step, i, k)
			}
			var prev *mvccpb.KeyValue
			if idx > 0 && h[idx-1].rev.main <= rev {
				prev = h[idx-1].kv
			}
			if !kvEqual(ev.PrevKv, prev) {
				t.Fatalf("step %d: event %d prev %v, want %v", step, i, ev.PrevKv, prev)
			}
			if e.kv != nil && (ev.Type != mvccpb.Event_PUT || !proto.Equal(ev.Kv, e.kv)) {
				t.Fatalf("step %d: event %d %v, want put %v", step, i, ev, e.kv)
			}
			if e.kv == nil && (ev.Type != mvccpb.Event_DELETE || ev.Kv.ModRevision != rev) {
				t.Fatalf("step %d: event %d %v, want delete", step, i, ev)
			}
		}
	}
	log.replay = append(log.replay, func(t testing.TB, s *Store) {
		w := s.Write()
		for _, o := range ops {
			if o.put {
				w.Put(o.key, []byte(o.val), o.lease)
			} else {
				w.DeleteRange(o.key, o.end)
			}
		}
		mustCommit(t, w)
	})
}
