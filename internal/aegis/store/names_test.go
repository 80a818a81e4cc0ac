package store

import (
	"errors"
	"testing"
	"time"
)

func TestParseName(t *testing.T) {
	ok := []struct {
		in      string
		kind    kind
		org     string
		project string
		parent  string
	}{
		{"orgs/acme", kindOrg, "acme", "", ""},
		{"orgs/acme/projects/web", kindProject, "acme", "web", "orgs/acme"},
		{"orgs/acme/users/1bob", kindUser, "acme", "", "orgs/acme"},
		{"orgs/acme/groups/devs", kindGroup, "acme", "", "orgs/acme"},
		{"orgs/acme/serviceAccounts/ci", kindServiceAccount, "acme", "", "orgs/acme"},
		{"orgs/acme/projects/web/serviceAccounts/ci", kindServiceAccount, "acme", "web", "orgs/acme/projects/web"},
		{"orgs/acme/serviceAccounts/ci/keys/k1", kindKey, "acme", "", "orgs/acme/serviceAccounts/ci"},
		{"orgs/acme/projects/web/serviceAccounts/ci/keys/k1", kindKey, "acme", "web", "orgs/acme/projects/web/serviceAccounts/ci"},
		{"orgs/acme/roles/VMReader", kindRole, "acme", "", "orgs/acme"},
		{"roles/ProjectEditor", kindRole, "", "", ""},
		{"system/bindings/b1", kindBinding, "", "", "system"},
		{"orgs/acme/bindings/b1", kindBinding, "acme", "", "orgs/acme"},
		{"orgs/acme/projects/web/bindings/b1", kindBinding, "acme", "web", "orgs/acme/projects/web"},
	}
	for _, c := range ok {
		n, err := parseName(c.in)
		if err != nil {
			t.Fatalf("%s: %v", c.in, err)
		}
		if n.kind != c.kind || n.org != c.org || n.project != c.project || n.parent != c.parent {
			t.Fatalf("%s: got %+v", c.in, n)
		}
	}
	bad := []string{
		"", "orgs", "orgs/", "orgs/Acme", "orgs/1acme", "orgs/acme/", "orgs/acme/projects",
		"orgs/acme/projects/web/users/x", "orgs/acme/projects/web/roles/r", "orgs/acme/widgets/x",
		"orgs/acme/users/a/b", "orgs/acme/serviceAccounts/ci/keys", "roles/x", "system", "system/bindings",
		"orgs/acme/users/-x", "orgs/acme/roles/1abc", "org/acme", "orgs/acme//users/x",
	}
	for _, in := range bad {
		if n, err := parseName(in); !errors.Is(err, ErrInvalidArgument) {
			t.Fatalf("%q: parsed as %+v, %v", in, n, err)
		}
	}
}

func TestKeyHelpers(t *testing.T) {
	k, name, ok := kindOfKey(kindMember.key("orgs/a/groups/g/orgs/a/projects/p/serviceAccounts/s"))
	if !ok || k != kindMember {
		t.Fatal("kindOfKey")
	}
	g, m, ok := splitMemberName(name)
	if !ok || g != "orgs/a/groups/g" || m != "orgs/a/projects/p/serviceAccounts/s" {
		t.Fatalf("splitMemberName: %q %q", g, m)
	}
	if _, _, ok := kindOfKey(refKey("orgs/a/users/u", "system/bindings/b")); ok {
		t.Fatal("a ref key is not a record")
	}
	if prefixEnd("/a/") != "/a0" || prefixEnd("a\xff") != "b" {
		t.Fatal("prefixEnd")
	}
	if auditContainer("orgs/a/projects/p/vms/x") != "orgs/a/projects/p" || auditContainer("orgs/a/users/u") != "orgs/a" ||
		auditContainer("system/bindings/b") != "system" || auditContainer("") != "system" {
		t.Fatal("auditContainer")
	}
	a, b := newSortableID("k", timeAt(1)), newSortableID("k", timeAt(2))
	if !(a < b) || checkLabel("id", a) != nil || len(a) != 25 {
		t.Fatalf("sortable ids %q %q", a, b)
	}
	if u := newUID(); len(u) != 26 || checkLabel("uid", u) != nil {
		t.Fatalf("uid %q", u)
	}
}

func timeAt(sec int64) time.Time { return time.Unix(sec, 0) }
