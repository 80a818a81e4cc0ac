package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	aegisv1 "github.com/photoncloud/photoncloud/api/aegis/v1"
	"github.com/photoncloud/photoncloud/internal/aegis"
	"github.com/photoncloud/photoncloud/internal/chainfire/chainfiretest"
	"github.com/photoncloud/photoncloud/internal/platform"
	"github.com/photoncloud/photoncloud/internal/platform/testcerts"
)

// The Aegis these tests talk to is the real one: aegis.Start on a
// single-member Chainfire in this process, as photon dev runs it. Every
// test starts its own (well under a second), so that no test sees another
// one's objects, login rate limits or audit events.
//
// Each starts with the bootstrap admin and the tenant seed creates: org
// acme (display name Acme) with project web, user alice (OrgAdmin of acme
// through binding alice-admin) in group staff.

const (
	adminPassword = "bootstrap admin password"
	alicePassword = "correct horse battery staple"
	aliceName     = "orgs/acme/users/alice"
)

// testAegis is a running Aegis for the CLI to talk to.
type testAegis struct {
	url      string // HTTP base URL, the issuer
	endpoint string // gRPC host:port
	cacert   string // PEM file of the CA, "" without TLS
	srv      *aegis.Server

	conn       *grpc.ClientConn // to endpoint, for the tests' own calls
	adminToken string           // access token of the bootstrap admin
}

type aegisOptions struct {
	tls bool
}

func testLogger() *slog.Logger {
	if os.Getenv("AEGIS_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// startChainfire runs a single-member Chainfire for the test and returns
// its client address.
func startChainfire(t *testing.T) string {
	t.Helper()
	return chainfiretest.Start(t, nil).ClientAddr()
}

// startAegis runs Chainfire and Aegis for the test and creates the seed
// tenant.
func startAegis(t *testing.T, o aegisOptions) *testAegis {
	t.Helper()
	cfg := aegis.Config{
		DataDir:                t.TempDir(),
		ChainfireEndpoints:     []string{startChainfire(t)},
		BootstrapAdminPassword: adminPassword,
		Logger:                 testLogger(),
	}
	a := &testAegis{}
	scheme := "http"
	if o.tls {
		certs := testcerts.New(t)
		cfg.TLS = platform.TLSFiles{CertFile: certs.ServerCertFile, KeyFile: certs.ServerKeyFile, TrustedCAFile: certs.CAFile}
		a.cacert = certs.CAFile
		scheme = "https"
	}
	cfg.ListenGRPCURLs = []string{scheme + "://127.0.0.1:0"}
	cfg.ListenHTTPURLs = []string{scheme + "://127.0.0.1:0"}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := aegis.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("start aegis: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("close aegis: %v", err)
		}
	})
	a.srv, a.url, a.endpoint = srv, srv.Issuer(), srv.GRPCAddr()

	creds := insecure.NewCredentials()
	if o.tls {
		creds = credentials.NewTLS(a.tlsConfig(t))
	}
	if a.conn, err = grpc.NewClient(a.endpoint, grpc.WithTransportCredentials(creds)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.conn.Close() })
	a.adminToken = a.passwordToken(t, "admin", adminPassword).AccessToken
	a.seed(t)
	return a
}

func (a *testAegis) tlsConfig(t *testing.T) *tls.Config {
	t.Helper()
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if a.cacert != "" {
		pem, err := os.ReadFile(a.cacert)
		if err != nil {
			t.Fatal(err)
		}
		cfg.RootCAs = x509.NewCertPool()
		cfg.RootCAs.AppendCertsFromPEM(pem)
	}
	return cfg
}

// httpClient talks to the HTTP side of a, trusting its CA.
func (a *testAegis) httpClient(t *testing.T) *http.Client {
	t.Helper()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = a.tlsConfig(t)
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// passwordToken logs a user in with the password grant, as any OAuth2
// client would, past the CLI.
func (a *testAegis) passwordToken(t *testing.T, username, password string) *oauth2.Token {
	t.Helper()
	tok, err := a.tryPasswordToken(t, username, password)
	if err != nil {
		t.Fatalf("password login of %s: %v", username, err)
	}
	return tok
}

func (a *testAegis) tryPasswordToken(t *testing.T, username, password string) (*oauth2.Token, error) {
	t.Helper()
	conf := &oauth2.Config{ClientID: publicClientID,
		Endpoint: oauth2.Endpoint{TokenURL: a.url + "/oauth2/token", AuthStyle: oauth2.AuthStyleInParams}}
	ctx, cancel := context.WithTimeout(context.WithValue(context.Background(), oauth2.HTTPClient, a.httpClient(t)), 30*time.Second)
	defer cancel()
	return conf.PasswordCredentialsToken(ctx, username, password)
}

// ctx is a call context of the bootstrap admin.
func (a *testAegis) ctx(t *testing.T) context.Context {
	t.Helper()
	return a.ctxWith(t, a.adminToken)
}

// ctxWith is a call context with accessToken.
func (a *testAegis) ctxWith(t *testing.T, accessToken string) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+accessToken)
}

func (a *testAegis) orgs() aegisv1.OrgServiceClient { return aegisv1.NewOrgServiceClient(a.conn) }

func (a *testAegis) identity() aegisv1.IdentityServiceClient {
	return aegisv1.NewIdentityServiceClient(a.conn)
}

func (a *testAegis) policy() aegisv1.PolicyServiceClient {
	return aegisv1.NewPolicyServiceClient(a.conn)
}

// noErr fails the test on a setup call's error; noErr[T](t, what)(call()).
func noErr[T any](t *testing.T, what string) func(T, error) T {
	t.Helper()
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}
}

// seed creates the tenant every test starts with.
func (a *testAegis) seed(t *testing.T) {
	t.Helper()
	ctx := a.ctx(t)
	noErr[*aegisv1.Org](t, "create org acme")(a.orgs().CreateOrg(ctx, &aegisv1.CreateOrgRequest{OrgId: "acme", Org: &aegisv1.Org{DisplayName: "Acme"}}))
	noErr[*aegisv1.Project](t, "create project web")(a.orgs().CreateProject(ctx, &aegisv1.CreateProjectRequest{Parent: "orgs/acme", ProjectId: "web"}))
	a.createUser(t, "acme", "alice", alicePassword)
	noErr[*aegisv1.Group](t, "create group staff")(a.identity().CreateGroup(ctx, &aegisv1.CreateGroupRequest{Parent: "orgs/acme", GroupId: "staff"}))
	noErr[*aegisv1.GroupMember](t, "add alice to staff")(a.identity().AddGroupMember(ctx, &aegisv1.AddGroupMemberRequest{Group: "orgs/acme/groups/staff", Member: aliceName}))
	a.bind(t, "orgs/acme", "alice-admin", aliceName, "roles/OrgAdmin")
}

// createUser creates user id in org with a password.
func (a *testAegis) createUser(t *testing.T, org, id, password string) {
	t.Helper()
	noErr[*aegisv1.User](t, "create user "+id)(a.identity().CreateUser(a.ctx(t), &aegisv1.CreateUserRequest{
		Parent: "orgs/" + org, UserId: id, User: &aegisv1.User{DisplayName: strings.ToUpper(id[:1]) + id[1:]}, Password: password}))
}

// bind grants role to member with a binding id in parent.
func (a *testAegis) bind(t *testing.T, parent, id, member, role string) {
	t.Helper()
	noErr[*aegisv1.Binding](t, "create binding "+id)(a.policy().CreateBinding(a.ctx(t), &aegisv1.CreateBindingRequest{
		Parent: parent, BindingId: id, Binding: &aegisv1.Binding{Member: member, Role: role}}))
}

// cliEnvFor points the photon commands of this process at a and at a
// fresh config dir, through the environment as a user would.
func cliEnvFor(t *testing.T, a *testAegis) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "photon")
	t.Setenv(envConfigDir, dir)
	t.Setenv(envAegisURL, a.url)
	t.Setenv(envAegisEndpoint, a.endpoint)
	t.Setenv(envCACert, a.cacert)
	t.Setenv(envInsecure, "")
	return dir
}

// photon runs the CLI in-process and returns its exit code and output.
func photon(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = RunIO(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

// login logs alice in and fails the test otherwise.
func login(t *testing.T) {
	t.Helper()
	loginAs(t, "alice@acme", alicePassword)
}

// loginAs logs the CLI in as username (alice@acme, admin) with password.
func loginAs(t *testing.T, username, password string) {
	t.Helper()
	if code, out, errs := photon(t, password+"\n", "login", "--username", username, "--password-stdin"); code != 0 {
		t.Fatalf("login %s: exit %d: %s%s", username, code, out, errs)
	}
}

// readCreds reads the credential file of dir.
func readCreds(t *testing.T, dir string) *credentialsFile {
	t.Helper()
	f, err := (&credStore{dir: dir}).read()
	if err != nil {
		t.Fatal(err)
	}
	return f
}
