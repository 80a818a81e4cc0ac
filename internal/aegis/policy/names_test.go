package policy

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestParseResourceValid(t *testing.T) {
	for _, tc := range []struct {
		name      string
		level     Level
		org, proj string
		kind, id  string
		ancestors []string
	}{
		{"system", LevelSystem, "", "", "", "", []string{"system"}},
		{"orgs/acme", LevelOrg, "acme", "", "", "", []string{"system", "orgs/acme"}},
		{"orgs/a", LevelOrg, "a", "", "", "", []string{"system", "orgs/a"}},
		{"orgs/acme/projects/web", LevelProject, "acme", "web", "", "", []string{"system", "orgs/acme", "orgs/acme/projects/web"}},
		{"orgs/acme/projects/web-2/vms/vm-1", LevelResource, "acme", "web-2", "vms", "vm-1",
			[]string{"system", "orgs/acme", "orgs/acme/projects/web-2", "orgs/acme/projects/web-2/vms/vm-1"}},
		{"orgs/acme/users/alice", LevelResource, "acme", "", "users", "alice",
			[]string{"system", "orgs/acme", "orgs/acme/users/alice"}},
		{"orgs/acme/roles/dnsOps", LevelResource, "acme", "", "roles", "dnsOps",
			[]string{"system", "orgs/acme", "orgs/acme/roles/dnsOps"}},
		{"orgs/acme/projects/web/zones/example.com/records/_acme-challenge.www", LevelResource, "acme", "web", "records", "_acme-challenge.www",
			[]string{"system", "orgs/acme", "orgs/acme/projects/web", "orgs/acme/projects/web/zones/example.com",
				"orgs/acme/projects/web/zones/example.com/records/_acme-challenge.www"}},
		{"orgs/acme/serviceAccounts/ci", LevelResource, "acme", "", "serviceAccounts", "ci",
			[]string{"system", "orgs/acme", "orgs/acme/serviceAccounts/ci"}},
		{"orgs/o/projects/p/a/1/b/2/c/3/d/4", LevelResource, "o", "p", "d", "4",
			[]string{"system", "orgs/o", "orgs/o/projects/p", "orgs/o/projects/p/a/1", "orgs/o/projects/p/a/1/b/2",
				"orgs/o/projects/p/a/1/b/2/c/3", "orgs/o/projects/p/a/1/b/2/c/3/d/4"}},
		{"orgs/o/a/1/b/2/c/3/d/4", LevelResource, "o", "", "d", "4",
			[]string{"system", "orgs/o", "orgs/o/a/1", "orgs/o/a/1/b/2", "orgs/o/a/1/b/2/c/3", "orgs/o/a/1/b/2/c/3/d/4"}},
		{"orgs/o/projects/p/vms/" + strings.Repeat("x", 253), LevelResource, "o", "p", "vms", strings.Repeat("x", 253), nil},
		{"orgs/" + strings.Repeat("a", 63), LevelOrg, strings.Repeat("a", 63), "", "", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ParseResource(tc.name)
			if err != nil {
				t.Fatal(err)
			}
			if r.String() != tc.name || r.Level() != tc.level || r.Org() != tc.org || r.Project() != tc.proj || r.Kind() != tc.kind || r.ID() != tc.id {
				t.Fatalf("got %q level=%v org=%q project=%q kind=%q id=%q", r, r.Level(), r.Org(), r.Project(), r.Kind(), r.ID())
			}
			if tc.ancestors != nil && !slices.Equal(r.Ancestors(), tc.ancestors) {
				t.Fatalf("ancestors %q, want %q", r.Ancestors(), tc.ancestors)
			}
		})
	}
}

func TestParseResourceInvalid(t *testing.T) {
	for _, s := range []string{
		"", "System", "system/", "/system", "orgs", "orgs/", "/orgs/a", "orgs/a/", "orgs//projects/p",
		"org/acme", "orgs/Acme", "orgs/-acme", "orgs/acme-", "orgs/1acme", "orgs/ac_me", "orgs/ac.me",
		"orgs/" + strings.Repeat("a", 64),
		"orgs/acme/projects", "orgs/acme/projects/", "orgs/acme/projects/Web", "orgs/acme/projects/web/",
		"orgs/acme/vms", "orgs/acme/vms/", "orgs/acme/Vms/x", "orgs/acme/v-ms/x", "orgs/acme/1vms/x",
		"orgs/acme/orgs/x", "orgs/acme/projects/p/projects/x", "orgs/acme/projects/p/orgs/x",
		"orgs/acme/vms/.hidden", "orgs/acme/vms/-x", "orgs/acme/vms/a b", "orgs/acme/vms/a/b", "orgs/acme/vms/é",
		"orgs/acme/vms/" + strings.Repeat("x", 254),
		"orgs/o/projects/p/a/1/b/2/c/3/d/4/e/5",
		"orgs/o/a/1/b/2/c/3/d/4/e/5",
		"orgs/o/projects/p/vms/x\x00",
		"orgs/o/" + strings.Repeat("vms/x/", 200),
	} {
		_, err := ParseResource(s)
		if err == nil {
			t.Errorf("ParseResource(%q) succeeded", s)
			continue
		}
		if !errors.Is(err, ErrInvalidName) {
			t.Errorf("ParseResource(%q): %v does not wrap ErrInvalidName", s, err)
		}
	}
}

func TestResourceContains(t *testing.T) {
	names := []string{
		"system", "orgs/a", "orgs/b", "orgs/ab", "orgs/a/projects/p", "orgs/a/projects/pq", "orgs/a/projects/p/vms/v",
		"orgs/a/projects/p/vms/v/disks/d", "orgs/a/vms/v", "orgs/a/projects/q/vms/v",
	}
	for _, x := range names {
		rx, _ := ParseResource(x)
		for _, y := range names {
			ry, _ := ParseResource(y)
			want := slices.Contains(ry.Ancestors(), x)
			if got := rx.Contains(ry); got != want {
				t.Errorf("%s.Contains(%s) = %v, want %v", x, y, got, want)
			}
		}
	}
	// Prefix of a name that is not an ancestor must not count.
	a, _ := ParseResource("orgs/a")
	ab, _ := ParseResource("orgs/ab")
	if a.Contains(ab) {
		t.Fatal("orgs/a contains orgs/ab")
	}
}

func TestParsePrincipalRef(t *testing.T) {
	for _, tc := range []struct {
		s    string
		kind PrincipalKind
	}{
		{"users/alice", KindUser},
		{"users/a", KindUser},
		{"users/alice.smith_2-x", KindUser},
		{"serviceAccounts/ci-deployer", KindServiceAccount},
		{"groups/devs", KindGroup},
		{"users/0b6f9c1e-5c3a-4c1e-9d7a-2f1e0c9b8a7d", KindUser},
	} {
		p, err := ParsePrincipalRef(tc.s)
		if err != nil {
			t.Fatalf("%s: %v", tc.s, err)
		}
		if p.Kind != tc.kind || p.String() != tc.s {
			t.Fatalf("%s: got %+v %s", tc.s, p, p)
		}
	}
	for _, s := range []string{
		"", "alice", "user/alice", "Users/alice", "users/", "users/Alice", "users/-a", "users/a-", "users/a/b",
		"serviceaccounts/x", "service_accounts/x", "groups/", "groups/x y", "users/" + strings.Repeat("a", 129), "users/é",
	} {
		if _, err := ParsePrincipalRef(s); !errors.Is(err, ErrInvalidName) {
			t.Errorf("ParsePrincipalRef(%q) = %v, want ErrInvalidName", s, err)
		}
	}
}

func TestParseRoleName(t *testing.T) {
	for _, tc := range []struct {
		s, org string
		ok     bool
	}{
		{"SystemAdmin", "", true},
		{"flashdns.editor", "", true},
		{"orgs/acme/roles/dnsOps", "acme", true},
		{"orgs/acme/roles/dns.ops-2_x", "acme", true},
		{"NotARole", "", false},
		{"systemadmin", "", false},
		{"orgs/acme/roles/", "", false},
		{"orgs/acme/roles/1x", "", false},
		{"orgs/acme/roles/x/y", "", false},
		{"orgs/Acme/roles/x", "", false},
		{"orgs/acme/projects/p/roles/x", "", false},
		{"roles/x", "", false},
		{"orgs/acme", "", false},
	} {
		org, err := parseRoleName(tc.s, IsBuiltinRole)
		if (err == nil) != tc.ok || org != tc.org {
			t.Errorf("parseRoleName(%q) = %q, %v; want org %q ok %v", tc.s, org, err, tc.org, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidName) {
			t.Errorf("parseRoleName(%q): %v does not wrap ErrInvalidName", tc.s, err)
		}
	}
}

func TestBindingIDAndLabels(t *testing.T) {
	for _, s := range []string{"b", "B1", "1", "b-1.x_y", strings.Repeat("b", 128)} {
		if err := checkBindingID(s); err != nil {
			t.Errorf("%q: %v", s, err)
		}
	}
	for _, s := range []string{"", "-b", ".b", "b/1", "b 1", strings.Repeat("b", 129)} {
		if err := checkBindingID(s); !errors.Is(err, ErrInvalidName) {
			t.Errorf("%q: %v", s, err)
		}
	}
	if why := checkLabels(map[string]string{"env": "prod", "team/dns": "x", "a.b_c-d": ""}); why != "" {
		t.Error(why)
	}
	many := map[string]string{}
	for i := range 65 {
		many[strings.Repeat("k", i+1)] = "v"
	}
	for _, m := range []map[string]string{
		{"": "x"}, {"a b": "x"}, {"k": "\xff"}, {"k": strings.Repeat("v", 1025)}, {strings.Repeat("k", 129): "v"}, many,
	} {
		if why := checkLabels(m); why == "" {
			t.Errorf("labels accepted: %v", m)
		}
	}
}

func TestQuoteTruncates(t *testing.T) {
	long := strings.Repeat("é", 200)
	q := quote(long)
	if len(q) > 120 || !strings.HasSuffix(q, "…") {
		t.Fatalf("quote = %s", q)
	}
	_, err := ParseResource(strings.Repeat("x", 5000))
	if err == nil || len(err.Error()) > 300 {
		t.Fatalf("error too long or missing: %v", err)
	}
}
