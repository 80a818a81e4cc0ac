package mvcc

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/google/btree"
)

// generation is one life of a key: from its creation to its deletion. A
// deleted key's generation ends with the tombstone revision; the last
// generation of a key is open (no tombstone), possibly empty.
type generation struct {
	ver     int64      // version of the last revision in revs
	created int64      // main revision that created the key (create_revision)
	revs    []revision // ascending
}

// keyIndex is the history of one user key still needed for reads at or after
// the compaction revision.
//
// Example: put(2) put(3) del(4) put(6) gives
//
//	{created 2, revs [2 3 4(t)]} {created 6, revs [6]}
//
// and compact(5) leaves {created 6, revs [6]}.
type keyIndex struct {
	key   []byte
	lease int64 // lease of the live value; 0 if none or deleted
	gens  []generation
}

func lessKeyIndex(a, b *keyIndex) bool { return bytes.Compare(a.key, b.key) < 0 }

func newIndex() *btree.BTreeG[*keyIndex] { return btree.NewG(32, lessKeyIndex) }

// put records a value revision, creating a new generation if the key is not live.
func (ki *keyIndex) put(r revision, lease int64) {
	if len(ki.gens) == 0 {
		ki.gens = append(ki.gens, generation{})
	}
	g := &ki.gens[len(ki.gens)-1]
	if len(g.revs) == 0 {
		g.created = r.main
	}
	g.revs = append(g.revs, r)
	g.ver++
	ki.lease = lease
}

// tombstone ends the live generation. It reports false if the key is not live.
func (ki *keyIndex) tombstone(r revision) bool {
	if !ki.live() {
		return false
	}
	ki.put(r, 0)
	ki.gens = append(ki.gens, generation{})
	return true
}

// restore starts the index of a key whose older revisions were compacted away:
// the first revision we have is a value, which carries creation and version.
func (ki *keyIndex) restore(r revision, created, ver, lease int64) {
	ki.gens = append(ki.gens, generation{created: created, ver: ver, revs: []revision{r}})
	ki.lease = lease
}

// restoreTombstone starts the index of a key whose first surviving revision is
// a tombstone (kept because it is exactly at the compaction revision).
func (ki *keyIndex) restoreTombstone(r revision) {
	ki.gens = append(ki.gens, generation{ver: 1, revs: []revision{r}}, generation{})
}

// live reports whether the key currently exists.
func (ki *keyIndex) live() bool {
	return len(ki.gens) > 0 && len(ki.gens[len(ki.gens)-1].revs) > 0
}

func (ki *keyIndex) isEmpty() bool {
	return len(ki.gens) == 0 || (len(ki.gens) == 1 && len(ki.gens[0].revs) == 0)
}

// findGeneration returns the generation in which the key was live at atRev,
// or nil if it did not exist then.
func (ki *keyIndex) findGeneration(atRev int64) *generation {
	last := len(ki.gens) - 1
	for i := last; i >= 0; i-- {
		g := &ki.gens[i]
		if len(g.revs) == 0 {
			continue
		}
		if i != last && g.revs[len(g.revs)-1].main <= atRev {
			// Deleted at or before atRev, and no later generation started by then.
			return nil
		}
		if g.revs[0].main <= atRev {
			return g
		}
	}
	return nil
}

// get returns the revision of the key's value at atRev.
func (ki *keyIndex) get(atRev int64) (r revision, created, ver int64, ok bool) {
	g := ki.findGeneration(atRev)
	if g == nil {
		return revision{}, 0, 0, false
	}
	for i := len(g.revs) - 1; i >= 0; i-- {
		if g.revs[i].main <= atRev {
			return g.revs[i], g.created, g.ver - int64(len(g.revs)-1-i), true
		}
	}
	return revision{}, 0, 0, false
}

// compact drops the revisions not needed to read at atRev or later: for each
// key it keeps the latest revision <= atRev, unless that is a tombstone older
// than atRev. A tombstone exactly at atRev is kept (as etcd >= 3.5.16 does)
// so that a watch starting at the compaction revision still sees the delete;
// the next compaction drops it. The kept revision is added to keep.
//
// This looks for the latest revision across generations rather than, like
// etcd, for the first generation whose tombstone is >= atRev: one of our txns
// may delete and re-create a key at atRev (etcd's API rejects such txns), and
// then the re-created value is the one to keep.
func (ki *keyIndex) compact(atRev int64, keep map[revision]struct{}) {
	gi, ri := -1, -1
	for g := len(ki.gens) - 1; g >= 0 && gi < 0; g-- {
		revs := ki.gens[g].revs
		for i := len(revs) - 1; i >= 0; i-- {
			if revs[i].main <= atRev {
				gi, ri = g, i
				break
			}
		}
	}
	if gi < 0 {
		return // every revision is newer than atRev
	}
	gen := &ki.gens[gi]
	tomb := gi != len(ki.gens)-1 && ri == len(gen.revs)-1
	if tomb && gen.revs[ri].main < atRev {
		// Deleted before atRev: the whole generation goes. Copy so that the
		// dropped generations can be garbage collected.
		ki.gens = slices.Clone(ki.gens[gi+1:])
		return
	}
	keep[gen.revs[ri]] = struct{}{}
	if ri > 0 {
		gen.revs = slices.Clone(gen.revs[ri:])
	}
	if gi > 0 {
		ki.gens = slices.Clone(ki.gens[gi:])
	}
}

// appendRevs appends every revision in the index of this key with main <= maxRev.
func (ki *keyIndex) appendRevs(dst []revision, maxRev int64) []revision {
	for _, g := range ki.gens {
		for _, r := range g.revs {
			if r.main > maxRev {
				return dst
			}
			dst = append(dst, r)
		}
	}
	return dst
}

func (ki *keyIndex) String() string {
	return fmt.Sprintf("%q lease=%d gens=%v", ki.key, ki.lease, ki.gens)
}

// keyRange classifies the [key, end) arguments of Range and DeleteRange with
// etcd's conventions.
type keyRange struct {
	key, end []byte
	single   bool // end empty: only key itself
	open     bool // end == "\x00": every key >= key
}

func newKeyRange(key, end []byte) keyRange {
	kr := keyRange{key: key, end: end}
	switch {
	case len(end) == 0:
		kr.single = true
	case len(end) == 1 && end[0] == 0:
		kr.open = true
	}
	return kr
}

func (kr keyRange) contains(k []byte) bool {
	switch {
	case kr.single:
		return bytes.Equal(k, kr.key)
	case kr.open:
		return bytes.Compare(k, kr.key) >= 0
	default:
		return bytes.Compare(k, kr.key) >= 0 && bytes.Compare(k, kr.end) < 0
	}
}

// visitIndex calls fn for every keyIndex in kr, in key order, until fn returns false.
func visitIndex(t *btree.BTreeG[*keyIndex], kr keyRange, fn func(ki *keyIndex) bool) {
	if kr.single {
		if ki, ok := t.Get(&keyIndex{key: kr.key}); ok {
			fn(ki)
		}
		return
	}
	if !kr.open && bytes.Compare(kr.key, kr.end) >= 0 {
		return
	}
	t.AscendGreaterOrEqual(&keyIndex{key: kr.key}, func(ki *keyIndex) bool {
		if !kr.open && bytes.Compare(ki.key, kr.end) >= 0 {
			return false
		}
		return fn(ki)
	})
}
