package kvserver

import (
	"crypto/sha1"
	"encoding/binary"
	"sort"
	"strings"
	"sync/atomic"
	"time"
)

// idGenerator makes request and lease ids unique across members (the member
// id prefix) and restarts (the start-time suffix).
type idGenerator struct {
	prefix uint64
	next   atomic.Uint64
}

func newIDGenerator(memberID uint64, now time.Time) *idGenerator {
	g := &idGenerator{prefix: memberID << 48}
	g.next.Store(uint64(now.UnixMilli()) << 8)
	return g
}

func (g *idGenerator) Next() uint64 {
	return g.prefix | (g.next.Add(1) & (1<<48 - 1))
}

// computeMemberID derives a member id from its peer URLs and the cluster
// token, as etcd does, so that the same --initial-cluster gives the same ids.
func computeMemberID(peerURLs []string, token string) uint64 {
	urls := append([]string(nil), peerURLs...)
	sort.Strings(urls)
	sum := sha1.Sum([]byte(strings.Join(urls, "") + token))
	return binary.BigEndian.Uint64(sum[:8])
}

// computeClusterID derives the cluster id from the member ids.
func computeClusterID(memberIDs []uint64) uint64 {
	ids := append([]uint64(nil), memberIDs...)
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	b := make([]byte, 8*len(ids))
	for i, id := range ids {
		binary.BigEndian.PutUint64(b[8*i:], id)
	}
	sum := sha1.Sum(b)
	return binary.BigEndian.Uint64(sum[:8])
}
