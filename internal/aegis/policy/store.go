package policy

import (
	"hash/maphash"
	"maps"
	"slices"
	"strings"

	"github.com/google/btree"
)

// Copy-on-write sharded hash maps.
//
// A snapshot's hash indexes are two-level radix arrays of plain Go maps:
// 128 pointers to 128 leaf maps each (16384 leaves, ~60 entries per leaf at
// a million entries). A published snapshot is never modified: a
// transaction copies the root array and the second-level arrays on the
// paths it writes (1 KiB each) and clones only the leaves it writes to,
// each at most once per transaction. One watch event therefore costs a few
// small copies instead of a copy of the whole index, and a bulk load in one
// transaction clones every leaf at most once. Small leaves matter beyond
// the copy itself: cloning a large map while the GC is marking a large heap
// pays a write barrier per pointer and GC assist, which made single-event
// updates at 1M bindings take milliseconds with 1024 flat shards. Lookups
// pay one extra hop through arrays small enough to stay in cache.
const (
	l1Bits = 7
	l2Bits = 7
	l1Size = 1 << l1Bits
	l2Size = 1 << l2Bits
)

// hkey is a map key that can pick its shard.
type hkey interface {
	comparable
	hash(maphash.Seed) uint64
}

// skey is a string key.
type skey string

func (k skey) hash(seed maphash.Seed) uint64 { return maphash.String(seed, string(k)) }

// slot returns the first- and second-level indexes of a hash.
func slot(h uint64) (int, int) {
	return int(h >> (64 - l1Bits)), int(h>>(64-l1Bits-l2Bits)) & (l2Size - 1)
}

type leafArray[K hkey, V any] [l2Size]map[K]V

type cowMap[K hkey, V any] struct {
	root *[l1Size]*leafArray[K, V] // nil: empty
	n    int
}

func (m *cowMap[K, V]) get(seed maphash.Seed, k K) (V, bool) {
	if m.root != nil {
		i, j := slot(k.hash(seed))
		if mid := m.root[i]; mid != nil {
			v, ok := mid[j][k]
			return v, ok
		}
	}
	var zero V
	return zero, false
}

func (m *cowMap[K, V]) len() int { return m.n }

// cowWriter mutates a cowMap that belongs to an unpublished snapshot,
// copying what the published one still shares.
type cowWriter[K hkey, V any] struct {
	m         *cowMap[K, V]
	seed      maphash.Seed
	rootOwned bool
	midOwned  [l1Size / 64]uint64
	leafOwned [l1Size * l2Size / 64]uint64
}

func (w *cowWriter[K, V]) begin(m *cowMap[K, V], seed maphash.Seed) {
	*w = cowWriter[K, V]{m: m, seed: seed}
}

func testBit(bits []uint64, i int) bool { return bits[i/64]&(1<<(i%64)) != 0 }
func setBit(bits []uint64, i int)       { bits[i/64] |= 1 << (i % 64) }

// leaf returns the writable leaf (i, j).
func (w *cowWriter[K, V]) leaf(i, j int) map[K]V {
	if !w.rootOwned {
		root := new([l1Size]*leafArray[K, V])
		if w.m.root != nil {
			*root = *w.m.root
		}
		w.m.root = root
		w.rootOwned = true
	}
	if !testBit(w.midOwned[:], i) {
		mid := new(leafArray[K, V])
		if old := w.m.root[i]; old != nil {
			*mid = *old
		}
		w.m.root[i] = mid
		setBit(w.midOwned[:], i)
	}
	mid := w.m.root[i]
	if li := i*l2Size + j; !testBit(w.leafOwned[:], li) {
		if old := mid[j]; old != nil {
			mid[j] = maps.Clone(old)
		} else {
			mid[j] = make(map[K]V)
		}
		setBit(w.leafOwned[:], li)
	}
	return mid[j]
}

func (w *cowWriter[K, V]) get(k K) (V, bool) { return w.m.get(w.seed, k) }

func (w *cowWriter[K, V]) put(k K, v V) {
	leaf := w.leaf(slot(k.hash(w.seed)))
	if _, ok := leaf[k]; !ok {
		w.m.n++
	}
	leaf[k] = v
}

func (w *cowWriter[K, V]) del(k K) {
	if _, ok := w.m.get(w.seed, k); !ok {
		return
	}
	delete(w.leaf(slot(k.hash(w.seed))), k)
	w.m.n--
}

// Ordered indexes (used by reverse lookups and listings, not by decisions)
// are google/btree B-trees, whose Clone is O(1) and copies nodes lazily on
// write. The writer keeps a private tree per index; a transaction writes to
// a clone of it, and commit publishes yet another clone, so the published
// tree is never written to and Clone is never called on it.

// bindingLess orders bindings by (scope, id).
func bindingLess(a, b *binding) bool {
	if a.Scope != b.Scope {
		return a.Scope < b.Scope
	}
	return a.ID < b.ID
}

// membership is one (group, member) pair.
type membership struct{ group, member string }

func membershipLess(a, b membership) bool {
	if a.group != b.group {
		return a.group < b.group
	}
	return a.member < b.member
}

const btreeDegree = 32

func newBindingTree() *btree.BTreeG[*binding] { return btree.NewG(btreeDegree, bindingLess) }

func newMembershipTree() *btree.BTreeG[membership] {
	return btree.NewG(btreeDegree, membershipLess)
}

// subject is everything a decision needs about one principal or group,
// under one key so that a decision costs one hash lookup per subject: the
// principal itself, plus the existing groups it is in, with their bindings.
// Records are immutable; a transaction replaces a record with a modified
// copy (sharing the slices it does not change).
type subject struct {
	name      string     // interned
	principal *principal // users and service accounts; nil until put
	group     *group     // groups; nil until put
	groups    []string   // memberships of a user or service account, sorted (existing groups or not)
	scopes    []scopeBindings
}

// scopeBindings are the bindings naming one subject at one scope.
type scopeBindings struct {
	scope    string
	bindings []*binding // sorted by id
}

func (r *subject) empty() bool {
	return r.principal == nil && r.group == nil && len(r.groups) == 0 && len(r.scopes) == 0
}

// linearScopes is the number of scopes up to which appendBindings scans a
// subject's scopes instead of binary-searching them per ancestor.
const linearScopes = 8

// appendBindings appends r's bindings at res and its ancestors, from system
// down, each scope's bindings by id.
func (r *subject) appendBindings(dst []*binding, res Resource) []*binding {
	if len(r.scopes) == 0 {
		return dst
	}
	for i := range res.depth() {
		a := res.ancestor(i)
		if len(r.scopes) <= linearScopes {
			for j := range r.scopes {
				if sc := &r.scopes[j]; len(sc.scope) == len(a) && sc.scope == a {
					dst = append(dst, sc.bindings...)
				}
			}
			continue
		}
		if j, ok := r.scopeIndex(a); ok {
			dst = append(dst, r.scopes[j].bindings...)
		}
	}
	return dst
}

func (r *subject) scopeIndex(scope string) (int, bool) {
	return slices.BinarySearchFunc(r.scopes, scope, func(sb scopeBindings, s string) int { return strings.Compare(sb.scope, s) })
}

// withBinding returns r's scopes with b added (b must not be present).
func (r *subject) withBinding(b *binding) []scopeBindings {
	j, found := r.scopeIndex(b.Scope)
	if !found {
		return slices.Insert(slices.Clip(r.scopes), j, scopeBindings{scope: b.Scope, bindings: []*binding{b}})
	}
	list := r.scopes[j].bindings
	k, _ := slices.BinarySearchFunc(list, b.ID, func(x *binding, id string) int { return strings.Compare(x.ID, id) })
	out := slices.Clone(r.scopes)
	out[j].bindings = slices.Insert(slices.Clip(list), k, b)
	return out
}

// withoutBinding returns r's scopes without b.
func (r *subject) withoutBinding(b *binding) []scopeBindings {
	j, found := r.scopeIndex(b.Scope)
	if !found {
		return r.scopes
	}
	list := r.scopes[j].bindings
	k := slices.Index(list, b)
	switch {
	case k < 0:
		return r.scopes
	case len(list) == 1:
		return slices.Delete(slices.Clone(r.scopes), j, j+1)
	}
	out := slices.Clone(r.scopes)
	out[j].bindings = slices.Delete(slices.Clone(list), k, k+1)
	return out
}

// snapshot is an immutable view of the whole policy. Decisions load the
// current snapshot with one atomic pointer read and never lock.
type snapshot struct {
	rev  int64
	seed maphash.Seed

	bindings cowMap[skey, *binding] // by id
	subjects cowMap[skey, *subject] // principals and groups by name
	roles    cowMap[skey, *role]    // custom roles by name

	byScope *btree.BTreeG[*binding]   // (scope, id)
	members *btree.BTreeG[membership] // (group, member)

	principals, groups, memberships int
}

// subject returns the record of a principal or group, nil if none.
func (s *snapshot) subject(name string) *subject {
	r, _ := s.subjects.get(s.seed, skey(name))
	return r
}

// role resolves a role name, built-in or custom; nil if unknown.
func (s *snapshot) role(name string) *role {
	if r, ok := builtinRoles[name]; ok {
		return r
	}
	r, _ := s.roles.get(s.seed, skey(name))
	return r
}
