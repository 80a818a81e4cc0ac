package etcdcompat

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// fuzzRevisions is roughly the number of revisions fuzzData writes; fuzzed
// revisions are folded into [-2, fuzzRevisions+3] so that most inputs hit
// history, some hit the compacted part and some the future.
const fuzzRevisions = 24

// fuzzData builds a small history: several versions, deletes, re-creates,
// a leased key, binary keys, then a compaction in the middle.
func fuzzData() []step {
	return []step{
		put("a", "1"), put("b", "2"), put("a", "3"), put("c/1", "x"), put("c/2", "y"),
		put("c/3", "z"), del("b"), put("b", "4"), grant(5151, 600),
		putReq(&pb.PutRequest{Key: b("d"), Value: b("leased"), Lease: 5151}),
		put("\x00", "zero"), put("\xff\xfe", "high"), put("a", "5"),
		delReq(&pb.DeleteRangeRequest{Key: b("c/2"), RangeEnd: b("c/3")}),
		put("c/2", "again"), put("e", ""), put("f", "6"), put("a", "7"),
		compact(4, true),
		put("g", "8"), put("c/1", "x2"), put("b", "9"),
	}
}

// FuzzDifferentialRange sends the same fuzzed Range (or RangeStream) to etcd
// and the candidate over the same history and compares the answers. Without
// -fuzz it runs the seed corpus, which is part of the normal suite.
func FuzzDifferentialRange(f *testing.F) {
	p := startPair(f)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	refBase, err := currentRevision(ctx, p.ref)
	if err != nil {
		f.Fatal(err)
	}
	candBase, err := currentRevision(ctx, p.cand)
	if err != nil {
		f.Fatal(err)
	}
	ref, cand := newEnv(p.ref, refBase), newEnv(p.cand, candBase)
	f.Cleanup(ref.close)
	f.Cleanup(cand.close)
	for i, s := range fuzzData() {
		r, c := result(ref, s.op), result(cand, s.op)
		if _, bad := r.(errResult); bad {
			f.Fatalf("fuzz setup step %d (%s) failed on etcd: %s", i, s, show(r))
		}
		if d := diff(r, c); d != "" {
			f.Errorf("fuzz setup step %d (%s) differs (-etcd +%s):\n%s", i, s, candidateName, d)
		}
	}

	type seed struct {
		key, end                       string
		limit, rev                     int64
		order, target, flags           uint8
		minMod, maxMod, minCre, maxCre int64
	}
	for _, s := range []seed{
		{key: "a"},
		{key: "a", end: "\x00"},
		{key: "\x00", end: "\x00", limit: 3},
		{key: "c/", end: "c0", rev: 10},
		{key: "c/", end: "c0", rev: 3}, // compacted
		{key: "a", rev: 99},            // future
		{key: "a", end: "z", order: 2, target: 4, limit: 2},
		{key: "a", end: "z", order: 1, target: 1, flags: 2},
		{key: "a", end: "z", flags: 4},
		{key: "a", end: "z", flags: 8, limit: 2}, // RangeStream
		{key: "a", end: "z", flags: 8 | 4},       // RangeStream count only
		{key: "a", end: "z", minMod: 10, maxCre: 12, limit: 1},
		{key: "d", flags: 2}, // keys_only of a leased key
		{key: "", end: "z"},  // empty key
		{key: "z", end: "a"}, // end before key
		{key: "\xff", end: "\x00", order: 2, target: 2, flags: 1},
	} {
		f.Add([]byte(s.key), []byte(s.end), s.limit, s.rev, s.order, s.target, s.flags, s.minMod, s.maxMod, s.minCre, s.maxCre)
	}

	// ETCDCOMPAT_FUZZ_MASK clears flag bits (1 serializable, 2 keys_only,
	// 4 count_only, 8 RangeStream) from every input, to fuzz past a known
	// mismatch that is not fixed yet.
	var mask uint8
	if m := os.Getenv("ETCDCOMPAT_FUZZ_MASK"); m != "" {
		v, err := strconv.ParseUint(m, 0, 8)
		if err != nil {
			f.Fatalf("ETCDCOMPAT_FUZZ_MASK=%q: %v", m, err)
		}
		mask = uint8(v)
	}

	f.Fuzz(func(t *testing.T, key, end []byte, limit, rev int64, order, target, flags uint8, minMod, maxMod, minCre, maxCre int64) {
		flags &^= mask
		req := &pb.RangeRequest{
			Key: key, RangeEnd: end,
			Limit:    fold(limit, -2, 30),
			Revision: fold(rev, -2, fuzzRevisions+3),
			// etcd panics on sort targets outside the enum, so stay inside it
			SortOrder:         pb.RangeRequest_SortOrder(order % 3),
			SortTarget:        pb.RangeRequest_SortTarget(target % 5),
			Serializable:      flags&1 != 0,
			KeysOnly:          flags&2 != 0,
			CountOnly:         flags&4 != 0,
			MinModRevision:    fold(minMod, 0, fuzzRevisions+3),
			MaxModRevision:    fold(maxMod, 0, fuzzRevisions+3),
			MinCreateRevision: fold(minCre, 0, fuzzRevisions+3),
			MaxCreateRevision: fold(maxCre, 0, fuzzRevisions+3),
		}
		var o op = rangeOp{req}
		if flags&8 != 0 {
			o = rangeStreamOp{req}
		}
		r, c := result(ref, o), result(cand, o)
		if d := diff(r, c); d != "" {
			t.Errorf("%s\nresponse differs (-etcd +%s):\n%s\n  etcd:      %s\n  %s: %s",
				o, candidateName, d, show(r), candidateName, show(c))
		}
		for _, v := range ref.takeViolations() {
			t.Errorf("etcd broke an invariant: %s", v)
		}
		for _, v := range cand.takeViolations() {
			t.Errorf("%s: invariant broken: %s", o, v)
		}
	})
}

// fold maps any int64 into [lo, hi] so fuzzed numbers land where data is;
// values already inside stay unchanged.
func fold(v, lo, hi int64) int64 {
	n := hi - lo + 1
	m := (v - lo) % n
	if m < 0 {
		m += n
	}
	return lo + m
}
