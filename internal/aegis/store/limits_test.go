package store

import (
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/photoncloud/photoncloud/internal/aegis/password"
	"github.com/photoncloud/photoncloud/internal/chainfire/chainfiretest"
)

// TestLoginBuckets: two replicas spend from one bucket per user, atomically
// under concurrency; a reset refills it; the key is leased.
func TestLoginBuckets(t *testing.T) {
	addr := startChainfire(t)
	a, b := openStore(t, addr, nil), openStore(t, addr, nil)
	ctx := ctxT(t)
	rate := password.Rate{Burst: 5, Every: time.Minute}
	now := time.Now()
	const key = "0123abcd"

	// Twelve concurrent takes from two replicas: exactly Burst succeed.
	var mu sync.Mutex
	var allowed, refused int
	var wg sync.WaitGroup
	for i := range 12 {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Go(func() {
			wait, err := s.LoginBuckets().Take(ctx, key, rate, now)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				t.Errorf("take: %v", err)
			case wait == 0:
				allowed++
			default:
				refused++
				if wait != time.Minute {
					t.Errorf("refused take waits %v, want 1m", wait)
				}
			}
		})
	}
	wg.Wait()
	if allowed != rate.Burst || refused != 12-rate.Burst {
		t.Fatalf("12 concurrent takes: %d allowed, %d refused; want %d and %d", allowed, refused, rate.Burst, 12-rate.Burst)
	}
	// A minute later one more attempt, at either replica.
	if wait, err := b.LoginBuckets().Take(ctx, key, rate, now.Add(time.Minute)); err != nil || wait != 0 {
		t.Fatalf("take a minute later = %v, %v; want allowed", wait, err)
	}

	cli := chainfiretest.Client(t, addr)
	resp, err := cli.Get(ctx, loginLimitPrefix+key)
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("bucket key: %v, %v", resp, err)
	}
	ttl, err := cli.TimeToLive(ctx, clientv3.LeaseID(resp.Kvs[0].Lease))
	if err != nil || ttl.TTL <= 0 || ttl.TTL > int64((rate.Window()+2*time.Minute)/time.Second) {
		t.Errorf("bucket key lease: %v, %v; want one ending a little after the bucket is full", ttl, err)
	}

	if err := a.LoginBuckets().Reset(ctx, key); err != nil {
		t.Fatal(err)
	}
	if wait, err := b.LoginBuckets().Take(ctx, key, rate, now.Add(time.Minute)); err != nil || wait != 0 {
		t.Fatalf("take after a reset = %v, %v; want allowed", wait, err)
	}
}
