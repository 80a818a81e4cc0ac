package v3rpc

import (
	"context"
	"errors"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// fuzzMaxTxnOps is etcd's default --max-txn-ops.
const fuzzMaxTxnOps = 128

// etcdErrors are the gRPC errors a txn may legitimately fail with.
var etcdErrors = []error{
	rpctypes.ErrGRPCEmptyKey, rpctypes.ErrGRPCKeyNotFound, rpctypes.ErrGRPCValueProvided,
	rpctypes.ErrGRPCLeaseProvided, rpctypes.ErrGRPCTooManyOps, rpctypes.ErrGRPCDuplicateKey,
	rpctypes.ErrGRPCInvalidSortOption, rpctypes.ErrGRPCCompacted, rpctypes.ErrGRPCFutureRev,
	rpctypes.ErrGRPCLeaseNotFound, rpctypes.ErrGRPCRequestTooLarge, rpctypes.ErrGRPCNoSpace,
}

func isEtcdError(err error) bool {
	for _, e := range etcdErrors {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func seedTxns() []*pb.TxnRequest {
	cmp := func(k string, target pb.Compare_CompareTarget, res pb.Compare_CompareResult) *pb.Compare {
		return &pb.Compare{Key: []byte(k), Target: target, Result: res, TargetUnion: &pb.Compare_Version{Version: 1}}
	}
	rangeOp := func(r *pb.RangeRequest) *pb.RequestOp {
		return &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: r}}
	}
	return []*pb.TxnRequest{
		{},
		{Success: ops(put("a"), get("a"), del("b", "c"))},
		{Compare: []*pb.Compare{cmp("a", pb.Compare_VERSION, pb.Compare_EQUAL)}, Success: ops(put("x")), Failure: ops(put("y"))},
		{Compare: []*pb.Compare{{Key: []byte("a"), RangeEnd: []byte{0}, Target: pb.Compare_VALUE, Result: pb.Compare_GREATER, TargetUnion: &pb.Compare_Value{Value: []byte("m")}}}},
		{Success: ops(txn(ops(put("a")), ops(put("a"))), get("a"))},
		{Success: ops(put("a"), put("a"))},
		{Success: ops(del("a", "z"), txn(ops(put("m")), nil))},
		{Success: ops(rangeOp(&pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte{0}, Limit: 1, SortOrder: pb.RangeRequest_DESCEND, SortTarget: pb.RangeRequest_MOD, KeysOnly: true}))},
		{Success: ops(rangeOp(&pb.RangeRequest{Key: []byte("a"), Revision: 1 << 40}))},
		{Success: ops(rangeOp(&pb.RangeRequest{Key: []byte("a"), SortOrder: 7}))},
		{Success: ops(&pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("a"), Lease: 42}}})},
		{Success: ops(&pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("zz"), IgnoreValue: true}}})},
		{Success: ops(&pb.RequestOp{})},
		{Compare: []*pb.Compare{{Key: []byte("a"), Target: 17, Result: 9}}, Success: ops(put("q"))},
		{Success: ops(txn(ops(txn(ops(txn(ops(put("deep")), nil)), nil)), nil))},
	}
}

// FuzzTxnValidation decodes a TxnRequest from the input: validation must never
// panic, and a request it accepts must apply without panicking, answering
// with a response or an etcd error.
func FuzzTxnValidation(f *testing.F) {
	for _, rt := range seedTxns() {
		b, err := proto.Marshal(rt)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	s := testServer(f)
	kv := &kvService{s: s, h: headerFiller{s}, maxTxnOps: fuzzMaxTxnOps}
	// Some state for compares and reads to find.
	for _, k := range []string{"a", "b", "m", "x"} {
		if _, err := s.Put(context.Background(), &pb.PutRequest{Key: []byte(k), Value: []byte("v-" + k)}); err != nil {
			f.Fatal(err)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rt := &pb.TxnRequest{}
		if err := proto.Unmarshal(data, rt); err != nil {
			return
		}
		err := checkTxnRequest(rt, fuzzMaxTxnOps)
		if err == nil {
			_, _, err = checkIntervals(rt.Success)
		}
		if err == nil {
			_, _, err = checkIntervals(rt.Failure)
		}
		if err != nil {
			if !isEtcdError(err) {
				t.Fatalf("validation failed with a non-etcd error %v", err)
			}
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, err := kv.Txn(ctx, rt)
		if err != nil {
			if c := status.Code(err); c == codes.Unknown || c == codes.Internal || !isEtcdError(err) {
				t.Fatalf("valid txn failed with %v (code %v)", err, c)
			}
			return
		}
		if resp == nil || resp.Header == nil {
			t.Fatal("nil response or header")
		}
		ops := rt.Success
		if !resp.Succeeded {
			ops = rt.Failure
		}
		if len(resp.Responses) != len(ops) {
			t.Fatalf("%d responses for %d ops", len(resp.Responses), len(ops))
		}
	})
}
