package store

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
	"google.golang.org/protobuf/proto"

	flashdnsv1 "github.com/photoncloud/photoncloud/api/flashdns/v1"
)

func TestChangeRecordSets(t *testing.T) {
	addr := startChainfire(t)
	s := openStore(t, addr, nil)
	ctx := ctxT(t)
	z0 := createZone(t, s, web, "example.com")

	z1 := change(t, s, zoneEx,
		create(rs("www", "A", 300, "192.0.2.1", "192.0.2.2")),
		create(rs("@", "MX", 0, "10 mail", "20 mail2.example.net.")),
		create(rs("mail.example.com.", "aaaa", 60, "2001:db8::0001")),
		create(rs("_sip._tcp", "SRV", 60, "10 5 5060 sip.example.com.")),
		create(rs("txt", "TXT", 60, `"v=spf1 -all"`, "word")),
		create(rs("*.wild", "A", 60, "192.0.2.9")),
	)
	if !serialLess(z0.GetSerial(), z1.GetSerial()) || z1.GetRecordSetCount() != 8 {
		t.Fatalf("after creates: %v", z1)
	}
	mx := must[*flashdnsv1.RecordSet](t)(s.GetRecordSet(ctx, zoneEx, "example.com.", "MX"))
	if !slices.Equal(mx.GetRecords(), []string{"10 mail.example.com.", "20 mail2.example.net."}) || mx.GetTtl() != 0 || mx.GetName() != "example.com." {
		t.Fatalf("MX: %v", mx)
	}
	aaaa := must[*flashdnsv1.RecordSet](t)(s.GetRecordSet(ctx, zoneEx, "MAIL", "AAAA"))
	if !slices.Equal(aaaa.GetRecords(), []string{"2001:db8::1"}) {
		t.Fatalf("AAAA normalized: %v", aaaa)
	}
	snap := s.Table().Get("example.com.")
	if r := snap.Lookup("foo.wild.example.com.", dns.TypeA); len(r.Answer) != 1 {
		t.Fatalf("wildcard: %+v", r)
	}
	if r := snap.Lookup("example.com.", dns.TypeMX); len(r.Answer) != 2 || r.Answer[0].Header().Ttl != 3600 {
		t.Fatalf("MX answer: %+v", r)
	}

	// Route 53 semantics, in order within one batch: DELETE then CREATE.
	z2 := change(t, s, zoneEx,
		del(rs("www", "A", 300, "192.0.2.2", "192.0.2.1")),
		create(rs("www", "CNAME", 300, "example.com.")),
		upsert(rs("txt", "TXT", 120, `"other"`)),
		del(rs("_sip._tcp", "SRV", 0)),
	)
	if r := s.Table().Get("example.com.").Lookup("www.example.com.", dns.TypeA); len(r.Answer) != 1 || r.Answer[0].Header().Rrtype != dns.TypeCNAME {
		t.Fatalf("www after CNAME: %+v", r)
	}
	_, err := s.GetRecordSet(ctx, zoneEx, "_sip._tcp", "SRV")
	wantErr(t, err, ErrNotFound)

	// The journal has both changes, chained.
	snap = s.Table().Get("example.com.")
	if _, ok := snap.IXFR(z0.GetSerial()); !ok {
		t.Fatal("no IXFR from the creation serial")
	}
	rrs, _ := snap.IXFR(z1.GetSerial())
	text := fmt.Sprint(rrs)
	for _, want := range []string{"192.0.2.1", "CNAME", "other", "_sip._tcp"} {
		if !strings.Contains(text, want) {
			t.Errorf("IXFR from %d lacks %s: %v", z1.GetSerial(), want, text)
		}
	}

	// Etags.
	_, err = s.ChangeRecordSets(ctx, zoneEx, []*flashdnsv1.Change{upsert(rs("x", "A", 0, "192.0.2.3"))}, z1.GetEtag())
	wantErr(t, err, ErrEtagMismatch)
	z3 := must[*flashdnsv1.Zone](t)(s.ChangeRecordSets(ctx, zoneEx, []*flashdnsv1.Change{upsert(rs("x", "A", 0, "192.0.2.3"))}, z2.GetEtag()))
	// An UPSERT of what is there still makes a new serial.
	z4 := change(t, s, zoneEx, upsert(rs("x", "A", 0, "192.0.2.3")))
	if !serialLess(z3.GetSerial(), z4.GetSerial()) {
		t.Fatalf("serial %d after %d", z4.GetSerial(), z3.GetSerial())
	}
}

func TestChangeRecordSetsFailuresChangeNothing(t *testing.T) {
	addr := startChainfire(t)
	s := openStore(t, addr, nil)
	ctx := ctxT(t)
	createZone(t, s, web, "example.com")
	createZone(t, s, other, "other.com")
	base := change(t, s, zoneEx,
		create(rs("www", "A", 300, "192.0.2.1")),
		create(rs("alias", "CNAME", 300, "www")),
		create(rs("sub", "NS", 300, "ns.sub")),
		create(rs("ns.sub", "A", 300, "192.0.2.53")),
	)
	keys := countKeys(t, s.cli, rootPrefix)
	rev := s.Revision()

	cases := []struct {
		name string
		cs   []*flashdnsv1.Change
		want error
	}{
		{"empty batch", nil, ErrInvalidArgument},
		{"no action", []*flashdnsv1.Change{{RecordSet: rs("a", "A", 0, "192.0.2.1")}}, ErrInvalidArgument},
		{"no record set", []*flashdnsv1.Change{{Action: flashdnsv1.Change_ACTION_CREATE}}, ErrInvalidArgument},
		{"bad address", []*flashdnsv1.Change{create(rs("a", "A", 0, "192.0.2.300"))}, ErrInvalidArgument},
		{"two records in one string", []*flashdnsv1.Change{create(rs("a", "A", 0, "192.0.2.1\n192.0.2.2"))}, ErrInvalidArgument},
		{"no records", []*flashdnsv1.Change{create(rs("a", "A", 0))}, ErrInvalidArgument},
		{"unsupported type", []*flashdnsv1.Change{create(rs("a", "DNAME", 0, "x.example.com."))}, ErrInvalidArgument},
		{"SOA", []*flashdnsv1.Change{upsert(rs("@", "SOA", 0, "a. b. 1 2 3 4 5"))}, ErrInvalidArgument},
		{"outside the zone", []*flashdnsv1.Change{create(rs("a.example.org.", "A", 0, "192.0.2.1"))}, ErrInvalidArgument},
		{"forgotten dot", []*flashdnsv1.Change{create(rs("a.example.com", "A", 0, "192.0.2.1"))}, ErrInvalidArgument},
		{"forgotten dot in data", []*flashdnsv1.Change{create(rs("a", "CNAME", 0, "www.example.com"))}, ErrInvalidArgument},
		{"bad label", []*flashdnsv1.Change{create(rs("a b", "A", 0, "192.0.2.1"))}, ErrInvalidArgument},
		{"TTL too large", []*flashdnsv1.Change{create(rs("a", "A", 1<<31, "192.0.2.1"))}, ErrInvalidArgument},
		{"duplicate records", []*flashdnsv1.Change{create(rs("a", "A", 0, "192.0.2.1", "192.0.2.1"))}, ErrInvalidArgument},
		{"long TXT", []*flashdnsv1.Change{create(rs("a", "TXT", 0, `"`+strings.Repeat("x", 256)+`"`))}, ErrInvalidArgument},
		{"long TXT escaped", []*flashdnsv1.Change{create(rs("a", "TXT", 0, `"`+strings.Repeat(`\065`, 256)+`"`))}, ErrInvalidArgument},
		{"long TXT word", []*flashdnsv1.Change{create(rs("a", "TXT", 0, strings.Repeat("x", 256)))}, ErrInvalidArgument},
		{"two CNAMEs", []*flashdnsv1.Change{create(rs("a", "CNAME", 0, "x.example.net.", "y.example.net."))}, ErrInvalidArgument},
		{"CNAME beside A", []*flashdnsv1.Change{create(rs("www", "CNAME", 0, "x.example.net."))}, ErrInvalidArgument},
		{"A beside CNAME", []*flashdnsv1.Change{create(rs("alias", "A", 0, "192.0.2.1"))}, ErrInvalidArgument},
		{"CNAME at the apex", []*flashdnsv1.Change{create(rs("@", "CNAME", 0, "x.example.net."))}, ErrInvalidArgument},
		{"data below a cut", []*flashdnsv1.Change{create(rs("x.sub", "TXT", 0, "hi"))}, ErrInvalidArgument},
		{"MX to a bad host", []*flashdnsv1.Change{create(rs("@", "MX", 0, "10 -bad-.example.net."))}, ErrInvalidArgument},
		{"delete the apex NS", []*flashdnsv1.Change{del(rs("@", "NS", 0))}, ErrInvalidArgument},
		{"too many name servers", []*flashdnsv1.Change{upsert(rs("@", "NS", 0, nsList(17)...))}, ErrInvalidArgument},
		{"create existing", []*flashdnsv1.Change{create(rs("www", "A", 0, "192.0.2.7"))}, ErrAlreadyExists},
		{"delete missing", []*flashdnsv1.Change{del(rs("nothing", "A", 0))}, ErrNotFound},
		{"delete mismatch records", []*flashdnsv1.Change{del(rs("www", "A", 300, "192.0.2.2"))}, ErrFailedPrecondition},
		{"delete mismatch TTL", []*flashdnsv1.Change{del(rs("www", "A", 301, "192.0.2.1"))}, ErrFailedPrecondition},
		// A good change first, then a bad one: nothing applies.
		{"good then bad", []*flashdnsv1.Change{upsert(rs("new", "A", 0, "192.0.2.8")), create(rs("www", "A", 0, "192.0.2.7"))}, ErrAlreadyExists},
		{"good then invalid", []*flashdnsv1.Change{del(rs("alias", "CNAME", 0)), create(rs("www", "CNAME", 0, "x.example.net."))}, ErrInvalidArgument},
	}
	for _, tc := range cases {
		_, err := s.ChangeRecordSets(ctx, zoneEx, tc.cs, "")
		if err == nil {
			t.Errorf("%s: no error", tc.name)
			continue
		}
		if !errorsIs(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	_, err := s.ChangeRecordSets(ctx, web+"/zones/other.com", []*flashdnsv1.Change{upsert(rs("a", "A", 0, "192.0.2.1"))}, "")
	wantErr(t, err, ErrNotFound)
	many := make([]*flashdnsv1.Change, MaxChanges+1)
	for i := range many {
		many[i] = upsert(rs(fmt.Sprintf("h%d", i), "A", 0, "192.0.2.1"))
	}
	_, err = s.ChangeRecordSets(ctx, zoneEx, many, "")
	wantErr(t, err, ErrInvalidArgument)

	if got := countKeys(t, s.cli, rootPrefix); got != keys {
		t.Errorf("%d keys, was %d", got, keys)
	}
	if s.Revision() != rev {
		t.Errorf("revision %d, was %d: something was written", s.Revision(), rev)
	}
	now := must[*flashdnsv1.Zone](t)(s.GetZone(ctx, zoneEx))
	if !proto.Equal(now, base) {
		t.Errorf("zone changed:\n%v\n%v", now, base)
	}
}

func errorsIs(err, target error) bool {
	for e := err; e != nil; {
		if e == target {
			return true
		}
		switch u := e.(type) {
		case interface{ Unwrap() error }:
			e = u.Unwrap()
		case interface{ Unwrap() []error }:
			for _, x := range u.Unwrap() {
				if errorsIs(x, target) {
					return true
				}
			}
			return false
		default:
			return false
		}
	}
	return false
}

func nsList(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("ns%d.example.net.", i)
	}
	return out
}

func TestListRecordSets(t *testing.T) {
	addr := startChainfire(t)
	s := openStore(t, addr, nil)
	ctx := ctxT(t)
	createZone(t, s, web, "example.com")
	var cs []*flashdnsv1.Change
	for i := range 30 {
		cs = append(cs, create(rs(fmt.Sprintf("h%02d", i), "A", 0, "192.0.2.1")))
	}
	cs = append(cs, create(rs("h05", "TXT", 0, "x")), create(rs("*", "A", 0, "192.0.2.2")), create(rs("@", "A", 0, "192.0.2.3")))
	change(t, s, zoneEx, cs...)

	var all []string
	tok := ""
	for {
		page, next := must2[[]*flashdnsv1.RecordSet, string](t)(s.ListRecordSets(ctx, zoneEx, RecordListOptions{PageSize: 7, PageToken: tok}))
		for _, r := range page {
			all = append(all, r.GetName()+" "+r.GetType())
		}
		if next == "" {
			break
		}
		tok = next
	}
	if len(all) != 35 || all[0] != "*.example.com. A" || all[1] != "example.com. A" || all[2] != "example.com. NS" || all[3] != "example.com. SOA" {
		t.Fatalf("list (%d): %v", len(all), all)
	}
	if !slices.IsSortedFunc(all, func(a, b string) int { return strings.Compare(strings.Fields(a)[0], strings.Fields(b)[0]) }) {
		t.Fatalf("not sorted by name: %v", all)
	}
	page, _ := must2[[]*flashdnsv1.RecordSet, string](t)(s.ListRecordSets(ctx, zoneEx, RecordListOptions{NamePrefix: "H0", PageSize: 100}))
	if len(page) != 11 {
		t.Fatalf("prefix h0: %d sets", len(page))
	}
	page, _ = must2[[]*flashdnsv1.RecordSet, string](t)(s.ListRecordSets(ctx, zoneEx, RecordListOptions{Type: "txt"}))
	if len(page) != 1 || page[0].GetName() != "h05.example.com." {
		t.Fatalf("type TXT: %v", page)
	}
	page, _ = must2[[]*flashdnsv1.RecordSet, string](t)(s.ListRecordSets(ctx, zoneEx, RecordListOptions{NamePrefix: "example.com.", Type: "SOA"}))
	if len(page) != 1 || len(page[0].GetRecords()) != 1 {
		t.Fatalf("SOA: %v", page)
	}
	_, _, err := s.ListRecordSets(ctx, zoneEx, RecordListOptions{PageToken: tok, Type: "A"})
	wantErr(t, err, ErrInvalidArgument)
	_, _, err = s.ListRecordSets(ctx, other+"/zones/example.com", RecordListOptions{})
	wantErr(t, err, ErrNotFound)
}

func TestJournalTrimmed(t *testing.T) {
	addr := startChainfire(t)
	s := openStore(t, addr, func(o *Options) { o.JournalLength = 5 })
	createZone(t, s, web, "example.com")
	var serials []uint32
	for i := range 8 {
		z := change(t, s, zoneEx, upsert(rs("counter", "TXT", 0, fmt.Sprint(i))))
		serials = append(serials, z.GetSerial())
	}
	if n := countKeys(t, s.cli, journalZonePrefix("example.com")); n != 5 {
		t.Fatalf("%d journal entries, want 5", n)
	}
	snap := s.Table().Get("example.com.")
	if _, ok := snap.IXFR(serials[2]); !ok {
		t.Fatal("no IXFR from the oldest kept serial")
	}
	if _, ok := snap.IXFR(serials[1]); ok {
		t.Fatal("IXFR from a trimmed serial")
	}
}

func TestExportImportRoundTrip(t *testing.T) {
	addr := startChainfire(t)
	s := openStore(t, addr, nil)
	ctx := ctxT(t)
	createZone(t, s, web, "example.com")
	change(t, s, zoneEx,
		create(rs("www", "A", 300, "192.0.2.1", "192.0.2.2")),
		create(rs("@", "MX", 0, "10 mail", "20 mail2.example.net.")),
		create(rs("mail", "AAAA", 60, "2001:db8::1")),
		create(rs("_sip._tcp", "SRV", 60, "10 5 5060 sip.example.com.")),
		create(rs("txt", "TXT", 60, `"v=spf1 -all" "second"`, `"with \"quotes\" and \\ backslash"`)),
		create(rs("*.wild", "A", 60, "192.0.2.9")),
		create(rs("@", "CAA", 60, `0 issue "letsencrypt.org"`)),
		create(rs("alias", "CNAME", 60, "www")),
		create(rs("sub", "NS", 60, "ns.sub")),
		create(rs("ns.sub", "A", 60, "192.0.2.53")),
		create(rs("0/26", "NS", 60, "ns.example.net.")),
	)
	file, serial := must2[string, uint32](t)(s.ExportZone(ctx, zoneEx))
	z := must[*flashdnsv1.Zone](t)(s.ImportZone(ctx, other, ImportRequest{DNSName: "example.org", ZoneFile: strings.ReplaceAll(file, "example.com.", "example.org.")}))
	if z.GetSerial() != serial {
		t.Errorf("imported serial %d, exported %d", z.GetSerial(), serial)
	}
	orig, _ := must2[[]*flashdnsv1.RecordSet, string](t)(s.ListRecordSets(ctx, zoneEx, RecordListOptions{PageSize: 1000}))
	back, _ := must2[[]*flashdnsv1.RecordSet, string](t)(s.ListRecordSets(ctx, other+"/zones/example.org", RecordListOptions{PageSize: 1000}))
	if len(orig) != len(back) {
		t.Fatalf("%d sets exported, %d imported:\n%s", len(orig), len(back), file)
	}
	eff := func(r *flashdnsv1.RecordSet) uint32 {
		if r.GetTtl() == 0 {
			return 3600
		}
		return r.GetTtl()
	}
	for i := range orig {
		o, b := orig[i], back[i]
		name := strings.ReplaceAll(o.GetName(), "example.com.", "example.org.")
		recs := strings.ReplaceAll(strings.Join(o.GetRecords(), "|"), "example.com.", "example.org.")
		if name != b.GetName() || o.GetType() != b.GetType() || eff(o) != b.GetTtl() && o.GetType() != "SOA" || recs != strings.Join(b.GetRecords(), "|") && o.GetType() != "SOA" {
			t.Errorf("set %d: exported %v, imported %v", i, o, b)
		}
	}

	// Replace with an edited file: one change, journaled.
	file = strings.ReplaceAll(file, "192.0.2.53", "192.0.2.54")
	z0 := must[*flashdnsv1.Zone](t)(s.GetZone(ctx, zoneEx))
	z2 := must[*flashdnsv1.Zone](t)(s.ImportZone(ctx, web, ImportRequest{ZoneFile: file, Replace: true}))
	if !serialLess(z0.GetSerial(), z2.GetSerial()) || z2.GetRecordSetCount() != z0.GetRecordSetCount() {
		t.Fatalf("replaced: %v", z2)
	}
	rrs, ok := s.Table().Get("example.com.").IXFR(z0.GetSerial())
	if !ok || !strings.Contains(fmt.Sprint(rrs), "192.0.2.54") || strings.Contains(fmt.Sprint(rrs), "192.0.2.1") {
		t.Fatalf("IXFR after the replacing import (ok %v): %v", ok, rrs)
	}
	// Without Replace an existing name is taken, also for another project.
	_, err := s.ImportZone(ctx, web, ImportRequest{ZoneFile: file})
	wantErr(t, err, ErrAlreadyExists)
	_, err = s.ImportZone(ctx, other, ImportRequest{ZoneFile: file, Replace: true})
	wantErr(t, err, ErrAlreadyExists)
	// A bad file changes nothing.
	_, err = s.ImportZone(ctx, web, ImportRequest{ZoneFile: file + "bad IN A 300.1.1.1\n", Replace: true})
	wantErr(t, err, ErrInvalidArgument)
	_, err = s.ImportZone(ctx, web, ImportRequest{ZoneFile: file + "x 0 IN A 192.0.2.1\n", Replace: true})
	wantErr(t, err, ErrInvalidArgument)
	if got := must[*flashdnsv1.Zone](t)(s.GetZone(ctx, zoneEx)); got.GetEtag() != z2.GetEtag() {
		t.Fatal("a failed import changed the zone")
	}
}
