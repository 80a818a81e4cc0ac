package store

import (
	"context"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// sweepLoop deletes abandoned generations every SweepInterval until Close.
func (s *Store) sweepLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.opts.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		s.sweep(s.ctx)
	}
}

// sweep deletes the record sets of every generation that no zone names
// and no live marker guards: what a staged write left behind when its
// writer died or gave up (the marker's lease expired). Each delete
// compares that the marker is still gone and the zone key unchanged, so a
// generation that became current meanwhile is never touched. Every
// replica sweeps; the deletes are idempotent.
func (s *Store) sweep(ctx context.Context) int {
	type victim struct {
		g       genID
		zoneMod int64
	}
	var victims []victim
	s.ix.mu.RLock()
	for g := range s.ix.gens {
		var mod int64
		if zs := s.ix.zones[g.zone]; zs != nil {
			if zs.gen == g.gen {
				continue
			}
			mod = zs.mod
		}
		if _, staging := s.ix.markers[g]; staging {
			continue
		}
		victims = append(victims, victim{g, mod})
	}
	s.ix.mu.RUnlock()
	n := 0
	for _, v := range victims {
		pre := genPrefix(v.g.zone, v.g.gen)
		resp, err := s.cli.Txn(ctx).If(
			clientv3.Compare(clientv3.CreateRevision(markerKey(v.g.zone, v.g.gen)), "=", 0),
			clientv3.Compare(clientv3.ModRevision(zoneKey(v.g.zone)), "=", v.zoneMod),
		).Then(clientv3.OpDelete(pre, clientv3.WithRange(prefixEnd(pre)))).Commit()
		if err != nil {
			if ctx.Err() == nil {
				s.lg.Warn("sweeping an abandoned zone generation failed", "zone", v.g.zone, "generation", v.g.gen, "err", err)
			}
			continue
		}
		if resp.Succeeded {
			n++
			s.m.swept.Inc()
			s.lg.Info("swept an abandoned zone generation", "zone", v.g.zone, "generation", v.g.gen)
		}
	}
	return n
}
