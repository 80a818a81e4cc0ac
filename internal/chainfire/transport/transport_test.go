package transport

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// snapHandler records what a snapshot stream delivered.
type snapHandler struct {
	got  chan []byte
	fail error
}

func (h *snapHandler) Step(context.Context, *raftpb.Message) error { return nil }
func (h *snapHandler) ReceiveSnapshot(_ context.Context, m *raftpb.Message, body io.Reader) error {
	if h.fail != nil {
		return h.fail
	}
	b, err := io.ReadAll(body)
	if err != nil {
		return err
	}
	if m.GetSnapshot().GetMetadata().GetIndex() != 42 {
		return errors.New("wrong message")
	}
	h.got <- b
	return nil
}
func (h *snapHandler) LeaseRenew(context.Context, int64) (int64, error)   { return 0, nil }
func (h *snapHandler) LearnerReady(context.Context, uint64) (bool, error) { return false, nil }
func (h *snapHandler) Membership(context.Context) ([]byte, error)         { return nil, nil }
func (h *snapHandler) HashKV(context.Context, int64) (*pb.HashKVResponse, error) {
	return &pb.HashKVResponse{}, nil
}

func startPeer(t *testing.T, h Handler) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return servePeer(t, l, h, nil, "http")
}

// servePeer serves gRPC and raft streams on l, as a member does.
func servePeer(t *testing.T, l net.Listener, h Handler, tlsCfg *tls.Config, scheme string) string {
	t.Helper()
	var opts []grpc.ServerOption
	if tlsCfg != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(tlsCfg)))
	}
	gs := grpc.NewServer(opts...)
	Register(gs, h)
	ml := NewListener(l, tlsCfg, h, slog.New(slog.DiscardHandler))
	done := make(chan struct{})
	go func() { _ = gs.Serve(ml); close(done) }()
	t.Cleanup(func() {
		gs.Stop()
		_ = ml.Close()
		<-done
	})
	return scheme + "://" + l.Addr().String()
}

func snapMsg() *raftpb.Message {
	return &raftpb.Message{Type: raftpb.MsgSnap.Enum(), To: new(uint64(2)), Snapshot: &raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{Index: new(uint64(42))}}}
}

// A snapshot several chunks long arrives whole and in order.
func TestSendSnapshotStreamsChunks(t *testing.T) {
	h := &snapHandler{got: make(chan []byte, 1)}
	tr := New(slog.New(slog.DiscardHandler), nil, func(uint64) {})
	defer tr.Close()
	if err := tr.AddPeer(2, []string{startPeer(t, h)}); err != nil {
		t.Fatal(err)
	}
	body := bytes.Repeat([]byte("0123456789abcdef"), (3*snapshotChunkBytes+12345)/16)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := tr.SendSnapshot(ctx, snapMsg(), bytes.NewReader(body)); err != nil {
		t.Fatalf("SendSnapshot: %v", err)
	}
	if got := <-h.got; !bytes.Equal(got, body) {
		t.Fatalf("received %d bytes, want the %d sent", len(got), len(body))
	}
}

// The receiver's refusal reaches the sender, so raft hears of the failure.
func TestSendSnapshotReportsReceiverError(t *testing.T) {
	h := &snapHandler{fail: errors.New("disk full")}
	tr := New(slog.New(slog.DiscardHandler), nil, func(uint64) {})
	defer tr.Close()
	if err := tr.AddPeer(2, []string{startPeer(t, h)}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := tr.SendSnapshot(ctx, snapMsg(), bytes.NewReader(make([]byte, 3*snapshotChunkBytes)))
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("SendSnapshot = %v, want the receiver's error", err)
	}
}
