package authn

import (
	"context"
	"crypto/x509"
	"errors"
	"net/netip"
	"time"

	"github.com/photoncloud/photoncloud/internal/aegis/token"
)

// ErrNotFound is what the lookup interfaces return (wrapped or not) when
// nothing matches. Any other error is treated as a failure of the store and
// answered as a server error, so that a store outage never reads as "wrong
// password".
var ErrNotFound = errors.New("not found")

// ErrAmbiguous is what ServiceAccounts.ServiceAccountByCertificate returns
// (wrapped or not) for a certificate bound to more than one service
// account: it then authenticates none of them.
var ErrAmbiguous = errors.New("ambiguous")

// Principal is what authentication needs to know about a user or service
// account.
type Principal struct {
	// Name is the principal's resource name, e.g. "orgs/acme/users/alice"
	// or "orgs/acme/projects/web/serviceAccounts/ci". It becomes the "sub"
	// claim of its tokens and is what revocations and policy name.
	Name string
	// Kind is token.KindUser or token.KindServiceAccount.
	Kind token.PrincipalKind
	// Org is the id of the principal's org ("acme"; "system" for
	// operators), the "org" claim.
	Org string
	// DisplayName is shown by WhoAmI.
	DisplayName string
	// Groups are the names of the groups the principal belongs to, shown by
	// WhoAmI. Lookups used only to authenticate may leave it nil.
	Groups []string
	// Disabled is true when the principal is disabled or its org is
	// suspended: it cannot authenticate and gets no new tokens.
	Disabled bool
}

// User is a user with its password hash, for the password grant.
type User struct {
	Principal
	// PasswordHash is the argon2id PHC string, "" if the user has no
	// password (federation only).
	PasswordHash string
}

// ServiceAccountKey is a key (OAuth2 client) of a service account.
type ServiceAccountKey struct {
	// ClientID is the key's client_id.
	ClientID string
	// ServiceAccount is the service account the key belongs to.
	ServiceAccount Principal
	// SecretHash is the stored hash of the secret: the output of
	// [HashClientSecret] ("sha256:<hex>"), or an argon2id PHC string. Use
	// the former: a generated secret has 256 bits of entropy, so a slow hash
	// adds no protection and would cap issuance at a few dozen tokens per
	// second.
	SecretHash string
	// ExpireTime is when the key stops working; zero means never.
	ExpireTime time.Time
}

// Users finds users for the password grant and for federated sign-in.
type Users interface {
	// UserByLogin returns the user username of org (org and username are
	// ids, e.g. "acme" and "alice"), or ErrNotFound.
	UserByLogin(ctx context.Context, org, username string) (*User, error)
	// UserByFederatedIdentity returns the user holding the federated
	// identity (issuer, subject), or ErrNotFound.
	UserByFederatedIdentity(ctx context.Context, issuer, subject string) (*Principal, error)
}

// PasswordRehasher may be implemented by the value given as Config.Users.
// After a successful login whose stored hash was made with outdated argon2
// parameters, the new hash of the just-verified password is stored through
// it.
type PasswordRehasher interface {
	// UpdatePasswordHash replaces the password hash of the user named
	// principal with newHash if it is still oldHash (so a password change
	// in between wins), and otherwise does nothing.
	UpdatePasswordHash(ctx context.Context, principal, oldHash, newHash string) error
}

// ServiceAccounts finds service accounts for the client_credentials grant.
type ServiceAccounts interface {
	// ServiceAccountKey returns the key with this client_id, or
	// ErrNotFound.
	ServiceAccountKey(ctx context.Context, clientID string) (*ServiceAccountKey, error)
	// ServiceAccountByCertificate returns the service account bound to
	// cert, a client certificate the TLS layer has verified against the
	// listener's trusted CAs, through its certificate identities
	// (aegis.v1.CertificateIdentity): a SHA-256 fingerprint of cert.Raw
	// pins one certificate and wins; otherwise a URI SAN, otherwise a DNS
	// SAN. It returns ErrNotFound if nothing matches and ErrAmbiguous if
	// identities of the winning kind lead to different service accounts.
	ServiceAccountByCertificate(ctx context.Context, cert *x509.Certificate) (*Principal, error)
}

// Principals looks principals up by name: when a refresh token is used (the
// principal must still exist and be enabled), when an Aegis token is
// downscoped, and for WhoAmI.
type Principals interface {
	// Principal returns the user or service account name, or ErrNotFound.
	Principal(ctx context.Context, name string) (*Principal, error)
}

// Revoker records revocations durably, so that every replica sees them
// (through its watch feeding its token.RevocationList). Implementations
// should also apply the revocation to the local RevocationList before
// returning, so the replica that revoked enforces it at once.
type Revoker interface {
	// RevokeToken revokes the access token jti, which expires no later than
	// expiresAt (the record may be dropped after expiresAt +
	// token.MaxLeeway).
	RevokeToken(ctx context.Context, jti string, expiresAt time.Time) error
	// RevokePrincipal revokes every token of principal issued at or before
	// at ("sign out everywhere") and returns the revocation time now in
	// force: at, or a later one already recorded (by another replica).
	RevokePrincipal(ctx context.Context, principal string, at time.Time) (time.Time, error)
}

// Authorizer answers permission checks RevokeTokens needs when a caller
// revokes someone else's tokens. The server implements it with its policy
// evaluator.
type Authorizer interface {
	// Authorize reports whether caller may use permission on resource.
	Authorize(ctx context.Context, caller *token.Claims, permission, resource string) (bool, error)
}

// AuditEvent describes one authentication or revocation, for the audit log.
// It never contains a secret or a token.
type AuditEvent struct {
	Time time.Time
	// Action is what was attempted: one of the Action constants.
	Action string
	// Success is false for a refused attempt.
	Success bool
	// Reason is a machine-readable failure reason (one of the Reason
	// constants), "" on success.
	Reason string
	// Principal is the authenticated (or targeted) principal, when known.
	Principal string
	// Login is the credential's identifier as presented, for attempts that
	// did not get as far as a principal: "org/username", a client_id, or an
	// external "issuer subject".
	Login string
	// ClientID is the OAuth2 client.
	ClientID string
	// TokenID is the jti of the access token issued or revoked, if any.
	TokenID string
	// SourceAddr is the caller's address, invalid if unknown.
	SourceAddr netip.Addr
	// Transport is "http" or "grpc".
	Transport string
}

// Audit actions.
const (
	ActionLogin             = "login"
	ActionClientCredentials = "client_credentials"
	ActionCertificate       = "mtls"
	ActionRefresh           = "refresh"
	ActionFederated         = "token_exchange"
	ActionDownscope         = "downscope"
	ActionLogout            = "logout"
	ActionRevokeTokens      = "revoke_tokens"
)

// Audit failure reasons.
const (
	ReasonRateLimited       = "rate_limited"
	ReasonUnknownUser       = "unknown_user"
	ReasonNoPassword        = "no_password"
	ReasonBadPassword       = "bad_password"
	ReasonDisabled          = "disabled"
	ReasonUnknownClient     = "unknown_client"
	ReasonBadSecret         = "bad_secret"
	ReasonKeyExpired        = "key_expired"
	ReasonUnknownCert       = "unknown_certificate"
	ReasonAmbiguousCert     = "ambiguous_certificate"
	ReasonClientMismatch    = "client_id_mismatch"
	ReasonRefreshInvalid    = "refresh_invalid"
	ReasonRefreshReused     = "refresh_reused"
	ReasonUnknownPrincipal  = "unknown_principal"
	ReasonBadSubjectToken   = "bad_subject_token"
	ReasonUntrustedIssuer   = "untrusted_issuer"
	ReasonUnknownIdentity   = "unknown_federated_identity"
	ReasonScope             = "scope"
	ReasonPermissionDenied  = "permission_denied"
	ReasonPrincipalRevoked  = "principal_revoked"
	ReasonInternal          = "internal_error" // store or signing failure; see the server log
	ReasonPasswordMalformed = "malformed_password_hash"
)
