package e2e

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"
)

// TestSnapshotSaveRestore is disaster recovery as an operator does it:
// `etcdctl snapshot save` from a live member, `chainfire snapshot status`,
// `chainfire snapshot restore` into a new data dir, and a new member started
// there serves the same keys, revisions, history, leases and hash.
func TestSnapshotSaveRestore(t *testing.T) {
	t.Parallel()
	src := StartServer(t, Options{Name: "origin"})
	if src.Kind() != KindChainfire {
		t.Skip("restore is chainfire's own tool; etcd's is etcdutl")
	}
	ctx := Ctx(t, 2*time.Minute)
	cli := src.Client(t)
	for _, kv := range [][2]string{{"s/a", "1"}, {"s/b", "2"}, {"s/a", "1b"}, {"s/c", "3"}} {
		if _, err := cli.Put(ctx, kv[0], kv[1]); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cli.Delete(ctx, "s/b"); err != nil {
		t.Fatal(err)
	}
	lease, err := cli.Grant(ctx, 600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, "s/leased", "l", clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(ctx, 3); err != nil {
		t.Fatal(err)
	}
	before, err := cli.Get(ctx, "s/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	hashBefore, err := cli.HashKV(ctx, src.Endpoint(), 0)
	if err != nil {
		t.Fatal(err)
	}

	path := filepath.Join(t.TempDir(), "backup.db")
	src.Ctl(t, "snapshot", "save", path)
	if err := src.Stop(); err != nil && !ExitedBySIGTERM(err) {
		t.Fatalf("stop origin: %v", err)
	}

	out, err := exec.CommandContext(ctx, src.Binaries().Server, "snapshot", "status", path, "-w", "json").CombinedOutput()
	if err != nil {
		t.Fatalf("snapshot status: %v\n%s", err, out)
	}
	var status struct {
		Hash     uint32 `json:"hash"`
		Revision int64  `json:"revision"`
		TotalKey int    `json:"totalKey"`
		Leases   int    `json:"leases"`
	}
	if err := json.Unmarshal(out, &status); err != nil {
		t.Fatalf("snapshot status output %q: %v", out, err)
	}
	if status.Revision != before.Header.Revision || status.TotalKey != len(before.Kvs) || status.Leases != 1 || status.Hash != hashBefore.Hash {
		t.Fatalf("snapshot status %+v; origin had revision %d, %d keys, hash %d", status, before.Header.Revision, len(before.Kvs), hashBefore.Hash)
	}

	dst := NewServer(t, Options{Name: "restored"})
	out, err = exec.CommandContext(ctx, src.Binaries().Server, "snapshot", "restore", path, "--data-dir", dst.DataDir).CombinedOutput()
	if err != nil {
		t.Fatalf("snapshot restore: %v\n%s", err, out)
	}
	// Restoring over a member is refused and leaves it alone.
	out, err = exec.CommandContext(ctx, src.Binaries().Server, "snapshot", "restore", path, "--data-dir", dst.DataDir).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "already has a member") {
		t.Fatalf("second restore into the same dir: err %v, output %s", err, out)
	}
	dst.Start()
	dst.WaitReady()
	cli2 := dst.Client(t)
	after, err := cli2.Get(ctx, "s/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if after.Header.Revision != before.Header.Revision || len(after.Kvs) != len(before.Kvs) {
		t.Fatalf("restored revision %d with %d keys, origin %d with %d", after.Header.Revision, len(after.Kvs), before.Header.Revision, len(before.Kvs))
	}
	for i := range before.Kvs {
		if !proto.Equal(before.Kvs[i], after.Kvs[i]) {
			t.Fatalf("key %d: restored %v, origin %v", i, after.Kvs[i], before.Kvs[i])
		}
	}
	hashAfter, err := cli2.HashKV(ctx, dst.Endpoint(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if hashAfter.Hash != hashBefore.Hash || hashAfter.CompactRevision != hashBefore.CompactRevision {
		t.Fatalf("restored HashKV %d (compact %d), origin %d (compact %d)", hashAfter.Hash, hashAfter.CompactRevision, hashBefore.Hash, hashBefore.CompactRevision)
	}
	// History after the compaction point is still there, before it is not.
	if old, err := cli2.Get(ctx, "s/a", clientv3.WithRev(4)); err != nil || len(old.Kvs) != 1 || string(old.Kvs[0].Value) != "1b" {
		t.Fatalf("read at revision 4: %v %v", old, err)
	}
	if _, err := cli2.Get(ctx, "s/a", clientv3.WithRev(2)); err == nil || !strings.Contains(err.Error(), "compacted") {
		t.Fatalf("read below the compaction: %v", err)
	}
	ttl, err := cli2.TimeToLive(ctx, lease.ID, clientv3.WithAttachedKeys())
	if err != nil || ttl.TTL <= 0 || len(ttl.Keys) != 1 || string(ttl.Keys[0]) != "s/leased" {
		t.Fatalf("restored lease: %+v %v", ttl, err)
	}
	put, err := cli2.Put(ctx, "s/new", "n")
	if err != nil || put.Header.Revision != before.Header.Revision+1 {
		t.Fatalf("put after restore: %v at revision %d, want %d", err, put.Header.GetRevision(), before.Header.Revision+1)
	}
	// The restored member is a new cluster, not a copy of the old one.
	if put.Header.ClusterId == before.Header.ClusterId {
		t.Fatal("restored member kept the origin's cluster id")
	}
}
