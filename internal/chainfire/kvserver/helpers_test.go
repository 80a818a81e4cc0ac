package kvserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testOptions are the options of the brief: one member, fast raft, a small
// snapshot count so that the raft log gets compacted.
func testOptions(dir string) Options {
	return Options{
		Name:              "n1",
		DataDir:           dir,
		PeerURLs:          []string{"http://127.0.0.1:2380"},
		ClientURLs:        []string{"http://127.0.0.1:2379"},
		InitialCluster:    map[string][]string{"n1": {"http://127.0.0.1:2380"}},
		ClusterToken:      "t",
		MaxRequestBytes:   1536 * 1024,
		SnapshotCount:     50,
		HeartbeatInterval: 10 * time.Millisecond,
		ElectionTimeout:   100 * time.Millisecond,
		QuotaBackendBytes: 2 << 30,
		Logger:            slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

func startWith(t testing.TB, opts Options) *Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := Start(ctx, opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	return s
}

// startServer starts a member on a fresh directory and closes it at cleanup.
func startServer(t testing.TB) (*Server, Options) {
	t.Helper()
	opts := testOptions(t.TempDir())
	s := startWith(t, opts)
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s, opts
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mustPut(t testing.TB, s *Server, key, val string, lease int64) *pb.PutResponse {
	t.Helper()
	resp, err := s.Put(ctxT(t), &pb.PutRequest{Key: []byte(key), Value: []byte(val), Lease: lease})
	if err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
	return resp
}

func mustGet(t testing.TB, s *Server, key string) (val string, ok bool) {
	t.Helper()
	resp, err := s.Range(ctxT(t), &pb.RangeRequest{Key: []byte(key)})
	if err != nil {
		t.Fatalf("Range(%q): %v", key, err)
	}
	if len(resp.Kvs) == 0 {
		return "", false
	}
	return string(resp.Kvs[0].Value), true
}

func mustRange(t testing.TB, s *Server, r *pb.RangeRequest) *pb.RangeResponse {
	t.Helper()
	resp, err := s.Range(ctxT(t), r)
	if err != nil {
		t.Fatalf("Range(%v): %v", r, err)
	}
	return resp
}

func keysOf(resp *pb.RangeResponse) []string {
	var out []string
	for _, kv := range resp.Kvs {
		out = append(out, string(kv.Key))
	}
	return out
}

func mustGrant(t testing.TB, s *Server, id, ttl int64) *pb.LeaseGrantResponse {
	t.Helper()
	resp, err := s.LeaseGrant(ctxT(t), &pb.LeaseGrantRequest{ID: id, TTL: ttl})
	if err != nil {
		t.Fatalf("LeaseGrant(%d, %d): %v", id, ttl, err)
	}
	return resp
}

func wantErr(t testing.TB, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("err = %v, want %v", err, want)
	}
}

func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Ops for building txns.
func opPut(k, v string) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte(k), Value: []byte(v)}}}
}

func opPutLease(k, v string, lease int64) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte(k), Value: []byte(v), Lease: lease}}}
}

func opGet(k string) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte(k)}}}
}

func opRange(r *pb.RangeRequest) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: r}}
}

func opDel(k, end string) *pb.RequestOp {
	d := &pb.DeleteRangeRequest{Key: []byte(k)}
	if end != "" {
		d.RangeEnd = []byte(end)
	}
	return &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: d}}
}

func opTxn(rt *pb.TxnRequest) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestTxn{RequestTxn: rt}}
}

func fmtKey(i int) string { return fmt.Sprintf("k%03d", i) }

func contextWithCancel(t testing.TB) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return ctx, cancel
}
