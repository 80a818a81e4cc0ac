package watch

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var errFakeCompacted = errors.New("fakeHistory: compacted")

// fakeHistory is a test double for the MVCC store: a slice of events in
// revision order plus a compaction revision. It hands out clones, as the real
// store decodes fresh events on every call.
type fakeHistory struct {
	mu      sync.Mutex
	events  []*mvccpb.Event
	compact int64
	// eventsCalls counts Events calls, to observe the syncer.
	eventsCalls int
}

func (f *fakeHistory) Events(startRev, endRev int64, fn func(ev *mvccpb.Event) bool) error {
	f.mu.Lock()
	f.eventsCalls++
	if startRev < f.compact {
		f.mu.Unlock()
		return errFakeCompacted
	}
	var sel []*mvccpb.Event
	i := sort.Search(len(f.events), func(i int) bool { return f.events[i].Kv.ModRevision >= startRev })
	for _, ev := range f.events[i:] {
		if ev.Kv.ModRevision > endRev {
			break
		}
		c := proto.Clone(ev).(*mvccpb.Event)
		c.PrevKv = nil // the store's events carry no prev kv
		sel = append(sel, c)
	}
	f.mu.Unlock()
	for _, ev := range sel {
		if !fn(ev) {
			return nil
		}
	}
	return nil
}

func (f *fakeHistory) PrevKV(key []byte, rev int64) *mvccpb.KeyValue {
	f.mu.Lock()
	defer f.mu.Unlock()
	var last *mvccpb.Event
	i := sort.Search(len(f.events), func(i int) bool { return f.events[i].Kv.ModRevision > rev })
	for j := i - 1; j >= 0; j-- {
		if bytes.Equal(f.events[j].Kv.Key, key) {
			last = f.events[j]
			break
		}
	}
	if last == nil || last.Type == mvccpb.Event_DELETE {
		return nil
	}
	return proto.Clone(last.Kv).(*mvccpb.KeyValue)
}

func (f *fakeHistory) CompactRev() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.compact
}

func (f *fakeHistory) setCompact(rev int64) {
	f.mu.Lock()
	f.compact = rev
	f.mu.Unlock()
}

func (f *fakeHistory) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.eventsCalls
}

// change is one operation of a revision.
type change struct {
	key, val string
	del      bool
}

func put(k, v string) change { return change{key: k, val: v} }
func del(k string) change    { return change{key: k, del: true} }

// world drives a hub over a fakeHistory as the apply loop would: it appends
// each revision to the history first, then notifies the hub.
type world struct {
	t    testing.TB
	hist *fakeHistory
	hub  *Hub
	rev  int64
	// live tracks current values for building prev kvs and versions.
	live map[string]*mvccpb.KeyValue
}

func newWorld(t testing.TB, opts Options) *world {
	t.Helper()
	w := &world{t: t, hist: &fakeHistory{}, rev: 1, live: map[string]*mvccpb.KeyValue{}}
	w.hub = NewHub(w.hist, w.rev, slog.New(slog.NewTextHandler(io.Discard, nil)), opts)
	t.Cleanup(w.hub.Close)
	return w
}

// commit applies one revision (or an empty one) and returns its number.
func (w *world) commit(chs ...change) int64 {
	w.rev++
	rev := w.rev
	var evs []*mvccpb.Event
	for _, c := range chs {
		prev := w.live[c.key]
		var ev *mvccpb.Event
		if c.del {
			if prev == nil {
				continue
			}
			ev = &mvccpb.Event{Type: mvccpb.Event_DELETE, Kv: &mvccpb.KeyValue{Key: []byte(c.key), ModRevision: rev}}
			delete(w.live, c.key)
		} else {
			kv := &mvccpb.KeyValue{Key: []byte(c.key), Value: []byte(c.val), ModRevision: rev, CreateRevision: rev, Version: 1}
			if prev != nil {
				kv.CreateRevision = prev.CreateRevision
				kv.Version = prev.Version + 1
			}
			ev = &mvccpb.Event{Type: mvccpb.Event_PUT, Kv: kv}
			w.live[c.key] = kv
		}
		if prev != nil {
			ev.PrevKv = prev
		}
		evs = append(evs, ev)
	}
	w.hist.mu.Lock()
	w.hist.events = append(w.hist.events, evs...)
	w.hist.mu.Unlock()
	w.hub.Notify(rev, evs)
	return rev
}

func recv(t testing.TB, s *Stream) Response {
	t.Helper()
	select {
	case r := <-s.Out():
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("timed out waiting for a watch response")
	}
	panic("unreachable")
}

func expectNothing(t testing.TB, s *Stream, d time.Duration) {
	t.Helper()
	select {
	case r := <-s.Out():
		t.Fatalf("unexpected response %v", r.WatchResponse)
	case <-time.After(d):
	}
}

// watch registers a watcher and returns its id after checking the created
// response.
func watch(t testing.TB, s *Stream, req *pb.WatchCreateRequest) int64 {
	t.Helper()
	if err := s.Watch(t.Context(), req); err != nil {
		t.Fatalf("Watch: %v", err)
	}
	r := recv(t, s)
	if !r.Created || r.Canceled || len(r.Events) != 0 {
		t.Fatalf("first response is not a plain created response: %v", r.WatchResponse)
	}
	return r.WatchId
}

// evString renders events compactly for comparisons: "P key=val@rev" or "D key@rev".
func evString(ev *mvccpb.Event) string {
	s := ""
	if ev.Type == mvccpb.Event_DELETE {
		s = fmt.Sprintf("D %s@%d", ev.Kv.Key, ev.Kv.ModRevision)
	} else {
		s = fmt.Sprintf("P %s=%s@%d", ev.Kv.Key, ev.Kv.Value, ev.Kv.ModRevision)
	}
	if ev.PrevKv != nil {
		s += fmt.Sprintf(" prev=%s@%d", ev.PrevKv.Value, ev.PrevKv.ModRevision)
	}
	return s
}

// collectEvents reads responses for watcher id until n events arrived.
func collectEvents(t testing.TB, s *Stream, id int64, n int) []string {
	t.Helper()
	var out []string
	for len(out) < n {
		r := recv(t, s)
		if r.WatchId != id {
			t.Fatalf("response for watcher %d, want %d: %v", r.WatchId, id, r.WatchResponse)
		}
		if r.Canceled {
			t.Fatalf("watcher canceled: %v", r.WatchResponse)
		}
		for _, ev := range r.Events {
			out = append(out, evString(ev))
		}
	}
	if len(out) != n {
		t.Fatalf("got %d events, want %d: %q", len(out), n, out)
	}
	return out
}
