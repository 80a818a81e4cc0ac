package etcdcompat

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// clientSendLimit is raised above both servers' receive limits so that
// oversized requests reach the server and the server's answer is compared,
// not clientv3's local refusal.
const clientSendLimit = 16 << 20

// backend is one server under test plus the clients the runner uses.
// Requests go through clientv3's connection (with its interceptors) but use
// the raw generated stubs, so every request field can be set.
type backend struct {
	name  string
	addr  string
	cli   *clientv3.Client
	kv    pb.KVClient
	lease pb.LeaseClient
	watch pb.WatchClient
	stop  func() error

	closeOnce sync.Once
	closeErr  error
}

// Close stops the client and the server; later calls return the first result,
// so that an early close and the t.Cleanup close can both run.
func (b *backend) Close() error {
	b.closeOnce.Do(func() {
		if b.cli != nil {
			b.closeErr = b.cli.Close()
		}
		if b.stop != nil {
			if err := b.stop(); err != nil && b.closeErr == nil {
				b.closeErr = err
			}
		}
	})
	return b.closeErr
}

// pair is the reference (etcd) and the candidate (Chainfire) side by side.
type pair struct {
	ref, cand *backend
}

func (p *pair) Close() error {
	err := p.cand.Close()
	if e := p.ref.Close(); e != nil && err == nil {
		err = e
	}
	return err
}

// startPair starts a fresh etcd and a fresh candidate; both are closed by
// t.Cleanup unless the caller closes the pair earlier.
func startPair(tb testing.TB) *pair {
	tb.Helper()
	ref, err := startEtcd(tb, "etcd")
	if err != nil {
		tb.Fatalf("start etcd: %v", err)
	}
	cand, err := startCandidate(tb)
	if err != nil {
		_ = ref.Close()
		tb.Fatalf("start candidate: %v", err)
	}
	p := &pair{ref: ref, cand: cand}
	tb.Cleanup(func() { _ = p.Close() })
	return p
}

// freeURL reserves a loopback port by binding and releasing it. The window in
// which another process could take the port is tiny and acceptable in tests.
func freeURL() (url.URL, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return url.URL{}, fmt.Errorf("reserve port: %w", err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		return url.URL{}, fmt.Errorf("release port: %w", err)
	}
	return url.URL{Scheme: "http", Host: addr}, nil
}

// startEtcd starts an embedded etcd v3.7 with default limits (128 txn ops,
// 1.5 MiB requests) and a quiet logger.
func startEtcd(tb testing.TB, name string) (*backend, error) {
	cfg := embed.NewConfig()
	cfg.Name = name
	cfg.Dir = tb.TempDir()
	curl, err := freeURL()
	if err != nil {
		return nil, err
	}
	purl, err := freeURL()
	if err != nil {
		return nil, err
	}
	cfg.ListenClientUrls = []url.URL{curl}
	cfg.AdvertiseClientUrls = []url.URL{curl}
	cfg.ListenPeerUrls = []url.URL{purl}
	cfg.AdvertisePeerUrls = []url.URL{purl}
	cfg.InitialCluster = name + "=" + purl.String()
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	cfg.Logger = "zap"
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("embed etcd: %w", err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("etcd failed before ready: %w", err)
	case <-time.After(30 * time.Second):
		e.Close()
		return nil, fmt.Errorf("etcd not ready after 30s")
	}
	stop := func() error { e.Close(); return nil }
	b, err := connect(name, e.Clients[0].Addr().String(), stop)
	if err != nil {
		e.Close()
		return nil, err
	}
	return b, nil
}

// connect dials a clientv3 client and waits until the server answers.
func connect(name, addr string, stop func() error) (*backend, error) {
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:          []string{addr},
		DialTimeout:        10 * time.Second,
		MaxCallSendMsgSize: clientSendLimit,
		Logger:             zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("dial %s at %s: %w", name, addr, err)
	}
	conn := cli.ActiveConnection()
	b := &backend{
		name:  name,
		addr:  addr,
		cli:   cli,
		kv:    pb.NewKVClient(conn),
		lease: pb.NewLeaseClient(conn),
		watch: pb.NewWatchClient(conn),
		stop:  stop,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		_, err := b.kv.Range(ctx, &pb.RangeRequest{Key: []byte("x")})
		if err == nil {
			return b, nil
		}
		if ctx.Err() != nil {
			_ = cli.Close()
			return nil, fmt.Errorf("%s at %s never answered a range: %w", name, addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
