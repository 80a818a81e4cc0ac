package robustness

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestUnsupportedServerDetected pins the contract that keeps `make test`
// green until replication lands: a server that exits saying it cannot do
// multi-member clusters yields an *UnsupportedError (TestRobustness skips),
// and any other early exit is a plain error (TestRobustness fails).
func TestUnsupportedServerDetected(t *testing.T) {
	dir := t.TempDir()
	fake := func(name, script string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"+script+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	bin := fake("unsupported", `echo "chainfire: start member: multi-member clusters are not supported by this release: give --initial-cluster with this member only" >&2; exit 1`)
	c := NewCluster(t, ClusterOptions{Kind: KindChainfire, Binary: bin})
	err := c.Start(ctx)
	var unsupported *UnsupportedError
	if !errors.As(err, &unsupported) || !strings.Contains(unsupported.Line, UnsupportedMarker) {
		t.Errorf("Start = %v, want an *UnsupportedError quoting the server", err)
	}

	bin = fake("broken", `echo "some other failure" >&2; exit 1`)
	c = NewCluster(t, ClusterOptions{Kind: KindChainfire, Binary: bin})
	err = c.Start(ctx)
	if err == nil || errors.As(err, &unsupported) || !strings.Contains(err.Error(), "some other failure") {
		t.Errorf("Start = %v, want a plain error with the server's output", err)
	}
}
