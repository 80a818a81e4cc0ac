package aegis

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	aegisv1 "github.com/photoncloud/photoncloud/api/aegis/v1"
	"github.com/photoncloud/photoncloud/internal/aegis/token"
)

func TestAllowedPrincipalInContext(t *testing.T) {
	e := newEnv(t)
	a := e.newAuthorizer(e.config())
	c, svc := e.serve(a, nil, nil)

	raw, claims, err := e.iss.Issue(aliceGrant(), 0)
	if err != nil {
		t.Fatal(err)
	}
	name, err := call(t, c, raw, "flashdns:zones:get", zoneWeb)
	if err != nil {
		t.Fatal(err)
	}
	if name != alice {
		t.Fatalf("handler saw %q, want %q", name, alice)
	}
	p := <-svc.seen
	want := Principal{
		Name: alice, Kind: aegisv1.PrincipalKind_PRINCIPAL_KIND_USER, Org: "orgs/acme",
		TokenID: claims.ID, ExpiresAt: claims.ExpiresAt,
	}
	if p.Name != want.Name || p.Kind != want.Kind || p.Org != want.Org || p.Project != "" ||
		p.TokenID != want.TokenID || !p.ExpiresAt.Equal(want.ExpiresAt) || p.Certificate != nil {
		t.Fatalf("principal %+v, want %+v", *p, want)
	}
	// Aegis was asked with the caller's own token and the peer's address.
	if ip, by := e.authz.last(); ip != "127.0.0.1" || by != "token" {
		t.Fatalf("Authorize saw source ip %q subject %q", ip, by)
	}

	// Outside an intercepted call there is no principal.
	if _, ok := FromContext(context.Background()); ok {
		t.Fatal("principal in a bare context")
	}
}

func TestDenied(t *testing.T) {
	e := newEnv(t)
	a := e.newAuthorizer(e.config())
	c, svc := e.serve(a, nil, nil)
	aliceTok, bobTok := e.token(aliceGrant()), e.token(bobGrant())

	// Alice is a ProjectEditor of web: she sees the project but may not
	// manage its IAM.
	_, err := call(t, c, aliceTok, "aegis:bindings:create", projWeb)
	wantCode(t, err, codes.PermissionDenied)
	// Bob belongs to globex: acme's zone does not exist for him.
	_, err = call(t, c, bobTok, "flashdns:zones:get", zoneWeb)
	wantCode(t, err, codes.NotFound)
	if strings.Contains(err.Error(), "permission") {
		t.Fatalf("NotFound reveals the permission check: %v", err)
	}
	// ... while his own org answers normally.
	if _, err := call(t, c, bobTok, "flashdns:zones:get", zoneBob); err != nil {
		t.Fatal(err)
	}
	_, err = call(t, c, bobTok, "flashdns:zones:delete", zoneBob)
	wantCode(t, err, codes.PermissionDenied)

	// A token downscoped to another project does not see web (Aegis
	// answers TOKEN_RESTRICTED).
	g := aliceGrant()
	g.Project = "other" // the token claim holds the project id
	_, err = call(t, c, e.token(g), "flashdns:zones:get", zoneWeb)
	wantCode(t, err, codes.NotFound)
	// ... and one downscoped to web does.
	g.Project = "web"
	for len(svc.seen) > 0 {
		<-svc.seen
	}
	if _, err := call(t, c, e.token(g), "flashdns:zones:get", zoneWeb); err != nil {
		t.Fatal(err)
	}
	if p := <-svc.seen; p.Project != projWeb || p.Org != "orgs/acme" {
		t.Fatalf("downscoped principal %+v", p)
	}
}

func TestDenialCodeOption(t *testing.T) {
	e := newEnv(t)
	cfg := e.config()
	cfg.DenialCode = func(*Principal, Check) codes.Code { return codes.PermissionDenied }
	c, _ := e.serve(e.newAuthorizer(cfg), nil, nil)
	_, err := call(t, c, e.token(bobGrant()), "flashdns:zones:get", zoneWeb)
	wantCode(t, err, codes.PermissionDenied)
}

func TestTenantDenialCode(t *testing.T) {
	acme := &Principal{Org: "orgs/acme"}
	web := &Principal{Org: "orgs/acme", Project: projWeb}
	for _, tc := range []struct {
		p    *Principal
		res  string
		want codes.Code
	}{
		{acme, zoneWeb, codes.PermissionDenied},
		{acme, "orgs/acme", codes.PermissionDenied},
		{acme, "orgs/acme2/projects/x", codes.NotFound},
		{acme, "orgs/globex", codes.NotFound},
		{acme, "system", codes.PermissionDenied},
		{web, zoneWeb, codes.PermissionDenied},
		{web, "orgs/acme/projects/other/vms/a", codes.NotFound},
		{web, "orgs/acme/projects/webby", codes.NotFound},
		{nil, zoneWeb, codes.NotFound},
	} {
		if got := TenantDenialCode(tc.p, Check{Permission: "x:y:z", Resource: tc.res}); got != tc.want {
			t.Errorf("TenantDenialCode(%+v, %s) = %v, want %v", tc.p, tc.res, got, tc.want)
		}
	}
}

// forge signs claims with key under kid, bypassing the Aegis issuer.
func forge(t *testing.T, alg jose.SignatureAlgorithm, key any, kid string, claims any) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: key, KeyID: kid}},
		(&jose.SignerOptions{}).WithType("at+jwt"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jwt.Signed(s).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func validClaims(now time.Time) map[string]any {
	return map[string]any{
		"iss": testIssuer, "sub": alice, "aud": "photoncloud", "jti": "forged-1",
		"exp": now.Add(10 * time.Minute).Unix(), "iat": now.Unix(), "nbf": now.Unix(),
		"principal_kind": "user", "org": "acme",
	}
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func TestTokenRejected(t *testing.T) {
	e := newEnv(t)
	a := e.newAuthorizer(e.config())
	c, _ := e.serve(a, nil, nil)
	e.waitKeys(a)
	now := e.clk.Now()
	valid := e.token(aliceGrant())
	parts := strings.Split(valid, ".")
	header, _ := base64.RawURLEncoding.DecodeString(parts[0])
	var hdr map[string]any
	if err := json.Unmarshal(header, &hdr); err != nil {
		t.Fatal(err)
	}
	kid := hdr["kid"].(string)

	issuer := func(cfg token.Config) *token.Issuer {
		i, err := token.NewIssuer(e.ring, cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		return i
	}
	issue := func(i *token.Issuer, g token.Grant, ttl time.Duration) string {
		raw, _, err := i.Issue(g, ttl)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	past := func() time.Time { return now.Add(-time.Hour) }
	future := func() time.Time { return now.Add(time.Hour) }
	wrongAud := aliceGrant()
	wrongAud.Audience = []string{"other-service"}

	// Tampered: same header and signature, payload naming someone else.
	var payload map[string]any
	pb, _ := base64.RawURLEncoding.DecodeString(parts[1])
	if err := json.Unmarshal(pb, &payload); err != nil {
		t.Fatal(err)
	}
	payload["sub"] = bob
	pb2, _ := json.Marshal(payload)
	tampered := parts[0] + "." + b64(pb2) + "." + parts[2]

	noneHeader, _ := json.Marshal(map[string]any{"alg": "none", "kid": kid, "typ": "at+jwt"})
	claimsJSON, _ := json.Marshal(validClaims(now))
	algNone := b64(noneHeader) + "." + b64(claimsJSON) + "."

	// HS256 keyed with Aegis's public key, the classic confusion attack.
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(e.ring.JWKS(), &set); err != nil {
		t.Fatal(err)
	}
	pub := []byte(set.Keys[0].Key.(ed25519.PublicKey))
	hs256 := forge(t, jose.HS256, pub, set.Keys[0].KeyID, validClaims(now))

	for _, tc := range []struct {
		name string
		md   []string // authorization header values
	}{
		{"missing", nil},
		{"not bearer", []string{"Basic dXNlcjpwYXNz"}},
		{"empty bearer", []string{"Bearer "}},
		{"two headers", []string{"Bearer " + valid, "Bearer " + valid}},
		{"garbage", []string{"Bearer not.a.jwt"}},
		{"expired", []string{"Bearer " + issue(issuer(token.Config{Issuer: testIssuer, Now: past}), aliceGrant(), time.Minute)}},
		{"not yet valid", []string{"Bearer " + issue(issuer(token.Config{Issuer: testIssuer, Now: future}), aliceGrant(), 0)}},
		{"wrong issuer", []string{"Bearer " + issue(issuer(token.Config{Issuer: "https://evil.test", Now: e.clk.Now}), aliceGrant(), 0)}},
		{"wrong audience", []string{"Bearer " + issue(issuer(token.Config{Issuer: testIssuer, Audience: []string{"photoncloud", "other-service"}, Now: e.clk.Now}), wrongAud, 0)}},
		{"tampered", []string{"Bearer " + tampered}},
		{"alg none", []string{"Bearer " + algNone}},
		{"HS256 with public key", []string{"Bearer " + hs256}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := e.authz.calls.Load()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			for _, v := range tc.md {
				ctx = metadata.AppendToOutgoingContext(ctx, "authorization", v)
			}
			_, err := c.UnaryCall(ctx, &testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte("flashdns:zones:get " + zoneWeb)}})
			wantCode(t, err, codes.Unauthenticated)
			t.Log(err)
			if got := e.authz.calls.Load(); got != before {
				t.Fatalf("a rejected token reached Authorize")
			}
		})
	}

	// The scheme is case-insensitive.
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "bearer "+valid)
	if _, err := c.UnaryCall(ctx, &testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte("flashdns:zones:get " + zoneWeb)}}); err != nil {
		t.Fatal(err)
	}

	// Revocation is known only to Aegis: the token verifies locally, and
	// Aegis's answer (REASON_UNAUTHENTICATED) makes it Unauthenticated.
	raw, claims, err := e.iss.Issue(aliceGrant(), 0)
	if err != nil {
		t.Fatal(err)
	}
	e.revs.RevokeToken(claims.ID, claims.ExpiresAt)
	_, err = call(t, c, raw, "flashdns:zones:get", zoneWeb)
	wantCode(t, err, codes.Unauthenticated)
}

func TestUnknownKidRefreshIsRateLimited(t *testing.T) {
	e := newEnv(t)
	a := e.newAuthorizer(e.config())
	c, _ := e.serve(a, nil, nil)
	e.waitKeys(a)
	if got := e.jwksHits.Load(); got != 1 {
		t.Fatalf("initial fetches: %d", got)
	}
	_, stranger, _ := ed25519.GenerateKey(rand.Reader)
	forged := func() string {
		return forge(t, jose.EdDSA, stranger, "kid-"+b64(stranger.Public().(ed25519.PublicKey)[:6]), validClaims(e.clk.Now()))
	}

	// Right after the initial fetch, an unknown kid fetches nothing.
	_, err := call(t, c, forged(), "flashdns:zones:get", zoneWeb)
	wantCode(t, err, codes.Unauthenticated)
	if got := e.jwksHits.Load(); got != 1 {
		t.Fatalf("fetches after a too-early unknown kid: %d, want 1", got)
	}

	// Later, one fetch — shared by concurrent callers — and then quiet
	// again until the interval has passed.
	e.clk.Advance(11 * time.Second)
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			_, err := call(t, c, forged(), "flashdns:zones:get", zoneWeb)
			if status.Code(err) != codes.Unauthenticated {
				t.Errorf("forged token: %v", err)
			}
		})
	}
	wg.Wait()
	if got := e.jwksHits.Load(); got != 2 {
		t.Fatalf("fetches after a burst of unknown kids: %d, want 2", got)
	}
	for range 5 {
		_, err := call(t, c, forged(), "flashdns:zones:get", zoneWeb)
		wantCode(t, err, codes.Unauthenticated)
	}
	if got := e.jwksHits.Load(); got != 2 {
		t.Fatalf("fetches within the interval: %d, want 2", got)
	}
	if e.authz.calls.Load() != 0 {
		t.Fatal("forged tokens reached Authorize")
	}
}

func TestKeyRotation(t *testing.T) {
	e := newEnv(t)
	a := e.newAuthorizer(e.config())
	c, _ := e.serve(a, nil, nil)
	e.waitKeys(a)
	old := e.token(aliceGrant())
	if _, err := call(t, c, old, "flashdns:zones:get", zoneWeb); err != nil {
		t.Fatal(err)
	}

	// The new active key was staged, so already published: no fetch.
	ctx := context.Background()
	if _, err := e.ring.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := call(t, c, e.token(aliceGrant()), "flashdns:zones:get", zoneWeb); err != nil {
		t.Fatal(err)
	}
	if got := e.jwksHits.Load(); got != 1 {
		t.Fatalf("fetches after a rotation to a staged key: %d, want 1", got)
	}

	// A second rotation activates a key this client has never seen: the
	// unknown kid triggers one fetch that picks it up.
	if _, err := e.ring.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	e.clk.Advance(11 * time.Second)
	if _, err := call(t, c, e.token(aliceGrant()), "flashdns:zones:get", zoneWeb); err != nil {
		t.Fatal(err)
	}
	if got := e.jwksHits.Load(); got != 2 {
		t.Fatalf("fetches after a rotation to an unseen key: %d, want 2", got)
	}
	// Tokens of the retired keys keep working.
	if _, err := call(t, c, old, "flashdns:zones:get", zoneWeb); err != nil {
		t.Fatal(err)
	}
}

func TestDecisionCache(t *testing.T) {
	e := newEnv(t)
	a := e.newAuthorizer(e.config())
	c, _ := e.serve(a, nil, nil)
	tok := e.token(aliceGrant())
	calls := func() int64 { return e.authz.calls.Load() }

	for range 3 {
		if _, err := call(t, c, tok, "flashdns:zones:get", zoneWeb); err != nil {
			t.Fatal(err)
		}
	}
	if calls() != 1 {
		t.Fatalf("Authorize calls for 3 identical checks: %d, want 1", calls())
	}
	// Denials are cached too.
	for range 2 {
		_, err := call(t, c, tok, "aegis:bindings:create", projWeb)
		wantCode(t, err, codes.PermissionDenied)
	}
	if calls() != 2 {
		t.Fatalf("Authorize calls: %d, want 2", calls())
	}
	// Another permission, resource or token is another decision.
	if _, err := call(t, c, tok, "flashdns:zones:update", zoneWeb); err != nil {
		t.Fatal(err)
	}
	if _, err := call(t, c, tok, "flashdns:zones:get", zoneWeb+"x"); err != nil {
		t.Fatal(err)
	}
	if _, err := call(t, c, e.token(aliceGrant()), "flashdns:zones:get", zoneWeb); err != nil {
		t.Fatal(err)
	}
	if calls() != 5 {
		t.Fatalf("Authorize calls: %d, want 5", calls())
	}

	// After DecisionTTL (1s) the decision is asked again, and a binding
	// removed meanwhile takes effect.
	if err := e.ev.DeleteBinding("alice-web"); err != nil {
		t.Fatal(err)
	}
	e.clk.Advance(800 * time.Millisecond)
	if _, err := call(t, c, tok, "flashdns:zones:get", zoneWeb); err != nil {
		t.Fatalf("still cached: %v", err)
	}
	e.clk.Advance(400 * time.Millisecond)
	_, err := call(t, c, tok, "flashdns:zones:get", zoneWeb)
	wantCode(t, err, codes.PermissionDenied)
	if calls() != 6 {
		t.Fatalf("Authorize calls: %d, want 6", calls())
	}

	// Aegis's cache_ttl shortens the cache: zero means never cache.
	e.authz.cacheTTL.Store(0)
	bobTok := e.token(bobGrant())
	for range 2 {
		if _, err := call(t, c, bobTok, "flashdns:zones:get", zoneBob); err != nil {
			t.Fatal(err)
		}
	}
	if calls() != 8 {
		t.Fatalf("Authorize calls with cache_ttl 0: %d, want 8", calls())
	}
	if n := a.decisions.len(); n > 10000 {
		t.Fatalf("cache holds %d", n)
	}
}

func TestDecisionCacheBounded(t *testing.T) {
	c := newBoundedCache[int, int](10)
	for i := range 1000 {
		c.put(i, i)
		if c.len() > 10 {
			t.Fatalf("cache grew to %d", c.len())
		}
	}
	if _, ok := c.get(999); !ok {
		t.Fatal("latest entry evicted")
	}
	if _, ok := c.get(0); ok {
		t.Fatal("oldest entry kept")
	}
	var none *boundedCache[int, int]
	none.put(1, 1)
	if _, ok := none.get(1); ok || none.len() != 0 {
		t.Fatal("disabled cache stores")
	}
}

func deadAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	_ = lis.Close()
	return addr
}

func TestAegisDown(t *testing.T) {
	e := newEnv(t)
	tok := e.token(aliceGrant())

	t.Run("authorize unreachable", func(t *testing.T) {
		cc, err := grpc.NewClient(deadAddr(t), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		cfg := e.config()
		cfg.Authz = aegisv1.NewAuthzServiceClient(cc)
		c, _ := e.serve(e.newAuthorizer(cfg), nil, nil)
		_, err = call(t, c, tok, "flashdns:zones:get", zoneWeb)
		wantCode(t, err, codes.Unavailable)
	})

	t.Run("jwks unreachable", func(t *testing.T) {
		e.jwksDown.Store(true)
		defer e.jwksDown.Store(false)
		a := e.newAuthorizer(e.config())
		c, _ := e.serve(a, nil, nil)
		_, err := call(t, c, tok, "flashdns:zones:get", zoneWeb)
		wantCode(t, err, codes.Unavailable)
		// Aegis comes back: the next unknown-kid refresh (after the rate
		// limit interval) loads the keys.
		e.jwksDown.Store(false)
		e.clk.Advance(11 * time.Second)
		if _, err := call(t, c, tok, "flashdns:zones:get", zoneWeb); err != nil {
			t.Fatal(err)
		}
	})
}

func TestJWKSOverGRPC(t *testing.T) {
	e := newEnv(t)
	cfg := e.config()
	cfg.JWKSURL = ""
	cfg.Authn = aegisv1.NewAuthnServiceClient(e.aegisConn)
	a := e.newAuthorizer(cfg)
	c, _ := e.serve(a, nil, nil)
	if _, err := call(t, c, e.token(aliceGrant()), "flashdns:zones:get", zoneWeb); err != nil {
		t.Fatal(err)
	}
	if e.authn.calls.Load() != 1 || e.jwksHits.Load() != 0 {
		t.Fatalf("GetJWKS calls %d, HTTP fetches %d", e.authn.calls.Load(), e.jwksHits.Load())
	}
}

func TestStreams(t *testing.T) {
	e := newEnv(t)
	a := e.newAuthorizer(e.config())
	c, svc := e.serve(a, nil, nil)
	aliceCtx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+e.token(aliceGrant()))
	bobCtx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+e.token(bobGrant()))

	serverStream := func(ctx context.Context, body string) (int, error) {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		s, err := c.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{Payload: &testpb.Payload{Body: []byte(body)}})
		if err != nil {
			return 0, err
		}
		n := 0
		for {
			m, err := s.Recv()
			if err == io.EOF {
				return n, nil
			}
			if err != nil {
				return n, err
			}
			if string(m.GetPayload().GetBody()) != alice {
				t.Errorf("stream handler saw %q", m.GetPayload().GetBody())
			}
			n++
		}
	}

	// Server streaming: the rule sees the request message.
	n, err := serverStream(aliceCtx, "flashdns:zones:get "+zoneWeb)
	if err != nil || n != 2 {
		t.Fatalf("allowed stream: %d messages, %v", n, err)
	}
	if p := <-svc.seen; p == nil || p.Name != alice {
		t.Fatalf("stream principal %+v", p)
	}
	n, err = serverStream(bobCtx, "flashdns:zones:get "+zoneWeb)
	wantCode(t, err, codes.NotFound)
	if n != 0 {
		t.Fatalf("denied stream delivered %d messages", n)
	}
	_, err = serverStream(context.Background(), "flashdns:zones:get "+zoneWeb)
	wantCode(t, err, codes.Unauthenticated)

	// Bidi streaming: checked up front from the method.
	bidi := func(ctx context.Context) (int, error) {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		s, err := c.FullDuplexCall(ctx)
		if err != nil {
			return 0, err
		}
		for range 3 {
			if err := s.Send(&testpb.StreamingOutputCallRequest{}); err != nil {
				break // the error comes from Recv
			}
		}
		_ = s.CloseSend()
		n := 0
		for {
			if _, err := s.Recv(); err == io.EOF {
				return n, nil
			} else if err != nil {
				return n, err
			}
			n++
		}
	}
	if n, err := bidi(aliceCtx); err != nil || n != 3 {
		t.Fatalf("allowed bidi stream: %d messages, %v", n, err)
	}
	if p := <-svc.seen; p == nil || p.Name != alice {
		t.Fatalf("bidi principal %+v", p)
	}
	_, err = bidi(bobCtx)
	wantCode(t, err, codes.NotFound)
}

// A server-streaming handler that sends before reading its request must
// not leak anything past the check.
func TestStreamSendBeforeCheck(t *testing.T) {
	s := &authedStream{check: func(any) error { return nil }}
	err := s.SendMsg(&testpb.StreamingOutputCallResponse{})
	wantCode(t, err, codes.Internal)
}

func TestPublicAndAuthenticatedOnly(t *testing.T) {
	e := newEnv(t)
	a := e.newAuthorizer(e.config())
	c, svc := e.serve(a, nil, nil)

	// Public: no credential needed, no principal.
	resp, err := c.CacheableUnaryCall(context.Background(), &testpb.SimpleRequest{})
	if err != nil || resp.GetUsername() != "" {
		t.Fatalf("public call: %v, %q", err, resp.GetUsername())
	}
	if p := <-svc.seen; p != nil {
		t.Fatalf("public handler saw principal %+v", p)
	}

	// AuthenticatedOnly needs a token but no decision; the handler's own
	// Authorize call is decided with the caller's token.
	_, err = c.EmptyCall(context.Background(), &testpb.Empty{})
	wantCode(t, err, codes.Unauthenticated)
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+e.token(aliceGrant()))
	if _, err := c.EmptyCall(ctx, &testpb.Empty{}); err != nil {
		t.Fatal(err)
	}
	if e.authz.calls.Load() != 1 {
		t.Fatalf("Authorize calls: %d, want 1 (from the handler)", e.authz.calls.Load())
	}
	ctx = metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+e.token(bobGrant()))
	_, err = c.EmptyCall(ctx, &testpb.Empty{})
	wantCode(t, err, codes.NotFound)

	// Methods without a rule are refused.
	_, err = c.UnimplementedCall(ctx, &testpb.Empty{})
	wantCode(t, err, codes.Unimplemented)

	// Authorize outside an intercepted call has no caller.
	wantCode(t, a.Authorize(context.Background(), Check{Permission: "a:b:c", Resource: "system"}), codes.Unauthenticated)
}

func TestRuleBugsFailClosed(t *testing.T) {
	e := newEnv(t)
	cfg := e.config()
	cfg.Rules = func(context.Context, string, any) (Check, error) { return Check{}, nil }
	c, _ := e.serve(e.newAuthorizer(cfg), nil, nil)
	_, err := call(t, c, e.token(aliceGrant()), "ignored", "ignored")
	wantCode(t, err, codes.Internal)

	// A plain error from a rule is the request's fault.
	cfg.Rules = func(context.Context, string, any) (Check, error) { return Check{}, errors.New("bad zone name") }
	c, _ = e.serve(e.newAuthorizer(cfg), nil, nil)
	_, err = call(t, c, e.token(aliceGrant()), "ignored", "ignored")
	wantCode(t, err, codes.InvalidArgument)
	if e.authz.calls.Load() != 0 {
		t.Fatal("a failed rule reached Authorize")
	}
}

func TestMetrics(t *testing.T) {
	e := newEnv(t)
	cfg := e.config()
	reg := prometheus.NewRegistry()
	cfg.Registry = reg
	a := e.newAuthorizer(cfg)
	c, _ := e.serve(a, nil, nil)
	tok := e.token(aliceGrant())
	for range 2 {
		if _, err := call(t, c, tok, "flashdns:zones:get", zoneWeb); err != nil {
			t.Fatal(err)
		}
	}
	_, _ = call(t, c, "", "flashdns:zones:get", zoneWeb)
	for _, tc := range []struct {
		name, label string
		want        float64
	}{
		{"aegis_client_calls_total", resultAllowed, 2},
		{"aegis_client_calls_total", resultUnauthenticated, 1},
		{"aegis_client_decision_cache_total", "hit", 1},
		{"aegis_client_decision_cache_total", "miss", 1},
		{"aegis_client_jwks_fetches_total", "ok", 1},
	} {
		if got := counterValue(t, reg, tc.name, tc.label); got != tc.want {
			t.Errorf("%s{%s} = %v, want %v", tc.name, tc.label, got, tc.want)
		}
	}
	// A second Authorizer on the same registry shares the series.
	a2 := e.newAuthorizer(cfg)
	if a2.m.calls != a.m.calls {
		t.Error("second authorizer did not reuse the registered collectors")
	}
}

func TestConfigValidate(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		name string
		mod  func(*Config)
	}{
		{"no issuer", func(c *Config) { c.Issuer = "" }},
		{"no authz", func(c *Config) { c.Authz = nil }},
		{"no rules", func(c *Config) { c.Rules = nil }},
		{"no key source", func(c *Config) { c.JWKSURL = "" }},
		{"two key sources", func(c *Config) { c.Authn = aegisv1.NewAuthnServiceClient(e.aegisConn) }},
		{"bad jwks url", func(c *Config) { c.JWKSURL = "ftp://x/jwks" }},
		{"huge leeway", func(c *Config) { c.Leeway = time.Hour }},
		{"bad public method", func(c *Config) { c.PublicMethods = []string{"grpc.health.v1.Health/Check"} }},
	} {
		cfg := e.config()
		tc.mod(&cfg)
		if a, err := New(cfg); err == nil {
			_ = a.Close()
			t.Errorf("%s: accepted", tc.name)
		}
	}
}

func TestCloseIsIdempotent(t *testing.T) {
	e := newEnv(t)
	a := e.newAuthorizer(e.config())
	e.waitKeys(a)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	// With the keys already loaded, verification still works; refreshes
	// no longer happen.
	if err := a.keys.refresh(context.Background(), true); !errors.Is(err, errClosed) {
		t.Fatalf("refresh after close: %v", err)
	}
}

func TestParseJWKS(t *testing.T) {
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	x := b64(pub)
	doc := `{"keys":[
		{"kty":"OKP","crv":"Ed25519","x":"` + x + `","kid":"a","use":"sig","alg":"EdDSA"},
		{"kty":"OKP","crv":"Ed25519","x":"` + x + `","kid":"enc","use":"enc"},
		{"kty":"OKP","crv":"Ed25519","x":"` + x + `"},
		{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","kid":"ec"},
		{"kty":"future","kid":"f"}
	]}`
	keys, err := parseJWKS([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || !keys["a"].Equal(pub) {
		t.Fatalf("keys %v", keys)
	}
	dup := `{"keys":[{"kty":"OKP","crv":"Ed25519","x":"` + x + `","kid":"a"},{"kty":"OKP","crv":"Ed25519","x":"` + x + `","kid":"a"}]}`
	if _, err := parseJWKS([]byte(dup)); err == nil {
		t.Fatal("duplicate kid accepted")
	}
}

// counterValue reads the counter name whose only label has value label.
func counterValue(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == label {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}
