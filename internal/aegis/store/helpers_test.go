package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"

	aegisv1 "github.com/photoncloud/photoncloud/api/aegis/v1"
	"github.com/photoncloud/photoncloud/internal/aegis/password"
	"github.com/photoncloud/photoncloud/internal/aegis/policy"
	"github.com/photoncloud/photoncloud/internal/chainfire/chainfiretest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func testLogger() *slog.Logger {
	if os.Getenv("STORE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startChainfire starts an in-process single-member Chainfire and returns
// its client address; both stop at the end of the test.
func startChainfire(t *testing.T) string {
	t.Helper()
	return chainfiretest.Start(t, nil).ClientAddr()
}

// openStore opens a Store with its own client on the Chainfire at addr.
func openStore(t *testing.T, addr string, mod func(*Options)) *Store {
	t.Helper()
	opts := Options{Client: chainfiretest.Client(t, addr), Logger: testLogger(), SweepInterval: -1}
	if mod != nil {
		mod(&opts)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := Open(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("store close: %v", err)
		}
	})
	return s
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
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

func wantErr(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("got error %v, want %v", err, target)
	}
}

// testPHC is a well-formed argon2id hash (of nothing in particular).
func testPHC(n byte) string {
	salt := make([]byte, 16)
	key := make([]byte, 32)
	salt[0], key[0] = n, n
	return (&password.Hash{Memory: 19456, Time: 2, Threads: 1, Salt: salt, Key: key}).String()
}

// eventually polls cond until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// allowed asks s's evaluator whether principal (an API name) may use perm
// on resource.
func allowed(t *testing.T, s *Store, principal, perm, resource string) bool {
	t.Helper()
	sub, err := s.PolicyPrincipal(principal)
	if err != nil {
		return false
	}
	d, err := s.Evaluator().Authorize(context.Background(), policy.Request{Principal: sub, Permission: perm, Resource: resource})
	if err != nil {
		t.Fatal(err)
	}
	return d.Allowed
}

// seed creates org acme with project web and user alice.
func seed(t *testing.T, s *Store) {
	t.Helper()
	ctx := ctxT(t)
	must[*aegisv1.Org](t)(s.CreateOrg(ctx, "acme", &aegisv1.Org{DisplayName: "Acme"}))
	must[*aegisv1.Project](t)(s.CreateProject(ctx, "orgs/acme", "web", nil))
	must[*aegisv1.User](t)(s.CreateUser(ctx, "orgs/acme", "alice", &aegisv1.User{Email: "alice@example.com"}, testPHC(1)))
}

// countKeys counts the keys under prefix in Chainfire.
func countKeys(t *testing.T, cli *clientv3.Client, prefix string) int64 {
	t.Helper()
	resp, err := cli.Get(context.Background(), prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	return resp.Count
}

func dumpKeys(t *testing.T, cli *clientv3.Client, prefix string) []string {
	t.Helper()
	resp, err := cli.Get(context.Background(), prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, kv := range resp.Kvs {
		out = append(out, fmt.Sprintf("%s@%d", kv.Key, kv.ModRevision))
	}
	return out
}
