package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/photoncloud/photoncloud/bench/internal/hoststat"
)

// Workload names, in report order.
const (
	wPut    = "put"
	wGetLin = "get-linearizable"
	wGetSer = "get-serializable"
	wTxn    = "txn-cas"
)

var allWorkloads = []string{wPut, wGetLin, wGetSer, wTxn}

func isWorkload(w string) bool { return slices.Contains(allWorkloads, w) }

// opFunc performs one operation on key index k. conflict reports a txn whose
// compare failed (the request still counts as one completed operation).
type opFunc func(ctx context.Context, kv clientv3.KV, k int) (conflict bool, err error)

// keyspace is the fixed set of keys every row works on, plus what the txn
// workload believes each key's mod revision to be.
type keyspace struct {
	keys  []string
	value string
	// modRev is shared by all txn clients: a client that loses a race learns
	// the winner's revision from the Else branch and publishes it, so
	// conflicts stay limited to real concurrent writes of one key.
	modRev []atomic.Int64
}

func newKeyspace(n, valueSize int) *keyspace {
	ks := &keyspace{keys: make([]string, n), modRev: make([]atomic.Int64, n)}
	for i := range ks.keys {
		ks.keys[i] = fmt.Sprintf("bench/key/%07d", i)
	}
	// A fixed pseudo-random printable value: incompressible enough that
	// neither store gains from compressing it.
	r := rand.New(rand.NewPCG(1, 2))
	v := make([]byte, valueSize)
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/"
	for i := range v {
		v[i] = alphabet[r.IntN(len(alphabet))]
	}
	ks.value = string(v)
	return ks
}

func (ks *keyspace) op(workload string) opFunc {
	switch workload {
	case wPut:
		return func(ctx context.Context, kv clientv3.KV, k int) (bool, error) {
			_, err := kv.Put(ctx, ks.keys[k], ks.value)
			return false, err
		}
	case wGetLin:
		return func(ctx context.Context, kv clientv3.KV, k int) (bool, error) {
			_, err := kv.Get(ctx, ks.keys[k])
			return false, err
		}
	case wGetSer:
		return func(ctx context.Context, kv clientv3.KV, k int) (bool, error) {
			_, err := kv.Get(ctx, ks.keys[k], clientv3.WithSerializable())
			return false, err
		}
	case wTxn:
		return func(ctx context.Context, kv clientv3.KV, k int) (bool, error) {
			key := ks.keys[k]
			exp := ks.modRev[k].Load()
			resp, err := kv.Txn(ctx).
				If(clientv3.Compare(clientv3.ModRevision(key), "=", exp)).
				Then(clientv3.OpPut(key, ks.value)).
				Else(clientv3.OpGet(key, clientv3.WithKeysOnly())).
				Commit()
			if err != nil {
				return false, err
			}
			if resp.Succeeded {
				ks.modRev[k].CompareAndSwap(exp, resp.Header.Revision)
				return false, nil
			}
			if rr := resp.Responses; len(rr) == 1 {
				if r := rr[0].GetResponseRange(); r != nil && len(r.Kvs) == 1 {
					storeMax(&ks.modRev[k], r.Kvs[0].ModRevision)
				}
			}
			return true, nil
		}
	}
	panic("unknown workload " + workload)
}

func storeMax(a *atomic.Int64, v int64) {
	for {
		cur := a.Load()
		if v <= cur || a.CompareAndSwap(cur, v) {
			return
		}
	}
}

// populate writes every key once (txns of 100 puts, 4 in flight) and records
// the resulting mod revisions for the txn workload.
func (ks *keyspace) populate(ctx context.Context, c *clientv3.Client) error {
	const batch, workers = 100, 4
	var (
		wg      sync.WaitGroup
		errOnce sync.Once
		first   error
		next    atomic.Int64
	)
	for range workers {
		wg.Go(func() {
			for {
				lo := int(next.Add(batch)) - batch
				if lo >= len(ks.keys) {
					return
				}
				hi := min(lo+batch, len(ks.keys))
				ops := make([]clientv3.Op, 0, hi-lo)
				for _, k := range ks.keys[lo:hi] {
					ops = append(ops, clientv3.OpPut(k, ks.value))
				}
				if _, err := c.Txn(ctx).Then(ops...).Commit(); err != nil {
					errOnce.Do(func() { first = fmt.Errorf("populate: %w", err) })
					return
				}
			}
		})
	}
	wg.Wait()
	if first != nil {
		return first
	}
	resp, err := c.Get(ctx, "bench/key/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return fmt.Errorf("read populated revisions: %w", err)
	}
	if len(resp.Kvs) != len(ks.keys) {
		return fmt.Errorf("populate: read back %d keys, want %d", len(resp.Kvs), len(ks.keys))
	}
	// Keys are zero-padded, so the sorted range is in index order.
	for i, kv := range resp.Kvs {
		ks.modRev[i].Store(kv.ModRevision)
	}
	return nil
}

// rowResult is one (server, workload, shape) measurement.
type rowResult struct {
	Server string
	// Target is which cluster members the clients dial ("leader", "all");
	// empty for a single member.
	Target    string `json:",omitempty"`
	Workload  string
	Clients   int
	Conns     int
	Ops       int64
	Errors    int64
	FirstErr  string `json:",omitempty"`
	Conflicts int64
	Elapsed   time.Duration
	P50       time.Duration
	P90       time.Duration
	P99       time.Duration
	P999      time.Duration
	Max       time.Duration
	// Resource use over the measured window.
	ServerCPU  time.Duration
	LoadgenCPU time.Duration
	// OtherCPU is what the rest of the machine used meanwhile: noise.
	OtherCPU      time.Duration
	MachineWindow time.Duration
	WriteBytes    int64
	ServerRSS     int64
	Metrics       map[string]float64 // counter deltas
	// SyncSyscalls counts fdatasync, fsync and sync_file_range calls of the
	// server over the window (nil when perf cannot count them).
	SyncSyscalls map[string]int64
	Rounds       int
	// Watch fan-out rows: Ops counts delivered events, Writes the puts
	// acknowledged in the window and Missing the events those puts should
	// have produced but no watcher received.
	Writes  int64 `json:",omitempty"`
	Missing int64 `json:",omitempty"`
	// Note flags a row to read with care (cluster mode: a leader change).
	Note string `json:",omitempty"`

	samples []time.Duration // sorted latencies of every measured request
}

func (r *rowResult) throughput() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Ops) / r.Elapsed.Seconds()
}

// bench runs rows.
type bench struct {
	cfg     *config
	lg      *slog.Logger
	workDir string
}

// runRow starts a fresh server, populates it, loads it and stops it.
func (b *bench) runRow(ctx context.Context, server, workload string, sh shape, row int) (*rowResult, error) {
	dir := filepath.Join(b.workDir, fmt.Sprintf("%02d-%s-%s-%d", row, server, workload, sh.clients))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	b.lg.Info("row starting", "server", server, "workload", workload, "clients", sh.clients, "conns", sh.conns)
	p, err := startServer(ctx, b.lg, b.cfg, server, dir)
	if err != nil {
		return nil, err
	}
	res, runErr := b.load(ctx, singleTarget(p, dir), workload, sh, row)
	stopErr := p.stop()
	if runErr != nil {
		return nil, fmt.Errorf("%w; server log tail:\n%s", runErr, tail(p.logPath, 20))
	}
	if stopErr != nil {
		b.lg.Warn("server did not stop cleanly", "server", server, "err", stopErr)
	}
	// The data dir can be large; the log stays for post-mortems until the
	// work dir goes.
	if err := os.RemoveAll(p.dataDir); err != nil {
		return nil, fmt.Errorf("remove data dir: %w", err)
	}
	return res, nil
}

// target is what one row loads: the member processes of one server (one
// member, or a cluster) and the endpoints every client connection dials.
type target struct {
	server    string
	members   []*process
	endpoints []string
	// label names the endpoints in cluster mode ("leader", "all"); empty
	// for a single member.
	label string
	// dir holds the row's by-products (perf stat output).
	dir string
}

func singleTarget(p *process, dir string) *target {
	return &target{server: p.name, members: []*process{p}, endpoints: []string{p.clientAddr}, dir: dir}
}

// pids is the members' pids as a comma-separated list, the form perf's -p
// takes.
func (t *target) pids() string {
	var s []string
	for _, m := range t.members {
		s = append(s, strconv.Itoa(m.pid()))
	}
	return strings.Join(s, ",")
}

func (b *bench) load(ctx context.Context, t *target, workload string, sh shape, row int) (*rowResult, error) {
	ks := newKeyspace(b.cfg.keys, b.cfg.valueSize)
	conns := make([]*clientv3.Client, 0, sh.conns)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range sh.conns {
		c, err := newClient(t.endpoints...)
		if err != nil {
			return nil, err
		}
		conns = append(conns, c)
	}
	if err := ks.populate(ctx, conns[0]); err != nil {
		return nil, err
	}
	op := ks.op(workload)

	res := &rowResult{Server: t.server, Target: t.label, Workload: workload, Clients: sh.clients, Conns: sh.conns, Rounds: 1}
	var (
		phase     atomic.Int32 // 0 warmup, 1 measuring, 2 stopping
		wg        sync.WaitGroup
		lats      = make([][]time.Duration, sh.clients)
		errCount  atomic.Int64
		conflicts atomic.Int64
		firstErr  atomic.Pointer[string]
	)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	expect := int(b.cfg.duration.Seconds()*20000/float64(sh.clients)) + 1024
	for i := range sh.clients {
		kv := conns[i%sh.conns]
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(row)<<32|uint64(i), 0x9e3779b97f4a7c15))
			lat := make([]time.Duration, 0, expect)
			for {
				ph := phase.Load()
				if ph == 2 {
					break
				}
				k := rng.IntN(len(ks.keys))
				start := time.Now()
				conflict, err := op(runCtx, kv, k)
				d := time.Since(start)
				if err != nil {
					if runCtx.Err() != nil {
						break
					}
					if ph == 1 {
						errCount.Add(1)
						msg := err.Error()
						firstErr.CompareAndSwap(nil, &msg)
					}
					// Do not spin on a server that refuses everything.
					time.Sleep(time.Millisecond)
					continue
				}
				if ph == 1 {
					lat = append(lat, d)
					if conflict {
						conflicts.Add(1)
					}
				}
			}
			lats[i] = lat
		})
	}

	stopLoad := func() {
		cancel()
		phase.Store(2)
		wg.Wait()
	}
	if !sleepCtx(ctx, b.cfg.warmup) {
		stopLoad()
		return nil, ctx.Err()
	}
	var (
		att *attached
		err error
	)
	if b.cfg.attach != "" {
		name := fmt.Sprintf("%s-%s-%d.attach", t.server, workload, sh.clients)
		if t.label != "" {
			name = fmt.Sprintf("%s-%s-%s-%d.attach", t.server, workload, t.label, sh.clients)
		}
		if att, err = startAttached(b.cfg.attach, t.pids(), filepath.Join(b.cfg.attachDir, name)); err != nil {
			stopLoad()
			return nil, err
		}
		defer att.stop()
	}
	var syncs *syncCounter
	if b.cfg.countSyncs {
		out := filepath.Join(t.dir, "syncs.csv")
		if syncs, err = startSyncCounter(t.pids(), out); err != nil {
			b.lg.Warn("not counting sync syscalls", "err", err)
			b.cfg.countSyncs = false
		} else {
			defer syncs.a.stop()
		}
	}
	before, err := takeSample(ctx, t.members)
	if err != nil {
		stopLoad()
		return nil, err
	}
	t0 := time.Now()
	phase.Store(1)
	ok := sleepCtx(ctx, b.cfg.duration)
	phase.Store(2)
	res.Elapsed = time.Since(t0)
	wg.Wait()
	if !ok {
		return nil, ctx.Err()
	}
	after, err := takeSample(ctx, t.members)
	if err != nil {
		return nil, err
	}
	if att != nil {
		att.stop()
	}
	if syncs != nil {
		counts, err := syncs.stop()
		if err != nil {
			// perf exists but cannot trace syscalls here (no tracefs, no
			// permission): report "-" rather than fail the benchmark.
			b.lg.Warn("not counting sync syscalls", "err", err)
			b.cfg.countSyncs = false
		} else {
			res.SyncSyscalls = counts
		}
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
	res.Errors = errCount.Load()
	if e := firstErr.Load(); e != nil {
		res.FirstErr = *e
	}
	res.Conflicts = conflicts.Load()

	res.samples = slices.Concat(lats...)
	slices.Sort(res.samples)
	res.Ops = int64(len(res.samples))
	if res.Ops == 0 {
		return nil, errors.New("no operation completed in the measured window")
	}
	res.setPercentiles()
	return res, nil
}

// otherCPUPercent is the share of the machine's cores that processes other
// than the server and the load generator used during the window.
func (r *rowResult) otherCPUPercent() float64 {
	if r.MachineWindow <= 0 {
		return 0
	}
	return 100 * float64(r.OtherCPU) / (float64(r.MachineWindow) * float64(runtime.NumCPU()))
}

func (r *rowResult) setPercentiles() {
	r.P50 = percentile(r.samples, 0.50)
	r.P90 = percentile(r.samples, 0.90)
	r.P99 = percentile(r.samples, 0.99)
	r.P999 = percentile(r.samples, 0.999)
	if len(r.samples) > 0 {
		r.Max = r.samples[len(r.samples)-1]
	}
}

// pool merges the rounds of one row: throughput over the summed windows,
// percentiles over every request of every round.
func pool(rounds []*rowResult) *rowResult {
	if len(rounds) == 1 {
		return rounds[0]
	}
	out := *rounds[0]
	out.Metrics = map[string]float64{}
	if out.SyncSyscalls != nil {
		out.SyncSyscalls = map[string]int64{}
	}
	out.samples = nil
	out.Ops, out.Errors, out.Conflicts, out.Writes, out.Missing = 0, 0, 0, 0, 0
	out.Elapsed, out.ServerCPU, out.LoadgenCPU, out.OtherCPU, out.MachineWindow = 0, 0, 0, 0, 0
	out.WriteBytes, out.ServerRSS, out.Rounds = 0, 0, 0
	for _, r := range rounds {
		out.Rounds++
		out.Ops += r.Ops
		out.Errors += r.Errors
		if out.FirstErr == "" {
			out.FirstErr = r.FirstErr
		}
		out.Conflicts += r.Conflicts
		out.Writes += r.Writes
		out.Missing += r.Missing
		if out.Note == "" {
			out.Note = r.Note
		}
		out.Elapsed += r.Elapsed
		out.ServerCPU += r.ServerCPU
		out.LoadgenCPU += r.LoadgenCPU
		out.OtherCPU += r.OtherCPU
		out.MachineWindow += r.MachineWindow
		out.WriteBytes += r.WriteBytes
		out.ServerRSS = max(out.ServerRSS, r.ServerRSS)
		for k, v := range r.Metrics {
			out.Metrics[k] += v
		}
		if r.SyncSyscalls == nil {
			out.SyncSyscalls = nil
		} else if out.SyncSyscalls != nil {
			for k, v := range r.SyncSyscalls {
				out.SyncSyscalls[k] += v
			}
		}
		out.samples = append(out.samples, r.samples...)
	}
	slices.Sort(out.samples)
	out.setPercentiles()
	return &out
}

// sample is a snapshot of the counters taken at both ends of the window.
type sample struct {
	at      time.Time
	proc    procStats
	self    time.Duration
	machine time.Duration
	metrics map[string]float64
}

// takeSample sums the counters of every member: a cluster's cost is that
// of all its members.
func takeSample(ctx context.Context, members []*process) (sample, error) {
	s := sample{metrics: map[string]float64{}}
	for _, p := range members {
		m, err := p.scrape(ctx)
		if err != nil {
			return sample{}, err
		}
		for k, v := range m {
			s.metrics[k] += v
		}
		ps, err := readProcStats(p.pid())
		if err != nil {
			return sample{}, fmt.Errorf("read server stats: %w", err)
		}
		s.proc.cpu += ps.cpu
		s.proc.writeBytes += ps.writeBytes
		s.proc.rss += ps.rss
	}
	s.at, s.self, s.machine = time.Now(), hoststat.SelfCPU(), hoststat.MachineBusy()
	return s, nil
}

// percentile returns the q-quantile of sorted (nearest rank).
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(q * float64(len(sorted))))
	return sorted[max(0, min(rank-1, len(sorted)-1))]
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
