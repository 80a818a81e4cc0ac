package watchfeed_test

import (
	"context"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/photoncloud/photoncloud/internal/chainfire/chainfiretest"
	"github.com/photoncloud/photoncloud/internal/platform/watchfeed"
)

// index is a test Index: the keys under the prefix, as the feed keeps them.
type index struct {
	cli *clientv3.Client

	mu      sync.Mutex
	rev     int64
	keys    map[string]string
	reloads int
}

func (x *index) Revision() int64 {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.rev
}

func (x *index) Apply(evs []*clientv3.Event) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, ev := range evs {
		if ev.Type == clientv3.EventTypeDelete {
			delete(x.keys, string(ev.Kv.Key))
		} else {
			x.keys[string(ev.Kv.Key)] = string(ev.Kv.Value)
		}
		x.rev = max(x.rev, ev.Kv.ModRevision)
	}
}

func (x *index) Progress(rev int64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.rev = max(x.rev, rev)
}

func (x *index) Reload(ctx context.Context) error {
	resp, err := x.cli.Get(ctx, "/p/", clientv3.WithPrefix())
	if err != nil {
		return err
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	x.keys = map[string]string{}
	for _, kv := range resp.Kvs {
		x.keys[string(kv.Key)] = string(kv.Value)
	}
	x.rev = resp.Header.Revision
	x.reloads++
	return nil
}

func (x *index) get(k string) (string, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	v, ok := x.keys[k]
	return v, ok
}

func startChainfire(t *testing.T) *clientv3.Client {
	t.Helper()
	srv := chainfiretest.Start(t, nil)
	cli := chainfiretest.Client(t, srv.ClientAddr())
	return cli
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestFeed follows puts and deletes under the prefix, resumes after a
// lost watch without missing what happened meanwhile, reloads when the
// watch fell behind a compaction, and passes progress on.
func TestFeed(t *testing.T) {
	cli := startChainfire(t)
	ctx := context.Background()
	x := &index{cli: cli, keys: map[string]string{}}
	if err := x.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	hold := make(chan struct{}, 1)
	hold <- struct{}{} // the first watch starts at once
	w := clientv3.NewWatcher(cli)
	defer w.Close()
	f := watchfeed.New(watchfeed.Options{Watcher: w, Prefix: "/p/", Index: x, BeforeWatch: func() { <-hold }})
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); f.Run(runCtx) }()
	defer func() { stop(); hold <- struct{}{}; <-done }()

	if _, err := cli.Put(ctx, "/p/a", "1"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, "/other", "x"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "/p/a", func() bool { v, ok := x.get("/p/a"); return ok && v == "1" })
	if _, ok := x.get("/other"); ok {
		t.Fatal("a key outside the prefix reached the index")
	}

	// Progress: a revision that touched no key of the prefix.
	resp, err := cli.Put(ctx, "/other", "y")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "progress", func() bool { f.RequestProgress(); return x.Revision() >= resp.Header.Revision })

	// A lost watch resumes after the applied revision.
	f.Kick()
	if _, err := cli.Put(ctx, "/p/b", "2"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Delete(ctx, "/p/a"); err != nil {
		t.Fatal(err)
	}
	hold <- struct{}{}
	waitFor(t, "/p/b and the delete of /p/a", func() bool {
		_, a := x.get("/p/a")
		v, b := x.get("/p/b")
		return !a && b && v == "2"
	})
	if x.reloads != 1 {
		t.Fatalf("%d reloads after a resumed watch, want none beyond the first", x.reloads-1)
	}

	// A watch that would start below the compacted revision reloads.
	f.Kick()
	if _, err := cli.Put(ctx, "/p/c", "3"); err != nil {
		t.Fatal(err)
	}
	last, err := cli.Put(ctx, "/other", "z")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(ctx, last.Header.Revision); err != nil {
		t.Fatal(err)
	}
	hold <- struct{}{}
	hold <- struct{}{} // the watch after the reload
	waitFor(t, "a reload with /p/c", func() bool {
		x.mu.Lock()
		defer x.mu.Unlock()
		return x.reloads == 2 && x.keys["/p/c"] == "3"
	})
}
