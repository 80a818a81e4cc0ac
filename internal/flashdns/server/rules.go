package server

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	flashdnsv1 "github.com/photoncloud/photoncloud/api/flashdns/v1"
	"github.com/photoncloud/photoncloud/client/aegis"
	"github.com/photoncloud/photoncloud/internal/flashdns/store"
)

// Permissions of the flashdns.v1 API.
const (
	PermZonesCreate   = "flashdns:zones:create"
	PermZonesGet      = "flashdns:zones:get"
	PermZonesList     = "flashdns:zones:list"
	PermZonesUpdate   = "flashdns:zones:update"
	PermZonesDelete   = "flashdns:zones:delete"
	PermZonesImport   = "flashdns:zones:import"
	PermZonesExport   = "flashdns:zones:export"
	PermRecordsList   = "flashdns:records:list"
	PermRecordsGet    = "flashdns:records:get"
	PermRecordsChange = "flashdns:records:change"
)

// Labeler returns a zone's labels for authorization conditions; *store.Store
// is one.
type Labeler interface {
	ZoneLabels(name string) (map[string]string, bool)
}

// Rules returns the aegis.RuleFunc of the flashdns.v1 API: the check the
// interceptor makes before a handler runs (see the package comment). Names
// in requests are canonicalized (the zone id in lower case without the
// trailing dot) so that Aegis sees the one resource name of a zone;
// malformed names are INVALID_ARGUMENT before Aegis is asked.
func Rules(zones Labeler) aegis.RuleFunc {
	return func(_ context.Context, method string, req any) (aegis.Check, error) {
		switch r := req.(type) {
		case *flashdnsv1.CreateZoneRequest:
			return projectCheck(PermZonesCreate, r.GetParent())
		case *flashdnsv1.ListZonesRequest:
			return projectCheck(PermZonesList, r.GetParent())
		case *flashdnsv1.ImportZoneRequest:
			return projectCheck(PermZonesImport, r.GetParent())
		case *flashdnsv1.GetZoneRequest:
			return zoneCheck(zones, r.GetName())
		case *flashdnsv1.UpdateZoneRequest:
			return zoneCheck(zones, r.GetZone().GetName())
		case *flashdnsv1.DeleteZoneRequest:
			return zoneCheck(zones, r.GetName())
		case *flashdnsv1.ExportZoneRequest:
			return zoneCheck(zones, r.GetName())
		case *flashdnsv1.ListRecordSetsRequest:
			return zoneCheck(zones, r.GetZone())
		case *flashdnsv1.GetRecordSetRequest:
			return zoneCheck(zones, r.GetZone())
		case *flashdnsv1.ChangeRecordSetsRequest:
			return zoneCheck(zones, r.GetZone())
		}
		return aegis.Check{}, status.Errorf(codes.Unimplemented, "no access rule for %s", method)
	}
}

func projectCheck(perm, parent string) (aegis.Check, error) {
	p, err := store.ParseParent(parent)
	if err != nil {
		return aegis.Check{}, status.Error(codes.InvalidArgument, "parent: "+err.Error())
	}
	return aegis.Check{Permission: perm, Resource: p}, nil
}

// zoneCheck is the visibility check of a zone-scoped call.
func zoneCheck(zones Labeler, name string) (aegis.Check, error) {
	parent, id, err := store.ParseZoneName(name)
	if err != nil {
		return aegis.Check{}, status.Error(codes.InvalidArgument, err.Error())
	}
	res := store.ZoneName(parent, id)
	c := aegis.Check{Permission: PermZonesGet, Resource: res}
	if labels, ok := zones.ZoneLabels(res); ok && len(labels) > 0 {
		c.Labels = labels
	}
	return c, nil
}

// DenialCode is the aegis.Config.DenialCode of the flashdns.v1 API: a
// denied flashdns:zones:get on a zone is NOT_FOUND (the caller may not know
// the zone exists); any other denied permission on a zone is
// PERMISSION_DENIED (checked only after the caller was allowed to see it);
// a denial on a project follows aegis.TenantDenialCode.
func DenialCode(p *aegis.Principal, c aegis.Check) codes.Code {
	if _, _, err := store.ParseZoneName(c.Resource); err == nil {
		if c.Permission == PermZonesGet {
			return codes.NotFound
		}
		return codes.PermissionDenied
	}
	return aegis.TenantDenialCode(p, c)
}
