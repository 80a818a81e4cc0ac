package etcdcompat

import (
	"fmt"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

func puts(prefix string, n int) []*pb.RequestOp {
	ops := make([]*pb.RequestOp, n)
	for i := range ops {
		ops[i] = opPut(fmt.Sprintf("%s%03d", prefix, i), "v")
	}
	return ops
}

func txnScenarios() []scenario {
	return []scenario{
		{name: "txn-compare-targets", steps: []step{
			put("a", "10"), put("a", "20"), put("b", "x"), grant(7001, 60),
			putReq(&pb.PutRequest{Key: b("l"), Value: b("leased"), Lease: 7001}),
			// value
			txn(&pb.TxnRequest{Compare: []*pb.Compare{cmpValue("a", eq, "20")}, Success: []*pb.RequestOp{opGet(&pb.RangeRequest{Key: b("a")})}}),
			txn(&pb.TxnRequest{Compare: []*pb.Compare{cmpValue("a", ne, "20")}, Failure: []*pb.RequestOp{opGet(&pb.RangeRequest{Key: b("b")})}}),
			txn(&pb.TxnRequest{Compare: []*pb.Compare{cmpValue("a", gt, "1")}}),  // byte order: "20" > "1"
			txn(&pb.TxnRequest{Compare: []*pb.Compare{cmpValue("a", lt, "3")}}),  // "20" < "3"
			txn(&pb.TxnRequest{Compare: []*pb.Compare{cmpValue("zz", eq, "")}}),  // missing key vs empty value
			txn(&pb.TxnRequest{Compare: []*pb.Compare{cmpValue("zz", ne, "x")}}), // missing key, not-equal
			// version
			txn(&pb.TxnRequest{Compare: []*pb.Compare{cmpVersion("a", eq, 2)}}),
			txn(&pb.TxnRequest{Compare: []*pb.Compare{cmpVersion("a", gt, 1)}}),
			txn(&pb.TxnRequest{Compare: []*pb.Compare{cmpVersion("zz", eq, 0)}}), // missing key has version 0
			txn(&pb.TxnRequest{Compare: []*pb.Compare{cmpVersion("zz", lt, 1)}}),
			// create / mod revision (relative)
			txn(&pb.TxnRequest{Compare: []*pb.Compare{cmpCreate("a", eq, 1)}}),
			txn(&pb.TxnRequest{Compare: []*pb.Compare{cmpCreate("zz", eq, 0)}}),
			txn(&pb.TxnRequest{Compare: []*pb.Compare{cmpMod("a", eq, 2)}}),
			txn(&pb.TxnRequest{Compare: []*pb.Compare{cmpMod("a", lt, 2)}}),
			txn(&pb.TxnRequest{Compare: []*pb.Compare{cmpMod("b", gt, 2)}}),
			// lease
			txn(&pb.TxnRequest{Compare: []*pb.Compare{cmpLease("l", eq, 7001)}}),
			txn(&pb.TxnRequest{Compare: []*pb.Compare{cmpLease("a", eq, 0)}}),
			txn(&pb.TxnRequest{Compare: []*pb.Compare{cmpLease("zz", eq, 0)}}),
			txn(&pb.TxnRequest{Compare: []*pb.Compare{cmpLease("l", gt, 7000)}}),
			// several compares: all must hold
			txn(&pb.TxnRequest{Compare: []*pb.Compare{cmpVersion("a", eq, 2), cmpValue("b", eq, "x")},
				Success: []*pb.RequestOp{opPut("c", "both")}, Failure: []*pb.RequestOp{opPut("c", "notboth")}}),
			txn(&pb.TxnRequest{Compare: []*pb.Compare{cmpVersion("a", eq, 2), cmpValue("b", eq, "y")},
				Success: []*pb.RequestOp{opPut("c", "both")}, Failure: []*pb.RequestOp{opPut("c", "notboth")}}),
			get("c"),
			// compare over a range: every key in [a, c) must satisfy it
			txn(&pb.TxnRequest{Compare: []*pb.Compare{{Key: b("a"), RangeEnd: b("c"), Target: pb.Compare_VERSION, Result: gt, TargetUnion: &pb.Compare_Version{Version: 0}}}}),
			txn(&pb.TxnRequest{Compare: []*pb.Compare{{Key: b("a"), RangeEnd: b("c"), Target: pb.Compare_VALUE, Result: eq, TargetUnion: &pb.Compare_Value{Value: b("x")}}}}),
			txn(&pb.TxnRequest{Compare: []*pb.Compare{{Key: b("a"), RangeEnd: fromKey, Target: pb.Compare_MOD, Result: lt, TargetUnion: &pb.Compare_ModRevision{ModRevision: 100}}}}),
			txn(&pb.TxnRequest{Compare: []*pb.Compare{{Key: b("x"), RangeEnd: b("y"), Target: pb.Compare_VALUE, Result: eq, TargetUnion: &pb.Compare_Value{Value: b("x")}}}}), // empty range
			// target and union disagree
			txn(&pb.TxnRequest{Compare: []*pb.Compare{{Key: b("a"), Target: pb.Compare_VERSION, Result: eq, TargetUnion: &pb.Compare_Value{Value: b("20")}}}}),
		}},
		{name: "txn-branches-and-results", steps: []step{
			// empty txn: succeeds, no revision bump
			txn(&pb.TxnRequest{}),
			// read-your-writes inside one txn; one revision for all writes
			txn(&pb.TxnRequest{Success: []*pb.RequestOp{
				opPut("x", "1"), opGet(&pb.RangeRequest{Key: b("x")}), opPut("y", "1"),
				opGet(&pb.RangeRequest{Key: b("w"), RangeEnd: b("z")}), opDel("nothing", ""),
			}}),
			txn(&pb.TxnRequest{Success: []*pb.RequestOp{
				opPutReq(&pb.PutRequest{Key: b("x"), Value: b("2"), PrevKv: true}), opDel("y", ""),
				opGet(&pb.RangeRequest{Key: b("w"), RangeEnd: b("z")}),
			}}),
			get("x"),
			// read-only txn: revision unchanged
			txn(&pb.TxnRequest{Success: []*pb.RequestOp{opGet(&pb.RangeRequest{Key: b("x"), CountOnly: true}), opGet(&pb.RangeRequest{Key: b("a"), RangeEnd: fromKey, Limit: 1})}}),
			// ops with every option inside a txn
			txn(&pb.TxnRequest{Compare: []*pb.Compare{cmpValue("x", eq, "2")}, Success: []*pb.RequestOp{
				opGet(&pb.RangeRequest{Key: b("x"), Revision: 1}),
				opGet(&pb.RangeRequest{Key: b("x"), KeysOnly: true, Serializable: true}),
				opGet(&pb.RangeRequest{Key: b("a"), RangeEnd: fromKey, SortOrder: pb.RangeRequest_DESCEND, SortTarget: pb.RangeRequest_MOD}),
				opPutReq(&pb.PutRequest{Key: b("x"), IgnoreValue: true, PrevKv: true}),
				opDel("nothing", ""),
			}}),
			// deleting a key put earlier in the same txn
			txn(&pb.TxnRequest{Success: []*pb.RequestOp{opPut("z1", "a"), opGet(&pb.RangeRequest{Key: b("z1")})}}),
			txn(&pb.TxnRequest{Success: []*pb.RequestOp{opDel("z1", ""), opGet(&pb.RangeRequest{Key: b("z1")}), opPut("z2", "b")}}),
			// errors inside a txn fail the whole txn and change nothing
			txn(&pb.TxnRequest{Success: []*pb.RequestOp{opPut("e1", "x"), opPutReq(&pb.PutRequest{Key: b("nokey"), IgnoreValue: true})}}).expect(errKeyNotFound),
			txn(&pb.TxnRequest{Success: []*pb.RequestOp{opPut("e1", "x"), opPutReq(&pb.PutRequest{Key: b("e2"), Value: b("x"), Lease: 424242})}}).expect(errLeaseNotFound),
			txn(&pb.TxnRequest{Success: []*pb.RequestOp{opPut("e1", "x"), opGet(&pb.RangeRequest{Key: b("x"), Revision: 1000})}}).expect(errFutureRev),
			// a bad op in the branch not taken
			txn(&pb.TxnRequest{Compare: []*pb.Compare{cmpVersion("x", eq, 0)}, Success: []*pb.RequestOp{opPutReq(&pb.PutRequest{Key: b("e3"), Value: b("x"), Lease: 424242})}, Failure: []*pb.RequestOp{opPut("e3", "ok")}}),
			txn(&pb.TxnRequest{Compare: []*pb.Compare{cmpVersion("x", eq, 0)}, Success: []*pb.RequestOp{opPutReq(&pb.PutRequest{Key: b("nokey"), IgnoreValue: true})}, Failure: []*pb.RequestOp{opPut("e4", "ok")}}),
			rng(&pb.RangeRequest{Key: []byte{0}, RangeEnd: fromKey}),
		}},
		{name: "txn-nested", steps: []step{
			put("n", "1"),
			txn(&pb.TxnRequest{Compare: []*pb.Compare{cmpValue("n", eq, "1")}, Success: []*pb.RequestOp{
				opPut("n1", "a"),
				opTxn(&pb.TxnRequest{Compare: []*pb.Compare{cmpValue("n1", eq, "a")}, // sees the outer put
					Success: []*pb.RequestOp{opPut("n2", "b"), opGet(&pb.RangeRequest{Key: b("n"), RangeEnd: b("o")})},
					Failure: []*pb.RequestOp{opPut("n2", "c")}}),
				opTxn(&pb.TxnRequest{Compare: []*pb.Compare{cmpValue("n2", eq, "nope")},
					Success: []*pb.RequestOp{opPut("n3", "x")},
					Failure: []*pb.RequestOp{opDel("n", ""), opTxn(&pb.TxnRequest{Success: []*pb.RequestOp{opPut("n4", "deep")}})}}),
			}}),
			rng(&pb.RangeRequest{Key: b("n"), RangeEnd: b("o")}),
			// nested txn whose inner op fails
			txn(&pb.TxnRequest{Success: []*pb.RequestOp{opPut("n5", "x"), opTxn(&pb.TxnRequest{Success: []*pb.RequestOp{opPutReq(&pb.PutRequest{Key: b("n6"), IgnoreValue: true})}})}}).expect(errKeyNotFound),
			rng(&pb.RangeRequest{Key: b("n"), RangeEnd: b("o"), CountOnly: true}),
		}},
		{name: "txn-duplicate-keys", steps: []step{
			put("a", "1"), put("b", "1"),
			txn(&pb.TxnRequest{Success: []*pb.RequestOp{opPut("a", "2"), opPut("a", "3")}}).expect(errDuplicateKey),
			txn(&pb.TxnRequest{Success: []*pb.RequestOp{opPut("a", "2"), opDel("a", "")}}).expect(errDuplicateKey),
			txn(&pb.TxnRequest{Success: []*pb.RequestOp{opDel("a", "c"), opPut("b", "2")}}).expect(errDuplicateKey),
			txn(&pb.TxnRequest{Failure: []*pb.RequestOp{opPut("a", "2"), opPut("a", "3")}}).expect(errDuplicateKey),
			txn(&pb.TxnRequest{Success: []*pb.RequestOp{opPut("a", "2"), opTxn(&pb.TxnRequest{Success: []*pb.RequestOp{opPut("a", "3")}})}}).expect(errDuplicateKey),
			// allowed: same key in different branches, reads with writes, two deletes
			txn(&pb.TxnRequest{Success: []*pb.RequestOp{opPut("a", "s")}, Failure: []*pb.RequestOp{opPut("a", "f")}}),
			txn(&pb.TxnRequest{Success: []*pb.RequestOp{opGet(&pb.RangeRequest{Key: b("a")}), opPut("a", "r"), opGet(&pb.RangeRequest{Key: b("a")})}}),
			txn(&pb.TxnRequest{Success: []*pb.RequestOp{opDel("a", ""), opDel("a", "c")}}),
			put("a", "1"),
			// nested txns: every branch of sibling txns counts, even the one not taken
			txn(&pb.TxnRequest{Success: []*pb.RequestOp{
				opTxn(&pb.TxnRequest{Success: []*pb.RequestOp{opPut("a", "x")}}),
				opTxn(&pb.TxnRequest{Success: []*pb.RequestOp{opPut("a", "y")}}),
			}}).expect(errDuplicateKey),
			txn(&pb.TxnRequest{Success: []*pb.RequestOp{
				opTxn(&pb.TxnRequest{Success: []*pb.RequestOp{opPut("a", "x")}}),
				opTxn(&pb.TxnRequest{Failure: []*pb.RequestOp{opPut("a", "y")}}),
			}}).expect(errDuplicateKey),
			txn(&pb.TxnRequest{Success: []*pb.RequestOp{ // one nested txn, both branches: allowed
				opTxn(&pb.TxnRequest{Success: []*pb.RequestOp{opPut("a", "x")}, Failure: []*pb.RequestOp{opPut("a", "y")}}),
			}}),
			txn(&pb.TxnRequest{Success: []*pb.RequestOp{
				opPut("a", "x"),
				opTxn(&pb.TxnRequest{Success: []*pb.RequestOp{opDel("a", "b")}}),
			}}).expect(errDuplicateKey),
			txn(&pb.TxnRequest{Success: []*pb.RequestOp{
				opDel("a", "c"),
				opTxn(&pb.TxnRequest{Success: []*pb.RequestOp{opPut("b", "x")}}),
			}}).expect(errDuplicateKey),
			txn(&pb.TxnRequest{Success: []*pb.RequestOp{
				opTxn(&pb.TxnRequest{Success: []*pb.RequestOp{opDel("a", "c")}}),
				opPut("b", "x"),
			}}).expect(errDuplicateKey),
			// etcd quirk: a from-key delete ("\x00" end) is not seen as covering the put
			txn(&pb.TxnRequest{Success: []*pb.RequestOp{opDel("a", "\x00"), opPut("b", "x")}}),
			rng(&pb.RangeRequest{Key: []byte{0}, RangeEnd: fromKey}),
		}},
		{name: "txn-too-many-ops", steps: []step{
			txn(&pb.TxnRequest{Success: puts("o/", 129)}).expect(errTooManyOps),
			txn(&pb.TxnRequest{Failure: puts("o/", 129)}).expect(errTooManyOps),
			txn(&pb.TxnRequest{Compare: make129Compares()}).expect(errTooManyOps),
			txn(&pb.TxnRequest{Success: puts("o/", 128)}),
			txn(&pb.TxnRequest{Success: puts("p/", 100), Failure: puts("q/", 100)}), // the limit is per branch
			txn(&pb.TxnRequest{Success: []*pb.RequestOp{opTxn(&pb.TxnRequest{Success: puts("r/", 129)})}}).expect(errTooManyOps),
			rng(&pb.RangeRequest{Key: []byte{0}, RangeEnd: fromKey, CountOnly: true}),
		}},
	}
}

func make129Compares() []*pb.Compare {
	c := make([]*pb.Compare, 129)
	for i := range c {
		c[i] = cmpVersion(fmt.Sprintf("c%03d", i), eq, 0)
	}
	return c
}

func compactScenarios() []scenario {
	return []scenario{
		{name: "compact-and-read", steps: []step{
			put("k", "1"), put("k", "2"), put("k", "3"), put("j", "1"), put("k", "4"),
			compact(3, false),
			rng(&pb.RangeRequest{Key: b("k"), Revision: 2}).expect(errCompacted),
			rng(&pb.RangeRequest{Key: b("k"), Revision: 3}), // the compaction revision itself is readable
			rng(&pb.RangeRequest{Key: b("k"), RangeEnd: b("l"), Revision: 4}),
			rng(&pb.RangeRequest{Key: b("k"), Revision: 2, Serializable: true}).expect(errCompacted),
			rng(&pb.RangeRequest{Key: b("k"), Revision: 2, CountOnly: true}).expect(errCompacted),
			rstream(&pb.RangeRequest{Key: b("k"), Revision: 2}).expect(errCompacted),
			txn(&pb.TxnRequest{Success: []*pb.RequestOp{opGet(&pb.RangeRequest{Key: b("k"), Revision: 1})}}).expect(errCompacted),
			get("k"),
			compact(3, false).expect(errCompacted), // twice
			compact(2, false).expect(errCompacted), // older
			compact(100, false).expect(errFutureRev),
			compact(5, true), // physical, up to the current revision
			compact(5, true).expect(errCompacted),
			rng(&pb.RangeRequest{Key: b("k"), Revision: 4}).expect(errCompacted),
			rng(&pb.RangeRequest{Key: b("j"), RangeEnd: b("l"), Revision: 5}),
			put("k", "5"),
			get("k"),
			rng(&pb.RangeRequest{Key: b("k"), Revision: 6}),
			compact(7, false).expect(errFutureRev),
			compact(0, false).expect(errCompacted),  // absolute 0
			compact(-1, false).expect(errCompacted), // negative
			rng(&pb.RangeRequest{Key: b("k"), Revision: -1}),
		}},
	}
}
