// Command aegis runs one Aegis replica: identity, tokens and authorization
// for PhotonCloud, stored in Chainfire. Configuration comes from flags,
// then PHOTON_AEGIS_* environment variables, then the TOML file named by
// --config.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/photoncloud/photoncloud/internal/aegis"
	"github.com/photoncloud/photoncloud/internal/aegis/authn"
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
		fmt.Fprintf(stderr, "aegis: %v\n", err)
		return 1
	}
	return 0
}

type options struct {
	cfg         aegis.Config
	server      *platform.ServerFlags // --config, --log-level, --log-format
	federations []string
}

func newCommand(stdout, stderr io.Writer) *cobra.Command {
	o := &options{}
	cmd := &cobra.Command{
		Use:           "aegis",
		Short:         "Aegis: identity, tokens and authorization for PhotonCloud",
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
	o.server = platform.AddServerFlags(fs, "aegis")
	fs.StringVar(&c.DataDir, "data-dir", aegis.DefaultDataDir, "directory of the replica's local files (generated key-encryption key and bootstrap password)")
	fs.StringSliceVar(&c.ListenGRPCURLs, "listen-grpc-urls", []string{aegis.DefaultGRPCURL}, "comma-separated URLs to serve the aegis.v1 gRPC API on")
	fs.StringSliceVar(&c.ListenHTTPURLs, "listen-http-urls", []string{aegis.DefaultHTTPURL}, "comma-separated URLs for /oauth2/token, /.well-known/*, the JSON API under /v1/, /metrics and health")
	fs.StringVar(&c.TLS.CertFile, "cert-file", "", "certificate of the gRPC and HTTP listeners")
	fs.StringVar(&c.TLS.KeyFile, "key-file", "", "key of the gRPC and HTTP listeners")
	fs.StringVar(&c.TLS.TrustedCAFile, "trusted-ca-file", "", "CA that signs client certificates (service accounts authenticating with mTLS)")
	fs.BoolVar(&c.TLS.ClientCertAuth, "client-cert-auth", false, "require client certificates signed by --trusted-ca-file")
	fs.StringSliceVar(&c.ChainfireEndpoints, "chainfire-endpoints", []string{aegis.DefaultChainfireEndpoint}, "comma-separated Chainfire client addresses")
	fs.StringVar(&c.ChainfireTLS.CertFile, "chainfire-cert-file", "", "client certificate for Chainfire")
	fs.StringVar(&c.ChainfireTLS.KeyFile, "chainfire-key-file", "", "client key for Chainfire")
	fs.StringVar(&c.ChainfireTLS.TrustedCAFile, "chainfire-trusted-ca-file", "", "CA that signs Chainfire's certificate")
	fs.StringVar(&c.Issuer, "issuer", "", "issuer URL of the tokens, where clients reach /.well-known/openid-configuration (default: the first HTTP listener; the same on every replica behind a load balancer)")
	fs.StringSliceVar(&c.Audience, "audience", nil, `audiences of issued tokens (default "photoncloud")`)
	fs.DurationVar(&c.AccessTokenTTL, "access-token-ttl", 0, "lifetime of access tokens (default 15m)")
	fs.DurationVar(&c.RefreshIdleTTL, "refresh-idle-ttl", 0, "how long an unused refresh token stays valid (default 168h)")
	fs.DurationVar(&c.RefreshMaxLifetime, "refresh-max-lifetime", 0, "how long a login lasts through refreshes (default 720h)")
	fs.StringVar(&c.KEKFile, "kek-file", "", "key-encryption key of the signing keys stored in Chainfire (default <data-dir>/kek, created if missing; every replica needs the same)")
	fs.DurationVar(&c.KeyRotation, "key-rotation", aegis.DefaultKeyRotation, "how often the signing key is rotated; a negative value turns rotation off")
	fs.BoolVar(&c.DisablePasswordGrant, "disable-password-grant", false, "refuse password logins (federation and service accounts only)")
	fs.StringSliceVar(&o.federations, "federated-issuer", nil, `trusted external OIDC issuer for token exchange, as "issuer=URL;audience=CLIENT_ID[;subject-claim=CLAIM]"; repeatable`)
	fs.DurationVar(&c.AuditRetention, "audit-retention", aegis.DefaultAuditRetention, "how long audit events are kept")
	fs.StringVar(&c.BootstrapAdminPasswordFile, "bootstrap-admin-password-file", "", "password of the admin user created on the first start (default: $"+aegis.BootstrapPasswordEnv+", else generated and printed once)")
}

// parseFederation reads one --federated-issuer value.
func parseFederation(v string) (authn.FederatedIssuer, error) {
	var f authn.FederatedIssuer
	for part := range strings.SplitSeq(v, ";") {
		k, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return f, fmt.Errorf("--federated-issuer %q: %q is not key=value", v, part)
		}
		switch k {
		case "issuer":
			f.Issuer = val
		case "audience":
			f.Audience = val
		case "subject-claim":
			f.SubjectClaim = val
		default:
			return f, fmt.Errorf("--federated-issuer %q: unknown key %q (want issuer, audience, subject-claim)", v, k)
		}
	}
	if f.Issuer == "" || f.Audience == "" {
		return f, fmt.Errorf("--federated-issuer %q: issuer and audience are required", v)
	}
	return f, nil
}

func serve(cmd *cobra.Command, o *options, stdout, stderr io.Writer) error {
	lg, reg, err := o.server.Setup(cmd.Flags(), stderr)
	if err != nil {
		return err
	}

	cfg := o.cfg
	for _, v := range o.federations {
		f, err := parseFederation(v)
		if err != nil {
			return err
		}
		cfg.FederatedIssuers = append(cfg.FederatedIssuers, f)
	}
	cfg.BootstrapAdminPassword = os.Getenv(aegis.BootstrapPasswordEnv)
	cfg.Logger, cfg.Registry, cfg.Out = lg, reg, stdout
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid configuration: %w", err)
	}
	ctx, stop := platform.SignalContext(cmd.Context())
	defer stop()
	srv, err := aegis.Start(ctx, cfg)
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	fmt.Fprintf(stdout, "aegis: serving the aegis.v1 API at %s\n", srv.GRPCAddr())
	if a := srv.HTTPAddr(); a != "" {
		fmt.Fprintf(stdout, "aegis: OAuth2 and OIDC discovery at %s/.well-known/openid-configuration\n", srv.Issuer())
	}
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
