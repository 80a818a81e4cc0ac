package dnsserver

import (
	"errors"
	"net"
	"net/netip"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// UDP is served in batches: one recvmmsg reads every queued query (up to
// udpBatch), they are answered, and one sendmmsg sends the answers. Under
// load this divides the two system calls per query, which cost more than
// answering, by the batch size; when idle a batch is one query. Buffers,
// message headers and the client addresses are preallocated, and a reply
// goes to the sockaddr the query came from without converting it, so the
// loop does not allocate. Linux only, like the rest of the package.
//
// recvmmsg and sendmmsg are raw system calls, without the scheduler's
// entersyscall/exitsyscall: the socket is non-blocking, so they return at
// once and the P need not be offered to other goroutines meanwhile. With
// entersyscall, a moderate load (every P idle between queries) paid for
// the runtime's sysmon thread: it parks while all Ps idle, every
// entersyscall woke it, and it slept 20 µs, found the Ps idle again and
// parked, a futex wake, a nanosleep and context switches per query; a
// quarter of the CPU per query at 20,000 queries/s in bench/flashdns.
// Waiting for the socket still goes through the netpoller (RawConn.Read
// and Write on EAGAIN).

const (
	udpBatch = 32
	// udpReadBuf bounds a query; larger ones arrive truncated and are
	// answered FORMERR (queries are a few hundred bytes at most).
	udpReadBuf = 8192
	udpOOBBuf  = 64
)

type udpIO struct {
	conn    *net.UDPConn
	rc      syscall.RawConn
	pktinfo bool

	in     [udpBatch]unix.Mmsghdr
	inIov  [udpBatch]unix.Iovec
	names  [udpBatch]unix.RawSockaddrInet6 // large enough for IPv4 too
	bufs   [udpBatch][]byte
	oob    [udpBatch][]byte
	out    [udpBatch]unix.Mmsghdr
	outIov [udpBatch]unix.Iovec
	outBuf [udpBatch][]byte
	outOOB [udpBatch][]byte

	// The RawConn callbacks and their results live here: closures built
	// per call would allocate on every read and write.
	readFn, writeFn func(fd uintptr) bool
	n               int // messages read or sent by the last call
	errno           syscall.Errno
	from, count     int // the messages writeFn sends
}

func newUDPIO(c *net.UDPConn, pktinfo bool, outSize int) (*udpIO, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	u := &udpIO{conn: c, rc: rc, pktinfo: pktinfo}
	u.readFn, u.writeFn = u.recvmmsg, u.sendmmsg
	for i := range udpBatch {
		u.bufs[i] = make([]byte, udpReadBuf)
		u.oob[i] = make([]byte, udpOOBBuf)
		u.outBuf[i] = make([]byte, outSize)
		u.outOOB[i] = make([]byte, udpOOBBuf)
		u.inIov[i].Base = &u.bufs[i][0]
		h := &u.in[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(&u.names[i]))
		h.Iov = &u.inIov[i]
		h.SetIovlen(1)
		u.out[i].Hdr.Iov = &u.outIov[i]
		u.out[i].Hdr.SetIovlen(1)
	}
	return u, nil
}

// read waits for at least one query and returns how many were read.
func (u *udpIO) read() (int, error) {
	for i := range u.in {
		h := &u.in[i].Hdr
		h.Namelen = unix.SizeofSockaddrInet6
		h.Flags = 0
		u.inIov[i].SetLen(udpReadBuf)
		if u.pktinfo {
			h.Control = &u.oob[i][0]
			h.SetControllen(udpOOBBuf)
		}
	}
	if err := u.rc.Read(u.readFn); err != nil {
		return 0, err
	}
	if u.errno != 0 {
		return 0, u.errno
	}
	return u.n, nil
}

func (u *udpIO) recvmmsg(fd uintptr) bool {
	for {
		r, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&u.in[0])), udpBatch, 0, 0, 0)
		switch e {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false // wait until the socket is readable
		}
		u.n, u.errno = int(r), e
		return true
	}
}

func (u *udpIO) sendmmsg(fd uintptr) bool {
	for {
		r, _, e := unix.RawSyscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&u.out[u.from])), uintptr(u.count), 0, 0, 0)
		switch e {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		}
		u.n, u.errno = int(r), e
		return true
	}
}

// write sends the first k prepared answers. Answers the kernel refuses are
// dropped and counted.
func (u *udpIO) write(k int, m *metrics) error {
	for i := 0; i < k; {
		u.from, u.count = i, k-i
		if err := u.rc.Write(u.writeFn); err != nil {
			return err
		}
		if u.errno != 0 {
			// The first remaining answer failed (e.g. EPERM from a
			// firewall): skip it.
			m.dropped.WithLabelValues("write_error").Inc()
			i++
			continue
		}
		i += u.n
	}
	return nil
}

// sockaddrAddr returns the IP address of a received sockaddr.
func sockaddrAddr(sa *unix.RawSockaddrInet6) netip.Addr {
	switch sa.Family {
	case unix.AF_INET:
		return netip.AddrFrom4((*unix.RawSockaddrInet4)(unsafe.Pointer(sa)).Addr)
	case unix.AF_INET6:
		return netip.AddrFrom16(sa.Addr).Unmap()
	}
	return netip.Addr{}
}

func (s *Server) serveUDP(c *net.UDPConn, pktinfo bool) {
	defer s.wg.Done()
	w := newWorker(s.h)
	u, err := newUDPIO(c, pktinfo, int(s.h.cfg.UDPSize)+bufSlack)
	if err != nil {
		s.h.log.Error("dns udp socket unusable", "err", err)
		return
	}
	t := &transport{}
	for {
		n, err := u.read()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || s.isClosed() {
				return
			}
			// Transient (ENOBUFS, ENOMEM): keep serving.
			s.h.m.dropped.WithLabelValues("read_error").Inc()
			select {
			case <-s.done:
				return
			case <-time.After(time.Millisecond):
			}
			continue
		}
		k := 0
		for i := 0; i < n; i++ {
			in := &u.in[i]
			t.remote = sockaddrAddr(&u.names[i])
			w.out = u.outBuf[k][:0]
			resp := w.serve(u.bufs[i][:in.Len], t)
			if resp == nil {
				continue
			}
			o := &u.out[k]
			o.Hdr.Name = in.Hdr.Name
			o.Hdr.Namelen = in.Hdr.Namelen
			u.outIov[k].Base = &resp[0]
			u.outIov[k].SetLen(len(resp))
			o.Hdr.Control = nil
			o.Hdr.SetControllen(0)
			if pktinfo {
				if cm := replyControl(u.oob[i][:in.Hdr.Controllen], u.outOOB[k]); cm != nil {
					o.Hdr.Control = &cm[0]
					o.Hdr.SetControllen(len(cm))
				}
			}
			k++
		}
		if k > 0 {
			if err := u.write(k, s.h.m); err != nil {
				if errors.Is(err, net.ErrClosed) || s.isClosed() {
					return
				}
			}
		}
	}
}

func (s *Server) isClosed() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}
