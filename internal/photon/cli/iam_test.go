package cli

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	aegisv1 "github.com/photoncloud/photoncloud/api/aegis/v1"
)

// wantRequest compares the last request a fake got.
func wantRequest(t *testing.T, got, want proto.Message) {
	t.Helper()
	if !proto.Equal(got, want) {
		t.Fatalf("request:\n%v\nwant:\n%v", prototext.Format(got), prototext.Format(want))
	}
}

func TestIAMOrgs(t *testing.T) {
	a := startAegis(t, aegisOptions{})
	cliEnvFor(t, a)
	login(t)

	code, out, errs := photon(t, "", "iam", "orgs", "create", "acme", "--display-name", "Acme", "--label", "tier=gold")
	if code != 0 {
		t.Fatalf("create: %q", errs)
	}
	wantRequest(t, a.orgs.last(), &aegisv1.CreateOrgRequest{OrgId: "acme", Org: &aegisv1.Org{DisplayName: "Acme", Labels: map[string]string{"tier": "gold"}}})
	want := `NAME          orgs/acme
DISPLAY NAME  Acme
STATE         active
LABELS        tier=gold
CREATED       2026-11-27T10:00:00Z
DESCRIPTION   -
UID           uid-1
UPDATED       -
ETAG          e1
`
	if out != want {
		t.Fatalf("create output:\n%s\nwant:\n%s", out, want)
	}

	// A display name with a tab and an escape sequence cannot break the
	// table or the terminal.
	code, out, _ = photon(t, "", "iam", "orgs", "get", "orgs/acme")
	if code != 0 || !strings.Contains(out, "DISPLAY NAME  Acme?Corp?[31m\n") || !strings.Contains(out, "LABELS        env=prod,tier=gold\n") {
		t.Fatalf("get: %q", out)
	}
	code, _, errs = photon(t, "", "iam", "orgs", "get", "nope")
	if code != 1 || errs != "photon: get org orgs/nope: not found (or not visible to you): orgs/nope not found\n" {
		t.Fatalf("get missing: exit %d, %q", code, errs)
	}

	code, out, _ = photon(t, "", "iam", "orgs", "update", "acme", "--state", "suspended", "--etag", "e1")
	if code != 0 {
		t.Fatalf("update: %q", out)
	}
	wantRequest(t, a.orgs.last(), &aegisv1.UpdateOrgRequest{
		Org:        &aegisv1.Org{Name: "orgs/acme", State: aegisv1.Org_STATE_SUSPENDED, Etag: "e1"},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"state"}},
	})

	code, out, _ = photon(t, "", "iam", "orgs", "delete", "acme", "--force")
	if code != 0 || out != "Deleted orgs/acme.\n" {
		t.Fatalf("delete: exit %d, %q", code, out)
	}
	wantRequest(t, a.orgs.last(), &aegisv1.DeleteOrgRequest{Name: "orgs/acme", Force: true})
	code, _, errs = photon(t, "", "iam", "orgs", "delete", "acme", "--etag", "stale")
	if code != 1 || !strings.Contains(errs, "conflict: etag mismatch") {
		t.Fatalf("stale delete: exit %d, %q", code, errs)
	}
}

// TestIAMListPages follows page tokens, and --limit stops early with page
// sizes that never ask for more than needed.
func TestIAMListPages(t *testing.T) {
	a := startAegis(t, aegisOptions{})
	cliEnvFor(t, a)
	login(t)

	code, out, errs := photon(t, "", "iam", "orgs", "list")
	if code != 0 {
		t.Fatalf("list: %q", errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 1+fakeOrgCount || !strings.HasPrefix(lines[0], "NAME ") || !strings.HasPrefix(lines[5], "orgs/org4 ") {
		t.Fatalf("list:\n%s", out)
	}

	n := len(a.orgs.all())
	code, out, _ = photon(t, "", "iam", "orgs", "list", "--limit", "3", "--filter", `state = STATE_ACTIVE`, "-o", "json")
	var orgs []map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &orgs) != nil || len(orgs) != 3 || orgs[2]["name"] != "orgs/org2" {
		t.Fatalf("list --limit 3 -o json: %q", out)
	}
	var sizes []int32
	for _, r := range a.orgs.all()[n:] {
		lr := r.(*aegisv1.ListOrgsRequest)
		if lr.GetFilter() != "state = STATE_ACTIVE" {
			t.Fatalf("filter %q", lr.GetFilter())
		}
		sizes = append(sizes, lr.GetPageSize())
	}
	if len(sizes) != 2 || sizes[0] != 3 || sizes[1] != 1 {
		t.Fatalf("page sizes %v, want [3 1]", sizes)
	}
	// JSON is stable: indented the same way every time.
	if !strings.HasPrefix(out, "[\n  {\n    \"name\": \"orgs/org0\",\n") {
		t.Fatalf("json layout: %q", out)
	}
}

func TestIAMCheck(t *testing.T) {
	a := startAegis(t, aegisOptions{})
	cliEnvFor(t, a)

	// Not logged in: no decision, exit 2.
	code, _, errs := photon(t, "", "iam", "check", "--permission", "aegis:orgs:get", "--resource", "orgs/acme")
	if code != 2 || !strings.Contains(errs, "not logged in") {
		t.Fatalf("check before login: exit %d, %q", code, errs)
	}
	login(t)

	code, out, errs := photon(t, "", "iam", "check", "--principal", aliceName, "--permission", "aegis:orgs:get", "--resource", "orgs/acme",
		"--label", "env=prod", "--source-ip", "10.0.0.1")
	want := `DECISION         ALLOWED
REASON           allowed
PRINCIPAL        orgs/acme/users/alice
BINDING          orgs/acme/bindings/viewers
ROLE             roles/OrgViewer
MEMBER           orgs/acme/groups/staff
SCOPE            orgs/acme
CONDITION ERROR  -
MESSAGE          -
`
	if code != 0 || out != want || errs != "" {
		t.Fatalf("allowed: exit %d, stdout:\n%s\nstderr %q", code, out, errs)
	}
	wantRequest(t, a.authz.last(), &aegisv1.AuthorizeRequest{
		Subject:    &aegisv1.Subject{Identity: &aegisv1.Subject_Principal{Principal: aliceName}},
		Permission: "aegis:orgs:get", Resource: "orgs/acme", ResourceLabels: map[string]string{"env": "prod"}, SourceIp: "10.0.0.1",
	})

	code, out, errs = photon(t, "", "iam", "check", "--permission", "aegis:orgs:delete", "--resource", "orgs/acme")
	if code != 1 || !strings.HasPrefix(out, "DECISION         DENIED\nREASON           no_allow_binding\n") || errs != "" {
		t.Fatalf("denied: exit %d, %q %q", code, out, errs)
	}
	if a.authz.last().(*aegisv1.AuthorizeRequest).GetSubject() != nil {
		t.Fatal("a check without --principal must check the caller")
	}
	code, out, _ = photon(t, "", "iam", "check", "--permission", "aegis:orgs:delete", "--resource", "orgs/acme", "-o", "json")
	var d map[string]any
	if code != 1 || json.Unmarshal([]byte(out), &d) != nil || d["reason"] != "REASON_NO_ALLOW_BINDING" {
		t.Fatalf("denied -o json: exit %d, %q", code, out)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--permission", "aegis:broken:get", "--resource", "orgs/acme"}, "check: Internal: internal error"},
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
}

// TestIAMUsageErrors: bad arguments are reported before any session is
// needed (nobody is logged in here).
func TestIAMUsageErrors(t *testing.T) {
	a := startAegis(t, aegisOptions{})
	cliEnvFor(t, a)
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
}

func TestIAMRequests(t *testing.T) {
	a := startAegis(t, aegisOptions{})
	cliEnvFor(t, a)
	login(t)
	ok := func(stdin string, args ...string) string {
		t.Helper()
		code, out, errs := photon(t, stdin, append([]string{"iam"}, args...)...)
		if code != 0 {
			t.Fatalf("iam %v: exit %d, %q", args, code, errs)
		}
		return out
	}

	ok("", "projects", "create", "orgs/acme/projects/web")
	wantRequest(t, a.orgs.last(), &aegisv1.CreateProjectRequest{Parent: "orgs/acme", ProjectId: "web", Project: &aegisv1.Project{}})

	ok("s3cret-pw\n", "users", "create", "bob", "--org", "acme", "--email", "bob@example.com", "--password-stdin")
	wantRequest(t, a.identity.last(), &aegisv1.CreateUserRequest{Parent: "orgs/acme", UserId: "bob",
		User: &aegisv1.User{Email: "bob@example.com"}, Password: "s3cret-pw"})

	if out := ok("old-pw\r\nnew-pw\n", "users", "set-password", "bob", "--org", "acme", "--current-password-stdin"); out != "Password of orgs/acme/users/bob set.\n" {
		t.Fatalf("set-password: %q", out)
	}
	wantRequest(t, a.identity.last(), &aegisv1.SetUserPasswordRequest{Name: "orgs/acme/users/bob", CurrentPassword: "old-pw", NewPassword: "new-pw"})

	ok("", "groups", "members", "add", "devs", "bob", "--org", "acme")
	wantRequest(t, a.identity.last(), &aegisv1.AddGroupMemberRequest{Group: "orgs/acme/groups/devs", Member: "orgs/acme/users/bob"})

	code, out, errs := photon(t, "", "iam", "sa", "keys", "create", "ci", "--org", "acme", "--project", "web", "--description", "deploy")
	if code != 0 || !strings.Contains(out, "CLIENT SECRET  "+fakeKeySecret+"\n") || !strings.Contains(errs, "cannot show it again") {
		t.Fatalf("key create: exit %d, %q %q", code, out, errs)
	}
	wantRequest(t, a.identity.last(), &aegisv1.CreateServiceAccountKeyRequest{Parent: "orgs/acme/projects/web/serviceAccounts/ci",
		Key: &aegisv1.ServiceAccountKey{Description: "deploy"}})
	for _, format := range []string{"table", "json"} {
		if out := ok("", "sa", "keys", "list", "orgs/acme/projects/web/serviceAccounts/ci", "-o", format); strings.Contains(out, fakeKeySecret) || !strings.Contains(out, "k1") {
			t.Fatalf("key list -o %s shows the secret: %q", format, out)
		}
	}

	before := time.Now()
	ok("", "bindings", "create", "--member", "orgs/acme/groups/devs", "--role", "ProjectEditor", "--scope", "orgs/acme/projects/web/vms/vm-1",
		"--deny", "--condition", `resource.labels["env"] == "prod"`, "--condition-title", "prod", "--expire", "24h", "--id", "no-prod")
	cb := a.policy.last().(*aegisv1.CreateBindingRequest)
	if ttl := cb.GetBinding().GetTtl().AsDuration(); ttl != 24*time.Hour {
		t.Fatalf("ttl %v", ttl)
	}
	cb.Binding.Expiration = nil
	wantRequest(t, cb, &aegisv1.CreateBindingRequest{Parent: "orgs/acme/projects/web", BindingId: "no-prod", Binding: &aegisv1.Binding{
		Member: "orgs/acme/groups/devs", Role: "roles/ProjectEditor", Scope: "orgs/acme/projects/web/vms/vm-1",
		Effect:    aegisv1.Binding_EFFECT_DENY,
		Condition: &aegisv1.Condition{Expression: `resource.labels["env"] == "prod"`, Title: "prod"},
	}})

	ok("", "bindings", "update", "b1", "--parent", "orgs/acme", "--expire", "2027-01-01T00:00:00Z", "--clear-condition")
	ub := a.policy.last().(*aegisv1.UpdateBindingRequest)
	if ub.GetBinding().GetName() != "orgs/acme/bindings/b1" || ub.GetBinding().GetCondition() != nil ||
		!ub.GetBinding().GetExpireTime().AsTime().Equal(mustTime("2027-01-01T00:00:00Z")) ||
		strings.Join(ub.GetUpdateMask().GetPaths(), ",") != "condition,expire_time" {
		t.Fatalf("update binding %v", ub)
	}

	out = ok("", "audit", "list", "--parent", "orgs/acme", "--since", "1h", "--principal", aliceName, "--resource", "orgs/acme")
	lr := a.audit.last().(*aegisv1.ListAuditEventsRequest)
	if since := lr.GetStartTime().AsTime(); lr.GetParent() != "orgs/acme" || lr.GetPrincipal() != aliceName || lr.GetResource() != "orgs/acme" ||
		lr.GetEndTime() != nil || since.After(before.Add(-time.Hour+time.Second)) || since.Before(before.Add(-time.Hour-time.Minute)) {
		t.Fatalf("audit request %v", lr)
	}
	if !strings.Contains(out, "2026-11-27T10:00:00Z  admin_change  orgs/acme/users/alice  /aegis.v1.OrgService/CreateOrg  orgs/acme") {
		t.Fatalf("audit output:\n%s", out)
	}
}
