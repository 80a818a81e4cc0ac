// Package accesstoken is the public vocabulary of Aegis access tokens: the
// errors a verification fails with, the size limit, the JWS type and the
// principal kinds a token speaks for. Aegis itself (which issues and
// verifies tokens) and client/aegis (which verifies them in every other
// service) share these values, so errors.Is works across both.
package accesstoken

import (
	"errors"
	"fmt"
)

// Type is the JWS "typ" header of access tokens (RFC 9068).
const Type = "at+jwt"

// MaxBytes bounds the size of a token a verifier looks at, so that an
// oversized header costs no parsing.
const MaxBytes = 8 << 10

// PrincipalKind says what kind of principal a token speaks for.
type PrincipalKind string

// Principal kinds.
const (
	KindUser           PrincipalKind = "user"
	KindServiceAccount PrincipalKind = "service_account"
)

// ErrInvalidToken is wrapped by every access-token verification error, so a
// server maps them all to Unauthenticated with one errors.Is while audit
// logs keep the precise reason.
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
