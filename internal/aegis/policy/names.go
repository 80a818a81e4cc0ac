package policy

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// SystemScope is the name of the root scope. Every other resource name
// starts with "orgs/".
const SystemScope = "system"

const (
	maxNameLen       = 1024 // bytes in a resource or scope name
	maxResourcePairs = 4    // <kind>/<id> pairs below an org or project
	// maxAncestors is the number of names on the path from system to the
	// deepest resource, both included: system, org, project, 4 pairs.
	maxAncestors = 3 + maxResourcePairs

	maxOrgIDLen       = 63
	maxKindLen        = 63
	maxResourceIDLen  = 253 // a full DNS name fits
	maxPrincipalIDLen = 128
	maxRoleIDLen      = 64
	maxBindingIDLen   = 128

	maxLabels        = 64
	maxLabelKeyLen   = 128
	maxLabelValueLen = 1024
)

// Level is the depth class of a resource name.
type Level uint8

// Levels, from the root down.
const (
	LevelSystem   Level = iota // "system"
	LevelOrg                   // "orgs/<org>"
	LevelProject               // "orgs/<org>/projects/<project>"
	LevelResource              // "…/<kind>/<id>" below an org or a project
)

func (l Level) String() string {
	switch l {
	case LevelSystem:
		return "system"
	case LevelOrg:
		return "org"
	case LevelProject:
		return "project"
	case LevelResource:
		return "resource"
	}
	return fmt.Sprintf("Level(%d)", uint8(l))
}

// Resource is a parsed, validated resource name. Scopes are resource names
// too: a binding's scope may be system, an org, a project or a single
// resource, and it applies to that name and everything below it.
//
// Grammar (all names are case-sensitive):
//
//	system
//	orgs/<org>
//	orgs/<org>/projects/<project>
//	orgs/<org>[/projects/<project>]/<kind>/<id>[/<kind>/<id>]...   (at most 4 pairs)
//
//	<org>, <project>: 1-63 of [a-z0-9-], starting with a letter, not ending with '-'
//	<kind>:           1-63 of [a-zA-Z0-9], starting with a lower-case letter,
//	                  not "orgs" or "projects" (e.g. vms, zones, records, serviceAccounts)
//	<id>:             1-253 of [A-Za-z0-9._~-], starting with a letter, digit or '_'
//
// The whole name is at most 1024 bytes. Nested pairs express containment
// (orgs/a/projects/b/zones/example.com/records/www): a grant on the zone
// applies to its records.
type Resource struct {
	name    string
	level   Level
	org     string
	project string
	kind    string
	id      string
	// ends[i] is the end offset in name of the i-th ancestor below system
	// (the org, then the project if any, then each <kind>/<id> pair); the
	// last one is len(name). Ancestors are prefixes of the name, so walking
	// them allocates nothing.
	ends [maxAncestors - 1]uint16
	n    uint8
}

// ParseResource parses and validates a resource or scope name.
func ParseResource(s string) (Resource, error) {
	if s == SystemScope {
		return Resource{name: s, level: LevelSystem}, nil
	}
	bad := func(format string, args ...any) (Resource, error) {
		return Resource{}, fmt.Errorf("%w %s: %s", ErrInvalidName, quote(s), fmt.Sprintf(format, args...))
	}
	switch {
	case s == "":
		return bad("empty resource name")
	case len(s) > maxNameLen:
		return bad("longer than %d bytes", maxNameLen)
	}
	r := Resource{name: s}
	sc := segScanner{s: s}
	if seg, _, ok := sc.next(); !ok || seg != "orgs" {
		return bad(`want "system" or a name starting with "orgs/"`)
	}
	org, end, ok := sc.next()
	if !ok {
		return bad("missing org id")
	}
	if why := checkOrgID(org); why != "" {
		return bad("org id: %s", why)
	}
	r.org, r.level = org, LevelOrg
	r.push(end)
	seg, _, ok := sc.next()
	if !ok {
		return r, nil
	}
	if seg == "projects" {
		project, pend, ok := sc.next()
		if !ok {
			return bad("missing project id")
		}
		if why := checkOrgID(project); why != "" {
			return bad("project id: %s", why)
		}
		r.project, r.level = project, LevelProject
		r.push(pend)
		if seg, _, ok = sc.next(); !ok {
			return r, nil
		}
	}
	for pairs := 0; ; pairs++ {
		if pairs == maxResourcePairs {
			return bad("more than %d <kind>/<id> levels", maxResourcePairs)
		}
		if why := checkKind(seg); why != "" {
			return bad("resource kind: %s", why)
		}
		id, iend, ok := sc.next()
		if !ok {
			return bad("missing id after kind %s", quote(seg))
		}
		if why := checkResourceID(id); why != "" {
			return bad("resource id: %s", why)
		}
		r.kind, r.id, r.level = seg, id, LevelResource
		r.push(iend)
		if seg, _, ok = sc.next(); !ok {
			return r, nil
		}
	}
}

func (r *Resource) push(end int) {
	r.ends[r.n] = uint16(end)
	r.n++
}

// segScanner walks the '/'-separated segments of a name. An empty segment
// (leading, trailing or double slash) yields a "" segment, which every
// segment check rejects.
type segScanner struct {
	s   string
	pos int
}

func (sc *segScanner) next() (seg string, end int, ok bool) {
	if sc.pos > len(sc.s) {
		return "", 0, false
	}
	rest := sc.s[sc.pos:]
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		seg, end = rest[:i], sc.pos+i
		sc.pos = end + 1
		return seg, end, true
	}
	sc.pos = len(sc.s) + 1
	return rest, len(sc.s), true
}

// OrgOf returns the org id of a name below orgs/ ("acme" for
// "orgs/acme/users/alice"), "" for any other name. Unlike ParseResource it
// does not validate: it is for names that were validated when stored.
func OrgOf(name string) string {
	rest, ok := strings.CutPrefix(name, "orgs/")
	if !ok {
		return ""
	}
	id, _, _ := strings.Cut(rest, "/")
	return id
}

// String returns the name as given to ParseResource.
func (r Resource) String() string { return r.name }

// Level returns the depth class of the name.
func (r Resource) Level() Level { return r.level }

// Org returns the org id, or "" for system.
func (r Resource) Org() string { return r.org }

// Project returns the project id, or "" above or outside a project.
func (r Resource) Project() string { return r.project }

// Kind returns the kind of the innermost <kind>/<id> pair, or "".
func (r Resource) Kind() string { return r.kind }

// ID returns the id of the innermost <kind>/<id> pair, or "".
func (r Resource) ID() string { return r.id }

// depth returns the number of ancestor names including system and r.
func (r Resource) depth() int { return int(r.n) + 1 }

// ancestor returns the i-th name on the path from system (i == 0) to r
// (i == depth()-1).
func (r Resource) ancestor(i int) string {
	if i == 0 {
		return SystemScope
	}
	return r.name[:r.ends[i-1]]
}

// Ancestors returns the names from system down to r itself, both included.
func (r Resource) Ancestors() []string {
	out := make([]string, r.depth())
	for i := range out {
		out[i] = r.ancestor(i)
	}
	return out
}

// Contains reports whether other is r or lies below r, that is whether a
// grant at scope r applies to other.
func (r Resource) Contains(other Resource) bool {
	if r.level == LevelSystem {
		return other.name != ""
	}
	if r.n > other.n {
		return false
	}
	return other.ancestor(int(r.n)) == r.name
}

func checkOrgID(s string) string {
	if s == "" || len(s) > maxOrgIDLen {
		return fmt.Sprintf("%s must be 1-%d characters", quote(s), maxOrgIDLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(isLower(c) || isDigit(c) || c == '-') {
			return fmt.Sprintf("%s: only a-z, 0-9 and '-' allowed", quote(s))
		}
	}
	if !isLower(s[0]) || s[len(s)-1] == '-' {
		return fmt.Sprintf("%s must start with a letter and not end with '-'", quote(s))
	}
	return ""
}

func checkKind(s string) string {
	if s == "" || len(s) > maxKindLen {
		return fmt.Sprintf("%s must be 1-%d characters", quote(s), maxKindLen)
	}
	if !isLower(s[0]) {
		return fmt.Sprintf("%s must start with a lower-case letter", quote(s))
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !(isLower(c) || isUpper(c) || isDigit(c)) {
			return fmt.Sprintf("%s: only letters and digits allowed", quote(s))
		}
	}
	if s == "orgs" || s == "projects" {
		return fmt.Sprintf("%s is reserved", quote(s))
	}
	return ""
}

func checkResourceID(s string) string {
	if s == "" || len(s) > maxResourceIDLen {
		return fmt.Sprintf("%s must be 1-%d characters", quote(s), maxResourceIDLen)
	}
	if c := s[0]; !(isLower(c) || isUpper(c) || isDigit(c) || c == '_') {
		return fmt.Sprintf("%s must start with a letter, digit or '_'", quote(s))
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !(isLower(c) || isUpper(c) || isDigit(c) || c == '.' || c == '_' || c == '~' || c == '-') {
			return fmt.Sprintf("%s: only A-Z, a-z, 0-9 and . _ ~ - allowed", quote(s))
		}
	}
	return ""
}

// PrincipalKind says what a principal reference names.
type PrincipalKind uint8

// Principal kinds. The zero value is invalid.
const (
	KindUser           PrincipalKind = iota + 1 // "users/<id>"
	KindServiceAccount                          // "serviceAccounts/<id>"
	KindGroup                                   // "groups/<id>"
)

// String returns the kind as exposed to CEL conditions as principal.kind:
// "user", "serviceAccount" or "group".
func (k PrincipalKind) String() string {
	switch k {
	case KindUser:
		return "user"
	case KindServiceAccount:
		return "serviceAccount"
	case KindGroup:
		return "group"
	}
	return fmt.Sprintf("PrincipalKind(%d)", uint8(k))
}

func (k PrincipalKind) collection() string {
	switch k {
	case KindUser:
		return "users"
	case KindServiceAccount:
		return "serviceAccounts"
	case KindGroup:
		return "groups"
	}
	return ""
}

// PrincipalRef is a parsed reference to a user, service account or group.
//
// The textual form is "<collection>/<id>": "users/<id>",
// "serviceAccounts/<id>" or "groups/<id>". Ids are 1-128 of [a-z0-9._-],
// starting and ending with a letter or digit, and are unique per kind
// across the whole installation (the server assigns them; they are not
// scoped by org, so that a binding names exactly one principal). A
// principal that is deleted and re-created must get a new id, or bindings
// left over from the old one would apply to the new one.
type PrincipalRef struct {
	Kind PrincipalKind
	ID   string
}

// ParsePrincipalRef parses "users/<id>", "serviceAccounts/<id>" or
// "groups/<id>".
func ParsePrincipalRef(s string) (PrincipalRef, error) {
	coll, id, ok := strings.Cut(s, "/")
	if !ok {
		return PrincipalRef{}, fmt.Errorf("%w %s: want users/<id>, serviceAccounts/<id> or groups/<id>", ErrInvalidName, quote(s))
	}
	var k PrincipalKind
	switch coll {
	case "users":
		k = KindUser
	case "serviceAccounts":
		k = KindServiceAccount
	case "groups":
		k = KindGroup
	default:
		return PrincipalRef{}, fmt.Errorf("%w %s: want users/<id>, serviceAccounts/<id> or groups/<id>", ErrInvalidName, quote(s))
	}
	if why := checkPrincipalID(id); why != "" {
		return PrincipalRef{}, fmt.Errorf("%w %s: %s id: %s", ErrInvalidName, quote(s), k, why)
	}
	return PrincipalRef{Kind: k, ID: id}, nil
}

// String returns the textual form, e.g. "users/alice".
func (p PrincipalRef) String() string { return p.Kind.collection() + "/" + p.ID }

func checkPrincipalID(s string) string {
	if s == "" || len(s) > maxPrincipalIDLen {
		return fmt.Sprintf("%s must be 1-%d characters", quote(s), maxPrincipalIDLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(isLower(c) || isDigit(c) || c == '.' || c == '_' || c == '-') {
			return fmt.Sprintf("%s: only a-z, 0-9 and . _ - allowed", quote(s))
		}
	}
	if first, last := s[0], s[len(s)-1]; !(isLower(first) || isDigit(first)) || !(isLower(last) || isDigit(last)) {
		return fmt.Sprintf("%s must start and end with a letter or digit", quote(s))
	}
	return ""
}

// parseRoleName validates a role reference. A name without '/' must be a
// built-in role; a custom role is "orgs/<org>/roles/<id>" with <id> 1-64 of
// [A-Za-z0-9._-] starting with a letter. It returns the owning org of a
// custom role ("" for built-ins).
func parseRoleName(s string, builtin func(string) bool) (org string, err error) {
	if !strings.Contains(s, "/") {
		if builtin(s) {
			return "", nil
		}
		return "", fmt.Errorf("%w %s: not a built-in role (custom roles are orgs/<org>/roles/<id>)", ErrInvalidName, quote(s))
	}
	rest, ok := strings.CutPrefix(s, "orgs/")
	if !ok {
		return "", fmt.Errorf("%w %s: custom roles are orgs/<org>/roles/<id>", ErrInvalidName, quote(s))
	}
	org, rest, ok = strings.Cut(rest, "/")
	if !ok {
		return "", fmt.Errorf("%w %s: custom roles are orgs/<org>/roles/<id>", ErrInvalidName, quote(s))
	}
	if why := checkOrgID(org); why != "" {
		return "", fmt.Errorf("%w %s: org id: %s", ErrInvalidName, quote(s), why)
	}
	id, ok := strings.CutPrefix(rest, "roles/")
	if !ok {
		return "", fmt.Errorf("%w %s: custom roles are orgs/<org>/roles/<id>", ErrInvalidName, quote(s))
	}
	if why := checkRoleID(id); why != "" {
		return "", fmt.Errorf("%w %s: role id: %s", ErrInvalidName, quote(s), why)
	}
	return org, nil
}

func checkRoleID(s string) string {
	if s == "" || len(s) > maxRoleIDLen {
		return fmt.Sprintf("%s must be 1-%d characters", quote(s), maxRoleIDLen)
	}
	if !(isLower(s[0]) || isUpper(s[0])) {
		return fmt.Sprintf("%s must start with a letter", quote(s))
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !(isLower(c) || isUpper(c) || isDigit(c) || c == '.' || c == '_' || c == '-') {
			return fmt.Sprintf("%s: only A-Z, a-z, 0-9 and . _ - allowed", quote(s))
		}
	}
	return ""
}

// checkBindingID validates a binding id: 1-128 of [A-Za-z0-9._-], starting
// with a letter or digit.
func checkBindingID(s string) error {
	ok := s != "" && len(s) <= maxBindingIDLen && (isLower(s[0]) || isUpper(s[0]) || isDigit(s[0]))
	for i := 1; ok && i < len(s); i++ {
		c := s[i]
		ok = isLower(c) || isUpper(c) || isDigit(c) || c == '.' || c == '_' || c == '-'
	}
	if !ok {
		return fmt.Errorf("%w %s: binding id must be 1-%d of A-Z, a-z, 0-9, . _ -, starting with a letter or digit", ErrInvalidName, quote(s), maxBindingIDLen)
	}
	return nil
}

// checkLabels validates a label map: at most 64 entries, keys 1-128 of
// [A-Za-z0-9._/-], values at most 1024 bytes of valid UTF-8.
func checkLabels(m map[string]string) string {
	if len(m) > maxLabels {
		return fmt.Sprintf("more than %d labels", maxLabels)
	}
	for k, v := range m {
		if k == "" || len(k) > maxLabelKeyLen {
			return fmt.Sprintf("label key %s must be 1-%d bytes", quote(k), maxLabelKeyLen)
		}
		for i := 0; i < len(k); i++ {
			c := k[i]
			if !(isLower(c) || isUpper(c) || isDigit(c) || c == '.' || c == '_' || c == '/' || c == '-') {
				return fmt.Sprintf("label key %s: only A-Z, a-z, 0-9 and . _ / - allowed", quote(k))
			}
		}
		if len(v) > maxLabelValueLen || !utf8.ValidString(v) {
			return fmt.Sprintf("label %s: value must be valid UTF-8 of at most %d bytes", quote(k), maxLabelValueLen)
		}
	}
	return ""
}

func isLower(c byte) bool { return 'a' <= c && c <= 'z' }
func isUpper(c byte) bool { return 'A' <= c && c <= 'Z' }
func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// quote quotes untrusted input for an error message, cutting it short so a
// megabyte of garbage does not end up in a log line.
func quote(s string) string {
	const max = 96
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		return fmt.Sprintf("%q…", s[:cut])
	}
	return fmt.Sprintf("%q", s)
}
