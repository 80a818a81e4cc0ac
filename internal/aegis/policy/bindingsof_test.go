package policy

import (
	"errors"
	"fmt"
	"slices"
	"testing"
)

// TestBindingsOf: the bindings of one subject, from its own record, follow
// every put, replace and delete, and nothing of an aborted transaction.
func TestBindingsOf(t *testing.T) {
	e := newTestEvaluator(t)
	ids := func(bs []Binding) []string {
		var out []string
		for _, b := range bs {
			out = append(out, b.ID+"@"+b.Scope)
		}
		return out
	}
	want := func(subject string, w ...string) {
		t.Helper()
		if got := ids(e.BindingsOf(subject)); !slices.Equal(got, w) {
			t.Fatalf("BindingsOf(%s) = %q, want %q", subject, got, w)
		}
	}
	want("groups/devs")

	// More scopes than the linear-scan threshold, put out of order; a
	// deny is a binding of the subject too. Bindings of others and
	// memberships do not show.
	must(t, e.Update(func(tx *Tx) error {
		for i := linearScopes + 1; i >= 0; i-- {
			must(t, tx.PutBinding(allow(fmt.Sprintf("p%02d", i), "groups/devs", "ProjectViewer", fmt.Sprintf("orgs/acme/projects/p%02d", i))))
		}
		must(t, tx.PutBinding(deny("z", "groups/devs", "ProjectEditor", "orgs/acme")))
		must(t, tx.PutBinding(allow("a", "groups/devs", "OrgViewer", "orgs/acme")))
		must(t, tx.PutBinding(allow("other", "groups/ops", "OrgViewer", "orgs/acme")))
		return tx.AddMember("groups/devs", "users/alice")
	}))
	var all []string
	all = append(all, "a@orgs/acme", "z@orgs/acme")
	for i := range linearScopes + 2 {
		all = append(all, fmt.Sprintf("p%02d@orgs/acme/projects/p%02d", i, i))
	}
	want("groups/devs", all...)
	want("groups/ops", "other@orgs/acme")
	want("users/alice")
	if bs := e.BindingsOf("groups/devs"); bs[1].Effect != EffectDeny || bs[1].Role != "ProjectEditor" {
		t.Fatalf("deny binding reported as %+v", bs[1])
	}

	// Replacing a binding with another subject moves it; deleting removes
	// it; the result is a copy.
	must(t, e.PutBinding(allow("a", "groups/ops", "OrgViewer", "orgs/acme")))
	must(t, e.DeleteBinding("z"))
	for i := 1; i <= linearScopes+1; i++ {
		must(t, e.DeleteBinding(fmt.Sprintf("p%02d", i)))
	}
	want("groups/devs", "p00@orgs/acme/projects/p00")
	want("groups/ops", "a@orgs/acme", "other@orgs/acme")
	e.BindingsOf("groups/ops")[0].Role = "SystemAdmin"
	if b := e.BindingsOf("groups/ops")[0]; b.Role != "OrgViewer" {
		t.Fatalf("result aliases the evaluator: %+v", b)
	}

	boom := errors.New("boom")
	if err := e.Update(func(tx *Tx) error {
		must(t, tx.PutBinding(allow("x", "groups/devs", "OrgAdmin", "orgs/acme")))
		must(t, tx.DeleteBinding("p00"))
		return boom
	}); !errors.Is(err, boom) {
		t.Fatal(err)
	}
	want("groups/devs", "p00@orgs/acme/projects/p00")
}
