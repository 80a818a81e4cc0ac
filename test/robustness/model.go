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
// what lets the checker partition the history by key. A lease is granted
// for one key and attached to that key only (by one put), so its grant,
// keep-alive, revoke and end belong to that key too.
const (
	OpGet    OpKind = "get"    // linearizable Range of one key
	OpPut    OpKind = "put"    // Put of a value no other operation writes, with a lease or not
	OpDelete OpKind = "delete" // DeleteRange of one key
	OpTxn    OpKind = "txn"    // If(compare).Then(Put).Else(Get) on one key

	OpGrant     OpKind = "grant"     // LeaseGrant of a lease meant for Key
	OpKeepAlive OpKind = "keepalive" // one LeaseKeepAlive of Lease
	OpRevoke    OpKind = "revoke"    // LeaseRevoke of Lease, attached to Key at most
	// OpLeaseEnd is not issued by a client: the checker adds one for each
	// lease whose key the event log shows deleted by the lease (expired,
	// or revoked by a request whose answer was lost). It is pending from
	// the grant's call on, and resolved at the revision of that delete.
	OpLeaseEnd OpKind = "lease-end"
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

	Lease int64 `json:"lease,omitempty"` // put, keepalive, revoke, lease-end
	TTL   int64 `json:"ttl,omitempty"`   // grant: seconds asked for
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
	// Lease is the lease the read key is attached to; for a grant, the
	// lease granted.
	Lease int64 `json:"lease,omitempty"`

	Deleted   int64 `json:"deleted,omitempty"`   // delete; 1 for a resolved lease-end
	Succeeded bool  `json:"succeeded,omitempty"` // txn

	TTL int64 `json:"ttl,omitempty"` // grant, keepalive: the TTL the server gave
	// NotFound: the server said the lease does not exist (revoke), or that
	// it is gone or going (keepalive answered with TTL 0). Rev is then 0.
	NotFound bool `json:"not_found,omitempty"`
}

// keyState is the model's state of one key. Rev is a lower bound on the
// store revision that any later operation on the key must observe: the
// revision of the last write to the key the model knows of. Lease is the
// lease the key is attached to (0: none).
type keyState struct {
	Exists bool
	Value  string
	ModRev int64
	Rev    int64
	Lease  int64
}

func (s keyState) String() string {
	if !s.Exists {
		return fmt.Sprintf("<absent> (rev>=%d)", s.Rev)
	}
	if s.Lease != 0 {
		return fmt.Sprintf("%q@%d lease %x (rev>=%d)", s.Value, s.ModRev, s.Lease, s.Rev)
	}
	return fmt.Sprintf("%q@%d (rev>=%d)", s.Value, s.ModRev, s.Rev)
}

// attached reports whether the key exists and belongs to lease id: then a
// revoke or expiry of that lease deletes it.
func (s keyState) attached(id int64) bool { return s.Exists && id != 0 && s.Lease == id }

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
	return !out.Found || (out.Value == s.Value && out.ModRev == s.ModRev && out.Lease == s.Lease)
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
		case OpRevoke, OpLeaseEnd:
			// Normally dropped or resolved before checking; if not, the
			// lease may end at any time, deleting the key if it is still
			// attached.
			if !s.attached(in.Lease) {
				return []keyState{s}
			}
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
		return []keyState{{Exists: true, Value: in.Value, ModRev: out.Rev, Rev: out.Rev, Lease: in.Lease}}
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
	case OpGrant:
		// Granting changes no key; its revision is read at apply time.
		if out.Rev < s.Rev {
			return nil
		}
		return []keyState{s}
	case OpKeepAlive:
		// A renewal changes no key, and its TTL 0 ("gone or going") does
		// not say whether the key is gone yet: no constraint.
		return []keyState{s}
	case OpRevoke:
		if out.NotFound {
			// The lease was already gone, so were its keys.
			if s.attached(in.Lease) {
				return nil
			}
			return []keyState{s}
		}
		if s.attached(in.Lease) {
			if out.Rev <= s.Rev {
				return nil
			}
			return []keyState{{Rev: out.Rev}}
		}
		if out.Rev < s.Rev {
			return nil
		}
		return []keyState{s}
	case OpLeaseEnd:
		// Resolved from the event log: the lease deleted the key at out.Rev.
		if !s.attached(in.Lease) || out.Rev <= s.Rev {
			return nil
		}
		return []keyState{{Rev: out.Rev}}
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
		if in.Lease != 0 {
			call = fmt.Sprintf("put(%s, %s, lease %x)", in.Key, in.Value, in.Lease)
		}
	case OpGrant:
		call = fmt.Sprintf("grant(ttl %d, for %s)", in.TTL, in.Key)
	case OpKeepAlive:
		call = fmt.Sprintf("keepalive(lease %x of %s)", in.Lease, in.Key)
	case OpRevoke:
		call = fmt.Sprintf("revoke(lease %x of %s)", in.Lease, in.Key)
	case OpLeaseEnd:
		call = fmt.Sprintf("lease-end(lease %x of %s)", in.Lease, in.Key)
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
	case OpGrant:
		res = fmt.Sprintf("lease %x ttl %d", out.Lease, out.TTL)
	case OpKeepAlive:
		res = fmt.Sprintf("ttl %d", out.TTL)
	case OpRevoke:
		res = "ok"
	case OpLeaseEnd:
		res = "deleted the key"
	}
	if out.NotFound {
		res = "lease not found"
		if in.Kind == OpKeepAlive {
			res = "ttl 0 (lease gone)"
		}
		return fmt.Sprintf("%s -> %s", call, res)
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
	if out.Lease != 0 {
		return fmt.Sprintf("%q@%d lease %x", out.Value, out.ModRev, out.Lease)
	}
	return fmt.Sprintf("%q@%d", out.Value, out.ModRev)
}

// KVModel is the porcupine model of the store: per key, its value, mod
// revision and lease, and a lower bound on the revision. Puts and
// successful txns must create a revision above every earlier write to the
// key (a txn's put, without a lease, detaches the key from its lease),
// deletes report whether the key existed, and reads return the key's value,
// mod revision and lease at a revision not older than the key's last write.
// A revoke deletes the key if it is attached to the revoked lease (and
// then creates a revision), and a revoke answered "lease not found" proves
// the key no longer attached; a lease's end (expiry) deletes its key at
// the revision the event log shows. The history is
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
			fmt.Fprintf(h, "%t|%s|%d|%d|%d", s.Exists, s.Value, s.ModRev, s.Rev, s.Lease)
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
