package platform

import (
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// StoreDialOptions are the gRPC dial options of a service's client of
// Chainfire (clientv3.Config.DialOptions). gRPC's default reconnect
// backoff grows to two minutes; a service whose state and watches live in
// Chainfire must notice Chainfire back within a second or so, because its
// replicas promise to see each other's changes that fast.
func StoreDialOptions() []grpc.DialOption {
	return []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
		Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
		MinConnectTimeout: time.Second,
	})}
}
