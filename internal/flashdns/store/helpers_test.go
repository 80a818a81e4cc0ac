package store

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"

	flashdnsv1 "github.com/photoncloud/photoncloud/api/flashdns/v1"
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
	opts := Options{Client: chainfiretest.Client(t, addr), Logger: testLogger(), SweepInterval: -1,
		DefaultNameservers: []string{"ns1.example.net", "ns2.example.net"}}
	if mod != nil {
		mod(&opts)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
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
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
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

const (
	web    = "orgs/acme/projects/web"
	other  = "orgs/globex/projects/shop"
	zoneEx = web + "/zones/example.com"
)

func createZone(t *testing.T, s *Store, parent, dnsName string) *flashdnsv1.Zone {
	t.Helper()
	return must[*flashdnsv1.Zone](t)(s.CreateZone(ctxT(t), parent, &flashdnsv1.Zone{DnsName: dnsName}))
}

func rs(name, typ string, ttl uint32, records ...string) *flashdnsv1.RecordSet {
	return &flashdnsv1.RecordSet{Name: name, Type: typ, Ttl: ttl, Records: records}
}

func create(set *flashdnsv1.RecordSet) *flashdnsv1.Change {
	return &flashdnsv1.Change{Action: flashdnsv1.Change_ACTION_CREATE, RecordSet: set}
}

func upsert(set *flashdnsv1.RecordSet) *flashdnsv1.Change {
	return &flashdnsv1.Change{Action: flashdnsv1.Change_ACTION_UPSERT, RecordSet: set}
}

func del(set *flashdnsv1.RecordSet) *flashdnsv1.Change {
	return &flashdnsv1.Change{Action: flashdnsv1.Change_ACTION_DELETE, RecordSet: set}
}

func change(t *testing.T, s *Store, zone string, cs ...*flashdnsv1.Change) *flashdnsv1.Zone {
	t.Helper()
	return must[*flashdnsv1.Zone](t)(s.ChangeRecordSets(ctxT(t), zone, cs, ""))
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
