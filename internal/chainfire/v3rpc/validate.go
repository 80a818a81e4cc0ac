package v3rpc

import (
	"bytes"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// The checks below reject malformed requests before they reach raft, with the
// same errors etcd gives.

func checkRangeRequest(r *pb.RangeRequest) error {
	if len(r.Key) == 0 {
		return rpctypes.ErrGRPCEmptyKey
	}
	if _, ok := pb.RangeRequest_SortOrder_name[int32(r.SortOrder)]; !ok {
		return rpctypes.ErrGRPCInvalidSortOption
	}
	if _, ok := pb.RangeRequest_SortTarget_name[int32(r.SortTarget)]; !ok {
		return rpctypes.ErrGRPCInvalidSortOption
	}
	return nil
}

func checkPutRequest(r *pb.PutRequest) error {
	if len(r.Key) == 0 {
		return rpctypes.ErrGRPCEmptyKey
	}
	if r.IgnoreValue && len(r.Value) != 0 {
		return rpctypes.ErrGRPCValueProvided
	}
	if r.IgnoreLease && r.Lease != 0 {
		return rpctypes.ErrGRPCLeaseProvided
	}
	return nil
}

func checkDeleteRequest(r *pb.DeleteRangeRequest) error {
	if len(r.Key) == 0 {
		return rpctypes.ErrGRPCEmptyKey
	}
	return nil
}

// checkTxnRequest bounds the ops of each branch and checks every op. Nested
// txns share the budget as in etcd.
func checkTxnRequest(r *pb.TxnRequest, maxTxnOps int) error {
	opc := max(len(r.Compare), len(r.Success), len(r.Failure))
	if opc > maxTxnOps {
		return rpctypes.ErrGRPCTooManyOps
	}
	for _, c := range r.Compare {
		if len(c.Key) == 0 {
			return rpctypes.ErrGRPCEmptyKey
		}
	}
	for _, ops := range [][]*pb.RequestOp{r.Success, r.Failure} {
		for _, op := range ops {
			if err := checkRequestOp(op, maxTxnOps-opc); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkRequestOp(op *pb.RequestOp, maxTxnOps int) error {
	switch r := op.GetRequest().(type) {
	case *pb.RequestOp_RequestRange:
		return checkRangeRequest(r.RequestRange)
	case *pb.RequestOp_RequestPut:
		return checkPutRequest(r.RequestPut)
	case *pb.RequestOp_RequestDeleteRange:
		return checkDeleteRequest(r.RequestDeleteRange)
	case *pb.RequestOp_RequestTxn:
		return checkTxnRequest(r.RequestTxn, maxTxnOps)
	default:
		// An empty op: etcd answers "key not found".
		return rpctypes.ErrGRPCKeyNotFound
	}
}

// interval is a key range [start, end); end nil means the single key start.
type interval struct{ start, end []byte }

func (iv interval) contains(key []byte) bool {
	if iv.end == nil {
		return bytes.Equal(iv.start, key)
	}
	return bytes.Compare(iv.start, key) <= 0 && bytes.Compare(key, iv.end) < 0
}

func anyContains(ivs []interval, key []byte) bool {
	for _, iv := range ivs {
		if iv.contains(key) {
			return true
		}
	}
	return false
}

// checkIntervals refuses a txn branch that writes one key twice or both puts
// and deletes it, looking into nested txns (whose two branches exclude each
// other). It returns the branch's puts and deletes for the level above.
func checkIntervals(reqs []*pb.RequestOp) (map[string]struct{}, []interval, error) {
	var dels []interval
	for _, op := range reqs {
		d := op.GetRequestDeleteRange()
		if d == nil {
			continue
		}
		iv := interval{start: d.Key}
		if len(d.RangeEnd) != 0 {
			iv.end = d.RangeEnd
		}
		dels = append(dels, iv)
	}
	puts := map[string]struct{}{}
	for _, op := range reqs {
		nt := op.GetRequestTxn()
		if nt == nil {
			continue
		}
		putsThen, delsThen, err := checkIntervals(nt.Success)
		if err != nil {
			return nil, nil, err
		}
		putsElse, delsElse, err := checkIntervals(nt.Failure)
		if err != nil {
			return nil, nil, err
		}
		for k := range putsThen {
			if _, dup := puts[k]; dup || anyContains(dels, []byte(k)) {
				return nil, nil, rpctypes.ErrGRPCDuplicateKey
			}
			puts[k] = struct{}{}
		}
		for k := range putsElse {
			if _, dup := puts[k]; dup {
				if _, sameTxn := putsThen[k]; !sameTxn {
					return nil, nil, rpctypes.ErrGRPCDuplicateKey
				}
			}
			if anyContains(dels, []byte(k)) {
				return nil, nil, rpctypes.ErrGRPCDuplicateKey
			}
			puts[k] = struct{}{}
		}
		dels = append(dels, delsThen...)
		dels = append(dels, delsElse...)
	}
	for _, op := range reqs {
		p := op.GetRequestPut()
		if p == nil {
			continue
		}
		k := string(p.Key)
		if _, dup := puts[k]; dup || anyContains(dels, p.Key) {
			return nil, nil, rpctypes.ErrGRPCDuplicateKey
		}
		puts[k] = struct{}{}
	}
	return puts, dels, nil
}
