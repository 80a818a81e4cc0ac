package etcdcompat

import (
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

func leaseScenarios() []scenario {
	return []scenario{
		{name: "lease-grant-attach-revoke", steps: []step{
			grant(9001, 60),
			grant(9002, 120),
			leases(),
			timeToLive(9001, true),
			putReq(&pb.PutRequest{Key: b("l/a"), Value: b("1"), Lease: 9001}),
			putReq(&pb.PutRequest{Key: b("l/c"), Value: b("1"), Lease: 9001}),
			putReq(&pb.PutRequest{Key: b("l/b"), Value: b("1"), Lease: 9001}),
			putReq(&pb.PutRequest{Key: b("l/z"), Value: b("1"), Lease: 9002}),
			get("l/a"),
			rng(&pb.RangeRequest{Key: b("l/"), RangeEnd: b("l0"), KeysOnly: true}), // does the lease survive keys_only?
			timeToLive(9001, true),
			timeToLive(9001, false),
			keepAliveOnce(9001),
			timeToLive(9001, false),
			watch("w", &pb.WatchCreateRequest{Key: b("l/"), RangeEnd: b("l0"), PrevKv: true}),
			collect("w", 1),
			revoke(9001), // deletes l/a l/b l/c in one revision, in key order
			collect("w", 3),
			rng(&pb.RangeRequest{Key: b("l/"), RangeEnd: b("l0")}),
			leases(),
			revoke(9001).expect(errLeaseNotFound),
			timeToLive(9001, true),
			keepAliveOnce(9001),
			putReq(&pb.PutRequest{Key: b("l/a"), Value: b("2"), Lease: 9001}).expect(errLeaseNotFound),
			grant(9001, 30), // an ID is free again after revoke
			timeToLive(9001, true),
			revoke(9001), // no keys attached: no revision bump
			putReq(&pb.PutRequest{Key: b("l/d"), Value: b("1"), Lease: 9002}),
			del("l/d"),
			revoke(9002), // its only remaining key l/z is deleted; l/d was already gone
			collect("w", 3),
		}},
		{name: "lease-reattach-and-ignore", steps: []step{
			grant(9101, 60), grant(9102, 60),
			sleep(1500 * time.Millisecond), // remaining TTL counts down (compared within a second)
			timeToLive(9101, false),
			putReq(&pb.PutRequest{Key: b("k"), Value: b("1"), Lease: 9101}),
			putReq(&pb.PutRequest{Key: b("k"), Value: b("2"), Lease: 9102, PrevKv: true}), // moves to 9102
			timeToLive(9101, true),
			timeToLive(9102, true),
			putReq(&pb.PutRequest{Key: b("k"), Value: b("3"), IgnoreLease: true, PrevKv: true}), // keeps 9102
			timeToLive(9102, true),
			put("k", "4"), // no lease: detaches
			timeToLive(9102, true),
			putReq(&pb.PutRequest{Key: b("k"), IgnoreValue: true, Lease: 9101}), // value kept, lease changed
			get("k"),
			txn(&pb.TxnRequest{Compare: []*pb.Compare{cmpLease("k", eq, 9101)}, Success: []*pb.RequestOp{opPutReq(&pb.PutRequest{Key: b("k2"), Value: b("t"), Lease: 9102})}}),
			timeToLive(9102, true),
			del("k"),
			timeToLive(9101, true), // deleting the key detaches it
			revoke(9102),
			get("k2"),
		}},
		{name: "lease-errors-and-limits", steps: []step{
			grant(9201, 60),
			grant(9201, 60).expect(errLeaseExist),
			grant(9202, 9_000_000_001).expect(errLeaseTTLTooBig),
			grant(9203, 9_000_000_000),
			grant(9204, 1),  // raised to the minimum TTL
			grant(9205, 0),  // likewise
			grant(9206, -5), // negative TTL
			timeToLive(9204, false),
			revoke(424242).expect(errLeaseNotFound),
			timeToLive(424242, true),
			keepAliveOnce(424242),
			grant(-7, 60), // negative ID
			leases(),
		}},
		{name: "lease-server-chosen-id", steps: []step{
			grant(autoLease+1, 60),
			grant(autoLease+2, 60),
			putReq(&pb.PutRequest{Key: b("a"), Value: b("1"), Lease: autoLease + 1}),
			get("a"),
			timeToLive(autoLease+1, true),
			leases(),
			revoke(autoLease + 1),
			get("a"),
		}},
		{name: "lease-expiry", steps: []step{
			grant(9301, 2),
			putReq(&pb.PutRequest{Key: b("e/1"), Value: b("1"), Lease: 9301}),
			putReq(&pb.PutRequest{Key: b("e/2"), Value: b("1"), Lease: 9301}),
			watch("w", &pb.WatchCreateRequest{Key: b("e/"), RangeEnd: b("e0")}),
			collect("w", 1),
			collectWithin("w", 2, 15*time.Second), // both deletes, one revision, when the lease expires
			get("e/1"),
			timeToLive(9301, true),
			leases(),
		}},
	}
}
