package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
	"google.golang.org/protobuf/types/known/timestamppb"

	aegisv1 "github.com/photoncloud/photoncloud/api/aegis/v1"
)

// The iam tests run `photon iam` in-process against a real Aegis (see
// aegis_fixture_test.go) and check what the user sees, and, through the
// API past the CLI, what the commands changed.

const bobPassword = "bob's first password"

// iamOK runs photon iam with args and fails the test unless it exits 0.
func iamOK(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	code, out, errs := photon(t, stdin, append([]string{"iam"}, args...)...)
	if code != 0 {
		t.Fatalf("photon iam %q: exit %d, stdout %q, stderr %q", args, code, out, errs)
	}
	return out
}

// iamFails runs photon iam with args, wants exit code and nothing on
// stdout, and returns stderr.
func iamFails(t *testing.T, code int, args ...string) string {
	t.Helper()
	got, out, errs := photon(t, "", append([]string{"iam"}, args...)...)
	if got != code || out != "" {
		t.Fatalf("photon iam %q: exit %d, stdout %q, stderr %q; want exit %d", args, got, out, errs, code)
	}
	return errs
}

// ts is a timestamp as the tables show it; "-" for none.
func ts(p *timestamppb.Timestamp) string {
	if p == nil {
		return "-"
	}
	return p.AsTime().UTC().Format(time.RFC3339)
}

// eventually retries cond for up to 10 s: Aegis writes audit events
// behind the requests they record.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
	}
}

// TestIAMOrgs: orgs are the system admin's (alice, an org admin, may not
// create them).
func TestIAMOrgs(t *testing.T) {
	a := startAegis(t, aegisOptions{})
	cliEnvFor(t, a)
	loginAs(t, "admin", adminPassword)

	out := iamOK(t, "", "orgs", "create", "zeta", "--display-name", "Zeta", "--description", "first org", "--label", "tier=gold")
	o := noErr[*aegisv1.Org](t, "get zeta")(a.orgs().GetOrg(a.ctx(t), &aegisv1.GetOrgRequest{Name: "orgs/zeta"}))
	want := fmt.Sprintf(`NAME          orgs/zeta
DISPLAY NAME  Zeta
STATE         active
LABELS        tier=gold
CREATED       %s
DESCRIPTION   first org
UID           %s
UPDATED       %s
ETAG          %s
`, ts(o.GetCreateTime()), o.GetUid(), ts(o.GetUpdateTime()), o.GetEtag())
	if out != want {
		t.Fatalf("create output:\n%s\nwant:\n%s", out, want)
	}
	if code, _, errs := photon(t, "", "iam", "orgs", "create", "zeta"); code != 1 ||
		errs != "photon: create org zeta: already exists: org \"orgs/zeta\"\n" {
		t.Fatalf("create twice: exit %d, %q", code, errs)
	}

	// The update mask is the flags given: only the state changes here.
	iamOK(t, "", "orgs", "update", "zeta", "--state", "suspended", "--etag", o.GetEtag())
	o = noErr[*aegisv1.Org](t, "get zeta")(a.orgs().GetOrg(a.ctx(t), &aegisv1.GetOrgRequest{Name: "orgs/zeta"}))
	if o.GetState() != aegisv1.Org_STATE_SUSPENDED || o.GetDisplayName() != "Zeta" || o.GetDescription() != "first org" || fmtLabels(o.GetLabels()) != "tier=gold" {
		t.Fatalf("after update --state: %v", o)
	}
	// --label replaces every label, and a flag given empty clears its field.
	iamOK(t, "", "orgs", "update", "orgs/zeta", "--label", "env=prod", "--description", "")
	o = noErr[*aegisv1.Org](t, "get zeta")(a.orgs().GetOrg(a.ctx(t), &aegisv1.GetOrgRequest{Name: "orgs/zeta"}))
	if o.GetState() != aegisv1.Org_STATE_SUSPENDED || o.GetDisplayName() != "Zeta" || o.GetDescription() != "" || fmtLabels(o.GetLabels()) != "env=prod" {
		t.Fatalf("after update --label --description: %v", o)
	}
	errs := iamFails(t, 1, "orgs", "update", "zeta", "--display-name", "Z", "--etag", "stale")
	if !strings.HasPrefix(errs, `photon: update org orgs/zeta: conflict: etag mismatch: org "orgs/zeta"`) || !strings.HasSuffix(errs, "(it changed since it was read: get it again, or leave out --etag)\n") {
		t.Fatalf("stale update: %q", errs)
	}

	// A display name with a tab and an escape sequence cannot break the
	// table or the terminal; JSON carries it as it is.
	iamOK(t, "", "orgs", "update", "zeta", "--display-name", "Zeta\tCorp\x1b[31m")
	if out := iamOK(t, "", "orgs", "get", "zeta"); !strings.Contains(out, "DISPLAY NAME  Zeta?Corp?[31m\n") || !strings.Contains(out, "STATE         suspended\n") {
		t.Fatalf("get: %q", out)
	}
	var got map[string]any
	if out := iamOK(t, "", "orgs", "get", "zeta", "-o", "json"); json.Unmarshal([]byte(out), &got) != nil || got["displayName"] != "Zeta\tCorp\x1b[31m" || got["state"] != "STATE_SUSPENDED" {
		t.Fatalf("get -o json: %q", out)
	}
	if errs := iamFails(t, 1, "orgs", "get", "nope"); errs != "photon: get org orgs/nope: not found (or not visible to you): org \"orgs/nope\"\n" {
		t.Fatalf("get missing: %q", errs)
	}

	out = iamOK(t, "", "orgs", "list")
	if !regexp.MustCompile(`^NAME +DISPLAY NAME +STATE +LABELS +CREATED\norgs/acme +Acme +active +- +\S+Z\norgs/system +System +active +- +\S+Z\norgs/zeta +Zeta\?Corp\?\[31m +suspended +env=prod +\S+Z\n$`).MatchString(out) {
		t.Fatalf("list:\n%s", out)
	}

	// acme is not empty: deleting it needs --force.
	errs = iamFails(t, 1, "orgs", "delete", "acme")
	if !strings.HasPrefix(errs, `photon: delete org orgs/acme: refused: org "orgs/acme" still has `) || !strings.HasSuffix(errs, "; delete them first or use force\n") {
		t.Fatalf("delete non-empty: %q", errs)
	}
	if out := iamOK(t, "", "orgs", "delete", "acme", "--force"); out != "Deleted orgs/acme.\n" {
		t.Fatalf("delete --force: %q", out)
	}
	if errs := iamFails(t, 1, "orgs", "delete", "zeta", "--etag", "stale"); !strings.Contains(errs, "conflict: etag mismatch") {
		t.Fatalf("stale delete: %q", errs)
	}
	if out := iamOK(t, "", "orgs", "delete", "zeta", "-o", "json"); out != "" {
		t.Fatalf("delete -o json: %q", out)
	}
	if out := iamOK(t, "", "orgs", "list", "-o", "json"); !strings.HasPrefix(out, "[\n  {\n    \"name\": \"orgs/system\",\n") || strings.Count(out, `"name"`) != 1 {
		t.Fatalf("list after deletes:\n%s", out)
	}
}

// TestIAMListPages follows page tokens past Aegis's default page of 50,
// with the filter on every page (Aegis refuses a page token made for
// another filter), and --limit stops early.
func TestIAMListPages(t *testing.T) {
	a := startAegis(t, aegisOptions{})
	for i := range 55 {
		noErr[*aegisv1.Project](t, "create project")(a.orgs().CreateProject(a.ctx(t), &aegisv1.CreateProjectRequest{
			Parent: "orgs/acme", ProjectId: fmt.Sprintf("p%02d", i), Project: &aegisv1.Project{DisplayName: fmt.Sprintf("Batch %d", i)}}))
	}
	cliEnvFor(t, a)
	login(t)

	lines := strings.Split(strings.TrimSuffix(iamOK(t, "", "projects", "list", "--org", "acme"), "\n"), "\n")
	if len(lines) != 1+56 || !strings.HasPrefix(lines[0], "NAME ") || !strings.HasPrefix(lines[1], "orgs/acme/projects/p00 ") ||
		!strings.HasPrefix(lines[55], "orgs/acme/projects/p54 ") || !strings.HasPrefix(lines[56], "orgs/acme/projects/web ") {
		t.Fatalf("list: %d lines:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	out := iamOK(t, "", "projects", "list", "--org", "acme", "--filter", `display_name = "Batch*"`, "-o", "json")
	var ps []map[string]any
	if json.Unmarshal([]byte(out), &ps) != nil || len(ps) != 55 || ps[54]["name"] != "orgs/acme/projects/p54" {
		t.Fatalf("filtered list: %d items", len(ps))
	}

	out = iamOK(t, "", "projects", "list", "--org", "acme", "--limit", "3", "-o", "json")
	if json.Unmarshal([]byte(out), &ps) != nil || len(ps) != 3 || ps[2]["name"] != "orgs/acme/projects/p02" {
		t.Fatalf("list --limit 3 -o json: %q", out)
	}
	// JSON is stable: indented the same way every time.
	if !strings.HasPrefix(out, "[\n  {\n    \"name\": \"orgs/acme/projects/p00\",\n    \"uid\": ") {
		t.Fatalf("json layout: %q", out)
	}
	if lines := strings.Split(strings.TrimSpace(iamOK(t, "", "projects", "list", "--org", "acme", "--limit", "52")), "\n"); len(lines) != 1+52 {
		t.Fatalf("list --limit 52: %d lines", len(lines))
	}
}

func TestIAMProjects(t *testing.T) {
	a := startAegis(t, aegisOptions{})
	cliEnvFor(t, a)
	login(t)

	out := iamOK(t, "", "projects", "create", "orgs/acme/projects/api", "--display-name", "API", "--label", "env=prod")
	p := noErr[*aegisv1.Project](t, "get api")(a.orgs().GetProject(a.ctx(t), &aegisv1.GetProjectRequest{Name: "orgs/acme/projects/api"}))
	want := fmt.Sprintf(`NAME          orgs/acme/projects/api
DISPLAY NAME  API
LABELS        env=prod
CREATED       %s
DESCRIPTION   -
UID           %s
UPDATED       %s
ETAG          %s
`, ts(p.GetCreateTime()), p.GetUid(), ts(p.GetUpdateTime()), p.GetEtag())
	if out != want {
		t.Fatalf("create output:\n%s\nwant:\n%s", out, want)
	}
	if out := iamOK(t, "", "projects", "get", "api", "--org", "acme"); out != want {
		t.Fatalf("get:\n%s", out)
	}
	iamOK(t, "", "projects", "update", "api", "--org", "orgs/acme", "--description", "the API")
	p = noErr[*aegisv1.Project](t, "get api")(a.orgs().GetProject(a.ctx(t), &aegisv1.GetProjectRequest{Name: "orgs/acme/projects/api"}))
	if p.GetDescription() != "the API" || p.GetDisplayName() != "API" || fmtLabels(p.GetLabels()) != "env=prod" {
		t.Fatalf("after update --description: %v", p)
	}
	if out := iamOK(t, "", "projects", "list", "--org", "acme"); !regexp.MustCompile(`^NAME +DISPLAY NAME +LABELS +CREATED\norgs/acme/projects/api +API +env=prod +\S+\norgs/acme/projects/web +- +- +\S+\n$`).MatchString(out) {
		t.Fatalf("list:\n%s", out)
	}
	if out := iamOK(t, "", "projects", "delete", "api", "--org", "acme"); out != "Deleted orgs/acme/projects/api.\n" {
		t.Fatalf("delete: %q", out)
	}
	if errs := iamFails(t, 1, "projects", "get", "orgs/acme/projects/api"); errs != "photon: get project orgs/acme/projects/api: not found (or not visible to you): project \"orgs/acme/projects/api\"\n" {
		t.Fatalf("get deleted: %q", errs)
	}
}

// TestIAMSessionScope: a session downscoped to a project (photon login
// --project) stands in for --org and --project; flags given win.
func TestIAMSessionScope(t *testing.T) {
	a := startAegis(t, aegisOptions{})
	cliEnvFor(t, a)
	if code, _, errs := photon(t, alicePassword+"\n", "login", "-u", "alice", "--org", "acme", "--project", "web", "--password-stdin"); code != 0 {
		t.Fatalf("login --project: %s", errs)
	}

	// Commands with --project (and --org) take the project...
	if out := iamOK(t, "", "sa", "create", "ci"); !strings.HasPrefix(out, "NAME          orgs/acme/projects/web/serviceAccounts/ci\n") {
		t.Fatalf("sa create:\n%s", out)
	}
	if out := iamOK(t, "", "sa", "list"); !regexp.MustCompile(`^NAME +DISPLAY NAME +STATE +CREATED\norgs/acme/projects/web/serviceAccounts/ci +- +active +\S+\n$`).MatchString(out) {
		t.Fatalf("sa list:\n%s", out)
	}
	iamOK(t, "", "sa", "keys", "create", "ci")
	if out := iamOK(t, "", "sa", "keys", "list", "ci"); strings.Count(out, "orgs/acme/projects/web/serviceAccounts/ci/keys/") != 1 {
		t.Fatalf("sa keys list:\n%s", out)
	}
	// ...and those with --org only its org.
	if out := iamOK(t, "", "projects", "get", "web"); !strings.HasPrefix(out, "NAME          orgs/acme/projects/web\n") {
		t.Fatalf("projects get:\n%s", out)
	}
	// Given flags win: a bare --project is in the session's org, --org
	// alone names the org itself.
	if out := iamOK(t, "", "sa", "get", "ci", "--project", "web"); !strings.HasPrefix(out, "NAME          orgs/acme/projects/web/serviceAccounts/ci\n") {
		t.Fatalf("sa get --project web:\n%s", out)
	}
	if errs := iamFails(t, 1, "sa", "get", "ci", "--org", "acme"); !strings.HasPrefix(errs, "photon: get service account orgs/acme/serviceAccounts/ci: ") {
		t.Fatalf("sa get --org acme: %q", errs)
	}
	if errs := iamFails(t, 1, "sa", "get", "ci", "--org", "zeta", "--project", "web"); !strings.HasPrefix(errs, "photon: get service account orgs/zeta/projects/web/serviceAccounts/ci: ") {
		t.Fatalf("sa get --org zeta --project web: %q", errs)
	}
	// A bare role is still a built-in one, not one of the session's org.
	if errs := iamFails(t, 1, "roles", "get", "NoSuchRole"); !strings.HasPrefix(errs, "photon: get role roles/NoSuchRole: ") {
		t.Fatalf("roles get: %q", errs)
	}

	// Without the scope, the flags are required again.
	login(t)
	if errs := iamFails(t, 1, "sa", "list"); errs != "photon: --org is required (or give a full name)\n" {
		t.Fatalf("sa list without a scope: %q", errs)
	}
}

func TestIAMUsers(t *testing.T) {
	a := startAegis(t, aegisOptions{})
	cliEnvFor(t, a)
	login(t)

	out := iamOK(t, bobPassword+"\n", "users", "create", "bob", "--org", "acme", "--email", "bob@example.com", "--label", "team=web", "--password-stdin")
	u := noErr[*aegisv1.User](t, "get bob")(a.identity().GetUser(a.ctx(t), &aegisv1.GetUserRequest{Name: "orgs/acme/users/bob"}))
	want := fmt.Sprintf(`NAME                  orgs/acme/users/bob
DISPLAY NAME          -
EMAIL                 bob@example.com
STATE                 active
LAST LOGIN            -
LABELS                team=web
FEDERATED IDENTITIES  -
PASSWORD SET          %s
UID                   %s
CREATED               %s
UPDATED               %s
ETAG                  %s
`, ts(u.GetPasswordUpdateTime()), u.GetUid(), ts(u.GetCreateTime()), ts(u.GetUpdateTime()), u.GetEtag())
	if out != want {
		t.Fatalf("create output:\n%s\nwant:\n%s", out, want)
	}
	a.passwordToken(t, "bob@acme", bobPassword) // the password from stdin is bob's

	iamOK(t, "", "users", "update", "bob", "--org", "acme", "--display-name", "Bob")
	u = noErr[*aegisv1.User](t, "get bob")(a.identity().GetUser(a.ctx(t), &aegisv1.GetUserRequest{Name: "orgs/acme/users/bob"}))
	if u.GetDisplayName() != "Bob" || u.GetEmail() != "bob@example.com" || fmtLabels(u.GetLabels()) != "team=web" {
		t.Fatalf("after update --display-name: %v", u)
	}
	if out := iamOK(t, "", "users", "get", "orgs/acme/users/bob"); !strings.HasPrefix(out, "NAME                  orgs/acme/users/bob\nDISPLAY NAME          Bob\nEMAIL                 bob@example.com\n") ||
		!strings.Contains(out, "ETAG                  "+u.GetEtag()+"\n") {
		t.Fatalf("get:\n%s", out)
	}
	out = iamOK(t, "", "users", "list", "--org", "acme", "-o", "json")
	var us []map[string]any
	if json.Unmarshal([]byte(out), &us) != nil || len(us) != 2 || us[0]["name"] != aliceName || us[1]["displayName"] != "Bob" {
		t.Fatalf("list -o json: %q", out)
	}
	if out := iamOK(t, "", "users", "list", "--org", "acme", "--filter", `email = "bob@*"`); !regexp.MustCompile(`^NAME +DISPLAY NAME +EMAIL +STATE +LAST LOGIN\norgs/acme/users/bob +Bob +bob@example.com +active +-\n$`).MatchString(out) {
		t.Fatalf("list --filter:\n%s", out)
	}

	// Bob changes his own password, proving the current one. (This comes
	// before anything else revokes bob's tokens: a token issued in the
	// second of an earlier revocation survives a new one in that second,
	// an Aegis bug reported separately.)
	loginAs(t, "bob@acme", bobPassword)
	code, out, errs := photon(t, "second password\n", "iam", "users", "set-password", "bob", "--org", "acme", "--password-stdin")
	if code != 1 || out != "" || errs != "photon: set password of orgs/acme/users/bob: invalid request: current_password is required to change your own password\n" {
		t.Fatalf("own password without the current one: exit %d, %q %q", code, out, errs)
	}
	code, out, errs = photon(t, "wrong\nsecond password\n", "iam", "users", "set-password", "bob", "--org", "acme", "--current-password-stdin")
	if code != 1 || out != "" || errs != "photon: set password of orgs/acme/users/bob: permission denied: current_password is wrong\n" {
		t.Fatalf("wrong current password: exit %d, %q %q", code, out, errs)
	}
	code, out, errs = photon(t, bobPassword+"\r\nsecond password\n", "iam", "users", "set-password", "bob", "--org", "acme", "--current-password-stdin")
	if code != 0 || out != "Password of orgs/acme/users/bob set.\n" {
		t.Fatalf("own set-password: exit %d, %q %q", code, out, errs)
	}
	// This Aegis ends every session of bob, the CLI's too, and the CLI
	// says so at once.
	if errs != "Aegis ended your sessions with the password change, this one too: run photon login.\n" {
		t.Fatalf("own set-password stderr: %q", errs)
	}
	if code, _, errs := photon(t, "", "whoami"); code != 1 || !strings.Contains(errs, "run photon login") {
		t.Fatalf("whoami after the password change: exit %d, %q", code, errs)
	}
	if _, err := a.tryPasswordToken(t, "bob@acme", bobPassword); err == nil {
		t.Fatal("bob's old password still works")
	}

	// Alice, an org admin, sets bob's password without knowing it.
	login(t)
	if out := iamOK(t, "third password\n", "users", "set-password", "bob", "--org", "acme", "--password-stdin"); out != "Password of orgs/acme/users/bob set.\n" {
		t.Fatalf("set-password: %q", out)
	}
	if _, err := a.tryPasswordToken(t, "bob@acme", "second password"); err == nil {
		t.Fatal("the replaced password still works")
	}
	a.passwordToken(t, "bob@acme", "third password")

	// A disabled user cannot log in.
	iamOK(t, "", "users", "update", "orgs/acme/users/bob", "--state", "disabled")
	if _, err := a.tryPasswordToken(t, "bob@acme", "third password"); err == nil {
		t.Fatal("disabled bob logged in")
	}
	iamOK(t, "", "users", "update", "bob", "--org", "acme", "--state", "active")
	a.passwordToken(t, "bob@acme", "third password")

	if out := iamOK(t, "", "users", "delete", "bob", "--org", "acme"); out != "Deleted orgs/acme/users/bob.\n" {
		t.Fatalf("delete: %q", out)
	}
	if errs := iamFails(t, 1, "users", "get", "bob", "--org", "acme"); errs != "photon: get user orgs/acme/users/bob: not found (or not visible to you): user \"orgs/acme/users/bob\"\n" {
		t.Fatalf("get deleted: %q", errs)
	}
}

func TestIAMGroups(t *testing.T) {
	a := startAegis(t, aegisOptions{})
	a.createUser(t, "acme", "bob", bobPassword)
	cliEnvFor(t, a)
	login(t)

	out := iamOK(t, "", "groups", "create", "devs", "--org", "acme", "--display-name", "Developers", "--label", "team=web")
	g := noErr[*aegisv1.Group](t, "get devs")(a.identity().GetGroup(a.ctx(t), &aegisv1.GetGroupRequest{Name: "orgs/acme/groups/devs"}))
	want := fmt.Sprintf(`NAME          orgs/acme/groups/devs
DISPLAY NAME  Developers
MEMBERS       0
CREATED       %s
DESCRIPTION   -
LABELS        team=web
UID           %s
UPDATED       %s
ETAG          %s
`, ts(g.GetCreateTime()), g.GetUid(), ts(g.GetUpdateTime()), g.GetEtag())
	if out != want {
		t.Fatalf("create output:\n%s\nwant:\n%s", out, want)
	}

	if out := iamOK(t, "", "groups", "members", "add", "devs", "bob", "--org", "acme"); out != "Added orgs/acme/users/bob to orgs/acme/groups/devs.\n" {
		t.Fatalf("members add: %q", out)
	}
	if errs := iamFails(t, 1, "groups", "members", "add", "orgs/acme/groups/devs", "orgs/acme/users/bob"); errs != "photon: add orgs/acme/users/bob to orgs/acme/groups/devs: already exists: \"orgs/acme/users/bob\" is a member of \"orgs/acme/groups/devs\"\n" {
		t.Fatalf("members add twice: %q", errs)
	}
	var m map[string]any
	if out := iamOK(t, "", "groups", "members", "add", "devs", aliceName, "--org", "acme", "-o", "json"); json.Unmarshal([]byte(out), &m) != nil ||
		m["member"] != aliceName || m["memberKind"] != "PRINCIPAL_KIND_USER" {
		t.Fatalf("members add -o json: %q", out)
	}
	if out := iamOK(t, "", "groups", "members", "list", "devs", "--org", "acme"); !regexp.MustCompile(`^MEMBER +KIND +ADDED\norgs/acme/users/alice +user +\S+Z\norgs/acme/users/bob +user +\S+Z\n$`).MatchString(out) {
		t.Fatalf("members list:\n%s", out)
	}
	// The example in --filter's help is one Aegis takes.
	if out := iamOK(t, "", "groups", "members", "list", "devs", "--org", "acme", "--filter", "member_kind = PRINCIPAL_KIND_SERVICE_ACCOUNT"); out != "MEMBER  KIND  ADDED\n" {
		t.Fatalf("members list --filter:\n%s", out)
	}
	// bob is a member for Aegis's decisions too, not only in the list.
	if out := iamOK(t, "", "groups", "list", "--org", "acme", "--filter", `members:"orgs/acme/users/bob"`); !regexp.MustCompile(`^NAME +DISPLAY NAME +MEMBERS +CREATED\norgs/acme/groups/devs +Developers +2 +\S+\n$`).MatchString(out) {
		t.Fatalf("groups list --filter members:\n%s", out)
	}

	iamOK(t, "", "groups", "update", "devs", "--org", "acme", "--description", "the developers")
	g = noErr[*aegisv1.Group](t, "get devs")(a.identity().GetGroup(a.ctx(t), &aegisv1.GetGroupRequest{Name: "orgs/acme/groups/devs"}))
	if g.GetDescription() != "the developers" || g.GetDisplayName() != "Developers" || fmtLabels(g.GetLabels()) != "team=web" || g.GetMemberCount() != 2 {
		t.Fatalf("after update --description: %v", g)
	}

	if out := iamOK(t, "", "groups", "members", "remove", "devs", "bob", "--org", "acme"); out != "Removed orgs/acme/users/bob from orgs/acme/groups/devs.\n" {
		t.Fatalf("members remove: %q", out)
	}
	if errs := iamFails(t, 1, "groups", "members", "remove", "devs", "bob", "--org", "acme"); !strings.HasPrefix(errs, "photon: remove orgs/acme/users/bob from orgs/acme/groups/devs: not found (or not visible to you): ") {
		t.Fatalf("members remove twice: %q", errs)
	}
	if out := iamOK(t, "", "groups", "get", "orgs/acme/groups/devs"); !strings.Contains(out, "MEMBERS       1\n") || !strings.Contains(out, "DESCRIPTION   the developers\n") {
		t.Fatalf("get:\n%s", out)
	}
	if out := iamOK(t, "", "groups", "delete", "devs", "--org", "acme"); out != "Deleted orgs/acme/groups/devs.\n" {
		t.Fatalf("delete: %q", out)
	}
	if out := iamOK(t, "", "groups", "list", "--org", "acme"); strings.Contains(out, "devs") {
		t.Fatalf("list after delete:\n%s", out)
	}
}

// TestIAMServiceAccounts: a key's secret is shown once, at creation, and
// works; lists and gets never show it; a deleted key stops working.
func TestIAMServiceAccounts(t *testing.T) {
	a := startAegis(t, aegisOptions{})
	cliEnvFor(t, a)
	login(t)

	out := iamOK(t, "", "sa", "create", "ci", "--org", "acme", "--project", "web", "--display-name", "CI", "--cert-dns-san", "ci.example.com")
	sa := noErr[*aegisv1.ServiceAccount](t, "get ci")(a.identity().GetServiceAccount(a.ctx(t), &aegisv1.GetServiceAccountRequest{Name: "orgs/acme/projects/web/serviceAccounts/ci"}))
	want := fmt.Sprintf(`NAME          orgs/acme/projects/web/serviceAccounts/ci
DISPLAY NAME  CI
STATE         active
CREATED       %s
DESCRIPTION   -
LABELS        -
CERTIFICATES  dns:ci.example.com
UID           %s
UPDATED       %s
ETAG          %s
`, ts(sa.GetCreateTime()), sa.GetUid(), ts(sa.GetUpdateTime()), sa.GetEtag())
	if out != want {
		t.Fatalf("create output:\n%s\nwant:\n%s", out, want)
	}
	iamOK(t, "", "service-accounts", "create", "deployer", "--org", "acme")
	if out := iamOK(t, "", "sa", "list", "--project", "orgs/acme/projects/web"); !regexp.MustCompile(`^NAME +DISPLAY NAME +STATE +CREATED\norgs/acme/projects/web/serviceAccounts/ci +CI +active +\S+\n$`).MatchString(out) {
		t.Fatalf("list of the project:\n%s", out)
	}
	if out := iamOK(t, "", "sa", "list", "--org", "acme"); !regexp.MustCompile(`^NAME +DISPLAY NAME +STATE +CREATED\norgs/acme/serviceAccounts/deployer +- +active +\S+\n$`).MatchString(out) {
		t.Fatalf("list of the org:\n%s", out)
	}
	// Any --cert-* flag replaces the identities; the rest stays.
	iamOK(t, "", "sa", "update", "ci", "--org", "acme", "--project", "web", "--cert-uri-san", "spiffe://acme/ci", "--description", "builds")
	sa = noErr[*aegisv1.ServiceAccount](t, "get ci")(a.identity().GetServiceAccount(a.ctx(t), &aegisv1.GetServiceAccountRequest{Name: "orgs/acme/projects/web/serviceAccounts/ci"}))
	if len(sa.GetCertificateIdentities()) != 1 || sa.GetCertificateIdentities()[0].GetUriSan() != "spiffe://acme/ci" || sa.GetDisplayName() != "CI" || sa.GetDescription() != "builds" {
		t.Fatalf("after update: %v", sa)
	}

	code, out, errs := photon(t, "", "iam", "sa", "keys", "create", "ci", "--org", "acme", "--project", "web", "--description", "deploy", "--expire", "720h")
	if code != 0 || errs != "Store the client secret now: Aegis keeps only its hash and cannot show it again.\n" {
		t.Fatalf("key create: exit %d, %q %q", code, out, errs)
	}
	fields := map[string]string{}
	for l := range strings.Lines(out) {
		k, v, _ := strings.Cut(strings.TrimSpace(l), "  ")
		fields[k] = strings.TrimSpace(v)
	}
	keyName, clientID, secret := fields["NAME"], fields["CLIENT ID"], fields["CLIENT SECRET"]
	if !strings.HasPrefix(keyName, "orgs/acme/projects/web/serviceAccounts/ci/keys/") || clientID == "" || len(secret) < 32 || fields["DESCRIPTION"] != "deploy" {
		t.Fatalf("key create output:\n%s", out)
	}
	if exp, err := time.Parse(time.RFC3339, fields["EXPIRES"]); err != nil || exp.Sub(time.Now().Add(720*time.Hour)).Abs() > time.Minute {
		t.Fatalf("key expires %q, want in 720h", fields["EXPIRES"])
	}
	tok, err := a.keyToken(t, clientID, secret)
	if err != nil {
		t.Fatalf("the printed secret does not work: %v", err)
	}
	if sub := jwtSubject(tok.AccessToken); sub != "orgs/acme/projects/web/serviceAccounts/ci" {
		t.Fatalf("key token for %q", sub)
	}

	keyID := strings.TrimPrefix(keyName, "orgs/acme/projects/web/serviceAccounts/ci/keys/")
	for _, args := range [][]string{
		{"sa", "keys", "list", "orgs/acme/projects/web/serviceAccounts/ci"},
		{"sa", "keys", "list", "ci", "--org", "acme", "--project", "web", "-o", "json"},
		{"sa", "keys", "get", keyName},
		{"sa", "keys", "get", "ci", keyID, "--org", "acme", "--project", "web", "-o", "json"},
	} {
		if out := iamOK(t, "", args...); strings.Contains(out, secret) || !strings.Contains(out, clientID) || strings.Contains(out, "SECRET") || strings.Contains(out, "clientSecret") {
			t.Fatalf("%v shows the secret or not the key:\n%s", args, out)
		}
	}

	// The example in --filter's help is one Aegis takes.
	iamOK(t, "", "sa", "keys", "list", "ci", "--org", "acme", "--project", "web", "--filter", `expire_time < "2027-01-01T00:00:00Z"`)

	// In JSON, for scripts, the secret is in the one answer that has it.
	out = iamOK(t, "", "sa", "keys", "create", "orgs/acme/serviceAccounts/deployer", "-o", "json")
	var k map[string]any
	if json.Unmarshal([]byte(out), &k) != nil || k["clientSecret"] == nil || k["clientSecret"] == "" {
		t.Fatalf("key create -o json: %q", out)
	}

	if out := iamOK(t, "", "sa", "keys", "delete", keyName); out != "Deleted "+keyName+".\n" {
		t.Fatalf("key delete: %q", out)
	}
	if _, err := a.keyToken(t, clientID, secret); err == nil {
		t.Fatal("a deleted key still works")
	}
	iamOK(t, "", "sa", "update", "orgs/acme/serviceAccounts/deployer", "--state", "disabled")
	if out := iamOK(t, "", "sa", "get", "deployer", "--org", "acme"); !strings.Contains(out, "STATE         disabled\n") {
		t.Fatalf("get disabled:\n%s", out)
	}
	if out := iamOK(t, "", "sa", "delete", "ci", "--org", "acme", "--project", "web"); out != "Deleted orgs/acme/projects/web/serviceAccounts/ci.\n" {
		t.Fatalf("delete: %q", out)
	}
	if errs := iamFails(t, 1, "sa", "get", "orgs/acme/projects/web/serviceAccounts/ci"); !strings.HasPrefix(errs, "photon: get service account orgs/acme/projects/web/serviceAccounts/ci: not found (or not visible to you): ") {
		t.Fatalf("get deleted: %q", errs)
	}
}

func TestIAMRoles(t *testing.T) {
	a := startAegis(t, aegisOptions{})
	a.createUser(t, "acme", "bob", bobPassword)
	cliEnvFor(t, a)
	login(t)

	// Built-in roles as Aegis defines them today.
	builtin := map[string]*aegisv1.Role{}
	for _, n := range []string{"roles/OrgAdmin", "roles/ProjectEditor"} {
		builtin[n] = noErr[*aegisv1.Role](t, "get "+n)(a.policy().GetRole(a.ctx(t), &aegisv1.GetRoleRequest{Name: n}))
	}
	out := iamOK(t, "", "roles", "list")
	if !strings.HasPrefix(out, "NAME ") {
		t.Fatalf("roles list:\n%s", out)
	}
	for n, r := range builtin {
		re := fmt.Sprintf(`\n%s +%s +yes +%d\n`, regexp.QuoteMeta(n), regexp.QuoteMeta(r.GetDisplayName()), len(r.GetPermissions()))
		if !regexp.MustCompile(re).MatchString(out) {
			t.Fatalf("roles list has no row %s:\n%s", re, out)
		}
	}
	pe := builtin["roles/ProjectEditor"]
	if out := iamOK(t, "", "roles", "get", "ProjectEditor"); !strings.HasPrefix(out, "NAME          roles/ProjectEditor\nDISPLAY NAME  "+pe.GetDisplayName()+"\nBUILT-IN      yes\n") ||
		!strings.Contains(out, "PERMISSIONS   "+strings.Join(pe.GetPermissions(), " ")+"\n") {
		t.Fatalf("get ProjectEditor:\n%s", out)
	}

	out = iamOK(t, "", "roles", "create", "VMStarter", "--org", "acme", "--display-name", "VM starter", "--permission", "plasmavmc:vms:start,plasmavmc:vms:get")
	r := noErr[*aegisv1.Role](t, "get role")(a.policy().GetRole(a.ctx(t), &aegisv1.GetRoleRequest{Name: "orgs/acme/roles/VMStarter"}))
	want := fmt.Sprintf(`NAME          orgs/acme/roles/VMStarter
DISPLAY NAME  VM starter
BUILT-IN      no
DESCRIPTION   -
PERMISSIONS   %s
CREATED       %s
UPDATED       %s
ETAG          %s
`, strings.Join(r.GetPermissions(), " "), ts(r.GetCreateTime()), ts(r.GetUpdateTime()), r.GetEtag())
	if out != want {
		t.Fatalf("create output:\n%s\nwant:\n%s", out, want)
	}
	if out := iamOK(t, "", "roles", "get", "VMStarter", "--org", "acme"); out != want {
		t.Fatalf("get:\n%s", out)
	}
	if out := iamOK(t, "", "roles", "list", "--org", "acme"); !regexp.MustCompile(`^NAME +DISPLAY NAME +BUILT-IN +PERMISSIONS\norgs/acme/roles/VMStarter +VM starter +no +2\n$`).MatchString(out) {
		t.Fatalf("list --org:\n%s", out)
	}
	iamOK(t, "", "roles", "update", "VMStarter", "--org", "acme", "--permission", "plasmavmc:vms:start", "--permission", "plasmavmc:vms:stop")
	iamOK(t, "", "roles", "update", "orgs/acme/roles/VMStarter", "--description", "starts and stops VMs")
	r = noErr[*aegisv1.Role](t, "get role")(a.policy().GetRole(a.ctx(t), &aegisv1.GetRoleRequest{Name: "orgs/acme/roles/VMStarter"}))
	if strings.Join(r.GetPermissions(), " ") != "plasmavmc:vms:start plasmavmc:vms:stop" || r.GetDisplayName() != "VM starter" || r.GetDescription() != "starts and stops VMs" {
		t.Fatalf("after updates: %v", r)
	}

	// The custom role grants what it lists.
	iamOK(t, "", "bindings", "create", "--member", "orgs/acme/users/bob", "--role", "orgs/acme/roles/VMStarter", "--scope", "orgs/acme/projects/web", "--id", "bob-vms")
	check := []string{"check", "--principal", "orgs/acme/users/bob", "--resource", "orgs/acme/projects/web/vms/vm-1", "--permission"}
	if out := iamOK(t, "", append(check, "plasmavmc:vms:stop")...); !strings.Contains(out, "ROLE             orgs/acme/roles/VMStarter\n") {
		t.Fatalf("check stop:\n%s", out)
	}
	if code, out, _ := photon(t, "", append([]string{"iam"}, append(check, "plasmavmc:vms:delete")...)...); code != 1 || !strings.HasPrefix(out, "DECISION         DENIED\n") {
		t.Fatalf("check delete: exit %d\n%s", code, out)
	}

	if errs := iamFails(t, 1, "roles", "delete", "ProjectEditor"); errs != "photon: delete role roles/ProjectEditor: refused: built-in role roles/ProjectEditor cannot be changed\n" {
		t.Fatalf("delete built-in: %q", errs)
	}
	if errs := iamFails(t, 1, "roles", "delete", "VMStarter", "--org", "acme"); errs != "photon: delete role orgs/acme/roles/VMStarter: refused: role \"orgs/acme/roles/VMStarter\" still has 1 bindings; delete them first or use force\n" {
		t.Fatalf("delete in use: %q", errs)
	}
	if out := iamOK(t, "", "roles", "delete", "VMStarter", "--org", "acme", "--force"); out != "Deleted orgs/acme/roles/VMStarter.\n" {
		t.Fatalf("delete --force: %q", out)
	}
	if errs := iamFails(t, 1, "bindings", "get", "bob-vms", "--parent", "orgs/acme/projects/web"); !strings.Contains(errs, "not found") {
		t.Fatalf("the role's binding survived: %q", errs)
	}
}

// TestIAMBindings: --deny, --condition and --expire reach Aegis's
// decisions, and updates change only the flags given.
func TestIAMBindings(t *testing.T) {
	a := startAegis(t, aegisOptions{})
	a.createUser(t, "acme", "bob", bobPassword)
	noErr[*aegisv1.Group](t, "create devs")(a.identity().CreateGroup(a.ctx(t), &aegisv1.CreateGroupRequest{Parent: "orgs/acme", GroupId: "devs"}))
	noErr[*aegisv1.GroupMember](t, "add bob")(a.identity().AddGroupMember(a.ctx(t), &aegisv1.AddGroupMemberRequest{Group: "orgs/acme/groups/devs", Member: "orgs/acme/users/bob"}))
	cliEnvFor(t, a)
	login(t)

	// An allow without an id gets one from Aegis.
	out := iamOK(t, "", "bindings", "create", "--member", "orgs/acme/groups/devs", "--role", "ProjectEditor", "--scope", "orgs/acme/projects/web", "-o", "json")
	var b map[string]any
	if json.Unmarshal([]byte(out), &b) != nil || !strings.HasPrefix(b["name"].(string), "orgs/acme/projects/web/bindings/") || b["effect"] != "EFFECT_ALLOW" || b["creator"] != aliceName {
		t.Fatalf("create allow -o json: %q", out)
	}
	allowName := b["name"].(string)

	before := time.Now()
	out = iamOK(t, "", "bindings", "create", "--member", "orgs/acme/groups/devs", "--role", "ProjectEditor", "--scope", "orgs/acme/projects/web/vms/vm-1",
		"--deny", "--condition", `resource.labels["env"] == "prod"`, "--condition-title", "prod", "--expire", "24h", "--id", "no-prod", "--description", "not in prod")
	d := noErr[*aegisv1.Binding](t, "get no-prod")(a.policy().GetBinding(a.ctx(t), &aegisv1.GetBindingRequest{Name: "orgs/acme/projects/web/bindings/no-prod"}))
	if exp := d.GetExpireTime().AsTime(); exp.Before(before.Add(24*time.Hour-time.Second)) || exp.After(time.Now().Add(24*time.Hour)) {
		t.Fatalf("--expire 24h: expires %v", exp)
	}
	want := fmt.Sprintf(`NAME             orgs/acme/projects/web/bindings/no-prod
EFFECT           deny
MEMBER           orgs/acme/groups/devs
ROLE             roles/ProjectEditor
SCOPE            orgs/acme/projects/web/vms/vm-1
CONDITION        resource.labels["env"] == "prod"
CONDITION TITLE  prod
EXPIRES          %s
DESCRIPTION      not in prod
CREATOR          orgs/acme/users/alice
CREATED          %s
UPDATED          %s
ETAG             %s
`, ts(d.GetExpireTime()), ts(d.GetCreateTime()), ts(d.GetUpdateTime()), d.GetEtag())
	if out != want {
		t.Fatalf("create deny output:\n%s\nwant:\n%s", out, want)
	}
	if out := iamOK(t, "", "bindings", "get", "no-prod", "--parent", "orgs/acme/projects/web"); out != want {
		t.Fatalf("get:\n%s", out)
	}

	// The deny applies where its condition holds.
	checkVM := func(labels ...string) (int, string) {
		t.Helper()
		args := []string{"iam", "check", "--principal", "orgs/acme/users/bob", "--permission", "plasmavmc:vms:start", "--resource", "orgs/acme/projects/web/vms/vm-1"}
		for _, l := range labels {
			args = append(args, "--label", l)
		}
		code, out, errs := photon(t, "", args...)
		if errs != "" {
			t.Fatalf("check: exit %d, %q", code, errs)
		}
		return code, out
	}
	if code, out := checkVM("env=prod"); code != 1 || !strings.HasPrefix(out, "DECISION         DENIED\nREASON           denied_by_binding\nPRINCIPAL        orgs/acme/users/bob\nBINDING          orgs/acme/projects/web/bindings/no-prod\n") {
		t.Fatalf("check in prod: exit %d\n%s", code, out)
	}
	if code, out := checkVM("env=dev"); code != 0 || !strings.Contains(out, "BINDING          "+allowName+"\n") {
		t.Fatalf("check in dev: exit %d\n%s", code, out)
	}

	if out := iamOK(t, "", "bindings", "list", "--parent", "orgs/acme/projects/web", "--filter", "effect = EFFECT_DENY"); !regexp.MustCompile(`^NAME +EFFECT +MEMBER +ROLE +SCOPE +CONDITION +EXPIRES\norgs/acme/projects/web/bindings/no-prod +deny +orgs/acme/groups/devs +roles/ProjectEditor +orgs/acme/projects/web/vms/vm-1 +prod +\S+Z\n$`).MatchString(out) {
		t.Fatalf("list --filter:\n%s", out)
	}
	if out := iamOK(t, "", "bindings", "list", "--parent", "orgs/acme", "-o", "json"); !strings.Contains(out, `"name": "orgs/acme/bindings/alice-admin"`) || strings.Contains(out, "no-prod") {
		t.Fatalf("list of the org:\n%s", out)
	}

	// Update: a new expiry and no condition, nothing else; the deny then
	// applies everywhere on vm-1.
	iamOK(t, "", "bindings", "update", "orgs/acme/projects/web/bindings/no-prod", "--expire", "2030-01-02T03:04:05Z", "--clear-condition", "--etag", d.GetEtag())
	d = noErr[*aegisv1.Binding](t, "get no-prod")(a.policy().GetBinding(a.ctx(t), &aegisv1.GetBindingRequest{Name: "orgs/acme/projects/web/bindings/no-prod"}))
	if d.GetCondition() != nil || ts(d.GetExpireTime()) != "2030-01-02T03:04:05Z" || d.GetDescription() != "not in prod" || d.GetEffect() != aegisv1.Binding_EFFECT_DENY {
		t.Fatalf("after update: %v", d)
	}
	if code, out := checkVM("env=dev"); code != 1 || !strings.Contains(out, "REASON           denied_by_binding\n") {
		t.Fatalf("check after the condition was cleared: exit %d\n%s", code, out)
	}
	// A time to live and a condition again; then no expiry at all.
	iamOK(t, "", "bindings", "update", "no-prod", "--parent", "orgs/acme/projects/web", "--expire", "1h", "--condition", `resource.labels["env"] == "prod"`)
	d = noErr[*aegisv1.Binding](t, "get no-prod")(a.policy().GetBinding(a.ctx(t), &aegisv1.GetBindingRequest{Name: "orgs/acme/projects/web/bindings/no-prod"}))
	if exp := d.GetExpireTime().AsTime(); exp.Sub(time.Now().Add(time.Hour)).Abs() > time.Minute || d.GetCondition().GetExpression() != `resource.labels["env"] == "prod"` {
		t.Fatalf("after update --expire 1h --condition: %v", d)
	}
	if out := iamOK(t, "", "bindings", "update", "no-prod", "--parent", "orgs/acme/projects/web", "--clear-expire"); !strings.Contains(out, "EXPIRES          -\n") {
		t.Fatalf("update --clear-expire:\n%s", out)
	}
	if errs := iamFails(t, 1, "bindings", "update", "no-prod", "--parent", "orgs/acme/projects/web", "--description", "x", "--etag", d.GetEtag()); !strings.Contains(errs, "conflict: etag mismatch") {
		t.Fatalf("stale update: %q", errs)
	}
	// A condition that does not compile is Aegis's to refuse.
	if errs := iamFails(t, 1, "bindings", "update", "no-prod", "--parent", "orgs/acme/projects/web", "--condition", "resource.nope =="); !strings.HasPrefix(errs, "photon: update binding orgs/acme/projects/web/bindings/no-prod: invalid request: ") {
		t.Fatalf("bad condition: %q", errs)
	}

	if out := iamOK(t, "", "bindings", "delete", "no-prod", "--parent", "orgs/acme/projects/web"); out != "Deleted orgs/acme/projects/web/bindings/no-prod.\n" {
		t.Fatalf("delete: %q", out)
	}
	if code, _ := checkVM("env=prod"); code != 0 {
		t.Fatal("denied after the deny was deleted")
	}
	// Bindings at the system level are not alice's to read, and she may
	// know that they exist.
	if errs := iamFails(t, 1, "bindings", "list"); errs != "photon: list bindings of a container: permission denied: permission aegis:bindings:list denied on system\n" {
		t.Fatalf("list system bindings: %q", errs)
	}
}

func TestIAMAudit(t *testing.T) {
	a := startAegis(t, aegisOptions{})
	cliEnvFor(t, a)
	login(t)
	iamOK(t, "", "projects", "update", "web", "--org", "acme", "--display-name", "Web")
	iamFails(t, 1, "orgs", "delete", "acme")

	// One event: the update, by alice, on web.
	args := []string{"audit", "list", "--parent", "orgs/acme", "--since", "1h", "--principal", aliceName, "--resource", "orgs/acme/projects/web",
		"--filter", `method = "/aegis.v1.OrgService/UpdateProject"`}
	var out string
	eventually(t, "audit event of the update", func() bool {
		out = iamOK(t, "", args...)
		return strings.Count(out, "\n") == 2
	})
	var evs []map[string]any
	if err := json.Unmarshal([]byte(iamOK(t, "", append(args, "-o", "json")...)), &evs); err != nil || len(evs) != 1 {
		t.Fatalf("-o json: %v %v", evs, err)
	}
	at, _ := time.Parse(time.RFC3339Nano, evs[0]["eventTime"].(string))
	want := fmt.Sprintf(`TIME                  KIND          PRINCIPAL              METHOD                              RESOURCE                PERMISSION             STATUS
%s  admin_change  orgs/acme/users/alice  /aegis.v1.OrgService/UpdateProject  orgs/acme/projects/web  aegis:projects:update  OK
`, at.UTC().Format(time.RFC3339))
	if out != want {
		t.Fatalf("audit list:\n%s\nwant:\n%s", out, want)
	}
	if evs[0]["updateMask"] != "displayName" {
		t.Fatalf("event without the update mask: %v", evs[0])
	}

	// The denied delete is in the log too; nothing is in it before an
	// hour ago.
	eventually(t, "audit event of the denied delete", func() bool {
		return strings.HasSuffix(iamOK(t, "", "audit", "list", "--parent", "orgs/acme", "--filter", "kind = KIND_ACCESS_DENIED", "--limit", "1"),
			"  access_denied  orgs/acme/users/alice  /aegis.v1.OrgService/DeleteOrg  orgs/acme  aegis:orgs:delete  PERMISSION_DENIED\n")
	})
	if out := iamOK(t, "", "audit", "list", "--parent", "orgs/acme", "--until", "1h"); out != "TIME  KIND  PRINCIPAL  METHOD  RESOURCE  PERMISSION  STATUS\n" {
		t.Fatalf("audit list --until 1h:\n%s", out)
	}
	if out := iamOK(t, "", "audit", "list", "--parent", "orgs/acme", "--limit", "2", "-o", "json"); strings.Count(out, `"eventTime"`) != 2 {
		t.Fatalf("audit list --limit 2:\n%s", out)
	}
	// The system's log is the admin's.
	if errs := iamFails(t, 1, "audit", "list"); errs != "photon: list audit events: permission denied: permission aegis:auditEvents:list denied on system\n" {
		t.Fatalf("system audit log: %q", errs)
	}
}

// TestIAMCheck: the exit status is the answer, 0 allowed, 1 denied, and 2
// when there is none.
func TestIAMCheck(t *testing.T) {
	a := startAegis(t, aegisOptions{})
	a.createUser(t, "acme", "carol", "carol's password")
	noErr[*aegisv1.GroupMember](t, "add carol")(a.identity().AddGroupMember(a.ctx(t), &aegisv1.AddGroupMemberRequest{Group: "orgs/acme/groups/staff", Member: "orgs/acme/users/carol"}))
	noErr[*aegisv1.Binding](t, "bind viewers")(a.policy().CreateBinding(a.ctx(t), &aegisv1.CreateBindingRequest{
		Parent: "orgs/acme", BindingId: "viewers", Binding: &aegisv1.Binding{Member: "orgs/acme/groups/staff", Role: "roles/OrgViewer",
			Condition: &aegisv1.Condition{Expression: `resource.labels["env"] == "prod" && request.source_ip == "10.0.0.1"`}}}))
	cliEnvFor(t, a)

	// Not logged in: no decision, exit 2.
	code, out, errs := photon(t, "", "iam", "check", "--permission", "aegis:orgs:get", "--resource", "orgs/acme")
	if code != 2 || out != "" || !strings.Contains(errs, "not logged in") {
		t.Fatalf("check before login: exit %d, %q", code, errs)
	}
	login(t)

	// The labels and the source address reach the condition.
	code, out, errs = photon(t, "", "iam", "check", "--principal", "orgs/acme/users/carol", "--permission", "aegis:orgs:get", "--resource", "orgs/acme",
		"--label", "env=prod", "--source-ip", "10.0.0.1")
	want := `DECISION         ALLOWED
REASON           allowed
PRINCIPAL        orgs/acme/users/carol
BINDING          orgs/acme/bindings/viewers
ROLE             roles/OrgViewer
MEMBER           orgs/acme/groups/staff
SCOPE            orgs/acme
CONDITION ERROR  -
MESSAGE          allowed by orgs/acme/bindings/viewers (roles/OrgViewer at orgs/acme for orgs/acme/groups/staff): condition true
`
	if code != 0 || out != want || errs != "" {
		t.Fatalf("allowed: exit %d, stdout:\n%s\nwant:\n%s\nstderr %q", code, out, want, errs)
	}
	code, out, _ = photon(t, "", "iam", "check", "--principal", "orgs/acme/users/carol", "--permission", "aegis:orgs:get", "--resource", "orgs/acme",
		"--label", "env=prod", "--source-ip", "10.0.0.2")
	if code != 1 || !strings.HasPrefix(out, "DECISION         DENIED\nREASON           no_allow_binding\nPRINCIPAL        orgs/acme/users/carol\n") {
		t.Fatalf("other address: exit %d\n%s", code, out)
	}

	// Without --principal the caller is checked.
	code, out, errs = photon(t, "", "iam", "check", "--permission", "aegis:orgs:delete", "--resource", "orgs/acme")
	if code != 1 || !strings.HasPrefix(out, "DECISION         DENIED\nREASON           no_allow_binding\nPRINCIPAL        orgs/acme/users/alice\n") || errs != "" {
		t.Fatalf("denied: exit %d, %q %q", code, out, errs)
	}
	code, out, _ = photon(t, "", "iam", "check", "--permission", "aegis:orgs:delete", "--resource", "orgs/acme", "-o", "json")
	var d map[string]any
	if code != 1 || json.Unmarshal([]byte(out), &d) != nil || d["reason"] != "REASON_NO_ALLOW_BINDING" || d["principal"] != aliceName {
		t.Fatalf("denied -o json: exit %d, %q", code, out)
	}
	if code, out, _ := photon(t, "", "iam", "check", "--permission", "aegis:users:create", "--resource", "orgs/acme", "-o", "json"); code != 0 || !strings.Contains(out, `"allowed": true`) {
		t.Fatalf("allowed -o json: exit %d, %q", code, out)
	}
	if code, out, _ := photon(t, "", "iam", "check", "--principal", "orgs/acme/users/nobody", "--permission", "aegis:orgs:get", "--resource", "orgs/acme"); code != 1 ||
		!strings.Contains(out, "REASON           principal_inactive\n") {
		t.Fatalf("unknown principal: exit %d\n%s", code, out)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		// Aegis refuses to decide.
		{[]string{"--permission", "aegis:orgs", "--resource", "orgs/acme"}, "photon: check: invalid request: permission \"aegis:orgs\": "},
		{[]string{"--permission", "aegis:orgs:get", "--resource", "orgs/acme/"}, "photon: check: invalid request: resource \"orgs/acme/\": "},
		{[]string{"--principal", "orgs/beta/users/bob", "--permission", "aegis:orgs:get", "--resource", "orgs/beta"}, "photon: check: not found (or not visible to you): orgs/beta not found\n"},
		// The CLI refuses to ask.
		{[]string{"--resource", "orgs/acme"}, "--permission is required"},
		{[]string{"--permission", "x:y:z"}, "--resource is required"},
		{[]string{"--permission", "x:y:z", "--resource", "r", "--source-ip", "nope"}, "--source-ip"},
		{[]string{"--permission", "x:y:z", "--resource", "r", "--label", "nokey"}, "want key=value"},
		{[]string{"--bogus"}, "unknown flag: --bogus"},
		{[]string{"--permission", "x:y:z", "--resource", "r", "--timeout", "soon"}, "invalid argument"},
		{[]string{"extra"}, "unknown command"},
		{[]string{"--permission", "x:y:z", "--resource", "r", "-o", "yaml"}, `-o "yaml"`},
	} {
		code, out, errs := photon(t, "", append([]string{"iam", "check"}, tc.args...)...)
		if code != 2 || out != "" || !strings.Contains(errs, tc.want) {
			t.Errorf("check %v: exit %d, stdout %q, stderr %q, want exit 2 and %q", tc.args, code, out, errs, tc.want)
		}
	}

	// Aegis unreachable: no decision.
	t.Setenv(envAegisEndpoint, "127.0.0.1:1")
	code, out, errs = photon(t, "", "iam", "check", "--permission", "aegis:orgs:get", "--resource", "orgs/acme", "--timeout", "10s")
	if code != 2 || out != "" || !strings.HasPrefix(errs, "photon: check: cannot reach Aegis at 127.0.0.1:1: ") {
		t.Fatalf("unreachable: exit %d, %q %q", code, out, errs)
	}
}

// TestIAMCrossTenant: alice, admin of acme, learns nothing of org beta:
// every name there is NOT_FOUND, never PERMISSION_DENIED, whether it
// exists or not.
func TestIAMCrossTenant(t *testing.T) {
	a := startAegis(t, aegisOptions{})
	ctx := a.ctx(t)
	noErr[*aegisv1.Org](t, "create beta")(a.orgs().CreateOrg(ctx, &aegisv1.CreateOrgRequest{OrgId: "beta"}))
	noErr[*aegisv1.Project](t, "create api")(a.orgs().CreateProject(ctx, &aegisv1.CreateProjectRequest{Parent: "orgs/beta", ProjectId: "api"}))
	a.createUser(t, "beta", "bob", bobPassword)
	noErr[*aegisv1.Group](t, "create ops")(a.identity().CreateGroup(ctx, &aegisv1.CreateGroupRequest{Parent: "orgs/beta", GroupId: "ops"}))
	noErr[*aegisv1.ServiceAccount](t, "create robot")(a.identity().CreateServiceAccount(ctx, &aegisv1.CreateServiceAccountRequest{Parent: "orgs/beta/projects/api", ServiceAccountId: "robot"}))
	key := noErr[*aegisv1.ServiceAccountKey](t, "create key")(a.identity().CreateServiceAccountKey(ctx, &aegisv1.CreateServiceAccountKeyRequest{Parent: "orgs/beta/projects/api/serviceAccounts/robot"}))
	noErr[*aegisv1.Role](t, "create role")(a.policy().CreateRole(ctx, &aegisv1.CreateRoleRequest{Parent: "orgs/beta", RoleId: "Ops", Role: &aegisv1.Role{Permissions: []string{"plasmavmc:vms:get"}}}))
	a.bind(t, "orgs/beta", "bob-admin", "orgs/beta/users/bob", "roles/OrgAdmin")
	cliEnvFor(t, a)
	login(t)

	for _, args := range [][]string{
		{"orgs", "get", "beta"},
		{"orgs", "update", "beta", "--display-name", "mine"},
		{"orgs", "delete", "beta", "--force"},
		{"projects", "get", "api", "--org", "beta"},
		{"projects", "list", "--org", "beta"},
		{"projects", "create", "x", "--org", "beta"},
		{"projects", "delete", "orgs/beta/projects/api"},
		{"users", "get", "bob", "--org", "beta"},
		{"users", "get", "nobody", "--org", "beta"},
		{"users", "list", "--org", "beta"},
		{"users", "create", "eve", "--org", "beta"},
		{"users", "update", "bob", "--org", "beta", "--state", "disabled"},
		{"users", "set-password", "bob", "--org", "beta", "--password-stdin"},
		{"users", "delete", "orgs/beta/users/bob"},
		{"groups", "get", "ops", "--org", "beta"},
		{"groups", "list", "--org", "beta"},
		{"groups", "members", "add", "ops", aliceName, "--org", "beta"},
		{"groups", "members", "list", "orgs/beta/groups/ops"},
		{"sa", "get", "robot", "--org", "beta", "--project", "api"},
		{"sa", "list", "--org", "beta"},
		{"sa", "keys", "create", "orgs/beta/projects/api/serviceAccounts/robot"},
		{"sa", "keys", "list", "orgs/beta/projects/api/serviceAccounts/robot"},
		{"sa", "keys", "delete", key.GetName()},
		{"roles", "get", "Ops", "--org", "beta"},
		{"roles", "list", "--org", "beta"},
		{"roles", "create", "Mine", "--org", "beta", "--permission", "aegis:*:*"},
		{"bindings", "get", "bob-admin", "--parent", "orgs/beta"},
		{"bindings", "list", "--parent", "orgs/beta"},
		{"bindings", "delete", "orgs/beta/bindings/bob-admin"},
		{"bindings", "create", "--member", aliceName, "--role", "OrgAdmin", "--scope", "orgs/beta"},
		{"audit", "list", "--parent", "orgs/beta"},
	} {
		code, out, errs := photon(t, "pw-for-set-password\n", append([]string{"iam"}, args...)...)
		if code != 1 || out != "" || !strings.Contains(errs, ": not found (or not visible to you): ") {
			t.Errorf("iam %v: exit %d, stdout %q, stderr %q; want not found", args, code, out, errs)
		}
	}
	if out := iamOK(t, "", "orgs", "list"); strings.Contains(out, "beta") || !strings.Contains(out, "orgs/acme ") {
		t.Fatalf("orgs list shows another tenant:\n%s", out)
	}
	if code, _, errs := photon(t, "", "iam", "check", "--principal", "orgs/beta/users/bob", "--permission", "aegis:orgs:get", "--resource", "orgs/beta"); code != 2 ||
		errs != "photon: check: not found (or not visible to you): orgs/beta not found\n" {
		t.Fatalf("check in beta: exit %d, %q", code, errs)
	}
	// Nothing in beta changed.
	if _, err := a.identity().GetUser(a.ctx(t), &aegisv1.GetUserRequest{Name: "orgs/beta/users/eve"}); err == nil {
		t.Fatal("alice created a user in beta")
	}
	if _, err := a.tryPasswordToken(t, "bob@beta", bobPassword); err != nil {
		t.Fatalf("bob of beta: %v", err)
	}

	// And the other way round.
	loginAs(t, "bob@beta", bobPassword)
	if errs := iamFails(t, 1, "users", "get", "alice", "--org", "acme"); errs != "photon: get user orgs/acme/users/alice: not found (or not visible to you): orgs/acme/users/alice not found\n" {
		t.Fatalf("bob reads alice: %q", errs)
	}
}

// TestIAMUsageErrors: bad arguments are reported before any session is
// needed: nobody is logged in, and no Aegis listens.
func TestIAMUsageErrors(t *testing.T) {
	t.Setenv(envConfigDir, t.TempDir())
	t.Setenv(envAegisURL, "http://127.0.0.1:1")
	t.Setenv(envAegisEndpoint, "127.0.0.1:1")
	t.Setenv(envCACert, "")
	t.Setenv(envInsecure, "")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"projects", "create", "web"}, "--org is required"},
		{[]string{"projects", "create", "a/b"}, `want an id, or a full name <parent>/projects/<id>`},
		{[]string{"projects", "get", "web", "--org", "a/b"}, `--org "a/b"`},
		{[]string{"orgs", "update", "acme"}, "nothing to update: give at least one of --display-name, --description, --label, --state"},
		{[]string{"orgs", "update", "acme", "--state", "gone"}, `--state "gone"`},
		{[]string{"orgs", "create", "acme", "--label", "=v"}, "want key=value"},
		{[]string{"orgs", "create", "acme", "--label", "k=1", "--label", "k=2"}, "--label k given twice"},
		{[]string{"orgs", "list", "--limit", "-1"}, "must not be negative"},
		{[]string{"orgs", "list", "-o", "yaml"}, "want table or json"},
		{[]string{"users", "set-password", "alice", "--org", "acme"}, "give --password-stdin"},
		{[]string{"users", "create", "alice", "--org", "acme", "--password-stdin"}, "empty password on stdin"},
		{[]string{"service-accounts", "create", "ci", "--project", "web"}, "--org is required"},
		{[]string{"sa", "keys", "delete", "ci"}, "give the full key name"},
		{[]string{"sa", "keys", "create", "ci", "--org", "acme", "--expire", "later"}, `--expire "later"`},
		{[]string{"roles", "create", "Dev", "--org", "acme"}, "give at least one --permission"},
		{[]string{"bindings", "create", "--role", "r", "--scope", "system"}, "--member is required"},
		{[]string{"bindings", "create", "--member", "alice", "--role", "r", "--scope", "system"}, "give the full name"},
		{[]string{"bindings", "create", "--member", "orgs/a/users/b", "--role", "r", "--scope", "org/a"}, `--scope "org/a"`},
		{[]string{"bindings", "create", "--member", "orgs/a/users/b", "--role", "r", "--scope", "system", "--condition-title", "t"}, "need --condition"},
		{[]string{"bindings", "create", "--member", "orgs/a/users/b", "--role", "r", "--scope", "system", "--expire", "-1h"}, "positive duration"},
		{[]string{"bindings", "get", "b1"}, "--parent with the binding id"},
		{[]string{"bindings", "update", "system/bindings/b1", "--clear-condition", "--condition", "true"}, "exclude each other"},
		{[]string{"audit", "list", "--since", "yesterday"}, `--since "yesterday"`},
		{[]string{"audit", "list", "--since", "1h", "--until", "2h"}, "--since must be before --until"},
	} {
		code, out, errs := photon(t, "", append([]string{"iam"}, tc.args...)...)
		if code != 1 || out != "" || !strings.Contains(errs, tc.want) {
			t.Errorf("iam %v: exit %d, stdout %q, stderr %q, want %q", tc.args, code, out, errs, tc.want)
		}
	}
	// With valid arguments the first thing missing is the session.
	if code, _, errs := photon(t, "", "iam", "orgs", "list"); code != 1 || !strings.Contains(errs, "not logged in to http://127.0.0.1:1") {
		t.Errorf("orgs list: exit %d, %q", code, errs)
	}
}

// keyToken exchanges a service account key for a token (client
// credentials), as a workload would.
func (a *testAegis) keyToken(t *testing.T, clientID, secret string) (*oauth2.Token, error) {
	t.Helper()
	conf := &clientcredentials.Config{ClientID: clientID, ClientSecret: secret, TokenURL: a.url + "/oauth2/token", AuthStyle: oauth2.AuthStyleInParams}
	ctx, cancel := context.WithTimeout(context.WithValue(context.Background(), oauth2.HTTPClient, a.httpClient(t)), 30*time.Second)
	defer cancel()
	return conf.Token(ctx)
}
