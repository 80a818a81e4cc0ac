package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/btree"
	"github.com/miekg/dns"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	flashdnsv1 "github.com/photoncloud/photoncloud/api/flashdns/v1"
)

// touch is the new state of one record set in a plan.
type touch struct {
	old *rrset // as in the view; nil: absent
	new *rrset // nil: deleted
}

// plan is one write of a zone, computed from a view: the new zone record
// and every record set that differs from the view. The store writes it in
// one transaction when it fits, and as a new generation otherwise.
type plan struct {
	id, parent string
	// v is the view the plan was made from; nil when the plan creates the
	// zone.
	v *view
	// rev is the index revision the plan was made at (creates compare
	// that no zone was created since, for the nesting and quota checks).
	rev  int64
	zone *flashdnsv1.Zone
	// sets is the zone's whole new content; touched the sets that differ
	// from the view's content.
	sets    *btree.BTreeG[*rrset]
	touched map[setKey]*touch
	// journal is the entry for the change; nil writes none and breaks
	// the chain (IXFR across it falls back to a full transfer).
	journal *flashdnsv1.JournalEntry
	// noJournalChange: the change does not touch what a transfer holds
	// (enabled, labels, PTR pattern): the journal stays as it is.
	noJournalChange bool
}

// txnSize accumulates the operations, comparisons and bytes of a
// transaction.
type txnSize struct{ cmps, ops, bytes int }

// opOverhead approximates the framing of one operation in the request.
const opOverhead = 32

func (t *txnSize) cmp(key string) { t.cmps++; t.bytes += len(key) + opOverhead }
func (t *txnSize) op(key string, value []byte) {
	t.ops++
	t.bytes += len(key) + len(value) + opOverhead
}

func (s *Store) fits(t txnSize) bool {
	return t.cmps <= s.opts.MaxTxnOps && t.ops <= s.opts.MaxTxnOps && t.bytes <= s.opts.MaxTxnBytes
}

// zoneCmps compares what the plan was made from: for a create, that the
// zone does not exist and no zone was created since the plan's revision
// (nesting and quota were checked against the index); otherwise that the
// zone key is as in the view (every change of a zone rewrites its key).
func (p *plan) zoneCmps() []clientv3.Cmp {
	if p.v == nil {
		return []clientv3.Cmp{
			clientv3.Compare(clientv3.CreateRevision(zoneKey(p.id)), "=", 0),
			clientv3.Compare(clientv3.CreateRevision(zonesPrefix), "<", p.rev+1).WithRange(prefixEnd(zonesPrefix)),
		}
	}
	return []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(zoneKey(p.id)), "=", p.v.mod)}
}

// failure explains a transaction whose comparisons failed: a create whose
// zone now exists is ErrAlreadyExists, anything else a retry (after
// waiting until the index has seen what made it fail).
func (s *Store) failure(ctx context.Context, p *plan, resp *clientv3.TxnResponse) error {
	if p.v == nil && len(resp.Responses) > 0 && resp.Responses[0].GetResponseRange().GetCount() > 0 {
		return existsf("a zone named %s already exists", origin(p.id))
	}
	if err := s.WaitRevision(ctx, resp.Header.Revision); err != nil {
		return err
	}
	return errRetry
}

func (p *plan) probes() []clientv3.Op {
	return []clientv3.Op{clientv3.OpGet(zoneKey(p.id), clientv3.WithCountOnly())}
}

// journalOps returns the operations that record p's journal entry and keep
// the chain at most JournalLength long.
func (s *Store) journalOps(p *plan, sz *txnSize) ([]clientv3.Op, error) {
	if p.noJournalChange {
		return nil, nil
	}
	var old []*journalEntry
	var oldSerial uint32
	if p.v != nil {
		old, oldSerial = p.v.journal, p.v.z.GetSerial()
	}
	pre := journalZonePrefix(p.id)
	if p.journal == nil {
		if len(old) == 0 {
			return nil, nil
		}
		sz.op(pre, nil)
		return []clientv3.Op{clientv3.OpDelete(pre, clientv3.WithRange(prefixEnd(pre)))}, nil
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(p.journal)
	if err != nil {
		return nil, fmt.Errorf("encode journal entry: %w", err)
	}
	key := journalKey(p.id, p.journal.GetToSerial())
	ops := []clientv3.Op{clientv3.OpPut(key, string(b))}
	sz.op(key, b)
	intact := len(old) == 0 || old[len(old)-1].diff.ToSerial == oldSerial
	if !intact {
		// Entries that do not lead to the old serial are useless now.
		// Two ranges around the new key: a txn must not put a key it
		// also deletes.
		ops = append(ops, clientv3.OpDelete(pre, clientv3.WithRange(key)),
			clientv3.OpDelete(key+"\x00", clientv3.WithRange(prefixEnd(pre))))
		sz.op(pre, nil)
		sz.op(key, nil)
		return ops, nil
	}
	if drop := len(old) + 1 - s.opts.JournalLength; drop > 0 {
		for _, e := range old[:drop] {
			if e.key != key {
				ops = append(ops, clientv3.OpDelete(e.key))
				sz.op(e.key, nil)
			}
		}
	}
	return ops, nil
}

// commit writes p and returns the revision of its (last) transaction,
// without waiting until the store has applied it (write does). A failed
// comparison is errRetry, or ErrAlreadyExists for a create whose zone
// appeared.
func (s *Store) commit(ctx context.Context, p *plan) (int64, error) {
	gen := newGen()
	if p.v != nil {
		gen = p.v.gen
	}
	var sz txnSize
	cmps := p.zoneCmps()
	for range cmps {
		sz.cmp(zoneKey(p.id))
	}
	zb, err := encodeZone(p.zone, gen)
	if err != nil {
		return 0, err
	}
	ops := []clientv3.Op{clientv3.OpPut(zoneKey(p.id), string(zb))}
	sz.op(zoneKey(p.id), zb)
	jops, err := s.journalOps(p, &sz)
	if err != nil {
		return 0, err
	}
	ops = append(ops, jops...)
	for k, t := range p.touched {
		if !s.fits(sz) {
			break
		}
		key := rrsetKey(p.id, gen, k)
		var mod int64
		if t.old != nil {
			mod = t.old.mod
		}
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(key), "=", mod))
		sz.cmp(key)
		if t.new == nil {
			ops = append(ops, clientv3.OpDelete(key))
			sz.op(key, nil)
			continue
		}
		b, err := encodeSet(t.new)
		if err != nil {
			return 0, err
		}
		ops = append(ops, clientv3.OpPut(key, string(b)))
		sz.op(key, b)
	}
	if !s.fits(sz) {
		return s.commitStaged(ctx, p)
	}
	resp, err := s.txnNoWait(ctx, cmps, ops, p.probes())
	if err != nil {
		return 0, err
	}
	if !resp.Succeeded {
		return 0, s.failure(ctx, p, resp)
	}
	return resp.Header.Revision, nil
}

// commitStaged writes p as a new generation of the zone: every record set
// of p.sets under a fresh generation prefix, in as many transactions as it
// takes, guarded by a leased marker key; then one small transaction
// switches the zone to the new generation, deletes the old one and records
// the journal entry. Readers see the old content until that last
// transaction and the new content from it on; a writer that dies midway
// leaves a generation no zone names, which the sweep deletes once the
// marker's lease expires.
func (s *Store) commitStaged(ctx context.Context, p *plan) (rev int64, err error) {
	if err := s.checkOpen(); err != nil {
		return 0, err
	}
	s.m.staged.Inc()
	gen := newGen()
	marker := markerKey(p.id, gen)
	ttl := int64(s.opts.ImportLeaseTTL / time.Second)
	rctx, cancel := s.request(ctx)
	lease, err := s.cli.Grant(rctx, ttl)
	cancel()
	if err != nil {
		return 0, s.chainfireErr(rctx, "lease grant", err)
	}
	done := false
	defer func() {
		if !done {
			s.abandon(p.id, gen, lease.ID)
		}
	}()
	rctx, cancel = s.request(ctx)
	mresp, err := s.cli.Txn(rctx).If(clientv3.Compare(clientv3.CreateRevision(marker), "=", 0)).
		Then(clientv3.OpPut(marker, p.parent, clientv3.WithLease(lease.ID))).Commit()
	cancel()
	if err != nil {
		return 0, s.chainfireErr(rctx, "txn", err)
	}
	if !mresp.Succeeded {
		return 0, fmt.Errorf("generation %s of zone %s is taken", gen, p.id)
	}
	alive := time.Now()
	markerCmp := clientv3.Compare(clientv3.CreateRevision(marker), ">", 0)

	var ops []clientv3.Op
	var sz txnSize
	flush := func() error {
		if len(ops) == 0 {
			return nil
		}
		if s.opts.testBeforeChunk != nil {
			s.opts.testBeforeChunk()
		}
		if time.Since(alive) > s.opts.ImportLeaseTTL/3 {
			rctx, cancel := s.request(ctx)
			_, err := s.cli.KeepAliveOnce(rctx, lease.ID)
			cancel()
			if err != nil {
				if errors.Is(err, rpctypes.ErrLeaseNotFound) {
					return fmt.Errorf("%w: the write of zone %s took longer than its lease (%v)", ErrConflict, p.id, s.opts.ImportLeaseTTL)
				}
				return s.chainfireErr(rctx, "lease keep-alive", err)
			}
			alive = time.Now()
		}
		rctx, cancel := s.request(ctx)
		resp, err := s.cli.Txn(rctx).If(markerCmp).Then(ops...).Commit()
		cancel()
		if err != nil {
			return s.chainfireErr(rctx, "txn", err)
		}
		if !resp.Succeeded {
			return fmt.Errorf("%w: the write of zone %s took longer than its lease (%v)", ErrConflict, p.id, s.opts.ImportLeaseTTL)
		}
		ops, sz = ops[:0], txnSize{cmps: 1}
		return nil
	}
	sz.cmps = 1
	var ferr error
	p.sets.Ascend(func(set *rrset) bool {
		key := rrsetKey(p.id, gen, set.setKey)
		b, err := encodeSet(set)
		if err != nil {
			ferr = err
			return false
		}
		next := sz
		next.op(key, b)
		if !s.fits(next) {
			if ferr = flush(); ferr != nil {
				return false
			}
			next = sz
			next.op(key, b)
		}
		ops = append(ops, clientv3.OpPut(key, string(b)))
		sz = next
		return ctx.Err() == nil
	})
	if ferr == nil {
		ferr = ctx.Err()
	}
	if ferr == nil {
		ferr = flush()
	}
	if ferr != nil {
		return 0, ferr
	}

	// The switch.
	if s.opts.testBeforeFlip != nil {
		s.opts.testBeforeFlip()
	}
	zb, err := encodeZone(p.zone, gen)
	if err != nil {
		return 0, err
	}
	var fsz txnSize
	cmps := append(p.zoneCmps(), markerCmp)
	fops := []clientv3.Op{clientv3.OpPut(zoneKey(p.id), string(zb)), clientv3.OpDelete(marker)}
	fsz.op(zoneKey(p.id), zb)
	if p.v != nil {
		old := genPrefix(p.id, p.v.gen)
		fops = append(fops, clientv3.OpDelete(old, clientv3.WithRange(prefixEnd(old))))
	}
	jops, err := s.journalOps(p, &fsz)
	if err != nil {
		return 0, err
	}
	fops = append(fops, jops...)
	resp, err := s.txnNoWait(ctx, cmps, fops, p.probes())
	if err != nil {
		return 0, err
	}
	if !resp.Succeeded {
		return 0, s.failure(ctx, p, resp)
	}
	done = true
	// The marker is gone; its lease holds nothing any more.
	revokeCtx, cancelRevoke := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancelRevoke()
	if _, err := s.cli.Revoke(revokeCtx, lease.ID); err != nil {
		s.lg.Debug("revoking an import lease failed; it expires on its own", "err", err)
	}
	return resp.Header.Revision, nil
}

// abandon deletes a staged generation that will never be switched to.
// Best effort: the sweep deletes what it leaves once the lease expires.
func (s *Store) abandon(id, gen string, lease clientv3.LeaseID) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pre := genPrefix(id, gen)
	_, err := s.cli.Txn(ctx).Then(
		clientv3.OpDelete(markerKey(id, gen)),
		clientv3.OpDelete(pre, clientv3.WithRange(prefixEnd(pre))),
	).Commit()
	if err != nil {
		s.lg.Warn("deleting an abandoned zone generation failed; the sweep will", "zone", id, "generation", gen, "err", err)
	}
	if _, err := s.cli.Revoke(ctx, lease); err != nil {
		s.lg.Debug("revoking an import lease failed; it expires on its own", "err", err)
	}
}

// write runs build+commit until the commit does not ask for a retry,
// holding this replica's write lock of the zone. build returns a nil plan
// when there is nothing to write. It returns the revision written (0 when
// nothing was), once the store has applied it.
func (s *Store) write(ctx context.Context, id string, build func() (*plan, error)) (int64, error) {
	unlock, err := s.lockZone(ctx, id)
	if err != nil {
		return 0, err
	}
	defer unlock()
	rev, err := s.commitPlan(ctx, id, build)
	if err == nil && rev != 0 {
		// Waiting here, not in commit: the plan and what build holds
		// (for an import, the parsed file: a second copy of the zone)
		// are garbage by now, while the watch applies the change and
		// builds the new snapshot, the peak of a large write.
		s.waitOwn(ctx, rev)
	}
	return rev, err
}

// commitPlan is write's loop of build and commit.
func (s *Store) commitPlan(ctx context.Context, id string, build func() (*plan, error)) (int64, error) {
	for attempt := 0; attempt < maxAttempts; attempt++ {
		p, err := build()
		if err != nil || p == nil {
			return 0, err
		}
		rev, err := s.commit(ctx, p)
		if errors.Is(err, errRetry) {
			s.m.conflicts.Inc()
			continue
		}
		return rev, err
	}
	return 0, fmt.Errorf("%w: zone %s", ErrConflict, id)
}

// viewFor returns a writer's view of zone id of project parent, checking
// etag (empty: any). When the zone is missing or the etag is newer than
// the index, the index may lag behind another replica: it catches up once
// before answering NotFound or EtagMismatch.
func (s *Store) viewFor(ctx context.Context, parent, id, etag string) (*view, error) {
	var want int64
	if etag != "" {
		var ok bool
		if want, ok = parseEtag(etag); !ok {
			return nil, fmt.Errorf("%w: zone %s: etag %q is not one FlashDNS made", ErrEtagMismatch, id, clip(etag))
		}
	}
	for i := 0; ; i++ {
		v := s.ix.view(id)
		lagging := v == nil || v.parent != parent || want > v.mod
		if lagging && i == 0 {
			if err := s.catchUp(ctx); err != nil {
				return nil, err
			}
			continue
		}
		switch {
		case v == nil || v.parent != parent:
			return nil, notFoundf("zone %s", ZoneName(parent, id))
		case want != 0 && want != v.mod:
			return nil, fmt.Errorf("%w: zone %s has etag %q, not %q", ErrEtagMismatch, id, etagOf(v.mod), clip(etag))
		}
		return v, nil
	}
}

// diffSets returns the records a change of one set removes and adds, for
// the journal. A TTL change replaces every record.
func diffSets(old, new *rrset) (del, add []dns.RR) {
	switch {
	case old == nil && new == nil:
		return nil, nil
	case old == nil:
		return nil, new.rrs
	case new == nil:
		return old.rrs, nil
	case old.effTTL() != new.effTTL():
		return old.rrs, new.rrs
	}
	for _, r := range old.rrs {
		if !containsRR(new.rrs, r) {
			del = append(del, r)
		}
	}
	for _, r := range new.rrs {
		if !containsRR(old.rrs, r) {
			add = append(add, r)
		}
	}
	return del, add
}

func containsRR(rrs []dns.RR, r dns.RR) bool {
	for _, x := range rrs {
		if dns.IsDuplicate(x, r) {
			return true
		}
	}
	return false
}

// journalFor builds the journal entry of a change from the old serial to
// the new one with the given differences, or nil when it would be larger
// than MaxJournalBytes.
func (s *Store) journalFor(from, to uint32, diffs []touch, at *timestamppb.Timestamp) *flashdnsv1.JournalEntry {
	var del, add []dns.RR
	size := 0
	for _, t := range diffs {
		d, a := diffSets(t.old, t.new)
		del, add = append(del, d...), append(add, a...)
		for _, r := range d {
			size += len(r.String())
		}
		for _, r := range a {
			size += len(r.String())
		}
		if size > s.opts.MaxJournalBytes {
			return nil
		}
	}
	e := journalMessage(from, to, del, add, at)
	if proto.Size(e) > s.opts.MaxJournalBytes {
		return nil
	}
	return e
}
