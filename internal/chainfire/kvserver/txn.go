package kvserver

import (
	"bytes"
	"sort"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/photoncloud/photoncloud/internal/chainfire/mvcc"
)

// reader is a consistent view of the store: a write transaction, or the
// store pinned at one revision for read-only requests.
type reader interface {
	Range(key, end []byte, ro mvcc.RangeOptions) (*mvcc.RangeResult, error)
	rev() int64
}

// pinned reads the store at a fixed revision.
type pinned struct {
	kv *mvcc.Store
	at int64
}

func (p pinned) Range(key, end []byte, ro mvcc.RangeOptions) (*mvcc.RangeResult, error) {
	if ro.Rev <= 0 {
		ro.Rev = p.at
	}
	rr, err := p.kv.Range(key, end, ro)
	if err != nil {
		return nil, err
	}
	rr.Rev = p.at // the response speaks of the revision the request saw
	return rr, nil
}

func (p pinned) rev() int64 { return p.at }

// executeRange answers a RangeRequest exactly as etcd does: limits, sorting,
// revision filters, keys_only and count_only.
func executeRange(rd reader, r *pb.RangeRequest) (*pb.RangeResponse, error) {
	limit := r.Limit
	if r.SortOrder != pb.RangeRequest_NONE ||
		r.MinModRevision != 0 || r.MaxModRevision != 0 ||
		r.MinCreateRevision != 0 || r.MaxCreateRevision != 0 {
		// Sorting and filtering need every match; truncate afterwards.
		limit = 0
	}
	if limit > 0 {
		limit++ // one more, to learn whether there are more
	}
	rr, err := rd.Range(r.Key, r.RangeEnd, mvcc.RangeOptions{Limit: limit, Rev: r.Revision, CountOnly: r.CountOnly})
	if err != nil {
		return nil, err
	}
	kvs := rr.KVs
	if r.MaxModRevision != 0 {
		kvs = filterKVs(kvs, func(kv *mvccpb.KeyValue) bool { return kv.ModRevision <= r.MaxModRevision })
	}
	if r.MinModRevision != 0 {
		kvs = filterKVs(kvs, func(kv *mvccpb.KeyValue) bool { return kv.ModRevision >= r.MinModRevision })
	}
	if r.MaxCreateRevision != 0 {
		kvs = filterKVs(kvs, func(kv *mvccpb.KeyValue) bool { return kv.CreateRevision <= r.MaxCreateRevision })
	}
	if r.MinCreateRevision != 0 {
		kvs = filterKVs(kvs, func(kv *mvccpb.KeyValue) bool { return kv.CreateRevision >= r.MinCreateRevision })
	}
	order := r.SortOrder
	switch {
	case r.SortTarget != pb.RangeRequest_KEY && order == pb.RangeRequest_NONE:
		order = pb.RangeRequest_ASCEND
	case r.SortTarget == pb.RangeRequest_KEY && order == pb.RangeRequest_ASCEND:
		order = pb.RangeRequest_NONE // already in key order
	}
	if order != pb.RangeRequest_NONE {
		less := sortLess(r.SortTarget)
		if order == pb.RangeRequest_DESCEND {
			asc := less
			less = func(a, b *mvccpb.KeyValue) bool { return asc(b, a) }
		}
		sort.SliceStable(kvs, func(i, j int) bool { return less(kvs[i], kvs[j]) })
	}
	resp := &pb.RangeResponse{Header: &pb.ResponseHeader{Revision: rr.Rev}, Count: int64(rr.Count)}
	if r.Limit > 0 && len(kvs) > int(r.Limit) {
		kvs = kvs[:r.Limit]
		resp.More = true
	}
	if r.KeysOnly {
		// etcd 3.7 serves keys_only from its key index, which has no lease,
		// unless it must read values to sort by them; clients see exactly that.
		dropLease := r.SortTarget != pb.RangeRequest_VALUE
		for _, kv := range kvs {
			kv.Value = nil
			if dropLease {
				kv.Lease = 0
			}
		}
	}
	resp.Kvs = kvs
	return resp, nil
}

func filterKVs(kvs []*mvccpb.KeyValue, keep func(*mvccpb.KeyValue) bool) []*mvccpb.KeyValue {
	out := kvs[:0]
	for _, kv := range kvs {
		if keep(kv) {
			out = append(out, kv)
		}
	}
	return out
}

func sortLess(target pb.RangeRequest_SortTarget) func(a, b *mvccpb.KeyValue) bool {
	switch target {
	case pb.RangeRequest_VERSION:
		return func(a, b *mvccpb.KeyValue) bool { return a.Version < b.Version }
	case pb.RangeRequest_CREATE:
		return func(a, b *mvccpb.KeyValue) bool { return a.CreateRevision < b.CreateRevision }
	case pb.RangeRequest_MOD:
		return func(a, b *mvccpb.KeyValue) bool { return a.ModRevision < b.ModRevision }
	case pb.RangeRequest_VALUE:
		return func(a, b *mvccpb.KeyValue) bool { return bytes.Compare(a.Value, b.Value) < 0 }
	default:
		return func(a, b *mvccpb.KeyValue) bool { return bytes.Compare(a.Key, b.Key) < 0 }
	}
}

// txnPath evaluates the compares of a txn and of every nested txn on the
// chosen branches against the state before the txn runs, as etcd does. The
// result lists the branch taken by each txn in depth-first order.
func txnPath(rd reader, rt *pb.TxnRequest) []bool {
	ok := applyCompares(rd, rt.Compare)
	path := []bool{ok}
	ops := rt.Success
	if !ok {
		ops = rt.Failure
	}
	for _, op := range ops {
		if nt := op.GetRequestTxn(); nt != nil {
			path = append(path, txnPath(rd, nt)...)
		}
	}
	return path
}

func applyCompares(rd reader, cmps []*pb.Compare) bool {
	for _, c := range cmps {
		if !applyCompare(rd, c) {
			return false
		}
	}
	return true
}

func applyCompare(rd reader, c *pb.Compare) bool {
	end := c.RangeEnd
	rr, err := rd.Range(c.Key, end, mvcc.RangeOptions{})
	if err != nil {
		return false
	}
	if len(rr.KVs) == 0 {
		if c.Target == pb.Compare_VALUE {
			// A missing key has no value to compare: always false.
			return false
		}
		return compareKV(c, &mvccpb.KeyValue{})
	}
	for _, kv := range rr.KVs {
		if !compareKV(c, kv) {
			return false
		}
	}
	return true
}

func compareKV(c *pb.Compare, kv *mvccpb.KeyValue) bool {
	var r int
	switch c.Target {
	case pb.Compare_VALUE:
		r = bytes.Compare(kv.Value, c.GetValue())
	case pb.Compare_CREATE:
		r = cmpInt(kv.CreateRevision, c.GetCreateRevision())
	case pb.Compare_MOD:
		r = cmpInt(kv.ModRevision, c.GetModRevision())
	case pb.Compare_VERSION:
		r = cmpInt(kv.Version, c.GetVersion())
	case pb.Compare_LEASE:
		r = cmpInt(kv.Lease, c.GetLease())
	}
	switch c.Result {
	case pb.Compare_EQUAL:
		return r == 0
	case pb.Compare_NOT_EQUAL:
		return r != 0
	case pb.Compare_GREATER:
		return r > 0
	case pb.Compare_LESS:
		return r < 0
	}
	return true
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// checkTxnOps verifies, before anything changes, that every operation on the
// chosen branches can be applied, so a txn fails as a whole or not at all.
func (s *Server) checkTxnOps(rd reader, t *txnState, rt *pb.TxnRequest, path []bool, next *int) error {
	ops := rt.Success
	if !path[*next] {
		ops = rt.Failure
	}
	*next++
	for _, op := range ops {
		switch r := op.Request.(type) {
		case *pb.RequestOp_RequestRange:
			if err := checkRangeRev(rd, s.kv.CompactRev(), r.RequestRange); err != nil {
				return err
			}
		case *pb.RequestOp_RequestPut:
			if t == nil {
				continue
			}
			if err := s.checkPut(t, r.RequestPut); err != nil {
				return err
			}
		case *pb.RequestOp_RequestTxn:
			if err := s.checkTxnOps(rd, t, r.RequestTxn, path, next); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkRangeRev(rd reader, compactRev int64, r *pb.RangeRequest) error {
	if r.Revision > rd.rev() {
		return mvcc.ErrFutureRev
	}
	if r.Revision > 0 && r.Revision < compactRev {
		return mvcc.ErrCompacted
	}
	return nil
}

// applyTxn runs a txn inside the write transaction t.
func (s *Server) applyTxn(t *txnState, rt *pb.TxnRequest) (*pb.TxnResponse, error) {
	path := txnPath(t, rt)
	next := 0
	if err := s.checkTxnOps(t, t, rt, path, &next); err != nil {
		return nil, err
	}
	next = 0
	return s.execTxn(t, t, rt, path, &next)
}

// execTxn executes the chosen branch of rt and its nested txns. t is nil for
// read-only txns, which then only read through rd.
func (s *Server) execTxn(rd reader, t *txnState, rt *pb.TxnRequest, path []bool, next *int) (*pb.TxnResponse, error) {
	ok := path[*next]
	*next++
	ops := rt.Success
	if !ok {
		ops = rt.Failure
	}
	resp := &pb.TxnResponse{Succeeded: ok, Responses: make([]*pb.ResponseOp, 0, len(ops))}
	for _, op := range ops {
		switch r := op.Request.(type) {
		case *pb.RequestOp_RequestRange:
			rr, err := executeRange(rd, r.RequestRange)
			if err != nil {
				return nil, err
			}
			resp.Responses = append(resp.Responses, &pb.ResponseOp{Response: &pb.ResponseOp_ResponseRange{ResponseRange: rr}})
		case *pb.RequestOp_RequestPut:
			pr := s.doPut(t, r.RequestPut)
			resp.Responses = append(resp.Responses, &pb.ResponseOp{Response: &pb.ResponseOp_ResponsePut{ResponsePut: pr}})
		case *pb.RequestOp_RequestDeleteRange:
			dr := s.applyDelete(t, r.RequestDeleteRange)
			resp.Responses = append(resp.Responses, &pb.ResponseOp{Response: &pb.ResponseOp_ResponseDeleteRange{ResponseDeleteRange: dr}})
		case *pb.RequestOp_RequestTxn:
			tr, err := s.execTxn(rd, t, r.RequestTxn, path, next)
			if err != nil {
				return nil, err
			}
			tr.Header = &pb.ResponseHeader{} // etcd leaves nested txn headers empty
			resp.Responses = append(resp.Responses, &pb.ResponseOp{Response: &pb.ResponseOp_ResponseTxn{ResponseTxn: tr}})
		}
	}
	return resp, nil
}

// IsTxnReadOnly reports whether a txn only reads, so it can be served without
// going through raft.
func IsTxnReadOnly(rt *pb.TxnRequest) bool {
	for _, ops := range [][]*pb.RequestOp{rt.Success, rt.Failure} {
		for _, op := range ops {
			switch r := op.Request.(type) {
			case *pb.RequestOp_RequestRange:
			case *pb.RequestOp_RequestTxn:
				if !IsTxnReadOnly(r.RequestTxn) {
					return false
				}
			default:
				return false
			}
		}
	}
	return true
}

func isTxnSerializable(rt *pb.TxnRequest) bool {
	for _, ops := range [][]*pb.RequestOp{rt.Success, rt.Failure} {
		for _, op := range ops {
			switch r := op.Request.(type) {
			case *pb.RequestOp_RequestRange:
				if !r.RequestRange.Serializable {
					return false
				}
			case *pb.RequestOp_RequestTxn:
				if !isTxnSerializable(r.RequestTxn) {
					return false
				}
			}
		}
	}
	return true
}
