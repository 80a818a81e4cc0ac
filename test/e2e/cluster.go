package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
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

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/photoncloud/photoncloud/test/testenv"
)

// Environment variables that steer the tests.
const (
	// EnvBinDir names the directory holding chainfire, etcd and etcdctl.
	EnvBinDir = "PHOTON_BIN_DIR"
	// EnvServer selects the server under test: "chainfire" (default) or "etcd".
	EnvServer = "PHOTON_E2E_SERVER"
)

// Bounds of the waits the harness does; generous because the machine is shared.
const (
	readyTimeout   = 30 * time.Second
	stopTimeout    = 20 * time.Second
	killTimeout    = 10 * time.Second
	etcdctlTimeout = 20 * time.Second
	logTailLines   = 200
)

// Server kinds.
const (
	KindChainfire = "chainfire"
	KindEtcd      = "etcd"
)

// Binaries are the executables a test runs.
type Binaries struct {
	Kind    string // KindChainfire or KindEtcd
	Server  string // path of bin/chainfire or bin/etcd
	Etcdctl string // path of bin/etcdctl
}

// FindBinaries locates the server under test and etcdctl. A missing binary is
// a test failure, not a skip: a green run must mean the binaries were tested.
func FindBinaries(t testing.TB) Binaries {
	t.Helper()
	dir := os.Getenv(EnvBinDir)
	if dir == "" {
		root, err := testenv.RepoRoot()
		if err != nil {
			t.Fatalf("cannot find the repository root to locate bin/ (set %s): %v", EnvBinDir, err)
		}
		dir = filepath.Join(root, "bin")
	}
	kind := os.Getenv(EnvServer)
	switch kind {
	case "", KindChainfire:
		kind = KindChainfire
	case KindEtcd:
	default:
		t.Fatalf("%s=%q: want %q or %q", EnvServer, kind, KindChainfire, KindEtcd)
	}
	b := Binaries{Kind: kind, Server: filepath.Join(dir, kind), Etcdctl: filepath.Join(dir, "etcdctl")}
	for _, p := range []string{b.Server, b.Etcdctl} {
		fi, err := os.Stat(p)
		if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			t.Fatalf("%s is missing or not executable: run `make build` in the repository root first (or point %s at a directory holding %s and etcdctl)",
				p, EnvBinDir, kind)
		}
	}
	return b
}

// ServerTLS names the server's certificate files. Client URLs and the HTTP
// listener switch to https when it is set.
type ServerTLS struct {
	CAFile         string
	CertFile       string
	KeyFile        string
	ClientCertAuth bool
}

// ClientTLS is the identity etcdctl and the Go clients present. CertFile and
// KeyFile may be empty to connect without a client certificate.
type ClientTLS struct {
	CAFile   string
	CertFile string
	KeyFile  string
}

// Config returns the crypto/tls configuration for this identity.
func (c *ClientTLS) Config() (*tls.Config, error) {
	pem, err := os.ReadFile(c.CAFile)
	if err != nil {
		return nil, fmt.Errorf("read ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no certificate in %s", c.CAFile)
	}
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load client key pair: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// Options configure one server process.
type Options struct {
	// Name is the member name (--name). Default "e2e".
	Name string
	// ServerTLS turns on TLS for the client and HTTP listeners.
	ServerTLS *ServerTLS
	// ClientTLS is the identity used by Client, HTTPClient and Etcdctl.
	ClientTLS *ClientTLS
	// ExtraArgs are appended to the default flags.
	ExtraArgs []string
	// Env entries ("K=V") are added to the server's environment.
	Env []string
	// Args, when set, replaces the default flags entirely (ExtraArgs are still
	// appended). The server must still end up listening on s.ClientPort.
	Args func(s *Server) []string
	// FixedPorts says the ports are already known to other processes (a
	// cluster's --initial-cluster, an `etcdctl member add`), so a port
	// conflict on the first start fails the test instead of moving the
	// server to new ports.
	FixedPorts bool
}

// Server is one server process (bin/chainfire or bin/etcd) on loopback ports
// that stay fixed across restarts, so that a restart finds the same member
// on the same data directory.
type Server struct {
	t    testing.TB
	bins Binaries
	opts Options

	Name       string
	DataDir    string
	ClientPort int
	PeerPort   int
	HTTPPort   int
	LogPath    string

	mu        sync.Mutex
	proc      *process
	log       *os.File
	logStart  int64 // log size when the current process started
	everReady bool  // WaitReady has succeeded once: ports and data are committed
	rebinds   int   // port conflicts survived before the first readiness
}

// process is one run of the server binary; done closes when it has exited.
type process struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error // cmd.Wait's result, valid after done
}

// NewServer prepares a server with fresh ports and data directory without
// starting it. The process is killed (if still running) when the test ends,
// and its log is printed if the test failed.
func NewServer(t testing.TB, opts Options) *Server {
	t.Helper()
	bins := FindBinaries(t)
	if opts.Name == "" {
		opts.Name = "e2e"
	}
	dir := t.TempDir()
	ports, err := testenv.FreePorts(3)
	if err != nil {
		t.Fatalf("pick free ports: %v", err)
	}
	s := &Server{
		t: t, bins: bins, opts: opts,
		Name:       opts.Name,
		DataDir:    filepath.Join(dir, "data"),
		ClientPort: ports[0], PeerPort: ports[1], HTTPPort: ports[2],
		LogPath: filepath.Join(dir, bins.Kind+".log"),
	}
	f, err := os.OpenFile(s.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatalf("create server log: %v", err)
	}
	s.log = f
	// Registered after t.TempDir, so it runs before the directory is removed.
	t.Cleanup(s.cleanup)
	return s
}

// StartServer is NewServer followed by Start and WaitReady.
func StartServer(t testing.TB, opts Options) *Server {
	t.Helper()
	s := NewServer(t, opts)
	s.Start()
	s.WaitReady()
	return s
}

// Kind is KindChainfire or KindEtcd.
func (s *Server) Kind() string { return s.bins.Kind }

// Binaries returns the binaries this server uses.
func (s *Server) Binaries() Binaries { return s.bins }

func (s *Server) scheme() string {
	if s.opts.ServerTLS != nil {
		return "https"
	}
	return "http"
}

// Endpoint is the client address as etcdctl's --endpoints takes it.
func (s *Server) Endpoint() string { return "127.0.0.1:" + strconv.Itoa(s.ClientPort) }

// ClientURL is the client URL given to --listen-client-urls.
func (s *Server) ClientURL() string { return s.scheme() + "://" + s.Endpoint() }

// PeerURL is the (unused in a single member) peer URL.
func (s *Server) PeerURL() string { return "http://127.0.0.1:" + strconv.Itoa(s.PeerPort) }

// HTTPURL is the URL of the HTTP listener (/health, /metrics, /v3/*).
func (s *Server) HTTPURL() string { return s.scheme() + "://127.0.0.1:" + strconv.Itoa(s.HTTPPort) }

// DefaultArgs are etcd's flags for a single-member cluster on this server's ports.
func (s *Server) DefaultArgs() []string {
	args := []string{
		"--name", s.Name,
		"--data-dir", s.DataDir,
		"--listen-client-urls", s.ClientURL(),
		"--advertise-client-urls", s.ClientURL(),
		"--listen-peer-urls", s.PeerURL(),
		"--initial-advertise-peer-urls", s.PeerURL(),
		"--initial-cluster", s.Name + "=" + s.PeerURL(),
		"--listen-http-urls", s.HTTPURL(),
	}
	if tl := s.opts.ServerTLS; tl != nil {
		args = append(args, "--cert-file", tl.CertFile, "--key-file", tl.KeyFile, "--trusted-ca-file", tl.CAFile)
		if tl.ClientCertAuth {
			args = append(args, "--client-cert-auth")
		}
	}
	return args
}

// TranslateArgs maps Chainfire-only flags to their etcd equivalents when the
// server under test is etcd: etcd serves /health, /metrics and the gateway on
// --listen-client-http-urls.
func TranslateArgs(kind string, args []string) []string {
	if kind != KindEtcd {
		return args
	}
	out := make([]string, len(args))
	for i, a := range args {
		switch {
		case a == "--listen-http-urls":
			a = "--listen-client-http-urls"
		case strings.HasPrefix(a, "--listen-http-urls="):
			a = "--listen-client-http-urls=" + strings.TrimPrefix(a, "--listen-http-urls=")
		}
		out[i] = a
	}
	return out
}

// ServerEnv is the environment for a server or etcdctl process: the test's
// environment without variables that would silently reconfigure it.
func ServerEnv(extra []string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PHOTON_CHAINFIRE_") || strings.HasPrefix(kv, "ETCD_") || strings.HasPrefix(kv, "ETCDCTL_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// Start launches the server process; it does not wait for readiness.
func (s *Server) Start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil && !s.proc.exited() {
		s.t.Fatalf("start %s: already running", s.bins.Kind)
	}
	var args []string
	if s.opts.Args != nil {
		args = s.opts.Args(s)
	} else {
		args = s.DefaultArgs()
	}
	args = TranslateArgs(s.bins.Kind, append(args, s.opts.ExtraArgs...))
	if fi, err := s.log.Stat(); err == nil {
		s.logStart = fi.Size()
	}
	s.proc = launch(s.t, s.bins.Server, args, ServerEnv(s.opts.Env), s.log, s.log, s.log, fmt.Sprintf(" (env %q)", s.opts.Env))
}

// launch starts bin with args and env, its output to stdout and stderr,
// and records the start in log (the harness's log of the server).
func launch(t testing.TB, bin string, args, env []string, stdout, stderr, log io.Writer, note string) *process {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout = stdout
	cmd.Stderr = stderr
	fmt.Fprintf(log, "\n===== e2e %s: start %s %s%s\n", time.Now().Format(time.RFC3339Nano), bin, strings.Join(args, " "), note)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p
}

// kill sends SIGKILL to the running process p of the server name, noted
// in log, and waits for it to be gone.
func kill(t testing.TB, p *process, name string, log io.Writer) {
	t.Helper()
	if p == nil || p.exited() {
		t.Fatalf("kill %s: not running", name)
	}
	fmt.Fprintf(log, "\n===== e2e %s: SIGKILL\n", time.Now().Format(time.RFC3339Nano))
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("SIGKILL: %v", err)
	}
	select {
	case <-p.done:
	case <-time.After(killTimeout):
		t.Fatalf("%s still running %v after SIGKILL", name, killTimeout)
	}
}

// reap kills p, if it still runs, when its test ends.
func reap(t testing.TB, p *process, name string) {
	if p == nil || p.exited() {
		return
	}
	_ = p.cmd.Process.Kill()
	select {
	case <-p.done:
	case <-time.After(killTimeout):
		t.Errorf("%s (pid %d) still running after SIGKILL", name, p.cmd.Process.Pid)
	}
}

// waitReadyz polls httpURL's /readyz until it answers want or timeout
// passes, and returns the last status code and body.
func waitReadyz(httpURL string, want int, timeout time.Duration) (int, string) {
	hc := &http.Client{Timeout: 5 * time.Second}
	defer hc.CloseIdleConnections()
	deadline := time.Now().Add(timeout)
	for {
		code, body := 0, ""
		resp, err := hc.Get(httpURL + "/readyz")
		if err != nil {
			body = err.Error()
		} else {
			b, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			code, body = resp.StatusCode, strings.TrimSpace(string(b))
		}
		if code == want || time.Now().After(deadline) {
			return code, body
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// awaitReadyz polls httpURL/readyz until it answers 200, failing when p
// exits first or timeout passes.
func awaitReadyz(p *process, name, httpURL string, timeout time.Duration) error {
	hc := &http.Client{Timeout: time.Second}
	defer hc.CloseIdleConnections()
	deadline := time.Now().Add(timeout)
	var last error
	for {
		if p.exited() {
			return fmt.Errorf("%s exited before becoming ready: %v", name, p.err)
		}
		resp, err := hc.Get(httpURL + "/readyz")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("/readyz: %s", resp.Status)
		}
		last = err
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready within %v: %w", name, timeout, last)
		}
		select {
		case <-p.done:
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (s *Server) current() *process {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc
}

// WaitReady waits until the server reports a leader and serves a
// linearizable read, failing the test if it exits or takes too long.
func (s *Server) WaitReady() {
	s.t.Helper()
	if s.current() == nil {
		s.t.Fatal("WaitReady: server not started")
	}
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	for {
		err := s.awaitReady(ctx)
		if err == nil {
			return
		}
		if s.current().exited() && s.retryPortConflict() {
			continue
		}
		s.t.Fatalf("%v (log %s below)", err, s.LogPath)
	}
}

// awaitReady polls the current process until it is ready (see probe), it
// exits or ctx ends. It does not touch the ports, so it also serves members
// of a cluster, which must all move together.
func (s *Server) awaitReady(ctx context.Context) error {
	p := s.current()
	cli, err := s.newClient()
	if err != nil {
		return fmt.Errorf("ready check client: %w", err)
	}
	defer func() { _ = cli.Close() }()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if p.exited() {
			return fmt.Errorf("%s %s exited before becoming ready: %v", s.bins.Kind, s.Name, p.err)
		}
		lastErr := probe(ctx, cli, s.Endpoint())
		if lastErr == nil {
			s.everReady = true
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s %s not ready in time: last probe error: %w", s.bins.Kind, s.Name, lastErr)
		case <-p.done:
		case <-tick.C:
		}
	}
}

// retryPortConflict handles the race inherent in picking free ports: if the
// very first start failed because another process took one of the ports
// meanwhile, it picks new ports, clears the data directory and starts again.
func (s *Server) retryPortConflict() bool {
	if s.everReady || s.opts.FixedPorts || s.rebinds >= 3 {
		return false
	}
	b, err := os.ReadFile(s.LogPath)
	if err != nil || int64(len(b)) < s.logStart || !bytes.Contains(b[s.logStart:], []byte("address already in use")) {
		return false
	}
	ports, err := testenv.FreePorts(3)
	if err != nil {
		return false
	}
	s.rebinds++
	s.t.Logf("%s: port conflict on first start, retrying with new ports", s.bins.Kind)
	_ = os.RemoveAll(s.DataDir)
	s.ClientPort, s.PeerPort, s.HTTPPort = ports[0], ports[1], ports[2]
	s.Start()
	return true
}

// probe does one readiness check: Status has a leader and a linearizable Get works.
func probe(ctx context.Context, cli *clientv3.Client, ep string) error {
	pctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	st, err := cli.Status(pctx, ep)
	if err != nil {
		return fmt.Errorf("status: %w", err)
	}
	if st.Leader == 0 {
		return errors.New("status: no leader yet")
	}
	if _, err := cli.Get(pctx, "e2e-ready-probe"); err != nil {
		return fmt.Errorf("get: %w", err)
	}
	return nil
}

// Stop sends SIGTERM and waits for the process to exit. It returns the exit
// error of the process (nil for exit status 0). A process that ignores
// SIGTERM is killed and the test fails.
func (s *Server) Stop() error {
	s.t.Helper()
	p := s.current()
	if p == nil || p.exited() {
		s.t.Fatalf("stop %s: not running", s.bins.Kind)
	}
	fmt.Fprintf(s.log, "\n===== e2e %s: SIGTERM\n", time.Now().Format(time.RFC3339Nano))
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		s.t.Fatalf("SIGTERM: %v", err)
	}
	select {
	case <-p.done:
		return p.err
	case <-time.After(stopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		s.t.Fatalf("%s did not exit within %v of SIGTERM; killed", s.bins.Kind, stopTimeout)
		return nil
	}
}

// Kill sends SIGKILL and waits for the process to be gone.
func (s *Server) Kill() {
	s.t.Helper()
	kill(s.t, s.current(), s.bins.Kind, s.log)
}

// Restart stops the server gracefully and starts it again on the same data
// directory and ports, waiting for readiness.
func (s *Server) Restart() {
	s.t.Helper()
	if err := s.Stop(); err != nil && !ExitedBySIGTERM(err) {
		s.t.Errorf("%s exited with %v after SIGTERM, want status 0", s.bins.Kind, err)
	}
	s.Start()
	s.WaitReady()
}

// ExitedBySIGTERM reports whether err says the process died of SIGTERM,
// which is how etcd ends after a SIGTERM (it re-raises the signal).
func ExitedBySIGTERM(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGTERM
}

func (s *Server) cleanup() {
	reap(s.t, s.current(), s.bins.Kind)
	_ = s.log.Close()
	if m := crashMarker.FindString(s.Log()); m != "" {
		s.t.Errorf("%s log shows a crash (%q)", s.bins.Kind, m)
	}
	if s.t.Failed() {
		s.t.Logf("%s log %s (last %d lines):\n%s", s.bins.Kind, s.LogPath, logTailLines, tail(s.LogPath, logTailLines))
	}
}

// crashMarker matches what the Go runtime prints when a process panics,
// dies of a fatal error or (in -race builds) detects a data race.
var crashMarker = regexp.MustCompile(`(?m)^(panic: .*|fatal error: .*|WARNING: DATA RACE)$`)

// Log returns the whole server log so far.
func (s *Server) Log() string {
	b, err := os.ReadFile(s.LogPath)
	if err != nil {
		return fmt.Sprintf("(read log: %v)", err)
	}
	return string(b)
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(read log: %v)", err)
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

func (s *Server) tlsConfig() (*tls.Config, error) {
	if s.opts.ClientTLS == nil {
		return nil, nil
	}
	return s.opts.ClientTLS.Config()
}

func (s *Server) newClient() (*clientv3.Client, error) {
	tlsCfg, err := s.tlsConfig()
	if err != nil {
		return nil, err
	}
	return clientv3.New(clientv3.Config{
		Endpoints:   []string{s.ClientURL()},
		DialTimeout: 5 * time.Second,
		TLS:         tlsCfg,
		Logger:      zap.NewNop(),
	})
}

// Client returns a clientv3 client closed at the end of the test.
func (s *Server) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	cli, err := s.newClient()
	if err != nil {
		t.Fatalf("new client: %v", err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}

// HTTPClient returns a client for the HTTP listener with this server's client identity.
func (s *Server) HTTPClient(t testing.TB) *http.Client {
	t.Helper()
	tlsCfg, err := s.tlsConfig()
	if err != nil {
		t.Fatalf("http client tls: %v", err)
	}
	tr := &http.Transport{TLSClientConfig: tlsCfg}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// CtlResult is the outcome of one etcdctl run.
type CtlResult struct {
	Args   []string
	Stdout string
	Stderr string
	Err    error // nil when etcdctl exited 0
}

func (r CtlResult) String() string {
	return fmt.Sprintf("etcdctl %s: err=%v\nstdout:\n%s\nstderr:\n%s", strings.Join(r.Args, " "), r.Err, r.Stdout, r.Stderr)
}

// CtlGlobalArgs are the global etcdctl flags reaching endpoint with the
// given identity: nil means the server's default client identity, a
// ClientTLS without CAFile means plaintext.
func (s *Server) CtlGlobalArgs(endpoint string, id *ClientTLS) []string {
	if id == nil {
		id = s.opts.ClientTLS
	}
	args := []string{"--endpoints", endpoint, "--dial-timeout=5s", "--command-timeout=15s"}
	if id != nil && id.CAFile != "" {
		args = append(args, "--cacert", id.CAFile)
		if id.CertFile != "" {
			args = append(args, "--cert", id.CertFile, "--key", id.KeyFile)
		}
	}
	return args
}

// EtcdctlCmd returns an etcdctl command with the global flags, for commands
// that run in the background (watch).
func (s *Server) EtcdctlCmd(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, s.bins.Etcdctl, append(s.CtlGlobalArgs(s.Endpoint(), nil), args...)...)
	cmd.Env = ServerEnv(nil)
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// RunEtcdctl runs etcdctl against Endpoint with the identity id (see
// CtlGlobalArgs), stdin and args, bounded by etcdctlTimeout.
func (s *Server) RunEtcdctl(id *ClientTLS, stdin string, args ...string) CtlResult {
	return s.RunEtcdctlAt(s.Endpoint(), id, stdin, args...)
}

// RunEtcdctlAt is RunEtcdctl with another --endpoints value.
func (s *Server) RunEtcdctlAt(endpoint string, id *ClientTLS, stdin string, args ...string) CtlResult {
	ctx, cancel := context.WithTimeout(context.Background(), etcdctlTimeout)
	defer cancel()
	full := append(s.CtlGlobalArgs(endpoint, id), args...)
	cmd := exec.CommandContext(ctx, s.bins.Etcdctl, full...)
	cmd.Env = ServerEnv(nil)
	cmd.WaitDelay = 5 * time.Second
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("etcdctl timed out after %v: %w", etcdctlTimeout, err)
	}
	return CtlResult{Args: args, Stdout: stdout.String(), Stderr: stderr.String(), Err: err}
}

// Ctl runs etcdctl, fails the test unless it exits 0, and returns its stdout.
func (s *Server) Ctl(t testing.TB, args ...string) string {
	t.Helper()
	return s.CtlStdin(t, "", args...)
}

// CtlStdin is Ctl with standard input.
func (s *Server) CtlStdin(t testing.TB, stdin string, args ...string) string {
	t.Helper()
	r := s.RunEtcdctl(nil, stdin, args...)
	if r.Err != nil {
		t.Fatalf("%v", r)
	}
	return r.Stdout
}

// CtlFail runs etcdctl and fails the test unless it exits non-zero.
func (s *Server) CtlFail(t testing.TB, args ...string) CtlResult {
	t.Helper()
	r := s.RunEtcdctl(nil, "", args...)
	if r.Err == nil {
		t.Fatalf("etcdctl succeeded, want failure: %v", r)
	}
	return r
}

// Ctx returns a context bounded by d and cancelled at the end of the test.
func Ctx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// Running reports whether the server process is running.
func (s *Server) Running() bool {
	p := s.current()
	return p != nil && !p.exited()
}

// WaitExit waits up to d for the process to end by itself (a member removed
// from its cluster stops) and reports whether it did, with its exit error
// (nil for status 0).
func (s *Server) WaitExit(d time.Duration) (exited bool, err error) {
	s.t.Helper()
	p := s.current()
	if p == nil {
		s.t.Fatalf("WaitExit: %s %s never started", s.bins.Kind, s.Name)
	}
	select {
	case <-p.done:
		return true, p.err
	case <-time.After(d):
		return false, nil
	}
}

// MemberArgs are DefaultArgs for a member of a multi-member cluster: the
// given --initial-cluster, --initial-cluster-state ("new" or "existing") and
// --initial-cluster-token.
func (s *Server) MemberArgs(initialCluster, state, token string) []string {
	args := s.DefaultArgs()
	for i := range args {
		if args[i] == "--initial-cluster" {
			args[i+1] = initialCluster
		}
	}
	return append(args, "--initial-cluster-state", state, "--initial-cluster-token", token)
}

// ClusterOptions configure NewCluster.
type ClusterOptions struct {
	// Size is the number of members, named m1, m2, ... Default 3.
	Size int
	// ExtraArgs are appended to every member's flags.
	ExtraArgs []string
	// Prepare, when set, fills each member's empty data directory before the
	// first start (for example with `chainfire snapshot restore`). It runs
	// again if a port conflict forces a fresh start on new ports.
	Prepare func(t testing.TB, s *Server)
}

// Cluster is a set of servers bootstrapped together from one
// --initial-cluster. Members is the test's own bookkeeping: a test that adds
// or removes members through etcdctl updates it as it sees fit.
type Cluster struct {
	t       testing.TB
	opts    ClusterOptions
	Token   string // --initial-cluster-token, unique per cluster
	Members []*Server
}

// NewCluster prepares the members (ports, data directories, logs) without
// starting them. Every process is killed when the test ends and the logs are
// printed if it failed.
func NewCluster(t testing.TB, opts ClusterOptions) *Cluster {
	t.Helper()
	if opts.Size == 0 {
		opts.Size = 3
	}
	c := &Cluster{t: t, opts: opts, Token: fmt.Sprintf("e2e-%d", time.Now().UnixNano())}
	for i := range opts.Size {
		c.Members = append(c.Members, NewServer(t, Options{
			Name:       fmt.Sprintf("m%d", i+1),
			ExtraArgs:  opts.ExtraArgs,
			FixedPorts: true,
			// Evaluated at each start, so it follows a move to new ports.
			Args: func(s *Server) []string { return s.MemberArgs(c.InitialCluster(), "new", c.Token) },
		}))
	}
	return c
}

// StartCluster is NewCluster followed by Start.
func StartCluster(t testing.TB, opts ClusterOptions) *Cluster {
	t.Helper()
	c := NewCluster(t, opts)
	c.Start()
	return c
}

// InitialCluster is the --initial-cluster of the members: name=peerURL,...
func (c *Cluster) InitialCluster() string {
	parts := make([]string, len(c.Members))
	for i, m := range c.Members {
		parts[i] = m.Name + "=" + m.PeerURL()
	}
	return strings.Join(parts, ",")
}

// Start runs Prepare, starts every member and waits until all are ready. If
// the first start lost a race for a port, all members move to new ports
// together (the --initial-cluster names them all) with fresh data dirs.
func (c *Cluster) Start() {
	c.t.Helper()
	for attempt := 0; ; attempt++ {
		for _, m := range c.Members {
			if c.opts.Prepare != nil {
				c.opts.Prepare(c.t, m)
			}
		}
		for _, m := range c.Members {
			m.Start()
		}
		err := c.awaitReady()
		if err == nil {
			return
		}
		if attempt >= 2 || !c.portConflict() {
			c.t.Fatalf("cluster not ready: %v", err)
		}
		c.t.Logf("port conflict on the cluster's first start, moving every member to new ports: %v", err)
		ports, perr := testenv.FreePorts(3 * len(c.Members))
		if perr != nil {
			c.t.Fatalf("pick free ports: %v", perr)
		}
		for i, m := range c.Members {
			if m.Running() {
				m.Kill()
			}
			if err := os.RemoveAll(m.DataDir); err != nil {
				c.t.Fatalf("clear data dir: %v", err)
			}
			m.ClientPort, m.PeerPort, m.HTTPPort = ports[3*i], ports[3*i+1], ports[3*i+2]
		}
	}
}

func (c *Cluster) awaitReady() error {
	// One bound for all: the members come up together once a quorum runs.
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	var errs []error
	for _, m := range c.Members {
		if err := m.awaitReady(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (c *Cluster) portConflict() bool {
	for _, m := range c.Members {
		b, err := os.ReadFile(m.LogPath)
		if err == nil && int64(len(b)) >= m.logStart && bytes.Contains(b[m.logStart:], []byte("address already in use")) {
			return true
		}
	}
	return false
}

// Endpoints is the comma-separated client endpoints of members, for
// etcdctl's --endpoints; all of c.Members when none are given.
func (c *Cluster) Endpoints(members ...*Server) string {
	if len(members) == 0 {
		members = c.Members
	}
	eps := make([]string, len(members))
	for i, m := range members {
		eps[i] = m.Endpoint()
	}
	return strings.Join(eps, ",")
}

// Others is c.Members without the given members.
func (c *Cluster) Others(except ...*Server) []*Server {
	var out []*Server
	for _, m := range c.Members {
		skip := false
		for _, e := range except {
			skip = skip || m == e
		}
		if !skip {
			out = append(out, m)
		}
	}
	return out
}

// CtlAt runs etcdctl with --endpoints endpoints, fails the test unless it
// exits 0 and returns its stdout.
func (c *Cluster) CtlAt(t testing.TB, endpoints string, args ...string) string {
	t.Helper()
	r := c.Members[0].RunEtcdctlAt(endpoints, nil, "", args...)
	if r.Err != nil {
		t.Fatalf("%v", r)
	}
	return r.Stdout
}

// CtlEndpointStatus is one entry of `etcdctl endpoint status -w json`.
// IDs are json.Number because uint64 ids exceed float64 precision.
type CtlEndpointStatus struct {
	Endpoint string `json:"Endpoint"`
	Status   struct {
		Header struct {
			ClusterID json.Number `json:"cluster_id"`
			MemberID  json.Number `json:"member_id"`
			Revision  int64       `json:"revision"`
		} `json:"header"`
		Leader    json.Number `json:"leader"`
		RaftIndex uint64      `json:"raftIndex"`
		RaftTerm  uint64      `json:"raftTerm"`
		IsLearner bool        `json:"isLearner"`
	} `json:"Status"`
}

// CtlHashKV is one entry of `etcdctl endpoint hashkv -w json`.
type CtlHashKV struct {
	Endpoint string `json:"Endpoint"`
	HashKV   struct {
		Header struct {
			MemberID json.Number `json:"member_id"`
			Revision int64       `json:"revision"`
		} `json:"header"`
		Hash            uint32 `json:"hash"`
		CompactRevision int64  `json:"compact_revision"`
		HashRevision    int64  `json:"hash_revision"`
	} `json:"HashKV"`
}

// CtlMember is one member of `etcdctl member list -w json`.
type CtlMember struct {
	ID         json.Number `json:"ID"`
	Name       string      `json:"name"`
	PeerURLs   []string    `json:"peerURLs"`
	ClientURLs []string    `json:"clientURLs"`
	IsLearner  bool        `json:"isLearner"`
}

// HexID is the member id as etcdctl's member commands take it.
func (m CtlMember) HexID() string {
	id, err := strconv.ParseUint(m.ID.String(), 10, 64)
	if err != nil {
		return "bad-id-" + m.ID.String()
	}
	return strconv.FormatUint(id, 16)
}

// MemberList runs `etcdctl member list -w json` against endpoints.
func (c *Cluster) MemberList(t testing.TB, endpoints string) []CtlMember {
	t.Helper()
	var out struct {
		Members []CtlMember `json:"members"`
	}
	if err := json.Unmarshal([]byte(c.CtlAt(t, endpoints, "member", "list", "-w", "json")), &out); err != nil {
		t.Fatalf("member list -w json: %v", err)
	}
	return out.Members
}

// Leader finds the leader the way an operator does, with `etcdctl endpoint
// status --cluster -w json`, and returns its Server. It polls until every
// member that answers names the same leader and that leader is a running
// member of c.Members.
func (c *Cluster) Leader(t testing.TB) *Server {
	t.Helper()
	deadline := time.Now().Add(readyTimeout)
	var last string
	for {
		var running []*Server
		for _, m := range c.Members {
			if m.Running() {
				running = append(running, m)
			}
		}
		args := []string{"endpoint", "status", "--cluster", "-w", "json"}
		if len(running) < len(c.Members) {
			// --cluster would also ask the members known to be down, each
			// costing the whole command timeout.
			args = []string{"endpoint", "status", "-w", "json"}
		}
		r := c.Members[0].RunEtcdctlAt(c.Endpoints(running...), nil, "", args...)
		var sts []CtlEndpointStatus
		if err := json.Unmarshal([]byte(r.Stdout), &sts); err == nil {
			if lead := c.agreedLeader(sts); lead != nil {
				return lead
			}
		}
		last = r.String()
		if time.Now().After(deadline) {
			t.Fatalf("no agreed leader among the running members within %v; last answer:\n%s", readyTimeout, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (c *Cluster) agreedLeader(sts []CtlEndpointStatus) *Server {
	var leadID json.Number
	var leadURL string
	for _, st := range sts {
		if leadID == "" {
			leadID = st.Status.Leader
		}
		if st.Status.Leader != leadID || leadID == "0" || leadID == "" {
			return nil
		}
		if st.Status.Header.MemberID == leadID {
			leadURL = st.Endpoint
		}
	}
	for _, m := range c.Members {
		// --cluster prints the advertised URL, --endpoints what was given.
		if (leadURL == m.ClientURL() || leadURL == m.Endpoint()) && m.Running() {
			return m
		}
	}
	return nil
}

// WaitHashKVEqual polls `etcdctl endpoint hashkv --cluster -w json` through
// endpoints until want members answer with one revision and one hash, and
// returns that answer. Members converge once they have applied the same log,
// so the test fails if they do not within d.
func (c *Cluster) WaitHashKVEqual(t testing.TB, endpoints string, want int, d time.Duration) []CtlHashKV {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		r := c.Members[0].RunEtcdctlAt(endpoints, nil, "", "endpoint", "hashkv", "--cluster", "-w", "json")
		var hs []CtlHashKV
		if r.Err == nil && json.Unmarshal([]byte(r.Stdout), &hs) == nil && len(hs) == want {
			equal := true
			for _, h := range hs[1:] {
				equal = equal && h.HashKV.Hash == hs[0].HashKV.Hash && h.HashKV.HashRevision == hs[0].HashKV.HashRevision &&
					h.HashKV.CompactRevision == hs[0].HashKV.CompactRevision
			}
			if equal {
				return hs
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("hashkv of %d members not equal within %v; last answer:\n%v", want, d, r)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
