package mvcc

import (
	"testing"

	"google.golang.org/protobuf/proto"
)

// TestPutNoPrevMatchesPut checks that the index-only put writes exactly what
// Put writes: same create revision, version, lease and events, through
// creation, overwrite, delete and re-creation, also twice in one txn.
func TestPutNoPrevMatchesPut(t *testing.T) {
	dbA, _ := newTestDB(t)
	dbB, _ := newTestDB(t)
	a, b := newTestStore(t, dbA), newTestStore(t, dbB)
	type step func(w *TxnWrite, noPrev bool)
	put := func(k, v string, lease int64) step {
		return func(w *TxnWrite, noPrev bool) {
			if noPrev {
				w.PutNoPrev([]byte(k), []byte(v), lease)
			} else {
				w.Put([]byte(k), []byte(v), lease)
			}
		}
	}
	del := func(k string) step {
		return func(w *TxnWrite, _ bool) { w.DeleteRange([]byte(k), nil) }
	}
	txns := [][]step{
		{put("a", "1", 0)},
		{put("a", "2", 7)},
		{put("a", "3", 0), put("a", "4", 0)},
		{del("a")},
		{put("a", "5", 0)},
		{del("a"), put("a", "6", 0)},
		{put("b", "1", 0), put("b", "2", 0)},
	}
	for i, steps := range txns {
		wa, wb := a.Write(), b.Write()
		for _, st := range steps {
			st(wa, false)
			st(wb, true)
		}
		ra, evA, errA := wa.Commit()
		rb, evB, errB := wb.Commit()
		if errA != nil || errB != nil || ra != rb || len(evA) != len(evB) {
			t.Fatalf("txn %d: rev %d/%d err %v/%v events %d/%d", i, ra, rb, errA, errB, len(evA), len(evB))
		}
		for j := range evA {
			if !proto.Equal(evA[j].Kv, evB[j].Kv) || evA[j].Type != evB[j].Type {
				t.Fatalf("txn %d event %d: Put %v, PutNoPrev %v", i, j, evA[j], evB[j])
			}
		}
	}
	ha, _, _, _ := a.HashKV(0)
	hb, _, _, _ := b.HashKV(0)
	if ha != hb {
		t.Fatalf("HashKV differs: %d vs %d", ha, hb)
	}
}
