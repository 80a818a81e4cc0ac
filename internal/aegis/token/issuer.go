package token

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/go-jose/go-jose/v4/jwt"
)

// Issuer signs access tokens with the keyring's active key. It is safe for
// concurrent use.
type Issuer struct {
	ring *Keyring
	cfg  Config
	revs Revocations
}

// NewIssuer returns an Issuer. revs (nil: none) lets it date tokens after
// a same-second "sign out everywhere"; see Issue.
func NewIssuer(ring *Keyring, cfg Config, revs Revocations) (*Issuer, error) {
	cfg, err := cfg.prepared()
	if err != nil {
		return nil, err
	}
	if revs == nil {
		revs = noRevocations{}
	}
	return &Issuer{ring: ring, cfg: cfg, revs: revs}, nil
}

// Issue signs an access token for g valid for ttl (0: Config.AccessTTL;
// capped at Config.MaxTTL) and returns it with its claims.
//
// Tokens carry whole-second iat, and a principal revocation covers tokens
// issued in its own second. So a token issued in the same second as the
// principal's revocation (sign out everywhere, then log in again at once)
// is dated one second later, nbf included; the verifier's leeway accepts
// that. If the revocation lies further ahead than Leeway (a replica with a
// fast clock recorded it) the token would be born revoked, and Issue
// returns ErrPrincipalRevoked instead.
func (i *Issuer) Issue(g Grant, ttl time.Duration) (string, *Claims, error) {
	if err := g.validate(); err != nil {
		return "", nil, err
	}
	ttl = i.lifetime(ttl)
	now := i.cfg.Now()
	iat := now.Truncate(time.Second)
	if at, ok := i.revs.PrincipalRevokedAt(g.Subject); ok && revokedBySubject(iat, at) {
		bumped := time.Unix(at.Unix()+1, 0)
		if bumped.Sub(now) > i.cfg.Leeway {
			return "", nil, fmt.Errorf("%w: %s revoked until %v", ErrPrincipalRevoked, g.Subject, at)
		}
		iat = bumped
	}
	return i.sign(g, iat, iat.Add(ttl))
}

// Downscope issues a token for parent's principal narrowed to project
// and/or permissions, expiring no later than parent. parent must come from
// Verifier.Verify. An empty project keeps parent's; empty permissions keep
// parent's. The request may only narrow: a parent scoped to a project
// cannot switch to another, and each requested permission must be covered
// by one of parent's (when parent has any). The server still checks that
// project belongs to parent's org.
func (i *Issuer) Downscope(parent *Claims, project string, permissions []string, ttl time.Duration) (string, *Claims, error) {
	g := parent.Grant()
	if project != "" {
		if g.Project != "" && g.Project != project {
			return "", nil, fmt.Errorf("%w: token is scoped to project %q", ErrScopeWidening, g.Project)
		}
		g.Project = project
	}
	if len(permissions) > 0 {
		if len(g.Permissions) > 0 {
			for _, p := range permissions {
				if !slices.ContainsFunc(g.Permissions, func(pp string) bool { return PermissionCovers(pp, p) }) {
					return "", nil, fmt.Errorf("%w: permission %q is not in the token's set", ErrScopeWidening, p)
				}
			}
		}
		g.Permissions = slices.Clone(permissions)
	}
	ttl = i.lifetime(ttl)
	iat := i.cfg.Now().Truncate(time.Second)
	if iat.Before(parent.IssuedAt) {
		// Never date the child before its parent: a principal revocation
		// that caught only the child would be wrong.
		iat = parent.IssuedAt
	}
	exp := iat.Add(ttl)
	if exp.After(parent.ExpiresAt) {
		exp = parent.ExpiresAt
	}
	if !exp.After(iat) {
		return "", nil, fmt.Errorf("%w: parent token expires now", ErrInvalidGrant)
	}
	if err := g.validate(); err != nil {
		return "", nil, err
	}
	return i.sign(g, iat, exp)
}

// lifetime applies the default and the cap to a requested TTL and rounds
// it to whole seconds, the precision of exp, so the Claims Issue returns
// are exactly what Verify will read back.
func (i *Issuer) lifetime(ttl time.Duration) time.Duration {
	if ttl <= 0 {
		ttl = i.cfg.AccessTTL
	}
	return max(min(ttl, i.cfg.MaxTTL).Truncate(time.Second), time.Second)
}

func (i *Issuer) sign(g Grant, iat, exp time.Time) (string, *Claims, error) {
	aud := g.Audience
	if len(aud) == 0 {
		aud = i.cfg.Audience[:1]
	}
	signer, kid := i.ring.signer()
	c := &Claims{
		Issuer: i.cfg.Issuer, Subject: g.Subject, Audience: slices.Clone(aud),
		ExpiresAt: exp, IssuedAt: iat, NotBefore: iat, ID: newJTI(),
		Kind: g.Kind, Org: g.Org, Project: g.Project, Permissions: slices.Clone(g.Permissions),
		ClientID: g.ClientID, KeyID: kid,
	}
	payload, err := json.Marshal(&wireClaims{
		Issuer: c.Issuer, Subject: c.Subject, Audience: jwt.Audience(c.Audience),
		Expiry: jwt.NewNumericDate(exp), NotBefore: jwt.NewNumericDate(iat), IssuedAt: jwt.NewNumericDate(iat),
		ID: c.ID, Kind: c.Kind, Org: c.Org, Project: c.Project, Permissions: c.Permissions, ClientID: c.ClientID,
	})
	if err != nil {
		return "", nil, fmt.Errorf("marshal claims: %w", err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", nil, fmt.Errorf("sign token: %w", err)
	}
	raw, err := jws.CompactSerialize()
	if err != nil {
		return "", nil, fmt.Errorf("serialize token: %w", err)
	}
	return raw, c, nil
}

// newJTI returns 128 random bits: unguessable and collision-free without
// coordination between replicas.
func newJTI() string {
	var b [16]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
