package authn

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"slices"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	aegisv1 "github.com/photoncloud/photoncloud/api/aegis/v1"
	"github.com/photoncloud/photoncloud/internal/aegis/password"
	"github.com/photoncloud/photoncloud/internal/aegis/token"
)

// grpcFixture serves the Service on a real gRPC server over TLS on
// loopback, with client certificates verified if given.
type grpcFixture struct {
	*fixture
	addr string
	ca   *testCA
}

func newGRPCFixture(t *testing.T, o fixtureOptions) *grpcFixture {
	t.Helper()
	f := newFixture(t, o)
	ca := newTestCA(t)
	gs := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{ca.serverCert(t)},
		ClientCAs:    ca.pool,
		ClientAuth:   tls.VerifyClientCertIfGiven,
	})))
	aegisv1.RegisterAuthnServiceServer(gs, f.svc)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = gs.Serve(lis)
	}()
	t.Cleanup(func() {
		gs.Stop()
		<-done
	})
	return &grpcFixture{fixture: f, addr: lis.Addr().String(), ca: ca}
}

// client dials the server, presenting cert if not nil.
func (g *grpcFixture) client(t *testing.T, cert *tls.Certificate) aegisv1.AuthnServiceClient {
	t.Helper()
	tc := &tls.Config{RootCAs: g.ca.pool}
	if cert != nil {
		tc.Certificates = []tls.Certificate{*cert}
	}
	cc, err := grpc.NewClient(g.addr, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return aegisv1.NewAuthnServiceClient(cc)
}

func bearer(tok string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+tok)
}

func wantCode(t *testing.T, err error, code codes.Code) {
	t.Helper()
	if status.Code(err) != code {
		t.Fatalf("got %v, want %s", err, code)
	}
}

func TestGRPCLoginRefreshWhoAmI(t *testing.T) {
	g := newGRPCFixture(t, fixtureOptions{})
	c := g.client(t, nil)
	ctx := context.Background()

	login, err := c.Login(ctx, &aegisv1.LoginRequest{Username: "alice", Password: alicePW, Org: "orgs/acme", Project: "orgs/acme/projects/web"})
	if err != nil {
		t.Fatal(err)
	}
	if login.GetPrincipal() != aliceName || login.GetTokenType() != "Bearer" || login.GetProject() != "orgs/acme/projects/web" ||
		login.GetRefreshToken() == "" || !login.GetRefreshExpireTime().AsTime().After(login.GetExpireTime().AsTime()) {
		t.Fatalf("login %v", login)
	}
	if ev := g.audit.last(t); ev.Transport != "grpc" || !ev.SourceAddr.IsLoopback() || !ev.Success {
		t.Fatalf("audit %+v", ev)
	}

	who, err := c.WhoAmI(bearer(login.GetAccessToken()), &aegisv1.WhoAmIRequest{})
	if err != nil {
		t.Fatal(err)
	}
	claims, _ := g.ver.Verify(login.GetAccessToken())
	if who.GetPrincipal() != aliceName || who.GetPrincipalKind() != aegisv1.PrincipalKind_PRINCIPAL_KIND_USER || who.GetOrg() != "orgs/acme" ||
		who.GetDisplayName() != "ALICE" || !slices.Equal(who.GetGroups(), []string{"orgs/acme/groups/staff"}) ||
		who.GetAuthenticationMethod() != aegisv1.WhoAmIResponse_AUTHENTICATION_METHOD_PASSWORD ||
		who.GetTokenId() != claims.ID || who.GetProject() != "orgs/acme/projects/web" {
		t.Fatalf("whoami %v", who)
	}

	// Unknown user and wrong password: the same error.
	_, err1 := c.Login(ctx, &aegisv1.LoginRequest{Username: "alice", Password: "nope", Org: "orgs/acme"})
	_, err2 := c.Login(ctx, &aegisv1.LoginRequest{Username: "mallory", Password: "nope", Org: "acme"})
	wantCode(t, err1, codes.Unauthenticated)
	if status.Convert(err1).Message() != status.Convert(err2).Message() || status.Code(err2) != codes.Unauthenticated {
		t.Fatalf("%v / %v", err1, err2)
	}
	// Malformed requests.
	for _, req := range []*aegisv1.LoginRequest{
		{Username: "alice"},
		{Username: "alice", Password: "x", Org: "orgs/Bad Org"},
		{Username: "alice", Password: "x", Project: "projects/web"},
	} {
		_, err := c.Login(ctx, req)
		wantCode(t, err, codes.InvalidArgument)
	}

	ref, err := c.Refresh(ctx, &aegisv1.RefreshRequest{RefreshToken: login.GetRefreshToken()})
	if err != nil {
		t.Fatal(err)
	}
	if ref.GetRefreshToken() == login.GetRefreshToken() || ref.GetProject() != "orgs/acme/projects/web" || ref.GetPrincipal() != aliceName {
		t.Fatalf("refresh %v", ref)
	}
	_, err = c.Refresh(ctx, &aegisv1.RefreshRequest{RefreshToken: login.GetRefreshToken()})
	wantCode(t, err, codes.Unauthenticated)
	_, err = c.Refresh(ctx, &aegisv1.RefreshRequest{RefreshToken: ref.GetRefreshToken()})
	wantCode(t, err, codes.Unauthenticated) // the family died with the reuse
	_, err = c.Refresh(ctx, &aegisv1.RefreshRequest{})
	wantCode(t, err, codes.InvalidArgument)

	// WhoAmI needs a credential, and a good one.
	_, err = c.WhoAmI(ctx, &aegisv1.WhoAmIRequest{})
	wantCode(t, err, codes.Unauthenticated)
	_, err = c.WhoAmI(bearer("garbage"), &aegisv1.WhoAmIRequest{})
	wantCode(t, err, codes.Unauthenticated)
	_, err = c.WhoAmI(metadata.AppendToOutgoingContext(ctx, "authorization", "Basic abc"), &aegisv1.WhoAmIRequest{})
	wantCode(t, err, codes.Unauthenticated)
}

func TestGRPCLoginRateLimitAndDisabled(t *testing.T) {
	g := newGRPCFixture(t, fixtureOptions{limiter: password.LimiterOptions{PerUser: password.Rate{Burst: 1, Every: time.Hour}}})
	c := g.client(t, nil)
	ctx := context.Background()
	_, err := c.Login(ctx, &aegisv1.LoginRequest{Username: "alice", Password: "wrong", Org: "orgs/acme"})
	wantCode(t, err, codes.Unauthenticated)
	_, err = c.Login(ctx, &aegisv1.LoginRequest{Username: "alice", Password: alicePW, Org: "orgs/acme"})
	wantCode(t, err, codes.ResourceExhausted)
	var delay time.Duration
	for _, d := range status.Convert(err).Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			delay = ri.GetRetryDelay().AsDuration()
		}
	}
	if delay <= 0 || delay > time.Hour {
		t.Fatalf("retry delay %v", delay)
	}

	d := newGRPCFixture(t, fixtureOptions{modify: func(c *Config) { c.DisablePasswordGrant = true }})
	_, err = d.client(t, nil).Login(ctx, &aegisv1.LoginRequest{Username: "alice", Password: alicePW, Org: "orgs/acme"})
	wantCode(t, err, codes.FailedPrecondition)
}

func TestGRPCServiceAccounts(t *testing.T) {
	g := newGRPCFixture(t, fixtureOptions{})
	ctx := context.Background()
	c := g.client(t, nil)

	sa, err := c.IssueServiceAccountToken(ctx, &aegisv1.IssueServiceAccountTokenRequest{
		ClientId: "key-ci", ClientSecret: ciSecret, Project: "orgs/acme/projects/web", Permissions: []string{"plasmavmc:vms:get"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if sa.GetPrincipal() != saCI || sa.GetProject() != "orgs/acme/projects/web" || !slices.Equal(sa.GetPermissions(), []string{"plasmavmc:vms:get"}) {
		t.Fatalf("%v", sa)
	}
	who, err := c.WhoAmI(bearer(sa.GetAccessToken()), &aegisv1.WhoAmIRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if who.GetAuthenticationMethod() != aegisv1.WhoAmIResponse_AUTHENTICATION_METHOD_SERVICE_ACCOUNT_KEY ||
		who.GetPrincipalKind() != aegisv1.PrincipalKind_PRINCIPAL_KIND_SERVICE_ACCOUNT || !slices.Equal(who.GetPermissions(), []string{"plasmavmc:vms:get"}) {
		t.Fatalf("whoami %v", who)
	}

	for _, req := range []*aegisv1.IssueServiceAccountTokenRequest{
		{ClientId: "key-ci", ClientSecret: "wrong"},
		{ClientId: "key-old", ClientSecret: ciSecret},
		{ClientId: "key-ci"},
		{ClientId: PublicClientID},
		{}, // no client id and no certificate
	} {
		_, err := c.IssueServiceAccountToken(ctx, req)
		wantCode(t, err, codes.Unauthenticated)
	}
	_, err = c.IssueServiceAccountToken(ctx, &aegisv1.IssueServiceAccountTokenRequest{ClientId: "key-ci", ClientSecret: ciSecret, Permissions: []string{"bad"}})
	wantCode(t, err, codes.InvalidArgument)

	// mTLS: the connection's certificate is the credential.
	cert := g.ca.clientCert(t, apiURISAN)
	mc := g.client(t, &cert)
	mt, err := mc.IssueServiceAccountToken(ctx, &aegisv1.IssueServiceAccountTokenRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if mt.GetPrincipal() != saAPI {
		t.Fatalf("%v", mt)
	}
	who, err = mc.WhoAmI(ctx, &aegisv1.WhoAmIRequest{}) // no token: the certificate speaks
	if err != nil {
		t.Fatal(err)
	}
	if who.GetPrincipal() != saAPI || who.GetAuthenticationMethod() != aegisv1.WhoAmIResponse_AUTHENTICATION_METHOD_MTLS || who.GetTokenId() != "" {
		t.Fatalf("whoami %v", who)
	}
	who, err = c.WhoAmI(bearer(mt.GetAccessToken()), &aegisv1.WhoAmIRequest{})
	if err != nil || who.GetAuthenticationMethod() != aegisv1.WhoAmIResponse_AUTHENTICATION_METHOD_MTLS {
		t.Fatalf("whoami %v %v", who, err)
	}
	unbound := g.ca.clientCert(t, "spiffe://photon/nobody")
	_, err = g.client(t, &unbound).IssueServiceAccountToken(ctx, &aegisv1.IssueServiceAccountTokenRequest{})
	wantCode(t, err, codes.Unauthenticated)

	// Disabling the service account stops its keys and certificates.
	g.store.setDisabled(saAPI, true)
	_, err = mc.IssueServiceAccountToken(ctx, &aegisv1.IssueServiceAccountTokenRequest{})
	wantCode(t, err, codes.Unauthenticated)
}

func TestGRPCExchangeAndJWKS(t *testing.T) {
	g := newGRPCFixture(t, fixtureOptions{})
	ctx := context.Background()
	c := g.client(t, nil)
	login, err := c.Login(ctx, &aegisv1.LoginRequest{Username: "alice", Password: alicePW, Org: "orgs/acme"})
	if err != nil {
		t.Fatal(err)
	}
	ex, err := c.ExchangeToken(ctx, &aegisv1.ExchangeTokenRequest{
		SubjectToken: login.GetAccessToken(), SubjectTokenType: tokenTypeAccess,
		Project: "orgs/acme/projects/web", Permissions: []string{"flashdns:*:get"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if ex.GetRefreshToken() != "" || ex.GetRefreshExpireTime() != nil || ex.GetIssuedTokenType() != tokenTypeAccess ||
		ex.GetProject() != "orgs/acme/projects/web" || !slices.Equal(ex.GetPermissions(), []string{"flashdns:*:get"}) {
		t.Fatalf("%v", ex)
	}
	_, err = c.ExchangeToken(ctx, &aegisv1.ExchangeTokenRequest{SubjectToken: ex.GetAccessToken(), SubjectTokenType: tokenTypeAccess, Permissions: []string{"flashdns:records:*"}})
	wantCode(t, err, codes.InvalidArgument) // wider than flashdns:*:get
	_, err = c.ExchangeToken(ctx, &aegisv1.ExchangeTokenRequest{SubjectToken: "junk", SubjectTokenType: tokenTypeAccess})
	wantCode(t, err, codes.Unauthenticated)
	_, err = c.ExchangeToken(ctx, &aegisv1.ExchangeTokenRequest{SubjectToken: "junk"})
	wantCode(t, err, codes.InvalidArgument)
	_, err = c.ExchangeToken(ctx, &aegisv1.ExchangeTokenRequest{SubjectToken: login.GetAccessToken(), SubjectTokenType: tokenTypeAccess, Audience: "elsewhere"})
	wantCode(t, err, codes.InvalidArgument)

	jwks, err := c.GetJWKS(ctx, &aegisv1.GetJWKSRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(jwks.GetKeys()) < 2 || jwks.GetKeys()[0].GetKid() != g.ring.ActiveKID() {
		t.Fatalf("jwks %v", jwks)
	}
	for _, k := range jwks.GetKeys() {
		if k.GetKty() != "OKP" || k.GetCrv() != "Ed25519" || k.GetAlg() != "EdDSA" || k.GetUse() != "sig" || k.GetX() == "" {
			t.Fatalf("key %v", k)
		}
	}
}

func TestGRPCLogoutAndRevoke(t *testing.T) {
	g := newGRPCFixture(t, fixtureOptions{})
	ctx := context.Background()
	c := g.client(t, nil)
	login := func(user, org string) *aegisv1.LoginResponse {
		t.Helper()
		r, err := c.Login(ctx, &aegisv1.LoginRequest{Username: user, Password: alicePW, Org: org})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	whoami := func(tok string) error {
		_, err := c.WhoAmI(bearer(tok), &aegisv1.WhoAmIRequest{})
		return err
	}

	// Logout revokes the access token and the session's refresh family.
	a := login("alice", "acme")
	other := login("alice", "acme")
	if _, err := c.Logout(bearer(a.GetAccessToken()), &aegisv1.LogoutRequest{RefreshToken: a.GetRefreshToken()}); err != nil {
		t.Fatal(err)
	}
	wantCode(t, whoami(a.GetAccessToken()), codes.Unauthenticated)
	_, err := c.Refresh(ctx, &aegisv1.RefreshRequest{RefreshToken: a.GetRefreshToken()})
	wantCode(t, err, codes.Unauthenticated)
	if err := whoami(other.GetAccessToken()); err != nil {
		t.Fatalf("another session was logged out: %v", err)
	}
	// With only a refresh token (the access token expired), Logout still
	// ends the session; with nothing it is refused.
	if _, err := c.Logout(ctx, &aegisv1.LogoutRequest{RefreshToken: other.GetRefreshToken()}); err != nil {
		t.Fatal(err)
	}
	_, err = c.Refresh(ctx, &aegisv1.RefreshRequest{RefreshToken: other.GetRefreshToken()})
	wantCode(t, err, codes.Unauthenticated)
	_, err = c.Logout(ctx, &aegisv1.LogoutRequest{})
	wantCode(t, err, codes.Unauthenticated)

	// Sign out everywhere.
	b := login("alice", "acme")
	bb := login("alice", "acme")
	if _, err := c.Logout(bearer(b.GetAccessToken()), &aegisv1.LogoutRequest{AllSessions: true}); err != nil {
		t.Fatal(err)
	}
	wantCode(t, whoami(bb.GetAccessToken()), codes.Unauthenticated)
	_, err = c.Refresh(ctx, &aegisv1.RefreshRequest{RefreshToken: bb.GetRefreshToken()})
	wantCode(t, err, codes.Unauthenticated)
	fresh := login("alice", "acme") // a login right after still works
	if err := whoami(fresh.GetAccessToken()); err != nil {
		t.Fatalf("login after sign-out: %v", err)
	}

	// RevokeTokens: one's own token needs no permission.
	own, _ := g.ver.Verify(fresh.GetAccessToken())
	if _, err := c.RevokeTokens(bearer(fresh.GetAccessToken()), &aegisv1.RevokeTokensRequest{Target: &aegisv1.RevokeTokensRequest_TokenId{TokenId: own.ID}}); err != nil {
		t.Fatal(err)
	}
	wantCode(t, whoami(fresh.GetAccessToken()), codes.Unauthenticated)

	// Someone else's: NOT_FOUND without aegis:tokens:revoke, as if the
	// principal did not exist; PERMISSION_DENIED for a bare token id.
	victim := login("alice", "acme")
	victimClaims, _ := g.ver.Verify(victim.GetAccessToken())
	root := login("root", "")
	_, err = c.RevokeTokens(bearer(root.GetAccessToken()), &aegisv1.RevokeTokensRequest{Target: &aegisv1.RevokeTokensRequest_Principal{Principal: aliceName}})
	wantCode(t, err, codes.NotFound)
	_, err = c.RevokeTokens(bearer(root.GetAccessToken()), &aegisv1.RevokeTokensRequest{Target: &aegisv1.RevokeTokensRequest_TokenId{TokenId: victimClaims.ID}})
	wantCode(t, err, codes.PermissionDenied)
	if err := whoami(victim.GetAccessToken()); err != nil {
		t.Fatalf("refused revocation revoked: %v", err)
	}

	g.store.mu.Lock()
	g.store.admins["orgs/system/users/root"] = true
	g.store.mu.Unlock()
	_, err = c.RevokeTokens(bearer(root.GetAccessToken()), &aegisv1.RevokeTokensRequest{Target: &aegisv1.RevokeTokensRequest_Principal{Principal: "orgs/acme/users/ghost"}})
	wantCode(t, err, codes.NotFound)
	_, err = c.RevokeTokens(bearer(root.GetAccessToken()), &aegisv1.RevokeTokensRequest{Target: &aegisv1.RevokeTokensRequest_TokenId{TokenId: victimClaims.ID}})
	if err != nil {
		t.Fatal(err)
	}
	wantCode(t, whoami(victim.GetAccessToken()), codes.Unauthenticated)
	g.store.mu.Lock()
	exp := g.store.revTokens[victimClaims.ID]
	g.store.mu.Unlock()
	if exp.Before(victimClaims.ExpiresAt) {
		t.Fatalf("revocation kept until %v, token expires %v", exp, victimClaims.ExpiresAt)
	}
	v2 := login("alice", "acme")
	resp, err := c.RevokeTokens(bearer(root.GetAccessToken()), &aegisv1.RevokeTokensRequest{Target: &aegisv1.RevokeTokensRequest_Principal{Principal: aliceName}})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetRevokeTime() == nil {
		t.Fatal("no revoke time")
	}
	wantCode(t, whoami(v2.GetAccessToken()), codes.Unauthenticated)
	if _, err := g.ver.Verify(v2.GetAccessToken()); !errors.Is(err, token.ErrRevoked) {
		t.Fatalf("verify after principal revocation: %v", err)
	}
	if ev := g.audit.last(t); ev.Action != ActionRevokeTokens || ev.Principal != aliceName || ev.Login != "orgs/system/users/root" || !ev.Success {
		t.Fatalf("audit %+v", ev)
	}
	_, err = c.RevokeTokens(bearer(root.GetAccessToken()), &aegisv1.RevokeTokensRequest{})
	wantCode(t, err, codes.InvalidArgument)
	_, err = c.RevokeTokens(ctx, &aegisv1.RevokeTokensRequest{Target: &aegisv1.RevokeTokensRequest_TokenId{TokenId: "x"}})
	wantCode(t, err, codes.Unauthenticated)
}
