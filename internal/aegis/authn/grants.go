package authn

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/photoncloud/photoncloud/internal/aegis/password"
	"github.com/photoncloud/photoncloud/internal/aegis/token"
)

// The grant functions below are the whole authentication logic; the HTTP
// and gRPC front ends only decode requests into their arguments and render
// their results. Each returns a *grantError (or an error asGrantError turns
// into a server error) and has reported the outcome to the audit hook.

// Token types of RFC 8693 section 3.
const (
	tokenTypeAccess  = "urn:ietf:params:oauth:token-type:access_token"
	tokenTypeIDToken = "urn:ietf:params:oauth:token-type:id_token"
	tokenTypeJWT     = "urn:ietf:params:oauth:token-type:jwt"
)

// passwordGrant authenticates a user by password (Login, the password
// grant). The limiter is consulted before anything else, so that probing
// unknown names is limited too. Every failure looks the same to the client
// and costs one argon2 verification.
func (s *Service) passwordGrant(ctx context.Context, org, username, pw string, n narrowing, src source) (*result, error) {
	login := org + "/" + username
	ev := src.event(ActionLogin)
	ev.Login = clip(login)
	ev.ClientID = PublicClientID
	if s.cfg.DisablePasswordGrant {
		// Not an authentication attempt: nothing to audit.
		return nil, errPasswordDisabled()
	}
	if err := n.checkOrg(org); err != nil {
		return nil, s.fail(ctx, ev, ReasonScope, err)
	}
	switch ok, wait, err := s.limiter.Allow(ctx, login, src.addr); {
	case err != nil:
		return nil, s.fail(ctx, ev, ReasonInternal, errServer("check the login rate limit", err))
	case !ok:
		return nil, s.fail(ctx, ev, ReasonRateLimited, errRateLimited(wait))
	}

	var u *User
	if isLabel(org) && isLabel(username) {
		var err error
		u, err = s.cfg.Users.UserByLogin(ctx, org, username)
		switch {
		case errors.Is(err, ErrNotFound):
			u = nil
		case err != nil:
			return nil, s.fail(ctx, ev, ReasonInternal, errServer("look up user", err))
		}
	}
	if u == nil || u.PasswordHash == "" {
		// Spend what a real verification costs, so the response time does
		// not tell unknown names from known ones.
		if err := s.hasher.VerifyUnknownUser(ctx, pw); err != nil && !errors.Is(err, password.ErrPasswordTooLong) {
			return nil, s.fail(ctx, ev, ReasonInternal, errServer("verify password", err))
		}
		reason := ReasonUnknownUser
		if u != nil {
			ev.Principal = u.Name
			reason = ReasonNoPassword
		}
		return nil, s.fail(ctx, ev, reason, errBadLogin())
	}
	ev.Principal = u.Name
	ok, rehash, err := s.hasher.Verify(ctx, pw, u.PasswordHash)
	switch {
	case errors.Is(err, password.ErrPasswordTooLong):
		// No stored password is that long (Hash refuses them), so this is
		// a wrong password like any other.
		return nil, s.fail(ctx, ev, ReasonBadPassword, errBadLogin())
	case err != nil && ctx.Err() != nil:
		return nil, s.fail(ctx, ev, ReasonInternal, errServer("verify password", err))
	case err != nil:
		// A corrupt stored hash: the user cannot log in until an admin
		// sets a new password; the client learns nothing more.
		ge := errBadLogin()
		ge.cause = fmt.Errorf("stored password hash of %s: %w", u.Name, err)
		return nil, s.fail(ctx, ev, ReasonPasswordMalformed, ge)
	case !ok:
		return nil, s.fail(ctx, ev, ReasonBadPassword, errBadLogin())
	case u.Disabled:
		// Checked after the password so a disabled account answers exactly
		// like a wrong password, in content and in time.
		return nil, s.fail(ctx, ev, ReasonDisabled, errBadLogin())
	}
	if err := s.limiter.Succeeded(ctx, login); err != nil {
		// The user's earlier failures keep counting for a while: no
		// reason to refuse a correct password.
		s.log.Warn("refill the login rate limit", "login", login, "err", err)
	}
	if rehash {
		s.rehash(ctx, u, pw)
	}
	g, err := narrow(token.Grant{Subject: u.Name, Kind: token.KindUser, Org: u.Org, ClientID: PublicClientID}, n)
	if err != nil {
		return nil, s.fail(ctx, ev, ReasonScope, err)
	}
	res, err := s.issue(ctx, g, true)
	if err != nil {
		return nil, s.fail(ctx, ev, issueReason(err), err)
	}
	s.succeed(ctx, ev, res)
	return res, nil
}

// rehash stores a hash with the current argon2 parameters after a
// successful login, if the store supports it. Failures only cost the
// upgrade, never the login.
func (s *Service) rehash(ctx context.Context, u *User, pw string) {
	rh, ok := s.cfg.Users.(PasswordRehasher)
	if !ok {
		return
	}
	h, err := s.hasher.Hash(ctx, pw)
	if err == nil {
		err = rh.UpdatePasswordHash(ctx, u.Name, u.PasswordHash, h)
	}
	if err != nil {
		s.log.Warn("could not upgrade password hash", "principal", u.Name, "error", err)
	}
}

// authenticateKey checks a service-account key's client_id and secret. The
// returned reason is for the audit log when err is set.
func (s *Service) authenticateKey(ctx context.Context, clientID, secret string) (*ServiceAccountKey, string, error) {
	var key *ServiceAccountKey
	if clientID != PublicClientID && clientID != FederatedClientID && clientID != CertificateClientID && len(clientID) <= 256 {
		var err error
		key, err = s.cfg.ServiceAccounts.ServiceAccountKey(ctx, clientID)
		switch {
		case errors.Is(err, ErrNotFound):
			key = nil
		case err != nil:
			return nil, ReasonInternal, errServer("look up service account key", err)
		}
	}
	if key == nil {
		s.burnSecretCheck(secret)
		return nil, ReasonUnknownClient, errBadClient()
	}
	ok, err := s.checkSecret(ctx, secret, key.SecretHash)
	switch {
	case err != nil && ctx.Err() != nil:
		return nil, ReasonInternal, errServer("check client secret", err)
	case err != nil:
		ge := errBadClient()
		ge.cause = fmt.Errorf("key %s: %w", clientID, err)
		return nil, ReasonInternal, ge
	case !ok:
		return nil, ReasonBadSecret, errBadClient()
	case !key.ExpireTime.IsZero() && !s.cfg.Now().Before(key.ExpireTime):
		// After the secret check, so only the key's holder learns that it
		// expired (and even then only from the audit log).
		return nil, ReasonKeyExpired, errBadClient()
	case key.ServiceAccount.Disabled:
		return nil, ReasonDisabled, errBadClient()
	}
	return key, "", nil
}

// keyGrant issues a token to a service account for one of its keys
// (client_credentials with a secret, IssueServiceAccountToken).
func (s *Service) keyGrant(ctx context.Context, clientID, secret string, n narrowing, src source) (*result, error) {
	ev := src.event(ActionClientCredentials)
	ev.Login = clip(clientID)
	ev.ClientID = ev.Login
	key, reason, err := s.authenticateKey(ctx, clientID, secret)
	if err != nil {
		return nil, s.fail(ctx, ev, reason, err)
	}
	sa := key.ServiceAccount
	ev.Principal = sa.Name
	g, err := narrow(token.Grant{Subject: sa.Name, Kind: token.KindServiceAccount, Org: sa.Org, ClientID: key.ClientID}, n)
	if err != nil {
		return nil, s.fail(ctx, ev, ReasonScope, err)
	}
	res, err := s.issue(ctx, g, false)
	if err != nil {
		return nil, s.fail(ctx, ev, issueReason(err), err)
	}
	s.succeed(ctx, ev, res)
	return res, nil
}

// certGrant issues a token to the service account bound to the
// connection's verified client certificate (RFC 8705 tls_client_auth).
// clientID, if given, must be that service account's name.
func (s *Service) certGrant(ctx context.Context, clientID string, n narrowing, src source) (*result, error) {
	ev := src.event(ActionCertificate)
	ev.Login = clip(clientID)
	if src.cert == nil {
		return nil, s.fail(ctx, ev, ReasonUnknownCert, errInvalidClient("client authentication required"))
	}
	sa, reason, err := s.certPrincipal(ctx, src.cert)
	if err != nil {
		return nil, s.fail(ctx, ev, reason, err)
	}
	ev.Principal = sa.Name
	if clientID != "" && clientID != sa.Name {
		return nil, s.fail(ctx, ev, ReasonClientMismatch, errBadClient())
	}
	g, err := narrow(token.Grant{Subject: sa.Name, Kind: token.KindServiceAccount, Org: sa.Org, ClientID: CertificateClientID}, n)
	if err != nil {
		return nil, s.fail(ctx, ev, ReasonScope, err)
	}
	res, err := s.issue(ctx, g, false)
	if err != nil {
		return nil, s.fail(ctx, ev, issueReason(err), err)
	}
	s.succeed(ctx, ev, res)
	return res, nil
}

// certPrincipal finds the enabled service account bound to cert. Which
// binding wins (a pinned fingerprint over SANs) is the store's rule.
func (s *Service) certPrincipal(ctx context.Context, cert *x509.Certificate) (*Principal, string, error) {
	sa, err := s.cfg.ServiceAccounts.ServiceAccountByCertificate(ctx, cert)
	switch {
	case errors.Is(err, ErrNotFound):
		return nil, ReasonUnknownCert, errBadClient()
	case errors.Is(err, ErrAmbiguous):
		return nil, ReasonAmbiguousCert, errBadClient()
	case err != nil:
		return nil, ReasonInternal, errServer("look up certificate", err)
	case sa.Disabled:
		return nil, ReasonDisabled, errBadClient()
	}
	return sa, "", nil
}

// refreshGrant rotates a refresh token (Refresh, the refresh_token grant).
// n may narrow the new access token further (RFC 6749 section 6); the new
// refresh token keeps the family's grant.
func (s *Service) refreshGrant(ctx context.Context, refresh string, n narrowing, src source) (*result, error) {
	ev := src.event(ActionRefresh)
	next, rec, err := s.ref.Rotate(ctx, refresh)
	switch {
	case errors.Is(err, token.ErrRefreshReused):
		return nil, s.fail(ctx, ev, ReasonRefreshReused, errInvalidGrant("refresh token already used; the session is revoked"))
	case errors.Is(err, token.ErrRefreshInvalid):
		return nil, s.fail(ctx, ev, ReasonRefreshInvalid, errInvalidGrant("invalid refresh token"))
	case err != nil:
		return nil, s.fail(ctx, ev, ReasonInternal, errServer("rotate refresh token", err))
	}
	ev.Principal = rec.Grant.Subject
	ev.ClientID = rec.Grant.ClientID
	// From here on the presented token is spent, so every refusal also
	// ends the new token's family: nobody holds it.
	abandon := func(reason string, gerr error) error {
		if err := s.ref.Revoke(ctx, next); err != nil {
			s.log.Error("could not revoke refresh family", "principal", rec.Grant.Subject, "error", err)
		}
		return s.fail(ctx, ev, reason, gerr)
	}
	// The principal may have been deleted or disabled since the login.
	if reason, err := s.checkPrincipal(ctx, rec.Grant.Subject); err != nil {
		if reason == ReasonInternal {
			return nil, s.fail(ctx, ev, reason, err)
		}
		return nil, abandon(reason, errInvalidGrant("invalid refresh token"))
	}
	g, err := narrow(rec.Grant, n)
	if err != nil {
		return nil, abandon(ReasonScope, err)
	}
	access, claims, err := s.iss.Issue(g, 0)
	if err != nil {
		return nil, abandon(issueReason(err), issueError(err))
	}
	res := &result{access: access, claims: claims, refresh: next, refreshRec: rec}
	s.succeed(ctx, ev, res)
	return res, nil
}

// checkPrincipal reports why the named principal may not get tokens.
func (s *Service) checkPrincipal(ctx context.Context, name string) (string, error) {
	p, err := s.cfg.Principals.Principal(ctx, name)
	switch {
	case errors.Is(err, ErrNotFound):
		return ReasonUnknownPrincipal, errInvalidGrant("unknown principal")
	case err != nil:
		return ReasonInternal, errServer("look up principal", err)
	case p.Disabled:
		return ReasonDisabled, errInvalidGrant("principal disabled")
	}
	return "", nil
}

// exchangeRequest is an RFC 8693 token exchange.
type exchangeRequest struct {
	subjectToken     string
	subjectTokenType string
	audience         []string
	narrowing        narrowing
}

// exchange runs a token exchange (ExchangeToken, the token-exchange grant):
// federated sign-in for an external ID token, downscoping for an Aegis
// access token.
func (s *Service) exchange(ctx context.Context, req exchangeRequest, src source) (*result, error) {
	for _, a := range req.audience {
		if !slices.Contains(s.cfg.Token.Audience, a) {
			return nil, errInvalidTarget("audience '%s' is not served by this issuer", clip(a))
		}
	}
	switch req.subjectTokenType {
	case tokenTypeAccess:
		return s.downscope(ctx, req, src)
	case tokenTypeIDToken, tokenTypeJWT:
		return s.federated(ctx, req, src)
	case "":
		return nil, errInvalidRequest("missing subject_token_type")
	default:
		return nil, errInvalidRequest("unsupported subject_token_type")
	}
}

func (s *Service) downscope(ctx context.Context, req exchangeRequest, src source) (*result, error) {
	ev := src.event(ActionDownscope)
	parent, err := s.ver.Verify(req.subjectToken)
	if err != nil {
		ge := errBadSubjectToken("invalid subject_token")
		ge.cause = err
		return nil, s.fail(ctx, ev, ReasonBadSubjectToken, ge)
	}
	ev.Principal = parent.Subject
	ev.ClientID = parent.ClientID
	if reason, err := s.checkPrincipal(ctx, parent.Subject); err != nil {
		if ge, ok := errors.AsType[*grantError](err); ok && ge.code == codeInvalidGrant {
			err = errBadSubjectToken("invalid subject_token")
		}
		return nil, s.fail(ctx, ev, reason, err)
	}
	if err := req.narrowing.checkOrg(parent.Org); err != nil {
		return nil, s.fail(ctx, ev, ReasonScope, err)
	}
	if len(req.audience) > 0 {
		// Downscope takes the audience from the parent; a shallow copy with
		// the requested one is the parent as far as it is concerned. The
		// verifier's Claims are shared read-only, hence the copy.
		cp := *parent
		cp.Audience = req.audience
		parent = &cp
	}
	access, claims, err := s.iss.Downscope(parent, req.narrowing.project, req.narrowing.permissions, 0)
	switch {
	case errors.Is(err, token.ErrScopeWidening):
		return nil, s.fail(ctx, ev, ReasonScope, errInvalidScope("the requested scope is wider than the subject_token's"))
	case errors.Is(err, token.ErrInvalidGrant):
		return nil, s.fail(ctx, ev, ReasonBadSubjectToken, errBadSubjectToken("subject_token cannot be downscoped"))
	case err != nil:
		return nil, s.fail(ctx, ev, ReasonInternal, errServer("downscope", err))
	}
	res := &result{access: access, claims: claims}
	s.succeed(ctx, ev, res)
	return res, nil
}

func (s *Service) federated(ctx context.Context, req exchangeRequest, src source) (*result, error) {
	ev := src.event(ActionFederated)
	ev.ClientID = FederatedClientID
	issuer, subject, err := s.fed.verify(ctx, req.subjectToken)
	if errors.Is(err, errUntrustedIssuer) {
		return nil, s.fail(ctx, ev, ReasonUntrustedIssuer, errBadSubjectToken("subject_token issuer is not trusted"))
	}
	if err != nil {
		s.log.Info("external id token rejected", "error", err)
		return nil, s.fail(ctx, ev, ReasonBadSubjectToken, errBadSubjectToken("invalid subject_token"))
	}
	ev.Login = clip(issuer + " " + subject)
	p, err := s.cfg.Users.UserByFederatedIdentity(ctx, issuer, subject)
	switch {
	case errors.Is(err, ErrNotFound):
		return nil, s.fail(ctx, ev, ReasonUnknownIdentity, errBadSubjectToken("no user has this federated identity"))
	case err != nil:
		return nil, s.fail(ctx, ev, ReasonInternal, errServer("look up federated identity", err))
	}
	ev.Principal = p.Name
	if p.Disabled {
		return nil, s.fail(ctx, ev, ReasonDisabled, errBadSubjectToken("user disabled"))
	}
	g := token.Grant{Subject: p.Name, Kind: token.KindUser, Org: p.Org, ClientID: FederatedClientID, Audience: req.audience}
	g, err = narrow(g, req.narrowing)
	if err != nil {
		return nil, s.fail(ctx, ev, ReasonScope, err)
	}
	res, err := s.issue(ctx, g, true)
	if err != nil {
		return nil, s.fail(ctx, ev, issueReason(err), err)
	}
	s.succeed(ctx, ev, res)
	return res, nil
}

// issue signs an access token for g and, for user sessions, starts a
// refresh family with the same grant.
func (s *Service) issue(ctx context.Context, g token.Grant, withRefresh bool) (*result, error) {
	access, claims, err := s.iss.Issue(g, 0)
	if err != nil {
		return nil, issueError(err)
	}
	res := &result{access: access, claims: claims}
	if withRefresh {
		res.refresh, res.refreshRec, err = s.ref.Start(ctx, g)
		if err != nil {
			return nil, errServer("start refresh family", err)
		}
	}
	return res, nil
}

// issueError classifies an Issuer error. ErrPrincipalRevoked only happens
// when a replica with a fast clock recorded a "sign out everywhere" moments
// ago; trying again shortly succeeds.
func issueError(err error) error {
	if errors.Is(err, token.ErrPrincipalRevoked) {
		ge := errInvalidGrant("the principal's tokens were just revoked; try again")
		ge.cause = err
		return ge
	}
	if errors.Is(err, token.ErrInvalidGrant) {
		return errInvalidScope("the requested scope is not valid")
	}
	return errServer("issue token", err)
}

func issueReason(err error) string {
	switch {
	case errors.Is(err, token.ErrPrincipalRevoked):
		return ReasonPrincipalRevoked
	case errors.Is(err, token.ErrInvalidGrant):
		return ReasonScope
	}
	return ReasonInternal
}

// revokeRefresh ends the family of a refresh token; unknown and malformed
// tokens are ignored (RFC 7009: revocation must not reveal which exist).
func (s *Service) revokeRefresh(ctx context.Context, refresh string) error {
	if err := s.ref.Revoke(ctx, refresh); err != nil {
		return errServer("revoke refresh token", err)
	}
	return nil
}

// revokeAccess revokes one access token until it expires.
func (s *Service) revokeAccess(ctx context.Context, c *token.Claims) error {
	if err := s.cfg.Revoker.RevokeToken(ctx, c.ID, c.ExpiresAt); err != nil {
		return errServer("revoke token", err)
	}
	return nil
}

// revokePrincipal signs principal out everywhere and returns the instant:
// every token of principal issued at or before it is rejected.
//
// It is not always now. token.Issuer dates a token issued in the same
// second as a principal revocation one second later (so the token is not
// born revoked); a second revocation within that second must still catch
// such a token, so it is placed no earlier than one second after the
// previous one.
func (s *Service) revokePrincipal(ctx context.Context, principal string) (time.Time, error) {
	at := s.cfg.Now()
	if prev, ok := s.cfg.Revocations.PrincipalRevokedAt(principal); ok {
		if floor := time.Unix(prev.Unix()+1, 0); at.Before(floor) {
			at = floor
		}
	}
	at, err := s.cfg.Revoker.RevokePrincipal(ctx, principal, at)
	if err != nil {
		return time.Time{}, errServer("revoke principal", err)
	}
	return at, nil
}
