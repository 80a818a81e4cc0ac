// Package watchfeed keeps a replica's in-memory copy of a Chainfire key
// prefix current with one etcd watch: it resumes the watch after the last
// applied revision whenever it ends, reloads the copy when the watch fell
// behind a compaction, and passes progress notifications on so that
// readers can wait for a revision that touched none of the prefix's keys.
//
// The Feed also keeps the applied revision, so that a writer can wait
// until its replica has applied its own write (WaitRevision).
//
// The services that keep their state in Chainfire (Aegis, FlashDNS) each
// hold their index in their own store; the Feed is the loop they share.
package watchfeed

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// maxBackoff bounds the wait between two watch attempts (and reload
// attempts) while Chainfire is unreachable or leaderless: the services
// promise that a change is seen by every replica within a second.
const maxBackoff = time.Second

// Index is the in-memory copy a Feed keeps current.
type Index interface {
	// Revision is the revision the copy has applied; the watch resumes
	// after it.
	Revision() int64
	// Apply applies the events of one watch response, in order.
	Apply(events []*clientv3.Event)
	// Progress records that every event up to rev has been delivered.
	Progress(rev int64)
	// Reload rebuilds the copy from a fresh read, after the watch fell
	// behind a compaction and events were lost.
	Reload(ctx context.Context) error
}

// Options configures a Feed. Watcher, Prefix and Index are required.
type Options struct {
	Watcher clientv3.Watcher
	Prefix  string
	Index   Index
	// Logger receives warnings about ended watches and failed reloads.
	Logger *slog.Logger
	// BeforeWatch, if set, runs before every (re)watch; tests use it to
	// hold the watch back.
	BeforeWatch func()
	// Closed, when closed, ends every WaitRevision with ErrClosed (the
	// store's error for a closed store).
	Closed    <-chan struct{}
	ErrClosed error
}

// Feed is the watch loop of one Index.
type Feed struct {
	opts Options

	mu     sync.Mutex
	wctx   context.Context    // context of the current watch, for progress requests
	cancel context.CancelFunc // ends the current watch

	// Applied revision: every change up to it is in the index.
	revMu   sync.Mutex
	applied int64
	revCh   chan struct{} // closed and replaced whenever applied grows
}

// New returns a Feed; Run starts it.
func New(opts Options) *Feed {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Feed{opts: opts, revCh: make(chan struct{})}
}

// Applied returns the revision the index has applied (see Advance).
func (f *Feed) Applied() int64 {
	f.revMu.Lock()
	defer f.revMu.Unlock()
	return f.applied
}

// Advance records that the index has applied everything up to rev,
// waking WaitRevision callers; a lower rev changes nothing.
func (f *Feed) Advance(rev int64) {
	f.revMu.Lock()
	defer f.revMu.Unlock()
	if rev > f.applied {
		f.applied = rev
		close(f.revCh)
		f.revCh = make(chan struct{})
	}
}

// WaitRevision blocks until the index has applied every change up to
// revision rev, or ctx ends, or Options.Closed is closed (ErrClosed).
func (f *Feed) WaitRevision(ctx context.Context, rev int64) error {
	var tick *time.Ticker
	for {
		f.revMu.Lock()
		cur, ch := f.applied, f.revCh
		f.revMu.Unlock()
		if cur >= rev {
			if tick != nil {
				tick.Stop()
			}
			return nil
		}
		if tick == nil {
			// A revision that touched nothing under the prefix produces
			// no event; a progress notification then tells the feed that
			// the index is up to date.
			tick = time.NewTicker(25 * time.Millisecond)
			defer tick.Stop()
		}
		select {
		case <-ch:
		case <-tick.C:
			f.RequestProgress()
		case <-ctx.Done():
			return fmt.Errorf("wait for revision %d (at %d): %w", rev, cur, ctx.Err())
		case <-f.opts.Closed:
			return f.opts.ErrClosed
		}
	}
}

// Run keeps the index current until ctx ends.
func (f *Feed) Run(ctx context.Context) {
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		started := time.Now()
		needReload := f.watchOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		if needReload {
			for ctx.Err() == nil {
				err := f.opts.Index.Reload(ctx)
				if err == nil {
					break
				}
				f.opts.Logger.Warn("reloading after a compaction failed; retrying", "prefix", f.opts.Prefix, "err", err)
				if !sleep(ctx, backoff) {
					return
				}
				backoff = min(2*backoff, maxBackoff)
			}
		}
		if time.Since(started) > 10*time.Second {
			backoff = 50 * time.Millisecond
		} else if !needReload {
			// A watch that ends at once (no leader, Chainfire down) must
			// not spin.
			if !sleep(ctx, backoff) {
				return
			}
			backoff = min(2*backoff, maxBackoff)
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// watchOnce watches from the applied revision until the watch ends; it
// reports whether events were lost so that the index must be reloaded.
func (f *Feed) watchOnce(ctx context.Context) (needReload bool) {
	if f.opts.BeforeWatch != nil {
		f.opts.BeforeWatch()
	}
	// WithRequireLeader ends the watch when the Chainfire member loses its
	// leader, rather than leaving the index silently stale.
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	f.mu.Lock()
	f.wctx, f.cancel = wctx, cancel
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.wctx, f.cancel = nil, nil
		f.mu.Unlock()
	}()

	from := f.opts.Index.Revision() + 1
	for resp := range f.opts.Watcher.Watch(wctx, f.opts.Prefix, clientv3.WithPrefix(), clientv3.WithRev(from)) {
		if resp.CompactRevision != 0 {
			f.opts.Logger.Info("watch fell behind a compaction; reloading",
				"prefix", f.opts.Prefix, "from", from, "compacted", resp.CompactRevision)
			return true
		}
		if err := resp.Err(); err != nil {
			if ctx.Err() == nil {
				f.opts.Logger.Warn("watch ended; restarting", "prefix", f.opts.Prefix, "err", err)
			}
			return false
		}
		if resp.IsProgressNotify() {
			// Every event up to the header revision has been delivered.
			f.opts.Index.Progress(resp.Header.Revision)
			continue
		}
		f.opts.Index.Apply(resp.Events)
	}
	return false
}

// RequestProgress asks Chainfire for a progress notification on the
// current watch, if there is one.
func (f *Feed) RequestProgress() {
	f.mu.Lock()
	wctx := f.wctx
	f.mu.Unlock()
	if wctx == nil {
		return
	}
	if err := f.opts.Watcher.RequestProgress(wctx); err != nil && wctx.Err() == nil {
		f.opts.Logger.Debug("progress request failed", "err", err)
	}
}

// Kick ends the current watch; Run starts a new one. Tests use it to
// simulate a lost connection.
func (f *Feed) Kick() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cancel != nil {
		f.cancel()
	}
}
