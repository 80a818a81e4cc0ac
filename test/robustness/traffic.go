package robustness

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// KeyPrefix is where the traffic writes; the watchers watch it.
const KeyPrefix = "robustness/"

// TrafficConfig bounds the client load.
type TrafficConfig struct {
	Clients int // concurrent clients; the first N talk to one member each, the rest to all
	Keys    int // keys under KeyPrefix
	// LeaseClients run lease lifecycles on LeaseKeys keys of their own:
	// grant, put with the lease, then a keep-alive and a revoke, a revoke
	// alone, or nothing (the lease expires), reading the key between
	// steps. They talk to all members. The other clients touch the lease
	// keys too, but rarely: a write detaches the key from its lease, and
	// at their pace every key is written every few milliseconds.
	LeaseClients int
	LeaseKeys    int
	// LeaseTTL is the TTL (seconds) asked for; the lifecycle lasts about
	// as long, so about half of the unrevoked leases expire while the
	// client moves on and the rest soon after. Servers raise it to their
	// minimum (1.5 election timeouts, 2s by default).
	LeaseTTL  int64
	MaxOps    int64         // operations across all clients
	OpTimeout time.Duration // per request; an operation that times out is pending
	// Rate caps operations per second across all clients (0: as fast as
	// they go). The linearizability check needs memory quadratic in the
	// operations per key, so long runs pace themselves and use more keys.
	Rate float64
	Seed uint64
}

// KeyNames lists the keys the traffic uses: the plain ones, then the
// lease keys.
func (cfg TrafficConfig) KeyNames() []string {
	keys := make([]string, 0, cfg.Keys+cfg.LeaseKeys)
	for i := range cfg.Keys {
		keys = append(keys, fmt.Sprintf("%skey-%d", KeyPrefix, i))
	}
	for i := range cfg.LeaseKeys {
		keys = append(keys, fmt.Sprintf("%slease-%d", KeyPrefix, i))
	}
	return keys
}

// leaseKeyShare is the share of the plain clients' operations that go to
// a lease key: enough to detach a lease now and then, not so much that
// leases never get to delete anything.
const leaseKeyShare = 0.005

// Traffic runs clients against a cluster and records what they see.
type Traffic struct {
	cfg       TrafficConfig
	c         *Cluster
	rec       *Recorder
	ops       atomic.Int64
	ids       atomic.Int64 // porcupine client ids
	keys      []string     // plain keys
	leaseKeys []string

	probes atomic.Int64 // sequence of nemesis probe values

	mu       sync.Mutex
	protocol Problems         // responses no etcd server gives
	leaseOf  map[int64]string // lease granted -> the key it is for
}

// NewTraffic prepares the clients' load; Run does the work.
func NewTraffic(c *Cluster, rec *Recorder, cfg TrafficConfig) *Traffic {
	all := cfg.KeyNames()
	return &Traffic{cfg: cfg, c: c, rec: rec, keys: all[:cfg.Keys], leaseKeys: all[cfg.Keys:], leaseOf: map[int64]string{}}
}

// Protocol returns the malformed responses seen.
func (tr *Traffic) Protocol() Problems {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.protocol
}

func (tr *Traffic) protocolf(format string, args ...any) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.protocol.Addf(format, args...)
}

// NewClientID hands out a porcupine client id no one else uses.
func (tr *Traffic) NewClientID() int { return int(tr.ids.Add(1) - 1) }

// Run drives the clients until ctx ends or MaxOps operations were issued,
// and returns when every client has finished its last operation.
func (tr *Traffic) Run(ctx context.Context) error {
	type conn struct {
		cli    *clientv3.Client
		member string
	}
	conns := make([]conn, tr.cfg.Clients+tr.cfg.LeaseClients)
	for i := range conns {
		eps, name := tr.c.Endpoints(), "all"
		if i < len(tr.c.Members) && i < tr.cfg.Clients {
			m := tr.c.Members[i]
			eps, name = []string{m.Endpoint()}, m.Name
		}
		cli, err := NewClient(eps)
		if err != nil {
			for _, c := range conns[:i] {
				_ = c.cli.Close()
			}
			return err
		}
		conns[i] = conn{cli, name}
	}
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Go(func() {
			defer c.cli.Close()
			cl := &trafficClient{tr: tr, cli: c.cli, member: c.member,
				rng:  rand.New(rand.NewPCG(tr.cfg.Seed, uint64(i))),
				id:   tr.NewClientID(),
				name: i,
				seen: map[string]seenValue{},
			}
			if i >= tr.cfg.Clients {
				cl.runLeases(ctx)
				return
			}
			cl.run(ctx)
		})
	}
	wg.Wait()
	return nil
}

type seenValue struct {
	value  string
	modRev int64
}

type trafficClient struct {
	tr     *Traffic
	cli    *clientv3.Client
	member string
	rng    *rand.Rand
	id     int
	name   int
	seq    int
	seen   map[string]seenValue // last state observed per key, to aim txn compares
}

func (cl *trafficClient) run(ctx context.Context) {
	var pace time.Duration
	if cl.tr.cfg.Rate > 0 {
		pace = time.Duration(float64(cl.tr.cfg.Clients) / cl.tr.cfg.Rate * float64(time.Second))
	}
	next := time.Now()
	for ctx.Err() == nil {
		if pace > 0 {
			// No bursts to catch up after a slow stretch.
			next = next.Add(pace)
			if floor := time.Now().Add(-pace); next.Before(floor) {
				next = floor
			}
			sleep(ctx, time.Until(next))
			if ctx.Err() != nil {
				return
			}
		}
		if cl.tr.ops.Add(1) > cl.tr.cfg.MaxOps {
			return
		}
		in := cl.nextInput()
		out, ok := cl.exec(ctx, in)
		if ok {
			cl.observe(in, out)
		}
	}
}

// exec issues one operation and records it. An operation that failed is
// pending (and the client carries on as a new porcupine client, after a
// short pause) unless the error is a definite answer: a revoke or
// keep-alive of a lease that does not exist.
func (cl *trafficClient) exec(ctx context.Context, in Input) (Output, bool) {
	r := Record{Client: cl.id, Member: cl.member, Input: in}
	// Not derived from ctx: the end of the traffic must not turn
	// in-flight requests into pending ones.
	opCtx, cancel := context.WithTimeout(context.Background(), cl.tr.cfg.OpTimeout)
	r.Call = cl.tr.rec.Now()
	out, err := cl.tr.do(opCtx, cl.cli, cl.member, in)
	r.Return = cl.tr.rec.Now()
	cancel()
	if err != nil && !out.NotFound {
		// The request may have been applied (or may be applied later):
		// the outcome is unknown, whatever the error says.
		r.Output = Output{Unknown: true}
		r.Err = err.Error()
		cl.tr.rec.Add(r)
		// A pending operation stays open to the end of the history.
		cl.id = cl.tr.NewClientID()
		sleep(ctx, time.Duration(50+cl.rng.IntN(100))*time.Millisecond)
		return Output{}, false
	}
	if err != nil {
		r.Err = err.Error()
	}
	r.Output = out
	cl.tr.rec.Add(r)
	return out, true
}

// runLeases runs lease lifecycles on random lease keys: grant, put with
// the lease, then keep-alive once and revoke, revoke, keep-alive once, or
// nothing, pausing between steps so that expiries land among the other
// operations, and reading the key after each step.
func (cl *trafficClient) runLeases(ctx context.Context) {
	if len(cl.tr.leaseKeys) == 0 {
		return
	}
	ttl := max(cl.tr.cfg.LeaseTTL, 1)
	pause := func() { sleep(ctx, time.Duration(cl.rng.Int64N(int64(ttl)*int64(time.Second)/2))) }
	for ctx.Err() == nil {
		if cl.tr.ops.Add(8) > cl.tr.cfg.MaxOps {
			return
		}
		key := cl.tr.leaseKeys[cl.rng.IntN(len(cl.tr.leaseKeys))]
		read := func() { cl.exec(ctx, Input{Kind: OpGet, Key: key}) }
		plan := cl.rng.IntN(4)
		read()
		g, ok := cl.exec(ctx, Input{Kind: OpGrant, Key: key, TTL: ttl})
		if !ok {
			continue // no lease anyone knows of
		}
		cl.tr.mu.Lock()
		cl.tr.leaseOf[g.Lease] = key
		cl.tr.mu.Unlock()
		// Whether or not the put is acknowledged, the rest of the
		// lifecycle goes on: it may have attached the key.
		cl.exec(ctx, Input{Kind: OpPut, Key: key, Value: cl.uniqueValue(), Lease: g.Lease})
		read()
		if plan == 0 || plan == 2 {
			pause()
			cl.exec(ctx, Input{Kind: OpKeepAlive, Key: key, Lease: g.Lease})
			read()
		}
		if plan <= 1 {
			pause()
			cl.exec(ctx, Input{Kind: OpRevoke, Key: key, Lease: g.Lease})
			read()
		}
		pause()
	}
}

func (cl *trafficClient) nextInput() Input {
	key := cl.tr.keys[cl.rng.IntN(len(cl.tr.keys))]
	if len(cl.tr.leaseKeys) > 0 && cl.rng.Float64() < leaseKeyShare {
		key = cl.tr.leaseKeys[cl.rng.IntN(len(cl.tr.leaseKeys))]
	}
	switch n := cl.rng.IntN(100); {
	case n < 40:
		return Input{Kind: OpGet, Key: key}
	case n < 65:
		return Input{Kind: OpPut, Key: key, Value: cl.uniqueValue()}
	case n < 88:
		in := Input{Kind: OpTxn, Key: key, Value: cl.uniqueValue()}
		s := cl.seen[key]
		if cl.rng.IntN(10) < 7 {
			in.Cmp, in.CmpModRev = CmpModRev, s.modRev
		} else {
			in.Cmp, in.CmpValueArg = CmpValue, s.value
		}
		return in
	default:
		return Input{Kind: OpDelete, Key: key}
	}
}

// uniqueValue is a value no other operation writes, which is what ties an
// event in the log to the operation that wrote it.
func (cl *trafficClient) uniqueValue() string {
	cl.seq++
	return fmt.Sprintf("c%d-%d", cl.name, cl.seq)
}

func (cl *trafficClient) observe(in Input, out Output) {
	switch {
	case in.Kind == OpGet, in.Kind == OpTxn && !out.Succeeded:
		if out.Found {
			cl.seen[in.Key] = seenValue{out.Value, out.ModRev}
		} else {
			cl.seen[in.Key] = seenValue{}
		}
	case in.Kind == OpPut, in.Kind == OpTxn:
		cl.seen[in.Key] = seenValue{in.Value, out.Rev}
	case in.Kind == OpDelete:
		cl.seen[in.Key] = seenValue{}
	}
}

// do issues one operation through cli. A revoke or keep-alive of a lease
// that does not exist returns Output.NotFound with the error.
func (tr *Traffic) do(ctx context.Context, cli *clientv3.Client, member string, in Input) (Output, error) {
	switch in.Kind {
	case OpGet:
		resp, err := cli.Get(ctx, in.Key)
		if err != nil {
			return Output{}, err
		}
		return readOutput((*pb.RangeResponse)(resp)), nil
	case OpPut:
		var opts []clientv3.OpOption
		if in.Lease != 0 {
			opts = append(opts, clientv3.WithLease(clientv3.LeaseID(in.Lease)))
		}
		resp, err := cli.Put(ctx, in.Key, in.Value, opts...)
		if err != nil {
			return Output{}, err
		}
		return Output{Rev: (*pb.PutResponse)(resp).GetHeader().GetRevision()}, nil
	case OpDelete:
		resp, err := cli.Delete(ctx, in.Key)
		if err != nil {
			return Output{}, err
		}
		dr := (*pb.DeleteRangeResponse)(resp)
		return Output{Rev: dr.GetHeader().GetRevision(), Deleted: dr.GetDeleted()}, nil
	case OpTxn:
		var cmp clientv3.Cmp
		if in.Cmp == CmpValue {
			cmp = clientv3.Compare(clientv3.Value(in.Key), "=", in.CmpValueArg)
		} else {
			cmp = clientv3.Compare(clientv3.ModRevision(in.Key), "=", in.CmpModRev)
		}
		resp, err := cli.Txn(ctx).If(cmp).Then(clientv3.OpPut(in.Key, in.Value)).Else(clientv3.OpGet(in.Key)).Commit()
		if err != nil {
			return Output{}, err
		}
		txr := (*pb.TxnResponse)(resp)
		if txr.GetSucceeded() {
			return Output{Rev: txr.GetHeader().GetRevision(), Succeeded: true}, nil
		}
		if len(txr.GetResponses()) != 1 || txr.GetResponses()[0].GetResponseRange() == nil {
			tr.protocolf("%s via %s: else branch of a failed txn: want one range response, got %v", describe(in, Output{Unknown: true}), member, txr.GetResponses())
			return Output{}, fmt.Errorf("malformed txn response")
		}
		out := readOutput(txr.GetResponses()[0].GetResponseRange())
		out.Rev = txr.GetHeader().GetRevision()
		return out, nil
	case OpGrant:
		resp, err := cli.Grant(ctx, in.TTL)
		if err != nil {
			return Output{}, err
		}
		if resp.ID == 0 || resp.TTL <= 0 {
			tr.protocolf("%s via %s: granted lease %x with TTL %d", describe(in, Output{Unknown: true}), member, resp.ID, resp.TTL)
			return Output{}, fmt.Errorf("malformed grant response")
		}
		return Output{Rev: resp.ResponseHeader.GetRevision(), Lease: int64(resp.ID), TTL: resp.TTL}, nil
	case OpKeepAlive:
		resp, err := cli.KeepAliveOnce(ctx, clientv3.LeaseID(in.Lease))
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return Output{NotFound: true}, err
		}
		if err != nil {
			return Output{}, err
		}
		return Output{TTL: resp.TTL}, nil
	case OpRevoke:
		resp, err := cli.Revoke(ctx, clientv3.LeaseID(in.Lease))
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return Output{NotFound: true}, err
		}
		if err != nil {
			return Output{}, err
		}
		return Output{Rev: (*pb.LeaseRevokeResponse)(resp).GetHeader().GetRevision()}, nil
	}
	return Output{}, fmt.Errorf("unknown operation %q", in.Kind)
}

func readOutput(resp *pb.RangeResponse) Output {
	out := Output{Rev: resp.GetHeader().GetRevision()}
	if kvs := resp.GetKvs(); len(kvs) > 0 {
		out.Found, out.Value, out.ModRev, out.Lease = true, string(kvs[0].GetValue()), kvs[0].GetModRevision(), kvs[0].GetLease()
	}
	return out
}

// Probe writes a value no one else writes to a random traffic key through
// member m alone, as part of the history (the nemesis checks with it that
// a partition's majority makes progress, its minority does not, and a
// healed member does again). It reports whether the write was
// acknowledged, and the error otherwise.
func (tr *Traffic) Probe(m *Member, timeout time.Duration, tag string) (bool, error) {
	cli, err := NewClient([]string{m.Endpoint()})
	if err != nil {
		return false, err
	}
	defer cli.Close()
	seq := tr.probes.Add(1)
	in := Input{Kind: OpPut, Key: tr.keys[int(seq)%len(tr.keys)], Value: fmt.Sprintf("probe-%d", seq)}
	r := Record{Client: tr.NewClientID(), Member: m.Name + " (" + tag + ")", Input: in}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	r.Call = tr.rec.Now()
	out, err := tr.do(ctx, cli, r.Member, in)
	r.Return = tr.rec.Now()
	if err != nil {
		r.Output, r.Err = Output{Unknown: true}, err.Error()
	} else {
		r.Output = out
	}
	tr.rec.Add(r)
	return err == nil, err
}

// DrainLeases revokes every lease still granted, as part of the history,
// so that no lease deletes a key after the final revision is taken.
// Leases whose grant answer was lost are revoked too, unrecorded: no key
// is attached to them.
func (tr *Traffic) DrainLeases(ctx context.Context) error {
	cli, err := NewClient(tr.c.Endpoints())
	if err != nil {
		return err
	}
	defer cli.Close()
	var resp *clientv3.LeaseLeasesResponse
	for attempt := 0; ; attempt++ {
		lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		resp, err = cli.Leases(lctx)
		cancel()
		if err == nil {
			break
		}
		if attempt >= 5 || ctx.Err() != nil {
			return fmt.Errorf("list leases: %w", err)
		}
		sleep(ctx, time.Second)
	}
	id := tr.NewClientID()
	const member = "all (drain)"
	for _, l := range resp.Leases {
		tr.mu.Lock()
		key, known := tr.leaseOf[int64(l.ID)]
		tr.mu.Unlock()
		for attempt := 0; ; attempt++ {
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			if !known {
				_, err = cli.Revoke(rctx, l.ID)
				cancel()
				if err == nil || errors.Is(err, rpctypes.ErrLeaseNotFound) {
					break
				}
			} else {
				in := Input{Kind: OpRevoke, Key: key, Lease: int64(l.ID)}
				r := Record{Client: id, Member: member, Input: in, Call: tr.rec.Now()}
				var out Output
				out, err = tr.do(rctx, cli, member, in)
				r.Return = tr.rec.Now()
				cancel()
				if err != nil {
					r.Err = err.Error()
				}
				if err != nil && !out.NotFound {
					r.Output = Output{Unknown: true}
					tr.rec.Add(r)
					id = tr.NewClientID()
				} else {
					r.Output = out
					tr.rec.Add(r)
					break
				}
			}
			if attempt >= 5 || ctx.Err() != nil {
				return fmt.Errorf("revoke lease %x: %w", l.ID, err)
			}
			sleep(ctx, 500*time.Millisecond)
		}
	}
	return nil
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
