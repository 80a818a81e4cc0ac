package server

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	aegisv1 "github.com/photoncloud/photoncloud/api/aegis/v1"
	"github.com/photoncloud/photoncloud/internal/aegis/authn"
	"github.com/photoncloud/photoncloud/internal/aegis/store"
)

// auditWriter appends audit events to the store from one goroutine. The
// request path only does a non-blocking send on a bounded channel: a slow
// or unavailable Chainfire must not slow down (or, worse, block) admin
// calls and decisions, so when the queue is full the event is dropped and
// counted instead.
type auditWriter struct {
	st           *store.Store
	lg           *slog.Logger
	m            *metrics
	ch           chan *aegisv1.AuditEvent
	writeTimeout time.Duration
	drainTimeout time.Duration

	// pending counts events accepted and not yet written or given up on,
	// for flush (tests) and the queue gauge.
	pending atomic.Int64

	mu           sync.Mutex // guards closed against enqueue racing stop
	closed       bool
	lastDropWarn time.Time // guarded by mu
	ctx          context.Context
	cancel       context.CancelFunc
	done         chan struct{}
	stopped      sync.Once
}

// dropWarnEvery spaces out the warnings about a full audit queue.
const dropWarnEvery = 10 * time.Second

func newAuditWriter(st *store.Store, lg *slog.Logger, size int, writeTimeout, drainTimeout time.Duration) *auditWriter {
	ctx, cancel := context.WithCancel(context.Background())
	return &auditWriter{
		st: st, lg: lg, ch: make(chan *aegisv1.AuditEvent, size),
		writeTimeout: writeTimeout, drainTimeout: drainTimeout,
		ctx: ctx, cancel: cancel, done: make(chan struct{}),
	}
}

func (w *auditWriter) start() { go w.run() }

func (w *auditWriter) queued() int64 { return w.pending.Load() }

// enqueue hands ev to the writer without ever blocking.
func (w *auditWriter) enqueue(ev *aegisv1.AuditEvent) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		w.m.auditDropped.Inc()
		return
	}
	w.pending.Add(1) // before the send, so the writer never sees it negative
	select {
	case w.ch <- ev:
	default:
		w.pending.Add(-1)
		w.m.auditDropped.Inc()
		// One warning per interval: an overload must not also flood the log.
		if now := time.Now(); now.Sub(w.lastDropWarn) >= dropWarnEvery {
			w.lastDropWarn = now
			w.lg.Warn("audit queue full, events dropped (see aegis_audit_events_dropped_total)", "method", ev.GetMethod(), "resource", ev.GetResource())
		}
	}
}

// maxAuditBatch bounds the events written in one transaction (Chainfire's
// default --max-txn-ops is 128).
const maxAuditBatch = 100

func (w *auditWriter) run() {
	defer close(w.done)
	batch := make([]*aegisv1.AuditEvent, 0, maxAuditBatch)
	for {
		select {
		case ev := <-w.ch:
			// Whatever queued up during the last write goes in this one:
			// one round trip per batch, not per event, so a burst of
			// denials is recorded rather than dropped.
			w.writeBatch(w.ctx, w.gather(append(batch[:0], ev)))
		case <-w.ctx.Done():
			w.drain(batch)
			return
		}
	}
}

// gather adds to batch what is queued, up to maxAuditBatch events.
func (w *auditWriter) gather(batch []*aegisv1.AuditEvent) []*aegisv1.AuditEvent {
	for len(batch) < maxAuditBatch {
		select {
		case ev := <-w.ch:
			batch = append(batch, ev)
		default:
			return batch
		}
	}
	return batch
}

func (w *auditWriter) writeBatch(ctx context.Context, evs []*aegisv1.AuditEvent) {
	defer w.pending.Add(-int64(len(evs)))
	wctx, cancel := context.WithTimeout(ctx, w.writeTimeout)
	defer cancel()
	if _, err := w.st.AppendAudits(wctx, evs); err != nil {
		w.m.auditFailed.Add(float64(len(evs)))
		w.lg.Error("audit events not written", "events", len(evs), "first-method", evs[0].GetMethod(),
			"first-principal", evs[0].GetPrincipal(), "err", err)
		return
	}
	w.m.auditWritten.Add(float64(len(evs)))
}

// drain writes what is still queued at Close, in batches, within
// drainTimeout; the rest is dropped.
func (w *auditWriter) drain(batch []*aegisv1.AuditEvent) {
	ctx, cancel := context.WithTimeout(context.Background(), w.drainTimeout)
	defer cancel()
	for {
		batch = w.gather(batch[:0])
		switch {
		case len(batch) == 0:
			return
		case ctx.Err() != nil:
			w.m.auditDropped.Add(float64(len(batch)))
			w.pending.Add(-int64(len(batch)))
		default:
			w.writeBatch(ctx, batch)
		}
	}
}

// stop closes the queue to new events and waits for the writer to drain.
func (w *auditWriter) stop() {
	w.stopped.Do(func() {
		w.mu.Lock()
		w.closed = true
		w.mu.Unlock()
		w.cancel()
		<-w.done
	})
}

// flush waits until every event enqueued so far was handled, or ctx ends.
func (w *auditWriter) flush(ctx context.Context) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for w.pending.Load() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// newEvent starts an audit event for the current call: who (from the
// caller, if any), how (method, token, source, user agent, request id).
func (s *Server) newEvent(ctx context.Context, c *Caller, kind aegisv1.AuditEvent_Kind, perm, resource string) *aegisv1.AuditEvent {
	ev := &aegisv1.AuditEvent{
		EventTime:  timestamppb.New(s.now()),
		Kind:       kind,
		Permission: perm,
		Resource:   resource,
	}
	ev.Method, _ = grpc.Method(ctx)
	ri := requestInfoFrom(ctx)
	ev.SourceIp, ev.UserAgent, ev.RequestId = ri.sourceIP, ri.userAgent, ri.requestID
	if c != nil {
		ev.Principal = c.Principal
		ev.TokenId = c.TokenID()
	}
	return ev
}

// auditDenied records a denied check.
func (s *Server) auditDenied(ctx context.Context, c *Caller, perm, resource string, d *aegisv1.Decision, code codes.Code, msg string) {
	ev := s.newEvent(ctx, c, aegisv1.AuditEvent_KIND_ACCESS_DENIED, perm, resource)
	ev.Decision = d
	ev.StatusCode = codeName(code)
	ev.StatusMessage = msg
	s.audit.enqueue(ev)
}

// auditChange records an admin change that passed authorization, with its
// outcome: etag is the resource's etag after the change ("" after a
// delete or a failure).
func (s *Server) auditChange(ctx context.Context, c *Caller, perm, resource string, mask *fieldmaskpb.FieldMask, etag string, err error) {
	ev := s.newEvent(ctx, c, aegisv1.AuditEvent_KIND_ADMIN_CHANGE, perm, resource)
	ev.UpdateMask = mask
	ev.ResourceEtag = etag
	st := toStatus(s.lg, err)
	ev.StatusCode = codeName(st.Code())
	if err != nil {
		ev.StatusMessage = st.Message()
	}
	s.audit.enqueue(ev)
}

// AuthnAudit records the authentication events of the authn service
// (authn.Config.Audit): failed attempts, revocations and logouts. Successful
// token grants are not audit events (they are in the authn log): they are
// the bulk of the traffic and change nothing.
func (s *Server) AuthnAudit(ctx context.Context, e authn.AuditEvent) {
	if e.Success && e.Action != authn.ActionLogout && e.Action != authn.ActionRevokeTokens {
		return
	}
	ev := &aegisv1.AuditEvent{
		EventTime: timestamppb.New(e.Time),
		Kind:      aegisv1.AuditEvent_KIND_AUTHENTICATION,
		Principal: e.Principal,
		TokenId:   e.TokenID,
		// The event belongs to the principal's org when it is known, so
		// that the org's admins see attacks on their accounts.
		Resource: e.Principal,
	}
	if e.Time.IsZero() {
		ev.EventTime = timestamppb.New(s.now())
	}
	ev.Method, _ = grpc.Method(ctx)
	if ev.Method == "" {
		ev.Method = e.Transport + ":" + e.Action
	}
	if e.Principal == "" {
		ev.AttemptedPrincipal = loginPrincipal(e.Login)
		ev.Resource = ev.AttemptedPrincipal
	}
	if e.SourceAddr.IsValid() {
		ev.SourceIp = e.SourceAddr.String()
	}
	ri := requestInfoFrom(ctx)
	ev.UserAgent, ev.RequestId = ri.userAgent, ri.requestID
	if e.Success {
		ev.StatusCode = codeName(codes.OK)
		ev.StatusMessage = e.Action
	} else {
		ev.StatusCode = codeName(codes.Unauthenticated)
		ev.StatusMessage = e.Action + ": " + e.Reason
	}
	s.audit.enqueue(ev)
}

// loginPrincipal turns the login of a failed password attempt
// ("org/username") into the user name it tried; other logins (client ids,
// external identities) are kept as they are.
func loginPrincipal(login string) string {
	org, user, ok := strings.Cut(login, "/")
	if ok && org != "" && user != "" && !strings.Contains(user, "/") && !strings.Contains(org, ":") {
		return "orgs/" + org + "/users/" + user
	}
	return login
}

// codeName renders a code as the API's status_code: the canonical
// upper-case name, e.g. PERMISSION_DENIED.
func codeName(c codes.Code) string {
	switch c {
	case codes.OK:
		return "OK"
	case codes.Canceled:
		return "CANCELLED"
	case codes.InvalidArgument:
		return "INVALID_ARGUMENT"
	case codes.DeadlineExceeded:
		return "DEADLINE_EXCEEDED"
	case codes.NotFound:
		return "NOT_FOUND"
	case codes.AlreadyExists:
		return "ALREADY_EXISTS"
	case codes.PermissionDenied:
		return "PERMISSION_DENIED"
	case codes.ResourceExhausted:
		return "RESOURCE_EXHAUSTED"
	case codes.FailedPrecondition:
		return "FAILED_PRECONDITION"
	case codes.Aborted:
		return "ABORTED"
	case codes.OutOfRange:
		return "OUT_OF_RANGE"
	case codes.Unimplemented:
		return "UNIMPLEMENTED"
	case codes.Internal:
		return "INTERNAL"
	case codes.Unavailable:
		return "UNAVAILABLE"
	case codes.DataLoss:
		return "DATA_LOSS"
	case codes.Unauthenticated:
		return "UNAUTHENTICATED"
	}
	return "UNKNOWN"
}
