package platform

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"strings"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/photoncloud/photoncloud/internal/platform/testcerts"
)

// selfSignedTLS is a server configuration whose certificate no CA signed
// and which names neither the address nor localhost, as an operator's
// certificate for the public name of a service would be.
func selfSignedTLS(t *testing.T) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "api.example.invalid"},
		DNSNames:  []string{"api.example.invalid"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

func selfCheck(t *testing.T, addr string, serverTLS *tls.Config) error {
	t.Helper()
	conn, err := DialSelf(addr, serverTLS)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	return err
}

func TestDialSelf(t *testing.T) {
	t.Run("plaintext", func(t *testing.T) {
		srv, _ := NewGRPCServer(GRPCOptions{Logger: discardLogger()})
		if err := selfCheck(t, serveGRPC(t, srv, nil), nil); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("certificate without CA or matching name", func(t *testing.T) {
		srvTLS := selfSignedTLS(t)
		srv, _ := NewGRPCServer(GRPCOptions{TLS: srvTLS, Logger: discardLogger()})
		if err := selfCheck(t, serveGRPC(t, srv, nil), srvTLS); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("client certificates required", func(t *testing.T) {
		certs := testcerts.New(t)
		srvTLS, err := TLSFiles{CertFile: certs.ServerCertFile, KeyFile: certs.ServerKeyFile, TrustedCAFile: certs.CAFile, ClientCertAuth: true}.ServerConfig()
		if err != nil {
			t.Fatal(err)
		}
		srv, _ := NewGRPCServer(GRPCOptions{TLS: srvTLS, Logger: discardLogger()})
		if err := selfCheck(t, serveGRPC(t, srv, nil), srvTLS); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("another certificate is refused", func(t *testing.T) {
		certs := testcerts.New(t)
		other, err := TLSFiles{CertFile: certs.ServerCertFile, KeyFile: certs.ServerKeyFile}.ServerConfig()
		if err != nil {
			t.Fatal(err)
		}
		srv, _ := NewGRPCServer(GRPCOptions{TLS: other, Logger: discardLogger()})
		err = selfCheck(t, serveGRPC(t, srv, nil), selfSignedTLS(t))
		if err == nil || !strings.Contains(err.Error(), "own certificate") {
			t.Fatalf("dialing a listener with another certificate: %v, want a refusal", err)
		}
	})
}
