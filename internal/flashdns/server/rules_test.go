package server

import (
	"context"
	"maps"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	flashdnsv1 "github.com/photoncloud/photoncloud/api/flashdns/v1"
	"github.com/photoncloud/photoncloud/client/aegis"
)

type fakeLabels map[string]map[string]string

func (f fakeLabels) ZoneLabels(name string) (map[string]string, bool) {
	l, ok := f[name]
	return l, ok
}

// TestRules covers the rule of every method of both services.
func TestRules(t *testing.T) {
	const zone = "orgs/acme/projects/web/zones/example.com"
	rules := Rules(fakeLabels{zone: {"env": "prod"}})
	labels := map[string]string{"env": "prod"}
	cases := []struct {
		method string
		req    proto.Message
		perm   string
		res    string
		labels map[string]string
	}{
		{"CreateZone", &flashdnsv1.CreateZoneRequest{Parent: "orgs/acme/projects/web"}, PermZonesCreate, "orgs/acme/projects/web", nil},
		{"ListZones", &flashdnsv1.ListZonesRequest{Parent: "orgs/acme/projects/web"}, PermZonesList, "orgs/acme/projects/web", nil},
		{"ImportZone", &flashdnsv1.ImportZoneRequest{Parent: "orgs/acme/projects/web"}, PermZonesImport, "orgs/acme/projects/web", nil},
		{"GetZone", &flashdnsv1.GetZoneRequest{Name: "orgs/acme/projects/web/zones/Example.COM."}, PermZonesGet, zone, labels},
		{"UpdateZone", &flashdnsv1.UpdateZoneRequest{Zone: &flashdnsv1.Zone{Name: zone}}, PermZonesGet, zone, labels},
		{"DeleteZone", &flashdnsv1.DeleteZoneRequest{Name: zone}, PermZonesGet, zone, labels},
		{"ExportZone", &flashdnsv1.ExportZoneRequest{Name: zone}, PermZonesGet, zone, labels},
		{"ListRecordSets", &flashdnsv1.ListRecordSetsRequest{Zone: zone}, PermZonesGet, zone, labels},
		{"GetRecordSet", &flashdnsv1.GetRecordSetRequest{Zone: zone}, PermZonesGet, zone, labels},
		{"ChangeRecordSets", &flashdnsv1.ChangeRecordSetsRequest{Zone: zone}, PermZonesGet, zone, labels},
		{"GetZone (unknown zone)", &flashdnsv1.GetZoneRequest{Name: "orgs/acme/projects/web/zones/other.com"}, PermZonesGet, "orgs/acme/projects/web/zones/other.com", nil},
	}
	for _, tc := range cases {
		c, err := rules(context.Background(), "/flashdns.v1.X/"+tc.method, tc.req)
		if err != nil {
			t.Errorf("%s: %v", tc.method, err)
			continue
		}
		if c.Permission != tc.perm || c.Resource != tc.res || !maps.Equal(c.Labels, tc.labels) || c.AuthenticatedOnly {
			t.Errorf("%s: %+v, want %s on %s with %v", tc.method, c, tc.perm, tc.res, tc.labels)
		}
	}
	for _, req := range []proto.Message{
		&flashdnsv1.CreateZoneRequest{Parent: "orgs/acme"},
		&flashdnsv1.ListZonesRequest{Parent: ""},
		&flashdnsv1.ImportZoneRequest{Parent: "orgs/Acme/projects/web"},
		&flashdnsv1.GetZoneRequest{Name: "orgs/acme/projects/web/zones/com"},
		&flashdnsv1.UpdateZoneRequest{},
		&flashdnsv1.ChangeRecordSetsRequest{Zone: "orgs/acme/projects/web/example.com"},
	} {
		if _, err := rules(context.Background(), "/m", req); status.Code(err) != codes.InvalidArgument {
			t.Errorf("%T %v: %v, want InvalidArgument", req, req, err)
		}
	}
	if _, err := rules(context.Background(), "/flashdns.v1.ZoneService/Nope", &flashdnsv1.Zone{}); status.Code(err) != codes.Unimplemented {
		t.Errorf("unknown request: %v", err)
	}
}

func TestDenialCode(t *testing.T) {
	acme := &aegis.Principal{Name: "orgs/acme/users/a", Org: "orgs/acme"}
	zone := "orgs/acme/projects/web/zones/example.com"
	for _, tc := range []struct {
		p    *aegis.Principal
		c    aegis.Check
		want codes.Code
	}{
		{acme, aegis.Check{Permission: PermZonesGet, Resource: zone}, codes.NotFound},
		{acme, aegis.Check{Permission: PermRecordsChange, Resource: zone}, codes.PermissionDenied},
		{acme, aegis.Check{Permission: PermZonesCreate, Resource: "orgs/acme/projects/web"}, codes.PermissionDenied},
		{acme, aegis.Check{Permission: PermZonesCreate, Resource: "orgs/globex/projects/web"}, codes.NotFound},
		{nil, aegis.Check{Permission: PermZonesList, Resource: "orgs/globex/projects/web"}, codes.NotFound},
	} {
		if got := DenialCode(tc.p, tc.c); got != tc.want {
			t.Errorf("DenialCode(%v, %+v) = %v, want %v", tc.p, tc.c, got, tc.want)
		}
	}
}

func TestFilter(t *testing.T) {
	f := true
	fwd := &flashdnsv1.Zone{DnsName: "example.com.", Kind: flashdnsv1.Zone_KIND_FORWARD, Enabled: &f, Labels: map[string]string{"env": "prod"}}
	rev := &flashdnsv1.Zone{DnsName: "2.0.192.in-addr.arpa.", Kind: flashdnsv1.Zone_KIND_REVERSE, Enabled: new(bool)}
	for _, tc := range []struct {
		filter   string
		fwd, rev bool
	}{
		{"kind = KIND_REVERSE", false, true},
		{"kind = forward", true, false},
		{"kind != reverse", true, false},
		{`dns_name = "example*"`, true, false},
		{"dns_name = example.com", true, false},
		{"enabled = false", false, true},
		{"labels.env = prod AND kind = forward", true, false},
		{"labels:env", true, false},
		{"labels.env != prod", false, true},
	} {
		m, err := compileZoneFilter(tc.filter)
		if err != nil {
			t.Errorf("%q: %v", tc.filter, err)
			continue
		}
		if m(fwd) != tc.fwd || m(rev) != tc.rev {
			t.Errorf("%q: forward %v reverse %v, want %v %v", tc.filter, m(fwd), m(rev), tc.fwd, tc.rev)
		}
	}
	for _, bad := range []string{"kind = sideways", "color = red", "kind = x OR kind = y", "enabled", `dns_name = "x`, "kind : x", "a = b AND"} {
		if _, err := compileZoneFilter(bad); status.Code(err) != codes.InvalidArgument {
			t.Errorf("%q: %v, want InvalidArgument", bad, err)
		}
	}
}
