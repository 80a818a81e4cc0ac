package server

import (
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	flashdnsv1 "github.com/photoncloud/photoncloud/api/flashdns/v1"
)

// ListZones filters: the AIP-160 subset of the API (zones.proto, after
// aegis.v1's common.proto):
//
//	filter = term { "AND" term }
//	term   = field ("=" | "!=") value | "labels" ":" key
//	field  = "kind" | "dns_name" | "enabled" | "labels." key
//	value  = "quoted string" | bare-word
//
// A trailing '*' in a dns_name value compares as a prefix.

const maxFilterLen = 4096

func filterErr(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, "filter: "+format, args...)
}

type term struct{ field, op, value string }

func tokenizeFilter(text string) ([]term, error) {
	var terms []term
	i, n := 0, len(text)
	skip := func() {
		for i < n && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r') {
			i++
		}
	}
	for {
		skip()
		start := i
		for i < n && (text[i] == '_' || text[i] == '.' || text[i] == '-' ||
			'a' <= text[i] && text[i] <= 'z' || 'A' <= text[i] && text[i] <= 'Z' || '0' <= text[i] && text[i] <= '9') {
			i++
		}
		if i == start {
			return nil, filterErr("expected a field name at offset %d", start)
		}
		t := term{field: text[start:i]}
		skip()
		switch {
		case strings.HasPrefix(text[i:], "!="):
			t.op, i = "!=", i+2
		case i < n && (text[i] == '=' || text[i] == ':'):
			t.op, i = text[i:i+1], i+1
		default:
			return nil, filterErr("expected =, != or : after %q", clip(t.field))
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
			t.value = b.String()
		} else {
			start := i
			for i < n && text[i] != ' ' && text[i] != '\t' && text[i] != '\n' && text[i] != '\r' {
				i++
			}
			if t.value = text[start:i]; t.value == "" {
				return nil, filterErr("expected a value after %q %s", clip(t.field), t.op)
			}
		}
		terms = append(terms, t)
		skip()
		if i == n {
			return terms, nil
		}
		word := i
		for i < n && text[i] != ' ' && text[i] != '\t' {
			i++
		}
		switch w := text[word:i]; w {
		case "AND":
			if skip(); i == n {
				return nil, filterErr("AND at the end")
			}
		case "OR", "NOT":
			return nil, filterErr("%s is not supported; only AND", w)
		default:
			return nil, filterErr("expected AND, got %q", clip(w))
		}
	}
}

// compileZoneFilter compiles a ListZones filter; nil for none.
func compileZoneFilter(text string) (func(*flashdnsv1.Zone) bool, error) {
	if strings.TrimSpace(text) == "" {
		return nil, nil
	}
	if len(text) > maxFilterLen {
		return nil, filterErr("longer than %d bytes", maxFilterLen)
	}
	terms, err := tokenizeFilter(text)
	if err != nil {
		return nil, err
	}
	preds := make([]func(*flashdnsv1.Zone) bool, 0, len(terms))
	for _, t := range terms {
		p, err := compileTerm(t)
		if err != nil {
			return nil, err
		}
		if t.op == "!=" {
			eq := p
			p = func(z *flashdnsv1.Zone) bool { return !eq(z) }
		}
		preds = append(preds, p)
	}
	return func(z *flashdnsv1.Zone) bool {
		for _, p := range preds {
			if !p(z) {
				return false
			}
		}
		return true
	}, nil
}

// compileTerm compiles a term as equality (the caller negates for !=).
func compileTerm(t term) (func(*flashdnsv1.Zone) bool, error) {
	if t.op == ":" {
		if t.field != "labels" {
			return nil, filterErr(": applies to labels only (labels:KEY)")
		}
		key := t.value
		return func(z *flashdnsv1.Zone) bool { _, ok := z.GetLabels()[key]; return ok }, nil
	}
	switch f := t.field; {
	case f == "kind":
		var kind flashdnsv1.Zone_Kind
		switch strings.ToUpper(t.value) {
		case "KIND_FORWARD", "FORWARD":
			kind = flashdnsv1.Zone_KIND_FORWARD
		case "KIND_REVERSE", "REVERSE":
			kind = flashdnsv1.Zone_KIND_REVERSE
		default:
			return nil, filterErr("kind is KIND_FORWARD or KIND_REVERSE, not %q", clip(t.value))
		}
		return func(z *flashdnsv1.Zone) bool { return z.GetKind() == kind }, nil
	case f == "dns_name":
		v := strings.ToLower(t.value)
		if prefix, ok := strings.CutSuffix(v, "*"); ok {
			return func(z *flashdnsv1.Zone) bool { return strings.HasPrefix(z.GetDnsName(), prefix) }, nil
		}
		if !strings.HasSuffix(v, ".") {
			v += "."
		}
		return func(z *flashdnsv1.Zone) bool { return z.GetDnsName() == v }, nil
	case f == "enabled":
		var want bool
		switch strings.ToLower(t.value) {
		case "true":
			want = true
		case "false":
		default:
			return nil, filterErr("enabled is true or false, not %q", clip(t.value))
		}
		return func(z *flashdnsv1.Zone) bool { return z.GetEnabled() == want }, nil
	case strings.HasPrefix(f, "labels."):
		key, val := strings.TrimPrefix(f, "labels."), t.value
		return func(z *flashdnsv1.Zone) bool {
			v, ok := z.GetLabels()[key]
			return ok && v == val
		}, nil
	}
	return nil, filterErr("unknown field %q (kind, dns_name, enabled, labels)", clip(t.field))
}
