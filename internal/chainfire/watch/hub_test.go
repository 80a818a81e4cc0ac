package watch

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

func TestCreatedBeforeEventsAndSyncedDelivery(t *testing.T) {
	w := newWorld(t, Options{})
	s := w.hub.NewStream()
	defer s.Close()
	w.commit(put("a", "0")) // rev 2, before the watch
	if err := s.Watch(t.Context(), &pb.WatchCreateRequest{Key: []byte("a")}); err != nil {
		t.Fatal(err)
	}
	rev := w.commit(put("a", "1")) // rev 3
	r := recv(t, s)
	if !r.Created || r.WatchId != 0 || r.Header.GetRevision() != 2 || len(r.Events) != 0 {
		t.Fatalf("first response = %v, want created for watcher 0 at revision 2", r.WatchResponse)
	}
	r = recv(t, s)
	if r.Created || r.WatchId != 0 || r.Header.GetRevision() != rev {
		t.Fatalf("event response = %v", r.WatchResponse)
	}
	if got := evString(r.Events[0]); len(r.Events) != 1 || got != "P a=1@3" {
		t.Fatalf("events = %v", r.Events)
	}
	// Events of other keys and empty revisions are not delivered.
	w.commit(put("b", "x"))
	w.commit()
	rev = w.commit(del("a"))
	r = recv(t, s)
	if len(r.Events) != 1 || evString(r.Events[0]) != fmt.Sprintf("D a@%d", rev) || r.Header.GetRevision() != rev {
		t.Fatalf("delete response = %v", r.WatchResponse)
	}
	if w.hub.Rev() != rev {
		t.Fatalf("hub Rev = %d, want %d", w.hub.Rev(), rev)
	}
	expectNothing(t, s, 20*time.Millisecond)
}

func TestWatchIDsAssignedAndExplicit(t *testing.T) {
	w := newWorld(t, Options{})
	s := w.hub.NewStream()
	defer s.Close()
	if id := watch(t, s, &pb.WatchCreateRequest{Key: []byte("a"), WatchId: 1}); id != 1 {
		t.Fatalf("explicit id = %d", id)
	}
	// Automatic ids skip ids in use.
	if id := watch(t, s, &pb.WatchCreateRequest{Key: []byte("a")}); id != 0 {
		t.Fatalf("first automatic id = %d, want 0", id)
	}
	if id := watch(t, s, &pb.WatchCreateRequest{Key: []byte("a")}); id != 2 {
		t.Fatalf("second automatic id = %d, want 2 (1 is taken)", id)
	}
	// A duplicate explicit id is refused with etcd's text and WatchId -1.
	if err := s.Watch(t.Context(), &pb.WatchCreateRequest{Key: []byte("a"), WatchId: 2}); err != nil {
		t.Fatal(err)
	}
	r := recv(t, s)
	if !r.Created || !r.Canceled || r.WatchId != -1 || r.CancelReason != ErrDuplicateID.Error() {
		t.Fatalf("duplicate id response = %v", r.WatchResponse)
	}
	// Streams have separate id spaces.
	s2 := w.hub.NewStream()
	defer s2.Close()
	if id := watch(t, s2, &pb.WatchCreateRequest{Key: []byte("a"), WatchId: 2}); id != 2 {
		t.Fatalf("id on second stream = %d", id)
	}
	// Every watcher of both streams gets the event.
	w.commit(put("a", "v"))
	got := map[int64]bool{}
	for range 3 {
		got[recv(t, s).WatchId] = true
	}
	if !reflect.DeepEqual(got, map[int64]bool{0: true, 1: true, 2: true}) {
		t.Fatalf("watchers notified on stream 1: %v", got)
	}
	if r := recv(t, s2); r.WatchId != 2 || len(r.Events) != 1 {
		t.Fatalf("stream 2 got %v", r.WatchResponse)
	}
}

func TestEmptyRangeRefused(t *testing.T) {
	w := newWorld(t, Options{})
	s := w.hub.NewStream()
	defer s.Close()
	for _, tc := range []struct{ key, end string }{{"b", "a"}, {"b", "b"}} {
		if err := s.Watch(t.Context(), &pb.WatchCreateRequest{Key: []byte(tc.key), RangeEnd: []byte(tc.end)}); err != nil {
			t.Fatal(err)
		}
		r := recv(t, s)
		if !r.Created || !r.Canceled || r.WatchId != -1 || r.CancelReason != ErrEmptyRange.Error() {
			t.Fatalf("[%q, %q): response %v", tc.key, tc.end, r.WatchResponse)
		}
	}
	// The refused requests reserved no ids.
	if id := watch(t, s, &pb.WatchCreateRequest{Key: []byte("a")}); id != 0 {
		t.Fatalf("id after refusals = %d, want 0", id)
	}
}

func TestFilters(t *testing.T) {
	w := newWorld(t, Options{})
	s := w.hub.NewStream()
	defer s.Close()
	noPut := watch(t, s, &pb.WatchCreateRequest{Key: []byte("k"), Filters: []pb.WatchCreateRequest_FilterType{pb.WatchCreateRequest_NOPUT}})
	noDel := watch(t, s, &pb.WatchCreateRequest{Key: []byte("k"), Filters: []pb.WatchCreateRequest_FilterType{pb.WatchCreateRequest_NODELETE}})
	both := watch(t, s, &pb.WatchCreateRequest{Key: []byte("k"), Filters: []pb.WatchCreateRequest_FilterType{pb.WatchCreateRequest_NOPUT, pb.WatchCreateRequest_NODELETE}})
	w.commit(put("k", "1"))
	r := recv(t, s)
	if r.WatchId != noDel || len(r.Events) != 1 || r.Events[0].Type != mvccpb.Event_PUT {
		t.Fatalf("put delivered as %v", r.WatchResponse)
	}
	w.commit(del("k"))
	r = recv(t, s)
	if r.WatchId != noPut || len(r.Events) != 1 || r.Events[0].Type != mvccpb.Event_DELETE {
		t.Fatalf("delete delivered as %v", r.WatchResponse)
	}
	// A revision with a put and a delete: each watcher sees only its kind.
	w.commit(put("k", "2"))
	recv(t, s)
	w.commit(put("k", "3"), del("k"))
	got := map[int64]string{}
	for range 2 {
		r := recv(t, s)
		var parts []string
		for _, ev := range r.Events {
			parts = append(parts, ev.Type.String())
		}
		got[r.WatchId] = strings.Join(parts, ",")
	}
	if want := map[int64]string{noPut: "DELETE", noDel: "PUT"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("mixed revision delivered as %v, want %v", got, want)
	}
	_ = both
	expectNothing(t, s, 20*time.Millisecond)
}

func TestPrevKVStripping(t *testing.T) {
	w := newWorld(t, Options{})
	s := w.hub.NewStream()
	defer s.Close()
	w.commit(put("k", "old"))
	withPrev := watch(t, s, &pb.WatchCreateRequest{Key: []byte("k"), PrevKv: true})
	noPrev := watch(t, s, &pb.WatchCreateRequest{Key: []byte("k")})
	w.commit(put("k", "new"))
	got := map[int64]string{}
	for range 2 {
		r := recv(t, s)
		got[r.WatchId] = evString(r.Events[0])
	}
	want := map[int64]string{withPrev: "P k=new@3 prev=old@2", noPrev: "P k=new@3"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	// The shared event handed to Notify must not lose its prev kv.
	w.hist.mu.Lock()
	shared := w.hist.events[len(w.hist.events)-1]
	w.hist.mu.Unlock()
	if shared.PrevKv == nil {
		t.Fatal("Notify stripped PrevKv from the caller's event")
	}
}

func TestRanges(t *testing.T) {
	w := newWorld(t, Options{})
	s := w.hub.NewStream()
	defer s.Close()
	ids := map[string]int64{
		"one":    watch(t, s, &pb.WatchCreateRequest{Key: []byte("b")}),
		"range":  watch(t, s, &pb.WatchCreateRequest{Key: []byte("b"), RangeEnd: []byte("d")}),
		"prefix": watch(t, s, &pb.WatchCreateRequest{Key: []byte("b"), RangeEnd: []byte("c")}),
		"from":   watch(t, s, &pb.WatchCreateRequest{Key: []byte("c"), RangeEnd: []byte{0}}),
		"all":    watch(t, s, &pb.WatchCreateRequest{Key: []byte{0}, RangeEnd: []byte{0}}),
		"allE":   watch(t, s, &pb.WatchCreateRequest{Key: nil, RangeEnd: []byte{0}}),
	}
	names := map[int64]string{}
	for n, id := range ids {
		names[id] = n
	}
	keys := []string{"a", "b", "b\x00", "bzz", "c", "cc", "d", "\xff\xff"}
	want := map[string][]string{
		"one":    {"b"},
		"range":  {"b", "b\x00", "bzz", "c", "cc"},
		"prefix": {"b", "b\x00", "bzz"},
		"from":   {"c", "cc", "d", "\xff\xff"},
		"all":    keys,
		"allE":   keys,
	}
	for _, k := range keys {
		w.commit(put(k, "v"))
	}
	got := map[string][]string{}
	total := 0
	for _, ks := range want {
		total += len(ks)
	}
	for n := 0; n < total; {
		r := recv(t, s)
		for _, ev := range r.Events {
			got[names[r.WatchId]] = append(got[names[r.WatchId]], string(ev.Kv.Key))
			n++
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("delivered keys\n got %q\nwant %q", got, want)
	}
	expectNothing(t, s, 20*time.Millisecond)
}

func TestStartRevisionReplay(t *testing.T) {
	w := newWorld(t, Options{SyncInterval: 5 * time.Millisecond, MaxReplayEvents: 3})
	for i := range 10 {
		w.commit(put("k", fmt.Sprint(i)), put("other", "x")) // revs 2..11
	}
	s := w.hub.NewStream()
	defer s.Close()
	id := watch(t, s, &pb.WatchCreateRequest{Key: []byte("k"), StartRevision: 4, PrevKv: true})
	got := collectEvents(t, s, id, 8)
	var want []string
	for rev := 4; rev <= 11; rev++ {
		want = append(want, fmt.Sprintf("P k=%d@%d prev=%d@%d", rev-2, rev, rev-3, rev-1))
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("replayed\n got %q\nwant %q", got, want)
	}
	// Having caught up, the watcher gets live events.
	w.commit(del("k"))
	if got := collectEvents(t, s, id, 1); got[0] != "D k@12 prev=9@11" {
		t.Fatalf("live event after replay = %q", got)
	}
	// StartRevision equal to the current revision replays just that revision.
	id2 := watch(t, s, &pb.WatchCreateRequest{Key: []byte("k"), StartRevision: 12, WatchId: 9})
	if got := collectEvents(t, s, id2, 1); got[0] != "D k@12" {
		t.Fatalf("replay of the current revision = %q", got)
	}
}

func TestFutureStartRevision(t *testing.T) {
	w := newWorld(t, Options{})
	s := w.hub.NewStream()
	defer s.Close()
	id := watch(t, s, &pb.WatchCreateRequest{Key: []byte("k"), StartRevision: 5})
	w.commit(put("k", "2")) // rev 2
	w.commit(put("k", "3"))
	w.commit(put("k", "4"))
	expectNothing(t, s, 20*time.Millisecond)
	w.commit(put("k", "5"))
	if got := collectEvents(t, s, id, 1); got[0] != "P k=5@5" {
		t.Fatalf("got %q", got)
	}
}

func TestCompactedStartRevisionCancels(t *testing.T) {
	w := newWorld(t, Options{SyncInterval: 5 * time.Millisecond})
	for i := range 10 {
		w.commit(put("k", fmt.Sprint(i)))
	}
	w.hist.setCompact(6)
	s := w.hub.NewStream()
	defer s.Close()
	id := watch(t, s, &pb.WatchCreateRequest{Key: []byte("k"), StartRevision: 3, WatchId: 5})
	r := recv(t, s)
	if r.WatchId != id || !r.Canceled || r.CompactRevision != 6 || len(r.Events) != 0 {
		t.Fatalf("response = %v, want canceled with CompactRevision 6", r.WatchResponse)
	}
	// The canceled watcher is gone: its id is free and no events follow.
	w.commit(put("k", "x"))
	expectNothing(t, s, 30*time.Millisecond)
	if id2 := watch(t, s, &pb.WatchCreateRequest{Key: []byte("k"), WatchId: id}); id2 != id {
		t.Fatalf("id not reusable after compaction cancel")
	}
	// A start revision equal to the compaction revision is still served.
	id3 := watch(t, s, &pb.WatchCreateRequest{Key: []byte("k"), StartRevision: 6, WatchId: 100})
	got := collectEvents(t, s, id3, 7)
	if got[0] != "P k=4@6" || got[6] != "P k=x@12" {
		t.Fatalf("replay from compaction revision = %q", got)
	}
}

func TestCancel(t *testing.T) {
	w := newWorld(t, Options{})
	s := w.hub.NewStream()
	defer s.Close()
	id := watch(t, s, &pb.WatchCreateRequest{Key: []byte("k")})
	keep := watch(t, s, &pb.WatchCreateRequest{Key: []byte("k")})
	w.commit(put("k", "1"))
	recv(t, s)
	recv(t, s)
	if err := s.Cancel(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	r := recv(t, s)
	if r.WatchId != id || !r.Canceled || r.Header.GetRevision() != 2 {
		t.Fatalf("cancel response = %v", r.WatchResponse)
	}
	// Unknown ids are silently ignored.
	if err := s.Cancel(t.Context(), 12345); err != nil {
		t.Fatal(err)
	}
	w.commit(put("k", "2"))
	if r := recv(t, s); r.WatchId != keep {
		t.Fatalf("event for canceled watcher: %v", r.WatchResponse)
	}
	expectNothing(t, s, 20*time.Millisecond)
	// Closing the stream drops all watchers.
	s.Close()
	w.commit(put("k", "3"))
	expectNothing(t, s, 20*time.Millisecond)
}

func TestWatchContextCanceledWhileStreamFull(t *testing.T) {
	w := newWorld(t, Options{StreamBuffer: 1})
	s := w.hub.NewStream()
	defer s.Close()
	if err := s.Watch(t.Context(), &pb.WatchCreateRequest{Key: []byte("a")}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if err := s.Watch(ctx, &pb.WatchCreateRequest{Key: []byte("b"), WatchId: 7}); err == nil {
		t.Fatal("Watch on a full stream returned nil after its context ended")
	}
	recv(t, s) // created for "a"
	// The failed watcher was forgotten: id 7 is free and "b" is not watched.
	w.commit(put("b", "1"))
	expectNothing(t, s, 20*time.Millisecond)
	if id := watch(t, s, &pb.WatchCreateRequest{Key: []byte("b"), WatchId: 7}); id != 7 {
		t.Fatalf("id = %d", id)
	}
}

func TestRequestProgressWhenSynced(t *testing.T) {
	w := newWorld(t, Options{})
	s := w.hub.NewStream()
	defer s.Close()
	// A stream without watchers is synced too.
	if err := s.RequestProgress(t.Context()); err != nil {
		t.Fatal(err)
	}
	if r := recv(t, s); r.WatchId != -1 || r.Header.GetRevision() != 1 || len(r.Events) != 0 || r.Created || r.Canceled {
		t.Fatalf("progress = %v", r.WatchResponse)
	}
	watch(t, s, &pb.WatchCreateRequest{Key: []byte("k")})
	w.commit(put("other", "1"))
	w.commit()
	if err := s.RequestProgress(t.Context()); err != nil {
		t.Fatal(err)
	}
	if r := recv(t, s); r.WatchId != -1 || r.Header.GetRevision() != 3 {
		t.Fatalf("progress = %v, want WatchId -1 at revision 3", r.WatchResponse)
	}
}

// TestRequestProgressDeferredUntilSynced fills a stream so that its watcher
// drops to unsynced: the progress answer must come only after the replayed
// events, never claiming a revision the client has not seen.
func TestRequestProgressDeferredUntilSynced(t *testing.T) {
	w := newWorld(t, Options{StreamBuffer: 2, SyncInterval: 5 * time.Millisecond})
	s := w.hub.NewStream()
	defer s.Close()
	if err := s.Watch(t.Context(), &pb.WatchCreateRequest{Key: []byte("k")}); err != nil {
		t.Fatal(err)
	}
	w.commit(put("k", "1")) // fills the buffer
	w.commit(put("k", "2")) // does not fit: watcher unsynced
	w.commit(put("k", "3"))
	if err := s.RequestProgress(t.Context()); err != nil {
		t.Fatal(err)
	}
	var seq []string
	for len(seq) == 0 || seq[len(seq)-1] != "progress@4" {
		r := recv(t, s)
		switch {
		case r.Created:
			seq = append(seq, "created")
		case r.WatchId == -1:
			seq = append(seq, fmt.Sprintf("progress@%d", r.Header.GetRevision()))
		default:
			for _, ev := range r.Events {
				seq = append(seq, evString(ev))
			}
		}
		if len(seq) > 6 {
			break
		}
	}
	want := []string{"created", "P k=1@2", "P k=2@3", "P k=3@4", "progress@4"}
	if !reflect.DeepEqual(seq, want) {
		t.Fatalf("sequence = %q, want %q", seq, want)
	}
	expectNothing(t, s, 30*time.Millisecond)
}

func TestPeriodicProgress(t *testing.T) {
	w := newWorld(t, Options{ProgressInterval: 30 * time.Millisecond})
	s := w.hub.NewStream()
	defer s.Close()
	notify := watch(t, s, &pb.WatchCreateRequest{Key: []byte("k"), ProgressNotify: true})
	silent := watch(t, s, &pb.WatchCreateRequest{Key: []byte("j")})
	w.commit(put("x", "1"))
	r := recv(t, s)
	if r.WatchId != notify || len(r.Events) != 0 || r.Canceled || r.Header.GetRevision() != 2 {
		t.Fatalf("periodic progress = %v", r.WatchResponse)
	}
	r = recv(t, s)
	if r.WatchId != notify || len(r.Events) != 0 {
		t.Fatalf("second periodic progress = %v", r.WatchResponse)
	}
	_ = silent
	// Not more often than the interval: at most a few in 100ms.
	deadline := time.After(100 * time.Millisecond)
	n := 0
loop:
	for {
		select {
		case r := <-s.Out():
			if r.WatchId != notify {
				t.Fatalf("progress for a watcher that did not ask: %v", r.WatchResponse)
			}
			n++
		case <-deadline:
			break loop
		}
	}
	if n > 5 {
		t.Fatalf("%d progress notifications in 100ms with a 30ms interval", n)
	}
}

func TestFragmentFlagPassedThrough(t *testing.T) {
	w := newWorld(t, Options{})
	s := w.hub.NewStream()
	defer s.Close()
	watch(t, s, &pb.WatchCreateRequest{Key: []byte("k"), Fragment: true})
	w.commit(put("k", "1"))
	if r := recv(t, s); !r.Fragment {
		t.Fatal("Fragment not set on the response of a fragmenting watcher")
	}
}

// TestSlowReaderGetsEveryEventOnce drives many revisions through streams
// with a tiny buffer and slow, randomly pausing readers: watchers keep
// falling back to replay and must still see every matching event exactly
// once, in revision order.
func TestSlowReaderGetsEveryEventOnce(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 7))
	w := newWorld(t, Options{StreamBuffer: 3, SyncInterval: 2 * time.Millisecond, MaxReplayEvents: 5})
	keys := []string{"a", "b", "c", "d", "e"}
	type spec struct {
		req  *pb.WatchCreateRequest
		want []string
	}
	specs := []*spec{
		{req: &pb.WatchCreateRequest{Key: []byte("a")}},
		{req: &pb.WatchCreateRequest{Key: []byte("b"), RangeEnd: []byte("d"), PrevKv: true}},
		{req: &pb.WatchCreateRequest{Key: []byte{0}, RangeEnd: []byte{0}}},
		{req: &pb.WatchCreateRequest{Key: []byte("c"), RangeEnd: []byte{0}, Filters: []pb.WatchCreateRequest_FilterType{pb.WatchCreateRequest_NOPUT}}},
		{req: &pb.WatchCreateRequest{Key: []byte("e"), PrevKv: true, Filters: []pb.WatchCreateRequest_FilterType{pb.WatchCreateRequest_NODELETE}}},
	}
	matches := func(r *pb.WatchCreateRequest, ev *mvccpb.Event) bool {
		k := string(ev.Kv.Key)
		switch {
		case len(r.RangeEnd) == 0:
			if k != string(r.Key) {
				return false
			}
		case len(r.RangeEnd) == 1 && r.RangeEnd[0] == 0:
			if k < string(r.Key) {
				return false
			}
		default:
			if k < string(r.Key) || k >= string(r.RangeEnd) {
				return false
			}
		}
		for _, f := range r.Filters {
			if (f == pb.WatchCreateRequest_NOPUT && ev.Type == mvccpb.Event_PUT) || (f == pb.WatchCreateRequest_NODELETE && ev.Type == mvccpb.Event_DELETE) {
				return false
			}
		}
		return true
	}

	// Two streams, the watchers spread over them.
	streams := []*Stream{w.hub.NewStream(), w.hub.NewStream()}
	ids := make([]int64, len(specs))
	streamOf := make([]int, len(specs))
	for i, sp := range specs {
		streamOf[i] = i % 2
		ids[i] = watch(t, streams[i%2], sp.req)
	}

	const revs = 1000
	type got struct {
		events  map[int64][]string
		lastHdr map[int64]int64
	}
	results := make([]got, 2)
	// totals tells each reader how many events to expect once the writer is done.
	totals := []chan int{make(chan int, 1), make(chan int, 1)}
	var wg sync.WaitGroup
	for si, s := range streams {
		// Total events this stream must see.
		results[si] = got{events: map[int64][]string{}, lastHdr: map[int64]int64{}}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, uint64(si)))
			idle := time.NewTimer(5 * time.Second)
			defer idle.Stop()
			n, total := 0, -1
			for n != total {
				select {
				case total = <-totals[si]:
				case resp := <-s.Out():
					if resp.Canceled || resp.Created || resp.CompactRevision != 0 {
						t.Errorf("stream %d: unexpected response %v", si, resp.WatchResponse)
						return
					}
					if h := resp.Header.GetRevision(); h < results[si].lastHdr[resp.WatchId] {
						t.Errorf("stream %d watcher %d: header revision went back from %d to %d", si, resp.WatchId, results[si].lastHdr[resp.WatchId], h)
					} else {
						results[si].lastHdr[resp.WatchId] = h
					}
					for _, ev := range resp.Events {
						results[si].events[resp.WatchId] = append(results[si].events[resp.WatchId], evString(ev))
						n++
					}
					if r.IntN(4) == 0 {
						time.Sleep(time.Duration(r.IntN(300)) * time.Microsecond)
					}
					idle.Reset(5 * time.Second)
				case <-idle.C:
					t.Errorf("stream %d: no response for 5s with %d of %d events received", si, n, total)
					return
				}
			}
		}()
	}

	for range revs {
		var chs []change
		for range 1 + rng.IntN(3) {
			k := keys[rng.IntN(len(keys))]
			if rng.IntN(4) == 0 {
				chs = append(chs, del(k))
			} else {
				chs = append(chs, put(k, fmt.Sprint(rng.IntN(1000))))
			}
		}
		// One key per revision at most (a txn cannot touch a key twice).
		seen := map[string]bool{}
		var uniq []change
		for _, c := range chs {
			if !seen[c.key] {
				seen[c.key] = true
				uniq = append(uniq, c)
			}
		}
		w.commit(uniq...)
		if rng.IntN(50) == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	// Expected events, from the full history.
	w.hist.mu.Lock()
	for _, ev := range w.hist.events {
		for _, sp := range specs {
			if !matches(sp.req, ev) {
				continue
			}
			e := &mvccpb.Event{Type: ev.Type, Kv: ev.Kv}
			if sp.req.PrevKv {
				e.PrevKv = ev.PrevKv
			}
			sp.want = append(sp.want, evString(e))
		}
	}
	w.hist.mu.Unlock()
	for si := range streams {
		total := 0
		for i, sp := range specs {
			if streamOf[i] == si {
				total += len(sp.want)
			}
		}
		totals[si] <- total
	}
	wg.Wait()
	for _, s := range streams {
		s.Close()
	}
	for i, sp := range specs {
		gotEv := results[streamOf[i]].events[ids[i]]
		if !reflect.DeepEqual(gotEv, sp.want) {
			n := min(len(gotEv), len(sp.want))
			j := 0
			for j < n && gotEv[j] == sp.want[j] {
				j++
			}
			t.Errorf("watcher %d (%v): got %d events, want %d; first difference at %d: got %q want %q",
				i, sp.req, len(gotEv), len(sp.want), j, at(gotEv, j), at(sp.want, j))
		}
	}
	if w.hist.calls() == 0 {
		t.Error("the test never made a watcher fall back to replay")
	}
}

func at(s []string, i int) string {
	if i < len(s) {
		return s[i]
	}
	return "<none>"
}

// TestSlowSyncedWatcherNotCanceledByOldCompaction: a synced watcher that saw
// no matching event for a long time must not be canceled as compacted when
// its stream fills up: it has missed nothing below the compaction.
func TestSlowSyncedWatcherNotCanceledByOldCompaction(t *testing.T) {
	w := newWorld(t, Options{StreamBuffer: 1, SyncInterval: 5 * time.Millisecond})
	s := w.hub.NewStream()
	defer s.Close()
	if err := s.Watch(t.Context(), &pb.WatchCreateRequest{Key: []byte("k")}); err != nil {
		t.Fatal(err)
	}
	// The created response now fills the 1-slot buffer. Unrelated traffic,
	// then a compaction well after the watch was created.
	for i := range 10 {
		w.commit(put("other", fmt.Sprint(i))) // revs 2..11
	}
	w.hist.setCompact(8)
	rev := w.commit(put("k", "v")) // does not fit: the watcher goes unsynced
	if r := recv(t, s); !r.Created {
		t.Fatalf("first response = %v", r.WatchResponse)
	}
	r := recv(t, s)
	if r.Canceled {
		t.Fatalf("BUG: watcher canceled with CompactRevision %d although it missed nothing below it (see Notify: minRev is stale)", r.CompactRevision)
	}
	if len(r.Events) != 1 || evString(r.Events[0]) != fmt.Sprintf("P k=v@%d", rev) {
		t.Fatalf("response = %v", r.WatchResponse)
	}
}

// TestCloseStopsSyncer: Close returns with streams still open and leaves no goroutine.
func TestHubCloseWithOpenStreams(t *testing.T) {
	w := newWorld(t, Options{StreamBuffer: 1, SyncInterval: time.Millisecond})
	s := w.hub.NewStream()
	defer s.Close()
	if err := s.Watch(t.Context(), &pb.WatchCreateRequest{Key: []byte("k")}); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		w.commit(put("k", fmt.Sprint(i)))
	}
	// Cleanup closes the hub while a watcher is unsynced and its stream full.
}

func TestNegativeStartRevisionRefused(t *testing.T) {
	w := newWorld(t, Options{})
	s := w.hub.NewStream()
	defer s.Close()
	if err := s.Watch(t.Context(), &pb.WatchCreateRequest{Key: []byte("k"), StartRevision: -1}); err != nil {
		t.Fatal(err)
	}
	r := recv(t, s)
	if !r.Created || !r.Canceled || r.WatchId != -1 || r.CancelReason != ErrCompacted.Error() {
		t.Fatalf("response = %v", r.WatchResponse)
	}
	if id := watch(t, s, &pb.WatchCreateRequest{Key: []byte("k")}); id != 0 {
		t.Fatalf("refused request reserved an id: next id %d", id)
	}
}

// TestPrevKVLookedUpWhenWriterOmitsIt: writers leave PrevKv out of PUT events
// unless asked (it costs a storage read); a synced watcher that wants prev_kv
// still gets it, from history.
func TestPrevKVLookedUpWhenWriterOmitsIt(t *testing.T) {
	w := newWorld(t, Options{})
	s := w.hub.NewStream()
	defer s.Close()
	w.commit(put("k", "old"))
	withPrev := watch(t, s, &pb.WatchCreateRequest{Key: []byte("k"), PrevKv: true})
	// Commit a put whose event carries no PrevKv, as PutNoPrev produces.
	w.rev++
	kv := &mvccpb.KeyValue{Key: []byte("k"), Value: []byte("new"), ModRevision: w.rev, CreateRevision: 2, Version: 2}
	ev := &mvccpb.Event{Type: mvccpb.Event_PUT, Kv: kv}
	w.hist.mu.Lock()
	w.hist.events = append(w.hist.events, ev)
	w.hist.mu.Unlock()
	w.hub.Notify(w.rev, []*mvccpb.Event{ev})
	r := recv(t, s)
	if r.WatchId != withPrev || evString(r.Events[0]) != "P k=new@3 prev=old@2" {
		t.Fatalf("got watch %d %v, want prev=old@2", r.WatchId, evString(r.Events[0]))
	}
}
