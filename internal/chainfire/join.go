package chainfire

// Gossip and --join: every member with a gossip address runs a memberlist
// node whose metadata carries its cluster id, member id and URLs. A member
// started with --join and no data finds the cluster through the seeds, adds
// itself as a learner through the etcd API, starts raft as an "existing"
// member and promotes itself once the leader says it has caught up. Raft
// stays the authority on membership: gossip only finds the cluster and
// reports health.

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/photoncloud/photoncloud/internal/chainfire/gossip"
	"github.com/photoncloud/photoncloud/internal/chainfire/kvserver"
	"github.com/photoncloud/photoncloud/internal/chainfire/transport"
)

// Timings of the gossip upkeep and of joining.
const (
	// gossipSyncInterval is how often a member looks for cluster members
	// missing from its gossip view and refreshes what it knows.
	gossipSyncInterval = 3 * time.Second
	// gossipFetchMaxBackoff bounds how rarely a member that does not answer
	// (or runs no gossip) is asked for its gossip address.
	gossipFetchMaxBackoff = time.Minute
	// joinRetryMax bounds the pause between attempts to join.
	joinRetryMax = 5 * time.Second
	// joinCallTimeout bounds one etcd API call of the join.
	joinCallTimeout = 5 * time.Second
	// promoteInterval is how often a learner started with --join asks to be
	// promoted.
	promoteInterval = 300 * time.Millisecond
)

// gossipMember is a member's gossip node and what the join left behind.
type gossipMember struct {
	g *gossip.Gossip
	// client is the etcd client the join used, kept for the promotion.
	client *clientv3.Client
	// nextFetch and backoff pace the questions to members that are missing
	// from gossip (owned by the sync loop).
	nextFetch map[uint64]time.Time
	backoff   map[uint64]time.Duration
}

// gossipDefaults gives every --join seed a port and, for a member that
// joins, a gossip address next to its peer URL. Called by EnsureDefaults.
func (c *Config) gossipDefaults() {
	var seeds []string
	for _, j := range c.Join {
		j = strings.TrimSpace(j)
		if j == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(j); err != nil {
			j = net.JoinHostPort(strings.Trim(j, "[]"), strconv.Itoa(gossip.DefaultPort))
		}
		seeds = append(seeds, j)
	}
	c.Join = seeds
	if c.GossipAddr == "" && len(c.Join) > 0 && len(c.InitialAdvertisePeerURLs) > 0 {
		if u, err := ParseURL(c.InitialAdvertisePeerURLs[0]); err == nil && u.Hostname() != "" {
			c.GossipAddr = net.JoinHostPort(u.Hostname(), strconv.Itoa(gossip.DefaultPort))
		}
	}
}

// validateGossip checks the gossip flags. Called by Validate.
func (c *Config) validateGossip() error {
	if len(c.Join) > 0 && c.InitialCluster != "" {
		return errors.New("--join and --initial-cluster exclude each other: a member started with --join finds the cluster through gossip")
	}
	if len(c.Join) > 0 && c.GossipAddr == "" {
		return errors.New("--join needs --gossip-addr (no peer URL host to default it from)")
	}
	if c.GossipAddr != "" {
		if err := checkHostPort(c.GossipAddr, true); err != nil {
			return fmt.Errorf("--gossip-addr: %w", err)
		}
	}
	for _, j := range c.Join {
		if err := checkHostPort(j, false); err != nil {
			return fmt.Errorf("--join: %w", err)
		}
	}
	if c.GossipKeyFile != "" && c.GossipAddr == "" {
		return errors.New("--gossip-key-file needs --gossip-addr or --join")
	}
	return nil
}

func checkHostPort(s string, emptyHost bool) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q: want host:port", s)
	}
	if host == "" && !emptyHost {
		return fmt.Errorf("%q: a host is required", s)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("%q: bad port", s)
	}
	return nil
}

// readGossipKey reads a base64 memberlist key of 16, 24 or 32 bytes.
func readGossipKey(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("gossip key: %w", err)
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(data)))
	if err != nil {
		return nil, fmt.Errorf("gossip key %s: not base64: %w", path, err)
	}
	if n := len(key); n != 16 && n != 24 && n != 32 {
		return nil, fmt.Errorf("gossip key %s: %d bytes, want 16, 24 or 32", path, n)
	}
	return key, nil
}

// startGossip starts the gossip node when gossip is configured. Its
// metadata gains the member and cluster ids once raft runs.
func (s *Server) startGossip() error {
	if s.cfg.GossipAddr == "" {
		return nil
	}
	var key []byte
	if s.cfg.GossipKeyFile != "" {
		var err error
		if key, err = readGossipKey(s.cfg.GossipKeyFile); err != nil {
			return err
		}
	}
	g, err := gossip.New(gossip.Config{
		Name:      s.cfg.Name,
		BindAddr:  s.cfg.GossipAddr,
		Meta:      gossip.Meta{ClientURLs: s.cfg.AdvertiseClientURLs, PeerURLs: s.cfg.InitialAdvertisePeerURLs},
		SecretKey: key,
		Logger:    s.lg,
		Registry:  s.cfg.Registry,
	})
	if err != nil {
		return err
	}
	if key == nil {
		s.lg.Warn("gossip is not encrypted; keep the gossip port on a trusted network or set --gossip-key-file", "gossip-addr", g.Addr())
	}
	s.gossip = &gossipMember{g: g, nextFetch: map[uint64]time.Time{}, backoff: map[uint64]time.Duration{}}
	return nil
}

// closeGossip leaves gossip and drops the join's client.
func (s *Server) closeGossip() error {
	if s.gossip == nil {
		return nil
	}
	var err error
	if s.gossip.client != nil {
		err = s.gossip.client.Close()
		s.gossip.client = nil
	}
	return errors.Join(err, s.gossip.g.Close())
}

// GossipAddr is the advertised gossip address, "" when gossip is off.
func (s *Server) GossipAddr() string {
	if s.gossip == nil {
		return ""
	}
	return s.gossip.g.Addr()
}

// errPermanent marks a join failure that retrying cannot fix.
type errPermanent struct{ error }

func (e errPermanent) Unwrap() error { return e.error }

// joinCluster finds the cluster through the --join seeds, adds this member
// as a learner (or finds it already added, after a crash) and returns the
// membership raft starts with. It retries until ctx ends.
func (s *Server) joinCluster(ctx context.Context) (*kvserver.Membership, error) {
	g := s.gossip.g
	wait := 200 * time.Millisecond
	pause := func() error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, joinRetryMax)
		return nil
	}
	for {
		n, err := g.Join(s.cfg.Join)
		if err == nil {
			s.lg.Info("joined gossip", "seeds", s.cfg.Join, "answered", n)
			break
		}
		s.lg.Warn("no gossip seed answered; retrying", "seeds", s.cfg.Join, "err", err)
		if err := pause(); err != nil {
			return nil, fmt.Errorf("join %s: %w", strings.Join(s.cfg.Join, ","), err)
		}
	}
	for {
		m, err := s.addSelf(ctx)
		if err == nil {
			return m, nil
		}
		if errors.As(err, new(errPermanent)) {
			return nil, fmt.Errorf("join: %w", err)
		}
		s.lg.Warn("joining the cluster; retrying", "err", err)
		if err := pause(); err != nil {
			return nil, fmt.Errorf("join: %w (last error above)", err)
		}
	}
}

// addSelf makes one attempt to add this member as a learner.
func (s *Server) addSelf(ctx context.Context) (*kvserver.Membership, error) {
	if addr := s.gossip.g.NameConflict(); addr != "" {
		return nil, errPermanent{fmt.Errorf("another node gossips under the name %q (at %s): member names must be unique", s.cfg.Name, addr)}
	}
	endpoints, clusterID, err := s.gossipEndpoints()
	if err != nil {
		return nil, err
	}
	cli, err := s.clusterClient(endpoints)
	if err != nil {
		return nil, err
	}
	keep := false
	defer func() {
		if !keep {
			_ = cli.Close()
		}
	}()
	cctx, cancel := context.WithTimeout(ctx, joinCallTimeout)
	defer cancel()
	list, err := cli.MemberList(cctx)
	if err != nil {
		return nil, classify("member list", err)
	}
	if list.Header.ClusterId != clusterID {
		return nil, fmt.Errorf("member list: cluster %x answered, gossip said %x", list.Header.ClusterId, clusterID)
	}
	peers := slices.Sorted(slices.Values(s.cfg.InitialAdvertisePeerURLs))
	var me *pb.Member
	for _, m := range list.Members {
		mine := slices.ContainsFunc(m.PeerURLs, func(u string) bool { return slices.Contains(peers, u) })
		switch {
		case mine && !slices.Equal(slices.Sorted(slices.Values(m.PeerURLs)), peers):
			return nil, errPermanent{fmt.Errorf("member %x already has peer URLs %v, which overlap --initial-advertise-peer-urls %v", m.ID, m.PeerURLs, peers)}
		case mine && m.Name != "" && m.Name != s.cfg.Name:
			return nil, errPermanent{fmt.Errorf("peer URLs %v belong to member %q (%x)", peers, m.Name, m.ID)}
		case mine && m.Name != "" && !m.IsLearner:
			// It ran as a voter: its data dir is gone, and a voter that
			// forgot its votes and log must not come back.
			return nil, errPermanent{fmt.Errorf("this member (%x) is already a voter but its data dir %s is empty; remove it (etcdctl member remove %x) and start again",
				m.ID, s.cfg.DataDir, m.ID)}
		case mine:
			me = m
		case m.Name == s.cfg.Name:
			return nil, errPermanent{fmt.Errorf("the cluster already has a member named %q (%x) with other peer URLs %v", m.Name, m.ID, m.PeerURLs)}
		}
	}
	members := list.Members
	if me != nil {
		s.lg.Info("this member was added before; reusing it", "member-id", fmt.Sprintf("%x", me.ID))
	} else {
		resp, err := cli.MemberAddAsLearner(cctx, s.cfg.InitialAdvertisePeerURLs)
		if err != nil {
			return nil, classify("member add --learner", err)
		}
		s.lg.Info("added this member to the cluster as a learner", "member-id", fmt.Sprintf("%x", resp.Member.ID),
			"cluster-id", fmt.Sprintf("%x", resp.Header.ClusterId))
		members = resp.Members
		clusterID = resp.Header.ClusterId
	}
	m := &kvserver.Membership{ClusterID: clusterID}
	for _, pm := range members {
		m.Members = append(m.Members, kvserver.Member{ID: pm.ID, Name: pm.Name, PeerURLs: pm.PeerURLs, ClientURLs: pm.ClientURLs, IsLearner: pm.IsLearner})
	}
	keep = true
	s.gossip.client = cli
	return m, nil
}

// classify marks the errors of a join call that retrying cannot fix: bad
// requests and missing permissions (a cluster with auth enabled needs this
// member's client certificate to map to root).
func classify(what string, err error) error {
	code := status.Code(err)
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		code = ee.Code()
	}
	switch code {
	case codes.InvalidArgument, codes.PermissionDenied, codes.Unauthenticated:
		return errPermanent{fmt.Errorf("%s: %w", what, err)}
	}
	return fmt.Errorf("%s: %w", what, err)
}

// gossipEndpoints returns the client URLs of the cluster members gossip
// knows, and the cluster's id.
func (s *Server) gossipEndpoints() ([]string, uint64, error) {
	var urls []string
	clusters := map[uint64][]string{}
	for _, m := range s.gossip.g.Members() {
		if m.Local || m.State != gossip.StateAlive || m.Meta.ClusterID == 0 || m.Meta.MemberID == 0 {
			continue // this member, a dead one, or another member still joining
		}
		clusters[m.Meta.ClusterID] = append(clusters[m.Meta.ClusterID], m.Name)
		urls = append(urls, m.Meta.ClientURLs...)
	}
	if len(clusters) > 1 {
		return nil, 0, errPermanent{fmt.Errorf("the --join seeds reach members of %d different clusters: %v", len(clusters), clusters)}
	}
	var id uint64
	for cid := range clusters {
		id = cid
	}
	if id == 0 || len(urls) == 0 {
		return nil, 0, errors.New("gossip knows no member of a cluster yet")
	}
	return urls, id, nil
}

// clusterClient connects to the cluster's etcd API at urls, with this
// member's client certificate when client TLS is configured, as etcd's own
// clients do. Unix sockets of other machines are left out. Only a TLS
// configuration error is permanent.
func (s *Server) clusterClient(urls []string) (*clientv3.Client, error) {
	secure := s.cfg.ClientTLS.Enabled() || s.cfg.ClientTLS.TrustedCAFile != ""
	var pick, rest []string
	for _, u := range urls {
		switch {
		case strings.HasPrefix(u, "unix"):
		case strings.HasPrefix(u, "https://") == secure:
			pick = append(pick, u)
		default:
			rest = append(rest, u)
		}
	}
	if len(pick) == 0 {
		pick = rest
	}
	if len(pick) == 0 {
		return nil, fmt.Errorf("no usable client URL among %v", urls)
	}
	var tlsCfg *tls.Config
	if secure || slices.ContainsFunc(pick, func(u string) bool { return strings.HasPrefix(u, "https://") }) {
		var err error
		if tlsCfg, err = s.cfg.ClientTLS.ClientConfig(""); err != nil {
			return nil, errPermanent{fmt.Errorf("client TLS: %w", err)}
		}
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   slices.Compact(slices.Sorted(slices.Values(pick))),
		DialTimeout: joinCallTimeout,
		TLS:         tlsCfg,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("connect to %v: %w", pick, err)
	}
	return cli, nil
}

// startGossipLoops publishes the member's ids over gossip and starts the
// upkeep: finding members missing from gossip and, for a member started
// with --join, the promotion. The loops belong to the server's group.
func (s *Server) startGossipLoops() {
	if s.gossip == nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.group.Go(func() error { s.gossipSyncLoop(ctx); return nil }, func(context.Context) error { cancel(); return nil })
	if len(s.cfg.Join) > 0 {
		pctx, pcancel := context.WithCancel(context.Background())
		s.group.Go(func() error { s.promoteLoop(pctx); return nil }, func(context.Context) error { pcancel(); return nil })
	}
}

func (s *Server) gossipSyncLoop(ctx context.Context) {
	g := s.gossip.g
	if err := g.SetMeta(gossip.Meta{ClusterID: s.kv.ClusterID(), MemberID: s.kv.ID(),
		ClientURLs: s.cfg.AdvertiseClientURLs, PeerURLs: s.cfg.InitialAdvertisePeerURLs}); err != nil {
		s.lg.Debug("gossip metadata update not confirmed", "err", err)
	}
	t := time.NewTicker(gossipSyncInterval)
	defer t.Stop()
	for {
		s.syncGossip(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// syncGossip joins the gossip of raft members it does not see (asking each
// for its gossip address over the peer API), rejoins the --join seeds when
// it sees nobody, and forgets departed nodes that raft no longer lists.
func (s *Server) syncGossip(ctx context.Context) {
	gm := s.gossip
	seen := map[uint64]bool{}
	seenName := map[string]bool{}
	others := 0
	for _, m := range gm.g.Members() {
		if m.State == gossip.StateDead || m.State == gossip.StateLeft {
			continue
		}
		seen[m.Meta.MemberID] = true
		seenName[m.Name] = true
		if !m.Local {
			others++
		}
	}
	raft := s.kv.Members()
	var addrs []string
	now := time.Now()
	for _, m := range raft {
		if m.ID == s.kv.ID() || seen[m.ID] || (m.Name != "" && seenName[m.Name]) || now.Before(gm.nextFetch[m.ID]) {
			continue
		}
		addr, err := s.fetchGossipAddr(ctx, m.PeerURLs)
		if err != nil || addr == "" {
			b := min(max(2*gm.backoff[m.ID], gossipSyncInterval), gossipFetchMaxBackoff)
			gm.backoff[m.ID], gm.nextFetch[m.ID] = b, now.Add(b)
			continue
		}
		delete(gm.backoff, m.ID)
		delete(gm.nextFetch, m.ID)
		addrs = append(addrs, addr)
	}
	if others == 0 {
		addrs = append(addrs, s.cfg.Join...)
	}
	if len(addrs) > 0 {
		if n, err := gm.g.Join(addrs); err != nil {
			s.lg.Debug("gossip join failed", "addrs", addrs, "err", err)
		} else {
			s.lg.Debug("gossip joined", "addrs", addrs, "answered", n)
		}
	}
	inRaft := map[uint64]bool{}
	for _, m := range raft {
		inRaft[m.ID] = true
	}
	for _, m := range gm.g.Members() {
		if (m.State == gossip.StateDead || m.State == gossip.StateLeft) && !inRaft[m.Meta.MemberID] {
			gm.g.Forget(m.Name)
		}
	}
	for id := range gm.backoff {
		if !inRaft[id] {
			delete(gm.backoff, id)
			delete(gm.nextFetch, id)
		}
	}
}

// gossipMembership is what a member answers to the peer Membership call:
// the membership record plus its own gossip address, which lets members
// find each other's gossip without naming it in any flag. Older readers
// ignore the extra field.
type gossipMembership struct {
	kvserver.Membership
	GossipAddr string `json:"gossipAddr,omitempty"`
}

func membershipJSON(m kvserver.Membership, gossipAddr string) ([]byte, error) {
	return json.Marshal(gossipMembership{Membership: m, GossipAddr: gossipAddr})
}

// fetchGossipAddr asks a member, over the peer API, for its gossip address.
func (s *Server) fetchGossipAddr(ctx context.Context, peerURLs []string) (string, error) {
	var tlsCfg *tls.Config
	if s.cfg.PeerTLS.Enabled() || s.cfg.PeerTLS.TrustedCAFile != "" {
		var err error
		if tlsCfg, err = s.cfg.PeerTLS.ClientConfig(""); err != nil {
			return "", err
		}
	}
	var errs []error
	for _, u := range peerURLs {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		data, err := transport.FetchMembership(cctx, u, tlsCfg)
		cancel()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var m gossipMembership
		if err := json.Unmarshal(data, &m); err != nil {
			return "", fmt.Errorf("membership from %s: %w", u, err)
		}
		return m.GossipAddr, nil
	}
	return "", errors.Join(errs...)
}

// promoteLoop asks, while this member is a learner, for its promotion,
// until the leader finds it caught up.
func (s *Server) promoteLoop(ctx context.Context) {
	gm := s.gossip
	t := time.NewTicker(promoteInterval)
	defer t.Stop()
	var lastWarn time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		id := s.kv.ID()
		i := slices.IndexFunc(s.kv.Members(), func(m kvserver.Member) bool { return m.ID == id })
		if i < 0 {
			continue // not applied yet
		}
		if !s.kv.Members()[i].IsLearner {
			s.dropJoinClient()
			return
		}
		if gm.client == nil {
			var urls []string
			for _, m := range s.kv.Members() {
				if m.ID != id {
					urls = append(urls, m.ClientURLs...)
				}
			}
			cli, err := s.clusterClient(urls)
			if err != nil {
				continue
			}
			gm.client = cli
		}
		cctx, cancel := context.WithTimeout(ctx, joinCallTimeout)
		_, err := gm.client.MemberPromote(cctx, id)
		cancel()
		switch {
		case err == nil:
			s.lg.Info("promoted this member from learner to voter", "member-id", fmt.Sprintf("%x", id))
			s.dropJoinClient()
			return
		case sameEtcdErr(err, rpctypes.ErrGRPCMemberNotLearner):
			s.dropJoinClient() // promoted by someone else (or --auto-promote-learners)
			return
		case sameEtcdErr(err, rpctypes.ErrGRPCLearnerNotReady):
			// Not caught up yet.
		default:
			if time.Since(lastWarn) > 10*time.Second {
				lastWarn = time.Now()
				s.lg.Warn("promoting this member failed; retrying", "err", err)
			}
		}
	}
}

// dropJoinClient closes the join's client once it is no longer needed.
// Only the promote loop calls it while the server runs; shutdown comes
// after the loop has stopped.
func (s *Server) dropJoinClient() {
	if s.gossip.client != nil {
		_ = s.gossip.client.Close()
		s.gossip.client = nil
	}
}

// sameEtcdErr compares a client error with one of etcd's gRPC errors by
// their description, which is what survives the trip through clientv3.
func sameEtcdErr(err, grpcErr error) bool {
	return err != nil && rpctypes.ErrorDesc(err) == rpctypes.ErrorDesc(grpcErr)
}

// gossipStatusErrors lists the cluster members gossip sees as not alive, for
// the Errors of Status (etcd's StatusResponse has no field of its own for
// member health).
func (s *Server) gossipStatusErrors() []string {
	if s.gossip == nil || s.kv == nil {
		return nil
	}
	byID := map[uint64]gossip.Member{}
	byName := map[string]gossip.Member{}
	for _, m := range s.gossip.g.Members() {
		if m.Meta.MemberID != 0 {
			byID[m.Meta.MemberID] = m
		}
		byName[m.Name] = m
	}
	var out []string
	for _, m := range s.kv.Members() {
		gm, ok := byID[m.ID]
		if !ok && m.Name != "" {
			gm, ok = byName[m.Name]
		}
		if !ok || gm.State == gossip.StateAlive {
			continue // healthy, or not running gossip
		}
		name := m.Name
		if name == "" {
			name = fmt.Sprintf("%x", m.ID)
		}
		out = append(out, fmt.Sprintf("gossip: member %s %s", name, gm.State))
	}
	return out
}
