package authn

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/oauth2"

	"github.com/photoncloud/photoncloud/internal/aegis/token"
)

// extIssuer is an external OIDC provider: a real discovery document and
// JWKS served over HTTP, and ID tokens signed with go-jose.
type extIssuer struct {
	srv        *httptest.Server
	url        string
	key        *ecdsa.PrivateKey
	kid        string
	discovered atomic.Int32
}

const extAudience = "aegis-at-ext"

func newExtIssuer(t *testing.T) *extIssuer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	e := &extIssuer{key: key, kid: "ext-key-1"}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		e.discovered.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer":                                e.url,
			"authorization_endpoint":                e.url + "/authorize",
			"token_endpoint":                        e.url + "/token",
			"jwks_uri":                              e.url + "/keys",
			"response_types_supported":              []string{"code"},
			"subject_types_supported":               []string{"public"},
			"id_token_signing_alg_values_supported": []string{"ES256"},
		})
	})
	mux.HandleFunc("/keys", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
			{Key: &key.PublicKey, KeyID: e.kid, Algorithm: string(jose.ES256), Use: "sig"},
		}})
	})
	e.srv = httptest.NewServer(mux)
	e.url = e.srv.URL
	t.Cleanup(e.srv.Close)
	return e
}

// idToken signs claims (defaults: iss, aud, sub, iat, exp) with key.
func (e *extIssuer) idToken(t *testing.T, key *ecdsa.PrivateKey, over map[string]any) string {
	t.Helper()
	now := time.Now()
	claims := map[string]any{
		"iss": e.url, "aud": extAudience, "sub": "ext-carol",
		"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(), "email": "carol@example.com",
	}
	for k, v := range over {
		if v == nil {
			delete(claims, k)
		} else {
			claims[k] = v
		}
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: e.kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func exchangeForm(subject, typ string, extra ...string) url.Values {
	v := url.Values{"grant_type": {token.GrantTokenExchange}, "subject_token": {subject}, "subject_token_type": {typ}}
	for i := 0; i+1 < len(extra); i += 2 {
		v.Add(extra[i], extra[i+1])
	}
	return v
}

func TestFederatedTokenExchange(t *testing.T) {
	ext := newExtIssuer(t)
	down := httptest.NewServer(http.NotFoundHandler()) // an issuer that is down
	downURL := down.URL
	down.Close()
	f := newFixture(t, fixtureOptions{modify: func(c *Config) {
		c.FederatedIssuers = []FederatedIssuer{
			{Issuer: ext.url, Audience: extAudience},
			{Issuer: downURL, Audience: extAudience},
		}
		c.HTTPClient = ext.srv.Client()
	}})
	f.store.fed[[2]string{ext.url, "ext-carol"}] = "orgs/acme/users/carol"
	f.store.fed[[2]string{ext.url, "ext-bob"}] = "orgs/acme/users/bob" // disabled

	resp, body := f.post(t, exchangeForm(ext.idToken(t, ext.key, nil), tokenTypeIDToken), nil)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %v", resp.StatusCode, body)
	}
	if body["issued_token_type"] != tokenTypeAccess || body["token_type"] != "Bearer" || body["refresh_token"] == nil {
		t.Fatalf("response %v", body)
	}
	// A standard OIDC client verifies the Aegis token.
	provider, err := oidc.NewProvider(oidc.ClientContext(context.Background(), f.client(nil)), f.url)
	if err != nil {
		t.Fatal(err)
	}
	idt, err := provider.Verifier(&oidc.Config{ClientID: "photoncloud"}).Verify(context.Background(), body["access_token"].(string))
	if err != nil {
		t.Fatal(err)
	}
	var c aegisClaims
	_ = idt.Claims(&c)
	if idt.Subject != "orgs/acme/users/carol" || c.ClientID != FederatedClientID || c.Org != "acme" {
		t.Fatalf("%s %+v", idt.Subject, c)
	}
	if ev := f.audit.last(t); ev.Action != ActionFederated || !ev.Success || ev.Principal != "orgs/acme/users/carol" {
		t.Fatalf("audit %+v", ev)
	}

	// The federated session refreshes like any other and stays federated.
	cfg := f.cliConfig(oauth2.AuthStyleInParams)
	fresh, err := cfg.TokenSource(f.ctx(), &oauth2.Token{RefreshToken: body["refresh_token"].(string), Expiry: time.Now().Add(-time.Second)}).Token()
	if err != nil {
		t.Fatal(err)
	}
	if rc, err := f.ver.Verify(fresh.AccessToken); err != nil || rc.ClientID != FederatedClientID {
		t.Fatalf("%+v %v", rc, err)
	}

	// "jwt" works as the subject token type too, with downscoping.
	resp, body = f.post(t, exchangeForm(ext.idToken(t, ext.key, nil), tokenTypeJWT, "scope", "orgs/acme/projects/web"), nil)
	if resp.StatusCode != 200 || body["scope"] != "orgs/acme/projects/web" {
		t.Fatalf("%d %v", resp.StatusCode, body)
	}

	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rogue := newExtIssuer(t)
	cases := []struct {
		name, token, reason string
	}{
		{"wrong audience", ext.idToken(t, ext.key, map[string]any{"aud": "someone-else"}), ReasonBadSubjectToken},
		{"expired", ext.idToken(t, ext.key, map[string]any{"exp": time.Now().Add(-time.Minute).Unix()}), ReasonBadSubjectToken},
		{"forged signature", ext.idToken(t, otherKey, nil), ReasonBadSubjectToken},
		{"untrusted issuer", rogue.idToken(t, rogue.key, nil), ReasonUntrustedIssuer},
		{"unknown subject", ext.idToken(t, ext.key, map[string]any{"sub": "ext-nobody"}), ReasonUnknownIdentity},
		{"disabled user", ext.idToken(t, ext.key, map[string]any{"sub": "ext-bob"}), ReasonDisabled},
		{"issuer down", ext.idToken(t, ext.key, map[string]any{"iss": downURL}), ReasonBadSubjectToken},
		{"not a jwt", "abc.def", ReasonBadSubjectToken},
		{"unsigned", "eyJhbGciOiJub25lIn0." + b64json(t, map[string]any{"iss": ext.url, "aud": extAudience, "sub": "ext-carol", "exp": time.Now().Add(time.Hour).Unix()}) + ".", ReasonBadSubjectToken},
	}
	for _, tc := range cases {
		resp, body := f.post(t, exchangeForm(tc.token, tokenTypeIDToken), nil)
		// RFC 8693 section 2.2.2: an unacceptable subject_token is invalid_request.
		wantError(t, resp, body, http.StatusBadRequest, "invalid_request")
		if ev := f.audit.last(t); ev.Success || ev.Reason != tc.reason {
			t.Fatalf("%s: audit %+v", tc.name, ev)
		}
	}
	// The working issuer's discovery document was fetched once and its
	// verifier reused for every exchange.
	if n := ext.discovered.Load(); n != 1 {
		t.Fatalf("discovery fetched %d times", n)
	}
}

func b64json(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func TestDownscopeExchange(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	tok, err := f.cliConfig(oauth2.AuthStyleInParams).PasswordCredentialsToken(f.ctx(), "alice@acme", alicePW)
	if err != nil {
		t.Fatal(err)
	}
	parent, err := f.ver.Verify(tok.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	resp, body := f.post(t, exchangeForm(tok.AccessToken, tokenTypeAccess, "scope", "orgs/acme/projects/web plasmavmc:vms:* flashdns:records:get"), nil)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %v", resp.StatusCode, body)
	}
	if body["refresh_token"] != nil || body["issued_token_type"] != tokenTypeAccess {
		t.Fatalf("downscoping returned %v", body)
	}
	child := body["access_token"].(string)
	c, err := f.ver.Verify(child)
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject != aliceName || c.Project != "web" || !slices.Equal(c.Permissions, []string{"plasmavmc:vms:*", "flashdns:records:get"}) ||
		c.ExpiresAt.After(parent.ExpiresAt) || c.ClientID != PublicClientID {
		t.Fatalf("child %+v", c)
	}

	// From the child only narrower tokens can be made.
	ok := []string{"plasmavmc:vms:start", "orgs/acme/projects/web flashdns:records:get"}
	for _, sc := range ok {
		if resp, body := f.post(t, exchangeForm(child, tokenTypeAccess, "scope", sc), nil); resp.StatusCode != 200 {
			t.Fatalf("%q: %d %v", sc, resp.StatusCode, body)
		}
	}
	for _, sc := range []string{"orgs/acme/projects/db", "plasmavmc:*:get", "aegis:users:get"} {
		resp, body := f.post(t, exchangeForm(child, tokenTypeAccess, "scope", sc), nil)
		wantError(t, resp, body, http.StatusBadRequest, "invalid_scope")
	}
	resp, body = f.post(t, exchangeForm(tok.AccessToken, tokenTypeAccess, "scope", "orgs/other/projects/web"), nil)
	wantError(t, resp, body, http.StatusBadRequest, "invalid_scope")

	// A configured audience can be chosen; others cannot.
	resp, body = f.post(t, exchangeForm(tok.AccessToken, tokenTypeAccess, "audience", "photoncloud"), nil)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %v", resp.StatusCode, body)
	}
	// A revoked or garbage subject token is refused.
	if err := f.store.RevokeToken(context.Background(), parent.ID, parent.ExpiresAt); err != nil {
		t.Fatal(err)
	}
	for _, st := range []string{tok.AccessToken, "garbage"} {
		resp, body := f.post(t, exchangeForm(st, tokenTypeAccess, "scope", "plasmavmc:vms:get"), nil)
		wantError(t, resp, body, http.StatusBadRequest, "invalid_request")
	}
}
