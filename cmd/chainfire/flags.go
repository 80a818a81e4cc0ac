package main

import (
	"time"

	"github.com/spf13/pflag"

	"github.com/photoncloud/photoncloud/internal/chainfire"
	"github.com/photoncloud/photoncloud/internal/chainfire/auth"
	"github.com/photoncloud/photoncloud/internal/platform"
)

// options is everything the command line sets. Durations are kept as
// milliseconds until config() because etcd's flags take milliseconds.
type options struct {
	cfg         chainfire.Config
	heartbeatMs uint
	electionMs  uint
	server      *platform.ServerFlags // --config, --log-level, --log-format

	// authTokenTTL is --auth-token-ttl in seconds, as etcd takes it.
	authTokenTTL uint
	bcryptCost   uint
}

// bindFlags declares etcd's flag names, with etcd's defaults, on fs.
func bindFlags(fs *pflag.FlagSet, o *options) {
	c := &o.cfg
	o.server = platform.AddServerFlags(fs, "chainfire")

	fs.StringVar(&c.Name, "name", chainfire.DefaultName, "human-readable name of this member")
	fs.StringVar(&c.DataDir, "data-dir", chainfire.DefaultDataDir, "directory of the member's data")
	fs.StringSliceVar(&c.ListenClientURLs, "listen-client-urls", []string{chainfire.DefaultClientURL}, "comma-separated URLs to serve the etcd gRPC API on")
	fs.StringSliceVar(&c.AdvertiseClientURLs, "advertise-client-urls", nil, "comma-separated client URLs advertised to the cluster (default: --listen-client-urls)")
	fs.StringSliceVar(&c.ListenPeerURLs, "listen-peer-urls", []string{chainfire.DefaultPeerURL}, "comma-separated URLs to listen on for peer traffic")
	fs.StringSliceVar(&c.InitialAdvertisePeerURLs, "initial-advertise-peer-urls", nil, "comma-separated peer URLs advertised to the cluster (default: --listen-peer-urls)")
	fs.StringVar(&c.InitialCluster, "initial-cluster", "", `initial cluster as "name=peerURL,..." (default: <name>=<first advertised peer URL>)`)
	fs.StringVar(&c.InitialClusterState, "initial-cluster-state", "new", `"new" to bootstrap a cluster, "existing" to join one`)
	fs.StringVar(&c.InitialClusterToken, "initial-cluster-token", chainfire.DefaultClusterToken, "token that seeds the cluster and member IDs")
	fs.StringSliceVar(&c.ListenHTTPURLs, "listen-http-urls", []string{chainfire.DefaultHTTPURL}, `comma-separated URLs for /metrics, /health, /readyz and the JSON gateway; "" for none`)
	fs.Int64Var(&c.QuotaBackendBytes, "quota-backend-bytes", chainfire.DefaultQuotaBackendBytes, "raise the NOSPACE alarm when the store exceeds this size")
	fs.IntVar(&c.MaxRequestBytes, "max-request-bytes", chainfire.DefaultMaxRequestBytes, "maximum client request size in bytes")
	fs.IntVar(&c.MaxTxnOps, "max-txn-ops", chainfire.DefaultMaxTxnOps, "maximum operations in one transaction")
	fs.StringVar(&c.AutoCompactionMode, "auto-compaction-mode", "periodic", `"periodic" or "revision"`)
	fs.StringVar(&c.AutoCompactionRetention, "auto-compaction-retention", "0", `history to keep: a duration or hours ("1h", "5") in periodic mode, revisions in revision mode; "0" disables`)
	fs.Uint64Var(&c.SnapshotCount, "snapshot-count", chainfire.DefaultSnapshotCount, "applied entries between raft log compactions")
	fs.BoolVar(&c.AutoPromoteLearners, "auto-promote-learners", false, "promote learners to voters as soon as they have caught up")
	fs.DurationVar(&c.LeaseCheckpointInterval, "lease-checkpoint-interval", 5*time.Minute, "how often the leader replicates remaining lease TTLs")
	fs.DurationVar(&c.CorruptCheckInterval, "corrupt-check-interval", time.Minute, "how often the leader compares HashKV with the other members; negative disables")
	fs.UintVar(&o.heartbeatMs, "heartbeat-interval", uint(chainfire.DefaultHeartbeat/time.Millisecond), "raft heartbeat interval in milliseconds")
	fs.UintVar(&o.electionMs, "election-timeout", uint(chainfire.DefaultElectionTimeout/time.Millisecond), "raft election timeout in milliseconds")
	fs.StringVar(&c.ClientTLS.CertFile, "cert-file", "", "client (and HTTP) listener certificate")
	fs.StringVar(&c.ClientTLS.KeyFile, "key-file", "", "client (and HTTP) listener key")
	fs.StringVar(&c.ClientTLS.TrustedCAFile, "trusted-ca-file", "", "CA that signs client certificates")
	fs.BoolVar(&c.ClientTLS.ClientCertAuth, "client-cert-auth", false, "require client certificates signed by --trusted-ca-file")
	fs.StringVar(&c.PeerTLS.CertFile, "peer-cert-file", "", "peer listener certificate")
	fs.StringVar(&c.PeerTLS.KeyFile, "peer-key-file", "", "peer listener key")
	fs.StringVar(&c.PeerTLS.TrustedCAFile, "peer-trusted-ca-file", "", "CA that signs peer certificates")
	fs.StringVar(&c.AuthToken, "auth-token", auth.DefaultTokenSpec, `auth token type: "simple", or "jwt,pub-key=FILE,priv-key=FILE,sign-method=RS256,ttl=5m"`)
	fs.UintVar(&o.authTokenTTL, "auth-token-ttl", uint(auth.DefaultTokenTTL/time.Second), "seconds an unused simple token stays valid")
	fs.UintVar(&o.bcryptCost, "bcrypt-cost", uint(auth.DefaultBcryptCost), "bcrypt cost of password hashes")
	fs.StringVar(&c.GossipAddr, "gossip-addr", "", `host:port for gossip (TCP+UDP; platform port 2381); "" turns gossip off unless --join is given`)
	fs.StringSliceVar(&c.Join, "join", nil, "comma-separated gossip seeds (host[:port], port 2381 by default) of a cluster to join as a new member; excludes --initial-cluster")
	fs.StringVar(&c.GossipKeyFile, "gossip-key-file", "", "file with a base64 key of 16, 24 or 32 bytes that encrypts gossip (the same on every member)")
}

// config returns the member configuration the flags describe, before defaults.
func (o *options) config() chainfire.Config {
	c := o.cfg
	c.HeartbeatInterval = time.Duration(o.heartbeatMs) * time.Millisecond
	c.ElectionTimeout = time.Duration(o.electionMs) * time.Millisecond
	c.AuthTokenTTL = time.Duration(o.authTokenTTL) * time.Second
	c.BcryptCost = int(o.bcryptCost)
	return c
}
