package policy

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// Fuzz targets: accepted input must behave (round-trip, agree with the
// reference definitions, evaluate in bounded time); rejected input must be
// rejected with the right sentinel error; nothing may panic.

func FuzzParseResource(f *testing.F) {
	for _, s := range []string{"system", "orgs/a", "orgs/acme/projects/web", "orgs/a/projects/b/vms/c",
		"orgs/a/zones/example.com/records/www", "orgs//x", "orgs/a/projects/", "orgs/a/b/c/d/e/f/g/h/i/j/k",
		"orgs/a/projects/p/vms/_x~y.z-1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseResource(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidName) {
				t.Fatalf("%q: %v does not wrap ErrInvalidName", s, err)
			}
			return
		}
		if r.String() != s || len(s) > maxNameLen {
			t.Fatalf("%q: parsed as %q", s, r)
		}
		anc := r.Ancestors()
		if anc[0] != SystemScope || anc[len(anc)-1] != s || len(anc) > maxAncestors {
			t.Fatalf("%q: ancestors %q", s, anc)
		}
		for i, a := range anc {
			ra, err := ParseResource(a)
			if err != nil {
				t.Fatalf("%q: ancestor %q does not parse: %v", s, a, err)
			}
			if !ra.Contains(r) {
				t.Fatalf("%q: ancestor %q does not contain it", s, a)
			}
			if i > 0 && !strings.HasPrefix(s, a+"/") && a != s {
				t.Fatalf("%q: ancestor %q is not a path prefix", s, a)
			}
			if i < len(anc)-1 && r.Contains(ra) {
				t.Fatalf("%q contains its ancestor %q", s, a)
			}
		}
	})
}

func FuzzParsePrincipalRef(f *testing.F) {
	for _, s := range []string{"users/alice", "serviceAccounts/ci", "groups/devs", "users/", "users/A", "x/y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePrincipalRef(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidName) {
				t.Fatalf("%q: %v", s, err)
			}
			return
		}
		if p.String() != s {
			t.Fatalf("%q round-trips to %q", s, p)
		}
	})
}

// FuzzPermissionMatch checks parsing of concrete permissions and patterns,
// and that the compiled matcher agrees with the segment-wise definition.
func FuzzPermissionMatch(f *testing.F) {
	for _, tc := range [][3]string{
		{"*:*:*", "a:b:c", "x:y:z"},
		{"plasmavmc:vms:*", "plasmavmc:vms:start", "plasmavmc:vmsx:start"},
		{"*:vms:get", "flaredb:vms:get", "a:b:c"},
		{"a:*:c", "a:b:c", "a:b:*"},
		{"a:b", "a:b:c:d", "::"},
	} {
		f.Add(tc[0], tc[1], tc[2])
	}
	f.Fuzz(func(t *testing.T, pat, perm1, perm2 string) {
		p, perr := parsePattern(pat)
		if perr != nil && !errors.Is(perr, ErrInvalidPermission) {
			t.Fatalf("pattern %q: %v", pat, perr)
		}
		if perr == nil && p.String() != pat {
			t.Fatalf("pattern %q round-trips to %q", pat, p)
		}
		var m matcher
		if perr == nil {
			m = newMatcher([]pattern{p})
		}
		for _, s := range []string{perm1, perm2} {
			c, err := parsePermission(s)
			if err != nil {
				if !errors.Is(err, ErrInvalidPermission) {
					t.Fatalf("permission %q: %v", s, err)
				}
				continue
			}
			if c.full != s || c.svc+":"+c.res+":"+c.verb != s {
				t.Fatalf("permission %q split as %+v", s, c)
			}
			// A concrete permission is also a valid pattern matching itself.
			self, err := parsePattern(s)
			if err != nil || !self.matches(c) {
				t.Fatalf("permission %q is not a self-matching pattern: %v", s, err)
			}
			if perr == nil && m.match(&c) != p.matches(c) {
				t.Fatalf("pattern %q permission %q: matcher %v, reference %v", pat, s, m.match(&c), p.matches(c))
			}
		}
	})
}

// FuzzCondition compiles arbitrary conditions; an accepted one must then
// evaluate, as an allow and as a deny, without panicking and in bounded
// time, and a rejected one must leave the evaluator unchanged.
func FuzzCondition(f *testing.F) {
	for _, s := range []string{
		"true",
		`request.time < timestamp("2030-01-01T00:00:00Z")`,
		`inCIDR(request.source_ip, "10.0.0.0/8")`,
		`resource.labels["env"] == "prod"`,
		`resource.labels[?"env"].orValue("") == "prod"`,
		`principal.labels.exists(k, k.startsWith("t"))`,
		`[1,2,3].all(x, [1,2,3].all(y, x * y < 100))`,
		`resource.name.matches("^orgs/[a-z]+/projects/web")`,
		`size(principal.groups) > 0 && principal.groups.all(g, g.startsWith("groups/"))`,
		`request.time.getHours("America/New_York") < 18`,
		`int(request.source_ip) > 3`,
		`duration("1h") > duration("30m")`,
		`"a".repeat(10) == "x"`,
		`((((((((((true))))))))))`,
		`resource.labels.map(k, resource.labels[k]).size() > 0`,
	} {
		f.Add(s, "prod", "10.1.2.3")
	}
	f.Fuzz(func(t *testing.T, expr, label, ip string) {
		label = strings.ToValidUTF8(label, "?")
		if len(label) > maxLabelValueLen {
			label = label[:0]
		}
		e := newTestEvaluator(t)
		must(t, e.PutPrincipal(Principal{Name: "users/u", Org: "acme", Labels: map[string]string{"team": label}}))
		must(t, e.PutGroup(Group{Name: "groups/g", Org: "acme"}))
		must(t, e.AddMember("groups/g", "users/u"))
		b := allow("c", "users/u", "ProjectViewer", "orgs/acme")
		b.Condition = expr
		if err := e.PutBinding(b); err != nil {
			if !errors.Is(err, ErrInvalidBinding) {
				t.Fatalf("%q: %v", expr, err)
			}
			if e.Stats().Bindings != 0 {
				t.Fatal("rejected binding stored")
			}
			return
		}
		req := Request{Principal: "users/u", Permission: "plasmavmc:vms:get", Resource: "orgs/acme/projects/web/vms/v",
			ResourceLabels: map[string]string{"env": label}, SourceIP: ip}
		if checkLabels(req.ResourceLabels) != "" {
			req.ResourceLabels = nil
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		for _, eff := range []Effect{EffectAllow, EffectDeny} {
			b.Effect = eff
			must(t, e.PutBinding(b))
			d, err := e.Authorize(ctx, req)
			if err != nil {
				if d.Allowed || !errors.Is(err, ErrInvalidRequest) {
					t.Fatalf("%q: %v %v", expr, d, err)
				}
				continue
			}
			if eff == EffectDeny && d.Allowed {
				t.Fatalf("%q: deny-only world allowed: %v", expr, d)
			}
		}
	})
}

// FuzzAuthorize throws arbitrary requests at a small world.
func FuzzAuthorize(f *testing.F) {
	f.Add("users/alice", "plasmavmc:vms:get", "orgs/acme/projects/web/vms/v1", "10.0.0.1", "env", "prod")
	f.Add("groups/devs", "a:b:c", "system", "", "", "")
	f.Add("users/alice", "a:*:c", "orgs/acme/", "::1", "k", "\xff")
	e := newTestEvaluator(f)
	must(f, e.Update(func(tx *Tx) error {
		must(f, tx.PutPrincipal(user("alice", "acme")))
		must(f, tx.PutGroup(Group{Name: "groups/devs", Org: "acme"}))
		must(f, tx.AddMember("groups/devs", "users/alice"))
		must(f, tx.PutBinding(allow("a", "groups/devs", "ProjectEditor", "orgs/acme")))
		d := deny("d", "users/alice", "ProjectEditor", "orgs/acme/projects/prod")
		d.Condition = `resource.labels["env"] == "prod"`
		return tx.PutBinding(d)
	}))
	f.Fuzz(func(t *testing.T, principal, perm, res, ip, lk, lv string) {
		req := Request{Principal: principal, Permission: perm, Resource: res, SourceIP: ip, ResourceLabels: map[string]string{lk: lv}}
		d, err := e.Authorize(context.Background(), req)
		if (err != nil) != (d.Reason == ReasonInvalidRequest) || (err != nil && d.Allowed) {
			t.Fatalf("%+v: %v %v", req, d, err)
		}
		if d.Allowed && d.BindingID != "a" {
			t.Fatalf("%+v: allowed by %v", req, d)
		}
	})
}
