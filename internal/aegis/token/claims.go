package token

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/photoncloud/photoncloud/client/aegis/accesstoken"
)

// accessTokenType is the JWS "typ" of access tokens (RFC 9068). The
// verifier requires it, so no other JWT ever signed with an Aegis key (an
// ID token, a logout token) can be replayed as an access token.
const accessTokenType = accesstoken.Type

// PrincipalKind says what kind of principal a token speaks for.
type PrincipalKind = accesstoken.PrincipalKind

// Principal kinds.
const (
	KindUser           = accesstoken.KindUser
	KindServiceAccount = accesstoken.KindServiceAccount
)

func validKind(k PrincipalKind) bool {
	return k == KindUser || k == KindServiceAccount
}

// Grant is what a token is issued for: who, in which org, optionally
// narrowed to one project and a subset of permissions. The server builds it
// after authenticating the principal; refresh records keep it so that a
// refresh issues the same grant.
type Grant struct {
	// Subject is the principal id (the "sub" claim). Required.
	Subject string `json:"sub"`
	// Kind is the principal kind. Required.
	Kind PrincipalKind `json:"kind"`
	// Org is the principal's org ("system" for operators). Required.
	Org string `json:"org"`
	// Project, if set, downscopes the token to that project: the policy
	// engine must ignore bindings outside it.
	Project string `json:"project,omitempty"`
	// Permissions, if non-empty, is the most the token may do
	// (service:resource:verb patterns with per-segment "*"): the policy
	// engine intersects it with what bindings allow. Empty means no
	// restriction beyond the bindings.
	Permissions []string `json:"permissions,omitempty"`
	// Audience overrides Config.Audience[0] as the "aud" claim.
	Audience []string `json:"aud,omitempty"`
	// ClientID is the OAuth2 client the token was issued to ("client_id",
	// RFC 9068), e.g. "photon-cli" or a service-account key id.
	ClientID string `json:"client_id,omitempty"`
}

func (g *Grant) validate() error {
	switch {
	case g.Subject == "":
		return fmt.Errorf("%w: no subject", ErrInvalidGrant)
	case !validKind(g.Kind):
		return fmt.Errorf("%w: unknown principal kind %q", ErrInvalidGrant, g.Kind)
	case g.Org == "":
		return fmt.Errorf("%w: no org", ErrInvalidGrant)
	}
	for _, p := range g.Permissions {
		if !ValidPermission(p) {
			return fmt.Errorf("%w: permission %q is not service:resource:verb", ErrInvalidGrant, p)
		}
	}
	for _, a := range g.Audience {
		if a == "" {
			return fmt.Errorf("%w: empty audience", ErrInvalidGrant)
		}
	}
	return nil
}

// Claims are the verified contents of an access token.
type Claims struct {
	Issuer    string
	Subject   string
	Audience  []string
	ExpiresAt time.Time
	IssuedAt  time.Time
	NotBefore time.Time
	// ID is the "jti": what per-token revocation names.
	ID          string
	Kind        PrincipalKind
	Org         string
	Project     string   // "" unless downscoped to a project
	Permissions []string // nil unless downscoped to a permission subset
	ClientID    string
	// KeyID is the "kid" of the key that signed the token.
	KeyID string
}

// Grant returns the grant the token was issued for.
func (c *Claims) Grant() Grant {
	return Grant{
		Subject: c.Subject, Kind: c.Kind, Org: c.Org, Project: c.Project,
		Permissions: slices.Clone(c.Permissions), Audience: slices.Clone(c.Audience), ClientID: c.ClientID,
	}
}

// wireClaims is the JSON payload of an access token.
type wireClaims struct {
	Issuer      string           `json:"iss"`
	Subject     string           `json:"sub"`
	Audience    jwt.Audience     `json:"aud"`
	Expiry      *jwt.NumericDate `json:"exp"`
	NotBefore   *jwt.NumericDate `json:"nbf"`
	IssuedAt    *jwt.NumericDate `json:"iat"`
	ID          string           `json:"jti"`
	Kind        PrincipalKind    `json:"principal_kind"`
	Org         string           `json:"org"`
	Project     string           `json:"project,omitempty"`
	Permissions []string         `json:"permissions,omitempty"`
	ClientID    string           `json:"client_id,omitempty"`
}

// ValidPermission checks the service:resource:verb shape of a permission
// in a token: three non-empty segments of printable non-space ASCII.
func ValidPermission(p string) bool {
	segs := strings.Split(p, ":")
	if len(segs) != 3 {
		return false
	}
	for _, s := range segs {
		if s == "" {
			return false
		}
		for i := 0; i < len(s); i++ {
			if s[i] <= ' ' || s[i] > '~' {
				return false
			}
		}
	}
	return true
}

// PermissionCovers reports whether pattern allows everything child allows
// (downscoping may only narrow):
// each segment of pattern is "*" or equal to child's. A "*" in child is
// only covered by a "*" in pattern.
func PermissionCovers(pattern, child string) bool {
	ps, cs := strings.Split(pattern, ":"), strings.Split(child, ":")
	if len(ps) != 3 || len(cs) != 3 {
		return false
	}
	for i := range ps {
		if ps[i] != "*" && ps[i] != cs[i] {
			return false
		}
	}
	return true
}
