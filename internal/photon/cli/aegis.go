package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/oauth2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// Defaults of the Aegis endpoints: where `photon dev` runs Aegis.
const (
	defaultAegisURL      = "http://127.0.0.1:7011"
	defaultAegisEndpoint = "127.0.0.1:7010"
	defaultTimeout       = 30 * time.Second
)

// publicClientID is the OAuth2 client Aegis has built in for the CLI: a
// public client (no secret) allowed the password and refresh grants.
const publicClientID = "photon-cli"

// Environment variables that stand in for the connection flags, so that a
// shell (or CI job) can point every photon command at one Aegis.
const (
	envAegisURL      = "PHOTON_AEGIS_URL"
	envAegisEndpoint = "PHOTON_AEGIS_ENDPOINT"
	envCACert        = "PHOTON_AEGIS_CACERT"
	envInsecure      = "PHOTON_AEGIS_INSECURE"
	envConfigDir     = "PHOTON_CONFIG_DIR"
)

// cliEnv is what the Aegis commands take from the process environment,
// injected so that tests need not touch the real home directory.
type cliEnv struct {
	getenv    func(string) string
	configDir func() (string, error) // the user's config dir, e.g. ~/.config
	now       func() time.Time
}

func osEnv() cliEnv {
	return cliEnv{getenv: os.Getenv, configDir: os.UserConfigDir, now: time.Now}
}

// store returns the credential store: $PHOTON_CONFIG_DIR, or photon/ under
// the user's config dir.
func (e cliEnv) store() (*credStore, error) {
	if d := e.getenv(envConfigDir); d != "" {
		return &credStore{dir: d}, nil
	}
	base, err := e.configDir()
	if err != nil {
		return nil, fmt.Errorf("find the user config dir (set %s): %w", envConfigDir, err)
	}
	return &credStore{dir: base + string(os.PathSeparator) + "photon"}, nil
}

// connOptions are the flags every Aegis command shares.
type connOptions struct {
	aegisURL string
	endpoint string
	cacert   string
	insecure bool
	timeout  time.Duration
	flags    *pflag.FlagSet // to tell flags given from defaults
}

func addConnFlags(fs *pflag.FlagSet, o *connOptions) {
	o.flags = fs
	fs.StringVar(&o.aegisURL, "aegis-url", defaultAegisURL,
		"Aegis HTTP base URL, serving /oauth2/token and discovery; unset: $"+envAegisURL+", else the last login's, else")
	fs.StringVar(&o.endpoint, "aegis-endpoint", defaultAegisEndpoint,
		"Aegis gRPC address host:port; unset: $"+envAegisEndpoint+", else the one saved at login, else")
	fs.StringVar(&o.cacert, "cacert", "",
		"PEM file of CA certificates to verify Aegis's TLS certificate; also turns on TLS for gRPC (or $"+envCACert+", or the one saved at login)")
	fs.BoolVar(&o.insecure, "insecure", false,
		"allow sending passwords and tokens without TLS to a host that is not loopback (or $"+envInsecure+")")
	fs.DurationVar(&o.timeout, "timeout", defaultTimeout, "give up on Aegis after this long")
}

// target is a resolved Aegis to talk to.
type target struct {
	url      string // normalized HTTP base URL; also the profile key
	endpoint string // gRPC host:port
	cacert   string
	insecure bool
	timeout  time.Duration
}

// changed reports whether a flag was given on the command line.
func (o *connOptions) changed(name string) bool {
	return o.flags != nil && o.flags.Changed(name)
}

// resolve picks each connection setting from, in order: the flag, the
// environment, the saved profile, the default. The profile is the one
// named by the URL, or without any URL the one of the last login, so that
// `photon login --aegis-url X` once makes later commands talk to X.
func (o *connOptions) resolve(env cliEnv, f *credentialsFile) (target, error) {
	var t target
	var err error
	rawURL, fromUser := o.aegisURL, o.changed("aegis-url")
	if !fromUser {
		if v := env.getenv(envAegisURL); v != "" {
			rawURL, fromUser = v, true
		}
	}
	var p *profile
	switch {
	case fromUser:
		if t.url, err = normalizeURL(rawURL); err != nil {
			return target{}, err
		}
		p = f.profile(t.url)
	case f != nil && f.Current != "" && f.profile(f.Current) != nil:
		t.url, p = f.Current, f.profile(f.Current)
	default:
		if t.url, err = normalizeURL(rawURL); err != nil {
			return target{}, err
		}
		p = f.profile(t.url)
	}

	t.endpoint = o.pick("aegis-endpoint", o.endpoint, env.getenv(envAegisEndpoint), p.endpoint())
	if _, _, err := net.SplitHostPort(t.endpoint); err != nil {
		return target{}, fmt.Errorf("--aegis-endpoint %q must be host:port: %w", t.endpoint, err)
	}
	t.cacert = o.pick("cacert", o.cacert, env.getenv(envCACert), p.cacert())
	t.insecure = o.insecure
	if !o.changed("insecure") && env.getenv(envInsecure) != "" {
		if t.insecure, err = parseBool(env.getenv(envInsecure)); err != nil {
			return target{}, fmt.Errorf("%s: %w", envInsecure, err)
		}
	}
	t.timeout = o.timeout
	if t.timeout <= 0 {
		return target{}, errors.New("--timeout must be positive")
	}
	if err := t.checkPlaintext(); err != nil {
		return target{}, err
	}
	return t, nil
}

// pick is flag, else env, else saved, else the flag's default.
func (o *connOptions) pick(flag, flagValue, envValue, saved string) string {
	switch {
	case o.changed(flag):
		return flagValue
	case envValue != "":
		return envValue
	case saved != "":
		return saved
	}
	return flagValue
}

func parseBool(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "1", "true", "yes", "on":
		return true, nil
	case "0", "false", "no", "off":
		return false, nil
	}
	return false, fmt.Errorf("%q is not a boolean", s)
}

// normalizeURL checks an Aegis base URL and strips what would make two
// spellings of one Aegis two profiles.
func normalizeURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("--aegis-url: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("--aegis-url %q must be an http:// or https:// URL", raw)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("--aegis-url %q must not have credentials, a query or a fragment", raw)
	}
	return u.Scheme + "://" + strings.ToLower(u.Host) + strings.TrimRight(u.EscapedPath(), "/"), nil
}

// useTLS: gRPC follows the HTTP side, and a CA bundle means TLS.
func (t target) useTLS() bool {
	return strings.HasPrefix(t.url, "https://") || t.cacert != ""
}

// checkPlaintext refuses to send passwords and bearer tokens in the clear
// beyond this machine unless asked to: a mistyped http:// URL would
// otherwise leak them to the network.
func (t target) checkPlaintext() error {
	if t.insecure {
		return nil
	}
	if !strings.HasPrefix(t.url, "https://") {
		u, _ := url.Parse(t.url)
		if !isLoopback(u.Hostname()) {
			return fmt.Errorf("refusing plaintext HTTP to %s: use https:// or --insecure", u.Host)
		}
	}
	if !t.useTLS() {
		host, _, _ := net.SplitHostPort(t.endpoint)
		if !isLoopback(host) {
			return fmt.Errorf("refusing plaintext gRPC to %s: use --cacert (TLS) or --insecure", t.endpoint)
		}
	}
	return nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// tlsConfig is the client TLS configuration for both transports.
func (t target) tlsConfig() (*tls.Config, error) { return clientTLS(t.cacert, "--cacert") }

// clientTLS trusts the CA certificates of the PEM file cacert (the system's
// without one); flag names where the file came from in errors.
func clientTLS(cacert, flag string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if cacert != "" {
		pem, err := os.ReadFile(cacert)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", flag, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s %s holds no PEM certificate", flag, cacert)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// httpClient talks to the OAuth2 endpoints.
func (t target) httpClient() (*http.Client, error) {
	tc, err := t.tlsConfig()
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tc
	return &http.Client{
		Transport: tr,
		Timeout:   t.timeout,
		// A token endpoint never redirects; following a 307 would send
		// the password to wherever it points.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}, nil
}

// oauthConfig is the photon-cli client of this Aegis. AuthStyleInParams
// because auto-detection retries a refused request with the other style,
// which would count one wrong password twice against the login rate limit.
func (t target) oauthConfig(scopes ...string) *oauth2.Config {
	return &oauth2.Config{
		ClientID: publicClientID,
		Endpoint: oauth2.Endpoint{
			TokenURL:  t.url + "/oauth2/token",
			AuthStyle: oauth2.AuthStyleInParams,
		},
		Scopes: scopes,
	}
}

// oauthContext makes the oauth2 package use client for its requests.
func oauthContext(ctx context.Context, client *http.Client) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, client)
}

// dial opens a gRPC client connection to Aegis; creds, when not nil, put
// the bearer token on every call.
func (t target) dial(creds credentials.PerRPCCredentials) (*grpc.ClientConn, error) {
	opts := []grpc.DialOption{grpc.WithUserAgent("photon-cli")}
	if t.useTLS() {
		tc, err := t.tlsConfig()
		if err != nil {
			return nil, err
		}
		opts = append(opts, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	} else {
		opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	}
	if creds != nil {
		opts = append(opts, grpc.WithPerRPCCredentials(creds))
	}
	cc, err := grpc.NewClient(t.endpoint, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to aegis at %s: %w", t.endpoint, err)
	}
	return cc, nil
}

// aegisCommands returns the Aegis commands of the photon root command.
func aegisCommands(env cliEnv) []*cobra.Command {
	return []*cobra.Command{
		newLoginCommand(env),
		newLogoutCommand(env),
		newWhoAmICommand(env),
		newIAMCommand(env),
	}
}
