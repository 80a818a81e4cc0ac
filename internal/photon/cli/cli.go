// Package cli implements the photon command: the one CLI for PhotonCloud
// users and operators. Its `dev` subcommand runs the platform in one process
// on single-machine defaults, for a first try and for local development.
package cli

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/photoncloud/photoncloud/internal/version"
)

// Run executes photon with args and returns the process exit code. ctx
// cancellation stops long-running subcommands as SIGINT would.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := NewCommand(stdout, stderr)
	cmd.SetArgs(args)
	if err := cmd.ExecuteContext(ctx); err != nil {
		fmt.Fprintf(stderr, "photon: %v\n", err)
		return 1
	}
	return 0
}

// NewCommand returns the photon root command writing to stdout and stderr.
func NewCommand(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "photon",
		Short:         "photon: the PhotonCloud command line",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(newVersionCommand(stdout), newDevCommand(stdout, stderr))
	return root
}

func newVersionCommand(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the PhotonCloud version",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			_, err := fmt.Fprintf(stdout, "photon %s\n", version.String())
			return err
		},
	}
}
