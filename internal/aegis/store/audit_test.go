package store

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	aegisv1 "github.com/photoncloud/photoncloud/api/aegis/v1"
	"github.com/photoncloud/photoncloud/internal/chainfire/chainfiretest"
)

func TestAudit(t *testing.T) {
	addr := startChainfire(t)
	a := openStore(t, addr, func(o *Options) { o.AuditRetention = 2 * time.Hour })
	b := openStore(t, addr, nil)
	ctx := ctxT(t)

	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	type spec struct {
		principal, resource string
	}
	specs := []spec{
		{"orgs/system/users/admin", "orgs/acme"},
		{alice, project},
		{alice, vm},
		{"orgs/acme2/users/eve", "orgs/acme2/projects/web/vms/x"},
		{"", "system/bindings/b"},
		{alice, "orgs/acme/users/alice"},
	}
	const rounds = 20 // 120 events, one a second
	var all []*aegisv1.AuditEvent
	for i := range rounds * len(specs) {
		sp := specs[i%len(specs)]
		ev := &aegisv1.AuditEvent{
			EventTime: timestamppb.New(base.Add(time.Duration(i) * time.Second)),
			Kind:      aegisv1.AuditEvent_KIND_ADMIN_CHANGE, Principal: sp.principal, Resource: sp.resource,
			Method: "/aegis.v1.Test/Do", StatusCode: "OK",
		}
		if sp.principal == "" {
			ev.AttemptedPrincipal = alice
			ev.Kind = aegisv1.AuditEvent_KIND_AUTHENTICATION
		}
		st := a
		if i%2 == 1 {
			st = b
		}
		got, err := st.AppendAudit(ctx, ev)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, got)
	}
	if got := all[1].Name; !strings.HasPrefix(got, project+"/auditEvents/") {
		t.Fatalf("event name %q", got)
	}
	if got := all[0].Name; !strings.HasPrefix(got, "orgs/acme/auditEvents/") {
		t.Fatalf("event name %q", got)
	}
	if got := all[4].Name; !strings.HasPrefix(got, "system/auditEvents/") {
		t.Fatalf("event name %q", got)
	}

	// Pages over everything, newest first.
	var names []string
	tok := ""
	for {
		evs, next, err := b.ListAuditEvents(ctx, AuditQuery{Parent: "system"}, ListOptions[*aegisv1.AuditEvent]{PageSize: 50, PageToken: tok})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			names = append(names, e.Name)
		}
		if next == "" {
			break
		}
		tok = next
	}
	if len(names) != len(all) {
		t.Fatalf("listed %d events, want %d", len(names), len(all))
	}
	for i := range names {
		if names[i] != all[len(all)-1-i].Name {
			t.Fatalf("event %d is %s, want %s (newest first)", i, names[i], all[len(all)-1-i].Name)
		}
	}

	count := func(q AuditQuery) int {
		t.Helper()
		evs, next, err := a.ListAuditEvents(ctx, q, ListOptions[*aegisv1.AuditEvent]{PageSize: 1000})
		if err != nil || next != "" {
			t.Fatalf("query %+v: %v, next %q", q, err, next)
		}
		return len(evs)
	}
	if n := count(AuditQuery{Parent: "orgs/acme"}); n != 4*rounds {
		t.Fatalf("org acme: %d events", n)
	}
	if n := count(AuditQuery{Parent: project}); n != 2*rounds {
		t.Fatalf("project: %d events", n)
	}
	if n := count(AuditQuery{Parent: "system", Principal: alice}); n != 4*rounds {
		t.Fatalf("alice (incl. attempted): %d events", n)
	}
	if n := count(AuditQuery{Parent: "system", Resource: project}); n != 2*rounds {
		t.Fatalf("resource subtree: %d events", n)
	}
	if n := count(AuditQuery{Parent: "system", StartTime: base.Add(10 * time.Second), EndTime: base.Add(20 * time.Second)}); n != 10 {
		t.Fatalf("time range: %d events", n)
	}
	match := func(e *aegisv1.AuditEvent) bool { return e.Kind == aegisv1.AuditEvent_KIND_AUTHENTICATION }
	evs, _, err := a.ListAuditEvents(ctx, AuditQuery{Parent: "system", OldestFirst: true},
		ListOptions[*aegisv1.AuditEvent]{PageSize: 3, Filter: "kind=KIND_AUTHENTICATION", Match: match})
	if err != nil || len(evs) != 3 || evs[0].Name != all[4].Name || evs[1].Name != all[10].Name {
		t.Fatalf("oldest first, filtered: %v, %v", evs, err)
	}
	_, _, err = a.ListAuditEvents(ctx, AuditQuery{Parent: "orgs/acme"}, ListOptions[*aegisv1.AuditEvent]{PageToken: tok})
	wantErr(t, err, ErrInvalidArgument)
	_, _, err = a.ListAuditEvents(ctx, AuditQuery{Parent: "nope"}, ListOptions[*aegisv1.AuditEvent]{})
	wantErr(t, err, ErrInvalidArgument)

	// Events are kept under hour-bucket leases: a handful, not one each.
	cli := chainfiretest.Client(t, addr)
	leases, err := cli.Leases(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(leases.Leases); n == 0 || n > 6 {
		t.Fatalf("%d leases for %d events", n, len(all))
	}
	ttl, err := cli.TimeToLive(ctx, leases.Leases[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Duration(ttl.TTL) * time.Second; d <= 0 || d > 3*time.Hour+time.Minute {
		t.Fatalf("audit lease TTL %v for a 2h retention", d)
	}
}

// A batch is written in one transaction and reads back like single events;
// a batch larger than a transaction may hold is refused whole.
func TestAppendAuditsBatch(t *testing.T) {
	addr := startChainfire(t)
	s := openStore(t, addr, nil)
	ctx := ctxT(t)
	var evs []*aegisv1.AuditEvent
	for i := range 100 {
		evs = append(evs, &aegisv1.AuditEvent{Kind: aegisv1.AuditEvent_KIND_ACCESS_DENIED,
			Principal: alice, Resource: project, Method: "/aegis.v1.Test/Batch", StatusCode: "PERMISSION_DENIED",
			Permission: fmt.Sprintf("plasmavmc:vms%d:get", i)})
	}
	out, err := s.AppendAudits(ctx, evs)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(evs) || out[0].GetName() == "" || out[0].GetEventTime() == nil {
		t.Fatalf("AppendAudits returned %d events, first %v", len(out), out[0])
	}
	var got []*aegisv1.AuditEvent
	tok := ""
	for {
		page, next, err := s.ListAuditEvents(ctx, AuditQuery{Parent: "orgs/acme", Principal: alice}, ListOptions[*aegisv1.AuditEvent]{PageSize: 40, PageToken: tok})
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, page...)
		if next == "" {
			break
		}
		tok = next
	}
	if len(got) != len(evs) {
		t.Fatalf("listed %d events of the batch of %d", len(got), len(evs))
	}
	if _, err := s.AppendAudits(ctx, make([]*aegisv1.AuditEvent, 200)); err == nil {
		t.Fatal("a batch over MaxTxnOps was accepted")
	}
}
