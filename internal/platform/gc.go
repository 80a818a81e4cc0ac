package platform

import (
	"log/slog"
	"os"
	"runtime/debug"
)

// serverGCPercent is the GOGC servers run with unless GOGC is set. Their
// live Go heap is small (bulk data lives off-heap, e.g. in Pebble's cache),
// so at Go's default of 100 the collector runs very often under load and
// takes a large share of the CPU; doubling the target halves that for a few
// MiB more memory.
const serverGCPercent = 200

// TuneGC applies serverGCPercent unless the operator chose GOGC.
func TuneGC(lg *slog.Logger) {
	if _, set := os.LookupEnv("GOGC"); set {
		return
	}
	debug.SetGCPercent(serverGCPercent)
	lg.Debug("garbage collector target set", "gogc", serverGCPercent)
}
