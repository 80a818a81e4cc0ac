package store

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"math/big"
	"net/url"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	aegisv1 "github.com/photoncloud/photoncloud/api/aegis/v1"
	"github.com/photoncloud/photoncloud/internal/chainfire/chainfiretest"
)

func testCert(t *testing.T, uri string, dns ...string) *x509.Certificate {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(uri)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), URIs: []*url.URL{u}, DNSNames: dns,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestAuthnLookups(t *testing.T) {
	addr := startChainfire(t)
	s := openStore(t, addr, nil)
	b := openStore(t, addr, nil)
	ctx := ctxT(t)
	must[*aegisv1.Org](t)(s.CreateOrg(ctx, "acme", nil))
	must[*aegisv1.Org](t)(s.CreateOrg(ctx, "other", nil))

	// Users: password hash and federated identities.
	fi := &aegisv1.FederatedIdentity{Issuer: "https://idp.example.com/", Subject: "a/1"}
	u := must[*aegisv1.User](t)(s.CreateUser(ctx, "orgs/acme", "alice",
		&aegisv1.User{FederatedIdentities: []*aegisv1.FederatedIdentity{fi}}, testPHC(1)))
	if u.PasswordUpdateTime == nil {
		t.Fatal("password_update_time not set")
	}
	_, err := s.CreateUser(ctx, "orgs/acme", "bad", nil, "not-a-phc")
	wantErr(t, err, ErrInvalidArgument)
	_, err = s.CreateUser(ctx, "orgs/other", "alice2", &aegisv1.User{FederatedIdentities: []*aegisv1.FederatedIdentity{fi}}, "")
	wantErr(t, err, ErrAlreadyExists)
	bob := must[*aegisv1.User](t)(s.CreateUser(ctx, "orgs/other", "bob", nil, ""))
	_, err = s.UpdateUser(ctx, bob.Name, "", func(u *aegisv1.User) error {
		u.FederatedIdentities = append(u.FederatedIdentities, fi)
		return nil
	})
	wantErr(t, err, ErrAlreadyExists)

	c := must[*UserCredentials](t)(b.UserForLogin("orgs/acme", "alice"))
	if c.PasswordHash != testPHC(1) || c.OrgState != aegisv1.Org_STATE_ACTIVE || c.PolicyPrincipal != "users/"+u.Uid {
		t.Fatalf("UserForLogin: %+v", c)
	}
	_, err = b.UserForLogin("orgs/acme", "nobody")
	wantErr(t, err, ErrNotFound)
	if c := must[*UserCredentials](t)(b.UserByFederatedIdentity(fi.Issuer, fi.Subject)); c.User.Name != u.Name {
		t.Fatalf("federated lookup: %v", c.User.Name)
	}
	// Releasing the identity lets another user claim it.
	must[*aegisv1.User](t)(s.UpdateUser(ctx, u.Name, "", func(u *aegisv1.User) error {
		u.FederatedIdentities = nil
		return nil
	}))
	must[*aegisv1.User](t)(s.UpdateUser(ctx, bob.Name, "", func(u *aegisv1.User) error {
		u.FederatedIdentities = []*aegisv1.FederatedIdentity{fi}
		return nil
	}))
	if c := must[*UserCredentials](t)(s.UserByFederatedIdentity(fi.Issuer, fi.Subject)); c.User.Name != bob.Name {
		t.Fatalf("federated lookup after move: %v", c.User.Name)
	}

	// Passwords.
	before := must[*aegisv1.User](t)(s.GetUser(u.Name))
	after := must[*aegisv1.User](t)(s.SetUserPassword(ctx, u.Name, before.Etag, testPHC(2)))
	if after.Etag == before.Etag {
		t.Fatal("etag did not move")
	}
	if c := must[*UserCredentials](t)(s.UserForLogin("orgs/acme", "alice")); c.PasswordHash != testPHC(2) {
		t.Fatal("password not changed")
	}
	_, err = s.SetUserPassword(ctx, u.Name, before.Etag, testPHC(3))
	wantErr(t, err, ErrEtagMismatch)
	if err := s.RecordUserLogin(ctx, u.Name, time.Now()); err != nil {
		t.Fatal(err)
	}
	if got := must[*aegisv1.User](t)(s.GetUser(u.Name)); got.LastLoginTime == nil || got.PasswordUpdateTime == nil {
		t.Fatalf("after login: %v", got)
	}

	// Service accounts and mTLS identities.
	cert := testCert(t, "spiffe://photon/ns/web/sa/api", "api.example.com")
	sum := sha256.Sum256(cert.Raw)
	fp := hex.EncodeToString(sum[:])
	saFP := must[*aegisv1.ServiceAccount](t)(s.CreateServiceAccount(ctx, "orgs/acme", "pinned", &aegisv1.ServiceAccount{
		CertificateIdentities: []*aegisv1.CertificateIdentity{{Match: &aegisv1.CertificateIdentity_Sha256Fingerprint{Sha256Fingerprint: fp}}}}))
	wantErr(t, func() error {
		_, err := s.CreateServiceAccount(ctx, "orgs/acme/projects/web", "api", nil)
		return err
	}(), ErrParentNotFound) // no such project yet
	must[*aegisv1.Project](t)(s.CreateProject(ctx, "orgs/acme", "web", nil))
	saURI := must[*aegisv1.ServiceAccount](t)(s.CreateServiceAccount(ctx, "orgs/acme/projects/web", "api", &aegisv1.ServiceAccount{
		CertificateIdentities: []*aegisv1.CertificateIdentity{{Match: &aegisv1.CertificateIdentity_UriSan{UriSan: "spiffe://photon/ns/web/sa/api"}}}}))
	_, err = s.CreateServiceAccount(ctx, "orgs/other", "dup", &aegisv1.ServiceAccount{
		CertificateIdentities: []*aegisv1.CertificateIdentity{{Match: &aegisv1.CertificateIdentity_UriSan{UriSan: "spiffe://photon/ns/web/sa/api"}}}})
	wantErr(t, err, ErrAlreadyExists)
	_, err = s.CreateServiceAccount(ctx, "orgs/other", "bad", &aegisv1.ServiceAccount{
		CertificateIdentities: []*aegisv1.CertificateIdentity{{}}})
	wantErr(t, err, ErrInvalidArgument)

	if c := must[*ServiceAccountCredentials](t)(b.ServiceAccountByCertificate(cert)); c.ServiceAccount.Name != saFP.Name {
		t.Fatalf("fingerprint beats URI: got %s", c.ServiceAccount.Name)
	}
	other := testCert(t, "spiffe://photon/ns/web/sa/api")
	if c := must[*ServiceAccountCredentials](t)(b.ServiceAccountByCertificate(other)); c.ServiceAccount.Name != saURI.Name {
		t.Fatalf("URI match: got %s", c.ServiceAccount.Name)
	}
	_, err = b.ServiceAccountByCertificate(testCert(t, "spiffe://photon/unknown"))
	wantErr(t, err, ErrNotFound)
	list, _, _ := s.ListServiceAccounts("orgs/acme", ListOptions[*aegisv1.ServiceAccount]{})
	if len(list) != 1 || list[0].Name != saFP.Name {
		t.Fatalf("org service accounts: %v", list)
	}

	// Keys: at most ten, looked up by client id, never with the secret.
	var keys []*aegisv1.ServiceAccountKey
	for i := range maxKeysPerAccount {
		k, err := s.CreateServiceAccountKey(ctx, saURI.Name, &aegisv1.ServiceAccountKey{Description: fmt.Sprint(i),
			ClientSecret: "plain", ExpireTime: timestamppb.New(time.Now().Add(time.Hour))}, fmt.Sprintf("hash-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	_, err = s.CreateServiceAccountKey(ctx, saURI.Name, &aegisv1.ServiceAccountKey{}, "h")
	wantErr(t, err, ErrFailedPrecondition)
	listed, _, _ := s.ListServiceAccountKeys(saURI.Name, ListOptions[*aegisv1.ServiceAccountKey]{})
	if len(listed) != len(keys) {
		t.Fatalf("%d keys listed", len(listed))
	}
	for i, k := range listed {
		if k.Name != keys[i].Name || k.ClientSecret != "" || k.Description != fmt.Sprint(i) {
			t.Fatalf("key %d listed as %v (not in creation order, or with secret)", i, k)
		}
	}
	kc := must[*ServiceAccountCredentials](t)(b.ServiceAccountKeyByClientID(keys[3].ClientId))
	if kc.SecretHash != "hash-3" || kc.ServiceAccount.Name != saURI.Name || kc.Key.Name != keys[3].Name ||
		kc.PolicyPrincipal != "serviceAccounts/"+saURI.Uid {
		t.Fatalf("key lookup: %+v", kc)
	}
	if err := s.RecordKeyUse(ctx, keys[3].Name, time.Now()); err != nil {
		t.Fatal(err)
	}
	if k := must[*aegisv1.ServiceAccountKey](t)(s.GetServiceAccountKey(keys[3].Name)); k.LastUseTime == nil {
		t.Fatal("last_use_time not recorded")
	}
	if err := s.DeleteServiceAccountKey(ctx, keys[3].Name, ""); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitRevision(ctx, s.Revision()); err != nil {
		t.Fatal(err)
	}
	_, err = b.ServiceAccountKeyByClientID(keys[3].ClientId)
	wantErr(t, err, ErrNotFound)
	must[*aegisv1.ServiceAccountKey](t)(s.CreateServiceAccountKey(ctx, saURI.Name, &aegisv1.ServiceAccountKey{}, "h"))

	// Certificate identities move with updates, and disappear with the
	// service account.
	must[*aegisv1.ServiceAccount](t)(s.UpdateServiceAccount(ctx, saURI.Name, "", func(sa *aegisv1.ServiceAccount) error {
		sa.CertificateIdentities = []*aegisv1.CertificateIdentity{{Match: &aegisv1.CertificateIdentity_DnsSan{DnsSan: "api.example.com"}}}
		return nil
	}))
	if c := must[*ServiceAccountCredentials](t)(s.ServiceAccountByCertificate(testCert(t, "spiffe://x", "api.example.com"))); c.ServiceAccount.Name != saURI.Name {
		t.Fatal("DNS match")
	}
	_, err = s.ServiceAccountByCertificate(other)
	wantErr(t, err, ErrNotFound)
	if err := s.DeleteServiceAccount(ctx, saURI.Name, ""); err != nil {
		t.Fatal(err)
	}
	_, err = s.ServiceAccountByCertificate(testCert(t, "spiffe://x", "api.example.com"))
	wantErr(t, err, ErrNotFound)
	cli := chainfiretest.Client(t, addr)
	if keysLeft := dumpKeys(t, cli, uniqueCertPrefix); len(keysLeft) != 1 {
		t.Fatalf("cert identities left: %v", keysLeft)
	}
	if n := countKeys(t, cli, kindKey.key(saURI.Name)); n != 0 {
		t.Fatalf("%d keys of a deleted service account left", n)
	}
	if n := countKeys(t, cli, uniqueFedPrefix); n != 1 {
		t.Fatalf("%d federated identity keys, want 1: %v", n, dumpKeys(t, cli, uniqueFedPrefix))
	}
}
