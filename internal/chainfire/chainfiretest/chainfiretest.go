// Package chainfiretest runs a single-member Chainfire inside a test
// process, for the tests of the services whose state lives in it (Aegis,
// FlashDNS, the platform's store helpers). It is a real Chainfire, on
// loopback ports, with its data in the test's temporary directory.
package chainfiretest

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/photoncloud/photoncloud/internal/chainfire"
)

// Start runs a single-member Chainfire until the test ends and returns
// it; its etcd API is at ClientAddr(). It logs to standard error when
// CHAINFIRE_TEST_LOG is set. mod, when not nil, changes the
// configuration before it is checked (a data directory to reopen, a
// logger, a quota).
func Start(t testing.TB, mod func(*chainfire.Config)) *chainfire.Server {
	t.Helper()
	cfg := chainfire.Config{
		Name: "cf", DataDir: t.TempDir(),
		ListenClientURLs: []string{"http://127.0.0.1:0"}, ListenPeerURLs: []string{"http://127.0.0.1:0"},
		ListenHTTPURLs: []string{}, Logger: slog.New(slog.DiscardHandler),
	}
	if os.Getenv("CHAINFIRE_TEST_LOG") != "" {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if mod != nil {
		mod(&cfg)
	}
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("chainfire config: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := chainfire.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("start chainfire: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("stop chainfire: %v", err)
		}
	})
	return srv
}

// Client returns an etcd client of the Chainfire at addr, closed when the
// test ends.
func Client(t testing.TB, addr string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{addr}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatalf("chainfire client: %v", err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}
