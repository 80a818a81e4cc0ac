package robustness

import (
	"context"
	"fmt"
	"math/rand/v2"
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
	Seed       uint64
}

// Fault kinds.
const (
	FaultKill    = "kill"    // SIGKILL, then start again on the same data
	FaultPause   = "pause"   // SIGSTOP, then SIGCONT
	FaultRestart = "restart" // SIGTERM, then start again
)

// Action is one failure the nemesis injected.
type Action struct {
	Fault    string
	Member   string
	Leader   bool          // the member led the cluster when hit
	At       time.Duration // since the nemesis started
	Down     time.Duration // how long it was killed or paused
	Recovery time.Duration // from restart or SIGCONT until the cluster was healthy
}

func (a Action) String() string {
	role := "follower"
	if a.Leader {
		role = "leader"
	}
	return fmt.Sprintf("%6.1fs %-7s %s (%s) down %v, healthy %v later", a.At.Seconds(), a.Fault, a.Member, role,
		a.Down.Round(time.Millisecond), a.Recovery.Round(time.Millisecond))
}

// Nemesis injects one failure at a time into a cluster: it never takes a
// second member down before the first has recovered, so a majority is
// always there to serve.
type Nemesis struct {
	c   *Cluster
	cfg NemesisConfig
	rng *rand.Rand

	mu      sync.Mutex
	actions []Action
}

// NewNemesis prepares a nemesis; Run does the work.
func NewNemesis(c *Cluster, cfg NemesisConfig) *Nemesis {
	return &Nemesis{c: c, cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, 0x6e656d))}
}

// Actions returns the failures injected so far.
func (n *Nemesis) Actions() []Action {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]Action(nil), n.actions...)
}

// Run injects failures until ctx ends or MaxActions are done. It returns an
// error if the cluster does not recover from a failure; it always leaves
// every member running and unpaused when it returns.
func (n *Nemesis) Run(ctx context.Context) error {
	start := time.Now()
	// Each round hits the leader and a follower with a kill and a pause,
	// in random order, so that even a short run covers them, plus one
	// graceful restart (etcd takes seconds to stop while clients hold
	// watch streams, so restarts would eat the run's time).
	type step struct {
		fault  string
		leader bool
	}
	var round []step
	for done := 0; done < n.cfg.MaxActions; done++ {
		if len(round) == 0 {
			round = []step{{FaultKill, true}, {FaultPause, true}, {FaultKill, false}, {FaultPause, false}, {FaultRestart, n.rng.IntN(2) == 0}}
			n.rng.Shuffle(len(round), func(i, j int) { round[i], round[j] = round[j], round[i] })
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
		a := Action{Fault: st.fault, Member: target.Name, Leader: isLeader, At: time.Since(start), Down: n.between(n.cfg.MinDown, n.cfg.MaxDown)}
		if err := n.inject(ctx, target, &a); err != nil {
			return fmt.Errorf("%s %s: %w", a.Fault, a.Member, err)
		}
		n.mu.Lock()
		n.actions = append(n.actions, a)
		n.mu.Unlock()
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
	var followers []*Member
	for _, m := range n.c.Members {
		if m != l {
			followers = append(followers, m)
		}
	}
	return followers[n.rng.IntN(len(followers))], false, nil
}

// inject applies one fault, undoes it and waits for the cluster to be
// healthy again. Undoing does not depend on ctx: the member must come back
// even when the test is ending.
func (n *Nemesis) inject(ctx context.Context, m *Member, a *Action) error {
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
	default:
		return fmt.Errorf("unknown fault %q", a.Fault)
	}
	t0 := time.Now()
	// Not ctx: recovery is checked even at the end of the test.
	hctx, cancel := context.WithTimeout(context.Background(), 2*readyTimeout)
	defer cancel()
	if err := n.c.WaitHealthy(hctx); err != nil {
		return fmt.Errorf("cluster did not recover: %w", err)
	}
	a.Recovery = time.Since(t0)
	return nil
}

// Summary lists the actions, one a line.
func (n *Nemesis) Summary() string {
	var b strings.Builder
	for _, a := range n.Actions() {
		b.WriteString("\n  " + a.String())
	}
	return b.String()
}
