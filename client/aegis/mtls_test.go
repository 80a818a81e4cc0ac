package aegis

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"math/big"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	aegisv1 "github.com/photoncloud/photoncloud/api/aegis/v1"
	"github.com/photoncloud/photoncloud/internal/platform/testcerts"
)

// testCA issues certificates for the mTLS tests. testcerts has no URI SANs,
// so SPIFFE-style client certificates are made here.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

var serial atomic.Int64

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial.Add(1)), Subject: pkix.Name{CommonName: "aegis client test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key}
}

// issue returns a leaf signed by ca (or self-signed if ca is nil).
func (ca *testCA) issue(t *testing.T, cn string, usage x509.ExtKeyUsage, uris []string, dns []string, ips []net.IP) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial.Add(1)), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		DNSNames: dns, IPAddresses: ips,
	}
	for _, u := range uris {
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, pu)
	}
	parent, signer := tmpl, any(key)
	if ca != nil {
		parent, signer = ca.cert, ca.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

func fingerprint(c tls.Certificate) string {
	sum := sha256.Sum256(c.Certificate[0])
	return hex.EncodeToString(sum[:])
}

// certResolver binds certificate identities to principals, as Aegis's
// service accounts do.
func certResolver(binds map[*aegisv1.CertificateIdentity]*Principal) func(context.Context, *CertIdentity) (*Principal, error) {
	return func(_ context.Context, id *CertIdentity) (*Principal, error) {
		for m, p := range binds {
			if id.Matches(m) {
				return p, nil
			}
		}
		return nil, nil
	}
}

func TestMTLS(t *testing.T) {
	e := newEnv(t)
	ca := newTestCA(t)
	files := testcerts.New(t) // a second CA with a pinned client certificate
	pinned, err := tls.LoadX509KeyPair(files.ClientCertFile, files.ClientKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	otherCAPEM, err := os.ReadFile(files.CAFile)
	if err != nil {
		t.Fatal(err)
	}

	serverCert := ca.issue(t, "svc", x509.ExtKeyUsageServerAuth, nil, nil, []net.IP{net.IPv4(127, 0, 0, 1)})
	dnsClient := ca.issue(t, "dns", x509.ExtKeyUsageClientAuth, []string{spiffeID}, []string{"dns.acme.internal"}, nil)
	unbound := ca.issue(t, "nobody", x509.ExtKeyUsageClientAuth, []string{"spiffe://photon/ns/x/sa/nobody"}, nil, nil)
	selfSigned := (*testCA)(nil).issue(t, "dns", x509.ExtKeyUsageClientAuth, []string{spiffeID}, nil, nil)

	clientCAs := x509.NewCertPool()
	clientCAs.AddCert(ca.cert)
	clientCAs.AppendCertsFromPEM(otherCAPEM)
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	serverTLS := func(auth tls.ClientAuthType) *tls.Config {
		return &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientAuth: auth, ClientCAs: clientCAs, MinVersion: tls.VersionTLS13}
	}
	clientTLS := func(c *tls.Certificate) *tls.Config {
		cfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS13}
		if c != nil {
			cfg.Certificates = []tls.Certificate{*c}
		}
		return cfg
	}

	sa := &Principal{Name: dnsSA, Kind: aegisv1.PrincipalKind_PRINCIPAL_KIND_SERVICE_ACCOUNT, Org: "orgs/acme"}
	cfg := e.config()
	cfg.CertPrincipal = certResolver(map[*aegisv1.CertificateIdentity]*Principal{
		{Match: &aegisv1.CertificateIdentity_UriSan{UriSan: spiffeID}}:                                  sa,
		{Match: &aegisv1.CertificateIdentity_Sha256Fingerprint{Sha256Fingerprint: fingerprint(pinned)}}: sa,
	})
	a := e.newAuthorizer(cfg)
	serve := func(auth tls.ClientAuthType, c *tls.Certificate) (func(tok, perm, res string) (string, error), *testService) {
		cl, svc := e.serve(a, serverTLS(auth), clientTLS(c))
		return func(tok, perm, res string) (string, error) { return call(t, cl, tok, perm, res) }, svc
	}

	t.Run("spiffe service account", func(t *testing.T) {
		do, svc := serve(tls.VerifyClientCertIfGiven, &dnsClient)
		before := e.authz.calls.Load()
		name, err := do("", "flashdns:zones:delete", zoneWeb)
		if err != nil || name != dnsSA {
			t.Fatalf("got %q, %v", name, err)
		}
		p := <-svc.seen
		if p.Certificate == nil || p.Certificate.SHA256 != fingerprint(dnsClient) ||
			!slices.Contains(p.Certificate.URIs, spiffeID) || !slices.Contains(p.Certificate.DNSNames, "dns.acme.internal") {
			t.Fatalf("certificate identity %+v", p.Certificate)
		}
		if p.TokenID != "" || p.Kind != aegisv1.PrincipalKind_PRINCIPAL_KIND_SERVICE_ACCOUNT {
			t.Fatalf("principal %+v", p)
		}
		if _, by := e.authz.last(); by != "principal" || e.authz.calls.Load() != before+1 {
			t.Fatalf("Authorize subject %q", by)
		}
		// The service account's grants stop at its org.
		_, err = do("", "flashdns:zones:get", zoneBob)
		wantCode(t, err, codes.NotFound)
		// A bearer token takes precedence over the certificate, which
		// stays visible.
		name, err = do(e.token(aliceGrant()), "flashdns:zones:get", zoneWeb)
		if err != nil || name != alice {
			t.Fatalf("token over mTLS: %q, %v", name, err)
		}
		if p := <-svc.seen; p.Certificate == nil || p.Certificate.SHA256 != fingerprint(dnsClient) {
			t.Fatalf("token caller lost the certificate: %+v", p)
		}
		if _, by := e.authz.last(); by != "token" {
			t.Fatalf("Authorize subject %q, want token", by)
		}
	})

	t.Run("pinned fingerprint", func(t *testing.T) {
		do, _ := serve(tls.VerifyClientCertIfGiven, &pinned)
		if name, err := do("", "flashdns:zones:get", zoneWeb); err != nil || name != dnsSA {
			t.Fatalf("got %q, %v", name, err)
		}
	})

	t.Run("unbound certificate", func(t *testing.T) {
		do, _ := serve(tls.VerifyClientCertIfGiven, &unbound)
		_, err := do("", "flashdns:zones:get", zoneWeb)
		wantCode(t, err, codes.Unauthenticated)
		if !strings.Contains(err.Error(), "not bound") {
			t.Fatalf("unbound certificate: %v", err)
		}
	})

	t.Run("no certificate", func(t *testing.T) {
		do, _ := serve(tls.VerifyClientCertIfGiven, nil)
		_, err := do("", "flashdns:zones:get", zoneWeb)
		wantCode(t, err, codes.Unauthenticated)
	})

	t.Run("unverified certificate", func(t *testing.T) {
		// The server asks for a certificate without verifying it; a
		// self-signed one claiming the service account's SPIFFE id must
		// not count.
		do, _ := serve(tls.RequestClientCert, &selfSigned)
		_, err := do("", "flashdns:zones:get", zoneWeb)
		wantCode(t, err, codes.Unauthenticated)
		if !strings.Contains(err.Error(), "missing bearer token") {
			t.Fatalf("unverified certificate was considered: %v", err)
		}
	})
}

func TestMTLSNotConfigured(t *testing.T) {
	e := newEnv(t)
	ca := newTestCA(t)
	serverCert := ca.issue(t, "svc", x509.ExtKeyUsageServerAuth, nil, nil, []net.IP{net.IPv4(127, 0, 0, 1)})
	client := ca.issue(t, "dns", x509.ExtKeyUsageClientAuth, []string{spiffeID}, nil, nil)
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	c, _ := e.serve(e.newAuthorizer(e.config()),
		&tls.Config{Certificates: []tls.Certificate{serverCert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool, MinVersion: tls.VersionTLS13},
		&tls.Config{Certificates: []tls.Certificate{client}, RootCAs: pool, MinVersion: tls.VersionTLS13})
	// Without CertPrincipal a certificate alone is not a credential.
	_, err := call(t, c, "", "flashdns:zones:get", zoneWeb)
	wantCode(t, err, codes.Unauthenticated)
	if _, err := call(t, c, e.token(aliceGrant()), "flashdns:zones:get", zoneWeb); err != nil {
		t.Fatal(err)
	}
}

func TestPeerCertIdentity(t *testing.T) {
	if _, err := PeerCertIdentity(context.Background()); !errors.Is(err, ErrNoPeerCertificate) {
		t.Fatalf("no peer: %v", err)
	}
	plain := peer.NewContext(context.Background(), &peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}})
	if _, err := PeerCertIdentity(plain); !errors.Is(err, ErrNoPeerCertificate) {
		t.Fatalf("plaintext peer: %v", err)
	}
	if ip := peerIP(plain); ip != "127.0.0.1" {
		t.Fatalf("peer ip %q", ip)
	}
	leaf := newTestCA(t).issue(t, "x", x509.ExtKeyUsageClientAuth, []string{spiffeID}, []string{"Svc.Example"}, nil)
	unverified := peer.NewContext(context.Background(), &peer.Peer{AuthInfo: credentials.TLSInfo{
		State: tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf.Leaf}},
	}})
	if _, err := PeerCertIdentity(unverified); !errors.Is(err, ErrNoPeerCertificate) {
		t.Fatalf("unverified certificate accepted: %v", err)
	}
	verified := peer.NewContext(context.Background(), &peer.Peer{AuthInfo: credentials.TLSInfo{
		State: tls.ConnectionState{
			PeerCertificates: []*x509.Certificate{leaf.Leaf},
			VerifiedChains:   [][]*x509.Certificate{{leaf.Leaf}},
		},
	}})
	id, err := PeerCertIdentity(verified)
	if err != nil {
		t.Fatal(err)
	}
	fp := fingerprint(leaf)
	for _, tc := range []struct {
		m    *aegisv1.CertificateIdentity
		want bool
	}{
		{&aegisv1.CertificateIdentity{Match: &aegisv1.CertificateIdentity_Sha256Fingerprint{Sha256Fingerprint: fp}}, true},
		{&aegisv1.CertificateIdentity{Match: &aegisv1.CertificateIdentity_Sha256Fingerprint{Sha256Fingerprint: strings.ToUpper(fp)}}, true},
		{&aegisv1.CertificateIdentity{Match: &aegisv1.CertificateIdentity_Sha256Fingerprint{Sha256Fingerprint: fp[:62] + "00"}}, false},
		{&aegisv1.CertificateIdentity{Match: &aegisv1.CertificateIdentity_UriSan{UriSan: spiffeID}}, true},
		{&aegisv1.CertificateIdentity{Match: &aegisv1.CertificateIdentity_UriSan{UriSan: spiffeID + "x"}}, false},
		{&aegisv1.CertificateIdentity{Match: &aegisv1.CertificateIdentity_DnsSan{DnsSan: "svc.example"}}, true},
		{&aegisv1.CertificateIdentity{Match: &aegisv1.CertificateIdentity_DnsSan{DnsSan: ""}}, false},
		{&aegisv1.CertificateIdentity{}, false},
		{nil, false},
	} {
		if got := id.Matches(tc.m); got != tc.want {
			t.Errorf("Matches(%v) = %v, want %v", tc.m, got, tc.want)
		}
	}
}
