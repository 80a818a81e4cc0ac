package zone

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

func TestTable(t *testing.T) {
	ex := loadZone(t, "example.com.")
	child := loadZone(t, "child.example.com.")
	z2 := loadZone(t, "zone2.test.")

	var empty *Table
	if empty.Find("example.com.") != nil || empty.Len() != 0 || empty.Get("example.com.") != nil {
		t.Fatal("nil table must be empty")
	}
	if r, s := empty.Lookup("example.com.", dns.TypeA); r.Rcode != dns.RcodeRefused || s != nil {
		t.Fatal("nil table must refuse")
	}

	t1 := NewTable(ex, nil)
	t2 := t1.With(child).With(z2)
	if t1.Len() != 1 || t2.Len() != 3 {
		t.Fatalf("copy on write broken: %d %d", t1.Len(), t2.Len())
	}
	finds := map[string]*Snapshot{
		"example.com.":              ex,
		"WWW.EXAMPLE.COM":           ex,
		"a.b.c.example.com.":        ex,
		"child.example.com.":        child,
		"x.y.child.example.com.":    child,
		"zone2.test.":               z2,
		"com.":                      nil,
		"badexample.com.":           nil,
		"xchild.example.com.":       ex,
		"example.com.example.net.":  nil,
		"child.example.com\\.evil.": nil,
	}
	for q, want := range finds {
		if got := t2.Find(q); got != want {
			t.Errorf("Find(%q) = %v, want %v", q, origin(got), origin(want))
		}
	}
	if t1.Find("child.example.com.") != ex {
		t.Error("old table sees the new zone")
	}
	t3 := t2.Without("CHILD.example.com")
	if t3.Len() != 2 || t3.Find("host.child.example.com.") != ex || t2.Find("host.child.example.com.") != child {
		t.Error("Without")
	}
	if t3.Get("Example.Com") != ex || t3.Get("child.example.com.") != nil {
		t.Error("Get")
	}
	// Replacing a zone keeps the count.
	ex2 := loadZone(t, "example.com.")
	if t4 := t3.With(ex2); t4.Len() != 2 || t4.Get("example.com.") != ex2 {
		t.Error("With replace")
	}
	if len(t2.Snapshots()) != 3 {
		t.Error("Snapshots")
	}
	if _, s := t2.Lookup("host.child.example.com.", dns.TypeA); s != child {
		t.Error("Lookup zone")
	}
}

func origin(s *Snapshot) string {
	if s == nil {
		return "<nil>"
	}
	return s.Origin()
}

func TestAXFR(t *testing.T) {
	s := loadZone(t, "example.com.")
	rrs := s.AXFR()
	if len(rrs) != s.Len()+1 {
		t.Fatalf("AXFR has %d records, zone %d", len(rrs), s.Len())
	}
	if rrs[0] != dns.RR(s.SOA()) || rrs[len(rrs)-1] != dns.RR(s.SOA()) {
		t.Fatal("AXFR must start and end with the SOA")
	}
	for _, rr := range rrs[1 : len(rrs)-1] {
		if rr.Header().Rrtype == dns.TypeSOA {
			t.Fatal("SOA inside the transfer")
		}
	}
	// Canonical order: apex first, then *.example.com., _dmarc, ...
	if rrs[1].Header().Name != "example.com." {
		t.Fatalf("apex not first: %v", rrs[1])
	}
	prev := ""
	for _, rr := range rrs[1 : len(rrs)-1] {
		k := orderKey(rr.Header().Name)
		if k < prev {
			t.Fatalf("not in canonical order at %v", rr)
		}
		prev = k
	}
	if s.Serial() != 2024010101 || s.Origin() != "example.com." {
		t.Fatal("Serial/Origin")
	}
}

func TestIXFR(t *testing.T) {
	d := baseData("example.com.")
	a := func(ip string) dns.RR { return mustRR(t, "www.example.com. 60 IN A "+ip) }
	d.SOA.Serial = 4
	d.Sets = append(d.Sets, set(t, 60, "www.example.com. A 192.0.2.3"))
	d.Journal = []Diff{
		{FromSerial: 90, ToSerial: 91, Added: []dns.RR{a("10.0.0.1")}}, // not connected: dropped
		{FromSerial: 1, ToSerial: 2, Added: []dns.RR{a("192.0.2.1")}},
		{FromSerial: 2, ToSerial: 3, Deleted: []dns.RR{a("192.0.2.1")}, Added: []dns.RR{a("192.0.2.2")}},
		{FromSerial: 3, ToSerial: 4, Deleted: []dns.RR{a("192.0.2.2")}, Added: []dns.RR{a("192.0.2.3")}},
	}
	s, err := Build(d)
	if err != nil {
		t.Fatal(err)
	}
	serials := func(rrs []dns.RR) []string {
		var out []string
		for _, rr := range rrs {
			if soa, ok := rr.(*dns.SOA); ok {
				out = append(out, "SOA"+strconv.FormatUint(uint64(soa.Serial), 10))
			} else {
				out = append(out, rr.(*dns.A).A.String())
			}
		}
		return out
	}
	got, ok := s.IXFR(2)
	want := []string{"SOA4", "SOA2", "192.0.2.1", "SOA3", "192.0.2.2", "SOA3", "192.0.2.2", "SOA4", "192.0.2.3", "SOA4"}
	if !ok || !slices.Equal(serials(got), want) {
		t.Fatalf("IXFR(2) = %v %v, want %v", serials(got), ok, want)
	}
	got, ok = s.IXFR(1)
	if !ok || len(got) != 2+3*2+5 {
		t.Fatalf("IXFR(1) = %v", serials(got))
	}
	if got, ok := s.IXFR(4); !ok || !slices.Equal(serials(got), []string{"SOA4"}) {
		t.Fatalf("IXFR(current) = %v %v", serials(got), ok)
	}
	for _, from := range []uint32{0, 5, 90} {
		if _, ok := s.IXFR(from); ok {
			t.Fatalf("IXFR(%d) must fall back to AXFR", from)
		}
	}
	// A journal that does not end at the current serial is unusable.
	d.SOA.Serial = 7
	s, err = Build(d)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.IXFR(3); ok {
		t.Fatal("stale journal used")
	}
	// Build copies the journal: changing d afterwards does not matter.
	d.SOA.Serial = 4
	s, _ = Build(d)
	d.Journal[3].Added[0].(*dns.A).A[3] = 99
	got, _ = s.IXFR(3)
	if got[4].(*dns.A).A.String() != "192.0.2.3" {
		t.Fatal("journal aliased")
	}
}

// TestBuildCopies: changing the Data after Build does not reach the
// snapshot.
func TestBuildCopies(t *testing.T) {
	d := baseData("example.com.")
	d.Sets = append(d.Sets, set(t, 60, "www.example.com. A 192.0.2.1"), set(t, 60, "mx.example.com. MX 10 Mail.Example.COM."))
	s, err := Build(d)
	if err != nil {
		t.Fatal(err)
	}
	d.Sets[1].RRs[0].(*dns.A).A[3] = 99
	d.Sets[1].RRs[0].Header().Name = "evil.example.com."
	d.SOA.Serial = 42
	r := s.Lookup("www.example.com.", dns.TypeA)
	if len(r.Answer) != 1 || r.Answer[0].String() != "www.example.com.\t60\tIN\tA\t192.0.2.1" || s.Serial() != 1 {
		t.Fatalf("snapshot changed: %v serial %d", r.Answer, s.Serial())
	}
	// Targets are stored canonical.
	if mx := s.Lookup("mx.example.com.", dns.TypeMX).Answer[0].(*dns.MX); mx.Mx != "mail.example.com." {
		t.Fatalf("target not canonical: %v", mx)
	}
}

// TestBuildShared: BuildShared answers every query exactly as Build does,
// and keeps the records that are in served form instead of copying them.
func TestBuildShared(t *testing.T) {
	toServed := func(d Data) {
		// In served form, as the store keeps its records.
		for _, set := range d.Sets {
			for _, rr := range set.RRs {
				if a, ok := rr.(*dns.A); ok {
					a.A = a.A.To4()
				}
			}
		}
	}
	var copied, shared []*Snapshot
	for _, o := range testOrigins {
		f, err := os.ReadFile(filepath.Join("testdata", strings.TrimSuffix(o, ".")+".zone"))
		if err != nil {
			t.Fatal(err)
		}
		d, err := ParseZoneFile(bytes.NewReader(f), o, 0)
		if err != nil {
			t.Fatal(err)
		}
		c, err := Build(d)
		if err != nil {
			t.Fatal(err)
		}
		toServed(d)
		s, err := BuildShared(d)
		if err != nil {
			t.Fatal(err)
		}
		copied, shared = append(copied, c), append(shared, s)
		// Records in served form are the Data's own; others are copies.
		for _, set := range d.Sets {
			for _, rr := range set.RRs {
				in := slices.ContainsFunc(s.recs, func(x dns.RR) bool { return x == rr })
				if want := served(rr, Canonical(set.Name), set.TTL); in != want {
					t.Errorf("%v: shared %v, in served form %v", rr, in, want)
				}
			}
		}
	}
	ct, st := NewTable(copied...), NewTable(shared...)
	for _, q := range corpus(ct) {
		a, _ := ct.Lookup(q.name, q.qtype)
		b, _ := st.Lookup(q.name, q.qtype)
		if fmt.Sprint(a) != fmt.Sprint(b) {
			t.Errorf("%s %s: Build %v, BuildShared %v", q.name, dns.TypeToString[q.qtype], a, b)
		}
	}
	for i := range copied {
		if fmt.Sprint(copied[i].AXFR()) != fmt.Sprint(shared[i].AXFR()) {
			t.Errorf("%s: AXFR differs", copied[i].Origin())
		}
	}
}

// TestConcurrentUse runs lookups, transfers and table updates in parallel;
// with -race it checks that the query path shares no mutable state.
func TestConcurrentUse(t *testing.T) {
	tab := fuzzTable(t)
	qs := corpus(tab)
	done := make(chan struct{})
	for w := range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := w; i < len(qs); i += 4 {
				tab.Lookup(qs[i].name, qs[i].qtype)
				if i%97 == 0 {
					for _, s := range tab.Snapshots() {
						s.AXFR()
					}
					_ = tab.Without("zone2.test.").With(tab.Get("zone2.test."))
				}
			}
		}()
	}
	for range 4 {
		<-done
	}
}

// TestTableUpdate applies a batch of additions and removals in one copy.
func TestTableUpdate(t *testing.T) {
	ex := loadZone(t, "example.com.")
	child := loadZone(t, "child.example.com.")
	z2 := loadZone(t, "zone2.test.")
	t1 := NewTable(ex, z2)
	t2 := t1.Update([]*Snapshot{child, nil}, []string{"ZONE2.test"})
	if t1.Len() != 2 || t1.Get("zone2.test.") != z2 {
		t.Fatal("Update changed the table it was called on")
	}
	if t2.Len() != 2 || t2.Get("example.com.") != ex || t2.Get("child.example.com.") != child || t2.Get("zone2.test.") != nil {
		t.Fatalf("after Update: %d zones", t2.Len())
	}
	var empty *Table
	if e := empty.Update([]*Snapshot{ex}, []string{"zone2.test."}); e.Len() != 1 || e.Get("example.com.") != ex {
		t.Fatal("Update of a nil table")
	}
}
