package filter

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		text string
		want []Term
	}{
		{`display_name = "Alice Liddell"`, []Term{{"display_name", "=", "Alice Liddell", true}}},
		{`display_name="Alice*"`, []Term{{"display_name", "=", "Alice*", true}}},
		{`display_name = Alice*`, []Term{{"display_name", "=", "Alice*", false}}},
		{`labels:*`, []Term{{"labels", ":", "*", false}}},
		{`labels:"*"`, []Term{{"labels", ":", "*", true}}},
		{`labels.team-a != red`, []Term{{"labels.team-a", "!=", "red", false}}},
		{`create_time>=2026-05-01T12:00:00Z`, []Term{{"create_time", ">=", "2026-05-01T12:00:00Z", false}}},
		{`t < 1 AND t <= 2 AND t > 3 AND t >= 4`, []Term{{"t", "<", "1", false}, {"t", "<=", "2", false},
			{"t", ">", "3", false}, {"t", ">=", "4", false}}},
		{"email = \"a\\\"b\\\\\" AND state = ACTIVE", []Term{{"email", "=", `a"b\`, true}, {"state", "=", "ACTIVE", false}}},
		{`display_name = "with \"quotes\" and AND inside"`, []Term{{"display_name", "=", `with "quotes" and AND inside`, true}}},
		{"  state = ACTIVE \t AND\n\r labels:team  ", []Term{{"state", "=", "ACTIVE", false}, {"labels", ":", "team", false}}},
		{`a = ""`, []Term{{"a", "=", "", true}}},
		{`a = x=y`, []Term{{"a", "=", "x=y", false}}},
		{`a=<b`, []Term{{"a", "=", "<b", false}}},
		{`_x.y_1 : v`, []Term{{"_x.y_1", ":", "v", false}}},
		{`NOT = x`, []Term{{"NOT", "=", "x", false}}},
	} {
		got, err := parse(tc.text)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%q: %+v, %v; want %+v", tc.text, got, err, tc.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ text, msg string }{
		{`display_name`, `expected an operator after "display_name"`},
		{`display_name ~ x`, `expected an operator after "display_name"`},
		{`display_name =`, `expected a value after "display_name" =`},
		{`display_name =   `, `expected a value after "display_name" =`},
		{`= x`, `expected a field name at offset 0`},
		{`1a = x`, `expected a field name at offset 0`},
		{`(a = x)`, `expected a field name at offset 0`},
		{`display_name = "open`, `unterminated string after "display_name"`},
		{`display_name = "open\"`, `unterminated string after "display_name"`},
		{`state = x OR state = y`, `OR is not supported; only AND`},
		{`NOT state = x`, `NOT is not supported; only AND`},
		{`a = b AND NOT c = d`, `NOT is not supported; only AND`},
		{`a = b - c = d`, `- is not supported; only AND`},
		{`-state = x`, `- (NOT) is not supported; only AND`},
		{`state = x AND`, `AND at the end`},
		{"state = x AND \t\n", `AND at the end`},
		{`state = x y`, `expected AND, got "y"`},
		{`state = x and y = z`, `expected AND, got "and"`},
		{`a = b AND AND c = d`, `expected an operator after "AND"`},
		{strings.Repeat("a", 96) + "b ~", `expected an operator after "` + strings.Repeat("a", 96) + `…"`},
		{"a = b \xff", `expected AND, got "\xff"`},
		{string(make([]byte, maxLen+1)), `longer than 4096 bytes`},
	} {
		_, err := parse(tc.text)
		st, ok := status.FromError(err)
		if !ok || st.Code() != codes.InvalidArgument || st.Message() != "filter: "+tc.msg {
			t.Errorf("%q: %v; want INVALID_ARGUMENT %q", tc.text, err, "filter: "+tc.msg)
		}
	}
	if _, err := parse(strings.Repeat("a=b AND ", maxLen/8-1) + "a=b"); err != nil {
		t.Errorf("filter of %d bytes: %v", maxLen, err)
	}
}

// record is what the tests filter: field name to value.
type record map[string]string

func compileRecordTerm(t Term) (func(record) bool, error) {
	if t.Op != "=" {
		return nil, Errorf("%s: only =", t.Field)
	}
	return func(r record) bool { return r[t.Field] == t.Value }, nil
}

func TestCompile(t *testing.T) {
	r := record{"a": "1", "b": "2"}
	for text, want := range map[string]bool{
		`a = 1`:                   true,
		`a = 2`:                   false,
		`a = 1 AND b = 2`:         true,
		`a = 1 AND b = 1`:         false,
		`b = 1 AND a = 1`:         false,
		`a = 1 AND b = 2 AND c=x`: false,
		`c = ""`:                  true,
	} {
		match, err := Compile(text, compileRecordTerm)
		if err != nil || match == nil {
			t.Errorf("%q: %v", text, err)
			continue
		}
		if got := match(r); got != want {
			t.Errorf("%q: %v, want %v", text, got, want)
		}
	}
	for _, text := range []string{"", "   ", "\t\n\r", " \v "} {
		if match, err := Compile(text, compileRecordTerm); match != nil || err != nil {
			t.Errorf("%q: want no filter, got %v", text, err)
		}
	}
	// Blank text is no filter even past the length limit.
	if match, err := Compile(strings.Repeat(" ", maxLen+1), compileRecordTerm); match != nil || err != nil {
		t.Errorf("long blank text: %v", err)
	}
	if _, err := Compile(`a = 1 AND b != 2`, compileRecordTerm); status.Convert(err).Message() != "filter: b: only =" {
		t.Errorf("term error: %v", err)
	}
	// A compileTerm error is returned as it is, so a caller may return
	// its own status.
	mine := errors.New("mine")
	_, err := Compile(`a = 1`, func(Term) (func(record) bool, error) { return nil, mine })
	if err != mine {
		t.Errorf("compileTerm error: %v, want %v", err, mine)
	}
	// Syntax errors stop before any term is compiled.
	called := false
	_, err = Compile(`a = 1 OR b = 2`, func(Term) (func(record) bool, error) { called = true; return nil, nil })
	if status.Code(err) != codes.InvalidArgument || called {
		t.Errorf("syntax error: %v, compileTerm called %v", err, called)
	}
}

func TestErrorf(t *testing.T) {
	err := Errorf("cannot filter on %q", "x")
	if st := status.Convert(err); st.Code() != codes.InvalidArgument || st.Message() != `filter: cannot filter on "x"` {
		t.Fatalf("Errorf: %v", err)
	}
}

// format writes terms back as filter text, every value quoted.
func format(terms []Term) string {
	var b strings.Builder
	for i, t := range terms {
		if i > 0 {
			b.WriteString(" AND ")
		}
		b.WriteString(t.Field + " " + t.Op + ` "`)
		for j := 0; j < len(t.Value); j++ {
			if c := t.Value[j]; c == '"' || c == '\\' {
				b.WriteByte('\\')
			}
			b.WriteByte(t.Value[j])
		}
		b.WriteByte('"')
	}
	return b.String()
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`display_name = "x*"`, `labels.a = b AND state != ACTIVE`, `create_time > 2026-01-01T00:00:00Z`,
		`federated_identities.issuer:"x"`, `"`, `a AND`, "labels:\x00", `x = "\`, `a=b AND c<=d AND e>="f\"g"`,
		`NOT a = b`, `-a = b`, `a = b OR c = d`, "a = \"\xff\" AND b = \xfe",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		if strings.TrimSpace(text) == "" {
			return // Compile's case, not parse's
		}
		terms, err := parse(text)
		if err != nil {
			st, ok := status.FromError(err)
			if !ok || st.Code() != codes.InvalidArgument || !strings.HasPrefix(st.Message(), "filter: ") {
				t.Fatalf("%q: %v", text, err)
			}
			// The message travels in a proto string and gateway JSON.
			if !utf8.ValidString(st.Message()) {
				t.Fatalf("%q: message %q", text, st.Message())
			}
			return
		}
		if len(terms) == 0 || len(terms) > maxLen/3 {
			t.Fatalf("%q: %d terms", text, len(terms))
		}
		for _, tm := range terms {
			if tm.Field == "" || !isFieldChar(tm.Field[0], true) || !slices.Contains([]string{"=", "!=", ":", "<", "<=", ">", ">="}, tm.Op) ||
				(!tm.Quoted && (tm.Value == "" || strings.ContainsAny(tm.Value, " \t\r\n"))) {
				t.Fatalf("%q: bad term %+v", text, tm)
			}
			for i := range len(tm.Field) {
				if !isFieldChar(tm.Field[i], i == 0) {
					t.Fatalf("%q: bad field %q", text, tm.Field)
				}
			}
		}
		// Written back with every value quoted, the filter parses to the
		// same terms.
		again := format(terms)
		if len(again) > maxLen {
			return
		}
		got, err := parse(again)
		if err != nil || len(got) != len(terms) {
			t.Fatalf("%q -> %q: %+v, %v", text, again, got, err)
		}
		for i := range got {
			if got[i].Field != terms[i].Field || got[i].Op != terms[i].Op || got[i].Value != terms[i].Value || !got[i].Quoted {
				t.Fatalf("%q -> %q: term %d %+v, want %+v", text, again, i, got[i], terms[i])
			}
		}
	})
}
