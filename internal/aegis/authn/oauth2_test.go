package authn

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/photoncloud/photoncloud/internal/aegis/password"
	"github.com/photoncloud/photoncloud/internal/aegis/token"
)

// cliConfig is how the photon CLI (or any OAuth2 library) talks to Aegis.
func (f *fixture) cliConfig(style oauth2.AuthStyle) *oauth2.Config {
	return &oauth2.Config{
		ClientID: PublicClientID,
		Endpoint: oauth2.Endpoint{TokenURL: f.url + token.TokenPath, AuthStyle: style},
	}
}

func (f *fixture) ctx() context.Context {
	return context.WithValue(context.Background(), oauth2.HTTPClient, f.client(nil))
}

// aegisClaims are the Aegis-specific claims as a standard client reads them.
type aegisClaims struct {
	Kind        string   `json:"principal_kind"`
	Org         string   `json:"org"`
	Project     string   `json:"project"`
	Permissions []string `json:"permissions"`
	ClientID    string   `json:"client_id"`
	JTI         string   `json:"jti"`
}

// TestStandardClients is the interoperability test: x/oauth2 gets tokens
// with the password grant (both client authentication styles), go-oidc
// verifies them through discovery and the JWKS, and x/oauth2 refreshes.
func TestStandardClients(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	ctx := f.ctx()

	provider, err := oidc.NewProvider(oidc.ClientContext(context.Background(), f.client(nil)), f.url)
	if err != nil {
		t.Fatal(err)
	}
	verifier := provider.Verifier(&oidc.Config{ClientID: "photoncloud"})

	for _, style := range []oauth2.AuthStyle{oauth2.AuthStyleInParams, oauth2.AuthStyleInHeader} {
		tok, err := f.cliConfig(style).PasswordCredentialsToken(ctx, "alice@acme", alicePW)
		if err != nil {
			t.Fatalf("style %d: %v", style, err)
		}
		if tok.RefreshToken == "" || tok.TokenType != "Bearer" || time.Until(tok.Expiry) < 14*time.Minute {
			t.Fatalf("token %+v", tok)
		}
		idt, err := verifier.Verify(context.Background(), tok.AccessToken)
		if err != nil {
			t.Fatalf("go-oidc rejects the access token: %v", err)
		}
		var c aegisClaims
		if err := idt.Claims(&c); err != nil {
			t.Fatal(err)
		}
		if idt.Subject != aliceName || c.Kind != "user" || c.Org != "acme" || c.ClientID != PublicClientID || c.Project != "" {
			t.Fatalf("claims %s %+v", idt.Subject, c)
		}
	}
	ev := f.audit.last(t)
	if ev.Action != ActionLogin || !ev.Success || ev.Principal != aliceName || ev.TokenID == "" || ev.Transport != "http" || !ev.SourceAddr.IsLoopback() {
		t.Fatalf("audit %+v", ev)
	}

	// The other spellings of the user name, and a downscoped login.
	cfg := f.cliConfig(oauth2.AuthStyleInParams)
	cfg.Scopes = []string{"openid", "orgs/acme/projects/web"}
	tok, err := cfg.PasswordCredentialsToken(ctx, "orgs/acme/users/alice", alicePW)
	if err != nil {
		t.Fatal(err)
	}
	if got := tok.Extra("scope"); got != "orgs/acme/projects/web" {
		t.Fatalf("granted scope %v", got)
	}
	c, err := f.ver.Verify(tok.AccessToken)
	if err != nil || c.Project != "web" || c.Org != "acme" {
		t.Fatalf("downscoped login: %+v %v", c, err)
	}

	// Refresh through the library: an expired token makes it refresh, the
	// refresh token rotates, and the new token keeps the downscoping.
	old := tok.RefreshToken
	tok.Expiry = time.Now().Add(-time.Minute)
	fresh, err := cfg.TokenSource(ctx, tok).Token()
	if err != nil {
		t.Fatal(err)
	}
	if fresh.AccessToken == tok.AccessToken || fresh.RefreshToken == "" || fresh.RefreshToken == old {
		t.Fatal("refresh did not rotate")
	}
	if _, err := verifier.Verify(context.Background(), fresh.AccessToken); err != nil {
		t.Fatal(err)
	}
	if c, err := f.ver.Verify(fresh.AccessToken); err != nil || c.Project != "web" {
		t.Fatalf("refreshed token lost its project: %+v %v", c, err)
	}
}

func TestPasswordGrantFailuresLookAlike(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	cases := []struct {
		user, pw, reason string
	}{
		{"alice@acme", "wrong", ReasonBadPassword},
		{"nobody@acme", alicePW, ReasonUnknownUser},
		{"bob@acme", alicePW, ReasonDisabled}, // right password, disabled user
		{"carol@acme", "anything", ReasonNoPassword},
		{"alice@otherorg", alicePW, ReasonUnknownUser},
		{"Not A Label@acme", alicePW, ReasonUnknownUser},
		{"alice@acme", strings.Repeat("x", 5000), ReasonBadPassword},
	}
	var first map[string]any
	for _, tc := range cases {
		resp, body := f.post(t, url.Values{"grant_type": {"password"}, "username": {tc.user}, "password": {tc.pw}}, nil)
		wantError(t, resp, body, http.StatusBadRequest, "invalid_grant")
		if first == nil {
			first = body
		} else if body["error_description"] != first["error_description"] {
			t.Fatalf("%s: description %q differs from %q", tc.user, body["error_description"], first["error_description"])
		}
		if ev := f.audit.last(t); ev.Success || ev.Reason != tc.reason || ev.Action != ActionLogin {
			t.Fatalf("%s: audit %+v, want reason %s", tc.user, ev, tc.reason)
		}
	}
	// x/oauth2 surfaces the RFC error code.
	_, err := f.cliConfig(oauth2.AuthStyleInParams).PasswordCredentialsToken(f.ctx(), "alice@acme", "wrong")
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
		t.Fatalf("x/oauth2 error %v", err)
	}
	if f.refStore.Len() != 0 {
		t.Fatal("a failed login stored a refresh token")
	}

	// Other clients may not use the password grant; photon-cli has no secret.
	resp, body := f.post(t, url.Values{"grant_type": {"password"}, "username": {"alice@acme"}, "password": {alicePW}, "client_id": {"key-ci"}, "client_secret": {ciSecret}}, nil)
	wantError(t, resp, body, http.StatusBadRequest, "unauthorized_client")
	resp, body = f.post(t, url.Values{"grant_type": {"password"}, "username": {"alice@acme"}, "password": {alicePW}}, func(r *http.Request) {
		r.SetBasicAuth(PublicClientID, "secret")
	})
	wantError(t, resp, body, http.StatusUnauthorized, "invalid_client")
	if resp.Header.Get("WWW-Authenticate") == "" {
		t.Fatal("401 without WWW-Authenticate")
	}
	// A project of another org cannot be asked for.
	resp, body = f.post(t, url.Values{"grant_type": {"password"}, "username": {"alice@acme"}, "password": {alicePW}, "scope": {"orgs/other/projects/web"}}, nil)
	wantError(t, resp, body, http.StatusBadRequest, "invalid_scope")
}

func TestPasswordRehash(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	old, err := password.NewHasher(password.Options{Params: password.Params{Memory: 32, Time: 2, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	h, err := old.Hash(context.Background(), "pw-of-dave")
	if err != nil {
		t.Fatal(err)
	}
	f.store.addUser("acme", "dave", h, false)
	if _, err := f.cliConfig(oauth2.AuthStyleInParams).PasswordCredentialsToken(f.ctx(), "dave@acme", "pw-of-dave"); err != nil {
		t.Fatal(err)
	}
	u, _ := f.store.UserByLogin(context.Background(), "acme", "dave")
	if u.PasswordHash == h || f.hasher.NeedsRehash(u.PasswordHash) {
		t.Fatal("outdated hash not upgraded")
	}
	if _, err := f.cliConfig(oauth2.AuthStyleInParams).PasswordCredentialsToken(f.ctx(), "dave@acme", "pw-of-dave"); err != nil {
		t.Fatalf("login after rehash: %v", err)
	}
}

func TestRateLimiting(t *testing.T) {
	f := newFixture(t, fixtureOptions{limiter: password.LimiterOptions{
		PerUser: password.Rate{Burst: 3, Every: time.Hour},
		PerAddr: password.Rate{Burst: 5, Every: time.Hour},
	}})
	login := func(user, pw string) (*http.Response, map[string]any) {
		return f.post(t, url.Values{"grant_type": {"password"}, "username": {user}, "password": {pw}}, nil)
	}
	for range 3 {
		resp, body := login("alice@acme", "wrong")
		wantError(t, resp, body, http.StatusBadRequest, "invalid_grant")
	}
	// The fourth attempt on alice is refused before the password is
	// looked at, right password or not.
	resp, body := login("alice@acme", alicePW)
	wantError(t, resp, body, http.StatusTooManyRequests, "temporarily_unavailable")
	if ra := resp.Header.Get("Retry-After"); ra == "" || ra == "0" {
		t.Fatalf("Retry-After %q", ra)
	}
	if ev := f.audit.last(t); ev.Reason != ReasonRateLimited || ev.Principal != "" {
		t.Fatalf("audit %+v", ev)
	}
	// Another user from the same address still has two attempts of the
	// address's five, then the address is limited too.
	for range 2 {
		resp, body := login("nobody@acme", "x")
		wantError(t, resp, body, http.StatusBadRequest, "invalid_grant")
	}
	resp, body = login("root", alicePW)
	wantError(t, resp, body, http.StatusTooManyRequests, "temporarily_unavailable")
}

func TestRateLimitCountsForwardedAddress(t *testing.T) {
	f := newFixture(t, fixtureOptions{
		limiter: password.LimiterOptions{PerUser: password.Rate{Burst: 100, Every: time.Hour}, PerAddr: password.Rate{Burst: 1, Every: time.Hour}},
		modify: func(c *Config) {
			c.TrustedProxies = nil // first without trusting the loopback proxy
		},
	})
	from := func(ip string) func(*http.Request) {
		return func(r *http.Request) { r.Header.Set("X-Forwarded-For", "203.0.113.9, "+ip) }
	}
	form := url.Values{"grant_type": {"password"}, "username": {"alice@acme"}, "password": {alicePW}}
	if resp, _ := f.post(t, form, from("198.51.100.1")); resp.StatusCode != 200 {
		t.Fatal(resp.Status)
	}
	// Untrusted peer: the header is ignored, so both count as loopback.
	resp, body := f.post(t, form, from("198.51.100.2"))
	wantError(t, resp, body, http.StatusTooManyRequests, "temporarily_unavailable")

	g := newFixture(t, fixtureOptions{
		limiter: password.LimiterOptions{PerUser: password.Rate{Burst: 100, Every: time.Hour}, PerAddr: password.Rate{Burst: 1, Every: time.Hour}},
		modify:  func(c *Config) { c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")} },
	})
	for _, ip := range []string{"198.51.100.1", "198.51.100.2"} {
		if resp, _ := g.post(t, form, from(ip)); resp.StatusCode != 200 {
			t.Fatalf("%s: %s", ip, resp.Status)
		}
	}
	if ev := g.audit.last(t); ev.SourceAddr.String() != "198.51.100.2" {
		t.Fatalf("audit source %v", ev.SourceAddr)
	}
	resp, body = g.post(t, form, from("198.51.100.2"))
	wantError(t, resp, body, http.StatusTooManyRequests, "temporarily_unavailable")
}

func TestPasswordGrantDisabled(t *testing.T) {
	f := newFixture(t, fixtureOptions{modify: func(c *Config) { c.DisablePasswordGrant = true }})
	_, err := f.cliConfig(oauth2.AuthStyleInParams).PasswordCredentialsToken(f.ctx(), "alice@acme", alicePW)
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != "unsupported_grant_type" || re.Response.StatusCode != 400 {
		t.Fatalf("password grant while disabled: %v", err)
	}
	provider, err := oidc.NewProvider(oidc.ClientContext(context.Background(), f.client(nil)), f.url)
	if err != nil {
		t.Fatal(err)
	}
	var meta struct {
		Grants     []string `json:"grant_types_supported"`
		Revocation string   `json:"revocation_endpoint"`
	}
	if err := provider.Claims(&meta); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(meta.Grants, "password") || !slices.Contains(meta.Grants, "client_credentials") || meta.Revocation != f.url+RevocationPath {
		t.Fatalf("discovery %+v", meta)
	}
	if len(f.audit.all()) != 0 || f.refStore.Len() != 0 {
		t.Fatal("a refused grant type left traces")
	}
	// Client credentials still work.
	cc := clientcredentials.Config{ClientID: "key-ci", ClientSecret: ciSecret, TokenURL: f.url + token.TokenPath}
	if _, err := cc.Token(f.ctx()); err != nil {
		t.Fatal(err)
	}
}

func TestClientCredentials(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	for _, style := range []oauth2.AuthStyle{oauth2.AuthStyleInHeader, oauth2.AuthStyleInParams} {
		cc := clientcredentials.Config{
			ClientID: "key-ci", ClientSecret: ciSecret, TokenURL: f.url + token.TokenPath, AuthStyle: style,
			Scopes: []string{"orgs/acme/projects/web", "plasmavmc:vms:get", "flashdns:*:list"},
		}
		tok, err := cc.Token(f.ctx())
		if err != nil {
			t.Fatalf("style %d: %v", style, err)
		}
		if tok.RefreshToken != "" {
			t.Fatal("service accounts get no refresh token")
		}
		if got := tok.Extra("scope"); got != "orgs/acme/projects/web plasmavmc:vms:get flashdns:*:list" {
			t.Fatalf("scope %v", got)
		}
		c, err := f.ver.Verify(tok.AccessToken)
		if err != nil {
			t.Fatal(err)
		}
		if c.Subject != saCI || c.Kind != token.KindServiceAccount || c.Org != "acme" || c.Project != "web" ||
			!slices.Equal(c.Permissions, []string{"plasmavmc:vms:get", "flashdns:*:list"}) || c.ClientID != "key-ci" {
			t.Fatalf("claims %+v", c)
		}
	}
	if ev := f.audit.last(t); ev.Action != ActionClientCredentials || !ev.Success || ev.Principal != saCI {
		t.Fatalf("audit %+v", ev)
	}
	// A secret containing form-special characters survives Basic encoding
	// (RFC 6749 section 2.3.1).
	odd := "s3cr:t+/=&%"
	f.store.addKey("key-odd", saCI, HashClientSecret(odd), time.Time{})
	cc := clientcredentials.Config{ClientID: "key-odd", ClientSecret: odd, TokenURL: f.url + token.TokenPath, AuthStyle: oauth2.AuthStyleInHeader}
	if _, err := cc.Token(f.ctx()); err != nil {
		t.Fatalf("odd secret: %v", err)
	}
}

func TestClientCredentialsFailures(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	cases := []struct {
		id, secret, reason string
	}{
		{"key-ci", "wrong-secret", ReasonBadSecret},
		{"key-nope", ciSecret, ReasonUnknownClient},
		{"key-old", ciSecret, ReasonKeyExpired},
		{"key-off", ciSecret, ReasonDisabled},
		{"key-old", "wrong-secret", ReasonBadSecret}, // an expired key says nothing without its secret
	}
	for _, tc := range cases {
		for _, style := range []oauth2.AuthStyle{oauth2.AuthStyleInHeader, oauth2.AuthStyleInParams} {
			cc := clientcredentials.Config{ClientID: tc.id, ClientSecret: tc.secret, TokenURL: f.url + token.TokenPath, AuthStyle: style}
			_, err := cc.Token(f.ctx())
			var re *oauth2.RetrieveError
			if !errors.As(err, &re) || re.ErrorCode != "invalid_client" || re.Response.StatusCode != 401 {
				t.Fatalf("%s/%d: %v", tc.id, style, err)
			}
			if re.ErrorDescription != "client authentication failed" {
				t.Fatalf("%s: description %q leaks the reason", tc.id, re.ErrorDescription)
			}
			if ev := f.audit.last(t); ev.Success || ev.Reason != tc.reason {
				t.Fatalf("%s: audit %+v", tc.id, ev)
			}
		}
	}
	// The public client may not use client_credentials; nor may nobody.
	resp, body := f.post(t, url.Values{"grant_type": {"client_credentials"}, "client_id": {PublicClientID}}, nil)
	wantError(t, resp, body, http.StatusBadRequest, "unauthorized_client")
	resp, body = f.post(t, url.Values{"grant_type": {"client_credentials"}}, nil)
	wantError(t, resp, body, http.StatusUnauthorized, "invalid_client")
	// A service account cannot ask for a project of another org.
	resp, body = f.post(t, url.Values{"grant_type": {"client_credentials"}, "client_id": {"key-ci"}, "client_secret": {ciSecret}, "scope": {"orgs/evil/projects/x"}}, nil)
	wantError(t, resp, body, http.StatusBadRequest, "invalid_scope")
	// A store outage is a server error, never "wrong secret".
	f.store.mu.Lock()
	f.store.failWith = errors.New("chainfire unavailable")
	f.store.mu.Unlock()
	resp, body = f.post(t, url.Values{"grant_type": {"client_credentials"}, "client_id": {"key-ci"}, "client_secret": {ciSecret}}, nil)
	wantError(t, resp, body, http.StatusInternalServerError, "server_error")
	if strings.Contains(body["error_description"].(string), "chainfire") {
		t.Fatal("internal error detail sent to the client")
	}
}

// TestRefreshReuseDetection: a refresh token used twice means it was
// copied; the whole family dies, the legitimate successor included.
func TestRefreshReuseDetection(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	tok, err := f.cliConfig(oauth2.AuthStyleInParams).PasswordCredentialsToken(f.ctx(), "alice@acme", alicePW)
	if err != nil {
		t.Fatal(err)
	}
	refresh := func(rt string) (*http.Response, map[string]any) {
		return f.post(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {PublicClientID}}, nil)
	}
	resp, body := refresh(tok.RefreshToken)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %v", resp.StatusCode, body)
	}
	next := body["refresh_token"].(string)
	if body["refresh_expires_in"].(float64) <= 0 {
		t.Fatalf("refresh_expires_in %v", body["refresh_expires_in"])
	}

	resp, body = refresh(tok.RefreshToken) // the thief, or the victim, replays
	wantError(t, resp, body, http.StatusBadRequest, "invalid_grant")
	if ev := f.audit.last(t); ev.Reason != ReasonRefreshReused {
		t.Fatalf("audit %+v", ev)
	}
	resp, body = refresh(next)
	wantError(t, resp, body, http.StatusBadRequest, "invalid_grant")

	// A disabled user's refresh token stops working, and is spent.
	tok, err = f.cliConfig(oauth2.AuthStyleInParams).PasswordCredentialsToken(f.ctx(), "alice@acme", alicePW)
	if err != nil {
		t.Fatal(err)
	}
	f.store.setDisabled(aliceName, true)
	resp, body = refresh(tok.RefreshToken)
	wantError(t, resp, body, http.StatusBadRequest, "invalid_grant")
	f.store.setDisabled(aliceName, false)
	resp, body = refresh(tok.RefreshToken)
	wantError(t, resp, body, http.StatusBadRequest, "invalid_grant")

	// Garbage and a confidential client are refused without a trace.
	before := f.refStore.Len()
	resp, body = refresh("rt1.garbage")
	wantError(t, resp, body, http.StatusBadRequest, "invalid_grant")
	resp, body = f.post(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}, "client_id": {"key-ci"}, "client_secret": {ciSecret}}, nil)
	wantError(t, resp, body, http.StatusBadRequest, "unauthorized_client")
	if f.refStore.Len() != before {
		t.Fatal("refused refreshes changed the store")
	}
}

func TestRefreshScopeNarrowing(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	tok, err := f.cliConfig(oauth2.AuthStyleInParams).PasswordCredentialsToken(f.ctx(), "alice@acme", alicePW)
	if err != nil {
		t.Fatal(err)
	}
	resp, body := f.post(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "scope": {"orgs/acme/projects/web aegis:users:get"}}, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %v", resp.StatusCode, body)
	}
	c, err := f.ver.Verify(body["access_token"].(string))
	if err != nil || c.Project != "web" || !slices.Equal(c.Permissions, []string{"aegis:users:get"}) {
		t.Fatalf("%+v %v", c, err)
	}
	// The family keeps the login's unrestricted grant.
	resp, body = f.post(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {body["refresh_token"].(string)}}, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %v", resp.StatusCode, body)
	}
	if c, err := f.ver.Verify(body["access_token"].(string)); err != nil || c.Project != "" || c.Permissions != nil {
		t.Fatalf("%+v %v", c, err)
	}
}

func TestRevocationEndpoint(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	tok, err := f.cliConfig(oauth2.AuthStyleInParams).PasswordCredentialsToken(f.ctx(), "alice@acme", alicePW)
	if err != nil {
		t.Fatal(err)
	}
	revoke := func(form url.Values) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, f.url+RevocationPath, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, _ := f.do(t, req)
		return resp
	}
	for _, tk := range []string{tok.AccessToken, tok.RefreshToken, "not-a-token"} {
		if resp := revoke(url.Values{"token": {tk}, "client_id": {PublicClientID}}); resp.StatusCode != 200 {
			t.Fatalf("revoke: %s", resp.Status)
		}
	}
	if _, err := f.ver.Verify(tok.AccessToken); !errors.Is(err, token.ErrRevoked) {
		t.Fatalf("revoked access token verifies: %v", err)
	}
	resp, body := f.post(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}, nil)
	wantError(t, resp, body, http.StatusBadRequest, "invalid_grant")
	if resp := revoke(url.Values{"token": {"x"}, "client_id": {"key-ci"}, "client_secret": {"wrong"}}); resp.StatusCode != 401 {
		t.Fatalf("bad client on revoke: %s", resp.Status)
	}
	if resp := revoke(url.Values{}); resp.StatusCode != 400 {
		t.Fatalf("empty revoke: %s", resp.Status)
	}
}

// TestMalformedRequests: every malformed request gets its RFC 6749 error
// code and status, and changes nothing: no refresh token, no limiter entry,
// no revocation, no audit event.
func TestMalformedRequests(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	pw := func(extra ...string) string {
		v := url.Values{"grant_type": {"password"}, "username": {"alice@acme"}, "password": {alicePW}}
		for i := 0; i+1 < len(extra); i += 2 {
			v.Set(extra[i], extra[i+1])
		}
		return v.Encode()
	}
	type tc struct {
		name   string
		method string
		path   string // default token path
		ctype  string // default form
		body   string
		auth   string
		status int
		code   string
	}
	form := "application/x-www-form-urlencoded"
	cases := []tc{
		{name: "GET", method: http.MethodGet, body: "", status: 405, code: "invalid_request"},
		{name: "query string", path: token.TokenPath + "?grant_type=password", body: pw(), status: 400, code: "invalid_request"},
		{name: "json body", ctype: "application/json", body: `{"grant_type":"password"}`, status: 400, code: "invalid_request"},
		{name: "no content type", ctype: "-", body: pw(), status: 400, code: "invalid_request"},
		{name: "latin1", ctype: form + "; charset=iso-8859-1", body: pw(), status: 400, code: "invalid_request"},
		{name: "bad escape", body: "grant_type=password&username=%zz", status: 400, code: "invalid_request"},
		{name: "semicolon", body: "grant_type=password;username=a", status: 400, code: "invalid_request"},
		{name: "not utf8", body: pw("username", "\xff\xfe"), status: 400, code: "invalid_request"},
		{name: "repeated", body: pw() + "&password=again", status: 400, code: "invalid_request"},
		{name: "too large", body: pw("pad", strings.Repeat("a", maxFormBytes)), status: 400, code: "invalid_request"},
		{name: "no grant type", body: "username=a&password=b", status: 400, code: "invalid_request"},
		{name: "unknown grant", body: "grant_type=authorization_code&code=x", status: 400, code: "unsupported_grant_type"},
		{name: "jwt bearer", body: "grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer", status: 400, code: "unsupported_grant_type"},
		{name: "no username", body: "grant_type=password&password=x", status: 400, code: "invalid_request"},
		{name: "no password", body: "grant_type=password&username=alice", status: 400, code: "invalid_request"},
		{name: "bad user name", body: pw("username", "orgs/acme/alice"), status: 400, code: "invalid_request"},
		{name: "conflicting org", body: pw("org", "other"), status: 400, code: "invalid_request"},
		{name: "bad scope", body: pw("scope", "admin"), status: 400, code: "invalid_scope"},
		{name: "bad project scope", body: pw("scope", "orgs/acme/projects/"), status: 400, code: "invalid_scope"},
		{name: "two projects", body: pw("scope", "orgs/acme/projects/a orgs/acme/projects/b"), status: 400, code: "invalid_scope"},
		{name: "no refresh token", body: "grant_type=refresh_token", status: 400, code: "invalid_request"},
		{name: "bearer auth", body: pw(), auth: "Bearer abc", status: 401, code: "invalid_client"},
		{name: "basic and form", body: pw("client_id", PublicClientID), auth: "Basic cGhvdG9uLWNsaTo=", status: 400, code: "invalid_request"},
		{name: "bad basic", body: pw(), auth: "Basic !!!", status: 401, code: "invalid_client"},
		{name: "secret only", body: pw("client_secret", "x"), status: 401, code: "invalid_client"},
		{name: "exchange no type", body: "grant_type=" + url.QueryEscape(token.GrantTokenExchange) + "&subject_token=x", status: 400, code: "invalid_request"},
		{name: "exchange bad type", body: "grant_type=" + url.QueryEscape(token.GrantTokenExchange) + "&subject_token=x&subject_token_type=saml", status: 400, code: "invalid_request"},
		{name: "exchange actor", body: "grant_type=" + url.QueryEscape(token.GrantTokenExchange) + "&subject_token=x&subject_token_type=" + url.QueryEscape(tokenTypeAccess) + "&actor_token=y", status: 400, code: "invalid_request"},
		{name: "exchange resource", body: "grant_type=" + url.QueryEscape(token.GrantTokenExchange) + "&subject_token=x&subject_token_type=" + url.QueryEscape(tokenTypeAccess) + "&resource=https://x", status: 400, code: "invalid_target"},
		{name: "exchange audience", body: "grant_type=" + url.QueryEscape(token.GrantTokenExchange) + "&subject_token=x&subject_token_type=" + url.QueryEscape(tokenTypeAccess) + "&audience=elsewhere", status: 400, code: "invalid_target"},
		{name: "exchange requested type", body: "grant_type=" + url.QueryEscape(token.GrantTokenExchange) + "&subject_token=x&subject_token_type=" + url.QueryEscape(tokenTypeAccess) + "&requested_token_type=" + url.QueryEscape(tokenTypeIDToken), status: 400, code: "invalid_request"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			method := c.method
			if method == "" {
				method = http.MethodPost
			}
			path := c.path
			if path == "" {
				path = token.TokenPath
			}
			req, err := http.NewRequest(method, f.url+path, strings.NewReader(c.body))
			if err != nil {
				t.Fatal(err)
			}
			switch c.ctype {
			case "":
				req.Header.Set("Content-Type", form)
			case "-":
			default:
				req.Header.Set("Content-Type", c.ctype)
			}
			if c.auth != "" {
				req.Header.Set("Authorization", c.auth)
			}
			resp, body := f.do(t, req)
			wantError(t, resp, body, c.status, c.code)
		})
	}
	users, addrs := f.limiter.Len()
	toks, princ := f.store.revocations()
	if f.refStore.Len() != 0 || users+addrs != 0 || toks+princ != 0 || len(f.audit.all()) != 0 {
		t.Fatalf("malformed requests left traces: refresh %d, limiter %d/%d, revocations %d/%d, audit %v",
			f.refStore.Len(), users, addrs, toks, princ, f.audit.all())
	}
}

// TestMTLSClientCredentials: a service account bound to a certificate URI
// SAN authenticates with the connection's verified client certificate.
func TestMTLSClientCredentials(t *testing.T) {
	f := newFixture(t, fixtureOptions{tls: true})
	apiCert := f.ca.clientCert(t, apiURISAN)
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, f.client(&apiCert))
	cc := clientcredentials.Config{ClientID: saAPI, TokenURL: f.url + token.TokenPath, AuthStyle: oauth2.AuthStyleInParams}
	tok, err := cc.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c, err := f.ver.Verify(tok.AccessToken)
	if err != nil || c.Subject != saAPI || c.ClientID != CertificateClientID || c.Kind != token.KindServiceAccount {
		t.Fatalf("%+v %v", c, err)
	}
	// Without client_id too (the certificate alone).
	req, _ := http.NewRequest(http.MethodPost, f.url+token.TokenPath, strings.NewReader("grant_type=client_credentials"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := f.client(&apiCert).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatal(resp.Status)
	}

	// A pinned fingerprint wins over a SAN binding.
	pinned := f.ca.clientCert(t, apiURISAN)
	f.store.mu.Lock()
	f.store.certs[fingerprint(pinned)] = saCI
	f.store.certs["uri:spiffe://photon/ns/web/sa/ci"] = saCI
	f.store.mu.Unlock()
	ctxPinned := context.WithValue(context.Background(), oauth2.HTTPClient, f.client(&pinned))
	tok, err = (&clientcredentials.Config{ClientID: saCI, TokenURL: f.url + token.TokenPath, AuthStyle: oauth2.AuthStyleInParams}).Token(ctxPinned)
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := f.ver.Verify(tok.AccessToken); c.Subject != saCI {
		t.Fatalf("pinned certificate gave %s", c.Subject)
	}

	for name, tc := range map[string]struct {
		cert     *tls.Certificate
		clientID string
		reason   string
	}{
		"unbound certificate": {cert: ptr(f.ca.clientCert(t, "spiffe://photon/other")), reason: ReasonUnknownCert},
		"client id mismatch":  {cert: &apiCert, clientID: saCI, reason: ReasonClientMismatch},
		"ambiguous":           {cert: ptr(f.ca.clientCert(t, apiURISAN, "spiffe://photon/ns/web/sa/ci")), reason: ReasonAmbiguousCert},
	} {
		ctx := context.WithValue(context.Background(), oauth2.HTTPClient, f.client(tc.cert))
		_, err := (&clientcredentials.Config{ClientID: tc.clientID, TokenURL: f.url + token.TokenPath, AuthStyle: oauth2.AuthStyleInParams}).Token(ctx)
		var re *oauth2.RetrieveError
		if !errors.As(err, &re) || re.ErrorCode != "invalid_client" {
			t.Fatalf("%s: %v", name, err)
		}
		if ev := f.audit.last(t); ev.Reason != tc.reason {
			t.Fatalf("%s: audit %+v", name, ev)
		}
	}
	// A certificate of an untrusted CA is not even a client certificate.
	other := newTestCA(t).clientCert(t, apiURISAN)
	tr := f.srv.Client().Transport.(*http.Transport).Clone()
	tr.TLSClientConfig.Certificates = []tls.Certificate{other}
	if resp, err := (&http.Client{Transport: tr}).Post(f.url+token.TokenPath, "application/x-www-form-urlencoded", strings.NewReader("grant_type=client_credentials")); err == nil {
		resp.Body.Close()
		t.Fatalf("untrusted client certificate: %s", resp.Status)
	}
}

func ptr[T any](v T) *T { return &v }

// TestConcurrentRefresh: of many simultaneous uses of one refresh token at
// most one can win, and the others are reuse, which ends the family.
func TestConcurrentRefresh(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	tok, err := f.cliConfig(oauth2.AuthStyleInParams).PasswordCredentialsToken(f.ctx(), "alice@acme", alicePW)
	if err != nil {
		t.Fatal(err)
	}
	const n = 8
	codes := make(chan int, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			resp, _ := f.post(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}, nil)
			codes <- resp.StatusCode
		})
	}
	wg.Wait()
	close(codes)
	ok := 0
	for c := range codes {
		switch c {
		case 200:
			ok++
		case 400:
		default:
			t.Fatalf("status %d", c)
		}
	}
	if ok > 1 {
		t.Fatalf("%d concurrent refreshes of one token succeeded", ok)
	}
	if f.refStore.Len() != 0 {
		t.Fatalf("family survived a reuse: %d records", f.refStore.Len())
	}
}

// TestUnknownUserCostsAHash checks that logins take constant work: an
// unknown user, a user without a password, an invalid name and a wrong
// password each cost exactly one argon2 derivation, so response time does
// not tell which user names exist. (Counting derivations rather than
// timing keeps the test deterministic on a loaded machine.)
func TestUnknownUserCostsAHash(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	for _, user := range []string{"nobody@acme", "carol@acme", "Bad Name@acme", "alice@acme"} {
		before := f.cfg.Hasher.Derivations()
		resp, body := f.post(t, url.Values{"grant_type": {"password"}, "username": {user}, "password": {"wrong password"}}, nil)
		wantError(t, resp, body, http.StatusBadRequest, "invalid_grant")
		if got := f.cfg.Hasher.Derivations() - before; got != 1 {
			t.Fatalf("login as %s ran %d argon2 derivations, want 1", user, got)
		}
	}
}
