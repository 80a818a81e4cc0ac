package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	clientv3 "go.etcd.io/etcd/client/v3"

	flashdnsv1 "github.com/photoncloud/photoncloud/api/flashdns/v1"
	"github.com/photoncloud/photoncloud/internal/flashdns/zone"
)

// TestReplicasSeeEachOther: two stores on one Chainfire; a change made
// through either is served by the other within a second.
func TestReplicasSeeEachOther(t *testing.T) {
	addr := startChainfire(t)
	a := openStore(t, addr, nil)
	b := openStore(t, addr, nil)
	var swaps sync.Map
	b.OnSwap(func(old, new *zone.Snapshot) {
		if new != nil {
			swaps.Store(new.Serial(), old)
		}
	})

	z := createZone(t, a, web, "example.com")
	wait := func(from *Store, to *Store) time.Duration {
		t.Helper()
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := to.WaitRevision(ctx, from.Revision()); err != nil {
			t.Fatal(err)
		}
		return time.Since(start)
	}
	wait(a, b)
	if got := b.Table().Get("example.com."); got == nil || got.Serial() != z.GetSerial() {
		t.Fatalf("b serves %v", got)
	}
	if _, ok := swaps.Load(z.GetSerial()); !ok {
		t.Fatal("b's OnSwap did not see the new zone")
	}
	z2 := change(t, b, zoneEx, create(rs("www", "A", 0, "192.0.2.1")))
	d := wait(b, a)
	if r := a.Table().Get("example.com.").Lookup("www.example.com.", dns.TypeA); len(r.Answer) != 1 {
		t.Fatalf("a does not answer b's change: %+v", r)
	}
	if got := must[*flashdnsv1.Zone](t)(a.GetZone(ctxT(t), zoneEx)); got.GetEtag() != z2.GetEtag() {
		t.Fatalf("a's etag %s, b's %s", got.GetEtag(), z2.GetEtag())
	}
	t.Logf("b's change applied on a in %v", d)
	// A write through a with b's etag works: etags are Chainfire
	// revisions, the same on every replica.
	must[*flashdnsv1.Zone](t)(a.ChangeRecordSets(ctxT(t), zoneEx, []*flashdnsv1.Change{upsert(rs("www", "A", 0, "192.0.2.2"))}, z2.GetEtag()))
	// WaitRevision also returns for a revision outside /flashdns/.
	resp, err := a.cli.Put(ctxT(t), "/elsewhere", "x")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := b.WaitRevision(ctx, resp.Header.Revision); err != nil {
		t.Fatal(err)
	}
	if err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestConcurrentChanges: writers on two replicas race on one zone. Each
// batch does a read-modify-write of a shared counter (exact DELETE of the
// value it read, CREATE of the next) together with a CREATE of a set of
// its own: a batch applies whole or not at all, and no update is lost.
func TestConcurrentChanges(t *testing.T) {
	addr := startChainfire(t)
	stores := []*Store{openStore(t, addr, nil), openStore(t, addr, nil)}
	createZone(t, stores[0], web, "example.com")
	change(t, stores[0], zoneEx, create(rs("counter", "TXT", 60, "0")))
	if err := stores[1].Sync(ctxT(t)); err != nil {
		t.Fatal(err)
	}

	const writers, perWriter = 6, 8
	ctx := ctxT(t)
	var wg sync.WaitGroup
	var mu sync.Mutex
	failed, succeeded := 0, 0
	for w := range writers {
		s := stores[w%2]
		wg.Go(func() {
			for i := 0; i < perWriter; {
				cur := must[*flashdnsv1.RecordSet](t)(s.GetRecordSet(ctx, zoneEx, "counter", "TXT"))
				n, _ := strconv.Atoi(strings.Trim(cur.GetRecords()[0], `"`))
				_, err := s.ChangeRecordSets(ctx, zoneEx, []*flashdnsv1.Change{
					create(rs(fmt.Sprintf("w%d-%d", w, i), "A", 0, "192.0.2.1")),
					del(rs("counter", "TXT", 60, cur.GetRecords()[0])),
					create(rs("counter", "TXT", 60, strconv.Itoa(n+1))),
				}, "")
				mu.Lock()
				switch {
				case err == nil:
					succeeded++
					i++
				case errors.Is(err, ErrFailedPrecondition), errors.Is(err, ErrAlreadyExists):
					// Another writer moved the counter (or this set
					// exists because... it must not).
					if errors.Is(err, ErrAlreadyExists) {
						t.Errorf("writer %d: %v", w, err)
					}
					failed++
				default:
					t.Errorf("writer %d: %v", w, err)
					i = perWriter
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, s := range stores {
		if err := s.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		cur := must[*flashdnsv1.RecordSet](t)(s.GetRecordSet(ctx, zoneEx, "counter", "TXT"))
		if cur.GetRecords()[0] != fmt.Sprintf(`"%d"`, writers*perWriter) {
			t.Fatalf("counter %v after %d batches", cur.GetRecords(), writers*perWriter)
		}
		sets, _ := must2[[]*flashdnsv1.RecordSet, string](t)(s.ListRecordSets(ctx, zoneEx, RecordListOptions{NamePrefix: "w", PageSize: 1000}))
		if len(sets) != writers*perWriter {
			t.Fatalf("%d per-batch sets, want %d", len(sets), writers*perWriter)
		}
	}
	t.Logf("%d batches applied, %d refused because the counter moved", succeeded, failed)
	if a, b := stores[0].Table().Get("example.com."), stores[1].Table().Get("example.com."); a.Serial() != b.Serial() || a.Len() != b.Len() {
		t.Fatalf("replicas differ: serial %d/%d, %d/%d records", a.Serial(), b.Serial(), a.Len(), b.Len())
	}
}

// bigZone returns a zone file of example.com with n A records.
func bigZone(n int, addr string) string {
	var b strings.Builder
	b.WriteString("$ORIGIN example.com.\n$TTL 300\n")
	b.WriteString("@ IN SOA ns1.example.net. hostmaster.example.com. 2026010100 3600 600 1209600 300\n")
	b.WriteString("@ IN NS ns1.example.net.\n@ IN NS ns2.example.net.\n")
	for i := range n {
		fmt.Fprintf(&b, "host%d IN A %s\n", i, addr)
	}
	return b.String()
}

func TestImportLargeZone(t *testing.T) {
	if testing.Short() {
		t.Skip("imports 20000 records")
	}
	addr := startChainfire(t)
	a := openStore(t, addr, nil)
	b := openStore(t, addr, nil)
	ctx := ctxT(t)
	const n = 20000

	start := time.Now()
	z := must[*flashdnsv1.Zone](t)(a.ImportZone(ctx, web, ImportRequest{ZoneFile: bigZone(n, "192.0.2.1")}))
	t.Logf("import of %d records: %v", n, time.Since(start))
	if z.GetRecordSetCount() != n+2 || z.GetSerial() != 2026010100 || z.GetDefaultTtl() != 300 {
		t.Fatalf("imported zone: %v", z)
	}
	if got := countKeys(t, a.cli, zoneSetsPrefix("example.com")); got != n+1 {
		t.Fatalf("%d record-set keys, want %d", got, n+1)
	}
	if countKeys(t, a.cli, importsPrefix) != 0 {
		t.Fatal("import marker left behind")
	}
	if err := b.WaitRevision(ctx, a.Revision()); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*Store{a, b} {
		snap := s.Table().Get("example.com.")
		if snap == nil || snap.Len() != n+3 {
			t.Fatalf("snapshot: %v", snap)
		}
		if r := snap.Lookup("host19999.example.com.", dns.TypeA); len(r.Answer) != 1 {
			t.Fatalf("lookup: %+v", r)
		}
	}

	// Replace everything; b must see old or new, never a mix: hold the
	// switch and look at b meanwhile.
	seen := make(chan int, 1)
	a.opts.testBeforeFlip = func() {
		if err := b.Sync(ctx); err != nil {
			t.Error(err)
		}
		snap := b.Table().Get("example.com.")
		r := snap.Lookup("host7.example.com.", dns.TypeA)
		seen <- len(r.Answer)
		if r.Answer[0].(*dns.A).A.String() != "192.0.2.1" {
			t.Errorf("b answers %v before the switch", r.Answer)
		}
		if got := countKeys(t, a.cli, rrsetsPrefix); got != 2*(n+1) {
			t.Errorf("%d record-set keys while staging, want both generations (%d)", got, 2*(n+1))
		}
	}
	start = time.Now()
	z2 := must[*flashdnsv1.Zone](t)(a.ImportZone(ctx, web, ImportRequest{ZoneFile: bigZone(n, "192.0.2.2"), Replace: true, Etag: z.GetEtag()}))
	t.Logf("replacing import: %v", time.Since(start))
	a.opts.testBeforeFlip = nil
	if len(seen) != 1 {
		t.Fatal("the replacement was not staged")
	}
	if !serialLess(z.GetSerial(), z2.GetSerial()) {
		t.Fatalf("serial %d after %d", z2.GetSerial(), z.GetSerial())
	}
	if got := countKeys(t, a.cli, rrsetsPrefix); got != n+1 {
		t.Fatalf("%d record-set keys after the switch, want %d", got, n+1)
	}
	if err := b.WaitRevision(ctx, a.Revision()); err != nil {
		t.Fatal(err)
	}
	if r := b.Table().Get("example.com.").Lookup("host7.example.com.", dns.TypeA); r.Answer[0].(*dns.A).A.String() != "192.0.2.2" {
		t.Fatalf("b answers %v after the switch", r.Answer)
	}
	// The difference is too large for the journal: IXFR falls back.
	if _, ok := b.Table().Get("example.com.").IXFR(z.GetSerial()); ok {
		t.Fatal("IXFR across a huge import")
	}

	// The export is one consistent version.
	file, serial := must2[string, uint32](t)(b.ExportZone(ctx, zoneEx))
	if serial != z2.GetSerial() || strings.Count(file, "192.0.2.2") != n {
		t.Fatalf("export: serial %d, %d records", serial, strings.Count(file, "192.0.2.2"))
	}
}

// TestLargeBatch: a batch of more changes than fit in one transaction is
// staged and still all or nothing.
func TestLargeBatch(t *testing.T) {
	addr := startChainfire(t)
	s := openStore(t, addr, nil)
	ctx := ctxT(t)
	z := createZone(t, s, web, "example.com")
	var cs []*flashdnsv1.Change
	for i := range MaxChanges {
		cs = append(cs, create(rs(fmt.Sprintf("h%d", i), "A", 0, "192.0.2.1")))
	}
	z2 := change(t, s, zoneEx, cs...)
	if z2.GetRecordSetCount() != MaxChanges+2 {
		t.Fatalf("%d sets", z2.GetRecordSetCount())
	}
	if _, ok := s.Table().Get("example.com.").IXFR(z.GetSerial()); !ok {
		t.Fatal("no journal entry for a staged batch")
	}
	// The last change fails: nothing of the batch applies.
	cs = cs[:0]
	for i := range MaxChanges {
		cs = append(cs, upsert(rs(fmt.Sprintf("h%d", i), "A", 0, "192.0.2.2")))
	}
	cs[len(cs)-1] = create(rs("h0", "A", 0, "192.0.2.3"))
	_, err := s.ChangeRecordSets(ctx, zoneEx, cs, "")
	wantErr(t, err, ErrAlreadyExists)
	if got := must[*flashdnsv1.Zone](t)(s.GetZone(ctx, zoneEx)); got.GetEtag() != z2.GetEtag() {
		t.Fatal("a failed batch changed the zone")
	}
	if v := s.m.staged; v == nil {
		t.Fatal("no metric")
	}
}

// TestStagedWriteRaces: another replica changes the zone while a large
// write is staged; the switch notices, the writer starts over on the new
// state, and the abandoned generation is deleted.
func TestStagedWriteRaces(t *testing.T) {
	addr := startChainfire(t)
	a := openStore(t, addr, func(o *Options) { o.MaxTxnOps = 16 })
	b := openStore(t, addr, nil)
	ctx := ctxT(t)
	createZone(t, a, web, "example.com")
	raced := false
	a.opts.testBeforeFlip = func() {
		if raced {
			return
		}
		raced = true
		if err := b.Sync(ctx); err != nil {
			t.Error(err)
		}
		if _, err := b.ChangeRecordSets(ctx, zoneEx, []*flashdnsv1.Change{create(rs("racer", "A", 0, "192.0.2.9"))}, ""); err != nil {
			t.Error(err)
		}
	}
	var cs []*flashdnsv1.Change
	for i := range 40 {
		cs = append(cs, create(rs(fmt.Sprintf("h%d", i), "A", 0, "192.0.2.1")))
	}
	z := change(t, a, zoneEx, cs...)
	if !raced || z.GetRecordSetCount() != 40+3 {
		t.Fatalf("raced %v, %d sets", raced, z.GetRecordSetCount())
	}
	if got := countKeys(t, a.cli, rrsetsPrefix); got != 40+2 {
		t.Fatalf("%d record-set keys, want %d (abandoned generation left?)", got, 40+2)
	}
	if countKeys(t, a.cli, importsPrefix) != 0 {
		t.Fatal("marker left behind")
	}
}

// TestSweep: a generation left by a dead writer is deleted once its
// marker is gone, never while it exists, never the current one.
func TestSweep(t *testing.T) {
	addr := startChainfire(t)
	s := openStore(t, addr, nil)
	ctx := ctxT(t)
	createZone(t, s, web, "example.com")
	cli := s.cli
	put := func(id, gen, name string) {
		b, _ := encodeSet(&rrset{setKey: setKey{name, dns.TypeA}, rrs: []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET}, A: []byte{192, 0, 2, 1}}}})
		if _, err := cli.Put(ctx, rrsetKey(id, gen, setKey{name, dns.TypeA}), string(b)); err != nil {
			t.Fatal(err)
		}
	}
	put("example.com", "dead", "x.example.com.")    // abandoned, zone exists
	put("gone.com", "dead", "x.gone.com.")          // abandoned, no zone
	put("example.com", "staging", "y.example.com.") // guarded by a marker
	lease, err := cli.Grant(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, markerKey("example.com", "staging"), web, clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if n := s.sweep(ctx); n != 2 {
		t.Fatalf("swept %d generations, want 2", n)
	}
	if got := countKeys(t, cli, rrsetsPrefix); got != 2 { // apex NS + staging
		t.Fatalf("%d record-set keys left", got)
	}
	if _, err := cli.Revoke(ctx, lease.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if n := s.sweep(ctx); n != 1 {
		t.Fatalf("swept %d generations after the lease ended, want 1", n)
	}
	if got := countKeys(t, cli, rrsetsPrefix); got != 1 {
		t.Fatalf("%d record-set keys left", got)
	}
	if r := s.Table().Get("example.com.").Lookup("example.com.", dns.TypeNS); len(r.Answer) != 2 {
		t.Fatal("the current generation was swept")
	}
}

// TestReloadAfterCompaction: a store whose watch fell behind a compaction
// reloads and ends up with the same zones as one that did not.
func TestReloadAfterCompaction(t *testing.T) {
	addr := startChainfire(t)
	hold := make(chan struct{})
	var once sync.Once
	held := false
	a := openStore(t, addr, func(o *Options) {
		o.testBeforeWatch = func() {
			if held {
				<-hold
			}
		}
	})
	b := openStore(t, addr, nil)
	ctx := ctxT(t)
	createZone(t, b, web, "example.com")
	createZone(t, b, web, "gone.com")
	if err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	var swapped sync.Map
	a.OnSwap(func(old, new *zone.Snapshot) {
		if old != nil && new == nil {
			swapped.Store(old.Origin(), true)
		}
	})
	held = true
	a.kickWatch()
	change(t, b, zoneEx, create(rs("www", "A", 0, "192.0.2.1")))
	if err := b.DeleteZone(ctx, web+"/zones/gone.com", "", false); err != nil {
		t.Fatal(err)
	}
	resp, err := b.cli.Get(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.cli.Compact(ctx, resp.Header.Revision); err != nil {
		t.Fatal(err)
	}
	once.Do(func() { close(hold) })
	if err := a.WaitRevision(ctx, resp.Header.Revision); err != nil {
		t.Fatal(err)
	}
	if r := a.Table().Get("example.com.").Lookup("www.example.com.", dns.TypeA); len(r.Answer) != 1 {
		t.Fatalf("after reload: %+v", r)
	}
	if a.Table().Get("gone.com.") != nil {
		t.Fatal("deleted zone still served after reload")
	}
	if _, ok := swapped.Load("gone.com."); !ok {
		t.Fatal("OnSwap not told about the zone the reload dropped")
	}
}

// TestStagedWriteKeepsLeaseAlive: a staged write slower than its lease
// keeps the marker alive; one whose lease runs out fails cleanly.
func TestStagedWriteKeepsLeaseAlive(t *testing.T) {
	addr := startChainfire(t)
	s := openStore(t, addr, func(o *Options) { o.MaxTxnOps = 16 })
	s.opts.ImportLeaseTTL = 2 * time.Second // below what Validate allows, to keep the test short
	ctx := ctxT(t)
	createZone(t, s, web, "example.com")
	var cs []*flashdnsv1.Change
	for i := range 60 {
		cs = append(cs, create(rs(fmt.Sprintf("h%d", i), "A", 0, "192.0.2.1")))
	}
	// Four chunks of 0.8s: longer than the 2s lease in all.
	s.opts.testBeforeChunk = func() { time.Sleep(800 * time.Millisecond) }
	z := change(t, s, zoneEx, cs...)
	if z.GetRecordSetCount() != 62 {
		t.Fatalf("%d sets", z.GetRecordSetCount())
	}

	// A writer stalled past its lease (the marker expires): the write
	// fails, nothing changes, nothing is left behind.
	first := true
	s.opts.testBeforeChunk = func() {
		if first {
			first = false
			time.Sleep(4 * time.Second)
		}
	}
	for i := range cs {
		cs[i] = upsert(rs(fmt.Sprintf("h%d", i), "A", 0, "192.0.2.2"))
	}
	_, err := s.ChangeRecordSets(ctx, zoneEx, cs, "")
	s.opts.testBeforeChunk = nil
	if err == nil {
		// The first chunk's keep-alive came too late; the store must
		// not have succeeded with an expired marker.
		t.Fatal("a write whose marker expired succeeded")
	}
	wantErr(t, err, ErrConflict)
	if got := must[*flashdnsv1.Zone](t)(s.GetZone(ctx, zoneEx)); got.GetEtag() != z.GetEtag() {
		t.Fatal("the failed write changed the zone")
	}
	if n := countKeys(t, s.cli, rrsetsPrefix); n != 61 {
		t.Fatalf("%d record-set keys, want 61", n)
	}
}
