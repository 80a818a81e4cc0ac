package etcdcompat

import (
	"fmt"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

func watchScenarios() []scenario {
	return []scenario{
		{name: "watch-basic-and-cancel", steps: []step{
			watch("w", &pb.WatchCreateRequest{Key: b("w")}),
			collect("w", 1), // created
			put("w", "1"), put("w", "2"), put("other", "x"), del("w"),
			collect("w", 3),
			watchCancel("w", 0),
			collect("w", 1), // canceled
			put("w", "3"),
			collect("w", 0),
			watchCancel("w", 12345), // unknown watch id
			collect("w", 0),
		}},
		{name: "watch-prefix-prev-kv", steps: []step{
			put("p/a", "0"),
			watch("w", &pb.WatchCreateRequest{Key: b("p/"), RangeEnd: b("p0"), PrevKv: true}),
			watch("w", &pb.WatchCreateRequest{Key: b("p/b"), RangeEnd: fromKey}), // second watcher on the same stream
			collect("w", 2),
			put("p/a", "1"), put("p/b", "1"), put("q", "1"), put("pa", "no"),
			delReq(&pb.DeleteRangeRequest{Key: b("p/"), RangeEnd: b("p0")}),
			collect("w", 8),
		}},
		{name: "watch-start-revision-replay", steps: []step{
			put("r", "1"), put("r", "2"), put("s", "1"), del("r"), put("r", "3"),
			watch("w", &pb.WatchCreateRequest{Key: b("r"), StartRevision: 2, PrevKv: true}),
			collect("w", 4), // created + 2,4,5
			watch("v", &pb.WatchCreateRequest{Key: b("r"), RangeEnd: b("t"), StartRevision: 1}),
			collect("v", 6),
			put("s", "2"),
			collect("v", 1),
			collect("w", 0),
			// a start revision in the future: nothing until it is reached
			watch("f", &pb.WatchCreateRequest{Key: b("r"), StartRevision: 8}),
			collect("f", 1),
			put("r", "4"), // 7: not delivered
			put("r", "5"), // 8: delivered
			collect("f", 1),
			collect("w", 2),
			collect("v", 2),
		}},
		{name: "watch-filters", steps: []step{
			watch("w", &pb.WatchCreateRequest{Key: b("f"), Filters: []pb.WatchCreateRequest_FilterType{pb.WatchCreateRequest_NOPUT}}),
			watch("w", &pb.WatchCreateRequest{Key: b("f"), Filters: []pb.WatchCreateRequest_FilterType{pb.WatchCreateRequest_NODELETE}, PrevKv: true}),
			watch("w", &pb.WatchCreateRequest{Key: b("f"), Filters: []pb.WatchCreateRequest_FilterType{pb.WatchCreateRequest_NOPUT, pb.WatchCreateRequest_NODELETE}}),
			collect("w", 3),
			put("f", "1"), del("f"), put("f", "2"), del("f"),
			collect("w", 4),
			collect("w", 0),
		}},
		{name: "watch-compacted-start", steps: []step{
			put("c", "1"), put("c", "2"), put("c", "3"),
			compact(2, true),
			watch("w", &pb.WatchCreateRequest{Key: b("c"), StartRevision: 1}),
			collect("w", 2), // created, then canceled with compact_revision
			watch("w", &pb.WatchCreateRequest{Key: b("c"), StartRevision: 2}), // the compaction revision is still watchable
			collect("w", 3),
			put("c", "4"),
			collect("w", 1),
		}},
		{name: "watch-progress-request", steps: []step{
			put("g", "1"),
			watch("w", &pb.WatchCreateRequest{Key: b("g")}),
			collect("w", 1),
			watchProgress("w"),
			collect("w", 1),
			put("g", "2"), put("unwatched", "1"),
			collect("w", 1),
			watchProgress("w"),
			collect("w", 1), // progress at the current revision, past the last event
			watch("w", &pb.WatchCreateRequest{Key: b("h"), ProgressNotify: true}),
			collect("w", 1),
			watchProgress("w"),
			collect("w", 1),
			watchProgress("empty"), // a stream without watchers: etcd stays silent
			collect("empty", 0),
		}},
		{name: "watch-many-events-one-txn", steps: func() []step {
			var ops []*pb.RequestOp
			for i := range 40 {
				ops = append(ops, opPut(fmt.Sprintf("t/%02d", i), "v"))
			}
			return []step{
				put("t/00", "old"),
				watch("w", &pb.WatchCreateRequest{Key: b("t/"), RangeEnd: b("t0"), PrevKv: true}),
				collect("w", 1),
				txn(&pb.TxnRequest{Success: ops}),
				collect("w", 40),
				txn(&pb.TxnRequest{Success: []*pb.RequestOp{opDel("t/", "t0"), opPut("u", "unwatched")}}),
				collect("w", 40),
				// replay of the same history from a new watcher
				watch("r", &pb.WatchCreateRequest{Key: b("t/"), RangeEnd: b("t0"), StartRevision: 1}),
				collect("r", 1+1+40+40),
			}
		}()},
		{name: "watch-explicit-ids", steps: []step{
			watch("w", &pb.WatchCreateRequest{Key: b("i"), WatchId: 7}),
			watch("w", &pb.WatchCreateRequest{Key: b("j")}),             // auto id after an explicit one
			watch("w", &pb.WatchCreateRequest{Key: b("k"), WatchId: 7}), // id in use
			collect("w", 3),
			put("i", "1"), put("j", "1"), put("k", "1"),
			collect("w", 2),
			watchCancel("w", 7),
			collect("w", 1),
			put("i", "2"),
			collect("w", 0),
		}},
		{name: "watch-fragment", steps: []step{
			// One txn whose events with prev_kv exceed the 1.5 MiB request limit:
			// a watcher asking for fragments gets them split, others in one piece.
			putReq(&pb.PutRequest{Key: b("big/1"), Value: make([]byte, 600*1024)}),
			putReq(&pb.PutRequest{Key: b("big/2"), Value: make([]byte, 600*1024)}),
			watchRaw("frag", &pb.WatchCreateRequest{Key: b("big/"), RangeEnd: b("big0"), PrevKv: true, Fragment: true}),
			watchRaw("whole", &pb.WatchCreateRequest{Key: b("big/"), RangeEnd: b("big0"), PrevKv: true}),
			collect("frag", 1), collect("whole", 1),
			txn(&pb.TxnRequest{Success: []*pb.RequestOp{
				opPutReq(&pb.PutRequest{Key: b("big/1"), Value: make([]byte, 600*1024)}),
				opPutReq(&pb.PutRequest{Key: b("big/2"), Value: make([]byte, 600*1024)}),
			}}),
			collect("frag", 2),
			collect("whole", 1),
		}},
		{name: "watch-invalid-requests", steps: []step{
			watch("w", &pb.WatchCreateRequest{Key: nil}),                       // empty key
			watch("w", &pb.WatchCreateRequest{Key: b("b"), RangeEnd: b("a")}),  // end before key
			watch("w", &pb.WatchCreateRequest{Key: b("a"), StartRevision: -1}), // negative start
			collect("w", 3),
			put("a", "1"),
			collect("w", 0),
		}},
		{name: "clientv3-watcher", steps: []step{
			put("cw", "0"),
			{op: cwatchOp{name: "a", key: "cw", prevKV: true}},
			{op: cwatchOp{name: "b", key: "cw", end: "cx", rev: 1}},
			{op: ccollectOp{name: "a", n: 1}},
			{op: ccollectOp{name: "b", n: 2}}, // created + replayed put
			put("cw", "1"), del("cw"),
			{op: ccollectOp{name: "a", n: 2}},
			{op: ccollectOp{name: "b", n: 2}},
			{op: cprogressOp{}},
			{op: ccollectOp{name: "a", n: 1}},
			{op: ccollectOp{name: "b", n: 1}},
			compact(3, true),
			{op: cwatchOp{name: "c", key: "cw", rev: 1}},
			{op: ccollectOp{name: "c", n: 2}},
		}},
	}
}
