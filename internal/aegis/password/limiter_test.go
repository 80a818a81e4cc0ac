package password

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a manually advanced clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newTestLimiter(t *testing.T, o LimiterOptions) (*Limiter, *fakeClock) {
	t.Helper()
	clk := &fakeClock{now: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)}
	o.Now = clk.Now
	l, err := NewLimiter(o)
	if err != nil {
		t.Fatal(err)
	}
	return l, clk
}

var (
	addr1 = netip.MustParseAddr("192.0.2.1")
	addr2 = netip.MustParseAddr("192.0.2.2")
)

func TestPerUserLimit(t *testing.T) {
	l, clk := newTestLimiter(t, LimiterOptions{
		PerUser: Rate{Burst: 3, Every: time.Minute},
		PerAddr: Rate{Burst: 1000, Every: time.Millisecond},
	})
	// Three attempts from different addresses pass, the fourth waits a
	// full interval: the user limit does not care where guesses come from.
	for i := range 3 {
		a := netip.AddrFrom4([4]byte{198, 51, 100, byte(i)})
		if ok, wait := l.allowNow("alice", a); !ok || wait != 0 {
			t.Fatalf("attempt %d: %v, %v", i, ok, wait)
		}
	}
	ok, wait := l.allowNow("alice", addr1)
	if ok || wait != time.Minute {
		t.Fatalf("4th attempt: %v, %v; want false, 1m", ok, wait)
	}
	// Other users are unaffected.
	if ok, _ := l.allowNow("bob", addr1); !ok {
		t.Fatal("bob refused")
	}
	// Just before the wait is over: still refused, with the rest to wait.
	clk.Advance(wait - time.Second)
	if ok, w := l.allowNow("alice", addr1); ok || w != time.Second {
		t.Fatalf("early retry: %v, %v", ok, w)
	}
	// After exactly the advertised wait: allowed once, then refused again.
	clk.Advance(time.Second)
	if ok, w := l.allowNow("alice", addr1); !ok {
		t.Fatalf("retry after wait refused, wait %v", w)
	}
	if ok, _ := l.allowNow("alice", addr1); ok {
		t.Fatal("second retry allowed")
	}
	// Idle for burst × interval: full again.
	clk.Advance(3 * time.Minute)
	for i := range 3 {
		if ok, _ := l.allowNow("alice", addr1); !ok {
			t.Fatalf("refill attempt %d refused", i)
		}
	}
}

func TestPerAddrLimit(t *testing.T) {
	l, clk := newTestLimiter(t, LimiterOptions{
		PerUser: Rate{Burst: 100, Every: time.Minute},
		PerAddr: Rate{Burst: 2, Every: 10 * time.Second},
	})
	if ok, _ := l.allowNow("u1", addr1); !ok {
		t.Fatal()
	}
	if ok, _ := l.allowNow("u2", addr1); !ok {
		t.Fatal()
	}
	// Spraying a third user from the same address is refused...
	ok, wait := l.allowNow("u3", addr1)
	if ok || wait != 10*time.Second {
		t.Fatalf("spray: %v, %v", ok, wait)
	}
	// ...and the refused attempt did not cost u3 anything.
	if ok, _ := l.allowNow("u3", addr2); !ok {
		t.Fatal("u3 from another address refused")
	}
	clk.Advance(wait)
	if ok, _ := l.allowNow("u3", addr1); !ok {
		t.Fatal("after wait refused")
	}
}

func TestAddressGrouping(t *testing.T) {
	l, _ := newTestLimiter(t, LimiterOptions{
		PerUser: Rate{Burst: 100, Every: time.Minute},
		PerAddr: Rate{Burst: 1, Every: time.Minute},
	})
	// One /64 is one bucket: rotating through its addresses does not help.
	if ok, _ := l.allowNow("a", netip.MustParseAddr("2001:db8:1:2::1")); !ok {
		t.Fatal()
	}
	if ok, _ := l.allowNow("b", netip.MustParseAddr("2001:db8:1:2:ffff::9")); ok {
		t.Fatal("same /64 allowed twice")
	}
	if ok, _ := l.allowNow("c", netip.MustParseAddr("2001:db8:1:3::1")); !ok {
		t.Fatal("other /64 refused")
	}
	// IPv4-mapped IPv6 is the IPv4 address.
	if ok, _ := l.allowNow("d", netip.MustParseAddr("198.51.100.7")); !ok {
		t.Fatal()
	}
	if ok, _ := l.allowNow("e", netip.MustParseAddr("::ffff:198.51.100.7")); ok {
		t.Fatal("mapped address counted separately")
	}
	if ok, _ := l.allowNow("f", netip.MustParseAddr("198.51.100.8")); !ok {
		t.Fatal("neighbouring IPv4 address refused")
	}
	// No address: only the user limit applies.
	for range 5 {
		if ok, _ := l.allowNow("g", netip.Addr{}); !ok {
			t.Fatal("invalid address limited")
		}
	}
}

func TestSucceededResetsUser(t *testing.T) {
	l, _ := newTestLimiter(t, LimiterOptions{
		PerUser: Rate{Burst: 2, Every: time.Hour},
		PerAddr: Rate{Burst: 100, Every: time.Second},
	})
	l.allowNow("alice", addr1)
	l.allowNow("alice", addr1)
	if ok, _ := l.allowNow("alice", addr1); ok {
		t.Fatal("third attempt allowed")
	}
	l.succeededNow("alice")
	if ok, _ := l.allowNow("alice", addr1); !ok {
		t.Fatal("refused after success")
	}
}

func TestBoundedMemory(t *testing.T) {
	l, _ := newTestLimiter(t, LimiterOptions{
		PerUser:    Rate{Burst: 1, Every: time.Hour},
		PerAddr:    Rate{Burst: 1, Every: time.Hour},
		MaxEntries: 100,
	})
	for i := range 10_000 {
		l.allowNow(fmt.Sprintf("user-%d", i), netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}))
	}
	if u, a := l.Len(); u != 100 || a != 100 {
		t.Fatalf("Len = %d users, %d addrs; want 100, 100", u, a)
	}
	// The most recent entries survive: user-9999 is still limited.
	if ok, _ := l.allowNow("user-9999", addr1); ok {
		t.Fatal("recent entry was evicted")
	}
	// A huge user name is stored as a digest, and still limited.
	long := strings.Repeat("x", 1<<20)
	l.allowNow(long, addr2)
	if ok, _ := l.allowNow(long, netip.MustParseAddr("192.0.2.3")); ok {
		t.Fatal("long user name not limited")
	}
	for k := range l.users.m {
		if len(k) > 200 {
			t.Fatalf("stored a key of %d bytes", len(k))
		}
	}
}

func TestClockStepsBack(t *testing.T) {
	l, clk := newTestLimiter(t, LimiterOptions{PerUser: Rate{Burst: 1, Every: time.Minute}})
	l.allowNow("alice", addr1)
	clk.Advance(-time.Hour)
	ok, wait := l.allowNow("alice", addr1)
	if ok || wait <= 0 {
		t.Fatalf("after clock step back: %v, %v", ok, wait)
	}
}

func TestLimiterOptionsValidate(t *testing.T) {
	for _, o := range []LimiterOptions{
		{PerUser: Rate{Burst: 0, Every: time.Second}},
		{PerUser: Rate{Burst: 1, Every: -time.Second}},
		{PerAddr: Rate{Burst: -1, Every: time.Second}},
		{MaxEntries: -1},
		{IPv6PrefixLen: 129},
	} {
		if _, err := NewLimiter(o); err == nil {
			t.Errorf("NewLimiter(%+v) accepted", o)
		}
	}
	if _, err := NewLimiter(LimiterOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestLimiterConcurrent(t *testing.T) {
	l, _ := newTestLimiter(t, LimiterOptions{
		PerUser: Rate{Burst: 50, Every: time.Hour},
		PerAddr: Rate{Burst: 1000, Every: time.Hour},
	})
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed := 0
	for range 8 {
		wg.Go(func() {
			for range 100 {
				if ok, _ := l.allowNow("alice", addr1); ok {
					mu.Lock()
					allowed++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if allowed != 50 {
		t.Fatalf("allowed %d parallel attempts, want exactly the burst of 50", allowed)
	}
}

func BenchmarkLimiterAllow(b *testing.B) {
	l, err := NewLimiter(LimiterOptions{})
	if err != nil {
		b.Fatal(err)
	}
	i := 0
	for b.Loop() {
		i++
		l.allowNow("user-"+fmt.Sprint(i%1000), netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}))
	}
}

// allowNow is Allow for tests of the in-process limiter, which never fails.
func (l *Limiter) allowNow(user string, addr netip.Addr) (bool, time.Duration) {
	ok, wait, err := l.Allow(context.Background(), user, addr)
	if err != nil {
		panic(err)
	}
	return ok, wait
}

func (l *Limiter) succeededNow(user string) {
	if err := l.Succeeded(context.Background(), user); err != nil {
		panic(err)
	}
}

// fakeShared is a fake of the shared store (Aegis keeps the real one in
// Chainfire, tested in package store): a map of tats, and an error to fail
// with.
type fakeShared struct {
	mu   sync.Mutex
	tats map[string]time.Time
	err  error
}

func (f *fakeShared) Take(_ context.Context, key string, r Rate, now time.Time) (time.Duration, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return 0, f.err
	}
	if wait := r.Wait(f.tats[key], now); wait > 0 {
		return wait, nil
	}
	f.tats[key] = r.Take(f.tats[key], now)
	return 0, nil
}

func (f *fakeShared) Reset(_ context.Context, key string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.tats, key)
	return f.err
}

// TestSharedUsers: two limiters (two replicas) on one shared store give an
// account its attempts once, not once each; the address a refused attempt
// came from is not charged for it.
func TestSharedUsers(t *testing.T) {
	shared := &fakeShared{tats: map[string]time.Time{}}
	opts := LimiterOptions{PerUser: Rate{Burst: 3, Every: time.Minute}, PerAddr: Rate{Burst: 4, Every: time.Hour}, SharedUsers: shared}
	a, clk := newTestLimiter(t, opts)
	opts.Now = clk.Now
	b, err := NewLimiter(opts)
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range []*Limiter{a, b, a} {
		if ok, _ := l.allowNow("alice", addr1); !ok {
			t.Fatalf("attempt %d refused", i+1)
		}
	}
	if ok, wait := b.allowNow("alice", addr2); ok || wait != time.Minute {
		t.Fatalf("4th attempt, at the other replica: allowed=%v wait=%v, want refused for 1m", ok, wait)
	}
	// addr2 paid nothing for the refusal: it has its 4 attempts for others.
	for i := range 4 {
		if ok, _ := b.allowNow(fmt.Sprintf("user-%d", i), addr2); !ok {
			t.Fatalf("addr2's attempt %d refused after a refund", i+1)
		}
	}
	if ok, _ := b.allowNow("user-4", addr2); ok {
		t.Fatal("addr2's 5th attempt allowed")
	}
	a.succeededNow("alice")
	if ok, _ := b.allowNow("alice", addr1); !ok {
		t.Fatal("attempt after a success at the other replica refused")
	}

	shared.err = errors.New("chainfire: unavailable")
	if ok, _, err := a.Allow(context.Background(), "bob", addr1); ok || err == nil || !strings.Contains(err.Error(), "unavailable") {
		t.Fatalf("Allow with the shared store failing = %v, %v; want refused with its error", ok, err)
	}
	if err := a.Succeeded(context.Background(), "bob"); err == nil {
		t.Fatal("Succeeded with the shared store failing returned no error")
	}
}
