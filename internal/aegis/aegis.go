// Package aegis runs one Aegis replica: identity, tokens and authorization
// for the platform. It wires the parts together — the Chainfire-backed
// store and its watch-fed index (internal/aegis/store), signing keys and
// tokens (token), authentication and OAuth2 (authn), the admin, authz and
// audit services (server) — serves them over gRPC and HTTP, and creates
// the system org and its admin on the first start.
package aegis

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/encoding/protojson"

	aegisv1 "github.com/photoncloud/photoncloud/api/aegis/v1"
	"github.com/photoncloud/photoncloud/internal/aegis/authn"
	"github.com/photoncloud/photoncloud/internal/aegis/password"
	"github.com/photoncloud/photoncloud/internal/aegis/policy"
	"github.com/photoncloud/photoncloud/internal/aegis/server"
	"github.com/photoncloud/photoncloud/internal/aegis/store"
	"github.com/photoncloud/photoncloud/internal/aegis/token"
	"github.com/photoncloud/photoncloud/internal/platform"
)

// streamWorkers is the number of goroutines serving gRPC calls; idle ones
// cost a few KiB each.
const streamWorkers = 256

// Server is a running Aegis replica.
type Server struct {
	cfg      Config
	grpcAddr string
	httpAddr string
	issuer   string

	cli     *clientv3.Client
	probe   *platform.StoreProbe // /readyz: Chainfire answers
	st      *store.Store
	ring    *token.Keyring
	api     *server.Server
	authn   *authn.Service
	gwConn  *grpc.ClientConn
	group   platform.Group
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	closeMu sync.Mutex
	closed  bool
}

// Start connects to Chainfire, loads the index, bootstraps an empty
// installation, and serves. It returns once the listeners accept calls.
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
	// Bind first: a port in use should fail before anything is created.
	ls, err := platform.ListenAPI(cfg.ListenGRPCURLs, cfg.ListenHTTPURLs, serverTLS)
	if err != nil {
		return nil, err
	}
	grpcLs, httpLs := ls.GRPC, ls.HTTP
	s.grpcAddr = grpcLs[0].Addr().String()
	s.issuer = cfg.Issuer
	if len(httpLs) > 0 {
		s.httpAddr = httpLs[0].Addr().String()
		if s.issuer == "" {
			scheme := "http"
			if serverTLS != nil {
				scheme = "https"
			}
			s.issuer = scheme + "://" + s.httpAddr
		}
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
	cfg.Logger.Info("aegis serving", "grpc", s.grpcAddr, "http", s.httpAddr, "issuer", s.issuer,
		"chainfire", strings.Join(cfg.ChainfireEndpoints, ","))
	if serverTLS == nil {
		cfg.Logger.Warn("serving without TLS; set --cert-file and --key-file to encrypt")
	}
	return s, nil
}

// open connects to Chainfire and builds everything that serves.
func (s *Server) open(ctx context.Context) error {
	cfg := &s.cfg
	cli, err := platform.DialStore(ctx, platform.StoreConfig{Endpoints: cfg.ChainfireEndpoints, TLS: cfg.ChainfireTLS})
	if err != nil {
		return err
	}
	s.cli = cli
	s.probe = platform.NewStoreProbe(cli, "/aegis/readyz", 2*time.Second)

	kek, err := loadOrCreateKEK(cfg)
	if err != nil {
		return err
	}
	tokCfg := token.Config{Issuer: s.issuer, Audience: cfg.Audience, AccessTTL: cfg.AccessTokenTTL, Now: cfg.Now}
	tokCfg.EnsureDefaults()
	if err := tokCfg.Validate(); err != nil {
		return err
	}
	eval, err := policy.New(policy.Options{Now: cfg.Now})
	if err != nil {
		return err
	}
	openCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	st, err := store.Open(openCtx, store.Options{
		Client: cli, Logger: cfg.Logger.With("component", "store"), Evaluator: eval,
		AuditRetention: cfg.AuditRetention, Now: cfg.Now,
	})
	if err != nil {
		return fmt.Errorf("open the store in chainfire %s: %w", strings.Join(cfg.ChainfireEndpoints, ","), err)
	}
	s.st = st
	ring, err := token.OpenKeyring(openCtx, st.KeyStore(), tokCfg, kek)
	if err != nil {
		return fmt.Errorf("signing keys: %w", err)
	}
	s.ring = ring
	bg, stop := context.WithCancel(context.Background())
	s.cancel = stop
	st.OnSigningKeysChanged(func() {
		if err := ring.Reload(bg); err != nil && bg.Err() == nil {
			cfg.Logger.Error("reload signing keys", "err", err)
		}
	})
	revs := st.Revocations()
	issuer, err := token.NewIssuer(ring, tokCfg, revs)
	if err != nil {
		return err
	}
	verifier, err := token.NewVerifier(ring, tokCfg, revs)
	if err != nil {
		return err
	}
	refresher, err := token.NewRefresher(st.RefreshStore(), revs, token.RefreshConfig{
		IdleTTL: cfg.RefreshIdleTTL, MaxLifetime: cfg.RefreshMaxLifetime, Now: cfg.Now,
	})
	if err != nil {
		return err
	}
	hasher, err := password.NewHasher(password.Options{})
	if err != nil {
		return err
	}
	limiter, err := password.NewLimiter(password.LimiterOptions{SharedUsers: st.LoginBuckets()})
	if err != nil {
		return err
	}
	if err := bootstrap(openCtx, cfg, st, hasher); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	api, err := server.New(server.Options{
		Store: st, Verifier: verifier, Hasher: hasher,
		Logger: cfg.Logger.With("component", "api"), Registry: cfg.Registry, Now: cfg.Now,
	})
	if err != nil {
		return err
	}
	s.api = api
	authnSvc, err := authn.New(authn.Config{
		Token: tokCfg, Issuer: issuer, Verifier: verifier, Refresher: refresher, Keyring: ring,
		Hasher: hasher, Limiter: limiter,
		Users: directory{st}, ServiceAccounts: directory{st}, Principals: directory{st},
		Revoker: st, Revocations: revs, Authorizer: api,
		DisablePasswordGrant: cfg.DisablePasswordGrant, FederatedIssuers: cfg.FederatedIssuers,
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")},
		Audit:          api.AuthnAudit,
		Logger:         cfg.Logger.With("component", "authn"),
		Now:            cfg.Now,
	})
	if err != nil {
		return err
	}
	s.authn = authnSvc
	if cfg.KeyRotation > 0 {
		s.wg.Go(func() { s.rotateKeys(bg) })
	}
	return nil
}

// serve starts the gRPC and HTTP servers.
func (s *Server) serve(ctx context.Context, grpcLs, httpLs []net.Listener, serverTLS *tls.Config) error {
	cfg := &s.cfg
	gs, health := platform.NewGRPCServer(platform.GRPCOptions{
		TLS: serverTLS, Registry: cfg.Registry, Logger: cfg.Logger,
		UnaryInterceptors:  []grpc.UnaryServerInterceptor{s.api.UnaryInterceptor()},
		StreamInterceptors: []grpc.StreamServerInterceptor{s.api.StreamInterceptor()},
		// Aegis answers many short calls: serving them on a pool of
		// goroutines whose stacks have already grown, rather than a new
		// goroutine per call, saves stack growth on every call. The pool
		// is sized for the calls in flight, not the cores: a call that
		// finds every worker busy gets a new goroutine after all.
		ServerOptions: []grpc.ServerOption{grpc.NumStreamWorkers(streamWorkers)},
	})
	health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	aegisv1.RegisterAuthnServiceServer(gs, s.authn)
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
		// Failed TLS handshakes and the like go to the structured log,
		// not to the standard logger's stderr.
		s.group.ServeHTTP(&http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
			ErrorLog: slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug)}, l)
	}
	return nil
}

// httpHandler serves OAuth2 and discovery, the JSON gateway under /v1/
// (which calls this replica's own gRPC listener, so every call passes the
// same authentication), and the platform's health and metrics routes.
func (s *Server) httpHandler(ctx context.Context, serverTLS *tls.Config) (http.Handler, error) {
	conn, err := platform.DialSelf(s.grpcAddr, serverTLS)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	s.gwConn = conn
	gw := runtime.NewServeMux(runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.JSONPb{
		MarshalOptions:   protojson.MarshalOptions{EmitUnpopulated: false},
		UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
	}))
	for _, register := range []func(context.Context, *runtime.ServeMux, *grpc.ClientConn) error{
		aegisv1.RegisterAuthnServiceHandler, aegisv1.RegisterAuthzServiceHandler, aegisv1.RegisterOrgServiceHandler,
		aegisv1.RegisterIdentityServiceHandler, aegisv1.RegisterPolicyServiceHandler, aegisv1.RegisterAuditServiceHandler,
	} {
		if err := register(context.WithoutCancel(ctx), gw, conn); err != nil {
			return nil, fmt.Errorf("register gateway: %w", err)
		}
	}
	mux := platform.NewHTTPMux(s.cfg.Registry, s.probe.Ready)
	mux.Handle("/v1/", gw)
	oauth := s.authn.Handler()
	mux.Handle("/oauth2/", oauth)
	mux.Handle("/.well-known/", oauth)
	return mux, nil
}

// rotateKeys replaces the active signing key once it is older than the
// rotation period. Every replica checks; the first to rotate wins, and the
// others see the new key's age through the watch and leave it.
func (s *Server) rotateKeys(ctx context.Context) {
	every := min(s.cfg.KeyRotation/10, time.Hour)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := s.cfg.Now()
		var activated time.Time
		for _, k := range s.ring.Keys() {
			if k.State == token.Active {
				activated = k.ActivatedAt
			}
		}
		if activated.IsZero() || now.Sub(activated) < s.cfg.KeyRotation {
			continue
		}
		kid, err := s.ring.Rotate(ctx)
		switch {
		case errors.Is(err, token.ErrKeyConflict):
			// Another replica rotated first; its change arrives by watch.
		case err != nil:
			s.cfg.Logger.Error("rotate signing keys", "err", err)
		default:
			s.cfg.Logger.Info("rotated signing keys", "active-kid", kid)
		}
	}
}

// loadOrCreateKEK reads the key-encryption key, creating it when it is the
// default file in the data dir and does not exist yet.
func loadOrCreateKEK(cfg *Config) (*token.KEK, error) {
	kek, err := token.LoadKEKFile(cfg.KEKFile)
	if err == nil {
		return kek, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("key-encryption key: %w", err)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	kek, err = token.WriteNewKEKFile(cfg.KEKFile)
	if errors.Is(err, os.ErrExist) {
		// Another replica sharing the file created it first.
		return token.LoadKEKFile(cfg.KEKFile)
	}
	if err != nil {
		return nil, fmt.Errorf("create the key-encryption key: %w", err)
	}
	cfg.Logger.Warn("created a new key-encryption key; every Aegis replica needs a copy of it", "file", cfg.KEKFile)
	return kek, nil
}

// GRPCAddr is the address of the first gRPC listener.
func (s *Server) GRPCAddr() string { return s.grpcAddr }

// HTTPAddr is the address of the first HTTP listener, "" if none.
func (s *Server) HTTPAddr() string { return s.httpAddr }

// Issuer is the URL tokens name as their issuer.
func (s *Server) Issuer() string { return s.issuer }

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
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
	if s.gwConn != nil {
		_ = s.gwConn.Close()
	}
	if s.api != nil {
		_ = s.api.Close()
	}
	if s.st != nil {
		_ = s.st.Close()
	}
	if s.cli != nil {
		_ = s.cli.Close()
	}
	return err
}
