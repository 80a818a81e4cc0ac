// Package testcerts writes a throwaway certificate authority with a server
// and a client certificate, for tests that exercise TLS and mTLS. The keys
// are ECDSA P-256 so generating them is cheap enough for every test.
package testcerts

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Files names the PEM files written by Write.
type Files struct {
	Dir            string
	CAFile         string // CA certificate, to trust
	ServerCertFile string // valid for localhost, 127.0.0.1 and ::1; also usable as a client (peer) certificate
	ServerKeyFile  string
	ClientCertFile string // CommonName "root", so etcd-style CN auth sees user root
	ClientKeyFile  string
}

// New writes a fresh CA, server and client certificate into a temporary
// directory owned by t and fails the test on error.
func New(t testing.TB) Files {
	t.Helper()
	f, err := Write(t.TempDir())
	if err != nil {
		t.Fatalf("testcerts: %v", err)
	}
	return f
}

// Write writes ca.pem, server.pem, server-key.pem, client.pem and
// client-key.pem into dir, which must exist.
func Write(dir string) (Files, error) {
	f := Files{
		Dir:            dir,
		CAFile:         filepath.Join(dir, "ca.pem"),
		ServerCertFile: filepath.Join(dir, "server.pem"),
		ServerKeyFile:  filepath.Join(dir, "server-key.pem"),
		ClientCertFile: filepath.Join(dir, "client.pem"),
		ClientKeyFile:  filepath.Join(dir, "client-key.pem"),
	}
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return f, fmt.Errorf("generate ca key: %w", err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "photoncloud test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return f, fmt.Errorf("create ca certificate: %w", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return f, fmt.Errorf("parse ca certificate: %w", err)
	}
	if err := writePEM(f.CAFile, "CERTIFICATE", caDER); err != nil {
		return f, err
	}
	leaves := []struct {
		serial   int64
		cn       string
		usage    x509.ExtKeyUsage
		certFile string
		keyFile  string
	}{
		{2, "localhost", x509.ExtKeyUsageServerAuth, f.ServerCertFile, f.ServerKeyFile},
		{3, "root", x509.ExtKeyUsageClientAuth, f.ClientCertFile, f.ClientKeyFile},
	}
	for _, l := range leaves {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return f, fmt.Errorf("generate %s key: %w", l.cn, err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(l.serial),
			Subject:      pkix.Name{CommonName: l.cn},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{l.usage},
		}
		if l.usage == x509.ExtKeyUsageServerAuth {
			// Members also present it as clients of each other (peer TLS).
			tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
			tmpl.DNSNames = []string{"localhost"}
			tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			return f, fmt.Errorf("create %s certificate: %w", l.cn, err)
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return f, fmt.Errorf("marshal %s key: %w", l.cn, err)
		}
		if err := writePEM(l.certFile, "CERTIFICATE", der); err != nil {
			return f, err
		}
		if err := writePEM(l.keyFile, "PRIVATE KEY", keyDER); err != nil {
			return f, err
		}
	}
	return f, nil
}

func writePEM(path, typ string, der []byte) error {
	data := pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
