package authn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"time"

	"github.com/photoncloud/photoncloud/internal/aegis/password"
	"github.com/photoncloud/photoncloud/internal/aegis/token"
)

// Built-in OAuth2 client ids. They are written into the "client_id" claim
// and tell WhoAmI how a token was obtained (the token package has no "amr"
// claim), so the store must never hand out a service-account key with one
// of these client ids.
const (
	// PublicClientID is the built-in public client (no secret) allowed to
	// use the password and refresh_token grants: the photon CLI, and any
	// gRPC Login.
	PublicClientID = "photon-cli"
	// FederatedClientID marks tokens issued for an external ID token
	// (federated sign-in) and their refreshes.
	FederatedClientID = "aegis-federation"
	// CertificateClientID marks tokens issued to a service account for its
	// mTLS client certificate.
	CertificateClientID = "aegis-mtls"
)

// RevocationPath is where the RFC 7009 token revocation endpoint is served
// (relative to the issuer), next to token.TokenPath.
const RevocationPath = "/oauth2/revoke"

// Config configures a [Service]. Issuer, Verifier, Refresher, Keyring,
// Hasher, Limiter, Users, ServiceAccounts, Principals, Revoker and
// Revocations are required; the rest have defaults.
type Config struct {
	// Token is the configuration the Issuer, Verifier and Keyring were
	// built with (the issuer URL, audiences, lifetimes, clock).
	Token     token.Config
	Issuer    *token.Issuer
	Verifier  *token.Verifier
	Refresher *token.Refresher
	Keyring   *token.Keyring

	Hasher  *password.Hasher
	Limiter *password.Limiter

	Users           Users
	ServiceAccounts ServiceAccounts
	Principals      Principals
	Revoker         Revoker
	// Revocations is the revocation index the Issuer, Verifier and
	// Refresher were given (the server's token.RevocationList); it is
	// read to place a "sign out everywhere" after the previous one.
	Revocations token.Revocations
	// Authorizer decides whether a caller may revoke another principal's
	// tokens. Nil: callers may revoke only their own.
	Authorizer Authorizer

	// DisablePasswordGrant switches password logins off (HTTP and gRPC),
	// e.g. for installations that sign in only through federation.
	DisablePasswordGrant bool
	// DefaultLoginOrg is the org of a login that names none. Default
	// "system".
	DefaultLoginOrg string
	// FederatedIssuers are the external OIDC issuers whose ID tokens may be
	// exchanged for Aegis tokens.
	FederatedIssuers []FederatedIssuer
	// HTTPClient fetches the federated issuers' discovery documents and
	// key sets. Default: a client with a 10 s timeout.
	HTTPClient *http.Client
	// TrustedProxies are the networks of reverse proxies (and of the
	// in-process grpc-gateway, usually loopback) whose X-Forwarded-For is
	// believed: for requests from them, the rate limiter and the audit log
	// use the rightmost forwarded address. Default none.
	TrustedProxies []netip.Prefix

	// Audit is called for every authentication attempt (success or
	// failure) and every revocation. It runs on the request path: it must
	// not block (queue and store asynchronously). Nil: none.
	Audit func(context.Context, AuditEvent)
	// Logger receives operational logs; default slog.Default().
	Logger *slog.Logger
	// Now is the clock for key expiry, revocation times and audit events;
	// default Token.Now, or time.Now.
	Now func() time.Time
}

// FederatedIssuer is a trusted external OIDC issuer.
type FederatedIssuer struct {
	// Issuer is the issuer URL exactly as in the ID tokens' "iss" claim;
	// its discovery document is fetched from
	// Issuer + "/.well-known/openid-configuration" on first use.
	Issuer string
	// Audience is the client id Aegis is registered as at that issuer; an
	// ID token must name it in "aud".
	Audience string
	// SubjectClaim is the claim holding the external subject that
	// federated identities name. Default "sub"; it must be a string claim.
	SubjectClaim string
	// SigningAlgs are the accepted signature algorithms. Default: those
	// the issuer's discovery document advertises (RS256 if none).
	SigningAlgs []string
}

// prepare fills defaults into a copy and validates it.
func (c Config) prepare() (Config, error) {
	c.Token.Audience = append([]string(nil), c.Token.Audience...)
	c.Token.EnsureDefaults()
	if err := c.Token.Validate(); err != nil {
		return Config{}, fmt.Errorf("token config: %w", err)
	}
	switch {
	case c.Issuer == nil, c.Verifier == nil, c.Refresher == nil, c.Keyring == nil:
		return Config{}, errors.New("authn needs the token Issuer, Verifier, Refresher and Keyring")
	case c.Hasher == nil, c.Limiter == nil:
		return Config{}, errors.New("authn needs a password Hasher and Limiter")
	case c.Users == nil, c.ServiceAccounts == nil, c.Principals == nil, c.Revoker == nil, c.Revocations == nil:
		return Config{}, errors.New("authn needs Users, ServiceAccounts, Principals, Revoker and Revocations")
	}
	if c.DefaultLoginOrg == "" {
		c.DefaultLoginOrg = "system"
	}
	if !isLabel(c.DefaultLoginOrg) {
		return Config{}, fmt.Errorf("default login org %q is not a valid org id", c.DefaultLoginOrg)
	}
	seen := map[string]bool{}
	c.FederatedIssuers = append([]FederatedIssuer(nil), c.FederatedIssuers...)
	for i := range c.FederatedIssuers {
		f := &c.FederatedIssuers[i]
		u, err := url.Parse(f.Issuer)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return Config{}, fmt.Errorf("federated issuer %q must be an http(s) URL", f.Issuer)
		}
		if f.Issuer == c.Token.Issuer {
			// Aegis's own tokens are downscoped, never federated.
			return Config{}, fmt.Errorf("federated issuer %q is Aegis itself", f.Issuer)
		}
		if seen[f.Issuer] {
			return Config{}, fmt.Errorf("federated issuer %q configured twice", f.Issuer)
		}
		seen[f.Issuer] = true
		if f.Audience == "" {
			return Config{}, fmt.Errorf("federated issuer %q needs an audience", f.Issuer)
		}
		if f.SubjectClaim == "" {
			f.SubjectClaim = "sub"
		}
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = c.Token.Now
	}
	if c.Audit == nil {
		c.Audit = func(context.Context, AuditEvent) {}
	}
	return c, nil
}
