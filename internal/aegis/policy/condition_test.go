package policy

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestConditionCompileErrors(t *testing.T) {
	e := newTestEvaluator(t)
	for _, tc := range []struct{ expr, msg string }{
		{"request.time <", "Syntax error"},
		{"request.tme < timestamp('2030-01-01T00:00:00Z')", "undeclared reference"},
		{"request", "undeclared reference"},
		{"resource.name", "must evaluate to bool"},
		{"1 + 1", "must evaluate to bool"},
		{"dyn(true)", "must evaluate to bool"},
		{"resource.labels == 3", "no matching overload"},
		{"inCIDR(request.source_ip)", "no matching overload"},
		{"\xff", "UTF-8"},
		{strings.Repeat("(", 200) + "true" + strings.Repeat(")", 200), ""},
		{strings.Repeat("true && ", 1000) + "true", "longer than"},
	} {
		err := e.ValidateCondition(tc.expr)
		if !errors.Is(err, ErrInvalidCondition) {
			t.Errorf("%.40q: %v, want ErrInvalidCondition", tc.expr, err)
			continue
		}
		if !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%.40q: error %q does not mention %q", tc.expr, err, tc.msg)
		}
	}
	// A binding with a bad condition is rejected and leaves no trace.
	b := allow("b1", "users/alice", "ProjectViewer", "orgs/acme")
	b.Condition = "request.tme > 1"
	if err := e.PutBinding(b); !errors.Is(err, ErrInvalidCondition) || !errors.Is(err, ErrInvalidBinding) {
		t.Fatalf("PutBinding: %v", err)
	}
	if _, ok := e.Binding("b1"); ok {
		t.Fatal("rejected binding stored")
	}
}

// condWorld is alice (labels team=dns, in group devs) with one binding
// whose condition is expr.
func condWorld(t *testing.T, effect Effect, expr string) *Evaluator {
	t.Helper()
	e := newTestEvaluator(t)
	must(t, e.Update(func(tx *Tx) error {
		must(t, tx.PutPrincipal(Principal{Name: "users/alice", Org: "acme", Labels: map[string]string{"team": "dns"}}))
		must(t, tx.PutGroup(Group{Name: "groups/devs", Org: "acme"}))
		must(t, tx.AddMember("groups/devs", "users/alice"))
		must(t, tx.PutBinding(allow("base", "users/alice", "ProjectEditor", "orgs/acme")))
		return tx.PutBinding(Binding{ID: "c", Subject: "users/alice", Role: "ProjectEditor", Scope: "orgs/acme", Effect: effect, Condition: expr})
	}))
	return e
}

func TestConditionVariables(t *testing.T) {
	req := Request{
		Principal:      "users/alice",
		Permission:     "flashdns:records:update",
		Resource:       "orgs/acme/projects/web/zones/example.com",
		ResourceLabels: map[string]string{"env": "prod"},
		SourceIP:       "::ffff:10.1.2.3",
		Time:           t0,
	}
	for _, expr := range []string{
		`request.time == timestamp("2026-11-27T12:00:00Z")`,
		`request.time.getHours() == 12`,
		`request.source_ip == "10.1.2.3"`,
		`inCIDR(request.source_ip, "10.0.0.0/8")`,
		`!inCIDR(request.source_ip, "192.168.0.0/16")`,
		`request.permission == "flashdns:records:update"`,
		`resource.name == "orgs/acme/projects/web/zones/example.com"`,
		`resource.org == "acme" && resource.project == "web" && resource.kind == "zones" && resource.id == "example.com"`,
		`resource.labels["env"] == "prod"`,
		`resource.labels[?"missing"].orValue("x") == "x"`,
		`!("missing" in resource.labels)`,
		`principal.name == "users/alice" && principal.id == "alice" && principal.kind == "user"`,
		`principal.org == "acme" && principal.project == ""`,
		`principal.labels.team == "dns"`,
		`"groups/devs" in principal.groups && size(principal.groups) == 1`,
		`resource.labels.exists(k, k.startsWith("e"))`,
	} {
		e := condWorld(t, EffectDeny, expr)
		d, err := e.Authorize(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		if d.Allowed || d.BindingID != "c" || d.Detail != "condition true" {
			t.Errorf("%s: want deny by c with condition true, got %v", expr, d)
		}
	}
}

// With API names given, conditions see principal.name and principal.groups
// as the API writes them.
func TestConditionResourceNames(t *testing.T) {
	e := newTestEvaluator(t)
	must(t, e.Update(func(tx *Tx) error {
		must(t, tx.PutPrincipal(Principal{Name: "users/u1", ResourceName: "orgs/acme/users/alice", Org: "acme"}))
		must(t, tx.PutGroup(Group{Name: "groups/g1", ResourceName: "orgs/acme/groups/oncall", Org: "acme"}))
		must(t, tx.AddMember("groups/g1", "users/u1"))
		return tx.PutBinding(Binding{ID: "c", Subject: "users/u1", Role: "ProjectEditor", Scope: "orgs/acme",
			Effect: EffectAllow, Condition: `principal.name == "orgs/acme/users/alice" && "orgs/acme/groups/oncall" in principal.groups`})
	}))
	d, err := e.Authorize(context.Background(), Request{Principal: "users/u1", Permission: "flashdns:zones:get", Resource: "orgs/acme/projects/web"})
	if err != nil {
		t.Fatal(err)
	}
	if !d.Allowed || d.BindingID != "c" {
		t.Fatalf("want allowed by c, got %v", d)
	}
}

func TestConditionOutcomes(t *testing.T) {
	req := Request{Principal: "users/alice", Permission: "plasmavmc:vms:get", Resource: "orgs/acme/projects/p", SourceIP: "10.0.0.1"}
	for _, tc := range []struct {
		name    string
		effect  Effect
		expr    string
		allowed bool
		binding string
		detail  string
	}{
		{"deny true", EffectDeny, "true", false, "c", "condition true"},
		{"deny false", EffectDeny, "false", true, "base", ""},
		{"deny error fails closed", EffectDeny, `resource.labels["nope"] == "x"`, false, "c", "fail closed"},
		{"deny bad cidr fails closed", EffectDeny, `inCIDR(request.source_ip, "bogus")`, false, "c", "fail closed"},
		{"deny cost limit fails closed", EffectDeny, `[1,2,3,4,5,6,7,8,9,10].all(a, [1,2,3,4,5,6,7,8,9,10].all(b, [1,2,3,4,5,6,7,8,9,10].all(c, [1,2,3,4,5,6,7,8,9,10].all(d, a+b+c+d > 0))))`, false, "c", "fail closed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := condWorld(t, tc.effect, tc.expr)
			d, err := e.Authorize(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			if d.Allowed != tc.allowed || d.BindingID != tc.binding || !strings.Contains(d.Detail, tc.detail) {
				t.Fatalf("got %v", d)
			}
		})
	}

	// Allow outcomes: use a world whose only allow is conditional.
	for _, tc := range []struct {
		name, expr string
		allowed    bool
		detail     string
	}{
		{"allow true", "true", true, "condition true"},
		{"allow false", "false", false, "condition false"},
		{"allow error does not apply", `resource.labels["nope"] == "x"`, false, "failed to evaluate"},
		{"allow source ip", `inCIDR(request.source_ip, "10.0.0.0/24")`, true, "condition true"},
		{"allow source ip outside", `inCIDR(request.source_ip, "10.0.1.0/24")`, false, "condition false"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := condWorld(t, EffectAllow, tc.expr)
			must(t, e.DeleteBinding("base"))
			d, err := e.Authorize(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			if d.Allowed != tc.allowed || !strings.Contains(d.Detail, tc.detail) {
				t.Fatalf("got %v", d)
			}
			if !tc.allowed && d.Reason != ReasonNoMatchingBinding {
				t.Fatalf("reason %v", d.Reason)
			}
		})
	}
}

func TestConditionUnknownSourceIP(t *testing.T) {
	// No source address: inCIDR fails, so a deny on it applies and an
	// allow on it does not.
	req := Request{Principal: "users/alice", Permission: "plasmavmc:vms:get", Resource: "orgs/acme"}
	e := condWorld(t, EffectDeny, `!inCIDR(request.source_ip, "10.0.0.0/8")`)
	if d, _ := e.Authorize(context.Background(), req); d.Allowed {
		t.Fatalf("deny without source ip: %v", d)
	}
	e = condWorld(t, EffectAllow, `inCIDR(request.source_ip, "10.0.0.0/8")`)
	must(t, e.DeleteBinding("base"))
	if d, _ := e.Authorize(context.Background(), req); d.Allowed {
		t.Fatalf("allow without source ip: %v", d)
	}
}

func TestConditionCancelledContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req := Request{Principal: "users/alice", Permission: "plasmavmc:vms:get", Resource: "orgs/acme"}
	expr := `[1,2,3].all(x, x > 0)`
	// A deny whose evaluation is interrupted applies.
	e := condWorld(t, EffectDeny, expr)
	if d, _ := e.Authorize(ctx, req); d.Allowed || d.BindingID != "c" {
		t.Fatalf("got %v", d)
	}
	// Unconditional decisions do not depend on the context.
	must(t, e.DeleteBinding("c"))
	if d, _ := e.Authorize(ctx, req); !d.Allowed {
		t.Fatalf("got %v", d)
	}
}

func TestConditionCostLimitBoundsTime(t *testing.T) {
	e, err := New(Options{ConditionCostLimit: 1000})
	must(t, err)
	must(t, e.PutPrincipal(user("alice", "acme")))
	expr := `[1,2,3,4,5,6,7,8,9,10].all(a, [1,2,3,4,5,6,7,8,9,10].all(b, [1,2,3,4,5,6,7,8,9,10].all(c, [1,2,3,4,5,6,7,8,9,10].all(d, [1,2,3,4,5,6,7,8,9,10].all(f, a+b+c+d+f > 0)))))`
	b := allow("b", "users/alice", "ProjectViewer", "orgs/acme")
	b.Condition = expr
	must(t, e.PutBinding(b))
	// The cost limit ends the evaluation (a hang would hit the test
	// timeout); the allow whose condition failed does not apply.
	d := check(t, e, "users/alice", "plasmavmc:vms:get", "orgs/acme")
	if d.Allowed || !strings.Contains(d.Detail, "cost") {
		t.Fatalf("got %v", d)
	}
}

func TestConditionSharedCompile(t *testing.T) {
	e := newTestEvaluator(t)
	must(t, e.Update(func(tx *Tx) error {
		for _, id := range []string{"a", "b"} {
			b := allow(id, "users/x", "ProjectViewer", "orgs/acme")
			b.Condition = "request.time.getHours() < 18"
			must(t, tx.PutBinding(b))
		}
		return nil
	}))
	b2 := allow("c", "users/x", "ProjectViewer", "orgs/acme")
	b2.Condition = "request.time.getHours() < 18"
	must(t, e.PutBinding(b2))
	s := e.cur.Load()
	var conds []*condition
	for _, id := range []string{"a", "b", "c"} {
		b, _ := s.bindings.get(s.seed, skey(id))
		conds = append(conds, b.cond)
	}
	if conds[0] != conds[1] || conds[1] != conds[2] {
		t.Fatal("identical conditions compiled more than once")
	}
}
