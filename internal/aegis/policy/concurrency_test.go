package policy

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

// TestConcurrentReadersSeeConsistentSnapshots runs decisions while one
// writer keeps moving a grant between two users and toggling a deny. Every
// batch decision (one snapshot) must see exactly one of them allowed, and
// revisions must never go backwards for a reader.
func TestConcurrentReadersSeeConsistentSnapshots(t *testing.T) {
	e := newTestEvaluator(t)
	must(t, e.Update(func(tx *Tx) error {
		must(t, tx.PutPrincipal(user("alice", "acme")))
		must(t, tx.PutPrincipal(user("bob", "acme")))
		// Both have a base grant; the deny decides who is blocked.
		must(t, tx.PutBinding(allow("a", "users/alice", "ProjectEditor", "orgs/acme")))
		must(t, tx.PutBinding(allow("b", "users/bob", "ProjectEditor", "orgs/acme")))
		return tx.PutBinding(deny("d", "users/bob", "ProjectEditor", "orgs/acme/projects/p"))
	}))
	const writes = 2000
	var done atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for r := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lastRev int64
			reqs := []Request{
				{Principal: "users/alice", Permission: "plasmavmc:vms:create", Resource: "orgs/acme/projects/p/vms/x"},
				{Principal: "users/bob", Permission: "plasmavmc:vms:create", Resource: "orgs/acme/projects/p/vms/x"},
			}
			for i := 0; !done.Load(); i++ {
				ds := e.BatchAuthorize(context.Background(), reqs)
				if ds[0].Allowed == ds[1].Allowed {
					errs <- fmt.Errorf("reader %d: inconsistent snapshot: %v / %v", r, ds[0], ds[1])
					return
				}
				if ds[0].Revision < lastRev || ds[0].Revision != ds[1].Revision {
					errs <- fmt.Errorf("reader %d: revision went from %d to %d/%d", r, lastRev, ds[0].Revision, ds[1].Revision)
					return
				}
				lastRev = ds[0].Revision
				_ = e.Stats()
				_ = e.BindingsAt("orgs/acme/projects/p")
			}
		}()
	}
	for i := range writes {
		subj := "users/alice"
		if i%2 == 1 {
			subj = "users/bob"
		}
		must(t, e.Update(func(tx *Tx) error {
			// Move the deny in one transaction (same id, new subject), plus
			// unrelated churn in the same shards.
			must(t, tx.PutBinding(deny("d", subj, "ProjectEditor", "orgs/acme/projects/p")))
			must(t, tx.PutBinding(allow(fmt.Sprintf("churn%d", i%50), "users/carol", "ProjectViewer", "orgs/acme")))
			must(t, tx.AddMember("groups/g", fmt.Sprintf("users/u%d", i%20)))
			return tx.SetRevision(int64(i + 1))
		}))
	}
	done.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
