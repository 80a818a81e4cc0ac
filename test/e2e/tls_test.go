package e2e

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/photoncloud/photoncloud/internal/platform/testcerts"
)

// TestTLS runs the server with client certificate authentication on https
// URLs: etcdctl and HTTP clients presenting a certificate signed by the
// trusted CA get in; without one, or over plaintext, they do not.
func TestTLS(t *testing.T) {
	t.Parallel()
	certs := testcerts.New(t)
	id := &ClientTLS{CAFile: certs.CAFile, CertFile: certs.ClientCertFile, KeyFile: certs.ClientKeyFile}
	s := StartServer(t, Options{
		Name:      "tls",
		ServerTLS: &ServerTLS{CAFile: certs.CAFile, CertFile: certs.ServerCertFile, KeyFile: certs.ServerKeyFile, ClientCertAuth: true},
		ClientTLS: id,
	})

	t.Run("etcdctl-with-client-cert", func(t *testing.T) {
		wantOut(t, "put", s.Ctl(t, "put", "tls/k", "v"), "OK\n")
		wantOut(t, "get", s.Ctl(t, "get", "tls/k"), "tls/k\nv\n")
		wantMatch(t, "endpoint health", s.Ctl(t, "endpoint", "health"),
			regexp.QuoteMeta(s.Endpoint())+` is healthy: successfully committed proposal: took = \S+\n`)
		wantMatch(t, "member list", s.Ctl(t, "member", "list"),
			`[0-9a-f]+, started, tls, `+regexp.QuoteMeta(s.PeerURL())+`, `+regexp.QuoteMeta("https://"+s.Endpoint())+`, false\n`)
		// An https:// endpoint works as well as a bare address.
		r := s.RunEtcdctlAt("https://"+s.Endpoint(), nil, "", "get", "tls/k")
		if r.Err != nil || r.Stdout != "tls/k\nv\n" {
			t.Errorf("get via https:// endpoint: %v", r)
		}
	})

	t.Run("etcdctl-without-client-cert", func(t *testing.T) {
		t.Parallel()
		start := time.Now()
		r := s.RunEtcdctl(&ClientTLS{CAFile: certs.CAFile}, "", "--command-timeout=2s", "put", "tls/nocert", "v")
		if r.Err == nil {
			t.Errorf("put without a client certificate succeeded: %v", r)
		}
		t.Logf("without client cert (%v): %s", time.Since(start).Round(time.Millisecond), strings.TrimSpace(r.Stderr))
		r = s.RunEtcdctl(&ClientTLS{CAFile: certs.CAFile}, "", "--command-timeout=2s", "get", "tls/k")
		if r.Err == nil {
			t.Errorf("get without a client certificate succeeded: %v", r)
		}
	})

	t.Run("etcdctl-plaintext", func(t *testing.T) {
		t.Parallel()
		r := s.RunEtcdctl(&ClientTLS{}, "", "--command-timeout=2s", "get", "tls/k")
		if r.Err == nil {
			t.Errorf("plaintext get against a TLS listener succeeded: %v", r)
		}
	})

	t.Run("untrusted-server", func(t *testing.T) {
		t.Parallel()
		// A client trusting another CA must refuse the server.
		other := testcerts.New(t)
		r := s.RunEtcdctl(&ClientTLS{CAFile: other.CAFile, CertFile: other.ClientCertFile, KeyFile: other.ClientKeyFile}, "",
			"--command-timeout=2s", "get", "tls/k")
		if r.Err == nil {
			t.Errorf("get with a client from another CA succeeded: %v", r)
		}
	})

	t.Run("http", func(t *testing.T) {
		hc := s.HTTPClient(t)
		code, body := httpDo(t, hc, "GET", s.HTTPURL()+"/health", "")
		if code != http.StatusOK || !strings.Contains(body, `"health":"true"`) {
			t.Errorf("GET https /health with client cert = %d %s, want 200 health true", code, body)
		}
		// The JSON gateway calls the member's own TLS listener, which
		// requires a client certificate, and writes through it.
		code, body = httpDo(t, hc, "POST", s.HTTPURL()+"/v3/kv/put", `{"key":"dGxzL2d3","value":"Z3c="}`)
		if code != http.StatusOK || !strings.Contains(body, `"revision"`) {
			t.Errorf("POST https /v3/kv/put = %d %s, want 200 with a header", code, body)
		}
		wantOut(t, "get after the gateway's put", s.Ctl(t, "get", "tls/gw"), "tls/gw\ngw\n")
		anon := &ClientTLS{CAFile: certs.CAFile}
		cfg, err := anon.Config()
		if err != nil {
			t.Fatal(err)
		}
		tr := &http.Transport{TLSClientConfig: cfg}
		defer tr.CloseIdleConnections()
		nocert := &http.Client{Transport: tr, Timeout: 10 * time.Second}
		if resp, err := nocert.Get(s.HTTPURL() + "/health"); err == nil {
			resp.Body.Close()
			t.Errorf("GET https /health without client cert = %d, want a TLS failure", resp.StatusCode)
		}
	})
}
