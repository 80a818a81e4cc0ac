package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/photoncloud/photoncloud/internal/chainfire"
	"github.com/photoncloud/photoncloud/internal/platform"
)

type devOptions struct {
	dataDir    string
	clientAddr string
	httpAddr   string
	logLevel   string
	logFormat  string
}

func newDevCommand(stdout, stderr io.Writer) *cobra.Command {
	o := &devOptions{}
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run PhotonCloud in one process on this machine (Ctrl-C stops it)",
		Long: `dev runs every PhotonCloud component that exists so far in this process,
on loopback addresses, keeping its data under --data-dir so a restart
continues where the last run stopped. Today that is a single-node Chainfire.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDev(cmd.Context(), o, stdout, stderr)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&o.dataDir, "data-dir", "./photon-data", "directory for all component data")
	fs.StringVar(&o.clientAddr, "chainfire-client-addr", "127.0.0.1:2379", "address of Chainfire's etcd API (port 0 picks a free port)")
	fs.StringVar(&o.httpAddr, "chainfire-http-addr", "127.0.0.1:2382", "address of Chainfire's HTTP endpoint for /metrics and health")
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
		ListenPeerURLs: []string{"http://127.0.0.1:2380"},
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
	fmt.Fprintf(stdout, "photon dev: data in %s; press Ctrl-C to stop\n", o.dataDir)
	<-ctx.Done()
	stop() // a second Ctrl-C kills a stuck shutdown
	fmt.Fprintln(stdout, "photon dev: stopping")
	if err := cf.Close(); err != nil {
		return fmt.Errorf("stop chainfire: %w", err)
	}
	fmt.Fprintln(stdout, "photon dev: stopped")
	return nil
}
