package platform

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"math"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
)

// GRPCOptions configures NewGRPCServer. The zero value gives a plaintext
// server without metrics that logs to slog.Default.
type GRPCOptions struct {
	// TLS, when set, serves TLS through gRPC's own credentials so handlers
	// can read the peer's client certificate.
	TLS *tls.Config
	// MaxRecvMsgSize bounds one received message; 0 keeps gRPC's 4 MiB.
	// Servers with a request limit add some slack for framing, as etcd does.
	MaxRecvMsgSize int
	// Registry receives grpc_server_handled_total and
	// grpc_server_handling_seconds; nil disables metrics.
	Registry *prometheus.Registry
	// Logger receives warnings about failed calls that returned an internal error.
	Logger *slog.Logger
	// UnaryInterceptors and StreamInterceptors run after the metrics interceptor.
	UnaryInterceptors  []grpc.UnaryServerInterceptor
	StreamInterceptors []grpc.StreamServerInterceptor
	// ServerOptions are added last, e.g. flow-control windows for a server
	// of long bulk streams.
	ServerOptions []grpc.ServerOption
}

// NewGRPCServer returns a gRPC server with the standard health service
// registered, metrics and keepalive policy installed. The health server
// starts SERVING for the empty service name; callers flip it with
// SetServingStatus and call Shutdown on it before stopping the server.
func NewGRPCServer(o GRPCOptions) (*grpc.Server, *health.Server) {
	lg := o.Logger
	if lg == nil {
		lg = slog.Default()
	}
	m := newGRPCMetrics(o.Registry, lg)
	unary := append([]grpc.UnaryServerInterceptor{m.unary}, o.UnaryInterceptors...)
	stream := append([]grpc.StreamServerInterceptor{m.stream}, o.StreamInterceptors...)
	opts := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(unary...),
		grpc.ChainStreamInterceptor(stream...),
		// Watch-heavy clients open many streams on one connection, so do
		// not cap them (etcd does the same).
		grpc.MaxConcurrentStreams(math.MaxUint32),
		grpc.MaxSendMsgSize(math.MaxInt32),
		// Permissive like etcd: clients may ping every 5s, even when idle,
		// without being disconnected for it.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 2 * time.Hour, Timeout: 20 * time.Second}),
	}
	if o.MaxRecvMsgSize > 0 {
		opts = append(opts, grpc.MaxRecvMsgSize(o.MaxRecvMsgSize))
	}
	if o.TLS != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(o.TLS)))
	}
	opts = append(opts, o.ServerOptions...)
	s := grpc.NewServer(opts...)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(s, hs)
	return s, hs
}

type grpcMetrics struct {
	lg      *slog.Logger
	handled *prometheus.CounterVec
	seconds *prometheus.HistogramVec
}

func newGRPCMetrics(reg *prometheus.Registry, lg *slog.Logger) *grpcMetrics {
	m := &grpcMetrics{lg: lg}
	if reg == nil {
		return m
	}
	m.handled = register(reg, lg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "grpc_server_handled_total",
		Help: "Completed gRPC calls by service, method and status code.",
	}, []string{"grpc_type", "grpc_service", "grpc_method", "grpc_code"}))
	m.seconds = register(reg, lg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "grpc_server_handling_seconds",
		Help:    "Time from receiving a gRPC call to its completion.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16), // 0.5ms .. ~16s
	}, []string{"grpc_type", "grpc_service", "grpc_method"}))
	return m
}

// register adds c to reg, reusing an identical collector already there so
// that two servers in one process (photon dev) share the series.
func register[C prometheus.Collector](reg *prometheus.Registry, lg *slog.Logger, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		lg.Warn("metrics not registered", "err", err)
		var zero C
		return zero
	}
	return c
}

func (m *grpcMetrics) observe(typ, fullMethod string, start time.Time, err error) {
	code := status.Code(err)
	switch code {
	case codes.Unknown, codes.Internal, codes.DataLoss:
		m.lg.Warn("grpc call failed", "method", fullMethod, "code", code.String(), "err", err)
	}
	if m.handled == nil || m.seconds == nil {
		return
	}
	service, method := splitMethod(fullMethod)
	m.handled.WithLabelValues(typ, service, method, code.String()).Inc()
	m.seconds.WithLabelValues(typ, service, method).Observe(time.Since(start).Seconds())
}

func (m *grpcMetrics) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := handler(ctx, req)
	m.observe("unary", info.FullMethod, start, err)
	return resp, err
}

func (m *grpcMetrics) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	start := time.Now()
	err := handler(srv, ss)
	typ := "bidi_stream"
	switch {
	case info.IsClientStream && !info.IsServerStream:
		typ = "client_stream"
	case !info.IsClientStream && info.IsServerStream:
		typ = "server_stream"
	}
	m.observe(typ, info.FullMethod, start, err)
	return err
}

// splitMethod turns "/etcdserverpb.KV/Range" into ("etcdserverpb.KV", "Range").
func splitMethod(full string) (service, method string) {
	full = strings.TrimPrefix(full, "/")
	if i := strings.LastIndex(full, "/"); i >= 0 {
		return full[:i], full[i+1:]
	}
	return "unknown", full
}
