package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// loadPage bounds one Range of a (re)load, so that a large installation
// does not need one huge response.
const loadPage = 2000

// reload reads the whole watched prefix at one revision R (paging with
// WithRev(R)), rebuilds the index from it, resets the evaluator to it,
// brings the revocation list in line and marks R applied. It runs on Open
// and whenever the watch lost events (compaction).
func (s *Store) reload(ctx context.Context) error {
	for attempt := 0; ; attempt++ {
		fresh, err := s.loadAll(ctx)
		if errors.Is(err, rpctypes.ErrCompacted) && attempt < 3 {
			// Compacted between two pages: start over at a newer revision.
			continue
		}
		if err != nil {
			return err
		}
		s.install(fresh)
		return nil
	}
}

func (s *Store) loadAll(ctx context.Context) (*index, error) {
	fresh := newIndex()
	end := prefixEnd(iamPrefix)
	from := iamPrefix
	var rev int64
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(loadPage)}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := s.cli.Get(ctx, from, opts...)
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", iamPrefix, err)
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		for _, kv := range resp.Kvs {
			fresh.apply(s.lg, kv, false, nil)
		}
		if !resp.More || len(resp.Kvs) == 0 {
			break
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
	fresh.rev = rev
	return fresh, nil
}

// install makes a freshly loaded index current and feeds it everywhere.
func (s *Store) install(fresh *index) {
	f := &feed{lg: s.lg}
	fullFeed(fresh, f)

	s.ix.mu.Lock()
	oldTokens, oldSubjects := s.ix.revokedTokens, s.ix.revokedSubjects
	keysChanged := s.ix.signingKeysRev != fresh.signingKeysRev || !bytes.Equal(s.ix.signingKeys, fresh.signingKeys)
	s.ix.replaceWith(fresh)
	s.ix.mu.Unlock()

	f.run(s.eval, fresh.rev, true)
	// Revocations that vanished while the watch was blind were deleted
	// (their leases ran out, or the principal was deleted).
	for jti := range oldTokens {
		if _, ok := fresh.revokedTokens[jti]; !ok {
			s.revs.ForgetToken(jti)
		}
	}
	for sub := range oldSubjects {
		if _, ok := fresh.revokedSubjects[sub]; !ok {
			s.revs.ForgetPrincipal(sub)
		}
	}
	for _, r := range f.revs {
		r(s.revs)
	}
	if keysChanged {
		s.signalKeys()
	}
	s.advance(fresh.rev)
	s.lg.Debug("index loaded", "revision", fresh.rev, "records", fresh.recs.Len())
}

// applyEvents applies one watch response.
func (s *Store) applyEvents(evs []*clientv3.Event) {
	if len(evs) == 0 {
		return
	}
	f := &feed{lg: s.lg}
	s.ix.mu.Lock()
	for _, ev := range evs {
		s.ix.apply(s.lg, ev.Kv, ev.Type == mvccpb.DELETE, f)
	}
	rev := s.ix.rev
	s.ix.mu.Unlock()
	if len(f.ops) > 0 {
		f.run(s.eval, rev, false)
	}
	for _, r := range f.revs {
		r(s.revs)
	}
	if f.keys {
		s.signalKeys()
	}
	s.advance(rev)
}

// feedIndex is the Store as the watchfeed.Index its Feed keeps current.
type feedIndex struct{ s *Store }

func (f feedIndex) Revision() int64 {
	f.s.ix.mu.RLock()
	defer f.s.ix.mu.RUnlock()
	return f.s.ix.rev
}

func (f feedIndex) Apply(evs []*clientv3.Event) { f.s.applyEvents(evs) }

func (f feedIndex) Progress(rev int64) {
	f.s.ix.mu.Lock()
	if rev > f.s.ix.rev {
		f.s.ix.rev = rev
	}
	f.s.ix.mu.Unlock()
	f.s.advance(rev)
}

func (f feedIndex) Reload(ctx context.Context) error { return f.s.reload(ctx) }

// kickWatch ends the current watch; the feed starts a new one. Tests use
// it to simulate a lost connection.
func (s *Store) kickWatch() { s.feed.Kick() }

// OnSigningKeysChanged registers fn to be called (from a goroutine of the
// Store, never concurrently with itself) whenever the stored signing-key
// set changes, including changes made through this Store; the server
// passes a function that calls token.Keyring.Reload. Calls coalesce: fn
// runs at least once after every change.
func (s *Store) OnSigningKeysChanged(fn func()) {
	s.cbMu.Lock()
	defer s.cbMu.Unlock()
	s.keyCBs = append(s.keyCBs, fn)
}

func (s *Store) signalKeys() {
	select {
	case s.keyNotify <- struct{}{}:
	default:
	}
}

// notifyLoop runs the signing-key callbacks outside the watch goroutine,
// so that a slow Keyring.Reload (which reads through the Store) never holds
// back the index.
func (s *Store) notifyLoop() {
	defer s.wg.Done()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.keyNotify:
		}
		s.cbMu.Lock()
		cbs := append([]func(){}, s.keyCBs...)
		s.cbMu.Unlock()
		for _, fn := range cbs {
			fn()
		}
	}
}
