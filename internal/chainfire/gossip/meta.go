package gossip

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// metaVersion is the version of the metadata encoding this package writes.
// Decoders accept any version >= 1 and read the version-1 fields, so later
// versions may only append fields.
const metaVersion = 1

// flagLeaving marks a node that is leaving on purpose, so that the others
// report it as left rather than dead.
const flagLeaving = 1 << 0

// Meta is what a node tells the others about itself: which Chainfire
// cluster and member it is and how to reach it.
type Meta struct {
	// ClusterID and MemberID are the raft ids; 0 while not yet known (a
	// member that is still joining).
	ClusterID uint64
	MemberID  uint64
	// ClientURLs are the advertised etcd API URLs, PeerURLs the raft peer URLs.
	ClientURLs []string
	PeerURLs   []string
}

// encodeMeta writes m in at most limit bytes:
//
//	version byte, flags byte, uvarint cluster id, uvarint member id,
//	uvarint count + (uvarint length, bytes) per client URL, same for peer URLs.
//
// URLs that do not fit are dropped from the end (client URLs first), so a
// node with very long URL lists still gossips its ids; dropped reports how
// many were dropped.
func encodeMeta(m Meta, leaving bool, limit int) (buf []byte, dropped int) {
	client, peer := m.ClientURLs, m.PeerURLs
	for {
		buf = encodeMetaFields(m.ClusterID, m.MemberID, client, peer, leaving)
		if len(buf) <= limit || (len(client) == 0 && len(peer) == 0) {
			return buf, dropped
		}
		if len(client) > 0 {
			client = client[:len(client)-1]
		} else {
			peer = peer[:len(peer)-1]
		}
		dropped++
	}
}

func encodeMetaFields(clusterID, memberID uint64, client, peer []string, leaving bool) []byte {
	var flags byte
	if leaving {
		flags |= flagLeaving
	}
	buf := []byte{metaVersion, flags}
	buf = binary.AppendUvarint(buf, clusterID)
	buf = binary.AppendUvarint(buf, memberID)
	for _, list := range [][]string{client, peer} {
		buf = binary.AppendUvarint(buf, uint64(len(list)))
		for _, s := range list {
			buf = binary.AppendUvarint(buf, uint64(len(s)))
			buf = append(buf, s...)
		}
	}
	return buf
}

var errShortMeta = errors.New("gossip: truncated node metadata")

// decodeMeta reads what encodeMeta wrote (or a later version's prefix).
func decodeMeta(b []byte) (m Meta, leaving bool, err error) {
	if len(b) < 2 {
		return Meta{}, false, errShortMeta
	}
	if b[0] < 1 {
		return Meta{}, false, fmt.Errorf("gossip: unknown metadata version %d", b[0])
	}
	leaving = b[1]&flagLeaving != 0
	b = b[2:]
	uvarint := func() (uint64, error) {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return 0, errShortMeta
		}
		b = b[n:]
		return v, nil
	}
	if m.ClusterID, err = uvarint(); err != nil {
		return Meta{}, false, err
	}
	if m.MemberID, err = uvarint(); err != nil {
		return Meta{}, false, err
	}
	for _, list := range []*[]string{&m.ClientURLs, &m.PeerURLs} {
		n, err := uvarint()
		if err != nil {
			return Meta{}, false, err
		}
		if n > uint64(len(b)) { // every entry takes at least one byte
			return Meta{}, false, errShortMeta
		}
		for range n {
			l, err := uvarint()
			if err != nil {
				return Meta{}, false, err
			}
			if l > uint64(len(b)) {
				return Meta{}, false, errShortMeta
			}
			*list = append(*list, string(b[:l]))
			b = b[l:]
		}
	}
	return m, leaving, nil
}
