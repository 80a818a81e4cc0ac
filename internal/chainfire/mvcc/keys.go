package mvcc

import (
	"encoding/binary"
	"fmt"
)

const (
	revPrefix     = 'k'
	metaPrefix    = 'm'
	revKeyLen     = 1 + 8 + 8
	tombstoneMark = 't'
)

// Meta keys. All start with metaPrefix so that they stay in our key space.
var (
	metaCurrentRev       = []byte("mcurrent_rev")
	metaScheduledCompact = []byte("mscheduled_compact_rev")
	metaFinishedCompact  = []byte("mfinished_compact_rev")
)

// Bounds of the revision key space ['k', 'l') and meta key space ['m', 'n').
var (
	revSpaceStart  = []byte{revPrefix}
	revSpaceEnd    = []byte{revPrefix + 1}
	metaSpaceStart = []byte{metaPrefix}
	metaSpaceEnd   = []byte{metaPrefix + 1}
)

// revision identifies one change: main is the store revision of the txn,
// sub the position of the change inside it.
type revision struct {
	main int64
	sub  int64
}

func (a revision) greaterThan(b revision) bool {
	if a.main != b.main {
		return a.main > b.main
	}
	return a.sub > b.sub
}

func (a revision) String() string { return fmt.Sprintf("%d.%d", a.main, a.sub) }

// appendRevKey appends the Pebble key of r to dst.
func appendRevKey(dst []byte, r revision, tombstone bool) []byte {
	dst = append(dst, revPrefix)
	dst = binary.BigEndian.AppendUint64(dst, uint64(r.main))
	dst = binary.BigEndian.AppendUint64(dst, uint64(r.sub))
	if tombstone {
		dst = append(dst, tombstoneMark)
	}
	return dst
}

func revKey(r revision, tombstone bool) []byte {
	return appendRevKey(make([]byte, 0, revKeyLen+1), r, tombstone)
}

// revBound is the smallest revision key with main revision main; used as a
// scan bound ("every revision with main < main" ends here).
func revBound(main int64) []byte { return revKey(revision{main: main}, false) }

// parseRevKey decodes a Pebble key of the revision space.
func parseRevKey(k []byte) (r revision, tombstone bool, err error) {
	switch {
	case len(k) == revKeyLen && k[0] == revPrefix:
	case len(k) == revKeyLen+1 && k[0] == revPrefix && k[revKeyLen] == tombstoneMark:
		tombstone = true
	default:
		return revision{}, false, fmt.Errorf("mvcc: malformed revision key %x", k)
	}
	r.main = int64(binary.BigEndian.Uint64(k[1:9]))
	r.sub = int64(binary.BigEndian.Uint64(k[9:17]))
	return r, tombstone, nil
}

func encodeInt(v int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(v)) }

func decodeInt(b []byte) (int64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("mvcc: malformed meta value of %d bytes", len(b))
	}
	return int64(binary.BigEndian.Uint64(b)), nil
}
