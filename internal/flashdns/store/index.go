package store

import (
	"cmp"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/google/btree"
	"github.com/miekg/dns"
	"go.etcd.io/etcd/api/v3/mvccpb"

	flashdnsv1 "github.com/photoncloud/photoncloud/api/flashdns/v1"
	"github.com/photoncloud/photoncloud/internal/flashdns/zone"
)

// genID names one generation of a zone's record sets.
type genID struct{ zone, gen string }

// zoneState is a zone as the index holds it. The index's writer (the watch
// goroutine) changes it under the index lock; everyone else copies what
// they need under the read lock.
type zoneState struct {
	id, parent string
	origin     string           // origin(id), made once: not one string per record set
	z          *flashdnsv1.Zone // as stored (no etag, no count); never modified
	gen        string
	mod        int64 // the zone key's mod revision: the etag
	// snap is the snapshot built from the zone's current content; nil
	// until one built. builtMod is the mod revision it was built at.
	snap     *zone.Snapshot
	builtMod int64
}

func (zs *zoneState) enabled() bool { return zs.z.Enabled == nil || zs.z.GetEnabled() }

// index is the replica's copy of everything under /flashdns/.
type index struct {
	mu  sync.RWMutex
	rev int64

	zones    map[string]*zoneState            // by zone id
	byParent map[string]map[string]*zoneState // project -> zone id -> zone
	// gens holds every generation of record sets: the current one of each
	// zone, and those a large write is staging or left behind.
	gens    map[genID]*btree.BTreeG[*rrset]
	journal map[string][]*journalEntry // by zone id, oldest (by revision) first
	markers map[genID]int64            // staged generations being written: marker create revision
	// bad counts stored values that could not be decoded.
	bad int
	// setChanges counts the record-set keys applied since the store last
	// released memory (Options.ReleaseMemoryAfter).
	setChanges int
	// pivot is ownerName's search key, reused: a new one per decoded set
	// would be garbage as large as the sets themselves.
	pivot rrset
}

func newIndex() *index {
	return &index{
		zones:    map[string]*zoneState{},
		byParent: map[string]map[string]*zoneState{},
		gens:     map[genID]*btree.BTreeG[*rrset]{},
		journal:  map[string][]*journalEntry{},
		markers:  map[genID]int64{},
	}
}

func newTree() *btree.BTreeG[*rrset] { return btree.NewG(16, lessSet) }

// sets returns the current generation of zone zs (nil if it has none).
func (ix *index) sets(zs *zoneState) *btree.BTreeG[*rrset] {
	return ix.gens[genID{zs.id, zs.gen}]
}

// apply applies one key's change; touched collects the zones whose served
// content may have changed. Zone keys must be applied before the other
// keys of the same batch, so that record sets decode with their zone's
// default TTL (apply fixes stale TTLs later anyway, in prepare).
func (ix *index) apply(lg *slog.Logger, kv *mvccpb.KeyValue, deleted bool, touched map[string]bool) {
	key := string(kv.Key)
	ix.rev = max(ix.rev, kv.ModRevision)
	switch {
	case strings.HasPrefix(key, zonesPrefix):
		id := key[len(zonesPrefix):]
		touched[id] = true
		if deleted {
			ix.removeZone(id)
			return
		}
		z, gen, err := decodeZone(kv.Value)
		if err == nil {
			err = checkStoredZone(id, z)
		}
		if err != nil {
			ix.bad++
			lg.Error("ignoring an undecodable zone", "key", key, "err", err)
			ix.removeZone(id)
			return
		}
		parent, _, _ := strings.Cut(z.GetName(), "/zones/")
		zs := ix.zones[id]
		if zs == nil || zs.parent != parent {
			ix.removeZone(id)
			zs = &zoneState{id: id, parent: parent, origin: origin(id)}
			ix.zones[id] = zs
			if ix.byParent[parent] == nil {
				ix.byParent[parent] = map[string]*zoneState{}
			}
			ix.byParent[parent][id] = zs
		}
		zs.z, zs.gen, zs.mod = z, gen, kv.ModRevision

	case strings.HasPrefix(key, rrsetsPrefix):
		id, gen, k, ok := parseSetKey(key)
		if !ok {
			lg.Warn("ignoring a malformed record-set key", "key", key)
			return
		}
		ix.setChanges++
		g := genID{id, gen}
		if zs := ix.zones[id]; zs != nil && zs.gen == gen {
			touched[id] = true
		}
		t := ix.gens[g]
		if deleted {
			if t != nil {
				t.Delete(&rrset{setKey: k})
				if t.Len() == 0 {
					delete(ix.gens, g)
				}
			}
			return
		}
		def, orig := uint32(3600), ""
		if zs := ix.zones[id]; zs != nil {
			def, orig = zs.z.GetDefaultTtl(), zs.origin
		} else {
			orig = origin(id)
		}
		k.name = ix.ownerName(t, k.name)
		set, err := decodeSet(orig, k, kv.Value, kv.ModRevision, def)
		if err != nil {
			ix.bad++
			lg.Error("ignoring an undecodable record set", "key", key, "err", err)
			if t != nil {
				t.Delete(&rrset{setKey: k})
			}
			return
		}
		if t == nil {
			t = newTree()
			ix.gens[g] = t
		}
		t.ReplaceOrInsert(set)

	case strings.HasPrefix(key, journalPrefix):
		rest := key[len(journalPrefix):]
		i := strings.LastIndexByte(rest, '/')
		if i <= 0 {
			return
		}
		id := rest[:i]
		touched[id] = true
		j := slices.DeleteFunc(ix.journal[id], func(e *journalEntry) bool { return e.key == key })
		if !deleted {
			e, err := decodeJournal(key, kv.Value, kv.ModRevision)
			if err != nil {
				ix.bad++
				lg.Error("ignoring an undecodable journal entry", "key", key, "err", err)
			} else {
				// Entries arrive in revision order, except on a load,
				// which sorts afterwards.
				j = append(j, e)
			}
		}
		if len(j) == 0 {
			delete(ix.journal, id)
		} else {
			ix.journal[id] = j
		}

	case strings.HasPrefix(key, importsPrefix):
		id, gen, ok := parseIDGen(key[len(importsPrefix):])
		if !ok {
			return
		}
		if deleted {
			delete(ix.markers, genID{id, gen})
		} else {
			ix.markers[genID{id, gen}] = kv.CreateRevision
		}
	}
}

// ownerName returns the string the sets of tree t with owner name already
// use, or a copy of name. The index then holds one string per owner name
// (most names have two or three sets), and not the whole key each name was
// cut from.
func (ix *index) ownerName(t *btree.BTreeG[*rrset], name string) string {
	if t != nil {
		found := ""
		ix.pivot.name = name
		t.AscendGreaterOrEqual(&ix.pivot, func(s *rrset) bool {
			if s.name == name {
				found = s.name
			}
			return false
		})
		ix.pivot.name = ""
		if found != "" {
			return found
		}
	}
	return strings.Clone(name)
}

func (ix *index) removeZone(id string) {
	zs := ix.zones[id]
	if zs == nil {
		return
	}
	delete(ix.zones, id)
	if m := ix.byParent[zs.parent]; m != nil {
		delete(m, id)
		if len(m) == 0 {
			delete(ix.byParent, zs.parent)
		}
	}
}

// sortJournals orders every zone's journal by revision (after a load,
// which reads keys in key order).
func (ix *index) sortJournals() {
	for _, j := range ix.journal {
		slices.SortFunc(j, func(a, b *journalEntry) int { return cmp.Compare(a.mod, b.mod) })
	}
}

// checkStoredZone checks what the index relies on in a stored zone.
func checkStoredZone(id string, z *flashdnsv1.Zone) error {
	parent, zid, err := ParseZoneName(z.GetName())
	if err != nil {
		return err
	}
	if zid != id || parent == "" {
		return invalidf("zone %s is stored under %s", z.GetName(), id)
	}
	if z.GetDefaultTtl() == 0 {
		return invalidf("zone %s has no default TTL", id)
	}
	return nil
}

// buildJob is the input of one snapshot build, assembled under the index
// lock and built outside it.
type buildJob struct {
	id     string
	zs     *zoneState // nil: the zone is gone
	mod    int64
	data   zone.Data
	snap   *zone.Snapshot
	err    error
	reused bool
}

// prepare assembles the build input of each touched zone. It runs under
// the write lock: it also gives the record sets stored with TTL 0 the
// zone's current default TTL (replacing them in the tree: sets are
// immutable).
func (ix *index) prepare(touched map[string]bool) []*buildJob {
	jobs := make([]*buildJob, 0, len(touched))
	for id := range touched {
		zs := ix.zones[id]
		if zs == nil {
			jobs = append(jobs, &buildJob{id: id})
			continue
		}
		j := &buildJob{id: id, zs: zs, mod: zs.mod}
		if zs.snap != nil && zs.builtMod == zs.mod {
			// Only a reload carries snapshots over: every change of a
			// zone's content rewrites its zone key, so an unchanged mod
			// revision means unchanged content.
			j.snap, j.reused = zs.snap, true
		} else {
			j.data = ix.data(zs)
		}
		jobs = append(jobs, j)
	}
	return jobs
}

// data assembles the zone.Data of zs from the index.
func (ix *index) data(zs *zoneState) zone.Data {
	def := zs.z.GetDefaultTtl()
	d := zone.Data{Origin: origin(zs.id), SOA: soaOf(zs.id, zs.z)}
	if t := ix.sets(zs); t != nil {
		var stale []*rrset
		t.Ascend(func(s *rrset) bool {
			if s.ttl == 0 && s.effTTL() != def {
				stale = append(stale, s)
			}
			return true
		})
		for _, s := range stale {
			t.ReplaceOrInsert(s.withTTL(def))
		}
		d.Sets = make([]zone.RRSet, 0, t.Len())
		t.Ascend(func(s *rrset) bool {
			d.Sets = append(d.Sets, s.zoneSet())
			return true
		})
	}
	d.Reverse = reverseOf(zs.z)
	d.Journal = chain(ix.journal[zs.id], zs.z.GetSerial())
	return d
}

// chain returns the longest run of journal entries that leads, serial by
// serial, to serial (oldest first): the differences IXFR can use.
func chain(j []*journalEntry, serial uint32) []zone.Diff {
	var out []zone.Diff
	want := serial
	for i := len(j) - 1; i >= 0; i-- {
		if j[i].diff.ToSerial != want {
			break
		}
		out = append(out, j[i].diff)
		want = j[i].diff.FromSerial
	}
	slices.Reverse(out)
	return out
}

// soaOf builds a zone's SOA record from its stored fields.
func soaOf(id string, z *flashdnsv1.Zone) *dns.SOA {
	return &dns.SOA{
		Hdr:     dns.RR_Header{Name: origin(id), Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: z.GetDefaultTtl()},
		Ns:      z.GetPrimaryNs(),
		Mbox:    z.GetAdmin(),
		Serial:  z.GetSerial(),
		Refresh: z.GetRefresh(),
		Retry:   z.GetRetry(),
		Expire:  z.GetExpire(),
		Minttl:  z.GetNegativeTtl(),
	}
}

// reverseOf returns the PTR synthesis of a reverse zone with a pattern.
func reverseOf(z *flashdnsv1.Zone) *zone.Reverse {
	r := z.GetReverse()
	if r == nil || r.GetPtrPattern() == "" {
		return nil
	}
	p, err := netip.ParsePrefix(r.GetCidr())
	if err != nil {
		return nil
	}
	return &zone.Reverse{Prefix: p, Pattern: r.GetPtrPattern()}
}

// view is a consistent copy of one zone for a writer: the tree is a clone
// the writer may change freely.
type view struct {
	id, parent string
	z          *flashdnsv1.Zone
	gen        string
	mod        int64
	sets       *btree.BTreeG[*rrset]
	journal    []*journalEntry
	rev        int64 // the index revision the view was taken at
}

func (v *view) origin() string { return origin(v.id) }

// view returns a writer's copy of zone id, nil if the index has no such
// zone. Cloning a tree changes it, hence the write lock (held briefly).
func (ix *index) view(id string) *view {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	zs := ix.zones[id]
	if zs == nil {
		return nil
	}
	v := &view{id: id, parent: zs.parent, z: zs.z, gen: zs.gen, mod: zs.mod, rev: ix.rev,
		journal: slices.Clone(ix.journal[id])}
	if t := ix.sets(zs); t != nil {
		v.sets = t.Clone()
	} else {
		v.sets = newTree()
	}
	return v
}
