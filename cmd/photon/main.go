// Command photon is the PhotonCloud command line for users and operators;
// `photon dev` runs the platform in one process. The commands live in
// internal/photon/cli so tests can run them in-process.
package main

import (
	"context"
	"os"

	"github.com/photoncloud/photoncloud/internal/photon/cli"
)

func main() {
	os.Exit(cli.Run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}
