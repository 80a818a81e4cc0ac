// Command flashdns runs one FlashDNS replica: authoritative DNS with a
// tenant API, its zones stored in Chainfire and its API authorized by
// Aegis. Configuration comes from flags, then PHOTON_FLASHDNS_*
// environment variables, then the TOML file named by --config.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/photoncloud/photoncloud/internal/flashdns"
	"github.com/photoncloud/photoncloud/internal/platform"
	"github.com/photoncloud/photoncloud/internal/version"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := newCommand(stdout, stderr)
	cmd.SetArgs(args)
	if err := cmd.ExecuteContext(ctx); err != nil {
		fmt.Fprintf(stderr, "flashdns: %v\n", err)
		return 1
	}
	return 0
}

type options struct {
	cfg          flashdns.Config
	server       *platform.ServerFlags // --config, --log-level, --log-format
	transferACL  []string
	tsigKeys     []string
	secretFile   string
	chaosVersion string
}

func newCommand(stdout, stderr io.Writer) *cobra.Command {
	o := &options{}
	cmd := &cobra.Command{
		Use:           "flashdns",
		Short:         "FlashDNS: authoritative DNS with a tenant API, for PhotonCloud",
		Version:       version.String(),
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return serve(cmd, o, stdout, stderr)
		},
	}
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	bindFlags(cmd.Flags(), o)
	return cmd
}

func bindFlags(fs *pflag.FlagSet, o *options) {
	c := &o.cfg
	o.server = platform.AddServerFlags(fs, "flashdns")
	fs.StringSliceVar(&c.ListenGRPCURLs, "listen-grpc-urls", []string{flashdns.DefaultGRPCURL}, "comma-separated URLs to serve the flashdns.v1 gRPC API on")
	fs.StringSliceVar(&c.ListenHTTPURLs, "listen-http-urls", []string{flashdns.DefaultHTTPURL}, "comma-separated URLs for the JSON API under /v1/, /metrics and health")
	fs.StringVar(&c.TLS.CertFile, "cert-file", "", "certificate of the API listeners")
	fs.StringVar(&c.TLS.KeyFile, "key-file", "", "key of the API listeners")
	fs.StringVar(&c.TLS.TrustedCAFile, "trusted-ca-file", "", "CA that signs client certificates of the API")
	fs.BoolVar(&c.TLS.ClientCertAuth, "client-cert-auth", false, "require API client certificates signed by --trusted-ca-file")

	fs.StringSliceVar(&c.DNSAddrs, "dns-addrs", []string{flashdns.DefaultDNSAddr}, "comma-separated host:port addresses to answer DNS on, over UDP and TCP")
	fs.IntVar(&c.DNSSockets, "dns-sockets", 0, "SO_REUSEPORT sockets per DNS address and protocol (0: one per core)")
	fs.StringSliceVar(&o.transferACL, "transfer-allow", nil, "comma-separated networks (CIDR) allowed AXFR and IXFR without TSIG")
	fs.StringArrayVar(&o.tsigKeys, "tsig-key", nil, "TSIG key as [algorithm:]name:base64-secret (default algorithm hmac-sha256); signed transfers are allowed from anywhere; repeatable (prefer the config file: command lines are visible to every user)")
	fs.StringSliceVar(&c.NotifyTargets, "notify", nil, `secondaries to NOTIFY of every serial change, as "host[:port]" or "host[:port] key NAME"`)
	fs.StringSliceVar(&c.DefaultNameservers, "default-nameservers", nil, "apex NS names of zones created without name servers")
	fs.BoolVar(&c.LogQueries, "log-queries", false, "log every DNS query and its answer code (needs --log-level debug)")
	fs.StringVar(&o.chaosVersion, "chaos-version", "FlashDNS "+version.Release, `answer to CHAOS TXT version.bind ("" refuses)`)
	fs.StringVar(&c.ChaosID, "chaos-id", "", `answer to CHAOS TXT id.server ("" refuses)`)

	fs.StringSliceVar(&c.ChainfireEndpoints, "chainfire-endpoints", []string{flashdns.DefaultChainfireEndpoint}, "comma-separated Chainfire client addresses")
	fs.StringVar(&c.ChainfireTLS.CertFile, "chainfire-cert-file", "", "client certificate for Chainfire")
	fs.StringVar(&c.ChainfireTLS.KeyFile, "chainfire-key-file", "", "client key for Chainfire")
	fs.StringVar(&c.ChainfireTLS.TrustedCAFile, "chainfire-trusted-ca-file", "", "CA that signs Chainfire's certificate")

	fs.StringVar(&c.Auth, "auth", flashdns.AuthAegis, `authorization of API calls: "aegis", or "none" for a lab (every caller may change every zone)`)
	fs.StringVar(&c.AegisEndpoint, "aegis-endpoint", flashdns.DefaultAegisEndpoint, "Aegis gRPC address")
	fs.StringVar(&c.AegisIssuer, "aegis-issuer", flashdns.DefaultAegisIssuer, "Aegis issuer URL (its JWKS and token endpoint are under it)")
	fs.StringVar(&c.AegisTLS.CertFile, "aegis-cert-file", "", "client certificate for Aegis (bound to FlashDNS's service account)")
	fs.StringVar(&c.AegisTLS.KeyFile, "aegis-key-file", "", "client key for Aegis")
	fs.StringVar(&c.AegisTLS.TrustedCAFile, "aegis-trusted-ca-file", "", "CA that signs Aegis's certificate")
	fs.StringVar(&c.AegisClientID, "aegis-client-id", "", "client id of a key of FlashDNS's service account (which needs role aegis.authzChecker on system)")
	fs.StringVar(&o.secretFile, "aegis-client-secret-file", "", "file holding that key's client secret (default: $"+flashdns.AegisClientSecretEnv+")")
}

// config turns the flags into a flashdns.Config.
func (o *options) config() (flashdns.Config, error) {
	cfg := o.cfg
	cfg.ChaosVersion = o.chaosVersion
	for _, s := range o.transferACL {
		p, err := netip.ParsePrefix(strings.TrimSpace(s))
		if err != nil {
			return cfg, fmt.Errorf("--transfer-allow %q: %w", s, err)
		}
		cfg.TransferACL = append(cfg.TransferACL, p.Masked())
	}
	for _, s := range o.tsigKeys {
		k, err := flashdns.ParseTSIGKey(s)
		if err != nil {
			// The value holds a secret: name the flag, not the value.
			return cfg, fmt.Errorf("--tsig-key: %w", err)
		}
		cfg.TSIGKeys = append(cfg.TSIGKeys, k)
	}
	cfg.AegisClientSecret = os.Getenv(flashdns.AegisClientSecretEnv)
	if o.secretFile != "" {
		b, err := os.ReadFile(o.secretFile)
		if err != nil {
			return cfg, fmt.Errorf("--aegis-client-secret-file: %w", err)
		}
		cfg.AegisClientSecret = strings.TrimSpace(string(b))
	}
	return cfg, nil
}

func serve(cmd *cobra.Command, o *options, stdout, stderr io.Writer) error {
	lg, reg, err := o.server.Setup(cmd.Flags(), stderr)
	if err != nil {
		return err
	}

	cfg, err := o.config()
	if err != nil {
		return err
	}
	cfg.Logger, cfg.Registry = lg, reg
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid configuration: %w", err)
	}
	ctx, stop := platform.SignalContext(cmd.Context())
	defer stop()
	srv, err := flashdns.Start(ctx, cfg)
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	fmt.Fprintf(stdout, "flashdns: answering DNS at %s (udp+tcp), the flashdns.v1 API at %s\n", srv.DNSAddr(), srv.GRPCAddr())
	var serveErr error
	select {
	case <-ctx.Done():
		lg.Info("shutting down", "cause", context.Cause(ctx))
	case serveErr = <-srv.Err():
		lg.Error("a listener failed", "err", serveErr)
	}
	stop()
	if err := srv.Close(); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("close: %w", err)
	}
	return serveErr
}
