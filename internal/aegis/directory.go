package aegis

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"

	aegisv1 "github.com/photoncloud/photoncloud/api/aegis/v1"
	"github.com/photoncloud/photoncloud/internal/aegis/authn"
	"github.com/photoncloud/photoncloud/internal/aegis/policy"
	"github.com/photoncloud/photoncloud/internal/aegis/store"
	"github.com/photoncloud/photoncloud/internal/aegis/token"
)

// directory answers authn's identity lookups from the store's index. It
// only translates: the store reports states, authn judges them.
type directory struct {
	st *store.Store
}

var (
	_ authn.Users           = directory{}
	_ authn.ServiceAccounts = directory{}
	_ authn.Principals      = directory{}
)

func (d directory) UserByLogin(_ context.Context, org, username string) (*authn.User, error) {
	c, err := d.st.UserForLogin("orgs/"+org, username)
	if err != nil {
		return nil, lookupErr(err)
	}
	return &authn.User{Principal: userPrincipal(c), PasswordHash: c.PasswordHash}, nil
}

func (d directory) UserByFederatedIdentity(_ context.Context, issuer, subject string) (*authn.Principal, error) {
	c, err := d.st.UserByFederatedIdentity(issuer, subject)
	if err != nil {
		return nil, lookupErr(err)
	}
	p := userPrincipal(c)
	return &p, nil
}

func (d directory) ServiceAccountKey(_ context.Context, clientID string) (*authn.ServiceAccountKey, error) {
	c, err := d.st.ServiceAccountKeyByClientID(clientID)
	if err != nil {
		return nil, lookupErr(err)
	}
	k := &authn.ServiceAccountKey{ClientID: clientID, ServiceAccount: saPrincipal(c), SecretHash: c.SecretHash}
	if t := c.Key.GetExpireTime(); t != nil {
		k.ExpireTime = t.AsTime()
	}
	return k, nil
}

func (d directory) ServiceAccountByCertificate(_ context.Context, cert *x509.Certificate) (*authn.Principal, error) {
	c, err := d.st.ServiceAccountByCertificate(cert)
	if errors.Is(err, store.ErrFailedPrecondition) {
		return nil, fmt.Errorf("%w: %w", authn.ErrAmbiguous, err)
	}
	if err != nil {
		return nil, lookupErr(err)
	}
	p := saPrincipal(c)
	return &p, nil
}

func (d directory) Principal(_ context.Context, name string) (*authn.Principal, error) {
	switch {
	case strings.Contains(name, "/users/"):
		org, user, ok := strings.Cut(strings.TrimPrefix(name, "orgs/"), "/users/")
		if !ok || strings.Contains(user, "/") {
			return nil, authn.ErrNotFound
		}
		c, err := d.st.UserForLogin("orgs/"+org, user)
		if err != nil {
			return nil, lookupErr(err)
		}
		p := userPrincipal(c)
		p.Groups = d.st.GroupsOf(name)
		return &p, nil
	case strings.Contains(name, "/serviceAccounts/"):
		sa, err := d.st.GetServiceAccount(name)
		if err != nil {
			return nil, lookupErr(err)
		}
		org, _ := d.st.GetOrg("orgs/" + policy.OrgOf(name))
		return &authn.Principal{
			Name: name, Kind: token.KindServiceAccount, Org: policy.OrgOf(name), DisplayName: sa.GetDisplayName(),
			Groups:   d.st.GroupsOf(name),
			Disabled: sa.GetState() == aegisv1.ServiceAccount_STATE_DISABLED || org.GetState() == aegisv1.Org_STATE_SUSPENDED,
		}, nil
	}
	return nil, authn.ErrNotFound
}

func userPrincipal(c *store.UserCredentials) authn.Principal {
	u := c.User
	return authn.Principal{
		Name: u.GetName(), Kind: token.KindUser, Org: policy.OrgOf(u.GetName()), DisplayName: u.GetDisplayName(),
		Disabled: u.GetState() == aegisv1.User_STATE_DISABLED || c.OrgState == aegisv1.Org_STATE_SUSPENDED,
	}
}

func saPrincipal(c *store.ServiceAccountCredentials) authn.Principal {
	sa := c.ServiceAccount
	return authn.Principal{
		Name: sa.GetName(), Kind: token.KindServiceAccount, Org: policy.OrgOf(sa.GetName()), DisplayName: sa.GetDisplayName(),
		Disabled: sa.GetState() == aegisv1.ServiceAccount_STATE_DISABLED || c.OrgState == aegisv1.Org_STATE_SUSPENDED,
	}
}

// lookupErr keeps "not found" recognisable to authn and passes any other
// failure on as a server error.
func lookupErr(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%w: %w", authn.ErrNotFound, err)
	}
	return err
}
