package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/photoncloud/photoncloud/internal/chainfire/kvserver"
)

// newSnapshotCommand is the offline snapshot tool, as etcdutl's.
func newSnapshotCommand(stdout io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "snapshot",
		Short: "Inspect and restore snapshot files saved with `etcdctl snapshot save`",
	}
	var dataDir string
	restore := &cobra.Command{
		Use:   "restore FILE --data-dir DIR",
		Short: "Create a new member's data dir from a snapshot",
		Long: "Restore writes the snapshot's keys, history and leases into a new data dir. Start chainfire on it\n" +
			"with the flags of the new cluster (--name, --initial-cluster, ...): it bootstraps a new cluster\n" +
			"with new ids that serves the snapshot's data.",
		Args: cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			if dataDir == "" {
				return fmt.Errorf("--data-dir is required")
			}
			info, err := kvserver.Restore(args[0], dataDir)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "restored %s into %s: revision %d, %d keys, %d leases\n", args[0], dataDir, info.Revision, info.Keys, info.Leases)
			return nil
		},
	}
	restore.Flags().StringVar(&dataDir, "data-dir", "", "directory to create the member's data in (must not hold a member)")

	var format string
	status := &cobra.Command{
		Use:   "status FILE",
		Short: "Verify a snapshot and show its revision, keys and hash",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			info, err := kvserver.SnapshotStatus(args[0])
			if err != nil {
				return err
			}
			switch format {
			case "json":
				return json.NewEncoder(stdout).Encode(map[string]any{
					"hash": info.HashKV, "revision": info.Revision, "compactRevision": info.CompactRevision,
					"totalKey": info.Keys, "leases": info.Leases,
				})
			case "table":
				tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "HASH\tREVISION\tCOMPACT REVISION\tTOTAL KEYS\tLEASES")
				fmt.Fprintf(tw, "%x\t%d\t%d\t%d\t%d\n", info.HashKV, info.Revision, info.CompactRevision, info.Keys, info.Leases)
				return tw.Flush()
			default:
				return fmt.Errorf("-w must be table or json, got %q", format)
			}
		},
	}
	status.Flags().StringVarP(&format, "write-out", "w", "table", "output format: table or json")
	cmd.AddCommand(restore, status)
	return cmd
}
