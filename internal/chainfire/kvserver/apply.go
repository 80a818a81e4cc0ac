package kvserver

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/photoncloud/photoncloud/internal/chainfire/auth"
	"github.com/photoncloud/photoncloud/internal/chainfire/lease"
	"github.com/photoncloud/photoncloud/internal/chainfire/mvcc"
)

// Keys of the applied state, under the 'a' and 'l' prefixes.
var (
	appliedKey  = []byte("ai")
	membersKey  = []byte("am")
	alarmPrefix = []byte("aa")
	leasePrefix = []byte("l")
)

func leaseKey(id int64) []byte {
	return binary.BigEndian.AppendUint64(append([]byte(nil), leasePrefix...), uint64(id))
}

func alarmDBKey(k alarmKey) []byte {
	b := binary.BigEndian.AppendUint64(append([]byte(nil), alarmPrefix...), k.member)
	return binary.BigEndian.AppendUint32(b, uint32(k.alarm))
}

func decodeRequest(data []byte) (*pb.InternalRaftRequest, error) {
	r := &pb.InternalRaftRequest{}
	if err := proto.Unmarshal(data, r); err != nil {
		return nil, err
	}
	return r, nil
}

// loadAppliedState restores the applied index, leases and alarms.
func (s *Server) loadAppliedState() error {
	v, closer, err := s.db.Get(appliedKey)
	switch {
	case err == nil:
		s.applied.Store(binary.BigEndian.Uint64(v))
		closer.Close()
	case !errors.Is(err, pebble.ErrNotFound):
		return fmt.Errorf("load applied index: %w", err)
	}
	s.appliedWait.trigger(s.applied.Load())
	first, _ := s.raftLog.Storage().FirstIndex()
	s.snapIndex = first - 1

	minTTL := (3*int64(s.opts.ElectionTimeout/s.opts.HeartbeatInterval)/2*int64(s.opts.HeartbeatInterval) + int64(1e9) - 1) / int64(1e9)
	s.lessor = lease.New(minTTL, nil)
	if err := s.openAuth(); err != nil {
		return err
	}
	return s.loadLeasesAndAlarms()
}

// loadLeasesAndAlarms fills the (empty) lessor and the alarm list from the
// database, and reloads the auth state (at start and after a snapshot).
func (s *Server) loadLeasesAndAlarms() error {
	if err := s.auth.Load(s.db); err != nil {
		return fmt.Errorf("load auth state: %w", err)
	}
	iter, err := s.db.NewIter(&pebble.IterOptions{LowerBound: leasePrefix, UpperBound: []byte{leasePrefix[0] + 1}})
	if err != nil {
		return err
	}
	for ok := iter.First(); ok; ok = iter.Next() {
		k, v := iter.Key(), iter.Value()
		if len(k) != 9 || (len(v) != 8 && len(v) != 16) {
			_ = iter.Close()
			return fmt.Errorf("corrupt lease record %x", k)
		}
		id := int64(binary.BigEndian.Uint64(k[1:]))
		if _, err := s.lessor.Grant(id, int64(binary.BigEndian.Uint64(v))); err != nil {
			_ = iter.Close()
			return fmt.Errorf("restore lease %x: %w", id, err)
		}
		if len(v) == 16 {
			_ = s.lessor.Checkpoint(id, int64(binary.BigEndian.Uint64(v[8:])))
		}
	}
	if err := iter.Close(); err != nil {
		return err
	}
	s.kv.LeasedKeys(func(key []byte, id int64) { s.lessor.Attach(string(key), id) })

	iter, err = s.db.NewIter(&pebble.IterOptions{LowerBound: alarmPrefix, UpperBound: []byte{alarmPrefix[0], alarmPrefix[1] + 1}})
	if err != nil {
		return err
	}
	s.alarmsMu.Lock()
	defer s.alarmsMu.Unlock()
	s.alarms = map[alarmKey]struct{}{}
	for ok := iter.First(); ok; ok = iter.Next() {
		k := iter.Key()
		if len(k) != 14 {
			continue
		}
		s.alarms[alarmKey{member: binary.BigEndian.Uint64(k[2:]), alarm: pb.AlarmType(binary.BigEndian.Uint32(k[10:]))}] = struct{}{}
	}
	return iter.Close()
}

// applyItem is what the raft loop hands the apply loop: a snapshot to
// install, or committed entries.
type applyItem struct {
	snap *raftpb.Snapshot
	ents []*raftpb.Entry
	// rejected holds the raft loop's reasons for refusing membership
	// changes among ents, by index.
	rejected map[uint64]error
}

func (s *Server) applyLoop() {
	defer s.wg.Done()
	for item := range s.applyc {
		if item.snap != nil {
			if err := s.installSnapshot(item.snap); err != nil {
				// The member cannot go on with a half-installed state.
				s.lg.Error("installing snapshot failed; stopping the member", "err", err)
				s.m.fatalErrors.Inc()
				s.stop(fmt.Errorf("install snapshot: %w", err))
				return
			}
			continue
		}
		for _, e := range item.ents {
			s.applyEntry(e, item.rejected)
		}
		s.appliedWait.trigger(s.applied.Load())
		s.maybeCompactLog()
	}
}

// maybeCompactLog drops raft log entries that every member has applied.
func (s *Server) maybeCompactLog() {
	applied := s.applied.Load()
	if applied-s.snapIndex <= s.opts.SnapshotCount {
		return
	}
	keep := uint64(5000)
	if keep > s.opts.SnapshotCount/2 {
		keep = s.opts.SnapshotCount / 2
	}
	index := applied - keep
	conf, ok := s.confs.at(index)
	if !ok {
		return
	}
	rec := snapshotRecord{View: conf.view}
	if err := s.raftLog.Compact(index, conf.cs, rec.encode()); err != nil {
		s.lg.Warn("raft log compaction failed", "index", index, "err", err)
		return
	}
	s.snapIndex = index
	s.lg.Debug("compacted raft log", "index", index)
}

func (s *Server) applyEntry(e *raftpb.Entry, rejected map[uint64]error) {
	idx := e.GetIndex()
	if idx <= s.applied.Load() {
		return // applied before a restart; raft replays from the last snapshot
	}
	if e.GetType() != raftpb.EntryNormal {
		s.applyMembership(e, rejected[idx])
		s.applied.Store(idx)
		return
	}
	if len(e.Data) == 0 {
		s.commitApplied(idx)
		s.applied.Store(idx)
		return
	}
	r, err := decodeRequest(e.Data)
	if err != nil {
		s.lg.Error("skipping undecodable raft entry", "index", idx, "err", err)
		s.commitApplied(idx)
		s.applied.Store(idx)
		return
	}
	res := s.applyRequest(r, idx)
	s.m.proposalsApplied.Inc()
	// Published before the reply, so a client never sees an applied index
	// below its own write.
	s.applied.Store(idx)
	if r.Header != nil {
		s.wait.trigger(r.Header.ID, res)
	}
}

// commitApplied records an index whose entry changed nothing.
func (s *Server) commitApplied(idx uint64) {
	w := s.kv.Write()
	setApplied(w.Batch(), idx)
	if _, _, err := w.Commit(); err != nil {
		s.lg.Error("persist applied index", "index", idx, "err", err)
	}
}

func setApplied(b *pebble.Batch, idx uint64) {
	_ = b.Set(appliedKey, binary.BigEndian.AppendUint64(nil, idx), nil)
}

// txnState tracks one write transaction: its start revision, whether it
// changed anything yet, and the lease bookkeeping to do once it commits.
type txnState struct {
	w        *mvcc.TxnWrite
	begin    int64
	changed  bool
	attach   []leaseOp
	onCommit []func()
}

type leaseOp struct {
	key string
	id  int64 // 0 detaches
}

func (t *txnState) Range(key, end []byte, ro mvcc.RangeOptions) (*mvcc.RangeResult, error) {
	return t.w.Range(key, end, ro)
}

func (t *txnState) rev() int64 {
	if t.changed {
		return t.begin + 1
	}
	return t.begin
}

func (s *Server) applyRequest(r *pb.InternalRaftRequest, idx uint64) result {
	t := &txnState{w: s.kv.Write(), begin: s.kv.Rev()}
	var res result
	// Every member checks permissions against the same auth state, with
	// the identity the proposing member stamped on the request.
	authErr := s.auth.CheckApply(r, s.leaseKeys)
	switch {
	case authErr != nil:
		res.err = authErr
	case r.Put != nil:
		res.resp, res.err = s.applyPut(t, r.Put)
	case r.DeleteRange != nil:
		res.resp = s.applyDelete(t, r.DeleteRange)
	case r.Txn != nil:
		res.resp, res.err = s.applyTxn(t, r.Txn)
	case r.LeaseGrant != nil:
		res.resp, res.err = s.applyLeaseGrant(t, r.LeaseGrant)
	case r.LeaseRevoke != nil:
		res.resp, res.err = s.applyLeaseRevoke(t, r.LeaseRevoke)
	case r.Alarm != nil:
		res.resp = s.applyAlarm(t, r.Alarm)
	case r.LeaseCheckpoint != nil:
		s.applyLeaseCheckpoint(t, r.LeaseCheckpoint)
	case r.ClusterMemberAttrSet != nil:
		s.applyMemberAttrs(t, r.ClusterMemberAttrSet)
	case auth.IsRequest(r):
		res = s.applyAuth(t, r, idx)
	case r.Compaction != nil:
		// Compaction has its own persistence; record the index first so a
		// crash in between replays it (and the replay finds it done).
	default:
		s.lg.Warn("ignoring raft request of unknown kind", "index", idx)
	}
	setApplied(t.w.Batch(), idx)
	rev, events, err := t.w.Commit()
	if err != nil {
		s.lg.Error("commit applied entry", "index", idx, "err", err)
		return result{err: fmt.Errorf("apply entry %d: %w", idx, err)}
	}
	for _, op := range t.attach {
		if op.id == 0 {
			s.lessor.Detach(op.key)
		} else {
			s.lessor.Attach(op.key, op.id)
		}
	}
	for _, f := range t.onCommit {
		f()
	}
	if len(events) > 0 {
		s.hub.Notify(rev, events)
	}
	if r.Compaction != nil {
		res = s.applyCompaction(r.Compaction)
	}
	if res.err == nil {
		s.setHeaderRev(res.resp, rev)
	}
	return res
}

// setHeaderRev stamps the top-level response header with the revision after
// the entry; the gRPC layer fills the rest of the header.
func (s *Server) setHeaderRev(resp any, rev int64) {
	var h **pb.ResponseHeader
	switch r := resp.(type) {
	case *pb.PutResponse:
		h = &r.Header
	case *pb.DeleteRangeResponse:
		h = &r.Header
	case *pb.TxnResponse:
		h = &r.Header
	case *pb.LeaseGrantResponse:
		h = &r.Header
	case *pb.LeaseRevokeResponse:
		h = &r.Header
	case *pb.AlarmResponse:
		h = &r.Header
	default:
		return
	}
	*h = &pb.ResponseHeader{Revision: rev}
}

func (s *Server) checkPut(t *txnState, p *pb.PutRequest) error {
	if p.Lease != 0 && !s.lessor.Exists(p.Lease) {
		return lease.ErrNotFound
	}
	if p.IgnoreValue || p.IgnoreLease {
		rr, err := t.Range(p.Key, nil, mvcc.RangeOptions{})
		if err != nil {
			return err
		}
		if len(rr.KVs) == 0 {
			return ErrKeyNotFound
		}
	}
	return nil
}

func (s *Server) applyPut(t *txnState, p *pb.PutRequest) (*pb.PutResponse, error) {
	if err := s.checkPut(t, p); err != nil {
		return nil, err
	}
	return s.doPut(t, p), nil
}

func (s *Server) doPut(t *txnState, p *pb.PutRequest) *pb.PutResponse {
	val, lid := p.Value, p.Lease
	if p.IgnoreValue || p.IgnoreLease {
		rr, _ := t.Range(p.Key, nil, mvcc.RangeOptions{})
		if len(rr.KVs) > 0 {
			if p.IgnoreValue {
				val = rr.KVs[0].Value
			}
			if p.IgnoreLease {
				lid = rr.KVs[0].Lease
			}
		}
	}
	var prev *mvccpb.KeyValue
	if p.PrevKv {
		prev = t.w.Put(p.Key, val, lid)
	} else {
		t.w.PutNoPrev(p.Key, val, lid) // saves reading the old value
	}
	t.changed = true
	t.attach = append(t.attach, leaseOp{key: string(p.Key), id: lid})
	return &pb.PutResponse{Header: &pb.ResponseHeader{Revision: t.rev()}, PrevKv: prev}
}

func (s *Server) applyDelete(t *txnState, d *pb.DeleteRangeRequest) *pb.DeleteRangeResponse {
	deleted := t.w.DeleteRange(d.Key, d.RangeEnd)
	if len(deleted) > 0 {
		t.changed = true
	}
	for _, kv := range deleted {
		if kv.Lease != 0 {
			t.attach = append(t.attach, leaseOp{key: string(kv.Key)})
		}
	}
	resp := &pb.DeleteRangeResponse{Header: &pb.ResponseHeader{Revision: t.rev()}, Deleted: int64(len(deleted))}
	if d.PrevKv {
		resp.PrevKvs = deleted
	}
	return resp
}

func (s *Server) applyLeaseGrant(t *txnState, r *pb.LeaseGrantRequest) (*pb.LeaseGrantResponse, error) {
	l, err := s.lessor.Grant(r.ID, r.TTL)
	if err != nil {
		return nil, err
	}
	_ = t.w.Batch().Set(leaseKey(l.ID), binary.BigEndian.AppendUint64(nil, uint64(l.TTL)), nil)
	return &pb.LeaseGrantResponse{ID: l.ID, TTL: l.TTL}, nil
}

// applyLeaseCheckpoint records remaining TTLs, so that a new leader (or this
// member after a restart) does not give the leases their full TTL again.
func (s *Server) applyLeaseCheckpoint(t *txnState, r *pb.LeaseCheckpointRequest) {
	for _, cp := range r.Checkpoints {
		info, err := s.lessor.Lookup(cp.ID, false)
		if err != nil {
			continue // revoked meanwhile
		}
		_ = s.lessor.Checkpoint(cp.ID, cp.Remaining_TTL)
		rec := binary.BigEndian.AppendUint64(nil, uint64(info.GrantedTTL))
		_ = t.w.Batch().Set(leaseKey(cp.ID), binary.BigEndian.AppendUint64(rec, uint64(cp.Remaining_TTL)), nil)
	}
}

func (s *Server) applyLeaseRevoke(t *txnState, r *pb.LeaseRevokeRequest) (*pb.LeaseRevokeResponse, error) {
	keys, err := s.lessor.Revoke(r.ID)
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		if len(t.w.DeleteRange([]byte(k), nil)) > 0 {
			t.changed = true
		}
	}
	_ = t.w.Batch().Delete(leaseKey(r.ID), nil)
	return &pb.LeaseRevokeResponse{}, nil
}

func (s *Server) applyAlarm(t *txnState, r *pb.AlarmRequest) *pb.AlarmResponse {
	resp := &pb.AlarmResponse{}
	k := alarmKey{member: r.MemberID, alarm: r.Alarm}
	switch r.Action {
	case pb.AlarmRequest_GET:
		resp.Alarms = s.Alarms()
	case pb.AlarmRequest_ACTIVATE:
		if r.Alarm == pb.AlarmType_NONE {
			break
		}
		_ = t.w.Batch().Set(alarmDBKey(k), nil, nil)
		t.onCommit = append(t.onCommit, func() {
			s.alarmsMu.Lock()
			s.alarms[k] = struct{}{}
			s.alarmsMu.Unlock()
			s.m.alarms.Set(float64(len(s.Alarms())))
			s.lg.Warn("alarm raised", "member", fmt.Sprintf("%x", k.member), "alarm", k.alarm.String())
		})
		resp.Alarms = []*pb.AlarmMember{{MemberID: r.MemberID, Alarm: r.Alarm}}
	case pb.AlarmRequest_DEACTIVATE:
		s.alarmsMu.RLock()
		_, active := s.alarms[k]
		s.alarmsMu.RUnlock()
		if !active {
			break
		}
		_ = t.w.Batch().Delete(alarmDBKey(k), nil)
		t.onCommit = append(t.onCommit, func() {
			s.alarmsMu.Lock()
			delete(s.alarms, k)
			s.alarmsMu.Unlock()
			s.m.alarms.Set(float64(len(s.Alarms())))
			s.lg.Info("alarm cleared", "member", fmt.Sprintf("%x", k.member), "alarm", k.alarm.String())
		})
		resp.Alarms = []*pb.AlarmMember{{MemberID: r.MemberID, Alarm: r.Alarm}}
	}
	return resp
}

func (s *Server) applyCompaction(r *pb.CompactionRequest) result {
	done, err := s.kv.Compact(r.Revision)
	if err != nil {
		return result{err: err}
	}
	s.lg.Info("compacted", "revision", r.Revision)
	return result{resp: &pb.CompactionResponse{Header: &pb.ResponseHeader{Revision: s.kv.Rev()}}, compacted: done}
}

// Alarms lists the active alarms.
func (s *Server) Alarms() []*pb.AlarmMember {
	s.alarmsMu.RLock()
	defer s.alarmsMu.RUnlock()
	out := make([]*pb.AlarmMember, 0, len(s.alarms))
	for k := range s.alarms {
		out = append(out, &pb.AlarmMember{MemberID: k.member, Alarm: k.alarm})
	}
	return out
}

func (s *Server) hasAlarm(a pb.AlarmType) bool {
	s.alarmsMu.RLock()
	defer s.alarmsMu.RUnlock()
	for k := range s.alarms {
		if k.alarm == a {
			return true
		}
	}
	return false
}

// historyAdapter gives the watch hub what it needs of the MVCC store.
type historyAdapter struct{ kv *mvcc.Store }

func (h historyAdapter) Events(start, end int64, fn func(*mvccpb.Event) bool) error {
	return h.kv.Events(start, end, fn)
}

func (h historyAdapter) PrevKV(key []byte, rev int64) *mvccpb.KeyValue {
	if rev <= 0 {
		return nil
	}
	rr, err := h.kv.Range(key, nil, mvcc.RangeOptions{Rev: rev})
	if err != nil || len(rr.KVs) == 0 {
		return nil
	}
	return rr.KVs[0]
}

func (h historyAdapter) CompactRev() int64 { return h.kv.CompactRev() }
