package server

import (
	"context"
	"net/netip"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/emptypb"

	flashdnsv1 "github.com/photoncloud/photoncloud/api/flashdns/v1"
	"github.com/photoncloud/photoncloud/internal/flashdns/store"
)

func (z *zoneService) CreateZone(ctx context.Context, r *flashdnsv1.CreateZoneRequest) (*flashdnsv1.Zone, error) {
	out, err := z.s.st.CreateZone(ctx, r.GetParent(), r.GetZone())
	return out, z.s.apiErr(err)
}

func (z *zoneService) GetZone(ctx context.Context, r *flashdnsv1.GetZoneRequest) (*flashdnsv1.Zone, error) {
	out, err := z.s.st.GetZone(ctx, r.GetName())
	return out, z.s.apiErr(err)
}

func (z *zoneService) ListZones(ctx context.Context, r *flashdnsv1.ListZonesRequest) (*flashdnsv1.ListZonesResponse, error) {
	match, err := compileZoneFilter(r.GetFilter())
	if err != nil {
		return nil, err
	}
	zones, next, err := z.s.st.ListZones(ctx, r.GetParent(), store.ListOptions[*flashdnsv1.Zone]{
		PageSize: r.GetPageSize(), PageToken: r.GetPageToken(), Filter: r.GetFilter(), Match: match})
	if err != nil {
		return nil, z.s.apiErr(err)
	}
	return &flashdnsv1.ListZonesResponse{Zones: zones, NextPageToken: next}, nil
}

func (z *zoneService) UpdateZone(ctx context.Context, r *flashdnsv1.UpdateZoneRequest) (*flashdnsv1.Zone, error) {
	in := r.GetZone()
	if in == nil {
		return nil, status.Error(codes.InvalidArgument, "zone is required")
	}
	if err := z.s.check(ctx, PermZonesUpdate, in.GetName()); err != nil {
		return nil, err
	}
	paths, err := updatePaths(in, r.GetUpdateMask().GetPaths())
	if err != nil {
		return nil, err
	}
	out, err := z.s.st.UpdateZone(ctx, in.GetName(), in.GetEtag(), func(cur *flashdnsv1.Zone) error {
		return applyPaths(cur, in, paths)
	})
	return out, z.s.apiErr(err)
}

func (z *zoneService) DeleteZone(ctx context.Context, r *flashdnsv1.DeleteZoneRequest) (*emptypb.Empty, error) {
	if err := z.s.check(ctx, PermZonesDelete, r.GetName()); err != nil {
		return nil, err
	}
	if err := z.s.st.DeleteZone(ctx, r.GetName(), r.GetEtag(), r.GetForce()); err != nil {
		return nil, z.s.apiErr(err)
	}
	return empty, nil
}

func (z *zoneService) ImportZone(ctx context.Context, r *flashdnsv1.ImportZoneRequest) (*flashdnsv1.Zone, error) {
	out, err := z.s.st.ImportZone(ctx, r.GetParent(), store.ImportRequest{
		DNSName: r.GetDnsName(), ZoneFile: r.GetZoneFile(), Replace: r.GetReplaceExisting(), Etag: r.GetEtag()})
	result := "ok"
	if err != nil {
		result = "failed"
	}
	z.s.imports.WithLabelValues(result).Inc()
	return out, z.s.apiErr(err)
}

func (z *zoneService) ExportZone(ctx context.Context, r *flashdnsv1.ExportZoneRequest) (*flashdnsv1.ExportZoneResponse, error) {
	if err := z.s.check(ctx, PermZonesExport, r.GetName()); err != nil {
		return nil, err
	}
	file, serial, err := z.s.st.ExportZone(ctx, r.GetName())
	if err != nil {
		return nil, z.s.apiErr(err)
	}
	return &flashdnsv1.ExportZoneResponse{ZoneFile: file, Serial: serial}, nil
}

// Update masks (see UpdateZone in zones.proto).

// mutablePaths are the fields UpdateZone changes.
var mutablePaths = []string{"primary_ns", "admin", "refresh", "retry", "expire", "negative_ttl",
	"default_ttl", "nameservers", "enabled", "labels", "reverse.ptr_pattern"}

// ignoredPaths are output-only (or identifying) and ignored in a mask, so
// that a zone read with GetZone can be sent back whole.
var ignoredPaths = map[string]bool{"name": true, "etag": true, "serial": true, "kind": true,
	"record_set_count": true, "create_time": true, "update_time": true}

// jsonNames maps the JSON names the gateway may derive a mask from to the
// proto paths.
var jsonNames = map[string]string{"primaryNs": "primary_ns", "negativeTtl": "negative_ttl",
	"defaultTtl": "default_ttl", "dnsName": "dns_name", "recordSetCount": "record_set_count",
	"createTime": "create_time", "updateTime": "update_time", "reverse.ptrPattern": "reverse.ptr_pattern"}

// updatePaths returns the mutable fields an update replaces: those in the
// mask, or, without a mask, those set in the request. An immutable field
// in the mask must keep its value; an unknown one is INVALID_ARGUMENT.
func updatePaths(in *flashdnsv1.Zone, mask []string) ([]string, error) {
	if len(mask) == 0 {
		return setPaths(in), nil
	}
	var out []string
	for _, p := range mask {
		if j, ok := jsonNames[p]; ok {
			p = j
		}
		switch {
		case p == "*":
			return append(mutablePaths[:0:0], mutablePaths...), nil
		case ignoredPaths[p]:
		case p == "dns_name", p == "reverse.cidr":
			// Checked against the stored value in applyPaths.
			out = append(out, p)
		case p == "reverse":
			out = append(out, "reverse.cidr", "reverse.ptr_pattern")
		case contains(mutablePaths, p):
			out = append(out, p)
		default:
			return nil, status.Errorf(codes.InvalidArgument, "update_mask: unknown or read-only field %q", clip(p))
		}
	}
	return out, nil
}

// setPaths lists the fields set in in (an HTTP PATCH body).
func setPaths(in *flashdnsv1.Zone) []string {
	var out []string
	in.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		switch name := string(fd.Name()); {
		case name == "reverse":
			out = append(out, "reverse.cidr")
			if in.GetReverse().GetPtrPattern() != "" {
				out = append(out, "reverse.ptr_pattern")
			}
		case name == "dns_name", contains(mutablePaths, name):
			out = append(out, name)
		}
		return true
	})
	return out
}

// applyPaths copies the fields paths names from in into cur (the stored
// zone). Immutable fields must equal the stored ones.
func applyPaths(cur, in *flashdnsv1.Zone, paths []string) error {
	for _, p := range paths {
		switch p {
		case "dns_name":
			if id, err := store.ZoneID(in.GetDnsName()); err != nil || id+"." != cur.GetDnsName() {
				return status.Errorf(codes.InvalidArgument, "dns_name is immutable (the zone is %s)", cur.GetDnsName())
			}
		case "reverse.cidr":
			want := cur.GetReverse().GetCidr()
			got := in.GetReverse().GetCidr()
			if pfx, err := netip.ParsePrefix(got); err == nil {
				got = pfx.String()
			}
			if got != want {
				return status.Errorf(codes.InvalidArgument, "reverse.cidr is immutable (the zone's is %q)", want)
			}
		case "reverse.ptr_pattern":
			if cur.Reverse == nil {
				if in.GetReverse().GetPtrPattern() != "" {
					return status.Error(codes.InvalidArgument, "reverse.ptr_pattern: the zone is not a reverse zone")
				}
				continue
			}
			cur.Reverse = proto.CloneOf(cur.Reverse)
			cur.Reverse.PtrPattern = in.GetReverse().GetPtrPattern()
		case "primary_ns":
			cur.PrimaryNs = in.GetPrimaryNs()
		case "admin":
			cur.Admin = in.GetAdmin()
		case "refresh":
			cur.Refresh = in.GetRefresh()
		case "retry":
			cur.Retry = in.GetRetry()
		case "expire":
			cur.Expire = in.GetExpire()
		case "negative_ttl":
			cur.NegativeTtl = in.GetNegativeTtl()
		case "default_ttl":
			cur.DefaultTtl = in.GetDefaultTtl()
		case "nameservers":
			cur.Nameservers = append([]string(nil), in.GetNameservers()...)
		case "enabled":
			cur.Enabled = in.Enabled
		case "labels":
			cur.Labels = in.GetLabels()
		}
	}
	return nil
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// clip shortens untrusted input for error messages.
func clip(s string) string {
	if len(s) > 96 {
		return s[:96] + "…"
	}
	return strings.ToValidUTF8(s, "?")
}
