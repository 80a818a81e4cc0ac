package token

import (
	"errors"
	"fmt"
	"net/url"
	"time"
)

// MaxLeeway bounds Config.Leeway. Revocation entries for single tokens are
// kept until exp + MaxLeeway, which is only safe if no verifier accepts a
// token for longer than that after it expired.
const MaxLeeway = 5 * time.Minute

// Config is shared by [OpenKeyring], [NewIssuer] and [NewVerifier]; give all
// three the same value. Every field documents its default; only Issuer is
// required.
type Config struct {
	// Issuer is the "iss" claim and the OIDC issuer identifier: the URL at
	// which /.well-known/openid-configuration is served, without a trailing
	// slash, e.g. "https://aegis.example.com". Required.
	Issuer string
	// Audience lists the audiences Aegis issues tokens for. Issued tokens
	// carry Audience[0] unless the grant names others; the verifier accepts
	// a token naming any of them. Default ["photoncloud"].
	Audience []string
	// AccessTTL is the lifetime of an access token. Default 15 minutes.
	AccessTTL time.Duration
	// MaxTTL bounds the lifetime of any access token, including ones issued
	// with an explicit TTL. A retired signing key is kept for MaxTTL +
	// Leeway + RetireGrace after it stopped signing, and the verifier
	// refuses tokens whose lifetime exceeds MaxTTL, so that bound is real.
	// Default 1 hour.
	MaxTTL time.Duration
	// Leeway tolerates clock skew between replicas and clients in exp, nbf
	// and iat checks. Default 30 seconds; at most MaxLeeway. (Zero means
	// the default so that EnsureDefaults stays idempotent; 1ns is none.)
	Leeway time.Duration
	// RetireGrace extends how long a retired key keeps verifying, to cover
	// replicas that have not yet seen a rotation and still sign with the
	// old key (Chainfire watches deliver within a second; this is generous).
	// Default 5 minutes.
	RetireGrace time.Duration
	// VerifyCacheSize is how many verified tokens the Verifier remembers
	// (by SHA-256 of the token) so that a bearer token presented again
	// skips JSON parsing and the Ed25519 signature check (~100 µs of CPU on
	// the reference machine, against ~2 µs for a hit). Time, revocation and
	// key checks still run on every hit. Default 10000 (a few MB); a
	// negative value disables the cache.
	VerifyCacheSize int
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// EnsureDefaults fills zero fields with their defaults.
func (c *Config) EnsureDefaults() {
	if len(c.Audience) == 0 {
		c.Audience = []string{"photoncloud"}
	}
	if c.AccessTTL == 0 {
		c.AccessTTL = 15 * time.Minute
	}
	if c.MaxTTL == 0 {
		c.MaxTTL = max(time.Hour, c.AccessTTL)
	}
	if c.Leeway == 0 {
		c.Leeway = 30 * time.Second
	}
	if c.RetireGrace == 0 {
		c.RetireGrace = 5 * time.Minute
	}
	if c.VerifyCacheSize == 0 {
		c.VerifyCacheSize = 10000
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate reports an unusable configuration; call after EnsureDefaults.
func (c *Config) Validate() error {
	if c.Issuer == "" {
		return errors.New("token issuer is required")
	}
	u, err := url.Parse(c.Issuer)
	if err != nil {
		return fmt.Errorf("token issuer: %w", err)
	}
	// OIDC Discovery 1.0 section 3: the issuer is an https URL without query
	// or fragment. http is allowed because tests and `photon dev` serve on
	// loopback without TLS; the server decides whether to allow it.
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("token issuer %q must be an http(s) URL without user, query or fragment", c.Issuer)
	}
	if c.Issuer[len(c.Issuer)-1] == '/' {
		return fmt.Errorf("token issuer %q must not end with a slash", c.Issuer)
	}
	for _, a := range c.Audience {
		if a == "" {
			return errors.New("token audience must not be empty")
		}
	}
	switch {
	case c.AccessTTL < time.Second:
		return fmt.Errorf("token access TTL must be at least 1s, got %v", c.AccessTTL)
	case c.MaxTTL < c.AccessTTL:
		return fmt.Errorf("token max TTL %v is below the access TTL %v", c.MaxTTL, c.AccessTTL)
	case c.Leeway < 0 || c.Leeway > MaxLeeway:
		return fmt.Errorf("token leeway must be in [0, %v], got %v", MaxLeeway, c.Leeway)
	case c.RetireGrace < 0:
		return fmt.Errorf("token retire grace must not be negative, got %v", c.RetireGrace)
	}
	return nil
}

// retention is how long a retired key keeps verifying after it stopped
// signing: the last token it signed expires at most MaxTTL later, is
// accepted for Leeway more, and replicas that missed the rotation may have
// signed with it for up to RetireGrace.
func (c *Config) retention() time.Duration {
	return c.MaxTTL + c.Leeway + c.RetireGrace
}

func (c Config) prepared() (Config, error) {
	c.Audience = append([]string(nil), c.Audience...)
	c.EnsureDefaults()
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}
