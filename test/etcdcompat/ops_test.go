package etcdcompat

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"
)

// env is the per-side state of one running scenario.
type env struct {
	b            *backend
	base         int64           // store revision when the scenario started
	leaseAlias   map[int64]int64 // alias -> real lease ID
	leaseReal    map[int64]int64 // real lease ID -> alias
	pendingAlias int64
	watches      map[string]*wstream
	cwatches     map[string]*cwstream

	// mu guards the lease maps (read by watch goroutines while normalising)
	// and violations (appended by watch goroutines).
	mu         sync.Mutex
	violations []string // invariant breaches not yet reported
}

func newEnv(b *backend, base int64) *env {
	return &env{
		b: b, base: base,
		leaseAlias: map[int64]int64{}, leaseReal: map[int64]int64{},
		watches: map[string]*wstream{}, cwatches: map[string]*cwstream{},
	}
}

func (e *env) violate(format string, args ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.violations = append(e.violations, fmt.Sprintf(format, args...))
}

// takeViolations returns and clears the recorded invariant breaches.
func (e *env) takeViolations() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	v := e.violations
	e.violations = nil
	return v
}

// close stops every watch of the scenario and waits for its goroutine.
func (e *env) close() {
	for _, w := range e.watches {
		w.stop()
	}
	for _, w := range e.cwatches {
		w.stop()
	}
}

// op is one operation of a scenario. do runs it against one side and returns
// the normalised result; a returned error is compared as an errResult.
type op interface {
	String() string
	do(ctx context.Context, e *env) (any, error)
}

// ---- KV ----

type rangeOp struct{ req *pb.RangeRequest }

func (o rangeOp) String() string { return "Range " + textOf(o.req) }
func (o rangeOp) do(ctx context.Context, e *env) (any, error) {
	resp, err := e.b.kv.Range(ctx, e.prepare(o.req).(*pb.RangeRequest))
	if err != nil {
		return nil, err
	}
	return e.normalize(resp), nil
}

// rangeStreamOp calls the v3.7 KV.RangeStream RPC and merges the chunks the
// way the API documents (proto.Merge of all chunks equals the Range answer).
// How a result is cut into chunks is the server's business and not compared,
// but header, more and count must only appear on the final chunk.
type rangeStreamOp struct{ req *pb.RangeRequest }

func (o rangeStreamOp) String() string { return "RangeStream " + textOf(o.req) }
func (o rangeStreamOp) do(ctx context.Context, e *env) (any, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := e.b.kv.RangeStream(ctx, e.prepare(o.req).(*pb.RangeRequest))
	if err != nil {
		return nil, err
	}
	merged := &pb.RangeResponse{}
	var chunks []*pb.RangeResponse
	for {
		r, err := st.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		chunks = append(chunks, r.RangeResponse)
		proto.Merge(merged, r.RangeResponse)
	}
	for i, c := range chunks[:max(len(chunks)-1, 0)] {
		if c.Header != nil || c.More || c.Count != 0 {
			e.violate("RangeStream chunk %d of %d carries header/more/count: only the final chunk may", i, len(chunks))
		}
	}
	if len(chunks) == 0 {
		e.violate("RangeStream sent no chunk")
	}
	return e.normalize(merged), nil
}

type putOp struct{ req *pb.PutRequest }

func (o putOp) String() string { return "Put " + textOf(o.req) }
func (o putOp) do(ctx context.Context, e *env) (any, error) {
	resp, err := e.b.kv.Put(ctx, e.prepare(o.req).(*pb.PutRequest))
	if err != nil {
		return nil, err
	}
	return e.normalize(resp), nil
}

type deleteOp struct{ req *pb.DeleteRangeRequest }

func (o deleteOp) String() string { return "DeleteRange " + textOf(o.req) }
func (o deleteOp) do(ctx context.Context, e *env) (any, error) {
	resp, err := e.b.kv.DeleteRange(ctx, e.prepare(o.req).(*pb.DeleteRangeRequest))
	if err != nil {
		return nil, err
	}
	return e.normalize(resp), nil
}

type txnOp struct{ req *pb.TxnRequest }

func (o txnOp) String() string { return "Txn " + textOf(o.req) }
func (o txnOp) do(ctx context.Context, e *env) (any, error) {
	resp, err := e.b.kv.Txn(ctx, e.prepare(o.req).(*pb.TxnRequest))
	if err != nil {
		return nil, err
	}
	return e.normalize(resp), nil
}

type compactOp struct{ req *pb.CompactionRequest }

func (o compactOp) String() string { return "Compact " + textOf(o.req) }
func (o compactOp) do(ctx context.Context, e *env) (any, error) {
	resp, err := e.b.kv.Compact(ctx, e.prepare(o.req).(*pb.CompactionRequest))
	if err != nil {
		return nil, err
	}
	return e.normalize(resp), nil
}

// ---- Lease ----

type grantOp struct{ req *pb.LeaseGrantRequest }

func (o grantOp) String() string { return "LeaseGrant " + textOf(o.req) }
func (o grantOp) do(ctx context.Context, e *env) (any, error) {
	req, alias := e.prepareGrant(o.req)
	resp, err := e.b.lease.LeaseGrant(ctx, req)
	if err != nil {
		return nil, err
	}
	if alias != 0 && resp.ID != 0 {
		e.mu.Lock()
		e.leaseAlias[alias] = resp.ID
		e.leaseReal[resp.ID] = alias
		e.mu.Unlock()
	}
	return e.normalize(resp), nil
}

type revokeOp struct{ req *pb.LeaseRevokeRequest }

func (o revokeOp) String() string { return "LeaseRevoke " + textOf(o.req) }
func (o revokeOp) do(ctx context.Context, e *env) (any, error) {
	resp, err := e.b.lease.LeaseRevoke(ctx, e.prepare(o.req).(*pb.LeaseRevokeRequest))
	if err != nil {
		return nil, err
	}
	return e.normalize(resp), nil
}

type ttlOp struct{ req *pb.LeaseTimeToLiveRequest }

func (o ttlOp) String() string { return "LeaseTimeToLive " + textOf(o.req) }
func (o ttlOp) do(ctx context.Context, e *env) (any, error) {
	resp, err := e.b.lease.LeaseTimeToLive(ctx, e.prepare(o.req).(*pb.LeaseTimeToLiveRequest))
	if err != nil {
		return nil, err
	}
	return e.normalize(resp), nil
}

type leasesOp struct{}

func (leasesOp) String() string { return "LeaseLeases" }
func (leasesOp) do(ctx context.Context, e *env) (any, error) {
	resp, err := e.b.lease.LeaseLeases(ctx, &pb.LeaseLeasesRequest{})
	if err != nil {
		return nil, err
	}
	return e.normalize(resp), nil
}

// keepAliveOnceOp opens a LeaseKeepAlive stream, sends one request and
// returns the first answer, as clientv3's KeepAliveOnce does.
type keepAliveOnceOp struct{ req *pb.LeaseKeepAliveRequest }

func (o keepAliveOnceOp) String() string { return "LeaseKeepAlive(once) " + textOf(o.req) }
func (o keepAliveOnceOp) do(ctx context.Context, e *env) (any, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := e.b.lease.LeaseKeepAlive(ctx)
	if err != nil {
		return nil, err
	}
	if err := st.Send(e.prepare(o.req).(*pb.LeaseKeepAliveRequest)); err != nil {
		return nil, err
	}
	resp, err := st.Recv()
	if err != nil {
		return nil, err
	}
	_ = st.CloseSend()
	return e.normalize(resp), nil
}

// ---- Watch over the raw stream ----

// wstream is one raw Watch stream of one side. A goroutine receives responses
// into items: flattened (one item per event, other responses whole) unless raw.
type wstream struct {
	raw    bool
	cancel context.CancelFunc
	done   chan struct{}
	send   func(*pb.WatchRequest) error

	mu      sync.Mutex
	items   []*pb.WatchResponse
	notify  chan struct{} // closed and replaced whenever items grows
	lastRev map[int64]int64
	lastFrg map[int64]bool
}

func (w *wstream) stop() {
	w.cancel()
	<-w.done
}

func (e *env) openWatch(name string, raw bool) (*wstream, error) {
	if w, ok := e.watches[name]; ok {
		return w, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	st, err := e.b.watch.Watch(ctx)
	if err != nil {
		cancel()
		return nil, err
	}
	w := &wstream{
		raw: raw, cancel: cancel, done: make(chan struct{}), send: st.Send,
		notify: make(chan struct{}), lastRev: map[int64]int64{}, lastFrg: map[int64]bool{},
	}
	e.watches[name] = w
	go func() {
		defer close(w.done)
		for {
			resp, err := st.Recv()
			if err != nil {
				if ctx.Err() == nil {
					w.add(e, []*pb.WatchResponse{{WatchId: -999, CancelReason: "stream error: " + toErrResult(err).String()}})
				}
				return
			}
			w.check(e, name, resp)
			w.add(e, w.flatten(resp))
		}
	}()
	return w, nil
}

func (w *wstream) flatten(resp *pb.WatchResponse) []*pb.WatchResponse {
	if w.raw || len(resp.Events) == 0 {
		return []*pb.WatchResponse{resp}
	}
	out := make([]*pb.WatchResponse, 0, len(resp.Events))
	for _, ev := range resp.Events {
		out = append(out, &pb.WatchResponse{WatchId: resp.WatchId, Events: []*mvccpb.Event{ev}})
	}
	return out
}

// check enforces the ordering contract on one side: per watcher, revisions
// never go backwards, and all events of one revision are in one response
// unless the previous response was a fragment.
func (w *wstream) check(e *env, name string, resp *pb.WatchResponse) {
	if len(resp.Events) == 0 {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	id := resp.WatchId
	first := resp.Events[0].Kv.GetModRevision()
	if last, ok := w.lastRev[id]; ok {
		if first < last || (first == last && !w.lastFrg[id]) {
			e.violate("watch %s id %d: response starts at revision %d after a response that ended at %d (split or reordered revision)", name, id, first, last)
		}
	}
	prev := first
	for _, ev := range resp.Events {
		if r := ev.Kv.GetModRevision(); r < prev {
			e.violate("watch %s id %d: events out of order within a response (%d after %d)", name, id, r, prev)
		} else {
			prev = r
		}
	}
	w.lastRev[id] = prev
	w.lastFrg[id] = resp.Fragment
}

func (w *wstream) add(e *env, items []*pb.WatchResponse) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, it := range items {
		w.items = append(w.items, e.normalize(it).(*pb.WatchResponse))
	}
	close(w.notify)
	w.notify = make(chan struct{})
}

// take waits until n items are buffered (or the timeout passes) and removes
// up to n of them.
func (w *wstream) take(n int, timeout time.Duration) []*pb.WatchResponse {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		w.mu.Lock()
		if len(w.items) >= n {
			out := w.items[:n:n]
			w.items = w.items[n:]
			w.mu.Unlock()
			return out
		}
		ch := w.notify
		w.mu.Unlock()
		select {
		case <-ch:
		case <-deadline.C:
			w.mu.Lock()
			out := w.items
			w.items = nil
			w.mu.Unlock()
			return out
		}
	}
}

// watchSendOp opens the named stream if needed and sends one request on it
// (create, cancel or progress). Its result is only the send error.
type watchSendOp struct {
	stream string
	raw    bool
	req    *pb.WatchRequest
}

func (o watchSendOp) String() string { return "Watch[" + o.stream + "] send " + textOf(o.req) }
func (o watchSendOp) do(_ context.Context, e *env) (any, error) {
	w, err := e.openWatch(o.stream, o.raw)
	if err != nil {
		return nil, err
	}
	if err := w.send(e.prepare(o.req).(*pb.WatchRequest)); err != nil {
		return nil, err
	}
	return "sent", nil
}

// watchCollectOp waits for n items (flattened events or other responses).
type watchCollectOp struct {
	stream  string
	n       int
	timeout time.Duration
}

func (o watchCollectOp) String() string {
	return fmt.Sprintf("Watch[%s] collect %d", o.stream, o.n)
}
func (o watchCollectOp) do(_ context.Context, e *env) (any, error) {
	w, ok := e.watches[o.stream]
	if !ok {
		return nil, fmt.Errorf("scenario bug: watch stream %q not opened", o.stream)
	}
	timeout := o.timeout
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	if o.n == 0 {
		// Expect silence: give stray responses a moment to show up.
		time.Sleep(300 * time.Millisecond)
	}
	items := w.take(max(o.n, 0), timeout)
	if len(items) != o.n {
		e.violate("watch %s: collected %d responses, the scenario expects %d", o.stream, len(items), o.n)
	}
	// Responses of different watchers on one stream interleave as the server
	// likes; only the order per watcher is part of the contract.
	slices.SortStableFunc(items, func(a, b *pb.WatchResponse) int { return cmp.Compare(a.WatchId, b.WatchId) })
	return items, nil
}

// ---- Watch through clientv3's Watcher ----

// cwItem is one clientv3.WatchResponse reduced to what an application sees,
// flattened to one item per event.
type cwItem struct {
	Event           *mvccpb.Event
	Revision        int64 // header revision of non-event responses
	Created         bool
	Canceled        bool
	Progress        bool
	CompactRevision int64
	Err             string
}

func (c cwItem) String() string {
	if c.Event != nil {
		return textOf(c.Event)
	}
	return fmt.Sprintf("{rev=%d created=%v canceled=%v progress=%v compact=%d err=%q}",
		c.Revision, c.Created, c.Canceled, c.Progress, c.CompactRevision, c.Err)
}

type cwstream struct {
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	items  []cwItem
	notify chan struct{}
}

func (w *cwstream) stop() {
	w.cancel()
	<-w.done
}

// cwatchOp starts a clientv3 Watch. rev is relative like all scenario revisions.
type cwatchOp struct {
	name     string
	key, end string
	rev      int64
	prevKV   bool
	progress bool
}

func (o cwatchOp) String() string {
	return fmt.Sprintf("clientv3.Watch[%s] key=%q end=%q rev=%d prevKV=%v progressNotify=%v", o.name, o.key, o.end, o.rev, o.prevKV, o.progress)
}
func (o cwatchOp) do(_ context.Context, e *env) (any, error) {
	opts := []clientv3.OpOption{clientv3.WithCreatedNotify()}
	if o.end != "" {
		opts = append(opts, clientv3.WithRange(o.end))
	}
	if o.rev > 0 {
		opts = append(opts, clientv3.WithRev(o.rev+e.base))
	}
	if o.prevKV {
		opts = append(opts, clientv3.WithPrevKV())
	}
	if o.progress {
		opts = append(opts, clientv3.WithProgressNotify())
	}
	ctx, cancel := context.WithCancel(context.Background())
	ch := e.b.cli.Watch(ctx, o.key, opts...)
	w := &cwstream{cancel: cancel, done: make(chan struct{}), notify: make(chan struct{})}
	e.cwatches[o.name] = w
	go func() {
		defer close(w.done)
		for resp := range ch {
			var items []cwItem
			if len(resp.Events) == 0 {
				it := cwItem{
					Revision: resp.Header.Revision, Created: resp.Created, Canceled: resp.Canceled,
					Progress: resp.IsProgressNotify(), CompactRevision: resp.CompactRevision,
				}
				if err := resp.Err(); err != nil {
					it.Err = err.Error()
				}
				it.Revision, it.CompactRevision = e.rel(it.Revision), e.rel(it.CompactRevision)
				items = append(items, it)
			}
			for _, ev := range resp.Events {
				pev := &mvccpb.Event{Type: mvccpb.Event_EventType(ev.Type), Kv: ev.Kv, PrevKv: ev.PrevKv}
				items = append(items, cwItem{Event: e.normalize(pev).(*mvccpb.Event)})
			}
			w.mu.Lock()
			w.items = append(w.items, items...)
			close(w.notify)
			w.notify = make(chan struct{})
			w.mu.Unlock()
		}
	}()
	return "watching", nil
}

type cprogressOp struct{}

func (cprogressOp) String() string { return "clientv3.RequestProgress" }
func (cprogressOp) do(ctx context.Context, e *env) (any, error) {
	return "requested", e.b.cli.RequestProgress(ctx)
}

type ccollectOp struct {
	name string
	n    int
}

func (o ccollectOp) String() string { return fmt.Sprintf("clientv3.Watch[%s] collect %d", o.name, o.n) }
func (o ccollectOp) do(_ context.Context, e *env) (any, error) {
	w, ok := e.cwatches[o.name]
	if !ok {
		return nil, fmt.Errorf("scenario bug: clientv3 watch %q not opened", o.name)
	}
	if o.n == 0 {
		time.Sleep(300 * time.Millisecond)
	}
	items := w.take(o.n)
	if len(items) != o.n {
		e.violate("clientv3 watch %s: collected %d responses, the scenario expects %d", o.name, len(items), o.n)
	}
	return items, nil
}

func (w *cwstream) take(n int) []cwItem {
	deadline := time.NewTimer(5 * time.Second)
	defer deadline.Stop()
	for {
		w.mu.Lock()
		if len(w.items) >= n {
			out := w.items[:n:n]
			w.items = w.items[n:]
			w.mu.Unlock()
			return out
		}
		ch := w.notify
		w.mu.Unlock()
		select {
		case <-ch:
		case <-deadline.C:
			w.mu.Lock()
			out := w.items
			w.items = nil
			w.mu.Unlock()
			return out
		}
	}
}
