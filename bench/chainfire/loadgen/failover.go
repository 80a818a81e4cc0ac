package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// failoverTrial is one kill -9 of a cluster's leader under write load.
type failoverTrial struct {
	Server string
	Round  int
	Trial  int
	// Leader is the time from the kill until a survivor's Status names
	// itself leader.
	Leader time.Duration
	// FirstWrite is the time from the kill until the first put sent after
	// the kill is acknowledged (necessarily by way of the new leader).
	FirstWrite time.Duration
	// FailedWrites counts puts sent after the kill that returned an error
	// before the first acknowledgement (informational: clients see these).
	FailedWrites int
}

// Failover writer settings: a put is sent every failoverPutEvery, each on
// its own goroutine, so that one request stuck on the dead leader (or on a
// follower forwarding to it) does not delay the next: the first
// acknowledgement after the kill is then within failoverPutEvery of the
// earliest moment the cluster could take a write.
const (
	failoverPutEvery   = 5 * time.Millisecond
	failoverPutTimeout = 10 * time.Second
	failoverPollEvery  = 5 * time.Millisecond
	failoverDeadline   = 30 * time.Second
)

// failoverTrial starts a fresh cluster, writes to it through a client that
// knows every member, kills the leader with SIGKILL and times the new
// leader and the first acknowledged write.
func (b *bench) failoverTrial(ctx context.Context, server string, row int) (*failoverTrial, error) {
	dir := filepath.Join(b.workDir, fmt.Sprintf("%04d-%s-%s", row, server, wFailover))
	b.lg.Info("failover trial starting", "server", server)
	c, err := startCluster(ctx, b.lg, b.cfg, server, dir)
	if err != nil {
		return nil, err
	}
	t, err := b.failover(ctx, c)
	c.stop(b.lg)
	if err != nil {
		return nil, fmt.Errorf("%w; server log tails:\n%s", err, c.logTails(10))
	}
	return t, c.removeData()
}

// putRecord is one put of the failover writer.
type putRecord struct {
	sent, done time.Time
	err        error
}

func (b *bench) failover(ctx context.Context, c *cluster) (*failoverTrial, error) {
	old, err := c.leader(ctx)
	if err != nil {
		return nil, err
	}
	w, err := newClient(c.addrs()...)
	if err != nil {
		return nil, err
	}
	defer w.Close()
	value := newKeyspace(1, b.cfg.valueSize).value

	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		puts     []putRecord
		inflight sync.WaitGroup
		stopW    = make(chan struct{})
		wdone    = make(chan struct{})
	)
	go func() {
		defer close(wdone)
		tk := time.NewTicker(failoverPutEvery)
		defer tk.Stop()
		for n := 0; ; n++ {
			select {
			case <-stopW:
				return
			case <-tk.C:
			}
			key := fmt.Sprintf("bench/failover/%03d", n%1000)
			inflight.Go(func() {
				sent := time.Now()
				rctx, rcancel := context.WithTimeout(wctx, failoverPutTimeout)
				_, err := w.Put(rctx, key, value)
				rcancel()
				rec := putRecord{sent: sent, done: time.Now(), err: err}
				mu.Lock()
				puts = append(puts, rec)
				mu.Unlock()
			})
		}
	}()
	stopWriter := func() {
		select {
		case <-stopW:
		default:
			close(stopW)
		}
		<-wdone
		cancel()
		inflight.Wait()
	}
	defer stopWriter()
	// firstAck is the earliest acknowledgement of a put sent after t, and
	// how many such puts failed before it.
	firstAck := func(t time.Time) (time.Time, int) {
		mu.Lock()
		defer mu.Unlock()
		var first time.Time
		for _, p := range puts {
			if p.err == nil && p.sent.After(t) && (first.IsZero() || p.done.Before(first)) {
				first = p.done
			}
		}
		failed := 0
		for _, p := range puts {
			if p.err != nil && p.sent.After(t) && (first.IsZero() || p.done.Before(first)) {
				failed++
			}
		}
		return first, failed
	}

	warm := time.Now()
	if !sleepCtx(ctx, max(b.cfg.warmup, 500*time.Millisecond)) {
		return nil, ctx.Err()
	}
	if ack, _ := firstAck(warm); ack.IsZero() {
		return nil, errors.New("no put acknowledged before the kill")
	}

	// Status pollers on the survivors, dialed before the kill so that the
	// measurement includes no connection setup.
	type seen struct{ at time.Time }
	leaderSeen := make(chan seen, len(c.members))
	pctx, pcancel := context.WithCancel(ctx)
	var polls sync.WaitGroup
	defer func() {
		pcancel()
		polls.Wait()
	}()
	killAt := time.Now()
	old.kill9()
	for i, p := range c.members {
		if p == old {
			continue
		}
		cl := c.status[i]
		polls.Go(func() {
			for pctx.Err() == nil {
				rctx, rcancel := context.WithTimeout(pctx, 100*time.Millisecond)
				st, err := cl.Status(rctx, p.clientAddr)
				rcancel()
				if err == nil && st.Leader == st.Header.MemberId && st.Leader != old.id {
					leaderSeen <- seen{time.Now()}
					return
				}
				sleepCtx(pctx, failoverPollEvery)
			}
		})
	}

	t := &failoverTrial{Server: c.server}
	deadline := time.NewTimer(failoverDeadline)
	defer deadline.Stop()
	tick := time.NewTicker(failoverPollEvery)
	defer tick.Stop()
	acked := false
	for t.Leader == 0 || !acked {
		select {
		case s := <-leaderSeen:
			if t.Leader == 0 {
				t.Leader = s.at.Sub(killAt)
			}
		case <-tick.C:
			ack, _ := firstAck(killAt)
			acked = !ack.IsZero()
		case <-deadline.C:
			return nil, fmt.Errorf("after %v: leader seen %v, write acknowledged %v", failoverDeadline, t.Leader > 0, acked)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	// The writer's goroutines record their puts as they finish; stopping
	// it collects every put, so the minimum below is the true first
	// acknowledgement.
	stopWriter()
	ack, failed := firstAck(killAt)
	t.FirstWrite = ack.Sub(killAt)
	t.FailedWrites = failed
	return t, nil
}

// failoverStats is the median and maximum of one measure over the trials.
func failoverStats(trials []*failoverTrial, f func(*failoverTrial) time.Duration) (median, maximum time.Duration) {
	if len(trials) == 0 {
		return 0, 0
	}
	var d []time.Duration
	for _, t := range trials {
		d = append(d, f(t))
	}
	slices.Sort(d)
	return percentile(d, 0.5), d[len(d)-1]
}
