package server

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	flashdnsv1 "github.com/photoncloud/photoncloud/api/flashdns/v1"
)

const (
	web    = "orgs/acme/projects/web"
	zoneEx = web + "/zones/example.com"
)

// TestAPIWithoutAuth drives every method through gRPC with authorization
// off, as a lab runs it: the store's errors arrive as the documented codes.
func TestAPIWithoutAuth(t *testing.T) {
	st := openStore(t, startChainfire(t))
	api, err := New(Config{Store: st, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	c := clientsOf(dial(t, serve(t, api)))
	ctx := ctxT(t)

	z := must[*flashdnsv1.Zone](t)(c.zones.CreateZone(ctx, &flashdnsv1.CreateZoneRequest{Parent: web,
		Zone: &flashdnsv1.Zone{DnsName: "example.com", Labels: map[string]string{"env": "prod"}}}))
	_, err = c.zones.CreateZone(ctx, &flashdnsv1.CreateZoneRequest{Parent: "orgs/globex/projects/shop", Zone: &flashdnsv1.Zone{DnsName: "EXAMPLE.com."}})
	wantCode(t, err, codes.AlreadyExists)
	_, err = c.zones.CreateZone(ctx, &flashdnsv1.CreateZoneRequest{Parent: "orgs/globex/projects/shop", Zone: &flashdnsv1.Zone{DnsName: "a.example.com"}})
	wantCode(t, err, codes.FailedPrecondition)
	_, err = c.zones.CreateZone(ctx, &flashdnsv1.CreateZoneRequest{Parent: web, Zone: &flashdnsv1.Zone{DnsName: "x"}})
	wantCode(t, err, codes.InvalidArgument)
	_, err = c.zones.GetZone(ctx, &flashdnsv1.GetZoneRequest{Name: "orgs/globex/projects/shop/zones/example.com"})
	wantCode(t, err, codes.NotFound)

	resp := must[*flashdnsv1.ChangeRecordSetsResponse](t)(c.records.ChangeRecordSets(ctx, &flashdnsv1.ChangeRecordSetsRequest{Zone: zoneEx,
		Changes: []*flashdnsv1.Change{{Action: flashdnsv1.Change_ACTION_CREATE, RecordSet: &flashdnsv1.RecordSet{Name: "www", Type: "A", Records: []string{"192.0.2.1"}}}}}))
	if resp.GetSerial() != resp.GetZone().GetSerial() || resp.GetZone().GetRecordSetCount() != 3 {
		t.Fatalf("change response: %v", resp)
	}
	_, err = c.records.ChangeRecordSets(ctx, &flashdnsv1.ChangeRecordSetsRequest{Zone: zoneEx, Etag: z.GetEtag(),
		Changes: []*flashdnsv1.Change{{Action: flashdnsv1.Change_ACTION_DELETE, RecordSet: &flashdnsv1.RecordSet{Name: "www", Type: "A"}}}})
	wantCode(t, err, codes.Aborted)
	_, err = c.records.ChangeRecordSets(ctx, &flashdnsv1.ChangeRecordSetsRequest{Zone: zoneEx,
		Changes: []*flashdnsv1.Change{{Action: flashdnsv1.Change_ACTION_DELETE, RecordSet: &flashdnsv1.RecordSet{Name: "www", Type: "A", Ttl: 5, Records: []string{"192.0.2.1"}}}}})
	wantCode(t, err, codes.FailedPrecondition)
	rs := must[*flashdnsv1.RecordSet](t)(c.records.GetRecordSet(ctx, &flashdnsv1.GetRecordSetRequest{Zone: zoneEx, Name: "www", Type: "a"}))
	if rs.GetName() != "www.example.com." || rs.GetType() != "A" {
		t.Fatalf("get record set: %v", rs)
	}
	list := must[*flashdnsv1.ListRecordSetsResponse](t)(c.records.ListRecordSets(ctx, &flashdnsv1.ListRecordSetsRequest{Zone: zoneEx}))
	if len(list.GetRecordSets()) != 3 {
		t.Fatalf("list: %v", list)
	}

	// UpdateZone masks.
	up := func(in *flashdnsv1.Zone, paths ...string) (*flashdnsv1.Zone, error) {
		var mask *fieldmaskpb.FieldMask
		if paths != nil {
			mask = &fieldmaskpb.FieldMask{Paths: paths}
		}
		return c.zones.UpdateZone(ctx, &flashdnsv1.UpdateZoneRequest{Zone: in, UpdateMask: mask})
	}
	cur := must[*flashdnsv1.Zone](t)(c.zones.GetZone(ctx, &flashdnsv1.GetZoneRequest{Name: zoneEx}))
	// Without a mask, the fields set: refresh only.
	z2 := must[*flashdnsv1.Zone](t)(up(&flashdnsv1.Zone{Name: zoneEx, Refresh: 1234}))
	if z2.GetRefresh() != 1234 || z2.GetLabels()["env"] != "prod" || z2.GetRetry() != cur.GetRetry() || z2.GetSerial() == cur.GetSerial() {
		t.Fatalf("update without mask: %v", z2)
	}
	// A read zone sent back whole with a changed field: output-only
	// fields and the unchanged immutable ones are ignored.
	back := z2
	back.Retry = 77
	z3 := must[*flashdnsv1.Zone](t)(up(back))
	if z3.GetRetry() != 77 {
		t.Fatalf("whole zone: %v", z3)
	}
	// A mask with a zero value restores the default; labels are cleared.
	z4 := must[*flashdnsv1.Zone](t)(up(&flashdnsv1.Zone{Name: zoneEx}, "refresh", "labels", "etag", "serial"))
	if z4.GetRefresh() != 3600 || len(z4.GetLabels()) != 0 || z4.GetRetry() != 77 {
		t.Fatalf("mask: %v", z4)
	}
	_, err = up(&flashdnsv1.Zone{Name: zoneEx, DnsName: "other.com."}, "dns_name")
	wantCode(t, err, codes.InvalidArgument)
	_, err = up(&flashdnsv1.Zone{Name: zoneEx}, "colour")
	wantCode(t, err, codes.InvalidArgument)
	_, err = up(&flashdnsv1.Zone{Name: zoneEx, Etag: z.GetEtag(), Retry: 5})
	wantCode(t, err, codes.Aborted)
	z5 := must[*flashdnsv1.Zone](t)(up(&flashdnsv1.Zone{Name: zoneEx, Nameservers: []string{"ns.example.org"}}, "*"))
	if z5.GetRetry() != 600 || len(z5.GetNameservers()) != 1 {
		t.Fatalf("mask *: %v", z5)
	}
	_, err = up(&flashdnsv1.Zone{Name: zoneEx, Reverse: &flashdnsv1.ReverseConfig{PtrPattern: "x.example.com"}}, "reverse.ptr_pattern")
	wantCode(t, err, codes.InvalidArgument)

	// Reverse zones, filters.
	rz := must[*flashdnsv1.Zone](t)(c.zones.CreateZone(ctx, &flashdnsv1.CreateZoneRequest{Parent: web,
		Zone: &flashdnsv1.Zone{Reverse: &flashdnsv1.ReverseConfig{Cidr: "10.1.0.0/16"}}}))
	rz = must[*flashdnsv1.Zone](t)(up(&flashdnsv1.Zone{Name: rz.GetName(), Reverse: &flashdnsv1.ReverseConfig{Cidr: "10.1.0.0/16", PtrPattern: "ip-{ip}.example.com"}}))
	if rz.GetReverse().GetPtrPattern() != "ip-{ip}.example.com." {
		t.Fatalf("pattern update: %v", rz)
	}
	_, err = up(&flashdnsv1.Zone{Name: rz.GetName(), Reverse: &flashdnsv1.ReverseConfig{Cidr: "10.2.0.0/16"}}, "reverse")
	wantCode(t, err, codes.InvalidArgument)
	zl := must[*flashdnsv1.ListZonesResponse](t)(c.zones.ListZones(ctx, &flashdnsv1.ListZonesRequest{Parent: web, Filter: "kind = reverse"}))
	if len(zl.GetZones()) != 1 || zl.GetZones()[0].GetName() != rz.GetName() {
		t.Fatalf("filtered list: %v", zl)
	}
	_, err = c.zones.ListZones(ctx, &flashdnsv1.ListZonesRequest{Parent: web, Filter: "colour = red"})
	wantCode(t, err, codes.InvalidArgument)

	// Export, import.
	exp := must[*flashdnsv1.ExportZoneResponse](t)(c.zones.ExportZone(ctx, &flashdnsv1.ExportZoneRequest{Name: zoneEx}))
	if exp.GetSerial() != z5.GetSerial() || !strings.Contains(exp.GetZoneFile(), "192.0.2.1") {
		t.Fatalf("export: %v", exp)
	}
	imp := must[*flashdnsv1.Zone](t)(c.zones.ImportZone(ctx, &flashdnsv1.ImportZoneRequest{Parent: "orgs/globex/projects/shop",
		ZoneFile: strings.ReplaceAll(exp.GetZoneFile(), "example.com.", "example.net.")}))
	if imp.GetName() != "orgs/globex/projects/shop/zones/example.net" || imp.GetRecordSetCount() != 3 {
		t.Fatalf("import: %v", imp)
	}
	_, err = c.zones.ImportZone(ctx, &flashdnsv1.ImportZoneRequest{Parent: web, ZoneFile: "garbage"})
	wantCode(t, err, codes.InvalidArgument)

	// Delete.
	_, err = c.zones.DeleteZone(ctx, &flashdnsv1.DeleteZoneRequest{Name: zoneEx})
	wantCode(t, err, codes.FailedPrecondition)
	must[any](t)(c.zones.DeleteZone(ctx, &flashdnsv1.DeleteZoneRequest{Name: zoneEx, Force: true}))
	_, err = c.zones.GetZone(ctx, &flashdnsv1.GetZoneRequest{Name: zoneEx})
	wantCode(t, err, codes.NotFound)
}
