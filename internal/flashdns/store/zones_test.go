package store

import (
	"fmt"
	"slices"
	"testing"

	"github.com/miekg/dns"

	flashdnsv1 "github.com/photoncloud/photoncloud/api/flashdns/v1"
)

func TestCreateGetListDeleteZone(t *testing.T) {
	addr := startChainfire(t)
	s := openStore(t, addr, nil)
	ctx := ctxT(t)

	z := must[*flashdnsv1.Zone](t)(s.CreateZone(ctx, web, &flashdnsv1.Zone{DnsName: "Example.COM.", Labels: map[string]string{"env": "prod"}}))
	if z.GetName() != zoneEx || z.GetDnsName() != "example.com." || z.GetRecordSetCount() != 2 || !z.GetEnabled() ||
		z.GetKind() != flashdnsv1.Zone_KIND_FORWARD || z.GetEtag() == "" || z.GetSerial() == 0 {
		t.Fatalf("created zone: %v", z)
	}
	if z.GetPrimaryNs() != "ns1.example.net." || z.GetAdmin() != "hostmaster.example.com." || z.GetDefaultTtl() != 3600 ||
		z.GetRefresh() != 3600 || z.GetRetry() != 600 || z.GetExpire() != 1209600 || z.GetNegativeTtl() != 300 {
		t.Fatalf("defaults: %v", z)
	}
	got := must[*flashdnsv1.Zone](t)(s.GetZone(ctx, web+"/zones/EXAMPLE.com."))
	if got.GetEtag() != z.GetEtag() || got.GetSerial() != z.GetSerial() {
		t.Fatalf("get: %v", got)
	}
	// The zone is served with SOA and apex NS.
	snap := s.Table().Get("example.com.")
	if snap == nil || snap.Serial() != z.GetSerial() {
		t.Fatalf("table: %v", snap)
	}
	if r := snap.Lookup("example.com.", dns.TypeNS); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 2 {
		t.Fatalf("NS lookup: %+v", r)
	}

	// Names are unique across projects; other projects see NotFound.
	_, err := s.CreateZone(ctx, other, &flashdnsv1.Zone{DnsName: "example.com"})
	wantErr(t, err, ErrAlreadyExists)
	_, err = s.CreateZone(ctx, web, &flashdnsv1.Zone{DnsName: "example.com"})
	wantErr(t, err, ErrAlreadyExists)
	_, err = s.GetZone(ctx, other+"/zones/example.com")
	wantErr(t, err, ErrNotFound)
	// Nesting across projects is refused both ways; within one it is fine.
	_, err = s.CreateZone(ctx, other, &flashdnsv1.Zone{DnsName: "shop.example.com"})
	wantErr(t, err, ErrFailedPrecondition)
	createZone(t, s, other, "globex.org")
	_, err = s.CreateZone(ctx, web, &flashdnsv1.Zone{DnsName: "org"})
	wantErr(t, err, ErrInvalidArgument) // one label
	createZone(t, s, web, "sub.example.com")
	_, err = s.CreateZone(ctx, web, &flashdnsv1.Zone{DnsName: "a.b.globex.org"})
	wantErr(t, err, ErrFailedPrecondition)

	// Bad input.
	for _, in := range []*flashdnsv1.Zone{
		{},
		{DnsName: "bad name.com"},
		{DnsName: "x.com", Nameservers: []string{"-bad-.example.net"}},
		{DnsName: "x.com", Nameservers: []string{"a.example.net", "A.example.net."}},
		{DnsName: "x.com", Labels: map[string]string{"Bad": "x"}},
		{DnsName: "x.com", Reverse: &flashdnsv1.ReverseConfig{Cidr: "10.0.0.0/12"}},
		{DnsName: "x.com", Admin: "not an address@"},
		{DnsName: "x.com", DefaultTtl: 1 << 31},
	} {
		if _, err := s.CreateZone(ctx, web, in); err == nil {
			t.Errorf("create %v: no error", in)
		} else if GRPCCode(err).String() != "InvalidArgument" {
			t.Errorf("create %v: %v, want InvalidArgument", in, err)
		}
	}

	// Reverse zones by CIDR and by name.
	rz := must[*flashdnsv1.Zone](t)(s.CreateZone(ctx, web, &flashdnsv1.Zone{
		Reverse: &flashdnsv1.ReverseConfig{Cidr: "192.0.2.0/24", PtrPattern: "{4}-{3}-{2}-{1}.hosts.example.com"}}))
	if rz.GetDnsName() != "2.0.192.in-addr.arpa." || rz.GetKind() != flashdnsv1.Zone_KIND_REVERSE ||
		rz.GetReverse().GetPtrPattern() != "{4}-{3}-{2}-{1}.hosts.example.com." {
		t.Fatalf("reverse zone: %v", rz)
	}
	r6 := createZone(t, s, web, "8.B.D.0.1.0.0.2.ip6.arpa")
	if r6.GetReverse().GetCidr() != "2001:db8::/32" {
		t.Fatalf("reverse by name: %v", r6.GetReverse())
	}
	_, err = s.CreateZone(ctx, web, &flashdnsv1.Zone{Reverse: &flashdnsv1.ReverseConfig{Cidr: "10.0.0.0/8", PtrPattern: "{9}.example.com"}})
	wantErr(t, err, ErrInvalidArgument)

	// Listing: per project, ordered, paged.
	for i := range 5 {
		createZone(t, s, other, fmt.Sprintf("z%d.test", i))
	}
	var names []string
	tok := ""
	for {
		page, next := must2[[]*flashdnsv1.Zone, string](t)(s.ListZones(ctx, other, ListOptions[*flashdnsv1.Zone]{PageSize: 2, PageToken: tok}))
		if len(page) > 2 {
			t.Fatalf("page of %d", len(page))
		}
		for _, z := range page {
			names = append(names, z.GetDnsName())
		}
		if next == "" {
			break
		}
		tok = next
	}
	want := []string{"globex.org.", "z0.test.", "z1.test.", "z2.test.", "z3.test.", "z4.test."}
	if !slices.Equal(names, want) {
		t.Fatalf("list: %v, want %v", names, want)
	}
	_, _, err = s.ListZones(ctx, web, ListOptions[*flashdnsv1.Zone]{PageToken: tok})
	wantErr(t, err, ErrInvalidArgument)
	rev, _ := must2[[]*flashdnsv1.Zone, string](t)(s.ListZones(ctx, web, ListOptions[*flashdnsv1.Zone]{Match: func(z *flashdnsv1.Zone) bool {
		return z.GetKind() == flashdnsv1.Zone_KIND_REVERSE
	}}))
	if len(rev) != 2 {
		t.Fatalf("filtered list: %v", rev)
	}

	// Delete: refused with records unless force; etag checked.
	change(t, s, zoneEx, create(rs("www", "A", 300, "192.0.2.1")))
	wantErr(t, s.DeleteZone(ctx, zoneEx, "", false), ErrFailedPrecondition)
	wantErr(t, s.DeleteZone(ctx, zoneEx, z.GetEtag(), true), ErrEtagMismatch)
	wantErr(t, s.DeleteZone(ctx, other+"/zones/example.com", "", true), ErrNotFound)
	if err := s.DeleteZone(ctx, zoneEx, "", true); err != nil {
		t.Fatal(err)
	}
	_, err = s.GetZone(ctx, zoneEx)
	wantErr(t, err, ErrNotFound)
	if s.Table().Get("example.com.") != nil {
		t.Fatal("deleted zone still served")
	}
	if n := countKeys(t, s.cli, zoneSetsPrefix("example.com")) + countKeys(t, s.cli, journalZonePrefix("example.com")); n != 0 {
		t.Fatalf("%d keys left of the deleted zone", n)
	}
	// Its name is free again, for anyone whose project has no zone
	// inside it.
	_, err = s.CreateZone(ctx, other, &flashdnsv1.Zone{DnsName: "example.com"})
	wantErr(t, err, ErrFailedPrecondition)
	if err := s.DeleteZone(ctx, web+"/zones/sub.example.com", "", false); err != nil {
		t.Fatal(err)
	}
	createZone(t, s, other, "example.com")
}

func must2[A, B any](t *testing.T) func(A, B, error) (A, B) {
	return func(a A, b B, err error) (A, B) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return a, b
	}
}

func TestUpdateZone(t *testing.T) {
	addr := startChainfire(t)
	s := openStore(t, addr, nil)
	ctx := ctxT(t)
	createZone(t, s, web, "example.com")
	change(t, s, zoneEx, create(rs("www", "A", 0, "192.0.2.1")), create(rs("mail", "A", 60, "192.0.2.2")))
	z := must[*flashdnsv1.Zone](t)(s.GetZone(ctx, zoneEx))

	// Labels and enabled: no new serial.
	z2 := must[*flashdnsv1.Zone](t)(s.UpdateZone(ctx, zoneEx, z.GetEtag(), func(m *flashdnsv1.Zone) error {
		m.Labels = map[string]string{"team": "dns"}
		return nil
	}))
	if z2.GetSerial() != z.GetSerial() || z2.GetEtag() == z.GetEtag() || z2.GetLabels()["team"] != "dns" {
		t.Fatalf("label update: %v", z2)
	}
	// A stale etag changes nothing.
	_, err := s.UpdateZone(ctx, zoneEx, z.GetEtag(), func(m *flashdnsv1.Zone) error { m.Refresh = 100; return nil })
	wantErr(t, err, ErrEtagMismatch)
	// Immutable fields.
	_, err = s.UpdateZone(ctx, zoneEx, "", func(m *flashdnsv1.Zone) error { m.DnsName = "other.com."; return nil })
	wantErr(t, err, ErrInvalidArgument)
	// A no-op writes nothing.
	z3 := must[*flashdnsv1.Zone](t)(s.UpdateZone(ctx, zoneEx, "", func(*flashdnsv1.Zone) error { return nil }))
	if z3.GetEtag() != z2.GetEtag() {
		t.Fatal("a no-op update wrote")
	}

	// Name servers and default TTL: new serial, the apex NS set follows,
	// TTL-0 sets follow the default.
	z4 := must[*flashdnsv1.Zone](t)(s.UpdateZone(ctx, zoneEx, "", func(m *flashdnsv1.Zone) error {
		m.Nameservers = []string{"ns.example.com"}
		m.DefaultTtl = 120
		return nil
	}))
	if !serialLess(z2.GetSerial(), z4.GetSerial()) || z4.GetPrimaryNs() != "ns1.example.net." {
		t.Fatalf("update: %v", z4)
	}
	ns := must[*flashdnsv1.RecordSet](t)(s.GetRecordSet(ctx, zoneEx, "@", "ns"))
	if !slices.Equal(ns.GetRecords(), []string{"ns.example.com."}) {
		t.Fatalf("apex NS: %v", ns)
	}
	snap := s.Table().Get("example.com.")
	if r := snap.Lookup("www.example.com.", dns.TypeA); len(r.Answer) != 1 || r.Answer[0].Header().Ttl != 120 {
		t.Fatalf("www after default TTL change: %+v", r)
	}
	if r := snap.Lookup("mail.example.com.", dns.TypeA); len(r.Answer) != 1 || r.Answer[0].Header().Ttl != 60 {
		t.Fatalf("mail after default TTL change: %+v", r)
	}
	// IXFR from the previous serial has the change.
	if _, ok := snap.IXFR(z2.GetSerial()); !ok {
		t.Fatal("no IXFR from the previous serial")
	}

	// Disabling stops serving; the zone is still readable.
	must[*flashdnsv1.Zone](t)(s.UpdateZone(ctx, zoneEx, "", func(m *flashdnsv1.Zone) error { f := false; m.Enabled = &f; return nil }))
	if s.Table().Get("example.com.") != nil {
		t.Fatal("disabled zone served")
	}
	if _, _, err := s.ExportZone(ctx, zoneEx); err != nil {
		t.Fatal(err)
	}
}

// TestConcurrentNestedCreates: two replicas race to create a zone and a
// zone inside it for different projects; at most one may win each time.
func TestConcurrentNestedCreates(t *testing.T) {
	addr := startChainfire(t)
	a, b := openStore(t, addr, nil), openStore(t, addr, nil)
	ctx := ctxT(t)
	for i := range 15 {
		parent, child := fmt.Sprintf("p%d.test", i), fmt.Sprintf("c.p%d.test", i)
		errs := make(chan error, 2)
		go func() {
			_, err := a.CreateZone(ctx, web, &flashdnsv1.Zone{DnsName: parent})
			errs <- err
		}()
		go func() {
			_, err := b.CreateZone(ctx, other, &flashdnsv1.Zone{DnsName: child})
			errs <- err
		}()
		e1, e2 := <-errs, <-errs
		if (e1 == nil) == (e2 == nil) {
			t.Fatalf("round %d: %v and %v; want exactly one winner", i, e1, e2)
		}
		for _, e := range []error{e1, e2} {
			if e != nil && GRPCCode(e).String() != "FailedPrecondition" {
				t.Fatalf("round %d: loser got %v", i, e)
			}
		}
	}
}
