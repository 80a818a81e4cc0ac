package token

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/photoncloud/photoncloud/client/aegis/accesstoken"
)

// MaxTokenBytes bounds the size of a token the verifier will look at, so a
// huge bearer header costs nothing to reject. Aegis tokens are well under
// 1 KiB; permission subsets leave room to grow.
const MaxTokenBytes = accesstoken.MaxBytes

// allowedAlgs is the only algorithm Aegis signs with. go-jose refuses to
// parse a JWS whose "alg" is not in this list, which is what rejects
// "none", HS256 keyed with the public key and any other substitution.
var allowedAlgs = []jose.SignatureAlgorithm{jose.EdDSA}

// Verifier checks Aegis access tokens. It is safe for concurrent use.
type Verifier struct {
	ring  *Keyring
	cfg   Config
	revs  Revocations
	cache *verifyCache // nil if disabled
}

// NewVerifier returns a Verifier checking signatures against ring, claims
// against cfg and revocations against revs (nil: none).
func NewVerifier(ring *Keyring, cfg Config, revs Revocations) (*Verifier, error) {
	cfg, err := cfg.prepared()
	if err != nil {
		return nil, err
	}
	if revs == nil {
		revs = noRevocations{}
	}
	return &Verifier{ring: ring, cfg: cfg, revs: revs, cache: newVerifyCache(cfg.VerifyCacheSize)}, nil
}

// Verify parses and checks raw and returns its claims. Every error wraps
// ErrInvalidToken and one of the specific reasons (ErrMalformed,
// ErrAlgorithm, ErrUnknownKey, ErrSignature, ErrExpired, ErrNotYetValid,
// ErrIssuer, ErrAudience, ErrRevoked). Checks run cheapest first, and
// nothing from the payload is trusted before the signature is verified.
//
// The returned Claims may be shared with other callers (see
// Config.VerifyCacheSize): treat it as read-only.
func (v *Verifier) Verify(raw string) (*Claims, error) {
	if v.cache == nil || len(raw) > MaxTokenBytes {
		return v.verify(raw)
	}
	key := sha256.Sum256([]byte(raw))
	rev := v.ring.Revision()
	if e, ok := v.cache.get(key); ok && e.rev == rev {
		// Same bytes, same key set: the signature and the static claims
		// (issuer, audience, shape) were already checked. Everything that
		// depends on time or on revocations is checked again.
		now := v.cfg.Now()
		if _, ok := v.ring.lookup(e.claims.KeyID, now); !ok {
			return nil, fmt.Errorf("%w: kid %q", ErrUnknownKey, truncate(e.claims.KeyID))
		}
		if err := v.checkClaims(e.claims, now); err != nil {
			return nil, err
		}
		return e.claims, nil
	}
	c, err := v.verify(raw)
	if err != nil {
		return nil, err
	}
	v.cache.put(key, &cacheEntry{claims: c, rev: rev})
	return c, nil
}

func (v *Verifier) verify(raw string) (*Claims, error) {
	if len(raw) > MaxTokenBytes {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrMalformed, MaxTokenBytes)
	}
	// Only the compact form: an access token is a bearer string, and the
	// JSON serializations would only widen what the parser accepts. Only
	// base64url characters and the two dots: encoding/base64 skips \r and
	// \n, so without this check one token would have many spellings.
	if strings.Count(raw, ".") != 2 || !isCompactJWS(raw) {
		return nil, fmt.Errorf("%w: not a compact JWS", ErrMalformed)
	}
	jws, err := jose.ParseSignedCompact(raw, allowedAlgs)
	if err != nil {
		if _, ok := errors.AsType[*jose.ErrUnexpectedSignatureAlgorithm](err); ok {
			return nil, fmt.Errorf("%w: %v", ErrAlgorithm, err)
		}
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if len(jws.Signatures) != 1 {
		return nil, fmt.Errorf("%w: want one signature", ErrMalformed)
	}
	h := jws.Signatures[0].Protected
	if err := checkHeader(h); err != nil {
		return nil, err
	}
	now := v.cfg.Now()
	key, ok := v.ring.lookup(h.KeyID, now)
	if !ok {
		return nil, fmt.Errorf("%w: kid %q", ErrUnknownKey, truncate(h.KeyID))
	}
	payload, err := jws.Verify(key)
	if err != nil {
		return nil, ErrSignature
	}
	c, err := decodeClaims(payload)
	if err != nil {
		return nil, err
	}
	c.KeyID = h.KeyID
	if err := v.checkClaims(c, now); err != nil {
		return nil, err
	}
	return c, nil
}

func isCompactJWS(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// checkHeader accepts exactly the header Aegis writes: alg (already
// checked by the parser), kid and typ. An embedded "jwk", "x5c", "jku" or
// any other parameter is refused rather than ignored, so no future code
// path can be tempted to trust a key the token brings along.
func checkHeader(h jose.Header) error {
	if h.KeyID == "" {
		return fmt.Errorf("%w: no kid", ErrMalformed)
	}
	if h.JSONWebKey != nil || h.Nonce != "" {
		return fmt.Errorf("%w: unexpected header parameters", ErrMalformed)
	}
	for k, val := range h.ExtraHeaders {
		if k != jose.HeaderType {
			return fmt.Errorf("%w: unexpected header parameter %q", ErrMalformed, truncate(string(k)))
		}
		typ, _ := val.(string)
		// RFC 7515 4.1.9: the "application/" prefix may be omitted.
		if !strings.EqualFold(strings.TrimPrefix(strings.ToLower(typ), "application/"), accessTokenType) {
			return fmt.Errorf("%w: typ %q is not %s", ErrMalformed, truncate(typ), accessTokenType)
		}
	}
	if _, ok := h.ExtraHeaders[jose.HeaderType]; !ok {
		return fmt.Errorf("%w: no typ", ErrMalformed)
	}
	return nil
}

// decodeClaims parses the payload strictly enough that every claim the
// checks rely on is present and well-typed.
func decodeClaims(payload []byte) (*Claims, error) {
	var w wireClaims
	dec := json.NewDecoder(bytes.NewReader(payload))
	if err := dec.Decode(&w); err != nil {
		return nil, fmt.Errorf("%w: claims: %v", ErrMalformed, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data after claims", ErrMalformed)
	}
	switch {
	case w.Issuer == "", w.Subject == "", w.ID == "", w.Org == "":
		return nil, fmt.Errorf("%w: missing iss, sub, jti or org", ErrMalformed)
	case w.Expiry == nil, w.IssuedAt == nil:
		return nil, fmt.Errorf("%w: missing exp or iat", ErrMalformed)
	case len(w.Audience) == 0:
		return nil, fmt.Errorf("%w: missing aud", ErrMalformed)
	case !validKind(w.Kind):
		return nil, fmt.Errorf("%w: unknown principal kind", ErrMalformed)
	case w.Permissions != nil && len(w.Permissions) == 0:
		// An empty list would read as "no restriction" after a round trip
		// through omitempty; Aegis never writes one, so refuse it.
		return nil, fmt.Errorf("%w: empty permissions", ErrMalformed)
	}
	c := &Claims{
		Issuer: w.Issuer, Subject: w.Subject, Audience: []string(w.Audience),
		ExpiresAt: w.Expiry.Time(), IssuedAt: w.IssuedAt.Time(),
		ID: w.ID, Kind: w.Kind, Org: w.Org, Project: w.Project,
		Permissions: w.Permissions, ClientID: w.ClientID,
	}
	if w.NotBefore != nil {
		c.NotBefore = w.NotBefore.Time()
	}
	return c, nil
}

func (v *Verifier) checkClaims(c *Claims, now time.Time) error {
	if c.Issuer != v.cfg.Issuer {
		return fmt.Errorf("%w: %q", ErrIssuer, truncate(c.Issuer))
	}
	if !slices.ContainsFunc(c.Audience, func(a string) bool { return slices.Contains(v.cfg.Audience, a) }) {
		return ErrAudience
	}
	// RFC 7519 4.1.4: valid only while now is before exp (plus leeway).
	if !now.Before(c.ExpiresAt.Add(v.cfg.Leeway)) {
		return fmt.Errorf("%w: at %v", ErrExpired, c.ExpiresAt.UTC())
	}
	if !c.NotBefore.IsZero() && now.Add(v.cfg.Leeway).Before(c.NotBefore) {
		return fmt.Errorf("%w: not before %v", ErrNotYetValid, c.NotBefore.UTC())
	}
	if now.Add(v.cfg.Leeway).Before(c.IssuedAt) {
		return fmt.Errorf("%w: issued in the future at %v", ErrNotYetValid, c.IssuedAt.UTC())
	}
	// Retired keys are kept only MaxTTL past their last signature; a longer
	// lived token would outlive its key, so none may exist.
	if c.ExpiresAt.Sub(c.IssuedAt) > v.cfg.MaxTTL {
		return fmt.Errorf("%w: lifetime exceeds %v", ErrMalformed, v.cfg.MaxTTL)
	}
	if v.revs.TokenRevoked(c.ID) {
		return fmt.Errorf("%w: token", ErrRevoked)
	}
	if at, ok := v.revs.PrincipalRevokedAt(c.Subject); ok && revokedBySubject(c.IssuedAt, at) {
		return fmt.Errorf("%w: principal signed out", ErrRevoked)
	}
	return nil
}

// truncate keeps attacker-chosen strings short in error messages.
func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
