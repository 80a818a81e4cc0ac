package etcdcompat

import (
	"math"
	"strings"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// Error messages etcd v3.7 sends (rpctypes); scenarios assert etcd really
// sends them, then the candidate is compared against etcd's actual answer.
const (
	errEmptyKey       = "etcdserver: key is not provided"
	errKeyNotFound    = "etcdserver: key not found"
	errValueProvided  = "etcdserver: value is provided"
	errLeaseProvided  = "etcdserver: lease is provided"
	errTooManyOps     = "etcdserver: too many operations in txn request"
	errDuplicateKey   = "etcdserver: duplicate key given in txn request"
	errCompacted      = "etcdserver: mvcc: required revision has been compacted"
	errFutureRev      = "etcdserver: mvcc: required revision is a future revision"
	errLeaseNotFound  = "etcdserver: requested lease not found"
	errLeaseExist     = "etcdserver: lease already exists"
	errLeaseTTLTooBig = "etcdserver: too large lease TTL"
	errTooLarge       = "etcdserver: request is too large"
)

// sortData writes four keys whose key, value, version, create and mod
// revision orders all differ, so every sort target gives a distinct order
// (ties would leave the order to the sort algorithm). Final state, relative:
//
//	s/a = 9  version 3  create 2  mod 10
//	s/b = 2  version 1  create 4  mod 4
//	s/c = 4  version 2  create 1  mod 8
//	s/d = 1  version 4  create 3  mod 9
func sortData() []step {
	return []step{
		put("s/c", "3"), put("s/a", "1"), put("s/d", "8"), put("s/b", "2"), put("s/d", "0"),
		put("s/a", "5"), put("s/d", "6"), put("s/c", "4"), put("s/d", "1"), put("s/a", "9"),
	}
}

func sortSteps() []step {
	var out []step
	targets := []pb.RangeRequest_SortTarget{pb.RangeRequest_KEY, pb.RangeRequest_VERSION,
		pb.RangeRequest_CREATE, pb.RangeRequest_MOD, pb.RangeRequest_VALUE}
	orders := []pb.RangeRequest_SortOrder{pb.RangeRequest_NONE, pb.RangeRequest_ASCEND, pb.RangeRequest_DESCEND}
	for _, tg := range targets {
		for _, or := range orders {
			out = append(out, rng(&pb.RangeRequest{Key: b("s/"), RangeEnd: b("s0"), SortTarget: tg, SortOrder: or}))
			// limit applies after sorting, and more/count must still describe the full range
			out = append(out, rng(&pb.RangeRequest{Key: b("s/"), RangeEnd: b("s0"), SortTarget: tg, SortOrder: or, Limit: 2}))
		}
	}
	// keys_only while sorting by value must still sort by the (hidden) values
	out = append(out, rng(&pb.RangeRequest{Key: b("s/"), RangeEnd: b("s0"), SortTarget: pb.RangeRequest_VALUE,
		SortOrder: pb.RangeRequest_DESCEND, KeysOnly: true}))
	return out
}

func kvScenarios() []scenario {
	return []scenario{
		{name: "basic-put-get-delete", steps: []step{
			get("foo"),
			put("foo", "bar"),
			get("foo"),
			put("foo", "baz"),
			get("foo"),
			putReq(&pb.PutRequest{Key: b("foo"), Value: b("")}), // empty value is a value
			get("foo"),
			del("foo"),
			get("foo"),
			del("foo"), // deleting nothing does not bump the revision
			get("foo"),
			put("bin\x00\xff", "v\x00\x01"), // keys and values are bytes, not strings
			get("bin\x00\xff"),
			rng(&pb.RangeRequest{Key: b("bin"), RangeEnd: b("bio")}),
		}},
		{name: "versions-after-delete-and-recreate", steps: []step{
			put("k", "1"), put("k", "2"), put("k", "3"),
			get("k"),
			del("k"),
			put("k", "4"), // version restarts at 1, create_revision is the new one
			get("k"),
			rng(&pb.RangeRequest{Key: b("k"), Revision: 3}), // the old incarnation
			rng(&pb.RangeRequest{Key: b("k"), Revision: 4}), // deleted at 4: nothing
			rng(&pb.RangeRequest{Key: b("k"), Revision: 5}),
		}},
		{name: "range-prefix-fromkey-limit", steps: []step{
			put("a", "1"), put("a/1", "2"), put("a/2", "3"), put("a/3", "4"), put("b", "5"), put("b/x", "6"), put("c", "7"),
			rng(&pb.RangeRequest{Key: b("a/"), RangeEnd: b("a0")}),           // prefix a/
			rng(&pb.RangeRequest{Key: b("a"), RangeEnd: b("b")}),             // [a, b)
			rng(&pb.RangeRequest{Key: b("b"), RangeEnd: fromKey}),            // from key
			rng(&pb.RangeRequest{Key: []byte{0}, RangeEnd: fromKey}),         // everything
			rng(&pb.RangeRequest{Key: b("a"), RangeEnd: fromKey, Limit: 3}),  // more=true, count=7
			rng(&pb.RangeRequest{Key: b("a"), RangeEnd: fromKey, Limit: 7}),  // exactly all: more=false
			rng(&pb.RangeRequest{Key: b("a"), RangeEnd: fromKey, Limit: 8}),  // more than all
			rng(&pb.RangeRequest{Key: b("a"), RangeEnd: fromKey, Limit: -1}), // negative limit
			rng(&pb.RangeRequest{Key: b("a"), RangeEnd: fromKey, Limit: math.MaxInt64}),
			rng(&pb.RangeRequest{Key: b("c"), RangeEnd: b("a")}),                   // end < key: empty
			rng(&pb.RangeRequest{Key: b("a/1"), RangeEnd: b("a/1")}),               // end == key
			rng(&pb.RangeRequest{Key: b("zzz"), RangeEnd: fromKey}),                // nothing there
			rng(&pb.RangeRequest{Key: b("a"), RangeEnd: fromKey, CountOnly: true}), // count only
			rng(&pb.RangeRequest{Key: b("a"), RangeEnd: fromKey, KeysOnly: true}),  // keys only
			rng(&pb.RangeRequest{Key: b("a"), RangeEnd: fromKey, KeysOnly: true, Limit: 2}),
			rng(&pb.RangeRequest{Key: b("a"), RangeEnd: fromKey, CountOnly: true, Limit: 2}),
			rng(&pb.RangeRequest{Key: b("a"), RangeEnd: fromKey, Serializable: true}),
			rng(&pb.RangeRequest{Key: b("a"), RangeEnd: fromKey, Serializable: true, Limit: 1, Revision: 3}),
			rng(&pb.RangeRequest{Key: []byte{0}, RangeEnd: fromKey, CountOnly: true, KeysOnly: true}),
			rstream(&pb.RangeRequest{Key: b("a"), RangeEnd: fromKey}),
			rstream(&pb.RangeRequest{Key: b("a"), RangeEnd: fromKey, Limit: 3}),
			rstream(&pb.RangeRequest{Key: b("a"), RangeEnd: fromKey, CountOnly: true}),
			rstream(&pb.RangeRequest{Key: b("a"), RangeEnd: fromKey, Revision: 4}),
		}},
		{name: "range-stream-many-keys", steps: func() []step {
			// Enough keys that RangeStream must send several chunks.
			var s []step
			ops := make([]*pb.RequestOp, 0, 100)
			for i := range 100 {
				ops = append(ops, opPut("m/"+string(rune('a'+i/26))+string(rune('a'+i%26)), strings.Repeat("v", i)))
			}
			s = append(s, txn(&pb.TxnRequest{Success: ops}))
			s = append(s,
				rstream(&pb.RangeRequest{Key: b("m/"), RangeEnd: b("m0")}),
				rstream(&pb.RangeRequest{Key: b("m/"), RangeEnd: b("m0"), Limit: 37}),
				rstream(&pb.RangeRequest{Key: b("m/"), RangeEnd: b("m0"), KeysOnly: true}),
				// etcd v3.7 refuses sorted streams (Unimplemented)
				rstream(&pb.RangeRequest{Key: b("m/"), RangeEnd: b("m0"), SortOrder: pb.RangeRequest_DESCEND, Limit: 15}).expect("RangeStream does not support custom sort orders"),
				rstream(&pb.RangeRequest{Key: b("m/"), RangeEnd: b("m0"), SortOrder: pb.RangeRequest_ASCEND, SortTarget: pb.RangeRequest_KEY}),
				rstream(&pb.RangeRequest{Key: b("m/"), RangeEnd: b("m0"), MinModRevision: 1, Limit: 20}).expect("RangeStream does not support revision filters"),
				rng(&pb.RangeRequest{Key: b("m/"), RangeEnd: b("m0"), Limit: 37}),
			)
			return s
		}()},
		{name: "range-historical-revisions", steps: []step{
			put("h", "1"), put("h", "2"), put("i", "1"), del("h"), put("h", "3"),
			rng(&pb.RangeRequest{Key: b("h"), Revision: 1}),
			rng(&pb.RangeRequest{Key: b("h"), Revision: 2}),
			rng(&pb.RangeRequest{Key: b("h"), RangeEnd: b("j"), Revision: 3}),
			rng(&pb.RangeRequest{Key: b("h"), RangeEnd: b("j"), Revision: 4}),
			rng(&pb.RangeRequest{Key: b("h"), RangeEnd: b("j"), Revision: 5}),
			rng(&pb.RangeRequest{Key: b("h"), RangeEnd: b("j"), Revision: 4, CountOnly: true}),
			rng(&pb.RangeRequest{Key: b("h"), RangeEnd: b("j"), Revision: 3, KeysOnly: true, Limit: 1}),
			rng(&pb.RangeRequest{Key: b("h"), Revision: 6}).expect(errFutureRev),
			rng(&pb.RangeRequest{Key: b("h"), Revision: 1000}).expect(errFutureRev),
			rng(&pb.RangeRequest{Key: b("h"), Revision: 6, Serializable: true}).expect(errFutureRev),
			rng(&pb.RangeRequest{Key: b("h"), Revision: -5}), // negative: etcd treats as latest
		}},
		{name: "range-sort", steps: append(sortData(), sortSteps()...)},
		{name: "range-sort-ties", steps: func() []step {
			// 30 keys with equal version and value: the order among ties is
			// whatever etcd's sort.Sort produces. Informative: clients should
			// not depend on it, but a wire-identical server matches it.
			var ops []*pb.RequestOp
			for i := range 30 {
				ops = append(ops, opPut("t/"+string(rune('a'+i/26))+string(rune('a'+i%26)), "same"))
			}
			return []step{
				txn(&pb.TxnRequest{Success: ops}),
				rng(&pb.RangeRequest{Key: b("t/"), RangeEnd: b("t0"), SortTarget: pb.RangeRequest_VERSION, SortOrder: pb.RangeRequest_ASCEND, KeysOnly: true}),
				rng(&pb.RangeRequest{Key: b("t/"), RangeEnd: b("t0"), SortTarget: pb.RangeRequest_VALUE, SortOrder: pb.RangeRequest_DESCEND, KeysOnly: true}),
				rng(&pb.RangeRequest{Key: b("t/"), RangeEnd: b("t0"), SortTarget: pb.RangeRequest_MOD, SortOrder: pb.RangeRequest_DESCEND, KeysOnly: true, Limit: 5}),
			}
		}()},
		{name: "range-revision-filters", steps: append(sortData(),
			rng(&pb.RangeRequest{Key: b("s/"), RangeEnd: b("s0"), MinModRevision: 8}),
			rng(&pb.RangeRequest{Key: b("s/"), RangeEnd: b("s0"), MaxModRevision: 5}),
			rng(&pb.RangeRequest{Key: b("s/"), RangeEnd: b("s0"), MinCreateRevision: 2}),
			rng(&pb.RangeRequest{Key: b("s/"), RangeEnd: b("s0"), MaxCreateRevision: 3}),
			rng(&pb.RangeRequest{Key: b("s/"), RangeEnd: b("s0"), MinModRevision: 4, MaxModRevision: 6}),
			// filters with limit: count stays the unfiltered total, more follows the filtered list
			rng(&pb.RangeRequest{Key: b("s/"), RangeEnd: b("s0"), MinModRevision: 5, Limit: 1}),
			rng(&pb.RangeRequest{Key: b("s/"), RangeEnd: b("s0"), MaxCreateRevision: 3, Limit: 5}),
			rng(&pb.RangeRequest{Key: b("s/"), RangeEnd: b("s0"), MinCreateRevision: 100}),
			rng(&pb.RangeRequest{Key: b("s/"), RangeEnd: b("s0"), MinModRevision: 5, CountOnly: true}),
			rng(&pb.RangeRequest{Key: b("s/"), RangeEnd: b("s0"), MinModRevision: 5, KeysOnly: true}),
			rng(&pb.RangeRequest{Key: b("s/"), RangeEnd: b("s0"), MinModRevision: 3, SortTarget: pb.RangeRequest_VALUE, SortOrder: pb.RangeRequest_ASCEND, Limit: 2}),
			rng(&pb.RangeRequest{Key: b("s/"), RangeEnd: b("s0"), MaxModRevision: 5, Revision: 5}),
		)},
		{name: "put-options", steps: []step{
			putReq(&pb.PutRequest{Key: b("p"), Value: b("1"), PrevKv: true}), // no prev: prev_kv absent
			putReq(&pb.PutRequest{Key: b("p"), Value: b("2"), PrevKv: true}),
			putReq(&pb.PutRequest{Key: b("p"), IgnoreValue: true, PrevKv: true}), // keeps "2", bumps version
			get("p"),
			putReq(&pb.PutRequest{Key: b("p"), IgnoreLease: true}),
			get("p"),
			putReq(&pb.PutRequest{Key: b("p"), IgnoreValue: true, IgnoreLease: true, PrevKv: true}),
			get("p"),
			putReq(&pb.PutRequest{Key: b("missing"), IgnoreValue: true}).expect(errKeyNotFound),
			putReq(&pb.PutRequest{Key: b("missing"), IgnoreLease: true, Value: b("x")}).expect(errKeyNotFound),
			putReq(&pb.PutRequest{Key: b("p"), IgnoreValue: true, Value: b("x")}).expect(errValueProvided),
			putReq(&pb.PutRequest{Key: b("p"), IgnoreLease: true, Lease: 12345}).expect(errLeaseProvided),
			putReq(&pb.PutRequest{Key: b("p"), Value: b("x"), Lease: 12345}).expect(errLeaseNotFound),
			get("p"),
		}},
		{name: "empty-key", steps: []step{
			putReq(&pb.PutRequest{Key: nil, Value: b("x")}).expect(errEmptyKey),
			rng(&pb.RangeRequest{Key: nil}).expect(errEmptyKey),
			rng(&pb.RangeRequest{Key: nil, RangeEnd: b("z")}).expect(errEmptyKey),
			delReq(&pb.DeleteRangeRequest{Key: nil}).expect(errEmptyKey),
			txn(&pb.TxnRequest{Success: []*pb.RequestOp{opPutReq(&pb.PutRequest{Value: b("x")})}}).expect(errEmptyKey),
			txn(&pb.TxnRequest{Compare: []*pb.Compare{cmpVersion("", eq, 0)}, Success: []*pb.RequestOp{opPut("ok", "1")}}).expect(errEmptyKey),
			rstream(&pb.RangeRequest{Key: nil}).expect(errEmptyKey),
		}},
		{name: "delete-range-prev-kv", steps: []step{
			put("d/1", "a"), put("d/2", "b"), put("d/3", "c"), put("e", "d"),
			delReq(&pb.DeleteRangeRequest{Key: b("d/2"), PrevKv: true}),
			delReq(&pb.DeleteRangeRequest{Key: b("d/2"), PrevKv: true}), // nothing left: deleted 0
			delReq(&pb.DeleteRangeRequest{Key: b("d/"), RangeEnd: b("d0"), PrevKv: true}),
			put("d/4", "x"),
			delReq(&pb.DeleteRangeRequest{Key: b("d"), RangeEnd: fromKey}), // from key, no prev_kv
			rng(&pb.RangeRequest{Key: []byte{0}, RangeEnd: fromKey}),
		}},
		{name: "request-too-large", steps: []step{
			// Between etcd's 1.5 MiB request limit and its 2 MiB gRPC receive limit:
			// etcdserver refuses the request itself.
			putReq(&pb.PutRequest{Key: b("big"), Value: make([]byte, 1600*1024)}).expect(errTooLarge),
			// Past the gRPC receive limit: refused by gRPC (ResourceExhausted).
			{op: putOp{&pb.PutRequest{Key: b("big"), Value: make([]byte, 2600*1024)}}, codeOnly: true,
				wantErr: "grpc: received message larger than max (2662410 vs. 2097152)"},
			// Around the 1.5 MiB limit (the exact byte depends on the internal
			// request encoding, so stay a little away from it).
			putReq(&pb.PutRequest{Key: b("big"), Value: make([]byte, 3<<19+1)}).expect(errTooLarge),
			putReq(&pb.PutRequest{Key: b("big"), Value: make([]byte, 1950*1024)}).expect(errTooLarge),
			putReq(&pb.PutRequest{Key: b("big"), Value: make([]byte, 3<<19-200)}),
			txn(&pb.TxnRequest{Success: []*pb.RequestOp{
				opPutReq(&pb.PutRequest{Key: b("t1"), Value: make([]byte, 800*1024)}),
				opPutReq(&pb.PutRequest{Key: b("t2"), Value: make([]byte, 800*1024)}),
			}}).expect(errTooLarge),
			// Just under the limit is accepted.
			putReq(&pb.PutRequest{Key: b("big"), Value: make([]byte, 1400*1024)}),
			rng(&pb.RangeRequest{Key: b("big"), KeysOnly: true}),
		}},
	}
}
