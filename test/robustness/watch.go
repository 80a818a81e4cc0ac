package robustness

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Session is one watch stream a watcher opened.
type Session struct {
	StartRev int64  `json:"start_rev"` // start_revision asked for: 1, then last received + 1
	Events   int    `json:"events"`
	End      string `json:"end,omitempty"` // why it ended
}

// Watcher watches KeyPrefix on one member from revision 1 with prev_kv.
// Whenever its stream ends (the member was killed or stopped, lost its
// leader, or the stream failed) it opens a new one, on a new connection,
// at the revision after the last event it received: that is the
// resumability the checker then verifies.
type Watcher struct {
	Name string
	m    *Member

	mu       sync.Mutex
	events   []Event
	sessions []Session
	problems Problems
	changed  chan struct{} // closed and replaced whenever events grow
}

// NewWatcher prepares a watcher of member m; Run does the work.
func NewWatcher(name string, m *Member) *Watcher {
	return &Watcher{Name: name, m: m, changed: make(chan struct{})}
}

// Run watches until ctx ends.
func (w *Watcher) Run(ctx context.Context) {
	next := int64(1)
	for ctx.Err() == nil {
		if !w.m.Running() {
			sleep(ctx, 100*time.Millisecond)
			continue
		}
		s := w.session(ctx, next)
		if n := w.lastRev(); n > 0 {
			next = n + 1
		}
		w.mu.Lock()
		w.sessions = append(w.sessions, s)
		w.mu.Unlock()
		sleep(ctx, 100*time.Millisecond)
	}
}

// session runs one watch stream from start until it ends.
func (w *Watcher) session(ctx context.Context, start int64) Session {
	s := Session{StartRev: start}
	exited := w.m.Exited()
	cli, err := NewClient([]string{w.m.Endpoint()})
	if err != nil {
		s.End = err.Error()
		return s
	}
	defer cli.Close()
	// Require a leader so that a member cut off from the others ends the
	// stream instead of leaving it silently stale.
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	// clientv3 would retry a dead member forever on its own; a killed
	// member ends the session so that the watcher resumes explicitly.
	stopped := make(chan struct{})
	defer close(stopped)
	go func() {
		select {
		case <-exited:
			cancel()
		case <-stopped:
		}
	}()
	ch := cli.Watch(wctx, KeyPrefix, clientv3.WithPrefix(), clientv3.WithRev(start), clientv3.WithPrevKV())
	for resp := range ch {
		if resp.CompactRevision != 0 {
			w.problemf("session from revision %d: compacted at %d, but nothing compacts", start, resp.CompactRevision)
		}
		if err := resp.Err(); err != nil {
			s.End = err.Error()
			return s
		}
		if len(resp.Events) == 0 {
			continue
		}
		evs := make([]Event, len(resp.Events))
		for i, ev := range resp.Events {
			evs[i] = EventFromProto(ev)
		}
		s.Events += len(evs)
		w.mu.Lock()
		w.events = append(w.events, evs...)
		close(w.changed)
		w.changed = make(chan struct{})
		w.mu.Unlock()
	}
	switch {
	case ctx.Err() != nil:
		s.End = "test over"
	case wctx.Err() != nil:
		s.End = "member exited"
	default:
		s.End = "channel closed"
	}
	return s
}

func (w *Watcher) problemf(format string, args ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.problems.Addf(format, args...)
}

func (w *Watcher) lastRev() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.events) == 0 {
		return 0
	}
	return w.events[len(w.events)-1].Rev
}

// Events returns what the watcher received so far.
func (w *Watcher) Events() []Event {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Event(nil), w.events...)
}

// Sessions returns the streams the watcher opened so far.
func (w *Watcher) Sessions() []Session {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Session(nil), w.sessions...)
}

// Problems returns what the watcher noticed while running.
func (w *Watcher) Problems() Problems {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.problems
}

// WaitRev waits until the watcher has received an event at rev or later.
func (w *Watcher) WaitRev(ctx context.Context, rev int64) error {
	for {
		w.mu.Lock()
		last, changed := int64(0), w.changed
		if n := len(w.events); n > 0 {
			last = w.events[n-1].Rev
		}
		w.mu.Unlock()
		if last >= rev {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("watcher %s at revision %d, want %d: %w", w.Name, last, rev, ctx.Err())
		case <-changed:
		}
	}
}

// FetchEventLog reads every event under KeyPrefix from revision 1 to
// finalRev with a fresh watch: the complete write history of the run.
func FetchEventLog(ctx context.Context, endpoints []string, finalRev int64) ([]Event, error) {
	if finalRev <= 1 {
		return nil, nil
	}
	cli, err := NewClient(endpoints)
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var events []Event
	for resp := range cli.Watch(wctx, KeyPrefix, clientv3.WithPrefix(), clientv3.WithRev(1), clientv3.WithPrevKV()) {
		if resp.CompactRevision != 0 {
			return events, fmt.Errorf("event log compacted at %d", resp.CompactRevision)
		}
		if err := resp.Err(); err != nil {
			return events, fmt.Errorf("event log watch: %w", err)
		}
		for _, ev := range resp.Events {
			events = append(events, EventFromProto(ev))
		}
		if n := len(events); n > 0 && events[n-1].Rev >= finalRev {
			return events, nil
		}
	}
	if ctx.Err() != nil {
		last := int64(0)
		if n := len(events); n > 0 {
			last = events[n-1].Rev
		}
		return events, fmt.Errorf("event log watch reached revision %d of %d: %w", last, finalRev, ctx.Err())
	}
	return events, errors.New("event log watch ended early")
}
