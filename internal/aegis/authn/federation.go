package authn

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
)

// maxIDTokenBytes bounds an external ID token; real ones are a few KiB.
const maxIDTokenBytes = 16 << 10

// discoveryRetry is how long a failed discovery fetch of an external issuer
// is remembered, so that an unreachable issuer costs one fetch per interval
// rather than one per exchange request.
const discoveryRetry = 10 * time.Second

// discoveryTimeout bounds the first fetch of an issuer's discovery document,
// which runs under the issuer's lock.
const discoveryTimeout = 10 * time.Second

// errUntrustedIssuer: the ID token's issuer is not configured.
var errUntrustedIssuer = errors.New("untrusted issuer")

// federation verifies ID tokens of the configured external issuers with
// go-oidc.
type federation struct {
	client  *http.Client
	now     func() time.Time
	issuers map[string]*federatedIssuer // read-only after newFederation
}

// federatedIssuer holds one issuer's go-oidc verifier, created on first use:
// the server must start even when an external issuer is down, and the
// verifier needs the issuer's discovery document.
type federatedIssuer struct {
	cfg FederatedIssuer

	mu       sync.Mutex
	verifier *oidc.IDTokenVerifier
	retryAt  time.Time
	lastErr  error
}

func newFederation(cfgs []FederatedIssuer, client *http.Client, now func() time.Time) *federation {
	f := &federation{client: client, now: now, issuers: make(map[string]*federatedIssuer, len(cfgs))}
	for _, c := range cfgs {
		f.issuers[c.Issuer] = &federatedIssuer{cfg: c}
	}
	return f
}

// verify checks raw, an ID token, and returns its issuer and the subject
// (SubjectClaim) that federated identities name. The token's unverified
// "iss" only chooses which configured issuer's keys and rules verify it;
// go-oidc then checks signature, issuer, audience and expiry.
func (f *federation) verify(ctx context.Context, raw string) (issuer, subject string, err error) {
	iss, err := peekIssuer(raw)
	if err != nil {
		return "", "", err
	}
	fi, ok := f.issuers[iss]
	if !ok {
		return "", "", errUntrustedIssuer
	}
	v, err := fi.get(ctx, f)
	if err != nil {
		return "", "", err
	}
	tok, err := v.Verify(ctx, raw)
	if err != nil {
		return "", "", fmt.Errorf("verify id token: %w", err)
	}
	subject = tok.Subject
	if fi.cfg.SubjectClaim != "sub" {
		var claims map[string]any
		if err := tok.Claims(&claims); err != nil {
			return "", "", fmt.Errorf("read id token claims: %w", err)
		}
		subject, _ = claims[fi.cfg.SubjectClaim].(string)
	}
	if subject == "" {
		return "", "", fmt.Errorf("id token has no %s claim", fi.cfg.SubjectClaim)
	}
	return fi.cfg.Issuer, subject, nil
}

// get returns the issuer's verifier, fetching its discovery document the
// first time. The lock is held across the fetch so that a burst of
// exchanges makes one request.
func (fi *federatedIssuer) get(ctx context.Context, f *federation) (*oidc.IDTokenVerifier, error) {
	fi.mu.Lock()
	defer fi.mu.Unlock()
	if fi.verifier != nil {
		return fi.verifier, nil
	}
	if f.now().Before(fi.retryAt) {
		return nil, fi.lastErr
	}
	dctx, cancel := context.WithTimeout(ctx, discoveryTimeout)
	defer cancel()
	// go-oidc keeps the client from this context for its key-set fetches
	// (without the cancellation), so later requests use it too.
	p, err := oidc.NewProvider(oidc.ClientContext(dctx, f.client), fi.cfg.Issuer)
	if err != nil {
		fi.lastErr = fmt.Errorf("discover issuer %s: %w", fi.cfg.Issuer, err)
		fi.retryAt = f.now().Add(discoveryRetry)
		return nil, fi.lastErr
	}
	fi.verifier = p.Verifier(&oidc.Config{
		ClientID:             fi.cfg.Audience,
		SupportedSigningAlgs: fi.cfg.SigningAlgs,
		Now:                  f.now,
	})
	return fi.verifier, nil
}

// peekIssuer reads the "iss" claim of a compact JWS without verifying it.
func peekIssuer(raw string) (string, error) {
	if len(raw) > maxIDTokenBytes {
		return "", errors.New("id token too long")
	}
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return "", errors.New("id token is not a compact JWS")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", fmt.Errorf("id token payload: %w", err)
	}
	var c struct {
		Issuer string `json:"iss"`
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return "", fmt.Errorf("id token claims: %w", err)
	}
	if c.Issuer == "" {
		return "", errors.New("id token has no issuer")
	}
	return c.Issuer, nil
}
