// Package flashdns runs one FlashDNS replica: authoritative DNS with a
// tenant API. It wires the parts together — the Chainfire-backed store and
// its watch-fed zone snapshots (internal/flashdns/store), the DNS data
// plane (dnsserver), the flashdns.v1 API (server) authorized through Aegis
// (client/aegis) — and serves them over DNS, gRPC and HTTP.
package flashdns

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	aegisv1 "github.com/photoncloud/photoncloud/api/aegis/v1"
	flashdnsv1 "github.com/photoncloud/photoncloud/api/flashdns/v1"
	"github.com/photoncloud/photoncloud/client/aegis"
	"github.com/photoncloud/photoncloud/internal/flashdns/dnsserver"
	"github.com/photoncloud/photoncloud/internal/flashdns/server"
	"github.com/photoncloud/photoncloud/internal/flashdns/store"
	"github.com/photoncloud/photoncloud/internal/platform"
)

// maxRecvMsgSize admits ImportZone's largest zone file (16 MiB) with room
// for the rest of the request. gRPC bounds every method alike, so
// limitRequestSize holds the other methods to maxRequestBytes.
const (
	maxRecvMsgSize  = 17 << 20
	maxRequestBytes = 4 << 20
)

// limitRequestSize refuses a request above maxRequestBytes to every method
// but ImportZone, as zones.proto promises, before it is authorized or
// served.
func limitRequestSize(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if m, ok := req.(proto.Message); ok && info.FullMethod != flashdnsv1.ZoneService_ImportZone_FullMethodName {
		if n := proto.Size(m); n > maxRequestBytes {
			return nil, status.Errorf(codes.ResourceExhausted, "request is %d bytes; the limit is %d (4 MiB)", n, maxRequestBytes)
		}
	}
	return handler(ctx, req)
}

// Server is a running FlashDNS replica.
type Server struct {
	cfg      Config
	grpcAddr string
	httpAddr string

	cli       *clientv3.Client
	probe     *platform.StoreProbe // /readyz: Chainfire answers
	st        *store.Store
	dns       *dnsserver.Server
	api       *server.Server
	authz     *aegis.Authorizer
	aegisConn *grpc.ClientConn
	gwConn    *grpc.ClientConn
	group     platform.Group
	closeMu   sync.Mutex
	closed    bool
}

// Start connects to Chainfire (and Aegis), loads every zone, and serves
// DNS and the API. It returns once every listener accepts.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg}
	ok := false
	defer func() {
		if !ok {
			_ = s.Close()
		}
	}()

	serverTLS, err := cfg.TLS.ServerConfig()
	if err != nil {
		return nil, fmt.Errorf("TLS: %w", err)
	}
	// Bind the API first: a port in use should fail before anything is
	// created.
	ls, err := platform.ListenAPI(cfg.ListenGRPCURLs, cfg.ListenHTTPURLs, serverTLS)
	if err != nil {
		return nil, err
	}
	grpcLs, httpLs := ls.GRPC, ls.HTTP
	s.grpcAddr = grpcLs[0].Addr().String()
	if len(httpLs) > 0 {
		s.httpAddr = httpLs[0].Addr().String()
	}

	if err := s.open(ctx); err != nil {
		ls.Close()
		return nil, err
	}
	if err := s.serve(ctx, grpcLs, httpLs, serverTLS); err != nil {
		ls.Close()
		return nil, err
	}
	ok = true
	cfg.Logger.Info("flashdns serving", "dns", strings.Join(s.dns.UDPAddrs(), ","), "grpc", s.grpcAddr, "http", s.httpAddr,
		"zones", s.st.Table().Len(), "chainfire", strings.Join(cfg.ChainfireEndpoints, ","), "auth", cfg.Auth)
	if serverTLS == nil {
		cfg.Logger.Warn("serving the API without TLS; set --cert-file and --key-file to encrypt")
	}
	if cfg.Auth == AuthNone {
		cfg.Logger.Warn("authorization is off: every API caller may change every zone")
	}
	return s, nil
}

// open connects to Chainfire and Aegis, loads the zones and starts DNS.
func (s *Server) open(ctx context.Context) error {
	cfg := &s.cfg
	// Large imports are written in transactions of up to MaxTxnBytes.
	cli, err := platform.DialStore(ctx, platform.StoreConfig{Endpoints: cfg.ChainfireEndpoints, TLS: cfg.ChainfireTLS, MaxCallSendMsgSize: 2 << 20})
	if err != nil {
		return err
	}
	s.cli = cli
	s.probe = platform.NewStoreProbe(cli, "/flashdns/readyz", 2*time.Second)
	openCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	st, err := store.Open(openCtx, store.Options{
		Client: cli, Logger: cfg.Logger.With("component", "store"), Registry: s.registerer(),
		DefaultNameservers: cfg.DefaultNameservers,
	})
	if err != nil {
		return fmt.Errorf("open the store in chainfire %s: %w", strings.Join(cfg.ChainfireEndpoints, ","), err)
	}
	s.st = st

	d, err := dnsserver.Start(ctx, dnsserver.Config{
		Addrs: cfg.DNSAddrs, SocketsPerAddr: cfg.DNSSockets, Zones: st.Table,
		TransferACL: cfg.TransferACL, TSIG: cfg.TSIGKeys, NotifyTargets: cfg.NotifyTargets,
		ChaosVersion: cfg.ChaosVersion, ChaosID: cfg.ChaosID, LogQueries: cfg.LogQueries,
		Logger: cfg.Logger.With("component", "dns"), Registry: cfg.Registry,
	})
	if err != nil {
		return fmt.Errorf("dns: %w", err)
	}
	s.dns = d
	st.OnSwap(d.ZoneChanged)

	if cfg.Auth == AuthAegis {
		if err := s.openAegis(ctx); err != nil {
			return err
		}
	}
	var authz server.Authorizer
	if s.authz != nil {
		authz = s.authz
	}
	api, err := server.New(server.Config{Store: st, Authorizer: authz,
		Logger: cfg.Logger.With("component", "api"), Registry: s.registerer()})
	if err != nil {
		return err
	}
	s.api = api
	return nil
}

// openAegis connects to Aegis as FlashDNS's service account and builds
// the authorizer of API calls.
func (s *Server) openAegis(ctx context.Context) error {
	cfg := &s.cfg
	secure := strings.HasPrefix(cfg.AegisIssuer, "https://")
	var tlsCfg *tls.Config
	if secure || cfg.AegisTLS.Enabled() || cfg.AegisTLS.TrustedCAFile != "" {
		var err error
		if tlsCfg, err = cfg.AegisTLS.ClientConfig(""); err != nil {
			return fmt.Errorf("aegis TLS: %w", err)
		}
	}
	httpClient := &http.Client{Timeout: 10 * time.Second}
	if tlsCfg != nil {
		httpClient.Transport = &http.Transport{TLSClientConfig: tlsCfg, ForceAttemptHTTP2: true}
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if tlsCfg != nil {
		opts[0] = grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg))
	}
	if cfg.AegisClientID != "" {
		src, err := aegis.ServiceAccount{
			TokenURL: strings.TrimSuffix(cfg.AegisIssuer, "/") + "/oauth2/token",
			ClientID: cfg.AegisClientID, ClientSecret: cfg.AegisClientSecret, HTTPClient: httpClient,
		}.TokenSource(context.WithoutCancel(ctx))
		if err != nil {
			return err
		}
		opts = append(opts, grpc.WithPerRPCCredentials(aegis.TokenCredentials(src, tlsCfg != nil)))
	}
	conn, err := grpc.NewClient(cfg.AegisEndpoint, opts...)
	if err != nil {
		return fmt.Errorf("aegis connection: %w", err)
	}
	s.aegisConn = conn
	az, err := aegis.New(aegis.Config{
		Issuer:        cfg.AegisIssuer,
		JWKSURL:       strings.TrimSuffix(cfg.AegisIssuer, "/") + "/.well-known/jwks.json",
		HTTPClient:    httpClient,
		Authz:         aegisv1.NewAuthzServiceClient(conn),
		Rules:         server.Rules(s.st),
		DenialCode:    server.DenialCode,
		PublicMethods: []string{"/grpc.health.v1.Health/"},
		Logger:        cfg.Logger.With("component", "aegis"),
		Registry:      s.registerer(),
	})
	if err != nil {
		return fmt.Errorf("aegis authorizer: %w", err)
	}
	s.authz = az
	return nil
}

// serve starts the gRPC and HTTP servers.
func (s *Server) serve(ctx context.Context, grpcLs, httpLs []net.Listener, serverTLS *tls.Config) error {
	cfg := &s.cfg
	opts := platform.GRPCOptions{TLS: serverTLS, Registry: cfg.Registry, Logger: cfg.Logger, MaxRecvMsgSize: maxRecvMsgSize,
		UnaryInterceptors: []grpc.UnaryServerInterceptor{limitRequestSize}}
	if s.authz != nil {
		opts.UnaryInterceptors = append(opts.UnaryInterceptors, s.authz.UnaryServerInterceptor())
		opts.StreamInterceptors = []grpc.StreamServerInterceptor{s.authz.StreamServerInterceptor()}
	}
	gs, health := platform.NewGRPCServer(opts)
	health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	s.api.Register(gs)
	for _, l := range grpcLs {
		s.group.ServeGRPC(gs, l)
	}
	if len(httpLs) == 0 {
		return nil
	}
	mux, err := s.httpHandler(ctx, serverTLS)
	if err != nil {
		return err
	}
	for _, l := range httpLs {
		s.group.ServeHTTP(&http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
			ErrorLog: slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug)}, l)
	}
	return nil
}

// httpHandler serves the JSON gateway under /v1/ (which calls this
// replica's own gRPC listener, so every call passes the same
// authorization) and the platform's health and metrics routes.
func (s *Server) httpHandler(ctx context.Context, serverTLS *tls.Config) (http.Handler, error) {
	conn, err := platform.DialSelf(s.grpcAddr, serverTLS,
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(maxRecvMsgSize), grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	s.gwConn = conn
	gw := runtime.NewServeMux(
		// Owner names of RFC 2317 classless delegations contain "/",
		// sent as %2F inside one path segment.
		runtime.WithUnescapingMode(runtime.UnescapingModeAllExceptSlash),
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.JSONPb{
			MarshalOptions:   protojson.MarshalOptions{EmitUnpopulated: false},
			UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
		}))
	for _, register := range []func(context.Context, *runtime.ServeMux, *grpc.ClientConn) error{
		flashdnsv1.RegisterZoneServiceHandler, flashdnsv1.RegisterRecordSetServiceHandler,
	} {
		if err := register(context.WithoutCancel(ctx), gw, conn); err != nil {
			return nil, fmt.Errorf("register gateway: %w", err)
		}
	}
	// Ready means the API can change zones: Chainfire answers. DNS keeps
	// answering from memory either way.
	mux := platform.NewHTTPMux(s.cfg.Registry, s.probe.Ready)
	mux.Handle("/v1/", gw)
	return mux, nil
}

// registerer is cfg.Registry as the interface the parts take: nil stays
// nil (no metrics) instead of becoming a non-nil interface holding a nil
// registry.
func (s *Server) registerer() prometheus.Registerer {
	if s.cfg.Registry == nil {
		return nil
	}
	return s.cfg.Registry
}

// GRPCAddr is the address of the first gRPC listener.
func (s *Server) GRPCAddr() string { return s.grpcAddr }

// HTTPAddr is the address of the first HTTP listener, "" if none.
func (s *Server) HTTPAddr() string { return s.httpAddr }

// DNSAddr is the address of the first DNS listener (UDP and TCP share the
// port).
func (s *Server) DNSAddr() string { return s.dns.UDPAddrs()[0] }

// Store is the replica's store, for tests and the embedding photon dev.
func (s *Server) Store() *store.Store { return s.st }

// Err reports a server that stopped on its own.
func (s *Server) Err() <-chan error { return s.group.Err() }

// Close stops serving, waits for in-flight calls (up to 5 s) and releases
// everything. It is safe to call more than once.
func (s *Server) Close() error {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.group.Stop(ctx)
	for _, c := range []*grpc.ClientConn{s.gwConn, s.aegisConn} {
		if c != nil {
			_ = c.Close()
		}
	}
	if s.authz != nil {
		_ = s.authz.Close()
	}
	if s.api != nil {
		s.api.Close()
	}
	if s.dns != nil {
		_ = s.dns.Close()
	}
	if s.st != nil {
		_ = s.st.Close()
	}
	if s.cli != nil {
		_ = s.cli.Close()
	}
	return err
}
