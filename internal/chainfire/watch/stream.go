package watch

import (
	"bytes"
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// Response is one message for a watch stream. Fragment tells the sender it may
// split the events across several messages.
type Response struct {
	*pb.WatchResponse
	Fragment bool
}

// Stream is the hub's side of one client watch stream: a set of watchers and
// the queue of responses for them. One goroutine reads Out and sends.
type Stream struct {
	hub      *Hub
	out      chan Response
	watchers map[int64]*watcher // guarded by hub.mu
	nextID   int64
}

// NewStream opens a stream on the hub.
func (h *Hub) NewStream() *Stream {
	return &Stream{hub: h, out: make(chan Response, h.opts.StreamBuffer), watchers: map[int64]*watcher{}}
}

// Out yields the responses to send, in order.
func (s *Stream) Out() <-chan Response { return s.out }

func (s *Stream) trySend(r Response) bool {
	select {
	case s.out <- r:
		return true
	default:
		return false
	}
}

func (s *Stream) send(ctx context.Context, r Response) error {
	select {
	case s.out <- r:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Stream) forgetLocked(w *watcher) {
	w.canceled = true
	delete(s.watchers, w.id)
}

func (s *Stream) allSyncedLocked() bool {
	for _, w := range s.watchers {
		if _, ok := s.hub.synced[w]; !ok {
			return false
		}
	}
	return true
}

// Watch registers a watcher for req and queues its "created" response. A
// request the hub refuses is answered with a created-and-canceled response.
func (s *Stream) Watch(ctx context.Context, req *pb.WatchCreateRequest) error {
	h := s.hub
	end := req.RangeEnd
	switch {
	case len(end) == 0:
		end = nil
	case len(end) == 1 && end[0] == 0:
		end = []byte{}
	}
	h.mu.Lock()
	rev := h.rev
	var err error
	id := req.WatchId
	switch {
	case req.StartRevision < 0:
		err = ErrCompacted
	case len(end) != 0 && bytes.Compare(req.Key, end) >= 0:
		err = ErrEmptyRange
	case id != 0:
		if _, dup := s.watchers[id]; dup {
			err = ErrDuplicateID
		}
	default:
		for s.watchers[s.nextID] != nil {
			s.nextID++
		}
		id = s.nextID
		s.nextID++
	}
	if err != nil {
		h.mu.Unlock()
		return s.send(ctx, Response{WatchResponse: &pb.WatchResponse{
			Header: &pb.ResponseHeader{Revision: rev}, WatchId: -1, Created: true, Canceled: true, CancelReason: err.Error(),
		}})
	}
	w := &watcher{
		id: id, stream: s, key: append([]byte(nil), req.Key...), end: end,
		prevKV: req.PrevKv, progressNotify: req.ProgressNotify, fragment: req.Fragment,
	}
	for _, f := range req.Filters {
		switch f {
		case pb.WatchCreateRequest_NOPUT:
			w.noPut = true
		case pb.WatchCreateRequest_NODELETE:
			w.noDelete = true
		}
	}
	if req.StartRevision == 0 || req.StartRevision > rev {
		w.minRev = rev + 1
		if req.StartRevision > w.minRev {
			w.minRev = req.StartRevision
		}
	} else {
		w.minRev = req.StartRevision
	}
	// Reserve the id now; the watcher joins a set only after "created" is
	// queued, so no event can overtake it.
	s.watchers[id] = w
	h.mu.Unlock()

	if err := s.send(ctx, Response{WatchResponse: &pb.WatchResponse{Header: &pb.ResponseHeader{Revision: rev}, WatchId: id, Created: true}}); err != nil {
		h.mu.Lock()
		s.forgetLocked(w)
		h.mu.Unlock()
		return err
	}
	h.mu.Lock()
	if !w.canceled {
		h.placeLocked(w)
	}
	h.mu.Unlock()
	return nil
}

// Cancel removes a watcher and queues its "canceled" response. Canceling an
// unknown id is not an error (etcd answers nothing either).
func (s *Stream) Cancel(ctx context.Context, id int64) error {
	h := s.hub
	h.mu.Lock()
	w, ok := s.watchers[id]
	if ok {
		delete(h.synced, w)
		delete(h.unsynced, w)
		s.forgetLocked(w)
	}
	rev := h.rev
	h.mu.Unlock()
	if !ok {
		return nil
	}
	return s.send(ctx, Response{WatchResponse: &pb.WatchResponse{Header: &pb.ResponseHeader{Revision: rev}, WatchId: id, Canceled: true}})
}

// RequestProgress queues a progress notification once every watcher of the
// stream has caught up.
func (s *Stream) RequestProgress(ctx context.Context) error {
	h := s.hub
	h.mu.Lock()
	if s.allSyncedLocked() {
		rev := h.rev
		h.mu.Unlock()
		return s.send(ctx, progressResponse(rev))
	}
	h.progressWanted[s] = struct{}{}
	h.mu.Unlock()
	h.kickSyncer()
	return nil
}

// Close removes every watcher of the stream.
func (s *Stream) Close() {
	h := s.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, w := range s.watchers {
		delete(h.synced, w)
		delete(h.unsynced, w)
		w.canceled = true
	}
	s.watchers = map[int64]*watcher{}
	delete(h.progressWanted, s)
}
