package server

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// The AIP-160 subset of common.proto:
//
//	filter = term { "AND" term }
//	term   = field op value
//	op     = "=" | "!=" | ":" | "<" | "<=" | ">" | ">="
//	value  = "quoted string" | bare-word
//
// compiled into a predicate over the protobuf message by reflection, so
// that every List method shares one implementation and names the fields it
// allows. The store does not interpret filters; it pages through the
// records the predicate accepts.

// maxFilterLen bounds a filter's text.
const maxFilterLen = 4096

type term struct {
	field, op, value string
	quoted           bool
}

func filterErr(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, "filter: "+format, args...)
}

func isFieldChar(c byte, first bool) bool {
	return c == '_' || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || (!first && (c == '.' || ('0' <= c && c <= '9')))
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// parseFilter splits a filter into its terms.
func parseFilter(text string) ([]term, error) {
	if len(text) > maxFilterLen {
		return nil, filterErr("longer than %d bytes", maxFilterLen)
	}
	var terms []term
	i, n := 0, len(text)
	skip := func() {
		for i < n && isSpace(text[i]) {
			i++
		}
	}
	for {
		skip()
		start := i
		for i < n && isFieldChar(text[i], i == start) {
			i++
		}
		if i == start {
			return nil, filterErr("expected a field name at offset %d", start)
		}
		t := term{field: text[start:i]}
		skip()
		switch {
		case strings.HasPrefix(text[i:], "!="), strings.HasPrefix(text[i:], "<="), strings.HasPrefix(text[i:], ">="):
			t.op, i = text[i:i+2], i+2
		case i < n && strings.IndexByte("=:<>", text[i]) >= 0:
			t.op, i = text[i:i+1], i+1
		default:
			return nil, filterErr("expected an operator after %q", clip(t.field))
		}
		skip()
		if i < n && text[i] == '"' {
			var b strings.Builder
			i++
			closed := false
			for i < n {
				c := text[i]
				i++
				if c == '\\' && i < n {
					b.WriteByte(text[i])
					i++
					continue
				}
				if c == '"' {
					closed = true
					break
				}
				b.WriteByte(c)
			}
			if !closed {
				return nil, filterErr("unterminated string after %q", clip(t.field))
			}
			t.value, t.quoted = b.String(), true
		} else {
			start := i
			for i < n && !isSpace(text[i]) {
				i++
			}
			t.value = text[start:i]
			if t.value == "" {
				return nil, filterErr("expected a value after %q %s", clip(t.field), t.op)
			}
		}
		terms = append(terms, t)
		skip()
		if i == n {
			return terms, nil
		}
		word := i
		for i < n && !isSpace(text[i]) {
			i++
		}
		switch w := text[word:i]; w {
		case "AND":
			if i == n {
				return nil, filterErr("AND at the end")
			}
		case "OR", "NOT", "-":
			return nil, filterErr("%s is not supported; only AND", w)
		default:
			return nil, filterErr("expected AND, got %q", clip(w))
		}
	}
}

// pred is a compiled term.
type pred func(protoreflect.Message) bool

// customField compiles a term on a field that is not a plain message field
// (e.g. a group's members).
type customField func(t term) (pred, error)

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
	if strings.TrimSpace(text) == "" {
		return nil, nil
	}
	terms, err := parseFilter(text)
	if err != nil {
		return nil, err
	}
	var zero T
	md := zero.ProtoReflect().Descriptor()
	preds := make([]pred, 0, len(terms))
	for _, t := range terms {
		p, err := compileTerm(md, t, spec)
		if err != nil {
			return nil, err
		}
		preds = append(preds, p)
	}
	return func(m T) bool {
		r := m.ProtoReflect()
		for _, p := range preds {
			if !p(r) {
				return false
			}
		}
		return true
	}, nil
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

func compileTerm(md protoreflect.MessageDescriptor, t term, spec filterSpec) (pred, error) {
	if c, ok := spec.custom[t.field]; ok {
		return c(t)
	}
	// JSON names (displayName) are accepted for the first segment, as the
	// gateway's clients see them.
	if head, _, _ := strings.Cut(t.field, "."); md.Fields().ByName(protoreflect.Name(head)) == nil {
		if fd := md.Fields().ByJSONName(head); fd != nil {
			t.field = string(fd.Name()) + strings.TrimPrefix(t.field, head)
		}
	}
	if !spec.allows(t.field, md) {
		names := append(slices.Clone(spec.fields), mapKeys(spec.custom)...)
		slices.Sort(names)
		return nil, filterErr("cannot filter on %q; fields: %s", clip(t.field), strings.Join(names, ", "))
	}
	segs := strings.Split(t.field, ".")
	fd := fieldByName(md, segs[0])
	if fd == nil {
		return nil, filterErr("unknown field %q", clip(t.field))
	}
	switch {
	case fd.IsMap():
		return compileMap(fd, segs, t)
	case fd.IsList():
		return compileList(fd, segs, t)
	case len(segs) == 2 && fd.Kind() == protoreflect.MessageKind && !isTimestamp(fd):
		sub := fieldByName(fd.Message(), segs[1])
		if sub == nil || sub.IsList() || sub.IsMap() {
			return nil, filterErr("unknown field %q", clip(t.field))
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
		return nil, filterErr("unknown field %q", clip(t.field))
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
func compileMap(fd protoreflect.FieldDescriptor, segs []string, t term) (pred, error) {
	if fd.MapKey().Kind() != protoreflect.StringKind || fd.MapValue().Kind() != protoreflect.StringKind {
		return nil, filterErr("cannot filter on %q", clip(t.field))
	}
	switch {
	case len(segs) == 1 && t.op == ":":
		if t.value == "*" && !t.quoted {
			return func(m protoreflect.Message) bool { return m.Get(fd).Map().Len() > 0 }, nil
		}
		key := protoreflect.ValueOfString(t.value).MapKey()
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
	return nil, filterErr("%s: use %s:<key> or %s.<key> = <value>", t.field, segs[0], segs[0])
}

// compileList: `permissions:"x"` (an element equals x; `:*` non-empty),
// and for repeated messages `federated_identities.issuer op value` (some
// element matches).
func compileList(fd protoreflect.FieldDescriptor, segs []string, t term) (pred, error) {
	if fd.Kind() == protoreflect.MessageKind {
		if len(segs) != 2 {
			return nil, filterErr("%s: name a field of its elements, e.g. %s.<field>", t.field, t.field)
		}
		sub := fieldByName(fd.Message(), segs[1])
		if sub == nil || sub.IsList() || sub.IsMap() {
			return nil, filterErr("unknown field %q", clip(t.field))
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
	if len(segs) != 1 || t.op != ":" || fd.Kind() != protoreflect.StringKind {
		return nil, filterErr("%s is a list: use %s:<value>", t.field, t.field)
	}
	if t.value == "*" && !t.quoted {
		return func(m protoreflect.Message) bool { return m.Get(fd).List().Len() > 0 }, nil
	}
	return func(m protoreflect.Message) bool {
		l := m.Get(fd).List()
		for i := 0; i < l.Len(); i++ {
			if l.Get(i).String() == t.value {
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

func compileScalar(fd protoreflect.FieldDescriptor, t term) (scalarCmp, error) {
	// `field:*` means "is set" for every kind of field.
	if t.op == ":" && t.value == "*" && !t.quoted {
		return func(_ protoreflect.Value, has bool) bool { return has }, nil
	}
	switch {
	case isTimestamp(fd):
		return compileTime(fd, t)
	case fd.Kind() == protoreflect.MessageKind:
		return nil, filterErr("%s: only %s:* (is set) is supported", t.field, t.field)
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
		want, err := strconv.ParseBool(t.value)
		if err != nil || (t.op != "=" && t.op != "!=" && t.op != ":") {
			return nil, filterErr("%s: compare with = true or = false", t.field)
		}
		return func(v protoreflect.Value, _ bool) bool {
			got := v.IsValid() && v.Bool()
			return (got == want) == (t.op != "!=")
		}, nil
	case fd.Kind() == protoreflect.Int32Kind || fd.Kind() == protoreflect.Int64Kind:
		want, err := strconv.ParseInt(t.value, 10, 64)
		if err != nil {
			return nil, filterErr("%s: %q is not an integer", t.field, clip(t.value))
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
	return nil, filterErr("cannot filter on %q", clip(t.field))
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
func ordered(t term) (func(int) bool, error) {
	switch t.op {
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
	return nil, filterErr("unknown operator %q", t.op)
}

// compileString: = and != compare exactly, or as a prefix when the value
// ends in "*"; ":" is "=".
func compileString(t term) (func(s string, has bool) bool, error) {
	var eq func(string) bool
	if p, ok := strings.CutSuffix(t.value, "*"); ok {
		eq = func(s string) bool { return strings.HasPrefix(s, p) }
	} else {
		eq = func(s string) bool { return s == t.value }
	}
	switch t.op {
	case "=", ":":
		return func(s string, _ bool) bool { return eq(s) }, nil
	case "!=":
		return func(s string, _ bool) bool { return !eq(s) }, nil
	}
	return nil, filterErr("%s: %s is only for time fields", t.field, t.op)
}

// compileEnum accepts the value's full name (STATE_ACTIVE) or its name
// without the enum's prefix (ACTIVE).
func compileEnum(fd protoreflect.FieldDescriptor, t term) (scalarCmp, error) {
	vals := fd.Enum().Values()
	var num protoreflect.EnumNumber
	found := false
	for i := 0; i < vals.Len(); i++ {
		name := string(vals.Get(i).Name())
		if name == t.value || strings.HasSuffix(name, "_"+t.value) {
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
		return nil, filterErr("%s: %q is not one of %s", t.field, clip(t.value), strings.Join(names, ", "))
	}
	switch t.op {
	case "=", ":":
		return func(v protoreflect.Value, _ bool) bool { return v.IsValid() && v.Enum() == num }, nil
	case "!=":
		return func(v protoreflect.Value, _ bool) bool { return !v.IsValid() || v.Enum() != num }, nil
	}
	return nil, filterErr("%s: %s is only for time fields", t.field, t.op)
}

// compileTime compares a Timestamp with an RFC 3339 time. An unset time
// matches only !=.
func compileTime(fd protoreflect.FieldDescriptor, t term) (scalarCmp, error) {
	want, err := time.Parse(time.RFC3339Nano, t.value)
	if err != nil {
		return nil, filterErr("%s: %q is not an RFC 3339 time", t.field, clip(t.value))
	}
	ord, err := ordered(t)
	if err != nil {
		return nil, err
	}
	secF := fd.Message().Fields().ByName("seconds")
	nanoF := fd.Message().Fields().ByName("nanos")
	return func(v protoreflect.Value, has bool) bool {
		if !has || !v.IsValid() {
			return t.op == "!="
		}
		m := v.Message()
		got := time.Unix(m.Get(secF).Int(), m.Get(nanoF).Int())
		return ord(got.Compare(want))
	}, nil
}
