package cli

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	aegisv1 "github.com/photoncloud/photoncloud/api/aegis/v1"
)

// TestLoginWhoAmILogout runs the session life cycle against the real
// authn service: the tokens land in the store with the right modes, whoami
// authenticates with them, logout revokes them at Aegis and deletes them.
func TestLoginWhoAmILogout(t *testing.T) {
	a := startAegis(t, aegisOptions{})
	dir := cliEnvFor(t, a)

	code, out, errs := photon(t, alicePassword+"\n", "login", "--username", "alice", "--org", "acme", "--password-stdin")
	if code != 0 || out != "Logged in to "+a.url+" as "+aliceName+".\n" {
		t.Fatalf("login: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	fi, err := os.Stat(dir + "/credentials.json")
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file: %v, %v", fi, err)
	}
	f := readCreds(t, dir)
	p := f.profile(a.url)
	if f.Current != a.url || p == nil || p.Principal != aliceName || p.AegisEndpoint != a.endpoint ||
		p.AccessToken == "" || p.RefreshToken == "" || p.RefreshExpiry.IsZero() || p.Expiry.Before(time.Now()) {
		t.Fatalf("stored %+v", f)
	}

	code, out, errs = photon(t, "", "whoami")
	if code != 0 || !strings.Contains(out, "PRINCIPAL         "+aliceName+"\n") ||
		!strings.Contains(out, "AUTHENTICATED BY  password\n") || !strings.Contains(out, "GROUPS            orgs/acme/groups/staff\n") {
		t.Fatalf("whoami: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	code, out, _ = photon(t, "", "whoami", "-o", "json")
	var who map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &who) != nil || who["principal"] != aliceName || who["principalKind"] != "PRINCIPAL_KIND_USER" {
		t.Fatalf("whoami -o json: exit %d, %q", code, out)
	}
	assertNoSecrets(t, p, out, errs)

	code, out, errs = photon(t, "", "logout")
	if code != 0 || out != "Logged out of "+a.url+".\n" {
		t.Fatalf("logout: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	if f := readCreds(t, dir); len(f.Profiles) != 0 || f.Current != "" {
		t.Fatalf("after logout: %+v", f)
	}
	// Revoked at Aegis: neither token works any more.
	if resp := refreshHTTP(t, a, p.RefreshToken); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("refresh after logout: %s", resp.Status)
	}
	if _, err := aegisv1.NewAuthnServiceClient(a.conn).WhoAmI(a.ctxWith(t, p.AccessToken), &aegisv1.WhoAmIRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("access token after logout: %v, want Unauthenticated", err)
	}
	code, _, errs = photon(t, "", "whoami")
	if code != 1 || !strings.Contains(errs, "not logged in to "+a.url) {
		t.Fatalf("whoami after logout: exit %d, %q", code, errs)
	}
	// Logging out twice is not an error.
	if code, out, _ := photon(t, "", "logout"); code != 0 || !strings.HasPrefix(out, "Not logged in") {
		t.Fatalf("second logout: exit %d, %q", code, out)
	}
}

func TestLoginOverTLS(t *testing.T) {
	a := startAegis(t, aegisOptions{tls: true})
	cliEnvFor(t, a)
	login(t)
	if code, out, errs := photon(t, "", "whoami"); code != 0 || !strings.Contains(out, aliceName) {
		t.Fatalf("whoami over TLS: exit %d, %q %q", code, out, errs)
	}
	// Without the CA (in the environment, or saved with a session) the
	// server's certificate is not trusted.
	t.Setenv(envCACert, "")
	t.Setenv(envConfigDir, t.TempDir())
	code, _, errs := photon(t, alicePassword+"\n", "login", "-u", "alice@acme", "--password-stdin")
	if code != 1 || !strings.Contains(errs, "certificate") {
		t.Fatalf("login without --cacert: exit %d, %q", code, errs)
	}
}

// TestLoginWrongPasswordCountsOnce: with AuthStyleInParams a refused
// password grant is sent once. With the oauth2 package's auto-detection it
// would be retried in the other style and count twice against Aegis's
// per-user limit (10 attempts, then one a minute), so the limit would
// answer after 5 wrong passwords instead of 10.
func TestLoginWrongPasswordCountsOnce(t *testing.T) {
	a := startAegis(t, aegisOptions{})
	dir := cliEnvFor(t, a)
	code, out, errs := photon(t, "wrong\n", "login", "-u", "alice@acme", "--password-stdin")
	if code != 1 || out != "" || errs != "photon: log in: invalid username or password\n" {
		t.Fatalf("wrong password: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	if _, err := os.Stat(dir + "/credentials.json"); !os.IsNotExist(err) {
		t.Fatalf("credentials stored after a failed login: %v", err)
	}
	login(t)
	// The success refilled alice's bucket: ten more tries, then the limit.
	const burst = 10
	for i := range burst + 1 {
		code, _, errs = photon(t, "wrong\n", "login", "-u", "alice@acme", "--password-stdin")
		if i < burst && !strings.Contains(errs, "invalid username or password") {
			t.Fatalf("attempt %d: exit %d, %q", i, code, errs)
		}
	}
	if code != 1 || !strings.Contains(errs, "too many attempts or Aegis is busy; retry in ") {
		t.Fatalf("rate limited login: exit %d, %q", code, errs)
	}
}

// TestRefreshSavedBack: an expired access token is refreshed with the
// stored refresh token, and the rotated pair is saved, so the next command
// uses the new refresh token (the old one is spent at Aegis).
func TestRefreshSavedBack(t *testing.T) {
	a := startAegis(t, aegisOptions{})
	dir := cliEnvFor(t, a)
	login(t)
	before := expireAccessToken(t, dir, a.url)

	if code, out, errs := photon(t, "", "whoami"); code != 0 || !strings.Contains(out, aliceName) {
		t.Fatalf("whoami with an expired token: exit %d, %q %q", code, out, errs)
	}
	after := readCreds(t, dir).profile(a.url)
	if after.AccessToken == before.AccessToken || after.RefreshToken == before.RefreshToken || !after.Expiry.After(time.Now()) {
		t.Fatal("refreshed tokens were not saved")
	}
	if resp := refreshHTTP(t, a, before.RefreshToken); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("the old refresh token still works: %s", resp.Status)
	}
	// The spent token's reuse revoked the session at Aegis (reuse
	// detection); a fresh login and another refresh cycle show that the
	// saved token is the live one.
	login(t)
	expireAccessToken(t, dir, a.url)
	for range 2 {
		if code, _, errs := photon(t, "", "iam", "orgs", "get", "acme"); code != 0 {
			t.Fatalf("iam after refresh: exit %d, %q", code, errs)
		}
	}
	if code, out, errs := photon(t, "", "whoami"); code != 0 || !strings.Contains(out, "PRINCIPAL         "+aliceName+"\n") {
		t.Fatalf("whoami after refresh: exit %d, %q %q", code, out, errs)
	}
}

// TestConcurrentRefresh: several photon processes finding the token
// expired at once must not present the same refresh token twice, which
// Aegis would take for theft and answer by ending the session.
func TestConcurrentRefresh(t *testing.T) {
	a := startAegis(t, aegisOptions{})
	dir := cliEnvFor(t, a)
	login(t)
	expireAccessToken(t, dir, a.url)
	var wg sync.WaitGroup
	codes := make([]int, 4)
	stderrs := make([]string, 4)
	for i := range codes {
		wg.Go(func() {
			codes[i], _, stderrs[i] = photon(t, "", "whoami")
		})
	}
	wg.Wait()
	for i, c := range codes {
		if c != 0 {
			t.Fatalf("whoami %d: exit %d, %q", i, c, stderrs[i])
		}
	}
	expireAccessToken(t, dir, a.url)
	if code, _, errs := photon(t, "", "whoami"); code != 0 {
		t.Fatalf("session ended by concurrent refreshes: %q", errs)
	}
}

func TestSessionEnded(t *testing.T) {
	a := startAegis(t, aegisOptions{})
	dir := cliEnvFor(t, a)
	login(t)
	p := expireAccessToken(t, dir, a.url)
	// Spend the refresh token behind the CLI's back.
	if resp := refreshHTTP(t, a, p.RefreshToken); resp.StatusCode != http.StatusOK {
		t.Fatalf("refresh: %s", resp.Status)
	}
	code, _, errs := photon(t, "", "iam", "orgs", "list")
	if code != 1 || !strings.Contains(errs, "session expired or was revoked") || !strings.Contains(errs, "photon login") {
		t.Fatalf("exit %d, %q", code, errs)
	}
}

// TestLogoutAllSessions refreshes an expired token to sign out
// everywhere.
func TestLogoutAllSessions(t *testing.T) {
	a := startAegis(t, aegisOptions{})
	dir := cliEnvFor(t, a)
	login(t)
	other := readCreds(t, dir).profile(a.url) // a second device's session
	login(t)
	expireAccessToken(t, dir, a.url)
	if code, out, errs := photon(t, "", "logout", "--all-sessions"); code != 0 {
		t.Fatalf("logout --all-sessions: exit %d, %q %q", code, out, errs)
	}
	if resp := refreshHTTP(t, a, other.RefreshToken); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("other session survived: %s", resp.Status)
	}
}

// TestLogoutUnreachable deletes the tokens locally and says that the
// session lives on.
func TestLogoutUnreachable(t *testing.T) {
	a := startAegis(t, aegisOptions{})
	dir := cliEnvFor(t, a)
	login(t)
	t.Setenv(envAegisURL, "http://127.0.0.1:1")
	// The profile is keyed by URL; move it to the unreachable one.
	s := &credStore{dir: dir}
	if err := s.update(func(f *credentialsFile) (bool, error) {
		p := f.Profiles[a.url]
		p.AegisEndpoint = "127.0.0.1:1"
		f.Profiles["http://127.0.0.1:1"] = p
		delete(f.Profiles, a.url)
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}
	t.Setenv(envAegisEndpoint, "")
	code, _, errs := photon(t, "", "logout", "--timeout", "5s")
	if code != 1 || !strings.Contains(errs, "deleted the stored tokens, but could not end the session") {
		t.Fatalf("exit %d, %q", code, errs)
	}
	if f := readCreds(t, dir); len(f.Profiles) != 0 {
		t.Fatalf("tokens kept: %+v", f)
	}
}

func TestLoginFlagErrors(t *testing.T) {
	a := startAegis(t, aegisOptions{})
	cliEnvFor(t, a)
	for _, tc := range []struct {
		stdin string
		args  []string
		want  string
	}{
		{"pw\n", []string{"login", "--password-stdin"}, "--username is required"},
		{"pw\n", []string{"login", "-u", "alice"}, "no password: give --password-stdin"},
		{"\n", []string{"login", "-u", "alice", "--password-stdin"}, "empty password on stdin"},
		{"", []string{"login", "-u", "alice", "--password-stdin"}, "empty password on stdin"},
		{strings.Repeat("x", 5000), []string{"login", "-u", "alice", "--password-stdin"}, "longer than 4096 bytes"},
		{"pw\n", []string{"login", "-u", "alice@acme", "--org", "other", "--password-stdin"}, "names org acme but --org says other"},
		{"pw\n", []string{"login", "-u", "a/b", "--password-stdin"}, "want alice, alice@acme"},
		{"pw\n", []string{"login", "-u", "alice", "--project", "web", "--password-stdin"}, "--project needs the org"},
		{"pw\n", []string{"login", "-u", "alice", "--password-stdin", "--aegis-url", "ftp://x"}, "must be an http:// or https:// URL"},
		{"pw\n", []string{"login", "-u", "alice", "--password-stdin", "--aegis-url", "http://aegis.example.com"}, "refusing plaintext HTTP to aegis.example.com"},
		{"pw\n", []string{"login", "-u", "alice", "--password-stdin", "--aegis-endpoint", "nope"}, "must be host:port"},
		{"pw\n", []string{"login", "-u", "alice", "--password-stdin", "--cacert", "/nonexistent.pem"}, "read --cacert"},
	} {
		code, out, errs := photon(t, tc.stdin, tc.args...)
		if code != 1 || out != "" || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q, want %q", tc.args, code, out, errs, tc.want)
		}
	}
}

// TestLoginProject downscopes the session to a project.
func TestLoginProject(t *testing.T) {
	a := startAegis(t, aegisOptions{})
	dir := cliEnvFor(t, a)
	if code, _, errs := photon(t, alicePassword+"\n", "login", "-u", "alice", "--org", "orgs/acme", "--project", "web", "--password-stdin"); code != 0 {
		t.Fatalf("login: %q", errs)
	}
	if p := readCreds(t, dir).profile(a.url); p.Project != "orgs/acme/projects/web" {
		t.Fatalf("project %q", p.Project)
	}
	code, out, _ := photon(t, "", "whoami")
	if code != 0 || !strings.Contains(out, "PROJECT           orgs/acme/projects/web\n") {
		t.Fatalf("whoami: %q", out)
	}
}

// expireAccessToken makes the stored access token look expired and
// returns the profile as it was.
func expireAccessToken(t *testing.T, dir, key string) profile {
	t.Helper()
	var before profile
	err := (&credStore{dir: dir}).update(func(f *credentialsFile) (bool, error) {
		p := f.Profiles[key]
		before = *p
		p.Expiry = time.Now().Add(-time.Minute)
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return before
}

// refreshHTTP presents a refresh token at the token endpoint.
func refreshHTTP(t *testing.T, a *testAegis, rt string) *http.Response {
	t.Helper()
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {publicClientID}}
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, a.url+"/oauth2/token", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := a.httpClient(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// assertNoSecrets fails if any output shows a token of p.
func assertNoSecrets(t *testing.T, p *profile, outputs ...string) {
	t.Helper()
	for _, o := range outputs {
		for _, secret := range []string{p.AccessToken, p.RefreshToken, alicePassword} {
			if secret != "" && strings.Contains(o, secret) {
				t.Fatalf("output shows a secret: %q", o)
			}
		}
	}
}

// TestLoginWithPassword is how photon dev logs the local CLI in.
func TestLoginWithPassword(t *testing.T) {
	a := startAegis(t, aegisOptions{})
	dir := cliEnvFor(t, a)
	t.Setenv(envAegisURL, "")
	t.Setenv(envAegisEndpoint, "")
	p, err := loginWithPassword(context.Background(), osEnv(), a.url+"/", a.endpoint, "alice@acme", alicePassword)
	if err != nil || p.Principal != aliceName {
		t.Fatalf("login: %+v, %v", p, err)
	}
	if f := readCreds(t, dir); f.Current != a.url {
		t.Fatalf("current %q", f.Current)
	}
	// Later commands find the session without any flag.
	if code, out, errs := photon(t, "", "whoami"); code != 0 || !strings.Contains(out, aliceName) {
		t.Fatalf("whoami: exit %d, %q %q", code, out, errs)
	}
	if _, err := loginWithPassword(context.Background(), osEnv(), "http://aegis.example.com", "aegis.example.com:7010", "admin", "x"); err == nil {
		t.Fatal("plaintext login to a remote host allowed")
	}
}
