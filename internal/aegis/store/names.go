package store

import (
	"net/url"
	"strings"

	aegisv1 "github.com/photoncloud/photoncloud/api/aegis/v1"
)

// Key prefixes; see the package comment for the layout.
const (
	iamPrefix     = "/aegis/iam/"
	auditPrefix   = "/aegis/audit/"
	refreshPrefix = "/aegis/refresh/"

	secretPasswordPrefix = iamPrefix + "secret/password/"
	secretKeyPrefix      = iamPrefix + "secret/sakey/"
	gverPrefix           = iamPrefix + "gver/"
	refPrefix            = iamPrefix + "ref/"
	uniqueClientIDPrefix = iamPrefix + "unique/clientid/"
	uniqueFedPrefix      = iamPrefix + "unique/federated/"
	uniqueCertPrefix     = iamPrefix + "unique/cert/"
	revokedTokenPrefix   = iamPrefix + "revoked/token/"
	revokedSubjectPrefix = iamPrefix + "revoked/principal/"
	signingKeysKey       = iamPrefix + "signingkeys"
)

// kind is a kind of API record.
type kind uint8

const (
	kindOrg kind = iota + 1
	kindProject
	kindUser
	kindGroup
	kindMember
	kindServiceAccount
	kindKey
	kindRole
	kindBinding
	numKinds
)

var kindSegs = [numKinds]string{
	kindOrg: "org", kindProject: "project", kindUser: "user", kindGroup: "group",
	kindMember: "member", kindServiceAccount: "sa", kindKey: "sakey", kindRole: "role",
	kindBinding: "binding",
}

var kindNames = [numKinds]string{
	kindOrg: "org", kindProject: "project", kindUser: "user", kindGroup: "group",
	kindMember: "group member", kindServiceAccount: "service account",
	kindKey: "service account key", kindRole: "role", kindBinding: "binding",
}

func (k kind) String() string { return kindNames[k] }

// prefix returns the key prefix of every record of kind k.
func (k kind) prefix() string { return iamPrefix + kindSegs[k] + "/" }

// key returns the key of the record named name.
func (k kind) key(name string) string { return k.prefix() + name }

// kindOfKey returns the kind and name of a record key, or ok false for
// the other keys under iamPrefix.
func kindOfKey(key string) (kind, string, bool) {
	rest, ok := strings.CutPrefix(key, iamPrefix)
	if !ok {
		return 0, "", false
	}
	seg, name, ok := strings.Cut(rest, "/")
	if !ok {
		return 0, "", false
	}
	for k := kindOrg; k < numKinds; k++ {
		if kindSegs[k] == seg {
			return k, name, true
		}
	}
	return 0, "", false
}

// memberKey is the key of group's membership record of member.
func memberKey(group, member string) string { return kindMember.key(group + "/" + member) }

// splitMemberName splits the part of a membership key after its kind
// prefix into the group name (always four segments) and the member name.
func splitMemberName(s string) (group, member string, ok bool) {
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			n++
			if n == 4 {
				return s[:i], s[i+1:], true
			}
		}
	}
	return "", "", false
}

// refKey records that referrer (a binding or a group) refers to target (a
// principal, group or custom role), so that deleting target can check in
// its transaction that nothing new refers to it.
func refKey(target, referrer string) string { return refPrefix + target + "/by/" + referrer }

// refsOf is the prefix of every reference to target.
func refsOf(target string) string { return refPrefix + target + "/by/" }

func gverKey(group string) string { return gverPrefix + group }

func passwordKey(user string) string { return secretPasswordPrefix + user }

func keySecretKey(key string) string { return secretKeyPrefix + key }

func clientIDKey(id string) string { return uniqueClientIDPrefix + id }

func federatedKey(issuer, subject string) string {
	return uniqueFedPrefix + url.PathEscape(issuer) + "/" + url.PathEscape(subject)
}

// certKey is the uniqueness key of a certificate identity; ok is false if
// no match is set.
func certKey(ci *aegisv1.CertificateIdentity) (string, bool) {
	switch m := ci.GetMatch().(type) {
	case *aegisv1.CertificateIdentity_Sha256Fingerprint:
		return uniqueCertPrefix + "sha256/" + m.Sha256Fingerprint, true
	case *aegisv1.CertificateIdentity_UriSan:
		return uniqueCertPrefix + "uri/" + url.PathEscape(m.UriSan), true
	case *aegisv1.CertificateIdentity_DnsSan:
		return uniqueCertPrefix + "dns/" + url.PathEscape(m.DnsSan), true
	}
	return "", false
}

// prefixEnd returns the end of the key range of every key starting with p.
func prefixEnd(p string) string {
	b := []byte(p)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1])
		}
	}
	return "\x00"
}

// name is a parsed resource name.
type name struct {
	kind    kind
	full    string
	org     string // org id, "" for system and built-in roles
	project string // project id, "" outside projects
	id      string // last id
	parent  string // parent name: org, project, service account, container; "" for orgs
	builtin bool   // a built-in role, roles/{role}
}

// orgName returns "orgs/{org}".
func (n name) orgName() string { return "orgs/" + n.org }

// parseName parses and validates any record name.
func parseName(s string) (name, error) {
	if len(s) > 1024 {
		return name{}, invalidf("name longer than 1024 bytes")
	}
	seg := strings.Split(s, "/")
	bad := func() (name, error) { return name{}, invalidf("malformed resource name %q", clip(s)) }
	n := name{full: s}
	if len(seg) == 2 && seg[0] == "roles" {
		if err := checkRoleID(seg[1]); err != nil {
			return name{}, err
		}
		n.kind, n.id, n.builtin = kindRole, seg[1], true
		return n, nil
	}
	if len(seg) == 3 && seg[0] == "system" && seg[1] == "bindings" {
		if err := checkLabel("binding id", seg[2]); err != nil {
			return name{}, err
		}
		n.kind, n.id, n.parent = kindBinding, seg[2], "system"
		return n, nil
	}
	if len(seg) < 2 || seg[0] != "orgs" {
		return bad()
	}
	if err := checkScopeID("org id", seg[1]); err != nil {
		return name{}, err
	}
	n.org = seg[1]
	if len(seg) == 2 {
		n.kind, n.id = kindOrg, seg[1]
		return n, nil
	}
	rest := seg[2:]
	parent := "orgs/" + n.org
	if rest[0] == "projects" {
		if len(rest) < 2 {
			return bad()
		}
		if err := checkScopeID("project id", rest[1]); err != nil {
			return name{}, err
		}
		n.project = rest[1]
		if len(rest) == 2 {
			n.kind, n.id, n.parent = kindProject, rest[1], parent
			return n, nil
		}
		parent += "/projects/" + n.project
		rest = rest[2:]
		switch {
		case len(rest) == 2 && rest[0] == "serviceAccounts":
		case len(rest) == 4 && rest[0] == "serviceAccounts" && rest[2] == "keys":
		case len(rest) == 2 && rest[0] == "bindings":
		default:
			return bad()
		}
	}
	if len(rest) != 2 && !(len(rest) == 4 && rest[0] == "serviceAccounts" && rest[2] == "keys") {
		return bad()
	}
	id := rest[1]
	switch rest[0] {
	case "users":
		n.kind = kindUser
		if err := checkLabel("user id", id); err != nil {
			return name{}, err
		}
	case "groups":
		n.kind = kindGroup
		if err := checkLabel("group id", id); err != nil {
			return name{}, err
		}
	case "serviceAccounts":
		n.kind = kindServiceAccount
		if err := checkLabel("service account id", id); err != nil {
			return name{}, err
		}
		if len(rest) == 4 {
			parent += "/serviceAccounts/" + id
			id = rest[3]
			n.kind = kindKey
			if err := checkKeyID(id); err != nil {
				return name{}, err
			}
		}
	case "roles":
		n.kind = kindRole
		if err := checkRoleID(id); err != nil {
			return name{}, err
		}
	case "bindings":
		n.kind = kindBinding
		if err := checkLabel("binding id", id); err != nil {
			return name{}, err
		}
	default:
		return bad()
	}
	if n.project != "" && n.kind != kindServiceAccount && n.kind != kindKey && n.kind != kindBinding {
		return bad()
	}
	n.id, n.parent = id, parent
	return n, nil
}

// parseKind parses s and checks that it names a k.
func parseKind(s string, k kind) (name, error) {
	n, err := parseName(s)
	if err != nil {
		return name{}, err
	}
	if n.kind != k {
		return name{}, invalidf("%q is not a %s name", clip(s), k)
	}
	return n, nil
}

// container is a parsed binding container or service-account parent:
// system, an org or a project.
type container struct {
	full    string
	org     string
	project string
}

func parseContainer(s string, allowSystem bool) (container, error) {
	if s == "system" {
		if !allowSystem {
			return container{}, invalidf("%q: want an org or a project", s)
		}
		return container{full: s}, nil
	}
	n, err := parseName(s)
	if err != nil {
		return container{}, err
	}
	switch n.kind {
	case kindOrg, kindProject:
		return container{full: s, org: n.org, project: n.project}, nil
	}
	if allowSystem {
		return container{}, invalidf("%q: want system, an org or a project", clip(s))
	}
	return container{}, invalidf("%q: want an org or a project", clip(s))
}

// key returns the record key of the container ("" for system).
func (c container) key() string {
	switch {
	case c.project != "":
		return kindProject.key(c.full)
	case c.org != "":
		return kindOrg.key(c.full)
	}
	return ""
}

func isLower(c byte) bool { return 'a' <= c && c <= 'z' }
func isDigit(c byte) bool { return '0' <= c && c <= '9' }
func isUpper(c byte) bool { return 'A' <= c && c <= 'Z' }

// checkLabel validates a lowercase RFC 1123 label.
func checkLabel(what, s string) error {
	if s == "" || len(s) > 63 {
		return invalidf("%s %q must be 1-63 characters", what, clip(s))
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isLower(c) && !isDigit(c) && c != '-' {
			return invalidf("%s %q: only a-z, 0-9 and '-' allowed", what, clip(s))
		}
	}
	if s[0] == '-' || s[len(s)-1] == '-' {
		return invalidf("%s %q must start and end with a letter or digit", what, clip(s))
	}
	return nil
}

// checkScopeID validates an org or project id: an RFC 1123 label that also
// starts with a letter, because the policy engine's resource grammar
// requires it and every org and project is a scope.
func checkScopeID(what, s string) error {
	if err := checkLabel(what, s); err != nil {
		return err
	}
	if !isLower(s[0]) {
		return invalidf("%s %q must start with a letter", what, clip(s))
	}
	return nil
}

// checkRoleID validates `[a-zA-Z][a-zA-Z0-9_.]{2,63}`.
func checkRoleID(s string) error {
	ok := len(s) >= 3 && len(s) <= 64 && (isLower(s[0]) || isUpper(s[0]))
	for i := 1; ok && i < len(s); i++ {
		c := s[i]
		ok = isLower(c) || isUpper(c) || isDigit(c) || c == '_' || c == '.'
	}
	if !ok {
		return invalidf("role id %q must match [a-zA-Z][a-zA-Z0-9_.]{2,63}", clip(s))
	}
	return nil
}

// checkKeyID validates a service-account key id (generated by newKeyID).
func checkKeyID(s string) error {
	if err := checkLabel("key id", s); err != nil {
		return err
	}
	return nil
}

// clip shortens untrusted input for error messages.
func clip(s string) string {
	if len(s) > 96 {
		return s[:96] + "…"
	}
	return s
}
