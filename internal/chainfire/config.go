// Package chainfire assembles one Chainfire member: the replicated store of
// package kvserver behind the etcd v3 gRPC API (v3rpc), plus the HTTP
// listener with metrics, etcd's /health, readiness and the JSON gateway.
package chainfire

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"

	"github.com/photoncloud/photoncloud/internal/chainfire/auth"
	"github.com/photoncloud/photoncloud/internal/platform"
)

// Defaults match etcd's so that scripts written for etcd behave the same.
const (
	DefaultName              = "default"
	DefaultDataDir           = "default.chainfire"
	DefaultClientURL         = "http://localhost:2379"
	DefaultPeerURL           = "http://localhost:2380"
	DefaultHTTPURL           = "http://localhost:2382"
	DefaultClusterToken      = "chainfire-cluster"
	DefaultQuotaBackendBytes = 2 << 30 // 2 GiB, etcd's default quota
	DefaultMaxRequestBytes   = 3 << 19 // 1.5 MiB, etcd's --max-request-bytes
	DefaultMaxTxnOps         = 128     // etcd's --max-txn-ops
	DefaultSnapshotCount     = 10000   // etcd v3.6 default
	DefaultHeartbeat         = 100 * time.Millisecond
	DefaultElectionTimeout   = 1000 * time.Millisecond
	MaxQuotaBackendBytes     = 100 << 30 // refuse absurd quotas, as etcd warns past 8 GiB
)

// TLSFiles names the certificate files of one listener. All empty means plaintext.
type TLSFiles = platform.TLSFiles

// Config configures one Chainfire member. The zero value plus EnsureDefaults
// gives a working single-node member listening on etcd's default ports.
type Config struct {
	// Name is the human-readable member name. Default "default".
	Name string
	// DataDir holds the Pebble store (raft log and MVCC data). Default "default.chainfire".
	DataDir string

	// ListenClientURLs are where the etcd gRPC API is served. Default http://localhost:2379.
	ListenClientURLs []string
	// AdvertiseClientURLs are reported in MemberList. Default: ListenClientURLs.
	AdvertiseClientURLs []string
	// ListenPeerURLs / InitialAdvertisePeerURLs are the raft peer addresses.
	// In a single-node member they are only recorded in the membership.
	ListenPeerURLs           []string
	InitialAdvertisePeerURLs []string
	// InitialCluster is "name=peerURL,..." as in etcd. Default "<name>=<first advertise peer URL>".
	InitialCluster string
	// InitialClusterState is "new" or "existing". Default "new".
	InitialClusterState string
	// InitialClusterToken seeds the cluster and member IDs. Default "chainfire-cluster".
	InitialClusterToken string
	// ListenHTTPURLs serve /metrics, /health, /readyz, /livez and the JSON gateway /v3/*.
	// Default http://localhost:2382. Empty after defaults means none.
	ListenHTTPURLs []string

	// QuotaBackendBytes raises the NOSPACE alarm when the store grows past it. Default 2 GiB.
	QuotaBackendBytes int64
	// MaxRequestBytes bounds one client request. Default 1.5 MiB.
	MaxRequestBytes int
	// MaxTxnOps bounds the operations of one txn (per branch, as etcd). Default 128.
	MaxTxnOps int
	// AutoCompactionMode is "periodic" (default) or "revision".
	AutoCompactionMode string
	// AutoCompactionRetention: periodic mode takes a duration ("1h", or a bare number of
	// hours as etcd accepts); revision mode a number of revisions. "0" or "" disables.
	AutoCompactionRetention string
	// SnapshotCount is the number of applied entries after which the raft log is compacted.
	SnapshotCount uint64
	// AutoPromoteLearners makes the leader promote caught-up learners itself.
	AutoPromoteLearners bool
	// LeaseCheckpointInterval is how often the leader replicates remaining
	// lease TTLs, so a new leader does not restart them in full. Default 5m.
	LeaseCheckpointInterval time.Duration
	// CorruptCheckInterval is how often the leader compares its HashKV with
	// the other members'. Default 1m; negative disables.
	CorruptCheckInterval time.Duration
	// HeartbeatInterval and ElectionTimeout drive the raft ticker.
	HeartbeatInterval time.Duration
	ElectionTimeout   time.Duration

	// GossipAddr is where gossip (memberlist, TCP and UDP) listens, host:port.
	// Empty turns gossip off, unless Join is set: then it listens on the host
	// of the first advertised peer URL, port 2381.
	GossipAddr string
	// Join lists gossip seeds, host[:port] (port 2381 by default): any members
	// of the cluster to join. A member with Join and no data adds itself as a
	// learner and promotes itself once caught up. Excludes InitialCluster.
	Join []string
	// GossipKeyFile names a file holding a base64 key of 16, 24 or 32 bytes
	// that encrypts gossip; every member needs the same key. Empty: plaintext.
	GossipKeyFile string

	// ClientTLS secures the client (gRPC) and HTTP listeners; PeerTLS the peer listener.
	ClientTLS TLSFiles
	PeerTLS   TLSFiles

	// AuthToken is etcd's --auth-token: "simple" (default) or
	// "jwt,pub-key=FILE,priv-key=FILE,sign-method=RS256,ttl=5m".
	AuthToken string
	// AuthTokenTTL is how long an unused simple token stays valid. Default 300s.
	AuthTokenTTL time.Duration
	// BcryptCost is the cost of the password hashes this member makes. Default 10.
	BcryptCost int

	// Logger receives the member's logs. Default slog.Default().
	Logger *slog.Logger
	// Registry receives the member's metrics. Default a fresh registry.
	Registry *prometheus.Registry
}

// EnsureDefaults fills every unset field with its default.
func (c *Config) EnsureDefaults() {
	if c.Name == "" {
		c.Name = DefaultName
	}
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	if len(c.ListenClientURLs) == 0 {
		c.ListenClientURLs = []string{DefaultClientURL}
	}
	if len(c.AdvertiseClientURLs) == 0 {
		c.AdvertiseClientURLs = c.ListenClientURLs
	}
	if len(c.ListenPeerURLs) == 0 {
		c.ListenPeerURLs = []string{DefaultPeerURL}
	}
	if len(c.InitialAdvertisePeerURLs) == 0 {
		c.InitialAdvertisePeerURLs = c.ListenPeerURLs
	}
	c.gossipDefaults()
	if c.InitialCluster == "" && len(c.Join) == 0 {
		c.InitialCluster = c.Name + "=" + c.InitialAdvertisePeerURLs[0]
	}
	if c.InitialClusterState == "" {
		c.InitialClusterState = "new"
	}
	if c.InitialClusterToken == "" {
		c.InitialClusterToken = DefaultClusterToken
	}
	if c.ListenHTTPURLs == nil {
		c.ListenHTTPURLs = []string{DefaultHTTPURL}
	}
	if c.QuotaBackendBytes == 0 {
		c.QuotaBackendBytes = DefaultQuotaBackendBytes
	}
	if c.MaxRequestBytes == 0 {
		c.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if c.MaxTxnOps == 0 {
		c.MaxTxnOps = DefaultMaxTxnOps
	}
	if c.AutoCompactionMode == "" {
		c.AutoCompactionMode = "periodic"
	}
	if c.SnapshotCount == 0 {
		c.SnapshotCount = DefaultSnapshotCount
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = DefaultHeartbeat
	}
	if c.ElectionTimeout == 0 {
		c.ElectionTimeout = DefaultElectionTimeout
	}
	if c.AuthToken == "" {
		c.AuthToken = auth.DefaultTokenSpec
	}
	if c.AuthTokenTTL == 0 {
		c.AuthTokenTTL = auth.DefaultTokenTTL
	}
	if c.BcryptCost == 0 {
		c.BcryptCost = auth.DefaultBcryptCost
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Registry == nil {
		c.Registry = prometheus.NewRegistry()
	}
}

// Validate reports the first problem with the configuration. Call after EnsureDefaults.
func (c *Config) Validate() error {
	for _, list := range [][]string{c.ListenClientURLs, c.AdvertiseClientURLs, c.ListenPeerURLs,
		c.InitialAdvertisePeerURLs, c.ListenHTTPURLs} {
		for _, u := range list {
			if _, err := ParseURL(u); err != nil {
				return err
			}
		}
	}
	if err := c.validateGossip(); err != nil {
		return err
	}
	if len(c.Join) == 0 {
		members, err := ParseInitialCluster(c.InitialCluster)
		if err != nil {
			return err
		}
		if _, ok := members[c.Name]; !ok {
			return fmt.Errorf("--initial-cluster %q has no entry for member name %q", c.InitialCluster, c.Name)
		}
	}
	if c.InitialClusterState != "new" && c.InitialClusterState != "existing" {
		return fmt.Errorf("--initial-cluster-state must be \"new\" or \"existing\", got %q", c.InitialClusterState)
	}
	if c.QuotaBackendBytes < 0 || c.QuotaBackendBytes > MaxQuotaBackendBytes {
		return fmt.Errorf("--quota-backend-bytes %d out of range (0, %d]", c.QuotaBackendBytes, int64(MaxQuotaBackendBytes))
	}
	if c.MaxRequestBytes < 0 {
		return errors.New("--max-request-bytes must be positive")
	}
	if c.MaxTxnOps < 0 {
		return errors.New("--max-txn-ops must be positive")
	}
	if c.AutoCompactionMode != "periodic" && c.AutoCompactionMode != "revision" {
		return fmt.Errorf("--auto-compaction-mode must be \"periodic\" or \"revision\", got %q", c.AutoCompactionMode)
	}
	if _, _, err := c.compactionRetention(); err != nil {
		return err
	}
	if c.ElectionTimeout < 5*c.HeartbeatInterval {
		return fmt.Errorf("--election-timeout (%v) must be at least 5 times --heartbeat-interval (%v)", c.ElectionTimeout, c.HeartbeatInterval)
	}
	if c.ClientTLS.Enabled() && (c.ClientTLS.CertFile == "" || c.ClientTLS.KeyFile == "") {
		return errors.New("--cert-file and --key-file must be given together")
	}
	if c.ClientTLS.ClientCertAuth && c.ClientTLS.TrustedCAFile == "" {
		return errors.New("--client-cert-auth needs --trusted-ca-file")
	}
	if c.PeerTLS.Enabled() && (c.PeerTLS.CertFile == "" || c.PeerTLS.KeyFile == "") {
		return errors.New("--peer-cert-file and --peer-key-file must be given together")
	}
	if err := auth.ValidateTokenSpec(c.AuthToken); err != nil {
		return fmt.Errorf("--auth-token %q: %w", c.AuthToken, err)
	}
	if c.AuthTokenTTL < 0 {
		return errors.New("--auth-token-ttl must be positive")
	}
	if c.BcryptCost < bcrypt.MinCost || c.BcryptCost > bcrypt.MaxCost {
		return fmt.Errorf("--bcrypt-cost %d out of range [%d, %d]", c.BcryptCost, bcrypt.MinCost, bcrypt.MaxCost)
	}
	return nil
}

// ParseURL accepts "http://host:port", "https://host:port", "unix://path" or a bare "host:port".
func ParseURL(s string) (*url.URL, error) {
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("invalid URL %q: %w", s, err)
	}
	switch u.Scheme {
	case "http", "https":
		if u.Port() == "" {
			return nil, fmt.Errorf("invalid URL %q: a port is required", s)
		}
	case "unix", "unixs":
	default:
		return nil, fmt.Errorf("invalid URL %q: scheme must be http, https, unix or unixs", s)
	}
	return u, nil
}

// ParseInitialCluster parses etcd's "name1=url1,name1=url2,name2=url3" form.
func ParseInitialCluster(s string) (map[string][]string, error) {
	out := map[string][]string{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, u, ok := strings.Cut(part, "=")
		if !ok || name == "" || u == "" {
			return nil, fmt.Errorf("invalid --initial-cluster entry %q: want name=url", part)
		}
		if _, err := ParseURL(u); err != nil {
			return nil, fmt.Errorf("invalid --initial-cluster entry %q: %w", part, err)
		}
		out[name] = append(out[name], u)
	}
	if len(out) == 0 {
		return nil, errors.New("--initial-cluster is empty")
	}
	return out, nil
}

// compactionRetention returns the periodic retention or the revision retention.
func (c *Config) compactionRetention() (time.Duration, int64, error) {
	r := strings.TrimSpace(c.AutoCompactionRetention)
	if r == "" || r == "0" {
		return 0, 0, nil
	}
	if c.AutoCompactionMode == "revision" {
		var n int64
		if _, err := fmt.Sscanf(r, "%d", &n); err != nil || n < 0 || fmt.Sprint(n) != r {
			return 0, 0, fmt.Errorf("--auto-compaction-retention %q: revision mode needs a whole number of revisions", r)
		}
		return 0, n, nil
	}
	var hours int64
	if _, err := fmt.Sscanf(r, "%d", &hours); err == nil && fmt.Sprint(hours) == r {
		if hours < 0 {
			return 0, 0, fmt.Errorf("--auto-compaction-retention %q must not be negative", r)
		}
		return time.Duration(hours) * time.Hour, 0, nil
	}
	d, err := time.ParseDuration(r)
	if err != nil || d < 0 {
		return 0, 0, fmt.Errorf("--auto-compaction-retention %q: want a duration such as 1h or 30m", r)
	}
	return d, 0, nil
}
