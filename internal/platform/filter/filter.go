// Package filter parses the AIP-160 subset that the PhotonCloud List
// methods accept in their `filter` field (api/aegis/v1/common.proto):
//
//	filter = term { "AND" term }
//	term   = field op value
//	field  = letter-or-"_" { letter | digit | "_" | "." | "-" }
//	op     = "=" | "!=" | ":" | "<" | "<=" | ">" | ">="
//	value  = "quoted string" | bare-word
//
// and combines the terms into one predicate. What a field means, which
// operators it takes and how a value compares are the caller's: each
// server compiles a Term into a test on its own resources, because their
// fields differ (Aegis reads protobuf fields by reflection, FlashDNS has
// hand-written zone fields with DNS name rules). Only the grammar, its
// limits and its errors live here, so that both APIs speak the same
// filter language and reject it with the same kind of error.
//
// OR, NOT, "-" and parentheses are refused by name: a List method pages
// through a store in name order and tests each record, which a conjunction
// of per-field tests keeps cheap and easy to explain.
package filter

import (
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// maxLen bounds a filter's text, so that a request cannot make a server
// compile (and run on every listed record) an arbitrarily long predicate.
const maxLen = 4096

// Term is one `field op value` comparison of a filter.
type Term struct {
	// Field is the field path as written, e.g. "labels.env".
	Field string
	// Op is one of "=", "!=", ":", "<", "<=", ">", ">=".
	Op string
	// Value is the value with quotes and backslash escapes removed.
	Value string
	// Quoted tells a quoted value from a bare word, so that `labels:*`
	// (any key) can differ from `labels:"*"` (the key "*").
	Quoted bool
}

// Errorf returns the error for a filter a server cannot use: a gRPC
// INVALID_ARGUMENT status whose message starts with "filter: ". A filter
// always comes from a request, so a List method returns the error as it
// is; callers use Errorf for their own field errors so that every bad
// filter reads alike.
func Errorf(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, "filter: "+format, args...)
}

// Compile parses text and compiles each of its terms with compileTerm into
// one predicate that holds when every term holds. Blank text is no filter:
// Compile returns a nil predicate and no error. Errors are Errorf's, or
// compileTerm's as it returned them.
func Compile[T any](text string, compileTerm func(Term) (func(T) bool, error)) (func(T) bool, error) {
	if strings.TrimSpace(text) == "" {
		return nil, nil
	}
	terms, err := parse(text)
	if err != nil {
		return nil, err
	}
	preds := make([]func(T) bool, 0, len(terms))
	for _, t := range terms {
		p, err := compileTerm(t)
		if err != nil {
			return nil, err
		}
		preds = append(preds, p)
	}
	return func(v T) bool {
		for _, p := range preds {
			if !p(v) {
				return false
			}
		}
		return true
	}, nil
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// isFieldChar admits '-' and digits after the first character because
// label keys ("labels.team-a") contain them; a leading '-' is AIP-160's
// negation, which parse refuses by name.
func isFieldChar(c byte, first bool) bool {
	return c == '_' || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') ||
		(!first && (c == '.' || c == '-' || ('0' <= c && c <= '9')))
}

// parse splits a filter into its terms; text holds at least one
// non-blank character.
func parse(text string) ([]Term, error) {
	if len(text) > maxLen {
		return nil, Errorf("longer than %d bytes", maxLen)
	}
	var terms []Term
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
			if i < n && text[i] == '-' {
				return nil, Errorf("- (NOT) is not supported; only AND")
			}
			return nil, Errorf("expected a field name at offset %d", start)
		}
		t := Term{Field: text[start:i]}
		skip()
		switch {
		case strings.HasPrefix(text[i:], "!="), strings.HasPrefix(text[i:], "<="), strings.HasPrefix(text[i:], ">="):
			t.Op, i = text[i:i+2], i+2
		case i < n && strings.IndexByte("=:<>", text[i]) >= 0:
			t.Op, i = text[i:i+1], i+1
		case t.Field == "NOT":
			return nil, Errorf("NOT is not supported; only AND")
		default:
			return nil, Errorf("expected an operator after %q", clip(t.Field))
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
				return nil, Errorf("unterminated string after %q", clip(t.Field))
			}
			t.Value, t.Quoted = b.String(), true
		} else {
			start := i
			for i < n && !isSpace(text[i]) {
				i++
			}
			if t.Value = text[start:i]; t.Value == "" {
				return nil, Errorf("expected a value after %q %s", clip(t.Field), t.Op)
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
			if skip(); i == n {
				return nil, Errorf("AND at the end")
			}
		case "OR", "NOT", "-":
			return nil, Errorf("%s is not supported; only AND", w)
		default:
			return nil, Errorf("expected AND, got %q", clip(w))
		}
	}
}

// clip shortens untrusted input for error messages.
func clip(s string) string {
	if len(s) > 96 {
		return s[:96] + "…"
	}
	return s
}
