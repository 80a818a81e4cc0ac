package transport

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/photoncloud/photoncloud/internal/platform"
	"github.com/photoncloud/photoncloud/internal/platform/testcerts"
)

// stepHandler records the raft messages delivered to it.
type stepHandler struct {
	snapHandler
	got  chan *raftpb.Message
	fail error
}

func (h *stepHandler) Step(_ context.Context, m *raftpb.Message) error {
	if h.fail != nil {
		return h.fail
	}
	h.got <- m
	return nil
}

func appMsg(to, index uint64, data []byte) *raftpb.Message {
	return &raftpb.Message{Type: raftpb.MsgApp.Enum(), From: new(uint64(1)), To: new(uint64(to)), Index: new(index),
		Entries: []*raftpb.Entry{{Index: new(index + 1), Term: new(uint64(1)), Data: data}}}
}

// sendUntilConnected sends m until the stream to its peer is up: messages
// for a peer without a stream are dropped by design.
func sendUntilConnected(t *testing.T, tr *Transport, m *raftpb.Message, h *stepHandler) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		tr.Send([]*raftpb.Message{m})
		select {
		case got := <-h.got:
			if !proto.Equal(got, m) {
				t.Fatalf("received %v, want %v", got, m)
			}
			return
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("no message got through within 10s")
		}
	}
}

// Messages arrive whole and in order, however they are batched, and gRPC
// calls keep working on the same port.
func TestStreamDeliversInOrder(t *testing.T) {
	h := &stepHandler{got: make(chan *raftpb.Message, 8192)}
	var unreachable atomic.Int64
	tr := New(slog.New(slog.DiscardHandler), nil, func(uint64) { unreachable.Add(1) })
	defer tr.Close()
	if err := tr.AddPeer(2, []string{startPeer(t, h)}); err != nil {
		t.Fatal(err)
	}
	sendUntilConnected(t, tr, appMsg(2, 0, []byte("hello")), h)
	large := bytes.Repeat([]byte("x"), 3*maxBatchBytes)
	var sent []*raftpb.Message
	for i := range 2000 {
		data := []byte{byte(i)}
		if i%500 == 0 {
			data = large
		}
		m := appMsg(2, uint64(i+1), data)
		sent = append(sent, m)
		tr.Send([]*raftpb.Message{m})
		if i%100 == 0 {
			time.Sleep(time.Millisecond) // let the queue drain: a full one drops
		}
	}
	for i, want := range sent {
		select {
		case got := <-h.got:
			if !proto.Equal(got, want) {
				t.Fatalf("message %d: got index %d, want %d", i, got.GetIndex(), want.GetIndex())
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("message %d of %d never arrived (%d reported unreachable)", i, len(sent), unreachable.Load())
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := tr.HashKV(ctx, 2, 0); err != nil {
		t.Fatalf("a gRPC call beside the raft stream: %v", err)
	}
}

// A peer that says this member was removed ends the stream and tells the
// transport's owner.
func TestStreamRemovedReply(t *testing.T) {
	h := &stepHandler{got: make(chan *raftpb.Message, 1), fail: ErrRemoved}
	tr := New(slog.New(slog.DiscardHandler), nil, func(uint64) {})
	defer tr.Close()
	removed := make(chan struct{}, 1)
	tr.OnRemoved(func() {
		select {
		case removed <- struct{}{}:
		default:
		}
	})
	if err := tr.AddPeer(2, []string{startPeer(t, h)}); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(10 * time.Second)
	for {
		tr.Send([]*raftpb.Message{appMsg(2, 1, nil)})
		select {
		case <-removed:
			return
		case <-deadline:
			t.Fatal("the removed reply never reached OnRemoved")
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Nothing queued for a peer that is down is delivered when it comes back:
// the messages of the outage are dropped and reported unreachable.
func TestStreamDropsWhileDisconnected(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	var unreachable atomic.Int64
	tr := New(slog.New(slog.DiscardHandler), nil, func(uint64) { unreachable.Add(1) })
	defer tr.Close()
	if err := tr.AddPeer(2, []string{"http://" + addr}); err != nil {
		t.Fatal(err)
	}
	stale := appMsg(2, 7, []byte("stale"))
	for range 100 {
		tr.Send([]*raftpb.Message{stale})
	}
	if unreachable.Load() == 0 {
		t.Fatal("messages to a peer that is down were not reported unreachable")
	}
	l, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("port %s taken meanwhile: %v", addr, err)
	}
	h := &stepHandler{got: make(chan *raftpb.Message, 1024)}
	servePeer(t, l, h, nil, "http")
	fresh := appMsg(2, 8, []byte("fresh"))
	sendUntilConnected(t, tr, fresh, h)
	select {
	case m := <-h.got:
		if m.GetIndex() == stale.GetIndex() {
			t.Fatalf("a message sent while the peer was down arrived after it came back")
		}
	case <-time.After(100 * time.Millisecond):
	}
}

// With peer TLS and client certificates required, the raft stream is
// encrypted and a sender without a certificate gets nothing through.
func TestStreamTLS(t *testing.T) {
	certs := testcerts.New(t)
	files := platform.TLSFiles{CertFile: certs.ServerCertFile, KeyFile: certs.ServerKeyFile, TrustedCAFile: certs.CAFile, ClientCertAuth: true}
	serverTLS, err := files.ServerConfig()
	if err != nil {
		t.Fatal(err)
	}
	clientTLS, err := files.ClientConfig("")
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &stepHandler{got: make(chan *raftpb.Message, 16)}
	url := servePeer(t, l, h, serverTLS, "https")

	tr := New(slog.New(slog.DiscardHandler), clientTLS, func(uint64) {})
	defer tr.Close()
	if err := tr.AddPeer(2, []string{url}); err != nil {
		t.Fatal(err)
	}
	sendUntilConnected(t, tr, appMsg(2, 1, []byte("over TLS")), h)

	noCert := platform.TLSFiles{TrustedCAFile: certs.CAFile}
	anonTLS, err := noCert.ClientConfig("")
	if err != nil {
		t.Fatal(err)
	}
	anon := New(slog.New(slog.DiscardHandler), anonTLS, func(uint64) {})
	defer anon.Close()
	if err := anon.AddPeer(2, []string{url}); err != nil {
		t.Fatal(err)
	}
	for range 20 {
		anon.Send([]*raftpb.Message{appMsg(2, 99, nil)})
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case m := <-h.got:
		t.Fatalf("a sender without a client certificate delivered %v", m)
	default:
	}
}

// A connection that sends garbage after the preface is closed without
// reaching raft, and the listener keeps serving.
func TestStreamRejectsGarbage(t *testing.T) {
	h := &stepHandler{got: make(chan *raftpb.Message, 16)}
	url := startPeer(t, h)
	addr := url[len("http://"):]
	for _, tail := range [][]byte{
		{0xff, 0xff, 0xff, 0xff},                   // frame far over the limit
		{0, 0, 0, 3, 0xff, 0xff, 0xff},             // undecodable message
		[]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), // not a frame at all
	} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = c.Write(append([]byte(streamPreface), tail...))
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Errorf("garbage %q: the listener answered instead of closing", tail)
		}
		_ = c.Close()
	}
	tr := New(slog.New(slog.DiscardHandler), nil, func(uint64) {})
	defer tr.Close()
	if err := tr.AddPeer(2, []string{url}); err != nil {
		t.Fatal(err)
	}
	sendUntilConnected(t, tr, appMsg(2, 1, []byte("after garbage")), h)
}

// FuzzFrameReader: any byte stream after the preface gives messages or an
// error, never a panic or an allocation beyond the frame limit.
func FuzzFrameReader(f *testing.F) {
	good, err := appendFrame(nil, appMsg(2, 5, []byte("entry")))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(append(append([]byte{}, good...), good[:7]...))
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		fr := &frameReader{r: bufio.NewReader(bytes.NewReader(data))}
		for range 64 {
			m, err := fr.next()
			if err != nil {
				return
			}
			if _, err := appendFrame(nil, m); err != nil {
				t.Fatalf("a decoded message does not encode: %v", err)
			}
		}
	})
}

func TestFrameLimit(t *testing.T) {
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], maxMessageBytes+1)
	fr := &frameReader{r: bufio.NewReader(bytes.NewReader(hdr[:]))}
	if _, err := fr.next(); err == nil {
		t.Fatalf("a frame over the limit gave %v, want an error", err)
	}
}
