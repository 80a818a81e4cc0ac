package authn

import (
	"slices"
	"strings"

	"github.com/photoncloud/photoncloud/internal/aegis/token"
)

// maxPermissions bounds the permission subset of a downscoped token, as the
// API does ("At most 100"), so that a token stays well under
// token.MaxTokenBytes.
const maxPermissions = 100

// narrowing is a requested downscoping: a project and/or a permission
// subset. The zero value asks for nothing.
type narrowing struct {
	org         string // org of the project's name; set iff project is
	project     string // project id, "" for none
	permissions []string
}

// parseScope reads the OAuth2 "scope" parameter (RFC 6749 section 3.3):
// space-separated tokens, each a project name "orgs/<org>/projects/<p>" (at
// most one distinct) or a permission pattern "service:resource:verb".
func parseScope(scope string) (narrowing, error) {
	var n narrowing
	for _, tok := range strings.Split(scope, " ") {
		switch {
		case tok == "" || tok == "openid" || tok == "offline_access":
			// Empty: RFC 6749 separates by single spaces; tolerating runs
			// costs nothing. The other two are what standard OAuth2/OIDC
			// clients send by habit; they are accepted and ignored, since
			// Aegis issues no ID tokens and a login always gets a refresh
			// token.
		case strings.HasPrefix(tok, "orgs/"):
			org, project, ok := parseProjectName(tok)
			if !ok {
				return narrowing{}, errInvalidScope("scope '%s' is not orgs/<org>/projects/<project>", clip(tok))
			}
			if n.project != "" && (n.org != org || n.project != project) {
				return narrowing{}, errInvalidScope("scope names more than one project")
			}
			n.org, n.project = org, project
		case token.ValidPermission(tok):
			if !slices.Contains(n.permissions, tok) {
				n.permissions = append(n.permissions, tok)
			}
		default:
			return narrowing{}, errInvalidScope("unknown scope '%s'", clip(tok))
		}
	}
	if len(n.permissions) > maxPermissions {
		return narrowing{}, errInvalidScope("at most %d permissions", maxPermissions)
	}
	return n, nil
}

// parseNarrowing reads the project name and permissions of a gRPC request.
func parseNarrowing(project string, permissions []string) (narrowing, error) {
	var n narrowing
	if project != "" {
		org, p, ok := parseProjectName(project)
		if !ok {
			return narrowing{}, errInvalidScope("project '%s' is not orgs/<org>/projects/<project>", clip(project))
		}
		n.org, n.project = org, p
	}
	if len(permissions) > maxPermissions {
		return narrowing{}, errInvalidScope("at most %d permissions", maxPermissions)
	}
	for _, p := range permissions {
		if !token.ValidPermission(p) {
			return narrowing{}, errInvalidScope("permission '%s' is not service:resource:verb", clip(p))
		}
		if !slices.Contains(n.permissions, p) {
			n.permissions = append(n.permissions, p)
		}
	}
	return n, nil
}

// checkOrg refuses a project outside the principal's org before any
// credential is checked, where the org is known up front (logins).
func (n narrowing) checkOrg(org string) error {
	if n.project != "" && n.org != org {
		return errInvalidScope("project is not in the principal's org")
	}
	return nil
}

// narrow applies n to g, which may already be downscoped (a refresh
// family): it may only narrow, with the rules of token.Issuer.Downscope.
func narrow(g token.Grant, n narrowing) (token.Grant, error) {
	if err := n.checkOrg(g.Org); err != nil {
		return token.Grant{}, err
	}
	if n.project != "" {
		if g.Project != "" && g.Project != n.project {
			return token.Grant{}, errInvalidScope("the grant is restricted to another project")
		}
		g.Project = n.project
	}
	if len(n.permissions) > 0 {
		for _, p := range n.permissions {
			if len(g.Permissions) > 0 && !slices.ContainsFunc(g.Permissions, func(pp string) bool { return token.PermissionCovers(pp, p) }) {
				return token.Grant{}, errInvalidScope("permission '%s' is not in the grant", clip(p))
			}
		}
		g.Permissions = slices.Clone(n.permissions)
	}
	return g, nil
}

// parseProjectName splits "orgs/<org>/projects/<project>".
func parseProjectName(name string) (org, project string, ok bool) {
	parts := strings.Split(name, "/")
	if len(parts) != 4 || parts[0] != "orgs" || parts[2] != "projects" || !isLabel(parts[1]) || !isLabel(parts[3]) {
		return "", "", false
	}
	return parts[1], parts[3], true
}

func projectName(org, project string) string {
	if project == "" {
		return ""
	}
	return "orgs/" + org + "/projects/" + project
}

// grantedScope renders what a token is restricted to as an OAuth2 scope
// string, "" if it is not downscoped.
func grantedScope(c *token.Claims) string {
	parts := make([]string, 0, 1+len(c.Permissions))
	if c.Project != "" {
		parts = append(parts, projectName(c.Org, c.Project))
	}
	parts = append(parts, c.Permissions...)
	return strings.Join(parts, " ")
}

// parseOrg accepts "orgs/<org>" as the API spells it, or a bare org id.
func parseOrg(s string) (string, bool) {
	s = strings.TrimPrefix(s, "orgs/")
	return s, isLabel(s)
}

// isLabel reports whether s is a lowercase RFC 1123 label, the syntax of
// org, project, user and service-account ids.
func isLabel(s string) bool {
	if len(s) == 0 || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// clip makes a client-chosen string fit for an error description: short,
// and only the characters RFC 6749 section 5.2 allows there (printable
// ASCII except '"' and '\\'); anything else becomes '?'.
func clip(s string) string {
	const limit = 64
	b := make([]byte, 0, min(len(s), limit)+3)
	for i := 0; i < len(s) && i < limit; i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			c = '?'
		}
		b = append(b, c)
	}
	if len(s) > limit {
		b = append(b, "..."...)
	}
	return string(b)
}
