package watch

import (
	"bytes"
	"log/slog"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// FuzzWatchRange checks the key/range_end handling of watch create requests:
// empty ranges are refused with ErrEmptyRange, anything else is accepted and
// delivers exactly the events of keys in range (etcd's conventions: no end is
// one key, "\x00" is every key >= key).
func FuzzWatchRange(f *testing.F) {
	f.Add([]byte("a"), []byte{}, []byte("a"))
	f.Add([]byte("a"), []byte{0}, []byte("b"))
	f.Add([]byte{0}, []byte{0}, []byte{})
	f.Add([]byte{}, []byte{0}, []byte("x"))
	f.Add([]byte("b"), []byte("a"), []byte("a"))
	f.Add([]byte("b"), []byte("b"), []byte("b"))
	f.Add([]byte("b"), []byte("b\x00"), []byte("b"))
	f.Add([]byte{0xff}, []byte{0xff, 0xff}, []byte{0xff, 0})
	f.Fuzz(func(t *testing.T, key, end, evKey []byte) {
		if len(evKey) == 0 {
			evKey = []byte{0} // stored keys are never empty
		}
		h := NewHub(&fakeHistory{}, 1, slog.New(slog.DiscardHandler), Options{SyncInterval: time.Hour})
		defer h.Close()
		s := h.NewStream()
		defer s.Close()
		if err := s.Watch(t.Context(), &pb.WatchCreateRequest{Key: key, RangeEnd: end}); err != nil {
			t.Fatal(err)
		}
		r := <-s.Out()
		empty := len(end) > 0 && !(len(end) == 1 && end[0] == 0) && bytes.Compare(key, end) >= 0
		if empty {
			if !r.Canceled || r.CancelReason != ErrEmptyRange.Error() {
				t.Fatalf("[%q, %q) accepted: %v", key, end, r.WatchResponse)
			}
			return
		}
		if r.Canceled || !r.Created {
			t.Fatalf("[%q, %q) refused: %v", key, end, r.WatchResponse)
		}
		var want bool
		switch {
		case len(end) == 0:
			want = bytes.Equal(evKey, key)
		case len(end) == 1 && end[0] == 0:
			want = bytes.Compare(evKey, key) >= 0
		default:
			want = bytes.Compare(evKey, key) >= 0 && bytes.Compare(evKey, end) < 0
		}
		h.Notify(2, []*mvccpb.Event{{Type: mvccpb.Event_PUT, Kv: &mvccpb.KeyValue{Key: evKey, ModRevision: 2}}})
		select {
		case r := <-s.Out():
			if !want || len(r.Events) != 1 {
				t.Fatalf("[%q, %q): key %q delivered (%v), want %v", key, end, evKey, r.WatchResponse, want)
			}
		default:
			if want {
				t.Fatalf("[%q, %q): key %q not delivered", key, end, evKey)
			}
		}
	})
}
