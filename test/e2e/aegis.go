package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/photoncloud/photoncloud/test/testenv"
)

// Bounds of the Aegis harness's waits; generous because the machine is shared.
const (
	aegisReadyTimeout = 30 * time.Second
	photonTimeout     = 30 * time.Second
)

// AegisBinaries are the executables of the Aegis tests.
type AegisBinaries struct {
	Aegis  string // bin/aegis
	Photon string // bin/photon
}

// FindAegisBinaries locates bin/aegis and bin/photon the way FindBinaries
// locates the server. A missing binary is a test failure, not a skip.
func FindAegisBinaries(t testing.TB) AegisBinaries {
	t.Helper()
	dir := os.Getenv(EnvBinDir)
	if dir == "" {
		root, err := testenv.RepoRoot()
		if err != nil {
			t.Fatalf("cannot find the repository root to locate bin/ (set %s): %v", EnvBinDir, err)
		}
		dir = filepath.Join(root, "bin")
	}
	b := AegisBinaries{Aegis: filepath.Join(dir, "aegis"), Photon: filepath.Join(dir, "photon")}
	for _, p := range []string{b.Aegis, b.Photon} {
		fi, err := os.Stat(p)
		if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			t.Fatalf("%s is missing or not executable: run `make build` in the repository root first (or point %s at a directory holding aegis and photon)",
				p, EnvBinDir)
		}
	}
	return b
}

// photonEnv is the environment of an aegis or photon process: the test's
// environment without the variables that would silently reconfigure it
// (PHOTON_AEGIS_*, PHOTON_BOOTSTRAP_ADMIN_PASSWORD, PHOTON_CONFIG_DIR, and
// XDG_CONFIG_HOME, where photon would otherwise keep sessions), plus extra.
func photonEnv(extra []string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PHOTON_") || strings.HasPrefix(kv, "XDG_CONFIG_HOME=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// AegisOptions configure one bin/aegis process.
type AegisOptions struct {
	// Name tells replicas apart in logs. Default "aegis".
	Name string
	// ChainfireEndpoints are the Chainfire client addresses (required).
	ChainfireEndpoints []string
	// BootstrapPassword is written to a file passed as
	// --bootstrap-admin-password-file; empty passes none, so that Aegis
	// generates the password on an empty Chainfire.
	BootstrapPassword string
	// KEKFile is --kek-file; empty leaves the default <data-dir>/kek.
	KEKFile string
	// Issuer is --issuer; empty uses this replica's own HTTP URL.
	Issuer string
	// ExtraArgs are appended to the flags.
	ExtraArgs []string
}

// Aegis is one bin/aegis process on loopback ports that stay fixed across
// restarts, because the issuer URL (and so every token) names the port.
type Aegis struct {
	daemon // Name, LogPath (stderr: the structured log), Kill, Log
	bins   AegisBinaries
	opts   AegisOptions

	DataDir      string
	GRPCPort     int
	HTTPPort     int
	PasswordFile string // "" when none is passed
	StdoutPath   string // stdout: where the one-time bootstrap password goes

	stdout      *os.File
	stdoutStart int64
}

// NewAegis prepares an Aegis replica with fresh ports and data directory
// without starting it. The process is killed (if still running) when the
// test ends, and its output is printed if the test failed.
func NewAegis(t testing.TB, opts AegisOptions) *Aegis {
	t.Helper()
	if len(opts.ChainfireEndpoints) == 0 {
		t.Fatal("NewAegis: ChainfireEndpoints is required")
	}
	if opts.Name == "" {
		opts.Name = "aegis"
	}
	dir := t.TempDir()
	ports, err := testenv.FreePorts(2)
	if err != nil {
		t.Fatalf("pick free ports: %v", err)
	}
	a := &Aegis{
		bins: FindAegisBinaries(t), opts: opts,
		DataDir:  filepath.Join(dir, "data"),
		GRPCPort: ports[0], HTTPPort: ports[1],
		StdoutPath: filepath.Join(dir, opts.Name+".stdout"),
	}
	a.init(t, opts.Name, dir)
	if opts.BootstrapPassword != "" {
		a.PasswordFile = filepath.Join(dir, "admin-password")
		if err := os.WriteFile(a.PasswordFile, []byte(opts.BootstrapPassword+"\n"), 0o600); err != nil {
			t.Fatalf("write bootstrap password file: %v", err)
		}
	}
	if a.stdout, err = os.OpenFile(a.StdoutPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); err != nil {
		t.Fatalf("create aegis stdout: %v", err)
	}
	// Registered after t.TempDir, so it runs before the directory is removed.
	t.Cleanup(a.cleanup)
	return a
}

// StartAegis is NewAegis followed by Start and WaitReady.
func StartAegis(t testing.TB, opts AegisOptions) *Aegis {
	t.Helper()
	a := NewAegis(t, opts)
	a.Start()
	a.WaitReady()
	return a
}

// GRPCAddr is the address of the aegis.v1 gRPC API.
func (a *Aegis) GRPCAddr() string { return "127.0.0.1:" + strconv.Itoa(a.GRPCPort) }

// HTTPURL is the URL of the HTTP listener (/oauth2/*, /.well-known/*).
func (a *Aegis) HTTPURL() string { return "http://127.0.0.1:" + strconv.Itoa(a.HTTPPort) }

// Issuer is the issuer URL this replica puts in its tokens.
func (a *Aegis) Issuer() string {
	if a.opts.Issuer != "" {
		return a.opts.Issuer
	}
	return a.HTTPURL()
}

// Args are the flags of this replica on its current ports.
func (a *Aegis) Args() []string {
	args := []string{
		"--data-dir", a.DataDir,
		"--chainfire-endpoints", strings.Join(a.opts.ChainfireEndpoints, ","),
		"--listen-grpc-urls", "http://" + a.GRPCAddr(),
		"--listen-http-urls", a.HTTPURL(),
		"--issuer", a.Issuer(),
	}
	if a.PasswordFile != "" {
		args = append(args, "--bootstrap-admin-password-file", a.PasswordFile)
	}
	if a.opts.KEKFile != "" {
		args = append(args, "--kek-file", a.opts.KEKFile)
	}
	return append(args, a.opts.ExtraArgs...)
}

// Start launches bin/aegis; it does not wait for readiness.
func (a *Aegis) Start() {
	a.t.Helper()
	if fi, err := a.stdout.Stat(); err == nil {
		a.stdoutStart = fi.Size()
	}
	a.start(a.bins.Aegis, a.Args(), nil, a.stdout)
}

// WaitReady waits until /readyz answers 200, which Aegis serves only after
// it has loaded its index from Chainfire and bootstrapped, failing the
// test if the process exits or takes too long.
func (a *Aegis) WaitReady() {
	a.t.Helper()
	a.waitReady(a.HTTPURL, aegisReadyTimeout, a.retryPortConflict)
}

// retryPortConflict moves a replica that lost the race for its free ports
// on its very first start to new ones.
func (a *Aegis) retryPortConflict() bool {
	if !a.lostPortRace() {
		return false
	}
	ports, err := testenv.FreePorts(2)
	if err != nil {
		return false
	}
	a.GRPCPort, a.HTTPPort = ports[0], ports[1]
	a.Start()
	return true
}

// Stop sends SIGTERM and waits for the process to exit, failing the test
// unless it exits with status 0 in time.
func (a *Aegis) Stop() {
	a.t.Helper()
	p := a.current()
	if p == nil || p.exited() {
		a.t.Fatalf("stop %s: not running", a.Name)
	}
	fmt.Fprintf(a.log, "\n===== e2e %s: SIGTERM\n", time.Now().Format(time.RFC3339Nano))
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		a.t.Fatalf("SIGTERM: %v", err)
	}
	select {
	case <-p.done:
		if p.err != nil {
			a.t.Errorf("%s exited with %v after SIGTERM, want status 0", a.Name, p.err)
		}
	case <-time.After(stopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		a.t.Fatalf("%s did not exit within %v of SIGTERM; killed", a.Name, stopTimeout)
	}
}

// Stdout is everything the replica printed on stdout, over all its runs.
func (a *Aegis) Stdout() string {
	b, err := os.ReadFile(a.StdoutPath)
	if err != nil {
		return fmt.Sprintf("(read stdout: %v)", err)
	}
	return string(b)
}

// StdoutOfCurrentRun is what the current (or last) run printed on stdout.
func (a *Aegis) StdoutOfCurrentRun() string {
	s := a.Stdout()
	if int64(len(s)) < a.stdoutStart {
		return s
	}
	return s[a.stdoutStart:]
}

func (a *Aegis) cleanup() {
	a.finish()
	_ = a.stdout.Close()
	if a.t.Failed() {
		a.t.Logf("%s stdout %s:\n%s", a.Name, a.StdoutPath, tail(a.StdoutPath, logTailLines))
	}
}

// Dial opens a plaintext gRPC connection to the replica, closed at the end
// of the test. Calls carry a token through Bearer.
func (a *Aegis) Dial(t testing.TB) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(a.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("dial %s: %v", a.Name, err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// Bearer returns ctx with the access token as the call's credentials.
func Bearer(ctx context.Context, accessToken string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+accessToken)
}

// HTTPClient is a client for the replica's HTTP listener whose idle
// connections are closed at the end of the test.
func (a *Aegis) HTTPClient(t testing.TB) *http.Client {
	t.Helper()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// OAuthContext makes golang.org/x/oauth2 (and go-oidc) use hc.
func OAuthContext(ctx context.Context, hc *http.Client) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, hc)
}

// CLIOAuthConfig is the built-in public client photon-cli of this replica,
// as any OAuth2 library would configure it.
func (a *Aegis) CLIOAuthConfig() *oauth2.Config {
	return &oauth2.Config{
		ClientID: "photon-cli",
		Endpoint: oauth2.Endpoint{TokenURL: a.HTTPURL() + "/oauth2/token", AuthStyle: oauth2.AuthStyleInParams},
	}
}

// PasswordToken logs username in with the password grant of photon-cli,
// failing the test if that does not work.
func (a *Aegis) PasswordToken(t testing.TB, username, password string) *oauth2.Token {
	t.Helper()
	ctx, cancel := context.WithTimeout(OAuthContext(context.Background(), a.HTTPClient(t)), 30*time.Second)
	defer cancel()
	tok, err := a.CLIOAuthConfig().PasswordCredentialsToken(ctx, username, password)
	if err != nil {
		t.Fatalf("password grant for %s at %s: %v", username, a.Name, err)
	}
	return tok
}

// Photon runs bin/photon with a config dir of its own, so that each Photon
// is one user's CLI with one stored session.
type Photon struct {
	t         testing.TB
	bin       string
	ConfigDir string
	URL       string // PHOTON_AEGIS_URL
	Endpoint  string // PHOTON_AEGIS_ENDPOINT
}

// NewPhoton returns a photon CLI with an empty config dir pointed at a.
func NewPhoton(t testing.TB, a *Aegis) *Photon {
	t.Helper()
	return &Photon{t: t, bin: FindAegisBinaries(t).Photon, ConfigDir: t.TempDir(), URL: a.HTTPURL(), Endpoint: a.GRPCAddr()}
}

// PhotonResult is the outcome of one photon run.
type PhotonResult struct {
	Args   []string
	Stdout string
	Stderr string
	Code   int // exit status; -1 if photon did not exit by itself
	Err    error
}

func (r PhotonResult) String() string {
	return fmt.Sprintf("photon %s: exit %d (%v)\nstdout:\n%s\nstderr:\n%s", strings.Join(r.Args, " "), r.Code, r.Err, r.Stdout, r.Stderr)
}

// Run runs photon with stdin and args, bounded by photonTimeout.
func (p *Photon) Run(stdin string, args ...string) PhotonResult {
	ctx, cancel := context.WithTimeout(context.Background(), photonTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, p.bin, args...)
	cmd.Env = photonEnv([]string{
		"PHOTON_CONFIG_DIR=" + p.ConfigDir,
		"PHOTON_AEGIS_URL=" + p.URL,
		"PHOTON_AEGIS_ENDPOINT=" + p.Endpoint,
	})
	cmd.WaitDelay = 5 * time.Second
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := PhotonResult{Args: args, Stdout: stdout.String(), Stderr: stderr.String(), Err: err}
	var ee *exec.ExitError
	switch {
	case err == nil:
		r.Code = 0
	case errors.As(err, &ee) && ee.Exited():
		r.Code = ee.ExitCode()
	default:
		r.Code = -1
	}
	if ctx.Err() != nil {
		r.Code, r.Err = -1, fmt.Errorf("photon timed out after %v: %w", photonTimeout, err)
	}
	return r
}

// OK runs photon and fails the test unless it exits 0; it returns stdout.
func (p *Photon) OK(stdin string, args ...string) string {
	p.t.Helper()
	r := p.Run(stdin, args...)
	if r.Code != 0 {
		p.t.Fatalf("want exit 0: %v", r)
	}
	return r.Stdout
}

// Exit runs photon and reports an error unless it exits with want.
func (p *Photon) Exit(want int, stdin string, args ...string) PhotonResult {
	p.t.Helper()
	r := p.Run(stdin, args...)
	if r.Code != want {
		p.t.Errorf("want exit %d: %v", want, r)
	}
	return r
}

// PhotonSession is the stored session of a Photon with its Aegis.
type PhotonSession struct {
	AccessToken  string    `json:"access_token"`
	Expiry       time.Time `json:"expiry"`
	RefreshToken string    `json:"refresh_token"`
}

func (p *Photon) credentialsPath() string { return filepath.Join(p.ConfigDir, "credentials.json") }

// Session reads the tokens photon stored for its Aegis URL.
func (p *Photon) Session() PhotonSession {
	p.t.Helper()
	var f struct {
		Profiles map[string]PhotonSession `json:"profiles"`
	}
	b, err := os.ReadFile(p.credentialsPath())
	if err != nil {
		p.t.Fatalf("read photon credentials: %v", err)
	}
	if err := json.Unmarshal(b, &f); err != nil {
		p.t.Fatalf("decode photon credentials: %v", err)
	}
	s, ok := f.Profiles[p.URL]
	if !ok || s.AccessToken == "" {
		p.t.Fatalf("photon credentials hold no session for %s:\n%s", p.URL, b)
	}
	return s
}

// ExpireAccessToken marks the stored access token as expired, as if its
// lifetime had passed, so that the next photon command must use the stored
// refresh token. Only the expiry changes; the rest of the file is kept as
// photon wrote it.
func (p *Photon) ExpireAccessToken() {
	p.t.Helper()
	b, err := os.ReadFile(p.credentialsPath())
	if err != nil {
		p.t.Fatalf("read photon credentials: %v", err)
	}
	var f map[string]any
	if err := json.Unmarshal(b, &f); err != nil {
		p.t.Fatalf("decode photon credentials: %v", err)
	}
	profiles, _ := f["profiles"].(map[string]any)
	prof, ok := profiles[p.URL].(map[string]any)
	if !ok {
		p.t.Fatalf("photon credentials hold no session for %s:\n%s", p.URL, b)
	}
	prof["expiry"] = time.Now().Add(-time.Hour).UTC().Format(time.RFC3339Nano)
	out, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		p.t.Fatalf("encode photon credentials: %v", err)
	}
	if err := os.WriteFile(p.credentialsPath(), out, 0o600); err != nil {
		p.t.Fatalf("write photon credentials: %v", err)
	}
}

// Freeze stops the server process with SIGSTOP, so that it holds its
// connections but answers nothing, and returns the function that resumes
// it. A test uses it to show that a client answers without the server.
func (s *Server) Freeze() (thaw func()) {
	s.t.Helper()
	p := s.current()
	if p == nil || p.exited() {
		s.t.Fatalf("freeze %s: not running", s.bins.Kind)
	}
	fmt.Fprintf(s.log, "\n===== e2e %s: SIGSTOP\n", time.Now().Format(time.RFC3339Nano))
	if err := p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		s.t.Fatalf("SIGSTOP: %v", err)
	}
	var once sync.Once
	thaw = func() {
		once.Do(func() {
			if err := p.cmd.Process.Signal(syscall.SIGCONT); err != nil && !p.exited() {
				s.t.Errorf("SIGCONT: %v", err)
			}
			fmt.Fprintf(s.log, "\n===== e2e %s: SIGCONT\n", time.Now().Format(time.RFC3339Nano))
		})
	}
	// A test that fails while the server is frozen still resumes it, so
	// that the server's own cleanup finds it as it left it.
	s.t.Cleanup(thaw)
	return thaw
}
