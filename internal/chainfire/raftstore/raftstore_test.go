package raftstore

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func openDB(t *testing.T, fs vfs.FS) *pebble.DB {
	t.Helper()
	db, err := pebble.Open("db", &pebble.Options{FS: fs})
	if err != nil {
		t.Fatalf("open pebble: %v", err)
	}
	return db
}

func openStore(t *testing.T, db *pebble.DB) *Store {
	t.Helper()
	s, err := Open(db)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func ent(index, term uint64, data string) *raftpb.Entry {
	return &raftpb.Entry{Index: proto.Uint64(index), Term: proto.Uint64(term), Type: raftpb.EntryNormal.Enum(), Data: []byte(data)}
}

func ents(from, to, term uint64) []*raftpb.Entry {
	var out []*raftpb.Entry
	for i := from; i <= to; i++ {
		out = append(out, ent(i, term, fmt.Sprintf("e%d.t%d", i, term)))
	}
	return out
}

func hardState(term, vote, commit uint64) *raftpb.HardState {
	return &raftpb.HardState{Term: proto.Uint64(term), Vote: proto.Uint64(vote), Commit: proto.Uint64(commit)}
}

// checkLog asserts that s serves exactly the entries [first, last] with the
// given terms and data as produced by ents/ent.
func checkLog(t *testing.T, s *Store, first, last uint64, term func(i uint64) uint64) {
	t.Helper()
	ms := s.Storage()
	fi, _ := ms.FirstIndex()
	li, _ := ms.LastIndex()
	if fi != first || li != last {
		t.Fatalf("log spans [%d, %d], want [%d, %d]", fi, li, first, last)
	}
	if first > last {
		return
	}
	got, err := ms.Entries(first, last+1, 1<<62)
	if err != nil {
		t.Fatalf("Entries: %v", err)
	}
	for i, e := range got {
		idx := first + uint64(i)
		want := ent(idx, term(idx), fmt.Sprintf("e%d.t%d", idx, term(idx)))
		if !proto.Equal(e, want) {
			t.Fatalf("entry %d = %v, want %v", idx, e, want)
		}
	}
}

// persistedIndexes lists the entry keys in the database.
func persistedIndexes(t *testing.T, db *pebble.DB) []uint64 {
	t.Helper()
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: entryPrefix, UpperBound: []byte("rm")})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var out []uint64
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		if !bytes.HasPrefix(k, entryPrefix) || len(k) != len(entryPrefix)+8 {
			t.Fatalf("unexpected key %x", k)
		}
		var idx uint64
		for _, b := range k[len(entryPrefix):] {
			idx = idx<<8 | uint64(b)
		}
		out = append(out, idx)
	}
	return out
}

func TestFreshStore(t *testing.T) {
	db := openDB(t, vfs.NewMem())
	defer db.Close()
	s := openStore(t, db)
	if !s.Fresh() {
		t.Fatal("empty database: Fresh() = false")
	}
	hs, _, err := s.Storage().InitialState()
	if err != nil {
		t.Fatal(err)
	}
	if hs.GetTerm() != 0 || hs.GetCommit() != 0 {
		t.Fatalf("fresh hard state %v", hs)
	}
	// Nothing to save is a no-op.
	if err := s.Save(nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(&raftpb.HardState{}, nil); err != nil {
		t.Fatal(err)
	}
	if s2 := openStore(t, db); !s2.Fresh() {
		t.Fatal("empty saves made the store non-fresh")
	}
}

func TestSaveOpenRoundTrip(t *testing.T) {
	fs := vfs.NewMem()
	db := openDB(t, fs)
	s := openStore(t, db)
	if err := s.Save(hardState(1, 7, 0), ents(1, 5, 1)); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(hardState(2, 7, 4), ents(6, 9, 2)); err != nil {
		t.Fatal(err)
	}
	// A commit-only change is not written by itself; it rides along with the
	// next write, here entries without a hard state.
	if err := s.Save(hardState(2, 7, 9), nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(nil, ents(10, 10, 2)); err != nil {
		t.Fatal(err)
	}
	term := func(i uint64) uint64 {
		if i <= 5 {
			return 1
		}
		return 2
	}
	checkLog(t, s, 1, 10, term)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = openDB(t, fs)
	defer db.Close()
	s = openStore(t, db)
	if s.Fresh() {
		t.Fatal("reopened store claims to be fresh")
	}
	checkLog(t, s, 1, 10, term)
	hs, _, _ := s.Storage().InitialState()
	if !proto.Equal(hs, hardState(2, 7, 9)) {
		t.Fatalf("hard state after reopen = %v", hs)
	}
}

func TestSaveTruncatesConflictingTail(t *testing.T) {
	fs := vfs.NewMem()
	db := openDB(t, fs)
	s := openStore(t, db)
	if err := s.Save(hardState(1, 1, 3), ents(1, 10, 1)); err != nil {
		t.Fatal(err)
	}
	// A new leader of term 2 overwrites from index 6 with a shorter log.
	if err := s.Save(hardState(2, 2, 3), ents(6, 7, 2)); err != nil {
		t.Fatal(err)
	}
	term := func(i uint64) uint64 {
		if i >= 6 {
			return 2
		}
		return 1
	}
	checkLog(t, s, 1, 7, term)
	if got := persistedIndexes(t, db); len(got) != 7 || got[6] != 7 {
		t.Fatalf("persisted indexes after truncation = %v, want 1..7", got)
	}
	// Overwriting in the middle without shortening also keeps later entries
	// out of the way: replace 7 only.
	if err := s.Save(hardState(3, 3, 3), []*raftpb.Entry{ent(7, 3, "e7.t3")}); err != nil {
		t.Fatal(err)
	}
	term2 := func(i uint64) uint64 {
		switch {
		case i == 7:
			return 3
		case i >= 6:
			return 2
		}
		return 1
	}
	checkLog(t, s, 1, 7, term2)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openDB(t, fs)
	defer db.Close()
	s = openStore(t, db)
	checkLog(t, s, 1, 7, term2)
	// Appending after the truncation continues the log.
	if err := s.Save(nil, ents(8, 9, 3)); err != nil {
		t.Fatal(err)
	}
	li, _ := s.Storage().LastIndex()
	if li != 9 {
		t.Fatalf("last index = %d, want 9", li)
	}
}

func TestCompactKeepsLaterEntriesAndSnapshotMeta(t *testing.T) {
	fs := vfs.NewMem()
	db := openDB(t, fs)
	s := openStore(t, db)
	if err := s.Save(hardState(1, 1, 20), ents(1, 20, 1)); err != nil {
		t.Fatal(err)
	}
	cs := &raftpb.ConfState{Voters: []uint64{1}, AutoLeave: proto.Bool(false)}
	if err := s.Compact(12, cs, []byte("view@12")); err != nil {
		t.Fatal(err)
	}
	term1 := func(uint64) uint64 { return 1 }
	checkLog(t, s, 13, 20, term1)
	if got := persistedIndexes(t, db); len(got) != 8 || got[0] != 13 || got[7] != 20 {
		t.Fatalf("persisted indexes after compaction = %v, want 13..20", got)
	}
	// Compacting at or below the snapshot is a no-op, not an error.
	for _, idx := range []uint64{12, 5} {
		if err := s.Compact(idx, cs, nil); err != nil {
			t.Fatalf("Compact(%d) after Compact(12): %v", idx, err)
		}
	}
	checkLog(t, s, 13, 20, term1)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = openDB(t, fs)
	s = openStore(t, db)
	if s.Fresh() {
		t.Fatal("compacted store claims to be fresh")
	}
	checkLog(t, s, 13, 20, term1)
	snap, err := s.Storage().Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	md := snap.GetMetadata()
	if string(snap.Data) != "view@12" {
		t.Fatalf("snapshot data after reopen = %q, want the data given to Compact", snap.Data)
	}
	if md.GetIndex() != 12 || md.GetTerm() != 1 || !proto.Equal(md.GetConfState(), cs) {
		t.Fatalf("snapshot metadata after reopen = %v", md)
	}
	if tm, err := s.Storage().Term(12); err != nil || tm != 1 {
		t.Fatalf("Term(12) = %d, %v; want 1 (from the snapshot record)", tm, err)
	}
	// The log goes on after a reopen and a second compaction.
	if err := s.Save(hardState(2, 1, 25), ents(21, 25, 2)); err != nil {
		t.Fatal(err)
	}
	if err := s.Compact(22, cs, nil); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openDB(t, fs)
	defer db.Close()
	s = openStore(t, db)
	checkLog(t, s, 23, 25, func(uint64) uint64 { return 2 })
	snap, _ = s.Storage().Snapshot()
	if snap.GetMetadata().GetIndex() != 22 || snap.GetMetadata().GetTerm() != 2 {
		t.Fatalf("second snapshot metadata = %v", snap.GetMetadata())
	}
	hs, _, _ := s.Storage().InitialState()
	if hs.GetCommit() != 25 || hs.GetTerm() != 2 {
		t.Fatalf("hard state = %v", hs)
	}
}

func TestCompactWholeLog(t *testing.T) {
	fs := vfs.NewMem()
	db := openDB(t, fs)
	s := openStore(t, db)
	if err := s.Save(hardState(1, 1, 5), ents(1, 5, 1)); err != nil {
		t.Fatal(err)
	}
	if err := s.Compact(5, &raftpb.ConfState{Voters: []uint64{1}}, nil); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openDB(t, fs)
	defer db.Close()
	s = openStore(t, db)
	checkLog(t, s, 6, 5, nil)
	if err := s.Save(hardState(1, 1, 6), ents(6, 6, 1)); err != nil {
		t.Fatal(err)
	}
	checkLog(t, s, 6, 6, func(uint64) uint64 { return 1 })
}

// TestSaveIsDurable crashes the file system right after Save and Compact
// returned: entries and vote must survive, because raft may already have
// acted on them.
func TestSaveIsDurable(t *testing.T) {
	fs := vfs.NewCrashableMem()
	db := openDB(t, fs)
	s := openStore(t, db)
	if err := s.Save(hardState(3, 1, 0), ents(1, 8, 3)); err != nil {
		t.Fatal(err)
	}
	crashed := fs.CrashClone(vfs.CrashCloneCfg{})
	if err := s.Compact(4, &raftpb.ConfState{Voters: []uint64{1}}, nil); err != nil {
		t.Fatal(err)
	}
	crashed2 := fs.CrashClone(vfs.CrashCloneCfg{})
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = openDB(t, crashed)
	s = openStore(t, db)
	checkLog(t, s, 1, 8, func(uint64) uint64 { return 3 })
	hs, _, _ := s.Storage().InitialState()
	if hs.GetTerm() != 3 || hs.GetVote() != 1 {
		t.Fatalf("hard state after crash = %v", hs)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = openDB(t, crashed2)
	defer db.Close()
	s = openStore(t, db)
	checkLog(t, s, 5, 8, func(uint64) uint64 { return 3 })
}

func TestOpenCorruptEntry(t *testing.T) {
	db := openDB(t, vfs.NewMem())
	defer db.Close()
	if err := db.Set(entryKey(1), []byte{0xff, 0xff, 0xff}, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(db); err == nil {
		t.Fatal("Open accepted an undecodable raft entry")
	}
}

// TestSaveConcurrentWithCompact mirrors how kvserver uses the store: Save
// runs on the raft goroutine while Compact runs on the apply goroutine. Run
// with -race: the two must not touch shared state unsynchronized.
func TestSaveConcurrentWithCompact(t *testing.T) {
	db := openDB(t, vfs.NewMem())
	defer db.Close()
	s := openStore(t, db)
	if err := s.Save(hardState(1, 1, 1), ents(1, 1, 1)); err != nil {
		t.Fatal(err)
	}
	const n = 300
	applied := make(chan uint64, n)
	done := make(chan error, 1)
	go func() {
		// The "apply loop": compacts up to what the raft loop reported applied.
		var err error
		for idx := range applied {
			if idx%10 == 0 && err == nil {
				err = s.Compact(idx-5, &raftpb.ConfState{Voters: []uint64{1}}, nil)
			}
		}
		done <- err
	}()
	for i := uint64(2); i <= n; i++ {
		if err := s.Save(hardState(1, 1, i), ents(i, i, 1)); err != nil {
			t.Fatal(err)
		}
		applied <- i
	}
	close(applied)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	li, _ := s.Storage().LastIndex()
	if li != n {
		t.Fatalf("last index %d, want %d", li, n)
	}
}
