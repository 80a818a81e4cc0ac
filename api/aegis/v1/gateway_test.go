package aegisv1_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	aegisv1 "github.com/photoncloud/photoncloud/api/aegis/v1"
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

// newGateway serves every aegis.v1 service over an in-memory connection and
// returns a gateway mux in front of it.
func newGateway(t *testing.T, rec *recorder) http.Handler {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer(grpc.UnaryInterceptor(rec.intercept))
	aegisv1.RegisterAuthnServiceServer(srv, aegisv1.UnimplementedAuthnServiceServer{})
	aegisv1.RegisterAuthzServiceServer(srv, aegisv1.UnimplementedAuthzServiceServer{})
	aegisv1.RegisterOrgServiceServer(srv, aegisv1.UnimplementedOrgServiceServer{})
	aegisv1.RegisterIdentityServiceServer(srv, aegisv1.UnimplementedIdentityServiceServer{})
	aegisv1.RegisterPolicyServiceServer(srv, aegisv1.UnimplementedPolicyServiceServer{})
	aegisv1.RegisterAuditServiceServer(srv, aegisv1.UnimplementedAuditServiceServer{})
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

	mux := runtime.NewServeMux()
	ctx := context.Background()
	for _, register := range []func(context.Context, *runtime.ServeMux, *grpc.ClientConn) error{
		aegisv1.RegisterAuthnServiceHandler,
		aegisv1.RegisterAuthzServiceHandler,
		aegisv1.RegisterOrgServiceHandler,
		aegisv1.RegisterIdentityServiceHandler,
		aegisv1.RegisterPolicyServiceHandler,
		aegisv1.RegisterAuditServiceHandler,
	} {
		if err := register(ctx, mux, conn); err != nil {
			t.Fatalf("register gateway handler: %v", err)
		}
	}
	return mux
}

// TestGatewayRoutes checks a representative route of every kind in
// aegis_http.yaml: resource names in the path, ids and etags in the query,
// the resource as body, PATCH bodies turned into update masks, custom
// ":verb" methods, and the literal `system` container.
func TestGatewayRoutes(t *testing.T) {
	rec := &recorder{}
	gw := newGateway(t, rec)

	tests := []struct {
		httpMethod, path, body string
		wantMethod             string
		want                   proto.Message
	}{
		{
			"POST", "/v1/authn:login", `{"username":"admin","password":"pw","org":"orgs/system"}`,
			"/aegis.v1.AuthnService/Login",
			&aegisv1.LoginRequest{Username: "admin", Password: "pw", Org: "orgs/system"},
		},
		{
			"GET", "/v1/jwks", "",
			"/aegis.v1.AuthnService/GetJWKS",
			&aegisv1.GetJWKSRequest{},
		},
		{
			"POST", "/v1/authz:authorize",
			`{"subject":{"principal":"orgs/acme/users/alice"},"permission":"plasmavmc:vms:create","resource":"orgs/acme/projects/web","sourceIp":"10.0.0.1"}`,
			"/aegis.v1.AuthzService/Authorize",
			&aegisv1.AuthorizeRequest{
				Subject:    &aegisv1.Subject{Identity: &aegisv1.Subject_Principal{Principal: "orgs/acme/users/alice"}},
				Permission: "plasmavmc:vms:create", Resource: "orgs/acme/projects/web", SourceIp: "10.0.0.1",
			},
		},
		{
			"POST", "/v1/orgs?orgId=acme", `{"displayName":"Acme"}`,
			"/aegis.v1.OrgService/CreateOrg",
			&aegisv1.CreateOrgRequest{OrgId: "acme", Org: &aegisv1.Org{DisplayName: "Acme"}},
		},
		{
			"PATCH", "/v1/orgs/acme", `{"displayName":"Acme Inc","etag":"e1"}`,
			"/aegis.v1.OrgService/UpdateOrg",
			&aegisv1.UpdateOrgRequest{
				Org:        &aegisv1.Org{Name: "orgs/acme", DisplayName: "Acme Inc", Etag: "e1"},
				UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"display_name", "etag"}},
			},
		},
		{
			"DELETE", "/v1/orgs/acme/projects/web?etag=e2&force=true", "",
			"/aegis.v1.OrgService/DeleteProject",
			&aegisv1.DeleteProjectRequest{Name: "orgs/acme/projects/web", Etag: "e2", Force: true},
		},
		{
			"POST", "/v1/orgs/acme/users", `{"userId":"alice","user":{"displayName":"Alice"},"password":"s3cret"}`,
			"/aegis.v1.IdentityService/CreateUser",
			&aegisv1.CreateUserRequest{Parent: "orgs/acme", UserId: "alice", User: &aegisv1.User{DisplayName: "Alice"}, Password: "s3cret"},
		},
		{
			"POST", "/v1/orgs/acme/users/alice:setPassword", `{"newPassword":"n","currentPassword":"c"}`,
			"/aegis.v1.IdentityService/SetUserPassword",
			&aegisv1.SetUserPasswordRequest{Name: "orgs/acme/users/alice", NewPassword: "n", CurrentPassword: "c"},
		},
		{
			"POST", "/v1/orgs/acme/groups/devs:addMember", `{"member":"orgs/acme/users/alice"}`,
			"/aegis.v1.IdentityService/AddGroupMember",
			&aegisv1.AddGroupMemberRequest{Group: "orgs/acme/groups/devs", Member: "orgs/acme/users/alice"},
		},
		{
			"GET", "/v1/orgs/acme/groups/devs/members?pageSize=10", "",
			"/aegis.v1.IdentityService/ListGroupMembers",
			&aegisv1.ListGroupMembersRequest{Group: "orgs/acme/groups/devs", PageSize: 10},
		},
		{
			"POST", "/v1/orgs/acme/projects/web/serviceAccounts/ci/keys", `{"description":"deploy"}`,
			"/aegis.v1.IdentityService/CreateServiceAccountKey",
			&aegisv1.CreateServiceAccountKeyRequest{
				Parent: "orgs/acme/projects/web/serviceAccounts/ci",
				Key:    &aegisv1.ServiceAccountKey{Description: "deploy"},
			},
		},
		{
			"GET", "/v1/orgs/acme/serviceAccounts/ci", "",
			"/aegis.v1.IdentityService/GetServiceAccount",
			&aegisv1.GetServiceAccountRequest{Name: "orgs/acme/serviceAccounts/ci"},
		},
		{
			"GET", "/v1/roles", "",
			"/aegis.v1.PolicyService/ListRoles",
			&aegisv1.ListRolesRequest{},
		},
		{
			"GET", "/v1/roles/flashdns.editor", "",
			"/aegis.v1.PolicyService/GetRole",
			&aegisv1.GetRoleRequest{Name: "roles/flashdns.editor"},
		},
		{
			"GET", "/v1/orgs/acme/roles/auditor", "",
			"/aegis.v1.PolicyService/GetRole",
			&aegisv1.GetRoleRequest{Name: "orgs/acme/roles/auditor"},
		},
		{
			"POST", "/v1/system/bindings?bindingId=ops", `{"member":"orgs/system/groups/ops","role":"roles/SystemAdmin"}`,
			"/aegis.v1.PolicyService/CreateBinding",
			&aegisv1.CreateBindingRequest{
				Parent: "system", BindingId: "ops",
				Binding: &aegisv1.Binding{Member: "orgs/system/groups/ops", Role: "roles/SystemAdmin"},
			},
		},
		{
			"GET", "/v1/orgs/acme/projects/web/bindings?filter=effect%20%3D%20EFFECT_DENY", "",
			"/aegis.v1.PolicyService/ListBindings",
			&aegisv1.ListBindingsRequest{Parent: "orgs/acme/projects/web", Filter: "effect = EFFECT_DENY"},
		},
		{
			"DELETE", "/v1/orgs/acme/bindings/b1?etag=e3", "",
			"/aegis.v1.PolicyService/DeleteBinding",
			&aegisv1.DeleteBindingRequest{Name: "orgs/acme/bindings/b1", Etag: "e3"},
		},
		{
			"GET", "/v1/system/auditEvents?startTime=2026-11-27T00:00:00Z&principal=orgs/acme/users/alice", "",
			"/aegis.v1.AuditService/ListAuditEvents",
			&aegisv1.ListAuditEventsRequest{
				Parent: "system", Principal: "orgs/acme/users/alice",
				StartTime: timestamppb.New(mustTime(t, "2026-11-27T00:00:00Z")),
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

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	ts, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return ts
}
