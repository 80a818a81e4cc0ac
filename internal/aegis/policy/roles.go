package policy

import (
	"fmt"
	"slices"
	"unicode/utf8"
)

// Role is a named set of permission patterns. Built-in roles have bare
// names (SystemAdmin, flashdns.editor, ...; see ROLES.md for the table);
// custom roles are defined per org and named "orgs/<org>/roles/<id>". A
// custom role may only be bound at scopes inside its org.
type Role struct {
	Name        string
	Title       string
	Description string
	// Permissions are "service:resource:verb" patterns; a segment may be
	// "*" to match any one whole segment.
	Permissions []string
}

const (
	maxRolePermissions = 1024
	maxTitleLen        = 256
	maxDescriptionLen  = 2048
)

// role is a validated, compiled role. It is immutable once built.
type role struct {
	Role
	org        string // owning org of a custom role, "" for built-ins
	builtin    bool
	systemOnly bool // may only be bound at the system scope
	m          matcher
}

// compileRole validates a custom role and builds its matcher.
func compileRole(r Role) (*role, error) {
	org, err := parseRoleName(r.Name, func(string) bool { return false })
	if err != nil {
		if _, ok := builtinRoles[r.Name]; ok {
			return nil, fmt.Errorf("%w: %s", ErrBuiltinRole, quote(r.Name))
		}
		return nil, fmt.Errorf("%w: %w", ErrInvalidRole, err)
	}
	if len(r.Title) > maxTitleLen || !utf8.ValidString(r.Title) {
		return nil, fmt.Errorf("%w %s: title must be valid UTF-8 of at most %d bytes", ErrInvalidRole, quote(r.Name), maxTitleLen)
	}
	if len(r.Description) > maxDescriptionLen || !utf8.ValidString(r.Description) {
		return nil, fmt.Errorf("%w %s: description must be valid UTF-8 of at most %d bytes", ErrInvalidRole, quote(r.Name), maxDescriptionLen)
	}
	cr, err := buildRole(r)
	if err != nil {
		return nil, err
	}
	cr.org = org
	return cr, nil
}

// buildRole parses the permissions of r and returns the compiled role with
// a private, sorted and de-duplicated copy of them.
func buildRole(r Role) (*role, error) {
	if len(r.Permissions) > maxRolePermissions {
		return nil, fmt.Errorf("%w %s: more than %d permissions", ErrInvalidRole, quote(r.Name), maxRolePermissions)
	}
	pats := make([]pattern, 0, len(r.Permissions))
	perms := make([]string, 0, len(r.Permissions))
	for _, s := range r.Permissions {
		p, err := parsePattern(s)
		if err != nil {
			return nil, fmt.Errorf("%w %s: %w", ErrInvalidRole, quote(r.Name), err)
		}
		pats = append(pats, p)
		perms = append(perms, s)
	}
	slices.Sort(perms)
	r.Permissions = slices.Compact(perms)
	return &role{Role: r, m: newMatcher(pats)}, nil
}

// clone returns a copy of the public role that the caller may modify.
func (r *role) clone() Role {
	out := r.Role
	out.Permissions = slices.Clone(r.Permissions)
	return out
}

// builtinRoleDef is one row of the built-in role table.
type builtinRoleDef struct {
	Role
	systemOnly bool
}

// catalogue lists the concrete permissions the platform services check
// today, per service. It documents the vocabulary (ROLES.md is generated
// from it) and lets tests prove that every built-in role pattern matches
// something; services may check permissions not listed here, which
// wildcard patterns such as "flashdns:*:*" then cover.
var catalogue = map[string]map[string][]string{
	"aegis": {
		"orgs":               {"create", "get", "list", "update", "delete"},
		"projects":           {"create", "get", "list", "update", "delete"},
		"users":              {"create", "get", "list", "update", "delete", "setPassword"},
		"groups":             {"create", "get", "list", "update", "delete"},
		"serviceAccounts":    {"create", "get", "list", "update", "delete"},
		"serviceAccountKeys": {"create", "get", "list", "delete"},
		"roles":              {"create", "get", "list", "update", "delete", "bind"},
		"bindings":           {"create", "get", "list", "update", "delete"},
		"auditEvents":        {"get", "list"},
		"signingKeys":        {"list", "rotate"},
		"tokens":             {"revoke"},
		"authz":              {"check"},
	},
	"flashdns": {
		"zones":   {"create", "get", "list", "update", "delete", "import", "export"},
		"records": {"get", "list", "change"},
	},
	"plasmavmc": {
		"vms":      {"create", "get", "list", "update", "delete", "start", "stop", "restart", "console"},
		"images":   {"create", "get", "list", "delete"},
		"volumes":  {"create", "get", "list", "update", "delete", "attach", "detach"},
		"networks": {"create", "get", "list", "update", "delete"},
	},
	"flaredb": {
		"databases": {"create", "get", "list", "update", "delete"},
		"data":      {"read", "write"},
		"backups":   {"create", "get", "list", "delete", "restore"},
	},
	"chainfire": {
		"keys":        {"get", "list", "put", "delete", "watch"},
		"leases":      {"grant", "revoke", "list"},
		"members":     {"list", "add", "remove", "update"},
		"maintenance": {"status", "defragment", "snapshot", "alarm"},
	},
}

// builtinRoleDefs is the built-in role table, in documentation order.
// ROLES.md is generated from it (go test -run TestRolesDoc -update).
var builtinRoleDefs = []builtinRoleDef{
	{Role: Role{Name: "SystemAdmin", Title: "System administrator",
		Description: "Everything, everywhere. Bindable only at the system scope.",
		Permissions: []string{"*:*:*"}}, systemOnly: true},
	{Role: Role{Name: "OrgAdmin", Title: "Org administrator",
		Description: "Runs an org: its projects, users, groups, service accounts, custom roles, bindings and audit log, and every resource of the data-plane services. Cannot create or delete the org itself.",
		Permissions: []string{
			"aegis:orgs:get", "aegis:orgs:update",
			"aegis:projects:*", "aegis:users:*", "aegis:groups:*",
			"aegis:serviceAccounts:*", "aegis:serviceAccountKeys:*", "aegis:roles:*", "aegis:bindings:*",
			"aegis:auditEvents:*", "aegis:tokens:revoke", "aegis:authz:*",
			"flashdns:*:*", "plasmavmc:*:*", "flaredb:*:*",
		}}},
	{Role: Role{Name: "OrgViewer", Title: "Org viewer",
		Description: "Reads (get, list) every resource in an org; no data access (flaredb:data:read is not a get).",
		Permissions: []string{"*:*:get", "*:*:list"}}},
	{Role: Role{Name: "ProjectAdmin", Title: "Project administrator",
		Description: "Everything inside a project, including its service accounts and its bindings, of any role (aegis:roles:bind).",
		Permissions: []string{
			"aegis:projects:get", "aegis:projects:update",
			"aegis:serviceAccounts:*", "aegis:serviceAccountKeys:*", "aegis:bindings:*",
			"aegis:roles:get", "aegis:roles:list", "aegis:roles:bind", "aegis:authz:check",
			"flashdns:*:*", "plasmavmc:*:*", "flaredb:*:*",
		}}},
	{Role: Role{Name: "ProjectEditor", Title: "Project editor",
		Description: "Creates, changes and deletes the resources of the data-plane services in a project; no IAM changes.",
		Permissions: []string{
			"aegis:projects:get", "aegis:serviceAccounts:get", "aegis:serviceAccounts:list",
			"flashdns:*:*", "plasmavmc:*:*", "flaredb:*:*",
		}}},
	{Role: Role{Name: "ProjectViewer", Title: "Project viewer",
		Description: "Reads (get, list) every resource in a project; no data access.",
		Permissions: []string{"*:*:get", "*:*:list"}}},

	{Role: Role{Name: "aegis.admin", Title: "Aegis administrator",
		Description: "Every Aegis operation, including creating orgs and rotating signing keys. Bindable only at the system scope.",
		Permissions: []string{"aegis:*:*"}}, systemOnly: true},
	{Role: Role{Name: "aegis.securityAdmin", Title: "Aegis security administrator",
		Description: "Manages roles and bindings, revokes tokens, reads the audit log; reads but does not change identities.",
		Permissions: []string{
			"aegis:roles:*", "aegis:bindings:*", "aegis:auditEvents:*", "aegis:tokens:revoke", "aegis:authz:*",
			"aegis:*:get", "aegis:*:list",
		}}},
	{Role: Role{Name: "aegis.viewer", Title: "Aegis viewer",
		Description: "Reads every Aegis object.",
		Permissions: []string{"aegis:*:get", "aegis:*:list"}}},
	{Role: Role{Name: "aegis.auditor", Title: "Aegis auditor",
		Description: "Reads the audit log, roles and bindings.",
		Permissions: []string{
			"aegis:auditEvents:get", "aegis:auditEvents:list",
			"aegis:bindings:get", "aegis:bindings:list", "aegis:roles:get", "aegis:roles:list",
		}}},
	{Role: Role{Name: "aegis.authzChecker", Title: "Authorization checker",
		Description: "Asks Aegis for decisions about other principals and who holds a permission; granted to the service accounts of platform services.",
		Permissions: []string{"aegis:authz:check", "aegis:bindings:list"}}},

	{Role: Role{Name: "flashdns.admin", Title: "FlashDNS administrator",
		Description: "Every FlashDNS operation.",
		Permissions: []string{"flashdns:*:*"}}},
	{Role: Role{Name: "flashdns.editor", Title: "FlashDNS editor",
		Description: "Manages records in existing zones.",
		Permissions: []string{"flashdns:records:*", "flashdns:zones:get", "flashdns:zones:list", "flashdns:zones:export"}}},
	{Role: Role{Name: "flashdns.viewer", Title: "FlashDNS viewer",
		Description: "Reads zones and records, and exports zone files.",
		Permissions: []string{"flashdns:*:get", "flashdns:*:list", "flashdns:zones:export"}}},

	{Role: Role{Name: "plasmavmc.admin", Title: "PlasmaVMC administrator",
		Description: "Every PlasmaVMC operation.",
		Permissions: []string{"plasmavmc:*:*"}}},
	{Role: Role{Name: "plasmavmc.operator", Title: "PlasmaVMC operator",
		Description: "Starts, stops, restarts and opens the console of existing VMs; reads everything.",
		Permissions: []string{
			"plasmavmc:*:get", "plasmavmc:*:list",
			"plasmavmc:vms:start", "plasmavmc:vms:stop", "plasmavmc:vms:restart", "plasmavmc:vms:console",
		}}},
	{Role: Role{Name: "plasmavmc.viewer", Title: "PlasmaVMC viewer",
		Description: "Reads VMs, images, volumes and networks.",
		Permissions: []string{"plasmavmc:*:get", "plasmavmc:*:list"}}},

	{Role: Role{Name: "flaredb.admin", Title: "FlareDB administrator",
		Description: "Every FlareDB operation.",
		Permissions: []string{"flaredb:*:*"}}},
	{Role: Role{Name: "flaredb.writer", Title: "FlareDB writer",
		Description: "Reads and writes data in existing databases.",
		Permissions: []string{"flaredb:data:read", "flaredb:data:write", "flaredb:databases:get", "flaredb:databases:list"}}},
	{Role: Role{Name: "flaredb.reader", Title: "FlareDB reader",
		Description: "Reads data in existing databases.",
		Permissions: []string{"flaredb:data:read", "flaredb:databases:get", "flaredb:databases:list"}}},
	{Role: Role{Name: "flaredb.viewer", Title: "FlareDB viewer",
		Description: "Reads database and backup metadata; no data access.",
		Permissions: []string{"flaredb:*:get", "flaredb:*:list"}}},

	{Role: Role{Name: "chainfire.admin", Title: "Chainfire administrator",
		Description: "Every Chainfire operation (keys, leases, membership, maintenance).",
		Permissions: []string{"chainfire:*:*"}}},
	{Role: Role{Name: "chainfire.writer", Title: "Chainfire writer",
		Description: "Reads, writes and watches keys; grants and revokes leases.",
		Permissions: []string{"chainfire:keys:*", "chainfire:leases:*", "chainfire:members:list", "chainfire:maintenance:status"}}},
	{Role: Role{Name: "chainfire.reader", Title: "Chainfire reader",
		Description: "Reads and watches keys; lists members and status.",
		Permissions: []string{
			"chainfire:keys:get", "chainfire:keys:list", "chainfire:keys:watch",
			"chainfire:leases:list", "chainfire:members:list", "chainfire:maintenance:status",
		}}},
}

// builtinRoles holds the compiled built-in roles by name. It is built once
// at package initialisation from constant data and never modified, so it
// is not mutable global state; a malformed entry is a programming error
// caught by the first test run.
var builtinRoles = func() map[string]*role {
	m := make(map[string]*role, len(builtinRoleDefs))
	for _, d := range builtinRoleDefs {
		r, err := buildRole(d.Role)
		if err != nil {
			panic(fmt.Sprintf("policy: bad built-in role %s: %v", d.Name, err))
		}
		r.builtin, r.systemOnly = true, d.systemOnly
		m[d.Name] = r
	}
	return m
}()

// BuiltinRoles returns the built-in roles in documentation order.
func BuiltinRoles() []Role {
	out := make([]Role, 0, len(builtinRoleDefs))
	for _, d := range builtinRoleDefs {
		out = append(out, builtinRoles[d.Name].clone())
	}
	return out
}

// KnownPermissions returns the concrete permissions the platform services
// are known to check (the vocabulary the built-in roles are written
// against), sorted.
func KnownPermissions() []string {
	var out []string
	for svc, res := range catalogue {
		for r, verbs := range res {
			for _, v := range verbs {
				out = append(out, svc+":"+r+":"+v)
			}
		}
	}
	slices.Sort(out)
	return out
}

// IsBuiltinRole reports whether name is a built-in role.
func IsBuiltinRole(name string) bool {
	_, ok := builtinRoles[name]
	return ok
}
