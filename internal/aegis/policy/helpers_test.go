package policy

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// The package starts no goroutines; keep it that way.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// t0 is the fixed "now" of tests.
var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func newTestEvaluator(t testing.TB) *Evaluator {
	t.Helper()
	e, err := New(Options{Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func user(id, org string) Principal { return Principal{Name: "users/" + id, Org: org} }

func allow(id, subject, role, scope string) Binding {
	return Binding{ID: id, Subject: subject, Role: role, Scope: scope, Effect: EffectAllow}
}

func deny(id, subject, role, scope string) Binding {
	return Binding{ID: id, Subject: subject, Role: role, Scope: scope, Effect: EffectDeny}
}

// check authorizes and fails the test on a malformed request.
func check(t testing.TB, e *Evaluator, principal, perm, resource string) Decision {
	t.Helper()
	d, err := e.Authorize(context.Background(), Request{Principal: principal, Permission: perm, Resource: resource})
	if err != nil {
		t.Fatalf("Authorize(%s, %s, %s): %v", principal, perm, resource, err)
	}
	return d
}

func wantAllow(t testing.TB, d Decision, bindingID string) {
	t.Helper()
	if !d.Allowed || d.Reason != ReasonAllowed || d.BindingID != bindingID {
		t.Fatalf("want allow by %s, got %v", bindingID, d)
	}
}

func wantDeny(t testing.TB, d Decision, reason Reason, bindingID string) {
	t.Helper()
	if d.Allowed || d.Reason != reason || d.BindingID != bindingID {
		t.Fatalf("want deny %v by %q, got %v", reason, bindingID, d)
	}
}
