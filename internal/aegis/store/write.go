package store

import (
	"context"
	"errors"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"
)

// keyCheck is a key whose existence a write depends on, with the error to
// report when the check fails.
type keyCheck struct {
	key string
	err error
}

// writeSpec describes one optimistic write: comparisons, the operations to
// run if they hold, and how to explain a failure.
type writeSpec struct {
	// mustExist must exist (parents, referenced records).
	mustExist []keyCheck
	// mustNotExist must not exist (the new record, unique attributes).
	mustNotExist []keyCheck
	// guards are further comparisons (mod revisions of what was read,
	// "nothing new under this prefix"); when one fails the write is
	// rebuilt from a newer index and retried.
	guards []clientv3.Cmp
	ops    []clientv3.Op
}

// errRetry means: the guards failed, rebuild and try again.
var errRetry = errors.New("retry")

// commit runs spec as one transaction and returns its revision. A failed
// mustExist or mustNotExist check becomes its error; a failed guard
// errRetry, after waiting until the index has seen what made it fail.
func (s *Store) commit(ctx context.Context, spec *writeSpec) (int64, error) {
	cmps := make([]clientv3.Cmp, 0, len(spec.mustExist)+len(spec.mustNotExist)+len(spec.guards))
	var probes []clientv3.Op
	for _, c := range spec.mustExist {
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(c.key), ">", 0))
		probes = append(probes, clientv3.OpGet(c.key, clientv3.WithCountOnly()))
	}
	for _, c := range spec.mustNotExist {
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(c.key), "=", 0))
		probes = append(probes, clientv3.OpGet(c.key, clientv3.WithCountOnly()))
	}
	cmps = append(cmps, spec.guards...)
	if n := max(len(cmps), len(spec.ops)); n > s.opts.MaxTxnOps {
		return 0, invalidf("the change needs %d operations in one transaction, more than the limit of %d", n, s.opts.MaxTxnOps)
	}
	resp, err := s.txn(ctx, cmps, spec.ops, probes)
	if err != nil {
		return 0, err
	}
	if resp.Succeeded {
		return resp.Header.Revision, nil
	}
	for i, c := range spec.mustExist {
		if resp.Responses[i].GetResponseRange().GetCount() == 0 {
			return 0, c.err
		}
	}
	for i, c := range spec.mustNotExist {
		if resp.Responses[len(spec.mustExist)+i].GetResponseRange().GetCount() != 0 {
			return 0, c.err
		}
	}
	if err := s.waitFailed(ctx, resp); err != nil {
		return 0, err
	}
	return 0, errRetry
}

// retry runs build+commit until the commit does not ask for a retry.
func (s *Store) retry(ctx context.Context, what string, build func() (*writeSpec, error)) (int64, error) {
	for attempt := 0; attempt < maxAttempts; attempt++ {
		spec, err := build()
		if err != nil {
			return 0, err
		}
		rev, err := s.commit(ctx, spec)
		if errors.Is(err, errRetry) {
			continue
		}
		return rev, err
	}
	return 0, fmt.Errorf("%w: %s", ErrConflict, what)
}

// snapshot is a record as read for a write: the entry and the revisions
// that its etag covers.
type snapshot struct {
	e       *entry
	etagRev int64
	gverMod int64 // groups: mod revision of the membership-change key (0: none)
}

// guards compares everything the snapshot's etag covers, so that the write
// applies only to exactly the state that was read.
func (sn *snapshot) guards() []clientv3.Cmp {
	g := []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(sn.e.key), "=", sn.e.mod)}
	if sn.e.kind == kindGroup {
		g = append(g, clientv3.Compare(clientv3.ModRevision(gverKey(sn.e.name)), "=", sn.gverMod))
	}
	return g
}

// read returns the current record named name for a write, checking etag
// (empty: any). When the record is missing or the etag is newer than the
// index, the index may lag behind another replica: it catches up once
// before answering NotFound or EtagMismatch.
func (s *Store) read(ctx context.Context, k kind, name, etag string) (*snapshot, error) {
	want, ok := int64(0), true
	if etag != "" {
		if want, ok = parseEtag(etag); !ok {
			return nil, fmt.Errorf("%w: %s %q: etag %q is not one Aegis made", ErrEtagMismatch, k, clip(name), clip(etag))
		}
	}
	for i := 0; ; i++ {
		s.ix.mu.RLock()
		e := s.ix.getName(k, name)
		var sn *snapshot
		if e != nil {
			sn = &snapshot{e: e, etagRev: s.ix.etagRev(e), gverMod: s.ix.gvers[e.name].mod}
		}
		s.ix.mu.RUnlock()
		lagging := sn == nil || (want != 0 && want > sn.etagRev)
		if lagging && i == 0 {
			if err := s.catchUp(ctx, k.key(name)); err != nil {
				return nil, err
			}
			continue
		}
		switch {
		case sn == nil:
			return nil, notFoundf("%s %q", k, clip(name))
		case want != 0 && want != sn.etagRev:
			return nil, fmt.Errorf("%w: %s %q has etag %q, not %q", ErrEtagMismatch, k, clip(name), etagOf(sn.etagRev), clip(etag))
		}
		return sn, nil
	}
}

// marshal encodes a record for storage. Etags are never stored (they are
// the key's mod revision).
func marshal(m proto.Message) ([]byte, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode record: %w", err)
	}
	return b, nil
}

// putRecord returns the Put of a record (with its etag cleared).
func putRecord(k kind, name string, m proto.Message) (clientv3.Op, error) {
	clearEtag(m)
	b, err := marshal(m)
	if err != nil {
		return clientv3.Op{}, err
	}
	return clientv3.OpPut(k.key(name), string(b)), nil
}

func existsCheck(k kind, name string, err error) keyCheck {
	return keyCheck{key: k.key(name), err: err}
}
