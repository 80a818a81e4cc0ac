package kvserver

import (
	"context"
	"fmt"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// BenchmarkPutSerial is one client writing one key at a time: every put waits
// for its own fsync, so this measures the per-request overhead of the write
// path around the disk (propose, raft loop, apply loop, reply).
func BenchmarkPutSerial(b *testing.B) {
	opts := testOptions(b.TempDir())
	opts.SnapshotCount = 10000
	s := startWith(b, opts)
	defer s.Close()
	val := make([]byte, 256)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.Put(ctx, &pb.PutRequest{Key: fmt.Appendf(nil, "key%05d", i%10000), Value: val}); err != nil {
			b.Fatal(err)
		}
	}
}
