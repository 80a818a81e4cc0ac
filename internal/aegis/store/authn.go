package store

import (
	"crypto/sha256"
	"crypto/x509"
	"strings"

	aegisv1 "github.com/photoncloud/photoncloud/api/aegis/v1"
	"github.com/photoncloud/photoncloud/internal/aegis/policy"
)

// Lookups for the authentication layer. All are served from the index;
// none touches Chainfire. Callers must still check states and expiry: the
// store reports them, it does not judge them.

// UserCredentials is what a password login needs to know about a user.
type UserCredentials struct {
	// User is the user record (a copy).
	User *aegisv1.User
	// PasswordHash is the PHC string, "" if the user has no password.
	PasswordHash string
	// OrgState is the state of the user's org; a suspended org's users
	// cannot log in.
	OrgState aegisv1.Org_State
	// PolicyPrincipal is the user's name in the evaluator.
	PolicyPrincipal string
}

// UserForLogin returns the user username of org ("orgs/{org}") with its
// password hash, or ErrNotFound.
func (s *Store) UserForLogin(org, username string) (*UserCredentials, error) {
	name := org + "/users/" + username
	if _, err := parseKind(name, kindUser); err != nil {
		return nil, err
	}
	s.ix.mu.RLock()
	defer s.ix.mu.RUnlock()
	e := s.ix.getName(kindUser, name)
	if e == nil {
		return nil, notFoundf("user %q", clip(name))
	}
	u := s.ix.out(e).(*aegisv1.User)
	return &UserCredentials{
		User:            u,
		PasswordHash:    s.ix.passwords[name],
		OrgState:        s.ix.orgState(org),
		PolicyPrincipal: "users/" + u.GetUid(),
	}, nil
}

func (ix *index) orgState(org string) aegisv1.Org_State {
	if e := ix.getName(kindOrg, org); e != nil {
		return e.msg.(*aegisv1.Org).GetState()
	}
	return aegisv1.Org_STATE_UNSPECIFIED
}

// UserByFederatedIdentity returns the user linked to the external identity
// (issuer, subject), or ErrNotFound.
func (s *Store) UserByFederatedIdentity(issuer, subject string) (*UserCredentials, error) {
	s.ix.mu.RLock()
	defer s.ix.mu.RUnlock()
	name, ok := s.ix.federated[fedID{issuer, subject}]
	if !ok {
		return nil, notFoundf("no user has federated identity (%q, %q)", clip(issuer), clip(subject))
	}
	e := s.ix.getName(kindUser, name)
	if e == nil {
		return nil, notFoundf("user %q", name)
	}
	u := s.ix.out(e).(*aegisv1.User)
	return &UserCredentials{
		User:            u,
		PasswordHash:    s.ix.passwords[name],
		OrgState:        s.ix.orgState("orgs/" + policy.OrgOf(name)),
		PolicyPrincipal: "users/" + u.GetUid(),
	}, nil
}

// ServiceAccountCredentials is what a service-account authentication
// needs to know.
type ServiceAccountCredentials struct {
	// ServiceAccount is the owning service account (a copy).
	ServiceAccount *aegisv1.ServiceAccount
	// Key is the key used (a copy, without secret); nil for mTLS.
	Key *aegisv1.ServiceAccountKey
	// SecretHash is the key's stored secret hash; "" for mTLS.
	SecretHash string
	// OrgState is the state of the service account's org.
	OrgState aegisv1.Org_State
	// PolicyPrincipal is the service account's name in the evaluator.
	PolicyPrincipal string
}

func (ix *index) saCredentials(saName string) (*ServiceAccountCredentials, error) {
	e := ix.getName(kindServiceAccount, saName)
	if e == nil {
		return nil, notFoundf("service account %q", saName)
	}
	sa := ix.out(e).(*aegisv1.ServiceAccount)
	return &ServiceAccountCredentials{
		ServiceAccount:  sa,
		OrgState:        ix.orgState("orgs/" + policy.OrgOf(saName)),
		PolicyPrincipal: "serviceAccounts/" + sa.GetUid(),
	}, nil
}

// ServiceAccountKeyByClientID returns the key with that OAuth2 client_id,
// its secret hash (check expire_time!) and its service account, or
// ErrNotFound.
func (s *Store) ServiceAccountKeyByClientID(clientID string) (*ServiceAccountCredentials, error) {
	s.ix.mu.RLock()
	defer s.ix.mu.RUnlock()
	keyName, ok := s.ix.clientIDs[clientID]
	if !ok {
		return nil, notFoundf("client id %q", clip(clientID))
	}
	e := s.ix.getName(kindKey, keyName)
	if e == nil {
		return nil, notFoundf("client id %q", clip(clientID))
	}
	c, err := s.ix.saCredentials(strings.TrimSuffix(keyName, "/keys/"+clientID))
	if err != nil {
		return nil, err
	}
	c.Key = s.ix.out(e).(*aegisv1.ServiceAccountKey)
	c.SecretHash = s.ix.keySecrets[keyName]
	return c, nil
}

// ServiceAccountByCertificate returns the service account bound to an
// mTLS client certificate (which the TLS layer has already verified
// against the trusted CAs): by SHA-256 fingerprint first, then by URI SAN,
// then by DNS SAN. A certificate whose SANs match different service
// accounts matches none (ErrFailedPrecondition); no match is ErrNotFound.
func (s *Store) ServiceAccountByCertificate(cert *x509.Certificate) (*ServiceAccountCredentials, error) {
	fp := &aegisv1.CertificateIdentity{Match: &aegisv1.CertificateIdentity_Sha256Fingerprint{
		Sha256Fingerprint: fingerprint(sha256.Sum256(cert.Raw))}}
	s.ix.mu.RLock()
	defer s.ix.mu.RUnlock()
	if k, _ := certKey(fp); s.ix.certs[k] != "" {
		return s.ix.saCredentials(s.ix.certs[k])
	}
	var uris, dnss []*aegisv1.CertificateIdentity
	for _, u := range cert.URIs {
		uris = append(uris, &aegisv1.CertificateIdentity{Match: &aegisv1.CertificateIdentity_UriSan{UriSan: u.String()}})
	}
	for _, d := range cert.DNSNames {
		dnss = append(dnss, &aegisv1.CertificateIdentity{Match: &aegisv1.CertificateIdentity_DnsSan{DnsSan: d}})
	}
	// A URI SAN (a SPIFFE id) is more specific than a DNS name: only look
	// at DNS SANs when no URI SAN matches.
	for _, cands := range [][]*aegisv1.CertificateIdentity{uris, dnss} {
		found := ""
		for _, ci := range cands {
			k, _ := certKey(ci)
			switch sa := s.ix.certs[k]; {
			case sa == "":
			case found == "":
				found = sa
			case found != sa:
				return nil, preconditionf("certificate matches several service accounts")
			}
		}
		if found != "" {
			return s.ix.saCredentials(found)
		}
	}
	return nil, notFoundf("no service account is bound to the certificate")
}

// PolicyPrincipal returns the evaluator's name ("users/<uid>",
// "serviceAccounts/<uid>", "groups/<uid>") of a user, service account or
// group, for policy.Request.Principal; ErrNotFound if it does not exist.
func (s *Store) PolicyPrincipal(name string) (string, error) {
	s.ix.mu.RLock()
	defer s.ix.mu.RUnlock()
	if sub := s.ix.subjectOf(name); sub != "" {
		return sub, nil
	}
	return "", notFoundf("principal %q", clip(name))
}

// PrincipalName translates an evaluator subject (policy.Decision.Subject,
// a Request.Principal) back to its API name.
func (s *Store) PrincipalName(subject string) (string, bool) {
	s.ix.mu.RLock()
	defer s.ix.mu.RUnlock()
	n, ok := s.ix.subjects[subject]
	return n, ok
}

// BindingName translates an evaluator binding id (policy.Decision.BindingID)
// back to the binding's API name.
func (s *Store) BindingName(policyID string) (string, bool) {
	s.ix.mu.RLock()
	defer s.ix.mu.RUnlock()
	n, ok := s.ix.bindingIDs[policyID]
	return n, ok
}

// RoleName translates an evaluator role name (policy.Decision.Role) to its
// API name: built-in roles get their "roles/" prefix back.
func RoleName(policyRole string) string {
	if strings.HasPrefix(policyRole, "orgs/") {
		return policyRole
	}
	return "roles/" + policyRole
}

// ServiceAccountKeyOwner returns the name of the service account that owns
// the key with this client_id, without copying any record: it is asked on
// every call made with a service-account token.
func (s *Store) ServiceAccountKeyOwner(clientID string) (string, bool) {
	s.ix.mu.RLock()
	defer s.ix.mu.RUnlock()
	keyName, ok := s.ix.clientIDs[clientID]
	if !ok || s.ix.getName(kindKey, keyName) == nil {
		return "", false
	}
	return strings.TrimSuffix(keyName, "/keys/"+clientID), true
}

// ScopeFacts are what a decision needs to know about the org or project a
// resource is in. Labels is the stored map itself: read it, never change
// it.
type ScopeFacts struct {
	Exists bool
	// OrgState is the state of the org (of the project's org for a
	// project).
	OrgState aegisv1.Org_State
	Labels   map[string]string
}

// OrgFacts describes org ("orgs/{org}") without copying its record.
func (s *Store) OrgFacts(org string) ScopeFacts {
	s.ix.mu.RLock()
	defer s.ix.mu.RUnlock()
	e := s.ix.getName(kindOrg, org)
	if e == nil {
		return ScopeFacts{}
	}
	o := e.msg.(*aegisv1.Org)
	return ScopeFacts{Exists: true, OrgState: o.GetState(), Labels: o.GetLabels()}
}

// ProjectLabels returns the stored labels of project (read only) without
// copying its record.
func (s *Store) ProjectLabels(project string) map[string]string {
	s.ix.mu.RLock()
	defer s.ix.mu.RUnlock()
	if e := s.ix.getName(kindProject, project); e != nil {
		return e.msg.(*aegisv1.Project).GetLabels()
	}
	return nil
}
