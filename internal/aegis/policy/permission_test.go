package policy

import (
	"errors"
	"strings"
	"testing"
)

func TestParsePermission(t *testing.T) {
	for _, s := range []string{"plasmavmc:vms:start", "aegis:serviceAccounts:list", "a:b:c", "flaredb:data:read", "x1:y2:z3"} {
		p, err := parsePermission(s)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		if p.svc+":"+p.res+":"+p.verb != s || p.svcRes != p.svc+":"+p.res || p.resVerb != p.res+":"+p.verb || p.full != s {
			t.Fatalf("%s: bad split %+v", s, p)
		}
	}
	for _, s := range []string{
		"", "a", "a:b", "a:b:c:d", ":b:c", "a::c", "a:b:", "A:b:c", "a:B:c", "1a:b:c", "a-b:c:d", "a:b:c ", "a:b:*",
		"*:b:c", "a:*:c", "*:*:*", "a:b:c\x00", "a:b:" + strings.Repeat("c", 64), "é:b:c",
	} {
		if err := ValidatePermission(s); !errors.Is(err, ErrInvalidPermission) {
			t.Errorf("ValidatePermission(%q) = %v", s, err)
		}
	}
}

func TestParsePattern(t *testing.T) {
	for _, s := range []string{"*:*:*", "a:*:*", "*:b:*", "*:*:c", "a:b:*", "a:*:c", "*:b:c", "a:b:c"} {
		p, err := parsePattern(s)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		if p.String() != s {
			t.Fatalf("%s round-trips to %s", s, p)
		}
	}
	for _, s := range []string{"", "*", "*:*", "*:*:*:*", "a*:b:c", "a:b*:c", "a:b:**", "a:b:c*", "*a:b:c", "a:b:", "**:b:c"} {
		if err := ValidatePermissionPattern(s); !errors.Is(err, ErrInvalidPermission) {
			t.Errorf("ValidatePermissionPattern(%q) = %v", s, err)
		}
	}
}

// TestMatcherExhaustive compares the compiled matcher with the reference
// definition for every pattern set of size <= 2 over a small vocabulary and
// every concrete permission over it.
func TestMatcherExhaustive(t *testing.T) {
	segs := []string{"*", "a", "b"}
	var pats []pattern
	for _, s := range segs {
		for _, r := range segs {
			for _, v := range segs {
				p, err := parsePattern(s + ":" + r + ":" + v)
				if err != nil {
					t.Fatal(err)
				}
				pats = append(pats, p)
			}
		}
	}
	var perms []permission
	for _, s := range []string{"a", "b", "c"} {
		for _, r := range []string{"a", "b", "c"} {
			for _, v := range []string{"a", "b", "c"} {
				p, err := parsePermission(s + ":" + r + ":" + v)
				if err != nil {
					t.Fatal(err)
				}
				perms = append(perms, p)
			}
		}
	}
	sets := [][]pattern{nil}
	for i := range pats {
		sets = append(sets, []pattern{pats[i]})
		for j := i + 1; j < len(pats); j++ {
			sets = append(sets, []pattern{pats[i], pats[j]})
		}
	}
	for _, set := range sets {
		m := newMatcher(set)
		for i := range perms {
			want := false
			for _, p := range set {
				want = want || p.matches(perms[i])
			}
			if got := m.match(&perms[i]); got != want {
				t.Fatalf("patterns %v perm %s: got %v want %v", set, perms[i].full, got, want)
			}
		}
	}
}

func TestWildcardIsWholeSegment(t *testing.T) {
	m := newMatcher([]pattern{{"plasmavmc", "vms", ""}})
	for perm, want := range map[string]bool{
		"plasmavmc:vms:start":   true,
		"plasmavmc:vms:get":     true,
		"plasmavmc:vmsx:get":    false,
		"plasmavmc:vm:get":      false,
		"plasmavmcx:vms:get":    false,
		"flashdns:vms:get":      false,
		"plasmavmc:images:list": false,
	} {
		p, err := parsePermission(perm)
		if err != nil {
			t.Fatal(err)
		}
		if got := m.match(&p); got != want {
			t.Errorf("%s: got %v want %v", perm, got, want)
		}
	}
}
