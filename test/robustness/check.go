package robustness

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
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
}

// eventIndex answers "what was key k at revision r" from the event log.
type eventIndex map[string][]keyVersion

func indexEvents(events []Event) eventIndex {
	idx := eventIndex{}
	for _, e := range events {
		kv := keyVersion{rev: e.Rev}
		if e.Type == EventPut {
			kv.exists, kv.value, kv.modRev = true, e.Value, e.Rev
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
		exists                  bool
		value                   string
		modRev, createRev, vers int64
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
		if e.PrevFound != before.exists || (before.exists && (e.PrevValue != before.value || e.PrevModRev != before.modRev)) {
			p.Addf("event log: %v, but before it the key was %s", e, stateString(before.exists, before.value, before.modRev))
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
			keys[e.Key] = state{true, e.Value, e.Rev, wantCreate, wantVersion}
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
//     the log at the acknowledged revision and key; a failed txn's value is
//     not in the log; an acknowledged delete of an existing key is a DELETE
//     event at its revision;
//   - every PUT event was written by some client operation, no value twice;
//     every DELETE event is an acknowledged delete or can be blamed on a
//     pending delete of that key.
//
// It returns the history to check for linearizability: pending puts and
// txns found in the log become resolved (their revision and success known,
// return time still unknown); those not in the log never wrote anything and
// are dropped, as are pending and failed reads (no effect) and pending
// deletes of keys with no unexplained DELETE event.
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
	unexplainedDeletes := map[string]int{}
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
			unexplainedDeletes[e.Key]++
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
		if r.Input.Kind == OpDelete && r.Output.Unknown && unexplainedDeletes[r.Input.Key] == 0 {
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
			if kv.exists != out.Found || (kv.exists && (kv.value != out.Value || kv.modRev != out.ModRev)) {
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
		if recs[i].Acked() {
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
				out[n].Output.Value, out[n].Output.ModRev = prev.Input.Value, prev.Output.Rev
			}
		}
		desc := fmt.Sprintf("%v now returns %q@%d, overwritten by %v before the get started", g, prev.Input.Value, prev.Output.Rev, w)
		return out, desc, true
	}
	return nil, "", false
}
