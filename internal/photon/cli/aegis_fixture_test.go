package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	aegisv1 "github.com/photoncloud/photoncloud/api/aegis/v1"
	"github.com/photoncloud/photoncloud/internal/aegis/authn"
	"github.com/photoncloud/photoncloud/internal/aegis/password"
	"github.com/photoncloud/photoncloud/internal/aegis/token"
)

// The Aegis these tests log in to is assembled from the real authn
// service (OAuth2 token endpoint over HTTP, AuthnService over gRPC) on
// in-memory stores. The admin services, which the Aegis server package
// will provide, are test doubles here (fakeOrgs and friends below) behind
// an interceptor that verifies the bearer token with the real verifier.

const (
	alicePassword = "correct horse battery staple"
	aliceName     = "orgs/acme/users/alice"
)

// memIdentities implements authn's store interfaces in memory.
type memIdentities struct {
	mu    sync.Mutex
	users map[string]*authn.User // "org/username"
	revs  *token.RevocationList
}

func (m *memIdentities) UserByLogin(_ context.Context, org, username string) (*authn.User, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	u, ok := m.users[org+"/"+username]
	if !ok {
		return nil, authn.ErrNotFound
	}
	c := *u
	return &c, nil
}

func (m *memIdentities) UserByFederatedIdentity(context.Context, string, string) (*authn.Principal, error) {
	return nil, authn.ErrNotFound
}

func (m *memIdentities) ServiceAccountKey(context.Context, string) (*authn.ServiceAccountKey, error) {
	return nil, authn.ErrNotFound
}

func (m *memIdentities) ServiceAccountByCertificate(context.Context, *x509.Certificate) (*authn.Principal, error) {
	return nil, authn.ErrNotFound
}

func (m *memIdentities) Principal(_ context.Context, name string) (*authn.Principal, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, u := range m.users {
		if u.Name == name {
			p := u.Principal
			return &p, nil
		}
	}
	return nil, authn.ErrNotFound
}

func (m *memIdentities) RevokeToken(_ context.Context, jti string, exp time.Time) error {
	m.revs.RevokeToken(jti, exp)
	return nil
}

func (m *memIdentities) RevokePrincipal(_ context.Context, principal string, at time.Time) (time.Time, error) {
	m.revs.RevokePrincipal(principal, at)
	return at, nil
}

// testAegis is a running Aegis for the CLI to talk to.
type testAegis struct {
	url      string // HTTP base URL, the issuer
	endpoint string // gRPC host:port
	cacert   string // PEM file of the TLS certificate, "" without TLS
	ver      *token.Verifier
	refresh  *token.MemRefreshStore
	svc      *authn.Service

	orgs     *fakeOrgs
	identity *fakeIdentity
	policy   *fakePolicy
	authz    *fakeAuthz
	audit    *fakeAudit

	mu      sync.Mutex
	callers []string // subjects of the verified bearer tokens, in call order
}

type aegisOptions struct {
	tls     bool
	limiter password.LimiterOptions
}

func startAegis(t *testing.T, o aegisOptions) *testAegis {
	t.Helper()
	a := &testAegis{orgs: &fakeOrgs{}, identity: &fakeIdentity{}, policy: &fakePolicy{}, authz: &fakeAuthz{}, audit: &fakeAudit{}}
	hs := httptest.NewUnstartedServer(nil)
	scheme := "http"
	if o.tls {
		scheme = "https"
	}
	a.url = scheme + "://" + hs.Listener.Addr().String()

	ctx := context.Background()
	tcfg := token.Config{Issuer: a.url}
	kek, err := token.NewKEK(bytes.Repeat([]byte{3}, 32))
	if err != nil {
		t.Fatal(err)
	}
	ring, err := token.OpenKeyring(ctx, &token.MemKeyStore{}, tcfg, kek)
	if err != nil {
		t.Fatal(err)
	}
	revs := token.NewRevocationList(nil)
	iss, err := token.NewIssuer(ring, tcfg, revs)
	if err != nil {
		t.Fatal(err)
	}
	if a.ver, err = token.NewVerifier(ring, tcfg, revs); err != nil {
		t.Fatal(err)
	}
	a.refresh = token.NewMemRefreshStore()
	ref, err := token.NewRefresher(a.refresh, revs, token.RefreshConfig{})
	if err != nil {
		t.Fatal(err)
	}
	// Cheap argon2 parameters keep a login well under a millisecond.
	hasher, err := password.NewHasher(password.Options{Params: password.Params{Memory: 64, Time: 1, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	limiter, err := password.NewLimiter(o.limiter)
	if err != nil {
		t.Fatal(err)
	}
	hash, err := hasher.Hash(ctx, alicePassword)
	if err != nil {
		t.Fatal(err)
	}
	ids := &memIdentities{revs: revs, users: map[string]*authn.User{
		"acme/alice": {Principal: authn.Principal{Name: aliceName, Kind: token.KindUser, Org: "acme", DisplayName: "Alice",
			Groups: []string{"orgs/acme/groups/staff"}}, PasswordHash: hash},
	}}
	a.svc, err = authn.New(authn.Config{
		Token: tcfg, Issuer: iss, Verifier: a.ver, Refresher: ref, Keyring: ring,
		Hasher: hasher, Limiter: limiter,
		Users: ids, ServiceAccounts: ids, Principals: ids, Revoker: ids, Revocations: revs,
		DefaultLoginOrg: "acme",
		Logger:          slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	hs.Config.Handler = a.svc.Handler()

	var gopts []grpc.ServerOption
	if o.tls {
		hs.StartTLS()
		cert := hs.TLS.Certificates[0]
		a.cacert = filepath.Join(t.TempDir(), "ca.pem")
		if err := os.WriteFile(a.cacert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: hs.Certificate().Raw}), 0o600); err != nil {
			t.Fatal(err)
		}
		gopts = append(gopts, grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}})))
	} else {
		hs.Start()
	}
	t.Cleanup(hs.Close)

	gopts = append(gopts, grpc.UnaryInterceptor(a.authenticate))
	gs := grpc.NewServer(gopts...)
	aegisv1.RegisterAuthnServiceServer(gs, a.svc)
	aegisv1.RegisterOrgServiceServer(gs, a.orgs)
	aegisv1.RegisterIdentityServiceServer(gs, a.identity)
	aegisv1.RegisterPolicyServiceServer(gs, a.policy)
	aegisv1.RegisterAuthzServiceServer(gs, a.authz)
	aegisv1.RegisterAuditServiceServer(gs, a.audit)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a.endpoint = lis.Addr().String()
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = gs.Serve(lis)
	}()
	t.Cleanup(func() {
		gs.Stop()
		<-served
	})
	return a
}

// authenticate is what the Aegis server's interceptor does for the admin
// services: a valid bearer token or UNAUTHENTICATED. AuthnService checks
// its own callers.
func (a *testAegis) authenticate(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if strings.HasPrefix(info.FullMethod, "/aegis.v1.AuthnService/") {
		return handler(ctx, req)
	}
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
	if len(vals) != 1 || !strings.HasPrefix(vals[0], "Bearer ") {
		return nil, status.Error(codes.Unauthenticated, "missing bearer token")
	}
	c, err := a.ver.Verify(strings.TrimPrefix(vals[0], "Bearer "))
	if err != nil {
		return nil, status.Error(codes.Unauthenticated, "invalid access token")
	}
	a.mu.Lock()
	a.callers = append(a.callers, c.Subject)
	a.mu.Unlock()
	return handler(ctx, req)
}

func (a *testAegis) lastCaller() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.callers) == 0 {
		return ""
	}
	return a.callers[len(a.callers)-1]
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
	if code, out, errs := photon(t, alicePassword+"\n", "login", "--username", "alice@acme", "--password-stdin"); code != 0 {
		t.Fatalf("login: exit %d: %s%s", code, out, errs)
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
