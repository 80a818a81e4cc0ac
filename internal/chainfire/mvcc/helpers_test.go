package mvcc

import (
	"errors"
	"fmt"
	"sort"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"
)

func openMemDB(t testing.TB, fs vfs.FS) *pebble.DB {
	t.Helper()
	db, err := pebble.Open("", &pebble.Options{FS: fs, Logger: quietLogger{}})
	if err != nil {
		t.Fatalf("open pebble: %v", err)
	}
	return db
}

// quietLogger keeps Pebble's informational messages out of test output.
type quietLogger struct{}

func (quietLogger) Infof(string, ...any)           {}
func (quietLogger) Errorf(string, ...any)          {}
func (quietLogger) Fatalf(format string, a ...any) { panic(fmt.Sprintf(format, a...)) }

// newTestDB returns an in-memory Pebble DB closed at the end of the test
// (after the stores, whose cleanups run first because they register later).
func newTestDB(t testing.TB) (*pebble.DB, vfs.FS) {
	t.Helper()
	fs := vfs.NewMem()
	db := openMemDB(t, fs)
	t.Cleanup(func() { _ = db.Close() })
	return db, fs
}

func newTestStore(t testing.TB, db *pebble.DB) *Store {
	t.Helper()
	s, err := New(db, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func mustCommit(t testing.TB, w *TxnWrite) (int64, []*mvccpb.Event) {
	t.Helper()
	rev, evs, err := w.Commit()
	if err != nil {
		t.Fatalf("commit: %v", err)
	}
	return rev, evs
}

func put(t testing.TB, s *Store, key, val string, lease int64) int64 {
	t.Helper()
	w := s.Write()
	w.Put([]byte(key), []byte(val), lease)
	rev, _ := mustCommit(t, w)
	return rev
}

func del(t testing.TB, s *Store, key, end string) (int64, int) {
	t.Helper()
	w := s.Write()
	var e []byte
	if end != "" {
		e = []byte(end)
	}
	n := len(w.DeleteRange([]byte(key), e))
	rev, _ := mustCommit(t, w)
	return rev, n
}

func get(t testing.TB, s *Store, key string, rev int64) *mvccpb.KeyValue {
	t.Helper()
	res, err := s.Range([]byte(key), nil, RangeOptions{Rev: rev})
	if err != nil {
		t.Fatalf("get %q@%d: %v", key, rev, err)
	}
	switch len(res.KVs) {
	case 0:
		return nil
	case 1:
		return res.KVs[0]
	}
	t.Fatalf("get %q returned %d kvs", key, len(res.KVs))
	return nil
}

func rangeKeys(t testing.TB, s *Store, key, end string, ro RangeOptions) ([]string, *RangeResult) {
	t.Helper()
	var e []byte
	if end != "" {
		e = []byte(end)
	}
	res, err := s.Range([]byte(key), e, ro)
	if err != nil {
		t.Fatalf("range [%q,%q): %v", key, end, err)
	}
	var ks []string
	for _, kv := range res.KVs {
		ks = append(ks, string(kv.Key))
	}
	return ks, res
}

func waitCompaction(s *Store) {
	s.compMu.Lock()
	ch := s.lastCompaction
	s.compMu.Unlock()
	if ch != nil {
		<-ch
	}
}

// pebbleRevs lists the revision keys in Pebble.
func pebbleRevs(t testing.TB, db *pebble.DB) []revision {
	t.Helper()
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: revSpaceStart, UpperBound: revSpaceEnd})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var out []revision
	for it.First(); it.Valid(); it.Next() {
		r, _, err := parseRevKey(it.Key())
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// indexRevs lists every revision referenced by the index, sorted.
func indexRevs(s *Store) []revision {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []revision
	s.index.Ascend(func(ki *keyIndex) bool {
		out = ki.appendRevs(out, 1<<62)
		return true
	})
	sort.Slice(out, func(i, j int) bool { return out[j].greaterThan(out[i]) })
	return out
}

// checkIndexMatchesPebble asserts that after physical compaction the
// revision keys in Pebble are exactly those the index references.
func checkIndexMatchesPebble(t testing.TB, s *Store) {
	t.Helper()
	waitCompaction(s)
	ir, pr := indexRevs(s), pebbleRevs(t, s.db)
	if len(ir) != len(pr) {
		t.Fatalf("index has %d revisions, pebble %d:\nindex  %v\npebble %v", len(ir), len(pr), ir, pr)
	}
	for i := range ir {
		if ir[i] != pr[i] {
			t.Fatalf("revision %d differs: index %v pebble %v", i, ir[i], pr[i])
		}
	}
}

func kvEqual(a, b *mvccpb.KeyValue) bool { return proto.Equal(a, b) }

func wantErr(t testing.TB, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("got error %v, want %v", err, want)
	}
}

func keyValue(key, val string, create, mod, ver, lease int64) *mvccpb.KeyValue {
	return &mvccpb.KeyValue{Key: []byte(key), Value: []byte(val), CreateRevision: create, ModRevision: mod, Version: ver, Lease: lease}
}

func checkKV(t testing.TB, got, want *mvccpb.KeyValue) {
	t.Helper()
	if !kvEqual(got, want) {
		t.Fatalf("got kv %v, want %v", got, want)
	}
}
