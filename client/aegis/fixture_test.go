package aegis

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	aegisv1 "github.com/photoncloud/photoncloud/api/aegis/v1"
	"github.com/photoncloud/photoncloud/internal/aegis/policy"
	"github.com/photoncloud/photoncloud/internal/aegis/token"
)

// Every goroutine the package starts must be gone once Close returned and
// the test servers stopped.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const testIssuer = "https://aegis.test"

// Resources and principals of the test policy. Principal names are what
// Aegis puts in "sub"; the policy evaluator knows them by their last two
// segments (see policyName).
const (
	zoneWeb  = "orgs/acme/projects/web/zones/example.com"
	projWeb  = "orgs/acme/projects/web"
	zoneBob  = "orgs/globex/zones/globex.com"
	alice    = "orgs/acme/users/alice"         // ProjectEditor on orgs/acme/projects/web
	bob      = "orgs/globex/users/bob"         // flashdns.viewer on orgs/globex
	dnsSA    = "orgs/acme/serviceAccounts/dns" // flashdns.admin on orgs/acme (mTLS)
	spiffeID = "spiffe://photon/ns/acme/sa/dns"
)

// policyName maps an API principal name to the evaluator's ("users/alice").
func policyName(name string) string {
	segs := strings.Split(name, "/")
	if len(segs) < 2 {
		return name
	}
	return strings.Join(segs[len(segs)-2:], "/")
}

// clock is a manually advanced clock shared by Aegis and the client.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// env is a small Aegis: a real token keyring, issuer and verifier, a real
// policy evaluator, served over gRPC (AuthzService, AuthnService.GetJWKS)
// and HTTP (the JWKS) on loopback.
type env struct {
	t     *testing.T
	clk   *clock
	tcfg  token.Config
	store *token.MemKeyStore
	kek   *token.KEK
	ring  *token.Keyring
	iss   *token.Issuer
	revs  *token.RevocationList
	ev    *policy.Evaluator

	authz *testAuthz
	authn *testAuthn

	jwksURL   string
	jwksHits  atomic.Int64
	jwksDown  atomic.Bool
	aegisConn *grpc.ClientConn
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, clk: &clock{now: time.Now()}, store: &token.MemKeyStore{}}
	e.tcfg = token.Config{Issuer: testIssuer, Now: e.clk.Now}
	key := make([]byte, token.KEKSize)
	for i := range key {
		key[i] = 7
	}
	var err error
	if e.kek, err = token.NewKEK(key); err != nil {
		t.Fatal(err)
	}
	if e.ring, err = token.OpenKeyring(context.Background(), e.store, e.tcfg, e.kek); err != nil {
		t.Fatal(err)
	}
	e.revs = token.NewRevocationList(e.clk.Now)
	if e.iss, err = token.NewIssuer(e.ring, e.tcfg, e.revs); err != nil {
		t.Fatal(err)
	}
	ver, err := token.NewVerifier(e.ring, e.tcfg, e.revs)
	if err != nil {
		t.Fatal(err)
	}
	if e.ev, err = policy.New(policy.Options{Now: e.clk.Now}); err != nil {
		t.Fatal(err)
	}
	err = e.ev.Update(func(tx *policy.Tx) error {
		for _, p := range []policy.Principal{
			{Name: policyName(alice), Org: "acme"},
			{Name: policyName(bob), Org: "globex"},
			{Name: policyName(dnsSA), Org: "acme"},
		} {
			if err := tx.PutPrincipal(p); err != nil {
				return err
			}
		}
		for _, b := range []policy.Binding{
			{ID: "alice-web", Subject: policyName(alice), Role: "ProjectEditor", Scope: projWeb, Effect: policy.EffectAllow},
			{ID: "bob-globex", Subject: policyName(bob), Role: "flashdns.viewer", Scope: "orgs/globex", Effect: policy.EffectAllow},
			{ID: "dns-acme", Subject: policyName(dnsSA), Role: "flashdns.admin", Scope: "orgs/acme", Effect: policy.EffectAllow},
		} {
			if err := tx.PutBinding(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	e.authz = &testAuthz{ver: ver, ev: e.ev}
	e.authz.cacheTTL.Store(int64(time.Minute))
	e.authn = &testAuthn{ring: e.ring}
	srv := grpc.NewServer()
	aegisv1.RegisterAuthzServiceServer(srv, e.authz)
	aegisv1.RegisterAuthnServiceServer(srv, e.authn)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	if e.aegisConn, err = grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials())); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.aegisConn.Close() })

	jwks := token.JWKSHandler(e.ring)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.jwksHits.Add(1)
		if e.jwksDown.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		jwks.ServeHTTP(w, r)
	}))
	t.Cleanup(hs.Close)
	e.jwksURL = hs.URL + token.JWKSPath
	return e
}

// config returns a client Config against env, with a background refresh
// too slow to interfere with the tests' fetch counts.
func (e *env) config() Config {
	return Config{
		Issuer:             testIssuer,
		JWKSURL:            e.jwksURL,
		Authz:              aegisv1.NewAuthzServiceClient(e.aegisConn),
		Rules:              testRules,
		PublicMethods:      []string{"/grpc.testing.TestService/CacheableUnaryCall"},
		KeyRefreshInterval: time.Hour,
		Logger:             slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now:                e.clk.Now,
	}
}

// newAuthorizer starts an Authorizer and waits for its first key fetch, so
// tests count fetches from a known state.
func (e *env) newAuthorizer(cfg Config) *Authorizer {
	e.t.Helper()
	a, err := New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = a.Close() })
	return a
}

func (e *env) waitKeys(a *Authorizer) {
	e.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for a.keys.generation() == 0 {
		if time.Now().After(deadline) {
			e.t.Fatal("keys never loaded")
		}
		time.Sleep(time.Millisecond)
	}
}

func (e *env) token(g token.Grant) string {
	e.t.Helper()
	raw, _, err := e.iss.Issue(g, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	return raw
}

func aliceGrant() token.Grant { return token.Grant{Subject: alice, Kind: token.KindUser, Org: "acme"} }
func bobGrant() token.Grant   { return token.Grant{Subject: bob, Kind: token.KindUser, Org: "globex"} }

// testAuthz is AuthzService backed by the real token verifier (for the
// subject token: signature, expiry, revocation, downscoping) and the real
// policy evaluator.
type testAuthz struct {
	aegisv1.UnimplementedAuthzServiceServer
	ver      *token.Verifier
	ev       *policy.Evaluator
	calls    atomic.Int64
	cacheTTL atomic.Int64 // nanoseconds; the decision's cache_ttl

	mu     sync.Mutex
	lastIP string
	lastBy string // "token" or "principal"
}

func (s *testAuthz) Authorize(ctx context.Context, req *aegisv1.AuthorizeRequest) (*aegisv1.AuthorizeResponse, error) {
	s.calls.Add(1)
	resp := func(d *aegisv1.Decision) *aegisv1.AuthorizeResponse {
		d.CacheTtl = durationpb.New(time.Duration(s.cacheTTL.Load()))
		return &aegisv1.AuthorizeResponse{Decision: d}
	}
	var principal string
	var claims *token.Claims
	s.mu.Lock()
	s.lastIP = req.GetSourceIp()
	switch id := req.GetSubject().GetIdentity().(type) {
	case *aegisv1.Subject_AccessToken:
		s.lastBy = "token"
		s.mu.Unlock()
		c, err := s.ver.Verify(id.AccessToken)
		if err != nil {
			return resp(&aegisv1.Decision{Reason: aegisv1.Decision_REASON_UNAUTHENTICATED, Message: err.Error()}), nil
		}
		principal, claims = c.Subject, c
	case *aegisv1.Subject_Principal:
		s.lastBy = "principal"
		s.mu.Unlock()
		principal = id.Principal
	default:
		s.mu.Unlock()
		return nil, status.Error(codes.Unauthenticated, "no subject")
	}
	if claims != nil && claims.Project != "" && !within(req.GetResource(), projectName(claims.Org, claims.Project)) {
		return resp(&aegisv1.Decision{Reason: aegisv1.Decision_REASON_TOKEN_RESTRICTED, Principal: principal}), nil
	}
	d, err := s.ev.Authorize(ctx, policy.Request{
		Principal: policyName(principal), Permission: req.GetPermission(), Resource: req.GetResource(),
		ResourceLabels: req.GetResourceLabels(), SourceIP: req.GetSourceIp(),
	})
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	out := &aegisv1.Decision{Allowed: d.Allowed, Principal: principal, Binding: d.BindingID, Role: d.Role, Scope: d.Scope, Member: d.Subject}
	switch d.Reason {
	case policy.ReasonAllowed:
		out.Reason = aegisv1.Decision_REASON_ALLOWED
	case policy.ReasonDenied:
		out.Reason = aegisv1.Decision_REASON_DENIED_BY_BINDING
	case policy.ReasonUnknownPrincipal, policy.ReasonPrincipalDisabled:
		out.Reason = aegisv1.Decision_REASON_PRINCIPAL_INACTIVE
	default:
		out.Reason = aegisv1.Decision_REASON_NO_ALLOW_BINDING
	}
	return resp(out), nil
}

func (s *testAuthz) last() (ip, by string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastIP, s.lastBy
}

// testAuthn serves GetJWKS from the keyring.
type testAuthn struct {
	aegisv1.UnimplementedAuthnServiceServer
	ring  *token.Keyring
	calls atomic.Int64
}

func (s *testAuthn) GetJWKS(context.Context, *aegisv1.GetJWKSRequest) (*aegisv1.GetJWKSResponse, error) {
	s.calls.Add(1)
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(s.ring.JWKS(), &set); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	out := &aegisv1.GetJWKSResponse{}
	for _, k := range set.Keys {
		pub := k.Key.(ed25519.PublicKey)
		out.Keys = append(out.Keys, &aegisv1.JsonWebKey{
			Kty: "OKP", Crv: "Ed25519", X: base64.RawURLEncoding.EncodeToString(pub),
			Kid: k.KeyID, Use: k.Use, Alg: k.Algorithm,
		})
	}
	return out, nil
}

// testRules maps the grpc.testing methods: requests carry
// "<permission> <resource>" in their payload body.
func testRules(_ context.Context, method string, req any) (Check, error) {
	var body []byte
	switch r := req.(type) {
	case *testpb.SimpleRequest:
		body = r.GetPayload().GetBody()
	case *testpb.StreamingOutputCallRequest:
		body = r.GetPayload().GetBody()
	}
	if body != nil {
		perm, res, ok := strings.Cut(string(body), " ")
		if !ok {
			return Check{}, status.Error(codes.InvalidArgument, "want \"<permission> <resource>\"")
		}
		return Check{Permission: perm, Resource: res}, nil
	}
	switch method {
	case "/grpc.testing.TestService/EmptyCall":
		return Check{AuthenticatedOnly: true}, nil
	case "/grpc.testing.TestService/FullDuplexCall":
		return Check{Permission: "flashdns:zones:list", Resource: projWeb}, nil
	}
	return Check{}, status.Errorf(codes.Unimplemented, "no access rule for %s", method)
}

// testService is the protected service; it records the principal each
// handler saw.
type testService struct {
	testpb.UnimplementedTestServiceServer
	a    *Authorizer
	seen chan *Principal // one per handler run (nil: no principal)
}

func (s *testService) record(ctx context.Context) string {
	p, ok := FromContext(ctx)
	if !ok {
		p = nil
	}
	select {
	case s.seen <- p:
	default:
	}
	if p == nil {
		return ""
	}
	return p.Name
}

func (s *testService) UnaryCall(ctx context.Context, _ *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	return &testpb.SimpleResponse{Username: s.record(ctx)}, nil
}

func (s *testService) CacheableUnaryCall(ctx context.Context, _ *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	return &testpb.SimpleResponse{Username: s.record(ctx)}, nil
}

// EmptyCall is AuthenticatedOnly; it checks a second permission from
// inside the handler, as a service handler would.
func (s *testService) EmptyCall(ctx context.Context, _ *testpb.Empty) (*testpb.Empty, error) {
	s.record(ctx)
	if err := s.a.Authorize(ctx, Check{Permission: "flashdns:zones:get", Resource: zoneWeb}); err != nil {
		return nil, err
	}
	return &testpb.Empty{}, nil
}

func (s *testService) StreamingOutputCall(_ *testpb.StreamingOutputCallRequest, stream grpc.ServerStreamingServer[testpb.StreamingOutputCallResponse]) error {
	name := s.record(stream.Context())
	for range 2 {
		if err := stream.Send(&testpb.StreamingOutputCallResponse{Payload: &testpb.Payload{Body: []byte(name)}}); err != nil {
			return err
		}
	}
	return nil
}

func (s *testService) FullDuplexCall(stream grpc.BidiStreamingServer[testpb.StreamingOutputCallRequest, testpb.StreamingOutputCallResponse]) error {
	name := s.record(stream.Context())
	for {
		if _, err := stream.Recv(); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
		if err := stream.Send(&testpb.StreamingOutputCallResponse{Payload: &testpb.Payload{Body: []byte(name)}}); err != nil {
			return err
		}
	}
}

// serve starts the protected service with a's interceptors and returns a
// client for it. serverTLS/clientTLS switch on TLS (both or neither).
func (e *env) serve(a *Authorizer, serverTLS, clientTLS *tls.Config) (testpb.TestServiceClient, *testService) {
	e.t.Helper()
	svc := &testService{a: a, seen: make(chan *Principal, 16)}
	opts := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(a.UnaryServerInterceptor()),
		grpc.ChainStreamInterceptor(a.StreamServerInterceptor()),
	}
	dial := grpc.WithTransportCredentials(insecure.NewCredentials())
	if serverTLS != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(serverTLS)))
		dial = grpc.WithTransportCredentials(credentials.NewTLS(clientTLS))
	}
	srv := grpc.NewServer(opts...)
	testpb.RegisterTestServiceServer(srv, svc)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	e.t.Cleanup(srv.Stop)
	cc, err := grpc.NewClient(lis.Addr().String(), dial)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = cc.Close() })
	return testpb.NewTestServiceClient(cc), svc
}

// call makes a UnaryCall asking for perm on resource with bearer token tok
// ("" for none) and returns the username the handler saw.
func call(t *testing.T, c testpb.TestServiceClient, tok, perm, resource string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if tok != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
	}
	resp, err := c.UnaryCall(ctx, &testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte(perm + " " + resource)}})
	return resp.GetUsername(), err
}

func wantCode(t *testing.T, err error, want codes.Code) {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Fatalf("got %v (%v), want %v", got, err, want)
	}
}
