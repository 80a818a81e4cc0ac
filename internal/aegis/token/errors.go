package token

import (
	"errors"
	"fmt"
)

// ErrInvalidToken is wrapped by every access-token verification error, so
// the server can map them all to Unauthenticated with one errors.Is while
// audit logs keep the precise reason.
var ErrInvalidToken = errors.New("invalid token")

// Reasons an access token is rejected; each wraps ErrInvalidToken.
var (
	ErrMalformed   = fmt.Errorf("%w: malformed", ErrInvalidToken)
	ErrAlgorithm   = fmt.Errorf("%w: algorithm not allowed", ErrInvalidToken)
	ErrUnknownKey  = fmt.Errorf("%w: unknown signing key", ErrInvalidToken)
	ErrSignature   = fmt.Errorf("%w: bad signature", ErrInvalidToken)
	ErrExpired     = fmt.Errorf("%w: expired", ErrInvalidToken)
	ErrNotYetValid = fmt.Errorf("%w: not yet valid", ErrInvalidToken)
	ErrIssuer      = fmt.Errorf("%w: wrong issuer", ErrInvalidToken)
	ErrAudience    = fmt.Errorf("%w: wrong audience", ErrInvalidToken)
	ErrRevoked     = fmt.Errorf("%w: revoked", ErrInvalidToken)
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
