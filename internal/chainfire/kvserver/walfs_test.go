package kvserver

import (
	"os"
	"path/filepath"
	"testing"
)

// The write-ahead log must be extended ahead of the writes, or every fsync
// also journals a new file size.
func TestWALPreallocatedAndReplayable(t *testing.T) {
	s, opts := startServer(t)
	mustPut(t, s, "k", "v1", 0)
	logs, err := filepath.Glob(filepath.Join(dbDir(opts.DataDir), "*.log"))
	if err != nil || len(logs) == 0 {
		t.Fatalf("no write-ahead log in %s: %v", dbDir(opts.DataDir), err)
	}
	var biggest int64
	for _, l := range logs {
		fi, err := os.Stat(l)
		if err != nil {
			t.Fatal(err)
		}
		biggest = max(biggest, fi.Size())
	}
	if biggest < 1<<20 {
		t.Fatalf("largest log is %d bytes; want it preallocated to at least 1 MiB", biggest)
	}
	// The zeroes past the last record read as the end of the log.
	mustPut(t, s, "k", "v2", 0)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = startWith(t, opts)
	defer s.Close()
	if v, ok := mustGet(t, s, "k"); !ok || v != "v2" {
		t.Fatalf("after restart k = %q, %v; want v2", v, ok)
	}
}
