package robustness

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"
)

// NemesisConfig bounds the failures injected.
type NemesisConfig struct {
	MaxActions int           // failures injected at most
	MinGap     time.Duration // quiet time between failures (after recovery)
	MaxGap     time.Duration
	MinDown    time.Duration // how long a member stays killed or paused
	MaxDown    time.Duration
	// How long a partition lasts at least: it is not healed before the
	// majority has shown progress either.
	MinPartition time.Duration
	MaxPartition time.Duration
	Seed         uint64
}

// Fault kinds.
const (
	FaultKill    = "kill"    // SIGKILL, then start again on the same data
	FaultPause   = "pause"   // SIGSTOP, then SIGCONT
	FaultRestart = "restart" // SIGTERM, then start again
	// FaultIsolate cuts every peer link of the member, both ways, then
	// heals: the others elect a leader and go on while it cannot.
	FaultIsolate = "isolate"
	// FaultSplit cuts the peer links between the member and one other,
	// both ways, then heals; both still reach the third.
	FaultSplit = "split"
)

// Prober writes through one member as part of the history (Traffic.Probe).
type Prober interface {
	Probe(m *Member, timeout time.Duration, tag string) (bool, error)
}

// Action is one failure the nemesis injected.
type Action struct {
	Fault    string        `json:"fault"`
	Member   string        `json:"member"`
	Leader   bool          `json:"leader"`           // the member led the cluster when hit
	Detail   string        `json:"detail,omitempty"` // partitions: link mode and the other side
	At       time.Duration `json:"at"`               // on the history clock (Record.Call's)
	Down     time.Duration `json:"down"`             // how long it was killed, paused or partitioned
	Recovery time.Duration `json:"recovery"`         // from restart, SIGCONT or heal until the cluster was healthy
	// Notes are what the nemesis saw during a partition: the majority's
	// new leader, whether the old one still claimed to lead, the probes.
	Notes []string `json:"notes,omitempty"`
}

func (a Action) String() string {
	role := "follower"
	if a.Leader {
		role = "leader"
	}
	s := fmt.Sprintf("%6.1fs %-7s %s (%s)", a.At.Seconds(), a.Fault, a.Member, role)
	if a.Detail != "" {
		s += " " + a.Detail
	}
	s += fmt.Sprintf(" down %v, healthy %v later", a.Down.Round(time.Millisecond), a.Recovery.Round(time.Millisecond))
	if len(a.Notes) > 0 {
		s += ": " + strings.Join(a.Notes, "; ")
	}
	return s
}

// Nemesis injects one failure at a time into a cluster: it never takes a
// second member down (or cuts it off) before the first has recovered, so a
// majority is always there to serve.
type Nemesis struct {
	c     *Cluster
	cfg   NemesisConfig
	rng   *rand.Rand
	clock func() int64 // the history's clock
	probe Prober

	roundDone chan struct{} // closed when the first round of faults is done

	mu      sync.Mutex
	actions []Action
}

// NewNemesis prepares a nemesis; Run does the work. clock is the history's
// clock (Recorder.Now), so that actions line up with operations; probe
// writes through single members during and after partitions.
func NewNemesis(c *Cluster, cfg NemesisConfig, clock func() int64, probe Prober) *Nemesis {
	return &Nemesis{c: c, cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, 0x6e656d)), clock: clock, probe: probe,
		roundDone: make(chan struct{})}
}

// RoundDone is closed once the first round (every fault kind, on the
// leader and on a follower) has been injected.
func (n *Nemesis) RoundDone() <-chan struct{} { return n.roundDone }

// Actions returns the failures injected so far.
func (n *Nemesis) Actions() []Action {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]Action(nil), n.actions...)
}

// Run injects failures until ctx ends or MaxActions are done. It returns an
// error if the cluster does not recover from a failure or a partition
// misbehaves; it always leaves every member running, unpaused and
// connected when it returns.
func (n *Nemesis) Run(ctx context.Context) error {
	// Each round hits the leader and a follower with a kill, a pause and
	// an isolation, in random order, so that even a short run covers
	// them, plus a split between the leader and a follower and one
	// graceful restart (etcd takes seconds to stop while clients hold
	// watch streams, so restarts would eat the run's time).
	type step struct {
		fault  string
		leader bool
	}
	var round []step
	firstRound := 0
	for done := 0; done < n.cfg.MaxActions; done++ {
		if len(round) == 0 {
			round = []step{{FaultKill, true}, {FaultPause, true}, {FaultKill, false}, {FaultPause, false},
				{FaultRestart, n.rng.IntN(2) == 0}, {FaultIsolate, true}, {FaultIsolate, false}, {FaultSplit, true}}
			n.rng.Shuffle(len(round), func(i, j int) { round[i], round[j] = round[j], round[i] })
			if firstRound == 0 {
				firstRound = len(round)
			}
		}
		st := round[0]
		round = round[1:]
		sleep(ctx, n.between(n.cfg.MinGap, n.cfg.MaxGap))
		if ctx.Err() != nil {
			return nil
		}
		target, isLeader, err := n.pick(ctx, st.leader)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		a := Action{Fault: st.fault, Member: target.Name, Leader: isLeader, At: time.Duration(n.clock()), Down: n.between(n.cfg.MinDown, n.cfg.MaxDown)}
		if st.fault == FaultIsolate || st.fault == FaultSplit {
			a.Down = n.between(n.cfg.MinPartition, n.cfg.MaxPartition)
		}
		err = n.inject(ctx, target, &a)
		n.mu.Lock()
		n.actions = append(n.actions, a)
		n.mu.Unlock()
		if err != nil {
			return fmt.Errorf("%s %s: %w", a.Fault, a.Member, err)
		}
		if done+1 == firstRound {
			close(n.roundDone)
		}
	}
	return nil
}

func (n *Nemesis) between(lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(n.rng.Int64N(int64(hi-lo)))
}

// pick finds the leader, or a random follower.
func (n *Nemesis) pick(ctx context.Context, leader bool) (*Member, bool, error) {
	lctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	var l *Member
	var err error
	for {
		if l, err = n.c.Leader(lctx); err == nil {
			break
		}
		select {
		case <-lctx.Done():
			return nil, false, fmt.Errorf("find leader: %w", err)
		case <-time.After(200 * time.Millisecond):
		}
	}
	if leader {
		return l, true, nil
	}
	others := n.others(l)
	return others[n.rng.IntN(len(others))], false, nil
}

// others lists the members but m.
func (n *Nemesis) others(m *Member) []*Member {
	var ms []*Member
	for _, o := range n.c.Members {
		if o != m {
			ms = append(ms, o)
		}
	}
	return ms
}

// inject applies one fault, undoes it and waits for the cluster to be
// healthy again. Undoing does not depend on ctx: the member must come back
// even when the test is ending.
func (n *Nemesis) inject(ctx context.Context, m *Member, a *Action) error {
	var violation error
	switch a.Fault {
	case FaultKill:
		if err := m.Kill(); err != nil {
			return err
		}
		sleep(ctx, a.Down)
		if err := m.Start(); err != nil {
			return err
		}
	case FaultRestart:
		t0 := time.Now()
		if err := m.Stop(); err != nil {
			return err
		}
		sleep(ctx, a.Down)
		a.Down = time.Since(t0)
		if err := m.Start(); err != nil {
			return err
		}
	case FaultPause:
		if err := m.Pause(); err != nil {
			return err
		}
		sleep(ctx, a.Down)
		if err := m.Resume(); err != nil {
			return err
		}
	case FaultIsolate, FaultSplit:
		violation = n.partition(ctx, m, a)
	default:
		return fmt.Errorf("unknown fault %q", a.Fault)
	}
	t0 := time.Now()
	// Not ctx: recovery is checked even at the end of the test.
	hctx, cancel := context.WithTimeout(context.Background(), 2*readyTimeout)
	defer cancel()
	if err := n.c.WaitHealthy(hctx); err != nil {
		return errors.Join(violation, fmt.Errorf("cluster did not recover: %w", err))
	}
	if a.Fault == FaultIsolate || a.Fault == FaultSplit {
		// Healing must restore progress through the member that was cut
		// off, not only reads.
		if took, err := n.probeUntil(hctx, m, "heal probe"); err != nil {
			violation = errors.Join(violation, fmt.Errorf("after healing, no write through %s succeeded: %w", m.Name, err))
		} else {
			a.Notes = append(a.Notes, fmt.Sprintf("write through %s %v after healing", m.Name, took.Round(time.Millisecond)))
		}
	}
	a.Recovery = time.Since(t0)
	return violation
}

// partition cuts m off from the others (FaultIsolate) or from one other
// member (FaultSplit), with a random link mode, for at least a.Down, and
// heals. Meanwhile it checks what a partition must do: an isolated member
// acknowledges no write, the majority elects a leader (if it lost it) and
// acknowledges writes. It returns what went wrong, after healing.
func (n *Nemesis) partition(ctx context.Context, m *Member, a *Action) error {
	mode := LinkBlackhole
	if n.rng.IntN(2) == 0 {
		mode = LinkCut
	}
	cutOff := n.others(m)
	if a.Fault == FaultSplit {
		cutOff = []*Member{cutOff[n.rng.IntN(len(cutOff))]}
	}
	names := make([]string, len(cutOff))
	for i, o := range cutOff {
		names[i] = o.Name
	}
	a.Detail = fmt.Sprintf("from %s (%s)", strings.Join(names, ","), mode)
	t0 := time.Now()
	if a.Fault == FaultIsolate {
		n.c.Net.Isolate(m.Index, mode)
	} else {
		n.c.Net.Split(m.Index, cutOff[0].Index, mode)
	}
	for _, x := range n.c.Members {
		x.Mark(fmt.Sprintf("partition: %s cut off %s", m.Name, a.Detail))
	}
	var violation error
	if a.Fault == FaultIsolate {
		violation = n.watchIsolation(m, a, t0)
	} else {
		// Both sides of a split still reach the third member: progress
		// must go on; who leads is raft's business.
		third := n.others(cutOff[0])
		third = slices.DeleteFunc(third, func(x *Member) bool { return x == m })
		pctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
		took, err := n.probeUntil(pctx, third[0], "split probe")
		cancel()
		if err != nil {
			violation = fmt.Errorf("no write through %s succeeded while %s and %s were split: %w", third[0].Name, m.Name, cutOff[0].Name, err)
		} else {
			a.Notes = append(a.Notes, fmt.Sprintf("write through %s %v into the split", third[0].Name, took.Round(time.Millisecond)))
		}
	}
	sleep(ctx, a.Down-time.Since(t0))
	a.Down = time.Since(t0)
	n.c.Net.Heal()
	for _, x := range n.c.Members {
		x.Mark("partition healed")
	}
	return violation
}

// watchIsolation observes the first seconds of m's isolation: a write
// through m must not be acknowledged, the others must have a leader other
// than m (noting whether m still claims to lead, as an old leader does
// until its check-quorum timeout), and a write through them must be.
func (n *Nemesis) watchIsolation(m *Member, a *Action, t0 time.Time) (violation error) {
	// The write through m runs while the majority elects: an old leader
	// is most likely to accept a write it cannot commit right after the
	// cut.
	type result struct {
		acked bool
		err   error
	}
	minority := make(chan result, 1)
	go func() {
		ok, err := n.probe.Probe(m, 1500*time.Millisecond, "minority probe")
		minority <- result{ok, err}
	}()
	defer func() {
		r := <-minority
		if r.acked {
			violation = errors.Join(fmt.Errorf("%s acknowledged a write while cut off from every other member", m.Name), violation)
			return
		}
		a.Notes = append([]string{fmt.Sprintf("write through %s failed as it must (%s)", m.Name, shortErr(r.err))}, a.Notes...)
	}()
	majority := n.others(m)
	cli, err := NewClient(n.c.Endpoints())
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	var newLeader *Member
	for newLeader == nil && ctx.Err() == nil {
		for _, x := range majority {
			if st, err := x.status(ctx, cli); err == nil && st.leader != 0 && st.leader != m.ID() {
				newLeader = n.byID(st.leader)
				break
			}
		}
		if newLeader == nil {
			sleep(ctx, 100*time.Millisecond)
		}
	}
	if newLeader == nil {
		return fmt.Errorf("%s had no leader %v after %s was cut off", names(majority), readyTimeout, m.Name)
	}
	note := fmt.Sprintf("%s led the majority %v after the cut", newLeader.Name, time.Since(t0).Round(time.Millisecond))
	if st, err := m.status(ctx, cli); err == nil && st.leader == m.ID() {
		note += fmt.Sprintf(", while %s still claimed to lead", m.Name)
	}
	a.Notes = append(a.Notes, note)
	if _, err := n.probeUntil(ctx, newLeader, "majority probe"); err != nil {
		return fmt.Errorf("the majority %s acknowledged no write while %s was cut off: %w", names(majority), m.Name, err)
	}
	a.Notes = append(a.Notes, fmt.Sprintf("majority write through %s %v after the cut", newLeader.Name, time.Since(t0).Round(time.Millisecond)))
	return nil
}

// probeUntil writes through m until a write is acknowledged or ctx ends,
// and returns how long it took.
func (n *Nemesis) probeUntil(ctx context.Context, m *Member, tag string) (time.Duration, error) {
	t0 := time.Now()
	for {
		ok, err := n.probe.Probe(m, 2*time.Second, tag)
		if ok {
			return time.Since(t0), nil
		}
		if ctx.Err() != nil {
			return 0, fmt.Errorf("for %v, last: %w", time.Since(t0).Round(time.Millisecond), err)
		}
		sleep(ctx, 200*time.Millisecond)
	}
}

func (n *Nemesis) byID(id uint64) *Member {
	for _, m := range n.c.Members {
		if m.ID() == id {
			return m
		}
	}
	return nil
}

func names(ms []*Member) string {
	s := make([]string, len(ms))
	for i, m := range ms {
		s[i] = m.Name
	}
	return strings.Join(s, ",")
}

// shortErr is an error's message without the gRPC wrapping.
func shortErr(err error) string {
	if err == nil {
		return "no error"
	}
	msg := err.Error()
	if i := strings.LastIndex(msg, "desc = "); i >= 0 {
		msg = msg[i+len("desc = "):]
	}
	return msg
}

// Summary lists the actions, one a line.
func (n *Nemesis) Summary() string {
	var b strings.Builder
	for _, a := range n.Actions() {
		b.WriteString("\n  " + a.String())
	}
	return b.String()
}
