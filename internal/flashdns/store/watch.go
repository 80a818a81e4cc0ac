package store

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/photoncloud/photoncloud/internal/flashdns/zone"
)

// loadPage bounds one Range of a (re)load, so that a large installation
// does not need one huge response.
const loadPage = 2000

// reload reads everything under /flashdns/ at one revision R, rebuilds the
// index and every snapshot whose zone changed, installs the table and
// marks R applied. It runs on Open and whenever the watch lost events
// (compaction).
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
	touched := map[string]bool{}
	// Zones first, so that record sets decode with their zone's default
	// TTL; then the rest of /flashdns/ (which sorts before zones/) at the
	// same revision.
	rev, err := s.loadRange(ctx, fresh, zonesPrefix, prefixEnd(zonesPrefix), 0, touched)
	if err != nil {
		return nil, err
	}
	if _, err := s.loadRange(ctx, fresh, rootPrefix, zonesPrefix, rev, touched); err != nil {
		return nil, err
	}
	fresh.sortJournals()
	fresh.rev = rev
	return fresh, nil
}

func (s *Store) loadRange(ctx context.Context, ix *index, from, end string, rev int64, touched map[string]bool) (int64, error) {
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(loadPage)}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := s.cli.Get(ctx, from, opts...)
		if err != nil {
			return 0, fmt.Errorf("load %s: %w", from, err)
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		for _, kv := range resp.Kvs {
			ix.apply(s.lg, kv, false, touched)
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return rev, nil
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// install makes a freshly loaded index current: snapshots of zones whose
// zone key did not change carry over, the others are built, and the table
// is replaced.
func (s *Store) install(fresh *index) {
	s.ix.mu.Lock()
	old := s.ix
	// Carry snapshots over; prepare reuses them when the mod revision
	// matches (same content).
	for id, zs := range fresh.zones {
		if o := old.zones[id]; o != nil && o.gen == zs.gen && o.mod == zs.mod {
			zs.snap, zs.builtMod = o.snap, o.builtMod
		}
	}
	touched := map[string]bool{}
	for id := range fresh.zones {
		touched[id] = true
	}
	for id := range old.zones {
		touched[id] = true
	}
	jobs := fresh.prepare(touched)
	s.ix.swapContents(fresh)
	rev := fresh.rev
	s.ix.mu.Unlock()

	s.build(jobs)
	s.installSnapshots(jobs, true)
	s.m.reloads.Inc()
	s.advance(rev)
	s.lg.Debug("zones loaded", "revision", rev, "zones", len(fresh.zones))
	s.maybeRelease()
}

// swapContents replaces ix's content with fresh's (ix.mu held).
func (ix *index) swapContents(fresh *index) {
	ix.rev, ix.zones, ix.byParent = fresh.rev, fresh.zones, fresh.byParent
	ix.gens, ix.journal, ix.markers, ix.bad = fresh.gens, fresh.journal, fresh.markers, fresh.bad
	ix.setChanges += fresh.setChanges
}

// applyEvents applies one watch response: every event of it (whole
// revisions; a response never splits one) goes into the index first, then
// each touched zone is rebuilt once and the table swapped once.
func (s *Store) applyEvents(evs []*clientv3.Event) {
	if len(evs) == 0 {
		return
	}
	touched := map[string]bool{}
	s.ix.mu.Lock()
	for pass := 0; pass < 2; pass++ {
		for _, ev := range evs {
			if strings.HasPrefix(string(ev.Kv.Key), zonesPrefix) == (pass == 0) {
				s.ix.apply(s.lg, ev.Kv, ev.Type == mvccpb.DELETE, touched)
			}
		}
	}
	for id := range touched {
		if zs := s.ix.zones[id]; zs != nil {
			zs.builtMod = 0 // rebuild: something of it changed
		}
	}
	jobs := s.ix.prepare(touched)
	rev := s.ix.rev
	s.ix.mu.Unlock()

	built := s.build(jobs)
	s.installSnapshots(jobs, false)
	s.advance(rev)
	if built {
		// Only once snapshots are built: the record sets of a large
		// import arrive in many batches before the one that switches
		// the zone to them and builds its snapshot.
		s.maybeRelease()
	}
}

// maybeRelease returns free heap memory to the OS when the index has
// applied Options.ReleaseMemoryAfter record-set changes since the last
// time (see there). It runs after the revision is marked applied, so a
// writer waiting for its change does not wait for it too.
func (s *Store) maybeRelease() {
	if s.opts.ReleaseMemoryAfter < 0 {
		return
	}
	s.ix.mu.Lock()
	due := s.ix.setChanges >= s.opts.ReleaseMemoryAfter
	if due {
		s.ix.setChanges = 0
	}
	s.ix.mu.Unlock()
	if due {
		debug.FreeOSMemory()
		s.m.releases.Inc()
	}
}

// build builds the snapshots of jobs, in parallel when there are several
// (a reload of many zones). It reports whether it built any.
func (s *Store) build(jobs []*buildJob) bool {
	var todo []*buildJob
	for _, j := range jobs {
		if j.zs != nil && !j.reused {
			todo = append(todo, j)
		}
	}
	one := func(j *buildJob) {
		start := time.Now()
		// The index's record sets are immutable, so the snapshot may
		// share their records instead of holding copies.
		j.snap, j.err = zone.BuildShared(j.data)
		s.m.buildSeconds.Observe(time.Since(start).Seconds())
		j.data = zone.Data{} // let the input go
	}
	workers := min(len(todo), runtime.GOMAXPROCS(0))
	if workers <= 1 {
		for _, j := range todo {
			one(j)
		}
		return len(todo) > 0
	}
	ch := make(chan *buildJob)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for j := range ch {
				one(j)
			}
		})
	}
	for _, j := range todo {
		ch <- j
	}
	close(ch)
	wg.Wait()
	return true
}

// installSnapshots records the built snapshots in the index, swaps the
// table and calls the OnSwap hook for each zone whose served snapshot
// changed. A zone whose build failed keeps serving its previous snapshot:
// stored data that a newer FlashDNS rejects must not take a zone down.
func (s *Store) installSnapshots(jobs []*buildJob, full bool) {
	type swap struct{ old, new *zone.Snapshot }
	var swaps []swap

	s.ix.mu.Lock()
	cur := s.table.Load()
	for _, j := range jobs {
		if j.zs == nil || j.err != nil {
			continue
		}
		if s.ix.zones[j.id] == j.zs && j.zs.mod == j.mod {
			j.zs.snap, j.zs.builtMod = j.snap, j.mod
		}
	}
	var next *zone.Table
	if full {
		var snaps []*zone.Snapshot
		for _, zs := range s.ix.zones {
			if zs.enabled() && zs.snap != nil {
				snaps = append(snaps, zs.snap)
			}
		}
		next = zone.NewTable(snaps...)
	} else {
		// One copy of the table for every zone the events touched.
		var put []*zone.Snapshot
		var remove []string
		for _, j := range jobs {
			zs := s.ix.zones[j.id]
			switch {
			case zs == nil || !zs.enabled():
				remove = append(remove, origin(j.id))
			case zs.snap != nil:
				put = append(put, zs.snap)
			}
		}
		next = cur.Update(put, remove)
	}
	for _, j := range jobs {
		if j.err != nil {
			s.m.buildFailures.Inc()
			s.lg.Error("zone snapshot build failed; serving the previous one", "zone", j.id, "err", j.err)
		}
		o, n := cur.Get(origin(j.id)), next.Get(origin(j.id))
		if o != n {
			swaps = append(swaps, swap{o, n})
		}
	}
	s.table.Store(next)
	s.ix.mu.Unlock()

	if hook := s.swapHook(); hook != nil {
		for _, sw := range swaps {
			hook(sw.old, sw.new)
		}
	}
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
