package server

import (
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	flashdnsv1 "github.com/photoncloud/photoncloud/api/flashdns/v1"
)

// TestFilterShared covers what ListZones filters gained or must refuse
// now that platform/filter parses them (TestFilter covers the fields).
func TestFilterShared(t *testing.T) {
	z := &flashdnsv1.Zone{DnsName: "example.com.", Kind: flashdnsv1.Zone_KIND_FORWARD,
		Labels: map[string]string{"team-a": "dns", "*": "star"}}
	for filter, want := range map[string]bool{
		`labels.team-a = dns`:               true,
		`labels.team-a != dns`:              false,
		"kind = forward AND\nlabels:team-a": true,
		`labels:*`:                          true, // the key "*", as before
		`labels:"team-b"`:                   false,
		`dns_name = "EXAMPLE.COM"`:          true,
	} {
		m, err := compileZoneFilter(filter)
		if err != nil {
			t.Errorf("%q: %v", filter, err)
			continue
		}
		if got := m(z); got != want {
			t.Errorf("%q: %v, want %v", filter, got, want)
		}
	}
	for filter, msg := range map[string]string{
		`kind < forward`:       `filter: operator < on "kind" is not supported; use =, != or :`,
		`dns_name >= "a"`:      `filter: operator >= on "dns_name" is not supported; use =, != or :`,
		`kind ~ forward`:       `filter: expected an operator after "kind"`,
		`NOT kind = forward`:   `filter: NOT is not supported; only AND`,
		`labels != x`:          `filter: unknown field "labels" (kind, dns_name, enabled, labels)`,
		`kind = forward AND  `: `filter: AND at the end`,
	} {
		_, err := compileZoneFilter(filter)
		if st := status.Convert(err); st.Code() != codes.InvalidArgument || st.Message() != msg {
			t.Errorf("%q: %v, want INVALID_ARGUMENT %q", filter, err, msg)
		}
	}
	if m, err := compileZoneFilter(" \t "); m != nil || err != nil {
		t.Errorf("blank filter: %v", err)
	}
}
