// Package version reports which build of PhotonCloud is running, for
// `photon version` and every binary's --version.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Release is the PhotonCloud release this tree will become.
const Release = "0.1.0-dev"

// String returns the release, the VCS revision when the build recorded one,
// and the Go toolchain, e.g. "0.1.0-dev (rev 1a2b3c4d5e6f, go1.26.8 linux/amd64)".
func String() string {
	rev := ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				rev = "rev " + s.Value[:12] + ", "
			}
		}
	}
	return fmt.Sprintf("%s (%s%s %s/%s)", Release, rev, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
