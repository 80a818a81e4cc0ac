package platform

import (
	"log/slog"
	"os"
	"runtime/debug"
	"testing"
)

func TestTuneGC(t *testing.T) {
	old := debug.SetGCPercent(100)
	defer debug.SetGCPercent(old)

	t.Setenv("GOGC", "50")
	TuneGC(slog.New(slog.DiscardHandler))
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("with GOGC set, TuneGC changed the target to %d", got)
	}
}

func TestTuneGCDefault(t *testing.T) {
	old := debug.SetGCPercent(100)
	defer debug.SetGCPercent(old)
	if _, set := os.LookupEnv("GOGC"); set {
		t.Skip("GOGC is set in this environment")
	}
	TuneGC(slog.New(slog.DiscardHandler))
	if got := debug.SetGCPercent(100); got != serverGCPercent {
		t.Fatalf("target after TuneGC = %d, want %d", got, serverGCPercent)
	}
}
