// Package cli implements the photon command: the one CLI for PhotonCloud
// users and operators. Its `dev` subcommand runs the platform in one process
// on single-machine defaults, for a first try and for local development.
package cli

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/photoncloud/photoncloud/internal/version"
)

// Run executes photon with args and returns the process exit code. ctx
// cancellation stops long-running subcommands as SIGINT would.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return RunIO(ctx, args, os.Stdin, stdout, stderr)
}

// RunIO is Run reading stdin from stdin (e.g. for --password-stdin in
// in-process tests). The exit code is 0 on success and 1 on error, unless
// the command chose another (photon iam check: 1 denied, 2 error).
func RunIO(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd := NewCommand(stdout, stderr)
	cmd.SetIn(stdin)
	cmd.SetArgs(args)
	return exitStatus(cmd.ExecuteContext(ctx), stderr)
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
	root.AddCommand(aegisCommands(osEnv())...)
	root.AddCommand(newDNSCommand(osEnv()))
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
