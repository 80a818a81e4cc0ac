package robustness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/photoncloud/photoncloud/test/testenv"
)

// Environment variables that steer the harness.
const (
	// EnvBinDir names the directory holding chainfire and etcd (shared with test/e2e).
	EnvBinDir = "PHOTON_BIN_DIR"
	// EnvServer selects the server under test: "chainfire" (default) or "etcd".
	EnvServer = "PHOTON_ROBUSTNESS_SERVER"
)

// Server kinds.
const (
	KindChainfire = "chainfire"
	KindEtcd      = "etcd"
)

// Bounds of the harness's waits; generous because the machine is shared.
const (
	readyTimeout = 30 * time.Second
	stopTimeout  = 20 * time.Second
	killTimeout  = 10 * time.Second
	logTailLines = 60
)

// UnsupportedMarker is what a server without replication says when given a
// multi-member --initial-cluster.
const UnsupportedMarker = "multi-member clusters are not supported"

// UnsupportedError says the server cannot form a multi-member cluster.
type UnsupportedError struct{ Line string }

func (e *UnsupportedError) Error() string {
	return "server cannot form a multi-member cluster: " + e.Line
}

// ServerBinary locates the server under test: $PHOTON_BIN_DIR/<kind> or
// bin/<kind> in the repository root. A missing binary is a test failure,
// not a skip: a green run must mean the binary was tested.
func ServerBinary(t testing.TB) (kind, path string) {
	t.Helper()
	kind = os.Getenv(EnvServer)
	switch kind {
	case "", KindChainfire:
		kind = KindChainfire
	case KindEtcd:
	default:
		t.Fatalf("%s=%q: want %q or %q", EnvServer, kind, KindChainfire, KindEtcd)
	}
	dir := os.Getenv(EnvBinDir)
	if dir == "" {
		root, err := testenv.RepoRoot()
		if err != nil {
			t.Fatalf("cannot find the repository root to locate bin/ (set %s): %v", EnvBinDir, err)
		}
		dir = filepath.Join(root, "bin")
	}
	path = filepath.Join(dir, kind)
	if fi, err := os.Stat(path); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		t.Fatalf("%s is missing or not executable: run `make build etcd` in the repository root first (or point %s at a directory holding it)", path, EnvBinDir)
	}
	return kind, path
}

// ClusterOptions configure a process cluster.
type ClusterOptions struct {
	Members   int      // default 3
	Kind      string   // KindChainfire or KindEtcd
	Binary    string   // path of the server binary
	ExtraArgs []string // appended to every member's flags
}

// Cluster is N server processes forming one cluster on loopback ports that
// stay fixed across restarts. The members reach each other only through
// Net, the proxies that the nemesis partitions.
type Cluster struct {
	t       testing.TB
	opts    ClusterOptions
	token   string
	Members []*Member
	Net     *PeerNet
}

// Member is one server process of a cluster.
type Member struct {
	c          *Cluster
	Index      int // in Cluster.Members and PeerNet
	Name       string
	DataDir    string
	LogPath    string
	ClientPort int
	PeerPort   int // where the member listens for peers
	HTTPPort   int

	mu       sync.Mutex
	proc     *process
	paused   bool
	id       uint64
	log      *os.File
	logStart int64
}

// process is one run of the binary; done closes when it has exited.
type process struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error // cmd.Wait's result, valid after done
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// NewCluster prepares the members (ports, data directories, log files)
// without starting them. Every process is killed when the test ends, and
// the member logs are printed if it failed.
func NewCluster(t testing.TB, opts ClusterOptions) *Cluster {
	t.Helper()
	if opts.Members == 0 {
		opts.Members = 3
	}
	c := &Cluster{t: t, opts: opts, token: fmt.Sprintf("robustness-%d", time.Now().UnixNano())}
	dir := t.TempDir()
	for i := range opts.Members {
		name := fmt.Sprintf("m%d", i)
		m := &Member{c: c, Index: i, Name: name,
			DataDir: filepath.Join(dir, name+".data"),
			LogPath: filepath.Join(dir, name+".log"),
		}
		f, err := os.OpenFile(m.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			t.Fatalf("create member log: %v", err)
		}
		m.log = f
		c.Members = append(c.Members, m)
	}
	pn, err := NewPeerNet(len(c.Members), IdentifyByProc(c.pids))
	if err != nil {
		t.Fatalf("peer network: %v", err)
	}
	c.Net = pn
	// Registered after t.TempDir, so it runs before the directory goes.
	t.Cleanup(c.cleanup)
	if err := c.pickPorts(); err != nil {
		t.Fatalf("pick ports: %v", err)
	}
	return c
}

// pids lists the process id of each member's current process (0 if none),
// for the proxies to tell which member dialed them.
func (c *Cluster) pids() []int {
	pids := make([]int, len(c.Members))
	for i, m := range c.Members {
		if p := m.current(); p != nil && !p.exited() {
			pids[i] = p.cmd.Process.Pid
		}
	}
	return pids
}

func (c *Cluster) pickPorts() error {
	ports, err := testenv.FreePorts(3 * len(c.Members))
	if err != nil {
		return err
	}
	for i, m := range c.Members {
		m.ClientPort, m.PeerPort, m.HTTPPort = ports[3*i], ports[3*i+1], ports[3*i+2]
		c.Net.SetTarget(i, "127.0.0.1:"+strconv.Itoa(m.PeerPort))
	}
	return nil
}

// Kind is the server kind under test.
func (c *Cluster) Kind() string { return c.opts.Kind }

// Endpoints are the client addresses of all members.
func (c *Cluster) Endpoints() []string {
	eps := make([]string, len(c.Members))
	for i, m := range c.Members {
		eps[i] = m.Endpoint()
	}
	return eps
}

func (c *Cluster) initialCluster() string {
	parts := make([]string, len(c.Members))
	for i, m := range c.Members {
		parts[i] = m.Name + "=" + m.PeerURL()
	}
	return strings.Join(parts, ",")
}

// Start launches every member and waits until all are ready. A member that
// exits saying the server cannot do multi-member clusters yields an
// *UnsupportedError. A first start that lost a port race is retried on new
// ports.
func (c *Cluster) Start(ctx context.Context) error {
	for attempt := 0; ; attempt++ {
		for _, m := range c.Members {
			if err := m.Start(); err != nil {
				return err
			}
		}
		errs := make([]error, len(c.Members))
		var wg sync.WaitGroup
		for i, m := range c.Members {
			wg.Go(func() { errs[i] = m.WaitReady(ctx) })
		}
		wg.Wait()
		var unsupported *UnsupportedError
		for _, err := range errs {
			if errors.As(err, &unsupported) {
				return unsupported
			}
		}
		err := errors.Join(errs...)
		if err == nil {
			return nil
		}
		if attempt >= 2 || !c.portConflict() {
			return err
		}
		c.t.Logf("port conflict on first start, retrying on new ports: %v", err)
		for _, m := range c.Members {
			_ = m.Kill()
			if err := os.RemoveAll(m.DataDir); err != nil {
				return fmt.Errorf("clear data dir: %w", err)
			}
		}
		if err := c.pickPorts(); err != nil {
			return err
		}
	}
}

func (c *Cluster) portConflict() bool {
	for _, m := range c.Members {
		if strings.Contains(m.currentLog(), "address already in use") {
			return true
		}
	}
	return false
}

// Client returns a client of the given endpoints, closed when the test ends.
func (c *Cluster) Client(endpoints ...string) (*clientv3.Client, error) {
	if len(endpoints) == 0 {
		endpoints = c.Endpoints()
	}
	cli, err := NewClient(endpoints)
	if err != nil {
		return nil, err
	}
	c.t.Cleanup(func() { _ = cli.Close() })
	return cli, nil
}

// NewClient connects a quiet clientv3 client to endpoints.
func NewClient(endpoints []string) (*clientv3.Client, error) {
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 2 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("new client: %w", err)
	}
	return cli, nil
}

// Leader asks every running member who leads and returns the member most
// of them name.
func (c *Cluster) Leader(ctx context.Context) (*Member, error) {
	cli, err := NewClient(c.Endpoints())
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	votes := map[uint64]int{}
	var lastErr error
	for _, m := range c.Members {
		st, err := m.status(ctx, cli)
		if err != nil {
			lastErr = err
			continue
		}
		if st.leader != 0 {
			votes[st.leader]++
		}
	}
	var best uint64
	for id, n := range votes {
		if n > votes[best] {
			best = id
		}
	}
	if best == 0 {
		return nil, fmt.Errorf("no member reports a leader (last error: %v)", lastErr)
	}
	for _, m := range c.Members {
		if m.ID() == best {
			return m, nil
		}
	}
	return nil, fmt.Errorf("leader %x is not a known member", best)
}

// WaitHealthy waits until every member is running and ready.
func (c *Cluster) WaitHealthy(ctx context.Context) error {
	for _, m := range c.Members {
		if err := m.WaitReady(ctx); err != nil {
			return err
		}
	}
	return nil
}

// StopAll stops every running member with SIGTERM.
func (c *Cluster) StopAll() error {
	var errs []error
	for _, m := range c.Members {
		if m.Running() {
			errs = append(errs, m.Stop())
		}
	}
	return errors.Join(errs...)
}

func (c *Cluster) cleanup() {
	for _, m := range c.Members {
		if m.Running() {
			if err := m.Kill(); err != nil {
				c.t.Errorf("%v", err)
			}
		}
		if mark := crashMarker.FindString(m.Log()); mark != "" {
			c.t.Errorf("%s log shows a crash (%q)", m.Name, mark)
		}
	}
	c.Net.Close()
	for _, m := range c.Members {
		_ = m.log.Close()
	}
	if c.t.Failed() {
		for _, m := range c.Members {
			c.t.Logf("%s log %s (last %d lines):\n%s", m.Name, m.LogPath, logTailLines, tail(m.Log(), logTailLines))
		}
	}
}

// crashMarker matches what the Go runtime prints when a process panics,
// dies of a fatal error or (in -race builds) detects a data race.
var crashMarker = regexp.MustCompile(`(?m)^(panic: .*|fatal error: .*|WARNING: DATA RACE)$`)

// Endpoint is the member's client address.
func (m *Member) Endpoint() string { return "127.0.0.1:" + strconv.Itoa(m.ClientPort) }

// ClientURL is the member's client URL.
func (m *Member) ClientURL() string { return "http://" + m.Endpoint() }

// PeerURL is the member's advertised peer URL: its proxy in Net, which
// every member (itself included) dials to reach it.
func (m *Member) PeerURL() string { return "http://127.0.0.1:" + strconv.Itoa(m.c.Net.Port(m.Index)) }

// ListenPeerURL is where the member itself listens for peers.
func (m *Member) ListenPeerURL() string { return "http://127.0.0.1:" + strconv.Itoa(m.PeerPort) }

// HTTPURL is the member's metrics and health listener.
func (m *Member) HTTPURL() string { return "http://127.0.0.1:" + strconv.Itoa(m.HTTPPort) }

// ID is the member ID learnt from Status (0 before the first ready check).
func (m *Member) ID() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.id
}

// Args are etcd's flags for this member of a new cluster. The metrics and
// health listener gets its own port: both servers default it to a fixed
// port, which the members would fight over.
func (m *Member) Args() []string {
	httpFlag := "--listen-http-urls"
	if m.c.opts.Kind == KindEtcd {
		httpFlag = "--listen-client-http-urls"
	}
	args := []string{
		"--name", m.Name,
		"--data-dir", m.DataDir,
		"--listen-client-urls", m.ClientURL(),
		"--advertise-client-urls", m.ClientURL(),
		"--listen-peer-urls", m.ListenPeerURL(),
		"--initial-advertise-peer-urls", m.PeerURL(),
		"--initial-cluster", m.c.initialCluster(),
		"--initial-cluster-state", "new",
		"--initial-cluster-token", m.c.token,
		httpFlag, m.HTTPURL(),
	}
	return append(args, m.c.opts.ExtraArgs...)
}

// serverEnv is the test's environment without variables that would
// silently reconfigure the server.
func serverEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PHOTON_CHAINFIRE_") || strings.HasPrefix(kv, "ETCD_") || strings.HasPrefix(kv, "ETCDCTL_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// Start launches the member's process on its ports and data directory; it
// does not wait for readiness.
func (m *Member) Start() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.proc != nil && !m.proc.exited() {
		return fmt.Errorf("start %s: already running", m.Name)
	}
	args := m.Args()
	cmd := exec.Command(m.c.opts.Binary, args...)
	cmd.Env = serverEnv()
	cmd.Stdout = m.log
	cmd.Stderr = m.log
	// If the test binary dies (a go test timeout), take the servers with it
	// rather than leave them running on a shared machine.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if fi, err := m.log.Stat(); err == nil {
		m.logStart = fi.Size()
	}
	m.markLocked("start " + m.c.opts.Binary + " " + strings.Join(args, " "))
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", m.Name, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	m.proc = p
	m.paused = false
	return nil
}

// Mark writes a line into the member's log, for events the nemesis causes
// outside the process (partitions).
func (m *Member) Mark(what string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.markLocked(what)
}

// markLocked writes a line into the member's log so that the log shows
// what the harness did and when.
func (m *Member) markLocked(what string) {
	fmt.Fprintf(m.log, "\n===== robustness %s: %s\n", time.Now().Format(time.RFC3339Nano), what)
}

func (m *Member) current() *process {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.proc
}

// Running reports whether the member's process is alive (paused counts).
func (m *Member) Running() bool {
	p := m.current()
	return p != nil && !p.exited()
}

// Exited returns a channel closed when the current process exits (nil if
// never started).
func (m *Member) Exited() <-chan struct{} {
	p := m.current()
	if p == nil {
		return nil
	}
	return p.done
}

func (m *Member) signal(sig syscall.Signal, what string) (*process, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.proc
	if p == nil || p.exited() {
		return nil, fmt.Errorf("%s %s: not running", what, m.Name)
	}
	m.markLocked(what)
	if err := p.cmd.Process.Signal(sig); err != nil {
		return nil, fmt.Errorf("%s %s: %w", what, m.Name, err)
	}
	switch sig {
	case syscall.SIGSTOP:
		m.paused = true
	case syscall.SIGCONT:
		m.paused = false
	}
	return p, nil
}

// Stop sends SIGTERM (and SIGCONT, should the member be paused) and waits
// for the process to exit; an exit status other than success or death by
// SIGTERM (etcd re-raises it) is an error.
func (m *Member) Stop() error {
	p, err := m.signal(syscall.SIGTERM, "SIGTERM")
	if err != nil {
		return err
	}
	if m.Paused() {
		_, _ = m.signal(syscall.SIGCONT, "SIGCONT")
	}
	select {
	case <-p.done:
	case <-time.After(stopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s did not exit within %v of SIGTERM; killed", m.Name, stopTimeout)
	}
	if p.err != nil && !exitedBy(p.err, syscall.SIGTERM) {
		return fmt.Errorf("%s exited with %v after SIGTERM", m.Name, p.err)
	}
	return nil
}

// Kill sends SIGKILL and waits for the process to be gone.
func (m *Member) Kill() error {
	p, err := m.signal(syscall.SIGKILL, "SIGKILL")
	if err != nil {
		return err
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(killTimeout):
		return fmt.Errorf("%s still running %v after SIGKILL", m.Name, killTimeout)
	}
}

// Restart stops the member gracefully and starts it again on the same
// ports and data, waiting for readiness.
func (m *Member) Restart(ctx context.Context) error {
	if err := m.Stop(); err != nil {
		return err
	}
	if err := m.Start(); err != nil {
		return err
	}
	return m.WaitReady(ctx)
}

// Pause freezes the process with SIGSTOP.
func (m *Member) Pause() error {
	_, err := m.signal(syscall.SIGSTOP, "SIGSTOP")
	return err
}

// Resume thaws a paused process with SIGCONT.
func (m *Member) Resume() error {
	_, err := m.signal(syscall.SIGCONT, "SIGCONT")
	return err
}

// Paused reports whether the member is stopped by SIGSTOP.
func (m *Member) Paused() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.paused
}

func exitedBy(err error, sig syscall.Signal) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == sig
}

type memberStatus struct {
	id, leader uint64
	rev        int64
}

// status asks this member (and only it: clientv3 dials the endpoint
// given to Status) for its status.
func (m *Member) status(ctx context.Context, cli *clientv3.Client) (memberStatus, error) {
	sctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	st, err := cli.Status(sctx, m.Endpoint())
	if err != nil {
		return memberStatus{}, fmt.Errorf("status of %s: %w", m.Name, err)
	}
	pst := (*pb.StatusResponse)(st)
	s := memberStatus{id: pst.GetHeader().GetMemberId(), leader: pst.GetLeader(), rev: pst.GetHeader().GetRevision()}
	m.mu.Lock()
	m.id = s.id
	m.mu.Unlock()
	return s, nil
}

// WaitReady waits until the member reports a leader and serves a
// linearizable read, or fails if it exits or takes longer than readyTimeout.
func (m *Member) WaitReady(ctx context.Context) error {
	p := m.current()
	if p == nil {
		return fmt.Errorf("%s: not started", m.Name)
	}
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	cli, err := NewClient([]string{m.Endpoint()})
	if err != nil {
		return err
	}
	defer cli.Close()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var lastErr error
	for {
		if p.exited() {
			log := m.currentLog()
			if i := strings.Index(log, UnsupportedMarker); i >= 0 {
				return &UnsupportedError{Line: lineAround(log, i)}
			}
			return fmt.Errorf("%s exited before becoming ready: %v\n%s", m.Name, p.err, tail(log, 15))
		}
		if lastErr = m.probe(ctx, cli); lastErr == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready within %v: %w", m.Name, readyTimeout, lastErr)
		case <-p.done:
		case <-tick.C:
		}
	}
}

func (m *Member) probe(ctx context.Context, cli *clientv3.Client) error {
	st, err := m.status(ctx, cli)
	if err != nil {
		return err
	}
	if st.leader == 0 {
		return errors.New("no leader yet")
	}
	gctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := cli.Get(gctx, "robustness-ready-probe"); err != nil {
		return fmt.Errorf("linearizable get: %w", err)
	}
	return nil
}

// Log is the member's whole log so far.
func (m *Member) Log() string {
	b, err := os.ReadFile(m.LogPath)
	if err != nil {
		return fmt.Sprintf("(read log: %v)", err)
	}
	return string(b)
}

// currentLog is the log of the current process only.
func (m *Member) currentLog() string {
	m.mu.Lock()
	start := m.logStart
	m.mu.Unlock()
	b, err := os.ReadFile(m.LogPath)
	if err != nil || int64(len(b)) < start {
		return ""
	}
	return string(b[start:])
}

func lineAround(s string, i int) string {
	start := strings.LastIndexByte(s[:i], '\n') + 1
	end := strings.IndexByte(s[i:], '\n')
	if end < 0 {
		return strings.TrimSpace(s[start:])
	}
	return strings.TrimSpace(s[start : i+end])
}

func tail(s string, n int) string {
	lines := bytes.Split(bytes.TrimRight([]byte(s), "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}
