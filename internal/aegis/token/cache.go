package token

import (
	"crypto/sha256"
	"sync"
)

// verifyCache remembers verified tokens by the SHA-256 of their exact
// string. A cryptographic hash, not a fast map hash, because a collision
// would let one string borrow another's verified claims.
//
// Eviction is generational: entries go into cur; when cur holds half the
// capacity it becomes prev and a fresh cur starts. A hit in prev moves the
// entry to cur. That approximates LRU with O(1) work and bounds memory at
// the capacity, without per-entry bookkeeping.
type verifyCache struct {
	half int

	mu   sync.Mutex
	cur  map[[sha256.Size]byte]*cacheEntry
	prev map[[sha256.Size]byte]*cacheEntry
}

type cacheEntry struct {
	claims *Claims // never modified after insertion
	rev    int64   // keyring revision it was verified under
}

func newVerifyCache(size int) *verifyCache {
	if size <= 0 {
		return nil
	}
	half := max(size/2, 1)
	return &verifyCache{half: half, cur: make(map[[sha256.Size]byte]*cacheEntry, half)}
}

func (c *verifyCache) get(key [sha256.Size]byte) (*cacheEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.cur[key]; ok {
		return e, true
	}
	if e, ok := c.prev[key]; ok {
		delete(c.prev, key)
		c.putLocked(key, e)
		return e, true
	}
	return nil, false
}

func (c *verifyCache) put(key [sha256.Size]byte, e *cacheEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.putLocked(key, e)
}

func (c *verifyCache) putLocked(key [sha256.Size]byte, e *cacheEntry) {
	if len(c.cur) >= c.half {
		c.prev, c.cur = c.cur, make(map[[sha256.Size]byte]*cacheEntry, c.half)
	}
	c.cur[key] = e
}

func (c *verifyCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.cur) + len(c.prev)
}
