package platform

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// TLSFiles names the certificate files of one listener or client, with the
// same meaning as etcd's --cert-file, --key-file, --trusted-ca-file and
// --client-cert-auth. All empty means plaintext.
type TLSFiles struct {
	CertFile       string
	KeyFile        string
	TrustedCAFile  string
	ClientCertAuth bool // require and verify client certificates against TrustedCAFile
}

// Enabled reports whether a certificate is configured.
func (t TLSFiles) Enabled() bool { return t.CertFile != "" || t.KeyFile != "" }

// ServerConfig builds the server side TLS configuration, or returns nil
// when no certificate is configured. With a trusted CA but without
// ClientCertAuth, client certificates are verified when presented (as etcd
// does) so that certificate-based identities still work.
func (t TLSFiles) ServerConfig() (*tls.Config, error) {
	if !t.Enabled() {
		if t.ClientCertAuth {
			return nil, errors.New("tls: client certificate auth needs a server certificate and key")
		}
		return nil, nil
	}
	cert, err := t.keyPair()
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
	}
	switch {
	case t.TrustedCAFile != "":
		if cfg.ClientCAs, err = loadCAPool(t.TrustedCAFile); err != nil {
			return nil, err
		}
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
		if t.ClientCertAuth {
			cfg.ClientAuth = tls.RequireAndVerifyClientCert
		}
	case t.ClientCertAuth:
		return nil, errors.New("tls: client certificate auth needs a trusted CA file")
	}
	return cfg, nil
}

// ClientConfig builds a client TLS configuration for dialing serverName.
// TrustedCAFile replaces the system roots when set; CertFile/KeyFile, when
// set, are presented as the client certificate.
func (t TLSFiles) ClientConfig(serverName string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName}
	if t.Enabled() {
		cert, err := t.keyPair()
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	if t.TrustedCAFile != "" {
		pool, err := loadCAPool(t.TrustedCAFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

func (t TLSFiles) keyPair() (tls.Certificate, error) {
	if t.CertFile == "" || t.KeyFile == "" {
		return tls.Certificate{}, errors.New("tls: certificate and key files must be given together")
	}
	cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tls: load key pair %s: %w", t.CertFile, err)
	}
	return cert, nil
}

func loadCAPool(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tls: read trusted CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("tls: no PEM certificates in trusted CA file %s", path)
	}
	return pool, nil
}
