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
	a := &Artifacts{Raw: recs, Resolved: recs, Info: &info, Summary: "self-test"}
	dir, err := a.Save()
	if dir != "" {
		defer os.RemoveAll(dir)
	}
	if err != nil {
		t.Fatalf("save: %v", err)
	}
	for _, f := range []string{"history.json", "history-resolved.json", "events.json", "watch-streams.json", "summary.txt", "linearization.html"} {
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
