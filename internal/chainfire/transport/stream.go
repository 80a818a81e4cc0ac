package transport

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// Raft messages travel on a connection of their own to the peer port rather
// than on a gRPC stream: each message then crosses one goroutine on either
// side (the sender's writer, the receiver's reader) instead of gRPC's four,
// which is most of the per-write CPU a leader spends on its followers.
//
// A raft stream opens with streamPreface in clear text, then the TLS
// handshake when peer TLS is on, then length-prefixed frames: a 4-byte
// big-endian length and a marshalled raftpb.Message, from sender to
// receiver only. The receiver writes back at most one byte, replyRemoved,
// before it closes a stream from a member that was removed. The preface
// cannot begin a TLS record (0x16) or HTTP/2 ("PRI "), so gRPC connections
// share the port unchanged.
const streamPreface = "CFRAFT1\n"

const replyRemoved byte = 'R'

const (
	// dialTimeout bounds the dial, preface and TLS handshake of a stream.
	dialTimeout = 2 * time.Second
	// writeTimeout bounds one write: a peer that stopped reading (paused,
	// or its network gone) is disconnected and redialled, and what was
	// queued for it is dropped for raft to resend.
	writeTimeout = 5 * time.Second
	// classifyTimeout bounds how long an accepted connection may take to
	// send its first bytes.
	classifyTimeout = 5 * time.Second
	// maxBatchBytes bounds the frames the writer gathers into one write.
	maxBatchBytes = 1 << 20
)

// appendFrame appends m as one frame to buf.
func appendFrame(buf []byte, m *raftpb.Message) ([]byte, error) {
	at := len(buf)
	buf = append(buf, 0, 0, 0, 0)
	buf, err := proto.MarshalOptions{}.MarshalAppend(buf, m)
	if err != nil {
		return buf[:at], err
	}
	n := len(buf) - at - 4
	if n > maxMessageBytes {
		return buf[:at], fmt.Errorf("message of %d bytes exceeds the %d-byte limit", n, maxMessageBytes)
	}
	binary.BigEndian.PutUint32(buf[at:], uint32(n))
	return buf, nil
}

// frameReader reads frames, reusing one buffer: unmarshalling copies what
// the message keeps.
type frameReader struct {
	r   *bufio.Reader
	buf []byte
}

func (fr *frameReader) next() (*raftpb.Message, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(fr.r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > maxMessageBytes {
		return nil, fmt.Errorf("frame of %d bytes exceeds the %d-byte limit", n, maxMessageBytes)
	}
	if cap(fr.buf) < int(n) {
		fr.buf = make([]byte, n)
	}
	b := fr.buf[:n]
	if _, err := io.ReadFull(fr.r, b); err != nil {
		return nil, err
	}
	if n > 1<<20 {
		fr.buf = nil // do not pin a rare large buffer
	}
	m := &raftpb.Message{}
	if err := proto.Unmarshal(b, m); err != nil {
		return nil, fmt.Errorf("decode message: %w", err)
	}
	return m, nil
}

// dialStream opens a raft stream to addr.
func dialStream(ctx context.Context, addr string, tlsCfg *tls.Config) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	if _, err := io.WriteString(conn, streamPreface); err != nil {
		_ = conn.Close()
		return nil, err
	}
	if tlsCfg != nil {
		tc := tls.Client(conn, tlsCfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = conn.Close()
			return nil, fmt.Errorf("TLS handshake: %w", err)
		}
		conn = tc
	}
	_ = conn.SetDeadline(time.Time{})
	return conn, nil
}

// stream keeps one raft stream to the peer and feeds it from the queue
// until the stream fails or the peer is stopped (nil).
func (t *Transport) stream(p *peer) error {
	conn, err := dialStream(p.ctx, p.addr, p.tls)
	if err != nil {
		if p.ctx.Err() != nil {
			return nil
		}
		return err
	}
	// The reader notices at once when the peer goes away or says this
	// member was removed; the writer alone would learn it only on a write.
	replies := make(chan error, 1)
	go func() {
		var b [1]byte
		_, err := io.ReadFull(conn, b[:])
		switch {
		case err != nil:
		case b[0] == replyRemoved:
			err = ErrRemoved
		default:
			err = fmt.Errorf("unexpected reply %q on the raft stream", b[0])
		}
		replies <- err
	}()
	p.connected.Store(true)
	defer func() {
		p.connected.Store(false)
		_ = conn.Close()
		for {
			select {
			case <-p.queue:
			default:
				return
			}
		}
	}()
	var buf []byte
	for {
		select {
		case <-p.ctx.Done():
			_ = conn.Close()
			<-replies
			return nil
		case err := <-replies:
			if errors.Is(err, ErrRemoved) {
				t.lg.Warn("a peer says this member was removed from the cluster", "peer", fmt.Sprintf("%x", p.id))
				t.mu.Lock()
				fn := t.removed
				t.mu.Unlock()
				if fn != nil {
					fn()
				}
			}
			if err == nil || errors.Is(err, io.EOF) {
				err = errors.New("peer closed the raft stream")
			}
			return err
		case m := <-p.queue:
			buf = t.appendOrLog(buf[:0], p, m)
		gather:
			for len(buf) < maxBatchBytes {
				select {
				case m := <-p.queue:
					buf = t.appendOrLog(buf, p, m)
				default:
					break gather
				}
			}
			_ = conn.SetWriteDeadline(time.Now().Add(writeTimeout))
			if _, err := conn.Write(buf); err != nil {
				_ = conn.Close()
				<-replies
				return err
			}
			if cap(buf) > 4*maxBatchBytes {
				buf = nil
			}
		}
	}
}

func (t *Transport) appendOrLog(buf []byte, p *peer, m *raftpb.Message) []byte {
	buf, err := appendFrame(buf, m)
	if err != nil {
		// raft resends; a message that can never be encoded is a bug.
		t.lg.Error("dropping a raft message", "peer", fmt.Sprintf("%x", p.id), "type", m.GetType().String(), "err", err)
		t.unreachable(p.id)
	}
	return buf
}

// Listener serves raft streams on a peer listener and passes every other
// connection (gRPC) on through Accept.
type Listener struct {
	l   net.Listener
	tls *tls.Config
	h   Handler
	lg  *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	conns  chan net.Conn
	wg     sync.WaitGroup

	mu     sync.Mutex
	active map[net.Conn]struct{}
}

// NewListener serves raft streams from l to h, with TLS when tlsCfg is not
// nil. Close it (gRPC's Serve does) to stop every stream it serves.
func NewListener(l net.Listener, tlsCfg *tls.Config, h Handler, lg *slog.Logger) *Listener {
	ctx, cancel := context.WithCancel(context.Background())
	ml := &Listener{l: l, tls: tlsCfg, h: h, lg: lg, ctx: ctx, cancel: cancel,
		conns: make(chan net.Conn), active: map[net.Conn]struct{}{}}
	ml.wg.Add(1)
	go ml.acceptLoop()
	return ml
}

// Accept returns the next connection that is not a raft stream.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.ctx.Done():
		return nil, net.ErrClosed
	}
}

// Addr is the listening address.
func (l *Listener) Addr() net.Addr { return l.l.Addr() }

// Close stops accepting, ends every raft stream and waits for them.
func (l *Listener) Close() error {
	l.cancel()
	err := l.l.Close()
	l.mu.Lock()
	for c := range l.active {
		_ = c.Close()
	}
	l.mu.Unlock()
	l.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

func (l *Listener) acceptLoop() {
	defer l.wg.Done()
	delay := 5 * time.Millisecond
	for {
		c, err := l.l.Accept()
		if err != nil {
			if l.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: wait, as net/http does.
			l.lg.Warn("peer listener accept", "err", err)
			select {
			case <-time.After(delay):
			case <-l.ctx.Done():
				return
			}
			delay = min(2*delay, time.Second)
			continue
		}
		delay = 5 * time.Millisecond
		if !l.track(c) {
			_ = c.Close()
			return
		}
		l.wg.Add(1)
		go l.serveConn(c)
	}
}

// track registers c for Close; false once the listener is closed.
func (l *Listener) track(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ctx.Err() != nil {
		return false
	}
	l.active[c] = struct{}{}
	return true
}

func (l *Listener) untrack(c net.Conn) {
	l.mu.Lock()
	delete(l.active, c)
	l.mu.Unlock()
}

// serveConn reads the first bytes of c: a raft stream is served here, and
// anything else goes to Accept with those bytes put back.
func (l *Listener) serveConn(c net.Conn) {
	defer l.wg.Done()
	head := make([]byte, len(streamPreface))
	_ = c.SetReadDeadline(time.Now().Add(classifyTimeout))
	n, err := io.ReadFull(c, head)
	_ = c.SetReadDeadline(time.Time{})
	if err == nil && string(head) == streamPreface {
		defer l.untrack(c)
		defer c.Close()
		l.serveStream(c)
		return
	}
	if err != nil && n == 0 {
		l.untrack(c)
		_ = c.Close()
		return
	}
	// gRPC owns the connection from here: it closes it.
	l.untrack(c)
	pc := &prefixedConn{Conn: c, r: io.MultiReader(bytes.NewReader(head[:n]), c)}
	select {
	case l.conns <- pc:
	case <-l.ctx.Done():
		_ = c.Close()
	}
}

func (l *Listener) serveStream(c net.Conn) {
	conn := c
	if l.tls != nil {
		tc := tls.Server(c, l.tls)
		ctx, cancel := context.WithTimeout(l.ctx, dialTimeout)
		err := tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			l.lg.Debug("raft stream TLS handshake", "remote", c.RemoteAddr().String(), "err", err)
			return
		}
		conn = tc
	}
	fr := &frameReader{r: bufio.NewReaderSize(conn, 64<<10)}
	for {
		m, err := fr.next()
		if err != nil {
			if l.ctx.Err() == nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				l.lg.Debug("raft stream ended", "remote", c.RemoteAddr().String(), "err", err)
			}
			return
		}
		if err := l.h.Step(l.ctx, m); err != nil {
			if errors.Is(err, ErrRemoved) {
				_ = conn.SetWriteDeadline(time.Now().Add(time.Second))
				_, _ = conn.Write([]byte{replyRemoved})
			}
			return
		}
	}
}

// prefixedConn is a connection whose first bytes were already read.
type prefixedConn struct {
	net.Conn
	r io.Reader
}

func (c *prefixedConn) Read(p []byte) (int, error) { return c.r.Read(p) }
