package server

import (
	"bytes"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	aegisv1 "github.com/photoncloud/photoncloud/api/aegis/v1"
	"github.com/photoncloud/photoncloud/internal/aegis/authn"
)

func listAudit(t *testing.T, req *aegisv1.ListAuditEventsRequest) []*aegisv1.AuditEvent {
	t.Helper()
	var out []*aegisv1.AuditEvent
	for {
		r := must[*aegisv1.ListAuditEventsResponse](t)(tenv.audit.ListAuditEvents(tenv.as(t, "sysadmin"), req))
		out = append(out, r.GetAuditEvents()...)
		if r.GetNextPageToken() == "" {
			return out
		}
		req.PageToken = r.GetNextPageToken()
	}
}

func TestAuditChangesAndDenials(t *testing.T) {
	e := tenv
	start := time.Now()
	gid := e.id("ag")
	group := acme + "/groups/" + gid
	reqID := "req-" + gid
	adminCtx := metadata.AppendToOutgoingContext(e.as(t, "orgadmin"), "x-request-id", reqID)
	g := must[*aegisv1.Group](t)(e.identity.CreateGroup(adminCtx, &aegisv1.CreateGroupRequest{Parent: acme, GroupId: gid}))
	_, err := e.identity.CreateGroup(e.as(t, "orgadmin"), &aegisv1.CreateGroupRequest{Parent: acme, GroupId: gid})
	wantCode(t, err, codes.AlreadyExists)
	_, err = e.identity.DeleteGroup(e.as(t, "viewer"), &aegisv1.DeleteGroupRequest{Name: group})
	wantCode(t, err, codes.PermissionDenied)
	_, err = e.identity.GetGroup(e.as(t, "outsider"), &aegisv1.GetGroupRequest{Name: group})
	wantCode(t, err, codes.NotFound)
	// Reads that succeed are not audit events.
	must[*aegisv1.Group](t)(e.identity.GetGroup(e.as(t, "orgadmin"), &aegisv1.GetGroupRequest{Name: group}))
	e.flushAudit(t)

	evs := listAudit(t, &aegisv1.ListAuditEventsRequest{Parent: acme, Resource: group, StartTime: tsOf(start)})
	if len(evs) != 4 {
		t.Fatalf("%d events: %v", len(evs), evs)
	}
	type want struct {
		kind      aegisv1.AuditEvent_Kind
		principal string
		code      string
		method    string
	}
	wants := []want{ // newest first
		{aegisv1.AuditEvent_KIND_ACCESS_DENIED, "orgs/beta/users/eve", "NOT_FOUND", aegisv1.IdentityService_GetGroup_FullMethodName},
		{aegisv1.AuditEvent_KIND_ACCESS_DENIED, "orgs/acme/users/viewer", "PERMISSION_DENIED", aegisv1.IdentityService_DeleteGroup_FullMethodName},
		{aegisv1.AuditEvent_KIND_ADMIN_CHANGE, "orgs/acme/users/oadmin", "ALREADY_EXISTS", aegisv1.IdentityService_CreateGroup_FullMethodName},
		{aegisv1.AuditEvent_KIND_ADMIN_CHANGE, "orgs/acme/users/oadmin", "OK", aegisv1.IdentityService_CreateGroup_FullMethodName},
	}
	for i, w := range wants {
		ev := evs[i]
		if ev.GetKind() != w.kind || ev.GetPrincipal() != w.principal || ev.GetStatusCode() != w.code || ev.GetMethod() != w.method ||
			!strings.HasPrefix(ev.GetName(), acme+"/auditEvents/") || ev.GetTokenId() == "" || ev.GetSourceIp() != "127.0.0.1" {
			t.Errorf("event %d: %v, want %+v", i, ev, w)
		}
	}
	if d := evs[1].GetDecision(); d == nil || d.GetReason() != aegisv1.Decision_REASON_NO_ALLOW_BINDING || evs[1].GetPermission() != "aegis:groups:delete" {
		t.Errorf("denial without decision: %v", evs[1])
	}
	if evs[3].GetResourceEtag() != g.GetEtag() || evs[3].GetRequestId() != reqID || evs[3].GetPermission() != "aegis:groups:create" {
		t.Errorf("create event: %v", evs[3])
	}

	// Queries by principal, time and filter.
	byEve := listAudit(t, &aegisv1.ListAuditEventsRequest{Parent: acme, Principal: "orgs/beta/users/eve", StartTime: tsOf(start)})
	if len(byEve) != 1 || byEve[0].GetResource() != group {
		t.Errorf("eve's events: %v", byEve)
	}
	if late := listAudit(t, &aegisv1.ListAuditEventsRequest{Parent: acme, Resource: group, StartTime: tsOf(time.Now().Add(time.Minute))}); len(late) != 0 {
		t.Errorf("events after now: %v", late)
	}
	if early := listAudit(t, &aegisv1.ListAuditEventsRequest{Parent: acme, Resource: group, EndTime: tsOf(start)}); len(early) != 0 {
		t.Errorf("events before the test: %v", early)
	}
	denied := listAudit(t, &aegisv1.ListAuditEventsRequest{Parent: acme, Resource: group,
		Filter: `kind = KIND_ACCESS_DENIED AND status_code = "PERMISSION_DENIED"`})
	if len(denied) != 1 || denied[0].GetPrincipal() != "orgs/acme/users/viewer" {
		t.Errorf("filtered: %v", denied)
	}
	byReq := listAudit(t, &aegisv1.ListAuditEventsRequest{Parent: acme, StartTime: tsOf(start), Filter: "request_id = " + reqID})
	if len(byReq) != 1 {
		t.Errorf("by request id: %v", byReq)
	}
	// The org's own admin reads its audit log too; another org's admin
	// does not see it.
	r := must[*aegisv1.ListAuditEventsResponse](t)(e.audit.ListAuditEvents(e.as(t, "orgadmin"), &aegisv1.ListAuditEventsRequest{Parent: acme, Resource: group}))
	if len(r.GetAuditEvents()) != 4 {
		t.Errorf("orgadmin sees %d events", len(r.GetAuditEvents()))
	}
	r = must[*aegisv1.ListAuditEventsResponse](t)(e.audit.ListAuditEvents(e.as(t, "outsider"), &aegisv1.ListAuditEventsRequest{Parent: beta, Resource: group}))
	if len(r.GetAuditEvents()) != 0 {
		t.Errorf("beta's log has acme's events: %v", r)
	}
}

func TestAuditAuthorizeDenials(t *testing.T) {
	e := tenv
	start := time.Now()
	u := e.freshUser(t)
	res := web + "/vms/" + e.id("vm")
	d := must[*aegisv1.AuthorizeResponse](t)(e.authz.Authorize(e.as(t, "sa"), &aegisv1.AuthorizeRequest{
		Subject: principalSubject(u), Permission: "plasmavmc:vms:delete", Resource: res}))
	if d.GetDecision().GetAllowed() {
		t.Fatal("allowed")
	}
	must[*aegisv1.AuthorizeResponse](t)(e.authz.Authorize(e.as(t, "sa"), &aegisv1.AuthorizeRequest{Permission: "plasmavmc:vms:get", Resource: res}))
	e.flushAudit(t)
	evs := listAudit(t, &aegisv1.ListAuditEventsRequest{Parent: web, Resource: res, StartTime: tsOf(start)})
	if len(evs) != 1 {
		t.Fatalf("events: %v", evs)
	}
	ev := evs[0]
	if ev.GetKind() != aegisv1.AuditEvent_KIND_ACCESS_DENIED || ev.GetPrincipal() != "orgs/acme/projects/web/serviceAccounts/ci" ||
		ev.GetAttemptedPrincipal() != u || ev.GetDecision().GetPrincipal() != u || ev.GetMethod() != aegisv1.AuthzService_Authorize_FullMethodName {
		t.Fatalf("event: %v", ev)
	}
	// Found by the subject's name too.
	if byU := listAudit(t, &aegisv1.ListAuditEventsRequest{Parent: acme, Principal: u}); len(byU) != 1 {
		t.Fatalf("by subject: %v", byU)
	}
}

func TestAuthnAudit(t *testing.T) {
	e := tenv
	start := time.Now()
	user := e.id("ghost")
	e.srv.AuthnAudit(ctxT(t), authn.AuditEvent{Time: time.Now(), Action: authn.ActionLogin, Reason: authn.ReasonBadPassword,
		Login: "acme/" + user, SourceAddr: netip.MustParseAddr("192.0.2.7"), Transport: "http"})
	e.srv.AuthnAudit(ctxT(t), authn.AuditEvent{Time: time.Now(), Action: authn.ActionLogin, Success: true,
		Principal: acme + "/users/" + user, Transport: "http"})
	e.flushAudit(t)
	evs := listAudit(t, &aegisv1.ListAuditEventsRequest{Parent: acme, Principal: acme + "/users/" + user, StartTime: tsOf(start)})
	if len(evs) != 1 {
		t.Fatalf("events: %v", evs)
	}
	ev := evs[0]
	if ev.GetKind() != aegisv1.AuditEvent_KIND_AUTHENTICATION || ev.GetAttemptedPrincipal() != acme+"/users/"+user ||
		ev.GetSourceIp() != "192.0.2.7" || ev.GetStatusCode() != "UNAUTHENTICATED" || !strings.Contains(ev.GetStatusMessage(), "bad_password") {
		t.Fatalf("event: %v", ev)
	}
}

func gatherCounter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum
}

// TestAuditQueueNeverBlocks: with the writer not yet running, a full queue
// drops events (counted) instead of blocking; the writer then writes what
// was queued, and after stop everything is dropped.
func TestAuditQueueNeverBlocks(t *testing.T) {
	e := tenv
	w := newAuditWriter(e.st, testLogger(), 2, time.Second, time.Second)
	reg := prometheus.NewRegistry()
	m, err := newMetrics(reg, w)
	if err != nil {
		t.Fatal(err)
	}
	w.m = m
	res := acme + "/groups/" + e.id("q")
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 5; i++ {
			w.enqueue(&aegisv1.AuditEvent{Kind: aegisv1.AuditEvent_KIND_ADMIN_CHANGE, Resource: res})
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("enqueue blocked")
	}
	if got := gatherCounter(t, reg, "aegis_audit_events_dropped_total"); got != 3 {
		t.Fatalf("dropped %v, want 3", got)
	}
	if got := gatherCounter(t, reg, "aegis_audit_queue_length"); got != 2 {
		t.Fatalf("queue length %v, want 2", got)
	}
	w.start()
	if err := w.flush(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	w.stop()
	w.enqueue(&aegisv1.AuditEvent{Resource: res})
	if got := gatherCounter(t, reg, "aegis_audit_events_written_total"); got != 2 {
		t.Fatalf("written %v, want 2", got)
	}
	if got := gatherCounter(t, reg, "aegis_audit_events_dropped_total"); got != 4 {
		t.Fatalf("dropped %v, want 4", got)
	}
	evs := listAudit(t, &aegisv1.ListAuditEventsRequest{Parent: acme, Resource: res})
	if len(evs) != 2 {
		t.Fatalf("stored %d events", len(evs))
	}
}

// syncBuffer is a bytes.Buffer safe for the handler's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestDecisionsLogged: every decision is in the log at debug level, and no
// token is.
func TestDecisionsLogged(t *testing.T) {
	e := tenv
	var buf syncBuffer
	lg := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := New(Options{Store: e.st, Verifier: e.ver, Hasher: e.srv.hasher, Logger: lg})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, err := s.tokenCaller(e.tokens["viewer"])
	if err != nil {
		t.Fatal(err)
	}
	ctx := withCallInfo(ctxT(t), &callInfo{caller: c})
	if err := s.check(ctx, c, permProjectsGet, web); err != nil {
		t.Fatal(err)
	}
	err = s.check(ctx, c, permProjectsDelete, web)
	wantCode(t, err, codes.PermissionDenied)
	out := buf.String()
	for _, want := range []string{
		`msg=decision source=admin method="" principal=orgs/acme/users/viewer permission=aegis:projects:get resource=orgs/acme/projects/web allowed=true reason=REASON_ALLOWED binding=orgs/acme/projects/web/bindings/viewer`,
		`permission=aegis:projects:delete resource=orgs/acme/projects/web allowed=false reason=REASON_NO_ALLOW_BINDING`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, e.tokens["viewer"]) {
		t.Error("a token was logged")
	}
	if got := gatherCounter(t, e.reg, "aegis_api_decisions_total"); got == 0 {
		t.Error("no decisions counted")
	}
}
