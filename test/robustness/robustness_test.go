package robustness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Environment variables of the long form.
const (
	EnvSoak         = "PHOTON_SOAK"          // "1" runs the long form
	EnvSoakDuration = "PHOTON_SOAK_DURATION" // traffic time of the long form, default 10m
	EnvSeed         = "PHOTON_ROBUSTNESS_SEED"
	EnvMembers      = "PHOTON_ROBUSTNESS_MEMBERS"
)

// runConfig is one form of the test.
type runConfig struct {
	members  int
	traffic  TrafficConfig
	duration time.Duration // traffic time
	// roundGrace is how much longer the traffic may run for the nemesis to
	// finish its first round (every fault kind), if it has not by duration.
	roundGrace   time.Duration
	nemesis      NemesisConfig
	checkTimeout time.Duration // porcupine
	minWrites    int           // acknowledged writes below which the run proved nothing
}

func loadConfig(t *testing.T) runConfig {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv(EnvSeed); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", EnvSeed, s, err)
		}
		seed = v
	}
	cfg := runConfig{
		members: 3,
		traffic: TrafficConfig{Clients: 6, LeaseClients: 3, LeaseKeys: 6, LeaseTTL: 2, Keys: 8, MaxOps: 60000, OpTimeout: 2 * time.Second, Seed: seed},
		// Bounded so that `make test` stays within two minutes on two
		// busy cores: one round of faults takes about a minute.
		duration:   60 * time.Second,
		roundGrace: 45 * time.Second,
		nemesis: NemesisConfig{MaxActions: 20, MinGap: 500 * time.Millisecond, MaxGap: 1500 * time.Millisecond,
			MinDown: 300 * time.Millisecond, MaxDown: 2500 * time.Millisecond,
			MinPartition: 2 * time.Second, MaxPartition: 5 * time.Second, Seed: seed},
		checkTimeout: 2 * time.Minute,
		minWrites:    100,
	}
	if s := os.Getenv(EnvMembers); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 3 {
			t.Fatalf("%s=%q: want a number >= 3 (one member is taken down at a time)", EnvMembers, s)
		}
		cfg.members = n
	}
	if os.Getenv(EnvSoak) == "1" {
		cfg.duration = 10 * time.Minute
		if s := os.Getenv(EnvSoakDuration); s != "" {
			d, err := time.ParseDuration(s)
			if err != nil {
				t.Fatalf("%s=%q: %v", EnvSoakDuration, s, err)
			}
			cfg.duration = d
		}
		cfg.traffic.MaxOps = 1 << 40 // bounded by time only
		// Paced, and 8 more keys per minute, to keep the checker's memory
		// (quadratic in operations per key) in hand: about 1,500
		// operations per key whatever the duration.
		cfg.traffic.Rate = 200
		cfg.traffic.Keys = max(8, int(8*cfg.duration.Minutes()))
		// The lease clients do about 10 operations a second between them.
		cfg.traffic.LeaseKeys = max(4, int(cfg.duration.Minutes()/2))
		cfg.nemesis.MaxActions = 1 << 30
		cfg.checkTimeout = 30 * time.Minute
	}
	return cfg
}

// TestRobustness runs a cluster under client traffic and failures and
// checks the history, the event log and the watch streams (see the package
// documentation).
func TestRobustness(t *testing.T) {
	cfg := loadConfig(t)
	// Starting, final checks and porcupine need a few minutes beyond the
	// traffic in the worst case; better say so than die in a timeout panic.
	if deadline, ok := t.Deadline(); ok && time.Until(deadline) < cfg.duration+cfg.roundGrace+3*time.Minute {
		t.Fatalf("go test -timeout leaves %v, the run needs %v plus a few minutes: pass -timeout 0 (or larger)",
			time.Until(deadline).Round(time.Second), cfg.duration)
	}
	kind, bin := ServerBinary(t)
	t.Logf("%s cluster of %d, traffic %v (at most %d ops), seed %d (%s=%d reproduces the choices)",
		kind, cfg.members, cfg.duration, cfg.traffic.MaxOps, cfg.traffic.Seed, EnvSeed, cfg.traffic.Seed)

	c := NewCluster(t, ClusterOptions{Members: cfg.members, Kind: kind, Binary: bin})
	ctx := t.Context()
	if err := c.Start(ctx); err != nil {
		var unsupported *UnsupportedError
		if errors.As(err, &unsupported) {
			t.Skipf("%s: %v", kind, err)
		}
		t.Fatalf("start cluster: %v", err)
	}
	if l, err := c.Leader(ctx); err == nil {
		t.Logf("cluster up, leader %s", l.Name)
	}

	// Watchers, one per member, for the whole run.
	wctx, stopWatchers := context.WithCancel(ctx)
	var watchers []*Watcher
	var wwg sync.WaitGroup
	for _, m := range c.Members {
		w := NewWatcher("watch@"+m.Name, m)
		watchers = append(watchers, w)
		wwg.Go(func() { w.Run(wctx) })
	}
	defer func() { stopWatchers(); wwg.Wait() }()

	rec := NewRecorder()
	tr := NewTraffic(c, rec, cfg.traffic)
	nem := NewNemesis(c, cfg.nemesis, rec.Now, tr)
	tctx, stopTraffic := context.WithCancel(ctx)
	defer stopTraffic()
	go func() {
		defer stopTraffic()
		select {
		case <-time.After(cfg.duration):
		case <-tctx.Done():
			return
		}
		// Let the nemesis finish its first round, so that every kind of
		// fault is covered, if it was slow.
		select {
		case <-nem.RoundDone():
		case <-time.After(cfg.roundGrace):
		case <-tctx.Done():
		}
	}()
	nemErr := make(chan error, 1)
	go func() { nemErr <- nem.Run(tctx) }()
	var problems Problems
	if err := tr.Run(tctx); err != nil {
		problems.Addf("traffic: %v", err)
	}
	stopTraffic() // the op budget may have ended the traffic first
	if err := <-nemErr; err != nil {
		problems.Addf("nemesis: %v", err)
	}
	t.Logf("nemesis: %d actions:%s", len(nem.Actions()), nem.Summary())
	t.Logf("peer network: %s", c.Net.Stats())

	a := &Artifacts{Streams: map[string][]Event{}, Nemesis: nem.Actions()}
	for _, m := range c.Members {
		a.Logs = append(a.Logs, m.LogPath)
	}
	// fail keeps what there is for debugging and ends the test.
	fail := func(format string, args ...any) {
		t.Helper()
		a.Raw = rec.Records()
		sortRecords(a.Raw)
		a.Summary = fmt.Sprintf("%s cluster, seed %d\nnemesis:%s\npeer network: %s\nproblems:%s", kind, cfg.traffic.Seed, nem.Summary(), c.Net.Stats(), problems.String())
		dir, err := a.Save()
		if err != nil {
			t.Errorf("saving the history for debugging: %v", err)
		}
		t.Fatalf("%s (history kept in %s)%s", fmt.Sprintf(format, args...), dir, problems.String())
	}

	hctx, cancel := context.WithTimeout(ctx, 2*readyTimeout)
	defer cancel()
	if err := c.WaitHealthy(hctx); err != nil {
		problems.Addf("cluster not healthy after the traffic: %v", err)
		fail("cluster not healthy")
	}
	// Catching up, the event log and HashKV get their own time.
	hctx, cancel = context.WithTimeout(ctx, 3*readyTimeout)
	defer cancel()
	// No lease may end after the final revision is read.
	if err := tr.DrainLeases(hctx); err != nil {
		problems.Addf("revoking the leases left: %v", err)
		fail("lease drain failed")
	}

	finalRev, err := finalReads(hctx, c, tr, rec)
	if err != nil {
		problems.Addf("final reads: %v", err)
		fail("final reads failed")
	}
	for _, w := range watchers {
		if err := w.WaitRev(hctx, finalRev); err != nil && finalRev > 1 {
			problems.Addf("%v (sessions %+v)", err, w.Sessions())
		}
	}
	stopWatchers()
	wwg.Wait()
	events, err := FetchEventLog(hctx, c.Endpoints(), finalRev)
	a.Events = events
	if err != nil {
		problems.Addf("final event log: %v", err)
	}
	problems.Merge("", compareHashKV(hctx, c, finalRev))
	if err := c.StopAll(); err != nil {
		problems.Addf("graceful stop at the end: %v", err)
	}

	a.Raw = rec.Records()
	sortRecords(a.Raw)
	problems.Merge("", tr.Protocol())
	problems.Merge("", CheckEventLog(events, finalRev))
	resolved, p := ResolveHistory(a.Raw, events)
	a.Resolved = resolved
	problems.Merge("", p)
	problems.Merge("", CheckReads(resolved, events, finalRev))
	problems.Merge("", CheckRevisions(resolved))
	problems.Merge("", CheckLeases(a.Raw, resolved))
	resumes := 0
	for _, w := range watchers {
		got := w.Events()
		a.Streams[w.Name] = got
		problems.Merge(w.Name+": ", w.Problems())
		problems.Merge(w.Name+": ", CheckWatchStream(got, events))
		sessions := w.Sessions()
		resumes += len(sessions) - 1
		t.Logf("%s: %d events over %d sessions; sessions ended by: %s", w.Name, len(got), len(sessions), endReasons(sessions))
	}

	st := summarize(a.Raw, resolved, events)
	t.Logf("history: %s; final revision %d, %d events", st, finalRev, len(events))
	if st.pending > 0 {
		t.Logf("errors of pending operations: %s", errorCounts(a.Raw))
	}
	if st.ackedWrites < cfg.minWrites {
		problems.Addf("only %d acknowledged writes: the run proves too little", st.ackedWrites)
	}
	if len(nem.Actions()) == 0 {
		problems.Addf("the nemesis injected no failure")
	}
	faults := map[string]int{}
	for _, act := range nem.Actions() {
		faults[act.Fault]++
	}
	if faults[FaultIsolate] == 0 {
		problems.Addf("the nemesis never isolated a member (faults: %v)", faults)
	}
	if st.byKind[OpGrant] == 0 || st.leaseEnds+st.revokedKeys == 0 {
		problems.Addf("no lease deleted a key (%d grants): the lease checks proved nothing", st.byKind[OpGrant])
	}
	restarts := 0
	for _, act := range nem.Actions() {
		if act.Fault != FaultPause {
			restarts++
		}
	}
	if resumes == 0 && restarts > 0 {
		problems.Addf("no watch stream was ever resumed despite %d member restarts", restarts)
	}

	t0 := time.Now()
	res, info := CheckLinearizable(resolved, cfg.checkTimeout)
	t.Logf("porcupine: %s in %v", res, time.Since(t0).Round(time.Millisecond))
	switch res {
	case porcupine.Ok:
	case porcupine.Illegal:
		a.Info = &info
		problems.Addf("history is not linearizable (see linearization.html)")
	default:
		a.Info = &info
		problems.Addf("linearizability check gave %s within %v", res, cfg.checkTimeout)
	}

	// The same checker must reject this very history with one read made stale.
	if res == porcupine.Ok {
		if bad, desc, ok := StaleReadMutation(resolved); !ok {
			problems.Addf("self-check: no read in the history to make stale")
		} else if r, _ := CheckLinearizable(bad, cfg.checkTimeout); r != porcupine.Illegal {
			problems.Addf("self-check: porcupine says %s for the history with a stale read injected (%s)", r, desc)
		} else {
			t.Logf("self-check: porcupine rejects the history with a stale read injected")
		}
		// And with a read of a revoked lease's key.
		if bad, desc, ok := RevokedReadMutation(resolved, events); !ok {
			if st.revokedKeys > 0 {
				problems.Addf("self-check: no read after a revoke that deleted its key, to make it read the key")
			}
		} else if r, _ := CheckLinearizable(bad, cfg.checkTimeout); r != porcupine.Illegal {
			problems.Addf("self-check: porcupine says %s for the history with a read of a revoked lease's key injected (%s)", r, desc)
		} else {
			t.Logf("self-check: porcupine rejects the history with a read of a revoked lease's key injected")
		}
	}

	if !problems.Empty() {
		a.Summary = fmt.Sprintf("%s cluster, seed %d\nhistory: %s\nnemesis:%s\npeer network: %s\nproblems:%s", kind, cfg.traffic.Seed, st, nem.Summary(), c.Net.Stats(), problems.String())
		dir, err := a.Save()
		if err != nil {
			t.Errorf("saving the history for debugging: %v", err)
		}
		t.Errorf("robustness checks failed (history, event log and visualization kept in %s):%s", dir, problems.String())
	}
}

// finalReads reads every key once more through all endpoints, as part of
// the history, and returns the store's final revision.
func finalReads(ctx context.Context, c *Cluster, tr *Traffic, rec *Recorder) (int64, error) {
	cli, err := NewClient(c.Endpoints())
	if err != nil {
		return 0, err
	}
	defer cli.Close()
	id := tr.NewClientID()
	for _, k := range tr.cfg.KeyNames() {
		gctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		r := Record{Client: id, Member: "all (final read)", Input: Input{Kind: OpGet, Key: k}, Call: rec.Now()}
		resp, err := cli.Get(gctx, k)
		r.Return = rec.Now()
		cancel()
		if err != nil {
			return 0, fmt.Errorf("get %s: %w", k, err)
		}
		r.Output = readOutput((*pb.RangeResponse)(resp))
		rec.Add(r)
	}
	gctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := cli.Get(gctx, KeyPrefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return 0, fmt.Errorf("final revision: %w", err)
	}
	return (*pb.RangeResponse)(resp).GetHeader().GetRevision(), nil
}

// compareHashKV waits for every member to apply finalRev and compares
// their HashKV at it: a member that restarted must have caught up to
// exactly the same data.
func compareHashKV(ctx context.Context, c *Cluster, finalRev int64) Problems {
	var p Problems
	cli, err := NewClient(c.Endpoints())
	if err != nil {
		p.Addf("hashkv: %v", err)
		return p
	}
	defer cli.Close()
	hashes := map[uint32][]string{}
	for _, m := range c.Members {
		var last error
		for {
			st, err := m.status(ctx, cli)
			if err == nil && st.rev >= finalRev {
				break
			}
			if err == nil {
				err = fmt.Errorf("at revision %d, want %d", st.rev, finalRev)
			}
			last = err
			if ctx.Err() != nil {
				p.Addf("%s never reached the final revision: %v", m.Name, last)
				return p
			}
			sleep(ctx, 100*time.Millisecond)
		}
		resp, err := cli.HashKV(ctx, m.Endpoint(), finalRev)
		if err != nil {
			p.Addf("hashkv of %s: %v", m.Name, err)
			continue
		}
		h := (*pb.HashKVResponse)(resp).GetHash()
		hashes[h] = append(hashes[h], m.Name)
	}
	if len(hashes) > 1 {
		var parts []string
		for h, ms := range hashes {
			parts = append(parts, fmt.Sprintf("%x on %s", h, strings.Join(ms, ",")))
		}
		p.Addf("members disagree on HashKV at revision %d: %s", finalRev, strings.Join(parts, "; "))
	}
	return p
}

// endReasons counts why watch sessions ended, most frequent first.
func endReasons(sessions []Session) string {
	counts := map[string]int{}
	for _, s := range sessions {
		counts[s.End]++
	}
	reasons := make([]string, 0, len(counts))
	for r := range counts {
		reasons = append(reasons, r)
	}
	sort.Slice(reasons, func(i, j int) bool { return counts[reasons[i]] > counts[reasons[j]] })
	parts := make([]string, len(reasons))
	for i, r := range reasons {
		parts[i] = fmt.Sprintf("%dx %q", counts[r], r)
	}
	return strings.Join(parts, ", ")
}

// errorCounts counts the errors that left operations pending, by kind of
// operation and message, most frequent first.
func errorCounts(recs []Record) string {
	counts := map[string]int{}
	for i := range recs {
		if recs[i].Output.Unknown {
			counts[string(recs[i].Input.Kind)+": "+recs[i].Err]++
		}
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		return counts[keys[i]] > counts[keys[j]] || counts[keys[i]] == counts[keys[j]] && keys[i] < keys[j]
	})
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "\n  %5d %s", counts[k], k)
	}
	return b.String()
}

type historyStats struct {
	ops, acked, pending, resolved, ackedWrites int
	byKind                                     map[OpKind]int
	// Leases: keep-alives answered "gone", revokes answered "not found",
	// lease-ends found in the event log (expiries, mostly), and keys a
	// revoke deleted at its own revision.
	keepAliveGone, revokeNotFound, leaseEnds, revokedKeys int
}

func summarize(raw, resolved []Record, events []Event) historyStats {
	s := historyStats{ops: len(raw), byKind: map[OpKind]int{}}
	for i := range raw {
		s.byKind[raw[i].Input.Kind]++
		if raw[i].Output.NotFound {
			if raw[i].Input.Kind == OpKeepAlive {
				s.keepAliveGone++
			} else {
				s.revokeNotFound++
			}
		}
		if raw[i].Acked() {
			s.acked++
			if raw[i].IsWrite() {
				s.ackedWrites++
			}
		} else {
			s.pending++
		}
	}
	for i := range resolved {
		r := &resolved[i]
		switch {
		case r.Input.Kind == OpLeaseEnd:
			s.leaseEnds++
		case r.Output.Resolved:
			s.resolved++
		}
	}
	s.revokedKeys = revokedKeys(resolved, events)
	return s
}

// revokedKeys counts the acknowledged revokes that deleted their key: the
// event log has the key's DELETE, attached to the lease, at the revoke's
// revision.
func revokedKeys(recs []Record, events []Event) int {
	at := map[int64]Event{}
	for _, e := range events {
		at[e.Rev] = e
	}
	n := 0
	for i := range recs {
		r := &recs[i]
		if r.Input.Kind != OpRevoke || !r.HasRev() {
			continue
		}
		if e, ok := at[r.Output.Rev]; ok && e.Type == EventDelete && e.Key == r.Input.Key && e.PrevLease == r.Input.Lease {
			n++
		}
	}
	return n
}

func (s historyStats) String() string {
	return fmt.Sprintf("%d ops (get %d, put %d, txn %d, delete %d, grant %d, keepalive %d (%d said gone), revoke %d (%d not found)): %d acknowledged (%d writes), %d pending of which %d resolved from the event log; %d keys deleted by a revoke, %d by the end of their lease (expiry or unanswered revoke)",
		s.ops, s.byKind[OpGet], s.byKind[OpPut], s.byKind[OpTxn], s.byKind[OpDelete], s.byKind[OpGrant], s.byKind[OpKeepAlive], s.keepAliveGone,
		s.byKind[OpRevoke], s.revokeNotFound, s.acked, s.ackedWrites, s.pending, s.resolved, s.revokedKeys, s.leaseEnds)
}
