package platform

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// StoreConfig is how a service reaches Chainfire, where its state lives.
type StoreConfig struct {
	Endpoints []string
	// TLS is used when it names a certificate or a trusted CA.
	TLS TLSFiles
	// MaxCallSendMsgSize bounds one request; 0 keeps the client's default
	// (2 MiB).
	MaxCallSendMsgSize int
}

// DialStore returns a client of Chainfire. The client lives until it is
// closed, whatever becomes of ctx.
//
// gRPC's default reconnect backoff grows to two minutes; a service whose
// state and watches live in Chainfire must notice Chainfire back within a
// second or so, because its replicas promise to see each other's changes
// that fast. The client therefore retries at least once a second.
func DialStore(ctx context.Context, c StoreConfig) (*clientv3.Client, error) {
	var tlsCfg *tls.Config
	if c.TLS.Enabled() || c.TLS.TrustedCAFile != "" {
		var err error
		if tlsCfg, err = c.TLS.ClientConfig(""); err != nil {
			return nil, fmt.Errorf("chainfire TLS: %w", err)
		}
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: c.Endpoints, TLS: tlsCfg, DialTimeout: 5 * time.Second,
		MaxCallSendMsgSize: c.MaxCallSendMsgSize,
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: time.Second,
		})},
		Logger: zap.NewNop(), Context: context.WithoutCancel(ctx),
	})
	if err != nil {
		return nil, fmt.Errorf("chainfire client: %w", err)
	}
	return cli, nil
}

// StoreProbe tells whether Chainfire answers, for a service's /readyz. A
// connection can stay up while Chainfire does not answer (the process is
// stopped, or its member lost quorum), so the probe makes a linearizable
// read of one key: it succeeds only when the cluster can serve writes.
// Results are kept for a second, so that frequent probes of the service
// do not become load on Chainfire.
type StoreProbe struct {
	cli     *clientv3.Client
	key     string
	timeout time.Duration

	mu      sync.Mutex // held across a probe, so concurrent callers share it
	checked time.Time
	err     error
}

// NewStoreProbe probes with reads of key (which need not exist; a service
// reads one under its own prefix, where Chainfire's auth lets it read),
// each bounded by timeout.
func NewStoreProbe(cli *clientv3.Client, key string, timeout time.Duration) *StoreProbe {
	return &StoreProbe{cli: cli, key: key, timeout: timeout}
}

// storeProbeReuse is how long one probe's result answers later callers.
const storeProbeReuse = time.Second

// Ready returns nil when Chainfire answered a linearizable read within the
// probe's timeout, at most storeProbeReuse ago.
func (p *StoreProbe) Ready() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.checked.IsZero() && time.Since(p.checked) < storeProbeReuse {
		return p.err
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.timeout)
	defer cancel()
	_, err := p.cli.Get(ctx, p.key, clientv3.WithCountOnly())
	switch {
	case err == nil:
		p.err = nil
	case errors.Is(err, context.DeadlineExceeded):
		p.err = fmt.Errorf("chainfire did not answer within %v", p.timeout)
	default:
		p.err = fmt.Errorf("chainfire: %w", err)
	}
	p.checked = time.Now()
	return p.err
}
