package main

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/metadata"
)

// watchConnsPerMember is how many gRPC connections the watchers of one
// member share: enough that one connection's flow control is not what is
// measured, few enough to stay cheap for the load generator.
const watchConnsPerMember = 4

func (c *config) watchShape() shape {
	return shape{clients: c.watchers, conns: min(c.watchers, watchConnsPerMember*c.members)}
}

// watchKey is the one key the writer puts and every watcher watches.
const watchKey = "bench/watch/key"

// stampValue is a put's value: the send time (wall clock, Unix ns), whether
// the put belongs to the measured window, then padding up to size bytes.
func stampValue(sent time.Time, measured bool, pad string, size int) string {
	m := "w"
	if measured {
		m = "m"
	}
	v := strconv.FormatInt(sent.UnixNano(), 10) + "|" + m + "|"
	if len(v) < size {
		v += pad[:min(len(pad), size-len(v))]
	}
	return v
}

func parseStamp(v []byte) (sent int64, measured, ok bool) {
	ts, rest, ok := strings.Cut(string(v), "|")
	if !ok {
		return 0, false, false
	}
	n, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return 0, false, false
	}
	return n, strings.HasPrefix(rest, "m|"), true
}

// watchRow starts a fresh cluster and measures how long a put takes to
// reach cfg.watchers watchers spread over all members: one writer puts one
// key at cfg.watchRate puts/s through the leader, stamping each value with
// its send time; each watcher, on its own watch stream, records receive
// time minus send time for every event (one machine, one clock).
func (b *bench) watchRow(ctx context.Context, server string, row int) (*rowResult, error) {
	dir := filepath.Join(b.workDir, fmt.Sprintf("%04d-%s-%s", row, server, wWatch))
	b.lg.Info("row starting", "server", server, "workload", wWatch, "watchers", b.cfg.watchers, "rate", b.cfg.watchRate)
	c, err := startCluster(ctx, b.lg, b.cfg, server, dir)
	if err != nil {
		return nil, err
	}
	res, err := b.watchLoad(ctx, c, dir)
	c.stop(b.lg)
	if err != nil {
		return nil, fmt.Errorf("%w; server log tails:\n%s", err, c.logTails(10))
	}
	return res, c.removeData()
}

// watcher is one watch stream's record.
type watcher struct {
	lat    []time.Duration // delivery latency of measured events
	maxRev atomic.Int64    // highest revision seen
}

func (b *bench) watchLoad(ctx context.Context, c *cluster, dir string) (*rowResult, error) {
	cfg := b.cfg
	sh := cfg.watchShape()
	lead, err := c.leader(ctx)
	if err != nil {
		return nil, err
	}
	// Connections pinned to members round robin: connection i dials member
	// i % members, so the watchers split evenly over the members.
	var conns []*clientv3.Client
	defer func() {
		for _, cl := range conns {
			cl.Close()
		}
	}()
	for i := range sh.conns {
		cl, err := newClient(c.members[i%len(c.members)].clientAddr)
		if err != nil {
			return nil, err
		}
		conns = append(conns, cl)
	}
	writer, err := newClient(lead.clientAddr)
	if err != nil {
		return nil, err
	}
	conns = append(conns, writer)

	wctx, cancelWatch := context.WithCancel(ctx)
	defer cancelWatch()
	var (
		wg       sync.WaitGroup
		watchers = make([]*watcher, sh.clients)
		errCount atomic.Int64
		firstErr atomic.Pointer[string]
	)
	noteErr := func(err error) {
		errCount.Add(1)
		msg := err.Error()
		firstErr.CompareAndSwap(nil, &msg)
	}
	defer func() {
		cancelWatch()
		wg.Wait()
	}()
	for i := range watchers {
		w := &watcher{}
		watchers[i] = w
		// Watches on one client with the same context metadata share one
		// gRPC stream; distinct metadata gives every watcher its own
		// stream, as independent watchers would have.
		sctx := metadata.AppendToOutgoingContext(wctx, "bench-watcher", strconv.Itoa(i))
		wch := conns[i%sh.conns].Watch(sctx, watchKey, clientv3.WithCreatedNotify())
		select {
		case resp, ok := <-wch:
			if !ok || !resp.Created {
				return nil, fmt.Errorf("watcher %d not created: %v", i, resp.Err())
			}
		case <-time.After(10 * time.Second):
			return nil, fmt.Errorf("watcher %d not created within 10s", i)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		wg.Go(func() {
			for resp := range wch {
				now := time.Now().UnixNano()
				if err := resp.Err(); err != nil {
					if wctx.Err() == nil {
						noteErr(err)
					}
					continue
				}
				for _, ev := range resp.Events {
					if sent, measured, ok := parseStamp(ev.Kv.Value); ok && measured {
						w.lat = append(w.lat, time.Duration(now-sent))
					}
				}
				w.maxRev.Store(resp.Header.Revision)
			}
		})
	}

	// The writer's schedule: put n is due at start + n*interval. The
	// measured window is the puts due in [first, first+count): first is
	// set once the warmup is over, count covers cfg.duration. A put that
	// outlasts the interval delays the next ones, which then go out back
	// to back until the schedule is met again, so both servers get the
	// same puts in the window unless one cannot keep up at all.
	var (
		interval = time.Duration(float64(time.Second) / cfg.watchRate)
		count    = max(1, int64(cfg.duration/interval))
		first    atomic.Int64 // 0 until the warmup is over
		writes   atomic.Int64 // acknowledged measured puts
		lastRev  atomic.Int64
		stopW    = make(chan struct{})
		wdone    = make(chan struct{})
		pad      = newKeyspace(1, cfg.valueSize).value
		start    = time.Now()
	)
	go func() {
		defer close(wdone)
		for n := int64(1); ; n++ {
			t := time.NewTimer(time.Until(start.Add(time.Duration(n) * interval)))
			select {
			case <-stopW:
				t.Stop()
				return
			case <-t.C:
			}
			f := first.Load()
			if f > 0 && n >= f+count {
				return
			}
			measured := f > 0 && n >= f
			resp, err := writer.Put(wctx, watchKey, stampValue(time.Now(), measured, pad, cfg.valueSize))
			if err != nil {
				if wctx.Err() != nil {
					return
				}
				if measured {
					noteErr(err)
				}
				continue
			}
			lastRev.Store(resp.Header.Revision)
			if measured {
				writes.Add(1)
			}
		}
	}()
	stopWriter := func() {
		select {
		case <-stopW:
		default:
			close(stopW)
		}
		<-wdone
	}
	defer stopWriter()

	if !sleepCtx(ctx, cfg.warmup) {
		return nil, ctx.Err()
	}
	var syncs *syncCounter
	if cfg.countSyncs {
		t := &target{members: c.members}
		if syncs, err = startSyncCounter(t.pids(), filepath.Join(dir, "syncs.csv")); err != nil {
			b.lg.Warn("not counting sync syscalls", "err", err)
			cfg.countSyncs = false
		} else {
			defer syncs.a.stop()
		}
	}
	before, err := takeSample(ctx, c.members)
	if err != nil {
		return nil, err
	}
	// Two slots ahead, so the writer cannot already be deciding the first
	// measured put when it learns where the window starts.
	first.Store(int64(time.Since(start)/interval) + 2)
	select {
	case <-wdone:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	elapsed := time.Duration(count) * interval
	// Wait for the last events to reach every watcher, so the late ones
	// count in the percentiles instead of being dropped.
	want := lastRev.Load()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && slices.ContainsFunc(watchers, func(w *watcher) bool { return w.maxRev.Load() < want }) {
		if !sleepCtx(ctx, 10*time.Millisecond) {
			return nil, ctx.Err()
		}
	}
	after, err := takeSample(ctx, c.members)
	if err != nil {
		return nil, err
	}
	cancelWatch()
	wg.Wait()

	res := &rowResult{Server: c.server, Workload: wWatch, Clients: sh.clients, Conns: sh.conns, Rounds: 1, Elapsed: elapsed}
	if syncs != nil {
		if counts, err := syncs.stop(); err != nil {
			b.lg.Warn("not counting sync syscalls", "err", err)
			cfg.countSyncs = false
		} else {
			res.SyncSyscalls = counts
		}
	}
	for _, w := range watchers {
		res.samples = append(res.samples, w.lat...)
	}
	slices.Sort(res.samples)
	res.Ops = int64(len(res.samples))
	res.Writes = writes.Load()
	res.Missing = res.Writes*int64(sh.clients) - res.Ops
	res.Errors = errCount.Load()
	if e := firstErr.Load(); e != nil {
		res.FirstErr = *e
	}
	res.ServerCPU = after.proc.cpu - before.proc.cpu
	res.LoadgenCPU = after.self - before.self
	res.OtherCPU = max(0, after.machine-before.machine-res.ServerCPU-res.LoadgenCPU)
	res.MachineWindow = after.at.Sub(before.at)
	res.WriteBytes = after.proc.writeBytes - before.proc.writeBytes
	res.ServerRSS = after.proc.rss
	res.Metrics = map[string]float64{}
	for k, v := range after.metrics {
		res.Metrics[k] = v - before.metrics[k]
	}
	if res.Ops == 0 {
		return nil, fmt.Errorf("no event delivered in the measured window (%d writes, first error %q)", res.Writes, res.FirstErr)
	}
	res.setPercentiles()
	if now, err := c.leader(ctx); err != nil || now != lead {
		res.Note = "leader changed during the row"
	}
	return res, nil
}
