package server

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
	"math/big"
	"net"
	"net/netip"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	aegisv1 "github.com/photoncloud/photoncloud/api/aegis/v1"
	"github.com/photoncloud/photoncloud/internal/aegis/token"
)

func TestAuthentication(t *testing.T) {
	e := tenv
	call := func(ctx context.Context) error {
		_, err := e.pol.ListRoles(ctx, &aegisv1.ListRolesRequest{})
		return err
	}
	wantCode(t, call(ctxT(t)), codes.Unauthenticated)
	wantCode(t, call(metadata.AppendToOutgoingContext(ctxT(t), "authorization", "Basic dXNlcjpwdw==")), codes.Unauthenticated)
	wantCode(t, call(metadata.AppendToOutgoingContext(ctxT(t), "authorization", "Bearer "+e.tokens["viewer"],
		"authorization", "Bearer "+e.tokens["sysadmin"])), codes.Unauthenticated)
	wantCode(t, call(withToken(t, "not.a.token")), codes.Unauthenticated)
	wantCode(t, call(metadata.AppendToOutgoingContext(ctxT(t), "authorization", "bearer "+e.tokens["viewer"])), codes.OK)

	// A token signed by a key Aegis does not know.
	ring, err := token.OpenKeyring(ctxT(t), &token.MemKeyStore{}, e.cfg, must[*token.KEK](t)(token.NewKEK(make([]byte, token.KEKSize))))
	if err != nil {
		t.Fatal(err)
	}
	foreign := must[*token.Issuer](t)(token.NewIssuer(ring, e.cfg, nil))
	raw, _, err := foreign.Issue(token.Grant{Subject: "orgs/system/users/admin", Kind: token.KindUser, Org: "system"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	wantCode(t, call(withToken(t, raw)), codes.Unauthenticated)

	// Revoked token.
	u := e.freshUser(t)
	raw, claims, err := e.iss.Issue(token.Grant{Subject: u, Kind: token.KindUser, Org: "acme"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	wantCode(t, call(withToken(t, raw)), codes.OK)
	if err := e.st.RevokeToken(ctxT(t), claims.ID, claims.ExpiresAt); err != nil {
		t.Fatal(err)
	}
	wantCode(t, call(withToken(t, raw)), codes.Unauthenticated)

	// A principal deleted behind the API's back (no revocation): its
	// tokens still stop working on this replica at once.
	u = e.freshUser(t)
	raw = e.issue(t, token.Grant{Subject: u, Kind: token.KindUser, Org: "acme"})
	wantCode(t, call(withToken(t, raw)), codes.OK)
	if err := e.st.DeleteUser(ctxT(t), u, ""); err != nil {
		t.Fatal(err)
	}
	wantCode(t, call(withToken(t, raw)), codes.Unauthenticated)
	// Disabled through the store: likewise.
	u = e.freshUser(t)
	raw = e.issue(t, token.Grant{Subject: u, Kind: token.KindUser, Org: "acme"})
	must[*aegisv1.User](t)(e.st.UpdateUser(ctxT(t), u, "", func(x *aegisv1.User) error { x.State = aegisv1.User_STATE_DISABLED; return nil }))
	wantCode(t, call(withToken(t, raw)), codes.Unauthenticated)

	// AuthnService authenticates on its own: the interceptor lets it
	// through (here to UNIMPLEMENTED, nothing being registered).
	_, err = aegisv1.NewAuthnServiceClient(e.conn).Login(ctxT(t), &aegisv1.LoginRequest{Username: "x", Password: "y"})
	wantCode(t, err, codes.Unimplemented)
	if !e.srv.isPublic("/grpc.health.v1.Health/Check") || e.srv.isPublic(aegisv1.OrgService_GetOrg_FullMethodName) {
		t.Fatal("public methods")
	}

	// A handler reached without the interceptor acts for nobody.
	_, err = (&orgService{s: e.srv}).GetOrg(ctxT(t), &aegisv1.GetOrgRequest{Name: acme})
	wantCode(t, err, codes.Unauthenticated)
}

func TestDownscopedCallers(t *testing.T) {
	e := tenv
	other := acme + "/projects/" + e.id("p")
	must[*aegisv1.Project](t)(e.st.CreateProject(ctxT(t), acme, lastSegment(other), nil))

	// OrgAdmin restricted to project web: inside it as before, outside it
	// nothing exists.
	inWeb := withToken(t, e.issue(t, token.Grant{Subject: "orgs/acme/users/oadmin", Kind: token.KindUser, Org: "acme", Project: "web"}))
	must[*aegisv1.Project](t)(e.org.GetProject(inWeb, &aegisv1.GetProjectRequest{Name: web}))
	must[*aegisv1.Project](t)(e.org.UpdateProject(inWeb, &aegisv1.UpdateProjectRequest{Project: &aegisv1.Project{Name: web, Description: "restricted"}, UpdateMask: mask("description")}))
	must[*aegisv1.ListServiceAccountsResponse](t)(e.identity.ListServiceAccounts(inWeb, &aegisv1.ListServiceAccountsRequest{Parent: web}))
	for name, err := range map[string]error{
		"GetOrg":     second(e.org.GetOrg(inWeb, &aegisv1.GetOrgRequest{Name: acme})),
		"GetProject": second(e.org.GetProject(inWeb, &aegisv1.GetProjectRequest{Name: other})),
		"ListUsers":  second(e.identity.ListUsers(inWeb, &aegisv1.ListUsersRequest{Parent: acme})),
		"CreateUser": second(e.identity.CreateUser(inWeb, &aegisv1.CreateUserRequest{Parent: acme, UserId: e.id("u")})),
	} {
		if codeOf(err) != codes.NotFound {
			t.Errorf("%s outside the token's project: %v, want NotFound", name, err)
		}
	}
	orgs := must[*aegisv1.ListOrgsResponse](t)(e.org.ListOrgs(inWeb, &aegisv1.ListOrgsRequest{}))
	if len(orgs.GetOrgs()) != 0 {
		t.Errorf("project-restricted ListOrgs: %v", orgs)
	}

	// OrgAdmin restricted to reading projects.
	reader := withToken(t, e.issue(t, token.Grant{Subject: "orgs/acme/users/oadmin", Kind: token.KindUser, Org: "acme",
		Permissions: []string{"aegis:projects:get", "aegis:*:list"}}))
	must[*aegisv1.Project](t)(e.org.GetProject(reader, &aegisv1.GetProjectRequest{Name: web}))
	must[*aegisv1.ListUsersResponse](t)(e.identity.ListUsers(reader, &aegisv1.ListUsersRequest{Parent: acme}))
	_, err := e.org.UpdateProject(reader, &aegisv1.UpdateProjectRequest{Project: &aegisv1.Project{Name: web, Description: "x"}})
	wantCode(t, err, codes.PermissionDenied)
	_, err = e.identity.GetUser(reader, &aegisv1.GetUserRequest{Name: targetUser})
	wantCode(t, err, codes.PermissionDenied)
}

func second[T any](_ T, err error) error { return err }

// selfSigned returns a certificate (for the peer of a fake TLS connection).
func selfSigned(t *testing.T, dns string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: dns}, DNSNames: []string{dns},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return must[*x509.Certificate](t)(x509.ParseCertificate(der))
}

func tlsPeer(ctx context.Context, cert *x509.Certificate) context.Context {
	state := tls.ConnectionState{}
	if cert != nil {
		state.VerifiedChains = [][]*x509.Certificate{{cert}}
	}
	return peer.NewContext(ctx, &peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}, AuthInfo: credentials.TLSInfo{State: state}})
}

// TestCertificateCaller: without a bearer token, a verified client
// certificate bound to a service account authenticates it.
func TestCertificateCaller(t *testing.T) {
	e := tenv
	cert := selfSigned(t, "bot.example")
	sum := sha256.Sum256(cert.Raw)
	sa := e.freshSA(t)
	must[*aegisv1.ServiceAccount](t)(e.st.UpdateServiceAccount(ctxT(t), sa, "", func(x *aegisv1.ServiceAccount) error {
		x.CertificateIdentities = []*aegisv1.CertificateIdentity{{Match: &aegisv1.CertificateIdentity_Sha256Fingerprint{Sha256Fingerprint: hex.EncodeToString(sum[:])}}}
		return nil
	}))
	ctx, err := e.srv.intercept(tlsPeer(ctxT(t), cert), aegisv1.OrgService_GetProject_FullMethodName)
	if err != nil {
		t.Fatal(err)
	}
	c, ok := CallerFromContext(ctx)
	if !ok || c.Principal != sa || c.Claims != nil || c.Kind != token.KindServiceAccount || c.Org != "acme" {
		t.Fatalf("caller %+v", c)
	}
	if _, err := e.srv.intercept(tlsPeer(ctxT(t), selfSigned(t, "other.example")), aegisv1.OrgService_GetProject_FullMethodName); codeOf(err) != codes.Unauthenticated {
		t.Fatalf("unbound certificate: %v", err)
	}
	// An unverified certificate (no chain) is no credential.
	if _, err := e.srv.intercept(tlsPeer(ctxT(t), nil), aegisv1.OrgService_GetProject_FullMethodName); codeOf(err) != codes.Unauthenticated {
		t.Fatalf("no certificate: %v", err)
	}
}

func TestForwardedFor(t *testing.T) {
	s := tenv.srv
	lo, ext := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("198.51.100.1")
	for _, tc := range []struct {
		peer netip.Addr
		xff  []string
		want string
	}{
		{lo, nil, "127.0.0.1"},
		{lo, []string{"203.0.113.5"}, "203.0.113.5"},
		{lo, []string{"10.9.9.9, 203.0.113.5"}, "203.0.113.5"},
		{lo, []string{"203.0.113.5, 127.0.0.2"}, "203.0.113.5"},
		{lo, []string{"junk"}, "127.0.0.1"},
		{ext, []string{"203.0.113.5"}, "198.51.100.1"}, // untrusted peer: header ignored
	} {
		if got := s.forwardedFor(tc.peer, tc.xff).String(); got != tc.want {
			t.Errorf("peer %v xff %v: %s, want %s", tc.peer, tc.xff, got, tc.want)
		}
	}
}
