package token

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a manually advanced clock shared by all parts of a fixture.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// t0 is deliberately not on a second boundary: tokens carry whole seconds
// and the tests must see the truncation.
var t0 = time.Date(2026, 11, 27, 12, 0, 0, 500_000_000, time.UTC)

const testIssuer = "https://aegis.test"

type fixture struct {
	clk   *fakeClock
	cfg   Config
	store *MemKeyStore
	kek   *KEK
	ring  *Keyring
	revs  *RevocationList
	iss   *Issuer
	ver   *Verifier
}

func testKEK(t testing.TB, b byte) *KEK {
	t.Helper()
	key := make([]byte, KEKSize)
	for i := range key {
		key[i] = b
	}
	k, err := NewKEK(key)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	f := &fixture{clk: &fakeClock{now: t0}, store: &MemKeyStore{}, kek: testKEK(t, 1)}
	f.cfg = Config{Issuer: testIssuer, Now: f.clk.Now}
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
	return f
}

var alice = Grant{Subject: "u-alice", Kind: KindUser, Org: "acme"}

func (f *fixture) issue(t testing.TB, g Grant) (string, *Claims) {
	t.Helper()
	raw, c, err := f.iss.Issue(g, 0)
	if err != nil {
		t.Fatal(err)
	}
	return raw, c
}

// privateKey digs the private key of kid out of the store, for tests that
// forge tokens with Aegis' own key.
func (f *fixture) privateKey(t testing.TB, kid string) ed25519.PrivateKey {
	t.Helper()
	keys, _, _ := f.store.LoadKeys(context.Background())
	for _, k := range keys {
		if k.KID == kid {
			seed, err := f.kek.unseal(k.KID, k.SealedSeed)
			if err != nil {
				t.Fatal(err)
			}
			return ed25519.NewKeyFromSeed(seed)
		}
	}
	t.Fatalf("no key %q", kid)
	return nil
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// forge assembles a compact JWS by hand so tests control every byte;
// sign receives the signing input.
func forge(t testing.TB, header map[string]any, payload []byte, sign func([]byte) []byte) string {
	t.Helper()
	input := b64(mustJSON(t, header)) + "." + b64(payload)
	return input + "." + b64(sign([]byte(input)))
}

// parts decodes a compact token's header and payload.
func parts(t testing.TB, raw string) (header, payload map[string]any) {
	t.Helper()
	p := strings.Split(raw, ".")
	if len(p) != 3 {
		t.Fatalf("token has %d parts", len(p))
	}
	for i, dst := range []*map[string]any{&header, &payload} {
		b, err := base64.RawURLEncoding.DecodeString(p[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, dst); err != nil {
			t.Fatal(err)
		}
	}
	return header, payload
}

// validPayload returns the payload of a token that would be accepted if
// signed by an Aegis key, as a map the tests can alter.
func (f *fixture) validPayload() map[string]any {
	now := f.clk.Now().Unix()
	return map[string]any{
		"iss": testIssuer, "sub": "u-alice", "aud": "photoncloud",
		"exp": now + 600, "iat": now, "nbf": now, "jti": "j-1",
		"principal_kind": "user", "org": "acme",
	}
}

func (f *fixture) validHeader() map[string]any {
	return map[string]any{"alg": "EdDSA", "kid": f.ring.ActiveKID(), "typ": "at+jwt"}
}

func (f *fixture) signEd(t testing.TB, header map[string]any, payload map[string]any) string {
	t.Helper()
	priv := f.privateKey(t, f.ring.ActiveKID())
	return forge(t, header, mustJSON(t, payload), func(in []byte) []byte { return ed25519.Sign(priv, in) })
}
