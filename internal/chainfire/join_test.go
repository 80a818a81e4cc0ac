package chainfire

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/photoncloud/photoncloud/internal/chainfire/gossip"
	"github.com/photoncloud/photoncloud/internal/platform/testcerts"
)

// eventually polls cond until it returns nil or within passes.
func eventually(t testing.TB, what string, within time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, within, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// joinerConfig is a member that knows nothing but a gossip seed.
func (c *testCluster) joinerConfig(name string, seed string) Config {
	return Config{
		Name:              name,
		DataDir:           filepath.Join(c.t.TempDir(), name),
		ListenClientURLs:  []string{fmt.Sprintf("http://127.0.0.1:%d", freePort(c.t))},
		ListenPeerURLs:    []string{fmt.Sprintf("http://127.0.0.1:%d", freePort(c.t))},
		ListenHTTPURLs:    []string{},
		HeartbeatInterval: 20 * time.Millisecond,
		ElectionTimeout:   200 * time.Millisecond,
		GossipAddr:        "127.0.0.1:0",
		Join:              []string{seed},
		Logger:            slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

// startJoiner starts cfg as the cluster's next member (closed at the end
// of the test) and returns its index.
func (c *testCluster) startJoiner(ctx context.Context, cfg Config) int {
	c.t.Helper()
	s, err := Start(ctx, cfg)
	if err != nil {
		c.t.Fatalf("start %s with --join: %v", cfg.Name, err)
	}
	c.cfgs = append(c.cfgs, cfg)
	c.members = append(c.members, s)
	return len(c.members) - 1
}

// voters waits until member i's list has n members, all voters, and
// returns the list.
func (c *testCluster) waitVoters(ctx context.Context, i, n int) *clientv3.MemberListResponse {
	c.t.Helper()
	var ml *clientv3.MemberListResponse
	eventually(c.t, fmt.Sprintf("%d voters", n), 20*time.Second, func() error {
		var err error
		if ml, err = c.client(i).MemberList(ctx); err != nil {
			return err
		}
		voters := 0
		for _, m := range ml.Members {
			if !m.IsLearner {
				voters++
			}
		}
		if len(ml.Members) != n || voters != n {
			return fmt.Errorf("%d members, %d voters: %v", len(ml.Members), voters, ml.Members)
		}
		return nil
	})
	return ml
}

// gossipErrors returns the gossip entries of member i's Status errors.
func (c *testCluster) gossipErrors(ctx context.Context, i int) ([]string, error) {
	st, err := c.client(i).Status(ctx, c.members[i].ClientAddr())
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range st.Errors {
		if strings.HasPrefix(e, "gossip:") {
			out = append(out, e)
		}
	}
	return out, nil
}

// TestJoinThroughGossip: a three-member cluster whose members run gossip
// (and find each other's gossip through raft alone); a fourth member
// started with only --join adds itself as a learner, catches up, promotes
// itself and serves the same data. Its restart does not add it again; a
// stopped member shows in Status and in the gossip metrics; a member whose
// learner entry was added before it first started (a crash after the add)
// reuses that entry.
func TestJoinThroughGossip(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *Config) { cfg.GossipAddr = "127.0.0.1:0" })
	lead := c.leader()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for i := range 20 {
		if _, err := c.client(lead).Put(ctx, fmt.Sprintf("pre/%02d", i), "v"); err != nil {
			t.Fatal(err)
		}
	}
	// The static members find each other's gossip without any seed flag.
	for i := range 3 {
		g := c.members[i].gossip.g
		eventually(t, fmt.Sprintf("member %d sees the others over gossip", i), 20*time.Second, func() error {
			alive := 0
			for _, m := range g.Members() {
				if m.State == gossip.StateAlive && m.Meta.MemberID != 0 {
					alive++
				}
			}
			if alive != 3 {
				return fmt.Errorf("gossip members %+v", g.Members())
			}
			return nil
		})
	}

	reg := prometheus.NewRegistry()
	var joinLog syncBuffer
	cfg := c.joinerConfig("m3", c.members[(lead+1)%3].GossipAddr())
	cfg.Registry = reg
	cfg.Logger = slog.New(slog.NewTextHandler(&joinLog, nil))
	j := c.startJoiner(ctx, cfg)
	ml := c.waitVoters(ctx, lead, 4)
	var id uint64
	for _, m := range ml.Members {
		if m.Name == "m3" {
			id = m.ID
		}
	}
	if id == 0 || id != c.members[j].KV().ID() {
		t.Fatalf("joiner has id %x, member list says %x: %v", c.members[j].KV().ID(), id, ml.Members)
	}
	got, err := c.client(j).Get(ctx, "pre/", clientv3.WithPrefix())
	if err != nil || got.Count != 20 {
		t.Fatalf("read through the joined member: %v %v", got, err)
	}
	if _, err := c.client(j).Put(ctx, "post", "x"); err != nil {
		t.Fatalf("write through the joined member: %v", err)
	}
	c.waitConverged(ctx, 15*time.Second)
	for i := range c.members {
		eventually(t, fmt.Sprintf("member %d reports every member healthy", i), 20*time.Second, func() error {
			errs, err := c.gossipErrors(ctx, i)
			if err == nil && len(errs) > 0 {
				err = fmt.Errorf("%v", errs)
			}
			return err
		})
	}
	eventually(t, "gossip metrics on the joined member", 10*time.Second, func() error {
		got := map[string]float64{}
		mfs, err := reg.Gather()
		if err != nil {
			return err
		}
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					got[mf.GetName()+"/"+l.GetValue()] = m.GetGauge().GetValue()
				}
			}
		}
		want := map[string]float64{
			"chainfire_gossip_members/alive": 4, "chainfire_gossip_members/suspect": 0,
			"chainfire_gossip_members/dead": 0, "chainfire_gossip_members/left": 0,
			"chainfire_gossip_member_healthy/m0": 1, "chainfire_gossip_member_healthy/m1": 1,
			"chainfire_gossip_member_healthy/m2": 1, "chainfire_gossip_member_healthy/m3": 1,
		}
		for k, v := range want {
			if g, ok := got[k]; !ok || g != v {
				return fmt.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
			}
		}
		return nil
	})
	if n := strings.Count(joinLog.String(), "added this member to the cluster as a learner"); n != 1 {
		t.Fatalf("the joiner logged %d adds:\n%s", n, joinLog.String())
	}

	// A stopped member is reported by the others' Status.
	c.stop(j)
	eventually(t, "Status reports the stopped member", 20*time.Second, func() error {
		errs, err := c.gossipErrors(ctx, lead)
		if err != nil {
			return err
		}
		if len(errs) != 1 || errs[0] != "gossip: member m3 left" {
			return fmt.Errorf("gossip errors %q", errs)
		}
		return nil
	})

	// The restart finds its data and does not add itself again.
	c.start(j)
	if got := c.members[j].KV().ID(); got != id {
		t.Fatalf("restarted joiner has id %x, want %x", got, id)
	}
	if n := strings.Count(joinLog.String(), "added this member to the cluster as a learner"); n != 1 {
		t.Fatalf("after the restart the joiner logged %d adds", n)
	}
	c.waitVoters(ctx, lead, 4)
	eventually(t, "the restarted member is healthy again", 20*time.Second, func() error {
		errs, err := c.gossipErrors(ctx, lead)
		if err == nil && len(errs) > 0 {
			err = fmt.Errorf("%v", errs)
		}
		return err
	})

	// A learner entry added before its member ever ran is reused.
	cfg5 := c.joinerConfig("m4", c.members[j].GossipAddr())
	add, err := c.client(lead).MemberAddAsLearner(ctx, cfg5.ListenPeerURLs)
	if err != nil {
		t.Fatal(err)
	}
	k := c.startJoiner(ctx, cfg5)
	if got := c.members[k].KV().ID(); got != add.Member.ID {
		t.Fatalf("m4 took id %x, want the added %x", got, add.Member.ID)
	}
	c.waitVoters(ctx, lead, 5)
}

// TestJoinRefusesTakenName: a member whose name already belongs to another
// member is refused before anything is added.
func TestJoinRefusesTakenName(t *testing.T) {
	c := newTestCluster(t, 1, func(cfg *Config) { cfg.GossipAddr = "127.0.0.1:0" })
	c.leader()
	eventually(t, "gossip metadata with the member id", 10*time.Second, func() error {
		for _, m := range c.members[0].gossip.g.Members() {
			if m.Meta.MemberID == 0 {
				return fmt.Errorf("%+v", m)
			}
		}
		return nil
	})
	ctx := ctxFor(t)
	cfg := c.joinerConfig("m0", c.members[0].GossipAddr())
	if s, err := Start(ctx, cfg); err == nil {
		_ = s.Close()
		t.Fatal("a member with a taken name joined")
	} else if !strings.Contains(err.Error(), `gossips under the name "m0"`) {
		t.Fatalf("join with a taken name: %v", err)
	}
	ml, err := c.client(0).MemberList(ctx)
	if err != nil || len(ml.Members) != 1 {
		t.Fatalf("member list after the refused join: %v %v", ml, err)
	}
}

func TestGossipConfig(t *testing.T) {
	base := func() Config {
		return Config{Name: "n", ListenPeerURLs: []string{"http://10.1.2.3:2380"}, Logger: slog.New(slog.DiscardHandler)}
	}
	c := base()
	c.Join = []string{"seed1", " seed2:7000 ", "", "[::1]"}
	c.EnsureDefaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.Join, ","); got != "seed1:2381,seed2:7000,[::1]:2381" {
		t.Errorf("seeds %q", got)
	}
	if c.GossipAddr != "10.1.2.3:2381" || c.InitialCluster != "" {
		t.Errorf("gossip addr %q, initial cluster %q", c.GossipAddr, c.InitialCluster)
	}

	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key")
	if err := os.WriteFile(keyFile, []byte(base64.StdEncoding.EncodeToString(make([]byte, 32))+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if key, err := readGossipKey(keyFile); err != nil || len(key) != 32 {
		t.Errorf("read key: %d bytes, %v", len(key), err)
	}
	if err := os.WriteFile(keyFile, []byte(base64.StdEncoding.EncodeToString(make([]byte, 20))), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readGossipKey(keyFile); err == nil || !strings.Contains(err.Error(), "20 bytes") {
		t.Errorf("20-byte key: %v", err)
	}

	c = base()
	c.EnsureDefaults()
	if c.GossipAddr != "" {
		t.Errorf("gossip on by default: %q", c.GossipAddr)
	}

	for _, tc := range []struct {
		tweak func(*Config)
		want  string
	}{
		{func(c *Config) { c.Join = []string{"s"}; c.InitialCluster = "n=http://10.1.2.3:2380" }, "exclude each other"},
		{func(c *Config) { c.GossipAddr = "nohost" }, "--gossip-addr"},
		{func(c *Config) { c.GossipAddr = "127.0.0.1:x" }, "bad port"},
		{func(c *Config) { c.Join = []string{":2381"} }, "a host is required"},
		{func(c *Config) { c.GossipKeyFile = "/k" }, "--gossip-key-file needs"},
	} {
		c := base()
		tc.tweak(&c)
		c.EnsureDefaults()
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate: %v, want %q", err, tc.want)
		}
	}
}

// TestJoinWithClientTLS: the join talks to the cluster's TLS client
// listeners, which require client certificates, with the member's own
// certificate.
func TestJoinWithClientTLS(t *testing.T) {
	certs := testcerts.New(t)
	tlsFiles := TLSFiles{CertFile: certs.ServerCertFile, KeyFile: certs.ServerKeyFile, TrustedCAFile: certs.CAFile, ClientCertAuth: true}
	secure := func(cfg *Config) {
		cfg.ClientTLS = tlsFiles
		cfg.ListenClientURLs = []string{strings.Replace(cfg.ListenClientURLs[0], "http://", "https://", 1)}
	}
	c := newTestCluster(t, 1, func(cfg *Config) { cfg.GossipAddr = "127.0.0.1:0"; secure(cfg) })
	c.leader()
	ctx := ctxFor(t)
	cfg := c.joinerConfig("tls", c.members[0].GossipAddr())
	secure(&cfg)
	j := c.startJoiner(ctx, cfg)
	eventually(t, "the TLS joiner becomes a voter", 15*time.Second, func() error {
		ms := c.members[0].KV().Members()
		if len(ms) != 2 || ms[0].IsLearner || ms[1].IsLearner {
			return fmt.Errorf("members %+v", ms)
		}
		return nil
	})
	if c.members[j].KV().Leader() == 0 {
		t.Fatal("the joiner has no leader")
	}
}
