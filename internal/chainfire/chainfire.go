package chainfire

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/etcdserverpb/gw"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/photoncloud/photoncloud/internal/chainfire/auth"
	"github.com/photoncloud/photoncloud/internal/chainfire/kvserver"
	"github.com/photoncloud/photoncloud/internal/chainfire/lease"
	"github.com/photoncloud/photoncloud/internal/chainfire/transport"
	"github.com/photoncloud/photoncloud/internal/chainfire/v3rpc"
	"github.com/photoncloud/photoncloud/internal/platform"
)

// grpcOverheadBytes is the slack etcd allows on top of --max-request-bytes
// for gRPC framing.
const grpcOverheadBytes = 512 * 1024

// Server is a running Chainfire member.
type Server struct {
	cfg        Config
	lg         *slog.Logger
	kv         *kvserver.Server
	group      platform.Group
	clientAddr string
	httpAddr   string
	gwConn     *grpc.ClientConn
	peers      *transport.Transport
	gossip     *gossipMember // nil when gossip is off (join.go)
	closeOnce  sync.Once
	closeErr   error
	// drain closes when the member stops, ending long-lived streams so that
	// a graceful gRPC stop does not wait for clients to hang up.
	drain chan struct{}
}

// Start opens the member's data, starts raft and serves clients. It returns
// once the member has a leader and its listeners accept connections.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, lg: cfg.Logger, drain: make(chan struct{})}
	ok := false
	var listeners []net.Listener
	defer func() {
		if !ok {
			for _, l := range listeners {
				_ = l.Close()
			}
		}
	}()

	// Bind first: a port in use should fail before any data is touched.
	type clientListener struct {
		l      net.Listener
		secure bool
	}
	var clients []clientListener
	for _, u := range cfg.ListenClientURLs {
		l, secure, err := platform.ListenNetwork(u)
		if err != nil {
			return nil, err
		}
		listeners = append(listeners, l)
		if secure && !cfg.ClientTLS.Enabled() {
			return nil, fmt.Errorf("listen %s: TLS URL without a certificate; set --cert-file and --key-file", u)
		}
		clients = append(clients, clientListener{l, secure || (cfg.ClientTLS.Enabled() && !strings.Contains(u, "://"))})
	}
	s.clientAddr = clients[0].l.Addr().String()
	serverTLS, err := cfg.ClientTLS.ServerConfig()
	if err != nil {
		return nil, fmt.Errorf("client TLS: %w", err)
	}
	var httpListeners []net.Listener
	for _, u := range cfg.ListenHTTPURLs {
		l, err := platform.Listen(u, serverTLS)
		if err != nil {
			return nil, err
		}
		listeners = append(listeners, l)
		httpListeners = append(httpListeners, l)
	}
	if len(httpListeners) > 0 {
		s.httpAddr = httpListeners[0].Addr().String()
	}

	if err := s.startGossip(); err != nil {
		return nil, err
	}
	defer func() {
		if !ok {
			_ = s.closeGossip()
		}
	}()

	members, _ := ParseInitialCluster(cfg.InitialCluster)
	retention, retentionRevs, _ := cfg.compactionRetention()
	var existing *kvserver.Membership
	if len(cfg.Join) > 0 && !hasMember(cfg.DataDir) {
		if existing, err = s.joinCluster(ctx); err != nil {
			return nil, err
		}
	} else if cfg.InitialClusterState == "existing" && !hasMember(cfg.DataDir) {
		if existing, err = fetchMembership(ctx, cfg, members); err != nil {
			return nil, err
		}
	}
	kv, err := kvserver.Start(ctx, kvserver.Options{
		Name:                    cfg.Name,
		DataDir:                 cfg.DataDir,
		PeerURLs:                cfg.InitialAdvertisePeerURLs,
		ClientURLs:              cfg.AdvertiseClientURLs,
		InitialCluster:          members,
		Existing:                existing,
		ClusterToken:            cfg.InitialClusterToken,
		QuotaBackendBytes:       cfg.QuotaBackendBytes,
		MaxRequestBytes:         cfg.MaxRequestBytes,
		SnapshotCount:           cfg.SnapshotCount,
		AutoPromote:             cfg.AutoPromoteLearners,
		LeaseCheckpointInterval: cfg.LeaseCheckpointInterval,
		CorruptCheckInterval:    cfg.CorruptCheckInterval,
		HeartbeatInterval:       cfg.HeartbeatInterval,
		ElectionTimeout:         cfg.ElectionTimeout,
		RetentionPeriod:         retention,
		RetentionRevisions:      retentionRevs,
		Logger:                  s.lg,
		Metrics:                 kvserver.NewMetrics(cfg.Registry),
		Auth: auth.Options{
			TokenSpec: cfg.AuthToken, TokenTTL: cfg.AuthTokenTTL, BcryptCost: cfg.BcryptCost,
			ClientCertAuth: cfg.ClientTLS.ClientCertAuth,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("start member: %w", err)
	}
	s.kv = kv
	if err := s.connectPeers(cfg); err != nil {
		s.closeAll()
		return nil, err
	}
	s.startGossipLoops()

	unaryLeader, streamLeader := v3rpc.RequireLeader(kv)
	servers := map[bool]*grpc.Server{}
	for _, c := range clients {
		gs := servers[c.secure]
		if gs == nil {
			opts := platform.GRPCOptions{
				MaxRecvMsgSize:     cfg.MaxRequestBytes + grpcOverheadBytes,
				Registry:           cfg.Registry,
				Logger:             s.lg,
				UnaryInterceptors:  []grpc.UnaryServerInterceptor{unaryLeader},
				StreamInterceptors: []grpc.StreamServerInterceptor{streamLeader},
			}
			if c.secure {
				opts.TLS = serverTLS
			}
			var health interface {
				SetServingStatus(string, healthpb.HealthCheckResponse_ServingStatus)
			}
			gs, health = platform.NewGRPCServer(opts)
			health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
			v3rpc.Register(gs, kv, v3rpc.Options{MaxTxnOps: cfg.MaxTxnOps, MaxRequestBytes: cfg.MaxRequestBytes, Logger: s.lg, Drain: s.drain, LeaderLoss: 3 * cfg.ElectionTimeout,
				StatusErrors: s.gossipStatusErrors})
			servers[c.secure] = gs
		}
		s.group.ServeGRPC(gs, c.l)
	}

	if len(httpListeners) > 0 {
		var gwTLS *tls.Config
		if clients[0].secure {
			gwTLS = serverTLS
		}
		mux, err := s.httpHandler(ctx, gwTLS)
		if err != nil {
			s.closeAll()
			return nil, err
		}
		for _, l := range httpListeners {
			s.group.ServeHTTP(&http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}, l)
		}
	}
	ok = true
	s.lg.Info("chainfire member serving", "name", cfg.Name, "member-id", fmt.Sprintf("%x", kv.ID()),
		"cluster-id", fmt.Sprintf("%x", kv.ClusterID()), "client", s.clientAddr, "http", s.httpAddr)
	if !cfg.ClientTLS.Enabled() {
		s.lg.Warn("serving clients without TLS; set --cert-file and --key-file to encrypt")
	}
	return s, nil
}

// httpHandler serves /metrics, /healthz, /livez, /readyz, etcd's /health and
// the JSON gateway under /v3/, which calls the member's own gRPC listener.
func (s *Server) httpHandler(ctx context.Context, serverTLS *tls.Config) (http.Handler, error) {
	conn, err := platform.DialSelf(s.clientAddr, serverTLS, grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(1<<31-1)))
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	s.gwConn = conn
	gwmux := runtime.NewServeMux(runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.HTTPBodyMarshaler{
		Marshaler: &runtime.JSONPb{
			MarshalOptions:   protojson.MarshalOptions{UseProtoNames: true},
			UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: true},
		},
	}), runtime.WithMetadata(func(context.Context, *http.Request) metadata.MD {
		// The gateway presents this member's certificate: mark its calls so
		// that certificate never counts as the client's identity.
		return metadata.Pairs(auth.GatewayKey, "1")
	}))
	for _, register := range []func(context.Context, *runtime.ServeMux, *grpc.ClientConn) error{
		gw.RegisterKVHandler, gw.RegisterWatchHandler, gw.RegisterLeaseHandler,
		gw.RegisterClusterHandler, gw.RegisterMaintenanceHandler, gw.RegisterAuthHandler,
	} {
		if err := register(context.WithoutCancel(ctx), gwmux, conn); err != nil {
			return nil, fmt.Errorf("register gateway: %w", err)
		}
	}
	mux := platform.NewHTTPMux(s.cfg.Registry, s.ready)
	mux.Handle("/v3/", gwmux)
	mux.HandleFunc("/health", s.serveHealth)
	mux.HandleFunc("/version", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{
			"etcdserver": kvserver.Version, "etcdcluster": kvserver.ClusterVersion, "storage": kvserver.StorageVersion,
		})
	})
	return mux, nil
}

func (s *Server) ready() error {
	if s.kv.Leader() == 0 {
		return errors.New("no leader")
	}
	return nil
}

// serveHealth answers as etcd's /health: a quorum read must succeed and no
// alarm may be active (?exclude=NOSPACE ignores that alarm).
func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request) {
	excluded := map[string]bool{}
	for _, a := range r.URL.Query()["exclude"] {
		excluded[a] = true
	}
	reason := ""
	for _, a := range s.kv.Alarms() {
		if !excluded[a.Alarm.String()] {
			reason = "ALARM " + a.Alarm.String()
		}
	}
	if reason == "" {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if _, err := s.kv.Range(ctx, &pb.RangeRequest{Key: []byte("health"), Serializable: r.URL.Query().Get("serializable") == "true"}); err != nil {
			reason = "QGET ERROR " + err.Error()
		}
	}
	w.Header().Set("Content-Type", "application/json")
	if reason != "" {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(map[string]string{"health": fmt.Sprint(reason == ""), "reason": reason})
}

// connectPeers serves the peer service and dials the other members, when
// there are any.
func (s *Server) connectPeers(cfg Config) error {
	members := s.kv.Members()
	peerTLS, err := cfg.PeerTLS.ServerConfig()
	if err != nil {
		return fmt.Errorf("peer TLS: %w", err)
	}
	var clientTLS *tls.Config
	if cfg.PeerTLS.Enabled() {
		if clientTLS, err = cfg.PeerTLS.ClientConfig(""); err != nil {
			return fmt.Errorf("peer TLS: %w", err)
		}
	}
	s.peers = transport.New(s.lg.With("component", "transport"), clientTLS, s.kv.ReportUnreachable)
	s.peers.OnRemoved(s.kv.RemovedByPeer)
	for _, m := range members {
		if m.ID == s.kv.ID() {
			continue
		}
		if err := s.peers.AddPeer(m.ID, m.PeerURLs); err != nil {
			return err
		}
	}
	s.kv.SetPeers(s.peers)
	gs, _ := platform.NewGRPCServer(platform.GRPCOptions{
		TLS: peerTLS, MaxRecvMsgSize: 1 << 30, Registry: nil, Logger: s.lg,
		ServerOptions: transport.ServerOptions(),
	})
	h := peerHandler{s.kv, s.GossipAddr()}
	transport.Register(gs, h)
	for _, u := range cfg.ListenPeerURLs {
		l, secure, err := platform.ListenNetwork(u)
		if err != nil {
			return err
		}
		if secure && peerTLS == nil {
			_ = l.Close()
			return fmt.Errorf("listen %s: TLS URL without --peer-cert-file", u)
		}
		// Raft streams are served beside gRPC on the same port. Peer streams
		// never end on their own, and raft resends whatever a stop cuts
		// off: no graceful drain.
		ml := transport.NewListener(l, peerTLS, h, s.lg.With("component", "transport"))
		s.group.Go(func() error { return gs.Serve(ml) }, func(context.Context) error { gs.Stop(); return ml.Close() })
	}
	return nil
}

// hasMember reports whether dataDir already holds a member's data.
func hasMember(dataDir string) bool {
	_, err := os.Stat(filepath.Join(dataDir, "member"))
	return err == nil
}

// fetchMembership asks the other members of --initial-cluster for the
// cluster's membership, which a joining member needs to learn its id.
func fetchMembership(ctx context.Context, cfg Config, members map[string][]string) (*kvserver.Membership, error) {
	var tlsCfg *tls.Config
	if cfg.PeerTLS.Enabled() || cfg.PeerTLS.TrustedCAFile != "" {
		var err error
		if tlsCfg, err = cfg.PeerTLS.ClientConfig(""); err != nil {
			return nil, fmt.Errorf("peer TLS: %w", err)
		}
	}
	var errs []error
	for name, urls := range members {
		if name == cfg.Name {
			continue
		}
		for _, u := range urls {
			cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			data, err := transport.FetchMembership(cctx, u, tlsCfg)
			cancel()
			if err != nil {
				errs = append(errs, err)
				continue
			}
			var m kvserver.Membership
			if err := json.Unmarshal(data, &m); err != nil {
				return nil, fmt.Errorf("membership from %s: %w", u, err)
			}
			return &m, nil
		}
	}
	return nil, fmt.Errorf("--initial-cluster-state existing: no other member of --initial-cluster answered: %w", errors.Join(errs...))
}

// peerHandler answers the other members.
type peerHandler struct {
	kv         *kvserver.Server
	gossipAddr string // "" when gossip is off
}

func (h peerHandler) Step(ctx context.Context, m *raftpb.Message) error {
	err := h.kv.Step(ctx, m)
	if errors.Is(err, kvserver.ErrMemberRemoved) {
		return transport.ErrRemoved
	}
	return err
}

func (h peerHandler) ReceiveSnapshot(ctx context.Context, m *raftpb.Message, body io.Reader) error {
	return h.kv.ReceiveSnapshot(ctx, m, body)
}

func (h peerHandler) LearnerReady(ctx context.Context, id uint64) (bool, error) {
	ok, err := h.kv.LearnerReady(ctx, id)
	if err != nil {
		return false, status.Error(codes.Unavailable, err.Error())
	}
	return ok, nil
}

func (h peerHandler) Membership(ctx context.Context) ([]byte, error) {
	if err := h.kv.ReadBarrier(ctx); err != nil {
		return nil, err
	}
	return membershipJSON(h.kv.Membership(), h.gossipAddr)
}

func (h peerHandler) HashKV(ctx context.Context, rev int64) (*pb.HashKVResponse, error) {
	resp, err := h.kv.HashKV(ctx, rev)
	if err != nil {
		return nil, status.Error(codes.FailedPrecondition, err.Error())
	}
	return resp, nil
}

func (h peerHandler) LeaseRenew(ctx context.Context, id int64) (int64, error) {
	ttl, err := h.kv.LeaseRenew(ctx, id)
	if errors.Is(err, lease.ErrNotFound) {
		return 0, status.Error(codes.NotFound, err.Error())
	}
	if err != nil {
		return 0, status.Error(codes.Unavailable, err.Error())
	}
	return ttl, nil
}

// ClientAddr is the bound address of the first client listener.
func (s *Server) ClientAddr() string { return s.clientAddr }

// Done is closed when the member stops by itself — removed from the cluster,
// or failing (StopCause) — and on Close.
func (s *Server) Done() <-chan struct{} { return s.kv.Done() }

// StopCause is why the member stopped by itself; nil after a removal.
func (s *Server) StopCause() error { return s.kv.StopCause() }

// HTTPAddr is the bound address of the first HTTP listener, "" if none.
func (s *Server) HTTPAddr() string { return s.httpAddr }

// Err reports a listener that failed on its own.
func (s *Server) Err() <-chan error { return s.group.Err() }

// Close stops serving, then stops the member; it waits for every goroutine.
func (s *Server) Close() error {
	return s.closeAll()
}

func (s *Server) closeAll() error {
	s.closeOnce.Do(func() { s.closeErr = s.shutdown() })
	return s.closeErr
}

func (s *Server) shutdown() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	close(s.drain)
	err := s.group.Stop(ctx)
	err = errors.Join(err, s.closeGossip())
	if s.gwConn != nil {
		err = errors.Join(err, s.gwConn.Close())
	}
	if s.kv != nil {
		err = errors.Join(err, s.kv.Close())
	}
	if s.peers != nil {
		s.peers.Close()
	}
	return err
}

// KV exposes the state machine to in-process users such as tests.
func (s *Server) KV() *kvserver.Server { return s.kv }
