package authn

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	aegisv1 "github.com/photoncloud/photoncloud/api/aegis/v1"
	"github.com/photoncloud/photoncloud/internal/aegis/token"
)

// Login implements aegisv1.AuthnServiceServer.
func (s *Service) Login(ctx context.Context, req *aegisv1.LoginRequest) (*aegisv1.LoginResponse, error) {
	if s.cfg.DisablePasswordGrant {
		return nil, grpcError(errPasswordDisabled())
	}
	if req.GetUsername() == "" || req.GetPassword() == "" {
		return nil, status.Error(codes.InvalidArgument, "username and password are required")
	}
	org := s.cfg.DefaultLoginOrg
	if req.GetOrg() != "" {
		o, ok := parseOrg(req.GetOrg())
		if !ok {
			return nil, status.Error(codes.InvalidArgument, "org must be orgs/<org>")
		}
		org = o
	}
	n, err := parseNarrowing(req.GetProject(), nil)
	if err != nil {
		return nil, grpcError(err)
	}
	res, err := s.passwordGrant(ctx, org, req.GetUsername(), req.GetPassword(), n, s.grpcSource(ctx))
	if err != nil {
		return nil, grpcError(err)
	}
	return &aegisv1.LoginResponse{
		AccessToken:       res.access,
		TokenType:         "Bearer",
		ExpireTime:        timestamppb.New(res.claims.ExpiresAt),
		RefreshToken:      res.refresh,
		RefreshExpireTime: timestamppb.New(res.refreshRec.ExpiresAt),
		Principal:         res.claims.Subject,
		Project:           projectName(res.claims.Org, res.claims.Project),
	}, nil
}

// Refresh implements aegisv1.AuthnServiceServer.
func (s *Service) Refresh(ctx context.Context, req *aegisv1.RefreshRequest) (*aegisv1.RefreshResponse, error) {
	if req.GetRefreshToken() == "" {
		return nil, status.Error(codes.InvalidArgument, "missing refresh_token")
	}
	res, err := s.refreshGrant(ctx, req.GetRefreshToken(), narrowing{}, s.grpcSource(ctx))
	if err != nil {
		return nil, grpcError(err)
	}
	return &aegisv1.RefreshResponse{
		AccessToken:       res.access,
		TokenType:         "Bearer",
		ExpireTime:        timestamppb.New(res.claims.ExpiresAt),
		RefreshToken:      res.refresh,
		RefreshExpireTime: timestamppb.New(res.refreshRec.ExpiresAt),
		Principal:         res.claims.Subject,
		Project:           projectName(res.claims.Org, res.claims.Project),
	}, nil
}

// Logout implements aegisv1.AuthnServiceServer. A caller whose access
// token has expired can still end its session with the refresh token alone:
// holding it is what entitles one to use it, so also to revoke it.
func (s *Service) Logout(ctx context.Context, req *aegisv1.LogoutRequest) (*aegisv1.LogoutResponse, error) {
	src := s.grpcSource(ctx)
	caller, err := s.caller(ctx)
	if err != nil {
		if req.GetRefreshToken() != "" && !req.GetAllSessions() {
			if err := s.revokeRefresh(ctx, req.GetRefreshToken()); err != nil {
				return nil, grpcError(err)
			}
			s.succeed(ctx, src.event(ActionLogout), nil)
			return &aegisv1.LogoutResponse{}, nil
		}
		return nil, err
	}
	ev := src.event(ActionLogout)
	ev.Principal, ev.ClientID, ev.TokenID = caller.Subject, caller.ClientID, caller.ID
	if err := s.revokeAccess(ctx, caller); err != nil {
		return nil, grpcError(s.fail(ctx, ev, ReasonInternal, err))
	}
	if req.GetRefreshToken() != "" {
		if err := s.revokeRefresh(ctx, req.GetRefreshToken()); err != nil {
			return nil, grpcError(s.fail(ctx, ev, ReasonInternal, err))
		}
	}
	if req.GetAllSessions() {
		if _, err := s.revokePrincipal(ctx, caller.Subject); err != nil {
			return nil, grpcError(s.fail(ctx, ev, ReasonInternal, err))
		}
	}
	s.succeed(ctx, ev, nil)
	return &aegisv1.LogoutResponse{}, nil
}

// ExchangeToken implements aegisv1.AuthnServiceServer.
func (s *Service) ExchangeToken(ctx context.Context, req *aegisv1.ExchangeTokenRequest) (*aegisv1.ExchangeTokenResponse, error) {
	if rtt := req.GetRequestedTokenType(); rtt != "" && rtt != tokenTypeAccess {
		return nil, status.Error(codes.InvalidArgument, "only access tokens can be requested")
	}
	if req.GetSubjectToken() == "" {
		return nil, status.Error(codes.InvalidArgument, "missing subject_token")
	}
	n, err := parseNarrowing(req.GetProject(), req.GetPermissions())
	if err != nil {
		return nil, grpcError(err)
	}
	x := exchangeRequest{subjectToken: req.GetSubjectToken(), subjectTokenType: req.GetSubjectTokenType(), narrowing: n}
	if a := req.GetAudience(); a != "" {
		x.audience = []string{a}
	}
	res, err := s.exchange(ctx, x, s.grpcSource(ctx))
	if err != nil {
		return nil, grpcError(err)
	}
	resp := &aegisv1.ExchangeTokenResponse{
		AccessToken:     res.access,
		IssuedTokenType: tokenTypeAccess,
		TokenType:       "Bearer",
		ExpireTime:      timestamppb.New(res.claims.ExpiresAt),
		RefreshToken:    res.refresh,
		Principal:       res.claims.Subject,
		Project:         projectName(res.claims.Org, res.claims.Project),
		Permissions:     res.claims.Permissions,
	}
	if res.refreshRec != nil {
		resp.RefreshExpireTime = timestamppb.New(res.refreshRec.ExpiresAt)
	}
	return resp, nil
}

// IssueServiceAccountToken implements aegisv1.AuthnServiceServer.
func (s *Service) IssueServiceAccountToken(ctx context.Context, req *aegisv1.IssueServiceAccountTokenRequest) (*aegisv1.IssueServiceAccountTokenResponse, error) {
	n, err := parseNarrowing(req.GetProject(), req.GetPermissions())
	if err != nil {
		return nil, grpcError(err)
	}
	src := s.grpcSource(ctx)
	var res *result
	if req.GetClientId() == "" {
		res, err = s.certGrant(ctx, "", n, src)
	} else {
		res, err = s.keyGrant(ctx, req.GetClientId(), req.GetClientSecret(), n, src)
	}
	if err != nil {
		return nil, grpcError(err)
	}
	return &aegisv1.IssueServiceAccountTokenResponse{
		AccessToken: res.access,
		TokenType:   "Bearer",
		ExpireTime:  timestamppb.New(res.claims.ExpiresAt),
		Principal:   res.claims.Subject,
		Project:     projectName(res.claims.Org, res.claims.Project),
		Permissions: res.claims.Permissions,
	}, nil
}

// permRevoke is what revoking another principal's tokens needs.
const permRevoke = "aegis:tokens:revoke"

// RevokeTokens implements aegisv1.AuthnServiceServer.
//
// A caller may always revoke its own tokens. Revoking another principal's
// needs aegis:tokens:revoke on that principal; the answer to a caller
// without it is NOT_FOUND, as for any name it may not see. A single token
// of someone else is named only by its jti, which does not say whose it
// is, so that needs aegis:tokens:revoke at the system scope.
func (s *Service) RevokeTokens(ctx context.Context, req *aegisv1.RevokeTokensRequest) (*aegisv1.RevokeTokensResponse, error) {
	caller, err := s.caller(ctx)
	if err != nil {
		return nil, err
	}
	src := s.grpcSource(ctx)
	ev := src.event(ActionRevokeTokens)
	ev.ClientID = caller.ClientID
	ev.Login = caller.Subject // who acted; Principal is whose tokens
	switch t := req.GetTarget().(type) {
	case *aegisv1.RevokeTokensRequest_Principal:
		name := t.Principal
		if name == "" || len(name) > 512 {
			return nil, status.Error(codes.InvalidArgument, "principal must be a user or service account name")
		}
		ev.Principal = name
		if name != caller.Subject {
			ok, err := s.authorize(ctx, caller, name)
			if err != nil {
				return nil, grpcError(s.fail(ctx, ev, ReasonInternal, err))
			}
			if !ok {
				return nil, grpcError(s.fail(ctx, ev, ReasonPermissionDenied, errNotFound(name)))
			}
			switch _, err := s.cfg.Principals.Principal(ctx, name); {
			case errors.Is(err, ErrNotFound):
				return nil, grpcError(s.fail(ctx, ev, ReasonUnknownPrincipal, errNotFound(name)))
			case err != nil:
				return nil, grpcError(s.fail(ctx, ev, ReasonInternal, errServer("look up principal", err)))
			}
		}
		at, err := s.revokePrincipal(ctx, name)
		if err != nil {
			return nil, grpcError(s.fail(ctx, ev, ReasonInternal, err))
		}
		s.succeed(ctx, ev, nil)
		return &aegisv1.RevokeTokensResponse{RevokeTime: timestamppb.New(at)}, nil

	case *aegisv1.RevokeTokensRequest_TokenId:
		jti := t.TokenId
		if jti == "" || len(jti) > 256 {
			return nil, status.Error(codes.InvalidArgument, "token_id must be a token's jti")
		}
		ev.TokenID = jti
		c := &token.Claims{ID: jti, ExpiresAt: caller.ExpiresAt}
		if jti != caller.ID {
			ok, err := s.authorize(ctx, caller, "system")
			if err != nil {
				return nil, grpcError(s.fail(ctx, ev, ReasonInternal, err))
			}
			if !ok {
				return nil, grpcError(s.fail(ctx, ev, ReasonPermissionDenied, errPermissionDenied("revoking another principal's token needs %s on system", permRevoke)))
			}
			// Whatever token this is, it was issued by now and lives at most
			// MaxTTL: that bounds how long the revocation must be kept.
			c.ExpiresAt = s.cfg.Now().Add(s.cfg.Token.MaxTTL + s.cfg.Token.Leeway)
		}
		if err := s.revokeAccess(ctx, c); err != nil {
			return nil, grpcError(s.fail(ctx, ev, ReasonInternal, err))
		}
		s.succeed(ctx, ev, nil)
		return &aegisv1.RevokeTokensResponse{RevokeTime: timestamppb.New(s.cfg.Now())}, nil

	default:
		return nil, status.Error(codes.InvalidArgument, "set principal or token_id")
	}
}

func (s *Service) authorize(ctx context.Context, caller *token.Claims, resource string) (bool, error) {
	if s.cfg.Authorizer == nil {
		return false, nil
	}
	ok, err := s.cfg.Authorizer.Authorize(ctx, caller, permRevoke, resource)
	if err != nil {
		return false, errServer("authorize", err)
	}
	return ok, nil
}

// GetJWKS implements aegisv1.AuthnServiceServer.
func (s *Service) GetJWKS(context.Context, *aegisv1.GetJWKSRequest) (*aegisv1.GetJWKSResponse, error) {
	var set struct {
		Keys []struct {
			Kty string `json:"kty"`
			Crv string `json:"crv"`
			X   string `json:"x"`
			Kid string `json:"kid"`
			Use string `json:"use"`
			Alg string `json:"alg"`
		} `json:"keys"`
	}
	// The keyring renders the standard JWKS; reading it back keeps one
	// source of truth for what is published and in which order.
	if err := json.Unmarshal(s.ring.JWKS(), &set); err != nil {
		return nil, grpcError(errServer("read jwks", err))
	}
	resp := &aegisv1.GetJWKSResponse{Keys: make([]*aegisv1.JsonWebKey, 0, len(set.Keys))}
	for _, k := range set.Keys {
		resp.Keys = append(resp.Keys, &aegisv1.JsonWebKey{Kty: k.Kty, Crv: k.Crv, X: k.X, Kid: k.Kid, Use: k.Use, Alg: k.Alg})
	}
	return resp, nil
}

// WhoAmI implements aegisv1.AuthnServiceServer. Without a bearer token, a
// verified mTLS certificate bound to a service account identifies the
// caller.
func (s *Service) WhoAmI(ctx context.Context, _ *aegisv1.WhoAmIRequest) (*aegisv1.WhoAmIResponse, error) {
	_, hasToken, err := s.bearerToken(ctx)
	if err != nil {
		return nil, err
	}
	if !hasToken {
		src := s.grpcSource(ctx)
		if src.cert == nil {
			return nil, status.Error(codes.Unauthenticated, "missing bearer token")
		}
		sa, _, err := s.certPrincipal(ctx, src.cert)
		if err != nil {
			if ge := asGrantError(err); ge.code == codeServerError {
				return nil, grpcError(ge)
			}
			return nil, status.Error(codes.Unauthenticated, "client certificate is not bound to a service account")
		}
		return &aegisv1.WhoAmIResponse{
			Principal: sa.Name, PrincipalKind: aegisv1.PrincipalKind_PRINCIPAL_KIND_SERVICE_ACCOUNT,
			Org: "orgs/" + sa.Org, DisplayName: sa.DisplayName, Groups: sa.Groups,
			AuthenticationMethod: aegisv1.WhoAmIResponse_AUTHENTICATION_METHOD_MTLS,
		}, nil
	}
	c, err := s.caller(ctx)
	if err != nil {
		return nil, err
	}
	p, err := s.cfg.Principals.Principal(ctx, c.Subject)
	switch {
	case errors.Is(err, ErrNotFound):
		return nil, status.Error(codes.Unauthenticated, "the token's principal no longer exists")
	case err != nil:
		return nil, grpcError(errServer("look up principal", err))
	case p.Disabled:
		return nil, status.Error(codes.Unauthenticated, "the token's principal is disabled")
	}
	return &aegisv1.WhoAmIResponse{
		Principal:            c.Subject,
		PrincipalKind:        principalKind(c.Kind),
		Org:                  "orgs/" + c.Org,
		DisplayName:          p.DisplayName,
		Groups:               p.Groups,
		AuthenticationMethod: authMethod(c),
		TokenId:              c.ID,
		ExpireTime:           timestamppb.New(c.ExpiresAt),
		Project:              projectName(c.Org, c.Project),
		Permissions:          c.Permissions,
	}, nil
}

func principalKind(k token.PrincipalKind) aegisv1.PrincipalKind {
	if k == token.KindServiceAccount {
		return aegisv1.PrincipalKind_PRINCIPAL_KIND_SERVICE_ACCOUNT
	}
	return aegisv1.PrincipalKind_PRINCIPAL_KIND_USER
}

// authMethod reads how a token was obtained from its client_id: the token
// package has no "amr" claim, so the built-in client ids stand in for one.
func authMethod(c *token.Claims) aegisv1.WhoAmIResponse_AuthenticationMethod {
	switch {
	case c.ClientID == FederatedClientID:
		return aegisv1.WhoAmIResponse_AUTHENTICATION_METHOD_FEDERATED
	case c.ClientID == CertificateClientID:
		return aegisv1.WhoAmIResponse_AUTHENTICATION_METHOD_MTLS
	case c.Kind == token.KindServiceAccount:
		return aegisv1.WhoAmIResponse_AUTHENTICATION_METHOD_SERVICE_ACCOUNT_KEY
	}
	return aegisv1.WhoAmIResponse_AUTHENTICATION_METHOD_PASSWORD
}

// bearerToken reads the "authorization: Bearer <token>" metadata.
func (s *Service) bearerToken(ctx context.Context) (string, bool, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
	switch len(vals) {
	case 0:
		return "", false, nil
	case 1:
	default:
		return "", false, status.Error(codes.Unauthenticated, "more than one authorization value")
	}
	scheme, tok, ok := strings.Cut(vals[0], " ")
	tok = strings.TrimSpace(tok)
	if !ok || !strings.EqualFold(scheme, "bearer") || tok == "" {
		return "", false, status.Error(codes.Unauthenticated, "authorization must be a bearer token")
	}
	return tok, true, nil
}

// caller verifies the request's bearer token. The server's interceptor may
// have verified it already; the Verifier's cache makes the second check
// cost microseconds.
func (s *Service) caller(ctx context.Context) (*token.Claims, error) {
	raw, ok, err := s.bearerToken(ctx)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, status.Error(codes.Unauthenticated, "missing bearer token")
	}
	c, err := s.ver.Verify(raw)
	if err != nil {
		s.log.Debug("bearer token rejected", "error", err)
		return nil, status.Error(codes.Unauthenticated, "invalid access token")
	}
	return c, nil
}

// grpcSource describes the peer of a gRPC call.
func (s *Service) grpcSource(ctx context.Context) source {
	src := source{transport: "grpc"}
	if p, ok := peer.FromContext(ctx); ok {
		if p.Addr != nil {
			if ap, err := netip.ParseAddrPort(p.Addr.String()); err == nil {
				src.addr = ap.Addr().Unmap()
			}
		}
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok {
			src.cert = verifiedLeaf(&ti.State)
		}
	}
	md, _ := metadata.FromIncomingContext(ctx)
	src.addr = s.forwardedFor(src.addr, md.Get("x-forwarded-for"))
	return src
}
