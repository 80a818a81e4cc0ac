package mvcc

// Replace swaps the store's whole content, as when a member installs a
// snapshot from the leader: apply rewrites the database (the caller replaces
// every key of the store's prefixes), then the index and revision counters
// are rebuilt from it. Readers and writers wait meanwhile; a physical
// compaction in progress is waited for first, since it deletes keys.
func (s *Store) Replace(apply func() error) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.compMu.Lock()
	last := s.lastCompaction
	s.compMu.Unlock()
	if last != nil {
		<-last
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := apply(); err != nil {
		return err
	}
	cur, _, err := s.readMeta(metaCurrentRev)
	if err != nil {
		return err
	}
	scheduled, _, err := s.readMeta(metaScheduledCompact)
	if err != nil {
		return err
	}
	finished, _, err := s.readMeta(metaFinishedCompact)
	if err != nil {
		return err
	}
	s.index = newIndex()
	maxRev, err := s.rebuildIndex()
	if err != nil {
		return err
	}
	s.currentRev = max(1, cur, maxRev, scheduled)
	s.compactRev = scheduled
	s.compMu.Lock()
	s.finishedRev = finished
	s.compMu.Unlock()
	if scheduled > 0 {
		keep := s.compactIndexLocked(scheduled)
		if finished != scheduled {
			s.schedulePhysical(scheduled, keep)
		}
	}
	s.lg.Info("mvcc store replaced", "current-revision", s.currentRev, "compact-revision", s.compactRev, "keys", s.index.Len())
	return nil
}
