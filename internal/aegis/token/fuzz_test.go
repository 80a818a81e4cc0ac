package token

import (
	"crypto/ed25519"
	"testing"
	"time"
)

// FuzzVerify: arbitrary strings never panic the verifier, every rejection
// wraps ErrInvalidToken, and anything accepted satisfies every claim rule
// at the fixture's clock.
func FuzzVerify(f *testing.F) {
	fx := newFixture(f)
	raw, _ := fx.issue(f, Grant{Subject: "u", Kind: KindUser, Org: "o", Project: "p", Permissions: []string{"a:b:c"}})
	f.Add(raw)
	f.Add(fx.signEd(f, fx.validHeader(), fx.validPayload()))
	priv := fx.privateKey(f, fx.ring.ActiveKID())
	signed := func(b []byte) []byte { return ed25519.Sign(priv, b) }
	f.Add(forge(f, map[string]any{"alg": "none", "kid": fx.ring.ActiveKID()}, mustJSON(f, fx.validPayload()), func([]byte) []byte { return nil }))
	f.Add(forge(f, fx.validHeader(), []byte(`{"exp":1e999}`), signed))
	f.Add(forge(f, fx.validHeader(), []byte(`{"aud":[1,2],"permissions":[]}`), signed))
	f.Add(forge(f, map[string]any{"alg": "EdDSA", "kid": fx.ring.ActiveKID(), "typ": "at+jwt", "crit": []string{"b64"}, "b64": false}, []byte(`{}`), signed))
	f.Add("..")
	f.Add("e30.e30.")
	f.Add(`{"payload":"e30","signatures":[]}`)
	now := fx.clk.Now()
	f.Fuzz(func(t *testing.T, s string) {
		c, err := fx.ver.Verify(s)
		if err != nil {
			if c != nil {
				t.Fatal("claims returned with an error")
			}
			if !isInvalid(err) {
				t.Fatalf("error does not wrap ErrInvalidToken: %v", err)
			}
			return
		}
		if c.Issuer != testIssuer || c.Subject == "" || c.ID == "" || c.Org == "" || !validKind(c.Kind) {
			t.Fatalf("accepted claims %+v", c)
		}
		if !now.Before(c.ExpiresAt.Add(30*time.Second)) || now.Add(30*time.Second).Before(c.IssuedAt) {
			t.Fatalf("accepted a token outside its validity: %+v", c)
		}
		if _, ok := fx.ring.lookup(c.KeyID, now); !ok {
			t.Fatalf("accepted a token of unknown key %q", c.KeyID)
		}
	})
}

func isInvalid(err error) bool {
	for e := err; e != nil; {
		if e == ErrInvalidToken {
			return true
		}
		u, ok := e.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		e = u.Unwrap()
	}
	return false
}

// FuzzRefreshParse: arbitrary refresh token strings never panic and only
// the exact shape parses.
func FuzzRefreshParse(f *testing.F) {
	f.Add("rt1." + randomString(familyBytes) + "." + randomString(secretBytes))
	f.Add("rt1..")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		fam, hash, ok := parseRefresh(s)
		if !ok {
			return
		}
		if len(s) != 4+22+1+43 || len(fam) != 22 || len(hash) != 64 {
			t.Fatalf("accepted %q", s)
		}
	})
}
