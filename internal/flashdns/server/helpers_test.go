package server

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	flashdnsv1 "github.com/photoncloud/photoncloud/api/flashdns/v1"
	"github.com/photoncloud/photoncloud/internal/chainfire/chainfiretest"
	"github.com/photoncloud/photoncloud/internal/flashdns/store"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func testLogger() *slog.Logger {
	if os.Getenv("SERVER_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startChainfire starts an in-process single-member Chainfire and returns
// its client address.
func startChainfire(t *testing.T) string {
	t.Helper()
	return chainfiretest.Start(t, nil).ClientAddr()
}

func openStore(t *testing.T, addr string) *store.Store {
	t.Helper()
	cli := chainfiretest.Client(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := store.Open(ctx, store.Options{Client: cli, Logger: testLogger(), SweepInterval: -1,
		DefaultNameservers: []string{"ns1.example.net", "ns2.example.net"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// serve runs the API on a loopback listener with the given server options
// (interceptors) and returns a client connection factory.
func serve(t *testing.T, api *Server, opts ...grpc.ServerOption) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(opts...)
	api.Register(g)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = g.Serve(l)
	}()
	t.Cleanup(func() {
		g.Stop()
		<-done
	})
	return l.Addr().String()
}

func dial(t *testing.T, addr string, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(addr, append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

type clients struct {
	zones   flashdnsv1.ZoneServiceClient
	records flashdnsv1.RecordSetServiceClient
}

func clientsOf(cc *grpc.ClientConn) clients {
	return clients{flashdnsv1.NewZoneServiceClient(cc), flashdnsv1.NewRecordSetServiceClient(cc)}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func wantCode(t *testing.T, err error, want codes.Code) {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Fatalf("got %v (%v), want %v", got, err, want)
	}
}

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func codesOf(err error) codes.Code { return status.Code(err) }
