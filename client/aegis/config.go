package aegis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"

	aegisv1 "github.com/photoncloud/photoncloud/api/aegis/v1"
)

// Check is what one call needs: a permission on a resource.
type Check struct {
	// Permission is `service:resource:verb`, e.g. `flashdns:records:update`.
	Permission string
	// Resource is the resource name the permission is used on, e.g.
	// `orgs/acme/projects/web/zones/example.com`; for create and list, the
	// parent scope.
	Resource string
	// Labels are the resource's labels as the service knows them; Aegis
	// conditions see them as resource.labels. Optional.
	Labels map[string]string
	// AuthenticatedOnly lets any authenticated caller through without
	// asking Aegis, for methods that act only on the caller itself (e.g. a
	// "who am I"). Permission and Resource must then be empty. It is a
	// separate flag, not an empty Permission, so that a rule that forgot to
	// fill in the permission fails closed.
	AuthenticatedOnly bool
}

// RuleFunc maps a call to the access it needs. fullMethod is
// "/package.Service/Method". For unary and server-streaming calls req is
// the request message; for client- and bidi-streaming calls it is nil
// (decide from the method alone, and check individual messages in the
// handler with [Authorizer.Authorize]).
//
// An error that is a gRPC status is returned to the caller as is (e.g.
// InvalidArgument for a malformed resource name, Unimplemented for a
// method without a rule); any other error becomes InvalidArgument.
type RuleFunc func(ctx context.Context, fullMethod string, req any) (Check, error)

// Config configures an Authorizer. Issuer, Authz, Rules and exactly one of
// JWKSURL and Authn are required; every other field has a default.
type Config struct {
	// Issuer is the expected "iss" of access tokens: Aegis's issuer URL,
	// e.g. "https://aegis.example.com:7011".
	Issuer string
	// Audience lists the accepted "aud" values; a token naming any of them
	// is accepted. Default ["photoncloud"], Aegis's default audience.
	Audience []string

	// JWKSURL is where the JWKS is fetched over HTTP, normally
	// Issuer + "/.well-known/jwks.json".
	JWKSURL string
	// HTTPClient fetches JWKSURL. Default: a client with FetchTimeout.
	HTTPClient *http.Client
	// Authn, instead of JWKSURL, fetches the JWKS with AuthnService.GetJWKS,
	// for services that reach Aegis only over gRPC.
	Authn aegisv1.AuthnServiceClient

	// Authz is Aegis's AuthzService on a connection that authenticates as
	// the service itself (see the package documentation). Required.
	Authz aegisv1.AuthzServiceClient
	// Rules maps each non-public method to the access it needs. Required.
	Rules RuleFunc
	// PublicMethods need no credential at all: full method names
	// ("/grpc.health.v1.Health/Check") or service prefixes ending in "/"
	// ("/grpc.health.v1.Health/"). Handlers of public methods see no
	// Principal.
	PublicMethods []string

	// CertPrincipal, if set, accepts callers that present no bearer token
	// but a verified mTLS client certificate: it returns the service
	// account the certificate is bound to, or (nil, nil) if none. The
	// principal's Name is then given to Authorize as the subject. A bearer
	// token, when present, always takes precedence: it speaks for the end
	// user, the certificate only for the hop.
	CertPrincipal func(ctx context.Context, id *CertIdentity) (*Principal, error)
	// DenialCode chooses the code of a denial; default [TenantDenialCode]
	// (NotFound outside the caller's tenant, PermissionDenied inside).
	DenialCode func(p *Principal, c Check) codes.Code
	// SourceIP returns the end client's IP address for Authorize (conditions
	// on request.source_ip). Default: the IP of the gRPC peer. Override it
	// behind a trusted proxy or gateway that forwards the client address.
	SourceIP func(ctx context.Context) string

	// Leeway tolerates clock skew in exp, nbf and iat. Default 30s, at most
	// 5m.
	Leeway time.Duration
	// KeyRefreshInterval is how often the JWKS is fetched in the
	// background, so that staged keys are known before they sign. Default
	// 5 minutes.
	KeyRefreshInterval time.Duration
	// MinKeyRefreshInterval is the least time between two fetches caused by
	// tokens with an unknown kid, so that callers presenting made-up key ids
	// cannot make the service hammer Aegis. Default 10s.
	MinKeyRefreshInterval time.Duration
	// FetchTimeout bounds one JWKS fetch. Default 5s.
	FetchTimeout time.Duration
	// AuthorizeTimeout bounds one Authorize call (the caller's deadline
	// applies too). Default 2s.
	AuthorizeTimeout time.Duration
	// DecisionTTL is the longest a decision is cached; Aegis's cache_ttl
	// can only shorten it, and a decision never outlives its token. Default
	// 1s: a binding change or a revocation is enforced by every Aegis
	// replica within a second, and a service must not stretch that.
	DecisionTTL time.Duration
	// DecisionCacheSize bounds the number of cached decisions. Default
	// 10000; negative disables the cache.
	DecisionCacheSize int
	// TokenCacheSize bounds the number of verified tokens remembered (by
	// SHA-256) to skip the signature check when a token is presented again.
	// Default 10000; negative disables the cache.
	TokenCacheSize int

	// Logger receives refresh failures and Aegis outages (Warn) and
	// decisions (Debug). Default slog.Default().
	Logger *slog.Logger
	// Registry, if set, receives the metrics (aegis_client_*).
	Registry prometheus.Registerer
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// maxLeeway matches the bound Aegis's own verifier uses; revocation entries
// are kept only that long past a token's expiry.
const maxLeeway = 5 * time.Minute

// EnsureDefaults fills zero fields with their defaults.
func (c *Config) EnsureDefaults() {
	if len(c.Audience) == 0 {
		c.Audience = []string{"photoncloud"}
	}
	if c.Leeway == 0 {
		c.Leeway = 30 * time.Second
	}
	if c.KeyRefreshInterval == 0 {
		c.KeyRefreshInterval = 5 * time.Minute
	}
	if c.MinKeyRefreshInterval == 0 {
		c.MinKeyRefreshInterval = 10 * time.Second
	}
	if c.FetchTimeout == 0 {
		c.FetchTimeout = 5 * time.Second
	}
	if c.AuthorizeTimeout == 0 {
		c.AuthorizeTimeout = 2 * time.Second
	}
	if c.DecisionTTL == 0 {
		c.DecisionTTL = time.Second
	}
	if c.DecisionCacheSize == 0 {
		c.DecisionCacheSize = 10000
	}
	if c.TokenCacheSize == 0 {
		c.TokenCacheSize = 10000
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: c.FetchTimeout}
	}
	if c.DenialCode == nil {
		c.DenialCode = TenantDenialCode
	}
	if c.SourceIP == nil {
		c.SourceIP = peerIP
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate reports an unusable configuration; call after EnsureDefaults.
func (c *Config) Validate() error {
	switch {
	case c.Issuer == "":
		return errors.New("aegis client: issuer is required")
	case c.Authz == nil:
		return errors.New("aegis client: authz client is required")
	case c.Rules == nil:
		return errors.New("aegis client: rules are required")
	case (c.JWKSURL == "") == (c.Authn == nil):
		return errors.New("aegis client: exactly one of JWKS URL and authn client is required")
	case c.Leeway < 0 || c.Leeway > maxLeeway:
		return fmt.Errorf("aegis client: leeway must be in [0, %v], got %v", maxLeeway, c.Leeway)
	case c.KeyRefreshInterval < time.Second:
		return fmt.Errorf("aegis client: key refresh interval must be at least 1s, got %v", c.KeyRefreshInterval)
	case c.MinKeyRefreshInterval < 0:
		return fmt.Errorf("aegis client: min key refresh interval must not be negative, got %v", c.MinKeyRefreshInterval)
	case c.FetchTimeout <= 0 || c.AuthorizeTimeout <= 0:
		return errors.New("aegis client: timeouts must be positive")
	case c.DecisionTTL < 0:
		return fmt.Errorf("aegis client: decision TTL must not be negative, got %v", c.DecisionTTL)
	}
	for _, a := range c.Audience {
		if a == "" {
			return errors.New("aegis client: audience must not be empty")
		}
	}
	if c.JWKSURL != "" {
		u, err := url.Parse(c.JWKSURL)
		if err != nil {
			return fmt.Errorf("aegis client: jwks url: %w", err)
		}
		if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return fmt.Errorf("aegis client: jwks url %q must be an http(s) URL", c.JWKSURL)
		}
	}
	for _, m := range c.PublicMethods {
		if !strings.HasPrefix(m, "/") {
			return fmt.Errorf("aegis client: public method %q must start with '/'", m)
		}
	}
	return nil
}
