package mvcc

import (
	"bytes"
	"testing"
)

// FuzzRangeKeys checks Range's key/end handling: no panic, results within
// the range, in order, and equal to a brute-force filter; inside a txn with
// pending changes too.
func FuzzRangeKeys(f *testing.F) {
	seeds := [][2][]byte{
		{[]byte("a"), nil},
		{[]byte("a"), []byte{0}},
		{nil, []byte{0}},
		{[]byte{0}, []byte{0}},
		{[]byte("foo"), []byte("fop")},
		{[]byte("z"), []byte("a")},
		{[]byte("b"), []byte("b")},
		{[]byte("b"), []byte("b\x00")},
		{[]byte{0xff}, []byte{0xff, 0xff}},
		{nil, nil},
		{[]byte{}, []byte{}},
	}
	for _, sd := range seeds {
		f.Add(sd[0], sd[1], int64(0))
		f.Add(sd[0], sd[1], int64(2))
	}
	db, _ := newTestDB(f)
	s := newTestStore(f, db)
	keys := []string{"", "\x00", "a", "a\x00", "ab", "b", "b\x00", "foo", "foo/1", "fop", "z", "\xff", "\xff\xff"}
	for _, k := range keys {
		if k != "" {
			put(f, s, k, "v", 0)
		}
	}
	del(f, s, "ab", "")
	f.Fuzz(func(t *testing.T, key, end []byte, limit int64) {
		kr := newKeyRange(key, end)
		var want [][]byte
		for _, k := range keys {
			if k != "" && k != "ab" && kr.contains([]byte(k)) {
				want = append(want, []byte(k))
			}
		}
		check := func(res *RangeResult, want [][]byte) {
			t.Helper()
			if res.Count != len(want) {
				t.Fatalf("[%q,%q): count %d, want %d", key, end, res.Count, len(want))
			}
			if limit > 0 && int64(len(want)) > limit {
				want = want[:limit]
			}
			if len(res.KVs) != len(want) {
				t.Fatalf("[%q,%q) limit %d: %d kvs, want %d", key, end, limit, len(res.KVs), len(want))
			}
			for i, kv := range res.KVs {
				if !bytes.Equal(kv.Key, want[i]) {
					t.Fatalf("[%q,%q): kv %d is %q, want %q", key, end, i, kv.Key, want[i])
				}
				if bytes.Compare(kv.Key, key) < 0 {
					t.Fatalf("[%q,%q): %q below key", key, end, kv.Key)
				}
				if !kr.single && !kr.open && bytes.Compare(kv.Key, end) >= 0 {
					t.Fatalf("[%q,%q): %q not below end", key, end, kv.Key)
				}
			}
		}
		res, err := s.Range(key, end, RangeOptions{Limit: limit})
		if err != nil {
			t.Fatal(err)
		}
		check(res, want)

		// Inside a txn that deletes "a" and creates "ab" (pending changes).
		w := s.Write()
		defer w.Abort()
		w.DeleteRange([]byte("a"), nil)
		w.Put([]byte("ab"), []byte("x"), 0)
		var wantTxn [][]byte
		for _, k := range keys {
			if k != "" && k != "a" && kr.contains([]byte(k)) {
				wantTxn = append(wantTxn, []byte(k))
			}
		}
		res, err = w.Range(key, end, RangeOptions{Limit: limit})
		if err != nil {
			t.Fatal(err)
		}
		check(res, wantTxn)
	})
}
