// Command chainfire runs one Chainfire member: a replicated key-value store
// that speaks the etcd v3 API and takes etcd's flags. Configuration comes
// from flags, then PHOTON_CHAINFIRE_* environment variables, then the TOML
// file named by --config.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/photoncloud/photoncloud/internal/chainfire"
	"github.com/photoncloud/photoncloud/internal/platform"
	"github.com/photoncloud/photoncloud/internal/version"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// run executes the command and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := newCommand(stdout, stderr)
	cmd.SetArgs(args)
	if err := cmd.ExecuteContext(ctx); err != nil {
		fmt.Fprintf(stderr, "chainfire: %v\n", err)
		return 1
	}
	return 0
}

func newCommand(stdout, stderr io.Writer) *cobra.Command {
	o := &options{}
	cmd := &cobra.Command{
		Use:           "chainfire",
		Short:         "Chainfire: the PhotonCloud coordination store (etcd v3 API)",
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
	cmd.AddCommand(newSnapshotCommand(stdout))
	return cmd
}

func serve(cmd *cobra.Command, o *options, stdout, stderr io.Writer) error {
	lg, reg, err := o.server.Setup(cmd.Flags(), stderr)
	if err != nil {
		return err
	}

	cfg := o.config()
	cfg.Logger = lg
	cfg.Registry = reg
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid configuration: %w", err)
	}

	ctx, stop := platform.SignalContext(cmd.Context())
	defer stop()
	srv, err := chainfire.Start(ctx, cfg)
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	fmt.Fprintf(stdout, "chainfire: member %q serving the etcd API at %s\n", cfg.Name, srv.ClientAddr())
	if a := srv.HTTPAddr(); a != "" {
		fmt.Fprintf(stdout, "chainfire: metrics at http://%s/metrics\n", a)
	}
	select {
	case <-ctx.Done():
		lg.Info("shutting down", "cause", context.Cause(ctx))
	case <-srv.Done():
		// Removed from the cluster (exit 0, as etcd), or failed.
		lg.Info("member stopped", "cause", srv.StopCause())
	}
	// Restore default signal handling so a second Ctrl-C kills a stuck shutdown.
	stop()
	if err := srv.Close(); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("close: %w", err)
	}
	return srv.StopCause()
}
