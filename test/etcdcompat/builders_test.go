package etcdcompat

import (
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// Short builders keep scenarios readable; every request field stays
// reachable because the builders take or return the generated messages.

func b(s string) []byte { return []byte(s) }

// fromKey is the range_end meaning "every key >= key".
var fromKey = []byte{0}

func get(key string) step { return step{op: rangeOp{&pb.RangeRequest{Key: b(key)}}} }
func rng(r *pb.RangeRequest) step {
	return step{op: rangeOp{r}}
}
func rstream(r *pb.RangeRequest) step { return step{op: rangeStreamOp{r}} }
func put(key, val string) step {
	return step{op: putOp{&pb.PutRequest{Key: b(key), Value: b(val)}}}
}
func putReq(r *pb.PutRequest) step { return step{op: putOp{r}} }
func del(key string) step          { return step{op: deleteOp{&pb.DeleteRangeRequest{Key: b(key)}}} }
func delReq(r *pb.DeleteRangeRequest) step {
	return step{op: deleteOp{r}}
}
func txn(r *pb.TxnRequest) step { return step{op: txnOp{r}} }
func compact(rev int64, physical bool) step {
	return step{op: compactOp{&pb.CompactionRequest{Revision: rev, Physical: physical}}}
}
func grant(id, ttl int64) step { return step{op: grantOp{&pb.LeaseGrantRequest{ID: id, TTL: ttl}}} }
func revoke(id int64) step     { return step{op: revokeOp{&pb.LeaseRevokeRequest{ID: id}}} }
func timeToLive(id int64, keys bool) step {
	return step{op: ttlOp{&pb.LeaseTimeToLiveRequest{ID: id, Keys: keys}}}
}
func leases() step { return step{op: leasesOp{}} }
func keepAliveOnce(id int64) step {
	return step{op: keepAliveOnceOp{&pb.LeaseKeepAliveRequest{ID: id}}}
}
func sleep(d time.Duration) step { return step{sleep: d} }

// watch sends a create request on the named raw stream (opened on first use).
func watch(stream string, r *pb.WatchCreateRequest) step {
	return step{op: watchSendOp{stream: stream, req: &pb.WatchRequest{
		RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: r}}}}
}

// watchRaw is watch on a stream whose responses are compared unflattened.
func watchRaw(stream string, r *pb.WatchCreateRequest) step {
	s := watch(stream, r)
	o := s.op.(watchSendOp)
	o.raw = true
	s.op = o
	return s
}

func watchCancel(stream string, id int64) step {
	return step{op: watchSendOp{stream: stream, req: &pb.WatchRequest{
		RequestUnion: &pb.WatchRequest_CancelRequest{CancelRequest: &pb.WatchCancelRequest{WatchId: id}}}}}
}

func watchProgress(stream string) step {
	return step{op: watchSendOp{stream: stream, req: &pb.WatchRequest{
		RequestUnion: &pb.WatchRequest_ProgressRequest{ProgressRequest: &pb.WatchProgressRequest{}}}}}
}

// collect waits for n flattened watch items on the stream and compares them.
func collect(stream string, n int) step { return step{op: watchCollectOp{stream: stream, n: n}} }
func collectWithin(stream string, n int, d time.Duration) step {
	return step{op: watchCollectOp{stream: stream, n: n, timeout: d}}
}

// ---- txn pieces ----

func cmpValue(key string, r pb.Compare_CompareResult, v string) *pb.Compare {
	return &pb.Compare{Key: b(key), Target: pb.Compare_VALUE, Result: r,
		TargetUnion: &pb.Compare_Value{Value: b(v)}}
}
func cmpVersion(key string, r pb.Compare_CompareResult, v int64) *pb.Compare {
	return &pb.Compare{Key: b(key), Target: pb.Compare_VERSION, Result: r,
		TargetUnion: &pb.Compare_Version{Version: v}}
}
func cmpCreate(key string, r pb.Compare_CompareResult, rev int64) *pb.Compare {
	return &pb.Compare{Key: b(key), Target: pb.Compare_CREATE, Result: r,
		TargetUnion: &pb.Compare_CreateRevision{CreateRevision: rev}}
}
func cmpMod(key string, r pb.Compare_CompareResult, rev int64) *pb.Compare {
	return &pb.Compare{Key: b(key), Target: pb.Compare_MOD, Result: r,
		TargetUnion: &pb.Compare_ModRevision{ModRevision: rev}}
}
func cmpLease(key string, r pb.Compare_CompareResult, id int64) *pb.Compare {
	return &pb.Compare{Key: b(key), Target: pb.Compare_LEASE, Result: r,
		TargetUnion: &pb.Compare_Lease{Lease: id}}
}

func opGet(r *pb.RangeRequest) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: r}}
}
func opPut(key, val string) *pb.RequestOp {
	return opPutReq(&pb.PutRequest{Key: b(key), Value: b(val)})
}
func opPutReq(r *pb.PutRequest) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: r}}
}
func opDel(key, end string) *pb.RequestOp {
	r := &pb.DeleteRangeRequest{Key: b(key), PrevKv: true}
	if end != "" {
		r.RangeEnd = b(end)
	}
	return &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: r}}
}
func opTxn(r *pb.TxnRequest) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestTxn{RequestTxn: r}}
}

const (
	eq = pb.Compare_EQUAL
	ne = pb.Compare_NOT_EQUAL
	gt = pb.Compare_GREATER
	lt = pb.Compare_LESS
)
