package robustness

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// The self-checks: hand-made histories with known verdicts, proving the
// checkers catch the bugs they are there for (and accept correct runs).

func rec(client int, call, ret int64, in Input, out Output) Record {
	return Record{Client: client, Member: "m0", Input: in, Output: out, Call: call, Return: ret}
}

func pending(client int, call int64, in Input) Record {
	return Record{Client: client, Member: "m0", Input: in, Output: Output{Unknown: true}, Call: call, Err: "context deadline exceeded"}
}

func put(k, v string) Input { return Input{Kind: OpPut, Key: k, Value: v} }
func get(k string) Input    { return Input{Kind: OpGet, Key: k} }
func del(k string) Input    { return Input{Kind: OpDelete, Key: k} }
func txnMod(k string, mod int64, v string) Input {
	return Input{Kind: OpTxn, Key: k, Value: v, Cmp: CmpModRev, CmpModRev: mod}
}
func txnVal(k, want, v string) Input {
	return Input{Kind: OpTxn, Key: k, Value: v, Cmp: CmpValue, CmpValueArg: want}
}

func wrote(rev int64) Output { return Output{Rev: rev} }
func read(rev int64, v string, mod int64) Output {
	return Output{Rev: rev, Found: true, Value: v, ModRev: mod}
}
func absent(rev int64) Output { return Output{Rev: rev} }

func checkVerdict(t *testing.T, name string, recs []Record, want porcupine.CheckResult) {
	t.Helper()
	res, info := CheckLinearizable(recs, 10*time.Second)
	if res != want {
		t.Errorf("%s: porcupine says %s, want %s", name, res, want)
	}
	// The visualization must render for both verdicts: a failed run relies on it.
	if err := porcupine.VisualizePath(KVModel(), info, filepath.Join(t.TempDir(), "viz.html")); err != nil {
		t.Errorf("%s: visualize: %v", name, err)
	}
}

func TestModelAcceptsLinearizableHistories(t *testing.T) {
	checkVerdict(t, "sequential", []Record{
		rec(0, 0, 10, put("a", "v1"), wrote(2)),
		rec(0, 20, 30, get("a"), read(2, "v1", 2)),
		rec(0, 40, 50, txnMod("a", 2, "v2"), Output{Rev: 3, Succeeded: true}),
		rec(0, 60, 70, txnVal("a", "v1", "v3"), Output{Rev: 3, Found: true, Value: "v2", ModRev: 3}),
		rec(0, 80, 90, del("a"), Output{Rev: 4, Deleted: 1}),
		rec(0, 100, 110, del("a"), Output{Rev: 4}),
		rec(0, 120, 130, txnMod("a", 0, "v4"), Output{Rev: 5, Succeeded: true}),
		rec(0, 140, 150, get("b"), absent(5)),
	}, porcupine.Ok)

	// Concurrent writes may be linearized in either order, and a read
	// overlapping both may see either.
	checkVerdict(t, "concurrent", []Record{
		rec(0, 0, 100, put("a", "x"), wrote(3)),
		rec(1, 10, 90, put("a", "y"), wrote(2)),
		rec(2, 20, 30, get("a"), read(2, "y", 2)),
		rec(3, 110, 120, get("a"), read(3, "x", 3)),
	}, porcupine.Ok)

	// A pending delete may take effect at any time after its call.
	checkVerdict(t, "pending delete", []Record{
		rec(0, 0, 10, put("a", "x"), wrote(2)),
		pending(1, 15, del("a")),
		rec(2, 20, 30, get("a"), read(2, "x", 2)),
		rec(2, 40, 50, get("a"), absent(3)),
	}, porcupine.Ok)

	// A resolved pending put: revision known from the event log.
	checkVerdict(t, "resolved put", []Record{
		{Client: 1, Input: put("a", "x"), Output: Output{Unknown: true, Resolved: true, Rev: 2}, Call: 0},
		rec(0, 20, 30, get("a"), read(2, "x", 2)),
	}, porcupine.Ok)
}

func TestModelRejectsNonLinearizableHistories(t *testing.T) {
	cases := map[string][]Record{
		// The write was acknowledged before the read started.
		"stale read": {
			rec(0, 0, 10, put("a", "x"), wrote(2)),
			rec(1, 20, 30, get("a"), absent(2)),
		},
		// Reads went back in time.
		"read goes back": {
			rec(0, 0, 10, put("a", "x"), wrote(2)),
			rec(0, 11, 20, put("a", "y"), wrote(3)),
			rec(1, 0, 100, get("a"), read(3, "y", 3)),
			rec(2, 110, 120, get("a"), read(2, "x", 2)),
		},
		// Sequential writes to one key must get increasing revisions.
		"revision goes back": {
			rec(0, 0, 10, put("a", "x"), wrote(3)),
			rec(0, 20, 30, put("a", "y"), wrote(2)),
		},
		// A read can only see a value someone wrote.
		"invented value": {
			rec(0, 0, 10, put("a", "x"), wrote(2)),
			rec(0, 20, 30, get("a"), read(2, "z", 2)),
		},
		// A read at a revision older than the last write it must see.
		"read revision too old": {
			rec(0, 0, 10, put("a", "x"), wrote(5)),
			rec(0, 20, 30, get("a"), read(4, "x", 5)),
		},
		"txn failed although the compare held": {
			rec(0, 0, 10, put("a", "x"), wrote(2)),
			rec(0, 20, 30, txnMod("a", 2, "y"), Output{Rev: 2, Found: true, Value: "x", ModRev: 2}),
		},
		"txn succeeded although the compare failed": {
			rec(0, 0, 10, put("a", "x"), wrote(2)),
			rec(0, 20, 30, txnVal("a", "other", "y"), Output{Rev: 3, Succeeded: true}),
		},
		"value compare on a missing key succeeded": {
			rec(0, 20, 30, txnVal("a", "", "y"), Output{Rev: 2, Succeeded: true}),
		},
		"delete of a missing key reported deleted": {
			rec(0, 0, 10, del("a"), Output{Rev: 2, Deleted: 1}),
		},
		"acknowledged delete did not delete": {
			rec(0, 0, 10, put("a", "x"), wrote(2)),
			rec(0, 20, 30, del("a"), Output{Rev: 3, Deleted: 1}),
			rec(0, 40, 50, get("a"), read(3, "x", 2)),
		},
		// A pending delete may happen, but cannot be undone.
		"deleted value comes back": {
			rec(0, 0, 10, put("a", "x"), wrote(2)),
			pending(1, 15, del("a")),
			rec(2, 20, 30, get("a"), absent(3)),
			rec(2, 40, 50, get("a"), read(3, "x", 2)),
		},
	}
	for name, recs := range cases {
		checkVerdict(t, name, recs, porcupine.Illegal)
	}
}

// TestPipelineCatchesBugs runs the whole post-run pipeline on histories of
// buggy servers.
func TestPipelineCatchesBugs(t *testing.T) {
	ev := func(rev int64, k, v string, create, version int64, prev *Event) Event {
		e := Event{Rev: rev, Type: EventPut, Key: k, Value: v, CreateRev: create, Version: version}
		if prev != nil {
			e.PrevFound, e.PrevValue, e.PrevModRev = true, prev.Value, prev.Rev
		}
		return e
	}
	e2 := ev(2, "a", "x", 2, 1, nil)
	e3 := ev(3, "b", "y", 3, 1, nil)
	e4 := ev(4, "a", "z", 2, 2, &e2)
	events := []Event{e2, e3, e4}
	if p := CheckEventLog(events, 4); !p.Empty() {
		t.Fatalf("good event log rejected:%s", p.String())
	}
	good := []Record{
		rec(0, 0, 10, put("a", "x"), wrote(2)),
		rec(1, 5, 15, put("b", "y"), wrote(3)),
		pending(2, 12, put("a", "z")),
		pending(2, 13, put("a", "never")),
		rec(0, 20, 30, get("a"), read(4, "z", 4)),
		rec(1, 31, 40, get("b"), read(4, "y", 3)),
	}
	resolved, p := ResolveHistory(good, events)
	if !p.Empty() {
		t.Fatalf("good history rejected:%s", p.String())
	}
	if len(resolved) != 5 || !resolved[2].Output.Resolved || resolved[2].Output.Rev != 4 {
		t.Fatalf("pending put not resolved from the event log, or unwritten one kept: %+v", resolved)
	}
	for name, p := range map[string]Problems{"reads": CheckReads(resolved, events, 4), "revisions": CheckRevisions(resolved)} {
		if !p.Empty() {
			t.Errorf("good history: %s check failed:%s", name, p.String())
		}
	}
	if res, _ := CheckLinearizable(resolved, 10*time.Second); res != porcupine.Ok {
		t.Errorf("good history: porcupine says %s", res)
	}

	expect := func(name string, p Problems, want string) {
		t.Helper()
		if p.Empty() {
			t.Errorf("%s: not caught", name)
		} else if !strings.Contains(p.String(), want) {
			t.Errorf("%s: caught, but want a problem mentioning %q:%s", name, want, p.String())
		}
	}
	_, p = ResolveHistory([]Record{rec(0, 0, 10, put("a", "x"), wrote(2))}, nil)
	expect("lost acknowledged write", p, "lost write")
	_, p = ResolveHistory([]Record{rec(0, 0, 10, put("a", "x"), wrote(3))}, []Event{e2})
	expect("write at another revision", p, "the event log has")
	_, p = ResolveHistory(nil, []Event{e2})
	expect("phantom write", p, "phantom")
	_, p = ResolveHistory([]Record{rec(0, 0, 10, put("a", "x"), wrote(2))}, []Event{e2, ev(3, "a", "x", 2, 2, &e2)})
	expect("write applied twice", p, "written twice")
	_, p = ResolveHistory([]Record{rec(0, 0, 10, put("a", "x"), wrote(2))}, []Event{e2, {Rev: 3, Type: EventDelete, Key: "a", PrevFound: true, PrevValue: "x", PrevModRev: 2}})
	expect("unexplained delete", p, "no client delete accounts for")

	expect("stale read at a revision", CheckReads([]Record{rec(0, 20, 30, get("a"), read(4, "x", 2))}, events, 4), "stale or invented")
	expect("revision from the future", CheckReads([]Record{rec(0, 20, 30, get("a"), read(9, "z", 4))}, events, 4), "beyond the final")
	// Each key alone is linearizable; across keys, revisions go back.
	expect("revisions against real time", CheckRevisions([]Record{
		rec(0, 0, 10, put("b", "y"), wrote(3)),
		rec(1, 20, 30, get("a"), read(2, "x", 2)),
	}), "revisions go back")

	expect("event log gap", CheckEventLog([]Event{e2, e4}, 4), "no gaps")
	expect("event log wrong prev_kv", CheckEventLog([]Event{e2, e3, ev(4, "a", "z", 2, 2, nil)}, 4), "before it the key was")
	expect("event log too short", CheckEventLog([]Event{e2, e3}, 4), "store is at revision 4")
}

func TestWatchStreamChecker(t *testing.T) {
	final := []Event{
		{Rev: 2, Type: EventPut, Key: "a", Value: "x", CreateRev: 2, Version: 1},
		{Rev: 3, Type: EventPut, Key: "b", Value: "y", CreateRev: 3, Version: 1},
		{Rev: 4, Type: EventDelete, Key: "a", PrevFound: true, PrevValue: "x", PrevModRev: 2},
	}
	if p := CheckWatchStream(final, final); !p.Empty() {
		t.Fatalf("complete stream rejected:%s", p.String())
	}
	noPrev := final[2]
	noPrev.PrevFound = false
	cases := map[string]struct {
		got  []Event
		want string
	}{
		"gap":              {[]Event{final[0], final[2]}, "gap"},
		"gap at the start": {[]Event{final[1], final[2]}, "gap"},
		"duplicate":        {[]Event{final[0], final[1], final[1], final[2]}, "duplicate"},
		"out of order":     {[]Event{final[0], final[2], final[1]}, "out of order"},
		"missing prev_kv":  {[]Event{final[0], final[1], noPrev}, "the event log has"},
		"stops early":      {[]Event{final[0]}, "missing at the end"},
		"invented event":   {[]Event{final[0], {Rev: 9, Type: EventPut, Key: "c"}}, "not in the event log"},
	}
	for name, c := range cases {
		p := CheckWatchStream(c.got, final)
		if p.Empty() || !strings.Contains(p.String(), c.want) {
			t.Errorf("%s: want a problem mentioning %q, got:%s", name, c.want, p.String())
		}
	}
}

func TestArtifactsSave(t *testing.T) {
	recs := []Record{
		rec(0, 0, 10, put("a", "x"), wrote(2)),
		rec(1, 20, 30, get("a"), absent(2)),
	}
	res, info := CheckLinearizable(recs, 10*time.Second)
	if res != porcupine.Illegal {
		t.Fatalf("porcupine says %s, want Illegal", res)
	}
	a := &Artifacts{Raw: recs, Resolved: recs, Info: &info, Summary: "self-test",
		Nemesis: []Action{{Fault: FaultIsolate, Member: "m0", Leader: true, Detail: "from m1,m2 (blackhole)", At: time.Second}}}
	dir, err := a.Save()
	if dir != "" {
		defer os.RemoveAll(dir)
	}
	if err != nil {
		t.Fatalf("save: %v", err)
	}
	for _, f := range []string{"history.json", "history-resolved.json", "events.json", "watch-streams.json", "nemesis.json", "summary.txt", "linearization.html"} {
		if fi, err := os.Stat(filepath.Join(dir, f)); err != nil || fi.Size() == 0 {
			t.Errorf("%s missing or empty in %s: %v", f, dir, err)
		}
	}
}

func TestStaleReadMutation(t *testing.T) {
	recs := []Record{
		rec(0, 0, 10, put("a", "x"), wrote(2)),
		rec(0, 20, 30, put("a", "y"), wrote(3)),
		rec(1, 40, 50, get("b"), absent(3)),
		rec(1, 60, 70, get("a"), read(3, "y", 3)),
	}
	checkVerdict(t, "original", recs, porcupine.Ok)
	bad, desc, ok := StaleReadMutation(recs)
	if !ok {
		t.Fatal("no mutation found")
	}
	if len(bad) != 3 || bad[2].Output.Value != "x" || bad[2].Output.ModRev != 2 {
		t.Fatalf("mutation %s gave %+v", desc, bad)
	}
	checkVerdict(t, "mutated", bad, porcupine.Illegal)
}

func grant(k string, ttl int64) Input { return Input{Kind: OpGrant, Key: k, TTL: ttl} }
func leasePut(k, v string, lease int64) Input {
	return Input{Kind: OpPut, Key: k, Value: v, Lease: lease}
}
func keepAlive(k string, lease int64) Input { return Input{Kind: OpKeepAlive, Key: k, Lease: lease} }
func revoke(k string, lease int64) Input    { return Input{Kind: OpRevoke, Key: k, Lease: lease} }
func granted(rev, lease, ttl int64) Output  { return Output{Rev: rev, Lease: lease, TTL: ttl} }
func readLeased(rev int64, v string, mod, lease int64) Output {
	return Output{Rev: rev, Found: true, Value: v, ModRev: mod, Lease: lease}
}
func leaseEnd(client int, call int64, k string, lease, rev int64) Record {
	return Record{Client: client, Member: "lease", Input: Input{Kind: OpLeaseEnd, Key: k, Lease: lease},
		Output: Output{Unknown: true, Resolved: true, Rev: rev, Deleted: 1}, Call: call}
}

func TestModelLeases(t *testing.T) {
	const L = 0x77
	accept := map[string][]Record{
		// A revoke deletes the key attached to its lease, at a new revision.
		"revoke deletes": {
			rec(0, 0, 10, grant("a", 2), granted(1, L, 2)),
			rec(0, 20, 30, leasePut("a", "x", L), wrote(2)),
			rec(0, 40, 50, get("a"), readLeased(2, "x", 2, L)),
			rec(0, 60, 70, keepAlive("a", L), Output{TTL: 2}),
			rec(0, 80, 90, revoke("a", L), wrote(3)),
			rec(0, 100, 110, get("a"), absent(3)),
			rec(0, 120, 130, revoke("a", L), Output{NotFound: true}),
		},
		// A put without the lease detached the key: the revoke leaves it.
		"revoke after overwrite": {
			rec(0, 0, 10, grant("a", 2), granted(1, L, 2)),
			rec(0, 20, 30, leasePut("a", "x", L), wrote(2)),
			rec(0, 40, 50, put("a", "y"), wrote(3)),
			rec(0, 60, 70, revoke("a", L), wrote(3)),
			rec(0, 80, 90, get("a"), read(3, "y", 3)),
		},
		// The lease ended (expired) at revision 3, found in the event
		// log; the end may be placed anywhere after the grant's call.
		"expiry": {
			rec(0, 0, 10, grant("a", 2), granted(1, L, 2)),
			leaseEnd(9, 0, "a", L, 3),
			rec(0, 20, 30, leasePut("a", "x", L), wrote(2)),
			rec(1, 40, 50, get("a"), readLeased(2, "x", 2, L)),
			rec(1, 2000, 2010, keepAlive("a", L), Output{NotFound: true}),
			rec(1, 2020, 2030, get("a"), absent(3)),
			rec(1, 2040, 2050, revoke("a", L), Output{NotFound: true}),
		},
		// A revoke concurrent with a read: the read may see either.
		"concurrent revoke": {
			rec(0, 0, 10, grant("a", 2), granted(1, L, 2)),
			rec(0, 20, 30, leasePut("a", "x", L), wrote(2)),
			rec(0, 40, 100, revoke("a", L), wrote(3)),
			rec(1, 50, 60, get("a"), readLeased(2, "x", 2, L)),
			rec(2, 50, 90, get("a"), absent(3)),
		},
	}
	for name, recs := range accept {
		checkVerdict(t, name, recs, porcupine.Ok)
	}
	reject := map[string][]Record{
		// The case the lease model exists for: the revoke was
		// acknowledged, yet a read that started afterwards sees the key.
		"revoked lease's key read afterwards": {
			rec(0, 0, 10, grant("a", 2), granted(1, L, 2)),
			rec(0, 20, 30, leasePut("a", "x", L), wrote(2)),
			rec(0, 40, 50, revoke("a", L), wrote(3)),
			rec(1, 60, 70, get("a"), readLeased(3, "x", 2, L)),
		},
		// Same, with the read at the revision the revoke returned.
		"revoked lease's key read at the revoke's revision": {
			rec(0, 0, 10, grant("a", 2), granted(1, L, 2)),
			rec(0, 20, 30, leasePut("a", "x", L), wrote(2)),
			rec(0, 40, 50, revoke("a", L), wrote(2)),
			rec(1, 60, 70, get("a"), readLeased(2, "x", 2, L)),
		},
		// "Lease not found" while the key is still attached and nothing
		// ended the lease.
		"lease gone but its key stays": {
			rec(0, 0, 10, grant("a", 2), granted(1, L, 2)),
			rec(0, 20, 30, leasePut("a", "x", L), wrote(2)),
			rec(0, 40, 50, revoke("a", L), Output{NotFound: true}),
		},
		// The event log shows the lease deleting a key that a later put
		// had detached from it.
		"lease deletes a detached key": {
			rec(0, 0, 10, grant("a", 2), granted(1, L, 2)),
			rec(0, 20, 30, leasePut("a", "x", L), wrote(2)),
			rec(0, 40, 50, put("a", "y"), wrote(3)),
			leaseEnd(9, 0, "a", L, 4),
		},
		// After the lease's end, the key cannot come back.
		"key back after expiry": {
			rec(0, 0, 10, grant("a", 2), granted(1, L, 2)),
			rec(0, 20, 30, leasePut("a", "x", L), wrote(2)),
			leaseEnd(9, 0, "a", L, 3),
			rec(1, 40, 50, get("a"), absent(3)),
			rec(1, 60, 70, get("a"), readLeased(3, "x", 2, L)),
		},
		// A read must report the key's lease.
		"read loses the lease": {
			rec(0, 0, 10, grant("a", 2), granted(1, L, 2)),
			rec(0, 20, 30, leasePut("a", "x", L), wrote(2)),
			rec(1, 40, 50, get("a"), read(2, "x", 2)),
		},
		"grant reads an old revision": {
			rec(0, 0, 10, put("a", "y"), wrote(5)),
			rec(0, 20, 30, grant("a", 2), granted(4, L, 2)),
		},
	}
	for name, recs := range reject {
		checkVerdict(t, name, recs, porcupine.Illegal)
	}
}

func TestPipelineLeases(t *testing.T) {
	const L, M = 0x77, 0x88
	ePut := Event{Rev: 2, Type: EventPut, Key: "a", Value: "x", CreateRev: 2, Version: 1, Lease: L}
	eDel := Event{Rev: 3, Type: EventDelete, Key: "a", PrevFound: true, PrevValue: "x", PrevModRev: 2, PrevLease: L}
	events := []Event{ePut, eDel}
	if p := CheckEventLog(events, 3); !p.Empty() {
		t.Fatalf("good event log rejected:%s", p.String())
	}
	bad := eDel
	bad.PrevLease = 0
	if p := CheckEventLog([]Event{ePut, bad}, 3); p.Empty() {
		t.Errorf("event log with a wrong prev lease accepted")
	}

	// The lease expired: its DELETE becomes a resolved lease-end, and the
	// pending revoke and keep-alive are dropped.
	expired := []Record{
		rec(0, 0, 10, grant("a", 2), granted(1, L, 2)),
		rec(0, 20, 30, leasePut("a", "x", L), wrote(2)),
		pending(0, 40, keepAlive("a", L)),
		pending(1, 3000, revoke("a", L)),
		rec(2, 3100, 3200, get("a"), absent(3)),
	}
	resolved, p := ResolveHistory(expired, events)
	if !p.Empty() {
		t.Fatalf("expiry history rejected:%s", p.String())
	}
	var ends []Record
	for _, r := range resolved {
		if r.Input.Kind == OpLeaseEnd {
			ends = append(ends, r)
		}
		if r.Input.Kind == OpKeepAlive || r.Input.Kind == OpRevoke {
			t.Errorf("pending %v kept", &r)
		}
	}
	if len(ends) != 1 || ends[0].Output.Rev != 3 || ends[0].Input.Lease != L || ends[0].Call != 0 {
		t.Fatalf("want one lease-end of %x at revision 3 from the grant's call, got %+v", L, ends)
	}
	if res, _ := CheckLinearizable(resolved, 10*time.Second); res != porcupine.Ok {
		t.Errorf("expiry history: porcupine says %s", res)
	}
	if p := CheckLeases(expired, resolved); !p.Empty() {
		t.Errorf("expiry history: lease check failed:%s", p.String())
	}

	// The revoke's answer explains the DELETE: no lease-end.
	revoked := []Record{
		rec(0, 0, 10, grant("a", 2), granted(1, L, 2)),
		rec(0, 20, 30, leasePut("a", "x", L), wrote(2)),
		rec(0, 40, 50, revoke("a", L), wrote(3)),
		rec(1, 60, 70, get("a"), absent(3)),
	}
	resolved, p = ResolveHistory(revoked, events)
	if !p.Empty() {
		t.Fatalf("revoke history rejected:%s", p.String())
	}
	for _, r := range resolved {
		if r.Input.Kind == OpLeaseEnd {
			t.Errorf("revoked lease got a lease-end: %v", &r)
		}
	}
	if res, _ := CheckLinearizable(resolved, 10*time.Second); res != porcupine.Ok {
		t.Errorf("revoke history: porcupine says %s", res)
	}
	// A server that acknowledged the revoke but deleted the key only
	// later (say, when the lease expired): the model rejects it.
	late := []Event{ePut, {Rev: 3, Type: EventPut, Key: "b", Value: "y", CreateRev: 3, Version: 1}, eDel}
	late[2].Rev = 4
	lateRecs := append(append([]Record(nil), revoked[:3]...), rec(2, 5, 15, put("b", "y"), wrote(3)))
	lateRecs[2].Output.Rev = 3 // the revoke answered at revision 3 but deleted nothing
	resolved, p = ResolveHistory(lateRecs, late)
	if !p.Empty() {
		t.Fatalf("late-delete history: resolve problems:%s", p.String())
	}
	if res, _ := CheckLinearizable(resolved, 10*time.Second); res != porcupine.Illegal {
		t.Errorf("revoke that did not delete its attached key: porcupine says %s, want Illegal", res)
	}

	expect := func(name string, p Problems, want string) {
		t.Helper()
		if p.Empty() {
			t.Errorf("%s: not caught", name)
		} else if !strings.Contains(p.String(), want) {
			t.Errorf("%s: caught, but want a problem mentioning %q:%s", name, want, p.String())
		}
	}
	// A put acknowledged with a lease, logged without it.
	noLease := ePut
	noLease.Lease = 0
	_, p = ResolveHistory(revoked[:2], []Event{noLease})
	expect("put lost its lease", p, "with lease 0 instead of 77")
	// A key deleted by a lease no grant returned.
	eOther := eDel
	eOther.PrevLease = M
	_, p = ResolveHistory(revoked[:2], []Event{ePut, eOther})
	expect("unknown lease", p, "no acknowledged grant")
	// Renewed after the revoke returned.
	renewed := append(append([]Record(nil), revoked...), rec(3, 80, 90, keepAlive("a", L), Output{TTL: 2}))
	expect("renewal after revoke", CheckLeases(renewed, renewed), "renewed after")
	// Expired early: TTL 2s from the grant's call at 0, but a read that
	// returned at 1s saw the delete's revision.
	early := []Record{
		rec(0, 0, 10, grant("a", 2), granted(1, L, 2)),
		rec(0, 20, 30, leasePut("a", "x", L), wrote(2)),
		rec(2, 900_000_000, 1_000_000_000, get("a"), absent(3)),
	}
	resolved, p = ResolveHistory(early, events)
	if !p.Empty() {
		t.Fatalf("early-expiry history: resolve problems:%s", p.String())
	}
	expect("early expiry", CheckLeases(early, resolved), "expired early")
	// Unless a pending delete of the key may have deleted it.
	withDelete := append(append([]Record(nil), early...), pending(3, 500_000_000, del("a")))
	resolved, _ = ResolveHistory(withDelete, events)
	if p := CheckLeases(withDelete, resolved); !p.Empty() {
		t.Errorf("delete blamed on an early expiry although a pending delete may have done it:%s", p.String())
	}
	// A renewal pushes the earliest end: seen at 2.5s after a renewal at
	// 1s with TTL 2 is early too; at 3.5s it is not.
	early[2].Call, early[2].Return = 2_400_000_000, 2_500_000_000
	renewal := rec(0, 1_000_000_000, 1_000_000_010, keepAlive("a", L), Output{TTL: 2})
	withRenewal := append(append([]Record(nil), early...), renewal)
	resolved, _ = ResolveHistory(withRenewal, events)
	expect("early expiry after renewal", CheckLeases(withRenewal, resolved), "expired early")
	withRenewal[2].Call, withRenewal[2].Return = 3_400_000_000, 3_500_000_000
	resolved, _ = ResolveHistory(withRenewal, events)
	if p := CheckLeases(withRenewal, resolved); !p.Empty() {
		t.Errorf("timely expiry rejected:%s", p.String())
	}
}

func TestRevokedReadMutation(t *testing.T) {
	const L = 0x77
	recs := []Record{
		rec(0, 0, 10, grant("a", 2), granted(1, L, 2)),
		rec(0, 20, 30, leasePut("a", "x", L), wrote(2)),
		rec(0, 40, 50, revoke("a", L), wrote(3)),
		rec(1, 60, 70, get("a"), absent(3)),
		rec(1, 80, 90, get("b"), absent(3)),
	}
	events := []Event{
		{Rev: 2, Type: EventPut, Key: "a", Value: "x", CreateRev: 2, Version: 1, Lease: L},
		{Rev: 3, Type: EventDelete, Key: "a", PrevFound: true, PrevValue: "x", PrevModRev: 2, PrevLease: L},
	}
	checkVerdict(t, "original", recs, porcupine.Ok)
	bad, desc, ok := RevokedReadMutation(recs, events)
	if !ok {
		t.Fatal("no mutation found")
	}
	if len(bad) != 4 || !bad[3].Output.Found || bad[3].Output.Value != "x" || bad[3].Output.Lease != L {
		t.Fatalf("mutation %s gave %+v", desc, bad)
	}
	checkVerdict(t, "mutated", bad, porcupine.Illegal)
	// A revoke that deleted nothing offers no mutation.
	if _, _, ok := RevokedReadMutation(recs, events[:1]); ok {
		t.Error("mutation found though the revoke deleted nothing")
	}
}
