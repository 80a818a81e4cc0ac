package authn

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	aegisv1 "github.com/photoncloud/photoncloud/api/aegis/v1"
	"github.com/photoncloud/photoncloud/internal/aegis/password"
	"github.com/photoncloud/photoncloud/internal/aegis/token"
	"google.golang.org/grpc/codes"
)

// Service is the authentication front of Aegis. It serves the OAuth2
// endpoints ([Service.Handler]) and implements aegis.v1.AuthnService
// (register it with aegisv1.RegisterAuthnServiceServer). It is safe for
// concurrent use and starts no goroutines, so it needs no Close.
type Service struct {
	aegisv1.UnimplementedAuthnServiceServer

	cfg     Config
	iss     *token.Issuer
	ver     *token.Verifier
	ref     *token.Refresher
	ring    *token.Keyring
	hasher  *password.Hasher
	limiter *password.Limiter
	fed     *federation
	log     *slog.Logger

	// dummySecret is compared against for unknown client ids.
	dummySecret [sha256.Size]byte
	discovery   http.Handler
}

// New returns a Service for cfg.
func New(cfg Config) (*Service, error) {
	cfg, err := cfg.prepare()
	if err != nil {
		return nil, err
	}
	s := &Service{
		cfg: cfg, iss: cfg.Issuer, ver: cfg.Verifier, ref: cfg.Refresher, ring: cfg.Keyring,
		hasher: cfg.Hasher, limiter: cfg.Limiter, log: cfg.Logger,
		fed: newFederation(cfg.FederatedIssuers, cfg.HTTPClient, cfg.Now),
	}
	rand.Read(s.dummySecret[:])
	s.discovery = token.NewDiscovery(token.DiscoveryOptions{
		Issuer:               cfg.Token.Issuer,
		DisablePasswordGrant: cfg.DisablePasswordGrant,
		RevocationPath:       RevocationPath,
	}).Handler()
	return s, nil
}

// UnauthenticatedMethods returns the full gRPC method names of AuthnService
// that need no access token, for the server's authentication interceptor.
// Logout, RevokeTokens and WhoAmI check the caller's bearer token (or, for
// WhoAmI, mTLS certificate) themselves, so the interceptor may exempt them
// too; Logout then also works with only a refresh token, for a client whose
// access token has expired.
func UnauthenticatedMethods() []string {
	return []string{
		aegisv1.AuthnService_Login_FullMethodName,
		aegisv1.AuthnService_Refresh_FullMethodName,
		aegisv1.AuthnService_ExchangeToken_FullMethodName,
		aegisv1.AuthnService_IssueServiceAccountToken_FullMethodName,
		aegisv1.AuthnService_GetJWKS_FullMethodName,
	}
}

// source is where a request came from, as far as authentication cares.
type source struct {
	addr      netip.Addr
	cert      *x509.Certificate // verified mTLS client certificate, nil if none
	transport string            // "http" or "grpc"
}

// event starts an audit event for a request from src.
func (src source) event(action string) AuditEvent {
	return AuditEvent{Action: action, SourceAddr: src.addr, Transport: src.transport}
}

// result is what a successful grant produced.
type result struct {
	access     string
	claims     *token.Claims
	refresh    string               // "" if none
	refreshRec *token.RefreshRecord // nil if none
}

// fail records a refused attempt and returns err. Refusals are logged at
// Info: they are the input of intrusion detection, and carry no secrets.
func (s *Service) fail(ctx context.Context, ev AuditEvent, reason string, err error) error {
	ev.Success = false
	ev.Reason = reason
	ev.Time = s.cfg.Now()
	s.cfg.Audit(ctx, ev)
	ge := asGrantError(err)
	attrs := []any{"action", ev.Action, "reason", reason, "login", ev.Login, "principal", ev.Principal,
		"client_id", ev.ClientID, "source", addrString(ev.SourceAddr)}
	if ge.cause != nil {
		// Causes come from the store and the token package and name no
		// secrets; they are what an operator needs to debug a refusal.
		attrs = append(attrs, "error", ge.cause.Error())
	}
	switch {
	case ge.code == codeServerError || ge.grpcCode == codes.DeadlineExceeded:
		s.log.Error("authentication failed on an internal error", attrs...)
	case reason == ReasonRateLimited:
		// A guessing attack produces these by the thousand; the audit hook
		// still sees each one.
		s.log.Debug("authentication rate limited", attrs...)
	default:
		s.log.Info("authentication refused", attrs...)
	}
	return ge
}

// succeed records a successful attempt.
func (s *Service) succeed(ctx context.Context, ev AuditEvent, res *result) {
	ev.Success = true
	ev.Time = s.cfg.Now()
	if res != nil && res.claims != nil {
		ev.Principal = res.claims.Subject
		ev.TokenID = res.claims.ID
		ev.ClientID = res.claims.ClientID
	}
	s.cfg.Audit(ctx, ev)
	s.log.Debug("authenticated", "action", ev.Action, "principal", ev.Principal, "client_id", ev.ClientID,
		"jti", ev.TokenID, "source", addrString(ev.SourceAddr))
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// expiresIn is the OAuth2 expires_in of a token expiring at exp: whole
// seconds, at least 1.
func (s *Service) expiresIn(exp time.Time) int64 {
	return max(int64(exp.Sub(s.cfg.Now())/time.Second), 1)
}
