package etcdcompat

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/google/go-cmp/cmp"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/testing/protocmp"
)

// autoLease marks a lease ID in a scenario as an alias: a grant with ID
// autoLease+k asks the server to choose the ID (sends 0) and remembers the
// answer as alias k on that side. Requests carrying the alias are rewritten
// to the side's real ID, and responses map the real ID back to the alias, so
// that server-chosen IDs compare equal.
const autoLease int64 = 1 << 62

// revisionFields are request fields that hold a revision. Scenarios write
// them relative to the store revision at the start of the scenario, so one
// scenario gives the same answers whatever ran before it.
var revisionFields = map[protoreflect.Name]bool{
	"revision": true, "start_revision": true,
	"min_mod_revision": true, "max_mod_revision": true,
	"min_create_revision": true, "max_create_revision": true,
	"mod_revision": true, "create_revision": true,
}

// responseRevisionFields are response fields turned back into relative revisions.
var responseRevisionFields = map[protoreflect.Name]bool{
	"revision": true, "mod_revision": true, "create_revision": true, "compact_revision": true,
}

// leaseFields hold lease IDs in requests and responses.
var leaseFields = map[protoreflect.Name]bool{"lease": true, "ID": true}

// errResult is a failed call as the client sees it: gRPC status code and message.
// etcd's rpctypes errors are identified by exactly this pair.
type errResult struct {
	Code    codes.Code
	Message string
}

func (e errResult) String() string { return fmt.Sprintf("error %s: %q", e.Code, e.Message) }

func toErrResult(err error) errResult {
	if s, ok := status.FromError(err); ok {
		return errResult{Code: s.Code(), Message: s.Message()}
	}
	if errors.Is(err, errHarnessTimeout) {
		return errResult{Code: codes.DeadlineExceeded, Message: err.Error()}
	}
	return errResult{Code: codes.Unknown, Message: "non-gRPC error: " + err.Error()}
}

var errHarnessTimeout = errors.New("harness timeout")

// rel turns an absolute response revision into a scenario-relative one:
// base+k becomes k for k >= 1, and revisions at or before the scenario start
// become negative (base itself is -1), so that they can never be confused
// with an absent (zero) revision.
func (e *env) rel(v int64) int64 {
	switch {
	case v <= 0:
		return v
	case v > e.base:
		return v - e.base
	default:
		return v - e.base - 1
	}
}

// prepare returns a copy of a scenario request made absolute for one side:
// relative revisions get the side's base added, lease aliases become real IDs.
func (e *env) prepare(m proto.Message) proto.Message {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := proto.Clone(m)
	e.rewrite(c.ProtoReflect(), true)
	return c
}

// prepareGrant prepares a LeaseGrantRequest and reports the alias it asks
// for (0 when the scenario chose the ID itself).
func (e *env) prepareGrant(m *pb.LeaseGrantRequest) (*pb.LeaseGrantRequest, int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.pendingAlias = 0
	c := proto.Clone(m).(*pb.LeaseGrantRequest)
	e.rewrite(c.ProtoReflect(), true)
	return c, e.pendingAlias
}

// normalize returns a copy of a response with the parts that legitimately
// differ between servers removed: cluster/member IDs and raft term in headers,
// absolute revisions (made relative), server-chosen lease IDs (aliased), and
// the order of sets that etcd builds from Go maps.
func (e *env) normalize(m proto.Message) proto.Message {
	if m == nil {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	c := proto.Clone(m)
	e.rewrite(c.ProtoReflect(), false)
	return c
}

func (e *env) rewrite(m protoreflect.Message, request bool) {
	type change struct {
		fd protoreflect.FieldDescriptor
		v  protoreflect.Value
	}
	var changes []change
	var clears []protoreflect.FieldDescriptor
	full := m.Descriptor().FullName()
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				e.rewrite(l.Get(i).Message(), request)
			}
		case fd.Message() != nil && !fd.IsMap():
			e.rewrite(v.Message(), request)
		case fd.Kind() == protoreflect.Int64Kind:
			n := v.Int()
			name := fd.Name()
			if request {
				if revisionFields[name] && n > 0 {
					changes = append(changes, change{fd, protoreflect.ValueOfInt64(n + e.base)})
				}
				if leaseFields[name] && n >= autoLease && n < autoLease+1<<20 {
					if full == "etcdserverpb.LeaseGrantRequest" {
						e.pendingAlias = n
						changes = append(changes, change{fd, protoreflect.ValueOfInt64(0)})
					} else if real, ok := e.leaseAlias[n]; ok {
						changes = append(changes, change{fd, protoreflect.ValueOfInt64(real)})
					}
				}
			} else {
				if responseRevisionFields[name] && n > 0 {
					changes = append(changes, change{fd, protoreflect.ValueOfInt64(e.rel(n))})
				}
				if leaseFields[name] {
					if alias, ok := e.leaseReal[n]; ok {
						changes = append(changes, change{fd, protoreflect.ValueOfInt64(alias)})
					}
				}
			}
		case !request && full == "etcdserverpb.ResponseHeader" &&
			(fd.Name() == "cluster_id" || fd.Name() == "member_id" || fd.Name() == "raft_term"):
			clears = append(clears, fd)
		}
		return true
	})
	for _, c := range changes {
		m.Set(c.fd, c.v)
	}
	for _, fd := range clears {
		m.Clear(fd)
	}
	if request {
		return
	}
	// etcd builds these lists by iterating Go maps; their order carries no meaning.
	switch msg := m.Interface().(type) {
	case *pb.LeaseTimeToLiveResponse:
		slices.SortFunc(msg.Keys, func(a, b []byte) int { return strings.Compare(string(a), string(b)) })
	case *pb.LeaseLeasesResponse:
		slices.SortFunc(msg.Leases, func(a, b *pb.LeaseStatus) int {
			switch {
			case a.ID < b.ID:
				return -1
			case a.ID > b.ID:
				return 1
			}
			return 0
		})
	}
}

// reconcile applies the comparison tolerances that cannot be expressed as
// normalisation of one side alone: remaining lease TTLs may differ by a second
// because the two servers are asked one after the other.
func reconcile(ref, cand any) {
	switch r := ref.(type) {
	case *pb.LeaseTimeToLiveResponse:
		if c, ok := cand.(*pb.LeaseTimeToLiveResponse); ok && r.TTL > 0 && c.TTL > 0 && abs(r.TTL-c.TTL) <= 1 {
			c.TTL = r.TTL
		}
	case *pb.LeaseKeepAliveResponse:
		if c, ok := cand.(*pb.LeaseKeepAliveResponse); ok && r.TTL > 0 && c.TTL > 0 && abs(r.TTL-c.TTL) <= 1 {
			c.TTL = r.TTL
		}
	}
}

func abs(n int64) int64 {
	if n < 0 {
		return -n
	}
	return n
}

// diff compares two normalised results; "" means equal. proto.Equal decides
// first because cmp walks bytes one reflective step at a time, which takes
// seconds on the megabyte values of the size-limit scenarios.
func diff(ref, cand any) string {
	if equal(ref, cand) {
		return ""
	}
	if reflect.TypeOf(ref) != reflect.TypeOf(cand) {
		return fmt.Sprintf("  (%T vs %T: see both results below)", ref, cand)
	}
	// Line diff of the multi-line text forms reads far better than cmp's
	// rendering of protocmp's transformed maps.
	if rl, cl := lines(ref), lines(cand); rl != nil && cl != nil {
		if d := cmp.Diff(rl, cl); d != "" {
			return capLines(d, 80)
		}
	}
	d := cmp.Diff(ref, cand, protocmp.Transform())
	if d == "" {
		d = "(results differ but cmp found no difference)"
	}
	return d
}

func equal(ref, cand any) bool {
	switch r := ref.(type) {
	case proto.Message:
		c, ok := cand.(proto.Message)
		return ok && proto.Equal(r, c)
	case []*pb.WatchResponse:
		c, ok := cand.([]*pb.WatchResponse)
		return ok && slices.EqualFunc(r, c, func(a, b *pb.WatchResponse) bool { return proto.Equal(a, b) })
	case []cwItem:
		c, ok := cand.([]cwItem)
		return ok && slices.EqualFunc(r, c, func(a, b cwItem) bool {
			ae, be := a.Event, b.Event
			a.Event, b.Event = nil, nil
			return a == b && proto.Equal(ae, be)
		})
	default:
		return cmp.Equal(ref, cand, protocmp.Transform())
	}
}

// show renders a result compactly for mismatch reports.
func show(v any) string {
	switch x := v.(type) {
	case nil:
		return "<nil>"
	case proto.Message:
		return textOf(x)
	case []*pb.WatchResponse:
		var b strings.Builder
		for i, r := range x {
			fmt.Fprintf(&b, "\n    [%d] %s", i, textOf(r))
		}
		if len(x) == 0 {
			b.WriteString("(no watch responses)")
		}
		return b.String()
	case []cwItem:
		var b strings.Builder
		for i, r := range x {
			fmt.Fprintf(&b, "\n    [%d] %s", i, r)
		}
		if len(x) == 0 {
			b.WriteString("(no watch responses)")
		}
		return b.String()
	default:
		return fmt.Sprintf("%v", x)
	}
}

func capLines(s string, n int) string {
	l := strings.Split(s, "\n")
	if len(l) <= n {
		return s
	}
	return strings.Join(l[:n], "\n") + fmt.Sprintf("\n  ... (%d more lines)", len(l)-n)
}

// lines renders a result as text lines for diffing; nil if it has no text form.
func lines(v any) []string {
	ml := prototext.MarshalOptions{Multiline: true, Indent: "  "}
	one := func(m proto.Message) []string {
		b, err := ml.Marshal(m)
		if err != nil {
			return []string{fmt.Sprintf("<unprintable: %v>", err)}
		}
		var out []string
		for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
			if len(l) > 300 {
				l = l[:300] + fmt.Sprintf("... (%d bytes)", len(l))
			}
			out = append(out, l)
		}
		return out
	}
	switch x := v.(type) {
	case errResult:
		return []string{x.String()}
	case proto.Message:
		return append([]string{fmt.Sprintf("%T", x)}, one(x)...)
	case []*pb.WatchResponse:
		out := []string{fmt.Sprintf("%d watch responses", len(x))}
		for i, r := range x {
			out = append(out, fmt.Sprintf("[%d]", i))
			out = append(out, one(r)...)
		}
		return out
	case []cwItem:
		out := []string{fmt.Sprintf("%d clientv3 watch responses", len(x))}
		for i, r := range x {
			out = append(out, fmt.Sprintf("[%d] %s", i, r))
		}
		return out
	}
	return nil
}

func textOf(m proto.Message) string {
	b, err := prototext.MarshalOptions{}.Marshal(m)
	if err != nil {
		return fmt.Sprintf("<unprintable %T: %v>", m, err)
	}
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > 2000 {
		s = s[:2000] + fmt.Sprintf("... (%d bytes)", len(s))
	}
	return fmt.Sprintf("%T{%s}", m, s)
}
