package v3rpc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/photoncloud/photoncloud/internal/chainfire/kvserver"
	"github.com/photoncloud/photoncloud/internal/chainfire/lease"
	"github.com/photoncloud/photoncloud/internal/chainfire/mvcc"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func put(k string) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte(k)}}}
}

func get(k string) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte(k)}}}
}

func del(k, end string) *pb.RequestOp {
	d := &pb.DeleteRangeRequest{Key: []byte(k)}
	if end != "" {
		d.RangeEnd = []byte(end)
	}
	return &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: d}}
}

func txn(then, els []*pb.RequestOp) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestTxn{RequestTxn: &pb.TxnRequest{Success: then, Failure: els}}}
}

func ops(o ...*pb.RequestOp) []*pb.RequestOp { return o }

func TestCheckRangeRequest(t *testing.T) {
	for _, tc := range []struct {
		r    *pb.RangeRequest
		want error
	}{
		{&pb.RangeRequest{Key: []byte("a")}, nil},
		{&pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}}, nil},
		{&pb.RangeRequest{}, rpctypes.ErrGRPCEmptyKey},
		{&pb.RangeRequest{Key: []byte{}, RangeEnd: []byte("z")}, rpctypes.ErrGRPCEmptyKey},
		{&pb.RangeRequest{Key: []byte("a"), SortOrder: pb.RangeRequest_DESCEND, SortTarget: pb.RangeRequest_VALUE}, nil},
		{&pb.RangeRequest{Key: []byte("a"), SortOrder: 3}, rpctypes.ErrGRPCInvalidSortOption},
		{&pb.RangeRequest{Key: []byte("a"), SortOrder: -1}, rpctypes.ErrGRPCInvalidSortOption},
		{&pb.RangeRequest{Key: []byte("a"), SortTarget: 5}, rpctypes.ErrGRPCInvalidSortOption},
		{&pb.RangeRequest{Key: []byte("a"), SortTarget: pb.RangeRequest_MOD}, nil},
	} {
		if err := checkRangeRequest(tc.r); !errors.Is(err, tc.want) {
			t.Errorf("checkRangeRequest(%v) = %v, want %v", tc.r, err, tc.want)
		}
	}
}

func TestCheckPutAndDeleteRequest(t *testing.T) {
	for _, tc := range []struct {
		r    *pb.PutRequest
		want error
	}{
		{&pb.PutRequest{Key: []byte("a"), Value: []byte("v")}, nil},
		{&pb.PutRequest{Value: []byte("v")}, rpctypes.ErrGRPCEmptyKey},
		{&pb.PutRequest{Key: []byte("a"), IgnoreValue: true}, nil},
		{&pb.PutRequest{Key: []byte("a"), IgnoreValue: true, Value: []byte("v")}, rpctypes.ErrGRPCValueProvided},
		{&pb.PutRequest{Key: []byte("a"), IgnoreLease: true}, nil},
		{&pb.PutRequest{Key: []byte("a"), IgnoreLease: true, Lease: 5}, rpctypes.ErrGRPCLeaseProvided},
		{&pb.PutRequest{Key: []byte("a"), IgnoreLease: true, IgnoreValue: true}, nil},
	} {
		if err := checkPutRequest(tc.r); !errors.Is(err, tc.want) {
			t.Errorf("checkPutRequest(%v) = %v, want %v", tc.r, err, tc.want)
		}
	}
	if err := checkDeleteRequest(&pb.DeleteRangeRequest{}); !errors.Is(err, rpctypes.ErrGRPCEmptyKey) {
		t.Errorf("empty delete key: %v", err)
	}
	if err := checkDeleteRequest(&pb.DeleteRangeRequest{Key: []byte("a"), RangeEnd: []byte{0}}); err != nil {
		t.Errorf("delete from a: %v", err)
	}
}

func TestCheckTxnRequest(t *testing.T) {
	many := func(n int) []*pb.RequestOp {
		var out []*pb.RequestOp
		for i := range n {
			out = append(out, put(fmt.Sprint(i)))
		}
		return out
	}
	manyCmp := func(n int) []*pb.Compare {
		var out []*pb.Compare
		for i := range n {
			out = append(out, &pb.Compare{Key: []byte(fmt.Sprint(i))})
		}
		return out
	}
	for name, tc := range map[string]struct {
		r    *pb.TxnRequest
		max  int
		want error
	}{
		"empty":                  {&pb.TxnRequest{}, 4, nil},
		"at the limit":           {&pb.TxnRequest{Success: many(4), Failure: many(4), Compare: manyCmp(4)}, 4, nil},
		"too many success":       {&pb.TxnRequest{Success: many(5)}, 4, rpctypes.ErrGRPCTooManyOps},
		"too many failure":       {&pb.TxnRequest{Failure: many(5)}, 4, rpctypes.ErrGRPCTooManyOps},
		"too many compares":      {&pb.TxnRequest{Compare: manyCmp(5)}, 4, rpctypes.ErrGRPCTooManyOps},
		"compare without key":    {&pb.TxnRequest{Compare: []*pb.Compare{{Key: []byte("a")}, {}}}, 4, rpctypes.ErrGRPCEmptyKey},
		"empty op":               {&pb.TxnRequest{Success: []*pb.RequestOp{{}}}, 4, rpctypes.ErrGRPCKeyNotFound},
		"empty op in failure":    {&pb.TxnRequest{Failure: []*pb.RequestOp{{}}}, 4, rpctypes.ErrGRPCKeyNotFound},
		"bad range op":           {&pb.TxnRequest{Success: ops(get(""))}, 4, rpctypes.ErrGRPCEmptyKey},
		"bad put op":             {&pb.TxnRequest{Success: ops(put(""))}, 4, rpctypes.ErrGRPCEmptyKey},
		"bad delete op":          {&pb.TxnRequest{Failure: ops(del("", ""))}, 4, rpctypes.ErrGRPCEmptyKey},
		"bad sort in nested txn": {&pb.TxnRequest{Success: ops(txn(ops(&pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte("a"), SortOrder: 9}}}), nil))}, 4, rpctypes.ErrGRPCInvalidSortOption},
		"put value with ignore":  {&pb.TxnRequest{Success: ops(&pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("a"), Value: []byte("v"), IgnoreValue: true}}})}, 4, rpctypes.ErrGRPCValueProvided},
		// Nested txns share the budget: the outer level uses 2 of 4, the
		// nested txn may use at most 2.
		"nested within budget": {&pb.TxnRequest{Success: ops(put("a"), txn(many(2), many(2)))}, 4, nil},
		"nested over budget":   {&pb.TxnRequest{Success: ops(put("a"), txn(many(3), nil))}, 4, rpctypes.ErrGRPCTooManyOps},
		"deep nesting budget":  {&pb.TxnRequest{Success: ops(txn(ops(txn(many(3), nil)), nil))}, 4, rpctypes.ErrGRPCTooManyOps},
	} {
		if err := checkTxnRequest(tc.r, tc.max); !errors.Is(err, tc.want) {
			t.Errorf("%s: checkTxnRequest = %v, want %v", name, err, tc.want)
		}
	}
}

func TestCheckIntervals(t *testing.T) {
	dup := rpctypes.ErrGRPCDuplicateKey
	for name, tc := range map[string]struct {
		ops  []*pb.RequestOp
		want error
	}{
		"distinct puts":                  {ops(put("a"), put("b"), get("a"), get("a")), nil},
		"same key twice":                 {ops(put("a"), put("b"), put("a")), dup},
		"put and point delete":           {ops(put("a"), del("a", "")), dup},
		"delete then put":                {ops(del("a", ""), put("a")), dup},
		"put inside deleted range":       {ops(del("a", "c"), put("b")), dup},
		"put at range end":               {ops(del("a", "c"), put("c")), nil},
		"put at range start":             {ops(del("a", "c"), put("a")), dup},
		"two deletes overlap":            {ops(del("a", "c"), del("b", "d")), nil},
		"delete to \\x00 is no interval": {ops(del("a", "\x00"), put("b")), nil},
		"empty (reversed) delete range":  {ops(del("c", "a"), put("b")), nil},
		"then and else same key":         {ops(txn(ops(put("a")), ops(put("a")))), nil},
		"nested then dup with outer put": {ops(put("a"), txn(ops(put("a")), nil)), dup},
		"nested else dup with outer put": {ops(put("a"), txn(nil, ops(put("a")))), dup},
		"nested dup within branch":       {ops(txn(ops(put("a"), put("a")), nil)), dup},
		"two nested txns same key":       {ops(txn(ops(put("a")), nil), txn(ops(put("a")), nil)), dup},
		"two nested txns then/else":      {ops(txn(ops(put("a")), nil), txn(nil, ops(put("a")))), dup},
		"nested put in outer delete":     {ops(del("a", "z"), txn(ops(put("m")), nil)), dup},
		"nested else put in outer del":   {ops(del("m", ""), txn(nil, ops(put("m")))), dup},
		"nested delete vs outer put":     {ops(put("m"), txn(ops(del("a", "z")), nil)), dup},
		"nested delete vs outer put e":   {ops(put("m"), txn(nil, ops(del("m", "")))), dup},
		"nested then delete else put":    {ops(txn(ops(del("m", "")), ops(put("m")))), nil},
		"deep nested dup":                {ops(put("k"), txn(ops(txn(nil, ops(put("k")))), nil)), dup},
		"deep nested then/else ok":       {ops(txn(ops(txn(ops(put("k")), ops(put("k")))), nil)), nil},
		"nested deletes may overlap":     {ops(del("a", "c"), txn(ops(del("b", "")), nil)), nil},
		"sibling nested delete then put": {ops(txn(ops(del("a", "z")), nil), txn(ops(put("m")), nil)), dup},
		"sibling nested put then delete": {ops(txn(ops(put("m")), nil), txn(ops(del("a", "z")), nil)), nil},
	} {
		_, _, err := checkIntervals(tc.ops)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: checkIntervals = %v, want %v", name, err, tc.want)
		}
	}
}

func TestTogRPCError(t *testing.T) {
	if togRPCError(nil) != nil {
		t.Fatal("nil error mapped to non-nil")
	}
	for _, e := range errorTable {
		for _, in := range []error{e.err, fmt.Errorf("wrapped: %w", e.err)} {
			got := togRPCError(in)
			if got != e.grpc {
				t.Errorf("togRPCError(%v) = %v, want %v", in, got, e.grpc)
			}
		}
	}
	// Spot checks of the mapping clients depend on.
	for in, want := range map[error]error{
		mvcc.ErrCompacted:           rpctypes.ErrGRPCCompacted,
		mvcc.ErrFutureRev:           rpctypes.ErrGRPCFutureRev,
		lease.ErrNotFound:           rpctypes.ErrGRPCLeaseNotFound,
		kvserver.ErrNoSpace:         rpctypes.ErrGRPCNoSpace,
		kvserver.ErrRequestTooLarge: rpctypes.ErrGRPCRequestTooLarge,
		context.DeadlineExceeded:    rpctypes.ErrGRPCDeadlineExceeded,
	} {
		if got := togRPCError(in); got != want {
			t.Errorf("togRPCError(%v) = %v, want %v", in, got, want)
		}
	}
	// Anything else is Internal, never Unknown.
	for _, in := range []error{errors.New("boom"), io.EOF, fmt.Errorf("x: %w", io.ErrUnexpectedEOF), errors.Join(errors.New("a"), errors.New("b"))} {
		got := togRPCError(in)
		if c := status.Code(got); c != codes.Internal {
			t.Errorf("togRPCError(%v) code = %v, want Internal", in, c)
		}
	}
	// Status errors pass through unchanged.
	st := status.Error(codes.ResourceExhausted, "x")
	if got := togRPCError(st); got != st {
		t.Errorf("status error not passed through: %v", got)
	}
	for _, e := range errorTable {
		if c := status.Code(e.grpc); c == codes.Unknown || c == codes.OK {
			t.Errorf("table maps %v to code %v", e.err, c)
		}
	}
}

// testServer starts an in-process member for the tests that apply requests.
func testServer(t testing.TB) *kvserver.Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := kvserver.Start(ctx, kvserver.Options{
		Name:              "n1",
		DataDir:           t.TempDir(),
		PeerURLs:          []string{"http://127.0.0.1:2380"},
		InitialCluster:    map[string][]string{"n1": {"http://127.0.0.1:2380"}},
		ClusterToken:      "t",
		MaxRequestBytes:   1536 * 1024,
		SnapshotCount:     10000,
		HeartbeatInterval: 10 * time.Millisecond,
		ElectionTimeout:   100 * time.Millisecond,
		QuotaBackendBytes: 2 << 30,
		Logger:            slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatalf("start member: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close member: %v", err)
		}
	})
	return s
}

func TestKVServiceValidatesBeforeApplying(t *testing.T) {
	s := testServer(t)
	kv := &kvService{s: s, h: headerFiller{s}, maxTxnOps: 8}
	ctx := t.Context()
	before := s.Rev()
	for name, rt := range map[string]*pb.TxnRequest{
		"duplicate in success": {Success: ops(put("a"), put("a"))},
		"duplicate in failure": {Compare: []*pb.Compare{{Key: []byte("x"), Target: pb.Compare_VERSION, Result: pb.Compare_EQUAL, TargetUnion: &pb.Compare_Version{Version: 99}}}, Failure: ops(put("a"), del("a", ""))},
		"too many ops":         {Success: ops(put("1"), put("2"), put("3"), put("4"), put("5"), put("6"), put("7"), put("8"), put("9"))},
		"empty key":            {Success: ops(put(""))},
	} {
		if _, err := kv.Txn(ctx, rt); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := kv.Put(ctx, &pb.PutRequest{}); !errors.Is(err, rpctypes.ErrGRPCEmptyKey) {
		t.Errorf("Put without key: %v", err)
	}
	if _, err := kv.Range(ctx, &pb.RangeRequest{}); !errors.Is(err, rpctypes.ErrGRPCEmptyKey) {
		t.Errorf("Range without key: %v", err)
	}
	if _, err := kv.DeleteRange(ctx, &pb.DeleteRangeRequest{}); !errors.Is(err, rpctypes.ErrGRPCEmptyKey) {
		t.Errorf("DeleteRange without key: %v", err)
	}
	if s.Rev() != before {
		t.Fatal("an invalid request changed the store")
	}
	// A valid one goes through with a full header.
	resp, err := kv.Txn(ctx, &pb.TxnRequest{Success: ops(put("a"), txn(ops(put("b")), ops(put("b"))))})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Header.GetMemberId() != s.ID() || resp.Header.GetClusterId() != s.ClusterID() || resp.Header.GetRaftTerm() == 0 || resp.Header.GetRevision() != before+1 {
		t.Fatalf("header = %v", resp.Header)
	}
	// Errors from below come back as etcd errors.
	if _, err := kv.Range(ctx, &pb.RangeRequest{Key: []byte("a"), Revision: before + 100}); !errors.Is(err, rpctypes.ErrGRPCFutureRev) {
		t.Fatalf("future revision: %v", err)
	}
	if _, err := kv.Put(ctx, &pb.PutRequest{Key: []byte("a"), Lease: 31337}); !errors.Is(err, rpctypes.ErrGRPCLeaseNotFound) {
		t.Fatalf("missing lease: %v", err)
	}
}
