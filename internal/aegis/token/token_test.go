package token

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

func TestIssueVerifyRoundTrip(t *testing.T) {
	f := newFixture(t)
	g := Grant{Subject: "sa-1", Kind: KindServiceAccount, Org: "acme", Project: "web",
		Permissions: []string{"plasmavmc:vms:*", "flashdns:records:update"}, ClientID: "key-1"}
	raw, issued := f.issue(t, g)

	hdr, pl := parts(t, raw)
	if hdr["alg"] != "EdDSA" || hdr["kid"] != f.ring.ActiveKID() || hdr["typ"] != "at+jwt" || len(hdr) != 3 {
		t.Fatalf("header %v", hdr)
	}
	for _, claim := range []string{"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "principal_kind", "org", "project", "permissions", "client_id"} {
		if _, ok := pl[claim]; !ok {
			t.Errorf("claim %s missing from %v", claim, pl)
		}
	}
	// A single audience is a string, as most JWT libraries expect.
	if pl["aud"] != "photoncloud" {
		t.Errorf("aud = %#v", pl["aud"])
	}

	c, err := f.ver.Verify(raw)
	if err != nil {
		t.Fatal(err)
	}
	want := &Claims{
		Issuer: testIssuer, Subject: "sa-1", Audience: []string{"photoncloud"},
		IssuedAt: t0.Truncate(time.Second), NotBefore: t0.Truncate(time.Second),
		ExpiresAt: t0.Truncate(time.Second).Add(15 * time.Minute),
		ID:        issued.ID, Kind: KindServiceAccount, Org: "acme", Project: "web",
		Permissions: g.Permissions, ClientID: "key-1", KeyID: f.ring.ActiveKID(),
	}
	if !claimsEqual(c, want) || !claimsEqual(issued, want) {
		t.Fatalf("verified %+v\nissued %+v\nwant %+v", c, issued, want)
	}
	if c.Grant().Project != "web" {
		t.Fatal("Grant() lost the project")
	}

	// Every token gets its own jti.
	raw2, c2 := f.issue(t, g)
	if raw2 == raw || c2.ID == issued.ID {
		t.Fatal("two tokens share a jti")
	}
}

func claimsEqual(a, b *Claims) bool {
	return a.Issuer == b.Issuer && a.Subject == b.Subject && slices.Equal(a.Audience, b.Audience) &&
		a.ExpiresAt.Equal(b.ExpiresAt) && a.IssuedAt.Equal(b.IssuedAt) && a.NotBefore.Equal(b.NotBefore) &&
		a.ID == b.ID && a.Kind == b.Kind && a.Org == b.Org && a.Project == b.Project &&
		slices.Equal(a.Permissions, b.Permissions) && a.ClientID == b.ClientID && a.KeyID == b.KeyID
}

func TestIssueTTL(t *testing.T) {
	f := newFixture(t)
	_, c, err := f.iss.Issue(alice, 5*time.Minute)
	if err != nil || c.ExpiresAt.Sub(c.IssuedAt) != 5*time.Minute {
		t.Fatalf("ttl 5m: %v, %v", c, err)
	}
	// Capped at MaxTTL (1h by default).
	_, c, err = f.iss.Issue(alice, 24*time.Hour)
	if err != nil || c.ExpiresAt.Sub(c.IssuedAt) != time.Hour {
		t.Fatalf("ttl 24h: %v, %v", c.ExpiresAt.Sub(c.IssuedAt), err)
	}
	_, c, _ = f.iss.Issue(Grant{Subject: "x", Kind: KindUser, Org: "o", Audience: []string{"a", "b"}}, 0)
	if !slices.Equal(c.Audience, []string{"a", "b"}) {
		t.Fatalf("aud %v", c.Audience)
	}
}

func TestIssueRejectsBadGrant(t *testing.T) {
	f := newFixture(t)
	for _, g := range []Grant{
		{Kind: KindUser, Org: "o"},
		{Subject: "s", Kind: "robot", Org: "o"},
		{Subject: "s", Kind: KindUser},
		{Subject: "s", Kind: KindUser, Org: "o", Permissions: []string{"a:b"}},
		{Subject: "s", Kind: KindUser, Org: "o", Permissions: []string{"a:b:c d"}},
		{Subject: "s", Kind: KindUser, Org: "o", Permissions: []string{"a::c"}},
		{Subject: "s", Kind: KindUser, Org: "o", Audience: []string{""}},
	} {
		if _, _, err := f.iss.Issue(g, 0); !errors.Is(err, ErrInvalidGrant) {
			t.Errorf("Issue(%+v) err = %v", g, err)
		}
	}
}

func TestVerifyTimeChecks(t *testing.T) {
	f := newFixture(t)
	raw, c := f.issue(t, alice)
	leeway := f.cfg.Leeway
	if leeway == 0 {
		leeway = 30 * time.Second
	}

	// Valid up to exp + leeway (exclusive).
	f.clk.Advance(c.ExpiresAt.Sub(f.clk.Now()) + leeway - time.Nanosecond)
	if _, err := f.ver.Verify(raw); err != nil {
		t.Fatalf("within leeway: %v", err)
	}
	f.clk.Advance(time.Nanosecond)
	if _, err := f.ver.Verify(raw); !errors.Is(err, ErrExpired) || !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("expired: %v", err)
	}

	// Not yet valid: issued by a replica whose clock is 2 minutes ahead.
	ahead := newFixtureSharing(t, f, 2*time.Minute)
	raw, _ = ahead.issue(t, alice)
	if _, err := f.ver.Verify(raw); !errors.Is(err, ErrNotYetValid) {
		t.Fatalf("from the future: %v", err)
	}
	// A skew within the leeway is tolerated.
	near := newFixtureSharing(t, f, 20*time.Second)
	raw, _ = near.issue(t, alice)
	if _, err := f.ver.Verify(raw); err != nil {
		t.Fatalf("20s skew: %v", err)
	}
}

// newFixtureSharing returns a fixture using f's key store and KEK (another
// replica) with its clock skewed by skew.
func newFixtureSharing(t *testing.T, f *fixture, skew time.Duration) *fixture {
	t.Helper()
	g := &fixture{clk: &fakeClock{now: f.clk.Now().Add(skew)}, store: f.store, kek: f.kek}
	g.cfg = f.cfg
	g.cfg.Now = g.clk.Now
	g.revs = NewRevocationList(g.clk.Now)
	var err error
	if g.ring, err = OpenKeyring(t.Context(), g.store, g.cfg, g.kek); err != nil {
		t.Fatal(err)
	}
	if g.iss, err = NewIssuer(g.ring, g.cfg, g.revs); err != nil {
		t.Fatal(err)
	}
	if g.ver, err = NewVerifier(g.ring, g.cfg, g.revs); err != nil {
		t.Fatal(err)
	}
	return g
}

func TestVerifyIssuerAndAudience(t *testing.T) {
	f := newFixture(t)
	raw, _ := f.issue(t, alice)

	cfg := f.cfg
	cfg.Issuer = "https://evil.test"
	v, _ := NewVerifier(f.ring, cfg, nil)
	if _, err := v.Verify(raw); !errors.Is(err, ErrIssuer) {
		t.Fatalf("wrong issuer: %v", err)
	}
	cfg = f.cfg
	cfg.Audience = []string{"flashdns"}
	v, _ = NewVerifier(f.ring, cfg, nil)
	if _, err := v.Verify(raw); !errors.Is(err, ErrAudience) {
		t.Fatalf("wrong audience: %v", err)
	}
	// A verifier accepting several audiences accepts a token for any one.
	cfg.Audience = []string{"flashdns", "photoncloud"}
	v, _ = NewVerifier(f.ring, cfg, nil)
	if _, err := v.Verify(raw); err != nil {
		t.Fatalf("second audience: %v", err)
	}
}

// TestVerifyRejectsForgeries covers the classic JWT attacks. Each forged
// token would otherwise be acceptable: the payload is valid and, where a
// key is involved, the header names a real Aegis kid.
func TestVerifyRejectsForgeries(t *testing.T) {
	f := newFixture(t)
	kid := f.ring.ActiveKID()
	pl := mustJSON(t, f.validPayload())
	priv := f.privateKey(t, kid)
	pub := priv.Public().(ed25519.PublicKey)

	// Sanity: the untampered forge is accepted, so every rejection below
	// is due to the one thing changed.
	if _, err := f.ver.Verify(f.signEd(t, f.validHeader(), f.validPayload())); err != nil {
		t.Fatalf("control token rejected: %v", err)
	}

	hs256 := func(key []byte) func([]byte) []byte {
		return func(in []byte) []byte { m := hmac.New(sha256.New, key); m.Write(in); return m.Sum(nil) }
	}
	otherPub, otherPriv, _ := ed25519.GenerateKey(rand.Reader)
	_ = otherPub
	otherKID, _ := thumbprint(otherPub)
	withKID := func(alg string, k string) map[string]any {
		return map[string]any{"alg": alg, "kid": k, "typ": "at+jwt"}
	}
	jwks := f.ring.JWKS()

	cases := []struct {
		name string
		tok  string
		want error
	}{
		{"alg none", forge(t, withKID("none", kid), pl, func([]byte) []byte { return nil }), ErrAlgorithm},
		{"alg None", forge(t, withKID("None", kid), pl, func([]byte) []byte { return nil }), ErrAlgorithm},
		{"no alg", forge(t, map[string]any{"kid": kid, "typ": "at+jwt"}, pl, func([]byte) []byte { return nil }), ErrAlgorithm},
		{"HS256 keyed with the raw public key", forge(t, withKID("HS256", kid), pl, hs256(pub)), ErrAlgorithm},
		{"HS256 keyed with the JWKS", forge(t, withKID("HS256", kid), pl, hs256(jwks)), ErrAlgorithm},
		{"HS512", forge(t, withKID("HS512", kid), pl, hs256(pub)), ErrAlgorithm},
		{"ES256 with the Aegis kid", joseSign(t, jose.ES256, mustECDSA(t), kid, pl), ErrAlgorithm},
		{"RS256 with the Aegis kid", joseSign(t, jose.RS256, mustRSA(t), kid, pl), ErrAlgorithm},
		{"EdDSA by an unknown key", forge(t, withKID("EdDSA", otherKID), pl, func(in []byte) []byte { return ed25519.Sign(otherPriv, in) }), ErrUnknownKey},
		{"EdDSA by another key claiming the Aegis kid", forge(t, withKID("EdDSA", kid), pl, func(in []byte) []byte { return ed25519.Sign(otherPriv, in) }), ErrSignature},
		{"no kid", forge(t, map[string]any{"alg": "EdDSA", "typ": "at+jwt"}, pl, func(in []byte) []byte { return ed25519.Sign(priv, in) }), ErrMalformed},
		{"embedded jwk", forge(t, map[string]any{"alg": "EdDSA", "kid": kid, "typ": "at+jwt", "jwk": map[string]any{"kty": "OKP", "crv": "Ed25519", "x": b64(otherPub)}}, pl, func(in []byte) []byte { return ed25519.Sign(otherPriv, in) }), ErrMalformed},
		{"jku header", forge(t, map[string]any{"alg": "EdDSA", "kid": kid, "typ": "at+jwt", "jku": "https://evil.test/jwks"}, pl, func(in []byte) []byte { return ed25519.Sign(priv, in) }), ErrMalformed},
		{"unknown crit", forge(t, map[string]any{"alg": "EdDSA", "kid": kid, "typ": "at+jwt", "crit": []string{"exp"}, "exp": 1}, pl, func(in []byte) []byte { return ed25519.Sign(priv, in) }), ErrMalformed},
		{"wrong typ", forge(t, map[string]any{"alg": "EdDSA", "kid": kid, "typ": "JWT"}, pl, func(in []byte) []byte { return ed25519.Sign(priv, in) }), ErrMalformed},
		{"no typ", forge(t, map[string]any{"alg": "EdDSA", "kid": kid}, pl, func(in []byte) []byte { return ed25519.Sign(priv, in) }), ErrMalformed},
		{"empty", "", ErrMalformed},
		{"garbage", "not a token", ErrMalformed},
		{"two parts", "a.b", ErrMalformed},
		{"four parts", "a.b.c.d", ErrMalformed},
		{"too long", strings.Repeat("a", MaxTokenBytes+1), ErrMalformed},
		{"JSON serialization", `{"payload":"` + b64(pl) + `","protected":"` + b64(mustJSON(t, f.validHeader())) + `","signature":"AAAA"}`, ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := f.ver.Verify(tc.tok)
			if !errors.Is(err, tc.want) || !errors.Is(err, ErrInvalidToken) || c != nil {
				t.Fatalf("Verify = %+v, %v; want %v", c, err, tc.want)
			}
			t.Log(err)
		})
	}
}

func mustECDSA(t *testing.T) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustRSA(t *testing.T) *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func joseSign(t *testing.T, alg jose.SignatureAlgorithm, key any, kid string, payload []byte) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: key, KeyID: kid}}, (&jose.SignerOptions{}).WithType("at+jwt"))
	if err != nil {
		t.Fatal(err)
	}
	jws, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestVerifyRejectsTampering(t *testing.T) {
	f := newFixture(t)
	raw, _ := f.issue(t, Grant{Subject: "u-bob", Kind: KindUser, Org: "acme", Project: "web"})
	p := strings.Split(raw, ".")
	_, pl := parts(t, raw)
	hdr, _ := parts(t, raw)

	swapPayload := func(k string, v any) string {
		m := map[string]any{}
		for kk, vv := range pl {
			m[kk] = vv
		}
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		return p[0] + "." + b64(mustJSON(t, m)) + "." + p[2]
	}
	swapHeader := func(k string, v any) string {
		m := map[string]any{}
		for kk, vv := range hdr {
			m[kk] = vv
		}
		m[k] = v
		return b64(mustJSON(t, m)) + "." + p[1] + "." + p[2]
	}
	sig := []byte(p[2])
	sig[5] ^= 1 // still valid base64url, different bytes
	stagedKID := f.ring.Keys()[1].KID

	cases := map[string]string{
		"sub changed":            swapPayload("sub", "u-admin"),
		"org changed":            swapPayload("org", "system"),
		"project removed":        swapPayload("project", nil),
		"exp extended":           swapPayload("exp", pl["exp"].(float64)+3600),
		"kid switched to staged": swapHeader("kid", stagedKID),
		"header reordered":       b64([]byte(`{"typ":"at+jwt","kid":"`+hdr["kid"].(string)+`","alg":"EdDSA"}`)) + "." + p[1] + "." + p[2],
		"signature bit flipped":  p[0] + "." + p[1] + "." + string(sig),
		"signature truncated":    p[0] + "." + p[1] + "." + p[2][:len(p[2])-4],
		"signature removed":      p[0] + "." + p[1] + ".",
		"payload whitespace":     p[0] + "." + b64(append(mustJSON(t, pl), ' ')) + "." + p[2],
		"payload base64 std":     p[0] + "." + strings.ReplaceAll(strings.ReplaceAll(p[1], "-", "+"), "_", "/") + "=." + p[2],
		"newline inside":         p[0] + "." + p[1][:10] + "\n" + p[1][10:] + "." + p[2],
		"signature from another": p[0] + "." + p[1] + "." + strings.Split(mustIssue(t, f), ".")[2],
	}
	for name, tok := range cases {
		t.Run(name, func(t *testing.T) {
			c, err := f.ver.Verify(tok)
			if err == nil || !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("tampered token accepted: %+v, %v", c, err)
			}
			t.Log(err)
		})
	}
	if _, err := f.ver.Verify(raw); err != nil {
		t.Fatalf("original rejected: %v", err)
	}
}

func mustIssue(t *testing.T, f *fixture) string {
	raw, _ := f.issue(t, alice)
	return raw
}

// TestVerifyRejectsBadClaims signs well-formed headers over payloads that
// break one claim rule each, with the real Aegis key: the signature is
// fine, so these prove the claim checks themselves.
func TestVerifyRejectsBadClaims(t *testing.T) {
	f := newFixture(t)
	now := f.clk.Now().Unix()
	mod := func(k string, v any) map[string]any {
		m := f.validPayload()
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	cases := []struct {
		name string
		pl   map[string]any
		want error
	}{
		{"no iss", mod("iss", nil), ErrMalformed},
		{"no sub", mod("sub", nil), ErrMalformed},
		{"no aud", mod("aud", nil), ErrMalformed},
		{"empty aud list", mod("aud", []string{}), ErrMalformed},
		{"no exp", mod("exp", nil), ErrMalformed},
		{"no iat", mod("iat", nil), ErrMalformed},
		{"no jti", mod("jti", nil), ErrMalformed},
		{"no org", mod("org", nil), ErrMalformed},
		{"unknown kind", mod("principal_kind", "robot"), ErrMalformed},
		{"exp as string", mod("exp", "tomorrow"), ErrMalformed},
		{"exp huge", mod("exp", 1e300), ErrMalformed},
		{"sub as number", mod("sub", 7), ErrMalformed},
		{"empty permissions", mod("permissions", []string{}), ErrMalformed},
		{"lifetime over MaxTTL", mod("exp", now+2*3600), ErrMalformed},
		{"expired", mod("exp", now-3600), ErrExpired},
		{"nbf ahead", mod("nbf", now+600), ErrNotYetValid},
		{"iat ahead", func() map[string]any { m := mod("iat", now+600); m["exp"] = now + 1200; return m }(), ErrNotYetValid},
		{"aud list without ours", mod("aud", []string{"a", "b"}), ErrAudience},
		{"issuer with trailing slash", mod("iss", testIssuer+"/"), ErrIssuer},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tok := f.signEd(t, f.validHeader(), tc.pl)
			c, err := f.ver.Verify(tok)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %+v, %v; want %v", c, err, tc.want)
			}
			t.Log(err)
		})
	}
	// Payload that is not a JSON object, or has trailing data.
	priv := f.privateKey(t, f.ring.ActiveKID())
	for _, pl := range []string{`[]`, `"x"`, `{"iss":"` + testIssuer + `"} {}`, `{`, ``} {
		tok := forge(t, f.validHeader(), []byte(pl), func(in []byte) []byte { return ed25519.Sign(priv, in) })
		if _, err := f.ver.Verify(tok); !errors.Is(err, ErrMalformed) {
			t.Errorf("payload %q: %v", pl, err)
		}
	}
	// The audience list form with ours in it is accepted.
	if _, err := f.ver.Verify(f.signEd(t, f.validHeader(), mod("aud", []string{"x", "photoncloud"}))); err != nil {
		t.Fatal(err)
	}
	// typ with the application/ prefix is the same media type.
	h := f.validHeader()
	h["typ"] = "application/AT+JWT"
	if _, err := f.ver.Verify(f.signEd(t, h, f.validPayload())); err != nil {
		t.Fatal(err)
	}
}

func TestRevocation(t *testing.T) {
	f := newFixture(t)
	raw1, c1 := f.issue(t, alice)
	raw2, _ := f.issue(t, alice)
	rawBob, _ := f.issue(t, Grant{Subject: "u-bob", Kind: KindUser, Org: "acme"})

	// Per token: only that token dies.
	f.revs.RevokeToken(c1.ID, c1.ExpiresAt)
	if _, err := f.ver.Verify(raw1); !errors.Is(err, ErrRevoked) {
		t.Fatalf("revoked jti: %v", err)
	}
	if _, err := f.ver.Verify(raw2); err != nil {
		t.Fatalf("sibling token: %v", err)
	}

	// Per principal: every token of alice issued up to now dies, bob's
	// stays, and a token issued afterwards (even in the same second) works.
	f.clk.Advance(10 * time.Second)
	f.revs.RevokePrincipal(alice.Subject, f.clk.Now())
	if _, err := f.ver.Verify(raw2); !errors.Is(err, ErrRevoked) {
		t.Fatalf("signed out: %v", err)
	}
	if _, err := f.ver.Verify(rawBob); err != nil {
		t.Fatalf("other principal: %v", err)
	}
	rawNew, cNew := f.issue(t, alice)
	if _, err := f.ver.Verify(rawNew); err != nil {
		t.Fatalf("token issued in the revocation's second: %v", err)
	}
	if !cNew.IssuedAt.After(f.clk.Now()) {
		t.Fatalf("same-second token not dated after the revocation: iat %v, now %v", cNew.IssuedAt, f.clk.Now())
	}
	f.clk.Advance(2 * time.Second)
	rawLater, _ := f.issue(t, alice)
	if _, err := f.ver.Verify(rawLater); err != nil {
		t.Fatalf("later token: %v", err)
	}

	// A revocation timestamp far ahead (a replica's fast clock) cannot be
	// dated around: Issue refuses instead of handing out a dead token.
	f.revs.RevokePrincipal("u-carol", f.clk.Now().Add(time.Hour))
	if _, _, err := f.iss.Issue(Grant{Subject: "u-carol", Kind: KindUser, Org: "acme"}, 0); !errors.Is(err, ErrPrincipalRevoked) {
		t.Fatalf("issue for principal revoked in the future: %v", err)
	}
}

func TestRevocationList(t *testing.T) {
	clk := &fakeClock{now: t0}
	l := NewRevocationList(clk.Now)
	l.RevokeToken("a", t0.Add(time.Minute))
	l.RevokeToken("b", t0.Add(time.Hour))
	if !l.TokenRevoked("a") || !l.TokenRevoked("b") || l.TokenRevoked("c") {
		t.Fatal("lookup")
	}
	// Entries live until exp + MaxLeeway, then are swept.
	clk.Advance(time.Minute + MaxLeeway - time.Second)
	if l.Sweep() != 0 || !l.TokenRevoked("a") {
		t.Fatal("swept too early")
	}
	clk.Advance(time.Second)
	if l.Sweep() != 1 || l.TokenRevoked("a") || !l.TokenRevoked("b") {
		t.Fatal("not swept")
	}
	// RevokeToken sweeps by itself, at most once a minute.
	clk.Advance(2 * time.Hour)
	l.RevokeToken("c", clk.Now().Add(time.Hour))
	if n, _ := l.Len(); n != 1 {
		t.Fatalf("%d entries after amortized sweep", n)
	}
	l.ForgetToken("c")
	if l.TokenRevoked("c") {
		t.Fatal("forget")
	}

	// Principal revocations only move forward.
	l.RevokePrincipal("p", t0.Add(time.Hour))
	l.RevokePrincipal("p", t0)
	if at, ok := l.PrincipalRevokedAt("p"); !ok || !at.Equal(t0.Add(time.Hour)) {
		t.Fatalf("principal at %v %v", at, ok)
	}
	l.ForgetPrincipal("p")
	if _, ok := l.PrincipalRevokedAt("p"); ok {
		t.Fatal("forget principal")
	}
}

func TestDownscope(t *testing.T) {
	f := newFixture(t)
	_, parent := f.issue(t, Grant{Subject: "u-alice", Kind: KindUser, Org: "acme", ClientID: "photon-cli"})

	raw, c, err := f.iss.Downscope(parent, "web", []string{"plasmavmc:vms:*"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	v, err := f.ver.Verify(raw)
	if err != nil {
		t.Fatal(err)
	}
	if v.Project != "web" || !slices.Equal(v.Permissions, []string{"plasmavmc:vms:*"}) || v.Subject != "u-alice" || v.ClientID != "photon-cli" || v.ID == parent.ID {
		t.Fatalf("downscoped claims %+v", v)
	}
	if c.ExpiresAt.After(parent.ExpiresAt) {
		t.Fatal("child outlives parent")
	}

	// Narrow further: a covered permission and the same project are fine.
	if _, _, err := f.iss.Downscope(v, "web", []string{"plasmavmc:vms:create"}, 0); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.iss.Downscope(v, "", nil, 0); err != nil {
		t.Fatal(err)
	}
	// Widening is refused.
	for _, tc := range []struct {
		project string
		perms   []string
	}{
		{"db", nil},
		{"", []string{"plasmavmc:*:create"}},
		{"", []string{"flashdns:records:update"}},
		{"", []string{"plasmavmc:vms:create", "aegis:bindings:list"}},
	} {
		if _, _, err := f.iss.Downscope(v, tc.project, tc.perms, 0); !errors.Is(err, ErrScopeWidening) {
			t.Errorf("Downscope(%q, %v) err = %v", tc.project, tc.perms, err)
		}
	}
	// Malformed permissions are refused too.
	if _, _, err := f.iss.Downscope(parent, "", []string{"bad"}, 0); !errors.Is(err, ErrInvalidGrant) {
		t.Fatalf("bad permission: %v", err)
	}
	// A child never outlives its parent, whatever TTL is asked for.
	f.clk.Advance(14 * time.Minute)
	_, c, _ = f.iss.Downscope(parent, "web", nil, time.Hour)
	if !c.ExpiresAt.Equal(parent.ExpiresAt) {
		t.Fatalf("child exp %v, parent %v", c.ExpiresAt, parent.ExpiresAt)
	}
	f.clk.Advance(2 * time.Minute)
	if _, _, err := f.iss.Downscope(parent, "web", nil, 0); err == nil {
		t.Fatal("downscoped an expired parent")
	}
}

func TestPermissionCovers(t *testing.T) {
	for _, tc := range []struct {
		pattern, child string
		want           bool
	}{
		{"a:b:c", "a:b:c", true},
		{"a:b:*", "a:b:c", true},
		{"*:*:*", "a:b:c", true},
		{"*:*:*", "*:*:*", true},
		{"a:*:c", "a:b:c", true},
		{"a:b:c", "a:b:*", false},
		{"a:b:c", "a:b:d", false},
		{"a:b", "a:b:c", false},
		{"a:b:c", "a:b:c:d", false},
		{"a:b:*", "a:bb:c", false},
	} {
		if got := PermissionCovers(tc.pattern, tc.child); got != tc.want {
			t.Errorf("PermissionCovers(%q, %q) = %v", tc.pattern, tc.child, got)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	bad := map[string]Config{
		"no issuer":        {},
		"relative issuer":  {Issuer: "aegis.test"},
		"ftp issuer":       {Issuer: "ftp://aegis.test"},
		"query":            {Issuer: "https://aegis.test?x=1"},
		"fragment":         {Issuer: "https://aegis.test#x"},
		"trailing slash":   {Issuer: "https://aegis.test/"},
		"userinfo":         {Issuer: "https://u:p@aegis.test"},
		"empty audience":   {Issuer: testIssuer, Audience: []string{""}},
		"ttl too short":    {Issuer: testIssuer, AccessTTL: time.Millisecond},
		"max below ttl":    {Issuer: testIssuer, AccessTTL: time.Hour, MaxTTL: time.Minute},
		"leeway too large": {Issuer: testIssuer, Leeway: time.Hour},
		"negative leeway":  {Issuer: testIssuer, Leeway: -time.Second},
		"negative grace":   {Issuer: testIssuer, RetireGrace: -time.Second},
	}
	for name, c := range bad {
		if _, err := c.prepared(); err == nil {
			t.Errorf("%s: accepted %+v", name, c)
		}
	}
	c := Config{Issuer: "http://127.0.0.1:8443/aegis"}
	c.EnsureDefaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.AccessTTL != 15*time.Minute || c.MaxTTL != time.Hour || c.Leeway != 30*time.Second || c.Audience[0] != "photoncloud" {
		t.Fatalf("defaults %+v", c)
	}
	// EnsureDefaults is idempotent.
	d := c
	d.EnsureDefaults()
	if d.AccessTTL != c.AccessTTL || d.Leeway != c.Leeway || d.MaxTTL != c.MaxTTL {
		t.Fatal("EnsureDefaults not idempotent")
	}
	// A long AccessTTL raises the default MaxTTL with it.
	e := Config{Issuer: testIssuer, AccessTTL: 2 * time.Hour}
	e.EnsureDefaults()
	if e.MaxTTL != 2*time.Hour {
		t.Fatalf("MaxTTL %v", e.MaxTTL)
	}
}

func TestVerifyCache(t *testing.T) {
	f := newFixture(t)
	raw, _ := f.issue(t, alice)
	c1, err := f.ver.Verify(raw)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := f.ver.Verify(raw)
	if err != nil || c2 != c1 {
		t.Fatalf("second verification did not hit the cache: %v", err)
	}

	// A rotation changes the key-set revision: the entry is re-verified
	// (and still valid, with the retired key).
	if _, err := f.ring.Rotate(t.Context()); err != nil {
		t.Fatal(err)
	}
	c3, err := f.ver.Verify(raw)
	if err != nil || c3 == c1 {
		t.Fatalf("after rotation: %v (same entry: %v)", err, c3 == c1)
	}

	// Revocation and expiry apply to cached tokens.
	f.revs.RevokeToken(c1.ID, c1.ExpiresAt)
	if _, err := f.ver.Verify(raw); !errors.Is(err, ErrRevoked) {
		t.Fatalf("cached revoked token: %v", err)
	}
	raw2, _ := f.issue(t, alice)
	f.ver.Verify(raw2)
	f.clk.Advance(time.Hour)
	if _, err := f.ver.Verify(raw2); !errors.Is(err, ErrExpired) {
		t.Fatalf("cached expired token: %v", err)
	}

	// Bounded.
	cfg := f.cfg
	cfg.VerifyCacheSize = 10
	v, _ := NewVerifier(f.ring, cfg, nil)
	for range 50 {
		tok, _ := f.issue(t, alice)
		if _, err := v.Verify(tok); err != nil {
			t.Fatal(err)
		}
	}
	if n := v.cache.len(); n > 10 {
		t.Fatalf("cache holds %d entries, capacity 10", n)
	}

	// Disabled.
	cfg.VerifyCacheSize = -1
	v, _ = NewVerifier(f.ring, cfg, nil)
	tok, _ := f.issue(t, alice)
	a, _ := v.Verify(tok)
	b, err := v.Verify(tok)
	if v.cache != nil || err != nil || a == b {
		t.Fatal("cache not disabled")
	}
}

func TestIssueSubSecondTTL(t *testing.T) {
	f := newFixture(t)
	for _, ttl := range []time.Duration{time.Millisecond, 1500 * time.Millisecond} {
		raw, c, err := f.iss.Issue(alice, ttl)
		if err != nil {
			t.Fatal(err)
		}
		v, err := f.ver.Verify(raw)
		if err != nil {
			t.Fatal(err)
		}
		if !v.ExpiresAt.Equal(c.ExpiresAt) || c.ExpiresAt.Sub(c.IssuedAt) != time.Second {
			t.Fatalf("ttl %v: issued exp %v, verified exp %v", ttl, c.ExpiresAt, v.ExpiresAt)
		}
	}
}
