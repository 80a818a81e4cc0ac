package auth

import (
	"context"
	"encoding/base64"
	"strings"

	"golang.org/x/crypto/bcrypt"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
)

// Metadata keys of a request's token: etcd's clientv3 sends "token"; the
// JSON gateway passes an HTTP Authorization header as "authorization".
const (
	tokenKey         = "token"
	authorizationKey = "authorization"
	// GatewayKey marks requests relayed by the JSON gateway, which dials the
	// member with the member's own certificate: its common name must never
	// become the user of such a request. etcd relies on
	// "grpcgateway-accept" for the same purpose; both are honoured.
	GatewayKey       = "chainfire-gateway"
	gatewayAcceptKey = "grpcgateway-accept"
)

// AuthInfo returns who the caller of a gRPC request is: the user of its
// token, or (with ClientCertAuth, when there is no token) the common name of
// its verified client certificate. It returns nil without error when auth is
// disabled or the caller gave no credentials, and ErrInvalidAuthToken for a
// token that is unknown, expired or badly signed.
func (s *Store) AuthInfo(ctx context.Context) (*AuthInfo, error) {
	st := s.load()
	if !st.enabled {
		return nil, nil
	}
	md, ok := metadata.FromIncomingContext(ctx)
	if !ok {
		return nil, nil
	}
	ts := md.Get(tokenKey)
	if len(ts) == 0 {
		ts = md.Get(authorizationKey)
	}
	if len(ts) > 0 {
		token := strings.TrimPrefix(ts[0], "Bearer ")
		ai, ok := s.tokens.info(ctx, token, st.revision)
		if !ok {
			s.lg.Debug("invalid auth token")
			return nil, ErrInvalidAuthToken
		}
		return ai, nil
	}
	if !s.opts.ClientCertAuth {
		return nil, nil
	}
	return s.authInfoFromTLS(ctx, md), nil
}

// authInfoFromTLS maps the common name of the caller's verified client
// certificate to a user.
func (s *Store) authInfoFromTLS(ctx context.Context, md metadata.MD) *AuthInfo {
	p, ok := peer.FromContext(ctx)
	if !ok || p == nil || p.AuthInfo == nil {
		return nil
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return nil
	}
	for _, chain := range info.State.VerifiedChains {
		if len(chain) == 0 {
			continue
		}
		cn := chain[0].Subject.CommonName
		if len(md.Get(GatewayKey)) > 0 || len(md.Get(gatewayAcceptKey)) > 0 {
			s.lg.Debug("ignoring the certificate common name of a gateway request", "common-name", cn)
			return nil
		}
		return &AuthInfo{Username: cn, Revision: s.Revision()}
	}
	return nil
}

// acquire takes one of the bcrypt slots.
func (s *Store) acquire(ctx context.Context) error {
	select {
	case s.bcryptSlots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Store) release() { <-s.bcryptSlots }

// HashPassword hashes a password for a user add or password change
// proposal, base64-encoded as etcd puts it into the request, so that
// neither the raft log nor the other members see the password.
func (s *Store) HashPassword(ctx context.Context, password string) (string, error) {
	if err := s.acquire(ctx); err != nil {
		return "", err
	}
	defer s.release()
	h, err := bcrypt.GenerateFromPassword([]byte(password), s.opts.BcryptCost)
	if err != nil {
		return "", err // etcd returns bcrypt's error (a password over 72 bytes) as is
	}
	return base64.StdEncoding.EncodeToString(h), nil
}

// CheckPassword verifies a user's password before an Authenticate is
// proposed, on the receiving member's client goroutine, never on the apply
// loop. It returns the auth revision the check saw.
func (s *Store) CheckPassword(ctx context.Context, user, password string) (uint64, error) {
	st := s.load()
	if !st.enabled {
		return 0, ErrAuthNotEnabled
	}
	u := st.users[user]
	if u == nil {
		return 0, ErrAuthFailed
	}
	if u.Options != nil && u.Options.NoPassword {
		return 0, ErrNoPasswordUser
	}
	if err := s.acquire(ctx); err != nil {
		return 0, err
	}
	defer s.release()
	if bcrypt.CompareHashAndPassword(u.Password, []byte(password)) != nil {
		s.lg.Info("invalid password", "user", user)
		return 0, ErrAuthFailed
	}
	return st.revision, nil
}

// TokenPrefix is the random part of a simple token, chosen by the member
// that receives an Authenticate before it proposes; "" for JWT.
func (s *Store) TokenPrefix() (string, error) { return s.tokens.prefix() }
