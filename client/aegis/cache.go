package aegis

import "sync"

// boundedCache is a size-bounded map with generational eviction: entries go
// into cur; when cur holds half the capacity it becomes prev and a fresh
// cur starts, dropping the old prev. A hit in prev moves the entry to cur.
// That approximates LRU with O(1) work per operation and no per-entry
// bookkeeping, and bounds memory at the capacity whatever callers send —
// which matters because the keys come from callers (token ids, resource
// names). Expiry is the caller's business (values carry their deadline).
type boundedCache[K comparable, V any] struct {
	half int

	mu   sync.Mutex
	cur  map[K]V
	prev map[K]V
}

// newBoundedCache returns a cache of about size entries, or nil (a valid,
// always-empty cache) if size <= 0.
func newBoundedCache[K comparable, V any](size int) *boundedCache[K, V] {
	if size <= 0 {
		return nil
	}
	half := max(size/2, 1)
	return &boundedCache[K, V]{half: half, cur: make(map[K]V, half)}
}

func (c *boundedCache[K, V]) get(k K) (V, bool) {
	var zero V
	if c == nil {
		return zero, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.cur[k]; ok {
		return v, true
	}
	if v, ok := c.prev[k]; ok {
		delete(c.prev, k)
		c.putLocked(k, v)
		return v, true
	}
	return zero, false
}

func (c *boundedCache[K, V]) put(k K, v V) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.putLocked(k, v)
}

func (c *boundedCache[K, V]) putLocked(k K, v V) {
	if _, ok := c.cur[k]; !ok && len(c.cur) >= c.half {
		c.prev, c.cur = c.cur, make(map[K]V, c.half)
	}
	c.cur[k] = v
}

func (c *boundedCache[K, V]) remove(k K) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.cur, k)
	delete(c.prev, k)
}

func (c *boundedCache[K, V]) len() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.cur) + len(c.prev)
}
