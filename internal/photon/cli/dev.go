package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"golang.org/x/oauth2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	aegisv1 "github.com/photoncloud/photoncloud/api/aegis/v1"
	aegisclient "github.com/photoncloud/photoncloud/client/aegis"
	"github.com/photoncloud/photoncloud/internal/aegis"
	"github.com/photoncloud/photoncloud/internal/chainfire"
	"github.com/photoncloud/photoncloud/internal/platform"
)

type devOptions struct {
	dataDir       string
	clientAddr    string
	peerAddr      string
	httpAddr      string
	aegisGRPCAddr string
	aegisHTTPAddr string
	dnsAddr       string
	dnsGRPCAddr   string
	dnsHTTPAddr   string
	logLevel      string
	logFormat     string
}

func newDevCommand(stdout, stderr io.Writer) *cobra.Command {
	o := &devOptions{}
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run PhotonCloud in one process on this machine (Ctrl-C stops it)",
		Long: `dev runs every PhotonCloud component that exists so far in this process,
on loopback addresses, keeping its data under --data-dir so a restart
continues where the last run stopped. Today that is a single-node Chainfire,
Aegis and FlashDNS on it. The first run creates Aegis's admin (password in
<data-dir>/aegis/bootstrap-admin-password), org dev with project default,
and FlashDNS's service account; every run logs the local photon CLI in as
admin. FlashDNS answers DNS on 127.0.0.1:5353 and allows zone transfers
from loopback.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDev(cmd.Context(), o, stdout, stderr)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&o.dataDir, "data-dir", "./photon-data", "directory for all component data")
	fs.StringVar(&o.clientAddr, "chainfire-client-addr", "127.0.0.1:2379", "address of Chainfire's etcd API (port 0 picks a free port)")
	fs.StringVar(&o.peerAddr, "chainfire-peer-addr", "127.0.0.1:2380", "address of Chainfire's peer port (a single node listens on it but never dials it)")
	fs.StringVar(&o.httpAddr, "chainfire-http-addr", "127.0.0.1:2382", "address of Chainfire's HTTP endpoint for /metrics and health")
	fs.StringVar(&o.aegisGRPCAddr, "aegis-grpc-addr", "127.0.0.1:7010", "address of Aegis's gRPC API")
	fs.StringVar(&o.aegisHTTPAddr, "aegis-http-addr", "127.0.0.1:7011", "address of Aegis's HTTP endpoint (OAuth2, OIDC discovery, JSON API, metrics)")
	fs.StringVar(&o.dnsAddr, "dns-addr", "127.0.0.1:5353", "address FlashDNS answers DNS on (UDP and TCP)")
	fs.StringVar(&o.dnsGRPCAddr, "flashdns-grpc-addr", "127.0.0.1:7020", "address of FlashDNS's gRPC API")
	fs.StringVar(&o.dnsHTTPAddr, "flashdns-http-addr", "127.0.0.1:7021", "address of FlashDNS's HTTP endpoint (JSON API, metrics)")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&o.logFormat, "log-format", "text", "log format: text or json")
	return cmd
}

func runDev(ctx context.Context, o *devOptions, stdout, stderr io.Writer) error {
	lg, err := platform.NewLogger(stderr, o.logLevel, o.logFormat)
	if err != nil {
		return err
	}
	dir := filepath.Join(o.dataDir, "chainfire")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	// One registry for the process; each component gets it injected.
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	cfg := chainfire.Config{
		Name:             "dev",
		DataDir:          dir,
		ListenClientURLs: []string{"http://" + o.clientAddr},
		// A single node records its peer URL but never dials it.
		ListenPeerURLs: []string{"http://" + o.peerAddr},
		ListenHTTPURLs: []string{"http://" + o.httpAddr},
		Logger:         lg.With("component", "chainfire"),
		Registry:       reg,
	}
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("chainfire config: %w", err)
	}

	ctx, stop := platform.SignalContext(ctx)
	defer stop()
	cf, err := chainfire.Start(ctx, cfg)
	if err != nil {
		return fmt.Errorf("start chainfire: %w", err)
	}
	addr := cf.ClientAddr()
	fmt.Fprintf(stdout, "chainfire: etcd API at %s (etcdctl --endpoints %s), metrics at http://%s/metrics\n", addr, addr, cf.HTTPAddr())

	ag, adminToken, err := startDevAegis(ctx, o, addr, lg, reg, stdout)
	if err != nil {
		_ = cf.Close()
		return err
	}
	aegisTarget := target{url: "http://" + ag.HTTPAddr(), endpoint: ag.GRPCAddr()}
	fd, err := startDevFlashDNS(ctx, o, addr, aegisTarget, adminToken, lg, reg, stdout)
	if err != nil {
		_ = ag.Close()
		_ = cf.Close()
		return err
	}
	fmt.Fprintf(stdout, "photon dev: data in %s; press Ctrl-C to stop\n", o.dataDir)
	select {
	case <-ctx.Done():
	case err = <-ag.Err():
		lg.Error("aegis stopped", "err", err)
	case err = <-fd.Err():
		lg.Error("flashdns stopped", "err", err)
	}
	stop() // a second Ctrl-C kills a stuck shutdown
	fmt.Fprintln(stdout, "photon dev: stopping")
	if cerr := fd.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("stop flashdns: %w", cerr))
	}
	if cerr := ag.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("stop aegis: %w", cerr))
	}
	if cerr := cf.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("stop chainfire: %w", cerr))
	}
	fmt.Fprintln(stdout, "photon dev: stopped")
	return err
}

// Names photon dev creates for a newcomer to act in at once.
const (
	devOrg     = "dev"
	devProject = "default"
)

// startDevAegis runs Aegis on the dev Chainfire, creates org dev with
// project default, and logs the local CLI in as admin. It returns the
// admin's access token, "" when the CLI could not log in.
func startDevAegis(ctx context.Context, o *devOptions, chainfireAddr string, lg *slog.Logger, reg *prometheus.Registry, stdout io.Writer) (*aegis.Server, string, error) {
	dir := filepath.Join(o.dataDir, "aegis")
	cfg := aegis.Config{
		DataDir:            dir,
		ChainfireEndpoints: []string{chainfireAddr},
		ListenGRPCURLs:     []string{"http://" + o.aegisGRPCAddr},
		ListenHTTPURLs:     []string{"http://" + o.aegisHTTPAddr},
		Out:                stdout,
		Logger:             lg.With("component", "aegis"),
		Registry:           reg,
	}
	ag, err := aegis.Start(ctx, cfg)
	if err != nil {
		return nil, "", fmt.Errorf("start aegis: %w", err)
	}
	aegisURL := "http://" + ag.HTTPAddr()
	fmt.Fprintf(stdout, "aegis: API at %s, OAuth2 and OIDC discovery at %s/.well-known/openid-configuration\n", ag.GRPCAddr(), aegisURL)
	pwFile := filepath.Join(dir, "bootstrap-admin-password")
	b, err := os.ReadFile(pwFile)
	if err != nil {
		// Set up by hand before photon dev ran: nothing to log in with.
		fmt.Fprintf(stdout, "photon dev: %s not found; log in with `photon login --username admin`\n", pwFile)
		return ag, "", nil
	}
	p, err := loginWithPassword(ctx, osEnv(), aegisURL, ag.GRPCAddr(), aegis.AdminUser, strings.TrimSpace(string(b)))
	if err != nil {
		// The admin's password was changed since the first run.
		fmt.Fprintf(stdout, "photon dev: could not log the CLI in as admin (%v); use `photon login`\n", err)
		return ag, "", nil
	}
	if err := ensureDevTenant(ctx, target{url: aegisURL, endpoint: ag.GRPCAddr()}, p.AccessToken); err != nil {
		_ = ag.Close()
		return nil, "", err
	}
	fmt.Fprintf(stdout, "photon dev: the photon CLI is logged in as %s; org %s with project %s is ready (admin password in %s)\n",
		p.Principal, devOrg, devProject, pwFile)
	return ag, p.AccessToken, nil
}

// ensureDevTenant creates org dev and its project default unless they
// exist.
func ensureDevTenant(ctx context.Context, t target, accessToken string) error {
	conn, err := t.dial(aegisclient.TokenCredentials(oauth2.StaticTokenSource(&oauth2.Token{AccessToken: accessToken}), t.useTLS()))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	orgs := aegisv1.NewOrgServiceClient(conn)
	_, err = orgs.CreateOrg(ctx, &aegisv1.CreateOrgRequest{OrgId: devOrg, Org: &aegisv1.Org{DisplayName: "Development"}})
	if err != nil && status.Code(err) != codes.AlreadyExists {
		return fmt.Errorf("create org %s: %w", devOrg, err)
	}
	_, err = orgs.CreateProject(ctx, &aegisv1.CreateProjectRequest{Parent: "orgs/" + devOrg, ProjectId: devProject})
	if err != nil && status.Code(err) != codes.AlreadyExists {
		return fmt.Errorf("create project %s: %w", devProject, err)
	}
	return nil
}
