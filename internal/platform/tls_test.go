package platform

import (
	"crypto/tls"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/photoncloud/photoncloud/internal/platform/testcerts"
)

// handshake runs one TLS handshake over a loopback connection and returns
// the server's and the client's error.
func handshake(t *testing.T, srv, cli *tls.Config) (serverErr, clientErr error) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	done := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		tc := tls.Server(c, srv)
		err = tc.Handshake()
		if err == nil {
			// TLS 1.3 reports a rejected client certificate only on the
			// first read, so exchange one byte.
			_, err = tc.Write([]byte("x"))
		}
		done <- err
	}()
	c, err := tls.Dial("tcp", l.Addr().String(), cli)
	if err == nil {
		_, err = io.ReadFull(c, make([]byte, 1))
		c.Close()
	}
	return <-done, err
}

func TestTLSMutual(t *testing.T) {
	certs := testcerts.New(t)
	server := TLSFiles{CertFile: certs.ServerCertFile, KeyFile: certs.ServerKeyFile, TrustedCAFile: certs.CAFile, ClientCertAuth: true}
	srvCfg, err := server.ServerConfig()
	if err != nil {
		t.Fatal(err)
	}
	if srvCfg.ClientAuth != tls.RequireAndVerifyClientCert || srvCfg.MinVersion != tls.VersionTLS12 {
		t.Fatalf("server config: client auth %v, min version %x", srvCfg.ClientAuth, srvCfg.MinVersion)
	}

	withCert := TLSFiles{CertFile: certs.ClientCertFile, KeyFile: certs.ClientKeyFile, TrustedCAFile: certs.CAFile}
	cliCfg, err := withCert.ClientConfig("localhost")
	if err != nil {
		t.Fatal(err)
	}
	if serr, cerr := handshake(t, srvCfg, cliCfg); serr != nil || cerr != nil {
		t.Fatalf("mTLS handshake: server %v, client %v", serr, cerr)
	}

	noCert, err := TLSFiles{TrustedCAFile: certs.CAFile}.ClientConfig("localhost")
	if err != nil {
		t.Fatal(err)
	}
	if serr, _ := handshake(t, srvCfg, noCert); serr == nil || !strings.Contains(serr.Error(), "certificate") {
		t.Fatalf("client without certificate accepted: server error %v", serr)
	}

	// A client that trusts only the system roots must reject our test CA.
	untrusting, err := TLSFiles{CertFile: certs.ClientCertFile, KeyFile: certs.ClientKeyFile}.ClientConfig("localhost")
	if err != nil {
		t.Fatal(err)
	}
	if _, cerr := handshake(t, srvCfg, untrusting); cerr == nil {
		t.Fatal("client accepted a server certificate from an untrusted CA")
	}
}

func TestTLSServerConfig(t *testing.T) {
	certs := testcerts.New(t)
	if cfg, err := (TLSFiles{}).ServerConfig(); cfg != nil || err != nil {
		t.Fatalf("empty TLSFiles: %v, %v", cfg, err)
	}
	cfg, err := TLSFiles{CertFile: certs.ServerCertFile, KeyFile: certs.ServerKeyFile, TrustedCAFile: certs.CAFile}.ServerConfig()
	if err != nil || cfg.ClientAuth != tls.VerifyClientCertIfGiven {
		t.Fatalf("CA without client-cert-auth: %v, %v", cfg, err)
	}
	notPEM := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		files TLSFiles
		want  string
	}{
		{TLSFiles{CertFile: certs.ServerCertFile}, "tls: certificate and key files must be given together"},
		{TLSFiles{CertFile: certs.ServerCertFile, KeyFile: certs.ServerKeyFile, ClientCertAuth: true}, "tls: client certificate auth needs a trusted CA file"},
		{TLSFiles{ClientCertAuth: true}, "tls: client certificate auth needs a server certificate and key"},
		{TLSFiles{CertFile: certs.ServerCertFile, KeyFile: certs.ServerKeyFile, TrustedCAFile: notPEM}, "tls: no PEM certificates in trusted CA file " + notPEM},
		{TLSFiles{CertFile: certs.ServerCertFile, KeyFile: certs.ClientKeyFile}, "tls: load key pair " + certs.ServerCertFile + ": tls: private key does not match public key"},
	} {
		if _, err := tc.files.ServerConfig(); err == nil || err.Error() != tc.want {
			t.Errorf("%+v: error %v, want %s", tc.files, err, tc.want)
		}
	}
}
