package chainfire

import (
	"context"
	"fmt"
	"sync"
	"testing"
)

// BenchmarkClusterPut is 64 clients writing through the leader of an
// in-process 3-member cluster: with the members' CPU all in one profile, it
// shows where a replicated write spends it.
func BenchmarkClusterPut(b *testing.B) {
	c := newTestCluster(b, 3)
	cli := c.client(c.leader())
	val := string(make([]byte, 256))
	ctx := context.Background()
	b.ResetTimer()
	var wg sync.WaitGroup
	per := b.N/64 + 1
	for w := range 64 {
		wg.Go(func() {
			for i := range per {
				if _, err := cli.Put(ctx, fmt.Sprintf("k%d-%d", w, i%100), val); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// BenchmarkClusterPutSerial is one client writing through the leader: each
// put waits for a replication round trip and two fsyncs.
func BenchmarkClusterPutSerial(b *testing.B) {
	c := newTestCluster(b, 3)
	cli := c.client(c.leader())
	val := string(make([]byte, 256))
	ctx := context.Background()
	b.ResetTimer()
	for i := range b.N {
		if _, err := cli.Put(ctx, fmt.Sprintf("k%d", i%100), val); err != nil {
			b.Fatal(err)
		}
	}
}
