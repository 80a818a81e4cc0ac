package cli

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/oauth2"
	"golang.org/x/term"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	aegisv1 "github.com/photoncloud/photoncloud/api/aegis/v1"
	aegisclient "github.com/photoncloud/photoncloud/client/aegis"
)

// maxSecretBytes bounds a password or secret read from stdin, so that
// piping the wrong file in fails fast instead of sending megabytes.
const maxSecretBytes = 4096

type loginOptions struct {
	conn          connOptions
	username      string
	passwordStdin bool
	org           string
	project       string
}

func newLoginCommand(env cliEnv) *cobra.Command {
	o := &loginOptions{}
	cmd := &cobra.Command{
		Use:   "login",
		Short: "Log in to Aegis and keep the session for later commands",
		Long: `login signs a user in to Aegis with the OAuth2 password grant of the
built-in client photon-cli and stores the tokens under the user's config
dir (` + "`$PHOTON_CONFIG_DIR`" + ` overrides it), one session per Aegis URL. Later
commands refresh the access token by themselves until the session ends.

The password is read from stdin with --password-stdin:

  photon login --username admin --password-stdin < admin-password`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runLogin(cmd, env, o)
		},
	}
	fs := cmd.Flags()
	addConnFlags(fs, &o.conn)
	fs.StringVarP(&o.username, "username", "u", "", "user id (alice), or with its org: alice@acme or orgs/acme/users/alice")
	fs.BoolVar(&o.passwordStdin, "password-stdin", false, "read the password from the first line of stdin")
	fs.StringVar(&o.org, "org", "", "org of the user, acme or orgs/acme (default: the server's login org, system)")
	fs.StringVar(&o.project, "project", "", "restrict the session to one project, web (with the org) or orgs/acme/projects/web")
	return cmd
}

// loginRequest is a resolved password login.
type loginRequest struct {
	username string // as sent: qualified with the org when one is known
	password string
	scope    string // project downscoping, "" for none
}

func runLogin(cmd *cobra.Command, env cliEnv, o *loginOptions) error {
	req, err := o.request()
	if err != nil {
		return err
	}
	if req.password, err = readPassword(cmd.InOrStdin(), cmd.ErrOrStderr(), o.passwordStdin); err != nil {
		return err
	}
	store, err := env.store()
	if err != nil {
		return err
	}
	f, err := store.read()
	if err != nil {
		return err
	}
	t, err := o.conn.resolve(env, f)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), t.timeout)
	defer cancel()
	p, err := passwordLogin(ctx, store, t, req, env.now)
	if err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "Logged in to %s as %s.\n", t.url, cell(p.Principal))
	return nil
}

// request checks the flags and builds the login. The org goes into the
// username ("orgs/<org>/users/<user>") rather than into the non-standard
// "org" parameter, which the oauth2 package cannot send.
func (o *loginOptions) request() (loginRequest, error) {
	if o.username == "" {
		return loginRequest{}, errors.New("--username is required")
	}
	org, user, err := splitLogin(o.username)
	if err != nil {
		return loginRequest{}, err
	}
	if o.org != "" {
		flagOrg, ok := orgID(o.org)
		if !ok {
			return loginRequest{}, fmt.Errorf("--org %q: want an org id or orgs/<org>", o.org)
		}
		if org != "" && org != flagOrg {
			return loginRequest{}, fmt.Errorf("--username names org %s but --org says %s", org, flagOrg)
		}
		org = flagOrg
	}
	req := loginRequest{username: user}
	if org != "" {
		req.username = "orgs/" + org + "/users/" + user
	}
	if o.project != "" {
		switch {
		case strings.HasPrefix(o.project, "orgs/"):
			req.scope = o.project
		case org == "":
			return loginRequest{}, errors.New("--project needs the org: give --org, or --project orgs/<org>/projects/<project>")
		default:
			req.scope = "orgs/" + org + "/projects/" + o.project
		}
	}
	return req, nil
}

// splitLogin reads the username forms Aegis accepts.
func splitLogin(s string) (org, user string, err error) {
	switch {
	case strings.HasPrefix(s, "orgs/"):
		parts := strings.Split(s, "/")
		if len(parts) != 4 || parts[2] != "users" || parts[1] == "" || parts[3] == "" {
			return "", "", fmt.Errorf("--username %q: want alice, alice@acme or orgs/acme/users/alice", s)
		}
		return parts[1], parts[3], nil
	case strings.Contains(s, "@"):
		i := strings.LastIndexByte(s, '@')
		if i == 0 || i == len(s)-1 {
			return "", "", fmt.Errorf("--username %q: want alice, alice@acme or orgs/acme/users/alice", s)
		}
		return s[i+1:], s[:i], nil
	case strings.Contains(s, "/"):
		return "", "", fmt.Errorf("--username %q: want alice, alice@acme or orgs/acme/users/alice", s)
	}
	return "", s, nil
}

// orgID accepts "acme" and "orgs/acme".
func orgID(s string) (string, bool) {
	id := strings.TrimPrefix(s, "orgs/")
	if id == "" || strings.Contains(id, "/") {
		return "", false
	}
	return id, true
}

// readPassword reads the password as --password-stdin asks. Without it
// there is no way to read one: a prompt must not echo, and that needs
// golang.org/x/term, which this module does not require yet.
func readPassword(stdin io.Reader, prompt io.Writer, fromStdin bool) (string, error) {
	if fromStdin {
		return readSecretLine(bufio.NewReader(stdin), "password")
	}
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(prompt, "Password: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(prompt)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		if len(b) == 0 {
			return "", errors.New("empty password")
		}
		return string(b), nil
	}
	return "", errors.New("no password: give --password-stdin and the password on stdin, or run photon login on a terminal")
}

// readSecretLine reads one line (without its line ending) from r.
func readSecretLine(r *bufio.Reader, what string) (string, error) {
	var b strings.Builder
	for {
		c, err := r.ReadByte()
		if err == io.EOF || (err == nil && c == '\n') {
			break
		}
		if err != nil {
			return "", fmt.Errorf("read %s from stdin: %w", what, err)
		}
		if b.Len() >= maxSecretBytes {
			return "", fmt.Errorf("%s on stdin is longer than %d bytes", what, maxSecretBytes)
		}
		b.WriteByte(c)
	}
	s := strings.TrimSuffix(b.String(), "\r")
	if s == "" {
		return "", fmt.Errorf("empty %s on stdin", what)
	}
	return s, nil
}

// loginWithPassword logs the CLI in to the Aegis at aegisURL (HTTP) and
// endpoint (gRPC) as username, storing the session where env says and
// making it the current one. It is for photon dev, which starts Aegis on
// loopback and logs the local CLI in as admin; plaintext is therefore
// allowed only to loopback addresses.
func loginWithPassword(ctx context.Context, env cliEnv, aegisURL, endpoint, username, password string) (*profile, error) {
	u, err := normalizeURL(aegisURL)
	if err != nil {
		return nil, err
	}
	t := target{url: u, endpoint: endpoint, timeout: defaultTimeout}
	if err := t.checkPlaintext(); err != nil {
		return nil, err
	}
	store, err := env.store()
	if err != nil {
		return nil, err
	}
	org, user, err := splitLogin(username)
	if err != nil {
		return nil, err
	}
	req := loginRequest{username: user, password: password}
	if org != "" {
		req.username = "orgs/" + org + "/users/" + user
	}
	return passwordLogin(ctx, store, t, req, env.now)
}

// passwordLogin runs the password grant against t and stores the session
// as t's profile, making it the current one. `photon dev` uses it to log
// the local CLI in.
func passwordLogin(ctx context.Context, store *credStore, t target, req loginRequest, now func() time.Time) (*profile, error) {
	hc, err := t.httpClient()
	if err != nil {
		return nil, err
	}
	var scopes []string
	if req.scope != "" {
		scopes = []string{req.scope}
	}
	tok, err := t.oauthConfig(scopes...).PasswordCredentialsToken(oauthContext(ctx, hc), req.username, req.password)
	if err != nil {
		return nil, tokenError("log in", true, err)
	}
	if tok.RefreshToken == "" {
		return nil, errors.New("log in: Aegis issued no refresh token")
	}
	p := &profile{AegisURL: t.url, AegisEndpoint: t.endpoint, CACert: t.cacert, Project: req.scope}
	p.setToken(tok, now())
	p.Principal = jwtSubject(tok.AccessToken)
	err = store.update(func(f *credentialsFile) (bool, error) {
		f.Profiles[t.url] = p
		f.Current = t.url
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// jwtSubject reads the "sub" claim of an access token without verifying
// it: only to show the user who they are logged in as; every server
// verifies the token itself.
func jwtSubject(tok string) string {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return ""
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var c struct {
		Sub string `json:"sub"`
	}
	if json.Unmarshal(b, &c) != nil {
		return ""
	}
	return c.Sub
}

type logoutOptions struct {
	conn        connOptions
	allSessions bool
}

func newLogoutCommand(env cliEnv) *cobra.Command {
	o := &logoutOptions{}
	cmd := &cobra.Command{
		Use:   "logout",
		Short: "End the session with Aegis and delete its stored tokens",
		Long: `logout revokes the stored session at Aegis and deletes its tokens. The
tokens are deleted even when Aegis cannot be reached; the command then
fails, since the session stays valid at Aegis until it expires.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runLogout(cmd, env, o)
		},
	}
	addConnFlags(cmd.Flags(), &o.conn)
	cmd.Flags().BoolVar(&o.allSessions, "all-sessions", false, "revoke every token of the user, on every device")
	return cmd
}

func runLogout(cmd *cobra.Command, env cliEnv, o *logoutOptions) error {
	store, err := env.store()
	if err != nil {
		return err
	}
	f, err := store.read()
	if err != nil {
		return err
	}
	t, err := o.conn.resolve(env, f)
	if err != nil {
		return err
	}
	p := f.profile(t.url)
	if p == nil {
		fmt.Fprintf(cmd.OutOrStdout(), "Not logged in to %s.\n", t.url)
		return nil
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), t.timeout)
	defer cancel()
	var src oauth2.TokenSource
	switch tok := p.token(); {
	case o.allSessions:
		// Signing out everywhere needs an authenticated call: refresh
		// an expired access token first.
		hc, err := t.httpClient()
		if err != nil {
			return err
		}
		src = &storedTokenSource{store: store, key: t.url, conf: t.oauthConfig(), ctx: oauthContext(ctx, hc), now: env.now, tok: tok}
	case tok.Valid():
		src = oauth2.StaticTokenSource(tok)
	}
	revokeErr := revokeSession(ctx, t, p, src, o.allSessions)
	err = store.update(func(f *credentialsFile) (bool, error) {
		delete(f.Profiles, t.url)
		if f.Current == t.url {
			f.Current = ""
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	if revokeErr != nil {
		return fmt.Errorf("deleted the stored tokens, but could not end the session at Aegis (it stays valid until it expires): %w", revokeErr)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "Logged out of %s.\n", t.url)
	return nil
}

// revokeSession ends the session at Aegis with AuthnService.Logout: the
// access token from src (nil: none) authenticates the call, and the refresh
// token ends the session's whole token family. If the gRPC side cannot be
// reached, the RFC 7009 endpoint on the HTTP side revokes the same tokens
// (it cannot sign out other sessions).
func revokeSession(ctx context.Context, t target, p *profile, src oauth2.TokenSource, all bool) error {
	var opts []grpc.CallOption
	if src != nil {
		// Fetched here so that a failed refresh reads as such.
		tok, err := src.Token()
		if err != nil {
			return err
		}
		opts = append(opts, grpc.PerRPCCredentials(aegisclient.TokenCredentials(oauth2.StaticTokenSource(tok), t.useTLS())))
	}
	cc, err := t.dial(nil)
	if err != nil {
		return err
	}
	defer cc.Close()
	_, err = aegisv1.NewAuthnServiceClient(cc).Logout(ctx, &aegisv1.LogoutRequest{RefreshToken: p.RefreshToken, AllSessions: all}, opts...)
	if err == nil {
		return nil
	}
	if c := status.Code(err); all || (c != codes.Unavailable && c != codes.Unimplemented) {
		return explainRPC("logout", t.endpoint, err)
	}
	if herr := revokeHTTP(ctx, t, p); herr != nil {
		return fmt.Errorf("%w; and over HTTP: %w", explainRPC("logout", t.endpoint, err), herr)
	}
	return nil
}

// revokeHTTP revokes the refresh and then the access token at the OAuth2
// revocation endpoint (RFC 7009).
func revokeHTTP(ctx context.Context, t target, p *profile) error {
	hc, err := t.httpClient()
	if err != nil {
		return err
	}
	for _, tok := range []struct{ value, hint string }{{p.RefreshToken, "refresh_token"}, {p.AccessToken, "access_token"}} {
		if tok.value == "" {
			continue
		}
		form := url.Values{"token": {tok.value}, "token_type_hint": {tok.hint}, "client_id": {publicClientID}}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url+"/oauth2/revoke", strings.NewReader(form.Encode()))
		if err != nil {
			return fmt.Errorf("revoke: %w", err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := hc.Do(req)
		if err != nil {
			return fmt.Errorf("revoke: %w", err)
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("revoke: %s answered %s", t.url, resp.Status)
		}
	}
	return nil
}

// session is an authenticated gRPC connection to Aegis.
type session struct {
	target target
	conn   *grpc.ClientConn
	src    *storedTokenSource // the tokens conn sends
}

func (s *session) Close() error { return s.conn.Close() }

// rpc explains a failed call of op.
func (s *session) rpc(op string, err error) error {
	return explainRPC(op, s.target.endpoint, s.src.callErr(err))
}

// openSession connects to the Aegis the flags (or the last login) name,
// with the stored session's access token, refreshed when needed, on every
// call. The token is fetched once before returning, so that "not logged
// in" is reported as such rather than as a failed call.
func openSession(ctx context.Context, env cliEnv, o *connOptions) (*session, error) {
	t, src, err := sessionToken(ctx, env, o)
	if err != nil {
		return nil, err
	}
	// Plaintext, when not TLS, is what resolve allowed: loopback or
	// --insecure.
	cc, err := t.dial(aegisclient.TokenCredentials(src, t.useTLS()))
	if err != nil {
		return nil, err
	}
	return &session{target: t, conn: cc, src: src}, nil
}

// sessionToken resolves the Aegis o names and returns the stored
// session's access token source, refreshing through that Aegis when
// needed; the token is fetched once first. Other services (FlashDNS) take
// the same token.
func sessionToken(ctx context.Context, env cliEnv, o *connOptions) (target, *storedTokenSource, error) {
	store, t, p, err := storedSession(env, o)
	if err != nil {
		return target{}, nil, err
	}
	if p == nil {
		// The target goes with the error, for callers that can do
		// without a session (see errNoSession).
		return t, nil, fmt.Errorf("%w to %s: run photon login --username <user> --password-stdin", errNoSession, t.url)
	}
	hc, err := t.httpClient()
	if err != nil {
		return target{}, nil, err
	}
	src := &storedTokenSource{store: store, key: t.url, conf: t.oauthConfig(), ctx: oauthContext(ctx, hc), now: env.now, tok: p.token()}
	if _, err := src.Token(); err != nil {
		if errors.Is(err, errNotLoggedIn) || errors.Is(err, errSessionEnded) {
			return target{}, nil, fmt.Errorf("%w: run photon login --username <user> --password-stdin", err)
		}
		return target{}, nil, err
	}
	return t, src, nil
}

// storedSession resolves the Aegis o names and returns the credential
// store and the session stored for that Aegis (nil: none).
func storedSession(env cliEnv, o *connOptions) (*credStore, target, *profile, error) {
	store, err := env.store()
	if err != nil {
		return nil, target{}, nil, err
	}
	f, err := store.read()
	if err != nil {
		return nil, target{}, nil, err
	}
	t, err := o.resolve(env, f)
	if err != nil {
		return nil, target{}, nil, err
	}
	return store, t, f.profile(t.url), nil
}

// sessionScope returns a function that reads the project the stored
// session with the Aegis o names is downscoped to (photon login
// --project), "" for none or no session. Commands take it for --org and
// --project left out (see withScope), since the session's token is good
// for nothing else. Only the credentials file is read, not the network, so
// that checking arguments stays free of I/O beyond it.
func sessionScope(env cliEnv, o *connOptions) func() (string, error) {
	return func() (string, error) {
		_, _, p, err := storedSession(env, o)
		if err != nil || p == nil {
			return "", err
		}
		return p.Project, nil
	}
}

type whoamiOptions struct {
	conn   connOptions
	output string
}

func newWhoAmICommand(env cliEnv) *cobra.Command {
	o := &whoamiOptions{}
	cmd := &cobra.Command{
		Use:   "whoami",
		Short: "Show who the stored Aegis session belongs to",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out, err := newPrinter(cmd.OutOrStdout(), o.output)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), o.conn.timeout)
			defer cancel()
			s, err := openSession(ctx, env, &o.conn)
			if err != nil {
				return err
			}
			defer s.Close()
			resp, err := aegisv1.NewAuthnServiceClient(s.conn).WhoAmI(ctx, &aegisv1.WhoAmIRequest{})
			if err != nil {
				return s.rpc("whoami", err)
			}
			return showOne(out, resp, whoamiColumns())
		},
	}
	addConnFlags(cmd.Flags(), &o.conn)
	addOutputFlag(cmd.Flags(), &o.output)
	return cmd
}

func whoamiColumns() []column[*aegisv1.WhoAmIResponse] {
	return []column[*aegisv1.WhoAmIResponse]{
		{"PRINCIPAL", (*aegisv1.WhoAmIResponse).GetPrincipal},
		{"KIND", func(r *aegisv1.WhoAmIResponse) string {
			return fmtEnum(r.GetPrincipalKind().String(), "PRINCIPAL_KIND_")
		}},
		{"ORG", (*aegisv1.WhoAmIResponse).GetOrg},
		{"DISPLAY NAME", (*aegisv1.WhoAmIResponse).GetDisplayName},
		{"GROUPS", func(r *aegisv1.WhoAmIResponse) string { return strings.Join(r.GetGroups(), ",") }},
		{"AUTHENTICATED BY", func(r *aegisv1.WhoAmIResponse) string {
			return fmtEnum(r.GetAuthenticationMethod().String(), "AUTHENTICATION_METHOD_")
		}},
		{"PROJECT", (*aegisv1.WhoAmIResponse).GetProject},
		{"PERMISSIONS", func(r *aegisv1.WhoAmIResponse) string { return strings.Join(r.GetPermissions(), ",") }},
		{"TOKEN ID", (*aegisv1.WhoAmIResponse).GetTokenId},
		{"TOKEN EXPIRES", func(r *aegisv1.WhoAmIResponse) string { return fmtTime(r.GetExpireTime()) }},
	}
}
