// Package transport carries raft messages between Chainfire members: one
// long-lived raft stream per peer on the peer port (see stream.go), fed from
// a bounded queue, so a slow or dead peer never blocks the raft loop (raft
// retransmits what is dropped). Snapshots and the few unary calls a follower
// makes to the leader go over gRPC on the same port.
//
// The gRPC service is declared here by hand rather than generated: its
// messages are raft's and etcd's own protobuf types.
package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// queueSize bounds the messages waiting for one peer.
const queueSize = 4096

// maxMessageBytes bounds one peer message: raft batches entries up to 1 MiB
// per message, but a single entry may be as large as the largest request a
// member accepts. Snapshots do not travel as one message: see SendSnapshot.
const maxMessageBytes = 256 << 20

// snapshotChunkBytes is the size of the pieces a snapshot is streamed in, so
// neither side holds a whole snapshot in memory and gRPC flow control paces
// the sender to what the receiver writes to disk.
const snapshotChunkBytes = 1 << 20

// Handler is the member side of incoming peer traffic.
type Handler interface {
	// Step delivers a raft message to the local raft node.
	Step(ctx context.Context, m *raftpb.Message) error
	// ReceiveSnapshot takes a snapshot message whose payload, the leader's
	// state, is read from body rather than carried in the message. It
	// returns once the payload is stored and the message handed to raft.
	ReceiveSnapshot(ctx context.Context, m *raftpb.Message, body io.Reader) error
	// LeaseRenew renews a lease on the leader for a follower.
	LeaseRenew(ctx context.Context, id int64) (int64, error)
	// LearnerReady tells, on the leader, whether a learner has caught up.
	LearnerReady(ctx context.Context, id uint64) (bool, error)
	// Membership is the member's record of the cluster, as JSON, for a
	// member that joins: as of a read barrier, so that it holds the member
	// the leader just added for the joiner.
	Membership(ctx context.Context) ([]byte, error)
	// HashKV is the member's hash of its history up to rev.
	HashKV(ctx context.Context, rev int64) (*pb.HashKVResponse, error)
}

const serviceName = "chainfire.peer.v1.Peer"

// ErrRemoved is what a Handler's Step returns for a message from a member
// that was removed from the cluster. The sender is told, and stops: without
// it, a member removed while cut off would campaign forever.
var ErrRemoved = errors.New("the sending member was removed from the cluster")

// Fixed flow-control windows for peer connections: large enough that a
// stream of appends never waits for a window update on a LAN, and fixed so
// that gRPC does not run its bandwidth-delay estimator, whose pings and
// window updates cost CPU on every busy connection.
const (
	streamWindow = 4 << 20
	connWindow   = 16 << 20
)

// peerConnectParams keeps reconnecting to a peer that is down at least once
// a second: gRPC's default backoff grows to two minutes, which would leave a
// restarted member cut off long after it is back.
var peerConnectParams = grpc.ConnectParams{
	Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
	MinConnectTimeout: time.Second,
}

// ServerOptions are the gRPC server options of the peer listener.
func ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.InitialWindowSize(streamWindow), grpc.InitialConnWindowSize(connWindow)}
}

// Register serves the peer service for h on gs.
func Register(gs *grpc.Server, h Handler) {
	gs.RegisterService(&grpc.ServiceDesc{
		ServiceName: serviceName,
		HandlerType: (*any)(nil),
		Streams: []grpc.StreamDesc{{
			StreamName:    "Snapshot",
			ClientStreams: true,
			Handler: func(_ any, stream grpc.ServerStream) error {
				m := &raftpb.Message{}
				if err := stream.RecvMsg(m); err != nil {
					return err
				}
				if m.GetType() != raftpb.MsgSnap {
					return fmt.Errorf("snapshot stream opened with a %s message", m.GetType())
				}
				body := &chunkReader{stream: stream}
				if err := h.ReceiveSnapshot(stream.Context(), m, body); err != nil {
					return err
				}
				return stream.SendMsg(&emptypb.Empty{})
			},
		}},
		Methods: []grpc.MethodDesc{{
			MethodName: "HashKV",
			Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
				req := &pb.HashKVRequest{}
				if err := dec(req); err != nil {
					return nil, err
				}
				return h.HashKV(ctx, req.Revision)
			},
		}, {
			MethodName: "LearnerReady",
			Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
				req := &wrapperspb.UInt64Value{}
				if err := dec(req); err != nil {
					return nil, err
				}
				ok, err := h.LearnerReady(ctx, req.Value)
				if err != nil {
					return nil, err
				}
				return wrapperspb.Bool(ok), nil
			},
		}, {
			MethodName: "Membership",
			Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
				if err := dec(&emptypb.Empty{}); err != nil {
					return nil, err
				}
				b, err := h.Membership(ctx)
				if err != nil {
					return nil, err
				}
				return wrapperspb.Bytes(b), nil
			},
		}, {
			MethodName: "LeaseRenew",
			Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
				req := &pb.LeaseKeepAliveRequest{}
				if err := dec(req); err != nil {
					return nil, err
				}
				ttl, err := h.LeaseRenew(ctx, req.ID)
				if err != nil {
					return nil, err
				}
				return &pb.LeaseKeepAliveResponse{ID: req.ID, TTL: ttl}, nil
			},
		}},
	}, struct{}{})
}

// Transport sends to the peers. It is safe for concurrent use.
type Transport struct {
	lg          *slog.Logger
	tls         *tls.Config
	unreachable func(id uint64)

	mu      sync.Mutex
	peers   map[uint64]*peer
	removed func()
	wg      sync.WaitGroup
}

// OnRemoved sets what to do when a peer answers that this member was
// removed from the cluster.
func (t *Transport) OnRemoved(fn func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.removed = fn
}

// New returns a transport. tlsCfg secures connections when not nil;
// unreachable is told when a message to a peer could not be delivered.
func New(lg *slog.Logger, tlsCfg *tls.Config, unreachable func(id uint64)) *Transport {
	return &Transport{lg: lg, tls: tlsCfg, unreachable: unreachable, peers: map[uint64]*peer{}}
}

type peer struct {
	id    uint64
	addr  string      // host:port of the peer listener
	tls   *tls.Config // nil for a plain-text peer URL
	conn  *grpc.ClientConn
	queue chan *raftpb.Message
	// ctx ends when the peer is removed or the transport closed.
	ctx    context.Context
	cancel context.CancelFunc
	// connected is set while a stream to the peer is open. Messages for a
	// peer without one are dropped rather than queued: raft resends what
	// matters, and a queue held across a peer's restart would deliver stale
	// messages, such as a proposal forwarded long after its client gave up.
	connected atomic.Bool
}

// AddPeer starts sending to a member at one of its peer URLs.
func (t *Transport) AddPeer(id uint64, peerURLs []string) error {
	if len(peerURLs) == 0 {
		return fmt.Errorf("peer %x has no URL", id)
	}
	u, err := url.Parse(peerURLs[0])
	if err != nil {
		return fmt.Errorf("peer %x URL %q: %w", id, peerURLs[0], err)
	}
	creds, err := peerCredentials(u, t.tls)
	if err != nil {
		return fmt.Errorf("peer %x: %w", id, err)
	}
	conn, err := grpc.NewClient(u.Host, grpc.WithTransportCredentials(creds),
		grpc.WithInitialWindowSize(streamWindow), grpc.WithInitialConnWindowSize(connWindow),
		grpc.WithConnectParams(peerConnectParams),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(maxMessageBytes), grpc.MaxCallRecvMsgSize(maxMessageBytes)))
	if err != nil {
		return fmt.Errorf("peer %x: %w", id, err)
	}
	var streamTLS *tls.Config
	if u.Scheme == "https" {
		streamTLS = t.tls.Clone()
		streamTLS.ServerName = u.Hostname()
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &peer{id: id, addr: u.Host, tls: streamTLS, conn: conn, queue: make(chan *raftpb.Message, queueSize), ctx: ctx, cancel: cancel}
	t.mu.Lock()
	if old := t.peers[id]; old != nil {
		t.mu.Unlock()
		cancel()
		_ = conn.Close()
		return nil
	}
	t.peers[id] = p
	t.mu.Unlock()
	t.wg.Add(1)
	go t.run(p)
	return nil
}

// RemovePeer stops sending to a member.
func (t *Transport) RemovePeer(id uint64) {
	t.mu.Lock()
	p := t.peers[id]
	delete(t.peers, id)
	t.mu.Unlock()
	if p != nil {
		p.cancel()
	}
}

// Send queues messages for their peers without blocking; a full queue or a
// peer not connected drops the message and reports the peer unreachable, and
// raft resends.
func (t *Transport) Send(msgs []*raftpb.Message) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, m := range msgs {
		p := t.peers[m.GetTo()]
		if p == nil {
			continue
		}
		if !p.connected.Load() {
			t.unreachable(p.id)
			continue
		}
		select {
		case p.queue <- m:
		default:
			t.unreachable(p.id)
		}
	}
}

// SendSnapshot streams a snapshot message to its peer: the message first,
// with its payload read from body instead of m.Snapshot.Data, in chunks. It
// returns once the peer has stored the payload and handed the message to its
// raft node, or with the first error of either side.
func (t *Transport) SendSnapshot(ctx context.Context, m *raftpb.Message, body io.Reader) error {
	t.mu.Lock()
	p := t.peers[m.GetTo()]
	t.mu.Unlock()
	if p == nil {
		return fmt.Errorf("no connection to member %x", m.GetTo())
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-p.ctx.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	desc := &grpc.StreamDesc{StreamName: "Snapshot", ClientStreams: true}
	cs, err := p.conn.NewStream(ctx, desc, "/"+serviceName+"/Snapshot")
	if err != nil {
		return err
	}
	if err := cs.SendMsg(m); err != nil {
		return finishStream(cs, err)
	}
	buf := make([]byte, snapshotChunkBytes)
	for {
		n, rerr := io.ReadFull(body, buf)
		if n > 0 {
			if err := cs.SendMsg(wrapperspb.Bytes(buf[:n])); err != nil {
				return finishStream(cs, err)
			}
		}
		if errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF) {
			break
		}
		if rerr != nil {
			return fmt.Errorf("read snapshot: %w", rerr)
		}
	}
	if err := cs.CloseSend(); err != nil {
		return finishStream(cs, err)
	}
	return cs.RecvMsg(&emptypb.Empty{})
}

// finishStream turns a failed send into the receiver's reason when there is
// one: gRPC reports io.EOF on send and keeps the status for RecvMsg.
func finishStream(cs grpc.ClientStream, err error) error {
	if errors.Is(err, io.EOF) {
		if rerr := cs.RecvMsg(&emptypb.Empty{}); rerr != nil {
			return rerr
		}
	}
	return err
}

// chunkReader reads the payload of a snapshot stream.
type chunkReader struct {
	stream grpc.ServerStream
	buf    []byte
}

func (r *chunkReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		chunk := &wrapperspb.BytesValue{}
		if err := r.stream.RecvMsg(chunk); err != nil {
			return 0, err
		}
		r.buf = chunk.Value
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// LeaseRenew asks the member id (the leader) to renew a lease.
func (t *Transport) LeaseRenew(ctx context.Context, id uint64, lease int64) (int64, error) {
	resp := &pb.LeaseKeepAliveResponse{}
	if err := t.invoke(ctx, id, "LeaseRenew", &pb.LeaseKeepAliveRequest{ID: lease}, resp); err != nil {
		return 0, err
	}
	return resp.TTL, nil
}

// LearnerReady asks the member id (the leader) whether a learner caught up.
func (t *Transport) LearnerReady(ctx context.Context, id uint64, learner uint64) (bool, error) {
	resp := &wrapperspb.BoolValue{}
	if err := t.invoke(ctx, id, "LearnerReady", wrapperspb.UInt64(learner), resp); err != nil {
		return false, err
	}
	return resp.Value, nil
}

// HashKV asks member id for its hash of the history up to rev.
func (t *Transport) HashKV(ctx context.Context, id uint64, rev int64) (*pb.HashKVResponse, error) {
	resp := &pb.HashKVResponse{}
	if err := t.invoke(ctx, id, "HashKV", &pb.HashKVRequest{Revision: rev}, resp); err != nil {
		return nil, err
	}
	return resp, nil
}

// invoke makes a unary peer call to member id.
func (t *Transport) invoke(ctx context.Context, id uint64, method string, req, resp any) error {
	t.mu.Lock()
	p := t.peers[id]
	t.mu.Unlock()
	if p == nil {
		return fmt.Errorf("no connection to member %x", id)
	}
	return p.conn.Invoke(ctx, "/"+serviceName+"/"+method, req, resp)
}

// FetchMembership asks the member at peerURL for its record of the cluster,
// which a member joining it needs to learn its id.
func FetchMembership(ctx context.Context, peerURL string, tlsCfg *tls.Config) ([]byte, error) {
	u, err := url.Parse(peerURL)
	if err != nil {
		return nil, err
	}
	creds, err := peerCredentials(u, tlsCfg)
	if err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient(u.Host, grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	resp := &wrapperspb.BytesValue{}
	if err := conn.Invoke(ctx, "/"+serviceName+"/Membership", &emptypb.Empty{}, resp); err != nil {
		return nil, fmt.Errorf("membership from %s: %w", peerURL, err)
	}
	return resp.Value, nil
}

// peerCredentials secures a connection to an https peer URL with tlsCfg.
func peerCredentials(u *url.URL, tlsCfg *tls.Config) (credentials.TransportCredentials, error) {
	if u.Scheme != "https" {
		return insecure.NewCredentials(), nil
	}
	if tlsCfg == nil {
		return nil, fmt.Errorf("peer URL %s needs --peer-cert-file", u)
	}
	cfg := tlsCfg.Clone()
	cfg.ServerName = u.Hostname()
	return credentials.NewTLS(cfg), nil
}

// run keeps one raft stream to the peer open and feeds it from the queue.
func (t *Transport) run(p *peer) {
	defer t.wg.Done()
	defer p.conn.Close()
	backoff := 50 * time.Millisecond
	for p.ctx.Err() == nil {
		start := time.Now()
		err := t.stream(p)
		if err == nil {
			return
		}
		t.unreachable(p.id)
		if time.Since(start) > time.Second {
			backoff = 50 * time.Millisecond // it was up: retry soon
		}
		select {
		case <-p.ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxRedialDelay)
	}
}

// maxRedialDelay bounds the wait between dials of a peer that is down. A
// restarted member learns the leader from the leader's first message after
// the leader dialled it again, so this bound was most of the time a
// restarted member stayed without a leader (0.5-1 s at one second). A
// refused dial every 100 ms costs nothing; etcd's peer streams retry as
// often.
const maxRedialDelay = 100 * time.Millisecond

// Close stops every peer connection and waits for the senders.
func (t *Transport) Close() {
	t.mu.Lock()
	peers := t.peers
	t.peers = map[uint64]*peer{}
	t.mu.Unlock()
	for _, p := range peers {
		p.cancel()
	}
	t.wg.Wait()
}
