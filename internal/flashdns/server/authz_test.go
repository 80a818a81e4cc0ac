package server

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	aegisv1 "github.com/photoncloud/photoncloud/api/aegis/v1"
	flashdnsv1 "github.com/photoncloud/photoncloud/api/flashdns/v1"
	"github.com/photoncloud/photoncloud/client/aegis"
	aegissrv "github.com/photoncloud/photoncloud/internal/aegis"
)

// bearer puts an access token on every call (plaintext is fine on
// loopback in tests).
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}
func (bearer) RequireTransportSecurity() bool { return false }

const adminPassword = "bootstrap admin password"

type fixture struct {
	aegis *aegissrv.Server
	admin *grpc.ClientConn // to Aegis, as the bootstrap admin
	api   string           // FlashDNS API address
}

func login(t *testing.T, f *fixture, user, password string) string {
	t.Helper()
	conf := &oauth2.Config{ClientID: "photon-cli", Endpoint: oauth2.Endpoint{TokenURL: f.aegis.Issuer() + "/oauth2/token", AuthStyle: oauth2.AuthStyleInParams}}
	hc := &http.Client{Timeout: 30 * time.Second, Transport: http.DefaultTransport.(*http.Transport).Clone()}
	t.Cleanup(hc.CloseIdleConnections)
	ctx, cancel := context.WithTimeout(context.WithValue(context.Background(), oauth2.HTTPClient, hc), 30*time.Second)
	defer cancel()
	tok, err := conf.PasswordCredentialsToken(ctx, user, password)
	if err != nil {
		t.Fatalf("login %s: %v", user, err)
	}
	return tok.AccessToken
}

// startFixture runs Chainfire, Aegis and the FlashDNS API with the
// client/aegis interceptors, as package flashdns wires them.
func startFixture(t *testing.T) *fixture {
	t.Helper()
	cf := startChainfire(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, err := aegissrv.Start(ctx, aegissrv.Config{
		DataDir: t.TempDir(), ChainfireEndpoints: []string{cf}, BootstrapAdminPassword: adminPassword,
		ListenGRPCURLs: []string{"http://127.0.0.1:0"}, ListenHTTPURLs: []string{"http://127.0.0.1:0"}, Logger: testLogger(),
	})
	if err != nil {
		t.Fatalf("start aegis: %v", err)
	}
	t.Cleanup(func() {
		if err := a.Close(); err != nil {
			t.Errorf("close aegis: %v", err)
		}
	})
	f := &fixture{aegis: a}
	f.admin = dial(t, a.GRPCAddr(), grpc.WithPerRPCCredentials(bearer(login(t, f, "admin", adminPassword))))
	authzClient := aegisv1.NewAuthzServiceClient(f.admin)

	st := openStore(t, cf)
	authz, err := aegis.New(aegis.Config{
		Issuer: a.Issuer(), JWKSURL: a.Issuer() + "/.well-known/jwks.json", Authz: authzClient,
		Rules: Rules(st), DenialCode: DenialCode, Logger: testLogger(),
		// Decisions must follow the test's binding changes at once.
		DecisionCacheSize: -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = authz.Close() })
	api, err := New(Config{Store: st, Authorizer: authz, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	f.api = serve(t, api, grpc.ChainUnaryInterceptor(authz.UnaryServerInterceptor()), grpc.ChainStreamInterceptor(authz.StreamServerInterceptor()))
	return f
}

func (f *fixture) seed(t *testing.T) {
	t.Helper()
	ctx := ctxT(t)
	orgs, ids, pol := aegisv1.NewOrgServiceClient(f.admin), aegisv1.NewIdentityServiceClient(f.admin), aegisv1.NewPolicyServiceClient(f.admin)
	for _, o := range []string{"acme", "globex"} {
		must[*aegisv1.Org](t)(orgs.CreateOrg(ctx, &aegisv1.CreateOrgRequest{OrgId: o}))
	}
	must[*aegisv1.Project](t)(orgs.CreateProject(ctx, &aegisv1.CreateProjectRequest{Parent: "orgs/acme", ProjectId: "web"}))
	must[*aegisv1.Project](t)(orgs.CreateProject(ctx, &aegisv1.CreateProjectRequest{Parent: "orgs/globex", ProjectId: "shop"}))
	users := []struct{ org, id, role, scope, cond string }{
		{"acme", "alice", "roles/OrgAdmin", "orgs/acme", ""},
		{"acme", "bob", "roles/flashdns.viewer", web, ""},
		{"acme", "carol", "roles/flashdns.editor", web, ""},
		{"acme", "erin", "", "", ""},
		{"acme", "frank", "roles/flashdns.admin", web, ""}, // scoped to the zone below
		{"acme", "gina", "roles/flashdns.admin", web, `resource.labels[?"env"].orValue("") == "dev"`},
		{"globex", "dave", "roles/OrgAdmin", "orgs/globex", ""},
	}
	for _, u := range users {
		must[*aegisv1.User](t)(ids.CreateUser(ctx, &aegisv1.CreateUserRequest{Parent: "orgs/" + u.org, UserId: u.id, Password: u.id + " password 123"}))
		if u.role == "" {
			continue
		}
		b := &aegisv1.Binding{Member: "orgs/" + u.org + "/users/" + u.id, Role: u.role}
		if u.id == "frank" {
			b.Scope = zoneEx
		}
		if u.cond != "" {
			b.Condition = &aegisv1.Condition{Expression: u.cond}
		}
		must[*aegisv1.Binding](t)(pol.CreateBinding(ctx, &aegisv1.CreateBindingRequest{Parent: u.scope, BindingId: u.id + "-b", Binding: b}))
	}
}

func (f *fixture) as(t *testing.T, user string) clients {
	t.Helper()
	if user == "" {
		return clientsOf(dial(t, f.api))
	}
	org := "acme"
	if user == "dave" {
		org = "globex"
	}
	return clientsOf(dial(t, f.api, grpc.WithPerRPCCredentials(bearer(login(t, f, user+"@"+org, user+" password 123")))))
}

// TestAuthorizationThroughAegis runs every method as personas with
// different grants against the real Aegis: what each may do, NOT_FOUND for
// what it may not see (another tenant's zone included), PERMISSION_DENIED
// only for what it can see.
func TestAuthorizationThroughAegis(t *testing.T) {
	f := startFixture(t)
	f.seed(t)
	alice := f.as(t, "alice")
	ctx := ctxT(t)
	must[*flashdnsv1.Zone](t)(alice.zones.CreateZone(ctx, &flashdnsv1.CreateZoneRequest{Parent: web, Zone: &flashdnsv1.Zone{DnsName: "example.com", Labels: map[string]string{"env": "prod"}}}))
	must[*flashdnsv1.Zone](t)(alice.zones.CreateZone(ctx, &flashdnsv1.CreateZoneRequest{Parent: web, Zone: &flashdnsv1.Zone{DnsName: "dev.test", Labels: map[string]string{"env": "dev"}}}))
	dave := f.as(t, "dave")
	must[*flashdnsv1.Zone](t)(dave.zones.CreateZone(ctx, &flashdnsv1.CreateZoneRequest{Parent: "orgs/globex/projects/shop", Zone: &flashdnsv1.Zone{DnsName: "globex.org"}}))

	const globexZone = "orgs/globex/projects/shop/zones/globex.org"
	const devZone = web + "/zones/dev.test"
	n := 0
	change := func(zone string) func(c clients) error {
		return func(c clients) error {
			n++
			_, err := c.records.ChangeRecordSets(ctx, &flashdnsv1.ChangeRecordSetsRequest{Zone: zone, Changes: []*flashdnsv1.Change{{
				Action: flashdnsv1.Change_ACTION_UPSERT, RecordSet: &flashdnsv1.RecordSet{Name: fmt.Sprintf("h%d", n), Type: "A", Records: []string{"192.0.2.1"}}}}})
			return err
		}
	}
	get := func(zone string) func(c clients) error {
		return func(c clients) error {
			_, err := c.zones.GetZone(ctx, &flashdnsv1.GetZoneRequest{Name: zone})
			return err
		}
	}
	methods := map[string]func(c clients) error{
		"CreateZone": func(c clients) error {
			n++
			_, err := c.zones.CreateZone(ctx, &flashdnsv1.CreateZoneRequest{Parent: web, Zone: &flashdnsv1.Zone{DnsName: fmt.Sprintf("new%d.test", n)}})
			return err
		},
		"ImportZone": func(c clients) error {
			n++
			_, err := c.zones.ImportZone(ctx, &flashdnsv1.ImportZoneRequest{Parent: web, DnsName: fmt.Sprintf("imp%d.test", n),
				ZoneFile: "@ 300 IN SOA ns1.example.net. h.example.net. 1 2 3 4 5\n@ 300 IN NS ns1.example.net.\n"})
			return err
		},
		"ListZones": func(c clients) error {
			_, err := c.zones.ListZones(ctx, &flashdnsv1.ListZonesRequest{Parent: web})
			return err
		},
		"GetZone": get(zoneEx),
		"UpdateZone": func(c clients) error {
			_, err := c.zones.UpdateZone(ctx, &flashdnsv1.UpdateZoneRequest{Zone: &flashdnsv1.Zone{Name: zoneEx, Retry: 700}})
			return err
		},
		"ExportZone": func(c clients) error {
			_, err := c.zones.ExportZone(ctx, &flashdnsv1.ExportZoneRequest{Name: zoneEx})
			return err
		},
		"ListRecordSets": func(c clients) error {
			_, err := c.records.ListRecordSets(ctx, &flashdnsv1.ListRecordSetsRequest{Zone: zoneEx})
			return err
		},
		"GetRecordSet": func(c clients) error {
			_, err := c.records.GetRecordSet(ctx, &flashdnsv1.GetRecordSetRequest{Zone: zoneEx, Name: "@", Type: "NS"})
			return err
		},
		"ChangeRecordSets": change(zoneEx),
		"DeleteZone": func(c clients) error {
			// A missing record set makes the delete fail after
			// authorization: FailedPrecondition means "allowed".
			_, err := c.zones.DeleteZone(ctx, &flashdnsv1.DeleteZoneRequest{Name: zoneEx, Etag: "1"})
			return err
		},
		"GetGlobexZone":       get(globexZone),
		"ChangeGlobexZone":    change(globexZone),
		"GetGlobexAsAcmeName": get(web + "/zones/globex.org"),
		"GetDevZone":          get(devZone),
		"ChangeDevZone":       change(devZone),
	}
	const (
		OK = codes.OK
		NF = codes.NotFound
		PD = codes.PermissionDenied
		UA = codes.Unauthenticated
		AB = codes.Aborted // DeleteZone allowed, stopped by the stale etag
	)
	want := map[string]map[string]codes.Code{
		"alice": {"CreateZone": OK, "ImportZone": OK, "ListZones": OK, "GetZone": OK, "UpdateZone": OK, "ExportZone": OK,
			"ListRecordSets": OK, "GetRecordSet": OK, "ChangeRecordSets": OK, "DeleteZone": AB,
			"GetGlobexZone": NF, "ChangeGlobexZone": NF, "GetGlobexAsAcmeName": NF, "GetDevZone": OK, "ChangeDevZone": OK},
		"bob": {"CreateZone": PD, "ImportZone": PD, "ListZones": OK, "GetZone": OK, "UpdateZone": PD, "ExportZone": OK,
			"ListRecordSets": OK, "GetRecordSet": OK, "ChangeRecordSets": PD, "DeleteZone": PD,
			"GetGlobexZone": NF, "ChangeGlobexZone": NF, "GetGlobexAsAcmeName": NF, "GetDevZone": OK, "ChangeDevZone": PD},
		"carol": {"CreateZone": PD, "ImportZone": PD, "ListZones": OK, "GetZone": OK, "UpdateZone": PD, "ExportZone": OK,
			"ListRecordSets": OK, "GetRecordSet": OK, "ChangeRecordSets": OK, "DeleteZone": PD,
			"GetGlobexZone": NF, "ChangeGlobexZone": NF, "GetGlobexAsAcmeName": NF, "GetDevZone": OK, "ChangeDevZone": OK},
		"erin": {"CreateZone": PD, "ImportZone": PD, "ListZones": PD, "GetZone": NF, "UpdateZone": NF, "ExportZone": NF,
			"ListRecordSets": NF, "GetRecordSet": NF, "ChangeRecordSets": NF, "DeleteZone": NF,
			"GetGlobexZone": NF, "ChangeGlobexZone": NF, "GetGlobexAsAcmeName": NF, "GetDevZone": NF, "ChangeDevZone": NF},
		"frank": {"CreateZone": PD, "ImportZone": PD, "ListZones": PD, "GetZone": OK, "UpdateZone": OK, "ExportZone": OK,
			"ListRecordSets": OK, "GetRecordSet": OK, "ChangeRecordSets": OK, "DeleteZone": AB,
			"GetGlobexZone": NF, "ChangeGlobexZone": NF, "GetGlobexAsAcmeName": NF, "GetDevZone": NF, "ChangeDevZone": NF},
		"gina": {"GetZone": NF, "ChangeRecordSets": NF, "GetDevZone": OK, "ChangeDevZone": OK, "GetGlobexZone": NF},
		"dave": {"CreateZone": NF, "ImportZone": NF, "ListZones": NF, "GetZone": NF, "UpdateZone": NF, "ExportZone": NF,
			"ListRecordSets": NF, "GetRecordSet": NF, "ChangeRecordSets": NF, "DeleteZone": NF,
			"GetGlobexZone": OK, "ChangeGlobexZone": OK, "GetGlobexAsAcmeName": NF},
		"": {"CreateZone": UA, "ListZones": UA, "GetZone": UA, "ChangeRecordSets": UA, "GetGlobexZone": UA},
	}
	for user, calls := range want {
		c := f.as(t, user)
		for m, code := range calls {
			err := methods[m](c)
			if got := codes.Code(0); err != nil {
				got = statusCode(err)
				if got != code {
					t.Errorf("%s %s: %v (%v), want %v", user, m, got, err, code)
				}
			} else if code != OK {
				t.Errorf("%s %s: allowed, want %v", user, m, code)
			}
		}
	}

	// The zone never changed hands: dave's attempts left acme's zone as
	// it was, apart from the allowed writers' changes.
	z := must[*flashdnsv1.Zone](t)(alice.zones.GetZone(ctx, &flashdnsv1.GetZoneRequest{Name: zoneEx}))
	if z.GetName() != zoneEx || !proto.Equal(&flashdnsv1.Zone{Labels: z.GetLabels()}, &flashdnsv1.Zone{Labels: map[string]string{"env": "prod"}}) {
		t.Fatalf("zone: %v", z)
	}
}

func statusCode(err error) codes.Code { return codesOf(err) }
