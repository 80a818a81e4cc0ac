package robustness

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"time"

	"github.com/anishathalye/porcupine"
)

// maxProblems bounds how many problems of one check are kept; a broken
// server produces thousands and the first few tell the story.
const maxProblems = 20

// Problems collects check failures, keeping the first maxProblems.
type Problems struct {
	List    []string
	Dropped int
}

// Addf records one problem.
func (p *Problems) Addf(format string, args ...any) {
	if len(p.List) >= maxProblems {
		p.Dropped++
		return
	}
	p.List = append(p.List, fmt.Sprintf(format, args...))
}

// Merge appends q's problems to p, prefixed.
func (p *Problems) Merge(prefix string, q Problems) {
	for _, s := range q.List {
		p.Addf("%s%s", prefix, s)
	}
	p.Dropped += q.Dropped
}

// Empty reports whether no problem was found.
func (p *Problems) Empty() bool { return len(p.List) == 0 && p.Dropped == 0 }

func (p *Problems) String() string {
	s := ""
	for _, l := range p.List {
		s += "\n  - " + l
	}
	if p.Dropped > 0 {
		s += fmt.Sprintf("\n  ... and %d more", p.Dropped)
	}
	return s
}

// keyVersion is a key's state right after one event.
type keyVersion struct {
	rev    int64
	exists bool
	value  string
	modRev int64
	lease  int64
}

// eventIndex answers "what was key k at revision r" from the event log.
type eventIndex map[string][]keyVersion

func indexEvents(events []Event) eventIndex {
	idx := eventIndex{}
	for _, e := range events {
		kv := keyVersion{rev: e.Rev}
		if e.Type == EventPut {
			kv.exists, kv.value, kv.modRev, kv.lease = true, e.Value, e.Rev, e.Lease
		}
		idx[e.Key] = append(idx[e.Key], kv)
	}
	return idx
}

// at returns the key's state at revision rev (after applying rev).
func (x eventIndex) at(key string, rev int64) keyVersion {
	vs := x[key]
	i := sort.Search(len(vs), func(i int) bool { return vs[i].rev > rev })
	if i == 0 {
		return keyVersion{}
	}
	return vs[i-1]
}

// CheckEventLog checks the complete event log (a watch from revision 1 on
// a store that was never compacted and had no other writer): one event per
// revision from 2 to finalRev, and prev_kv, create revision and version
// consistent with the events before.
func CheckEventLog(events []Event, finalRev int64) Problems {
	var p Problems
	type state struct {
		exists                         bool
		value                          string
		modRev, createRev, vers, lease int64
	}
	keys := map[string]state{}
	want := int64(2) // revision 1 is the empty store
	for _, e := range events {
		if e.Rev != want {
			p.Addf("event log: %v, want revision %d next (events must be ordered, one per revision, no gaps)", e, want)
			if e.Rev > want {
				want = e.Rev
			}
		}
		want++
		before := keys[e.Key]
		if e.PrevFound != before.exists || (before.exists && (e.PrevValue != before.value || e.PrevModRev != before.modRev || e.PrevLease != before.lease)) {
			p.Addf("event log: %v, but before it the key was %s (lease %x)", e, stateString(before.exists, before.value, before.modRev), before.lease)
		}
		switch e.Type {
		case EventPut:
			wantCreate, wantVersion := e.Rev, int64(1)
			if before.exists {
				wantCreate, wantVersion = before.createRev, before.vers+1
			}
			if e.CreateRev != wantCreate || e.Version != wantVersion {
				p.Addf("event log: %v, want create revision %d and version %d", e, wantCreate, wantVersion)
			}
			keys[e.Key] = state{true, e.Value, e.Rev, wantCreate, wantVersion, e.Lease}
		case EventDelete:
			if !before.exists {
				p.Addf("event log: %v deletes a key that did not exist", e)
			}
			keys[e.Key] = state{}
		default:
			p.Addf("event log: %v has an unknown type", e)
		}
	}
	if last := want - 1; finalRev > 1 && last != finalRev {
		p.Addf("event log ends at revision %d, but the store is at revision %d", last, finalRev)
	}
	return p
}

func stateString(exists bool, value string, modRev int64) string {
	if !exists {
		return "<absent>"
	}
	return fmt.Sprintf("%q@%d", value, modRev)
}

// ResolveHistory ties the client history to the event log:
//
//   - every acknowledged put and successful txn has its (unique) value in
//     the log at the acknowledged revision and key, with the lease it was
//     written with; a failed txn's value is not in the log; an acknowledged
//     delete of an existing key is a DELETE event at its revision;
//   - every PUT event was written by some client operation, no value twice;
//     every DELETE event is an acknowledged delete or revoke, the end of the
//     lease its key was attached to, or can be blamed on a pending delete
//     of that key.
//
// It returns the history to check for linearizability: pending puts and
// txns found in the log become resolved (their revision and success known,
// return time still unknown); those not in the log never wrote anything and
// are dropped, as are pending and failed reads (no effect) and pending
// deletes of keys with no unexplained DELETE event. Pending grants,
// keep-alives and revokes are dropped too: a grant whose lease nobody
// learnt has no key attached, a renewal changes no key, and what a revoke
// deleted shows in the log as the DELETE of a key attached to the lease.
// Each such DELETE that no acknowledged operation accounts for becomes a
// lease-end operation of that lease (its expiry, or a revoke whose answer
// was lost), pending from the grant's call and resolved at the DELETE's
// revision: a lease can end at any time after it is granted.
func ResolveHistory(recs []Record, events []Event) ([]Record, Problems) {
	var p Problems
	putByValue := map[string]Event{}
	eventAt := map[int64]Event{}
	for _, e := range events {
		eventAt[e.Rev] = e
		if e.Type != EventPut {
			continue
		}
		if prev, dup := putByValue[e.Value]; dup {
			p.Addf("value %q written twice: %v and %v (a write was applied twice)", e.Value, prev, e)
			continue
		}
		putByValue[e.Value] = e
	}
	grants := map[int64]*Record{} // acknowledged grants by lease
	maxClient := 0
	for i := range recs {
		r := &recs[i]
		maxClient = max(maxClient, r.Client)
		if r.Input.Kind != OpGrant || !r.Acked() {
			continue
		}
		if g, dup := grants[r.Output.Lease]; dup {
			p.Addf("%v: lease %x was granted before, by %v", r, r.Output.Lease, g)
			continue
		}
		grants[r.Output.Lease] = r
	}
	// checkLease: a write's value is in the log with the lease it was
	// written with (a txn's put has none).
	checkLease := func(r *Record, e Event) {
		want := int64(0)
		if r.Input.Kind == OpPut {
			want = r.Input.Lease
		}
		if e.Lease != want {
			p.Addf("%v: the event log has %v, with lease %x instead of %x", r, e, e.Lease, want)
		}
	}
	explained := map[int64]bool{}
	owner := map[string]bool{} // values some operation tried to write
	pendingDeletes := map[string]int{}
	out := make([]Record, 0, len(recs))
	for _, r := range recs {
		in := r.Input
		if in.Kind == OpPut || in.Kind == OpTxn {
			owner[in.Value] = true
		}
		if r.Output.Unknown {
			switch in.Kind {
			case OpPut, OpTxn:
				if e, ok := putByValue[in.Value]; ok {
					if e.Key != in.Key {
						p.Addf("%v: its value is in the event log under another key: %v", &r, e)
						continue
					}
					checkLease(&r, e)
					explained[e.Rev] = true
					r.Output = Output{Unknown: true, Resolved: true, Rev: e.Rev, Succeeded: in.Kind == OpTxn}
					out = append(out, r)
				}
			case OpDelete:
				pendingDeletes[in.Key]++
				out = append(out, r)
			}
			continue
		}
		switch {
		case in.Kind == OpPut || (in.Kind == OpTxn && r.Output.Succeeded):
			e, ok := putByValue[in.Value]
			switch {
			case !ok:
				p.Addf("%v: acknowledged write is not in the event log (lost write)", &r)
			case e.Rev != r.Output.Rev || e.Key != in.Key:
				p.Addf("%v: the event log has %v", &r, e)
			default:
				checkLease(&r, e)
				explained[e.Rev] = true
			}
		case in.Kind == OpTxn:
			if e, ok := putByValue[in.Value]; ok {
				explained[e.Rev] = true
				p.Addf("%v: the transaction failed but its put is in the event log: %v", &r, e)
			}
		case in.Kind == OpDelete && r.Output.Deleted > 0:
			e, ok := eventAt[r.Output.Rev]
			if !ok || e.Type != EventDelete || e.Key != in.Key {
				p.Addf("%v: no DELETE of the key at that revision in the event log (have %v)", &r, e)
			} else {
				explained[e.Rev] = true
			}
		}
		out = append(out, r)
	}
	// A successful revoke answers with the revision after it: a DELETE of
	// its key, attached to its lease, at that revision is its doing, or
	// (rarely) that of a pending delete applied just before it. Which one
	// the model decides; pending deletes of the key are kept for it.
	maybePending := map[string]int{}
	for i := range out {
		r := &out[i]
		if r.Input.Kind != OpRevoke || !r.Acked() || r.Output.NotFound {
			continue
		}
		if e, ok := eventAt[r.Output.Rev]; ok && !explained[e.Rev] && e.Type == EventDelete && e.Key == r.Input.Key && e.PrevLease == r.Input.Lease {
			explained[e.Rev] = true
			maybePending[e.Key]++
		}
	}
	unexplainedDeletes := map[string]int{}
	nextClient := maxClient + 1
	for _, e := range events {
		if explained[e.Rev] {
			continue
		}
		switch e.Type {
		case EventPut:
			if !owner[e.Value] {
				p.Addf("%v: no client wrote this value (phantom write)", e)
			}
		case EventDelete:
			if e.PrevLease == 0 {
				unexplainedDeletes[e.Key]++
				continue
			}
			// Deleted by its lease's end, or by a pending delete applied
			// after the lease's put: the same change at the same
			// revision, inside the lease-end's window either way.
			g, ok := grants[e.PrevLease]
			if !ok || g.Input.Key != e.Key {
				p.Addf("%v: the key was attached to lease %x, which no acknowledged grant for the key returned", e, e.PrevLease)
				continue
			}
			out = append(out, Record{
				Client: nextClient, Member: fmt.Sprintf("lease %x", e.PrevLease),
				Input:  Input{Kind: OpLeaseEnd, Key: e.Key, Lease: e.PrevLease},
				Output: Output{Unknown: true, Resolved: true, Rev: e.Rev, Deleted: 1},
				Call:   g.Call,
			})
			nextClient++
		}
	}
	for k, n := range unexplainedDeletes {
		if n > pendingDeletes[k] {
			p.Addf("key %s: %d DELETE events in the event log that no client delete accounts for (%d deletes pending)", k, n, pendingDeletes[k])
		}
	}
	// Pending deletes of keys whose deletions are all accounted for never
	// took effect: drop them to keep the linearizability search small.
	kept := out[:0]
	for _, r := range out {
		if r.Input.Kind == OpDelete && r.Output.Unknown && unexplainedDeletes[r.Input.Key]+maybePending[r.Input.Key] == 0 {
			continue
		}
		kept = append(kept, r)
	}
	sortRecords(kept)
	return kept, p
}

// CheckReads replays the event log under every acknowledged operation that
// read the store: a get, a failed txn and a delete of a missing key must
// have seen exactly the state the log has at their header revision, a
// successful txn's compare must hold just before its revision, and no
// response may carry a revision beyond the final one.
func CheckReads(recs []Record, events []Event, finalRev int64) Problems {
	var p Problems
	idx := indexEvents(events)
	for i := range recs {
		r := &recs[i]
		if r.Output.Unknown && !r.Output.Resolved {
			continue
		}
		out := r.Output
		if out.Rev > finalRev {
			p.Addf("%v: revision beyond the final revision %d", r, finalRev)
			continue
		}
		var readRev int64
		switch {
		case r.Input.Kind == OpGet, r.Input.Kind == OpTxn && !out.Succeeded:
			kv := idx.at(r.Input.Key, out.Rev)
			if kv.exists != out.Found || (kv.exists && (kv.value != out.Value || kv.modRev != out.ModRev || kv.lease != out.Lease)) {
				p.Addf("%v: the event log has the key at %s at revision %d (stale or invented read)", r, stateString(kv.exists, kv.value, kv.modRev), out.Rev)
			}
			readRev = out.Rev
		case r.Input.Kind == OpDelete && out.Deleted == 0:
			if kv := idx.at(r.Input.Key, out.Rev); kv.exists {
				p.Addf("%v: the event log has the key at %s at revision %d", r, stateString(true, kv.value, kv.modRev), out.Rev)
			}
		case r.Input.Kind == OpTxn && out.Succeeded:
			readRev = out.Rev - 1
		}
		if r.Input.Kind == OpTxn {
			kv := idx.at(r.Input.Key, readRev)
			s := keyState{Exists: kv.exists, Value: kv.value, ModRev: kv.modRev}
			if cmpHolds(s, r.Input) != out.Succeeded {
				p.Addf("%v: at revision %d the key was %s, so the compare should have %s", r, readRev, s, map[bool]string{true: "held", false: "failed"}[!out.Succeeded])
			}
		}
	}
	return p
}

// CheckRevisions checks revisions against real time across keys: an
// operation that starts after another has returned must see a revision at
// least as new, and a write must create a newer one.
func CheckRevisions(recs []Record) Problems {
	var p Problems
	var acked []*Record
	for i := range recs {
		if recs[i].HasRev() {
			acked = append(acked, &recs[i])
		}
	}
	byCall := append([]*Record(nil), acked...)
	sort.SliceStable(byCall, func(i, j int) bool { return byCall[i].Call < byCall[j].Call })
	byReturn := append([]*Record(nil), acked...)
	sort.SliceStable(byReturn, func(i, j int) bool { return byReturn[i].Return < byReturn[j].Return })
	var maxDone *Record
	j := 0
	for _, b := range byCall {
		for j < len(byReturn) && byReturn[j].Return < b.Call {
			if maxDone == nil || byReturn[j].Output.Rev > maxDone.Output.Rev {
				maxDone = byReturn[j]
			}
			j++
		}
		if maxDone == nil {
			continue
		}
		if b.Output.Rev < maxDone.Output.Rev || (b.IsWrite() && b.Output.Rev == maxDone.Output.Rev) {
			p.Addf("%v started after %v had returned, but its revision is not newer (revisions go back in time)", b, maxDone)
		}
	}
	return p
}

// expirySlack is how much earlier than its TTL allows a lease may be seen
// gone before CheckLeases calls it premature. In theory none is needed (the
// leader sets a deadline of TTL after applying the grant or renewal, both
// after the client's call, and the servers read the same monotonic clock as
// the test); the slack absorbs clock reads and rounding.
const expirySlack = 250 * time.Millisecond

// CheckLeases checks what the linearizability model leaves out of leases,
// from the raw history (every revoke attempted) and the resolved one
// (lease-ends, revisions):
//
//   - a lease revoked (or found gone by a revoke) is not renewed afterwards;
//   - a lease that no client revoked does not delete its key before its
//     TTL has run out since the grant or the last renewal: the delete's
//     revision must not be seen by an operation that returned earlier
//     (unless a pending delete of the key, called before, may have been
//     the delete).
func CheckLeases(raw, resolved []Record) Problems {
	var p Problems
	type leaseInfo struct {
		grant      *Record
		gone       *Record // the first revoke to return (done, or "not found")
		revokeSent bool    // some client tried to revoke it
		renewals   []*Record
	}
	leases := map[int64]*leaseInfo{}
	pendingDeletes := map[string][]int64{} // key -> calls of pending deletes
	info := func(id int64) *leaseInfo {
		li := leases[id]
		if li == nil {
			li = &leaseInfo{}
			leases[id] = li
		}
		return li
	}
	for i := range raw {
		r := &raw[i]
		switch r.Input.Kind {
		case OpDelete:
			if !r.Acked() {
				pendingDeletes[r.Input.Key] = append(pendingDeletes[r.Input.Key], r.Call)
			}
		case OpGrant:
			if r.Acked() {
				info(r.Output.Lease).grant = r
			}
		case OpRevoke:
			li := info(r.Input.Lease)
			li.revokeSent = true
			if r.Acked() && (li.gone == nil || r.Return < li.gone.Return) {
				li.gone = r
			}
		case OpKeepAlive:
			if r.Acked() && !r.Output.NotFound && r.Output.TTL > 0 {
				info(r.Input.Lease).renewals = append(info(r.Input.Lease).renewals, r)
			}
		}
	}
	for id, li := range leases {
		if li.gone == nil {
			continue
		}
		for _, k := range li.renewals {
			if k.Call > li.gone.Return {
				p.Addf("%v: lease %x renewed after %v had returned", k, id, li.gone)
			}
		}
	}
	// seenBy[i]: the earliest return among operations answering with a
	// revision >= revs[i].
	var withRev []*Record
	for i := range resolved {
		if resolved[i].HasRev() {
			withRev = append(withRev, &resolved[i])
		}
	}
	sort.Slice(withRev, func(i, j int) bool { return withRev[i].Output.Rev < withRev[j].Output.Rev })
	seenBy := make([]*Record, len(withRev))
	for i := len(withRev) - 1; i >= 0; i-- {
		seenBy[i] = withRev[i]
		if i+1 < len(withRev) && seenBy[i+1].Return < withRev[i].Return {
			seenBy[i] = seenBy[i+1]
		}
	}
	for i := range resolved {
		e := &resolved[i]
		if e.Input.Kind != OpLeaseEnd {
			continue
		}
		li := leases[e.Input.Lease]
		if li == nil || li.grant == nil || li.revokeSent {
			continue
		}
		earliest := li.grant.Call + int64(li.grant.Output.TTL)*int64(time.Second)
		for _, k := range li.renewals {
			earliest = max(earliest, k.Call+int64(k.Output.TTL)*int64(time.Second))
		}
		j := sort.Search(len(withRev), func(j int) bool { return withRev[j].Output.Rev >= e.Output.Rev })
		if j == len(withRev) {
			continue
		}
		w := seenBy[j]
		if slices.ContainsFunc(pendingDeletes[e.Input.Key], func(call int64) bool { return call < w.Return }) {
			continue
		}
		if w.Return < earliest-int64(expirySlack) {
			p.Addf("lease %x expired early: granted by %v, %d renewals, so it could not end before %.3fs, but its key's delete at revision %d was seen by %v",
				e.Input.Lease, li.grant, len(li.renewals), float64(earliest)/1e9, e.Output.Rev, w)
		}
	}
	return p
}

// CheckWatchStream compares what one watcher received (possibly over
// several sessions) with the complete event log: same events, in order, no
// duplicates, no gaps, identical prev_kv, and all of them.
func CheckWatchStream(got, final []Event) Problems {
	var p Problems
	pos := map[int64]int{}
	for i, e := range final {
		pos[e.Rev] = i
	}
	next := 0 // index in final of the event expected next
	for i, e := range got {
		if i > 0 && e.Rev <= got[i-1].Rev {
			kind := "out of order"
			if e.Rev == got[i-1].Rev {
				kind = "duplicate"
			}
			p.Addf("event %d (%v) after %v: %s", i, e, got[i-1], kind)
			continue
		}
		j, ok := pos[e.Rev]
		if !ok {
			p.Addf("event %d (%v) is not in the event log", i, e)
			continue
		}
		if j > next {
			p.Addf("gap before event %d (%v): missed revisions %d..%d", i, e, final[next].Rev, final[j-1].Rev)
		}
		if e != final[j] {
			p.Addf("event %d is %v, the event log has %v", i, e, final[j])
		}
		next = j + 1
	}
	if next < len(final) {
		last := int64(0)
		if len(got) > 0 {
			last = got[len(got)-1].Rev
		}
		p.Addf("stream ends at revision %d, the event log goes on to %d (%d events missing at the end)", last, final[len(final)-1].Rev, len(final)-next)
	}
	return p
}

// CheckLinearizable runs porcupine over the resolved history.
func CheckLinearizable(recs []Record, timeout time.Duration) (porcupine.CheckResult, porcupine.LinearizationInfo) {
	return porcupine.CheckOperationsVerbose(KVModel(), Operations(recs), timeout)
}

// Artifacts is what a failed run keeps for debugging.
type Artifacts struct {
	Raw      []Record           // every operation as recorded
	Resolved []Record           // the history given to porcupine
	Events   []Event            // the complete event log
	Streams  map[string][]Event // what each watcher received
	Nemesis  []Action           // the failures injected, on the history's clock
	Info     *porcupine.LinearizationInfo
	Logs     []string // server logs to copy
	Summary  string
}

// Save writes the artifacts to a new directory under os.TempDir() (not the
// test's temporary directory, which is removed) and returns its path.
func (a *Artifacts) Save() (string, error) {
	dir, err := os.MkdirTemp("", "photon-robustness-*")
	if err != nil {
		return "", fmt.Errorf("artifacts dir: %w", err)
	}
	write := func(name string, v any) error {
		b, err := json.MarshalIndent(v, "", " ")
		if err != nil {
			return fmt.Errorf("marshal %s: %w", name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
		return nil
	}
	for name, v := range map[string]any{
		"history.json":          a.Raw,
		"history-resolved.json": a.Resolved,
		"events.json":           a.Events,
		"watch-streams.json":    a.Streams,
		"nemesis.json":          a.Nemesis,
	} {
		if err := write(name, v); err != nil {
			return dir, err
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "summary.txt"), []byte(a.Summary+"\n"), 0o644); err != nil {
		return dir, fmt.Errorf("write summary: %w", err)
	}
	for _, l := range a.Logs {
		b, err := os.ReadFile(l)
		if err != nil {
			return dir, fmt.Errorf("copy log: %w", err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(l)), b, 0o644); err != nil {
			return dir, fmt.Errorf("copy log: %w", err)
		}
	}
	if a.Info != nil {
		if err := porcupine.VisualizePath(KVModel(), *a.Info, filepath.Join(dir, "linearization.html")); err != nil {
			return dir, fmt.Errorf("visualize: %w", err)
		}
	}
	return dir, nil
}

// StaleReadMutation makes a known-bad copy of a real history, to prove the
// linearizability check is not vacuous on it: it finds a get that returned
// a write acknowledged before the get started, and makes it return the
// previous acknowledged write of that key instead (a stale read). It
// returns that key's operations with the mutation applied.
func StaleReadMutation(recs []Record) ([]Record, string, bool) {
	type write struct {
		rec *Record
		rev int64
	}
	writes := map[string][]write{} // acknowledged puts per key, by revision
	byRev := map[int64]*Record{}
	for i := range recs {
		r := &recs[i]
		if r.Acked() && r.IsWrite() && r.Input.Kind != OpDelete {
			writes[r.Input.Key] = append(writes[r.Input.Key], write{r, r.Output.Rev})
			byRev[r.Output.Rev] = r
		}
	}
	for k := range writes {
		sort.Slice(writes[k], func(i, j int) bool { return writes[k][i].rev < writes[k][j].rev })
	}
	for i := len(recs) - 1; i >= 0; i-- {
		g := &recs[i]
		if g.Input.Kind != OpGet || !g.Acked() || !g.Output.Found {
			continue
		}
		w, ok := byRev[g.Output.ModRev]
		if !ok || w.Return >= g.Call {
			continue
		}
		ws := writes[g.Input.Key]
		j := sort.Search(len(ws), func(j int) bool { return ws[j].rev >= g.Output.ModRev })
		if j == 0 {
			continue
		}
		prev := ws[j-1].rec
		var out []Record
		for _, r := range recs {
			if r.Input.Key == g.Input.Key {
				out = append(out, r)
			}
		}
		for n := range out {
			if out[n].Call == g.Call && out[n].Client == g.Client && out[n].Input == g.Input {
				out[n].Output.Value, out[n].Output.ModRev, out[n].Output.Lease = prev.Input.Value, prev.Output.Rev, prev.Input.Lease
			}
		}
		desc := fmt.Sprintf("%v now returns %q@%d, overwritten by %v before the get started", g, prev.Input.Value, prev.Output.Rev, w)
		return out, desc, true
	}
	return nil, "", false
}

// RevokedReadMutation makes a known-bad copy of a real history, to prove
// the lease model is not vacuous on it: it finds an acknowledged revoke
// that deleted its key (the event log has the DELETE at its revision) and
// a get of that key that started after the revoke returned, and makes the
// get return the value the lease's put wrote, with its lease (a read of a
// revoked lease's key). It returns that key's operations with the mutation
// applied.
func RevokedReadMutation(recs []Record, events []Event) ([]Record, string, bool) {
	at := map[int64]Event{}
	for _, e := range events {
		at[e.Rev] = e
	}
	puts := map[int64]*Record{} // leased puts that took effect, by lease
	for i := range recs {
		r := &recs[i]
		if r.Input.Kind == OpPut && r.Input.Lease != 0 && (r.Acked() || r.Output.Resolved) {
			puts[r.Input.Lease] = r
		}
	}
	for i := range recs {
		rv := &recs[i]
		if rv.Input.Kind != OpRevoke || !rv.HasRev() {
			continue
		}
		e, ok := at[rv.Output.Rev]
		w := puts[rv.Input.Lease]
		if !ok || w == nil || e.Type != EventDelete || e.Key != rv.Input.Key || e.PrevLease != rv.Input.Lease {
			continue
		}
		for j := range recs {
			g := &recs[j]
			if g.Input.Kind != OpGet || g.Input.Key != rv.Input.Key || !g.Acked() || g.Call <= rv.Return {
				continue
			}
			var out []Record
			for _, r := range recs {
				if r.Input.Key == g.Input.Key {
					out = append(out, r)
				}
			}
			for n := range out {
				if out[n].Call == g.Call && out[n].Client == g.Client && out[n].Input == g.Input {
					o := &out[n].Output
					o.Found, o.Value, o.ModRev, o.Lease = true, w.Input.Value, w.Output.Rev, w.Input.Lease
				}
			}
			desc := fmt.Sprintf("%v now returns %q@%d of lease %x, revoked by %v before the get started", g, w.Input.Value, w.Output.Rev, w.Input.Lease, rv)
			return out, desc, true
		}
	}
	return nil, "", false
}
