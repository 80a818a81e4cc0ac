package policy

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite generated files (ROLES.md)")

// renderRolesDoc renders ROLES.md from the built-in role table.
func renderRolesDoc() string {
	var b strings.Builder
	b.WriteString("# Aegis built-in roles\n\n")
	b.WriteString("Generated from `builtinRoleDefs` in roles.go by `go test -run TestRolesDoc -update`; do not edit.\n\n")
	b.WriteString("A permission is `service:resource:verb`; `*` matches one whole segment. A binding of a role at a\n")
	b.WriteString("scope grants its permissions on the scope and everything below it. Custom roles are\n")
	b.WriteString("`orgs/<org>/roles/<id>` and can only be bound inside their org.\n\n")
	b.WriteString("| Role | Bindable at | Permissions | Description |\n|---|---|---|---|\n")
	for _, d := range builtinRoleDefs {
		where := "any scope"
		if d.systemOnly {
			where = "`system` only"
		}
		perms := make([]string, len(d.Permissions))
		for i, p := range d.Permissions {
			perms[i] = "`" + p + "`"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", d.Name, where, strings.Join(perms, " "), d.Description)
	}
	b.WriteString("\n## Known permissions\n\nThe permissions the platform services check today (`KnownPermissions`).\n\n")
	b.WriteString("| Service | Resource | Verbs |\n|---|---|---|\n")
	svcs := make([]string, 0, len(catalogue))
	for s := range catalogue {
		svcs = append(svcs, s)
	}
	slices.Sort(svcs)
	for _, s := range svcs {
		ress := make([]string, 0, len(catalogue[s]))
		for r := range catalogue[s] {
			ress = append(ress, r)
		}
		slices.Sort(ress)
		for _, r := range ress {
			fmt.Fprintf(&b, "| %s | %s | %s |\n", s, r, strings.Join(catalogue[s][r], ", "))
		}
	}
	return b.String()
}

func TestRolesDoc(t *testing.T) {
	want := renderRolesDoc()
	if *update {
		must(t, os.WriteFile("ROLES.md", []byte(want), 0o644))
	}
	got, err := os.ReadFile("ROLES.md")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatal("ROLES.md is stale; run go test -run TestRolesDoc -update")
	}
}

func TestBuiltinRolesSane(t *testing.T) {
	known := KnownPermissions()
	if len(known) < 50 {
		t.Fatalf("only %d known permissions", len(known))
	}
	var parsed []permission
	for _, k := range known {
		p, err := parsePermission(k)
		if err != nil {
			t.Fatal(err)
		}
		parsed = append(parsed, p)
	}
	seen := map[string]bool{}
	for _, r := range BuiltinRoles() {
		if seen[r.Name] {
			t.Fatalf("duplicate role %s", r.Name)
		}
		seen[r.Name] = true
		if !IsBuiltinRole(r.Name) {
			t.Fatalf("%s not builtin", r.Name)
		}
		// Every pattern must match at least one known permission: catches
		// typos such as "flashdns:record:*".
		for _, ps := range r.Permissions {
			pat, err := parsePattern(ps)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.ContainsFunc(parsed, pat.matches) {
				t.Errorf("role %s: pattern %s matches no known permission", r.Name, ps)
			}
		}
	}
	for _, name := range []string{"SystemAdmin", "OrgAdmin", "OrgViewer", "ProjectAdmin", "ProjectEditor", "ProjectViewer", "flashdns.editor", "flashdns.viewer"} {
		if !seen[name] {
			t.Errorf("missing built-in role %s", name)
		}
	}
}

// roleHas reports whether a built-in role grants a permission.
func roleHas(t *testing.T, role, perm string) bool {
	t.Helper()
	p, err := parsePermission(perm)
	if err != nil {
		t.Fatal(err)
	}
	return builtinRoles[role].m.match(&p)
}

func TestBuiltinRoleContents(t *testing.T) {
	for _, tc := range []struct {
		role, perm string
		want       bool
	}{
		{"SystemAdmin", "aegis:orgs:create", true},
		{"SystemAdmin", "anything:at:all", true},
		{"OrgAdmin", "aegis:projects:create", true},
		{"OrgAdmin", "aegis:bindings:create", true},
		{"OrgAdmin", "plasmavmc:vms:delete", true},
		{"OrgAdmin", "aegis:orgs:create", false},
		{"OrgAdmin", "aegis:orgs:delete", false},
		{"OrgAdmin", "aegis:signingKeys:rotate", false},
		{"OrgAdmin", "chainfire:keys:put", false},
		{"OrgViewer", "aegis:users:list", true},
		{"OrgViewer", "aegis:users:create", false},
		{"OrgViewer", "flaredb:data:read", false},
		{"ProjectAdmin", "aegis:bindings:create", true},
		{"ProjectAdmin", "aegis:roles:bind", true}, // existing project admins keep binding any role
		{"ProjectAdmin", "aegis:roles:update", false},
		{"ProjectAdmin", "aegis:projects:delete", false},
		{"ProjectAdmin", "aegis:users:create", false},
		{"ProjectEditor", "plasmavmc:vms:create", true},
		{"ProjectEditor", "flaredb:data:write", true},
		{"ProjectEditor", "aegis:bindings:create", false},
		{"ProjectEditor", "aegis:roles:bind", false},
		{"OrgAdmin", "aegis:roles:bind", true},
		{"OrgViewer", "aegis:roles:bind", false},
		{"aegis.securityAdmin", "aegis:roles:bind", true},
		{"aegis.auditor", "aegis:roles:bind", false},
		{"ProjectEditor", "aegis:serviceAccountKeys:create", false},
		{"ProjectViewer", "plasmavmc:vms:get", true},
		{"ProjectViewer", "plasmavmc:vms:list", true},
		{"ProjectViewer", "plasmavmc:vms:start", false},
		{"ProjectViewer", "flaredb:data:read", false},
		{"flashdns.editor", "flashdns:records:update", true},
		{"flashdns.editor", "flashdns:zones:get", true},
		{"flashdns.editor", "flashdns:zones:delete", false},
		{"flashdns.viewer", "flashdns:records:list", true},
		{"flashdns.viewer", "flashdns:records:update", false},
		{"plasmavmc.operator", "plasmavmc:vms:restart", true},
		{"plasmavmc.operator", "plasmavmc:vms:delete", false},
		{"flaredb.reader", "flaredb:data:read", true},
		{"flaredb.reader", "flaredb:data:write", false},
		{"aegis.authzChecker", "aegis:authz:check", true},
		{"aegis.authzChecker", "aegis:bindings:list", true}, // who can (LookupPrincipals)
		{"aegis.authzChecker", "aegis:bindings:create", false},
		{"aegis.auditor", "aegis:auditEvents:list", true},
		{"aegis.auditor", "aegis:bindings:create", false},
		{"chainfire.reader", "chainfire:keys:watch", true},
		{"chainfire.reader", "chainfire:keys:put", false},
	} {
		if got := roleHas(t, tc.role, tc.perm); got != tc.want {
			t.Errorf("%s has %s = %v, want %v", tc.role, tc.perm, got, tc.want)
		}
	}
}

func TestCustomRoleValidation(t *testing.T) {
	e := newTestEvaluator(t)
	good := Role{Name: "orgs/acme/roles/dnsOps", Title: "DNS ops", Permissions: []string{"flashdns:records:*", "flashdns:zones:get", "flashdns:zones:get"}}
	must(t, e.PutRole(good))
	r, ok := e.Role("orgs/acme/roles/dnsOps")
	if !ok || !slices.Equal(r.Permissions, []string{"flashdns:records:*", "flashdns:zones:get"}) {
		t.Fatalf("got %+v", r)
	}
	// The returned role is a copy.
	r.Permissions[0] = "x:y:z"
	if r2, _ := e.Role("orgs/acme/roles/dnsOps"); r2.Permissions[0] != "flashdns:records:*" {
		t.Fatal("Role returned shared slice")
	}
	for _, tc := range []struct {
		r   Role
		err error
	}{
		{Role{Name: "SystemAdmin", Permissions: []string{"a:b:c"}}, ErrBuiltinRole},
		{Role{Name: "dnsOps"}, ErrInvalidRole},
		{Role{Name: "orgs/acme/roles/x", Permissions: []string{"a:b"}}, ErrInvalidRole},
		{Role{Name: "orgs/acme/roles/x", Permissions: []string{"a:b*:c"}}, ErrInvalidRole},
		{Role{Name: "orgs/acme/roles/x", Title: strings.Repeat("t", 300)}, ErrInvalidRole},
		{Role{Name: "orgs/acme/roles/x", Description: "\xff"}, ErrInvalidRole},
		{Role{Name: "orgs/acme/roles/x", Permissions: slices.Repeat([]string{"a:b:c"}, 1025)}, ErrInvalidRole},
	} {
		if err := e.PutRole(tc.r); !errors.Is(err, tc.err) {
			t.Errorf("PutRole(%s): %v, want %v", tc.r.Name, err, tc.err)
		}
	}
	if err := e.Update(func(tx *Tx) error { return tx.DeleteRole("OrgAdmin") }); !errors.Is(err, ErrBuiltinRole) {
		t.Fatalf("DeleteRole(OrgAdmin) = %v", err)
	}
}
