package lease

import (
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeClock is a settable clock for the lessor's injected now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func mustGrant(t *testing.T, le *Lessor, id, ttl int64) *Lease {
	t.Helper()
	l, err := le.Grant(id, ttl)
	if err != nil {
		t.Fatalf("Grant(%d, %d): %v", id, ttl, err)
	}
	return l
}

func TestGrantRaisesTTLToMinimum(t *testing.T) {
	le := New(5, nil)
	if got := le.MinTTL(); got != 5 {
		t.Fatalf("MinTTL = %d, want 5", got)
	}
	for _, tc := range []struct{ ttl, want int64 }{{-3, 5}, {0, 5}, {1, 5}, {5, 5}, {6, 6}, {MaxTTL, MaxTTL}} {
		id := tc.ttl + 100
		l := mustGrant(t, le, id, tc.ttl)
		if l.TTL != tc.want || l.ID != id {
			t.Errorf("Grant(ttl=%d) = {ID %d TTL %d}, want {ID %d TTL %d}", tc.ttl, l.ID, l.TTL, id, tc.want)
		}
		info, err := le.Lookup(id, false)
		if err != nil {
			t.Fatal(err)
		}
		if info.GrantedTTL != tc.want {
			t.Errorf("Lookup(%d).GrantedTTL = %d, want %d", id, info.GrantedTTL, tc.want)
		}
	}
}

func TestGrantErrors(t *testing.T) {
	le := New(1, nil)
	if _, err := le.Grant(1, MaxTTL+1); !errors.Is(err, ErrTTLTooLarge) {
		t.Fatalf("Grant too large TTL: err = %v, want ErrTTLTooLarge", err)
	}
	if le.Exists(1) {
		t.Fatal("a refused grant must not create the lease")
	}
	mustGrant(t, le, 1, 10)
	if _, err := le.Grant(1, 20); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate Grant: err = %v, want ErrExists", err)
	}
	if info, _ := le.Lookup(1, false); info.GrantedTTL != 10 {
		t.Fatalf("duplicate grant changed the TTL to %d", info.GrantedTTL)
	}
}

func TestAttachDetachRevoke(t *testing.T) {
	le := New(1, nil)
	mustGrant(t, le, 1, 10)
	mustGrant(t, le, 2, 10)
	for _, k := range []string{"c", "a", "b"} {
		le.Attach(k, 1)
	}
	le.Attach("x", 2)
	le.Attach("ghost", 99) // unknown lease: ignored
	// Moving a key to another lease detaches it from the first.
	le.Attach("b", 2)
	// Attaching with 0 detaches.
	le.Attach("x", 0)
	le.Attach("d", 1)
	le.Detach("d")
	le.Detach("never-attached")

	info, err := le.Lookup(1, true)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a", "c"}; !reflect.DeepEqual(info.Keys, want) {
		t.Fatalf("lease 1 keys = %q, want %q", info.Keys, want)
	}
	if info, _ := le.Lookup(1, false); info.Keys != nil {
		t.Fatalf("Lookup without keys returned keys %q", info.Keys)
	}
	keys, err := le.Revoke(1)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a", "c"}; !reflect.DeepEqual(keys, want) {
		t.Fatalf("Revoke(1) keys = %q, want %q", keys, want)
	}
	if le.Exists(1) {
		t.Fatal("lease 1 exists after revoke")
	}
	if _, err := le.Revoke(1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second revoke: err = %v, want ErrNotFound", err)
	}
	if _, err := le.Lookup(1, true); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Lookup of revoked lease: err = %v", err)
	}
	// A key of a revoked lease is free: attaching it to lease 2 works and
	// revoking 2 returns exactly its keys.
	le.Attach("a", 2)
	keys, err = le.Revoke(2)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a", "b"}; !reflect.DeepEqual(keys, want) {
		t.Fatalf("Revoke(2) keys = %q, want %q", keys, want)
	}
	if ids := le.IDs(); len(ids) != 0 {
		t.Fatalf("IDs after revoking all = %v", ids)
	}
	// Revoking a lease with no keys returns an empty, non-nil list.
	mustGrant(t, le, 3, 1)
	keys, err = le.Revoke(3)
	if err != nil || keys == nil || len(keys) != 0 {
		t.Fatalf("Revoke(3) = %q, %v; want empty list", keys, err)
	}
}

func TestIDsSorted(t *testing.T) {
	le := New(1, nil)
	for _, id := range []int64{42, -1, 7, 1 << 62, 3} {
		mustGrant(t, le, id, 1)
	}
	if got, want := le.IDs(), []int64{-1, 3, 7, 42, 1 << 62}; !reflect.DeepEqual(got, want) {
		t.Fatalf("IDs = %v, want %v", got, want)
	}
}

func TestRenewOnlyWhenPrimary(t *testing.T) {
	clk := newClock()
	le := New(1, clk.now)
	mustGrant(t, le, 1, 10)
	if _, err := le.Renew(1); !errors.Is(err, ErrNotPrimary) {
		t.Fatalf("Renew on follower: err = %v, want ErrNotPrimary", err)
	}
	le.Promote()
	if _, err := le.Renew(2); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Renew unknown lease: err = %v, want ErrNotFound", err)
	}
	clk.advance(7 * time.Second)
	if info, _ := le.Lookup(1, false); info.TTL != 3 {
		t.Fatalf("remaining TTL after 7s = %d, want 3", info.TTL)
	}
	ttl, err := le.Renew(1)
	if err != nil || ttl != 10 {
		t.Fatalf("Renew = %d, %v; want 10, nil", ttl, err)
	}
	info, _ := le.Lookup(1, false)
	if info.TTL != 10 || !info.HasDeadlines || !info.Expiry.Equal(clk.now().Add(10*time.Second)) {
		t.Fatalf("after renew: %+v", info)
	}
	le.Demote()
	if _, err := le.Renew(1); !errors.Is(err, ErrNotPrimary) {
		t.Fatalf("Renew after Demote: err = %v, want ErrNotPrimary", err)
	}
}

func TestPromoteDemoteDeadlines(t *testing.T) {
	clk := newClock()
	le := New(1, clk.now)
	mustGrant(t, le, 1, 10)
	// A follower does not track deadlines: full TTL, zero expiry, never expired.
	info, _ := le.Lookup(1, false)
	if info.TTL != 10 || !info.Expiry.IsZero() || info.HasDeadlines {
		t.Fatalf("follower lookup = %+v", info)
	}
	clk.advance(time.Hour)
	if got := le.Expired(10, time.Second); got != nil {
		t.Fatalf("follower Expired = %v, want nil", got)
	}
	// Promotion gives every lease its full TTL from now.
	le.Promote()
	info, _ = le.Lookup(1, false)
	if !info.Expiry.Equal(clk.now().Add(10*time.Second)) || info.TTL != 10 || !info.HasDeadlines {
		t.Fatalf("after promote: %+v", info)
	}
	// Leases granted while primary get a deadline at once.
	l2 := mustGrant(t, le, 2, 4)
	if !l2.expiry.Equal(clk.now().Add(4 * time.Second)) {
		t.Fatalf("lease granted on primary: expiry %v", l2.expiry)
	}
	clk.advance(4500 * time.Millisecond)
	if info, _ := le.Lookup(2, false); info.TTL != 0 {
		t.Fatalf("remaining TTL of an expired lease = %d, want 0", info.TTL)
	}
	if info, _ := le.Lookup(1, false); info.TTL != 5 {
		t.Fatalf("remaining TTL rounds down: got %d, want 5", info.TTL)
	}
	le.Demote()
	for _, id := range []int64{1, 2} {
		info, _ := le.Lookup(id, false)
		if !info.Expiry.IsZero() || info.HasDeadlines {
			t.Fatalf("after demote lease %d: %+v", id, info)
		}
	}
	if got := le.Expired(10, time.Second); got != nil {
		t.Fatalf("Expired after demote = %v", got)
	}
	// Re-promotion restarts the countdown: nothing is due at once.
	le.Promote()
	if got := le.Expired(10, time.Second); len(got) != 0 {
		t.Fatalf("Expired right after re-promotion = %v", got)
	}
}

func TestExpiredOrderingLimitAndRetry(t *testing.T) {
	clk := newClock()
	le := New(1, clk.now)
	le.Promote()
	// Deadlines: lease 30 at +3s, 10 at +5s, 20 at +7s, 40 at +100s.
	mustGrant(t, le, 10, 5)
	mustGrant(t, le, 20, 7)
	mustGrant(t, le, 30, 3)
	mustGrant(t, le, 40, 100)

	clk.advance(2 * time.Second)
	if got := le.Expired(10, time.Second); len(got) != 0 {
		t.Fatalf("Expired at +2s = %v", got)
	}
	clk.advance(1 * time.Second) // +3s: a deadline equal to now is due
	if got := le.Expired(10, time.Second); !reflect.DeepEqual(got, []int64{30}) {
		t.Fatalf("Expired at +3s = %v, want [30]", got)
	}
	clk.advance(5 * time.Second) // +8s: 30 was pushed to +4s; 10 (+5s), 20 (+7s)
	if got := le.Expired(2, 10*time.Second); !reflect.DeepEqual(got, []int64{30, 10}) {
		t.Fatalf("Expired(limit 2) at +8s = %v, want oldest first [30 10]", got)
	}
	// 30 and 10 were pushed back to +18s; only 20 remains due.
	if got := le.Expired(10, 10*time.Second); !reflect.DeepEqual(got, []int64{20}) {
		t.Fatalf("Expired at +8s again = %v, want [20]", got)
	}
	if got := le.Expired(10, 10*time.Second); len(got) != 0 {
		t.Fatalf("retry push-back did not hold: %v", got)
	}
	clk.advance(10 * time.Second) // +18s: all three retries due, 40 not.
	got := le.Expired(10, time.Second)
	if len(got) != 3 {
		t.Fatalf("Expired after retry delay = %v, want 3 leases", got)
	}
	seen := map[int64]bool{}
	for _, id := range got {
		seen[id] = true
	}
	if !seen[10] || !seen[20] || !seen[30] || seen[40] {
		t.Fatalf("Expired after retry delay = %v", got)
	}
	// A lease found expired stays expired: keep-alives no longer save it.
	if _, err := le.Renew(30); err != ErrExpiring {
		t.Fatalf("Renew of an expired lease = %v, want ErrExpiring", err)
	}
	// A renewal before the deadline resets it to a full TTL.
	mustGrant(t, le, 50, 5)
	clk.advance(4 * time.Second)
	if _, err := le.Renew(50); err != nil {
		t.Fatal(err)
	}
	clk.advance(2 * time.Second)
	for _, id := range le.Expired(10, time.Minute) {
		if id == 50 {
			t.Fatal("renewed lease expired early")
		}
	}
	// Revoked leases are never reported.
	if _, err := le.Revoke(40); err != nil {
		t.Fatal(err)
	}
	clk.advance(time.Hour)
	for _, id := range le.Expired(10, time.Minute) {
		if id == 40 {
			t.Fatal("revoked lease reported as expired")
		}
	}
	if got := le.Expired(0, time.Minute); len(got) != 0 {
		t.Fatalf("Expired(limit 0) = %v", got)
	}
}

func TestConcurrentUse(t *testing.T) {
	le := New(1, nil)
	le.Promote()
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				id := int64(g*1000 + i)
				if _, err := le.Grant(id, 1); err != nil {
					t.Error(err)
					return
				}
				le.Attach("k", id)
				_, _ = le.Renew(id)
				_, _ = le.Lookup(id, true)
				_ = le.IDs()
				_ = le.Expired(5, time.Millisecond)
				if i%2 == 0 {
					_, _ = le.Revoke(id)
				}
			}
		}()
	}
	wg.Wait()
	// "k" belongs to at most one lease.
	n := 0
	for _, id := range le.IDs() {
		info, _ := le.Lookup(id, true)
		n += len(info.Keys)
	}
	if n > 1 {
		t.Fatalf("key attached to %d leases", n)
	}
}

// TestRenewExpiredLeaseFails: once a lease's TTL has run out, a late
// keep-alive must not bring it back. etcd's lessor.Renew refuses an expired
// lease (it waits for the pending revoke and answers "lease not found"); a
// renew that succeeds here would tell the client its lease lives while the
// revoke proposed for it is about to delete its keys (or, if the revoke was
// not proposed yet, silently extend a lease that already expired).
func TestRenewExpiredLeaseFails(t *testing.T) {
	clk := newClock()
	le := New(1, clk.now)
	le.Promote()
	mustGrant(t, le, 1, 5)
	clk.advance(6 * time.Second)
	ttl, err := le.Renew(1)
	if err == nil {
		t.Fatalf("BUG: Renew of a lease that expired 1s ago succeeded with TTL %d (etcd refuses it)", ttl)
	}
}
