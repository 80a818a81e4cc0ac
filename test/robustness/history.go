package robustness

import (
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// Record is one client operation as the client saw it. Times are
// nanoseconds since the recorder started, from the monotonic clock.
type Record struct {
	Client int    `json:"client"` // porcupine client id (a traffic client gets a new one after each pending operation)
	Member string `json:"member"` // the member the client talks to, or "all"
	Input  Input  `json:"input"`
	Output Output `json:"output"`
	Call   int64  `json:"call"`
	Return int64  `json:"return"` // meaningless while Output.Unknown
	Err    string `json:"err,omitempty"`
}

// Acked reports whether the client learnt the outcome.
func (r *Record) Acked() bool { return !r.Output.Unknown }

// IsWrite reports whether the operation is known to have created a revision.
func (r *Record) IsWrite() bool {
	if r.Output.Unknown && !r.Output.Resolved {
		return false
	}
	switch r.Input.Kind {
	case OpPut:
		return true
	case OpTxn:
		return r.Output.Succeeded
	case OpDelete:
		return r.Output.Deleted > 0
	}
	// A revoke creates a revision only if it deleted a key, which its
	// answer does not tell.
	return false
}

// HasRev reports whether Output.Rev is a store revision the server
// answered with (keep-alive answers and "lease not found" errors carry
// none the checker relies on).
func (r *Record) HasRev() bool {
	return r.Acked() && r.Input.Kind != OpKeepAlive && !r.Output.NotFound
}

func (r *Record) String() string {
	ret := fmt.Sprintf("%.3fs", float64(r.Return)/1e9)
	if r.Output.Unknown {
		ret = "pending"
	}
	s := fmt.Sprintf("client %d via %s [%.3fs, %s]: %s", r.Client, r.Member, float64(r.Call)/1e9, ret, describe(r.Input, r.Output))
	if r.Err != "" {
		s += " (error: " + r.Err + ")"
	}
	return s
}

// Recorder collects the history of all clients.
type Recorder struct {
	start time.Time

	mu   sync.Mutex
	recs []Record
}

// NewRecorder starts the history clock.
func NewRecorder() *Recorder { return &Recorder{start: time.Now()} }

// Now is the history clock: nanoseconds since NewRecorder, monotonic.
func (r *Recorder) Now() int64 { return int64(time.Since(r.start)) }

// Add appends one finished (or given up) operation.
func (r *Recorder) Add(rec Record) {
	r.mu.Lock()
	r.recs = append(r.recs, rec)
	r.mu.Unlock()
}

// Records returns a copy of the history so far.
func (r *Recorder) Records() []Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Record(nil), r.recs...)
}

// Len is the number of operations recorded so far.
func (r *Recorder) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.recs)
}

// Event is one watch event, flattened for comparison and JSON.
type Event struct {
	Rev       int64  `json:"rev"` // the event's revision (the kv's mod revision)
	Type      string `json:"type"`
	Key       string `json:"key"`
	Value     string `json:"value,omitempty"`
	CreateRev int64  `json:"create_rev,omitempty"`
	Version   int64  `json:"version,omitempty"`
	Lease     int64  `json:"lease,omitempty"`

	PrevFound  bool   `json:"prev_found,omitempty"`
	PrevValue  string `json:"prev_value,omitempty"`
	PrevModRev int64  `json:"prev_mod_rev,omitempty"`
	PrevLease  int64  `json:"prev_lease,omitempty"`
}

// Event types.
const (
	EventPut    = "PUT"
	EventDelete = "DELETE"
)

// EventFromProto flattens a watch event.
func EventFromProto(ev *mvccpb.Event) Event {
	e := Event{Type: EventPut}
	if ev.Type == mvccpb.Event_DELETE {
		e.Type = EventDelete
	}
	if kv := ev.Kv; kv != nil {
		e.Rev = kv.ModRevision
		e.Key = string(kv.Key)
		e.Value = string(kv.Value)
		e.CreateRev = kv.CreateRevision
		e.Version = kv.Version
		e.Lease = kv.Lease
	}
	if p := ev.PrevKv; p != nil {
		e.PrevFound = true
		e.PrevValue = string(p.Value)
		e.PrevModRev = p.ModRevision
		e.PrevLease = p.Lease
	}
	return e
}

func (e Event) String() string {
	s := fmt.Sprintf("rev %d %s %s", e.Rev, e.Type, e.Key)
	if e.Type == EventPut {
		s += fmt.Sprintf("=%q (create %d, version %d)", e.Value, e.CreateRev, e.Version)
		if e.Lease != 0 {
			s += fmt.Sprintf(" lease %x", e.Lease)
		}
	}
	if e.PrevFound {
		s += fmt.Sprintf(" prev %q@%d", e.PrevValue, e.PrevModRev)
		if e.PrevLease != 0 {
			s += fmt.Sprintf(" lease %x", e.PrevLease)
		}
	} else {
		s += " no prev"
	}
	return s
}

// Operations converts records to porcupine operations. Pending operations
// return at end, after everything else: they may take effect at any point
// after their call.
func Operations(recs []Record) []porcupine.Operation {
	var end int64
	for i := range recs {
		if !recs[i].Output.Unknown && recs[i].Return > end {
			end = recs[i].Return
		}
		if recs[i].Call > end {
			end = recs[i].Call
		}
	}
	end++
	ops := make([]porcupine.Operation, 0, len(recs))
	for i := range recs {
		r := &recs[i]
		ret := r.Return
		if r.Output.Unknown {
			ret = end
		}
		meta := r.Member
		if r.Err != "" {
			meta += ": " + r.Err
		}
		ops = append(ops, porcupine.Operation{
			ClientId: r.Client, Input: r.Input, Output: r.Output,
			Call: r.Call, Return: ret, Metadata: meta,
		})
	}
	return ops
}

// sortRecords orders records by call time (the recorder appends at return).
func sortRecords(recs []Record) {
	sort.SliceStable(recs, func(i, j int) bool { return recs[i].Call < recs[j].Call })
}
