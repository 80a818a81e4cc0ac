package flashdnsv1_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	flashdnsv1 "github.com/photoncloud/photoncloud/api/flashdns/v1"
)

// recorder is a gRPC unary interceptor that records the request of every
// call and answers Unimplemented without calling the (unimplemented)
// servers: the test checks only how the gateway maps HTTP to gRPC.
type recorder struct {
	method string
	req    proto.Message
}

func (r *recorder) intercept(_ context.Context, req any, info *grpc.UnaryServerInfo, _ grpc.UnaryHandler) (any, error) {
	r.method = info.FullMethod
	r.req = req.(proto.Message)
	return nil, status.Error(codes.Unimplemented, "recorded")
}

// newGateway serves both flashdns.v1 services over an in-memory connection
// and returns a gateway mux in front of it. The mux unescapes path
// parameters with UnescapingModeAllExceptSlash, as the FlashDNS server's
// must: only then does an owner name with an escaped slash (RFC 2317,
// `0%2F26.2.0.192.in-addr.arpa.`) reach GetRecordSet as one name instead of
// failing to route.
func newGateway(t *testing.T, rec *recorder) http.Handler {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer(grpc.UnaryInterceptor(rec.intercept))
	flashdnsv1.RegisterZoneServiceServer(srv, flashdnsv1.UnimplementedZoneServiceServer{})
	flashdnsv1.RegisterRecordSetServiceServer(srv, flashdnsv1.UnimplementedRecordSetServiceServer{})
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	t.Cleanup(func() {
		srv.Stop()
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	})

	conn, err := grpc.NewClient("passthrough:///bufconn",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })

	mux := runtime.NewServeMux(runtime.WithUnescapingMode(runtime.UnescapingModeAllExceptSlash))
	ctx := context.Background()
	for _, register := range []func(context.Context, *runtime.ServeMux, *grpc.ClientConn) error{
		flashdnsv1.RegisterZoneServiceHandler,
		flashdnsv1.RegisterRecordSetServiceHandler,
	} {
		if err := register(ctx, mux, conn); err != nil {
			t.Fatalf("register gateway handler: %v", err)
		}
	}
	return mux
}

// TestGatewayRoutes checks every route of flashdns_http.yaml: resource
// names with dotted zone ids in the path, the zone as body, PATCH bodies
// turned into update masks (nested and optional fields included), query
// parameters, custom ":verb" methods on a zone and on the zone collection,
// record sets addressed by owner name and type, and enums in JSON bodies.
func TestGatewayRoutes(t *testing.T) {
	rec := &recorder{}
	gw := newGateway(t, rec)

	tests := []struct {
		httpMethod, path, body string
		wantMethod             string
		want                   proto.Message
	}{
		{
			"POST", "/v1/orgs/acme/projects/web/zones",
			`{"dnsName":"example.com.","admin":"hostmaster@example.com","nameservers":["ns1.example.net.","ns2.example.net."],"defaultTtl":300,"labels":{"env":"prod"}}`,
			"/flashdns.v1.ZoneService/CreateZone",
			&flashdnsv1.CreateZoneRequest{
				Parent: "orgs/acme/projects/web",
				Zone: &flashdnsv1.Zone{
					DnsName: "example.com.", Admin: "hostmaster@example.com",
					Nameservers: []string{"ns1.example.net.", "ns2.example.net."},
					DefaultTtl:  300, Labels: map[string]string{"env": "prod"},
				},
			},
		},
		{
			"POST", "/v1/orgs/acme/projects/web/zones",
			`{"reverse":{"cidr":"192.0.2.0/24","ptrPattern":"{4}-{3}-{2}-{1}.hosts.example.com."},"enabled":false}`,
			"/flashdns.v1.ZoneService/CreateZone",
			&flashdnsv1.CreateZoneRequest{
				Parent: "orgs/acme/projects/web",
				Zone: &flashdnsv1.Zone{
					Reverse: &flashdnsv1.ReverseConfig{Cidr: "192.0.2.0/24", PtrPattern: "{4}-{3}-{2}-{1}.hosts.example.com."},
					Enabled: proto.Bool(false),
				},
			},
		},
		{
			"GET", "/v1/orgs/acme/projects/web/zones/example.com", "",
			"/flashdns.v1.ZoneService/GetZone",
			&flashdnsv1.GetZoneRequest{Name: "orgs/acme/projects/web/zones/example.com"},
		},
		{
			"GET", "/v1/orgs/acme/projects/web/zones/8.b.d.0.1.0.0.2.ip6.arpa", "",
			"/flashdns.v1.ZoneService/GetZone",
			&flashdnsv1.GetZoneRequest{Name: "orgs/acme/projects/web/zones/8.b.d.0.1.0.0.2.ip6.arpa"},
		},
		{
			"GET", "/v1/orgs/acme/projects/web/zones?filter=kind%20%3D%20reverse&pageSize=10&pageToken=t1", "",
			"/flashdns.v1.ZoneService/ListZones",
			&flashdnsv1.ListZonesRequest{Parent: "orgs/acme/projects/web", Filter: "kind = reverse", PageSize: 10, PageToken: "t1"},
		},
		{
			"PATCH", "/v1/orgs/acme/projects/web/zones/2.0.192.in-addr.arpa",
			`{"enabled":false,"reverse":{"ptrPattern":"ip-{ip}.example.com."},"etag":"e1"}`,
			"/flashdns.v1.ZoneService/UpdateZone",
			&flashdnsv1.UpdateZoneRequest{
				Zone: &flashdnsv1.Zone{
					Name:    "orgs/acme/projects/web/zones/2.0.192.in-addr.arpa",
					Enabled: proto.Bool(false),
					Reverse: &flashdnsv1.ReverseConfig{PtrPattern: "ip-{ip}.example.com."},
					Etag:    "e1",
				},
				UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"enabled", "etag", "reverse.ptr_pattern"}},
			},
		},
		{
			"PATCH", "/v1/orgs/acme/projects/web/zones/example.com",
			`{"refresh":7200,"nameservers":["ns1.example.net."],"labels":{"env":"dev"}}`,
			"/flashdns.v1.ZoneService/UpdateZone",
			&flashdnsv1.UpdateZoneRequest{
				Zone: &flashdnsv1.Zone{
					Name:        "orgs/acme/projects/web/zones/example.com",
					Refresh:     7200,
					Nameservers: []string{"ns1.example.net."},
					Labels:      map[string]string{"env": "dev"},
				},
				UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"labels", "nameservers", "refresh"}},
			},
		},
		{
			"DELETE", "/v1/orgs/acme/projects/web/zones/example.com?etag=e2&force=true", "",
			"/flashdns.v1.ZoneService/DeleteZone",
			&flashdnsv1.DeleteZoneRequest{Name: "orgs/acme/projects/web/zones/example.com", Etag: "e2", Force: true},
		},
		{
			"POST", "/v1/orgs/acme/projects/web/zones:import",
			`{"dnsName":"example.com","zoneFile":"$ORIGIN example.com.\n@ 3600 IN SOA ns1 hostmaster 1 3600 600 1209600 300\n","replaceExisting":true,"etag":"e3"}`,
			"/flashdns.v1.ZoneService/ImportZone",
			&flashdnsv1.ImportZoneRequest{
				Parent: "orgs/acme/projects/web", DnsName: "example.com",
				ZoneFile:        "$ORIGIN example.com.\n@ 3600 IN SOA ns1 hostmaster 1 3600 600 1209600 300\n",
				ReplaceExisting: true, Etag: "e3",
			},
		},
		{
			"GET", "/v1/orgs/acme/projects/web/zones/example.com:export", "",
			"/flashdns.v1.ZoneService/ExportZone",
			&flashdnsv1.ExportZoneRequest{Name: "orgs/acme/projects/web/zones/example.com"},
		},
		{
			"GET", "/v1/orgs/acme/projects/web/zones/example.com/recordSets?namePrefix=www&type=A&pageSize=100", "",
			"/flashdns.v1.RecordSetService/ListRecordSets",
			&flashdnsv1.ListRecordSetsRequest{Zone: "orgs/acme/projects/web/zones/example.com", NamePrefix: "www", Type: "A", PageSize: 100},
		},
		{
			"GET", "/v1/orgs/acme/projects/web/zones/example.com/recordSets/www.example.com./AAAA", "",
			"/flashdns.v1.RecordSetService/GetRecordSet",
			&flashdnsv1.GetRecordSetRequest{Zone: "orgs/acme/projects/web/zones/example.com", Name: "www.example.com.", Type: "AAAA"},
		},
		{
			"GET", "/v1/orgs/acme/projects/web/zones/example.com/recordSets/@/MX", "",
			"/flashdns.v1.RecordSetService/GetRecordSet",
			&flashdnsv1.GetRecordSetRequest{Zone: "orgs/acme/projects/web/zones/example.com", Name: "@", Type: "MX"},
		},
		{
			"GET", "/v1/orgs/acme/projects/web/zones/example.com/recordSets/*.example.com./CNAME", "",
			"/flashdns.v1.RecordSetService/GetRecordSet",
			&flashdnsv1.GetRecordSetRequest{Zone: "orgs/acme/projects/web/zones/example.com", Name: "*.example.com.", Type: "CNAME"},
		},
		{
			"GET", "/v1/orgs/acme/projects/web/zones/2.0.192.in-addr.arpa/recordSets/0%2F26.2.0.192.in-addr.arpa./NS", "",
			"/flashdns.v1.RecordSetService/GetRecordSet",
			&flashdnsv1.GetRecordSetRequest{Zone: "orgs/acme/projects/web/zones/2.0.192.in-addr.arpa", Name: "0/26.2.0.192.in-addr.arpa.", Type: "NS"},
		},
		{
			"POST", "/v1/orgs/acme/projects/web/zones/example.com:changeRecordSets",
			`{"changes":[` +
				`{"action":"ACTION_UPSERT","recordSet":{"name":"www","type":"A","ttl":300,"records":["192.0.2.1","192.0.2.2"]}},` +
				`{"action":"ACTION_CREATE","recordSet":{"name":"@","type":"TXT","records":["\"v=spf1 -all\""]}},` +
				`{"action":"ACTION_DELETE","recordSet":{"name":"old.example.com.","type":"CNAME"}}` +
				`],"etag":"e4"}`,
			"/flashdns.v1.RecordSetService/ChangeRecordSets",
			&flashdnsv1.ChangeRecordSetsRequest{
				Zone: "orgs/acme/projects/web/zones/example.com",
				Changes: []*flashdnsv1.Change{
					{Action: flashdnsv1.Change_ACTION_UPSERT, RecordSet: &flashdnsv1.RecordSet{Name: "www", Type: "A", Ttl: 300, Records: []string{"192.0.2.1", "192.0.2.2"}}},
					{Action: flashdnsv1.Change_ACTION_CREATE, RecordSet: &flashdnsv1.RecordSet{Name: "@", Type: "TXT", Records: []string{`"v=spf1 -all"`}}},
					{Action: flashdnsv1.Change_ACTION_DELETE, RecordSet: &flashdnsv1.RecordSet{Name: "old.example.com.", Type: "CNAME"}},
				},
				Etag: "e4",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.httpMethod+" "+tt.path, func(t *testing.T) {
			rec.method, rec.req = "", nil
			req := httptest.NewRequest(tt.httpMethod, tt.path, strings.NewReader(tt.body))
			req.Header.Set("Content-Type", "application/json")
			w := httptest.NewRecorder()
			gw.ServeHTTP(w, req)
			if w.Code != http.StatusNotImplemented {
				t.Fatalf("HTTP status %d, want 501 from the recorder; body: %s", w.Code, w.Body.String())
			}
			if rec.method != tt.wantMethod {
				t.Fatalf("routed to %q, want %q", rec.method, tt.wantMethod)
			}
			if !proto.Equal(rec.req, tt.want) {
				t.Fatalf("request\n%s\nwant\n%s", prototext.Format(rec.req), prototext.Format(tt.want))
			}
		})
	}
}
