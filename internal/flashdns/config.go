package flashdns

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/photoncloud/photoncloud/internal/flashdns/dnsserver"
	"github.com/photoncloud/photoncloud/internal/platform"
)

// Defaults of the platform design (ports 7020, 7021 and 53).
const (
	DefaultGRPCURL           = "http://127.0.0.1:7020"
	DefaultHTTPURL           = "http://127.0.0.1:7021"
	DefaultDNSAddr           = ":53"
	DefaultChainfireEndpoint = "127.0.0.1:2379"
	DefaultAegisEndpoint     = "127.0.0.1:7010"
	DefaultAegisIssuer       = "http://127.0.0.1:7011"
	// AegisClientSecretEnv holds the secret of FlashDNS's service account
	// key when no file names it (a secret does not belong on a command
	// line, where every user of the machine can read it).
	AegisClientSecretEnv = "PHOTON_FLASHDNS_AEGIS_CLIENT_SECRET"
)

// Authorization modes.
const (
	// AuthAegis authenticates every API call with an Aegis token and asks
	// Aegis whether it is allowed. The default.
	AuthAegis = "aegis"
	// AuthNone accepts every API call as an anonymous administrator: for a
	// lab without Aegis, never for a shared installation.
	AuthNone = "none"
)

// Config configures one FlashDNS replica. Every replica of an
// installation points at the same Chainfire; the rest may differ.
type Config struct {
	// ListenGRPCURLs serve the flashdns.v1 gRPC API; ListenHTTPURLs serve
	// the JSON gateway under /v1/, /metrics, /healthz and /readyz.
	ListenGRPCURLs []string
	ListenHTTPURLs []string
	// TLS secures the API listeners.
	TLS platform.TLSFiles

	// DNSAddrs are the UDP and TCP addresses DNS is answered on.
	DNSAddrs []string
	// DNSSockets is the number of SO_REUSEPORT sockets per address and
	// protocol; 0 means one per core.
	DNSSockets int
	// TransferACL are the networks (CIDRs) allowed AXFR and IXFR without
	// TSIG.
	TransferACL []netip.Prefix
	// TSIGKeys may sign zone transfers (allowed from anywhere) and sign
	// the NOTIFY messages sent to secondaries.
	TSIGKeys []TSIGKey
	// NotifyTargets are the secondaries told of every serial change:
	// "host[:port]", optionally followed by " key NAME" to sign the NOTIFY
	// with that TSIG key.
	NotifyTargets []string
	// DefaultNameservers are the apex NS names of a zone created without
	// any.
	DefaultNameservers []string
	// LogQueries logs every DNS query and its rcode at debug level.
	LogQueries bool
	// ChaosVersion and ChaosID answer CHAOS TXT version.bind and
	// id.server; empty refuses them.
	ChaosVersion string
	ChaosID      string

	// ChainfireEndpoints are Chainfire (or etcd) client addresses.
	ChainfireEndpoints []string
	// ChainfireTLS is the client side of Chainfire's TLS.
	ChainfireTLS platform.TLSFiles

	// Auth is AuthAegis or AuthNone.
	Auth string
	// AegisEndpoint is Aegis's gRPC address; AegisIssuer its issuer URL
	// (tokens are verified against <issuer>/.well-known/jwks.json and the
	// service account's token comes from <issuer>/oauth2/token).
	AegisEndpoint string
	AegisIssuer   string
	// AegisTLS is the client side of TLS to Aegis: its CA and, to
	// authenticate with a certificate bound to FlashDNS's service
	// account, a client certificate.
	AegisTLS platform.TLSFiles
	// AegisClientID and AegisClientSecret are a key of FlashDNS's service
	// account, which needs role aegis.authzChecker on system. Without
	// them, FlashDNS authenticates to Aegis with its client certificate.
	AegisClientID     string
	AegisClientSecret string

	// Logger receives the replica's logs; default discard.
	Logger *slog.Logger
	// Registry receives the replica's metrics; nil for none.
	Registry *prometheus.Registry
}

// TSIGKey is a shared secret for TSIG (RFC 8945). It is the DNS server's
// own type, so that a key is parsed and checked by one parser, the one
// that also signs with it.
type TSIGKey = dnsserver.TSIGKey

// ParseTSIGKey reads a key in dig's -y form, [algorithm:]name:secret,
// where algorithm defaults to hmac-sha256.
func ParseTSIGKey(s string) (TSIGKey, error) { return dnsserver.ParseTSIGKey(s) }

// EnsureDefaults fills unset fields with their defaults.
func (c *Config) EnsureDefaults() {
	if len(c.ListenGRPCURLs) == 0 {
		c.ListenGRPCURLs = []string{DefaultGRPCURL}
	}
	if len(c.DNSAddrs) == 0 {
		c.DNSAddrs = []string{DefaultDNSAddr}
	}
	if len(c.ChainfireEndpoints) == 0 {
		c.ChainfireEndpoints = []string{DefaultChainfireEndpoint}
	}
	if c.Auth == "" {
		c.Auth = AuthAegis
	}
	if c.AegisEndpoint == "" {
		c.AegisEndpoint = DefaultAegisEndpoint
	}
	if c.AegisIssuer == "" {
		c.AegisIssuer = DefaultAegisIssuer
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports a configuration that cannot work; call after
// EnsureDefaults.
func (c *Config) Validate() error {
	var errs []error
	for _, a := range c.DNSAddrs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			errs = append(errs, fmt.Errorf("DNS address %q: %w", a, err))
		}
	}
	if c.DNSSockets < 0 || c.DNSSockets > 64 {
		errs = append(errs, fmt.Errorf("DNS sockets per address %d: want 0 (one per core) to 64", c.DNSSockets))
	}
	for _, e := range c.ChainfireEndpoints {
		if strings.TrimSpace(e) == "" {
			errs = append(errs, errors.New("empty Chainfire endpoint"))
		}
	}
	if err := dnsserver.ValidateTSIGKeys(c.TSIGKeys); err != nil {
		errs = append(errs, err)
	}
	switch c.Auth {
	case AuthAegis:
		if (c.AegisClientID == "") != (c.AegisClientSecret == "") {
			errs = append(errs, errors.New("an Aegis client id needs its secret and the other way round"))
		}
		if c.AegisClientID == "" && !c.AegisTLS.Enabled() {
			errs = append(errs, errors.New("FlashDNS needs a credential for Aegis: a service account key (--aegis-client-id and $"+
				AegisClientSecretEnv+" or --aegis-client-secret-file) or a client certificate (--aegis-cert-file, --aegis-key-file)"))
		}
	case AuthNone:
	default:
		errs = append(errs, fmt.Errorf("auth mode %q: want %q or %q", c.Auth, AuthAegis, AuthNone))
	}
	if c.TLS.ClientCertAuth && c.TLS.TrustedCAFile == "" {
		errs = append(errs, errors.New("--client-cert-auth needs --trusted-ca-file"))
	}
	return errors.Join(errs...)
}
