package dnsserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// udpRecvBuffer is the socket receive buffer we ask for: bursts of queries
// queue in the kernel while a goroutine is busy instead of being dropped.
const udpRecvBuffer = 4 << 20

// listenControl sets SO_REUSEPORT on every socket so that several sockets
// share one address and the kernel spreads packets and connections over
// them, and asks for the destination address of UDP packets when pktinfo is
// set (wildcard binds), so that answers leave from the address the query
// was sent to.
func listenControl(pktinfo bool) func(network, address string, c syscall.RawConn) error {
	return func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			s := int(fd)
			if serr = unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); serr != nil {
				return
			}
			if network[:3] != "udp" {
				return
			}
			// Best effort: the kernel caps it at net.core.rmem_max.
			_ = unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_RCVBUF, udpRecvBuffer)
			if !pktinfo {
				return
			}
			if network == "udp4" {
				serr = unix.SetsockoptInt(s, unix.IPPROTO_IP, unix.IP_PKTINFO, 1)
			} else {
				serr = unix.SetsockoptInt(s, unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}
}

// boundAddr is the sockets of one configured address.
type boundAddr struct {
	udp     []*net.UDPConn
	tcp     []*net.TCPListener
	pktinfo bool
}

func (b *boundAddr) close() {
	for _, c := range b.udp {
		c.Close()
	}
	for _, l := range b.tcp {
		l.Close()
	}
}

// listenAddr binds n UDP and n TCP sockets to addr. With port 0 the TCP
// socket is bound first: Linux never gives a wildcard TCP port to a socket
// that would have to share it, while for UDP it may pick a port another
// SO_REUSEPORT socket of this user already holds. UDP then joins that port;
// if it is taken the whole attempt is retried with a new port.
func listenAddr(ctx context.Context, addr string, n int, forcePktinfo bool) (*boundAddr, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	pktinfo := forcePktinfo
	if host == "" {
		pktinfo = true
	} else if ip, err := netip.ParseAddr(host); err == nil && ip.IsUnspecified() {
		pktinfo = true
	}
	lc := net.ListenConfig{Control: listenControl(pktinfo)}
	for attempt := 0; ; attempt++ {
		b, err := listenOnce(ctx, lc, host, port, n)
		if err == nil {
			b.pktinfo = pktinfo
			return b, nil
		}
		if port != "0" || attempt >= 20 || !errors.Is(err, syscall.EADDRINUSE) {
			return nil, err
		}
	}
}

func listenOnce(ctx context.Context, lc net.ListenConfig, host, port string, n int) (*boundAddr, error) {
	b := &boundAddr{}
	addr := net.JoinHostPort(host, port)
	for i := 0; i < n; i++ {
		l, err := lc.Listen(ctx, "tcp", addr)
		if err != nil {
			b.close()
			return nil, fmt.Errorf("listen tcp %s: %w", addr, err)
		}
		b.tcp = append(b.tcp, l.(*net.TCPListener))
		if i == 0 {
			// Pin the port (and, for a host name, the address it resolved
			// to) so every socket shares the first one's address.
			bound := l.Addr().(*net.TCPAddr)
			if _, err := netip.ParseAddr(host); err != nil && host != "" {
				host = bound.IP.String()
			}
			addr = net.JoinHostPort(host, strconv.Itoa(bound.Port))
		}
	}
	for i := 0; i < n; i++ {
		c, err := lc.ListenPacket(ctx, "udp", addr)
		if err != nil {
			b.close()
			return nil, fmt.Errorf("listen udp %s: %w", addr, err)
		}
		b.udp = append(b.udp, c.(*net.UDPConn))
	}
	return b, nil
}

// replyControl turns the IP_PKTINFO/IPV6_PKTINFO message received with a
// query into the one that makes the reply leave from the query's
// destination address. dst is scratch space; nil means no control message.
func replyControl(oob, dst []byte) []byte {
	for len(oob) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(h.Len)
		if l < unix.SizeofCmsghdr || l > len(oob) {
			return nil
		}
		data := oob[unix.CmsgLen(0):l]
		switch {
		case h.Level == unix.IPPROTO_IP && h.Type == unix.IP_PKTINFO && len(data) >= unix.SizeofInet4Pktinfo:
			in := (*unix.Inet4Pktinfo)(unsafe.Pointer(&data[0]))
			out := dst[:unix.CmsgSpace(unix.SizeofInet4Pktinfo)]
			clear(out)
			oh := (*unix.Cmsghdr)(unsafe.Pointer(&out[0]))
			oh.Level, oh.Type = unix.IPPROTO_IP, unix.IP_PKTINFO
			oh.SetLen(unix.CmsgLen(unix.SizeofInet4Pktinfo))
			op := (*unix.Inet4Pktinfo)(unsafe.Pointer(&out[unix.CmsgLen(0)]))
			// Source = the address the query was sent to; any interface.
			op.Spec_dst = in.Addr
			return out
		case h.Level == unix.IPPROTO_IPV6 && h.Type == unix.IPV6_PKTINFO && len(data) >= unix.SizeofInet6Pktinfo:
			in := (*unix.Inet6Pktinfo)(unsafe.Pointer(&data[0]))
			out := dst[:unix.CmsgSpace(unix.SizeofInet6Pktinfo)]
			clear(out)
			oh := (*unix.Cmsghdr)(unsafe.Pointer(&out[0]))
			oh.Level, oh.Type = unix.IPPROTO_IPV6, unix.IPV6_PKTINFO
			oh.SetLen(unix.CmsgLen(unix.SizeofInet6Pktinfo))
			op := (*unix.Inet6Pktinfo)(unsafe.Pointer(&out[unix.CmsgLen(0)]))
			op.Addr = in.Addr
			// Keep the interface: link-local sources need it.
			op.Ifindex = in.Ifindex
			return out
		}
		next := unix.CmsgSpace(l - unix.CmsgLen(0))
		if next >= len(oob) {
			break
		}
		oob = oob[next:]
	}
	return nil
}
