package authn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"math"
	"mime"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/photoncloud/photoncloud/internal/aegis/token"
)

// maxFormBytes bounds a token request body. The largest legitimate
// parameter is an external ID token of a few KiB.
const maxFormBytes = 64 << 10

// maxAudiences bounds the repeated "audience" parameter (RFC 8693).
const maxAudiences = 10

// maxForwardedHops bounds how much of X-Forwarded-For is looked at.
const maxForwardedHops = 32

// Handler serves, relative to the issuer URL, the token endpoint
// (token.TokenPath), the revocation endpoint (RevocationPath), the OIDC
// discovery document (token.DiscoveryPath) and the JWKS (token.JWKSPath).
// If the issuer URL has a path, mount it under that path with
// http.StripPrefix.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(token.TokenPath, s.serveToken)
	mux.HandleFunc(RevocationPath, s.serveRevoke)
	mux.Handle(token.DiscoveryPath, s.discovery)
	mux.Handle(token.JWKSPath, token.JWKSHandler(s.ring))
	return mux
}

// clientCreds are the client credentials a request presented.
type clientCreds struct {
	id, secret string
	present    bool
	basic      bool // sent as HTTP Basic authentication
}

// public reports whether the credentials are none at all or the built-in
// public client's.
func (c clientCreds) public() bool {
	return !c.present || (c.id == PublicClientID && c.secret == "")
}

// requirePublic is the client check of the grants only the public client
// may use (password, refresh_token).
func (c clientCreds) requirePublic() error {
	switch {
	case c.public():
		return nil
	case c.id == PublicClientID:
		return errInvalidClient("%s is a public client and has no secret", PublicClientID)
	default:
		return errUnauthorizedClient("this grant is only for the public client %s", PublicClientID)
	}
}

func (s *Service) serveToken(w http.ResponseWriter, r *http.Request) {
	form, cli, err := readTokenRequest(w, r)
	if err != nil {
		s.writeError(w, err)
		return
	}
	res, exchange, err := s.tokenRequest(r.Context(), form, cli, s.httpSource(r))
	if err != nil {
		s.writeError(w, err)
		return
	}
	s.writeToken(w, res, exchange)
}

// tokenRequest dispatches a decoded token request to its grant. exchange
// reports a token-exchange response, which names the issued token type.
func (s *Service) tokenRequest(ctx context.Context, form url.Values, cli clientCreds, src source) (res *result, exchange bool, err error) {
	switch gt := form.Get("grant_type"); gt {
	case "":
		return nil, false, errInvalidRequest("missing grant_type")

	case token.GrantPassword:
		if s.cfg.DisablePasswordGrant {
			return nil, false, errUnsupportedGrant("the password grant is disabled")
		}
		if err := cli.requirePublic(); err != nil {
			return nil, false, err
		}
		username, pw := form.Get("username"), form.Get("password")
		if username == "" || pw == "" {
			return nil, false, errInvalidRequest("username and password are required")
		}
		org, user, err := loginName(username, form.Get("org"), s.cfg.DefaultLoginOrg)
		if err != nil {
			return nil, false, err
		}
		n, err := parseScope(form.Get("scope"))
		if err != nil {
			return nil, false, err
		}
		res, err = s.passwordGrant(ctx, org, user, pw, n, src)
		return res, false, err

	case token.GrantClientCredentials:
		n, err := parseScope(form.Get("scope"))
		if err != nil {
			return nil, false, err
		}
		switch {
		case cli.id == PublicClientID:
			return nil, false, errUnauthorizedClient("%s may not use client_credentials", PublicClientID)
		case cli.secret != "":
			res, err = s.keyGrant(ctx, cli.id, cli.secret, n, src)
		case src.cert != nil:
			res, err = s.certGrant(ctx, cli.id, n, src)
		default:
			return nil, false, errInvalidClient("client authentication required")
		}
		return res, false, err

	case token.GrantRefreshToken:
		if err := cli.requirePublic(); err != nil {
			return nil, false, err
		}
		rt := form.Get("refresh_token")
		if rt == "" {
			return nil, false, errInvalidRequest("missing refresh_token")
		}
		n, err := parseScope(form.Get("scope"))
		if err != nil {
			return nil, false, err
		}
		res, err = s.refreshGrant(ctx, rt, n, src)
		return res, false, err

	case token.GrantTokenExchange:
		req, err := exchangeFromForm(form)
		if err != nil {
			return nil, false, err
		}
		if err := s.authenticateClient(ctx, cli, src); err != nil {
			return nil, false, err
		}
		res, err = s.exchange(ctx, req, src)
		return res, true, err

	default:
		return nil, false, errUnsupportedGrant("unsupported grant_type '%s'", clip(gt))
	}
}

// exchangeFromForm decodes an RFC 8693 request.
func exchangeFromForm(form url.Values) (exchangeRequest, error) {
	if form.Has("actor_token") || form.Has("actor_token_type") {
		return exchangeRequest{}, errInvalidRequest("delegation (actor_token) is not supported")
	}
	if form.Has("resource") {
		return exchangeRequest{}, errInvalidTarget("resource is not supported; use audience")
	}
	if rtt := form.Get("requested_token_type"); rtt != "" && rtt != tokenTypeAccess {
		return exchangeRequest{}, errInvalidRequest("only access tokens can be requested")
	}
	req := exchangeRequest{subjectToken: form.Get("subject_token"), subjectTokenType: form.Get("subject_token_type")}
	if req.subjectToken == "" || req.subjectTokenType == "" {
		return exchangeRequest{}, errInvalidRequest("subject_token and subject_token_type are required")
	}
	auds := form["audience"]
	if len(auds) > maxAudiences {
		return exchangeRequest{}, errInvalidRequest("at most %d audiences", maxAudiences)
	}
	for _, a := range auds {
		if a == "" {
			return exchangeRequest{}, errInvalidRequest("empty audience")
		}
	}
	req.audience = auds
	n, err := parseScope(form.Get("scope"))
	if err != nil {
		return exchangeRequest{}, err
	}
	req.narrowing = n
	return req, nil
}

// authenticateClient checks optional client credentials on the endpoints
// where the token itself is the credential (token exchange, revocation):
// none or the public client pass; a key must have its right secret; a
// client id without secret needs the matching mTLS certificate.
func (s *Service) authenticateClient(ctx context.Context, cli clientCreds, src source) error {
	if cli.public() {
		return nil
	}
	ev := src.event(ActionClientCredentials)
	ev.Login = clip(cli.id)
	ev.ClientID = ev.Login
	if cli.secret != "" {
		if _, reason, err := s.authenticateKey(ctx, cli.id, cli.secret); err != nil {
			return s.fail(ctx, ev, reason, err)
		}
		return nil
	}
	if src.cert == nil {
		return errInvalidClient("client authentication required")
	}
	sa, reason, err := s.certPrincipal(ctx, src.cert)
	if err != nil {
		return s.fail(ctx, ev, reason, err)
	}
	if cli.id != sa.Name {
		ev.Principal = sa.Name
		return s.fail(ctx, ev, ReasonClientMismatch, errBadClient())
	}
	return nil
}

// loginName splits the password grant's username, which may name the org:
// "orgs/<org>/users/<user>", "<user>@<org>", or just "<user>" with the org
// from the non-standard "org" parameter or the default login org. Ids are
// not validated here: a malformed one is an unknown user, answered after
// the same argon2 work as any other.
func loginName(username, orgParam, defaultOrg string) (org, user string, err error) {
	if orgParam != "" {
		o, ok := parseOrg(orgParam)
		if !ok {
			return "", "", errInvalidRequest("malformed org")
		}
		org = o
	}
	var named string
	switch {
	case strings.HasPrefix(username, "orgs/"):
		parts := strings.Split(username, "/")
		if len(parts) != 4 || parts[2] != "users" {
			return "", "", errInvalidRequest("username must be orgs/<org>/users/<user>, <user>@<org> or <user>")
		}
		named, user = parts[1], parts[3]
	case strings.Contains(username, "@"):
		i := strings.LastIndexByte(username, '@')
		user, named = username[:i], username[i+1:]
	default:
		user = username
	}
	if named != "" {
		if org != "" && org != named {
			return "", "", errInvalidRequest("username and org name different orgs")
		}
		org = named
	}
	if org == "" {
		org = defaultOrg
	}
	return org, user, nil
}

func (s *Service) serveRevoke(w http.ResponseWriter, r *http.Request) {
	form, cli, err := readTokenRequest(w, r)
	if err == nil {
		err = s.revokeRequest(r.Context(), form, cli, s.httpSource(r))
	}
	if err != nil {
		s.writeError(w, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}

// revokeRequest is RFC 7009 token revocation. Refresh tokens end their
// family; valid access tokens are revoked until they expire; anything else
// is ignored and still answered 200, so the endpoint reveals nothing about
// which tokens exist. Holding a token is what entitles one to revoke it.
func (s *Service) revokeRequest(ctx context.Context, form url.Values, cli clientCreds, src source) error {
	if err := s.authenticateClient(ctx, cli, src); err != nil {
		return err
	}
	tok := form.Get("token")
	if tok == "" {
		return errInvalidRequest("missing token")
	}
	// token_type_hint only speeds up a lookup (RFC 7009 section 2.1); both
	// checks here are cheap and each ignores the other kind.
	if err := s.revokeRefresh(ctx, tok); err != nil {
		return err
	}
	c, err := s.ver.Verify(tok)
	if err != nil {
		return nil
	}
	ev := src.event(ActionLogout)
	ev.Principal, ev.ClientID, ev.TokenID = c.Subject, c.ClientID, c.ID
	if err := s.revokeAccess(ctx, c); err != nil {
		return s.fail(ctx, ev, ReasonInternal, err)
	}
	s.succeed(ctx, ev, nil)
	return nil
}

// readTokenRequest decodes a token or revocation request strictly: POST,
// no query string, a form body of bounded size in UTF-8, no repeated
// parameter (RFC 6749 section 3.2) except audience, and client credentials
// in at most one place (section 2.3).
func readTokenRequest(w http.ResponseWriter, r *http.Request) (url.Values, clientCreds, error) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		e := errInvalidRequest("use POST")
		e.httpStatus = http.StatusMethodNotAllowed
		return nil, clientCreds{}, e
	}
	if r.URL.RawQuery != "" {
		// Parameters (passwords, secrets) in the URL end up in logs.
		return nil, clientCreds{}, errInvalidRequest("parameters belong in the request body")
	}
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, clientCreds{}, errInvalidRequest("content type must be application/x-www-form-urlencoded")
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return nil, clientCreds{}, errInvalidRequest("charset must be UTF-8")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxFormBytes))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, clientCreds{}, errInvalidRequest("request body too large")
		}
		return nil, clientCreds{}, errInvalidRequest("unreadable request body")
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, clientCreds{}, errInvalidRequest("malformed form body")
	}
	for k, vs := range form {
		if len(vs) > 1 && k != "audience" {
			return nil, clientCreds{}, errInvalidRequest("parameter '%s' repeated", clip(k))
		}
		for _, v := range vs {
			if !utf8.ValidString(k) || !utf8.ValidString(v) {
				return nil, clientCreds{}, errInvalidRequest("parameters must be UTF-8")
			}
		}
	}

	var cli clientCreds
	if r.Header.Get("Authorization") != "" {
		user, pass, ok := r.BasicAuth()
		if !ok {
			return nil, clientCreds{}, errInvalidClient("unsupported authorization scheme")
		}
		// RFC 6749 section 2.3.1: both are form-encoded before Basic.
		id, err1 := url.QueryUnescape(user)
		secret, err2 := url.QueryUnescape(pass)
		if err1 != nil || err2 != nil {
			return nil, clientCreds{}, errInvalidClient("malformed client credentials")
		}
		// An empty Basic header is what some clients send for "no client".
		if id != "" || secret != "" {
			cli = clientCreds{id: id, secret: secret, present: true, basic: true}
		}
	}
	if form.Has("client_id") || form.Has("client_secret") {
		if cli.basic {
			return nil, clientCreds{}, errInvalidRequest("client credentials in both the Authorization header and the body")
		}
		cli = clientCreds{id: form.Get("client_id"), secret: form.Get("client_secret"), present: true}
	}
	if cli.present && cli.id == "" {
		return nil, clientCreds{}, errInvalidClient("missing client_id")
	}
	return form, cli, nil
}

// httpSource describes the peer of r.
func (s *Service) httpSource(r *http.Request) source {
	src := source{transport: "http"}
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		src.addr = ap.Addr().Unmap()
	}
	src.addr = s.forwardedFor(src.addr, r.Header.Values("X-Forwarded-For"))
	if r.TLS != nil {
		src.cert = verifiedLeaf(r.TLS)
	}
	return src
}

// forwardedFor returns the client address behind trusted proxies: walking
// X-Forwarded-For from the right (the entry the nearest proxy added), the
// first address that is not itself a trusted proxy. From an untrusted peer
// the header is ignored, since anyone can write it.
func (s *Service) forwardedFor(peer netip.Addr, values []string) netip.Addr {
	if !s.trustedProxy(peer) {
		return peer
	}
	var hops []string
	for _, v := range values {
		for h := range strings.SplitSeq(v, ",") {
			hops = append(hops, strings.TrimSpace(h))
		}
	}
	if len(hops) > maxForwardedHops {
		hops = hops[len(hops)-maxForwardedHops:]
	}
	addr := peer
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(hops[i])
		if err != nil {
			break
		}
		addr = a.Unmap().WithZone("")
		if !s.trustedProxy(addr) {
			break
		}
	}
	return addr
}

func (s *Service) trustedProxy(a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// verifiedLeaf returns the client certificate of a connection if the TLS
// stack verified it against the listener's client CAs; an unverified
// certificate (tls.RequestClientCert) counts as none.
func verifiedLeaf(st *tls.ConnectionState) *x509.Certificate {
	if len(st.VerifiedChains) == 0 || len(st.VerifiedChains[0]) == 0 {
		return nil
	}
	return st.VerifiedChains[0][0]
}

// tokenResponse is the successful token response (RFC 6749 section 5.1,
// RFC 8693 section 2.2.1).
type tokenResponse struct {
	AccessToken     string `json:"access_token"`
	IssuedTokenType string `json:"issued_token_type,omitempty"`
	TokenType       string `json:"token_type"`
	ExpiresIn       int64  `json:"expires_in"`
	RefreshToken    string `json:"refresh_token,omitempty"`
	// RefreshExpiresIn is not in RFC 6749; Keycloak and others send it and
	// the CLI uses it to know when it must log in again.
	RefreshExpiresIn int64  `json:"refresh_expires_in,omitempty"`
	Scope            string `json:"scope,omitempty"`
}

type errorResponse struct {
	Error       string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

func (s *Service) writeToken(w http.ResponseWriter, res *result, exchange bool) {
	body := tokenResponse{
		AccessToken: res.access,
		TokenType:   "Bearer",
		ExpiresIn:   s.expiresIn(res.claims.ExpiresAt),
		Scope:       grantedScope(res.claims),
	}
	if exchange {
		body.IssuedTokenType = tokenTypeAccess
	}
	if res.refresh != "" {
		body.RefreshToken = res.refresh
		body.RefreshExpiresIn = s.expiresIn(res.refreshRec.ExpiresAt)
	}
	writeJSON(w, http.StatusOK, body)
}

func (s *Service) writeError(w http.ResponseWriter, err error) {
	ge := asGrantError(err)
	if ge.code == codeServerError {
		// The grant functions logged and audited their own failures; this
		// catches the rest without repeating the client-facing text.
		s.log.Error("token endpoint error", "error", ge.Error())
	}
	h := w.Header()
	if ge.httpStatus == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Basic realm="aegis"`)
	}
	if ge.retryAfter > 0 {
		h.Set("Retry-After", strconv.FormatInt(int64(math.Ceil(ge.retryAfter.Seconds())), 10))
	}
	writeJSON(w, ge.httpStatus, errorResponse{Error: ge.code, Description: sanitizeDescription(ge.desc)})
}

// writeJSON writes a token endpoint response, which must never be cached
// (RFC 6749 section 5.1).
func writeJSON(w http.ResponseWriter, status int, body any) {
	b, err := json.Marshal(body)
	if err != nil {
		// Only strings and integers, so this cannot happen; answer
		// something well-formed anyway.
		status, b = http.StatusInternalServerError, []byte(`{"error":"server_error"}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json;charset=UTF-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// sanitizeDescription keeps error_description within the characters RFC
// 6749 section 5.2 allows.
func sanitizeDescription(d string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			return '?'
		}
		return r
	}, d)
}
