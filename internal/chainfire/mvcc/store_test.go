package mvcc

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestFreshStore(t *testing.T) {
	db, _ := newTestDB(t)
	s := newTestStore(t, db)
	if s.Rev() != 1 || s.CompactRev() != 0 {
		t.Fatalf("fresh store rev %d compact %d, want 1 0", s.Rev(), s.CompactRev())
	}
	ks, res := rangeKeys(t, s, "", "\x00", RangeOptions{})
	if len(ks) != 0 || res.Count != 0 || res.Rev != 1 {
		t.Fatalf("fresh range: %v %+v", ks, res)
	}
	// Reading at revision 1 is allowed, 2 is the future.
	if _, err := s.Range([]byte("a"), nil, RangeOptions{Rev: 1}); err != nil {
		t.Fatal(err)
	}
	_, err := s.Range([]byte("a"), nil, RangeOptions{Rev: 2})
	wantErr(t, err, ErrFutureRev)
}

func TestPutGetVersions(t *testing.T) {
	db, _ := newTestDB(t)
	s := newTestStore(t, db)
	if rev := put(t, s, "foo", "v1", 0); rev != 2 {
		t.Fatalf("first put rev %d, want 2", rev)
	}
	checkKV(t, get(t, s, "foo", 0), keyValue("foo", "v1", 2, 2, 1, 0))
	if rev := put(t, s, "foo", "v2", 7); rev != 3 {
		t.Fatalf("second put rev %d, want 3", rev)
	}
	checkKV(t, get(t, s, "foo", 0), keyValue("foo", "v2", 2, 3, 2, 7))
	put(t, s, "bar", "b", 0)
	checkKV(t, get(t, s, "foo", 0), keyValue("foo", "v2", 2, 3, 2, 7))
	checkKV(t, get(t, s, "bar", 0), keyValue("bar", "b", 4, 4, 1, 0))
	// History.
	checkKV(t, get(t, s, "foo", 2), keyValue("foo", "v1", 2, 2, 1, 0))
	checkKV(t, get(t, s, "foo", 3), keyValue("foo", "v2", 2, 3, 2, 7))
	if kv := get(t, s, "foo", 1); kv != nil {
		t.Fatalf("foo at rev 1: %v", kv)
	}
	if kv := get(t, s, "bar", 3); kv != nil {
		t.Fatalf("bar at rev 3: %v", kv)
	}
	// Returned KVs are the caller's.
	kv := get(t, s, "foo", 0)
	kv.Value[0] = 'X'
	kv.Version = 99
	checkKV(t, get(t, s, "foo", 0), keyValue("foo", "v2", 2, 3, 2, 7))
	// Empty value.
	put(t, s, "empty", "", 0)
	if kv := get(t, s, "empty", 0); kv == nil || len(kv.Value) != 0 || kv.Version != 1 {
		t.Fatalf("empty value: %v", kv)
	}
}

func TestDeleteAndRecreate(t *testing.T) {
	db, _ := newTestDB(t)
	s := newTestStore(t, db)
	put(t, s, "k", "1", 0) // 2
	put(t, s, "k", "2", 0) // 3
	rev, n := del(t, s, "k", "")
	if rev != 4 || n != 1 {
		t.Fatalf("delete rev %d n %d", rev, n)
	}
	if kv := get(t, s, "k", 0); kv != nil {
		t.Fatalf("deleted key visible: %v", kv)
	}
	// Deleting nothing changes nothing.
	rev, n = del(t, s, "k", "")
	if rev != 4 || n != 0 || s.Rev() != 4 {
		t.Fatalf("empty delete rev %d n %d store rev %d", rev, n, s.Rev())
	}
	put(t, s, "k", "3", 0) // 5
	checkKV(t, get(t, s, "k", 0), keyValue("k", "3", 5, 5, 1, 0))
	checkKV(t, get(t, s, "k", 3), keyValue("k", "2", 2, 3, 2, 0))
	if kv := get(t, s, "k", 4); kv != nil {
		t.Fatalf("k at tombstone rev: %v", kv)
	}
}

func TestRangeVariants(t *testing.T) {
	db, _ := newTestDB(t)
	s := newTestStore(t, db)
	keys := []string{"a", "b", "c", "foo", "foo/1", "foo/2", "fop", "z\xff"}
	for _, k := range keys {
		put(t, s, k, "v-"+k, 0)
	}
	cases := []struct {
		key, end string
		ro       RangeOptions
		want     []string
		count    int
	}{
		{"foo", "", RangeOptions{}, []string{"foo"}, 1},
		{"nope", "", RangeOptions{}, nil, 0},
		{"foo", "fop", RangeOptions{}, []string{"foo", "foo/1", "foo/2"}, 3},
		{"foo/", "foo0", RangeOptions{}, []string{"foo/1", "foo/2"}, 2},
		{"c", "\x00", RangeOptions{}, []string{"c", "foo", "foo/1", "foo/2", "fop", "z\xff"}, 6},
		{"", "\x00", RangeOptions{Limit: 2}, []string{"a", "b"}, 8},
		{"\x00", "\x00", RangeOptions{Limit: 100}, keys, 8},
		{"b", "foo/2", RangeOptions{Limit: 3}, []string{"b", "c", "foo"}, 4},
		{"b", "foo/2", RangeOptions{CountOnly: true}, nil, 4},
		{"b", "foo/2", RangeOptions{Limit: -1}, []string{"b", "c", "foo", "foo/1"}, 4},
		{"foo", "foo", RangeOptions{}, nil, 0}, // end == key: empty
		{"z", "a", RangeOptions{}, nil, 0},     // end < key: empty
		{"a", "a\x00", RangeOptions{}, []string{"a"}, 1},
	}
	for _, c := range cases {
		got, res := rangeKeys(t, s, c.key, c.end, c.ro)
		if !slices.Equal(got, c.want) || res.Count != c.count || res.Rev != s.Rev() {
			t.Errorf("range [%q,%q) %+v: got %q count %d rev %d, want %q count %d", c.key, c.end, c.ro, got, res.Count, res.Rev, c.want, c.count)
		}
	}
}

func TestRevisionBoundaries(t *testing.T) {
	db, _ := newTestDB(t)
	s := newTestStore(t, db)
	for i := range 5 {
		put(t, s, "k", fmt.Sprint(i), 0) // revs 2..6
	}
	_, err := s.Range([]byte("k"), nil, RangeOptions{Rev: 7})
	wantErr(t, err, ErrFutureRev)
	_, err = s.Compact(7)
	wantErr(t, err, ErrFutureRev)
	if _, err := s.Compact(4); err != nil {
		t.Fatal(err)
	}
	if s.CompactRev() != 4 {
		t.Fatalf("compact rev %d", s.CompactRev())
	}
	_, err = s.Range([]byte("k"), nil, RangeOptions{Rev: 3})
	wantErr(t, err, ErrCompacted)
	// Reading at the compaction revision is allowed.
	checkKV(t, get(t, s, "k", 4), keyValue("k", "2", 2, 4, 3, 0))
	checkKV(t, get(t, s, "k", 0), keyValue("k", "4", 2, 6, 5, 0))
	_, err = s.Compact(4)
	wantErr(t, err, ErrCompacted)
	_, err = s.Compact(3)
	wantErr(t, err, ErrCompacted)
	if _, err := s.Compact(6); err != nil { // compacting at the current revision is fine
		t.Fatal(err)
	}
	checkKV(t, get(t, s, "k", 6), keyValue("k", "4", 2, 6, 5, 0))
	checkIndexMatchesPebble(t, s)
	if got := pebbleRevs(t, db); len(got) != 1 {
		t.Fatalf("pebble revisions after compaction: %v", got)
	}
}

func TestTxnReadYourWrites(t *testing.T) {
	db, _ := newTestDB(t)
	s := newTestStore(t, db)
	put(t, s, "a", "a1", 0) // 2
	put(t, s, "b", "b1", 5) // 3
	put(t, s, "c", "c1", 0) // 4

	w := s.Write()
	res, err := w.Range([]byte("a"), []byte("\x00"), RangeOptions{})
	if err != nil || res.Rev != 4 || res.Count != 3 {
		t.Fatalf("txn range before changes: %+v %v", res, err)
	}
	if prev := w.Put([]byte("a"), []byte("a2"), 0); !kvEqual(prev, keyValue("a", "a1", 2, 2, 1, 0)) {
		t.Fatalf("prev of a: %v", prev)
	}
	if prev := w.Put([]byte("a"), []byte("a3"), 9); !kvEqual(prev, keyValue("a", "a2", 2, 5, 2, 0)) {
		t.Fatalf("prev of second put: %v", prev)
	}
	if prev := w.Put([]byte("d"), []byte("d1"), 0); prev != nil {
		t.Fatalf("prev of new key: %v", prev)
	}
	deleted := w.DeleteRange([]byte("b"), []byte("d"))
	if len(deleted) != 2 || !kvEqual(deleted[0], keyValue("b", "b1", 3, 3, 1, 5)) || !kvEqual(deleted[1], keyValue("c", "c1", 4, 4, 1, 0)) {
		t.Fatalf("deleted: %v", deleted)
	}
	// Deleting again within the txn finds nothing.
	if again := w.DeleteRange([]byte("b"), []byte("d")); len(again) != 0 {
		t.Fatalf("second delete: %v", again)
	}
	if prev := w.Put([]byte("c"), []byte("c2"), 0); prev != nil {
		t.Fatalf("prev of re-created key: %v", prev)
	}

	res, err = w.Range([]byte(""), []byte("\x00"), RangeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := []*mvccpb.KeyValue{
		keyValue("a", "a3", 2, 5, 3, 9),
		keyValue("c", "c2", 5, 5, 1, 0),
		keyValue("d", "d1", 5, 5, 1, 0),
	}
	if res.Rev != 5 || res.Count != 3 || len(res.KVs) != 3 {
		t.Fatalf("txn range: %+v", res)
	}
	for i := range want {
		checkKV(t, res.KVs[i], want[i])
	}
	// Limit and count inside the txn; explicit revision = current+1.
	res, err = w.Range([]byte(""), []byte("\x00"), RangeOptions{Limit: 1, Rev: 5})
	if err != nil || res.Count != 3 || len(res.KVs) != 1 || string(res.KVs[0].Key) != "a" {
		t.Fatalf("txn range limit: %+v %v", res, err)
	}
	// History inside the txn.
	res, err = w.Range([]byte("b"), nil, RangeOptions{Rev: 4})
	if err != nil || len(res.KVs) != 1 || !kvEqual(res.KVs[0], keyValue("b", "b1", 3, 3, 1, 5)) || res.Rev != 5 {
		t.Fatalf("txn historical range: %+v %v", res, err)
	}
	_, err = w.Range([]byte("b"), nil, RangeOptions{Rev: 6})
	wantErr(t, err, ErrFutureRev)
	// Results inside the txn are copies.
	res, _ = w.Range([]byte("a"), nil, RangeOptions{})
	res.KVs[0].Value = []byte("mutated")

	// Concurrent readers see nothing of the txn yet.
	if kv := get(t, s, "d", 0); kv != nil {
		t.Fatalf("uncommitted write visible: %v", kv)
	}
	if s.Rev() != 4 {
		t.Fatalf("rev moved before commit: %d", s.Rev())
	}

	rev, evs := mustCommit(t, w)
	if rev != 5 || s.Rev() != 5 {
		t.Fatalf("commit rev %d store rev %d", rev, s.Rev())
	}
	wantEvs := []*mvccpb.Event{
		{Type: mvccpb.Event_PUT, Kv: keyValue("a", "a2", 2, 5, 2, 0), PrevKv: keyValue("a", "a1", 2, 2, 1, 0)},
		{Type: mvccpb.Event_PUT, Kv: keyValue("a", "a3", 2, 5, 3, 9), PrevKv: keyValue("a", "a2", 2, 5, 2, 0)},
		{Type: mvccpb.Event_PUT, Kv: keyValue("d", "d1", 5, 5, 1, 0)},
		{Type: mvccpb.Event_DELETE, Kv: &mvccpb.KeyValue{Key: []byte("b"), ModRevision: 5}, PrevKv: keyValue("b", "b1", 3, 3, 1, 5)},
		{Type: mvccpb.Event_DELETE, Kv: &mvccpb.KeyValue{Key: []byte("c"), ModRevision: 5}, PrevKv: keyValue("c", "c1", 4, 4, 1, 0)},
		{Type: mvccpb.Event_PUT, Kv: keyValue("c", "c2", 5, 5, 1, 0)},
	}
	checkEvents(t, evs, wantEvs)
	checkKV(t, get(t, s, "a", 0), keyValue("a", "a3", 2, 5, 3, 9))
	checkKV(t, get(t, s, "c", 0), keyValue("c", "c2", 5, 5, 1, 0))
	if kv := get(t, s, "b", 0); kv != nil {
		t.Fatalf("b after delete: %v", kv)
	}
	// Sub revisions: 6 changes stored under 5.0 .. 5.5.
	var subs []int64
	for _, r := range pebbleRevs(t, db) {
		if r.main == 5 {
			subs = append(subs, r.sub)
		}
	}
	if !slices.Equal(subs, []int64{0, 1, 2, 3, 4, 5}) {
		t.Fatalf("sub revisions %v", subs)
	}
	// Replay gives the same events without PrevKv.
	var replay []*mvccpb.Event
	if err := s.Events(5, 5, func(ev *mvccpb.Event) bool { replay = append(replay, ev); return true }); err != nil {
		t.Fatal(err)
	}
	for _, ev := range wantEvs {
		ev.PrevKv = nil
	}
	checkEvents(t, replay, wantEvs)
}

func checkEvents(t testing.TB, got, want []*mvccpb.Event) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d events, want %d:\n%v\n%v", len(got), len(want), got, want)
	}
	for i := range want {
		if !eventEqual(got[i], want[i]) {
			t.Fatalf("event %d: got %v, want %v", i, got[i], want[i])
		}
	}
}

func eventEqual(a, b *mvccpb.Event) bool {
	return a.Type == b.Type && kvEqual(a.Kv, b.Kv) && kvEqual(a.PrevKv, b.PrevKv)
}

func TestTxnAbortAndEmptyCommit(t *testing.T) {
	db, _ := newTestDB(t)
	s := newTestStore(t, db)
	put(t, s, "a", "1", 0)
	before := pebbleRevs(t, db)

	w := s.Write()
	w.Put([]byte("a"), []byte("2"), 0)
	w.Put([]byte("b"), []byte("1"), 0)
	w.DeleteRange([]byte("a"), nil)
	if err := w.Batch().Set([]byte("xlead"), []byte("ci"), nil); err != nil {
		t.Fatal(err)
	}
	w.Abort()
	w.Abort() // idempotent
	if s.Rev() != 2 {
		t.Fatalf("rev after abort %d", s.Rev())
	}
	checkKV(t, get(t, s, "a", 0), keyValue("a", "1", 2, 2, 1, 0))
	if kv := get(t, s, "b", 0); kv != nil {
		t.Fatalf("aborted put visible: %v", kv)
	}
	if after := pebbleRevs(t, db); !slices.Equal(before, after) {
		t.Fatalf("abort left revisions: %v -> %v", before, after)
	}
	if _, closer, err := db.Get([]byte("xlead")); err == nil {
		closer.Close()
		t.Fatal("aborted batch key committed")
	}

	// A txn without mvcc changes still commits the caller's batch keys.
	w = s.Write()
	if err := w.Batch().Set([]byte("xlead"), []byte("ci"), nil); err != nil {
		t.Fatal(err)
	}
	w.DeleteRange([]byte("nothing"), nil)
	rev, evs := mustCommit(t, w)
	if rev != 2 || len(evs) != 0 || s.Rev() != 2 {
		t.Fatalf("empty commit: rev %d events %v", rev, evs)
	}
	v, closer, err := db.Get([]byte("xlead"))
	if err != nil || string(v) != "ci" {
		t.Fatalf("lead key: %q %v", v, err)
	}
	closer.Close()
	w.Abort() // after commit: no-op

	// The writer lock was released each time.
	put(t, s, "c", "1", 0)
}

func TestCompactionKeepsRightRevisions(t *testing.T) {
	db, _ := newTestDB(t)
	s := newTestStore(t, db)
	put(t, s, "foo", "1", 0) // 2
	put(t, s, "foo", "2", 0) // 3
	del(t, s, "foo", "")     // 4 tombstone
	put(t, s, "foo", "3", 0) // 5
	del(t, s, "foo", "")     // 6 tombstone
	put(t, s, "bar", "1", 0) // 7
	put(t, s, "gone", "", 0) // 8
	del(t, s, "gone", "")    // 9
	put(t, s, "bar", "2", 0) // 10

	compactAndCheck := func(rev int64, wantRevs []int64) {
		t.Helper()
		done, err := s.Compact(rev)
		if err != nil {
			t.Fatal(err)
		}
		<-done
		var got []int64
		for _, r := range pebbleRevs(t, db) {
			got = append(got, r.main)
		}
		if !slices.Equal(got, wantRevs) {
			t.Fatalf("after compact(%d): pebble revisions %v, want %v", rev, got, wantRevs)
		}
		checkIndexMatchesPebble(t, s)
	}
	compactAndCheck(3, []int64{3, 4, 5, 6, 7, 8, 9, 10})
	checkKV(t, get(t, s, "foo", 3), keyValue("foo", "2", 2, 3, 2, 0))
	compactAndCheck(5, []int64{5, 6, 7, 8, 9, 10})
	checkKV(t, get(t, s, "foo", 5), keyValue("foo", "3", 5, 5, 1, 0))
	// A tombstone exactly at the compaction revision survives it ...
	compactAndCheck(6, []int64{6, 7, 8, 9, 10})
	if kv := get(t, s, "foo", 6); kv != nil {
		t.Fatalf("foo at 6: %v", kv)
	}
	var evs []*mvccpb.Event
	if err := s.Events(6, 6, func(ev *mvccpb.Event) bool { evs = append(evs, ev); return true }); err != nil {
		t.Fatal(err)
	}
	checkEvents(t, evs, []*mvccpb.Event{{Type: mvccpb.Event_DELETE, Kv: &mvccpb.KeyValue{Key: []byte("foo"), ModRevision: 6}}})
	// ... and goes with the next one, with the key.
	compactAndCheck(9, []int64{7, 9, 10})
	compactAndCheck(10, []int64{10})
	s.mu.RLock()
	n := s.index.Len()
	s.mu.RUnlock()
	if n != 1 {
		t.Fatalf("index keys after compaction: %d", n)
	}
	checkKV(t, get(t, s, "bar", 10), keyValue("bar", "2", 7, 10, 2, 0))

	// The current revision survives a restart even though the data at it is gone.
	del(t, s, "bar", "")             // 11
	compactAndCheck(11, []int64{11}) // the tombstone at 11 is kept
	s.Close()
	s2 := newTestStore(t, db)
	if s2.Rev() != 11 || s2.CompactRev() != 11 {
		t.Fatalf("after restart: rev %d compact %d", s2.Rev(), s2.CompactRev())
	}
	if put(t, s2, "new", "x", 0) != 12 {
		t.Fatal("revision went backwards after restart")
	}
}

func TestCompactEmptyStoreRestart(t *testing.T) {
	db, _ := newTestDB(t)
	s := newTestStore(t, db)
	put(t, s, "a", "1", 0)
	put(t, s, "b", "1", 0)
	del(t, s, "", "\x00") // 4
	put(t, s, "c", "1", 0)
	del(t, s, "c", "") // 6
	done, err := s.Compact(6)
	if err != nil {
		t.Fatal(err)
	}
	<-done
	// The tombstone of c at 6 survives compaction at 6; compact it away via
	// one more write + compaction at that write.
	put(t, s, "d", "1", 0) // 7
	del(t, s, "d", "")     // 8
	done, err = s.Compact(8)
	if err != nil {
		t.Fatal(err)
	}
	<-done
	if n := len(pebbleRevs(t, db)); n != 1 { // only d's tombstone at 8
		t.Fatalf("revisions left: %d", n)
	}
	s.Close()
	s2 := newTestStore(t, db)
	if s2.Rev() != 8 || s2.CompactRev() != 8 {
		t.Fatalf("restart: rev %d compact %d", s2.Rev(), s2.CompactRev())
	}
	checkIndexMatchesPebble(t, s2)
}

func TestRestartRestoresState(t *testing.T) {
	fs := vfs.NewMem()
	db := openMemDB(t, fs)
	s, err := New(db, nil)
	if err != nil {
		t.Fatal(err)
	}
	put(t, s, "a", "1", 3)
	put(t, s, "b", "1", 0)
	put(t, s, "a", "2", 4)
	del(t, s, "b", "")
	put(t, s, "b", "2", 0)
	put(t, s, "c", "1", 0)
	del(t, s, "c", "")
	done, err := s.Compact(4)
	if err != nil {
		t.Fatal(err)
	}
	<-done
	put(t, s, "a", "3", 0)
	type snapshot struct {
		rev, compact int64
		hash         uint32
		ranges       [][]*mvccpb.KeyValue
	}
	take := func(s *Store) snapshot {
		sn := snapshot{rev: s.Rev(), compact: s.CompactRev()}
		h, _, _, err := s.HashKV(0)
		if err != nil {
			t.Fatal(err)
		}
		sn.hash = h
		for r := sn.compact; r <= sn.rev; r++ {
			res, err := s.Range(nil, []byte{0}, RangeOptions{Rev: r})
			if err != nil {
				t.Fatal(err)
			}
			sn.ranges = append(sn.ranges, res.KVs)
		}
		return sn
	}
	equal := func(a, b snapshot) bool {
		if a.rev != b.rev || a.compact != b.compact || a.hash != b.hash || len(a.ranges) != len(b.ranges) {
			return false
		}
		for i := range a.ranges {
			if !slices.EqualFunc(a.ranges[i], b.ranges[i], kvEqual) {
				return false
			}
		}
		return true
	}
	before := take(s)
	idxBefore := indexRevs(s)
	s.Close()

	// Same open DB.
	s2, err := New(db, nil)
	if err != nil {
		t.Fatal(err)
	}
	if after := take(s2); !equal(before, after) {
		t.Fatalf("state differs after restart:\n%+v\n%+v", before, after)
	}
	if !slices.Equal(idxBefore, indexRevs(s2)) {
		t.Fatalf("index differs after restart: %v vs %v", idxBefore, indexRevs(s2))
	}
	s2.Close()

	// Reopened DB on the same file system.
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db2 := openMemDB(t, fs)
	defer db2.Close()
	s3, err := New(db2, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s3.Close()
	if after := take(s3); !equal(before, after) {
		t.Fatalf("state differs after reopen:\n%+v\n%+v", before, after)
	}
	var leased []string
	s3.LeasedKeys(func(k []byte, l int64) { leased = append(leased, fmt.Sprintf("%s:%d", k, l)) })
	if len(leased) != 0 {
		t.Fatalf("leased keys: %v", leased) // a's last put has no lease
	}
	put(t, s3, "c", "2", 8)
	checkKV(t, get(t, s3, "c", 0), keyValue("c", "2", 10, 10, 1, 8))
	checkKV(t, get(t, s3, "a", 0), keyValue("a", "3", 2, 9, 3, 0))
	put(t, s3, "a", "4", 0)
	checkKV(t, get(t, s3, "a", 0), keyValue("a", "4", 2, 11, 4, 0))
}

// buildHistory writes a history with overwrites, deletes and re-creations.
func buildHistory(t testing.TB, s *Store) {
	t.Helper()
	for i := range 30 {
		k := fmt.Sprintf("key%02d", i%7)
		switch i % 5 {
		case 3:
			del(t, s, k, "")
		default:
			put(t, s, k, fmt.Sprint(i), int64(i%3))
		}
	}
	del(t, s, "key03", "key05")
}

func TestRestartCompletesInterruptedCompaction(t *testing.T) {
	// Reference: compaction that ran normally.
	refDB, _ := newTestDB(t)
	ref := newTestStore(t, refDB)
	buildHistory(t, ref)
	const at = 20
	done, err := ref.Compact(at)
	if err != nil {
		t.Fatal(err)
	}
	<-done
	refHash, _, _, err := ref.HashKV(0)
	if err != nil {
		t.Fatal(err)
	}
	refRevs := pebbleRevs(t, refDB)

	t.Run("crash before index compaction", func(t *testing.T) {
		db, _ := newTestDB(t)
		s := newTestStore(t, db)
		buildHistory(t, s)
		s.Close()
		// Only the scheduled revision made it to disk.
		if err := db.Set(metaScheduledCompact, encodeInt(at), pebble.NoSync); err != nil {
			t.Fatal(err)
		}
		s2 := newTestStore(t, db)
		if s2.CompactRev() != at {
			t.Fatalf("compact rev %d", s2.CompactRev())
		}
		_, err := s2.Range([]byte("key01"), nil, RangeOptions{Rev: at - 1})
		wantErr(t, err, ErrCompacted)
		waitCompaction(s2)
		if got := pebbleRevs(t, db); !slices.Equal(got, refRevs) {
			t.Fatalf("revisions %v, want %v", got, refRevs)
		}
		checkIndexMatchesPebble(t, s2)
		if h, _, _, _ := s2.HashKV(0); h != refHash {
			t.Fatalf("hash %x, want %x", h, refHash)
		}
	})

	t.Run("crash during physical deletion", func(t *testing.T) {
		db, _ := newTestDB(t)
		stop := make(chan struct{})
		var s *Store
		// Small batches; the hook closes the store after the first batch,
		// which stops the deletion half way like a crash would.
		s, err := newStore(db, nil, 3, func(batch int) {
			if batch == 0 {
				close(stop)
				<-s.stopc // hold the deletion here until Close, like a crash
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		buildHistory(t, s)
		done, err := s.Compact(at)
		if err != nil {
			t.Fatal(err)
		}
		<-stop
		// HashKV does not depend on deletion progress.
		if h, _, _, _ := s.HashKV(0); h != refHash {
			t.Fatalf("hash during compaction %x, want %x", h, refHash)
		}
		s.Close()
		<-done
		fin, _, _ := s.readMeta(metaFinishedCompact)
		if fin == at {
			t.Fatal("deletion finished despite the close")
		}
		if len(pebbleRevs(t, db)) == len(refRevs) {
			t.Fatal("expected leftovers of the interrupted compaction")
		}
		s2 := newTestStore(t, db)
		waitCompaction(s2)
		if got := pebbleRevs(t, db); !slices.Equal(got, refRevs) {
			t.Fatalf("revisions %v, want %v", got, refRevs)
		}
		checkIndexMatchesPebble(t, s2)
		if h, _, _, _ := s2.HashKV(0); h != refHash {
			t.Fatalf("hash %x, want %x", h, refHash)
		}
		fin, _, _ = s2.readMeta(metaFinishedCompact)
		if fin != at {
			t.Fatalf("finished compact %d", fin)
		}
		// And a normal restart after that has nothing to do.
		s2.Close()
		s3 := newTestStore(t, db)
		s3.compMu.Lock()
		pending := s3.lastCompaction
		s3.compMu.Unlock()
		if pending != nil {
			t.Fatal("restart after finished compaction scheduled another one")
		}
	})
}

func TestEvents(t *testing.T) {
	db, _ := newTestDB(t)
	s := newTestStore(t, db)
	put(t, s, "a", "1", 0) // 2
	w := s.Write()         // 3: two subs for a, one for b
	w.Put([]byte("a"), []byte("2"), 0)
	w.Put([]byte("b"), []byte("1"), 0)
	w.Put([]byte("a"), []byte("3"), 0)
	mustCommit(t, w)
	del(t, s, "a", "")     // 4
	put(t, s, "c", "1", 0) // 5

	collect := func(start, end int64) ([]string, error) {
		var out []string
		err := s.Events(start, end, func(ev *mvccpb.Event) bool {
			if ev.PrevKv != nil {
				t.Fatalf("replayed event with PrevKv: %v", ev)
			}
			out = append(out, fmt.Sprintf("%s %s@%d=%s", ev.Type, ev.Kv.Key, ev.Kv.ModRevision, ev.Kv.Value))
			return true
		})
		return out, err
	}
	all := []string{"PUT a@2=1", "PUT a@3=2", "PUT b@3=1", "PUT a@3=3", "DELETE a@4=", "PUT c@5=1"}
	for _, c := range []struct {
		start, end int64
		want       []string
	}{
		{0, 0, all},
		{1, 100, all},
		{3, 4, all[1:5]},
		{5, 5, all[5:]},
		{6, 0, nil},
		{4, 3, nil},
	} {
		got, err := collect(c.start, c.end)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("events [%d,%d]: got %q, want %q", c.start, c.end, got, c.want)
		}
	}
	// fn returning false stops the replay.
	n := 0
	if err := s.Events(0, 0, func(*mvccpb.Event) bool { n++; return n < 3 }); err != nil || n != 3 {
		t.Fatalf("stop: n=%d err=%v", n, err)
	}

	// Compact at 3: the overwritten sub revision 3.0 of a goes, even before
	// the physical deletion runs; reading from below 3 is compacted.
	done, err := s.Compact(3)
	if err != nil {
		t.Fatal(err)
	}
	got, err := collect(3, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"PUT b@3=1", "PUT a@3=3", "DELETE a@4=", "PUT c@5=1"}
	if !slices.Equal(got, want) {
		t.Fatalf("events from compact rev: got %q, want %q", got, want)
	}
	<-done
	if got, _ = collect(3, 0); !slices.Equal(got, want) {
		t.Fatalf("events from compact rev after deletion: got %q, want %q", got, want)
	}
	_, err = collect(2, 0)
	wantErr(t, err, ErrCompacted)
}

func TestHashKV(t *testing.T) {
	dbA, _ := newTestDB(t)
	dbB, _ := newTestDB(t)
	a, b := newTestStore(t, dbA), newTestStore(t, dbB)
	buildHistory(t, a)
	buildHistory(t, b)
	hash := func(s *Store, rev int64) uint32 {
		t.Helper()
		h, hr, _, err := s.HashKV(rev)
		if err != nil {
			t.Fatal(err)
		}
		if rev != 0 && hr != rev {
			t.Fatalf("hash rev %d, want %d", hr, rev)
		}
		return h
	}
	for rev := int64(0); rev <= a.Rev(); rev++ {
		if hash(a, rev) != hash(b, rev) {
			t.Fatalf("hashes differ at %d", rev)
		}
	}
	if hash(a, 10) == hash(a, 11) {
		t.Fatal("hash did not change with a revision")
	}
	ha, _, err := a.Hash()
	if err != nil {
		t.Fatal(err)
	}
	hb, _, err := b.Hash()
	if err != nil || ha != hb {
		t.Fatalf("Hash differs: %x %x %v", ha, hb, err)
	}
	// Hash at a revision does not move with later writes, and survives
	// compaction at or below it and restarts.
	at := a.Rev()
	h0 := hash(a, at)
	put(t, a, "later", "x", 0)
	if hash(a, at) != h0 {
		t.Fatal("hash at a past revision changed after a write")
	}
	if _, err := a.Compact(at - 5); err != nil {
		t.Fatal(err)
	}
	ha1 := hash(a, 0)
	a.Close()
	a2 := newTestStore(t, dbA)
	if hash(a2, 0) != ha1 {
		t.Fatal("HashKV changed across restart")
	}
	_, _, _, err = a2.HashKV(at - 6)
	wantErr(t, err, ErrCompacted)
	_, _, _, err = a2.HashKV(a2.Rev() + 1)
	wantErr(t, err, ErrFutureRev)
	// Same ops on b give the same hash.
	put(t, b, "later", "x", 0)
	if done, err := b.Compact(at - 5); err != nil {
		t.Fatal(err)
	} else {
		<-done
	}
	if hash(b, 0) != ha1 {
		t.Fatal("HashKV differs between stores fed the same ops")
	}
	ha, _, _ = a2.Hash()
	hb, _, _ = b.Hash()
	if ha != hb {
		t.Fatal("Hash differs between stores fed the same ops")
	}
}

func TestLeasedKeys(t *testing.T) {
	db, _ := newTestDB(t)
	s := newTestStore(t, db)
	put(t, s, "a", "1", 5)
	put(t, s, "b", "1", 6)
	put(t, s, "c", "1", 0)
	put(t, s, "b", "2", 0) // detached
	put(t, s, "d", "1", 7)
	del(t, s, "d", "")
	put(t, s, "e", "1", 5)
	list := func(s *Store) []string {
		var out []string
		s.LeasedKeys(func(k []byte, l int64) { out = append(out, fmt.Sprintf("%s:%d", k, l)) })
		return out
	}
	want := []string{"a:5", "e:5"}
	if got := list(s); !slices.Equal(got, want) {
		t.Fatalf("leased keys %v, want %v", got, want)
	}
	s.Close()
	s2 := newTestStore(t, db)
	if got := list(s2); !slices.Equal(got, want) {
		t.Fatalf("leased keys after restart %v, want %v", got, want)
	}
}

// TestConcurrentReadersSeeWholeTxns runs a writer that always sets two keys
// to the same value in one txn against readers that must never see them
// differ, and a watcher-like replayer that must see whole revisions.
func TestConcurrentReadersSeeWholeTxns(t *testing.T) {
	db, _ := newTestDB(t)
	s := newTestStore(t, db)
	const writes = 300
	var stop atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer stop.Store(true)
		for i := range writes {
			w := s.Write()
			v := []byte(fmt.Sprint(i))
			w.Put([]byte("x"), v, 0)
			w.Put([]byte("y"), v, 0)
			if _, _, err := w.Commit(); err != nil {
				errs <- err
				return
			}
			if i%50 == 49 {
				if _, err := s.Compact(s.Rev() - 10); err != nil {
					errs <- err
					return
				}
			}
		}
	}()
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				res, err := s.Range([]byte("x"), []byte("z"), RangeOptions{})
				if err != nil {
					errs <- err
					return
				}
				if len(res.KVs) == 1 || (len(res.KVs) == 2 && string(res.KVs[0].Value) != string(res.KVs[1].Value)) {
					errs <- fmt.Errorf("partial txn visible: %v", res.KVs)
					return
				}
				if len(res.KVs) == 2 && res.KVs[0].ModRevision != res.Rev {
					errs <- fmt.Errorf("read rev %d but data at %d", res.Rev, res.KVs[0].ModRevision)
					return
				}
				// Historical read a little back; may be compacted meanwhile.
				rev := res.Rev - 5
				if rev > 1 {
					h, err := s.Range([]byte("x"), []byte("z"), RangeOptions{Rev: rev})
					if err == nil && len(h.KVs) == 2 && h.KVs[0].ModRevision != rev {
						errs <- fmt.Errorf("historical read at %d gave %v", rev, h.KVs)
						return
					}
					if err != nil && err != ErrCompacted {
						errs <- err
						return
					}
				}
				start := max(s.CompactRev(), res.Rev-3)
				per := map[int64]int{}
				err = s.Events(start, 0, func(ev *mvccpb.Event) bool {
					per[ev.Kv.ModRevision]++
					return true
				})
				if err != nil && err != ErrCompacted {
					errs <- err
					return
				}
				for r, n := range per {
					if n != 2 && r > 1 {
						errs <- fmt.Errorf("revision %d replayed %d events", r, n)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if s.Rev() != writes+1 {
		t.Fatalf("rev %d", s.Rev())
	}
	checkIndexMatchesPebble(t, s)
}

// TestCompactDeleteAndRecreateInOneTxn covers a key deleted and re-created by
// the txn at the compaction revision: the re-created value must survive.
func TestCompactDeleteAndRecreateInOneTxn(t *testing.T) {
	db, _ := newTestDB(t)
	s := newTestStore(t, db)
	put(t, s, "k", "1", 0) // 2
	w := s.Write()         // 3
	w.DeleteRange([]byte("k"), nil)
	w.Put([]byte("k"), []byte("2"), 0)
	w.Put([]byte("j"), []byte("1"), 0)
	w.DeleteRange([]byte("j"), nil)
	mustCommit(t, w)
	done, err := s.Compact(3)
	if err != nil {
		t.Fatal(err)
	}
	<-done
	checkIndexMatchesPebble(t, s)
	checkKV(t, get(t, s, "k", 3), keyValue("k", "2", 3, 3, 1, 0))
	if kv := get(t, s, "j", 3); kv != nil {
		t.Fatalf("j: %v", kv)
	}
	var evs []string
	if err := s.Events(3, 3, func(ev *mvccpb.Event) bool {
		evs = append(evs, fmt.Sprintf("%s %s", ev.Type, ev.Kv.Key))
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"PUT k", "DELETE j"}; !slices.Equal(evs, want) {
		t.Fatalf("events %q, want %q", evs, want)
	}
	s.Close()
	s2 := newTestStore(t, db)
	checkKV(t, get(t, s2, "k", 0), keyValue("k", "2", 3, 3, 1, 0))
	put(t, s2, "k", "3", 0)
	checkKV(t, get(t, s2, "k", 0), keyValue("k", "3", 3, 4, 2, 0))
	checkIndexMatchesPebble(t, s2)
}
