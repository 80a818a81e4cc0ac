package token

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
)

// Well-known paths, relative to the issuer URL.
const (
	DiscoveryPath = "/.well-known/openid-configuration"
	JWKSPath      = "/.well-known/jwks.json"
	TokenPath     = "/oauth2/token"
)

// OAuth2 grant types Aegis supports at TokenPath.
const (
	GrantPassword          = "password"
	GrantClientCredentials = "client_credentials"
	GrantRefreshToken      = "refresh_token"
	GrantTokenExchange     = "urn:ietf:params:oauth:grant-type:token-exchange" // RFC 8693
)

// Discovery is the OpenID Provider / OAuth2 authorization server metadata
// (OpenID Connect Discovery 1.0, RFC 8414) served at DiscoveryPath.
type Discovery struct {
	Issuer                            string   `json:"issuer"`
	JWKSURI                           string   `json:"jwks_uri"`
	TokenEndpoint                     string   `json:"token_endpoint"`
	RevocationEndpoint                string   `json:"revocation_endpoint,omitempty"`
	GrantTypesSupported               []string `json:"grant_types_supported"`
	ResponseTypesSupported            []string `json:"response_types_supported"`
	SubjectTypesSupported             []string `json:"subject_types_supported"`
	IDTokenSigningAlgValuesSupported  []string `json:"id_token_signing_alg_values_supported"`
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported"`
	ClaimsSupported                   []string `json:"claims_supported"`
}

// DiscoveryOptions configure NewDiscovery.
type DiscoveryOptions struct {
	// Issuer is Config.Issuer.
	Issuer string
	// DisablePasswordGrant leaves "password" out of grant_types_supported,
	// for deployments that switched the password grant off.
	DisablePasswordGrant bool
	// RevocationPath, if set, is advertised as revocation_endpoint
	// (RFC 7009), relative to Issuer.
	RevocationPath string
}

// NewDiscovery returns the metadata for an Aegis issuer.
//
// There is no authorization endpoint (Aegis has no browser flow), so
// authorization_endpoint is absent. response_types_supported is required
// by both specs and lists "token"; without an authorization endpoint no
// client can start a front-channel flow with it.
func NewDiscovery(o DiscoveryOptions) *Discovery {
	grants := []string{GrantClientCredentials, GrantRefreshToken, GrantTokenExchange}
	if !o.DisablePasswordGrant {
		grants = append([]string{GrantPassword}, grants...)
	}
	d := &Discovery{
		Issuer:                           o.Issuer,
		JWKSURI:                          o.Issuer + JWKSPath,
		TokenEndpoint:                    o.Issuer + TokenPath,
		GrantTypesSupported:              grants,
		ResponseTypesSupported:           []string{"token"},
		SubjectTypesSupported:            []string{"public"},
		IDTokenSigningAlgValuesSupported: []string{"EdDSA"},
		// client_secret_*: service-account keys; tls_client_auth (RFC 8705):
		// service accounts bound to a client certificate; none: the public
		// photon-cli client.
		TokenEndpointAuthMethodsSupported: []string{"client_secret_basic", "client_secret_post", "tls_client_auth", "none"},
		ClaimsSupported: []string{
			"iss", "sub", "aud", "exp", "iat", "nbf", "jti",
			"principal_kind", "org", "project", "permissions", "client_id",
		},
	}
	if o.RevocationPath != "" {
		d.RevocationEndpoint = o.Issuer + o.RevocationPath
	}
	return d
}

// Handler serves the discovery document.
func (d *Discovery) Handler() http.Handler {
	body, err := json.Marshal(d)
	if err != nil {
		// Only strings and string slices: cannot fail.
		panic(fmt.Sprintf("marshal discovery: %v", err))
	}
	return serveJSON(func() []byte { return body }, "public, max-age=3600")
}

// JWKSHandler serves the keyring's JWKS. The max-age is short so that
// clients that do not refresh on an unknown kid still pick up a rotation
// quickly; client/aegis refreshes on an unknown kid anyway.
func JWKSHandler(ring *Keyring) http.Handler {
	return serveJSON(ring.JWKS, "public, max-age=300")
}

func serveJSON(body func() []byte, cacheControl string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		b := body()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", cacheControl)
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		if r.Method == http.MethodHead {
			return
		}
		_, _ = w.Write(b)
	})
}
