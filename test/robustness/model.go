package robustness

import (
	"fmt"
	"hash/fnv"
	"sort"
	"strconv"

	"github.com/anishathalye/porcupine"
)

// OpKind names a client operation.
type OpKind string

// The operations the traffic issues; each touches exactly one key, which is
// what lets the checker partition the history by key.
const (
	OpGet    OpKind = "get"    // linearizable Range of one key
	OpPut    OpKind = "put"    // Put of a value no other operation writes
	OpDelete OpKind = "delete" // DeleteRange of one key
	OpTxn    OpKind = "txn"    // If(compare).Then(Put).Else(Get) on one key
)

// CmpTarget is what a transaction compares.
type CmpTarget string

// Compare targets.
const (
	CmpModRev CmpTarget = "mod"   // mod_revision(key) == CmpModRev (0 for a missing key)
	CmpValue  CmpTarget = "value" // value(key) == CmpValue (false for a missing key)
)

// Input is what a client asked for.
type Input struct {
	Kind  OpKind `json:"kind"`
	Key   string `json:"key"`
	Value string `json:"value,omitempty"` // put, and the put of a txn's success branch

	Cmp         CmpTarget `json:"cmp,omitempty"`
	CmpModRev   int64     `json:"cmp_mod_rev,omitempty"`
	CmpValueArg string    `json:"cmp_value,omitempty"`
}

// Output is what the client learnt. Unknown marks a pending operation: the
// request may or may not have taken effect, and nothing else in Output is
// meaningful, except for a pending put or txn resolved from the event log
// (Resolved), whose revision and success are then known.
type Output struct {
	Unknown  bool `json:"unknown,omitempty"`
	Resolved bool `json:"resolved,omitempty"`

	// Rev is the response header revision: for a write that changed the
	// store, the revision it created; otherwise the revision it read at.
	Rev int64 `json:"rev"`

	// Get, and a txn's failure branch.
	Found  bool   `json:"found,omitempty"`
	Value  string `json:"value,omitempty"`
	ModRev int64  `json:"mod_rev,omitempty"`

	Deleted   int64 `json:"deleted,omitempty"`   // delete
	Succeeded bool  `json:"succeeded,omitempty"` // txn
}

// keyState is the model's state of one key. Rev is a lower bound on the
// store revision that any later operation on the key must observe: the
// revision of the last write to the key the model knows of.
type keyState struct {
	Exists bool
	Value  string
	ModRev int64
	Rev    int64
}

func (s keyState) String() string {
	if !s.Exists {
		return fmt.Sprintf("<absent> (rev>=%d)", s.Rev)
	}
	return fmt.Sprintf("%q@%d (rev>=%d)", s.Value, s.ModRev, s.Rev)
}

// cmpHolds evaluates a txn's compare on s as etcd does: a mod_revision
// compare sees 0 for a missing key; a value compare on a missing key fails.
func cmpHolds(s keyState, in Input) bool {
	switch in.Cmp {
	case CmpModRev:
		return s.ModRev == in.CmpModRev
	case CmpValue:
		return s.Exists && s.Value == in.CmpValueArg
	}
	return false
}

// readMatches reports whether a read (get, or a failed txn's else-branch)
// returning out is possible in state s: same value and mod revision, at a
// revision no older than the last write to the key.
func readMatches(s keyState, out Output) bool {
	if out.Found != s.Exists || out.Rev < s.Rev {
		return false
	}
	return !out.Found || (out.Value == s.Value && out.ModRev == s.ModRev)
}

// stepKey returns every state the key can be in after the operation, or
// none if the operation's output is impossible in s.
func stepKey(s keyState, in Input, out Output) []keyState {
	if out.Unknown && !out.Resolved {
		switch in.Kind {
		case OpDelete:
			if !s.Exists {
				return []keyState{s}
			}
			// Happened or not; if it did, its revision is unknown, so the
			// lower bound stays where it was.
			return []keyState{s, {Rev: s.Rev}}
		default:
			// Pending gets have no effect. Pending puts and txns are either
			// resolved from the event log or dropped before checking
			// because the event log proves they never wrote anything.
			return []keyState{s}
		}
	}
	switch in.Kind {
	case OpGet:
		if !readMatches(s, out) {
			return nil
		}
		return []keyState{s}
	case OpPut:
		if out.Rev <= s.Rev {
			return nil
		}
		return []keyState{{Exists: true, Value: in.Value, ModRev: out.Rev, Rev: out.Rev}}
	case OpDelete:
		if s.Exists {
			if out.Deleted != 1 || out.Rev <= s.Rev {
				return nil
			}
			return []keyState{{Rev: out.Rev}}
		}
		if out.Deleted != 0 || out.Rev < s.Rev {
			return nil
		}
		return []keyState{s}
	case OpTxn:
		if cmpHolds(s, in) != out.Succeeded {
			return nil
		}
		if out.Succeeded {
			if out.Rev <= s.Rev {
				return nil
			}
			return []keyState{{Exists: true, Value: in.Value, ModRev: out.Rev, Rev: out.Rev}}
		}
		if out.Resolved || !readMatches(s, out) {
			return nil
		}
		return []keyState{s}
	}
	return nil
}

// describe renders an operation for the visualization and error messages.
func describe(in Input, out Output) string {
	var call string
	switch in.Kind {
	case OpGet:
		call = fmt.Sprintf("get(%s)", in.Key)
	case OpPut:
		call = fmt.Sprintf("put(%s, %s)", in.Key, in.Value)
	case OpDelete:
		call = fmt.Sprintf("delete(%s)", in.Key)
	case OpTxn:
		cmp := "mod_rev==" + strconv.FormatInt(in.CmpModRev, 10)
		if in.Cmp == CmpValue {
			cmp = "value==" + strconv.Quote(in.CmpValueArg)
		}
		call = fmt.Sprintf("txn(if %s(%s) put %s else get)", in.Key, cmp, in.Value)
	default:
		call = fmt.Sprintf("%s(%s)", in.Kind, in.Key)
	}
	if out.Unknown && !out.Resolved {
		return call + " -> ?"
	}
	var res string
	switch in.Kind {
	case OpGet:
		res = readString(out)
	case OpPut:
		res = "ok"
	case OpDelete:
		res = "deleted=" + strconv.FormatInt(out.Deleted, 10)
	case OpTxn:
		if out.Succeeded {
			res = "succeeded"
		} else {
			res = "failed, " + readString(out)
		}
	}
	if out.Resolved {
		res += " (resolved from the event log)"
	}
	return fmt.Sprintf("%s -> %s @rev %d", call, res, out.Rev)
}

func readString(out Output) string {
	if !out.Found {
		return "<absent>"
	}
	return fmt.Sprintf("%q@%d", out.Value, out.ModRev)
}

// KVModel is the porcupine model of the store: per key, its value and mod
// revision, and a lower bound on the revision. Puts and successful txns must
// create a revision above every earlier write to the key, deletes report
// whether the key existed, and reads return the key's value and mod revision
// at a revision not older than the key's last write. The history is
// partitioned by key; cross-key revision order is checked separately
// (CheckRevisions).
func KVModel() porcupine.Model {
	nm := porcupine.NondeterministicModel{
		Partition: partitionByKey,
		Init:      func() []interface{} { return []interface{}{keyState{}} },
		Step: func(state, input, output interface{}) []interface{} {
			next := stepKey(state.(keyState), input.(Input), output.(Output))
			out := make([]interface{}, len(next))
			for i, s := range next {
				out[i] = s
			}
			return out
		},
		Hash: func(state interface{}) uint64 {
			s := state.(keyState)
			h := fnv.New64a()
			fmt.Fprintf(h, "%t|%s|%d|%d", s.Exists, s.Value, s.ModRev, s.Rev)
			return h.Sum64()
		},
		DescribeOperation: func(input, output interface{}) string {
			return describe(input.(Input), output.(Output))
		},
		DescribeState: func(state interface{}) string { return state.(keyState).String() },
		DescribeOperationMetadata: func(info interface{}) string {
			if info == nil {
				return ""
			}
			return fmt.Sprint(info)
		},
	}
	return nm.ToModel()
}

// partitionByKey splits the history into one partition per key, in key order
// so that the visualization is stable.
func partitionByKey(history []porcupine.Operation) [][]porcupine.Operation {
	byKey := map[string][]porcupine.Operation{}
	for _, op := range history {
		k := op.Input.(Input).Key
		byKey[k] = append(byKey[k], op)
	}
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([][]porcupine.Operation, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, byKey[k])
	}
	return parts
}
