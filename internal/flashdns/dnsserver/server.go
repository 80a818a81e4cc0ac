package dnsserver

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/photoncloud/photoncloud/internal/flashdns/zone"
)

// Server is a running DNS server. Create it with Start, stop it with Close.
type Server struct {
	h     *handler
	addrs []*boundAddr
	pool  sync.Pool // *worker for TCP requests
	slots chan struct{}
	done  chan struct{}
	wg    sync.WaitGroup

	mu     sync.Mutex
	conns  map[*net.TCPConn]struct{}
	closed bool

	notifier  *notifier
	closeOnce sync.Once
}

// testForcePktinfo makes tests exercise the wildcard-address reply path on
// loopback addresses.
var testForcePktinfo bool

// Start binds every address and starts serving; it returns once all sockets
// are listening. ctx bounds only the binding; the server runs until Close.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	st, err := newSettings(cfg)
	if err != nil {
		return nil, err
	}
	h := &handler{cfg: st, log: st.Logger, now: time.Now}
	h.m = newMetrics(st.Registry, st.Logger)
	s := &Server{
		h:     h,
		slots: make(chan struct{}, st.MaxTCPConns),
		done:  make(chan struct{}),
		conns: make(map[*net.TCPConn]struct{}),
	}
	s.pool.New = func() any { return newWorker(h) }
	for _, a := range st.Addrs {
		b, err := listenAddr(ctx, a, st.SocketsPerAddr, testForcePktinfo)
		if err != nil {
			for _, b := range s.addrs {
				b.close()
			}
			return nil, fmt.Errorf("dnsserver: %w", err)
		}
		s.addrs = append(s.addrs, b)
	}
	s.notifier = newNotifier(h)
	for _, b := range s.addrs {
		for _, c := range b.udp {
			s.wg.Add(1)
			go s.serveUDP(c, b.pktinfo)
		}
		for _, l := range b.tcp {
			s.wg.Add(1)
			go s.acceptTCP(l)
		}
	}
	st.Logger.Info("dns server listening", "udp", s.UDPAddrs(), "tcp", s.TCPAddrs(),
		"sockets_per_addr", st.SocketsPerAddr)
	return s, nil
}

// UDPAddrs returns the bound UDP addresses, one per configured address.
func (s *Server) UDPAddrs() []string {
	var out []string
	for _, b := range s.addrs {
		out = append(out, b.udp[0].LocalAddr().String())
	}
	return out
}

// TCPAddrs returns the bound TCP addresses, one per configured address.
func (s *Server) TCPAddrs() []string {
	var out []string
	for _, b := range s.addrs {
		out = append(out, b.tcp[0].Addr().String())
	}
	return out
}

// ZoneChanged tells the server that a zone was replaced: old is the previous
// snapshot (nil for a new zone), new the current one (nil for a deleted
// zone). When the serial changed it queues a NOTIFY to every NotifyTarget
// and returns at once; a newer change of the same zone supersedes a pending
// one.
func (s *Server) ZoneChanged(old, new *zone.Snapshot) {
	if new == nil {
		if old != nil {
			s.notifier.cancel(old.Origin())
			s.h.m.forgetZone(old.Origin())
		}
		return
	}
	if old != nil && old.Serial() == new.Serial() {
		return
	}
	s.notifier.enqueue(new)
}

// Close stops listening, closes open connections, abandons pending NOTIFYs
// and waits for every goroutine to finish.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		close(s.done)
		s.mu.Lock()
		s.closed = true
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		for _, b := range s.addrs {
			b.close()
		}
		s.notifier.close()
		s.wg.Wait()
	})
	return nil
}

func (s *Server) acceptTCP(l *net.TCPListener) {
	defer s.wg.Done()
	backoff := 5 * time.Millisecond
	for {
		// Bounded connections: take a slot before accepting, so that when
		// all are in use new connections wait in the listen queue (as NSD
		// stops accepting) rather than being accepted and dropped.
		select {
		case s.slots <- struct{}{}:
		case <-s.done:
			return
		}
		c, err := l.AcceptTCP()
		if err != nil {
			<-s.slots
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.h.log.Warn("dns tcp accept failed", "err", err)
			select {
			case <-s.done:
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		if !s.track(c) {
			c.Close()
			<-s.slots
			return
		}
		s.wg.Add(1)
		go s.serveTCP(c)
	}
}

func (s *Server) track(c *net.TCPConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	s.h.m.tcpConns.Inc()
	return true
}

func (s *Server) untrack(c *net.TCPConn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.h.m.tcpConns.Dec()
	c.Close()
	<-s.slots
}

// tcpReadBuffer holds typical pipelined queries; a larger message is read
// into a buffer of its own.
const tcpReadBuffer = 4096

// serveTCP answers the queries of one connection in order (RFC 7766 6.2.1:
// pipelined queries are read as they come; answers are written in order,
// batched while more queries are already buffered). The connection closes
// when idle for TCPIdleTimeout, on a malformed frame, or on Close.
func (s *Server) serveTCP(c *net.TCPConn) {
	defer s.wg.Done()
	defer s.untrack(c)
	idle := s.h.cfg.TCPIdleTimeout
	writeTimeout := max(idle, 10*time.Second)
	rd := bufio.NewReaderSize(c, tcpReadBuffer)
	bw := bufio.NewWriterSize(c, tcpReadBuffer)
	var remote netip.Addr
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		remote = a.AddrPort().Addr().Unmap()
	}
	t := &transport{tcp: true, remote: remote}
	t.send = func(msg []byte) error {
		c.SetWriteDeadline(time.Now().Add(writeTimeout))
		_, err := bw.Write(msg)
		return err
	}
	for {
		if !frameBuffered(rd) {
			c.SetWriteDeadline(time.Now().Add(writeTimeout))
			if bw.Flush() != nil {
				return
			}
		}
		c.SetReadDeadline(time.Now().Add(idle))
		hdr, err := rd.Peek(2)
		if err != nil {
			return
		}
		n := int(binary.BigEndian.Uint16(hdr))
		rd.Discard(2)
		if n == 0 {
			return
		}
		var msg []byte
		if n <= rd.Size() {
			if msg, err = rd.Peek(n); err != nil {
				return
			}
		} else {
			msg = make([]byte, n)
			if _, err := io.ReadFull(rd, msg); err != nil {
				return
			}
		}
		w := s.pool.Get().(*worker)
		resp := w.serve(msg, t)
		if resp != nil {
			err = t.send(w.framed(resp))
		}
		s.pool.Put(w)
		if err != nil {
			return
		}
		if n <= rd.Size() {
			rd.Discard(n)
		}
	}
}

// frameBuffered reports whether a complete length-prefixed message is
// already in rd's buffer, so the answers written so far can wait.
func frameBuffered(rd *bufio.Reader) bool {
	if rd.Buffered() < 2 {
		return false
	}
	hdr, _ := rd.Peek(2)
	return rd.Buffered() >= 2+int(binary.BigEndian.Uint16(hdr))
}
