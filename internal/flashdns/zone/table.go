package zone

import (
	"maps"

	"github.com/miekg/dns"
)

// Table is an immutable set of zone snapshots, keyed by origin. With and
// Without return modified copies (copy on write), so a server can keep the
// current *Table in an atomic.Pointer and readers never lock. Copying the
// map costs O(zones) per change, which is cheap next to rebuilding a zone.
type Table struct {
	zones map[string]*Snapshot
}

// NewTable returns a table holding snaps (nil entries are skipped; a later
// snapshot with the same origin replaces an earlier one).
func NewTable(snaps ...*Snapshot) *Table {
	t := &Table{zones: make(map[string]*Snapshot, len(snaps))}
	for _, s := range snaps {
		if s != nil {
			t.zones[s.origin] = s
		}
	}
	return t
}

// With returns a copy of t with s added, replacing a zone with the same
// origin. t is unchanged.
func (t *Table) With(s *Snapshot) *Table { return t.Update([]*Snapshot{s}, nil) }

// Without returns a copy of t without the zone origin (any case, with or
// without the trailing dot). t is unchanged.
func (t *Table) Without(origin string) *Table { return t.Update(nil, []string{origin}) }

// Update returns a copy of t with the zones of remove (origins in any
// case, with or without the trailing dot) taken out and then put added,
// each replacing a zone with the same origin: one copy of the map for a
// whole batch of changes. t is unchanged; nil entries of put are skipped.
func (t *Table) Update(put []*Snapshot, remove []string) *Table {
	n := &Table{zones: make(map[string]*Snapshot, t.Len()+len(put))}
	if t != nil {
		maps.Copy(n.zones, t.zones)
	}
	for _, o := range remove {
		delete(n.zones, Canonical(o))
	}
	for _, s := range put {
		if s != nil {
			n.zones[s.origin] = s
		}
	}
	return n
}

// Find returns the closest enclosing zone of qname (any case), nil if none.
func (t *Table) Find(qname string) *Snapshot {
	if t == nil {
		return nil
	}
	return t.find(queryKey(qname))
}

// find is Find for a canonical name: one map lookup per label.
func (t *Table) find(name string) *Snapshot {
	if t == nil || len(t.zones) == 0 {
		return nil
	}
	off := 0
	for {
		if s := t.zones[name[off:]]; s != nil {
			return s
		}
		i, end := dns.NextLabel(name, off)
		if end {
			return t.zones["."]
		}
		off = i
	}
}

// Get returns the zone named origin (any case), nil if none.
func (t *Table) Get(origin string) *Snapshot {
	if t == nil {
		return nil
	}
	return t.zones[Canonical(origin)]
}

// Len returns the number of zones.
func (t *Table) Len() int {
	if t == nil {
		return 0
	}
	return len(t.zones)
}

// Snapshots returns the zones of the table in no particular order.
func (t *Table) Snapshots() []*Snapshot {
	if t == nil {
		return nil
	}
	out := make([]*Snapshot, 0, len(t.zones))
	for _, s := range t.zones {
		out = append(out, s)
	}
	return out
}

// Lookup answers qname/qtype from the closest enclosing zone and returns
// that zone (nil and REFUSED when no zone encloses qname). Unlike
// Snapshot.Lookup it follows CNAME chains into the other zones of the table
// and answers DS at a child zone's apex from the parent zone when the table
// holds both, which is what NSD does with several zones.
func (t *Table) Lookup(qname string, qtype uint16) (Result, *Snapshot) {
	name := queryKey(qname)
	s := t.find(name)
	if s == nil {
		return refused(), nil
	}
	return lookup(t, s, qname, name, qtype), s
}
