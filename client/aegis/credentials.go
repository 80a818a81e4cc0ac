package aegis

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
)

// ServiceAccount is how a service authenticates its own calls to Aegis
// (Authorize about its callers needs aegis:authz:check): the OAuth2 client
// credentials of one of its service account's keys.
type ServiceAccount struct {
	// TokenURL is Aegis's token endpoint, <issuer>/oauth2/token.
	TokenURL string
	// ClientID and ClientSecret are the key's, as printed once by
	// `photon iam service-accounts keys create`.
	ClientID     string
	ClientSecret string
	// HTTPClient makes the token requests (e.g. with Aegis's CA); nil
	// means http.DefaultClient.
	HTTPClient *http.Client
}

// TokenSource returns a source of access tokens for the service account
// that fetches a new token with the client credentials grant shortly
// before the current one expires. ctx bounds every token request.
func (sa ServiceAccount) TokenSource(ctx context.Context) (oauth2.TokenSource, error) {
	switch {
	case sa.TokenURL == "":
		return nil, errors.New("service account: token URL is required")
	case sa.ClientID == "" || sa.ClientSecret == "":
		return nil, errors.New("service account: client id and secret are required")
	}
	if sa.HTTPClient != nil {
		ctx = context.WithValue(ctx, oauth2.HTTPClient, sa.HTTPClient)
	}
	cc := &clientcredentials.Config{
		ClientID: sa.ClientID, ClientSecret: strings.TrimSpace(sa.ClientSecret),
		TokenURL: sa.TokenURL, AuthStyle: oauth2.AuthStyleInHeader,
	}
	return cc.TokenSource(ctx), nil
}

// TokenCredentials returns gRPC per-call credentials that send a token of
// src as `authorization: Bearer <token>`. requireTLS must be true unless
// the connection is plaintext on purpose (a lab on loopback): gRPC then
// refuses to send the token over a connection without TLS.
func TokenCredentials(src oauth2.TokenSource, requireTLS bool) credentials.PerRPCCredentials {
	return tokenCreds{src: src, secure: requireTLS}
}

type tokenCreds struct {
	src    oauth2.TokenSource
	secure bool
}

// GetRequestMetadata implements credentials.PerRPCCredentials. A token
// that cannot be had is UNAUTHENTICATED, which says what is wrong, rather
// than gRPC's generic UNAVAILABLE for credential errors.
func (c tokenCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	t, err := c.src.Token()
	if err != nil {
		return nil, status.Errorf(codes.Unauthenticated, "get an access token: %v", err)
	}
	return map[string]string{"authorization": "Bearer " + t.AccessToken}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials.
func (c tokenCreds) RequireTransportSecurity() bool { return c.secure }
