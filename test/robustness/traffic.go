package robustness

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// KeyPrefix is where the traffic writes; the watchers watch it.
const KeyPrefix = "robustness/"

// TrafficConfig bounds the client load.
type TrafficConfig struct {
	Clients   int           // concurrent clients; the first N talk to one member each, the rest to all
	Keys      int           // keys under KeyPrefix
	MaxOps    int64         // operations across all clients
	OpTimeout time.Duration // per request; an operation that times out is pending
	// Rate caps operations per second across all clients (0: as fast as
	// they go). The linearizability check needs memory quadratic in the
	// operations per key, so long runs pace themselves and use more keys.
	Rate float64
	Seed uint64
}

// KeyNames lists the keys the traffic uses.
func (cfg TrafficConfig) KeyNames() []string {
	keys := make([]string, cfg.Keys)
	for i := range keys {
		keys[i] = fmt.Sprintf("%skey-%d", KeyPrefix, i)
	}
	return keys
}

// Traffic runs clients against a cluster and records what they see.
type Traffic struct {
	cfg  TrafficConfig
	c    *Cluster
	rec  *Recorder
	ops  atomic.Int64
	ids  atomic.Int64 // porcupine client ids
	keys []string

	mu       sync.Mutex
	protocol Problems // responses no etcd server gives
}

// NewTraffic prepares the clients' load; Run does the work.
func NewTraffic(c *Cluster, rec *Recorder, cfg TrafficConfig) *Traffic {
	return &Traffic{cfg: cfg, c: c, rec: rec, keys: cfg.KeyNames()}
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
	conns := make([]conn, tr.cfg.Clients)
	for i := range conns {
		eps, name := tr.c.Endpoints(), "all"
		if i < len(tr.c.Members) {
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
		r := Record{Client: cl.id, Member: cl.member, Input: in}
		// Not derived from ctx: the end of the traffic must not turn
		// in-flight requests into pending ones.
		opCtx, cancel := context.WithTimeout(context.Background(), cl.tr.cfg.OpTimeout)
		r.Call = cl.tr.rec.Now()
		out, err := cl.do(opCtx, in)
		r.Return = cl.tr.rec.Now()
		cancel()
		if err != nil {
			// The request may have been applied (or may be applied later):
			// the outcome is unknown, whatever the error says.
			r.Output = Output{Unknown: true}
			r.Err = err.Error()
			cl.tr.rec.Add(r)
			// A pending operation stays open to the end of the history;
			// the client carries on as a new porcupine client.
			cl.id = cl.tr.NewClientID()
			sleep(ctx, time.Duration(50+cl.rng.IntN(100))*time.Millisecond)
			continue
		}
		r.Output = out
		cl.tr.rec.Add(r)
		cl.observe(in, out)
	}
}

func (cl *trafficClient) nextInput() Input {
	key := cl.tr.keys[cl.rng.IntN(len(cl.tr.keys))]
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

func (cl *trafficClient) do(ctx context.Context, in Input) (Output, error) {
	switch in.Kind {
	case OpGet:
		resp, err := cl.cli.Get(ctx, in.Key)
		if err != nil {
			return Output{}, err
		}
		return readOutput((*pb.RangeResponse)(resp)), nil
	case OpPut:
		resp, err := cl.cli.Put(ctx, in.Key, in.Value)
		if err != nil {
			return Output{}, err
		}
		return Output{Rev: (*pb.PutResponse)(resp).GetHeader().GetRevision()}, nil
	case OpDelete:
		resp, err := cl.cli.Delete(ctx, in.Key)
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
		resp, err := cl.cli.Txn(ctx).If(cmp).Then(clientv3.OpPut(in.Key, in.Value)).Else(clientv3.OpGet(in.Key)).Commit()
		if err != nil {
			return Output{}, err
		}
		tr := (*pb.TxnResponse)(resp)
		if tr.GetSucceeded() {
			return Output{Rev: tr.GetHeader().GetRevision(), Succeeded: true}, nil
		}
		if len(tr.GetResponses()) != 1 || tr.GetResponses()[0].GetResponseRange() == nil {
			cl.tr.protocolf("%s via %s: else branch of a failed txn: want one range response, got %v", describe(in, Output{Unknown: true}), cl.member, tr.GetResponses())
			return Output{}, fmt.Errorf("malformed txn response")
		}
		out := readOutput(tr.GetResponses()[0].GetResponseRange())
		out.Rev = tr.GetHeader().GetRevision()
		return out, nil
	}
	return Output{}, fmt.Errorf("unknown operation %q", in.Kind)
}

func readOutput(resp *pb.RangeResponse) Output {
	out := Output{Rev: resp.GetHeader().GetRevision()}
	if kvs := resp.GetKvs(); len(kvs) > 0 {
		out.Found, out.Value, out.ModRev = true, string(kvs[0].GetValue()), kvs[0].GetModRevision()
	}
	return out
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
