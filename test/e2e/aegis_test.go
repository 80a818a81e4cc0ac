package e2e

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	aegisv1 "github.com/photoncloud/photoncloud/api/aegis/v1"
)

// The Aegis tests run bin/chainfire, bin/aegis and bin/photon as separate
// processes and use Aegis the way an operator (photon) and a third-party
// client (golang.org/x/oauth2, go-oidc) would.

const (
	adminPassword = "e2e admin password"
	alicePassword = "e2e alice password"
	alice         = "orgs/acme/users/alice"
	webProject    = "orgs/acme/projects/web"
	vmCreate      = "plasmavmc:vms:create"
	// aegisAudience is Aegis's default audience, the OIDC client id a
	// relying party verifies tokens for.
	aegisAudience = "photoncloud"
	// propagation is the bound issue 4 sets for a change made through one
	// replica to be enforced by every other.
	propagation = time.Second
)

// startAegisStack starts a Chainfire and one Aegis on it whose admin has
// adminPassword.
func startAegisStack(t *testing.T) *Aegis {
	t.Helper()
	FindAegisBinaries(t) // before starting anything
	cf := StartServer(t, Options{Name: "cf"})
	return StartAegis(t, AegisOptions{ChainfireEndpoints: []string{cf.Endpoint()}, BootstrapPassword: adminPassword})
}

// decodeProto reads photon's -o json output (protojson) into m.
func decodeProto(t testing.TB, what, data string, m proto.Message) {
	t.Helper()
	if err := protojson.Unmarshal([]byte(data), m); err != nil {
		t.Fatalf("%s: decode %T from %q: %v", what, m, data, err)
	}
}

// decodeAuditList reads `photon iam audit list -o json`.
func decodeAuditList(t testing.TB, data string) []*aegisv1.AuditEvent {
	t.Helper()
	var raws []json.RawMessage
	decodeJSON(t, "audit list", data, &raws)
	evs := make([]*aegisv1.AuditEvent, len(raws))
	for i, r := range raws {
		evs[i] = &aegisv1.AuditEvent{}
		decodeProto(t, "audit event", string(r), evs[i])
	}
	return evs
}

// checkArgs are the arguments of `photon iam check` of principal on resource.
func checkArgs(principal, permission, resource string) []string {
	args := []string{"iam", "check", "--permission", permission, "--resource", resource}
	if principal != "" {
		args = append(args, "--principal", principal)
	}
	return args
}

// createBinding runs `photon iam bindings create` and returns the binding.
func createBinding(t testing.TB, p *Photon, member, role, scope string, deny bool) *aegisv1.Binding {
	t.Helper()
	args := []string{"iam", "bindings", "create", "--member", member, "--role", role, "--scope", scope, "-o", "json"}
	if deny {
		args = append(args, "--deny")
	}
	b := &aegisv1.Binding{}
	decodeProto(t, "bindings create", p.OK("", args...), b)
	return b
}

// oidcVerifier is a relying party's verifier of Aegis tokens, configured
// only from the issuer URL: discovery names the JWKS and the algorithms.
func oidcVerifier(t testing.TB, ctx context.Context, issuer string) *oidc.IDTokenVerifier {
	t.Helper()
	provider, err := oidc.NewProvider(ctx, issuer)
	if err != nil {
		t.Fatalf("go-oidc discovery at %s: %v", issuer, err)
	}
	return provider.Verifier(&oidc.Config{ClientID: aegisAudience})
}

// verifySubject fails the test unless v accepts tok with subject sub.
func verifySubject(t testing.TB, ctx context.Context, v *oidc.IDTokenVerifier, what, tok, sub string) {
	t.Helper()
	idt, err := v.Verify(ctx, tok)
	if err != nil {
		t.Errorf("go-oidc rejects %s: %v", what, err)
		return
	}
	if idt.Subject != sub {
		t.Errorf("go-oidc: %s has subject %q, want %q", what, idt.Subject, sub)
	}
}

// writeKEK creates a key-encryption key file the way an operator
// would (`head -c 32 /dev/urandom | base64`) for replicas to share.
func writeKEK(t testing.TB) string {
	t.Helper()
	key := make([]byte, 32)
	_, _ = rand.Read(key) // never fails: crypto/rand crashes the program instead
	path := filepath.Join(t.TempDir(), "kek")
	if err := os.WriteFile(path, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		t.Fatalf("write kek: %v", err)
	}
	return path
}

// tamper flips one character of a JWT's payload.
func tamper(jwt string) string {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 || len(parts[1]) < 10 {
		return jwt + "x"
	}
	b := []byte(parts[1])
	if b[5] == 'A' {
		b[5] = 'B'
	} else {
		b[5] = 'A'
	}
	parts[1] = string(b)
	return strings.Join(parts, ".")
}

// pollFor calls f every few milliseconds until it is true or d has passed
// since start, and returns the time since start and whether f became true.
// Starting the clock before the change is requested (not when it was
// acknowledged) makes every measured propagation an upper bound.
func pollFor(start time.Time, d time.Duration, f func() bool) (time.Duration, bool) {
	for {
		if f() {
			return time.Since(start), true
		}
		if time.Since(start) > d {
			return time.Since(start), false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// authorize asks the Aegis behind cc (as the holder of token) whether
// principal has permission on resource.
func authorize(ctx context.Context, cc *grpc.ClientConn, token, principal, permission, resource string) (*aegisv1.Decision, error) {
	cctx, cancel := context.WithTimeout(Bearer(ctx, token), 5*time.Second)
	defer cancel()
	resp, err := aegisv1.NewAuthzServiceClient(cc).Authorize(cctx, &aegisv1.AuthorizeRequest{
		Subject:    &aegisv1.Subject{Identity: &aegisv1.Subject_Principal{Principal: principal}},
		Permission: permission, Resource: resource,
	})
	return resp.GetDecision(), err
}

// whoami calls WhoAmI with token.
func whoami(ctx context.Context, cc *grpc.ClientConn, token string) (*aegisv1.WhoAmIResponse, error) {
	cctx, cancel := context.WithTimeout(Bearer(ctx, token), 5*time.Second)
	defer cancel()
	return aegisv1.NewAuthnServiceClient(cc).WhoAmI(cctx, &aegisv1.WhoAmIRequest{})
}

// TestAegisAcceptance is issue 4's acceptance flow with the real binaries:
// the admin logs in with the bootstrap password, builds an org, a project,
// a user and bindings with photon, and `photon iam check` answers as the
// model says; a tenant user cannot see or touch what is not theirs; the
// audit log has the admin's changes; and a service account key works with
// the standard OAuth2 client-credentials client, its token verified by
// go-oidc through the running Aegis's discovery document.
func TestAegisAcceptance(t *testing.T) {
	a := startAegisStack(t)
	ctx := OAuthContext(Ctx(t, time.Minute), a.HTTPClient(t))

	admin := NewPhoton(t, a)
	wantContains(t, "login", admin.OK(adminPassword+"\n", "login", "--username", "admin", "--password-stdin"), "as orgs/system/users/admin")
	who := &aegisv1.WhoAmIResponse{}
	decodeProto(t, "whoami", admin.OK("", "whoami", "-o", "json"), who)
	if who.GetPrincipal() != "orgs/system/users/admin" || who.GetAuthenticationMethod() != aegisv1.WhoAmIResponse_AUTHENTICATION_METHOD_PASSWORD {
		t.Errorf("whoami = %v, want the admin authenticated by password", who)
	}

	admin.OK("", "iam", "orgs", "create", "acme")
	admin.OK("", "iam", "projects", "create", "web", "--org", "acme")
	admin.OK("", "iam", "projects", "create", "api", "--org", "acme")
	admin.OK(alicePassword+"\n", "iam", "users", "create", "alice", "--org", "acme", "--password-stdin")
	allow := createBinding(t, admin, alice, "ProjectEditor", webProject, false)

	// Allowed: the answer names the binding and the role that decided.
	r := admin.Exit(0, "", checkArgs(alice, vmCreate, webProject+"/vms/vm-1")...)
	wantMatch(t, "check allowed", r.Stdout, `DECISION\s+ALLOWED\n.*BINDING\s+`+regexp.QuoteMeta(allow.GetName())+`\n\s*ROLE\s+roles/ProjectEditor\n.*`)
	// A resource in another project of the same org: default deny.
	r = admin.Exit(1, "", checkArgs(alice, vmCreate, "orgs/acme/projects/api/vms/vm-1")...)
	wantMatch(t, "check in another project", r.Stdout, `DECISION\s+DENIED\nREASON\s+no_allow_binding\n.*`)
	// A deny on one VM wins over the project-wide allow, and only there.
	deny := createBinding(t, admin, alice, "ProjectEditor", webProject+"/vms/vm-1", true)
	r = admin.Exit(1, "", checkArgs(alice, vmCreate, webProject+"/vms/vm-1")...)
	wantMatch(t, "check after deny", r.Stdout, `DECISION\s+DENIED\nREASON\s+denied_by_binding\n.*BINDING\s+`+regexp.QuoteMeta(deny.GetName())+`\n\s*ROLE\s+roles/ProjectEditor\n.*`)
	admin.Exit(0, "", checkArgs(alice, vmCreate, webProject+"/vms/vm-2")...)
	// No decision at all is exit 2, never a denial.
	r = admin.Exit(2, "", checkArgs(alice, "plasmavmc:vms", webProject+"/vms/vm-1")...)
	wantContains(t, "check with a garbled permission", r.Stderr, "invalid")
	if r.Stdout != "" {
		t.Errorf("check with a garbled permission printed a decision: %q", r.Stdout)
	}

	// alice, in a CLI of her own.
	al := NewPhoton(t, a)
	wantContains(t, "alice login", al.OK(alicePassword+"\n", "login", "--username", "alice@acme", "--password-stdin"), "as "+alice)
	decodeProto(t, "alice whoami", al.OK("", "whoami", "-o", "json"), who)
	if who.GetPrincipal() != alice || who.GetOrg() != "orgs/acme" {
		t.Errorf("alice whoami = %v", who)
	}
	// The system org's objects do not exist for her: NotFound, never
	// PermissionDenied, so that she learns nothing about them.
	for _, args := range [][]string{
		{"iam", "orgs", "get", "system"},
		{"iam", "users", "get", "admin", "--org", "system"},
	} {
		r := al.Exit(1, "", args...)
		wantContains(t, strings.Join(args, " "), r.Stderr, "not found")
	}
	orgs := al.OK("", "iam", "orgs", "list", "-o", "json")
	if strings.Contains(orgs, "orgs/system") {
		t.Errorf("alice's org list shows the system org: %s", orgs)
	}
	r = al.Exit(1, "", "iam", "orgs", "create", "evil")
	wantContains(t, "alice creates an org", r.Stderr, "permission denied")
	// She may ask about herself, and gets the same answers.
	al.Exit(0, "", checkArgs("", vmCreate, webProject+"/vms/vm-2")...)
	al.Exit(1, "", checkArgs("", vmCreate, webProject+"/vms/vm-1")...)

	// The audit log has every admin change, by the admin, and alice's
	// refused attempts.
	events := decodeAuditList(t, admin.OK("", "iam", "audit", "list", "-o", "json"))
	changes := map[string]string{} // resource -> method of admin changes by the admin
	deniedAlice := map[string]bool{}
	for _, e := range events {
		switch {
		case e.GetKind() == aegisv1.AuditEvent_KIND_ADMIN_CHANGE && e.GetPrincipal() == "orgs/system/users/admin":
			changes[e.GetResource()] = e.GetMethod()
		case e.GetKind() == aegisv1.AuditEvent_KIND_ACCESS_DENIED && e.GetPrincipal() == alice:
			deniedAlice[e.GetResource()] = true
		}
	}
	for res, method := range map[string]string{
		"orgs/acme":              "/aegis.v1.OrgService/CreateOrg",
		webProject:               "/aegis.v1.OrgService/CreateProject",
		"orgs/acme/projects/api": "/aegis.v1.OrgService/CreateProject",
		alice:                    "/aegis.v1.IdentityService/CreateUser",
		allow.GetName():          "/aegis.v1.PolicyService/CreateBinding",
		deny.GetName():           "/aegis.v1.PolicyService/CreateBinding",
	} {
		if changes[res] != method {
			t.Errorf("audit: no admin change %s of %s by the admin (have %v)", method, res, changes)
		}
	}
	for _, res := range []string{"orgs/system", "orgs/system/users/admin", "system"} {
		if !deniedAlice[res] {
			t.Errorf("audit: no access_denied event of alice on %s (have %v)", res, deniedAlice)
		}
	}

	// A service account key is an ordinary OAuth2 client: the standard
	// client-credentials client gets a token, and go-oidc verifies it from
	// nothing but the issuer URL.
	admin.OK("", "iam", "sa", "create", "ci", "--org", "acme", "--project", "web")
	key := &aegisv1.ServiceAccountKey{}
	decodeProto(t, "sa keys create", admin.OK("", "iam", "sa", "keys", "create", "ci", "--org", "acme", "--project", "web", "-o", "json"), key)
	if key.GetClientId() == "" || key.GetClientSecret() == "" {
		t.Fatalf("sa keys create printed no client id or secret: %v", key)
	}
	cc := clientcredentials.Config{ClientID: key.GetClientId(), ClientSecret: key.GetClientSecret(), TokenURL: a.HTTPURL() + "/oauth2/token"}
	saTok, err := cc.Token(ctx)
	if err != nil {
		t.Fatalf("client_credentials grant: %v", err)
	}
	v := oidcVerifier(t, ctx, a.Issuer())
	verifySubject(t, ctx, v, "the service account's token", saTok.AccessToken, webProject+"/serviceAccounts/ci")
	verifySubject(t, ctx, v, "photon's access token", admin.Session().AccessToken, "orgs/system/users/admin")
	if _, err := v.Verify(ctx, tamper(saTok.AccessToken)); err == nil {
		t.Error("go-oidc accepts a token with a tampered payload; the verification proves nothing")
	}
	// Aegis itself takes the service account's token.
	sw, err := whoami(ctx, a.Dial(t), saTok.AccessToken)
	if err != nil || sw.GetPrincipal() != webProject+"/serviceAccounts/ci" ||
		sw.GetAuthenticationMethod() != aegisv1.WhoAmIResponse_AUTHENTICATION_METHOD_SERVICE_ACCOUNT_KEY {
		t.Errorf("WhoAmI with the client-credentials token = %v, %v", sw, err)
	}
	bad := clientcredentials.Config{ClientID: key.GetClientId(), ClientSecret: "wrong", TokenURL: cc.TokenURL}
	if _, err := bad.Token(ctx); err == nil {
		t.Error("client_credentials grant with a wrong secret succeeded")
	}
}

// TestAegisDurability kills bin/aegis with SIGKILL right after its last
// acknowledged change and restarts it on the same Chainfire: every
// acknowledged object is still there, tokens issued before the crash still
// verify (signing keys are in Chainfire, sealed with the KEK in the data
// dir), and photon keeps working on its old session, including the refresh
// token issued before the crash.
func TestAegisDurability(t *testing.T) {
	a := startAegisStack(t)
	ctx := OAuthContext(Ctx(t, time.Minute), a.HTTPClient(t))

	admin := NewPhoton(t, a)
	admin.OK(adminPassword+"\n", "login", "--username", "admin", "--password-stdin")
	admin.OK("", "iam", "orgs", "create", "acme")
	admin.OK("", "iam", "projects", "create", "web", "--org", "acme")
	admin.OK(alicePassword+"\n", "iam", "users", "create", "alice", "--org", "acme", "--password-stdin")
	admin.OK("", "iam", "groups", "create", "devs", "--org", "acme")
	admin.OK("", "iam", "groups", "members", "add", "devs", alice, "--org", "acme")
	admin.OK("", "iam", "sa", "create", "ci", "--org", "acme", "--project", "web")
	key := &aegisv1.ServiceAccountKey{}
	decodeProto(t, "sa keys create", admin.OK("", "iam", "sa", "keys", "create", "ci", "--org", "acme", "--project", "web", "-o", "json"), key)
	cc := clientcredentials.Config{ClientID: key.GetClientId(), ClientSecret: key.GetClientSecret(), TokenURL: a.HTTPURL() + "/oauth2/token"}
	saTok, err := cc.Token(ctx)
	if err != nil {
		t.Fatalf("client_credentials grant: %v", err)
	}
	allow := createBinding(t, admin, "orgs/acme/groups/devs", "ProjectEditor", webProject, false)
	// A revocation is an acknowledged change too: alice's logged-out
	// token must stay dead after the crash.
	al := NewPhoton(t, a)
	al.OK(alicePassword+"\n", "login", "--username", "alice@acme", "--password-stdin")
	revoked := al.Session()
	al.OK("", "logout")
	before := admin.Session()
	// The last change, then SIGKILL at once: no chance to flush anything.
	deny := createBinding(t, admin, alice, "ProjectEditor", webProject+"/vms/vm-1", true)
	a.Kill()
	a.Start()
	a.WaitReady()

	// Every acknowledged object, read with the pre-crash access token.
	for _, args := range [][]string{
		{"iam", "orgs", "get", "acme"},
		{"iam", "projects", "get", "web", "--org", "acme"},
		{"iam", "users", "get", "alice", "--org", "acme"},
		{"iam", "groups", "get", "devs", "--org", "acme"},
		{"iam", "sa", "get", "ci", "--org", "acme", "--project", "web"},
		{"iam", "bindings", "get", allow.GetName()},
		{"iam", "bindings", "get", deny.GetName()},
	} {
		admin.OK("", args...)
	}
	wantContains(t, "group members", admin.OK("", "iam", "groups", "members", "list", "devs", "--org", "acme"), alice)
	wantContains(t, "sa keys list", admin.OK("", "iam", "sa", "keys", "list", "ci", "--org", "acme", "--project", "web"), key.GetClientId())
	if s := admin.Session(); s.RefreshToken != before.RefreshToken || s.AccessToken != before.AccessToken {
		t.Error("photon replaced its session although the access token was still valid: the restarted Aegis refused it")
	}
	// The restarted Aegis enforces both bindings (the allow through the
	// group membership).
	r := admin.Exit(0, "", checkArgs(alice, vmCreate, webProject+"/vms/vm-2")...)
	wantContains(t, "check allowed after restart", r.Stdout, allow.GetName())
	r = admin.Exit(1, "", checkArgs(alice, vmCreate, webProject+"/vms/vm-1")...)
	wantContains(t, "check denied after restart", r.Stdout, deny.GetName())

	// Tokens from before the crash verify through the new process's
	// discovery document and JWKS.
	v := oidcVerifier(t, ctx, a.Issuer())
	verifySubject(t, ctx, v, "pre-crash admin token", before.AccessToken, "orgs/system/users/admin")
	verifySubject(t, ctx, v, "pre-crash service account token", saTok.AccessToken, webProject+"/serviceAccounts/ci")
	if _, err := whoami(ctx, a.Dial(t), revoked.AccessToken); status.Code(err) != codes.Unauthenticated {
		t.Errorf("WhoAmI with alice's token revoked before the crash: %v, want Unauthenticated", err)
	}
	if _, err := a.CLIOAuthConfig().TokenSource(ctx, &oauth2.Token{RefreshToken: revoked.RefreshToken}).Token(); err == nil {
		t.Error("the restarted Aegis accepts a refresh token revoked before the crash")
	}
	// Secrets survived: alice's password hash and the key's secret hash.
	NewPhoton(t, a).OK(alicePassword+"\n", "login", "--username", "alice@acme", "--password-stdin")
	if _, err := cc.Token(ctx); err != nil {
		t.Errorf("client_credentials grant with the pre-crash key after the restart: %v", err)
	}

	// Once the access token has run out, photon refreshes with the
	// refresh token issued before the crash, without a new login.
	admin.ExpireAccessToken()
	decodeProto(t, "whoami after refresh", admin.OK("", "whoami", "-o", "json"), &aegisv1.WhoAmIResponse{})
	after := admin.Session()
	if after.RefreshToken == before.RefreshToken || after.AccessToken == before.AccessToken {
		t.Errorf("photon did not refresh its session: refresh token changed %v, access token changed %v",
			after.RefreshToken != before.RefreshToken, after.AccessToken != before.AccessToken)
	}
	admin.OK("", "iam", "orgs", "get", "acme")
	verifySubject(t, ctx, v, "refreshed admin token", after.AccessToken, "orgs/system/users/admin")
}

// TestAegisReplicas runs two bin/aegis on one bin/chainfire with the same
// --kek-file and --issuer: tokens of either are good at both, a binding
// created through one is enforced by the other within a second (each keeps
// its index fed by a Chainfire watch), and so is a logout.
func TestAegisReplicas(t *testing.T) {
	FindAegisBinaries(t) // before starting anything
	cf := StartServer(t, Options{Name: "cf"})
	kek := writeKEK(t)
	a := StartAegis(t, AegisOptions{Name: "aegis-a", ChainfireEndpoints: []string{cf.Endpoint()},
		BootstrapPassword: adminPassword, KEKFile: kek})
	// b's own bootstrap password must not replace the admin's: only the
	// start that creates the admin sets one.
	b := StartAegis(t, AegisOptions{Name: "aegis-b", ChainfireEndpoints: []string{cf.Endpoint()},
		BootstrapPassword: "not the admin password", KEKFile: kek, Issuer: a.Issuer()})
	ctx := OAuthContext(Ctx(t, time.Minute), a.HTTPClient(t))
	if _, err := b.CLIOAuthConfig().PasswordCredentialsToken(ctx, "admin", "not the admin password"); err == nil {
		t.Error("the second replica's bootstrap password replaced the admin's")
	}

	admin := NewPhoton(t, a)
	admin.OK(adminPassword+"\n", "login", "--username", "admin", "--password-stdin")
	admin.OK("", "iam", "orgs", "create", "acme")
	admin.OK("", "iam", "projects", "create", "web", "--org", "acme")
	admin.OK(alicePassword+"\n", "iam", "users", "create", "alice", "--org", "acme", "--password-stdin")

	// A token issued by b verifies at a's discovery document: one issuer,
	// one set of signing keys.
	adminTok := b.PasswordToken(t, "admin", adminPassword).AccessToken
	verifySubject(t, ctx, oidcVerifier(t, ctx, a.Issuer()), "token issued by the second replica", adminTok, "orgs/system/users/admin")

	ccA, ccB := a.Dial(t), b.Dial(t)
	pa := aegisv1.NewPolicyServiceClient(ccA)
	pb := aegisv1.NewPolicyServiceClient(ccB)
	resource := webProject + "/vms/vm-1"
	allowedAt := func(cc *grpc.ClientConn) func() bool {
		return func() bool {
			d, err := authorize(ctx, cc, adminTok, alice, vmCreate, resource)
			return err == nil && d.GetAllowed()
		}
	}
	if allowedAt(ccB)() {
		t.Fatal("alice is allowed at b before any binding")
	}

	// An allow through a, enforced by b.
	start := time.Now()
	allow, err := pa.CreateBinding(Bearer(ctx, adminTok), &aegisv1.CreateBindingRequest{Parent: webProject, Binding: &aegisv1.Binding{
		Member: alice, Role: "roles/ProjectEditor", Scope: webProject, Effect: aegisv1.Binding_EFFECT_ALLOW}})
	if err != nil {
		t.Fatalf("create binding at a: %v", err)
	}
	took, ok := pollFor(start, 10*time.Second, allowedAt(ccB))
	t.Logf("binding requested at a enforced by b after %v", took)
	if !ok || took > propagation {
		t.Errorf("binding %s created at a: enforced by b after %v (ok=%v), want within %v", allow.GetName(), took, ok, propagation)
	}

	// A deny through b, enforced by a.
	start = time.Now()
	deny, err := pb.CreateBinding(Bearer(ctx, adminTok), &aegisv1.CreateBindingRequest{Parent: webProject, Binding: &aegisv1.Binding{
		Member: alice, Role: "roles/ProjectEditor", Scope: resource, Effect: aegisv1.Binding_EFFECT_DENY}})
	if err != nil {
		t.Fatalf("create binding at b: %v", err)
	}
	took, ok = pollFor(start, 10*time.Second, func() bool {
		d, err := authorize(ctx, ccA, adminTok, alice, vmCreate, resource)
		return err == nil && !d.GetAllowed() && d.GetBinding() == deny.GetName()
	})
	t.Logf("deny binding requested at b enforced by a after %v", took)
	if !ok || took > propagation {
		t.Errorf("deny binding %s created at b: enforced by a after %v (ok=%v), want within %v", deny.GetName(), took, ok, propagation)
	}

	// Those answers came from b's own watch-fed index, not from reading
	// Chainfire per decision: b still decides with Chainfire frozen.
	thaw := cf.Freeze()
	d, err := authorize(ctx, ccB, adminTok, alice, vmCreate, webProject+"/vms/vm-2")
	if err != nil || !d.GetAllowed() || d.GetBinding() != allow.GetName() {
		t.Errorf("b with Chainfire frozen: Authorize = %v, %v; want allowed by %s from memory", d, err, allow.GetName())
	}
	// Its connection to the frozen Chainfire stays up, but b no longer
	// reports itself ready: it cannot see changes nor make them.
	if code, body := waitReadyz(b.HTTPURL(), http.StatusServiceUnavailable, 10*time.Second); code != http.StatusServiceUnavailable {
		t.Errorf("b with Chainfire frozen: /readyz = %d %q, want 503", code, body)
	}
	thaw()
	if code, body := waitReadyz(b.HTTPURL(), http.StatusOK, 10*time.Second); code != http.StatusOK {
		t.Errorf("b with Chainfire back: /readyz = %d %q, want 200", code, body)
	}

	// alice logs in through a; her session works at b until she logs out
	// through a, and then stops working at b within a second.
	al := NewPhoton(t, a)
	al.OK(alicePassword+"\n", "login", "--username", "alice@acme", "--password-stdin")
	sess := al.Session()
	if w, err := whoami(ctx, ccB, sess.AccessToken); err != nil || w.GetPrincipal() != alice {
		t.Fatalf("WhoAmI at b with alice's token from a = %v, %v", w, err)
	}
	start = time.Now()
	al.OK("", "logout")
	took, ok = pollFor(start, 10*time.Second, func() bool {
		_, err := whoami(ctx, ccB, sess.AccessToken)
		return status.Code(err) == codes.Unauthenticated
	})
	t.Logf("logout through photon at a (including photon's run) enforced by b after %v", took)
	if !ok || took > propagation {
		t.Errorf("logout at a: alice's access token refused by b after %v (ok=%v), want within %v", took, ok, propagation)
	}
	// Her refresh token is dead at b too.
	if _, err := b.CLIOAuthConfig().TokenSource(ctx, &oauth2.Token{RefreshToken: sess.RefreshToken}).Token(); err == nil {
		t.Error("b accepts alice's refresh token after she logged out through a")
	}

	// Refresh tokens rotate across replicas: once a refresh token is spent
	// at a, presenting it again at b is reuse, which ends the whole
	// session (the successor from a included).
	first, err := a.CLIOAuthConfig().PasswordCredentialsToken(ctx, "admin", adminPassword)
	if err != nil {
		t.Fatalf("password grant at a: %v", err)
	}
	second, err := a.CLIOAuthConfig().TokenSource(ctx, &oauth2.Token{RefreshToken: first.RefreshToken}).Token()
	if err != nil {
		t.Fatalf("refresh at a: %v", err)
	}
	if second.RefreshToken == "" || second.RefreshToken == first.RefreshToken {
		t.Fatalf("refresh at a did not rotate the refresh token")
	}
	if _, err := b.CLIOAuthConfig().TokenSource(ctx, &oauth2.Token{RefreshToken: first.RefreshToken}).Token(); err == nil {
		t.Error("b accepts a refresh token already spent at a")
	}
	if _, err := a.CLIOAuthConfig().TokenSource(ctx, &oauth2.Token{RefreshToken: second.RefreshToken}).Token(); err == nil {
		t.Error("after reuse of its predecessor at b, a still accepts the successor refresh token")
	}
}

// TestAegisGeneratedBootstrapPassword starts bin/aegis on an empty
// Chainfire without a password: it generates one, prints it once on stdout
// and keeps it in <data-dir>/bootstrap-admin-password (0600); it is the
// admin's password; and a restart prints and changes nothing.
func TestAegisGeneratedBootstrapPassword(t *testing.T) {
	FindAegisBinaries(t) // before starting anything
	cf := StartServer(t, Options{Name: "cf"})
	a := StartAegis(t, AegisOptions{ChainfireEndpoints: []string{cf.Endpoint()}})

	pwLine := regexp.MustCompile(`created user orgs/system/users/admin \(SystemAdmin\) with password (\S+)`)
	found := pwLine.FindAllStringSubmatch(a.Stdout(), -1)
	if len(found) != 1 {
		t.Fatalf("stdout has %d bootstrap password lines, want 1:\n%s", len(found), a.Stdout())
	}
	pw := found[0][1]
	path := filepath.Join(a.DataDir, "bootstrap-admin-password")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("bootstrap password file: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want 0600", path, fi.Mode().Perm())
	}
	content, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimRight(string(content), "\n") != pw {
		t.Errorf("%s holds %q, stdout printed %q", path, content, pw)
	}
	if strings.Contains(a.Log(), pw) {
		t.Error("the bootstrap password is in the log, not only on stdout")
	}
	NewPhoton(t, a).OK(pw+"\n", "login", "--username", "admin", "--password-stdin")

	a.Stop()
	a.Start()
	a.WaitReady()
	if out := a.StdoutOfCurrentRun(); strings.Contains(out, "password") {
		t.Errorf("the restart printed a password again:\n%s", out)
	}
	if n := strings.Count(a.Stdout(), pw); n != 1 {
		t.Errorf("stdout over both runs shows the password %d times, want 1", n)
	}
	again, err := os.ReadFile(path)
	if err != nil || string(again) != string(content) {
		t.Errorf("the restart changed %s: %q, %v", path, again, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("%s after the restart: %v, %v", path, fi, err)
	}
	NewPhoton(t, a).OK(pw+"\n", "login", "--username", "admin", "--password-stdin")
}

// TestAegisBootstrapRace starts two bin/aegis at once on an empty Chainfire
// without a password: both try to bootstrap, exactly one creates the admin,
// and only that one prints and keeps its generated password, which is the
// admin's. A loser that printed its own would hand out a password that
// never worked.
func TestAegisBootstrapRace(t *testing.T) {
	FindAegisBinaries(t) // before starting anything
	cf := StartServer(t, Options{Name: "cf"})
	kek := writeKEK(t)
	var reps []*Aegis
	for _, name := range []string{"aegis-a", "aegis-b"} {
		reps = append(reps, NewAegis(t, AegisOptions{Name: name, ChainfireEndpoints: []string{cf.Endpoint()}, KEKFile: kek}))
	}
	for _, a := range reps {
		a.Start()
	}
	pwLine := regexp.MustCompile(`with password (\S+)`)
	var printed []string
	var files int
	for _, a := range reps {
		a.WaitReady()
		for _, m := range pwLine.FindAllStringSubmatch(a.Stdout(), -1) {
			printed = append(printed, m[1])
		}
		if _, err := os.Stat(filepath.Join(a.DataDir, "bootstrap-admin-password")); err == nil {
			files++
		}
	}
	if len(printed) != 1 || files != 1 {
		t.Fatalf("two replicas bootstrapping at once printed %d passwords and wrote %d password files, want 1 and 1", len(printed), files)
	}
	for _, a := range reps {
		NewPhoton(t, a).OK(printed[0]+"\n", "login", "--username", "admin", "--password-stdin")
	}
}
