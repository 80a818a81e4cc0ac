package server

import (
	"context"
	"crypto/x509"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	aegisv1 "github.com/photoncloud/photoncloud/api/aegis/v1"
	"github.com/photoncloud/photoncloud/internal/aegis/authn"
	"github.com/photoncloud/photoncloud/internal/aegis/policy"
	"github.com/photoncloud/photoncloud/internal/aegis/token"
)

// Caller is the authenticated principal of a call, as the interceptor put
// it in the context.
type Caller struct {
	// Principal is the API name, e.g. "orgs/acme/users/alice".
	Principal string
	// Kind is user or service account.
	Kind token.PrincipalKind
	// Org is the principal's org id ("acme"; "system" for operators).
	Org string
	// PolicyPrincipal is the principal's name in the evaluator
	// ("users/<uid>"), from store.PolicyPrincipal.
	PolicyPrincipal string
	// Claims are the verified token claims; nil for a caller
	// authenticated by its mTLS client certificate.
	Claims *token.Claims
	// Project, if set, is the project name ("orgs/acme/projects/web") the
	// token is restricted to.
	Project string
	// Permissions, if non-empty, are the permission patterns the token is
	// restricted to.
	Permissions []string
}

// TokenID returns the jti of the caller's token, "" for mTLS.
func (c *Caller) TokenID() string {
	if c == nil || c.Claims == nil {
		return ""
	}
	return c.Claims.ID
}

// expiresAt is when the caller's credential ends (zero: not bounded).
func (c *Caller) expiresAt() time.Time {
	if c == nil || c.Claims == nil {
		return time.Time{}
	}
	return c.Claims.ExpiresAt
}

// callInfo is what the interceptor learns about a call, kept in the
// context as one value (one allocation and one lookup per call, on the
// hottest path of the server).
type callInfo struct {
	requestInfo
	caller *Caller // nil in public methods
}

type callInfoKey struct{}

// withCallInfo returns ctx carrying ci.
func withCallInfo(ctx context.Context, ci *callInfo) context.Context {
	return context.WithValue(ctx, callInfoKey{}, ci)
}

// CallerFromContext returns the caller the interceptor authenticated, or
// false in a public method or outside an intercepted call. The Caller is
// shared: do not modify it.
func CallerFromContext(ctx context.Context) (*Caller, bool) {
	ci, ok := ctx.Value(callInfoKey{}).(*callInfo)
	if !ok || ci.caller == nil {
		return nil, false
	}
	return ci.caller, true
}

// requestInfo is what the audit log records about where a call came from.
type requestInfo struct {
	sourceIP  string
	userAgent string
	requestID string
}

func requestInfoFrom(ctx context.Context) requestInfo {
	if ci, ok := ctx.Value(callInfoKey{}).(*callInfo); ok {
		return ci.requestInfo
	}
	return requestInfo{}
}

// Header values that end up in audit events are bounded, so that a client
// cannot make every audit record of its calls megabytes long.
const maxHeaderValue = 256

func clipHeader(v string) string {
	if len(v) > maxHeaderValue {
		return v[:maxHeaderValue]
	}
	return v
}

// requestInfo reads the source address (through trusted proxies), the user
// agent and the request id of a call.
func (s *Server) requestInfo(ctx context.Context) requestInfo {
	var ri requestInfo
	var addr netip.Addr
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		addr = peerAddr(p.Addr)
	}
	// Metadata keys are lower-case, so the map is indexed directly
	// rather than through md.Get, which lower-cases its argument.
	md, _ := metadata.FromIncomingContext(ctx)
	addr = s.forwardedFor(addr, md["x-forwarded-for"])
	if addr.IsValid() {
		ri.sourceIP = addr.String()
	}
	// The gateway forwards the HTTP User-Agent as grpcgateway-user-agent.
	for _, k := range []string{"grpcgateway-user-agent", "user-agent"} {
		if v := md[k]; len(v) > 0 {
			ri.userAgent = clipHeader(v[0])
			break
		}
	}
	if v := md["x-request-id"]; len(v) > 0 {
		ri.requestID = clipHeader(v[0])
	}
	return ri
}

// peerAddr returns the IP of a gRPC peer address without formatting and
// parsing it again (the common TCP case).
func peerAddr(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		if ip, ok := netip.AddrFromSlice(ta.IP); ok {
			return ip.Unmap()
		}
		return netip.Addr{}
	}
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// forwardedFor returns the client address: the peer, unless the peer is a
// trusted proxy, in which case the right-most X-Forwarded-For entry that
// is not a trusted proxy (entries further left are client-controlled).
func (s *Server) forwardedFor(peerAddr netip.Addr, xff []string) netip.Addr {
	if !peerAddr.IsValid() || !s.trusted(peerAddr) || len(xff) == 0 {
		return peerAddr
	}
	var hops []string
	for _, v := range xff {
		hops = append(hops, strings.Split(v, ",")...)
	}
	addr := peerAddr
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return addr
		}
		addr = a.Unmap()
		if !s.trusted(addr) {
			return addr
		}
	}
	return addr
}

func (s *Server) trusted(a netip.Addr) bool {
	return slices.ContainsFunc(s.opts.TrustedProxies, func(p netip.Prefix) bool { return p.Contains(a) })
}

func publicMethods(extra []string) map[string]bool {
	m := map[string]bool{}
	for _, name := range authn.UnauthenticatedMethods() {
		m[name] = true
	}
	for _, name := range extra {
		m[name] = true
	}
	return m
}

// isPublic reports whether method needs no authentication here. The whole
// AuthnService is exempt: its token endpoints need none, and Logout,
// RevokeTokens and WhoAmI authenticate the caller themselves (Logout also
// with only a refresh token, for a client whose access token expired).
func (s *Server) isPublic(method string) bool {
	return s.public[method] ||
		strings.HasPrefix(method, "/aegis.v1.AuthnService/") ||
		strings.HasPrefix(method, "/grpc.health.v1.Health/")
}

// UnaryInterceptor authenticates every unary call (see the package
// comment) and puts the Caller in the context.
func (s *Server) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, err := s.intercept(ctx, info.FullMethod)
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// StreamInterceptor is UnaryInterceptor for streaming calls.
func (s *Server) StreamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, err := s.intercept(ss.Context(), info.FullMethod)
		if err != nil {
			return err
		}
		return handler(srv, &ctxStream{ServerStream: ss, ctx: ctx})
	}
}

type ctxStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *ctxStream) Context() context.Context { return s.ctx }

func (s *Server) intercept(ctx context.Context, method string) (context.Context, error) {
	ci := &callInfo{requestInfo: s.requestInfo(ctx)}
	ctx = withCallInfo(ctx, ci)
	if s.isPublic(method) {
		return ctx, nil
	}
	c, err := s.authenticate(ctx)
	if err != nil {
		s.lg.Debug("call not authenticated", "method", method, "source_ip", ci.sourceIP, "err", err)
		return nil, err
	}
	ci.caller = c
	return ctx, nil
}

// authenticate finds the caller of a call: the bearer token, or without
// one a verified mTLS client certificate bound to a service account.
func (s *Server) authenticate(ctx context.Context) (*Caller, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md["authorization"]
	switch {
	case len(vals) > 1:
		return nil, status.Error(codes.Unauthenticated, "more than one authorization header")
	case len(vals) == 0:
		if cert := verifiedPeerCert(ctx); cert != nil {
			return s.certCaller(cert)
		}
		return nil, status.Error(codes.Unauthenticated, "missing bearer token")
	}
	raw, ok := bearer(vals[0])
	if !ok {
		return nil, status.Error(codes.Unauthenticated, "authorization is not a bearer token")
	}
	c, err := s.tokenCaller(raw)
	if err != nil {
		return nil, status.Error(codes.Unauthenticated, err.Error())
	}
	return c, nil
}

// errPrincipalInactive marks a valid token whose principal no longer
// exists or is disabled (or whose org is suspended).
var errPrincipalInactive = errors.New("principal does not exist or is disabled")

// tokenCaller verifies an access token and resolves its principal. The
// error says why the token is not usable, for the log and a status
// message; it never contains the token.
func (s *Server) tokenCaller(raw string) (*Caller, error) {
	claims, err := s.ver.Verify(raw)
	if err != nil {
		return nil, errors.New("access token rejected: " + strings.TrimPrefix(err.Error(), token.ErrInvalidToken.Error()+": "))
	}
	return s.claimsCaller(claims)
}

// claimsCaller maps verified claims to a Caller. A token outlives changes
// to its principal, so this is where deletion and disabling take effect at
// once on this replica (the store revokes nothing by itself), and where a
// service-account token stops working when the key it was issued for is
// deleted.
func (s *Server) claimsCaller(claims *token.Claims) (*Caller, error) {
	pol, err := s.st.PolicyPrincipal(claims.Subject)
	if err != nil {
		return nil, errPrincipalInactive
	}
	if p, ok := s.eval.Principal(pol); !ok || p.Disabled {
		return nil, errPrincipalInactive
	}
	if claims.Kind == token.KindServiceAccount && issuedForKey(claims.ClientID) {
		if owner, ok := s.st.ServiceAccountKeyOwner(claims.ClientID); !ok || owner != claims.Subject {
			return nil, errors.New("access token rejected: its service account key was deleted")
		}
	}
	// The org comes from the principal's name, which the store just
	// resolved, not from the separate "org" claim: tenancy then rests on
	// one fact only. (The issuer keeps the two equal and a project of a
	// downscoped token in that org.)
	org := policy.OrgOf(claims.Subject)
	c := &Caller{
		Principal:       claims.Subject,
		Kind:            claims.Kind,
		Org:             org,
		PolicyPrincipal: pol,
		Claims:          claims,
		Permissions:     claims.Permissions,
	}
	if claims.Project != "" {
		c.Project = "orgs/" + org + "/projects/" + claims.Project
	}
	return c, nil
}

// issuedForKey reports whether a service-account token's client id is a
// key id rather than one of authn's built-in clients.
func issuedForKey(clientID string) bool {
	switch clientID {
	case "", authn.PublicClientID, authn.FederatedClientID, authn.CertificateClientID:
		return false
	}
	return true
}

// certCaller authenticates a verified client certificate bound to a
// service account.
func (s *Server) certCaller(cert *x509.Certificate) (*Caller, error) {
	sc, err := s.st.ServiceAccountByCertificate(cert)
	if err != nil {
		return nil, status.Error(codes.Unauthenticated, "client certificate is not bound to a service account")
	}
	sa := sc.ServiceAccount
	if sa.GetState() != aegisv1.ServiceAccount_STATE_ACTIVE || sc.OrgState == aegisv1.Org_STATE_SUSPENDED {
		return nil, status.Error(codes.Unauthenticated, "service account disabled")
	}
	if p, ok := s.eval.Principal(sc.PolicyPrincipal); !ok || p.Disabled {
		return nil, status.Error(codes.Unauthenticated, "service account disabled")
	}
	return &Caller{
		Principal:       sa.GetName(),
		Kind:            token.KindServiceAccount,
		Org:             policy.OrgOf(sa.GetName()),
		PolicyPrincipal: sc.PolicyPrincipal,
	}, nil
}

// verifiedPeerCert returns the client certificate of the connection if
// the TLS layer verified it against the trusted CAs.
func verifiedPeerCert(ctx context.Context) *x509.Certificate {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.VerifiedChains) == 0 || len(ti.State.VerifiedChains[0]) == 0 {
		return nil
	}
	return ti.State.VerifiedChains[0][0]
}

// bearer extracts the token of an RFC 6750 "Bearer" credential; the scheme
// is case-insensitive (RFC 7235).
func bearer(v string) (string, bool) {
	scheme, tok, ok := strings.Cut(v, " ")
	if !ok || !strings.EqualFold(scheme, "bearer") {
		return "", false
	}
	tok = strings.TrimLeft(tok, " ")
	if tok == "" || strings.ContainsAny(tok, " \t") {
		return "", false
	}
	return tok, true
}

// callerOf returns the caller of an intercepted call; a handler reached
// without the interceptor answers UNAUTHENTICATED rather than act for
// nobody.
func callerOf(ctx context.Context) (*Caller, error) {
	c, ok := CallerFromContext(ctx)
	if !ok {
		return nil, status.Error(codes.Unauthenticated, "no authenticated caller")
	}
	return c, nil
}
