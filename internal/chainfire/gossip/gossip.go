// Package gossip runs SWIM gossip (github.com/hashicorp/memberlist) between
// Chainfire members. Gossip finds the cluster for a member started with
// --join and tells every member how healthy the others look; it never
// decides membership, which stays with raft.
//
// Each node is named after its member and carries a small metadata record
// (cluster id, member id, client and peer URLs) that the others read to
// reach the cluster's etcd API. The gossip port carries no authentication
// unless a secret key is configured, so it belongs on a trusted network.
package gossip

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"
)

// DefaultPort is the platform's gossip port.
const DefaultPort = 2381

// Defaults of Config.
const (
	DefaultProbeInterval = time.Second
	DefaultDeadRetention = time.Hour
)

// broadcastTimeout bounds the waits for a metadata update or a leave
// message to go out; a member that cannot reach anyone must still stop.
const broadcastTimeout = time.Second

// Config configures one gossip node.
type Config struct {
	// Name is the node name: the member name, unique in the cluster.
	Name string
	// BindAddr is host:port to listen on (TCP and UDP). Port 0 picks a free
	// port. An unspecified host (0.0.0.0) advertises a private address of
	// this machine; a name is resolved once.
	BindAddr string
	// Meta is the initial metadata; SetMeta changes it.
	Meta Meta
	// SecretKey, when set (16, 24 or 32 bytes), encrypts and authenticates
	// all gossip; every node must have the same key.
	SecretKey []byte
	// ProbeInterval is how often a node probes another; timeouts and gossip
	// rates scale with it. Default 1s, suited to a LAN.
	ProbeInterval time.Duration
	// DeadRetention is how long a dead or departed node stays listed.
	// Default 1h.
	DeadRetention time.Duration
	// Logger receives memberlist's messages. Default slog.Default().
	Logger *slog.Logger
	// Registry, when set, receives the gossip metrics.
	Registry *prometheus.Registry
}

// State is a node's health as this node sees it.
type State int

// Node states. Suspect is derived here: memberlist still lists the node as
// alive but this node's own probes have gone unanswered for several probe
// rounds (memberlist does not expose its internal suspicion).
const (
	StateAlive State = iota
	StateSuspect
	StateDead
	StateLeft
)

func (s State) String() string {
	switch s {
	case StateAlive:
		return "alive"
	case StateSuspect:
		return "suspect"
	case StateDead:
		return "dead"
	case StateLeft:
		return "left"
	}
	return "unknown"
}

// Member is one node as this node sees it.
type Member struct {
	Name string
	// Addr is the node's gossip address, host:port.
	Addr  string
	Meta  Meta
	State State
	// Since is when the node entered State (as far as this node can tell).
	Since time.Time
	// Local is true for this node itself.
	Local bool
}

// Gossip is a running gossip node.
type Gossip struct {
	cfg       Config
	lg        *slog.Logger
	ml        *memberlist.Memberlist
	addr      string
	collector *collector

	mu      sync.Mutex
	meta    Meta
	leaving bool
	nodes   map[string]*node
	// conflict is the address of another node that claims this node's name.
	conflict string

	closeOnce sync.Once
	closeErr  error
	// stopping is set once Close begins; memberlist's goroutines that are
	// still finishing then fail to send, which is no news.
	stopping atomic.Bool
}

// node is this node's record of another (or itself).
type node struct {
	addr    string
	meta    Meta
	leaving bool
	gone    bool      // memberlist declared it dead or left
	since   time.Time // last change of gone
	heard   time.Time // last join/update event or answered probe
}

// New starts a gossip node listening on cfg.BindAddr. It knows only itself
// until Join.
func New(cfg Config) (*Gossip, error) {
	if cfg.Name == "" {
		return nil, errors.New("gossip: a node name is required")
	}
	if cfg.ProbeInterval <= 0 {
		cfg.ProbeInterval = DefaultProbeInterval
	}
	if cfg.DeadRetention <= 0 {
		cfg.DeadRetention = DefaultDeadRetention
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	host, port, err := splitAddr(cfg.BindAddr)
	if err != nil {
		return nil, err
	}
	g := &Gossip{cfg: cfg, lg: cfg.Logger, meta: cfg.Meta, nodes: map[string]*node{}}

	mc := memberlist.DefaultLANConfig()
	mc.Name = cfg.Name
	mc.BindAddr = host
	mc.BindPort = port
	mc.AdvertisePort = port
	if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
		mc.AdvertiseAddr = host
	}
	// Everything scales with the probe interval; the ratios are memberlist's
	// LAN defaults, with a shorter push/pull period because clusters are small.
	p := cfg.ProbeInterval
	mc.ProbeInterval = p
	mc.ProbeTimeout = p / 2
	mc.GossipInterval = p / 5
	mc.PushPullInterval = 15 * p
	mc.GossipToTheDeadTime = 15 * p
	mc.TCPTimeout = max(10*p, time.Second)
	// A member restarted on another address (a crash, then new ports) may
	// take its name back once the old incarnation has been dead a while.
	mc.DeadNodeReclaimTime = 5 * p
	mc.SecretKey = cfg.SecretKey
	d := &delegate{g: g}
	mc.Delegate = d
	mc.Events = d
	mc.Ping = d
	mc.Conflict = d
	mc.Logger = log.New(logWriter{lg: cfg.Logger.With("component", "gossip"), stopping: &g.stopping}, "", 0)

	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("gossip: listen on %s: %w", cfg.BindAddr, err)
	}
	g.ml = ml
	g.addr = ml.LocalNode().Address()
	if cfg.Registry != nil {
		g.collector = newCollector(g)
		if err := cfg.Registry.Register(g.collector); err != nil {
			_ = ml.Shutdown()
			return nil, fmt.Errorf("gossip: register metrics: %w", err)
		}
	}
	g.lg.Info("gossip listening", "name", cfg.Name, "addr", g.addr, "encrypted", len(cfg.SecretKey) > 0)
	return g, nil
}

// splitAddr parses host:port, resolving a host name to one address
// (memberlist binds IP addresses only).
func splitAddr(addr string) (string, int, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("gossip: address %q: %w", addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("gossip: address %q: bad port", addr)
	}
	if host == "" {
		return "0.0.0.0", port, nil
	}
	if net.ParseIP(host) != nil {
		return host, port, nil
	}
	ips, err := net.LookupIP(host)
	if err != nil || len(ips) == 0 {
		return "", 0, fmt.Errorf("gossip: resolve %q: %w", host, err)
	}
	// Prefer IPv4: "localhost" should bind where its peers dial.
	slices.SortStableFunc(ips, func(a, b net.IP) int {
		return boolInt(a.To4() == nil) - boolInt(b.To4() == nil)
	})
	return ips[0].String(), port, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Addr is this node's advertised gossip address, host:port.
func (g *Gossip) Addr() string { return g.addr }

// Name is this node's name.
func (g *Gossip) Name() string { return g.cfg.Name }

// Join contacts the seeds (host:port) and merges state with every one that
// answers. It returns how many answered; the error is set only when none did.
func (g *Gossip) Join(seeds []string) (int, error) {
	n, err := g.ml.Join(seeds)
	if err != nil && n == 0 {
		return 0, fmt.Errorf("gossip: join %s: %w", strings.Join(seeds, ","), err)
	}
	return n, nil
}

// SetMeta replaces this node's metadata and spreads it, waiting briefly for
// the update to go out.
func (g *Gossip) SetMeta(m Meta) error {
	g.mu.Lock()
	g.meta = m
	g.mu.Unlock()
	if err := g.ml.UpdateNode(broadcastTimeout); err != nil {
		return fmt.Errorf("gossip: update metadata: %w", err)
	}
	return nil
}

// Members lists every node this node knows, itself included, sorted by name.
func (g *Gossip) Members() []Member {
	// Probes back off while this node is itself slow; so does suspicion.
	slow := time.Duration(g.ml.GetHealthScore() + 1)
	now := time.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	others := 0
	for name, n := range g.nodes {
		if n.gone && now.Sub(n.since) > g.cfg.DeadRetention {
			delete(g.nodes, name)
			continue
		}
		if !n.gone && name != g.cfg.Name {
			others++
		}
	}
	// memberlist probes one node per interval in a shuffled round, so an
	// alive node is probed at least every 2*others-1 intervals.
	suspectAfter := slow*g.cfg.ProbeInterval*time.Duration(2*others+1) + g.cfg.ProbeInterval/2
	out := make([]Member, 0, len(g.nodes))
	for name, n := range g.nodes {
		m := Member{Name: name, Addr: n.addr, Meta: cloneMeta(n.meta), State: StateAlive, Since: n.since, Local: name == g.cfg.Name}
		switch {
		case n.gone && n.leaving:
			m.State = StateLeft
		case n.gone:
			m.State = StateDead
		case !m.Local && now.Sub(n.heard) > suspectAfter:
			m.State = StateSuspect
			m.Since = n.heard.Add(suspectAfter)
		}
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// NameConflict returns the address of another node that gossips under
// this node's name, "" if none was seen. Names must be unique: memberlist
// keeps the first node and ignores the other.
func (g *Gossip) NameConflict() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.conflict
}

// Forget drops a node that is dead or has left from the list, for a
// member that was removed from the cluster. An alive node stays.
func (g *Gossip) Forget(name string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if n, ok := g.nodes[name]; ok && n.gone {
		delete(g.nodes, name)
	}
}

// Close announces that this node leaves, then stops gossiping. memberlist
// lets a probe or connection that is under way finish on its own, within
// one probe interval or TCP timeout.
func (g *Gossip) Close() error {
	g.closeOnce.Do(func() {
		g.stopping.Store(true)
		g.mu.Lock()
		g.leaving = true
		g.mu.Unlock()
		// Best effort: the others see "left" instead of "dead".
		if err := g.ml.UpdateNode(broadcastTimeout); err != nil {
			g.lg.Debug("gossip: leaving flag not spread", "err", err)
		}
		if err := g.ml.Leave(broadcastTimeout); err != nil {
			g.lg.Debug("gossip: leave not spread", "err", err)
		}
		g.closeErr = g.ml.Shutdown()
		if g.collector != nil {
			g.cfg.Registry.Unregister(g.collector)
		}
	})
	return g.closeErr
}

func cloneMeta(m Meta) Meta {
	m.ClientURLs = slices.Clone(m.ClientURLs)
	m.PeerURLs = slices.Clone(m.PeerURLs)
	return m
}

// delegate receives memberlist's callbacks. memberlist calls most of them
// with its node lock held: they only touch the Gossip's own table and must
// never call back into memberlist.
type delegate struct{ g *Gossip }

// NodeMeta encodes this node's metadata.
func (d *delegate) NodeMeta(limit int) []byte {
	d.g.mu.Lock()
	m, leaving := d.g.meta, d.g.leaving
	d.g.mu.Unlock()
	b, dropped := encodeMeta(m, leaving, limit)
	if dropped > 0 {
		d.g.lg.Warn("gossip: URLs left out of the node metadata, which is limited in size", "dropped", dropped, "limit", limit)
	}
	return b
}

// Chainfire sends no user messages and no extra push/pull state.
func (d *delegate) NotifyMsg([]byte)                           {}
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *delegate) LocalState(join bool) []byte                { return nil }
func (d *delegate) MergeRemoteState(buf []byte, join bool)     {}

func (d *delegate) NotifyJoin(n *memberlist.Node)   { d.update(n, false) }
func (d *delegate) NotifyUpdate(n *memberlist.Node) { d.update(n, false) }
func (d *delegate) NotifyLeave(n *memberlist.Node)  { d.update(n, true) }

func (d *delegate) update(n *memberlist.Node, gone bool) {
	meta, leaving, err := decodeMeta(n.Meta)
	if err != nil {
		d.g.lg.Debug("gossip: unreadable node metadata", "node", n.Name, "err", err)
	}
	now := time.Now()
	d.g.mu.Lock()
	defer d.g.mu.Unlock()
	e := d.g.nodes[n.Name]
	if e == nil {
		e = &node{since: now}
		d.g.nodes[n.Name] = e
	}
	if e.gone != gone {
		e.since = now
	}
	e.addr = n.Address()
	e.gone = gone
	e.heard = now
	if err == nil {
		e.meta, e.leaving = meta, leaving
	}
}

// NotifyConflict records another node claiming this node's name
// (memberlist logs every conflict itself).
func (d *delegate) NotifyConflict(existing, other *memberlist.Node) {
	if existing.Name != d.g.cfg.Name {
		return
	}
	d.g.mu.Lock()
	defer d.g.mu.Unlock()
	d.g.conflict = other.Address()
}

// AckPayload adds nothing to probe acks.
func (d *delegate) AckPayload() []byte { return nil }

// NotifyPingComplete records that a node answered this node's probe.
func (d *delegate) NotifyPingComplete(other *memberlist.Node, rtt time.Duration, payload []byte) {
	d.g.mu.Lock()
	defer d.g.mu.Unlock()
	if e := d.g.nodes[other.Name]; e != nil && !e.gone {
		e.heard = time.Now()
	}
}

// logWriter routes memberlist's log lines ("[LEVEL] memberlist: msg") to
// slog. Once the node is stopping, everything is debug.
type logWriter struct {
	lg       *slog.Logger
	stopping *atomic.Bool
}

func (w logWriter) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	level := slog.LevelInfo
	if rest, ok := strings.CutPrefix(msg, "["); ok {
		if tag, after, ok := strings.Cut(rest, "]"); ok {
			msg = strings.TrimSpace(after)
			switch tag {
			case "DEBUG", "TRACE":
				level = slog.LevelDebug
			case "WARN", "ERR", "ERROR":
				// memberlist reports other nodes' failures as errors; for
				// this member they are warnings (health is reported apart).
				level = slog.LevelWarn
			}
		}
	}
	msg = strings.TrimPrefix(msg, "memberlist: ")
	if w.stopping != nil && w.stopping.Load() {
		level = slog.LevelDebug
	}
	w.lg.Log(context.Background(), level, msg)
	return len(p), nil
}
