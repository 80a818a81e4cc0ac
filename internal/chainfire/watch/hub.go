// Package watch delivers Chainfire's change events to watch streams.
//
// A watcher is either synced — it has received every event up to the hub's
// latest revision and gets new events as they are applied — or unsynced — it
// is catching up from the store's history. Applying never waits for a watcher:
// when a synced watcher's stream is full, the watcher drops back to unsynced
// and the hub's syncer goroutine replays what it missed from the store, so a
// slow watcher costs memory in its own stream only and never loses an event.
package watch

import (
	"bytes"
	"errors"
	"log/slog"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// Errors a watch create request can fail with; their text is etcd's, because
// clients show it.
var (
	ErrEmptyRange  = errors.New("mvcc: watcher range is empty")
	ErrDuplicateID = errors.New("mvcc: duplicate watch ID provided on the WatchStream")
	// ErrCompacted answers a negative start revision, as etcd does.
	ErrCompacted = errors.New("etcdserver: mvcc: required revision has been compacted")
)

// History is the part of the store the hub replays from.
type History interface {
	// Events calls fn for every event with startRev <= revision <= endRev, in order.
	Events(startRev, endRev int64, fn func(ev *mvccpb.Event) bool) error
	// PrevKV returns the value key had at rev, or nil.
	PrevKV(key []byte, rev int64) *mvccpb.KeyValue
	CompactRev() int64
}

// Options tune a hub. Zero values take the defaults.
type Options struct {
	// StreamBuffer is the number of responses a stream may have queued before
	// its watchers fall back to replaying history. Default 128.
	StreamBuffer int
	// ProgressInterval is how often watchers that asked for progress
	// notifications get one. Default 10 minutes, as etcd.
	ProgressInterval time.Duration
	// SyncInterval is how often unsynced watchers are caught up. Default 100ms.
	SyncInterval time.Duration
	// MaxReplayEvents bounds the events read from history in one sync round.
	MaxReplayEvents int
}

// Hub routes events to watchers. Notify must be called by one goroutine, in
// revision order, after the revision is readable from History.
type Hub struct {
	store History
	lg    *slog.Logger
	opts  Options

	mu       sync.Mutex
	rev      int64
	synced   map[*watcher]struct{}
	unsynced map[*watcher]struct{}
	// progressWanted holds streams with a progress request waiting for all of
	// their watchers to be synced.
	progressWanted map[*Stream]struct{}

	kick chan struct{}
	stop chan struct{}
	done chan struct{}
}

type watcher struct {
	id     int64
	stream *Stream
	key    []byte
	end    []byte // nil: one key; empty: every key >= key
	// minRev is the next revision this watcher needs.
	minRev         int64
	prevKV         bool
	noPut          bool
	noDelete       bool
	progressNotify bool
	fragment       bool
	// sentSinceTick is set when something was sent since the last periodic
	// progress notification.
	sentSinceTick bool
	canceled      bool
}

func (w *watcher) matches(key []byte) bool {
	if w.end == nil {
		return bytes.Equal(key, w.key)
	}
	if bytes.Compare(key, w.key) < 0 {
		return false
	}
	return len(w.end) == 0 || bytes.Compare(key, w.end) < 0
}

// filter picks the events for w from evs without modifying the shared
// events; prevOf supplies an event's previous value when w wants it.
func (w *watcher) filter(evs []*mvccpb.Event, prevOf func(*mvccpb.Event) *mvccpb.KeyValue) []*mvccpb.Event {
	var out []*mvccpb.Event
	for _, ev := range evs {
		if ev.Kv.ModRevision < w.minRev || !w.matches(ev.Kv.Key) {
			continue
		}
		if (ev.Type == mvccpb.Event_PUT && w.noPut) || (ev.Type == mvccpb.Event_DELETE && w.noDelete) {
			continue
		}
		e := &mvccpb.Event{Type: ev.Type, Kv: ev.Kv}
		if w.prevKV {
			e.PrevKv = prevOf(ev)
		}
		out = append(out, e)
	}
	return out
}

// NewHub starts a hub whose current revision is rev.
func NewHub(store History, rev int64, lg *slog.Logger, opts Options) *Hub {
	if opts.StreamBuffer <= 0 {
		opts.StreamBuffer = 128
	}
	if opts.ProgressInterval <= 0 {
		opts.ProgressInterval = 10 * time.Minute
	}
	if opts.SyncInterval <= 0 {
		opts.SyncInterval = 100 * time.Millisecond
	}
	if opts.MaxReplayEvents <= 0 {
		opts.MaxReplayEvents = 10000
	}
	h := &Hub{
		store: store, lg: lg, opts: opts, rev: rev,
		synced: map[*watcher]struct{}{}, unsynced: map[*watcher]struct{}{},
		progressWanted: map[*Stream]struct{}{},
		kick:           make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
	}
	go h.run()
	return h
}

// Close stops the syncer. Streams must be closed by their owners.
func (h *Hub) Close() {
	close(h.stop)
	<-h.done
}

// Rev is the latest revision notified.
func (h *Hub) Rev() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.rev
}

// Notify publishes the events of revision rev (which may be none).
func (h *Hub) Notify(rev int64, events []*mvccpb.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.rev = rev
	if len(events) == 0 {
		return
	}
	for w := range h.synced {
		evs := w.filter(events, h.livePrev)
		if len(evs) == 0 {
			continue
		}
		resp := &pb.WatchResponse{Header: &pb.ResponseHeader{Revision: rev}, WatchId: w.id, Events: evs}
		if w.stream.trySend(Response{WatchResponse: resp, Fragment: w.fragment}) {
			w.minRev = rev + 1
			w.sentSinceTick = true
			continue
		}
		// The stream is full: replay this revision and later ones from
		// history. Everything before rev was delivered (or did not match).
		w.minRev = max(w.minRev, rev)
		delete(h.synced, w)
		h.unsynced[w] = struct{}{}
		h.kickSyncer()
	}
}

// livePrev returns the previous value of a just-applied event. Writers may
// leave it out of PUT events (reading it costs a storage read per put), so it
// is looked up, once per event, only when a watcher asks for it.
func (h *Hub) livePrev(ev *mvccpb.Event) *mvccpb.KeyValue {
	if ev.PrevKv == nil && ev.Type == mvccpb.Event_PUT && ev.Kv.Version > 1 {
		ev.PrevKv = h.store.PrevKV(ev.Kv.Key, ev.Kv.ModRevision-1)
	}
	return ev.PrevKv
}

// storedPrev returns the previous value the syncer already read.
func storedPrev(ev *mvccpb.Event) *mvccpb.KeyValue { return ev.PrevKv }

// Resync moves the hub to revision rev after the store's content was
// replaced wholesale (a snapshot from the leader): every watcher catches up
// from history, or is canceled if what it needs was compacted.
func (h *Hub) Resync(rev int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.rev = rev
	for w := range h.synced {
		delete(h.synced, w)
		h.unsynced[w] = struct{}{}
	}
	h.kickSyncer()
}

func (h *Hub) kickSyncer() {
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

// place puts a registered watcher into the set its position calls for.
func (h *Hub) placeLocked(w *watcher) {
	if w.minRev > h.rev {
		h.synced[w] = struct{}{}
		return
	}
	h.unsynced[w] = struct{}{}
	h.kickSyncer()
}

func (h *Hub) run() {
	defer close(h.done)
	syncTick := time.NewTicker(h.opts.SyncInterval)
	defer syncTick.Stop()
	progressTick := time.NewTicker(h.opts.ProgressInterval)
	defer progressTick.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-h.kick:
		case <-syncTick.C:
		case <-progressTick.C:
			h.sendProgress()
			continue
		}
		for h.syncOnce() {
			select {
			case <-h.stop:
				return
			default:
			}
		}
	}
}

// sendProgress gives every synced watcher that asked for progress
// notifications and received nothing since the last tick an empty response.
func (h *Hub) sendProgress() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for w := range h.synced {
		if !w.progressNotify {
			continue
		}
		if !w.sentSinceTick {
			w.stream.trySend(Response{WatchResponse: &pb.WatchResponse{Header: &pb.ResponseHeader{Revision: h.rev}, WatchId: w.id}})
		}
		w.sentSinceTick = false
	}
}

// syncOnce replays history to unsynced watchers; it reports whether another
// round could make progress at once.
func (h *Hub) syncOnce() bool {
	h.mu.Lock()
	compactRev := h.store.CompactRev()
	curRev := h.rev
	minRev := int64(-1)
	wantPrev := false
	for w := range h.unsynced {
		if w.minRev < compactRev {
			// etcd sends this cancellation with a zero header revision.
			resp := &pb.WatchResponse{Header: &pb.ResponseHeader{}, WatchId: w.id, CompactRevision: compactRev, Canceled: true}
			if w.stream.trySend(Response{WatchResponse: resp}) {
				delete(h.unsynced, w)
				w.stream.forgetLocked(w)
			}
			continue
		}
		if minRev < 0 || w.minRev < minRev {
			minRev = w.minRev
		}
		wantPrev = wantPrev || w.prevKV
	}
	h.mu.Unlock()
	if minRev < 0 {
		h.answerProgress()
		return false
	}

	var events []*mvccpb.Event
	endRev := curRev
	err := h.store.Events(minRev, curRev, func(ev *mvccpb.Event) bool {
		if len(events) >= h.opts.MaxReplayEvents && ev.Kv.ModRevision != events[len(events)-1].Kv.ModRevision {
			endRev = events[len(events)-1].Kv.ModRevision
			return false
		}
		events = append(events, ev)
		return true
	})
	if err != nil {
		// Compacted under us: the next round cancels the affected watchers.
		h.lg.Debug("watch replay interrupted", "from", minRev, "err", err)
		return false
	}
	if wantPrev {
		for _, ev := range events {
			ev.PrevKv = h.store.PrevKV(ev.Kv.Key, ev.Kv.ModRevision-1)
		}
	}

	h.mu.Lock()
	behind := false
	for w := range h.unsynced {
		if w.minRev > endRev || w.minRev < minRev {
			continue
		}
		evs := w.filter(events, storedPrev)
		if len(evs) > 0 {
			resp := &pb.WatchResponse{Header: &pb.ResponseHeader{Revision: endRev}, WatchId: w.id, Events: evs}
			if !w.stream.trySend(Response{WatchResponse: resp, Fragment: w.fragment}) {
				continue
			}
			w.sentSinceTick = true
		}
		w.minRev = endRev + 1
		if w.minRev > h.rev {
			delete(h.unsynced, w)
			h.synced[w] = struct{}{}
		} else {
			behind = true
		}
	}
	h.mu.Unlock()
	h.answerProgress()
	return behind
}

// answerProgress sends the progress responses that were waiting for their
// stream's watchers to catch up.
func (h *Hub) answerProgress() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.progressWanted {
		if s.allSyncedLocked() && s.trySend(progressResponse(h.rev)) {
			delete(h.progressWanted, s)
		}
	}
}

func progressResponse(rev int64) Response {
	return Response{WatchResponse: &pb.WatchResponse{Header: &pb.ResponseHeader{Revision: rev}, WatchId: -1}}
}
