package token

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
)

// startOIDCServer serves the discovery document and JWKS of a fresh
// fixture whose issuer is the test server's URL.
func startOIDCServer(t *testing.T) (*fixture, *httptest.Server) {
	t.Helper()
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	f := &fixture{clk: &fakeClock{now: time.Now()}, store: &MemKeyStore{}, kek: testKEK(t, 1)}
	f.cfg = Config{Issuer: srv.URL, Now: f.clk.Now}
	f.revs = NewRevocationList(f.clk.Now)
	var err error
	if f.ring, err = OpenKeyring(context.Background(), f.store, f.cfg, f.kek); err != nil {
		t.Fatal(err)
	}
	if f.iss, err = NewIssuer(f.ring, f.cfg, f.revs); err != nil {
		t.Fatal(err)
	}
	if f.ver, err = NewVerifier(f.ring, f.cfg, f.revs); err != nil {
		t.Fatal(err)
	}
	mux.Handle(DiscoveryPath, NewDiscovery(DiscoveryOptions{Issuer: srv.URL}).Handler())
	mux.Handle(JWKSPath, JWKSHandler(f.ring))
	return f, srv
}

// TestGoOIDCVerifiesAegisTokens is the interoperability check: a standard
// OIDC client that knows only the issuer URL discovers the JWKS and
// verifies an Aegis token, including after a key rotation.
func TestGoOIDCVerifiesAegisTokens(t *testing.T) {
	f, srv := startOIDCServer(t)
	ctx := oidc.ClientContext(context.Background(), srv.Client())

	provider, err := oidc.NewProvider(ctx, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	verifier := provider.Verifier(&oidc.Config{ClientID: "photoncloud", Now: f.clk.Now})

	raw, c := f.issue(t, Grant{Subject: "u-alice", Kind: KindUser, Org: "acme", Project: "web"})
	tok, err := verifier.Verify(ctx, raw)
	if err != nil {
		t.Fatalf("go-oidc rejects an Aegis token: %v", err)
	}
	if tok.Subject != "u-alice" || tok.Issuer != srv.URL || !tok.Expiry.Equal(c.ExpiresAt) {
		t.Fatalf("go-oidc read %+v", tok)
	}
	var extra struct {
		Kind    string `json:"principal_kind"`
		Org     string `json:"org"`
		Project string `json:"project"`
		JTI     string `json:"jti"`
	}
	if err := tok.Claims(&extra); err != nil {
		t.Fatal(err)
	}
	if extra.Kind != "user" || extra.Org != "acme" || extra.Project != "web" || extra.JTI != c.ID {
		t.Fatalf("custom claims %+v", extra)
	}

	// The audience is checked: a client expecting another audience refuses.
	other := provider.Verifier(&oidc.Config{ClientID: "flashdns", Now: f.clk.Now})
	if _, err := other.Verify(ctx, raw); err == nil {
		t.Fatal("go-oidc accepted a token for another audience")
	}
	// Expiry is checked by go-oidc too.
	late := provider.Verifier(&oidc.Config{ClientID: "photoncloud", Now: func() time.Time { return f.clk.Now().Add(time.Hour) }})
	if _, err := late.Verify(ctx, raw); err == nil {
		t.Fatal("go-oidc accepted an expired token")
	}

	// After a rotation the go-oidc key set, which cached the old JWKS,
	// refetches on the unknown kid and verifies new tokens; old ones still
	// verify because the retired key is still published.
	if _, err := f.ring.Rotate(context.Background()); err != nil {
		t.Fatal(err)
	}
	raw2, c2 := f.issue(t, alice)
	if c2.KeyID == c.KeyID {
		t.Fatal("rotation did not change the signing key")
	}
	for _, r := range []string{raw2, raw} {
		if _, err := verifier.Verify(ctx, r); err != nil {
			t.Fatalf("go-oidc after rotation: %v", err)
		}
	}

	// A forged token with alg "none" gets nowhere with go-oidc either.
	hdr := map[string]any{"alg": "none", "kid": c.KeyID, "typ": "at+jwt"}
	_, pl := parts(t, raw)
	if _, err := verifier.Verify(ctx, forge(t, hdr, mustJSON(t, pl), func([]byte) []byte { return nil })); err == nil {
		t.Fatal("go-oidc accepted alg none")
	}
}

func TestDiscoveryDocument(t *testing.T) {
	_, srv := startOIDCServer(t)
	resp, err := srv.Client().Get(srv.URL + DiscoveryPath)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("status %d, type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var d map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
		t.Fatal(err)
	}
	if d["issuer"] != srv.URL || d["jwks_uri"] != srv.URL+"/.well-known/jwks.json" || d["token_endpoint"] != srv.URL+"/oauth2/token" {
		t.Fatalf("endpoints %v", d)
	}
	grants := toStrings(d["grant_types_supported"])
	for _, g := range []string{"password", "client_credentials", "refresh_token", "urn:ietf:params:oauth:grant-type:token-exchange"} {
		if !slices.Contains(grants, g) {
			t.Errorf("grant %s missing from %v", g, grants)
		}
	}
	if algs := toStrings(d["id_token_signing_alg_values_supported"]); !slices.Equal(algs, []string{"EdDSA"}) {
		t.Errorf("algs %v", algs)
	}
	if _, ok := d["authorization_endpoint"]; ok {
		t.Error("advertises an authorization endpoint Aegis does not have")
	}

	// Switching the password grant off removes it from the document.
	noPw := NewDiscovery(DiscoveryOptions{Issuer: srv.URL, DisablePasswordGrant: true, RevocationPath: "/oauth2/revoke"})
	if slices.Contains(noPw.GrantTypesSupported, "password") || noPw.RevocationEndpoint != srv.URL+"/oauth2/revoke" {
		t.Fatalf("%+v", noPw)
	}

	// Only GET and HEAD.
	resp2, err := srv.Client().Post(srv.URL+JWKSPath, "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp2.Body)
	resp2.Body.Close()
	if resp2.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST JWKS: %d", resp2.StatusCode)
	}
}

func toStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}
