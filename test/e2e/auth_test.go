package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Users of the auth tests: root administers, alice may only read app/.
const (
	rootUser  = "root:rootpw"
	aliceUser = "alice:alicepw"
)

// ctlAs runs etcdctl as user ("" for anonymous) and fails the test unless
// it succeeds.
func ctlAs(t *testing.T, s *Server, user string, args ...string) string {
	t.Helper()
	if user != "" {
		args = append([]string{"--user", user}, args...)
	}
	return s.Ctl(t, args...)
}

// ctlFailsAs runs etcdctl as user and checks that it fails with etcd's
// error message msg on stderr.
func ctlFailsAs(t *testing.T, s *Server, user, msg string, args ...string) {
	t.Helper()
	if user != "" {
		args = append([]string{"--user", user}, args...)
	}
	r := s.RunEtcdctl(nil, "", append([]string{"--command-timeout=5s"}, args...)...)
	if r.Err == nil {
		t.Errorf("etcdctl %s succeeded, want %q: %v", strings.Join(args, " "), msg, r)
		return
	}
	if !strings.Contains(r.Stderr, msg) {
		t.Errorf("etcdctl %s: stderr %q does not contain %q", strings.Join(args, " "), r.Stderr, msg)
	}
}

// setUpUsers creates root and alice (reading app/ through role ro), writes
// app/x=1 and enables auth, checking etcdctl's exact output.
func setUpUsers(t *testing.T, s *Server, user string) {
	t.Helper()
	wantOut(t, "user add root", ctlAs(t, s, user, "user", "add", rootUser), "User root created\n")
	wantOut(t, "grant root", ctlAs(t, s, user, "user", "grant-role", "root", "root"), "Role root is granted to user root\n")
	wantOut(t, "role add", ctlAs(t, s, user, "role", "add", "ro"), "Role ro created\n")
	wantOut(t, "grant-permission", ctlAs(t, s, user, "role", "grant-permission", "ro", "read", "app/", "--prefix"), "Role ro updated\n")
	wantOut(t, "user add alice", ctlAs(t, s, user, "user", "add", aliceUser), "User alice created\n")
	wantOut(t, "grant ro", ctlAs(t, s, user, "user", "grant-role", "alice", "ro"), "Role ro is granted to user alice\n")
	wantOut(t, "put", ctlAs(t, s, user, "put", "app/x", "1"), "OK\n")
	wantOut(t, "auth enable", ctlAs(t, s, user, "auth", "enable"), "Authentication Enabled\n")
}

// TestAuth drives users, roles, permissions and auth enable/disable with
// the real etcdctl and checks etcd's outputs and errors, then the JSON
// gateway's /v3/auth endpoints.
func TestAuth(t *testing.T) {
	t.Parallel()
	s := StartServer(t, Options{Name: "auth"})
	setUpUsers(t, s, "")

	t.Run("read-only-user", func(t *testing.T) {
		wantOut(t, "alice get", ctlAs(t, s, aliceUser, "get", "app/x"), "app/x\n1\n")
		ctlFailsAs(t, s, aliceUser, "etcdserver: permission denied", "put", "app/x", "2")
		ctlFailsAs(t, s, aliceUser, "etcdserver: permission denied", "get", "other")
		ctlFailsAs(t, s, aliceUser, "etcdserver: permission denied", "del", "app/x")
		ctlFailsAs(t, s, aliceUser, "etcdserver: permission denied", "user", "list")
		ctlFailsAs(t, s, aliceUser, "etcdserver: permission denied", "compaction", "1")
		ctlFailsAs(t, s, aliceUser, "etcdserver: permission denied", "defrag")
		// The data did not change.
		wantOut(t, "root get", ctlAs(t, s, rootUser, "get", "app/x", "--print-value-only"), "1\n")
	})

	t.Run("anonymous-and-bad-credentials", func(t *testing.T) {
		ctlFailsAs(t, s, "", "etcdserver: user name is empty", "put", "app/x", "2")
		ctlFailsAs(t, s, "", "etcdserver: user name is empty", "get", "app/x")
		ctlFailsAs(t, s, "alice:wrong", "etcdserver: authentication failed, invalid user ID or password", "get", "app/x")
		ctlFailsAs(t, s, "nobody:pw", "etcdserver: authentication failed, invalid user ID or password", "get", "app/x")
	})

	t.Run("inspect", func(t *testing.T) {
		wantOut(t, "user list", ctlAs(t, s, rootUser, "user", "list"), "alice\nroot\n")
		wantOut(t, "role list", ctlAs(t, s, rootUser, "role", "list"), "ro\n")
		wantOut(t, "user get", ctlAs(t, s, rootUser, "user", "get", "alice"), "User: alice\nRoles: ro\n")
		// A user may read herself, not others.
		wantOut(t, "alice user get", ctlAs(t, s, aliceUser, "user", "get", "alice"), "User: alice\nRoles: ro\n")
		ctlFailsAs(t, s, aliceUser, "etcdserver: permission denied", "user", "get", "root")
		wantOut(t, "role get", ctlAs(t, s, rootUser, "role", "get", "ro"),
			"Role ro\nKV Read:\n\t[app/, app0) (prefix app/)\nKV Write:\n")
		wantMatch(t, "auth status", ctlAs(t, s, rootUser, "auth", "status"), "Authentication Status: true\nAuthRevision: [0-9]+\n")
		ctlFailsAs(t, s, rootUser, "etcdserver: invalid auth management", "user", "delete", "root")
		ctlFailsAs(t, s, rootUser, "etcdserver: role name not found", "role", "get", "nope")
		ctlFailsAs(t, s, rootUser, "etcdserver: user name already exists", "user", "add", "alice:x")
	})

	t.Run("gateway", func(t *testing.T) {
		hc := s.HTTPClient(t)
		base := s.HTTPURL()
		code, body := gatewayDo(t, hc, base+"/v3/auth/authenticate", "", `{"name":"alice","password":"alicepw"}`)
		var auth struct {
			Token string `json:"token"`
		}
		if code != http.StatusOK {
			t.Fatalf("POST /v3/auth/authenticate = %d %s", code, body)
		}
		decodeJSON(t, "authenticate", body, &auth)
		if auth.Token == "" {
			t.Fatalf("no token in %s", body)
		}
		key := base64.StdEncoding.EncodeToString([]byte("app/x"))
		code, body = gatewayDo(t, hc, base+"/v3/kv/range", auth.Token, `{"key":"`+key+`"}`)
		if code != http.StatusOK || !strings.Contains(body, `"value":"`+base64.StdEncoding.EncodeToString([]byte("1"))+`"`) {
			t.Errorf("range with the token = %d %s", code, body)
		}
		code, body = gatewayDo(t, hc, base+"/v3/kv/put", auth.Token, `{"key":"`+key+`","value":"Mg=="}`)
		if code != http.StatusForbidden || !strings.Contains(body, "permission denied") {
			t.Errorf("put with a read-only token = %d %s, want 403 permission denied", code, body)
		}
		code, body = gatewayDo(t, hc, base+"/v3/kv/range", "", `{"key":"`+key+`"}`)
		if code == http.StatusOK || !strings.Contains(body, "user name is empty") {
			t.Errorf("range without a token = %d %s", code, body)
		}
	})

	t.Run("revoke-and-disable", func(t *testing.T) {
		wantOut(t, "revoke-permission", ctlAs(t, s, rootUser, "role", "revoke-permission", "ro", "app/", "--prefix"),
			"Permission of range [app/, app0) is revoked from role ro\n")
		ctlFailsAs(t, s, aliceUser, "etcdserver: permission denied", "get", "app/x")
		ctlFailsAs(t, s, aliceUser, "etcdserver: permission denied", "auth", "disable")
		wantOut(t, "auth disable", ctlAs(t, s, rootUser, "auth", "disable"), "Authentication Disabled\n")
		wantOut(t, "anonymous put", ctlAs(t, s, "", "put", "app/x", "3"), "OK\n")
		wantMatch(t, "auth status", ctlAs(t, s, "", "auth", "status"), "Authentication Status: false\nAuthRevision: [0-9]+\n")
	})
}

// gatewayDo posts a JSON body to the gateway, with an Authorization token
// if one is given.
func gatewayDo(t *testing.T, hc *http.Client, url, token, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(Ctx(t, 15*time.Second), "POST", url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// TestAuthJWT runs the server with --auth-token jwt: etcdctl logs in and is
// checked as with simple tokens, and the token is a signed JWT.
func TestAuthJWT(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pub := writeAuthPEM(t, dir, "jwt.pub", "PUBLIC KEY", pubDER)
	priv := writeAuthPEM(t, dir, "jwt.key", "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(key))
	s := StartServer(t, Options{Name: "jwt", ExtraArgs: []string{
		"--auth-token", "jwt,pub-key=" + pub + ",priv-key=" + priv + ",sign-method=RS256,ttl=10m",
	}})
	setUpUsers(t, s, "")
	wantOut(t, "alice get", ctlAs(t, s, aliceUser, "get", "app/x"), "app/x\n1\n")
	ctlFailsAs(t, s, aliceUser, "etcdserver: permission denied", "put", "app/x", "2")
	wantOut(t, "root put", ctlAs(t, s, rootUser, "put", "app/x", "2"), "OK\n")

	code, body := gatewayDo(t, s.HTTPClient(t), s.HTTPURL()+"/v3/auth/authenticate", "", `{"name":"alice","password":"alicepw"}`)
	var auth struct {
		Token string `json:"token"`
	}
	if code != http.StatusOK {
		t.Fatalf("authenticate = %d %s", code, body)
	}
	decodeJSON(t, "authenticate", body, &auth)
	parts := strings.Split(auth.Token, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q is not a JWT", auth.Token)
	}
	claims, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Username string  `json:"username"`
		Revision float64 `json:"revision"`
		Exp      int64   `json:"exp"`
	}
	if err := json.Unmarshal(claims, &c); err != nil || c.Username != "alice" || c.Revision == 0 ||
		time.Until(time.Unix(c.Exp, 0)) > 10*time.Minute || time.Until(time.Unix(c.Exp, 0)) < 9*time.Minute {
		t.Errorf("JWT claims %s (%v): want username alice, a revision and a 10m expiry", claims, err)
	}
}

func writeAuthPEM(t *testing.T, dir, name, typ string, der []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// authCerts is a throwaway CA with a server certificate and client
// certificates whose common names are user names.
type authCerts struct {
	CA, ServerCert, ServerKey string
	clients                   map[string][2]string // CN -> cert, key
}

func newAuthCerts(t *testing.T, users ...string) *authCerts {
	t.Helper()
	dir := t.TempDir()
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "auth test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	c := &authCerts{CA: writeAuthPEM(t, dir, "ca.pem", "CERTIFICATE", caDER), clients: map[string][2]string{}}
	leaf := func(serial int64, cn string, server bool) (string, string) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}
		if server {
			tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
			tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
			tmpl.DNSNames = []string{"localhost"}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return writeAuthPEM(t, dir, cn+".pem", "CERTIFICATE", der), writeAuthPEM(t, dir, cn+"-key.pem", "PRIVATE KEY", keyDER)
	}
	c.ServerCert, c.ServerKey = leaf(2, "server", true)
	for i, u := range users {
		cert, key := leaf(int64(10+i), u, false)
		c.clients[u] = [2]string{cert, key}
	}
	return c
}

func (c *authCerts) identity(cn string) *ClientTLS {
	return &ClientTLS{CAFile: c.CA, CertFile: c.clients[cn][0], KeyFile: c.clients[cn][1]}
}

// TestAuthClientCertCN: with --client-cert-auth, a request without a token
// acts as the user named by its certificate's common name; a token still
// wins over the certificate.
func TestAuthClientCertCN(t *testing.T) {
	t.Parallel()
	certs := newAuthCerts(t, "root", "alice", "mallory")
	s := StartServer(t, Options{
		Name:      "cn",
		ServerTLS: &ServerTLS{CAFile: certs.CA, CertFile: certs.ServerCert, KeyFile: certs.ServerKey, ClientCertAuth: true},
		ClientTLS: certs.identity("root"),
	})
	setUpUsers(t, s, "")
	as := func(cn string, args ...string) CtlResult {
		return s.RunEtcdctl(certs.identity(cn), "", append([]string{"--command-timeout=5s"}, args...)...)
	}
	// The root certificate is root: no password needed.
	if r := as("root", "put", "app/y", "1"); r.Err != nil || r.Stdout != "OK\n" {
		t.Errorf("put with the root certificate: %v", r)
	}
	// alice's certificate reads app/ but cannot write.
	if r := as("alice", "get", "app/x", "--print-value-only"); r.Err != nil || r.Stdout != "1\n" {
		t.Errorf("get with alice's certificate: %v", r)
	}
	if r := as("alice", "put", "app/x", "2"); r.Err == nil || !strings.Contains(r.Stderr, "etcdserver: permission denied") {
		t.Errorf("put with alice's certificate: %v", r)
	}
	// A certificate naming no user gets nothing.
	if r := as("mallory", "get", "app/x"); r.Err == nil || !strings.Contains(r.Stderr, "etcdserver: permission denied") {
		t.Errorf("get with a certificate of an unknown user: %v", r)
	}
	// A token wins: alice's certificate with root's password writes.
	if r := as("alice", "--user", rootUser, "put", "app/x", "3"); r.Err != nil || r.Stdout != "OK\n" {
		t.Errorf("put with alice's certificate as root: %v", r)
	}
	if r := as("root", "get", "app/x", "--print-value-only"); r.Err != nil || r.Stdout != "3\n" {
		t.Errorf("app/x: %v", r)
	}
}
