package aegis

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	aegisv1 "github.com/photoncloud/photoncloud/api/aegis/v1"
	"github.com/photoncloud/photoncloud/client/aegis/accesstoken"
)

// Authorizer authenticates and authorizes the callers of a gRPC server
// through Aegis. It is safe for concurrent use. Close it when the server
// has stopped.
type Authorizer struct {
	cfg       Config
	log       *slog.Logger
	m         *metrics
	keys      *keyCache
	ver       *verifier
	decisions *boundedCache[decisionKey, decisionEntry]

	publicExact  map[string]bool
	publicPrefix []string
	closeOnce    sync.Once
}

// decisionKey identifies a cached decision. subject is "t:" + token id or
// "p:" + principal name (mTLS), so a token and a principal never share an
// entry; labels is a canonical encoding of Check.Labels, which conditions
// may depend on.
type decisionKey struct {
	subject, permission, resource, labels string
}

type decisionEntry struct {
	code    codes.Code // OK for allowed
	msg     string
	expires time.Time
}

// New starts an Authorizer: it begins fetching the JWKS in the background
// and returns at once, so a service can start while Aegis is down (its
// callers get Unavailable until the keys arrive).
func New(cfg Config) (*Authorizer, error) {
	cfg.Audience = slices.Clone(cfg.Audience)
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	a := &Authorizer{
		cfg:         cfg,
		log:         cfg.Logger,
		m:           newMetrics(cfg.Registry, cfg.Logger),
		decisions:   newBoundedCache[decisionKey, decisionEntry](cfg.DecisionCacheSize),
		publicExact: map[string]bool{},
	}
	for _, m := range cfg.PublicMethods {
		if strings.HasSuffix(m, "/") {
			a.publicPrefix = append(a.publicPrefix, m)
		} else {
			a.publicExact[m] = true
		}
	}
	fetch := grpcKeyFetcher(cfg.Authn)
	if cfg.JWKSURL != "" {
		fetch = httpKeyFetcher(cfg.HTTPClient, cfg.JWKSURL)
	}
	a.keys = newKeyCache(fetch, &a.cfg, a.m)
	a.ver = &verifier{cfg: &a.cfg, keys: a.keys, cache: newBoundedCache[[sha256.Size]byte, *verifiedToken](cfg.TokenCacheSize)}
	return a, nil
}

// Close stops the background JWKS refresh and waits for it. Calls after
// Close still verify with the keys already fetched but fetch no more.
func (a *Authorizer) Close() error {
	a.closeOnce.Do(a.keys.close)
	return nil
}

func (a *Authorizer) public(method string) bool {
	if a.publicExact[method] {
		return true
	}
	for _, p := range a.publicPrefix {
		if strings.HasPrefix(method, p) {
			return true
		}
	}
	return false
}

// UnaryServerInterceptor authenticates the caller, checks the access its
// rule requires and runs the handler with the Principal in the context.
func (a *Authorizer) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if a.public(info.FullMethod) {
			a.m.call(resultPublic)
			return handler(ctx, req)
		}
		cred, err := a.authenticate(ctx)
		if err != nil {
			return nil, err
		}
		ctx = withCredential(ctx, cred)
		if err := a.checkCall(ctx, cred, info.FullMethod, req); err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// StreamServerInterceptor is the streaming counterpart of
// UnaryServerInterceptor. For a server-streaming method the rule sees the
// single request message: the check runs when the handler receives it
// (generated handlers do so before calling the service), and nothing can
// be sent before it passed. For client- and bidi-streaming methods the rule
// runs before the handler with a nil request.
func (a *Authorizer) StreamServerInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if a.public(info.FullMethod) {
			a.m.call(resultPublic)
			return handler(srv, ss)
		}
		cred, err := a.authenticate(ss.Context())
		if err != nil {
			return err
		}
		ctx := withCredential(ss.Context(), cred)
		if info.IsClientStream {
			if err := a.checkCall(ctx, cred, info.FullMethod, nil); err != nil {
				return err
			}
			return handler(srv, &authedStream{ServerStream: ss, ctx: ctx})
		}
		gs := &authedStream{ServerStream: ss, ctx: ctx}
		gs.check = func(m any) error { return a.checkCall(ctx, cred, info.FullMethod, m) }
		return handler(srv, gs)
	}
}

// authedStream carries the authenticated context and, for server-streaming
// calls, holds back every send until the request message passed the check.
type authedStream struct {
	grpc.ServerStream
	ctx    context.Context
	check  func(m any) error // nil when checked before the handler ran
	passed atomic.Bool
}

func (s *authedStream) Context() context.Context { return s.ctx }

// RecvMsg checks the first message. gRPC allows only one goroutine in
// RecvMsg at a time, so the check runs once; SendMsg may run concurrently
// and reads passed atomically.
func (s *authedStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	if s.check == nil || s.passed.Load() {
		return nil
	}
	if err := s.check(m); err != nil {
		return err
	}
	s.passed.Store(true)
	return nil
}

func (s *authedStream) SendMsg(m any) error {
	if s.check != nil && !s.passed.Load() {
		// A handler that answers before reading its request would leak
		// data past the check; fail closed.
		return status.Error(codes.Internal, "response sent before the request was authorized")
	}
	return s.ServerStream.SendMsg(m)
}

// Authorize checks one more permission for the caller of the current call
// (ctx must come from an intercepted, non-public call), e.g. in a handler
// that touches a second resource or learns the resource's labels only after
// loading it. It returns nil or a gRPC status error with the same codes as
// the interceptors.
func (a *Authorizer) Authorize(ctx context.Context, c Check) error {
	cred, ok := credentialFrom(ctx)
	if !ok {
		return status.Error(codes.Unauthenticated, "no authenticated caller")
	}
	return a.authorize(ctx, cred, c)
}

// authenticate finds the caller's credential: the bearer token if there is
// one, else (when configured) the verified client certificate.
func (a *Authorizer) authenticate(ctx context.Context) (*credential, error) {
	cert, _ := PeerCertIdentity(ctx)
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
	switch {
	case len(vals) > 1:
		a.m.call(resultUnauthenticated)
		return nil, status.Error(codes.Unauthenticated, "more than one authorization header")
	case len(vals) == 0 && cert != nil && a.cfg.CertPrincipal != nil:
		return a.authenticateCert(ctx, cert)
	case len(vals) == 0:
		a.m.call(resultUnauthenticated)
		return nil, status.Error(codes.Unauthenticated, "missing bearer token")
	}
	raw, ok := bearer(vals[0])
	if !ok {
		a.m.call(resultUnauthenticated)
		return nil, status.Error(codes.Unauthenticated, "authorization header is not a bearer token")
	}
	p, err := a.ver.verify(ctx, raw)
	if err != nil {
		return nil, a.authnError(ctx, err)
	}
	if cert != nil {
		// The verified Principal is shared through the token cache; the
		// certificate belongs to this connection only.
		p = clonePrincipal(p)
		p.Certificate = cert
	}
	return &credential{p: p, token: raw}, nil
}

func (a *Authorizer) authenticateCert(ctx context.Context, cert *CertIdentity) (*credential, error) {
	p, err := a.cfg.CertPrincipal(ctx, cert)
	if err != nil {
		if ctx.Err() != nil {
			return nil, status.FromContextError(ctx.Err()).Err()
		}
		a.m.call(resultUnavailable)
		a.log.Warn("aegis client certificate lookup failed", "sha256", cert.SHA256, "err", err)
		return nil, status.Error(codes.Unavailable, "client certificate lookup failed")
	}
	if p == nil || p.Name == "" {
		a.m.call(resultUnauthenticated)
		return nil, status.Error(codes.Unauthenticated, "client certificate is not bound to a service account")
	}
	p = clonePrincipal(p)
	p.Certificate = cert
	p.TokenID, p.ExpiresAt = "", time.Time{}
	return &credential{p: p}, nil
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

func (a *Authorizer) authnError(ctx context.Context, err error) error {
	switch {
	case ctx.Err() != nil:
		return status.FromContextError(ctx.Err()).Err()
	case errors.Is(err, errKeysUnavailable):
		a.m.call(resultUnavailable)
		a.log.Warn("aegis token not verifiable", "err", err)
		return status.Error(codes.Unavailable, "cannot verify access token: signing keys unavailable")
	case errors.Is(err, accesstoken.ErrInvalidToken):
		a.m.call(resultUnauthenticated)
		a.log.Debug("aegis token rejected", "err", err)
		return status.Error(codes.Unauthenticated, "access token rejected: "+strings.TrimPrefix(err.Error(), accesstoken.ErrInvalidToken.Error()+": "))
	}
	a.m.call(resultUnavailable)
	a.log.Warn("aegis token verification failed", "err", err)
	return status.Error(codes.Unavailable, "cannot verify access token")
}

// checkCall applies the service's rule to a call.
func (a *Authorizer) checkCall(ctx context.Context, cred *credential, method string, req any) error {
	c, err := a.cfg.Rules(ctx, method, req)
	if err != nil {
		a.m.call(resultInvalid)
		if _, ok := status.FromError(err); ok {
			return err
		}
		return status.Error(codes.InvalidArgument, err.Error())
	}
	return a.authorize(ctx, cred, c)
}

// authorize asks Aegis (or the decision cache) whether cred may do c.
func (a *Authorizer) authorize(ctx context.Context, cred *credential, c Check) error {
	if c.AuthenticatedOnly {
		if c.Permission != "" || c.Resource != "" {
			return a.ruleBug("access rule sets both AuthenticatedOnly and a permission", c)
		}
		a.m.call(resultAllowed)
		return nil
	}
	if c.Permission == "" || c.Resource == "" {
		return a.ruleBug("access rule gives no permission or resource", c)
	}
	key := decisionKey{permission: c.Permission, resource: c.Resource, labels: encodeLabels(c.Labels)}
	subject := &aegisv1.Subject{}
	if cred.token != "" {
		key.subject = "t:" + cred.p.TokenID
		subject.Identity = &aegisv1.Subject_AccessToken{AccessToken: cred.token}
	} else {
		key.subject = "p:" + cred.p.Name
		subject.Identity = &aegisv1.Subject_Principal{Principal: cred.p.Name}
	}
	now := a.cfg.Now()
	if e, ok := a.decisions.get(key); ok {
		if now.Before(e.expires) {
			a.m.cacheLookup(true)
			return a.result(e.code, e.msg)
		}
		a.decisions.remove(key)
	}
	a.m.cacheLookup(false)

	actx, cancel := context.WithTimeout(ctx, a.cfg.AuthorizeTimeout)
	start := time.Now()
	resp, err := a.cfg.Authz.Authorize(actx, &aegisv1.AuthorizeRequest{
		Subject:        subject,
		Permission:     c.Permission,
		Resource:       c.Resource,
		ResourceLabels: c.Labels,
		SourceIp:       a.cfg.SourceIP(ctx),
	})
	cancel()
	a.m.authorizeLatency(time.Since(start).Seconds())
	if err == nil && resp.GetDecision() == nil {
		err = errors.New("response without decision")
	}
	if err != nil {
		if ctx.Err() != nil {
			return status.FromContextError(ctx.Err()).Err()
		}
		// Fail closed: without an answer from Aegis nothing is allowed.
		a.m.call(resultUnavailable)
		a.log.Warn("aegis authorize failed", "permission", c.Permission, "resource", c.Resource, "err", err)
		return status.Error(codes.Unavailable, "authorization service unavailable")
	}
	d := resp.GetDecision()
	code, msg := a.outcome(cred.p, c, d)
	a.log.Debug("aegis decision", "principal", cred.p.Name, "permission", c.Permission, "resource", c.Resource,
		"allowed", d.GetAllowed(), "reason", d.GetReason().String(), "binding", d.GetBinding())
	if ttl := a.cacheTTL(cred.p, d, now); ttl > 0 {
		a.decisions.put(key, decisionEntry{code: code, msg: msg, expires: now.Add(ttl)})
	}
	return a.result(code, msg)
}

// outcome turns a decision into a gRPC code and message.
func (a *Authorizer) outcome(p *Principal, c Check, d *aegisv1.Decision) (codes.Code, string) {
	if d.GetAllowed() {
		return codes.OK, ""
	}
	switch d.GetReason() {
	case aegisv1.Decision_REASON_UNAUTHENTICATED:
		// Aegis knows more than the JWKS: the token was revoked.
		return codes.Unauthenticated, "access token rejected by Aegis (revoked or invalid)"
	case aegisv1.Decision_REASON_PRINCIPAL_INACTIVE:
		return codes.Unauthenticated, "principal is disabled or its org is suspended"
	}
	code := a.cfg.DenialCode(p, c)
	if code == codes.NotFound {
		return code, fmt.Sprintf("%s not found", c.Resource)
	}
	if code == codes.OK {
		code = codes.PermissionDenied // a DenialCode can never turn a denial into success
	}
	return code, fmt.Sprintf("permission %s denied on %s", c.Permission, c.Resource)
}

func (a *Authorizer) result(code codes.Code, msg string) error {
	switch code {
	case codes.OK:
		a.m.call(resultAllowed)
		return nil
	case codes.Unauthenticated:
		a.m.call(resultUnauthenticated)
	default:
		a.m.call(resultDenied)
	}
	return status.Error(code, msg)
}

// cacheTTL is how long a decision may be reused: at most DecisionTTL, at
// most what Aegis allows (zero when a condition depends on time or source
// address), and never past the token's expiry.
func (a *Authorizer) cacheTTL(p *Principal, d *aegisv1.Decision, now time.Time) time.Duration {
	if a.decisions == nil || d.GetCacheTtl() == nil {
		return 0
	}
	ttl := min(a.cfg.DecisionTTL, d.GetCacheTtl().AsDuration())
	if !p.ExpiresAt.IsZero() {
		ttl = min(ttl, p.ExpiresAt.Sub(now))
	}
	return ttl
}

func (a *Authorizer) ruleBug(msg string, c Check) error {
	a.m.call(resultInvalid)
	a.log.Error("aegis "+msg, "permission", c.Permission, "resource", c.Resource)
	return status.Error(codes.Internal, msg)
}

// encodeLabels is a canonical, unambiguous encoding of labels for the
// decision cache key (length-prefixed, sorted by key).
func encodeLabels(labels map[string]string) string {
	if len(labels) == 0 {
		return ""
	}
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		v := labels[k]
		b.WriteString(strconv.Itoa(len(k)))
		b.WriteByte(':')
		b.WriteString(k)
		b.WriteString(strconv.Itoa(len(v)))
		b.WriteByte(':')
		b.WriteString(v)
	}
	return b.String()
}
