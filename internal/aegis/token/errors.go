package token

import (
	"errors"
	"fmt"

	"github.com/photoncloud/photoncloud/client/aegis/accesstoken"
)

// ErrInvalidToken is wrapped by every access-token verification error, so
// the server can map them all to Unauthenticated with one errors.Is while
// audit logs keep the precise reason. The values are accesstoken's, shared
// with client/aegis.
var ErrInvalidToken = accesstoken.ErrInvalidToken

// Reasons an access token is rejected; each wraps ErrInvalidToken.
var (
	ErrMalformed   = accesstoken.ErrMalformed
	ErrAlgorithm   = accesstoken.ErrAlgorithm
	ErrUnknownKey  = accesstoken.ErrUnknownKey
	ErrSignature   = accesstoken.ErrSignature
	ErrExpired     = accesstoken.ErrExpired
	ErrNotYetValid = accesstoken.ErrNotYetValid
	ErrIssuer      = accesstoken.ErrIssuer
	ErrAudience    = accesstoken.ErrAudience
	ErrRevoked     = accesstoken.ErrRevoked
)

// Issuing errors.
var (
	// ErrInvalidGrant is returned by Issue for a grant that cannot become a
	// token (no subject, unknown principal kind, ...).
	ErrInvalidGrant = errors.New("invalid grant")
	// ErrScopeWidening is returned by Downscope when the requested scope is
	// not contained in the parent token's.
	ErrScopeWidening = errors.New("downscoped token would widen scope")
	// ErrPrincipalRevoked is returned by Issue when the principal's tokens
	// are revoked at a time that a new token cannot be dated after.
	ErrPrincipalRevoked = errors.New("principal revoked")
)

// ErrKeyConflict is returned by KeyStore.StoreKeys when the stored key set
// changed since it was loaded (another replica rotated first).
var ErrKeyConflict = errors.New("signing key set changed concurrently")

// ErrRefreshInvalid is wrapped by every refresh failure; the server answers
// all of them with OAuth2 "invalid_grant".
var ErrRefreshInvalid = errors.New("invalid refresh token")

// Reasons a refresh token is rejected; each wraps ErrRefreshInvalid.
var (
	// ErrRefreshReused means an already rotated refresh token was presented
	// again: someone holds a stolen copy, so the whole family was revoked.
	ErrRefreshReused = fmt.Errorf("%w: reused, token family revoked", ErrRefreshInvalid)
	// ErrRefreshExpired means the token or its family outlived its lifetime.
	ErrRefreshExpired = fmt.Errorf("%w: expired", ErrRefreshInvalid)
	// ErrRefreshRevoked means the principal signed out everywhere after the
	// family was started.
	ErrRefreshRevoked = fmt.Errorf("%w: principal revoked", ErrRefreshInvalid)
)

// Errors a RefreshStore implementation returns.
var (
	ErrRefreshNotFound = errors.New("refresh token not found")
	ErrRefreshUsed     = errors.New("refresh token already used")
)
