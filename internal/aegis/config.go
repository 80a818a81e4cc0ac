package aegis

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/photoncloud/photoncloud/internal/aegis/authn"
	"github.com/photoncloud/photoncloud/internal/platform"
)

// Defaults of the platform design (ports 7010 and 7011).
const (
	DefaultGRPCURL            = "http://127.0.0.1:7010"
	DefaultHTTPURL            = "http://127.0.0.1:7011"
	DefaultDataDir            = "aegis-data"
	DefaultChainfireEndpoint  = "127.0.0.1:2379"
	DefaultAuditRetention     = 30 * 24 * time.Hour
	DefaultKeyRotation        = 30 * 24 * time.Hour
	BootstrapPasswordEnv      = "PHOTON_BOOTSTRAP_ADMIN_PASSWORD"
	bootstrapPasswordFileName = "bootstrap-admin-password"
)

// Config configures one Aegis replica. Every replica of an installation
// points at the same Chainfire and shares the key-encryption key; the rest
// may differ.
type Config struct {
	// DataDir holds what a replica keeps outside Chainfire: the generated
	// key-encryption key (unless KEKFile names another) and the generated
	// bootstrap password.
	DataDir string
	// ListenGRPCURLs serve the aegis.v1 gRPC API; ListenHTTPURLs serve
	// /oauth2/*, /.well-known/*, the JSON gateway under /v1/, /metrics,
	// /healthz and /readyz.
	ListenGRPCURLs []string
	ListenHTTPURLs []string
	// TLS secures both listeners; with ClientCertAuth a client certificate
	// is required (and one presented always identifies a service account
	// bound to it).
	TLS platform.TLSFiles

	// ChainfireEndpoints are Chainfire (or etcd) client addresses.
	ChainfireEndpoints []string
	// ChainfireTLS is the client side of Chainfire's TLS: the CA that signs
	// its certificate and, with client-cert auth, this replica's
	// certificate.
	ChainfireTLS platform.TLSFiles

	// Issuer is the tokens' "iss" and the OIDC issuer URL, at which
	// /.well-known/openid-configuration is served. Default: the first HTTP
	// listener's URL; set it to the address clients use (every replica the
	// same) when Aegis sits behind a load balancer.
	Issuer string
	// Audience of issued tokens. Default ["photoncloud"].
	Audience []string
	// AccessTokenTTL is the lifetime of an access token. Default 15m.
	AccessTokenTTL time.Duration
	// RefreshIdleTTL and RefreshMaxLifetime bound refresh tokens. Defaults
	// 7 days and 30 days.
	RefreshIdleTTL     time.Duration
	RefreshMaxLifetime time.Duration
	// KEKFile is the key-encryption key that seals the signing keys in
	// Chainfire. Default <DataDir>/kek, created on first start; every
	// replica needs the same one.
	KEKFile string
	// KeyRotation is how often the active signing key is replaced (a new
	// key is staged, published, then activated). Zero means the default of
	// 30 days; negative turns automatic rotation off.
	KeyRotation time.Duration
	// DisablePasswordGrant turns password logins off.
	DisablePasswordGrant bool
	// FederatedIssuers are trusted external OIDC issuers for token
	// exchange.
	FederatedIssuers []authn.FederatedIssuer
	// AuditRetention is how long audit events are kept. Default 30 days.
	AuditRetention time.Duration

	// BootstrapAdminPasswordFile holds the password of the user admin
	// created on the first start. Without it, BootstrapAdminPassword (from
	// the environment) is used; without either, one is generated, printed
	// once to Out and written to <DataDir>/bootstrap-admin-password.
	BootstrapAdminPasswordFile string
	BootstrapAdminPassword     string

	// Out receives the one-time bootstrap password; default io.Discard.
	Out io.Writer
	// Logger receives the replica's logs; default discard.
	Logger *slog.Logger
	// Registry receives the replica's metrics; nil for none.
	Registry *prometheus.Registry
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// EnsureDefaults fills unset fields with their defaults.
func (c *Config) EnsureDefaults() {
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	if len(c.ListenGRPCURLs) == 0 {
		c.ListenGRPCURLs = []string{DefaultGRPCURL}
	}
	if len(c.ChainfireEndpoints) == 0 {
		c.ChainfireEndpoints = []string{DefaultChainfireEndpoint}
	}
	if c.KEKFile == "" {
		c.KEKFile = filepath.Join(c.DataDir, "kek")
	}
	if c.KeyRotation == 0 {
		c.KeyRotation = DefaultKeyRotation
	}
	if c.AuditRetention == 0 {
		c.AuditRetention = DefaultAuditRetention
	}
	if c.Out == nil {
		c.Out = io.Discard
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate reports a configuration that cannot work; call after
// EnsureDefaults.
func (c *Config) Validate() error {
	var errs []error
	if len(c.ListenHTTPURLs) == 0 && c.Issuer == "" {
		errs = append(errs, errors.New("an HTTP listener (--listen-http-urls) or --issuer is required: tokens name their issuer's URL"))
	}
	for _, e := range c.ChainfireEndpoints {
		if strings.TrimSpace(e) == "" {
			errs = append(errs, errors.New("empty Chainfire endpoint"))
		}
	}
	if c.AccessTokenTTL < 0 || c.RefreshIdleTTL < 0 || c.RefreshMaxLifetime < 0 {
		errs = append(errs, errors.New("token lifetimes must not be negative"))
	}
	if c.AuditRetention < time.Hour {
		errs = append(errs, fmt.Errorf("audit retention %v is below the minimum of 1h", c.AuditRetention))
	}
	if c.KeyRotation > 0 && c.KeyRotation < time.Hour {
		errs = append(errs, fmt.Errorf("key rotation period %v is below the minimum of 1h", c.KeyRotation))
	}
	if c.TLS.ClientCertAuth && c.TLS.TrustedCAFile == "" {
		errs = append(errs, errors.New("--client-cert-auth needs --trusted-ca-file"))
	}
	return errors.Join(errs...)
}
