package server

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	aegisv1 "github.com/photoncloud/photoncloud/api/aegis/v1"
	"github.com/photoncloud/photoncloud/internal/aegis/password"
	"github.com/photoncloud/photoncloud/internal/aegis/policy"
	"github.com/photoncloud/photoncloud/internal/aegis/store"
	"github.com/photoncloud/photoncloud/internal/aegis/token"
)

// Options configures a Server. Store, Verifier and Hasher are required.
type Options struct {
	// Store is the replica's store; its evaluator makes every decision.
	Store *store.Store
	// Verifier verifies bearer tokens and Subject.access_token.
	Verifier *token.Verifier
	// Hasher hashes new passwords and checks current ones.
	Hasher *password.Hasher
	// Logger receives the service logs; decisions at debug level.
	// Default: discard.
	Logger *slog.Logger
	// Registry receives the metrics; nil registers none.
	Registry *prometheus.Registry
	// Now is the clock. Default time.Now.
	Now func() time.Time

	// MinPasswordLength is the password policy: passwords shorter than
	// this many bytes are INVALID_ARGUMENT. Default 8.
	MinPasswordLength int
	// AuditQueueSize bounds the audit events waiting to be written; when
	// it is full new events are dropped (and counted) rather than
	// slowing requests down. Default 4096.
	AuditQueueSize int
	// AuditWriteTimeout bounds one audit write. Default 5 seconds.
	AuditWriteTimeout time.Duration
	// AuditDrainTimeout bounds how long Close keeps writing queued events.
	// Default 5 seconds.
	AuditDrainTimeout time.Duration
	// TrustedProxies are the peers whose `x-forwarded-for` metadata is
	// believed (the grpc-gateway sets it). Default loopback only, where
	// the replica's own gateway connects from.
	TrustedProxies []netip.Prefix
	// PublicMethods are further full method names that need no
	// authentication (besides AuthnService and the health service).
	PublicMethods []string
	// FederatedIssuers, when not empty, are the external OIDC issuers a
	// user's federated identities may name (the ones authn trusts); an
	// identity of any other issuer is INVALID_ARGUMENT. Empty: not
	// checked.
	FederatedIssuers []string
}

// EnsureDefaults fills zero fields with their defaults.
func (o *Options) EnsureDefaults() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MinPasswordLength == 0 {
		o.MinPasswordLength = 8
	}
	if o.AuditQueueSize == 0 {
		o.AuditQueueSize = 4096
	}
	if o.AuditWriteTimeout == 0 {
		o.AuditWriteTimeout = 5 * time.Second
	}
	if o.AuditDrainTimeout == 0 {
		o.AuditDrainTimeout = 5 * time.Second
	}
	if o.TrustedProxies == nil {
		o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	}
}

// Validate reports whether the options are usable (after EnsureDefaults).
func (o *Options) Validate() error {
	switch {
	case o.Store == nil:
		return errors.New("server options: Store is required")
	case o.Verifier == nil:
		return errors.New("server options: Verifier is required")
	case o.Hasher == nil:
		return errors.New("server options: Hasher is required")
	case o.MinPasswordLength < 1:
		return fmt.Errorf("server options: MinPasswordLength %d must be positive", o.MinPasswordLength)
	case o.AuditQueueSize < 1:
		return fmt.Errorf("server options: AuditQueueSize %d must be positive", o.AuditQueueSize)
	case o.AuditWriteTimeout < 0 || o.AuditDrainTimeout < 0:
		return errors.New("server options: audit timeouts must not be negative")
	}
	return nil
}

// Server holds the Aegis admin, authz and audit services of one replica.
// All its methods are safe for concurrent use.
type Server struct {
	opts   Options
	st     *store.Store
	eval   *policy.Evaluator
	ver    *token.Verifier
	hasher *password.Hasher
	lg     *slog.Logger
	now    func() time.Time
	m      *metrics
	audit  *auditWriter
	public map[string]bool
	grants *grantCache // the admin checks callers passed, briefly
}

// New returns a Server and starts its audit writer; Close stops it.
func New(opts Options) (*Server, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	s := &Server{
		opts:   opts,
		st:     opts.Store,
		eval:   opts.Store.Evaluator(),
		ver:    opts.Verifier,
		hasher: opts.Hasher,
		lg:     opts.Logger,
		now:    opts.Now,
		public: publicMethods(opts.PublicMethods),
		grants: newGrantCache(),
	}
	s.audit = newAuditWriter(opts.Store, opts.Logger, opts.AuditQueueSize, opts.AuditWriteTimeout, opts.AuditDrainTimeout)
	m, err := newMetrics(opts.Registry, s.audit)
	if err != nil {
		return nil, err
	}
	s.m = m
	s.audit.m = m
	s.audit.start()
	return s, nil
}

// Register registers OrgService, IdentityService, PolicyService,
// AuthzService and AuditService on gs. Install the interceptors on gs too
// (see UnaryInterceptor), or every handler answers UNAUTHENTICATED.
func (s *Server) Register(gs grpc.ServiceRegistrar) {
	aegisv1.RegisterOrgServiceServer(gs, &orgService{s: s})
	aegisv1.RegisterIdentityServiceServer(gs, &identityService{s: s})
	aegisv1.RegisterPolicyServiceServer(gs, &policyService{s: s})
	aegisv1.RegisterAuthzServiceServer(gs, &authzService{s: s})
	aegisv1.RegisterAuditServiceServer(gs, &auditService{s: s})
}

// Close stops the audit writer after it wrote what was queued (for at most
// Options.AuditDrainTimeout). Events reported afterwards are dropped.
func (s *Server) Close() error {
	s.audit.stop()
	return nil
}

// metrics are the Server's Prometheus metrics.
type metrics struct {
	decisions    *prometheus.CounterVec
	auditWritten prometheus.Counter
	auditDropped prometheus.Counter
	auditFailed  prometheus.Counter
}

func newMetrics(reg *prometheus.Registry, aw *auditWriter) (*metrics, error) {
	m := &metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aegis_api_decisions_total",
			Help: "Authorization decisions made by the Aegis API (admin checks and AuthzService), by outcome.",
		}, []string{"source", "allowed"}),
		auditWritten: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "aegis_audit_events_written_total",
			Help: "Audit events written to the store.",
		}),
		auditDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "aegis_audit_events_dropped_total",
			Help: "Audit events dropped because the audit queue was full or the server was closing.",
		}),
		auditFailed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "aegis_audit_events_failed_total",
			Help: "Audit events the store failed to write.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	queue := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "aegis_audit_queue_length",
		Help: "Audit events waiting to be written.",
	}, func() float64 { return float64(aw.queued()) })
	for _, c := range []prometheus.Collector{m.decisions, m.auditWritten, m.auditDropped, m.auditFailed, queue} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register aegis api metrics: %w", err)
		}
	}
	return m, nil
}
