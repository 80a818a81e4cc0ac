package server

import (
	"strings"

	flashdnsv1 "github.com/photoncloud/photoncloud/api/flashdns/v1"
	"github.com/photoncloud/photoncloud/internal/platform/filter"
)

// ListZones filters: the AIP-160 subset of the API (zones.proto, after
// aegis.v1's common.proto, parsed by platform/filter) on these fields:
//
//	term   = field ("=" | "!=") value | "labels" ":" key
//	field  = "kind" | "dns_name" | "enabled" | "labels." key
//
// A trailing '*' in a dns_name value compares as a prefix.

// compileZoneFilter compiles a ListZones filter; nil for none.
func compileZoneFilter(text string) (func(*flashdnsv1.Zone) bool, error) {
	return filter.Compile(text, func(t filter.Term) (func(*flashdnsv1.Zone) bool, error) {
		switch t.Op {
		case "=", ":":
			return compileTerm(t)
		case "!=":
			eq, err := compileTerm(t)
			if err != nil {
				return nil, err
			}
			return func(z *flashdnsv1.Zone) bool { return !eq(z) }, nil
		}
		// Zone fields have no order worth comparing (names compare
		// by prefix, kinds and flags are not ranked).
		return nil, filter.Errorf("operator %s on %q is not supported; use =, != or :", t.Op, clip(t.Field))
	})
}

// compileTerm compiles a term as equality (the caller negates for !=).
func compileTerm(t filter.Term) (func(*flashdnsv1.Zone) bool, error) {
	if t.Op == ":" {
		if t.Field != "labels" {
			return nil, filter.Errorf(": applies to labels only (labels:KEY)")
		}
		key := t.Value
		return func(z *flashdnsv1.Zone) bool { _, ok := z.GetLabels()[key]; return ok }, nil
	}
	switch f := t.Field; {
	case f == "kind":
		var kind flashdnsv1.Zone_Kind
		switch strings.ToUpper(t.Value) {
		case "KIND_FORWARD", "FORWARD":
			kind = flashdnsv1.Zone_KIND_FORWARD
		case "KIND_REVERSE", "REVERSE":
			kind = flashdnsv1.Zone_KIND_REVERSE
		default:
			return nil, filter.Errorf("kind is KIND_FORWARD or KIND_REVERSE, not %q", clip(t.Value))
		}
		return func(z *flashdnsv1.Zone) bool { return z.GetKind() == kind }, nil
	case f == "dns_name":
		v := strings.ToLower(t.Value)
		if prefix, ok := strings.CutSuffix(v, "*"); ok {
			return func(z *flashdnsv1.Zone) bool { return strings.HasPrefix(z.GetDnsName(), prefix) }, nil
		}
		if !strings.HasSuffix(v, ".") {
			v += "."
		}
		return func(z *flashdnsv1.Zone) bool { return z.GetDnsName() == v }, nil
	case f == "enabled":
		var want bool
		switch strings.ToLower(t.Value) {
		case "true":
			want = true
		case "false":
		default:
			return nil, filter.Errorf("enabled is true or false, not %q", clip(t.Value))
		}
		return func(z *flashdnsv1.Zone) bool { return z.GetEnabled() == want }, nil
	case strings.HasPrefix(f, "labels."):
		key, val := strings.TrimPrefix(f, "labels."), t.Value
		return func(z *flashdnsv1.Zone) bool {
			v, ok := z.GetLabels()[key]
			return ok && v == val
		}, nil
	}
	return nil, filter.Errorf("unknown field %q (kind, dns_name, enabled, labels)", clip(t.Field))
}
