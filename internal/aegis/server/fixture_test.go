package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	aegisv1 "github.com/photoncloud/photoncloud/api/aegis/v1"
	"github.com/photoncloud/photoncloud/internal/aegis/authn"
	"github.com/photoncloud/photoncloud/internal/aegis/password"
	"github.com/photoncloud/photoncloud/internal/aegis/policy"
	"github.com/photoncloud/photoncloud/internal/aegis/store"
	"github.com/photoncloud/photoncloud/internal/aegis/token"
	"github.com/photoncloud/photoncloud/internal/chainfire"
)

// One Chainfire, store, Aegis API server and gRPC listener serve every test
// of the package: starting them costs seconds, and the tests use fresh
// names for everything they change.
var tenv *env

func TestMain(m *testing.M) {
	code := func() int {
		e, err := startEnv()
		if err != nil {
			fmt.Fprintln(os.Stderr, "test environment:", err)
			return 1
		}
		tenv = e
		defer e.close()
		return m.Run()
	}()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutine leak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

type env struct {
	dir  string
	cf   *chainfire.Server
	cli  *clientv3.Client
	st   *store.Store
	ring *token.Keyring
	cfg  token.Config
	iss  *token.Issuer
	ver  *token.Verifier
	reg  *prometheus.Registry
	srv  *Server
	gs   *grpc.Server
	conn *grpc.ClientConn
	addr string

	org      aegisv1.OrgServiceClient
	identity aegisv1.IdentityServiceClient
	pol      aegisv1.PolicyServiceClient
	authz    aegisv1.AuthzServiceClient
	audit    aegisv1.AuditServiceClient

	tokens map[string]string // persona name → access token
	seq    atomic.Int64
}

func testLogger() *slog.Logger {
	if os.Getenv("SERVER_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	return addr, l.Close()
}

func startEnv() (_ *env, err error) {
	e := &env{tokens: map[string]string{}}
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	if e.dir, err = os.MkdirTemp("", "aegis-server-test-"); err != nil {
		return nil, err
	}
	peer, err := freePort()
	if err != nil {
		return nil, err
	}
	cfg := chainfire.Config{
		Name: "cf", DataDir: e.dir, ListenClientURLs: []string{"http://127.0.0.1:0"},
		ListenPeerURLs: []string{"http://" + peer}, ListenHTTPURLs: []string{}, Logger: testLogger(),
	}
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if e.cf, err = chainfire.Start(ctx, cfg); err != nil {
		return nil, err
	}
	e.cli, err = clientv3.New(clientv3.Config{Endpoints: []string{e.cf.ClientAddr()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return nil, err
	}
	if e.st, err = store.Open(ctx, store.Options{Client: e.cli, Logger: testLogger(), SweepInterval: -1}); err != nil {
		return nil, err
	}
	kek, err := token.NewKEK(make([]byte, token.KEKSize))
	if err != nil {
		return nil, err
	}
	e.cfg = token.Config{Issuer: "https://aegis.test"}
	if e.ring, err = token.OpenKeyring(ctx, e.st.KeyStore(), e.cfg, kek); err != nil {
		return nil, err
	}
	if e.iss, err = token.NewIssuer(e.ring, e.cfg, e.st.Revocations()); err != nil {
		return nil, err
	}
	if e.ver, err = token.NewVerifier(e.ring, e.cfg, e.st.Revocations()); err != nil {
		return nil, err
	}
	// Cheap argon2 parameters: the tests hash dozens of passwords.
	hasher, err := password.NewHasher(password.Options{Params: password.Params{Memory: 64, Time: 1, Threads: 1}})
	if err != nil {
		return nil, err
	}
	e.reg = prometheus.NewRegistry()
	if e.srv, err = New(Options{Store: e.st, Verifier: e.ver, Hasher: hasher, Logger: testLogger(), Registry: e.reg}); err != nil {
		return nil, err
	}
	e.gs = grpc.NewServer(grpc.ChainUnaryInterceptor(e.srv.UnaryInterceptor()), grpc.ChainStreamInterceptor(e.srv.StreamInterceptor()))
	e.srv.Register(e.gs)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	e.addr = l.Addr().String()
	go func() { _ = e.gs.Serve(l) }()
	if e.conn, err = grpc.NewClient(e.addr, grpc.WithTransportCredentials(insecure.NewCredentials())); err != nil {
		return nil, err
	}
	e.org = aegisv1.NewOrgServiceClient(e.conn)
	e.identity = aegisv1.NewIdentityServiceClient(e.conn)
	e.pol = aegisv1.NewPolicyServiceClient(e.conn)
	e.authz = aegisv1.NewAuthzServiceClient(e.conn)
	e.audit = aegisv1.NewAuditServiceClient(e.conn)
	if err := e.seed(ctx); err != nil {
		return nil, fmt.Errorf("seed: %w", err)
	}
	return e, nil
}

func (e *env) close() {
	if e.conn != nil {
		_ = e.conn.Close()
	}
	if e.gs != nil {
		e.gs.Stop()
	}
	if e.srv != nil {
		_ = e.srv.Close()
	}
	if e.st != nil {
		_ = e.st.Close()
	}
	if e.cli != nil {
		_ = e.cli.Close()
	}
	if e.cf != nil {
		_ = e.cf.Close()
	}
	if e.dir != "" {
		_ = os.RemoveAll(e.dir)
	}
}

// Personas of the matrix, in its column order.
type persona struct {
	key  string
	name string // principal name
	kind token.PrincipalKind
	org  string
}

var personas = []persona{
	{"sysadmin", "orgs/system/users/admin", token.KindUser, "system"},
	{"orgadmin", "orgs/acme/users/oadmin", token.KindUser, "acme"},
	{"projadmin", "orgs/acme/users/padmin", token.KindUser, "acme"},
	{"editor", "orgs/acme/users/editor", token.KindUser, "acme"},
	{"viewer", "orgs/acme/users/viewer", token.KindUser, "acme"},
	{"outsider", "orgs/beta/users/eve", token.KindUser, "beta"},
	{"sa", "orgs/acme/projects/web/serviceAccounts/ci", token.KindServiceAccount, "acme"},
}

// Fixed objects the matrix reads; mutations use fresh objects.
const (
	acme       = "orgs/acme"
	beta       = "orgs/beta"
	web        = "orgs/acme/projects/web"
	targetUser = "orgs/acme/users/target"
	targetGrp  = "orgs/acme/groups/tgroup"
	targetSA   = "orgs/acme/projects/web/serviceAccounts/tsa"
	customRole = "orgs/acme/roles/custom1"
	targetBind = "orgs/acme/projects/web/bindings/tb"
	sysBind    = "system/bindings/sysadmin"
)

var targetKey string

func (e *env) seed(ctx context.Context) error {
	st := e.st
	for _, o := range []string{"system", "acme", "beta"} {
		if _, err := st.CreateOrg(ctx, o, &aegisv1.Org{DisplayName: o}); err != nil {
			return err
		}
	}
	if _, err := st.CreateProject(ctx, acme, "web", &aegisv1.Project{DisplayName: "Web", Labels: map[string]string{"env": "prod"}}); err != nil {
		return err
	}
	for _, u := range []string{"orgs/system/users/admin", "orgs/acme/users/oadmin", "orgs/acme/users/padmin",
		"orgs/acme/users/editor", "orgs/acme/users/viewer", "orgs/beta/users/eve", targetUser} {
		if _, err := st.CreateUser(ctx, "orgs/"+policy.OrgOf(u), lastSegment(u), nil, ""); err != nil {
			return err
		}
	}
	for _, sa := range []string{"orgs/acme/projects/web/serviceAccounts/ci", targetSA} {
		if _, err := st.CreateServiceAccount(ctx, web, lastSegment(sa), nil); err != nil {
			return err
		}
	}
	k, err := st.CreateServiceAccountKey(ctx, targetSA, &aegisv1.ServiceAccountKey{Description: "fixed"}, "sha256:00")
	if err != nil {
		return err
	}
	targetKey = k.GetName()
	if _, err := st.CreateGroup(ctx, acme, "tgroup", nil); err != nil {
		return err
	}
	if _, err := st.AddGroupMember(ctx, targetGrp, targetUser, ""); err != nil {
		return err
	}
	if _, err := st.CreateRole(ctx, acme, "custom1", &aegisv1.Role{Permissions: []string{"plasmavmc:vms:get"}}); err != nil {
		return err
	}
	binds := []struct{ parent, id, member, role string }{
		{"system", "sysadmin", "orgs/system/users/admin", "roles/SystemAdmin"},
		{acme, "oadmin", "orgs/acme/users/oadmin", "roles/OrgAdmin"},
		{web, "padmin", "orgs/acme/users/padmin", "roles/ProjectAdmin"},
		{web, "editor", "orgs/acme/users/editor", "roles/ProjectEditor"},
		{web, "viewer", "orgs/acme/users/viewer", "roles/ProjectViewer"},
		{beta, "eve", "orgs/beta/users/eve", "roles/OrgAdmin"},
		{web, "ci", "orgs/acme/projects/web/serviceAccounts/ci", "roles/ProjectEditor"},
		{"system", "ci-checker", "orgs/acme/projects/web/serviceAccounts/ci", "roles/aegis.authzChecker"},
		{web, "tb", targetUser, "roles/ProjectViewer"},
	}
	for _, b := range binds {
		if _, err := st.CreateBinding(ctx, b.parent, b.id, &aegisv1.Binding{Member: b.member, Role: b.role}, "seed"); err != nil {
			return fmt.Errorf("binding %s/%s: %w", b.parent, b.id, err)
		}
	}
	for _, p := range personas {
		raw, _, err := e.iss.Issue(token.Grant{Subject: p.name, Kind: p.kind, Org: p.org}, time.Hour)
		if err != nil {
			return err
		}
		e.tokens[p.key] = raw
	}
	return nil
}

// as returns a context whose calls carry the persona's token.
func (e *env) as(t testing.TB, key string) context.Context {
	t.Helper()
	tok, ok := e.tokens[key]
	if !ok {
		t.Fatalf("no persona %q", key)
	}
	return withToken(t, tok)
}

func withToken(t testing.TB, tok string) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// issue mints a token for principal, optionally downscoped.
func (e *env) issue(t testing.TB, g token.Grant) string {
	t.Helper()
	raw, _, err := e.iss.Issue(g, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// id returns a fresh id with prefix p.
func (e *env) id(p string) string { return fmt.Sprintf("%s%d", p, e.seq.Add(1)) }

func must[T any](t testing.TB) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func wantCode(t testing.TB, err error, want codes.Code) {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Fatalf("got %v (%v), want %v", got, err, want)
	}
}

// flushAudit waits until every audit event reported so far is written.
func (e *env) flushAudit(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.srv.audit.flush(ctx); err != nil {
		t.Fatal(err)
	}
}

func codeOf(err error) codes.Code { return status.Code(err) }

func indexByte(s string, c byte) int { return strings.IndexByte(s, c) }

// serviceMethods lists the method names of a service from the registered
// descriptors.
func serviceMethods(t testing.TB, service string) []string {
	t.Helper()
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(service))
	if err != nil {
		t.Fatal(err)
	}
	ms := d.(protoreflect.ServiceDescriptor).Methods()
	out := make([]string, ms.Len())
	for i := range out {
		out[i] = string(ms.Get(i).Name())
	}
	return out
}

type (
	emptyT     = emptypb.Empty
	storeCreds = store.UserCredentials
	saCreds    = store.ServiceAccountCredentials
)

var (
	hashSecret = authn.HashClientSecret
	tsOf       = timestamppb.New
)
