package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	flashdnsv1 "github.com/photoncloud/photoncloud/api/flashdns/v1"
	"github.com/photoncloud/photoncloud/client/aegis"
	"github.com/photoncloud/photoncloud/internal/flashdns/store"
)

// Authorizer checks one more permission for the caller of the current
// call; *aegis.Authorizer is one.
type Authorizer interface {
	Authorize(ctx context.Context, c aegis.Check) error
}

// Config configures a Server. Store is required.
type Config struct {
	// Store is the replica's store.
	Store *store.Store
	// Authorizer makes the per-method checks after the interceptor's
	// visibility check (see the package comment). nil: no checks, for a
	// lab with authorization switched off.
	Authorizer Authorizer
	// Logger receives internal errors. Default: discard.
	Logger *slog.Logger
	// Registry, if set, receives the metrics (flashdns_api_*).
	Registry prometheus.Registerer
}

// Server implements flashdns.v1's ZoneService and RecordSetService.
type Server struct {
	st    *store.Store
	authz Authorizer
	lg    *slog.Logger

	changes prometheus.Counter
	imports *prometheus.CounterVec
	reg     prometheus.Registerer

	zones   zoneService
	records recordService
}

// New returns a Server for cfg.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("flashdns server: Store is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{st: cfg.Store, authz: cfg.Authorizer, lg: cfg.Logger, reg: cfg.Registry,
		changes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flashdns_api_record_set_changes_total",
			Help: "Record-set changes applied through ChangeRecordSets (each change of a batch counts).",
		}),
		imports: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flashdns_api_imports_total",
			Help: "Zone imports, by result (ok, failed).",
		}, []string{"result"}),
	}
	if cfg.Registry != nil {
		if err := cfg.Registry.Register(s.changes); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
		if err := cfg.Registry.Register(s.imports); err != nil {
			cfg.Registry.Unregister(s.changes)
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	s.zones.s, s.records.s = s, s
	return s, nil
}

// Register registers both services on g.
func (s *Server) Register(g grpc.ServiceRegistrar) {
	flashdnsv1.RegisterZoneServiceServer(g, &s.zones)
	flashdnsv1.RegisterRecordSetServiceServer(g, &s.records)
}

// Close unregisters the metrics.
func (s *Server) Close() {
	if s.reg != nil {
		s.reg.Unregister(s.changes)
		s.reg.Unregister(s.imports)
	}
}

// check asks the Authorizer for perm on a zone-scoped call's zone, after
// the interceptor allowed the caller to see it.
func (s *Server) check(ctx context.Context, perm, zoneName string) error {
	if s.authz == nil {
		return nil
	}
	parent, id, err := store.ParseZoneName(zoneName)
	if err != nil {
		return s.apiErr(err)
	}
	res := store.ZoneName(parent, id)
	c := aegis.Check{Permission: perm, Resource: res}
	if labels, ok := s.st.ZoneLabels(res); ok && len(labels) > 0 {
		c.Labels = labels
	}
	return s.authz.Authorize(ctx, c)
}

// apiErr maps an error of the store to the status the client gets. Store
// errors keep their message; anything unexpected is INTERNAL with the
// details only in the log, never UNKNOWN.
func (s *Server) apiErr(err error) error {
	if err == nil {
		return nil
	}
	if se, ok := err.(interface{ GRPCStatus() *status.Status }); ok {
		return se.GRPCStatus().Err()
	}
	switch code := store.GRPCCode(err); code {
	case codes.Internal:
		s.lg.Error("internal error", "err", err)
		return status.Error(codes.Internal, "internal error")
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted:
		if errors.Is(err, store.ErrResourceExhausted) {
			return status.Error(code, err.Error())
		}
		s.lg.Warn("store unavailable", "err", err)
		return status.Error(code, "the store is unavailable; retry")
	case codes.Canceled:
		return status.Error(code, "request cancelled")
	default:
		return status.Error(code, err.Error())
	}
}

type zoneService struct {
	flashdnsv1.UnimplementedZoneServiceServer
	s *Server
}

type recordService struct {
	flashdnsv1.UnimplementedRecordSetServiceServer
	s *Server
}

var empty = &emptypb.Empty{}
