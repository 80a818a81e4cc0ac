package authn

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/photoncloud/photoncloud/internal/aegis/password"
	"github.com/photoncloud/photoncloud/internal/aegis/token"
)

// memStore implements every store interface of the package in memory,
// the way the Chainfire store will: copies in, copies out.
type memStore struct {
	mu         sync.Mutex
	users      map[string]*User // "org/username"
	fed        map[[2]string]string
	principals map[string]*Principal
	keys       map[string]*ServiceAccountKey
	certs      map[string]string // "sha256:<hex>", "uri:<san>" or "dns:<san>" → service account
	admins     map[string]bool   // principals the Authorizer lets revoke anything

	revs       *token.RevocationList
	revTokens  map[string]time.Time
	revPrincip map[string]time.Time
	failWith   error // every lookup fails with it when set
}

func newMemStore(revs *token.RevocationList) *memStore {
	return &memStore{
		users: map[string]*User{}, fed: map[[2]string]string{}, principals: map[string]*Principal{},
		keys: map[string]*ServiceAccountKey{}, certs: map[string]string{}, admins: map[string]bool{},
		revs: revs, revTokens: map[string]time.Time{}, revPrincip: map[string]time.Time{},
	}
}

func (m *memStore) addUser(org, name, hash string, disabled bool) *Principal {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := Principal{Name: "orgs/" + org + "/users/" + name, Kind: token.KindUser, Org: org, DisplayName: strings.ToUpper(name), Disabled: disabled, Groups: []string{"orgs/" + org + "/groups/staff"}}
	m.users[org+"/"+name] = &User{Principal: p, PasswordHash: hash}
	m.principals[p.Name] = &p
	return &p
}

func (m *memStore) addSA(name, org string, disabled bool) *Principal {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := &Principal{Name: name, Kind: token.KindServiceAccount, Org: org, DisplayName: "sa", Disabled: disabled}
	m.principals[name] = p
	return p
}

func (m *memStore) addKey(clientID, sa, hash string, exp time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.keys[clientID] = &ServiceAccountKey{ClientID: clientID, ServiceAccount: *m.principals[sa], SecretHash: hash, ExpireTime: exp}
}

func (m *memStore) setDisabled(name string, disabled bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.principals[name].Disabled = disabled
	for _, u := range m.users {
		if u.Name == name {
			u.Disabled = disabled
		}
	}
}

func (m *memStore) UserByLogin(_ context.Context, org, username string) (*User, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failWith != nil {
		return nil, m.failWith
	}
	u, ok := m.users[org+"/"+username]
	if !ok {
		return nil, ErrNotFound
	}
	c := *u
	return &c, nil
}

func (m *memStore) UserByFederatedIdentity(_ context.Context, issuer, subject string) (*Principal, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	name, ok := m.fed[[2]string{issuer, subject}]
	if !ok {
		return nil, ErrNotFound
	}
	c := *m.principals[name]
	return &c, nil
}

func (m *memStore) UpdatePasswordHash(_ context.Context, principal, oldHash, newHash string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, u := range m.users {
		if u.Name == principal && u.PasswordHash == oldHash {
			u.PasswordHash = newHash
		}
	}
	return nil
}

func (m *memStore) ServiceAccountKey(_ context.Context, clientID string) (*ServiceAccountKey, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failWith != nil {
		return nil, m.failWith
	}
	k, ok := m.keys[clientID]
	if !ok {
		return nil, ErrNotFound
	}
	c := *k
	c.ServiceAccount = *m.principals[k.ServiceAccount.Name]
	return &c, nil
}

// ServiceAccountByCertificate applies the documented precedence: a pinned
// fingerprint, else URI SANs, else DNS SANs; different service accounts at
// the winning level are ambiguous.
func (m *memStore) ServiceAccountByCertificate(_ context.Context, cert *x509.Certificate) (*Principal, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	sum := sha256.Sum256(cert.Raw)
	found := m.certs["sha256:"+hex.EncodeToString(sum[:])]
	var uris []string
	for _, u := range cert.URIs {
		uris = append(uris, "uri:"+u.String())
	}
	var dnss []string
	for _, d := range cert.DNSNames {
		dnss = append(dnss, "dns:"+d)
	}
	for _, level := range [][]string{uris, dnss} {
		if found != "" {
			break
		}
		for _, id := range level {
			switch sa := m.certs[id]; {
			case sa == "":
			case found == "":
				found = sa
			case found != sa:
				return nil, ErrAmbiguous
			}
		}
	}
	if found == "" {
		return nil, ErrNotFound
	}
	c := *m.principals[found]
	return &c, nil
}

func (m *memStore) Principal(_ context.Context, name string) (*Principal, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.principals[name]
	if !ok {
		return nil, ErrNotFound
	}
	c := *p
	return &c, nil
}

// RevokeToken and RevokePrincipal record and apply to the local list at
// once, as the server's implementation is asked to.
func (m *memStore) RevokeToken(_ context.Context, jti string, exp time.Time) error {
	m.mu.Lock()
	m.revTokens[jti] = exp
	m.mu.Unlock()
	m.revs.RevokeToken(jti, exp)
	return nil
}

func (m *memStore) RevokePrincipal(_ context.Context, principal string, at time.Time) (time.Time, error) {
	m.mu.Lock()
	if prev, ok := m.revPrincip[principal]; ok && prev.After(at) {
		at = prev
	}
	m.revPrincip[principal] = at
	m.mu.Unlock()
	m.revs.RevokePrincipal(principal, at)
	return at, nil
}

func (m *memStore) Authorize(_ context.Context, caller *token.Claims, permission, _ string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return permission == "aegis:tokens:revoke" && m.admins[caller.Subject], nil
}

func (m *memStore) revocations() (tokens, principals int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.revTokens), len(m.revPrincip)
}

// auditLog collects audit events.
type auditLog struct {
	mu     sync.Mutex
	events []AuditEvent
}

func (a *auditLog) record(_ context.Context, ev AuditEvent) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.events = append(a.events, ev)
}

func (a *auditLog) all() []AuditEvent {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]AuditEvent(nil), a.events...)
}

func (a *auditLog) last(t *testing.T) AuditEvent {
	t.Helper()
	evs := a.all()
	if len(evs) == 0 {
		t.Fatal("no audit event")
	}
	return evs[len(evs)-1]
}

// Test identities.
const (
	alicePW   = "correct horse battery staple"
	ciSecret  = "ci-secret-0123456789"
	saCI      = "orgs/acme/projects/web/serviceAccounts/ci"
	saAPI     = "orgs/acme/projects/web/serviceAccounts/api"
	saOff     = "orgs/acme/serviceAccounts/off"
	apiURISAN = "spiffe://photon/ns/web/sa/api"
	aliceName = "orgs/acme/users/alice"
)

// cheapParams keep argon2 to well under a millisecond in tests.
var cheapParams = password.Params{Memory: 64, Time: 1, Threads: 1}

type fixture struct {
	url      string
	srv      *httptest.Server
	store    *memStore
	audit    *auditLog
	svc      *Service
	cfg      Config
	ring     *token.Keyring
	ver      *token.Verifier
	revs     *token.RevocationList
	refStore *token.MemRefreshStore
	limiter  *password.Limiter
	hasher   *password.Hasher
	ca       *testCA // set when tls
}

type fixtureOptions struct {
	tls     bool // serve HTTPS, verifying client certificates if given
	limiter password.LimiterOptions
	modify  func(*Config)
}

func newFixture(t testing.TB, o fixtureOptions) *fixture {
	t.Helper()
	f := &fixture{audit: &auditLog{}}
	srv := httptest.NewUnstartedServer(nil)
	scheme := "http"
	if o.tls {
		scheme = "https"
	}
	f.url = scheme + "://" + srv.Listener.Addr().String()

	tcfg := token.Config{Issuer: f.url}
	kek, err := token.NewKEK(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if f.ring, err = token.OpenKeyring(ctx, &token.MemKeyStore{}, tcfg, kek); err != nil {
		t.Fatal(err)
	}
	f.revs = token.NewRevocationList(nil)
	iss, err := token.NewIssuer(f.ring, tcfg, f.revs)
	if err != nil {
		t.Fatal(err)
	}
	if f.ver, err = token.NewVerifier(f.ring, tcfg, f.revs); err != nil {
		t.Fatal(err)
	}
	f.refStore = token.NewMemRefreshStore()
	ref, err := token.NewRefresher(f.refStore, f.revs, token.RefreshConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if f.hasher, err = password.NewHasher(password.Options{Params: cheapParams}); err != nil {
		t.Fatal(err)
	}
	if f.limiter, err = password.NewLimiter(o.limiter); err != nil {
		t.Fatal(err)
	}
	f.store = newMemStore(f.revs)
	f.seed(t)

	f.cfg = Config{
		Token: tcfg, Issuer: iss, Verifier: f.ver, Refresher: ref, Keyring: f.ring,
		Hasher: f.hasher, Limiter: f.limiter,
		Users: f.store, ServiceAccounts: f.store, Principals: f.store, Revoker: f.store, Authorizer: f.store,
		Revocations: f.revs,
		Audit:       f.audit.record,
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if o.modify != nil {
		o.modify(&f.cfg)
	}
	if f.svc, err = New(f.cfg); err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = f.svc.Handler()
	if o.tls {
		f.ca = newTestCA(t)
		srv.TLS = &tls.Config{
			Certificates: []tls.Certificate{f.ca.serverCert(t)},
			ClientCAs:    f.ca.pool,
			ClientAuth:   tls.VerifyClientCertIfGiven,
		}
		srv.StartTLS()
	} else {
		srv.Start()
	}
	f.srv = srv
	t.Cleanup(srv.Close)
	return f
}

func (f *fixture) seed(t testing.TB) {
	t.Helper()
	h, err := f.hasher.Hash(context.Background(), alicePW)
	if err != nil {
		t.Fatal(err)
	}
	f.store.addUser("acme", "alice", h, false)
	f.store.addUser("acme", "bob", h, true)     // disabled
	f.store.addUser("acme", "carol", "", false) // federation only
	f.store.addUser("system", "root", h, false)
	f.store.addSA(saCI, "acme", false)
	f.store.addSA(saAPI, "acme", false)
	f.store.addSA(saOff, "acme", true)
	f.store.addKey("key-ci", saCI, HashClientSecret(ciSecret), time.Time{})
	f.store.addKey("key-old", saCI, HashClientSecret(ciSecret), time.Now().Add(-time.Hour))
	f.store.addKey("key-off", saOff, HashClientSecret(ciSecret), time.Time{})
	f.store.certs["uri:"+apiURISAN] = saAPI
}

// client returns an HTTP client for the fixture server (with a client
// certificate when cert is set).
func (f *fixture) client(cert *tls.Certificate) *http.Client {
	c := f.srv.Client()
	if cert != nil {
		tr := c.Transport.(*http.Transport).Clone()
		tr.TLSClientConfig.Certificates = []tls.Certificate{*cert}
		c = &http.Client{Transport: tr}
	}
	return c
}

// post sends a raw form to the token endpoint.
func (f *fixture) post(t *testing.T, form url.Values, mod func(*http.Request)) (*http.Response, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, f.url+token.TokenPath, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if mod != nil {
		mod(req)
	}
	return f.do(t, req)
}

func (f *fixture) do(t *testing.T, req *http.Request) (*http.Response, map[string]any) {
	t.Helper()
	resp, err := f.client(nil).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var body map[string]any
	if len(b) > 0 {
		if err := json.Unmarshal(b, &body); err != nil {
			t.Fatalf("response is not JSON: %q", b)
		}
	}
	return resp, body
}

// wantError checks an RFC 6749 section 5.2 error response.
func wantError(t *testing.T, resp *http.Response, body map[string]any, status int, code string) {
	t.Helper()
	if resp.StatusCode != status || body["error"] != code {
		t.Fatalf("got %d %v, want %d %s", resp.StatusCode, body, status, code)
	}
	if resp.Header.Get("Cache-Control") != "no-store" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("error response headers %v", resp.Header)
	}
	if _, ok := body["access_token"]; ok {
		t.Fatal("error response carries a token")
	}
}

// testCA issues server and client certificates.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t testing.TB) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

func (ca *testCA) issue(t testing.TB, tmpl *x509.Certificate) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl.SerialNumber = serial
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

func (ca *testCA) serverCert(t testing.TB) tls.Certificate {
	return ca.issue(t, &x509.Certificate{
		Subject: pkix.Name{CommonName: "aegis"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
	})
}

func (ca *testCA) clientCert(t testing.TB, uriSANs ...string) tls.Certificate {
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "client"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
	}
	for _, s := range uriSANs {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, u)
	}
	return ca.issue(t, tmpl)
}

func fingerprint(c tls.Certificate) string {
	sum := sha256.Sum256(c.Certificate[0])
	return "sha256:" + hex.EncodeToString(sum[:])
}
