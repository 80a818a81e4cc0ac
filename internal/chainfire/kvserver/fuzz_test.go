package kvserver

import (
	"bytes"
	"sort"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"

	"github.com/photoncloud/photoncloud/internal/chainfire/mvcc"
)

// inRange is etcd's key/range_end convention, written out independently.
func inRange(k, key, end []byte) bool {
	switch {
	case len(end) == 0:
		return bytes.Equal(k, key)
	case len(end) == 1 && end[0] == 0:
		return bytes.Compare(k, key) >= 0
	default:
		return bytes.Compare(k, key) >= 0 && bytes.Compare(k, end) < 0
	}
}

// FuzzExecuteRange checks executeRange's handling of keys, limits, sorting
// and revision filters on a real MVCC store, read at the current revision and
// inside a write txn: no panic, Count is the number of keys in range, every
// returned key is in range and passes the filters, limits and More agree,
// sort orders hold.
func FuzzExecuteRange(f *testing.F) {
	f.Add([]byte("a"), []byte{}, int64(0), int32(0), int32(0), int64(0), int64(0), false, false)
	f.Add([]byte("a"), []byte{0}, int64(2), int32(0), int32(0), int64(0), int64(0), false, false)
	f.Add([]byte{0}, []byte{0}, int64(3), int32(2), int32(3), int64(4), int64(9), true, false)
	f.Add([]byte("b"), []byte("d"), int64(1), int32(1), int32(4), int64(0), int64(0), false, true)
	f.Add([]byte("z"), []byte("a"), int64(-1), int32(5), int32(-2), int64(-3), int64(100), false, false)
	f.Add([]byte{}, []byte{0}, int64(1), int32(0), int32(1), int64(0), int64(5), false, false)

	db, err := pebble.Open("db", &pebble.Options{FS: vfs.NewMem()})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = db.Close() })
	kv, err := mvcc.New(db, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = kv.Close() })
	keys := []string{"\x00", "a", "a\x00", "ab", "b", "b\x00", "bc", "c", "d", "zz", "\xff"}
	for i, k := range keys {
		w := kv.Write()
		w.Put([]byte(k), []byte{byte('z' - i)}, 0)
		if _, _, err := w.Commit(); err != nil {
			f.Fatal(err)
		}
	}
	// A second version of some keys, and a deleted one.
	for _, k := range []string{"b", "ab", "zz"} {
		w := kv.Write()
		w.Put([]byte(k), []byte("m"), 0)
		if _, _, err := w.Commit(); err != nil {
			f.Fatal(err)
		}
	}
	w := kv.Write()
	w.DeleteRange([]byte("c"), nil)
	if _, _, err := w.Commit(); err != nil {
		f.Fatal(err)
	}

	f.Fuzz(func(t *testing.T, key, end []byte, limit int64, order, target int32, minMod, maxMod int64, keysOnly, countOnly bool) {
		if order < 0 || order > 2 || target < 0 || target > 4 {
			return // refused by checkRangeRequest before reaching here
		}
		r := &pb.RangeRequest{
			Key: key, RangeEnd: end, Limit: limit,
			SortOrder: pb.RangeRequest_SortOrder(order), SortTarget: pb.RangeRequest_SortTarget(target),
			MinModRevision: minMod, MaxModRevision: maxMod, KeysOnly: keysOnly, CountOnly: countOnly,
		}
		all, err := kv.Range([]byte{0}, []byte{0}, mvcc.RangeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		want := 0
		for _, x := range all.KVs {
			if inRange(x.Key, key, end) {
				want++
			}
		}
		check := func(where string, resp *pb.RangeResponse, err error) {
			t.Helper()
			if err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			if int(resp.Count) != want {
				t.Fatalf("%s %v: Count %d, want %d", where, r, resp.Count, want)
			}
			if countOnly && len(resp.Kvs) != 0 {
				t.Fatalf("%s: count only returned %d kvs", where, len(resp.Kvs))
			}
			if limit > 0 && int64(len(resp.Kvs)) > limit {
				t.Fatalf("%s: %d kvs over limit %d", where, len(resp.Kvs), limit)
			}
			if resp.More && (limit <= 0 || int64(len(resp.Kvs)) != limit) {
				t.Fatalf("%s: More with %d kvs, limit %d", where, len(resp.Kvs), limit)
			}
			seen := map[string]bool{}
			for _, x := range resp.Kvs {
				if !inRange(x.Key, key, end) {
					t.Fatalf("%s: key %q outside [%q, %q)", where, x.Key, key, end)
				}
				if seen[string(x.Key)] {
					t.Fatalf("%s: key %q twice", where, x.Key)
				}
				seen[string(x.Key)] = true
				if (minMod != 0 && x.ModRevision < minMod) || (maxMod != 0 && x.ModRevision > maxMod) {
					t.Fatalf("%s: mod revision %d outside [%d, %d]", where, x.ModRevision, minMod, maxMod)
				}
				if keysOnly && len(x.Value) != 0 {
					t.Fatalf("%s: keys only returned a value", where)
				}
			}
			if !countOnly && limit <= 0 && minMod == 0 && maxMod == 0 && len(resp.Kvs) != want {
				t.Fatalf("%s: %d kvs, want %d", where, len(resp.Kvs), want)
			}
			less := sortLess(r.SortTarget)
			sorted := func(desc bool) bool {
				return sort.SliceIsSorted(resp.Kvs, func(i, j int) bool {
					if desc {
						return less(resp.Kvs[j], resp.Kvs[i])
					}
					return less(resp.Kvs[i], resp.Kvs[j])
				})
			}
			switch {
			case r.SortOrder == pb.RangeRequest_DESCEND && !sorted(true):
				t.Fatalf("%s: not in descending %v order: %v", where, r.SortTarget, keyList(resp.Kvs))
			case r.SortOrder != pb.RangeRequest_DESCEND && !sorted(false):
				t.Fatalf("%s: not in ascending %v order: %v", where, r.SortTarget, keyList(resp.Kvs))
			}
		}
		resp, err := executeRange(pinned{kv: kv, at: kv.Rev()}, proto.CloneOf(r))
		check("pinned", resp, err)
		w := kv.Write()
		defer w.Abort()
		resp, err = executeRange(&txnState{w: w, begin: kv.Rev()}, proto.CloneOf(r))
		check("txn", resp, err)
	})
}

func keyList(kvs []*mvccpb.KeyValue) []string {
	var out []string
	for _, x := range kvs {
		out = append(out, string(x.Key))
	}
	return out
}
