package robustness

import (
	"bufio"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"
)

// TestPeerNet checks the proxy on its own: it names this process as the
// dialer (member 0) through /proc, forwards, stalls a blackholed link and
// resumes it without losing bytes, and resets connections of a cut link.
func TestPeerNet(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the proxy identifies dialers through Linux's /proc")
	}
	// An echo server stands for member 1's real peer listener.
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(c, c); _ = c.Close() }()
		}
	}()
	pn, err := NewPeerNet(2, IdentifyByProc(func() []int { return []int{os.Getpid(), 0} }))
	if err != nil {
		t.Fatal(err)
	}
	defer pn.Close()
	pn.SetTarget(1, echo.Addr().String())
	proxy := "127.0.0.1:" + strconv.Itoa(pn.Port(1))

	dial := func() (net.Conn, *bufio.Reader) {
		t.Helper()
		c, err := net.Dial("tcp", proxy)
		if err != nil {
			t.Fatal(err)
		}
		return c, bufio.NewReader(c)
	}
	roundTrip := func(c net.Conn, r *bufio.Reader, msg string, wait time.Duration) (string, error) {
		t.Helper()
		if _, err := c.Write([]byte(msg + "\n")); err != nil {
			return "", err
		}
		_ = c.SetReadDeadline(time.Now().Add(wait))
		return r.ReadString('\n')
	}

	c, r := dial()
	defer c.Close()
	if got, err := roundTrip(c, r, "hello", 5*time.Second); err != nil || got != "hello\n" {
		t.Fatalf("through the proxy: %q, %v", got, err)
	}
	if st := pn.Stats(); st.Accepted != 1 || st.Unidentified != 0 {
		t.Fatalf("dialer not identified as member 0: %+v", st)
	}

	// Blackhole 0->1: nothing comes back, on the open connection or a new
	// one; after healing both flow on with nothing lost.
	pn.Isolate(0, LinkBlackhole)
	if got, err := roundTrip(c, r, "stalled", 300*time.Millisecond); err == nil {
		t.Fatalf("blackholed link answered %q", got)
	}
	c2, r2 := dial()
	defer c2.Close()
	if got, err := roundTrip(c2, r2, "held", 300*time.Millisecond); err == nil {
		t.Fatalf("new connection on a blackholed link answered %q", got)
	}
	pn.Heal()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if got, err := r.ReadString('\n'); err != nil || got != "stalled\n" {
		t.Fatalf("after healing, the stalled bytes: %q, %v", got, err)
	}
	_ = c2.SetReadDeadline(time.Now().Add(5 * time.Second))
	if got, err := r2.ReadString('\n'); err != nil || got != "held\n" {
		t.Fatalf("after healing, the held connection: %q, %v", got, err)
	}

	// Cut 1<-0: the open connection is reset, new ones too; a link in
	// the other direction alone does not touch it.
	pn.Set(LinkCut, [2]int{1, 0})
	if got, err := roundTrip(c, r, "other way", 5*time.Second); err != nil || got != "other way\n" {
		t.Fatalf("a cut of 1->0 broke 0->1: %q, %v", got, err)
	}
	pn.Split(0, 1, LinkCut)
	if got, err := roundTrip(c, r, "cut", 2*time.Second); err == nil {
		t.Fatalf("cut link answered %q", got)
	}
	c3, r3 := dial()
	defer c3.Close()
	if got, err := roundTrip(c3, r3, "refused", 2*time.Second); err == nil {
		t.Fatalf("new connection on a cut link answered %q", got)
	}
	pn.Heal()
	c4, r4 := dial()
	defer c4.Close()
	if got, err := roundTrip(c4, r4, "again", 5*time.Second); err != nil || got != "again\n" {
		t.Fatalf("after healing a cut: %q, %v", got, err)
	}
	if st := pn.Stats(); st.Unidentified != 0 || st.Held != 1 || st.Cut < 2 {
		t.Errorf("stats: %+v", st)
	}
}

// TestPeerNetUnknownDialer: a connection whose dialer is unknown gets the
// strictest mode of the links into its destination.
func TestPeerNetUnknownDialer(t *testing.T) {
	pn, err := NewPeerNet(3, func(net.Conn) int { return Unknown })
	if err != nil {
		t.Fatal(err)
	}
	defer pn.Close()
	pn.Split(0, 1, LinkBlackhole)
	pn.mu.Lock()
	defer pn.mu.Unlock()
	for _, c := range []struct {
		to   int
		want LinkMode
	}{{0, LinkBlackhole}, {1, LinkBlackhole}, {2, LinkPass}} {
		if got := pn.modeLocked(netLink{Unknown, c.to}); got != c.want {
			t.Errorf("unknown dialer to %d: %v, want %v", c.to, got, c.want)
		}
	}
}
