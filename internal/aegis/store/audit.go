package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"

	aegisv1 "github.com/photoncloud/photoncloud/api/aegis/v1"
)

// Audit events live under /aegis/audit/<event id>, outside the watched
// prefix (every replica writes them, none needs to mirror them), with
// leases shared per hour of event time that end AuditRetention after it.
// An event id is 16 hex digits of the event time in nanoseconds and 8
// random hex digits, so keys sort by time; the event's name is
// {container}/auditEvents/{id}. Queries Range Chainfire directly (they
// are not on the decision path) and filter what they read.

const (
	auditScanBatch  = 500
	auditScanBudget = 20000 // events read per page at most; then a partial page
)

func auditTimeKey(t time.Time) string {
	ns := t.UnixNano()
	if ns < 0 || t.IsZero() {
		ns = 0
	}
	return fmt.Sprintf("%016x", ns)
}

// auditContainer returns the closest container of a resource name:
// orgs/{o}/projects/{p}, orgs/{o} or system.
func auditContainer(resource string) string {
	seg := strings.SplitN(resource, "/", 5)
	if len(seg) < 2 || seg[0] != "orgs" || checkScopeID("org", seg[1]) != nil {
		return "system"
	}
	if len(seg) >= 4 && seg[2] == "projects" && checkScopeID("project", seg[3]) == nil {
		return "orgs/" + seg[1] + "/projects/" + seg[3]
	}
	return "orgs/" + seg[1]
}

// AppendAudit stores an audit event and returns it with its name (and
// event_time, if it was unset). The container in the name is derived from
// the event's resource. The event is kept for Options.AuditRetention.
func (s *Store) AppendAudit(ctx context.Context, ev *aegisv1.AuditEvent) (*aegisv1.AuditEvent, error) {
	out, err := s.AppendAudits(ctx, []*aegisv1.AuditEvent{ev})
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// AppendAudits stores several audit events in one transaction (at most
// Options.MaxTxnOps of them), as AppendAudit does one: a busy replica
// writes its audit trail in batches rather than one round trip per event.
func (s *Store) AppendAudits(ctx context.Context, evs []*aegisv1.AuditEvent) ([]*aegisv1.AuditEvent, error) {
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	if len(evs) > s.opts.MaxTxnOps {
		return nil, invalidf("%d audit events in one batch; at most %d", len(evs), s.opts.MaxTxnOps)
	}
	out := make([]*aegisv1.AuditEvent, len(evs))
	keys := make([]string, len(evs))
	vals := make([]string, len(evs))
	var last time.Time
	for i, ev := range evs {
		e := proto.Clone(ev).(*aegisv1.AuditEvent)
		if e.EventTime == nil {
			e.EventTime = s.nowpb()
		}
		t := e.EventTime.AsTime()
		if t.After(last) {
			last = t
		}
		var rnd [4]byte
		_, _ = rand.Read(rnd[:])
		id := auditTimeKey(t) + hex.EncodeToString(rnd[:])
		e.Name = auditContainer(e.GetResource()) + "/auditEvents/" + id
		b, err := marshal(e)
		if err != nil {
			return nil, err
		}
		out[i], keys[i], vals[i] = e, auditPrefix+id, string(b)
	}
	// One lease for the batch, bucketed by the hour, ending after the
	// newest event's retention: events may outlive theirs by at most the
	// batch's spread plus an hour.
	err := s.withLease(ctx, last.Add(s.opts.AuditRetention), time.Hour, func(lease clientv3.LeaseID) error {
		ops := make([]clientv3.Op, len(keys))
		for i := range keys {
			ops[i] = clientv3.OpPut(keys[i], vals[i], clientv3.WithLease(lease))
		}
		_, err := s.cli.Txn(ctx).Then(ops...).Commit()
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("append audit events: %w", err)
	}
	return out, nil
}

// AuditQuery selects audit events.
type AuditQuery struct {
	// Parent is the container: system, orgs/{org} or
	// orgs/{org}/projects/{project}; events of the container and
	// everything below it match.
	Parent string
	// StartTime and EndTime bound event_time to [StartTime, EndTime);
	// zero means unbounded.
	StartTime, EndTime time.Time
	// Principal, if set, matches principal or attempted_principal.
	Principal string
	// Resource, if set, matches that resource and everything below it.
	Resource string
	// OldestFirst lists in time order; the default is newest first.
	OldestFirst bool
}

func (q *AuditQuery) where() string {
	return fmt.Sprintf("audit|%s|%s|%s|%s|%s|%v", q.Parent, q.Principal, q.Resource,
		auditTimeKey(q.StartTime), auditTimeKey(q.EndTime), q.OldestFirst)
}

func (q *AuditQuery) match(ev *aegisv1.AuditEvent) bool {
	if q.Parent != "system" && !strings.HasPrefix(ev.GetName(), q.Parent+"/") {
		return false
	}
	if q.Principal != "" && ev.GetPrincipal() != q.Principal && ev.GetAttemptedPrincipal() != q.Principal {
		return false
	}
	if q.Resource != "" && ev.GetResource() != q.Resource && !strings.HasPrefix(ev.GetResource(), q.Resource+"/") {
		return false
	}
	return true
}

// ListAuditEvents lists the events q selects, newest first unless
// q.OldestFirst. A page may hold fewer than the page size (even none) with
// a next page token when the scan reached its per-page budget.
func (s *Store) ListAuditEvents(ctx context.Context, q AuditQuery, opts ListOptions[*aegisv1.AuditEvent]) ([]*aegisv1.AuditEvent, string, error) {
	if _, err := parseContainer(q.Parent, true); err != nil {
		return nil, "", err
	}
	if err := s.checkOpen(); err != nil {
		return nil, "", err
	}
	size, err := opts.size()
	if err != nil {
		return nil, "", err
	}
	now := s.now()
	where := q.where()
	after, err := decodeToken(opts.PageToken, where, opts.Filter, now)
	if err != nil {
		return nil, "", err
	}
	lo, hi := auditPrefix, prefixEnd(auditPrefix)
	if !q.StartTime.IsZero() {
		lo = auditPrefix + auditTimeKey(q.StartTime)
	}
	if !q.EndTime.IsZero() {
		hi = auditPrefix + auditTimeKey(q.EndTime)
	}
	order := clientv3.SortDescend
	if q.OldestFirst {
		order = clientv3.SortAscend
	}
	if after != "" {
		if q.OldestFirst {
			lo = max(lo, auditPrefix+after+"\x00")
		} else {
			hi = min(hi, auditPrefix+after)
		}
	}
	token := func(key string) string { return encodeToken(where, key[len(auditPrefix):], opts.Filter, now) }
	var out []*aegisv1.AuditEvent
	lastKey := ""
	scanned := 0
	for lo < hi {
		resp, err := s.cli.Get(ctx, lo, clientv3.WithRange(hi), clientv3.WithLimit(auditScanBatch),
			clientv3.WithSort(clientv3.SortByKey, order))
		if err != nil {
			return nil, "", fmt.Errorf("list audit events: %w", err)
		}
		for _, kv := range resp.Kvs {
			ev := &aegisv1.AuditEvent{}
			if err := proto.Unmarshal(kv.Value, ev); err == nil && q.match(ev) && (opts.Match == nil || opts.Match(ev)) {
				if len(out) == size {
					return out, token(lastKey), nil
				}
				out = append(out, ev)
				lastKey = string(kv.Key)
			}
			if scanned++; scanned >= auditScanBudget {
				return out, token(string(kv.Key)), nil
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			break
		}
		last := string(resp.Kvs[len(resp.Kvs)-1].Key)
		if q.OldestFirst {
			lo = last + "\x00"
		} else {
			hi = last
		}
	}
	return out, "", nil
}
