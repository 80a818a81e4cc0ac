package server

import (
	"sync"
	"time"
)

// grantCache remembers the admin checks a caller passed, so that a
// platform service asking Authorize thousands of times a second is not
// itself authorized from scratch on every call. An entry holds only while
// the store's index is at the revision it was decided at (any IAM change
// moves it) and for at most the decision's cache TTL (a second, and zero —
// not cached — when a condition took part).
type grantCache struct {
	mu      sync.RWMutex
	entries map[string]grantEntry
}

type grantEntry struct {
	rev   int64
	until time.Time
}

// maxGrantEntries bounds the cache; past it, it starts over.
const maxGrantEntries = 10000

func newGrantCache() *grantCache { return &grantCache{entries: map[string]grantEntry{}} }

func (g *grantCache) has(key string, rev int64, now time.Time) bool {
	g.mu.RLock()
	e, ok := g.entries[key]
	g.mu.RUnlock()
	return ok && e.rev == rev && now.Before(e.until)
}

func (g *grantCache) put(key string, rev int64, until time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.entries) >= maxGrantEntries {
		g.entries = map[string]grantEntry{}
	}
	g.entries[key] = grantEntry{rev: rev, until: until}
}

// grantKey identifies a check by an unrestricted caller; restricted
// (downscoped) callers are not cached.
func grantKey(c *Caller, perm, name string) (string, bool) {
	if c.Project != "" || len(c.Permissions) != 0 || c.PolicyPrincipal == "" {
		return "", false
	}
	return c.PolicyPrincipal + "\x00" + perm + "\x00" + name, true
}
