// Package lease keeps Chainfire's leases: their TTLs, the keys attached to
// them and when they expire.
//
// The set of leases and their attached keys is replicated state: it changes
// only when the apply loop applies a grant, revoke, put or delete. Expiry
// deadlines are local to the leader: it renews them on keep-alive and, when
// one passes, proposes a revoke through raft so that every member deletes the
// same keys at the same revision.
package lease

import (
	"errors"
	"sort"
	"sync"
	"time"
)

// MaxTTL is the longest TTL a lease may have, in seconds (etcd's limit).
const MaxTTL = 9_000_000_000

// Errors returned to clients; the gRPC layer maps them to etcd's errors.
var (
	ErrNotFound    = errors.New("lease: lease not found")
	ErrExists      = errors.New("lease: lease already exists")
	ErrTTLTooLarge = errors.New("lease: too large TTL")
	ErrNotPrimary  = errors.New("lease: not the leader")
	// ErrExpiring: the lease's deadline passed and its revoke is on its way;
	// a keep-alive must wait for it rather than report the lease gone while
	// its keys are still there.
	ErrExpiring = errors.New("lease: expired, being revoked")
)

// Lease is one granted lease.
type Lease struct {
	ID  int64
	TTL int64 // granted TTL in seconds, after raising to the minimum
	// expiry is zero while this member is not the leader: only the leader
	// tracks deadlines.
	expiry time.Time
	// remaining is the TTL left at the last checkpoint, in seconds (0: none),
	// which a new leader starts the lease from instead of the full TTL.
	remaining int64
	// expired is set once the leader found the deadline passed: a revoke is
	// on its way and keep-alives no longer save the lease.
	expired bool
	keys    map[string]struct{}
}

// timeLeft returns the time left before the lease expires; off the leader,
// the last checkpointed remaining TTL, or the full TTL.
func (l *Lease) timeLeft(now time.Time) time.Duration {
	if l.expiry.IsZero() {
		if l.remaining > 0 {
			return time.Duration(l.remaining) * time.Second
		}
		return time.Duration(l.TTL) * time.Second
	}
	if d := l.expiry.Sub(now); d > 0 {
		return d
	}
	return 0
}

// Lessor holds every lease. It is safe for concurrent use.
type Lessor struct {
	mu      sync.RWMutex
	leases  map[int64]*Lease
	keyOf   map[string]int64 // key -> lease it is attached to
	minTTL  int64
	primary bool
	now     func() time.Time
}

// New returns an empty lessor that raises every TTL to at least minTTL seconds.
func New(minTTL int64, now func() time.Time) *Lessor {
	if now == nil {
		now = time.Now
	}
	return &Lessor{leases: map[int64]*Lease{}, keyOf: map[string]int64{}, minTTL: minTTL, now: now}
}

// Reset forgets every lease, before the lessor is refilled from a snapshot.
func (le *Lessor) Reset() {
	le.mu.Lock()
	defer le.mu.Unlock()
	le.leases = map[int64]*Lease{}
	le.keyOf = map[string]int64{}
}

// MinTTL is the shortest TTL a lease gets.
func (le *Lessor) MinTTL() int64 { return le.minTTL }

// Grant creates a lease. Called by the apply loop.
func (le *Lessor) Grant(id, ttl int64) (*Lease, error) {
	if ttl > MaxTTL {
		return nil, ErrTTLTooLarge
	}
	le.mu.Lock()
	defer le.mu.Unlock()
	if _, ok := le.leases[id]; ok {
		return nil, ErrExists
	}
	if ttl < le.minTTL {
		ttl = le.minTTL
	}
	l := &Lease{ID: id, TTL: ttl, keys: map[string]struct{}{}}
	if le.primary {
		l.expiry = le.now().Add(time.Duration(ttl) * time.Second)
	}
	le.leases[id] = l
	return l, nil
}

// Revoke removes a lease and returns the keys that were attached to it, sorted.
// The caller deletes them in the same apply step.
func (le *Lessor) Revoke(id int64) ([]string, error) {
	le.mu.Lock()
	defer le.mu.Unlock()
	l, ok := le.leases[id]
	if !ok {
		return nil, ErrNotFound
	}
	keys := make([]string, 0, len(l.keys))
	for k := range l.keys {
		keys = append(keys, k)
		delete(le.keyOf, k)
	}
	delete(le.leases, id)
	sort.Strings(keys)
	return keys, nil
}

// Exists reports whether the lease is granted.
func (le *Lessor) Exists(id int64) bool {
	le.mu.RLock()
	defer le.mu.RUnlock()
	_, ok := le.leases[id]
	return ok
}

// Attach records that key now belongs to lease id (0 detaches it).
func (le *Lessor) Attach(key string, id int64) {
	le.mu.Lock()
	defer le.mu.Unlock()
	le.detachLocked(key)
	if id == 0 {
		return
	}
	if l, ok := le.leases[id]; ok {
		l.keys[key] = struct{}{}
		le.keyOf[key] = id
	}
}

// Detach records that key was deleted or put without a lease.
func (le *Lessor) Detach(key string) {
	le.mu.Lock()
	defer le.mu.Unlock()
	le.detachLocked(key)
}

func (le *Lessor) detachLocked(key string) {
	if old, ok := le.keyOf[key]; ok {
		if l := le.leases[old]; l != nil {
			delete(l.keys, key)
		}
		delete(le.keyOf, key)
	}
}

// Renew restarts a lease's countdown and returns its TTL. Only the leader renews.
func (le *Lessor) Renew(id int64) (int64, error) {
	le.mu.Lock()
	defer le.mu.Unlock()
	if !le.primary {
		return 0, ErrNotPrimary
	}
	l, ok := le.leases[id]
	if !ok {
		return 0, ErrNotFound
	}
	now := le.now()
	if l.expired || !l.expiry.After(now) {
		// Too late, as in etcd: the lease is being revoked.
		return 0, ErrExpiring
	}
	l.expiry = now.Add(time.Duration(l.TTL) * time.Second)
	return l.TTL, nil
}

// Info describes a lease for TimeToLive.
type Info struct {
	ID           int64
	TTL          int64 // remaining seconds, rounded down as etcd does
	GrantedTTL   int64
	Keys         []string
	Expiry       time.Time
	HasDeadlines bool
}

// Lookup describes one lease.
func (le *Lessor) Lookup(id int64, withKeys bool) (Info, error) {
	le.mu.RLock()
	defer le.mu.RUnlock()
	l, ok := le.leases[id]
	if !ok {
		return Info{}, ErrNotFound
	}
	info := Info{ID: id, GrantedTTL: l.TTL, TTL: int64(l.timeLeft(le.now()) / time.Second), Expiry: l.expiry, HasDeadlines: le.primary}
	if withKeys {
		for k := range l.keys {
			info.Keys = append(info.Keys, k)
		}
		sort.Strings(info.Keys)
	}
	return info, nil
}

// IDs lists every lease, sorted.
func (le *Lessor) IDs() []int64 {
	le.mu.RLock()
	defer le.mu.RUnlock()
	ids := make([]int64, 0, len(le.leases))
	for id := range le.leases {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

// Promote makes this lessor track deadlines, giving every lease its full TTL
// from now (as etcd does when a member becomes leader).
func (le *Lessor) Promote() {
	le.mu.Lock()
	defer le.mu.Unlock()
	le.primary = true
	now := le.now()
	for _, l := range le.leases {
		ttl := l.TTL
		if l.remaining > 0 {
			ttl = l.remaining
		}
		l.expiry = now.Add(time.Duration(ttl) * time.Second)
		l.expired = false
	}
}

// Checkpoint records a lease's remaining TTL, as replicated by the leader.
func (le *Lessor) Checkpoint(id, remaining int64) error {
	le.mu.Lock()
	defer le.mu.Unlock()
	l, ok := le.leases[id]
	if !ok {
		return ErrNotFound
	}
	l.remaining = remaining
	return nil
}

// Remaining is the lease's last checkpointed remaining TTL (0: none).
func (le *Lessor) Remaining(id int64) int64 {
	le.mu.RLock()
	defer le.mu.RUnlock()
	if l, ok := le.leases[id]; ok {
		return l.remaining
	}
	return 0
}

// CheckpointsDue lists, on the leader, the leases whose remaining TTL has
// moved away from the last checkpoint, with the value to record: what is left
// now, or 0 ("full TTL") for a lease renewed since.
func (le *Lessor) CheckpointsDue(limit int) map[int64]int64 {
	le.mu.RLock()
	defer le.mu.RUnlock()
	if !le.primary {
		return nil
	}
	now := le.now()
	due := map[int64]int64{}
	for id, l := range le.leases {
		if l.expired {
			continue
		}
		left := int64((l.expiry.Sub(now) + time.Second - 1) / time.Second)
		if left >= l.TTL {
			left = 0
		}
		if left != l.remaining {
			due[id] = left
			if len(due) >= limit {
				break
			}
		}
	}
	return due
}

// Demote stops tracking deadlines.
func (le *Lessor) Demote() {
	le.mu.Lock()
	defer le.mu.Unlock()
	le.primary = false
	for _, l := range le.leases {
		l.expiry = time.Time{}
	}
}

// Expired returns up to limit leases whose deadline has passed, oldest first,
// and pushes each one's deadline a little ahead so a revoke that is still in
// flight is not proposed again at once.
func (le *Lessor) Expired(limit int, retry time.Duration) []int64 {
	le.mu.Lock()
	defer le.mu.Unlock()
	if !le.primary {
		return nil
	}
	now := le.now()
	var due []*Lease
	for _, l := range le.leases {
		if !l.expiry.After(now) {
			due = append(due, l)
		}
	}
	sort.Slice(due, func(i, j int) bool { return due[i].expiry.Before(due[j].expiry) })
	if len(due) > limit {
		due = due[:limit]
	}
	ids := make([]int64, len(due))
	for i, l := range due {
		ids[i] = l.ID
		l.expired = true
		l.expiry = now.Add(retry)
	}
	return ids
}
