package platform_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/photoncloud/photoncloud/internal/chainfire/chainfiretest"
	"github.com/photoncloud/photoncloud/internal/platform"
)

func TestStoreProbe(t *testing.T) {
	srv := chainfiretest.Start(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cli, err := platform.DialStore(ctx, platform.StoreConfig{Endpoints: []string{srv.ClientAddr()}})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if err := platform.NewStoreProbe(cli, "/test/readyz", 5*time.Second).Ready(); err != nil {
		t.Fatalf("probe of a serving Chainfire: %v", err)
	}

	// A peer that accepts connections and never answers is what a
	// stopped (SIGSTOP) Chainfire looks like to its clients.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { _ = c.Close() })
		}
	}()
	stuck, err := platform.DialStore(ctx, platform.StoreConfig{Endpoints: []string{silent.Addr().String()}})
	if err != nil {
		t.Fatal(err)
	}
	defer stuck.Close()
	probe := platform.NewStoreProbe(stuck, "/test/readyz", 300*time.Millisecond)
	err = probe.Ready()
	if err == nil || !strings.Contains(err.Error(), "did not answer") {
		t.Fatalf("probe of a silent Chainfire: %v, want a timeout", err)
	}
	if again := probe.Ready(); again == nil || again.Error() != err.Error() {
		t.Fatalf("second probe within a second: %v, want the first result %v", again, err)
	}
}
