package kvserver

import (
	"bytes"
	"context"
	"errors"
	"math"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/proto"
)

// requestTimeout bounds a request whose context has no deadline, as etcd's
// 5s plus two election timeouts.
func (s *Server) requestTimeout() time.Duration {
	return 5*time.Second + 2*s.opts.ElectionTimeout
}

// Range serves a read: linearizable unless r.Serializable.
func (s *Server) Range(ctx context.Context, r *pb.RangeRequest) (*pb.RangeResponse, error) {
	if !r.Serializable {
		if err := s.linearizableReadNotify(ctx); err != nil {
			return nil, err
		}
	}
	return executeRange(pinned{kv: s.kv, at: s.kv.Rev()}, r)
}

// initialStreamChunk is the first chunk size of RangeStream, as etcd's.
const initialStreamChunk = 10

// RangeStream serves a range in chunks at one pinned revision, sizing each
// chunk towards the request size limit, as etcd 3.7 does. Only the last chunk
// carries the header, More and Count. Callers reject custom sort orders and
// revision filters first.
func (s *Server) RangeStream(ctx context.Context, r *pb.RangeRequest, send func(*pb.RangeResponse) error) error {
	if !r.Serializable {
		if err := s.linearizableReadNotify(ctx); err != nil {
			return err
		}
	}
	r = proto.Clone(r).(*pb.RangeRequest)
	rd := pinned{kv: s.kv, at: s.kv.Rev()}
	if r.CountOnly {
		resp, err := executeRange(rd, r)
		if err != nil {
			return err
		}
		return send(&pb.RangeResponse{Header: &pb.ResponseHeader{Revision: resp.Header.Revision}, Count: resp.Count})
	}
	total := r.Limit
	if total == 0 {
		total = math.MaxInt64
	}
	r.Limit = min(initialStreamChunk, total)
	var count int64
	for {
		resp, err := executeRange(rd, r)
		if err != nil {
			return err
		}
		count += int64(len(resp.Kvs))
		var next []byte
		if resp.More {
			next = append(bytes.Clone(resp.Kvs[len(resp.Kvs)-1].Key), 0)
		}
		out := &pb.RangeResponse{Kvs: resp.Kvs}
		done := !resp.More || count == total
		if done {
			out.Header = &pb.ResponseHeader{Revision: rd.at}
			out.More = resp.More
			out.Count = count
			if resp.More {
				rest, err := executeRange(rd, &pb.RangeRequest{Key: next, RangeEnd: r.RangeEnd, Revision: r.Revision, CountOnly: true})
				if err != nil {
					return err
				}
				out.Count += rest.Count
			}
		}
		if err := send(out); err != nil {
			return err
		}
		if done {
			return nil
		}
		r.Key = next
		size := proto.Size(resp)
		switch {
		case size < s.opts.MaxRequestBytes/2:
			r.Limit *= 2
		case size > s.opts.MaxRequestBytes*2:
			r.Limit /= 2
		}
		r.Limit = min(max(r.Limit, 1), total-count)
	}
}

// Put writes a key through raft.
func (s *Server) Put(ctx context.Context, r *pb.PutRequest) (*pb.PutResponse, error) {
	if err := s.checkQuota(r); err != nil {
		return nil, err
	}
	return proposeAs[*pb.PutResponse](ctx, s, &pb.InternalRaftRequest{Put: r})
}

// DeleteRange deletes keys through raft.
func (s *Server) DeleteRange(ctx context.Context, r *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	if err := s.checkWritable(); err != nil {
		return nil, err
	}
	return proposeAs[*pb.DeleteRangeResponse](ctx, s, &pb.InternalRaftRequest{DeleteRange: r})
}

// Txn runs a transaction: read-only ones locally after a read barrier, the
// others through raft.
func (s *Server) Txn(ctx context.Context, r *pb.TxnRequest) (*pb.TxnResponse, error) {
	if IsTxnReadOnly(r) {
		if !isTxnSerializable(r) {
			if err := s.linearizableReadNotify(ctx); err != nil {
				return nil, err
			}
		}
		rd := pinned{kv: s.kv, at: s.kv.Rev()}
		path := txnPath(rd, r)
		next := 0
		if err := s.checkTxnOps(rd, nil, r, path, &next); err != nil {
			return nil, err
		}
		next = 0
		resp, err := s.execTxn(rd, nil, r, path, &next)
		if err != nil {
			return nil, err
		}
		resp.Header = &pb.ResponseHeader{Revision: rd.at}
		return resp, nil
	}
	if err := s.checkQuota(r); err != nil {
		return nil, err
	}
	return proposeAs[*pb.TxnResponse](ctx, s, &pb.InternalRaftRequest{Txn: r})
}

// Compact compacts the history through raft; with r.Physical it returns once
// the old revisions are gone from disk.
func (s *Server) Compact(ctx context.Context, r *pb.CompactionRequest) (*pb.CompactionResponse, error) {
	res, err := s.proposeResult(ctx, &pb.InternalRaftRequest{Compaction: r})
	if err != nil {
		return nil, err
	}
	if r.Physical && res.compacted != nil {
		select {
		case <-res.compacted:
		case <-ctx.Done():
			return nil, contextErr(ctx.Err())
		case <-s.stopping:
			return nil, ErrStopped
		}
	}
	return res.resp.(*pb.CompactionResponse), nil
}

func (s *Server) propose(ctx context.Context, r *pb.InternalRaftRequest) (any, error) {
	res, err := s.proposeResult(ctx, r)
	if err != nil {
		return nil, err
	}
	return res.resp, nil
}

// proposeAs proposes r and returns its response as the type its kind has.
func proposeAs[T any](ctx context.Context, s *Server, r *pb.InternalRaftRequest) (T, error) {
	resp, err := s.propose(ctx, r)
	if err != nil {
		var zero T
		return zero, err
	}
	return resp.(T), nil
}

// proposeResult hands the request to raft and waits until it is applied.
func (s *Server) proposeResult(ctx context.Context, r *pb.InternalRaftRequest) (result, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.requestTimeout())
		defer cancel()
	}
	if err := s.waitLeader(ctx); err != nil {
		return result{}, err
	}
	id := s.ids.Next()
	r.Header = &pb.RequestHeader{ID: id}
	if err := s.stampAuth(ctx, r); err != nil {
		return result{}, err
	}
	data, err := proto.Marshal(r)
	if err != nil {
		return result{}, err
	}
	if len(data) > s.opts.MaxRequestBytes {
		return result{}, ErrRequestTooLarge
	}
	s.m.proposalsPending.Inc()
	defer s.m.proposalsPending.Dec()
	for {
		res, err := submit(ctx, s, id, s.propc, data)
		if !errors.Is(err, errNotProposed) {
			return res, err
		}
		// raft never took it, so it cannot apply twice: wait for a leader
		// and hand it over again.
		select {
		case <-time.After(s.opts.HeartbeatInterval / 2):
		case <-ctx.Done():
			return result{}, contextErr(ctx.Err())
		case <-s.stopping:
			return result{}, ErrStopped
		}
		if err := s.waitLeader(ctx); err != nil {
			return result{}, err
		}
	}
}

// errNotProposed fails a proposal raft did not take: no leader, a leadership
// transfer, or a leader that was removed (forwarding to it would lose it).
var errNotProposed = errors.New("kvserver: proposal not taken by raft")

// submit hands v to the raft loop through ch and waits until the entry of
// request id has been applied.
func submit[T any](ctx context.Context, s *Server, id uint64, ch chan<- T, v T) (result, error) {
	done := s.wait.register(id)
	select {
	case ch <- v:
	case <-ctx.Done():
		s.wait.cancel(id)
		return result{}, contextErr(ctx.Err())
	case <-s.stopping:
		s.wait.cancel(id)
		return result{}, ErrStopped
	}
	select {
	case res := <-done:
		return res, res.err
	case <-ctx.Done():
		s.wait.cancel(id)
		return result{}, contextErr(ctx.Err())
	case <-s.stopping:
		s.wait.cancel(id)
		return result{}, ErrStopped
	}
}

// waitLeader returns once a leader is known: right after a start or during
// an election a request waits for one, as in etcd, instead of failing.
func (s *Server) waitLeader(ctx context.Context) error {
	if s.leader.Load() != 0 {
		return nil
	}
	t := time.NewTicker(s.opts.HeartbeatInterval / 4)
	defer t.Stop()
	for s.leader.Load() == 0 {
		select {
		case <-t.C:
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return ErrNoLeader
			}
			return ErrCanceled
		case <-s.stopping:
			return ErrStopped
		}
	}
	return nil
}

func contextErr(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return ErrTimeout
	}
	return ErrCanceled
}

// quotaOverhead is what etcd adds to a request's size when estimating growth.
const quotaOverhead = 512

// checkQuota refuses requests that would grow the store past its quota, and
// raises the NOSPACE alarm when that happens for the first time.
func (s *Server) checkQuota(req proto.Message) error {
	if err := s.checkWritable(); err != nil {
		return err
	}
	if s.hasAlarm(pb.AlarmType_NOSPACE) {
		return ErrNoSpace
	}
	if s.opts.QuotaBackendBytes <= 0 {
		return nil
	}
	cost := int64(proto.Size(req)) + quotaOverhead
	if s.dbSize.Load()+cost <= s.opts.QuotaBackendBytes {
		return nil
	}
	if !s.raisingNoSpace.CompareAndSwap(false, true) {
		return ErrNoSpace // a proposal of the alarm is already in flight
	}
	s.lg.Warn("backend quota exceeded; raising NOSPACE alarm", "quota-bytes", s.opts.QuotaBackendBytes, "db-size", s.dbSize.Load())
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer s.raisingNoSpace.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), s.requestTimeout())
		defer cancel()
		_, _ = s.propose(ctx, &pb.InternalRaftRequest{Alarm: &pb.AlarmRequest{Action: pb.AlarmRequest_ACTIVATE, MemberID: s.memberID, Alarm: pb.AlarmType_NOSPACE}})
	}()
	return ErrNoSpace
}
