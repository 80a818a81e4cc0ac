package policy

import (
	"fmt"
	"strings"
)

// A permission is "service:resource:verb", e.g. "plasmavmc:vms:start".
// Each segment is 1-63 of [a-zA-Z0-9], starting with a lower-case letter
// (camelCase resources and verbs such as serviceAccounts or setPassword are
// allowed). In a role, a segment may instead be "*", which matches any one
// whole segment; partial wildcards ("vm*") and wildcards spanning segments
// do not exist. Permissions in requests are always concrete.
const maxPermSegLen = 63

// permission is a parsed concrete permission. The segment strings and the
// two-segment keys are substrings of full, so parsing allocates nothing.
type permission struct {
	full     string
	svc      string // service
	res      string // resource
	verb     string
	svcRes   string // "service:resource"
	resVerb  string // "resource:verb"
	svcAndVb [2]string
}

// parsePermission parses a concrete permission.
func parsePermission(s string) (permission, error) {
	i1 := strings.IndexByte(s, ':')
	if i1 < 0 {
		return permission{}, fmt.Errorf("%w %s: want service:resource:verb", ErrInvalidPermission, quote(s))
	}
	i2 := strings.IndexByte(s[i1+1:], ':')
	if i2 < 0 {
		return permission{}, fmt.Errorf("%w %s: want service:resource:verb", ErrInvalidPermission, quote(s))
	}
	i2 += i1 + 1
	p := permission{
		full:    s,
		svc:     s[:i1],
		res:     s[i1+1 : i2],
		verb:    s[i2+1:],
		svcRes:  s[:i2],
		resVerb: s[i1+1:],
	}
	p.svcAndVb = [2]string{p.svc, p.verb}
	for _, seg := range [3]string{p.svc, p.res, p.verb} {
		if seg == "*" {
			return permission{}, fmt.Errorf("%w %s: wildcards are only allowed in role permissions", ErrInvalidPermission, quote(s))
		}
		if why := checkPermSegment(seg); why != "" {
			return permission{}, fmt.Errorf("%w %s: %s", ErrInvalidPermission, quote(s), why)
		}
	}
	return p, nil
}

// ValidatePermission reports whether s is a valid concrete permission.
func ValidatePermission(s string) error {
	_, err := parsePermission(s)
	return err
}

// ValidatePermissionPattern reports whether s is a valid role permission
// (segments may be "*").
func ValidatePermissionPattern(s string) error {
	_, err := parsePattern(s)
	return err
}

func checkPermSegment(seg string) string {
	if seg == "" || len(seg) > maxPermSegLen {
		return fmt.Sprintf("segment %s must be 1-%d characters", quote(seg), maxPermSegLen)
	}
	if !isLower(seg[0]) {
		return fmt.Sprintf("segment %s must start with a lower-case letter", quote(seg))
	}
	for i := 1; i < len(seg); i++ {
		c := seg[i]
		if !(isLower(c) || isUpper(c) || isDigit(c)) {
			return fmt.Sprintf("segment %s: only letters and digits allowed", quote(seg))
		}
	}
	return ""
}

// pattern is a parsed role permission; "" stands for a "*" segment.
type pattern [3]string

// parsePattern parses a role permission, allowing "*" segments.
func parsePattern(s string) (pattern, error) {
	parts := strings.SplitN(s, ":", 4)
	if len(parts) != 3 {
		return pattern{}, fmt.Errorf("%w %s: want service:resource:verb", ErrInvalidPermission, quote(s))
	}
	var p pattern
	for i, seg := range parts {
		if seg == "*" {
			continue
		}
		if why := checkPermSegment(seg); why != "" {
			return pattern{}, fmt.Errorf("%w %s: %s", ErrInvalidPermission, quote(s), why)
		}
		p[i] = seg
	}
	return p, nil
}

func (p pattern) String() string {
	seg := func(s string) string {
		if s == "" {
			return "*"
		}
		return s
	}
	return seg(p[0]) + ":" + seg(p[1]) + ":" + seg(p[2])
}

// shape numbers the eight wildcard shapes: bit 2 set = service concrete,
// bit 1 = resource concrete, bit 0 = verb concrete.
func (p pattern) shape() int {
	sh := 0
	for i, seg := range p {
		if seg != "" {
			sh |= 1 << (2 - i)
		}
	}
	return sh
}

// matches is the reference definition of pattern matching; the compiled
// matcher must agree with it (tests and fuzzing check this).
func (p pattern) matches(perm permission) bool {
	return (p[0] == "" || p[0] == perm.svc) &&
		(p[1] == "" || p[1] == perm.res) &&
		(p[2] == "" || p[2] == perm.verb)
}

// matcher answers "does this set of patterns match a concrete permission"
// with at most one hash lookup per wildcard shape present in the set,
// whatever the number of patterns: patterns are bucketed by shape, and each
// bucket is keyed by the concrete segments, which for a parsed permission
// are substrings of it (no allocation on the decision path).
type matcher struct {
	shapes uint8                  // bit sh set = bucket sh non-empty
	svc    map[string]struct{}    // s:*:*
	res    map[string]struct{}    // *:r:*
	verb   map[string]struct{}    // *:*:v
	svcRes map[string]struct{}    // s:r:*
	svcVb  map[[2]string]struct{} // s:*:v
	resVb  map[string]struct{}    // *:r:v
	exact  map[string]struct{}    // s:r:v
}

const (
	shapeAll    = 0b000
	shapeVerb   = 0b001
	shapeRes    = 0b010
	shapeResVb  = 0b011
	shapeSvc    = 0b100
	shapeSvcVb  = 0b101
	shapeSvcRes = 0b110
	shapeExact  = 0b111
)

func newMatcher(ps []pattern) matcher {
	var m matcher
	add := func(mp *map[string]struct{}, k string) {
		if *mp == nil {
			*mp = map[string]struct{}{}
		}
		(*mp)[k] = struct{}{}
	}
	for _, p := range ps {
		sh := p.shape()
		m.shapes |= 1 << sh
		switch sh {
		case shapeAll:
		case shapeVerb:
			add(&m.verb, p[2])
		case shapeRes:
			add(&m.res, p[1])
		case shapeResVb:
			add(&m.resVb, p[1]+":"+p[2])
		case shapeSvc:
			add(&m.svc, p[0])
		case shapeSvcVb:
			if m.svcVb == nil {
				m.svcVb = map[[2]string]struct{}{}
			}
			m.svcVb[[2]string{p[0], p[2]}] = struct{}{}
		case shapeSvcRes:
			add(&m.svcRes, p[0]+":"+p[1])
		case shapeExact:
			add(&m.exact, p[0]+":"+p[1]+":"+p[2])
		}
	}
	return m
}

func (m *matcher) match(p *permission) bool {
	sh := m.shapes
	if sh == 0 {
		return false
	}
	has := func(bucket int) bool { return sh&(1<<bucket) != 0 }
	if has(shapeAll) {
		return true
	}
	if has(shapeExact) {
		if _, ok := m.exact[p.full]; ok {
			return true
		}
	}
	if has(shapeSvc) {
		if _, ok := m.svc[p.svc]; ok {
			return true
		}
	}
	if has(shapeSvcRes) {
		if _, ok := m.svcRes[p.svcRes]; ok {
			return true
		}
	}
	if has(shapeSvcVb) {
		if _, ok := m.svcVb[p.svcAndVb]; ok {
			return true
		}
	}
	if has(shapeVerb) {
		if _, ok := m.verb[p.verb]; ok {
			return true
		}
	}
	if has(shapeRes) {
		if _, ok := m.res[p.res]; ok {
			return true
		}
	}
	if has(shapeResVb) {
		if _, ok := m.resVb[p.resVerb]; ok {
			return true
		}
	}
	return false
}
