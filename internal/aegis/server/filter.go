package server

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/photoncloud/photoncloud/internal/platform/filter"
)

// List filters (the AIP-160 subset of common.proto, parsed by
// platform/filter) are compiled into a predicate over the protobuf message
// by reflection, so that every List method shares one implementation and
// names the fields it allows. The store does not interpret filters; it
// pages through the records the predicate accepts.

// pred is a compiled term.
type pred func(protoreflect.Message) bool

// customField compiles a term on a field that is not a plain message field
// (e.g. a group's members).
type customField func(t filter.Term) (pred, error)

// filterSpec says which fields a List method filters on.
type filterSpec struct {
	// fields are message field paths: "display_name", "labels" (then also
	// "labels.<key>"), "federated_identities.issuer".
	fields []string
	custom map[string]customField
}

var (
	orgFilter     = filterSpec{fields: []string{"display_name", "state", "labels", "create_time"}}
	projectFilter = filterSpec{fields: []string{"display_name", "labels", "create_time"}}
	userFilter    = filterSpec{fields: []string{"display_name", "email", "state", "labels",
		"federated_identities.issuer", "federated_identities.subject", "create_time", "last_login_time"}}
	saFilter      = filterSpec{fields: []string{"display_name", "state", "labels", "create_time"}}
	keyFilter     = filterSpec{fields: []string{"create_time", "expire_time", "last_use_time"}}
	memberFilter  = filterSpec{fields: []string{"member", "member_kind"}}
	roleFilter    = filterSpec{fields: []string{"display_name", "permissions"}}
	bindingFilter = filterSpec{fields: []string{"member", "role", "scope", "effect", "creator",
		"create_time", "expire_time", "condition"}}
	auditFilter = filterSpec{fields: []string{"kind", "method", "permission", "status_code", "token_id",
		"source_ip", "request_id"}}
)

// compileFilter compiles text for messages of type T; nil for no filter.
func compileFilter[T proto.Message](text string, spec filterSpec) (func(T) bool, error) {
	var zero T
	md := zero.ProtoReflect().Descriptor()
	match, err := filter.Compile(text, func(t filter.Term) (func(protoreflect.Message) bool, error) {
		return compileTerm(md, t, spec)
	})
	if match == nil || err != nil {
		return nil, err
	}
	return func(m T) bool { return match(m.ProtoReflect()) }, nil
}

func (spec filterSpec) allows(path string, md protoreflect.MessageDescriptor) bool {
	if slices.Contains(spec.fields, path) {
		return true
	}
	head, _, ok := strings.Cut(path, ".")
	if !ok || !slices.Contains(spec.fields, head) {
		return false
	}
	fd := md.Fields().ByName(protoreflect.Name(head))
	return fd != nil && fd.IsMap() // labels.<key>
}

func fieldByName(md protoreflect.MessageDescriptor, name string) protoreflect.FieldDescriptor {
	if fd := md.Fields().ByName(protoreflect.Name(name)); fd != nil {
		return fd
	}
	return md.Fields().ByJSONName(name)
}

func compileTerm(md protoreflect.MessageDescriptor, t filter.Term, spec filterSpec) (pred, error) {
	if c, ok := spec.custom[t.Field]; ok {
		return c(t)
	}
	// JSON names (displayName) are accepted for the first segment, as the
	// gateway's clients see them.
	if head, _, _ := strings.Cut(t.Field, "."); md.Fields().ByName(protoreflect.Name(head)) == nil {
		if fd := md.Fields().ByJSONName(head); fd != nil {
			t.Field = string(fd.Name()) + strings.TrimPrefix(t.Field, head)
		}
	}
	if !spec.allows(t.Field, md) {
		names := append(slices.Clone(spec.fields), mapKeys(spec.custom)...)
		slices.Sort(names)
		return nil, filter.Errorf("cannot filter on %q; fields: %s", clip(t.Field), strings.Join(names, ", "))
	}
	segs := strings.Split(t.Field, ".")
	fd := fieldByName(md, segs[0])
	if fd == nil {
		return nil, filter.Errorf("unknown field %q", clip(t.Field))
	}
	switch {
	case fd.IsMap():
		return compileMap(fd, segs, t)
	case fd.IsList():
		return compileList(fd, segs, t)
	case len(segs) == 2 && fd.Kind() == protoreflect.MessageKind && !isTimestamp(fd):
		sub := fieldByName(fd.Message(), segs[1])
		if sub == nil || sub.IsList() || sub.IsMap() {
			return nil, filter.Errorf("unknown field %q", clip(t.Field))
		}
		cmp, err := compileScalar(sub, t)
		if err != nil {
			return nil, err
		}
		return func(m protoreflect.Message) bool {
			if !m.Has(fd) {
				return cmp(protoreflect.Value{}, false)
			}
			sm := m.Get(fd).Message()
			return cmp(sm.Get(sub), sm.Has(sub))
		}, nil
	case len(segs) != 1:
		return nil, filter.Errorf("unknown field %q", clip(t.Field))
	}
	cmp, err := compileScalar(fd, t)
	if err != nil {
		return nil, err
	}
	return func(m protoreflect.Message) bool { return cmp(m.Get(fd), m.Has(fd)) }, nil
}

func mapKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// compileMap: `labels:key` (has the key; `labels:*` has any) and
// `labels.key op value`.
func compileMap(fd protoreflect.FieldDescriptor, segs []string, t filter.Term) (pred, error) {
	if fd.MapKey().Kind() != protoreflect.StringKind || fd.MapValue().Kind() != protoreflect.StringKind {
		return nil, filter.Errorf("cannot filter on %q", clip(t.Field))
	}
	switch {
	case len(segs) == 1 && t.Op == ":":
		if t.Value == "*" && !t.Quoted {
			return func(m protoreflect.Message) bool { return m.Get(fd).Map().Len() > 0 }, nil
		}
		key := protoreflect.ValueOfString(t.Value).MapKey()
		return func(m protoreflect.Message) bool { return m.Get(fd).Map().Has(key) }, nil
	case len(segs) == 2:
		key := protoreflect.ValueOfString(segs[1]).MapKey()
		cmp, err := compileString(t)
		if err != nil {
			return nil, err
		}
		return func(m protoreflect.Message) bool {
			mp := m.Get(fd).Map()
			if !mp.Has(key) {
				return cmp("", false)
			}
			return cmp(mp.Get(key).String(), true)
		}, nil
	}
	return nil, filter.Errorf("%s: use %s:<key> or %s.<key> = <value>", t.Field, segs[0], segs[0])
}

// compileList: `permissions:"x"` (an element equals x; `:*` non-empty),
// and for repeated messages `federated_identities.issuer op value` (some
// element matches).
func compileList(fd protoreflect.FieldDescriptor, segs []string, t filter.Term) (pred, error) {
	if fd.Kind() == protoreflect.MessageKind {
		if len(segs) != 2 {
			return nil, filter.Errorf("%s: name a field of its elements, e.g. %s.<field>", t.Field, t.Field)
		}
		sub := fieldByName(fd.Message(), segs[1])
		if sub == nil || sub.IsList() || sub.IsMap() {
			return nil, filter.Errorf("unknown field %q", clip(t.Field))
		}
		cmp, err := compileScalar(sub, t)
		if err != nil {
			return nil, err
		}
		return func(m protoreflect.Message) bool {
			l := m.Get(fd).List()
			for i := 0; i < l.Len(); i++ {
				e := l.Get(i).Message()
				if cmp(e.Get(sub), e.Has(sub)) {
					return true
				}
			}
			return false
		}, nil
	}
	if len(segs) != 1 || t.Op != ":" || fd.Kind() != protoreflect.StringKind {
		return nil, filter.Errorf("%s is a list: use %s:<value>", t.Field, t.Field)
	}
	if t.Value == "*" && !t.Quoted {
		return func(m protoreflect.Message) bool { return m.Get(fd).List().Len() > 0 }, nil
	}
	return func(m protoreflect.Message) bool {
		l := m.Get(fd).List()
		for i := 0; i < l.Len(); i++ {
			if l.Get(i).String() == t.Value {
				return true
			}
		}
		return false
	}, nil
}

func isTimestamp(fd protoreflect.FieldDescriptor) bool {
	return fd.Kind() == protoreflect.MessageKind && fd.Message().FullName() == "google.protobuf.Timestamp"
}

// scalarCmp tests a field value; has is false when the field is unset.
type scalarCmp func(v protoreflect.Value, has bool) bool

func compileScalar(fd protoreflect.FieldDescriptor, t filter.Term) (scalarCmp, error) {
	// `field:*` means "is set" for every kind of field.
	if t.Op == ":" && t.Value == "*" && !t.Quoted {
		return func(_ protoreflect.Value, has bool) bool { return has }, nil
	}
	switch {
	case isTimestamp(fd):
		return compileTime(fd, t)
	case fd.Kind() == protoreflect.MessageKind:
		return nil, filter.Errorf("%s: only %s:* (is set) is supported", t.Field, t.Field)
	case fd.Kind() == protoreflect.StringKind:
		cmp, err := compileString(t)
		if err != nil {
			return nil, err
		}
		return func(v protoreflect.Value, has bool) bool {
			if !v.IsValid() {
				return cmp("", false)
			}
			return cmp(v.String(), has)
		}, nil
	case fd.Kind() == protoreflect.EnumKind:
		return compileEnum(fd, t)
	case fd.Kind() == protoreflect.BoolKind:
		want, err := strconv.ParseBool(t.Value)
		if err != nil || (t.Op != "=" && t.Op != "!=" && t.Op != ":") {
			return nil, filter.Errorf("%s: compare with = true or = false", t.Field)
		}
		return func(v protoreflect.Value, _ bool) bool {
			got := v.IsValid() && v.Bool()
			return (got == want) == (t.Op != "!=")
		}, nil
	case fd.Kind() == protoreflect.Int32Kind || fd.Kind() == protoreflect.Int64Kind:
		want, err := strconv.ParseInt(t.Value, 10, 64)
		if err != nil {
			return nil, filter.Errorf("%s: %q is not an integer", t.Field, clip(t.Value))
		}
		ord, err := ordered(t)
		if err != nil {
			return nil, err
		}
		return func(v protoreflect.Value, _ bool) bool {
			var got int64
			if v.IsValid() {
				got = v.Int()
			}
			return ord(cmpInt(got, want))
		}, nil
	}
	return nil, filter.Errorf("cannot filter on %q", clip(t.Field))
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// ordered turns an operator into a test of a three-way comparison.
func ordered(t filter.Term) (func(int) bool, error) {
	switch t.Op {
	case "=", ":":
		return func(c int) bool { return c == 0 }, nil
	case "!=":
		return func(c int) bool { return c != 0 }, nil
	case "<":
		return func(c int) bool { return c < 0 }, nil
	case "<=":
		return func(c int) bool { return c <= 0 }, nil
	case ">":
		return func(c int) bool { return c > 0 }, nil
	case ">=":
		return func(c int) bool { return c >= 0 }, nil
	}
	return nil, filter.Errorf("unknown operator %q", t.Op)
}

// compileString: = and != compare exactly, or as a prefix when the value
// ends in "*"; ":" is "=".
func compileString(t filter.Term) (func(s string, has bool) bool, error) {
	var eq func(string) bool
	if p, ok := strings.CutSuffix(t.Value, "*"); ok {
		eq = func(s string) bool { return strings.HasPrefix(s, p) }
	} else {
		eq = func(s string) bool { return s == t.Value }
	}
	switch t.Op {
	case "=", ":":
		return func(s string, _ bool) bool { return eq(s) }, nil
	case "!=":
		return func(s string, _ bool) bool { return !eq(s) }, nil
	}
	return nil, filter.Errorf("%s: %s is only for time fields", t.Field, t.Op)
}

// compileEnum accepts the value's full name (STATE_ACTIVE) or its name
// without the enum's prefix (ACTIVE).
func compileEnum(fd protoreflect.FieldDescriptor, t filter.Term) (scalarCmp, error) {
	vals := fd.Enum().Values()
	var num protoreflect.EnumNumber
	found := false
	for i := 0; i < vals.Len(); i++ {
		name := string(vals.Get(i).Name())
		if name == t.Value || strings.HasSuffix(name, "_"+t.Value) {
			num, found = vals.Get(i).Number(), true
			break
		}
	}
	if !found {
		var names []string
		for i := 0; i < vals.Len(); i++ {
			if vals.Get(i).Number() != 0 {
				names = append(names, string(vals.Get(i).Name()))
			}
		}
		return nil, filter.Errorf("%s: %q is not one of %s", t.Field, clip(t.Value), strings.Join(names, ", "))
	}
	switch t.Op {
	case "=", ":":
		return func(v protoreflect.Value, _ bool) bool { return v.IsValid() && v.Enum() == num }, nil
	case "!=":
		return func(v protoreflect.Value, _ bool) bool { return !v.IsValid() || v.Enum() != num }, nil
	}
	return nil, filter.Errorf("%s: %s is only for time fields", t.Field, t.Op)
}

// compileTime compares a Timestamp with an RFC 3339 time. An unset time
// matches only !=.
func compileTime(fd protoreflect.FieldDescriptor, t filter.Term) (scalarCmp, error) {
	want, err := time.Parse(time.RFC3339Nano, t.Value)
	if err != nil {
		return nil, filter.Errorf("%s: %q is not an RFC 3339 time", t.Field, clip(t.Value))
	}
	ord, err := ordered(t)
	if err != nil {
		return nil, err
	}
	secF := fd.Message().Fields().ByName("seconds")
	nanoF := fd.Message().Fields().ByName("nanos")
	return func(v protoreflect.Value, has bool) bool {
		if !has || !v.IsValid() {
			return t.Op == "!="
		}
		m := v.Message()
		got := time.Unix(m.Get(secF).Int(), m.Get(nanoF).Int())
		return ord(got.Compare(want))
	}, nil
}
