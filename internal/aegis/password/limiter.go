package password

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/hex"
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

// Wait returns how long until a bucket whose theoretical arrival time is
// tat holds one attempt at rate r: it is empty when tat is more than
// (Burst-1)×Every ahead of now. A zero tat is a full bucket.
func (r Rate) Wait(tat, now time.Time) time.Duration {
	tolerance := time.Duration(r.Burst-1) * r.Every
	if ahead := tat.Sub(now); ahead > tolerance {
		return ahead - tolerance
	}
	return 0
}

// Take returns the bucket's tat after spending one attempt; call it only
// when Wait returned 0.
func (r Rate) Take(tat, now time.Time) time.Time {
	// A bucket that refilled (or a clock that stepped backwards past tat)
	// starts from now, so idle time never banks more than Burst attempts.
	if tat.Before(now) {
		tat = now
	}
	return tat.Add(r.Every)
}

// Window is how long a bucket takes to refill completely: after it, a
// bucket's state can be forgotten.
func (r Rate) Window() time.Duration { return time.Duration(r.Burst) * r.Every }

// SharedBuckets keeps token buckets where every replica sees them, so that
// a limit holds for the whole installation instead of once per replica.
// Keys are opaque strings of at most 64 hexadecimal characters.
type SharedBuckets interface {
	// Take spends one attempt of bucket key at rate r if it holds one,
	// and returns 0; otherwise it spends nothing and returns how long
	// until it will. Concurrent takes from anywhere are atomic.
	Take(ctx context.Context, key string, r Rate, now time.Time) (wait time.Duration, err error)
	// Reset makes bucket key full again.
	Reset(ctx context.Context, key string) error
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
	// SharedUsers, when set, keeps the per-user buckets there instead of
	// in this process, so that replicas behind a load balancer do not
	// multiply the attempts an attacker gets on one account. Per-address
	// buckets stay local: a client keeps its connection to one replica,
	// and they only slow spraying.
	SharedUsers SharedBuckets
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
// the per-user limit still applies. An error comes only from the shared
// buckets; the attempt is then not allowed.
func (l *Limiter) Allow(ctx context.Context, user string, addr netip.Addr) (allowed bool, retryAfter time.Duration, err error) {
	now := l.opts.Now()
	akey, hasAddr := l.addrKey(addr)
	if l.opts.SharedUsers == nil {
		allowed, retryAfter = l.allowLocal(userKey(user), akey, hasAddr, now)
		return allowed, retryAfter, nil
	}

	// The address is paid here first and refunded when the shared user
	// bucket refuses: holding the lock across a call to the shared store
	// would make every login of this process wait for the others'.
	if hasAddr {
		l.mu.Lock()
		ab := l.addrs.get(akey)
		if wait := l.opts.PerAddr.Wait(ab.tat, now); wait > 0 {
			l.mu.Unlock()
			return false, wait, nil
		}
		ab.tat = l.opts.PerAddr.Take(ab.tat, now)
		l.mu.Unlock()
	}
	wait, err := l.opts.SharedUsers.Take(ctx, sharedUserKey(user), l.opts.PerUser, now)
	if err != nil || wait > 0 {
		if hasAddr {
			l.mu.Lock()
			ab := l.addrs.get(akey)
			ab.tat = ab.tat.Add(-l.opts.PerAddr.Every)
			l.mu.Unlock()
		}
		if err != nil {
			return false, 0, fmt.Errorf("login rate limit: %w", err)
		}
		return false, wait, nil
	}
	return true, 0, nil
}

// allowLocal is Allow with both buckets in this process: under one lock,
// both allow and then both pay.
func (l *Limiter) allowLocal(ukey string, akey netip.Prefix, hasAddr bool, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ub := l.users.get(ukey)
	wait := l.opts.PerUser.Wait(ub.tat, now)
	var ab *bucket
	if hasAddr {
		ab = l.addrs.get(akey)
		wait = max(wait, l.opts.PerAddr.Wait(ab.tat, now))
	}
	if wait > 0 {
		return false, wait
	}
	ub.tat = l.opts.PerUser.Take(ub.tat, now)
	if ab != nil {
		ab.tat = l.opts.PerAddr.Take(ab.tat, now)
	}
	return true, 0
}

// Succeeded tells the limiter that user just logged in with the right
// password: the user's bucket is refilled, so that a user's own typos do not
// pile up across days. The address bucket is not refunded: a host that logs
// in to many accounts successfully is still worth slowing down.
func (l *Limiter) Succeeded(ctx context.Context, user string) error {
	if l.opts.SharedUsers != nil {
		if err := l.opts.SharedUsers.Reset(ctx, sharedUserKey(user)); err != nil {
			return fmt.Errorf("login rate limit: %w", err)
		}
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.users.remove(userKey(user))
	return nil
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

// sharedUserKey names user's bucket in the shared store: a digest, so
// that the store holds no login names and keys have one length.
func sharedUserKey(user string) string {
	sum := sha256.Sum256([]byte(user))
	return hex.EncodeToString(sum[:])
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
// it keeps tat, the time at which the bucket will be full again (see
// [Rate.Wait] and [Rate.Take]). Integer time arithmetic keeps "wait
// exactly retryAfter, then succeed" exact, which a floating-point token
// count does not. A bucket with tat <= now is full.
type bucket struct {
	tat time.Time
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
