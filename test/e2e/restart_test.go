package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"
)

// TestRestartPreservesData stops the server with SIGTERM and restarts it on
// the same data directory: keys with their revisions and versions, the store
// revision, the cluster and member IDs, leases with their attached keys and
// the compaction revision all survive.
func TestRestartPreservesData(t *testing.T) {
	t.Parallel()
	s := StartServer(t, Options{Name: "restart"})
	ctx := Ctx(t, 2*time.Minute)
	cli := s.Client(t)

	for _, kv := range [][2]string{{"r/a", "1"}, {"r/b", "2"}, {"r/a", "1b"}, {"r/c", "3"}, {"r/x", "v1"}} {
		if _, err := cli.Put(ctx, kv[0], kv[1]); err != nil {
			t.Fatalf("put %s: %v", kv[0], err)
		}
	}
	if _, err := cli.Delete(ctx, "r/b"); err != nil {
		t.Fatalf("delete: %v", err)
	}
	lease, err := cli.Grant(ctx, 600)
	if err != nil {
		t.Fatalf("grant: %v", err)
	}
	if _, err := cli.Put(ctx, "r/leased", "l", clientv3.WithLease(lease.ID)); err != nil {
		t.Fatalf("put with lease: %v", err)
	}
	put, err := cli.Put(ctx, "r/x", "v2")
	if err != nil {
		t.Fatalf("put: %v", err)
	}
	compactRev := put.Header.Revision
	if _, err := cli.Compact(ctx, compactRev); err != nil {
		t.Fatalf("compact: %v", err)
	}
	if _, err := cli.Put(ctx, "r/after-compact", "z"); err != nil {
		t.Fatalf("put: %v", err)
	}

	before, err := cli.Get(ctx, "r/", clientv3.WithPrefix())
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	stBefore, err := cli.Status(ctx, s.Endpoint())
	if err != nil {
		t.Fatalf("status: %v", err)
	}

	s.Restart()
	cli = s.Client(t) // a fresh client: the old one would wait out its reconnect backoff

	after, err := cli.Get(ctx, "r/", clientv3.WithPrefix())
	if err != nil {
		t.Fatalf("get after restart: %v", err)
	}
	if after.Header.Revision != before.Header.Revision {
		t.Errorf("revision after restart %d, want %d", after.Header.Revision, before.Header.Revision)
	}
	if !equalKVs(before.Kvs, after.Kvs) {
		t.Errorf("keys changed across restart:\nbefore %v\nafter  %v", before.Kvs, after.Kvs)
	}
	stAfter, err := cli.Status(ctx, s.Endpoint())
	if err != nil {
		t.Fatalf("status after restart: %v", err)
	}
	if stAfter.Header.ClusterId != stBefore.Header.ClusterId || stAfter.Header.MemberId != stBefore.Header.MemberId {
		t.Errorf("cluster/member ID changed across restart: %x/%x -> %x/%x",
			stBefore.Header.ClusterId, stBefore.Header.MemberId, stAfter.Header.ClusterId, stAfter.Header.MemberId)
	}
	if stAfter.RaftTerm < stBefore.RaftTerm {
		t.Errorf("raft term went back across restart: %d -> %d", stBefore.RaftTerm, stAfter.RaftTerm)
	}

	leases, err := cli.Leases(ctx)
	if err != nil {
		t.Fatalf("leases: %v", err)
	}
	found := false
	for _, l := range leases.Leases {
		found = found || l.ID == lease.ID
	}
	if !found {
		t.Errorf("lease %x not listed after restart: %v", lease.ID, leases.Leases)
	}
	ttl, err := cli.TimeToLive(ctx, lease.ID, clientv3.WithAttachedKeys())
	if err != nil {
		t.Fatalf("timetolive: %v", err)
	}
	if ttl.GrantedTTL != 600 || ttl.TTL < 500 || ttl.TTL > 600 || len(ttl.Keys) != 1 || string(ttl.Keys[0]) != "r/leased" {
		t.Errorf("lease after restart: granted %d ttl %d keys %q, want 600, within (500,600], [r/leased]", ttl.GrantedTTL, ttl.TTL, ttl.Keys)
	}

	if _, err := cli.Get(ctx, "r/x", clientv3.WithRev(compactRev-1)); err == nil || !strings.Contains(err.Error(), "required revision has been compacted") {
		t.Errorf("get below the compaction revision after restart: err %v, want \"required revision has been compacted\"", err)
	}
	if r, err := cli.Get(ctx, "r/x", clientv3.WithRev(compactRev)); err != nil || len(r.Kvs) != 1 || string(r.Kvs[0].Value) != "v2" {
		t.Errorf("get at the compaction revision after restart: %v %v, want r/x=v2", r, err)
	}
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	wresp, ok := <-cli.Watch(wctx, "r/x", clientv3.WithRev(compactRev-1))
	if !ok || wresp.CompactRevision != compactRev {
		t.Errorf("watch below the compaction revision after restart: compact_revision %d (ok %v), want %d", wresp.CompactRevision, ok, compactRev)
	}
	if _, err := cli.Compact(ctx, compactRev-1); err == nil || !strings.Contains(err.Error(), "required revision has been compacted") {
		t.Errorf("compact below the compaction revision after restart: err %v, want \"required revision has been compacted\"", err)
	}

	// etcdctl sees the same, and the store keeps counting from where it was.
	wantOut(t, "etcdctl get after restart", s.Ctl(t, "get", "r/a"), "r/a\n1b\n")
	p, err := cli.Put(ctx, "r/new", "n")
	if err != nil {
		t.Fatalf("put after restart: %v", err)
	}
	if p.Header.Revision != before.Header.Revision+1 {
		t.Errorf("first put after restart at revision %d, want %d", p.Header.Revision, before.Header.Revision+1)
	}
	if _, err := cli.Revoke(ctx, lease.ID); err != nil {
		t.Fatalf("revoke after restart: %v", err)
	}
	if r, err := cli.Get(ctx, "r/leased"); err != nil || len(r.Kvs) != 0 {
		t.Errorf("get of a revoked lease's key after restart: %v %v, want nothing", r, err)
	}
}

func equalKVs(a, b []*mvccpb.KeyValue) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !proto.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}
