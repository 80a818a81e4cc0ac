package chainfire

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/photoncloud/photoncloud/internal/chainfire/transport"
	"github.com/photoncloud/photoncloud/internal/platform/testcerts"
)

// testCluster is n in-process members on loopback.
type testCluster struct {
	t       testing.TB
	cfgs    []Config
	members []*Server
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func newTestCluster(t testing.TB, n int, tweak ...func(*Config)) *testCluster {
	t.Helper()
	c := &testCluster{t: t, members: make([]*Server, n)}
	// The ports were free when picked, but another process of this
	// machine may take one before its member binds it: then the cluster
	// is built again on new ports (a few times at most).
	for attempt := 1; ; attempt++ {
		err := c.build(n, tweak)
		if err == nil {
			// Registered after build's TempDir, so that the members
			// stop before their data dir is removed.
			t.Cleanup(c.closeAll)
			return c
		}
		c.closeAll()
		if attempt == 3 || !errors.Is(err, syscall.EADDRINUSE) {
			t.Fatal(err)
		}
		t.Logf("port taken while starting the cluster, retrying on new ports: %v", err)
	}
}

// build picks ports and a data dir for n members and starts them.
func (c *testCluster) build(n int, tweak []func(*Config)) error {
	var initial []string
	dir := c.t.TempDir()
	c.cfgs = nil
	for i := range n {
		name := fmt.Sprintf("m%d", i)
		peer := fmt.Sprintf("http://127.0.0.1:%d", freePort(c.t))
		initial = append(initial, name+"="+peer)
		c.cfgs = append(c.cfgs, Config{
			Name: name, DataDir: filepath.Join(dir, name),
			ListenClientURLs:  []string{fmt.Sprintf("http://127.0.0.1:%d", freePort(c.t))},
			ListenPeerURLs:    []string{peer},
			ListenHTTPURLs:    []string{},
			HeartbeatInterval: 20 * time.Millisecond,
			ElectionTimeout:   200 * time.Millisecond,
			Logger:            slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
	}
	for i := range c.cfgs {
		c.cfgs[i].InitialCluster = strings.Join(initial, ",")
		for _, f := range tweak {
			f(&c.cfgs[i])
		}
		if err := c.tryStart(i); err != nil {
			return err
		}
	}
	return nil
}

// closeAll stops every running member.
func (c *testCluster) closeAll() {
	for i, m := range c.members {
		if m != nil {
			_ = m.Close()
			c.members[i] = nil
		}
	}
}

func (c *testCluster) start(i int) {
	c.t.Helper()
	if err := c.tryStart(i); err != nil {
		c.t.Fatal(err)
	}
}

func (c *testCluster) tryStart(i int) error {
	cfg := c.cfgs[i]
	cfg.Registry = nil
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := Start(ctx, cfg)
	if err != nil {
		return fmt.Errorf("start %s: %w", cfg.Name, err)
	}
	c.members[i] = s
	return nil
}

func (c *testCluster) stop(i int) {
	c.t.Helper()
	if err := c.members[i].Close(); err != nil {
		c.t.Fatalf("stop %d: %v", i, err)
	}
	c.members[i] = nil
}

func (c *testCluster) client(i int) *clientv3.Client {
	c.t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{c.members[i].ClientAddr()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { _ = cli.Close() })
	return cli
}

// leader waits until the running members agree on a leader and returns its index.
func (c *testCluster) leader() int {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		var lead uint64
		agree := true
		for _, m := range c.members {
			if m == nil {
				continue
			}
			l := m.KV().Leader()
			if l == 0 || (lead != 0 && l != lead) {
				agree = false
				break
			}
			lead = l
		}
		if agree && lead != 0 {
			for i, m := range c.members {
				if m != nil && m.KV().ID() == lead {
					return i
				}
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.t.Fatal("no agreed leader within 10s")
	return -1
}

// waitConverged waits until every member reports the same HashKV at the
// same revision.
func (c *testCluster) waitConverged(ctx context.Context, within time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(within)
	for {
		var hashes []uint32
		var revs []int64
		for i := range c.members {
			h, err := c.client(i).HashKV(ctx, c.members[i].ClientAddr(), 0)
			if err != nil {
				c.t.Fatal(err)
			}
			hashes = append(hashes, h.Hash)
			revs = append(revs, h.Header.Revision)
		}
		if slices.Max(hashes) == slices.Min(hashes) && slices.Max(revs) == slices.Min(revs) {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("members did not converge: hashes %v revisions %v", hashes, revs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestThreeMemberReplication: writes through any member are readable
// (linearizably) through every other; watches and lease keep-alives work on
// followers; after the leader stops, the others elect a new one and keep
// serving; the old leader rejoins and catches up to the same HashKV.
func TestThreeMemberReplication(t *testing.T) {
	c := newTestCluster(t, 3)
	lead := c.leader()
	follower := (lead + 1) % 3
	other := (lead + 2) % 3
	ctx := ctxFor(t)

	fcli := c.client(follower)
	wch := fcli.Watch(ctx, "k/", clientv3.WithPrefix())
	lease, err := fcli.Grant(ctx, 30)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fcli.KeepAliveOnce(ctx, lease.ID); err != nil {
		t.Fatalf("keep-alive through a follower: %v", err)
	}
	for i := range 10 {
		if _, err := c.client(i%3).Put(ctx, fmt.Sprintf("k/%d", i), "v", clientv3.WithLease(lease.ID)); err != nil {
			t.Fatalf("put through member %d: %v", i%3, err)
		}
	}
	got, err := c.client(other).Get(ctx, "k/", clientv3.WithPrefix())
	if err != nil || got.Count != 10 {
		t.Fatalf("linearizable read on another member: %v %v", got, err)
	}
	seen := 0
	for seen < 10 {
		select {
		case wr := <-wch:
			seen += len(wr.Events)
		case <-ctx.Done():
			t.Fatalf("watch on a follower saw %d of 10 events", seen)
		}
	}

	// Move leadership to a follower through the leader, as etcdctl move-leader does.
	if _, err := c.client(lead).MoveLeader(ctx, c.members[follower].KV().ID()); err != nil {
		t.Fatalf("move leader: %v", err)
	}
	if now := c.leader(); now != follower {
		t.Fatalf("leader after move is member %d, want %d", now, follower)
	}
	lead, follower = follower, lead

	c.stop(lead)
	newLead := c.leader()
	if newLead == lead {
		t.Fatal("stopped member still leads")
	}
	if _, err := c.client(newLead).Put(ctx, "k/after", "x"); err != nil {
		t.Fatalf("put after leader stop: %v", err)
	}
	c.start(lead)
	c.leader()
	c.waitConverged(ctx, 10*time.Second)
	ml, err := c.client(lead).MemberList(ctx)
	if err != nil || len(ml.Members) != 3 {
		t.Fatalf("member list: %v %v", ml, err)
	}
	for _, m := range ml.Members {
		if len(m.ClientURLs) == 0 {
			t.Fatalf("member %s has no client URLs in the list", m.Name)
		}
	}
}

// addJoiner adds a learner through member 0's client, starts it with
// --initial-cluster-state existing and returns its index and id.
func (c *testCluster) addJoiner(ctx context.Context, name string) (int, uint64) {
	c.t.Helper()
	peer := fmt.Sprintf("http://127.0.0.1:%d", freePort(c.t))
	add, err := c.client(0).MemberAddAsLearner(ctx, []string{peer})
	if err != nil {
		c.t.Fatalf("member add --learner: %v", err)
	}
	cfg := c.cfgs[0]
	cfg.Name = name
	cfg.DataDir = filepath.Join(c.t.TempDir(), name)
	cfg.ListenClientURLs = []string{fmt.Sprintf("http://127.0.0.1:%d", freePort(c.t))}
	cfg.ListenPeerURLs = []string{peer}
	cfg.InitialAdvertisePeerURLs = nil
	cfg.AdvertiseClientURLs = nil
	cfg.InitialCluster = cfg.InitialCluster + "," + name + "=" + peer
	cfg.InitialClusterState = "existing"
	c.cfgs = append(c.cfgs, cfg)
	c.members = append(c.members, nil)
	c.start(len(c.members) - 1)
	return len(c.members) - 1, add.Member.ID
}

// TestAutoPromoteLearners: with --auto-promote-learners the leader promotes
// a learner by itself once it has caught up.
func TestAutoPromoteLearners(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *Config) { cfg.AutoPromoteLearners = true })
	c.leader()
	ctx := ctxFor(t)
	_, id := c.addJoiner(ctx, "auto")
	deadline := time.Now().Add(10 * time.Second)
	for {
		ml, err := c.client(0).MemberList(ctx)
		if err != nil {
			t.Fatal(err)
		}
		promoted := false
		for _, m := range ml.Members {
			promoted = promoted || (m.ID == id && !m.IsLearner)
		}
		if promoted {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("learner %x not promoted: %v", id, ml.Members)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestMembershipChanges: a learner is added, started with
// --initial-cluster-state existing, catches up from the log, is promoted
// once ready, and a member is removed (and stops).
func TestMembershipChanges(t *testing.T) {
	c := newTestCluster(t, 3)
	lead := c.leader()
	ctx := ctxFor(t)
	cli := c.client(lead)
	for i := range 20 {
		if _, err := cli.Put(ctx, fmt.Sprintf("pre/%d", i), "v"); err != nil {
			t.Fatal(err)
		}
	}
	peer := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	add, err := cli.MemberAddAsLearner(ctx, []string{peer})
	if err != nil {
		t.Fatalf("member add --learner: %v", err)
	}
	// Every member lists the new one at once: a linearizable MemberList
	// (clientv3's default) waits for the member to apply the change.
	for i := range c.members {
		ml, err := c.client(i).MemberList(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(ml.Members, func(x *etcdserverpb.Member) bool { return x.ID == add.Member.ID }) {
			t.Fatalf("member list at member %d right after member add: %v, want the learner %x", i, ml.Members, add.Member.ID)
		}
	}
	if _, err := cli.MemberAddAsLearner(ctx, []string{fmt.Sprintf("http://127.0.0.1:%d", freePort(t))}); err == nil {
		t.Fatal("a second learner was accepted")
	}
	if _, err := cli.MemberAdd(ctx, []string{peer}); err == nil {
		t.Fatal("a duplicate peer URL was accepted")
	}
	cfg := c.cfgs[0]
	cfg.Name = "joiner"
	cfg.DataDir = filepath.Join(t.TempDir(), "joiner")
	cfg.ListenClientURLs = []string{fmt.Sprintf("http://127.0.0.1:%d", freePort(t))}
	cfg.ListenPeerURLs = []string{peer}
	cfg.InitialAdvertisePeerURLs = nil
	cfg.AdvertiseClientURLs = nil
	cfg.InitialCluster = cfg.InitialCluster + ",joiner=" + peer
	cfg.InitialClusterState = "existing"
	c.cfgs = append(c.cfgs, cfg)
	c.members = append(c.members, nil)
	c.start(3)
	if got := c.members[3].KV().ID(); got != add.Member.ID {
		t.Fatalf("joiner took id %x, want %x", got, add.Member.ID)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := cli.MemberPromote(ctx, add.Member.ID)
		if err == nil {
			break
		}
		if !strings.Contains(err.Error(), "in sync") || time.Now().After(deadline) {
			t.Fatalf("member promote: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	jcli := c.client(3)
	got, err := jcli.Get(ctx, "pre/", clientv3.WithPrefix())
	if err != nil || got.Count != 20 {
		t.Fatalf("joiner read: %v %v", got, err)
	}
	ml, err := jcli.MemberList(ctx)
	if err != nil || len(ml.Members) != 4 {
		t.Fatalf("member list on joiner: %v %v", ml, err)
	}
	for _, m := range ml.Members {
		if m.IsLearner {
			t.Fatalf("member %x still a learner after promote", m.ID)
		}
	}

	victim := (lead + 1) % 3
	if _, err := cli.MemberRemove(ctx, c.members[victim].KV().ID()); err != nil {
		t.Fatalf("member remove: %v", err)
	}
	if _, err := jcli.MemberRemove(ctx, 12345); err == nil {
		t.Fatal("removing an unknown member succeeded")
	}
	ml, err = jcli.MemberList(ctx)
	if err != nil || len(ml.Members) != 3 {
		t.Fatalf("member list after remove: %v %v", ml, err)
	}
	if _, err := jcli.Put(ctx, "post", "ok"); err != nil {
		t.Fatalf("put after remove: %v", err)
	}
	// The removed member stops by itself, as a removal, not a failure.
	select {
	case <-c.members[victim].Done():
		if err := c.members[victim].StopCause(); err != nil {
			t.Fatalf("removed member stopped with %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the removed member did not stop")
	}
}

// TestConflictingMembershipChanges: two members each accept an add of the
// same peer URL at once. Checking at propose time lets both through; raft
// must still take only one, the same one on every member.
func TestConflictingMembershipChanges(t *testing.T) {
	c := newTestCluster(t, 3)
	c.leader()
	ctx := ctxFor(t)
	clis := []*clientv3.Client{c.client(0), c.client(1), c.client(2)}
	for round := range 4 {
		peer := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
		errs := make([]error, 2)
		ids := make([]uint64, 2)
		var wg sync.WaitGroup
		for i := range 2 {
			wg.Go(func() {
				add, err := clis[i].MemberAddAsLearner(ctx, []string{peer})
				errs[i] = err
				if err == nil {
					ids[i] = add.Member.ID
				}
			})
		}
		wg.Wait()
		var added uint64
		for i, err := range errs {
			switch {
			case err == nil:
				if added != 0 {
					t.Fatalf("round %d: both adds of %s succeeded", round, peer)
				}
				added = ids[i]
			case !errors.Is(err, rpctypes.ErrPeerURLExist) && !errors.Is(err, rpctypes.ErrTooManyLearners):
				t.Fatalf("round %d: add failed with %v, want a conflict error", round, err)
			}
		}
		if added == 0 {
			t.Fatalf("round %d: neither add succeeded: %v", round, errs)
		}
		// Every member records the same single learner.
		eventually(t, "same membership everywhere", 10*time.Second, func() error {
			for i, cli := range clis {
				ml, err := cli.MemberList(ctx, clientv3.WithSerializable())
				if err != nil {
					return err
				}
				n := 0
				for _, m := range ml.Members {
					if slices.Contains(m.PeerURLs, peer) {
						n++
						if m.ID != added {
							return fmt.Errorf("member %d lists %x for %s, want %x", i, m.ID, peer, added)
						}
					}
				}
				if len(ml.Members) != 4 || n != 1 {
					return fmt.Errorf("member %d lists %d members, %d with %s", i, len(ml.Members), n, peer)
				}
			}
			return nil
		})
		if _, err := clis[2].MemberRemove(ctx, added); err != nil {
			t.Fatalf("round %d: remove the learner: %v", round, err)
		}
	}
}

// TestRemoveLeaderThenWrite: a write sent through a follower while the
// removed leader is going away is not forwarded to it (and lost) but waits
// for the next leader.
func TestRemoveLeaderThenWrite(t *testing.T) {
	c := newTestCluster(t, 3)
	lead := c.leader()
	ctx := ctxFor(t)
	cli := c.client((lead + 1) % 3)
	if _, err := cli.MemberRemove(ctx, c.members[lead].KV().ID()); err != nil {
		t.Fatal(err)
	}
	<-c.members[lead].Done()
	// Well below the request timeout: a lost proposal would only fail then.
	pctx, cancel := context.WithTimeout(ctx, 4*time.Second)
	defer cancel()
	if _, err := cli.Put(pctx, "after", "leader removal"); err != nil {
		t.Fatalf("put right after removing the leader: %v", err)
	}
}

// TestRemovedWhileDownStops: a member removed while it was down never sees
// its removal in the log; the others tell it when it comes back, and it stops.
func TestRemovedWhileDownStops(t *testing.T) {
	c := newTestCluster(t, 3)
	lead := c.leader()
	victim := (lead + 1) % 3
	id := c.members[victim].KV().ID()
	c.stop(victim)
	ctx := ctxFor(t)
	if _, err := c.client(lead).MemberRemove(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := c.client(lead).Put(ctx, "after", "removal"); err != nil {
		t.Fatal(err)
	}
	c.start(victim)
	select {
	case <-c.members[victim].Done():
		if err := c.members[victim].StopCause(); err != nil {
			t.Fatalf("removed member stopped with %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the member removed while down kept running")
	}
	// Its id is gone for good.
	if _, err := c.client(lead).MemberPromote(ctx, id); !errors.Is(err, rpctypes.ErrMemberNotFound) {
		t.Fatalf("promote of the removed id: %v", err)
	}
}

// syncBuffer is a log sink tests can read while members write to it.
type syncBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestLaggingMemberGetsSnapshot: members compact their raft logs; a member
// that was down while the log moved past it catches up from a snapshot of
// the leader's state, with history, leases and membership, and converges.
func TestLaggingMemberGetsSnapshot(t *testing.T) {
	c := newTestCluster(t, 3)
	lead := c.leader()
	lagger := (lead + 1) % 3
	ctx := ctxFor(t)
	for i := range c.cfgs {
		c.cfgs[i].SnapshotCount = 20
	}
	// Restart the others with the small snapshot count, then stop the lagger.
	for i := range c.members {
		c.stop(i)
	}
	var lagLog syncBuffer
	c.cfgs[lagger].Logger = slog.New(slog.NewTextHandler(&lagLog, nil))
	for i := range c.members {
		if i != lagger {
			c.start(i)
		}
	}
	lead = c.leader()
	cli := c.client(lead)
	lease, err := cli.Grant(ctx, 300)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		opts := []clientv3.OpOption{}
		if i%50 == 0 {
			opts = append(opts, clientv3.WithLease(lease.ID))
		}
		if _, err := cli.Put(ctx, fmt.Sprintf("lag/%03d", i%120), fmt.Sprint(i), opts...); err != nil {
			t.Fatal(err)
		}
	}
	// Large values make the snapshot several stream chunks long.
	big := strings.Repeat("x", 1<<20)
	for i := range 5 {
		if _, err := cli.Put(ctx, fmt.Sprintf("lag/big%d", i), big); err != nil {
			t.Fatal(err)
		}
	}
	c.start(lagger)
	c.leader()
	c.waitConverged(ctx, 15*time.Second)
	if !strings.Contains(lagLog.String(), "received snapshot") || !strings.Contains(lagLog.String(), "installed snapshot") {
		t.Fatalf("the lagging member caught up without a snapshot: the log was not compacted past it\n%s", lagLog.String())
	}
	lcli := c.client(lagger)
	// Later puts without the lease detached two of the four keys.
	ttl, err := lcli.TimeToLive(ctx, lease.ID, clientv3.WithAttachedKeys())
	if err != nil || ttl.TTL <= 0 || len(ttl.Keys) != 2 || string(ttl.Keys[0]) != "lag/030" || string(ttl.Keys[1]) != "lag/100" {
		t.Fatalf("lease on the lagging member: ttl %d keys %q err %v", ttl.TTL, ttl.Keys, err)
	}
	// History came with the snapshot: an old revision reads as on the leader.
	old, err := lcli.Get(ctx, "lag/000", clientv3.WithRev(5), clientv3.WithSerializable())
	want, err2 := cli.Get(ctx, "lag/000", clientv3.WithRev(5))
	if err != nil || err2 != nil || len(old.Kvs) != len(want.Kvs) {
		t.Fatalf("historical read on the lagging member: %v %v / %v %v", old, err, want, err2)
	}
	if got, err := lcli.Get(ctx, "lag/big4", clientv3.WithSerializable()); err != nil || len(got.Kvs) != 1 || len(got.Kvs[0].Value) != len(big) {
		t.Fatalf("large value on the lagging member: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(c.cfgs[lagger].DataDir, "member", "snap", "*")); len(left) != 0 {
		t.Fatalf("received snapshot files left behind after install: %q", left)
	}
	// It keeps replicating after the snapshot.
	if _, err := cli.Put(ctx, "lag/after", "x"); err != nil {
		t.Fatal(err)
	}
	if _, err := lcli.Get(ctx, "lag/after"); err != nil {
		t.Fatal(err)
	}
}

// TestLeaseTTLSurvivesLeaderChange: the leader checkpoints remaining TTLs, so
// a new leader continues a lease's countdown instead of restarting it.
func TestLeaseTTLSurvivesLeaderChange(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *Config) { cfg.LeaseCheckpointInterval = 100 * time.Millisecond })
	lead := c.leader()
	ctx := ctxFor(t)
	lease, err := c.client(lead).Grant(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2500 * time.Millisecond) // let the countdown and a checkpoint run
	c.stop(lead)
	newLead := c.leader()
	ttl, err := c.client(newLead).TimeToLive(ctx, lease.ID)
	if err != nil {
		t.Fatal(err)
	}
	if ttl.TTL > 58 || ttl.TTL <= 0 || ttl.GrantedTTL != 60 {
		t.Fatalf("after a leader change the lease has TTL %d of %d: its countdown restarted", ttl.TTL, ttl.GrantedTTL)
	}
	// A keep-alive gives it its full TTL again, also for the next leader.
	if _, err := c.client(newLead).KeepAliveOnce(ctx, lease.ID); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	c.start(lead)
	c.stop(newLead)
	final := c.leader()
	ttl, err = c.client(final).TimeToLive(ctx, lease.ID)
	if err != nil || ttl.TTL < 57 {
		t.Fatalf("after keep-alive and another leader change: TTL %d, err %v", ttl.TTL, err)
	}
}

// TestCorruptionCheck: a member whose stored history was altered behind
// raft's back is found by the leader's HashKV comparison; the CORRUPT alarm
// is raised and writes are refused until it is disarmed.
func TestCorruptionCheck(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *Config) { cfg.CorruptCheckInterval = 200 * time.Millisecond })
	lead := c.leader()
	ctx := ctxFor(t)
	cli := c.client(lead)
	for i := range 5 {
		if _, err := cli.Put(ctx, fmt.Sprintf("c/%d", i), "good"); err != nil {
			t.Fatal(err)
		}
	}
	victim := (lead + 1) % 3
	time.Sleep(300 * time.Millisecond) // let the victim apply everything
	c.stop(victim)
	corruptOneValue(t, filepath.Join(c.cfgs[victim].DataDir, "member", "db"))
	c.start(victim)

	deadline := time.Now().Add(10 * time.Second)
	for {
		alarms, err := cli.AlarmList(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(alarms.Alarms) == 1 && alarms.Alarms[0].Alarm.String() == "CORRUPT" {
			if alarms.Alarms[0].MemberID != c.members[victim].KV().ID() {
				t.Fatalf("CORRUPT raised for member %x, want the altered one %x", alarms.Alarms[0].MemberID, c.members[victim].KV().ID())
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no CORRUPT alarm: %v", alarms.Alarms)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := cli.Put(ctx, "c/refused", "x"); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("write with CORRUPT raised: %v", err)
	}
}

// corruptOneValue flips a byte in the value of one MVCC revision record.
func corruptOneValue(t *testing.T, dir string) {
	t.Helper()
	db, err := pebble.Open(dir, &pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte("k"), UpperBound: []byte("l")})
	if err != nil {
		t.Fatal(err)
	}
	if !it.Last() {
		t.Fatal("no revision records")
	}
	k := append([]byte(nil), it.Key()...)
	v := append([]byte(nil), it.Value()...)
	_ = it.Close()
	idx := bytes.LastIndex(v, []byte("good"))
	if idx < 0 {
		t.Fatalf("value of %x has no \"good\"", k)
	}
	v[idx] = 'b'
	if err := db.Set(k, v, pebble.Sync); err != nil {
		t.Fatal(err)
	}
}

// TestWatchRequiringLeaderEndsWithoutQuorum: a watch opened with
// clientv3.WithRequireLeader ends with "no leader" once its member has lost
// the quorum, so the client can go elsewhere.
func TestWatchRequiringLeaderEndsWithoutQuorum(t *testing.T) {
	c := newTestCluster(t, 3)
	c.leader()
	ctx := ctxFor(t)
	wch := c.client(0).Watch(clientv3.WithRequireLeader(ctx), "w/")
	if _, err := c.client(0).Put(ctx, "w/", "1"); err != nil {
		t.Fatal(err)
	}
	if wr := <-wch; len(wr.Events) != 1 {
		t.Fatalf("first event: %+v", wr)
	}
	c.stop(1)
	c.stop(2)
	for {
		select {
		case wr, ok := <-wch:
			if !ok {
				t.Fatal("watch channel closed without an error")
			}
			if err := wr.Err(); err != nil {
				if !strings.Contains(err.Error(), "no leader") {
					t.Fatalf("watch ended with %v, want no leader", err)
				}
				return
			}
		case <-ctx.Done():
			t.Fatal("watch requiring a leader survived the loss of quorum")
		}
	}
}

// TestPeerTLS: members talk over TLS when their peer URLs are https and
// peer certificates are configured, with client certificates required.
func TestPeerTLS(t *testing.T) {
	certs := testcerts.New(t)
	c := newTestCluster(t, 3, func(cfg *Config) {
		cfg.PeerTLS = TLSFiles{CertFile: certs.ServerCertFile, KeyFile: certs.ServerKeyFile, TrustedCAFile: certs.CAFile, ClientCertAuth: true}
		cfg.ListenPeerURLs = []string{strings.Replace(cfg.ListenPeerURLs[0], "http://", "https://", 1)}
		cfg.InitialCluster = strings.ReplaceAll(cfg.InitialCluster, "=http://", "=https://")
	})
	lead := c.leader()
	ctx := ctxFor(t)
	if _, err := c.client(lead).Put(ctx, "tls", "ok"); err != nil {
		t.Fatal(err)
	}
	got, err := c.client((lead+1)%3).Get(ctx, "tls")
	if err != nil || len(got.Kvs) != 1 {
		t.Fatalf("read on another member: %v %v", got, err)
	}
	// A plaintext peer cannot talk to a TLS member.
	if _, err := transport.FetchMembership(ctx, strings.Replace(c.cfgs[0].ListenPeerURLs[0], "https://", "http://", 1), nil); err == nil {
		t.Fatal("plaintext peer request to a TLS peer listener succeeded")
	}
}
