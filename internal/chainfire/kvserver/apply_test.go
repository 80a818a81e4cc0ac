package kvserver

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/photoncloud/photoncloud/internal/chainfire/lease"
	"github.com/photoncloud/photoncloud/internal/chainfire/mvcc"

	"github.com/photoncloud/photoncloud/internal/chainfire/snapshot"
)

func cmpValue(k string, r pb.Compare_CompareResult, v string) *pb.Compare {
	return &pb.Compare{Key: []byte(k), Target: pb.Compare_VALUE, Result: r, TargetUnion: &pb.Compare_Value{Value: []byte(v)}}
}

func cmpInt64(k string, target pb.Compare_CompareTarget, r pb.Compare_CompareResult, v int64) *pb.Compare {
	c := &pb.Compare{Key: []byte(k), Target: target, Result: r}
	switch target {
	case pb.Compare_VERSION:
		c.TargetUnion = &pb.Compare_Version{Version: v}
	case pb.Compare_CREATE:
		c.TargetUnion = &pb.Compare_CreateRevision{CreateRevision: v}
	case pb.Compare_MOD:
		c.TargetUnion = &pb.Compare_ModRevision{ModRevision: v}
	case pb.Compare_LEASE:
		c.TargetUnion = &pb.Compare_Lease{Lease: v}
	}
	return c
}

func TestPutGetDelete(t *testing.T) {
	s, _ := startServer(t)
	start := s.Rev()
	r1 := mustPut(t, s, "a", "1", 0)
	if r1.Header.GetRevision() != start+1 {
		t.Fatalf("put revision = %d, want %d", r1.Header.GetRevision(), start+1)
	}
	r2, err := s.Put(ctxT(t), &pb.PutRequest{Key: []byte("a"), Value: []byte("2"), PrevKv: true})
	if err != nil {
		t.Fatal(err)
	}
	if r2.PrevKv == nil || string(r2.PrevKv.Value) != "1" || r2.Header.GetRevision() != start+2 {
		t.Fatalf("second put = %v", r2)
	}
	mustPut(t, s, "b", "x", 0)
	mustPut(t, s, "c", "y", 0)
	resp := mustRange(t, s, &pb.RangeRequest{Key: []byte("a")})
	kv := resp.Kvs[0]
	if string(kv.Value) != "2" || kv.Version != 2 || kv.CreateRevision != start+1 || kv.ModRevision != start+2 || resp.Header.GetRevision() != start+4 {
		t.Fatalf("get a = %v (header %v)", kv, resp.Header)
	}
	// Range, prefix-all and count/limit.
	all := mustRange(t, s, &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, Limit: 2})
	if got := keysOf(all); !reflect.DeepEqual(got, []string{"a", "b"}) || !all.More || all.Count != 3 {
		t.Fatalf("limited range = %q more=%v count=%d", got, all.More, all.Count)
	}
	// Historical read.
	old := mustRange(t, s, &pb.RangeRequest{Key: []byte("a"), Revision: start + 1})
	if string(old.Kvs[0].Value) != "1" {
		t.Fatalf("read at %d = %v", start+1, old.Kvs)
	}
	// Serializable reads see the same state on a single member.
	if v, _ := s.Range(ctxT(t), &pb.RangeRequest{Key: []byte("c"), Serializable: true}); string(v.Kvs[0].Value) != "y" {
		t.Fatalf("serializable read = %v", v)
	}
	// Delete a range with prev kvs.
	dr, err := s.DeleteRange(ctxT(t), &pb.DeleteRangeRequest{Key: []byte("b"), RangeEnd: []byte("d"), PrevKv: true})
	if err != nil {
		t.Fatal(err)
	}
	if dr.Deleted != 2 || len(dr.PrevKvs) != 2 || dr.Header.GetRevision() != start+5 {
		t.Fatalf("delete = %v", dr)
	}
	// Deleting nothing does not create a revision.
	dr, err = s.DeleteRange(ctxT(t), &pb.DeleteRangeRequest{Key: []byte("zzz")})
	if err != nil || dr.Deleted != 0 || dr.Header.GetRevision() != start+5 {
		t.Fatalf("empty delete = %v, %v", dr, err)
	}
	if _, ok := mustGet(t, s, "b"); ok {
		t.Fatal("b still present after delete")
	}
	// IgnoreValue / IgnoreLease on a missing key fail with key not found.
	_, err = s.Put(ctxT(t), &pb.PutRequest{Key: []byte("missing"), IgnoreValue: true})
	wantErr(t, err, ErrKeyNotFound)
	// IgnoreValue keeps the value and updates the revision.
	pr, err := s.Put(ctxT(t), &pb.PutRequest{Key: []byte("a"), IgnoreValue: true})
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := mustGet(t, s, "a"); v != "2" || pr.Header.GetRevision() != start+6 {
		t.Fatalf("IgnoreValue put: value %q revision %d", v, pr.Header.GetRevision())
	}
	if s.Rev() != start+6 {
		t.Fatalf("Rev = %d", s.Rev())
	}
}

func TestTxnCompareTargets(t *testing.T) {
	s, _ := startServer(t)
	l := mustGrant(t, s, 7, 100)
	p1 := mustPut(t, s, "k", "m", l.ID) // version 1
	p2 := mustPut(t, s, "k", "m", l.ID) // version 2
	mustPut(t, s, "k2", "z", 0)
	created, mod := p1.Header.GetRevision(), p2.Header.GetRevision()
	E, N, G, L := pb.Compare_EQUAL, pb.Compare_NOT_EQUAL, pb.Compare_GREATER, pb.Compare_LESS
	cases := []struct {
		c    *pb.Compare
		want bool
	}{
		{cmpValue("k", E, "m"), true},
		{cmpValue("k", N, "m"), false},
		{cmpValue("k", G, "a"), true},
		{cmpValue("k", L, "a"), false},
		{cmpValue("k", L, "mm"), true},
		{cmpValue("missing", E, ""), false}, // a missing key has no value
		{cmpValue("missing", N, "x"), false},
		{cmpInt64("k", pb.Compare_VERSION, E, 2), true},
		{cmpInt64("k", pb.Compare_VERSION, G, 1), true},
		{cmpInt64("k", pb.Compare_VERSION, L, 2), false},
		{cmpInt64("missing", pb.Compare_VERSION, E, 0), true}, // missing key: zero fields
		{cmpInt64("k", pb.Compare_CREATE, E, created), true},
		{cmpInt64("k", pb.Compare_CREATE, N, created), false},
		{cmpInt64("missing", pb.Compare_CREATE, E, 0), true},
		{cmpInt64("k", pb.Compare_MOD, E, mod), true},
		{cmpInt64("k", pb.Compare_MOD, L, mod+1), true},
		{cmpInt64("k", pb.Compare_MOD, G, mod), false},
		{cmpInt64("k", pb.Compare_LEASE, E, l.ID), true},
		{cmpInt64("k", pb.Compare_LEASE, N, 0), true},
		{cmpInt64("k2", pb.Compare_LEASE, E, 0), true},
		{cmpInt64("missing", pb.Compare_LEASE, E, 0), true},
	}
	for i, tc := range cases {
		resp, err := s.Txn(ctxT(t), &pb.TxnRequest{Compare: []*pb.Compare{tc.c}, Success: []*pb.RequestOp{opGet("k")}, Failure: []*pb.RequestOp{opGet("k2")}})
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if resp.Succeeded != tc.want {
			t.Errorf("case %d (%v): succeeded = %v, want %v", i, tc.c, resp.Succeeded, tc.want)
		}
		want := "k"
		if !tc.want {
			want = "k2"
		}
		if got := string(resp.Responses[0].GetResponseRange().Kvs[0].Key); got != want {
			t.Errorf("case %d: branch read %q, want %q", i, got, want)
		}
	}
	// A compare over a range holds only if it holds for every key in it.
	mustPut(t, s, "r1", "1", 0)
	mustPut(t, s, "r2", "2", 0)
	for _, tc := range []struct {
		c    *pb.Compare
		want bool
	}{
		{&pb.Compare{Key: []byte("r"), RangeEnd: []byte("s"), Target: pb.Compare_VALUE, Result: G, TargetUnion: &pb.Compare_Value{Value: []byte("0")}}, true},
		{&pb.Compare{Key: []byte("r"), RangeEnd: []byte("s"), Target: pb.Compare_VALUE, Result: E, TargetUnion: &pb.Compare_Value{Value: []byte("1")}}, false},
		{&pb.Compare{Key: []byte("r"), RangeEnd: []byte("s"), Target: pb.Compare_VERSION, Result: E, TargetUnion: &pb.Compare_Version{Version: 1}}, true},
		{&pb.Compare{Key: []byte("x"), RangeEnd: []byte("y"), Target: pb.Compare_VERSION, Result: E, TargetUnion: &pb.Compare_Version{Version: 0}}, true},
	} {
		resp, err := s.Txn(ctxT(t), &pb.TxnRequest{Compare: []*pb.Compare{tc.c}})
		if err != nil || resp.Succeeded != tc.want {
			t.Errorf("range compare %v: succeeded %v err %v, want %v", tc.c, resp.GetSucceeded(), err, tc.want)
		}
	}
	// All compares must hold.
	resp, err := s.Txn(ctxT(t), &pb.TxnRequest{Compare: []*pb.Compare{cmpValue("k", E, "m"), cmpValue("k2", E, "nope")}})
	if err != nil || resp.Succeeded {
		t.Fatalf("conjunction: %v %v", resp, err)
	}
}

func TestTxnWritesAndReadYourWrites(t *testing.T) {
	s, _ := startServer(t)
	mustPut(t, s, "x", "0", 0)
	begin := s.Rev()
	rt := &pb.TxnRequest{
		Compare: []*pb.Compare{cmpValue("x", pb.Compare_EQUAL, "0")},
		Success: []*pb.RequestOp{
			opGet("a"),
			opPut("a", "1"),
			opGet("a"), // sees the put above
			opPut("b", "2"),
			opDel("x", ""),
			opGet("x"), // sees the delete
			opRange(&pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("c"), CountOnly: true}),
		},
		Failure: []*pb.RequestOp{opPut("failed", "1")},
	}
	resp, err := s.Txn(ctxT(t), rt)
	if err != nil {
		t.Fatal(err)
	}
	if !resp.Succeeded || resp.Header.GetRevision() != begin+1 || len(resp.Responses) != 7 {
		t.Fatalf("txn response = %v", resp)
	}
	if n := len(resp.Responses[0].GetResponseRange().Kvs); n != 0 {
		t.Fatalf("read before put saw %d kvs", n)
	}
	if rr := resp.Responses[0].GetResponseRange(); rr.Header.GetRevision() != begin {
		t.Fatalf("read before any write: header revision %d, want %d", rr.Header.GetRevision(), begin)
	}
	rr := resp.Responses[2].GetResponseRange()
	if len(rr.Kvs) != 1 || string(rr.Kvs[0].Value) != "1" || rr.Kvs[0].ModRevision != begin+1 || rr.Header.GetRevision() != begin+1 {
		t.Fatalf("read-your-write = %v", rr)
	}
	if n := len(resp.Responses[5].GetResponseRange().Kvs); n != 0 {
		t.Fatal("deleted key visible inside txn")
	}
	if c := resp.Responses[6].GetResponseRange().Count; c != 2 {
		t.Fatalf("count inside txn = %d, want 2", c)
	}
	if d := resp.Responses[4].GetResponseDeleteRange().Deleted; d != 1 {
		t.Fatalf("txn delete count = %d", d)
	}
	// Every change of the txn shares one revision.
	for _, k := range []string{"a", "b"} {
		r := mustRange(t, s, &pb.RangeRequest{Key: []byte(k)})
		if r.Kvs[0].ModRevision != begin+1 {
			t.Fatalf("%s mod revision = %d", k, r.Kvs[0].ModRevision)
		}
	}
	if _, ok := mustGet(t, s, "failed"); ok {
		t.Fatal("failure branch ran")
	}
	// A txn that writes nothing does not advance the revision.
	resp, err = s.Txn(ctxT(t), &pb.TxnRequest{Success: []*pb.RequestOp{opDel("nothing", "")}})
	if err != nil || resp.Header.GetRevision() != begin+1 || s.Rev() != begin+1 {
		t.Fatalf("no-op txn: %v %v rev %d", resp, err, s.Rev())
	}
	// Empty txn.
	resp, err = s.Txn(ctxT(t), &pb.TxnRequest{})
	if err != nil || !resp.Succeeded || len(resp.Responses) != 0 {
		t.Fatalf("empty txn: %v %v", resp, err)
	}
}

func TestNestedTxn(t *testing.T) {
	s, _ := startServer(t)
	mustPut(t, s, "flag", "on", 0)
	mustPut(t, s, "gate", "closed", 0)
	begin := s.Rev()
	// Inner compares see the state before the outer txn: the outer put of
	// "gate" does not make the inner compare succeed.
	rt := &pb.TxnRequest{
		Compare: []*pb.Compare{cmpValue("flag", pb.Compare_EQUAL, "on")},
		Success: []*pb.RequestOp{
			opPut("gate", "open"),
			opTxn(&pb.TxnRequest{
				Compare: []*pb.Compare{cmpValue("gate", pb.Compare_EQUAL, "open")},
				Success: []*pb.RequestOp{opPut("inner", "then")},
				Failure: []*pb.RequestOp{opPut("inner", "else"), opGet("gate"), opTxn(&pb.TxnRequest{
					Compare: []*pb.Compare{cmpValue("flag", pb.Compare_EQUAL, "on")},
					Success: []*pb.RequestOp{opPut("deep", "yes")},
				})},
			}),
			opTxn(&pb.TxnRequest{
				Compare: []*pb.Compare{cmpValue("flag", pb.Compare_EQUAL, "off")},
				Success: []*pb.RequestOp{opPut("second", "then")},
				Failure: []*pb.RequestOp{opPut("second", "else")},
			}),
		},
	}
	resp, err := s.Txn(ctxT(t), rt)
	if err != nil {
		t.Fatal(err)
	}
	if !resp.Succeeded || len(resp.Responses) != 3 {
		t.Fatalf("outer = %v", resp)
	}
	inner := resp.Responses[1].GetResponseTxn()
	if inner == nil || inner.Succeeded || len(inner.Responses) != 3 {
		t.Fatalf("inner = %v", inner)
	}
	if g := inner.Responses[1].GetResponseRange(); string(g.Kvs[0].Value) != "open" {
		t.Fatalf("inner read of gate = %v (must see the outer put)", g.Kvs)
	}
	if deep := inner.Responses[2].GetResponseTxn(); deep == nil || !deep.Succeeded {
		t.Fatalf("deep = %v", deep)
	}
	if second := resp.Responses[2].GetResponseTxn(); second == nil || second.Succeeded {
		t.Fatalf("second nested = %v", second)
	}
	for k, want := range map[string]string{"gate": "open", "inner": "else", "deep": "yes", "second": "else"} {
		if v, ok := mustGet(t, s, k); !ok || v != want {
			t.Errorf("%s = %q (present %v), want %q", k, v, ok, want)
		}
	}
	if s.Rev() != begin+1 {
		t.Fatalf("nested txn took %d revisions", s.Rev()-begin)
	}
	// Read-only nested txn served without raft.
	ro, err := s.Txn(ctxT(t), &pb.TxnRequest{Success: []*pb.RequestOp{opTxn(&pb.TxnRequest{
		Compare: []*pb.Compare{cmpValue("deep", pb.Compare_EQUAL, "yes")},
		Success: []*pb.RequestOp{opGet("deep")},
	})}})
	if err != nil {
		t.Fatal(err)
	}
	if in := ro.Responses[0].GetResponseTxn(); !in.Succeeded || string(in.Responses[0].GetResponseRange().Kvs[0].Value) != "yes" {
		t.Fatalf("read-only nested = %v", ro)
	}
	if ro.Header.GetRevision() != s.Rev() {
		t.Fatalf("read-only txn header %d, want %d", ro.Header.GetRevision(), s.Rev())
	}
}

func TestTxnFailingCheckChangesNothing(t *testing.T) {
	s, _ := startServer(t)
	mustPut(t, s, "a", "orig", 0)
	before := s.Rev()
	hashBefore, _ := s.HashKV(ctxT(t), 0)
	for name, rt := range map[string]*pb.TxnRequest{
		"missing lease": {Success: []*pb.RequestOp{opPut("a", "changed"), opDel("a", ""), opPutLease("b", "x", 999)}},
		"missing lease in nested txn": {Success: []*pb.RequestOp{opPut("a", "changed"), opTxn(&pb.TxnRequest{
			Success: []*pb.RequestOp{opPutLease("c", "x", 12345)},
		})}},
		"missing lease in failure branch": {
			Compare: []*pb.Compare{cmpValue("a", pb.Compare_EQUAL, "nope")},
			Failure: []*pb.RequestOp{opPut("a", "changed"), opPutLease("c", "x", 12345)},
		},
		"ignore value on missing key": {Success: []*pb.RequestOp{opPut("a", "changed"), {Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("nokey"), IgnoreValue: true}}}}},
		"future revision read":        {Success: []*pb.RequestOp{opPut("a", "changed"), opRange(&pb.RangeRequest{Key: []byte("a"), Revision: before + 1})}},
	} {
		_, err := s.Txn(ctxT(t), rt)
		if err == nil {
			t.Errorf("%s: txn succeeded", name)
			continue
		}
		if v, _ := mustGet(t, s, "a"); v != "orig" {
			t.Fatalf("%s: a = %q after failed txn", name, v)
		}
		if s.Rev() != before {
			t.Fatalf("%s: revision moved from %d to %d", name, before, s.Rev())
		}
	}
	// The branch not taken is not checked.
	resp, err := s.Txn(ctxT(t), &pb.TxnRequest{
		Compare: []*pb.Compare{cmpValue("a", pb.Compare_EQUAL, "orig")},
		Success: []*pb.RequestOp{opPut("ok", "1")},
		Failure: []*pb.RequestOp{opPutLease("c", "x", 12345)},
	})
	if err != nil || !resp.Succeeded {
		t.Fatalf("txn with bad op only in the untaken branch: %v %v", resp, err)
	}
	_ = hashBefore
	// Put with a missing lease outside a txn.
	_, err = s.Put(ctxT(t), &pb.PutRequest{Key: []byte("z"), Lease: 4242})
	wantErr(t, err, lease.ErrNotFound)
}

func TestCompactionErrors(t *testing.T) {
	s, _ := startServer(t)
	for i := range 10 {
		mustPut(t, s, "k", fmt.Sprint(i), 0)
	}
	cur := s.Rev()
	_, err := s.Compact(ctxT(t), &pb.CompactionRequest{Revision: cur + 1})
	wantErr(t, err, mvcc.ErrFutureRev)
	_, err = s.Range(ctxT(t), &pb.RangeRequest{Key: []byte("k"), Revision: cur + 1})
	wantErr(t, err, mvcc.ErrFutureRev)

	cr, err := s.Compact(ctxT(t), &pb.CompactionRequest{Revision: cur - 3, Physical: true})
	if err != nil {
		t.Fatal(err)
	}
	if cr.Header.GetRevision() != cur {
		t.Fatalf("compaction header revision = %d, want %d", cr.Header.GetRevision(), cur)
	}
	if s.Rev() != cur {
		t.Fatal("compaction changed the revision")
	}
	_, err = s.Compact(ctxT(t), &pb.CompactionRequest{Revision: cur - 3})
	wantErr(t, err, mvcc.ErrCompacted)
	_, err = s.Compact(ctxT(t), &pb.CompactionRequest{Revision: 2})
	wantErr(t, err, mvcc.ErrCompacted)
	_, err = s.Range(ctxT(t), &pb.RangeRequest{Key: []byte("k"), Revision: cur - 4})
	wantErr(t, err, mvcc.ErrCompacted)
	// At the compaction revision the value is still readable.
	r := mustRange(t, s, &pb.RangeRequest{Key: []byte("k"), Revision: cur - 3})
	if len(r.Kvs) != 1 || r.Kvs[0].ModRevision != cur-3 {
		t.Fatalf("read at compaction revision = %v", r.Kvs)
	}
	// Read-only and write txns refuse compacted and future reads.
	_, err = s.Txn(ctxT(t), &pb.TxnRequest{Success: []*pb.RequestOp{opRange(&pb.RangeRequest{Key: []byte("k"), Revision: 2})}})
	wantErr(t, err, mvcc.ErrCompacted)
	_, err = s.Txn(ctxT(t), &pb.TxnRequest{Success: []*pb.RequestOp{opRange(&pb.RangeRequest{Key: []byte("k"), Revision: cur + 5})}})
	wantErr(t, err, mvcc.ErrFutureRev)
	_, err = s.Txn(ctxT(t), &pb.TxnRequest{Success: []*pb.RequestOp{opPut("w", "1"), opRange(&pb.RangeRequest{Key: []byte("k"), Revision: 2})}})
	wantErr(t, err, mvcc.ErrCompacted)
	if _, ok := mustGet(t, s, "w"); ok {
		t.Fatal("txn with a compacted read wrote")
	}
	// HashKV below the compaction fails too.
	if _, err := s.HashKV(ctxT(t), 2); err == nil {
		t.Fatal("HashKV below the compaction revision succeeded")
	}
}

func TestLeases(t *testing.T) {
	s, _ := startServer(t)
	// The minimum TTL follows the election timeout: 1.5 * 100ms rounds up to 1s.
	g := mustGrant(t, s, 0, 0)
	if g.ID <= 0 || g.TTL != 1 {
		t.Fatalf("grant with id 0 ttl 0 = %v, want a positive id and TTL 1", g)
	}
	g2 := mustGrant(t, s, 0, 60)
	if g2.ID == g.ID || g2.TTL != 60 {
		t.Fatalf("second auto grant = %v", g2)
	}
	_, err := s.LeaseGrant(ctxT(t), &pb.LeaseGrantRequest{ID: g2.ID, TTL: 60})
	wantErr(t, err, lease.ErrExists)
	_, err = s.LeaseGrant(ctxT(t), &pb.LeaseGrantRequest{ID: 5, TTL: lease.MaxTTL + 1})
	wantErr(t, err, lease.ErrTTLTooLarge)
	_, err = s.LeaseRevoke(ctxT(t), &pb.LeaseRevokeRequest{ID: 404})
	wantErr(t, err, lease.ErrNotFound)

	l := mustGrant(t, s, 100, 600)
	for _, k := range []string{"l/c", "l/a", "l/b", "l/d"} {
		mustPut(t, s, k, "v", l.ID)
	}
	// Re-putting without a lease detaches; deleting detaches; a txn put attaches.
	mustPut(t, s, "l/d", "free", 0)
	if _, err := s.DeleteRange(ctxT(t), &pb.DeleteRangeRequest{Key: []byte("l/c")}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Txn(ctxT(t), &pb.TxnRequest{Success: []*pb.RequestOp{opPutLease("l/e", "v", l.ID)}}); err != nil {
		t.Fatal(err)
	}
	// IgnoreLease keeps the lease.
	if _, err := s.Put(ctxT(t), &pb.PutRequest{Key: []byte("l/a"), Value: []byte("v2"), IgnoreLease: true}); err != nil {
		t.Fatal(err)
	}
	ttl, err := s.LeaseTimeToLive(ctxT(t), &pb.LeaseTimeToLiveRequest{ID: l.ID, Keys: true})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, k := range ttl.Keys {
		keys = append(keys, string(k))
	}
	if want := []string{"l/a", "l/b", "l/e"}; !reflect.DeepEqual(keys, want) {
		t.Fatalf("lease keys = %q, want %q", keys, want)
	}
	if ttl.GrantedTTL != 600 || ttl.TTL < 598 || ttl.TTL > 600 || ttl.ID != l.ID {
		t.Fatalf("TimeToLive = %v", ttl)
	}
	if r, _ := s.Range(ctxT(t), &pb.RangeRequest{Key: []byte("l/a")}); r.Kvs[0].Lease != l.ID || string(r.Kvs[0].Value) != "v2" {
		t.Fatalf("IgnoreLease put: %v", r.Kvs[0])
	}
	// Missing lease: TTL -1, no error.
	if missing, err := s.LeaseTimeToLive(ctxT(t), &pb.LeaseTimeToLiveRequest{ID: 777}); err != nil || missing.TTL != -1 {
		t.Fatalf("TimeToLive of a missing lease = %v, %v", missing, err)
	}
	// Renew on the (only, leading) member.
	if got, err := s.LeaseRenew(ctxT(t), l.ID); err != nil || got != 600 {
		t.Fatalf("LeaseRenew = %d, %v", got, err)
	}
	if _, err := s.LeaseRenew(ctxT(t), 777); err == nil {
		t.Fatal("LeaseRenew of a missing lease succeeded")
	}
	ls, err := s.LeaseLeases(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, st := range ls.Leases {
		ids = append(ids, st.ID)
	}
	want := []int64{g.ID, g2.ID, l.ID}
	sort.Slice(want, func(i, j int) bool { return want[i] < want[j] })
	// g (TTL 1s) may already have expired; compare without it if so.
	if !reflect.DeepEqual(ids, want) {
		var wantNoG []int64
		for _, id := range want {
			if id != g.ID {
				wantNoG = append(wantNoG, id)
			}
		}
		if !reflect.DeepEqual(ids, wantNoG) {
			t.Fatalf("LeaseLeases = %v, want %v", ids, want)
		}
	}
	// Revoke deletes the attached keys in one revision and nothing else.
	before := s.Rev()
	rv, err := s.LeaseRevoke(ctxT(t), &pb.LeaseRevokeRequest{ID: l.ID})
	if err != nil {
		t.Fatal(err)
	}
	if rv.Header.GetRevision() != before+1 {
		t.Fatalf("revoke revision = %d, want %d", rv.Header.GetRevision(), before+1)
	}
	got := keysOf(mustRange(t, s, &pb.RangeRequest{Key: []byte("l/"), RangeEnd: []byte("l0")}))
	if want := []string{"l/d"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("keys after revoke = %q, want %q", got, want)
	}
	// Revoking a lease without keys does not create a revision.
	before = s.Rev()
	if rv, err := s.LeaseRevoke(ctxT(t), &pb.LeaseRevokeRequest{ID: g2.ID}); err != nil || rv.Header.GetRevision() != before {
		t.Fatalf("revoke of an empty lease: %v %v", rv, err)
	}
}

// A keep-alive that comes too late answers "not found" only once the revoke
// has deleted the lease's keys, as etcd does: never while they are readable.
func TestLateKeepAliveWaitsForRevoke(t *testing.T) {
	s, _ := startServer(t)
	l := mustGrant(t, s, 0, 1)
	mustPut(t, s, "late", "1", l.ID)
	// Past the deadline, likely before the revoke is applied.
	time.Sleep(1050 * time.Millisecond)
	if _, err := s.LeaseRenew(ctxT(t), l.ID); !errors.Is(err, lease.ErrNotFound) {
		t.Fatalf("keep-alive after the deadline: %v, want lease not found", err)
	}
	if _, ok := mustGet(t, s, "late"); ok {
		t.Fatal("the keep-alive reported the lease gone while its key was still there")
	}
}

func TestLeaseExpiryRevokes(t *testing.T) {
	s, _ := startServer(t)
	l := mustGrant(t, s, 0, 1)
	mustPut(t, s, "eph", "1", l.ID)
	mustPut(t, s, "keep", "1", 0)
	hub := s.Hub().NewStream()
	defer hub.Close()
	start := time.Now()
	eventually(t, 6*time.Second, "the expired lease's key to vanish", func() bool {
		_, ok := mustGet(t, s, "eph")
		return !ok
	})
	if el := time.Since(start); el < 500*time.Millisecond {
		t.Fatalf("1s lease expired after %v", el)
	}
	if r, _ := s.LeaseTimeToLive(ctxT(t), &pb.LeaseTimeToLiveRequest{ID: l.ID}); r.TTL != -1 {
		t.Fatalf("expired lease still known: %v", r)
	}
	if _, ok := mustGet(t, s, "keep"); !ok {
		t.Fatal("expiry deleted an unrelated key")
	}
	// A kept-alive lease does not expire.
	l2 := mustGrant(t, s, 0, 1)
	mustPut(t, s, "alive", "1", l2.ID)
	for range 8 {
		if _, err := s.LeaseRenew(ctxT(t), l2.ID); err != nil {
			t.Fatal(err)
		}
		time.Sleep(250 * time.Millisecond)
	}
	if _, ok := mustGet(t, s, "alive"); !ok {
		t.Fatal("renewed lease expired")
	}
}

func TestRequestTooLarge(t *testing.T) {
	s, opts := startServer(t)
	big := bytes.Repeat([]byte("x"), opts.MaxRequestBytes)
	_, err := s.Put(ctxT(t), &pb.PutRequest{Key: []byte("big"), Value: big})
	wantErr(t, err, ErrRequestTooLarge)
	_, err = s.Txn(ctxT(t), &pb.TxnRequest{Success: []*pb.RequestOp{opPut("big", string(big))}})
	wantErr(t, err, ErrRequestTooLarge)
	// Just below the limit works.
	if _, err := s.Put(ctxT(t), &pb.PutRequest{Key: []byte("big"), Value: big[:opts.MaxRequestBytes-100]}); err != nil {
		t.Fatalf("put below the limit: %v", err)
	}
}

func TestIDsUnique(t *testing.T) {
	s, _ := startServer(t)
	var mu sync.Mutex
	seen := map[uint64]bool{}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]uint64, 0, 5000)
			for range 5000 {
				local = append(local, s.ids.Next())
			}
			mu.Lock()
			defer mu.Unlock()
			for _, id := range local {
				if seen[id] {
					t.Errorf("duplicate id %x", id)
					return
				}
				seen[id] = true
			}
		}()
	}
	wg.Wait()
	// Ids carry the member id's low 16 bits on top.
	for id := range seen {
		if id>>48 != s.ID()&0xffff {
			t.Fatalf("id %x lacks the member prefix %x", id, s.ID()&0xffff)
		}
		break
	}
	// Concurrent writes all apply, each with its own revision.
	revs := make(chan int64, 40)
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := s.Put(ctxT(t), &pb.PutRequest{Key: []byte(fmtKey(i)), Value: []byte("v")})
			if err != nil {
				t.Error(err)
				return
			}
			revs <- r.Header.GetRevision()
		}()
	}
	wg.Wait()
	close(revs)
	rs := map[int64]bool{}
	for r := range revs {
		if rs[r] {
			t.Fatalf("two puts got revision %d", r)
		}
		rs[r] = true
	}
	if len(rs) != 40 {
		t.Fatalf("%d distinct revisions, want 40", len(rs))
	}
	// Two servers (restarts) started in the same millisecond range still
	// produce increasing ids: the generator starts from the clock.
	g1 := newIDGenerator(1, time.UnixMilli(1_000_000))
	g2 := newIDGenerator(1, time.UnixMilli(1_000_001))
	if a, b := g1.Next(), g2.Next(); b <= a {
		t.Fatalf("generator from a later start gave %x <= %x", b, a)
	}
}

func TestWatchEventsFromApply(t *testing.T) {
	s, _ := startServer(t)
	st := s.Hub().NewStream()
	defer st.Close()
	if err := st.Watch(ctxT(t), &pb.WatchCreateRequest{Key: []byte("w/"), RangeEnd: []byte("w0"), PrevKv: true}); err != nil {
		t.Fatal(err)
	}
	recvResp := func() *pb.WatchResponse {
		select {
		case r := <-st.Out():
			return r.WatchResponse
		case <-time.After(5 * time.Second):
			t.Fatal("no watch response")
		}
		return nil
	}
	if r := recvResp(); !r.Created {
		t.Fatalf("first = %v", r)
	}
	mustPut(t, s, "w/a", "1", 0)
	resp, err := s.Txn(ctxT(t), &pb.TxnRequest{Success: []*pb.RequestOp{opPut("w/a", "2"), opPut("w/b", "1"), opPut("other", "x")}})
	if err != nil {
		t.Fatal(err)
	}
	l := mustGrant(t, s, 0, 100)
	mustPut(t, s, "w/c", "1", l.ID)
	if _, err := s.LeaseRevoke(ctxT(t), &pb.LeaseRevokeRequest{ID: l.ID}); err != nil {
		t.Fatal(err)
	}
	var got []string
	for len(got) < 5 {
		r := recvResp()
		for _, ev := range r.Events {
			e := fmt.Sprintf("%s %s=%s@%d", ev.Type, ev.Kv.Key, ev.Kv.Value, ev.Kv.ModRevision)
			if ev.PrevKv != nil {
				e += " prev=" + string(ev.PrevKv.Value)
			}
			if ev.Kv.ModRevision != r.Header.GetRevision() {
				t.Errorf("event %s in a response of revision %d", e, r.Header.GetRevision())
			}
			got = append(got, e)
		}
	}
	rev := resp.Header.GetRevision()
	want := []string{
		fmt.Sprintf("PUT w/a=1@%d", rev-1),
		fmt.Sprintf("PUT w/a=2@%d prev=1", rev),
		fmt.Sprintf("PUT w/b=1@%d", rev),
		fmt.Sprintf("PUT w/c=1@%d", rev+1),
		fmt.Sprintf("DELETE w/c=@%d prev=1", rev+2),
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("events\n got %q\nwant %q", got, want)
	}
}

func TestStatusAndSnapshot(t *testing.T) {
	s, opts := startServer(t)
	mustPut(t, s, "a", "1", 0)
	mustGrant(t, s, 55, 100)
	st, err := s.Status(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if st.Version != Version || st.Leader != s.ID() || st.Leader == 0 || st.RaftTerm == 0 || st.RaftIndex == 0 ||
		st.RaftAppliedIndex < st.RaftIndex || st.DbSizeQuota != opts.QuotaBackendBytes || st.Header.GetRevision() != s.Rev() ||
		len(st.Errors) != 0 || st.StorageVersion == "" {
		t.Fatalf("Status = %v", st)
	}
	eventually(t, 3*time.Second, "a db size", func() bool {
		st, _ := s.Status(ctxT(t))
		return st.DbSize > 0
	})
	if s.Term() != st.RaftTerm || s.Leader() != st.Leader || s.ClusterID() == 0 || len(s.Members()) != 1 || s.Members()[0].Name != "n1" {
		t.Fatalf("identity: term %d leader %x cluster %x members %v", s.Term(), s.Leader(), s.ClusterID(), s.Members())
	}
	if s.ID() != computeMemberID(opts.PeerURLs, opts.ClusterToken) {
		t.Fatal("member id is not derived from peer URLs and token")
	}

	var buf bytes.Buffer
	n, err := s.Snapshot(ctxT(t), &buf)
	if err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	if int64(len(data)) != n {
		t.Fatalf("Snapshot reported %d bytes, wrote %d", n, len(data))
	}
	if !bytes.HasPrefix(data, []byte(snapshot.Magic)) {
		t.Fatalf("snapshot starts with %q", data[:min(len(data), 30)])
	}
	body, sum := data[:len(data)-sha256.Size], data[len(data)-sha256.Size:]
	if want := sha256.Sum256(body); !bytes.Equal(sum, want[:]) {
		t.Fatal("snapshot trailer is not the SHA-256 of its content")
	}
	// etcd's snapshot client wants (size % 512 == 32).
	if len(data)%512 != sha256.Size {
		t.Fatalf("snapshot size %d: size %% 512 = %d, want %d", len(data), len(data)%512, sha256.Size)
	}
	// Parse the records up to the zero key length that ends them: keys in
	// order, none of the raft log, the lease and membership present; only
	// zero padding after the end mark.
	rest := body[len(snapshot.Magic):]
	var keys [][]byte
	ended := false
	for len(rest) > 0 {
		l, w := binary.Uvarint(rest)
		if w <= 0 {
			t.Fatalf("malformed key length at %d bytes from the end", len(rest))
		}
		if l == 0 {
			rest = rest[w:]
			ended = true
			break
		}
		if uint64(len(rest)-w) < l {
			t.Fatalf("truncated key at %d bytes from the end", len(rest))
		}
		keys = append(keys, rest[w:w+int(l)])
		rest = rest[w+int(l):]
		l, w = binary.Uvarint(rest)
		if w <= 0 || uint64(len(rest)-w) < l {
			t.Fatalf("malformed value at %d bytes from the end", len(rest))
		}
		rest = rest[w+int(l):]
	}
	if !ended {
		t.Fatal("snapshot records lack the end mark")
	}
	if len(rest) >= 512 || len(bytes.Trim(rest, "\x00")) != 0 {
		t.Fatalf("%d bytes after the end mark are not zero padding below 512 bytes", len(rest))
	}
	var sawLease, sawMembers bool
	for i, k := range keys {
		if len(k) > 0 && k[0] == 'r' {
			t.Fatalf("raft key %q in snapshot", k)
		}
		if i > 0 && bytes.Compare(keys[i-1], k) >= 0 {
			t.Fatalf("snapshot keys out of order: %q then %q (all: %q)", keys[i-1], k, keys)
		}
		sawLease = sawLease || bytes.Equal(k, leaseKey(55))
		sawMembers = sawMembers || bytes.Equal(k, membersKey)
	}
	if !sawLease || !sawMembers {
		t.Fatalf("snapshot lacks lease (%v) or membership (%v)", sawLease, sawMembers)
	}
	// A canceled context stops the snapshot.
	ctx, cancel := contextWithCancel(t)
	cancel()
	if _, err := s.Snapshot(ctx, &bytes.Buffer{}); err == nil {
		t.Fatal("Snapshot with a canceled context succeeded")
	}
}

func TestQuotaNoSpaceAlarm(t *testing.T) {
	opts := testOptions(t.TempDir())
	opts.QuotaBackendBytes = 1 // anything is too much
	s := startWith(t, opts)
	closed := false
	defer func() {
		if !closed {
			s.Close()
		}
	}()
	_, err := s.Put(ctxT(t), &pb.PutRequest{Key: []byte("a"), Value: []byte("1")})
	wantErr(t, err, ErrNoSpace)
	eventually(t, 5*time.Second, "the NOSPACE alarm", func() bool { return s.hasAlarm(pb.AlarmType_NOSPACE) })
	al, err := s.Alarm(ctxT(t), &pb.AlarmRequest{Action: pb.AlarmRequest_GET})
	if err != nil || len(al.Alarms) != 1 || al.Alarms[0].Alarm != pb.AlarmType_NOSPACE || al.Alarms[0].MemberID != s.ID() {
		t.Fatalf("alarm list = %v, %v", al, err)
	}
	st, _ := s.Status(ctxT(t))
	if len(st.Errors) != 1 || !strings.Contains(st.Errors[0], "NOSPACE") {
		t.Fatalf("Status errors = %q", st.Errors)
	}
	// Growth is refused; reads and deletes still work.
	_, err = s.Txn(ctxT(t), &pb.TxnRequest{Success: []*pb.RequestOp{opPut("b", "1")}})
	wantErr(t, err, ErrNoSpace)
	_, err = s.LeaseGrant(ctxT(t), &pb.LeaseGrantRequest{TTL: 10})
	wantErr(t, err, ErrNoSpace)
	if _, err := s.DeleteRange(ctxT(t), &pb.DeleteRangeRequest{Key: []byte("a")}); err != nil {
		t.Fatalf("delete under NOSPACE: %v", err)
	}
	if _, err := s.Txn(ctxT(t), &pb.TxnRequest{Success: []*pb.RequestOp{opGet("a")}}); err != nil {
		t.Fatalf("read-only txn under NOSPACE: %v", err)
	}

	// The alarm survives a restart.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = startWith(t, opts)
	if !s.hasAlarm(pb.AlarmType_NOSPACE) {
		t.Fatal("NOSPACE alarm lost across restart")
	}
	// Deactivation clears it, durably.
	dr, err := s.Alarm(ctxT(t), &pb.AlarmRequest{Action: pb.AlarmRequest_DEACTIVATE, MemberID: s.ID(), Alarm: pb.AlarmType_NOSPACE})
	if err != nil || len(dr.Alarms) != 1 {
		t.Fatalf("deactivate = %v, %v", dr, err)
	}
	if len(s.Alarms()) != 0 {
		t.Fatalf("alarms after deactivate = %v", s.Alarms())
	}
	// Deactivating an inactive alarm answers with no alarms.
	if dr, err := s.Alarm(ctxT(t), &pb.AlarmRequest{Action: pb.AlarmRequest_DEACTIVATE, MemberID: s.ID(), Alarm: pb.AlarmType_NOSPACE}); err != nil || len(dr.Alarms) != 0 {
		t.Fatalf("second deactivate = %v, %v", dr, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	opts.QuotaBackendBytes = 2 << 30
	s = startWith(t, opts)
	if len(s.Alarms()) != 0 {
		t.Fatalf("cleared alarm came back after restart: %v", s.Alarms())
	}
	mustPut(t, s, "a", "after", 0)
	closed = true
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestRestartKeepsState(t *testing.T) {
	opts := testOptions(t.TempDir())
	s := startWith(t, opts)
	l := mustGrant(t, s, 0, 3600)
	l2 := mustGrant(t, s, 0, 3600)
	for i := range 130 {
		lid := int64(0)
		if i < 5 {
			lid = l.ID
		}
		mustPut(t, s, fmtKey(i), fmt.Sprintf("v%d", i), lid)
	}
	if _, err := s.Alarm(ctxT(t), &pb.AlarmRequest{Action: pb.AlarmRequest_ACTIVATE, MemberID: s.ID(), Alarm: pb.AlarmType_CORRUPT}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Compact(ctxT(t), &pb.CompactionRequest{Revision: 60, Physical: true}); err != nil {
		t.Fatal(err)
	}
	first, _ := s.raftLog.Storage().FirstIndex()
	if first <= 1 {
		t.Fatalf("raft log not compacted after %d entries with SnapshotCount %d (first index %d)", s.applied.Load(), opts.SnapshotCount, first)
	}
	rev := s.Rev()
	hash, _ := s.Hash(ctxT(t))
	hkv, err := s.HashKV(ctxT(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	hkvOld, err := s.HashKV(ctxT(t), rev-10)
	if err != nil {
		t.Fatal(err)
	}
	id, cid, applied := s.ID(), s.ClusterID(), s.applied.Load()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	s = startWith(t, opts)
	defer s.Close()
	if s.Rev() != rev || s.ID() != id || s.ClusterID() != cid {
		t.Fatalf("after restart: rev %d id %x cluster %x; want %d %x %x", s.Rev(), s.ID(), s.ClusterID(), rev, id, cid)
	}
	if s.applied.Load() < applied {
		t.Fatalf("applied index went back from %d to %d", applied, s.applied.Load())
	}
	if first2, _ := s.raftLog.Storage().FirstIndex(); first2 < first {
		t.Fatalf("raft log first index %d after restart, was %d", first2, first)
	}
	all := mustRange(t, s, &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}})
	if all.Count != 130 {
		t.Fatalf("%d keys after restart, want 130", all.Count)
	}
	for i, kv := range all.Kvs {
		if string(kv.Key) != fmtKey(i) || string(kv.Value) != fmt.Sprintf("v%d", i) {
			t.Fatalf("kv %d = %s=%s", i, kv.Key, kv.Value)
		}
	}
	if h2, _ := s.Hash(ctxT(t)); h2.Hash != hash.Hash {
		t.Fatalf("Hash changed across restart: %x -> %x", hash.Hash, h2.Hash)
	}
	if h2, _ := s.HashKV(ctxT(t), 0); h2.Hash != hkv.Hash || h2.CompactRevision != 60 || h2.HashRevision != rev {
		t.Fatalf("HashKV changed across restart: %v -> %v", hkv, h2)
	}
	if h2, _ := s.HashKV(ctxT(t), rev-10); h2.Hash != hkvOld.Hash {
		t.Fatalf("HashKV(%d) changed across restart", rev-10)
	}
	_, err = s.Range(ctxT(t), &pb.RangeRequest{Key: []byte("k000"), Revision: 10})
	wantErr(t, err, mvcc.ErrCompacted)
	if !s.hasAlarm(pb.AlarmType_CORRUPT) {
		t.Fatal("alarm lost across restart")
	}
	ls, _ := s.LeaseLeases(ctxT(t))
	if len(ls.Leases) != 2 {
		t.Fatalf("leases after restart = %v", ls.Leases)
	}
	ttl, _ := s.LeaseTimeToLive(ctxT(t), &pb.LeaseTimeToLiveRequest{ID: l.ID, Keys: true})
	if len(ttl.Keys) != 5 || ttl.GrantedTTL != 3600 || ttl.TTL < 3590 {
		t.Fatalf("lease after restart = %v", ttl)
	}
	// The restored lease still owns its keys.
	if _, err := s.LeaseRevoke(ctxT(t), &pb.LeaseRevokeRequest{ID: l.ID}); err != nil {
		t.Fatal(err)
	}
	if c := mustRange(t, s, &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, CountOnly: true}).Count; c != 125 {
		t.Fatalf("%d keys after revoking the restored lease, want 125", c)
	}
	// CORRUPT refuses writes until disarmed.
	if _, err := s.Put(ctxT(t), &pb.PutRequest{Key: []byte("refused"), Value: []byte("1")}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("put with CORRUPT raised: %v", err)
	}
	if _, err := s.Alarm(ctxT(t), &pb.AlarmRequest{Action: pb.AlarmRequest_DEACTIVATE, MemberID: s.ID(), Alarm: pb.AlarmType_CORRUPT}); err != nil {
		t.Fatal(err)
	}
	// New writes continue the revision sequence; a new lease id is not a reused one.
	if r := mustPut(t, s, "new", "1", 0); r.Header.GetRevision() != rev+2 {
		t.Fatalf("put after restart got revision %d, want %d", r.Header.GetRevision(), rev+2)
	}
	if g := mustGrant(t, s, 0, 10); g.ID == l.ID || g.ID == l2.ID {
		t.Fatal("lease id reused after restart")
	}
}

func TestStartRefusesMissingAndForeignName(t *testing.T) {
	opts := testOptions(t.TempDir())
	opts.InitialCluster = map[string][]string{"x": {"http://127.0.0.1:2380"}, "y": {"http://127.0.0.1:2381"}}
	if s, err := Start(ctxT(t), opts); err == nil {
		s.Close()
		t.Fatal("Start accepted an initial cluster without this member")
	}
	opts = testOptions(t.TempDir())
	s := startWith(t, opts)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	opts.Name = "other"
	if s, err := Start(ctxT(t), opts); err == nil {
		s.Close()
		t.Fatal("Start accepted a data dir of another member")
	}
}

func TestRequestsAfterClose(t *testing.T) {
	opts := testOptions(t.TempDir())
	s := startWith(t, opts)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Range(ctxT(t), &pb.RangeRequest{Key: []byte("a")}); err == nil {
		t.Fatal("linearizable read after Close succeeded")
	}
}

func TestAutoCompactorTarget(t *testing.T) {
	t0 := time.Unix(1000, 0)
	a := newAutoCompactor(0, 100)
	if got := a.target(t0, 50, 0); got != 0 {
		t.Fatalf("revision mode below retention = %d", got)
	}
	a = newAutoCompactor(0, 100)
	if got := a.target(t0, 500, 0); got != 400 {
		t.Fatalf("revision mode = %d, want 400", got)
	}
	if got := a.target(t0.Add(time.Minute), 600, 400); got != 0 {
		t.Fatalf("revision mode within 5 minutes = %d", got)
	}
	if got := a.target(t0.Add(6*time.Minute), 600, 400); got != 500 {
		t.Fatalf("revision mode after 5 minutes = %d", got)
	}
	p := newAutoCompactor(time.Hour, 0)
	if got := p.target(t0, 10, 0); got != 0 {
		t.Fatalf("periodic at start = %d", got)
	}
	if got := p.target(t0.Add(30*time.Minute), 20, 0); got != 0 {
		t.Fatalf("periodic before a period = %d", got)
	}
	if got := p.target(t0.Add(time.Hour), 30, 0); got != 10 {
		t.Fatalf("periodic after a period = %d, want 10 (revision one period ago)", got)
	}
	if got := p.target(t0.Add(time.Hour+time.Second), 31, 10); got != 0 {
		t.Fatalf("periodic compacted again within the interval: %d", got)
	}
	if got := p.target(t0.Add(90*time.Minute), 40, 10); got != 20 {
		t.Fatalf("periodic after 90m = %d, want 20", got)
	}
	if (&autoCompactor{}).target(t0, 100, 0) != 0 {
		t.Fatal("disabled compactor compacted")
	}
}

// A lone voter that leads answers read indexes from its commit index, once
// an entry of its term is committed, and reads still see every write.
func TestSoleVoterReadIndex(t *testing.T) {
	s, _ := startServer(t)
	mustPut(t, s, "k", "v1", 0)
	idx, ok := s.soleVoterReadIndex()
	if !ok {
		t.Fatal("the lone leader did not take the short path")
	}
	if idx < s.applied.Load() {
		t.Fatalf("read index %d is below the applied index %d of an acknowledged write", idx, s.applied.Load())
	}
	mustPut(t, s, "k", "v2", 0)
	if v, _ := mustGet(t, s, "k"); v != "v2" {
		t.Fatalf("linearizable read after the write got %q", v)
	}
}
