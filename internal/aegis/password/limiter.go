package password

import (
	"container/list"
	"crypto/sha256"
	"fmt"
	"net/netip"
	"sync"
	"time"
)

// Rate is a token bucket: Burst attempts at once, then one more every
// Every. A bucket left alone for Burst×Every is full again.
type Rate struct {
	Burst int
	Every time.Duration
}

func (r Rate) validate(name string) error {
	if r.Burst < 1 {
		return fmt.Errorf("%s burst must be at least 1, got %d", name, r.Burst)
	}
	if r.Every <= 0 {
		return fmt.Errorf("%s interval must be positive, got %v", name, r.Every)
	}
	return nil
}

// LimiterOptions configure a [Limiter]. The zero value works.
type LimiterOptions struct {
	// PerUser limits attempts against one user name, from anywhere: it is
	// what stops a distributed guessing attack on one account. Default 10
	// attempts, then one per minute (at most ~70 guesses in the first hour).
	PerUser Rate
	// PerAddr limits attempts from one source address against any user: it
	// is what stops one host from spraying many accounts. It is more generous
	// than PerUser because many people may share a NAT address. Default 30
	// attempts, then one every 2 seconds.
	PerAddr Rate
	// MaxEntries bounds each of the two tables (users and addresses). When a
	// table is full the least recently used entry is dropped; an entry idle
	// for Burst×Every is full anyway, so only more than MaxEntries keys
	// active within that window lose state. About 100 bytes per entry.
	// Default 100000.
	MaxEntries int
	// IPv6PrefixLen groups IPv6 sources into one bucket per prefix, because
	// one host usually controls a whole /64. Default 64. IPv4 (and
	// IPv4-mapped IPv6) addresses always count one by one.
	IPv6PrefixLen int
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// EnsureDefaults fills zero fields with their defaults.
func (o *LimiterOptions) EnsureDefaults() {
	if o.PerUser == (Rate{}) {
		o.PerUser = Rate{Burst: 10, Every: time.Minute}
	}
	if o.PerAddr == (Rate{}) {
		o.PerAddr = Rate{Burst: 30, Every: 2 * time.Second}
	}
	if o.MaxEntries == 0 {
		o.MaxEntries = 100_000
	}
	if o.IPv6PrefixLen == 0 {
		o.IPv6PrefixLen = 64
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Validate reports invalid options.
func (o *LimiterOptions) Validate() error {
	if err := o.PerUser.validate("per-user rate"); err != nil {
		return err
	}
	if err := o.PerAddr.validate("per-address rate"); err != nil {
		return err
	}
	if o.MaxEntries < 1 {
		return fmt.Errorf("limiter max entries must be positive, got %d", o.MaxEntries)
	}
	if o.IPv6PrefixLen < 1 || o.IPv6PrefixLen > 128 {
		return fmt.Errorf("limiter IPv6 prefix length must be in [1, 128], got %d", o.IPv6PrefixLen)
	}
	return nil
}

// Limiter rate-limits login attempts per user name and per source address.
// It is safe for concurrent use. One mutex guards both tables: logins are
// rare next to the argon2 work each one triggers, so contention is not a
// concern, and one lock makes "both buckets allow, then both pay" atomic.
type Limiter struct {
	opts  LimiterOptions
	mu    sync.Mutex
	users *buckets[string]
	addrs *buckets[netip.Prefix]
}

// NewLimiter returns a Limiter with opts after filling defaults.
func NewLimiter(opts LimiterOptions) (*Limiter, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	return &Limiter{
		opts:  opts,
		users: newBuckets[string](opts.MaxEntries),
		addrs: newBuckets[netip.Prefix](opts.MaxEntries),
	}, nil
}

// Allow is called before checking a password for user from addr. It takes
// one attempt from both buckets if both have one, and otherwise takes
// nothing and returns how long to wait until both will (to send as
// Retry-After). Attempts are paid up front, not on failure, so that a
// burst of parallel guesses cannot all pass before the first one fails.
//
// user should be the canonical login name as typed (existing or not, so
// that probing unknown names is limited too). An invalid addr (the zero
// netip.Addr, when the transport has none) skips the per-address limit;
// the per-user limit still applies.
func (l *Limiter) Allow(user string, addr netip.Addr) (allowed bool, retryAfter time.Duration) {
	now := l.opts.Now()
	ukey := userKey(user)
	akey, hasAddr := l.addrKey(addr)

	l.mu.Lock()
	defer l.mu.Unlock()
	ub := l.users.get(ukey)
	wait := ub.wait(now, l.opts.PerUser)
	var ab *bucket
	if hasAddr {
		ab = l.addrs.get(akey)
		wait = max(wait, ab.wait(now, l.opts.PerAddr))
	}
	if wait > 0 {
		return false, wait
	}
	ub.take(now, l.opts.PerUser)
	if ab != nil {
		ab.take(now, l.opts.PerAddr)
	}
	return true, 0
}

// Succeeded tells the limiter that user just logged in with the right
// password: the user's bucket is refilled, so that a user's own typos do not
// pile up across days. The address bucket is not refunded: a host that logs
// in to many accounts successfully is still worth slowing down.
func (l *Limiter) Succeeded(user string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.users.remove(userKey(user))
}

// Len returns the number of tracked users and addresses (for metrics).
func (l *Limiter) Len() (users, addrs int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.users.m), len(l.addrs.m)
}

// userKey bounds the memory one entry can take: user names come straight
// from requests, so a very long one is replaced by its digest.
func userKey(user string) string {
	const maxKey = 128
	if len(user) <= maxKey {
		return user
	}
	sum := sha256.Sum256([]byte(user))
	return "sha256:" + string(sum[:])
}

func (l *Limiter) addrKey(addr netip.Addr) (netip.Prefix, bool) {
	if !addr.IsValid() {
		return netip.Prefix{}, false
	}
	addr = addr.Unmap().WithZone("")
	bits := 32
	if addr.Is6() {
		bits = l.opts.IPv6PrefixLen
	}
	p, err := addr.Prefix(bits)
	if err != nil {
		return netip.Prefix{}, false
	}
	return p, true
}

// bucket is one token bucket in its GCRA form: instead of a token count
// it keeps tat, the time at which the bucket will be full again. Integer
// time arithmetic keeps "wait exactly retryAfter, then succeed" exact,
// which a floating-point token count does not. A bucket with tat <= now is
// full.
type bucket struct {
	tat time.Time
}

// wait returns how long until the bucket holds one attempt: it is empty
// when tat is more than (Burst-1)×Every ahead of now.
func (b *bucket) wait(now time.Time, r Rate) time.Duration {
	tolerance := time.Duration(r.Burst-1) * r.Every
	if ahead := b.tat.Sub(now); ahead > tolerance {
		return ahead - tolerance
	}
	return 0
}

// take spends one attempt; call only when wait returned 0.
func (b *bucket) take(now time.Time, r Rate) {
	// A bucket that refilled (or a clock that stepped backwards past tat)
	// starts from now, so idle time never banks more than Burst attempts.
	if b.tat.Before(now) {
		b.tat = now
	}
	b.tat = b.tat.Add(r.Every)
}

// buckets is an LRU-bounded table of token buckets.
type buckets[K comparable] struct {
	max int
	m   map[K]*list.Element
	lru list.List // front = most recently used; values are *entry[K]
}

type entry[K comparable] struct {
	key K
	b   bucket
}

func newBuckets[K comparable](maxEntries int) *buckets[K] {
	return &buckets[K]{max: maxEntries, m: make(map[K]*list.Element)}
}

// get returns the bucket for k, creating a full one (and evicting the
// least recently used entry if the table is full).
func (t *buckets[K]) get(k K) *bucket {
	if el, ok := t.m[k]; ok {
		t.lru.MoveToFront(el)
		return &el.Value.(*entry[K]).b
	}
	if len(t.m) >= t.max {
		oldest := t.lru.Back()
		t.lru.Remove(oldest)
		delete(t.m, oldest.Value.(*entry[K]).key)
	}
	e := &entry[K]{key: k}
	t.m[k] = t.lru.PushFront(e)
	return &e.b
}

func (t *buckets[K]) remove(k K) {
	if el, ok := t.m[k]; ok {
		t.lru.Remove(el)
		delete(t.m, k)
	}
}
