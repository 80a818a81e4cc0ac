package e2e

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

const (
	crashClients   = 16
	crashRounds    = 3
	crashLoadTime  = 2 * time.Second  // load before each SIGKILL; not asserted
	crashOpTimeout = 5 * time.Second  // one request
	crashMaxWait   = 30 * time.Second // bound for waiting on the first acknowledgements
	crashPrefix    = "crash/"
	sharedKeys     = 4
)

// TestCrashKill9 writes from 16 clients concurrently, SIGKILLs the server
// mid-load, restarts it on the same data directory and checks that every
// acknowledged write survived with its acknowledged revision. Three
// kill/restart rounds, then a last round of writes on the recovered store.
func TestCrashKill9(t *testing.T) {
	t.Parallel()
	s := StartServer(t, Options{Name: "crash"})
	h := newHistory()

	var compactRev int64
	for round := 1; round <= crashRounds+1; round++ {
		l := startLoad(s, h, round)
		l.waitAcks(t, crashLoadTime)
		// An acknowledged compaction under load must survive the kill too.
		if rev := h.maxAcked(); rev > compactRev {
			if err := compact(s, rev); err != nil {
				l.stop()
				t.Fatalf("compact at %d under load: %v", rev, err)
			}
			compactRev = rev
		}
		if round <= crashRounds {
			s.Kill() // mid-load: requests are in flight
		}
		acked := l.stop()
		t.Logf("round %d: %d writes acknowledged, max acknowledged revision %d, compacted at %d", round, acked, h.maxAcked(), compactRev)
		if round <= crashRounds {
			s.Start()
			s.WaitReady()
		}
		checkCompacted(t, s, compactRev)
		h.verify(t, s)
		for _, v := range h.takeViolations() {
			t.Error(v)
		}
		if t.Failed() {
			t.FailNow()
		}
	}
}

// compact compacts the store at rev with its own client.
func compact(s *Server, rev int64) error {
	cli, err := s.newClient()
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = cli.Compact(ctx, rev)
	return err
}

// checkCompacted checks that reads below the acknowledged compaction
// revision are refused and reads at it are not.
func checkCompacted(t *testing.T, s *Server, rev int64) {
	t.Helper()
	if rev <= 1 {
		return
	}
	cli := s.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Get(ctx, crashPrefix, clientv3.WithPrefix(), clientv3.WithRev(rev-1), clientv3.WithCountOnly()); !errors.Is(err, rpctypes.ErrCompacted) {
		t.Errorf("read at %d below the acknowledged compaction %d: err %v, want %v", rev-1, rev, err, rpctypes.ErrCompacted)
	}
	if _, err := cli.Get(ctx, crashPrefix, clientv3.WithPrefix(), clientv3.WithRev(rev), clientv3.WithCountOnly()); err != nil {
		t.Errorf("read at the compaction revision %d: %v", rev, err)
	}
}

// write is one attempted write of a key.
type write struct {
	value string
	rev   int64 // acknowledged revision; 0 while unknown
	acked bool  // the server acknowledged it (or it was later seen durable)
	dead  bool  // known not applied (failed compare, or absent after a restart)
}

// history records every write attempt of the crash test and what the
// server said about it.
type history struct {
	mu         sync.Mutex
	keys       map[string][]*write
	floor      int64 // revision read after the last restart: later writes must exceed it
	maxRev     int64
	violations []string
}

func newHistory() *history { return &history{keys: map[string][]*write{}} }

// attempt records a write about to be sent.
func (h *history) attempt(key, value string) *write {
	h.mu.Lock()
	defer h.mu.Unlock()
	w := &write{value: value}
	h.keys[key] = append(h.keys[key], w)
	return w
}

// ack records the server's acknowledgement of w at revision rev.
func (h *history) ack(w *write, rev int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	w.acked, w.rev = true, rev
	if rev > h.maxRev {
		h.maxRev = rev
	}
	if rev <= h.floor {
		h.violations = append(h.violations, fmt.Sprintf("write %q acknowledged at revision %d, not above revision %d read after the last restart", w.value, rev, h.floor))
	}
}

// fail records that w was definitely not applied.
func (h *history) fail(w *write) {
	h.mu.Lock()
	defer h.mu.Unlock()
	w.dead = true
}

func (h *history) violate(format string, args ...any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.violations = append(h.violations, fmt.Sprintf(format, args...))
}

func (h *history) takeViolations() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	v := h.violations
	h.violations = nil
	return v
}

func (h *history) maxAcked() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.maxRev
}

// verify reads every key under crashPrefix and checks it against the
// history: an acknowledged write is present with at least its revision; a
// newer value must come from a write that was acknowledged later or was in
// flight; no key or value appears that nobody wrote. It then resolves
// unknown outcomes it can decide, so later rounds check them too.
func (h *history) verify(t *testing.T, s *Server) {
	t.Helper()
	cli := s.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, crashPrefix, clientv3.WithPrefix())
	if err != nil {
		t.Fatalf("read back after restart: %v", err)
	}
	actual := make(map[string]*mvccpb.KeyValue, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		actual[string(kv.Key)] = kv
	}

	h.mu.Lock()
	defer h.mu.Unlock()
	var errs []string
	if resp.Header.Revision < h.maxRev {
		errs = append(errs, fmt.Sprintf("revision after restart %d < max acknowledged revision %d", resp.Header.Revision, h.maxRev))
	}
	keys := make([]string, 0, len(h.keys))
	for k := range h.keys {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		writes := h.keys[key]
		var last *write // acknowledged write with the highest revision
		for _, w := range writes {
			if w.acked && (last == nil || w.rev > last.rev) {
				last = w
			}
		}
		kv, present := actual[key]
		delete(actual, key)
		if !present {
			if last != nil {
				errs = append(errs, fmt.Sprintf("key %s lost: acknowledged write %q at revision %d is gone", key, last.value, last.rev))
			}
			// Nothing in flight can still land: those writes are dead.
			for _, w := range writes {
				if !w.acked {
					w.dead = true
				}
			}
			continue
		}
		var cur *write
		for _, w := range writes {
			if w.value == string(kv.Value) {
				cur = w
			}
		}
		switch {
		case cur == nil:
			errs = append(errs, fmt.Sprintf("key %s has value %q at revision %d that no client wrote", key, kv.Value, kv.ModRevision))
		case cur.dead:
			errs = append(errs, fmt.Sprintf("key %s has value %q at revision %d from a write known not to be applied", key, kv.Value, kv.ModRevision))
		case cur.acked && kv.ModRevision != cur.rev:
			errs = append(errs, fmt.Sprintf("key %s value %q has mod_revision %d, acknowledged at %d", key, kv.Value, kv.ModRevision, cur.rev))
		case last != nil && kv.ModRevision < last.rev:
			errs = append(errs, fmt.Sprintf("key %s regressed: value %q at revision %d older than acknowledged %q at %d", key, kv.Value, kv.ModRevision, last.value, last.rev))
		case last != nil && cur != last && kv.ModRevision == last.rev:
			errs = append(errs, fmt.Sprintf("key %s has value %q at revision %d, acknowledged value there was %q", key, kv.Value, kv.ModRevision, last.value))
		case !cur.acked:
			// An in-flight write that made it: it is durable now.
			cur.acked, cur.rev = true, kv.ModRevision
		}
		if len(writes) == 1 && (kv.Version != 1 || kv.CreateRevision != kv.ModRevision) {
			errs = append(errs, fmt.Sprintf("key %s written once has version %d create_revision %d mod_revision %d", key, kv.Version, kv.CreateRevision, kv.ModRevision))
		}
	}
	for key, kv := range actual {
		errs = append(errs, fmt.Sprintf("unexpected key %s=%q at revision %d", key, kv.Value, kv.ModRevision))
	}
	if len(errs) > 20 {
		errs = append(errs[:20], fmt.Sprintf("... and %d more", len(errs)-20))
	}
	for _, e := range errs {
		t.Error(e)
	}
	if resp.Header.Revision > h.floor {
		h.floor = resp.Header.Revision
	}
	t.Logf("verified %d keys at revision %d", len(resp.Kvs), resp.Header.Revision)
}

// load is one round of 16 writers, each with its own client.
type load struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	acks   atomic.Int64
	errs   chan error
	cls    []*clientv3.Client
}

func startLoad(s *Server, h *history, round int) *load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{cancel: cancel, errs: make(chan error, crashClients)}
	for i := range crashClients {
		cli, err := s.newClient()
		if err != nil {
			l.errs <- fmt.Errorf("client %d: %w", i, err)
			continue
		}
		l.cls = append(l.cls, cli)
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			runWriter(ctx, cli, h, &l.acks, i, round)
		}()
	}
	return l
}

// waitAcks lets the load run for d and then until at least one write per
// client was acknowledged, so a kill always lands on a store with data.
func (l *load) waitAcks(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case err := <-l.errs:
		t.Fatal(err)
	default:
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	<-timer.C
	deadline := time.Now().Add(crashMaxWait)
	for l.acks.Load() < crashClients {
		if time.Now().After(deadline) {
			l.stop()
			t.Fatalf("only %d writes acknowledged after %v", l.acks.Load(), d+crashMaxWait)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop cancels the writers, waits for them and closes their clients.
func (l *load) stop() int64 {
	l.cancel()
	l.wg.Wait()
	for _, c := range l.cls {
		_ = c.Close()
	}
	l.cls = nil
	return l.acks.Load()
}

// runWriter is one client's loop: mostly puts of its own fresh keys, plus
// overwrites of keys shared by all writers and compare-and-swap txns.
func runWriter(ctx context.Context, cli *clientv3.Client, h *history, acks *atomic.Int64, id, round int) {
	counterKey := fmt.Sprintf("%scounter/w%02d", crashPrefix, id)
	var counter string // last known value of counterKey; "" means absent
	counterKnown := false
	var lastRev int64
	ackAt := func(w *write, rev int64) {
		if rev <= lastRev {
			h.violate("writer %d: revision went backwards: %d after %d", id, rev, lastRev)
		}
		h.ack(w, rev)
	}
	for seq := 0; ctx.Err() == nil; seq++ {
		value := fmt.Sprintf("w%02d-r%d-%06d", id, round, seq)
		opCtx, cancel := context.WithTimeout(ctx, crashOpTimeout)
		switch seq % 8 {
		case 5: // overwrite a shared key
			key := fmt.Sprintf("%sshared/%d", crashPrefix, seq/8%sharedKeys)
			w := h.attempt(key, value)
			resp, err := cli.Put(opCtx, key, value)
			if err == nil {
				ackAt(w, resp.Header.Revision)
				lastRev = resp.Header.Revision
				acks.Add(1)
			}
		case 6: // compare-and-swap the writer's counter, creating a key too
			if !counterKnown {
				resp, err := cli.Get(opCtx, counterKey)
				if err != nil {
					break
				}
				counter, counterKnown = "", true
				if len(resp.Kvs) == 1 {
					counter = string(resp.Kvs[0].Value)
				}
			}
			cmp := clientv3.Compare(clientv3.Value(counterKey), "=", counter)
			if counter == "" {
				cmp = clientv3.Compare(clientv3.CreateRevision(counterKey), "=", 0)
			}
			txnKey := fmt.Sprintf("%stxn/w%02d/r%d/%06d", crashPrefix, id, round, seq)
			w1 := h.attempt(counterKey, value)
			w2 := h.attempt(txnKey, value)
			resp, err := cli.Txn(opCtx).If(cmp).Then(clientv3.OpPut(counterKey, value), clientv3.OpPut(txnKey, value)).
				Else(clientv3.OpGet(counterKey)).Commit()
			switch {
			case err != nil:
				counterKnown = false // the txn may or may not have been applied
			case !resp.Succeeded:
				h.fail(w1)
				h.fail(w2)
				h.violate("writer %d: txn compare on %s failed though its value %q was known (lost or duplicated write?)", id, counterKey, counter)
				counterKnown = false
			default:
				ackAt(w1, resp.Header.Revision)
				ackAt(w2, resp.Header.Revision)
				lastRev = resp.Header.Revision
				counter = value
				acks.Add(1)
			}
		default: // a fresh key of this writer
			key := fmt.Sprintf("%sw%02d/r%d/%06d", crashPrefix, id, round, seq)
			w := h.attempt(key, value)
			resp, err := cli.Put(opCtx, key, value)
			if err == nil {
				ackAt(w, resp.Header.Revision)
				lastRev = resp.Header.Revision
				acks.Add(1)
			}
		}
		cancel()
	}
}
