//go:build !etcdcompat_selftest

package etcdcompat

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/photoncloud/photoncloud/internal/chainfire"
)

// candidateName labels the candidate in diffs.
const candidateName = "chainfire"

// startCandidate starts an in-process Chainfire with default limits, so that
// its limits match the embedded etcd's defaults.
func startCandidate(tb testing.TB) (*backend, error) {
	peer, err := freeURL()
	if err != nil {
		return nil, err
	}
	var lg *slog.Logger
	if os.Getenv("ETCDCOMPAT_CHAINFIRE_LOG") != "" {
		lg = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	} else {
		lg = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	cfg := chainfire.Config{
		Name:             "chainfire",
		DataDir:          tb.TempDir(),
		ListenClientURLs: []string{"http://127.0.0.1:0"},
		ListenPeerURLs:   []string{peer.String()},
		ListenHTTPURLs:   []string{"http://127.0.0.1:0"},
		Logger:           lg,
	}
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("chainfire config: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := chainfire.Start(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("chainfire start: %w", err)
	}
	b, err := connect(candidateName, srv.ClientAddr(), srv.Close)
	if err != nil {
		_ = srv.Close()
		return nil, err
	}
	return b, nil
}
