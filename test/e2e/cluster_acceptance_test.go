package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// Bounds of the acceptance tests. They are failure bounds, not performance
// targets: the machine is shared, and bench/chainfire measures failover.
const (
	// failoverBound is how long a cluster may take after kill -9 of its
	// leader until a write through the remaining members succeeds.
	failoverBound = 30 * time.Second
	// convergeBound is how long members may take to apply the same log.
	convergeBound = 30 * time.Second
	// promoteBound is how long a new learner may take to catch up.
	promoteBound = 30 * time.Second
	// removedExitBound is how long a removed member may take to stop.
	removedExitBound = 20 * time.Second
	// memberListBound is how long a membership change may take to show in
	// `member list` on whichever member etcdctl asks.
	memberListBound = 10 * time.Second
)

// TestClusterAcceptanceFailover: three members started with one
// --initial-cluster form one cluster; kill -9 of the leader leaves a cluster
// that elects a new leader and takes writes; the old leader restarted on its
// data dir catches up to the same HashKV.
func TestClusterAcceptanceFailover(t *testing.T) {
	c := StartCluster(t, ClusterOptions{})
	all := c.Endpoints()
	waitMembers(t, c, all, c.Members)
	lines := strings.Split(strings.TrimSpace(c.CtlAt(t, all, "member", "list")), "\n")
	if len(lines) != 3 {
		t.Fatalf("etcdctl member list printed %d lines, want 3:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	for _, l := range lines {
		wantContains(t, "member list line", l, ", started, ")
	}

	for i := range 10 {
		c.CtlAt(t, all, "put", fmt.Sprintf("f/%02d", i), fmt.Sprintf("v%d", i))
	}
	lead := c.Leader(t)
	others := c.Others(lead)
	t.Logf("leader is %s; kill -9", lead.Name)
	lead.Kill()
	killed := time.Now()
	attempts := 0
	for {
		attempts++
		// A short command timeout, so that a put whose proposal went to the
		// dead leader is retried instead of waited out; it also bounds the
		// resolution of the measurement.
		r := lead.RunEtcdctlAt(c.Endpoints(others...), nil, "", "put", "f/failover", "new-leader", "--command-timeout=500ms")
		if r.Err == nil {
			wantOut(t, "put after failover", r.Stdout, "OK\n")
			break
		}
		t.Logf("put attempt %d failed %v after the kill: %s", attempts, time.Since(killed).Round(time.Millisecond), lastLine(r.Stderr))
		if time.Since(killed) > failoverBound {
			t.Fatalf("no write succeeded within %v of kill -9 of the leader; last: %v", failoverBound, r)
		}
	}
	// Includes etcdctl's process start and dial (tens of milliseconds).
	t.Logf("failover: first successful etcdctl put %v after kill -9 of leader %s (attempt %d)",
		time.Since(killed).Round(time.Millisecond), lead.Name, attempts)
	newLead := c.Leader(t)
	t.Logf("new leader is %s", newLead.Name)

	// History the old leader misses: overwrites and a delete.
	for i := range 5 {
		c.CtlAt(t, c.Endpoints(others...), "put", fmt.Sprintf("f/%02d", i), fmt.Sprintf("w%d", i))
	}
	c.CtlAt(t, c.Endpoints(others...), "del", "f/09")

	lead.Start()
	lead.WaitReady()
	hs := c.WaitHashKVEqual(t, all, 3, convergeBound)
	t.Logf("hashkv after restart: %d members at revision %d, hash %d", len(hs), hs[0].HashKV.HashRevision, hs[0].HashKV.Hash)
	wantOut(t, "serializable get on the restarted member", lead.Ctl(t, "get", "f/failover", "--consistency=s", "--print-value-only"), "new-leader\n")
	wantSameKeys(t, c.Members, "f/")
	waitMembers(t, c, all, c.Members)
}

// TestClusterAcceptanceMembership: a learner is added with etcdctl, started
// with --initial-cluster-state existing and the --initial-cluster `member add`
// printed, promoted once caught up, takes writes; removing it stops its
// process, and so does removing a voter (the leader). `member list` shows
// every step.
func TestClusterAcceptanceMembership(t *testing.T) {
	c := StartCluster(t, ClusterOptions{})
	voters := c.Endpoints()
	for i := range 20 {
		c.CtlAt(t, voters, "put", fmt.Sprintf("pre/%02d", i), "v")
	}

	var initialCluster string // from member add, read when m4 starts
	m4 := NewServer(t, Options{
		Name:       "m4",
		FixedPorts: true,
		Args:       func(s *Server) []string { return s.MemberArgs(initialCluster, "existing", c.Token) },
	})
	out := ctlRetrying(t, c, voters, "member", "add", "m4", "--learner", "--peer-urls="+m4.PeerURL())
	// etcdctl prints ids with %16x: short ones are padded with spaces.
	m := wantMatch(t, "member add", out,
		`Member +([0-9a-f]+) added as learner to cluster +[0-9a-f]+\n\n`+
			`ETCD_NAME="m4"\nETCD_INITIAL_CLUSTER="([^"]*)"\n`+
			`ETCD_INITIAL_ADVERTISE_PEER_URLS="([^"]*)"\nETCD_INITIAL_CLUSTER_STATE="existing"\n`)
	if m == nil {
		t.FailNow()
	}
	m4ID := m[1]
	initialCluster = m[2]
	wantOut(t, "member add: advertise peer URLs", m[3], m4.PeerURL())
	gotIC := strings.Split(initialCluster, ",")
	wantIC := strings.Split(c.InitialCluster()+",m4="+m4.PeerURL(), ",")
	slices.Sort(gotIC)
	slices.Sort(wantIC)
	if !slices.Equal(gotIC, wantIC) {
		t.Errorf("member add printed ETCD_INITIAL_CLUSTER %q, want the members %q", gotIC, wantIC)
	}
	waitMemberList(t, c, voters, "after member add --learner", func(ms []CtlMember) string {
		if len(ms) != 4 {
			return fmt.Sprintf("%d members, want 4", len(ms))
		}
		l := findMember(ms, m4ID)
		if l == nil || !l.IsLearner || l.Name != "" || !slices.Equal(l.PeerURLs, []string{m4.PeerURL()}) {
			return fmt.Sprintf("learner %s missing, not a learner, or named before it started: %+v", m4ID, l)
		}
		return ""
	})
	wantContains(t, "member list with an unstarted learner", c.CtlAt(t, voters, "member", "list"), m4ID+", unstarted, , "+m4.PeerURL()+", , true")

	m4.Start()
	began := time.Now()
	attempts := 0
	for {
		attempts++
		r := m4.RunEtcdctlAt(voters, nil, "", "member", "promote", m4ID)
		if r.Err == nil {
			wantMatch(t, "member promote", r.Stdout, `Member +`+m4ID+` promoted in cluster +[0-9a-f]+\n`)
			break
		}
		// etcd's message is "can only promote a learner member which is in
		// sync with leader"; anything else is a failure.
		if !strings.Contains(r.Stderr, "in sync with leader") && !strings.Contains(r.Stderr, "learner not ready") {
			t.Fatalf("member promote: %v", r)
		}
		if !m4.Running() {
			t.Fatalf("m4 exited while catching up as a learner (log below)")
		}
		if time.Since(began) > promoteBound {
			t.Fatalf("learner not promotable within %v: %v", promoteBound, r)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("learner m4 promoted %v after its start (%d attempts)", time.Since(began).Round(time.Millisecond), attempts)
	m4.WaitReady()
	waitMembers(t, c, voters, append(slices.Clone(c.Members), m4))

	wantOut(t, "put through m4", m4.Ctl(t, "put", "via-m4", "x"), "OK\n")
	wantOut(t, "linearizable get of m4's write through m1", c.Members[0].Ctl(t, "get", "via-m4", "--print-value-only"), "x\n")
	var got ctlGet
	decodeJSON(t, "m4 has the history from before it joined", m4.Ctl(t, "get", "pre/", "--prefix", "-w", "json"), &got)
	if got.Count != 20 {
		t.Errorf("m4 counts %d keys under pre/, want 20", got.Count)
	}
	c.WaitHashKVEqual(t, voters, 4, convergeBound)

	wantMatch(t, "member remove m4", ctlRetrying(t, c, voters, "member", "remove", m4ID), `Member +`+m4ID+` removed from cluster +[0-9a-f]+\n`)
	wantStopsByItself(t, m4)
	waitMembers(t, c, voters, c.Members)

	lead := c.Leader(t)
	rest := c.Others(lead)
	var leadID string
	for _, mem := range c.MemberList(t, voters) {
		if mem.Name == lead.Name {
			leadID = mem.HexID()
		}
	}
	if leadID == "" {
		t.Fatalf("leader %s not in member list", lead.Name)
	}
	t.Logf("removing the leader %s (%s)", lead.Name, leadID)
	wantMatch(t, "member remove of the leader", ctlRetrying(t, c, c.Endpoints(rest...), "member", "remove", leadID), `Member +`+leadID+` removed from cluster +[0-9a-f]+\n`)
	wantStopsByItself(t, lead)
	c.Members = rest
	waitMembers(t, c, c.Endpoints(), c.Members)
	wantOut(t, "put after removing the leader", c.CtlAt(t, c.Endpoints(), "put", "after-remove", "y"), "OK\n")
	newLead := c.Leader(t)
	t.Logf("new leader is %s", newLead.Name)
	c.WaitHashKVEqual(t, c.Endpoints(), 2, convergeBound)
	wantSameKeys(t, c.Members, "")
}

// TestClusterAcceptanceSnapshotRestore is disaster recovery of a cluster:
// `etcdctl snapshot save` from a live member of a 3-member cluster, `chainfire
// snapshot restore` into three new data dirs, and a new 3-member cluster
// started there serves the same keys, revisions, lease and HashKV on every
// member.
func TestClusterAcceptanceSnapshotRestore(t *testing.T) {
	if FindBinaries(t).Kind != KindChainfire {
		t.Skip("restore is chainfire's own tool; etcd's is etcdutl")
	}
	c := StartCluster(t, ClusterOptions{})
	all := c.Endpoints()
	for _, kv := range [][2]string{{"d/a", "1"}, {"d/b", "2"}, {"d/a", "1b"}, {"d/c", "3"}, {"d/d", "4"}} {
		c.CtlAt(t, all, "put", kv[0], kv[1])
	}
	c.CtlAt(t, all, "del", "d/b")
	c.CtlAt(t, all, "compact", "3")
	lm := wantMatch(t, "lease grant", c.CtlAt(t, all, "lease", "grant", "600"), `lease ([0-9a-f]+) granted with TTL\(600s\)\n`)
	if lm == nil {
		t.FailNow()
	}
	leaseID := lm[1]
	c.CtlAt(t, all, "put", "d/leased", "l", "--lease="+leaseID)
	c.CtlAt(t, all, "put", "d/c", "3b")

	// From a follower: any live member is a valid source.
	src := c.Others(c.Leader(t))[0]
	hsrc := c.WaitHashKVEqual(t, all, 3, convergeBound)[0].HashKV
	before := getPrefix(t, src, "d/")
	if len(before.Kvs) != 4 {
		t.Fatalf("origin serves %d keys under d/, want d/a, d/c, d/d and d/leased: %+v", len(before.Kvs), before.Kvs)
	}
	// History retained after the compaction must survive the restore.
	const oldRev = "4"
	historyBefore := src.Ctl(t, "get", "d/", "--prefix", "--rev="+oldRev, "--consistency=s", "-w", "json")
	var stBefore []CtlEndpointStatus
	decodeJSON(t, "endpoint status", src.Ctl(t, "endpoint", "status", "-w", "json"), &stBefore)
	path := filepath.Join(t.TempDir(), "backup.db")
	wantContains(t, "snapshot save", src.Ctl(t, "snapshot", "save", path), "Snapshot saved at "+path)
	// The old cluster is gone in a disaster; stopping it also spares the cores.
	for _, m := range c.Members {
		if err := m.Stop(); err != nil && !ExitedBySIGTERM(err) {
			t.Errorf("stop %s: %v", m.Name, err)
		}
	}

	nc := NewCluster(t, ClusterOptions{Prepare: func(t testing.TB, s *Server) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, s.Binaries().Server, "snapshot", "restore", path, "--data-dir", s.DataDir).CombinedOutput()
		if err != nil {
			t.Fatalf("snapshot restore into %s: %v\n%s", s.Name, err, out)
		}
	}})
	nc.Start()
	t.Logf("restored %s (revision %d, hash %d) from %s into a new cluster", path, hsrc.HashRevision, hsrc.Hash, src.Name)
	nall := nc.Endpoints()
	waitMembers(t, nc, nall, nc.Members)
	hs := nc.WaitHashKVEqual(t, nall, 3, convergeBound)
	for _, h := range hs {
		if h.HashKV.Hash != hsrc.Hash || h.HashKV.CompactRevision != hsrc.CompactRevision || h.HashKV.HashRevision != hsrc.HashRevision {
			t.Errorf("restored member %s: hashkv %d (compact %d, revision %d), origin %d (compact %d, revision %d)", h.Endpoint,
				h.HashKV.Hash, h.HashKV.CompactRevision, h.HashKV.HashRevision, hsrc.Hash, hsrc.CompactRevision, hsrc.HashRevision)
		}
	}
	for _, m := range nc.Members {
		after := getPrefix(t, m, "d/")
		if after.Header.Revision != before.Header.Revision {
			t.Errorf("restored member %s at revision %d, origin %d", m.Name, after.Header.Revision, before.Header.Revision)
		}
		if !reflect.DeepEqual(after.Kvs, before.Kvs) {
			t.Errorf("restored member %s serves\n%+v\norigin had\n%+v", m.Name, after.Kvs, before.Kvs)
		}
		var hb, ha ctlGet
		decodeJSON(t, "origin history", historyBefore, &hb)
		if len(hb.Kvs) != 2 {
			t.Fatalf("origin served %d keys at revision %s, want d/a and d/b", len(hb.Kvs), oldRev)
		}
		decodeJSON(t, "restored history", m.Ctl(t, "get", "d/", "--prefix", "--rev="+oldRev, "--consistency=s", "-w", "json"), &ha)
		if !reflect.DeepEqual(ha.Kvs, hb.Kvs) {
			t.Errorf("restored member %s at revision %s serves\n%+v\norigin served\n%+v", m.Name, oldRev, ha.Kvs, hb.Kvs)
		}
		r := m.RunEtcdctl(nil, "", "get", "d/a", "--rev=2", "--consistency=s")
		if r.Err == nil || !strings.Contains(r.Stderr, "required revision has been compacted") {
			t.Errorf("restored member %s: get below the compaction revision: %v", m.Name, r)
		}
		wantMatch(t, "restored lease on "+m.Name, m.Ctl(t, "lease", "timetolive", leaseID, "--keys"),
			`lease `+leaseID+` granted with TTL\(600s\), remaining\(\d+s\), attached keys\(\[d/leased\]\)\n`)
	}
	var stAfter []CtlEndpointStatus
	decodeJSON(t, "endpoint status", nc.Members[0].Ctl(t, "endpoint", "status", "-w", "json"), &stAfter)
	if len(stBefore) != 1 || len(stAfter) != 1 || stAfter[0].Status.Header.ClusterID == stBefore[0].Status.Header.ClusterID {
		t.Errorf("restored cluster id %v, origin %v: want a new cluster", stAfter, stBefore)
	}
	var put ctlPut
	decodeJSON(t, "put after restore", nc.CtlAt(t, nall, "put", "d/new", "n", "-w", "json"), &put)
	if put.Header.Revision != before.Header.Revision+1 {
		t.Errorf("first put after restore at revision %d, want %d", put.Header.Revision, before.Header.Revision+1)
	}
	nc.WaitHashKVEqual(t, nall, 3, convergeBound)
}

// getPrefix is a serializable `etcdctl get --prefix -w json` on s alone: what
// that member itself has applied.
func getPrefix(t testing.TB, s *Server, prefix string) ctlGet {
	t.Helper()
	var g ctlGet
	args := []string{"get", prefix, "--prefix", "--consistency=s", "-w", "json"}
	if prefix == "" {
		args = []string{"get", "", "--from-key", "--consistency=s", "-w", "json"}
	}
	decodeJSON(t, "get on "+s.Name, s.Ctl(t, args...), &g)
	return g
}

// wantSameKeys fails the test unless every member comes to serve the same
// keys (with revisions, versions and leases) at the same revision from its
// own state (serializable reads) within convergeBound. It waits rather than
// compares once: a put whose client timed out may still be committed later,
// as in etcd, and reach the members one after another.
func wantSameKeys(t testing.TB, members []*Server, prefix string) {
	t.Helper()
	deadline := time.Now().Add(convergeBound)
	for {
		first := getPrefix(t, members[0], prefix)
		var diffs []string
		for _, m := range members[1:] {
			g := getPrefix(t, m, prefix)
			if g.Header.Revision != first.Header.Revision || !reflect.DeepEqual(g.Kvs, first.Kvs) {
				diffs = append(diffs, fmt.Sprintf("%s at revision %d serves\n%+v\n%s at revision %d serves\n%+v",
					m.Name, g.Header.Revision, g.Kvs, members[0].Name, first.Header.Revision, first.Kvs))
			}
		}
		if len(diffs) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("members still differ after %v:\n%s", convergeBound, strings.Join(diffs, "\n"))
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ctlRetrying is Cluster.CtlAt for membership changes, retried while the
// cluster answers "unhealthy cluster": etcd refuses them until every member
// has been connected for a few seconds (--strict-reconfig-check).
func ctlRetrying(t testing.TB, c *Cluster, endpoints string, args ...string) string {
	t.Helper()
	deadline := time.Now().Add(memberListBound)
	for {
		r := c.Members[0].RunEtcdctlAt(endpoints, nil, "", args...)
		if r.Err == nil {
			return r.Stdout
		}
		if !strings.Contains(r.Stderr, "unhealthy cluster") || time.Now().After(deadline) {
			t.Fatalf("%v", r)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// wantStopsByItself fails the test unless the removed member s ends by
// itself (etcd's behaviour, and docs/chainfire.md's) within removedExitBound;
// one that does not is killed so that the test can go on.
func wantStopsByItself(t testing.TB, s *Server) {
	t.Helper()
	exited, err := s.WaitExit(removedExitBound)
	if !exited {
		t.Errorf("removed member %s still running %v after `member remove` returned, want it to stop by itself", s.Name, removedExitBound)
		s.Kill()
		return
	}
	t.Logf("removed member %s stopped by itself: exit %v", s.Name, err)
}

// lastLine is the last non-empty line of s, etcdctl's error message.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func findMember(ms []CtlMember, hexID string) *CtlMember {
	for i := range ms {
		if ms[i].HexID() == hexID {
			return &ms[i]
		}
	}
	return nil
}

// waitMembers waits until `member list` through endpoints shows exactly
// want, started voters with their names, peer URLs and client URLs.
func waitMembers(t testing.TB, c *Cluster, endpoints string, want []*Server) {
	t.Helper()
	waitMemberList(t, c, endpoints, fmt.Sprintf("%d started voters", len(want)), func(ms []CtlMember) string {
		if len(ms) != len(want) {
			return fmt.Sprintf("%d members, want %d", len(ms), len(want))
		}
		for _, w := range want {
			found := false
			for _, m := range ms {
				found = found || (m.Name == w.Name && !m.IsLearner &&
					slices.Equal(m.PeerURLs, []string{w.PeerURL()}) && slices.Equal(m.ClientURLs, []string{w.ClientURL()}))
			}
			if !found {
				return fmt.Sprintf("no started voter %s with peer URL %s and client URL %s", w.Name, w.PeerURL(), w.ClientURL())
			}
		}
		return ""
	})
}

// waitMemberList polls `member list -w json` through endpoints until check
// returns "" (it returns what is wrong otherwise): a change applied by one
// member reaches the one etcdctl asks a moment later.
func waitMemberList(t testing.TB, c *Cluster, endpoints, what string, check func([]CtlMember) string) {
	t.Helper()
	deadline := time.Now().Add(memberListBound)
	for {
		ms := c.MemberList(t, endpoints)
		problem := check(ms)
		if problem == "" {
			return
		}
		if time.Now().After(deadline) {
			b, _ := json.Marshal(ms)
			t.Fatalf("member list %s: %s within %v; last list %s", what, problem, memberListBound, b)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
