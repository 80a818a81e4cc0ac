package etcdcompat

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// verbose logs every step's reference result (ETCDCOMPAT_VERBOSE=1), which
// helps when writing scenarios.
var verbose = os.Getenv("ETCDCOMPAT_VERBOSE") != ""

// scenario is a named sequence of steps run against both servers.
type scenario struct {
	name  string
	steps []step
}

// step is one operation plus what the runner should know about it.
type step struct {
	op op
	// wantErr, when set, is the message the reference (etcd) must fail with.
	// It checks the scenario itself: a scenario meant to provoke an error that
	// etcd does not raise is a broken scenario, not a compatibility result.
	wantErr string
	// codeOnly compares only the gRPC status code of errors, for errors whose
	// message embeds implementation numbers (gRPC message size limits).
	codeOnly bool
	// sleep, instead of an op, pauses once for both sides.
	sleep time.Duration
}

func (s step) String() string {
	if s.op == nil {
		return fmt.Sprintf("sleep %v", s.sleep)
	}
	return s.op.String()
}

// expect returns the step with an expected reference error message.
func (s step) expect(msg string) step { s.wantErr = msg; return s }

// mismatchLog collects every mismatch of a test run so that the whole list
// can be printed at the end and, with ETCDCOMPAT_REPORT=file, saved.
type mismatchLog struct {
	mu      sync.Mutex
	entries []string
}

func (m *mismatchLog) add(s string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.entries = append(m.entries, s)
}

func (m *mismatchLog) flush(tb testing.TB) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.entries) == 0 {
		return
	}
	tb.Logf("%d mismatches between etcd and %s", len(m.entries), candidateName)
	if path := os.Getenv("ETCDCOMPAT_REPORT"); path != "" {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			tb.Logf("cannot write report: %v", err)
			return
		}
		defer f.Close()
		for _, e := range m.entries {
			fmt.Fprintln(f, e)
			fmt.Fprintln(f)
		}
	}
}

// currentRevision asks a server for its store revision.
func currentRevision(ctx context.Context, b *backend) (int64, error) {
	resp, err := b.kv.Range(ctx, &pb.RangeRequest{Key: []byte{0}, CountOnly: true})
	if err != nil {
		return 0, err
	}
	return resp.Header.Revision, nil
}

// result runs one op against one side and turns an error into an errResult.
func result(e *env, o op) any {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := o.do(ctx, e)
	if err != nil {
		return toErrResult(err)
	}
	return res
}

// runScenario runs sc against both servers of p and reports every mismatch.
// It returns false when the candidate could not be returned to an empty
// state, in which case the caller must start a fresh pair.
func runScenario(t *testing.T, p *pair, sc scenario, log *mismatchLog) (clean bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	refBase, err := currentRevision(ctx, p.ref)
	cancel()
	if err != nil {
		t.Fatalf("reference unavailable: %v", err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Second)
	candBase, err := currentRevision(ctx, p.cand)
	cancel()
	if err != nil {
		log.add(fmt.Sprintf("### %s: candidate unavailable\n%v", sc.name, err))
		t.Errorf("candidate unavailable: %v", err)
		return false
	}
	ref, cand := newEnv(p.ref, refBase), newEnv(p.cand, candBase)
	defer ref.close()
	defer cand.close()

	mismatch := func(i int, s step, what, detail string) {
		msg := fmt.Sprintf("### %s / step %d: %s\n%s\n%s", sc.name, i, s, what, detail)
		log.add(msg)
		t.Error(msg)
	}
	for i, s := range sc.steps {
		if s.op == nil {
			time.Sleep(s.sleep)
			continue
		}
		r := result(ref, s.op)
		c := result(cand, s.op)
		if verbose {
			t.Logf("step %d: %s\n  etcd: %s", i, s, show(r))
		}
		if s.wantErr != "" {
			if re, ok := r.(errResult); !ok || re.Message != s.wantErr {
				t.Errorf("scenario bug in %s step %d (%s): etcd answered %s, scenario expects error %q",
					sc.name, i, s, show(r), s.wantErr)
			}
		} else if re, ok := r.(errResult); ok {
			t.Logf("note: %s step %d: etcd answered %s", sc.name, i, re)
		}
		if s.codeOnly {
			if re, ok := r.(errResult); ok {
				re.Message = ""
				r = re
			}
			if ce, ok := c.(errResult); ok {
				ce.Message = ""
				c = ce
			}
		}
		reconcile(r, c)
		if d := diff(r, c); d != "" {
			mismatch(i, s, "response differs (-etcd +"+candidateName+"):",
				d+"\n  etcd:      "+show(r)+"\n  "+candidateName+": "+show(c))
		}
		for _, v := range ref.takeViolations() {
			t.Errorf("harness/etcd invariant broken in %s step %d: %s", sc.name, i, v)
		}
		for _, v := range cand.takeViolations() {
			mismatch(i, s, "invariant broken:", v)
		}
	}

	// Anything still buffered on a watch must match too (normally nothing).
	for name := range ref.watches {
		o := watchCollectOp{stream: name, n: 0}
		r, c := result(ref, o), result(cand, o)
		if d := diff(r, c); d != "" {
			mismatch(len(sc.steps), step{op: o}, "unexpected trailing watch responses (-etcd +"+candidateName+"):",
				d+"\n  etcd:      "+show(r)+"\n  "+candidateName+": "+show(c))
		}
	}
	for name := range ref.cwatches {
		o := ccollectOp{name: name, n: 0}
		r, c := result(ref, o), result(cand, o)
		if d := diff(r, c); d != "" {
			mismatch(len(sc.steps), step{op: o}, "unexpected trailing clientv3 watch responses (-etcd +"+candidateName+"):",
				d+"\n  etcd:      "+show(r)+"\n  "+candidateName+": "+show(c))
		}
	}
	ref.close()
	cand.close()

	if err := reset(p.ref); err != nil {
		t.Fatalf("cannot reset etcd after scenario: %v", err)
	}
	if err := reset(p.cand); err != nil {
		log.add(fmt.Sprintf("### %s: cleanup of %s failed\n%v", sc.name, candidateName, err))
		t.Errorf("cleanup of %s failed (a fresh pair will be started): %v", candidateName, err)
		return false
	}
	return true
}

// reset deletes every key and revokes every lease, and checks that the store
// is then empty, so that the next scenario starts from the same state.
func reset(b *backend) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := b.kv.DeleteRange(ctx, &pb.DeleteRangeRequest{Key: []byte{0}, RangeEnd: []byte{0}}); err != nil {
		return fmt.Errorf("delete all: %w", err)
	}
	ls, err := b.lease.LeaseLeases(ctx, &pb.LeaseLeasesRequest{})
	if err != nil {
		return fmt.Errorf("list leases: %w", err)
	}
	for _, l := range ls.Leases {
		if _, err := b.lease.LeaseRevoke(ctx, &pb.LeaseRevokeRequest{ID: l.ID}); err != nil && !strings.Contains(err.Error(), "lease not found") {
			return fmt.Errorf("revoke lease %x: %w", l.ID, err)
		}
	}
	rr, err := b.kv.Range(ctx, &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, CountOnly: true})
	if err != nil {
		return fmt.Errorf("count keys: %w", err)
	}
	if rr.Count != 0 {
		return fmt.Errorf("%d keys left after delete-all", rr.Count)
	}
	ls, err = b.lease.LeaseLeases(ctx, &pb.LeaseLeasesRequest{})
	if err != nil {
		return fmt.Errorf("list leases: %w", err)
	}
	if len(ls.Leases) != 0 {
		return fmt.Errorf("%d leases left after revoking all", len(ls.Leases))
	}
	return nil
}

// TestDifferential runs every scenario against etcd and the candidate.
func TestDifferential(t *testing.T) {
	log := &mismatchLog{}
	defer log.flush(t)
	p := startPair(t)

	t.Run("fresh-store", func(t *testing.T) {
		// A new store is at revision 1 with nothing in it, in etcd; absolute
		// values matter here because clients see them.
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		for _, o := range []op{
			rangeOp{&pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}}},
			leasesOp{},
		} {
			r := absolute(ctx, p.ref, o)
			c := absolute(ctx, p.cand, o)
			if d := diff(r, c); d != "" {
				msg := fmt.Sprintf("### fresh-store: %s\nresponse differs (-etcd +%s):\n%s", o, candidateName, d)
				log.add(msg)
				t.Error(msg)
			}
		}
	})

	for _, sc := range allScenarios() {
		clean := true
		t.Run(sc.name, func(t *testing.T) {
			clean = runScenario(t, p, sc, log)
		})
		if !clean {
			_ = p.Close()
			p = startPair(t)
		}
	}
}

// absolute runs an op with base revision 0, so revisions stay absolute.
func absolute(ctx context.Context, b *backend, o op) any {
	e := newEnv(b, 0)
	defer e.close()
	res, err := o.do(ctx, e)
	if err != nil {
		return toErrResult(err)
	}
	return res
}

// allScenarios lists every scenario in a fixed order.
func allScenarios() []scenario {
	var all []scenario
	all = append(all, kvScenarios()...)
	all = append(all, txnScenarios()...)
	all = append(all, compactScenarios()...)
	all = append(all, watchScenarios()...)
	all = append(all, leaseScenarios()...)
	return all
}
