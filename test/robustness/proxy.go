package robustness

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// LinkMode is what the network does to the connections of one directed
// link: those member From dials to member To's peer port.
type LinkMode int

// Link modes.
const (
	// LinkPass forwards bytes both ways.
	LinkPass LinkMode = iota
	// LinkBlackhole stalls the link's connections: nothing is forwarded in
	// either direction and new connections are accepted but held, as when
	// packets are silently dropped. Bytes already read wait in the proxy
	// and flow on when the link heals, like retransmitted segments.
	LinkBlackhole
	// LinkCut closes the link's connections (RST) and every new one at
	// once, as when the peer's host refuses connections.
	LinkCut
)

func (m LinkMode) String() string {
	switch m {
	case LinkPass:
		return "pass"
	case LinkBlackhole:
		return "blackhole"
	case LinkCut:
		return "cut"
	}
	return fmt.Sprintf("LinkMode(%d)", int(m))
}

// Unknown is the member index of a connection whose dialer could not be
// identified.
const Unknown = -1

// PeerNet is the harness's network between members. Every member's
// advertised peer URL is a TCP proxy (one listener per member, in front of
// its real --listen-peer-urls); the proxy finds out which member dialed
// each connection it accepts and applies the mode of that directed link.
//
// Why one proxy per member that identifies its callers: Chainfire, like
// etcd, derives member IDs from the advertised peer URLs and the cluster
// token, so every member must be given the same --initial-cluster, and a
// member cannot be shown private addresses of its peers. A member's dials
// come from ephemeral ports of 127.0.0.1, so the proxy asks the kernel who
// owns the other end: the line of /proc/net/tcp whose local port is the
// connection's source port names the socket's inode, and the member
// process holding that inode in /proc/<pid>/fd is the dialer. This needs
// no root and no change to the product, only Linux and our own child
// processes.
//
// A connection carries bytes both ways (requests and their answers; etcd
// also streams messages back over connections the receiver dialed), so a
// link's mode applies to both directions of its connections. A partition
// between A and B sets both A->B and B->A.
type PeerNet struct {
	// identify maps an accepted connection to the index of the member that
	// dialed it, or Unknown.
	identify func(c net.Conn) int

	mu      sync.Mutex
	rules   map[netLink]LinkMode
	changed chan struct{} // closed and replaced whenever rules change
	conns   map[*proxyConn]struct{}
	proxies []*peerProxy
	closed  bool
	stats   NetStats
	wg      sync.WaitGroup
}

type netLink struct{ from, to int }

// NetStats counts what the proxies did.
type NetStats struct {
	Accepted     int // connections accepted
	Unidentified int // of which the dialer was not found
	Held         int // connections that waited on a blackholed link before being forwarded
	Cut          int // connections closed by a cut link
	Bytes        int64
}

func (s NetStats) String() string {
	return fmt.Sprintf("%d peer connections (%d with an unidentified dialer), %d held by a blackhole, %d cut, %d bytes forwarded",
		s.Accepted, s.Unidentified, s.Held, s.Cut, s.Bytes)
}

type peerProxy struct {
	to     int
	ln     net.Listener
	mu     sync.Mutex
	target string // the member's real peer address
}

type proxyConn struct {
	link   netLink
	client net.Conn

	mu     sync.Mutex
	server net.Conn
	closed bool
}

// NewPeerNet opens one proxy listener per member on a free loopback port.
// identify names the member that dialed an accepted connection.
func NewPeerNet(members int, identify func(c net.Conn) int) (*PeerNet, error) {
	n := &PeerNet{identify: identify, rules: map[netLink]LinkMode{}, changed: make(chan struct{}), conns: map[*proxyConn]struct{}{}}
	for i := range members {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			n.Close()
			return nil, fmt.Errorf("peer proxy listen: %w", err)
		}
		n.proxies = append(n.proxies, &peerProxy{to: i, ln: ln})
	}
	for _, p := range n.proxies {
		n.wg.Go(func() { n.serve(p) })
	}
	return n, nil
}

// Port is the port of member i's proxy: its advertised peer port.
func (n *PeerNet) Port(i int) int { return n.proxies[i].ln.Addr().(*net.TCPAddr).Port }

// SetTarget points member i's proxy at the member's real peer address.
func (n *PeerNet) SetTarget(i int, addr string) {
	p := n.proxies[i]
	p.mu.Lock()
	p.target = addr
	p.mu.Unlock()
}

// Stats returns the counters so far.
func (n *PeerNet) Stats() NetStats {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.stats
}

// Set sets the mode of the links from -> to for every pair given, as one
// change, and cuts the open connections of links that became LinkCut.
func (n *PeerNet) Set(mode LinkMode, pairs ...[2]int) {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return
	}
	for _, p := range pairs {
		l := netLink{p[0], p[1]}
		if mode == LinkPass {
			delete(n.rules, l)
		} else {
			n.rules[l] = mode
		}
	}
	var cut []*proxyConn
	for c := range n.conns {
		if n.modeLocked(c.link) == LinkCut {
			cut = append(cut, c)
			n.stats.Cut++
		}
	}
	close(n.changed)
	n.changed = make(chan struct{})
	n.mu.Unlock()
	for _, c := range cut {
		c.close()
	}
}

// Isolate sets every link between member m and the others, both ways.
func (n *PeerNet) Isolate(m int, mode LinkMode) {
	var pairs [][2]int
	for i := range n.proxies {
		if i != m {
			pairs = append(pairs, [2]int{m, i}, [2]int{i, m})
		}
	}
	n.Set(mode, pairs...)
}

// Split sets the links between members a and b, both ways.
func (n *PeerNet) Split(a, b int, mode LinkMode) {
	n.Set(mode, [2]int{a, b}, [2]int{b, a})
}

// Heal lets every link pass again; held connections flow on.
func (n *PeerNet) Heal() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return
	}
	n.rules = map[netLink]LinkMode{}
	close(n.changed)
	n.changed = make(chan struct{})
}

// Close stops the proxies and closes every connection.
func (n *PeerNet) Close() {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return
	}
	n.closed = true
	close(n.changed)
	conns := make([]*proxyConn, 0, len(n.conns))
	for c := range n.conns {
		conns = append(conns, c)
	}
	n.mu.Unlock()
	for _, p := range n.proxies {
		_ = p.ln.Close()
	}
	for _, c := range conns {
		c.close()
	}
	n.wg.Wait()
}

// modeLocked is the link's mode. A connection whose dialer is unknown gets
// the strictest mode of any link into its destination: it might be the
// partitioned member's.
func (n *PeerNet) modeLocked(l netLink) LinkMode {
	if l.from != Unknown {
		return n.rules[l]
	}
	mode := LinkPass
	for r, m := range n.rules {
		if r.to == l.to && m > mode {
			mode = m
		}
	}
	return mode
}

var (
	errLinkCut   = errors.New("link cut")
	errNetClosed = errors.New("peer network closed")
)

// gate blocks while the link is blackholed; it returns nil when the link
// passes and an error when it is cut or the network is closed.
func (n *PeerNet) gate(l netLink) error {
	for {
		n.mu.Lock()
		if n.closed {
			n.mu.Unlock()
			return errNetClosed
		}
		mode, changed := n.modeLocked(l), n.changed
		n.mu.Unlock()
		switch mode {
		case LinkPass:
			return nil
		case LinkCut:
			return errLinkCut
		}
		<-changed
	}
}

func (n *PeerNet) serve(p *peerProxy) {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		n.wg.Go(func() { n.handle(p, c) })
	}
}

func (n *PeerNet) handle(p *peerProxy, client net.Conn) {
	from := Unknown
	if n.identify != nil {
		from = n.identify(client)
	}
	pc := &proxyConn{link: netLink{from, p.to}, client: client}
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		_ = client.Close()
		return
	}
	n.conns[pc] = struct{}{}
	n.stats.Accepted++
	if from == Unknown {
		n.stats.Unidentified++
	}
	mode := n.modeLocked(pc.link)
	switch mode {
	case LinkBlackhole:
		n.stats.Held++
	case LinkCut:
		n.stats.Cut++
	}
	n.mu.Unlock()
	defer func() {
		pc.close()
		n.mu.Lock()
		delete(n.conns, pc)
		n.mu.Unlock()
	}()
	// A new connection on a blackholed link is held, unread, until the
	// link heals; the dialer sees a connection that never answers.
	if err := n.gate(pc.link); err != nil {
		return
	}
	p.mu.Lock()
	target := p.target
	p.mu.Unlock()
	server, err := net.DialTimeout("tcp", target, 2*time.Second)
	if err != nil {
		return // the member is down: the dialer sees the connection close
	}
	if !pc.setServer(server) {
		return
	}
	var wg sync.WaitGroup
	wg.Go(func() { n.pump(pc, server, client); pc.close() })
	wg.Go(func() { n.pump(pc, client, server); pc.close() })
	wg.Wait()
}

// pump copies src to dst one read at a time, each write waiting for the
// link to pass.
func (n *PeerNet) pump(pc *proxyConn, dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		k, err := src.Read(buf)
		if k > 0 {
			if n.gate(pc.link) != nil {
				return
			}
			if _, werr := dst.Write(buf[:k]); werr != nil {
				return
			}
			n.mu.Lock()
			n.stats.Bytes += int64(k)
			n.mu.Unlock()
		}
		if err != nil {
			return
		}
	}
}

func (c *proxyConn) setServer(s net.Conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		_ = s.Close()
		return false
	}
	c.server = s
	return true
}

// close resets both sides: a cut link looks like a peer that went away.
func (c *proxyConn) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.closed = true
	for _, conn := range []net.Conn{c.client, c.server} {
		if conn == nil {
			continue
		}
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		_ = conn.Close()
	}
}

// IdentifyByProc returns an identify function for PeerNet: it finds the
// process that owns the dialing end of an accepted loopback connection
// (/proc/net/tcp gives the socket's inode, /proc/<pid>/fd its owner) among
// pids(), which lists the current process id of each member (0 if none).
func IdentifyByProc(pids func() []int) func(c net.Conn) int {
	return func(c net.Conn) int {
		remote, ok1 := c.RemoteAddr().(*net.TCPAddr)
		local, ok2 := c.LocalAddr().(*net.TCPAddr)
		if !ok1 || !ok2 {
			return Unknown
		}
		// The dialing socket is in the table as soon as it is connected;
		// retry only to ride out a read racing its creation.
		for attempt := 0; attempt < 3; attempt++ {
			if attempt > 0 {
				time.Sleep(20 * time.Millisecond)
			}
			inode, err := socketInode(remote.Port, local.Port)
			if err != nil || inode == "" {
				continue
			}
			target := "socket:[" + inode + "]"
			for i, pid := range pids() {
				if pid > 0 && ownsFD(pid, target) {
					return i
				}
			}
		}
		return Unknown
	}
}

// socketInode finds the inode of the socket with the given local and
// remote ports in /proc/net/tcp or /proc/net/tcp6.
func socketInode(localPort, remotePort int) (string, error) {
	var lastErr error
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		inode, err := scanTCPTable(table, localPort, remotePort)
		if err != nil {
			lastErr = err
			continue
		}
		if inode != "" {
			return inode, nil
		}
	}
	return "", lastErr
}

func scanTCPTable(path string, localPort, remotePort int) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		// sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ...
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 {
			continue
		}
		if hexPort(fields[1]) == localPort && hexPort(fields[2]) == remotePort && fields[9] != "0" {
			return fields[9], nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return "", nil
}

// hexPort extracts the port of an "ADDR:PORT" field of /proc/net/tcp.
func hexPort(addr string) int {
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		return -1
	}
	p, err := strconv.ParseUint(addr[i+1:], 16, 16)
	if err != nil {
		return -1
	}
	return int(p)
}

func ownsFD(pid int, target string) bool {
	dir := "/proc/" + strconv.Itoa(pid) + "/fd"
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range ents {
		if l, err := os.Readlink(dir + "/" + e.Name()); err == nil && l == target {
			return true
		}
	}
	return false
}
