package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
)

func TestSimpleTokenExpiry(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.TokenTTL = time.Minute })
	f.enable()
	tok := f.login("root", "rootpw")
	if !strings.Contains(tok, ".") || len(strings.Split(tok, ".")[0]) != simpleTokenLength {
		t.Fatalf("simple token %q: want 16 letters, a dot and the index", tok)
	}
	// Each use restarts the TTL.
	for range 3 {
		f.clock.Advance(50 * time.Second)
		if _, err := f.s.AuthInfo(tokenCtx(tok)); err != nil {
			t.Fatalf("token used within its TTL: %v", err)
		}
	}
	f.clock.Advance(61 * time.Second)
	if _, err := f.s.AuthInfo(tokenCtx(tok)); !errors.Is(err, ErrInvalidAuthToken) {
		t.Fatalf("token unused for longer than its TTL: %v", err)
	}
	// Expired tokens are swept when new ones are made.
	f.login("root", "rootpw")
	f.clock.Advance(2 * time.Minute)
	f.login("root", "rootpw")
	if n := len(f.s.tokens.(*simpleTokens).tokens); n != 1 {
		t.Errorf("%d tokens kept after expiry, want 1", n)
	}
	// Garbage is invalid; so are tokens after auth is disabled.
	for _, bad := range []string{"", "x", "a.b", "a.1.2", "nosuch.1"} {
		if _, err := f.s.AuthInfo(tokenCtx(bad)); !errors.Is(err, ErrInvalidAuthToken) {
			t.Errorf("token %q: %v", bad, err)
		}
	}
	tok = f.login("root", "rootpw")
	f.must(f.root(), &pb.InternalRaftRequest{AuthDisable: &pb.AuthDisableRequest{}})
	f.must(nil, &pb.InternalRaftRequest{AuthEnable: &pb.AuthEnableRequest{}})
	if _, err := f.s.AuthInfo(tokenCtx(tok)); !errors.Is(err, ErrInvalidAuthToken) {
		t.Errorf("token from before auth was disabled: %v", err)
	}
}

// TestSimpleTokenWaitsForIndex: a token names the raft entry that created
// it; a member that has not applied it yet waits rather than refusing.
func TestSimpleTokenWaitsForIndex(t *testing.T) {
	var applied atomic.Uint64
	f := newFixture(t, func(o *Options) { o.AppliedIndex = applied.Load })
	f.enable()
	prefix, _ := f.s.TokenPrefix()
	idx := f.index + 1
	tok := tokenString(prefix, idx)
	ctx, cancel := context.WithTimeout(tokenCtx(tok), 50*time.Millisecond)
	defer cancel()
	if _, err := f.s.AuthInfo(ctx); !errors.Is(err, ErrInvalidAuthToken) {
		t.Fatalf("token of an entry not applied, deadline passed: %v", err)
	}
	// The entry is applied while a request waits for it.
	done := make(chan error, 1)
	go func() {
		ai, err := f.s.AuthInfo(tokenCtx(tok))
		if err == nil && ai.Username != "root" {
			err = fmt.Errorf("token of %q", ai.Username)
		}
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	f.must(nil, &pb.InternalRaftRequest{Authenticate: &pb.InternalAuthenticateRequest{Name: "root", SimpleToken: prefix}})
	applied.Store(idx)
	if err := <-done; err != nil {
		t.Fatalf("token once applied: %v", err)
	}
}

func writePEM(t *testing.T, dir, name, typ string, der []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// keyFiles writes a key pair of the given kind and returns the files.
func keyFiles(t *testing.T, kind string) (pub, priv string) {
	t.Helper()
	dir := t.TempDir()
	var pk, sk any
	switch kind {
	case "rsa":
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		pk, sk = &k.PublicKey, k
	case "ec":
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		pk, sk = &k.PublicKey, k
	case "ed":
		p, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		pk, sk = p, k
	}
	pubDER, err := x509.MarshalPKIXPublicKey(pk)
	if err != nil {
		t.Fatal(err)
	}
	privDER, err := x509.MarshalPKCS8PrivateKey(sk)
	if err != nil {
		t.Fatal(err)
	}
	return writePEM(t, dir, "pub.pem", "PUBLIC KEY", pubDER), writePEM(t, dir, "priv.pem", "PRIVATE KEY", privDER)
}

func TestJWT(t *testing.T) {
	for _, c := range []struct{ kind, method string }{{"rsa", "RS256"}, {"rsa", "PS384"}, {"ec", "ES256"}, {"ed", "EdDSA"}} {
		t.Run(c.method, func(t *testing.T) {
			pub, priv := keyFiles(t, c.kind)
			spec := "jwt,pub-key=" + pub + ",priv-key=" + priv + ",sign-method=" + c.method + ",ttl=2m"
			f := newFixture(t, func(o *Options) { o.TokenSpec = spec })
			f.enable()
			tok := f.login("root", "rootpw")
			if strings.Count(tok, ".") != 2 {
				t.Fatalf("JWT %q", tok)
			}
			ai, err := f.s.AuthInfo(tokenCtx(tok))
			if err != nil || ai.Username != "root" || ai.Revision != f.s.Revision() {
				t.Fatalf("JWT resolves to %+v, %v", ai, err)
			}
			// Any member with the public key verifies it: no shared state.
			v := f.open(func(o *Options) { o.TokenSpec = "jwt,pub-key=" + pub + ",sign-method=" + c.method })
			if ai, err := v.AuthInfo(tokenCtx(tok)); err != nil || ai.Username != "root" {
				t.Errorf("verify-only member: %+v %v", ai, err)
			}
			if _, err := v.Token(&Authenticated{User: "root", Revision: 1}); !errors.Is(err, ErrVerifyOnly) {
				t.Errorf("issuing on a verify-only member: %v", err)
			}
			// The revision inside goes stale when auth changes.
			f.addRole("x")
			ai, _ = f.s.AuthInfo(tokenCtx(tok))
			if err := f.s.IsPutPermitted(ai, []byte("k")); !errors.Is(err, ErrAuthOldRevision) {
				t.Errorf("JWT from before an auth change: %v", err)
			}
			// It expires with its ttl.
			f.clock.Advance(2*time.Minute + time.Second)
			if _, err := f.s.AuthInfo(tokenCtx(tok)); !errors.Is(err, ErrInvalidAuthToken) {
				t.Errorf("expired JWT: %v", err)
			}
			// Tampering breaks the signature.
			parts := strings.Split(tok, ".")
			parts[1] = strings.ToUpper(parts[1])
			if _, err := v.AuthInfo(tokenCtx(strings.Join(parts, "."))); !errors.Is(err, ErrInvalidAuthToken) {
				t.Errorf("tampered JWT: %v", err)
			}
		})
	}
}

func TestTokenSpecs(t *testing.T) {
	rsaPub, rsaPriv := keyFiles(t, "rsa")
	otherPub, _ := keyFiles(t, "rsa")
	ecPub, _ := keyFiles(t, "ec")
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("sekrit"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		spec string
		want error // nil: valid
	}{
		{"simple", nil},
		{"jwt,priv-key=" + rsaPriv + ",sign-method=RS256", nil},
		{"jwt,pub-key=" + rsaPub + ",sign-method=RS512", nil},
		{"jwt,priv-key=" + secret + ",sign-method=HS256", nil},
		{"jwt,pub-key=" + rsaPub + ",priv-key=" + rsaPriv + ",sign-method=RS256,ttl=10m,extra=1", nil},
		{"bogus", ErrInvalidAuthOpts},
		{"jwt,sign-method", ErrInvalidAuthOpts},
		{"jwt,ttl=1m,ttl=2m,sign-method=RS256", ErrInvalidAuthOpts},
		{"jwt,priv-key=" + rsaPriv + ",sign-method=XX1", ErrInvalidAuthMethod},
		{"jwt,priv-key=" + rsaPriv, ErrInvalidAuthMethod},
		{"jwt,sign-method=RS256", ErrMissingKey},
		{"jwt,sign-method=HS256", ErrMissingKey},
		{"jwt,pub-key=" + otherPub + ",priv-key=" + rsaPriv + ",sign-method=RS256", ErrKeyMismatch},
		{"jwt,priv-key=" + rsaPriv + ",sign-method=RS256,ttl=soon", ErrInvalidAuthOpts},
	} {
		err := ValidateTokenSpec(c.spec)
		if (c.want == nil) != (err == nil) || (c.want != nil && !errors.Is(err, c.want)) {
			t.Errorf("%q: %v, want %v", c.spec, err, c.want)
		}
	}
	// A key of the wrong family is an error, not a panic.
	if err := ValidateTokenSpec("jwt,pub-key=" + ecPub + ",sign-method=RS256"); err == nil {
		t.Error("an EC key for RS256 was accepted")
	}
}

// tlsCtx is an incoming context from a client whose verified certificate
// has common name cn, with extra metadata pairs.
func tlsCtx(cn string, kv ...string) context.Context {
	cert := &x509.Certificate{Subject: pkix.Name{CommonName: cn}}
	p := &peer.Peer{AuthInfo: credentials.TLSInfo{State: tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{cert}}}}}
	ctx := peer.NewContext(context.Background(), p)
	return metadata.NewIncomingContext(ctx, metadata.Pairs(kv...))
}

func TestAuthInfoSources(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.ClientCertAuth = true })
	if ai, err := f.s.AuthInfo(tokenCtx("whatever")); ai != nil || err != nil {
		t.Errorf("auth disabled: %+v %v, want nothing", ai, err)
	}
	f.enable()
	tok := f.login("root", "rootpw")
	bearer := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+tok))
	if ai, err := f.s.AuthInfo(bearer); err != nil || ai.Username != "root" {
		t.Errorf("HTTP Authorization header: %+v %v", ai, err)
	}
	if ai, err := f.s.AuthInfo(tlsCtx("alice")); err != nil || ai == nil || ai.Username != "alice" || ai.Revision != f.s.Revision() {
		t.Errorf("certificate common name: %+v %v", ai, err)
	}
	// A token wins over the certificate.
	if ai, err := f.s.AuthInfo(tlsCtx("alice", "token", tok)); err != nil || ai.Username != "root" {
		t.Errorf("token and certificate: %+v %v", ai, err)
	}
	if _, err := f.s.AuthInfo(tlsCtx("alice", "token", "bad.1")); !errors.Is(err, ErrInvalidAuthToken) {
		t.Errorf("bad token with a certificate: %v", err)
	}
	// The gateway's own certificate never names the user.
	for _, key := range []string{GatewayKey, "grpcgateway-accept"} {
		if ai, err := f.s.AuthInfo(tlsCtx("localhost", key, "1")); ai != nil || err != nil {
			t.Errorf("gateway request (%s): %+v %v", key, ai, err)
		}
	}
	if ai, err := f.s.AuthInfo(context.Background()); ai != nil || err != nil {
		t.Errorf("no metadata: %+v %v", ai, err)
	}
	// Without --client-cert-auth the certificate is not an identity.
	g := newFixture(t)
	g.enable()
	if ai, err := g.s.AuthInfo(tlsCtx("root")); ai != nil || err != nil {
		t.Errorf("certificate without client-cert-auth: %+v %v", ai, err)
	}
}
