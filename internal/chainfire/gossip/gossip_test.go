package gossip

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
)

// TestMain fails the package if goroutines outlive the tests. memberlist
// lets a probe under way finish after Shutdown, so the check waits a while.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		var err error
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if err = goleak.Find(); err == nil {
				break
			}
		}
		if err != nil {
			fmt.Println("goroutines leaked:", err)
			code = 1
		}
	}
	os.Exit(code)
}

const testProbe = 200 * time.Millisecond

func newNode(t *testing.T, name string, reg *prometheus.Registry) *Gossip {
	t.Helper()
	g, err := New(Config{
		Name:          name,
		BindAddr:      "127.0.0.1:0",
		Meta:          Meta{ClusterID: 7, ClientURLs: []string{"http://127.0.0.1:1/" + name}, PeerURLs: []string{"http://127.0.0.1:2/" + name}},
		ProbeInterval: testProbe,
		Logger:        slog.New(slog.DiscardHandler),
		Registry:      reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close() })
	return g
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, within time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v; last: %s", what, within, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func states(ms []Member) string {
	var parts []string
	for _, m := range ms {
		parts = append(parts, fmt.Sprintf("%s=%s(id %d)", m.Name, m.State, m.Meta.MemberID))
	}
	return strings.Join(parts, " ")
}

func find(ms []Member, name string) (Member, bool) {
	i := slices.IndexFunc(ms, func(m Member) bool { return m.Name == name })
	if i < 0 {
		return Member{}, false
	}
	return ms[i], true
}

// TestJoinMetadataAndFailure: three nodes find each other through one seed
// each, metadata (and its updates) reaches everyone, a node that stops
// without leaving is reported suspect and then dead, and a node that closes
// is reported as left.
func TestJoinMetadataAndFailure(t *testing.T) {
	reg := prometheus.NewRegistry()
	n0 := newNode(t, "n0", reg)
	n1 := newNode(t, "n1", nil)
	n2 := newNode(t, "n2", nil)
	if _, err := n1.Join([]string{n0.Addr()}); err != nil {
		t.Fatal(err)
	}
	if _, err := n2.Join([]string{n1.Addr()}); err != nil {
		t.Fatal(err)
	}
	nodes := []*Gossip{n0, n1, n2}
	for _, g := range nodes {
		waitFor(t, g.Name()+" sees three alive nodes", 10*time.Second, func() (bool, string) {
			ms := g.Members()
			alive := 0
			for _, m := range ms {
				if m.State == StateAlive && m.Meta.ClusterID == 7 && m.Meta.ClientURLs[0] == "http://127.0.0.1:1/"+m.Name {
					alive++
				}
			}
			return alive == 3, states(ms)
		})
	}
	if m, _ := find(n2.Members(), "n0"); m.Addr != n0.Addr() || m.Meta.PeerURLs[0] != "http://127.0.0.1:2/n0" || m.Local {
		t.Fatalf("n0 as n2 sees it: %+v", m)
	}
	if m, _ := find(n2.Members(), "n2"); !m.Local {
		t.Fatalf("n2 does not see itself as local: %+v", m)
	}

	// The member id becomes known later, as it does for a joining member.
	if err := n0.SetMeta(Meta{ClusterID: 7, MemberID: 42, ClientURLs: []string{"http://127.0.0.1:1/n0"}}); err != nil {
		t.Fatal(err)
	}
	for _, g := range nodes[1:] {
		waitFor(t, g.Name()+" sees n0's member id", 10*time.Second, func() (bool, string) {
			m, _ := find(g.Members(), "n0")
			return m.Meta.MemberID == 42 && len(m.Meta.PeerURLs) == 0, states(g.Members())
		})
	}

	// n2 crashes: no leave message, memberlist has to find out by probing.
	_ = n2.ml.Shutdown()
	n2.closeOnce.Do(func() {}) // memberlist panics on Leave after Shutdown
	sawSuspect := false
	for _, g := range nodes[:2] {
		waitFor(t, g.Name()+" sees n2 dead", 15*time.Second, func() (bool, string) {
			m, _ := find(g.Members(), "n2")
			sawSuspect = sawSuspect || m.State == StateSuspect
			return m.State == StateDead, states(g.Members())
		})
	}
	t.Logf("suspect state observed before dead: %v", sawSuspect)

	// n1 leaves properly.
	if err := n1.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "n0 sees n1 left", 10*time.Second, func() (bool, string) {
		m, _ := find(n0.Members(), "n1")
		return m.State == StateLeft, states(n0.Members())
	})

	got := gather(t, reg)
	if !strings.Contains(got, "chainfire_gossip_health_score ") {
		t.Errorf("no health score metric:\n%s", got)
	}
	for _, want := range []string{
		`chainfire_gossip_members{state="alive"} 1`,
		`chainfire_gossip_members{state="dead"} 1`,
		`chainfire_gossip_members{state="left"} 1`,
		`chainfire_gossip_members{state="suspect"} 0`,
		`chainfire_gossip_member_healthy{member="n0"} 1`,
		`chainfire_gossip_member_healthy{member="n1"} 0`,
		`chainfire_gossip_member_healthy{member="n2"} 0`,
	} {
		if !strings.Contains(got, want+"\n") {
			t.Errorf("metrics lack %q:\n%s", want, got)
		}
	}

	n0.Forget("n1")
	n0.Forget("n0") // alive: stays
	if _, ok := find(n0.Members(), "n1"); ok {
		t.Fatal("n1 still listed after Forget")
	}
	if _, ok := find(n0.Members(), "n0"); !ok {
		t.Fatal("Forget dropped an alive node")
	}
	if err := n0.Close(); err != nil {
		t.Fatal(err)
	}
	if got := gather(t, reg); strings.Contains(got, "chainfire_gossip") {
		t.Fatalf("metrics still registered after Close:\n%s", got)
	}
}

// TestSuspectWithoutAcks: a node that memberlist still lists but that has
// not answered this node's probes for several rounds is suspect.
func TestSuspectWithoutAcks(t *testing.T) {
	n0 := newNode(t, "n0", nil)
	n1 := newNode(t, "n1", nil)
	if _, err := n1.Join([]string{n0.Addr()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "n0 sees n1", 10*time.Second, func() (bool, string) {
		m, ok := find(n0.Members(), "n1")
		return ok && m.State == StateAlive, states(n0.Members())
	})
	n0.mu.Lock()
	n0.nodes["n1"].heard = time.Now().Add(-time.Hour)
	n0.mu.Unlock()
	if m, _ := find(n0.Members(), "n1"); m.State != StateSuspect {
		t.Fatalf("n1 unheard for an hour is %s, want suspect", m.State)
	}
	// The next answered probe makes it alive again.
	waitFor(t, "n1 alive again", 10*time.Second, func() (bool, string) {
		m, _ := find(n0.Members(), "n1")
		return m.State == StateAlive, states(n0.Members())
	})
}

// TestNameConflict: a node that joins under a name already taken is told so.
func TestNameConflict(t *testing.T) {
	a := newNode(t, "same", nil)
	b := newNode(t, "same", nil)
	_, _ = b.Join([]string{a.Addr()})
	waitFor(t, "conflict seen by the newcomer", 10*time.Second, func() (bool, string) {
		return b.NameConflict() == a.Addr(), b.NameConflict()
	})
	if c := newNode(t, "other", nil); c.NameConflict() != "" {
		t.Fatalf("conflict without one: %q", c.NameConflict())
	}
}

func TestNewErrors(t *testing.T) {
	for _, cfg := range []Config{
		{BindAddr: "127.0.0.1:0"},
		{Name: "x", BindAddr: "127.0.0.1"},
		{Name: "x", BindAddr: "127.0.0.1:99999"},
		{Name: "x", BindAddr: "127.0.0.1:0", SecretKey: []byte("short")},
	} {
		cfg.Logger = slog.New(slog.DiscardHandler)
		if g, err := New(cfg); err == nil {
			_ = g.Close()
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
	// Two nodes on one registry would report each other's metrics.
	reg := prometheus.NewRegistry()
	newNode(t, "a", reg)
	if g, err := New(Config{Name: "b", BindAddr: "127.0.0.1:0", Registry: reg, Logger: slog.New(slog.DiscardHandler)}); err == nil {
		_ = g.Close()
		t.Fatal("second node on one registry accepted")
	}
}

// TestEncryptedGossip: nodes with the same key talk; a node without it
// cannot join.
func TestEncryptedGossip(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	mk := func(name string, key []byte) *Gossip {
		g, err := New(Config{Name: name, BindAddr: "127.0.0.1:0", SecretKey: key, ProbeInterval: testProbe, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = g.Close() })
		return g
	}
	a, b, c := mk("a", key), mk("b", key), mk("c", nil)
	if _, err := b.Join([]string{a.Addr()}); err != nil {
		t.Fatalf("join with the key: %v", err)
	}
	if _, err := c.Join([]string{a.Addr()}); err == nil {
		t.Fatal("a node without the key joined")
	}
}

func TestMetaEncoding(t *testing.T) {
	m := Meta{ClusterID: 1 << 60, MemberID: 12345, ClientURLs: []string{"https://10.0.0.1:2379", "unix:///x"}, PeerURLs: []string{"http://10.0.0.1:2380"}}
	b, dropped := encodeMeta(m, true, 512)
	if dropped != 0 {
		t.Fatalf("dropped %d", dropped)
	}
	got, leaving, err := decodeMeta(b)
	if err != nil || !leaving || got.ClusterID != m.ClusterID || got.MemberID != m.MemberID ||
		!slices.Equal(got.ClientURLs, m.ClientURLs) || !slices.Equal(got.PeerURLs, m.PeerURLs) {
		t.Fatalf("round trip: %+v %v %v", got, leaving, err)
	}
	// A later version may append fields; this version reads its own.
	b2 := append([]byte{2}, b[1:]...)
	if got, _, err := decodeMeta(append(b2, 9, 9, 9)); err != nil || got.MemberID != 12345 {
		t.Fatalf("later version: %+v %v", got, err)
	}
	// Every truncation is an error, never a panic.
	for i := range len(b) {
		if _, _, err := decodeMeta(b[:i]); err == nil {
			t.Fatalf("truncated to %d bytes decoded", i)
		}
	}
	if _, _, err := decodeMeta(append([]byte{0}, b[1:]...)); err == nil {
		t.Fatal("version 0 decoded")
	}
	// Too many URLs: the ids survive, URLs are dropped from the end.
	long := Meta{ClusterID: 1, MemberID: 2}
	for i := range 40 {
		long.ClientURLs = append(long.ClientURLs, fmt.Sprintf("http://very-long-host-name-%02d.example.com:2379", i))
	}
	b, dropped = encodeMeta(long, false, 512)
	if len(b) > 512 || dropped == 0 {
		t.Fatalf("encoded %d bytes, dropped %d", len(b), dropped)
	}
	got, _, err = decodeMeta(b)
	if err != nil || got.MemberID != 2 || len(got.ClientURLs) != 40-dropped || got.ClientURLs[0] != long.ClientURLs[0] {
		t.Fatalf("truncated meta: %+v %v", got, err)
	}
}

func FuzzDecodeMeta(f *testing.F) {
	b, _ := encodeMeta(Meta{ClusterID: 3, MemberID: 4, ClientURLs: []string{"a"}, PeerURLs: []string{"b"}}, false, 512)
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		m, leaving, err := decodeMeta(data)
		if err != nil {
			return
		}
		again, _ := encodeMeta(m, leaving, 1<<20)
		m2, _, err := decodeMeta(again)
		if err != nil || m2.ClusterID != m.ClusterID || !slices.Equal(m2.ClientURLs, m.ClientURLs) {
			t.Fatalf("re-encoding changed %+v into %+v (%v)", m, m2, err)
		}
	})
}

func TestLogWriter(t *testing.T) {
	var buf bytes.Buffer
	var stopping atomic.Bool
	w := logWriter{lg: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), stopping: &stopping}
	for _, line := range []string{
		"[DEBUG] memberlist: Stream connection from=127.0.0.1:1\n",
		"[INFO] memberlist: Suspect n2 has failed, no acks received\n",
		"[WARN] memberlist: Refuting a suspect message\n",
		"[ERR] memberlist: Failed to send ping\n",
		"no level at all\n",
	} {
		if _, err := w.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	stopping.Store(true)
	_, _ = w.Write([]byte("[ERR] memberlist: Failed to send gossip: use of closed network connection\n"))
	out := buf.String()
	for _, want := range []string{
		`level=DEBUG msg="Failed to send gossip: use of closed network connection"`,
		`level=DEBUG msg="Stream connection from=127.0.0.1:1"`,
		`level=INFO msg="Suspect n2 has failed, no acks received"`,
		`level=WARN msg="Refuting a suspect message"`,
		`level=WARN msg="Failed to send ping"`,
		`level=INFO msg="no level at all"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

func gather(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			name := mf.GetName()
			if len(labels) > 0 {
				name += "{" + strings.Join(labels, ",") + "}"
			}
			fmt.Fprintf(&sb, "%s %g\n", name, m.GetGauge().GetValue())
		}
	}
	return sb.String()
}
