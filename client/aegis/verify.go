package aegis

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	aegisv1 "github.com/photoncloud/photoncloud/api/aegis/v1"
	"github.com/photoncloud/photoncloud/client/aegis/accesstoken"
)

// allowedAlgs is the only algorithm Aegis signs with. go-jose refuses to
// parse a JWS whose "alg" is not listed, which rejects "none", HS256 keyed
// with the public key and every other algorithm substitution before any
// key is chosen.
var allowedAlgs = []jose.SignatureAlgorithm{jose.EdDSA}

// errKeysUnavailable: no key set could be fetched, so no token can be
// judged. The interceptor answers Unavailable, not Unauthenticated, so that
// clients retry instead of discarding good tokens.
var errKeysUnavailable = errors.New("aegis signing keys unavailable")

// accessClaims is the payload of an Aegis access token: the registered
// claims, which go-jose validates, plus Aegis's own.
type accessClaims struct {
	jwt.Claims
	Kind        string   `json:"principal_kind"`
	Org         string   `json:"org"`
	Project     string   `json:"project"`
	Permissions []string `json:"permissions"`
	ClientID    string   `json:"client_id"`
}

// verifiedToken is a token whose signature and static claims were
// checked; the time claims are checked again on every use.
type verifiedToken struct {
	p         *Principal
	expiry    time.Time
	notBefore time.Time // zero if absent
	issuedAt  time.Time
	gen       uint64 // key set generation it was verified under
}

// verifier checks Aegis access tokens against the cached JWKS. Aegis's own
// token.Verifier cannot be used here: it needs the Keyring, which holds the
// private keys. The checks mirror it: EdDSA only, kid and typ required, no
// other header parameters, iss, aud, exp, nbf and iat with leeway, and the
// claims Aegis always writes present. Errors wrap accesstoken.ErrInvalidToken and
// the same reasons (accesstoken.ErrExpired, ...), or errKeysUnavailable.
type verifier struct {
	cfg   *Config
	keys  *keyCache
	cache *boundedCache[[sha256.Size]byte, *verifiedToken]
}

func (v *verifier) verify(ctx context.Context, raw string) (*Principal, error) {
	if len(raw) > accesstoken.MaxBytes {
		return nil, fmt.Errorf("%w: longer than %d bytes", accesstoken.ErrMalformed, accesstoken.MaxBytes)
	}
	now := v.cfg.Now()
	key := sha256.Sum256([]byte(raw))
	if e, ok := v.cache.get(key); ok && e.gen == v.keys.generation() {
		// Same bytes under the same keys: signature and static claims
		// hold; time is checked again.
		if err := v.checkTime(e.expiry, e.notBefore, e.issuedAt, now); err != nil {
			return nil, err
		}
		return e.p, nil
	}
	tok, err := jwt.ParseSigned(raw, allowedAlgs)
	if err != nil {
		if _, ok := errors.AsType[*jose.ErrUnexpectedSignatureAlgorithm](err); ok {
			return nil, fmt.Errorf("%w: %v", accesstoken.ErrAlgorithm, err)
		}
		return nil, fmt.Errorf("%w: %v", accesstoken.ErrMalformed, err)
	}
	if len(tok.Headers) != 1 {
		return nil, fmt.Errorf("%w: want one signature", accesstoken.ErrMalformed)
	}
	kid := tok.Headers[0].KeyID
	if err := checkHeader(tok.Headers[0]); err != nil {
		return nil, err
	}
	pub, gen, err := v.key(ctx, kid)
	if err != nil {
		return nil, err
	}
	var c accessClaims
	if err := tok.Claims(pub, &c); err != nil {
		if errors.Is(err, jose.ErrCryptoFailure) {
			return nil, accesstoken.ErrSignature
		}
		return nil, fmt.Errorf("%w: claims: %v", accesstoken.ErrMalformed, err)
	}
	p, err := principalFromClaims(&c)
	if err != nil {
		return nil, err
	}
	// Time failures of go-jose's validation are left to checkTime below,
	// which applies Aegis's exact bounds; issuer and audience are final.
	err = c.ValidateWithLeeway(jwt.Expected{Issuer: v.cfg.Issuer, AnyAudience: v.cfg.Audience, Time: now}, v.cfg.Leeway)
	if errors.Is(err, jwt.ErrInvalidIssuer) {
		return nil, fmt.Errorf("%w: %q", accesstoken.ErrIssuer, truncate(c.Issuer))
	}
	if errors.Is(err, jwt.ErrInvalidAudience) {
		return nil, accesstoken.ErrAudience
	}
	e := &verifiedToken{p: p, expiry: c.Expiry.Time(), issuedAt: c.IssuedAt.Time(), gen: gen}
	if c.NotBefore != nil {
		e.notBefore = c.NotBefore.Time()
	}
	if err := v.checkTime(e.expiry, e.notBefore, e.issuedAt, now); err != nil {
		return nil, err
	}
	v.cache.put(key, e)
	return p, nil
}

// key returns the verification key for kid, fetching the JWKS once more
// when kid is unknown (a rotation this replica has not seen yet), subject
// to the refresh rate limit.
func (v *verifier) key(ctx context.Context, kid string) (ed25519.PublicKey, uint64, error) {
	pub, gen, ok, _ := v.keys.lookup(kid)
	if ok {
		return pub, gen, nil
	}
	err := v.keys.refresh(ctx, true)
	if ctxErr := ctx.Err(); ctxErr != nil {
		return nil, 0, ctxErr
	}
	pub, gen, ok, loaded := v.keys.lookup(kid)
	switch {
	case ok:
		return pub, gen, nil
	case !loaded:
		return nil, 0, fmt.Errorf("%w: %v", errKeysUnavailable, err)
	case err != nil && !errors.Is(err, errRefreshLimited):
		// The keys we have do not know kid and Aegis could not be asked:
		// the token may be signed by a key rotated in meanwhile.
		return nil, 0, fmt.Errorf("%w: kid %q unknown and jwks refresh failed: %v", errKeysUnavailable, truncate(kid), err)
	}
	return nil, 0, fmt.Errorf("%w: kid %q", accesstoken.ErrUnknownKey, truncate(kid))
}

// checkHeader accepts exactly the header Aegis writes: alg (checked by the
// parser), kid and typ at+jwt. An embedded key or any other parameter is
// refused, so nothing can tempt a later change into trusting a key the
// token brings along.
func checkHeader(h jose.Header) error {
	if h.KeyID == "" {
		return fmt.Errorf("%w: no kid", accesstoken.ErrMalformed)
	}
	if h.JSONWebKey != nil || h.Nonce != "" {
		return fmt.Errorf("%w: unexpected header parameters", accesstoken.ErrMalformed)
	}
	typ, ok := h.ExtraHeaders[jose.HeaderType].(string)
	// RFC 7515 4.1.9: the "application/" prefix may be omitted.
	if !ok || !strings.EqualFold(strings.TrimPrefix(strings.ToLower(typ), "application/"), accesstoken.Type) {
		return fmt.Errorf("%w: typ %q is not %s", accesstoken.ErrMalformed, truncate(typ), accesstoken.Type)
	}
	for k := range h.ExtraHeaders {
		if k != jose.HeaderType {
			return fmt.Errorf("%w: unexpected header parameter %q", accesstoken.ErrMalformed, truncate(string(k)))
		}
	}
	return nil
}

// checkTime applies exp, nbf and iat with leeway, as Aegis does: valid
// while now is before exp + leeway.
func (v *verifier) checkTime(exp, nbf, iat, now time.Time) error {
	l := v.cfg.Leeway
	if !now.Before(exp.Add(l)) {
		return fmt.Errorf("%w: at %v", accesstoken.ErrExpired, exp.UTC())
	}
	if !nbf.IsZero() && now.Add(l).Before(nbf) {
		return fmt.Errorf("%w: not before %v", accesstoken.ErrNotYetValid, nbf.UTC())
	}
	if now.Add(l).Before(iat) {
		return fmt.Errorf("%w: issued in the future at %v", accesstoken.ErrNotYetValid, iat.UTC())
	}
	return nil
}

// principalFromClaims requires every claim Aegis always writes, so that a
// token that lacks one (and would otherwise read as "no restriction" or an
// empty org) is refused.
func principalFromClaims(c *accessClaims) (*Principal, error) {
	switch {
	case c.Issuer == "", c.Subject == "", c.ID == "", c.Org == "":
		return nil, fmt.Errorf("%w: missing iss, sub, jti or org", accesstoken.ErrMalformed)
	case c.Expiry == nil, c.IssuedAt == nil:
		return nil, fmt.Errorf("%w: missing exp or iat", accesstoken.ErrMalformed)
	case len(c.Audience) == 0:
		return nil, fmt.Errorf("%w: missing aud", accesstoken.ErrMalformed)
	case c.Permissions != nil && len(c.Permissions) == 0:
		return nil, fmt.Errorf("%w: empty permissions", accesstoken.ErrMalformed)
	}
	var kind aegisv1.PrincipalKind
	switch accesstoken.PrincipalKind(c.Kind) {
	case accesstoken.KindUser:
		kind = aegisv1.PrincipalKind_PRINCIPAL_KIND_USER
	case accesstoken.KindServiceAccount:
		kind = aegisv1.PrincipalKind_PRINCIPAL_KIND_SERVICE_ACCOUNT
	default:
		return nil, fmt.Errorf("%w: unknown principal kind", accesstoken.ErrMalformed)
	}
	return &Principal{
		Name: c.Subject, Kind: kind,
		Org: orgName(c.Org), Project: projectName(c.Org, c.Project),
		Permissions: c.Permissions, TokenID: c.ID, ClientID: c.ClientID,
		ExpiresAt: c.Expiry.Time(),
	}, nil
}
